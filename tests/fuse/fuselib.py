"""fuselib.py - the harness of the embedkvfs FUSE tests (stdlib only).

How this works
- Each test runs in its own temporary directory with its own images and
  mount point, so tests can run in parallel. The images are made and read
  back with the imgcheck helper (tests/fuse/imgcheck.c), which uses the
  library alone: what a mount left behind is judged without the mount.
- A Mount starts `embedkvfs mount` (in the foreground by default, so the
  test holds the daemon's pid and its stderr), waits until the mount shows
  in /proc/self/mounts, and on the way out always unmounts (fusermount3 -u,
  then umount -l) and waits for the daemon to exit and release the image
  locks. Nothing sleeps for a fixed long time: everything polls with a
  deadline.
- Tests need root and /dev/fuse. Without them a test prints "SKIP: why"
  and exits 77 (meson's skip), unless CI=true, where it fails instead.
"""

import errno
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77
EMBEDKVFS = None
TESTDATA = None
IMGCHECK = None


class TestFailure(Exception):
    pass


class Skip(Exception):
    """A test that cannot run here (a missing tool)."""


def check(cond, msg="check failed"):
    if not cond:
        raise TestFailure(msg)


def eq(got, want, what=""):
    if got != want:
        g, w = repr(got), repr(want)
        if len(g) > 300:
            g = g[:300] + "..."
        if len(w) > 300:
            w = w[:300] + "..."
        raise TestFailure("%s: got %s, want %s" % (what or "value", g, w))


def expect_errno(code, fn, *args, **kw):
    """Run fn and demand that it fails with OSError errno code."""
    try:
        fn(*args, **kw)
    except OSError as e:
        if e.errno != code:
            raise TestFailure("%s: errno %s (%s), want %s" % (
                getattr(fn, "__name__", fn), errno.errorcode.get(e.errno),
                e, errno.errorcode[code]))
        return
    raise TestFailure("%s succeeded, want %s" % (
        getattr(fn, "__name__", fn), errno.errorcode[code]))


def wait_for(cond, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        if cond():
            return
        if time.monotonic() > deadline:
            raise TestFailure("timed out waiting for " + what)
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def environment_problem():
    """Why FUSE tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse not accessible"
    if not shutil.which("fusermount3"):
        return "no fusermount3"
    return None


def mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            mp = fields[1].replace("\\040", " ")
            if mp == path:
                return True
    return False


def run(args, check_rc=True, input=None, timeout=60):
    """Run a command; returns CompletedProcess (text mode)."""
    p = subprocess.run([str(a) for a in args], capture_output=True,
                       input=input, timeout=timeout,
                       text=not isinstance(input, bytes))
    if check_rc and p.returncode != 0:
        raise TestFailure("%s: exit %d: %s%s" % (
            " ".join(str(a) for a in args), p.returncode, p.stdout,
            p.stderr))
    return p


def sh(cmd, check_rc=True, timeout=60):
    """Run a shell command line the way a user would type it."""
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True,
                       timeout=timeout)
    if check_rc and p.returncode != 0:
        raise TestFailure("%s: exit %d: %s%s" % (cmd, p.returncode, p.stdout,
                                                  p.stderr))
    return p


def image_locked(path):
    """Whether some process holds a lock on the image file."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# ---- key names ----------------------------------------------------------------
# The test-side model of how a key becomes a file name (embedkvfs(1), "File
# names"), written from the manual, not from src/tool/names.c. The
# cli-names-model test (tests/cli/test_names_model.py) holds it against
# what the tool itself prints for a set of tricky keys, so the two cannot
# drift apart unnoticed.

# Code points written as %XX of their UTF-8 bytes although valid: what a
# terminal obeys, or what hides or reorders text.
INVISIBLE_RANGES = (
    (0x0080, 0x009F),  # C1 controls (U+009B is CSI)
    (0x061C, 0x061C),  # arabic letter mark
    (0x200B, 0x200B),  # zero width space
    (0x200E, 0x200F),  # left-to-right and right-to-left marks
    (0x2028, 0x202E),  # line/paragraph separators, bidi embeddings and
                       # overrides
    (0x2060, 0x206F),  # word joiner, invisible operators, bidi isolates
    (0xFEFF, 0xFEFF),  # zero width no-break space (BOM)
    (0xFFF9, 0xFFFB),  # interlinear annotation characters
)
NAME_MAX = 255       # longer escaped names are shortened
SHORT_PREFIX = 200   # bytes of the escaped name a shortened name keeps


def utf8_seq_len(b, i):
    """Length of the valid UTF-8 sequence at b[i] (1 for ASCII), or 0 if
    b[i] starts none (stray continuation, overlong, surrogate, > U+10FFFF,
    truncated)."""
    c = b[i]
    if c < 0x80:
        return 1
    if 0xC2 <= c <= 0xDF:
        n = 2
    elif 0xE0 <= c <= 0xEF:
        n = 3
    elif 0xF0 <= c <= 0xF4:
        n = 4
    else:
        return 0
    seq = b[i:i + n]
    if len(seq) != n:
        return 0
    try:
        seq.decode("utf-8")  # strict: no overlongs, no surrogates
    except UnicodeDecodeError:
        return 0
    return n


def invisible(cp):
    return any(lo <= cp <= hi for lo, hi in INVISIBLE_RANGES)


def name_hash(key):
    """FNV-1a 64 of the key: the tail of a shortened name."""
    h = 14695981039346656037
    for c in key:
        h = ((h ^ c) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def escape_key(key):
    """The file name (bytes) of a key (bytes), as the mount and ls show it."""
    if key == b"":
        return b"%"
    dots = key in (b".", b"..")
    out = bytearray()
    i = 0
    while i < len(key):
        c = key[i]
        n = utf8_seq_len(key, i)
        if n == 1 and not (c < 0x20 or c == 0x7F or c in b"/%") and not dots:
            out.append(c)
        elif n > 1 and not invisible(ord(key[i:i + n].decode("utf-8"))):
            out += key[i:i + n]
        else:
            # One byte, or every byte of an invisible character.
            for b in key[i:i + max(n, 1)]:
                out += b"%%%02X" % b
        i += max(n, 1)
    if len(out) <= NAME_MAX:
        return bytes(out)
    # Too long: a prefix cut where it splits neither a UTF-8 character nor
    # a %XX escape, then %# and the key's hash in 16 upper-case hex digits.
    cut = SHORT_PREFIX
    while cut > 0 and ((out[cut] & 0xC0) == 0x80 or
                       (cut >= 1 and out[cut - 1] == 0x25) or
                       (cut >= 2 and out[cut - 2] == 0x25)):
        cut -= 1
    return bytes(out[:cut]) + b"%%#%016X" % name_hash(key)


# ---- images -----------------------------------------------------------------

def fmt(images, bs=512, bc=256):
    run([IMGCHECK, "format", bs, bc] + list(images))


def put(images, key, value):
    run([IMGCHECK, "put", key.hex() if key else "", "@" + _tmpfile(value)]
        + list(images))


_tmp_counter = [0]


def _tmpfile(data):
    _tmp_counter[0] += 1
    path = os.path.join(Test.current.dir, ".val%d" % _tmp_counter[0])
    with open(path, "wb") as f:
        f.write(data)
    return path


def dump(images, nolock=False):
    """{key bytes: value bytes (or ('error', msg))} plus the stats."""
    args = [IMGCHECK, "dump"] + (["--nolock"] if nolock else []) + list(images)
    p = run(args)
    d = json.loads(p.stdout)
    keys = {}
    for k, v in d["keys"].items():
        keys[bytes.fromhex(k)] = (bytes.fromhex(v["value"]) if "value" in v
                                  else ("error", v["error"]))
    d["values"] = keys
    return d


def values(images, nolock=False):
    return dump(images, nolock)["values"]


# ---- the mount ----------------------------------------------------------------

class Mount:
    """embedkvfs mount of images on a fresh mount point; a context manager."""

    def __init__(self, images, opts=(), foreground=True, mnt=None, flags=()):
        t = Test.current
        self.images = list(images)
        self.opts = list(opts)
        self.flags = list(flags)  # e.g. -d, -s
        self.foreground = foreground
        self.mnt = mnt or t.path("mnt%d" % t.next_id())
        os.makedirs(self.mnt, exist_ok=True)
        self.proc = None
        self.wrapper = []  # e.g. strace: run the daemon under it
        self.env = {}      # added to the daemon's environment
        self.killed = False
        self.log = t.path("mount%d.log" % t.next_id())
        t.mounts.append(self)

    def args(self):
        a = self.wrapper + [EMBEDKVFS, "mount"]
        if self.foreground:
            a.append("-f")
        a += self.flags
        for o in self.opts:
            a += ["-o", o]
        return a + self.images + [self.mnt]

    def start(self):
        if self.foreground:
            self.logf = open(self.log, "wb")
            env = dict(os.environ, **self.env)
            self.proc = subprocess.Popen([str(a) for a in self.args()],
                                         stdout=self.logf, stderr=self.logf,
                                         env=env)

            def up():
                if self.proc.poll() is not None:
                    raise TestFailure("daemon exited %d: %s" % (
                        self.proc.returncode, self.stderr()))
                return mounted(self.mnt)
            wait_for(up, 15, "mount of " + self.mnt)
        else:
            p = run(self.args(), check_rc=False, timeout=30)
            with open(self.log, "w") as f:
                f.write(p.stderr)
            if p.returncode != 0:
                raise TestFailure("mount exit %d: %s" % (p.returncode,
                                                         p.stderr))
            wait_for(lambda: mounted(self.mnt), 15, "mount of " + self.mnt)
        return self

    def stderr(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def p(self, name):
        """Path of a file in the mount (name: str or bytes)."""
        if isinstance(name, bytes):
            return os.fsencode(self.mnt) + b"/" + name
        return os.path.join(self.mnt, name)

    def unmount(self, how="fusermount3"):
        if mounted(self.mnt):
            if how == "umount":
                r = run(["umount", self.mnt], check_rc=False)
            else:
                r = run(["fusermount3", "-u", self.mnt], check_rc=False)
            if r.returncode != 0:
                run(["umount", "-l", self.mnt], check_rc=False)
        self.wait_exit()

    def wait_exit(self, timeout=15):
        if self.proc:
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise TestFailure("daemon did not exit after unmount")
            self.logf.close()
            # A daemon that exits non-zero after an unmount (a sanitizer
            # report, say) fails the test; one a test killed does not.
            if rc != 0 and not self.killed:
                raise TestFailure("daemon exit status %d: %s" % (
                    rc, self.stderr()))
        wait_for(lambda: not any(image_locked(i) for i in self.images),
                 timeout, "image locks to be released")

    def kill(self, sig=signal.SIGKILL):
        self.killed = sig != signal.SIGTERM
        self.proc.send_signal(sig)

    def cleanup(self):
        """Whatever happened: no mount and no daemon left behind."""
        if mounted(self.mnt):
            r = run(["fusermount3", "-u", self.mnt], check_rc=False)
            if r.returncode != 0:
                run(["umount", "-l", self.mnt], check_rc=False)
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.logf.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if exc[0] is None:
            self.unmount()
        else:
            self.cleanup()
        return False


def mount_fails(images, opts=(), mnt=None):
    """Run a mount that must fail; returns (exit code, stderr)."""
    t = Test.current
    if mnt is None:
        mnt = t.path("mnt%d" % t.next_id())
        os.makedirs(mnt)
    args = [EMBEDKVFS, "mount"]
    for o in opts:
        args += ["-o", o]
    p = run(args + list(images) + [mnt], check_rc=False, timeout=30)
    if p.returncode == 0:
        if mounted(mnt):
            run(["fusermount3", "-u", mnt], check_rc=False)
        raise TestFailure("mount succeeded, want a failure")
    check(not mounted(mnt), "a failed mount left %s mounted" % mnt)
    return p.returncode, p.stderr


# ---- the test runner ------------------------------------------------------------

TESTS = {}


def test(fn):
    TESTS[fn.__name__] = fn
    return fn


class Test:
    current = None

    def __init__(self, name):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="ekvfs-%s-" % name)
        self.mounts = []
        self.ids = 0
        self.cleanups = []

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def next_id(self):
        self.ids += 1
        return self.ids

    def images(self, n=1, bs=512, bc=256, names=None):
        paths = [self.path(names[i] if names else "img%d" % i)
                 for i in range(n)]
        fmt(paths, bs, bc)
        return paths

    def finish(self):
        for m in reversed(self.mounts):
            try:
                m.cleanup()
            except Exception as e:  # keep cleaning
                print("cleanup: %s" % e, file=sys.stderr)
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:
                print("cleanup: %s" % e, file=sys.stderr)
        if not any(mounted(m.mnt) for m in self.mounts):
            shutil.rmtree(self.dir, ignore_errors=True)


def main(argv):
    global EMBEDKVFS, IMGCHECK, TESTDATA
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--embedkvfs")
    ap.add_argument("--imgcheck")
    ap.add_argument("--testdata")  # the project's testdata/, if given
    ap.add_argument("--list", action="store_true")
    ap.add_argument("tests", nargs="*")
    a = ap.parse_args(argv)
    if a.list:
        print("\n".join(TESTS))
        return 0
    EMBEDKVFS = os.path.abspath(a.embedkvfs)
    IMGCHECK = os.path.abspath(a.imgcheck)
    TESTDATA = a.testdata
    why = environment_problem()
    if why:
        if os.environ.get("CI") == "true":
            print("FAIL: FUSE tests cannot run: %s (CI=true)" % why)
            return 1
        print("SKIP: %s" % why)
        return SKIP
    failed = skipped = 0
    names = a.tests or list(TESTS)
    for name in names:
        t = Test(name)
        Test.current = t
        start = time.monotonic()
        try:
            TESTS[name]()
            print("ok %s (%.2fs)" % (name, time.monotonic() - start))
        except Skip as e:
            skipped += 1
            print("SKIP: %s: %s" % (name, e))
        except Exception as e:
            failed += 1
            import traceback
            traceback.print_exc()
            print("FAIL %s: %s" % (name, e))
            for m in t.mounts:
                err = m.stderr()
                if err:
                    print("--- daemon stderr (%s):\n%s" % (m.mnt, err))
        finally:
            t.finish()
    if failed:
        return 1
    if skipped == len(names):
        if os.environ.get("CI") == "true":
            print("FAIL: skipped under CI=true")
            return 1
        return SKIP
    return 0
