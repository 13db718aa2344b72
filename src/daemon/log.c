/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char *log_path; /* --log-file, NULL: stderr as inherited */

static const char *const names[] = { "debug", "info", "warning", "error" };

int log_parse_level(const char *s, enum log_level *ret)
{
	static const struct {
		const char *name;
		enum log_level level;
	} map[] = { { "debug", LOG_DEBUG }, { "info", LOG_INFO },   { "warn", LOG_WARN },
		    { "warning", LOG_WARN }, { "error", LOG_ERROR } };
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(s, map[i].name) == 0) {
			*ret = map[i].level;
			return 0;
		}
	return -1;
}

void log_set_level(enum log_level level)
{
	min_level = level;
}

/* The file at path becomes fd 2 in one dup2: a line being written goes
 * whole to the old file or whole to the new one (both under log_lock). */
static int open_as_stderr(const char *path)
{
	int fd, r = 0;

	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd < 0)
		return -errno;
	pthread_mutex_lock(&log_lock);
	fflush(stderr);
	if (dup2(fd, STDERR_FILENO) < 0)
		r = -errno;
	pthread_mutex_unlock(&log_lock);
	close(fd);
	return r;
}

int log_set_file(const char *path)
{
	char *copy = strdup(path);
	int r;

	if (!copy)
		return -ENOMEM;
	r = open_as_stderr(path);
	if (r < 0) {
		free(copy);
		return r;
	}
	free(log_path);
	log_path = copy;
	return 0;
}

int log_reopen(void)
{
	if (!log_path)
		return 1;
	return open_as_stderr(log_path);
}

/* logfmt value: quoted when it holds spaces, quotes, '=' or control bytes */
static void put_value(FILE *f, const char *v)
{
	bool quote = !*v || strpbrk(v, " \"=\t\n\\") != NULL;
	if (!quote) {
		fputs(v, f);
		return;
	}
	fputc('"', f);
	for (const char *p = v; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else if ((unsigned char)*p < 0x20)
			fprintf(f, "\\x%02x", (unsigned char)*p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void emit(enum log_level level, const char *msg, va_list kv)
{
	struct timespec ts;
	struct tm tm;
	char when[64];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "time=\"%s.%09ldZ\" level=%s msg=", when, ts.tv_nsec, names[level]);
	put_value(stderr, msg);
	for (;;) {
		const char *k = va_arg(kv, const char *);
		if (!k)
			break;
		const char *v = va_arg(kv, const char *);
		fprintf(stderr, " %s=", k);
		put_value(stderr, v ? v : "");
	}
	fputc('\n', stderr);
	fflush(stderr);
	pthread_mutex_unlock(&log_lock);
}

void log_msg(enum log_level level, const char *msg, ...)
{
	va_list ap;
	if (level < min_level)
		return;
	va_start(ap, msg);
	emit(level, msg, ap);
	va_end(ap);
}

static void emit_none(enum log_level level, const char *msg, ...)
{
	va_list ap;
	va_start(ap, msg);
	emit(level, msg, ap);
	va_end(ap);
}

void log_msgf(enum log_level level, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	if (level < min_level)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	emit_none(level, buf, (const char *)NULL);
}
