#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The man pages against the programs' --help.

Every long flag (--name) a program's --help prints, and every short flag
(-x) of its usage lines, must appear in the program's man page source; for
an erofs-layer command, in that command's own section (.SS NAME) of
erofs-layer(1). The commands are those the top-level --help lists, so a new
one without a section fails too. Exit 0, or 1 naming each flag missing.
"""
import argparse
import re
import subprocess
import sys

LONG = re.compile(r"(?<![\w-])--([a-z0-9][a-z0-9-]*)")
SHORT = re.compile(r"(?<![\w-])-([a-zA-Z])(?![\w-])")


def run_help(argv):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=30)
    if p.returncode != 0:
        sys.exit(f"check-man: {' '.join(argv)} exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def flags_of(help_text):
    """The flags of a --help: long ones anywhere, short ones in usage lines
    (the prose may quote another program's, e.g. e2fsck -f -p)."""
    flags = {"--" + m for m in LONG.findall(help_text)}
    for line in help_text.splitlines():
        if line.lstrip().startswith(("usage:", "erofs-layer ")) or re.match(r"\s+-[a-zA-Z],", line):
            flags |= {"-" + m for m in SHORT.findall(line)}
    return flags


def plain(roff):
    """Man source as text: \\- is a minus, font changes and \\& vanish."""
    text = roff.replace("\\-", "-")
    text = re.sub(r"\\f[BIRP]|\\f\([A-Z]{2}|\\&|\\:", "", text)
    return text


def sections(text):
    """The .SS subsections of a page, name -> text."""
    out, name = {}, None
    for line in text.splitlines():
        m = re.match(r"\.S[SH]\s+(.*)", line)
        if m:
            name = m.group(1).strip().strip('"') if line.startswith(".SS") else None
            if name:
                out[name] = ""
            continue
        if name:
            out[name] += line + "\n"
    return out


def has_flag(text, flag):
    return re.search(r"(?<![\w-])" + re.escape(flag) + r"(?![\w-])", text) is not None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemon", required=True)
    ap.add_argument("--erofs-layer", required=True)
    ap.add_argument("--man-dir", required=True)
    a = ap.parse_args()

    missing = []
    checked = 0

    page = plain(open(f"{a.man_dir}/spin-erofs-snapshotter.8").read())
    for f in sorted(flags_of(run_help([a.daemon, "--help"]))):
        checked += 1
        if not has_flag(page, f):
            missing.append(f"spin-erofs-snapshotter.8: {f}")

    page = plain(open(f"{a.man_dir}/erofs-layer.1").read())
    top = run_help([a.erofs_layer, "--help"])
    for f in sorted(f for f in flags_of(top) if f.startswith("--")):
        checked += 1
        if not has_flag(page, f):
            missing.append(f"erofs-layer.1: {f}")
    commands = re.findall(r"^\s+erofs-layer ([a-z][a-z0-9-]*)", top, re.M)
    if not commands:
        sys.exit("check-man: erofs-layer --help lists no commands")
    secs = sections(page)
    for cmd in commands:
        if cmd not in secs:
            missing.append(f"erofs-layer.1: no section .SS {cmd}")
            continue
        for f in sorted(flags_of(run_help([a.erofs_layer, cmd, "--help"]))):
            checked += 1
            if not has_flag(secs[cmd], f):
                missing.append(f"erofs-layer.1 (.SS {cmd}): {f}")

    for m in missing:
        print(f"missing: {m}")
    print(f"check-man: {checked} flags of {len(commands)} commands and the daemon, "
          f"{len(missing)} missing")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
