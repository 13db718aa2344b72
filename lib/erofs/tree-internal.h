/* SPDX-License-Identifier: Apache-2.0 */
/* The layer tree as the writer sees it. */
#ifndef EL_TREE_INTERNAL_H
#define EL_TREE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "common/hashtab.h"
#include "erofs-layer/tree.h"

/* An (index, name, value) triple, interned: one copy per distinct xattr in
 * the whole tree, so that recurring ones can go to the shared table. */
struct el_xattr {
	struct el_hnode hnode; /* in the tree's xattr table */
	uint32_t hash;
	uint32_t refs;	    /* reachable inodes carrying it (counted by the planner) */
	uint32_t shared_id; /* UINT32_MAX: stored inline */
	uint8_t index;	    /* EROFS_XATTR_INDEX_* */
	uint8_t name_len;   /* of the suffix after the prefix */
	uint16_t value_len;
	char data[]; /* suffix, then value */
};

/* An inode's xattrs, sorted by (index, suffix, value). */
struct el_xattrs {
	uint32_t count;
	struct el_xattr *x[];
};

struct el_dentry {
	struct el_dentry *sibling; /* next in the parent's (unsorted) list */
	struct el_hnode hnode;     /* in the tree's dentry table */
	struct el_inode *parent;
	struct el_inode *inode;
	uint32_t hash;
	uint16_t name_len;
	char name[];
};

enum {
	EL_INODE_IMPLICIT = 1 << 0, /* created for a path's parent, never listed */
	EL_INODE_OPAQUE = 1 << 1,   /* `.wh..wh..opq` seen in this directory */
	EL_INODE_PLANNED = 1 << 2,
};

struct el_inode {
	uint32_t mode; /* full st_mode */
	uint32_t uid, gid;
	uint32_t mtime_nsec;
	int64_t mtime;
	uint64_t size;
	uint64_t data; /* regular file: start block; devices: encoded rdev */
	uint16_t device; /* regular file: 0 = data in this image, N = in device N */
	char *symlink;
	struct el_xattrs *xattrs;
	struct el_dentry *children; /* directories */
	uint32_t nchildren;
	uint32_t flags;

	/* filled by the planner */
	struct el_inode *dotdot; /* directories: the parent */
	uint32_t nlink;
	uint32_t ino;
	uint64_t nid;
	uint64_t meta_blk; /* first block of non-inline dir/symlink data */
	uint32_t meta_nblocks;
	struct el_dentry **sorted;
	uint32_t xattr_size; /* bytes of the xattr body */
	uint16_t inline_size;
	uint8_t layout;
	bool extended;
};

struct el_tree {
	struct el_tree_opts opts;
	struct el_inode *root;
	struct el_hashtab dentries; /* by (parent, name) */
	struct el_hashtab xattrs;   /* by (index, suffix, value) */
	struct tree_arena *arena;
	uint64_t ninodes; /* created, reachable or not */
};

void *el_tree_alloc(struct el_tree *tree, size_t len);
/* Interns an xattr; NULL on ENOMEM. */
struct el_xattr *el_tree_intern_xattr(struct el_tree *tree, uint8_t index, const char *suffix,
				      size_t suffix_len, const void *value, size_t value_len);
/* Sets (replacing a same-named one) or adds one xattr on an inode. */
int el_inode_set_xattr(struct el_tree *tree, struct el_inode *ino, struct el_xattr *x);

static inline unsigned el_xattr_entry_size(const struct el_xattr *x)
{
	return (4u + x->name_len + x->value_len + 3u) & ~3u;
}

int el_xattr_cmp(const struct el_xattr *a, const struct el_xattr *b);

/* Splits a full xattr name into its EROFS name index and suffix; -EOPNOTSUPP
 * for a namespace EROFS cannot store. */
int el_xattr_split(const char *name, uint8_t *ret_index, const char **ret_suffix);

/* Building blocks for producers other than the tar reader (the merge). A
 * dentry whose inode is NULL is absent (deleted by a whiteout). */
struct el_inode *el_tree_new_inode(struct el_tree *tree, uint32_t mode);
struct el_dentry *el_tree_lookup(struct el_tree *tree, struct el_inode *dir, const char *name,
				 size_t len);
/* Points dir/name at ino, adding the dentry if needed; NULL on ENOMEM. */
struct el_dentry *el_tree_link(struct el_tree *tree, struct el_inode *dir, const char *name,
			       size_t len, struct el_inode *ino);
uint32_t el_encode_dev(uint32_t major, uint32_t minor);

#endif
