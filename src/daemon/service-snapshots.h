/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SES_SERVICE_SNAPSHOTS_H
#define SES_SERVICE_SNAPSHOTS_H

struct rpc_server;
struct snapshotter;

/* Registers the ten methods of containerd.services.snapshots.v1.Snapshots.
 * Requests whose snapshotter field names another snapshotter than name are
 * refused (InvalidArgument); an empty field is accepted. name must outlive
 * the server. */
int service_snapshots_register(struct rpc_server *srv, struct snapshotter *sn, const char *name);

#endif
