# Sparse 4 GiB images (issue 9, item 13): no command reads their holes.
# The verdict counts the bytes a command reads (read, pread64, readv,
# preadv, preadv2 under strace), never the time it takes.
#
# Two images:
# - 4096-byte blocks, formatted in place from a blank sparse file: what
#   the tool reads by itself (format's blank test, the image probe, dump,
#   check's raw block scan), then the commands that open the store (ls,
#   get, put, rm, check), whose block reads go through the file device
#   (src/posix/filedev.c), which skips holes with SEEK_DATA/SEEK_HOLE;
# - 256-byte blocks (16M of them) made by format --size 4G, holding one
#   key: get, ls and check read less than 1 MiB, and put and rm keep the
#   image sparse.
. "$(dirname "$0")/lib.sh"

command -v strace >/dev/null || {
    [ "${CI:-}" != true ] || fail "CI=true: strace is needed (tests/install-deps.sh --all)"
    echo "SKIP: strace is not installed (tests/install-deps.sh --all)"
    exit 77
}
truncate -s 4G probe.img 2>/dev/null && [ "$(du -k probe.img | cut -f1)" -lt 1024 ] || {
    [ "${CI:-}" != true ] || fail "CI=true: the temporary directory has no sparse files"
    echo "SKIP: $WORK cannot hold a sparse 4 GiB file"
    exit 77
}
rm -f probe.img

# read_bytes CMD...: run embedkvfs CMD (output in $WORK/out, $WORK/err,
# $rc; standard input $STDIN, else /dev/null) and set $bytes to what it
# read in all.
read_bytes() {
    # LeakSanitizer cannot run under ptrace: no leak check for these runs
    # in a sanitizer build (the other CLI tests have it).
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    strace -f -qq -e trace=read,pread64,readv,preadv,preadv2 -e signal=none \
        -o "$WORK/strace" "$EKV" "$@" <"${STDIN:-/dev/null}" \
        >"$WORK/out" 2>"$WORK/err"
    rc=$?
    sanitizer_clean "$@"
    bytes=$(awk -F'= ' '$NF ~ /^[0-9]+/ {s += $NF} END {printf "%.0f", s}' \
        "$WORK/strace")
}
# at_most LIMIT WHAT
at_most() {
    [ "$bytes" -le "$1" ] || fail "$2: read $bytes bytes (at most $1 expected)"
    pass
}
# less_than LIMIT WHAT
less_than() {
    [ "$bytes" -lt "$1" ] || fail "$2: read $bytes bytes (less than $1 expected)"
    pass
}
sparse_ok() { # IMAGE WHAT: the image still occupies almost nothing
    [ "$(du -k "$1" | cut -f1)" -lt 4096 ] ||
        fail "$2: the image is no longer sparse ($(du -k "$1" | cut -f1) KiB)"
    pass
}

MiB=1048576

# --- 4096-byte blocks: what the tool reads itself ------------------------------
truncate -s 4G big.img
read_bytes format --block-size 4096 big.img
expect_rc 0 "format of a sparse 4 GiB file"
at_most $MiB "format (its blank test reads no hole)"
sparse_ok big.img "format leaves the blank file sparse (nothing to erase)"
printf value | "$EKV" put big.img k2 || fail "put k2"
sparse_ok big.img "after a put"

read_bytes dump big.img
expect_rc 0 "dump"
at_most $MiB "dump"
expect_out_has "^1048575 free crc=- fill=00$" "dump still shows every block"
read_bytes dump --json big.img
expect_rc 0 "dump --json"
at_most $MiB "dump --json"
read_bytes format big.img
expect_rc 1 "format of an existing image is refused"
at_most $MiB "and the probe read no hole"

# check's own raw scan of the blocks skips the holes: whatever the store's
# open reads (the file device's business), check adds no second pass.
read_bytes check big.img
expect_rc 0 "check"
expect_out_has "^  blocks:   1048574 free, 1 descriptor, 0 chunk, 0 garbage, 0 unreadable$" \
    "check counts the holes as free blocks"
at_most $((4096 * MiB + 64 * MiB)) "check (one pass at most)"

# --- 4096-byte blocks: the commands that open the store ----------------------
for spec in "ls big.img" "ls -l big.img" "get big.img k2" "check big.img"; do
    # shellcheck disable=SC2086
    read_bytes $spec
    expect_rc 0 "$spec"
    at_most $((64 * MiB)) "$spec"
done
STDIN=/dev/null read_bytes put big.img k3
expect_rc 0 "put"
at_most $((64 * MiB)) "put"
read_bytes rm big.img k3
expect_rc 0 "rm"
at_most $((64 * MiB)) "rm"
sparse_ok big.img "after the store commands"
rm -f big.img

# --- 256-byte blocks: 16M blocks, one key -----------------------------------------
ekv format --size 4G small.img
expect_rc 0 "format --size 4G makes a 4 GiB image of 256-byte blocks"
[ "$(du -k small.img | cut -f1)" -lt 1024 ] ||
    fail "format --size 4G wrote the holes ($(du -k small.img | cut -f1) KiB)"
pass
printf 'one value' >val
ekv_in val put small.img only
expect_rc 0 "put into the sparse image"

read_bytes get small.img only
expect_rc 0 "get reads the key back"
expect_out "one value" "get: the value"
less_than $MiB "get of a sparse 4 GiB image"

read_bytes get small.img missing
expect_rc 3 "get of a missing key exits 3"
less_than $MiB "get of a missing key"

read_bytes ls small.img
expect_rc 0 "ls"
expect_out "only" "ls lists the one key"
less_than $MiB "ls"

read_bytes check small.img
expect_rc 0 "check of the sparse image is clean"
less_than $MiB "check"

# Writes touch only the record's blocks: the image stays sparse.
ekv_in val put small.img second
expect_rc 0 "put of a second key"
ekv rm small.img only
expect_rc 0 "rm in the sparse image"
[ "$(du -k small.img | cut -f1)" -lt 1024 ] ||
    fail "put and rm keep the image sparse ($(du -k small.img | cut -f1) KiB)"
pass
ekv get small.img second
expect_rc 0 "get of the second key"
expect_out "one value" "the second key reads back"

done_ok
