/* SPDX-License-Identifier: Apache-2.0 */
/* A unix socket path about to be bound: what is there already. */
#ifndef EL_UNIX_SOCKET_H
#define EL_UNIX_SOCKET_H

/*
 * Makes PATH free for a bind: nothing there (0); a socket nobody answers on
 * is stale and removed (0); -EADDRINUSE when a server answers there (the
 * connect is non-blocking: a live server with a full backlog counts too);
 * -EEXIST when PATH is not a socket; another -errno on failure. The daemon
 * checks its gRPC socket (gRPC would unlink a live one) and its metrics
 * socket with it.
 */
int el_unix_socket_reclaim(const char *path);

#endif
