/* SPDX-License-Identifier: Apache-2.0 */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "erofs-layer/error.h"
#include "macro.h"

ssize_t el_read_full(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int el_write_full(int fd, const void *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf = (const char *)buf + n;
		len -= (size_t)n;
	}
	return 0;
}

int el_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf = (const char *)buf + n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int el_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pread(fd, buf, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		buf = (char *)buf + n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int split_path(const char *path, char **ret_dir, char **ret_base)
{
	_cleanup_free_ char *a = strdup(path), *b = strdup(path);
	if (!a || !b)
		return -ENOMEM;
	char *d = strdup(dirname(a)), *f = strdup(basename(b));
	if (!d || !f || !*f || strcmp(f, "/") == 0 || strcmp(f, ".") == 0 ||
	    strcmp(f, "..") == 0) {
		free(d);
		free(f);
		return d && f ? -EISDIR : -ENOMEM;
	}
	*ret_dir = d;
	*ret_base = f;
	return 0;
}

int el_outfile_open(struct el_outfile *of, const char *path, mode_t mode)
{
	int r;

	*of = (struct el_outfile){ .fd = -1, .dirfd = -1 };
	r = split_path(path, &of->dir, &of->base);
	if (r < 0)
		goto fail;
	of->dirfd = open(of->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (of->dirfd < 0) {
		r = -errno;
		goto fail;
	}
	of->fd = openat(of->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
	if (of->fd >= 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
		r = -errno;
		goto fail;
	}
	for (int tries = 0; tries < 100; tries++) {
		uint64_t rnd;
		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			rnd = (uint64_t)getpid() * 2654435761u + (uint64_t)tries;
		free(of->tmpname);
		if (asprintf(&of->tmpname, ".%s.%016llx.tmp", of->base, (unsigned long long)rnd) <
		    0) {
			of->tmpname = NULL;
			r = -ENOMEM;
			goto fail;
		}
		of->fd = openat(of->dirfd, of->tmpname, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC,
				mode);
		if (of->fd >= 0)
			return 0;
		if (errno != EEXIST)
			break;
	}
	r = -errno;
fail:
	el_outfile_discard(of);
	return r;
}

int el_outfile_publish(struct el_outfile *of)
{
	int r;

	if (fsync(of->fd) < 0)
		return -errno;
	if (!of->tmpname) {
		/* An O_TMPFILE cannot be linked over an existing name: give it a
		 * hidden name first, then rename that into place. */
		char proc[64];
		for (int tries = 0;; tries++) {
			uint64_t rnd;
			if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
				rnd = (uint64_t)getpid() * 2654435761u + (uint64_t)tries;
			char *name;
			if (asprintf(&name, ".%s.%016llx.tmp", of->base, (unsigned long long)rnd) <
			    0)
				return -ENOMEM;
			snprintf(proc, sizeof(proc), "/proc/self/fd/%d", of->fd);
			if (linkat(AT_FDCWD, proc, of->dirfd, name, AT_SYMLINK_FOLLOW) == 0) {
				of->tmpname = name;
				break;
			}
			r = -errno;
			free(name);
			if (r != -EEXIST || tries > 100)
				return r;
		}
	}
	if (renameat(of->dirfd, of->tmpname, of->dirfd, of->base) < 0)
		return -errno;
	free(of->tmpname);
	of->tmpname = NULL;
	if (fsync(of->dirfd) < 0)
		return -errno;
	el_closep(&of->fd);
	el_outfile_discard(of);
	return 0;
}

void el_outfile_discard(struct el_outfile *of)
{
	int saved = errno;

	if (of->tmpname && of->dirfd >= 0)
		unlinkat(of->dirfd, of->tmpname, 0);
	el_closep(&of->fd);
	el_closep(&of->dirfd);
	free(of->tmpname);
	free(of->dir);
	free(of->base);
	of->tmpname = of->dir = of->base = NULL;
	errno = saved;
}

int el_outfile_create(struct el_outfile *of, const char *path, mode_t mode, struct el_error *err)
{
	int r = el_outfile_open(of, path, mode);

	if (r < 0)
		return el_error_set(err, r, NULL, EL_NO_OFFSET, "cannot create %s: %s", path,
				    strerror(-r));
	return 0;
}

int el_outfile_finish(struct el_outfile *of, int r, const char *path, struct el_error *err)
{
	if (r >= 0) {
		int p = el_outfile_publish(of);
		if (p < 0)
			r = el_error_set(err, p, NULL, EL_NO_OFFSET, "cannot publish %s: %s", path,
					 strerror(-p));
	}
	el_outfile_discard(of);
	return r;
}
