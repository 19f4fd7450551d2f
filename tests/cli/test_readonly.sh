# Inspecting must not change evidence: ls, get, check and dump never write
# to an image, even one that needs recovery, has a destroyed header or
# replicas that differ. Checked with sha256 before and after.
. "$(dirname "$0")/lib.sh"

cp "$TESTDATA/recovery/partial_write.bin" pw.bin
cp "$TESTDATA/recovery/partial_erase.bin" pe.bin
cp "$TESTDATA/large_value.bin" lv.bin
# Two replicas that differ, and a third with a destroyed header.
"$EKV" format --blocks 32 r0.img r1.img r2.img >/dev/null || fail "format"
upstream_set r0.img r1.img r2.img # diverged on purpose below
printf one | "$EKV" put r0.img r1.img r2.img k1 || fail "put"
printf two | "$EKV" put r0.img k2 || fail "put"
dd if=/dev/zero of=r2.img bs=256 count=1 conv=notrunc status=none
# A torn write on r1: a descriptor whose chunk is missing.
python3 - <<'PY'
import zlib
bs = 256
with open("r1.img", "r+b") as f:
    b = bytearray(bs)
    b[0] = 2; b[1] = 32
    b[2:4] = (2).to_bytes(2, "little")            # key "k3"
    b[4:8] = (1).to_bytes(4, "little")            # generation
    b[8:12] = (300).to_bytes(4, "little")         # total size
    b[12:16] = (218).to_bytes(4, "little")        # first payload
    b[16:20] = (2).to_bytes(4, "little")          # chunk count
    b[20:24] = (20).to_bytes(4, "little")         # next chunk (never written)
    b[32:34] = b"k3"
    b[-4:] = (zlib.crc32(bytes(b)) & 0xffffffff).to_bytes(4, "little")
    f.seek(10 * bs)
    f.write(b)
PY

all="pw.bin pe.bin lv.bin r0.img r1.img r2.img"
sums $all >before.sums

for img in pw.bin pe.bin lv.bin; do
    ekv ls "$img";            expect_rc 0 "ls $img"
    ekv ls -l --json "$img";  expect_rc 0 "ls -l --json $img"
    ekv check "$img"
    ekv check --json "$img"
    ekv dump "$img";          expect_rc 0 "dump $img"
    ekv dump --json --block-size 128 "$img"
done
ekv get pw.bin power;   expect_out gen1-data "get reads through the torn update"
ekv get pe.bin power;   expect_out gen2-data "get next to an orphan chunk"
ekv get pw.bin nokey;   expect_rc 3 "get of a missing key"
ekv get -e pw.bin "%#0000000000000000"
ekv ls -l r0.img r1.img r2.img
expect_out_has "^ +3 +1 =-\? k2$" "ls of a degraded, diverged set"
ekv get r0.img r1.img r2.img k1;  expect_out one "get from the set"
ekv get r1.img r2.img k2;         expect_rc 3 "k2 is not on r1"
ekv check r0.img r1.img r2.img;   expect_rc 5 "check of the set"
ekv check --json r0.img r1.img r2.img
ekv check r2.img;                 expect_rc 4 "check of the headerless replica"
ekv dump --block-size 256 r2.img; expect_rc 0 "dump of the headerless replica"
ekv dump r1.img

sums $all >after.sums
cmp -s before.sums after.sums || { diff before.sums after.sums >&2; fail "an inspection command changed an image"; }
pass

# For contrast: repair does write, and afterwards the set is clean.
ekv repair r0.img r1.img r2.img
expect_rc 0 "repair"
sums $all >repaired.sums
cmp -s after.sums repaired.sums && fail "repair should have changed the images"
pass
ekv check r0.img r1.img r2.img
expect_rc 0 "clean after repair"

done_ok
