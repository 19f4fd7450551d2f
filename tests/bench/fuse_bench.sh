#!/usr/bin/env bash
# fuse_bench.sh - how fast an embedkvfs mount is, beside tmpfs.
#
# Formats a one-replica image (4096-byte blocks), mounts it with the
# default durable settings (every close is a put with fdatasync) and runs
# ../shared/tools/fsbench.py (500 files of 32 bytes: create, read, stat,
# readdir, rewrite, unlink) on the mount, on the same mount with -o nosync
# (what FUSE costs without the disk) and on a tmpfs directory; then times
# a large value written with cp and read back with cat after a remount.
# Prints figures, never pass/fail. Durable creates and rewrites cost one
# fdatasync each, so the rate of a plain fdatasync loop on the same file
# system is printed first for context. (On virtual machines whose idle
# vCPUs are slow to wake, that loop waits milliseconds for each wakeup
# rather than for the disk.)
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
big_mb=8

die() { echo "fuse_bench: $*" >&2; exit 1; }
[ -x "$ekv" ] || die "no $ekv (build first, or pass the build directory)"
[ -f "$fsbench" ] || die "no $fsbench"
[ -e /dev/fuse ] || die "no /dev/fuse"

work=$(mktemp -d "${TMPDIR:-/tmp}/ekvfs-bench.XXXXXX")
mnt=$work/mnt
tmpfs_dir=
daemon=
mkdir -p "$mnt"

cleanup() {
    if mountpoint -q "$mnt"; then
        fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" || true
    fi
    [ -n "$daemon" ] && wait "$daemon" 2>/dev/null || true
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

unmount_img() {
    local hwm
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$daemon/status" 2>/dev/null || echo "?")
    fusermount3 -u "$mnt"
    wait "$daemon"
    daemon=
    echo "$hwm"
}

# fsbench prints a JSON line last; keep the figures as "phase value".
run_fsbench() {
    python3 "$fsbench" "$1" -n "$n" -s "$size" | tail -n 1 |
        python3 -c 'import json,sys; d=json.load(sys.stdin)["ops_per_sec"]
for k in ("create","read","stat","readdir","rewrite","unlink"): print(k, d[k])'
}

echo "embedkvfs FUSE benchmark: $n files of $size bytes, 4096-byte blocks, 1 replica"
echo "image on: $(df -T "$work" | awk 'NR==2 {print $2" ("$1")"}'), kernel $(uname -r), $(nproc) CPUs"
python3 - "$work/sync.probe" <<'EOF'
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b"\0" * (1 << 20)); os.fsync(fd)
t, k = time.perf_counter(), 300
for i in range(k):
    os.pwrite(fd, b"x" * 4096, (i % 256) * 4096); os.fdatasync(fd)
print("disk baseline: %.0f fdatasync/s of one 4 KiB block" % (k / (time.perf_counter() - t)))
os.close(fd); os.unlink(sys.argv[1])
EOF
echo

mount_img
durable=$(run_fsbench "$mnt")
hwm_durable=$(unmount_img)

mount_img -o nosync
nosync=$(run_fsbench "$mnt")
hwm_nosync=$(unmount_img)

if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    tmpfs_dir=$(mktemp -d /dev/shm/ekvfs-bench.XXXXXX)
else
    tmpfs_dir=$work/tmpfs
    mkdir -p "$tmpfs_dir"
    mount -t tmpfs tmpfs "$tmpfs_dir" || die "no tmpfs to compare with"
fi
tmpfs=$(run_fsbench "$tmpfs_dir")

printf "%-8s %14s %14s %14s %10s\n" "phase" "embedkvfs" "-o nosync" "tmpfs" "target"
declare -A target=([create]=3000 [read]=20000 [stat]=50000 [readdir]=2000)
for phase in create read stat readdir rewrite unlink; do
    d=$(awk -v p="$phase" '$1 == p {print $2}' <<<"$durable")
    s=$(awk -v p="$phase" '$1 == p {print $2}' <<<"$nosync")
    t=$(awk -v p="$phase" '$1 == p {print $2}' <<<"$tmpfs")
    printf "%-8s %12s/s %12s/s %12s/s %10s\n" "$phase" "$d" "$s" "$t" "${target[$phase]:-}"
done
echo "(readdir: listings of all $n files per second)"
echo "daemon peak RSS: ${hwm_durable} kB (durable run), ${hwm_nosync} kB (nosync run)"
echo

# One large value: written by cp (the put happens in close), read by cat
# from a fresh mount (nothing in the kernel's cache, value loaded at open).
head -c $(( big_mb * 1024 * 1024 )) /dev/urandom >"$work/big"
ms() { date +%s%N | cut -c1-13; }
mount_img
t0=$(ms); cp "$work/big" "$mnt/big"; t1=$(ms)
unmount_img >/dev/null
mount_img
t2=$(ms); cat "$mnt/big" >/dev/null; t3=$(ms)
cmp -s "$work/big" "$mnt/big" || die "large value read back differs"
unmount_img >/dev/null
awk -v mb="$big_mb" -v w="$((t1 - t0))" -v r="$((t3 - t2))" 'BEGIN {
    printf "large value (%d MiB): write (cp, durable) %.1f MiB/s, read (cat, cold mount) %.1f MiB/s\n",
        mb, mb * 1000 / (w ? w : 1), mb * 1000 / (r ? r : 1) }'
