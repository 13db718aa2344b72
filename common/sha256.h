/* SPDX-License-Identifier: Apache-2.0 */
#ifndef EL_SHA256_H
#define EL_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct el_sha256;

struct el_sha256 *el_sha256_new(void);
void el_sha256_update(struct el_sha256 *h, const void *buf, size_t len);
/* Finalises once; later calls return the same digest. */
void el_sha256_final(struct el_sha256 *h, uint8_t out[32]);
void el_sha256_free(struct el_sha256 *h);
/* The digest of a || b, reusing h (which it resets): a dm-verity block is
 * its salt then its bytes. */
void el_sha256_two(struct el_sha256 *h, const void *a, size_t alen, const void *b, size_t blen,
		   uint8_t out[32]);
void el_hex(const uint8_t *in, size_t len, char *out /* 2*len+1 */);

/* A name-based UUID (RFC 4122 version 5 layout, sha256 instead of sha1):
 * the same namespace and data always give the same UUID. */
void el_uuid_from_name(const char *ns, const void *data, size_t len, uint8_t uuid[16]);

#endif
