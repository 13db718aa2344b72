/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Errors and warnings of the library. The library never logs: a failing call
 * returns a negative errno and fills an el_error with what was wrong and
 * where; warnings (leniencies taken, entries skipped) go to a callback.
 */
#ifndef EROFS_LAYER_ERROR_H
#define EROFS_LAYER_ERROR_H

#include "export.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#define EL_NO_OFFSET UINT64_MAX

struct el_error {
	int code;	 /* negative errno, 0 when no error was recorded */
	uint64_t offset; /* byte offset the error refers to, or EL_NO_OFFSET */
	const char *what; /* what the offset counts: "tar stream", "image", ... */
	char msg[512];
};

/* Records the first error only (later ones are consequences); returns code. */
EL_EXPORT int el_error_set(struct el_error *err, int code, const char *what, uint64_t offset,
			   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
EL_EXPORT void el_error_clear(struct el_error *err);
/* "MSG (at byte OFFSET of WHAT)" or "MSG" into buf. */
EL_EXPORT const char *el_error_format(const struct el_error *err, char *buf, unsigned len);

typedef void (*el_warn_fn)(void *userdata, const char *what, uint64_t offset, const char *msg);

#endif
