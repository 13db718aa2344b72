/* SPDX-License-Identifier: Apache-2.0 */
#include "ext4.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shared/macro.h"

extern char **environ;

static int run(char *const argv[])
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status, r;

	posix_spawn_file_actions_init(&fa);
	/* mkfs is chatty on stdout; the daemon's stdout is not a log */
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r)
		return -r;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

int ext4_create_image(int dirfd, const char *dir_path, const char *name, uint64_t size)
{
	/* every cleanup variable is declared before the first goto */
	_cleanup_free_ char *tmpl = NULL, *tmpimg = NULL, *upper = NULL, *work = NULL,
			    *imgpath = NULL;
	_cleanup_close_ int fd = -1;
	int r;

	if (asprintf(&tmpl, "%s/.%s.tmpl", dir_path, name) < 0 ||
	    asprintf(&tmpimg, ".%s.tmp", name) < 0)
		return -ENOMEM;
	/* a template tree for mkfs.ext4 -d: upper/ and work/ owned by root */
	if (asprintf(&upper, "%s/upper", tmpl) < 0 || asprintf(&work, "%s/work", tmpl) < 0)
		return -ENOMEM;
	if ((mkdir(tmpl, 0755) < 0 && errno != EEXIST) || (mkdir(upper, 0755) < 0 && errno != EEXIST) ||
	    (mkdir(work, 0755) < 0 && errno != EEXIST)) {
		r = -errno;
		goto out;
	}
	fd = openat(dirfd, tmpimg, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
		r = -errno;
		goto out;
	}
	if (asprintf(&imgpath, "%s/%s", dir_path, tmpimg) < 0) {
		r = -ENOMEM;
		goto out;
	}
	char *argv[] = { "mkfs.ext4", "-q", "-F", "-b", "4096", "-d", tmpl,
			 "-E", "root_owner=0:0,lazy_itable_init=1,lazy_journal_init=1",
			 imgpath, NULL };
	r = run(argv);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && renameat(dirfd, tmpimg, dirfd, name) < 0)
		r = -errno;
out:
	if (r < 0)
		unlinkat(dirfd, tmpimg, 0);
	rmdir(upper);
	rmdir(work);
	rmdir(tmpl);
	return r;
}

int file_allocated_bytes(int dirfd, const char *name, uint64_t *ret)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	*ret = (uint64_t)st.st_blocks * 512;
	return 0;
}
