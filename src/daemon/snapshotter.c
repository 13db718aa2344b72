/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The snapshot state machine (containerd's snapshotter contract) on our
 * store and storage layout.
 *
 * Ordering, so that a crash never leaves metadata pointing at a missing file:
 *  - Prepare/View: the store reserves the id first; the directory is made
 *    under it outside any lock, and the record is committed after. A crash
 *    before leaves a directory no record owns, which sn_open sweeps. A
 *    container's directory (with its rwlayer.img) is made as
 *    snapshots/.tmp-<id>, made durable, renamed to snapshots/<id>; the
 *    others hold only the marker and empty directories, so they are made as
 *    snapshots/<id> and not synced: sn_open makes again what a crash lost of
 *    them. A view on a parent has no directory at all (its mounts are its
 *    parents' files).
 *  - Commit: layer.erofs (and, for chains, fsmeta.erofs and merged.vmdk) are
 *    published first, durably, the snapshot's own directory entry included
 *    (by the differ's Apply, or here when Commit converts), the record
 *    changes kind last; fs/ and work/ go after (or at the next start).
 *  - Remove: the record goes first (durably), the directory after; what
 *    remains of the directory is swept by Cleanup or the next start.
 *  - Cleanup: under the writer lock, directories no record owns (and no
 *    Prepare in flight) are renamed to .trash-*; they are deleted after the
 *    lock is released.
 *
 * Records are written through a group commit (group-commit.c):
 * concurrent callers' writes share one write transaction, each in its own
 * nested transaction, so one failing never undoes another, and a caller is
 * answered only once its write is durable. What a write makes obsolete (a
 * removed snapshot's directory, a committed one's fs/) is deleted after
 * that answer, never before: a crash cannot bring back a record whose files
 * are gone.
 */
#include "snapshotter.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "erofs-layer/dirconv.h"
#include "erofs-layer/ext4.h"
#include "erofs-layer/image.h"
#include "erofs-layer/merge.h"
#include "erofs-layer/verity.h"
#include "busy-set.h"
#include "group-commit.h"
#include "merge-queue.h"
#include "ext4.h"
#include "layout.h"
#include "log.h"
#include "snapshotter-internal.h"
#include "usage.h"
#include "common/macro.h"
#include "common/sha256.h"
#include "common/util.h"

/* a marker beside a chain's top layer: merging it failed for good, so the
 * chain keeps its per-layer mounts (which must never change later) */
#define NOMERGE_MARKER ".nomerge"

/* How long a committed chain's merge waits before it starts: containerd
 * prepares the next layer's extract snapshot on it when the layer is one
 * step of an unpack (measured: 5-7 ms after the Commit), and that drops the
 * merge (docs/architecture.md). After an image's last layer the wait is
 * dead time before its first container can start, so it is short. */
#define MERGE_GRACE_MS 50

struct snapshotter {
	struct sn_config cfg;
	int lock_fd; /* flock on <root>/lock: one daemon per root */
	struct layout layout;
	struct store *store;
	/* snapshots whose files a conversion or merge is writing: two calls
	 * for the same snapshot never write the same files, while different
	 * snapshots convert in parallel */
	struct busy_set busy;
	/* every write of a record goes through it */
	struct group_commit *wq;
	/* rwlayer.img's template, made at the first active Prepare */
	pthread_mutex_t tmpl_lock;
	struct ext4_template *tmpl;
	/* the chain merges Commit leaves for later */
	struct merge_queue *mq;
	sn_fault_fn fault_fn;
	void *fault_ud;
};

static void merge_job(void *ud, const uint64_t *ids, size_t n);

/*
 * The points a crash test stops at: prepare:staged (directory made and
 * durable, no record), batch:applied (records written, not committed),
 * batch:committed (records durable, callers not told), remove:committed
 * (record gone, directory not), commit:layer (layer published, record not
 * changed), cleanup:collected (debris moved to trash, not deleted).
 */
static void fault(struct snapshotter *sn, const char *point)
{
	if (sn->fault_fn)
		sn->fault_fn(point, sn->fault_ud);
}

/* the group commit's points */
static void wq_fault(void *ud, const char *point)
{
	fault(ud, point);
}

void sn_set_fault_hook(struct snapshotter *sn, sn_fault_fn fn, void *ud)
{
	sn->fault_fn = fn;
	sn->fault_ud = ud;
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
	if (el_grow((void **)&m->v, &m->cap, m->n + 1, sizeof(*m->v)) < 0) {
		free(source);
		return -ENOMEM;
	}
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

static int cleanup(struct snapshotter *sn, bool startup, struct el_error *err);

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
	busy_set_init(&sn->busy);
	pthread_mutex_init(&sn->tmpl_lock, NULL);
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
	r = store_open(sn->layout.root, &(struct store_options){ .deferred_sync = true }, &sn->store,
		       msg, sizeof(msg));
	if (r < 0) {
		fail(err, r, "cannot open %s/%s: %s", sn->layout.root, STORE_DB_NAME,
		     *msg ? msg : strerror(-r));
		goto fail;
	}
	r = wq_new(sn->store, wq_fault, sn, &sn->wq);
	if (r < 0) {
		fail(err, r, "out of memory");
		goto fail;
	}
	r = cleanup(sn, true, err);
	if (r < 0)
		goto fail;
	if (r > 0)
		log_info("removed %d leftover snapshot directories", r);
	r = mq_new(merge_job, sn, cfg->merge_grace_ms ? cfg->merge_grace_ms : MERGE_GRACE_MS, &sn->mq);
	if (r < 0) {
		fail(err, r, "cannot start the merge thread: %s", strerror(-r));
		goto fail;
	}
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
	if (sn->mq) {
		uint64_t run, dropped;
		mq_stats(sn->mq, &run, &dropped);
		if (run || dropped)
			log_debug("chain merges: %" PRIu64 " run after Commit, %" PRIu64
				  " left to the first mount (intermediate chains)",
				  run, dropped);
		mq_free(sn->mq);
		sn->mq = NULL;
	}
	if (sn->wq) {
		uint64_t ops, batches, max;
		wq_stats(sn->wq, &ops, &batches, &max);
		if (batches)
			log_debug("group commit: %" PRIu64 " operations in %" PRIu64
				  " transactions, at most %" PRIu64 " in one",
				  ops, batches, max);
		wq_free(sn->wq);
		sn->wq = NULL;
	}
	store_closep(&sn->store);
	layout_close(&sn->layout);
	el_closep(&sn->lock_fd);
	busy_set_destroy(&sn->busy);
	pthread_mutex_destroy(&sn->tmpl_lock);
	ext4_template_free(sn->tmpl);
	free(sn);
}

void sn_merge_stats(struct snapshotter *sn, uint64_t *ret_run, uint64_t *ret_dropped)
{
	mq_stats(sn->mq, ret_run, ret_dropped);
}

void sn_group_commit_stats(struct snapshotter *sn, uint64_t *ret_ops, uint64_t *ret_batches,
			   uint64_t *ret_max)
{
	wq_stats(sn->wq, ret_ops, ret_batches, ret_max);
}

/* ---- mounts ---- */

static bool file_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* With --dm-verity=mounts, the erofs mount just added (r: mount_add's
 * result) names its image's sidecar as containerd 2.3's snapshotter does
 * (docs/verity.md); images without one (made while verity was off) mount
 * as they are. */
static int announce_verity(struct snapshotter *sn, struct sn_mounts *m, int r)
{
	_cleanup_free_ char *side = NULL;

	if (r < 0 || sn->cfg.verity != DM_VERITY_MOUNTS)
		return r;
	struct sn_mount *mt = &m->v[m->n - 1];
	if (asprintf(&side, "%s" LAYOUT_VERITY_SUFFIX, mt->source) < 0)
		return -ENOMEM;
	if (!file_exists(side))
		return 0;
	char **o = realloc(mt->options, (mt->n_options + 1) * sizeof(*o));
	if (!o)
		return -ENOMEM;
	mt->options = o;
	if (asprintf(&o[mt->n_options], "X-containerd.dmverity=%s", side) < 0)
		return -ENOMEM;
	mt->n_options++;
	return 0;
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

/* What the top's directory of a chain holds: MERGE_DONE, both merged files
 * (each is published atomically); MERGE_NEVER, the marker of a chain that
 * cannot be merged; MERGE_TO_DO, neither. */
enum { MERGE_DONE = 0, MERGE_NEVER = 1, MERGE_TO_DO = 2 };

static int merge_state(const char *fsmeta, const char *vmdk, const char *nomerge)
{
	if (file_exists(nomerge))
		return MERGE_NEVER;
	return file_exists(fsmeta) && file_exists(vmdk) ? MERGE_DONE : MERGE_TO_DO;
}

/* el_merge of the chain ids[0..n) into fsmeta and vmdk, its top claimed.
 * Returns 0, 1 when the chain cannot be merged (then marked so at nomerge),
 * or -errno. */
static int merge_chain(struct snapshotter *sn, const uint64_t *ids, size_t n, const char *fsmeta,
		       const char *vmdk, const char *nomerge, struct el_error *err)
{
	uint64_t top = ids[n - 1];
	char **layers = calloc(n, sizeof(*layers));
	struct el_error merr;
	struct el_merge_result res;
	struct timespec t0;
	int r = 0;

	if (!layers)
		return fail(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		layers[i] = layout_path(&sn->layout, ids[i], LAYOUT_LAYER);
		if (!layers[i]) {
			r = fail(err, -ENOMEM, "out of memory");
			goto out;
		}
	}
	el_error_clear(&merr);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = el_merge((const char *const *)layers, n, fsmeta, vmdk,
		     &(struct el_merge_opts){ .verity = sn->cfg.verity != DM_VERITY_OFF }, &res, &merr);
	double ms = el_ms_since(&t0);
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
		log_debug("merged %zu layers into snapshot %" PRIu64 " (%" PRIu64 " inodes) in %.1f ms",
			  n, top, res.inodes, ms);
		if (sn->cfg.set_immutable) {
			layout_set_immutable(&sn->layout, top, LAYOUT_FSMETA, true);
			layout_set_immutable(&sn->layout, top, LAYOUT_VMDK, true);
			if (res.verity)
				layout_set_immutable(&sn->layout, top, LAYOUT_FSMETA_VERITY, true);
		}
	}
out:
	for (size_t i = 0; i < n; i++)
		free(layers[i]);
	free(layers);
	return r;
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
	int r;

	if (!fsmeta || !vmdk || !nomerge)
		return fail(err, -ENOMEM, "out of memory");
	/* both files are published atomically: the common case needs no lock */
	r = merge_state(fsmeta, vmdk, nomerge);
	if (r != MERGE_TO_DO)
		return r;
	if (busy_claim(&sn->busy, top) < 0)
		return fail(err, -ENOMEM, "out of memory");
	/* the claim may have waited for a merge of the same chain */
	r = merge_state(fsmeta, vmdk, nomerge);
	if (r == MERGE_TO_DO)
		r = merge_chain(sn, ids, n, fsmeta, vmdk, nomerge, err);
	busy_release(&sn->busy, top);
	return r;
}

/* The merge queue's worker: a failure here is not the end of it, the
 * chain's first mount tries again and answers with the error. */
static void merge_job(void *ud, const uint64_t *ids, size_t n)
{
	struct snapshotter *sn = ud;
	struct el_error err;

	el_error_clear(&err);
	if (ensure_fsmeta(sn, ids, n, &err) < 0)
		log_warn("merging the chain of %zu layers ending at snapshot %" PRIu64
			 " after its Commit: %s (its first mount tries again)",
			 n, ids[n - 1], err.msg);
}

/* The read-only lower mounts of a chain (docs/vm-runtime-contract.md). */
static int lower_mounts(struct snapshotter *sn, const uint64_t *ids, size_t n,
			struct sn_mounts *m, struct el_error *err)
{
	static const char *const ro_loop[] = { "ro", "loop", NULL };
	int r;

	if (n == 0)
		return 0;
	if (n == 1)
		return announce_verity(sn, m, mount_add(m, "erofs",
							layout_path(&sn->layout, ids[0], LAYOUT_LAYER),
							ro_loop));
	/* a queued merge of this chain is done here and now (not counted
	 * as dropped: the chain is not an intermediate one) */
	uint64_t *queued = NULL;
	size_t n_queued = 0;
	if (mq_settle(sn->mq, ids[n - 1], &queued, &n_queued))
		free(queued);
	r = ensure_fsmeta(sn, ids, n, err);
	if (r < 0)
		return r;
	if (r == 1) {
		for (size_t i = 0; i < n; i++) {
			r = mount_add(m, "erofs", layout_path(&sn->layout, ids[i], LAYOUT_LAYER), ro_loop);
			r = announce_verity(sn, m, r);
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
		r = announce_verity(sn, m, mount_add(m, "erofs",
						     layout_path(&sn->layout, ids[n - 1], LAYOUT_FSMETA),
						     opts));
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

struct create_op {
	struct wop op;
	enum snap_kind kind;
	const char *parent;
	const struct snap_label *labels;
	size_t n_labels;
	struct layout_stage *stage; /* NULL: the caller expects a refusal */
	bool need_stage;	    /* ... and was wrong */
	bool dirless;		    /* a view on a parent: no directory at all */
	bool restage;		    /* the parent is newer than the reserved id */
	struct snap_info info;
};

static int create_run(struct store_txn *txn, struct wop *w)
{
	struct create_op *o = (struct create_op *)w;
	int r = o->stage ? store_create_reserved(txn, o->stage->id, w->key, o->kind, o->parent,
						 o->labels, o->n_labels, &o->info)
			 : store_create(txn, w->key, o->kind, o->parent, o->labels, o->n_labels,
					&o->info);

	if (r < 0) {
		/* -EINVAL: a parent that is not committed, or a bad key or label;
		 * containerd calls all of them InvalidArgument */
		if (r == -EINVAL)
			return fail(w->err, -EINVAL, "%s %s: %s", w->what, w->key,
				    store_txn_errmsg(txn));
		if (r == -ENOENT)
			return fail(w->err, r, "%s %s: parent %s does not exist", w->what, w->key,
				    o->parent);
		if (r == -ESTALE) {
			/* the caller reserves a new id and comes again */
			o->restage = true;
			return r;
		}
		return store_fail(w->err, txn, r, w->what, w->key);
	}
	if (!o->stage && !o->dirless) {
		/* rolled back; the caller makes a directory and comes again */
		o->need_stage = true;
		snap_info_free(&o->info);
		return -EAGAIN;
	}
	return 0;
}

/* Whether creating key on parent may succeed, as a read transaction sees
 * it: if not, no directory is staged for a Prepare that fails anyway (the
 * batch gives the real answer, in containerd's order of checks). */
static bool create_may_succeed(struct snapshotter *sn, const char *key, const char *parent)
{
	_cleanup_(store_txn_freep) struct store_txn *txn = NULL;
	_cleanup_(snap_info_free) struct snap_info p = { 0 };

	if (store_txn_begin(sn->store, false, &txn) < 0)
		return true;
	if (store_get(txn, key, NULL) != -ENOENT)
		return false;
	if (!parent || !*parent)
		return true;
	return store_get(txn, parent, &p) == 0 && p.kind == SNAP_KIND_COMMITTED;
}

/* The writable layer: a copy of the template, made by mkfs.ext4 once. */
static int write_rwlayer(struct snapshotter *sn, struct layout_stage *st)
{
	int r = 0;

	pthread_mutex_lock(&sn->tmpl_lock);
	if (!sn->tmpl) {
		_cleanup_free_ char *dir = NULL;
		if (asprintf(&dir, "%s/%s", sn->layout.snapshots, st->name) < 0)
			r = -ENOMEM;
		else
			r = ext4_template_new(st->fd, dir, sn->cfg.default_size, &sn->tmpl);
	}
	pthread_mutex_unlock(&sn->tmpl_lock);
	/* the template never changes once made */
	return r < 0 ? r : ext4_template_write(sn->tmpl, st->fd, LAYOUT_RWLAYER);
}

/* What a snapshot's directory holds, by its kind, key and parent
 * (docs/durability.md, docs/vm-runtime-contract.md). A committed snapshot's comes from its active one. */
struct dir_shape {
	bool none;	/* a view on a parent: its mounts are its parents' files */
	bool lower;	/* a view without a parent: an empty lower/ */
	bool extract;	/* an extract snapshot: empty fs/, work/, lower/ */
	bool container; /* any other active snapshot: rwlayer.img */
};

static struct dir_shape dir_shape(enum snap_kind kind, const char *key, const char *parent)
{
	bool has_parent = parent && *parent;
	bool extract = kind == SNAP_KIND_ACTIVE && sn_is_extract_key(key);

	return (struct dir_shape){
		.none = kind == SNAP_KIND_VIEW && has_parent,
		.lower = kind == SNAP_KIND_VIEW && !has_parent,
		.extract = extract,
		.container = kind == SNAP_KIND_ACTIVE && !extract,
	};
}

/* The directory of a new snapshot, complete as snapshots/<id> under an id
 * reserved for it, before its record exists; no lock is held meanwhile.
 * Only a container's (rwlayer.img) is made durable here: the others hold
 * nothing but empty directories, which sn_open makes again if a crash lost
 * them, and Commit makes an extract snapshot's durable before its layer
 * counts. */
static int stage_dir(struct snapshotter *sn, struct create_op *o, struct el_error *err)
{
	struct dir_shape shape = dir_shape(o->kind, o->op.key, o->parent);
	uint64_t id;
	int r = store_reserve_id(sn->store, &id);

	if (r < 0)
		return fail(err, r, "%s %s: no snapshot id left: %s", o->op.what, o->op.key,
			    strerror(-r));
	r = layout_stage_new(&sn->layout, id, shape.extract, shape.lower, shape.container,
			     &o->stage);
	if (r < 0)
		return fail(err, r, "%s %s: cannot create its directory: %s", o->op.what, o->op.key,
			    strerror(-r));
	if (shape.container) {
		r = write_rwlayer(sn, o->stage);
		if (r < 0)
			return fail(err, r, "%s %s: cannot create its writable layer: %s",
				    o->op.what, o->op.key, strerror(-r));
	}
	r = layout_stage_publish(&sn->layout, o->stage);
	if (r < 0)
		return fail(err, r, "%s %s: cannot create its directory: %s", o->op.what, o->op.key,
			    strerror(-r));
	return 0;
}

/* Stages the directory (when stage says so) and commits the record, again
 * as the batch asks: with a directory when the refusal foreseen did not
 * come, under a new id when the parent changed since the reservation. */
static int create_record(struct snapshotter *sn, struct create_op *o, bool stage,
			 struct el_error *err)
{
	int r;

	for (unsigned tries = 0;; tries++) {
		if (stage) {
			r = stage_dir(sn, o, err);
			if (r < 0)
				return r;
			fault(sn, "prepare:staged");
		}
		r = wq_submit(sn->wq, &o->op);
		if (r < 0 && o->need_stage && !o->stage) {
			/* the refusal foreseen did not come */
			o->need_stage = false;
			stage = true;
			continue;
		}
		if (r < 0 && o->restage && tries < 16) {
			/* the parent was removed and made again since the
			 * reservation: a new id for a new directory */
			layout_stage_free(&sn->layout, EL_TAKE_PTR(o->stage), false);
			o->restage = false;
			continue;
		}
		break;
	}
	if (r < 0 && o->restage)
		fail(err, r, "%s %s: parent %s keeps changing", o->op.what, o->op.key, o->parent);
	return r;
}

int sn_prepare(struct snapshotter *sn, enum snap_kind kind, const char *key, const char *parent,
	       const struct snap_label *labels, size_t n_labels, struct sn_mounts *ret,
	       struct el_error *err)
{
	_cleanup_(store_txn_freep) struct store_txn *txn = NULL;
	const char *what = kind == SNAP_KIND_VIEW ? "view" : "prepare";
	struct create_op o = {
		.op = { .fn = create_run, .what = what, .key = key, .err = err },
		.kind = kind,
		.parent = parent,
		.labels = labels,
		.n_labels = n_labels,
		.dirless = dir_shape(kind, key, parent).none,
	};
	int r;

	if (!key || !*key)
		return fail(err, -EINVAL, "%s: empty key", what);
	r = create_record(sn, &o, !o.dirless && create_may_succeed(sn, key, parent), err);
	if (r < 0)
		goto out;
	/* the record is committed: the directory is the snapshot's */
	layout_stage_free(&sn->layout, EL_TAKE_PTR(o.stage), true);
	/* the parent is a step of an unpack: its chain is not what a
	 * container mounts, unless one asks (then its mount merges it) */
	if (o.info.parent_id && sn_is_extract_key(key))
		mq_drop(sn->mq, o.info.parent_id);

	/* mounts from a read transaction: merging a chain may take a while */
	r = store_txn_begin(sn->store, false, &txn);
	if (r < 0) {
		fail(err, r, "%s: cannot start a transaction: %s", what, strerror(-r));
		goto out;
	}
	r = build_mounts(sn, txn, &o.info, ret, err);
out:
	layout_stage_free(&sn->layout, o.stage, false);
	snap_info_free(&o.info);
	return r;
}

/* A read transaction and the record of key in it; the messages name the
 * call (what). On success the caller frees *ret_txn. */
static int read_record(struct snapshotter *sn, const char *what, const char *key,
		       struct store_txn **ret_txn, struct snap_info *info, struct el_error *err)
{
	_cleanup_(store_txn_freep) struct store_txn *txn = NULL;
	int r = store_txn_begin(sn->store, false, &txn);

	if (r < 0)
		return fail(err, r, "%s: cannot start a transaction: %s", what, strerror(-r));
	r = store_get(txn, key, info);
	if (r < 0)
		return store_fail(err, txn, r, what, key);
	*ret_txn = EL_TAKE_PTR(txn);
	return 0;
}

int sn_mounts(struct snapshotter *sn, const char *key, struct sn_mounts *ret,
	      struct el_error *err)
{
	_cleanup_(store_txn_freep) struct store_txn *txn = NULL;
	_cleanup_(snap_info_free) struct snap_info info = { 0 };
	int r = read_record(sn, "mounts", key, &txn, &info, err);

	if (r < 0)
		return r;
	/* as containerd's snapshotters: only active snapshots and views have
	 * mounts (storage.GetSnapshot's "not active or view") */
	if (info.kind == SNAP_KIND_COMMITTED)
		return fail(err, -EBUSY, "mounts of %s: it is a committed snapshot, not an active one or a view",
			    key);
	return build_mounts(sn, txn, &info, ret, err);
}

int sn_stat(struct snapshotter *sn, const char *key, struct snap_info *ret,
	    struct el_error *err)
{
	_cleanup_(store_txn_freep) struct store_txn *txn = NULL;

	return read_record(sn, "stat", key, &txn, ret, err);
}

struct update_op {
	struct wop op;
	const struct snap_info *info;
	const char *const *paths;
	size_t n;
	struct snap_info *ret;
};

static int update_run(struct store_txn *txn, struct wop *w)
{
	struct update_op *o = (struct update_op *)w;
	int r = store_update(txn, o->info, o->paths, o->n, o->ret);

	return r < 0 ? store_fail(w->err, txn, r, "update", w->key) : 0;
}

int sn_update(struct snapshotter *sn, const struct snap_info *info, const char *const *paths,
	      size_t n, struct snap_info *ret, struct el_error *err)
{
	struct update_op o = {
		.op = { .fn = update_run, .what = "update", .key = info->key, .err = err },
		.info = info,
		.paths = paths,
		.n = n,
		.ret = ret,
	};
	int r;

	*ret = (struct snap_info){ 0 };
	r = wq_submit(sn->wq, &o.op);
	if (r < 0)
		snap_info_free(ret); /* filled, then its batch failed */
	return r;
}

/* A container's writable layer: rwlayer.img was written by a guest, so it is
 * untrusted and never mounted here: e2fsck (preen) first, then upper/ is
 * read in user space (libext2fs) and converted with the overlay-upper rules
 * (whiteouts and opaque directories kept as the image's own markers). */
static int convert_rwlayer(struct snapshotter *sn, const struct snap_info *info,
			   const char *layer, struct el_error *err)
{
	_cleanup_free_ char *img = layout_path(&sn->layout, info->id, LAYOUT_RWLAYER);
	struct el_dir_opts opts = { .overlay_upper = true,
				    .verity = sn->cfg.verity != DM_VERITY_OFF };
	struct el_convert_result res;
	struct el_error cerr;
	char buf[700];
	int r;

	if (!img)
		return fail(err, -ENOMEM, "out of memory");
	el_error_clear(&cerr);
	r = ext4_image_loop_device(img, buf, sizeof(buf));
	if (r > 0)
		return fail(err, -EBUSY, "commit %s: %s is in use: attached to /dev/%s on this host; "
			    "a writable layer is committed once its guest is stopped and the image "
			    "released", info->key, img, buf);
	r = el_ext4_fsck(img, &cerr);
	if (r < 0)
		/* status 4 (left uncorrected) and 8 (not even readable): a bad
		 * image, which the guest made */
		return fail(err, r == -EUCLEAN || r == -EIO ? -EINVAL : r, "commit %s: %s", info->key,
			    el_error_format(&cerr, buf, sizeof(buf)));
	if (r > 0)
		log_info("commit %s: e2fsck repaired %s (status %d)", info->key, img, r);
	/* a commit that crashed after publishing may have left an immutable
	 * layer.erofs behind: it is replaced */
	layout_set_immutable(&sn->layout, info->id, LAYOUT_LAYER, false);
	layout_set_immutable(&sn->layout, info->id, LAYOUT_LAYER_VERITY, false);
	r = el_convert_ext4(img, "upper", layer, &opts, &res, &cerr);
	if (r < 0)
		return fail(err, r == -EUCLEAN || r == -EOPNOTSUPP ? -EINVAL : r,
			    "commit %s: cannot convert upper/ of %s: %s", info->key, img,
			    el_error_format(&cerr, buf, sizeof(buf)));
	log_debug("converted %s:upper: %" PRIu64 " entries, %" PRIu64 " bytes", img, res.entries,
		  res.image.image_bytes);
	return 0;
}

/* The layer of a snapshot being committed: for an extract snapshot ours (the
 * differ's Apply wrote it) or converted now from what containerd's walking
 * differ put in fs/; for a container's active snapshot, from rwlayer.img.
 * *ret_made tells whether it was made here. */
static int make_layer(struct snapshotter *sn, const struct snap_info *info, uint64_t *ret_size,
		      uint64_t *ret_inodes, bool *ret_made, struct el_error *err)
{
	_cleanup_free_ char *layer = layout_path(&sn->layout, info->id, LAYOUT_LAYER);
	_cleanup_free_ char *fs = layout_path(&sn->layout, info->id, "fs");
	int r;

	if (!layer || !fs)
		return fail(err, -ENOMEM, "out of memory");
	*ret_made = !sn_is_extract_key(info->key) || !file_exists(layer);
	if (!sn_is_extract_key(info->key)) {
		r = convert_rwlayer(sn, info, layer, err);
		if (r < 0)
			return r;
	} else if (*ret_made) {
		struct el_dir_opts opts = { .overlay_upper = true,
					    .verity = sn->cfg.verity != DM_VERITY_OFF };
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

struct commit_op {
	struct wop op;
	const char *name;
	const char *parent; /* NULL: the one it was prepared on */
	const struct snap_label *labels;
	size_t n_labels;
	uint64_t size, inodes;
};

static int commit_run(struct store_txn *txn, struct wop *w)
{
	struct commit_op *o = (struct commit_op *)w;
	int r = store_commit(txn, w->key, o->name, o->parent, o->labels, o->n_labels, NULL);

	/* the kinds were checked before: a bad name or label, or the parent
	 * removed or changed meanwhile */
	if (r == -EINVAL || (r == -ENOENT && o->parent))
		return fail(w->err, r, "commit %s: %s", w->key, store_txn_errmsg(txn));
	if (r < 0)
		return store_fail(w->err, txn, r, "commit", r == -EEXIST ? o->name : w->key);
	r = store_set_usage(txn, o->name, o->size, o->inodes);
	if (r < 0)
		return store_fail(w->err, txn, r, "commit", o->name);
	return 0;
}

/* The record's part of Commit: key becomes the committed snapshot name. */
static int commit_record(struct snapshotter *sn, const char *name, const char *key,
			 const char *parent, const struct snap_label *labels, size_t n_labels,
			 uint64_t size, uint64_t inodes, struct el_error *err)
{
	struct commit_op o = {
		.op = { .fn = commit_run, .what = "commit", .key = key, .err = err },
		.name = name,
		.parent = parent,
		.labels = labels,
		.n_labels = n_labels,
		.size = size,
		.inodes = inodes,
	};
	fault(sn, "commit:layer");
	return wq_submit(sn->wq, &o.op);
}

int sn_commit(struct snapshotter *sn, const char *name, const char *key,
	      const struct snap_label *labels, size_t n_labels, struct el_error *err)
{
	return sn_commit_onto(sn, name, key, NULL, labels, n_labels, err);
}

/* Appends id to the list ids[0..*n). -ENOMEM (the list unchanged), or 0. */
static int ids_append(uint64_t **ids, size_t *n, uint64_t id)
{
	uint64_t *all = realloc(*ids, (*n + 1) * sizeof(*all));

	if (!all)
		return -ENOMEM;
	all[(*n)++] = id;
	*ids = all;
	return 0;
}

/* The chain a commit onto parent ends: parent's chain, then parent. */
static int chain_onto(struct store_txn *txn, const char *parent, uint64_t **ret, size_t *ret_n,
		      struct el_error *err)
{
	_cleanup_(snap_info_free) struct snap_info p = { 0 };
	_cleanup_free_ uint64_t *ids = NULL;
	size_t n = 0;
	int r = store_get(txn, parent, &p);

	if (r == -ENOENT)
		return fail(err, r, "commit: parent %s does not exist", parent);
	if (r < 0)
		return store_fail(err, txn, r, "commit", parent);
	if (p.kind != SNAP_KIND_COMMITTED)
		return fail(err, -EINVAL, "commit: parent %s is not a committed snapshot", parent);
	r = chain_ids(txn, parent, &ids, &n);
	if (r < 0)
		return store_fail(err, txn, r, "commit", parent);
	if (ids_append(&ids, &n, p.id) < 0)
		return fail(err, -ENOMEM, "out of memory");
	*ret = EL_TAKE_PTR(ids);
	*ret_n = n;
	return 0;
}

/* What Commit reads first, in one read transaction released before the
 * conversion: the active snapshot key and the chain its layer goes on top
 * of (parent's chain and parent, or the one it was prepared on). */
static int commit_lookup(struct snapshotter *sn, const char *key, const char *parent,
			 struct snap_info *info, uint64_t **ret_ids, size_t *ret_n,
			 struct el_error *err)
{
	_cleanup_(store_txn_freep) struct store_txn *txn = NULL;
	int r = read_record(sn, "commit", key, &txn, info, err);

	if (r < 0)
		return r;
	if (info->kind != SNAP_KIND_ACTIVE)
		return fail(err, -EBUSY, "commit %s: it is a %s snapshot, not an active one", key,
			    snap_kind_to_string(info->kind));
	if (parent)
		return chain_onto(txn, parent, ret_ids, ret_n, err);
	r = chain_ids(txn, key, ret_ids, ret_n);
	return r < 0 ? store_fail(err, txn, r, "commit", key) : 0;
}

/* The chain ids[0..n) with top on it gets its fsmeta after Commit's answer,
 * on the merge thread: containerd applies the next layer meanwhile. Its
 * mounts wait for it; what they name never changes (a chain that cannot
 * merge is marked so, for good). */
static void queue_merge(struct snapshotter *sn, const char *name, const char *parent,
			uint64_t **ids, size_t n, uint64_t top)
{
	int r = ids_append(ids, &n, top);

	if (r == 0 && parent)
		mq_drop(sn->mq, (*ids)[n - 2]); /* a step of a 2.2-style unpack */
	if (r < 0 || mq_add(sn->mq, *ids, n) < 0)
		log_warn("commit %s: no memory to queue the merge of its chain; its first "
			 "mount does it", name);
}

/* LABELS, plus SN_LABEL_VERITY_ROOT (replacing one the caller sent) when the
 * layer of snapshot ID has a sidecar: *ret is a new array pointing into
 * LABELS and HEX, or NULL (no tree: LABELS as they are). */
static int verity_label(struct snapshotter *sn, uint64_t id, const struct snap_label *labels,
			size_t n, struct snap_label **ret, size_t *ret_n, char hex[65], struct el_error *err)
{
	_cleanup_free_ char *side = layout_path(&sn->layout, id, LAYOUT_LAYER_VERITY);
	uint8_t root[32];
	uint64_t off;

	*ret = NULL;
	*ret_n = n;
	if (!side)
		return fail(err, -ENOMEM, "out of memory");
	int r = el_verity_sidecar_read(side, root, &off, err);
	if (r == -ENOENT) {
		el_error_clear(err); /* no tree: no label */
		return 0;
	}
	if (r < 0)
		return r;
	el_hex(root, sizeof(root), hex);
	struct snap_label *v = calloc(n + 1, sizeof(*v));
	if (!v)
		return fail(err, -ENOMEM, "out of memory");
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(labels[i].key, SN_LABEL_VERITY_ROOT) != 0)
			v[m++] = labels[i];
	v[m].key = (char *)SN_LABEL_VERITY_ROOT;
	v[m++].value = hex;
	*ret = v;
	*ret_n = m;
	return 0;
}

int sn_commit_onto(struct snapshotter *sn, const char *name, const char *key, const char *parent,
		   const struct snap_label *labels, size_t n_labels, struct el_error *err)
{
	_cleanup_free_ struct snap_label *with_root = NULL;
	char root_hex[65];
	_cleanup_(snap_info_free) struct snap_info info = { 0 };
	_cleanup_free_ uint64_t *ids = NULL;
	uint64_t size = 0, inodes = 0;
	size_t n = 0;
	bool made;
	int r;

	if (!name || !*name)
		return fail(err, -EINVAL, "commit: empty name");
	if (parent && !*parent)
		parent = NULL;
	r = commit_lookup(sn, key, parent, &info, &ids, &n, err);
	if (r < 0)
		return r;

	if (busy_claim(&sn->busy, info.id) < 0)
		return fail(err, -ENOMEM, "out of memory");
	r = make_layer(sn, &info, &size, &inodes, &made, err);
	busy_release(&sn->busy, info.id);
	if (r < 0)
		return r;
	if (sn->cfg.set_immutable) {
		layout_set_immutable(&sn->layout, info.id, LAYOUT_LAYER, true);
		layout_set_immutable(&sn->layout, info.id, LAYOUT_LAYER_VERITY, true);
	}

	if (sn_is_extract_key(key) && made) {
		/* its directory was not made durable at Prepare: it must be
		 * before the record names the layer in it. A layer found made
		 * came from the differ's Apply, which did that (or is from
		 * before this start, which synced snapshots/). */
		r = layout_sync(&sn->layout);
		if (r < 0)
			return fail(err, r, "commit %s: cannot sync %s: %s", key, sn->layout.snapshots,
				    strerror(-r));
	}
	r = verity_label(sn, info.id, labels, n_labels, &with_root, &n_labels, root_hex, err);
	if (r < 0)
		return r;
	r = commit_record(sn, name, key, parent, with_root ? with_root : labels, n_labels, size,
			  inodes, err);
	if (r < 0)
		return r;
	/* the extract directories, or the container's writable layer, have
	 * served their purpose */
	layout_remove_subdir(&sn->layout, info.id, "fs");
	layout_remove_subdir(&sn->layout, info.id, "work");
	layout_remove_subdir(&sn->layout, info.id, LAYOUT_RWLAYER);
	/* a single layer is mounted as it is */
	if (n >= 1)
		queue_merge(sn, name, parent, &ids, n, info.id);
	return 0;
}

struct remove_op {
	struct wop op;
	uint64_t id;
};

static int remove_run(struct store_txn *txn, struct wop *w)
{
	struct remove_op *o = (struct remove_op *)w;
	int r = store_remove(txn, w->key, &o->id, NULL);

	if (r == -EBUSY)
		return fail(w->err, -EBUSY, "remove %s: it has children", w->key);
	return r < 0 ? store_fail(w->err, txn, r, "remove", w->key) : 0;
}

int sn_remove(struct snapshotter *sn, const char *key, struct el_error *err)
{
	struct remove_op o = {
		.op = { .fn = remove_run, .what = "remove", .key = key, .err = err },
	};
	int r = wq_submit(sn->wq, &o.op);

	if (r < 0)
		return r;
	fault(sn, "remove:committed");
	/* the record is gone for good: its chain's merge too (a running one
	 * ends first), then the directory, outside any lock */
	uint64_t *ids = NULL;
	size_t n = 0;
	if (mq_settle(sn->mq, o.id, &ids, &n))
		free(ids);
	r = layout_remove(&sn->layout, o.id);
	if (r < 0)
		log_warn("remove %s: its directory %" PRIu64 " stays until cleanup: %s", key, o.id,
			 strerror(-r));
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
		_cleanup_free_ uint64_t *ids = NULL;
		size_t n = 0;
		struct el_error merr;
		/* its chain's merge, if Commit left it queued, is done first:
		 * the answer then counts its files */
		el_error_clear(&merr);
		if (mq_settle(sn->mq, info.id, &ids, &n) && ensure_fsmeta(sn, ids, n, &merr) < 0)
			log_warn("usage %s: merging its chain: %s", key, merr.msg);
		/* the chain's files are this snapshot's: its Usage counts them
		 * (the kubelet's image GC reads the sum through ImageFsInfo) */
		size = info.usage_size + usage_chain_files(&sn->layout, info.id);
		inodes = info.usage_inodes;
	} else if (info.kind == SNAP_KIND_ACTIVE) {
		r = usage_active(&sn->layout, info.id, sn_is_extract_key(key), &size, &inodes);
		if (r < 0)
			return fail(err, r, "usage %s: %s", key, strerror(-r));
	}
	*ret_size = size;
	*ret_inodes = inodes;
	return 0;
}

static bool id_live(void *ud, uint64_t id)
{
	return store_ids_has(ud, id);
}

struct sweep_op {
	struct wop op;
	struct layout *layout;
	struct layout_trash trash;
};

/* Under the writer lock, in a batch of its own (wop.alone): no record
 * changes while directories are judged, and the records it judges by are
 * all committed (a Remove batched before it could still be taken back by a
 * failed commit or a crash, leaving a record without its directory); the
 * directories of Prepares in flight (made before their records) are left
 * alone. */
static int sweep_run(struct store_txn *txn, struct wop *w)
{
	struct sweep_op *o = (struct sweep_op *)w;
	struct store_ids ids = { 0 };
	int r = store_ids(txn, &ids);

	if (r < 0)
		return fail(w->err, r, "cleanup: %s",
			    *store_txn_errmsg(txn) ? store_txn_errmsg(txn) : strerror(-r));
	r = layout_sweep_collect(o->layout, id_live, &ids, &o->trash);
	store_ids_free(&ids);
	return r < 0 ? fail(w->err, r, "cleanup: %s", strerror(-r)) : 0;
}

/*
 * At start-up, each record's directory as it should be: what a committed
 * snapshot no longer needs (the extract directories, or the container's
 * writable layer its layer was made from) goes; what a crash may have lost
 * of a non-durable stage (an extract snapshot's empty directories, a view's
 * empty lower/) is made again.
 */
static int repair_dir(const struct snap_info *info, void *ud)
{
	static const char *const names[] = { "fs", "work", LAYOUT_RWLAYER };
	struct snapshotter *sn = ud;
	char rel[64];

	if (info->kind != SNAP_KIND_COMMITTED) {
		struct dir_shape shape = dir_shape(info->kind, info->key, info->parent);
		if (!shape.extract && !shape.lower)
			return 0;
		int r = layout_restore(&sn->layout, info->id, shape.extract, shape.lower);
		if (r < 0)
			log_warn("snapshot %s: cannot make its directory %" PRIu64 " again: %s",
				 info->key, info->id, strerror(-r));
		else if (r > 0)
			log_info("snapshot %s: made what a crash lost of its directory %" PRIu64,
				 info->key, info->id);
		return 0;
	}
	for (size_t i = 0; i < EL_ARRAY_SIZE(names); i++) {
		snprintf(rel, sizeof(rel), "%" PRIu64 "/%s", info->id, names[i]);
		if (faccessat(sn->layout.snapshots_fd, rel, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			layout_remove_subdir(&sn->layout, info->id, names[i]);
	}
	return 0;
}

static int cleanup(struct snapshotter *sn, bool startup, struct el_error *err)
{
	struct sweep_op o = {
		.op = { .fn = sweep_run, .what = "cleanup", .err = err, .alone = true },
		.layout = &sn->layout,
	};
	int r;

	if (startup) {
		/* nothing runs yet: every directory no record owns goes */
		_cleanup_(store_txn_freep) struct store_txn *txn = NULL;
		struct store_ids ids = { 0 };
		r = store_txn_begin(sn->store, false, &txn);
		if (r < 0)
			return fail(err, r, "cleanup: cannot start a transaction: %s",
				    strerror(-r));
		r = store_ids(txn, &ids);
		if (r < 0)
			return fail(err, r, "cleanup: %s", store_txn_errmsg(txn));
		r = layout_sweep(&sn->layout, id_live, &ids);
		store_ids_free(&ids);
		if (r < 0)
			return fail(err, r, "cleanup: %s", strerror(-r));
		/* a crash between Commit's record and the removal of what the
		 * layer was made from leaves that beside layer.erofs; one
		 * after a Prepare may have lost its (non-durable) directory */
		int k = store_walk(txn, repair_dir, sn);
		if (k < 0)
			return fail(err, k, "cleanup: %s",
				    *store_txn_errmsg(txn) ? store_txn_errmsg(txn) : strerror(-k));
		/* what the last run left in the page cache (a process that
		 * died, not a machine) is durable before anything counts on it */
		k = layout_sync(&sn->layout);
		if (k < 0)
			return fail(err, k, "cannot sync %s: %s", sn->layout.snapshots, strerror(-k));
		return r;
	}
	r = wq_submit(sn->wq, &o.op);
	fault(sn, "cleanup:collected");
	/* what was moved to trash is deleted even if the batch failed later:
	 * no record owned it */
	int removed = layout_sweep_finish(&sn->layout, &o.trash);
	return r < 0 ? r : removed;
}

int sn_cleanup(struct snapshotter *sn, struct el_error *err)
{
	return cleanup(sn, false, err);
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
