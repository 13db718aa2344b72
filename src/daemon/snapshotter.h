/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The snapshotter, free of any transport: the snapshot state machine over the
 * store, the storage layout, the layer conversions and the mount shapes of
 * docs/vm-runtime-contract.md. The gRPC service (service-snapshots.c) only decodes, calls these
 * and encodes. Errors are negative errno values plus a message in err:
 *   -ENOENT not found, -EEXIST already exists, -EINVAL invalid argument,
 *   -EBUSY failed precondition (wrong kind, has children), -EOPNOTSUPP
 *   unimplemented, anything else internal.
 */
#ifndef SES_SNAPSHOTTER_H
#define SES_SNAPSHOTTER_H

/* The label a committed layer with a dm-verity tree carries: the root hash
 * of its sidecar, lowercase hex (docs/verity.md). */
#define SN_LABEL_VERITY_ROOT "spin-erofs.dmverity.roothash"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "erofs-layer/error.h"
#include "layout.h"
#include "store.h"

struct sn_config {
	const char *root;
	uint64_t default_size; /* bytes of a new rwlayer.img */
	bool set_immutable;
	/* how long a chain's merge waits after its Commit (0: 50 ms) */
	unsigned merge_grace_ms;
	/* dm-verity trees for the layers Commit converts and for fsmeta, and
	 * whether mounts name their sidecars (layout.h, --dm-verity) */
	enum dm_verity verity;
};

struct sn_mount {
	char *type;
	char *source;
	char **options;
	size_t n_options;
};

struct sn_mounts {
	struct sn_mount *v;
	size_t n, cap;
};

void sn_mounts_free(struct sn_mounts *m);

struct snapshotter;

/* Opens the store and recovers from a crash: directories that no record
 * owns (half-made, removed, temporary) are deleted. */
int sn_open(const struct sn_config *cfg, struct snapshotter **ret, struct el_error *err);
void sn_close(struct snapshotter *sn);

/* kind: SNAP_KIND_ACTIVE (Prepare) or SNAP_KIND_VIEW (View) */
int sn_prepare(struct snapshotter *sn, enum snap_kind kind, const char *key, const char *parent,
	       const struct snap_label *labels, size_t n_labels, struct sn_mounts *ret,
	       struct el_error *err);
int sn_mounts(struct snapshotter *sn, const char *key, struct sn_mounts *ret,
	      struct el_error *err);
int sn_commit(struct snapshotter *sn, const char *name, const char *key,
	      const struct snap_label *labels, size_t n_labels, struct el_error *err);
/* Commit onto parent (containerd 2.2's rebase: CommitSnapshotRequest.parent):
 * the layer, prepared on any parent or none, becomes the top of parent's
 * chain, whose fsmeta and VMDK are made now; NULL or "" is sn_commit. */
int sn_commit_onto(struct snapshotter *sn, const char *name, const char *key, const char *parent,
		   const struct snap_label *labels, size_t n_labels, struct el_error *err);
int sn_remove(struct snapshotter *sn, const char *key, struct el_error *err);
int sn_stat(struct snapshotter *sn, const char *key, struct snap_info *ret,
	    struct el_error *err);
int sn_update(struct snapshotter *sn, const struct snap_info *info, const char *const *paths,
	      size_t n, struct snap_info *ret, struct el_error *err);
int sn_usage(struct snapshotter *sn, const char *key, uint64_t *ret_size, uint64_t *ret_inodes,
	     struct el_error *err);
/* Deletes directories no snapshot owns; returns how many. */
int sn_cleanup(struct snapshotter *sn, struct el_error *err);
/* Every snapshot, in key order. */
int sn_walk(struct snapshotter *sn, store_walk_fn fn, void *ud, struct el_error *err);

/* Writes share transactions (group commit): how many operations went
 * through, in how many transactions, and the most in one. */
/* Chain merges run after their Commit, and dropped as intermediate steps of
 * an unpack (left to a first mount). */
void sn_merge_stats(struct snapshotter *sn, uint64_t *ret_run, uint64_t *ret_dropped);
void sn_group_commit_stats(struct snapshotter *sn, uint64_t *ret_ops, uint64_t *ret_batches,
			   uint64_t *ret_max);

/* Tests only: fn runs at named points of the write paths (snapshotter.c,
 * fault()), to stop or kill the process there; NULL to remove it. */
typedef void (*sn_fault_fn)(const char *point, void *ud);
void sn_set_fault_hook(struct snapshotter *sn, sn_fault_fn fn, void *ud);

/* An extract snapshot is one whose key's last path element starts with
 * "extract-" (docs/containerd-contract.md). */
bool sn_is_extract_key(const char *key);
/* The directory of a snapshot, for the differ (NULL if unknown). */
char *sn_snapshot_dir(struct snapshotter *sn, const char *key);

#endif
