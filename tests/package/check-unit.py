#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The packaged systemd unit: systemd-analyze verify finds nothing to say,
and systemd-analyze security --offline=yes rates its exposure below
--max-exposure (the unit as shipped measures 1.2 on systemd 252).

verify wants ExecStart's program to exist: it checks a copy of the unit
whose ExecStart names the built daemon. Exit 77 (skip) without
systemd-analyze."""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile


def analyze(args):
    env = dict(os.environ, SYSTEMD_LOG_TARGET="console", SYSTEMD_COLORS="0")
    return subprocess.run(["systemd-analyze"] + args, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env, timeout=60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--unit", required=True)
    ap.add_argument("--daemon", required=True)
    ap.add_argument("--max-exposure", type=float, default=2.0)
    a = ap.parse_args()
    if not shutil.which("systemd-analyze"):
        print("skip: no systemd-analyze (apt-get install systemd)")
        return 77

    text = open(a.unit).read()
    if "ExecStart=/usr/sbin/spin-erofs-snapshotter " not in text:
        sys.exit("check-unit: ExecStart does not start /usr/sbin/spin-erofs-snapshotter")
    failed = False
    with tempfile.TemporaryDirectory(prefix="spin-unit-") as tmp:
        unit = os.path.join(tmp, os.path.basename(a.unit))
        with open(unit, "w") as f:
            f.write(text.replace("ExecStart=/usr/sbin/spin-erofs-snapshotter ",
                                 f"ExecStart={os.path.realpath(a.daemon)} "))

        p = analyze(["verify", "--man=no", unit])
        out = (p.stdout + p.stderr).strip()
        print(f"verify: exit {p.returncode}" + (f"\n{out}" if out else ", nothing reported"))
        if p.returncode != 0 or out:
            failed = True

        p = analyze(["security", "--offline=yes", "--no-pager", unit])
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", p.stdout)
        if p.stderr.strip():
            print(f"security: {p.stderr.strip()}")
            failed = True
        if not m:
            print(f"security: no exposure level in its output (exit {p.returncode})")
            return 1
        score = float(m.group(1))
        print(f"security: exposure {score} (at most {a.max_exposure})")
        for line in p.stdout.splitlines():
            if line.startswith("✗"):
                print("  " + re.sub(r"\s{2,}", "  ", line.strip()))
        if score > a.max_exposure:
            failed = True

        # the sandbox settings that matter most are really there
        for key in ("Type=notify", "Before=containerd.service", "RuntimeDirectory=spin-stack",
                    "StateDirectory=spin-stack/erofs-snapshotter", "LimitNOFILE=1048576",
                    "Restart=on-failure", "ProtectSystem=strict", "NoNewPrivileges=yes",
                    "--containerd-address /run/containerd/containerd.sock"):
            if key not in text:
                print(f"missing from the unit: {key}")
                failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
