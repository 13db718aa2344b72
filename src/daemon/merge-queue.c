/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The deferred chain merges. Jobs wait in a list, oldest first; the worker
 * takes the oldest whose grace period is over. The grace period is what
 * lets an unpack skip the merges of its intermediate chains: containerd
 * prepares the next layer's extract snapshot on a layer within milliseconds
 * of committing it, and that drops the layer's job before it starts.
 */
#include "merge-queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/macro.h"

struct job {
	struct job *next;
	uint64_t *ids;
	size_t n;
	struct timespec due; /* CLOCK_MONOTONIC */
};

struct merge_queue {
	mq_run_fn run;
	void *ud;
	unsigned grace_ms;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* the list, running or stop changed */
	struct job *head;
	uint64_t running; /* the top of the job being run, 0 when none */
	bool stop;
	uint64_t n_run, n_dropped;
};

static uint64_t top_of(const struct job *j)
{
	return j->ids[j->n - 1];
}

static void job_free(struct job *j)
{
	if (j) {
		free(j->ids);
		free(j);
	}
}

/* Unlinks and returns the queued job for top, or NULL. Under the lock. */
static struct job *unlink_top(struct merge_queue *q, uint64_t top)
{
	for (struct job **p = &q->head; *p; p = &(*p)->next)
		if (top_of(*p) == top) {
			struct job *j = *p;
			*p = j->next;
			j->next = NULL;
			return j;
		}
	return NULL;
}

static bool due(const struct job *j, const struct timespec *now)
{
	return now->tv_sec > j->due.tv_sec ||
	       (now->tv_sec == j->due.tv_sec && now->tv_nsec >= j->due.tv_nsec);
}

static void *worker(void *arg)
{
	struct merge_queue *q = arg;

	pthread_mutex_lock(&q->lock);
	while (!q->stop) {
		struct timespec now;
		if (!q->head) {
			pthread_cond_wait(&q->cond, &q->lock);
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!due(q->head, &now)) {
			struct timespec until = q->head->due;
			pthread_cond_timedwait(&q->cond, &q->lock, &until);
			continue;
		}
		struct job *j = q->head;
		q->head = j->next;
		q->running = top_of(j);
		pthread_mutex_unlock(&q->lock);
		q->run(q->ud, j->ids, j->n);
		job_free(j);
		pthread_mutex_lock(&q->lock);
		q->running = 0;
		q->n_run++;
		pthread_cond_broadcast(&q->cond);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int mq_new(mq_run_fn run, void *ud, unsigned grace_ms, struct merge_queue **ret)
{
	struct merge_queue *q = calloc(1, sizeof(*q));
	pthread_condattr_t ca;
	int r;

	if (!q)
		return -ENOMEM;
	q->run = run;
	q->ud = ud;
	q->grace_ms = grace_ms;
	pthread_mutex_init(&q->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cond, &ca);
	pthread_condattr_destroy(&ca);
	r = -pthread_create(&q->thread, NULL, worker, q);
	if (r < 0) {
		pthread_cond_destroy(&q->cond);
		pthread_mutex_destroy(&q->lock);
		free(q);
		return r;
	}
	*ret = q;
	return 0;
}

void mq_free(struct merge_queue *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->stop = true;
	while (q->head) {
		struct job *j = q->head;
		q->head = j->next;
		job_free(j);
	}
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

int mq_add(struct merge_queue *q, const uint64_t *ids, size_t n)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j || n == 0 || !(j->ids = malloc(n * sizeof(*ids)))) {
		free(j);
		return -ENOMEM;
	}
	memcpy(j->ids, ids, n * sizeof(*ids));
	j->n = n;
	clock_gettime(CLOCK_MONOTONIC, &j->due);
	j->due.tv_nsec += (long)(q->grace_ms % 1000) * 1000000L;
	j->due.tv_sec += q->grace_ms / 1000 + j->due.tv_nsec / 1000000000L;
	j->due.tv_nsec %= 1000000000L;

	pthread_mutex_lock(&q->lock);
	job_free(unlink_top(q, top_of(j)));
	struct job **p = &q->head;
	while (*p)
		p = &(*p)->next;
	*p = j;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	return 0;
}

void mq_drop(struct merge_queue *q, uint64_t top)
{
	pthread_mutex_lock(&q->lock);
	struct job *j = unlink_top(q, top);
	if (j) {
		q->n_dropped++;
		pthread_cond_broadcast(&q->cond);
	}
	pthread_mutex_unlock(&q->lock);
	job_free(j);
}

bool mq_settle(struct merge_queue *q, uint64_t top, uint64_t **ret_ids, size_t *ret_n)
{
	struct job *j;

	pthread_mutex_lock(&q->lock);
	while (q->running == top)
		pthread_cond_wait(&q->cond, &q->lock);
	j = unlink_top(q, top);
	pthread_mutex_unlock(&q->lock);
	if (!j)
		return false;
	*ret_ids = EL_TAKE_PTR(j->ids);
	*ret_n = j->n;
	job_free(j);
	return true;
}

void mq_stats(struct merge_queue *q, uint64_t *ret_run, uint64_t *ret_dropped)
{
	pthread_mutex_lock(&q->lock);
	*ret_run = q->n_run;
	*ret_dropped = q->n_dropped;
	pthread_mutex_unlock(&q->lock);
}
