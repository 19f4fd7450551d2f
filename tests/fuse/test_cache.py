#!/usr/bin/env python3
"""test_cache.py - the kernel's caches never show stale data (issue 12).

The mount lets the kernel cache names, attributes and the writers' pages
for long (entry and attribute timeouts of 30 s). These tests change files
in every way through one process and one open file, and check through a
second process and through other open files of the same key that size,
content and name presence are always current; that a rename over an open
file is seen at once; that read-only opens see only complete values while
another process rewrites the key; and that -o nocache turns the caching
off. Run one test:  test_cache.py --embedkvfs E --imgcheck I NAME
"""

import json
import os
import re
import subprocess
import sys

import fuselib as F
from fuselib import Mount, check, eq, test


def T():
    return F.Test.current


def write_file(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC):
    fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


# A second process that answers "stat P", "list D" and "read P" with a
# JSON line: another process's view of the mount.
OBSERVER = r"""
import json, os, sys
for line in sys.stdin:
    op, path = line.rstrip("\n").split(" ", 1)
    try:
        if op == "stat":
            r = os.stat(path).st_size
        elif op == "list":
            r = sorted(os.listdir(path))
        else:
            with open(path, "rb") as f:
                r = f.read().decode("latin-1")
    except OSError as e:
        r = "errno %d" % e.errno
    print(json.dumps(r), flush=True)
"""


class Observer:
    def __init__(self):
        self.p = subprocess.Popen([sys.executable, "-c", OBSERVER],
                                  stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        T().cleanups.append(self.close)

    def ask(self, op, path):
        self.p.stdin.write("%s %s\n" % (op, path))
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())

    def close(self):
        if self.p.poll() is None:
            self.p.stdin.close()
            self.p.wait(10)


def expect(obs, m, files, what):
    """Another process sees exactly files ({name: bytes}) in the mount:
    listing, each size and each content, and ENOENT for gone names."""
    eq(obs.ask("list", m.mnt), sorted(files), "listing " + what)
    for name, data in files.items():
        eq(obs.ask("stat", m.p(name)), len(data), "size of %s %s" % (
            name, what))
        eq(obs.ask("read", m.p(name)), data.decode("latin-1"),
           "content of %s %s" % (name, what))


def changes_are_seen_at_once(opts):
    imgs = T().images(bs=512, bc=512)
    with Mount(imgs, opts=opts) as m:
        obs = Observer()
        files = {}

        def check_now(what, name=None):
            expect(obs, m, files, what)
            if name is not None and name not in files:
                eq(obs.ask("stat", m.p(name)), "errno 2", "%s gone %s" % (
                    name, what))
        check_now("at first")
        # Prime every cache: names, attributes, pages.
        write_file(m.p("a"), b"first value")
        files["a"] = b"first value"
        check_now("after create")
        write_file(m.p("a"), b"a much longer second value" * 40)
        files["a"] = b"a much longer second value" * 40
        check_now("after a growing rewrite")
        write_file(m.p("a"), b"short")
        files["a"] = b"short"
        check_now("after a shrinking rewrite")
        os.truncate(m.p("a"), 3)
        files["a"] = b"sho"
        check_now("after truncate by name")
        os.truncate(m.p("a"), 8)
        files["a"] = b"sho" + bytes(5)
        check_now("after truncate up by name")
        write_file(m.p("a"), b"+app", os.O_WRONLY | os.O_APPEND)
        files["a"] += b"+app"
        check_now("after an append")
        fd = os.open(m.p("a"), os.O_RDWR)
        os.ftruncate(fd, 2)
        os.close(fd)
        files["a"] = b"sh"
        check_now("after ftruncate")
        # Through another open file of the same key.
        w1 = os.open(m.p("a"), os.O_RDWR)
        w2 = os.open(m.p("a"), os.O_RDWR)
        os.pwrite(w1, b"XYZW", 0)
        eq(os.pread(w2, 100, 0), b"XYZW", "w2 reads w1's write")
        eq(os.fstat(w2).st_size, 4, "fstat of w2 after w1's write")
        eq(obs.ask("stat", m.p("a")), 4, "size seen by another process "
           "while a writer is open")
        os.ftruncate(w2, 1)
        eq(os.pread(w1, 100, 0), b"X", "w1 reads w2's truncate")
        eq(os.fstat(w1).st_size, 1, "fstat of w1 after w2's truncate")
        os.close(w2)
        files["a"] = b"X"
        check_now("after the close of w2")
        os.pwrite(w1, b"long again", 0)
        os.close(w1)
        files["a"] = b"long again"
        check_now("after the close of w1")
        # Names.
        os.rename(m.p("a"), m.p("b"))
        files["b"] = files.pop("a")
        check_now("after rename", "a")
        write_file(m.p("c"), b"c value")
        files["c"] = b"c value"
        reader = os.open(m.p("b"), os.O_RDONLY)
        writer = os.open(m.p("b"), os.O_RDWR)
        os.rename(m.p("c"), m.p("b"))
        files["b"] = files.pop("c")
        check_now("after rename over an open file", "c")
        eq(os.read(reader, 100), b"long again", "the replaced file's reader")
        os.write(writer, b"L")
        eq(os.fstat(writer).st_size, 10, "fstat of the replaced file")
        os.close(writer)
        os.close(reader)
        check_now("after the replaced file's close", "c")
        os.unlink(m.p("b"))
        del files["b"]
        check_now("after unlink", "b")
        write_file(m.p("b"), b"back")
        files["b"] = b"back"
        check_now("after re-create")
        # The observer's own open files see closes of others at their
        # next open; with the page cache of writers in between.
        mmw = os.open(m.p("b"), os.O_RDWR)
        import mmap
        mm = mmap.mmap(mmw, 0)
        mm[0:2] = b"BA"
        mm.flush()
        mm.close()
        os.close(mmw)
        files["b"] = b"BAck"
        check_now("after a shared mapping")
    eq(F.values(imgs), {b"b": b"BAck"})


@test
def no_stale_size_name_or_content_with_caching():
    changes_are_seen_at_once([])


@test
def no_stale_size_name_or_content_nocache():
    changes_are_seen_at_once(["nocache"])


@test
def no_stale_data_single_threaded():
    imgs = T().images(bs=512, bc=512)
    with Mount(imgs, flags=["-s"]) as m:
        obs = Observer()
        for i in range(5):
            v = b"value %d " % i * (i * 30 + 1)
            write_file(m.p("k"), v)
            expect(obs, m, {"k": v}, "round %d" % i)


REWRITER = r"""
import os, sys
path, rounds = sys.argv[1], int(sys.argv[2])
for r in range(rounds):
    v = (b"%d|" % r) * (200 + (r * 97) % 3000)
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    for off in range(0, len(v), 700):
        os.write(fd, v[off:off + 700])
    os.close(fd)
"""

READER = r"""
import os, sys
path, stop = sys.argv[1], sys.argv[2]
n = 0
while not os.path.exists(stop):
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    chunks = []
    while True:
        b = os.read(fd, 1000)   # small reads: many requests per value
        if not b:
            break
        chunks.append(b)
    os.close(fd)
    got = b"".join(chunks)
    tag = got.split(b"|", 1)[0]
    want = tag + b"|"
    if got != want * (len(got) // len(want)) or len(got) % len(want) or \
            len(got) // len(want) != 200 + (int(tag) * 97) % 3000:
        sys.exit("torn or partial read: %d bytes %r...%r" % (
            len(got), got[:30], got[-30:]))
    n += 1
print(n)
"""


@test
def readers_see_complete_values_during_rewrites():
    """A process rewrites one key 150 times (O_TRUNC, small writes) while
    two others open and read it in small pieces: every read is one whole
    stored value, never empty, torn or a mix."""
    t = T()
    imgs = t.images(bs=512, bc=2048)
    stop = t.path("stop")
    with Mount(imgs) as m:
        p = m.p("k")
        write_file(p, b"0|" * 200)
        readers = [subprocess.Popen([sys.executable, "-c", READER, p, stop],
                                    stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
                   for _ in range(2)]
        w = subprocess.Popen([sys.executable, "-c", REWRITER, p, "150"])
        eq(w.wait(300), 0, "rewriter exit status")
        write_file(stop, b"")
        for r in readers:
            out, err = r.communicate(60)
            eq(r.returncode, 0, "reader: " + err)
            check(int(out) > 0, "reader read nothing")


@test
def readonly_mount_reads_through_page_cache():
    """On a read-only mount nothing can change a value, so files are read
    through the page cache and kept there: a second read of a file costs
    no READ request, and read-only shared mappings work."""
    import mmap
    imgs = T().images()
    F.put(imgs, b"k", b"cached value " * 100)
    with Mount(imgs, opts=["ro"], flags=["-d"]) as m:
        for _ in range(3):
            with open(m.p("k"), "rb") as f:
                eq(f.read(), b"cached value " * 100)
        with open(m.p("k"), "rb") as f:
            mm = mmap.mmap(f.fileno(), 0, mmap.MAP_SHARED, mmap.PROT_READ)
            eq(mm[:12], b"cached value")
            mm.close()
        F.wait_for(lambda: "opcode: RELEASE" in m.stderr(), 10, "debug log")
        eq(m.stderr().count("opcode: READ "), 1, "READ requests")


def read_rest(fd):
    chunks = []
    while True:
        b = os.read(fd, 1000)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def stale_replies(m):
    return m.stderr().count("error: -116 ")


@test
def cached_reader_keeps_its_value_across_a_rewrite():
    """A file opened read-only reads through the page cache. A writer that
    comes while it is open is not refused: the kernel is sent to a new
    file for the key (ESTALE, then a new lookup), the writer stores, and
    everyone else sees the new size and content at once, while the open
    reader still reads its whole old value, even after its pages are
    dropped, and fstat shows it the old size. (-s makes the order of
    requests, and so the reader's caching, certain.)"""
    imgs = T().images(bs=512, bc=2048)
    old, new = b"A" * 9000, b"B" * 5000
    with Mount(imgs, flags=["-d", "-s"]) as m:
        obs = Observer()
        p = m.p("k")
        write_file(p, old)
        fa = os.open(p, os.O_RDONLY)
        first = os.read(fa, 3000)
        before = stale_replies(m)
        write_file(p, new)   # O_TRUNC: must succeed
        check(stale_replies(m) > before,
              "the writer's open was not sent to a new file (no ESTALE "
              "in the debug log): the reader was not cached")
        eq(obs.ask("stat", p), len(new), "another process's stat")
        eq(obs.ask("read", p), new.decode(), "another process's read")
        eq(os.stat(p).st_size, len(new), "stat by name")
        os.posix_fadvise(fa, 0, 0, os.POSIX_FADV_DONTNEED)
        eq(os.fstat(fa).st_size, len(old), "fstat of the open reader")
        eq(first + read_rest(fa), old, "the open reader's value")
        os.close(fa)
        with open(p, "rb") as f:
            eq(f.read(), new, "a new open")
        # And again on the key's new file: readers, then a writer.
        fb = os.open(p, os.O_RDONLY)
        write_file(p, old)
        os.posix_fadvise(fb, 0, 0, os.POSIX_FADV_DONTNEED)
        eq(read_rest(fb), new, "second reader's value")
        os.close(fb)
        eq(obs.ask("read", p), old.decode(), "after the second rewrite")
    # The last value is what the store holds.
    eq(F.values(imgs), {b"k": old}, "stored value")


@test
def cached_reader_keeps_its_value_across_truncate_and_rename():
    """truncate(2) by name and a rename over the key while a reader has it
    open through the page cache: the reader keeps its whole value, the
    others see the change at once."""
    imgs = T().images(bs=512, bc=2048)
    old = b"C" * 7000
    with Mount(imgs, flags=["-s"]) as m:
        obs = Observer()
        p, q = m.p("k"), m.p("j")
        write_file(p, old)
        fa = os.open(p, os.O_RDONLY)
        os.truncate(p, 100)
        eq(obs.ask("stat", p), 100, "size after truncate")
        eq(obs.ask("read", p), "C" * 100, "content after truncate")
        os.posix_fadvise(fa, 0, 0, os.POSIX_FADV_DONTNEED)
        eq(read_rest(fa), old, "reader across the truncate")
        os.close(fa)
        write_file(q, b"renamed")
        fb = os.open(p, os.O_RDONLY)
        os.rename(q, p)
        eq(obs.ask("read", p), "renamed", "content after rename")
        eq(obs.ask("list", m.mnt), ["k"], "listing after rename")
        os.posix_fadvise(fb, 0, 0, os.POSIX_FADV_DONTNEED)
        eq(read_rest(fb), b"C" * 100, "reader across the rename")
        os.close(fb)


@test
def lazy_reader_keeps_its_value_across_unlink_and_rename():
    """A reader that opens a value a close just stored loads nothing at
    open (the page cache holds it). Unlinking the key, or renaming another
    file over it, while such a reader is open (its pages dropped) must not
    cost it its value: it reads the whole value it opened."""
    imgs = T().images(bs=512, bc=2048)
    with Mount(imgs, flags=["-s"]) as m:
        obs = Observer()
        p, q = m.p("k"), m.p("j")
        for how in ("unlink", "rename"):
            old = (how.encode() + b"!") * 1500
            write_file(p, old)
            fa = os.open(p, os.O_RDONLY)
            if how == "unlink":
                os.unlink(p)
                eq(obs.ask("stat", p), "errno 2", "stat after unlink")
            else:
                write_file(q, b"new value")
                os.rename(q, p)
                eq(obs.ask("read", p), "new value", "content after rename")
            os.posix_fadvise(fa, 0, 0, os.POSIX_FADV_DONTNEED)
            eq(read_rest(fa), old, "reader across the " + how)
            eq(os.fstat(fa).st_size, len(old), "fstat across the " + how)
            os.close(fa)
    eq(F.values(imgs), {b"k": b"new value"}, "stored values")


@test
def stored_values_are_read_and_stat_from_the_cache():
    """After a close stores a value, opens for reading are served by the
    page cache (no READ request reaches the daemon), and stat after such
    reads needs no GETATTR: what the kernel caches stays usable."""
    imgs = T().images(bs=512, bc=2048)
    v = bytes(range(256)) * 40 + b"tail"
    with Mount(imgs, flags=["-d"]) as m:
        p = m.p("k")
        write_file(p, v)
        # The writer's RELEASE is answered after close returns; a reader
        # that came first would share the file with a writer. Its answer
        # comes after the last page is handed to the kernel.
        def released():
            r = re.search(r"unique: (\d+), opcode: RELEASE", m.stderr())
            return r and re.search(r"unique: %s, (success|error)" %
                                   r.group(1), m.stderr())
        F.wait_for(released, 10, "the answer to the writer's release")
        reads = m.stderr().count("opcode: READ ")
        for _ in range(3):
            with open(m.p("k"), "rb") as f:
                eq(f.read(), v, "read back")
        eq(m.stderr().count("opcode: READ ") - reads, 0, "READ requests")
        getattrs = m.stderr().count("opcode: GETATTR")
        for _ in range(3):
            eq(os.stat(p).st_size, len(v), "stat")
        eq(m.stderr().count("opcode: GETATTR") - getattrs, 0,
           "GETATTR requests for stat after reads")


# One process: a close of a duplicate descriptor, which stores the file,
# races a truncate, or a write over its last, partly written page, through
# the descriptor still open. The daemon hands the kernel that page (and
# with it the size); done while the file can still be written, as it once
# was at the close, the page landed over the newer bytes.
PUSH_RACER = r"""
import os, sys, threading
path, rounds = sys.argv[1], int(sys.argv[2])
old = b"o" * (3 * 4096 + 100)   # the last page is partly written
for i in range(rounds):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, old)
    dup = os.dup(fd)
    go = threading.Barrier(2)
    def closer():
        go.wait()
        os.close(dup)
    t = threading.Thread(target=closer)
    t.start()
    go.wait()
    # Each change ends the file at a page's end: the last close then has
    # no page to hand over, which would set the kernel right by chance.
    if i % 2:
        os.ftruncate(fd, 4096)
    else:
        os.pwrite(fd, b"N" * 4096, len(old) - 100)
    t.join()
    os.close(fd)
    print(i, flush=True)
    sys.stdin.readline()   # the observer has looked
"""


@test
def a_change_racing_a_close_is_never_stale():
    """A truncate or a write of the same open file racing the close of a
    duplicate descriptor never leaves a stale size or page for another
    process to see (the daemon hands the kernel the last page only when
    the last writer lets go)."""
    imgs = T().images(bs=4096, bc=256)
    old = b"o" * (3 * 4096 + 100)
    with Mount(imgs) as m:
        obs = Observer()
        p = m.p("k")
        rounds = 400
        r = subprocess.Popen([sys.executable, "-c", PUSH_RACER, p,
                              str(rounds)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        T().cleanups.append(r.kill)
        for i in range(rounds):
            line = r.stdout.readline()
            check(line.strip() == str(i), "racer round %d: %r" % (i, line))
            if i % 2:
                want = b"o" * 4096
            else:
                want = old[:-100] + b"N" * 4096
            eq(obs.ask("stat", p), len(want), "size after round %d" % i)
            got = obs.ask("read", p).encode("latin-1")
            if got != want:
                at = next((j for j, (a, b) in enumerate(zip(got, want))
                           if a != b), min(len(got), len(want)))
                check(False, "content after round %d: %d bytes, want %d; "
                      "first difference at %d: %r, want %r" % (
                          i, len(got), len(want), at, got[at:at + 16],
                          want[at:at + 16]))
            r.stdin.write("\n")
            r.stdin.flush()
        eq(r.wait(30), 0, "racer exit")
    eq(F.values(imgs)[b"k"], want, "stored")


@test
def listings_are_cached_and_stay_current():
    """The kernel keeps directory listings: listing twice costs one
    READDIR pass, and every create, unlink and rename shows in the next
    listing, in this process and in another."""
    imgs = T().images(bs=512, bc=2048)
    with Mount(imgs, flags=["-d"]) as m:
        obs = Observer()
        for i in range(50):
            write_file(m.p("f%02d" % i), b"x")
        names = sorted("f%02d" % i for i in range(50))
        eq(sorted(os.listdir(m.mnt)), names, "first listing")
        n = m.stderr().count("opcode: READDIR")
        eq(sorted(os.listdir(m.mnt)), names, "second listing")
        eq(m.stderr().count("opcode: READDIR"), n, "READDIRs of a repeat")
        write_file(m.p("new"), b"y")
        names = sorted(names + ["new"])
        eq(sorted(os.listdir(m.mnt)), names, "after create")
        eq(obs.ask("list", m.mnt), names, "after create, other process")
        os.unlink(m.p("f00"))
        names.remove("f00")
        eq(sorted(os.listdir(m.mnt)), names, "after unlink")
        eq(obs.ask("list", m.mnt), names, "after unlink, other process")
        os.rename(m.p("f01"), m.p("g01"))
        names = sorted([x for x in names if x != "f01"] + ["g01"])
        eq(sorted(os.listdir(m.mnt)), names, "after rename")
        eq(obs.ask("list", m.mnt), names, "after rename, other process")


STORM_WRITER = r"""
import fcntl, os, random, sys
mnt, wid, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(wid)


def rewrite(path, v):
    # Writers of one key take turns (flock), as on any file system: two
    # rewrites in place at once would mix their bytes anywhere.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.ftruncate(fd, 0)
    for off in range(0, len(v), 1000):
        os.write(fd, v[off:off + 1000])
    os.close(fd)


for seq in range(rounds):
    key = os.path.join(mnt, "k%d" % rng.randrange(4))
    tag = b"%d:%d|" % (wid, seq)
    v = tag * (50 + (wid * 7919 + seq * 104729) % 2500)
    how = rng.randrange(4)
    if how == 3:   # an editor's atomic replace: temporary file, rename
        tmp = os.path.join(mnt, "t%d" % wid)
        with open(tmp, "wb") as f:
            f.write(v)
        os.rename(tmp, key)
    elif how == 2:  # unlink, then create anew
        try:
            os.unlink(key)
        except FileNotFoundError:
            pass
        rewrite(key, v)
    else:          # rewrite in place, in pieces
        rewrite(key, v)
"""

STORM_READER = r"""
import os, random, re, sys
mnt, rid, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(100 + rid)
seen = 0
for _ in range(rounds):
    key = os.path.join(mnt, "k%d" % rng.randrange(4))
    try:
        fd = os.open(key, os.O_RDONLY)
    except FileNotFoundError:
        continue
    parts = []
    while True:
        b = os.read(fd, 700)
        if not b:
            break
        parts.append(b)
        if rng.randrange(3) == 0:   # drop the pages: the rest is a READ
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    got = b"".join(parts)
    if not got:
        continue   # a file created and not yet written is empty
    tag = got.split(b"|", 1)[0] + b"|"
    wid, seq = (int(x) for x in tag[:-1].split(b":"))
    n = 50 + (wid * 7919 + seq * 104729) % 2500
    if got != tag * n:
        runs = []   # (tag, offset, count) of each run of one tag
        for m in re.finditer(rb"(\d+:\d+\|)", got):
            if not runs or runs[-1][0] != m.group(1):
                runs.append([m.group(1), m.start(), 0])
            runs[-1][2] += 1
        sys.exit("reader %d: torn value: %d bytes, want %d of %r; runs %r" %
                 (rid, len(got), n * len(tag), tag, runs[:6]))
    seen += 1
print(seen)
"""


@test
def readers_and_writers_storm():
    """Three writers rewrite four keys in place (taking turns with flock,
    as writers of one file must on any file system), replace them by
    rename and unlink and re-create them, while three readers read them in small
    pieces and keep dropping their pages: every read is one whole value
    some writer stored, and no writer ever sees an error (ESTALE
    included). (fstat of a reader shows the writers' size while a writer
    has the key open, as documented, so it is not compared here.)"""
    t = T()
    imgs = t.images(bs=512, bc=4096)
    with Mount(imgs) as m:
        for k in range(4):   # as a writer 9 would have written them
            write_file(m.p("k%d" % k),
                       b"9:%d|" % k * (50 + (9 * 7919 + k * 104729) % 2500))
        procs = [subprocess.Popen([sys.executable, "-c", STORM_WRITER,
                                   m.mnt, str(i), "120"],
                                  stderr=subprocess.PIPE, text=True)
                 for i in range(3)]
        readers = [subprocess.Popen([sys.executable, "-c", STORM_READER,
                                     m.mnt, str(i), "400"],
                                    stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
                   for i in range(3)]
        for p in procs:
            _, err = p.communicate(timeout=300)
            eq(p.returncode, 0, "writer: " + err)
        total = 0
        for r in readers:
            out, err = r.communicate(timeout=300)
            eq(r.returncode, 0, "reader: " + err)
            total += int(out)
        check(total > 0, "the readers read nothing")
        # Every key holds one whole value, seen alike by the mount and
        # by the images after the unmount.
        now = {}
        for k in range(4):
            try:
                with open(m.p("k%d" % k), "rb") as f:
                    now[b"k%d" % k] = f.read()
            except FileNotFoundError:
                pass
    eq(F.values(imgs), now, "the store after the unmount")


BUSY = r"""
import os, sys
mnt = sys.argv[1]
n = 0
while True:
    for name in os.listdir(mnt):
        try:
            with open(os.path.join(mnt, name), "rb") as f:
                f.read(100)
        except OSError:
            pass
    n += 1
    if n == 3:
        print("busy", flush=True)
"""


@test
def killed_readers_and_listers_leave_the_daemon_sound():
    """Processes killed (SIGKILL) in the middle of listing and reading:
    the kernel then releases their files while their requests may still
    be answered, and the daemon must neither touch what it freed nor
    stop. Sharp under the sanitized daemon (tests/proof/sanitizers.sh);
    here, the mount must keep answering correctly."""
    imgs = T().images(bs=512, bc=2048)
    with Mount(imgs) as m:
        for i in range(300):
            write_file(m.p("f%03d" % i), b"v%d" % i * 20)
        for _ in range(15):
            ps = [subprocess.Popen([sys.executable, "-c", BUSY, m.mnt],
                                   stdout=subprocess.PIPE, text=True)
                  for _ in range(3)]
            for p in ps:
                eq(p.stdout.readline().strip(), "busy", "busy process")
            for p in ps:
                p.kill()
            for p in ps:
                p.wait(30)
                p.stdout.close()
        eq(len(os.listdir(m.mnt)), 300, "listing after the kills")
        with open(m.p("f123"), "rb") as f:
            eq(f.read(), b"v123" * 20, "a read after the kills")
        write_file(m.p("f123"), b"new")
    eq(F.values(imgs)[b"f123"], b"new", "stored after the kills")


if __name__ == "__main__":
    sys.exit(F.main(sys.argv[1:]))
