#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The installed daemon started as its unit starts it, without systemd (the
CI machine has none running): the unit's ExecStart= word for word, the
RuntimeDirectory= and StateDirectory= made as systemd makes them, and a
NOTIFY_SOCKET bound here. READY=1 must come, the default socket must accept
then, the default root must hold the store; SIGTERM stops it with 0. What
this made is removed again. An existing state directory (someone's layers)
or a daemon answering on the default socket stops the test; /run/spin-stack
itself may exist (the differ suite points a link there).
  unit-start.py UNIT"""
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

TIMEOUT = 15


def fail(msg):
    print("FAIL: unit-start: %s" % msg)
    sys.exit(1)


def unit_values(path):
    vals = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", ";", "[")) and "=" in line:
                k, v = line.split("=", 1)
                vals.setdefault(k.strip(), []).append(v.strip())
    return vals


def main():
    unit = sys.argv[1]
    v = unit_values(unit)
    argv = shlex.split(v["ExecStart"][-1])
    run_dir = os.path.join("/run", v["RuntimeDirectory"][-1])
    state_dir = os.path.join("/var/lib", v["StateDirectory"][-1])
    sock_path = os.path.join(run_dir, "erofs-snapshotter.sock")
    made = []
    if os.path.lexists(sock_path):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            c.connect(sock_path)
            fail("a daemon answers on %s already" % sock_path)
        except OSError:
            os.unlink(sock_path)  # stale, or a link to a lab gone
        finally:
            c.close()
    for d, mode in ((run_dir, 0o755), (state_dir, int(v.get("StateDirectoryMode", ["0755"])[-1], 8))):
        if d == run_dir and os.path.isdir(d):
            continue
        if os.path.exists(d):
            fail("%s exists already: not starting a daemon over it" % d)
        top = d
        while not os.path.exists(os.path.dirname(top)):
            top = os.path.dirname(top)
        os.makedirs(d, mode)
        os.chmod(d, mode)
        made.append(top)
    tmp = tempfile.mkdtemp(prefix="unit-start-")
    p = None
    try:
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ns.bind(os.path.join(tmp, "notify"))
        ns.settimeout(TIMEOUT)
        env = dict(os.environ, NOTIFY_SOCKET=os.path.join(tmp, "notify"))
        p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            msg = ns.recv(4096).decode()
        except socket.timeout:
            fail("no READY=1 within %d s from %s" % (TIMEOUT, " ".join(argv)))
        if "READY=1" not in msg.split("\n"):
            fail("the first notification is %r, not READY=1" % msg)
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            c.connect(sock_path)
        except OSError as e:
            fail("READY=1 came, but %s does not accept: %s" % (sock_path, e))
        c.close()
        if not os.listdir(state_dir):
            fail("the default root %s is empty after READY=1" % state_dir)
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            fail("SIGTERM did not stop it within %d s" % TIMEOUT)
        if rc != 0:
            fail("exit status %d after SIGTERM: %s" % (rc, p.stderr.read().decode()[-500:]))
        p = None
        print("ok unit's ExecStart (%s): READY=1, %s accepting, %s holding %s, SIGTERM exit 0"
              % (" ".join(argv), sock_path, state_dir, " ".join(sorted(os.listdir(state_dir)))))
    finally:
        if p is not None:
            p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
        for d in made:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
