/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the server and client halves of the rpc layer. */
#ifndef SES_RPC_INTERNAL_H
#define SES_RPC_INTERNAL_H

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>

#include "rpc.h"

/* protobuf-c message → gRPC byte buffer (packed straight into one slice). */
grpc_byte_buffer *rpc_pack(const ProtobufCMessage *msg);
/* gRPC byte buffer → protobuf-c message; -EBADMSG if it does not parse. */
int rpc_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *desc,
	       ProtobufCMessage **ret);
/* A NUL-terminated malloc'd copy of a slice; NULL on allocation failure. */
char *rpc_slice_strdup(grpc_slice s);
/* Channel arguments both sides use: receive limit RPC_MAX_MESSAGE_SIZE. */
void rpc_channel_args(grpc_channel_args *args, grpc_arg storage[static 1]);
/* gpr deadline for a timeout in ms (0: none). */
gpr_timespec rpc_deadline(uint64_t timeout_ms);

static inline void rpc_freep_message(ProtobufCMessage **m)
{
	if (*m)
		protobuf_c_message_free_unpacked(*m, NULL);
	*m = NULL;
}
#define _cleanup_message_ __attribute__((cleanup(rpc_freep_message)))

#endif
