/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inode → first path, for the tree walkers (lib/dir/dirconv.c, a host
 * directory; lib/ext4/ext4-walk.c, an ext4 image): a second path to an
 * inode already met becomes a hard link to the first, and a directory met
 * twice is a loop. Open addressing, grown at half load.
 */
#ifndef EL_LINKS_H
#define EL_LINKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct el_link_slot {
	uint64_t dev, ino;
	char *path; /* the first path met; NULL: an empty slot */
	bool dir;
};

struct el_links {
	struct el_link_slot *v;
	size_t n, cap; /* cap: 0 or a power of two */
};

/*
 * The slot of (dev, ino): *ret_seen true when it was met before (its path
 * and dir flag are the first caller's), else a new slot holding a copy of
 * path and dir. The slot is valid until the next call. -ENOMEM.
 */
int el_links_claim(struct el_links *t, uint64_t dev, uint64_t ino, const char *path, bool dir,
		   struct el_link_slot **ret, bool *ret_seen);
void el_links_free(struct el_links *t);

#endif
