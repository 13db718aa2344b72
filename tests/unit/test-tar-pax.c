/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tar reader's PAX extended headers (local and global), GNU sparse files
 * in all four encodings, and the limits of tar.h.
 */
#include "tar-build.h"

static void test_pax_records(void **state)
{
	struct tb b = { 0 }, pl = { 0 };
	char path[301];
	uint8_t h[512];
	struct rd r;
	(void)state;

	memset(path, 'p', 300);
	path[300] = 0;
	pax_str(&pl, "path", path);
	pax_str(&pl, "linkpath", "pax-link-target");
	pax_str(&pl, "size", "5");
	pax_str(&pl, "uid", "70000");
	pax_str(&pl, "gid", "4294967295");
	pax_str(&pl, "mtime", "1234.5");
	pax_str(&pl, "atime", "1.0"); /* ignored */
	pax_rec(&pl, "SCHILY.xattr.user.a", "v\0\xff" "1", 4);
	pax_str(&pl, "LIBARCHIVE.xattr.user.%41b", "aGVsbG8"); /* "hello", unpadded */
	pax_str(&pl, "SCHILY.xattr.user.same", "one");
	pax_str(&pl, "LIBARCHIVE.xattr.user.same", "dHdv"); /* "two" */
	tb_meta(&b, 'x', &pl);
	h_init(h, "short", '0', 0, USTAR); /* size 0 here: the record wins */
	tb_hdr(&b, h);
	tb_data(&b, "12345", 5);

	pax_str(&pl, "mtime", "-1.25");
	pax_str(&pl, "LIBARCHIVE.xattr.user.same", "b25l"); /* "one" */
	pax_str(&pl, "SCHILY.xattr.user.same", "last");
	tb_meta(&b, 'x', &pl);
	tb_entry(&b, "neg", '0', NULL, 0);
	tb_end(&b);

	rd_open(&r, &b, 0);
	const struct el_entry *e = rd_next(&r);
	assert_string_equal(e->path, path);
	assert_string_equal(e->link, "pax-link-target");
	assert_int_equal(e->size, 5);
	assert_int_equal(e->uid, 70000);
	assert_int_equal(e->gid, 4294967295u);
	assert_int_equal(e->mtime, 1234);
	assert_int_equal(e->mtime_nsec, 500000000);
	assert_int_equal(e->nxattrs, 3);
	const struct el_xattr_kv *x = find_xattr(e, "user.a");
	assert_non_null(x);
	assert_int_equal(x->value_len, 4);
	assert_memory_equal(x->value, "v\0\xff" "1", 4);
	x = find_xattr(e, "user.Ab");
	assert_non_null(x);
	assert_int_equal(x->value_len, 5);
	assert_memory_equal(x->value, "hello", 5);
	x = find_xattr(e, "user.same");
	assert_non_null(x);
	assert_int_equal(x->value_len, 3);
	assert_memory_equal(x->value, "two", 3);
	rd_expect_data(&r, (const uint8_t *)"12345", 5);

	e = rd_next(&r);
	assert_string_equal(e->path, "neg");
	assert_int_equal(e->uid, 1000); /* local records do not carry over */
	assert_int_equal(e->mtime, -2);
	assert_int_equal(e->mtime_nsec, 750000000);
	assert_int_equal(e->nxattrs, 1);
	assert_string_equal(e->xattrs[0].name, "user.same");
	assert_int_equal(e->xattrs[0].value_len, 4);
	assert_memory_equal(e->xattrs[0].value, "last", 4);
	assert_int_equal(rd_next_rc(&r), 0);
	rd_close(&r);
	tb_free(&b);
}

static void test_pax_time_extremes(void **state)
{
	static const struct {
		const char *text;
		int64_t sec;
		uint32_t nsec;
	} cases[] = {
		{ "0", 0, 0 },
		{ "-0.5", -1, 500000000 },
		{ "-3", -3, 0 },
		{ "1.123456789999", 1, 123456789 }, /* digits past 1 ns dropped */
		{ "9223372036854775807", INT64_MAX, 0 },
		{ "-9223372036854775807.5", INT64_MIN, 500000000 },
	};
	struct tb b = { 0 }, pl = { 0 };
	struct rd r;
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pax_str(&pl, "mtime", cases[i].text);
		tb_meta(&b, 'x', &pl);
		tb_entry(&b, "f", '0', NULL, 0);
	}
	tb_end(&b);
	rd_open(&r, &b, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct el_entry *e = rd_next(&r);
		assert_int_equal(e->mtime, cases[i].sec);
		assert_int_equal(e->mtime_nsec, cases[i].nsec);
	}
	rd_close(&r);
	tb_free(&b);
}

static void test_pax_global(void **state)
{
	struct tb b = { 0 }, pl = { 0 };
	struct rd r;
	(void)state;

	pax_str(&pl, "uid", "4242");
	pax_str(&pl, "mtime", "99");
	pax_str(&pl, "path", "global-path");
	pax_str(&pl, "size", "77");
	tb_meta(&b, 'g', &pl);
	tb_entry(&b, "one", '0', "1", 1);
	pax_str(&pl, "uid", "7");
	tb_meta(&b, 'x', &pl);
	tb_entry(&b, "two", '0', NULL, 0);
	tb_entry(&b, "three", '5', NULL, 0);
	tb_end(&b);

	rd_open(&r, &b, 0);
	const struct el_entry *e = rd_next(&r);
	assert_string_equal(e->path, "one");
	assert_int_equal(e->uid, 4242);
	assert_int_equal(e->gid, 1001);
	assert_int_equal(e->mtime, 99);
	assert_int_equal(e->size, 1);
	rd_expect_data(&r, (const uint8_t *)"1", 1);
	e = rd_next(&r);
	assert_string_equal(e->path, "two");
	assert_int_equal(e->uid, 7);
	assert_int_equal(e->mtime, 99);
	e = rd_next(&r);
	assert_string_equal(e->path, "three");
	assert_int_equal(e->uid, 4242);
	assert_int_equal(rd_next_rc(&r), 0);
	assert_int_equal(el_tar_entries(r.t), 3);
	rd_close(&r);
	tb_free(&b);
}

/* POSIX pax, typeflag 'g': each value holds "until another global extended
 * header record is reached that provides another value for the same field";
 * a second global header that only sets mtime keeps the first one's uid. */
static void test_pax_global_headers_accumulate(void **state)
{
	struct tb b = { 0 }, pl = { 0 };
	struct rd r;
	(void)state;

	pax_str(&pl, "uid", "4242");
	tb_meta(&b, 'g', &pl);
	pax_str(&pl, "mtime", "5");
	tb_meta(&b, 'g', &pl);
	tb_entry(&b, "f", '0', NULL, 0);
	tb_end(&b);
	rd_open(&r, &b, 0);
	const struct el_entry *e = rd_next(&r);
	assert_int_equal(e->mtime, 5);
	assert_int_equal(e->uid, 4242);
	rd_close(&r);
	tb_free(&b);
}

/* Global records are kept whole: a value may hold NUL bytes (an xattr), and
 * only the padding after the last record is not part of them. */
static void test_pax_global_binary_value(void **state)
{
	struct tb b = { 0 }, pl = { 0 };
	struct rd r;
	(void)state;

	pax_rec(&pl, "SCHILY.xattr.user.g", "a\0b", 3);
	pax_str(&pl, "uid", "31");
	tb_put(&pl, NULL, 7); /* padding some writers leave */
	tb_meta(&b, 'g', &pl);
	pax_str(&pl, "gid", "32");
	tb_meta(&b, 'g', &pl);
	tb_entry(&b, "f", '0', NULL, 0);
	tb_end(&b);
	rd_open(&r, &b, 0);
	const struct el_entry *e = rd_next(&r);
	assert_int_equal(e->uid, 31);
	assert_int_equal(e->gid, 32);
	assert_int_equal(e->nxattrs, 1);
	assert_string_equal(e->xattrs[0].name, "user.g");
	assert_int_equal(e->xattrs[0].value_len, 3);
	assert_memory_equal(e->xattrs[0].value, "a\0b", 3);
	rd_close(&r);
	tb_free(&b);
}

/* A bad record in a second global header is reported where it is. */
static void test_pax_global_error_offset(void **state)
{
	struct tb b = { 0 }, pl = { 0 };
	(void)state;

	pax_str(&pl, "uid", "1");
	tb_meta(&b, 'g', &pl);
	pax_str(&pl, "gid", "2");
	size_t pos = pl.len;
	pax_str(&pl, "mtime", "x");
	uint64_t hoff = tb_meta(&b, 'g', &pl);
	tb_entry(&b, "f", '0', NULL, 0);
	tb_end(&b);
	expect_error(&b, 0, -EINVAL, hoff + 512 + pos);
	tb_free(&b);
}

/* ---- malformed records ---- */

static void test_pax_malformed(void **state)
{
	static const struct {
		const char *rec;
		size_t len;
	} cases[] = {
		{ "3 a=b\n", 6 },  /* length shorter than "N k=\n" */
		{ "6 abc\n", 6 },  /* no '=' */
		{ "6 =bc\n", 6 },  /* empty key */
		{ "7 a=bcX", 7 },  /* no newline where the length ends */
		{ "99 a=b\n", 7 }, /* length past the payload */
		{ "x a=b\n", 6 },  /* no length */
		{ "5a a=b\n", 7 }, /* no space after the length */
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tb b = { 0 }, pl = { 0 };
		pax_str(&pl, "uid", "123"); /* "11 uid=123\n": a good record first */
		assert_int_equal(pl.len, 11);
		tb_put(&pl, cases[i].rec, cases[i].len);
		uint64_t hoff = tb_meta(&b, 'x', &pl);
		tb_entry(&b, "f", '0', NULL, 0);
		tb_end(&b);
		expect_error(&b, 0, -EINVAL, hoff + 512 + 11);
		tb_free(&b);
	}
}

static void test_pax_bad_values(void **state)
{
	static const char *const cases[][2] = {
		{ "uid", "4294967296" }, { "gid", "-1" },	    { "size", "12a" },
		{ "mtime", "1." },	 { "mtime", "" },	    { "mtime", "1.2.3" },
		{ "SCHILY.devmajor", "4096" }, { "LIBARCHIVE.xattr.user.x", "a*b" },
		{ "GNU.sparse.map", "1,2,3" }, { "GNU.sparse.numbytes", "5" },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tb b = { 0 }, pl = { 0 };
		pax_str(&pl, cases[i][0], cases[i][1]);
		uint64_t hoff = tb_meta(&b, 'x', &pl);
		tb_entry(&b, "f", '0', NULL, 0);
		tb_end(&b);
		expect_error(&b, 0, -EINVAL, hoff + 512);
		tb_free(&b);
	}
}

/* ---- limits ---- */

static void test_limits_long_name(void **state)
{
	struct tb b = { 0 }, pl = { 0 };
	uint8_t h[512];
	struct rd r;
	(void)state;

	/* the header alone is enough: the size is checked before reading */
	h_init(h, "././@LongLink", 'L', EL_TAR_MAX_LONGNAME + 1, GNU);
	uint64_t hoff = tb_hdr(&b, h);
	expect_error(&b, 0, -E2BIG, hoff + 124);
	b.len = 0;
	h_init(h, "././@LongLink", 'K', EL_TAR_MAX_LONGNAME + 1, GNU);
	hoff = tb_hdr(&b, h);
	expect_error(&b, 0, -E2BIG, hoff + 124);
	tb_free(&b);

	/* exactly at the limit: accepted */
	b = (struct tb){ 0 };
	char *name = t_alloc(EL_TAR_MAX_LONGNAME);
	memset(name, 'n', EL_TAR_MAX_LONGNAME - 1);
	name[EL_TAR_MAX_LONGNAME - 1] = 0;
	tb_put(&pl, name, EL_TAR_MAX_LONGNAME);
	tb_meta(&b, 'L', &pl);
	tb_entry(&b, "x", '0', NULL, 0);
	tb_end(&b);
	rd_open(&r, &b, 0);
	assert_string_equal(rd_next(&r)->path, name);
	rd_close(&r);
	t_free(name);
	tb_free(&b);
}

static void test_limits_pax(void **state)
{
	struct tb b = { 0 };
	uint8_t h[512];
	(void)state;

	tb_entry(&b, "first", '0', NULL, 0);
	h_init(h, "PaxHeader", 'x', EL_TAR_MAX_PAX + 1, USTAR);
	uint64_t hoff = tb_hdr(&b, h);
	expect_error(&b, 1, -E2BIG, hoff + 124);
	b.len = 0;
	h_init(h, "PaxHeader", 'g', EL_TAR_MAX_PAX + 1, USTAR);
	hoff = tb_hdr(&b, h);
	expect_error(&b, 0, -E2BIG, hoff + 124);
	tb_free(&b);
}

static void test_limits_xattr_value(void **state)
{
	struct tb b = { 0 }, pl = { 0 };
	uint8_t *v = t_alloc(EL_TAR_MAX_XATTR_VALUE + 1);
	struct rd r;
	(void)state;

	memset(v, 'v', EL_TAR_MAX_XATTR_VALUE + 1);
	pax_rec(&pl, "SCHILY.xattr.user.big", v, EL_TAR_MAX_XATTR_VALUE);
	tb_meta(&b, 'x', &pl);
	tb_entry(&b, "ok", '0', NULL, 0);
	pax_rec(&pl, "SCHILY.xattr.user.big", v, EL_TAR_MAX_XATTR_VALUE + 1);
	uint64_t hoff = tb_meta(&b, 'x', &pl);
	tb_entry(&b, "too-big", '0', NULL, 0);
	tb_end(&b);

	rd_open(&r, &b, 0);
	const struct el_entry *e = rd_next(&r);
	assert_int_equal(e->nxattrs, 1);
	assert_int_equal(e->xattrs[0].value_len, EL_TAR_MAX_XATTR_VALUE);
	rd_close(&r);
	expect_error(&b, 1, -EINVAL, hoff + 512);
	t_free(v);
	tb_free(&b);
}

static void test_limits_xattr_name(void **state)
{
	struct tb b = { 0 }, pl = { 0 };
	char key[13 + 257];
	(void)state;

	memcpy(key, "SCHILY.xattr.", 13);
	memset(key + 13, 'k', 256);
	key[13 + 256] = 0; /* a 256-byte name: one past EL_TAR_MAX_XATTR_NAME */
	pax_str(&pl, key, "v");
	uint64_t hoff = tb_meta(&b, 'x', &pl);
	tb_entry(&b, "f", '0', NULL, 0);
	tb_end(&b);
	expect_error(&b, 0, -EINVAL, hoff + 512);
	tb_free(&b);
}

/* ---- sparse files ---- */

static void test_sparse_gnu_old(void **state)
{
	struct tb b = { 0 };
	uint8_t img[GNU_REALSIZE];
	struct rd r;
	(void)state;

	/* map in the header only, then with one extension block */
	add_gnu_sparse(&b, "four", gnu_map, 4, 5000, img);
	uint8_t img4[5000];
	memcpy(img4, img, sizeof(img4));
	add_gnu_sparse(&b, "six", gnu_map, 6, GNU_REALSIZE, img);
	tb_entry(&b, "after", '0', "z", 1);
	tb_end(&b);

	rd_open(&r, &b, 7);
	check_sparse_entry(&r, rd_next(&r), "four", gnu_map, 4, 5000, img4);
	check_sparse_entry(&r, rd_next(&r), "six", gnu_map, 6, GNU_REALSIZE, img);
	const struct el_entry *e = rd_next(&r);
	assert_string_equal(e->path, "after");
	rd_expect_data(&r, (const uint8_t *)"z", 1);
	assert_int_equal(rd_next_rc(&r), 0);
	rd_close(&r);
	tb_free(&b);
}

/* An old GNU sparse entry ('S') after a pax global header: the globals'
 * defaults apply to it, and its own map (read from its header) stays; the
 * reset that keeps a global name or size from leaking into later entries
 * used to wipe the map, so the entry came out as its stored bytes only. */
static void test_sparse_gnu_old_after_global(void **state)
{
	struct tb b = { 0 }, pl = { 0 };
	uint8_t img[GNU_REALSIZE];
	struct rd r;
	(void)state;

	pax_str(&pl, "uid", "4242");
	tb_meta(&b, 'g', &pl);
	add_gnu_sparse(&b, "six", gnu_map, 6, GNU_REALSIZE, img);
	tb_entry(&b, "after", '0', "z", 1);
	tb_end(&b);

	rd_open(&r, &b, 0);
	const struct el_entry *e = rd_next(&r);
	assert_int_equal(e->uid, 4242);
	check_sparse_entry(&r, e, "six", gnu_map, 6, GNU_REALSIZE, img);
	e = rd_next(&r);
	assert_string_equal(e->path, "after");
	assert_int_equal(e->uid, 4242);
	rd_expect_data(&r, (const uint8_t *)"z", 1);
	assert_int_equal(rd_next_rc(&r), 0);
	rd_close(&r);
	tb_free(&b);
}

/* A PAX 0.x sparse entry: records, then the stored pieces as the data. */
static void pax0_entry(struct tb *b, struct tb *pl, const char *name, const uint8_t *img,
		       uint64_t stored)
{
	uint8_t *d = t_alloc(stored);
	uint64_t pos = 0;
	for (size_t i = 0; i < 3; i++) {
		memcpy(d + pos, img + pax_map[i].off, pax_map[i].len);
		pos += pax_map[i].len;
	}
	tb_meta(b, 'x', pl);
	tb_entry(b, name, '0', d, stored);
	t_free(d);
}

static void test_sparse_pax(void **state)
{
	struct tb b = { 0 }, pl = { 0 };
	uint8_t img[PAX_REALSIZE], img10[PAX_REALSIZE];
	char num[32];
	struct rd r;
	(void)state;

	memset(img, 0, sizeof(img));
	for (size_t i = 0; i < 3; i++)
		pattern(img + pax_map[i].off, pax_map[i].len, (unsigned)i + 20);
	/* 0.0: offset/numbytes pairs */
	pax_str(&pl, "GNU.sparse.size", "9000");
	pax_str(&pl, "GNU.sparse.numblocks", "3");
	for (size_t i = 0; i < 3; i++) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)pax_map[i].off);
		pax_str(&pl, "GNU.sparse.offset", num);
		snprintf(num, sizeof(num), "%llu", (unsigned long long)pax_map[i].len);
		pax_str(&pl, "GNU.sparse.numbytes", num);
	}
	pax_str(&pl, "path", "sparse-0.0");
	pax0_entry(&b, &pl, "GNUSparseFile.1/x", img, 301);
	/* 0.1: one map */
	pax_str(&pl, "GNU.sparse.size", "9000");
	pax_str(&pl, "GNU.sparse.numblocks", "3");
	pax_str(&pl, "GNU.sparse.map", "0,100,5000,200,8000,1");
	pax_str(&pl, "GNU.sparse.name", "sparse-0.1");
	pax0_entry(&b, &pl, "GNUSparseFile.2/x", img, 301);
	/* 1.0: the map in the data */
	build_pax_sparse_1_0(&b, img10);
	tb_entry(&b, "after", '0', "z", 1);
	tb_end(&b);

	rd_open(&r, &b, 0);
	check_sparse_entry(&r, rd_next(&r), "sparse-0.0", pax_map, 3, PAX_REALSIZE, img);
	check_sparse_entry(&r, rd_next(&r), "sparse-0.1", pax_map, 3, PAX_REALSIZE, img);
	check_sparse_entry(&r, rd_next(&r), "real/sparse-1.0", pax_map, 3, PAX_REALSIZE, img10);
	const struct el_entry *e = rd_next(&r);
	assert_string_equal(e->path, "after");
	rd_expect_data(&r, (const uint8_t *)"z", 1);
	assert_int_equal(rd_next_rc(&r), 0);
	rd_close(&r);

	/* 1.0 read without being consumed: el_tar_next skips it whole */
	rd_open(&r, &b, 7);
	for (int i = 0; i < 3; i++)
		rd_next(&r);
	assert_string_equal(rd_next(&r)->path, "after");
	rd_close(&r);
	tb_free(&b);
}

static void test_sparse_errors(void **state)
{
	static const struct sparse_def past[] = { { 0, 10 }, { 4990, 20 } };
	static const struct sparse_def descending[] = { { 1000, 10 }, { 500, 10 } };
	static const struct sparse_def overlap[] = { { 0, 100 }, { 50, 10 } };
	struct tb b = { 0 }, pl = { 0 };
	uint8_t img[10000];
	(void)state;

	/* old GNU: past the real size, and not ascending */
	uint64_t hoff = add_gnu_sparse(&b, "past", past, 2, 5000, img);
	tb_end(&b);
	expect_error(&b, 0, -EINVAL, hoff);
	b.len = 0;
	hoff = add_gnu_sparse(&b, "desc", descending, 2, 5000, img);
	tb_end(&b);
	expect_error(&b, 0, -EINVAL, hoff + 386 + 24);
	b.len = 0;
	hoff = add_gnu_sparse(&b, "overlap", overlap, 2, 5000, img);
	tb_end(&b);
	expect_error(&b, 0, -EINVAL, hoff + 386 + 24);

	/* 0.1 map past the real size / descending */
	b.len = 0;
	pax_str(&pl, "GNU.sparse.size", "100");
	pax_str(&pl, "GNU.sparse.map", "0,10,95,10");
	tb_meta(&b, 'x', &pl);
	hoff = tb_entry(&b, "f", '0', img, 20);
	tb_end(&b);
	expect_error(&b, 0, -EINVAL, hoff);
	b.len = 0;
	pax_str(&pl, "GNU.sparse.size", "100");
	size_t rec = pl.len; /* the map record's position in the payload */
	pax_str(&pl, "GNU.sparse.map", "50,10,0,10");
	hoff = tb_meta(&b, 'x', &pl);
	tb_entry(&b, "f", '0', img, 20);
	tb_end(&b);
	expect_error(&b, 0, -EINVAL, hoff + 512 + rec);
	/* a map covering fewer bytes than the entry stores */
	b.len = 0;
	pax_str(&pl, "GNU.sparse.size", "100");
	pax_str(&pl, "GNU.sparse.map", "0,10");
	tb_meta(&b, 'x', &pl);
	hoff = tb_entry(&b, "f", '0', img, 20);
	tb_end(&b);
	expect_error(&b, 0, -EINVAL, hoff);
	/* 1.0 without a real size */
	b.len = 0;
	pax_str(&pl, "GNU.sparse.major", "1");
	pax_str(&pl, "GNU.sparse.minor", "0");
	tb_meta(&b, 'x', &pl);
	uint8_t map10[513] = "1\n0\n1\n"; /* the map, padded to a block, then the byte */
	hoff = tb_entry(&b, "f", '0', map10, sizeof(map10));
	tb_end(&b);
	expect_error(&b, 0, -EINVAL, hoff);
	tb_free(&b);
}

/* GNU.sparse.numbytes sets the length of the segment its offset opened; it
 * must get the same overflow and order checks as every other map form. Here
 * 200 + (2^64 - 50) wraps to 150, inside the real size, and the byte count
 * wraps to the 50 bytes stored, so nothing notices. */
static void test_sparse_0_0_numbytes_overflow(void **state)
{
	struct tb b = { 0 }, pl = { 0 };
	uint8_t d[50] = { 0 };
	(void)state;

	pax_str(&pl, "GNU.sparse.size", "1000");
	pax_str(&pl, "GNU.sparse.offset", "0");
	pax_str(&pl, "GNU.sparse.numbytes", "100");
	pax_str(&pl, "GNU.sparse.offset", "200");
	pax_str(&pl, "GNU.sparse.numbytes", "18446744073709551566");
	tb_meta(&b, 'x', &pl);
	tb_entry(&b, "f", '0', d, sizeof(d));
	tb_end(&b);

	struct rd r;
	rd_open(&r, &b, 0);
	assert_int_equal(rd_next_rc(&r), -EINVAL);
	rd_close(&r);
	tb_free(&b);
}

int main(void)
{
#define T(f) cmocka_unit_test_teardown(f, live_teardown)
	const struct CMUnitTest tests[] = {
		T(test_pax_records),
		T(test_pax_time_extremes),
		T(test_pax_global),
		T(test_pax_global_headers_accumulate),
		T(test_pax_global_binary_value),
		T(test_pax_global_error_offset),
		T(test_pax_malformed),
		T(test_pax_bad_values),
		T(test_limits_long_name),
		T(test_limits_pax),
		T(test_limits_xattr_value),
		T(test_limits_xattr_name),
		T(test_sparse_gnu_old),
		T(test_sparse_gnu_old_after_global),
		T(test_sparse_pax),
		T(test_sparse_errors),
		T(test_sparse_0_0_numbytes_overflow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
