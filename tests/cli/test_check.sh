# embedkvfs check: per-replica reports, keys that differ (missing, older,
# corrupt), fsck(8) exit codes, --json.
. "$(dirname "$0")/lib.sh"

# crc_fix FILE BLOCK BS: reseal a block's CRC after editing it.
crc_fix() {
    python3 - "$@" <<'PY'
import sys, zlib
path, blk, bs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "r+b") as f:
    f.seek(blk * bs)
    b = bytearray(f.read(bs))
    b[-4:] = b"\0\0\0\0"
    b[-4:] = (zlib.crc32(bytes(b)) & 0xffffffff).to_bytes(4, "little")
    f.seek(blk * bs)
    f.write(b)
PY
}

# --- clean -----------------------------------------------------------------
"$EKV" format --blocks 32 a.img b.img c.img >/dev/null || fail "format"
upstream_set a.img b.img c.img # diverged on purpose below
for k in alpha beta gamma; do
    printf "value-$k" | "$EKV" put a.img b.img c.img "$k" || fail "put $k"
done
head -c 500 /dev/urandom >v500
"$EKV" put --file v500 a.img b.img c.img big || fail "put big"
ekv check a.img b.img c.img
expect_rc 0 "a clean store"
expect_out_has "^status:   0: clean$" "says clean"
expect_out_has "^replica 1: b.img$" "reports each replica"
expect_out_has "^  header:   ok, format 1.0, replica_id 1, format_seq 0$" \
    "header fields"
expect_out_has "^  geometry: 32 blocks of 256 bytes$" "geometry"
expect_out_has "^  blocks:   25 free, 4 descriptor, 2 chunk, 0 garbage, 0 unreadable$" \
    "block counts"
expect_out_has "^  records:  4 complete \(4 keys\), 0 incomplete, 0 stale$" \
    "record counts"
expect_out_has "^keys:     4 in the store, 0 differ between replicas$" "keys"
ekv check --json a.img b.img c.img
expect_rc 0 "check --json of a clean store"
python3 -m json.tool out >/dev/null || fail "check --json is JSON"; pass
expect_json '.status == 0 and .clean and .block_size == 256 and .block_count == 32 and .keys == 4' \
    "json summary"
expect_json '.replicas | length == 3' "json: one entry per replica"
expect_json '.replicas[2] | .replica == 2 and .image == "c.img" and .usable and .error == null and .file_size == 8192' \
    "json: replica identity"
expect_json '.replicas[0].header == {"valid": true, "version": "1.0", "replica_id": 0, "format_seq": 0, "block_size": 256, "block_count": 32}' \
    "json: header"
expect_json '.replicas[0].blocks == {"free": 25, "descriptor": 4, "chunk": 2, "garbage": 0, "unreadable": 0, "erasable": 0}' \
    "json: blocks"
expect_json '.replicas[0].records == {"complete": 4, "incomplete": 0, "stale": 0} and .replicas[0].keys == 4' \
    "json: records"
expect_json '.differences == []' "json: no differences"

# --- the recovery fixtures: would-be-corrected issues (1) ---------------------
cp "$TESTDATA/recovery/partial_write.bin" pw.bin
cp "$TESTDATA/recovery/partial_erase.bin" pe.bin
ekv check pw.bin
expect_rc 1 "partial_write: recovery would erase the torn update"
expect_out_has "recovery would erase 2 blocks" "says what recovery would erase"
expect_out_has "^status:   1: recovery would erase interrupted writes \(no data at risk\)$" \
    "status line"
ekv check --json pw.bin
expect_json '.status == 1 and (.clean | not)' "json status 1"
expect_json '.replicas[0].blocks.erasable == 2 and .replicas[0].blocks.garbage == 1 and .replicas[0].records == {"complete": 1, "incomplete": 1, "stale": 0}' \
    "partial_write: one incomplete record, two blocks to erase"
expect_json '.differences == [] and .keys == 1' "the key is whole"
ekv check pe.bin
expect_rc 1 "partial_erase: recovery would erase the orphan chunk"
ekv check --json pe.bin
expect_json '.replicas[0].blocks.erasable == 1 and .replicas[0].blocks.chunk == 1' \
    "partial_erase: one orphan chunk to erase"

# --- replicas that differ: missing, older, corrupt (4) ----------------------------
# (In this order: a writable open of a and b would heal a difference
# between them.)
printf v2 | "$EKV" put a.img b.img beta || fail "put beta on a and b"
printf new | "$EKV" put a.img delta || fail "put delta on a only"
cp a.img a0.img; cp b.img b0.img; cp c.img c0.img
# Damage c's chunk of "big": its newest copy there no longer verifies.
chunk=$("$EKV" dump --json c.img | "$JQ" '[.blocks[] | select(.type == "chunk")][0].index')
flip c.img $((chunk * 256 + 30))
# Damage c's descriptor of "alpha" (its value byte): a bad CRC.
desc=$("$EKV" dump --json c.img | "$JQ" '.blocks[] | select(.type == "descriptor" and .key == "alpha") | .index')
patch c.img $((desc * 256 + 40)) 58
ekv check a.img b.img c.img
expect_rc 5 "differences (4) and blocks recovery would erase (1)"
expect_out_has "^keys:     5 in the store, 4 differ between replicas$" "counts them"
expect_out_has "^  alpha \(generation 1\): replica 2 corrupt$" "a damaged descriptor is corrupt"
expect_out_has "^  beta \(generation 2\): replica 2 older \(generation 1\)$" "older"
expect_out_has "^  big \(generation 1\): replica 2 corrupt$" "a damaged chunk is corrupt"
expect_out_has "^  delta \(generation 1\): replica 1 missing, replica 2 missing$" "missing"
expect_out_has "errors left \(run 'embedkvfs repair'\)" "says to repair"
ekv check --json a.img b.img c.img
expect_rc 5 "json: same status"
expect_json '.status == 5' "json status"
expect_json '[.differences[].name] == ["alpha", "beta", "big", "delta"]' \
    "json: differing keys in order"
expect_json '.differences[] | select(.name == "beta") | .generation == 2 and .key_hex == "62657461" and .replicas == [{"replica": 0, "state": "current", "generation": 2}, {"replica": 1, "state": "current", "generation": 2}, {"replica": 2, "state": "older", "generation": 1}]' \
    "json: older with its generation"
expect_json '.differences[] | select(.name == "delta") | .replicas[1:] == [{"replica": 1, "state": "missing", "generation": null}, {"replica": 2, "state": "missing", "generation": null}]' \
    "json: missing"
expect_json '.differences[] | select(.name == "big") | .replicas[2] == {"replica": 2, "state": "corrupt", "generation": 1}' \
    "json: corrupt"
ekv check a0.img b0.img
expect_rc 4 "differences only: 4"

# Replicas changed apart (each opened alone) reach one generation with two
# values: ls -l cannot tell (same generation), check reads and compares.
"$EKV" format --blocks 16 p0.img p1.img >/dev/null || fail "format"
upstream_set p0.img p1.img
printf same | "$EKV" put p0.img p1.img s || fail "put"
printf v-zero | "$EKV" put p0.img k || fail "put"
printf v-one | "$EKV" put p1.img k || fail "put"
ekv ls -l p0.img p1.img
expect_out_has "^ +6 +1 == k$" "ls -l compares generations only"
ekv check p0.img p1.img
expect_rc 4 "same generation, other value"
expect_out_has "^  k \(generation 1\): replica 1 conflict \(same generation, other value\)$" \
    "check says conflict"
ekv check --json p0.img p1.img
expect_json '.differences == [{"name": "k", "key_hex": "6b", "generation": 1, "replicas": [{"replica": 0, "state": "current", "generation": 1}, {"replica": 1, "state": "conflict", "generation": 1}]}]' \
    "json: conflict, and the agreeing key is not listed"

# --- an unusable replica (4) -----------------------------------------------------------
cp a0.img x0.img; cp a0.img x1.img
dd if=/dev/zero of=x1.img bs=256 count=1 conv=notrunc status=none
ekv check x0.img x1.img
expect_rc 4 "a replica whose header is destroyed"
expect_out_has "^  header:   INVALID: no storage header \(block 0 is zero-filled\)$" \
    "says why the header is invalid"
expect_out_has "repair would empty it" "says what repair would do"
ekv check --json x0.img x1.img
expect_json '.replicas[1] | (.usable | not) and .error == "header" and .header.valid == false and .blocks.descriptor == 5' \
    "json: dropped replica, raw block counts"
expect_json '.differences == []' "the usable replica alone has no differences"

cp a0.img crc.img
patch crc.img 30 ff
ekv check crc.img
expect_rc 4 "a header with a bad CRC"
expect_out_has "header CRC mismatch \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\)" \
    "names the CRC mismatch"

cp a0.img v2.img
patch v2.img 4 0200
crc_fix v2.img 0 256
ekv check --json v2.img
expect_rc 4 "an unsupported format version"
expect_json '.replicas[0].error == "version" and (.replicas[0].reason | test("format version 2.0"))' \
    "json: version error"

cp a0.img short.img
truncate -s 8000 short.img
ekv check short.img
expect_rc 4 "a truncated image"
expect_out_has "MISMATCH: file is 8000 bytes but its header says 32 blocks of 256 bytes" \
    "says the sizes"

"$EKV" format --blocks 16 g.img >/dev/null
ekv check a0.img g.img
expect_rc 4 "replicas of different geometry"
expect_out_has "MISMATCH: 32 blocks of 256 bytes, and no geometry is shared by most" \
    "says the first geometry"
expect_out_has "MISMATCH: 16 blocks of 256 bytes, and no geometry is shared by most" \
    "says the second geometry"
ekv check a0.img g.img b0.img
expect_rc 4 "replicas of different geometry, with a majority"
expect_out_has "MISMATCH: 16 blocks of 256 bytes, but the store has 32 blocks of 256 bytes" \
    "says both geometries"

echo "not an image" >t.txt
ekv check t.txt
expect_rc 4 "not an image at all"
ekv check --json t.txt
expect_json '.status == 4 and .block_size == null and .replicas[0].error == "header"' \
    "json when no replica is usable"

# --- operational errors (8) --------------------------------------------------------------
ekv check a0.img missing.img
expect_rc 8 "a missing image"
expect_err_has "missing.img: no such file or directory" "stderr names it"
expect_out_has "^  error:    cannot open: no such file or directory$" "report says it"
ekv check missing.img
expect_rc 8 "only a missing image"
ekv check --json a0.img missing.img
expect_json '.replicas[1] | .error == "open" and .file_size == null' "json: open error"
hold_lock a0.img
ekv check a0.img
expect_rc 8 "an image locked by a writer"
expect_err_has "locked by another process" "says locked"
release_lock
hold_lock a0.img -s
ekv check a0.img
expect_rc 0 "a shared lock (another reader) does not stop check"
release_lock
ekv check pw.bin missing.img
expect_rc 9 "codes add up: 1 + 8"

# --- usage (16) ---------------------------------------------------------------------------
ekv check
expect_rc 16 "no image"
expect_err_one_line "usage error"
ekv check --bogus a0.img
expect_rc 16 "unknown option"
ekv check a0.img ./a0.img
expect_rc 16 "the same image twice"
ekv check --help
expect_rc 0 "--help"
expect_out_has "^usage: embedkvfs check" "help"
expect_out_has "16 usage error" "help lists the exit codes"

# --json always prints its object, even when no image can be opened
# (a FIFO, an image locked by a writer): status 8, the replica unusable
# with the reason; stdout was empty before.
mkfifo json.fifo
ekv check --json json.fifo
expect_rc 8 "check --json of a FIFO: status 8"
expect_json '.status == 8 and .clean == false and .replicas[0].usable == false and (.replicas[0].reason | test("FIFO"))' \
    "check --json of a FIFO is one object naming the cause"
pass

done_ok
