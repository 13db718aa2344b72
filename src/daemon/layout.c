/* SPDX-License-Identifier: Apache-2.0 */
#include "layout.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/macro.h"

int layout_open(const char *root, struct layout *ret)
{
	struct layout l = { .snapshots_fd = -1 };
	int r;

	if (mkdir(root, 0700) < 0 && errno != EEXIST)
		return -errno;
	l.root = realpath(root, NULL);
	if (!l.root)
		return -errno;
	if (asprintf(&l.snapshots, "%s/snapshots", l.root) < 0) {
		l.snapshots = NULL;
		r = -ENOMEM;
		goto fail;
	}
	if (mkdir(l.snapshots, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		goto fail;
	}
	l.snapshots_fd = open(l.snapshots, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (l.snapshots_fd < 0) {
		r = -errno;
		goto fail;
	}
	*ret = l;
	return 0;
fail:
	layout_close(&l);
	return r;
}

void layout_close(struct layout *l)
{
	free(l->root);
	free(l->snapshots);
	el_closep(&l->snapshots_fd);
	l->root = l->snapshots = NULL;
}

char *layout_path(const struct layout *l, uint64_t id, const char *name)
{
	char *p;
	if (asprintf(&p, "%s/%" PRIu64 "%s%s", l->snapshots, id, name ? "/" : "", name ? name : "") < 0)
		return NULL;
	return p;
}

int layout_create(const struct layout *l, uint64_t id, bool extract_dirs, bool lower_dir)
{
	char tmp[64], final[32];
	_cleanup_close_ int dfd = -1, mfd = -1;
	int r = 0;

	snprintf(tmp, sizeof(tmp), ".tmp-%" PRIu64, id);
	snprintf(final, sizeof(final), "%" PRIu64, id);
	if (mkdirat(l->snapshots_fd, tmp, 0755) < 0)
		return -errno;
	dfd = openat(l->snapshots_fd, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		r = -errno;
		goto fail;
	}
	mfd = openat(dfd, LAYOUT_MARKER, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	if (mfd < 0) {
		r = -errno;
		goto fail;
	}
	if ((extract_dirs && (mkdirat(dfd, "fs", 0755) < 0 || mkdirat(dfd, "work", 0755) < 0)) ||
	    ((extract_dirs || lower_dir) && mkdirat(dfd, "lower", 0755) < 0)) {
		r = -errno;
		goto fail;
	}
	if (fsync(dfd) < 0 || renameat(l->snapshots_fd, tmp, l->snapshots_fd, final) < 0 ||
	    fsync(l->snapshots_fd) < 0) {
		r = -errno;
		goto fail;
	}
	return 0;
fail:
	/* best effort: layout_sweep catches what remains */
	if (dfd >= 0) {
		unlinkat(dfd, LAYOUT_MARKER, 0);
		unlinkat(dfd, "fs", AT_REMOVEDIR);
		unlinkat(dfd, "work", AT_REMOVEDIR);
		unlinkat(dfd, "lower", AT_REMOVEDIR);
	}
	unlinkat(l->snapshots_fd, tmp, AT_REMOVEDIR);
	return r;
}

static void clear_immutable_fd(int fd)
{
	int flags;
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 && (flags & FS_IMMUTABLE_FL)) {
		flags &= ~FS_IMMUTABLE_FL;
		ioctl(fd, FS_IOC_SETFLAGS, &flags);
	}
}

/* Removes everything below dirfd/name, never following symlinks. The trees
 * are ours (fs/ may hold what a layer tar put there), depth is bounded by
 * the path limit of what created them. */
static int remove_tree(int dirfd, const char *name)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int r = 0;

	if (fd < 0) {
		if (errno == ENOTDIR || errno == ELOOP) {
			_cleanup_close_ int f = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
			if (f >= 0)
				clear_immutable_fd(f);
			return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
		}
		return errno == ENOENT ? 0 : -errno;
	}
	clear_immutable_fd(fd);
	int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	if (!d) {
		if (dup_fd >= 0)
			close(dup_fd);
		return -errno;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		int k = remove_tree(fd, de->d_name);
		if (k < 0 && r == 0)
			r = k;
	}
	closedir(d);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
		r = -errno;
	return r;
}

int layout_remove(const struct layout *l, uint64_t id)
{
	char name[32], trash[64];

	snprintf(name, sizeof(name), "%" PRIu64, id);
	snprintf(trash, sizeof(trash), ".trash-%" PRIu64, id);
	if (renameat(l->snapshots_fd, name, l->snapshots_fd, trash) < 0) {
		if (errno == ENOENT)
			return 0;
		return -errno;
	}
	return remove_tree(l->snapshots_fd, trash);
}

int layout_sweep(const struct layout *l, layout_live_fn live, void *ud)
{
	int dup_fd = openat(l->snapshots_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	struct dirent *de;
	int removed = 0, r = 0;

	if (!d) {
		if (dup_fd >= 0)
			close(dup_fd);
		return -errno;
	}
	char **victims = NULL;
	size_t n = 0;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char *end;
		errno = 0;
		unsigned long long id = strtoull(de->d_name, &end, 10);
		bool numeric = de->d_name[0] >= '0' && de->d_name[0] <= '9' && !*end && !errno;
		if (numeric && live(ud, id))
			continue;
		char **p = realloc(victims, (n + 1) * sizeof(*victims));
		if (!p || !(p[n] = strdup(de->d_name))) {
			victims = p ? p : victims;
			r = -ENOMEM;
			break;
		}
		victims = p;
		n++;
	}
	closedir(d);
	for (size_t i = 0; i < n; i++) {
		if (remove_tree(l->snapshots_fd, victims[i]) == 0)
			removed++;
		free(victims[i]);
	}
	free(victims);
	return r < 0 ? r : removed;
}

int layout_set_immutable(const struct layout *l, uint64_t id, const char *name, bool on)
{
	char rel[PATH_MAX];
	int flags;

	snprintf(rel, sizeof(rel), "%" PRIu64 "/%s", id, name);
	_cleanup_close_ int fd = openat(l->snapshots_fd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0)
		return errno == ENOTTY || errno == EOPNOTSUPP || errno == EINVAL ? 0 : -errno;
	flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
	if (ioctl(fd, FS_IOC_SETFLAGS, &flags) < 0)
		return errno == ENOTTY || errno == EOPNOTSUPP ? 0 : -errno;
	return 0;
}

int layout_remove_subdir(const struct layout *l, uint64_t id, const char *name)
{
	char dir[32];
	snprintf(dir, sizeof(dir), "%" PRIu64, id);
	_cleanup_close_ int dfd = openat(l->snapshots_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return errno == ENOENT ? 0 : -errno;
	return remove_tree(dfd, name);
}
