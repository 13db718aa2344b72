/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The snapshot state machine (containerd's snapshotter contract) on our
 * store and storage layout.
 *
 * Ordering, so that a crash never leaves metadata pointing at a missing file:
 *  - Prepare/View: the record is created in a write transaction, the
 *    directory is made (atomically) before that transaction commits; a crash
 *    in between leaves a directory no record owns, which sn_open sweeps.
 *  - Commit: layer.erofs (and, for chains, fsmeta.erofs and merged.vmdk) are
 *    published first, the record changes kind last.
 *  - Remove: the record goes first, the directory after; what remains of the
 *    directory is swept by Cleanup or the next start.
 */
#include "snapshotter.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "erofs-layer/dirconv.h"
#include "erofs-layer/image.h"
#include "erofs-layer/merge.h"
#include "ext4.h"
#include "layout.h"
#include "log.h"
#include "shared/macro.h"

/* a marker beside a chain's top layer: merging it failed for good, so the
 * chain keeps its per-layer mounts (which must never change later) */
#define NOMERGE_MARKER ".nomerge"

struct snapshotter {
	struct sn_config cfg;
	int lock_fd; /* flock on <root>/lock: one daemon per root */
	struct layout layout;
	struct store *store;
	/* conversions and merges: one at a time, so that two calls for the
	 * same snapshot never write the same files */
	pthread_mutex_t convert_lock;
};


static int fail(struct el_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct el_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	if (err && !err->code) {
		err->code = code;
		err->offset = EL_NO_OFFSET;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return code;
}

/* store errors as the snapshotter contract names them */
static int store_fail(struct el_error *err, struct store_txn *txn, int r, const char *what,
		      const char *key)
{
	const char *why = txn ? store_txn_errmsg(txn) : "";
	switch (r) {
	case -ENOENT:
		return fail(err, r, "%s: snapshot %s does not exist%s%s", what, key, *why ? ": " : "", why);
	case -EEXIST:
		return fail(err, r, "%s: snapshot %s already exists", what, key);
	default:
		return fail(err, r, "%s %s: %s", what, key, *why ? why : strerror(-r));
	}
}

bool sn_is_extract_key(const char *key)
{
	const char *last = strrchr(key, '/');
	last = last ? last + 1 : key;
	return strncmp(last, "extract-", 8) == 0;
}

void sn_mounts_free(struct sn_mounts *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].type);
		free(m->v[i].source);
		for (size_t j = 0; j < m->v[i].n_options; j++)
			free(m->v[i].options[j]);
		free(m->v[i].options);
	}
	free(m->v);
	*m = (struct sn_mounts){ 0 };
}

/* Appends a mount; the options are a NULL-terminated list of strings that are
 * copied. Takes ownership of source. */
static int mount_add(struct sn_mounts *m, const char *type, char *source, const char *const *opts)
{
	size_t n = 0;
	while (opts[n])
		n++;
	void *p = realloc(m->v, (m->n + 1) * sizeof(*m->v));
	if (!p) {
		free(source);
		return -ENOMEM;
	}
	m->v = p;
	struct sn_mount *mt = &m->v[m->n];
	*mt = (struct sn_mount){ .type = strdup(type), .source = source,
				 .options = calloc(n ? n : 1, sizeof(char *)) };
	m->n++;
	if (!mt->type || !mt->source || !mt->options)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		mt->options[i] = strdup(opts[i]);
		if (!mt->options[i])
			return -ENOMEM;
		mt->n_options++;
	}
	return 0;
}

static int cleanup(struct snapshotter *sn, struct el_error *err);

int sn_open(const struct sn_config *cfg, struct snapshotter **ret, struct el_error *err)
{
	struct snapshotter *sn = calloc(1, sizeof(*sn));
	_cleanup_free_ char *lock = NULL;
	char msg[256] = "";
	int r;

	if (!sn)
		return fail(err, -ENOMEM, "out of memory");
	sn->cfg = *cfg;
	sn->lock_fd = -1;
	sn->layout.snapshots_fd = -1;
	pthread_mutex_init(&sn->convert_lock, NULL);
	r = layout_open(cfg->root, &sn->layout);
	if (r < 0) {
		fail(err, r, "cannot use root %s: %s", cfg->root, strerror(-r));
		goto fail;
	}
	/* the store's id guard and the convert lock live in this process:
	 * a second daemon on the same root would defeat both */
	if (asprintf(&lock, "%s/lock", sn->layout.root) < 0) {
		lock = NULL;
		r = fail(err, -ENOMEM, "out of memory");
		goto fail;
	}
	sn->lock_fd = open(lock, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	if (sn->lock_fd < 0 || flock(sn->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		fail(err, r == -EWOULDBLOCK ? -EBUSY : r, "cannot lock %s: %s", lock,
		     r == -EWOULDBLOCK ? "another instance uses this root" : strerror(-r));
		r = r == -EWOULDBLOCK ? -EBUSY : r;
		goto fail;
	}
	r = store_open(sn->layout.root, NULL, &sn->store, msg, sizeof(msg));
	if (r < 0) {
		fail(err, r, "cannot open %s/%s: %s", sn->layout.root, STORE_DB_NAME,
		     *msg ? msg : strerror(-r));
		goto fail;
	}
	r = cleanup(sn, err);
	if (r < 0)
		goto fail;
	if (r > 0)
		log_info("removed %d leftover snapshot directories", r);
	*ret = sn;
	return 0;
fail:
	sn_close(sn);
	return r;
}

void sn_close(struct snapshotter *sn)
{
	if (!sn)
		return;
	store_closep(&sn->store);
	layout_close(&sn->layout);
	el_closep(&sn->lock_fd);
	pthread_mutex_destroy(&sn->convert_lock);
	free(sn);
}

/* ---- mounts ---- */

static bool file_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* The chain below a snapshot, oldest first: ids of committed ancestors. */
static int chain_ids(struct store_txn *txn, const char *key, uint64_t **ret, size_t *ret_n)
{
	uint64_t *ids;
	size_t n;
	int r = store_parent_ids(txn, key, &ids, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n / 2; i++) {
		uint64_t t = ids[i];
		ids[i] = ids[n - 1 - i];
		ids[n - 1 - i] = t;
	}
	*ret = ids;
	*ret_n = n;
	return 0;
}

/* fsmeta.erofs + merged.vmdk for the chain ids[0..n) in the top's directory.
 * Returns 0 when they exist (or were made), 1 when the chain cannot be
 * merged (per-layer mounts, for good), or -errno. */
static int ensure_fsmeta(struct snapshotter *sn, const uint64_t *ids, size_t n,
			 struct el_error *err)
{
	uint64_t top = ids[n - 1];
	_cleanup_free_ char *fsmeta = layout_path(&sn->layout, top, LAYOUT_FSMETA);
	_cleanup_free_ char *vmdk = layout_path(&sn->layout, top, LAYOUT_VMDK);
	_cleanup_free_ char *nomerge = layout_path(&sn->layout, top, NOMERGE_MARKER);
	char **layers = calloc(n, sizeof(*layers));
	int r = 0;

	if (!fsmeta || !vmdk || !nomerge || !layers) {
		free(layers);
		return fail(err, -ENOMEM, "out of memory");
	}
	/* both files are published atomically: the common case needs no lock */
	if (file_exists(nomerge) || (file_exists(fsmeta) && file_exists(vmdk))) {
		free(layers);
		return file_exists(nomerge) ? 1 : 0;
	}
	pthread_mutex_lock(&sn->convert_lock);
	if (file_exists(nomerge)) {
		r = 1;
		goto out;
	}
	if (file_exists(fsmeta) && file_exists(vmdk))
		goto out;
	for (size_t i = 0; i < n; i++) {
		layers[i] = layout_path(&sn->layout, ids[i], LAYOUT_LAYER);
		if (!layers[i]) {
			r = fail(err, -ENOMEM, "out of memory");
			goto out;
		}
	}
	struct el_error merr;
	struct el_merge_result res;
	el_error_clear(&merr);
	r = el_merge((const char *const *)layers, n, fsmeta, vmdk, NULL, &res, &merr);
	if (r == -EL_EUNMERGEABLE) {
		char buf[700];
		log_warn("chain of %zu layers ending at snapshot %" PRIu64
			 " cannot be merged, using per-layer mounts: %s",
			 n, top, el_error_format(&merr, buf, sizeof(buf)));
		int fd = open(nomerge, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
		if (fd >= 0)
			close(fd);
		r = 1;
	} else if (r < 0) {
		char buf[700];
		r = fail(err, r, "cannot merge the layers under snapshot %" PRIu64 ": %s", top,
			 el_error_format(&merr, buf, sizeof(buf)));
	} else {
		log_debug("merged %zu layers into snapshot %" PRIu64 " (%" PRIu64 " inodes)", n, top,
			  res.inodes);
		if (sn->cfg.set_immutable) {
			layout_set_immutable(&sn->layout, top, LAYOUT_FSMETA, true);
			layout_set_immutable(&sn->layout, top, LAYOUT_VMDK, true);
		}
	}
out:
	pthread_mutex_unlock(&sn->convert_lock);
	for (size_t i = 0; i < n; i++)
		free(layers[i]);
	free(layers);
	return r;
}

/* The read-only lower mounts of a chain (DESIGN §5). */
static int lower_mounts(struct snapshotter *sn, const uint64_t *ids, size_t n,
			struct sn_mounts *m, struct el_error *err)
{
	static const char *const ro_loop[] = { "ro", "loop", NULL };
	int r;

	if (n == 0)
		return 0;
	if (n == 1)
		return mount_add(m, "erofs", layout_path(&sn->layout, ids[0], LAYOUT_LAYER), ro_loop);
	r = ensure_fsmeta(sn, ids, n, err);
	if (r < 0)
		return r;
	if (r == 1) {
		for (size_t i = 0; i < n; i++) {
			r = mount_add(m, "erofs", layout_path(&sn->layout, ids[i], LAYOUT_LAYER), ro_loop);
			if (r < 0)
				return r;
		}
		return 0;
	}
	const char **opts = calloc(n + 3, sizeof(*opts));
	char **devs = calloc(n, sizeof(*devs));
	if (!opts || !devs) {
		free(opts);
		free(devs);
		return -ENOMEM;
	}
	opts[0] = "ro";
	opts[1] = "loop";
	r = 0;
	for (size_t i = 0; i < n && r == 0; i++) {
		_cleanup_free_ char *p = layout_path(&sn->layout, ids[i], LAYOUT_LAYER);
		if (!p || asprintf(&devs[i], "device=%s", p) < 0) {
			devs[i] = NULL;
			r = -ENOMEM;
		}
		opts[2 + i] = devs[i];
	}
	if (r == 0)
		r = mount_add(m, "erofs", layout_path(&sn->layout, ids[n - 1], LAYOUT_FSMETA), opts);
	for (size_t i = 0; i < n; i++)
		free(devs[i]);
	free(devs);
	free(opts);
	return r;
}

static int build_mounts(struct snapshotter *sn, struct store_txn *txn, const struct snap_info *info,
			struct sn_mounts *ret, struct el_error *err)
{
	struct sn_mounts m = { 0 };
	_cleanup_free_ uint64_t *ids = NULL;
	size_t n = 0;
	int r;

	if (info->kind == SNAP_KIND_ACTIVE && sn_is_extract_key(info->key)) {
		_cleanup_free_ char *fs = layout_path(&sn->layout, info->id, "fs");
		_cleanup_free_ char *work = layout_path(&sn->layout, info->id, "work");
		_cleanup_free_ char *lower = layout_path(&sn->layout, info->id, "lower");
		char *o[3] = { 0 };
		if (!fs || !work || !lower || asprintf(&o[0], "upperdir=%s", fs) < 0 ||
		    asprintf(&o[1], "workdir=%s", work) < 0 || asprintf(&o[2], "lowerdir=%s", lower) < 0)
			r = -ENOMEM;
		else
			r = mount_add(&m, "overlay", strdup("overlay"),
				      (const char *const[]){ o[0], o[1], o[2], NULL });
		free(o[0]);
		free(o[1]);
		free(o[2]);
		goto out;
	}
	r = chain_ids(txn, info->key, &ids, &n);
	if (r < 0) {
		store_fail(err, txn, r, "mounts", info->key);
		goto out;
	}
	if (info->kind == SNAP_KIND_COMMITTED) {
		/* containerd never asks, but answer with the chain itself */
		uint64_t *all = realloc(ids, (n + 1) * sizeof(*all));
		if (!all) {
			r = -ENOMEM;
			goto out;
		}
		ids = all;
		ids[n++] = info->id;
	}
	r = lower_mounts(sn, ids, n, &m, err);
	if (r < 0)
		goto out;
	if (info->kind == SNAP_KIND_ACTIVE) {
		r = mount_add(&m, "ext4", layout_path(&sn->layout, info->id, LAYOUT_RWLAYER),
			      (const char *const[]){ "rw", "loop", NULL });
	} else if (info->kind == SNAP_KIND_VIEW && n == 0) {
		r = mount_add(&m, "bind", layout_path(&sn->layout, info->id, "lower"),
			      (const char *const[]){ "ro", "rbind", NULL });
	}
out:
	if (r < 0) {
		sn_mounts_free(&m);
		return err && err->code ? r : fail(err, r, "mounts of %s: %s", info->key, strerror(-r));
	}
	*ret = m;
	return 0;
}

/* ---- operations ---- */

int sn_prepare(struct snapshotter *sn, enum snap_kind kind, const char *key, const char *parent,
	       const struct snap_label *labels, size_t n_labels, struct sn_mounts *ret,
	       struct el_error *err)
{
	_cleanup_(store_txn_freep) struct store_txn *txn = NULL;
	_cleanup_(snap_info_free) struct snap_info info = { 0 };
	const char *what = kind == SNAP_KIND_VIEW ? "view" : "prepare";
	bool extract = kind == SNAP_KIND_ACTIVE && sn_is_extract_key(key);
	bool made = false;
	int r;

	if (!key || !*key)
		return fail(err, -EINVAL, "%s: empty key", what);
	r = store_txn_begin(sn->store, true, &txn);
	if (r < 0)
		return fail(err, r, "%s: cannot start a transaction: %s", what, strerror(-r));
	r = store_create(txn, key, kind, parent, labels, n_labels, &info);
	if (r < 0) {
		/* -EINVAL: a parent that is not committed, or a bad key or label;
		 * containerd calls all of them InvalidArgument */
		if (r == -EINVAL)
			return fail(err, -EINVAL, "%s %s: %s", what, key, store_txn_errmsg(txn));
		if (r == -ENOENT)
			return fail(err, r, "%s %s: parent %s does not exist", what, key, parent);
		return store_fail(err, txn, r, what, key);
	}
	r = layout_create(&sn->layout, info.id, extract,
			  kind == SNAP_KIND_VIEW && info.parent_id == 0);
	if (r < 0) {
		fail(err, r, "%s %s: cannot create its directory: %s", what, key, strerror(-r));
		goto undo;
	}
	made = true;
	if (kind == SNAP_KIND_ACTIVE && !extract) {
		_cleanup_free_ char *dir = layout_path(&sn->layout, info.id, NULL);
		char name[32];
		snprintf(name, sizeof(name), "%" PRIu64, info.id);
		_cleanup_close_ int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
		r = dfd < 0 ? -errno : ext4_create_image(dfd, dir, LAYOUT_RWLAYER, sn->cfg.default_size);
		if (r < 0) {
			fail(err, r, "%s %s: cannot create its writable layer: %s", what, key,
			     strerror(-r));
			goto undo;
		}
	}
	r = store_txn_commit(txn);
	if (r < 0) {
		store_fail(err, txn, r, what, key);
		goto undo;
	}
	store_txn_freep(&txn);

	/* mounts from a read transaction: merging a chain may take a while */
	r = store_txn_begin(sn->store, false, &txn);
	if (r < 0)
		return fail(err, r, "%s: cannot start a transaction: %s", what, strerror(-r));
	return build_mounts(sn, txn, &info, ret, err);
undo:
	store_txn_abort(txn);
	if (made)
		layout_remove(&sn->layout, info.id);
	return r;
}

int sn_mounts(struct snapshotter *sn, const char *key, struct sn_mounts *ret,
	      struct el_error *err)
{
	_cleanup_(store_txn_freep) struct store_txn *txn = NULL;
	_cleanup_(snap_info_free) struct snap_info info = { 0 };
	int r;

	r = store_txn_begin(sn->store, false, &txn);
	if (r < 0)
		return fail(err, r, "mounts: cannot start a transaction: %s", strerror(-r));
	r = store_get(txn, key, &info);
	if (r < 0)
		return store_fail(err, txn, r, "mounts", key);
	return build_mounts(sn, txn, &info, ret, err);
}

int sn_stat(struct snapshotter *sn, const char *key, struct snap_info *ret,
	    struct el_error *err)
{
	_cleanup_(store_txn_freep) struct store_txn *txn = NULL;
	int r = store_txn_begin(sn->store, false, &txn);

	if (r < 0)
		return fail(err, r, "stat: cannot start a transaction: %s", strerror(-r));
	r = store_get(txn, key, ret);
	return r < 0 ? store_fail(err, txn, r, "stat", key) : 0;
}

int sn_update(struct snapshotter *sn, const struct snap_info *info, const char *const *paths,
	      size_t n, struct snap_info *ret, struct el_error *err)
{
	_cleanup_(store_txn_freep) struct store_txn *txn = NULL;
	int r = store_txn_begin(sn->store, true, &txn);

	if (r < 0)
		return fail(err, r, "update: cannot start a transaction: %s", strerror(-r));
	r = store_update(txn, info, paths, n, ret);
	if (r < 0)
		return store_fail(err, txn, r, "update", info->key);
	r = store_txn_commit(txn);
	if (r < 0) {
		snap_info_free(ret);
		return store_fail(err, txn, r, "update", info->key);
	}
	return 0;
}

/* The layer of an extract snapshot: ours (the differ's Apply wrote it), or
 * converted now from what containerd's walking differ put in fs/. */
static int make_layer(struct snapshotter *sn, const struct snap_info *info, uint64_t *ret_size,
		      uint64_t *ret_inodes, struct el_error *err)
{
	_cleanup_free_ char *layer = layout_path(&sn->layout, info->id, LAYOUT_LAYER);
	_cleanup_free_ char *fs = layout_path(&sn->layout, info->id, "fs");
	int r;

	if (!layer || !fs)
		return fail(err, -ENOMEM, "out of memory");
	if (!file_exists(layer)) {
		struct el_dir_opts opts = { .overlay_upper = true };
		struct el_convert_result res;
		struct el_error cerr;
		el_error_clear(&cerr);
		r = el_convert_dir_path(fs, layer, &opts, &res, &cerr);
		if (r < 0) {
			char buf[700];
			return fail(err, r, "commit %s: cannot convert %s: %s", info->key, fs,
				    el_error_format(&cerr, buf, sizeof(buf)));
		}
		log_debug("converted %s: %" PRIu64 " entries, %" PRIu64 " bytes", fs, res.entries,
			  res.image.image_bytes);
	}
	struct el_image *img;
	struct el_error ierr;
	el_error_clear(&ierr);
	r = el_image_open(layer, &img, &ierr);
	if (r < 0) {
		char buf[700];
		return fail(err, r, "commit %s: %s", info->key, el_error_format(&ierr, buf, sizeof(buf)));
	}
	*ret_size = el_image_info(img)->image_size;
	*ret_inodes = el_image_info(img)->inos;
	el_image_close(img);
	return 0;
}

int sn_commit(struct snapshotter *sn, const char *name, const char *key,
	      const struct snap_label *labels, size_t n_labels, struct el_error *err)
{
	_cleanup_(store_txn_freep) struct store_txn *txn = NULL;
	_cleanup_(snap_info_free) struct snap_info info = { 0 };
	_cleanup_free_ uint64_t *ids = NULL;
	uint64_t size = 0, inodes = 0;
	size_t n = 0;
	int r;

	if (!name || !*name)
		return fail(err, -EINVAL, "commit: empty name");
	r = store_txn_begin(sn->store, false, &txn);
	if (r < 0)
		return fail(err, r, "commit: cannot start a transaction: %s", strerror(-r));
	r = store_get(txn, key, &info);
	if (r < 0)
		return store_fail(err, txn, r, "commit", key);
	if (info.kind != SNAP_KIND_ACTIVE)
		return fail(err, -EBUSY, "commit %s: it is a %s snapshot, not an active one", key,
			    snap_kind_to_string(info.kind));
	r = chain_ids(txn, key, &ids, &n);
	if (r < 0)
		return store_fail(err, txn, r, "commit", key);
	store_txn_freep(&txn);

	if (!sn_is_extract_key(key))
		return fail(err, -EOPNOTSUPP,
			    "commit %s: committing a container's writable layer (rwlayer.img) is not implemented yet",
			    key);
	pthread_mutex_lock(&sn->convert_lock);
	r = make_layer(sn, &info, &size, &inodes, err);
	pthread_mutex_unlock(&sn->convert_lock);
	if (r < 0)
		return r;
	if (sn->cfg.set_immutable)
		layout_set_immutable(&sn->layout, info.id, LAYOUT_LAYER, true);
	if (n >= 1) {
		/* the chain ending here gets its fsmeta now: mounts never change */
		uint64_t *all = realloc(ids, (n + 1) * sizeof(*all));
		if (!all)
			return fail(err, -ENOMEM, "out of memory");
		ids = all;
		ids[n++] = info.id;
		r = ensure_fsmeta(sn, ids, n, err);
		if (r < 0)
			return r;
	}

	r = store_txn_begin(sn->store, true, &txn);
	if (r < 0)
		return fail(err, r, "commit: cannot start a transaction: %s", strerror(-r));
	r = store_commit(txn, key, name, labels, n_labels, NULL);
	if (r == -EINVAL) /* the kind was checked above: a bad name or label */
		return fail(err, -EINVAL, "commit %s: %s", key, store_txn_errmsg(txn));
	if (r < 0)
		return store_fail(err, txn, r, "commit", r == -EEXIST ? name : key);
	r = store_set_usage(txn, name, size, inodes);
	if (r == 0)
		r = store_txn_commit(txn);
	if (r < 0)
		return store_fail(err, txn, r, "commit", name);
	/* the extract directories have served their purpose */
	layout_remove_subdir(&sn->layout, info.id, "fs");
	layout_remove_subdir(&sn->layout, info.id, "work");
	return 0;
}

int sn_remove(struct snapshotter *sn, const char *key, struct el_error *err)
{
	_cleanup_(store_txn_freep) struct store_txn *txn = NULL;
	uint64_t id;
	int r;

	r = store_txn_begin(sn->store, true, &txn);
	if (r < 0)
		return fail(err, r, "remove: cannot start a transaction: %s", strerror(-r));
	r = store_remove(txn, key, &id, NULL);
	if (r == -EBUSY)
		return fail(err, -EBUSY, "remove %s: it has children", key);
	if (r < 0)
		return store_fail(err, txn, r, "remove", key);
	r = store_txn_commit(txn);
	if (r < 0)
		return store_fail(err, txn, r, "remove", key);
	r = layout_remove(&sn->layout, id);
	if (r < 0)
		log_warn("remove %s: its directory %" PRIu64 " stays until cleanup: %s", key, id,
			 strerror(-r));
	return 0;
}

/* bytes and inodes under a directory, without following symlinks */
static int dir_usage(int dirfd, uint64_t *size, uint64_t *inodes, unsigned depth)
{
	int dup_fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	struct dirent *de;

	if (!d) {
		if (dup_fd >= 0)
			close(dup_fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		*size += (uint64_t)st.st_blocks * 512;
		*inodes += 1;
		if (S_ISDIR(st.st_mode) && depth < 2048) {
			int fd = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd >= 0) {
				dir_usage(fd, size, inodes, depth + 1);
				close(fd);
			}
		}
	}
	closedir(d);
	return 0;
}

int sn_usage(struct snapshotter *sn, const char *key, uint64_t *ret_size, uint64_t *ret_inodes,
	     struct el_error *err)
{
	_cleanup_(snap_info_free) struct snap_info info = { 0 };
	uint64_t size = 0, inodes = 0;
	int r = sn_stat(sn, key, &info, err);

	if (r < 0)
		return r;
	if (info.kind == SNAP_KIND_COMMITTED) {
		size = info.usage_size;
		inodes = info.usage_inodes;
	} else if (info.kind == SNAP_KIND_ACTIVE) {
		_cleanup_free_ char *dir = layout_path(&sn->layout, info.id, NULL);
		_cleanup_close_ int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
		if (dfd < 0)
			return fail(err, -errno, "usage %s: %s", key, strerror(errno));
		if (sn_is_extract_key(key)) {
			_cleanup_close_ int fs = openat(dfd, "fs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (fs >= 0)
				dir_usage(fs, &size, &inodes, 0);
		} else {
			r = file_allocated_bytes(dfd, LAYOUT_RWLAYER, &size);
			if (r < 0)
				return fail(err, r, "usage %s: %s", key, strerror(-r));
			inodes = 1;
		}
	}
	*ret_size = size;
	*ret_inodes = inodes;
	return 0;
}

struct live_ctx {
	struct store_ids ids;
};

static bool id_live(void *ud, uint64_t id)
{
	struct live_ctx *c = ud;
	return store_ids_has(&c->ids, id);
}

static int cleanup(struct snapshotter *sn, struct el_error *err)
{
	_cleanup_(store_txn_freep) struct store_txn *txn = NULL;
	struct live_ctx ctx = { 0 };
	/* the writer lock: no Prepare is between making its directory and
	 * committing its record while we sweep */
	int r = store_txn_begin(sn->store, true, &txn);

	if (r < 0)
		return fail(err, r, "cleanup: cannot start a transaction: %s", strerror(-r));
	r = store_ids(txn, &ctx.ids);
	if (r < 0)
		return fail(err, r, "cleanup: %s", store_txn_errmsg(txn));
	r = layout_sweep(&sn->layout, id_live, &ctx);
	store_txn_freep(&txn);
	store_ids_free(&ctx.ids);
	if (r < 0)
		return fail(err, r, "cleanup: %s", strerror(-r));
	return r;
}

int sn_cleanup(struct snapshotter *sn, struct el_error *err)
{
	return cleanup(sn, err);
}

int sn_walk(struct snapshotter *sn, store_walk_fn fn, void *ud, struct el_error *err)
{
	_cleanup_(store_txn_freep) struct store_txn *txn = NULL;
	int r = store_txn_begin(sn->store, false, &txn);

	if (r < 0)
		return fail(err, r, "list: cannot start a transaction: %s", strerror(-r));
	r = store_walk(txn, fn, ud);
	if (r < 0)
		return fail(err, r, "list: %s", *store_txn_errmsg(txn) ? store_txn_errmsg(txn) : strerror(-r));
	return 0;
}

char *sn_snapshot_dir(struct snapshotter *sn, const char *key)
{
	_cleanup_(snap_info_free) struct snap_info info = { 0 };
	if (sn_stat(sn, key, &info, NULL) < 0)
		return NULL;
	return layout_path(&sn->layout, info.id, NULL);
}
