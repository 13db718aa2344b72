/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The layer byte stream (lib/tar/input.c) on compressed input: gzip members
 * and zstd frames read through the fetcher's ring of chunks, with the ends
 * of members falling on and around the edges of those chunks, truncation,
 * trailing garbage, a failing source, and a consumer that stops early.
 * The tar parsing on top is in test-tar.c.
 */
#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#include <zstd.h>

#include "tar-build.h"

/* lib/tar/input.c reads compressed input in chunks of this size */
#define CHUNK (256u << 10)

/* ---- compressed streams built here ---- */

static void put_le(struct tb *b, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		tb_put(b, &(uint8_t){ (uint8_t)(v >> (8 * i)) }, 1);
}

/* A gzip member of stored deflate blocks (no compression), so that its
 * length is exact: 18 + n + 5 per block of at most 65535 bytes. */
static void gz_stored(struct tb *b, const uint8_t *p, size_t n)
{
	static const uint8_t hdr[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff };
	size_t off = 0;

	tb_put(b, hdr, sizeof(hdr));
	do {
		size_t k = n - off > 65535 ? 65535 : n - off;
		tb_put(b, &(uint8_t){ off + k == n ? 1 : 0 }, 1);
		put_le(b, k, 2);
		put_le(b, ~k & 0xffff, 2);
		tb_put(b, p + off, k);
		off += k;
	} while (off < n);
	put_le(b, crc32_gzip_refl(0, p, n), 4);
	put_le(b, n & 0xffffffffu, 4);
}

/* How many data bytes make a stored member exactly len bytes long. */
static size_t gz_stored_fit(size_t len)
{
	for (size_t blocks = 1;; blocks++) {
		size_t n = len - 18 - 5 * blocks;
		if ((n + 65534) / 65535 == blocks)
			return n;
	}
}

static void zst_frame(struct tb *b, const uint8_t *p, size_t n, int level)
{
	size_t cap = ZSTD_compressBound(n);
	uint8_t *out = malloc(cap);
	assert_non_null(out);
	size_t k = ZSTD_compress(out, cap, p, n, level);
	if (!ZSTD_isError(k))
		tb_put(b, out, k);
	free(out);
	assert_false(ZSTD_isError(k));
}

/* Bytes that compress, but not to nothing. */
static void text(uint8_t *p, size_t n, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)("layer erofs tar gzip zstd \n"[(x >> 16) % 27]);
	}
}

/* n bytes of text(seed), released by the teardown */
static uint8_t *text_alloc(size_t n, unsigned seed)
{
	uint8_t *p = t_alloc(n);
	text(p, n, seed);
	return p;
}

/* ---- reading a stream whole ---- */

struct got {
	struct tb out;
	uint8_t digest[32];
	int rc;
	struct el_error err;
};

/* Reads src (chunk bytes per read, 0: as much as asked) to its end or its
 * first error. */
static void read_all(const struct tb *src, size_t chunk, size_t fail_at, struct got *g)
{
	struct src s = { .p = src->p, .len = src->len, .chunk = chunk ? chunk : src->len + 1,
			 .fail_at = fail_at };
	struct el_input *in = NULL;
	const uint8_t *buf;
	size_t len;

	memset(g, 0, sizeof(*g));
	el_error_clear(&g->err);
	assert_int_equal(el_input_new_reader(src_read, &s, &in, &g->err), 0);
	live_add(LIVE_INPUT, in, -1);
	while ((g->rc = el_input_next(in, &buf, &len, &g->err)) == 0 && len)
		tb_put(&g->out, buf, len);
	if (g->rc == 0) {
		assert_int_equal(el_input_offset(in), g->out.len);
		el_input_digest(in, g->digest);
	}
	live_del(in, -1);
	el_input_free(in);
}

static void expect_bytes(const struct tb *src, size_t chunk, const struct tb *want,
			 enum el_compression c)
{
	struct el_input *in = NULL;
	struct src s = { .p = src->p, .len = src->len, .chunk = chunk ? chunk : src->len + 1 };
	struct el_error err;
	uint8_t digest[32];
	struct got g;

	el_error_clear(&err);
	assert_int_equal(el_input_new_reader(src_read, &s, &in, &err), 0);
	live_add(LIVE_INPUT, in, -1);
	assert_int_equal(el_input_compression(in), c);
	live_del(in, -1);
	el_input_free(in);

	read_all(src, chunk, 0, &g);
	if (g.rc)
		fail_msg("read failed (chunk %zu): %s at %llu", chunk, g.err.msg,
			 (unsigned long long)g.err.offset);
	assert_int_equal(g.out.len, want->len);
	assert_memory_equal(g.out.p, want->p, want->len);
	sha256(want->p, want->len, digest);
	assert_memory_equal(g.digest, digest, 32);
	tb_free(&g.out);
}

static void expect_failure(const struct tb *src, size_t fail_at, int code, uint64_t offset,
			   const char *words)
{
	struct got g;

	read_all(src, 0, fail_at, &g);
	assert_int_equal(g.rc, code);
	assert_int_equal(g.err.code, code);
	assert_int_equal(g.err.offset, offset);
	if (!strstr(g.err.msg, words))
		fail_msg("error '%s' does not say '%s'", g.err.msg, words);
	tb_free(&g.out);
}

/* ---- the tests ---- */

/* Two members, the first ending just before, at and just after the edge of
 * the first chunk: the second member's magic is then split across chunks. */
static void test_gzip_members_at_chunk_edges(void **state)
{
	static const size_t reads[] = { 1, 4096, 0 };
	uint8_t *data = text_alloc(2 * CHUNK, 1);
	(void)state;

	for (size_t first = CHUNK - 3; first <= CHUNK + 1; first++) {
		struct tb gz = { 0 }, want = { 0 };
		size_t n1 = gz_stored_fit(first), n2 = 1000;

		gz_stored(&gz, data, n1);
		assert_int_equal(gz.len, first);
		gz_stored(&gz, data + n1, n2);
		tb_put(&want, data, n1 + n2);
		for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++)
			expect_bytes(&gz, reads[i], &want, EL_COMPRESSION_GZIP);
		tb_free(&gz);
		tb_free(&want);
	}
}

/* Real deflate (isa-l level 1) over several chunks and windows, with a
 * member after it. */
static void test_gzip_compressed_many_chunks(void **state)
{
	size_t n = 5 * CHUNK * 4 + 12345; /* more than a few output windows */
	uint8_t *data = text_alloc(n, 2);
	struct tb gz = { 0 }, want = { 0 };
	struct isal_zstream zs;
	(void)state;

	uint8_t *out = t_alloc(n + 1024);
	isal_deflate_init(&zs);
	zs.gzip_flag = IGZIP_GZIP;
	zs.level = 1;
	zs.level_buf_size = ISAL_DEF_LVL1_DEFAULT;
	zs.level_buf = t_alloc(zs.level_buf_size);
	zs.end_of_stream = 1;
	zs.flush = NO_FLUSH;
	zs.next_in = data;
	zs.avail_in = (uint32_t)n;
	zs.next_out = out;
	zs.avail_out = (uint32_t)(n + 1024);
	assert_int_equal(isal_deflate(&zs), COMP_OK);
	assert_int_equal(zs.internal_state.state, ZSTATE_END);
	assert_true(zs.total_out > 2 * CHUNK); /* the fetcher has work to do */
	tb_put(&gz, out, zs.total_out);
	gz_stored(&gz, (const uint8_t *)"tail", 4);
	tb_put(&want, data, n);
	tb_put(&want, "tail", 4);
	expect_bytes(&gz, 1000, &want, EL_COMPRESSION_GZIP);
	expect_bytes(&gz, 0, &want, EL_COMPRESSION_GZIP);
	tb_free(&gz);
	tb_free(&want);
}

/* Frames whose output ends on, before and after a window's end (1 MiB):
 * what a frame still holds to flush when its input is all read comes out. */
static void test_zstd_frames(void **state)
{
	static const size_t sizes[] = { (1u << 20) - 1, 1u << 20, (1u << 20) + 1, 3u << 20 };
	uint8_t *data = text_alloc((3u << 20) + 1, 3);
	(void)state;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct tb zs = { 0 }, want = { 0 };
		zst_frame(&zs, data, sizes[i], 3);
		tb_put(&want, data, sizes[i]);
		expect_bytes(&zs, 0, &want, EL_COMPRESSION_ZSTD);
		/* a second frame follows */
		zst_frame(&zs, data, 777, 1);
		tb_put(&want, data, 777);
		expect_bytes(&zs, 4096, &want, EL_COMPRESSION_ZSTD);
		tb_free(&zs);
		tb_free(&want);
	}
}

static void test_truncated(void **state)
{
	uint8_t data[100000];
	struct tb gz = { 0 }, zs = { 0 }, cut = { 0 };
	(void)state;

	text(data, sizeof(data), 4);
	gz_stored(&gz, data, sizeof(data));
	zst_frame(&zs, data, sizeof(data), 3);
	for (size_t keep = 20; keep < gz.len; keep += gz.len / 7) {
		cut.len = 0;
		tb_put(&cut, gz.p, keep);
		expect_failure(&cut, 0, -EINVAL, keep, "truncated gzip stream");
	}
	for (size_t keep = 10; keep < zs.len; keep += zs.len / 5) {
		cut.len = 0;
		tb_put(&cut, zs.p, keep);
		expect_failure(&cut, 0, -EINVAL, keep, "truncated zstd stream");
	}
	tb_free(&gz);
	tb_free(&zs);
	tb_free(&cut);
}

/* After a member: garbage, also when only its first byte is in the chunk
 * that held the member. */
static void test_trailing_garbage(void **state)
{
	uint8_t *data = text_alloc(CHUNK, 5);
	(void)state;

	for (size_t first = CHUNK - 2; first <= CHUNK; first++) {
		struct tb gz = { 0 };
		gz_stored(&gz, data, gz_stored_fit(first));
		tb_put(&gz, "\x1f" "x", 2);
		expect_failure(&gz, 0, -EINVAL, first, "trailing garbage after gzip member");
		tb_free(&gz);
	}
}

/* The source fails midway: its error, at the offset it failed at, after
 * every byte before it. */
static void test_source_error(void **state)
{
	size_t n = 3 * CHUNK;
	uint8_t *data = text_alloc(n, 6);
	struct tb gz = { 0 };
	(void)state;

	gz_stored(&gz, data, n);
	expect_failure(&gz, CHUNK + 100, -EIO, CHUNK + 100, "read failed");
	expect_failure(&gz, 2 * CHUNK, -EIO, 2 * CHUNK, "read failed");

	/* before the magic could be read: no input at all */
	struct src s = { .p = gz.p, .len = gz.len, .chunk = 1, .fail_at = 1 };
	struct el_input *in = NULL;
	struct el_error err;
	el_error_clear(&err);
	assert_int_equal(el_input_new_reader(src_read, &s, &in, &err), -EIO);
	assert_null(in);
	assert_int_equal(err.offset, 1);
	assert_non_null(strstr(err.msg, "read failed"));
	tb_free(&gz);
}

/* A consumer that stops after one window: freeing the input stops the
 * producer and the fetcher, whatever they wait for. */
static void test_stop_early(void **state)
{
	size_t n = 12u << 20;
	uint8_t *data = text_alloc(n, 7);
	struct tb gz = { 0 };
	(void)state;

	gz_stored(&gz, data, n);
	for (size_t reads = 1; reads <= 3; reads++) {
		struct src s = { .p = gz.p, .len = gz.len, .chunk = 65536 };
		struct el_input *in = NULL;
		struct el_error err;
		const uint8_t *buf;
		size_t len;

		el_error_clear(&err);
		assert_int_equal(el_input_new_reader(src_read, &s, &in, &err), 0);
		live_add(LIVE_INPUT, in, -1);
		for (size_t i = 0; i < reads; i++) {
			assert_int_equal(el_input_next(in, &buf, &len, &err), 0);
			assert_true(len > 0);
		}
		if (reads == 2)
			el_input_cancel(in);
		live_del(in, -1);
		el_input_free(in);
	}
	tb_free(&gz);
}

int main(void)
{
#define T(f) cmocka_unit_test_teardown(f, live_teardown)
	const struct CMUnitTest tests[] = {
		T(test_gzip_members_at_chunk_edges),
		T(test_gzip_compressed_many_chunks),
		T(test_zstd_frames),
		T(test_truncated),
		T(test_trailing_garbage),
		T(test_source_error),
		T(test_stop_early),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
