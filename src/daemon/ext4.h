/* SPDX-License-Identifier: Apache-2.0 */
/* The writable layer of an active snapshot: a sparse ext4 image with upper/
 * and work/ at its root, for the guest to stack overlayfs on (DESIGN §5). */
#ifndef SES_EXT4_H
#define SES_EXT4_H

#include <stdint.h>

/* Creates `name` in dirfd atomically (a temporary name, then rename):
 * a sparse file of `size` bytes formatted by mkfs.ext4 (started with
 * posix_spawn: the daemon has gRPC threads, so no fork). */
int ext4_create_image(int dirfd, const char *dir_path, const char *name, uint64_t size);

/* Bytes actually allocated to a file (st_blocks * 512). */
int file_allocated_bytes(int dirfd, const char *name, uint64_t *ret);

#endif
