/* SPDX-License-Identifier: Apache-2.0 */
/* One line per event on stderr, in containerd's logfmt: time=… level=… msg=… key=value… */
#ifndef SES_LOG_H
#define SES_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

int log_parse_level(const char *s, enum log_level *ret);
void log_set_level(enum log_level level);
/* fmt formats the message; extra key=value pairs may follow as "k", "v" string
 * pairs, terminated by NULL. */
void log_msg(enum log_level level, const char *msg, ...) __attribute__((sentinel));
void log_msgf(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msgf(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msgf(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msgf(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msgf(LOG_ERROR, __VA_ARGS__)

#endif
