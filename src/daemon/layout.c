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

#include "common/macro.h"
#include "common/util.h"

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
	pthread_mutex_init(&ret->stage_lock, NULL);
	pthread_mutex_init(&ret->sync_lock, NULL);
	pthread_cond_init(&ret->sync_cond, NULL);
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
	/* zeroed (layout_open failed): PTHREAD_{MUTEX,COND}_INITIALIZER */
	pthread_mutex_destroy(&l->stage_lock);
	pthread_mutex_destroy(&l->sync_lock);
	pthread_cond_destroy(&l->sync_cond);
}

char *layout_path(const struct layout *l, uint64_t id, const char *name)
{
	char *p;
	if (asprintf(&p, "%s/%" PRIu64 "%s%s", l->snapshots, id, name ? "/" : "", name ? name : "") < 0)
		return NULL;
	return p;
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
				(void)layout_set_immutable_fd(f, false);
			return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
		}
		return errno == ENOENT ? 0 : -errno;
	}
	(void)layout_set_immutable_fd(fd, false);
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

/* ---- staging ---- */

/* Whether name is a stage in flight, under either of its names. */
static bool stage_listed(struct layout *l, const char *name, bool numeric, uint64_t id)
{
	bool found = false;

	pthread_mutex_lock(&l->stage_lock);
	for (struct layout_stage *st = l->stages; st && !found; st = st->next)
		found = (numeric && st->id == id) || strcmp(st->name, name) == 0;
	pthread_mutex_unlock(&l->stage_lock);
	return found;
}

static void stage_unlist(struct layout *l, struct layout_stage *st)
{
	pthread_mutex_lock(&l->stage_lock);
	for (struct layout_stage **p = &l->stages; *p; p = &(*p)->next)
		if (*p == st) {
			*p = st->next;
			break;
		}
	st->next = NULL;
	pthread_mutex_unlock(&l->stage_lock);
}

/* Debris under a name an id of the store's needs now (no record owns it:
 * the id is handed out only now): moved aside for the next sweep. */
static int move_aside(struct layout *l, const char *name)
{
	char trash[96];

	pthread_mutex_lock(&l->stage_lock);
	snprintf(trash, sizeof(trash), ".trash-%s.%" PRIu64, name, ++l->stage_seq);
	pthread_mutex_unlock(&l->stage_lock);
	return renameat(l->snapshots_fd, name, l->snapshots_fd, trash) < 0 ? -errno : 0;
}

/* The marker and, when asked, the empty fs/, work/ and lower/ in dfd; what
 * exists already is kept. *ret_made (if not NULL) counts what was made. */
static int fill_dir(int dfd, bool extract_dirs, bool lower_dir, unsigned *ret_made)
{
	const char *dirs[3];
	size_t n = 0;
	unsigned made = 0;
	int fd = openat(dfd, LAYOUT_MARKER, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);

	if (fd >= 0) {
		close(fd);
		made++;
	} else if (errno != EEXIST) {
		return -errno;
	}
	if (extract_dirs) {
		dirs[n++] = "fs";
		dirs[n++] = "work";
	}
	if (extract_dirs || lower_dir)
		dirs[n++] = "lower";
	for (size_t i = 0; i < n; i++) {
		if (mkdirat(dfd, dirs[i], 0755) == 0)
			made++;
		else if (errno != EEXIST)
			return -errno;
	}
	if (ret_made)
		*ret_made = made;
	return 0;
}

int layout_stage_new(struct layout *l, uint64_t id, bool extract_dirs, bool lower_dir,
		     bool durable, struct layout_stage **ret)
{
	struct layout_stage *st = calloc(1, sizeof(*st));
	int r;

	if (!st)
		return -ENOMEM;
	st->fd = -1;
	st->id = id;
	st->durable = durable;
	/* what need not survive a crash is made under its final name */
	st->published = !durable;
	snprintf(st->name, sizeof(st->name), durable ? ".tmp-%" PRIu64 : "%" PRIu64, id);
	/* listed before it exists: a sweep never sees it unlisted */
	pthread_mutex_lock(&l->stage_lock);
	st->next = l->stages;
	l->stages = st;
	pthread_mutex_unlock(&l->stage_lock);
	if (mkdirat(l->snapshots_fd, st->name, 0755) < 0 &&
	    (errno != EEXIST || move_aside(l, st->name) < 0 ||
	     mkdirat(l->snapshots_fd, st->name, 0755) < 0)) {
		r = -errno;
		stage_unlist(l, st);
		free(st);
		return r;
	}
	st->fd = openat(l->snapshots_fd, st->name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->fd < 0) {
		r = -errno;
		goto fail;
	}
	r = fill_dir(st->fd, extract_dirs, lower_dir, NULL);
	if (r < 0)
		goto fail;
	*ret = st;
	return 0;
fail:
	layout_stage_free(l, st, false);
	return r;
}

/*
 * fsync of snapshots/ covering every change made to it before the call.
 * Concurrent callers share fsyncs: one runs at a time, and when it ends it
 * has covered everybody who asked before it started; the others wait for
 * the next, which one of them runs. On a file system without a journal each
 * fsync of a directory is a synchronous write of its blocks, so this saves
 * most of them under load; with a journal the kernel batches them anyway.
 */
static int dir_sync(struct layout *l)
{
	int r = 0;

	pthread_mutex_lock(&l->sync_lock);
	uint64_t mine = ++l->sync_asked;
	while (l->sync_done < mine && r == 0) {
		if (l->sync_busy) {
			pthread_cond_wait(&l->sync_cond, &l->sync_lock);
			continue;
		}
		uint64_t upto = l->sync_asked;
		l->sync_busy = true;
		pthread_mutex_unlock(&l->sync_lock);
		r = fsync(l->snapshots_fd) < 0 ? -errno : 0;
		pthread_mutex_lock(&l->sync_lock);
		l->sync_busy = false;
		/* on failure the others run their own, and may fail too */
		if (r == 0 && upto > l->sync_done)
			l->sync_done = upto;
		pthread_cond_broadcast(&l->sync_cond);
	}
	pthread_mutex_unlock(&l->sync_lock);
	return r;
}

int layout_sync(struct layout *l)
{
	return dir_sync(l);
}

int layout_stage_publish(struct layout *l, struct layout_stage *st)
{
	char final[32];

	if (!st->durable)
		return 0;
	if (st->published)
		return -EINVAL;
	if (fsync(st->fd) < 0)
		return -errno;
	snprintf(final, sizeof(final), "%" PRIu64, st->id);
	if (renameat(l->snapshots_fd, st->name, l->snapshots_fd, final) < 0) {
		if ((errno != EEXIST && errno != ENOTEMPTY) || move_aside(l, final) < 0 ||
		    renameat(l->snapshots_fd, st->name, l->snapshots_fd, final) < 0)
			return -errno;
	}
	st->published = true;
	return dir_sync(l);
}

int layout_restore(struct layout *l, uint64_t id, bool extract_dirs, bool lower_dir)
{
	char name[32];
	unsigned made = 0;
	int r;

	snprintf(name, sizeof(name), "%" PRIu64, id);
	if (mkdirat(l->snapshots_fd, name, 0755) == 0)
		made++;
	else if (errno != EEXIST)
		return -errno;
	_cleanup_close_ int dfd = openat(l->snapshots_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					 O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	r = fill_dir(dfd, extract_dirs, lower_dir, &made);
	if (r < 0)
		return r;
	return made > 0;
}

void layout_stage_free(struct layout *l, struct layout_stage *st, bool keep)
{
	if (!st)
		return;
	el_closep(&st->fd);
	/* best effort: layout_sweep catches what remains */
	if (!keep && st->published)
		layout_remove(l, st->id);
	else if (!keep)
		remove_tree(l->snapshots_fd, st->name);
	stage_unlist(l, st);
	free(st);
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

static void trash_free(struct layout_trash *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->names[i]);
	free(t->names);
	*t = (struct layout_trash){ 0 };
}

int layout_sweep_collect(struct layout *l, layout_live_fn live, void *ud, struct layout_trash *ret)
{
	int dup_fd = openat(l->snapshots_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	struct layout_trash t = { 0 };
	struct dirent *de;
	int r = 0;

	if (!d) {
		if (dup_fd >= 0)
			close(dup_fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char *end;
		errno = 0;
		unsigned long long id = strtoull(de->d_name, &end, 10);
		bool numeric = de->d_name[0] >= '0' && de->d_name[0] <= '9' && !*end && !errno;
		if (numeric && live(ud, id))
			continue;
		if (stage_listed(l, de->d_name, numeric, id))
			continue;
		/* out of the way under a trash name; when that fails (taken,
		 * too long) it is deleted where it is */
		char *name = NULL;
		if (strncmp(de->d_name, ".trash-", 7) != 0 &&
		    asprintf(&name, ".trash-%s", de->d_name) >= 0) {
			if (renameat(l->snapshots_fd, de->d_name, l->snapshots_fd, name) < 0) {
				bool gone = errno == ENOENT;
				free(name);
				name = NULL;
				if (gone)
					continue;
			}
		}
		if (!name)
			name = strdup(de->d_name);
		if (!name || el_grow((void **)&t.names, &t.cap, t.n + 1, sizeof(*t.names)) < 0) {
			free(name);
			r = -ENOMEM;
			break;
		}
		t.names[t.n++] = name;
	}
	closedir(d);
	/* what was collected goes in any case: it is out of the numbering */
	*ret = t;
	return r;
}

int layout_sweep_finish(const struct layout *l, struct layout_trash *t)
{
	int removed = 0;

	for (size_t i = 0; i < t->n; i++)
		if (remove_tree(l->snapshots_fd, t->names[i]) == 0)
			removed++;
	trash_free(t);
	return removed;
}

int layout_sweep(struct layout *l, layout_live_fn live, void *ud)
{
	struct layout_trash t = { 0 };
	int r = layout_sweep_collect(l, live, ud, &t);
	int removed = layout_sweep_finish(l, &t);

	return r < 0 ? r : removed;
}

int layout_set_immutable_fd(int fd, bool on)
{
	int flags, want;

	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0)
		return errno == ENOTTY || errno == EOPNOTSUPP || errno == EINVAL ? 0 : -errno;
	want = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
	/* setting the flags is a journalled inode update: not when nothing
	 * changes (the differ's Apply sets it on the layers it publishes) */
	if (want != flags && ioctl(fd, FS_IOC_SETFLAGS, &want) < 0)
		return errno == ENOTTY || errno == EOPNOTSUPP ? 0 : -errno;
	return 0;
}

int layout_set_immutable(const struct layout *l, uint64_t id, const char *name, bool on)
{
	char rel[PATH_MAX];

	snprintf(rel, sizeof(rel), "%" PRIu64 "/%s", id, name);
	_cleanup_close_ int fd = openat(l->snapshots_fd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return layout_set_immutable_fd(fd, on);
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
