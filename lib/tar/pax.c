/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PAX extended header records ("LEN KEY=VALUE\n", POSIX.1-2001) and the keys
 * we honour: path, linkpath, size, uid, gid, mtime (with fraction),
 * SCHILY.xattr.*, LIBARCHIVE.xattr.* (URL-encoded name, base64 value),
 * SCHILY.devmajor/devminor and the GNU.sparse.* family. Other keys (atime,
 * ctime, uname, gname, charset, comments, ...) are ignored: they have no place
 * in an EROFS image.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "erofs-layer/tar.h"
#include "common/macro.h"
#include "common/util.h"
#include "tar-internal.h"

struct arena_chunk {
	struct arena_chunk *next;
	size_t used, cap;
	_Alignas(16) unsigned char data[];
};

void *tar_arena_alloc(struct tar_arena *a, size_t len)
{
	struct arena_chunk *c = a->chunks;

	len = EL_ROUND_UP(len ? len : 1, (size_t)16);
	if (!c || c->cap - c->used < len) {
		size_t cap = EL_MAX(len, (size_t)(64u << 10));
		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->used = 0;
		c->cap = cap;
		c->next = a->chunks;
		a->chunks = c;
	}
	void *p = c->data + c->used;
	c->used += len;
	return p;
}

void tar_arena_reset(struct tar_arena *a)
{
	struct arena_chunk *c = a->chunks;

	/* keep one chunk: most entries fit in it */
	while (c && c->next) {
		struct arena_chunk *n = c->next;
		free(c);
		c = n;
	}
	if (c)
		c->used = 0;
	a->chunks = c;
}

int pax_parse_u64(const char *s, size_t len, uint64_t *ret)
{
	uint64_t v = 0;

	if (len == 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		if (el_mul_overflow(v, 10, &v) || el_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
			return -ERANGE;
	}
	*ret = v;
	return 0;
}

int pax_parse_time(const char *s, size_t len, int64_t *ret_sec, uint32_t *ret_nsec)
{
	bool neg = false;
	uint64_t sec;
	uint32_t nsec = 0;
	size_t i = 0, dot;

	if (len && s[0] == '-') {
		neg = true;
		i = 1;
	}
	for (dot = i; dot < len && s[dot] != '.'; dot++)
		;
	if (pax_parse_u64(s + i, dot - i, &sec) < 0 || sec > (uint64_t)INT64_MAX)
		return -EINVAL;
	if (dot < len) {
		uint32_t scale = 100000000;
		if (dot + 1 == len)
			return -EINVAL;
		for (size_t k = dot + 1; k < len; k++) {
			if (s[k] < '0' || s[k] > '9')
				return -EINVAL;
			nsec += (uint32_t)(s[k] - '0') * scale; /* digits past 1 ns are dropped */
			scale /= 10;
		}
	}
	if (neg) {
		/* -1.25 is 1.25 s before the epoch: -2 s + 0.75 s */
		if (nsec) {
			sec += 1;
			nsec = 1000000000u - nsec;
		}
		if (sec > (uint64_t)INT64_MAX + 1)
			return -EINVAL;
		*ret_sec = sec == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)sec;
	} else {
		*ret_sec = (int64_t)sec;
	}
	*ret_nsec = nsec;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* LIBARCHIVE.xattr names are URL-encoded (%XX). */
static char *url_decode(const char *s, size_t len, struct tar_arena *arena)
{
	char *out = tar_arena_alloc(arena, len + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		int hi, lo;
		if (s[i] == '%' && i + 2 < len && (hi = hexval(s[i + 1])) >= 0 &&
		    (lo = hexval(s[i + 2])) >= 0) {
			*o++ = (char)(hi << 4 | lo);
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = 0;
	return out;
}

static int b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Base64 with or without padding (libarchive writes it without). */
static int b64_decode(const char *s, size_t len, struct tar_arena *arena, uint8_t **ret,
		      size_t *ret_len)
{
	uint8_t *out = tar_arena_alloc(arena, len / 4 * 3 + 3);
	size_t n = 0;
	uint32_t acc = 0;
	int bits = 0;

	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '=')
			break;
		int v = b64val(s[i]);
		if (v < 0)
			return -EINVAL;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (uint8_t)(acc >> bits);
		}
	}
	*ret = out;
	*ret_len = n;
	return 0;
}

static int add_xattr(struct tar_attrs *a, const char *name, const uint8_t *val, size_t len,
		     uint64_t where, struct el_error *err)
{
	size_t nlen = strlen(name);

	if (nlen == 0 || nlen > EL_TAR_MAX_XATTR_NAME)
		return el_error_set(err, -EINVAL, "tar stream", where,
				    "xattr name of %zu bytes (limit %u)", nlen, EL_TAR_MAX_XATTR_NAME);
	if (len > EL_TAR_MAX_XATTR_VALUE)
		return el_error_set(err, -EINVAL, "tar stream", where,
				    "xattr %s has a %zu-byte value (limit %u)", name, len,
				    EL_TAR_MAX_XATTR_VALUE);
	/* the same name twice (e.g. SCHILY and LIBARCHIVE forms): the later wins */
	for (size_t i = 0; i < a->nxattrs; i++) {
		if (strcmp(a->xattrs[i].name, name) == 0) {
			a->xattrs[i].value = val;
			a->xattrs[i].value_len = len;
			return 0;
		}
	}
	if (a->nxattrs == EL_TAR_MAX_XATTRS)
		return el_error_set(err, -E2BIG, "tar stream", where,
				    "more than %u xattrs on one entry", EL_TAR_MAX_XATTRS);
	if (el_grow((void **)&a->xattrs, &a->xattrs_cap, a->nxattrs + 1, sizeof(*a->xattrs)) < 0)
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	a->xattrs[a->nxattrs++] = (struct el_xattr_kv){ name, val, len };
	return 0;
}

int sparse_push(struct tar_attrs *a, uint64_t off, uint64_t len, uint64_t where,
		struct el_error *err)
{
	uint64_t end;

	if (el_add_overflow(off, len, &end) || end > (uint64_t)INT64_MAX)
		return el_error_set(err, -EINVAL, "tar stream", where,
				    "sparse segment %llu+%llu overflows", (unsigned long long)off,
				    (unsigned long long)len);
	if (a->nsegs) {
		const struct sparse_seg *p = &a->segs[a->nsegs - 1];
		if (off < p->off + p->len)
			return el_error_set(err, -EINVAL, "tar stream", where,
					    "sparse map not in ascending order at segment %zu",
					    a->nsegs);
	}
	if (a->nsegs == EL_TAR_MAX_SPARSE)
		return el_error_set(err, -E2BIG, "tar stream", where,
				    "sparse map has more than %u segments", EL_TAR_MAX_SPARSE);
	if (el_grow((void **)&a->segs, &a->segs_cap, a->nsegs + 1, sizeof(*a->segs)) < 0)
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	a->segs[a->nsegs++] = (struct sparse_seg){ off, len };
	a->sparse = true;
	return 0;
}

/* GNU.sparse.map (0.1): "off,len,off,len,..." */
static int parse_sparse_map(struct tar_attrs *a, const char *v, size_t len, uint64_t where,
			    struct el_error *err)
{
	uint64_t nums[2];
	int k = 0;
	size_t i = 0;

	a->nsegs = 0;
	if (len == 0)
		return 0;
	while (i <= len) {
		size_t j = i;
		while (j < len && v[j] != ',')
			j++;
		if (pax_parse_u64(v + i, j - i, &nums[k]) < 0)
			return el_error_set(err, -EINVAL, "tar stream", where,
					    "malformed GNU.sparse.map");
		if (++k == 2) {
			int r = sparse_push(a, nums[0], nums[1], where, err);
			if (r < 0)
				return r;
			k = 0;
		}
		i = j + 1;
	}
	if (k != 0)
		return el_error_set(err, -EINVAL, "tar stream", where,
				    "GNU.sparse.map has an odd number of values");
	return 0;
}

static bool key_is(const char *key, size_t klen, const char *want)
{
	return strlen(want) == klen && memcmp(key, want, klen) == 0;
}

static char *dup_str(struct tar_arena *arena, const char *s, size_t len)
{
	char *p = tar_arena_alloc(arena, len + 1);
	if (p) {
		memcpy(p, s, len);
		p[len] = 0;
	}
	return p;
}

static int apply_record(struct tar_attrs *a, const char *key, size_t klen, const char *val,
			size_t vlen, uint64_t where, struct tar_arena *arena, struct el_error *err)
{
	uint64_t u;
	int r;

#define NUMBER(field, has, max)                                                   \
	do {                                                                      \
		if (pax_parse_u64(val, vlen, &u) < 0 || u > (max))                \
			return el_error_set(err, -EINVAL, "tar stream", where,    \
					    "bad PAX %.*s value '%.*s'", (int)klen, key,   \
					    (int)EL_MIN(vlen, (size_t)40), val);          \
		a->field = (__typeof__(a->field))u;                               \
		a->has = true;                                                    \
	} while (0)

	if (key_is(key, klen, "path")) {
		a->path = vlen ? dup_str(arena, val, vlen) : NULL;
		if (vlen && !a->path)
			return -ENOMEM;
	} else if (key_is(key, klen, "linkpath")) {
		a->link = vlen ? dup_str(arena, val, vlen) : NULL;
		if (vlen && !a->link)
			return -ENOMEM;
	} else if (key_is(key, klen, "size")) {
		NUMBER(size, has_size, (uint64_t)INT64_MAX);
	} else if (key_is(key, klen, "uid")) {
		NUMBER(uid, has_uid, (uint64_t)UINT32_MAX);
	} else if (key_is(key, klen, "gid")) {
		NUMBER(gid, has_gid, (uint64_t)UINT32_MAX);
	} else if (key_is(key, klen, "SCHILY.devmajor")) {
		NUMBER(major, has_major, (uint64_t)0xfff);
	} else if (key_is(key, klen, "SCHILY.devminor")) {
		NUMBER(minor, has_minor, (uint64_t)0xfffff);
	} else if (key_is(key, klen, "mtime")) {
		if (pax_parse_time(val, vlen, &a->mtime, &a->mtime_nsec) < 0)
			return el_error_set(err, -EINVAL, "tar stream", where,
					    "bad PAX mtime '%.*s'", (int)EL_MIN(vlen, (size_t)40),
					    val);
		a->has_mtime = true;
	} else if (klen > 13 && memcmp(key, "SCHILY.xattr.", 13) == 0) {
		char *name = dup_str(arena, key + 13, klen - 13);
		uint8_t *v = (uint8_t *)dup_str(arena, val, vlen);
		if (!name || !v)
			return -ENOMEM;
		return add_xattr(a, name, v, vlen, where, err);
	} else if (klen > 17 && memcmp(key, "LIBARCHIVE.xattr.", 17) == 0) {
		char *name = url_decode(key + 17, klen - 17, arena);
		uint8_t *v;
		size_t n;
		if (!name)
			return -ENOMEM;
		r = b64_decode(val, vlen, arena, &v, &n);
		if (r < 0)
			return el_error_set(err, r, "tar stream", where,
					    "bad base64 value of LIBARCHIVE.xattr.%s", name);
		return add_xattr(a, name, v, n, where, err);
	} else if (klen > 11 && memcmp(key, "GNU.sparse.", 11) == 0) {
		const char *k = key + 11;
		size_t kl = klen - 11;
		if (key_is(k, kl, "major") || key_is(k, kl, "minor")) {
			if (pax_parse_u64(val, vlen, &u) < 0 || u > 16)
				return el_error_set(err, -EINVAL, "tar stream", where,
						    "bad GNU.sparse version");
			if (k[1] == 'a')
				a->sparse_major = (int)u;
			else
				a->sparse_minor = (int)u;
			a->sparse = true;
		} else if (key_is(k, kl, "name")) {
			a->sparse_name = dup_str(arena, val, vlen);
			if (!a->sparse_name)
				return -ENOMEM;
		} else if (key_is(k, kl, "realsize") || key_is(k, kl, "size")) {
			NUMBER(realsize, has_realsize, (uint64_t)INT64_MAX);
			a->sparse = true;
		} else if (key_is(k, kl, "map")) {
			return parse_sparse_map(a, val, vlen, where, err);
		} else if (key_is(k, kl, "offset")) {
			if (a->seg_pending_off || pax_parse_u64(val, vlen, &u) < 0)
				return el_error_set(err, -EINVAL, "tar stream", where,
						    "bad GNU.sparse.offset");
			r = sparse_push(a, u, 0, where, err);
			if (r < 0)
				return r;
			a->seg_pending_off = true;
		} else if (key_is(k, kl, "numbytes")) {
			if (!a->seg_pending_off || pax_parse_u64(val, vlen, &u) < 0)
				return el_error_set(err, -EINVAL, "tar stream", where,
						    "GNU.sparse.numbytes without an offset");
			uint64_t end;
			if (el_add_overflow(a->segs[a->nsegs - 1].off, u, &end) || end > (uint64_t)INT64_MAX)
				return el_error_set(err, -EINVAL, "tar stream", where,
						    "sparse segment %llu+%llu overflows",
						    (unsigned long long)a->segs[a->nsegs - 1].off,
						    (unsigned long long)u);
			a->segs[a->nsegs - 1].len = u;
			a->seg_pending_off = false;
		}
		/* numblocks is implied by the map */
	}
#undef NUMBER
	return 0;
}

int pax_apply(const char *p, size_t len, uint64_t base, struct tar_attrs *attrs,
	      struct tar_arena *arena, struct el_error *err)
{
	size_t pos = 0;

	while (pos < len) {
		uint64_t where = base + pos;
		size_t i = pos, rlen = 0;

		/* A NUL where a record should start ends the data (some writers
		 * pad the payload). */
		if (p[pos] == 0)
			break;
		while (i < len && p[i] >= '0' && p[i] <= '9') {
			if (el_mul_overflow(rlen, 10, &rlen) ||
			    el_add_overflow(rlen, (size_t)(p[i] - '0'), &rlen))
				return el_error_set(err, -EINVAL, "tar stream", where,
						    "PAX record length overflows");
			i++;
		}
		if (i == pos || i >= len || p[i] != ' ' || rlen < (i - pos) + 3 ||
		    rlen > len - pos)
			return el_error_set(err, -EINVAL, "tar stream", where,
					    "malformed PAX record length");
		const char *rec = p + i + 1, *end = p + pos + rlen - 1; /* end -> '\n' */
		if (*end != '\n')
			return el_error_set(err, -EINVAL, "tar stream", where,
					    "PAX record does not end with a newline");
		const char *eq = memchr(rec, '=', (size_t)(end - rec));
		if (!eq || eq == rec)
			return el_error_set(err, -EINVAL, "tar stream", where,
					    "PAX record without key=value");
		int r = apply_record(attrs, rec, (size_t)(eq - rec), eq + 1,
				     (size_t)(end - eq - 1), where, arena, err);
		if (r == -ENOMEM)
			return el_error_set(err, r, NULL, EL_NO_OFFSET, "out of memory");
		if (r < 0)
			return r;
		pos += rlen;
	}
	return 0;
}
