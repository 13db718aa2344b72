/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A Diff client for the differ tests: calls Apply (or Diff) on the daemon's
 * socket the way containerd would, with descriptors and mounts a test picks
 * (also wrong ones), and prints the outcome as one JSON object.
 *
 *   diff-probe apply SOCKET NAMESPACE MEDIA_TYPE DIGEST SIZE MOUNTS_JSON [TIMEOUT_MS]
 *   diff-probe diff SOCKET NAMESPACE LEFT_JSON RIGHT_JSON MEDIA_TYPE REF [EPOCH] [LEASE]
 *   diff-probe commit SOCKET NAMESPACE NAME KEY PARENT
 *
 * commit is Snapshots/Commit as containerd 2.2 sends it when it unpacks
 * with the rebase capability (CommitSnapshotRequest.parent, field 5; no
 * released ctr can send it).
 *
 * MOUNTS_JSON is what `ctr snapshots mounts` gives, reduced by the caller to
 * lines of "type<TAB>source<TAB>opt,opt,..." (one mount a line) so that no
 * JSON parser is needed here. Output: {"code":N,"status":"...","message":
 * "...","media_type":"...","digest":"...","size":N}. Exit 0 whenever the
 * call completed (whatever its status), 2 on usage errors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "containerd-proto.h"
#include "rpc.h"

typedef Containerd__Types__Mount PbMount;

static void json_str(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* "type\tsource\topt,opt\n..." → mounts */
static PbMount **parse_mounts(char *text, size_t *ret_n)
{
	PbMount **v = NULL;
	size_t n = 0;

	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char *type = line, *src = strchr(type, '\t'), *opts;
		if (!src)
			return NULL;
		*src++ = 0;
		opts = strchr(src, '\t');
		if (opts)
			*opts++ = 0;
		PbMount *m = calloc(1, sizeof(*m));
		containerd__types__mount__init(m);
		m->type = type;
		m->source = src;
		for (char *o = opts ? strtok_r(opts, ",", &opts) : NULL; o; o = strtok_r(NULL, ",", &opts)) {
			m->options = realloc(m->options, (m->n_options + 1) * sizeof(char *));
			m->options[m->n_options++] = o;
		}
		v = realloc(v, (n + 1) * sizeof(*v));
		v[n++] = m;
	}
	*ret_n = n;
	return v;
}

static void free_mounts(PbMount **v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i]->options);
		free(v[i]);
	}
	free(v);
}

static void print_result(int r, const struct rpc_status *st, const Containerd__Types__Descriptor *d)
{
	printf("{\"rc\":%d,\"code\":%d,\"status\":", r, st->code);
	json_str(rpc_status_name(st->code));
	printf(",\"message\":");
	json_str(st->message);
	if (d) {
		printf(",\"media_type\":");
		json_str(d->media_type);
		printf(",\"digest\":");
		json_str(d->digest);
		printf(",\"size\":%lld", (long long)d->size);
	}
	printf("}\n");
}

int main(int argc, char **argv)
{
	struct rpc_client *cli = NULL;
	struct rpc_status st = { 0 };
	struct rpc_metadata md[2];
	int r;

	if (argc < 4)
		goto usage;
	md[0] = (struct rpc_metadata){ MD_NAMESPACE, argv[3] };
	md[1] = (struct rpc_metadata){ MD_LEASE, NULL };
	if (rpc_client_new(argv[2], &cli) < 0) {
		fprintf(stderr, "diff-probe: cannot make a client for %s\n", argv[2]);
		return 1;
	}
	if (!strcmp(argv[1], "apply") && (argc == 8 || argc == 9)) {
		Containerd__Services__Diff__V1__ApplyRequest req =
			CONTAINERD__SERVICES__DIFF__V1__APPLY_REQUEST__INIT;
		Containerd__Services__Diff__V1__ApplyResponse *resp = NULL;
		Containerd__Types__Descriptor d = CONTAINERD__TYPES__DESCRIPTOR__INIT;
		d.media_type = argv[4];
		d.digest = argv[5];
		d.size = strtoll(argv[6], NULL, 10);
		req.diff = &d;
		req.mounts = parse_mounts(argv[7], &req.n_mounts);
		if (!req.mounts && *argv[7])
			goto usage;
		r = rpc_client_unary(cli, DIFF_APPLY, md, 1, argc == 9 ? strtoull(argv[8], NULL, 10) : 0,
				     &req.base, &containerd__services__diff__v1__apply_response__descriptor,
				     (ProtobufCMessage **)&resp, &st);
		print_result(r, &st, resp ? resp->applied : NULL);
		free_mounts(req.mounts, req.n_mounts);
		if (resp)
			protobuf_c_message_free_unpacked(&resp->base, NULL);
	} else if (!strcmp(argv[1], "diff") && argc >= 8 && argc <= 10) {
		Containerd__Services__Diff__V1__DiffRequest req =
			CONTAINERD__SERVICES__DIFF__V1__DIFF_REQUEST__INIT;
		Containerd__Services__Diff__V1__DiffResponse *resp = NULL;
		Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
		req.left = parse_mounts(argv[4], &req.n_left);
		req.right = parse_mounts(argv[5], &req.n_right);
		req.media_type = argv[6];
		req.ref = argv[7];
		if (argc >= 9 && *argv[8]) {
			ts.seconds = strtoll(argv[8], NULL, 10);
			req.source_date_epoch = &ts;
		}
		if (argc == 10)
			md[1].value = argv[9];
		r = rpc_client_unary(cli, DIFF_DIFF, md, 2, 0, &req.base,
				     &containerd__services__diff__v1__diff_response__descriptor,
				     (ProtobufCMessage **)&resp, &st);
		print_result(r, &st, resp ? resp->diff : NULL);
		free_mounts(req.left, req.n_left);
		free_mounts(req.right, req.n_right);
		if (resp)
			protobuf_c_message_free_unpacked(&resp->base, NULL);
	} else if (!strcmp(argv[1], "commit") && argc == 7) {
		Containerd__Services__Snapshots__V1__CommitSnapshotRequest req =
			CONTAINERD__SERVICES__SNAPSHOTS__V1__COMMIT_SNAPSHOT_REQUEST__INIT;
		Google__Protobuf__Empty *resp = NULL;
		req.snapshotter = "spin-erofs";
		req.name = argv[4];
		req.key = argv[5];
		req.parent = argv[6];
		r = rpc_client_unary(cli, SNAPSHOTS_COMMIT, md, 1, 0, &req.base,
				     &google__protobuf__empty__descriptor, (ProtobufCMessage **)&resp,
				     &st);
		print_result(r, &st, NULL);
		if (resp)
			protobuf_c_message_free_unpacked(&resp->base, NULL);
	} else {
		goto usage;
	}
	rpc_status_done(&st);
	rpc_client_free(cli);
	return 0;
usage:
	fprintf(stderr, "usage: diff-probe apply SOCKET NAMESPACE MEDIA_TYPE DIGEST SIZE MOUNTS [TIMEOUT_MS]\n"
			"       diff-probe diff SOCKET NAMESPACE LEFT RIGHT MEDIA_TYPE REF [EPOCH] [LEASE]\n"
			"       diff-probe commit SOCKET NAMESPACE NAME KEY PARENT\n");
	return 2;
}
