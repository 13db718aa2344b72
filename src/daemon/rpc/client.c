/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gRPC client (the differ's side of containerd's Content service).
 *
 * Every call owns a pluck completion queue and waits for each of its
 * batches on it, so any number of threads can call at once without a
 * shared dispatcher. (A queue shared by threads would hit gRPC's limit of
 * six concurrent pluckers; a `next` queue per thread would need a thread
 * registry.) The sequence is the one of docs/containerd-contract.md: initial metadata goes
 * with the first outgoing batch, RECV_INITIAL_METADATA with the first
 * incoming one, messages are read until NULL, and only then the status.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "rpc-internal.h"
#include "common/macro.h"

struct rpc_client {
	grpc_channel *channel;
};

struct rpc_stream {
	grpc_call *call;
	grpc_completion_queue *cq;
	grpc_metadata *md; /* slices owned here until the stream is freed */
	size_t n_md;
	grpc_metadata_array md_initial;
	grpc_metadata_array md_trailing;
	grpc_slice details;
	grpc_status_code status;
	bool sent_initial_md;
	bool got_initial_md;
	bool send_closed;
	bool eos;	/* a RECV_MESSAGE gave NULL */
	bool finished;	/* status received */
};

int rpc_client_new(const char *path, struct rpc_client **ret)
{
	_cleanup_free_ char *target = NULL;
	grpc_channel_credentials *creds;
	struct rpc_client *c;
	grpc_channel_args args;
	grpc_arg arg;

	if (!path || !*path)
		return -EINVAL;
	if (asprintf(&target, "unix:%s", path) < 0)
		return -ENOMEM;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	grpc_init();
	rpc_channel_args(&args, &arg);
	creds = grpc_insecure_credentials_create();
	c->channel = grpc_channel_create(target, creds, &args);
	grpc_channel_credentials_release(creds);
	if (!c->channel) {
		grpc_shutdown();
		free(c);
		return -EINVAL;
	}
	*ret = c;
	return 0;
}

void rpc_client_free(struct rpc_client *c)
{
	if (!c)
		return;
	grpc_channel_destroy(c->channel);
	grpc_shutdown();
	free(c);
}

/* Runs one batch and waits for it on the stream's own queue. */
static int stream_batch(struct rpc_stream *s, const grpc_op *ops, size_t n)
{
	grpc_event ev;

	if (grpc_call_start_batch(s->call, ops, n, s, NULL) != GRPC_CALL_OK)
		return -EPROTO;
	ev = grpc_completion_queue_pluck(s->cq, s, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	if (ev.type != GRPC_OP_COMPLETE)
		return -EIO;
	return ev.success ? 0 : -EPIPE;
}

static void op_initial_md(struct rpc_stream *s, grpc_op *ops, size_t *n)
{
	if (s->sent_initial_md)
		return;
	ops[(*n)++] = (grpc_op){
		.op = GRPC_OP_SEND_INITIAL_METADATA,
		.data.send_initial_metadata = { .count = s->n_md, .metadata = s->md },
	};
	s->sent_initial_md = true;
}

static void op_recv_initial_md(struct rpc_stream *s, grpc_op *ops, size_t *n)
{
	if (s->got_initial_md)
		return;
	ops[(*n)++] = (grpc_op){
		.op = GRPC_OP_RECV_INITIAL_METADATA,
		.data.recv_initial_metadata.recv_initial_metadata = &s->md_initial,
	};
	s->got_initial_md = true;
}

static int status_out(struct rpc_stream *s, struct rpc_status *ret_status)
{
	if (ret_status) {
		ret_status->code = (int)s->status;
		ret_status->message = GRPC_SLICE_LENGTH(s->details) ? rpc_slice_strdup(s->details)
								     : NULL;
	}
	return rpc_errno_from_status((int)s->status);
}

void rpc_stream_free(struct rpc_stream *s)
{
	if (!s)
		return;
	if (s->call) {
		/* Unfinished: tell the server (its handler sees cancelled). No
		 * batch is pending (they are all waited for), so the queue can
		 * go right after. */
		if (!s->finished)
			grpc_call_cancel(s->call, NULL);
		grpc_call_unref(s->call);
	}
	if (s->cq) {
		grpc_completion_queue_shutdown(s->cq);
		grpc_completion_queue_destroy(s->cq);
	}
	for (size_t i = 0; i < s->n_md; i++) {
		grpc_slice_unref(s->md[i].key);
		grpc_slice_unref(s->md[i].value);
	}
	free(s->md);
	grpc_metadata_array_destroy(&s->md_initial);
	grpc_metadata_array_destroy(&s->md_trailing);
	grpc_slice_unref(s->details);
	free(s);
}

EL_DEFINE_CLEANUP(struct rpc_stream, rpc_stream_free)

static int stream_new(struct rpc_client *c, const char *method, const struct rpc_metadata *md,
		      size_t n_md, uint64_t timeout_ms, struct rpc_stream **ret)
{
	_cleanup_(rpc_stream_freep) struct rpc_stream *s = NULL;
	grpc_slice path;

	if (!c || !method || method[0] != '/')
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	grpc_metadata_array_init(&s->md_initial);
	grpc_metadata_array_init(&s->md_trailing);
	s->details = grpc_empty_slice();
	if (n_md) {
		s->md = calloc(n_md, sizeof(*s->md));
		if (!s->md)
			return -ENOMEM;
	}
	for (size_t i = 0; i < n_md; i++) {
		if (!md[i].value)
			continue;
		s->md[s->n_md].key = grpc_slice_from_copied_string(md[i].key);
		s->md[s->n_md].value = grpc_slice_from_copied_string(md[i].value);
		s->n_md++;
	}

	s->cq = grpc_completion_queue_create_for_pluck(NULL);
	path = grpc_slice_from_copied_string(method);
	s->call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, s->cq, path,
					   NULL, rpc_deadline(timeout_ms), NULL);
	grpc_slice_unref(path);
	if (!s->call)
		return -ENOMEM;
	*ret = EL_TAKE_PTR(s);
	return 0;
}

int rpc_client_unary(struct rpc_client *c, const char *method, const struct rpc_metadata *md,
		     size_t n_md, uint64_t timeout_ms, const ProtobufCMessage *req,
		     const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **ret_resp,
		     struct rpc_status *ret_status)
{
	_cleanup_(rpc_stream_freep) struct rpc_stream *s = NULL;
	grpc_byte_buffer *out, *in = NULL;
	grpc_op ops[6];
	size_t n = 0;
	int r;

	if (ret_status)
		*ret_status = (struct rpc_status){ .code = RPC_UNKNOWN };
	r = stream_new(c, method, md, n_md, timeout_ms, &s);
	if (r < 0)
		return r;
	out = rpc_pack(req);
	if (!out)
		return -EINVAL;

	/* One batch for the whole call, as gRPC's own sync clients do. */
	op_initial_md(s, ops, &n);
	ops[n++] = (grpc_op){ .op = GRPC_OP_SEND_MESSAGE, .data.send_message.send_message = out };
	ops[n++] = (grpc_op){ .op = GRPC_OP_SEND_CLOSE_FROM_CLIENT };
	op_recv_initial_md(s, ops, &n);
	ops[n++] = (grpc_op){ .op = GRPC_OP_RECV_MESSAGE, .data.recv_message.recv_message = &in };
	ops[n++] = (grpc_op){
		.op = GRPC_OP_RECV_STATUS_ON_CLIENT,
		.data.recv_status_on_client = {
			.trailing_metadata = &s->md_trailing,
			.status = &s->status,
			.status_details = &s->details,
		},
	};
	r = stream_batch(s, ops, n);
	grpc_byte_buffer_destroy(out);
	if (r < 0) {
		if (in)
			grpc_byte_buffer_destroy(in);
		return r;
	}
	s->finished = true;
	r = status_out(s, ret_status);
	if (r == 0) {
		ProtobufCMessage *resp = NULL;

		/* OK without a message breaks the unary contract. */
		r = in ? rpc_unpack(in, resp_desc, &resp) : -EBADMSG;
		if (r == 0 && ret_resp)
			*ret_resp = resp;
		else if (resp)
			protobuf_c_message_free_unpacked(resp, NULL);
	}
	if (in)
		grpc_byte_buffer_destroy(in);
	return r;
}

int rpc_client_stream_open(struct rpc_client *c, const char *method,
			   const struct rpc_metadata *md, size_t n_md, uint64_t timeout_ms,
			   struct rpc_stream **ret)
{
	/* Initial metadata leaves with the first send (or recv, or close). */
	return stream_new(c, method, md, n_md, timeout_ms, ret);
}

int rpc_client_server_stream(struct rpc_client *c, const char *method,
			     const struct rpc_metadata *md, size_t n_md, uint64_t timeout_ms,
			     const ProtobufCMessage *req, struct rpc_stream **ret)
{
	_cleanup_(rpc_stream_freep) struct rpc_stream *s = NULL;
	grpc_byte_buffer *out;
	grpc_op ops[3];
	size_t n = 0;
	int r;

	r = stream_new(c, method, md, n_md, timeout_ms, &s);
	if (r < 0)
		return r;
	out = rpc_pack(req);
	if (!out)
		return -EINVAL;
	op_initial_md(s, ops, &n);
	ops[n++] = (grpc_op){ .op = GRPC_OP_SEND_MESSAGE, .data.send_message.send_message = out };
	ops[n++] = (grpc_op){ .op = GRPC_OP_SEND_CLOSE_FROM_CLIENT };
	s->send_closed = true;
	/* A failure here (server unreachable) is not final: the caller learns
	 * the status from rpc_stream_finish() as with any other stream. */
	(void)stream_batch(s, ops, n);
	grpc_byte_buffer_destroy(out);
	*ret = EL_TAKE_PTR(s);
	return 0;
}

int rpc_stream_send(struct rpc_stream *s, const ProtobufCMessage *msg)
{
	grpc_byte_buffer *out;
	grpc_op ops[2];
	size_t n = 0;
	int r;

	if (s->send_closed || s->finished)
		return -EPIPE;
	out = rpc_pack(msg);
	if (!out)
		return -EINVAL;
	op_initial_md(s, ops, &n);
	ops[n++] = (grpc_op){ .op = GRPC_OP_SEND_MESSAGE, .data.send_message.send_message = out };
	r = stream_batch(s, ops, n);
	grpc_byte_buffer_destroy(out);
	return r;
}

int rpc_stream_close_send(struct rpc_stream *s)
{
	grpc_op ops[2];
	size_t n = 0;

	if (s->send_closed || s->finished)
		return 0;
	op_initial_md(s, ops, &n);
	ops[n++] = (grpc_op){ .op = GRPC_OP_SEND_CLOSE_FROM_CLIENT };
	s->send_closed = true;
	return stream_batch(s, ops, n);
}

int rpc_stream_recv(struct rpc_stream *s, const ProtobufCMessageDescriptor *desc,
		    ProtobufCMessage **ret)
{
	grpc_byte_buffer *in = NULL;
	ProtobufCMessage *m = NULL;
	grpc_op ops[3];
	size_t n = 0;
	int r;

	if (s->eos || s->finished)
		return 0;
	/* A bidi stream may read before it wrote anything. */
	op_initial_md(s, ops, &n);
	op_recv_initial_md(s, ops, &n);
	ops[n++] = (grpc_op){ .op = GRPC_OP_RECV_MESSAGE, .data.recv_message.recv_message = &in };
	r = stream_batch(s, ops, n);
	if (r < 0 || !in) {
		/* NULL: trailers came instead of a message. A failed batch means
		 * the call ended too; either way the status is next. */
		if (in)
			grpc_byte_buffer_destroy(in);
		s->eos = true;
		return 0;
	}
	r = rpc_unpack(in, desc, &m);
	grpc_byte_buffer_destroy(in);
	if (r < 0)
		return r;
	if (ret)
		*ret = m;
	else
		protobuf_c_message_free_unpacked(m, NULL);
	return 1;
}

int rpc_stream_finish(struct rpc_stream *s, struct rpc_status *ret_status)
{
	grpc_op ops[2];
	size_t n = 0;
	int r;

	if (ret_status)
		*ret_status = (struct rpc_status){ .code = RPC_UNKNOWN };
	if (!s->finished) {
		/* Close our side first, or a bidi server waiting for more input
		 * would never end the stream we are about to drain. */
		if (!s->send_closed)
			(void)rpc_stream_close_send(s);
		/* gRPC completes RECV_STATUS_ON_CLIENT only after every message
		 * was read (docs/architecture.md): drop what the caller left. */
		while (!s->eos) {
			grpc_byte_buffer *in = NULL;
			grpc_op op[2];
			size_t k = 0;

			op_recv_initial_md(s, op, &k);
			op[k++] = (grpc_op){ .op = GRPC_OP_RECV_MESSAGE,
					     .data.recv_message.recv_message = &in };
			r = stream_batch(s, op, k);
			if (in)
				grpc_byte_buffer_destroy(in);
			if (r < 0 || !in)
				s->eos = true;
		}
		op_recv_initial_md(s, ops, &n);
		ops[n++] = (grpc_op){
			.op = GRPC_OP_RECV_STATUS_ON_CLIENT,
			.data.recv_status_on_client = {
				.trailing_metadata = &s->md_trailing,
				.status = &s->status,
				.status_details = &s->details,
			},
		};
		r = stream_batch(s, ops, n);
		if (r < 0)
			return r;
		s->finished = true;
	}
	return status_out(s, ret_status);
}
