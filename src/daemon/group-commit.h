/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The group commit of the snapshotter's record writes (docs/durability.md,
 * "Group commit"): concurrent callers' writes share one LMDB write
 * transaction, each in its own nested transaction, and a caller is answered
 * only once its write is durable. It has no thread of its own: the first
 * caller that finds no batch running leads. Its functions are wq_* (the
 * write queue).
 */
#ifndef SPIN_DAEMON_GROUP_COMMIT_H
#define SPIN_DAEMON_GROUP_COMMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "erofs-layer/error.h"
#include "store.h"

/* One write, queued by its caller; embedded first in a larger struct that
 * carries the operation's arguments and results. */
struct wop {
	/* runs on the leader's thread in a nested transaction; messages go to
	 * err (the caller's, who is waiting) */
	int (*fn)(struct store_txn *txn, struct wop *op);
	const char *what, *key; /* for messages about the batch */
	struct el_error *err;
	/* runs in a batch of its own (Cleanup's sweep): what it does outside
	 * the store (directories moved to trash) may rest only on records that
	 * are committed, not on another operation's uncommitted write, which a
	 * failed commit or a crash would take back */
	bool alone;
	int result;
	bool done;
	pthread_cond_t *wake; /* its caller waits on it */
	struct wop *next;
};

struct group_commit;

/* Called, when not NULL, at the named points of a batch (batch:applied,
 * batch:committed), for the crash tests (snapshotter.h, sn_set_fault_hook). */
typedef void (*wq_fault_fn)(void *ud, const char *point);

/* The queue of writes to store, which must use store_options.deferred_sync.
 * -ENOMEM, or 0. */
int wq_new(struct store *store, wq_fault_fn fault, void *ud, struct group_commit **ret);
/* Nothing may be queued or running. */
void wq_free(struct group_commit *q);

/* Queues op and returns its result once its batch has committed (or
 * failed) and is durable. */
int wq_submit(struct group_commit *q, struct wop *op);

/* How many operations went through, in how many transactions, and the most
 * in one. */
void wq_stats(struct group_commit *q, uint64_t *ret_ops, uint64_t *ret_batches,
	      uint64_t *ret_max);

#endif
