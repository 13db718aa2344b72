/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's figures in Prometheus' text exposition format (0.0.4):
 * counters and histograms fed as RPCs and Applies end, gauges sampled at
 * scrape time through a callback. Thread-safe; no transport (metrics-http.c
 * serves it).
 */
#ifndef SES_METRICS_H
#define SES_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Methods beyond this many distinct names count as method="other": the
 * names come from clients (unknown methods are observed too). */
#define METRICS_MAX_METHODS 64

/* The duration histograms' buckets: 0.001 0.005 0.01 0.05 0.1 0.5 1 5 10 30
 * 60 +Inf seconds. */

struct metrics;

int metrics_new(struct metrics **ret);
void metrics_free(struct metrics *m); /* NULL ok */

/* One RPC ended with gRPC status code (0 OK ... 16 UNAUTHENTICATED) after us
 * microseconds. */
void metrics_observe_rpc(struct metrics *m, const char *method, int code, uint64_t us);

/* One Apply of ours ended; blob_bytes read, image_bytes written (0 on error). */
void metrics_observe_apply(struct metrics *m, bool ok, uint64_t blob_bytes,
			   uint64_t image_bytes, uint64_t us);

/* What a scrape samples; a part whose have_ flag stays false is left out. */
struct metrics_sample {
	bool have_snapshots;
	uint64_t committed, active, view;
	bool have_root;
	uint64_t root_used, root_free;
};
typedef void (*metrics_sample_fn)(struct metrics_sample *s, void *ud);

/* Writes every family to f; sample (may be NULL) runs first, without any
 * lock of m held. Returns 0 or -EIO when f failed. */
int metrics_render(struct metrics *m, FILE *f, metrics_sample_fn sample, void *ud);

#endif
