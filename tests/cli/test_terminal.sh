# Key names from an image never reach the terminal raw (issue 9, item 11):
# C1 controls (U+009B CSI), bidi overrides and isolates and the other
# invisible characters in names.h are printed as %XX of their UTF-8 bytes
# by ls, dump and check; the mount lists the same names; JSON keeps the
# exact key in key_hex.
. "$(dirname "$0")/lib.sh"

"$EKV" format --blocks 64 a.img b.img >/dev/null || fail "format"
# An upstream-style set (flags 0), so that one replica can be written alone.
upstream_set a.img b.img
csi=$(printf 'red\302\23331mX')               # U+009B then "31m"
rlo=$(printf 'invoice\342\200\256fdp.exe')    # U+202E right-to-left override
iso=$(printf '\342\201\246x\342\201\251')     # U+2066 ... U+2069 isolate
nel=$(printf 'a\302\205b')                    # U+0085 next line
bom=$(printf '\357\273\277bom')               # U+FEFF
keep=$(printf 'caf\303\251 \360\237\230\200') # é and an emoji stay as they are
for k in "$csi" "$rlo" "$iso" "$nel" "$bom" "$keep"; do
    printf v | "$EKV" put a.img b.img "$k" || fail "put $k"
done
# The replicas differ in one key, so that check lists it too.
printf w | "$EKV" put a.img "$csi" || fail "put on one replica"

# raw_ok FILE WHAT: no C1 control, bidi control or other invisible
# character (as UTF-8) in FILE.
raw_ok() {
    python3 - "$1" <<'PY' || fail "$2: a raw control or bidi character is printed"
import sys
bad = set(range(0x80, 0xA0)) | {0x061C, 0x200B, 0x200E, 0x200F, 0xFEFF}
bad |= set(range(0x2028, 0x202F)) | set(range(0x2060, 0x2070))
text = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
found = [hex(ord(c)) for c in text if ord(c) in bad]
if found:
    print("found", found)
    sys.exit(1)
PY
    pass
}

ekv ls a.img b.img
expect_rc 0 "ls"
raw_ok "$WORK/out" "ls"
expect_out_has "^red%C2%9B31mX$" "ls escapes U+009B as %C2%9B"
expect_out_has "^invoice%E2%80%AEfdp.exe$" "ls escapes U+202E"
expect_out_has "^%E2%81%A6x%E2%81%A9$" "ls escapes the isolates"
expect_out_has "^a%C2%85b$" "ls escapes U+0085"
expect_out_has "^%EF%BB%BFbom$" "ls escapes U+FEFF"
expect_out_has "^caf$(printf '\303\251') $(printf '\360\237\230\200')$" \
    "ls keeps printable UTF-8"
cp "$WORK/out" ls.txt
ekv ls -l a.img b.img
raw_ok "$WORK/out" "ls -l"

# The printed names are keys again with -e.
while IFS= read -r name; do
    ekv get -e a.img b.img "$name"
    expect_rc 0 "get -e '$name'"
done <ls.txt
ekv get -e a.img "red%C2%9B31mX"
expect_out w "get -e of an escaped name reads that key"
ekv get a.img "$csi"
expect_out w "the raw key still works as a key"

ekv dump a.img
expect_rc 0 "dump"
raw_ok "$WORK/out" "dump"
expect_out_has " key=red%C2%9B31mX$" "dump escapes the key"
expect_out_has " key=invoice%E2%80%AEfdp.exe$" "dump escapes U+202E"

ekv check a.img b.img
raw_ok "$WORK/out" "check"
expect_out_has "^  red%C2%9B31mX \(generation" "check lists the differing key escaped"

# JSON stays exact: key_hex is the key, the name is the same escaped name.
ekv ls --json a.img b.img
expect_json '[.keys[] | select(.key_hex == "726564c29b33316d58")][0].name == "red%C2%9B31mX"' \
    "ls --json: exact key_hex, escaped name"
ekv dump --json a.img
expect_json '[.blocks[] | select(.key_hex == "696e766f696365e280ae6664702e657865")] | length >= 1' \
    "dump --json: exact key_hex"
ekv check --json a.img b.img
expect_json '.differences[0].key_hex == "726564c29b33316d58"' "check --json: exact key_hex"

# The mount lists the same names as ls, and they open.
if [ -e /dev/fuse ] && [ "$(id -u)" -eq 0 ]; then
    mkdir mnt
    "$EKV" mount -o ro a.img mnt || fail "mount"
    ls -1 mnt | LC_ALL=C sort >mount.txt
    problem=
    LC_ALL=C sort ls.txt | cmp -s - mount.txt ||
        problem="the mount lists other names than ls"
    cat "mnt/red%C2%9B31mX" >val 2>/dev/null ||
        problem="the escaped name does not open in the mount"
    [ -e "mnt/$csi" ] && problem="the raw name is a name in the mount"
    fusermount3 -u mnt
    [ -z "$problem" ] || fail "$problem"
    pass
    [ "$(cat val)" = w ] || fail "the mount reads the key's value"; pass
else
    echo "note: no /dev/fuse or not root: the mount's names not compared"
    [ "${CI:-}" != true ] || fail "CI=true: the mount check needs root and /dev/fuse"
fi

done_ok
