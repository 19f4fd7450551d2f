# embedkvfs ls, get, put, rm: values byte for byte, the three key forms,
# escaped names exactly as the mount shows them, sorting, -l and --json,
# replicas that disagree, missing key, key too long, no space.
. "$(dirname "$0")/lib.sh"

"$EKV" format --blocks 64 a.img b.img >/dev/null || fail "format"
upstream_set a.img b.img # diverged on purpose below

# --- put / get -----------------------------------------------------------
printf 'hello\n' >hello.txt
ekv_in hello.txt put a.img b.img greeting
expect_rc 0 "put from standard input"
expect_no_out "put is quiet"
ekv get a.img b.img greeting
expect_rc 0 "get"
expect_same out hello.txt "get returns the value byte for byte"

head -c 3000 /dev/urandom >blob.bin
ekv put --file blob.bin a.img b.img blob
expect_rc 0 "put --file"
ekv get a.img b.img blob
expect_same out blob.bin "a binary multi-block value reads back"
ekv get b.img blob
expect_same out blob.bin "each replica holds it (replica b alone)"
ekv_in blob.bin put -f - a.img b.img blob2
expect_rc 0 "put -f - reads standard input"
ekv get a.img b.img blob2
expect_same out blob.bin "-f - value"

ekv put a.img b.img empty
expect_rc 0 "put of an empty value"
ekv get a.img b.img empty
expect_rc 0 "get of an empty value"
expect_no_out "an empty value is empty"

printf v1 >v1; printf v2-longer >v2
ekv_in v1 put a.img b.img upd
ekv_in v2 put a.img b.img upd
ekv get a.img b.img upd
expect_out v2-longer "put replaces the value"
ekv ls -l a.img b.img
expect_out_has "^ +9 +2 == upd$" "the replaced value has generation 2"

ekv put --file nonexistent a.img b.img k
expect_rc 5 "put --file of a missing file"
expect_err_has "nonexistent: No such file" "names the file"

# --- the empty key and key forms ------------------------------------------------
printf ev >ev
ekv_in ev put a.img b.img ""
expect_rc 0 "the empty key (raw)"
ekv get a.img b.img ""
expect_out ev "get of the empty key (raw)"
ekv get -e a.img b.img %
expect_out ev "get of the empty key by its escaped name %"
ekv get -x a.img b.img ""
expect_out ev "get of the empty key in hex"

printf slash >sv
ekv_in sv put a.img b.img "dir/file"
ekv get a.img b.img "dir/file"
expect_out slash "raw key with a slash"
ekv get -e a.img b.img "dir%2Ffile"
expect_out slash "the same key by its escaped name"
ekv get --escaped a.img b.img "dir%2Ffile"
expect_out slash "--escaped"
ekv get -x a.img b.img 6469722f66696c65
expect_out slash "the same key in hex"
ekv get --hex a.img b.img 6469722F66696C65
expect_out slash "hex digits in upper case"
ekv get a.img b.img "dir%2Ffile"
expect_rc 3 "an escaped name given raw is another key"
expect_err_has "no such key \(it is the escaped name of a key: add -e\)" \
    "hints at -e"
ekv get -e a.img b.img "dir%2ffile"
expect_rc 2 "escaped names are canonical (upper-case hex)"
expect_err_has "not an escaped key name" "says why"
ekv get -e a.img b.img "dir/file"
expect_rc 2 "a '/' cannot be in an escaped name"
ekv get -x a.img b.img 123
expect_rc 2 "odd number of hex digits"
ekv get -x a.img b.img zz
expect_rc 2 "not hex"
ekv get -e -x a.img b.img k
expect_rc 2 "-e and -x together"

printf dash >dv
ekv_in dv put a.img b.img -- -dash
expect_rc 0 "a key starting with '-' after --"
ekv get a.img b.img -- -dash
expect_out dash "get of a key starting with '-'"

# --- escaping: every single-byte key, and awkward ones -------------------------
"$EKV" format --block-size 64 --blocks 600 esc.img >/dev/null || fail "format"
for i in $(seq 0 255); do
    h=$(printf %02x "$i")
    printf "v$h" | "$EKV" put -x esc.img "$h" || fail "put byte $h"
done
ekv ls esc.img
expect_rc 0 "ls of 256 one-byte keys"
[ "$(wc -l <out)" -eq 256 ] || fail "256 names, one per line"; pass
cp out names.txt
# The expected names: printable ASCII as itself except / and %, the rest
# (controls, DEL, every byte >= 0x80: no one-byte UTF-8) as %XX; "." is
# escaped as a name of its own.
python3 - >expect.txt <<'PY'
for b in range(256):
    c = chr(b)
    if b < 0x20 or b == 0x7f or b >= 0x80 or c in "/%" or c == ".":
        print("%%%02X" % b)
    else:
        print(c)
PY
expect_same names.txt expect.txt "one-byte keys: names and bytewise order"
while IFS= read -r name; do
    ekv get -e esc.img "$name"
    [ "$rc" -eq 0 ] || fail "get -e '$name'"
    h=$(cat out)
    case $h in v??) ;; *) fail "value of '$name' is '$h'" ;; esac
done <names.txt
pass
ekv ls --json esc.img
expect_json '.keys | length == 256' "ls --json lists the 256 keys"
"$JQ" -c '[.keys[].key_hex]' out >hexes.json
python3 -c 'import json; print(json.dumps(["%02x" % b for b in range(256)], separators=(",", ":")))' >want.json
expect_same hexes.json want.json "ls --json: key_hex of every byte, in bytewise order"
expect_json '[.keys[] | select(.name == "%2F")][0].key_hex == "2f"' \
    "json name and key_hex agree"
while IFS= read -r name; do
    "$EKV" rm -e esc.img "$name" || fail "rm -e '$name'"
done <names.txt
ekv ls esc.img
expect_no_out "every key removed through its listed name"

for key in "." ".." "%" "a b" "caf$(printf '\303\251')" "$(printf 'bad\377utf8')" \
    "$(printf 'ov\300\257')" "$(printf 'sur\355\240\200')" "$(printf 'tab\there')" \
    "$(printf '\360\237\230\200')"; do
    printf x | "$EKV" put esc.img "$key" || fail "put awkward key"
done
ekv ls esc.img
expect_out "$(printf '%%25\n%%2E\n%%2E%%2E\na b\nbad%%FFutf8\ncaf\303\251\nov%%C0%%AF\nsur%%ED%%A0%%80\ntab%%09here\n\360\237\230\200')" \
    "awkward keys: %% . .. space, invalid UTF-8, overlong, surrogate, tab, emoji"
cp out awk.txt
while IFS= read -r name; do
    ekv get -e esc.img "$name"
    [ "$rc" -eq 0 ] && [ "$(cat out)" = x ] || fail "get -e '$name'"
done <awk.txt
pass

# A key whose escaped name is longer than 255 bytes gets a shortened name.
long=$(printf '%0200d' 0 | tr 0 '\001')
"$EKV" format --blocks 16 long.img >/dev/null
printf longval | "$EKV" put long.img "$long" || fail "put long key"
ekv ls long.img
name=$(cat out)
[ "${#name}" -le 255 ] || fail "shortened name fits NAME_MAX"; pass
case $name in %01%01*%\#????????????????) pass ;; *) fail "shortened name form: $name" ;; esac
ekv get -e long.img "$name"
expect_out longval "get by the shortened name"
ekv get -e long.img "${name%?}0"
expect_rc 3 "a shortened name of no key"
ekv rm -e long.img "$name"
expect_rc 0 "rm by the shortened name"

# --- ls -------------------------------------------------------------------------------
ekv ls a.img b.img
expect_rc 0 "ls"
expect_out "$(printf '%%\n-dash\nblob\nblob2\ndir%%2Ffile\nempty\ngreeting\nupd')" \
    "ls: escaped names, sorted bytewise"
ekv ls -l a.img b.img
expect_out_has "^ +6 +1 == greeting$" "ls -l: size, generation, replica states"
expect_out_has "^ +3000 +1 == blob$" "ls -l of a multi-block value"
ekv ls --json a.img b.img
expect_json '.images == ["a.img", "b.img"]' "ls --json lists the images"
expect_json '.keys | map(.name) == ["%", "-dash", "blob", "blob2", "dir%2Ffile", "empty", "greeting", "upd"]' \
    "ls --json names in order"
expect_json '.keys[] | select(.name == "dir%2Ffile") | .key_hex == "6469722f66696c65" and .size == 5 and .generation == 1 and .agree and .replicas == ["current", "current"]' \
    "ls --json fields"

# Replicas that disagree: b misses a key, holds an older value of another.
printf new >nv
ekv_in nv put a.img only-a
ekv_in v1 put a.img greeting
ekv ls -l a.img b.img
expect_out_has "^ +3 +1 =- only-a$" "a key missing from a replica is marked '-'"
expect_out_has "^ +2 +2 =< greeting$" "an older copy is marked '<'"
ekv ls --json a.img b.img
expect_json '.keys[] | select(.name == "only-a") | (.agree | not) and .replicas == ["current", "missing"]' \
    "json: missing"
expect_json '.keys[] | select(.name == "greeting") | (.agree | not) and .replicas == ["current", "older"]' \
    "json: older"
ekv get a.img b.img greeting
expect_out v1 "get takes the newest generation across replicas"
ekv ls --json b.img
expect_json '.keys | map(.name) | index("only-a") == null' "b alone lacks only-a"

# A replica with a destroyed header: ls and get read the others, with a
# warning.
cp a.img c.img
cp b.img d.img
dd if=/dev/zero of=d.img bs=256 count=1 conv=notrunc status=none
ekv ls -l c.img d.img
expect_rc 0 "ls of a degraded set"
expect_out_has "^ +2 +2 =\? greeting$" "an unusable replica is marked '?'"
expect_err_has "warning: d.img: not an embedkv image.*replica dropped" \
    "warns about the dropped replica"
ekv get c.img d.img greeting
expect_rc 0 "get from a degraded set"
expect_out v1 "value from the usable replica"
ekv put c.img d.img k
expect_rc 4 "put refuses a set with an unusable replica"
ekv rm c.img d.img greeting
expect_rc 4 "rm refuses a set with an unusable replica"

# --- rm --------------------------------------------------------------------------------
ekv rm a.img b.img blob2
expect_rc 0 "rm"
ekv get a.img b.img blob2
expect_rc 3 "a removed key is gone"
expect_no_out "no output for a missing key"
expect_err_has "blob2: no such key" "missing key message"
expect_err_one_line "missing key"
ekv rm a.img b.img blob2
expect_rc 3 "rm of a missing key"
ekv rm -e a.img b.img "dir%2Ffile"
expect_rc 0 "rm -e"
ekv rm -x a.img b.img 656d707479
expect_rc 0 "rm -x"
ekv ls a.img b.img
expect_out "$(printf '%%\n-dash\nblob\ngreeting\nonly-a\nupd')" "what is left"

# --- key too long, no space, too large -----------------------------------------------
"$EKV" format --block-size 64 --blocks 6 small.img >/dev/null
k28=$(printf '%028d' 0); k29=$(printf '%029d' 0)
printf v | "$EKV" put small.img "$k28" || fail "a 28-byte key fits 64-byte blocks"
pass
ekv_in v1 put small.img "$k29"
expect_rc 2 "put of a key too long for the block size"
expect_err_has "key too long \(29 bytes; at most 28 with 64-byte blocks\)" \
    "says the limit"
expect_err_one_line "key too long"
ekv get small.img "$k29"
expect_rc 2 "get of a key too long"
ekv rm small.img "$k29"
expect_rc 2 "rm of a key too long"
"$EKV" rm small.img "$k28" || fail "rm"

# 5 data blocks of 64 bytes: with a 1-byte key a descriptor holds 27 value
# bytes and a chunk 40, so a 100-byte value takes 3 blocks.
head -c 100 /dev/urandom >v100
ekv put --file v100 small.img a
expect_rc 0 "a 3-block value"
before=$(sums small.img)
ekv put --file v100 small.img b
expect_rc 5 "no space for a second one"
expect_err_has "no space left: the value needs 3 blocks, 2 free" \
    "says how much is needed"
expect_err_one_line "no space"
[ "$(sums small.img)" = "$before" ] || fail "a put without space changes nothing"; pass
ekv put --file v100 small.img a
expect_rc 5 "copy-on-write update needs room for the new copy"
ekv get small.img a
expect_same out v100 "the old value is intact after ENOSPC"
head -c 1000 /dev/urandom >v1000
ekv put --file v1000 small.img c
expect_rc 5 "a value larger than the whole store"
expect_err_has "value too large for this store" "says too large"
head -c 5000000 /dev/zero >big
ekv put --file big small.img c
expect_rc 5 "a huge value is refused without reading it all"

# --- help and usage ---------------------------------------------------------------------
for cmd in ls get put rm; do
    ekv "$cmd" --help
    expect_rc 0 "$cmd --help"
    expect_out_has "^usage: embedkvfs $cmd" "$cmd --help shows the usage"
    ekv "$cmd" --nope a.img
    expect_rc 2 "$cmd with an unknown option"
    expect_err_one_line "$cmd unknown option"
done
ekv get a.img
expect_rc 2 "get needs IMAGE and KEY"
expect_err_has "need IMAGE... KEY" "says what is missing"
ekv ls
expect_rc 2 "ls needs an IMAGE"

done_ok
