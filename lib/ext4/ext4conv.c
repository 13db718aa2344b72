/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An ext4 image's subtree → tree → writer (el_convert_ext4 in
 * include/erofs-layer/ext4.h): the walker's entries, filtered by the same
 * xattr rules as a host directory (lib/dir/overlay-upper.c), file data
 * copied extent by extent so that holes stay holes.
 */
#include "erofs-layer/ext4.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dir/overlay-upper-internal.h"
#include "erofs-layer/tree.h"
#include "erofs-layer/writer.h"
#include "common/io.h"
#include "common/macro.h"
#include "common/util.h"
#include "common/sha256.h"
#include "erofs/verity-internal.h"

#define WHAT "ext4"
#define DATA_CHUNK (1u << 20)

EL_DEFINE_CLEANUP(struct el_tree, el_tree_free)
EL_DEFINE_CLEANUP(struct el_writer, el_writer_free)
EL_DEFINE_CLEANUP(struct el_ext4, el_ext4_close)

struct conv {
	const struct el_dir_opts *opts;
	struct el_tree *tree;
	struct el_writer *w;
	struct el_sha256 *digest; /* NULL when the caller gave a UUID */
	struct el_xattr_kv *kv;
	size_t kv_cap;
	uint8_t *buf;
	uint64_t entries, bytes;
};

static void conv_release(struct conv *c)
{
	int saved = errno;

	free(c->kv);
	free(c->buf);
	if (c->digest)
		el_sha256_free(c->digest);
	el_writer_freep(&c->w);
	el_tree_freep(&c->tree);
	errno = saved;
}

static bool cancelled(const struct conv *c)
{
	return c->opts->cancel && atomic_load(c->opts->cancel);
}

/* Keeps the xattrs an image keeps (el_xattr_filter) in c->kv. */
static int filter_xattrs(struct conv *c, const struct el_entry *e, size_t *ret_n,
			 struct el_error *err)
{
	size_t n = 0;

	if (el_grow((void **)&c->kv, &c->kv_cap, e->nxattrs, sizeof(*c->kv)) < 0)
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	for (size_t i = 0; i < e->nxattrs; i++) {
		char msg[256];
		int r = el_xattr_filter(e->xattrs[i].name, c->opts->overlay_upper, msg,
					sizeof(msg));
		if (r < 0)
			return el_error_set(err, r, WHAT, EL_NO_OFFSET, "%.320s: %s", e->path, msg);
		if (r == 0 && msg[0] && c->opts->warn) {
			char line[640];
			snprintf(line, sizeof(line), "%.320s: %s", e->path, msg);
			c->opts->warn(c->opts->warn_ud, WHAT, EL_NO_OFFSET, line);
		}
		if (r == 1)
			c->kv[n++] = e->xattrs[i];
	}
	*ret_n = n;
	return 0;
}

/* The file's data regions into the image; holes are never read. */
static int copy_data(struct conv *c, struct el_ext4_file *f, struct el_inode *ino,
		     struct el_error *err)
{
	const struct el_ext4_extent *ext;
	size_t n;
	int r = el_ext4_file_extents(f, &ext, &n, err);

	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		for (uint64_t off = ext[i].off, end = ext[i].off + ext[i].len; off < end;) {
			if (cancelled(c))
				return el_error_set(err, -ECANCELED, NULL, EL_NO_OFFSET, "cancelled");
			size_t want = (size_t)EL_MIN((uint64_t)DATA_CHUNK, end - off);
			int64_t got = el_ext4_file_read(f, c->buf, want, off, err);
			if (got < 0)
				return (int)got;
			if ((uint64_t)got != want) /* the extents are cut at the size */
				return el_error_set(err, -EIO, WHAT, EL_NO_OFFSET,
						    "short read at byte %llu",
						    (unsigned long long)off);
			el_digest_data(c->digest, off, c->buf, want);
			r = el_writer_file_write(c->w, ino, c->buf, want, off, err);
			if (r < 0)
				return r;
			off += want;
			c->bytes += want;
		}
	}
	return 0;
}

static int visit(void *ud, const struct el_entry *e, struct el_ext4_file *f,
		 struct el_error *err)
{
	struct conv *c = ud;
	struct el_entry fe = *e;
	struct el_inode *ino = NULL;
	size_t nx = 0;
	int r;

	r = filter_xattrs(c, e, &nx, err);
	if (r < 0)
		return r;
	fe.xattrs = c->kv;
	fe.nxattrs = nx;
	el_digest_entry(c->digest, &fe);
	c->entries++;
	r = el_tree_add(c->tree, &fe, f ? &ino : NULL, err);
	if (r < 0 || !ino)
		return r;
	r = el_writer_file_begin(c->w, ino, err);
	if (r < 0)
		return r;
	return copy_data(c, f, ino, err);
}

static int convert_fd(struct el_ext4 *fs, const char *subdir, int out_fd,
		      const struct el_dir_opts *opts, struct el_convert_result *ret,
		      struct el_error *err)
{
	_cleanup_(conv_release) struct conv c = { .opts = opts };
	struct el_tree_opts topts = {
		.oci_whiteouts = false,
		.warn = opts->warn,
		.warn_ud = opts->warn_ud,
	};
	struct el_ext4_walk_opts wopts = {
		.warn = opts->warn,
		.warn_ud = opts->warn_ud,
		.cancel = opts->cancel,
	};
	int r;

	if (el_tree_new(&topts, &c.tree) < 0 || el_writer_new(out_fd, &c.w) < 0 ||
	    (opts->verity && el_writer_verity(c.w) < 0) || !(c.buf = malloc(DATA_CHUNK)) || (!opts->has_uuid && !(c.digest = el_sha256_new())))
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	r = el_ext4_walk(fs, subdir, &wopts, visit, &c, err);
	if (r < 0)
		return r;

	struct el_convert_result res = { .compression = EL_COMPRESSION_NONE };
	struct el_writer_opts wo = { .has_uuid = true };
	res.tar_bytes = c.bytes;
	res.entries = c.entries;
	if (opts->has_uuid) {
		memcpy(wo.uuid, opts->uuid, 16);
	} else {
		uint8_t d[32];
		el_sha256_final(c.digest, d);
		el_uuid_from_name("erofs-layer ext4 uuid:", d, 32, wo.uuid);
	}
	wo.has_epoch = opts->has_epoch;
	wo.epoch = opts->epoch;
	r = el_writer_finish(c.w, c.tree, &wo, &res.image, err);
	if (r < 0)
		return r;
	if (ret)
		*ret = res;
	return 0;
}

int el_convert_ext4(const char *image, const char *subdir, const char *out_path,
		    const struct el_dir_opts *opts, struct el_convert_result *ret,
		    struct el_error *err)
{
	static const struct el_dir_opts no_opts;
	_cleanup_(el_ext4_closep) struct el_ext4 *fs = NULL;
	struct el_outfile of;
	int r;

	if (!opts)
		opts = &no_opts;
	r = el_ext4_open(image, &fs, err);
	if (r < 0)
		return r;
	r = el_outfile_create(&of, out_path, 0644, err);
	if (r < 0)
		return r;
	struct el_convert_result local;
	if (!ret)
		ret = &local;
	r = convert_fd(fs, subdir, of.fd, opts, ret, err);
	return el_publish_image(&of, r, out_path, &ret->image, err);
}
