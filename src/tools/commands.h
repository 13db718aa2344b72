/* SPDX-License-Identifier: Apache-2.0 */
/* Subcommands of erofs-layer; each parses its own options and returns an exit status. */
#ifndef EL_TOOLS_COMMANDS_H
#define EL_TOOLS_COMMANDS_H

#include <stdint.h>

int cmd_convert(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_diff(int argc, char **argv);

/* --epoch SECONDS: a signed decimal; prints the error for `cmd` and returns
 * -EINVAL when it is not one. */
int parse_epoch(const char *cmd, const char *arg, int64_t *ret);

/* IMAGE[:SUBDIR] (--ext4): split at the last ':' unless the whole argument
 * names an existing file (an image path may hold ':'). *ret_subdir points
 * into arg ("" for none); *ret_image is malloc'd. */
int split_image_subdir(const char *arg, char **ret_image, const char **ret_subdir);

/* Exit statuses shared by the subcommands. */
#define EXIT_USAGE 2
#define EXIT_BADINPUT 3 /* the input (tar or image) is malformed */
#define EXIT_UNMERGEABLE 4 /* merge: these layers cannot share one fsmeta */

#endif
