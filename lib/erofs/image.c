/* SPDX-License-Identifier: Apache-2.0 */
/*
 * User-space EROFS reader. § numbers: docs/erofs-format.md.
 *
 * The image is hostile input: everything goes through pread with a range
 * checked (overflow-safe) against the image size first, every loop is bounded
 * by a count taken from the image size, and no allocation depends on a field
 * without that field being bounded first. Small reads are served from a few
 * windows of the file (read once, kept for the life of the handle: an image
 * handle is for one thread, and the file is expected not to change under it).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "erofs/image-internal.h"
#include "common/endian.h"
#include "common/hash.h"
#include "common/io.h"

/*
 * Limits. The kernel reads the superblock from the first 4 KiB, so a larger
 * superblock (sb_extslots) cannot be valid. Symlink hops bound path lookup
 * the way ELOOP does; a target is at most PATH_MAX-1 bytes (§7, kernel
 * "fast symlink" limit is the block, mkfs uses PATH_MAX).
 */
#define SB_SIZE_MAX (4096u - EROFS_SUPER_OFFSET)
#define LOOKUP_MAX_SYMLINKS 40
#define SYMLINK_MAX 4095u
#define XATTR_ENTRY_MAX (sizeof(struct erofs_xattr_entry) + 255u + 65535u)

/*
 * Incompat bits we can open (§2.1). Compression-only bits are accepted so
 * that the metadata of such images can still be listed; their compressed
 * inodes fail with -EOPNOTSUPP when read. 48BIT and METABOX change how
 * inodes and metadata are addressed and are refused as a whole.
 */
#define INCOMPAT_READABLE                                                          \
	(EROFS_FEATURE_INCOMPAT_ZERO_PADDING | EROFS_FEATURE_INCOMPAT_COMPR_CFGS |  \
	 EROFS_FEATURE_INCOMPAT_CHUNKED_FILE | EROFS_FEATURE_INCOMPAT_DEVICE_TABLE | \
	 EROFS_FEATURE_INCOMPAT_ZTAILPACKING | EROFS_FEATURE_INCOMPAT_FRAGMENTS |   \
	 EROFS_FEATURE_INCOMPAT_XATTR_PREFIXES)
#define INCOMPAT_KNOWN                                                             \
	(INCOMPAT_READABLE | EROFS_FEATURE_INCOMPAT_48BIT | EROFS_FEATURE_INCOMPAT_METABOX)

#define CHUNK_FORMAT_ALL                                                           \
	(EROFS_CHUNK_FORMAT_BLKBITS_MASK | EROFS_CHUNK_FORMAT_INDEXES |             \
	 EROFS_CHUNK_FORMAT_48BIT)

EL_DEFINE_CLEANUP(struct el_image, el_image_close)

/* §6.1 short name prefixes; 2 and 3 are whole names. */
static const char *const xattr_prefixes[] = {
	[EROFS_XATTR_INDEX_USER] = "user.",
	[EROFS_XATTR_INDEX_POSIX_ACL_ACCESS] = "system.posix_acl_access",
	[EROFS_XATTR_INDEX_POSIX_ACL_DEFAULT] = "system.posix_acl_default",
	[EROFS_XATTR_INDEX_TRUSTED] = "trusted.",
	[EROFS_XATTR_INDEX_LUSTRE] = "lustre.",
	[EROFS_XATTR_INDEX_SECURITY] = "security.",
};

/* The window holding byte off (read in on a miss, in the least recently
 * used slot), or NULL with err set. off is inside the image. */
static const struct el_image_window *window_at(struct el_image *img, uint64_t off,
					       struct el_error *err)
{
	uint64_t start = off - off % EL_IMAGE_WINDOW;
	struct el_image_window *w = &img->win[0];
	int r;

	img->reads++;
	for (size_t i = 0; i < EL_IMAGE_WINDOWS; i++) {
		struct el_image_window *c = &img->win[i];
		if (c->buf && c->len && c->start == start) {
			c->used = img->reads;
			return c;
		}
		if (!c->buf || c->used < w->used)
			w = c;
	}
	if (!w->buf && !(w->buf = malloc(EL_IMAGE_WINDOW))) {
		el_error_set(err, -ENOMEM, EL_IMAGE_WHAT, off, "out of memory");
		return NULL;
	}
	w->len = (size_t)EL_MIN((uint64_t)EL_IMAGE_WINDOW, img->size - start);
	r = el_pread_full(img->fd, w->buf, w->len, start);
	if (r < 0) {
		w->len = 0;
		el_error_set(err, r, EL_IMAGE_WHAT, start, "read failed: %s", strerror(-r));
		return NULL;
	}
	w->start = start;
	w->used = img->reads;
	return w;
}

int el_image_read_at(struct el_image *img, void *buf, size_t len, uint64_t off,
		     struct el_error *err)
{
	int r;

	if (!el_image_in_bounds(img, off, len))
		return el_image_corrupt(err, off,
					"%zu bytes needed here, but the image ends at byte %llu",
					len, (unsigned long long)img->size);
	if (len >= EL_IMAGE_WINDOW) {
		r = el_pread_full(img->fd, buf, len, off);
		if (r < 0)
			return el_error_set(err, r, EL_IMAGE_WHAT, off, "read failed: %s",
					    strerror(-r));
		return 0;
	}
	/* at most two windows */
	while (len) {
		const struct el_image_window *w = window_at(img, off, err);
		if (!w)
			return err->code;
		size_t at = (size_t)(off - w->start);
		size_t n = EL_MIN(len, w->len - at);
		memcpy(buf, w->buf + at, n);
		buf = (uint8_t *)buf + n;
		off += n;
		len -= n;
	}
	return 0;
}


int el_image_unified_device(const struct el_image *img, uint64_t blk, uint64_t nblocks)
{
	for (size_t i = 0; i < img->ndevs; i++) {
		const struct el_image_device *d = &img->devs[i];
		uint64_t end, dend;

		/* The kernel skips slots at uniaddr 0 (§8.2 case 2). */
		if (!d->uniaddr || blk < d->uniaddr)
			continue;
		if (el_add_overflow(blk, nblocks, &end) ||
		    el_add_overflow(d->uniaddr, d->blocks, &dend))
			continue;
		if (end <= dend)
			return (int)i;
	}
	return -1;
}

/* ---- superblock and device table (§2, §8.1) ---- */

static int image_size(int fd, uint64_t *ret, struct el_error *err)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return el_error_set(err, -errno, NULL, EL_NO_OFFSET, "fstat: %s", strerror(errno));
	if (S_ISREG(st.st_mode)) {
		*ret = (uint64_t)st.st_size;
		return 0;
	}
	if (S_ISBLK(st.st_mode)) {
		uint64_t sz;

		if (ioctl(fd, BLKGETSIZE64, &sz) < 0)
			return el_error_set(err, -errno, NULL, EL_NO_OFFSET, "BLKGETSIZE64: %s",
					    strerror(errno));
		*ret = sz;
		return 0;
	}
	return el_error_set(err, -EINVAL, NULL, EL_NO_OFFSET,
			    "not a regular file or a block device");
}

/* §2.2: crc32c of the rest of block 0 (or of one block from byte 1024 when
 * blocks are <= 1024 bytes), with the checksum field taken as zero. */
static int verify_sb_checksum(struct el_image *img, uint32_t stored, struct el_error *err)
{
	uint8_t buf[EL_IMAGE_MAX_BLKSZ];
	uint32_t len = img->blksz > EROFS_SUPER_OFFSET ? img->blksz - EROFS_SUPER_OFFSET
						      : img->blksz;
	int r;

	if (!el_image_in_bounds(img, EROFS_SUPER_OFFSET, len))
		return el_image_corrupt(err, EROFS_SUPER_OFFSET,
					"the checksummed superblock area (%u bytes) runs past the end of the image",
					len);
	r = el_image_read_at(img, buf, len, EROFS_SUPER_OFFSET, err);
	if (r < 0)
		return r;
	memset(buf + offsetof(struct erofs_super_block, checksum), 0, sizeof(uint32_t));
	img->info.checksum_ok = el_crc32c_update(0xFFFFFFFFu, buf, len) == stored;
	return 0;
}

static int parse_superblock(struct el_image *img, struct el_error *err)
{
	struct erofs_super_block sb;
	uint32_t magic, incompat, sb_size;
	unsigned bits;
	int r;

	if (img->size < EROFS_SUPER_OFFSET + sizeof(sb))
		return el_image_corrupt(err, 0, "%llu bytes are too few for an EROFS image",
					(unsigned long long)img->size);
	r = el_image_read_at(img, &sb, sizeof(sb), EROFS_SUPER_OFFSET, err);
	if (r < 0)
		return r;

	magic = EL_LE_GET(&sb, magic);
	if (magic != EROFS_SUPER_MAGIC_V1)
		return el_image_corrupt(err, EROFS_SUPER_OFFSET,
					"bad magic 0x%08x: not an EROFS image", magic);

	bits = sb.blkszbits;
	if (bits < 9 || bits > 12) {
		/* Up to 64 KiB is valid on large-page kernels, just not for us. */
		if (bits > 12 && bits <= 16)
			return el_error_set(err, -EOPNOTSUPP, EL_IMAGE_WHAT,
					    EROFS_SUPER_OFFSET +
						    offsetof(struct erofs_super_block, blkszbits),
					    "blocks of %u bytes are not supported (512..4096)",
					    1u << bits);
		return el_image_corrupt(err,
					EROFS_SUPER_OFFSET +
						offsetof(struct erofs_super_block, blkszbits),
					"invalid block size bits %u", bits);
	}
	img->blkszbits = bits;
	img->blksz = 1u << bits;

	if (sb.dirblkbits)
		return el_image_corrupt(err,
					EROFS_SUPER_OFFSET +
						offsetof(struct erofs_super_block, dirblkbits),
					"dirblkbits %u is not 0", sb.dirblkbits);

	incompat = EL_LE_GET(&sb, feature_incompat);
	if (incompat & ~INCOMPAT_KNOWN)
		return el_error_set(err, -EOPNOTSUPP, EL_IMAGE_WHAT,
				    EROFS_SUPER_OFFSET +
					    offsetof(struct erofs_super_block, feature_incompat),
				    "unknown incompatible features 0x%x",
				    incompat & ~INCOMPAT_KNOWN);
	if (incompat & ~INCOMPAT_READABLE)
		return el_error_set(err, -EOPNOTSUPP, EL_IMAGE_WHAT,
				    EROFS_SUPER_OFFSET +
					    offsetof(struct erofs_super_block, feature_incompat),
				    "incompatible features 0x%x (48-bit or metabox) are not supported",
				    incompat & ~INCOMPAT_READABLE);

	sb_size = sizeof(sb) + 16u * sb.sb_extslots;
	if (sb_size > SB_SIZE_MAX)
		return el_image_corrupt(err,
					EROFS_SUPER_OFFSET +
						offsetof(struct erofs_super_block, sb_extslots),
					"superblock of %u bytes (sb_extslots %u) is too large",
					sb_size, sb.sb_extslots);

	img->info.blkszbits = bits;
	img->info.blocks = EL_LE_GET(&sb, blocks_lo);
	img->info.image_size = img->size;
	img->info.inos = EL_LE_GET(&sb, inos);
	img->info.root_nid = EL_LE_GET(&sb, rootnid_2b);
	img->info.epoch = EL_LE_GET(&sb, epoch);
	img->info.fixed_nsec = EL_LE_GET(&sb, fixed_nsec);
	img->info.meta_blkaddr = EL_LE_GET(&sb, meta_blkaddr);
	img->info.xattr_blkaddr = EL_LE_GET(&sb, xattr_blkaddr);
	img->info.feature_compat = EL_LE_GET(&sb, feature_compat);
	img->info.feature_incompat = incompat;
	memcpy(img->info.uuid, sb.uuid, sizeof(sb.uuid));
	memcpy(img->info.volume_name, sb.volume_name, sizeof(sb.volume_name));
	img->info.volume_name[sizeof(sb.volume_name)] = '\0';
	img->xattr_filter_reserved = sb.xattr_filter_reserved;
	/* 32-bit block numbers shifted by at most 12 bits cannot overflow. */
	img->meta_base = (uint64_t)img->info.meta_blkaddr << bits;
	img->xattr_base = (uint64_t)img->info.xattr_blkaddr << bits;

	img->info.checksum_ok = true;
	if (img->info.feature_compat & EROFS_FEATURE_COMPAT_SB_CHKSUM)
		return verify_sb_checksum(img, EL_LE_GET(&sb, checksum), err);
	return 0;
}

static int parse_device_table(struct el_image *img, struct el_error *err)
{
	struct erofs_super_block sb;
	uint64_t pos;
	unsigned n, pow;
	int r;

	/* §8.2: without DEVICE_TABLE the kernel ignores extra_devices. */
	if (!(img->info.feature_incompat & EROFS_FEATURE_INCOMPAT_DEVICE_TABLE))
		return 0;
	r = el_image_read_at(img, &sb, sizeof(sb), EROFS_SUPER_OFFSET, err);
	if (r < 0)
		return r;
	n = EL_LE_GET(&sb, extra_devices);
	if (!n)
		return 0;
	pos = (uint64_t)EL_LE_GET(&sb, devt_slotoff) * sizeof(struct erofs_deviceslot);
	/* At most 65535 slots of 128 bytes, and only if the image holds them. */
	if (!el_image_in_bounds(img, pos, (uint64_t)n * sizeof(struct erofs_deviceslot)))
		return el_image_corrupt(err, pos,
					"device table of %u slots runs past the end of the image",
					n);
	img->devs = calloc(n, sizeof(*img->devs));
	if (!img->devs)
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	for (unsigned i = 0; i < n; i++) {
		struct erofs_deviceslot slot;

		r = el_image_read_at(img, &slot, sizeof(slot), pos + (uint64_t)i * sizeof(slot),
				     err);
		if (r < 0)
			return r;
		memcpy(img->devs[i].tag, slot.tag, sizeof(slot.tag));
		img->devs[i].tag[sizeof(slot.tag)] = '\0';
		/* The _hi halves only count with 48BIT, which we refuse. */
		img->devs[i].blocks = EL_LE_GET(&slot, blocks_lo);
		img->devs[i].uniaddr = EL_LE_GET(&slot, uniaddr_lo);
	}
	img->ndevs = n;
	img->info.extra_devices = (uint16_t)n;
	/* Kernel: roundup_pow_of_two(extra_devices + 1) - 1. */
	for (pow = 1; pow < n + 1; pow <<= 1)
		;
	img->device_id_mask = (uint16_t)(pow - 1);
	return 0;
}

int el_image_open_fd(int fd, struct el_image **ret, struct el_error *err)
{
	_cleanup_(el_image_closep) struct el_image *img = NULL;
	struct el_image_inode root;
	int r;

	img = calloc(1, sizeof(*img));
	if (!img)
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	img->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (img->fd < 0)
		return el_error_set(err, -errno, NULL, EL_NO_OFFSET, "dup: %s", strerror(errno));
	r = image_size(img->fd, &img->size, err);
	if (r < 0)
		return r;
	r = parse_superblock(img, err);
	if (r < 0)
		return r;
	r = parse_device_table(img, err);
	if (r < 0)
		return r;

	/* An image whose root is unreadable or not a directory is useless. */
	r = el_image_read_inode(img, img->info.root_nid, &root, err);
	if (r < 0)
		return r;
	if (!S_ISDIR(root.mode))
		return el_image_corrupt(err, root.inode_off,
					"root inode (nid %llu) is not a directory",
					(unsigned long long)root.nid);
	*ret = EL_TAKE_PTR(img);
	return 0;
}

int el_image_open(const char *path, struct el_image **ret, struct el_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return el_error_set(err, -errno, NULL, EL_NO_OFFSET, "%s", strerror(errno));
	return el_image_open_fd(fd, ret, err);
}

void el_image_close(struct el_image *img)
{
	if (!img)
		return;
	el_closep(&img->fd);
	for (size_t i = 0; i < EL_IMAGE_WINDOWS; i++)
		free(img->win[i].buf);
	free(img->devs);
	free(img);
}

const struct el_image_info *el_image_info(const struct el_image *img)
{
	return &img->info;
}

const struct el_image_device *el_image_devices(const struct el_image *img, size_t *ret_count)
{
	*ret_count = img->ndevs;
	return img->ndevs ? img->devs : NULL;
}

/* ---- inodes (§3) ---- */

int el_image_read_inode(struct el_image *img, uint64_t nid, struct el_image_inode *ret,
			struct el_error *err)
{
	struct el_image_inode ino = { .nid = nid };
	union {
		struct erofs_inode_compact c;
		struct erofs_inode_extended e;
	} raw;
	uint64_t off;
	uint16_t fmt;
	unsigned layout;
	int r;

	if (nid > (UINT64_MAX >> EROFS_ISLOTBITS) ||
	    el_add_overflow(img->meta_base, nid << EROFS_ISLOTBITS, &off))
		return el_image_corrupt(err, EL_NO_OFFSET, "nid %llu is out of range",
					(unsigned long long)nid);
	if (!el_image_in_bounds(img, off, sizeof(raw.c)))
		return el_image_corrupt(err, off, "inode %llu lies beyond the end of the image",
					(unsigned long long)nid);
	r = el_image_read_at(img, &raw.c, sizeof(raw.c), off, err);
	if (r < 0)
		return r;

	fmt = (uint16_t)EL_LE_GET(&raw.c, i_format);
	/* §3.1: bit 4 (NLINK_1 / DOT_OMITTED) only exists in 48-bit images,
	 * which we refuse; bits 5-15 are reserved. */
	if (fmt & ~EROFS_I_ALL_COMPAT)
		return el_image_corrupt(err, off, "inode %llu: unsupported i_format 0x%04x",
					(unsigned long long)nid, fmt);
	layout = (fmt >> EROFS_I_DATALAYOUT_BIT) & 7;
	if (layout > EROFS_INODE_CHUNK_BASED)
		return el_image_corrupt(err, off, "inode %llu: unknown data layout %u",
					(unsigned long long)nid, layout);
	ino.format = fmt;
	ino.datalayout = (uint8_t)layout;
	ino.inode_off = off;
	ino.xattr_icount = (uint16_t)EL_LE_GET(&raw.c, i_xattr_icount);
	ino.mode = EL_LE_GET(&raw.c, i_mode);

	if (fmt & (1u << EROFS_I_VERSION_BIT)) {
		if (!el_image_in_bounds(img, off, sizeof(raw.e)))
			return el_image_corrupt(err, off,
						"inode %llu lies beyond the end of the image",
						(unsigned long long)nid);
		r = el_image_read_at(img, (uint8_t *)&raw + sizeof(raw.c),
				     sizeof(raw.e) - sizeof(raw.c), off + sizeof(raw.c), err);
		if (r < 0)
			return r;
		ino.extended = true;
		ino.inode_isize = sizeof(raw.e);
		ino.size = EL_LE_GET(&raw.e, i_size);
		ino.raw_u = EL_LE_GET(&raw.e, i_u);
		ino.uid = EL_LE_GET(&raw.e, i_uid);
		ino.gid = EL_LE_GET(&raw.e, i_gid);
		ino.mtime = (int64_t)EL_LE_GET(&raw.e, i_mtime);
		ino.mtime_nsec = EL_LE_GET(&raw.e, i_mtime_nsec);
		ino.nlink = EL_LE_GET(&raw.e, i_nlink);
		/* 6.15+ kernels take an extended inode's i_nb as the high 16
		 * bits of its start block even in non-48-bit images, older
		 * ones ignore it: nonzero, the data address is ambiguous. */
		if (EL_LE_GET(&raw.e, i_nb) &&
		    (S_ISREG(ino.mode) || S_ISDIR(ino.mode) || S_ISLNK(ino.mode)))
			return el_image_corrupt(err, off + offsetof(struct erofs_inode_extended, i_nb),
						"inode %llu: i_nb (start block high bits) is %u without 48-bit addressing",
						(unsigned long long)nid,
						(unsigned)EL_LE_GET(&raw.e, i_nb));
	} else {
		ino.inode_isize = sizeof(raw.c);
		ino.size = EL_LE_GET(&raw.c, i_size);
		ino.raw_u = EL_LE_GET(&raw.c, i_u);
		ino.uid = EL_LE_GET(&raw.c, i_uid);
		ino.gid = EL_LE_GET(&raw.c, i_gid);
		/* §2.3: compact mtimes count from the superblock epoch
		 * (0 in every image written before 6.15 made it a field). */
		ino.mtime = (int64_t)(img->info.epoch + EL_LE_GET(&raw.c, i_mtime));
		ino.mtime_nsec = img->info.fixed_nsec;
		ino.nlink = EL_LE_GET(&raw.c, i_nb);
	}

	/* The kernel keeps sizes in a signed loff_t and refuses the rest. */
	if (ino.size > INT64_MAX)
		return el_image_corrupt(err, off, "inode %llu: negative size",
					(unsigned long long)nid);
	if (erofs_ftype_of_mode(ino.mode) == EROFS_FT_UNKNOWN)
		return el_image_corrupt(err, off, "inode %llu: invalid file type in mode 0%o",
					(unsigned long long)nid, ino.mode);
	if (S_ISCHR(ino.mode) || S_ISBLK(ino.mode)) {
		/* §3.4: Linux "new" dev_t encoding. */
		unsigned maj = (ino.raw_u & 0xfff00u) >> 8;
		unsigned min = (ino.raw_u & 0xffu) | ((ino.raw_u >> 12) & 0xfff00u);

		ino.rdev = (uint32_t)makedev(maj, min);
	}

	ino.xattr_isize = (uint32_t)erofs_xattr_ibody_size(ino.xattr_icount);
	if (!el_image_in_bounds(img, off, (uint64_t)ino.inode_isize + ino.xattr_isize))
		return el_image_corrupt(err, off,
					"inode %llu: its %u bytes of xattrs run past the end of the image",
					(unsigned long long)nid, ino.xattr_isize);
	*ret = ino;
	return 0;
}

/* ---- data (§4) ---- */

int el_image_chunk_array(const struct el_image *img, const struct el_image_inode *ino,
			 uint64_t *ret_pos, unsigned *ret_unit, unsigned *ret_chunkbits,
			 struct el_error *err)
{
	/* i_u's low 16 bits are the chunk format, the high 16 are reserved. */
	unsigned format = ino->raw_u & 0xffffu;
	unsigned unit;

	if (format & ~CHUNK_FORMAT_ALL)
		return el_image_corrupt(err, ino->inode_off,
					"inode %llu: unknown chunk format 0x%04x",
					(unsigned long long)ino->nid, format);
	if (format & EROFS_CHUNK_FORMAT_48BIT)
		return el_error_set(err, -EOPNOTSUPP, EL_IMAGE_WHAT, ino->inode_off,
				    "inode %llu: 48-bit chunk indexes are not supported",
				    (unsigned long long)ino->nid);
	unit = format & EROFS_CHUNK_FORMAT_INDEXES ? sizeof(struct erofs_inode_chunk_index)
						   : sizeof(uint32_t);
	/* §4.3: the array is aligned to its entry size in absolute position;
	 * read_inode checked that inode + xattrs lie inside the image, so the
	 * sum cannot overflow. */
	*ret_pos = EL_ROUND_UP(ino->inode_off + ino->inode_isize + ino->xattr_isize,
			       (uint64_t)unit);
	*ret_unit = unit;
	*ret_chunkbits = img->blkszbits + (format & EROFS_CHUNK_FORMAT_BLKBITS_MASK);
	return 0;
}

static int map_chunk(struct el_image *img, const struct el_image_inode *ino, uint64_t off,
		     struct el_image_extent *ext, struct el_error *err)
{
	uint8_t raw[sizeof(struct erofs_inode_chunk_index)];
	uint64_t pos, chunknr;
	unsigned unit, chunkbits;
	uint32_t blk;
	int r;

	r = el_image_chunk_array(img, ino, &pos, &unit, &chunkbits, err);
	if (r < 0)
		return r;
	chunknr = off >> chunkbits;
	/* chunknr < 2^55 and unit <= 8, so the product fits; the sum might
	 * not for a hostile size. */
	if (el_add_overflow(pos, chunknr * unit, &pos))
		return el_image_corrupt(err, ino->inode_off,
					"inode %llu: chunk index array out of range",
					(unsigned long long)ino->nid);
	r = el_image_read_at(img, raw, unit, pos, err);
	if (r < 0)
		return r;

	ext->logical = chunknr << chunkbits;
	ext->length = EL_MIN(ino->size - ext->logical, (uint64_t)1 << chunkbits);
	ext->device_id = 0;
	if (unit == sizeof(uint32_t)) {
		blk = el_get_le32(raw);
	} else {
		const struct erofs_inode_chunk_index *ci = (const void *)raw;
		unsigned dev = EL_LE_GET(ci, device_id);

		blk = EL_LE_GET(ci, startblk_lo);
		/* §4.3: the kernel masks device_id; an id past the table
		 * after masking has no device to read from. */
		ext->device_id = (uint16_t)(dev & img->device_id_mask);
		if (blk != EROFS_NULL_ADDR && ext->device_id > img->ndevs)
			return el_image_corrupt(err, pos,
						"inode %llu: chunk index names device %u, but the image has %zu extra devices",
						(unsigned long long)ino->nid, dev, img->ndevs);
	}
	if (blk == EROFS_NULL_ADDR) {
		ext->kind = EL_EXTENT_HOLE;
		ext->physical = 0;
		ext->device_id = 0;
	} else {
		ext->kind = EL_EXTENT_DATA;
		ext->physical = (uint64_t)blk << img->blkszbits;
	}
	return 0;
}

int el_image_map(struct el_image *img, const struct el_image_inode *ino, uint64_t off,
		 struct el_image_extent *ret, struct el_error *err)
{
	struct el_image_extent ext = { 0 };
	uint64_t tail_start;
	int r;

	if (off >= ino->size)
		return el_error_set(err, -EINVAL, NULL, EL_NO_OFFSET,
				    "offset %llu is past the end of inode %llu",
				    (unsigned long long)off, (unsigned long long)ino->nid);

	switch (ino->datalayout) {
	case EROFS_INODE_FLAT_PLAIN:
		ext.logical = 0;
		ext.length = ino->size;
		/* §3.4: a NULL start block is an all-hole file (6.15+). */
		if (ino->raw_u == EROFS_NULL_ADDR) {
			ext.kind = EL_EXTENT_HOLE;
		} else {
			ext.kind = EL_EXTENT_DATA;
			ext.physical = (uint64_t)ino->raw_u << img->blkszbits;
		}
		break;
	case EROFS_INODE_FLAT_INLINE:
		/* §4.2: every block but the last at startblk, the last one
		 * (1..blksz bytes) right after inode and xattrs. */
		tail_start = ((ino->size - 1) >> img->blkszbits) << img->blkszbits;
		if (off < tail_start) {
			if (ino->raw_u == EROFS_NULL_ADDR)
				return el_image_corrupt(err, ino->inode_off,
							"inode %llu: FLAT_INLINE blocks at a NULL address",
							(unsigned long long)ino->nid);
			ext.logical = 0;
			ext.length = tail_start;
			ext.kind = EL_EXTENT_DATA;
			ext.physical = (uint64_t)ino->raw_u << img->blkszbits;
		} else {
			ext.logical = tail_start;
			ext.length = ino->size - tail_start;
			ext.kind = EL_EXTENT_INLINE;
			ext.physical = ino->inode_off + ino->inode_isize + ino->xattr_isize;
			if ((ext.physical & (img->blksz - 1)) + ext.length > img->blksz)
				return el_image_corrupt(err, ext.physical,
							"inode %llu: %llu bytes of inline data cross a block boundary",
							(unsigned long long)ino->nid,
							(unsigned long long)ext.length);
		}
		break;
	case EROFS_INODE_CHUNK_BASED:
		r = map_chunk(img, ino, off, &ext, err);
		if (r < 0)
			return r;
		break;
	default:
		return el_error_set(err, -EOPNOTSUPP, EL_IMAGE_WHAT, ino->inode_off,
				    "inode %llu: compressed data (layout %u) is not supported",
				    (unsigned long long)ino->nid, ino->datalayout);
	}
	*ret = ext;
	return 0;
}

/* Reads len bytes at physical offset phys of device dev into buf. */
static int read_device(struct el_image *img, uint16_t dev, void *buf, size_t len, uint64_t phys,
		       const struct el_image_inode *ino, struct el_error *err)
{
	uint64_t blk = phys >> img->blkszbits;
	int slot;

	if (dev)
		return el_error_set(err, -ENXIO, EL_IMAGE_WHAT, EL_NO_OFFSET,
				    "inode %llu: data lies on extra device %u (tag \"%s\"), not in this image",
				    (unsigned long long)ino->nid, dev, img->devs[dev - 1].tag);
	if (el_image_in_bounds(img, phys, len))
		return el_image_read_at(img, buf, len, phys, err);
	/* Unified addressing (§8.2): beyond the primary image may be a slot. */
	slot = el_image_unified_device(img, blk, 1);
	if (slot >= 0)
		return el_error_set(err, -ENXIO, EL_IMAGE_WHAT, EL_NO_OFFSET,
				    "inode %llu: block %llu lies on extra device %d (tag \"%s\"), not in this image",
				    (unsigned long long)ino->nid, (unsigned long long)blk,
				    slot + 1, img->devs[slot].tag);
	return el_image_corrupt(err, phys,
				"inode %llu: data lies beyond the end of the image (%llu bytes)",
				(unsigned long long)ino->nid, (unsigned long long)img->size);
}

/* Copies [off, off+len) of the file out of extent ext, which holds it. */
static int read_extent(struct el_image *img, const struct el_image_inode *ino,
		       const struct el_image_extent *ext, void *buf, size_t len, uint64_t off,
		       struct el_error *err)
{
	uint64_t delta = off - ext->logical;

	switch (ext->kind) {
	case EL_EXTENT_HOLE:
		memset(buf, 0, len);
		return 0;
	case EL_EXTENT_INLINE:
		return el_image_read_at(img, buf, len, ext->physical + delta, err);
	default:
		if (el_add_overflow(ext->physical, delta, &delta))
			return el_image_corrupt(err, ino->inode_off,
						"inode %llu: data address out of range",
						(unsigned long long)ino->nid);
		return read_device(img, ext->device_id, buf, len, delta, ino, err);
	}
}

ssize_t el_image_pread(struct el_image *img, const struct el_image_inode *ino, void *buf,
		       size_t len, uint64_t off, struct el_error *err)
{
	uint8_t *p = buf;
	size_t done = 0;
	int r;

	if (off >= ino->size)
		return 0;
	len = EL_MIN(len, (size_t)SSIZE_MAX);
	if (len > ino->size - off)
		len = (size_t)(ino->size - off);

	while (done < len) {
		struct el_image_extent ext;
		uint64_t avail;
		size_t n;

		r = el_image_map(img, ino, off, &ext, err);
		if (r < 0)
			return r;
		/* Every mapping covers off, so each turn makes progress; the
		 * check keeps a mapping bug from becoming an endless loop. */
		if (off < ext.logical || off - ext.logical >= ext.length)
			return el_image_corrupt(err, ino->inode_off,
						"inode %llu: no mapping for offset %llu",
						(unsigned long long)ino->nid,
						(unsigned long long)off);
		avail = ext.length - (off - ext.logical);
		n = (size_t)EL_MIN((uint64_t)(len - done), avail);
		r = read_extent(img, ino, &ext, p + done, n, off, err);
		if (r < 0)
			return r;
		done += n;
		off += n;
	}
	return (ssize_t)done;
}

int el_image_file_extent(struct el_image *img, const struct el_image_inode *ino,
			 uint64_t *ret_startblk, uint64_t *ret_nblocks, struct el_error *err)
{
	uint64_t nblocks;

	if (!S_ISREG(ino->mode))
		return el_error_set(err, -EINVAL, NULL, EL_NO_OFFSET,
				    "inode %llu is not a regular file",
				    (unsigned long long)ino->nid);
	if (ino->datalayout != EROFS_INODE_FLAT_PLAIN)
		return el_error_set(err, -EOPNOTSUPP, EL_IMAGE_WHAT, ino->inode_off,
				    "inode %llu: data layout %u is not FLAT_PLAIN",
				    (unsigned long long)ino->nid, ino->datalayout);
	if (!ino->size) {
		*ret_startblk = 0;
		*ret_nblocks = 0;
		return 0;
	}
	if (ino->raw_u == EROFS_NULL_ADDR)
		return el_error_set(err, -EOPNOTSUPP, EL_IMAGE_WHAT, ino->inode_off,
				    "inode %llu: all-hole FLAT_PLAIN file",
				    (unsigned long long)ino->nid);
	nblocks = EL_DIV_ROUND_UP(ino->size, (uint64_t)img->blksz);
	if (!el_image_in_bounds(img, (uint64_t)ino->raw_u << img->blkszbits,
				nblocks << img->blkszbits))
		return el_image_corrupt(err, ino->inode_off,
					"inode %llu: %llu bytes of data at block %u run past the end of the image",
					(unsigned long long)ino->nid, (unsigned long long)ino->size,
					ino->raw_u);
	*ret_startblk = ino->raw_u;
	*ret_nblocks = nblocks;
	return 0;
}

/* ---- directories (§5) ---- */

int el_image_dir_nblocks(struct el_image *img, const struct el_image_inode *dir,
			 uint64_t *ret, struct el_error *err)
{
	if (!S_ISDIR(dir->mode))
		return el_error_set(err, -ENOTDIR, NULL, EL_NO_OFFSET,
				    "inode %llu is not a directory",
				    (unsigned long long)dir->nid);
	/* A directory cannot hold more than the image; this bounds every
	 * walk over its blocks. */
	if (dir->size > img->size)
		return el_image_corrupt(err, dir->inode_off,
					"directory %llu: size %llu exceeds the image size",
					(unsigned long long)dir->nid,
					(unsigned long long)dir->size);
	*ret = EL_DIV_ROUND_UP(dir->size, (uint64_t)img->blksz);
	return 0;
}

int el_image_dirblock(struct el_image *img, const struct el_image_inode *dir, uint64_t blk,
		      struct el_dirblock *ret, struct el_error *err)
{
	struct el_image_extent ext;
	uint64_t start, nblocks = 0, base;
	unsigned nameoff0, count;
	int r;

	r = el_image_dir_nblocks(img, dir, &nblocks, err);
	if (r < 0)
		return r;
	if (blk >= nblocks)
		return el_error_set(err, -EINVAL, NULL, EL_NO_OFFSET,
				    "directory %llu has no block %llu",
				    (unsigned long long)dir->nid, (unsigned long long)blk);
	start = blk << img->blkszbits;
	ret->len = (uint32_t)EL_MIN((uint64_t)img->blksz, dir->size - start);

	r = el_image_map(img, dir, start, &ext, err);
	if (r < 0)
		return r;
	/* Extents are whole blocks (or the whole tail), so a block never
	 * straddles two of them. */
	if (start < ext.logical || start - ext.logical + ret->len > ext.length)
		return el_image_corrupt(err, dir->inode_off,
					"directory %llu: block %llu is split between extents",
					(unsigned long long)dir->nid, (unsigned long long)blk);
	r = read_extent(img, dir, &ext, ret->buf, ret->len, start, err);
	if (r < 0)
		return r;
	ret->kind = ext.kind;
	ret->phys = ext.kind != EL_EXTENT_HOLE && !ext.device_id
			    ? ext.physical + (start - ext.logical)
			    : EL_NO_OFFSET;
	base = ret->phys;

	if (ret->len < sizeof(struct erofs_dirent))
		return el_image_corrupt(err, base,
					"directory %llu: block %llu holds only %u bytes",
					(unsigned long long)dir->nid, (unsigned long long)blk,
					ret->len);
	nameoff0 = el_get_le16(ret->buf + offsetof(struct erofs_dirent, nameoff));
	if (nameoff0 < sizeof(struct erofs_dirent) || nameoff0 >= ret->len)
		return el_image_corrupt(err, base,
					"directory %llu: block %llu has invalid nameoff0 %u",
					(unsigned long long)dir->nid, (unsigned long long)blk,
					nameoff0);
	count = nameoff0 / sizeof(struct erofs_dirent);

	for (unsigned i = 0; i < count; i++) {
		const uint8_t *de = ret->buf + i * sizeof(struct erofs_dirent);
		struct el_dirblock_entry *e = &ret->ents[i];
		unsigned nameoff = el_get_le16(de + offsetof(struct erofs_dirent, nameoff));
		unsigned end;

		if (i + 1 < count) {
			end = el_get_le16(de + sizeof(struct erofs_dirent) +
					  offsetof(struct erofs_dirent, nameoff));
		} else {
			/* §5.1: the last name ends at the first NUL or at the
			 * end of the valid bytes. */
			end = nameoff < ret->len
				      ? nameoff + (unsigned)strnlen((const char *)ret->buf + nameoff,
								    ret->len - nameoff)
				      : nameoff;
		}
		if (nameoff < nameoff0 || end > ret->len || end <= nameoff ||
		    end - nameoff > EROFS_NAME_LEN)
			return el_image_corrupt(err,
						base == EL_NO_OFFSET
							? EL_NO_OFFSET
							: base + i * sizeof(struct erofs_dirent),
						"directory %llu: dirent %u of block %llu has a bad name (offset %u, end %u)",
						(unsigned long long)dir->nid, i,
						(unsigned long long)blk, nameoff, end);
		e->nid = el_get_le64(de + offsetof(struct erofs_dirent, nid));
		e->nameoff = (uint16_t)nameoff;
		e->namelen = (uint16_t)(end - nameoff);
		e->file_type = de[offsetof(struct erofs_dirent, file_type)];
	}
	ret->count = count;
	return 0;
}

int el_image_readdir(struct el_image *img, const struct el_image_inode *dir,
		     el_image_dirent_fn fn, void *ud, struct el_error *err)
{
	_cleanup_free_ struct el_dirblock *db = NULL;
	struct el_image_dirent de;
	uint64_t nblocks = 0;
	int r;

	r = el_image_dir_nblocks(img, dir, &nblocks, err);
	if (r < 0)
		return r;
	db = malloc(sizeof(*db));
	if (!db)
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	for (uint64_t b = 0; b < nblocks; b++) {
		r = el_image_dirblock(img, dir, b, db, err);
		if (r < 0)
			return r;
		for (unsigned i = 0; i < db->count; i++) {
			const struct el_dirblock_entry *e = &db->ents[i];

			de.nid = e->nid;
			de.file_type = e->file_type;
			de.name_len = e->namelen;
			memcpy(de.name, db->buf + e->nameoff, e->namelen);
			de.name[e->namelen] = '\0';
			r = fn(ud, &de);
			if (r)
				return r;
		}
	}
	return 0;
}

/* §5.1 order: unsigned bytes, a prefix sorts first. */
static int namecmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int c = memcmp(a, b, EL_MIN(alen, blen));

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* Finds name in dir like the kernel does: binary search over the blocks by
 * their first and last names, then over the dirents of one block. */
static int dir_find(struct el_image *img, const struct el_image_inode *dir, const char *name,
		    size_t len, uint64_t *ret_nid, struct el_error *err)
{
	_cleanup_free_ struct el_dirblock *db = NULL;
	const uint8_t *n = (const uint8_t *)name;
	uint64_t lo = 0, hi = 0;
	int r;

	r = el_image_dir_nblocks(img, dir, &hi, err);
	if (r < 0)
		return r;
	db = malloc(sizeof(*db));
	if (!db)
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		const struct el_dirblock_entry *first, *last;
		unsigned elo, ehi;

		r = el_image_dirblock(img, dir, mid, db, err);
		if (r < 0)
			return r;
		first = &db->ents[0];
		last = &db->ents[db->count - 1];
		if (namecmp(n, len, db->buf + first->nameoff, first->namelen) < 0) {
			hi = mid;
			continue;
		}
		if (namecmp(n, len, db->buf + last->nameoff, last->namelen) > 0) {
			lo = mid + 1;
			continue;
		}
		elo = 0;
		ehi = db->count;
		while (elo < ehi) {
			unsigned m = elo + (ehi - elo) / 2;
			const struct el_dirblock_entry *e = &db->ents[m];
			int c = namecmp(n, len, db->buf + e->nameoff, e->namelen);

			if (!c) {
				*ret_nid = e->nid;
				return 0;
			}
			if (c < 0)
				ehi = m;
			else
				elo = m + 1;
		}
		break;
	}
	return -ENOENT;
}

int el_image_lookup(struct el_image *img, const char *path, struct el_image_inode *ret,
		    struct el_error *err)
{
	_cleanup_free_ char *work = strdup(path);
	struct el_image_inode cur, root;
	unsigned hops = 0;
	char *p;
	int r;

	if (!work)
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	r = el_image_read_inode(img, img->info.root_nid, &root, err);
	if (r < 0)
		return r;
	cur = root;
	p = work;

	for (;;) {
		struct el_image_inode child;
		uint64_t nid = 0;
		bool follow;
		size_t len;
		char *rest;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		len = strcspn(p, "/");
		rest = p + len;
		/* As in POSIX, a symlink is followed unless it is the last
		 * component, and a trailing slash makes it not the last. */
		follow = *rest == '/';
		while (*rest == '/')
			rest++;
		if (len > EROFS_NAME_LEN)
			return el_error_set(err, -ENAMETOOLONG, NULL, EL_NO_OFFSET,
					    "%s: name too long", path);
		if (!S_ISDIR(cur.mode))
			return el_error_set(err, -ENOTDIR, NULL, EL_NO_OFFSET,
					    "%s: not a directory", path);
		if (len == 1 && p[0] == '.') {
			p = rest;
			continue;
		}
		/* "..", like any name, resolves through the dirent that the
		 * directory holds (the root's points to itself). */
		r = dir_find(img, &cur, p, len, &nid, err);
		if (r == -ENOENT)
			return el_error_set(err, -ENOENT, NULL, EL_NO_OFFSET,
					    "%s: no such file or directory", path);
		if (r < 0)
			return r;
		r = el_image_read_inode(img, nid, &child, err);
		if (r < 0)
			return r;

		if (S_ISLNK(child.mode) && follow) {
			_cleanup_free_ char *next = NULL;
			size_t restlen = strlen(rest);
			ssize_t n;

			if (++hops > LOOKUP_MAX_SYMLINKS)
				return el_error_set(err, -ELOOP, NULL, EL_NO_OFFSET,
						    "%s: too many levels of symbolic links", path);
			if (!child.size || child.size > SYMLINK_MAX)
				return el_image_corrupt(err, child.inode_off,
							"symlink %llu has a target of %llu bytes",
							(unsigned long long)child.nid,
							(unsigned long long)child.size);
			next = malloc(child.size + 1 + restlen + 1);
			if (!next)
				return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET,
						    "out of memory");
			n = el_image_pread(img, &child, next, child.size, 0, err);
			if (n < 0)
				return (int)n;
			/* The '/' keeps a trailing slash in force for the target. */
			next[n] = '/';
			memcpy(next + n + 1, rest, restlen + 1);
			/* A relative target resolves from the directory that
			 * holds the link, an absolute one from the root. */
			if (next[0] == '/')
				cur = root;
			free(work);
			work = EL_TAKE_PTR(next);
			p = work;
			continue;
		}
		/* A trailing slash asks for a directory. */
		if (follow && !*rest && !S_ISDIR(child.mode))
			return el_error_set(err, -ENOTDIR, NULL, EL_NO_OFFSET,
					    "%s: not a directory", path);
		cur = child;
		p = rest;
	}
	*ret = cur;
	return 0;
}

/* ---- xattrs (§6) ---- */

/*
 * Fills xa from one entry (header, name suffix, value) held in buf, which
 * has room for it. Names are rebuilt with the short prefix table; a NUL in a
 * name would make it ambiguous, so it is refused.
 */
static int fill_xattr(struct el_image_xattr *xa, const uint8_t *entry, bool shared, uint64_t off,
		      struct el_error *err)
{
	const struct erofs_xattr_entry *e = (const void *)entry;
	unsigned nlen = e->e_name_len, idx = e->e_name_index;
	unsigned vlen = EL_LE_GET(e, e_value_size);
	const char *prefix = "";
	size_t plen;

	if (idx & EROFS_XATTR_LONG_PREFIX)
		return el_error_set(err, -EOPNOTSUPP, EL_IMAGE_WHAT, off,
				    "xattr with long name prefix %u is not supported",
				    idx & ~EROFS_XATTR_LONG_PREFIX);
	if (idx < EL_ARRAY_SIZE(xattr_prefixes) && xattr_prefixes[idx])
		prefix = xattr_prefixes[idx];
	if (memchr(entry + sizeof(*e), '\0', nlen))
		return el_image_corrupt(err, off, "xattr name contains a NUL byte");
	plen = strlen(prefix);
	memcpy(xa->name, prefix, plen);
	memcpy(xa->name + plen, entry + sizeof(*e), nlen);
	xa->name[plen + nlen] = '\0';
	xa->name_index = (uint8_t)idx;
	xa->prefix_len = (uint8_t)plen;
	xa->shared = shared;
	xa->offset = off;
	xa->value_len = (uint16_t)vlen;
	memcpy(xa->value, entry + sizeof(*e) + nlen, vlen);
	return 0;
}

int el_image_xattrs(struct el_image *img, const struct el_image_inode *ino,
		    el_image_xattr_fn fn, void *ud, struct el_error *err)
{
	_cleanup_free_ uint8_t *area = NULL, *entry = NULL;
	_cleanup_free_ struct el_image_xattr *xa = NULL;
	uint64_t base = ino->inode_off + ino->inode_isize;
	size_t size = ino->xattr_isize, pos;
	unsigned shared;
	int r;

	if (!ino->xattr_icount)
		return 0;
	/* §6.1: the kernel refuses a header-only area. */
	if (ino->xattr_icount == 1)
		return el_image_corrupt(err, ino->inode_off,
					"inode %llu: xattr_icount 1 (header without entries)",
					(unsigned long long)ino->nid);
	/* read_inode checked that the area (at most 256 KiB) is in the image. */
	area = malloc(size);
	entry = malloc(XATTR_ENTRY_MAX);
	xa = malloc(sizeof(*xa));
	if (!area || !entry || !xa)
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	r = el_image_read_at(img, area, size, base, err);
	if (r < 0)
		return r;

	shared = area[offsetof(struct erofs_xattr_ibody_header, h_shared_count)];
	pos = sizeof(struct erofs_xattr_ibody_header) + 4u * shared;
	if (pos > size)
		return el_image_corrupt(err, base,
					"inode %llu: %u shared xattr ids overflow a %zu-byte xattr area",
					(unsigned long long)ino->nid, shared, size);

	for (unsigned i = 0; i < shared; i++) {
		uint32_t id = el_get_le32(area + sizeof(struct erofs_xattr_ibody_header) + 4u * i);
		/* id * 4 < 2^34 and the base < 2^44: no overflow. */
		uint64_t off = img->xattr_base + (uint64_t)id * 4u;
		const struct erofs_xattr_entry *e = (const void *)entry;
		size_t esz;

		if (!el_image_in_bounds(img, off, sizeof(*e)))
			return el_image_corrupt(err, base + sizeof(struct erofs_xattr_ibody_header) + 4u * i,
						"inode %llu: shared xattr id %u points past the end of the image",
						(unsigned long long)ino->nid, id);
		r = el_image_read_at(img, entry, sizeof(*e), off, err);
		if (r < 0)
			return r;
		esz = sizeof(*e) + e->e_name_len + EL_LE_GET(e, e_value_size);
		if (!el_image_in_bounds(img, off, esz))
			return el_image_corrupt(err, off,
						"inode %llu: shared xattr %u runs past the end of the image",
						(unsigned long long)ino->nid, id);
		r = el_image_read_at(img, entry + sizeof(*e), esz - sizeof(*e), off + sizeof(*e),
				     err);
		if (r < 0)
			return r;
		r = fill_xattr(xa, entry, true, off, err);
		if (r < 0)
			return r;
		r = fn(ud, xa);
		if (r)
			return r;
	}

	while (pos < size) {
		const struct erofs_xattr_entry *e = (const void *)(area + pos);
		size_t esz;

		if (size - pos < sizeof(*e))
			return el_image_corrupt(err, base + pos,
						"inode %llu: truncated xattr entry",
						(unsigned long long)ino->nid);
		esz = erofs_xattr_entry_size(e->e_name_len, EL_LE_GET(e, e_value_size));
		if (esz > size - pos)
			return el_image_corrupt(err, base + pos,
						"inode %llu: xattr entry of %zu bytes overflows the xattr area",
						(unsigned long long)ino->nid, esz);
		r = fill_xattr(xa, area + pos, false, base + pos, err);
		if (r < 0)
			return r;
		r = fn(ud, xa);
		if (r)
			return r;
		pos += esz;
	}
	return 0;
}
