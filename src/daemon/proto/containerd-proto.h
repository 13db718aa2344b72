/* SPDX-License-Identifier: Apache-2.0 */
/* The generated containerd messages, and the method paths we serve or call
 * (gRPC paths are "/<package>.<Service>/<Method>", docs/containerd-contract.md). */
#ifndef SES_CONTAINERD_PROTO_H
#define SES_CONTAINERD_PROTO_H

#include "content.pb-c.h"
#include "descriptor.pb-c.h"
#include "diff.pb-c.h"
#include "introspection.pb-c.h"
#include "mount.pb-c.h"
#include "snapshots.pb-c.h"
#include "google/protobuf/empty.pb-c.h"

#define SNAPSHOTS_SERVICE "/containerd.services.snapshots.v1.Snapshots/"
#define SNAPSHOTS_PREPARE SNAPSHOTS_SERVICE "Prepare"
#define SNAPSHOTS_VIEW SNAPSHOTS_SERVICE "View"
#define SNAPSHOTS_MOUNTS SNAPSHOTS_SERVICE "Mounts"
#define SNAPSHOTS_COMMIT SNAPSHOTS_SERVICE "Commit"
#define SNAPSHOTS_REMOVE SNAPSHOTS_SERVICE "Remove"
#define SNAPSHOTS_STAT SNAPSHOTS_SERVICE "Stat"
#define SNAPSHOTS_UPDATE SNAPSHOTS_SERVICE "Update"
#define SNAPSHOTS_LIST SNAPSHOTS_SERVICE "List" /* server stream */
#define SNAPSHOTS_USAGE SNAPSHOTS_SERVICE "Usage"
#define SNAPSHOTS_CLEANUP SNAPSHOTS_SERVICE "Cleanup"

#define DIFF_SERVICE "/containerd.services.diff.v1.Diff/"
#define DIFF_APPLY DIFF_SERVICE "Apply"
#define DIFF_DIFF DIFF_SERVICE "Diff"

#define CONTENT_SERVICE "/containerd.services.content.v1.Content/"
#define CONTENT_INFO CONTENT_SERVICE "Info"
#define CONTENT_READ CONTENT_SERVICE "Read"   /* server stream */
#define CONTENT_STATUS CONTENT_SERVICE "Status"
#define CONTENT_WRITE CONTENT_SERVICE "Write" /* bidirectional */
#define CONTENT_ABORT CONTENT_SERVICE "Abort"

#define INTROSPECTION_PLUGINS "/containerd.services.introspection.v1.Introspection/Plugins"

/* Metadata keys (lowercase, as gRPC requires). */
#define MD_NAMESPACE "containerd-namespace"
#define MD_LEASE "containerd-lease"

#endif
