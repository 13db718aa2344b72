/* SPDX-License-Identifier: Apache-2.0 */
/* Cleanup attributes, ownership transfer and checked arithmetic. */
#ifndef EL_MACRO_H
#define EL_MACRO_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "erofs-layer/export.h" /* EL_EXPORT */
#define EL_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define EL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define EL_MAX(a, b) ((a) > (b) ? (a) : (b))
#define EL_DIV_ROUND_UP(n, d) (((n) + (d)-1) / (d))
#define EL_ROUND_UP(n, a) (EL_DIV_ROUND_UP(n, a) * (a))
#define el_likely(x) __builtin_expect(!!(x), 1)
#define el_unlikely(x) __builtin_expect(!!(x), 0)

/* Cleanup helpers keep errno so that they can run on error paths. */
static inline void el_freep(void *p)
{
	int saved = errno;
	free(*(void **)p);
	*(void **)p = NULL;
	errno = saved;
}

static inline void el_closep(int *fd)
{
	int saved = errno;
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
	errno = saved;
}

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(el_freep)
#define _cleanup_close_ _cleanup_(el_closep)

/* DEFINE a cleanup for `type *` calling `fn` (which must accept NULL). */
#define EL_DEFINE_CLEANUP(type, fn)                                               \
	static inline void fn##p(type **p)                                        \
	{                                                                         \
		int saved = errno;                                                \
		if (*p)                                                           \
			fn(*p);                                                   \
		*p = NULL;                                                        \
		errno = saved;                                                    \
	}

#define EL_TAKE_PTR(p)                                                            \
	({                                                                        \
		__typeof__(p) _t = (p);                                           \
		(p) = NULL;                                                       \
		_t;                                                               \
	})
#define EL_TAKE_FD(fd)                                                            \
	({                                                                        \
		int _t = (fd);                                                    \
		(fd) = -1;                                                        \
		_t;                                                               \
	})

/* Checked arithmetic: true on overflow. */
#define el_add_overflow(a, b, r) __builtin_add_overflow(a, b, r)
#define el_mul_overflow(a, b, r) __builtin_mul_overflow(a, b, r)

#endif
