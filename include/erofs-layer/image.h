/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading EROFS images in user space, without mounting them: the readers of
 * `erofs-layer ls|cat|check` and the input side of merge. Every byte read from
 * the image is treated as hostile: all offsets are bounds-checked against the
 * image size, loops are bounded, and a bad image yields -EFSCORRUPTED (EUCLEAN)
 * with an el_error naming the byte offset and the problem.
 *
 * An open el_image holds no state that reads change (everything goes through
 * pread), so several threads may read from one at once.
 */
#ifndef EROFS_LAYER_IMAGE_H
#define EROFS_LAYER_IMAGE_H

#include "export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

#ifndef EFSCORRUPTED
#define EFSCORRUPTED EUCLEAN
#endif

struct el_image;

struct el_image_info {
	uint32_t blkszbits;
	uint64_t blocks;       /* blocks of the primary device */
	uint64_t image_size;   /* bytes of the file */
	uint64_t inos;
	uint64_t root_nid;
	uint64_t epoch;
	uint32_t meta_blkaddr;
	uint32_t xattr_blkaddr;
	uint32_t feature_compat;
	uint32_t feature_incompat;
	uint16_t extra_devices; /* 0 unless incompat DEVICE_TABLE is set */
	uint8_t uuid[16];
	bool checksum_ok; /* true also when the image carries no checksum */
	uint32_t fixed_nsec; /* nanoseconds of every compact inode's mtime */
	char volume_name[17]; /* NUL-terminated label */
};

/* One slot of the device table (§8.1); chunk indexes name it as device_id =
 * slot index + 1. */
struct el_image_device {
	char tag[65]; /* the 64-byte tag, NUL-terminated */
	uint64_t blocks; /* size of that device in blocks */
	uint64_t uniaddr; /* its first block in the unified address space */
};

struct el_image_inode {
	uint64_t nid;
	uint16_t format; /* i_format as stored */
	uint32_t mode;
	uint32_t uid, gid;
	uint32_t nlink;
	uint64_t size;
	int64_t mtime;
	uint32_t mtime_nsec;
	uint32_t rdev; /* decoded dev_t for chr/blk (major/minor via makedev) */
	uint8_t datalayout;
	bool extended;
	uint16_t xattr_icount;
	uint32_t raw_u; /* i_u as stored */
	uint64_t inode_off; /* byte offset of the inode in the image */
	uint32_t inode_isize, xattr_isize;
};

struct el_image_dirent {
	uint64_t nid;
	uint8_t file_type;
	uint16_t name_len;
	char name[256]; /* NUL-terminated copy */
};

struct el_image_xattr {
	char name[300]; /* full name with prefix, NUL-terminated */
	uint8_t name_index; /* e_name_index as stored (0: name stored whole) */
	uint8_t prefix_len; /* leading bytes of name that come from the index */
	bool shared;
	uint64_t offset; /* byte offset of the entry header in the image */
	uint16_t value_len;
	uint8_t value[65536];
};

/* Opens and validates the superblock. */
EL_EXPORT int el_image_open(const char *path, struct el_image **ret, struct el_error *err);
EL_EXPORT int el_image_open_fd(int fd, struct el_image **ret, struct el_error *err); /* dups fd */
EL_EXPORT void el_image_close(struct el_image *img);
EL_EXPORT const struct el_image_info *el_image_info(const struct el_image *img);
/* The device table, in slot order (NULL and 0 without one). The array lives
 * as long as img. */
EL_EXPORT const struct el_image_device *el_image_devices(const struct el_image *img, size_t *ret_count);

EL_EXPORT int el_image_read_inode(struct el_image *img, uint64_t nid, struct el_image_inode *ret,
				  struct el_error *err);

/* Calls fn for each dirent of directory `dir`, in on-disk order (including . and
 * ..). A non-zero return from fn stops the walk and is returned. */
typedef int (*el_image_dirent_fn)(void *ud, const struct el_image_dirent *de);
EL_EXPORT int el_image_readdir(struct el_image *img, const struct el_image_inode *dir,
			       el_image_dirent_fn fn, void *ud, struct el_error *err);

/* Resolves an absolute or relative path (both from the root). Symlinks are
 * followed (at most 40) except in the last component, unless a trailing slash
 * follows it, which also requires a directory, as in POSIX. ".." resolves
 * through the directory's own ".." entry (the root's is the root). */
EL_EXPORT int el_image_lookup(struct el_image *img, const char *path, struct el_image_inode *ret,
			      struct el_error *err);

/* Reads file (or symlink target) bytes [off, off+len) into buf; returns bytes
 * read (short at EOF). Holes read as zeros; data on an extra device fails
 * with -ENXIO (only this image's own blocks are readable). */
EL_EXPORT ssize_t el_image_pread(struct el_image *img, const struct el_image_inode *ino, void *buf,
				 size_t len, uint64_t off, struct el_error *err);

/* Where the file bytes at some offset live (§4). */
enum el_image_extent_kind {
	EL_EXTENT_DATA,   /* blocks on device_id (0: this image or unified addressing) */
	EL_EXTENT_HOLE,   /* reads as zeros */
	EL_EXTENT_INLINE, /* FLAT_INLINE tail next to the inode, in this image */
};

struct el_image_extent {
	uint64_t logical; /* file offset where the extent starts */
	uint64_t length;  /* bytes of the file it covers */
	uint64_t physical; /* byte offset of `logical` on device_id */
	uint16_t device_id; /* 0 = primary (unified) address space, N = slot N-1 */
	uint8_t kind;       /* enum el_image_extent_kind */
};

/* Maps file offset off (< size) to the extent holding it. Compressed layouts
 * return -EOPNOTSUPP. Physical ranges are not checked against the image here;
 * el_image_pread and el_image_check do that. */
EL_EXPORT int el_image_map(struct el_image *img, const struct el_image_inode *ino, uint64_t off,
			   struct el_image_extent *ret, struct el_error *err);

/* Calls fn for each xattr of the inode, shared ones first. Names with an
 * unknown index (1..6 are known) come back as the stored suffix alone, with
 * name_index set, so that callers can refuse them; long prefixes (0x80|k)
 * fail with -EOPNOTSUPP. */
typedef int (*el_image_xattr_fn)(void *ud, const struct el_image_xattr *xa);
EL_EXPORT int el_image_xattrs(struct el_image *img, const struct el_image_inode *ino,
			      el_image_xattr_fn fn, void *ud, struct el_error *err);

/* Where the data of a regular file lives, for the merge: a FLAT_PLAIN file
 * returns its first block and block count (0 blocks for an empty file).
 * Other layouts return -EOPNOTSUPP. */
EL_EXPORT int el_image_file_extent(struct el_image *img, const struct el_image_inode *ino,
				   uint64_t *ret_startblk, uint64_t *ret_nblocks, struct el_error *err);

struct el_check_stats {
	uint64_t inodes, dirs, files, symlinks, specials, xattrs, bytes;
};
/* Walks the whole tree from the root and checks every inode, directory and
 * xattr for bounds and consistency (see check.c for the list). */
EL_EXPORT int el_image_check(struct el_image *img, struct el_check_stats *ret, struct el_error *err);

#endif
