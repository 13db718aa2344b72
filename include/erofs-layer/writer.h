/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The EROFS writer (docs/erofs-format.md): 4 KiB blocks, no compression. Regular-file
 * data is written while it streams, block-aligned and contiguous (FLAT_PLAIN)
 * from block 1 on; when the tree is complete, the metadata (inodes, xattrs,
 * directories) is planned, then emitted after the data, and block 0 (the
 * superblock, with its checksum) is written last.
 */
#ifndef EROFS_LAYER_WRITER_H
#define EROFS_LAYER_WRITER_H

#include "export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "tree.h"
#include "verity.h"

struct el_writer;

/* An extra device (a layer image) that regular files of a merged image point
 * into (docs/erofs-format.md, format digest §8). */
struct el_writer_device {
	char tag[65]; /* NUL-terminated, at most 64 bytes */
	uint64_t blocks;
};

struct el_writer_opts {
	bool has_uuid;
	uint8_t uuid[16];
	/* sb epoch: compact inodes are used for inodes whose mtime equals it;
	 * without one, the most common mtime of the tree is used */
	bool has_epoch;
	int64_t epoch;
	/* Merged images: files whose inode names a device get one chunk index
	 * (device id + block in that device) and the image a device table whose
	 * unified addresses make fsmeta + devices one concatenated disk. With
	 * flat, there is no table: such files become FLAT_PLAIN at their unified
	 * address, for kernels without multi-device flat addressing (< 6.4). */
	const struct el_writer_device *devices;
	unsigned ndevices;
	bool flat;
};

struct el_writer_stats {
	uint64_t inodes;
	uint64_t image_bytes;
	uint64_t data_blocks;
	uint64_t meta_bytes;
	uint64_t shared_xattrs;
	uint64_t uniaddr_first; /* merged images: unified address of device 1 */
	uint64_t file_bytes;	/* the image and, with verity, its hash tree */
	bool verity;
	struct el_verity_info verity_info;
};

EL_EXPORT int el_writer_new(int fd, struct el_writer **ret);
EL_EXPORT void el_writer_free(struct el_writer *w);
/* Appends a dm-verity hash tree to the image (erofs-layer/verity.h), hashed
 * as the image is written: call before the first file is written. */
EL_EXPORT int el_writer_verity(struct el_writer *w);

/* Gives a regular file of the tree its data blocks. */
EL_EXPORT int el_writer_file_begin(struct el_writer *w, struct el_inode *ino, struct el_error *err);
/* Writes file bytes [off, off+len): pieces may come in any order; what is
 * never written reads as zeros (holes of sparse files). */
EL_EXPORT int el_writer_file_write(struct el_writer *w, struct el_inode *ino, const void *buf,
				   size_t len, uint64_t off, struct el_error *err);

EL_EXPORT int el_writer_finish(struct el_writer *w, struct el_tree *tree,
			       const struct el_writer_opts *opts, struct el_writer_stats *ret_stats,
			       struct el_error *err);

#endif
