#!/usr/bin/env python3
"""test_mount.py - embedkvfs mount on real FUSE mounts.

Each test is one behaviour of embedkvfs(1)'s mount, driven with the system
calls and commands users type (cp, cat, rm, ls, mv, truncate, echo >>,
touch, df, stat), and judged afterwards by reading the images with the
imgcheck helper. Run one test:  test_mount.py --embedkvfs E --imgcheck I NAME
(meson registers every name that --list prints). See fuselib.py for the
harness.
"""

import ctypes
import errno
import os
import random
import signal
import stat
import subprocess
import sys
import time

import fuselib as F
from fuselib import Mount, check, eq, expect_errno, sh, test



def T():
    return F.Test.current


def write_file(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC):
    fd = os.open(path, flags, 0o644)
    try:
        off = 0
        while off < len(data):
            off += os.write(fd, data[off:off + 65536])
    finally:
        os.close(fd)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def cat(path):
    """The bytes cat(1) prints."""
    return subprocess.run(["cat", path], capture_output=True,
                          check=True).stdout


def names(m):
    return sorted(os.listdir(m.mnt))


def one_line_error(rc, err, *words):
    lines = [l for l in err.splitlines() if l.strip()]
    eq(len(lines), 1, "stderr lines (%r)" % err)
    check(rc != 0, "exit status 0")
    for w in words:
        check(w in lines[0], "%r not in %r" % (w, lines[0]))
    return lines[0]


def corrupt(path, offset, data=b"\xde\xad\xbe\xef"):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


# ---- mounting and unmounting ----------------------------------------------

@test
def mount_detaches_and_unmounts():
    """Detaches by default; fusermount3 -u and umount(8) both end the
    daemon (image lock released) with everything stored."""
    imgs = T().images()
    m = Mount(imgs, foreground=False)
    with m:
        write_file(m.p("k"), b"v")
        check(F.image_locked(imgs[0]), "image not locked while mounted")
    eq(F.values(imgs), {b"k": b"v"}, "image after fusermount3 -u")
    m2 = Mount(imgs, foreground=False).start()
    write_file(m2.p("k2"), b"w")
    m2.unmount(how="umount")
    eq(F.values(imgs), {b"k": b"v", b"k2": b"w"}, "image after umount")


@test
def mount_signals_leave_unclosed_files_unchanged():
    """SIGTERM, SIGINT and SIGHUP unmount. A value is stored only by the
    close or fsync of its writer: a file rewritten half way (O_TRUNC, not
    closed) keeps its complete old value, and the daemon names the key on
    stderr. Closed and fsynced files are stored; the lock is released."""
    imgs = T().images()
    old = b"the complete old value " * 40
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        m = Mount(imgs).start()
        write_file(m.p("pending"), old)
        write_file(m.p("done"), b"closed %d" % sig)
        fd = os.open(m.p("pending"), os.O_WRONLY | os.O_TRUNC)
        os.write(fd, b"half")
        fd2 = os.open(m.p("synced"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.write(fd2, b"fsynced %d" % sig)
        os.fsync(fd2)
        os.write(fd2, b" and more, never closed")
        m.kill(sig)
        m.killed = False
        eq(m.proc.wait(15), 0, "daemon exit status after %s" % sig)
        for f in (fd, fd2):
            try:
                os.close(f)
            except OSError:
                pass  # the mount is gone
        m.unmount()
        check(not F.mounted(m.mnt), "still mounted after %s" % sig)
        eq(F.values(imgs), {b"done": b"closed %d" % sig, b"pending": old,
                            b"synced": b"fsynced %d" % sig},
           "images after %s" % sig)
        lines = m.stderr().splitlines()
        for key in ("pending", "synced"):
            check(any(l.startswith("embedkvfs: %s: left unchanged" % key)
                      for l in lines),
                  "stderr does not name %s: %r" % (key, lines))
        check(not any("done" in l for l in lines),
              "stderr names a closed key: %r" % lines)


@test
def mount_debug_and_single_thread_flags():
    """-d prints every FUSE request (and stays in the foreground); -s
    serves with one thread."""
    imgs = T().images()
    with Mount(imgs, flags=["-d"]) as m:
        write_file(m.p("k"), b"v")
        os.stat(m.p("k"))
        F.wait_for(lambda: "opcode: CREATE" in m.stderr(), 10,
                   "debug output")
    with Mount(imgs, flags=["-s"]) as m:
        eq(read_file(m.p("k")), b"v")
        write_file(m.p("k"), b"w")
        eq(os.stat(m.p("k")).st_size, 1)
    eq(F.values(imgs), {b"k": b"w"})


@test
def mount_help_and_bad_option():
    p = F.run([F.EMBEDKVFS, "mount", "--help"])
    check("degraded" in p.stdout and "nosync" in p.stdout, p.stdout)
    imgs = T().images()
    before = F.sha256(imgs[0])
    rc, err = F.mount_fails(imgs, opts=["no_such_option"])
    check("no_such_option" in err, err)
    eq(F.sha256(imgs[0]), before, "image touched by a refused mount")
    p = F.run([F.EMBEDKVFS, "mount", imgs[0]], check_rc=False)
    eq(p.returncode, 2, "exit status without a mount point")


@test
def mount_error_missing_image():
    rc, err = F.mount_fails([T().path("nope.img")])
    one_line_error(rc, err, "nope.img", "no such file")


@test
def mount_error_wrong_size():
    imgs = T().images()
    with open(imgs[0], "ab") as f:
        f.write(b"\0" * 100)
    rc, err = F.mount_fails(imgs)
    one_line_error(rc, err, imgs[0])


@test
def mount_error_not_an_image():
    path = T().path("random.img")
    with open(path, "wb") as f:
        f.write(os.urandom(512 * 16))
    rc, err = F.mount_fails([path])
    one_line_error(rc, err, path)


@test
def mount_error_mismatched_geometry():
    t = T()
    a = t.images(1, bs=512, bc=64, names=["a.img"])
    b = t.images(1, bs=512, bc=32, names=["b.img"])
    rc, err = F.mount_fails(a + b)
    one_line_error(rc, err, "geometry")


@test
def mount_error_image_locked():
    """A second mount of a mounted image is refused: the image is busy."""
    imgs = T().images()
    with Mount(imgs):
        rc, err = F.mount_fails(imgs)
        one_line_error(rc, err, imgs[0], "locked")
        rc, err = F.mount_fails(imgs, opts=["ro"])
        one_line_error(rc, err, imgs[0], "locked")


@test
def mount_error_mountpoint():
    t = T()
    imgs = t.images()
    before = F.sha256(imgs[0])
    rc, err = F.mount_fails(imgs, mnt=t.path("missing"))
    one_line_error(rc, err, "missing", "mount point")
    afile = t.path("afile")
    write_file(afile, b"")
    rc, err = F.mount_fails(imgs, mnt=afile)
    one_line_error(rc, err, "not a directory")
    eq(F.sha256(imgs[0]), before, "image touched by a refused mount")


# ---- files ---------------------------------------------------------------

@test
def cp_cat_ls_roundtrip():
    t = T()
    imgs = t.images(bs=512, bc=512)
    data = os.urandom(20000)
    src = t.path("src.bin")
    write_file(src, data)
    with Mount(imgs) as m:
        sh("cp %s %s/file.bin" % (src, m.mnt))
        eq(cat(m.p("file.bin")), data, "cat")
        sh("cp %s/file.bin %s" % (m.mnt, t.path("back.bin")))
        eq(read_file(t.path("back.bin")), data, "cp back")
        eq(sh("ls %s" % m.mnt).stdout.split(), ["file.bin"], "ls")
        eq(sh("stat -c %%s %s/file.bin" % m.mnt).stdout.strip(), "20000")
        sh("echo hello > %s/greeting" % m.mnt)
        eq(cat(m.p("greeting")), b"hello\n")
    eq(F.values(imgs), {b"file.bin": data, b"greeting": b"hello\n"})


@test
def write_then_stat_shows_new_size():
    """Attribute caching never hides a size: growing an open file, closing
    it, rewriting it shorter, from this and from other processes."""
    imgs = T().images(bs=512, bc=512)
    with Mount(imgs) as m:
        p = m.p("grow")
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        for i in range(1, 21):
            os.write(fd, b"x" * 100)
            eq(os.stat(p).st_size, 100 * i, "stat while writing")
            if i % 5 == 0:
                eq(sh("stat -c %%s %s" % p).stdout.strip(), str(100 * i),
                   "stat(1) while writing")
        os.close(fd)
        eq(os.stat(p).st_size, 2000, "after close")
        write_file(p, b"abc")
        eq(os.stat(p).st_size, 3, "after a shorter rewrite")
        sh("printf 12345678 > %s" % p)
        eq(os.stat(p).st_size, 8, "after a rewrite by another process")
        eq(sh("wc -c < %s" % p).stdout.strip(), "8")


@test
def append_with_echo_and_o_append():
    imgs = T().images()
    with Mount(imgs) as m:
        sh("echo one > {0}/log; echo two >> {0}/log; echo three >> {0}/log"
           .format(m.mnt))
        eq(cat(m.p("log")), b"one\ntwo\nthree\n")
        fd = os.open(m.p("log"), os.O_WRONLY | os.O_APPEND)
        os.write(fd, b"A")
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, b"B")  # O_APPEND: still at the end
        os.close(fd)
        eq(read_file(m.p("log")), b"one\ntwo\nthree\nAB")
    eq(F.values(imgs), {b"log": b"one\ntwo\nthree\nAB"})


@test
def truncate_ftruncate_o_trunc():
    imgs = T().images()
    with Mount(imgs) as m:
        p = m.p("f")
        write_file(p, b"hello world")
        sh("truncate -s 5 %s" % p)
        eq(read_file(p), b"hello", "truncate -s 5")
        sh("truncate -s 8 %s" % p)
        eq(read_file(p), b"hello\0\0\0", "truncate -s 8")
        os.truncate(p, 0)
        eq(read_file(p), b"", "truncate(2) to 0")
        eq(os.stat(p).st_size, 0)
        fd = os.open(p, os.O_RDWR)
        os.write(fd, b"abcdef")
        os.ftruncate(fd, 2)
        eq(os.fstat(fd).st_size, 2, "fstat after ftruncate")
        os.close(fd)
        eq(read_file(p), b"ab", "ftruncate")
        write_file(p, b"0123456789")
        write_file(p, b"new")  # O_TRUNC
        eq(read_file(p), b"new", "O_TRUNC")
        expect_errno(errno.ENOENT, os.truncate, m.p("missing"), 3)
    eq(F.values(imgs), {b"f": b"new"})


@test
def touch_creates_empty_value():
    """touch stores an empty value: in the image as soon as touch returns,
    and touching an existing key keeps its value."""
    imgs = T().images()
    with Mount(imgs) as m:
        sh("touch %s/empty" % m.mnt)
        eq(os.stat(m.p("empty")).st_size, 0)
        eq(F.values(imgs, nolock=True).get(b"empty"), b"",
           "durable after touch")
        write_file(m.p("full"), b"content")
        sh("touch %s/full" % m.mnt)
        eq(read_file(m.p("full")), b"content")
        os.mknod(m.p("viamknod"), stat.S_IFREG | 0o644)
        eq(os.stat(m.p("viamknod")).st_size, 0)
    eq(F.values(imgs), {b"empty": b"", b"full": b"content",
                        b"viamknod": b""})


@test
def sparse_writes_read_as_zeros():
    imgs = T().images(bs=512, bc=512)
    with Mount(imgs) as m:
        fd = os.open(m.p("sparse"), os.O_RDWR | os.O_CREAT)
        os.pwrite(fd, b"end", 5000)
        os.close(fd)
        eq(read_file(m.p("sparse")), b"\0" * 5000 + b"end")
        write_file(m.p("f"), b"abc")
        fd = os.open(m.p("f"), os.O_WRONLY)
        os.pwrite(fd, b"z", 10)
        os.close(fd)
        eq(read_file(m.p("f")), b"abc" + b"\0" * 7 + b"z")
        sh("dd if=/dev/zero of=%s/dd bs=1 count=1 seek=999 status=none"
           % m.mnt)
        eq(os.stat(m.p("dd")).st_size, 1000)
    v = F.values(imgs)
    eq(v[b"sparse"], b"\0" * 5000 + b"end")
    eq(v[b"dd"], b"\0" * 1000)


@test
def rm_deletes_key():
    imgs = T().images()
    with Mount(imgs) as m:
        for n in ("a", "b", "c"):
            write_file(m.p(n), n.encode())
        sh("rm %s/a" % m.mnt)
        expect_errno(errno.ENOENT, os.stat, m.p("a"))
        eq(names(m), ["b", "c"])
        check(sh("rm %s/a" % m.mnt, check_rc=False).returncode != 0,
              "rm of a missing file succeeded")
        os.unlink(m.p("b"))
        eq(names(m), ["c"])
    eq(F.values(imgs), {b"c": b"c"})


@test
def unlink_while_open_does_not_recreate():
    """An unlinked open file keeps working on its own buffer; its close
    does not bring the key back, nor clobber a new file of that name."""
    imgs = T().images()
    with Mount(imgs) as m:
        p = m.p("f")
        write_file(p, b"original")
        fd = os.open(p, os.O_RDWR)
        os.unlink(p)
        check(not os.path.exists(p), "exists after unlink")
        os.write(fd, b"CHANGED")
        os.lseek(fd, 0, os.SEEK_SET)
        eq(os.read(fd, 100), b"CHANGEDl", "read through the unlinked fd")
        eq(os.fstat(fd).st_size, 8, "fstat of the unlinked fd")
        os.close(fd)
        check(not os.path.exists(p), "close re-created the key")
        eq(names(m), [])
        write_file(p, b"first")
        fd = os.open(p, os.O_RDWR)
        os.unlink(p)
        write_file(p, b"second")
        os.write(fd, b"XX")
        os.close(fd)
        eq(read_file(p), b"second", "old handle clobbered the new file")
    eq(F.values(imgs), {b"f": b"second"})


def renameat2(old, new, flags):
    libc = ctypes.CDLL(None, use_errno=True)
    AT_FDCWD = -100
    r = libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD,
                       os.fsencode(new), ctypes.c_uint(flags))
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


@test
def rename_moves_values():
    imgs = T().images()
    with Mount(imgs) as m:
        write_file(m.p("a"), b"alpha")
        write_file(m.p("b"), b"beta")
        sh("mv %s/a %s/c" % (m.mnt, m.mnt))
        eq(names(m), ["b", "c"])
        eq(read_file(m.p("c")), b"alpha")
        sh("mv -f %s/c %s/b" % (m.mnt, m.mnt))  # replaces b
        eq(names(m), ["b"])
        eq(read_file(m.p("b")), b"alpha")
        write_file(m.p("x"), b"xray")
        expect_errno(errno.EEXIST, renameat2, m.p("x"), m.p("b"), 1)
        eq(read_file(m.p("b")), b"alpha", "RENAME_NOREPLACE replaced")
        expect_errno(errno.EINVAL, renameat2, m.p("x"), m.p("b"), 2)
        eq(read_file(m.p("x")), b"xray", "RENAME_EXCHANGE changed x")
        expect_errno(errno.ENOENT, os.rename, m.p("nope"), m.p("y"))
        expect_errno(errno.EINVAL, os.rename, m.p("x"), m.p("bad%zz"))
        # An open file follows its new name.
        fd = os.open(m.p("b"), os.O_RDWR)
        os.rename(m.p("b"), m.p("d"))
        os.write(fd, b"ZZ")
        os.close(fd)
        eq(read_file(m.p("d")), b"ZZpha")
        check(not os.path.exists(m.p("b")), "old name back")
        # A file renamed over an open one: the replaced file's close
        # stores nothing.
        write_file(m.p("e"), b"eee")
        fd = os.open(m.p("e"), os.O_RDWR)
        os.rename(m.p("d"), m.p("e"))
        os.write(fd, b"X")
        os.close(fd)
        eq(read_file(m.p("e")), b"ZZpha", "replaced file clobbered")
    eq(F.values(imgs), {b"e": b"ZZpha", b"x": b"xray"})


@test
def mkdir_links_special_files_chown_refused():
    imgs = T().images()
    with Mount(imgs) as m:
        expect_errno(errno.EPERM, os.mkdir, m.p("d"))
        expect_errno(errno.EPERM, os.symlink, "target", m.p("s"))
        write_file(m.p("f"), b"x")
        expect_errno(errno.EPERM, os.link, m.p("f"), m.p("h"))
        expect_errno(errno.EPERM, os.mkfifo, m.p("fifo"))
        expect_errno(errno.EPERM, os.mknod, m.p("dev"),
                     stat.S_IFCHR | 0o644, os.makedev(1, 3))
        os.chmod(m.p("f"), 0o644)
        os.chown(m.p("f"), os.getuid(), os.getgid())
        os.chown(m.p("f"), -1, -1)
        expect_errno(errno.EPERM, os.chown, m.p("f"), 12345, -1)
        p = sh("mkdir %s/dir" % m.mnt, check_rc=False)
        check(p.returncode != 0 and "not permitted" in p.stderr, p.stderr)
        eq(names(m), ["f"])
    eq(F.values(imgs), {b"f": b"x"})


@test
def times_for_make_and_cp_p():
    """Untouched keys show the mount time; changes and utimens set times
    (kept in memory) that cp -p, mv and make rely on."""
    t = T()
    imgs = t.images()
    F.put(imgs, b"old", b"from before")
    before = time.time()
    with Mount(imgs) as m:
        after = time.time()
        st = os.stat(m.p("old"))
        check(before - 1 <= st.st_mtime <= after + 1,
              "untouched key's mtime %s not the mount time" % st.st_mtime)
        write_file(m.p("new"), b"x")
        check(os.stat(m.p("new")).st_mtime >= st.st_mtime, "new mtime")
        os.utime(m.p("new"), (1000000000, 1000000001))
        st = os.stat(m.p("new"))
        eq((st.st_atime, st.st_mtime), (1000000000, 1000000001), "utime")
        sh("touch -d '2001-02-03 04:05:06 UTC' %s/new" % m.mnt)
        eq(os.stat(m.p("new")).st_mtime, 981173106, "touch -d")
        src = t.path("src")
        write_file(src, b"preserved")
        os.utime(src, (1100000000, 1100000000))
        sh("cp -p %s %s/copy" % (src, m.mnt))
        eq(os.stat(m.p("copy")).st_mtime, 1100000000, "cp -p")
        sh("mv %s/copy %s/moved" % (m.mnt, m.mnt))
        eq(os.stat(m.p("moved")).st_mtime, 1100000000, "mv keeps mtime")
        write_file(m.p("moved"), b"changed")
        check(os.stat(m.p("moved")).st_mtime > 1100000000, "write mtime")
        # make: builds once, then is up to date, rebuilds after a touch.
        write_file(m.p("in"), b"source")
        mk = t.path("Makefile")
        write_file(mk, ("%s/out: %s/in\n\tcp %s/in %s/out\n"
                        % ((m.mnt,) * 4)).encode())
        eq(sh("make -f %s" % mk).returncode, 0)
        q = sh("make -q -f %s" % mk, check_rc=False)
        eq(q.returncode, 0, "make -q after a build")
        os.utime(m.p("in"), (time.time() + 10, time.time() + 10))
        q = sh("make -q -f %s" % mk, check_rc=False)
        eq(q.returncode, 1, "make -q after touching the source")
        sh("make -f %s" % mk)
        eq(read_file(m.p("out")), b"source")


# ---- names ---------------------------------------------------------------------

# The model of names lives in fuselib (F.escape_key), checked against the
# tool itself by tests/cli/test_names_model.py.
escape_key = F.escape_key


@test
def names_roundtrip_every_key():
    """Every key, whatever its bytes, is listed once under its escaped
    name and can be read and removed through it."""
    bs = 1024
    imgs = T().images(bs=bs, bc=512)
    maxkey = bs - 36
    keys = [b"plain", b"with space", b"a/b", b"100%", b".", b"..", b"",
            b"\x00\x01ctl\x1f", b"\x7f", b"\xff\xfe", "h\u00e9llo".encode(),
            "\u65e5\u672c".encode(), b"\xed\xa0\x80", b"\xc0\xaf",
            b"%2E", b".hidden", b"...", b"x" * 250, b"y" * 300,
            b"\x01" * 100, b"z" * maxkey, b"p" * 210 + b"1",
            b"p" * 210 + b"2", "\u00e9".encode() * 150]
    for i, k in enumerate(keys):
        F.put(imgs, k, b"value %d" % i)
    want = {escape_key(k): (k, b"value %d" % i) for i, k in enumerate(keys)}
    eq(len(want), len(keys), "expected names collide")
    with Mount(imgs) as m:
        listed = os.listdir(os.fsencode(m.mnt))
        eq(sorted(listed), sorted(want), "listing")
        for name, (k, v) in want.items():
            eq(read_file(m.p(name)), v, "read %r" % name)
            eq(os.stat(m.p(name)).st_size, len(v), "stat %r" % name)
        for name in want:
            os.unlink(m.p(name))
        eq(os.listdir(m.mnt), [], "after removing every name")
    eq(F.values(imgs), {}, "image after removing every name")


@test
def invalid_and_too_long_names():
    bs = 128
    imgs = T().images(bs=bs, bc=256)
    maxkey = bs - 36
    with Mount(imgs) as m:
        for bad in ["%41", "%zz", "x%2", "%2e", "a\x01b",
                    "abc%#0123456789ABCDEF"]:
            expect_errno(errno.ENOENT, os.stat, m.p(bad))
            expect_errno(errno.EINVAL, write_file, m.p(bad), b"x")
        write_file(m.p("a%2Fb"), b"slash")
        write_file(m.p("%25"), b"percent")
        write_file(m.p("%"), b"empty key")
        write_file(m.p("%2E"), b"dot")
        eq(read_file(m.p("a%2Fb")), b"slash")
        expect_errno(errno.ENAMETOOLONG, write_file, m.p("x" * (maxkey + 1)),
                     b"x")
        expect_errno(errno.ENAMETOOLONG, os.stat, m.p("y" * (maxkey + 1)))
        write_file(m.p("x" * maxkey), b"longest")
        eq(os.statvfs(m.mnt).f_namemax, maxkey, "f_namemax")
    eq(F.values(imgs), {b"a/b": b"slash", b"%": b"percent",
                        b"": b"empty key", b".": b"dot",
                        b"x" * maxkey: b"longest"})


# ---- attributes and statfs --------------------------------------------------

@test
def statfs_reports_blocks_for_df():
    bs, bc = 512, 256
    imgs = T().images(bs=bs, bc=bc)
    with Mount(imgs) as m:
        sv = os.statvfs(m.mnt)
        eq((sv.f_bsize, sv.f_frsize, sv.f_blocks), (bs, bs, bc - 1))
        eq((sv.f_bfree, sv.f_bavail), (bc - 1, bc - 1))
        eq(sv.f_namemax, 255)
        eq(sv.f_ffree, sv.f_bfree)
        size = 3000
        write_file(m.p("f"), b"v" * size)
        first, chunk = bs - 36 - 1, bs - 24
        blocks = 1 + -(-(size - first) // chunk)
        sv2 = os.statvfs(m.mnt)
        eq(sv2.f_bfree, sv.f_bfree - blocks, "free blocks after a put")
        eq(sv2.f_files - sv2.f_ffree, 1, "files in use")
        df = sh("df -B%d %s" % (bs, m.mnt)).stdout.splitlines()[1].split()
        eq((int(df[1]), int(df[2]), int(df[3])),
           (bc - 1, blocks, bc - 1 - blocks), "df")
        eq(os.stat(m.p("f")).st_blocks * 512, blocks * bs, "st_blocks")
    eq(F.dump(imgs)["free_blocks"], bc - 1 - blocks)


@test
def mode_uid_gid_umask_options():
    imgs = T().images()
    with Mount(imgs) as m:
        write_file(m.p("f"), b"x")
        st = os.stat(m.p("f"))
        eq(st.st_mode, stat.S_IFREG | 0o644, "default mode")
        eq((st.st_uid, st.st_gid), (os.getuid(), os.getgid()), "owner")
        eq(os.stat(m.mnt).st_mode, stat.S_IFDIR | 0o755, "root mode")
        eq(st.st_nlink, 1)
    with Mount(imgs, opts=["uid=1234", "gid=4321", "umask=027"]) as m:
        st = os.stat(m.p("f"))
        eq(st.st_mode, stat.S_IFREG | 0o640, "mode with umask=027")
        eq((st.st_uid, st.st_gid), (1234, 4321))
        eq(os.stat(m.mnt).st_mode, stat.S_IFDIR | 0o750)
        os.chmod(m.p("f"), 0o640)
    # With allow_other the kernel enforces them for other users.
    os.chmod(T().dir, 0o755)
    with Mount(imgs, opts=["allow_other", "umask=022"]) as m:
        nobody = dict(user=65534, group=65534, extra_groups=[],
                      capture_output=True)
        p = subprocess.run(["cat", m.p("f")], **nobody)
        eq((p.returncode, p.stdout), (0, b"x"), "other user reads 0644")
        p = subprocess.run(["sh", "-c", "echo y > " + m.p("f")], **nobody)
        check(p.returncode != 0 and b"denied" in p.stderr, p.stderr)
    with Mount(imgs, opts=["allow_other", "umask=077"]) as m:
        p = subprocess.run(["cat", m.p("f")], **nobody)
        check(p.returncode != 0 and b"denied" in p.stderr, p.stderr)
    eq(F.values(imgs), {b"f": b"x"})


# ---- read-only ----------------------------------------------------------------

def readonly_checks(m):
    eq(read_file(m.p("k")), b"value")
    expect_errno(errno.EROFS, write_file, m.p("new"), b"x")
    expect_errno(errno.EROFS, write_file, m.p("k"), b"x")
    expect_errno(errno.EROFS, os.open, m.p("k"), os.O_RDWR)
    expect_errno(errno.EROFS, os.unlink, m.p("k"))
    expect_errno(errno.EROFS, os.rename, m.p("k"), m.p("k2"))
    expect_errno(errno.EROFS, os.truncate, m.p("k"), 1)
    expect_errno(errno.EROFS, os.mkdir, m.p("d"))
    expect_errno(errno.EROFS, os.utime, m.p("k"), (1, 1))
    expect_errno(errno.EROFS, os.chmod, m.p("k"), 0o600)
    p = sh("echo x >> %s/k" % m.mnt, check_rc=False)
    check(p.returncode != 0 and "Read-only" in p.stderr, p.stderr)
    check(os.statvfs(m.mnt).f_flag & os.ST_RDONLY, "statvfs not ST_RDONLY")
    eq(read_file(m.p("k")), b"value")


def image_needing_recovery(t):
    """An image with a key and a garbage block that a writable open would
    erase."""
    imgs = t.images(bs=512, bc=64)
    F.put(imgs, b"k", b"value")
    corrupt(imgs[0], 512 * 10, b"\x02garbage that fails its CRC")
    return imgs


@test
def readonly_option_changes_nothing():
    t = T()
    imgs = image_needing_recovery(t)
    before = F.sha256(imgs[0])
    with Mount(imgs, opts=["ro"]) as m:
        readonly_checks(m)
    eq(F.sha256(imgs[0]), before, "image bytes after a read-only mount")
    # A writable mount does recover (erase) the garbage: the test image
    # really needed recovery.
    with Mount(imgs):
        pass
    check(F.sha256(imgs[0]) != before, "writable mount did not recover")


@test
def readonly_image_file_gives_readonly_mount():
    """Images the user may not write (here: on a read-only bind mount)
    give a read-only mount with a warning, and stay unchanged."""
    t = T()
    src = t.path("rw")
    os.makedirs(src)
    imgs = [os.path.join(src, "img0")]
    F.fmt(imgs, 512, 64)
    F.put(imgs, b"k", b"value")
    corrupt(imgs[0], 512 * 10, b"\x02garbage that fails its CRC")
    before = F.sha256(imgs[0])
    ro = t.path("ro")
    os.makedirs(ro)
    r = F.run(["mount", "--bind", src, ro], check_rc=False)
    if r.returncode != 0:
        raise F.Skip("cannot bind-mount: " + r.stderr)
    t.cleanups.append(lambda: F.run(["umount", "-l", ro], check_rc=False))
    F.run(["mount", "-o", "remount,ro,bind", ro])
    check(not os.access(os.path.join(ro, "img0"), os.W_OK), "still writable")
    with Mount([os.path.join(ro, "img0")]) as m:
        check("not writable" in m.stderr() and "read-only" in m.stderr(),
              "no warning: %r" % m.stderr())
        readonly_checks(m)
    eq(F.sha256(imgs[0]), before, "image bytes after the mount")


# ---- replicas ----------------------------------------------------------------

@test
def replicas_all_receive_writes():
    t = T()
    imgs = t.images(3, bs=512, bc=256)
    with Mount(imgs) as m:
        write_file(m.p("a"), b"A" * 2000)
        write_file(m.p("b"), b"B")
        write_file(m.p("c"), b"C")
        sh("mv %s/c %s/d" % (m.mnt, m.mnt))
        sh("rm %s/b" % m.mnt)
        sh("echo more >> %s/d" % m.mnt)
    want = {b"a": b"A" * 2000, b"d": b"Cmore\n"}
    for img in imgs:
        eq(F.values([img]), want, "replica " + img)
    d = F.dump(imgs)
    eq(d["active"], 3)


@test
def replica_corrupted_reads_newest_complete():
    """Before the mount, each key's newest record is broken in one replica:
    the mount reads every newest value from the other, and a write heals."""
    t = T()
    imgs = t.images(2, bs=512, bc=64)
    F.put(imgs, b"a", b"a1" * 600)       # blocks 1-3
    F.put(imgs, b"b", b"b1")             # block 4
    F.put(imgs, b"a", b"a2" * 600)       # blocks 5-7, 1-3 erased
    corrupt(imgs[0], 512 * 6 + 100)      # a's newest, replica 0: a chunk
    corrupt(imgs[1], 512 * 4 + 40)       # b, replica 1: the descriptor
    for opts in (["ro"], []):
        with Mount(imgs, opts=opts) as m:
            eq(read_file(m.p("a")), b"a2" * 600, "a with %s" % opts)
            eq(read_file(m.p("b")), b"b1", "b with %s" % opts)
    with Mount(imgs) as m:
        write_file(m.p("a"), b"a3")
        write_file(m.p("b"), b"b2")
    for img in imgs:
        eq(F.values([img]), {b"a": b"a3", b"b": b"b2"}, img)


@test
def replica_header_destroyed_needs_degraded():
    t = T()
    imgs = t.images(2, bs=512, bc=64)
    F.put(imgs, b"k", b"value")
    corrupt(imgs[1], 0, b"\0" * 512)
    dead = F.sha256(imgs[1])
    rc, err = F.mount_fails(imgs)
    one_line_error(rc, err, imgs[1])
    with Mount(imgs, opts=["degraded"]) as m:
        check("warning" in m.stderr() and imgs[1] in m.stderr(),
              "no warning: %r" % m.stderr())
        eq(read_file(m.p("k")), b"value")
        write_file(m.p("new"), b"n")
    eq(F.values([imgs[0]]), {b"k": b"value", b"new": b"n"})
    eq(F.sha256(imgs[1]), dead, "the dropped replica was written")


# ---- durability and errors -------------------------------------------------------

@test
def enospc_on_close_keeps_old_value():
    t = T()
    bs, bc = 512, 32
    imgs = t.images(bs=bs, bc=bc)
    with Mount(imgs) as m:
        write_file(m.p("old"), b"O" * 100)
        free = os.statvfs(m.mnt).f_bfree
        first, chunk = bs - 36 - 3, bs - 24
        big = b"N" * (first + free * chunk)  # free + 1 blocks
        expect_errno(errno.ENOSPC, write_file, m.p("old"), big)
        eq(read_file(m.p("old")), b"O" * 100, "old value after ENOSPC")
        eq(os.stat(m.p("old")).st_size, 100, "old size after ENOSPC")
        src = t.path("big")
        write_file(src, big)
        p = sh("cp %s %s/old" % (src, m.mnt), check_rc=False)
        check(p.returncode != 0 and "No space left" in p.stderr,
              "cp: %r" % p.stderr)
        eq(read_file(m.p("old")), b"O" * 100, "old value after cp")
        eq(os.statvfs(m.mnt).f_bfree, free, "blocks leaked")
    eq(F.values(imgs), {b"old": b"O" * 100})


@test
def efbig_beyond_store_size():
    t = T()
    bs, bc = 512, 32
    imgs = t.images(bs=bs, bc=bc)
    maxval = (bs - 36 - 3) + (bc - 2) * (bs - 24)
    with Mount(imgs) as m:
        fd = os.open(m.p("big"), os.O_WRONLY | os.O_CREAT)
        eq(os.write(fd, b"x" * (maxval + 10)), maxval, "short write")
        expect_errno(errno.EFBIG, os.write, fd, b"x")
        expect_errno(errno.EFBIG, os.ftruncate, fd, maxval + 1)
        os.ftruncate(fd, 10)
        os.close(fd)
        eq(read_file(m.p("big")), b"x" * 10)
        p = sh("dd if=/dev/zero of=%s/dd bs=64k count=1" % m.mnt,
               check_rc=False)
        check(p.returncode != 0 and "too large" in p.stderr, p.stderr)
        p = sh("truncate -s 1M %s/big" % m.mnt, check_rc=False)
        check(p.returncode != 0 and "too large" in p.stderr, p.stderr)


FSYNC_WRITER = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
os.write(fd, b"durable")
os.fsync(fd)
os.write(fd, b" and more")
print("ready", flush=True)
sys.stdin.read()  # hold the file open until told
"""


@test
def fsync_and_close_make_durable():
    """close() and fsync() return only once the value is in the images;
    a daemon killed right after loses nothing that was fsynced."""
    imgs = T().images()
    m = Mount(imgs).start()
    write_file(m.p("closed"), b"by close")
    eq(F.values(imgs, nolock=True).get(b"closed"), b"by close")
    # The open file lives in another process: a fork+exec here would
    # close an inherited copy, and every close(2) stores (flush).
    w = subprocess.Popen([sys.executable, "-c", FSYNC_WRITER, m.p("f")],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    eq(w.stdout.readline().strip(), "ready")
    eq(F.values(imgs, nolock=True).get(b"f"), b"durable", "after fsync")
    m.kill(signal.SIGKILL)
    m.proc.wait(15)
    w.communicate("")
    m.unmount()
    eq(F.values(imgs), {b"closed": b"by close", b"f": b"durable"})


@test
def nosync_skips_fdatasync():
    import shutil
    if not shutil.which("strace"):
        raise F.Skip("no strace")
    imgs = T().images()
    counts = {}
    for opts in ([], ["nosync"]):
        log = T().path("strace%d.log" % len(counts))
        m = Mount(imgs, opts=opts)
        m.wrapper = ["strace", "-f", "-qq", "-e", "trace=fdatasync,fsync",
                     "-o", log]
        m.env = {"ASAN_OPTIONS": "detect_leaks=0"}  # LSan cannot ptrace
        with m:
            for i in range(3):
                write_file(m.p("k%d%s" % (i, "".join(opts))), b"v")
        with open(log) as f:
            counts[tuple(opts)] = sum("fdatasync(" in l or "fsync(" in l
                                      for l in f)
    check(counts[()] >= 3, "durable mount: %d fdatasync" % counts[()])
    eq(counts[("nosync",)], 0, "fdatasync calls with -o nosync")
    eq(len(F.values(imgs)), 6)


@test
def xattr_option_gives_read_only_attributes():
    t = T()
    imgs = t.images(2)
    with Mount(imgs) as m:
        write_file(m.p("k"), b"v")
        expect_errno(errno.EOPNOTSUPP, os.getxattr, m.p("k"),
                     "user.embedkv.generation")
    with Mount(imgs, opts=["xattr"]) as m:
        gen = int(os.getxattr(m.p("k"), "user.embedkv.generation"))
        write_file(m.p("k"), b"w")
        eq(int(os.getxattr(m.p("k"), "user.embedkv.generation")), gen + 1,
           "generation after a write")
        eq(os.getxattr(m.p("k"), "user.embedkv.replicas"), b"0,1")
        eq(sorted(os.listxattr(m.p("k"))),
           ["user.embedkv.generation", "user.embedkv.replicas"])
        expect_errno(errno.ENODATA, os.getxattr, m.p("k"), "user.other")
        expect_errno(errno.EOPNOTSUPP, os.setxattr, m.p("k"), "user.x", b"1")
        expect_errno(errno.ENOENT, os.getxattr, m.p("nope"),
                     "user.embedkv.generation")


@test
def large_values_stream():
    t = T()
    imgs = t.images(bs=4096, bc=2048)
    data = os.urandom(3 * 1024 * 1024 + 123)
    src = t.path("big.bin")
    write_file(src, data)
    with Mount(imgs) as m:
        sh("cp %s %s/big" % (src, m.mnt))
        eq(F.sha256(m.p("big")), F.sha256(src), "sha256 through the mount")
        sh("dd if=%s/big of=%s bs=1M status=none" % (m.mnt, t.path("out")))
        eq(read_file(t.path("out")), data, "dd")
    eq(F.values(imgs)[b"big"], data)


@test
def recovery_runs_on_mount():
    """A fixture with a torn update: the mount serves the complete older
    generation (the shared compat fixture of FORMAT.md)."""
    t = T()
    src = os.path.join(F.TESTDATA, "recovery", "partial_write.bin")
    img = t.path("pw.bin")
    with open(src, "rb") as f, open(img, "wb") as g:
        g.write(f.read())
    with Mount([img]) as m:
        eq(read_file(m.p("power")), b"gen1-data")
        eq(names(m), ["power"])


# ---- caches and concurrency -------------------------------------------------

@test
def open_files_see_their_own_value():
    """An open file reads the value it opened (plus its own writes) while
    others rewrite the key; the next open sees the last stored value, and
    stat agrees with what a read returns."""
    import mmap
    imgs = T().images(bs=512, bc=512)
    with Mount(imgs) as m:
        p = m.p("f")
        write_file(p, b"v1" * 3000)
        eq(read_file(p), b"v1" * 3000)
        sh("printf v2 > %s" % p)
        eq(read_file(p), b"v2", "read after a rewrite")
        fd = os.open(p, os.O_RDONLY)
        write_file(p, b"v3" * 2500)
        eq(os.read(fd, 100000), b"v2", "snapshot of an open reader")
        os.close(fd)
        eq(read_file(p), b"v3" * 2500, "after the reader closed")
        eq(os.stat(p).st_size, 5000)
        # Two writers at once share one content, as on a local file
        # system: O_TRUNC through one empties it for both.
        a = os.open(p, os.O_RDWR)
        b = os.open(p, os.O_RDWR | os.O_TRUNC)
        os.write(b, b"B" * 7000)
        os.write(a, b"A" * 10)
        os.lseek(a, 0, os.SEEK_SET)
        eq(os.read(a, 20), b"A" * 10 + b"B" * 10, "a reads b's writes")
        os.close(a)
        eq(os.stat(p).st_size, 7000, "stat after the first close")
        eq(read_file(p), b"A" * 10 + b"B" * 6990, "stored by a's close")
        os.write(b, b"C")
        os.close(b)
        got = read_file(p)
        eq(got, b"A" * 10 + b"B" * 6990 + b"C", "stored by b's close")
        eq(os.stat(p).st_size, len(got), "stat after two writers")
        # Shared writable mappings reach the value on close.
        fd = os.open(p, os.O_RDWR)
        mm = mmap.mmap(fd, 0)
        mm[0:2] = b"MM"
        mm.flush()
        mm.close()
        os.close(fd)
        eq(read_file(p)[:4], b"MMAA", "after a shared mapping")
        # Private read mappings work on files opened read-only.
        fd = os.open(p, os.O_RDONLY)
        mm = mmap.mmap(fd, 0, access=mmap.ACCESS_COPY)
        eq(mm[0:4], b"MMAA")
        mm.close()
        os.close(fd)
    eq(F.values(imgs)[b"f"][:12], b"MMAAAAAAAABB")


WRITER = r"""
import os, sys
mnt, first, count, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for r in range(rounds):
    for i in range(first, first + count):
        v = (b"%d:%d:" % (i, r)) * ((i * 37 + r) % 300 + 1)
        fd = os.open(os.path.join(mnt, "k%d" % i), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        for off in range(0, len(v), 1000):
            os.write(fd, v[off:off + 1000])
        os.close(fd)
"""


@test
def concurrent_writers_different_keys():
    imgs = T().images(bs=512, bc=8192)
    nproc, per, rounds = 6, 25, 3
    with Mount(imgs) as m:
        procs = [subprocess.Popen([sys.executable, "-c", WRITER, m.mnt,
                                   str(j * per), str(per), str(rounds)])
                 for j in range(nproc)]
        for p in procs:
            eq(p.wait(120), 0, "writer exit status")
        want = {}
        for i in range(nproc * per):
            r = rounds - 1
            want[b"k%d" % i] = (b"%d:%d:" % (i, r)) * ((i * 37 + r) % 300 + 1)
        eq(len(os.listdir(m.mnt)), len(want), "files listed")
        for k, v in want.items():
            eq(read_file(m.p(k)), v, k)
    eq(F.values(imgs), want)


SAME_KEY = r"""
import os, sys
path, letter, size, rounds = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3]), int(sys.argv[4])
v = letter * size
import fcntl
for r in range(rounds):
    # Writers of one file share its content: they take turns, as they
    # must on any file system.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.ftruncate(fd, 0)
    for off in range(0, size, 999):
        os.write(fd, v[off:off + 999])
    os.close(fd)
"""

READER = r"""
import os, sys
path, stop = sys.argv[1], sys.argv[2]
ok = {b"A" * 5000, b"B" * 7000, b"init"}
n = 0
while not os.path.exists(stop):
    with open(path, "rb") as f:
        got = f.read()
    if got not in ok:
        sys.exit("mixed read: %r..." % got[:80])
    n += 1
print(n)
"""


@test
def concurrent_writers_same_key():
    """Two processes rewriting one key in turns (flock): a concurrent
    reader only ever sees complete values, never a writer's half-written
    content, and the key ends with one complete value."""
    t = T()
    imgs = t.images(bs=512, bc=512)
    stop = t.path("stop")
    with Mount(imgs) as m:
        p = m.p("shared")
        write_file(p, b"init")
        reader = subprocess.Popen([sys.executable, "-c", READER, p, stop],
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        ws = [subprocess.Popen([sys.executable, "-c", SAME_KEY, p, l, s,
                                "40"])
              for l, s in (("A", "5000"), ("B", "7000"))]
        for w in ws:
            eq(w.wait(120), 0, "writer exit status")
        write_file(stop, b"")
        out, err = reader.communicate(60)
        eq(reader.returncode, 0, "reader: " + err)
        got = read_file(p)
        check(got in (b"A" * 5000, b"B" * 7000), "final value %r" % got[:50])
        eq(os.stat(p).st_size, len(got))
    eq(F.values(imgs), {b"shared": got})


KILL_WRITER = r"""
import os, sys
mnt, nkeys = sys.argv[1], int(sys.argv[2])
def value(i, key):
    n = (i * 7919) % 3000 + 1
    return b"%s:%d:%d:" % (key, i, n) + bytes((i + j) % 251 for j in range(n))
i = 0
while True:
    key = b"k%d" % (i % nkeys)
    try:
        fd = os.open(os.path.join(os.fsencode(mnt), key),
                     os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        v = value(i, key)
        for off in range(0, len(v), 700):
            os.write(fd, v[off:off + 700])
        os.close(fd)
    except OSError:
        break
    print(i, flush=True)
    i += 1
"""


def check_kill_value(key, v, last):
    head, _, rest = v.partition(b":")
    eq(head, key, "key in the value")
    i, _, rest = rest.partition(b":")
    n, _, body = rest.partition(b":")
    i, n = int(i), int(n)
    check(i <= last + 1, "%r: value %d was never written" % (key, i))
    eq(body, bytes((i + j) % 251 for j in range(n)), "%r value %d" % (key, i))


@test
def sigkill_midstream_then_remount():
    """kill -9 of the daemon in the middle of a stream of writes: after a
    remount every key holds a complete value that was written."""
    t = T()
    imgs = t.images(bs=512, bc=1024)
    nkeys = 12
    rng = random.Random(os.getpid())
    for attempt in range(3):
        m = Mount(imgs).start()
        w = subprocess.Popen([sys.executable, "-c", KILL_WRITER, m.mnt,
                              str(nkeys)], stdout=subprocess.PIPE, text=True)
        target = rng.randrange(30, 90)
        last = -1
        for line in w.stdout:
            last = int(line)
            if last >= target:
                break
        m.kill(signal.SIGKILL)
        for line in w.stdout:
            last = int(line)
        w.wait(30)
        m.proc.wait(15)
        m.unmount()  # the dead mount
        with Mount(imgs) as m2:
            files = os.listdir(m2.mnt)
            for i in range(min(last + 1, nkeys)):
                check("k%d" % i in files, "k%d lost" % i)
            for name in files:
                check_kill_value(name.encode(), read_file(m2.p(name)), last)
        for k, v in F.values(imgs).items():
            check_kill_value(k, v, last)


if __name__ == "__main__":
    sys.exit(F.main(sys.argv[1:]))
