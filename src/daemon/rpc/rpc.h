/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small layer over the gRPC core C API (grpc/grpc.h) that hides
 * completion queues, for the daemon's server (containerd calls our
 * Snapshots and Diff services) and client (the differ reads and writes
 * containerd's Content service). Messages are protobuf-c ones.
 *
 * Rules that come from gRPC core (docs/architecture.md):
 * - after the first rpc_server_new()/rpc_client_new() gRPC runs threads of
 *   its own: never fork() without exec afterwards (use posix_spawn), and
 *   block the signals the daemon waits for (sigwait/signalfd) before, so
 *   that those threads inherit the mask;
 * - metadata keys are lowercase ASCII;
 * - messages up to RPC_MAX_MESSAGE_SIZE are accepted in both directions
 *   (gRPC's default receive limit is 4 MiB).
 *
 * Functions return 0 (or a count) on success and a negative errno on
 * failure.
 */
#ifndef SES_RPC_H
#define SES_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* Receive limit set on both server and client channels. */
#define RPC_MAX_MESSAGE_SIZE (64 * 1024 * 1024)

/* gRPC status codes (the numbers are the wire values, see
 * grpc/status.h; containerd's errdefs map onto them, docs/containerd-contract.md). */
enum {
	RPC_OK = 0,
	RPC_CANCELLED = 1,
	RPC_UNKNOWN = 2,
	RPC_INVALID_ARGUMENT = 3,
	RPC_DEADLINE_EXCEEDED = 4,
	RPC_NOT_FOUND = 5,
	RPC_ALREADY_EXISTS = 6,
	RPC_PERMISSION_DENIED = 7,
	RPC_RESOURCE_EXHAUSTED = 8,
	RPC_FAILED_PRECONDITION = 9,
	RPC_ABORTED = 10,
	RPC_OUT_OF_RANGE = 11,
	RPC_UNIMPLEMENTED = 12,
	RPC_INTERNAL = 13,
	RPC_UNAVAILABLE = 14,
	RPC_DATA_LOSS = 15,
	RPC_UNAUTHENTICATED = 16,
};

/* errno (either sign) → status, the way containerd's errdefs read it:
 * ENOENT → NOT_FOUND, EEXIST → ALREADY_EXISTS, EINVAL/EBADMSG/EFBIG →
 * INVALID_ARGUMENT, EBUSY/ENOTEMPTY → FAILED_PRECONDITION, EOPNOTSUPP/ENOSYS
 * → UNIMPLEMENTED, ECANCELED → CANCELLED, ETIMEDOUT → DEADLINE_EXCEEDED,
 * ENOSPC/EDQUOT/ENOMEM → RESOURCE_EXHAUSTED, ... → INTERNAL. Both services
 * answer through it (rpc_call_error_errno). */
int rpc_status_from_errno(int err);
/* status → negative errno, the inverse of the above (0 for RPC_OK). */
int rpc_errno_from_status(int code);
/* "NOT_FOUND" etc.; "UNKNOWN_CODE" for numbers outside 0..16. */
const char *rpc_status_name(int code);

/* A status as a client receives it. message is malloc'd (may be NULL). */
struct rpc_status {
	int code;
	char *message;
};
void rpc_status_done(struct rpc_status *st); /* frees message; idempotent */

/* One metadata entry. Entries whose value is NULL are skipped, so that an
 * optional header (containerd-lease) can sit in a fixed array. */
struct rpc_metadata {
	const char *key;
	const char *value;
};

/* ---- server ------------------------------------------------------------ */

struct rpc_server;
struct rpc_call;

enum rpc_kind {
	RPC_UNARY,	   /* one request, rpc_call_reply() or rpc_call_error() */
	RPC_SERVER_STREAM, /* one request, rpc_call_send()... then rpc_call_finish() */
	RPC_BIDI_STREAM,   /* first request as req (NULL if the client sent none),
			      more with rpc_call_recv(); any number of sends */
};

/*
 * A handler runs on a worker thread. req (owned by the layer, freed after
 * the handler returns) was unpacked with the descriptor given at
 * registration. The handler should end the call with rpc_call_reply(),
 * rpc_call_finish() or rpc_call_error(); if it returns without doing so the
 * client gets INTERNAL.
 */
typedef void (*rpc_handler_fn)(struct rpc_call *call, ProtobufCMessage *req, void *userdata);

/* Called once per finished call, from the thread that finished it: the
 * daemon's one log line at the RPC boundary. message may be NULL. */
typedef void (*rpc_log_fn)(const char *method, int code, const char *message,
			   uint64_t duration_us, void *userdata);

/*
 * A server on a unix socket, handlers on at least nworkers threads (0: 8).
 * The pool grows on demand up to RPC_SERVER_MAX_WORKERS, so that a few long
 * calls (an Apply of a large layer) never stall short ones.
 *
 * A stale socket file at the path is removed; if something answers on it,
 * -EADDRINUSE; if the path is not a socket, -EEXIST. Nothing is bound
 * before rpc_server_start().
 */
#define RPC_SERVER_MAX_WORKERS 64
int rpc_server_new(const char *unix_socket_path, unsigned nworkers, struct rpc_server **ret);

/* method is the full path, "/containerd.services.snapshots.v1.Snapshots/Stat".
 * Only before rpc_server_start(). -EEXIST for a path registered twice. */
int rpc_server_register(struct rpc_server *srv, const char *method, enum rpc_kind kind,
			const ProtobufCMessageDescriptor *request, rpc_handler_fn fn,
			void *userdata);
void rpc_server_set_logger(struct rpc_server *srv, rpc_log_fn fn, void *userdata);

/* Binds (socket mode 0660), listens, starts the dispatcher and workers. */
int rpc_server_start(struct rpc_server *srv);

/*
 * Stops accepting calls, lets calls in flight finish for up to grace_ms,
 * then cancels what remains (handlers see rpc_call_cancelled() and their
 * sends fail) and waits for their handlers to return; then tears down the
 * completion queue and threads; gRPC removes the socket file. Idempotent.
 * Never call it from a handler (it waits for every handler to return).
 */
#define RPC_SHUTDOWN_GRACE_MS 10000
int rpc_server_shutdown(struct rpc_server *srv, unsigned grace_ms);

/* Shuts down (with RPC_SHUTDOWN_GRACE_MS) if needed, then frees. NULL ok. */
void rpc_server_free(struct rpc_server *srv);

/* In a handler. The strings live as long as the call. */
const char *rpc_call_method(const struct rpc_call *call);
/* First value of a request metadata key (lowercase), NULL when absent. */
const char *rpc_call_metadata(const struct rpc_call *call, const char *key);
/* True once the client went away (cancel, deadline, lost connection) or the
 * server cancelled the call at shutdown. Long handlers should poll it. */
bool rpc_call_cancelled(const struct rpc_call *call);

/* Message + OK status, with initial metadata, in one batch. The calls that
 * end a call (reply, finish, error) return once the batch has started,
 * without waiting for gRPC to send it: the log line says whether the client
 * got it. */
int rpc_call_reply(struct rpc_call *call, const ProtobufCMessage *resp);
/* One message of a stream; blocks until gRPC's flow control took it.
 * -ECANCELED once the call is gone. -EINVAL on a unary call. */
int rpc_call_send(struct rpc_call *call, const ProtobufCMessage *msg);
/* OK status after the messages of a stream. */
int rpc_call_finish(struct rpc_call *call);
/* Non-OK status with a printf-style message (cut at 4 KiB). */
int rpc_call_error(struct rpc_call *call, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Same, with the code from rpc_status_from_errno(err). */
int rpc_call_error_errno(struct rpc_call *call, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Bidi calls: next client message: 1 with *ret set (free it with
 * protobuf_c_message_free_unpacked(m, NULL)), 0 when the client closed its
 * side, negative errno otherwise (-EBADMSG: not a valid message). */
int rpc_call_recv(struct rpc_call *call, ProtobufCMessage **ret);

/* ---- client ------------------------------------------------------------ */

struct rpc_client;
struct rpc_stream;

/* A channel to a unix socket; it connects lazily, on the first call, and
 * reconnects by itself. Thread-safe: any number of threads may call. */
int rpc_client_new(const char *unix_socket_path, struct rpc_client **ret);
void rpc_client_free(struct rpc_client *client);

/*
 * Calls return 0 when the status is OK, else the status mapped by
 * rpc_errno_from_status() (an unreachable server: -ECONNREFUSED from
 * UNAVAILABLE); *ret_status, when given, holds the status either way.
 * timeout_ms 0 means no deadline. A reply that does not parse: -EBADMSG.
 */
int rpc_client_unary(struct rpc_client *client, const char *method,
		     const struct rpc_metadata *md, size_t n_md, uint64_t timeout_ms,
		     const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
		     ProtobufCMessage **ret_resp, struct rpc_status *ret_status);

/*
 * Streams. A stream is used by one thread at a time. Server streaming:
 * rpc_client_server_stream() sends the request and closes the sending side;
 * bidi: rpc_client_stream_open() then rpc_stream_send()/rpc_stream_recv()
 * in any order and rpc_stream_close_send(). Always end with
 * rpc_stream_finish() (it reads and drops what was not read: gRPC delivers
 * the status only after every message) and rpc_stream_free(), which
 * cancels a stream that was not finished.
 */
int rpc_client_stream_open(struct rpc_client *client, const char *method,
			   const struct rpc_metadata *md, size_t n_md, uint64_t timeout_ms,
			   struct rpc_stream **ret);
int rpc_client_server_stream(struct rpc_client *client, const char *method,
			     const struct rpc_metadata *md, size_t n_md, uint64_t timeout_ms,
			     const ProtobufCMessage *req, struct rpc_stream **ret);
/* -EPIPE when the call already ended (learn why from rpc_stream_finish()). */
int rpc_stream_send(struct rpc_stream *stream, const ProtobufCMessage *msg);
int rpc_stream_close_send(struct rpc_stream *stream);
/* 1 with *ret set, 0 at the end of the stream, negative errno. */
int rpc_stream_recv(struct rpc_stream *stream, const ProtobufCMessageDescriptor *desc,
		    ProtobufCMessage **ret);
int rpc_stream_finish(struct rpc_stream *stream, struct rpc_status *ret_status);
void rpc_stream_free(struct rpc_stream *stream);

#endif
