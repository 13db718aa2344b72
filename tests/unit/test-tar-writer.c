/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The streaming tar writer (lib/tar/tar-writer.c, compress.c): archives are
 * read back with our tar reader, the compressed forms are inflated with
 * isa-l and zstd directly and compared with the plain form, and the digests
 * are checked against an independent sha256 of what the sink received.
 * GNU tar's and Python's view of the output is in tests/tar-writer/.
 */
#include <isa-l/igzip_lib.h>
#include <stdatomic.h>
#include <zstd.h>

#include "erofs-layer/tar-writer.h"
#include "tar-build.h"

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define MIN_T(a, b) ((a) < (b) ? (a) : (b))
#define KIB 1024u
#define MIB (1024u * 1024u)

/* ---- writers alive in a test, freed by the teardown if it fails ---- */

static struct el_tarw *tw_live[8];
static EVP_MD_CTX *md_live[4];

static void tw_track(struct el_tarw *w)
{
	for (size_t i = 0; i < NELEMS(tw_live); i++)
		if (!tw_live[i]) {
			tw_live[i] = w;
			return;
		}
	fail_msg("too many live writers");
}

static void tw_free(struct el_tarw *w)
{
	for (size_t i = 0; i < NELEMS(tw_live); i++)
		if (tw_live[i] == w)
			tw_live[i] = NULL;
	el_tarw_free(w);
}

static int teardown(void **state)
{
	for (size_t i = 0; i < NELEMS(tw_live); i++) {
		el_tarw_free(tw_live[i]);
		tw_live[i] = NULL;
	}
	for (size_t i = 0; i < NELEMS(md_live); i++) {
		EVP_MD_CTX_free(md_live[i]);
		md_live[i] = NULL;
	}
	return live_teardown(state);
}

/* ---- the sink ---- */

struct sink {
	bool keep;   /* keep all bytes in p/len */
	uint8_t *p;  /* registered with live.h */
	size_t len, cap;
	uint64_t total;
	EVP_MD_CTX *md; /* sha256 of every byte, computed here */
	size_t calls;
	bool short_call; /* a call shorter than EL_TARW_CHUNK was not the last */
	bool bad_call;	 /* a call with 0 or more than EL_TARW_CHUNK bytes */
	size_t fail_on_call; /* 1-based; 0: never */
	int fail_code;
	size_t cancel_on_call;
	atomic_bool *cancel;
	uint8_t head[16 * KIB];
	size_t head_len;
	uint8_t tail[4 * KIB]; /* the last bytes, at [offset % sizeof(tail)] */
};

static void sink_init(struct sink *s, bool keep)
{
	memset(s, 0, sizeof(*s));
	s->keep = keep;
	s->md = EVP_MD_CTX_new();
	assert_non_null(s->md);
	for (size_t i = 0;; i++) {
		assert_true(i < NELEMS(md_live));
		if (!md_live[i]) {
			md_live[i] = s->md;
			break;
		}
	}
	assert_int_equal(EVP_DigestInit_ex(s->md, EVP_sha256(), NULL), 1);
}

static void sink_digest(struct sink *s, uint8_t out[32])
{
	unsigned n = 0;
	assert_int_equal(EVP_DigestFinal_ex(s->md, out, &n), 1);
	for (size_t i = 0; i < NELEMS(md_live); i++)
		if (md_live[i] == s->md)
			md_live[i] = NULL;
	EVP_MD_CTX_free(s->md);
	s->md = NULL;
}

static void sink_done(struct sink *s)
{
	if (s->md)
		sink_digest(s, (uint8_t[32]){ 0 });
	t_free(s->p);
	s->p = NULL;
}

static int sink_write(void *ud, const void *buf, size_t len)
{
	struct sink *s = ud;

	s->calls++;
	if (s->fail_on_call && s->calls >= s->fail_on_call)
		return s->fail_code;
	if (s->cancel_on_call && s->calls == s->cancel_on_call)
		atomic_store(s->cancel, true);
	if (len == 0 || len > EL_TARW_CHUNK)
		s->bad_call = true;
	if (s->calls > 1 && s->total % EL_TARW_CHUNK)
		s->short_call = true;
	EVP_DigestUpdate(s->md, buf, len);
	if (s->head_len < sizeof(s->head)) {
		size_t k = MIN_T(len, sizeof(s->head) - s->head_len);
		memcpy(s->head + s->head_len, buf, k);
		s->head_len += k;
	}
	for (size_t i = len > sizeof(s->tail) ? len - sizeof(s->tail) : 0; i < len; i++)
		s->tail[(s->total + i) % sizeof(s->tail)] = ((const uint8_t *)buf)[i];
	if (s->keep) {
		if (s->len + len > s->cap) {
			s->cap = (s->len + len) * 2;
			s->p = t_realloc(s->p, s->cap);
		}
		memcpy(s->p + s->len, buf, len);
		s->len += len;
	}
	s->total += len;
	return 0;
}

static struct el_tarw *tw_open(struct sink *s, enum el_compression c, int level)
{
	struct el_tarw_opts o = { .write = sink_write, .write_ud = s, .compression = c,
				  .level = level };
	struct el_tarw *w = NULL;
	struct el_error err;

	el_error_clear(&err);
	int r = el_tarw_new(&o, &w, &err);
	if (r < 0)
		fail_msg("el_tarw_new: %d %s", r, err.msg);
	tw_track(w);
	return w;
}

static struct el_tarw *tw_open_opts(struct sink *s, struct el_tarw_opts o)
{
	struct el_tarw *w = NULL;
	struct el_error err;

	o.write = sink_write;
	o.write_ud = s;
	el_error_clear(&err);
	int r = el_tarw_new(&o, &w, &err);
	if (r < 0)
		fail_msg("el_tarw_new: %d %s", r, err.msg);
	tw_track(w);
	return w;
}

static void tw_add(struct el_tarw *w, const struct el_entry *e)
{
	struct el_error err;
	el_error_clear(&err);
	int r = el_tarw_add(w, e, &err);
	if (r < 0)
		fail_msg("el_tarw_add(%s): %d %s", e->path, r, err.msg);
}

static void tw_write(struct el_tarw *w, const void *p, size_t n)
{
	struct el_error err;
	el_error_clear(&err);
	int r = el_tarw_write(w, p, n, &err);
	if (r < 0)
		fail_msg("el_tarw_write: %d %s", r, err.msg);
}

static void tw_finish(struct el_tarw *w, struct el_tarw_result *res)
{
	struct el_error err;
	el_error_clear(&err);
	int r = el_tarw_finish(w, res, &err);
	if (r < 0)
		fail_msg("el_tarw_finish: %d %s", r, err.msg);
}

/* Checks the result against the sink: digest, size, chunking. */
static void check_result(struct sink *s, const struct el_tarw_result *res)
{
	uint8_t d[32];

	sink_digest(s, d);
	assert_memory_equal(res->digest, d, 32);
	assert_int_equal(res->size, s->total);
	assert_false(s->bad_call);
	assert_false(s->short_call);
	assert_int_equal(s->calls, (s->total + EL_TARW_CHUNK - 1) / EL_TARW_CHUNK);
}

/* ---- a table of entries, written and checked ---- */

struct tent {
	enum el_entry_type type;
	const char *path;
	const char *link;
	uint32_t mode, uid, gid;
	int64_t mtime;
	uint32_t mtime_nsec;
	uint64_t size;
	uint32_t major, minor;
	const struct el_xattr_kv *xattrs;
	size_t nxattrs;
	unsigned seed; /* of the data; 0: zeros written with el_tarw_write_zeros */
};

/* Data of a file: compressible text-like bytes with a random stretch. */
static void tdata(uint8_t *p, size_t n, unsigned seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	for (size_t i = 0; i < n; i++) {
		if ((i / 4096) % 3 == 1) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			p[i] = (uint8_t)x;
		} else {
			p[i] = (uint8_t)("the quick brown fox jumps over the lazy dog\n"[(i + seed) % 44]);
		}
	}
}

static struct el_entry to_entry(const struct tent *t)
{
	return (struct el_entry){ .type = t->type, .path = t->path, .link = t->link,
				  .mode = t->mode, .uid = t->uid, .gid = t->gid,
				  .mtime = t->mtime, .mtime_nsec = t->mtime_nsec,
				  .size = t->size, .dev_major = t->major, .dev_minor = t->minor,
				  .xattrs = t->xattrs, .nxattrs = t->nxattrs };
}

/* Writes the data of REG entries in pieces of the given sizes (cycled). */
static void write_table(struct el_tarw *w, const struct tent *t, size_t n, const size_t *pieces,
			size_t npieces)
{
	size_t pi = 0;
	for (size_t i = 0; i < n; i++) {
		struct el_entry e = to_entry(&t[i]);
		tw_add(w, &e);
		if (t[i].type != EL_ENTRY_REG || !t[i].size)
			continue;
		if (!t[i].seed) {
			struct el_error err;
			el_error_clear(&err);
			assert_int_equal(el_tarw_write_zeros(w, t[i].size, &err), 0);
			continue;
		}
		uint8_t *d = t_alloc(t[i].size);
		tdata(d, t[i].size, t[i].seed);
		for (uint64_t off = 0; off < t[i].size;) {
			size_t want = pieces[pi++ % npieces];
			size_t k = MIN_T(want, t[i].size - off);
			tw_write(w, d + off, k);
			off += k;
		}
		t_free(d);
	}
}

static const char *want_path(const struct tent *t, char *buf, size_t cap)
{
	size_t n = strlen(t->path);
	if (t->type == EL_ENTRY_DIR && t->path[n - 1] != '/') {
		snprintf(buf, cap, "%s/", t->path);
		return buf;
	}
	return t->path;
}

/* Reads a plain tar with our reader and compares it with the table. */
static void check_table_d(const uint8_t *tar, size_t len, const struct tent *t, size_t n,
			  bool has_epoch, int64_t epoch, const uint8_t *diffid)
{
	struct tb b = { .p = (uint8_t *)tar, .len = len };
	struct rd r;
	char pbuf[8192];

	rd_open(&r, &b, 3000);
	for (size_t i = 0; i < n; i++) {
		const struct el_entry *e = rd_next(&r);
		assert_int_equal(e->type, t[i].type);
		assert_string_equal(e->path, want_path(&t[i], pbuf, sizeof(pbuf)));
		assert_int_equal(e->mode, t[i].mode & 07777);
		assert_int_equal(e->uid, t[i].uid);
		assert_int_equal(e->gid, t[i].gid);
		int64_t mt = has_epoch && t[i].mtime > epoch ? epoch : t[i].mtime;
		assert_int_equal(e->mtime, mt);
		assert_int_equal(e->mtime_nsec, 0);
		if (t[i].type == EL_ENTRY_SYMLINK || t[i].type == EL_ENTRY_HARDLINK)
			assert_string_equal(e->link, t[i].link);
		else
			assert_string_equal(e->link, "");
		if (t[i].type == EL_ENTRY_CHR || t[i].type == EL_ENTRY_BLK) {
			assert_int_equal(e->dev_major, t[i].major);
			assert_int_equal(e->dev_minor, t[i].minor);
		}
		assert_int_equal(e->nxattrs, t[i].nxattrs);
		for (size_t k = 0; k < t[i].nxattrs; k++) {
			const struct el_xattr_kv *x = find_xattr(e, t[i].xattrs[k].name);
			assert_non_null(x);
			assert_int_equal(x->value_len, t[i].xattrs[k].value_len);
			if (x->value_len)
				assert_memory_equal(x->value, t[i].xattrs[k].value, x->value_len);
		}
		if (t[i].type == EL_ENTRY_REG) {
			assert_int_equal(e->size, t[i].size);
			uint8_t *want = t_alloc(t[i].size);
			if (t[i].seed)
				tdata(want, t[i].size, t[i].seed);
			rd_expect_data(&r, want, t[i].size);
			t_free(want);
		} else {
			assert_int_equal(e->size, 0);
		}
	}
	assert_int_equal(rd_next_rc(&r), 0);
	assert_int_equal(el_tar_finish(r.t, &r.err), 0);
	uint8_t d[32], want[32];
	el_input_digest(r.in, d);
	if (diffid)
		memcpy(want, diffid, 32);
	else
		sha256(tar, len, want);
	assert_memory_equal(d, want, 32);
	rd_close(&r);
}

/* The same for a plain tar. */
static void check_table(const uint8_t *tar, size_t len, const struct tent *t, size_t n,
			bool has_epoch, int64_t epoch)
{
	check_table_d(tar, len, t, n, has_epoch, epoch, NULL);
}

/* Writes the table to memory; returns the result, the sink keeps the bytes. */
static void make_archive(struct sink *s, enum el_compression c, int level, const struct tent *t,
			 size_t n, struct el_tarw_result *res)
{
	static const size_t pieces[] = { 1, 511, 513, 4096, 100000, 3 * MIB };
	sink_init(s, true);
	struct el_tarw *w = tw_open(s, c, level);
	write_table(w, t, n, pieces, NELEMS(pieces));
	tw_finish(w, res);
	tw_free(w);
	check_result(s, res);
	assert_int_equal(res->entries, n);
}

/* ---- decompression, independent of our input code ---- */

static void gunzip(const uint8_t *p, size_t n, struct tb *out)
{
	struct inflate_state st;

	isal_inflate_init(&st);
	st.crc_flag = ISAL_GZIP;
	st.next_in = (uint8_t *)p;
	st.avail_in = (uint32_t)n;
	for (;;) {
		if (out->cap - out->len < MIB) {
			out->cap = out->cap * 2 + 4 * MIB;
			out->p = t_realloc(out->p, out->cap);
		}
		st.next_out = out->p + out->len;
		st.avail_out = (uint32_t)(out->cap - out->len);
		int r = isal_inflate(&st);
		assert_int_equal(r, ISAL_DECOMP_OK);
		out->len = (size_t)(st.next_out - out->p);
		if (st.block_state == ISAL_BLOCK_FINISH)
			break;
		assert_true(st.avail_in > 0 || st.avail_out == 0);
	}
	assert_int_equal(st.avail_in, 0); /* one member, nothing after it */
}

static void unzstd(const uint8_t *p, size_t n, struct tb *out)
{
	ZSTD_DCtx *d = ZSTD_createDCtx();
	ZSTD_inBuffer ib = { p, n, 0 };
	size_t r = 1;

	assert_non_null(d);
	while (r != 0) {
		if (out->cap - out->len < MIB) {
			out->cap = out->cap * 2 + 4 * MIB;
			out->p = t_realloc(out->p, out->cap);
		}
		ZSTD_outBuffer ob = { out->p, out->cap, out->len };
		r = ZSTD_decompressStream(d, &ob, &ib);
		out->len = ob.pos;
		if (ZSTD_isError(r)) {
			ZSTD_freeDCtx(d);
			fail_msg("zstd: %s", ZSTD_getErrorName(r));
		}
		if (r != 0 && ib.pos == ib.size && ob.pos < ob.size) {
			ZSTD_freeDCtx(d);
			fail_msg("truncated zstd frame");
		}
	}
	ZSTD_freeDCtx(d);
	assert_int_equal(ib.pos, n);
}

/* ---- tests ---- */

static const uint8_t bin_val[] = { 'a', 0, '\n', '=', 0xff, 0, 0 };
static const struct el_xattr_kv some_xattrs[] = {
	{ "user.zeta", (const uint8_t *)"z", 1 },
	{ "security.capability", bin_val, sizeof(bin_val) },
	{ "user.empty", NULL, 0 },
	{ "trusted.overlay.opaque", (const uint8_t *)"y", 1 },
};

static const struct tent kinds[] = {
	{ EL_ENTRY_DIR, "etc", NULL, 0755, 0, 0, 1700000000, 123, 0, 0, 0, NULL, 0, 0 },
	{ EL_ENTRY_DIR, "etc/sub/", NULL, 01777, 1, 2, 1700000001, 0, 99 /* ignored */, 0, 0,
	  NULL, 0, 0 },
	{ EL_ENTRY_REG, "etc/hosts", NULL, 0644, 1000, 1001, 1600000000, 999999999, 1000, 0, 0,
	  NULL, 0, 1 },
	{ EL_ENTRY_REG, "etc/empty", NULL, 04755, 0, 0, 0, 0, 0, 0, 0, NULL, 0, 2 },
	{ EL_ENTRY_REG, "etc/block", NULL, 02600, 0, 0, 5, 0, 512, 0, 0, NULL, 0, 3 },
	{ EL_ENTRY_REG, "etc/big", NULL, 0600, 0, 0, 5, 0, 3 * MIB + 17, 0, 0, some_xattrs, 4, 4 },
	{ EL_ENTRY_REG, "etc/zeros", NULL, 0600, 0, 0, 5, 0, 70000, 0, 0, NULL, 0, 0 },
	{ EL_ENTRY_SYMLINK, "etc/link", "../usr/lib/os-release", 0777, 0, 0, 1, 0, 55, 0, 0,
	  NULL, 0, 0 },
	{ EL_ENTRY_HARDLINK, "etc/hard", "etc/hosts", 0644, 1000, 1001, 1600000000, 0, 0, 0, 0,
	  NULL, 0, 0 },
	{ EL_ENTRY_CHR, "dev/null", NULL, 0666, 0, 0, 2, 0, 0, 1, 3, NULL, 0, 0 },
	{ EL_ENTRY_BLK, "dev/sda", NULL, 0660, 0, 6, 2, 0, 0, 0xfff, 0xfffff, NULL, 0, 0 },
	{ EL_ENTRY_FIFO, "run/fifo", NULL, 0600, 0, 0, 2, 0, 0, 0, 0, some_xattrs + 1, 1, 0 },
	{ EL_ENTRY_REG, "n\xc3\xa4me with spaces", NULL, 0644, 0, 0, 2, 0, 1, 0, 0, NULL, 0, 6 },
};

static void test_kinds_round_trip(void **state)
{
	struct sink s;
	struct el_tarw_result res;
	(void)state;

	make_archive(&s, EL_COMPRESSION_NONE, 0, kinds, NELEMS(kinds), &res);
	assert_int_equal(res.uncompressed_size, s.len);
	assert_memory_equal(res.diffid, res.digest, 32);
	check_table(s.p, s.len, kinds, NELEMS(kinds), false, 0);
	sink_done(&s);
}

/* The ustar header of a plain entry, byte by byte (POSIX ustar layout). */
static void test_header_layout(void **state)
{
	static const struct tent t[] = {
		{ EL_ENTRY_REG, "dir/file", NULL, 0104644, 1000, 100, 1700000000, 5, 5, 0, 0, NULL,
		  0, 7 },
		{ EL_ENTRY_DIR, "dir", NULL, 0755, 0, 0, 0, 0, 0, 0, 0, NULL, 0, 0 },
	};
	struct sink s;
	struct el_tarw_result res;
	(void)state;

	make_archive(&s, EL_COMPRESSION_NONE, 0, t, 2, &res);
	/* no pax header, one data block, two end blocks */
	assert_int_equal(s.len, 512 * 5);
	const uint8_t *h = s.p;
	uint8_t want[512] = { 0 };
	memcpy(want, "dir/file", 8);
	memcpy(want + 100, "0004644", 8); /* the type bits are not written */
	memcpy(want + 108, "0001750", 8);
	memcpy(want + 116, "0000144", 8);
	memcpy(want + 124, "00000000005", 12);
	memcpy(want + 136, "14524770400", 12);
	want[156] = '0';
	memcpy(want + 257, "ustar\0" "00", 8);
	memcpy(want + 329, "0000000", 8);
	memcpy(want + 337, "0000000", 8);
	memset(want + 148, ' ', 8);
	unsigned sum = 0;
	for (int i = 0; i < 512; i++)
		sum += want[i];
	snprintf((char *)want + 148, 8, "%06o", sum);
	want[155] = ' ';
	assert_memory_equal(h, want, 512);
	uint8_t data[512] = { 0 };
	tdata(data, 5, 7);
	assert_memory_equal(s.p + 512, data, 512); /* data, then zero padding */
	h = s.p + 1024;
	assert_memory_equal(h, "dir/\0", 5);
	assert_int_equal(h[156], '5');
	assert_memory_equal(h + 124, "00000000000", 12);
	static const uint8_t zero[1024];
	assert_memory_equal(s.p + 1536, zero, 1024);
	sink_done(&s);
}

/* The pax payload of the first entry ('x' header at 0), as a string. */
static size_t pax_payload(const uint8_t *tar, char *out, size_t cap)
{
	assert_int_equal(tar[156], 'x');
	assert_memory_equal(tar + 257, "ustar\0" "00", 8);
	size_t n = (size_t)strtoull((const char *)tar + 124, NULL, 8);
	assert_true(n < cap);
	memcpy(out, tar + 512, n);
	out[n] = 0;
	return n;
}

/* Compares the first entry's pax payload with records built by tar-build.h
 * (an independent encoder); frees want. Returns the payload length. */
static size_t expect_pax(const uint8_t *tar, struct tb *want)
{
	static char pl[64 * 1024];
	size_t n = pax_payload(tar, pl, sizeof(pl));
	assert_int_equal(n, want->len);
	assert_memory_equal(pl, want->p, n);
	tb_free(want);
	return n;
}

static char *repeat(char c, size_t n)
{
	char *p = t_alloc(n + 1);
	memset(p, c, n);
	return p;
}

static void test_long_paths(void **state)
{
	char *p100 = repeat('a', 100), *p101 = repeat('b', 101), *p256 = repeat('c', 256),
	     *p257 = repeat('d', 257), *pnoslash = repeat('e', 150), *pname = repeat('f', 150),
	     *pdir = repeat('g', 200), *proot = repeat('h', 150), *p4k = repeat('i', 4000);
	struct {
		char *p;
		enum el_entry_type type;
		bool pax;
	} cases[] = {
		{ p100, EL_ENTRY_REG, false },	/* exactly fills the name field */
		{ p101, EL_ENTRY_REG, false },	/* split: "bbb/b" */
		{ p256, EL_ENTRY_REG, false },	/* 155 '/' 100: the longest split */
		{ p257, EL_ENTRY_REG, true },	/* one byte too many for any split */
		{ pnoslash, EL_ENTRY_REG, true }, /* no '/' at all */
		{ pname, EL_ENTRY_REG, true },	/* its last component is 101 bytes */
		{ pdir, EL_ENTRY_DIR, false },	/* directory: "…/" + "gg/" */
		{ proot, EL_ENTRY_SYMLINK, true }, /* the only '/' at index 0 */
		{ p4k, EL_ENTRY_DIR, true },
	};
	p101[3] = '/';
	p256[155] = '/';
	p257[155] = '/';
	p257[30] = '/';
	pname[48] = '/';
	pdir[150] = '/';
	proot[0] = '/';
	for (size_t i = 100; i < 4000; i += 100)
		p4k[i] = '/';

	for (size_t i = 0; i < NELEMS(cases); i++) {
		struct tent t = { cases[i].type, cases[i].p, "target", 0755, 0, 0, 1, 0, 0, 0, 0,
				  NULL, 0, 0 };
		struct sink s;
		struct el_tarw_result res;

		make_archive(&s, EL_COMPRESSION_NONE, 0, &t, 1, &res);
		if (cases[i].pax) {
			struct tb want = { 0 };
			char pbuf[8192];
			pax_str(&want, "path", want_path(&t, pbuf, sizeof(pbuf)));
			size_t n = expect_pax(s.p, &want);
			/* the main header's name is the path cut to 100 bytes */
			size_t hoff = 512 + (n + 511) / 512 * 512;
			assert_memory_equal(s.p + hoff, cases[i].p, 100);
			assert_int_equal(s.p[hoff + 345], 0); /* no prefix */
		} else {
			assert_true(s.p[156] != 'x');
		}
		check_table(s.p, s.len, &t, 1, false, 0);
		sink_done(&s);
	}
	t_free(p100), t_free(p101), t_free(p256), t_free(p257), t_free(pnoslash);
	t_free(pname), t_free(pdir), t_free(proot), t_free(p4k);
}

static void test_long_links(void **state)
{
	char *l100 = repeat('l', 100), *l101 = repeat('m', 101), *l5k = repeat('n', 5000);
	char *hpath = repeat('o', 300);
	hpath[100] = '/';
	const struct tent t[] = {
		{ EL_ENTRY_SYMLINK, "s100", l100, 0777, 0, 0, 1, 0, 0, 0, 0, NULL, 0, 0 },
		{ EL_ENTRY_SYMLINK, "s101", l101, 0777, 0, 0, 1, 0, 0, 0, 0, NULL, 0, 0 },
		{ EL_ENTRY_SYMLINK, "s5k", l5k, 0777, 0, 0, 1, 0, 0, 0, 0, NULL, 0, 0 },
		{ EL_ENTRY_REG, hpath, NULL, 0644, 0, 0, 1, 0, 3, 0, 0, NULL, 0, 9 },
		{ EL_ENTRY_HARDLINK, "h", hpath, 0644, 0, 0, 1, 0, 0, 0, 0, NULL, 0, 0 },
	};
	struct sink s;
	struct el_tarw_result res;
	struct tb want = { 0 };
	(void)state;

	make_archive(&s, EL_COMPRESSION_NONE, 0, t, NELEMS(t), &res);
	assert_int_equal(s.p[156], '2'); /* 100 bytes fit */
	assert_memory_equal(s.p + 157, l100, 100);
	pax_str(&want, "linkpath", l101);
	expect_pax(s.p + 512, &want);
	check_table(s.p, s.len, t, NELEMS(t), false, 0);
	sink_done(&s);
	t_free(l100), t_free(l101), t_free(l5k), t_free(hpath);
}

static void test_big_ids_and_times(void **state)
{
	const struct tent t[] = {
		{ EL_ENTRY_REG, "max-octal", NULL, 0644, 07777777, 07777777, 077777777777ll, 0, 0,
		  0, 0, NULL, 0, 0 },
		{ EL_ENTRY_REG, "uid", NULL, 0644, 07777777 + 1, 5, 1, 0, 0, 0, 0, NULL, 0, 0 },
		{ EL_ENTRY_REG, "gid", NULL, 0644, 5, 07777777 + 1, 1, 0, 0, 0, 0, NULL, 0, 0 },
		{ EL_ENTRY_DIR, "both", NULL, 0755, UINT32_MAX, UINT32_MAX, 1, 0, 0, 0, 0, NULL, 0, 0 },
		{ EL_ENTRY_REG, "neg", NULL, 0644, 0, 0, -1, 0, 0, 0, 0, NULL, 0, 0 },
		{ EL_ENTRY_REG, "far", NULL, 0644, 0, 0, 077777777777ll + 1, 0, 0, 0, 0, NULL, 0, 0 },
		{ EL_ENTRY_REG, "min", NULL, 0644, 0, 0, INT64_MIN + 1, 0, 0, 0, 0, NULL, 0, 0 },
	};
	struct sink s;
	struct el_tarw_result res;
	struct tb want = { 0 };
	(void)state;

	make_archive(&s, EL_COMPRESSION_NONE, 0, t, NELEMS(t), &res);
	const uint8_t *p = s.p;
	assert_true(p[156] == '0');
	assert_memory_equal(p + 108, "7777777", 8);
	assert_memory_equal(p + 136, "77777777777", 12);
	p += 512;
	pax_str(&want, "uid", "2097152");
	expect_pax(p, &want);
	assert_memory_equal(p + 1024 + 108, "0000000", 8); /* overridden: 0 */
	p += 1536; /* x header, one block of records, header */
	pax_str(&want, "gid", "2097152");
	expect_pax(p, &want);
	p += 1536; /* x header, one block of records, header */
	pax_str(&want, "gid", "4294967295");
	pax_str(&want, "uid", "4294967295");
	expect_pax(p, &want);
	assert_memory_equal(p, "PaxHeaders.0/both", 18);
	p += 1536; /* x header, one block of records, header */
	pax_str(&want, "mtime", "-1");
	expect_pax(p, &want);
	p += 1536; /* x header, one block of records, header */
	pax_str(&want, "mtime", "8589934592");
	expect_pax(p, &want);
	p += 1536; /* x header, one block of records, header */
	pax_str(&want, "mtime", "-9223372036854775807");
	expect_pax(p, &want);
	check_table(s.p, s.len, t, NELEMS(t), false, 0);
	sink_done(&s);
}

static void test_xattrs(void **state)
{
	static uint8_t big[64 * KIB];
	struct el_xattr_kv many[300];
	char names[300][24];
	for (size_t i = 0; i < 300; i++) {
		snprintf(names[i], sizeof(names[i]), "user.k%03zu", (i * 7) % 300);
		many[i] = (struct el_xattr_kv){ names[i], (const uint8_t *)names[i] + 5, i % 7 };
	}
	memset(big, 0, sizeof(big));
	big[100] = '\n';
	const struct el_xattr_kv bigx[] = { { "user.big", big, sizeof(big) } };
	const struct tent t[] = {
		{ EL_ENTRY_REG, "f", NULL, 0644, 0, 0, 1, 0, 2, 0, 0, some_xattrs, 4, 5 },
		{ EL_ENTRY_DIR, "d", NULL, 0755, 0, 0, 1, 0, 0, 0, 0, many, 300, 0 },
		{ EL_ENTRY_SYMLINK, "l", "f", 0777, 0, 0, 1, 0, 0, 0, 0, bigx, 1, 0 },
	};
	struct sink s;
	struct el_tarw_result res;
	struct tb want = { 0 };
	(void)state;

	make_archive(&s, EL_COMPRESSION_NONE, 0, t, NELEMS(t), &res);
	/* sorted by name, values byte for byte */
	pax_rec(&want, "SCHILY.xattr.security.capability", bin_val, sizeof(bin_val));
	pax_rec(&want, "SCHILY.xattr.trusted.overlay.opaque", "y", 1);
	pax_rec(&want, "SCHILY.xattr.user.empty", "", 0);
	pax_rec(&want, "SCHILY.xattr.user.zeta", "z", 1);
	expect_pax(s.p, &want);
	/* 300 records in name order: name k%03u is at index i with 7i = k mod 300 */
	const uint8_t *p = s.p + 512 + 512 + 1024;
	for (size_t k = 0; k < 300; k++) {
		size_t i = (k * 43) % 300; /* 43 = 7^-1 mod 300 */
		char key[40];
		snprintf(key, sizeof(key), "SCHILY.xattr.%.23s", names[i]);
		pax_rec(&want, key, names[i] + 5, i % 7);
	}
	expect_pax(p, &want);
	check_table(s.p, s.len, t, NELEMS(t), false, 0);
	sink_done(&s);
}

static int add_rc(struct el_tarw *w, const struct tent *t, struct el_error *err)
{
	struct el_entry e = to_entry(t);
	el_error_clear(err);
	return el_tarw_add(w, &e, err);
}

static void test_entry_errors(void **state)
{
	static uint8_t big[64 * KIB + 1];
	char longname[300];
	memset(longname, 'x', sizeof(longname));
	memcpy(longname, "user.", 5);
	longname[261] = 0;
	const struct el_xattr_kv dup[] = { { "user.a", NULL, 0 }, { "user.b", NULL, 0 },
					   { "user.a", (const uint8_t *)"1", 1 } };
	const struct el_xattr_kv eq[] = { { "user.a=b", NULL, 0 } };
	const struct el_xattr_kv empty[] = { { "", NULL, 0 } };
	const struct el_xattr_kv toolong[] = { { longname, NULL, 0 } };
	const struct el_xattr_kv toobig[] = { { "user.big", big, sizeof(big) } };
	static struct el_xattr_kv toomany[EL_TAR_MAX_XATTRS + 1];
	static char tm_names[EL_TAR_MAX_XATTRS + 1][16];
	for (size_t i = 0; i <= EL_TAR_MAX_XATTRS; i++) {
		snprintf(tm_names[i], sizeof(tm_names[i]), "user.%zu", i);
		toomany[i] = (struct el_xattr_kv){ tm_names[i], NULL, 0 };
	}
	/* 200 values of 60 KiB: each fine, 12 MB of pax header too much */
	static struct el_xattr_kv huge[200];
	static char huge_names[200][16];
	for (size_t i = 0; i < 200; i++) {
		snprintf(huge_names[i], sizeof(huge_names[i]), "user.%zu", i);
		huge[i] = (struct el_xattr_kv){ huge_names[i], big, 60 * KIB };
	}
	struct tb hp = { 0 };
	char huge_msg[100];
	for (size_t i = 0; i < 200; i++) {
		char key[40];
		snprintf(key, sizeof(key), "SCHILY.xattr.%.15s", huge_names[i]);
		pax_rec(&hp, key, big, 60 * KIB);
	}
	snprintf(huge_msg, sizeof(huge_msg), "d/: pax header of %zu bytes (limit 8388608)", hp.len);
	tb_free(&hp);
	const struct {
		struct tent t;
		int code;
		const char *msg;
	} cases[] = {
		{ { EL_ENTRY_REG, "", NULL, 0, 0, 0, 0, 0, 0, 0, 0, NULL, 0, 0 }, -EINVAL, ": empty path" },
		{ { EL_ENTRY_REG, "a/", NULL, 0, 0, 0, 0, 0, 0, 0, 0, NULL, 0, 0 }, -EINVAL,
		  "a/: a non-directory path ending in '/'" },
		{ { EL_ENTRY_SYMLINK, "s", "", 0, 0, 0, 0, 0, 0, 0, 0, NULL, 0, 0 }, -EINVAL,
		  "s: empty link target" },
		{ { EL_ENTRY_HARDLINK, "h", NULL, 0, 0, 0, 0, 0, 0, 0, 0, NULL, 0, 0 }, -EINVAL,
		  "h: empty link target" },
		{ { EL_ENTRY_CHR, "c", NULL, 0, 0, 0, 0, 0, 0, 0x1000, 0, NULL, 0, 0 }, -ERANGE,
		  "c: device number 4096:0 out of range" },
		{ { EL_ENTRY_BLK, "b", NULL, 0, 0, 0, 0, 0, 0, 0, 0x100000, NULL, 0, 0 }, -ERANGE,
		  "b: device number 0:1048576 out of range" },
		{ { (enum el_entry_type)42, "u", NULL, 0, 0, 0, 0, 0, 0, 0, 0, NULL, 0, 0 }, -EINVAL,
		  "u: unknown entry type 42" },
		{ { EL_ENTRY_REG, "big", NULL, 0, 0, 0, 0, 0, (uint64_t)INT64_MAX + 1, 0, 0, NULL, 0,
		    0 },
		  -EFBIG, "big: size 9223372036854775808 is over 2^63 - 1" },
		{ { EL_ENTRY_FIFO, "old", NULL, 0, 0, 0, INT64_MIN, 0, 0, 0, 0, NULL, 0, 0 }, -ERANGE,
		  "old: mtime -2^63 cannot be written" },
		{ { EL_ENTRY_DIR, "d", NULL, 0, 0, 0, 0, 0, 0, 0, 0, dup, 3, 0 }, -EINVAL,
		  "d/: xattr user.a appears twice" },
		{ { EL_ENTRY_DIR, "d", NULL, 0, 0, 0, 0, 0, 0, 0, 0, eq, 1, 0 }, -EINVAL,
		  "d/: xattr name 'user.a=b' contains '='" },
		{ { EL_ENTRY_DIR, "d", NULL, 0, 0, 0, 0, 0, 0, 0, 0, empty, 1, 0 }, -EINVAL,
		  "d/: xattr 0 has an empty name" },
		{ { EL_ENTRY_DIR, "d", NULL, 0, 0, 0, 0, 0, 0, 0, 0, toolong, 1, 0 }, -EINVAL,
		  "d/: xattr name of 261 bytes (limit 255)" },
		{ { EL_ENTRY_DIR, "d", NULL, 0, 0, 0, 0, 0, 0, 0, 0, toobig, 1, 0 }, -E2BIG,
		  "d/: xattr user.big has a 65537-byte value (limit 65536)" },
		{ { EL_ENTRY_DIR, "d", NULL, 0, 0, 0, 0, 0, 0, 0, 0, toomany, EL_TAR_MAX_XATTRS + 1, 0 },
		  -E2BIG, "d/: 1025 xattrs (limit 1024)" },
		{ { EL_ENTRY_DIR, "d", NULL, 0, 0, 0, 0, 0, 0, 0, 0, huge, 200, 0 }, -E2BIG,
		  huge_msg },
	};
	(void)state;

	for (size_t i = 0; i < NELEMS(cases); i++) {
		struct sink s;
		struct el_error err;
		sink_init(&s, true);
		struct el_tarw *w = tw_open(&s, EL_COMPRESSION_NONE, 0);
		const struct tent ok = { EL_ENTRY_DIR, "ok", NULL, 0, 0, 0, 0, 0, 0, 0, 0, NULL, 0, 0 };
		assert_int_equal(add_rc(w, &ok, &err), 0);
		int r = add_rc(w, &cases[i].t, &err);
		if (r != cases[i].code || err.code != r || strcmp(err.msg, cases[i].msg) != 0)
			fail_msg("case %zu: %d '%s', expected %d '%s'", i, r, err.msg, cases[i].code,
				 cases[i].msg);
		assert_int_equal(err.offset, 512); /* where the failed entry would start */
		assert_string_equal(err.what, "tar output");
		/* the writer is aborted: the same error again, nothing more written */
		struct el_tarw_result res;
		el_error_clear(&err);
		struct el_entry oke = to_entry(&ok);
		assert_int_equal(el_tarw_add(w, &oke, &err), cases[i].code);
		assert_string_equal(err.msg, cases[i].msg);
		el_error_clear(&err);
		assert_int_equal(el_tarw_finish(w, &res, &err), cases[i].code);
		assert_int_equal(s.calls, 0);
		tw_free(w);
		sink_done(&s);
	}
}

static void test_wrong_byte_counts(void **state)
{
	const struct tent f = { EL_ENTRY_REG, "dir/file", NULL, 0644, 0, 0, 1, 0, 10, 0, 0,
				NULL, 0, 1 };
	const struct tent d = { EL_ENTRY_DIR, "dir", NULL, 0755, 0, 0, 1, 0, 0, 0, 0, NULL, 0, 0 };
	uint8_t buf[20] = { 0 };
	struct el_tarw_result res;
	struct el_error err;
	struct sink s;
	(void)state;

	/* too many, in one call: nothing of it is written */
	sink_init(&s, true);
	struct el_tarw *w = tw_open(&s, EL_COMPRESSION_NONE, 0);
	assert_int_equal(add_rc(w, &f, &err), 0);
	tw_write(w, buf, 4);
	el_error_clear(&err);
	assert_int_equal(el_tarw_write(w, buf, 7, &err), -EINVAL);
	assert_string_equal(err.msg, "dir/file: 7 more data bytes with 6 of its declared 10 left");
	assert_int_equal(err.offset, 0);
	el_error_clear(&err);
	assert_int_equal(el_tarw_write(w, buf, 6, &err), -EINVAL); /* aborted */
	assert_string_equal(err.msg, "dir/file: 7 more data bytes with 6 of its declared 10 left");
	tw_free(w);
	sink_done(&s);

	/* too many as zeros, after the data was complete, into a directory */
	sink_init(&s, true);
	w = tw_open(&s, EL_COMPRESSION_NONE, 0);
	assert_int_equal(add_rc(w, &f, &err), 0);
	tw_write(w, buf, 10);
	el_error_clear(&err);
	assert_int_equal(el_tarw_write_zeros(w, 1, &err), -EINVAL);
	assert_string_equal(err.msg,
			    "dir/file: 1 data bytes after the entry's data was complete (declared size 10)");
	tw_free(w);
	sink_done(&s);

	sink_init(&s, true);
	w = tw_open(&s, EL_COMPRESSION_NONE, 0);
	assert_int_equal(add_rc(w, &d, &err), 0);
	tw_write(w, buf, 0); /* 0 bytes: fine anywhere */
	el_error_clear(&err);
	assert_int_equal(el_tarw_write(w, buf, 1, &err), -EINVAL);
	assert_string_equal(err.msg,
			    "dir/: 1 data bytes after the entry's data was complete (declared size 0)");
	tw_free(w);
	sink_done(&s);

	sink_init(&s, true);
	w = tw_open(&s, EL_COMPRESSION_NONE, 0);
	el_error_clear(&err);
	assert_int_equal(el_tarw_write(w, buf, 1, &err), -EINVAL);
	assert_string_equal(err.msg, "1 data bytes before any entry");
	tw_free(w);
	sink_done(&s);

	/* too few: the next entry, or the end, names the short file */
	sink_init(&s, true);
	w = tw_open(&s, EL_COMPRESSION_NONE, 0);
	assert_int_equal(add_rc(w, &d, &err), 0);
	assert_int_equal(add_rc(w, &f, &err), 0);
	tw_write(w, buf, 9);
	assert_int_equal(add_rc(w, &d, &err), -EINVAL);
	assert_string_equal(err.msg, "dir/file: 9 of its 10 data bytes were written");
	assert_int_equal(err.offset, 512);
	tw_free(w);
	sink_done(&s);

	sink_init(&s, true);
	w = tw_open(&s, EL_COMPRESSION_GZIP, 0);
	assert_int_equal(add_rc(w, &f, &err), 0);
	el_error_clear(&err);
	assert_int_equal(el_tarw_finish(w, &res, &err), -EINVAL);
	assert_string_equal(err.msg, "dir/file: 0 of its 10 data bytes were written");
	assert_int_equal(s.calls, 0);
	tw_free(w);
	sink_done(&s);

	/* finished: no more calls */
	sink_init(&s, true);
	w = tw_open(&s, EL_COMPRESSION_NONE, 0);
	tw_finish(w, &res);
	el_error_clear(&err);
	assert_int_equal(add_rc(w, &d, &err), -EINVAL);
	assert_string_equal(err.msg, "the archive is already finished");
	el_error_clear(&err);
	assert_int_equal(el_tarw_finish(w, &res, &err), -EINVAL);
	check_result(&s, &res);
	assert_int_equal(s.len, 1024); /* an empty archive */
	tw_free(w);
	sink_done(&s);
}

static void test_epoch(void **state)
{
	const struct tent t[] = {
		{ EL_ENTRY_REG, "old", NULL, 0644, 0, 0, 1000, 5, 0, 0, 0, NULL, 0, 0 },
		{ EL_ENTRY_REG, "at", NULL, 0644, 0, 0, 5000, 999999999, 0, 0, 0, NULL, 0, 0 },
		{ EL_ENTRY_DIR, "new", NULL, 0755, 0, 0, 5001, 0, 0, 0, 0, NULL, 0, 0 },
		{ EL_ENTRY_SYMLINK, "far", "x", 0777, 0, 0, INT64_MAX, 0, 0, 0, 0, NULL, 0, 0 },
		{ EL_ENTRY_REG, "neg", NULL, 0644, 0, 0, -7, 0, 0, 0, 0, NULL, 0, 0 },
	};
	struct sink s, s2;
	struct el_tarw_result res, res2;
	(void)state;

	sink_init(&s, true);
	struct el_tarw *w = tw_open_opts(&s, (struct el_tarw_opts){ .has_epoch = true,
								       .epoch = 5000 });
	static const size_t pieces[] = { 1 };
	write_table(w, t, NELEMS(t), pieces, 1);
	tw_finish(w, &res);
	tw_free(w);
	check_result(&s, &res);
	check_table(s.p, s.len, t, NELEMS(t), true, 5000);
	/* clamping happens in the writer: the headers say 5000 */
	assert_memory_equal(s.p + 512 + 136, "00000011610", 12);
	assert_memory_equal(s.p + 1024 + 136, "00000011610", 12);

	/* without an epoch the far-future mtime needs a pax record */
	make_archive(&s2, EL_COMPRESSION_NONE, 0, t, NELEMS(t), &res2);
	check_table(s2.p, s2.len, t, NELEMS(t), false, 0);
	assert_true(s2.len > s.len);
	sink_done(&s);
	sink_done(&s2);
}

static atomic_bool cancel_flag;

static void test_cancel(void **state)
{
	const struct tent f = { EL_ENTRY_REG, "f", NULL, 0644, 0, 0, 1, 0, 100 * MIB, 0, 0, NULL,
				0, 0 };
	struct el_error err;
	struct sink s;
	(void)state;

	/* already set */
	atomic_store(&cancel_flag, true);
	sink_init(&s, true);
	struct el_tarw *w = tw_open_opts(&s, (struct el_tarw_opts){ .cancel = &cancel_flag });
	assert_int_equal(add_rc(w, &f, &err), -ECANCELED);
	assert_string_equal(err.msg, "cancelled");
	tw_free(w);
	sink_done(&s);

	/* set by the sink in the middle of a large write */
	atomic_store(&cancel_flag, false);
	sink_init(&s, true);
	s.cancel = &cancel_flag;
	s.cancel_on_call = 3;
	w = tw_open_opts(&s, (struct el_tarw_opts){ .cancel = &cancel_flag,
						    .compression = EL_COMPRESSION_ZSTD });
	assert_int_equal(add_rc(w, &f, &err), 0);
	uint8_t *buf = t_alloc(50 * MIB);
	tdata(buf, 50 * MIB, 3);
	el_error_clear(&err);
	assert_int_equal(el_tarw_write(w, buf, 50 * MIB, &err), -ECANCELED);
	assert_true(s.calls >= 3);
	assert_true(s.total < 25 * MIB); /* stopped within a few 4 MiB pieces */
	size_t calls = s.calls;
	el_error_clear(&err);
	assert_int_equal(el_tarw_write_zeros(w, 1, &err), -ECANCELED);
	assert_int_equal(s.calls, calls);
	t_free(buf);
	tw_free(w);
	sink_done(&s);

	/* in el_tarw_write_zeros */
	atomic_store(&cancel_flag, false);
	sink_init(&s, false);
	s.cancel = &cancel_flag;
	s.cancel_on_call = 2;
	w = tw_open_opts(&s, (struct el_tarw_opts){ .cancel = &cancel_flag });
	assert_int_equal(add_rc(w, &f, &err), 0);
	el_error_clear(&err);
	assert_int_equal(el_tarw_write_zeros(w, 100 * MIB, &err), -ECANCELED);
	assert_true(s.total <= 2 * MIB);
	tw_free(w);
	sink_done(&s);
	atomic_store(&cancel_flag, false);
}

static void test_sink_error(void **state)
{
	const enum el_compression cs[] = { EL_COMPRESSION_NONE, EL_COMPRESSION_GZIP,
					   EL_COMPRESSION_ZSTD };
	const struct tent f = { EL_ENTRY_REG, "f", NULL, 0644, 0, 0, 1, 0, 20 * MIB, 0, 0, NULL,
				0, 0 };
	(void)state;

	for (size_t c = 0; c < NELEMS(cs); c++) {
		struct el_error err;
		struct sink s;
		uint8_t *buf = t_alloc(20 * MIB);
		tdata(buf, 20 * MIB, 11);
		sink_init(&s, false);
		s.fail_on_call = 2;
		s.fail_code = -ENOSPC;
		struct el_tarw *w = tw_open(&s, cs[c], 0);
		assert_int_equal(add_rc(w, &f, &err), 0);
		el_error_clear(&err);
		int r = el_tarw_write(w, buf, 20 * MIB, &err);
		if (cs[c] != EL_COMPRESSION_NONE && r == 0) {
			/* compressed below two chunks so far: the end must fail */
			struct el_tarw_result res;
			r = el_tarw_finish(w, &res, &err);
		}
		assert_int_equal(r, -ENOSPC);
		assert_int_equal(err.code, -ENOSPC);
		assert_non_null(strstr(err.msg, "the output sink failed after 1048576 bytes"));
		assert_int_equal(s.calls, 2);
		el_error_clear(&err);
		assert_int_equal(el_tarw_write(w, buf, 1, &err), -ENOSPC);
		el_error_clear(&err);
		struct el_tarw_result res;
		assert_int_equal(el_tarw_finish(w, &res, &err), -ENOSPC);
		assert_int_equal(s.calls, 2); /* never called again */
		tw_free(w);
		sink_done(&s);
		t_free(buf);
	}
}

static void test_bad_opts(void **state)
{
	struct el_tarw *w = NULL;
	struct el_error err;
	struct sink s;
	const struct {
		enum el_compression c;
		int level;
		const char *msg;
	} cases[] = {
		{ EL_COMPRESSION_NONE, 1, "a level (1) without compression" },
		{ EL_COMPRESSION_GZIP, 4, "gzip level 4 is not one of isa-l's levels 1..3" },
		{ EL_COMPRESSION_GZIP, -1, "gzip level -1 is not one of isa-l's levels 1..3" },
		{ EL_COMPRESSION_ZSTD, 23, NULL },
		{ (enum el_compression)7, 0, "unknown compression 7" },
	};
	(void)state;

	el_error_clear(&err);
	assert_int_equal(el_tarw_new(&(struct el_tarw_opts){ 0 }, &w, &err), -EINVAL);
	assert_null(w);
	sink_init(&s, true);
	for (size_t i = 0; i < NELEMS(cases); i++) {
		el_error_clear(&err);
		struct el_tarw_opts o = { .write = sink_write, .write_ud = &s,
					  .compression = cases[i].c, .level = cases[i].level };
		assert_int_equal(el_tarw_new(&o, &w, &err), -EINVAL);
		assert_null(w);
		if (cases[i].msg)
			assert_string_equal(err.msg, cases[i].msg);
	}
	sink_done(&s);
}

/* A table with some of everything and a few MiB of data. */
static const struct tent mixed[] = {
	{ EL_ENTRY_DIR, "usr", NULL, 0755, 0, 0, 1700000000, 0, 0, 0, 0, NULL, 0, 0 },
	{ EL_ENTRY_DIR, "usr/bin", NULL, 0755, 0, 0, 1700000000, 0, 0, 0, 0, NULL, 0, 0 },
	{ EL_ENTRY_REG, "usr/bin/a", NULL, 0755, 0, 0, 1700000000, 0, 2 * MIB + 5, 0, 0,
	  some_xattrs, 2, 21 },
	{ EL_ENTRY_REG, "usr/bin/b", NULL, 0755, 0, 0, 1700000000, 0, 12345, 0, 0, NULL, 0, 22 },
	{ EL_ENTRY_REG, "usr/bin/holes", NULL, 0644, 0, 0, 1700000000, 0, 5 * MIB, 0, 0, NULL,
	  0, 0 },
	{ EL_ENTRY_HARDLINK, "usr/bin/c", "usr/bin/a", 0755, 0, 0, 1700000000, 0, 0, 0, 0, NULL,
	  0, 0 },
	{ EL_ENTRY_SYMLINK, "usr/bin/d", "a", 0777, 0, 0, 1700000000, 0, 0, 0, 0, NULL, 0, 0 },
	{ EL_ENTRY_REG, "usr/share/doc/very/long/path/that/goes/on/and/on/and/on/and/on/and/on/"
			"and/on/and/on/and/on/and/on/and/on/and/on/and/on/and/on/and/on/file.txt",
	  NULL, 0644, 70000, 70000, 1700000000, 0, 300000, 0, 0, NULL, 0, 23 },
	{ EL_ENTRY_FIFO, "run/p", NULL, 0600, 0, 0, 1700000000, 0, 0, 0, 0, NULL, 0, 0 },
	{ EL_ENTRY_CHR, "dev/c", NULL, 0600, 0, 0, 1700000000, 0, 0, 5, 1, NULL, 0, 0 },
};

static void test_compressed_forms(void **state)
{
	struct sink plain, s;
	struct el_tarw_result rp, res;
	const struct {
		enum el_compression c;
		int level;
	} forms[] = {
		{ EL_COMPRESSION_GZIP, 0 }, { EL_COMPRESSION_GZIP, 1 }, { EL_COMPRESSION_GZIP, 2 },
		{ EL_COMPRESSION_GZIP, 3 }, { EL_COMPRESSION_ZSTD, 0 }, { EL_COMPRESSION_ZSTD, 1 },
		{ EL_COMPRESSION_ZSTD, 19 }, { EL_COMPRESSION_ZSTD, -5 },
	};
	(void)state;

	make_archive(&plain, EL_COMPRESSION_NONE, 0, mixed, NELEMS(mixed), &rp);
	check_table(plain.p, plain.len, mixed, NELEMS(mixed), false, 0);
	for (size_t i = 0; i < NELEMS(forms); i++) {
		struct tb out = { 0 };
		if (forms[i].c == EL_COMPRESSION_GZIP && forms[i].level == 3) {
			/* isa-l's level 3 needs AVX2/AVX-512 or a newer isa-l */
			struct sink probe;
			sink_init(&probe, true);
			struct el_tarw *w = tw_open(&probe, EL_COMPRESSION_GZIP, 3);
			struct el_error err;
			el_error_clear(&err);
			int r = el_tarw_finish(w, &res, &err);
			tw_free(w);
			sink_done(&probe);
			if (r == -EIO && strstr(err.msg, "level not supported")) {
				print_message("gzip level 3: not supported here, skipped\n");
				continue;
			}
			assert_int_equal(r, 0);
		}
		make_archive(&s, forms[i].c, forms[i].level, mixed, NELEMS(mixed), &res);
		assert_memory_equal(res.diffid, rp.diffid, 32);
		assert_int_equal(res.uncompressed_size, rp.uncompressed_size);
		assert_int_equal(res.size, s.len);
		assert_true(s.len < plain.len / 2);
		if (forms[i].c == EL_COMPRESSION_GZIP) {
			static const uint8_t hdr[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255 };
			assert_memory_equal(s.p, hdr, 10);
			gunzip(s.p, s.len, &out);
		} else {
			/* magic, then the frame header descriptor: no content
			 * size, no single segment, checksum, no dictionary ID */
			assert_memory_equal(s.p, "\x28\xb5\x2f\xfd", 4);
			assert_int_equal(s.p[4], 0x04);
			unzstd(s.p, s.len, &out);
		}
		assert_int_equal(out.len, plain.len);
		assert_memory_equal(out.p, plain.p, plain.len);
		/* our reader takes the compressed form as it is */
		check_table_d(s.p, s.len, mixed, NELEMS(mixed), false, 0, rp.diffid);
		tb_free(&out);
		sink_done(&s);
	}
	sink_done(&plain);
}

static void test_determinism(void **state)
{
	const enum el_compression cs[] = { EL_COMPRESSION_NONE, EL_COMPRESSION_GZIP,
					   EL_COMPRESSION_ZSTD };
	(void)state;

	for (size_t c = 0; c < NELEMS(cs); c++) {
		struct sink a, b;
		struct el_tarw_result ra, rb;
		make_archive(&a, cs[c], 0, mixed, NELEMS(mixed), &ra);
		/* other piece sizes, same bytes */
		static const size_t pieces[] = { 7, 65536, 1 };
		sink_init(&b, true);
		struct el_tarw *w = tw_open(&b, cs[c], 0);
		write_table(w, mixed, NELEMS(mixed), pieces, NELEMS(pieces));
		tw_finish(w, &rb);
		tw_free(w);
		check_result(&b, &rb);
		assert_int_equal(a.len, b.len);
		assert_memory_equal(a.p, b.p, a.len);
		assert_memory_equal(ra.digest, rb.digest, 32);
		assert_memory_equal(ra.diffid, rb.diffid, 32);
		sink_done(&b);

		/* and a change shows: one mtime through the epoch */
		sink_init(&b, true);
		w = tw_open_opts(&b, (struct el_tarw_opts){ .compression = cs[c], .has_epoch = true,
							    .epoch = 1699999999 });
		write_table(w, mixed, NELEMS(mixed), pieces, 1);
		tw_finish(w, &rb);
		tw_free(w);
		check_result(&b, &rb);
		assert_memory_not_equal(ra.diffid, rb.diffid, 32);
		sink_done(&b);
		sink_done(&a);
	}
}

/* A file over 8 GiB: the size goes to a pax record. Nothing is kept but the
 * head of the output; the digest is checked against the sink's own. */
static void test_size_over_8g(void **state)
{
	const uint64_t size = (8ull << 30) + 1;
	const struct tent t = { EL_ENTRY_REG, "huge", NULL, 0600, 0, 0, 1, 0, size, 0, 0, NULL,
				0, 0 };
	struct el_tarw_result res;
	struct sink s;
	struct tb want_pl = { 0 };
	(void)state;

	sink_init(&s, false);
	struct el_tarw *w = tw_open(&s, EL_COMPRESSION_NONE, 0);
	struct el_entry e = to_entry(&t);
	tw_add(w, &e);
	struct el_error err;
	el_error_clear(&err);
	/* most of it as zeros, the last bytes as data */
	assert_int_equal(el_tarw_write_zeros(w, size - 3, &err), 0);
	tw_write(w, "end", 3);
	tw_finish(w, &res);
	tw_free(w);
	uint64_t want = 512 + 512 + 512 + (size + 511) / 512 * 512 + 1024;
	assert_int_equal(res.uncompressed_size, want);
	assert_int_equal(res.size, want);
	check_result(&s, &res);
	assert_memory_equal(res.diffid, res.digest, 32);
	pax_str(&want_pl, "size", "8589934593");
	expect_pax(s.head, &want_pl);
	assert_memory_equal(s.head + 1024 + 124, "00000000000", 12);
	/* the tail: "end", padding, end marker */
	uint8_t tail[2048];
	for (size_t i = 0; i < sizeof(tail); i++)
		tail[i] = s.tail[(s.total - sizeof(tail) + i) % sizeof(s.tail)];
	size_t pad = 511;
	assert_memory_equal(tail + sizeof(tail) - 1024 - pad - 3, "end", 3);
	for (size_t i = sizeof(tail) - 1024 - pad; i < sizeof(tail); i++)
		assert_int_equal(tail[i], 0);

	/* our reader takes the headers */
	struct tb b = { .p = s.head, .len = s.head_len };
	struct rd r;
	rd_open(&r, &b, 0);
	const struct el_entry *re = rd_next(&r);
	assert_string_equal(re->path, "huge");
	assert_int_equal(re->size, size);
	rd_close(&r);
	sink_done(&s);
}

int main(void)
{
#define T(f) cmocka_unit_test_teardown(f, teardown)
	const struct CMUnitTest tests[] = {
		T(test_kinds_round_trip),
		T(test_header_layout),
		T(test_long_paths),
		T(test_long_links),
		T(test_big_ids_and_times),
		T(test_xattrs),
		T(test_entry_errors),
		T(test_wrong_byte_counts),
		T(test_epoch),
		T(test_cancel),
		T(test_sink_error),
		T(test_bad_opts),
		T(test_compressed_forms),
		T(test_determinism),
		T(test_size_over_8g),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
