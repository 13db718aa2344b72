/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The metrics endpoint (--metrics-address): GET /metrics over HTTP/1.x on a
 * unix socket or a loopback TCP port, one request per connection, served by
 * one thread of its own. The endpoint has no authentication, so TCP is
 * loopback only.
 */
#ifndef SES_METRICS_HTTP_H
#define SES_METRICS_HTTP_H

#include "erofs-layer/error.h"
#include "metrics.h"

/* A request head larger than this answers 431; one that takes longer than
 * the timeout to arrive is dropped (408). */
#define METRICS_HEAD_MAX 8192
#define METRICS_TIMEOUT_MS 2000
/* How long a connection stays open after the answer, for the client to close. */
#define METRICS_LINGER_MS 200

struct metrics_server;

/* ADDR is a unix socket path ("/..."), 127.0.0.1:PORT (or any of 127/8),
 * [::1]:PORT or localhost:PORT (127.0.0.1); PORT 0 takes a free one.
 * -EINVAL with a message for anything else. */
int metrics_address_check(const char *addr, struct el_error *err);

/*
 * Binds addr (a stale unix socket is removed, one that answers is
 * -EADDRINUSE; the socket is 0660) and starts the thread; scrapes render m
 * with sample (metrics_render). -errno and err on failure.
 */
int metrics_server_start(const char *addr, struct metrics *m, metrics_sample_fn sample, void *ud,
			 struct metrics_server **ret, struct el_error *err);
/* The address served: the path, or HOST:PORT with the port bound. */
const char *metrics_server_address(const struct metrics_server *s);
/* Stops the thread (a connection being read is dropped), closes, removes
 * the unix socket. NULL ok. */
void metrics_server_stop(struct metrics_server *s);

#endif
