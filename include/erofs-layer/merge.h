/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Multi-layer images as one disk (docs/erofs-format.md §8): the layer images, oldest
 * first, are merged with overlay rules into a metadata-only fsmeta.erofs whose
 * regular files point into the layers, plus a VMDK descriptor listing fsmeta
 * then each layer as flat extents.
 */
#ifndef EROFS_LAYER_MERGE_H
#define EROFS_LAYER_MERGE_H

#include "export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "verity.h"

/* What cannot be merged (a block size other than 4096, inline or compressed
 * regular-file data, a layer that has devices itself) fails with this code,
 * so that callers can fall back to per-layer mounts. */
#define EL_EUNMERGEABLE EMEDIUMTYPE

struct el_merge_opts {
	bool flat; /* no device table, FLAT_PLAIN files at unified addresses */
	/* fsmeta gets its own dm-verity tree (erofs-layer/verity.h); layers
	 * that carry one count whole, tree included, in the device table and
	 * the VMDK either way */
	bool verity;
	bool has_epoch;
	int64_t epoch;
};

struct el_merge_result {
	uint64_t inodes;
	uint64_t fsmeta_blocks;
	uint64_t total_blocks; /* fsmeta + every layer, whole files */
	uint8_t uuid[16];
	bool verity;
	struct el_verity_info verity_info; /* of fsmeta */
};

/* Writes fsmeta (and, when vmdk_path is given, the VMDK descriptor naming the
 * absolute paths of fsmeta and the layers) atomically. */
EL_EXPORT int el_merge(const char *const *layers, size_t nlayers, const char *fsmeta_path,
		       const char *vmdk_path, const struct el_merge_opts *opts,
		       struct el_merge_result *ret, struct el_error *err);

struct el_vmdk_extent {
	const char *path; /* absolute */
	uint64_t bytes;	  /* a multiple of 512 */
};

/* The descriptor text (twoGbMaxExtentFlat, extents split at 2 GiB). Returns a
 * malloc'd string, or NULL with errno set (EINVAL for a relative path or one
 * containing '"' or a newline). */
EL_EXPORT char *el_vmdk_descriptor(const struct el_vmdk_extent *ext, size_t n, uint32_t cid);

#endif
