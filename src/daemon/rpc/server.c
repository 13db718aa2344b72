/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gRPC server. One dispatcher thread drains one long-lived completion
 * queue (docs/architecture.md: one queue per thread, never one per call); handlers run
 * on a worker pool and block on their own batches, which the dispatcher
 * completes by signalling the call's condition variable.
 *
 * Life of a call (the sequence of docs/containerd-contract.md):
 *   request_call completes
 *     → post RECV_CLOSE_ON_SERVER (completes when the client is gone or the
 *       status went out: that is how cancellation is learnt)
 *     → post RECV_MESSAGE; when it completes the call goes to a worker
 *   worker: unpack, run the handler, which sends
 *     SEND_INITIAL_METADATA (always in the first outgoing batch: a status
 *     without initial metadata before it hangs some clients, docs/architecture.md)
 *     + SEND_MESSAGE... + SEND_STATUS_FROM_SERVER; the worker waits for
 *     the batches of a stream, not for the last one (the status): it moves
 *     on to the next call while the dispatcher sees that batch complete
 *   the call is freed when the close op, the worker and the status batch
 *   have all let go of it.
 *
 * Unknown methods get UNIMPLEMENTED straight from the dispatcher: containerd
 * 1.7 falls back to the next differ only on that code (docs/containerd-contract.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "rpc-internal.h"
#include "common/macro.h"
#include "common/unix-socket.h"
#include "common/util.h"

/* request_call operations kept outstanding: how many calls can arrive
 * between two turns of the dispatcher loop. */
#define PENDING_REQUESTS 16
#define DEFAULT_WORKERS 8

enum tag_kind {
	TAG_REQUEST,  /* grpc_server_request_call */
	TAG_RECV,     /* the first RECV_MESSAGE */
	TAG_CLOSE,    /* RECV_CLOSE_ON_SERVER (or the whole UNIMPLEMENTED batch) */
	TAG_BATCH,    /* a batch a worker waits for */
	TAG_FINAL,    /* the batch with the status: nobody waits for it */
	TAG_SHUTDOWN, /* grpc_server_shutdown_and_notify */
};

struct rpc_tag {
	enum tag_kind kind;
	struct rpc_call *call;
};

struct rpc_method {
	char *path;
	enum rpc_kind kind;
	const ProtobufCMessageDescriptor *request;
	rpc_handler_fn fn;
	void *userdata;
};

struct rpc_call {
	struct rpc_server *srv;
	grpc_call *call; /* NULL until request_call succeeded */
	grpc_call_details details;
	grpc_metadata_array md_in;
	char *method;
	char **md; /* NUL-terminated copies: key, value, key, value... */
	size_t n_md;
	const struct rpc_method *m;
	uint64_t start_us;

	struct rpc_tag t_request, t_recv, t_close, t_batch, t_final;
	grpc_byte_buffer *recv_buf; /* first message */
	bool recv_ok;
	int close_cancelled; /* written by gRPC when the close op completes */
	atomic_bool cancelled;

	/* The worker's batch, completed by the dispatcher. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool batch_done;
	bool batch_ok;

	/* Worker side only. */
	bool sent_initial_md;
	bool sent_status;
	bool status_ok; /* the status batch completed */
	int status;
	char *status_msg;
	/* what the status batch sends, kept until it completes */
	grpc_byte_buffer *final_bb;
	grpc_slice final_details;
	bool has_final_details;

	/* One for the close op, one for the request path (dispatcher, then
	 * worker), one for the status batch while it is in flight. */
	atomic_int refs;
	struct rpc_call *next; /* worker queue */
};

struct rpc_server {
	char *path;
	grpc_server *server;
	grpc_completion_queue *cq;
	bool grpc_inited;

	struct rpc_method *methods;
	size_t n_methods, methods_cap;
	rpc_log_fn log_fn;
	void *log_ud;

	pthread_t dispatcher;
	bool dispatcher_running;
	bool started;	/* grpc_server_start() was called */
	bool stopped;	/* rpc_server_shutdown() finished */
	bool published;	/* our socket sits at path: remove it at the end */
	dev_t sock_dev;
	ino_t sock_ino;

	pthread_mutex_t lock; /* the fields below */
	pthread_cond_t cond;
	bool accepting; /* keep request_call armed */
	bool shutdown_done;
	unsigned pending_requests;
	unsigned live_calls;
	struct rpc_tag t_shutdown;

	pthread_mutex_t pool_lock; /* the worker pool */
	pthread_cond_t pool_cond;
	struct rpc_call *queue_head, *queue_tail;
	unsigned queued, idle, nthreads, min_threads;
	bool pool_quit;
	pthread_t threads[RPC_SERVER_MAX_WORKERS];
};

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- calls ------------------------------------------------------------- */

static struct rpc_call *call_new(struct rpc_server *srv)
{
	struct rpc_call *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->srv = srv;
	grpc_call_details_init(&c->details);
	grpc_metadata_array_init(&c->md_in);
	c->t_request = (struct rpc_tag){ TAG_REQUEST, c };
	c->t_recv = (struct rpc_tag){ TAG_RECV, c };
	c->t_close = (struct rpc_tag){ TAG_CLOSE, c };
	c->t_batch = (struct rpc_tag){ TAG_BATCH, c };
	c->t_final = (struct rpc_tag){ TAG_FINAL, c };
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	atomic_init(&c->cancelled, false);
	atomic_init(&c->refs, 0);
	return c;
}

static void call_free(struct rpc_call *c)
{
	struct rpc_server *srv = c->srv;
	bool live = c->call != NULL;

	if (live && srv->log_fn) {
		int code = c->sent_status ? c->status : RPC_CANCELLED;
		const char *msg = c->sent_status ? c->status_msg : "cancelled before a status";

		/* A status the client never got is not what happened. */
		if (atomic_load(&c->cancelled) && !c->status_ok) {
			code = RPC_CANCELLED;
			msg = "cancelled";
		}
		srv->log_fn(c->method ?: "?", code, msg, now_us() - c->start_us, srv->log_ud);
	}
	if (c->call)
		grpc_call_unref(c->call);
	if (c->recv_buf)
		grpc_byte_buffer_destroy(c->recv_buf);
	if (c->final_bb)
		grpc_byte_buffer_destroy(c->final_bb);
	if (c->has_final_details)
		grpc_slice_unref(c->final_details);
	grpc_call_details_destroy(&c->details);
	grpc_metadata_array_destroy(&c->md_in);
	for (size_t i = 0; i < 2 * c->n_md; i++)
		free(c->md[i]);
	free(c->md);
	free(c->method);
	free(c->status_msg);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);

	if (live) {
		pthread_mutex_lock(&srv->lock);
		srv->live_calls--;
		pthread_cond_broadcast(&srv->cond);
		pthread_mutex_unlock(&srv->lock);
	}
}

static void call_unref(struct rpc_call *c)
{
	if (atomic_fetch_sub(&c->refs, 1) == 1)
		call_free(c);
}

/* Starts a batch and waits for the dispatcher to see it complete. One
 * thread per call: handlers must not share a call between threads. */
static int call_batch(struct rpc_call *c, const grpc_op *ops, size_t n)
{
	grpc_call_error e;
	bool ok;

	pthread_mutex_lock(&c->lock);
	c->batch_done = false;
	pthread_mutex_unlock(&c->lock);

	e = grpc_call_start_batch(c->call, ops, n, &c->t_batch, NULL);
	if (e != GRPC_CALL_OK)
		return -EPROTO; /* no completion will come */

	pthread_mutex_lock(&c->lock);
	while (!c->batch_done)
		pthread_cond_wait(&c->cond, &c->lock);
	ok = c->batch_ok;
	pthread_mutex_unlock(&c->lock);
	return ok ? 0 : -ECANCELED;
}

static void op_initial_md(struct rpc_call *c, grpc_op *ops, size_t *n)
{
	if (c->sent_initial_md)
		return;
	ops[(*n)++] = (grpc_op){ .op = GRPC_OP_SEND_INITIAL_METADATA };
	c->sent_initial_md = true;
}

static void record_status(struct rpc_call *c, int code, const char *msg)
{
	c->sent_status = true;
	c->status = code;
	free(c->status_msg);
	c->status_msg = msg ? strdup(msg) : NULL;
}

/*
 * Starts the batch that ends the call and returns without waiting for it:
 * the worker goes on to the next call while gRPC sends, and the dispatcher
 * notes the outcome (status_ok, for the log line) and drops the batch's
 * reference. What the batch sends lives in the call until then: the core
 * takes its own references today, but only "not retained past start_batch"
 * of the pointers is promised.
 */
static int call_final_batch(struct rpc_call *c, grpc_op *ops, size_t n)
{
	/* gRPC would take the batch and fail it later: the caller learns it now */
	if (atomic_load(&c->cancelled))
		return -ECANCELED;
	atomic_fetch_add(&c->refs, 1);
	if (grpc_call_start_batch(c->call, ops, n, &c->t_final, NULL) != GRPC_CALL_OK) {
		atomic_fetch_sub(&c->refs, 1); /* no completion will come */
		return -EPROTO;
	}
	return 0;
}

static int send_status(struct rpc_call *c, int code, const char *msg)
{
	grpc_op ops[2];
	size_t n = 0;

	if (msg) {
		c->final_details = grpc_slice_from_copied_string(msg);
		c->has_final_details = true;
	}
	op_initial_md(c, ops, &n);
	ops[n++] = (grpc_op){
		.op = GRPC_OP_SEND_STATUS_FROM_SERVER,
		.data.send_status_from_server = {
			.status = (grpc_status_code)code,
			.status_details = msg ? &c->final_details : NULL,
		},
	};
	record_status(c, code, msg);
	return call_final_batch(c, ops, n);
}

const char *rpc_call_method(const struct rpc_call *c)
{
	return c->method;
}

const char *rpc_call_metadata(const struct rpc_call *c, const char *key)
{
	for (size_t i = 0; i < c->n_md; i++)
		if (strcmp(c->md[2 * i], key) == 0)
			return c->md[2 * i + 1];
	return NULL;
}

bool rpc_call_cancelled(const struct rpc_call *c)
{
	return atomic_load(&c->cancelled);
}

int rpc_call_reply(struct rpc_call *c, const ProtobufCMessage *resp)
{
	grpc_op ops[3];
	size_t n = 0;

	if (c->sent_status)
		return -EALREADY;
	c->final_bb = rpc_pack(resp);
	if (!c->final_bb)
		return -EINVAL;
	op_initial_md(c, ops, &n);
	ops[n++] = (grpc_op){ .op = GRPC_OP_SEND_MESSAGE,
			      .data.send_message.send_message = c->final_bb };
	ops[n++] = (grpc_op){
		.op = GRPC_OP_SEND_STATUS_FROM_SERVER,
		.data.send_status_from_server.status = GRPC_STATUS_OK,
	};
	record_status(c, RPC_OK, NULL);
	return call_final_batch(c, ops, n);
}

int rpc_call_send(struct rpc_call *c, const ProtobufCMessage *msg)
{
	grpc_byte_buffer *bb;
	grpc_op ops[2];
	size_t n = 0;
	int r;

	if (c->m->kind == RPC_UNARY)
		return -EINVAL;
	if (c->sent_status)
		return -EALREADY;
	if (atomic_load(&c->cancelled))
		return -ECANCELED;
	bb = rpc_pack(msg);
	if (!bb)
		return -EINVAL;
	op_initial_md(c, ops, &n);
	ops[n++] = (grpc_op){ .op = GRPC_OP_SEND_MESSAGE, .data.send_message.send_message = bb };
	r = call_batch(c, ops, n);
	grpc_byte_buffer_destroy(bb);
	return r;
}

int rpc_call_finish(struct rpc_call *c)
{
	if (c->sent_status)
		return -EALREADY;
	return send_status(c, RPC_OK, NULL);
}

/* The message travels in a trailer (grpc-message); peers cap header sizes
 * (8 KiB by default in gRPC core), so a runaway message is cut. */
#define MAX_STATUS_MESSAGE 4096

__attribute__((format(printf, 3, 0)))
static int call_verror(struct rpc_call *c, int code, const char *fmt, va_list ap)
{
	_cleanup_free_ char *msg = NULL;

	if (c->sent_status)
		return -EALREADY;
	if (code <= RPC_OK || code > RPC_UNAUTHENTICATED)
		code = RPC_UNKNOWN;
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	if (msg && strlen(msg) > MAX_STATUS_MESSAGE)
		strcpy(msg + MAX_STATUS_MESSAGE - 3, "...");
	return send_status(c, code, msg ?: "(out of memory formatting the error)");
}

int rpc_call_error(struct rpc_call *c, int code, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = call_verror(c, code, fmt, ap);
	va_end(ap);
	return r;
}

int rpc_call_error_errno(struct rpc_call *c, int err, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = call_verror(c, rpc_status_from_errno(err), fmt, ap);
	va_end(ap);
	return r;
}

int rpc_call_recv(struct rpc_call *c, ProtobufCMessage **ret)
{
	grpc_byte_buffer *bb = NULL;
	grpc_op op = { .op = GRPC_OP_RECV_MESSAGE, .data.recv_message.recv_message = &bb };
	int r;

	if (c->m->kind != RPC_BIDI_STREAM)
		return -EINVAL;
	r = call_batch(c, &op, 1);
	if (r < 0) {
		if (bb)
			grpc_byte_buffer_destroy(bb);
		return r;
	}
	if (!bb)
		return 0; /* the client closed its side */
	r = rpc_unpack(bb, c->m->request, ret);
	grpc_byte_buffer_destroy(bb);
	return r < 0 ? r : 1;
}

/* NUL-terminated copies of the request metadata: gRPC's are slices. */
static int call_copy_metadata(struct rpc_call *c)
{
	size_t n = c->md_in.count;

	if (n == 0)
		return 0;
	c->md = calloc(2 * n, sizeof(char *));
	if (!c->md)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		c->md[2 * i] = rpc_slice_strdup(c->md_in.metadata[i].key);
		c->md[2 * i + 1] = rpc_slice_strdup(c->md_in.metadata[i].value);
		c->n_md = i + 1;
		if (!c->md[2 * i] || !c->md[2 * i + 1])
			return -ENOMEM;
	}
	return 0;
}

/* On a worker thread: the request path's reference ends here. */
static void call_run(struct rpc_call *c)
{
	const struct rpc_method *m = c->m;
	_cleanup_message_ ProtobufCMessage *req = NULL;
	int r;

	if (atomic_load(&c->cancelled) || !c->recv_ok) {
		/* The client left before we started: no status is owed. */
	} else if (call_copy_metadata(c) < 0) {
		rpc_call_error(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
	} else if (!c->recv_buf && m->kind != RPC_BIDI_STREAM) {
		rpc_call_error(c, RPC_INVALID_ARGUMENT, "%s: no request message", c->method);
	} else {
		if (c->recv_buf) {
			r = rpc_unpack(c->recv_buf, m->request, &req);
			grpc_byte_buffer_destroy(c->recv_buf);
			c->recv_buf = NULL;
			if (r < 0) {
				rpc_call_error(c, RPC_INVALID_ARGUMENT, "%s: request is not a valid %s",
					       c->method, m->request->name);
				goto out;
			}
		}
		m->fn(c, req, m->userdata);
		if (!c->sent_status && !atomic_load(&c->cancelled))
			rpc_call_error(c, RPC_INTERNAL, "%s: the handler sent no status", c->method);
	}
out:
	call_unref(c);
}

/* ---- worker pool -------------------------------------------------------- */

static void *worker_main(void *p)
{
	struct rpc_server *srv = p;

	pthread_mutex_lock(&srv->pool_lock);
	for (;;) {
		struct rpc_call *c;

		while (!srv->queue_head && !srv->pool_quit) {
			srv->idle++;
			pthread_cond_wait(&srv->pool_cond, &srv->pool_lock);
			srv->idle--;
		}
		c = srv->queue_head;
		if (!c)
			break; /* quit, and nothing left */
		srv->queue_head = c->next;
		if (!srv->queue_head)
			srv->queue_tail = NULL;
		srv->queued--;
		pthread_mutex_unlock(&srv->pool_lock);

		call_run(c);

		pthread_mutex_lock(&srv->pool_lock);
	}
	pthread_mutex_unlock(&srv->pool_lock);
	return NULL;
}

/* Caller holds pool_lock. */
static int pool_spawn_locked(struct rpc_server *srv)
{
	int r;

	if (srv->nthreads >= RPC_SERVER_MAX_WORKERS)
		return -EAGAIN;
	r = pthread_create(&srv->threads[srv->nthreads], NULL, worker_main, srv);
	if (r != 0)
		return -r;
	srv->nthreads++;
	return 0;
}

static void pool_push(struct rpc_server *srv, struct rpc_call *c)
{
	pthread_mutex_lock(&srv->pool_lock);
	c->next = NULL;
	if (srv->queue_tail)
		srv->queue_tail->next = c;
	else
		srv->queue_head = c;
	srv->queue_tail = c;
	srv->queued++;
	/* Grow when every worker is busy: a long Apply must not hold up a
	 * Stat. If the thread cannot be made the call waits its turn. */
	if (srv->queued > srv->idle)
		(void)pool_spawn_locked(srv);
	pthread_cond_signal(&srv->pool_cond);
	pthread_mutex_unlock(&srv->pool_lock);
}

static void pool_stop(struct rpc_server *srv)
{
	pthread_mutex_lock(&srv->pool_lock);
	srv->pool_quit = true;
	pthread_cond_broadcast(&srv->pool_cond);
	pthread_mutex_unlock(&srv->pool_lock);
	for (unsigned i = 0; i < srv->nthreads; i++)
		pthread_join(srv->threads[i], NULL);
	srv->nthreads = 0;
}

/* ---- dispatcher --------------------------------------------------------- */

static const struct rpc_method *find_method(struct rpc_server *srv, const char *path)
{
	for (size_t i = 0; i < srv->n_methods; i++)
		if (strcmp(srv->methods[i].path, path) == 0)
			return &srv->methods[i];
	return NULL;
}

/* Keep PENDING_REQUESTS request_call operations outstanding. Called by the
 * dispatcher after every event, so a failed allocation is retried. */
static void arm_requests(struct rpc_server *srv)
{
	pthread_mutex_lock(&srv->lock);
	while (srv->accepting && srv->pending_requests < PENDING_REQUESTS) {
		struct rpc_call *c = call_new(srv);
		grpc_call_error e;

		if (!c)
			break;
		e = grpc_server_request_call(srv->server, &c->call, &c->details, &c->md_in, srv->cq,
					     srv->cq, &c->t_request);
		if (e != GRPC_CALL_OK) {
			c->call = NULL;
			call_free(c);
			break;
		}
		srv->pending_requests++;
	}
	pthread_mutex_unlock(&srv->lock);
}

static void start_unimplemented(struct rpc_call *c)
{
	_cleanup_free_ char *msg = NULL;
	grpc_slice details;
	grpc_op ops[3];
	grpc_call_error e;

	if (asprintf(&msg, "unknown method %s", c->method ?: "?") < 0)
		msg = NULL;
	details = grpc_slice_from_copied_string(msg ?: "unknown method");
	ops[0] = (grpc_op){ .op = GRPC_OP_SEND_INITIAL_METADATA };
	ops[1] = (grpc_op){
		.op = GRPC_OP_SEND_STATUS_FROM_SERVER,
		.data.send_status_from_server = {
			.status = GRPC_STATUS_UNIMPLEMENTED,
			.status_details = &details,
		},
	};
	ops[2] = (grpc_op){
		.op = GRPC_OP_RECV_CLOSE_ON_SERVER,
		.data.recv_close_on_server.cancelled = &c->close_cancelled,
	};
	record_status(c, RPC_UNIMPLEMENTED, msg);
	c->status_ok = true;
	atomic_store(&c->refs, 1);
	e = grpc_call_start_batch(c->call, ops, 3, &c->t_close, NULL);
	grpc_slice_unref(details);
	if (e != GRPC_CALL_OK)
		call_unref(c);
}

static void on_request(struct rpc_server *srv, struct rpc_call *c, bool ok)
{
	grpc_op op;

	pthread_mutex_lock(&srv->lock);
	srv->pending_requests--;
	if (ok && c->call)
		srv->live_calls++;
	else
		pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
	if (!ok || !c->call) {
		/* Shutdown fails the outstanding requests. */
		c->call = NULL;
		call_free(c);
		return;
	}

	c->start_us = now_us();
	c->method = rpc_slice_strdup(c->details.method);
	c->m = c->method ? find_method(srv, c->method) : NULL;
	if (!c->m) {
		start_unimplemented(c);
		return;
	}

	atomic_store(&c->refs, 2);
	op = (grpc_op){
		.op = GRPC_OP_RECV_CLOSE_ON_SERVER,
		.data.recv_close_on_server.cancelled = &c->close_cancelled,
	};
	if (grpc_call_start_batch(c->call, &op, 1, &c->t_close, NULL) != GRPC_CALL_OK)
		atomic_fetch_sub(&c->refs, 1); /* cannot happen: first op of its kind */

	op = (grpc_op){ .op = GRPC_OP_RECV_MESSAGE, .data.recv_message.recv_message = &c->recv_buf };
	if (grpc_call_start_batch(c->call, &op, 1, &c->t_recv, NULL) != GRPC_CALL_OK) {
		c->recv_ok = false;
		pool_push(srv, c);
	}
}

static void on_close(struct rpc_call *c)
{
	if (c->close_cancelled)
		atomic_store(&c->cancelled, true);
	call_unref(c);
}

static void on_final(struct rpc_call *c, bool ok)
{
	c->status_ok = ok;
	call_unref(c);
}

static void on_batch(struct rpc_call *c, bool ok)
{
	pthread_mutex_lock(&c->lock);
	c->batch_done = true;
	c->batch_ok = ok;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void *dispatcher_main(void *p)
{
	struct rpc_server *srv = p;

	for (;;) {
		grpc_event ev = grpc_completion_queue_next(srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME),
							   NULL);
		struct rpc_tag *t;

		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		t = ev.tag;
		switch (t->kind) {
		case TAG_REQUEST:
			on_request(srv, t->call, ev.success);
			break;
		case TAG_RECV:
			t->call->recv_ok = ev.success;
			pool_push(srv, t->call);
			break;
		case TAG_CLOSE:
			on_close(t->call);
			break;
		case TAG_BATCH:
			on_batch(t->call, ev.success);
			break;
		case TAG_FINAL:
			on_final(t->call, ev.success);
			break;
		case TAG_SHUTDOWN:
			pthread_mutex_lock(&srv->lock);
			srv->shutdown_done = true;
			pthread_cond_broadcast(&srv->cond);
			pthread_mutex_unlock(&srv->lock);
			break;
		}
		arm_requests(srv);
	}
	return NULL;
}

/* ---- the socket --------------------------------------------------------- */

/* gRPC unlinks whatever unix socket sits at the path before it binds, a
 * live daemon's included: el_unix_socket_reclaim looks first. */

/* ---- server lifecycle --------------------------------------------------- */

int rpc_server_new(const char *path, unsigned nworkers, struct rpc_server **ret)
{
	struct rpc_server *srv;
	grpc_channel_args args;
	grpc_arg arg;
	int r;

	if (!path || !*path)
		return -EINVAL;
	/* Room for the temporary name start binds under (".PID~"). */
	if (strlen(path) + 12 >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return -ENAMETOOLONG;
	r = el_unix_socket_reclaim(path);
	if (r < 0)
		return r;

	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->path = strdup(path);
	if (!srv->path) {
		free(srv);
		return -ENOMEM;
	}
	srv->min_threads = EL_MIN(nworkers ?: DEFAULT_WORKERS, RPC_SERVER_MAX_WORKERS);
	srv->t_shutdown = (struct rpc_tag){ TAG_SHUTDOWN, NULL };
	pthread_mutex_init(&srv->lock, NULL);
	pthread_cond_init(&srv->cond, NULL);
	pthread_mutex_init(&srv->pool_lock, NULL);
	pthread_cond_init(&srv->pool_cond, NULL);

	grpc_init();
	srv->grpc_inited = true;
	srv->cq = grpc_completion_queue_create_for_next(NULL);
	rpc_channel_args(&args, &arg);
	srv->server = grpc_server_create(&args, NULL);
	grpc_server_register_completion_queue(srv->server, srv->cq, NULL);
	*ret = srv;
	return 0;
}

int rpc_server_register(struct rpc_server *srv, const char *method, enum rpc_kind kind,
			const ProtobufCMessageDescriptor *request, rpc_handler_fn fn, void *userdata)
{
	struct rpc_method *m;

	if (srv->started || !method || method[0] != '/' || !request || !fn)
		return -EINVAL;
	if (find_method(srv, method))
		return -EEXIST;
	if (el_grow((void **)&srv->methods, &srv->methods_cap, srv->n_methods + 1,
		    sizeof(*srv->methods)) < 0)
		return -ENOMEM;
	m = &srv->methods[srv->n_methods];
	*m = (struct rpc_method){
		.path = strdup(method),
		.kind = kind,
		.request = request,
		.fn = fn,
		.userdata = userdata,
	};
	if (!m->path)
		return -ENOMEM;
	srv->n_methods++;
	return 0;
}

void rpc_server_set_logger(struct rpc_server *srv, rpc_log_fn fn, void *userdata)
{
	srv->log_fn = fn;
	srv->log_ud = userdata;
}

int rpc_server_start(struct rpc_server *srv)
{
	_cleanup_free_ char *addr = NULL, *tmp = NULL;
	grpc_server_credentials *creds;
	struct stat st;
	int port, r;

	if (srv->started || srv->stopped || srv->dispatcher_running)
		return -EALREADY;

	pthread_mutex_lock(&srv->pool_lock);
	for (unsigned i = 0; i < srv->min_threads; i++) {
		r = pool_spawn_locked(srv);
		if (r < 0) {
			pthread_mutex_unlock(&srv->pool_lock);
			pool_stop(srv);
			return r;
		}
	}
	pthread_mutex_unlock(&srv->pool_lock);

	r = -pthread_create(&srv->dispatcher, NULL, dispatcher_main, srv);
	if (r < 0) {
		pool_stop(srv);
		return r;
	}
	srv->dispatcher_running = true;

	/* Again, just before binding: the path may have changed since new. */
	r = el_unix_socket_reclaim(srv->path);
	if (r < 0)
		return r;

	/* gRPC binds and listens in add_port with the umask's mode. Bind under
	 * a name of our own beside the path, set the mode, then rename: the
	 * socket appears at the path already 0660 (containerd runs as root;
	 * group access lets a deployment hand the socket to a group without
	 * making it world-writable). */
	if (asprintf(&tmp, "%s.%d~", srv->path, (int)getpid()) < 0)
		return -ENOMEM;
	if (strlen(tmp) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return -ENAMETOOLONG;
	if (asprintf(&addr, "unix:%s", tmp) < 0)
		return -ENOMEM;
	creds = grpc_insecure_server_credentials_create();
	port = grpc_server_add_http2_port(srv->server, addr, creds);
	grpc_server_credentials_release(creds);
	if (port <= 0)
		return -EADDRNOTAVAIL; /* gRPC logs the reason, errno is lost */
	if (chmod(tmp, 0660) < 0 || lstat(tmp, &st) < 0 || rename(tmp, srv->path) < 0) {
		r = -errno;
		(void)unlink(tmp);
		return r;
	}
	srv->published = true;
	srv->sock_dev = st.st_dev;
	srv->sock_ino = st.st_ino;

	/* From here on the server must be shut down to be destroyed. */
	grpc_server_start(srv->server);
	srv->started = true;
	pthread_mutex_lock(&srv->lock);
	srv->accepting = true;
	pthread_mutex_unlock(&srv->lock);
	arm_requests(srv);
	return 0;
}

static bool drained_locked(struct rpc_server *srv)
{
	return srv->shutdown_done && srv->live_calls == 0 && srv->pending_requests == 0;
}

int rpc_server_shutdown(struct rpc_server *srv, unsigned grace_ms)
{
	if (!srv || srv->stopped)
		return 0;

	if (srv->started) {
		struct timespec deadline;
		bool drained;

		pthread_mutex_lock(&srv->lock);
		srv->accepting = false;
		pthread_mutex_unlock(&srv->lock);
		/* No new calls or connections; GOAWAY to the clients; calls in
		 * flight go on. The tag arrives once every channel is gone. */
		grpc_server_shutdown_and_notify(srv->server, srv->cq, &srv->t_shutdown);

		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += grace_ms / 1000;
		deadline.tv_nsec += (long)(grace_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&srv->lock);
		while (!drained_locked(srv))
			if (pthread_cond_timedwait(&srv->cond, &srv->lock, &deadline) == ETIMEDOUT)
				break;
		drained = drained_locked(srv);
		pthread_mutex_unlock(&srv->lock);

		if (!drained) {
			/* Grace is over: cancel the rest and drop the connections
			 * (a client may keep an idle one open forever). Handlers
			 * see rpc_call_cancelled() and their sends fail; we still
			 * wait for them to return, they own their call. */
			grpc_server_cancel_all_calls(srv->server);
			pthread_mutex_lock(&srv->lock);
			while (!drained_locked(srv))
				pthread_cond_wait(&srv->cond, &srv->lock);
			pthread_mutex_unlock(&srv->lock);
		}
	}

	pool_stop(srv);
	grpc_server_destroy(srv->server);
	srv->server = NULL;

	/* Drain the queue: the dispatcher leaves on GRPC_QUEUE_SHUTDOWN. */
	grpc_completion_queue_shutdown(srv->cq);
	if (srv->dispatcher_running) {
		pthread_join(srv->dispatcher, NULL);
		srv->dispatcher_running = false;
	} else {
		while (grpc_completion_queue_next(srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
			       .type != GRPC_QUEUE_SHUTDOWN)
			;
	}
	grpc_completion_queue_destroy(srv->cq);
	srv->cq = NULL;

	if (srv->grpc_inited) {
		grpc_shutdown();
		srv->grpc_inited = false;
	}
	srv->stopped = true;
	return 0;
}

/* gRPC removes the socket under the name it bound; ours was renamed, so
 * remove it here, unless another daemon's socket replaced it meanwhile. */
static void unpublish(struct rpc_server *srv)
{
	struct stat st;

	if (!srv->published)
		return;
	srv->published = false;
	if (lstat(srv->path, &st) == 0 && st.st_dev == srv->sock_dev && st.st_ino == srv->sock_ino)
		(void)unlink(srv->path);
}

void rpc_server_free(struct rpc_server *srv)
{
	if (!srv)
		return;
	rpc_server_shutdown(srv, RPC_SHUTDOWN_GRACE_MS);
	unpublish(srv);
	for (size_t i = 0; i < srv->n_methods; i++)
		free(srv->methods[i].path);
	free(srv->methods);
	pthread_mutex_destroy(&srv->lock);
	pthread_cond_destroy(&srv->cond);
	pthread_mutex_destroy(&srv->pool_lock);
	pthread_cond_destroy(&srv->pool_cond);
	free(srv->path);
	free(srv);
}
