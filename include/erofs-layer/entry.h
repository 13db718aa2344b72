/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One file system entry as a producer (the tar reader; later a directory
 * walker) hands it to the tree. Pointers stay valid until the producer's next
 * entry.
 */
#ifndef EROFS_LAYER_ENTRY_H
#define EROFS_LAYER_ENTRY_H

#include <stddef.h>
#include <stdint.h>

enum el_entry_type {
	EL_ENTRY_REG,
	EL_ENTRY_DIR,
	EL_ENTRY_SYMLINK,
	EL_ENTRY_HARDLINK,
	EL_ENTRY_CHR,
	EL_ENTRY_BLK,
	EL_ENTRY_FIFO,
};

struct el_xattr_kv {
	const char *name; /* full name, e.g. "security.capability" */
	const uint8_t *value;
	size_t value_len;
};

struct el_entry {
	enum el_entry_type type;
	const char *path; /* as stored by the producer, not yet normalised */
	const char *link; /* symlink target or hard-link target path */
	uint32_t mode;	  /* permission bits incl. setuid/setgid/sticky (07777) */
	uint32_t uid, gid;
	int64_t mtime;
	uint32_t mtime_nsec;
	uint64_t size; /* logical size of a regular file (sparse: the full size) */
	uint32_t dev_major, dev_minor;
	const struct el_xattr_kv *xattrs;
	size_t nxattrs;
	uint64_t offset; /* where the entry starts in its stream, for messages */
};

#endif
