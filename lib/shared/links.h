/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inode → first path, for the tree walkers (lib/dir/dirconv.c, a host
 * directory; lib/ext4/ext4-walk.c, an ext4 image): a second path to an
 * inode already met becomes a hard link to the first, and a directory met
 * twice is a loop. One malloc'd slot per inode, in a common/hashtab.h table.
 */
#ifndef EL_LINKS_H
#define EL_LINKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/hashtab.h"

struct el_link_slot {
	struct el_hnode hnode;
	uint64_t dev, ino;
	bool dir;
	char path[]; /* the first path met */
};

/* Zero-initialised before use. */
struct el_links {
	struct el_hashtab tab;
};

/*
 * The slot of (dev, ino): *ret_seen true when it was met before (its path
 * and dir flag are the first caller's), else a new slot holding a copy of
 * path and dir. The slot is valid until el_links_free. -ENOMEM.
 */
int el_links_claim(struct el_links *t, uint64_t dev, uint64_t ino, const char *path, bool dir,
		   struct el_link_slot **ret, bool *ret_seen);
void el_links_free(struct el_links *t);

#endif
