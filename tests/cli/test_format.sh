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
