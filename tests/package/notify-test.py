#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The daemon under a service manager, as systemd's Type=notify sees it.

The test binds the datagram socket NOTIFY_SOCKET names and starts the daemon
(--root, --address and --log-file in a temporary directory, a containerd
address where nothing listens: it connects lazily). Then:
  READY=1 with MAINPID, and --address accepts a connection at that moment;
  the log renamed (logrotate) and SIGHUP: RELOADING=1, READY=1, and a new
  log file at the path that says so;
  SIGTERM: STOPPING=1, exit 0.
The same once more with an abstract NOTIFY_SOCKET ("@name")."""
import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

TIMEOUT = 10


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def recv_state(sock):
    try:
        data = sock.recv(4096).decode()
    except socket.timeout:
        fail(f"no notification within {TIMEOUT} s")
    return dict(line.split("=", 1) for line in data.split("\n") if "=" in line)


def start(daemon, tmp, notify_name):
    args = [daemon, "--root", f"{tmp}/root", "--address", f"{tmp}/sn.sock",
            "--containerd-address", f"{tmp}/no-containerd.sock", "--log-file", f"{tmp}/log"]
    return subprocess.Popen(args, env=dict(os.environ, NOTIFY_SOCKET=notify_name),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def expect_ready(sock, p, tmp):
    st = recv_state(sock)
    if st.get("READY") != "1" or st.get("MAINPID") != str(p.pid):
        fail(f"expected READY=1 and MAINPID={p.pid}, got {st}")
    # ready means serving: the socket is there and accepts
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        c.connect(f"{tmp}/sn.sock")
    except OSError as e:
        fail(f"READY=1 sent but {tmp}/sn.sock does not accept: {e}")
    finally:
        c.close()


def stop(sock, p):
    p.send_signal(signal.SIGTERM)
    st = recv_state(sock)
    if st.get("STOPPING") != "1":
        fail(f"expected STOPPING=1 after SIGTERM, got {st}")
    try:
        rc = p.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        p.kill()
        fail(f"still running {TIMEOUT} s after SIGTERM")
    if rc != 0:
        fail(f"exit status {rc} after SIGTERM: {p.stderr.read().decode().strip()}")


def read(path):
    with open(path) as f:
        return f.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemon", required=True)
    a = ap.parse_args()
    t0 = time.monotonic()

    with tempfile.TemporaryDirectory(prefix="spin-notify-") as tmp:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(f"{tmp}/notify")
        sock.settimeout(TIMEOUT)
        p = start(a.daemon, tmp, f"{tmp}/notify")
        try:
            expect_ready(sock, p, tmp)
            print(f"ok READY=1 MAINPID={p.pid}, socket accepting ({time.monotonic() - t0:.2f} s)")

            os.rename(f"{tmp}/log", f"{tmp}/log.1")
            p.send_signal(signal.SIGHUP)
            st = recv_state(sock)
            if st.get("RELOADING") != "1" or not st.get("MONOTONIC_USEC", "").isdigit():
                fail(f"expected RELOADING=1 with MONOTONIC_USEC after SIGHUP, got {st}")
            expect_ready(sock, p, tmp)
            if not os.path.exists(f"{tmp}/log"):
                fail("no new log file after SIGHUP")
            if "log file reopened" not in read(f"{tmp}/log"):
                fail(f"the new log does not say it was reopened: {read(tmp + '/log')!r}")
            if "msg=serving" not in read(f"{tmp}/log.1"):
                fail("the rotated log lost the lines written before SIGHUP")
            print("ok SIGHUP: RELOADING=1, READY=1, the log file reopened")

            stop(sock, p)
            if "msg=stopped" not in read(f"{tmp}/log"):
                fail("the log does not end with msg=stopped")
            print("ok SIGTERM: STOPPING=1, exit 0")
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        sock.close()

        # an abstract socket name, as some service managers pass it
        name = f"spin-notify-{os.getpid()}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind("\0" + name)
        sock.settimeout(TIMEOUT)
        p = start(a.daemon, tmp, "@" + name)
        try:
            expect_ready(sock, p, tmp)
            stop(sock, p)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        sock.close()
        print("ok abstract NOTIFY_SOCKET: READY=1, STOPPING=1")
    print(f"notify-test: {time.monotonic() - t0:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
