/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The chain merges that Commit leaves for later (docs/architecture.md,
 * "Commit and the chain's merge"): one worker thread runs them, each after a
 * short grace period, oldest first. A job is a chain of snapshot ids, oldest
 * first; it is known by its top (the last id). The queue knows nothing of
 * what a merge does: the owner's run function does it.
 */
#ifndef SPIN_DAEMON_MERGE_QUEUE_H
#define SPIN_DAEMON_MERGE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct merge_queue;

/* Runs the job for the chain ids[0..n); the queue frees ids. */
typedef void (*mq_run_fn)(void *ud, const uint64_t *ids, size_t n);

int mq_new(mq_run_fn run, void *ud, unsigned grace_ms, struct merge_queue **ret);
/* Drops what is queued, waits for the running job, stops the worker. */
void mq_free(struct merge_queue *q);

/* Queues a job for the chain ids[0..n) (copied), replacing a queued one with
 * the same top. -ENOMEM, or 0. */
int mq_add(struct merge_queue *q, const uint64_t *ids, size_t n);

/* The chain ending at top is a step on the way to a longer one (an extract
 * snapshot was prepared on it): a queued job for it goes. A running one
 * runs to its end. */
void mq_drop(struct merge_queue *q, uint64_t top);

/* Nothing of top's is queued or running when this returns. A queued job is
 * handed to the caller to run now: returns true with *ret_ids (the caller
 * frees them) and *ret_n; false when there was none (a running one has been
 * waited for). */
bool mq_settle(struct merge_queue *q, uint64_t top, uint64_t **ret_ids, size_t *ret_n);

/* Jobs run and jobs dropped so far (tests, the closing log line). */
void mq_stats(struct merge_queue *q, uint64_t *ret_run, uint64_t *ret_dropped);

#endif
