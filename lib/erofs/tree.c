/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Building the layer tree. Dentries live in one hash table keyed by (parent
 * inode, name), so a lookup is O(1) whatever the directory size; children
 * lists stay unsorted until the planner sorts them once.
 *
 * Replacement never unlinks: the dentry is kept and pointed at the new inode.
 * A replaced directory's children stay in the table under the old inode and
 * are simply unreachable; a replaced file keeps its inode for hard links made
 * before (as `tar -x` does: unlink, then create).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "erofs_fs.h"
#include "common/hash.h"
#include "common/macro.h"
#include "tree-internal.h"

struct tree_arena {
	struct tree_arena *next;
	size_t used, cap;
	_Alignas(16) unsigned char data[];
};

void *el_tree_alloc(struct el_tree *tree, size_t len)
{
	struct tree_arena *a = tree->arena;

	len = EL_ROUND_UP(len ? len : 1, (size_t)8);
	if (!a || a->cap - a->used < len) {
		size_t cap = EL_MAX(len, (size_t)(1u << 20));
		a = malloc(sizeof(*a) + cap);
		if (!a)
			return NULL;
		a->used = 0;
		a->cap = cap;
		a->next = tree->arena;
		tree->arena = a;
	}
	void *p = a->data + a->used;
	a->used += len;
	return p;
}

static struct el_inode *inode_new(struct el_tree *tree, uint32_t mode)
{
	struct el_inode *ino = el_tree_alloc(tree, sizeof(*ino));
	if (ino) {
		*ino = (struct el_inode){ .mode = mode };
		tree->ninodes++;
	}
	return ino;
}

/* ---- the dentry and xattr tables ---- */

struct dentry_key {
	const struct el_inode *parent;
	const char *name;
	size_t len;
	uint32_t hash;
};

static uint32_t dentry_hash(const struct el_inode *parent, const char *name, size_t len)
{
	uintptr_t p = (uintptr_t)parent;
	return el_xxh32(name, len, (uint32_t)(p >> 4) ^ (uint32_t)(p >> 36));
}

static size_t dentry_node_hash(const struct el_hnode *n)
{
	return el_hashtab_entry(n, struct el_dentry, hnode)->hash;
}

static bool dentry_eq(const struct el_hnode *n, const void *key)
{
	const struct el_dentry *d = el_hashtab_entry(n, struct el_dentry, hnode);
	const struct dentry_key *k = key;

	return d->hash == k->hash && d->parent == k->parent && d->name_len == k->len &&
	       memcmp(d->name, k->name, k->len) == 0;
}

static const struct el_hashtab_ops dentry_ops = { dentry_node_hash, dentry_eq };

struct xattr_key {
	uint8_t index;
	const char *suffix;
	size_t slen;
	const void *value;
	size_t vlen;
	uint32_t hash;
};

static size_t xattr_node_hash(const struct el_hnode *n)
{
	return el_hashtab_entry(n, struct el_xattr, hnode)->hash;
}

static bool xattr_eq(const struct el_hnode *n, const void *key)
{
	const struct el_xattr *x = el_hashtab_entry(n, struct el_xattr, hnode);
	const struct xattr_key *k = key;

	return x->hash == k->hash && x->index == k->index && x->name_len == k->slen &&
	       x->value_len == k->vlen && memcmp(x->data, k->suffix, k->slen) == 0 &&
	       memcmp(x->data + k->slen, k->value, k->vlen) == 0;
}

static const struct el_hashtab_ops xattr_ops = { xattr_node_hash, xattr_eq };

static struct el_dentry *lookup(struct el_tree *t, struct el_inode *parent, const char *name,
				size_t len, uint32_t hash)
{
	struct dentry_key k = { parent, name, len, hash };
	struct el_hnode *n = el_hashtab_find(&t->dentries, hash, &k);

	return n ? el_hashtab_entry(n, struct el_dentry, hnode) : NULL;
}

static struct el_dentry *dentry_add(struct el_tree *t, struct el_inode *parent,
				    const char *name, size_t len, uint32_t hash,
				    struct el_inode *ino)
{
	struct el_dentry *d = el_tree_alloc(t, sizeof(*d) + len + 1);

	if (!d)
		return NULL;
	d->parent = parent;
	d->inode = ino;
	d->hash = hash;
	d->name_len = (uint16_t)len;
	memcpy(d->name, name, len);
	d->name[len] = 0;
	if (el_hashtab_insert(&t->dentries, &d->hnode, hash) < 0)
		return NULL;
	d->sibling = parent->children;
	parent->children = d;
	parent->nchildren++;
	return d;
}

int el_tree_new(const struct el_tree_opts *opts, struct el_tree **ret)
{
	struct el_tree *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	if (opts)
		t->opts = *opts;
	el_hashtab_init(&t->dentries, &dentry_ops, 1024);
	el_hashtab_init(&t->xattrs, &xattr_ops, 256);
	t->root = inode_new(t, S_IFDIR | 0755);
	if (!t->root) {
		el_tree_free(t);
		return -ENOMEM;
	}
	t->root->flags = EL_INODE_IMPLICIT;
	*ret = t;
	return 0;
}

void el_tree_free(struct el_tree *t)
{
	if (!t)
		return;
	for (struct tree_arena *a = t->arena, *n; a; a = n) {
		n = a->next;
		free(a);
	}
	el_hashtab_destroy(&t->dentries);
	el_hashtab_destroy(&t->xattrs);
	free(t);
}

/* ---- xattrs ---- */

int el_xattr_cmp(const struct el_xattr *a, const struct el_xattr *b)
{
	if (a->index != b->index)
		return a->index < b->index ? -1 : 1;
	int c = memcmp(a->data, b->data, EL_MIN(a->name_len, b->name_len));
	if (c || a->name_len != b->name_len)
		return c ? c : (a->name_len < b->name_len ? -1 : 1);
	c = memcmp(a->data + a->name_len, b->data + b->name_len,
		   EL_MIN(a->value_len, b->value_len));
	if (c || a->value_len != b->value_len)
		return c ? c : (a->value_len < b->value_len ? -1 : 1);
	return 0;
}

struct el_xattr *el_tree_intern_xattr(struct el_tree *t, uint8_t index, const char *suffix,
				      size_t slen, const void *value, size_t vlen)
{
	uint32_t h = el_xxh32(suffix, slen, index) ^ el_xxh32(value, vlen, 0x5bd1e995u);
	struct xattr_key k = { index, suffix, slen, value, vlen, h };
	struct el_hnode *n = el_hashtab_find(&t->xattrs, h, &k);

	if (n)
		return el_hashtab_entry(n, struct el_xattr, hnode);
	struct el_xattr *x = el_tree_alloc(t, sizeof(*x) + slen + vlen);
	if (!x)
		return NULL;
	*x = (struct el_xattr){ .hash = h, .shared_id = UINT32_MAX, .index = index,
				.name_len = (uint8_t)slen, .value_len = (uint16_t)vlen };
	memcpy(x->data, suffix, slen);
	if (vlen)
		memcpy(x->data + slen, value, vlen);
	if (el_hashtab_insert(&t->xattrs, &x->hnode, h) < 0)
		return NULL;
	return x;
}

static bool same_name(const struct el_xattr *a, const struct el_xattr *b)
{
	return a->index == b->index && a->name_len == b->name_len &&
	       memcmp(a->data, b->data, a->name_len) == 0;
}

int el_inode_set_xattr(struct el_tree *t, struct el_inode *ino, struct el_xattr *x)
{
	uint32_t n = ino->xattrs ? ino->xattrs->count : 0;
	struct el_xattrs *xs = el_tree_alloc(t, sizeof(*xs) + (n + 1) * sizeof(xs->x[0]));
	uint32_t k = 0;
	bool placed = false;

	if (!xs)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		struct el_xattr *old = ino->xattrs->x[i];
		if (same_name(old, x))
			continue;
		if (!placed && el_xattr_cmp(x, old) < 0) {
			xs->x[k++] = x;
			placed = true;
		}
		xs->x[k++] = old;
	}
	if (!placed)
		xs->x[k++] = x;
	xs->count = k;
	ino->xattrs = xs;
	return 0;
}

static const struct {
	const char *prefix;
	uint8_t index;
	bool whole; /* the prefix is the whole name */
} xattr_prefixes[] = {
	{ "user.", EROFS_XATTR_INDEX_USER, false },
	{ "system.posix_acl_access", EROFS_XATTR_INDEX_POSIX_ACL_ACCESS, true },
	{ "system.posix_acl_default", EROFS_XATTR_INDEX_POSIX_ACL_DEFAULT, true },
	{ "trusted.", EROFS_XATTR_INDEX_TRUSTED, false },
	{ "lustre.", EROFS_XATTR_INDEX_LUSTRE, false },
	{ "security.", EROFS_XATTR_INDEX_SECURITY, false },
};

static void warnf(struct el_tree *t, uint64_t off, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void warnf(struct el_tree *t, uint64_t off, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!t->opts.warn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	t->opts.warn(t->opts.warn_ud, "tar stream", off, msg);
}

int el_xattr_split(const char *name, uint8_t *ret_index, const char **ret_suffix)
{
	for (size_t k = 0; k < EL_ARRAY_SIZE(xattr_prefixes); k++) {
		size_t pl = strlen(xattr_prefixes[k].prefix);
		if (strncmp(name, xattr_prefixes[k].prefix, pl) != 0)
			continue;
		if (xattr_prefixes[k].whole ? name[pl] != 0 : name[pl] == 0)
			continue;
		*ret_index = xattr_prefixes[k].index;
		*ret_suffix = name + pl;
		return 0;
	}
	return -EOPNOTSUPP;
}

static int set_entry_xattrs(struct el_tree *t, struct el_inode *ino, const struct el_entry *e)
{
	struct el_xattr *list[EL_MAX_XATTRS];
	size_t n = 0;

	for (size_t i = 0; i < e->nxattrs; i++) {
		const struct el_xattr_kv *kv = &e->xattrs[i];
		uint8_t index;
		const char *suffix;
		if (el_xattr_split(kv->name, &index, &suffix) < 0) {
			warnf(t, e->offset, "%s: dropping xattr '%s': EROFS cannot store its namespace",
			      e->path, kv->name);
			continue;
		}
		if (strlen(suffix) > EROFS_NAME_LEN) {
			warnf(t, e->offset, "%s: dropping xattr '%.40s...': name over 255 bytes after its prefix",
			      e->path, kv->name);
			continue;
		}
		if (kv->value_len > UINT16_MAX) {
			warnf(t, e->offset, "%s: dropping xattr '%s': value over 65535 bytes", e->path,
			      kv->name);
			continue;
		}
		struct el_xattr *x = el_tree_intern_xattr(t, index, suffix, strlen(suffix),
							  kv->value, kv->value_len);
		if (!x)
			return -ENOMEM;
		if (n < EL_ARRAY_SIZE(list))
			list[n++] = x;
	}
	ino->xattrs = NULL;
	for (size_t i = 0; i < n; i++) {
		int r = el_inode_set_xattr(t, ino, list[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- paths ---- */

struct components {
	const char *name[EL_MAX_PATH / 2 + 1];
	uint16_t len[EL_MAX_PATH / 2 + 1];
	size_t n;
};

/* Splits and normalises: empty and "." components dropped, ".." pops. */
static int split_path(const char *path, struct components *c, uint64_t off,
		      struct el_error *err)
{
	size_t total = strlen(path);

	if (total > EL_MAX_PATH)
		return el_error_set(err, -ENAMETOOLONG, "tar stream", off,
				    "path of %zu bytes exceeds the limit of %u", total, EL_MAX_PATH);
	c->n = 0;
	for (const char *p = path; *p;) {
		const char *s = strchr(p, '/');
		size_t len = s ? (size_t)(s - p) : strlen(p);
		if (len == 0 || (len == 1 && p[0] == '.')) {
			/* skip */
		} else if (len == 2 && p[0] == '.' && p[1] == '.') {
			if (c->n == 0)
				return el_error_set(err, -EINVAL, "tar stream", off,
						    "path '%s' escapes the root with '..'", path);
			c->n--;
		} else {
			if (len > EROFS_NAME_LEN)
				return el_error_set(err, -ENAMETOOLONG, "tar stream", off,
						    "a component of '%.80s...' is %zu bytes long (limit %u)",
						    path, len, EROFS_NAME_LEN);
			c->name[c->n] = p;
			c->len[c->n] = (uint16_t)len;
			c->n++;
		}
		p += len;
		if (*p == '/')
			p++;
	}
	return 0;
}

static void set_meta(struct el_inode *ino, const struct el_entry *e)
{
	ino->mode = (ino->mode & S_IFMT) | (e->mode & 07777);
	ino->uid = e->uid;
	ino->gid = e->gid;
	ino->mtime = e->mtime;
	ino->mtime_nsec = e->mtime_nsec;
}

/* Walks to the directory holding the last component, creating implicit
 * parents (0755 root:root) and turning non-directories in the way into them. */
static int walk_parents(struct el_tree *t, const struct components *c, size_t upto,
			const struct el_entry *e, struct el_inode **ret, struct el_error *err)
{
	struct el_inode *dir = t->root;

	for (size_t i = 0; i < upto; i++) {
		uint32_t h = dentry_hash(dir, c->name[i], c->len[i]);
		struct el_dentry *d = lookup(t, dir, c->name[i], c->len[i], h);
		if (d && d->inode && S_ISDIR(d->inode->mode)) {
			dir = d->inode;
			continue;
		}
		struct el_inode *ino = inode_new(t, S_IFDIR | 0755);
		if (!ino)
			return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
		ino->flags = EL_INODE_IMPLICIT;
		if (d) {
			if (d->inode)
				warnf(t, e->offset, "%s: replacing non-directory '%.*s' by a directory",
				      e->path, c->len[i], c->name[i]);
			d->inode = ino;
		} else if (!dentry_add(t, dir, c->name[i], c->len[i], h, ino)) {
			return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
		}
		dir = ino;
	}
	*ret = dir;
	return 0;
}

static int resolve(struct el_tree *t, const char *path, uint64_t off, struct el_inode **ret,
		   struct el_error *err)
{
	static __thread struct components c;
	struct el_inode *dir = t->root;
	int r = split_path(path, &c, off, err);

	if (r < 0)
		return r;
	for (size_t i = 0; i < c.n; i++) {
		if (!S_ISDIR(dir->mode))
			return -ENOENT;
		struct el_dentry *d = lookup(t, dir, c.name[i], c.len[i],
					     dentry_hash(dir, c.name[i], c.len[i]));
		if (!d || !d->inode)
			return -ENOENT;
		dir = d->inode;
	}
	*ret = dir;
	return 0;
}

static uint32_t type_bits(enum el_entry_type type)
{
	switch (type) {
	case EL_ENTRY_DIR:
		return S_IFDIR;
	case EL_ENTRY_SYMLINK:
		return S_IFLNK;
	case EL_ENTRY_CHR:
		return S_IFCHR;
	case EL_ENTRY_BLK:
		return S_IFBLK;
	case EL_ENTRY_FIFO:
		return S_IFIFO;
	default:
		return S_IFREG;
	}
}

/* Linux "new" dev_t encoding, as the kernel's new_decode_dev reads it (§3.4). */
uint32_t el_encode_dev(uint32_t major, uint32_t minor)
{
	return (minor & 0xff) | (major << 8) | ((minor & ~0xffu) << 12);
}

int el_tree_add(struct el_tree *t, const struct el_entry *e, struct el_inode **ret_inode,
		struct el_error *err)
{
	static __thread struct components c;
	struct el_inode *dir, *ino;
	int r;

	if (ret_inode)
		*ret_inode = NULL;
	r = split_path(e->path, &c, e->offset, err);
	if (r < 0)
		return r;

	if (c.n == 0) {
		/* "./" or "/": the root's own metadata */
		if (e->type != EL_ENTRY_DIR)
			return el_error_set(err, -EINVAL, "tar stream", e->offset,
					    "entry '%s' would replace the root directory by a non-directory",
					    e->path);
		set_meta(t->root, e);
		t->root->flags &= ~EL_INODE_IMPLICIT;
		return set_entry_xattrs(t, t->root, e);
	}

	const char *name = c.name[c.n - 1];
	size_t nlen = c.len[c.n - 1];
	bool whiteout = false;
	if (t->opts.oci_whiteouts && nlen >= 4 && memcmp(name, ".wh.", 4) == 0) {
		r = walk_parents(t, &c, c.n - 1, e, &dir, err);
		if (r < 0)
			return r;
		if (nlen == 12 && memcmp(name, ".wh..wh..opq", 12) == 0) {
			dir->flags |= EL_INODE_OPAQUE;
			return 0;
		}
		if (nlen == 4 || (nlen >= 8 && memcmp(name, ".wh..wh.", 8) == 0) ||
		    (nlen == 5 && name[4] == '.') ||
		    (nlen == 6 && name[4] == '.' && name[5] == '.')) {
			warnf(t, e->offset, "skipping '%s': not a whiteout this converter knows",
			      e->path);
			return 0;
		}
		name += 4;
		nlen -= 4;
		whiteout = true;
	} else {
		r = walk_parents(t, &c, c.n - 1, e, &dir, err);
		if (r < 0)
			return r;
	}

	uint32_t h = dentry_hash(dir, name, nlen);
	struct el_dentry *d = lookup(t, dir, name, nlen, h);

	if (whiteout) {
		ino = inode_new(t, S_IFCHR);
		if (!ino)
			return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
		ino->uid = e->uid;
		ino->gid = e->gid;
		ino->mtime = e->mtime;
		ino->mtime_nsec = e->mtime_nsec;
		ino->data = el_encode_dev(0, 0);
	} else if (e->type == EL_ENTRY_HARDLINK) {
		r = resolve(t, e->link, e->offset, &ino, err);
		if (r == -ENOENT)
			return el_error_set(err, -ENOENT, "tar stream", e->offset,
					    "hard link '%s' names '%s', which is not an earlier entry",
					    e->path, e->link);
		if (r < 0)
			return r;
		if (S_ISDIR(ino->mode))
			return el_error_set(err, -EISDIR, "tar stream", e->offset,
					    "hard link '%s' names the directory '%s'", e->path,
					    e->link);
		if (d && d->inode == ino)
			return 0;
	} else if (e->type == EL_ENTRY_DIR && d && d->inode && S_ISDIR(d->inode->mode)) {
		/* a directory over a directory: new metadata, same children */
		ino = d->inode;
		set_meta(ino, e);
		ino->flags &= ~EL_INODE_IMPLICIT;
		return set_entry_xattrs(t, ino, e);
	} else {
		ino = inode_new(t, type_bits(e->type));
		if (!ino)
			return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
		set_meta(ino, e);
		r = set_entry_xattrs(t, ino, e);
		if (r < 0)
			return el_error_set(err, r, NULL, EL_NO_OFFSET, "out of memory");
		switch (e->type) {
		case EL_ENTRY_REG:
			ino->size = e->size;
			if (ret_inode)
				*ret_inode = ino;
			break;
		case EL_ENTRY_SYMLINK: {
			size_t tl = strlen(e->link);
			if (tl == 0 || tl > EL_MAX_SYMLINK)
				return el_error_set(err, -EINVAL, "tar stream", e->offset,
						    "symlink '%s' has a target of %zu bytes (1 to %u allowed)",
						    e->path, tl, EL_MAX_SYMLINK);
			ino->symlink = el_tree_alloc(t, tl + 1);
			if (!ino->symlink)
				return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET,
						    "out of memory");
			memcpy(ino->symlink, e->link, tl + 1);
			ino->size = tl;
			break;
		}
		case EL_ENTRY_CHR:
		case EL_ENTRY_BLK:
			ino->data = el_encode_dev(e->dev_major, e->dev_minor);
			break;
		default:
			break;
		}
	}

	if (d)
		d->inode = ino;
	else if (!dentry_add(t, dir, name, nlen, h, ino))
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	return 0;
}

struct el_inode *el_tree_new_inode(struct el_tree *t, uint32_t mode)
{
	return inode_new(t, mode);
}

struct el_dentry *el_tree_lookup(struct el_tree *t, struct el_inode *dir, const char *name,
				 size_t len)
{
	return lookup(t, dir, name, len, dentry_hash(dir, name, len));
}

struct el_dentry *el_tree_link(struct el_tree *t, struct el_inode *dir, const char *name,
			       size_t len, struct el_inode *ino)
{
	uint32_t h = dentry_hash(dir, name, len);
	struct el_dentry *d = lookup(t, dir, name, len, h);

	if (d) {
		d->inode = ino;
		return d;
	}
	return dentry_add(t, dir, name, len, h, ino);
}
