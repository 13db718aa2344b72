/* SPDX-License-Identifier: Apache-2.0 */
/* e2fsck on an ext4 image before it is read (el_ext4_fsck in
 * include/erofs-layer/ext4.h). */
#include "erofs-layer/ext4.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/macro.h"
#include "common/spawn.h"

#define WHAT "ext4"
#define TAIL_MAX 240u /* bytes of e2fsck's output quoted */

static const char *const e2fsck_paths[] = { "/usr/sbin/e2fsck", "/sbin/e2fsck" };

/* The last line(s) of e2fsck's output, on one line, into buf. */
static void output_tail(int fd, char *buf, size_t len)
{
	struct stat st;
	char raw[TAIL_MAX + 1];
	size_t n = 0;

	buf[0] = 0;
	if (fstat(fd, &st) < 0 || st.st_size <= 0)
		return;
	off_t from = st.st_size > (off_t)TAIL_MAX ? st.st_size - (off_t)TAIL_MAX : 0;
	ssize_t got = pread(fd, raw, (size_t)(st.st_size - from), from);
	if (got <= 0)
		return;
	raw[got] = 0;
	/* the non-blank lines, joined with " | " */
	for (char *save = NULL, *line = strtok_r(raw, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		size_t ll = strlen(line);
		while (ll && (line[ll - 1] == '\r' || line[ll - 1] == ' ' || line[ll - 1] == '\t'))
			ll--;
		while (ll && (*line == ' ' || *line == '\t'))
			line++, ll--;
		if (!ll)
			continue;
		if (n && n + 3 < len) {
			memcpy(buf + n, " | ", 3);
			n += 3;
		}
		for (size_t i = 0; i < ll && n + 1 < len; i++) {
			unsigned char ch = (unsigned char)line[i];
			buf[n++] = (ch < 0x20 || ch == 0x7f) ? ' ' : (char)ch;
		}
	}
	buf[n] = 0;
}

static const char *status_meaning(int st)
{
	if (st & 128)
		return "shared-library error";
	if (st & 32)
		return "cancelled";
	if (st & 16)
		return "usage or syntax error";
	if (st & 8)
		return "operational error";
	if (st & 4)
		return "errors left uncorrected";
	return "errors corrected";
}

/* MODE: "-p" (preen: repairs) or "-n" (read-only: nothing written) */
static int fsck_run(const char *image, const char *mode, struct el_error *err)
{
	const char *prog = NULL;
	_cleanup_close_ int out = -1;
	int status, r;

	for (size_t i = 0; i < EL_ARRAY_SIZE(e2fsck_paths); i++)
		if (access(e2fsck_paths[i], X_OK) == 0) {
			prog = e2fsck_paths[i];
			break;
		}
	if (!prog)
		return el_error_set(err, -ENOENT, WHAT, EL_NO_OFFSET,
				    "%s: cannot check the image: no e2fsck in /usr/sbin or /sbin",
				    image);
	out = memfd_create("e2fsck-output", MFD_CLOEXEC);
	if (out < 0)
		return el_error_set(err, -errno, WHAT, EL_NO_OFFSET, "%s: memfd_create: %s", image,
				    strerror(errno));

	/* -f: check even a file system marked clean; -p or -n (see ext4.h);
	 * "--": an image path starting with '-' stays a path */
	char *const argv[] = { (char *)"e2fsck", (char *)"-f", (char *)mode, (char *)"--",
			       (char *)image, NULL };
	char *const envp[] = { (char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", (char *)"LC_ALL=C",
			       NULL };
	r = el_spawn_wait(prog, argv, envp, out, &status);
	if (r < 0)
		return el_error_set(err, r, WHAT, EL_NO_OFFSET, "%s: cannot run %s: %s", image, prog,
				    strerror(-r));

	char tail[TAIL_MAX * 2];
	output_tail(out, tail, sizeof(tail));
	if (WIFSIGNALED(status))
		return el_error_set(err, -EINTR, WHAT, EL_NO_OFFSET,
				    "%s: e2fsck killed by signal %d%s%s", image, WTERMSIG(status),
				    tail[0] ? ": " : "", tail);
	int st = WIFEXITED(status) ? WEXITSTATUS(status) : 8;
	if ((st & ~3) == 0)
		return st; /* 0, or 1 | 2: corrected */
	int code = (st & (8 | 128)) ? -EIO : (st & 32) ? -ECANCELED : (st & 16) ? -EINVAL : -EUCLEAN;
	const char *verdict = "";
	if (code == -EUCLEAN)
		verdict = mode[1] == 'n' ? "; refused: a read-only check repairs nothing"
					 : "; the image needs a manual repair, refused";
	return el_error_set(err, code, WHAT, EL_NO_OFFSET,
			    "%s: e2fsck -f %s exited with status %d (%s)%s%s%s", image, mode, st,
			    status_meaning(st), verdict, tail[0] ? ": " : "", tail);
}

int el_ext4_fsck(const char *image, struct el_error *err)
{
	return fsck_run(image, "-p", err);
}

int el_ext4_fsck_readonly(const char *image, struct el_error *err)
{
	return fsck_run(image, "-n", err);
}
