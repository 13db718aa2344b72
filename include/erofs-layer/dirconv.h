/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A host directory → EROFS image: the second producer of the layer tree
 * (docs/architecture.md), for the extract fallback and for container commit (an overlay
 * upper directory, docs/vm-runtime-contract.md). The walk never follows symlinks and never
 * crosses into another mount; each directory's names are taken in byte order,
 * so the image does not depend on readdir order.
 *
 * Every entry keeps its type, mode & 07777, uid, gid, mtime (with
 * nanoseconds), size, device numbers, symlink target and xattrs (user.,
 * trusted., security. and system.posix_acl_*; other namespaces are dropped
 * with a warning). Files sharing an inode become hard links to the first path
 * (byte order, breadth first). Holes of sparse files stay holes. Sockets and
 * entries on another mount are skipped with a warning.
 *
 * With overlay_upper, the directory is an overlayfs upper directory (or what
 * containerd's walking differ writes into one): character devices 0:0 are
 * whiteouts and `trusted.overlay.opaque` marks opaque directories, both kept
 * as they are (the image is in overlay form already); the writer adds
 * `trusted.overlay.origin=""` to directories holding whiteouts. Other
 * `trusted.overlay.*` xattrs (origin, impure, nlink, upper, protattr, ...)
 * are dropped, except escaped ones (`trusted.overlay.overlay.*`), which keep
 * their meaning in a lower layer. A `trusted.overlay.redirect` or
 * `trusted.overlay.metacopy` is an error (-EOPNOTSUPP): the entry's content
 * lives in a lower layer that the image cannot reach.
 *
 * Without it, the tree is converted as it is: names starting with `.wh.` are
 * ordinary names and all xattrs are kept.
 */
#ifndef EROFS_LAYER_DIRCONV_H
#define EROFS_LAYER_DIRCONV_H

#include "export.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "convert.h"
#include "error.h"

struct el_dir_opts {
	bool overlay_upper;
	bool has_uuid; /* else derived from a digest of the walked content */
	uint8_t uuid[16];
	bool has_epoch;
	int64_t epoch;
	bool verity; /* as in el_convert_opts */
	el_warn_fn warn; /* what = "directory", offset = EL_NO_OFFSET */
	void *warn_ud;
	atomic_bool *cancel; /* checked between entries and data pieces */
};

/*
 * Converts the tree under dirfd (a directory; O_PATH is fine; its file
 * position is not used) into out_fd (an empty regular file). In *ret, diffid
 * is all zeros, tar_bytes counts the file data bytes read (holes excluded),
 * entries the entries walked (the root included), compression is NONE.
 * Errors name the path relative to the root ("a/b: reason", "." for the
 * root), with what = "directory" and offset EL_NO_OFFSET.
 */
EL_EXPORT int el_convert_dir(int dirfd, int out_fd, const struct el_dir_opts *opts,
			     struct el_convert_result *ret, struct el_error *err);

/* The same from a path, publishing out_path atomically: on any error nothing
 * is left at out_path nor beside it. */
EL_EXPORT int el_convert_dir_path(const char *dir, const char *out_path, const struct el_dir_opts *opts,
				  struct el_convert_result *ret, struct el_error *err);

#endif
