/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the files of the snapshotter (snapshotter.c, group-commit.c) share:
 * the errors as the snapshotter contract words them (snapshotter.h).
 */
#ifndef SPIN_DAEMON_SNAPSHOTTER_INTERNAL_H
#define SPIN_DAEMON_SNAPSHOTTER_INTERNAL_H

#include <errno.h>
#include <string.h>

#include "erofs-layer/error.h"
#include "store.h"

/* Records the first error only, without an offset; returns code. */
#define fail(err, code, ...) el_error_set(err, code, NULL, EL_NO_OFFSET, __VA_ARGS__)

/* store errors as the snapshotter contract names them */
static inline int store_fail(struct el_error *err, struct store_txn *txn, int r, const char *what,
			     const char *key)
{
	const char *why = txn ? store_txn_errmsg(txn) : "";
	switch (r) {
	case -ENOENT:
		return fail(err, r, "%s: snapshot %s does not exist%s%s", what, key, *why ? ": " : "", why);
	case -EEXIST:
		return fail(err, r, "%s: snapshot %s already exists", what, key);
	default:
		return fail(err, r, "%s %s: %s", what, key, *why ? why : strerror(-r));
	}
}

#endif
