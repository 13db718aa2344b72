/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "erofs-layer/error.h"

int el_error_set(struct el_error *err, int code, const char *what, uint64_t offset,
		 const char *fmt, ...)
{
	va_list ap;

	if (!err || err->code)
		return code;
	err->code = code;
	err->what = what;
	err->offset = offset;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

void el_error_clear(struct el_error *err)
{
	*err = (struct el_error){ .offset = EL_NO_OFFSET };
}

const char *el_error_format(const struct el_error *err, char *buf, unsigned len)
{
	if (!err->code)
		snprintf(buf, len, "no error");
	else if (!err->msg[0])
		snprintf(buf, len, "%s", strerror(-err->code));
	else if (err->offset != EL_NO_OFFSET)
		snprintf(buf, len, "%s (at byte %llu of the %s)", err->msg,
			 (unsigned long long)err->offset, err->what ? err->what : "input");
	else
		snprintf(buf, len, "%s", err->msg);
	return buf;
}
