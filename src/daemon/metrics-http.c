/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A minimal HTTP/1.x server for GET /metrics: poll on the listening socket
 * and on a pipe that stop() writes to; each connection is read (head only,
 * at most METRICS_HEAD_MAX bytes within METRICS_TIMEOUT_MS), answered and
 * closed before the next is accepted. Scrapes are rare and small: one
 * thread, no keep-alive.
 */
#include "metrics-http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "common/macro.h"
#include "common/unix-socket.h"

struct metrics_server {
	struct metrics *m;
	metrics_sample_fn sample;
	void *ud;
	int fd;
	int wake[2]; /* stop() writes to [1] */
	pthread_t thread;
	char *path; /* the unix socket's, to remove at stop */
	dev_t sock_dev;
	ino_t sock_ino;
	char addr[128];
};

/* ---- the address ---------------------------------------------------------- */

struct maddr {
	int family; /* AF_UNIX, AF_INET, AF_INET6 */
	union {
		struct sockaddr sa;
		struct sockaddr_un un;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} u;
	socklen_t len;
};

static int parse_address(const char *addr, struct maddr *ret, struct el_error *err)
{
	memset(ret, 0, sizeof(*ret));
	if (addr[0] == '/') {
		if (strlen(addr) + 8 + 3 * sizeof(int) >= sizeof(ret->u.un.sun_path))
			return el_error_set(err, -ENAMETOOLONG, NULL, EL_NO_OFFSET,
					    "--metrics-address %s: the path is too long for a unix socket",
					    addr);
		ret->family = AF_UNIX;
		ret->u.un.sun_family = AF_UNIX;
		strcpy(ret->u.un.sun_path, addr);
		ret->len = sizeof(ret->u.un);
		return 0;
	}

	const char *colon = strrchr(addr, ':');
	char host[64], *end;
	if (!colon || (size_t)(colon - addr) >= sizeof(host))
		goto bad;
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = 0;
	errno = 0;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (!colon[1] || *end || errno || port > 65535 || colon[1] == '-' || colon[1] == '+')
		return el_error_set(err, -EINVAL, NULL, EL_NO_OFFSET,
				    "--metrics-address %s: invalid port '%s'", addr, colon + 1);

	if (!strcmp(host, "localhost") ||
	    inet_pton(AF_INET, host, &ret->u.in.sin_addr) == 1) {
		if (!strcmp(host, "localhost"))
			ret->u.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if ((ntohl(ret->u.in.sin_addr.s_addr) >> 24) != 127)
			goto refused;
		ret->family = AF_INET;
		ret->u.in.sin_family = AF_INET;
		ret->u.in.sin_port = htons((uint16_t)port);
		ret->len = sizeof(ret->u.in);
		return 0;
	}
	size_t hl = strlen(host);
	if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
		host[hl - 1] = 0;
		if (inet_pton(AF_INET6, host + 1, &ret->u.in6.sin6_addr) != 1)
			goto bad;
		if (!IN6_IS_ADDR_LOOPBACK(&ret->u.in6.sin6_addr))
			goto refused;
		ret->family = AF_INET6;
		ret->u.in6.sin6_family = AF_INET6;
		ret->u.in6.sin6_port = htons((uint16_t)port);
		ret->len = sizeof(ret->u.in6);
		return 0;
	}
	/* a name other than localhost: not resolved, so not known to be loopback */
refused:
	return el_error_set(err, -EINVAL, NULL, EL_NO_OFFSET,
			    "--metrics-address %s: refusing a non-loopback address: the metrics "
			    "endpoint has no authentication (use 127.0.0.1:PORT, [::1]:PORT, "
			    "localhost:PORT or a unix socket path)", addr);
bad:
	return el_error_set(err, -EINVAL, NULL, EL_NO_OFFSET,
			    "--metrics-address %s: expected a unix socket path (/...) or "
			    "127.0.0.1:PORT, [::1]:PORT, localhost:PORT", addr);
}

int metrics_address_check(const char *addr, struct el_error *err)
{
	struct maddr a;
	return parse_address(addr, &a, err);
}

/* Binds under a name of our own beside the path, sets the mode, renames:
 * the socket appears at the path already 0660. */
static int bind_unix(struct metrics_server *s, const struct maddr *a, struct el_error *err)
{
	struct maddr tmp = *a;
	const char *path = a->u.un.sun_path;
	struct stat st;
	int r = el_unix_socket_reclaim(path);

	if (r == -EADDRINUSE)
		return el_error_set(err, r, NULL, EL_NO_OFFSET,
				    "--metrics-address %s: another process answers there", path);
	if (r < 0)
		return el_error_set(err, r, NULL, EL_NO_OFFSET, "--metrics-address %s: %s", path,
				    strerror(-r));
	char name[sizeof(tmp.u.un.sun_path) + 16];
	int k = snprintf(name, sizeof(name), "%s.%d~", path, (int)getpid());
	if (k < 0 || (size_t)k >= sizeof(tmp.u.un.sun_path))
		return el_error_set(err, -ENAMETOOLONG, NULL, EL_NO_OFFSET,
				    "--metrics-address %s: the path is too long", path);
	memcpy(tmp.u.un.sun_path, name, (size_t)k + 1);
	(void)unlink(tmp.u.un.sun_path);
	if (bind(s->fd, &tmp.u.sa, tmp.len) < 0)
		return el_error_set(err, -errno, NULL, EL_NO_OFFSET, "cannot bind %s: %s",
				    tmp.u.un.sun_path, strerror(errno));
	if (chmod(tmp.u.un.sun_path, 0660) < 0 || lstat(tmp.u.un.sun_path, &st) < 0 ||
	    rename(tmp.u.un.sun_path, path) < 0) {
		r = -errno;
		(void)unlink(tmp.u.un.sun_path);
		return el_error_set(err, r, NULL, EL_NO_OFFSET, "cannot publish %s: %s", path,
				    strerror(-r));
	}
	s->path = strdup(path);
	if (!s->path) {
		(void)unlink(path);
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	}
	s->sock_dev = st.st_dev;
	s->sock_ino = st.st_ino;
	snprintf(s->addr, sizeof(s->addr), "%s", path);
	return 0;
}

static int bind_tcp(struct metrics_server *s, const struct maddr *a, const char *addr,
		    struct el_error *err)
{
	struct maddr got = *a;
	char host[INET6_ADDRSTRLEN];
	int one = 1;

	(void)setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (a->family == AF_INET6)
		(void)setsockopt(s->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(s->fd, &a->u.sa, a->len) < 0)
		return el_error_set(err, -errno, NULL, EL_NO_OFFSET, "--metrics-address %s: cannot bind: %s",
				    addr, strerror(errno));
	if (getsockname(s->fd, &got.u.sa, &got.len) < 0)
		return el_error_set(err, -errno, NULL, EL_NO_OFFSET, "--metrics-address %s: %s", addr,
				    strerror(errno));
	if (a->family == AF_INET) {
		inet_ntop(AF_INET, &got.u.in.sin_addr, host, sizeof(host));
		snprintf(s->addr, sizeof(s->addr), "%s:%u", host, ntohs(got.u.in.sin_port));
	} else {
		inet_ntop(AF_INET6, &got.u.in6.sin6_addr, host, sizeof(host));
		snprintf(s->addr, sizeof(s->addr), "[%s]:%u", host, ntohs(got.u.in6.sin6_port));
	}
	return 0;
}

/* ---- one connection ------------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline; 1 ready, 0 timed out or
 * stopping, -errno. */
static int wait_fd(struct metrics_server *s, int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p[2] = { { .fd = fd, .events = events }, { .fd = s->wake[0], .events = POLLIN } };
		int r = poll(p, 2, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (p[1].revents)
			return 0;
		if (p[0].revents)
			return 1;
	}
}

static void send_all(struct metrics_server *s, int fd, const char *buf, size_t len,
		     int64_t deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (wait_fd(s, fd, POLLOUT, deadline) <= 0)
				return;
			continue;
		}
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

static void respond(struct metrics_server *s, int fd, const char *version, const char *status,
		    const char *extra, const char *body, size_t len, bool head_only,
		    int64_t deadline)
{
	char h[512];
	int n = snprintf(h, sizeof(h),
			 "%s %s\r\n"
			 "Content-Type: %s\r\n"
			 "Content-Length: %zu\r\n"
			 "%s"
			 "Connection: close\r\n\r\n",
			 version, status,
			 body && !strncmp(status, "200", 3) ?
				 "text/plain; version=0.0.4; charset=utf-8" :
				 "text/plain; charset=utf-8",
			 len, extra ? extra : "");
	send_all(s, fd, h, (size_t)n, deadline);
	if (!head_only && len)
		send_all(s, fd, body, len, deadline);
}

static void respond_text(struct metrics_server *s, int fd, const char *version,
			 const char *status, const char *extra, int64_t deadline)
{
	char body[64];
	int n = snprintf(body, sizeof(body), "%s\n", status);
	respond(s, fd, version, status, extra, body, (size_t)n, false, deadline);
}

static void serve_metrics(struct metrics_server *s, int fd, const char *version, bool head_only,
			  int64_t deadline)
{
	_cleanup_free_ char *body = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&body, &len);
	int r = f ? metrics_render(s->m, f, s->sample, s->ud) : -errno;

	if (f && fclose(f) != 0 && r == 0)
		r = -EIO;
	if (r < 0) {
		log_warn("metrics: cannot render: %s", strerror(-r));
		respond_text(s, fd, version, "500 Internal Server Error", NULL, deadline);
		return;
	}
	respond(s, fd, version, "200 OK", NULL, body, len, head_only, deadline);
}

static void serve(struct metrics_server *s, int fd)
{
	int64_t deadline = now_ms() + METRICS_TIMEOUT_MS;
	char buf[METRICS_HEAD_MAX + 1];
	size_t n = 0;
	char *eol;

	/* the head: up to the empty line */
	for (;;) {
		buf[n] = 0;
		if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n"))
			break;
		if (n == METRICS_HEAD_MAX) {
			respond_text(s, fd, "HTTP/1.1", "431 Request Header Fields Too Large", NULL,
				     deadline);
			return;
		}
		ssize_t k = read(fd, buf + n, METRICS_HEAD_MAX - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN) {
			int r = wait_fd(s, fd, POLLIN, deadline);
			if (r == 0 && now_ms() >= deadline)
				respond_text(s, fd, "HTTP/1.1", "408 Request Timeout", NULL,
					     now_ms() + 100);
			if (r <= 0)
				return;
			continue;
		}
		if (k <= 0)
			return; /* gone, or an error: nobody to answer */
		if (memchr(buf + n, 0, (size_t)k)) {
			respond_text(s, fd, "HTTP/1.1", "400 Bad Request", NULL, deadline);
			return;
		}
		n += (size_t)k;
	}

	/* the request line: METHOD SP TARGET SP HTTP/1.x */
	eol = strchr(buf, '\n');
	*eol = 0;
	if (eol > buf && eol[-1] == '\r')
		eol[-1] = 0;
	char *method = buf, *target = strchr(buf, ' '), *version = NULL;
	if (target) {
		*target++ = 0;
		version = strchr(target, ' ');
	}
	if (version)
		*version++ = 0;
	if (!version || (strcmp(version, "HTTP/1.0") && strcmp(version, "HTTP/1.1")) ||
	    !*method || !*target) {
		respond_text(s, fd, "HTTP/1.1", "400 Bad Request", NULL, deadline);
		return;
	}
	bool head_only = !strcmp(method, "HEAD");
	if (strcmp(method, "GET") && !head_only) {
		respond_text(s, fd, version, "405 Method Not Allowed", "Allow: GET, HEAD\r\n",
			     deadline);
		return;
	}
	size_t tl = strcspn(target, "?");
	if (tl != strlen("/metrics") || strncmp(target, "/metrics", tl)) {
		respond_text(s, fd, version, "404 Not Found", NULL, deadline);
		return;
	}
	serve_metrics(s, fd, version, head_only, deadline);
}

/*
 * Closing with unread bytes (a body, the rest of a head too large) resets
 * the connection, and the client may lose the answer with it: after the
 * answer, read what the client still sends until it closes, for a short
 * while and a bounded amount.
 */
static void linger(struct metrics_server *s, int fd)
{
	int64_t deadline = now_ms() + METRICS_LINGER_MS;
	size_t total = 0;
	char buf[4096];

	(void)shutdown(fd, SHUT_WR);
	while (total < 16 * sizeof(buf)) {
		ssize_t k = read(fd, buf, sizeof(buf));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN) {
			if (wait_fd(s, fd, POLLIN, deadline) <= 0)
				return;
			continue;
		}
		if (k <= 0)
			return;
		total += (size_t)k;
	}
}

/* ---- the thread ----------------------------------------------------------- */

static void *run(void *ud)
{
	struct metrics_server *s = ud;

	for (;;) {
		struct pollfd p[2] = { { .fd = s->fd, .events = POLLIN },
				       { .fd = s->wake[0], .events = POLLIN } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("metrics: poll: %s", strerror(errno));
			break;
		}
		if (p[1].revents)
			break;
		if (!p[0].revents)
			continue;
		_cleanup_close_ int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (c < 0) {
			if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
				continue;
			/* out of fds or memory: back off rather than spin */
			log_warn("metrics: accept: %s", strerror(errno));
			(void)poll(&p[1], 1, 100);
			continue;
		}
		serve(s, c);
		linger(s, c);
	}
	return NULL;
}

static void server_free(struct metrics_server *s)
{
	struct stat st;

	if (s->fd >= 0)
		close(s->fd);
	for (int i = 0; i < 2; i++)
		if (s->wake[i] >= 0)
			close(s->wake[i]);
	/* unless another daemon's socket replaced ours meanwhile */
	if (s->path && lstat(s->path, &st) == 0 && st.st_dev == s->sock_dev &&
	    st.st_ino == s->sock_ino)
		(void)unlink(s->path);
	free(s->path);
	free(s);
}

int metrics_server_start(const char *addr, struct metrics *m, metrics_sample_fn sample, void *ud,
			 struct metrics_server **ret, struct el_error *err)
{
	struct metrics_server *s;
	struct maddr a;
	int r = parse_address(addr, &a, err);

	if (r < 0)
		return r;
	s = calloc(1, sizeof(*s));
	if (!s)
		return el_error_set(err, -ENOMEM, NULL, EL_NO_OFFSET, "out of memory");
	*s = (struct metrics_server){ .m = m, .sample = sample, .ud = ud, .fd = -1,
				      .wake = { -1, -1 } };
	if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		r = el_error_set(err, -errno, NULL, EL_NO_OFFSET, "metrics: pipe: %s", strerror(errno));
		goto fail;
	}
	s->fd = socket(a.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->fd < 0) {
		r = el_error_set(err, -errno, NULL, EL_NO_OFFSET, "metrics: socket: %s",
				 strerror(errno));
		goto fail;
	}
	r = a.family == AF_UNIX ? bind_unix(s, &a, err) : bind_tcp(s, &a, addr, err);
	if (r < 0)
		goto fail;
	if (listen(s->fd, 16) < 0) {
		r = el_error_set(err, -errno, NULL, EL_NO_OFFSET, "cannot listen on %s: %s", s->addr,
				 strerror(errno));
		goto fail;
	}
	r = -pthread_create(&s->thread, NULL, run, s);
	if (r < 0) {
		el_error_set(err, r, NULL, EL_NO_OFFSET, "metrics: cannot start a thread: %s",
			     strerror(-r));
		goto fail;
	}
	*ret = s;
	return 0;
fail:
	server_free(s);
	return r;
}

const char *metrics_server_address(const struct metrics_server *s)
{
	return s->addr;
}

void metrics_server_stop(struct metrics_server *s)
{
	if (!s)
		return;
	while (write(s->wake[1], "x", 1) < 0 && errno == EINTR)
		;
	pthread_join(s->thread, NULL);
	server_free(s);
}
