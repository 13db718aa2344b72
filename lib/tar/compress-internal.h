/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The output stage of the tar writer: uncompressed bytes in; sha256 of them
 * (the diffID); gzip (isa-l) or zstd compression; sha256 of the compressed
 * bytes (the blob digest); EL_TARW_CHUNK-sized calls of the sink.
 */
#ifndef EL_COMPRESS_INTERNAL_H
#define EL_COMPRESS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "erofs-layer/error.h"
#include "erofs-layer/input.h"
#include "erofs-layer/tar-writer.h"

struct zout;

/* level 0 is the compression's default; see struct el_tarw_opts. */
int zout_new(enum el_compression c, int level, el_tarw_write_fn write, void *ud,
	     struct zout **ret, struct el_error *err);
void zout_free(struct zout *z);

/* Takes len uncompressed bytes. */
int zout_write(struct zout *z, const void *buf, size_t len, struct el_error *err);

/* Ends the stream and hands everything left to the sink. */
int zout_finish(struct zout *z, struct el_error *err);

/* After zout_finish: the digests and sizes. */
void zout_result(struct zout *z, uint8_t diffid[32], uint8_t digest[32],
		 uint64_t *ret_uncompressed, uint64_t *ret_size);

/* Uncompressed bytes taken so far. */
uint64_t zout_offset(const struct zout *z);

#endif
