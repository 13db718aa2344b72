/* SPDX-License-Identifier: Apache-2.0 */
/* Running a helper program (mkfs.ext4, e2fsck) from a threaded process. */
#ifndef EL_SPAWN_H
#define EL_SPAWN_H

/*
 * Starts prog (searched in PATH when it has no '/') with argv and envp
 * (NULL: this process's environment) by posix_spawn, never fork: the
 * callers have other threads. The child starts as a fresh program would,
 * whatever the caller's threads did: an empty signal mask and every signal
 * at its default disposition (a daemon blocks SIGTERM and SIGINT for its
 * signal thread and ignores SIGPIPE; none of that is the child's). Its
 * stdin is /dev/null; stdout and stderr go to out_fd, or /dev/null when
 * out_fd < 0. Waits for it and stores waitpid's status in *ret_status.
 * Returns 0, or -errno when it could not be started (-ENOENT: no such
 * program) or waited for.
 */
int el_spawn_wait(const char *prog, char *const argv[], char *const envp[], int out_fd,
		  int *ret_status);

#endif
