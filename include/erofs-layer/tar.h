/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Streaming tar reader: ustar, GNU (long names 'L'/'K', old sparse 'S'),
 * PAX extended and global headers (incl. SCHILY/LIBARCHIVE xattrs and GNU
 * sparse 0.0, 0.1 and 1.0), base-256 numbers, signed and unsigned header
 * checksums. Unknown entry types are skipped with a warning. Errors name the
 * byte offset in the uncompressed stream.
 */
#ifndef EROFS_LAYER_TAR_H
#define EROFS_LAYER_TAR_H

#include "export.h"

#include <stdint.h>

#include "entry.h"
#include "error.h"
#include "input.h"

/* The limits the reader enforces (all size math is overflow-checked). */
#define EL_TAR_MAX_LONGNAME (64u << 10) /* payload of a GNU 'L' or 'K' entry */
#define EL_TAR_MAX_PAX (8u << 20)	/* payload of one PAX header */
#define EL_TAR_MAX_XATTR_NAME 255u
#define EL_TAR_MAX_XATTR_VALUE (64u << 10)
#define EL_TAR_MAX_XATTRS 1024u	      /* per entry */
#define EL_TAR_MAX_SPARSE (1u << 20) /* sparse map segments per entry */

struct el_tar;

EL_EXPORT int el_tar_new(struct el_input *in, el_warn_fn warn, void *warn_ud, struct el_tar **ret);
EL_EXPORT void el_tar_free(struct el_tar *t);

/* 1 and the next entry, 0 at the end-of-archive marker, or -errno. Any data
 * of the previous entry not read is skipped. */
EL_EXPORT int el_tar_next(struct el_tar *t, const struct el_entry **ret, struct el_error *err);

/* The next piece of the current regular file's data: 1 with a window into the
 * stream and the file offset it belongs at (sparse files jump over holes),
 * 0 when the data is complete, or -errno. */
EL_EXPORT int el_tar_data(struct el_tar *t, const uint8_t **ret_buf, size_t *ret_len, uint64_t *ret_off,
			  struct el_error *err);

/* After el_tar_next returned 0: reads (and hashes) whatever follows the end
 * marker, up to the end of the stream. */
EL_EXPORT int el_tar_finish(struct el_tar *t, struct el_error *err);

EL_EXPORT uint64_t el_tar_entries(const struct el_tar *t);

#endif
