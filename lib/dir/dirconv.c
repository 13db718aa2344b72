/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A host directory → tree → writer (include/erofs-layer/dirconv.h).
 *
 * The walk is breadth first and keeps one directory open at a time: a
 * directory's names are read whole, sorted, and handled in that order; its
 * subdirectories are queued by path and reopened from the root later with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV) (or one
 * O_NOFOLLOW component at a time where openat2 is missing), their identity
 * checked against the (st_dev, st_ino) seen from the parent. Depth is bounded
 * only by the path limit, never by the stack or the number of open files.
 */
#include "erofs-layer/dirconv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "erofs-layer/tree.h"
#include "erofs-layer/writer.h"
#include "dir/overlay-upper-internal.h"
#include "common/io.h"
#include "shared/links.h"
#include "common/macro.h"
#include "common/sha256.h"
#include "common/util.h"
#include "erofs/verity-internal.h"

#define WHAT "directory"
#define DATA_CHUNK (1u << 20)
#define DENTS_BUF (64u << 10)
#define XATTR_VALUE_MAX 65536u /* XATTR_SIZE_MAX */
#define SHOW_MAX 320u	       /* bytes of a path shown in a message */

EL_DEFINE_CLEANUP(struct el_tree, el_tree_free)
EL_DEFINE_CLEANUP(struct el_writer, el_writer_free)

struct pending_dir {
	char *path; /* relative to the root, "" for the root */
	dev_t dev;
	ino_t ino;
};

struct walk {
	const struct el_dir_opts *opts;
	struct el_error *err;
	struct el_tree *tree;
	struct el_writer *w;
	struct el_sha256 *digest; /* for the UUID; NULL when the caller gave one */
	int rootfd;
	dev_t root_dev;
	uint64_t root_mnt; /* 0: unknown (no statx) */
	bool has_out;
	dev_t out_dev;
	ino_t out_ino;
	bool no_openat2;
	bool no_noatime;
	bool no_statx;

	/* directories still to list, breadth first */
	struct pending_dir *queue;
	size_t qhead, qtail, qcap;

	/* (st_dev, st_ino) → first path, for non-directories with st_nlink > 1 */
	struct el_links links; /* inode → first path */

	/* the names of the directory being handled */
	uint8_t *dents;
	char *names;
	size_t names_len, names_cap;
	size_t *offs;
	const char **sorted;
	size_t nnames, offs_cap;

	/* the xattrs of the entry being handled */
	char *xnames;
	size_t xnames_cap;
	uint8_t *xvalues;
	size_t xvalues_cap;
	struct el_xattr_kv *kv;
	size_t kv_cap;
	size_t *kv_off;
	size_t kv_off_cap;

	uint8_t *buf; /* DATA_CHUNK bytes of file data */
	char path[EL_MAX_PATH + 1];
	char link[EL_MAX_SYMLINK + 2];
	char show_buf[SHOW_MAX + 8];

	uint64_t entries, bytes;
};

/* ---- messages ---- */

/* The path as messages show it: "." for the root, the middle elided when
 * long (the end names the entry, the start where it is). */
static const char *show(struct walk *wk, const char *path)
{
	size_t len = strlen(path);

	if (!len)
		return ".";
	if (len <= SHOW_MAX)
		return path;
	snprintf(wk->show_buf, sizeof(wk->show_buf), "%.*s...%s", 96, path,
		 path + len - (SHOW_MAX - 96 - 3));
	return wk->show_buf;
}

static int fail(struct walk *wk, int code, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(struct walk *wk, int code, const char *path, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return el_error_set(wk->err, code, WHAT, EL_NO_OFFSET, "%s: %s", show(wk, path), msg);
}

static void warn(struct walk *wk, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void warn(struct walk *wk, const char *path, const char *fmt, ...)
{
	char msg[256], line[640];
	va_list ap;

	if (!wk->opts->warn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(line, sizeof(line), "%s: %s", show(wk, path), msg);
	wk->opts->warn(wk->opts->warn_ud, WHAT, EL_NO_OFFSET, line);
}

static int oom(struct walk *wk)
{
	return el_error_set(wk->err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
}

static bool cancelled(const struct walk *wk)
{
	return wk->opts->cancel && atomic_load(wk->opts->cancel);
}

/* ---- xattrs ---- */

/* 1: keep, 0: drop, < 0: error (el_xattr_filter's rules). */
static int xattr_filter(struct walk *wk, const char *path, const char *name)
{
	char msg[256];
	int r = el_xattr_filter(name, wk->opts->overlay_upper, msg, sizeof(msg));

	if (r < 0)
		return fail(wk, r, path, "%s", msg);
	if (r == 0 && msg[0])
		warn(wk, path, "%s", msg);
	return r;
}

/*
 * Reads the xattrs of an open entry into wk->kv. fd is a regular fd, or an
 * O_PATH one (proc true), read through /proc/self/fd (the f*xattr calls
 * refuse O_PATH, and symlinks and device nodes are not opened for real).
 */
static int read_xattrs(struct walk *wk, int fd, bool proc, const char *path, size_t *ret_n)
{
	char pp[48];
	ssize_t len;
	size_t n = 0, used = 0;

	*ret_n = 0;
	if (proc)
		snprintf(pp, sizeof(pp), "/proc/self/fd/%d", fd);
	for (;;) {
		len = proc ? listxattr(pp, wk->xnames, wk->xnames_cap)
			   : flistxattr(fd, wk->xnames, wk->xnames_cap);
		if (len >= 0)
			break;
		if (errno == ENOTSUP)
			return 0;
		if (errno == ENOENT && proc)
			return fail(wk, -ENOSYS, path,
				    "cannot read the xattrs of a symlink or special file: /proc is not mounted");
		if (errno != ERANGE)
			return fail(wk, -errno, path, "cannot list xattrs: %s", strerror(errno));
		ssize_t need = proc ? listxattr(pp, NULL, 0) : flistxattr(fd, NULL, 0);
		if (need < 0)
			return fail(wk, -errno, path, "cannot list xattrs: %s", strerror(errno));
		if (el_grow((void **)&wk->xnames, &wk->xnames_cap, (size_t)need + 256, 1) < 0)
			return oom(wk);
	}
	for (size_t off = 0; off < (size_t)len;) {
		const char *name = wk->xnames + off;
		size_t nl = strnlen(name, (size_t)len - off);
		off += nl + 1;
		if (!nl)
			continue;
		int r = xattr_filter(wk, path, name);
		if (r < 0)
			return r;
		if (!r)
			continue;
		if (el_grow((void **)&wk->xvalues, &wk->xvalues_cap, used + XATTR_VALUE_MAX, 1) < 0)
			return oom(wk);
		ssize_t vl = proc ? getxattr(pp, name, wk->xvalues + used, XATTR_VALUE_MAX)
				  : fgetxattr(fd, name, wk->xvalues + used, XATTR_VALUE_MAX);
		if (vl < 0) {
			if (errno == ENODATA) /* removed since the list */
				continue;
			return fail(wk, -errno, path, "cannot read xattr '%.80s': %s", name,
				    strerror(errno));
		}
		if (el_grow((void **)&wk->kv, &wk->kv_cap, n + 1, sizeof(*wk->kv)) < 0 ||
		    el_grow((void **)&wk->kv_off, &wk->kv_off_cap, n + 1, sizeof(*wk->kv_off)) < 0)
			return oom(wk);
		wk->kv[n] = (struct el_xattr_kv){ .name = name, .value_len = (size_t)vl };
		wk->kv_off[n] = used;
		used += (size_t)vl;
		n++;
	}
	/* the values buffer may have moved while it grew */
	for (size_t i = 0; i < n; i++)
		wk->kv[i].value = wk->xvalues + wk->kv_off[i];
	*ret_n = n;
	return 0;
}

/* ---- hard links ---- */

/* The first path of this inode, or NULL after recording path as its first. */
static int link_first(struct walk *wk, const struct stat *st, const char *path,
		      const char **ret_first)
{
	struct el_link_slot *s;
	bool seen;

	*ret_first = NULL;
	if (el_links_claim(&wk->links, st->st_dev, st->st_ino, path, false, &s, &seen) < 0)
		return oom(wk);
	if (seen)
		*ret_first = s->path;
	return 0;
}

/* ---- entries ---- */

static void entry_from_stat(struct el_entry *e, enum el_entry_type type, const char *path,
			    const struct stat *st)
{
	*e = (struct el_entry){
		.type = type,
		.path = path,
		.mode = st->st_mode & 07777,
		.uid = st->st_uid,
		.gid = st->st_gid,
		.mtime = st->st_mtim.tv_sec,
		.mtime_nsec = (uint32_t)st->st_mtim.tv_nsec,
		.offset = EL_NO_OFFSET,
	};
}

static int emit(struct walk *wk, const struct el_entry *e, struct el_inode **ret_ino)
{
	el_digest_entry(wk->digest, e);
	wk->entries++;
	return el_tree_add(wk->tree, e, ret_ino, wk->err);
}

static bool same_inode(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	       (a->st_mode & S_IFMT) == (b->st_mode & S_IFMT);
}

/* Reads the file's data regions into the image; holes (SEEK_DATA/SEEK_HOLE)
 * are skipped, so that they stay holes. seek_data false: the file has as
 * many blocks as bytes, read it whole (two lseeks fewer per small file). */
static int copy_data(struct walk *wk, int fd, const char *path, struct el_inode *ino,
		     uint64_t size, bool seek_data)
{
	for (uint64_t pos = 0; pos < size;) {
		uint64_t start = pos, end = size;
		if (seek_data) {
			off_t d = lseek(fd, (off_t)pos, SEEK_DATA);
			if (d < 0 && errno == ENXIO)
				break; /* a hole up to the end (or it shrank: checked after) */
			if (d < 0 && errno != EINVAL && errno != EOPNOTSUPP)
				return fail(wk, -errno, path, "cannot seek: %s", strerror(errno));
			if (d < 0) {
				seek_data = false;
			} else {
				if ((uint64_t)d >= size)
					break;
				start = (uint64_t)d;
				off_t h = lseek(fd, d, SEEK_HOLE);
				if (h >= 0 && (uint64_t)h < size)
					end = (uint64_t)h;
				if (end <= start) /* raced with a write: take the rest */
					end = size;
			}
		}
		for (uint64_t off = start; off < end;) {
			if (cancelled(wk))
				return el_error_set(wk->err, -ECANCELED, NULL, EL_NO_OFFSET,
						    "cancelled");
			size_t want = (size_t)EL_MIN((uint64_t)DATA_CHUNK, end - off);
			ssize_t got = pread(fd, wk->buf, want, (off_t)off);
			if (got < 0 && errno == EINTR)
				continue;
			if (got < 0)
				return fail(wk, -errno, path, "read failed at byte %llu: %s",
					    (unsigned long long)off, strerror(errno));
			if (got == 0)
				return fail(wk, -EAGAIN, path,
					    "file shrank while being read (ends at byte %llu, %llu expected)",
					    (unsigned long long)off, (unsigned long long)size);
			el_digest_data(wk->digest, off, wk->buf, (size_t)got);
			int r = el_writer_file_write(wk->w, ino, wk->buf, (size_t)got, off, wk->err);
			if (r < 0)
				return r;
			off += (uint64_t)got;
			wk->bytes += (uint64_t)got;
		}
		pos = end;
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		return fail(wk, -errno, path, "cannot stat: %s", strerror(errno));
	if ((uint64_t)st.st_size != size)
		return fail(wk, -EAGAIN, path,
			    "file changed size while being read (%llu bytes, now %llu)",
			    (unsigned long long)size, (unsigned long long)st.st_size);
	return 0;
}

static int open_checked(struct walk *wk, int dfd, const char *name, const char *path,
			int flags, const struct stat *seen, struct stat *ret_st)
{
	int fd;

	if (!(flags & O_PATH) && !wk->no_noatime) {
		fd = openat(dfd, name, flags | O_NOATIME);
		if (fd >= 0 || errno != EPERM)
			goto opened;
		wk->no_noatime = true; /* not the owner and no CAP_FOWNER */
	}
	fd = openat(dfd, name, flags);
opened:
	if (fd < 0) {
		if (errno == ENOENT || errno == ELOOP)
			return fail(wk, -EAGAIN, path, "changed during the walk (%s)",
				    strerror(errno));
		return fail(wk, -errno, path, "cannot open: %s", strerror(errno));
	}
	if (fstat(fd, ret_st) < 0) {
		int r = fail(wk, -errno, path, "cannot stat: %s", strerror(errno));
		close(fd);
		return r;
	}
	if (!same_inode(seen, ret_st)) {
		close(fd);
		return fail(wk, -EAGAIN, path, "changed during the walk");
	}
	return fd;
}

static int visit_reg(struct walk *wk, int dfd, const char *name, const char *path,
		     const struct stat *seen)
{
	struct stat st;
	_cleanup_close_ int fd = open_checked(wk, dfd, name, path,
					      O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK |
						      O_CLOEXEC,
					      seen, &st);
	struct el_entry e;
	struct el_inode *ino = NULL;
	size_t nx;
	int r;

	if (fd < 0)
		return fd;
	r = read_xattrs(wk, fd, false, path, &nx);
	if (r < 0)
		return r;
	entry_from_stat(&e, EL_ENTRY_REG, path, &st);
	e.size = (uint64_t)st.st_size;
	e.xattrs = wk->kv;
	e.nxattrs = nx;
	r = emit(wk, &e, &ino);
	if (r < 0 || !ino)
		return r;
	r = el_writer_file_begin(wk->w, ino, wk->err);
	if (r < 0)
		return r;
	return copy_data(wk, fd, path, ino, e.size, (uint64_t)st.st_blocks * 512 < e.size);
}

/* Symlinks, devices, fifos: opened O_PATH only, for a stable identity. */
static int visit_other(struct walk *wk, int dfd, const char *name, const char *path,
		       const struct stat *seen)
{
	struct stat st;
	_cleanup_close_ int fd =
		open_checked(wk, dfd, name, path, O_PATH | O_NOFOLLOW | O_CLOEXEC, seen, &st);
	struct el_entry e;
	size_t nx;
	int r;

	if (fd < 0)
		return fd;
	r = read_xattrs(wk, fd, true, path, &nx);
	if (r < 0)
		return r;
	switch (st.st_mode & S_IFMT) {
	case S_IFLNK: {
		ssize_t n = readlinkat(fd, "", wk->link, EL_MAX_SYMLINK + 1);
		if (n < 0)
			return fail(wk, -errno, path, "cannot read the symlink: %s", strerror(errno));
		if (n == 0 || n > (ssize_t)EL_MAX_SYMLINK)
			return fail(wk, n ? -ENAMETOOLONG : -EINVAL, path,
				    "symlink target of %s bytes (1 to %u allowed)",
				    n ? "over 4095" : "0", EL_MAX_SYMLINK);
		wk->link[n] = 0;
		entry_from_stat(&e, EL_ENTRY_SYMLINK, path, &st);
		e.link = wk->link;
		break;
	}
	case S_IFCHR:
	case S_IFBLK:
		entry_from_stat(&e, S_ISCHR(st.st_mode) ? EL_ENTRY_CHR : EL_ENTRY_BLK, path, &st);
		e.dev_major = major(st.st_rdev);
		e.dev_minor = minor(st.st_rdev);
		break;
	default:
		entry_from_stat(&e, EL_ENTRY_FIFO, path, &st);
		break;
	}
	e.xattrs = wk->kv;
	e.nxattrs = nx;
	return emit(wk, &e, NULL);
}

static int queue_push(struct walk *wk, const char *path, dev_t dev, ino_t ino)
{
	if (wk->qtail == wk->qcap && wk->qhead > wk->qcap / 2) {
		memmove(wk->queue, wk->queue + wk->qhead,
			(wk->qtail - wk->qhead) * sizeof(*wk->queue));
		wk->qtail -= wk->qhead;
		wk->qhead = 0;
	}
	if (el_grow((void **)&wk->queue, &wk->qcap, wk->qtail + 1, sizeof(*wk->queue)) < 0)
		return oom(wk);
	char *p = strdup(path);
	if (!p)
		return oom(wk);
	wk->queue[wk->qtail++] = (struct pending_dir){ .path = p, .dev = dev, .ino = ino };
	return 0;
}

/* lstat, plus the mount id where statx knows it: a bind mount from the same
 * file system keeps st_dev, only the mount id tells it. */
static int stat_at(struct walk *wk, int dfd, const char *name, int flags, struct stat *st,
		   uint64_t *ret_mnt)
{
	struct statx sx;

	*ret_mnt = 0;
	if (!wk->no_statx) {
		if (statx(dfd, name, flags | AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT,
			  STATX_BASIC_STATS | STATX_MNT_ID, &sx) == 0) {
			*st = (struct stat){
				.st_dev = makedev(sx.stx_dev_major, sx.stx_dev_minor),
				.st_ino = sx.stx_ino,
				.st_mode = sx.stx_mode,
				.st_nlink = sx.stx_nlink,
				.st_uid = sx.stx_uid,
				.st_gid = sx.stx_gid,
				.st_rdev = makedev(sx.stx_rdev_major, sx.stx_rdev_minor),
				.st_size = (off_t)sx.stx_size,
				.st_mtim = { .tv_sec = sx.stx_mtime.tv_sec,
					     .tv_nsec = sx.stx_mtime.tv_nsec },
			};
			if (sx.stx_mask & STATX_MNT_ID)
				*ret_mnt = sx.stx_mnt_id;
			return 0;
		}
		if (errno != ENOSYS && errno != EPERM)
			return -errno;
		wk->no_statx = true;
	}
	if (fstatat(dfd, name, st, flags | AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT) < 0)
		return -errno;
	return 0;
}

static int visit(struct walk *wk, int dfd, const char *dirpath, const char *name)
{
	size_t dl = strlen(dirpath), nl = strlen(name);
	size_t len = dl ? dl + 1 + nl : nl;
	char *path = wk->path;
	struct stat st;
	uint64_t mnt;
	int r;

	if (len > EL_MAX_PATH) {
		/* show what fits: the directory, then the name */
		return fail(wk, -ENAMETOOLONG, dirpath,
			    "the path of '%.60s%s' would be %zu bytes, over the limit of %u", name,
			    nl > 60 ? "..." : "", len, EL_MAX_PATH);
	}
	if (dl) {
		memcpy(path, dirpath, dl);
		path[dl] = '/';
		memcpy(path + dl + 1, name, nl + 1);
	} else {
		memcpy(path, name, nl + 1);
	}
	r = stat_at(wk, dfd, name, 0, &st, &mnt);
	if (r == -ENOENT)
		return fail(wk, -EAGAIN, path, "vanished during the walk");
	if (r < 0)
		return fail(wk, r, path, "cannot stat: %s", strerror(-r));
	if (st.st_dev != wk->root_dev || (mnt && wk->root_mnt && mnt != wk->root_mnt)) {
		warn(wk, path, "skipped: on another mount");
		return 0;
	}
	if (wk->has_out && st.st_dev == wk->out_dev && st.st_ino == wk->out_ino) {
		warn(wk, path, "skipped: the output image itself");
		return 0;
	}
	if (S_ISDIR(st.st_mode))
		return queue_push(wk, path, st.st_dev, st.st_ino);
	if (S_ISSOCK(st.st_mode)) {
		warn(wk, path, "skipped: a socket (an image cannot carry one)");
		return 0;
	}
	if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode) && !S_ISCHR(st.st_mode) &&
	    !S_ISBLK(st.st_mode) && !S_ISFIFO(st.st_mode)) {
		warn(wk, path, "skipped: unknown file type 0%o", (unsigned)(st.st_mode & S_IFMT));
		return 0;
	}
	/* Whiteouts (overlayfs links them all to one inode) stay separate. */
	bool whiteout = S_ISCHR(st.st_mode) && st.st_rdev == 0;
	if (st.st_nlink > 1 && !whiteout) {
		const char *first;
		r = link_first(wk, &st, path, &first);
		if (r < 0)
			return r;
		if (first) {
			struct el_entry e;
			entry_from_stat(&e, EL_ENTRY_HARDLINK, path, &st);
			e.link = first;
			return emit(wk, &e, NULL);
		}
	}
	if (S_ISREG(st.st_mode))
		return visit_reg(wk, dfd, name, path, &st);
	return visit_other(wk, dfd, name, path, &st);
}

/* ---- directories ---- */

static int open_beneath(struct walk *wk, const char *path)
{
	_cleanup_free_ char *copy = strdup(path);
	int fd = -1;

	if (!copy) {
		errno = ENOMEM;
		return -1;
	}
	for (char *save = NULL, *c = strtok_r(copy, "/", &save); c;
	     c = strtok_r(NULL, "/", &save)) {
		int nfd = openat(fd >= 0 ? fd : wk->rootfd, c,
				 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0)
			el_closep(&fd);
		if (nfd < 0)
			return -1;
		fd = nfd;
	}
	return fd;
}

static int open_dir(struct walk *wk, const struct pending_dir *pd)
{
	int fd = -1;

	if (!pd->path[0]) {
		/* a new open file description: the caller's position is not ours */
		fd = openat(wk->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else {
		if (!wk->no_openat2) {
			struct open_how how = {
				.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
					   RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
			};
			fd = (int)syscall(SYS_openat2, wk->rootfd, pd->path, &how, sizeof(how));
			if (fd < 0 && (errno == ENOSYS || errno == EPERM || errno == E2BIG ||
				       errno == EINVAL))
				wk->no_openat2 = true;
		}
		if (wk->no_openat2)
			fd = open_beneath(wk, pd->path);
	}
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP || errno == EXDEV)
			return fail(wk, -EAGAIN, pd->path, "changed during the walk (%s)",
				    strerror(errno));
		return fail(wk, -errno, pd->path, "cannot open the directory: %s",
			    strerror(errno));
	}
	return fd;
}

static int name_cmp(const void *a, const void *b)
{
	/* strcmp compares as unsigned char: byte order, like the writer */
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int list_dir(struct walk *wk, int fd, const char *path)
{
	wk->names_len = 0;
	wk->nnames = 0;
	for (;;) {
		ssize_t got = getdents64(fd, wk->dents, DENTS_BUF);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return fail(wk, -errno, path, "cannot read the directory: %s",
				    strerror(errno));
		if (got == 0)
			break;
		for (size_t off = 0; off < (size_t)got;) {
			const struct dirent64 *d = (const struct dirent64 *)(wk->dents + off);
			const char *name = d->d_name;
			off += d->d_reclen;
			if (name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2])))
				continue;
			size_t nl = strlen(name);
			if (el_grow((void **)&wk->names, &wk->names_cap, wk->names_len + nl + 1, 1) <
				    0 ||
			    el_grow((void **)&wk->offs, &wk->offs_cap, wk->nnames + 1,
				 sizeof(*wk->offs)) < 0)
				return oom(wk);
			memcpy(wk->names + wk->names_len, name, nl + 1);
			wk->offs[wk->nnames++] = wk->names_len;
			wk->names_len += nl + 1;
		}
	}
	free(wk->sorted);
	wk->sorted = malloc(EL_MAX(wk->nnames, (size_t)1) * sizeof(*wk->sorted));
	if (!wk->sorted)
		return oom(wk);
	for (size_t i = 0; i < wk->nnames; i++)
		wk->sorted[i] = wk->names + wk->offs[i];
	if (wk->nnames) /* qsort(NULL, 0) is undefined */
		qsort(wk->sorted, wk->nnames, sizeof(*wk->sorted), name_cmp);
	return 0;
}

static int walk_dir(struct walk *wk, const struct pending_dir *pd)
{
	_cleanup_close_ int fd = open_dir(wk, pd);
	struct stat st;
	struct el_entry e;
	size_t nx;
	int r;

	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0)
		return fail(wk, -errno, pd->path, "cannot stat: %s", strerror(errno));
	if (st.st_dev != pd->dev || st.st_ino != pd->ino)
		return fail(wk, -EAGAIN, pd->path, "changed during the walk");
	r = read_xattrs(wk, fd, false, pd->path, &nx);
	if (r < 0)
		return r;
	entry_from_stat(&e, EL_ENTRY_DIR, pd->path[0] ? pd->path : ".", &st);
	e.xattrs = wk->kv;
	e.nxattrs = nx;
	r = emit(wk, &e, NULL);
	if (r < 0)
		return r;
	r = list_dir(wk, fd, pd->path);
	if (r < 0)
		return r;
	for (size_t i = 0; i < wk->nnames; i++) {
		if (cancelled(wk))
			return el_error_set(wk->err, -ECANCELED, NULL, EL_NO_OFFSET, "cancelled");
		r = visit(wk, fd, pd->path, wk->sorted[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

static void walk_release(struct walk *wk)
{
	int saved = errno;

	for (size_t i = wk->qhead; i < wk->qtail; i++)
		free(wk->queue[i].path);
	free(wk->queue);
	el_links_free(&wk->links);
	free(wk->dents);
	free(wk->names);
	free(wk->offs);
	free(wk->sorted);
	free(wk->xnames);
	free(wk->xvalues);
	free(wk->kv);
	free(wk->kv_off);
	free(wk->buf);
	if (wk->digest)
		el_sha256_free(wk->digest);
	el_writer_freep(&wk->w);
	el_tree_freep(&wk->tree);
	errno = saved;
}

int el_convert_dir(int dirfd, int out_fd, const struct el_dir_opts *opts,
		   struct el_convert_result *ret, struct el_error *err)
{
	static const struct el_dir_opts no_opts;
	_cleanup_(walk_release) struct walk wk = {
		.opts = opts ? opts : &no_opts,
		.err = err,
		.rootfd = dirfd,
	};
	struct stat st, ost;
	int r;

	r = stat_at(&wk, dirfd, "", AT_EMPTY_PATH, &st, &wk.root_mnt);
	if (r < 0)
		return fail(&wk, r, "", "cannot stat: %s", strerror(-r));
	if (!S_ISDIR(st.st_mode))
		return fail(&wk, -ENOTDIR, "", "not a directory");
	wk.root_dev = st.st_dev;
	if (fstat(out_fd, &ost) == 0) {
		wk.has_out = true;
		wk.out_dev = ost.st_dev;
		wk.out_ino = ost.st_ino;
	}

	struct el_tree_opts topts = {
		.oci_whiteouts = false,
		.warn = wk.opts->warn,
		.warn_ud = wk.opts->warn_ud,
	};
	if (el_tree_new(&topts, &wk.tree) < 0 || el_writer_new(out_fd, &wk.w) < 0 ||
	    (wk.opts->verity && el_writer_verity(wk.w) < 0))
		return oom(&wk);
	if (!wk.opts->has_uuid && !(wk.digest = el_sha256_new()))
		return oom(&wk);
	wk.buf = malloc(DATA_CHUNK);
	wk.dents = malloc(DENTS_BUF);
	wk.xnames_cap = 4096;
	wk.xnames = malloc(wk.xnames_cap);
	if (!wk.buf || !wk.dents || !wk.xnames)
		return oom(&wk);

	r = queue_push(&wk, "", st.st_dev, st.st_ino);
	if (r < 0)
		return r;
	while (wk.qhead < wk.qtail) {
		if (cancelled(&wk))
			return el_error_set(err, -ECANCELED, NULL, EL_NO_OFFSET, "cancelled");
		struct pending_dir pd = wk.queue[wk.qhead++];
		r = walk_dir(&wk, &pd);
		free(pd.path);
		if (r < 0)
			return r;
	}

	struct el_convert_result res = { .compression = EL_COMPRESSION_NONE };
	struct el_writer_opts wopts = { .has_uuid = true };
	res.tar_bytes = wk.bytes;
	res.entries = wk.entries;
	if (wk.opts->has_uuid) {
		memcpy(wopts.uuid, wk.opts->uuid, 16);
	} else {
		uint8_t d[32];
		el_sha256_final(wk.digest, d);
		el_uuid_from_name("erofs-layer dir uuid:", d, 32, wopts.uuid);
	}
	wopts.has_epoch = wk.opts->has_epoch;
	wopts.epoch = wk.opts->epoch;
	r = el_writer_finish(wk.w, wk.tree, &wopts, &res.image, err);
	if (r < 0)
		return r;
	if (ret)
		*ret = res;
	return 0;
}

int el_convert_dir_path(const char *dir, const char *out_path, const struct el_dir_opts *opts,
			struct el_convert_result *ret, struct el_error *err)
{
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct el_outfile of;
	int r;

	if (dfd < 0)
		return el_error_set(err, -errno, WHAT, EL_NO_OFFSET, "cannot open %s: %s", dir,
				    strerror(errno));
	r = el_outfile_create(&of, out_path, 0644, err);
	if (r < 0)
		return r;
	struct el_convert_result local;
	if (!ret)
		ret = &local;
	r = el_convert_dir(dfd, of.fd, opts, ret, err);
	return el_publish_image(&of, r, out_path, &ret->image, err);
}
