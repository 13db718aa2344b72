/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SES_SERVICE_DIFF_H
#define SES_SERVICE_DIFF_H

#include <stdbool.h>

struct rpc_client;
struct rpc_server;

/* Registers containerd.services.diff.v1.Diff (Apply, Diff). Blobs are read
 * and written through content, a client of containerd's socket, in the
 * request's containerd-namespace or else default_namespace; set_immutable:
 * the layers Apply publishes get the immutable flag (--set-immutable). */
int service_diff_register(struct rpc_server *srv, struct rpc_client *content,
			  const char *default_namespace, bool set_immutable);
void service_diff_done(void);

#endif
