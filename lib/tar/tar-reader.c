/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Streaming tar reader. Headers are copied out of the input windows (they may
 * straddle two); file data is handed out as slices of the windows, so regular
 * file bytes are never copied inside the reader.
 *
 * Leniencies, for old writers: V7 headers without a magic are read (prefix
 * ignored); a regular-file typeflag on a name ending in '/' is a directory
 * (V7); both the unsigned and the historic signed header checksum are
 * accepted; numeric fields may be space- or NUL-terminated and padded with
 * leading spaces; a single zero block ends the archive. What is never
 * accepted: a bad checksum, a truncated header or payload, a missing
 * end-of-archive marker, sizes that overflow.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erofs-layer/tar.h"
#include "common/macro.h"
#include "tar-internal.h"

/* ustar header field offsets and sizes */
#define H_NAME 0, 100
#define H_MODE 100, 8
#define H_UID 108, 8
#define H_GID 116, 8
#define H_SIZE 124, 12
#define H_MTIME 136, 12
#define H_CHKSUM 148, 8
#define H_TYPE 156
#define H_LINK 157, 100
#define H_MAGIC 257
#define H_DEVMAJOR 329, 8
#define H_DEVMINOR 337, 8
#define H_PREFIX 345, 155
/* old GNU sparse header */
#define H_GNU_SPARSE 386
#define H_GNU_ISEXT 482
#define H_GNU_REALSIZE 483, 12

struct el_tar {
	struct el_input *in;
	el_warn_fn warn;
	void *warn_ud;

	const uint8_t *win;
	size_t win_len, win_pos;
	uint64_t off; /* stream offset of win[win_pos] */
	bool at_end;  /* the end-of-archive marker was read */

	struct tar_arena arena;
	/* every 'g' payload so far, applied in order before each entry */
	struct global_pax {
		char *payload;
		size_t len;
		uint64_t off;
	} *globals;
	size_t nglobals;
	size_t globals_bytes;

	struct tar_attrs attrs;
	struct el_entry entry;
	uint64_t entries;

	/* data of the current entry */
	uint64_t data_left; /* bytes of member data not yet consumed */
	uint64_t pad_left;  /* padding after the member data */
	bool data_is_file;  /* the data belongs to a regular file */
	size_t seg;	    /* sparse: current segment */
	uint64_t seg_done;
	struct sparse_seg one_seg;
	const struct sparse_seg *segs;
	size_t nsegs;
};

int el_tar_new(struct el_input *in, el_warn_fn warn, void *warn_ud, struct el_tar **ret)
{
	struct el_tar *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->in = in;
	t->warn = warn;
	t->warn_ud = warn_ud;
	*ret = t;
	return 0;
}

void el_tar_free(struct el_tar *t)
{
	if (!t)
		return;
	tar_arena_reset(&t->arena);
	free(t->arena.chunks);
	for (size_t i = 0; i < t->nglobals; i++)
		free(t->globals[i].payload);
	free(t->globals);
	free(t->attrs.xattrs);
	free(t->attrs.segs);
	free(t);
}

uint64_t el_tar_entries(const struct el_tar *t)
{
	return t->entries;
}

static void warn(struct el_tar *t, uint64_t off, const char *msg)
{
	if (t->warn)
		t->warn(t->warn_ud, "tar stream", off, msg);
}

/* Makes at least one byte available; returns 0 at end of stream. */
static int fill(struct el_tar *t, struct el_error *err)
{
	if (t->win_pos < t->win_len)
		return 1;
	int r = el_input_next(t->in, &t->win, &t->win_len, err);
	t->win_pos = 0;
	if (r < 0)
		return r;
	return t->win_len > 0;
}

/* Copies n bytes; returns n, or fewer at end of stream, or -errno. */
static long read_bytes(struct el_tar *t, void *buf, size_t n, struct el_error *err)
{
	size_t done = 0;

	while (done < n) {
		int r = fill(t, err);
		if (r <= 0)
			return r < 0 ? r : (long)done;
		size_t k = EL_MIN(n - done, t->win_len - t->win_pos);
		memcpy((char *)buf + done, t->win + t->win_pos, k);
		t->win_pos += k;
		t->off += k;
		done += k;
	}
	return (long)done;
}

static int skip_bytes(struct el_tar *t, uint64_t n, const char *what, struct el_error *err)
{
	while (n) {
		int r = fill(t, err);
		if (r < 0)
			return r;
		if (r == 0)
			return el_error_set(err, -EINVAL, "tar stream", t->off,
					    "unexpected end of input inside %s", what);
		size_t k = (size_t)EL_MIN(n, (uint64_t)(t->win_len - t->win_pos));
		t->win_pos += k;
		t->off += k;
		n -= k;
	}
	return 0;
}

static uint64_t padding(uint64_t size)
{
	return (TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK;
}

/* Numeric header field: octal text or GNU base-256 (first byte 0x80 for
 * positive, 0xff for negative numbers, big-endian two's complement). */
static int parse_number(const uint8_t *h, size_t off, size_t len, bool is_signed,
			int64_t *ret)
{
	const uint8_t *f = h + off;

	if (f[0] == 0x80 || f[0] == 0xff) {
		bool neg = f[0] == 0xff;
		uint64_t v = neg ? UINT64_MAX : 0;
		size_t i = 1;
		/* leading bytes beyond 64 bits must be pure sign extension */
		for (; len - i > 8; i++)
			if (f[i] != (neg ? 0xff : 0x00))
				return -ERANGE;
		for (; i < len; i++)
			v = v << 8 | f[i];
		if (neg && !is_signed)
			return -ERANGE;
		if (!neg && v > (uint64_t)INT64_MAX)
			return -ERANGE;
		if (neg && (int64_t)v >= 0)
			return -ERANGE;
		*ret = (int64_t)v;
		return 0;
	}
	size_t i = 0;
	uint64_t v = 0;
	while (i < len && f[i] == ' ')
		i++;
	for (; i < len && f[i] >= '0' && f[i] <= '7'; i++) {
		if (v >> 60)
			return -ERANGE;
		v = v << 3 | (uint64_t)(f[i] - '0');
	}
	for (; i < len; i++)
		if (f[i] != ' ' && f[i] != 0)
			return -EINVAL;
	if (v > (uint64_t)INT64_MAX)
		return -ERANGE;
	*ret = (int64_t)v;
	return 0;
}

static int header_number(struct el_tar *t, const uint8_t *h, size_t off, size_t len,
			 const char *field, bool is_signed, int64_t *ret, uint64_t hoff,
			 struct el_error *err)
{
	int r = parse_number(h, off, len, is_signed, ret);
	if (r < 0)
		return el_error_set(err, -EINVAL, "tar stream", hoff + off,
				    "invalid number in the %s field of the header", field);
	return 0;
}

static bool is_zero_block(const uint8_t *h)
{
	static const uint8_t zero[TAR_BLOCK];
	return memcmp(h, zero, TAR_BLOCK) == 0;
}

static int verify_checksum(const uint8_t *h, uint64_t hoff, struct el_error *err)
{
	uint32_t usum = 8 * ' ', high = 0;
	int64_t stored;

	/* the checksum field counts as spaces; the signed sum (old writers)
	 * differs from the unsigned one by 256 per byte >= 0x80 */
	for (size_t i = 0; i < 148; i++) {
		usum += h[i];
		high += h[i] >> 7;
	}
	for (size_t i = 156; i < TAR_BLOCK; i++) {
		usum += h[i];
		high += h[i] >> 7;
	}
	int32_t ssum = (int32_t)usum - 256 * (int32_t)high;
	if (parse_number(h, H_CHKSUM, false, &stored) < 0)
		return el_error_set(err, -EINVAL, "tar stream", hoff + 148,
				    "header checksum field is not a number");
	if ((int64_t)usum != stored && (int64_t)ssum != stored)
		return el_error_set(err, -EINVAL, "tar stream", hoff + 148,
				    "header checksum mismatch (stored %lld, computed %u)",
				    (long long)stored, usum);
	return 0;
}

/* Copies a NUL-padded header string field into the arena. */
static char *field_str(struct el_tar *t, const uint8_t *h, size_t off, size_t len)
{
	size_t n = strnlen((const char *)h + off, len);
	char *s = tar_arena_alloc(&t->arena, n + 1);
	if (s) {
		memcpy(s, h + off, n);
		s[n] = 0;
	}
	return s;
}

/* Reads the payload of a meta entry ('L', 'K', 'x', 'g') into a fresh buffer
 * with a NUL after it. */
static int read_payload(struct el_tar *t, uint64_t size, uint64_t limit, const char *what,
			uint64_t hoff, char **ret, struct el_error *err)
{
	if (size > limit)
		return el_error_set(err, -E2BIG, "tar stream", hoff + 124,
				    "%s of %llu bytes exceeds the limit of %llu", what,
				    (unsigned long long)size, (unsigned long long)limit);
	char *buf = malloc((size_t)size + 1);
	if (!buf)
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	long n = read_bytes(t, buf, (size_t)size, err);
	if (n < 0 || (uint64_t)n != size) {
		free(buf);
		return n < 0 ? (int)n
			     : el_error_set(err, -EINVAL, "tar stream", t->off,
					    "unexpected end of input inside %s", what);
	}
	buf[size] = 0;
	int r = skip_bytes(t, padding(size), what, err);
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret = buf;
	return 0;
}

/* Takes ownership of payload. */
static int global_append(struct el_tar *t, char *payload, size_t len, uint64_t poff,
			 uint64_t hoff, struct el_error *err)
{
	if (t->globals_bytes + len > EL_TAR_MAX_PAX) {
		free(payload);
		return el_error_set(err, -E2BIG, "tar stream", hoff,
				    "PAX global headers exceed %u bytes in all", EL_TAR_MAX_PAX);
	}
	void *p = realloc(t->globals, (t->nglobals + 1) * sizeof(*t->globals));
	if (!p) {
		free(payload);
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	}
	t->globals = p;
	t->globals[t->nglobals++] = (struct global_pax){ payload, len, poff };
	t->globals_bytes += len;
	return 0;
}

/* Moves a malloc'd string into the entry's arena (freeing the original);
 * NULL on ENOMEM, with the original freed too. */
static char *arena_take(struct el_tar *t, char *s)
{
	size_t n = strlen(s);
	char *copy = tar_arena_alloc(&t->arena, n + 1);
	if (copy)
		memcpy(copy, s, n + 1);
	free(s);
	return copy;
}

static void attrs_reset(struct tar_attrs *a)
{
	struct el_xattr_kv *x = a->xattrs;
	struct sparse_seg *s = a->segs;
	size_t xc = a->xattrs_cap, sc = a->segs_cap;

	*a = (struct tar_attrs){ .xattrs = x, .xattrs_cap = xc, .segs = s, .segs_cap = sc,
				 .sparse_major = -1, .sparse_minor = -1 };
}

/* Old GNU sparse: 4 map entries in the header, 21 in each extension block. */
static int read_gnu_sparse(struct el_tar *t, const uint8_t *h, uint64_t hoff,
			   struct el_error *err)
{
	uint8_t ext[TAR_BLOCK];
	const uint8_t *blk = h;
	size_t base = H_GNU_SPARSE, count = 4, isext = H_GNU_ISEXT;
	uint64_t where = hoff;
	int64_t realsize;
	int r;

	r = header_number(t, h, H_GNU_REALSIZE, "realsize", false, &realsize, hoff, err);
	if (r < 0)
		return r;
	t->attrs.realsize = (uint64_t)realsize;
	t->attrs.has_realsize = true;
	t->attrs.nsegs = 0;
	for (;;) {
		for (size_t i = 0; i < count; i++) {
			int64_t o, l;
			size_t at = base + i * 24;
			if (blk[at] == 0)
				break;
			r = header_number(t, blk, at, 12, "sparse offset", false, &o, where, err);
			if (r < 0)
				return r;
			r = header_number(t, blk, at + 12, 12, "sparse numbytes", false, &l, where,
					  err);
			if (r < 0)
				return r;
			r = sparse_push(&t->attrs, (uint64_t)o, (uint64_t)l, where + at, err);
			if (r < 0)
				return r;
		}
		if (!blk[isext])
			break;
		where = t->off;
		long n = read_bytes(t, ext, TAR_BLOCK, err);
		if (n < 0)
			return (int)n;
		if (n != TAR_BLOCK)
			return el_error_set(err, -EINVAL, "tar stream", t->off,
					    "unexpected end of input inside a sparse header");
		blk = ext;
		base = 0;
		count = 21;
		isext = 504;
	}
	t->attrs.sparse = true;
	return 0;
}

/* PAX sparse 1.0: the map is at the start of the member data, as decimal
 * numbers one per line, padded to a block. */
static int read_sparse_1_0(struct el_tar *t, struct el_error *err)
{
	uint64_t count = 0, nums[2], start = t->off, used = 0;
	int k = 0;
	char line[32];

	t->attrs.nsegs = 0;
	for (uint64_t idx = 0;; idx++) {
		size_t n = 0;
		for (;;) {
			char c;
			long r = read_bytes(t, &c, 1, err);
			if (r < 0)
				return (int)r;
			if (r == 0 || used + 1 > t->data_left)
				return el_error_set(err, -EINVAL, "tar stream", t->off,
						    "truncated sparse map");
			used++;
			if (c == '\n')
				break;
			if (n == sizeof(line) - 1)
				return el_error_set(err, -EINVAL, "tar stream", t->off,
						    "sparse map number too long");
			line[n++] = c;
		}
		uint64_t v;
		if (pax_parse_u64(line, n, &v) < 0)
			return el_error_set(err, -EINVAL, "tar stream", t->off - 1,
					    "malformed sparse map");
		if (idx == 0) {
			if (v > EL_TAR_MAX_SPARSE)
				return el_error_set(err, -E2BIG, "tar stream", start,
						    "sparse map has %llu segments (limit %u)",
						    (unsigned long long)v, EL_TAR_MAX_SPARSE);
			count = v;
		} else {
			nums[k++] = v;
			if (k == 2) {
				int r = sparse_push(&t->attrs, nums[0], nums[1], t->off, err);
				if (r < 0)
					return r;
				k = 0;
			}
		}
		if (idx == 2 * count)
			break;
	}
	uint64_t pad = padding(used);
	if (used + pad > t->data_left)
		return el_error_set(err, -EINVAL, "tar stream", start,
				    "sparse map larger than the entry");
	int r = skip_bytes(t, pad, "a sparse map", err);
	if (r < 0)
		return r;
	t->data_left -= used + pad;
	t->attrs.sparse = true;
	return 0;
}

static int check_sparse(struct el_tar *t, uint64_t hoff, struct el_error *err)
{
	uint64_t sum = 0;
	const struct tar_attrs *a = &t->attrs;

	for (size_t i = 0; i < a->nsegs; i++) {
		if (a->segs[i].off + a->segs[i].len > a->realsize)
			return el_error_set(err, -EINVAL, "tar stream", hoff,
					    "sparse segment %zu ends past the file size %llu", i,
					    (unsigned long long)a->realsize);
		sum += a->segs[i].len; /* cannot overflow: segments are disjoint */
	}
	if (sum != t->data_left)
		return el_error_set(err, -EINVAL, "tar stream", hoff,
				    "sparse map covers %llu bytes but the entry stores %llu",
				    (unsigned long long)sum, (unsigned long long)t->data_left);
	return 0;
}

int el_tar_next(struct el_tar *t, const struct el_entry **ret, struct el_error *err)
{
	uint8_t h[TAR_BLOCK];
	char *long_name = NULL, *long_link = NULL, *local_pax = NULL;
	size_t local_pax_len = 0;
	uint64_t local_pax_off = 0;
	int r;

	if (t->at_end)
		return 0;
	/* skip what is left of the previous entry */
	r = skip_bytes(t, t->data_left + t->pad_left, "file data", err);
	if (r < 0)
		return r;
	t->data_left = t->pad_left = 0;
	tar_arena_reset(&t->arena);
	attrs_reset(&t->attrs);

	for (;;) {
		uint64_t hoff = t->off;
		long n = read_bytes(t, h, TAR_BLOCK, err);
		if (n < 0) {
			r = (int)n;
			goto out;
		}
		if (n == 0) {
			r = el_error_set(err, -EINVAL, "tar stream", hoff,
					 "unexpected end of input: no end-of-archive marker");
			goto out;
		}
		if (n != TAR_BLOCK) {
			r = el_error_set(err, -EINVAL, "tar stream", hoff,
					 "truncated header (%ld of 512 bytes)", n);
			goto out;
		}
		if (is_zero_block(h)) {
			if (long_name || long_link || local_pax) {
				r = el_error_set(err, -EINVAL, "tar stream", hoff,
						 "end-of-archive marker after an extended header");
				goto out;
			}
			t->at_end = true;
			r = 0;
			goto out;
		}
		r = verify_checksum(h, hoff, err);
		if (r < 0)
			goto out;

		int64_t size;
		r = header_number(t, h, H_SIZE, "size", false, &size, hoff, err);
		if (r < 0)
			goto out;
		char type = (char)h[H_TYPE];
		char **meta = NULL;
		uint64_t limit = 0;
		const char *what = NULL;

		switch (type) {
		case 'L':
			meta = &long_name, limit = EL_TAR_MAX_LONGNAME, what = "a GNU long name";
			break;
		case 'K':
			meta = &long_link, limit = EL_TAR_MAX_LONGNAME, what = "a GNU long link";
			break;
		case 'x':
		case 'X': /* Solaris' name for the same thing */
			meta = &local_pax, limit = EL_TAR_MAX_PAX, what = "a PAX header";
			break;
		case 'g':
			meta = &local_pax, limit = EL_TAR_MAX_PAX, what = "a PAX global header";
			break;
		}
		if (meta) {
			char *payload = NULL;
			uint64_t poff = t->off;
			r = read_payload(t, (uint64_t)size, limit, what, hoff, &payload, err);
			if (r < 0)
				goto out;
			if (type == 'g') {
				/* global records accumulate: later ones override
				 * earlier ones key by key, so keep them all, in order */
				r = global_append(t, payload, (size_t)size, poff, hoff, err);
				if (r < 0)
					goto out;
				continue;
			}
			free(*meta);
			*meta = payload;
			if (meta == &local_pax) {
				local_pax_len = (size_t)size;
				local_pax_off = poff;
			}
			continue;
		}

		struct el_entry *e = &t->entry;
		*e = (struct el_entry){ .offset = hoff };
		bool posix = memcmp(h + H_MAGIC, "ustar\0" "00", 8) == 0;
		const char *name = field_str(t, h, H_NAME);
		if (!name) {
			r = -ENOMEM;
			goto out;
		}
		if (posix && h[345]) {
			const char *prefix = field_str(t, h, H_PREFIX);
			char *full = prefix ? tar_arena_alloc(&t->arena,
							      strlen(prefix) + strlen(name) + 2)
					    : NULL;
			if (!full) {
				r = -ENOMEM;
				goto out;
			}
			strcpy(stpcpy(stpcpy(full, prefix), "/"), name);
			name = full;
		}

		switch (type) {
		case '0':
		case '\0':
		case '7':
			e->type = EL_ENTRY_REG;
			break;
		case 'S':
			e->type = EL_ENTRY_REG;
			r = read_gnu_sparse(t, h, hoff, err);
			if (r < 0)
				goto out;
			break;
		case '1':
			e->type = EL_ENTRY_HARDLINK;
			break;
		case '2':
			e->type = EL_ENTRY_SYMLINK;
			break;
		case '3':
			e->type = EL_ENTRY_CHR;
			break;
		case '4':
			e->type = EL_ENTRY_BLK;
			break;
		case '5':
		case 'D': /* GNU dumpdir: a directory plus a listing we do not need */
			e->type = EL_ENTRY_DIR;
			break;
		case '6':
			e->type = EL_ENTRY_FIFO;
			break;
		default: {
			char msg[128];
			snprintf(msg, sizeof(msg),
				 "skipping entry '%.60s' of unsupported type '%c' (0x%02x)",
				 long_name ? long_name : name, type >= 32 && type < 127 ? type : '?',
				 (unsigned char)type);
			warn(t, hoff, msg);
			/* its data length may come from a PAX size record */
			uint64_t skip = (uint64_t)size;
			if (local_pax) {
				r = pax_apply(local_pax, local_pax_len, local_pax_off, &t->attrs,
					      &t->arena, err);
				if (r < 0)
					goto out;
				if (t->attrs.has_size)
					skip = t->attrs.size;
			}
			free(long_name), free(long_link), free(local_pax);
			long_name = long_link = local_pax = NULL;
			tar_arena_reset(&t->arena);
			attrs_reset(&t->attrs);
			r = skip_bytes(t, skip + padding(skip), "an entry", err);
			if (r < 0)
				goto out;
			continue;
		}
		}

		int64_t mode, uid, gid, mtime, major = 0, minor = 0;
		if ((r = header_number(t, h, H_MODE, "mode", false, &mode, hoff, err)) < 0 ||
		    (r = header_number(t, h, H_UID, "uid", false, &uid, hoff, err)) < 0 ||
		    (r = header_number(t, h, H_GID, "gid", false, &gid, hoff, err)) < 0 ||
		    (r = header_number(t, h, H_MTIME, "mtime", true, &mtime, hoff, err)) < 0)
			goto out;
		if ((type == '3' || type == '4') &&
		    ((r = header_number(t, h, H_DEVMAJOR, "devmajor", false, &major, hoff, err)) < 0 ||
		     (r = header_number(t, h, H_DEVMINOR, "devminor", false, &minor, hoff, err)) < 0))
			goto out;
		struct tar_attrs *a = &t->attrs;
		if (t->nglobals) {
			for (size_t i = 0; i < t->nglobals; i++) {
				const struct global_pax *g = &t->globals[i];
				r = pax_apply(g->payload, g->len, g->off, a, &t->arena, err);
				if (r < 0)
					goto out;
			}
			/* Global records set defaults (owner, time, xattrs); a
			 * name, size or sparse map only ever describes one entry. */
			a->path = a->link = NULL;
			a->has_size = a->sparse = a->has_realsize = a->seg_pending_off = false;
			a->sparse_name = NULL;
			a->sparse_major = a->sparse_minor = -1;
			a->nsegs = 0;
		}
		if (local_pax &&
		    (r = pax_apply(local_pax, local_pax_len, local_pax_off, a, &t->arena, err)) < 0)
			goto out;

		/* long names live until `out`: the entry keeps arena copies */
		bool had_lname = long_name, had_llink = long_link;
		const char *lname = had_lname ? arena_take(t, EL_TAKE_PTR(long_name)) : NULL;
		const char *llink = had_llink ? arena_take(t, EL_TAKE_PTR(long_link)) : NULL;
		if ((had_lname && !lname) || (had_llink && !llink)) {
			r = -ENOMEM;
			goto out;
		}
		e->path = lname ? lname : a->path ? a->path : name;
		if (a->sparse_name)
			e->path = a->sparse_name;
		e->link = llink ? llink : a->link ? a->link : field_str(t, h, H_LINK);
		if (!e->link) {
			r = -ENOMEM;
			goto out;
		}
		e->mode = (uint32_t)(mode & 07777);
		if (uid > UINT32_MAX || gid > UINT32_MAX) {
			r = el_error_set(err, -ERANGE, "tar stream", hoff + 108,
					 "uid or gid does not fit in 32 bits");
			goto out;
		}
		e->uid = a->has_uid ? a->uid : (uint32_t)uid;
		e->gid = a->has_gid ? a->gid : (uint32_t)gid;
		e->mtime = a->has_mtime ? a->mtime : mtime;
		e->mtime_nsec = a->has_mtime ? a->mtime_nsec : 0;
		if (major > 0xfff || minor > 0xfffff) {
			r = el_error_set(err, -ERANGE, "tar stream", hoff + 329,
					 "device number %lld:%lld out of range", (long long)major,
					 (long long)minor);
			goto out;
		}
		e->dev_major = a->has_major ? a->major : (uint32_t)major;
		e->dev_minor = a->has_minor ? a->minor : (uint32_t)minor;
		e->xattrs = a->xattrs;
		e->nxattrs = a->nxattrs;

		uint64_t stored = a->has_size ? a->size : (uint64_t)size;
		t->data_left = stored;
		t->pad_left = padding(stored);
		t->data_is_file = e->type == EL_ENTRY_REG;
		/* V7 archives mark directories only by a trailing slash */
		if (e->type == EL_ENTRY_REG && (type == '0' || type == '\0') && !a->sparse) {
			size_t pl = strlen(e->path);
			if (pl && e->path[pl - 1] == '/') {
				e->type = EL_ENTRY_DIR;
				t->data_is_file = false;
			}
		}
		if (e->type == EL_ENTRY_REG && a->sparse) {
			if (a->sparse_major == 1) {
				r = read_sparse_1_0(t, err);
				if (r < 0)
					goto out;
			} else if (a->seg_pending_off) {
				r = el_error_set(err, -EINVAL, "tar stream", hoff,
						 "GNU.sparse.offset without numbytes");
				goto out;
			}
			if (!a->has_realsize) {
				r = el_error_set(err, -EINVAL, "tar stream", hoff,
						 "sparse entry without a real size");
				goto out;
			}
			r = check_sparse(t, hoff, err);
			if (r < 0)
				goto out;
			e->size = a->realsize;
			t->segs = a->segs;
			t->nsegs = a->nsegs;
		} else {
			e->size = e->type == EL_ENTRY_REG ? stored : 0;
			t->one_seg = (struct sparse_seg){ 0, stored };
			t->segs = &t->one_seg;
			t->nsegs = 1;
		}
		t->seg = 0;
		t->seg_done = 0;
		t->entries++;
		*ret = e;
		r = 1;
		goto out;
	}
out:
	free(long_name);
	free(long_link);
	free(local_pax);
	return r;
}

int el_tar_data(struct el_tar *t, const uint8_t **ret_buf, size_t *ret_len, uint64_t *ret_off,
		struct el_error *err)
{
	if (!t->data_is_file)
		return 0;
	while (t->seg < t->nsegs && t->seg_done == t->segs[t->seg].len) {
		t->seg++;
		t->seg_done = 0;
	}
	if (t->seg == t->nsegs)
		return 0;
	int r = fill(t, err);
	if (r < 0)
		return r;
	if (r == 0)
		return el_error_set(err, -EINVAL, "tar stream", t->off,
				    "unexpected end of input inside file data of '%s'",
				    t->entry.path);
	const struct sparse_seg *s = &t->segs[t->seg];
	size_t k = (size_t)EL_MIN(s->len - t->seg_done, (uint64_t)(t->win_len - t->win_pos));
	*ret_buf = t->win + t->win_pos;
	*ret_len = k;
	*ret_off = s->off + t->seg_done;
	t->win_pos += k;
	t->off += k;
	t->seg_done += k;
	t->data_left -= k;
	return 1;
}

int el_tar_finish(struct el_tar *t, struct el_error *err)
{
	for (;;) {
		int r = fill(t, err);
		if (r <= 0)
			return r;
		t->off += t->win_len - t->win_pos;
		t->win_pos = t->win_len;
	}
}
