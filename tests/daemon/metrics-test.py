#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The daemon's --metrics-address, end to end.

The daemon starts with --root, --address and --log-file in a temporary
directory and a containerd address where nothing listens (it connects
lazily); ctr drives its Snapshots service directly (the proxy socket speaks
containerd's Snapshots API). Then:
  a unix socket (a stale socket file at its path is replaced; mode 0660):
  GET /metrics answers the text format, the request counters and the
  snapshot gauges follow the RPCs, HTTP/1.0 too; 404, 405, 400, 431; an
  idle client does not hold the endpoint, and SIGTERM with an idle
  connection open exits 0 and removes the socket;
  a loopback TCP port: the same scrape, the port in the log;
  a non-loopback address: refused at start, exit 2, nothing touched.
Exit 77 (skip) without ctr."""
import argparse
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

TIMEOUT = 10
SNAPSHOTS = "/containerd.services.snapshots.v1.Snapshots/"


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def start(daemon, tmp, metrics):
    if os.path.exists(f"{tmp}/log"):  # each run its own log
        os.rename(f"{tmp}/log", f"{tmp}/log.old")
    args = [daemon, "--root", f"{tmp}/root", "--address", f"{tmp}/sn.sock",
            "--containerd-address", f"{tmp}/no-containerd.sock", "--log-file", f"{tmp}/log",
            "--set-immutable=false", "--metrics-address", metrics]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def connect(metrics):
    if metrics.startswith("/"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        s.connect(metrics)
    else:
        host, port = metrics.rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    return s


def wait_serving(p, tmp, metrics):
    t0 = time.monotonic()
    while time.monotonic() - t0 < TIMEOUT:
        if p.poll() is not None:
            fail(f"the daemon exited with {p.returncode}: {p.stderr.read().decode().strip()}"
                 f" {read(tmp + '/log')}")
        if os.path.exists(f"{tmp}/log") and "msg=serving" in read(f"{tmp}/log"):
            return
        time.sleep(0.05)
    fail(f"not serving within {TIMEOUT} s")


def request(metrics, raw):
    """Sends raw, reads to EOF: (status, headers, body)."""
    s = connect(metrics)
    try:
        s.sendall(raw)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = lines[0]
    headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
    return status, headers, body.decode()


def scrape(metrics, version="HTTP/1.1"):
    status, headers, body = request(metrics, f"GET /metrics {version}\r\nHost: x\r\n\r\n".encode())
    if status != f"{version} 200 OK":
        fail(f"GET /metrics ({version}): {status}")
    if headers.get("content-type") != "text/plain; version=0.0.4; charset=utf-8":
        fail(f"Content-Type {headers.get('content-type')!r}")
    if headers.get("connection") != "close":
        fail(f"Connection {headers.get('connection')!r}")
    if int(headers.get("content-length", -1)) != len(body.encode()):
        fail(f"Content-Length {headers.get('content-length')} for {len(body)} bytes")
    return parse(body)


def parse(body):
    """{series: value} with the series as the text writes it; checks that each
    family has one HELP and one TYPE, before its samples."""
    samples, typed, helped = {}, {}, set()
    for line in body.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            if name in helped:
                fail(f"HELP twice for {name}")
            helped.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            if name in typed:
                fail(f"TYPE twice for {name}")
            typed[name] = kind
        else:
            m = re.fullmatch(r'([a-z_]+)(\{.*\})? (\S+)', line)
            if not m:
                fail(f"not a sample line: {line!r}")
            name = m.group(1)
            family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in typed else name
            if family not in typed or family not in helped:
                fail(f"sample {line!r} before its family's HELP and TYPE")
            samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return samples


def get(samples, series):
    if series not in samples:
        fail(f"no {series} in the scrape: {sorted(samples)}")
    return samples[series]


def rpcs(samples, method, code):
    return samples.get(f'spin_erofs_rpc_requests_total{{method="{SNAPSHOTS}{method}",code="{code}"}}', 0)


def ctr(tmp, *args, ok=True):
    r = subprocess.run(["ctr", "--address", f"{tmp}/sn.sock", "snapshots", "--snapshotter",
                        "spin-erofs", *args], capture_output=True, text=True, timeout=TIMEOUT)
    if ok and r.returncode != 0:
        fail(f"ctr snapshots {' '.join(args)}: {r.stderr.strip()}")
    if not ok and r.returncode == 0:
        fail(f"ctr snapshots {' '.join(args)} succeeded")


def stop(p, tmp):
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        p.kill()
        fail(f"still running {TIMEOUT} s after SIGTERM")
    if rc != 0:
        fail(f"exit status {rc} after SIGTERM: {p.stderr.read().decode().strip()}")
    if "msg=stopped" not in read(f"{tmp}/log"):
        fail("the log does not end with msg=stopped")
    return time.monotonic() - t0


def read(path):
    with open(path) as f:
        return f.read()


def unix_run(daemon, tmp):
    msock = f"{tmp}/metrics.sock"
    # a stale socket: its file stays after its process closed it
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(msock)
    stale.close()
    p = start(daemon, tmp, msock)
    try:
        wait_serving(p, tmp, msock)
        mode = stat.S_IMODE(os.lstat(msock).st_mode)
        if mode != 0o660:
            fail(f"{msock} has mode {mode:o}, not 660")
        if f"metrics={msock}" not in read(f"{tmp}/log"):
            fail("the serving line does not name the metrics address")
        before = scrape(msock)
        if get(before, "spin_erofs_up") != 1:
            fail("spin_erofs_up is not 1")
        if not any(k.startswith("spin_erofs_build_info{version=") for k in before):
            fail("no spin_erofs_build_info")
        print("ok the stale socket replaced, mode 0660, GET /metrics answers")

        # an idle client must not hold the endpoint: it is dropped after 2 s
        idle = connect(msock)
        ctr(tmp, "prepare", "k1")
        ctr(tmp, "prepare", "k1", ok=False)  # ALREADY_EXISTS
        ctr(tmp, "commit", "c1", "k1")
        ctr(tmp, "prepare", "k2", "c1")
        ctr(tmp, "view", "v1", "c1")
        t0 = time.monotonic()
        after = scrape(msock, "HTTP/1.0")
        waited = time.monotonic() - t0
        idle.close()
        if waited > 3:
            fail(f"a scrape behind an idle connection took {waited:.1f} s")
        for method, code, n in [("Prepare", "OK", 2), ("Prepare", "ALREADY_EXISTS", 1),
                                ("Commit", "OK", 1), ("View", "OK", 1)]:
            got = rpcs(after, method, code) - rpcs(before, method, code)
            if got != n:
                fail(f"{method} {code}: {got} more requests counted, expected {n}")
        count = get(after, f'spin_erofs_rpc_duration_seconds_count{{method="{SNAPSHOTS}Prepare"}}')
        inf = get(after, f'spin_erofs_rpc_duration_seconds_bucket{{method="{SNAPSHOTS}Prepare",le="+Inf"}}')
        if count != 3 or inf != count:
            fail(f"Prepare's histogram: _count {count}, +Inf {inf}, expected 3")
        for kind, n in [("committed", 1), ("active", 1), ("view", 1)]:
            if get(after, f'spin_erofs_snapshots{{kind="{kind}"}}') != n:
                fail(f"spin_erofs_snapshots{{kind={kind}}} is not {n}")
        total = shutil.disk_usage(f"{tmp}/root")
        if get(after, 'spin_erofs_root_bytes{kind="free"}') <= 0 or \
                get(after, 'spin_erofs_root_bytes{kind="used"}') > total.total:
            fail("spin_erofs_root_bytes out of range")
        if get(after, 'spin_erofs_apply_total{result="ok"}') != 0:
            fail("an Apply counted without any")
        print(f"ok counters and gauges follow the RPCs (a scrape behind an idle client: {waited:.2f} s)")

        for raw, want in [(b"GET /nope HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found"),
                          (b"GET /metricsx HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found"),
                          (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                           "HTTP/1.1 405 Method Not Allowed"),
                          (b"hello\r\n\r\n", "HTTP/1.1 400 Bad Request"),
                          (b"GET /metrics HTTP/2.0\r\n\r\n", "HTTP/1.1 400 Bad Request"),
                          (b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n",
                           "HTTP/1.1 431 Request Header Fields Too Large")]:
            status, headers, _ = request(msock, raw)
            if status != want:
                fail(f"{raw[:30]!r}...: {status!r}, expected {want!r}")
        status, headers, body = request(msock, b"HEAD /metrics HTTP/1.1\r\n\r\n")
        if status != "HTTP/1.1 200 OK" or body or int(headers["content-length"]) <= 0:
            fail(f"HEAD /metrics: {status}, {len(body)} bytes of body")
        print("ok 404, 405, 400, 431, HEAD")

        # SIGTERM with a client connected and silent
        idle = connect(msock)
        idle.sendall(b"GET /met")
        time.sleep(0.1)
        took = stop(p, tmp)
        idle.close()
        if took > 5:
            fail(f"SIGTERM took {took:.1f} s with an idle metrics client")
        if os.path.exists(msock):
            fail(f"{msock} left behind")
        print(f"ok SIGTERM with an idle metrics connection: exit 0 in {took:.2f} s, socket removed")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def tcp_run(daemon, tmp):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    addr = f"127.0.0.1:{port}"
    p = start(daemon, tmp, addr)
    try:
        wait_serving(p, tmp, addr)
        if f"metrics={addr}" not in read(f"{tmp}/log"):
            fail(f"the serving line does not name {addr}")
        ctr(tmp, "prepare", "t1")
        m = scrape(addr)
        if rpcs(m, "Prepare", "OK") != 1:
            fail("Prepare not counted over TCP")
        # the store persists: k2 of the unix run, and t1
        if get(m, 'spin_erofs_snapshots{kind="active"}') != 2:
            fail("the snapshot gauge does not count the store's actives")
        status, _, _ = request(addr, b"GET / HTTP/1.0\r\n\r\n")
        if status != "HTTP/1.0 404 Not Found":
            fail(f"GET / over TCP: {status}")
        stop(p, tmp)
        print(f"ok TCP {addr}: scrape, 404, SIGTERM exit 0")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def refused_run(daemon, tmp):
    msgs = []
    for addr, what in [("10.0.0.1:9100", "loopback"), ("0.0.0.0:9100", "loopback"),
                       ("metrics.sock", "unix socket path")]:
        r = subprocess.run([daemon, "--root", f"{tmp}/root-refused", "--address",
                            f"{tmp}/refused.sock", "--metrics-address", addr],
                           capture_output=True, text=True, timeout=TIMEOUT)
        if r.returncode != 2:
            fail(f"--metrics-address {addr}: exit {r.returncode}, expected 2")
        if "--metrics-address" not in r.stderr or what not in r.stderr:
            fail(f"--metrics-address {addr}: unclear message {r.stderr.strip()!r}")
        if os.path.exists(f"{tmp}/root-refused") or os.path.exists(f"{tmp}/refused.sock"):
            fail(f"--metrics-address {addr}: refused but the root or the socket was made")
        msgs.append(r.stderr.strip())
    print(f"ok non-loopback refused at start, exit 2: {msgs[0]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemon", required=True)
    a = ap.parse_args()
    if not shutil.which("ctr"):
        print("SKIP: ctr is not installed")
        sys.exit(77)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="spin-metrics-") as tmp:
        refused_run(a.daemon, tmp)
        unix_run(a.daemon, tmp)
        tcp_run(a.daemon, tmp)
    print(f"ok all in {time.monotonic() - t0:.2f} s")


if __name__ == "__main__":
    main()
