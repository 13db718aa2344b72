/* SPDX-License-Identifier: Apache-2.0 */
/* The one data path from a layer stream to an image: input → tar → tree → writer. */
#include "erofs-layer/convert.h"

#include <errno.h>
#include <string.h>

#include "erofs-layer/tar.h"
#include "erofs-layer/tree.h"
#include "common/io.h"
#include "common/macro.h"
#include "common/sha256.h"
#include "erofs/verity-internal.h"

EL_DEFINE_CLEANUP(struct el_tree, el_tree_free)
EL_DEFINE_CLEANUP(struct el_tar, el_tar_free)
EL_DEFINE_CLEANUP(struct el_writer, el_writer_free)
EL_DEFINE_CLEANUP(struct el_input, el_input_free)

static bool cancelled(const struct el_convert_opts *opts)
{
	return opts && opts->cancel && atomic_load(opts->cancel);
}


int el_convert_input(struct el_input *in, int out_fd, const struct el_convert_opts *opts,
		     struct el_convert_result *ret, struct el_error *err)
{
	_cleanup_(el_tree_freep) struct el_tree *tree = NULL;
	_cleanup_(el_tar_freep) struct el_tar *tar = NULL;
	_cleanup_(el_writer_freep) struct el_writer *w = NULL;
	struct el_tree_opts topts = {
		.oci_whiteouts = true,
		.warn = opts ? opts->warn : NULL,
		.warn_ud = opts ? opts->warn_ud : NULL,
	};
	const struct el_entry *e;
	int r;

	if ((r = el_tree_new(&topts, &tree)) < 0 ||
	    (r = el_tar_new(in, topts.warn, topts.warn_ud, &tar)) < 0 ||
	    (r = el_writer_new(out_fd, &w)) < 0 || (opts && opts->verity && (r = el_writer_verity(w)) < 0))
		return el_error_set(err, r, NULL, EL_NO_OFFSET, "out of memory");

	while ((r = el_tar_next(tar, &e, err)) > 0) {
		struct el_inode *ino;
		struct el_entry bounded;
		if (cancelled(opts))
			return el_error_set(err, -ECANCELED, NULL, EL_NO_OFFSET, "cancelled");
		if (opts && opts->clamp_pre_epoch && e->mtime < 0) {
			bounded = *e;
			bounded.mtime = 0;
			bounded.mtime_nsec = 0;
			e = &bounded;
		}
		r = el_tree_add(tree, e, &ino, err);
		if (r < 0)
			return r;
		if (!ino)
			continue;
		r = el_writer_file_begin(w, ino, err);
		if (r < 0)
			return r;
		const uint8_t *buf;
		size_t len;
		uint64_t off;
		while ((r = el_tar_data(tar, &buf, &len, &off, err)) > 0) {
			r = el_writer_file_write(w, ino, buf, len, off, err);
			if (r < 0)
				return r;
		}
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	r = el_tar_finish(tar, err);
	if (r < 0)
		return r;

	struct el_convert_result res = { 0 };
	el_input_digest(in, res.diffid);
	res.tar_bytes = el_input_offset(in);
	res.entries = el_tar_entries(tar);
	res.compression = el_input_compression(in);

	struct el_writer_opts wopts = { 0 };
	if (opts && opts->has_uuid) {
		memcpy(wopts.uuid, opts->uuid, 16);
	} else {
		el_uuid_from_name("erofs-layer uuid:", res.diffid, 32, wopts.uuid);
	}
	wopts.has_uuid = true;
	wopts.has_epoch = opts && opts->has_epoch;
	wopts.epoch = opts ? opts->epoch : 0;
	r = el_writer_finish(w, tree, &wopts, &res.image, err);
	if (r < 0)
		return r;
	if (ret)
		*ret = res;
	return 0;
}

int el_convert_fd(int in_fd, const char *out_path, const struct el_convert_opts *opts,
		  struct el_convert_result *ret, struct el_error *err)
{
	_cleanup_(el_input_freep) struct el_input *in = NULL;
	struct el_outfile of;
	int r;

	r = el_outfile_create(&of, out_path, 0644, err);
	if (r < 0)
		return r;
	struct el_convert_result local;
	if (!ret)
		ret = &local;
	r = el_input_new_fd(in_fd, &in, err);
	if (r >= 0)
		r = el_convert_input(in, of.fd, opts, ret, err);
	return el_publish_image(&of, r, out_path, &ret->image, err);
}
