# Partition windows: --offset/--length for every command, format inside a
# dump, replicas inside one file, locate, and that no byte outside a window
# ever changes (put, rm, import, repair, and writes through a real mount).
. "$(dirname "$0")/lib.sh"

# A dump: 64 KiB of "bootloader", a 32 KiB erased partition, 64 KiB tail.
head -c 65536 /dev/urandom >head.bin
head -c 65536 /dev/urandom >tail.bin
{ cat head.bin; head -c 32768 /dev/zero | tr '\0' '\377'; cat tail.bin; } >d.bin
outside_ok() { # WHAT: head and tail of d.bin are as they were
    cmp -s <(head -c 65536 d.bin) head.bin || fail "$1: bytes before the window changed"
    cmp -s <(tail -c 65536 d.bin) tail.bin || fail "$1: bytes after the window changed"
    [ "$(stat -c %s d.bin)" -eq 163840 ] || fail "$1: the dump changed size"
    pass
}

# --- numbers: hex, suffixes, through the one parser ---------------------
ekv format --offset 0x10000 --length 32K d.bin
expect_rc 0 "format in a window (hex offset, K length)"
outside_ok "format --offset"
ekv dump --json --offset 64K d.bin
expect_json '.block_size == 256 and .block_count == 128' "dump in the window"
expect_json '[.blocks[] | select(.type == "free")][0].fill == "ff"' \
    "an erased (0xFF) window stays 0xFF"

ekv format --offset 0 --length 32K d.bin
expect_rc 1 "format refuses a window holding data"
expect_err_has "holds data.*--force" "says why and how"
outside_ok "refused format"
ekv format --offset 64K --length 32K d.bin
expect_rc 1 "format refuses an existing store in the window"
expect_err_has "already an embedkv image" "says why"
ekv format --offset 150K --length 32K d.bin
expect_rc 2 "a window past the end of the file"
expect_err_has "ends past the end of the file" "says why"
ekv format --offset 64K --length 32K new.bin
expect_rc 2 "format in a window needs an existing file"
[ ! -e new.bin ] || fail "no file is created"; pass
ekv format --offset 64K --length 1000 d.bin
expect_rc 2 "a length that is not whole blocks"
cp d.bin d2.bin
ekv format --force --offset 64K d2.bin
expect_rc 0 "re-format of the store in a window (length from its header)"
ekv dump --json --offset 64K d2.bin
expect_json '[.blocks[] | select(.type == "free")] | all(.fill == "ff")' \
    "a store erased with 0xFF keeps its erase byte"
cmp -s <(head -c 65536 d2.bin) head.bin && cmp -s <(tail -c 65536 d2.bin) tail.bin ||
    fail "re-format: bytes outside changed"; pass

# --- put, get, ls, rm in the window --------------------------------------
echo hello | "$EKV" put --offset 64K d.bin greeting 2>err
[ $? -eq 0 ] || fail "put in the window"; pass
outside_ok "put"
ekv get --offset=65536 d.bin greeting
expect_out "hello" "get in the window"
ekv ls --offset 64K --length 0x8000 d.bin
expect_out "greeting" "ls with an explicit length"
ekv rm --offset 64K d.bin greeting
expect_rc 0 "rm in the window"
outside_ok "rm"

# --- bad windows ----------------------------------------------------------
ekv ls --offset 200K d.bin
expect_rc 4 "a window offset past the end"
expect_err_has "past the end of the file" "says why"
ekv ls --offset 4K d.bin
expect_rc 4 "a window that holds no header"
expect_err_has "at offset 4096: no storage header" "says where"
ekv ls --offset 64K --length 16K d.bin
expect_rc 4 "a length that disagrees with the header"
expect_err_has "window length 16384 but the header" "says why"
ekv ls --offset 64K:64K d.bin
expect_rc 2 "two offsets for one image"
ekv ls --offset 0xZZ d.bin
expect_rc 2 "a bad number"
expect_err_has "--offset: '0xZZ'" "names the bad value"

# --- replicas in one file -------------------------------------------------
{ head -c 16384 /dev/urandom; head -c 32768 /dev/zero; head -c 4096 /dev/urandom; } >r.bin
head -c 16384 r.bin >r.head; tail -c 4096 r.bin >r.tail
ekv format --offset 16K:32K --length 16K r.bin r.bin
expect_rc 0 "two replicas in one file"
ekv format --force --offset 16K:24K --length 16K r.bin r.bin
expect_rc 2 "overlapping replica windows in format"
expect_err_has "overlap" "says why"
echo v | "$EKV" put --offset 16K:32K r.bin r.bin k || fail "put to both replicas"
ekv ls -l --offset 16K:32K r.bin r.bin
expect_out_has "== k$" "both replicas hold the key"
ekv ls --offset 16K:24K r.bin r.bin
expect_rc 2 "overlapping replica windows of one file"
expect_err_has "overlaps the window" "says why"
ekv check --offset 16K:32K r.bin r.bin
expect_rc 0 "check of replicas in one file"
# Break the second replica's record, then repair in place.
patch r.bin $((32768 + 256 + 40)) 5a5a
ekv repair --offset 16K:32K r.bin r.bin
expect_rc 0 "repair in windows"
ekv check --offset 16K:32K r.bin r.bin
expect_rc 0 "repaired"
# The first replica's header destroyed: its window's length is the other's.
patch r.bin 16384 00000000
ekv repair --offset 16K:32K r.bin r.bin
expect_rc 0 "repair of a replica without a header, in a window"
ekv check --offset 16K:32K r.bin r.bin
expect_rc 0 "repaired again"
cmp -s <(head -c 16384 r.bin) r.head || fail "repair: head changed"; pass
cmp -s <(tail -c 4096 r.bin) r.tail || fail "repair: tail changed"; pass

# --- locate ---------------------------------------------------------------
ekv locate d.bin
expect_rc 0 "locate finds the store"
expect_out_has "^0x0000010000 +32768 +256 +128 +0 +0 +0$" "offset, length, geometry, keys"
ekv locate --json r.bin
expect_json 'length == 2 and .[0].offset == 16384 and .[1].offset == 32768 and .[1].replica_id == 1 and .[0].keys == 1 and .[0].length == 16384 and .[0].block_size == 256 and .[0].block_count == 64' \
    "locate --json, two replicas"
ekv locate --offset 64K d.bin
expect_rc 2 "locate scans the whole file"
head -c 100000 /dev/urandom >noise.bin
ekv locate noise.bin
expect_rc 1 "locate in a file without a store"
expect_err_has "no embedkv store found" "says so"
# A header with a broken CRC is not a store.
cp d.bin bad.bin
patch bad.bin $((65536 + 20)) ff
ekv locate --json bad.bin
expect_json 'length == 0' "a header with a bad CRC is not reported"
# Speed: a 64 MiB dump (printed, never asserted).
truncate -s 64M big.bin
dd if=d.bin of=big.bin bs=1 skip=65536 seek=$((40 * 1048576)) count=32768 conv=notrunc status=none
start=$(date +%s%N)
ekv locate --json big.bin
end=$(date +%s%N)
expect_json 'length == 1 and .[0].offset == 41943040' "locate in a 64 MiB dump"
echo "locate: 64 MiB in $(( (end - start) / 1000000 )) ms"
# The same sparse dump, dumped at the store's window: the holes before it
# are not the window's blocks (dump took them for its own and showed an
# empty window).
ekv dump --offset 64K d.bin
cp out window.txt
ekv dump --offset 40M big.bin
expect_out_has "^0 header crc=ok" "dump of a window in a sparse dump reads the window"
expect_same out window.txt "it is the window's dump in the dump it came from"

# --- import and mount writes stay in the window ---------------------------
printf '{"keys": [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]}' >doc.json
ekv import --offset 64K -f doc.json d.bin
expect_rc 0 "import in the window"
outside_ok "import"
ekv export --offset 64K d.bin
expect_json '(.keys | length) == 2 and .block_count == 128' "export of a window"
cp out w.json
ekv format --from w.json w.img
ekv diff --offset 64K:0 d.bin w.img
expect_rc 0 "diff of a window against a plain image (one value per image)"
ekv extract --offset 64K d.bin wdir
expect_rc 0 "extract from a window"
[ "$(cat wdir/b)" = 2 ] || fail "extract wrote the window's keys"; pass

if [ ! -e /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
    [ "${CI:-}" = true ] && fail "CI needs /dev/fuse and fusermount3"
    echo "SKIP: mount part: no /dev/fuse or fusermount3"
    done_ok
fi
mkdir mnt
if ! "$EKV" mount -o offset=64K,length=0x8000,uid=0x4D2,gid=1K d.bin mnt 2>err; then
    [ "${CI:-}" = true ] && fail "mount in a window"
    if grep -q "fuse" err; then echo "SKIP: cannot mount here: $(cat err)"; done_ok; fi
    fail "mount -o offset=: $(cat err)"
fi
trap 'fusermount3 -u "$WORK/mnt" 2>/dev/null; cleanup' EXIT
[ "$(cat mnt/a)" = 1 ] || fail "the mount serves the window's store"; pass
[ "$(stat -c %u:%g mnt/a)" = 1234:1024 ] || fail "uid=0x4D2,gid=1K: numbers in mount options"; pass
echo written >mnt/c || fail "write through the mount"
head -c 3000 /dev/urandom >mnt/big || fail "a multi-block write"
rm mnt/b || fail "unlink through the mount"
sync
fusermount3 -u mnt || fail "unmount"
for i in $(seq 100); do flock -n -x d.bin true 2>/dev/null && break; sleep 0.05; done
outside_ok "mount writes"
ekv ls --offset 64K d.bin
expect_out "a
big
c" "the mount's writes are in the window"
ekv mount -o offset=zz d.bin mnt
expect_rc 2 "a bad offset= mount option"
expect_err_has "offset: 'zz'" "names the bad value"
ekv mount -o uid=-1 d.bin mnt
expect_rc 2 "a bad uid= mount option"
done_ok
