/* SPDX-License-Identifier: Apache-2.0 */
/* The writable layer of an active snapshot: a sparse ext4 image with upper/
 * and work/ at its root, for the guest to stack overlayfs on (docs/vm-runtime-contract.md). */
#ifndef SES_EXT4_H
#define SES_EXT4_H

#include <stddef.h>
#include <stdint.h>

/*
 * A template of the image, made once by mkfs.ext4 and kept in memory: its
 * non-zero blocks (some 60 KiB for 64 MiB). Writing a copy costs a few
 * pwrites and an fsync instead of a mkfs.ext4 process (~5 ms idle, 20 ms
 * and more under load). Each copy gets a fresh random filesystem UUID, as
 * mkfs.ext4 would give it: the template is made with metadata_csum_seed, so
 * checksums do not depend on the UUID, and every superblock copy is patched
 * (its checksum recomputed). A template whose features would tie checksums
 * to the UUID keeps the template's UUID in every copy.
 */
struct ext4_template;

/* Runs mkfs.ext4 in dirfd (dir_path) under scratch names, reads the image
 * and removes the scratch files. */
int ext4_template_new(int dirfd, const char *dir_path, uint64_t size, struct ext4_template **ret);
void ext4_template_free(struct ext4_template *t);
/* Creates dirfd/name (which must not exist) as a copy, and fsyncs it. Not
 * atomic by itself: write it where nobody looks before it is published
 * (a staging directory). */
int ext4_template_write(const struct ext4_template *t, int dirfd, const char *name);

/* Whether the image at path is the backing file of a loop device (someone
 * on this host attached it, most likely to mount it): 1 and the device's
 * name ("loop3") in dev, 0 if none is, or a negative errno. Reading an image
 * a live file system still writes to would take a half-written state for
 * the layer, and e2fsck would refuse it as mounted. */
int ext4_image_loop_device(const char *path, char *dev, size_t dev_size);

/* Bytes actually allocated to a file (st_blocks * 512). */
int file_allocated_bytes(int dirfd, const char *name, uint64_t *ret);

#endif
