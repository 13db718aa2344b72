/* SPDX-License-Identifier: Apache-2.0 */
/* An overlay upper directory in an ext4 image → an OCI layer tar. */
#include "erofs-layer/upper-tar.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "erofs-layer/ext4.h"
#include "common/macro.h"
#include "common/util.h"

#define OVL "trusted.overlay."
#define OVL_ESCAPED "trusted.overlay.overlay."
#define DATA_CHUNK (1u << 20)

struct upper_tar {
	struct el_tarw *w;
	uint8_t *buf;
	char *path; /* scratch for whiteout names */
	size_t path_cap;
	struct el_xattr_kv *xattrs; /* scratch: what is written of an entry's xattrs */
	size_t xattrs_cap;
	char **names; /* unescaped names */
	size_t names_cap;
};

static const struct el_xattr_kv *find_xattr(const struct el_entry *e, const char *name)
{
	for (size_t i = 0; i < e->nxattrs; i++)
		if (!strcmp(e->xattrs[i].name, name))
			return &e->xattrs[i];
	return NULL;
}

static bool xattr_is(const struct el_xattr_kv *x, const char *v)
{
	return x && x->value_len == strlen(v) && !memcmp(x->value, v, x->value_len);
}

static int fail(struct el_error *err, int code, const char *path, const char *why)
{
	return el_error_set(err, code, "ext4", EL_NO_OFFSET, "%s: %s", path, why);
}

/* The xattrs a tar gets: overlay's own dropped, escaped ones unescaped. */
static int filter_xattrs(struct upper_tar *ut, const struct el_entry *e, size_t *ret_n,
			 struct el_error *err)
{
	size_t n = 0;

	if (el_grow((void **)&ut->xattrs, &ut->xattrs_cap, e->nxattrs, sizeof(*ut->xattrs)) < 0 ||
	    el_grow((void **)&ut->names, &ut->names_cap, e->nxattrs, sizeof(*ut->names)) < 0)
		return el_error_set(err, -ENOMEM, "ext4", EL_NO_OFFSET, "out of memory");
	for (size_t i = 0; i < e->nxattrs; i++) {
		const struct el_xattr_kv *x = &e->xattrs[i];
		if (el_has_prefix(x->name, OVL_ESCAPED)) {
			ut->xattrs[n] = *x;
			/* "trusted.overlay.overlay.X" → "trusted.overlay.X", in place
			 * of a copy: the name ends the same way */
			ut->names[n] = NULL;
			if (asprintf(&ut->names[n], OVL "%s", x->name + strlen(OVL_ESCAPED)) < 0)
				return el_error_set(err, -ENOMEM, "ext4", EL_NO_OFFSET, "out of memory");
			ut->xattrs[n].name = ut->names[n];
			n++;
			continue;
		}
		if (el_has_prefix(x->name, OVL)) {
			const char *k = x->name + strlen(OVL);
			if (!strcmp(k, "redirect") || !strcmp(k, "metacopy"))
				return el_error_set(err, -EOPNOTSUPP, "ext4", EL_NO_OFFSET,
						    "%s: has %s: its content lives in a lower layer, which a layer tar cannot refer to",
						    e->path, x->name);
			continue;
		}
		ut->xattrs[n] = *x;
		ut->names[n] = NULL;
		n++;
	}
	*ret_n = n;
	return 0;
}

static void free_names(struct upper_tar *ut, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(ut->names[i]);
		ut->names[i] = NULL;
	}
}

/* "<dir>/<prefix><base of path>" into ut->path */
static int sibling_name(struct upper_tar *ut, const char *path, const char *prefix, bool child,
			struct el_error *err)
{
	if (el_grow((void **)&ut->path, &ut->path_cap, strlen(path) + strlen(prefix) + 3, 1) < 0)
		return el_error_set(err, -ENOMEM, "ext4", EL_NO_OFFSET, "out of memory");
	if (child) { /* "<path>/<prefix>" */
		snprintf(ut->path, ut->path_cap, "%s/%s", path, prefix);
		return 0;
	}
	const char *slash = strrchr(path, '/');
	if (slash)
		snprintf(ut->path, ut->path_cap, "%.*s/%s%s", (int)(slash - path), path, prefix,
			 slash + 1);
	else
		snprintf(ut->path, ut->path_cap, "%s%s", prefix, path);
	return 0;
}

static int add_marker(struct upper_tar *ut, const struct el_entry *from, struct el_error *err)
{
	struct el_entry m = {
		.type = EL_ENTRY_REG,
		.path = ut->path,
		.mtime = from->mtime,
		.offset = EL_NO_OFFSET,
	};
	return el_tarw_add(ut->w, &m, err);
}

static int copy_data(struct upper_tar *ut, const struct el_entry *e, struct el_ext4_file *f,
		     struct el_error *err)
{
	const struct el_ext4_extent *ext;
	uint64_t pos = 0;
	size_t n;
	int r;

	r = el_ext4_file_extents(f, &ext, &n, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i <= n; i++) {
		uint64_t start = i < n ? ext[i].off : e->size;
		uint64_t end = i < n ? EL_MIN(ext[i].off + ext[i].len, e->size) : e->size;
		if (start > pos) {
			r = el_tarw_write_zeros(ut->w, start - pos, err);
			if (r < 0)
				return r;
			pos = start;
		}
		while (pos < end) {
			size_t want = (size_t)EL_MIN((uint64_t)DATA_CHUNK, end - pos);
			int64_t got = el_ext4_file_read(f, ut->buf, want, pos, err);
			if (got < 0)
				return (int)got;
			if (got == 0)
				return fail(err, -EUCLEAN, e->path, "data ends before the file's size");
			r = el_tarw_write(ut->w, ut->buf, (size_t)got, err);
			if (r < 0)
				return r;
			pos += (uint64_t)got;
		}
	}
	return 0;
}

static int visit(void *ud, const struct el_entry *e, struct el_ext4_file *f, struct el_error *err)
{
	struct upper_tar *ut = ud;
	struct el_entry out;
	size_t nx = 0;
	int r;

	if (!strcmp(e->path, "."))
		return 0; /* a layer tar has no root entry */

	/* whiteouts: a 0:0 character device, or (overlayfs 6.7+) a regular
	 * file marked with trusted.overlay.whiteout */
	if ((e->type == EL_ENTRY_CHR && e->dev_major == 0 && e->dev_minor == 0) ||
	    (e->type == EL_ENTRY_REG && find_xattr(e, OVL "whiteout"))) {
		r = sibling_name(ut, e->path, ".wh.", false, err);
		return r < 0 ? r : add_marker(ut, e, err);
	}

	r = filter_xattrs(ut, e, &nx, err);
	if (r < 0) {
		free_names(ut, nx);
		return r;
	}
	out = *e;
	out.xattrs = ut->xattrs;
	out.nxattrs = nx;
	r = el_tarw_add(ut->w, &out, err);
	free_names(ut, nx);
	if (r < 0)
		return r;
	if (e->type == EL_ENTRY_DIR && xattr_is(find_xattr(e, OVL "opaque"), "y")) {
		r = sibling_name(ut, e->path, ".wh..wh..opq", true, err);
		return r < 0 ? r : add_marker(ut, e, err);
	}
	if (e->type == EL_ENTRY_REG && e->size)
		return copy_data(ut, e, f, err);
	return 0;
}

int el_upper_tar_ext4(const char *image, const char *subdir, const struct el_tarw_opts *topts,
		      el_warn_fn warn, void *warn_ud, struct el_tarw_result *res,
		      struct el_error *err)
{
	struct upper_tar ut = { 0 };
	struct el_ext4 *fs = NULL;
	struct el_ext4_walk_opts wopts = {
		.warn = warn,
		.warn_ud = warn_ud,
		.cancel = topts->cancel,
	};
	int r;

	struct stat st;
	if (stat(image, &st) < 0)
		return el_error_set(err, -errno, "ext4", EL_NO_OFFSET, "%s: %s", image, strerror(errno));
	uint64_t cap = (uint64_t)st.st_size;
	cap = cap > UINT64_MAX / EL_UPPER_TAR_BYTES_PER_IMAGE_BYTE ? UINT64_MAX
		: cap * EL_UPPER_TAR_BYTES_PER_IMAGE_BYTE;
	wopts.max_bytes = EL_MAX(cap, (uint64_t)EL_UPPER_TAR_MIN_BYTES);
	ut.buf = malloc(DATA_CHUNK);
	if (!ut.buf)
		return el_error_set(err, -ENOMEM, "ext4", EL_NO_OFFSET, "out of memory");
	r = el_ext4_open(image, &fs, err);
	if (r == 0)
		r = el_tarw_new(topts, &ut.w, err);
	if (r == 0)
		r = el_ext4_walk(fs, subdir, &wopts, visit, &ut, err);
	if (r == 0)
		r = el_tarw_finish(ut.w, res, err);
	el_tarw_free(ut.w);
	el_ext4_close(fs);
	free(ut.buf);
	free(ut.path);
	free(ut.xattrs);
	free(ut.names);
	return r;
}
