#!/usr/bin/env python3
"""test_stream.py - large files reach the images while they are written.

A file that grows past 256 KiB through writes at its end is streamed to
the images as it is written, and its close only finishes the record
(embedkvfs(1), "Large files"). These tests check, on real mounts, that
streaming never shows in what anyone reads or in what is stored: the
value is the file's content at close, whatever was done to the file on
the way (seeks back, truncates, renames, unlinks, running out of space,
two writers), nothing is visible before the close, a daemon killed in the
middle leaves the old value, and the images are left clean (`embedkvfs
check` finds no garbage). Run one test:
  test_stream.py --embedkvfs E --imgcheck I NAME
"""

import errno
import os
import random
import signal
import subprocess
import sys

import fuselib as F
from fuselib import Mount, check, eq, expect_errno, test

MiB = 1024 * 1024


def T():
    return F.Test.current


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def pattern(n, seed):
    """n bytes, the same for the same seed, with no repeats to be found
    by searching an image for a slice of them."""
    return random.Random(seed).randbytes(n)


def check_clean(imgs):
    """embedkvfs check finds every block in a record or free."""
    p = F.run([F.EMBEDKVFS, "check"] + list(imgs), check_rc=False)
    eq(p.returncode, 0, "check exit status: %s%s" % (p.stdout, p.stderr))
    check(" 0 garbage" in p.stdout, "garbage left: %s" % p.stdout)


def big_images(n=1, bc=1024):
    return T().images(n, bs=4096, bc=bc)


def write_in_pieces(fd, data, piece=128 * 1024):
    for off in range(0, len(data), piece):
        eq(os.write(fd, data[off:off + piece]), len(data[off:off + piece]))


@test
def stream_cp_and_rewrite_store_the_value():
    """cp of large files, a rewrite of one, and values of every size
    around the streaming threshold and the block size are stored whole."""
    t = T()
    imgs = big_images(bc=2048)
    sizes = [256 * 1024 - 1, 256 * 1024, 256 * 1024 + 1,
             256 * 1024 + 4059, 256 * 1024 + 4060, 3 * MiB + 7]
    with Mount(imgs) as m:
        for i, n in enumerate(sizes):
            src = t.path("src%d" % i)
            with open(src, "wb") as f:
                f.write(pattern(n, i))
            F.sh("cp %s %s" % (src, m.p("v%d" % i)))
        for i, n in enumerate(sizes):
            eq(read_file(m.p("v%d" % i)), pattern(n, i), "v%d" % i)
        # A rewrite with other content, written with small writes.
        fd = os.open(m.p("v5"), os.O_WRONLY | os.O_TRUNC)
        write_in_pieces(fd, pattern(2 * MiB, 99), piece=1000)
        os.close(fd)
        eq(read_file(m.p("v5")), pattern(2 * MiB, 99), "rewritten v5")
    vals = F.values(imgs)
    for i, n in enumerate(sizes[:5]):
        eq(vals[b"v%d" % i], pattern(n, i), "stored v%d" % i)
    eq(vals[b"v5"], pattern(2 * MiB, 99), "stored v5")
    check_clean(imgs)


@test
def stream_content_changed_below_what_was_streamed():
    """Seeking back to overwrite, truncating below what was written,
    O_APPEND and holes: the stored value is the content at close."""
    t = T()
    imgs = big_images()
    with Mount(imgs) as m:
        # Fill in a header at the start after writing the body.
        data = bytearray(pattern(MiB, 1))
        fd = os.open(m.p("hdr"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        write_in_pieces(fd, bytes(data))
        os.pwrite(fd, b"HEADER", 10)
        data[10:16] = b"HEADER"
        os.close(fd)
        eq(read_file(m.p("hdr")), bytes(data), "hdr")
        # Truncate below what was written, then write past a hole.
        fd = os.open(m.p("cut"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        write_in_pieces(fd, pattern(MiB, 2))
        os.ftruncate(fd, 1000)
        os.pwrite(fd, b"tail", 600 * 1024)
        os.close(fd)
        want = pattern(1000, 2) + bytes(600 * 1024 - 1000) + b"tail"
        eq(read_file(m.p("cut")), want, "cut")
        # Truncate by name while a writer streams, shrinking its content.
        fd = os.open(m.p("byname"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        write_in_pieces(fd, pattern(MiB, 3))
        os.fsync(fd)
        os.truncate(m.p("byname"), 5000)
        os.write(fd, b"more")  # at offset 1 MiB: a hole after 5000
        os.close(fd)
        want = pattern(5000, 3) + bytes(MiB - 5000) + b"more"
        eq(read_file(m.p("byname")), want, "byname")
        # O_APPEND onto a large existing value.
        with open(m.p("app"), "ab") as f:
            f.write(pattern(300 * 1024, 4))
        with open(m.p("app"), "ab") as f:
            f.write(pattern(300 * 1024, 5))
        eq(read_file(m.p("app")),
           pattern(300 * 1024, 4) + pattern(300 * 1024, 5), "app")
    vals = F.values(imgs)
    eq(vals[b"hdr"], bytes(data))
    eq(vals[b"cut"], pattern(1000, 2) + bytes(600 * 1024 - 1000) + b"tail")
    eq(vals[b"byname"], pattern(5000, 3) + bytes(MiB - 5000) + b"more")
    check_clean(imgs)


@test
def large_contents_change_as_a_local_file_would():
    """A large content grows and shrinks in every way (writes far past the
    end, truncates down to nothing and up to 10 MiB, rewrites in the
    middle), in one file and then in a second that takes over the first's
    memory: every read through the mount, and each stored value, is what
    the same steps give on a local file."""
    imgs = big_images(bc=8192)
    rng = random.Random(12)
    local = os.path.join(T().dir, "local")
    with Mount(imgs) as m:
        for name in ("a", "b"):
            fd = os.open(m.p(name), os.O_RDWR | os.O_CREAT | os.O_TRUNC)
            ref = os.open(local, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
            for step in range(60):
                how = rng.randrange(6)
                if how == 0:
                    size = rng.choice([0, 1, 4095, MiB - 1, 3 * MiB + 7,
                                       10 * MiB])
                    os.ftruncate(fd, size)
                    os.ftruncate(ref, size)
                else:
                    off = rng.randrange(9 * MiB)
                    data = pattern(rng.randrange(1, 3 * MiB // 2), step)
                    eq(os.pwrite(fd, data, off), len(data), "pwrite")
                    os.pwrite(ref, data, off)
                if step % 10 == 9:
                    size = os.fstat(ref).st_size
                    eq(os.fstat(fd).st_size, size, "size at step %d" % step)
                    check(os.pread(fd, size + 1, 0) ==
                          os.pread(ref, size + 1, 0),
                          "%s: content differs at step %d" % (name, step))
            want = os.pread(ref, os.fstat(ref).st_size + 1, 0)
            os.close(fd)
            os.close(ref)
            check(read_file(m.p(name)) == want,
                  "%s: read back after close differs" % name)
            if name == "a":
                want_a = want
            else:
                want_b = want
    vals = F.values(imgs)
    check(vals[b"a"] == want_a, "stored value of a")
    check(vals[b"b"] == want_b, "stored value of b")
    check_clean(imgs)


HALF_WRITER = r"""
import os, sys
sys.path.insert(0, sys.argv[2])
from test_stream import pattern
new = pattern(2 * 1024 * 1024, 8)
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
for off in range(0, 1024 * 1024 + 12345, 65536):
    os.write(fd, new[off:min(off + 65536, 1024 * 1024 + 12345)])
print("half", flush=True)
sys.stdin.readline()
for off in range(1024 * 1024 + 12345, len(new), 65536):
    os.write(fd, new[off:off + 65536])
os.close(fd)
print("closed", flush=True)
"""


@test
def stream_nothing_visible_before_close():
    """While a large file is being written (by another process: a fork
    here would close an inherited descriptor, and every close stores),
    readers see the old value, whole, and so do the images; the close
    makes the new one the value."""
    imgs = big_images()
    old = pattern(400 * 1024, 7)
    new = pattern(2 * MiB, 8)
    with Mount(imgs) as m:
        with open(m.p("k"), "wb") as f:
            f.write(old)
        w = subprocess.Popen(
            [sys.executable, "-c", HALF_WRITER, m.p("k"),
             os.path.dirname(os.path.abspath(__file__))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        eq(w.stdout.readline().strip(), "half")
        eq(read_file(m.p("k")), old, "a reader during the write")
        eq(F.values(imgs, nolock=True)[b"k"], old, "images during the write")
        # Yet the new bytes are in the image already: chunk 1 of the new
        # record (the descriptor holds the first 4059 bytes).
        with open(imgs[0], "rb") as f:
            raw = f.read()
        check(new[4059 + 100:4059 + 400] in raw,
              "the written part was not streamed to the image")
        w.stdin.write("go\n")
        w.stdin.flush()
        eq(w.stdout.readline().strip(), "closed")
        w.wait(30)
        eq(read_file(m.p("k")), new, "after close")
        eq(F.values(imgs, nolock=True)[b"k"], new, "images after close")
    check_clean(imgs)


@test
def stream_rename_and_unlink_while_writing():
    """A file renamed while being written is stored under its new name;
    one unlinked while being written stores nothing; neither leaves
    blocks behind."""
    t = T()
    imgs = big_images()
    with Mount(imgs) as m:
        fd = os.open(m.p("a"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        write_in_pieces(fd, pattern(MiB, 1))
        os.rename(m.p("a"), m.p("b"))
        write_in_pieces(fd, pattern(MiB, 2))
        os.close(fd)
        eq(sorted(os.listdir(m.mnt)), ["b"])
        eq(read_file(m.p("b")), pattern(MiB, 1) + pattern(MiB, 2))
        free = os.statvfs(m.mnt).f_bfree
        fd = os.open(m.p("gone"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        write_in_pieces(fd, pattern(MiB, 3))
        os.unlink(m.p("gone"))
        write_in_pieces(fd, pattern(MiB, 4))
        os.close(fd)
        eq(sorted(os.listdir(m.mnt)), ["b"])
        eq(os.statvfs(m.mnt).f_bfree, free, "blocks after the unlinked file")
    eq(F.values(imgs), {b"b": pattern(MiB, 1) + pattern(MiB, 2)})
    check_clean(imgs)


@test
def stream_enospc_keeps_old_value_and_space():
    """A large file that does not fit fails its close with ENOSPC (the
    write calls succeed: the content is in memory); the old value stays,
    and every block comes back."""
    t = T()
    imgs = big_images(bc=256)  # 1 MiB
    with Mount(imgs) as m:
        old = pattern(300 * 1024, 1)
        with open(m.p("k"), "wb") as f:
            f.write(old)
        free = os.statvfs(m.mnt).f_bfree
        fd = os.open(m.p("k"), os.O_WRONLY | os.O_TRUNC)
        write_in_pieces(fd, pattern(900 * 1024, 2))
        expect_errno(errno.ENOSPC, os.close, fd)
        eq(read_file(m.p("k")), old, "old value after ENOSPC")
        eq(os.statvfs(m.mnt).f_bfree, free, "blocks leaked")
        # What fits is stored.
        with open(m.p("k"), "wb") as f:
            f.write(pattern(500 * 1024, 3))
        eq(read_file(m.p("k")), pattern(500 * 1024, 3))
    eq(F.values(imgs), {b"k": pattern(500 * 1024, 3)})
    check_clean(imgs)


@test
def stream_two_writers_interleaved_and_replicas():
    """Two large files written in turns, on two replicas: both stored
    whole on both replicas."""
    t = T()
    imgs = big_images(2)
    with Mount(imgs) as m:
        a = os.open(m.p("a"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        b = os.open(m.p("b"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        da, db = pattern(MiB + 5, 1), pattern(MiB + 77, 2)
        for off in range(0, MiB + 77, 64 * 1024):
            os.write(a, da[off:off + 64 * 1024])
            os.write(b, db[off:off + 64 * 1024])
        os.close(b)
        os.close(a)
        eq(read_file(m.p("a")), da)
        eq(read_file(m.p("b")), db)
    for img in imgs:
        eq(F.values([img]), {b"a": da, b"b": db}, img)
    check_clean(imgs)


WRITER = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
data = bytes(range(256)) * 4096 * 3
for off in range(0, len(data), 131072):
    os.write(fd, data[off:off + 131072])
print("written", flush=True)
sys.stdin.read()  # keep the file open, unclosed, until killed
"""


@test
def stream_daemon_killed_mid_write_keeps_old_value():
    """kill -9 of the daemon while a large file is written but not yet
    closed: after a remount the key holds its old value, and the
    recovery leaves the images clean."""
    t = T()
    imgs = big_images()
    old = pattern(500 * 1024, 9)
    with Mount(imgs) as m:
        with open(m.p("k"), "wb") as f:
            f.write(old)
    for sig in (signal.SIGKILL, signal.SIGTERM):
        m = Mount(imgs).start()
        w = subprocess.Popen([sys.executable, "-c", WRITER, m.p("k")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
        eq(w.stdout.readline().strip(), "written")
        m.kill(sig)
        m.proc.wait(15)
        w.kill()
        w.wait(15)
        m.unmount()
        eq(F.values(imgs), {b"k": old}, "after %s" % sig.name)
        with Mount(imgs) as m2:
            eq(read_file(m2.p("k")), old)
        check_clean(imgs)


if __name__ == "__main__":
    sys.exit(F.main(sys.argv[1:]))
