# lib.sh - helpers for the embedkvfs command-line tests. Sourced by each
# tests/cli/test_*.sh, which meson runs as: bash test_X.sh EMBEDKVFS TESTDATA
#
# Every check names the behaviour it asserts; the first failure ends the
# script with exit 1 and shows the command's output, so a log reads like a
# specification with one line marked.
set -u

EKV=$(realpath "${1:?usage: test_X.sh EMBEDKVFS TESTDATA_DIR}")
TESTDATA=$(realpath "${2:?usage: test_X.sh EMBEDKVFS TESTDATA_DIR}")
JQ=${JQ:-jq}
command -v "$JQ" >/dev/null ||
    { echo "FAIL: jq is needed (bash tests/install-deps.sh --all)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ekv-cli.XXXXXX")
LOCKPID=
cleanup() {
    [ -n "$LOCKPID" ] && kill "$LOCKPID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK" || exit 1

checks=0
fail() {
    echo "FAIL: $*" >&2
    if [ -e "$WORK/out" ]; then
        echo "--- last stdout:" >&2
        head -c 4000 "$WORK/out" >&2
    fi
    if [ -e "$WORK/err" ]; then
        echo "--- last stderr:" >&2
        head -c 4000 "$WORK/err" >&2
    fi
    exit 1
}
pass() { checks=$((checks + 1)); }

# ekv ARGS...: run embedkvfs; stdout in $WORK/out, stderr in $WORK/err, the
# exit code in $rc. Standard input is /dev/null unless redirected by caller.
ekv() {
    "$EKV" "$@" >"$WORK/out" 2>"$WORK/err"
    rc=$?
    sanitizer_clean "$@"
}
# ekv_in FILE ARGS...: the same with standard input from FILE.
ekv_in() {
    local in=$1
    shift
    "$EKV" "$@" <"$in" >"$WORK/out" 2>"$WORK/err"
    rc=$?
    sanitizer_clean "$@"
}
# In a sanitizer build, a report fails the test whatever the exit code.
sanitizer_clean() {
    if grep -Eq "Sanitizer|runtime error:" "$WORK/err"; then
        fail "sanitizer report from: embedkvfs $*"
    fi
}

expect_rc() { # CODE WHAT
    [ "$rc" -eq "$1" ] || fail "$2: exit $rc, expected $1"
    pass
}
expect_out() { # TEXT WHAT: stdout is exactly TEXT (plus a final newline)
    [ "$(cat "$WORK/out")" = "$1" ] ||
        fail "$2: stdout differs; expected:"$'\n'"$1"
    pass
}
expect_out_has() { # REGEX WHAT
    grep -Eq -- "$1" "$WORK/out" || fail "$2: stdout lacks /$1/"
    pass
}
expect_err_has() { # REGEX WHAT
    grep -Eq -- "$1" "$WORK/err" || fail "$2: stderr lacks /$1/"
    pass
}
expect_err_one_line() { # WHAT: an error is one line on stderr
    [ "$(wc -l <"$WORK/err")" -eq 1 ] || fail "$1: stderr is not one line"
    pass
}
expect_no_out() { # WHAT
    [ ! -s "$WORK/out" ] || fail "$1: stdout should be empty"
    pass
}
expect_json() { # JQ-EXPR WHAT: stdout is JSON and the expression is true
    "$JQ" -e "$1" "$WORK/out" >/dev/null 2>&1 || fail "$2: jq '$1' is not true"
    pass
}
expect_same() { # FILE1 FILE2 WHAT
    cmp -s "$1" "$2" || fail "$3: $1 and $2 differ"
    pass
}
sums() { sha256sum "$@"; }

# hold_lock FILE [MODE]: another process holds an flock (MODE -x, the
# default, or -s) on FILE, as a mount or another embedkvfs would, until
# release_lock. The subshell execs sleep, so killing it drops the lock.
hold_lock() {
    ( exec 9<"$1" && flock "${2:--x}" 9 && exec sleep 600 ) &
    LOCKPID=$!
    local i
    for i in $(seq 200); do
        flock -n -x "$1" true 2>/dev/null || return 0
        sleep 0.05
    done
    fail "could not take the lock on $1"
}
release_lock() {
    kill "$LOCKPID" 2>/dev/null
    wait "$LOCKPID" 2>/dev/null
    LOCKPID=
}

# patch FILE OFFSET HEXBYTES: overwrite bytes in place.
patch() {
    printf "$(echo "$3" | sed 's/../\\x&/g')" |
        dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# flip FILE OFFSET: invert the byte at OFFSET, a change whatever it held
# (patching random bytes with a constant is no change once in 256).
flip() {
    python3 - "$1" "$2" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    b = f.read(1)[0]
    f.seek(int(sys.argv[2]))
    f.write(bytes([b ^ 0xFF]))
PY
}

# exhausted_generation IMG KEY: a new store of 256-byte blocks in IMG
# whose one key KEY has generation 4294967295 (its descriptor patched and
# resealed as check's crc_fix does).
exhausted_generation() {
    "$EKV" format --size 8K "$1" >/dev/null || fail "format $1"
    printf v | "$EKV" put "$1" "$2" || fail "put $1 $2"
    local blk
    blk=$("$EKV" dump --json "$1" |
        "$JQ" '.blocks[] | select(.type == "descriptor") | .index')
    python3 - "$1" "$blk" <<'PY' || fail "patch the generation of $1"
import sys, zlib
path, blk, bs = sys.argv[1], int(sys.argv[2]), 256
with open(path, "r+b") as f:
    f.seek(blk * bs)
    b = bytearray(f.read(bs))
    b[4:8] = b"\xff\xff\xff\xff"          # generation 4294967295
    b[-4:] = b"\0\0\0\0"
    b[-4:] = (zlib.crc32(bytes(b)) & 0xffffffff).to_bytes(4, "little")
    f.seek(blk * bs)
    f.write(b)
PY
}
done_ok() { echo "ok: $checks checks in $(basename "$0")"; exit 0; }

# upstream_set IMAGE...: clear the participant mask (header flags) of each
# image, as the Go/Rust implementations write it. A set formatted by
# embedkvfs names its replicas, so writing to some of them needs
# --degraded and starts a new epoch; tests that make replicas diverge on
# purpose (writing to a subset, as a crash between replicas would leave
# them) use upstream-style sets, where an image names no other.
upstream_set() {
    local img
    for img in "$@"; do
        set_epoch "$img" keep 0
    done
}

# set_epoch IMAGE SEQ|keep MASK: rewrite the header's format_seq (the
# epoch) and flags (the participant mask), CRC sealed: what an epoch bump
# writes.
set_epoch() {
        python3 - "$1" "$2" "$3" <<'PY' || fail "set_epoch $1"
import struct, sys, zlib
path, seq, mask = sys.argv[1], sys.argv[2], int(sys.argv[3], 0)
with open(path, 'r+b') as f:
    head = f.read(16)
    bs = struct.unpack_from('<I', head, 8)[0]
    f.seek(0)
    blk = bytearray(f.read(bs))
    if seq != 'keep':
        blk[20:24] = struct.pack('<I', int(seq, 0))
    blk[24:28] = struct.pack('<I', mask)
    blk[bs - 4:bs] = b'\0\0\0\0'
    blk[bs - 4:bs] = struct.pack('<I', zlib.crc32(bytes(blk)) & 0xffffffff)
    f.seek(0)
    f.write(blk)
PY
}
