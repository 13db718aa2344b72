/* SPDX-License-Identifier: Apache-2.0 */
/* el_spawn_wait: the child starts with a clean signal state whatever the
 * caller's, gets its output where asked, and reports its exit status. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/spawn.h"

/* the lines of /proc/<child>/status that tell its signal state */
static void child_status(char *buf, size_t size)
{
	int out = memfd_create("spawn-test", MFD_CLOEXEC);
	assert_true(out >= 0);
	char *const argv[] = { "sh", "-c", "grep -E '^Sig(Blk|Ign):' /proc/self/status", NULL };
	int status = -1;
	assert_int_equal(el_spawn_wait("sh", argv, NULL, out, &status), 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ssize_t n = pread(out, buf, size - 1, 0);
	assert_true(n > 0);
	buf[n] = 0;
	close(out);
}

static void test_signals_reset(void **state)
{
	(void)state;
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	assert_int_equal(pthread_sigmask(SIG_BLOCK, &block, &old), 0);
	void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN);

	char buf[256];
	child_status(buf, sizeof(buf));
	print_message("%s", buf);
	/* a shell may ignore a few signals of its own accord; never those */
	assert_non_null(strstr(buf, "SigBlk:\t0000000000000000"));
	unsigned long long ign = 0;
	const char *p = strstr(buf, "SigIgn:\t");
	assert_non_null(p);
	ign = strtoull(p + 8, NULL, 16);
	assert_int_equal(ign & (1ull << (SIGPIPE - 1)), 0);
	assert_int_equal(ign & (1ull << (SIGTERM - 1)), 0);

	signal(SIGPIPE, old_pipe);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void test_status_and_output(void **state)
{
	(void)state;
	int status = -1;
	char *const fail[] = { "sh", "-c", "echo to-null; exit 3", NULL };
	assert_int_equal(el_spawn_wait("/bin/sh", fail, NULL, -1, &status), 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 3);

	char *const envp[] = { "SPAWN_TEST=seen", NULL };
	char *const env[] = { "/bin/sh", "-c", "echo $SPAWN_TEST; echo err >&2; read x; echo r=$x", NULL };
	int out = memfd_create("spawn-test", MFD_CLOEXEC);
	assert_true(out >= 0);
	assert_int_equal(el_spawn_wait("/bin/sh", env, envp, out, &status), 0);
	assert_int_equal(WEXITSTATUS(status), 0);
	char buf[64] = "";
	assert_true(pread(out, buf, sizeof(buf) - 1, 0) > 0);
	assert_string_equal(buf, "seen\nerr\nr=\n"); /* stdin is /dev/null */
	close(out);

	char *const none[] = { "no-such-program-here", NULL };
	assert_int_equal(el_spawn_wait("no-such-program-here", none, NULL, -1, &status), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_signals_reset),
		cmocka_unit_test(test_status_and_output),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
