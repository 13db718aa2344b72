/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SES_SERVICE_SNAPSHOTS_H
#define SES_SERVICE_SNAPSHOTS_H

struct rpc_server;
struct snapshotter;

/* Registers the ten methods of containerd.services.snapshots.v1.Snapshots. */
int service_snapshots_register(struct rpc_server *srv, struct snapshotter *sn);

#endif
