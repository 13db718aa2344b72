/* SPDX-License-Identifier: Apache-2.0 */
/*
 * erofs-layer ls [-l] [-R] [-x] IMAGE [PATH]: lists a directory of an image in its
 * on-disk order (without . and ..), or shows one non-directory entry.
 *
 * -l prints one `ls -l`-like line per entry, fields separated by one space so
 * that scripts and golden tests can split them:
 *   MODE NLINK UID GID SIZE|MAJOR, MINOR YYYY-MM-DD HH:MM:SS[.NNNNNNNNN] NAME[ -> TARGET]
 * with the mtime in UTC. -R descends into subdirectories, depth first in
 * on-disk order, and names every entry by its full path. -x adds one line
 * per xattr after each entry, in on-disk order (shared ones first):
 *   <two spaces>NAME="VALUE"
 * where the value's bytes outside printable ASCII, '"' and '\' are written
 * as \ooo (octal). A name under an index no kernel shows (0, 7..127) is
 * printed as #INDEX:NAME.
 *
 * Exit: 0, 1 for a missing path or a system error, 2 for usage errors, 3
 * (EXIT_BADINPUT) for a corrupt or unsupported image.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "commands.h"
#include "erofs-layer/error.h"
#include "erofs-layer/image.h"
#include "common/hashtab.h"
#include "common/macro.h"
#include "common/util.h"

#define SYMLINK_MAX 4095u

EL_DEFINE_CLEANUP(struct el_image, el_image_close)

struct ls_entry {
	uint64_t nid;
	char *name;
};

struct ls_list {
	struct ls_entry *ents;
	size_t n, cap;
};

/* One directory being listed: its display path and its entries. */
struct ls_frame {
	char *path;
	struct ls_list list;
	size_t next;
};

/* Directories already descended into, so that a corrupt image with cycles
 * or directory hard links cannot make -R loop or explode. */
struct nid_set {
	struct el_hashtab tab; /* of malloc'd struct el_hnode_u64, keyed by nid */
};


struct ls_ctx {
	const char *image;
	struct el_image *img;
	bool long_fmt, recursive, xattrs;
	struct el_error err;
	struct nid_set seen;
};

static void list_free(struct ls_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->ents[i].name);
	free(l->ents);
	*l = (struct ls_list){ 0 };
}

static int exit_status(int r)
{
	switch (r) {
	case -EFSCORRUPTED:
	case -EOPNOTSUPP:
	case -EBADMSG:
		return EXIT_BADINPUT;
	default:
		return EXIT_FAILURE;
	}
}

static int fail(struct ls_ctx *ctx, int r)
{
	char buf[700];

	if (!ctx->err.code)
		el_error_set(&ctx->err, r, NULL, EL_NO_OFFSET, "%s", strerror(-r));
	fprintf(stderr, "erofs-layer ls: %s: %s\n", ctx->image,
		el_error_format(&ctx->err, buf, sizeof(buf)));
	return exit_status(ctx->err.code);
}

/* Adds nid; returns 1 if it was new, 0 if present, -ENOMEM. */
static int set_add(struct nid_set *s, uint64_t nid)
{
	struct el_hnode_u64 *d;

	if (el_hashtab_find_u64(&s->tab, nid))
		return 0;
	d = malloc(sizeof(*d));
	if (!d)
		return -ENOMEM;
	if (el_hashtab_insert_u64(&s->tab, d, nid) < 0) {
		free(d);
		return -ENOMEM;
	}
	return 1;
}

static void seen_free(struct el_hnode *n)
{
	free(el_hashtab_entry(n, struct el_hnode_u64, node));
}

static void mode_string(uint32_t mode, char s[11])
{
	static const char rwx[] = "rwxrwxrwx";

	switch (mode & S_IFMT) {
	case S_IFDIR:
		s[0] = 'd';
		break;
	case S_IFLNK:
		s[0] = 'l';
		break;
	case S_IFCHR:
		s[0] = 'c';
		break;
	case S_IFBLK:
		s[0] = 'b';
		break;
	case S_IFIFO:
		s[0] = 'p';
		break;
	case S_IFSOCK:
		s[0] = 's';
		break;
	case S_IFREG:
		s[0] = '-';
		break;
	default:
		s[0] = '?';
		break;
	}
	for (int i = 0; i < 9; i++)
		s[1 + i] = mode & (0400u >> i) ? rwx[i] : '-';
	if (mode & S_ISUID)
		s[3] = mode & S_IXUSR ? 's' : 'S';
	if (mode & S_ISGID)
		s[6] = mode & S_IXGRP ? 's' : 'S';
	if (mode & S_ISVTX)
		s[9] = mode & S_IXOTH ? 't' : 'T';
	s[10] = '\0';
}

static void time_string(int64_t sec, uint32_t nsec, char *buf, size_t len)
{
	time_t t = (time_t)sec;
	struct tm tm;
	size_t n;

	/* Times beyond what struct tm holds are shown as raw seconds. */
	if (!gmtime_r(&t, &tm) ||
	    !(n = strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm))) {
		n = (size_t)snprintf(buf, len, "@%lld", (long long)sec);
		if (n >= len)
			return;
	}
	if (nsec)
		snprintf(buf + n, len - n, ".%09u", nsec);
}

static int print_line(struct ls_ctx *ctx, const char *name, const struct el_image_inode *ino)
{
	char mode[11], when[64];
	char target[SYMLINK_MAX + 1];

	if (!ctx->long_fmt) {
		printf("%s\n", name);
		return 0;
	}
	mode_string(ino->mode, mode);
	time_string(ino->mtime, ino->mtime_nsec, when, sizeof(when));
	printf("%s %u %u %u ", mode, ino->nlink, ino->uid, ino->gid);
	if (S_ISCHR(ino->mode) || S_ISBLK(ino->mode))
		printf("%u, %u ", major(ino->rdev), minor(ino->rdev));
	else
		printf("%llu ", (unsigned long long)ino->size);
	printf("%s %s", when, name);
	if (S_ISLNK(ino->mode)) {
		ssize_t n;

		if (ino->size > SYMLINK_MAX)
			return el_error_set(&ctx->err, -EFSCORRUPTED, "image", ino->inode_off,
					    "symlink %llu has a target of %llu bytes",
					    (unsigned long long)ino->nid,
					    (unsigned long long)ino->size);
		n = el_image_pread(ctx->img, ino, target, (size_t)ino->size, 0, &ctx->err);
		if (n < 0)
			return (int)n;
		target[n] = '\0';
		printf(" -> %s", target);
	}
	putchar('\n');
	return 0;
}

static int print_xattr(void *ud, const struct el_image_xattr *xa)
{
	(void)ud;
	/* Names under an index the kernel does not know stay visible, but
	 * marked: they are stored, yet no kernel shows them. */
	if (xa->name_index < 1 || xa->name_index > 6)
		printf("  #%u:%s=\"", xa->name_index, xa->name);
	else
		printf("  %s=\"", xa->name);
	for (unsigned i = 0; i < xa->value_len; i++) {
		uint8_t b = xa->value[i];

		if (b < 0x20 || b > 0x7e || b == '"' || b == '\\')
			printf("\\%03o", b);
		else
			putchar(b);
	}
	printf("\"\n");
	return 0;
}

static int print_entry(struct ls_ctx *ctx, const char *name, const struct el_image_inode *ino)
{
	int r = print_line(ctx, name, ino);

	if (r < 0 || !ctx->xattrs)
		return r;
	return el_image_xattrs(ctx->img, ino, print_xattr, NULL, &ctx->err);
}

static int collect(void *ud, const struct el_image_dirent *de)
{
	struct ls_list *l = ud;

	if (!strcmp(de->name, ".") || !strcmp(de->name, ".."))
		return 0;
	if (el_grow((void **)&l->ents, &l->cap, l->n + 1, sizeof(*l->ents)) < 0)
		return -ENOMEM;
	l->ents[l->n].name = strdup(de->name);
	if (!l->ents[l->n].name)
		return -ENOMEM;
	l->ents[l->n].nid = de->nid;
	l->n++;
	return 0;
}

static int load_dir(struct ls_ctx *ctx, const struct el_image_inode *dir, struct ls_list *ret)
{
	struct ls_list l = { 0 };
	int r;

	r = el_image_readdir(ctx->img, dir, collect, &l, &ctx->err);
	if (r < 0) {
		list_free(&l);
		return r;
	}
	*ret = l;
	return 0;
}

static char *join(const char *dir, const char *name)
{
	char *s;

	if (asprintf(&s, "%s/%s", dir, name) < 0)
		return NULL;
	return s;
}

/* Lists directory `dir`, shown as `path`; with -R depth first, using an
 * explicit stack so that deep trees cannot exhaust the C stack. */
static int list_dir(struct ls_ctx *ctx, const struct el_image_inode *dir, const char *path)
{
	struct ls_frame *stack = NULL;
	size_t depth = 0, cap = 0;
	int r;

	if (ctx->recursive && set_add(&ctx->seen, dir->nid) < 0)
		return -ENOMEM;
	if (el_grow((void **)&stack, &cap, 1, sizeof(*stack)) < 0)
		return -ENOMEM;
	stack[0] = (struct ls_frame){ .path = strdup(path) };
	if (!stack[0].path) {
		r = -ENOMEM;
		goto out;
	}
	depth = 1;
	r = load_dir(ctx, dir, &stack[0].list);
	if (r < 0)
		goto out;

	while (depth) {
		struct ls_frame *f = &stack[depth - 1];
		struct el_image_inode ino;
		const struct ls_entry *e;
		_cleanup_free_ char *full = NULL;

		if (f->next == f->list.n) {
			free(f->path);
			list_free(&f->list);
			depth--;
			continue;
		}
		e = &f->list.ents[f->next++];
		r = el_image_read_inode(ctx->img, e->nid, &ino, &ctx->err);
		if (r < 0)
			goto out;
		if (ctx->recursive) {
			full = join(f->path, e->name);
			if (!full) {
				r = -ENOMEM;
				goto out;
			}
		}
		r = print_entry(ctx, full ? full : e->name, &ino);
		if (r < 0)
			goto out;
		if (!ctx->recursive || !S_ISDIR(ino.mode))
			continue;
		r = set_add(&ctx->seen, ino.nid);
		if (r < 0)
			goto out;
		if (!r)
			continue;
		if (el_grow((void **)&stack, &cap, depth + 1, sizeof(*stack)) < 0) {
			r = -ENOMEM;
			goto out;
		}
		/* f may have moved with the realloc; it is not used below. */
		stack[depth] = (struct ls_frame){ .path = EL_TAKE_PTR(full) };
		depth++;
		r = load_dir(ctx, &ino, &stack[depth - 1].list);
		if (r < 0)
			goto out;
	}
	r = 0;
out:
	for (size_t i = 0; i < depth; i++) {
		free(stack[i].path);
		list_free(&stack[i].list);
	}
	free(stack);
	return r;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: erofs-layer ls [-l] [-R] [-x] IMAGE [PATH]\n"
		   "  -l, --long       mode, links, owner, size or device, mtime (UTC), name\n"
		   "  -R, --recursive  list subdirectories too, with full paths\n"
		   "  -x, --xattrs     show extended attributes under each entry\n");
}

int cmd_ls(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "long", no_argument, NULL, 'l' },
		{ "recursive", no_argument, NULL, 'R' },
		{ "xattrs", no_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct ls_ctx ctx = { .err = { .offset = EL_NO_OFFSET } };
	_cleanup_(el_image_closep) struct el_image *img = NULL;
	_cleanup_free_ char *prefix = NULL;
	struct el_image_inode ino;
	const char *path;
	int c, r;

	el_hashtab_init(&ctx.seen.tab, &el_hashtab_u64_ops, 256);
	optind = 0;
	while ((c = getopt_long(argc, argv, "lRxh", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			ctx.long_fmt = true;
			break;
		case 'R':
			ctx.recursive = true;
			break;
		case 'x':
			ctx.xattrs = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind < 1 || argc - optind > 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	ctx.image = argv[optind];
	path = argc - optind == 2 ? argv[optind + 1] : "/";

	r = el_image_open(ctx.image, &img, &ctx.err);
	if (r < 0)
		return fail(&ctx, r);
	ctx.img = img;
	r = el_image_lookup(img, path, &ino, &ctx.err);
	if (r < 0)
		return fail(&ctx, r);

	if (!S_ISDIR(ino.mode)) {
		r = print_entry(&ctx, path, &ino);
	} else {
		/* Full paths are the argument without its trailing slashes,
		 * so "/" gives "/etc" and "etc/" gives "etc/passwd". */
		size_t len = strlen(path);

		while (len && path[len - 1] == '/')
			len--;
		prefix = strndup(path, len);
		r = prefix ? list_dir(&ctx, &ino, prefix) : -ENOMEM;
	}
	el_hashtab_release(&ctx.seen.tab, seen_free);
	if (r < 0)
		return fail(&ctx, r);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "erofs-layer ls: write error: %s\n", strerror(errno));
		return EXIT_FAILURE;
	}
	return 0;
}
