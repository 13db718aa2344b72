"""Processes, loop mounts and cleanup."""

import os
import subprocess
import time


class CmdError(Exception):
    pass


def run(args, *, input=None, stdin=None, timeout=600, check=True, env=None):
    """Run a command, capturing stdout and stderr as bytes."""
    try:
        p = subprocess.run(args, input=input, stdin=stdin, capture_output=True,
                           timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise CmdError("timed out after %ds: %s" % (timeout, " ".join(map(str, args))))
    if check and p.returncode != 0:
        raise CmdError("%s exited %d: %s" % (" ".join(map(str, args[:3])), p.returncode,
                                              tail(p.stderr)))
    return p


def tail(b, n=400):
    s = b.decode("utf-8", "replace").strip() if isinstance(b, bytes) else str(b).strip()
    if len(s) > n:
        s = "..." + s[-n:]
    return s.replace("\n", " | ")


def mounts_under(prefix):
    """Mount points at or below prefix, deepest first."""
    prefix = os.path.realpath(prefix)
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            mp = mp.encode().decode("unicode_escape")  # octal escapes like \040
            if mp == prefix or mp.startswith(prefix + "/"):
                out.append(mp)
    return sorted(out, key=lambda m: -m.count("/"))


def umount(mp, tries=20):
    last = None
    for _ in range(tries):
        p = subprocess.run(["umount", mp], capture_output=True)
        if p.returncode == 0:
            return
        last = p.stderr
        if b"not mounted" in p.stderr:
            return
        time.sleep(0.1)
    # last resort: detach lazily so that the run can finish and report it
    subprocess.run(["umount", "-l", mp], capture_output=True)
    raise CmdError("umount %s failed: %s" % (mp, tail(last or b"")))


class Mounts:
    """Registry of our loop mounts, so that every exit path unmounts."""

    def __init__(self):
        self.active = []

    def mount(self, image, mp):
        os.makedirs(mp, exist_ok=True)
        run(["mount", "-t", "erofs", "-o", "ro,loop", image, mp], timeout=120)
        self.active.append(mp)
        return mp

    def umount(self, mp):
        try:
            umount(mp)
        finally:
            if mp in self.active:
                self.active.remove(mp)
        try:
            os.rmdir(mp)
        except OSError:
            pass

    def umount_all(self):
        errors = []
        for mp in list(reversed(self.active)):
            try:
                self.umount(mp)
            except CmdError as e:
                errors.append(str(e))
        return errors


class Mounted:
    """with Mounted(mounts, image, mp) as root: ..."""

    def __init__(self, mounts, image, mp):
        self.mounts, self.image, self.mp = mounts, image, mp

    def __enter__(self):
        return self.mounts.mount(self.image, self.mp)

    def __exit__(self, *exc):
        self.mounts.umount(self.mp)
        return False


def loops_backed_by(prefix, wait=5.0):
    """Loop devices whose backing file lies under prefix (after waiting a
    little: autoclear detaches asynchronously after umount)."""
    prefix = os.path.realpath(prefix)
    deadline = time.time() + wait
    while True:
        p = subprocess.run(["losetup", "-a"], capture_output=True)
        found = [l for l in p.stdout.decode("utf-8", "replace").splitlines() if prefix in l]
        if not found or time.time() > deadline:
            return found
        time.sleep(0.2)
