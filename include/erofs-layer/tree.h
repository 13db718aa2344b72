/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The in-memory tree of one layer, built entry by entry with the layer rules
 * of an OCI tar: the later entry for a path wins (a directory entry over a
 * directory only updates its metadata), hard links name an earlier entry,
 * OCI whiteouts become overlay whiteouts, paths are normalised, implicit
 * parents are 0755 root:root.
 */
#ifndef EROFS_LAYER_TREE_H
#define EROFS_LAYER_TREE_H

#include "export.h"

#include <stdbool.h>
#include <stdint.h>

#include "entry.h"
#include "error.h"

#define EL_MAX_PATH 4096u /* bytes of a normalised path */
#define EL_MAX_SYMLINK 4095u
#define EL_MAX_XATTRS 1024u /* per inode */

struct el_tree;
struct el_inode;

struct el_tree_opts {
	/* translate `.wh.NAME` and `.wh..wh..opq` (OCI image layers) */
	bool oci_whiteouts;
	el_warn_fn warn;
	void *warn_ud;
};

EL_EXPORT int el_tree_new(const struct el_tree_opts *opts, struct el_tree **ret);
EL_EXPORT void el_tree_free(struct el_tree *tree);

/* Adds one entry. For a regular file, *ret_inode (if ret_inode is non-NULL)
 * is the new inode, to be given its data by the writer; otherwise NULL. */
EL_EXPORT int el_tree_add(struct el_tree *tree, const struct el_entry *e, struct el_inode **ret_inode,
			  struct el_error *err);

#endif
