/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SES_SERVICE_DIFF_H
#define SES_SERVICE_DIFF_H

struct rpc_client;
struct rpc_server;

/* Registers containerd.services.diff.v1.Diff (Apply, Diff). Blobs are read
 * and written through content, a client of containerd's socket, in the
 * request's containerd-namespace or else default_namespace. */
int service_diff_register(struct rpc_server *srv, struct rpc_client *content,
			  const char *default_namespace);
void service_diff_done(void);

#endif
