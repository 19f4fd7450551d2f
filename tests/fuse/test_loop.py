#!/usr/bin/env python3
"""test_loop.py - the daemon's request loop never stalls (issue 12).

One daemon thread at a time reads requests (src/tool/mount_loop.c); it
passes that role on before anything that can wait for the kernel, which
may itself wait for a request still queued: the page that the daemon
hands the kernel after a close (notify_store) may be locked by a READ or
a WRITE of another thread of the writer. These tests make such requests
race the closes for long, and stop the daemon with a signal whichever
thread reads. A stall shows as a timeout: the test then aborts the FUSE
connection, so that nothing stays blocked, and fails.
Run one test:  test_loop.py --embedkvfs E --imgcheck I NAME
"""

import glob
import os
import signal
import subprocess
import sys
import time

import fuselib as F
from fuselib import Mount, check, eq, test


def T():
    return F.Test.current


SIZE = 3 * 4096 + 100  # the last page is partly written: a release pushes it

# One process, one file open read-write: threads write it, read it after
# dropping its pages (each read is then a READ holding the page locked),
# and fault in a shared mapping of it, while the main thread closes
# duplicates of the descriptor, each close a FLUSH that stores the content
# (the release at the end pushes its last page).
RACER = r"""
import mmap, os, sys, threading
path, closes, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, size)
stop = False
errors = []

def guard(fn):
    def run():
        try:
            fn()
        except Exception as e:
            errors.append(repr(e))
    return run

def writer():
    i = 0
    while not stop:
        os.pwrite(fd, b"w%d." % i, (i * 997) % (size - 16))
        i += 1

def reader():
    while not stop:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.pread(fd, 4096, size - 200)

def mapper():
    # Pages mapped are never dropped: map anew each time.
    i = 0
    while not stop:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        m = mmap.mmap(fd, size)
        try:
            m[size - 1 - i % 50]
        finally:
            m.close()
        i += 1

threads = [threading.Thread(target=guard(f)) for f in (writer, reader, mapper)]
for t in threads:
    t.start()
try:
    for _ in range(closes):
        os.close(os.dup(fd))
finally:
    stop = True
    for t in threads:
        t.join()
os.close(fd)
if errors:
    sys.exit("racer: " + "; ".join(errors))
print("done", flush=True)
"""


# One process, in turns: a writer stores the file and closes it (its
# release, which the kernel sends without waiting, hands the kernel the
# last page), then a reader opens it at once, drops its pages and reads
# the last one, while the push of that very page may be under way.
RELEASE_RACER = r"""
import os, sys
path, rounds, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(rounds):
    v = (b"%d." % i * size)[:size]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, v)
    os.close(fd)
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    got = os.pread(fd, 4096, size - 100)
    os.close(fd)
    if got != v[-100:]:
        sys.exit("round %d: last bytes %r, want %r" % (i, got, v[-100:]))
print("done", flush=True)
"""


def abort_connections(mnt):
    """Abort the FUSE connection of mnt, so that its waiters return (a
    stalled daemon and its callers wait in the kernel, where no signal
    reaches them). The connections are listed in fusectl, mounted here if
    it is not."""
    if not os.listdir("/sys/fs/fuse/connections"):
        subprocess.run(["mount", "-t", "fusectl", "none",
                        "/sys/fs/fuse/connections"], check=False)
    try:
        dev = os.stat(mnt).st_dev
    except OSError:
        dev = None
    for d in glob.glob("/sys/fs/fuse/connections/*"):
        if dev is None or os.path.basename(d) == str(os.minor(dev)):
            try:
                with open(os.path.join(d, "abort"), "w") as f:
                    f.write("1")
            except OSError:
                pass


def stacks(pid):
    """Where each thread of process pid waits in the kernel (for a
    failure's message)."""
    out = []
    for t in sorted(glob.glob("/proc/%d/task/*" % pid)):
        try:
            with open(t + "/wchan") as f:
                w = f.read()
            with open(t + "/stack") as f:
                st = " < ".join(l.split()[1].split("+")[0]
                                for l in f.read().splitlines()[:6])
        except (OSError, IndexError):
            continue
        out.append("%s: %s [%s]" % (os.path.basename(t), w, st))
    return "; ".join(out)


def race(m, name, closes, racer=RACER):
    p = subprocess.Popen([sys.executable, "-c", racer, m.p(name),
                          str(closes), str(SIZE)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        out, err = p.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        where = stacks(m.proc.pid)
        abort_connections(m.mnt)
        m.kill()
        p.kill()
        p.communicate()
        raise F.TestFailure("the mount stalled: %d closes racing reads, "
                            "writes and page faults did not finish; daemon "
                            "threads: %s" % (closes, where))
    eq(p.returncode, 0, "racer: " + err)
    eq(out.strip(), "done", "racer output")


@test
def closes_racing_reads_writes_and_faults_never_stall():
    """Closes that store a file race, in the same process, writes, READs
    of dropped pages and page faults of a shared mapping of that file, on
    the durable and the -o nosync mount: every request is answered, the
    value stored at the last close is the content, and the image is
    clean."""
    for opts in ((), ("nosync",)):
        imgs = T().images(bs=512, bc=512)
        with Mount(imgs, opts=opts) as m:
            race(m, "f", 300 if not opts else 3000)
            with open(m.p("f"), "rb") as f:
                content = f.read()
            eq(len(content), SIZE, "size after the race")
        eq(F.values(imgs), {b"f": content}, "stored value after the race")
        r = F.run([F.EMBEDKVFS, "check"] + imgs, check_rc=False)
        eq(r.returncode, 0, "check after the race: " + r.stdout + r.stderr)


@test
def releases_racing_reads_of_the_last_page_never_stall():
    """The last writer's release hands the kernel the file's last page
    while a reader that opened right after the close READs that page: every
    request is answered, and the reader gets the new bytes."""
    imgs = T().images(bs=512, bc=512)
    with Mount(imgs) as m:
        race(m, "f", 400, RELEASE_RACER)
    r = F.run([F.EMBEDKVFS, "check"] + imgs, check_rc=False)
    eq(r.returncode, 0, "check after the race: " + r.stdout + r.stderr)


@test
def signal_stops_the_daemon_whichever_thread_reads():
    """After closes have passed the reader's role between threads, and
    while a racer keeps several of them busy, SIGTERM ends the daemon:
    it exits 0, the mount is gone and the images are unlocked."""
    imgs = T().images(bs=512, bc=512)
    for round_ in range(6):
        m = Mount(imgs, opts=("nosync",)).start()
        for i in range(20):
            with open(m.p("k%d" % i), "wb") as f:
                f.write(b"x" * (100 + i))
        p = subprocess.Popen([sys.executable, "-c", RACER, m.p("f"),
                              "100000", str(SIZE)],
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        T().cleanups.append(p.kill)
        time.sleep(0.2 + 0.1 * round_)
        m.kill(signal.SIGTERM)
        try:
            rc = m.proc.wait(20)
        except subprocess.TimeoutExpired:
            where = stacks(m.proc.pid)
            abort_connections(m.mnt)
            p.kill()
            p.wait()
            raise F.TestFailure("the daemon did not exit after SIGTERM; its "
                                "threads: " + where)
        p.wait(30)
        eq(rc, 0, "daemon exit status after SIGTERM: " + m.stderr())
        m.unmount()
        check(not F.mounted(m.mnt), "still mounted after SIGTERM")
        vals = F.values(imgs)
        for i in range(20):
            eq(vals.get(b"k%d" % i), b"x" * (100 + i), "k%d" % i)


if __name__ == "__main__":
    sys.exit(F.main(sys.argv[1:]))
