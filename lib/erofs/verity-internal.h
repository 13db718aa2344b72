/* SPDX-License-Identifier: Apache-2.0 */
/* What the library's publishing paths share about dm-verity sidecars. */
#ifndef EL_VERITY_INTERNAL_H
#define EL_VERITY_INTERNAL_H

#include "erofs-layer/writer.h"
#include "common/io.h"

/*
 * el_outfile_finish for an image the writer made: when it has a tree (st),
 * <path>.dmverity is published first, so the image never shows without the
 * root hash that vouches for it, and taken back if the image cannot follow.
 */
int el_publish_image(struct el_outfile *of, int r, const char *path,
		     const struct el_writer_stats *st, struct el_error *err);

#endif
