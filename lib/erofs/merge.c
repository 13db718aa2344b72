/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Merging layer images into fsmeta.erofs. Each layer's tree is read with the
 * user-space reader and applied, oldest first, onto one in-memory tree with
 * the rules an overlay mount of the same layers would show:
 *
 *  - a whiteout (chr 0:0) deletes the name below it;
 *  - an opaque directory (trusted.overlay.opaque=y) starts empty: a fresh
 *    inode replaces the merged one, so nothing from below survives;
 *  - a directory over a directory merges, and takes the upper metadata;
 *  - anything else replaces what was there (a directory over a file starts
 *    empty, as overlayfs stops looking below a non-directory);
 *  - whiteouts and trusted.overlay.* xattrs do not reach the merged view.
 *
 * Regular files keep their data where it is: their inode names the layer
 * (device id = layer index + 1) and the block in that layer. Hard links
 * inside a layer stay links. The writer then lays the tree out like any
 * image, without a data area.
 */
#include "erofs-layer/merge.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "erofs-layer/image.h"
#include "erofs-layer/verity.h"
#include "erofs-layer/writer.h"
#include "erofs_fs.h"
#include "common/endian.h"
#include "common/hashtab.h"
#include "common/io.h"
#include "common/macro.h"
#include "common/sha256.h"
#include "common/util.h"
#include "tree-internal.h"

#define MERGE_MAX_LAYERS 4096 /* device ids are 16-bit; stay well inside */

struct layer {
	const char *path;
	char *abspath;
	struct el_image *img;
	uint64_t blocks;      /* of the image */
	uint64_t file_blocks; /* of the file: with its dm-verity tree, if any */
	uint8_t uuid[16];
};

static bool has_verity(const char *path, uint64_t hash_offset)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

	return fd >= 0 && el_verity_present(fd, hash_offset);
}

/* nid → merged inode, for the hard links of one layer */
struct link_map {
	struct el_hashtab tab; /* of struct link */
};

struct link {
	struct el_hnode_u64 nid; /* key: the layer's nid */
	struct el_inode *inode;
};

struct pending_dir {
	struct el_image_inode dir;
	struct el_inode *merged;
	char *path; /* for messages */
};

struct merge {
	struct el_tree *tree;
	struct layer *layers;
	size_t nlayers;
	struct el_error *err;
	struct link_map links;
	struct link_map dirs; /* directory nids of this layer already queued */
	struct pending_dir *stack;
	size_t nstack, capstack;
	/* scratch: the dirents of the directory being merged */
	struct el_image_dirent *ents;
	size_t nents, capents;
	/* scratch: the xattrs of the inode being read */
	struct el_xattr *xattrs[EL_MAX_XATTRS];
	size_t nxattrs;
	bool opaque;
};

static int oom(struct merge *m)
{
	return el_error_set(m->err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
}

static int links_find(struct link_map *l, uint64_t nid, struct el_inode **ret)
{
	struct el_hnode_u64 *n = el_hashtab_find_u64(&l->tab, nid);

	if (!n)
		return 0;
	*ret = el_hashtab_entry(n, struct link, nid)->inode;
	return 1;
}

static int links_add(struct link_map *l, uint64_t nid, struct el_inode *ino)
{
	struct link *k = malloc(sizeof(*k));

	if (!k)
		return -ENOMEM;
	k->inode = ino;
	if (el_hashtab_insert_u64(&l->tab, &k->nid, nid) < 0) {
		free(k);
		return -ENOMEM;
	}
	return 0;
}

static void link_free(struct el_hnode *n)
{
	free(el_hashtab_entry(n, struct link, nid.node));
}

/* Frees the entries: the map is empty, ready for the next layer. */
static void links_reset(struct link_map *l)
{
	el_hashtab_release(&l->tab, link_free);
	el_hashtab_init(&l->tab, &el_hashtab_u64_ops, 256);
}

static int collect_xattr(void *ud, const struct el_image_xattr *xa)
{
	struct merge *m = ud;
	uint8_t index;
	const char *suffix;

	if (strncmp(xa->name, "trusted.overlay.", 16) == 0) {
		if (strcmp(xa->name, "trusted.overlay.opaque") == 0 && xa->value_len == 1 &&
		    xa->value[0] == 'y')
			m->opaque = true;
		return 0;
	}
	if (el_xattr_split(xa->name, &index, &suffix) < 0)
		return 0; /* not addressable by the kernel either */
	if (m->nxattrs == EL_ARRAY_SIZE(m->xattrs))
		return el_error_set(m->err, -E2BIG, "image", xa->offset, "too many xattrs on one inode");
	struct el_xattr *x = el_tree_intern_xattr(m->tree, index, suffix, strlen(suffix), xa->value,
						  xa->value_len);
	if (!x)
		return oom(m);
	m->xattrs[m->nxattrs++] = x;
	return 0;
}

/* Metadata and xattrs of a layer inode onto a merged inode. */
static int apply_meta(struct merge *m, struct layer *l, const struct el_image_inode *src,
		      struct el_inode *dst)
{
	int r;

	m->nxattrs = 0;
	m->opaque = false;
	r = el_image_xattrs(l->img, src, collect_xattr, m, m->err);
	if (r < 0)
		return r;
	dst->mode = src->mode;
	dst->uid = src->uid;
	dst->gid = src->gid;
	dst->mtime = src->mtime;
	dst->mtime_nsec = src->mtime_nsec;
	dst->flags &= ~EL_INODE_IMPLICIT;
	dst->xattrs = NULL;
	for (size_t i = 0; i < m->nxattrs; i++)
		if (el_inode_set_xattr(m->tree, dst, m->xattrs[i]) < 0)
			return oom(m);
	return 0;
}

static int unmergeable(struct merge *m, struct layer *l, const char *what, const char *path)
{
	return el_error_set(m->err, -EL_EUNMERGEABLE, NULL, EL_NO_OFFSET,
			    "%s: cannot be merged: %s%s%s", l->path, what, path ? " at " : "",
			    path ? path : "");
}

/* A non-directory of a layer as a merged inode (hard links share one). */
static int make_leaf(struct merge *m, struct layer *l, uint16_t dev,
		     const struct el_image_inode *src, const char *path, struct el_inode **ret)
{
	struct el_inode *ino;
	int r;

	if (src->nlink > 1 && links_find(&m->links, src->nid, ret))
		return 0;
	ino = el_tree_new_inode(m->tree, src->mode);
	if (!ino)
		return oom(m);
	r = apply_meta(m, l, src, ino);
	if (r < 0)
		return r;
	switch (src->mode & S_IFMT) {
	case S_IFREG: {
		uint64_t start, nblocks;
		r = el_image_file_extent(l->img, src, &start, &nblocks, m->err);
		if (r == -EOPNOTSUPP) {
			el_error_clear(m->err);
			return unmergeable(m, l, "regular-file data is not FLAT_PLAIN (inline, chunked or compressed)", path);
		}
		if (r < 0)
			return r;
		if (start + nblocks > l->blocks || start + nblocks < start)
			return el_error_set(m->err, -EFSCORRUPTED, "image", src->inode_off,
					    "%s: data of %s lies outside the image", l->path, path);
		ino->size = src->size;
		ino->data = nblocks ? start : 0;
		ino->device = nblocks ? dev : 0;
		break;
	}
	case S_IFLNK: {
		if (src->size == 0 || src->size > EL_MAX_SYMLINK)
			return el_error_set(m->err, -EFSCORRUPTED, "image", src->inode_off,
					    "%s: symlink %s has a %llu-byte target", l->path, path,
					    (unsigned long long)src->size);
		ino->symlink = el_tree_alloc(m->tree, (size_t)src->size + 1);
		if (!ino->symlink)
			return oom(m);
		ssize_t n = el_image_pread(l->img, src, ino->symlink, (size_t)src->size, 0, m->err);
		if (n < 0)
			return (int)n;
		if ((uint64_t)n != src->size)
			return el_error_set(m->err, -EFSCORRUPTED, "image", src->inode_off,
					    "%s: short symlink target at %s", l->path, path);
		ino->symlink[n] = 0;
		ino->size = src->size;
		break;
	}
	case S_IFCHR:
	case S_IFBLK:
		ino->data = el_encode_dev(major(src->rdev), minor(src->rdev));
		break;
	case S_IFIFO:
	case S_IFSOCK:
		break;
	default:
		return el_error_set(m->err, -EFSCORRUPTED, "image", src->inode_off,
				    "%s: %s has an invalid mode 0%o", l->path, path, src->mode);
	}
	if (src->nlink > 1 && links_add(&m->links, src->nid, ino) < 0)
		return oom(m);
	*ret = ino;
	return 0;
}

static int collect_dirent(void *ud, const struct el_image_dirent *de)
{
	struct merge *m = ud;

	if ((de->name_len == 1 && de->name[0] == '.') ||
	    (de->name_len == 2 && de->name[0] == '.' && de->name[1] == '.'))
		return 0;
	if (el_grow((void **)&m->ents, &m->capents, m->nents + 1, sizeof(*m->ents)) < 0)
		return oom(m);
	m->ents[m->nents++] = *de;
	return 0;
}

static int push_dir(struct merge *m, const struct el_image_inode *dir, struct el_inode *merged,
		    const char *parent, const char *name)
{
	if (el_grow((void **)&m->stack, &m->capstack, m->nstack + 1, sizeof(*m->stack)) < 0)
		return oom(m);
	char *path;
	if (asprintf(&path, "%s%s%s", parent, strcmp(parent, "/") ? "/" : "", name) < 0)
		return oom(m);
	m->stack[m->nstack++] = (struct pending_dir){ *dir, merged, path };
	return 0;
}

static int merge_dir(struct merge *m, struct layer *l, uint16_t dev, struct pending_dir *pd)
{
	int r;

	m->nents = 0;
	r = el_image_readdir(l->img, &pd->dir, collect_dirent, m, m->err);
	if (r < 0)
		return r;
	/* the scratch array is reused by nested calls: take it */
	struct el_image_dirent *ents = m->ents;
	size_t n = m->nents;
	m->ents = NULL;
	m->nents = m->capents = 0;

	for (size_t i = 0; i < n && r == 0; i++) {
		const struct el_image_dirent *de = &ents[i];
		struct el_image_inode src;
		char path[PATH_MAX + 300];

		snprintf(path, sizeof(path), "%s%s%s", pd->path, strcmp(pd->path, "/") ? "/" : "",
			 de->name);
		r = el_image_read_inode(l->img, de->nid, &src, m->err);
		if (r < 0)
			break;
		struct el_dentry *d = el_tree_lookup(m->tree, pd->merged, de->name, de->name_len);
		if (S_ISCHR(src.mode) && src.rdev == 0) {
			if (d)
				d->inode = NULL; /* whiteout: the name goes away */
			continue;
		}
		if (S_ISDIR(src.mode)) {
			struct el_inode *dir = d && d->inode && S_ISDIR(d->inode->mode) ? d->inode : NULL;
			struct el_inode *fresh = el_tree_new_inode(m->tree, src.mode);
			if (!fresh) {
				r = oom(m);
				break;
			}
			r = apply_meta(m, l, &src, fresh);
			if (r < 0)
				break;
			if (dir && !m->opaque) {
				/* merge: keep the children, take the upper metadata */
				dir->mode = fresh->mode;
				dir->uid = fresh->uid;
				dir->gid = fresh->gid;
				dir->mtime = fresh->mtime;
				dir->mtime_nsec = fresh->mtime_nsec;
				dir->xattrs = fresh->xattrs;
			} else {
				dir = fresh;
				if (!el_tree_link(m->tree, pd->merged, de->name, de->name_len, dir)) {
					r = oom(m);
					break;
				}
			}
			struct el_inode *seen;
			if (links_find(&m->dirs, src.nid, &seen)) {
				r = el_error_set(m->err, -EFSCORRUPTED, "image", src.inode_off,
						 "%s: directory %s is reached twice (a cycle or a hard link to a directory)",
						 l->path, path);
				break;
			}
			if (links_add(&m->dirs, src.nid, dir) < 0) {
				r = oom(m);
				break;
			}
			r = push_dir(m, &src, dir, pd->path, de->name);
			continue;
		}
		struct el_inode *leaf = NULL;
		r = make_leaf(m, l, dev, &src, path, &leaf);
		if (r == 0 && !el_tree_link(m->tree, pd->merged, de->name, de->name_len, leaf))
			r = oom(m);
	}
	free(ents);
	return r;
}

static int merge_layer(struct merge *m, size_t idx)
{
	struct layer *l = &m->layers[idx];
	const struct el_image_info *info = el_image_info(l->img);
	struct el_image_inode root;
	int r;

	links_reset(&m->links);
	links_reset(&m->dirs);
	r = el_image_read_inode(l->img, info->root_nid, &root, m->err);
	if (r < 0)
		return r;
	if (!S_ISDIR(root.mode))
		return el_error_set(m->err, -EFSCORRUPTED, "image", root.inode_off,
				    "%s: the root is not a directory", l->path);
	struct el_inode *fresh = el_tree_new_inode(m->tree, root.mode);
	if (!fresh)
		return oom(m);
	r = apply_meta(m, l, &root, fresh);
	if (r < 0)
		return r;
	/* overlayfs merges every layer's root, opaque or not: only the
	 * metadata comes from the upper one */
	struct el_inode *dst = m->tree->root;
	dst->mode = fresh->mode;
	dst->uid = fresh->uid;
	dst->gid = fresh->gid;
	dst->mtime = fresh->mtime;
	dst->mtime_nsec = fresh->mtime_nsec;
	dst->xattrs = fresh->xattrs;
	dst->flags &= ~EL_INODE_IMPLICIT;
	if (links_add(&m->dirs, root.nid, m->tree->root) < 0)
		return oom(m);
	r = push_dir(m, &root, m->tree->root, "", "");
	if (r < 0)
		return r;
	free(m->stack[m->nstack - 1].path);
	m->stack[m->nstack - 1].path = strdup("/");
	if (!m->stack[m->nstack - 1].path)
		return oom(m);
	while (m->nstack && r == 0) {
		struct pending_dir pd = m->stack[--m->nstack];
		r = merge_dir(m, l, (uint16_t)(idx + 1), &pd);
		free(pd.path);
	}
	while (m->nstack)
		free(m->stack[--m->nstack].path);
	return r;
}

static int open_layer(struct merge *m, struct layer *l)
{
	const struct el_image_info *info;
	size_t ndev;
	int r;

	r = el_image_open(l->path, &l->img, m->err);
	if (r < 0)
		return r;
	info = el_image_info(l->img);
	if (info->blkszbits != EROFS_BLKSIZBITS) {
		char what[64];
		snprintf(what, sizeof(what), "block size %u, not 4096", 1u << info->blkszbits);
		return unmergeable(m, l, what, NULL);
	}
	el_image_devices(l->img, &ndev);
	if (ndev || info->extra_devices)
		return unmergeable(m, l, "it has devices of its own", NULL);
	/* the file is the image, or the image and its dm-verity tree: the
	 * device (and the VMDK's extent) is the whole file either way */
	if (info->image_size != info->blocks * EROFS_BLKSIZ &&
	    (info->image_size < info->blocks * EROFS_BLKSIZ || info->image_size % EROFS_BLKSIZ ||
	     !has_verity(l->path, info->blocks * EROFS_BLKSIZ)))
		return el_error_set(m->err, -EFSCORRUPTED, "image", 36,
				    "%s: the file is %llu bytes but the superblock says %llu blocks",
				    l->path, (unsigned long long)info->image_size,
				    (unsigned long long)info->blocks);
	l->file_blocks = info->image_size / EROFS_BLKSIZ;
	if (!info->checksum_ok)
		return el_error_set(m->err, -EFSCORRUPTED, "image", 1028,
				    "%s: superblock checksum mismatch", l->path);
	l->blocks = info->blocks;
	memcpy(l->uuid, info->uuid, 16);
	l->abspath = realpath(l->path, NULL);
	if (!l->abspath)
		return el_error_set(m->err, -errno, NULL, EL_NO_OFFSET, "%s: %s", l->path,
				    strerror(errno));
	return 0;
}

/* Errors of the image reader do not know the layer: name it, and make what
 * the reader cannot read (unknown features, long xattr prefixes) a reason to
 * fall back rather than an internal error. */
static int layer_error(struct merge *m, struct layer *l, int r)
{
	struct el_error *e = m->err;
	size_t n = strlen(l->path);
	if (r == -EOPNOTSUPP)
		r = e->code = -EL_EUNMERGEABLE;
	if (e->code && strncmp(e->msg, l->path, n) != 0) {
		char buf[sizeof(e->msg)];
		size_t k = (size_t)snprintf(buf, sizeof(buf), "%.200s: ", l->path);
		memcpy(buf + k, e->msg, EL_MIN(strlen(e->msg), sizeof(buf) - k - 1));
		buf[EL_MIN(k + strlen(e->msg), sizeof(buf) - 1)] = 0;
		memcpy(e->msg, buf, sizeof(buf));
	}
	return r;
}

static char *abs_output_path(const char *path)
{
	_cleanup_free_ char *copy = strdup(path);
	char *slash, *dir, *res = NULL;

	if (!copy)
		return NULL;
	slash = strrchr(copy, '/');
	if (slash) {
		*slash = 0;
		dir = realpath(*copy ? copy : "/", NULL);
	} else {
		dir = realpath(".", NULL);
	}
	if (dir && asprintf(&res, "%s/%s", strcmp(dir, "/") ? dir : "", slash ? slash + 1 : path) < 0)
		res = NULL;
	free(dir);
	return res;
}

static int write_vmdk(struct merge *m, const char *vmdk_path, const char *fsmeta_abs,
		      uint64_t fsmeta_blocks, const uint8_t uuid[16])
{
	struct el_vmdk_extent *ext = calloc(m->nlayers + 1, sizeof(*ext));
	struct el_outfile of;
	int r;

	if (!ext)
		return oom(m);
	ext[0] = (struct el_vmdk_extent){ fsmeta_abs, fsmeta_blocks * EROFS_BLKSIZ };
	for (size_t i = 0; i < m->nlayers; i++)
		ext[i + 1] = (struct el_vmdk_extent){ m->layers[i].abspath,
						      m->layers[i].file_blocks * EROFS_BLKSIZ };
	uint32_t cid = el_get_le32(uuid) ^ el_get_le32(uuid + 4) ^ el_get_le32(uuid + 8) ^
		       el_get_le32(uuid + 12);
	char *text = el_vmdk_descriptor(ext, m->nlayers + 1, cid);
	free(ext);
	if (!text)
		return el_error_set(m->err, -errno, NULL, EL_NO_OFFSET,
				    "cannot describe the disk: a path is not absolute or holds '\"' or a newline");
	r = el_outfile_open(&of, vmdk_path, 0644);
	if (r >= 0) {
		r = el_write_full(of.fd, text, strlen(text));
		if (r >= 0)
			r = el_outfile_publish(&of);
		el_outfile_discard(&of);
	}
	free(text);
	if (r < 0)
		return el_error_set(m->err, r, NULL, EL_NO_OFFSET, "cannot write %s: %s", vmdk_path,
				    strerror(-r));
	return 0;
}

int el_merge(const char *const *paths, size_t nlayers, const char *fsmeta_path,
	     const char *vmdk_path, const struct el_merge_opts *opts,
	     struct el_merge_result *ret, struct el_error *err)
{
	struct merge m = { .err = err, .nlayers = nlayers };
	struct el_outfile of = { .fd = -1, .dirfd = -1 };
	char *sidecar = NULL; /* published */
	struct el_writer *w = NULL;
	struct el_writer_device *devs = NULL;
	char *fsmeta_abs = NULL;
	bool published = false;
	int r;

	if (nlayers == 0 || nlayers > MERGE_MAX_LAYERS)
		return el_error_set(err, -EINVAL, NULL, EL_NO_OFFSET,
				    "merge takes 1 to %d layers, not %zu", MERGE_MAX_LAYERS, nlayers);
	m.layers = calloc(nlayers, sizeof(*m.layers));
	devs = calloc(nlayers, sizeof(*devs));
	if (!m.layers || !devs) {
		r = oom(&m);
		goto out;
	}
	r = el_tree_new(NULL, &m.tree);
	if (r < 0) {
		r = oom(&m);
		goto out;
	}
	for (size_t i = 0; i < nlayers; i++) {
		m.layers[i].path = paths[i];
		r = open_layer(&m, &m.layers[i]);
		if (r < 0) {
			r = layer_error(&m, &m.layers[i], r);
			goto out;
		}
	}
	for (size_t i = 0; i < nlayers; i++) {
		r = merge_layer(&m, i);
		if (r < 0) {
			r = layer_error(&m, &m.layers[i], r);
			goto out;
		}
	}

	/* the same layers give the same fsmeta: UUID from theirs */
	struct el_sha256 *h = el_sha256_new();
	uint8_t digest[32];
	if (!h) {
		r = oom(&m);
		goto out;
	}
	for (size_t i = 0; i < nlayers; i++) {
		uint8_t le[8];
		el_put_le64(le, m.layers[i].file_blocks);
		el_sha256_update(h, m.layers[i].uuid, 16);
		el_sha256_update(h, le, 8);
		el_hex(m.layers[i].uuid, 16, devs[i].tag);
		devs[i].blocks = m.layers[i].file_blocks;
	}
	el_sha256_final(h, digest);
	el_sha256_free(h);

	struct el_writer_opts wopts = {
		.has_uuid = true,
		.has_epoch = opts && opts->has_epoch,
		.epoch = opts ? opts->epoch : 0,
		.devices = devs,
		.ndevices = (unsigned)nlayers,
		.flat = opts && opts->flat,
	};
	el_uuid_from_name(wopts.flat ? "erofs-layer fsmeta flat:" : "erofs-layer fsmeta:", digest,
			  sizeof(digest), wopts.uuid);

	r = el_outfile_open(&of, fsmeta_path, 0644);
	if (r < 0) {
		el_error_set(err, r, NULL, EL_NO_OFFSET, "cannot create %s: %s", fsmeta_path,
			     strerror(-r));
		goto out;
	}
	r = el_writer_new(of.fd, &w);
	if (r == 0 && opts && opts->verity)
		r = el_writer_verity(w);
	if (r < 0) {
		r = oom(&m);
		goto out;
	}
	struct el_writer_stats st;
	r = el_writer_finish(w, m.tree, &wopts, &st, err);
	if (r < 0)
		goto out;
	if (vmdk_path) {
		fsmeta_abs = abs_output_path(fsmeta_path);
		if (!fsmeta_abs) {
			r = el_error_set(err, -errno ? -errno : -ENOMEM, NULL, EL_NO_OFFSET,
					 "cannot resolve %s", fsmeta_path);
			goto out;
		}
	}
	/* the sidecar first: fsmeta never shows without its root hash */
	if (st.verity) {
		r = el_verity_sidecar_write(fsmeta_path, &st.verity_info, err);
		if (r < 0)
			goto out;
		if (asprintf(&sidecar, "%s.dmverity", fsmeta_path) < 0) {
			sidecar = NULL;
			r = oom(&m);
			goto out;
		}
	}
	r = el_outfile_publish(&of);
	if (r < 0) {
		el_error_set(err, r, NULL, EL_NO_OFFSET, "cannot publish %s: %s", fsmeta_path,
			     strerror(-r));
		goto out;
	}
	published = true;
	if (vmdk_path) {
		r = write_vmdk(&m, vmdk_path, fsmeta_abs, st.file_bytes / EROFS_BLKSIZ, wopts.uuid);
		if (r < 0)
			goto out;
	}
	if (ret) {
		*ret = (struct el_merge_result){
			.inodes = st.inodes,
			.fsmeta_blocks = st.image_bytes / EROFS_BLKSIZ,
			.verity = st.verity,
			.verity_info = st.verity_info,
		};
		ret->total_blocks = st.file_bytes / EROFS_BLKSIZ;
		for (size_t i = 0; i < nlayers; i++)
			ret->total_blocks += m.layers[i].file_blocks;
		memcpy(ret->uuid, wopts.uuid, 16);
	}
	r = 0;
out:
	if (r < 0 && published)
		unlink(fsmeta_path); /* the VMDK failed: take fsmeta back too */
	if (r < 0 && sidecar)
		unlink(sidecar);
	free(sidecar);
	el_outfile_discard(&of);
	el_writer_free(w);
	for (size_t i = 0; m.layers && i < nlayers; i++) {
		el_image_close(m.layers[i].img);
		free(m.layers[i].abspath);
	}
	free(m.layers);
	free(m.ents);
	free(m.stack);
	links_reset(&m.links);
	links_reset(&m.dirs);
	el_tree_free(m.tree);
	free(devs);
	free(fsmeta_abs);
	return r;
}
