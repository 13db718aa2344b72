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
void el_hex(const uint8_t *in, size_t len, char *out /* 2*len+1 */);

#endif
