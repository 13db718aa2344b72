/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The directory walker (lib/dir/dirconv.c) at the library level: results,
 * error and warning reporting, cancellation, overlay-upper xattr rules and
 * reproducibility. Images go to a memfd and are read back with the
 * project's reader; the kernel's view is tests/dir/run-dir.py's job.
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
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include "erofs-layer/dirconv.h"
#include "erofs-layer/image.h"

struct fixture {
	char root[64];
	int dfd;
	int out;
	struct el_error err;
	char warnings[4096];
	unsigned nwarn;
};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 ? -1 : 0;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->root, sizeof(f->root), "/tmp/test-dirconv.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	f->dfd = open(f->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(f->dfd >= 0);
	f->out = memfd_create("img", MFD_CLOEXEC);
	assert_true(f->out >= 0);
	el_error_clear(&f->err);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	close(f->dfd);
	close(f->out);
	nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void put(struct fixture *f, const char *path, const char *data)
{
	int fd = openat(f->dfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	close(fd);
}

static void on_warn(void *ud, const char *what, uint64_t off, const char *msg)
{
	struct fixture *f = ud;
	size_t used = strlen(f->warnings);

	assert_string_equal(what, "directory");
	assert_true(off == EL_NO_OFFSET);
	snprintf(f->warnings + used, sizeof(f->warnings) - used, "%s\n", msg);
	f->nwarn++;
}

static struct el_image *open_image(struct fixture *f)
{
	struct el_image *img = NULL;
	struct el_error err;

	el_error_clear(&err);
	assert_int_equal(el_image_open_fd(f->out, &img, &err), 0);
	struct el_check_stats cs;
	assert_int_equal(el_image_check(img, &cs, &err), 0);
	return img;
}

static void lookup(struct el_image *img, const char *path, struct el_image_inode *ino)
{
	struct el_error err;

	el_error_clear(&err);
	if (el_image_lookup(img, path, ino, &err) < 0)
		fail_msg("lookup %s: %s", path, err.msg);
}

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
		snprintf(x->value, sizeof(x->value), "%.*s", (int)xa->value_len,
			 (const char *)xa->value);
	}
	return 0;
}

static bool has_xattr(struct el_image *img, const char *path, const char *name, char *value)
{
	struct el_image_inode ino;
	struct el_error err;
	struct xa_find x = { .name = name };

	lookup(img, path, &ino);
	el_error_clear(&err);
	assert_int_equal(el_image_xattrs(img, &ino, xa_cb, &x, &err), 0);
	if (x.found && value)
		strcpy(value, x.value);
	return x.found;
}

static bool can_trusted(struct fixture *f)
{
	if (fsetxattr(f->dfd, "trusted.probe", "1", 1, 0) < 0)
		return false;
	fremovexattr(f->dfd, "trusted.probe");
	return true;
}

/* Results, plain-mode names, hard links, socket warning. */
static void test_plain(void **state)
{
	struct fixture *f = *state;
	struct el_dir_opts o = { .warn = on_warn, .warn_ud = f };
	struct el_convert_result res;
	uint8_t zero[32] = { 0 };

	assert_int_equal(mkdirat(f->dfd, "sub", 0755), 0);
	put(f, "sub/.wh.name", "not a whiteout");
	put(f, "sub/file", "0123456789");
	assert_int_equal(linkat(f->dfd, "sub/file", f->dfd, "a-link", 0), 0);
	assert_int_equal(symlinkat("sub/file", f->dfd, "sl"), 0);

	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/sock", f->root);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(s);

	assert_int_equal(el_convert_dir(f->dfd, f->out, &o, &res, &f->err), 0);
	assert_memory_equal(res.diffid, zero, 32);
	assert_int_equal(res.compression, EL_COMPRESSION_NONE);
	assert_int_equal(res.entries, 6); /* ., a-link, sl, sub, sub/.wh.name, sub/file */
	assert_int_equal(res.tar_bytes, 10 + 14);
	assert_int_equal(res.image.inodes, 5);
	assert_int_equal(f->nwarn, 1);
	assert_non_null(strstr(f->warnings, "sock: skipped: a socket"));

	struct el_image *img = open_image(f);
	struct el_image_inode a, b;
	lookup(img, "sub/.wh.name", &a);
	assert_true(S_ISREG(a.mode));
	/* breadth first: the top-level name is the first, both are one inode */
	lookup(img, "a-link", &a);
	lookup(img, "sub/file", &b);
	assert_int_equal(a.nid, b.nid);
	assert_int_equal(a.nlink, 2);
	char buf[16] = { 0 };
	struct el_error err;
	assert_int_equal(el_image_pread(img, &b, buf, sizeof(buf), 0, &err), 10);
	assert_string_equal(buf, "0123456789");
	el_image_close(img);
}

/* The same tree twice: the same bytes; with a uuid: that uuid. */
static void test_reproducible(void **state)
{
	struct fixture *f = *state;
	struct el_convert_result res;

	for (int i = 0; i < 50; i++) {
		char name[32];
		snprintf(name, sizeof(name), "f%02d", (i * 37) % 50);
		put(f, name, name);
	}
	assert_int_equal(el_convert_dir(f->dfd, f->out, NULL, &res, &f->err), 0);
	int out2 = memfd_create("img2", MFD_CLOEXEC);
	assert_true(out2 >= 0);
	assert_int_equal(el_convert_dir(f->dfd, out2, NULL, &res, &f->err), 0);
	off_t n1 = lseek(f->out, 0, SEEK_END), n2 = lseek(out2, 0, SEEK_END);
	assert_int_equal(n1, n2);
	void *m1 = mmap(NULL, (size_t)n1, PROT_READ, MAP_SHARED, f->out, 0);
	void *m2 = mmap(NULL, (size_t)n2, PROT_READ, MAP_SHARED, out2, 0);
	assert_true(m1 != MAP_FAILED && m2 != MAP_FAILED);
	assert_memory_equal(m1, m2, (size_t)n1);
	munmap(m1, (size_t)n1);
	munmap(m2, (size_t)n2);
	close(out2);

	struct el_dir_opts o = { .has_uuid = true };
	memset(o.uuid, 0xab, 16);
	assert_int_equal(ftruncate(f->out, 0), 0);
	assert_int_equal(el_convert_dir(f->dfd, f->out, &o, &res, &f->err), 0);
	struct el_image *img = open_image(f);
	assert_memory_equal(el_image_info(img)->uuid, o.uuid, 16);
	el_image_close(img);
}

static void test_errors(void **state)
{
	struct fixture *f = *state;
	struct el_convert_result res;
	atomic_bool cancel = true;
	struct el_dir_opts o = { .cancel = &cancel };

	put(f, "file", "x");
	int fd = openat(f->dfd, "file", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(el_convert_dir(fd, f->out, NULL, &res, &f->err), -ENOTDIR);
	close(fd);
	assert_string_equal(f->err.what, "directory");
	assert_true(f->err.offset == EL_NO_OFFSET);
	assert_string_equal(f->err.msg, ".: not a directory");

	el_error_clear(&f->err);
	assert_int_equal(el_convert_dir(f->dfd, f->out, &o, &res, &f->err), -ECANCELED);

	/* the path variant leaves nothing behind */
	char missing[128], out[128];
	snprintf(missing, sizeof(missing), "%s/missing", f->root);
	snprintf(out, sizeof(out), "%s/out.erofs", f->root);
	el_error_clear(&f->err);
	assert_int_equal(el_convert_dir_path(missing, out, NULL, &res, &f->err), -ENOENT);
	el_error_clear(&f->err);
	cancel = true;
	assert_int_equal(el_convert_dir_path(f->root, out, &o, &res, &f->err), -ECANCELED);
	assert_int_equal(faccessat(AT_FDCWD, out, F_OK, 0), -1);
	cancel = false;
	el_error_clear(&f->err);
	assert_int_equal(el_convert_dir_path(f->root, out, &o, &res, &f->err), 0);
	assert_int_equal(faccessat(AT_FDCWD, out, F_OK, 0), 0);
	assert_int_equal(res.entries, 2); /* the output (an O_TMPFILE) was not there yet */
}

/* overlay_upper: whiteouts, opaque, dropped bookkeeping, refused redirects. */
static void test_overlay_upper(void **state)
{
	struct fixture *f = *state;
	struct el_dir_opts o = { .overlay_upper = true };
	struct el_convert_result res;
	char v[64];

	if (!can_trusted(f) || mknodat(f->dfd, "gone", S_IFCHR, makedev(0, 0)) < 0)
		skip();
	assert_int_equal(mkdirat(f->dfd, "opq", 0755), 0);
	assert_int_equal(mkdirat(f->dfd, "dir", 0755), 0);
	put(f, "dir/file", "f");
	int d = openat(f->dfd, "opq", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(fsetxattr(d, "trusted.overlay.opaque", "y", 1, 0), 0);
	close(d);
	d = openat(f->dfd, "dir", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(fsetxattr(d, "trusted.overlay.impure", "y", 1, 0), 0);
	assert_int_equal(fsetxattr(d, "trusted.overlay.overlay.x", "esc", 3, 0), 0);
	assert_int_equal(fsetxattr(d, "user.u", "u", 1, 0), 0);

	assert_int_equal(el_convert_dir(f->dfd, f->out, &o, &res, &f->err), 0);
	struct el_image *img = open_image(f);
	struct el_image_inode ino;
	lookup(img, "gone", &ino);
	assert_true(S_ISCHR(ino.mode) && ino.rdev == 0);
	assert_true(has_xattr(img, "opq", "trusted.overlay.opaque", v));
	assert_string_equal(v, "y");
	assert_true(has_xattr(img, "", "trusted.overlay.origin", v));
	assert_string_equal(v, "");
	assert_false(has_xattr(img, "dir", "trusted.overlay.impure", NULL));
	assert_true(has_xattr(img, "dir", "trusted.overlay.overlay.x", v));
	assert_string_equal(v, "esc");
	assert_true(has_xattr(img, "dir", "user.u", NULL));
	el_image_close(img);

	/* a plain tree keeps the upper's bookkeeping */
	o.overlay_upper = false;
	assert_int_equal(ftruncate(f->out, 0), 0);
	assert_int_equal(el_convert_dir(f->dfd, f->out, &o, &res, &f->err), 0);
	img = open_image(f);
	assert_true(has_xattr(img, "dir", "trusted.overlay.impure", NULL));
	el_image_close(img);

	o.overlay_upper = true;
	assert_int_equal(fsetxattr(d, "trusted.overlay.redirect", "/x", 2, 0), 0);
	close(d);
	assert_int_equal(ftruncate(f->out, 0), 0);
	assert_int_equal(el_convert_dir(f->dfd, f->out, &o, &res, &f->err), -EOPNOTSUPP);
	assert_string_equal(f->err.what, "directory");
	assert_non_null(strstr(f->err.msg, "dir: overlay redirect xattr"));
}

/* Holes are not read: only the data regions count. */
static void test_sparse(void **state)
{
	struct fixture *f = *state;
	struct el_convert_result res;

	int fd = openat(f->dfd, "sparse", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "data", 4, 100 << 20), 4);
	assert_int_equal(ftruncate(fd, 200 << 20), 0);
	close(fd);
	assert_int_equal(el_convert_dir(f->dfd, f->out, NULL, &res, &f->err), 0);
	assert_true(res.tar_bytes <= 1 << 20);
	struct el_image *img = open_image(f);
	struct el_image_inode ino;
	struct el_error err;
	char buf[8] = { 0 };
	lookup(img, "sparse", &ino);
	assert_int_equal(ino.size, 200 << 20);
	assert_int_equal(el_image_pread(img, &ino, buf, 6, (100 << 20) - 1, &err), 6);
	assert_memory_equal(buf, "\0data\0", 6);
	el_image_close(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_plain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reproducible, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlay_upper, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sparse, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
