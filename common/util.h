/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers shared across the library: prefixes, growable arrays, elapsed time. */
#ifndef EL_UTIL_H
#define EL_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "macro.h"

static inline bool el_has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/*
 * Makes room for need elements of elem bytes in *p (capacity *cap, in
 * elements): doubles, at least to need and to 16; overflow-checked.
 * Returns 0 or -ENOMEM (then *p and *cap are as they were).
 */
static inline int el_grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t n = EL_MAX(*cap * 2, EL_MAX(need, (size_t)16));
	size_t bytes;
	if (el_mul_overflow(n, elem, &bytes))
		return -ENOMEM;
	void *q = realloc(*p, bytes);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

/* Milliseconds of CLOCK_MONOTONIC since *t0. */
static inline double el_ms_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

#endif
