/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the producers of host trees share (the directory walker,
 * lib/dir/dirconv.c, and the ext4 image walker, lib/ext4/ext4conv.c), so
 * that the same tree gives the same image whichever one reads it:
 *   - which xattrs an image keeps, with the rules of an overlayfs upper
 *     directory (include/erofs-layer/dirconv.h describes them);
 *   - the content digest the derived image UUID comes from.
 */
#ifndef EL_OVERLAY_UPPER_INTERNAL_H
#define EL_OVERLAY_UPPER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "erofs-layer/entry.h"
#include "common/sha256.h"

/*
 * Judges one xattr by its full name. Returns 1: keep it; 0: drop it (msg
 * holds a warning to give when msg[0] is not NUL: the namespace is one EROFS
 * cannot store; the upper's own bookkeeping is dropped silently); or
 * -EOPNOTSUPP: the entry cannot be converted (overlay redirect or metacopy,
 * with overlay_upper), msg says why. msg gets at most len bytes.
 */
int el_xattr_filter(const char *name, bool overlay_upper, char *msg, size_t len);

/* The digest of the walked content, for a UUID that follows the content:
 * every entry (all fields but offset), then each piece of file data with
 * its offset. d may be NULL (the caller gave a UUID): nothing is done. */
void el_digest_entry(struct el_sha256 *d, const struct el_entry *e);
void el_digest_data(struct el_sha256 *d, uint64_t off, const void *buf, size_t len);

#endif
