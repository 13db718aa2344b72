/* SPDX-License-Identifier: Apache-2.0 */
/* Full reads and writes, and atomically published output files. */
#ifndef EL_IO_H
#define EL_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Read up to len bytes, retrying on EINTR and short reads; returns bytes read
 * (less than len only at EOF) or -errno. */
ssize_t el_read_full(int fd, void *buf, size_t len);
int el_write_full(int fd, const void *buf, size_t len);
int el_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
/* Returns 0 and the whole range, -EIO (short read past EOF) or -errno. */
int el_pread_full(int fd, void *buf, size_t len, uint64_t off);

/*
 * An output file that appears at its final path only when complete: an
 * unnamed O_TMPFILE (or a hidden temporary name where the file system lacks
 * it) in the target's directory; el_outfile_publish fsyncs, renames over the
 * target and fsyncs the directory. el_outfile_discard (also run by the
 * cleanup attribute) removes everything.
 */
struct el_outfile {
	int fd;
	int dirfd;
	char *dir;
	char *base;
	char *tmpname; /* NULL when O_TMPFILE was used */
};

int el_outfile_open(struct el_outfile *of, const char *path, mode_t mode);
int el_outfile_publish(struct el_outfile *of);
void el_outfile_discard(struct el_outfile *of);

/* The same, with failures as an el_error naming path: el_outfile_create
 * opens ("cannot create PATH: ..."); el_outfile_finish, given the result r
 * of writing the file, publishes it when r >= 0 ("cannot publish PATH:
 * ..."), discards what is left either way and returns r or the failure. */
struct el_error;
int el_outfile_create(struct el_outfile *of, const char *path, mode_t mode, struct el_error *err);
int el_outfile_finish(struct el_outfile *of, int r, const char *path, struct el_error *err);

#endif
