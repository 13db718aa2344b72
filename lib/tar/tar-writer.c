/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Streaming tar writer (see tar-writer.h for the format it writes). Field
 * layout: POSIX.1-2017 XCU pax, "ustar Interchange Format" (the header
 * block) and "pax Extended Header" (records "LEN KEY=VALUE\n", LEN counting
 * its own digits). Numbers in the header are zero-padded octal with a NUL
 * terminator; values too large for a field go to a pax record instead
 * (never GNU base-256: readers that ignore pax should fail loudly rather than
 * guess).
 */
#include "erofs-layer/tar-writer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress-internal.h"
#include "erofs-layer/tar.h"
#include "common/macro.h"
#include "common/util.h"
#include "tar-internal.h"

/* ustar header fields: offset, length */
#define H_NAME 0, 100
#define H_MODE 100, 8
#define H_UID 108, 8
#define H_GID 116, 8
#define H_SIZE 124, 12
#define H_MTIME 136, 12
#define H_CHKSUM 148
#define H_TYPE 156
#define H_LINK 157, 100
#define H_MAGIC 257 /* "ustar\0" then version "00" */
#define H_DEVMAJOR 329, 8
#define H_DEVMINOR 337, 8
#define H_PREFIX 345, 155

#define NAME_MAX_LEN 100u
#define PREFIX_MAX_LEN 155u
#define OCT7_MAX 07777777ull	  /* 8-byte fields: uid, gid, mode, devices */
#define OCT11_MAX 077777777777ull /* 12-byte fields: size, mtime */
#define DEV_MAJOR_MAX 0xfffu	  /* Linux dev_t: 12-bit major, 20-bit minor */
#define DEV_MINOR_MAX 0xfffffu
#define CANCEL_STEP (4u << 20)
#define ZEROS_SIZE (64u << 10)

static const uint8_t zeros[ZEROS_SIZE];

enum tarw_state {
	ST_READY, /* between entries */
	ST_DATA,  /* a regular file's data is being written */
	ST_DONE,  /* finished */
	ST_FAILED,
};

struct el_tarw {
	struct zout *out;
	bool has_epoch;
	int64_t epoch;
	atomic_bool *cancel;

	enum tarw_state state;
	struct el_error first; /* the error that aborted the writer */

	/* the current (or last) entry, for messages and the data count */
	char *path;
	size_t path_cap;
	uint64_t entry_off; /* uncompressed offset of its first header */
	uint64_t size, left;
	uint64_t entries;

	/* scratch of el_tarw_add */
	char *pax;
	size_t pax_len, pax_cap;
	const struct el_xattr_kv **xs;
	size_t xs_cap;
};

int el_tarw_new(const struct el_tarw_opts *opts, struct el_tarw **ret, struct el_error *err)
{
	struct el_tarw *w;
	int r;

	if (!opts || !opts->write)
		return el_error_set(err, -EINVAL, NULL, EL_NO_OFFSET, "tar writer without a sink");
	w = calloc(1, sizeof(*w));
	if (!w)
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	el_error_clear(&w->first);
	r = zout_new(opts->compression, opts->level, opts->write, opts->write_ud, &w->out, err);
	if (r < 0) {
		el_tarw_free(w);
		return r;
	}
	w->has_epoch = opts->has_epoch;
	w->epoch = opts->epoch;
	w->cancel = opts->cancel;
	*ret = w;
	return 0;
}

void el_tarw_free(struct el_tarw *w)
{
	if (!w)
		return;
	zout_free(w->out);
	free(w->path);
	free(w->pax);
	free(w->xs);
	free(w);
}

/* ---- error handling: the first error aborts the writer ---- */

static int oom(struct el_tarw *w)
{
	return el_error_set(&w->first, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
}

static int cancelled(struct el_tarw *w)
{
	if (w->cancel && atomic_load(w->cancel))
		return el_error_set(&w->first, -ECANCELED, NULL, EL_NO_OFFSET, "cancelled");
	return 0;
}

/* At the start of every call: fails when the writer cannot go on. */
static int check_usable(struct el_tarw *w)
{
	if (w->state == ST_FAILED)
		return w->first.code;
	if (w->state == ST_DONE)
		return el_error_set(&w->first, -EINVAL, NULL, EL_NO_OFFSET,
				    "the archive is already finished");
	return cancelled(w);
}

/* At the end of every call: r < 0 aborts the writer (once finished, a
 * misuse leaves it finished). Copies the first error to the caller's. */
static int leave(struct el_tarw *w, int r, struct el_error *err)
{
	if (r >= 0)
		return r;
	if (!w->first.code)
		el_error_set(&w->first, r, NULL, EL_NO_OFFSET, "%s", strerror(-r));
	if (w->state != ST_DONE)
		w->state = ST_FAILED;
	if (err && !err->code)
		*err = w->first;
	r = w->first.code;
	if (w->state == ST_DONE)
		el_error_clear(&w->first);
	return r;
}

/* An error about the current entry, at the offset of its first header. */
static int entry_error(struct el_tarw *w, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int entry_error(struct el_tarw *w, int code, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return el_error_set(&w->first, code, "tar output", w->entry_off, "%s: %s",
			    w->path ? w->path : "(no entry)", msg);
}

static int emit(struct el_tarw *w, const void *buf, size_t len)
{
	return zout_write(w->out, buf, len, &w->first);
}

static uint64_t padding(uint64_t size)
{
	return (TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK;
}

/* ---- header fields ---- */

static void put_bytes(uint8_t *h, size_t off, size_t len, const char *s, size_t n)
{
	memcpy(h + off, s, EL_MIN(n, len));
}

/* len-1 octal digits and a NUL; a value that does not fit is written as 0
 * (the caller has a pax record for it). */
static void put_octal(uint8_t *h, size_t off, size_t len, uint64_t v)
{
	char *f = (char *)h + off;

	if (len - 1 < 22 && v >> (3 * (len - 1)))
		v = 0;
	for (size_t i = len - 1; i-- > 0;) {
		f[i] = (char)('0' + (v & 7));
		v >>= 3;
	}
	f[len - 1] = 0;
}

static void put_checksum(uint8_t *h)
{
	uint32_t sum = 0;

	memset(h + H_CHKSUM, ' ', 8);
	for (size_t i = 0; i < TAR_BLOCK; i++)
		sum += h[i];
	/* six digits, NUL, space: the historic layout every reader accepts */
	put_octal(h, H_CHKSUM, 7, sum);
	h[H_CHKSUM + 7] = ' ';
}

static void ustar_init(uint8_t *h, char type)
{
	memset(h, 0, TAR_BLOCK);
	h[H_TYPE] = (uint8_t)type;
	memcpy(h + H_MAGIC, "ustar\0" "00", 8);
}

/* Splits a path longer than 100 bytes into prefix '/' name (prefix up to
 * 155 bytes, name 1..100 bytes); returns the index of that '/', or 0 when
 * there is none (a '/' at index 0 would leave an empty prefix). The longest
 * prefix is taken, as Go's archive/tar does. */
static size_t ustar_split(const char *path, size_t len)
{
	size_t i = EL_MIN(len - 1, (size_t)PREFIX_MAX_LEN);

	for (; i > 0; i--) {
		if (path[i] != '/')
			continue;
		size_t nlen = len - i - 1;
		if (nlen == 0)
			continue;
		if (nlen > NAME_MAX_LEN)
			return 0; /* shorter prefixes only make the name longer */
		return i;
	}
	return 0;
}

/* ---- pax records ---- */

static int pax_grow(struct el_tarw *w, size_t need)
{
	size_t total;

	if (el_add_overflow(w->pax_len, need, &total) ||
	    el_grow((void **)&w->pax, &w->pax_cap, total, 1) < 0)
		return oom(w);
	return 0;
}

static size_t decimal_digits(size_t v)
{
	size_t n = 1;
	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

/* "LEN KEYPREFIXKEY=VALUE\n", the key in two parts (for SCHILY.xattr.). */
static int pax_add(struct el_tarw *w, const char *kprefix, const char *key, const void *val,
		   size_t vlen)
{
	size_t kp = strlen(kprefix), kl = strlen(key);
	size_t body = 1 + kp + kl + 1 + vlen + 1; /* ' ' key '=' value '\n' */
	size_t total = body + decimal_digits(body);
	char num[24];
	int r;

	if (decimal_digits(total) != decimal_digits(body))
		total = body + decimal_digits(total); /* one more digit can't carry again */
	if ((r = pax_grow(w, total)) < 0)
		return r;
	int n = snprintf(num, sizeof(num), "%zu", total);
	char *p = w->pax + w->pax_len;
	memcpy(p, num, (size_t)n), p += n;
	*p++ = ' ';
	memcpy(p, kprefix, kp), p += kp;
	memcpy(p, key, kl), p += kl;
	*p++ = '=';
	if (vlen) /* an empty value may come without a buffer */
		memcpy(p, val, vlen);
	p += vlen;
	*p++ = '\n';
	w->pax_len += total;
	return 0;
}

static int pax_add_u64(struct el_tarw *w, const char *key, uint64_t v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
	return pax_add(w, "", key, num, (size_t)n);
}

static int cmp_xattr(const void *a, const void *b)
{
	const struct el_xattr_kv *const *x = a, *const *y = b;
	return strcmp((*x)->name, (*y)->name);
}

/* Checks the xattrs and sorts pointers to them into w->xs. */
static int sort_xattrs(struct el_tarw *w, const struct el_entry *e)
{
	if (e->nxattrs > EL_TAR_MAX_XATTRS)
		return entry_error(w, -E2BIG, "%zu xattrs (limit %u)", e->nxattrs,
				   EL_TAR_MAX_XATTRS);
	if (el_grow((void **)&w->xs, &w->xs_cap, e->nxattrs, sizeof(*w->xs)) < 0)
		return oom(w);
	for (size_t i = 0; i < e->nxattrs; i++) {
		const struct el_xattr_kv *x = &e->xattrs[i];
		size_t nl = x->name ? strlen(x->name) : 0;
		if (nl == 0)
			return entry_error(w, -EINVAL, "xattr %zu has an empty name", i);
		if (nl > EL_TAR_MAX_XATTR_NAME)
			return entry_error(w, -EINVAL, "xattr name of %zu bytes (limit %u)", nl,
					   EL_TAR_MAX_XATTR_NAME);
		/* a pax record's key ends at the first '=' */
		if (strchr(x->name, '='))
			return entry_error(w, -EINVAL, "xattr name '%s' contains '='", x->name);
		if (x->value_len > EL_TAR_MAX_XATTR_VALUE)
			return entry_error(w, -E2BIG, "xattr %s has a %zu-byte value (limit %u)",
					   x->name, x->value_len, EL_TAR_MAX_XATTR_VALUE);
		if (x->value_len && !x->value)
			return entry_error(w, -EINVAL, "xattr %s has no value buffer", x->name);
		w->xs[i] = x;
	}
	if (e->nxattrs > 1)
		qsort(w->xs, e->nxattrs, sizeof(*w->xs), cmp_xattr);
	for (size_t i = 1; i < e->nxattrs; i++)
		if (strcmp(w->xs[i - 1]->name, w->xs[i]->name) == 0)
			return entry_error(w, -EINVAL, "xattr %s appears twice", w->xs[i]->name);
	return 0;
}

/* The 'x' header: "<dir>/PaxHeaders.0/<base>" cut to 100 bytes. */
static int emit_pax(struct el_tarw *w, const char *path, size_t plen)
{
	uint8_t h[TAR_BLOCK];
	char name[NAME_MAX_LEN + 1];
	size_t end = plen, slash;
	int r;

	if (w->pax_len > EL_TAR_MAX_PAX)
		return entry_error(w, -E2BIG, "pax header of %zu bytes (limit %u)", w->pax_len,
				   EL_TAR_MAX_PAX);
	if (end > 1 && path[end - 1] == '/')
		end--;
	for (slash = end; slash > 0 && path[slash - 1] != '/'; slash--)
		;
	int n = snprintf(name, sizeof(name), "%.*sPaxHeaders.0/%.*s",
			 (int)EL_MIN(slash, (size_t)NAME_MAX_LEN), path,
			 (int)EL_MIN(end - slash, (size_t)NAME_MAX_LEN), path + slash);
	ustar_init(h, 'x');
	put_bytes(h, H_NAME, name, EL_MIN((size_t)n, (size_t)NAME_MAX_LEN));
	put_octal(h, H_MODE, 0644);
	put_octal(h, H_UID, 0);
	put_octal(h, H_GID, 0);
	put_octal(h, H_SIZE, w->pax_len);
	put_octal(h, H_MTIME, 0);
	put_octal(h, H_DEVMAJOR, 0);
	put_octal(h, H_DEVMINOR, 0);
	put_checksum(h);
	if ((r = emit(w, h, TAR_BLOCK)) < 0 || (r = emit(w, w->pax, w->pax_len)) < 0)
		return r;
	return emit(w, zeros, padding(w->pax_len));
}

static int set_path(struct el_tarw *w, const char *path, size_t len, bool slash)
{
	if (el_grow((void **)&w->path, &w->path_cap, len + 2, 1) < 0)
		return oom(w);
	memcpy(w->path, path, len);
	if (slash)
		w->path[len++] = '/';
	w->path[len] = 0;
	return 0;
}

static int add_entry(struct el_tarw *w, const struct el_entry *e)
{
	uint8_t h[TAR_BLOCK];
	char type;
	int r;

	if (w->state == ST_DATA)
		return entry_error(w, -EINVAL, "%llu of its %llu data bytes were written",
				   (unsigned long long)(w->size - w->left),
				   (unsigned long long)w->size);
	w->entry_off = zout_offset(w->out);
	size_t plen = e->path ? strlen(e->path) : 0;
	bool dir = e->type == EL_ENTRY_DIR;
	if ((r = set_path(w, e->path ? e->path : "", plen,
			  dir && plen && e->path[plen - 1] != '/')) < 0)
		return r;
	if (plen == 0)
		return entry_error(w, -EINVAL, "empty path");
	plen = strlen(w->path);
	if (!dir && w->path[plen - 1] == '/')
		return entry_error(w, -EINVAL, "a non-directory path ending in '/'");

	switch (e->type) {
	case EL_ENTRY_REG:
		type = '0';
		break;
	case EL_ENTRY_DIR:
		type = '5';
		break;
	case EL_ENTRY_SYMLINK:
		type = '2';
		break;
	case EL_ENTRY_HARDLINK:
		type = '1';
		break;
	case EL_ENTRY_CHR:
		type = '3';
		break;
	case EL_ENTRY_BLK:
		type = '4';
		break;
	case EL_ENTRY_FIFO:
		type = '6';
		break;
	default:
		return entry_error(w, -EINVAL, "unknown entry type %d", (int)e->type);
	}
	bool is_link = type == '1' || type == '2';
	size_t llen = is_link && e->link ? strlen(e->link) : 0;
	if (is_link && llen == 0)
		return entry_error(w, -EINVAL, "empty link target");
	bool is_dev = type == '3' || type == '4';
	if (is_dev && (e->dev_major > DEV_MAJOR_MAX || e->dev_minor > DEV_MINOR_MAX))
		return entry_error(w, -ERANGE, "device number %u:%u out of range", e->dev_major,
				   e->dev_minor);
	if ((r = sort_xattrs(w, e)) < 0)
		return r;
	/* the numbers readers take (ours and Go's parse into an int64) */
	if (type == '0' && e->size > (uint64_t)INT64_MAX)
		return entry_error(w, -EFBIG, "size %llu is over 2^63 - 1",
				   (unsigned long long)e->size);
	if (e->mtime == INT64_MIN)
		return entry_error(w, -ERANGE, "mtime -2^63 cannot be written");

	uint64_t size = type == '0' ? e->size : 0;
	int64_t mtime = e->mtime;
	if (w->has_epoch && mtime > w->epoch)
		mtime = w->epoch;

	/* pax records, in key order (as Go writes them): "SCHILY.xattr.*"
	 * sorts before the lowercase keys */
	w->pax_len = 0;
	for (size_t i = 0; i < e->nxattrs; i++)
		if ((r = pax_add(w, "SCHILY.xattr.", w->xs[i]->name, w->xs[i]->value,
				 w->xs[i]->value_len)) < 0)
			return r;
	if (e->gid > OCT7_MAX && (r = pax_add_u64(w, "gid", e->gid)) < 0)
		return r;
	if (llen > NAME_MAX_LEN && (r = pax_add(w, "", "linkpath", e->link, llen)) < 0)
		return r;
	if ((mtime < 0 || (uint64_t)mtime > OCT11_MAX)) {
		char num[24];
		int n = snprintf(num, sizeof(num), "%lld", (long long)mtime);
		if ((r = pax_add(w, "", "mtime", num, (size_t)n)) < 0)
			return r;
	}
	size_t split = plen > NAME_MAX_LEN ? ustar_split(w->path, plen) : 0;
	if (plen > NAME_MAX_LEN && !split && (r = pax_add(w, "", "path", w->path, plen)) < 0)
		return r;
	if (size > OCT11_MAX && (r = pax_add_u64(w, "size", size)) < 0)
		return r;
	if (e->uid > OCT7_MAX && (r = pax_add_u64(w, "uid", e->uid)) < 0)
		return r;
	if (w->pax_len && (r = emit_pax(w, w->path, plen)) < 0)
		return r;

	ustar_init(h, type);
	if (split) {
		put_bytes(h, H_PREFIX, w->path, split);
		put_bytes(h, H_NAME, w->path + split + 1, plen - split - 1);
	} else {
		put_bytes(h, H_NAME, w->path, plen); /* cut to 100 when in pax */
	}
	put_octal(h, H_MODE, e->mode & 07777);
	put_octal(h, H_UID, e->uid);
	put_octal(h, H_GID, e->gid);
	put_octal(h, H_SIZE, size);
	put_octal(h, H_MTIME, mtime >= 0 ? (uint64_t)mtime : 0);
	if (is_link)
		put_bytes(h, H_LINK, e->link, llen);
	put_octal(h, H_DEVMAJOR, is_dev ? e->dev_major : 0);
	put_octal(h, H_DEVMINOR, is_dev ? e->dev_minor : 0);
	put_checksum(h);
	if ((r = emit(w, h, TAR_BLOCK)) < 0)
		return r;

	w->entries++;
	w->size = w->left = size;
	w->state = size ? ST_DATA : ST_READY;
	return 0;
}

int el_tarw_add(struct el_tarw *w, const struct el_entry *e, struct el_error *err)
{
	int r = check_usable(w);
	if (r >= 0)
		r = add_entry(w, e);
	return leave(w, r, err);
}

/* Checks that n more data bytes are welcome. */
static int data_check(struct el_tarw *w, uint64_t n)
{
	if (w->state != ST_DATA) {
		if (!w->entries)
			return el_error_set(&w->first, -EINVAL, NULL, EL_NO_OFFSET,
					    "%llu data bytes before any entry",
					    (unsigned long long)n);
		return entry_error(w, -EINVAL,
				   "%llu data bytes after the entry's data was complete "
				   "(declared size %llu)",
				   (unsigned long long)n, (unsigned long long)w->size);
	}
	if (n > w->left)
		return entry_error(w, -EINVAL,
				   "%llu more data bytes with %llu of its declared %llu left",
				   (unsigned long long)n, (unsigned long long)w->left,
				   (unsigned long long)w->size);
	return 0;
}

/* After n data bytes: the padding once the file is complete. */
static int data_done(struct el_tarw *w, uint64_t n)
{
	w->left -= n;
	if (w->left)
		return 0;
	w->state = ST_READY;
	return emit(w, zeros, padding(w->size));
}

int el_tarw_write(struct el_tarw *w, const void *buf, size_t len, struct el_error *err)
{
	const uint8_t *p = buf;
	int r = check_usable(w);

	if (r < 0 || len == 0)
		return leave(w, r, err);
	if ((r = data_check(w, len)) < 0)
		return leave(w, r, err);
	while (len) {
		size_t k = EL_MIN(len, (size_t)CANCEL_STEP);
		if ((r = cancelled(w)) < 0 || (r = emit(w, p, k)) < 0 ||
		    (r = data_done(w, k)) < 0)
			return leave(w, r, err);
		p += k;
		len -= k;
	}
	return 0;
}

int el_tarw_write_zeros(struct el_tarw *w, uint64_t n, struct el_error *err)
{
	int r = check_usable(w);

	if (r < 0 || n == 0)
		return leave(w, r, err);
	if ((r = data_check(w, n)) < 0)
		return leave(w, r, err);
	while (n) {
		size_t k = (size_t)EL_MIN(n, (uint64_t)ZEROS_SIZE);
		if ((r = cancelled(w)) < 0 || (r = emit(w, zeros, k)) < 0 ||
		    (r = data_done(w, k)) < 0)
			return leave(w, r, err);
		n -= k;
	}
	return 0;
}

int el_tarw_finish(struct el_tarw *w, struct el_tarw_result *res, struct el_error *err)
{
	int r = check_usable(w);

	if (r < 0)
		return leave(w, r, err);
	if (w->state == ST_DATA)
		return leave(w, entry_error(w, -EINVAL, "%llu of its %llu data bytes were written",
					    (unsigned long long)(w->size - w->left),
					    (unsigned long long)w->size),
			     err);
	/* the end-of-archive marker: two zero blocks */
	if ((r = emit(w, zeros, 2 * TAR_BLOCK)) < 0 || (r = zout_finish(w->out, &w->first)) < 0)
		return leave(w, r, err);
	*res = (struct el_tarw_result){ .entries = w->entries };
	zout_result(w->out, res->diffid, res->digest, &res->uncompressed_size, &res->size);
	w->state = ST_DONE;
	return 0;
}
