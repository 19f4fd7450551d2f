# embedkvfs format: geometry options, defaults, refusal to overwrite an
# image, erase byte, replica ids, byte-identity with the reference images.
. "$(dirname "$0")/lib.sh"

# --- new images ----------------------------------------------------------
ekv format --block-size 256 --blocks 8 a.img
expect_rc 0 "format of a new image"
expect_out "a.img: 8 blocks of 256 bytes (2048 bytes), replica_id 0" \
    "format says what it made"
[ "$(stat -c %s a.img)" -eq 2048 ] || fail "new image is 8 x 256 bytes"; pass

ekv format --blocks 16 d.img
expect_rc 0 "block size defaults to 256"
ekv dump --json d.img
expect_json '.block_size == 256 and .block_count == 16' "default block size 256"

ekv format --size 4K k.img
expect_rc 0 "--size with a K suffix"
[ "$(stat -c %s k.img)" -eq 4096 ] || fail "--size 4K is 4096 bytes"; pass
ekv format --block-size 512 --size 1MiB m.img
expect_rc 0 "--size with a MiB suffix"
[ "$(stat -c %s m.img)" -eq 1048576 ] || fail "--size 1MiB"; pass

ekv format --block-size 256 --size 1000 x.img
expect_rc 2 "--size that is not a whole number of blocks"
expect_err_has "not a whole number of 256-byte blocks" "says why"
expect_err_one_line "size error"
[ ! -e x.img ] || fail "a refused format creates nothing"; pass

ekv format new.img
expect_rc 2 "a new image needs --blocks or --size"
expect_err_has "give --blocks or --size" "says what is missing"
ekv format --blocks 8 --size 2048 new.img
expect_rc 2 "--blocks and --size together"
ekv format --blocks 1 new.img
expect_rc 2 "one block is too few"
ekv format --block-size 32 --blocks 8 new.img
expect_rc 2 "block size below 64"
ekv format --block-size 70000 --blocks 8 new.img
expect_rc 2 "block size above 65536"
ekv format --erase-byte 7f --blocks 8 new.img
expect_rc 2 "erase byte other than 00/ff"
ekv format --keep-data --erase-byte ff --blocks 8 new.img
expect_rc 2 "--keep-data with --erase-byte"
ekv format --blocks 8
expect_rc 2 "no image"
[ ! -e new.img ] || fail "usage errors create nothing"; pass

# --- replicas --------------------------------------------------------------
ekv format --blocks 8 r0.img r1.img r2.img
expect_rc 0 "format of three replicas"
for i in 0 1 2; do
    ekv dump --json r$i.img
    expect_json ".blocks[0].type == \"header\" and .blocks[0].replica_id == $i" \
        "replica $i gets replica_id $i"
done
ekv format --blocks 8 s0.img s0.img
expect_rc 2 "the same image twice"
expect_err_has "same image" "says so"

# --- refusing to overwrite an image ------------------------------------------
printf world | "$EKV" put a.img hello || fail "put"
before=$(sums a.img)
ekv format --blocks 8 a.img
expect_rc 1 "an existing image is not overwritten without --force"
expect_err_has "already an embedkv image.*--force" "says to use --force"
expect_err_one_line "refusal"
[ "$(sums a.img)" = "$before" ] || fail "refused format leaves the image"; pass
ekv format --blocks 8 r0.img zz.img a.img
expect_rc 1 "one existing image among several stops them all"
[ ! -e zz.img ] || fail "nothing is created when one image is refused"; pass

ekv format --force a.img
expect_rc 0 "--force re-formats, keeping the size"
ekv ls a.img
expect_rc 0 "ls after re-format"
expect_no_out "a re-formatted image is empty (old records erased)"
[ "$(stat -c %s a.img)" -eq 2048 ] || fail "re-format keeps the size"; pass

ekv format --block-size 512 --blocks 8 b512.img
ekv format --force b512.img
ekv dump --json b512.img
expect_json '.block_size == 512 and .block_count == 8' \
    "re-format keeps the block size of the image"

printf world | "$EKV" put a.img hello || fail "put"
ekv format --force --keep-data a.img
expect_rc 0 "--keep-data writes the header only"
ekv get a.img hello
expect_out world "--keep-data leaves records for recovery to judge"

# An existing file that is not an image is initialised without --force,
# taking its size.
truncate -s 8192 plain.img
ekv format plain.img
expect_rc 0 "a blank file is initialised"
expect_out_has "32 blocks of 256 bytes" "its size is kept"
head -c 3000 /dev/urandom >junk.img
ekv format junk.img
expect_rc 2 "a file of no whole number of blocks needs --size"
head -c 4096 /dev/urandom >junk.img
before=$(sums junk.img)
ekv format junk.img
expect_rc 1 "a file of other data is not overwritten without --force"
expect_err_has "junk.img: a file holding data that is not an embedkv image \(4096 bytes\); use --force" \
    "says why and how"
[ "$(sums junk.img)" = "$before" ] || fail "refused format leaves the file"; pass
ekv format --force junk.img
expect_rc 0 "with --force a file of random bytes is initialised"
ekv check junk.img
expect_rc 0 "and its random data is erased (check is clean)"

# --- erase byte ----------------------------------------------------------------
ekv format --erase-byte ff --blocks 16 ff.img
expect_rc 0 "--erase-byte ff"
[ "$(tail -c +257 ff.img | tr -d '\377' | wc -c)" -eq 0 ] ||
    fail "every data block is 0xff"
pass
ekv dump ff.img
expect_out_has "^1 free crc=- fill=ff$" "dump shows 0xff-erased blocks"
ekv check ff.img
expect_rc 0 "an 0xff-erased image is clean"
printf v | "$EKV" put ff.img k || fail "put on an ff image"
ekv get ff.img k
expect_out v "get on an ff image"
ekv format --blocks 16 zero.img
[ "$(tail -c +257 zero.img | tr -d '\000' | wc -c)" -eq 0 ] ||
    fail "default erase byte is 00"
pass

# --- locked image ---------------------------------------------------------------
ekv format --blocks 8 lk.img
hold_lock lk.img
before=$(sums lk.img)
ekv format --force lk.img
expect_rc 5 "a locked image is not formatted"
expect_err_has "locked" "says it is locked"
[ "$(sums lk.img)" = "$before" ] || fail "locked image unchanged"; pass
release_lock

# --- a failed format changes no image ----------------------------------------
# Every image is opened, locked and checked before any is written, resized
# or created for good: when one fails, the others keep every byte and their
# size, and a file format created is removed again.
ekv format --blocks 4096 keep.img
for i in $(seq 20); do
    head -c 3000 /dev/urandom | "$EKV" put keep.img "key$i" || fail "put key$i"
done
keep=$(sums keep.img)
keep_ok() { # WHAT: keep.img is as it was, and still opens
    [ "$(sums keep.img)" = "$keep" ] || fail "$1: keep.img changed"
    pass
    "$EKV" ls keep.img >"$WORK/out" 2>"$WORK/err" ||
        fail "$1: keep.img no longer opens"
    [ "$(wc -l <"$WORK/out")" -eq 20 ] || fail "$1: keep.img lost keys"
    pass
}
ekv format --force --blocks 16 keep.img missing-dir/b.img
expect_rc 5 "an image in a missing directory fails the format"
expect_err_has "missing-dir/b\.img: no such file or directory" "names the path"
keep_ok "a smaller format failing on a later image (not truncated)"
ekv format --force --blocks 8192 keep.img missing-dir/b.img
expect_rc 5 "a larger format failing on a later image"
keep_ok "a larger format failing on a later image (not extended)"
ekv format --force --blocks 16 keep.img new.img missing-dir/b.img
expect_rc 5 "a format creating a file, failing on a later image"
[ ! -e new.img ] || fail "the file format created for the run is removed"; pass
keep_ok "a format creating a file, failing on a later image"

# A lock only the locking itself sees (a POSIX record lock, which an
# flock test does not show): taken after the other images were checked.
"$EKV" format --blocks 16 rec.img >/dev/null || fail "format rec.img"
rec=$(sums rec.img)
(exec python3 -c '
import fcntl, sys, time
f = open(sys.argv[1], "r+b")
fcntl.lockf(f, fcntl.LOCK_EX)
open(sys.argv[2], "w").close()
time.sleep(600)' rec.img rec.ready) &
LOCKPID=$!
for _ in $(seq 200); do [ -e rec.ready ] && break; sleep 0.05; done
[ -e rec.ready ] || fail "could not take the record lock on rec.img"
ekv format --force --blocks 16 keep.img new.img rec.img
expect_rc 5 "an image locked by a record lock fails the format"
expect_err_has "rec\.img: .*locked" "says it is locked"
keep_ok "a format failing on a locked image"
[ "$(sums rec.img)" = "$rec" ] || fail "the locked image is unchanged"; pass
[ ! -e new.img ] || fail "the file created for the run is removed"; pass
release_lock

# A size the file cannot have (EFBIG) shows before any image is written:
# here a file size limit (ulimit -f, which a file system's largest file
# size fails the same way). Shrinking keep.img (1 MiB) is allowed under
# the limit, growing b2.img to 64 KiB is not.
ekv_limit() { # KIB ARGS...: embedkvfs under a file size limit of KIB KiB
    local kib=$1
    shift
    (ulimit -f "$kib" && exec "$EKV" "$@") >"$WORK/out" 2>"$WORK/err"
    rc=$?
    sanitizer_clean "$@"
}
ekv_limit 2048 format --block-size 4096 --blocks 16K big.img
expect_rc 5 "a file larger than the file size limit"
expect_err_has "^embedkvfs format: big\.img: cannot make a file of 67108864 bytes: this process may write files of 2097152 bytes at most \(ulimit -f\)$" \
    "names the real cause and the size"
[ ! -e big.img ] || fail "the file format created is removed"; pass
ekv_limit 32 format --force --size 64K keep.img b2.img
expect_rc 5 "a later image that cannot grow"
keep_ok "an earlier image is not shrunk before a later one is grown"
[ ! -e b2.img ] || fail "the file format created is removed"; pass

# The file system's own limits, as root: its largest file (ext2 with 1 KiB
# blocks: 16 GiB) and its free space (a 256 KiB tmpfs). The space format
# writes is reserved before any image is written.
if [ "$(id -u)" -eq 0 ] && command -v mkfs.ext2 >/dev/null && mkdir fs1k &&
    truncate -s 32M fs1k.img && mkfs.ext2 -q -b 1024 fs1k.img &&
    mount -o loop fs1k.img fs1k 2>/dev/null; then
    trap 'umount "$WORK/fs1k" 2>/dev/null; cleanup' EXIT
    ekv format --block-size 4096 --blocks 8M fs1k/h.img
    expect_rc 5 "an image larger than the file system's largest file"
    expect_err_has "^embedkvfs format: fs1k/h\.img: the file system cannot hold a file of 34359738368 bytes" \
        "names the file system's limit and the size"
    [ ! -e fs1k/h.img ] || fail "the file format created is removed"; pass
    ekv format --force --block-size 4096 --blocks 8M keep.img fs1k/h.img
    expect_rc 5 "a later image larger than the file system's largest file"
    keep_ok "a later image larger than the file system's largest file"
    umount fs1k
    trap cleanup EXIT
else
    echo "note: not root or no loop mount: the largest-file check not run"
fi
if [ "$(id -u)" -eq 0 ] && mkdir small && mount -t tmpfs -o size=256K tmpfs small; then
    trap 'umount "$WORK/small" 2>/dev/null; cleanup' EXIT
    ekv format --force --erase-byte ff --size 1M keep.img small/b.img
    expect_rc 5 "a later image with no room on its file system"
    expect_err_has "small/b\.img: no space on the file system for the 1048576 bytes format writes" \
        "says so before writing"
    keep_ok "a later image with no room on its file system"
    [ ! -e small/b.img ] || fail "the file format created is removed"; pass
    umount small
    trap cleanup EXIT
else
    [ "${CI:-}" != true ] || fail "CI=true: the full file system check needs root (a tmpfs)"
    echo "note: not root: the full file system check not run"
fi

# --- a geometry the tool can open ------------------------------------------------
# Opening a store takes 17 bytes of memory per block (recovery's tables),
# so format makes at most 64M blocks (1.1 GiB to open) and refuses more
# before it writes anything.
ekv format --block-size 64 --blocks 2000M h.img
expect_rc 2 "2000M blocks are refused"
expect_err_has "^embedkvfs format: 2097152000 blocks of 64 bytes are too many: a store has at most 67108864 blocks \(opening one takes 17 bytes of memory per block, 34250 MiB for this one\); use larger blocks or fewer$" \
    "says why and the limit"
expect_err_one_line "the refusal"
[ ! -e h.img ] || fail "a refused geometry creates nothing"; pass
ekv format --block-size 64 --blocks 67108865 h.img
expect_rc 2 "one block over the limit is refused"
ekv format --block-size 64K --blocks 4294967295 h.img
expect_rc 2 "the largest block count of the format is refused"
ekv format --block-size 64 --size 5G h.img
expect_rc 2 "a --size of too many blocks is refused"
[ ! -e h.img ] || fail "a refused geometry creates nothing"; pass
if truncate -s 4G probe.img 2>/dev/null && [ "$(du -k probe.img | cut -f1)" -lt 1024 ]; then
    rm -f probe.img
    truncate -s 17G over.img
    ekv format over.img
    expect_rc 2 "an existing file of too many blocks is refused"
    expect_err_has "71303168 blocks of 256 bytes are too many" "says so"
    [ "$(stat -c %s over.img)" -eq $((17 << 30)) ] &&
        cmp -s -n 65536 over.img /dev/zero || fail "the refused file is unchanged"
    pass
    rm -f over.img
    ekv format --block-size 64 --blocks 64M max.img
    expect_rc 0 "the largest geometry is made"
    printf v | "$EKV" put max.img k >/dev/null 2>&1 || fail "put into the largest store"
    ekv get max.img k
    expect_out v "the largest store opens"
    # ... in 1.25 GiB of address space (not in a sanitizer build, whose
    # shadow memory needs far more).
    (ulimit -v 1310720 && exec "$EKV" get max.img k) >"$WORK/out" 2>"$WORK/err"
    rc=$?
    if grep -q Sanitizer "$WORK/err"; then
        echo "note: sanitizer build: the address-space check not run"
    else
        expect_rc 0 "the largest store opens in 1.25 GiB of address space"
    fi
    rm -f max.img
else
    rm -f probe.img
    echo "note: no sparse files here: the largest geometries not made"
fi

# --- format refuses what is not a file ---------------------------------------------
mkdir adir
ekv format --blocks 8 adir
expect_rc 1 "a directory is refused (exit 1, as a FIFO)"
expect_err_has "adir: is a directory: refused" "says so"

# --- byte-identical to the reference images (format + puts) -------------------
ekv format --block-size 256 --blocks 8 small.img
printf world | "$EKV" put small.img hello || fail "put"
expect_same small.img "$TESTDATA/small_value.bin" \
    "format + put hello=world equals small_value.bin"
ekv format --block-size 256 --blocks 16 multi.img
for k in alpha beta gamma; do
    printf "value-$k" | "$EKV" put multi.img "$k" || fail "put $k"
done
expect_same multi.img "$TESTDATA/multi_key.bin" "equals multi_key.bin"
ekv format --block-size 256 --blocks 16 large.img
python3 -c 'import sys; sys.stdout.buffer.write(bytes(i % 256 for i in range(500)))' >v500
"$EKV" put --file v500 large.img bigkey || fail "put bigkey"
expect_same large.img "$TESTDATA/large_value.bin" "equals large_value.bin"

ekv format --help
expect_rc 0 "format --help"
expect_out_has "^usage: embedkvfs format" "help shows the usage"
ekv format --bogus x.img
expect_rc 2 "unknown option"
expect_err_has "bad option '--bogus'" "names the option"

done_ok
