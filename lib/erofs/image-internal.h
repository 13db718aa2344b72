/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private part of the EROFS image reader, shared by image.c (the reader) and
 * check.c (the verifier). Nothing here is exported.
 */
#ifndef EL_IMAGE_INTERNAL_H
#define EL_IMAGE_INTERNAL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "erofs-layer/error.h"
#include "erofs-layer/image.h"
#include "erofs/erofs_fs.h"
#include "common/macro.h"

#define EL_IMAGE_WHAT "image"
#define EL_IMAGE_MAX_BLKSZ 4096u

/* Records a corruption found at byte `off` of the image (EL_NO_OFFSET when
 * the problem has no single place). */
#define el_image_corrupt(err, off, ...)                                            \
	el_error_set(err, -EFSCORRUPTED, EL_IMAGE_WHAT, off, __VA_ARGS__)

/* A few windows of the image kept in memory: metadata reads are small and
 * close together (an inode, then its neighbour), and in a VM each pread is
 * a costly trip through the hypervisor. */
#define EL_IMAGE_WINDOW (32u << 10)
#define EL_IMAGE_WINDOWS 4

struct el_image_window {
	uint8_t *buf; /* EL_IMAGE_WINDOW bytes, or NULL before first use */
	uint64_t start; /* a multiple of EL_IMAGE_WINDOW */
	size_t len;	/* bytes valid from start: less only at the image's end */
	uint64_t used;	/* the image's read count when last used: LRU */
};

struct el_image {
	int fd;
	struct el_image_window win[EL_IMAGE_WINDOWS];
	uint64_t reads;
	uint64_t size; /* bytes of the image file or block device */
	uint32_t blkszbits;
	uint32_t blksz;
	uint64_t meta_base;  /* byte offset of nid 0 */
	uint64_t xattr_base; /* byte offset of shared xattr id 0 */
	uint8_t xattr_filter_reserved;
	struct el_image_info info;
	struct el_image_device *devs;
	size_t ndevs;
	uint16_t device_id_mask; /* what the kernel keeps of a chunk index's device_id */
};

/* True if [off, off+len) lies inside the image file. */
static inline bool el_image_in_bounds(const struct el_image *img, uint64_t off, uint64_t len)
{
	uint64_t end;

	return !el_add_overflow(off, len, &end) && end <= img->size;
}

/* Reads [off, off+len) of the image; a range outside it is a corruption. */
int el_image_read_at(struct el_image *img, void *buf, size_t len, uint64_t off,
		     struct el_error *err);

/* The dirent file type (§5.1) a mode calls for; EROFS_FT_UNKNOWN for none. */

/* The device slot whose unified range holds [blk, blk+nblocks), or -1. */
int el_image_unified_device(const struct el_image *img, uint64_t blk, uint64_t nblocks);

/* Byte offset of the chunk index (or block map) array of a chunk-based inode
 * and the size of one entry (§4.3). */
int el_image_chunk_array(const struct el_image *img, const struct el_image_inode *ino,
			 uint64_t *ret_pos, unsigned *ret_unit, unsigned *ret_chunkbits,
			 struct el_error *err);

/* One parsed directory block (§5.1). */
struct el_dirblock_entry {
	uint64_t nid;
	uint16_t nameoff; /* from the start of the block */
	uint16_t namelen;
	uint8_t file_type;
};

struct el_dirblock {
	uint8_t buf[EL_IMAGE_MAX_BLKSZ];
	uint32_t len;  /* valid bytes: min(blksz, i_size - block start) */
	uint64_t phys; /* image offset of the block, EL_NO_OFFSET if elsewhere */
	uint8_t kind;  /* enum el_image_extent_kind of the block's storage */
	unsigned count;
	struct el_dirblock_entry ents[EL_IMAGE_MAX_BLKSZ / sizeof(struct erofs_dirent)];
};

/* Number of blocks of directory `dir`, after checking that its size is sane. */
int el_image_dir_nblocks(struct el_image *img, const struct el_image_inode *dir,
			 uint64_t *ret, struct el_error *err);

/*
 * Reads and parses block `blk` of directory `dir`. Enforces what the kernel
 * enforces (12 <= nameoff0 < blksz, names of 1..255 bytes inside the block,
 * increasing name offsets); the stricter rules are el_image_check's.
 */
int el_image_dirblock(struct el_image *img, const struct el_image_inode *dir, uint64_t blk,
		      struct el_dirblock *ret, struct el_error *err);

#endif
