#!/usr/bin/env bash
# A sparse image (issue 9 item 13): a 4 GiB image of 256-byte blocks
# holding one key. Every command skips the holes instead of reading 16M
# blocks: the verdict is the bytes the process reads (counted by strace
# over read and pread64), never the time it takes.
. "$(dirname "$0")/lib.sh"

if ! command -v strace >/dev/null; then
    [ "${CI:-}" = true ] && fail "strace is needed (tests/install-deps.sh --all)"
    echo "SKIP: no strace to count the bytes read"
    exit 77
fi

ekv format --size 4G big.img
[ "$rc" = 0 ] || fail "format --size 4G makes a 4 GiB image"
# The file system must have holes for the test to mean anything.
[ "$(du -k big.img | cut -f1)" -lt 1024 ] || {
    [ "${CI:-}" = true ] && fail "the file system of $WORK has no sparse files"
    echo "SKIP: no sparse files on the file system of $WORK"
    exit 77
}
printf 'one value' >val
ekv_in val put big.img only
[ "$rc" = 0 ] || fail "put into the sparse image"

# bytes CMD...: run embedkvfs under strace; $rc gets its exit code and $n
# the bytes it read.
bytes() {
    # LeakSanitizer cannot run under ptrace: no leak check in a sanitizer
    # build for these runs (the other CLI tests have it).
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
        strace -f -qq -e trace=read,pread64 -o "$WORK/trace" "$EKV" "$@" \
        >"$WORK/out" 2>"$WORK/err"
    rc=$?
    sanitizer_clean "$@"
    n=$(awk '/= [0-9]+$/ { n += $NF } END { print n + 0 }' "$WORK/trace")
}

bytes get big.img only
[ "$rc" = 0 ] && [ "$(cat out)" = "one value" ] || fail "get reads the key back"
[ "$n" -lt 1048576 ] || fail "get of a sparse 4 GiB image read $n bytes"
pass

bytes get big.img missing
[ "$rc" = 3 ] || fail "get of a missing key exits 3"
[ "$n" -lt 1048576 ] || fail "get of a missing key read $n bytes"
pass

bytes ls big.img
[ "$rc" = 0 ] && [ "$(cat out)" = "only" ] || fail "ls lists the one key"
[ "$n" -lt 1048576 ] || fail "ls read $n bytes"
pass

bytes check big.img
[ "$rc" = 0 ] || fail "check of the sparse image is clean"
[ "$n" -lt 1048576 ] || fail "check read $n bytes"
pass

# Writes touch only the record's blocks: the image stays sparse.
ekv_in val put big.img second
ekv rm big.img only
[ "$rc" = 0 ] || fail "rm in the sparse image"
[ "$(du -k big.img | cut -f1)" -lt 1024 ] || fail "put and rm keep the image sparse"
ekv get big.img second
[ "$(cat out)" = "one value" ] || fail "the second key reads back"
pass

echo "ok: $checks checks"
