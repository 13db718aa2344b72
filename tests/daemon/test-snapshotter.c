/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The snapshotter core (snapshotter.c over store, layout, ext4 and the
 * library's conversions), without gRPC: containerd's snapshotter contract,
 * the mount shapes of docs/vm-runtime-contract.md and the storage layout of docs/durability.md. Each
 * test gets a fresh --root under /var/tmp (a real file system: mkfs.ext4,
 * sparse files, xattrs, the immutable flag), removed afterwards.
 *
 * Needs root for whiteouts (mknod c 0 0) and trusted.* xattrs; tests that
 * need what the machine lacks skip, visibly.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "erofs-layer/image.h"
#include "ext4.h"
#include "layout.h"
#include "common/macro.h"
#include "snapshotter.h"
#include "store.h"

#define DEFAULT_SIZE (64u << 20)

struct fx {
	char root[256];
	struct sn_config cfg;
	struct snapshotter *sn;
	unsigned seq; /* for extract keys */
};

/* ---- helpers ---- */

#define MUST(call)                                                                       \
	do {                                                                             \
		struct el_error err_;                                                    \
		el_error_clear(&err_);                                                   \
		int r_ = (call);                                                         \
		if (r_ < 0)                                                              \
			fail_msg("%s: %s (%s)", #call, strerror(-r_),                     \
				 err_.code ? err_.msg : "no message");                   \
	} while (0)

/* A call expected to fail with code, with an error message set. */
#define FAILS(want, call)                                                                \
	do {                                                                             \
		struct el_error err_;                                                    \
		el_error_clear(&err_);                                                   \
		int r_ = (call);                                                         \
		if (r_ != (want))                                                        \
			fail_msg("%s: got %d (%s), expected %d (%s); message: %s", #call,  \
				 r_, strerror(-r_), (want), strerror(-(want)), err_.msg); \
		assert_int_equal(err_.code, (want));                                     \
		assert_true(err_.msg[0] != 0);                                           \
	} while (0)

static void clear_immutable(const char *path)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	int flags;

	if (fd < 0)
		return;
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 && (flags & FS_IMMUTABLE_FL)) {
		flags &= ~FS_IMMUTABLE_FL;
		ioctl(fd, FS_IOC_SETFLAGS, &flags);
	}
	close(fd);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (flag != FTW_SL && (S_ISREG(st->st_mode) || S_ISDIR(st->st_mode)))
		clear_immutable(path);
	if (remove(path) < 0)
		print_message("cannot remove %s: %s\n", path, strerror(errno));
	return 0;
}

static void rm_tree(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void open_sn(struct fx *f)
{
	struct el_error err;
	el_error_clear(&err);
	int r = sn_open(&f->cfg, &f->sn, &err);
	if (r < 0)
		fail_msg("sn_open %s: %s: %s", f->root, strerror(-r), err.msg);
}

/* After a child holding the root was killed: a process it was spawning
 * (posix_spawn's child, between clone and exec) may hold the root's lock a
 * moment longer on a loaded machine. Anything else is a failure. */
static void open_sn_after_kill(struct fx *f)
{
	struct el_error err;
	int r = -EBUSY;

	for (int i = 0; i < 500 && r == -EBUSY; i++) {
		if (i)
			usleep(10 * 1000);
		el_error_clear(&err);
		r = sn_open(&f->cfg, &f->sn, &err);
	}
	if (r < 0)
		fail_msg("sn_open %s: %s: %s", f->root, strerror(-r), err.msg);
}

static void reopen(struct fx *f)
{
	sn_close(f->sn);
	f->sn = NULL;
	open_sn(f);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->root, sizeof(f->root), "/var/tmp/test-snapshotter.XXXXXX");
	if (!mkdtemp(f->root))
		return -1;
	f->cfg = (struct sn_config){ .root = f->root, .default_size = DEFAULT_SIZE };
	open_sn(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	sn_close(f->sn);
	rm_tree(f->root);
	free(f);
	return 0;
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static char *pathf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *pathf(const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0)
		p = NULL;
	va_end(ap);
	assert_non_null(p);
	return p;
}

/* the directory of a snapshot, asserted to exist */
static char *sdir(struct fx *f, const char *key)
{
	char *d = sn_snapshot_dir(f->sn, key);
	if (!d) {
		fail_msg("no directory for snapshot %s", key);
		abort(); /* cmocka's fail_msg is not marked noreturn */
	}
	return d;
}

static char *sfile(struct fx *f, const char *key, const char *name)
{
	char *d = sdir(f, key);
	char *p = pathf("%s/%s", d, name);
	free(d);
	return p;
}

static uint64_t sid(struct fx *f, const char *key)
{
	struct snap_info i = { 0 };
	MUST(sn_stat(f->sn, key, &i, &err_));
	uint64_t id = i.id;
	snap_info_free(&i);
	return id;
}

static void write_file(const char *dir, const char *rel, const char *content, size_t len)
{
	char *p = pathf("%s/%s", dir, rel);
	int fd = open(p, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
	if (fd < 0)
		fail_msg("open %s: %s", p, strerror(errno));
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	close(fd);
	free(p);
}

static void mkdir_rel(const char *dir, const char *rel)
{
	char *p = pathf("%s/%s", dir, rel);
	if (mkdir(p, 0755) < 0 && errno != EEXIST)
		fail_msg("mkdir %s: %s", p, strerror(errno));
	free(p);
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	if (!d)
		fail_msg("opendir %s: %s", dir, strerror(errno));
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static size_t count_snapshot_dirs(struct fx *f)
{
	char *p = pathf("%s/snapshots", f->root);
	size_t n = count_entries(p);
	free(p);
	return n;
}

static void assert_mount(const struct sn_mount *m, const char *type, const char *source,
			 const char *const *opts)
{
	size_t n = 0;

	while (opts[n])
		n++;
	assert_string_equal(m->type, type);
	assert_string_equal(m->source, source);
	if (m->n_options != n) {
		for (size_t i = 0; i < m->n_options; i++)
			print_message("  option %zu: %s\n", i, m->options[i]);
		fail_msg("mount %s %s: %zu options, expected %zu", type, source, m->n_options, n);
	}
	for (size_t i = 0; i < n; i++)
		assert_string_equal(m->options[i], opts[i]);
}

static bool mounts_equal(const struct sn_mounts *a, const struct sn_mounts *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		if (strcmp(a->v[i].type, b->v[i].type) || strcmp(a->v[i].source, b->v[i].source) ||
		    a->v[i].n_options != b->v[i].n_options)
			return false;
		for (size_t j = 0; j < a->v[i].n_options; j++)
			if (strcmp(a->v[i].options[j], b->v[i].options[j]))
				return false;
	}
	return true;
}

static void dump_mounts(const struct sn_mounts *m)
{
	for (size_t i = 0; i < m->n; i++) {
		print_message("  {%s, %s, [", m->v[i].type, m->v[i].source);
		for (size_t j = 0; j < m->v[i].n_options; j++)
			print_message("%s%s", j ? ", " : "", m->v[i].options[j]);
		print_message("]}\n");
	}
}

/* stderr into a file for the duration of a call: the daemon's log */
struct capture {
	int saved, fd;
	char path[64];
};

static void capture_start(struct capture *c)
{
	snprintf(c->path, sizeof(c->path), "/var/tmp/test-snapshotter-log.XXXXXX");
	c->fd = mkstemp(c->path);
	assert_true(c->fd >= 0);
	fflush(stderr);
	c->saved = dup(STDERR_FILENO);
	assert_true(c->saved >= 0);
	assert_true(dup2(c->fd, STDERR_FILENO) >= 0);
}

static char *capture_end(struct capture *c)
{
	struct stat st;
	char *buf;

	fflush(stderr);
	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
	assert_int_equal(fstat(c->fd, &st), 0);
	buf = calloc(1, (size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(pread(c->fd, buf, (size_t)st.st_size, 0), st.st_size);
	close(c->fd);
	unlink(c->path);
	/* show it as the test's own output too */
	fputs(buf, stderr);
	return buf;
}

static bool have_root_powers(void)
{
	return geteuid() == 0;
}

/* fill callbacks for extract snapshots: fs is the upperdir */
typedef void (*fill_fn)(const char *fs, void *ud);

static void fill_named_file(const char *fs, void *ud)
{
	const char *name = ud;
	char content[6000];

	memset(content, 'x', sizeof(content));
	snprintf(content, 64, "layer %s\n", name);
	write_file(fs, name, content, sizeof(content));
}

/* as containerd names them: <ns>/<n>/extract-<random> sha256:<chainid> */
static char *extract_key(struct fx *f, const char *name)
{
	const char *chain = strrchr(name, '/');
	f->seq++;
	return pathf("default/%u/extract-%u%03u %s", f->seq, (unsigned)getpid() % 1000, f->seq,
		     chain ? chain + 1 : name);
}

/* Prepare an extract snapshot on parent, fill its fs/, commit it as name. */
static void make_layer(struct fx *f, const char *name, const char *parent, fill_fn fill, void *ud)
{
	char *key = extract_key(f, name);
	struct sn_mounts m = { 0 };

	MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, key, parent, NULL, 0, &m, &err_));
	assert_int_equal(m.n, 1);
	assert_string_equal(m.v[0].type, "overlay");
	sn_mounts_free(&m);
	char *fs = sfile(f, key, "fs");
	if (fill)
		fill(fs, ud);
	else
		fill_named_file(fs, ud ? ud : (void *)"file");
	MUST(sn_commit(f->sn, name, key, NULL, 0, &err_));
	free(fs);
	free(key);
}

static void open_image(const char *path, struct el_image **ret)
{
	struct el_error err;
	el_error_clear(&err);
	int r = el_image_open(path, ret, &err);
	if (r < 0)
		fail_msg("el_image_open %s: %s", path, err.msg);
}

static void check_image(const char *path, struct el_check_stats *ret)
{
	struct el_image *img;
	struct el_check_stats st = { 0 };
	struct el_error err;
	char buf[700];

	open_image(path, &img);
	el_error_clear(&err);
	int r = el_image_check(img, &st, &err);
	el_image_close(img);
	if (r < 0)
		fail_msg("el_image_check %s: %s", path, el_error_format(&err, buf, sizeof(buf)));
	if (ret)
		*ret = st;
}

static bool run_ok(const char *cmd)
{
	int st = system(cmd);
	return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* ---- Prepare and View: docs/vm-runtime-contract.md's first rows ---- */

static void test_prepare_active(void **state)
{
	struct fx *f = *state;
	struct sn_mounts m = { 0 };
	const char *key = "default/3/container-1";
	struct stat st;

	MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, key, "", NULL, 0, &m, &err_));
	char *dir = sdir(f, key);
	char *img = pathf("%s/" LAYOUT_RWLAYER, dir);
	char *marker = pathf("%s/" LAYOUT_MARKER, dir);

	assert_int_equal(m.n, 1);
	assert_mount(&m.v[0], "ext4", img, (const char *const[]){ "rw", "loop", NULL });
	assert_true(exists(marker));
	/* no extract directories, no temporaries left beside the image */
	assert_int_equal(count_entries(dir), 2);

	/* sparse, --default-size bytes */
	assert_int_equal(stat(img, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, DEFAULT_SIZE);
	print_message("rwlayer.img: %lld bytes, %lld allocated\n", (long long)st.st_size,
		      (long long)st.st_blocks * 512);
	assert_true((uint64_t)st.st_blocks * 512 < DEFAULT_SIZE / 4);

	/* ext4: the superblock magic 0xEF53 at byte 1080 */
	int fd = open(img, O_RDONLY | O_CLOEXEC);
	unsigned char magic[2];
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, magic, 2, 1080), 2);
	close(fd);
	assert_int_equal(magic[0] | magic[1] << 8, 0xEF53);

	/* upper/ and work/ at its root, for the guest's overlay */
	if (access("/usr/sbin/debugfs", X_OK) == 0 || access("/sbin/debugfs", X_OK) == 0) {
		char *cmd = pathf("debugfs -R 'ls -p /' '%s' 2>/dev/null", img);
		FILE *p = popen(cmd, "r");
		char line[512];
		bool upper = false, work = false;
		assert_non_null(p);
		while (fgets(line, sizeof(line), p)) {
			upper |= strstr(line, "/upper/") != NULL;
			work |= strstr(line, "/work/") != NULL;
		}
		pclose(p);
		free(cmd);
		assert_true(upper);
		assert_true(work);
	}

	/* Mounts answers the same */
	struct sn_mounts m2 = { 0 };
	MUST(sn_mounts(f->sn, key, &m2, &err_));
	assert_true(mounts_equal(&m, &m2));
	sn_mounts_free(&m2);

	struct snap_info i = { 0 };
	MUST(sn_stat(f->sn, key, &i, &err_));
	assert_int_equal(i.kind, SNAP_KIND_ACTIVE);
	assert_string_equal(i.parent, "");
	snap_info_free(&i);

	sn_mounts_free(&m);
	free(dir);
	free(img);
	free(marker);
}

static void test_prepare_extract(void **state)
{
	struct fx *f = *state;
	struct sn_mounts m = { 0 };
	const char *key = "ns/1/extract-123 sha256:x";

	assert_true(sn_is_extract_key(key));
	MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, key, NULL, NULL, 0, &m, &err_));
	char *dir = sdir(f, key);
	char *up = pathf("upperdir=%s/fs", dir), *work = pathf("workdir=%s/work", dir),
	     *low = pathf("lowerdir=%s/lower", dir);

	assert_int_equal(m.n, 1);
	assert_mount(&m.v[0], "overlay", "overlay", (const char *const[]){ up, work, low, NULL });
	sn_mounts_free(&m);
	/* the directories exist, empty; no writable layer image */
	for (const char *const *s = (const char *const[]){ "fs", "work", "lower", NULL }; *s; s++) {
		char *p = pathf("%s/%s", dir, *s);
		struct stat st;
		assert_int_equal(stat(p, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		assert_int_equal(count_entries(p), 0);
		free(p);
	}
	char *img = pathf("%s/" LAYOUT_RWLAYER, dir);
	assert_false(exists(img));

	/* with a parent: the same overlay shape, the lower dir stays empty
	 * (the walking differ only writes into upperdir) */
	make_layer(f, "default/2/sha256:base", NULL, NULL, (void *)"base");
	MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, "ns/1/extract-456 sha256:y", "default/2/sha256:base",
			NULL, 0, &m, &err_));
	assert_int_equal(m.n, 1);
	assert_string_equal(m.v[0].type, "overlay");
	assert_string_equal(m.v[0].source, "overlay");
	assert_int_equal(m.v[0].n_options, 3);
	sn_mounts_free(&m);

	free(img);
	free(up);
	free(work);
	free(low);
	free(dir);
}

static void test_extract_keys(void **state)
{
	(void)state;
	assert_true(sn_is_extract_key("ns/1/extract-123 sha256:x"));
	assert_true(sn_is_extract_key("default/77/extract-1a2b3c sha256:0123"));
	assert_true(sn_is_extract_key("extract-1"));
	assert_false(sn_is_extract_key("ns/1/sha256:x"));
	assert_false(sn_is_extract_key("ns/1/xextract-1"));
	assert_false(sn_is_extract_key("ns/extract-1/container"));
	assert_false(sn_is_extract_key("default/3/container-1"));
}

static void test_view_no_parent(void **state)
{
	struct fx *f = *state;
	struct sn_mounts m = { 0 };
	const char *key = "default/5/view-1";

	MUST(sn_prepare(f->sn, SNAP_KIND_VIEW, key, "", NULL, 0, &m, &err_));
	char *lower = sfile(f, key, "lower");
	assert_int_equal(m.n, 1);
	assert_mount(&m.v[0], "bind", lower, (const char *const[]){ "ro", "rbind", NULL });
	struct stat st;
	assert_int_equal(stat(lower, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(count_entries(lower), 0);
	char *img = sfile(f, key, LAYOUT_RWLAYER);
	assert_false(exists(img));

	struct snap_info i = { 0 };
	MUST(sn_stat(f->sn, key, &i, &err_));
	assert_int_equal(i.kind, SNAP_KIND_VIEW);
	snap_info_free(&i);

	sn_mounts_free(&m);
	free(lower);
	free(img);
}

static void test_view_with_parent(void **state)
{
	struct fx *f = *state;
	struct sn_mounts m = { 0 };
	const char *base = "default/2/sha256:base";

	make_layer(f, base, NULL, NULL, (void *)"base");
	char *layer = sfile(f, base, LAYOUT_LAYER);

	/* one committed layer: {erofs, layer.erofs, [ro, loop]} */
	MUST(sn_prepare(f->sn, SNAP_KIND_VIEW, "default/5/view-1", base, NULL, 0, &m, &err_));
	assert_int_equal(m.n, 1);
	assert_mount(&m.v[0], "erofs", layer, (const char *const[]){ "ro", "loop", NULL });
	sn_mounts_free(&m);
	/* a view with a parent has no empty lower dir nor image */
	char *vlower = sfile(f, "default/5/view-1", "lower");
	char *vimg = sfile(f, "default/5/view-1", LAYOUT_RWLAYER);
	assert_false(exists(vlower));
	assert_false(exists(vimg));

	/* an active one on the same parent: the lower mount then the rw layer */
	MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, "default/5/ctr-1", base, NULL, 0, &m, &err_));
	char *rw = sfile(f, "default/5/ctr-1", LAYOUT_RWLAYER);
	assert_int_equal(m.n, 2);
	assert_mount(&m.v[0], "erofs", layer, (const char *const[]){ "ro", "loop", NULL });
	assert_mount(&m.v[1], "ext4", rw, (const char *const[]){ "rw", "loop", NULL });
	sn_mounts_free(&m);

	/* a committed snapshot has no mounts of its own (containerd's snapshotters
	 * answer FailedPrecondition); a view on it has the chain's */
	FAILS(-EBUSY, sn_mounts(f->sn, base, &m, &err_));

	struct snap_info i = { 0 };
	MUST(sn_stat(f->sn, "default/5/view-1", &i, &err_));
	assert_string_equal(i.parent, base);
	assert_int_equal(i.kind, SNAP_KIND_VIEW);
	snap_info_free(&i);

	free(layer);
	free(vlower);
	free(vimg);
	free(rw);
}

/* ---- Commit of an extract snapshot: whiteouts, opaque dirs ---- */

struct xa_find {
	const char *name;
	char value[64];
	bool found;
};

static int xa_cb(void *ud, const struct el_image_xattr *xa)
{
	struct xa_find *x = ud;
	if (strcmp(xa->name, x->name) == 0) {
		x->found = true;
		snprintf(x->value, sizeof(x->value), "%.*s", (int)xa->value_len, (const char *)xa->value);
	}
	return 0;
}

static void fill_overlay_upper(const char *fs, void *ud)
{
	bool *ok = ud;
	char *p;

	mkdir_rel(fs, "etc");
	write_file(fs, "etc/hello", "hello, world\n", 13);
	mkdir_rel(fs, "usr");
	mkdir_rel(fs, "usr/lib");
	write_file(fs, "usr/lib/big", "", 0);
	p = pathf("%s/usr/lib/big", fs);
	assert_int_equal(truncate(p, 1 << 20), 0); /* a hole */
	free(p);
	p = pathf("%s/etc/link", fs);
	assert_int_equal(symlink("hello", p), 0);
	free(p);

	/* whiteouts: at the root and in a subdirectory */
	p = pathf("%s/gone", fs);
	int r1 = mknod(p, S_IFCHR | 0, makedev(0, 0));
	free(p);
	p = pathf("%s/usr/lib/removed.so", fs);
	int r2 = mknod(p, S_IFCHR | 0, makedev(0, 0));
	free(p);
	/* an opaque directory with new content */
	mkdir_rel(fs, "opaque");
	write_file(fs, "opaque/new", "new\n", 4);
	p = pathf("%s/opaque", fs);
	int r3 = setxattr(p, "trusted.overlay.opaque", "y", 1, 0);
	free(p);
	*ok = r1 == 0 && r2 == 0 && r3 == 0;
}

static void test_commit_extract(void **state)
{
	struct fx *f = *state;
	const char *name = "default/2/sha256:one";
	char *key = extract_key(f, name);
	struct sn_mounts m = { 0 };
	bool ok = false;

	if (!have_root_powers())
		skip();
	MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, key, NULL, NULL, 0, &m, &err_));
	sn_mounts_free(&m);
	char *dir = sdir(f, key);
	char *fs = pathf("%s/fs", dir);
	fill_overlay_upper(fs, &ok);
	if (!ok)
		skip(); /* no mknod or trusted.* xattrs here */

	MUST(sn_commit(f->sn, name, key, NULL, 0, &err_));

	/* the key is gone, the name is committed, same directory */
	struct snap_info i = { 0 };
	FAILS(-ENOENT, sn_stat(f->sn, key, &i, &err_));
	MUST(sn_stat(f->sn, name, &i, &err_));
	assert_int_equal(i.kind, SNAP_KIND_COMMITTED);
	assert_string_equal(i.parent, "");
	snap_info_free(&i);
	char *dir2 = sdir(f, name);
	assert_string_equal(dir, dir2);

	char *layer = pathf("%s/" LAYOUT_LAYER, dir);
	struct el_check_stats cs;
	check_image(layer, &cs);
	print_message("layer.erofs: %" PRIu64 " inodes, %" PRIu64 " dirs, %" PRIu64
		      " files, %" PRIu64 " specials\n",
		      cs.inodes, cs.dirs, cs.files, cs.specials);
	assert_int_equal(cs.specials, 2);

	struct el_image *img;
	struct el_image_inode ino;
	struct el_error err;
	char buf[64] = "";
	open_image(layer, &img);
	el_error_clear(&err);
	assert_int_equal(el_image_lookup(img, "etc/hello", &ino, &err), 0);
	assert_true(S_ISREG(ino.mode));
	assert_int_equal(el_image_pread(img, &ino, buf, sizeof(buf), 0, &err), 13);
	assert_memory_equal(buf, "hello, world\n", 13);
	assert_int_equal(el_image_lookup(img, "usr/lib/big", &ino, &err), 0);
	assert_int_equal(ino.size, 1 << 20);
	assert_int_equal(el_image_lookup(img, "etc/link", &ino, &err), 0);
	assert_true(S_ISLNK(ino.mode));
	/* whiteouts stay 0:0 character devices */
	assert_int_equal(el_image_lookup(img, "gone", &ino, &err), 0);
	assert_true(S_ISCHR(ino.mode));
	assert_int_equal(ino.rdev, makedev(0, 0));
	assert_int_equal(el_image_lookup(img, "usr/lib/removed.so", &ino, &err), 0);
	assert_true(S_ISCHR(ino.mode));
	assert_int_equal(ino.rdev, makedev(0, 0));
	/* the opaque directory keeps its mark */
	assert_int_equal(el_image_lookup(img, "opaque", &ino, &err), 0);
	assert_true(S_ISDIR(ino.mode));
	struct xa_find x = { .name = "trusted.overlay.opaque" };
	assert_int_equal(el_image_xattrs(img, &ino, xa_cb, &x, &err), 0);
	assert_true(x.found);
	assert_string_equal(x.value, "y");
	assert_int_equal(el_image_lookup(img, "opaque/new", &ino, &err), 0);
	const struct el_image_info *ii = el_image_info(img);
	uint64_t isize = ii->image_size, inos = ii->inos;
	el_image_close(img);

	/* fs/ and work/ have served their purpose */
	char *work = pathf("%s/work", dir);
	assert_false(exists(fs));
	assert_false(exists(work));

	/* usage of a committed layer: its image */
	uint64_t usize = 0, uinodes = 0;
	struct stat st;
	MUST(sn_usage(f->sn, name, &usize, &uinodes, &err_));
	assert_int_equal(stat(layer, &st), 0);
	assert_int_equal(usize, isize);
	assert_int_equal(usize, (uint64_t)st.st_size);
	assert_int_equal(uinodes, inos);

	/* no mounts of its own once committed; a view's are its layer */
	FAILS(-EBUSY, sn_mounts(f->sn, name, &m, &err_));
	char *vname = pathf("%s-view", name);
	MUST(sn_prepare(f->sn, SNAP_KIND_VIEW, vname, name, NULL, 0, &m, &err_));
	assert_int_equal(m.n, 1);
	assert_mount(&m.v[0], "erofs", layer, (const char *const[]){ "ro", "loop", NULL });
	sn_mounts_free(&m);
	MUST(sn_remove(f->sn, vname, &err_));
	free(vname);

	free(work);
	free(layer);
	free(dir2);
	free(fs);
	free(dir);
	free(key);
}

/* A commit with labels: they replace the active one's (not inherited). */
static void test_commit_labels(void **state)
{
	struct fx *f = *state;
	struct snap_label al[] = { { "containerd.io/snapshot.ref", "sha256:aa" },
				   { "a", "1" } };
	struct snap_label cl[] = { { "containerd.io/gc.root", "x" } };
	struct sn_mounts m = { 0 };
	const char *key = "default/9/extract-9 sha256:aa";

	MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, key, NULL, al, 2, &m, &err_));
	sn_mounts_free(&m);
	struct snap_info i = { 0 };
	MUST(sn_stat(f->sn, key, &i, &err_));
	assert_int_equal(i.n_labels, 2);
	snap_info_free(&i);
	MUST(sn_commit(f->sn, "default/9/sha256:aa", key, cl, 1, &err_));
	MUST(sn_stat(f->sn, "default/9/sha256:aa", &i, &err_));
	assert_int_equal(i.n_labels, 1);
	assert_string_equal(i.labels[0].key, "containerd.io/gc.root");
	assert_string_equal(i.labels[0].value, "x");
	snap_info_free(&i);
}

/* ---- chains: fsmeta.erofs + merged.vmdk ---- */

static void check_vmdk_order(const char *vmdk, const char *const *paths, size_t n)
{
	FILE *fp = fopen(vmdk, "re");
	char text[16384];
	size_t len;

	assert_non_null(fp);
	len = fread(text, 1, sizeof(text) - 1, fp);
	fclose(fp);
	text[len] = 0;
	const char *at = text;
	for (size_t i = 0; i < n; i++) {
		const char *want = paths[i] ? paths[i] : "(null)";
		const char *p = strstr(at, want);
		if (!p)
			fail_msg("%s: %s missing or out of order:\n%s", vmdk, want, text);
		at = p + strlen(want);
	}
}

/* the expected {erofs, <top>/fsmeta.erofs, [ro, loop, device=…]} */
static void assert_merged_mount(struct fx *f, const struct sn_mount *m, const char *const *layers,
				size_t n)
{
	char *fsmeta = sfile(f, layers[n - 1], LAYOUT_FSMETA);
	const char **opts = calloc(n + 3, sizeof(*opts));
	char **devs = calloc(n, sizeof(*devs));

	opts[0] = "ro";
	opts[1] = "loop";
	for (size_t i = 0; i < n; i++) {
		char *l = sfile(f, layers[i], LAYOUT_LAYER);
		devs[i] = pathf("device=%s", l);
		opts[2 + i] = devs[i];
		free(l);
	}
	assert_mount(m, "erofs", fsmeta, opts);
	for (size_t i = 0; i < n; i++)
		free(devs[i]);
	free(devs);
	free(opts);
	free(fsmeta);
}

static void check_chain(struct fx *f, const char *const *layers, size_t n)
{
	struct sn_mounts m = { 0 };
	char *fsmeta = sfile(f, layers[n - 1], LAYOUT_FSMETA);
	char *vmdk = sfile(f, layers[n - 1], LAYOUT_VMDK);
	const char **vpaths = calloc(n + 1, sizeof(*vpaths));

	/* the top itself has no mounts (committed); a view on it, an active on it */
	FAILS(-EBUSY, sn_mounts(f->sn, layers[n - 1], &m, &err_));

	char *vkey = pathf("default/8/view-%u", ++f->seq);
	MUST(sn_prepare(f->sn, SNAP_KIND_VIEW, vkey, layers[n - 1], NULL, 0, &m, &err_));
	assert_int_equal(m.n, 1);
	assert_merged_mount(f, &m.v[0], layers, n);
	sn_mounts_free(&m);
	/* the mount names the files: they are there (Commit queued the merge,
	 * the mount waited for it or did it) */
	assert_true(exists(fsmeta));
	assert_true(exists(vmdk));
	/* the VMDK lists fsmeta then each layer, oldest first */
	vpaths[0] = fsmeta;
	for (size_t i = 0; i < n; i++)
		vpaths[1 + i] = sfile(f, layers[i], LAYOUT_LAYER);
	check_vmdk_order(vmdk, vpaths, n + 1);
	for (size_t i = 0; i < n; i++)
		free((char *)vpaths[1 + i]);
	free(vpaths);

	/* fsmeta is an EROFS image with a device table of n slots */
	struct el_image *img;
	open_image(fsmeta, &img);
	assert_int_equal(el_image_info(img)->extra_devices, n);
	el_image_close(img);
	/* a single layer never gets a merge of its own */
	char *base_fsmeta = sfile(f, layers[0], LAYOUT_FSMETA);
	assert_false(exists(base_fsmeta));
	free(base_fsmeta);

	char *akey = pathf("default/8/ctr-%u", ++f->seq);
	MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, akey, layers[n - 1], NULL, 0, &m, &err_));
	char *rw = sfile(f, akey, LAYOUT_RWLAYER);
	assert_int_equal(m.n, 2);
	assert_merged_mount(f, &m.v[0], layers, n);
	assert_mount(&m.v[1], "ext4", rw, (const char *const[]){ "rw", "loop", NULL });
	sn_mounts_free(&m);
	/* and Mounts again: the same */
	struct sn_mounts m2 = { 0 };
	MUST(sn_mounts(f->sn, akey, &m, &err_));
	MUST(sn_mounts(f->sn, akey, &m2, &err_));
	assert_true(mounts_equal(&m, &m2));
	sn_mounts_free(&m);
	sn_mounts_free(&m2);

	free(rw);
	free(akey);
	free(vkey);
	free(fsmeta);
	free(vmdk);
}

static void test_chain_2(void **state)
{
	struct fx *f = *state;
	const char *layers[] = { "default/2/sha256:l1", "default/2/sha256:l2" };

	make_layer(f, layers[0], NULL, NULL, (void *)"one");
	make_layer(f, layers[1], layers[0], NULL, (void *)"two");
	check_chain(f, layers, 2);
}

/* containerd 2.2's rebase: every layer prepared without parent (here in the
 * reverse order, so each has a newer id than the layer it lands on), applied,
 * then committed onto the layer below; the chains, their merges and the
 * parent links are as a sequential unpack makes them, after a restart too. */
static void test_commit_onto_parent(void **state)
{
	struct fx *f = *state;
	const char *layers[] = { "default/2/sha256:r1", "default/2/sha256:r2",
				 "default/2/sha256:r3" };
	char *keys[3];
	struct sn_mounts m = { 0 };

	for (int i = 2; i >= 0; i--) {
		keys[i] = extract_key(f, layers[i]);
		MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, keys[i], NULL, NULL, 0, &m, &err_));
		sn_mounts_free(&m);
		char *fs = sfile(f, keys[i], "fs");
		fill_named_file(fs, (void *)layers[i] + strlen("default/2/sha256:"));
		free(fs);
	}
	/* refusals first: nothing changes */
	FAILS(-ENOENT, sn_commit_onto(f->sn, layers[1], keys[1], "default/2/sha256:none", NULL, 0,
				      &err_));
	FAILS(-EINVAL, sn_commit_onto(f->sn, layers[1], keys[1], keys[2], NULL, 0, &err_));
	struct snap_info i = { 0 };
	MUST(sn_stat(f->sn, keys[1], &i, &err_));
	assert_int_equal(i.kind, SNAP_KIND_ACTIVE);
	snap_info_free(&i);

	MUST(sn_commit_onto(f->sn, layers[0], keys[0], "", NULL, 0, &err_));
	MUST(sn_commit_onto(f->sn, layers[1], keys[1], layers[0], NULL, 0, &err_));
	MUST(sn_commit_onto(f->sn, layers[2], keys[2], layers[1], NULL, 0, &err_));
	for (int round = 0; round < 2; round++) {
		for (int k = 0; k < 3; k++) {
			MUST(sn_stat(f->sn, layers[k], &i, &err_));
			assert_int_equal(i.kind, SNAP_KIND_COMMITTED);
			assert_string_equal(i.parent ? i.parent : "", k ? layers[k - 1] : "");
			snap_info_free(&i);
		}
		check_chain(f, layers, 3);
		check_chain(f, layers, 2);
		/* the layer below has a child now */
		FAILS(-EBUSY, sn_remove(f->sn, layers[1], &err_));
		reopen(f);
	}
	for (int k = 0; k < 3; k++)
		free(keys[k]);
}

static void test_chain_3(void **state)
{
	struct fx *f = *state;
	const char *layers[] = { "default/2/sha256:l1", "default/2/sha256:l2",
				 "default/2/sha256:l3" };

	make_layer(f, layers[0], NULL, NULL, (void *)"one");
	make_layer(f, layers[1], layers[0], NULL, (void *)"two");
	make_layer(f, layers[2], layers[1], NULL, (void *)"three");
	check_chain(f, layers, 3);
	/* the 2-chain below keeps its own merge */
	check_chain(f, layers, 2);

	/* the merged view sees every layer's file (the fsmeta's root lists them) */
	char *fsmeta = sfile(f, layers[2], LAYOUT_FSMETA);
	struct el_image *img;
	struct el_image_inode ino;
	struct el_error err;
	open_image(fsmeta, &img);
	el_error_clear(&err);
	assert_int_equal(el_image_lookup(img, "one", &ino, &err), 0);
	assert_int_equal(el_image_lookup(img, "two", &ino, &err), 0);
	assert_int_equal(el_image_lookup(img, "three", &ino, &err), 0);
	assert_int_equal(ino.size, 6000);
	el_image_close(img);
	free(fsmeta);

	/* a sibling chain on l1 gets its own fsmeta, l2's stays */
	const char *sib[] = { layers[0], "default/2/sha256:l2b" };
	make_layer(f, sib[1], sib[0], NULL, (void *)"two-b");
	check_chain(f, sib, 2);
	check_chain(f, layers, 3);
}

/* ---- the merge Commit leaves for later ---- */

static bool wait_exists(const char *path, int ms)
{
	for (int i = 0; i < ms / 10 && !exists(path); i++)
		usleep(10 * 1000);
	return exists(path);
}

static uint64_t file_bytes(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Commit answers before its chain is merged; the merge thread does it
 * after the grace period, unless an extract snapshot is prepared on the
 * layer first (a step of an unpack: no merge until a mount asks); Usage
 * and Remove right after Commit wait for it or drop it. */
static void test_chain_merge_deferred(void **state)
{
	struct fx *f = *state;
	const char *l[] = { "default/2/sha256:d1", "default/2/sha256:d2", "default/2/sha256:d3",
			    "default/2/sha256:d4", "default/2/sha256:d5" };
	char *fsmeta[5] = { 0 }, *vmdk[5] = { 0 };
	struct sn_mounts m = { 0 };
	uint64_t run0, dropped0, run, dropped;
#define LAYER(i, parent, what)                                        \
	do {                                                          \
		make_layer(f, l[i], parent, NULL, (void *)what);      \
		fsmeta[i] = sfile(f, l[i], LAYOUT_FSMETA);            \
		vmdk[i] = sfile(f, l[i], LAYOUT_VMDK);                \
	} while (0)

	/* the grace must outlast making the next layer (d4 right after d3
	 * below) on a loaded machine under ASan */
	f->cfg.merge_grace_ms = 2500;
	reopen(f);
	sn_merge_stats(f->sn, &run0, &dropped0);
	/* d2 on d1: merged on the thread, with no one asking */
	LAYER(0, NULL, "one");
	LAYER(1, l[0], "two");
	assert_true(wait_exists(vmdk[1], 10000));
	assert_true(exists(fsmeta[1]));
	/* the files are published inside the merge, counted once it returns */
	for (int i = 0; i < 1000; i++) {
		sn_merge_stats(f->sn, &run, &dropped);
		if (run - run0 >= 1)
			break;
		usleep(10 * 1000);
	}
	assert_int_equal(run - run0, 1);

	/* d3, then d4 prepared on it at once: d3's chain is a step, dropped */
	LAYER(2, l[1], "three");
	LAYER(3, l[2], "four");
	assert_true(wait_exists(vmdk[3], 10000));
	assert_false(exists(fsmeta[2]));
	sn_merge_stats(f->sn, &run, &dropped);
	assert_int_equal(dropped - dropped0, 1);
	/* ... until a view asks */
	MUST(sn_prepare(f->sn, SNAP_KIND_VIEW, "default/3/v3", l[2], NULL, 0, &m, &err_));
	assert_int_equal(m.n, 1);
	assert_string_equal(m.v[0].source, fsmeta[2]);
	sn_mounts_free(&m);
	assert_true(exists(fsmeta[2]) && exists(vmdk[2]));
	MUST(sn_remove(f->sn, "default/3/v3", &err_));

	/* Usage right after Commit counts the chain's files: it merges first */
	f->cfg.merge_grace_ms = 60 * 1000;
	reopen(f);
	LAYER(4, l[3], "five");
#undef LAYER
	assert_false(exists(fsmeta[4]));
	uint64_t size, inodes;
	MUST(sn_usage(f->sn, l[4], &size, &inodes, &err_));
	char *layer = sfile(f, l[4], LAYOUT_LAYER);
	assert_true(exists(fsmeta[4]));
	assert_int_equal(size, file_bytes(layer) + file_bytes(fsmeta[4]) + file_bytes(vmdk[4]));
	free(layer);

	/* Remove right after Commit: the queued merge goes with it */
	make_layer(f, "default/2/sha256:d6", l[4], NULL, (void *)"six");
	char *d6 = sdir(f, "default/2/sha256:d6");
	assert_true(exists(d6));
	MUST(sn_remove(f->sn, "default/2/sha256:d6", &err_));
	assert_false(exists(d6));
	free(d6);
	/* and a restart with a merge queued: Commit's merge is lost, the
	 * first mount makes it */
	make_layer(f, "default/2/sha256:d7", l[4], NULL, (void *)"seven");
	char *f7 = sfile(f, "default/2/sha256:d7", LAYOUT_FSMETA);
	reopen(f);
	assert_false(exists(f7));
	MUST(sn_prepare(f->sn, SNAP_KIND_VIEW, "default/3/v7", "default/2/sha256:d7", NULL, 0, &m,
			&err_));
	assert_string_equal(m.v[0].source, f7);
	sn_mounts_free(&m);
	assert_true(exists(f7));
	free(f7);
	for (int i = 0; i < 5; i++) {
		free(fsmeta[i]);
		free(vmdk[i]);
	}
}

/* ---- a chain that cannot be merged: per-layer mounts, for good ---- */

/* A layer made by Debian's mkfs.erofs (1.5): small files are FLAT_INLINE,
 * which a merged fsmeta cannot point at. */
static bool make_inline_image(struct fx *f, const char *out)
{
	char *src = pathf("%s/inline-src", f->root);
	bool ok;

	if (access("/usr/bin/mkfs.erofs", X_OK) != 0 && access("/sbin/mkfs.erofs", X_OK) != 0 &&
	    access("/usr/sbin/mkfs.erofs", X_OK) != 0)
		return false;
	mkdir_rel(f->root, "inline-src");
	write_file(src, "small", "tiny file, inlined\n", 19);
	char *cmd = pathf("mkfs.erofs -T0 --quiet '%s' '%s' >/dev/null 2>&1", out, src);
	ok = run_ok(cmd);
	free(cmd);
	rm_tree(src);
	free(src);
	return ok;
}

static void test_chain_unmergeable(void **state)
{
	struct fx *f = *state;
	const char *l1 = "default/2/sha256:m1", *l2 = "default/2/sha256:m2",
		   *l3 = "default/2/sha256:m3";
	struct sn_mounts m = { 0 }, again = { 0 };
	struct capture cap;

	make_layer(f, l1, NULL, NULL, (void *)"one");

	/* l2: its layer.erofs is in place before Commit (as our differ's
	 * Apply would leave it), made by another writer */
	char *key = extract_key(f, l2);
	MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, key, l1, NULL, 0, &m, &err_));
	sn_mounts_free(&m);
	char *pre = sfile(f, key, LAYOUT_LAYER);
	if (!make_inline_image(f, pre))
		skip();
	check_image(pre, NULL);

	/* the merge runs after Commit (on the merge thread) or at the first
	 * mount, whichever comes first: the warning comes from one of them */
	capture_start(&cap);
	struct el_error cerr;
	el_error_clear(&cerr);
	int r = sn_commit(f->sn, l2, key, NULL, 0, &cerr);
	if (r < 0)
		fail_msg("commit %s: %s", l2, cerr.msg);

	/* per-layer mounts, oldest first, the same on every call */
	MUST(sn_prepare(f->sn, SNAP_KIND_VIEW, "default/5/v", l2, NULL, 0, &m, &err_));
	char *log = capture_end(&cap);
	/* logged, as a warning */
	assert_non_null(strstr(log, "level=warning"));
	assert_non_null(strstr(log, "cannot be merged"));
	free(log);

	char *l1img = sfile(f, l1, LAYOUT_LAYER), *l2img = sfile(f, l2, LAYOUT_LAYER);
	char *fsmeta = sfile(f, l2, LAYOUT_FSMETA);
	assert_false(exists(fsmeta));
	dump_mounts(&m);
	assert_int_equal(m.n, 2);
	assert_mount(&m.v[0], "erofs", l1img, (const char *const[]){ "ro", "loop", NULL });
	assert_mount(&m.v[1], "erofs", l2img, (const char *const[]){ "ro", "loop", NULL });
	for (int k = 0; k < 3; k++) {
		MUST(sn_mounts(f->sn, "default/5/v", &again, &err_));
		assert_true(mounts_equal(&m, &again));
		sn_mounts_free(&again);
	}
	/* no retry on every call: the fallback is remembered (no new warning) */
	capture_start(&cap);
	MUST(sn_mounts(f->sn, "default/5/v", &again, &err_));
	log = capture_end(&cap);
	assert_null(strstr(log, "cannot be merged"));
	free(log);
	sn_mounts_free(&again);

	/* an active on it: the layers, then the rw layer */
	MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, "default/5/c", l2, NULL, 0, &again, &err_));
	assert_int_equal(again.n, 3);
	assert_true(strcmp(again.v[2].type, "ext4") == 0);
	for (size_t i = 0; i < 2; i++) {
		assert_string_equal(again.v[i].type, m.v[i].type);
		assert_string_equal(again.v[i].source, m.v[i].source);
	}
	sn_mounts_free(&again);

	/* and after a restart */
	reopen(f);
	MUST(sn_mounts(f->sn, "default/5/v", &again, &err_));
	assert_true(mounts_equal(&m, &again));
	sn_mounts_free(&again);
	sn_mounts_free(&m);

	/* a third, ordinary layer on top: still unmergeable, three mounts */
	make_layer(f, l3, l2, NULL, (void *)"three");
	char *l3img = sfile(f, l3, LAYOUT_LAYER);
	MUST(sn_prepare(f->sn, SNAP_KIND_VIEW, "default/5/v3", l3, NULL, 0, &m, &err_));
	assert_int_equal(m.n, 3);
	assert_mount(&m.v[0], "erofs", l1img, (const char *const[]){ "ro", "loop", NULL });
	assert_mount(&m.v[1], "erofs", l2img, (const char *const[]){ "ro", "loop", NULL });
	assert_mount(&m.v[2], "erofs", l3img, (const char *const[]){ "ro", "loop", NULL });
	MUST(sn_mounts(f->sn, "default/5/v3", &again, &err_));
	assert_true(mounts_equal(&m, &again));
	sn_mounts_free(&again);
	sn_mounts_free(&m);

	/* a view of l2: its chain, per layer */
	MUST(sn_prepare(f->sn, SNAP_KIND_VIEW, "default/9/l2-view", l2, NULL, 0, &m, &err_));
	assert_int_equal(m.n, 2);
	sn_mounts_free(&m);
	MUST(sn_remove(f->sn, "default/9/l2-view", &err_));

	free(l3img);
	free(fsmeta);
	free(l1img);
	free(l2img);
	free(pre);
	free(key);
}

/* ---- errors, as containerd's contract names them ---- */

static void test_errors(void **state)
{
	struct fx *f = *state;
	struct sn_mounts m = { 0 };
	struct snap_info i = { 0 };
	uint64_t a, b;
	const char *base = "default/2/sha256:base";

	make_layer(f, base, NULL, NULL, (void *)"base");
	size_t dirs = count_snapshot_dirs(f);

	/* empty key */
	FAILS(-EINVAL, sn_prepare(f->sn, SNAP_KIND_ACTIVE, "", NULL, NULL, 0, &m, &err_));
	FAILS(-EINVAL, sn_prepare(f->sn, SNAP_KIND_VIEW, "", base, NULL, 0, &m, &err_));
	/* duplicate key */
	MUST(sn_prepare(f->sn, SNAP_KIND_VIEW, "v1", base, NULL, 0, &m, &err_));
	sn_mounts_free(&m);
	FAILS(-EEXIST, sn_prepare(f->sn, SNAP_KIND_VIEW, "v1", base, NULL, 0, &m, &err_));
	FAILS(-EEXIST, sn_prepare(f->sn, SNAP_KIND_ACTIVE, "v1", NULL, NULL, 0, &m, &err_));
	FAILS(-EEXIST, sn_prepare(f->sn, SNAP_KIND_VIEW, base, NULL, NULL, 0, &m, &err_));
	/* unknown parent */
	FAILS(-ENOENT, sn_prepare(f->sn, SNAP_KIND_VIEW, "v2", "nope", NULL, 0, &m, &err_));
	FAILS(-ENOENT, sn_prepare(f->sn, SNAP_KIND_ACTIVE, "a2", "nope", NULL, 0, &m, &err_));
	/* parent not committed (a view, an active) */
	FAILS(-EINVAL, sn_prepare(f->sn, SNAP_KIND_VIEW, "v3", "v1", NULL, 0, &m, &err_));
	MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, "ns/1/extract-1 sha256:e", base, NULL, 0, &m,
			&err_));
	sn_mounts_free(&m);
	FAILS(-EINVAL,
	      sn_prepare(f->sn, SNAP_KIND_ACTIVE, "a3", "ns/1/extract-1 sha256:e", NULL, 0, &m, &err_));
	/* nothing was left behind by the failures; of the two made, the view
	 * on base owns no directory */
	assert_int_equal(count_snapshot_dirs(f), dirs + 1);

	/* commit of a view, of a committed snapshot */
	FAILS(-EBUSY, sn_commit(f->sn, "c1", "v1", NULL, 0, &err_));
	FAILS(-EBUSY, sn_commit(f->sn, "c1", base, NULL, 0, &err_));
	/* commit of an unknown key */
	FAILS(-ENOENT, sn_commit(f->sn, "c1", "nope", NULL, 0, &err_));
	/* commit to an existing name: the active stays, and commits later */
	FAILS(-EEXIST, sn_commit(f->sn, base, "ns/1/extract-1 sha256:e", NULL, 0, &err_));
	MUST(sn_stat(f->sn, "ns/1/extract-1 sha256:e", &i, &err_));
	assert_int_equal(i.kind, SNAP_KIND_ACTIVE);
	snap_info_free(&i);
	FAILS(-EEXIST, sn_commit(f->sn, "v1", "ns/1/extract-1 sha256:e", NULL, 0, &err_));
	FAILS(-EINVAL, sn_commit(f->sn, "", "ns/1/extract-1 sha256:e", NULL, 0, &err_));
	MUST(sn_commit(f->sn, "default/2/sha256:e", "ns/1/extract-1 sha256:e", NULL, 0, &err_));
	FAILS(-ENOENT, sn_commit(f->sn, "again", "ns/1/extract-1 sha256:e", NULL, 0, &err_));

	/* remove with children; remove unknown */
	FAILS(-EBUSY, sn_remove(f->sn, base, &err_));
	FAILS(-ENOENT, sn_remove(f->sn, "nope", &err_));
	struct el_error e;
	el_error_clear(&e);
	assert_true(sn_remove(f->sn, "", &e) < 0);

	/* the others on unknown keys */
	FAILS(-ENOENT, sn_stat(f->sn, "nope", &i, &err_));
	FAILS(-ENOENT, sn_mounts(f->sn, "nope", &m, &err_));
	FAILS(-ENOENT, sn_usage(f->sn, "nope", &a, &b, &err_));
	struct snap_info up = { .key = (char *)"nope" };
	FAILS(-ENOENT, sn_update(f->sn, &up, NULL, 0, &i, &err_));
	assert_null(sn_snapshot_dir(f->sn, "nope"));

	/* the failed calls left the survivors as they were */
	MUST(sn_stat(f->sn, base, &i, &err_));
	assert_int_equal(i.kind, SNAP_KIND_COMMITTED);
	snap_info_free(&i);
	char *layer = sfile(f, base, LAYOUT_LAYER);
	check_image(layer, NULL);
	free(layer);
}

/* Container commit: what a guest wrote into upper/ of rwlayer.img (written
 * here with debugfs, never mounted) becomes the layer; rwlayer.img goes.
 * A rwlayer.img that is not an ext4 image fails the commit (-EINVAL), and
 * the snapshot stays active. */
static void test_commit_active(void **state)
{
	struct fx *f = *state;
	struct sn_mounts m = { 0 };
	struct snap_info i = { 0 };
	struct el_check_stats st = { 0 };

	MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, "default/3/ctr", NULL, NULL, 0, &m, &err_));
	sn_mounts_free(&m);
	char *img = sfile(f, "default/3/ctr", LAYOUT_RWLAYER);
	char *src = pathf("%s/hello-src", f->root);
	FILE *fp = fopen(src, "w");
	assert_non_null(fp);
	fputs("written by the guest\n", fp);
	fclose(fp);
	char *cmd = pathf("debugfs -w -R 'write %s upper/hello' %s >/dev/null 2>&1", src, img);
	assert_int_equal(system(cmd), 0);
	MUST(sn_commit(f->sn, "default/3/img", "default/3/ctr", NULL, 0, &err_));
	MUST(sn_stat(f->sn, "default/3/img", &i, &err_));
	assert_int_equal(i.kind, SNAP_KIND_COMMITTED);
	snap_info_free(&i);
	FAILS(-ENOENT, sn_stat(f->sn, "default/3/ctr", &i, &err_));
	char *layer = sfile(f, "default/3/img", LAYOUT_LAYER);
	check_image(layer, &st);
	assert_int_equal(st.files, 1);
	struct el_image *ei;
	struct el_image_inode ino;
	open_image(layer, &ei);
	MUST(el_image_lookup(ei, "hello", &ino, &err_));
	assert_int_equal(ino.size, strlen("written by the guest\n"));
	el_image_close(ei);
	char *gone = sfile(f, "default/3/img", LAYOUT_RWLAYER);
	assert_int_equal(access(gone, F_OK), -1);

	/* not an ext4 image at all */
	MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, "default/3/bad", NULL, NULL, 0, &m, &err_));
	sn_mounts_free(&m);
	char *bad = sfile(f, "default/3/bad", LAYOUT_RWLAYER);
	assert_int_equal(truncate(bad, 0), 0);
	assert_int_equal(truncate(bad, 1 << 20), 0);
	FAILS(-EINVAL, sn_commit(f->sn, "default/3/bad-img", "default/3/bad", NULL, 0, &err_));
	MUST(sn_stat(f->sn, "default/3/bad", &i, &err_));
	assert_int_equal(i.kind, SNAP_KIND_ACTIVE);
	snap_info_free(&i);
	free(img);
	free(src);
	free(cmd);
	free(layer);
	free(gone);
	free(bad);
}

/* A writable layer still attached to a loop device (a host mount, 2.2's
 * mount manager, a guest not stopped) is in use: Commit is -EBUSY
 * (FailedPrecondition), names the device, and leaves the snapshot active;
 * once released it commits. */
static void test_commit_in_use(void **state)
{
	struct fx *f = *state;
	struct sn_mounts m = { 0 };
	struct snap_info i = { 0 };
	char dev[64] = "";

	if (!have_root_powers() || !run_ok("test -e /dev/loop-control"))
		skip();
	MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, "default/3/busy", NULL, NULL, 0, &m, &err_));
	sn_mounts_free(&m);
	char *img = sfile(f, "default/3/busy", LAYOUT_RWLAYER);
	assert_int_equal(ext4_image_loop_device(img, dev, sizeof(dev)), 0);
	char *cmd = pathf("losetup -f --show '%s'", img);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	char loop[64] = "";
	assert_non_null(fgets(loop, sizeof(loop), p));
	assert_int_equal(pclose(p), 0);
	loop[strcspn(loop, "\n")] = 0;
	assert_int_equal(ext4_image_loop_device(img, dev, sizeof(dev)), 1);
	assert_string_equal(loop + strlen("/dev/"), dev);

	struct el_error e;
	el_error_clear(&e);
	int r = sn_commit(f->sn, "default/3/busy-img", "default/3/busy", NULL, 0, &e);
	char *detach = pathf("losetup -d %s", loop);
	assert_true(run_ok(detach));
	assert_int_equal(r, -EBUSY);
	print_message("refused as expected: %s\n", e.msg);
	assert_non_null(strstr(e.msg, dev));
	MUST(sn_stat(f->sn, "default/3/busy", &i, &err_));
	assert_int_equal(i.kind, SNAP_KIND_ACTIVE);
	snap_info_free(&i);

	assert_int_equal(ext4_image_loop_device(img, dev, sizeof(dev)), 0);
	MUST(sn_commit(f->sn, "default/3/busy-img", "default/3/busy", NULL, 0, &err_));
	free(detach);
	free(cmd);
	free(img);
}

/* A conversion failure (a redirect the image cannot express) fails the
 * Commit; the snapshot stays active with nothing half-made in its directory,
 * and commits once the content is fixed. */
static void test_commit_conversion_failure(void **state)
{
	struct fx *f = *state;
	const char *key = "default/4/extract-4 sha256:r";
	struct sn_mounts m = { 0 };
	struct snap_info i = { 0 };

	if (!have_root_powers())
		skip();
	MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, key, NULL, NULL, 0, &m, &err_));
	sn_mounts_free(&m);
	char *fs = sfile(f, key, "fs");
	mkdir_rel(fs, "moved");
	char *p = pathf("%s/moved", fs);
	if (setxattr(p, "trusted.overlay.redirect", "/orig", 5, 0) < 0)
		skip();
	struct el_error err;
	el_error_clear(&err);
	int r = sn_commit(f->sn, "default/4/sha256:r", key, NULL, 0, &err);
	assert_true(r < 0);
	print_message("commit failed as expected: %s (%s)\n", strerror(-r), err.msg);
	MUST(sn_stat(f->sn, key, &i, &err_));
	assert_int_equal(i.kind, SNAP_KIND_ACTIVE);
	snap_info_free(&i);
	char *layer = sfile(f, key, LAYOUT_LAYER);
	assert_false(exists(layer));
	char *dir = sdir(f, key);
	assert_int_equal(count_entries(dir), 4); /* marker, fs, work, lower */

	assert_int_equal(removexattr(p, "trusted.overlay.redirect"), 0);
	MUST(sn_commit(f->sn, "default/4/sha256:r", key, NULL, 0, &err_));
	check_image(layer, NULL);
	free(dir);
	free(layer);
	free(p);
	free(fs);
}

/* ---- Remove ---- */

static void test_remove(void **state)
{
	struct fx *f = *state;
	struct sn_mounts m = { 0 };
	struct snap_info i = { 0 };
	const char *base = "default/2/sha256:base", *top = "default/2/sha256:top";

	make_layer(f, base, NULL, NULL, (void *)"base");
	make_layer(f, top, base, NULL, (void *)"top");
	MUST(sn_prepare(f->sn, SNAP_KIND_VIEW, "view", top, NULL, 0, &m, &err_));
	sn_mounts_free(&m);
	MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, "active", base, NULL, 0, &m, &err_));
	sn_mounts_free(&m);
	MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, "ns/1/extract-5 sha256:x", NULL, NULL, 0, &m, &err_));
	sn_mounts_free(&m);
	char *xfs = sfile(f, "ns/1/extract-5 sha256:x", "fs");
	write_file(xfs, "data", "data", 4);
	free(xfs);
	/* the view on top owns none */
	assert_int_equal(count_snapshot_dirs(f), 4);

	const char *order[] = { "view", "active", "ns/1/extract-5 sha256:x", top, base };
	for (size_t k = 0; k < EL_ARRAY_SIZE(order); k++) {
		char *dir = sdir(f, order[k]);
		assert_int_equal(exists(dir), k != 0);
		if (k == 3)
			FAILS(-EBUSY, sn_remove(f->sn, base, &err_)); /* top is still there */
		MUST(sn_remove(f->sn, order[k], &err_));
		assert_false(exists(dir));
		FAILS(-ENOENT, sn_stat(f->sn, order[k], &i, &err_));
		FAILS(-ENOENT, sn_remove(f->sn, order[k], &err_));
		free(dir);
	}
	/* nothing left, not even trash */
	assert_int_equal(count_snapshot_dirs(f), 0);
	/* a key can be used again after Remove; it gets a new id */
	MUST(sn_prepare(f->sn, SNAP_KIND_VIEW, "view", NULL, NULL, 0, &m, &err_));
	sn_mounts_free(&m);
	assert_true(sid(f, "view") > 5);
}

/* ---- Cleanup and restart ---- */

static void make_junk_dir(struct fx *f, const char *name)
{
	char *d = pathf("%s/snapshots/%s", f->root, name);
	assert_int_equal(mkdir(d, 0755), 0);
	write_file(d, LAYOUT_MARKER, "", 0);
	mkdir_rel(d, "fs");
	mkdir_rel(d, "fs/deep");
	write_file(d, "fs/deep/file", "junk", 4);
	write_file(d, LAYOUT_LAYER, "not really", 10);
	free(d);
}

static bool junk_exists(struct fx *f, const char *name)
{
	char *d = pathf("%s/snapshots/%s", f->root, name);
	bool e = exists(d);
	free(d);
	return e;
}

/* live snapshots of every kind, with their files (the list: population[]) */
static void make_population(struct fx *f)
{
	struct sn_mounts m = { 0 };

	make_layer(f, "default/2/sha256:p1", NULL, NULL, (void *)"p1");
	make_layer(f, "default/2/sha256:p2", "default/2/sha256:p1", NULL, (void *)"p2");
	MUST(sn_prepare(f->sn, SNAP_KIND_VIEW, "pview", "default/2/sha256:p2", NULL, 0, &m, &err_));
	sn_mounts_free(&m);
	MUST(sn_prepare(f->sn, SNAP_KIND_VIEW, "pview0", NULL, NULL, 0, &m, &err_));
	sn_mounts_free(&m);
	MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, "pactive", "default/2/sha256:p1", NULL, 0, &m,
			&err_));
	sn_mounts_free(&m);
	MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, "ns/1/extract-77 sha256:p3", "default/2/sha256:p2",
			NULL, 0, &m, &err_));
	sn_mounts_free(&m);
	char *fs = sfile(f, "ns/1/extract-77 sha256:p3", "fs");
	write_file(fs, "in-progress", "half", 4);
	free(fs);
	/* and some removed ones, so that their ids are dead */
	for (int k = 0; k < 4; k++) {
		char key[32];
		snprintf(key, sizeof(key), "gone-%d", k);
		MUST(sn_prepare(f->sn, SNAP_KIND_VIEW, key, NULL, NULL, 0, &m, &err_));
		sn_mounts_free(&m);
		MUST(sn_remove(f->sn, key, &err_));
	}
}

static const char *const population[] = {
	"default/2/sha256:p1", "default/2/sha256:p2", "pview", "pview0", "pactive",
	"ns/1/extract-77 sha256:p3",
};
/* the members that own a directory: all but pview, a view on a parent */
#define POPULATION_DIRS (EL_ARRAY_SIZE(population) - 1)

/* a member's mounts; the committed ones (p1, p2) have none, only the
 * chain's views do, so theirs are the refusal */
static void population_mounts(struct fx *f, size_t k, struct sn_mounts *m)
{
	if (strncmp(population[k], "default/2/", 10) == 0)
		FAILS(-EBUSY, sn_mounts(f->sn, population[k], m, &err_));
	else
		MUST(sn_mounts(f->sn, population[k], m, &err_));
}

/* every live snapshot as it was: record, directory, files, mounts */
static void check_population(struct fx *f, struct sn_mounts *before)
{
	for (size_t k = 0; k < EL_ARRAY_SIZE(population); k++) {
		struct snap_info i = { 0 };
		struct sn_mounts m = { 0 };
		MUST(sn_stat(f->sn, population[k], &i, &err_));
		snap_info_free(&i);
		char *marker = sfile(f, population[k], LAYOUT_MARKER);
		assert_int_equal(exists(marker), strcmp(population[k], "pview") != 0);
		free(marker);
		population_mounts(f, k, &m);
		if (before) {
			if (before[k].n == 0)
				before[k] = m;
			else {
				if (!mounts_equal(&before[k], &m)) {
					dump_mounts(&before[k]);
					dump_mounts(&m);
					fail_msg("mounts of %s changed", population[k]);
				}
				sn_mounts_free(&m);
			}
		} else {
			sn_mounts_free(&m);
		}
	}
	char *p;
	p = sfile(f, "default/2/sha256:p1", LAYOUT_LAYER);
	check_image(p, NULL);
	free(p);
	p = sfile(f, "default/2/sha256:p2", LAYOUT_FSMETA);
	assert_true(exists(p));
	free(p);
	p = sfile(f, "pactive", LAYOUT_RWLAYER);
	assert_true(exists(p));
	free(p);
	p = sfile(f, "ns/1/extract-77 sha256:p3", "fs/in-progress");
	assert_true(exists(p));
	free(p);
	p = sfile(f, "pview0", "lower");
	assert_true(exists(p));
	free(p);
}

static void test_cleanup(void **state)
{
	struct fx *f = *state;
	struct el_error err;

	make_population(f);
	/* gone-3's id: dead, and below the store's counter */
	uint64_t dead = sid(f, "ns/1/extract-77 sha256:p3") + 4;
	char name[32];
	snprintf(name, sizeof(name), "%" PRIu64, dead);
	assert_true(dead > 7);
	make_junk_dir(f, name);
	make_junk_dir(f, ".tmp-5");
	make_junk_dir(f, ".trash-7");
	assert_int_equal(count_snapshot_dirs(f), POPULATION_DIRS + 3);

	el_error_clear(&err);
	int r = sn_cleanup(f->sn, &err);
	if (r < 0)
		fail_msg("cleanup: %s", err.msg);
	assert_int_equal(r, 3);
	assert_false(junk_exists(f, name));
	assert_false(junk_exists(f, ".tmp-5"));
	assert_false(junk_exists(f, ".trash-7"));
	assert_int_equal(count_snapshot_dirs(f), POPULATION_DIRS);
	check_population(f, NULL);
	/* nothing more to do */
	el_error_clear(&err);
	assert_int_equal(sn_cleanup(f->sn, &err), 0);
}

/* A directory whose id the store has not handed out yet (snapshots/999):
 * no snapshot owns it, and none is being made with that id, so Cleanup
 * should remove it, as the next start does. */
static void test_cleanup_orphan_ahead_of_counter(void **state)
{
	struct fx *f = *state;
	struct el_error err;

	make_population(f);
	make_junk_dir(f, "999");
	el_error_clear(&err);
	int r = sn_cleanup(f->sn, &err);
	if (r < 0)
		fail_msg("cleanup: %s", err.msg);
	if (junk_exists(f, "999"))
		fail_msg("Cleanup kept snapshots/999, which no snapshot owns (returned %d)", r);
	assert_int_equal(r, 1);
	check_population(f, NULL);
}

struct cleaner {
	struct snapshotter *sn;
	atomic_bool stop;
	unsigned runs, removed;
};

static void *cleaner_main(void *p)
{
	struct cleaner *c = p;
	while (!atomic_load(&c->stop)) {
		struct el_error err;
		el_error_clear(&err);
		int r = sn_cleanup(c->sn, &err);
		c->runs++;
		if (r > 0)
			c->removed += (unsigned)r;
	}
	return NULL;
}

/* Cleanup while Prepare runs: containerd's GC calls Cleanup while other
 * clients prepare snapshots. No Prepare may fail, no live directory may be
 * removed or lose its files. */
static void test_cleanup_concurrent_prepare(void **state)
{
	struct fx *f = *state;
	struct cleaner c = { .sn = f->sn };
	pthread_t t;
	unsigned failed = 0, broken = 0;
	char first_error[600] = "";

	assert_int_equal(pthread_create(&t, NULL, cleaner_main, &c), 0);
	for (int k = 0; k < 400; k++) {
		char key[32];
		struct sn_mounts m = { 0 };
		struct el_error err;
		snprintf(key, sizeof(key), "race-%d", k);
		el_error_clear(&err);
		int r = sn_prepare(f->sn, SNAP_KIND_VIEW, key, NULL, NULL, 0, &m, &err);
		if (r < 0) {
			if (!failed++)
				snprintf(first_error, sizeof(first_error), "%s: %s", key, err.msg);
			continue;
		}
		sn_mounts_free(&m);
		char *marker = sfile(f, key, LAYOUT_MARKER), *lower = sfile(f, key, "lower");
		if (!exists(marker) || !exists(lower)) {
			if (!broken++ && !*first_error)
				snprintf(first_error, sizeof(first_error), "%s: %s%s missing", key,
					 exists(marker) ? "" : "marker ", exists(lower) ? "" : "lower/");
		}
		free(marker);
		free(lower);
	}
	atomic_store(&c.stop, true);
	pthread_join(t, NULL);
	print_message("%u cleanups removed %u entries; %u prepares failed, %u broken\n", c.runs,
		      c.removed, failed, broken);
	if (failed || broken)
		fail_msg("Cleanup raced with Prepare: %u failed, %u incomplete (first: %s)", failed,
			 broken, first_error);
	assert_int_equal(c.removed, 0);
}

static void test_restart(void **state)
{
	struct fx *f = *state;
	struct sn_mounts before[EL_ARRAY_SIZE(population)] = { 0 };
	uint64_t maxid = 0;

	make_population(f);
	check_population(f, before);
	for (size_t k = 0; k < EL_ARRAY_SIZE(population); k++)
		maxid = EL_MAX(maxid, sid(f, population[k]));
	struct snap_info p2 = { 0 };
	MUST(sn_stat(f->sn, "default/2/sha256:p2", &p2, &err_));

	/* what a crash leaves: half-made, half-removed, orphaned directories */
	sn_close(f->sn);
	f->sn = NULL;
	char dead[32], ahead[32];
	snprintf(dead, sizeof(dead), "%" PRIu64, maxid + 1);
	snprintf(ahead, sizeof(ahead), "%" PRIu64, maxid + 1000);
	make_junk_dir(f, dead);
	make_junk_dir(f, ahead);
	make_junk_dir(f, ".tmp-3");
	make_junk_dir(f, ".trash-2");
	char *tmp = pathf("%s/snapshots/.tmp-%" PRIu64, f->root, maxid + 100);
	assert_int_equal(mkdir(tmp, 0755), 0);
	free(tmp);
	open_sn(f);

	assert_false(junk_exists(f, dead));
	assert_false(junk_exists(f, ahead));
	assert_false(junk_exists(f, ".tmp-3"));
	assert_false(junk_exists(f, ".trash-2"));
	assert_int_equal(count_snapshot_dirs(f), POPULATION_DIRS);
	check_population(f, before);

	/* records as they were */
	struct snap_info q = { 0 };
	MUST(sn_stat(f->sn, "default/2/sha256:p2", &q, &err_));
	assert_int_equal(q.id, p2.id);
	assert_string_equal(q.parent, p2.parent);
	assert_int_equal(q.kind, SNAP_KIND_COMMITTED);
	assert_int_equal(q.created_ns, p2.created_ns);
	assert_int_equal(q.usage_size, p2.usage_size);
	snap_info_free(&q);
	snap_info_free(&p2);

	/* ids are never handed out again, not even the removed ones */
	struct sn_mounts m = { 0 };
	MUST(sn_prepare(f->sn, SNAP_KIND_VIEW, "after", NULL, NULL, 0, &m, &err_));
	sn_mounts_free(&m);
	assert_true(sid(f, "after") > maxid + 4);

	/* the chain keeps working: commit the in-progress layer on p2 */
	MUST(sn_commit(f->sn, "default/2/sha256:p3", "ns/1/extract-77 sha256:p3", NULL, 0, &err_));
	const char *three[] = { "default/2/sha256:p1", "default/2/sha256:p2",
				"default/2/sha256:p3" };
	check_chain(f, three, 3);

	for (size_t k = 0; k < EL_ARRAY_SIZE(population); k++)
		sn_mounts_free(&before[k]);
}

/* The directories of extract snapshots and of views without a parent are
 * not made durable at Prepare: a crash may lose them (the rename, or the
 * whole directory) while their records survive. The start-up makes them
 * again, and an extract snapshot so restored still commits. */
static size_t check_consistent(struct fx *f);

static void test_restore_lost_dirs(void **state)
{
	struct fx *f = *state;
	struct sn_mounts before[EL_ARRAY_SIZE(population)] = { 0 };
	const char *extract = "ns/1/extract-77 sha256:p3";

	make_population(f);
	check_population(f, before);
	uint64_t xid = sid(f, extract), vid = sid(f, "pview0");
	sn_close(f->sn);
	f->sn = NULL;

	/* the extract directory's rename lost: it is still .tmp-<id>, holding
	 * only some of its parts; the view's directory lost altogether */
	char *xdir = pathf("%s/snapshots/%" PRIu64, f->root, xid);
	char *xtmp = pathf("%s/snapshots/.tmp-%" PRIu64, f->root, xid);
	char *vdir = pathf("%s/snapshots/%" PRIu64, f->root, vid);
	rm_tree(xdir);
	assert_int_equal(mkdir(xtmp, 0755), 0);
	mkdir_rel(xtmp, "fs");
	rm_tree(vdir);
	open_sn(f);

	assert_false(exists(xtmp));
	check_consistent(f);
	/* the mounts as they were (fs/'s file is lost with the directory) */
	for (size_t k = 0; k < EL_ARRAY_SIZE(population); k++) {
		struct sn_mounts m = { 0 };
		population_mounts(f, k, &m);
		if (!mounts_equal(&before[k], &m))
			fail_msg("mounts of %s changed", population[k]);
		sn_mounts_free(&m);
	}
	for (const char *const *n = (const char *const[]){ "fs", "work", "lower", NULL }; *n; n++) {
		char *p = pathf("%s/%s", xdir, *n);
		assert_int_equal(count_entries(p), 0);
		free(p);
	}
	char *lower = pathf("%s/lower", vdir);
	assert_int_equal(count_entries(lower), 0);

	/* a directory only partly lost: its missing parts come back, what is
	 * there stays */
	sn_close(f->sn);
	f->sn = NULL;
	char *work = pathf("%s/work", xdir);
	char *fs = pathf("%s/fs", xdir);
	rm_tree(work);
	write_file(fs, "kept", "kept", 4);
	open_sn(f);
	check_consistent(f);
	assert_true(exists(work));
	assert_int_equal(count_entries(fs), 1);

	/* the restored extract snapshot commits what its fs/ holds */
	MUST(sn_commit(f->sn, "default/2/sha256:p3", extract, NULL, 0, &err_));
	const char *three[] = { "default/2/sha256:p1", "default/2/sha256:p2",
				"default/2/sha256:p3" };
	check_chain(f, three, 3);
	check_consistent(f);

	for (size_t k = 0; k < EL_ARRAY_SIZE(population); k++)
		sn_mounts_free(&before[k]);
	free(xdir);
	free(xtmp);
	free(vdir);
	free(lower);
	free(work);
	free(fs);
}

/* ---- Usage ---- */

static void test_usage(void **state)
{
	struct fx *f = *state;
	struct sn_mounts m = { 0 };
	uint64_t size, inodes;
	struct stat st;

	/* active: the blocks its rwlayer.img really uses */
	MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, "ctr", NULL, NULL, 0, &m, &err_));
	sn_mounts_free(&m);
	char *img = sfile(f, "ctr", LAYOUT_RWLAYER);
	MUST(sn_usage(f->sn, "ctr", &size, &inodes, &err_));
	assert_int_equal(stat(img, &st), 0);
	assert_int_equal(size, (uint64_t)st.st_blocks * 512);
	assert_true(size > 0 && size < DEFAULT_SIZE);
	/* grows with what is written into it */
	int fd = open(img, O_WRONLY | O_CLOEXEC);
	char block[4096];
	memset(block, 0x5a, sizeof(block));
	for (int k = 0; k < 256; k++)
		assert_int_equal(pwrite(fd, block, sizeof(block), (off_t)(32u << 20) + k * 4096), 4096);
	fsync(fd);
	close(fd);
	uint64_t size2;
	MUST(sn_usage(f->sn, "ctr", &size2, &inodes, &err_));
	assert_true(size2 >= size + (1u << 20));
	free(img);

	/* extract in progress: what is in fs/ */
	MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, "ns/1/extract-1 sha256:u", NULL, NULL, 0, &m, &err_));
	sn_mounts_free(&m);
	MUST(sn_usage(f->sn, "ns/1/extract-1 sha256:u", &size, &inodes, &err_));
	assert_int_equal(size, 0);
	assert_int_equal(inodes, 0);
	char *fs = sfile(f, "ns/1/extract-1 sha256:u", "fs");
	char big[100000];
	memset(big, 1, sizeof(big));
	mkdir_rel(fs, "d");
	write_file(fs, "d/big", big, sizeof(big));
	write_file(fs, "small", "s", 1);
	MUST(sn_usage(f->sn, "ns/1/extract-1 sha256:u", &size, &inodes, &err_));
	assert_int_equal(inodes, 3);
	assert_true(size >= sizeof(big));
	free(fs);

	/* committed: its layer's size and inode count */
	MUST(sn_commit(f->sn, "default/2/sha256:u", "ns/1/extract-1 sha256:u", NULL, 0, &err_));
	char *layer = sfile(f, "default/2/sha256:u", LAYOUT_LAYER);
	MUST(sn_usage(f->sn, "default/2/sha256:u", &size, &inodes, &err_));
	assert_int_equal(stat(layer, &st), 0);
	assert_int_equal(size, (uint64_t)st.st_size);
	assert_int_equal(inodes, 4); /* /, d, d/big, small */
	free(layer);

	/* committed onto a parent: its layer, and the chain's fsmeta and VMDK
	 * kept beside it */
	MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, "ns/1/extract-2 sha256:w", "default/2/sha256:u", NULL,
			0, &m, &err_));
	sn_mounts_free(&m);
	char *fs2 = sfile(f, "ns/1/extract-2 sha256:w", "fs");
	write_file(fs2, "top", "t", 1);
	free(fs2);
	MUST(sn_commit(f->sn, "default/2/sha256:w", "ns/1/extract-2 sha256:w", NULL, 0, &err_));
	MUST(sn_usage(f->sn, "default/2/sha256:w", &size, &inodes, &err_));
	uint64_t want = 0;
	const char *files[] = { LAYOUT_LAYER, LAYOUT_FSMETA, LAYOUT_VMDK };
	for (size_t k = 0; k < 3; k++) {
		char *p = sfile(f, "default/2/sha256:w", files[k]);
		assert_int_equal(stat(p, &st), 0);
		want += (uint64_t)st.st_size;
		free(p);
	}
	assert_int_equal(size, want);
	assert_int_equal(inodes, 2); /* /, top */

	/* a view: nothing of its own */
	MUST(sn_prepare(f->sn, SNAP_KIND_VIEW, "v", "default/2/sha256:u", NULL, 0, &m, &err_));
	sn_mounts_free(&m);
	MUST(sn_usage(f->sn, "v", &size, &inodes, &err_));
	assert_int_equal(size, 0);
	assert_int_equal(inodes, 0);
}

/* ---- Update: containerd's label semantics, passed through ---- */

static const char *label_of(const struct snap_info *i, const char *k)
{
	for (size_t j = 0; j < i->n_labels; j++)
		if (!strcmp(i->labels[j].key, k))
			return i->labels[j].value;
	return NULL;
}

static void test_update(void **state)
{
	struct fx *f = *state;
	struct sn_mounts m = { 0 };
	struct snap_label l0[] = { { "a", "1" }, { "b", "2" } };
	struct snap_info i = { 0 }, out = { 0 };

	make_layer(f, "default/2/sha256:base", NULL, NULL, (void *)"base");
	MUST(sn_prepare(f->sn, SNAP_KIND_VIEW, "v", "default/2/sha256:base", l0, 2, &m, &err_));
	sn_mounts_free(&m);
	MUST(sn_stat(f->sn, "v", &i, &err_));
	int64_t created = i.created_ns, updated = i.updated_ns;
	snap_info_free(&i);

	/* labels.<k> present: set it; the others stay */
	struct snap_label l1[] = { { "a", "10" }, { "c", "ignored" } };
	struct snap_info in = { .key = (char *)"v", .labels = l1, .n_labels = 2 };
	const char *p1[] = { "labels.a" };
	MUST(sn_update(f->sn, &in, p1, 1, &out, &err_));
	assert_string_equal(out.key, "v");
	assert_int_equal(out.kind, SNAP_KIND_VIEW);
	assert_string_equal(out.parent, "default/2/sha256:base");
	assert_int_equal(out.n_labels, 2);
	assert_string_equal(label_of(&out, "a"), "10");
	assert_string_equal(label_of(&out, "b"), "2");
	assert_null(label_of(&out, "c"));
	assert_int_equal(out.created_ns, created);
	assert_true(out.updated_ns >= updated);
	snap_info_free(&out);

	/* labels.<k> absent from the labels: delete it */
	struct snap_info in2 = { .key = (char *)"v" };
	const char *p2[] = { "labels.b", "labels.nonexistent" };
	MUST(sn_update(f->sn, &in2, p2, 2, &out, &err_));
	assert_int_equal(out.n_labels, 1);
	assert_string_equal(label_of(&out, "a"), "10");
	snap_info_free(&out);

	/* an empty mask: replace them all */
	struct snap_label l3[] = { { "x", "1" }, { "containerd.io/gc.root", "2023" } };
	struct snap_info in3 = { .key = (char *)"v", .labels = l3, .n_labels = 2 };
	MUST(sn_update(f->sn, &in3, NULL, 0, &out, &err_));
	assert_int_equal(out.n_labels, 2);
	assert_null(label_of(&out, "a"));
	assert_string_equal(label_of(&out, "containerd.io/gc.root"), "2023");
	snap_info_free(&out);

	/* "labels": the same */
	struct snap_label l4[] = { { "y", "1" } };
	struct snap_info in4 = { .key = (char *)"v", .labels = l4, .n_labels = 1 };
	const char *p4[] = { "labels" };
	MUST(sn_update(f->sn, &in4, p4, 1, &out, &err_));
	assert_int_equal(out.n_labels, 1);
	assert_string_equal(label_of(&out, "y"), "1");
	snap_info_free(&out);

	/* other fields cannot be updated */
	const char *p5[] = { "parent" };
	FAILS(-EINVAL, sn_update(f->sn, &in4, p5, 1, &out, &err_));
	const char *p6[] = { "name" };
	FAILS(-EINVAL, sn_update(f->sn, &in4, p6, 1, &out, &err_));

	/* persisted, and visible to Stat; committed snapshots too */
	MUST(sn_stat(f->sn, "v", &i, &err_));
	assert_int_equal(i.n_labels, 1);
	assert_string_equal(label_of(&i, "y"), "1");
	snap_info_free(&i);
	struct snap_info in6 = { .key = (char *)"default/2/sha256:base", .labels = l4, .n_labels = 1 };
	MUST(sn_update(f->sn, &in6, NULL, 0, &out, &err_));
	assert_int_equal(out.kind, SNAP_KIND_COMMITTED);
	snap_info_free(&out);
	reopen(f);
	MUST(sn_stat(f->sn, "default/2/sha256:base", &i, &err_));
	assert_string_equal(label_of(&i, "y"), "1");
	snap_info_free(&i);
}

/* ---- Walk (List) ---- */

static int walk_count(const struct snap_info *info, void *ud)
{
	size_t *n = ud;
	(*n)++;
	return 0;
}

static void test_walk(void **state)
{
	struct fx *f = *state;
	size_t n = 0;

	make_population(f);
	MUST(sn_walk(f->sn, walk_count, &n, &err_));
	assert_int_equal(n, EL_ARRAY_SIZE(population));
}

/* ---- --set-immutable ---- */

static bool immutable_supported(const char *dir)
{
	char *p = pathf("%s/.probe", dir);
	int fd = open(p, O_CREAT | O_RDWR | O_CLOEXEC, 0644), flags;
	bool ok = false;

	if (fd >= 0 && ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
		flags |= FS_IMMUTABLE_FL;
		ok = ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
		flags &= ~FS_IMMUTABLE_FL;
		ioctl(fd, FS_IOC_SETFLAGS, &flags);
	}
	if (fd >= 0)
		close(fd);
	unlink(p);
	free(p);
	return ok;
}

static bool is_immutable(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), flags = 0;
	if (fd < 0)
		fail_msg("open %s: %s", path, strerror(errno));
	assert_int_equal(ioctl(fd, FS_IOC_GETFLAGS, &flags), 0);
	close(fd);
	return flags & FS_IMMUTABLE_FL;
}

static void test_set_immutable(void **state)
{
	struct fx *f = *state;
	struct sn_mounts m = { 0 };
	const char *l1 = "default/2/sha256:i1", *l2 = "default/2/sha256:i2";

	if (!immutable_supported(f->root))
		skip();
	f->cfg.set_immutable = true;
	reopen(f);

	make_layer(f, l1, NULL, NULL, (void *)"one");
	make_layer(f, l2, l1, NULL, (void *)"two");
	char *i1 = sfile(f, l1, LAYOUT_LAYER), *i2 = sfile(f, l2, LAYOUT_LAYER);
	char *fsmeta = sfile(f, l2, LAYOUT_FSMETA), *vmdk = sfile(f, l2, LAYOUT_VMDK);
	/* the view waits for the chain's merge */
	MUST(sn_prepare(f->sn, SNAP_KIND_VIEW, "v", l2, NULL, 0, &m, &err_));
	sn_mounts_free(&m);
	assert_true(is_immutable(i1));
	assert_true(is_immutable(i2));
	assert_true(is_immutable(fsmeta));
	assert_true(is_immutable(vmdk));
	/* really immutable */
	assert_int_equal(unlink(i1), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(open(i1, O_WRONLY | O_CLOEXEC), -1);

	/* a commit that fails after the layer was made (the name is taken):
	 * the active one is still removable */
	MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, "ns/1/extract-9 sha256:z", l2, NULL, 0, &m, &err_));
	sn_mounts_free(&m);
	char *zfs = sfile(f, "ns/1/extract-9 sha256:z", "fs");
	write_file(zfs, "z", "z", 1);
	free(zfs);
	FAILS(-EEXIST, sn_commit(f->sn, l1, "ns/1/extract-9 sha256:z", NULL, 0, &err_));
	char *zdir = sdir(f, "ns/1/extract-9 sha256:z");
	MUST(sn_remove(f->sn, "ns/1/extract-9 sha256:z", &err_));
	assert_false(exists(zdir));
	free(zdir);

	/* Remove still works, child first */
	char *d1 = sdir(f, l1), *d2 = sdir(f, l2);
	MUST(sn_remove(f->sn, "v", &err_));
	MUST(sn_remove(f->sn, l2, &err_));
	assert_false(exists(d2));
	MUST(sn_remove(f->sn, l1, &err_));
	assert_false(exists(d1));
	assert_int_equal(count_snapshot_dirs(f), 0);

	/* and so do Cleanup and the start-up sweep of immutable leftovers */
	make_layer(f, l1, NULL, NULL, (void *)"one");
	free(d1);
	d1 = sdir(f, l1);
	char *junk = pathf("%s/snapshots/.trash-1", f->root);
	char *cmd = pathf("cp -a '%s' '%s'", d1, junk);
	assert_true(run_ok(cmd));
	free(cmd);
	char *jl = pathf("%s/" LAYOUT_LAYER, junk);
	int fd = open(jl, O_RDONLY | O_CLOEXEC), flags = FS_IMMUTABLE_FL;
	assert_true(fd >= 0);
	assert_int_equal(ioctl(fd, FS_IOC_SETFLAGS, &flags), 0);
	close(fd);
	struct el_error err;
	el_error_clear(&err);
	int removed = sn_cleanup(f->sn, &err);
	bool left = exists(junk);

	free(jl);
	free(junk);
	free(d1);
	free(d2);
	free(i1);
	free(i2);
	free(fsmeta);
	free(vmdk);
	assert_int_equal(removed, 1);
	assert_false(left);
}

/* ---- Mounts must not wait for an unrelated Commit's conversion ---- */

static double mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct committer {
	struct snapshotter *sn;
	const char *name, *key;
	double start, end;
	int r;
	char msg[600];
	atomic_bool done;
};

static void *committer_main(void *p)
{
	struct committer *c = p;
	struct el_error err;
	el_error_clear(&err);
	c->start = mono_ms();
	c->r = sn_commit(c->sn, c->name, c->key, NULL, 0, &err);
	c->end = mono_ms();
	snprintf(c->msg, sizeof(c->msg), "%s", err.msg);
	atomic_store(&c->done, true);
	return NULL;
}

/* containerd calls Mounts (ctr run, CRI's container start) while it unpacks
 * other images: the mounts of a chain whose fsmeta exists already must come
 * back at once, not after someone else's layer conversion (docs/vm-runtime-contract.md: fsmeta
 * is made at Commit, so a Mounts has nothing to wait for). */
static void test_mounts_during_commit(void **state)
{
	struct fx *f = *state;
	struct sn_mounts m = { 0 };
	const char *l1 = "default/2/sha256:b1", *l2 = "default/2/sha256:b2";
	const char *key = "default/9/extract-9 sha256:big";

	make_layer(f, l1, NULL, NULL, (void *)"one");
	make_layer(f, l2, l1, NULL, (void *)"two");
	MUST(sn_prepare(f->sn, SNAP_KIND_VIEW, "ctr-view", l2, NULL, 0, &m, &err_));
	sn_mounts_free(&m);

	/* a layer that takes a while to convert: many small files */
	MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, key, NULL, NULL, 0, &m, &err_));
	sn_mounts_free(&m);
	char *fs = sfile(f, key, "fs");
	for (int d = 0; d < 200; d++) {
		char dn[32];
		snprintf(dn, sizeof(dn), "d%d", d);
		mkdir_rel(fs, dn);
		char *dp = pathf("%s/%s", fs, dn);
		for (int k = 0; k < 300; k++) {
			char fn[32];
			snprintf(fn, sizeof(fn), "f%d", k);
			write_file(dp, fn, "", 0);
		}
		free(dp);
	}
	free(fs);

	struct committer c = { .sn = f->sn, .name = "default/9/sha256:big", .key = key };
	char *layer = sfile(f, key, LAYOUT_LAYER);
	pthread_t t;
	double worst = 0, converted = 0;
	unsigned calls = 0;
	assert_int_equal(pthread_create(&t, NULL, committer_main, &c), 0);
	while (!atomic_load(&c.done)) {
		double t0 = mono_ms();
		MUST(sn_mounts(f->sn, "ctr-view", &m, &err_));
		double dt = mono_ms() - t0;
		sn_mounts_free(&m);
		worst = EL_MAX(worst, dt);
		calls++;
		/* the conversion ends when layer.erofs is published */
		if (!converted && exists(layer))
			converted = mono_ms();
		usleep(2000);
	}
	pthread_join(t, NULL);
	if (c.r < 0)
		fail_msg("commit: %s", c.msg);
	double conv = (converted ? converted : c.end) - c.start;
	print_message("conversion took about %.0f ms (commit %.0f ms); %u Mounts meanwhile, the "
		      "slowest %.1f ms\n",
		      conv, c.end - c.start, calls, worst);
	free(layer);
	if (conv < 100)
		skip(); /* too fast here to tell */
	if (worst > 50 && worst > conv / 2)
		fail_msg("Mounts of an unrelated, already merged chain waited %.0f ms behind a "
			 "%.0f ms conversion (convert_lock is held for the whole conversion, and "
			 "ensure_fsmeta takes it even when fsmeta.erofs exists)",
			 worst, conv);
}

/* ---- concurrency: many clients at once (containerd calls in parallel) ---- */

struct worker {
	struct snapshotter *sn;
	const char *parent;
	int id;
	char error[600];
};

static void *worker_main(void *p)
{
	struct worker *w = p;
	for (int k = 0; k < 40 && !w->error[0]; k++) {
		char view[64], key[64], name[64], top_view[64];
		struct sn_mounts m = { 0 };
		struct snap_info i = { 0 };
		struct el_error err;
		int r;

		snprintf(view, sizeof(view), "w%d/view-%d", w->id, k);
		snprintf(key, sizeof(key), "w%d/%d/extract-%d sha256:x", w->id, k, k);
		snprintf(name, sizeof(name), "w%d/%d/sha256:x", w->id, k);
		snprintf(top_view, sizeof(top_view), "w%d/top-view-%d", w->id, k);
		el_error_clear(&err);
		r = sn_prepare(w->sn, SNAP_KIND_VIEW, view, w->parent, NULL, 0, &m, &err);
		sn_mounts_free(&m);
		if (r == 0)
			r = sn_stat(w->sn, view, &i, &err);
		snap_info_free(&i);
		if (r == 0)
			r = sn_mounts(w->sn, view, &m, &err);
		sn_mounts_free(&m);
		if (r == 0)
			r = sn_prepare(w->sn, SNAP_KIND_ACTIVE, key, w->parent, NULL, 0, &m, &err);
		sn_mounts_free(&m);
		if (r == 0)
			r = sn_commit(w->sn, name, key, NULL, 0, &err);
		/* the merged chain, as a view on the new layer shows it */
		if (r == 0)
			r = sn_prepare(w->sn, SNAP_KIND_VIEW, top_view, name, NULL, 0, &m, &err);
		if (r == 0 && (m.n != 1 || strstr(m.v[0].source, LAYOUT_FSMETA) == NULL)) {
			snprintf(w->error, sizeof(w->error), "%s: unexpected mounts", name);
			sn_mounts_free(&m);
			break;
		}
		sn_mounts_free(&m);
		if (r == 0)
			r = sn_remove(w->sn, top_view, &err);
		if (r == 0)
			r = sn_remove(w->sn, view, &err);
		if (r == 0)
			r = sn_remove(w->sn, name, &err);
		if (r < 0)
			snprintf(w->error, sizeof(w->error), "iteration %d: %s (%s)", k, strerror(-r),
				 err.msg);
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	struct fx *f = *state;
	enum { N = 8 };
	struct worker w[N];
	pthread_t t[N];

	make_layer(f, "default/2/sha256:base", NULL, NULL, (void *)"base");
	for (int k = 0; k < N; k++) {
		w[k] = (struct worker){ .sn = f->sn, .parent = "default/2/sha256:base", .id = k };
		assert_int_equal(pthread_create(&t[k], NULL, worker_main, &w[k]), 0);
	}
	for (int k = 0; k < N; k++)
		pthread_join(t[k], NULL);
	for (int k = 0; k < N; k++)
		if (w[k].error[0])
			fail_msg("worker %d: %s", k, w[k].error);
	size_t n = 0;
	MUST(sn_walk(f->sn, walk_count, &n, &err_));
	assert_int_equal(n, 1);
	assert_int_equal(count_snapshot_dirs(f), 1);
}

/* ---- group commit ---- */

struct hook {
	const char *point; /* where to act */
	int nth;	   /* on the nth time there (1 = first) */
	int seen;
	enum { HOOK_SLEEP, HOOK_KILL, HOOK_BLOCK } action;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool reached, released;
};

static void hook_fn(const char *point, void *ud)
{
	struct hook *h = ud;

	if (strcmp(point, h->point) != 0)
		return;
	pthread_mutex_lock(&h->lock);
	bool act = ++h->seen == h->nth;
	pthread_mutex_unlock(&h->lock);
	if (!act)
		return;
	switch (h->action) {
	case HOOK_SLEEP:
		/* the batch stays open while the other callers queue */
		usleep(100 * 1000);
		break;
	case HOOK_KILL:
		/* a crash: no cleanup, no flush, no unwinding */
		raise(SIGKILL);
		break;
	case HOOK_BLOCK:
		pthread_mutex_lock(&h->lock);
		h->reached = true;
		pthread_cond_broadcast(&h->cond);
		while (!h->released)
			pthread_cond_wait(&h->cond, &h->lock);
		pthread_mutex_unlock(&h->lock);
		break;
	}
}

static void hook_init(struct hook *h, const char *point, int nth, int action)
{
	*h = (struct hook){ .point = point, .nth = nth, .action = action };
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
}

static void hook_wait_reached(struct hook *h)
{
	pthread_mutex_lock(&h->lock);
	while (!h->reached)
		pthread_cond_wait(&h->cond, &h->lock);
	pthread_mutex_unlock(&h->lock);
}

static void hook_release(struct hook *h)
{
	pthread_mutex_lock(&h->lock);
	h->released = true;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

/* Every record has its directory with what its kind needs, and every entry
 * of snapshots/ is the directory of a record: what a crash must never
 * break. Returns the number of records. */
struct consistency {
	struct fx *f;
	size_t n, n_dirs; /* records, and those that own a directory */
	char problem[512];
};

static int consistency_one(const struct snap_info *info, void *ud)
{
	struct consistency *c = ud;
	char *dir = pathf("%s/snapshots/%" PRIu64, c->f->root, info->id);
	const char *need[4] = { LAYOUT_MARKER, NULL, NULL, NULL };
	bool extract = sn_is_extract_key(info->key);

	c->n++;
	if (info->kind == SNAP_KIND_VIEW && info->parent[0]) {
		/* its mounts are its parents' files: it owns no directory */
		if (exists(dir) && !c->problem[0])
			snprintf(c->problem, sizeof(c->problem), "%s (view on %s) has a directory",
				 info->key, info->parent);
		free(dir);
		return 0;
	}
	c->n_dirs++;
	if (info->kind == SNAP_KIND_COMMITTED)
		need[1] = LAYOUT_LAYER;
	else if (info->kind == SNAP_KIND_ACTIVE && extract)
		need[1] = "fs", need[2] = "work", need[3] = "lower";
	else if (info->kind == SNAP_KIND_ACTIVE)
		need[1] = LAYOUT_RWLAYER;
	else if (!info->parent[0])
		need[1] = "lower";
	for (size_t k = 0; k < EL_ARRAY_SIZE(need) && need[k]; k++) {
		char *p = pathf("%s/%s", dir, need[k]);
		if (!exists(p) && !c->problem[0])
			snprintf(c->problem, sizeof(c->problem), "%s (%s, id %" PRIu64 ") lacks %s",
				 info->key, snap_kind_to_string(info->kind), info->id, need[k]);
		free(p);
	}
	if (info->kind == SNAP_KIND_COMMITTED) {
		char *p = pathf("%s/fs", dir);
		if (exists(p) && !c->problem[0])
			snprintf(c->problem, sizeof(c->problem), "%s is committed but keeps fs/",
				 info->key);
		free(p);
	}
	free(dir);
	return 0;
}

static size_t check_consistent(struct fx *f)
{
	struct consistency c = { .f = f };
	MUST(sn_walk(f->sn, consistency_one, &c, &err_));
	if (c.problem[0])
		fail_msg("inconsistent: %s", c.problem);
	char *sd = pathf("%s/snapshots", f->root);
	DIR *d = opendir(sd);
	struct dirent *de;
	size_t n = 0;
	assert_non_null(d);
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			fail_msg("leftover %s/%s", sd, de->d_name);
		n++;
	}
	closedir(d);
	free(sd);
	if (n != c.n_dirs)
		fail_msg("%zu snapshot directories for %zu snapshots that own one", n, c.n_dirs);
	return c.n;
}

enum { GC_THREADS = 12 };

struct gc_worker {
	struct snapshotter *sn;
	pthread_barrier_t *start;
	int id;
	int r_own, r_dup, r_orphan, r_gone, r_busy, r_commit;
	char err_own[600], err_orphan[600], err_busy[600];
};

static void *gc_main(void *p)
{
	struct gc_worker *w = p;
	struct sn_mounts m = { 0 };
	struct el_error err;
	char own[32], orphan[32], gone[32], key[64], name[32];

	snprintf(own, sizeof(own), "gc-%d", w->id);
	snprintf(orphan, sizeof(orphan), "orphan-%d", w->id);
	snprintf(gone, sizeof(gone), "never-%d", w->id);
	snprintf(key, sizeof(key), "gc/%d/extract-%d sha256:g", w->id, w->id);
	snprintf(name, sizeof(name), "gc-c-%d", w->id);
	pthread_barrier_wait(w->start);
	/* each in its own thread's sequence, all threads at once: batches mix
	 * successes and failures */
	switch (w->id % 6) {
	case 0:
		el_error_clear(&err);
		w->r_dup = sn_prepare(w->sn, SNAP_KIND_VIEW, "dup", "base-c", NULL, 0, &m, &err);
		sn_mounts_free(&m);
		break;
	case 1:
		el_error_clear(&err);
		w->r_orphan = sn_prepare(w->sn, SNAP_KIND_VIEW, orphan, "missing", NULL, 0, &m, &err);
		snprintf(w->err_orphan, sizeof(w->err_orphan), "%s", err.msg);
		sn_mounts_free(&m);
		break;
	case 2:
		el_error_clear(&err);
		w->r_gone = sn_remove(w->sn, gone, &err);
		break;
	case 3:
		el_error_clear(&err);
		w->r_busy = sn_remove(w->sn, "base-c", &err);
		snprintf(w->err_busy, sizeof(w->err_busy), "%s", err.msg);
		break;
	case 4:
		el_error_clear(&err);
		w->r_dup = sn_prepare(w->sn, SNAP_KIND_ACTIVE, "dup", NULL, NULL, 0, &m, &err);
		sn_mounts_free(&m);
		break;
	case 5:
		el_error_clear(&err);
		w->r_commit = sn_prepare(w->sn, SNAP_KIND_ACTIVE, key, "base-c", NULL, 0, &m, &err);
		sn_mounts_free(&m);
		if (w->r_commit == 0)
			w->r_commit = sn_commit(w->sn, name, key, NULL, 0, &err);
		break;
	}
	el_error_clear(&err);
	w->r_own = sn_prepare(w->sn, SNAP_KIND_VIEW, own, "base-c", NULL, 0, &m, &err);
	snprintf(w->err_own, sizeof(w->err_own), "%s", err.msg);
	sn_mounts_free(&m);
	return NULL;
}

/* Concurrent writers share transactions; the ones that fail (a key taken, a
 * missing parent, a missing key, a parent with children) fail alone, with
 * their own message, and every other write lands with its directory. */
static void test_group_commit_failures(void **state)
{
	struct fx *f = *state;
	struct gc_worker w[GC_THREADS];
	pthread_t t[GC_THREADS];
	pthread_barrier_t start;
	struct hook h;
	struct sn_mounts m = { 0 };
	uint64_t ops0, batches0, max0, ops, batches, max;

	make_layer(f, "base-c", NULL, NULL, (void *)"base");
	MUST(sn_prepare(f->sn, SNAP_KIND_VIEW, "anchor", "base-c", NULL, 0, &m, &err_));
	sn_mounts_free(&m);
	/* the first batch stays open a while, so that the others pile up */
	hook_init(&h, "batch:applied", 1, HOOK_SLEEP);
	sn_set_fault_hook(f->sn, hook_fn, &h);
	sn_group_commit_stats(f->sn, &ops0, &batches0, &max0);
	assert_int_equal(pthread_barrier_init(&start, NULL, GC_THREADS), 0);
	for (int k = 0; k < GC_THREADS; k++) {
		w[k] = (struct gc_worker){ .sn = f->sn, .start = &start, .id = k };
		assert_int_equal(pthread_create(&t[k], NULL, gc_main, &w[k]), 0);
	}
	for (int k = 0; k < GC_THREADS; k++)
		pthread_join(t[k], NULL);
	pthread_barrier_destroy(&start);
	sn_set_fault_hook(f->sn, NULL, NULL);
	sn_group_commit_stats(f->sn, &ops, &batches, &max);
	print_message("group commit: %" PRIu64 " operations in %" PRIu64
		      " transactions, at most %" PRIu64 " in one\n",
		      ops - ops0, batches - batches0, max);
	assert_true(max >= 4);

	int dup_ok = 0, dup_exists = 0;
	for (int k = 0; k < GC_THREADS; k++) {
		if (w[k].r_own)
			fail_msg("worker %d: its own view failed: %s", k, w[k].err_own);
		switch (k % 6) {
		case 0:
		case 4:
			dup_ok += w[k].r_dup == 0;
			dup_exists += w[k].r_dup == -EEXIST;
			break;
		case 1:
			assert_int_equal(w[k].r_orphan, -ENOENT);
			assert_non_null(strstr(w[k].err_orphan, "missing"));
			break;
		case 2:
			assert_int_equal(w[k].r_gone, -ENOENT);
			break;
		case 3:
			assert_int_equal(w[k].r_busy, -EBUSY);
			assert_non_null(strstr(w[k].err_busy, "children"));
			break;
		case 5:
			assert_int_equal(w[k].r_commit, 0);
			break;
		}
	}
	assert_int_equal(dup_ok, 1);
	assert_int_equal(dup_exists, GC_THREADS / 6 * 2 - 1);
	/* base-c, anchor, dup, every gc-<k>, the two committed layers */
	assert_int_equal(check_consistent(f), 3 + GC_THREADS + GC_THREADS / 6);
	for (int k = 0; k < GC_THREADS; k++) {
		char key[32];
		snprintf(key, sizeof(key), "orphan-%d", k);
		struct snap_info i = { 0 };
		FAILS(-ENOENT, sn_stat(f->sn, key, &i, &err_));
	}
	/* the refusals staged nothing, and nothing is left behind */
	reopen(f);
	assert_int_equal(check_consistent(f), 3 + GC_THREADS + GC_THREADS / 6);
}

/* Cleanup judges directories under the writer lock but deletes them after:
 * while it deletes, writers go on. A directory being staged for a Prepare
 * in flight is not debris. */
struct cleanup_thread {
	struct snapshotter *sn;
	int r;
	char msg[600];
};

static void *cleanup_thread_main(void *p)
{
	struct cleanup_thread *c = p;
	struct el_error err;
	el_error_clear(&err);
	c->r = sn_cleanup(c->sn, &err);
	snprintf(c->msg, sizeof(c->msg), "%s", err.msg);
	return NULL;
}

struct prepare_thread {
	struct snapshotter *sn;
	enum snap_kind kind;
	const char *key;
	int r;
	char msg[600];
};

static void *prepare_thread_main(void *p)
{
	struct prepare_thread *c = p;
	struct sn_mounts m = { 0 };
	struct el_error err;
	el_error_clear(&err);
	c->r = sn_prepare(c->sn, c->kind, c->key, NULL, NULL, 0, &m, &err);
	snprintf(c->msg, sizeof(c->msg), "%s", err.msg);
	sn_mounts_free(&m);
	return NULL;
}

struct remove_thread {
	struct snapshotter *sn;
	const char *key;
	int r;
};

static void *remove_thread_main(void *p)
{
	struct remove_thread *c = p;
	struct el_error err;
	el_error_clear(&err);
	c->r = sn_remove(c->sn, c->key, &err);
	return NULL;
}

/* Cleanup's sweep runs in a batch of its own: queued behind a Remove, it
 * must not judge by that Remove's deletion before it is committed (a kill
 * between the two would leave the record without its directory). A View's
 * batch is held open after its writes while a Remove, then a Cleanup,
 * queue: three batches follow, never the Remove and the sweep in one. */
static void test_cleanup_batch_alone(void **state)
{
	struct fx *f = *state;
	struct hook h;
	pthread_t tp, tr, tc;
	uint64_t ops0, batches0, max0, ops, batches, max;

	make_population(f);
	hook_init(&h, "batch:applied", 1, HOOK_BLOCK);
	sn_set_fault_hook(f->sn, hook_fn, &h);
	struct prepare_thread p = { .sn = f->sn, .kind = SNAP_KIND_VIEW, .key = "holder" };
	assert_int_equal(pthread_create(&tp, NULL, prepare_thread_main, &p), 0);
	hook_wait_reached(&h);
	sn_group_commit_stats(f->sn, &ops0, &batches0, &max0);
	struct remove_thread r = { .sn = f->sn, .key = "pview0" };
	assert_int_equal(pthread_create(&tr, NULL, remove_thread_main, &r), 0);
	usleep(200 * 1000);
	struct cleanup_thread c = { .sn = f->sn };
	assert_int_equal(pthread_create(&tc, NULL, cleanup_thread_main, &c), 0);
	usleep(200 * 1000);
	hook_release(&h);
	pthread_join(tp, NULL);
	pthread_join(tr, NULL);
	pthread_join(tc, NULL);
	sn_set_fault_hook(f->sn, NULL, NULL);
	if (p.r < 0)
		fail_msg("view: %s", p.msg);
	assert_int_equal(r.r, 0);
	if (c.r < 0)
		fail_msg("cleanup: %s", c.msg);
	sn_group_commit_stats(f->sn, &ops, &batches, &max);
	assert_int_equal(ops - ops0, 3);
	assert_int_equal(batches - batches0, 3);
	check_consistent(f);
}

static void test_cleanup_outside_lock(void **state)
{
	struct fx *f = *state;
	struct sn_mounts m = { 0 };
	struct hook h;
	pthread_t t;

	make_population(f);
	make_junk_dir(f, ".tmp-5");
	make_junk_dir(f, "99999");

	/* stopped after its sweep, before deleting: a writer goes through */
	hook_init(&h, "cleanup:collected", 1, HOOK_BLOCK);
	sn_set_fault_hook(f->sn, hook_fn, &h);
	struct cleanup_thread c = { .sn = f->sn };
	assert_int_equal(pthread_create(&t, NULL, cleanup_thread_main, &c), 0);
	hook_wait_reached(&h);
	assert_true(junk_exists(f, ".trash-.tmp-5"));
	assert_true(junk_exists(f, ".trash-99999"));
	assert_false(junk_exists(f, "99999"));
	MUST(sn_prepare(f->sn, SNAP_KIND_VIEW, "meanwhile", NULL, NULL, 0, &m, &err_));
	sn_mounts_free(&m);
	MUST(sn_remove(f->sn, "pview0", &err_));
	hook_release(&h);
	pthread_join(t, NULL);
	sn_set_fault_hook(f->sn, NULL, NULL);
	if (c.r < 0)
		fail_msg("cleanup: %s", c.msg);
	assert_true(c.r >= 2);
	assert_false(junk_exists(f, ".trash-.tmp-5"));
	assert_false(junk_exists(f, ".trash-99999"));
	check_consistent(f);

	/* a Prepare stopped with its directory staged: Cleanup leaves it */
	hook_init(&h, "prepare:staged", 1, HOOK_BLOCK);
	sn_set_fault_hook(f->sn, hook_fn, &h);
	struct prepare_thread p = { .sn = f->sn, .kind = SNAP_KIND_ACTIVE, .key = "staged" };
	assert_int_equal(pthread_create(&t, NULL, prepare_thread_main, &p), 0);
	hook_wait_reached(&h);
	struct el_error err;
	el_error_clear(&err);
	assert_int_equal(sn_cleanup(f->sn, &err), 0);
	hook_release(&h);
	pthread_join(t, NULL);
	sn_set_fault_hook(f->sn, NULL, NULL);
	if (p.r < 0)
		fail_msg("prepare with a Cleanup in between: %s", p.msg);
	char *img = sfile(f, "staged", LAYOUT_RWLAYER);
	assert_true(exists(img));
	free(img);
	check_consistent(f);
}

/* Debris under the very id the store hands out next (an orphan ahead of
 * the counter, left by hand or by a crash before any sweep): the new
 * snapshot gets a clean directory, the debris goes at the next Cleanup. */
static void test_prepare_over_orphan(void **state)
{
	struct fx *f = *state;
	struct sn_mounts m = { 0 };
	char name[32];

	MUST(sn_prepare(f->sn, SNAP_KIND_VIEW, "first", NULL, NULL, 0, &m, &err_));
	sn_mounts_free(&m);
	snprintf(name, sizeof(name), "%" PRIu64, sid(f, "first") + 1);
	make_junk_dir(f, name);
	MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, "ns/1/extract-1 sha256:o", NULL, NULL, 0, &m, &err_));
	sn_mounts_free(&m);
	assert_int_equal(sid(f, "ns/1/extract-1 sha256:o"), sid(f, "first") + 1);
	char *junk = sfile(f, "ns/1/extract-1 sha256:o", "fs/deep");
	char *layer = sfile(f, "ns/1/extract-1 sha256:o", LAYOUT_LAYER);
	assert_false(exists(junk));
	assert_false(exists(layer));
	free(junk);
	free(layer);
	struct el_error err;
	el_error_clear(&err);
	assert_int_equal(sn_cleanup(f->sn, &err), 1);
	check_consistent(f);
}

/* The parent is removed and made again while a Prepare on it has its
 * directory made under an id reserved before: parents must have smaller
 * ids, so the Prepare makes its directory again under a new id. */
struct prepare_on {
	struct snapshotter *sn;
	const char *key, *parent;
	int r;
	char msg[600];
};

static void *prepare_on_main(void *p)
{
	struct prepare_on *c = p;
	struct sn_mounts m = { 0 };
	struct el_error err;
	el_error_clear(&err);
	c->r = sn_prepare(c->sn, SNAP_KIND_ACTIVE, c->key, c->parent, NULL, 0, &m, &err);
	snprintf(c->msg, sizeof(c->msg), "%s", err.msg);
	sn_mounts_free(&m);
	return NULL;
}

static void test_prepare_parent_renewed(void **state)
{
	struct fx *f = *state;
	struct hook h;
	pthread_t t;

	make_layer(f, "default/2/sha256:p", NULL, NULL, (void *)"p1");
	hook_init(&h, "prepare:staged", 1, HOOK_BLOCK);
	sn_set_fault_hook(f->sn, hook_fn, &h);
	struct prepare_on c = { .sn = f->sn, .key = "ns/1/extract-9 sha256:child",
				.parent = "default/2/sha256:p" };
	assert_int_equal(pthread_create(&t, NULL, prepare_on_main, &c), 0);
	hook_wait_reached(&h);
	uint64_t old = sid(f, "default/2/sha256:p");
	MUST(sn_remove(f->sn, "default/2/sha256:p", &err_));
	make_layer(f, "default/2/sha256:p", NULL, NULL, (void *)"p2");
	uint64_t renewed = sid(f, "default/2/sha256:p");
	assert_true(renewed > old);
	hook_release(&h);
	pthread_join(t, NULL);
	sn_set_fault_hook(f->sn, NULL, NULL);
	if (c.r < 0)
		fail_msg("prepare on a renewed parent: %s", c.msg);
	assert_true(sid(f, c.key) > renewed);
	struct snap_info i = { 0 };
	MUST(sn_stat(f->sn, c.key, &i, &err_));
	assert_string_equal(i.parent, "default/2/sha256:p");
	snap_info_free(&i);
	check_consistent(f);
	reopen(f);
	check_consistent(f);
}

/* ---- crash points: kill -9 at each step of the write paths ---- */

enum crash_op {
	CRASH_VIEW,
	CRASH_VIEW0, /* a view without a parent: the one with a directory */
	CRASH_ACTIVE,
	CRASH_EXTRACT,
	CRASH_COMMIT,
	CRASH_REMOVE,
	CRASH_CLEANUP,
};

/* In a child: open the root, run op with the kill armed; exit 3 when the
 * point was never reached. */
static void crash_child(struct fx *f, enum crash_op op, const char *point, int nth)
{
	struct snapshotter *sn = NULL;
	struct sn_mounts m = { 0 };
	struct el_error err;
	struct hook h;
	int r = 0;

	el_error_clear(&err);
	if (sn_open(&f->cfg, &sn, &err) < 0)
		_exit(4);
	hook_init(&h, point, nth, HOOK_KILL);
	sn_set_fault_hook(sn, hook_fn, &h);
	switch (op) {
	case CRASH_VIEW:
		r = sn_prepare(sn, SNAP_KIND_VIEW, "crash", "default/2/sha256:p1", NULL, 0, &m, &err);
		break;
	case CRASH_VIEW0:
		r = sn_prepare(sn, SNAP_KIND_VIEW, "crash", NULL, NULL, 0, &m, &err);
		break;
	case CRASH_ACTIVE:
		r = sn_prepare(sn, SNAP_KIND_ACTIVE, "crash", NULL, NULL, 0, &m, &err);
		break;
	case CRASH_EXTRACT:
		r = sn_prepare(sn, SNAP_KIND_ACTIVE, "ns/9/extract-9 sha256:crash",
			       "default/2/sha256:p2", NULL, 0, &m, &err);
		break;
	case CRASH_COMMIT:
		r = sn_commit(sn, "default/2/sha256:p3", "ns/1/extract-77 sha256:p3", NULL, 0, &err);
		break;
	case CRASH_REMOVE:
		r = sn_remove(sn, "pview", &err);
		break;
	case CRASH_CLEANUP:
		r = sn_cleanup(sn, &err);
		break;
	}
	(void)r;
	_exit(3);
}

static void test_crash_points(void **state)
{
	struct fx *f = *state;
	static const struct {
		enum crash_op op;
		const char *point;
		const char *key;  /* to look for afterwards */
		bool exists;	  /* whether it should */
	} cases[] = {
		{ CRASH_VIEW, "batch:applied", "crash", false },
		{ CRASH_VIEW, "batch:committed", "crash", true },
		{ CRASH_VIEW0, "prepare:staged", "crash", false },
		{ CRASH_VIEW0, "batch:applied", "crash", false },
		{ CRASH_VIEW0, "batch:committed", "crash", true },
		{ CRASH_ACTIVE, "prepare:staged", "crash", false },
		{ CRASH_ACTIVE, "batch:applied", "crash", false },
		{ CRASH_ACTIVE, "batch:committed", "crash", true },
		{ CRASH_EXTRACT, "prepare:staged", "ns/9/extract-9 sha256:crash", false },
		{ CRASH_EXTRACT, "batch:applied", "ns/9/extract-9 sha256:crash", false },
		{ CRASH_EXTRACT, "batch:committed", "ns/9/extract-9 sha256:crash", true },
		{ CRASH_COMMIT, "commit:layer", "ns/1/extract-77 sha256:p3", true },
		{ CRASH_COMMIT, "batch:applied", "ns/1/extract-77 sha256:p3", true },
		{ CRASH_COMMIT, "batch:committed", "default/2/sha256:p3", true },
		{ CRASH_REMOVE, "batch:applied", "pview", true },
		{ CRASH_REMOVE, "batch:committed", "pview", false },
		{ CRASH_REMOVE, "remove:committed", "pview", false },
		{ CRASH_CLEANUP, "batch:applied", NULL, false },
		{ CRASH_CLEANUP, "cleanup:collected", NULL, false },
	};

	for (size_t k = 0; k < EL_ARRAY_SIZE(cases); k++) {
		/* a fresh population each time, with debris for Cleanup */
		if (k) {
			sn_close(f->sn);
			f->sn = NULL;
			rm_tree(f->root);
			assert_int_equal(mkdir(f->root, 0700), 0);
			open_sn(f);
		}
		make_population(f);
		sn_close(f->sn);
		f->sn = NULL;
		make_junk_dir(f, ".tmp-5");
		make_junk_dir(f, "888");

		fflush(NULL);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			crash_child(f, cases[k].op, cases[k].point, 1);
		int status = 0;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
			fail_msg("case %zu (%s): the child was not killed at its point (status %#x)",
				 k, cases[k].point, status);
		/* the restart sweeps; what the records say holds */
		open_sn_after_kill(f);
		size_t n = check_consistent(f);
		print_message("killed at %s (case %zu): %zu snapshots, consistent\n",
			      cases[k].point, k, n);
		if (cases[k].key) {
			struct snap_info i = { 0 };
			struct el_error err;
			el_error_clear(&err);
			int r = sn_stat(f->sn, cases[k].key, &i, &err);
			snap_info_free(&i);
			if ((r == 0) != cases[k].exists)
				fail_msg("case %zu (%s): %s %s", k, cases[k].point, cases[k].key,
					 r == 0 ? "exists" : "is gone");
		}
		/* and it keeps working: the interrupted operation again */
		struct sn_mounts m = { 0 };
		struct el_error err;
		el_error_clear(&err);
		switch (cases[k].op) {
		case CRASH_VIEW:
		case CRASH_VIEW0:
		case CRASH_ACTIVE:
			if (!cases[k].exists)
				MUST(sn_prepare(f->sn, cases[k].op == CRASH_ACTIVE ? SNAP_KIND_ACTIVE
										   : SNAP_KIND_VIEW,
						"crash", NULL, NULL, 0, &m, &err_));
			MUST(sn_remove(f->sn, "crash", &err_));
			break;
		case CRASH_EXTRACT:
			if (!cases[k].exists)
				MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, cases[k].key,
						"default/2/sha256:p2", NULL, 0, &m, &err_));
			break;
		case CRASH_COMMIT:
			if (strcmp(cases[k].key, "default/2/sha256:p3") != 0)
				MUST(sn_commit(f->sn, "default/2/sha256:p3", cases[k].key, NULL, 0,
					       &err_));
			break;
		case CRASH_REMOVE:
			if (cases[k].exists)
				MUST(sn_remove(f->sn, "pview", &err_));
			break;
		case CRASH_CLEANUP:
			assert_int_equal(sn_cleanup(f->sn, &err), 0);
			break;
		}
		sn_mounts_free(&m);
		check_consistent(f);
	}
}

/* kill -9 at random moments while 8 threads prepare, commit and remove:
 * after each restart the records and the directories agree. */
struct crash_load {
	struct snapshotter *sn;
	int id;
};

static void *crash_load_main(void *p)
{
	struct crash_load *c = p;
	for (int k = 0;; k++) {
		char view[64], key[64], name[64], act[64];
		struct sn_mounts m = { 0 };
		struct el_error err;
		snprintf(view, sizeof(view), "cl%d/view-%d", c->id, k);
		snprintf(act, sizeof(act), "cl%d/act-%d", c->id, k);
		snprintf(key, sizeof(key), "cl%d/%d/extract-%d sha256:x", c->id, k, k);
		snprintf(name, sizeof(name), "cl%d/%d/sha256:x", c->id, k);
		el_error_clear(&err);
		sn_prepare(c->sn, SNAP_KIND_VIEW, view, "default/2/sha256:p2", NULL, 0, &m, &err);
		sn_mounts_free(&m);
		sn_prepare(c->sn, SNAP_KIND_ACTIVE, key, "default/2/sha256:p1", NULL, 0, &m, &err);
		sn_mounts_free(&m);
		sn_commit(c->sn, name, key, NULL, 0, &err);
		if (k % 4 == 0) {
			sn_prepare(c->sn, SNAP_KIND_ACTIVE, act, name, NULL, 0, &m, &err);
			sn_mounts_free(&m);
			sn_remove(c->sn, act, &err);
		}
		if (k % 2)
			sn_remove(c->sn, name, &err);
		sn_remove(c->sn, view, &err);
		if (k % 16 == 0)
			sn_cleanup(c->sn, &err);
	}
	return NULL;
}

static void test_crash_random(void **state)
{
	struct fx *f = *state;
	unsigned seed = (unsigned)getpid();

	make_population(f);
	for (int round = 0; round < 6; round++) {
		sn_close(f->sn);
		f->sn = NULL;
		fflush(NULL);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct snapshotter *sn = NULL;
			struct el_error err;
			struct crash_load c[8];
			pthread_t t;
			el_error_clear(&err);
			if (sn_open(&f->cfg, &sn, &err) < 0)
				_exit(4);
			for (int k = 0; k < 8; k++) {
				c[k] = (struct crash_load){ .sn = sn, .id = round * 8 + k };
				pthread_create(&t, NULL, crash_load_main, &c[k]);
			}
			pause();
			_exit(0);
		}
		usleep(100000 + rand_r(&seed) % 400000);
		kill(pid, SIGKILL);
		int status = 0;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		open_sn_after_kill(f);
		size_t n = check_consistent(f);
		print_message("round %d: %zu snapshots after kill -9, consistent\n", round, n);
		check_population(f, NULL);
	}
}

/* rwlayer.img from the template: the shape mkfs.ext4 gives, a UUID of its
 * own each time, and a clean e2fsck (superblock backups too, for a size
 * with several block groups). */
/* The UUID of the superblock dumpe2fs reads (extra: which copy); NULL if
 * that copy's checksum does not match. */
static char *uuid_of(const char *img, const char *extra)
{
	char *cmd = pathf("dumpe2fs -h %s '%s' 2>&1", extra, img);
	FILE *p = popen(cmd, "r");
	char line[512], *uuid = NULL;
	bool bad = false;
	assert_non_null(p);
	while (fgets(line, sizeof(line), p)) {
		bad |= strstr(line, "does not match") != NULL;
		if (strncmp(line, "Filesystem UUID:", 16) == 0) {
			char *v = line + 16;
			v += strspn(v, " ");
			v[strcspn(v, "\n")] = 0;
			uuid = strdup(v);
		}
	}
	pclose(p);
	free(cmd);
	if (bad) {
		free(uuid);
		uuid = NULL;
	}
	return uuid;
}

static void test_rwlayer_template(void **state)
{
	struct fx *f = *state;
	static const uint64_t sizes[] = { DEFAULT_SIZE, UINT64_C(1) << 30 };
	struct sn_mounts m = { 0 };

	if (!run_ok("command -v e2fsck >/dev/null && command -v dumpe2fs >/dev/null")) {
		print_message("skip: no e2fsck or dumpe2fs\n");
		skip();
	}
	for (size_t s = 0; s < EL_ARRAY_SIZE(sizes); s++) {
		char *uuids[3] = { 0 };
		if (s) {
			sn_close(f->sn);
			f->sn = NULL;
			f->cfg.default_size = sizes[s];
			open_sn(f);
		}
		for (int k = 0; k < 3; k++) {
			char key[32];
			struct stat st;
			snprintf(key, sizeof(key), "rw-%zu-%d", s, k);
			MUST(sn_prepare(f->sn, SNAP_KIND_ACTIVE, key, NULL, NULL, 0, &m, &err_));
			sn_mounts_free(&m);
			char *img = sfile(f, key, LAYOUT_RWLAYER);
			assert_int_equal(stat(img, &st), 0);
			assert_int_equal((uint64_t)st.st_size, sizes[s]);
			assert_true((uint64_t)st.st_blocks * 512 < 4u << 20);
			char *cmd = pathf("e2fsck -fn '%s' >/dev/null 2>&1", img);
			if (!run_ok(cmd))
				fail_msg("e2fsck -fn %s fails", img);
			free(cmd);
			uuids[k] = uuid_of(img, "");
			assert_non_null(uuids[k]);
			for (int j = 0; j < k; j++)
				assert_string_not_equal(uuids[j], uuids[k]);
			/* the backup superblocks of 1 GiB (groups 1, 3, 5, 7 of 32768
			 * blocks): the same UUID, each with a valid checksum */
			for (unsigned g = 1; sizes[s] == UINT64_C(1) << 30 && g < 8; g += 2) {
				char opt[80];
				snprintf(opt, sizeof(opt), "-o superblock=%u -o blocksize=4096",
					 g * 32768);
				char *b = uuid_of(img, opt);
				if (!b || strcmp(b, uuids[k]) != 0)
					fail_msg("%s: backup superblock of group %u: %s, primary %s",
						 img, g, b ? b : "bad checksum", uuids[k]);
				free(b);
			}
			free(img);
		}
		for (int k = 0; k < 3; k++)
			free(uuids[k]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_extract_keys),
		cmocka_unit_test_setup_teardown(test_prepare_active, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prepare_extract, setup, teardown),
		cmocka_unit_test_setup_teardown(test_view_no_parent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_view_with_parent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_extract, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_labels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_3, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_onto_parent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_unmergeable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_merge_deferred, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_active, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_in_use, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_conversion_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cleanup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cleanup_orphan_ahead_of_counter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cleanup_concurrent_prepare, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_lost_dirs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update, setup, teardown),
		cmocka_unit_test_setup_teardown(test_walk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_immutable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mounts_during_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cleanup_outside_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cleanup_batch_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prepare_over_orphan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prepare_parent_renewed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_points, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_random, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rwlayer_template, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
