/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers of the tar unit tests: archives built in memory header by header
 * (ustar fields, octal and base-256 numbers, checksums, PAX records), and a
 * reader session over el_input_new_reader with a chosen read size.
 */
#ifndef TESTS_UNIT_TAR_BUILD_H
#define TESTS_UNIT_TAR_BUILD_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "erofs-layer/input.h"
#include "erofs-layer/tar.h"
#include "live.h"

/* ---- building archives ---- */

enum fmt { USTAR, GNU, V7 };

struct tb {
	uint8_t *p;
	size_t len, cap;
};

static inline void tb_put(struct tb *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 4096;
		b->p = t_realloc(b->p, b->cap);
	}
	if (d)
		memcpy(b->p + b->len, d, n);
	else
		memset(b->p + b->len, 0, n);
	b->len += n;
}

static inline void tb_free(struct tb *b)
{
	t_free(b->p);
	*b = (struct tb){ 0 };
}

static inline void h_str(uint8_t *h, size_t off, size_t len, const char *s)
{
	size_t n = strlen(s);
	assert_true(n <= len);
	memcpy(h + off, s, n);
}

static inline void h_oct(uint8_t *h, size_t off, size_t len, uint64_t v)
{
	char tmp[32];
	snprintf(tmp, sizeof(tmp), "%0*llo", (int)(len - 1), (unsigned long long)v);
	assert_int_equal(strlen(tmp), len - 1);
	memcpy(h + off, tmp, len - 1);
	h[off + len - 1] = 0;
}

/* GNU base-256: 0x80 (or 0xff for negatives), then big-endian two's
 * complement */
static inline void h_b256(uint8_t *h, size_t off, size_t len, int64_t v)
{
	for (size_t k = 0; k + 1 < len; k++)
		h[off + len - 1 - k] = k < 8 ? (uint8_t)((uint64_t)v >> (8 * k))
					     : (v < 0 ? 0xff : 0x00);
	h[off] = v < 0 ? 0xff : 0x80;
}

static inline void h_init(uint8_t *h, const char *name, char type, uint64_t size, enum fmt f)
{
	memset(h, 0, 512);
	h_str(h, 0, 100, name);
	h_oct(h, 100, 8, 0644);
	h_oct(h, 108, 8, 1000);
	h_oct(h, 116, 8, 1001);
	h_oct(h, 124, 12, size);
	h_oct(h, 136, 12, 1700000000);
	h[156] = (uint8_t)type;
	if (f == USTAR)
		memcpy(h + 257, "ustar\0" "00", 8);
	else if (f == GNU)
		memcpy(h + 257, "ustar  \0", 8);
}

/* Writes the checksum (unsigned, or the historic signed sum); returns it. */
static inline long h_sum(uint8_t *h, int is_signed)
{
	long sum = 0;
	char tmp[8];

	memset(h + 148, ' ', 8);
	for (int i = 0; i < 512; i++)
		sum += is_signed ? (long)(int8_t)h[i] : (long)h[i];
	snprintf(tmp, sizeof(tmp), "%06lo", sum);
	memcpy(h + 148, tmp, 7); /* six digits and a NUL; 155 stays ' ' */
	return sum;
}

static inline uint64_t tb_hdr(struct tb *b, uint8_t *h)
{
	uint64_t off = b->len;
	h_sum(h, 0);
	tb_put(b, h, 512);
	return off;
}

static inline void tb_data(struct tb *b, const void *d, size_t n)
{
	tb_put(b, d, n);
	tb_put(b, NULL, (512 - n % 512) % 512);
}

static inline uint64_t tb_entry(struct tb *b, const char *name, char type, const void *d, size_t n)
{
	uint8_t h[512];
	h_init(h, name, type, n, USTAR);
	uint64_t off = tb_hdr(b, h);
	tb_data(b, d, n);
	return off;
}

static inline void tb_end(struct tb *b)
{
	tb_put(b, NULL, 1024);
}

/* "LEN key=value\n" with LEN counting itself */
static inline void pax_rec(struct tb *pl, const char *key, const void *val, size_t vlen)
{
	size_t base = strlen(key) + vlen + 3, total = base + 1;
	char num[24];
	for (;;) {
		size_t d = (size_t)snprintf(num, sizeof(num), "%zu", total);
		if (base + d == total)
			break;
		total = base + d;
	}
	tb_put(pl, num, strlen(num));
	tb_put(pl, " ", 1);
	tb_put(pl, key, strlen(key));
	tb_put(pl, "=", 1);
	tb_put(pl, val, vlen);
	tb_put(pl, "\n", 1);
}

static inline void pax_str(struct tb *pl, const char *key, const char *val)
{
	pax_rec(pl, key, val, strlen(val));
}

/* A meta entry ('x', 'g', 'L', 'K') with its payload; frees the payload. */
static inline uint64_t tb_meta(struct tb *b, char type, struct tb *payload)
{
	uint64_t off = tb_entry(b, type == 'L' || type == 'K' ? "././@LongLink" : "PaxHeader",
				type, payload->p, payload->len);
	tb_free(payload);
	return off;
}

static inline void pattern(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + seed + (i >> 8));
}

/* ---- reading ---- */

struct src {
	const uint8_t *p;
	size_t len, pos, chunk;
	size_t fail_at; /* return -EIO once pos reaches it (0: never) */
};

static inline long src_read(void *ud, void *buf, size_t len)
{
	struct src *s = ud;
	if (s->fail_at && s->pos >= s->fail_at)
		return -EIO;
	size_t n = s->len - s->pos;
	if (n > len)
		n = len;
	if (n > s->chunk)
		n = s->chunk;
	if (s->fail_at && n > s->fail_at - s->pos)
		n = s->fail_at - s->pos;
	memcpy(buf, s->p + s->pos, n);
	s->pos += n;
	return (long)n;
}

struct rd {
	struct src s;
	struct el_input *in;
	struct el_tar *t;
	struct el_error err;
	int nwarn;
	uint64_t warn_off;
	char warn_msg[256];
};

static inline void on_warn(void *ud, const char *what, uint64_t off, const char *msg)
{
	struct rd *r = ud;
	r->nwarn++;
	r->warn_off = off;
	snprintf(r->warn_msg, sizeof(r->warn_msg), "%s: %s", what, msg);
}

/* The producer thread starts reading at once: the source is complete
 * (fail_at included) before the input exists. */
static inline void rd_open_failing(struct rd *r, const struct tb *b, size_t chunk,
				   size_t fail_at)
{
	memset(r, 0, sizeof(*r));
	r->s = (struct src){ .p = b->p, .len = b->len, .chunk = chunk ? chunk : b->len + 1,
			     .fail_at = fail_at };
	el_error_clear(&r->err);
	assert_int_equal(el_input_new_reader(src_read, &r->s, &r->in, &r->err), 0);
	live_add(LIVE_INPUT, r->in, -1);
	assert_int_equal(el_tar_new(r->in, on_warn, r, &r->t), 0);
	live_add(LIVE_TAR, r->t, -1);
}

static inline void rd_open(struct rd *r, const struct tb *b, size_t chunk)
{
	rd_open_failing(r, b, chunk, 0);
}

static inline void rd_close(struct rd *r)
{
	live_del(r->t, -1);
	live_del(r->in, -1);
	el_tar_free(r->t);
	el_input_free(r->in);
}

static inline const struct el_entry *rd_next(struct rd *r)
{
	const struct el_entry *e = NULL;
	int n = el_tar_next(r->t, &e, &r->err);
	if (n != 1)
		fail_msg("el_tar_next returned %d: %s (offset %llu)", n, r->err.msg,
			 (unsigned long long)r->err.offset);
	return e;
}

static inline int rd_next_rc(struct rd *r)
{
	const struct el_entry *e;
	return el_tar_next(r->t, &e, &r->err);
}

struct seg {
	uint64_t off, len;
};

/* Reads the current entry's data into out (size bytes); pieces that touch
 * are merged into segs. Returns the number of segments. */
static inline size_t rd_data(struct rd *r, uint8_t *out, uint64_t size, struct seg *segs, size_t max)
{
	const uint8_t *buf;
	size_t len, n = 0;
	uint64_t off;
	int k;

	while ((k = el_tar_data(r->t, &buf, &len, &off, &r->err)) > 0) {
		assert_true(len > 0);
		assert_true(off + len <= size);
		memcpy(out + off, buf, len);
		if (n && segs[n - 1].off + segs[n - 1].len == off) {
			segs[n - 1].len += len;
		} else {
			assert_true(n < max);
			segs[n++] = (struct seg){ off, len };
		}
	}
	assert_int_equal(k, 0);
	return n;
}

/* Reads a non-sparse file and checks it equals want. */
static inline void rd_expect_data(struct rd *r, const uint8_t *want, size_t n)
{
	uint8_t *got = t_alloc(n + 1);
	struct seg s[2];
	size_t ns = rd_data(r, got, n, s, 2);
	if (n) {
		assert_int_equal(ns, 1);
		assert_int_equal(s[0].off, 0);
		assert_int_equal(s[0].len, n);
		assert_memory_equal(got, want, n);
	} else {
		assert_int_equal(ns, 0);
	}
	t_free(got);
}

static inline const struct el_xattr_kv *find_xattr(const struct el_entry *e, const char *name)
{
	const struct el_xattr_kv *found = NULL;
	for (size_t i = 0; i < e->nxattrs; i++)
		if (strcmp(e->xattrs[i].name, name) == 0) {
			assert_null(found);
			found = &e->xattrs[i];
		}
	return found;
}

static inline void sha256(const void *p, size_t n, uint8_t out[32])
{
	unsigned len = 0;
	assert_int_equal(EVP_Digest(p, n, out, &len, EVP_sha256(), NULL), 1);
	assert_int_equal(len, 32);
}

/* Expects el_tar_next to fail with code at offset. */
static inline void expect_error(const struct tb *b, int skip, int code, uint64_t offset)
{
	struct rd r;
	rd_open(&r, b, 0);
	for (int i = 0; i < skip; i++)
		rd_next(&r);
	assert_int_equal(rd_next_rc(&r), code);
	assert_int_equal(r.err.code, code);
	assert_int_equal(r.err.offset, offset);
	assert_true(r.err.msg[0] != 0);
	rd_close(&r);
}

/* ---- a mixed archive, read with every read size ---- */

struct sparse_def {
	uint64_t off, len;
};

static const struct sparse_def gnu_map[] = {
	{ 0, 100 }, { 1000, 50 }, { 2000, 600 }, { 4096, 10 }, /* in the header */
	{ 5000, 512 }, { 9000, 1000 },			       /* extension block */
};
#define GNU_REALSIZE 10000u

static inline uint64_t add_gnu_sparse(struct tb *b, const char *name, const struct sparse_def *map,
			       size_t n, uint64_t realsize, uint8_t *ret_image)
{
	uint8_t h[512], ext[512] = { 0 }, *payload;
	uint64_t stored = 0, pos = 0;

	for (size_t i = 0; i < n; i++)
		stored += map[i].len;
	h_init(h, name, 'S', stored, GNU);
	for (size_t i = 0; i < n && i < 4; i++) {
		h_oct(h, 386 + 24 * i, 12, map[i].off);
		h_oct(h, 386 + 24 * i + 12, 12, map[i].len);
	}
	h[482] = n > 4;
	h_oct(h, 483, 12, realsize);
	for (size_t i = 4; i < n; i++) {
		h_oct(ext, 24 * (i - 4), 12, map[i].off);
		h_oct(ext, 24 * (i - 4) + 12, 12, map[i].len);
	}
	uint64_t hoff = tb_hdr(b, h);
	if (n > 4)
		tb_put(b, ext, 512);
	payload = t_alloc(stored);
	pattern(payload, stored, 3);
	memset(ret_image, 0, realsize);
	for (size_t i = 0; i < n; i++) {
		memcpy(ret_image + map[i].off, payload + pos, map[i].len);
		pos += map[i].len;
	}
	tb_data(b, payload, stored);
	t_free(payload);
	return hoff;
}

static inline void check_sparse_entry(struct rd *r, const struct el_entry *e, const char *path,
			       const struct sparse_def *map, size_t n, uint64_t realsize,
			       const uint8_t *want)
{
	uint8_t *got = t_alloc(realsize);
	struct seg segs[16];

	assert_int_equal(e->type, EL_ENTRY_REG);
	assert_string_equal(e->path, path);
	assert_int_equal(e->size, realsize);
	size_t ns = rd_data(r, got, realsize, segs, 16);
	/* segments that touch merge; none of ours do */
	assert_int_equal(ns, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(segs[i].off, map[i].off);
		assert_int_equal(segs[i].len, map[i].len);
	}
	assert_memory_equal(got, want, realsize);
	t_free(got);
}

static const struct sparse_def pax_map[] = { { 0, 100 }, { 5000, 200 }, { 8000, 1 } };
#define PAX_REALSIZE 9000u

static inline void build_pax_sparse_1_0(struct tb *b, uint8_t *image)
{
	struct tb pl = { 0 }, data = { 0 };
	char line[64];
	uint8_t h[512], buf[301]; /* 100 + 200 + 1 */

	pax_str(&pl, "GNU.sparse.major", "1");
	pax_str(&pl, "GNU.sparse.minor", "0");
	pax_str(&pl, "GNU.sparse.name", "real/sparse-1.0");
	pax_str(&pl, "GNU.sparse.realsize", "9000");
	tb_meta(b, 'x', &pl);
	snprintf(line, sizeof(line), "%zu\n", sizeof(pax_map) / sizeof(pax_map[0]));
	tb_put(&data, line, strlen(line));
	for (size_t i = 0; i < 3; i++) {
		snprintf(line, sizeof(line), "%llu\n%llu\n", (unsigned long long)pax_map[i].off,
			 (unsigned long long)pax_map[i].len);
		tb_put(&data, line, strlen(line));
	}
	tb_put(&data, NULL, 512 - data.len);
	memset(image, 0, PAX_REALSIZE);
	pattern(buf, sizeof(buf), 9);
	size_t pos = 0;
	for (size_t i = 0; i < 3; i++) {
		tb_put(&data, buf + pos, pax_map[i].len);
		memcpy(image + pax_map[i].off, buf + pos, pax_map[i].len);
		pos += pax_map[i].len;
	}
	h_init(h, "./GNUSparseFile.0/sparse-1.0", '0', data.len, USTAR);
	tb_hdr(b, h);
	tb_data(b, data.p, data.len);
	tb_free(&data);
}

#endif
