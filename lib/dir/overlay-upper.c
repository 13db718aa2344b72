/* SPDX-License-Identifier: Apache-2.0 */
/* Rules shared by the host-tree producers (overlay-upper-internal.h). */
#include "dir/overlay-upper-internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"

int el_xattr_filter(const char *name, bool overlay_upper, char *msg, size_t len)
{
	if (len)
		msg[0] = 0;
	if (!el_has_prefix(name, "user.") && !el_has_prefix(name, "trusted.") &&
	    !el_has_prefix(name, "security.") && strcmp(name, "system.posix_acl_access") != 0 &&
	    strcmp(name, "system.posix_acl_default") != 0) {
		snprintf(msg, len, "dropping xattr '%.80s': EROFS cannot store its namespace", name);
		return 0;
	}
	if (!overlay_upper || !el_has_prefix(name, "trusted.overlay."))
		return 1;
	const char *s = name + strlen("trusted.overlay.");
	/* opaque: kept as the image's own marker; overlay.*: an escaped xattr
	 * of the merged view, which a lower layer stores the same way */
	if (strcmp(s, "opaque") == 0 || el_has_prefix(s, "overlay."))
		return 1;
	if (strcmp(s, "redirect") == 0 || strcmp(s, "metacopy") == 0) {
		snprintf(msg, len,
			 "overlay %s xattr: the content lives in a lower layer, which the image cannot reach (mount the overlay without redirect_dir and metacopy)",
			 s);
		return -EOPNOTSUPP;
	}
	return 0; /* origin, impure, nlink, upper, protattr, ...: the upper's bookkeeping */
}

/* ---- content digest (for the UUID only) ---- */

static void dig_u64(struct el_sha256 *d, uint64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	el_sha256_update(d, b, sizeof(b));
}

static void dig_str(struct el_sha256 *d, const char *s)
{
	if (!s)
		s = "";
	el_sha256_update(d, s, strlen(s) + 1);
}

void el_digest_entry(struct el_sha256 *d, const struct el_entry *e)
{
	if (!d)
		return;
	dig_u64(d, 0x656e747279ull); /* "entry" */
	dig_u64(d, (uint64_t)e->type);
	dig_str(d, e->path);
	dig_str(d, e->link);
	dig_u64(d, e->mode);
	dig_u64(d, e->uid);
	dig_u64(d, e->gid);
	dig_u64(d, (uint64_t)e->mtime);
	dig_u64(d, e->mtime_nsec);
	dig_u64(d, e->size);
	dig_u64(d, e->dev_major);
	dig_u64(d, e->dev_minor);
	dig_u64(d, e->nxattrs);
	for (size_t i = 0; i < e->nxattrs; i++) {
		dig_str(d, e->xattrs[i].name);
		dig_u64(d, e->xattrs[i].value_len);
		el_sha256_update(d, e->xattrs[i].value, e->xattrs[i].value_len);
	}
}

void el_digest_data(struct el_sha256 *d, uint64_t off, const void *buf, size_t len)
{
	if (!d)
		return;
	dig_u64(d, off);
	dig_u64(d, (uint64_t)len);
	el_sha256_update(d, buf, len);
}
