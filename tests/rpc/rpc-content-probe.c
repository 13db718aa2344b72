/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rpc client against a real containerd's Content service, the way the
 * differ will use it: Write (bidirectional: STAT, WRITE..., COMMIT) under a
 * lease, Info, Read (server stream, whole and ranged), Status and Abort,
 * and the error statuses containerd answers with. A test fixture.
 *
 *   rpc-content-probe CONTAINERD_SOCKET NAMESPACE LEASE
 *
 * Prints one "ok ..." line per check; exits 1 at the first failure.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "containerd-proto.h"
#include "rpc.h"

typedef Containerd__Services__Content__V1__WriteContentRequest WriteReq;
typedef Containerd__Services__Content__V1__WriteContentResponse WriteResp;
#define CT_DESC(x) (&containerd__services__content__v1__##x##__descriptor)
#define ACTION(a) CONTAINERD__SERVICES__CONTENT__V1__WRITE_ACTION__##a

#define BLOB_SIZE (3 * 1024 * 1024 + 123)
#define CHUNK (1024 * 1024) /* containerd's own write buffer size */

static struct rpc_client *cli;
static struct rpc_metadata md[2];

#define CHECK(cond, ...)                                                           \
	do {                                                                       \
		if (!(cond)) {                                                     \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);      \
			fprintf(stderr, __VA_ARGS__);                              \
			fputc('\n', stderr);                                       \
			exit(1);                                                   \
		}                                                                  \
	} while (0)

static void digest_of(const uint8_t *p, size_t n, char out[72])
{
	unsigned char md_buf[32];
	unsigned int len = 0;

	EVP_Digest(p, n, md_buf, &len, EVP_sha256(), NULL);
	strcpy(out, "sha256:");
	for (unsigned i = 0; i < len; i++)
		sprintf(out + 7 + 2 * i, "%02x", md_buf[i]);
}

/* One Write exchange: send, then read containerd's answer to it. */
static WriteResp *exchange(struct rpc_stream *s, WriteReq *req)
{
	WriteResp *resp = NULL;
	struct rpc_status st = { 0 };
	int r;

	r = rpc_stream_send(s, &req->base);
	if (r == 0)
		r = rpc_stream_recv(s, CT_DESC(write_content_response), (ProtobufCMessage **)&resp);
	if (r != 1) {
		rpc_stream_finish(s, &st);
		CHECK(0, "write exchange: %d, status %s: %s", r, rpc_status_name(st.code),
		      st.message ?: "");
	}
	return resp;
}

static void write_blob(const char *ref, const uint8_t *blob, size_t size, const char *digest)
{
	struct rpc_stream *s = NULL;
	struct rpc_status st = { 0 };
	WriteReq req = CONTAINERD__SERVICES__CONTENT__V1__WRITE_CONTENT_REQUEST__INIT;
	WriteResp *resp;
	size_t off = 0;
	int r;

	r = rpc_client_stream_open(cli, CONTENT_WRITE, md, 2, 60000, &s);
	CHECK(r == 0, "open Write: %d", r);

	/* STAT first: takes the ref's lock and says where to resume. */
	req.action = ACTION(STAT);
	req.ref = (char *)ref;
	req.total = (int64_t)size;
	req.expected = (char *)digest;
	resp = exchange(s, &req);
	CHECK(resp->offset == 0, "fresh ref at offset %lld", (long long)resp->offset);
	protobuf_c_message_free_unpacked(&resp->base, NULL);

	while (off < size) {
		size_t n = size - off < CHUNK ? size - off : CHUNK;
		WriteReq w = CONTAINERD__SERVICES__CONTENT__V1__WRITE_CONTENT_REQUEST__INIT;

		w.action = ACTION(WRITE);
		w.offset = (int64_t)off;
		w.data.data = (uint8_t *)blob + off;
		w.data.len = n;
		resp = exchange(s, &w);
		off += n;
		CHECK(resp->offset == (int64_t)off, "after write: offset %lld, want %zu",
		      (long long)resp->offset, off);
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	}

	req = (WriteReq)CONTAINERD__SERVICES__CONTENT__V1__WRITE_CONTENT_REQUEST__INIT;
	req.action = ACTION(COMMIT);
	req.total = (int64_t)size;
	req.offset = (int64_t)size;
	req.expected = (char *)digest;
	resp = exchange(s, &req);
	CHECK(resp->action == ACTION(COMMIT), "commit answered action %d", resp->action);
	CHECK(strcmp(resp->digest, digest) == 0, "committed %s, want %s", resp->digest, digest);
	protobuf_c_message_free_unpacked(&resp->base, NULL);

	r = rpc_stream_finish(s, &st);
	CHECK(r == 0, "Write status %s: %s", rpc_status_name(st.code), st.message ?: "");
	rpc_status_done(&st);
	rpc_stream_free(s);
}

static void read_range(const char *digest, const uint8_t *blob, int64_t offset, int64_t size,
		       size_t want)
{
	Containerd__Services__Content__V1__ReadContentRequest req =
		CONTAINERD__SERVICES__CONTENT__V1__READ_CONTENT_REQUEST__INIT;
	struct rpc_stream *s = NULL;
	struct rpc_status st = { 0 };
	size_t got = 0, msgs = 0;
	int r;

	req.digest = (char *)digest;
	req.offset = offset;
	req.size = size;
	r = rpc_client_server_stream(cli, CONTENT_READ, md, 2, 60000, &req.base, &s);
	CHECK(r == 0, "Read open: %d", r);
	for (;;) {
		Containerd__Services__Content__V1__ReadContentResponse *resp = NULL;

		r = rpc_stream_recv(s, CT_DESC(read_content_response), (ProtobufCMessage **)&resp);
		CHECK(r >= 0, "Read recv: %d", r);
		if (r == 0)
			break;
		/* containerd 1.6 numbers the chunks from the start of the
		 * requested range, not of the blob (contentserver.go's
		 * readResponseWriter starts at 0). */
		CHECK(resp->offset == (int64_t)got, "chunk at %lld, want %zu",
		      (long long)resp->offset, got);
		CHECK(got + resp->data.len <= want, "more data than asked for");
		CHECK(memcmp(resp->data.data, blob + offset + got, resp->data.len) == 0,
		      "data differs at %zu", got);
		got += resp->data.len;
		msgs++;
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	r = rpc_stream_finish(s, &st);
	CHECK(r == 0, "Read status %s: %s", rpc_status_name(st.code), st.message ?: "");
	CHECK(got == want, "read %zu bytes, want %zu", got, want);
	rpc_stream_free(s);
	printf("ok Read offset %lld size %lld: %zu bytes in %zu messages, identical\n",
	       (long long)offset, (long long)size, got, msgs);
}

int main(int argc, char **argv)
{
	Containerd__Services__Content__V1__InfoRequest info_req =
		CONTAINERD__SERVICES__CONTENT__V1__INFO_REQUEST__INIT;
	Containerd__Services__Content__V1__InfoResponse *info = NULL;
	struct rpc_status st = { 0 };
	char digest[72], ref[64], ref2[64];
	uint8_t *blob;
	int r;

	if (argc != 4) {
		fprintf(stderr, "usage: %s CONTAINERD_SOCKET NAMESPACE LEASE\n", argv[0]);
		return 2;
	}
	md[0] = (struct rpc_metadata){ MD_NAMESPACE, argv[2] };
	md[1] = (struct rpc_metadata){ MD_LEASE, argv[3] };
	r = rpc_client_new(argv[1], &cli);
	CHECK(r == 0, "client: %d", r);

	blob = malloc(BLOB_SIZE);
	CHECK(blob, "malloc");
	srand(1234);
	for (size_t i = 0; i < BLOB_SIZE; i++)
		blob[i] = (uint8_t)(rand() >> 7);
	blob[0] = (uint8_t)getpid(); /* a digest this run has not stored yet */
	digest_of(blob, BLOB_SIZE, digest);
	snprintf(ref, sizeof(ref), "rpc-probe-%d", (int)getpid());
	snprintf(ref2, sizeof(ref2), "rpc-probe-abort-%d", (int)getpid());

	write_blob(ref, blob, BLOB_SIZE, digest);
	printf("ok Write %s (%d bytes in %d KiB chunks, lease %s)\n", digest, BLOB_SIZE,
	       CHUNK / 1024, argv[3]);

	info_req.digest = digest;
	r = rpc_client_unary(cli, CONTENT_INFO, md, 2, 10000, &info_req.base,
			     CT_DESC(info_response), (ProtobufCMessage **)&info, &st);
	CHECK(r == 0, "Info: %s: %s", rpc_status_name(st.code), st.message ?: "");
	CHECK(info->info && strcmp(info->info->digest, digest) == 0, "Info digest");
	CHECK(info->info->size == BLOB_SIZE, "Info size %lld", (long long)info->info->size);
	CHECK(info->info->created_at && info->info->created_at->seconds > 0, "Info created_at");
	printf("ok Info size %lld\n", (long long)info->info->size);
	protobuf_c_message_free_unpacked(&info->base, NULL);
	rpc_status_done(&st);

	read_range(digest, blob, 0, 0, BLOB_SIZE);
	read_range(digest, blob, 1000, 5000, 5000);
	read_range(digest, blob, 2 * 1024 * 1024, 0, BLOB_SIZE - 2 * 1024 * 1024);

	/* Past the end: OUT_OF_RANGE, delivered as a stream's final status. */
	{
		Containerd__Services__Content__V1__ReadContentRequest req =
			CONTAINERD__SERVICES__CONTENT__V1__READ_CONTENT_REQUEST__INIT;
		struct rpc_stream *s = NULL;

		req.digest = digest;
		req.offset = BLOB_SIZE + 1;
		r = rpc_client_server_stream(cli, CONTENT_READ, md, 2, 10000, &req.base, &s);
		CHECK(r == 0, "Read open: %d", r);
		r = rpc_stream_recv(s, CT_DESC(read_content_response), NULL);
		CHECK(r == 0, "Read past the end gave a message");
		r = rpc_stream_finish(s, &st);
		CHECK(r == -ERANGE && st.code == RPC_OUT_OF_RANGE, "Read past the end: %d %s", r,
		      rpc_status_name(st.code));
		printf("ok Read past the end: OUT_OF_RANGE (%s)\n", st.message ?: "");
		rpc_status_done(&st);
		rpc_stream_free(s);
	}

	/* An ingest left open, then aborted: Status finds it, then not. */
	{
		Containerd__Services__Content__V1__StatusRequest sreq =
			CONTAINERD__SERVICES__CONTENT__V1__STATUS_REQUEST__INIT;
		Containerd__Services__Content__V1__AbortRequest areq =
			CONTAINERD__SERVICES__CONTENT__V1__ABORT_REQUEST__INIT;
		Containerd__Services__Content__V1__StatusResponse *sresp = NULL;
		WriteReq w = CONTAINERD__SERVICES__CONTENT__V1__WRITE_CONTENT_REQUEST__INIT;
		struct rpc_stream *s = NULL;
		ProtobufCMessage *empty = NULL;
		WriteResp *resp;

		r = rpc_client_stream_open(cli, CONTENT_WRITE, md, 2, 60000, &s);
		CHECK(r == 0, "open Write: %d", r);
		w.action = ACTION(WRITE);
		w.ref = ref2;
		w.data.data = blob;
		w.data.len = 4096;
		resp = exchange(s, &w);
		CHECK(resp->offset == 4096, "partial write offset %lld", (long long)resp->offset);
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		r = rpc_stream_finish(s, &st); /* close our side: containerd ends OK */
		CHECK(r == 0, "partial Write status %s: %s", rpc_status_name(st.code),
		      st.message ?: "");
		rpc_status_done(&st);
		rpc_stream_free(s);

		sreq.ref = ref2;
		r = rpc_client_unary(cli, CONTENT_STATUS, md, 2, 10000, &sreq.base,
				     CT_DESC(status_response), (ProtobufCMessage **)&sresp, &st);
		CHECK(r == 0, "Status: %s: %s", rpc_status_name(st.code), st.message ?: "");
		CHECK(sresp->status && sresp->status->offset == 4096, "Status offset");
		protobuf_c_message_free_unpacked(&sresp->base, NULL);
		rpc_status_done(&st);
		printf("ok Status of an open ingest: offset 4096\n");

		areq.ref = ref2;
		r = rpc_client_unary(cli, CONTENT_ABORT, md, 2, 10000, &areq.base,
				     &google__protobuf__empty__descriptor, &empty, &st);
		CHECK(r == 0, "Abort: %s: %s", rpc_status_name(st.code), st.message ?: "");
		protobuf_c_message_free_unpacked(empty, NULL);
		rpc_status_done(&st);

		sresp = NULL;
		r = rpc_client_unary(cli, CONTENT_STATUS, md, 2, 10000, &sreq.base,
				     CT_DESC(status_response), (ProtobufCMessage **)&sresp, &st);
		CHECK(r == -ENOENT && st.code == RPC_NOT_FOUND, "Status after Abort: %d %s", r,
		      rpc_status_name(st.code));
		rpc_status_done(&st);
		printf("ok Abort, then Status: NOT_FOUND\n");
	}

	/* containerd's error statuses come through as such. */
	info_req.digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
	r = rpc_client_unary(cli, CONTENT_INFO, md, 2, 10000, &info_req.base,
			     CT_DESC(info_response), (ProtobufCMessage **)&info, &st);
	CHECK(r == -ENOENT && st.code == RPC_NOT_FOUND, "Info of a missing blob: %d %s", r,
	      rpc_status_name(st.code));
	printf("ok Info of a missing blob: NOT_FOUND (%s)\n", st.message ?: "");
	rpc_status_done(&st);

	info_req.digest = digest;
	r = rpc_client_unary(cli, CONTENT_INFO, NULL, 0, 10000, &info_req.base,
			     CT_DESC(info_response), (ProtobufCMessage **)&info, &st);
	CHECK(r == -EBUSY && st.code == RPC_FAILED_PRECONDITION, "Info without namespace: %d %s",
	      r, rpc_status_name(st.code));
	printf("ok Info without a namespace header: FAILED_PRECONDITION (%s)\n", st.message ?: "");
	rpc_status_done(&st);

	r = rpc_client_unary(cli, "/containerd.services.content.v1.Content/NoSuchMethod", md, 2,
			     10000, &info_req.base, CT_DESC(info_response),
			     (ProtobufCMessage **)&info, &st);
	CHECK(r == -EOPNOTSUPP && st.code == RPC_UNIMPLEMENTED, "unknown method: %d %s", r,
	      rpc_status_name(st.code));
	printf("ok unknown method: UNIMPLEMENTED\n");
	rpc_status_done(&st);

	printf("blob %s\n", digest);
	free(blob);
	rpc_client_free(cli);
	return 0;
}
