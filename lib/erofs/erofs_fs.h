/* SPDX-License-Identifier: Apache-2.0 */
/*
 * EROFS on-disk format: the subset this project writes and reads.
 *
 * Field names follow the kernel's fs/erofs/erofs_fs.h so that the two can be
 * read side by side. Every multi-byte field is little-endian on disk; the
 * structs are only ever filled or read through the el_le*() helpers, so the
 * code stays correct on a big-endian host. See
 * docs/erofs-format.md (§ numbers below: its table "Section numbers in the code").
 */
#ifndef EL_EROFS_FS_H
#define EL_EROFS_FS_H

#include <stddef.h>
#include <stdint.h>

#define EROFS_SUPER_MAGIC_V1 0xE0F5E1E2u
#define EROFS_SUPER_OFFSET 1024
#define EROFS_ISLOTBITS 5
#define EROFS_SLOTSIZE (1u << EROFS_ISLOTBITS)
#define EROFS_NULL_ADDR 0xFFFFFFFFu
#define EROFS_NAME_LEN 255
#define EROFS_BLKSIZBITS 12 /* we always write 4 KiB blocks (docs/erofs-format.md) */
#define EROFS_BLKSIZ (1u << EROFS_BLKSIZBITS)

/* §2.1 feature bits */
#define EROFS_FEATURE_COMPAT_SB_CHKSUM 0x00000001u
#define EROFS_FEATURE_COMPAT_MTIME 0x00000002u
#define EROFS_FEATURE_COMPAT_XATTR_FILTER 0x00000004u

#define EROFS_FEATURE_INCOMPAT_ZERO_PADDING 0x00000001u
#define EROFS_FEATURE_INCOMPAT_COMPR_CFGS 0x00000002u
#define EROFS_FEATURE_INCOMPAT_CHUNKED_FILE 0x00000004u
#define EROFS_FEATURE_INCOMPAT_DEVICE_TABLE 0x00000008u
#define EROFS_FEATURE_INCOMPAT_ZTAILPACKING 0x00000010u
#define EROFS_FEATURE_INCOMPAT_FRAGMENTS 0x00000020u
#define EROFS_FEATURE_INCOMPAT_XATTR_PREFIXES 0x00000040u
#define EROFS_FEATURE_INCOMPAT_48BIT 0x00000080u
#define EROFS_FEATURE_INCOMPAT_METABOX 0x00000100u

/* §2 superblock, at byte 1024 */
struct erofs_super_block {
	uint32_t magic;
	uint32_t checksum;
	uint32_t feature_compat;
	uint8_t blkszbits;
	uint8_t sb_extslots;
	uint16_t rootnid_2b;
	uint64_t inos;
	uint64_t epoch;
	uint32_t fixed_nsec;
	uint32_t blocks_lo;
	uint32_t meta_blkaddr;
	uint32_t xattr_blkaddr;
	uint8_t uuid[16];
	uint8_t volume_name[16];
	uint32_t feature_incompat;
	uint16_t available_compr_algs;
	uint16_t extra_devices;
	uint16_t devt_slotoff;
	uint8_t dirblkbits;
	uint8_t xattr_prefix_count;
	uint32_t xattr_prefix_start;
	uint64_t packed_nid;
	uint8_t xattr_filter_reserved;
	uint8_t ishare_xattr_prefix_id;
	uint16_t reserved;
	uint32_t build_time;
	uint64_t rootnid_8b;
	uint8_t reserved2[8];
} __attribute__((packed));

/* §8.1 device slot */
struct erofs_deviceslot {
	uint8_t tag[64];
	uint32_t blocks_lo;
	uint32_t uniaddr_lo;
	uint16_t blocks_hi;
	uint16_t uniaddr_hi;
	uint8_t reserved[52];
} __attribute__((packed));

/* §3.1 i_format */
#define EROFS_INODE_LAYOUT_COMPACT 0
#define EROFS_INODE_LAYOUT_EXTENDED 1
#define EROFS_INODE_FLAT_PLAIN 0
#define EROFS_INODE_COMPRESSED_FULL 1
#define EROFS_INODE_FLAT_INLINE 2
#define EROFS_INODE_COMPRESSED_COMPACT 3
#define EROFS_INODE_CHUNK_BASED 4
#define EROFS_I_VERSION_BIT 0
#define EROFS_I_DATALAYOUT_BIT 1
#define EROFS_I_ALL_COMPAT 0x000Fu /* bits a pre-6.15 kernel accepts */

static inline uint16_t erofs_i_format(unsigned version, unsigned layout)
{
	return (uint16_t)(version | (layout << EROFS_I_DATALAYOUT_BIT));
}

/* §3.2 compact inode, 32 bytes */
struct erofs_inode_compact {
	uint16_t i_format;
	uint16_t i_xattr_icount;
	uint16_t i_mode;
	uint16_t i_nb;
	uint32_t i_size;
	uint32_t i_mtime;
	uint32_t i_u;
	uint32_t i_ino;
	uint16_t i_uid;
	uint16_t i_gid;
	uint32_t i_reserved;
} __attribute__((packed));

/* §3.3 extended inode, 64 bytes */
struct erofs_inode_extended {
	uint16_t i_format;
	uint16_t i_xattr_icount;
	uint16_t i_mode;
	uint16_t i_nb;
	uint64_t i_size;
	uint32_t i_u;
	uint32_t i_ino;
	uint32_t i_uid;
	uint32_t i_gid;
	uint64_t i_mtime;
	uint32_t i_mtime_nsec;
	uint32_t i_nlink;
	uint8_t i_reserved2[16];
} __attribute__((packed));

/* §4.3 chunk-based inodes */
#define EROFS_CHUNK_FORMAT_BLKBITS_MASK 0x001Fu
#define EROFS_CHUNK_FORMAT_INDEXES 0x0020u
#define EROFS_CHUNK_FORMAT_48BIT 0x0040u

struct erofs_inode_chunk_index {
	uint16_t startblk_hi;
	uint16_t device_id;
	uint32_t startblk_lo;
} __attribute__((packed));

/* §6 xattrs */
struct erofs_xattr_ibody_header {
	uint32_t h_name_filter;
	uint8_t h_shared_count;
	uint8_t h_reserved2[7];
	/* uint32_t h_shared_xattrs[h_shared_count]; */
} __attribute__((packed));

struct erofs_xattr_entry {
	uint8_t e_name_len;
	uint8_t e_name_index;
	uint16_t e_value_size;
	/* name, then value */
} __attribute__((packed));

#define EROFS_XATTR_INDEX_USER 1
#define EROFS_XATTR_INDEX_POSIX_ACL_ACCESS 2
#define EROFS_XATTR_INDEX_POSIX_ACL_DEFAULT 3
#define EROFS_XATTR_INDEX_TRUSTED 4
#define EROFS_XATTR_INDEX_LUSTRE 5
#define EROFS_XATTR_INDEX_SECURITY 6
#define EROFS_XATTR_LONG_PREFIX 0x80

#define EROFS_XATTR_FILTER_BITS 32
#define EROFS_XATTR_FILTER_DEFAULT 0xFFFFFFFFu
#define EROFS_XATTR_FILTER_SEED 0x25BBE08Fu

static inline size_t erofs_xattr_ibody_size(unsigned icount)
{
	return icount ? sizeof(struct erofs_xattr_ibody_header) + (icount - 1) * 4u : 0;
}

static inline size_t erofs_xattr_entry_size(size_t name_len, size_t value_size)
{
	return (sizeof(struct erofs_xattr_entry) + name_len + value_size + 3u) & ~(size_t)3u;
}

/* §5 directories */
#define EROFS_FT_UNKNOWN 0
#define EROFS_FT_REG_FILE 1
#define EROFS_FT_DIR 2
#define EROFS_FT_CHRDEV 3
#define EROFS_FT_BLKDEV 4
#define EROFS_FT_FIFO 5
#define EROFS_FT_SOCK 6
#define EROFS_FT_SYMLINK 7
#define EROFS_FT_MAX 8

/* The dirent file type of an st_mode (EROFS_FT_UNKNOWN for anything else). */
static inline uint8_t erofs_ftype_of_mode(uint32_t mode)
{
	switch (mode & 0170000) {
	case 0100000:
		return EROFS_FT_REG_FILE;
	case 0040000:
		return EROFS_FT_DIR;
	case 0020000:
		return EROFS_FT_CHRDEV;
	case 0060000:
		return EROFS_FT_BLKDEV;
	case 0010000:
		return EROFS_FT_FIFO;
	case 0140000:
		return EROFS_FT_SOCK;
	case 0120000:
		return EROFS_FT_SYMLINK;
	}
	return EROFS_FT_UNKNOWN;
}

struct erofs_dirent {
	uint64_t nid;
	uint16_t nameoff;
	uint8_t file_type;
	uint8_t reserved;
} __attribute__((packed));

_Static_assert(sizeof(struct erofs_super_block) == 128, "superblock size");
_Static_assert(offsetof(struct erofs_super_block, feature_incompat) == 80, "sb incompat");
_Static_assert(offsetof(struct erofs_super_block, extra_devices) == 86, "sb extra_devices");
_Static_assert(offsetof(struct erofs_super_block, packed_nid) == 96, "sb packed_nid");
_Static_assert(offsetof(struct erofs_super_block, build_time) == 108, "sb build_time");
_Static_assert(sizeof(struct erofs_deviceslot) == 128, "device slot size");
_Static_assert(offsetof(struct erofs_deviceslot, uniaddr_lo) == 68, "slot uniaddr");
_Static_assert(sizeof(struct erofs_inode_compact) == 32, "compact inode size");
_Static_assert(offsetof(struct erofs_inode_compact, i_u) == 16, "compact i_u");
_Static_assert(offsetof(struct erofs_inode_compact, i_uid) == 24, "compact i_uid");
_Static_assert(sizeof(struct erofs_inode_extended) == 64, "extended inode size");
_Static_assert(offsetof(struct erofs_inode_extended, i_mtime) == 32, "extended i_mtime");
_Static_assert(offsetof(struct erofs_inode_extended, i_nlink) == 44, "extended i_nlink");
_Static_assert(sizeof(struct erofs_inode_chunk_index) == 8, "chunk index size");
_Static_assert(sizeof(struct erofs_xattr_ibody_header) == 12, "xattr ibody header");
_Static_assert(sizeof(struct erofs_xattr_entry) == 4, "xattr entry header");
_Static_assert(sizeof(struct erofs_dirent) == 12, "dirent size");

#endif
