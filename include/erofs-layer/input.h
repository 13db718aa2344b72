/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A layer byte stream: plain, gzip or zstd tar, detected by magic, decompressed
 * on a producer thread while the consumer parses and writes, and hashed
 * (sha256 of every uncompressed byte: the diffID).
 */
#ifndef EROFS_LAYER_INPUT_H
#define EROFS_LAYER_INPUT_H

#include "export.h"

#include <stddef.h>
#include <stdint.h>

#include "error.h"

enum el_compression {
	EL_COMPRESSION_NONE,
	EL_COMPRESSION_GZIP,
	EL_COMPRESSION_ZSTD,
};

struct el_input;

/* Takes a reference to fd (dups it). read_fn, when non-NULL, replaces read(2)
 * as the source of raw bytes (the daemon feeds gRPC content streams). */
typedef long (*el_read_fn)(void *ud, void *buf, size_t len);
EL_EXPORT int el_input_new_fd(int fd, struct el_input **ret, struct el_error *err);
EL_EXPORT int el_input_new_reader(el_read_fn fn, void *ud, struct el_input **ret, struct el_error *err);
EL_EXPORT void el_input_free(struct el_input *in);

/* The next window of uncompressed bytes; the previous window is released.
 * *ret_len == 0 means end of stream. Errors carry the offset in the
 * compressed or uncompressed stream. */
EL_EXPORT int el_input_next(struct el_input *in, const uint8_t **ret_buf, size_t *ret_len,
			    struct el_error *err);

EL_EXPORT enum el_compression el_input_compression(const struct el_input *in);
EL_EXPORT const char *el_compression_name(enum el_compression c);
/* Bytes handed out so far (uncompressed). */
EL_EXPORT uint64_t el_input_offset(const struct el_input *in);
/* After end of stream: the sha256 of everything handed out. */
EL_EXPORT void el_input_digest(struct el_input *in, uint8_t ret_digest[32]);
/* Stops the producer early (on a consumer error). */
EL_EXPORT void el_input_cancel(struct el_input *in);

#endif
