#!/usr/bin/env python3
"""test_posix.py - what the mount owes programs that expect a local file
system (issue 9): no torn or leaked values, one shared content per file,
modes, name limits, times, unlinked open files, and durability counted
through the real daemon. Each test runs a real mount (see fuselib.py).
Run one test:  test_posix.py --embedkvfs E --imgcheck I NAME
"""

import struct
import zlib
import errno
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time

import fuselib as F
from fuselib import Mount, check, eq, expect_errno, sh, test


def T():
    return F.Test.current


def write_file(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
               mode=0o644):
    fd = os.open(path, flags, mode)
    try:
        off = 0
        while off < len(data):
            off += os.write(fd, data[off:off + 65536])
    finally:
        os.close(fd)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def find(path, data):
    with open(path, "rb") as f:
        img = f.read()
    off = img.find(data)
    check(off >= 0, "%r not in %s" % (data[:16], path))
    return off


def corrupt(path, off):
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(b"\xde\xad\xbe\xef")


def upstream_set(imgs):
    """Clear the participant mask (header flags) of every image, as the
    Go/Rust format leaves it, so that one replica may be written alone
    to make the replicas differ."""
    for path in imgs:
        with open(path, "r+b") as f:
            head = bytearray(f.read(16))
            bs = struct.unpack_from("<I", head, 8)[0]
            f.seek(0)
            blk = bytearray(f.read(bs))
            struct.pack_into("<I", blk, 24, 0)
            struct.pack_into("<I", blk, bs - 4, 0)
            struct.pack_into("<I", blk, bs - 4, zlib.crc32(bytes(blk)))
            f.seek(0)
            f.write(blk)


def fallback_images(newest, older):
    """Two replicas where key k's newest copy is only on replica 0 and
    replica 1 holds an older copy. Returns the images and a function that
    breaks the newest copy: called while mounted, the index still names it
    and every read falls back to the older copy."""
    imgs = T().images(2, bs=512, bc=128)
    upstream_set(imgs)
    F.put(imgs, b"k", older)
    F.put(imgs[:1], b"k", newest)
    off = find(imgs[0], newest[:64]) + 8
    return imgs, lambda: corrupt(imgs[0], off)


# ---- values read through a fall-back copy -----------------------------------

@test
def truncate_after_fallback_stores_no_heap():
    """Newest copy unreadable, older copy smaller: truncate by name keeps
    the older value and zeros, never bytes of the daemon's memory."""
    older = b"older value " * 5
    imgs, breaks = fallback_images(b"N" * 3000, older)
    m = Mount(imgs, opts=["noheal"])
    m.env = {"MALLOC_PERTURB_": "165"}  # uninitialised heap reads 0x5A
    with m:
        eq(os.stat(m.p("k")).st_size, 3000, "the index names the newest")
        breaks()
        os.truncate(m.p("k"), 200)
        eq(read_file(m.p("k")), older + bytes(200 - len(older)),
           "after truncate by name")
    eq(F.values(imgs[:1])[b"k"], older + bytes(200 - len(older)), "stored")


@test
def larger_older_copy_reads_like_get():
    """Newest copy unreadable, older copy larger: the mount reads the older
    value, as `embedkvfs get` does (not EIO); writes and renames work."""
    older = bytes(range(256)) * 12
    imgs, breaks = fallback_images(b"small newest " * 8, older)
    with Mount(imgs, opts=["noheal"]) as m:
        eq(os.stat(m.p("k")).st_size, 13 * 8, "the index names the newest")
        breaks()
        eq(read_file(m.p("k")), older, "read through the mount")
        with open(m.p("k"), "r+b") as f:
            eq(f.read(), older, "read of a writable open")
            f.write(b"!")
        os.rename(m.p("k"), m.p("k2"))
        eq(read_file(m.p("k2")), older + b"!", "after rename")
    got = subprocess.run([F.EMBEDKVFS, "get"] + imgs + ["k2"],
                         capture_output=True)
    eq((got.returncode, got.stdout), (0, older + b"!"), "embedkvfs get")


# ---- one shared content -------------------------------------------------------

APPENDER = r"""
for i in $(seq 1 200); do echo "writer $1 line $i" >> "$2"; done
"""


@test
def concurrent_appenders_keep_every_line():
    """Four shells appending 200 lines each with >> keep all 800 lines."""
    imgs = T().images(bs=4096, bc=256)
    with Mount(imgs) as m:
        p = m.p("log")
        ws = [subprocess.Popen(["bash", "-c", APPENDER, "sh", str(w), p])
              for w in range(4)]
        for w in ws:
            eq(w.wait(300), 0, "appender exit status")
        lines = read_file(p).decode().splitlines()
        eq(len(lines), 800, "lines")
        eq(sorted(lines), sorted("writer %d line %d" % (w, i)
                                 for w in range(4) for i in range(1, 201)))
        eq(os.stat(p).st_size, len(read_file(p)), "stat size")
    eq(len(F.values(imgs)[b"log"].splitlines()), 800, "lines stored")


@test
def open_files_of_one_key_share_content():
    """Writes through one open file are seen by the others, O_APPEND
    appends at the shared end, and each writer's close stores the shared
    content whole."""
    imgs = T().images()
    with Mount(imgs) as m:
        p = m.p("f")
        write_file(p, b"start:")
        a = os.open(p, os.O_WRONLY | os.O_APPEND)
        b = os.open(p, os.O_WRONLY | os.O_APPEND)
        c = os.open(p, os.O_RDWR)
        os.write(a, b"a1,")
        os.write(b, b"b1,")
        os.write(a, b"a2,")
        eq(os.pread(c, 100, 0), b"start:a1,b1,a2,", "seen through c")
        os.pwrite(c, b"S", 0)
        os.close(a)
        eq(read_file(p), b"Start:a1,b1,a2,", "stored by a's close")
        os.write(b, b"b2")
        eq(os.fstat(c).st_size, 17, "fstat of another handle")
        os.close(b)
        os.close(c)
        eq(read_file(p), b"Start:a1,b1,a2,b2")
    eq(F.values(imgs), {b"f": b"Start:a1,b1,a2,b2"})


# ---- modes ------------------------------------------------------------------------

@test
def chmod_install_cp_a_rsync_a():
    """chmod works (kept until the unmount); install -m, cp -a and rsync -a
    of 0600 and 0755 files succeed with their modes."""
    for tool in ("rsync", "install"):
        if not shutil.which(tool):
            raise F.Skip("no " + tool)
    t = T()
    imgs = t.images(bs=1024, bc=256)
    src = t.path("src")
    os.makedirs(src)
    for name, mode in (("secret", 0o600), ("script", 0o755),
                       ("plain", 0o644)):
        with open(os.path.join(src, name), "wb") as f:
            f.write(name.encode() * 10)
        os.chmod(os.path.join(src, name), mode)
    with Mount(imgs) as m:
        write_file(m.p("f"), b"x")
        for mode in (0o600, 0o755, 0o4711, 0o644):
            os.chmod(m.p("f"), mode)
            eq(stat.S_IMODE(os.stat(m.p("f")).st_mode), mode, "chmod %o" % mode)
        sh("install -m 0755 %s/plain %s/installed" % (src, m.mnt))
        eq(stat.S_IMODE(os.stat(m.p("installed")).st_mode), 0o755, "install")
        sh("cp -a %s/secret %s/script %s/" % (src, src, m.mnt))
        for name, mode in (("secret", 0o600), ("script", 0o755)):
            eq(stat.S_IMODE(os.stat(m.p(name)).st_mode), mode,
               "mode of %s after cp -a" % name)
        for name in ("secret", "script"):
            os.unlink(m.p(name))
        # rsync -a writes a temporary file, sets its mode and renames it.
        sh("rsync -a %s/secret %s/script %s/plain %s/" % (src, src, src,
                                                         m.mnt))
        for name, mode in (("secret", 0o600), ("script", 0o755),
                           ("plain", 0o644)):
            st = os.stat(m.p(name))
            eq(stat.S_IMODE(st.st_mode), mode, "mode of %s after rsync -a"
               % name)
            eq(read_file(m.p(name)), name.encode() * 10, name)
        eq(sh("%s/script" % m.mnt, check_rc=False).returncode != 126, True,
           "0755 file executable")
        os.chmod(m.mnt, 0o700)
        eq(stat.S_IMODE(os.stat(m.mnt).st_mode), 0o700, "root chmod")
    with Mount(imgs) as m:
        eq(stat.S_IMODE(os.stat(m.p("secret")).st_mode), 0o644,
           "modes are not kept across a remount")
    eq(F.values(imgs)[b"script"], b"script" * 10)


# ---- names too long -------------------------------------------------------------

@test
def too_long_names_are_enametoolong():
    """Names longer than 255 bytes, or than the key limit, get ENAMETOOLONG
    from create, rename, lookup, stat and unlink."""
    bs = 512
    imgs = T().images(bs=bs)
    maxkey = bs - 36
    with Mount(imgs) as m:
        write_file(m.p("ok"), b"v")
        for n in (256, 300, 1000):
            long = m.p("L" * n)
            expect_errno(errno.ENAMETOOLONG, write_file, long, b"x")
            expect_errno(errno.ENAMETOOLONG, os.stat, long)
            expect_errno(errno.ENAMETOOLONG, os.lstat, long)
            expect_errno(errno.ENAMETOOLONG, os.open, long, os.O_RDONLY)
            expect_errno(errno.ENAMETOOLONG, os.unlink, long)
            expect_errno(errno.ENAMETOOLONG, os.rename, m.p("ok"), long)
            expect_errno(errno.ENAMETOOLONG, os.rename, long, m.p("x"))
        eq(os.listdir(m.mnt), ["ok"])
    imgs = T().images(bs=128)
    maxkey = 128 - 36
    with Mount(imgs) as m:
        write_file(m.p("ok"), b"v")
        long = m.p("k" * (maxkey + 1))
        expect_errno(errno.ENAMETOOLONG, write_file, long, b"x")
        expect_errno(errno.ENAMETOOLONG, os.stat, long)
        expect_errno(errno.ENAMETOOLONG, os.unlink, long)
        expect_errno(errno.ENAMETOOLONG, os.rename, m.p("ok"), long)
        eq(os.listdir(m.mnt), ["ok"])
    eq(F.values(imgs), {b"ok": b"v"})


# ---- times ------------------------------------------------------------------------

@test
def new_files_get_now_as_every_time():
    imgs = T().images()
    with Mount(imgs) as m:
        mount_time = os.stat(m.mnt).st_mtime_ns
        time.sleep(1.1)
        before = time.time_ns()
        write_file(m.p("f"), b"x")
        fd = os.open(m.p("g"), os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        os.close(fd)
        for name in ("f", "g"):
            st = os.stat(m.p(name))
            for what in ("st_atime_ns", "st_mtime_ns", "st_ctime_ns"):
                check(getattr(st, what) >= before - 10**7,
                      "%s %s %d is before the create (%d; mount %d)" % (
                          name, what, getattr(st, what), before, mount_time))


# ---- unlinked open files ------------------------------------------------------------

@test
def fstat_of_unlinked_open_file():
    """fstat of a file unlinked (or renamed over) while open works, the
    data stays readable and writable through the descriptor, and
    tempfile.TemporaryFile works in the mount."""
    imgs = T().images()
    with Mount(imgs) as m:
        p = m.p("f")
        write_file(p, b"hello world")
        fd = os.open(p, os.O_RDWR)
        rd = os.open(p, os.O_RDONLY)
        os.unlink(p)
        st = os.fstat(fd)
        eq((st.st_size, st.st_nlink), (11, 0), "fstat after unlink")
        eq(os.fstat(rd).st_size, 11, "fstat of the reader")
        eq(os.pread(fd, 100, 0), b"hello world", "read after unlink")
        eq(os.pread(rd, 100, 0), b"hello world", "reader after unlink")
        os.pwrite(fd, b"!!", 11)
        eq(os.fstat(fd).st_size, 13, "fstat after a write")
        eq(os.listdir(m.mnt), [], "listing")
        expect_errno(errno.ENOENT, os.stat, p)
        os.close(fd)
        os.close(rd)
        eq(os.listdir(m.mnt), [], "listing after close")
        # Renamed over while open.
        write_file(m.p("a"), b"aaa")
        write_file(m.p("b"), b"bbbbb")
        fd = os.open(m.p("b"), os.O_RDONLY)
        os.rename(m.p("a"), m.p("b"))
        eq(os.fstat(fd).st_size, 5, "fstat after rename over")
        eq(os.read(fd, 100), b"bbbbb")
        os.close(fd)
        eq(read_file(m.p("b")), b"aaa")
        with tempfile.TemporaryFile(dir=m.mnt) as tf:
            tf.write(b"temporary " * 100)
            tf.flush()
            eq(os.fstat(tf.fileno()).st_size, 1000)
            tf.seek(0)
            eq(tf.read(), b"temporary " * 100)
        eq(sorted(os.listdir(m.mnt)), ["b"], "listing after TemporaryFile")
    eq(F.values(imgs), {b"b": b"aaa"})


# ---- durability through the real daemon -------------------------------------------

def fdatasync_counter(m, log):
    """Run m's daemon under strace, counting fdatasync per image."""
    if not shutil.which("strace"):
        raise F.Skip("no strace")
    m.wrapper = ["strace", "-f", "-qq", "-y", "-e", "trace=fdatasync,fsync",
                 "-o", log]
    m.env = {"ASAN_OPTIONS": "detect_leaks=0"}  # LSan cannot ptrace

    def counts():
        with open(log) as f:
            text = f.read()
        return [text.count("<%s>)" % os.path.realpath(i))
                for i in m.images]
    return counts


@test
def each_operation_is_fdatasynced_once_per_replica():
    """Through the real daemon, under strace: a created empty file, a create
    with data, a rewrite, an unlink and a truncate each reach fdatasync on
    every replica before the call returns, and exactly once."""
    t = T()
    imgs = t.images(2)
    log = t.path("strace.log")
    m = Mount(imgs)
    counts = fdatasync_counter(m, log)
    with m:
        def once(what, fn, *args):
            before = counts()
            fn(*args)
            after = counts()
            eq([a - b for a, b in zip(after, before)], [1] * len(imgs),
               "fdatasync per replica for " + what)

        def touch(p):
            os.close(os.open(p, os.O_WRONLY | os.O_CREAT, 0o644))
        once("create of an empty file", touch, m.p("empty"))
        once("create with data", write_file, m.p("new"), b"data")
        once("rewrite", write_file, m.p("new"), b"other data")
        once("unlink", os.unlink, m.p("new"))
        once("truncate", os.truncate, m.p("empty"), 10)
        for i in range(3):
            once("create %d" % i, write_file, m.p("k%d" % i), b"v%d" % i)
            once("rewrite %d" % i, write_file, m.p("k%d" % i), b"w%d" % i)
    eq(F.values(imgs[:1]), {b"empty": bytes(10), b"k0": b"w0", b"k1": b"w1",
                            b"k2": b"w2"})


if __name__ == "__main__":
    sys.exit(F.main(sys.argv[1:]))
