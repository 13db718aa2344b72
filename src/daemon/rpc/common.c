/* SPDX-License-Identifier: Apache-2.0 */
/* Status codes, errno mapping, message (un)packing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/status.h>
#include <grpc/support/time.h>

#include "rpc-internal.h"
#include "common/macro.h"

/* Our constants are the wire values; keep them in step with gRPC's. */
#define SAME(a, b) _Static_assert((int)(a) == (int)(b), #a)
SAME(RPC_OK, GRPC_STATUS_OK);
SAME(RPC_CANCELLED, GRPC_STATUS_CANCELLED);
SAME(RPC_UNKNOWN, GRPC_STATUS_UNKNOWN);
SAME(RPC_INVALID_ARGUMENT, GRPC_STATUS_INVALID_ARGUMENT);
SAME(RPC_DEADLINE_EXCEEDED, GRPC_STATUS_DEADLINE_EXCEEDED);
SAME(RPC_NOT_FOUND, GRPC_STATUS_NOT_FOUND);
SAME(RPC_ALREADY_EXISTS, GRPC_STATUS_ALREADY_EXISTS);
SAME(RPC_PERMISSION_DENIED, GRPC_STATUS_PERMISSION_DENIED);
SAME(RPC_RESOURCE_EXHAUSTED, GRPC_STATUS_RESOURCE_EXHAUSTED);
SAME(RPC_FAILED_PRECONDITION, GRPC_STATUS_FAILED_PRECONDITION);
SAME(RPC_ABORTED, GRPC_STATUS_ABORTED);
SAME(RPC_OUT_OF_RANGE, GRPC_STATUS_OUT_OF_RANGE);
SAME(RPC_UNIMPLEMENTED, GRPC_STATUS_UNIMPLEMENTED);
SAME(RPC_INTERNAL, GRPC_STATUS_INTERNAL);
SAME(RPC_UNAVAILABLE, GRPC_STATUS_UNAVAILABLE);
SAME(RPC_DATA_LOSS, GRPC_STATUS_DATA_LOSS);
SAME(RPC_UNAUTHENTICATED, GRPC_STATUS_UNAUTHENTICATED);

static const char *const status_names[] = {
	[RPC_OK] = "OK",
	[RPC_CANCELLED] = "CANCELLED",
	[RPC_UNKNOWN] = "UNKNOWN",
	[RPC_INVALID_ARGUMENT] = "INVALID_ARGUMENT",
	[RPC_DEADLINE_EXCEEDED] = "DEADLINE_EXCEEDED",
	[RPC_NOT_FOUND] = "NOT_FOUND",
	[RPC_ALREADY_EXISTS] = "ALREADY_EXISTS",
	[RPC_PERMISSION_DENIED] = "PERMISSION_DENIED",
	[RPC_RESOURCE_EXHAUSTED] = "RESOURCE_EXHAUSTED",
	[RPC_FAILED_PRECONDITION] = "FAILED_PRECONDITION",
	[RPC_ABORTED] = "ABORTED",
	[RPC_OUT_OF_RANGE] = "OUT_OF_RANGE",
	[RPC_UNIMPLEMENTED] = "UNIMPLEMENTED",
	[RPC_INTERNAL] = "INTERNAL",
	[RPC_UNAVAILABLE] = "UNAVAILABLE",
	[RPC_DATA_LOSS] = "DATA_LOSS",
	[RPC_UNAUTHENTICATED] = "UNAUTHENTICATED",
};

const char *rpc_status_name(int code)
{
	if (code < 0 || (size_t)code >= EL_ARRAY_SIZE(status_names))
		return "UNKNOWN_CODE";
	return status_names[code];
}

/*
 * The one errno → status map of both services. containerd 2.x reads the code
 * back into its errdefs kinds (github.com/containerd/errdefs, errgrpc):
 * InvalidArgument, NotFound, AlreadyExists, FailedPrecondition (also its
 * conflicts: "in use", "has children"), Unavailable, NotImplemented,
 * Canceled, DeadlineExceeded, ResourceExhausted (a full disk or quota),
 * PermissionDenied, OutOfRange; anything else is Internal.
 */
int rpc_status_from_errno(int err)
{
	switch (abs(err)) {
	case 0:
		return RPC_OK;
	case ENOENT:
	case ENOTDIR:
		return RPC_NOT_FOUND;
	case EEXIST:
		return RPC_ALREADY_EXISTS;
	case EINVAL:
	case ENAMETOOLONG:
	case EBADMSG:
	case E2BIG:
	case EFBIG:
		return RPC_INVALID_ARGUMENT;
	case EBUSY:
	case ENOTEMPTY:
	case EROFS:
		return RPC_FAILED_PRECONDITION;
	case EOPNOTSUPP:
	case ENOSYS:
		return RPC_UNIMPLEMENTED;
	case ECANCELED:
		return RPC_CANCELLED;
	case ETIMEDOUT:
		return RPC_DEADLINE_EXCEEDED;
	case EAGAIN:
	case ECONNREFUSED:
	case ESHUTDOWN:
		return RPC_UNAVAILABLE;
	case EACCES:
	case EPERM:
		return RPC_PERMISSION_DENIED;
	case ENOSPC:
	case EDQUOT:
	case ENOMEM:
		return RPC_RESOURCE_EXHAUSTED;
	case ERANGE:
		return RPC_OUT_OF_RANGE;
	default:
		return RPC_INTERNAL;
	}
}

int rpc_errno_from_status(int code)
{
	switch (code) {
	case RPC_OK:
		return 0;
	case RPC_CANCELLED:
		return -ECANCELED;
	case RPC_INVALID_ARGUMENT:
		return -EINVAL;
	case RPC_DEADLINE_EXCEEDED:
		return -ETIMEDOUT;
	case RPC_NOT_FOUND:
		return -ENOENT;
	case RPC_ALREADY_EXISTS:
		return -EEXIST;
	case RPC_PERMISSION_DENIED:
	case RPC_UNAUTHENTICATED:
		return -EACCES;
	case RPC_RESOURCE_EXHAUSTED:
		return -ENOSPC;
	case RPC_FAILED_PRECONDITION:
	case RPC_ABORTED:
		return -EBUSY;
	case RPC_OUT_OF_RANGE:
		return -ERANGE;
	case RPC_UNIMPLEMENTED:
		return -EOPNOTSUPP;
	case RPC_UNAVAILABLE:
		return -ECONNREFUSED;
	case RPC_DATA_LOSS:
	case RPC_INTERNAL:
	case RPC_UNKNOWN:
	default:
		return -EIO;
	}
}

void rpc_status_done(struct rpc_status *st)
{
	if (!st)
		return;
	free(st->message);
	st->message = NULL;
}

grpc_byte_buffer *rpc_pack(const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	/* gpr allocations abort on failure: gRPC core offers no other mode. */
	grpc_slice s = grpc_slice_malloc(len);
	size_t n = protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
	grpc_byte_buffer *bb;

	if (n != len) {
		grpc_slice_unref(s);
		return NULL;
	}
	bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

int rpc_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *desc,
	       ProtobufCMessage **ret)
{
	grpc_byte_buffer_reader reader;
	ProtobufCMessage *m;
	grpc_slice s;

	/* The reader inflates messages the peer sent compressed. */
	if (!grpc_byte_buffer_reader_init(&reader, bb))
		return -EBADMSG;
	s = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	m = protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
	grpc_slice_unref(s);
	if (!m)
		return -EBADMSG;
	*ret = m;
	return 0;
}

char *rpc_slice_strdup(grpc_slice s)
{
	size_t len = GRPC_SLICE_LENGTH(s);
	char *p = malloc(len + 1);

	if (!p)
		return NULL;
	memcpy(p, GRPC_SLICE_START_PTR(s), len);
	p[len] = '\0';
	return p;
}

void rpc_channel_args(grpc_channel_args *args, grpc_arg storage[static 1])
{
	storage[0] = (grpc_arg){
		.type = GRPC_ARG_INTEGER,
		.key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
		.value.integer = RPC_MAX_MESSAGE_SIZE,
	};
	args->num_args = 1;
	args->args = storage;
}

gpr_timespec rpc_deadline(uint64_t timeout_ms)
{
	if (timeout_ms == 0 || timeout_ms > INT64_MAX / 2)
		return gpr_inf_future(GPR_CLOCK_REALTIME);
	return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
			    gpr_time_from_millis((int64_t)timeout_ms, GPR_TIMESPAN));
}
