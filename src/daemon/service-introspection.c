/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Introspection/Server (service-introspection.h). The UUID identifies this
 * daemon's root across restarts, as containerd's own does: 16 random bytes
 * in RFC 4122 version 4 form, written once to <root>/uuid (atomically) and
 * read back at every start.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "google/protobuf/empty.pb-c.h"
#include "introspection.pb-c.h"
#include "log.h"
#include "rpc/rpc.h"
#include "service-introspection.h"
#include "common/io.h"
#include "common/macro.h"

#define UUID_LEN 36

struct introspection {
	char uuid[UUID_LEN + 1];
	uint64_t pidns;
};

static bool uuid_valid(const char *s)
{
	for (int i = 0; i < UUID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return s[UUID_LEN] == 0;
}

static int uuid_new(char out[UUID_LEN + 1])
{
	uint8_t b[16];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return -errno;
	b[6] = (b[6] & 0x0f) | 0x40; /* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80; /* RFC 4122 variant */
	snprintf(out, UUID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
		 b[15]);
	return 0;
}

/* <root>/uuid as it is, or a new one published there */
static int uuid_load(const char *root, char out[UUID_LEN + 1])
{
	_cleanup_free_ char *path = NULL;
	char buf[UUID_LEN + 2] = { 0 };
	int r;

	if (asprintf(&path, "%s/uuid", root) < 0)
		return -ENOMEM;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		ssize_t n = el_read_full(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n == UUID_LEN + 1 && buf[UUID_LEN] == '\n')
			buf[UUID_LEN] = 0;
		if (n >= 0 && uuid_valid(buf)) {
			memcpy(out, buf, UUID_LEN + 1);
			return 0;
		}
		log_warn("%s does not hold a UUID: making a new one", path);
	} else if (errno != ENOENT) {
		return -errno;
	}
	r = uuid_new(out);
	if (r < 0)
		return r;
	struct el_outfile of = { .fd = -1, .dirfd = -1 };
	r = el_outfile_open(&of, path, 0644);
	if (r < 0)
		return r;
	snprintf(buf, sizeof(buf), "%s\n", out);
	r = el_write_full(of.fd, buf, UUID_LEN + 1);
	if (r >= 0)
		r = el_outfile_publish(&of);
	el_outfile_discard(&of);
	return r;
}

static void h_server(struct rpc_call *call, ProtobufCMessage *msg, void *ud)
{
	struct introspection *in = ud;
	Containerd__Services__Introspection__V1__ServerResponse resp =
		CONTAINERD__SERVICES__INTROSPECTION__V1__SERVER_RESPONSE__INIT;

	(void)msg;
	resp.uuid = in->uuid;
	resp.pid = (uint64_t)getpid();
	resp.pidns = in->pidns;
	rpc_call_reply(call, &resp.base);
}

int service_introspection_register(struct rpc_server *srv, const char *root,
				   struct introspection **ret)
{
	struct introspection *in = calloc(1, sizeof(*in));
	struct stat st;
	int r;

	if (!in)
		return -ENOMEM;
	r = uuid_load(root, in->uuid);
	if (r < 0) {
		free(in);
		return r;
	}
	if (stat("/proc/self/ns/pid", &st) == 0)
		in->pidns = (uint64_t)st.st_ino;
	r = rpc_server_register(srv, "/containerd.services.introspection.v1.Introspection/Server",
				RPC_UNARY, &google__protobuf__empty__descriptor, h_server, in);
	if (r < 0) {
		free(in);
		return r;
	}
	*ret = in;
	return 0;
}

void introspection_free(struct introspection *in)
{
	free(in);
}
