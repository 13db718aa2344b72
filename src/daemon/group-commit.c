/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The group commit: one queue of record writes, run in batches by whichever
 * caller leads (group-commit.h).
 *
 * Every write of a record (Prepare, View, Commit's record, Remove, Update,
 * and Cleanup's sweep, which must see no record change while it judges
 * directories) is an operation queued here. The first writer that finds no
 * batch running becomes the leader: it takes every queued operation, runs
 * each in a transaction nested in one write transaction (an operation that
 * fails is rolled back alone; the others go on), commits once and wakes
 * everybody with their own result once that is durable. Operations queued
 * meanwhile form the next batch, so batches grow with the load and a writer
 * waits for at most the batch in progress and its own. Cleanup's sweep runs
 * alone (wop.alone): it moves directories by what the records say, and must
 * not count a Remove of the same batch, which a failed commit or a crash
 * before it would take back (a record left without its directory).
 *
 * The store defers its syncs (store_options.deferred_sync): a commit syncs
 * its data, and the page that makes it current is synced by the next
 * commit. So a leader that sees operations queued behind its batch leaves
 * the batch pending and hands over: the next batch's commit makes both its
 * own data and the pending batch durable, and only then are the pending
 * batch's callers answered. A leader with nobody behind syncs at once. Under
 * load that is one sync a batch instead of two, and an answer never goes
 * out before its write is durable (a Remove deletes its directory only
 * after, so a crash can never bring back a record whose files are gone).
 *
 * Nothing slow runs in
 * a batch, not even a directory fsync: directories and rwlayer.img are made
 * and made durable before (under reserved ids), deletions happen after, by
 * each caller. Each caller sleeps on its own condition variable, woken when
 * its operation is done or when it is first in line to lead the next batch:
 * a batch's end wakes the callers it served and one more, not all.
 */
#include "group-commit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapshotter-internal.h"
#include "common/macro.h"

struct group_commit {
	struct store *store;
	wq_fault_fn fault;
	void *fault_ud;
	pthread_mutex_t lock;
	struct wop *head, **tail;
	struct wop *pending; /* committed, durable with the next commit */
	bool busy;	     /* a leader runs a batch */
	uint64_t batches, ops, max;
};

int wq_new(struct store *store, wq_fault_fn fault, void *ud, struct group_commit **ret)
{
	struct group_commit *q = calloc(1, sizeof(*q));

	if (!q)
		return -ENOMEM;
	q->store = store;
	q->fault = fault;
	q->fault_ud = ud;
	pthread_mutex_init(&q->lock, NULL);
	q->tail = &q->head;
	*ret = q;
	return 0;
}

void wq_free(struct group_commit *q)
{
	if (!q)
		return;
	pthread_mutex_destroy(&q->lock);
	free(q);
}

static void fault(struct group_commit *q, const char *point)
{
	if (q->fault)
		q->fault(q->fault_ud, point);
}

static void wop_fail(struct wop *w, int r, const char *why)
{
	w->result = r;
	if (w->key)
		fail(w->err, r, "%s %s: %s", w->what, w->key, why);
	else
		fail(w->err, r, "%s: %s", w->what, why);
}

/* Fails every operation of the batch that had succeeded: their writes are
 * lost with the transaction. */
static void batch_fail(struct wop *batch, int r, const char *why)
{
	for (struct wop *w = batch; w; w = w->next)
		if (w->result == 0)
			wop_fail(w, r, why);
}

/* Runs the operations of a batch in txn, each nested (a failure undoes
 * only its own writes); a lone one runs in txn itself. Returns 0, or the
 * lone operation's error (txn must then be aborted). */
static int batch_apply(struct store_txn *txn, struct wop *batch)
{
	char why[600];

	if (!batch->next)
		return batch->result = batch->fn(txn, batch);
	for (struct wop *w = batch; w; w = w->next) {
		struct store_txn *child = NULL;
		int r = store_txn_begin_nested(txn, &child);
		if (r < 0) {
			snprintf(why, sizeof(why), "cannot start a transaction: %s", strerror(-r));
			wop_fail(w, r, why);
			continue;
		}
		r = w->fn(child, w);
		if (r == 0) {
			r = store_txn_commit(child);
			if (r < 0)
				store_fail(w->err, child, r, w->what, w->key ? w->key : "");
		}
		store_txn_free(child);
		w->result = r;
	}
	return 0;
}

/* Runs a batch; true when it was committed (durable with the next commit or
 * sync), false when nothing was (every operation has its error). */
static bool batch_run(struct group_commit *q, struct wop *batch)
{
	_cleanup_(store_txn_freep) struct store_txn *txn = NULL;
	char why[600];
	int r = store_txn_begin(q->store, true, &txn);

	if (r < 0) {
		snprintf(why, sizeof(why), "cannot start a transaction: %s", strerror(-r));
		batch_fail(batch, r, why);
		return false;
	}
	if (batch_apply(txn, batch) < 0)
		return false;
	fault(q, "batch:applied");
	r = store_txn_commit(txn);
	if (r < 0) {
		snprintf(why, sizeof(why), "cannot commit: %s",
			 *store_txn_errmsg(txn) ? store_txn_errmsg(txn) : strerror(-r));
		batch_fail(batch, r, why);
		return false;
	}
	fault(q, "batch:committed");
	return true;
}

/* The operations of a batch are answered (the lock held; they cannot go, and
 * take their condition variables with them, before it is released). A sync
 * that failed fails those that had succeeded: their writes may not last. */
static uint64_t batch_done(struct wop *batch, const struct wop *self, int sync_r)
{
	uint64_t n = 0;
	char why[600];

	if (sync_r < 0)
		snprintf(why, sizeof(why), "cannot sync the metadata: %s", strerror(-sync_r));
	for (struct wop *w = batch, *next; w; w = next) {
		next = w->next; /* w belongs to its caller once done */
		if (sync_r < 0 && w->result == 0)
			wop_fail(w, sync_r, why);
		w->done = true;
		if (w != self)
			pthread_cond_signal(w->wake);
		n++;
	}
	return n;
}

/* The next batch off the queue (the lock held): everything queued, up to an
 * operation that runs alone, which is a batch by itself. */
static struct wop *take_batch(struct group_commit *q)
{
	struct wop *batch = q->head, **cut = &q->head->next;

	if (!batch->alone)
		while (*cut && !(*cut)->alone)
			cut = &(*cut)->next;
	q->head = *cut;
	*cut = NULL;
	if (!q->head)
		q->tail = &q->head;
	return batch;
}

int wq_submit(struct group_commit *q, struct wop *op)
{
	pthread_cond_t wake = PTHREAD_COND_INITIALIZER;

	op->next = NULL;
	op->done = false;
	op->result = 0;
	op->wake = &wake;
	pthread_mutex_lock(&q->lock);
	*q->tail = op;
	q->tail = &op->next;
	while (!op->done) {
		if (q->busy || !q->head) {
			/* a batch runs, or ours waits in the pending one for
			 * the next commit */
			pthread_cond_wait(&wake, &q->lock);
			continue;
		}
		/* lead: what is queued so far (ours, unless an operation that
		 * runs alone comes before it: then ours waits for the next
		 * batch), and the batch before, which our commit makes durable */
		struct wop *batch = take_batch(q), *prev = q->pending;
		uint64_t n = 0;
		q->pending = NULL;
		q->busy = true;
		pthread_mutex_unlock(&q->lock);
		bool committed = batch_run(q, batch);
		int prev_r = prev && !committed ? store_sync(q->store) : 0;
		pthread_mutex_lock(&q->lock);
		if (prev)
			batch_done(prev, op, prev_r);
		if (committed && q->head) {
			/* the next batch's commit answers ours */
			q->pending = batch;
			for (struct wop *w = batch; w; w = w->next)
				n++;
		} else {
			int r = 0;
			if (committed) {
				pthread_mutex_unlock(&q->lock);
				r = store_sync(q->store);
				pthread_mutex_lock(&q->lock);
			}
			n = batch_done(batch, op, r);
		}
		q->batches++;
		q->ops += n;
		q->max = EL_MAX(q->max, n);
		q->busy = false;
		/* the first of those queued meanwhile leads the next batch */
		if (q->head)
			pthread_cond_signal(q->head->wake);
	}
	pthread_mutex_unlock(&q->lock);
	pthread_cond_destroy(&wake);
	return op->result;
}

void wq_stats(struct group_commit *q, uint64_t *ret_ops, uint64_t *ret_batches,
	      uint64_t *ret_max)
{
	pthread_mutex_lock(&q->lock);
	*ret_ops = q->ops;
	*ret_batches = q->batches;
	*ret_max = q->max;
	pthread_mutex_unlock(&q->lock);
}
