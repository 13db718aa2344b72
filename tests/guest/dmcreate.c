/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest's device-mapper tool (tests/guest/init.sh, `verity`): what a VM
 * runtime's agent does with a layer's dm-verity sidecar, as a static binary
 * small enough for the test initramfs (no dmsetup, no libdevmapper, no udev).
 *
 *   dmcreate NAME TARGET...
 *
 * creates the read-only device-mapper device NAME from the targets, each one
 * "START LENGTH TYPE PARAMS" in 512-byte sectors as in `dmsetup table`, for
 * instance one verity target over a layer (docs/verity.md):
 *
 *   "0 BLOCKS*8 verity 1 DEV DEV 4096 4096 BLOCKS HASHSTART sha256 ROOT SALT"
 *
 * and prints the node it made, /dev/dm-N. On failure the half-made device is
 * removed again and the reason goes to stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/dm-ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* room for a few dozen targets: a layer stack of the test is far smaller */
#define DM_BUF 65536

union dm_buf {
	struct dm_ioctl io;
	char bytes[DM_BUF];
};

static void dm_init(union dm_buf *u, size_t size, const char *name)
{
	memset(u, 0, size);
	u->io.version[0] = DM_VERSION_MAJOR;
	u->io.data_size = (unsigned)size;
	u->io.data_start = sizeof(u->io);
	snprintf(u->io.name, sizeof(u->io.name), "%s", name);
}

/* One "START LENGTH TYPE PARAMS" target at *off; 0, or -1 with a message. */
static int add_target(union dm_buf *u, size_t *off, const char *spec)
{
	unsigned long long start, length;
	char type[DM_MAX_TYPE_NAME];
	int used = 0;

	if (sscanf(spec, "%llu %llu %15s %n", &start, &length, type, &used) != 3 || !used || !length) {
		fprintf(stderr, "dmcreate: target '%s' is not START LENGTH TYPE PARAMS\n", spec);
		return -1;
	}
	const char *params = spec + used;
	size_t plen = strlen(params) + 1;
	/* each spec is followed by its NUL-terminated parameters, padded to 8 */
	size_t need = (sizeof(struct dm_target_spec) + plen + 7) & ~(size_t)7;
	if (*off + need > sizeof(*u)) {
		fprintf(stderr, "dmcreate: the table does not fit in %d bytes\n", DM_BUF);
		return -1;
	}
	struct dm_target_spec *t = (struct dm_target_spec *)(u->bytes + *off);
	t->sector_start = start;
	t->length = length;
	snprintf(t->target_type, sizeof(t->target_type), "%s", type);
	memcpy(t + 1, params, plen);
	t->next = (unsigned)need;
	*off += need;
	u->io.target_count++;
	return 0;
}

static int fail(int fd, const char *name, const char *what)
{
	int e = errno;
	union dm_buf u;

	fprintf(stderr, "dmcreate: %s %s: %s\n", what, name, strerror(e));
	dm_init(&u, sizeof(u.io), name);
	ioctl(fd, DM_DEV_REMOVE, &u.io); /* may not exist yet: ignored */
	return 1;
}

int main(int argc, char **argv)
{
	static union dm_buf u;

	if (argc < 3) {
		fprintf(stderr, "usage: dmcreate NAME 'START LENGTH TYPE PARAMS'...\n");
		return 2;
	}
	const char *name = argv[1];
	int fd = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "dmcreate: /dev/mapper/control: %s (is dm_mod loaded?)\n", strerror(errno));
		return 1;
	}

	dm_init(&u, sizeof(u.io), name);
	if (ioctl(fd, DM_DEV_CREATE, &u.io) < 0)
		return fail(fd, name, "DM_DEV_CREATE");
	unsigned minor_no = minor(u.io.dev);

	dm_init(&u, sizeof(u), name);
	u.io.flags = DM_READONLY_FLAG;
	size_t off = sizeof(u.io);
	for (int i = 2; i < argc; i++)
		if (add_target(&u, &off, argv[i]) < 0) {
			errno = EINVAL;
			return fail(fd, name, "table of");
		}
	if (ioctl(fd, DM_TABLE_LOAD, &u.io) < 0)
		return fail(fd, name, "DM_TABLE_LOAD");

	dm_init(&u, sizeof(u.io), name);
	if (ioctl(fd, DM_DEV_SUSPEND, &u.io) < 0) /* without DM_SUSPEND_FLAG: resume */
		return fail(fd, name, "resume of");
	printf("/dev/dm-%u\n", minor_no);
	return 0;
}
