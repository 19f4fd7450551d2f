# embedkvfs dump: one line (or JSON object) per block of an image or a raw
# flash dump, including 0xFF-erased ones and ones without a valid header.
. "$(dirname "$0")/lib.sh"

ekv dump "$TESTDATA/large_value.bin"
expect_rc 0 "dump of large_value.bin"
[ "$(wc -l <out)" -eq 16 ] || fail "one line per block (16)"; pass
expect_out_has "^0 header crc=ok version=1.0 block_size=256 block_count=16 replica_id=0 format_seq=0 flags=0x00000000$" \
    "block 0: the header fields"
expect_out_has "^1 descriptor crc=ok header_size=32 generation=1 total_size=500 payload_size=214 chunk_count=3 next=2 flags=0x00000000 user_flags=0x00000000 key_size=6 key=bigkey$" \
    "block 1: the descriptor fields, key last"
expect_out_has "^2 chunk crc=ok header_size=20 owner=1 chunk_index=1 payload_size=232 next=3 flags=0x0000$" \
    "block 2: chunk 1"
expect_out_has "^3 chunk crc=ok header_size=20 owner=1 chunk_index=2 payload_size=54 next=none flags=0x0000$" \
    "block 3: chunk 2, end of chain"
expect_out_has "^15 free crc=- fill=00$" "free blocks"

ekv dump --json "$TESTDATA/large_value.bin"
expect_rc 0 "dump --json"
python3 -m json.tool out >/dev/null || fail "dump --json is JSON"; pass
expect_json '.block_size == 256 and .block_count == 16 and .file_size == 4096 and .trailing_bytes == 0 and (.blocks | length) == 16' \
    "json geometry"
expect_json '.blocks[1] | .type == "descriptor" and .crc_ok and .key == "bigkey" and .key_hex == "6269676b6579" and .generation == 1 and .total_size == 500 and .chunk_count == 3 and .next_chunk == 2' \
    "json descriptor"
expect_json '.blocks[3] | .type == "chunk" and .owner == 1 and .chunk_index == 2 and .next_chunk == null' \
    "json chunk"
expect_json '.blocks[0] | .type == "header" and .version_major == 1 and .replica_id == 0' \
    "json header"
expect_json '[.blocks[].index] == [range(16)]' "json indexes"
expect_json '.blocks[4] | .type == "free" and .fill == "00" and (.crc_ok | not)' \
    "json free"

ekv dump "$TESTDATA/recovery/partial_write.bin"
expect_out_has "^3 garbage crc=bad type=0x03 stored=0x[0-9a-f]{8} computed=0x[0-9a-f]{8}$" \
    "a torn chunk is garbage with its CRCs"
ekv dump "$TESTDATA/recovery/partial_erase.bin"
expect_out_has "^1 chunk crc=ok header_size=20 owner=99 " "an orphan chunk shows its owner"

# --- raw flash dumps ------------------------------------------------------------
head -c 4096 /dev/zero | tr '\0' '\377' >erased.bin
ekv dump erased.bin
expect_rc 4 "an erased dump has no header: the block size is needed"
expect_err_has "no storage header \(block 0 is erased, 0xFF\); give the block size with --block-size" \
    "says to give --block-size"
expect_err_one_line "no block size"
ekv dump --block-size 512 erased.bin
expect_rc 0 "with --block-size"
[ "$(wc -l <out)" -eq 8 ] || fail "8 blocks of 512"; pass
[ "$(grep -c ' free crc=- fill=ff$' out)" -eq 8 ] || fail "all 0xff-free"; pass

"$EKV" format --erase-byte ff --blocks 8 ff.img >/dev/null
printf v | "$EKV" put ff.img k
ekv dump ff.img
expect_out_has "^1 descriptor crc=ok .* key=k$" "a record in an ff image"
expect_out_has "^7 free crc=- fill=ff$" "ff-erased blocks"

# A destroyed header: the records are still shown with --block-size.
cp "$TESTDATA/multi_key.bin" nohdr.bin
dd if=/dev/zero of=nohdr.bin bs=256 count=1 conv=notrunc status=none
ekv dump nohdr.bin
expect_rc 4 "a zeroed header"
expect_err_has "zero-filled" "says what block 0 is"
ekv dump --block-size 256 nohdr.bin
expect_rc 0 "dump with --block-size"
expect_out_has "^0 free crc=- fill=00$" "block 0 is just free"
expect_out_has "^2 descriptor crc=ok .* key=beta$" "records still visible"

# A header with a bad CRC: its block_size field is offered as a hint.
cp "$TESTDATA/multi_key.bin" badcrc.bin
patch badcrc.bin 100 01
ekv dump badcrc.bin
expect_rc 4 "a header with a bad CRC"
expect_err_has "header CRC mismatch.*try --block-size 256" "suggests its block size"
ekv dump --block-size 256 badcrc.bin
expect_out_has "^0 garbage crc=bad type=0x01 " "the bad header is garbage"

# Odd sizes.
head -c 1000 "$TESTDATA/small_value.bin" >odd.bin
ekv dump --block-size 256 odd.bin
expect_rc 0 "a partial last block"
[ "$(wc -l <out)" -eq 3 ] || fail "3 whole blocks"; pass
expect_err_has "232 bytes after the last whole block ignored" "warns about the tail"
ekv dump --block-size 4096 "$TESTDATA/small_value.bin"
expect_rc 4 "a file shorter than one block"
expect_err_has "shorter than one 4096-byte block" "says so"
ekv dump --block-size 128 "$TESTDATA/small_value.bin"
expect_rc 0 "another block size than the header's"
expect_err_has "warning: .*the storage header says block size 256" "warns"
: >empty.bin
ekv dump empty.bin
expect_rc 4 "an empty file"
ekv dump missing.bin
expect_rc 5 "a missing file"
expect_err_has "missing.bin: no such file or directory" "says so"
ekv dump --block-size 63 erased.bin
expect_rc 2 "block size below 64"
ekv dump --block-size abc erased.bin
expect_rc 2 "block size not a number"
ekv dump a.bin b.bin
expect_rc 2 "one image only"
ekv dump
expect_rc 2 "no image"

# Locked by a writer: not read in the middle of an update.
cp "$TESTDATA/small_value.bin" lk.bin
hold_lock lk.bin
ekv dump lk.bin
expect_rc 5 "a locked image"
expect_err_has "locked" "says locked"
release_lock

ekv dump --help
expect_rc 0 "--help"
expect_out_has "^usage: embedkvfs dump" "help"

done_ok
