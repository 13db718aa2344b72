/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dm-verity for images (docs/verity.md): a hash tree appended to the image
 * file, in the layout containerd 2.3's erofs differ writes and the kernel's
 * dm-verity target reads. Hash type 1, sha256, 4096-byte data and hash
 * blocks, 32 zero bytes of salt. The file holds:
 *
 *   [0, hash_offset)               the image, hash_offset = data blocks x 4096
 *   [hash_offset, +4096)           the verity superblock (cryptsetup's format)
 *   [hash_offset + 4096, ...)      the tree, its top level first
 *
 * and the root hash lives outside it (a sidecar, a label): whoever trusts
 * the root hash can trust every block read through the dm-verity device.
 */
#ifndef EROFS_LAYER_VERITY_H
#define EROFS_LAYER_VERITY_H

#include "export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define EL_VERITY_BLOCK 4096u
#define EL_VERITY_SALT_SIZE 32u

struct el_verity_info {
	uint64_t data_blocks; /* image blocks the tree covers */
	uint64_t hash_offset; /* bytes: where the verity superblock is */
	uint64_t file_bytes;  /* image, superblock and tree */
	uint8_t root[32];
	uint8_t uuid[16]; /* the superblock's */
};

/* Whether a verity superblock starts at hash_offset of fd. */
EL_EXPORT bool el_verity_present(int fd, uint64_t hash_offset);

/* Bytes a tree over data_blocks adds to the file (superblock included). */
EL_EXPORT uint64_t el_verity_tree_bytes(uint64_t data_blocks);

/* The root hash in lowercase hex, as dm-verity tables and sidecars say it. */
EL_EXPORT void el_verity_root_hex(const struct el_verity_info *info, char out[65]);

/*
 * A tree built while the image is written: every byte the writer emits is
 * fed, in position order as a rule. Gaps read as zeros; whole blocks may be
 * fed again out of order (a superblock written last); anything else out of
 * order makes finish read the image back instead.
 */
struct el_verity;

EL_EXPORT int el_verity_new(struct el_verity **ret);
EL_EXPORT void el_verity_free(struct el_verity *v);
EL_EXPORT int el_verity_feed(struct el_verity *v, uint64_t pos, const void *buf, size_t len);
/* The image, image_bytes long (a multiple of 4096), is complete in fd: appends
 * the superblock (uuid, or one derived from the root hash when NULL) and the
 * tree after it. */
EL_EXPORT int el_verity_finish(struct el_verity *v, int fd, uint64_t image_bytes,
			       const uint8_t *uuid, struct el_verity_info *ret,
			       struct el_error *err);

/* Appends a tree to an image that was not written here (a native EROFS
 * blob): reads it once. */
EL_EXPORT int el_verity_append(int fd, const uint8_t *uuid, struct el_verity_info *ret,
			       struct el_error *err);

/*
 * Checks fd's superblock and tree at hash_offset and every data block
 * against root: 0 when all match; else -EBADMSG with the first block that
 * does not (its byte offset in the file) in err.
 */
EL_EXPORT int el_verity_check(int fd, uint64_t hash_offset, const uint8_t root[32],
			      struct el_verity_info *ret, struct el_error *err);

/*
 * The sidecar containerd 2.3 reads beside a layer (<image>.dmverity):
 * {"roothash": "<hex>", "hashoffset": <bytes>}. format returns the length
 * written (always < len when len >= 160); parse refuses anything else with
 * the byte offset of what was wrong.
 */
EL_EXPORT int el_verity_sidecar_format(const struct el_verity_info *info, char *buf, size_t len);
EL_EXPORT int el_verity_sidecar_parse(const char *text, size_t len, uint8_t root[32],
				      uint64_t *hash_offset, struct el_error *err);
/* <image>.dmverity, published atomically and durably (written in full,
 * fsynced, renamed, its directory fsynced). */
EL_EXPORT int el_verity_sidecar_write(const char *image, const struct el_verity_info *info,
				      struct el_error *err);
/* path: the sidecar itself (a name ending in .dmverity) or its image. */
EL_EXPORT int el_verity_sidecar_read(const char *path, uint8_t root[32], uint64_t *hash_offset,
				     struct el_error *err);

#endif
