/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SES_SERVICE_INTROSPECTION_H
#define SES_SERVICE_INTROSPECTION_H

struct rpc_server;
struct introspection;

/* containerd.services.introspection.v1.Introspection/Server: the daemon's
 * UUID (made once, kept in <root>/uuid), its pid and pid namespace. ctr 2.x
 * asks it of every server it talks to (its deprecation check) and warns when
 * the method is missing. *ret must outlive the server; free it with
 * introspection_free after rpc_server_free. */
int service_introspection_register(struct rpc_server *srv, const char *root,
				   struct introspection **ret);
void introspection_free(struct introspection *in);

#endif
