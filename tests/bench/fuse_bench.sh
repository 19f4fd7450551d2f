#!/usr/bin/env bash
# fuse_bench.sh - how fast an embedkvfs mount is, as ratios to tmpfs (and
# to littlefs-fuse when an `lfs-fuse` binary is on PATH).
#
# Small files: ../shared/tools/fsbench.py (500 files of 32 bytes: create,
# read, stat, readdir, rewrite, unlink), best of 3 rounds per phase, on a
# one-replica image (4096-byte blocks) mounted with the durable defaults,
# on the same image with -o nosync (what FUSE costs without the disk), on
# tmpfs, and on littlefs-fuse if present.
# Large value: an 8 MiB file written with cp (durable and -o nosync) and
# read back with cat from a fresh mount, best of 3, beside tmpfs and beside
# what the disk itself gives for writing 8 MiB to a file and fdatasync-ing
# it (the baseline of a durable write).
# Prints figures and ratios, never pass/fail, and never fails because
# littlefs-fuse is missing ("littlefs-fuse not available").
#
# littlefs-fuse is the FUSE front end of littlefs, published by the littlefs
# project (github.com/littlefs-project/littlefs-fuse, with littlefs itself
# in its littlefs/ directory). Debian does not package it, and this project
# does not fetch it: to compare with it, build it yourself. It is written
# for the FUSE 2 API, so it needs the libfuse 2 headers and library
# (Debian's libfuse-dev, which installs beside libfuse3-dev; its static
# libfuse.a also works unpacked in a scratch directory); its Makefile
# builds a binary called `lfs`. Put that binary on PATH under the name
# `lfs-fuse`. The bench formats a 64 MiB file of 4096-byte blocks with it
# (`--format --block_size=4096 --block_count=16384`; a plain file has no
# geometry to ask for, so both are given), runs it in the foreground of a
# background job (`-f`), and unmounts it with fusermount3. littlefs-fuse
# is durable too: littlefs ends each metadata commit with the block
# device's sync, which littlefs-fuse implements as fsync() of the image.
#
# usage: tests/bench/fuse_bench.sh [BUILD_DIR]     (default: ./build)
# Needs root (or FUSE access), /dev/fuse and python3.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
ekv=$build/src/tool/embedkvfs
imgcheck=$build/tests/fuse/imgcheck
fsbench=$top/../shared/tools/fsbench.py
n=500
size=32
rounds=3
big_mb=8

die() { echo "fuse_bench: $*" >&2; exit 1; }
[ -x "$ekv" ] || die "no $ekv (build first, or pass the build directory)"
[ -f "$fsbench" ] || die "no $fsbench"
[ -e /dev/fuse ] || die "no /dev/fuse"

work=$(mktemp -d "${TMPDIR:-/tmp}/ekvfs-bench.XXXXXX")
mnt=$work/mnt
lmnt=$work/lfs-mnt
tmpfs_dir=
daemon=
lfs_daemon=
mkdir -p "$mnt" "$lmnt"

cleanup() {
    for m in "$mnt" "$lmnt"; do
        if mountpoint -q "$m"; then
            fusermount3 -u "$m" 2>/dev/null || umount -l "$m" || true
        fi
    done
    [ -n "$daemon" ] && wait "$daemon" 2>/dev/null || true
    [ -n "$lfs_daemon" ] && wait "$lfs_daemon" 2>/dev/null || true
    [ -n "$tmpfs_dir" ] && rm -rf "$tmpfs_dir"
    rm -rf "$work"
}
trap cleanup EXIT

# A non-sparse image: the first write of a hole would cost the file system
# an allocation, which is not what we measure.
blocks=$(( 64 * 1024 * 1024 / 4096 ))
img=$work/bench.img
dd if=/dev/zero of="$img" bs=1M count=64 status=none
if ! "$ekv" format --block-size 4096 --blocks "$blocks" "$img" >/dev/null 2>&1 &&
   ! "$ekv" format --force --block-size 4096 --blocks "$blocks" "$img" >/dev/null 2>&1; then
    [ -x "$imgcheck" ] || die "cannot format: embedkvfs format failed, no imgcheck"
    "$imgcheck" format 4096 "$blocks" "$img"
fi

mount_img() {  # [OPTIONS] - mount in the background of this shell
    "$ekv" mount -f "$@" "$img" "$mnt" 2>"$work/daemon.log" &
    daemon=$!
    for _ in $(seq 200); do
        mountpoint -q "$mnt" && return 0
        kill -0 "$daemon" 2>/dev/null || die "mount failed: $(cat "$work/daemon.log")"
        sleep 0.05
    done
    die "mount did not appear"
}

unmount_img() {  # (not in a subshell: it waits for this shell's child)
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$daemon/status" 2>/dev/null || echo "?")
    fusermount3 -u "$mnt"
    wait "$daemon" || true
    daemon=
}

# Best of $rounds fsbench runs in directory $1, as "phase ops/s" lines.
run_fsbench() {
    for _ in $(seq "$rounds"); do
        python3 "$fsbench" "$1" -n "$n" -s "$size" | tail -n 1
    done | python3 -c 'import json, sys
best = {}
for line in sys.stdin:
    for k, v in json.loads(line)["ops_per_sec"].items():
        best[k] = max(best.get(k, 0), v)
for k in ("create", "read", "stat", "readdir", "rewrite", "unlink"):
    print(k, best[k])'
}

echo "embedkvfs FUSE benchmark: $n files of $size bytes, best of $rounds rounds, 4096-byte blocks, 1 replica"
echo "image on: $(df -T "$work" | awk 'NR==2 {print $2" ("$1")"}'), kernel $(uname -r), $(nproc) CPUs"
echo

mount_img
durable=$(run_fsbench "$mnt")
unmount_img
hwm_durable=$hwm

mount_img -o nosync
nosync=$(run_fsbench "$mnt")
unmount_img
hwm_nosync=$hwm

if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    tmpfs_dir=$(mktemp -d /dev/shm/ekvfs-bench.XXXXXX)
else
    tmpfs_dir=$work/tmpfs
    mkdir -p "$tmpfs_dir"
    mount -t tmpfs tmpfs "$tmpfs_dir" || die "no tmpfs to compare with"
fi
tmpfs=$(run_fsbench "$tmpfs_dir")

# littlefs-fuse, when an lfs-fuse binary is on PATH (see the header). Each
# step returns non-zero on failure, so that a broken lfs-fuse gives a note,
# not a failed bench.
lfs=
lfs_note="littlefs-fuse not available"
lfs_log=$work/lfs.log
lopts=(--block_size=4096 --block_count="$blocks")

mount_lfs() {  # IMAGE - lfs-fuse in the foreground of a background job
    lfs-fuse -f "${lopts[@]}" "$1" "$lmnt" >>"$lfs_log" 2>&1 &
    lfs_daemon=$!
    for _ in $(seq 200); do
        mountpoint -q "$lmnt" && return 0
        if ! kill -0 "$lfs_daemon" 2>/dev/null; then
            wait "$lfs_daemon" || true
            lfs_daemon=
            return 1
        fi
        sleep 0.05
    done
    echo "lfs-fuse: mount did not appear within 10 s" >>"$lfs_log"
    kill "$lfs_daemon" 2>/dev/null || true
    wait "$lfs_daemon" || true
    lfs_daemon=
    return 1
}

unmount_lfs() {  # waits for lfs-fuse to unmount littlefs and exit
    fusermount3 -u "$lmnt" || umount -l "$lmnt" || true
    wait "$lfs_daemon" || true
    lfs_daemon=
}

if command -v lfs-fuse >/dev/null 2>&1; then
    limg=$work/lfs.img
    dd if=/dev/zero of="$limg" bs=1M count=64 status=none
    lfs_ver=$(timeout 5 lfs-fuse --version 2>&1 </dev/null |
              awk '/^littlefs-fuse version/ {v = $3} /^littlefs version/ {l = $3}
                   END {if (v != "") print v ", littlefs " l}') || true
    if ! timeout 60 lfs-fuse --format "${lopts[@]}" "$limg" >"$lfs_log" 2>&1; then
        lfs_note="littlefs-fuse failed to format: $(tail -n 1 "$lfs_log")"
    elif ! mount_lfs "$limg"; then
        lfs_note="littlefs-fuse failed to mount: $(tail -n 1 "$lfs_log")"
    else
        # What the mount reports (statfs), to show the geometry is the one asked for.
        lgeo=$(stat -f -c '%b blocks of %S bytes' "$lmnt" 2>/dev/null || echo "geometry unknown")
        if lfs=$(run_fsbench "$lmnt"); then
            lfs_note="littlefs-fuse: $(command -v lfs-fuse) (${lfs_ver:-version unknown}), $lgeo, defaults otherwise"
        else
            lfs=
            lfs_note="littlefs-fuse: fsbench failed on its mount"
        fi
        unmount_lfs
    fi
fi

fig() { awk -v p="$1" '$1 == p {print $2}' <<<"$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2fx", a / b }'; }

printf "%-8s %12s %12s %12s %12s %9s %9s %9s\n" "phase" "embedkvfs" "-o nosync" "tmpfs" \
    "littlefs" "vs tmpfs" "nosync/t" "vs lfs"
for phase in create read stat readdir rewrite unlink; do
    d=$(fig "$phase" "$durable"); s=$(fig "$phase" "$nosync")
    t=$(fig "$phase" "$tmpfs"); l=$(fig "$phase" "$lfs")
    printf "%-8s %10s/s %10s/s %10s/s %10s/s %9s %9s %9s\n" "$phase" "$d" "$s" "$t" \
        "${l:--}" "$(ratio "$d" "$t")" "$(ratio "$s" "$t")" "$(ratio "$d" "$l")"
done
echo "(ops/s; readdir: listings of all $n files per second; ratios of the durable mount)"
echo "$lfs_note"
echo "daemon peak RSS: ${hwm_durable} kB (durable run), ${hwm_nosync} kB (nosync run)"
# A durable create, rewrite or unlink costs one fdatasync of the image:
# the disk's own rate of small writes each made durable bounds them.
sync_rate=$(python3 - "$work/sync.bin" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, 1 << 22)
buf = b"x" * 4096
best = 0
for _ in range(3):
    t = time.perf_counter()
    for i in range(500):
        os.pwrite(fd, buf, (i % 1000) * 4096)
        os.fdatasync(fd)
    best = max(best, 500 / (time.perf_counter() - t))
os.close(fd)
os.unlink(sys.argv[1])
print(round(best, 1))
PY
)
echo "the disk itself: ${sync_rate} writes of 4 KiB + fdatasync per second (the ceiling of a durable create, rewrite, unlink)"
# Every FUSE request is two wake-ups (the daemon's, then the caller's):
# how long a wake-up takes on this machine right now bounds every phase
# above, and on a shared virtual machine it moves by 10x. A pipe round
# trip between two processes (best of 3 x 5000) says which it was.
wake_us=$(python3 - <<'PY'
import os, time
a, b = os.pipe(), os.pipe()
if os.fork() == 0:
    os.close(a[1])
    os.close(b[0])
    while os.read(a[0], 1):
        os.write(b[1], b"x")
    os._exit(0)
os.close(a[0])
os.close(b[1])
best = None
for _ in range(3):
    t = time.perf_counter()
    for _ in range(5000):
        os.write(a[1], b"x")
        os.read(b[0], 1)
    us = (time.perf_counter() - t) / 5000 * 1e6
    best = us if best is None else min(best, us)
os.close(a[1])
os.wait()
print(round(best, 1))
PY
)
echo "a pipe round trip between two processes: ${wake_us} us (two wake-ups: every FUSE request pays about that)"
echo

# One large value, best of $rounds each: cp in (the put happens in close),
# cat out on the same mount (what a user does: the pages cp wrote are the
# stored value and stay cached) and out of a fresh mount (nothing in the
# kernel's cache, value loaded at open). The disk baseline writes the same
# bytes to a plain file beside the image and fdatasyncs it.
head -c $(( big_mb * 1024 * 1024 )) /dev/urandom >"$work/big"
secs() {  # COMMAND... - seconds it took (its output is discarded)
    python3 -c 'import subprocess, sys, time
t = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(time.perf_counter() - t)' "$@"
}
best() { sort -g | head -n 1; }
large() {  # OPTIONS... - sets lw, lr, lc: best write, cold and warm read
    local i t
    : >"$work/w.times"; : >"$work/r.times"; : >"$work/c.times"
    for i in $(seq "$rounds"); do
        mount_img "$@"; secs cp "$work/big" "$mnt/big$i" >>"$work/w.times"
        secs cat "$mnt/big$i" >>"$work/c.times"
        unmount_img
    done
    for i in $(seq "$rounds"); do
        mount_img "$@"; secs cat "$mnt/big$i" >>"$work/r.times"
        cmp -s "$work/big" "$mnt/big$i" || die "large value read back differs"
        rm "$mnt/big$i"; unmount_img
    done
    lw=$(best <"$work/w.times"); lr=$(best <"$work/r.times")
    lc=$(best <"$work/c.times")
}
large; dw=$lw; dr=$lr; dc=$lc
large -o nosync; nw=$lw
tw=$(for i in $(seq "$rounds"); do secs cp "$work/big" "$tmpfs_dir/big"; done | best)
tr=$(for i in $(seq "$rounds"); do secs cat "$tmpfs_dir/big"; done | best)
raw=$(for i in $(seq "$rounds"); do
    python3 - "$work/big" "$work/raw.$i" <<'PY'
import os, sys, time
data = open(sys.argv[1], "rb").read()
t = time.perf_counter()
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, data)
os.fdatasync(fd)
os.close(fd)
print(time.perf_counter() - t)
os.unlink(sys.argv[2])
PY
done | best)
awk -v mb="$big_mb" -v dw="$dw" -v dr="$dr" -v dc="$dc" -v nw="$nw" -v tw="$tw" -v tr="$tr" -v raw="$raw" 'BEGIN {
    printf "large value (%d MiB, MiB/s, best of 3):\n", mb
    printf "  read (cat after cp)      %8.1f   tmpfs %8.1f   ratio %.2fx\n", mb/dc, mb/tr, tr/dc
    printf "  read (cat, fresh mount)  %8.1f   tmpfs %8.1f   ratio %.2fx\n", mb/dr, mb/tr, tr/dr
    printf "  write -o nosync (cp)     %8.1f   tmpfs %8.1f   ratio %.2fx\n", mb/nw, mb/tw, tw/nw
    printf "  write durable (cp)       %8.1f   disk write+fdatasync %8.1f   ratio %.2fx\n", mb/dw, mb/raw, raw/dw
}'
