/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The differ, free of any transport (service-diff.c does the gRPC): Apply
 * turns a layer blob into the layer.erofs of one of our extract snapshots;
 * Compare turns an active snapshot's writable layer into a layer tar. Blobs
 * come and go through callbacks, so that the same code serves containerd's
 * Content service and the tests.
 *
 * Errors are negative errno values plus a message in err: -EOPNOTSUPP
 * (unimplemented: the mounts are not ours or the media type is unknown, so
 * containerd may fall back to another differ), -EINVAL (a bad descriptor or
 * a blob that does not match it), -EEXIST (the layer exists already),
 * -ECANCELED, anything else internal.
 */
#ifndef SES_DIFFER_H
#define SES_DIFFER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "erofs-layer/error.h"
#include "erofs-layer/input.h"
#include "erofs-layer/tar-writer.h"

#define DIFFER_MEDIA_TAR "application/vnd.oci.image.layer.v1.tar"
#define DIFFER_MEDIA_EROFS "application/vnd.erofs.layer.v1"

struct df_mount {
	const char *type;
	const char *source;
	const char *const *options;
	size_t n_options;
};

enum df_media {
	DF_MEDIA_UNKNOWN,
	DF_MEDIA_TAR,	/* tar, tar+gzip, tar+zstd: OCI and Docker names */
	DF_MEDIA_EROFS, /* application/vnd.erofs.layer.v1[+...] */
};

enum df_media differ_media(const char *media_type);

/*
 * The snapshot directory the mounts belong to, when they are ours: the
 * extract shape of docs/vm-runtime-contract.md, an overlay whose upperdir is <dir>/fs where
 * <dir> holds the .erofslayer marker. -EOPNOTSUPP otherwise.
 */
int differ_target(const struct df_mount *mounts, size_t n, char **ret_dir,
		  struct el_error *err);

struct df_blob {
	const char *media_type;
	const char *digest; /* "sha256:<64 hex>" */
	int64_t size;
	el_read_fn read;    /* the blob's bytes, in order; 0 at its end */
	void *read_ud;
};

struct df_applied {
	const char *media_type;	 /* of what was applied: DIFFER_MEDIA_TAR or the blob's */
	char digest[72];	 /* the diffID: sha256 of the uncompressed stream */
	uint64_t size;		 /* its size */
	uint64_t entries;	 /* tar entries (0 for an EROFS blob) */
	uint64_t image_bytes;	 /* layer.erofs */
	bool verity;		 /* with a dm-verity tree: */
	char roothash[65];	 /* its root hash, as the sidecar says it */
};

/* The descriptor's part of Apply's checks, before any byte is read: a media
 * type we know (-EOPNOTSUPP otherwise), a sha256 digest, a size. */
int differ_check_blob(const struct df_blob *blob, struct el_error *err);

/*
 * Writes <dir>/layer.erofs from the blob, published atomically once the
 * blob's size and digest matched the descriptor (and, for a native EROFS
 * blob, the image passed the checker); on any error nothing is left. The
 * whole blob is read, also what follows the end of the tar. On success the
 * layer is durable, dir's own entry in its parent included (an extract
 * snapshot's directory is not made durable at Prepare: Commit counts on
 * this), and with immutable it carries the immutable flag (Commit sets it
 * otherwise).
 */
int differ_apply(const char *dir, const struct df_blob *blob, bool immutable, bool verity,
		 atomic_bool *cancel, struct df_applied *ret, struct el_error *err);

/* ---- Compare ------------------------------------------------------------ */

/* media types of the layer tars Compare writes; NULL or "" means gzip, as
 * containerd's own differ takes it */
int differ_compression(const char *media_type, enum el_compression *ret);

/*
 * The writable layer the right-hand mounts end with, when the pair is ours:
 * right = an active snapshot's mounts (docs/vm-runtime-contract.md: the lower mounts, then
 * {ext4, <dir>/rwlayer.img} beside the .erofslayer marker) and left = those
 * same lower mounts (a View of the parent), or, for a snapshot without
 * parent, nothing or a bind of an empty directory. Then the changes are the
 * upper directory itself. -EOPNOTSUPP otherwise (containerd's walking
 * differ may take it).
 */
int differ_compare_target(const struct df_mount *left, size_t n_left,
			  const struct df_mount *right, size_t n_right, char **ret_image,
			  struct el_error *err);

struct df_diff {
	const char *media_type; /* as asked (a gzip name when none was) */
	char digest[72];	/* sha256 of the blob */
	char diffid[72];	/* sha256 of the uncompressed tar */
	uint64_t size;		/* of the blob */
	uint64_t uncompressed_size;
	uint64_t entries;
};

/*
 * Checks the image (e2fsck -f -p: the guest must be stopped) and writes the
 * OCI layer tar of its upper/ directory (upper-tar.h) through sink, with
 * the compression of media_type and, when has_epoch, mtimes clamped to
 * epoch.
 */
int differ_compare(const char *image, const char *media_type, bool has_epoch, int64_t epoch,
		   el_tarw_write_fn sink, void *sink_ud, atomic_bool *cancel,
		   struct df_diff *ret, struct el_error *err);

#endif
