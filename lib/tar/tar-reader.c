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
#include "common/util.h"
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
	size_t nglobals, globals_cap;
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

static int oom(struct el_error *err)
{
	return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
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
	_cleanup_free_ char *buf = malloc((size_t)size + 1);
	if (!buf)
		return oom(err);
	long n = read_bytes(t, buf, (size_t)size, err);
	if (n < 0)
		return (int)n;
	if ((uint64_t)n != size)
		return el_error_set(err, -EINVAL, "tar stream", t->off,
				    "unexpected end of input inside %s", what);
	buf[size] = 0;
	int r = skip_bytes(t, padding(size), what, err);
	if (r < 0)
		return r;
	*ret = EL_TAKE_PTR(buf);
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
	if (el_grow((void **)&t->globals, &t->globals_cap, t->nglobals + 1,
		    sizeof(*t->globals)) < 0) {
		free(payload);
		return oom(err);
	}
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

/* The meta entries ('L', 'K', 'x') read so far for the entry that follows
 * them: malloc'd payloads, freed once el_tar_next returns. */
struct pending {
	char *long_name, *long_link;
	char *pax;
	size_t pax_len;
	uint64_t pax_off;
};

static void pending_release(struct pending *p)
{
	int saved = errno;

	free(p->long_name);
	free(p->long_link);
	free(p->pax);
	*p = (struct pending){ 0 };
	errno = saved;
}

/* Reads the next header block into h, at *ret_hoff: 1, 0 at the
 * end-of-archive marker, or -errno. */
static int read_header(struct el_tar *t, uint8_t *h, const struct pending *p,
		       uint64_t *ret_hoff, struct el_error *err)
{
	uint64_t hoff = t->off;
	long n = read_bytes(t, h, TAR_BLOCK, err);

	*ret_hoff = hoff;
	if (n < 0)
		return (int)n;
	if (n == 0)
		return el_error_set(err, -EINVAL, "tar stream", hoff,
				    "unexpected end of input: no end-of-archive marker");
	if (n != TAR_BLOCK)
		return el_error_set(err, -EINVAL, "tar stream", hoff,
				    "truncated header (%ld of 512 bytes)", n);
	if (is_zero_block(h)) {
		/* a long name or PAX header promised an entry */
		if (p->long_name || p->long_link || p->pax)
			return el_error_set(err, -EINVAL, "tar stream", hoff,
					    "end-of-archive marker after an extended header");
		t->at_end = true;
		return 0;
	}
	int r = verify_checksum(h, hoff, err);
	return r < 0 ? r : 1;
}

/* GNU 'L' or 'K': the name itself is the payload; a second one before the
 * entry replaces the first. */
static int read_long_name(struct el_tar *t, uint64_t size, uint64_t hoff, const char *what,
			  char **slot, struct el_error *err)
{
	char *payload;
	int r = read_payload(t, size, EL_TAR_MAX_LONGNAME, what, hoff, &payload, err);

	if (r < 0)
		return r;
	free(*slot);
	*slot = payload;
	return 1;
}

/* PAX 'x': records for the next entry only, applied once its ustar header
 * is read (they override it). */
static int read_pax(struct el_tar *t, uint64_t size, uint64_t hoff, struct pending *p,
		    struct el_error *err)
{
	uint64_t poff = t->off;
	char *payload;
	int r = read_payload(t, size, EL_TAR_MAX_PAX, "a PAX header", hoff, &payload, err);

	if (r < 0)
		return r;
	free(p->pax);
	p->pax = payload;
	p->pax_len = (size_t)size;
	p->pax_off = poff;
	return 1;
}

/* PAX 'g': records for every entry after it. Later ones override earlier
 * ones key by key, so all are kept, in order. */
static int read_pax_global(struct el_tar *t, uint64_t size, uint64_t hoff, struct el_error *err)
{
	uint64_t poff = t->off;
	char *payload;
	int r = read_payload(t, size, EL_TAR_MAX_PAX, "a PAX global header", hoff, &payload, err);

	if (r < 0)
		return r;
	r = global_append(t, payload, (size_t)size, poff, hoff, err);
	return r < 0 ? r : 1;
}

/* 1 when the header is a meta entry's (its payload read), 0 for an entry of
 * the archive, or -errno. */
static int read_meta(struct el_tar *t, char type, uint64_t size, uint64_t hoff,
		     struct pending *p, struct el_error *err)
{
	switch (type) {
	case 'L':
		return read_long_name(t, size, hoff, "a GNU long name", &p->long_name, err);
	case 'K':
		return read_long_name(t, size, hoff, "a GNU long link", &p->long_link, err);
	case 'x':
	case 'X': /* Solaris' name for the same thing */
		return read_pax(t, size, hoff, p, err);
	case 'g':
		return read_pax_global(t, size, hoff, err);
	}
	return 0;
}

/* The name field, behind the prefix field in POSIX ustar headers only: old
 * GNU ones keep atime and ctime there, V7 ones anything. NULL on ENOMEM. */
static const char *header_name(struct el_tar *t, const uint8_t *h)
{
	bool posix = memcmp(h + H_MAGIC, "ustar\0" "00", 8) == 0;
	const char *name = field_str(t, h, H_NAME);

	if (!name || !posix || !h[345])
		return name;
	const char *prefix = field_str(t, h, H_PREFIX);
	char *full = prefix ? tar_arena_alloc(&t->arena, strlen(prefix) + strlen(name) + 2) : NULL;
	if (full)
		strcpy(stpcpy(stpcpy(full, prefix), "/"), name);
	return full;
}

/* The entry type of a typeflag; false for one we do not read. */
static bool entry_type(char type, enum el_entry_type *ret)
{
	switch (type) {
	case '0':
	case '\0':
	case '7':
	case 'S':
		*ret = EL_ENTRY_REG;
		return true;
	case '1':
		*ret = EL_ENTRY_HARDLINK;
		return true;
	case '2':
		*ret = EL_ENTRY_SYMLINK;
		return true;
	case '3':
		*ret = EL_ENTRY_CHR;
		return true;
	case '4':
		*ret = EL_ENTRY_BLK;
		return true;
	case '5':
	case 'D': /* GNU dumpdir: a directory plus a listing we do not need */
		*ret = EL_ENTRY_DIR;
		return true;
	case '6':
		*ret = EL_ENTRY_FIFO;
		return true;
	}
	return false;
}

/* An entry of a type we do not read is skipped with a warning, together with
 * the meta entries that described it. */
static int skip_entry(struct el_tar *t, char type, uint64_t size, const char *name,
		      uint64_t hoff, struct pending *p, struct el_error *err)
{
	uint64_t skip = size;
	char msg[128];

	snprintf(msg, sizeof(msg), "skipping entry '%.60s' of unsupported type '%c' (0x%02x)",
		 p->long_name ? p->long_name : name, type >= 32 && type < 127 ? type : '?',
		 (unsigned char)type);
	warn(t, hoff, msg);
	/* its data length may come from a PAX size record */
	if (p->pax) {
		int r = pax_apply(p->pax, p->pax_len, p->pax_off, &t->attrs, &t->arena, err);
		if (r < 0)
			return r;
		if (t->attrs.has_size)
			skip = t->attrs.size;
	}
	pending_release(p);
	tar_arena_reset(&t->arena);
	attrs_reset(&t->attrs);
	return skip_bytes(t, skip + padding(skip), "an entry", err);
}

/* The numeric ustar fields of an entry's header. */
struct header_numbers {
	int64_t mode, uid, gid, mtime, major, minor;
};

static int header_numbers(struct el_tar *t, const uint8_t *h, uint64_t hoff,
			  struct header_numbers *n, struct el_error *err)
{
	char type = (char)h[H_TYPE];
	int r;

	*n = (struct header_numbers){ 0 };
	if ((r = header_number(t, h, H_MODE, "mode", false, &n->mode, hoff, err)) < 0 ||
	    (r = header_number(t, h, H_UID, "uid", false, &n->uid, hoff, err)) < 0 ||
	    (r = header_number(t, h, H_GID, "gid", false, &n->gid, hoff, err)) < 0 ||
	    (r = header_number(t, h, H_MTIME, "mtime", true, &n->mtime, hoff, err)) < 0)
		return r;
	/* only devices have device numbers: junk in the fields of other
	 * entries cannot fail them */
	if ((type == '3' || type == '4') &&
	    ((r = header_number(t, h, H_DEVMAJOR, "devmajor", false, &n->major, hoff, err)) < 0 ||
	     (r = header_number(t, h, H_DEVMINOR, "devminor", false, &n->minor, hoff, err)) < 0))
		return r;
	return 0;
}

/* Applies the global PAX records, in order, then the entry's own. */
static int apply_pax(struct el_tar *t, const struct pending *p, struct el_error *err)
{
	struct tar_attrs *a = &t->attrs;

	if (t->nglobals) {
		for (size_t i = 0; i < t->nglobals; i++) {
			const struct global_pax *g = &t->globals[i];
			int r = pax_apply(g->payload, g->len, g->off, a, &t->arena, err);
			if (r < 0)
				return r;
		}
		/* Global records set defaults (owner, time, xattrs); a
		 * name, size or sparse map only ever describes one entry. */
		a->path = a->link = NULL;
		a->has_size = a->sparse = a->has_realsize = a->seg_pending_off = false;
		a->sparse_name = NULL;
		a->sparse_major = a->sparse_minor = -1;
		a->nsegs = 0;
	}
	if (p->pax)
		return pax_apply(p->pax, p->pax_len, p->pax_off, a, &t->arena, err);
	return 0;
}

/* Path and link target: a GNU long name wins over a PAX one, which wins over
 * the header's (a PAX sparse name over all). */
static int entry_names(struct el_tar *t, const uint8_t *h, const char *name, struct pending *p,
		       struct el_error *err)
{
	struct el_entry *e = &t->entry;
	const struct tar_attrs *a = &t->attrs;
	/* moved to the arena: the entry outlives the pending payloads */
	bool had_lname = p->long_name, had_llink = p->long_link;
	const char *lname = had_lname ? arena_take(t, EL_TAKE_PTR(p->long_name)) : NULL;
	const char *llink = had_llink ? arena_take(t, EL_TAKE_PTR(p->long_link)) : NULL;

	if ((had_lname && !lname) || (had_llink && !llink))
		return oom(err);
	e->path = lname ? lname : a->path ? a->path : name;
	if (a->sparse_name)
		e->path = a->sparse_name;
	e->link = llink ? llink : a->link ? a->link : field_str(t, h, H_LINK);
	if (!e->link)
		return oom(err);
	return 0;
}

/* Mode, owner, time, device and xattrs: PAX records override the header.
 * The header's numbers are range-checked even then. */
static int entry_inode(struct el_tar *t, const struct header_numbers *n, uint64_t hoff,
		       struct el_error *err)
{
	struct el_entry *e = &t->entry;
	const struct tar_attrs *a = &t->attrs;

	e->mode = (uint32_t)(n->mode & 07777);
	if (n->uid > UINT32_MAX || n->gid > UINT32_MAX)
		return el_error_set(err, -ERANGE, "tar stream", hoff + 108,
				    "uid or gid does not fit in 32 bits");
	e->uid = a->has_uid ? a->uid : (uint32_t)n->uid;
	e->gid = a->has_gid ? a->gid : (uint32_t)n->gid;
	e->mtime = a->has_mtime ? a->mtime : n->mtime;
	e->mtime_nsec = a->has_mtime ? a->mtime_nsec : 0;
	if (n->major > 0xfff || n->minor > 0xfffff)
		return el_error_set(err, -ERANGE, "tar stream", hoff + 329,
				    "device number %lld:%lld out of range", (long long)n->major,
				    (long long)n->minor);
	e->dev_major = a->has_major ? a->major : (uint32_t)n->major;
	e->dev_minor = a->has_minor ? a->minor : (uint32_t)n->minor;
	e->xattrs = a->xattrs;
	e->nxattrs = a->nxattrs;
	return 0;
}

/* A sparse file's data: its segments, one after the other. */
static int sparse_data(struct el_tar *t, uint64_t hoff, struct el_error *err)
{
	const struct tar_attrs *a = &t->attrs;
	int r;

	if (a->sparse_major == 1) {
		r = read_sparse_1_0(t, err);
		if (r < 0)
			return r;
	} else if (a->seg_pending_off) {
		return el_error_set(err, -EINVAL, "tar stream", hoff,
				    "GNU.sparse.offset without numbytes");
	}
	if (!a->has_realsize)
		return el_error_set(err, -EINVAL, "tar stream", hoff,
				    "sparse entry without a real size");
	r = check_sparse(t, hoff, err);
	if (r < 0)
		return r;
	t->entry.size = a->realsize;
	t->segs = a->segs;
	t->nsegs = a->nsegs;
	return 0;
}

/* What follows the headers: how much, and where in the file it goes. */
static int entry_data(struct el_tar *t, char type, uint64_t size, uint64_t hoff,
		      struct el_error *err)
{
	struct el_entry *e = &t->entry;
	const struct tar_attrs *a = &t->attrs;
	uint64_t stored = a->has_size ? a->size : size;

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
		int r = sparse_data(t, hoff, err);
		if (r < 0)
			return r;
	} else {
		e->size = e->type == EL_ENTRY_REG ? stored : 0;
		t->one_seg = (struct sparse_seg){ 0, stored };
		t->segs = &t->one_seg;
		t->nsegs = 1;
	}
	t->seg = 0;
	t->seg_done = 0;
	return 0;
}

/* The entry of the header h, with what the meta entries before it said: 1,
 * or 0 when its type is skipped. */
static int build_entry(struct el_tar *t, const uint8_t *h, uint64_t size, uint64_t hoff,
		       struct pending *p, const struct el_entry **ret, struct el_error *err)
{
	struct el_entry *e = &t->entry;
	char type = (char)h[H_TYPE];
	struct header_numbers n;
	int r;

	*e = (struct el_entry){ .offset = hoff };
	const char *name = header_name(t, h);
	if (!name)
		return oom(err);
	if (!entry_type(type, &e->type))
		return skip_entry(t, type, size, name, hoff, p, err);
	r = header_numbers(t, h, hoff, &n, err);
	if (r < 0)
		return r;
	r = apply_pax(t, p, err);
	if (r < 0)
		return r;
	/* after the pax records: applying globals clears any sparse map, as a
	 * map describes one entry only, and this one is the entry's own */
	if (type == 'S') {
		r = read_gnu_sparse(t, h, hoff, err);
		if (r < 0)
			return r;
	}
	r = entry_names(t, h, name, p, err);
	if (r < 0)
		return r;
	r = entry_inode(t, &n, hoff, err);
	if (r < 0)
		return r;
	r = entry_data(t, type, size, hoff, err);
	if (r < 0)
		return r;
	t->entries++;
	*ret = e;
	return 1;
}

int el_tar_next(struct el_tar *t, const struct el_entry **ret, struct el_error *err)
{
	_cleanup_(pending_release) struct pending p = { 0 };
	uint8_t h[TAR_BLOCK];
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
		uint64_t hoff;
		int64_t size;

		r = read_header(t, h, &p, &hoff, err);
		if (r <= 0)
			return r;
		r = header_number(t, h, H_SIZE, "size", false, &size, hoff, err);
		if (r < 0)
			return r;
		r = read_meta(t, (char)h[H_TYPE], (uint64_t)size, hoff, &p, err);
		if (r < 0)
			return r;
		if (r > 0)
			continue;
		r = build_entry(t, h, (uint64_t)size, hoff, &p, ret, err);
		if (r != 0)
			return r;
		/* a skipped entry: the next header */
	}
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
