/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An overlayfs upper directory inside an ext4 image (a container's writable
 * layer, rwlayer.img) → an OCI image layer tar: the differ's Compare, i.e.
 * container commit as a tar (docs/vm-runtime-contract.md). The image is read in user space
 * (el_ext4_walk), never mounted.
 *
 * Overlay form → OCI form:
 *   - a character device 0:0 (a whiteout) becomes an empty regular file
 *     "<dir>/.wh.<name>" (mode 0, owner 0:0, the whiteout's mtime);
 *   - a directory with trusted.overlay.opaque = "y" is written, then an
 *     empty regular file "<dir>/.wh..wh..opq" right after it;
 *   - overlayfs's own xattrs (trusted.overlay.*: opaque, origin, impure,
 *     nlink, upper, uuid, protattr, ...) are not written; an escaped one
 *     (trusted.overlay.overlay.X) is written as the xattr the merged view
 *     shows, trusted.overlay.X; an entry with trusted.overlay.redirect or
 *     .metacopy is refused (-EOPNOTSUPP): its content lives in a lower
 *     layer the upper cannot supply;
 *   - the upper's root is not an entry (a layer tar has none);
 *   - everything else as the walk gives it (hard links as links to the first
 *     path, holes of sparse files as zeros), in the walk's order: depth
 *     first, names in byte order, so that the same upper always gives the
 *     same bytes; mtimes above the epoch are clamped to it (tar-writer.h).
 */
#ifndef EROFS_LAYER_UPPER_TAR_H
#define EROFS_LAYER_UPPER_TAR_H

#include "export.h"

#include "error.h"
#include "tar-writer.h"

/*
 * Writes the tar of the upper directory subdir ("upper") of the ext4 image
 * through a writer made with topts (the sink, compression, epoch, cancel),
 * and fills *res. The caller runs el_ext4_fsck first (el_ext4_open refuses
 * an image whose journal needs recovery). warn gets the walk's warnings.
 * Errors name the path inside the upper.
 *
 * The walk's limits are el_ext4_walk's defaults, and the regular files may
 * hold at most EL_UPPER_TAR_BYTES_PER_IMAGE_BYTE times the image's size
 * (at least EL_UPPER_TAR_MIN_BYTES) in all, holes counted: a tar has no
 * holes, so a sparse file the guest made costs its whole size (-E2BIG).
 */
#define EL_UPPER_TAR_BYTES_PER_IMAGE_BYTE 64u
#define EL_UPPER_TAR_MIN_BYTES (1ull << 30)
EL_EXPORT int el_upper_tar_ext4(const char *image, const char *subdir, const struct el_tarw_opts *topts,
				el_warn_fn warn, void *warn_ud, struct el_tarw_result *res,
				struct el_error *err);

#endif
