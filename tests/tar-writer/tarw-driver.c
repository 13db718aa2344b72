/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test and benchmark driver of the tar writer (built for the tests only):
 * walks a directory and writes it as a layer tar.
 *
 *   tarw-driver [--gzip|--zstd] [--level N] [--epoch SECONDS] [--limit BYTES]
 *               [--read-size BYTES] [-o OUT] DIR
 *
 * The walk does not follow symlinks nor cross mounts; names are taken in
 * byte order, depth first; the root itself is not an entry (as in a layer
 * diff). Files sharing an inode become hard links to the first path; holes
 * (SEEK_DATA/SEEK_HOLE) go through el_tarw_write_zeros; every xattr is kept;
 * sockets are skipped. --limit stops the walk once that many bytes of file
 * data were written (for benchmarks on a part of /usr). --read-size sets the
 * size of each read(), i.e. of each el_tarw_write (default 1 MiB).
 *
 * The archive goes to OUT (or stdout); the result goes to stderr, one
 * key=value a line: diffid, digest (sha256:HEX), uncompressed, size,
 * entries, data (file bytes read), wall and cpu (seconds, this process).
 * Exit status: 0, or 1 with a message.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "erofs-layer/tar-writer.h"
#include "common/io.h"
#include "common/sha256.h"

struct link {
	dev_t dev;
	ino_t ino;
	char *path;
};

struct walk {
	struct el_tarw *w;
	struct el_error err;
	const char *root;
	dev_t root_dev;
	uint8_t *buf;
	size_t read_size;
	uint64_t limit, data;
	bool stop;
	struct link *links;
	size_t nlinks, links_cap;
	char *xnames;
	size_t xnames_cap;
	uint8_t *xvals;
	size_t xvals_cap;
	struct el_xattr_kv *xattrs;
	size_t xattrs_cap;
};

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "tarw-driver: %s: %s\n", what, detail);
	exit(1);
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		die("memory", strerror(ENOMEM));
	return p;
}

static int sink(void *ud, const void *buf, size_t len)
{
	return el_write_full(*(int *)ud, buf, len);
}

static void check(struct walk *wk, int r, const char *call)
{
	char msg[700];
	if (r < 0)
		die(call, el_error_format(&wk->err, msg, sizeof(msg)));
}

/* All xattrs of host path p into wk->xattrs; returns their number. */
static size_t read_xattrs(struct walk *wk, const char *p)
{
	ssize_t n;

	for (;;) {
		ssize_t need = llistxattr(p, NULL, 0);
		if (need < 0 && errno == ENOTSUP)
			return 0;
		if (need < 0)
			die(p, strerror(errno));
		if (need == 0)
			return 0;
		if ((size_t)need > wk->xnames_cap) {
			wk->xnames_cap = (size_t)need + 256;
			wk->xnames = xrealloc(wk->xnames, wk->xnames_cap);
		}
		n = llistxattr(p, wk->xnames, wk->xnames_cap);
		if (n >= 0)
			break;
		if (errno != ERANGE) /* it grew in between: again */
			die(p, strerror(errno));
	}
	size_t count = 0, vused = 0;
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(wk->xnames + i) + 1)
		count++;
	if (count > wk->xattrs_cap) {
		wk->xattrs_cap = count;
		wk->xattrs = xrealloc(wk->xattrs, count * sizeof(*wk->xattrs));
	}
	/* values first into one buffer, pointers set once it stops moving */
	size_t *offs = xrealloc(NULL, count * sizeof(size_t));
	size_t k = 0;
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(wk->xnames + i) + 1, k++) {
		const char *name = wk->xnames + i;
		/* a value is at most 64 KiB (XATTR_SIZE_MAX): keep that much room */
		if (wk->xvals_cap - vused < (64u << 10)) {
			wk->xvals_cap = wk->xvals_cap * 2 + (64u << 10);
			wk->xvals = xrealloc(wk->xvals, wk->xvals_cap);
		}
		ssize_t v = lgetxattr(p, name, wk->xvals + vused, wk->xvals_cap - vused);
		if (v < 0)
			die(p, strerror(errno));
		offs[k] = vused;
		wk->xattrs[k] = (struct el_xattr_kv){ name, NULL, (size_t)v };
		vused += (size_t)v;
	}
	for (k = 0; k < count; k++)
		wk->xattrs[k].value = wk->xvals + offs[k];
	free(offs);
	return count;
}

static void write_data(struct walk *wk, int fd, uint64_t size, const char *p)
{
	uint64_t pos = 0;

	while (pos < size) {
		off_t d = lseek(fd, (off_t)pos, SEEK_DATA);
		if (d < 0 && errno != ENXIO)
			die(p, strerror(errno));
		uint64_t dpos = d < 0 || (uint64_t)d > size ? size : (uint64_t)d;
		if (dpos > pos)
			check(wk, el_tarw_write_zeros(wk->w, dpos - pos, &wk->err), p);
		if (dpos == size)
			break;
		off_t h = lseek(fd, (off_t)dpos, SEEK_HOLE);
		uint64_t hpos = h < 0 || (uint64_t)h > size ? size : (uint64_t)h;
		for (pos = dpos; pos < hpos;) {
			size_t want = (size_t)(hpos - pos < wk->read_size ? hpos - pos : wk->read_size);
			ssize_t n = pread(fd, wk->buf, want, (off_t)pos);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				die(p, n < 0 ? strerror(errno) : "file shrank while read");
			check(wk, el_tarw_write(wk->w, wk->buf, (size_t)n, &wk->err), p);
			pos += (uint64_t)n;
		}
	}
	wk->data += size;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void walk_dir(struct walk *wk, const char *rel);

static void visit(struct walk *wk, const char *rel)
{
	char *host = xrealloc(NULL, strlen(wk->root) + strlen(rel) + 2);
	struct stat st;
	char *target = NULL;

	sprintf(host, "%s/%s", wk->root, rel);
	if (lstat(host, &st) < 0)
		die(host, strerror(errno));
	struct el_entry e = { .path = rel, .mode = st.st_mode & 07777, .uid = st.st_uid,
			      .gid = st.st_gid, .mtime = st.st_mtim.tv_sec,
			      .mtime_nsec = (uint32_t)st.st_mtim.tv_nsec };
	switch (st.st_mode & S_IFMT) {
	case S_IFDIR:
		e.type = EL_ENTRY_DIR;
		break;
	case S_IFREG:
		e.type = EL_ENTRY_REG;
		e.size = (uint64_t)st.st_size;
		break;
	case S_IFLNK:
		e.type = EL_ENTRY_SYMLINK;
		target = xrealloc(NULL, (size_t)st.st_size + 1);
		ssize_t n = readlink(host, target, (size_t)st.st_size + 1);
		if (n < 0 || n > st.st_size)
			die(host, "readlink failed or the link changed");
		target[n] = 0;
		e.link = target;
		break;
	case S_IFCHR:
	case S_IFBLK:
		e.type = S_ISCHR(st.st_mode) ? EL_ENTRY_CHR : EL_ENTRY_BLK;
		e.dev_major = major(st.st_rdev);
		e.dev_minor = minor(st.st_rdev);
		break;
	case S_IFIFO:
		e.type = EL_ENTRY_FIFO;
		break;
	default:
		free(host);
		return; /* sockets */
	}
	if (e.type != EL_ENTRY_DIR && st.st_nlink > 1) {
		for (size_t i = 0; i < wk->nlinks; i++) {
			if (wk->links[i].dev == st.st_dev && wk->links[i].ino == st.st_ino) {
				e.type = EL_ENTRY_HARDLINK;
				e.link = wk->links[i].path;
				e.size = 0;
				break;
			}
		}
		if (e.type != EL_ENTRY_HARDLINK) {
			if (wk->nlinks == wk->links_cap) {
				wk->links_cap = wk->links_cap * 2 + 16;
				wk->links = xrealloc(wk->links, wk->links_cap * sizeof(*wk->links));
			}
			wk->links[wk->nlinks++] =
				(struct link){ st.st_dev, st.st_ino, strdup(rel) };
		}
	}
	e.nxattrs = read_xattrs(wk, host);
	e.xattrs = wk->xattrs;
	check(wk, el_tarw_add(wk->w, &e, &wk->err), host);
	if (e.type == EL_ENTRY_REG && e.size) {
		int fd = open(host, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			die(host, strerror(errno));
		write_data(wk, fd, e.size, host);
		close(fd);
		if (wk->limit && wk->data >= wk->limit)
			wk->stop = true;
	}
	if (e.type == EL_ENTRY_DIR && st.st_dev == wk->root_dev)
		walk_dir(wk, rel);
	free(target);
	free(host);
}

static void walk_dir(struct walk *wk, const char *rel)
{
	char *host = xrealloc(NULL, strlen(wk->root) + strlen(rel) + 2);
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;

	sprintf(host, *rel ? "%s/%s" : "%s", wk->root, rel);
	DIR *d = opendir(host);
	if (!d)
		die(host, strerror(errno));
	while ((errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			cap = cap * 2 + 32;
			names = xrealloc(names, cap * sizeof(*names));
		}
		names[n++] = strdup(de->d_name);
	}
	if (errno)
		die(host, strerror(errno));
	closedir(d);
	if (n) /* qsort(NULL, 0) is undefined */
		qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n; i++) {
		if (!wk->stop) {
			char *child = xrealloc(NULL, strlen(rel) + strlen(names[i]) + 2);
			sprintf(child, *rel ? "%s/%s" : "%s%s", rel, names[i]);
			visit(wk, child);
			free(child);
		}
		free(names[i]);
	}
	free(names);
	free(host);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "gzip", no_argument, NULL, 'g' },	    { "zstd", no_argument, NULL, 'z' },
		{ "level", required_argument, NULL, 'l' },  { "epoch", required_argument, NULL, 'e' },
		{ "limit", required_argument, NULL, 'L' },  { "read-size", required_argument, NULL, 'r' },
		{ "output", required_argument, NULL, 'o' }, { NULL, 0, NULL, 0 },
	};
	struct el_tarw_opts o = { .write = sink };
	struct walk wk = { .read_size = 1u << 20 };
	const char *out = NULL;
	int c, fd = 1;

	while ((c = getopt_long(argc, argv, "o:", longopts, NULL)) != -1) {
		switch (c) {
		case 'g':
			o.compression = EL_COMPRESSION_GZIP;
			break;
		case 'z':
			o.compression = EL_COMPRESSION_ZSTD;
			break;
		case 'l':
			o.level = atoi(optarg);
			break;
		case 'e':
			o.has_epoch = true;
			o.epoch = strtoll(optarg, NULL, 10);
			break;
		case 'L':
			wk.limit = strtoull(optarg, NULL, 10);
			break;
		case 'r':
			wk.read_size = strtoul(optarg, NULL, 10);
			break;
		case 'o':
			out = optarg;
			break;
		default:
			return 2;
		}
	}
	if (optind + 1 != argc || !wk.read_size) {
		fprintf(stderr, "usage: tarw-driver [--gzip|--zstd] [--level N] [--epoch S] "
				"[--limit BYTES] [--read-size BYTES] [-o OUT] DIR\n");
		return 2;
	}
	wk.root = argv[optind];
	struct stat st;
	if (stat(wk.root, &st) < 0)
		die(wk.root, strerror(errno));
	wk.root_dev = st.st_dev;
	if (out) {
		fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			die(out, strerror(errno));
	}
	o.write_ud = &fd;
	wk.buf = xrealloc(NULL, wk.read_size);
	el_error_clear(&wk.err);

	double t0 = now(), c0 = cpu();
	check(&wk, el_tarw_new(&o, &wk.w, &wk.err), "el_tarw_new");
	walk_dir(&wk, "");
	struct el_tarw_result res;
	check(&wk, el_tarw_finish(wk.w, &res, &wk.err), "el_tarw_finish");
	if (out && close(fd) < 0)
		die(out, strerror(errno));
	double t1 = now(), c1 = cpu();

	char diffid[65], digest[65];
	el_hex(res.diffid, 32, diffid);
	el_hex(res.digest, 32, digest);
	fprintf(stderr,
		"diffid=sha256:%s\ndigest=sha256:%s\nuncompressed=%llu\nsize=%llu\nentries=%llu\n"
		"data=%llu\nwall=%.3f\ncpu=%.3f\n",
		diffid, digest, (unsigned long long)res.uncompressed_size,
		(unsigned long long)res.size, (unsigned long long)res.entries,
		(unsigned long long)wk.data, t1 - t0, c1 - c0);
	el_tarw_free(wk.w);
	for (size_t i = 0; i < wk.nlinks; i++)
		free(wk.links[i].path);
	free(wk.links);
	free(wk.buf);
	free(wk.xnames);
	free(wk.xvals);
	free(wk.xattrs);
	return 0;
}
