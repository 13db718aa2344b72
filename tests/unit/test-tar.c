/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The streaming tar reader (lib/tar/): header formats, type flags, numbers,
 * checksums, truncation and the end of the archive, with archives built in
 * memory and read with several read sizes. PAX records, sparse files and
 * limits are in test-tar-pax.c.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "erofs-layer/convert.h"
#include "tar-build.h"

static void test_mixed_archive_read_sizes(void **state)
{
	static const size_t chunks[] = { 1, 7, 4096, 0 /* whole */ };
	struct tb b = { 0 }, pl = { 0 };
	uint8_t h[512], d1[1000], d3[513], gimg[GNU_REALSIZE], pimg[PAX_REALSIZE], digest[32],
		want[32];
	(void)state;

	pattern(d1, sizeof(d1), 1);
	pattern(d3, sizeof(d3), 2);
	h_init(h, "file.txt", '0', sizeof(d1), USTAR);
	h_str(h, 345, 155, "some/dir");
	tb_hdr(&b, h);
	tb_data(&b, d1, sizeof(d1));

	tb_entry(&b, "second", '0', "0123456789", 10);

	pax_str(&pl, "path", "pax/path");
	pax_str(&pl, "mtime", "1234.5");
	pax_rec(&pl, "SCHILY.xattr.user.bin", "a\0b", 3);
	tb_meta(&b, 'x', &pl);
	tb_entry(&b, "ignored", '0', d3, sizeof(d3));

	add_gnu_sparse(&b, "gnu-sparse", gnu_map, 6, GNU_REALSIZE, gimg);
	build_pax_sparse_1_0(&b, pimg);
	h_init(h, "link", '2', 0, USTAR);
	h_str(h, 157, 100, "target");
	tb_hdr(&b, h);
	tb_end(&b);
	size_t tar_len = b.len;
	for (int i = 0; i < 700; i++) /* trailing bytes after the marker */
		tb_put(&b, &(uint8_t){ (uint8_t)(i | 1) }, 1);
	sha256(b.p, b.len, want);

	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		struct rd r;
		const struct el_entry *e;
		rd_open(&r, &b, chunks[c]);

		e = rd_next(&r);
		assert_string_equal(e->path, "some/dir/file.txt");
		assert_int_equal(e->type, EL_ENTRY_REG);
		assert_int_equal(e->size, 1000);
		assert_int_equal(e->mode, 0644);
		assert_int_equal(e->uid, 1000);
		assert_int_equal(e->gid, 1001);
		assert_int_equal(e->mtime, 1700000000);
		assert_int_equal(e->offset, 0);
		rd_expect_data(&r, d1, sizeof(d1));

		e = rd_next(&r);
		assert_string_equal(e->path, "second");
		assert_int_equal(e->offset, 1536);
		rd_expect_data(&r, (const uint8_t *)"0123456789", 10);

		e = rd_next(&r);
		assert_string_equal(e->path, "pax/path");
		assert_int_equal(e->mtime, 1234);
		assert_int_equal(e->mtime_nsec, 500000000);
		assert_int_equal(e->nxattrs, 1);
		assert_string_equal(e->xattrs[0].name, "user.bin");
		assert_int_equal(e->xattrs[0].value_len, 3);
		assert_memory_equal(e->xattrs[0].value, "a\0b", 3);
		rd_expect_data(&r, d3, sizeof(d3));

		e = rd_next(&r);
		check_sparse_entry(&r, e, "gnu-sparse", gnu_map, 6, GNU_REALSIZE, gimg);
		e = rd_next(&r);
		check_sparse_entry(&r, e, "real/sparse-1.0", pax_map, 3, PAX_REALSIZE, pimg);

		e = rd_next(&r);
		assert_int_equal(e->type, EL_ENTRY_SYMLINK);
		assert_string_equal(e->link, "target");
		assert_int_equal(e->size, 0);

		assert_int_equal(rd_next_rc(&r), 0);
		assert_int_equal(rd_next_rc(&r), 0); /* stays at the end */
		assert_int_equal(el_tar_entries(r.t), 6);
		assert_int_equal(el_input_offset(r.in) <= tar_len + 700, 1);
		assert_int_equal(el_tar_finish(r.t, &r.err), 0);
		assert_int_equal(el_input_offset(r.in), b.len);
		el_input_digest(r.in, digest);
		assert_memory_equal(digest, want, 32);
		assert_int_equal(el_input_compression(r.in), EL_COMPRESSION_NONE);
		rd_close(&r);
	}
	tb_free(&b);
}

/* ---- header formats ---- */

static void test_ustar_prefix_gnu_and_v7(void **state)
{
	struct tb b = { 0 };
	uint8_t h[512];
	struct rd r;
	const struct el_entry *e;
	(void)state;

	h_init(h, "name", '0', 0, USTAR);
	h_str(h, 345, 155, "pre/fix");
	tb_hdr(&b, h);
	/* GNU magic: 345.. holds atime/ctime, never a prefix */
	h_init(h, "gnu-name", '0', 0, GNU);
	h_oct(h, 345, 12, 01234567);
	h_oct(h, 357, 12, 07654321);
	tb_hdr(&b, h);
	/* V7: no magic; directories only by the trailing slash */
	h_init(h, "v7dir/", '0', 0, V7);
	h_str(h, 345, 155, "junk");
	tb_hdr(&b, h);
	h_init(h, "v7dir2/", '\0', 0, V7);
	tb_hdr(&b, h);
	h_init(h, "v7file", '\0', 3, V7);
	tb_hdr(&b, h);
	tb_data(&b, "abc", 3);
	tb_end(&b);

	rd_open(&r, &b, 7);
	e = rd_next(&r);
	assert_string_equal(e->path, "pre/fix/name");
	e = rd_next(&r);
	assert_string_equal(e->path, "gnu-name");
	assert_int_equal(e->type, EL_ENTRY_REG);
	e = rd_next(&r);
	assert_string_equal(e->path, "v7dir/");
	assert_int_equal(e->type, EL_ENTRY_DIR);
	assert_int_equal(e->size, 0);
	e = rd_next(&r);
	assert_int_equal(e->type, EL_ENTRY_DIR);
	e = rd_next(&r);
	assert_string_equal(e->path, "v7file");
	assert_int_equal(e->type, EL_ENTRY_REG);
	rd_expect_data(&r, (const uint8_t *)"abc", 3);
	assert_int_equal(rd_next_rc(&r), 0);
	rd_close(&r);
	tb_free(&b);
}

static void test_typeflags(void **state)
{
	static const struct {
		char type;
		enum el_entry_type want;
	} cases[] = {
		{ '0', EL_ENTRY_REG }, { '\0', EL_ENTRY_REG },	{ '7', EL_ENTRY_REG },
		{ '1', EL_ENTRY_HARDLINK }, { '2', EL_ENTRY_SYMLINK }, { '3', EL_ENTRY_CHR },
		{ '4', EL_ENTRY_BLK },	{ '5', EL_ENTRY_DIR },	{ '6', EL_ENTRY_FIFO },
	};
	struct tb b = { 0 };
	uint8_t h[512];
	struct rd r;
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char name[16];
		snprintf(name, sizeof(name), "e%zu", i);
		int reg = cases[i].want == EL_ENTRY_REG;
		h_init(h, name, cases[i].type, reg ? 5 : 0, USTAR);
		h_oct(h, 100, 8, 04755);
		h_str(h, 157, 100, "the-link");
		h_oct(h, 329, 8, 8);
		h_oct(h, 337, 8, 0x12345);
		tb_hdr(&b, h);
		if (reg)
			tb_data(&b, "hello", 5);
	}
	tb_end(&b);
	rd_open(&r, &b, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct el_entry *e = rd_next(&r);
		enum el_entry_type t = cases[i].want;
		assert_int_equal(e->type, t);
		assert_int_equal(e->mode, 04755);
		assert_int_equal(e->size, t == EL_ENTRY_REG ? 5 : 0);
		assert_string_equal(e->link, "the-link");
		if (t == EL_ENTRY_CHR || t == EL_ENTRY_BLK) {
			assert_int_equal(e->dev_major, 8);
			assert_int_equal(e->dev_minor, 0x12345);
		} else {
			assert_int_equal(e->dev_major, 0);
			assert_int_equal(e->dev_minor, 0);
		}
		if (t == EL_ENTRY_REG) {
			rd_expect_data(&r, (const uint8_t *)"hello", 5);
		} else {
			const uint8_t *buf;
			size_t len;
			uint64_t off;
			assert_int_equal(el_tar_data(r.t, &buf, &len, &off, &r.err), 0);
		}
	}
	assert_int_equal(rd_next_rc(&r), 0);
	rd_close(&r);
	tb_free(&b);
}

static void test_unknown_typeflag_skipped(void **state)
{
	struct tb b = { 0 };
	uint8_t junk[700];
	struct rd r;
	(void)state;

	memset(junk, 0x55, sizeof(junk)); /* would fail as a header */
	tb_entry(&b, "first", '0', "x", 1);
	uint64_t off = tb_entry(&b, "weird", 'Z', junk, sizeof(junk));
	tb_entry(&b, "after", '0', "y", 1);
	tb_end(&b);

	rd_open(&r, &b, 0);
	assert_string_equal(rd_next(&r)->path, "first"); /* data left unread */
	assert_int_equal(r.nwarn, 0);
	const struct el_entry *e = rd_next(&r);
	assert_string_equal(e->path, "after");
	assert_int_equal(e->offset, off + 512 + 1024);
	rd_expect_data(&r, (const uint8_t *)"y", 1);
	assert_int_equal(r.nwarn, 1);
	assert_int_equal(r.warn_off, off);
	assert_non_null(strstr(r.warn_msg, "weird"));
	assert_non_null(strstr(r.warn_msg, "'Z'"));
	assert_int_equal(rd_next_rc(&r), 0);
	assert_int_equal(el_tar_entries(r.t), 2);
	rd_close(&r);
	tb_free(&b);
}

/* POSIX pax: "size" in an extended header overrides the size field of the
 * following header, whatever its type, so a skipped entry must skip that
 * many bytes. */
static void test_unknown_typeflag_honours_pax_size(void **state)
{
	struct tb b = { 0 }, pl = { 0 };
	uint8_t h[512], junk[1000];
	struct rd r;
	(void)state;

	memset(junk, 0x55, sizeof(junk));
	pax_str(&pl, "size", "1000");
	tb_meta(&b, 'x', &pl);
	h_init(h, "weird", 'Z', 0, USTAR);
	tb_hdr(&b, h);
	tb_data(&b, junk, sizeof(junk));
	tb_entry(&b, "after", '0', "y", 1);
	tb_end(&b);

	rd_open(&r, &b, 0);
	const struct el_entry *e = rd_next(&r);
	assert_string_equal(e->path, "after");
	assert_int_equal(r.nwarn, 1);
	rd_close(&r);
	tb_free(&b);
}

static void test_gnu_long_name_and_link(void **state)
{
	static const size_t chunks[] = { 1, 7, 4096, 0 };
	struct tb b = { 0 }, pl = { 0 };
	char name[1001], link[501];
	uint8_t h[512];
	struct rd r;
	(void)state;

	for (int i = 0; i < 1000; i++)
		name[i] = (char)('a' + i % 26);
	name[1000] = 0;
	memset(link, 'L', 500);
	link[500] = 0;
	tb_put(&pl, name, 1001); /* GNU tar counts the NUL */
	tb_meta(&b, 'L', &pl);
	tb_put(&pl, link, 500); /* and some writers do not */
	tb_meta(&b, 'K', &pl);
	h_init(h, "short", '2', 0, USTAR);
	h_str(h, 157, 100, "shortlink");
	tb_hdr(&b, h);
	tb_entry(&b, "next", '5', NULL, 0);
	tb_end(&b);

	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		rd_open(&r, &b, chunks[c]);
		const struct el_entry *e = rd_next(&r);
		assert_int_equal(e->type, EL_ENTRY_SYMLINK);
		assert_int_equal(e->offset, 512 + 1024 + 512 + 512); /* after 'L' and 'K' */
		assert_string_equal(e->path, name);
		assert_string_equal(e->link, link);
		e = rd_next(&r); /* the long names applied to one entry only */
		assert_string_equal(e->path, "next");
		assert_string_equal(e->link, "");
		assert_int_equal(rd_next_rc(&r), 0);
		rd_close(&r);
	}
	tb_free(&b);
}

static void test_base256_numbers(void **state)
{
	struct tb b = { 0 };
	uint8_t h[512], d[600];
	struct rd r;
	(void)state;

	pattern(d, sizeof(d), 5);
	h_init(h, "big", '0', 0, GNU);
	h_b256(h, 124, 12, 600);
	h_b256(h, 108, 8, 4000000000);
	h_b256(h, 116, 8, 0);
	h_b256(h, 136, 12, (int64_t)1 << 40);
	tb_hdr(&b, h);
	tb_data(&b, d, sizeof(d));
	h_init(h, "old", '0', 0, GNU);
	h_b256(h, 136, 12, -1000);
	tb_hdr(&b, h);
	h_init(h, "minus-one", '0', 0, GNU);
	h_b256(h, 136, 12, -1);
	tb_hdr(&b, h);
	tb_end(&b);

	rd_open(&r, &b, 7);
	const struct el_entry *e = rd_next(&r);
	assert_int_equal(e->size, 600);
	assert_int_equal(e->uid, 4000000000u);
	assert_int_equal(e->gid, 0);
	assert_int_equal(e->mtime, (int64_t)1 << 40);
	rd_expect_data(&r, d, sizeof(d));
	e = rd_next(&r);
	assert_int_equal(e->mtime, -1000);
	e = rd_next(&r);
	assert_int_equal(e->mtime, -1);
	assert_int_equal(rd_next_rc(&r), 0);
	rd_close(&r);
	tb_free(&b);

	/* a negative size, and a uid past 32 bits */
	b = (struct tb){ 0 };
	h_init(h, "neg-size", '0', 0, GNU);
	h_b256(h, 124, 12, -5);
	tb_hdr(&b, h);
	tb_end(&b);
	expect_error(&b, 0, -EINVAL, 124);
	tb_free(&b);
	b = (struct tb){ 0 };
	h_init(h, "huge-uid", '0', 0, GNU);
	h_b256(h, 108, 8, (int64_t)1 << 32);
	tb_hdr(&b, h);
	tb_end(&b);
	expect_error(&b, 0, -ERANGE, 108);
	tb_free(&b);
}

static void test_signed_checksum(void **state)
{
	struct tb b = { 0 };
	uint8_t h[512];
	struct rd r;
	(void)state;

	h_init(h, "caf\xc3\xa9-\xe9", '0', 0, USTAR);
	long usum = h_sum(h, 0);
	long ssum = h_sum(h, 1);
	assert_int_equal(usum - ssum, 3 * 256);
	tb_put(&b, h, 512); /* keeps the signed sum */
	tb_end(&b);
	rd_open(&r, &b, 0);
	assert_string_equal(rd_next(&r)->path, "caf\xc3\xa9-\xe9");
	assert_int_equal(rd_next_rc(&r), 0);
	rd_close(&r);
	tb_free(&b);
}

/* ---- fatal errors ---- */

static void test_bad_checksum(void **state)
{
	struct tb b = { 0 };
	uint8_t h[512];
	(void)state;

	tb_entry(&b, "ok", '0', "x", 1);
	h_init(h, "bad", '0', 0, USTAR);
	uint64_t off = tb_hdr(&b, h);
	b.p[off + 1] ^= 0x01;
	tb_end(&b);
	expect_error(&b, 1, -EINVAL, off + 148);
	/* a checksum field that is not a number */
	h_sum(b.p + off, 0);
	memcpy(b.p + off + 148, "12x4", 4);
	expect_error(&b, 1, -EINVAL, off + 148);
	tb_free(&b);
}

static void test_truncation(void **state)
{
	struct tb b = { 0 };
	uint8_t d[1000];
	struct rd r;
	(void)state;

	pattern(d, sizeof(d), 1);
	/* a header cut short */
	tb_entry(&b, "a", '0', "x", 1);
	tb_put(&b, d, 300);
	expect_error(&b, 1, -EINVAL, 1024);

	/* data cut short, read through el_tar_data */
	b.len = 0;
	tb_entry(&b, "a", '0', d, sizeof(d));
	b.len = 512 + 600;
	rd_open(&r, &b, 7);
	rd_next(&r);
	const uint8_t *buf;
	size_t len, got = 0;
	uint64_t off;
	int k;
	while ((k = el_tar_data(r.t, &buf, &len, &off, &r.err)) > 0)
		got += len;
	assert_int_equal(k, -EINVAL);
	assert_int_equal(got, 600);
	assert_int_equal(r.err.offset, 512 + 600);
	rd_close(&r);
	/* and skipped by el_tar_next */
	expect_error(&b, 1, -EINVAL, 512 + 600);
	/* padding cut short */
	b.len = 512 + 1000;
	expect_error(&b, 1, -EINVAL, 512 + 1000);

	/* no end-of-archive marker */
	b.len = 0;
	tb_entry(&b, "a", '0', d, 10);
	expect_error(&b, 1, -EINVAL, 1024);
	/* an empty stream has none either */
	b.len = 0;
	expect_error(&b, 0, -EINVAL, 0);
	/* a long name with no entry after it */
	b.len = 0;
	struct tb pl = { 0 };
	tb_put(&pl, "name", 5);
	tb_meta(&b, 'L', &pl);
	tb_end(&b);
	expect_error(&b, 0, -EINVAL, 1024);
	tb_free(&b);
}

static void test_read_error(void **state)
{
	struct tb b = { 0 };
	struct rd r;
	(void)state;

	tb_entry(&b, "a", '0', "x", 1);
	tb_entry(&b, "b", '0', "y", 1);
	tb_end(&b);
	rd_open_failing(&r, &b, 512, 1024);
	rd_next(&r);
	assert_int_equal(rd_next_rc(&r), -EIO);
	assert_int_equal(r.err.code, -EIO);
	assert_int_equal(r.err.offset, 1024);
	rd_close(&r);
	tb_free(&b);
}

static void test_single_zero_block_and_trailing_bytes(void **state)
{
	struct tb b = { 0 };
	uint8_t want[32], got[32];
	struct rd r;
	(void)state;

	tb_entry(&b, "a", '0', "x", 1);
	tb_put(&b, NULL, 512); /* one zero block only */
	rd_open(&r, &b, 0);
	rd_next(&r);
	assert_int_equal(rd_next_rc(&r), 0);
	assert_int_equal(el_tar_finish(r.t, &r.err), 0);
	rd_close(&r);

	/* whatever follows the marker is read and hashed */
	tb_put(&b, NULL, 512);
	for (int i = 0; i < 5000; i++)
		tb_put(&b, &(uint8_t){ (uint8_t)(i * 13) }, 1);
	sha256(b.p, b.len, want);
	rd_open(&r, &b, 4096);
	rd_next(&r);
	assert_int_equal(rd_next_rc(&r), 0);
	assert_int_equal(el_tar_finish(r.t, &r.err), 0);
	assert_int_equal(el_input_offset(r.in), b.len);
	el_input_digest(r.in, got);
	assert_memory_equal(got, want, 32);
	rd_close(&r);

	/* and counted in tar_bytes by a whole conversion */
	struct el_input *in;
	struct el_convert_result res;
	struct el_error err;
	struct src s = { .p = b.p, .len = b.len, .chunk = 1000 };
	int fd = memfd_create("img", MFD_CLOEXEC);
	assert_true(fd >= 0);
	live_add(LIVE_FD, NULL, fd);
	el_error_clear(&err);
	assert_int_equal(el_input_new_reader(src_read, &s, &in, &err), 0);
	live_add(LIVE_INPUT, in, -1);
	assert_int_equal(el_convert_input(in, fd, NULL, &res, &err), 0);
	assert_int_equal(res.tar_bytes, b.len);
	assert_int_equal(res.entries, 1);
	assert_memory_equal(res.diffid, want, 32);
	tb_free(&b);
}

int main(void)
{
#define T(f) cmocka_unit_test_teardown(f, live_teardown)
	const struct CMUnitTest tests[] = {
		T(test_mixed_archive_read_sizes),
		T(test_ustar_prefix_gnu_and_v7),
		T(test_typeflags),
		T(test_unknown_typeflag_skipped),
		T(test_unknown_typeflag_honours_pax_size),
		T(test_gnu_long_name_and_link),
		T(test_base256_numbers),
		T(test_signed_checksum),
		T(test_bad_checksum),
		T(test_truncation),
		T(test_read_error),
		T(test_single_zero_block_and_trailing_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
