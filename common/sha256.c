/* SPDX-License-Identifier: Apache-2.0 */
/* sha256 through OpenSSL's EVP interface (SHA-NI where the CPU has it). */
#include "sha256.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct el_sha256 {
	EVP_MD_CTX *ctx;
	bool done;
	uint8_t digest[32];
};

struct el_sha256 *el_sha256_new(void)
{
	struct el_sha256 *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
		el_sha256_free(h);
		return NULL;
	}
	return h;
}

void el_sha256_update(struct el_sha256 *h, const void *buf, size_t len)
{
	if (len)
		EVP_DigestUpdate(h->ctx, buf, len);
}

void el_sha256_final(struct el_sha256 *h, uint8_t out[32])
{
	if (!h->done) {
		unsigned n = 0;
		EVP_DigestFinal_ex(h->ctx, h->digest, &n);
		h->done = true;
	}
	memcpy(out, h->digest, 32);
}

void el_sha256_two(struct el_sha256 *h, const void *a, size_t alen, const void *b, size_t blen,
		   uint8_t out[32])
{
	unsigned n = 0;

	/* the context keeps its digest: no lookup per block */
	EVP_DigestInit_ex2(h->ctx, NULL, NULL);
	EVP_DigestUpdate(h->ctx, a, alen);
	EVP_DigestUpdate(h->ctx, b, blen);
	EVP_DigestFinal_ex(h->ctx, out, &n);
	h->done = false;
}

void el_sha256_free(struct el_sha256 *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

void el_hex(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = 0;
}

void el_uuid_from_name(const char *ns, const void *data, size_t len, uint8_t uuid[16])
{
	struct el_sha256 *h = el_sha256_new();
	uint8_t out[32] = { 0 };

	if (h) {
		el_sha256_update(h, ns, strlen(ns));
		el_sha256_update(h, data, len);
		el_sha256_final(h, out);
		el_sha256_free(h);
	} else {
		/* no memory for a hash context: still deterministic */
		memcpy(out, data, len < 16 ? len : 16);
	}
	memcpy(uuid, out, 16);
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x50);
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);
}
