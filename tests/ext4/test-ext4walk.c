/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ext4 walker (lib/ext4) at the library level: entry order and fields,
 * hard links, whiteouts, xattrs (ACLs in getxattr form, no system.data),
 * data extents and reads (holes, inline data, odd offsets), cancellation,
 * the visitor's errors, refusals, e2fsck statuses, and el_convert_ext4
 * leaving nothing behind on error. Images are made with mkfs.ext4 -d (and
 * retouched with debugfs); exits 77 where e2fsprogs is missing. The
 * kernel's view of the converted images is tests/ext4/run-ext4.py's job.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include "erofs-layer/ext4.h"
#include "erofs-layer/upper-tar.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static char root[64];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 ? -1 : 0;
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		fail_msg("command failed: %s", cmd);
}

static void put(const char *rel, const void *data, size_t len, mode_t mode)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	assert_true(fd >= 0);
	if (len)
		assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	assert_int_equal(chmod(p, mode), 0);
}

static const char *at(const char *rel)
{
	static char p[4][1024];
	static int i;
	i = (i + 1) % 4;
	snprintf(p[i], sizeof(p[i]), "%s/%s", root, rel);
	return p[i];
}

/* ---- recording visitor ---- */

struct rec {
	char path[256];
	char link[256];
	enum el_entry_type type;
	uint32_t mode, uid, gid, dev_major, dev_minor;
	int64_t mtime;
	uint32_t nsec;
	uint64_t size;
	char xattrs[512]; /* "name=hexvalue;" */
	struct el_ext4_extent ext[8];
	size_t next;
	uint8_t data[64]; /* the first bytes */
};

struct log {
	struct rec r[64];
	size_t n;
	atomic_bool *cancel_after_first;
	int fail_at; /* visitor returns -EPERM at this entry (1-based), 0: never */
	char warnings[1024];
};

static void on_warn(void *ud, const char *what, uint64_t off, const char *msg)
{
	struct log *l = ud;
	size_t used = strlen(l->warnings);

	assert_string_equal(what, "ext4");
	assert_true(off == EL_NO_OFFSET);
	snprintf(l->warnings + used, sizeof(l->warnings) - used, "%s\n", msg);
}

static int record(void *ud, const struct el_entry *e, struct el_ext4_file *f,
		  struct el_error *err)
{
	struct log *l = ud;

	assert_true(l->n < 64);
	struct rec *r = &l->r[l->n++];
	memset(r, 0, sizeof(*r));
	snprintf(r->path, sizeof(r->path), "%s", e->path);
	if (e->link)
		snprintf(r->link, sizeof(r->link), "%s", e->link);
	r->type = e->type;
	r->mode = e->mode;
	r->uid = e->uid;
	r->gid = e->gid;
	r->dev_major = e->dev_major;
	r->dev_minor = e->dev_minor;
	r->mtime = e->mtime;
	r->nsec = e->mtime_nsec;
	r->size = e->size;
	assert_true(e->offset == EL_NO_OFFSET);
	assert_true((f != NULL) == (e->type == EL_ENTRY_REG));
	for (size_t i = 0; i < e->nxattrs; i++) {
		size_t used = strlen(r->xattrs);
		used += (size_t)snprintf(r->xattrs + used, sizeof(r->xattrs) - used, "%s=",
					 e->xattrs[i].name);
		for (size_t k = 0; k < e->xattrs[i].value_len && used + 3 < sizeof(r->xattrs); k++)
			used += (size_t)snprintf(r->xattrs + used, sizeof(r->xattrs) - used, "%02x",
						 e->xattrs[i].value[k]);
		snprintf(r->xattrs + used, sizeof(r->xattrs) - used, ";");
	}
	if (f) {
		const struct el_ext4_extent *ext;
		size_t n;
		assert_int_equal(el_ext4_file_extents(f, &ext, &n, err), 0);
		r->next = n < 8 ? n : 8;
		memcpy(r->ext, ext, r->next * sizeof(*ext));
		int64_t got = el_ext4_file_read(f, r->data, sizeof(r->data), 0, err);
		assert_true(got >= 0);
		assert_int_equal((uint64_t)got, e->size < sizeof(r->data) ? e->size : sizeof(r->data));
	}
	if (l->cancel_after_first)
		atomic_store(l->cancel_after_first, true);
	if (l->fail_at && (int)l->n == l->fail_at)
		return -EPERM;
	return 0;
}

static const struct rec *find(const struct log *l, const char *path)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->r[i].path, path) == 0)
			return &l->r[i];
	fail_msg("no entry %s", path);
	return &l->r[0]; /* not reached */
}

static int walk(const char *image, const char *subdir, struct log *l, atomic_bool *cancel,
		struct el_error *err)
{
	struct el_ext4 *fs = NULL;
	struct el_ext4_walk_opts o = { .warn = on_warn, .warn_ud = l, .cancel = cancel };
	int r;

	el_error_clear(err);
	r = el_ext4_open(image, &fs, err);
	if (r < 0)
		return r;
	r = el_ext4_walk(fs, subdir, &o, record, l, err);
	el_ext4_close(fs);
	return r;
}

/* ---- the fixture tree ---- */

static char image[600], inl_image[600];

/* upper/: names in an order readdir does not give, every type */
static void build(void)
{
	static uint8_t big[200000];

	sh("mkdir -p %s/t/upper/a/deep %s/t/upper/dir2 %s/t/work", root, root, root);
	put("t/upper/b", "bee", 3, 0644);
	put("t/upper/A", "", 0, 04755);
	put("t/upper/a b", "space", 5, 0600);
	put("t/upper/a/z", "zed", 3, 0644);
	put("t/upper/a/deep/y", "why", 3, 0644);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7 + 1);
	put("t/upper/dir2/big", big, sizeof(big), 0644);
	/* sparse: data at [8192, 8192+5000) and [1 MiB, 1 MiB + 3), size 3 MiB */
	put("t/upper/sparse", "", 0, 0644);
	int fd = open(at("t/upper/sparse"), O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, big, 5000, 8192), 5000);
	assert_int_equal(pwrite(fd, "end", 3, 1 << 20), 3);
	assert_int_equal(ftruncate(fd, 3 << 20), 0);
	close(fd);
	assert_int_equal(link(at("t/upper/a/z"), at("t/upper/dir2/z-link")), 0);
	assert_int_equal(symlink("a/z", at("t/upper/fast")), 0);
	char target[200];
	memset(target, 'L', sizeof(target) - 1);
	target[sizeof(target) - 1] = 0;
	assert_int_equal(symlink(target, at("t/upper/slow")), 0);
	assert_int_equal(mknod(at("t/upper/null"), S_IFCHR | 0666, makedev(1, 3)), 0);
	assert_int_equal(mknod(at("t/upper/big-dev"), S_IFBLK | 0600, makedev(4000, 300000)), 0);
	assert_int_equal(mknod(at("t/upper/wh1"), S_IFCHR, makedev(0, 0)), 0);
	assert_int_equal(link(at("t/upper/wh1"), at("t/upper/wh2")), 0);
	assert_int_equal(mkfifo(at("t/upper/fifo"), 0640), 0);
	/* a socket: skipped with a warning */
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", at("t/upper/sock"));
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(s);
	assert_int_equal(lchown(at("t/upper/b"), 100000, 70000), 0);
	assert_int_equal(setxattr(at("t/upper/b"), "user.k", "v", 1, 0), 0);
	/* version 2, USER_OBJ rw, USER 1000 r, GROUP_OBJ r, MASK r, OTHER r */
	static const uint8_t acl[] = { 2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,
				       2, 0, 4, 0, 0xe8, 3, 0, 0, 4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
				       0x10, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 4, 0, 0xff, 0xff,
				       0xff, 0xff };
	assert_int_equal(setxattr(at("t/upper/b"), "system.posix_acl_access", acl, sizeof(acl), 0),
			 0);
	assert_int_equal(setxattr(at("t/upper/dir2"), "trusted.overlay.opaque", "y", 1, 0), 0);

	snprintf(image, sizeof(image), "%s/img", root);
	snprintf(inl_image, sizeof(inl_image), "%s/inl", root);
	sh("truncate -s 64M %s %s && mkfs.ext4 -q -F -b 4096 -d %s/t %s && "
	   "mkfs.ext4 -q -F -b 4096 -O inline_data -d %s/t %s",
	   image, inl_image, root, image, root, inl_image);
	/* mkfs.ext4 1.47.0 -d -O inline_data loses a sparse file's trailing
	 * hole (i_size ends at its last block): put the size back */
	sh("debugfs -w -R 'sif upper/sparse size %d' %s >/dev/null 2>&1", 3 << 20, inl_image);
	/* nanoseconds and a date past 2038 (epoch bits) */
	sh("debugfs -w -R 'sif upper/b mtime 0xf4865700' %s >/dev/null 2>&1 && "
	   "debugfs -w -R 'sif upper/b mtime_extra 0x%x' %s >/dev/null 2>&1",
	   image, (123456789u << 2) | 1, image);
}

static int group_setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/test-ext4walk.XXXXXX");
	assert_non_null(mkdtemp(root));
	build();
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* ---- tests ---- */

static void test_order(void **state)
{
	static const char *const want[] = {
		".", "A", "a", "a/deep", "a/deep/y", "a/z", "a b", "b", "big-dev", "dir2",
		"dir2/big", "dir2/z-link", "fast", "fifo", "null", "slow", "sparse", "wh1", "wh2",
	};
	static struct log l;
	struct el_error err;

	(void)state;
	memset(&l, 0, sizeof(l));
	assert_int_equal(walk(image, "upper", &l, NULL, &err), 0);
	assert_int_equal(l.n, ARRAY_SIZE(want));
	for (size_t i = 0; i < l.n; i++)
		assert_string_equal(l.r[i].path, want[i]);
	assert_string_equal(l.warnings, "sock: skipped: a socket (an image cannot carry one)\n");
	/* "/upper/" and "upper" name the same directory */
	memset(&l, 0, sizeof(l));
	assert_int_equal(walk(image, "/upper/", &l, NULL, &err), 0);
	assert_int_equal(l.n, ARRAY_SIZE(want));
}

static void test_fields(void **state)
{
	static struct log l;
	struct el_error err;

	(void)state;
	memset(&l, 0, sizeof(l));
	assert_int_equal(walk(image, "upper", &l, NULL, &err), 0);
	const struct rec *r = find(&l, ".");
	assert_int_equal(r->type, EL_ENTRY_DIR);
	r = find(&l, "A");
	assert_int_equal(r->mode, 04755);
	assert_int_equal(r->size, 0);
	r = find(&l, "b");
	assert_int_equal(r->type, EL_ENTRY_REG);
	assert_int_equal(r->uid, 100000);
	assert_int_equal(r->gid, 70000);
	assert_int_equal(r->mtime, 4102444800);
	assert_int_equal(r->nsec, 123456789);
	assert_int_equal(r->size, 3);
	assert_memory_equal(r->data, "bee", 3);
	/* the ACL as getxattr shows it: version 2, ids 0xffffffff where none */
	assert_non_null(strstr(r->xattrs, "user.k=76;"));
	assert_non_null(strstr(r->xattrs,
			       "system.posix_acl_access=0200000001000600ffffffff02000400e8030000"
			       "04000400ffffffff10000400ffffffff20000400ffffffff;"));
	r = find(&l, "fast");
	assert_int_equal(r->type, EL_ENTRY_SYMLINK);
	assert_string_equal(r->link, "a/z");
	r = find(&l, "slow");
	assert_int_equal(strlen(r->link), 199);
	assert_true(r->link[0] == 'L' && r->link[198] == 'L');
	r = find(&l, "null");
	assert_int_equal(r->type, EL_ENTRY_CHR);
	assert_int_equal(r->dev_major, 1);
	assert_int_equal(r->dev_minor, 3);
	r = find(&l, "big-dev");
	assert_int_equal(r->type, EL_ENTRY_BLK);
	assert_int_equal(r->dev_major, 4000);
	assert_int_equal(r->dev_minor, 300000);
	r = find(&l, "fifo");
	assert_int_equal(r->type, EL_ENTRY_FIFO);
	assert_int_equal(r->mode, 0640);
	r = find(&l, "dir2");
	assert_string_equal(r->xattrs, "trusted.overlay.opaque=79;");
}

static void test_links(void **state)
{
	static struct log l;
	struct el_error err;

	(void)state;
	memset(&l, 0, sizeof(l));
	assert_int_equal(walk(image, "upper", &l, NULL, &err), 0);
	/* "a/z" comes first in the walk */
	const struct rec *r = find(&l, "a/z");
	assert_int_equal(r->type, EL_ENTRY_REG);
	r = find(&l, "dir2/z-link");
	assert_int_equal(r->type, EL_ENTRY_HARDLINK);
	assert_string_equal(r->link, "a/z");
	/* whiteouts sharing an inode stay apart */
	assert_int_equal(find(&l, "wh1")->type, EL_ENTRY_CHR);
	assert_int_equal(find(&l, "wh2")->type, EL_ENTRY_CHR);
}

static void test_extents(void **state)
{
	static struct log l;
	struct el_error err;

	(void)state;
	memset(&l, 0, sizeof(l));
	assert_int_equal(walk(image, "upper", &l, NULL, &err), 0);
	const struct rec *r = find(&l, "sparse");
	assert_int_equal(r->size, 3 << 20);
	/* block granular: [8192, 16384) holds the 5000 bytes, [1 MiB, +4096) */
	assert_int_equal(r->next, 2);
	assert_int_equal(r->ext[0].off, 8192);
	assert_int_equal(r->ext[0].len, 8192);
	assert_int_equal(r->ext[1].off, 1 << 20);
	assert_int_equal(r->ext[1].len, 4096);
	r = find(&l, "dir2/big");
	assert_int_equal(r->next, 1);
	assert_int_equal(r->ext[0].len, 200000);
	assert_int_equal(r->data[5], (uint8_t)(5 * 7 + 1));
	r = find(&l, "A");
	assert_int_equal(r->next, 0);
}

/* Reads at odd offsets and lengths match the source file, holes included. */
struct reads {
	int checked;
};

static int check_reads(void *ud, const struct el_entry *e, struct el_ext4_file *f,
		       struct el_error *err)
{
	struct reads *rs = ud;
	static uint8_t got[300000], want[300000];

	if (!f)
		return 0;
	char p[512];
	snprintf(p, sizeof(p), "t/upper/%s", e->path);
	int fd = open(at(p), O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	static const uint64_t offs[] = { 0, 1, 4095, 4096, 8191, 8192, 13000, 65537, 199999,
					 1048575, 1048576, (3 << 20) - 1, 3 << 20, 5 << 20 };
	static const size_t lens[] = { 1, 7, 4096, 4097, 100000, 300000 };
	for (size_t i = 0; i < ARRAY_SIZE(offs); i++)
		for (size_t k = 0; k < ARRAY_SIZE(lens); k++) {
			uint64_t off = offs[i];
			size_t len = lens[k];
			ssize_t w = pread(fd, want, len, (off_t)off);
			assert_true(w >= 0);
			int64_t g = el_ext4_file_read(f, got, len, off, err);
			if (g != w)
				fail_msg("%s: read(%zu @ %llu) = %lld, expected %zd", e->path, len, (unsigned long long)off, (long long)g, w);
			assert_memory_equal(got, want, (size_t)w);
		}
	close(fd);
	rs->checked++;
	return 0;
}

static void test_reads(void **state)
{
	struct el_ext4 *fs = NULL;
	struct el_error err;
	struct reads rs = { 0 };

	(void)state;
	for (int pass = 0; pass < 2; pass++) {
		const char *img = pass ? inl_image : image;
		el_error_clear(&err);
		assert_int_equal(el_ext4_open(img, &fs, &err), 0);
		assert_int_equal(el_ext4_walk(fs, "upper", NULL, check_reads, &rs, &err), 0);
		el_ext4_close(fs);
	}
	assert_int_equal(rs.checked, 2 * 7); /* A, a/deep/y, a/z, a b, b, dir2/big, sparse */
}

static void test_inline(void **state)
{
	static struct log l;
	struct el_error err;
	char out[700];

	(void)state;
	memset(&l, 0, sizeof(l));
	/* the image really stores "b" inline */
	snprintf(out, sizeof(out), "debugfs -R 'stat upper/b' %s 2>/dev/null | grep -q 'Size of inline data'",
		 inl_image);
	sh("%s", out);
	assert_int_equal(walk(inl_image, "upper", &l, NULL, &err), 0);
	assert_int_equal(l.n, 19);
	const struct rec *r = find(&l, "b");
	assert_int_equal(r->next, 1);
	assert_int_equal(r->ext[0].off, 0);
	assert_int_equal(r->ext[0].len, 3);
	assert_memory_equal(r->data, "bee", 3);
	/* system.data is the inline store, never an xattr */
	for (size_t i = 0; i < l.n; i++)
		assert_null(strstr(l.r[i].xattrs, "system.data"));
	assert_non_null(strstr(r->xattrs, "user.k=76;"));
	assert_int_equal(find(&l, "a/deep/y")->type, EL_ENTRY_REG);
}

static void test_cancel_and_abort(void **state)
{
	static struct log l;
	struct el_error err;
	atomic_bool cancel = false;

	(void)state;
	memset(&l, 0, sizeof(l));
	l.cancel_after_first = &cancel;
	assert_int_equal(walk(image, "upper", &l, &cancel, &err), -ECANCELED);
	assert_int_equal(l.n, 1);
	assert_int_equal(err.code, -ECANCELED);

	memset(&l, 0, sizeof(l));
	l.fail_at = 3;
	assert_int_equal(walk(image, "upper", &l, NULL, &err), -EPERM);
	assert_int_equal(l.n, 3);
	assert_non_null(strstr(err.msg, "a: stopped"));
	assert_string_equal(err.what, "ext4");
}

static void test_refusals(void **state)
{
	static struct log l;
	struct el_error err;
	char p[700];

	(void)state;
	memset(&l, 0, sizeof(l));
	assert_int_equal(walk(image, "nope", &l, NULL, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no 'nope'"));
	assert_int_equal(walk(image, "upper/b", &l, NULL, &err), -ENOTDIR);
	assert_int_equal(walk(image, "upper/..", &l, NULL, &err), -EINVAL);
	assert_int_equal(walk(at("t/upper/b"), "", &l, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not an ext2/3/4"));
	assert_int_equal(walk(at("missing"), "", &l, NULL, &err), -ENOENT);
	/* a journal to replay: refused until e2fsck has run */
	snprintf(p, sizeof(p), "%s/rec", root);
	sh("cp %s %s && debugfs -w -R 'feature needs_recovery' %s >/dev/null 2>&1", image, p, p);
	assert_int_equal(walk(p, "upper", &l, NULL, &err), -EUCLEAN);
	assert_non_null(strstr(err.msg, "journal needs recovery"));
	el_error_clear(&err);
	int r = el_ext4_fsck(p, &err);
	assert_true(r >= 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(walk(p, "upper", &l, NULL, &err), 0);
	assert_int_equal(l.n, 19);
}

static void test_fsck(void **state)
{
	struct el_error err;
	char p[700];

	(void)state;
	el_error_clear(&err);
	assert_int_equal(el_ext4_fsck(image, &err), 0);
	/* a directory linked twice: preen refuses it */
	snprintf(p, sizeof(p), "%s/loop", root);
	sh("cp %s %s && debugfs -w -R 'link upper/a upper/dir2/a-again' %s >/dev/null 2>&1", image,
	   p, p);
	/* the walker, without fsck, stops at the second path */
	static struct log l;
	memset(&l, 0, sizeof(l));
	assert_int_equal(walk(p, "upper", &l, NULL, &err), -EUCLEAN);
	if (!strstr(err.msg, "dir2/a-again: directory already met at 'a'"))
		fail_msg("message: %s", err.msg);
	el_error_clear(&err);
	assert_int_equal(el_ext4_fsck(p, &err), -EUCLEAN);
	assert_non_null(strstr(err.msg, p));
	assert_non_null(strstr(err.msg, "status 4"));
	/* e2fsck marked it as having errors: refused from now on */
	assert_int_equal(walk(p, "upper", &l, NULL, &err), -EUCLEAN);
	assert_non_null(strstr(err.msg, "marked as having errors"));
	/* not an image at all */
	el_error_clear(&err);
	assert_true(el_ext4_fsck(at("t/upper/b"), &err) < 0);
	assert_non_null(strstr(err.msg, "t/upper/b"));
}

static int walk_limited(const char *img, const struct el_ext4_walk_opts *o, struct el_error *err)
{
	static struct log l;
	struct el_ext4 *fs = NULL;

	memset(&l, 0, sizeof(l));
	el_error_clear(err);
	int r = el_ext4_open(img, &fs, err);
	if (r == 0)
		r = el_ext4_walk(fs, "upper", o, record, &l, err);
	el_ext4_close(fs);
	return r;
}

static void expect_limit(const struct el_ext4_walk_opts *o, const char *path, const char *words)
{
	struct el_error err;
	assert_int_equal(walk_limited(image, o, &err), -E2BIG);
	if (!strstr(err.msg, path) || !strstr(err.msg, words))
		fail_msg("expected '%s' and '%s' in: %s", path, words, err.msg);
}

static int count_sink(void *ud, const void *buf, size_t len)
{
	(void)buf;
	*(uint64_t *)ud += len;
	return 0;
}

/* What a walk accepts from a guest's image: each limit, then the sparse
 * file the tar of an upper would have to spell out in full. */
static void test_limits(void **state)
{
	struct el_error err;
	char p[700];

	(void)state;
	/* the fixture is well within the defaults */
	struct el_ext4_walk_opts o = { 0 };
	assert_int_equal(walk_limited(image, &o, &err), 0);
	expect_limit(&(struct el_ext4_walk_opts){ .max_entries = 3 }, "a/deep:",
		     "more than 3 entries in the image, the limit");
	/* ".", "a", "a/deep", then "a/deep/y" is three levels down */
	expect_limit(&(struct el_ext4_walk_opts){ .max_depth = 2 }, "a/deep/y",
		     "3 directory levels deep, over the limit of 2");
	/* b: user.k and its ACL */
	expect_limit(&(struct el_ext4_walk_opts){ .max_xattrs = 1 }, "b:",
		     "2 xattrs, over the limit of 1");
	expect_limit(&(struct el_ext4_walk_opts){ .max_xattr_bytes = 16 }, "b:",
		     "over the limit of 16");
	/* sparse is 3 MiB, 5003 bytes of it data */
	expect_limit(&(struct el_ext4_walk_opts){ .max_bytes = 1 << 20 }, "sparse",
		     "the limit (holes count)");
	assert_int_equal(walk_limited(image, &(struct el_ext4_walk_opts){ .max_bytes = 4 << 20 },
				      &err), 0);

	/* the tar of an upper: a file of 256 GiB, nearly all hole, in 64 MiB */
	snprintf(p, sizeof(p), "%s/huge-sparse", root);
	sh("cp %s %s && debugfs -w -R 'sif upper/sparse size %llu' %s >/dev/null 2>&1", image, p,
	   256ull << 30, p);
	uint64_t written = 0;
	struct el_tarw_opts topts = { .write = count_sink, .write_ud = &written };
	struct el_tarw_result res;
	el_error_clear(&err);
	assert_int_equal(el_upper_tar_ext4(p, "upper", &topts, NULL, NULL, &res, &err), -E2BIG);
	if (!strstr(err.msg, "sparse") || !strstr(err.msg, "holes count"))
		fail_msg("message: %s", err.msg);
	assert_true(written < (64u << 20));
	/* the fixture itself goes through */
	written = 0;
	el_error_clear(&err);
	assert_int_equal(el_upper_tar_ext4(image, "upper", &topts, NULL, NULL, &res, &err), 0);
	assert_true(written > (3u << 20));
}

/* sha256sum of a file, for "unchanged" */
static void file_digest(const char *path, char out[65])
{
	char cmd[800];
	snprintf(cmd, sizeof(cmd), "sha256sum '%s'", path);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%64s", out), 1);
	pclose(f);
}

static void test_fsck_readonly(void **state)
{
	struct el_error err;
	char p[700], before[65], after[65];

	(void)state;
	el_error_clear(&err);
	assert_int_equal(el_ext4_fsck_readonly(image, &err), 0);
	/* a journal to replay: not replayed, the image unchanged, still refused */
	snprintf(p, sizeof(p), "%s/rec-ro", root);
	sh("cp %s %s && debugfs -w -R 'feature needs_recovery' %s >/dev/null 2>&1", image, p, p);
	file_digest(p, before);
	assert_int_equal(el_ext4_fsck_readonly(p, &err), 0);
	file_digest(p, after);
	assert_string_equal(before, after);
	static struct log l;
	memset(&l, 0, sizeof(l));
	assert_int_equal(walk(p, "upper", &l, NULL, &err), -EUCLEAN);
	assert_non_null(strstr(err.msg, "journal needs recovery"));
	/* a directory linked twice: refused with -n's words, nothing marked */
	snprintf(p, sizeof(p), "%s/loop-ro", root);
	sh("cp %s %s && debugfs -w -R 'link upper/a upper/dir2/a-again' %s >/dev/null 2>&1", image,
	   p, p);
	file_digest(p, before);
	el_error_clear(&err);
	assert_int_equal(el_ext4_fsck_readonly(p, &err), -EUCLEAN);
	if (!strstr(err.msg, "e2fsck -f -n exited with status 4") || !strstr(err.msg, "repairs nothing"))
		fail_msg("message: %s", err.msg);
	file_digest(p, after);
	assert_string_equal(before, after);
}

static void test_convert_leaves_nothing(void **state)
{
	struct el_error err;
	struct el_convert_result res;
	struct el_dir_opts opts = { .overlay_upper = true };
	char dir[600], out[700], p[700];

	(void)state;
	snprintf(dir, sizeof(dir), "%s/out", root);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(out, sizeof(out), "%s/x.erofs", dir);
	snprintf(p, sizeof(p), "%s/redirect", root);
	sh("cp %s %s && debugfs -w -R 'ea_set upper/a trusted.overlay.redirect /x' %s >/dev/null 2>&1",
	   image, p, p);
	el_error_clear(&err);
	assert_int_equal(el_convert_ext4(p, "upper", out, &opts, &res, &err), -EOPNOTSUPP);
	assert_non_null(strstr(err.msg, "a: overlay redirect xattr"));
	sh("test -z \"$(ls -A %s)\"", dir);
	/* and a good one: the result counts */
	el_error_clear(&err);
	assert_int_equal(el_convert_ext4(image, "upper", out, &opts, &res, &err), 0);
	assert_int_equal(res.entries, 19);
	/* b, a b, a/z, a/deep/y, dir2/big, and sparse's two data blocks */
	assert_int_equal(res.tar_bytes, 3 + 5 + 3 + 3 + 200000 + 8192 + 4096);
	assert_int_equal(unlink(out), 0);
}

int main(void)
{
	if (system("command -v mkfs.ext4 >/dev/null && command -v debugfs >/dev/null && "
		   "{ test -x /usr/sbin/e2fsck || test -x /sbin/e2fsck; }") != 0) {
		printf("skip: e2fsprogs (mkfs.ext4, debugfs, e2fsck) not found\n");
		return 77;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_links),
		cmocka_unit_test(test_extents),
		cmocka_unit_test(test_reads),
		cmocka_unit_test(test_inline),
		cmocka_unit_test(test_cancel_and_abort),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_fsck),
		cmocka_unit_test(test_fsck_readonly),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_convert_leaves_nothing),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
