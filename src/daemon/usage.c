/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The usage walker: sizes of the files in a snapshot's directory, by
 * stat(2), never following symlinks.
 */
#include "usage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ext4.h"
#include "common/macro.h"

uint64_t usage_chain_files(const struct layout *l, uint64_t id)
{
	static const char *const names[] = { LAYOUT_FSMETA, LAYOUT_VMDK };
	uint64_t sum = 0;

	for (size_t i = 0; i < EL_ARRAY_SIZE(names); i++) {
		_cleanup_free_ char *p = layout_path(l, id, names[i]);
		struct stat st;
		if (p && stat(p, &st) == 0)
			sum += (uint64_t)st.st_size;
	}
	return sum;
}

/* bytes and inodes under a directory, without following symlinks */
static int dir_usage(int dirfd, uint64_t *size, uint64_t *inodes, unsigned depth)
{
	int dup_fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	struct dirent *de;

	if (!d) {
		if (dup_fd >= 0)
			close(dup_fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		*size += (uint64_t)st.st_blocks * 512;
		*inodes += 1;
		if (S_ISDIR(st.st_mode) && depth < 2048) {
			int fd = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd >= 0) {
				dir_usage(fd, size, inodes, depth + 1);
				close(fd);
			}
		}
	}
	closedir(d);
	return 0;
}

int usage_active(const struct layout *l, uint64_t id, bool extract, uint64_t *ret_size,
		 uint64_t *ret_inodes)
{
	_cleanup_free_ char *dir = layout_path(l, id, NULL);
	_cleanup_close_ int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	uint64_t size = 0, inodes = 0;
	int r;

	if (dfd < 0)
		return -errno;
	if (extract) {
		_cleanup_close_ int fs = openat(dfd, "fs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fs >= 0)
			dir_usage(fs, &size, &inodes, 0);
	} else {
		r = file_allocated_bytes(dfd, LAYOUT_RWLAYER, &size);
		if (r < 0)
			return r;
		inodes = 1;
	}
	*ret_size = size;
	*ret_inodes = inodes;
	return 0;
}
