/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a snapshot's files take on disk, for Usage: the files a chain's merge
 * adds beside a committed layer, and what an active snapshot holds (the
 * walking differ's fs/ of an extract snapshot, a container's rwlayer.img).
 * A committed snapshot's own layer is counted in its record, not here.
 */
#ifndef SPIN_DAEMON_USAGE_H
#define SPIN_DAEMON_USAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "layout.h"

/* Bytes of the fsmeta.erofs and merged.vmdk in directory id (0 for those
 * missing). */
uint64_t usage_chain_files(const struct layout *l, uint64_t id);

/* Bytes and inodes of active snapshot id: for an extract snapshot what is
 * under its fs/, for a container's the blocks rwlayer.img has allocated (one
 * inode). -errno, or 0. */
int usage_active(const struct layout *l, uint64_t id, bool extract, uint64_t *ret_size,
		 uint64_t *ret_inodes);

#endif
