/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Replays fuzz inputs without libFuzzer: every regular file of the
 * directories (or the files) named on the command line goes through the
 * target's LLVMFuzzerTestOneInput, REPLAY_ROUNDS times each, so that state
 * leaking from one run into the next shows up too. Built with gcc or clang,
 * with or without sanitizers; `meson test --suite fuzz-replay` runs it on the
 * committed corpora. A crash aborts with the input's name printed first.
 *
 * Exit: 0 when every input ran, 1 on a usage or I/O error, 77 (skip) when no
 * input was found.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REPLAY_ROUNDS 3

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int read_file(const char *path, uint8_t **ret, size_t *ret_len)
{
	struct stat st;
	uint8_t *buf;
	size_t done = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int r = n < 0 ? -errno : -EIO;
			free(buf);
			close(fd);
			return r;
		}
		done += (size_t)n;
	}
	close(fd);
	*ret = buf;
	*ret_len = done;
	return 0;
}

static int run_file(const char *path, unsigned *count)
{
	struct timespec t0, t1;
	uint8_t *data = NULL;
	size_t len = 0;
	int r = read_file(path, &data, &len);

	if (r < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(-r));
		return r;
	}
	/* Name the input before running it, so that a crash is attributed. */
	fprintf(stderr, "replay: %s (%zu bytes)", path, len);
	fflush(stderr);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < REPLAY_ROUNDS; i++) {
		/* libFuzzer hands each run its own copy of exactly len bytes. */
		uint8_t *copy = malloc(len ? len : 1);
		if (!copy) {
			free(data);
			return -ENOMEM;
		}
		memcpy(copy, data, len);
		LLVMFuzzerTestOneInput(copy, len);
		free(copy);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr, " ok, %.1f ms\n",
		((double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6) /
			REPLAY_ROUNDS);
	free(data);
	(*count)++;
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The regular files of dir, in name order (reproducible runs). */
static int run_dir(const char *dir, unsigned *count)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int r = 0;

	if (!d) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -errno;
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **nn = realloc(names, cap * sizeof(*names));
			if (!nn) {
				r = -ENOMEM;
				goto out;
			}
			names = nn;
		}
		if (asprintf(&names[n], "%s/%s", dir, de->d_name) < 0) {
			r = -ENOMEM;
			goto out;
		}
		n++;
	}
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n && r == 0; i++) {
		struct stat st;

		if (stat(names[i], &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		r = run_file(names[i], count);
	}
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return r;
}

int main(int argc, char **argv)
{
	unsigned count = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
		return 1;
	}
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		struct stat st;
		int r;

		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		r = S_ISDIR(st.st_mode) ? run_dir(argv[i], &count) : run_file(argv[i], &count);
		if (r < 0)
			return 1;
	}
	if (!count) {
		fprintf(stderr, "replay: no inputs found\n");
		return 77;
	}
	fprintf(stderr, "replay: %u inputs, %d rounds each: ok\n", count, REPLAY_ROUNDS);
	return 0;
}
