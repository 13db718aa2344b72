/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The storage layout under --root (DESIGN §6):
 *   metadata.db
 *   snapshots/<id>/{.erofslayer, fs/, work/, lower/, layer.erofs, fsmeta.erofs,
 *                   merged.vmdk, rwlayer.img}
 * Directory names are numeric ids from the store, never keys.
 */
#ifndef SES_LAYOUT_H
#define SES_LAYOUT_H

#include <stdbool.h>
#include <stdint.h>

#define LAYOUT_MARKER ".erofslayer"
#define LAYOUT_LAYER "layer.erofs"
#define LAYOUT_FSMETA "fsmeta.erofs"
#define LAYOUT_VMDK "merged.vmdk"
#define LAYOUT_RWLAYER "rwlayer.img"

struct layout {
	char *root;	 /* absolute */
	char *snapshots; /* root/snapshots */
	int snapshots_fd;
};

int layout_open(const char *root, struct layout *ret);
void layout_close(struct layout *l);

/* root/snapshots/<id>[/name] as a malloc'd string */
char *layout_path(const struct layout *l, uint64_t id, const char *name);

/* Creates snapshots/<id> with its marker (and fs/, work/, lower/ when asked)
 * under a temporary name, then renames it into place: a crash leaves either
 * nothing or a complete directory. */
int layout_create(const struct layout *l, uint64_t id, bool extract_dirs, bool lower_dir);

/* Removes snapshots/<id> (clearing immutable flags first): renamed away
 * first, then deleted, so a crash midway leaves only a hidden trash entry
 * that layout_sweep removes. */
int layout_remove(const struct layout *l, uint64_t id);

/* Removes snapshots/<id>/<name> and everything below it. */
int layout_remove_subdir(const struct layout *l, uint64_t id, const char *name);

/* Removes every entry of snapshots/ that is not the directory of a live id
 * (temporary and trash entries, half-made or orphaned directories). Returns
 * the number removed. */
typedef bool (*layout_live_fn)(void *ud, uint64_t id);
int layout_sweep(const struct layout *l, layout_live_fn live, void *ud);

/* Sets or clears FS_IMMUTABLE_FL on snapshots/<id>/<name>; file systems
 * without the flag (tmpfs) are not an error. */
int layout_set_immutable(const struct layout *l, uint64_t id, const char *name, bool on);

#endif
