#!/usr/bin/env python3
"""test_replica_mount.py - replica sets on real FUSE mounts (issue 13).

Scenario 1: a key deleted and re-created, and another rewritten, through a
mount -o degraded while b.img is away; b.img comes back; get, ls and a
normal mount show the new values, and check is clean once a writable mount
has healed b. Scenario 4: kill -9 of the daemon while it writes to two
replicas; a remount heals whatever the kill left apart, and check exits 0
with no manual repair. Run one test:
  test_replica_mount.py --embedkvfs E --imgcheck I NAME
"""

import os
import signal
import subprocess
import sys

import fuselib as F
from fuselib import Mount, check, eq, run, test


def T():
    return F.Test.current


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def ekv(*args, check_rc=False):
    return run([F.EMBEDKVFS] + list(args), check_rc=check_rc)


@test
def degraded_rewrite_survives_the_replicas_return():
    t = T()
    a, b = t.images(2, names=["a.img", "b.img"])
    for _ in range(4):  # creds reaches generation 4 on both
        F.put([a, b], b"creds", b"password=OLD\n")
    F.put([a, b], b"note", b"v1\n")
    F.put([a, b], b"gone", b"x\n")
    away = t.path("b.away")
    os.rename(b, away)
    with Mount([a, b], opts=["degraded"]) as m:
        F.sh("rm %s/creds && echo password=NEW > %s/creds" % (m.mnt, m.mnt))
        F.sh("echo v2 > %s/note && rm %s/gone" % (m.mnt, m.mnt))
        eq(read_file(m.p("creds")), b"password=NEW\n", "through the mount")
    os.rename(away, b)

    p = ekv("get", a, b, "creds")
    eq(p.returncode, 0, "get exit: " + p.stderr)
    eq(p.stdout, "password=NEW\n", "get returns the new value")
    check("b.img: stale replica" in p.stderr, "get says b is stale: " +
          p.stderr)
    p = ekv("get", a, b, "gone")
    eq(p.returncode, 3, "the key deleted while b was away stays deleted")
    p = ekv("ls", a, b)
    eq(p.returncode, 0, "ls exit: " + p.stderr)
    eq(sorted(p.stdout.split()), ["creds", "note"], "ls")
    p = ekv("check", a, b)
    eq(p.returncode, 4, "check before the heal: b is stale\n" + p.stdout)
    check("stale: epoch 0 < 1" in p.stdout, p.stdout)

    # A normal (writable) mount heals b and says so before detaching.
    with Mount([a, b]) as m:
        eq(read_file(m.p("creds")), b"password=NEW\n", "normal mount")
        eq(read_file(m.p("note")), b"v2\n", "normal mount")
        eq(sorted(os.listdir(m.mnt)), ["creds", "note"], "normal mount ls")
    check("b.img: had missed writes (stale epoch): rebuilt" in m.stderr(),
          "the mount says what heal did: " + m.stderr())
    p = ekv("check", a, b)
    eq(p.returncode, 0, "check after the heal\n" + p.stdout)
    p = ekv("get", b, "creds")
    eq(p.stdout, "password=NEW\n", "b alone holds the new value")
    eq(F.values([a, b]), {b"creds": b"password=NEW\n", b"note": b"v2\n"})


WRITER = r"""
import os, sys
mnt = os.fsencode(sys.argv[1])
i = 0
while True:
    key = b"k%d" % (i % 8)
    v = (b"%d:" % i) * (200 + (i * 37) % 900)
    try:
        fd = os.open(os.path.join(mnt, key),
                     os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, v)
        os.close(fd)
    except OSError:
        break
    print(i, flush=True)
    i += 1
"""


@test
def sigkill_while_writing_two_replicas_heals_on_remount():
    t = T()
    imgs = t.images(2, bs=512, bc=512, names=["a.img", "b.img"])
    for attempt in range(3):
        m = Mount(imgs).start()
        w = subprocess.Popen([sys.executable, "-c", WRITER, m.mnt],
                             stdout=subprocess.PIPE, text=True)
        for line in w.stdout:
            if int(line) >= 20 + 17 * attempt:
                break
        m.kill(signal.SIGKILL)
        for line in w.stdout:
            pass
        w.wait(30)
        m.proc.wait(15)
        m.unmount()  # the dead mount
        with Mount(imgs) as m2:
            names = os.listdir(m2.mnt)
            check(len(names) > 0, "keys after the kill")
            for n in names:
                v = read_file(m2.p(n))
                i = v.split(b":", 1)[0]
                eq(v, (i + b":") * (200 + (int(i) * 37) % 900),
                   "value of %s is whole" % n)
        # No manual repair: the remount healed what the kill left apart.
        p = ekv("check", *imgs)
        eq(p.returncode, 0, "check after the remount\n" + p.stdout +
           p.stderr)


if __name__ == "__main__":
    sys.exit(F.main(sys.argv[1:]))
