#!/usr/bin/env bash
# The main job, end to end: install what is needed, build embedkvfs, format
# two replica images, mount them, use the keys with cp/cat/ls/rm, unmount,
# and show the keys with the command-line tool. Run as root on Debian 12.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash tests/install-deps.sh
if [ ! -x build-demo/src/tool/embedkvfs ]; then
    meson setup build-demo -Dtests=false -Dbench=false >/dev/null
fi
ninja -C build-demo >/dev/null
ekv=$root/build-demo/src/tool/embedkvfs

work=$(mktemp -d /tmp/embedkv-demo.XXXXXX)
mnt=$work/mnt
mkdir -p "$mnt"
cleanup() {
    mountpoint -q "$mnt" && { fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"; }
    rm -rf "$work"
}
trap cleanup EXIT

run() { printf '$ %s\n' "$*"; "$@"; }

run "$ekv" format --block-size 256 --blocks 4096 "$work/a.img" "$work/b.img"
run "$ekv" mount "$work/a.img" "$work/b.img" "$mnt"
printf 'hello from embedkv\n' > "$work/greeting.txt"
head -c 3000 /dev/urandom > "$work/blob.bin"
run cp "$work/greeting.txt" "$mnt/greeting"
run cp "$work/blob.bin" "$mnt/firmware-blob"
echo '$ echo 42 > '"$mnt/answer"; echo 42 > "$mnt/answer"
run ls -l "$mnt"
run cat "$mnt/greeting"
run cmp "$work/blob.bin" "$mnt/firmware-blob"
run rm "$mnt/answer"
run df -h "$mnt"
run fusermount3 -u "$mnt"
# fusermount3 returns once the kernel lets go; the daemon then stores and
# closes the images, releasing their locks a moment later.
for _ in $(seq 50); do
    flock -n "$work/a.img" true && flock -n "$work/b.img" true && break
    sleep 0.1
done
echo "# after unmount, both replicas hold the same keys:"
run "$ekv" ls -l "$work/a.img" "$work/b.img"
run "$ekv" get "$work/b.img" greeting
run "$ekv" check "$work/a.img" "$work/b.img"
echo "demo: ok"
