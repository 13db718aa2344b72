/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SES_SERVICE_DIFF_H
#define SES_SERVICE_DIFF_H

#include <stdbool.h>

struct metrics;
struct rpc_client;
struct rpc_server;

struct diff_options {
	/* the namespace of content calls when a request names none */
	const char *default_namespace;
	/* the layers Apply publishes get the immutable flag (--set-immutable) */
	bool set_immutable;
	/* Apply reads a blob from containerd's local content store when this
	 * host can open it, the Read stream otherwise (--local-content) */
	bool local_content;
	/* each layer.erofs gets a dm-verity tree and its sidecar (--dm-verity) */
	bool verity;
	/* each Apply of ours ends in metrics_observe_apply (NULL: none) */
	struct metrics *metrics;
};

/* Registers containerd.services.diff.v1.Diff (Apply, Diff). Blobs are read
 * and written through content, a client of containerd's socket. */
int service_diff_register(struct rpc_server *srv, struct rpc_client *content,
			  const struct diff_options *opts);
void service_diff_done(void);

#endif
