/* SPDX-License-Identifier: Apache-2.0 */
/* Apply: a layer blob → <snapshot>/layer.erofs, verified, atomically. */
#include "differ.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "erofs-layer/convert.h"
#include "erofs-layer/ext4.h"
#include "erofs-layer/image.h"
#include "erofs-layer/upper-tar.h"
#include "erofs-layer/verity.h"
#include "ext4.h"
#include "layout.h"
#include "common/io.h"
#include "common/macro.h"
#include "common/util.h"
#include "common/sha256.h"

/* The layer tar media types, OCI and Docker names; only the distributable
 * ones are written by Compare. */
static const struct {
	const char *base;
	bool written;
} tar_bases[] = {
	{ "application/vnd.oci.image.layer.v1.tar", true },
	{ "application/vnd.oci.image.layer.nondistributable.v1.tar", false },
	{ "application/vnd.docker.image.rootfs.diff.tar", true },
	{ "application/vnd.docker.image.rootfs.foreign.diff.tar", false },
};

static const struct {
	const char *suffix;
	enum el_compression c;
} tar_forms[] = {
	{ "", EL_COMPRESSION_NONE },	 { "+gzip", EL_COMPRESSION_GZIP },
	{ "+zstd", EL_COMPRESSION_ZSTD }, { ".gzip", EL_COMPRESSION_GZIP },
	{ ".zstd", EL_COMPRESSION_ZSTD },
};

/* A tar media type (a written one only, with written_only): the
 * compression it names. */
static bool tar_media(const char *mt, bool written_only, enum el_compression *ret)
{
	for (size_t i = 0; i < EL_ARRAY_SIZE(tar_bases); i++) {
		size_t n = strlen(tar_bases[i].base);
		if ((written_only && !tar_bases[i].written) || strncmp(mt, tar_bases[i].base, n) != 0)
			continue;
		for (size_t j = 0; j < EL_ARRAY_SIZE(tar_forms); j++)
			if (!strcmp(mt + n, tar_forms[j].suffix)) {
				*ret = tar_forms[j].c;
				return true;
			}
	}
	return false;
}

enum df_media differ_media(const char *mt)
{
	enum el_compression c;

	/* The compression named by a tar media type is not trusted: the input
	 * is recognised by its magic, as containerd's own differ does (Docker
	 * has pushed plain tars under .tar.gzip names). */
	if (!mt)
		return DF_MEDIA_UNKNOWN;
	if (tar_media(mt, false, &c))
		return DF_MEDIA_TAR;
	if (!strcmp(mt, DIFFER_MEDIA_EROFS) || el_has_prefix(mt, DIFFER_MEDIA_EROFS "+"))
		return DF_MEDIA_EROFS;
	return DF_MEDIA_UNKNOWN;
}

/* ---- which snapshot ---------------------------------------------------- */

static const char *option_value(const struct df_mount *m, const char *key)
{
	size_t n = strlen(key);
	for (size_t i = 0; i < m->n_options; i++)
		if (!strncmp(m->options[i], key, n) && m->options[i][n] == '=')
			return m->options[i] + n + 1;
	return NULL;
}

int differ_target(const struct df_mount *mounts, size_t n, char **ret_dir,
		  struct el_error *err)
{
	_cleanup_free_ char *dir = NULL;
	const char *upper;
	char *slash;
	struct stat st;

	if (n != 1 || !mounts[0].type || strcmp(mounts[0].type, "overlay") != 0 ||
	    !(upper = option_value(&mounts[0], "upperdir")))
		return el_error_set(err, -EOPNOTSUPP, "mounts", EL_NO_OFFSET,
				    "not an extract snapshot of ours (%zu mounts, the first of type %s)",
				    n, n && mounts[0].type ? mounts[0].type : "none");
	dir = strdup(upper);
	if (!dir)
		return el_error_set(err, -ENOMEM, "mounts", EL_NO_OFFSET, "out of memory");
	slash = strrchr(dir, '/');
	if (!slash || slash == dir || strcmp(slash, "/fs") != 0)
		return el_error_set(err, -EOPNOTSUPP, "mounts", EL_NO_OFFSET,
				    "upperdir %s is not a snapshot's fs directory", upper);
	*slash = 0;
	_cleanup_free_ char *marker = NULL;
	if (asprintf(&marker, "%s/" LAYOUT_MARKER, dir) < 0)
		return el_error_set(err, -ENOMEM, "mounts", EL_NO_OFFSET, "out of memory");
	if (lstat(marker, &st) < 0 || !S_ISREG(st.st_mode))
		return el_error_set(err, -EOPNOTSUPP, "mounts", EL_NO_OFFSET,
				    "%s has no %s marker: not a snapshot of ours", dir,
				    LAYOUT_MARKER);
	*ret_dir = EL_TAKE_PTR(dir);
	return 0;
}

/* ---- the blob, hashed and counted on its way in ------------------------- */

struct blob_reader {
	const struct df_blob *blob;
	atomic_bool *cancel;
	struct el_sha256 *sha;
	uint64_t n;
	int code;
	struct el_error err;
};

static long blob_read(void *ud, void *buf, size_t len)
{
	struct blob_reader *br = ud;
	long got;

	if (br->code)
		return br->code;
	if (br->cancel && atomic_load(br->cancel)) {
		br->code = el_error_set(&br->err, -ECANCELED, "blob", br->n, "cancelled");
		return br->code;
	}
	got = br->blob->read(br->blob->read_ud, buf, len);
	if (got < 0) {
		br->code = (int)got;
		el_error_set(&br->err, (int)got, "blob", br->n, "cannot read the blob: %s",
			     strerror((int)-got));
		return got;
	}
	el_sha256_update(br->sha, buf, (size_t)got);
	br->n += (uint64_t)got;
	if (br->n > (uint64_t)br->blob->size) {
		br->code = el_error_set(&br->err, -EINVAL, "blob", (uint64_t)br->blob->size,
					"blob %s is longer than its descriptor's size %lld",
					br->blob->digest, (long long)br->blob->size);
		return br->code;
	}
	return got;
}

/* Reads what the consumer left (the end of a gzip member, padding), then
 * compares size and digest with the descriptor. */
static int blob_verify(struct blob_reader *br, struct el_error *err)
{
	uint8_t buf[64 * 1024], md[32];
	char hex[65];
	long got;

	while ((got = blob_read(br, buf, sizeof(buf))) > 0)
		;
	if (got < 0) {
		*err = br->err;
		return br->code;
	}
	if (br->n != (uint64_t)br->blob->size)
		return el_error_set(err, -EINVAL, "blob", br->n,
				    "blob %s ended after %llu bytes, its descriptor says %lld",
				    br->blob->digest, (unsigned long long)br->n,
				    (long long)br->blob->size);
	el_sha256_final(br->sha, md);
	el_hex(md, 32, hex);
	if (strcmp(br->blob->digest + strlen("sha256:"), hex) != 0)
		return el_error_set(err, -EINVAL, "blob", EL_NO_OFFSET,
				    "blob digest mismatch: the descriptor says %s, the content is sha256:%s",
				    br->blob->digest, hex);
	return 0;
}

static bool valid_sha256(const char *d)
{
	if (!d || !el_has_prefix(d, "sha256:") || strlen(d) != 7 + 64)
		return false;
	for (const char *p = d + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

/* ---- apply -------------------------------------------------------------- */

/* The reader's own failure (containerd's words, a size overrun) says more
 * than the parser's; a blob whose digest is wrong says more than the bytes
 * it made the parser choke on. */
static int tar_failure(struct blob_reader *br, int r, struct el_error *err)
{
	struct el_error verr;

	if (br->code && br->code != -ECANCELED) {
		*err = br->err;
		return br->code;
	}
	if (r == -ECANCELED || br->code)
		return r;
	el_error_clear(&verr);
	if (blob_verify(br, &verr) < 0 && verr.code == -EINVAL) {
		/* the mismatch first; the parser's complaint after it, as fits */
		size_t n = strlen(verr.msg);
		if (n + 40 < sizeof(verr.msg))
			snprintf(verr.msg + n, sizeof(verr.msg) - n, " (the layer did not parse either: %.*s)",
				 (int)(sizeof(verr.msg) - n - 40), err->msg);
		*err = verr;
		return verr.code;
	}
	return r;
}

static int apply_tar(struct blob_reader *br, int out_fd, atomic_bool *cancel,
		     bool clamp_times, bool verity, struct el_verity_info *vinfo,
		     struct df_applied *ret, struct el_error *err)
{
	struct el_convert_opts opts = { .cancel = cancel, .clamp_pre_epoch = clamp_times,
					.verity = verity };
	struct el_convert_result res;
	struct el_input *in = NULL;
	int r;

	r = el_input_new_reader(blob_read, br, &in, err);
	if (r < 0)
		return tar_failure(br, r, err);
	r = el_convert_input(in, out_fd, &opts, &res, err);
	el_input_free(in); /* joins the producer: br is ours again */
	if (r < 0)
		return tar_failure(br, r, err);
	r = blob_verify(br, err);
	if (r < 0)
		return r;
	ret->media_type = DIFFER_MEDIA_TAR;
	memcpy(ret->digest, "sha256:", 7);
	el_hex(res.diffid, 32, ret->digest + 7);
	ret->size = res.tar_bytes;
	ret->entries = res.entries;
	ret->image_bytes = res.image.image_bytes;
	*vinfo = res.image.verity_info;
	return 0;
}

static int apply_erofs(struct blob_reader *br, int out_fd, bool verity,
		       struct el_verity_info *vinfo, struct df_applied *ret, struct el_error *err)
{
	_cleanup_free_ uint8_t *buf = malloc(1 << 20);
	struct el_check_stats stats;
	struct el_image *img = NULL;
	uint64_t off = 0;
	long got;
	int r;

	if (!buf)
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	while ((got = blob_read(br, buf, 1 << 20)) > 0) {
		r = el_pwrite_full(out_fd, buf, (size_t)got, off);
		if (r < 0)
			return el_error_set(err, r, NULL, EL_NO_OFFSET, "cannot write layer.erofs: %s",
					    strerror(-r));
		off += (uint64_t)got;
	}
	if (got < 0) {
		*err = br->err;
		return br->code;
	}
	r = blob_verify(br, err);
	if (r < 0)
		return r;
	/* the descriptor vouches for the bytes, not for their sense */
	r = el_image_open_fd(out_fd, &img, err);
	if (r == 0) {
		r = el_image_check(img, &stats, err);
		el_image_close(img);
	}
	if (r == -EFSCORRUPTED) /* a bad blob, not our failure */
		err->code = r = -EINVAL;
	if (r < 0)
		return r;
	ret->media_type = br->blob->media_type;
	snprintf(ret->digest, sizeof(ret->digest), "%s", br->blob->digest);
	ret->size = off;
	ret->entries = stats.inodes;
	ret->image_bytes = off;
	/* the blob's bytes, then a tree over them: containerd 2.3 gives
	 * native blobs none */
	return verity ? el_verity_append(out_fd, NULL, vinfo, err) : 0;
}

/* fsync of the directory that holds dir: dir's own entry survives a crash */
static int sync_parent(const char *dir)
{
	_cleanup_free_ char *parent = strdup(dir);
	char *slash = parent ? strrchr(parent, '/') : NULL;

	if (!parent)
		return -ENOMEM;
	if (slash == parent)
		slash[1] = 0;
	else if (slash)
		*slash = 0;
	else
		strcpy(parent, ".");
	_cleanup_close_ int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		return -errno;
	return 0;
}

int differ_check_blob(const struct df_blob *blob, struct el_error *err)
{
	if (differ_media(blob->media_type) == DF_MEDIA_UNKNOWN)
		return el_error_set(err, -EOPNOTSUPP, "descriptor", EL_NO_OFFSET,
				    "unsupported layer media type %s",
				    blob->media_type ? blob->media_type : "(none)");
	if (!valid_sha256(blob->digest))
		return el_error_set(err, -EINVAL, "descriptor", EL_NO_OFFSET,
				    "unsupported digest '%s' (sha256:<64 lowercase hex> expected)",
				    blob->digest ? blob->digest : "");
	if (blob->size < 0)
		return el_error_set(err, -EINVAL, "descriptor", EL_NO_OFFSET,
				    "negative blob size %lld", (long long)blob->size);
	return 0;
}

/* <dir>/layer.erofs.dmverity, published before layer.erofs (a layer never
 * shows without the root hash that vouches for it), immutable with it. */
static int publish_sidecar(const char *path, const struct el_verity_info *info, bool immutable,
			   struct df_applied *ret, struct el_error *err)
{
	_cleanup_free_ char *side = NULL;
	int r;

	if (asprintf(&side, "%s" LAYOUT_VERITY_SUFFIX, path) < 0)
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	r = el_verity_sidecar_write(path, info, err);
	if (r < 0)
		return r;
	if (immutable) {
		_cleanup_close_ int fd = open(side, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		r = fd < 0 ? -errno : layout_set_immutable_fd(fd, true);
		if (r < 0) {
			unlink(side);
			return el_error_set(err, r, NULL, EL_NO_OFFSET, "cannot make %s immutable: %s",
					    side, strerror(-r));
		}
	}
	ret->verity = true;
	el_verity_root_hex(info, ret->roothash);
	return 0;
}

static void unpublish(const char *path, bool verity)
{
	_cleanup_free_ char *side = NULL;

	unlink(path);
	if (verity && asprintf(&side, "%s" LAYOUT_VERITY_SUFFIX, path) >= 0) {
		_cleanup_close_ int fd = open(side, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0)
			(void)layout_set_immutable_fd(fd, false);
		unlink(side);
	}
}

int differ_apply(const char *dir, const struct df_blob *blob, bool immutable, bool verity,
		 atomic_bool *cancel, struct df_applied *ret, struct el_error *err)
{
	_cleanup_free_ char *path = NULL;
	struct el_verity_info vinfo = { 0 };
	struct blob_reader br = { .blob = blob, .cancel = cancel };
	enum df_media media = differ_media(blob->media_type);
	struct el_outfile of;
	int r;

	r = differ_check_blob(blob, err);
	if (r < 0)
		return r;
	if (asprintf(&path, "%s/" LAYOUT_LAYER, dir) < 0)
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	if (access(path, F_OK) == 0)
		return el_error_set(err, -EEXIST, NULL, EL_NO_OFFSET, "%s exists already", path);

	br.sha = el_sha256_new();
	el_error_clear(&br.err);
	if (!br.sha)
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	r = el_outfile_create(&of, path, 0644, err);
	if (r < 0) {
		el_sha256_free(br.sha);
		return r;
	}
	if (media == DF_MEDIA_TAR)
		r = apply_tar(&br, of.fd, cancel, true, verity, &vinfo, ret, err);
	else
		r = apply_erofs(&br, of.fd, verity, &vinfo, ret, err);
	if (r == 0 && cancel && atomic_load(cancel))
		r = el_error_set(err, -ECANCELED, NULL, EL_NO_OFFSET, "cancelled");
	if (r == 0 && verity)
		r = publish_sidecar(path, &vinfo, immutable, ret, err);
	r = el_outfile_finish(&of, r, path, err);
	if (r < 0 && ret->verity)
		unpublish(path, true); /* the image did not make it: its sidecar goes */
	if (r == 0) {
		r = sync_parent(dir);
		if (r < 0) {
			el_error_set(err, r, NULL, EL_NO_OFFSET, "cannot sync the directory above %s: %s",
				     dir, strerror(-r));
			unpublish(path, verity);
		}
	}
	if (r == 0 && immutable) {
		/* here, not at Commit: the flag is a journalled inode update,
		 * which Apply's time hides and Commit's would not */
		_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		r = fd < 0 ? -errno : layout_set_immutable_fd(fd, true);
		if (r < 0) {
			el_error_set(err, r, NULL, EL_NO_OFFSET, "cannot make %s immutable: %s", path,
				     strerror(-r));
			unpublish(path, verity);
		}
	}
	el_sha256_free(br.sha);
	return r;
}

/* ---- Compare ------------------------------------------------------------ */

int differ_compression(const char *mt, enum el_compression *ret)
{
	if (!mt || !*mt) {
		*ret = EL_COMPRESSION_GZIP;
		return 0;
	}
	return tar_media(mt, true, ret) ? 0 : -EOPNOTSUPP;
}

static bool same_mount(const struct df_mount *a, const struct df_mount *b)
{
	if (strcmp(a->type ?: "", b->type ?: "") || strcmp(a->source ?: "", b->source ?: "") ||
	    a->n_options != b->n_options)
		return false;
	for (size_t i = 0; i < a->n_options; i++)
		if (strcmp(a->options[i], b->options[i]))
			return false;
	return true;
}

static bool empty_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	bool empty = true;

	if (!d)
		return false;
	while (empty && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			empty = false;
	closedir(d);
	return empty;
}

int differ_compare_target(const struct df_mount *left, size_t n_left,
			  const struct df_mount *right, size_t n_right, char **ret_image,
			  struct el_error *err)
{
	const struct df_mount *rw = n_right ? &right[n_right - 1] : NULL;
	_cleanup_free_ char *marker = NULL;
	const char *slash;
	struct stat st;

	if (!rw || !rw->type || strcmp(rw->type, "ext4") != 0 || !rw->source ||
	    !(slash = strrchr(rw->source, '/')) || strcmp(slash + 1, LAYOUT_RWLAYER) != 0)
		return el_error_set(err, -EOPNOTSUPP, "mounts", EL_NO_OFFSET,
				    "the right-hand mounts do not end with an active snapshot's %s",
				    LAYOUT_RWLAYER);
	if (asprintf(&marker, "%.*s/" LAYOUT_MARKER, (int)(slash - rw->source), rw->source) < 0)
		return el_error_set(err, -ENOMEM, "mounts", EL_NO_OFFSET, "out of memory");
	if (lstat(marker, &st) < 0 || !S_ISREG(st.st_mode))
		return el_error_set(err, -EOPNOTSUPP, "mounts", EL_NO_OFFSET,
				    "%s is not beside a %s marker: not a snapshot of ours", rw->source,
				    LAYOUT_MARKER);
	/* the changes are the upper directory only if left is its lower */
	bool match = n_left == n_right - 1;
	for (size_t i = 0; match && i < n_left; i++)
		match = same_mount(&left[i], &right[i]);
	if (!match && n_right == 1 && n_left == 1 && left[0].type && !strcmp(left[0].type, "bind") &&
	    left[0].source && empty_dir(left[0].source))
		match = true;
	if (!match)
		return el_error_set(err, -EOPNOTSUPP, "mounts", EL_NO_OFFSET,
				    "the left-hand mounts (%zu) are not the lower mounts of %s", n_left,
				    rw->source);
	*ret_image = strdup(rw->source);
	return *ret_image ? 0 : el_error_set(err, -ENOMEM, "mounts", EL_NO_OFFSET, "out of memory");
}

int differ_compare(const char *image, const char *media_type, bool has_epoch, int64_t epoch,
		   el_tarw_write_fn sink, void *sink_ud, atomic_bool *cancel,
		   struct df_diff *ret, struct el_error *err)
{
	struct el_tarw_opts topts = {
		.write = sink,
		.write_ud = sink_ud,
		.has_epoch = has_epoch,
		.epoch = epoch,
		.cancel = cancel,
	};
	struct el_tarw_result res;
	int r;

	if (differ_compression(media_type, &topts.compression) < 0)
		return el_error_set(err, -EOPNOTSUPP, "descriptor", EL_NO_OFFSET,
				    "unsupported layer media type %s for a diff", media_type);
	char dev[64];
	r = ext4_image_loop_device(image, dev, sizeof(dev));
	if (r > 0)
		return el_error_set(err, -EBUSY, image, EL_NO_OFFSET,
				    "in use: attached to /dev/%s on this host; a writable layer is "
				    "diffed once its guest is stopped and the image released", dev);
	/* what the guest wrote is bad (a corrupt image, a redirect or
	 * metacopy upper): InvalidArgument, as at Commit; an Unimplemented
	 * would send containerd to a walking differ that cannot read it either.
	 * Compare only reads: the check writes nothing (no journal replay, no
	 * repair; Commit, which owns the image by then, repairs). */
	r = el_ext4_fsck_readonly(image, err);
	if (r < 0)
		return r == -EUCLEAN || r == -EIO ? -EINVAL : r;
	r = el_upper_tar_ext4(image, "upper", &topts, NULL, NULL, &res, err);
	if (r < 0)
		return r == -EUCLEAN || r == -EOPNOTSUPP ? -EINVAL : r;
	ret->media_type = media_type && *media_type ? media_type : "application/vnd.oci.image.layer.v1.tar+gzip";
	memcpy(ret->digest, "sha256:", 7);
	el_hex(res.digest, 32, ret->digest + 7);
	memcpy(ret->diffid, "sha256:", 7);
	el_hex(res.diffid, 32, ret->diffid + 7);
	ret->size = res.size;
	ret->uncompressed_size = res.uncompressed_size;
	ret->entries = res.entries;
	return 0;
}
