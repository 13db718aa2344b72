/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The service manager's readiness protocol (sd_notify), without libsystemd:
 * when $NOTIFY_SOCKET names a unix datagram socket (a path, or an abstract
 * name written with a leading '@'), each state change is one datagram of
 * newline-separated KEY=VALUE assignments sent to it. Without the variable
 * every call is a no-op returning 0.
 */
#ifndef SPIN_DAEMON_NOTIFY_H
#define SPIN_DAEMON_NOTIFY_H

/* Takes $NOTIFY_SOCKET and removes it from the environment, so the helper
 * programs the daemon starts (mkfs.ext4, e2fsck) never see it. Call it
 * before any thread starts: it changes the environment. */
void notify_init(void);

/* Sends state (e.g. "STOPPING=1") as one datagram: 0, or -errno. */
int notify_send(const char *state);

/* "READY=1" with this process's MAINPID: once the socket serves. */
int notify_ready(void);
/* "RELOADING=1" with MONOTONIC_USEC: at the start of a SIGHUP reload;
 * notify_ready() ends it. */
int notify_reloading(void);
/* "STOPPING=1": the shutdown has begun. */
int notify_stopping(void);

#endif
