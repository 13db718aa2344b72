/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The storage layout under --root (docs/durability.md):
 *   metadata.db
 *   snapshots/<id>/{.erofslayer, fs/, work/, lower/, layer.erofs, fsmeta.erofs,
 *                   merged.vmdk, rwlayer.img}
 * Directory names are numeric ids from the store, never keys.
 */
#ifndef SES_LAYOUT_H
#define SES_LAYOUT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LAYOUT_MARKER ".erofslayer"
#define LAYOUT_LAYER "layer.erofs"
#define LAYOUT_FSMETA "fsmeta.erofs"
#define LAYOUT_VMDK "merged.vmdk"
#define LAYOUT_RWLAYER "rwlayer.img"
/* the dm-verity sidecar beside an image: containerd 2.3's name for it */
#define LAYOUT_VERITY_SUFFIX ".dmverity"
#define LAYOUT_LAYER_VERITY LAYOUT_LAYER LAYOUT_VERITY_SUFFIX
#define LAYOUT_FSMETA_VERITY LAYOUT_FSMETA LAYOUT_VERITY_SUFFIX

/* What --dm-verity asks for (docs/verity.md). */
enum dm_verity {
	DM_VERITY_OFF,	  /* no trees */
	DM_VERITY_ON,	  /* layer.erofs and fsmeta.erofs with a tree each, and its sidecar */
	DM_VERITY_MOUNTS, /* ... and their mounts name the sidecar (X-containerd.dmverity=) */
};

struct layout_stage;

struct layout {
	char *root;	 /* absolute */
	char *snapshots; /* root/snapshots */
	int snapshots_fd;
	/* directories in flight (made before their records, outside the
	 * store's writer lock): a sweep while serving leaves them alone */
	pthread_mutex_t stage_lock;
	struct layout_stage *stages;
	uint64_t stage_seq;
	/* fsyncs of snapshots/ shared by concurrent callers (layout.c) */
	pthread_mutex_t sync_lock;
	pthread_cond_t sync_cond;
	uint64_t sync_asked, sync_done;
	bool sync_busy;
};

int layout_open(const char *root, struct layout *ret);
void layout_close(struct layout *l);

/* root/snapshots/<id>[/name] as a malloc'd string */
char *layout_path(const struct layout *l, uint64_t id, const char *name);

/*
 * A snapshot's directory is made before its record, outside the store's
 * writer lock, under the id the store reserved for it (store_reserve_id):
 *  1. layout_stage_new: snapshots/.tmp-<id> with its marker (and fs/,
 *     work/, lower/ when asked); the caller may add files through fd;
 *  2. layout_stage_publish: the directory is fsynced, renamed to
 *     snapshots/<id>, and snapshots/ is fsynced (one fsync for all the
 *     callers that renamed meanwhile): complete and durable under its final
 *     name before any record names it. A stage that need not be durable
 *     (!durable) is made as snapshots/<id> at once, and publishing it does
 *     nothing: a crash may lose it, so it must hold nothing that
 *     layout_restore cannot make again (the marker and empty directories:
 *     extract snapshots, views without a parent);
 *  3. the record is committed (or not), then layout_stage_free, keeping the
 *     directory or removing it (under whichever name it has).
 * Until freed, a stage is in flight: a sweep leaves both its names alone. A
 * crash at any point leaves a .tmp-<id> or an <id> no record owns, which
 * the start-up sweep removes.
 */
struct layout_stage {
	char name[40]; /* .tmp-<id> (or <id>), under snapshots/ */
	int fd;	       /* the directory */
	uint64_t id;
	bool durable;
	bool published; /* under snapshots/<id> */
	struct layout_stage *next;
};

int layout_stage_new(struct layout *l, uint64_t id, bool extract_dirs, bool lower_dir,
		     bool durable, struct layout_stage **ret);
int layout_stage_publish(struct layout *l, struct layout_stage *st);

/* fsync of snapshots/ (shared by concurrent callers): the entries renamed
 * into it so far survive a crash. A non-durable stage needs it before a
 * file in it that must survive (a committed layer) is named by a record. */
int layout_sync(struct layout *l);

/* What layout_stage_new makes, made again where missing (at start-up, for
 * the records of non-durable stages a crash may have lost): 1 if anything
 * was made, 0 if nothing was missing, or -errno. */
int layout_restore(struct layout *l, uint64_t id, bool extract_dirs, bool lower_dir);
void layout_stage_free(struct layout *l, struct layout_stage *st, bool keep);

/* Removes snapshots/<id> (clearing immutable flags first): renamed away
 * first, then deleted, so a crash midway leaves only a hidden trash entry
 * that layout_sweep removes. */
int layout_remove(const struct layout *l, uint64_t id);

/* Removes snapshots/<id>/<name> and everything below it. */
int layout_remove_subdir(const struct layout *l, uint64_t id, const char *name);

/*
 * Sweeping: every entry of snapshots/ that is not the directory of a live id
 * nor a stage in flight (temporary and trash entries, half-made or orphaned
 * directories) is garbage. layout_sweep_collect renames each to a
 * .trash-<name> (cheap; under the store's writer lock, so that no record
 * changes while directories are judged, and no new directory ever meets an
 * old one under its name), layout_sweep_finish deletes them (slow: outside
 * the lock) and returns how many went. layout_sweep does both, for
 * start-up.
 */
typedef bool (*layout_live_fn)(void *ud, uint64_t id);
struct layout_trash {
	char **names;
	size_t n, cap;
};
int layout_sweep_collect(struct layout *l, layout_live_fn live, void *ud, struct layout_trash *ret);
int layout_sweep_finish(const struct layout *l, struct layout_trash *t);
int layout_sweep(struct layout *l, layout_live_fn live, void *ud);

/* Sets or clears FS_IMMUTABLE_FL on snapshots/<id>/<name>; file systems
 * without the flag (tmpfs) are not an error. */
int layout_set_immutable(const struct layout *l, uint64_t id, const char *name, bool on);
/* The same on an open file; nothing is written when the flag is as wanted. */
int layout_set_immutable_fd(int fd, bool on);

#endif
