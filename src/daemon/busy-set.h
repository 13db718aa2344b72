/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The snapshots whose files a conversion or merge is writing: a call claims
 * a snapshot's id before it writes that snapshot's files and releases it
 * after, so two calls for the same snapshot never write the same files while
 * different snapshots convert in parallel (docs/architecture.md, "Threads of
 * the daemon").
 */
#ifndef SPIN_DAEMON_BUSY_SET_H
#define SPIN_DAEMON_BUSY_SET_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct busy_set {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* an id was released */
	uint64_t *ids;
	size_t n, cap;
};

void busy_set_init(struct busy_set *b);
void busy_set_destroy(struct busy_set *b);

/* Waits until no other call writes the files of snapshot id, then claims it.
 * -ENOMEM, or 0. */
int busy_claim(struct busy_set *b, uint64_t id);
void busy_release(struct busy_set *b, uint64_t id);

#endif
