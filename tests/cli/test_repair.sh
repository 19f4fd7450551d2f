# embedkvfs repair: recovery fixtures, divergent replicas, a destroyed
# header, replicas that cannot be rebuilt; afterwards check is clean and
# every value is the newest one.
. "$(dirname "$0")/lib.sh"

values_are() { # IMAGES... -- expected "name=value" pairs
    local imgs=() kv
    while [ "$1" != -- ]; do imgs+=("$1"); shift; done
    shift
    for kv in "$@"; do
        ekv get "${imgs[@]}" "${kv%%=*}"
        [ "$rc" -eq 0 ] && [ "$(cat out)" = "${kv#*=}" ] ||
            fail "${kv%%=*} should be '${kv#*=}' on ${imgs[*]}"
        # and on every replica alone
        local i
        for i in "${imgs[@]}"; do
            ekv get "$i" "${kv%%=*}"
            [ "$rc" -eq 0 ] && [ "$(cat out)" = "${kv#*=}" ] ||
                fail "${kv%%=*} should be '${kv#*=}' on $i alone"
        done
    done
    pass
}

# --- the recovery fixtures -----------------------------------------------
cp "$TESTDATA/recovery/partial_write.bin" pw.bin
ekv repair pw.bin
expect_rc 0 "repair of partial_write"
expect_out_has "^pw.bin: recovery erased 2 blocks" "says what recovery erased"
expect_out_has "^repair: done: 1 replica, 1 key, all in agreement$" "says done"
ekv check pw.bin
expect_rc 0 "clean afterwards"
ekv dump pw.bin
expect_out_has "^2 free crc=- fill=00$" "block 2 (torn update) is free"
expect_out_has "^3 free crc=- fill=00$" "block 3 is free"
values_are pw.bin -- power=gen1-data

cp "$TESTDATA/recovery/partial_erase.bin" pe.bin
ekv repair pe.bin
expect_rc 0 "repair of partial_erase"
ekv dump pe.bin
expect_out_has "^1 free crc=- fill=00$" "the orphan chunk is erased"
values_are pe.bin -- power=gen2-data
ekv check pe.bin
expect_rc 0 "clean"

# --- divergent replicas ---------------------------------------------------------
"$EKV" format --blocks 32 a.img b.img c.img >/dev/null || fail "format"
upstream_set a.img b.img c.img # diverged on purpose below
for k in alpha beta gamma; do
    printf "value-$k" | "$EKV" put a.img b.img c.img "$k" || fail "put"
done
head -c 700 /dev/urandom >v700
"$EKV" put --file v700 a.img b.img c.img big || fail "put big"
printf new | "$EKV" put a.img delta || fail "put delta"
printf v2 | "$EKV" put b.img c.img beta || fail "put beta"
chunk=$("$EKV" dump --json c.img | "$JQ" '[.blocks[] | select(.type == "chunk")][0].index')
flip c.img $((chunk * 256 + 30))
ekv check a.img b.img c.img
expect_rc 5 "diverged before repair"
ekv repair a.img b.img c.img
expect_rc 0 "repair of diverged replicas"
expect_out_has "^c.img: recovery erased 4 blocks" "c's corrupt record (4 blocks) erased"
expect_out_has "^copied 4 records to lagging replicas$" "says what it copied"
ekv check a.img b.img c.img
expect_rc 0 "check is clean after repair"
ekv ls -l a.img b.img c.img
expect_out "$(printf '%10u %10u === alpha\n%10u %10u === beta\n%10u %10u === big\n%10u %10u === delta\n%10u %10u === gamma' \
    11 1 2 2 700 1 3 1 11 1)" "every replica holds every key's newest copy"
values_are a.img b.img c.img -- beta=v2 delta=new alpha=value-alpha
ekv get c.img big
expect_same out v700 "the corrupt copy was replaced"
ekv repair a.img b.img c.img
expect_rc 0 "repair is idempotent"
expect_out_has "^copied 0 records" "nothing left to copy"

# One generation with two values: repair keeps replica 0's.
"$EKV" format --blocks 16 p0.img p1.img >/dev/null || fail "format"
upstream_set p0.img p1.img
printf v-zero | "$EKV" put p0.img k || fail "put"
printf v-one | "$EKV" put p1.img k || fail "put"
ekv repair p0.img p1.img
expect_rc 0 "repair of a same-generation conflict"
expect_out_has "^copied 1 record to lagging replicas$" "one copy"
values_are p0.img p1.img -- k=v-zero
ekv check p0.img p1.img
expect_rc 0 "clean"

# --- a destroyed header ----------------------------------------------------------------
cp a.img h0.img; cp b.img h1.img
dd if=/dev/urandom of=h1.img bs=256 count=1 conv=notrunc status=none
ekv check h0.img h1.img
expect_rc 4 "a destroyed header: errors left"
ekv repair h0.img h1.img
expect_rc 0 "repair rebuilds the replica"
expect_err_has "warning: h1.img: not an embedkv image" "warns first"
expect_out_has "^h1.img: rebuilt: emptied, fresh header \(replica_id 1\), refilled" \
    "says it rebuilt it"
ekv check h0.img h1.img
expect_rc 0 "check clean after the rebuild"
ekv dump --json h1.img
expect_json '.blocks[0].type == "header" and .blocks[0].replica_id == 1' \
    "the fresh header has the replica's id"
values_are h0.img h1.img -- beta=v2 delta=new gamma=value-gamma
ekv get h1.img big
expect_same out v700 "multi-block value on the rebuilt replica"

# The first replica's header destroyed: the second is the source.
cp a.img f0.img; cp b.img f1.img
dd if=/dev/zero of=f0.img bs=256 count=1 conv=notrunc status=none
ekv repair f0.img f1.img
expect_rc 0 "repair of replica 0 from replica 1"
ekv check f0.img f1.img
expect_rc 0 "clean"
ekv dump --json f0.img
expect_json '.blocks[0].replica_id == 0' "replica 0 keeps id 0"

# --- replicas that cannot be rebuilt ---------------------------------------------------
cp a.img w0.img; cp b.img w1.img; cp c.img w2.img
printf w | "$EKV" put w0.img w2.img onlyw || fail "put"
truncate -s 5000 w1.img
ekv repair w0.img w1.img w2.img
expect_rc 4 "a replica of the wrong size cannot be rebuilt"
expect_err_has "w1.img: not repaired: file is 5000 bytes.*truncate -s 8192" \
    "says why and how to replace it"
ekv check w0.img w2.img
expect_rc 0 "the other replicas were still repaired"
[ "$(stat -c %s w1.img)" -eq 5000 ] || fail "the odd replica is left alone"; pass

cp a.img m0.img
ekv repair m0.img missing.img
expect_rc 4 "a missing replica is not created"
expect_err_has "missing.img: not repaired: no such file or directory" "says so"
[ ! -e missing.img ] || fail "repair creates no file"; pass
truncate -s 8192 missing.img
ekv repair m0.img missing.img
expect_rc 0 "a blank file of the right size becomes the replica"
ekv check m0.img missing.img
expect_rc 0 "clean"

# --- locked, usage ----------------------------------------------------------------------
hold_lock a.img -s
before=$(sums a.img b.img)
ekv repair a.img b.img
expect_rc 5 "repair of an image another process holds"
expect_err_has "locked" "says locked"
[ "$(sums a.img b.img)" = "$before" ] || fail "nothing written"; pass
release_lock
ekv repair
expect_rc 2 "no image"
ekv repair --help
expect_rc 0 "--help"
expect_out_has "^usage: embedkvfs repair" "help"

# --json prints its object even when the set cannot be opened: a file
# that is no image, a FIFO (stdout was empty before).
head -c 8192 /dev/urandom >json-noise.bin
ekv repair --json json-noise.bin
expect_rc 4 "repair --json of a non-image: exit 4"
expect_json '.status == 4 and .copied == 0 and (.replicas[0].state_detail | test("not an embedkv image"))' \
    "repair --json of a non-image is one object naming the cause"
mkfifo json-repair.fifo
ekv repair --json json-repair.fifo
expect_rc 5 "repair --json of a FIFO: exit 5"
expect_json '.status == 5 and (.replicas[0].state_detail | test("FIFO"))' \
    "repair --json of a FIFO is one object naming the cause"
pass

done_ok
