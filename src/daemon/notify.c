/* SPDX-License-Identifier: Apache-2.0 */
#include "notify.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_un notify_addr;
static socklen_t notify_len; /* 0: no service manager to tell */

void notify_init(void)
{
	const char *s = getenv("NOTIFY_SOCKET");
	size_t n;

	notify_len = 0;
	if (!s)
		return;
	n = strlen(s);
	/* a path or an abstract name; "vsock:" and the rest are not ours */
	if ((s[0] == '/' || s[0] == '@') && n >= 2 && n < sizeof(notify_addr.sun_path)) {
		memset(&notify_addr, 0, sizeof(notify_addr));
		notify_addr.sun_family = AF_UNIX;
		memcpy(notify_addr.sun_path, s, n);
		if (s[0] == '@')
			notify_addr.sun_path[0] = 0; /* abstract: no terminating NUL counted */
		else
			n++;
		notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	}
	unsetenv("NOTIFY_SOCKET");
}

int notify_send(const char *state)
{
	ssize_t n;
	int fd, r = 0;

	if (!notify_len)
		return 0;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (const struct sockaddr *)&notify_addr,
		   notify_len);
	if (n < 0)
		r = -errno;
	else if ((size_t)n != strlen(state))
		r = -EMSGSIZE;
	close(fd);
	return r;
}

int notify_ready(void)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "READY=1\nMAINPID=%d", (int)getpid());
	return notify_send(buf);
}

int notify_reloading(void)
{
	struct timespec ts;
	char buf[80];

	/* systemd 253's Type=notify-reload wants the time the reload began */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(buf, sizeof(buf), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64,
		 (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
	return notify_send(buf);
}

int notify_stopping(void)
{
	return notify_send("STOPPING=1");
}
