# Replica sets (issue 13): images of two stores named together, replicas of
# different geometry, a stale replica. Refusals exit 4, name the images and
# write nothing (checksums before and after); check and repair say each
# replica's state in words and in --json.
. "$(dirname "$0")/lib.sh"

# --- scenario 2: two stores formatted apart, both replica_id 0 -----------
"$EKV" format --blocks 16 s1.img >/dev/null || fail "format"
"$EKV" format --blocks 16 s2.img >/dev/null || fail "format"
printf one | "$EKV" put s1.img k1 || fail "put"
printf two | "$EKV" put s2.img k2 || fail "put"
sums s1.img s2.img >before.sums
for cmd in "ls" "get:k1" "put:k3" "rm:k1" "repair"; do
    name=${cmd%%:*}
    case $cmd in
    *:*) key=${cmd#*:} ;;
    *) key= ;;
    esac
    ekv_in /dev/null $name s1.img s2.img $key
    expect_rc 4 "$name of two stores is refused"
    expect_err_has "s1.img and s2.img both carry replica_id 0: they are images of two different stores" \
        "$name names both images"
done
ekv repair s1.img s2.img
expect_err_has "refused: nothing was written \(with --force" "repair says how to override"
ekv check s1.img s2.img
expect_rc 4 "check: errors"
expect_out_has "^  state:    not a replica of this store" "check says which image"
ekv check --json s1.img s2.img
expect_json '.replicas[0].state == "in use" and .replicas[1].state == "not a replica of this store"' \
    "check --json: states"
sha256sum -c --quiet before.sums || fail "refusals wrote nothing"; pass

# repair --force says what it keeps and what it overwrites, then does it.
ekv repair --force s1.img s2.img
expect_rc 0 "repair --force"
expect_err_has "repair --force: s1.img: keeping its content" "says what is kept"
expect_err_has "repair --force: s2.img: overwriting it: its content \(another store's\) is discarded" \
    "says what is overwritten"
expect_out_has "^replica 1: s2.img: in use \(epoch 1, rebuilt\)$" \
    "repair says each replica's state"
ekv get s1.img s2.img k1
expect_rc 0 "the kept store's key"
ekv get s1.img s2.img k2
expect_rc 3 "the other store's key is gone"
ekv check s1.img s2.img
expect_rc 0 "one store now"
ekv repair --json s1.img s2.img
expect_rc 0 "repair --json"
expect_json '.status == 0 and .copied == 0 and .epoch == 1 and ([.replicas[].state] == ["in use", "in use"])' \
    "repair --json: every replica's state"

# --- scenario 3: replicas of different block sizes ----------------------
"$EKV" format --blocks 16 --block-size 256 g1.img >/dev/null || fail "format"
"$EKV" format --blocks 16 --block-size 512 g2.img >/dev/null || fail "format"
printf data | "$EKV" put g2.img k || fail "put"
sums g1.img g2.img >before.sums
for order in "g1.img g2.img" "g2.img g1.img"; do
    ekv ls $order
    expect_rc 4 "ls of replicas of different geometry ($order)"
    expect_no_out "ls prints no listing"
    expect_err_has "the images have different geometries: .*g1.img 16 blocks of 256 bytes" \
        "names g1's geometry"
    expect_err_has "g2.img 16 blocks of 512 bytes" "names g2's geometry"
    ekv_in /dev/null put $order k2
    expect_rc 4 "put refused"
    ekv repair $order
    expect_rc 4 "repair refused"
done
ekv check g1.img g2.img
expect_rc 4 "check: errors"
expect_out_has "MISMATCH: 16 blocks of 256 bytes, and no geometry is shared" "check: g1"
expect_out_has "MISMATCH: 16 blocks of 512 bytes, and no geometry is shared" "check: g2"
sha256sum -c --quiet before.sums || fail "refusals wrote nothing"; pass

# --- a replica that missed writes: stale, reported, healed ---------------
"$EKV" format --blocks 32 a.img b.img >/dev/null || fail "format"
printf OLD | "$EKV" put a.img b.img creds || fail "put"
ekv_in /dev/null put a.img creds
expect_rc 4 "a writable command without every replica is refused"
expect_err_has "replica set is incomplete: replica_id 1 not named" "says which is missing"
# b.img away: a writable command refuses (only the mount's -o degraded
# writes without it, tests/fuse), and says why.
mv b.img b.away
ekv_in /dev/null rm a.img b.img creds
expect_rc 5 "rm with b.img missing (not degraded)"
expect_err_has "b.img: no such file or directory" "names the missing image"
mv b.away b.img
# What a degraded session with b away does (tests/fuse does it through a
# mount): a's header starts epoch 1 with a alone, then a is written.
set_epoch a.img 1 1
printf NEW | "$EKV" put a.img creds || fail "put on a, which names only itself now"
sums a.img b.img >before.sums
ekv get a.img b.img creds
expect_rc 0 "get with the stale replica back"
expect_out "NEW" "the new value, never b's old one"
expect_err_has "warning: b.img: stale replica \(epoch 0 < 1\): it missed writes" "says b is stale"
ekv ls -l a.img b.img
expect_rc 0 "ls"
expect_out_has "creds" "ls lists the key"
ekv check a.img b.img
expect_rc 4 "check: a stale replica is an error left"
expect_out_has "^  state:    stale: epoch 0 < 1: it missed writes" "check says stale in words"
ekv check --json a.img b.img
expect_json '.epoch == 1 and .replicas[1].state == "stale" and .replicas[1].epoch == 0 and .replicas[0].state == "in use"' \
    "check --json: states and epochs"
sha256sum -c --quiet before.sums || fail "reading commands wrote nothing"; pass

# A writable command heals: b is emptied, refilled, and both join epoch 2.
printf more | "$EKV" put a.img b.img other 2>err || fail "put heals"
grep -q "b.img: had missed writes (stale epoch): rebuilt, refilled with 1 record; now at epoch 2" err ||
    fail "the put says what heal did"; pass
ekv check a.img b.img
expect_rc 0 "check is clean after the heal"
ekv get b.img creds
expect_out "NEW" "b alone now holds the new value"

# --- a header an interrupted epoch change left torn -----------------------
"$EKV" format --blocks 16 t0.img t1.img >/dev/null || fail "format"
printf v | "$EKV" put t0.img t1.img k || fail "put"
# A new participant mask landed, the new CRC did not (what a cut of a
# header rewrite can leave).
printf '\001' | dd of=t0.img bs=1 seek=24 conv=notrunc status=none
ekv get t0.img t1.img k
expect_rc 0 "a torn header is used"
expect_out "v" "value"
ekv check t0.img t1.img
expect_rc 1 "check: a writable open fixes it, no data at risk"
expect_out_has "header CRC wrong: torn by an interrupted epoch change" "check says so"
printf w | "$EKV" put t0.img t1.img k2 || fail "a writable command rewrites it"
ekv check t0.img t1.img
expect_rc 0 "clean after the writable open"
ekv dump --json t0.img
expect_json '.blocks[0].type == "header" and .blocks[0].crc_ok' "the header is whole again"

done_ok
