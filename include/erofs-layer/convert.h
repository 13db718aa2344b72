/* SPDX-License-Identifier: Apache-2.0 */
/* tar (plain, gzip, zstd) → EROFS image, in one streaming pass. */
#ifndef EROFS_LAYER_CONVERT_H
#define EROFS_LAYER_CONVERT_H

#include "export.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "input.h"
#include "writer.h"

struct el_convert_opts {
	bool has_uuid; /* else derived from the diffID */
	uint8_t uuid[16];
	bool has_epoch;
	int64_t epoch;
	/* mtimes before 1970 become 0, as containerd's own unpacking makes
	 * them (its archive code bounds times to the Unix epoch), so that a
	 * layer looks the same whichever differ unpacked it */
	bool clamp_pre_epoch;
	/* a dm-verity hash tree after the image (erofs-layer/verity.h): the
	 * result's image.verity_info says where and its root hash */
	bool verity;
	el_warn_fn warn;
	void *warn_ud;
	atomic_bool *cancel; /* checked between entries and data pieces */
};

struct el_convert_result {
	uint8_t diffid[32]; /* sha256 of every uncompressed byte */
	uint64_t tar_bytes;
	uint64_t entries;
	enum el_compression compression;
	struct el_writer_stats image;
};

/* Converts the stream into out_fd (an empty regular file). */
EL_EXPORT int el_convert_input(struct el_input *in, int out_fd, const struct el_convert_opts *opts,
			       struct el_convert_result *ret, struct el_error *err);

/* Reads in_fd to its end and publishes out_path atomically: on any error
 * nothing is left at out_path nor beside it. */
EL_EXPORT int el_convert_fd(int in_fd, const char *out_path, const struct el_convert_opts *opts,
			    struct el_convert_result *ret, struct el_error *err);

#endif
