/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The layer tree (lib/erofs/tree.c): entries are added directly and the
 * result is inspected through tree-internal.h.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "erofs-layer/tree.h"
#include "erofs/erofs_fs.h"
#include "erofs/tree-internal.h"

struct ctx {
	struct el_tree *tree;
	struct el_error err;
	int nwarn;
	uint64_t warn_off;
	char warn_msg[512];
};

static void on_warn(void *ud, const char *what, uint64_t off, const char *msg)
{
	struct ctx *c = ud;
	c->nwarn++;
	c->warn_off = off;
	snprintf(c->warn_msg, sizeof(c->warn_msg), "%s", msg);
}

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	struct el_tree_opts o = { .oci_whiteouts = true, .warn = on_warn, .warn_ud = c };
	if (!c || el_tree_new(&o, &c->tree) < 0)
		return -1;
	el_error_clear(&c->err);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	el_tree_free(c->tree);
	free(c);
	return 0;
}

static struct el_entry ent(enum el_entry_type type, const char *path)
{
	return (struct el_entry){ .type = type, .path = path, .link = "", .mode = 0644,
				  .uid = 1000, .gid = 1001, .mtime = 1700000000,
				  .mtime_nsec = 5, .offset = 512 };
}

/* Adds and expects success; returns the regular file's new inode. */
static struct el_inode *add(struct ctx *c, const struct el_entry *e)
{
	struct el_inode *ino = (struct el_inode *)1;
	int r = el_tree_add(c->tree, e, &ino, &c->err);
	if (r < 0)
		fail_msg("el_tree_add(%s) = %d: %s", e->path, r, c->err.msg);
	if (e->type != EL_ENTRY_REG)
		assert_null(ino);
	return ino;
}

static int add_err(struct ctx *c, const struct el_entry *e)
{
	el_error_clear(&c->err);
	int r = el_tree_add(c->tree, e, NULL, &c->err);
	assert_true(r < 0);
	assert_int_equal(c->err.code, r);
	assert_int_equal(c->err.offset, e->offset);
	return r;
}

static struct el_dentry *dentry(struct el_inode *dir, const char *name)
{
	struct el_dentry *found = NULL;
	uint32_t n = 0;
	for (struct el_dentry *d = dir->children; d; d = d->sibling, n++)
		if (strlen(name) == d->name_len && memcmp(d->name, name, d->name_len) == 0) {
			assert_null(found); /* one dentry per name */
			found = d;
		}
	assert_int_equal(n, dir->nchildren);
	return found;
}

static struct el_inode *child(struct el_inode *dir, const char *name)
{
	struct el_dentry *d = dentry(dir, name);
	if (!d)
		fail_msg("no '%s' in the directory", name);
	return d->inode;
}

static struct el_inode *root(struct ctx *c)
{
	return c->tree->root;
}

static void test_path_normalisation(void **state)
{
	struct ctx *c = *state;
	struct el_entry e;

	e = ent(EL_ENTRY_REG, "./a");
	add(c, &e);
	e = ent(EL_ENTRY_REG, "/b");
	add(c, &e);
	e = ent(EL_ENTRY_REG, "c/./d");
	add(c, &e);
	e = ent(EL_ENTRY_REG, "x/../f");
	add(c, &e);
	e = ent(EL_ENTRY_DIR, "g/h/");
	add(c, &e);
	e = ent(EL_ENTRY_REG, ".//g//h/./i");
	add(c, &e);

	struct el_inode *r = root(c);
	assert_int_equal(r->nchildren, 5); /* a b c f g: no "x", no "." */
	assert_true(S_ISREG(child(r, "a")->mode));
	assert_true(S_ISREG(child(r, "b")->mode));
	assert_true(S_ISREG(child(child(r, "c"), "d")->mode));
	assert_true(S_ISREG(child(r, "f")->mode));
	assert_null(dentry(r, "x"));
	struct el_inode *h = child(child(r, "g"), "h");
	assert_int_equal(h->mode, S_IFDIR | 0644);
	assert_int_equal(h->nchildren, 1);
	assert_true(S_ISREG(child(h, "i")->mode));
}

static void test_path_errors(void **state)
{
	struct ctx *c = *state;
	char *p = malloc(EL_MAX_PATH + 2);
	struct el_entry e;

	e = ent(EL_ENTRY_REG, "../x");
	assert_int_equal(add_err(c, &e), -EINVAL);
	e = ent(EL_ENTRY_REG, "a/../../x");
	e.offset = 4096;
	assert_int_equal(add_err(c, &e), -EINVAL);
	e = ent(EL_ENTRY_HARDLINK, "l");
	e.link = "../../etc/passwd";
	assert_int_equal(add_err(c, &e), -EINVAL);

	/* a 255-byte component is fine, 256 is not */
	memset(p, 'c', 256);
	p[255] = 0;
	e = ent(EL_ENTRY_REG, p);
	add(c, &e);
	assert_non_null(dentry(root(c), p));
	p[255] = 'c';
	p[256] = 0;
	e = ent(EL_ENTRY_REG, p);
	assert_int_equal(add_err(c, &e), -ENAMETOOLONG);

	/* "/" + 16 components of 255 bytes: 4096 bytes, the limit */
	char *q = p;
	for (int i = 0; i < 16; i++) {
		*q++ = '/';
		memset(q, 'a' + i, 255);
		q += 255;
	}
	*q = 0;
	assert_int_equal(strlen(p), EL_MAX_PATH);
	e = ent(EL_ENTRY_REG, p);
	add(c, &e);
	memmove(p + 1, p, EL_MAX_PATH + 1); /* "//..." is 4097 bytes */
	e = ent(EL_ENTRY_REG, p);
	assert_int_equal(add_err(c, &e), -ENAMETOOLONG);
	free(p);
	/* nothing of the failed entries was created */
	assert_int_equal(root(c)->nchildren, 2);
}

static void test_implicit_parents(void **state)
{
	struct ctx *c = *state;
	struct el_entry e = ent(EL_ENTRY_REG, "x/y/z");
	e.size = 123;
	e.mode = 04711;

	struct el_inode *z = add(c, &e);
	struct el_inode *x = child(root(c), "x"), *y = child(x, "y");
	for (int i = 0; i < 2; i++) {
		struct el_inode *d = i ? y : x;
		assert_int_equal(d->mode, S_IFDIR | 0755);
		assert_int_equal(d->uid, 0);
		assert_int_equal(d->gid, 0);
		assert_int_equal(d->flags, EL_INODE_IMPLICIT);
		assert_int_equal(d->nchildren, 1);
	}
	assert_ptr_equal(child(y, "z"), z);
	assert_int_equal(z->mode, S_IFREG | 04711);
	assert_int_equal(z->size, 123);
	assert_int_equal(z->uid, 1000);
	assert_int_equal(z->gid, 1001);
	assert_int_equal(z->mtime, 1700000000);
	assert_int_equal(z->mtime_nsec, 5);
	assert_int_equal(z->flags, 0);
	assert_int_equal(root(c)->flags, EL_INODE_IMPLICIT);
}

static void test_dir_over_dir_keeps_children(void **state)
{
	struct ctx *c = *state;
	struct el_entry e = ent(EL_ENTRY_REG, "d/f");
	add(c, &e);
	struct el_inode *d = child(root(c), "d");

	e = ent(EL_ENTRY_DIR, "d");
	e.mode = 01700;
	e.uid = 5;
	e.gid = 6;
	e.mtime = 42;
	add(c, &e);
	assert_ptr_equal(child(root(c), "d"), d);
	assert_int_equal(d->mode, S_IFDIR | 01700);
	assert_int_equal(d->uid, 5);
	assert_int_equal(d->gid, 6);
	assert_int_equal(d->mtime, 42);
	assert_int_equal(d->flags & EL_INODE_IMPLICIT, 0);
	assert_int_equal(d->nchildren, 1);
	assert_true(S_ISREG(child(d, "f")->mode));
	assert_int_equal(root(c)->nchildren, 1);
}

static void test_replacement(void **state)
{
	struct ctx *c = *state;
	struct el_entry e = ent(EL_ENTRY_REG, "a");
	e.size = 10;
	struct el_inode *old = add(c, &e);

	e = ent(EL_ENTRY_HARDLINK, "b");
	e.link = "./a";
	add(c, &e);
	assert_ptr_equal(child(root(c), "b"), old);

	e = ent(EL_ENTRY_REG, "a");
	e.size = 20;
	struct el_inode *new = add(c, &e);
	assert_ptr_not_equal(new, old);
	assert_ptr_equal(child(root(c), "a"), new);
	assert_ptr_equal(child(root(c), "b"), old); /* the earlier link keeps it */
	assert_int_equal(old->size, 10);
	assert_int_equal(new->size, 20);
	assert_int_equal(root(c)->nchildren, 2);

	/* a hard link over the name it points at changes nothing */
	e = ent(EL_ENTRY_HARDLINK, "b");
	e.link = "b";
	add(c, &e);
	assert_ptr_equal(child(root(c), "b"), old);

	/* a directory with children replaced by a file */
	e = ent(EL_ENTRY_REG, "d/inner");
	add(c, &e);
	e = ent(EL_ENTRY_REG, "d");
	struct el_inode *f = add(c, &e);
	assert_ptr_equal(child(root(c), "d"), f);
	assert_int_equal(f->mode, S_IFREG | 0644);
	assert_int_equal(root(c)->nchildren, 3);
	/* and a file replaced by a directory, then used as a parent */
	e = ent(EL_ENTRY_DIR, "a");
	add(c, &e);
	assert_true(S_ISDIR(child(root(c), "a")->mode));
	e = ent(EL_ENTRY_REG, "b/x"); /* b is a file: it becomes a directory */
	add(c, &e);
	struct el_inode *b = child(root(c), "b");
	assert_int_equal(b->mode, S_IFDIR | 0755);
	assert_int_equal(b->flags, EL_INODE_IMPLICIT);
	assert_int_equal(c->nwarn, 1);
	assert_non_null(strstr(c->warn_msg, "'b'"));
}

static void test_hard_link_errors(void **state)
{
	struct ctx *c = *state;
	struct el_entry e = ent(EL_ENTRY_DIR, "dir");
	add(c, &e);
	e = ent(EL_ENTRY_REG, "file");
	add(c, &e);

	e = ent(EL_ENTRY_HARDLINK, "l1");
	e.link = "missing";
	e.offset = 7777;
	assert_int_equal(add_err(c, &e), -ENOENT);
	e.link = "file/below"; /* through a non-directory */
	assert_int_equal(add_err(c, &e), -ENOENT);
	e.link = "dir";
	assert_int_equal(add_err(c, &e), -EISDIR);
	e.link = "./";
	assert_int_equal(add_err(c, &e), -EISDIR);
	assert_null(dentry(root(c), "l1"));
	assert_int_equal(root(c)->nchildren, 2);
}

static void test_whiteouts(void **state)
{
	struct ctx *c = *state;
	struct el_entry e = ent(EL_ENTRY_REG, "foo");
	add(c, &e);
	e = ent(EL_ENTRY_REG, ".wh.foo");
	e.mode = 0600;
	e.uid = 9;
	add(c, &e);
	e = ent(EL_ENTRY_REG, "dir/.wh.bar");
	add(c, &e);

	struct el_inode *w = child(root(c), "foo");
	assert_int_equal(w->mode, S_IFCHR);
	assert_int_equal(w->data, 0);
	assert_int_equal(w->uid, 9);
	assert_null(dentry(root(c), ".wh.foo"));
	struct el_inode *dir = child(root(c), "dir");
	assert_int_equal(dir->flags, EL_INODE_IMPLICIT);
	w = child(dir, "bar");
	assert_int_equal(w->mode, S_IFCHR);
	assert_int_equal(w->data, 0);
	assert_int_equal(dir->nchildren, 1);

	/* opaque markers: a flag, no dentry; also for a directory not seen yet */
	e = ent(EL_ENTRY_REG, "dir/.wh..wh..opq");
	add(c, &e);
	assert_int_equal(dir->flags, EL_INODE_IMPLICIT | EL_INODE_OPAQUE);
	assert_int_equal(dir->nchildren, 1);
	e = ent(EL_ENTRY_REG, "new/.wh..wh..opq");
	add(c, &e);
	struct el_inode *n = child(root(c), "new");
	assert_int_equal(n->flags, EL_INODE_IMPLICIT | EL_INODE_OPAQUE);
	assert_int_equal(n->nchildren, 0);
	e = ent(EL_ENTRY_DIR, "new");
	add(c, &e);
	assert_int_equal(n->flags, EL_INODE_OPAQUE);
	/* a real device keeps its number; 1:3 is encoded as 0x103 */
	e = ent(EL_ENTRY_CHR, "null");
	e.dev_major = 1;
	e.dev_minor = 3;
	add(c, &e);
	assert_int_equal(child(root(c), "null")->data, 0x103);
	assert_int_equal(child(root(c), "null")->mode, S_IFCHR | 0644);
	assert_int_equal(c->nwarn, 0);
	assert_int_equal(root(c)->nchildren, 4);
}

/* ".wh.." and ".wh..." would white out "." and "..": such names must never
 * reach a directory (the writer would list "." twice). */
static void test_whiteout_of_dot_names(void **state)
{
	struct ctx *c = *state;
	static const char *const paths[] = { ".wh..", ".wh...", "d/.wh..", "d/.wh..." };

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		struct el_entry e = ent(EL_ENTRY_REG, paths[i]);
		el_error_clear(&c->err);
		(void)el_tree_add(c->tree, &e, NULL, &c->err); /* skipped or refused */
	}
	assert_null(dentry(root(c), "."));
	assert_null(dentry(root(c), ".."));
	struct el_dentry *d = dentry(root(c), "d");
	if (d) {
		assert_null(dentry(d->inode, "."));
		assert_null(dentry(d->inode, ".."));
	}
}

/* An xattr suffix past 255 bytes cannot be stored (e_name_len is 8 bits);
 * like the other unstorable xattrs it is dropped with a warning, never
 * truncated. */
static void test_xattr_suffix_too_long(void **state)
{
	struct ctx *c = *state;
	char name[5 + 256 + 1];
	memcpy(name, "user.", 5);
	memset(name + 5, 'k', 256);
	name[5 + 256] = 0;
	struct el_xattr_kv kv[] = {
		{ name, (const uint8_t *)"v", 1 },
		{ "user.ok", (const uint8_t *)"1", 1 },
	};
	struct el_entry e = ent(EL_ENTRY_REG, "f");
	e.xattrs = kv;
	e.nxattrs = 2;

	struct el_inode *f = add(c, &e);
	assert_int_equal(c->nwarn, 1);
	assert_int_equal(f->xattrs->count, 1);
	assert_int_equal(f->xattrs->x[0]->name_len, 2);
	assert_memory_equal(f->xattrs->x[0]->data, "ok1", 3);
}

static void test_whiteouts_disabled(void **state)
{
	struct el_tree *t;
	struct el_error err;
	struct el_tree_opts o = { .oci_whiteouts = false };
	struct el_entry e = ent(EL_ENTRY_REG, ".wh.foo");
	(void)state;

	el_error_clear(&err);
	assert_int_equal(el_tree_new(&o, &t), 0);
	assert_int_equal(el_tree_add(t, &e, NULL, &err), 0);
	assert_int_equal(t->root->nchildren, 1);
	assert_true(S_ISREG(child(t->root, ".wh.foo")->mode));
	el_tree_free(t);
	el_tree_free(NULL);
}

static void test_root_entry(void **state)
{
	struct ctx *c = *state;
	struct el_entry e = ent(EL_ENTRY_DIR, "./");
	e.mode = 0700;
	e.uid = 1;
	add(c, &e);
	assert_int_equal(root(c)->mode, S_IFDIR | 0700);
	assert_int_equal(root(c)->uid, 1);
	assert_int_equal(root(c)->flags, 0);
	e = ent(EL_ENTRY_DIR, "/");
	e.mode = 0750;
	add(c, &e);
	assert_int_equal(root(c)->mode, S_IFDIR | 0750);
	assert_int_equal(root(c)->nchildren, 0);

	e = ent(EL_ENTRY_REG, ".");
	e.offset = 1536;
	assert_int_equal(add_err(c, &e), -EINVAL);
	e = ent(EL_ENTRY_SYMLINK, "./");
	e.link = "x";
	assert_int_equal(add_err(c, &e), -EINVAL);
	assert_int_equal(root(c)->mode, S_IFDIR | 0750);
}

static void test_xattrs(void **state)
{
	struct ctx *c = *state;
	static const struct el_xattr_kv kv[] = {
		{ "user.b", (const uint8_t *)"2", 1 },
		{ "foo.bar", (const uint8_t *)"x", 1 },
		{ "security.capability", (const uint8_t *)"\0\1", 2 },
		{ "system.posix_acl_access", (const uint8_t *)"acl", 3 },
		{ "system.other", (const uint8_t *)"x", 1 },
		{ "user.a", (const uint8_t *)"1", 1 },
		{ "user.b", (const uint8_t *)"3", 1 }, /* same name: the later wins */
	};
	struct el_entry e = ent(EL_ENTRY_REG, "f");
	e.xattrs = kv;
	e.nxattrs = sizeof(kv) / sizeof(kv[0]);
	e.offset = 9216;
	struct el_inode *f = add(c, &e);

	assert_int_equal(c->nwarn, 2);
	assert_int_equal(c->warn_off, 9216);
	assert_non_null(strstr(c->warn_msg, "system.other"));
	assert_non_null(f->xattrs);
	assert_int_equal(f->xattrs->count, 4);
	/* sorted by (index, suffix, value) */
	static const struct {
		uint8_t index;
		const char *suffix, *value;
		size_t vlen;
	} want[] = {
		{ EROFS_XATTR_INDEX_USER, "a", "1", 1 },
		{ EROFS_XATTR_INDEX_USER, "b", "3", 1 },
		{ EROFS_XATTR_INDEX_POSIX_ACL_ACCESS, "", "acl", 3 },
		{ EROFS_XATTR_INDEX_SECURITY, "capability", "\0\1", 2 },
	};
	for (int i = 0; i < 4; i++) {
		const struct el_xattr *x = f->xattrs->x[i];
		assert_int_equal(x->index, want[i].index);
		assert_int_equal(x->name_len, strlen(want[i].suffix));
		assert_memory_equal(x->data, want[i].suffix, x->name_len);
		assert_int_equal(x->value_len, want[i].vlen);
		assert_memory_equal(x->data + x->name_len, want[i].value, want[i].vlen);
	}
	/* interned: a second inode with user.a=1 shares the object */
	e = ent(EL_ENTRY_REG, "g");
	e.xattrs = &kv[5];
	e.nxattrs = 1;
	struct el_inode *g = add(c, &e);
	assert_int_equal(g->xattrs->count, 1);
	assert_ptr_equal(g->xattrs->x[0], f->xattrs->x[0]);
	/* a later directory entry replaces the xattrs, not merges them */
	e = ent(EL_ENTRY_DIR, "d");
	e.xattrs = &kv[0];
	e.nxattrs = 1;
	add(c, &e);
	e.xattrs = &kv[5];
	add(c, &e);
	struct el_inode *d = child(root(c), "d");
	assert_int_equal(d->xattrs->count, 1);
	assert_ptr_equal(d->xattrs->x[0], f->xattrs->x[0]);
}

static void test_symlinks(void **state)
{
	struct ctx *c = *state;
	char *target = malloc(EL_MAX_SYMLINK + 2);
	memset(target, 't', EL_MAX_SYMLINK);
	target[EL_MAX_SYMLINK] = 0;

	struct el_entry e = ent(EL_ENTRY_SYMLINK, "ok");
	e.link = target;
	add(c, &e);
	struct el_inode *s = child(root(c), "ok");
	assert_int_equal(s->mode, S_IFLNK | 0644);
	assert_int_equal(s->size, EL_MAX_SYMLINK);
	assert_string_equal(s->symlink, target);
	assert_ptr_not_equal(s->symlink, target); /* a copy */

	target[EL_MAX_SYMLINK] = 't';
	target[EL_MAX_SYMLINK + 1] = 0;
	e = ent(EL_ENTRY_SYMLINK, "long");
	e.link = target;
	assert_int_equal(add_err(c, &e), -EINVAL);
	e.link = "";
	assert_int_equal(add_err(c, &e), -EINVAL);
	assert_null(dentry(root(c), "long"));
	free(target);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_path_normalisation),
		T(test_path_errors),
		T(test_implicit_parents),
		T(test_dir_over_dir_keeps_children),
		T(test_replacement),
		T(test_hard_link_errors),
		T(test_whiteouts),
		T(test_whiteout_of_dot_names),
		cmocka_unit_test(test_whiteouts_disabled),
		T(test_root_entry),
		T(test_xattrs),
		T(test_xattr_suffix_too_long),
		T(test_symlinks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
