/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The busy set: the ids of the snapshots whose files are being written, in
 * an unordered array (a handful at a time: one per conversion or merge in
 * flight) under one lock; a release wakes every waiter to look again.
 */
#include "busy-set.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/util.h"

void busy_set_init(struct busy_set *b)
{
	*b = (struct busy_set){ 0 };
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->cond, NULL);
}

void busy_set_destroy(struct busy_set *b)
{
	pthread_mutex_destroy(&b->lock);
	pthread_cond_destroy(&b->cond);
	free(b->ids);
	b->ids = NULL;
}

int busy_claim(struct busy_set *b, uint64_t id)
{
	pthread_mutex_lock(&b->lock);
	for (;;) {
		bool taken = false;
		for (size_t i = 0; i < b->n && !taken; i++)
			taken = b->ids[i] == id;
		if (!taken)
			break;
		pthread_cond_wait(&b->cond, &b->lock);
	}
	if (el_grow((void **)&b->ids, &b->cap, b->n + 1, sizeof(*b->ids)) < 0) {
		pthread_mutex_unlock(&b->lock);
		return -ENOMEM;
	}
	b->ids[b->n++] = id;
	pthread_mutex_unlock(&b->lock);
	return 0;
}

void busy_release(struct busy_set *b, uint64_t id)
{
	pthread_mutex_lock(&b->lock);
	for (size_t i = 0; i < b->n; i++)
		if (b->ids[i] == id) {
			b->ids[i] = b->ids[--b->n];
			break;
		}
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
}
