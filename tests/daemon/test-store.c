/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The metadata store against containerd's MetaStore semantics
 * (snapshots/storage/bolt.go and metastore_test.go in containerd 1.6), plus
 * what the daemon relies on: ids never reused, persistence, crash-safe
 * transactions, concurrent readers, and damaged records reported as -EUCLEAN
 * (written through the raw LMDB API, and mutated records decoded by the
 * thousand). Each test uses a fresh directory under $TMPDIR.
 */
#include <errno.h>
#include <ftw.h>
#include <lmdb.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/hash.h"
#include "store.h"

struct fx {
	char dir[256];
	struct store *s;
};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void open_store(struct fx *f)
{
	char err[256] = "";
	int r = store_open(f->dir, NULL, &f->s, err, sizeof(err));

	if (r < 0)
		fail_msg("store_open: %s: %s", strerror(-r), err);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/test-store.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	open_store(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	f->s = store_close(f->s);
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void reopen(struct fx *f)
{
	f->s = store_close(f->s);
	open_store(f);
}

static struct store_txn *begin(struct fx *f, bool write)
{
	struct store_txn *t = NULL;

	assert_int_equal(store_txn_begin(f->s, write, &t), 0);
	assert_non_null(t);
	return t;
}

static void commit_txn(struct store_txn *t)
{
	int r = store_txn_commit(t);

	if (r < 0)
		fail_msg("commit: %s: %s", strerror(-r), store_txn_errmsg(t));
	store_txn_free(t);
}

/* create in its own transaction; returns the id */
static uint64_t mk(struct fx *f, const char *key, enum snap_kind kind, const char *parent)
{
	struct store_txn *t = begin(f, true);
	struct snap_info i = {};
	uint64_t id;
	int r = store_create(t, key, kind, parent, NULL, 0, &i);

	if (r < 0)
		fail_msg("create %s: %s: %s", key, strerror(-r), store_txn_errmsg(t));
	id = i.id;
	snap_info_free(&i);
	commit_txn(t);
	return id;
}

static void mk_commit(struct fx *f, const char *key, const char *name)
{
	struct store_txn *t = begin(f, true);
	int r = store_commit(t, key, name, NULL, NULL, 0, NULL);

	if (r < 0)
		fail_msg("commit %s → %s: %s: %s", key, name, strerror(-r), store_txn_errmsg(t));
	commit_txn(t);
}

static int get1(struct fx *f, const char *key, struct snap_info *ret)
{
	struct store_txn *t = begin(f, false);
	int r = store_get(t, key, ret);

	store_txn_free(t);
	return r;
}

static const char *label(const struct snap_info *i, const char *k)
{
	for (size_t j = 0; j < i->n_labels; j++)
		if (!strcmp(i->labels[j].key, k))
			return i->labels[j].value;
	return NULL;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- create, get, kinds, keys ---- */

static void test_create_get(void **state)
{
	struct fx *f = *state;
	struct snap_label l[] = { { "containerd.io/snapshot.ref", "sha256:abc" } };
	struct snap_info i = {}, j = {};
	struct store_txn *t;
	int64_t before = now_ns();

	t = begin(f, true);
	assert_int_equal(
		store_create(t, "default/1/extract-1 sha256:aa", SNAP_KIND_ACTIVE, NULL, l, 1, &i),
		0);
	assert_string_equal(i.key, "default/1/extract-1 sha256:aa");
	assert_string_equal(i.parent, "");
	assert_int_equal(i.kind, SNAP_KIND_ACTIVE);
	assert_true(i.id >= 1);
	assert_int_equal(i.parent_id, 0);
	assert_true(i.created_ns >= before && i.created_ns == i.updated_ns);
	assert_int_equal(i.n_labels, 1);
	assert_string_equal(label(&i, "containerd.io/snapshot.ref"), "sha256:abc");
	/* visible inside its own transaction */
	assert_int_equal(store_get(t, "default/1/extract-1 sha256:aa", &j), 0);
	assert_int_equal(j.id, i.id);
	snap_info_free(&j);
	/* already exists */
	assert_int_equal(
		store_create(t, "default/1/extract-1 sha256:aa", SNAP_KIND_VIEW, NULL, NULL, 0, &j),
		-EEXIST);
	assert_null(j.key); /* ret_ untouched on failure */
	/* only active or view can be created */
	assert_int_equal(store_create(t, "x", SNAP_KIND_COMMITTED, NULL, NULL, 0, NULL), -EINVAL);
	assert_int_equal(store_create(t, "x", SNAP_KIND_UNKNOWN, NULL, NULL, 0, NULL), -EINVAL);
	assert_int_equal(store_create(t, "x", (enum snap_kind)7, NULL, NULL, 0, NULL), -EINVAL);
	assert_int_equal(store_create(t, "", SNAP_KIND_ACTIVE, NULL, NULL, 0, NULL), -EINVAL);
	assert_int_equal(store_create(t, NULL, SNAP_KIND_ACTIVE, NULL, NULL, 0, NULL), -EINVAL);
	/* "" parent is no parent */
	assert_int_equal(store_create(t, "v", SNAP_KIND_VIEW, "", NULL, 0, &j), 0);
	assert_int_equal(j.kind, SNAP_KIND_VIEW);
	assert_true(j.id > i.id);
	snap_info_free(&j);
	snap_info_free(&j); /* twice is fine */
	commit_txn(t);

	assert_int_equal(get1(f, "default/1/extract-1 sha256:aa", &j), 0);
	assert_int_equal(j.id, i.id);
	assert_int_equal(j.created_ns, i.created_ns);
	assert_string_equal(label(&j, "containerd.io/snapshot.ref"), "sha256:abc");
	snap_info_free(&j);
	assert_int_equal(get1(f, "nope", &j), -ENOENT);
	assert_int_equal(get1(f, "default/1/extract-1 sha256:a", NULL), -ENOENT);

	/* by id */
	t = begin(f, false);
	assert_int_equal(store_get_by_id(t, i.id, &j), 0);
	assert_string_equal(j.key, "default/1/extract-1 sha256:aa");
	snap_info_free(&j);
	assert_int_equal(store_get_by_id(t, 999999, &j), -ENOENT);
	assert_int_equal(store_get_by_id(t, 0, NULL), -ENOENT);
	store_txn_free(t);
	snap_info_free(&i);
}

static void test_long_keys(void **state)
{
	struct fx *f = *state;
	char *a = malloc(STORE_KEY_MAX + 2), *b, *c;
	struct snap_info i = {};
	struct store_txn *t;

	memset(a, 'k', STORE_KEY_MAX);
	a[STORE_KEY_MAX] = 0;
	b = strdup(a);
	c = strdup(a);
	b[4000] = 'x'; /* shares far more than the inline 448 bytes with a */
	c[449] = 0;    /* just over the inline length */

	mk(f, a, SNAP_KIND_ACTIVE, NULL);
	mk(f, b, SNAP_KIND_ACTIVE, NULL);
	mk(f, c, SNAP_KIND_ACTIVE, NULL);
	c[448] = 0; /* exactly inline, a prefix of the others */
	mk(f, c, SNAP_KIND_ACTIVE, NULL);
	assert_int_equal(get1(f, a, &i), 0);
	assert_string_equal(i.key, a);
	snap_info_free(&i);
	assert_int_equal(get1(f, b, &i), 0);
	assert_string_equal(i.key, b);
	snap_info_free(&i);
	assert_int_equal(get1(f, c, &i), 0);
	assert_int_equal(strlen(i.key), 448);
	snap_info_free(&i);
	c[448] = 'k';
	assert_int_equal(get1(f, c, &i), 0);
	assert_int_equal(strlen(i.key), 449);
	snap_info_free(&i);

	a[STORE_KEY_MAX] = 'k';
	a[STORE_KEY_MAX + 1] = 0;
	t = begin(f, true);
	assert_int_equal(store_create(t, a, SNAP_KIND_ACTIVE, NULL, NULL, 0, NULL), -EINVAL);
	assert_int_equal(store_get(t, a, NULL), -EINVAL);
	a[STORE_KEY_MAX] = 0;
	assert_int_equal(store_create(t, a, SNAP_KIND_ACTIVE, NULL, NULL, 0, NULL), -EEXIST);
	assert_int_equal(store_commit(t, a, b, NULL, NULL, 0, NULL), -EEXIST);
	b[4001] = 'y';
	assert_int_equal(store_commit(t, a, b, NULL, NULL, 0, NULL), 0);
	assert_int_equal(store_get(t, a, NULL), -ENOENT);
	assert_int_equal(store_get(t, b, &i), 0);
	assert_int_equal(i.kind, SNAP_KIND_COMMITTED);
	snap_info_free(&i);
	assert_int_equal(store_create(t, "child", SNAP_KIND_VIEW, b, NULL, 0, &i), 0);
	assert_string_equal(i.parent, b);
	snap_info_free(&i);
	assert_int_equal(store_remove(t, b, NULL, NULL), -EBUSY);
	assert_int_equal(store_remove(t, "child", NULL, NULL), 0);
	assert_int_equal(store_remove(t, b, NULL, NULL), 0);
	commit_txn(t);
	free(a);
	free(b);
	free(c);
}

/* ---- parents ---- */

static void test_parent_rules(void **state)
{
	struct fx *f = *state;
	struct snap_info i = {};
	struct store_txn *t;
	uint64_t *ids = NULL;
	size_t n = 0;

	mk(f, "act", SNAP_KIND_ACTIVE, NULL);
	mk(f, "view", SNAP_KIND_VIEW, NULL);
	t = begin(f, true);
	assert_int_equal(store_create(t, "c1", SNAP_KIND_ACTIVE, "missing", NULL, 0, &i), -ENOENT);
	assert_non_null(strstr(store_txn_errmsg(t), "missing parent"));
	assert_int_equal(store_create(t, "c1", SNAP_KIND_ACTIVE, "act", NULL, 0, NULL), -EINVAL);
	assert_non_null(strstr(store_txn_errmsg(t), "not a committed"));
	assert_int_equal(store_create(t, "c1", SNAP_KIND_VIEW, "view", NULL, 0, NULL), -EINVAL);
	/* containerd checks the parent before the key: a missing parent wins */
	assert_int_equal(store_create(t, "act", SNAP_KIND_ACTIVE, "missing", NULL, 0, NULL),
			 -ENOENT);
	/* failures changed nothing: the transaction still commits */
	commit_txn(t);
	assert_int_equal(get1(f, "c1", NULL), -ENOENT);

	mk_commit(f, "act", "layer1");
	mk(f, "a2", SNAP_KIND_ACTIVE, "layer1");
	mk_commit(f, "a2", "layer2");
	mk(f, "top", SNAP_KIND_ACTIVE, "layer2");
	assert_int_equal(get1(f, "top", &i), 0);
	assert_string_equal(i.parent, "layer2");
	snap_info_free(&i);

	t = begin(f, false);
	assert_int_equal(store_parent_ids(t, "top", &ids, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(store_get(t, "layer2", &i), 0);
	assert_int_equal(ids[0], i.id);
	snap_info_free(&i);
	assert_int_equal(store_get(t, "layer1", &i), 0);
	assert_int_equal(ids[1], i.id);
	snap_info_free(&i);
	free(ids);
	assert_int_equal(store_parent_ids(t, "layer1", &ids, &n), 0);
	assert_int_equal(n, 0);
	free(ids);
	assert_int_equal(store_parent_ids(t, "none", &ids, &n), -ENOENT);
	store_txn_free(t);
}

/* ---- commit ---- */

static void test_commit(void **state)
{
	struct fx *f = *state;
	struct snap_label l1[] = { { "a", "1" } }, l2[] = { { "b", "2" } };
	struct snap_info act = {}, i = {};
	struct store_txn *t;
	uint64_t pid;

	pid = mk(f, "base-active", SNAP_KIND_ACTIVE, NULL);
	mk_commit(f, "base-active", "base");
	mk(f, "other", SNAP_KIND_ACTIVE, NULL);
	mk(f, "view", SNAP_KIND_VIEW, "base");

	t = begin(f, true);
	assert_int_equal(store_create(t, "work", SNAP_KIND_ACTIVE, "base", l1, 1, &act), 0);
	assert_int_equal(store_set_usage(t, "work", 4096, 3), 0);
	assert_int_equal(store_set_flags(t, "work", 0x5), 0);
	commit_txn(t);
	usleep(2000);

	t = begin(f, true);
	assert_int_equal(store_commit(t, "missing", "n", NULL, NULL, 0, &i), -ENOENT);
	assert_int_equal(store_commit(t, "work", "other", NULL, NULL, 0, &i), -EEXIST);
	/* containerd: the name is checked first */
	assert_int_equal(store_commit(t, "missing", "other", NULL, NULL, 0, &i), -EEXIST);
	assert_int_equal(store_commit(t, "view", "n", NULL, NULL, 0, &i), -EINVAL);
	assert_non_null(strstr(store_txn_errmsg(t), "not active"));
	assert_int_equal(store_commit(t, "base", "n", NULL, NULL, 0, &i), -EINVAL);
	assert_int_equal(store_commit(t, "work", "", NULL, NULL, 0, &i), -EINVAL);
	assert_null(i.key);
	assert_int_equal(store_commit(t, "work", "layer", NULL, l2, 1, &i), 0);
	assert_string_equal(i.key, "layer");
	assert_int_equal(i.kind, SNAP_KIND_COMMITTED);
	assert_int_equal(i.id, act.id);
	assert_string_equal(i.parent, "base");
	assert_int_equal(i.parent_id, pid);
	/* labels replaced, not inherited */
	assert_int_equal(i.n_labels, 1);
	assert_string_equal(label(&i, "b"), "2");
	assert_null(label(&i, "a"));
	/* containerd resets created at commit */
	assert_true(i.created_ns > act.created_ns);
	assert_int_equal(i.updated_ns, i.created_ns);
	/* the daemon's fields follow the snapshot */
	assert_int_equal(i.usage_size, 4096);
	assert_int_equal(i.usage_inodes, 3);
	assert_int_equal(i.flags, 0x5);
	snap_info_free(&i);
	assert_int_equal(store_get(t, "work", NULL), -ENOENT);
	assert_int_equal(store_get_by_id(t, act.id, &i), 0);
	assert_string_equal(i.key, "layer");
	snap_info_free(&i);
	/* committed twice: the key is gone */
	assert_int_equal(store_commit(t, "work", "layer2", NULL, NULL, 0, NULL), -ENOENT);
	commit_txn(t);

	/* the parent link moved with the rename: base now has view and layer */
	assert_int_equal(get1(f, "layer", &i), 0);
	assert_int_equal(i.id, act.id);
	snap_info_free(&i);
	t = begin(f, true);
	assert_int_equal(store_remove(t, "base", NULL, NULL), -EBUSY);
	assert_int_equal(store_remove(t, "view", NULL, NULL), 0);
	assert_int_equal(store_remove(t, "base", NULL, NULL), -EBUSY);
	assert_int_equal(store_remove(t, "layer", NULL, NULL), 0);
	assert_int_equal(store_remove(t, "base", NULL, NULL), 0);
	commit_txn(t);
	snap_info_free(&act);
}

/* ---- remove ---- */

static void test_remove(void **state)
{
	struct fx *f = *state;
	struct store_txn *t;
	uint64_t id, pid, cid;
	enum snap_kind kind = SNAP_KIND_UNKNOWN;

	pid = mk(f, "p-active", SNAP_KIND_ACTIVE, NULL);
	mk_commit(f, "p-active", "p");
	cid = mk(f, "c", SNAP_KIND_ACTIVE, "p");
	mk(f, "v", SNAP_KIND_VIEW, "p");

	t = begin(f, true);
	id = 42;
	assert_int_equal(store_remove(t, "missing", &id, &kind), -ENOENT);
	assert_int_equal(id, 42);
	assert_int_equal(kind, SNAP_KIND_UNKNOWN);
	assert_int_equal(store_remove(t, "p", &id, &kind), -EBUSY);
	assert_non_null(strstr(store_txn_errmsg(t), "with child"));
	assert_int_equal(store_remove(t, "c", &id, &kind), 0);
	assert_int_equal(id, cid);
	assert_int_equal(kind, SNAP_KIND_ACTIVE);
	assert_int_equal(store_remove(t, "c", &id, &kind), -ENOENT);
	assert_int_equal(store_remove(t, "p", &id, &kind), -EBUSY);
	assert_int_equal(store_remove(t, "v", NULL, &kind), 0);
	assert_int_equal(kind, SNAP_KIND_VIEW);
	assert_int_equal(store_remove(t, "p", &id, &kind), 0);
	assert_int_equal(id, pid);
	assert_int_equal(kind, SNAP_KIND_COMMITTED);
	assert_int_equal(store_get_by_id(t, pid, NULL), -ENOENT);
	commit_txn(t);

	t = begin(f, false);
	assert_int_equal(store_remove(t, "x", NULL, NULL), -EROFS);
	store_txn_free(t);
	assert_int_equal(get1(f, "p", NULL), -ENOENT);
	/* the key is free again; the id is not */
	assert_true(mk(f, "p", SNAP_KIND_ACTIVE, NULL) > cid);
}

/* ---- ids ---- */

static void test_ids(void **state)
{
	struct fx *f = *state;
	struct store_txn *t;
	struct store_ids ids = {};
	uint64_t a, b, c, d, e, aborted;
	struct snap_info i = {};

	a = mk(f, "a", SNAP_KIND_ACTIVE, NULL);
	b = mk(f, "b", SNAP_KIND_ACTIVE, NULL);
	assert_true(b > a);

	/* aborted create: its id may already name a directory, so this
	 * process never hands it out again */
	t = begin(f, true);
	assert_int_equal(store_create(t, "x", SNAP_KIND_ACTIVE, NULL, NULL, 0, &i), 0);
	aborted = i.id;
	snap_info_free(&i);
	store_txn_abort(t);
	store_txn_free(t);
	assert_true(aborted > b);
	c = mk(f, "c", SNAP_KIND_ACTIVE, NULL);
	assert_true(c > aborted);

	t = begin(f, true);
	assert_int_equal(store_remove(t, "c", NULL, NULL), 0);
	commit_txn(t);
	d = mk(f, "d", SNAP_KIND_ACTIVE, NULL);
	assert_true(d > c);

	/* reopen after removing the newest: still not reused */
	t = begin(f, true);
	assert_int_equal(store_remove(t, "d", NULL, NULL), 0);
	commit_txn(t);
	reopen(f);
	e = mk(f, "e", SNAP_KIND_ACTIVE, NULL);
	assert_true(e > d);

	t = begin(f, false);
	assert_int_equal(store_ids(t, &ids), 0);
	assert_int_equal(ids.n, 3);
	assert_int_equal(ids.v[0], a);
	assert_int_equal(ids.v[1], b);
	assert_int_equal(ids.v[2], e);
	assert_int_equal(ids.next, e + 1);
	assert_true(store_ids_has(&ids, a));
	assert_true(store_ids_has(&ids, e));
	assert_false(store_ids_has(&ids, c));
	assert_false(store_ids_has(&ids, d));
	assert_false(store_ids_has(&ids, 0));
	store_ids_free(&ids);
	store_ids_free(&ids);
	store_txn_free(t);

	/* a Cleanup reading while a create is in flight sees next at or
	 * below the in-flight id */
	{
		struct store_txn *w = begin(f, true), *r = begin(f, false);

		assert_int_equal(store_create(w, "inflight", SNAP_KIND_ACTIVE, NULL, NULL, 0, &i),
				 0);
		assert_int_equal(store_ids(r, &ids), 0);
		assert_false(store_ids_has(&ids, i.id));
		assert_true(i.id >= ids.next);
		store_ids_free(&ids);
		snap_info_free(&i);
		commit_txn(w);
		store_txn_free(r);
	}
}

/* ---- persistence and transactions ---- */

static void test_persistence(void **state)
{
	struct fx *f = *state;
	struct snap_label l[] = { { "k1", "v1" }, { "k2", "v2" } };
	struct snap_info before = {}, after = {};
	struct store_txn *t;

	t = begin(f, true);
	assert_int_equal(store_create(t, "a", SNAP_KIND_ACTIVE, NULL, l, 2, NULL), 0);
	assert_int_equal(store_set_usage(t, "a", 123456789012ULL, 77), 0);
	assert_int_equal(store_commit(t, "a", "layer", NULL, l, 2, NULL), 0);
	assert_int_equal(store_create(t, "child", SNAP_KIND_VIEW, "layer", l, 1, NULL), 0);
	assert_int_equal(store_set_flags(t, "child", 0xdeadbeef), 0);
	assert_int_equal(store_get(t, "child", &before), 0);
	commit_txn(t);

	reopen(f);
	assert_int_equal(get1(f, "child", &after), 0);
	assert_string_equal(after.key, before.key);
	assert_string_equal(after.parent, "layer");
	assert_int_equal(after.kind, SNAP_KIND_VIEW);
	assert_int_equal(after.id, before.id);
	assert_int_equal(after.parent_id, before.parent_id);
	assert_int_equal(after.created_ns, before.created_ns);
	assert_int_equal(after.updated_ns, before.updated_ns);
	assert_int_equal(after.flags, 0xdeadbeef);
	assert_int_equal(after.n_labels, 1);
	assert_string_equal(label(&after, "k1"), "v1");
	snap_info_free(&after);
	assert_int_equal(get1(f, "layer", &after), 0);
	assert_int_equal(after.usage_size, 123456789012ULL);
	assert_int_equal(after.usage_inodes, 77);
	assert_int_equal(after.n_labels, 2);
	snap_info_free(&after);
	t = begin(f, true);
	assert_int_equal(store_remove(t, "layer", NULL, NULL), -EBUSY); /* the link persisted */
	store_txn_free(t);
	snap_info_free(&before);
}

static void test_abort(void **state)
{
	struct fx *f = *state;
	struct store_txn *t;

	mk(f, "keep", SNAP_KIND_ACTIVE, NULL);
	t = begin(f, true);
	assert_int_equal(store_create(t, "gone", SNAP_KIND_ACTIVE, NULL, NULL, 0, NULL), 0);
	assert_int_equal(store_remove(t, "keep", NULL, NULL), 0);
	assert_int_equal(store_get(t, "gone", NULL), 0);
	store_txn_abort(t);
	store_txn_abort(t); /* twice */
	/* calls on an ended transaction fail cleanly */
	assert_int_equal(store_get(t, "keep", NULL), -EINVAL);
	assert_int_equal(store_txn_commit(t), -EINVAL);
	store_txn_free(t);
	assert_int_equal(get1(f, "gone", NULL), -ENOENT);
	assert_int_equal(get1(f, "keep", NULL), 0);

	/* freeing an open write transaction aborts it */
	t = begin(f, true);
	assert_int_equal(store_create(t, "gone2", SNAP_KIND_ACTIVE, NULL, NULL, 0, NULL), 0);
	assert_null(store_txn_free(t));
	assert_int_equal(get1(f, "gone2", NULL), -ENOENT);

	/* abort after commit is a no-op */
	t = begin(f, true);
	assert_int_equal(store_create(t, "kept", SNAP_KIND_ACTIVE, NULL, NULL, 0, NULL), 0);
	assert_int_equal(store_txn_commit(t), 0);
	store_txn_abort(t);
	store_txn_free(t);
	assert_int_equal(get1(f, "kept", NULL), 0);
	assert_null(store_txn_free(NULL));

	/* reads see a snapshot: a writer's later commit is invisible to them */
	{
		struct store_txn *r = begin(f, false), *w = begin(f, true);

		assert_int_equal(store_create(w, "later", SNAP_KIND_ACTIVE, NULL, NULL, 0, NULL),
				 0);
		commit_txn(w);
		assert_int_equal(store_get(r, "later", NULL), -ENOENT);
		assert_int_equal(store_create(r, "ro", SNAP_KIND_ACTIVE, NULL, NULL, 0, NULL),
				 -EROFS);
		store_txn_free(r);
		assert_int_equal(get1(f, "later", NULL), 0);
	}
}

/* A write that fails midway (map full) poisons its transaction: nothing of
 * it is committed, and what was committed before stays. */
static void test_poisoned_txn(void **state)
{
	struct fx *f = *state;
	struct store_options o = { .map_size = 256 * 1024 };
	struct store_txn *t;
	struct snap_label l = { "big", NULL };
	char key[64], err[256];
	int r = 0, n = 0;

	f->s = store_close(f->s);
	assert_int_equal(store_open(f->dir, &o, &f->s, err, sizeof(err)), 0);
	mk(f, "before", SNAP_KIND_ACTIVE, NULL);

	l.value = malloc(4000);
	memset(l.value, 'v', 3999);
	l.value[3999] = 0;
	t = begin(f, true);
	for (n = 0; n < 10000; n++) {
		snprintf(key, sizeof(key), "k%05d", n);
		r = store_create(t, key, SNAP_KIND_ACTIVE, NULL, &l, 1, NULL);
		if (r < 0)
			break;
	}
	assert_int_equal(r, -ENOSPC);
	assert_true(n > 0);
	/* every later call and the commit fail with the first error */
	assert_int_equal(store_get(t, "before", NULL), -ENOSPC);
	assert_int_equal(store_txn_commit(t), -ENOSPC);
	store_txn_free(t);
	free(l.value);
	assert_int_equal(get1(f, "k00000", NULL), -ENOENT);
	assert_int_equal(get1(f, "before", NULL), 0);
	mk(f, "after", SNAP_KIND_ACTIVE, NULL);
}

/*
 * Nested transactions (the daemon's group commit: several callers' writes in
 * one durable commit, each undone alone when it fails): a child's commit
 * moves its writes into the parent, its abort or a failed write undoes them
 * and nothing else, and the parent takes no calls while a child is open.
 */
static void test_nested(void **state)
{
	struct fx *f = *state;
	struct store_txn *t, *c = NULL, *c2 = NULL, *r;
	struct snap_info i = {};
	uint64_t id_aborted;

	mk(f, "base", SNAP_KIND_ACTIVE, NULL);
	mk_commit(f, "base", "base-c");
	t = begin(f, true);

	/* a child that commits: visible in the parent, not outside yet */
	assert_int_equal(store_txn_begin_nested(t, &c), 0);
	assert_int_equal(store_create(c, "one", SNAP_KIND_ACTIVE, "base-c", NULL, 0, NULL), 0);
	/* one child at a time; the parent waits */
	assert_int_equal(store_txn_begin_nested(t, &c2), -EBUSY);
	assert_null(c2);
	assert_int_equal(store_get(t, "one", NULL), -EBUSY);
	assert_int_equal(store_txn_commit(t), -EBUSY);
	assert_int_equal(store_txn_commit(c), 0);
	c = store_txn_free(c);
	assert_int_equal(store_get(t, "one", NULL), 0);
	assert_int_equal(get1(f, "one", NULL), -ENOENT);

	/* a child that fails a check leaves nothing, and may still commit
	 * what it did before */
	assert_int_equal(store_txn_begin_nested(t, &c), 0);
	assert_int_equal(store_create(c, "two", SNAP_KIND_VIEW, "base-c", NULL, 0, NULL), 0);
	assert_int_equal(store_create(c, "one", SNAP_KIND_ACTIVE, NULL, NULL, 0, NULL), -EEXIST);
	assert_int_equal(store_txn_commit(c), 0);
	c = store_txn_free(c);

	/* a child that is aborted: its writes are gone, its id is not reused */
	assert_int_equal(store_txn_begin_nested(t, &c), 0);
	assert_int_equal(store_create(c, "three", SNAP_KIND_ACTIVE, NULL, NULL, 0, &i), 0);
	id_aborted = i.id;
	snap_info_free(&i);
	assert_int_equal(store_remove(c, "one", NULL, NULL), 0);
	assert_int_equal(store_remove(c, "base-c", NULL, NULL), -EBUSY); /* "two" is its child */
	store_txn_abort(c);
	c = store_txn_free(c);
	assert_int_equal(store_get(t, "three", NULL), -ENOENT);
	assert_int_equal(store_get(t, "one", NULL), 0);
	assert_int_equal(store_txn_begin_nested(t, &c), 0);
	assert_int_equal(store_create(c, "four", SNAP_KIND_ACTIVE, NULL, NULL, 0, &i), 0);
	assert_true(i.id > id_aborted);
	snap_info_free(&i);
	assert_int_equal(store_txn_commit(c), 0);
	c = store_txn_free(c);

	/* commit of the parent: every committed child's writes, durably */
	commit_txn(t);
	reopen(f);
	assert_int_equal(get1(f, "one", NULL), 0);
	assert_int_equal(get1(f, "two", &i), 0);
	assert_string_equal(i.parent, "base-c");
	snap_info_free(&i);
	assert_int_equal(get1(f, "three", NULL), -ENOENT);
	assert_int_equal(get1(f, "four", NULL), 0);
	t = begin(f, true);
	assert_int_equal(store_remove(t, "base-c", NULL, NULL), -EBUSY);
	store_txn_free(t);

	/* aborting the parent ends its open child; both objects free cleanly */
	t = begin(f, true);
	assert_int_equal(store_txn_begin_nested(t, &c), 0);
	assert_int_equal(store_create(c, "five", SNAP_KIND_ACTIVE, NULL, NULL, 0, NULL), 0);
	store_txn_abort(t);
	assert_int_equal(store_create(c, "six", SNAP_KIND_ACTIVE, NULL, NULL, 0, NULL), -EINVAL);
	assert_int_equal(store_txn_commit(c), -EINVAL);
	store_txn_free(c);
	store_txn_free(t);
	assert_int_equal(get1(f, "five", NULL), -ENOENT);

	/* freeing a parent first is fine too */
	t = begin(f, true);
	assert_int_equal(store_txn_begin_nested(t, &c), 0);
	store_txn_free(t);
	store_txn_free(c);

	/* nesting needs a write transaction */
	r = begin(f, false);
	assert_int_equal(store_txn_begin_nested(r, &c), -EBUSY);
	store_txn_free(r);
	assert_int_equal(store_txn_begin_nested(NULL, &c), -EINVAL);
	mk(f, "after", SNAP_KIND_ACTIVE, NULL);
}

/* A child whose write fails midway (map full) is poisoned alone: its commit
 * fails and undoes it, the parent commits the other children's writes. */
static void test_nested_poisoned(void **state)
{
	struct fx *f = *state;
	struct store_options o = { .map_size = 256 * 1024 };
	struct store_txn *t, *c = NULL;
	struct snap_label l = { "big", NULL };
	char key[64], err[256];
	int r = 0, n;

	f->s = store_close(f->s);
	assert_int_equal(store_open(f->dir, &o, &f->s, err, sizeof(err)), 0);
	l.value = malloc(4000);
	memset(l.value, 'v', 3999);
	l.value[3999] = 0;

	t = begin(f, true);
	assert_int_equal(store_txn_begin_nested(t, &c), 0);
	assert_int_equal(store_create(c, "small-1", SNAP_KIND_ACTIVE, NULL, NULL, 0, NULL), 0);
	assert_int_equal(store_txn_commit(c), 0);
	c = store_txn_free(c);

	assert_int_equal(store_txn_begin_nested(t, &c), 0);
	for (n = 0; n < 10000; n++) {
		snprintf(key, sizeof(key), "k%05d", n);
		r = store_create(c, key, SNAP_KIND_ACTIVE, NULL, &l, 1, NULL);
		if (r < 0)
			break;
	}
	assert_int_equal(r, -ENOSPC);
	assert_true(n > 0);
	assert_int_equal(store_get(c, "small-1", NULL), -ENOSPC);
	assert_int_equal(store_txn_commit(c), -ENOSPC);
	c = store_txn_free(c);
	/* the parent is untouched and goes on */
	assert_int_equal(store_get(t, "k00000", NULL), -ENOENT);
	assert_int_equal(store_txn_begin_nested(t, &c), 0);
	assert_int_equal(store_create(c, "small-2", SNAP_KIND_ACTIVE, NULL, NULL, 0, NULL), 0);
	assert_int_equal(store_txn_commit(c), 0);
	c = store_txn_free(c);
	commit_txn(t);
	free(l.value);
	assert_int_equal(get1(f, "small-1", NULL), 0);
	assert_int_equal(get1(f, "small-2", NULL), 0);
	assert_int_equal(get1(f, "k00000", NULL), -ENOENT);
}

/* Ids reserved ahead of their records (the daemon makes snapshots/<id>
 * first): unique among themselves and with plain creates, committed in any
 * order, the counter past all of them after a reopen; a parent newer than
 * the reservation is refused (-ESTALE). */
static void test_reserved_ids(void **state)
{
	struct fx *f = *state;
	struct store_txn *t;
	struct snap_info i = {};
	uint64_t a, b, c, plain, d;

	assert_int_equal(store_reserve_id(f->s, &a), 0);
	assert_int_equal(store_reserve_id(f->s, &b), 0);
	assert_true(b > a);
	/* a plain create after them gets a fresh id too */
	plain = mk(f, "plain", SNAP_KIND_ACTIVE, NULL);
	assert_true(plain > b);
	/* b commits before a */
	t = begin(f, true);
	assert_int_equal(store_create_reserved(t, b, "b", SNAP_KIND_ACTIVE, NULL, NULL, 0, &i), 0);
	assert_int_equal(i.id, b);
	snap_info_free(&i);
	commit_txn(t);
	t = begin(f, true);
	assert_int_equal(store_create_reserved(t, a, "a", SNAP_KIND_ACTIVE, NULL, NULL, 0, NULL), 0);
	/* the checks of store_create */
	assert_int_equal(store_create_reserved(t, a + 1000, "a", SNAP_KIND_ACTIVE, NULL, NULL, 0,
					       NULL),
			 -EEXIST);
	assert_int_equal(store_create_reserved(t, 0, "z", SNAP_KIND_ACTIVE, NULL, NULL, 0, NULL),
			 -EINVAL);
	commit_txn(t);
	assert_int_equal(get1(f, "a", &i), 0);
	assert_int_equal(i.id, a);
	snap_info_free(&i);

	/* a parent made after the reservation */
	assert_int_equal(store_reserve_id(f->s, &c), 0);
	mk(f, "p", SNAP_KIND_ACTIVE, NULL);
	mk_commit(f, "p", "p-c");
	t = begin(f, true);
	assert_int_equal(store_create_reserved(t, c, "child", SNAP_KIND_VIEW, "p-c", NULL, 0, NULL),
			 -ESTALE);
	assert_non_null(strstr(store_txn_errmsg(t), "newer"));
	assert_int_equal(store_reserve_id(f->s, &d), 0);
	assert_int_equal(store_create_reserved(t, d, "child", SNAP_KIND_VIEW, "p-c", NULL, 0, NULL),
			 0);
	commit_txn(t);

	/* after a reopen the counter is past every committed id; c, never
	 * used, may come back then */
	reopen(f);
	assert_int_equal(store_reserve_id(f->s, &a), 0);
	assert_true(a > d);
	assert_true(mk(f, "after", SNAP_KIND_ACTIVE, NULL) > a);
}

/*
 * A writer killed mid-transaction (SIGKILL: no cleanup runs). What it
 * committed survives, what it had not committed is gone, and the writer
 * lock it died holding does not block the next writer: once when the store
 * is reopened (a restart), once while this process keeps it open (LMDB's
 * robust mutex hands the lock on).
 */
static void crash_child(const char *dir, const char *durable, const char *lost)
{
	struct store *s = NULL;
	struct store_txn *t = NULL;

	if (store_open(dir, NULL, &s, NULL, 0) < 0 || store_txn_begin(s, true, &t) < 0 ||
	    store_create(t, durable, SNAP_KIND_ACTIVE, NULL, NULL, 0, NULL) < 0 ||
	    store_txn_commit(t) < 0)
		_exit(1);
	store_txn_free(t);
	if (store_txn_begin(s, true, &t) < 0 ||
	    store_create(t, lost, SNAP_KIND_ACTIVE, NULL, NULL, 0, NULL) < 0 ||
	    store_remove(t, durable, NULL, NULL) < 0)
		_exit(1);
	raise(SIGKILL);
	_exit(2);
}

static void run_crash(struct fx *f, const char *durable, const char *lost)
{
	int status = 0;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		crash_child(f->dir, durable, lost);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
}

static void test_crash(void **state)
{
	struct fx *f = *state;
	struct snap_info i = {};
	uint64_t before;

	before = mk(f, "first", SNAP_KIND_ACTIVE, NULL);

	/* restart: nothing else has the store open while the child runs */
	f->s = store_close(f->s);
	run_crash(f, "durable1", "lost1");
	open_store(f);
	assert_int_equal(get1(f, "durable1", &i), 0);
	assert_true(i.id > before);
	snap_info_free(&i);
	assert_int_equal(get1(f, "lost1", NULL), -ENOENT);
	assert_true(mk(f, "after1", SNAP_KIND_ACTIVE, NULL) > before);

	/* this process keeps its store open across the child's crash */
	run_crash(f, "durable2", "lost2");
	assert_int_equal(get1(f, "durable2", NULL), 0);
	assert_int_equal(get1(f, "lost2", NULL), -ENOENT);
	mk(f, "after2", SNAP_KIND_ACTIVE, NULL);
	assert_int_equal(get1(f, "after2", NULL), 0);
	assert_int_equal(get1(f, "durable2", NULL), 0);
}

/* deferred_sync (MDB_NOMETASYNC): a commit is visible at once, store_sync
 * makes it durable, and consecutive commits build on each other as usual
 * (each one's data sync also covers the meta page before it). */
static void test_deferred_sync(void **state)
{
	struct fx *f = *state;
	struct store_options o = { .deferred_sync = true };
	char err[256] = "";
	struct store_txn *t;

	f->s = store_close(f->s);
	assert_int_equal(store_open(f->dir, &o, &f->s, err, sizeof(err)), 0);
	for (int k = 0; k < 50; k++) {
		char key[16];
		snprintf(key, sizeof(key), "d%d", k);
		t = begin(f, true);
		assert_int_equal(store_create(t, key, SNAP_KIND_ACTIVE, NULL, NULL, 0, NULL), 0);
		commit_txn(t);
		/* visible before any sync */
		assert_int_equal(get1(f, key, NULL), 0);
		if (k % 10 == 9)
			assert_int_equal(store_sync(f->s), 0);
	}
	assert_int_equal(store_sync(NULL), -EINVAL);
	/* the last commits were not synced: closing syncs them, and the
	 * store opened again (without the option) sees them all */
	reopen(f);
	for (int k = 0; k < 50; k++) {
		char key[16];
		snprintf(key, sizeof(key), "d%d", k);
		assert_int_equal(get1(f, key, NULL), 0);
	}
}

/* ---- labels ---- */

static void test_update_mask(void **state)
{
	struct fx *f = *state;
	struct snap_label init[] = { { "a", "1" }, { "b", "2" }, { "c", "3" } };
	struct snap_label upd[] = { { "a", "10" }, { "d", "4" }, { "e", "" } };
	struct snap_info in = { .key = "s" }, i = {}, orig = {};
	struct store_txn *t;

	t = begin(f, true);
	assert_int_equal(store_create(t, "s", SNAP_KIND_ACTIVE, NULL, init, 3, &orig), 0);
	commit_txn(t);
	usleep(2000);

	/* set a, delete b (absent from info), add d, delete e (empty), keep c */
	{
		const char *mask[] = { "labels.a", "labels.b", "labels.d", "labels.e",
				       "labels.zz" };

		in.labels = upd;
		in.n_labels = 3;
		t = begin(f, true);
		assert_int_equal(store_update(t, &in, mask, 5, &i), 0);
		commit_txn(t);
		assert_int_equal(i.n_labels, 3);
		assert_string_equal(label(&i, "a"), "10");
		assert_null(label(&i, "b"));
		assert_string_equal(label(&i, "c"), "3");
		assert_string_equal(label(&i, "d"), "4");
		assert_null(label(&i, "e"));
		/* only labels and updated change */
		assert_int_equal(i.id, orig.id);
		assert_int_equal(i.kind, SNAP_KIND_ACTIVE);
		assert_int_equal(i.created_ns, orig.created_ns);
		assert_true(i.updated_ns > orig.updated_ns);
		assert_string_equal(i.labels[0].key, "a"); /* sorted */
		assert_string_equal(i.labels[2].key, "d");
		snap_info_free(&i);
		assert_int_equal(get1(f, "s", &i), 0);
		assert_int_equal(i.n_labels, 3);
		assert_string_equal(label(&i, "d"), "4");
		snap_info_free(&i);
	}
	/* "labels" replaces all */
	{
		const char *mask[] = { "labels" };
		struct snap_label x[] = { { "x", "1" } };

		in.labels = x;
		in.n_labels = 1;
		t = begin(f, true);
		assert_int_equal(store_update(t, &in, mask, 1, &i), 0);
		commit_txn(t);
		assert_int_equal(i.n_labels, 1);
		assert_string_equal(label(&i, "x"), "1");
		snap_info_free(&i);
	}
	/* in order: "labels" then "labels.x" (absent) deletes x again */
	{
		const char *mask[] = { "labels", "labels.y" };
		struct snap_label x[] = { { "y", "2" }, { "w", "3" } };

		in.labels = x;
		in.n_labels = 2;
		t = begin(f, true);
		assert_int_equal(store_update(t, &in, mask, 2, &i), 0);
		commit_txn(t);
		assert_int_equal(i.n_labels, 2);
		assert_string_equal(label(&i, "y"), "2");
		assert_string_equal(label(&i, "w"), "3");
		snap_info_free(&i);
	}
	/* empty mask replaces all, with nothing too */
	{
		struct snap_label x[] = { { "only", "1" } };

		in.labels = x;
		in.n_labels = 1;
		t = begin(f, true);
		assert_int_equal(store_update(t, &in, NULL, 0, &i), 0);
		assert_int_equal(i.n_labels, 1);
		assert_string_equal(label(&i, "only"), "1");
		snap_info_free(&i);
		in.labels = NULL;
		in.n_labels = 0;
		assert_int_equal(store_update(t, &in, NULL, 0, &i), 0);
		assert_int_equal(i.n_labels, 0);
		assert_null(i.labels);
		snap_info_free(&i);
		commit_txn(t);
	}
	/* anything else is refused and changes nothing */
	{
		static const char *const bad[][2] = {
			{ "labels.a", "name" },
			{ "parent" },
			{ "kind" },
			{ "labelsx" },
			{ "labels_" },
			{ "Labels.a" },
			{ "" },
			{ "labels.a", "created_at" },
		};
		struct snap_label x[] = { { "a", "1" } };

		in.labels = x;
		in.n_labels = 1;
		t = begin(f, true);
		for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
			assert_int_equal(store_update(t, &in, bad[k], bad[k][1] ? 2 : 1, &i),
					 -EINVAL);
			assert_null(i.key);
		}
		{
			const char *m[] = { NULL };

			assert_int_equal(store_update(t, &in, m, 1, NULL), -EINVAL);
		}
		assert_non_null(strstr(store_txn_errmsg(t), "cannot update"));
		in.key = "missing";
		assert_int_equal(store_update(t, &in, NULL, 0, NULL), -ENOENT);
		in.key = "s";
		commit_txn(t);
		assert_int_equal(get1(f, "s", &i), 0);
		assert_int_equal(i.n_labels, 0);
		snap_info_free(&i);
	}
	snap_info_free(&orig);
}

static void test_labels(void **state)
{
	struct fx *f = *state;
	struct snap_info i = {}, in = { .key = "s" };
	struct store_txn *t;
	char *k = malloc(STORE_LABEL_MAX + 2), *v = malloc(STORE_LABEL_MAX + 2);
	struct snap_label big[1];
	struct snap_label *many;
	size_t nmany = 300;

	/* duplicates: the last wins; an empty value is no label */
	{
		struct snap_label l[] = { { "a", "1" }, { "b", "" }, { "a", "3" }, { "c", NULL } };

		t = begin(f, true);
		assert_int_equal(store_create(t, "s", SNAP_KIND_ACTIVE, NULL, l, 4, &i), 0);
		commit_txn(t);
		assert_int_equal(i.n_labels, 1);
		assert_string_equal(label(&i, "a"), "3");
		snap_info_free(&i);
	}
	/* containerd's labels.Validate: key + value ≤ 4096 bytes per label */
	memset(k, 'k', 96);
	k[96] = 0;
	memset(v, 'v', STORE_LABEL_MAX - 96);
	v[STORE_LABEL_MAX - 96] = 0;
	big[0] = (struct snap_label){ k, v };
	t = begin(f, true);
	assert_int_equal(store_create(t, "ok", SNAP_KIND_ACTIVE, NULL, big, 1, &i), 0);
	assert_int_equal(strlen(label(&i, k)), STORE_LABEL_MAX - 96);
	snap_info_free(&i);
	v[STORE_LABEL_MAX - 96] = 'v';
	v[STORE_LABEL_MAX - 95] = 0;
	assert_int_equal(store_create(t, "too-big", SNAP_KIND_ACTIVE, NULL, big, 1, NULL), -EINVAL);
	assert_non_null(strstr(store_txn_errmsg(t), "maximum size"));
	assert_int_equal(store_commit(t, "ok", "layer", NULL, big, 1, NULL), -EINVAL);
	in.labels = big;
	in.n_labels = 1;
	assert_int_equal(store_update(t, &in, NULL, 0, NULL), -EINVAL);
	{
		const char *m[] = { "labels.zzz" }; /* the big label is not in the mask */

		assert_int_equal(store_update(t, &in, m, 1, NULL), 0);
	}
	/* an empty value never counts: deleting a huge key is fine */
	big[0].value = "";
	assert_int_equal(store_create(t, "del", SNAP_KIND_ACTIVE, NULL, big, 1, NULL), 0);
	commit_txn(t);
	assert_int_equal(get1(f, "too-big", NULL), -ENOENT);

	/* the sum may exceed 4096: CRI sends cri.image-layers (up to 4096 by
	 * itself) beside other labels */
	many = calloc(nmany, sizeof(*many));
	for (size_t j = 0; j < nmany; j++) {
		char *kk = malloc(32);

		snprintf(kk, 32, "containerd.io/snapshot/l%03zu", j);
		many[j].key = kk;
		many[j].value = k; /* 96 bytes */
	}
	many[0].value = v;
	v[STORE_LABEL_MAX - 96] = 0;
	v[4000] = 0;
	t = begin(f, true);
	assert_int_equal(store_create(t, "cri", SNAP_KIND_ACTIVE, NULL, many, 20, &i), 0);
	assert_int_equal(i.n_labels, 20);
	snap_info_free(&i);
	/* our own cap on the whole set: 300 × 4000 bytes > 1 MiB */
	for (size_t j = 0; j < nmany; j++)
		many[j].value = v;
	assert_int_equal(store_create(t, "huge", SNAP_KIND_ACTIVE, NULL, many, nmany, NULL),
			 -EINVAL);
	assert_int_equal(store_create(t, "large", SNAP_KIND_ACTIVE, NULL, many, 250, &i), 0);
	assert_int_equal(i.n_labels, 250);
	snap_info_free(&i);
	commit_txn(t);
	assert_int_equal(get1(f, "large", &i), 0);
	assert_int_equal(i.n_labels, 250);
	assert_int_equal(strlen(label(&i, "containerd.io/snapshot/l249")), 4000);
	snap_info_free(&i);

	for (size_t j = 0; j < nmany; j++)
		free(many[j].key);
	free(many);
	free(k);
	free(v);
}

/* ---- walks ---- */

struct collect {
	char keys[64][32];
	size_t n;
	int stop_at;
};

static int collect_fn(const struct snap_info *i, void *ud)
{
	struct collect *c = ud;

	if (c->n == 64)
		return -E2BIG;
	snprintf(c->keys[c->n++], 32, "%s", i->key);
	if (c->stop_at && (int)c->n == c->stop_at)
		return 7;
	return 0;
}

static int fail_fn(const struct snap_info *i, void *ud)
{
	return -ECANCELED;
}

static void test_walk_children(void **state)
{
	struct fx *f = *state;
	const char *order[] = { "m", "b", "z", "a", "y", "c" };
	struct collect c = {};
	struct store_txn *t;
	struct snap_info i = {};

	for (size_t j = 0; j < 6; j++)
		mk(f, order[j], SNAP_KIND_ACTIVE, NULL);
	mk_commit(f, "m", "parent");
	mk(f, "kid2", SNAP_KIND_VIEW, "parent");
	mk(f, "kid1", SNAP_KIND_ACTIVE, "parent");
	mk_commit(f, "z", "other");
	mk(f, "kid3", SNAP_KIND_ACTIVE, "other");

	t = begin(f, false);
	assert_int_equal(store_walk(t, collect_fn, &c), 0);
	assert_int_equal(c.n, 9);
	for (size_t j = 1; j < c.n; j++)
		assert_true(strcmp(c.keys[j - 1], c.keys[j]) < 0);
	assert_string_equal(c.keys[0], "a");
	assert_string_equal(c.keys[8], "y");

	/* a positive return stops early and comes back */
	memset(&c, 0, sizeof(c));
	c.stop_at = 3;
	assert_int_equal(store_walk(t, collect_fn, &c), 7);
	assert_int_equal(c.n, 3);
	assert_int_equal(store_walk(t, fail_fn, NULL), -ECANCELED);

	/* children in creation (id) order */
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_children(t, "parent", collect_fn, &c), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.keys[0], "kid2");
	assert_string_equal(c.keys[1], "kid1");
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_children(t, "other", collect_fn, &c), 0);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.keys[0], "kid3");
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_children(t, "a", collect_fn, &c), 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(store_children(t, "missing", collect_fn, &c), -ENOENT);
	store_txn_free(t);

	/* an empty store walks nothing */
	t = begin(f, true);
	for (const char *const *k = (const char *const[]){ "kid1", "kid2", "kid3", "parent",
							   "other", "a", "b", "c", "y", NULL };
	     *k; k++)
		assert_int_equal(store_remove(t, *k, NULL, NULL), 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_walk(t, collect_fn, &c), 0);
	assert_int_equal(c.n, 0);
	commit_txn(t);

	/* snap_info_dup keeps a record past the walk */
	mk(f, "dup", SNAP_KIND_ACTIVE, NULL);
	{
		struct snap_label l[] = { { "k", "v" } };
		struct snap_info d = {};

		t = begin(f, true);
		assert_int_equal(
			store_update(
				t, &(struct snap_info){ .key = "dup", .labels = l, .n_labels = 1 },
				NULL, 0, &i),
			0);
		commit_txn(t);
		assert_int_equal(snap_info_dup(&i, &d), 0);
		snap_info_free(&i);
		assert_string_equal(d.key, "dup");
		assert_string_equal(d.parent, "");
		assert_string_equal(label(&d, "k"), "v");
		snap_info_free(&d);
	}
}

/* ---- scale ---- */

static int count_fn(const struct snap_info *i, void *ud)
{
	(*(size_t *)ud)++;
	return 0;
}

static void test_scale(void **state)
{
	struct fx *f = *state;
	enum {
		N = 10000,
		M = 200
	};
	struct snap_label l[] = { { "containerd.io/snapshot.ref", "sha256:0123456789abcdef" } };
	struct store_txn *t;
	char key[160], path[300];
	struct stat st;
	double t0, t1, t2, t3, t4;
	size_t n = 0;
	struct store_ids ids = {};

	t0 = mono();
	t = begin(f, true);
	for (int j = 0; j < N; j++) {
		snprintf(key, sizeof(key), "default/%d/extract-%08x sha256:%064x", j,
			 j * 2654435761u, j);
		assert_int_equal(store_create(t, key, SNAP_KIND_ACTIVE, NULL, l, 1, NULL), 0);
	}
	commit_txn(t);
	t1 = mono();

	t = begin(f, false);
	assert_int_equal(store_walk(t, count_fn, &n), 0);
	t2 = mono();
	assert_int_equal(n, N);
	for (int j = 0; j < N; j++) {
		int x = (int)((j * 7919u) % N);

		snprintf(key, sizeof(key), "default/%d/extract-%08x sha256:%064x", x,
			 x * 2654435761u, x);
		assert_int_equal(store_get(t, key, NULL), 0);
	}
	t3 = mono();
	assert_int_equal(store_ids(t, &ids), 0);
	assert_int_equal(ids.n, N);
	store_ids_free(&ids);
	store_txn_free(t);

	/* one durable transaction each, as Prepare does */
	t4 = mono();
	for (int j = 0; j < M; j++) {
		snprintf(key, sizeof(key), "default/x/extract-%d", j);
		mk(f, key, SNAP_KIND_ACTIVE, NULL);
	}
	t4 = mono() - t4;

	snprintf(path, sizeof(path), "%s/%s", f->dir, STORE_DB_NAME);
	assert_int_equal(stat(path, &st), 0);
	print_message("[ scale    ] %d creates in one txn + commit: %.1f ms (%.1f us each)\n", N,
		      (t1 - t0) * 1e3, (t1 - t0) * 1e6 / N);
	print_message("[ scale    ] walk of %d: %.1f ms; %d random gets: %.1f ms (%.2f us each)\n",
		      N, (t2 - t1) * 1e3, N, (t3 - t2) * 1e3, (t3 - t2) * 1e6 / N);
	print_message("[ scale    ] %d creates, one synced txn each: %.1f ms (%.2f ms each)\n", M,
		      t4 * 1e3, t4 * 1e3 / M);
	print_message("[ scale    ] metadata.db: %lld bytes (%lld allocated) for %d records\n",
		      (long long)st.st_size, (long long)st.st_blocks * 512, N + M);
	/* generous: tens of ms on this machine */
	assert_true(t1 - t0 < 10.0);
	assert_true(t2 - t1 < 5.0);
}

/* ---- concurrency ---- */

struct conc {
	struct store *s;
	atomic_bool done;
	atomic_int errors;
	atomic_int rounds;
	char msg[256];
	pthread_mutex_t lock;
};

struct scan {
	struct store_txn *t;
	size_t total, nv, nc, na;
	int bad;
};

static int scan_fn(const struct snap_info *i, void *ud)
{
	struct scan *s = ud;
	struct snap_info p = {};

	s->total++;
	if (!strncmp(i->key, "v/", 2))
		s->nv++;
	else if (!strncmp(i->key, "c/", 2))
		s->nc++;
	else if (!strncmp(i->key, "a/", 2))
		s->na++;
	if (*i->parent) {
		if (store_get(s->t, i->parent, &p) < 0 || p.kind != SNAP_KIND_COMMITTED ||
		    p.id != i->parent_id)
			s->bad++;
		snap_info_free(&p);
	}
	return 0;
}

static void conc_fail(struct conc *c, const char *what, int r)
{
	pthread_mutex_lock(&c->lock);
	if (!c->msg[0])
		snprintf(c->msg, sizeof(c->msg), "%s: %d", what, r);
	pthread_mutex_unlock(&c->lock);
	atomic_fetch_add(&c->errors, 1);
}

static void *reader(void *ud)
{
	struct conc *c = ud;

	while (!atomic_load(&c->done)) {
		struct scan s = {};
		struct store_ids ids = {};
		int r;

		r = store_txn_begin(c->s, false, &s.t);
		if (r < 0) {
			conc_fail(c, "begin", r);
			break;
		}
		r = store_walk(s.t, scan_fn, &s);
		if (r < 0)
			conc_fail(c, "walk", r);
		r = store_ids(s.t, &ids);
		if (r < 0)
			conc_fail(c, "ids", r);
		/* each writer round is atomic: one view, no active left over,
		 * every parent committed, the id index matches the records */
		if (s.na || s.bad || s.nv != (s.nc ? 1u : 0u) || ids.n != s.total)
			conc_fail(c, "inconsistent snapshot", (int)s.total);
		store_ids_free(&ids);
		store_txn_free(s.t);
		atomic_fetch_add(&c->rounds, 1);
	}
	return NULL;
}

/* a read transaction begun on one thread, used and ended on another (MDB_NOTLS) */
static void *finish_read(void *ud)
{
	struct store_txn *t = ud;
	size_t n = 0;
	intptr_t r = store_walk(t, count_fn, &n);

	store_txn_free(t);
	return (void *)(r < 0 ? r : (intptr_t)n);
}

static void test_concurrent_readers(void **state)
{
	struct fx *f = *state;
	enum {
		READERS = 3,
		ROUNDS = 150
	};
	struct conc c = { .s = f->s, .lock = PTHREAD_MUTEX_INITIALIZER };
	pthread_t th[READERS];
	char a[32], cn[32], prev[32], v[32], pv[32];
	double t0;
	int wr = 0;

	for (int j = 0; j < READERS; j++)
		assert_int_equal(pthread_create(&th[j], NULL, reader, &c), 0);
	t0 = mono();
	for (int j = 0; j < ROUNDS; j++) {
		struct store_txn *t = begin(f, true);

		snprintf(a, sizeof(a), "a/%d", j);
		snprintf(cn, sizeof(cn), "c/%d", j);
		snprintf(prev, sizeof(prev), "c/%d", j - 1);
		snprintf(v, sizeof(v), "v/%d", j);
		snprintf(pv, sizeof(pv), "v/%d", j - 1);
		if ((wr = store_create(t, a, SNAP_KIND_ACTIVE, j ? prev : NULL, NULL, 0, NULL)) <
			    0 ||
		    (wr = store_commit(t, a, cn, NULL, NULL, 0, NULL)) < 0 ||
		    (wr = store_create(t, v, SNAP_KIND_VIEW, cn, NULL, 0, NULL)) < 0 ||
		    (j && (wr = store_remove(t, pv, NULL, NULL)) < 0))
			break;
		wr = store_txn_commit(t);
		store_txn_free(t);
		if (wr < 0)
			break;
	}
	t0 = mono() - t0;
	atomic_store(&c.done, true);
	for (int j = 0; j < READERS; j++)
		pthread_join(th[j], NULL);
	assert_int_equal(wr, 0);
	if (atomic_load(&c.errors))
		fail_msg("%d reader errors, first: %s", atomic_load(&c.errors), c.msg);
	print_message(
		"[ conc     ] %d write txns in %.1f ms beside %d readers (%d read snapshots)\n",
		ROUNDS, t0 * 1e3, READERS, atomic_load(&c.rounds));
	assert_true(atomic_load(&c.rounds) >= READERS);

	{
		struct store_txn *t = begin(f, false);
		pthread_t x;
		void *ret;

		assert_int_equal(pthread_create(&x, NULL, finish_read, t), 0);
		pthread_join(x, &ret);
		assert_int_equal((intptr_t)ret, ROUNDS + 1);
	}
}

/* ---- damage ---- */

struct raw {
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
};

static void raw_open(struct fx *f, const char *db, struct raw *r)
{
	char path[300];

	/* LMDB forbids opening one env twice in a process: close ours first */
	f->s = store_close(f->s);
	snprintf(path, sizeof(path), "%s/%s", f->dir, STORE_DB_NAME);
	assert_int_equal(mdb_env_create(&r->env), 0);
	assert_int_equal(mdb_env_set_maxdbs(r->env, 4), 0);
	assert_int_equal(mdb_env_open(r->env, path, MDB_NOSUBDIR, 0600), 0);
	assert_int_equal(mdb_txn_begin(r->env, NULL, 0, &r->txn), 0);
	assert_int_equal(mdb_dbi_open(r->txn, db, 0, &r->dbi), 0);
}

static void raw_close(struct fx *f, struct raw *r, bool reopen_store)
{
	assert_int_equal(mdb_txn_commit(r->txn), 0);
	mdb_env_close(r->env);
	if (reopen_store)
		open_store(f);
}

static void raw_put(struct raw *r, const void *k, size_t kl, const void *v, size_t vl)
{
	MDB_val key = { kl, (void *)k }, val = { vl, (void *)v };

	assert_int_equal(mdb_put(r->txn, r->dbi, &key, &val, 0), 0);
}

static void *raw_get(struct raw *r, const char *k, size_t *len)
{
	MDB_val key = { strlen(k), (void *)k }, val;
	void *p;

	assert_int_equal(mdb_get(r->txn, r->dbi, &key, &val), 0);
	p = malloc(val.mv_size);
	memcpy(p, val.mv_data, val.mv_size);
	*len = val.mv_size;
	return p;
}

static void fix_crc(uint8_t *b, size_t len)
{
	uint32_t c = ~el_crc32c_update(~0u, b, len - 4);

	b[len - 4] = (uint8_t)c;
	b[len - 3] = (uint8_t)(c >> 8);
	b[len - 2] = (uint8_t)(c >> 16);
	b[len - 1] = (uint8_t)(c >> 24);
}

static void test_corrupt_records(void **state)
{
	struct fx *f = *state;
	struct snap_label l[] = { { "x", "1" } };
	struct store_txn *t;
	struct raw r;
	struct snap_info i = {};
	struct store_ids ids = {};
	uint64_t id1, id2;
	uint8_t *rec;
	size_t len;
	struct collect c = {};

	id1 = mk(f, "k1", SNAP_KIND_ACTIVE, NULL);
	t = begin(f, true);
	assert_int_equal(store_create(t, "k2", SNAP_KIND_ACTIVE, NULL, l, 1, &i), 0);
	id2 = i.id;
	snap_info_free(&i);
	commit_txn(t);

	/* plain garbage */
	raw_open(f, "snapshots", &r);
	raw_put(&r, "k1", 2, "hello", 5);
	raw_close(f, &r, true);
	t = begin(f, false);
	assert_int_equal(store_get(t, "k1", &i), -EUCLEAN);
	assert_null(i.key);
	assert_non_null(strstr(store_txn_errmsg(t), "damaged record"));
	assert_int_equal(store_get_by_id(t, id1, &i), -EUCLEAN);
	assert_int_equal(store_walk(t, collect_fn, &c), -EUCLEAN);
	/* others still read, and the damaged one's id stays live for Cleanup */
	assert_int_equal(store_get(t, "k2", &i), 0);
	snap_info_free(&i);
	assert_int_equal(store_ids(t, &ids), 0);
	assert_true(store_ids_has(&ids, id1));
	store_ids_free(&ids);
	store_txn_free(t);
	t = begin(f, true);
	assert_int_equal(store_remove(t, "k1", NULL, NULL), -EUCLEAN);
	assert_int_equal(store_commit(t, "k1", "n", NULL, NULL, 0, NULL), -EUCLEAN);
	assert_int_equal(store_create(t, "v", SNAP_KIND_VIEW, "k1", NULL, 0, NULL), -EUCLEAN);
	store_txn_free(t);

	/* a well-formed record filed under another key */
	raw_open(f, "snapshots", &r);
	rec = raw_get(&r, "k2", &len);
	raw_put(&r, "k1", 2, rec, len);
	raw_close(f, &r, true);
	t = begin(f, false);
	assert_int_equal(store_get(t, "k1", &i), -EUCLEAN);
	assert_non_null(strstr(store_txn_errmsg(t), "holds"));
	store_txn_free(t);

	/* a flipped bit with no structural effect: the checksum catches it */
	raw_open(f, "snapshots", &r);
	rec[24] ^= 1; /* created */
	raw_put(&r, "k2", 2, rec, len);
	raw_close(f, &r, true);
	t = begin(f, false);
	assert_int_equal(store_get(t, "k2", &i), -EUCLEAN);
	assert_non_null(strstr(store_txn_errmsg(t), "checksum"));
	store_txn_free(t);

	/* a correct checksum over a lying length */
	raw_open(f, "snapshots", &r);
	rec[24] ^= 1;
	rec[56] = 0xff; /* key_len */
	fix_crc(rec, len);
	raw_put(&r, "k2", 2, rec, len);
	raw_close(f, &r, true);
	t = begin(f, false);
	assert_int_equal(store_get(t, "k2", &i), -EUCLEAN);
	assert_non_null(strstr(store_txn_errmsg(t), "overrun"));
	assert_int_equal(store_get_by_id(t, id2, &i), -EUCLEAN);
	store_txn_free(t);
	free(rec);

	/* damaged indexes */
	raw_open(f, "ids", &r);
	raw_put(&r, "abc", 3, "k2", 2);
	raw_close(f, &r, true);
	t = begin(f, false);
	assert_int_equal(store_ids(t, &ids), -EUCLEAN);
	assert_null(ids.v);
	store_txn_free(t);

	/* a damaged counter: refused at open, before any id could repeat */
	raw_open(f, "meta", &r);
	raw_put(&r, "next_id", 7, "abc", 3);
	raw_close(f, &r, false);
	{
		char err[256] = "";

		assert_int_equal(store_open(f->dir, NULL, &f->s, err, sizeof(err)), -EUCLEAN);
		assert_non_null(strstr(err, "next_id"));
		assert_null(f->s);
	}

	/* a newer format is refused, not misread */
	raw_open(f, "meta", &r);
	raw_put(&r, "version", 7, "\x63\0\0\0", 4);
	raw_close(f, &r, false);
	{
		char err[256] = "";

		assert_int_equal(store_open(f->dir, NULL, &f->s, err, sizeof(err)),
				 -EPROTONOSUPPORT);
		assert_non_null(strstr(err, "version 99"));
		assert_null(f->s);
	}

	/* records without a version: meta was lost, do not restart the counter */
	raw_open(f, "meta", &r);
	{
		MDB_val k = { 7, "version" };

		assert_int_equal(mdb_del(r.txn, r.dbi, &k, NULL), 0);
	}
	raw_close(f, &r, false);
	{
		char err[256] = "";

		assert_int_equal(store_open(f->dir, NULL, &f->s, err, sizeof(err)), -EUCLEAN);
		assert_non_null(strstr(err, "no format version"));
	}
}

static void test_not_lmdb(void **state)
{
	struct fx *f = *state;
	char path[300], err[256] = "";
	struct store *s = NULL;
	uint8_t junk[8192];
	FILE *fp;

	f->s = store_close(f->s);
	snprintf(path, sizeof(path), "%s/%s", f->dir, STORE_DB_NAME);
	unlink(path);
	memset(junk, 0xab, sizeof(junk));
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(junk, 1, sizeof(junk), fp), sizeof(junk));
	fclose(fp);
	assert_int_equal(store_open(f->dir, NULL, &s, err, sizeof(err)), -EUCLEAN);
	assert_null(s);
	assert_true(err[0]);
	assert_int_equal(store_open("/nonexistent/dir", NULL, &s, err, sizeof(err)), -ENOENT);
	unlink(path);
	open_store(f);
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t xs(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Mutated records, checksums fixed so the structural checks are what
 * decides: never a crash or an overread (run under ASan), only 0 or
 * -EUCLEAN, and what decodes is self-consistent. */
static void test_decode_mutations(void **state)
{
	struct fx *f = *state;
	struct snap_label l[] = { { "a", "1" }, { "bb", "22" }, { "ccc", "333" } };
	struct store_txn *t;
	struct raw r;
	uint8_t *rec, m[512];
	size_t len;
	char err[256];
	struct snap_info i = {};
	unsigned ok = 0, bad = 0;

	mk(f, "p-a", SNAP_KIND_ACTIVE, NULL);
	mk_commit(f, "p-a", "parent");
	t = begin(f, true);
	assert_int_equal(store_create(t, "key", SNAP_KIND_VIEW, "parent", l, 3, NULL), 0);
	commit_txn(t);
	raw_open(f, "snapshots", &r);
	rec = raw_get(&r, "key", &len);
	raw_close(f, &r, true);

	assert_int_equal(store_record_decode(rec, len, &i, err, sizeof(err)), 0);
	assert_string_equal(i.key, "key");
	assert_string_equal(i.parent, "parent");
	assert_int_equal(i.n_labels, 3);
	snap_info_free(&i);
	assert_int_equal(store_record_decode(NULL, 0, &i, err, sizeof(err)), -EUCLEAN);

	assert_true(len > 96 && len <= sizeof(m)); /* the offsets below assume this record */
	/* every truncation, with and without a fixed checksum */
	for (size_t n = 0; n < len; n++) {
		memcpy(m, rec, n);
		assert_int_equal(store_record_decode(m, n, &i, err, sizeof(err)), -EUCLEAN);
		if (n >= 4) {
			fix_crc(m, n);
			assert_int_equal(store_record_decode(m, n, &i, NULL, 0), -EUCLEAN);
		}
	}
	/* every single bit flip is caught by the checksum */
	for (size_t n = 0; n < len * 8; n++) {
		memcpy(m, rec, len);
		m[n / 8] ^= (uint8_t)(1u << (n % 8));
		assert_int_equal(store_record_decode(m, len, NULL, err, sizeof(err)), -EUCLEAN);
	}
	/* random byte changes past the checksum */
	for (int n = 0; n < 200000; n++) {
		int changes = 1 + (int)(xs() % 3);

		memcpy(m, rec, len);
		for (int j = 0; j < changes; j++) {
			size_t at = xs() % (len - 4);
			uint64_t x = xs();

			m[at] = (x & 0x300) == 0x300 ? 0xff : (x & 0x300) == 0x200 ? 0 : (uint8_t)x;
		}
		fix_crc(m, len);
		if (store_record_decode(m, len, &i, err, sizeof(err)) == 0) {
			size_t tot = 0;

			assert_true(i.kind >= SNAP_KIND_VIEW && i.kind <= SNAP_KIND_COMMITTED);
			assert_true(i.parent_id != i.id); /* a rebased layer may have the older id */
			assert_true(strlen(i.key) > 0);
			for (size_t j = 0; j < i.n_labels; j++) {
				tot += strlen(i.labels[j].key) + strlen(i.labels[j].value);
				assert_true(i.labels[j].value[0]);
				if (j)
					assert_true(strcmp(i.labels[j - 1].key, i.labels[j].key) <
						    0);
			}
			assert_true(tot <= len);
			snap_info_free(&i);
			ok++;
		} else {
			assert_null(i.key);
			bad++;
		}
	}
	/* lengths that would wrap a 32-bit sum */
	{
		static const size_t off[] = { 56, 60, 64 };

		for (size_t j = 0; j < 3; j++) {
			memcpy(m, rec, len);
			memset(m + off[j], 0xff, 4);
			fix_crc(m, len);
			assert_int_equal(store_record_decode(m, len, &i, err, sizeof(err)),
					 -EUCLEAN);
		}
		/* first label's klen (after key "key" and parent "parent") */
		memcpy(m, rec, len);
		memset(m + 68 + 3 + 6, 0xff, 4);
		fix_crc(m, len);
		assert_int_equal(store_record_decode(m, len, &i, err, sizeof(err)), -EUCLEAN);
		/* vlen */
		memcpy(m, rec, len);
		memset(m + 68 + 3 + 6 + 4, 0xff, 4);
		fix_crc(m, len);
		assert_int_equal(store_record_decode(m, len, &i, err, sizeof(err)), -EUCLEAN);
	}
	/* bytes past the last label */
	{
		uint8_t *longer = malloc(len + 1);

		memcpy(longer, rec, len - 4);
		longer[len - 4] = 'x';
		fix_crc(longer, len + 1);
		assert_int_equal(store_record_decode(longer, len + 1, &i, err, sizeof(err)),
				 -EUCLEAN);
		assert_non_null(strstr(err, "trailing"));
		free(longer);
	}
	print_message("[ mutate   ] 200000 mutated records: %u decoded, %u refused\n", ok, bad);
	assert_true(bad > 0);
	free(rec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parent_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_poisoned_txn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nested, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nested_poisoned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reserved_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deferred_sync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_mask, setup, teardown),
		cmocka_unit_test_setup_teardown(test_labels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_walk_children, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scale, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_readers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_lmdb, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decode_mutations, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
