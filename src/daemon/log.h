/* SPDX-License-Identifier: Apache-2.0 */
/* One line per event on stderr, in containerd's logfmt: time=… level=… msg=… key=value…
 * With a log file, stderr itself is that file (what helper programs and gRPC
 * print lands there too), and log_reopen() makes it the file at the path
 * again once logrotate has moved it away. */
#ifndef SES_LOG_H
#define SES_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

int log_parse_level(const char *s, enum log_level *ret);
void log_set_level(enum log_level level);
/* Opens path (append, created 0640) and makes it stderr; later calls reopen
 * the same path. -errno, and stderr is left as it was. */
int log_set_file(const char *path);
/* Reopens the path of log_set_file(): 0, 1 when there is none, -errno. */
int log_reopen(void);
/* fmt formats the message; extra key=value pairs may follow as "k", "v" string
 * pairs, terminated by NULL. */
void log_msg(enum log_level level, const char *msg, ...) __attribute__((sentinel));
void log_msgf(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msgf(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msgf(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msgf(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msgf(LOG_ERROR, __VA_ARGS__)

#endif
