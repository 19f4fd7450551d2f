# Many keys in one command: export, import, extract, format --from (dir,
# JSON, CSV; reproducible), diff, and the bash completion.
. "$(dirname "$0")/lib.sh"

# --- export -> import round trip for any key bytes ------------------------
ekv format --size 64K a.img
put_hex() { printf "$(echo "$3" | sed 's/../\\x&/g')" | "$EKV" put -x "$1" "$2" || fail "put $2"; }
put_hex a.img ""       "6869"        # empty key
put_hex a.img 612f62   "0a"          # a/b
put_hex a.img ff00fe   "00ff01"      # not UTF-8, NUL
put_hex a.img 6b01     "6301"        # control byte
put_hex a.img c3a9     "c3a9"        # é
put_hex a.img 7a       ""            # empty value
ekv export a.img
expect_rc 0 "export"
cp out a.json
expect_json '.block_size == 256 and .block_count == 256 and (.keys | length) == 6' "geometry and keys"
expect_json '.keys[0] == {"key": "", "value": "hi"}' "text stays text"
expect_json '.keys[] | select(.key_base64 == "/wD+") | .value_base64 == "AP8B"' "other bytes in base64"
ekv format --size 64K b.img
ekv import -f a.json b.img
expect_rc 0 "import"
[ ! -s err ] || fail "no progress or other output on a stderr that is no terminal"; pass
ekv diff a.img b.img
expect_rc 0 "export -> import gives the same keys and values"
for k in "" 612f62 ff00fe 6b01 c3a9 7a; do
    cmp -s <("$EKV" get -x a.img "$k") <("$EKV" get -x b.img "$k") || fail "value of $k"
done; pass
ekv_in a.json import b.img
expect_rc 0 "import from standard input (unchanged values are not rewritten)"
ekv ls --json b.img
expect_json '[.keys[].generation] | all(. == 1)' "unchanged values are not rewritten"

# --- import --replace, bad documents write nothing ------------------------
echo old | "$EKV" put b.img extra
printf '{"keys": [{"key": "a/b", "value": "new"}]}' >one.json
cp b.img b.before
printf '{"keys": [{"key": "x", "value": "1"},\n  {"key": "y", "value": 2}]}' >bad1.json
ekv import -f bad1.json b.img
expect_rc 2 "a wrong entry"
expect_err_has "bad1.json: keys\[1\]: \"value\" is not a string" "names the entry"
printf '{"keys": [{"key": "x", "value": "1"},\n  {"key": "y" "value": "2"}]}' >bad2.json
ekv import -f bad2.json b.img
expect_rc 2 "malformed JSON"
expect_err_has "bad2.json: line 2, column [0-9]+:" "line and column"
printf '{"keys": [{"key": "x", "value": "1"}, {"key": "x", "value": "2"}]}' >bad3.json
ekv import -f bad3.json b.img
expect_rc 2 "a key given twice"
expect_err_has "given twice \(keys\[0\] and keys\[1\]\)" "names both"
printf '{"keys": [{"key": "x", "value_base64": "!!"}]}' >bad4.json
ekv import -f bad4.json b.img
expect_rc 2 "bad base64"
printf '{"keys": [{"key": "x", "vaule": "1"}]}' >bad5.json
ekv import -f bad5.json b.img
expect_rc 2 "an unknown field"
expect_err_has "unknown field \"vaule\"" "names it"
expect_same b.img b.before "a bad document writes nothing"
ekv import --replace -f one.json b.img
expect_rc 0 "import --replace"
ekv ls b.img
expect_out "a%2Fb" "--replace deletes the keys not in the document"
ekv get b.img a/b
expect_out "new" "and imports the rest"

# --- import into a full store: nothing written -----------------------------
ekv format --blocks 8 small.img
echo keep | "$EKV" put small.img keep
cp small.img small.before
printf '{"keys": [' >big.json
for i in $(seq 1 20); do printf '%s{"key": "k%02d", "value": "v"}' "$([ $i = 1 ] || echo ,)" $i >>big.json; done
printf ']}' >>big.json
ekv import -f big.json small.img
expect_rc 5 "import into a full store"
expect_err_has "no space left.*needs 20 blocks.*Nothing was written" "counts the blocks"
expect_same small.img small.before "nothing half-imported"

# --- format --from: directory, reproducible -------------------------------
mkdir src1 src2
# The same keys, created in a different order with different times.
for k in b a %FF %2Fx % zz; do printf "value of $k" >"src1/$k"; done
for k in zz % %2Fx %FF a b; do printf "value of $k" >"src2/$k"; touch -d "2001-01-0$((RANDOM % 9 + 1))" "src2/$k"; done
ekv format --size 16K --from src1 d1.img
expect_rc 0 "format --from DIR"
expect_out_has "6 keys from src1" "says how many"
LC_ALL=C ekv format --size 16K --from src2 d2.img
expect_same d1.img d2.img "same input, same bytes (order, times, locale)"
# The library's own puts in ascending byte order give the same image.
ekv format --size 16K ref.img
for k in % %2Fx a b zz %FF; do "$EKV" put -e ref.img "$k" <"src1/$k" || fail "put $k"; done
expect_same d1.img ref.img "equal to puts in sorted order"
ekv format --size 16K --from src1 d1.img
expect_rc 1 "format --from refuses an existing image"

ekv extract d1.img out1
expect_rc 0 "extract into a new directory"
diff -r src1 out1 >/dev/null || fail "format --from DIR then extract gives DIR back"; pass
ekv extract d1.img out1
expect_rc 1 "extract does not overwrite"
expect_err_has "exists \(use --force" "says how"
ekv extract --force d1.img out1
expect_rc 0 "extract --force"

ekv format --size 1K --from src1 tiny.img
expect_rc 5 "too little space"
expect_err_has "need 7 blocks of 256 bytes" "names how many blocks"
[ ! -e tiny.img ] || fail "no image left behind"; pass
ekv format --size 16K --keep-data --from src1 keep.img
expect_rc 2 "--from with --keep-data"
ekv format --from src1 nosize.img
expect_rc 2 "no size for a new image"
expect_err_has "need 7 blocks" "tells how many"

mkdir src3; echo 1 >src3/ok; mkdir src3/sub
ekv format --size 16K --from src3 s3.img
expect_rc 2 "a directory with a subdirectory"
expect_err_has "src3/sub: is a directory: a key source directory holds only regular files" "names it"
[ ! -e s3.img ] || fail "nothing created"; pass
rmdir src3/sub; echo 1 >src3/%zz
ekv format --size 16K --from src3 s3.img
expect_rc 2 "a name that is no escaped key"
expect_err_has "src3/%zz: not an escaped key name" "names it"
[ ! -e s3.img ] || fail "nothing created"; pass

# The images the Go implementation wrote (keys put in ascending order) come
# back byte for byte: export, then format --from the document or from the
# extracted directory.
for f in multi_key small_value large_value; do
    ekv export "$TESTDATA/$f.bin"
    cp out "go_$f.json"
    ekv format --from "go_$f.json" "go_$f.img"
    expect_same "$TESTDATA/$f.bin" "go_$f.img" "format --from JSON equals the Go image $f"
    ekv extract "$TESTDATA/$f.bin" "go_$f.dir"
    bc=$("$JQ" .block_count "go_$f.json")
    ekv format --blocks "$bc" --from "go_$f.dir" "go_$f.dir.img"
    expect_same "$TESTDATA/$f.bin" "go_$f.dir.img" "format --from DIR equals the Go image $f"
done

# --- format --from JSON and CSV ---------------------------------------------
ekv format --from a.json j.img
expect_rc 0 "format --from JSON takes the document's geometry"
ekv diff a.img j.img
expect_rc 0 "same keys and values"
printf 'key,encoding,value\n# a comment\ntext,string,hello\nhex,hex,00ff\nb64,base64,AAE=\n"a,b",string,"say ""hi"""\nfile,file,src1/a\n' >k.csv
ekv format --size 16K --from k.csv c.img
expect_rc 0 "format --from CSV"
ekv get c.img 'a,b'
expect_out 'say "hi"' "quoted fields"
[ "$("$EKV" get c.img hex | od -An -tx1 | tr -d ' ')" = 00ff ] || fail "hex encoding"; pass
ekv get c.img file
expect_out "value of a" "file encoding"
printf 'a,string,1\nb,hex,0g\n' >bad.csv
ekv format --size 16K --from bad.csv bc.img
expect_rc 2 "bad CSV"
expect_err_has "bad.csv: line 2: value is not an even number of hex digits" "line number"
[ ! -e bc.img ] || fail "nothing created"; pass
printf 'a,string,1\nb,nope,1\n' >bad2.csv
ekv format --size 16K --from bad2.csv bc.img
expect_err_has "line 2: unknown encoding 'nope'" "unknown encoding"
printf 'a,string,"open\n' >bad3.csv
ekv format --size 16K --from bad3.csv bc.img
expect_err_has "line 1: unterminated quoted field" "unterminated quote"

# --- import: the export format is checked ---------------------------------
"$EKV" format --size 8K fmt.img >/dev/null || fail "format fmt.img"
cp fmt.img fmt.before
printf '{"format": "embedkv-export-2", "keys": [{"key": "z", "value": "1"}]}' >fmt2.json
ekv import -f fmt2.json fmt.img
expect_rc 2 "a document of another export format"
expect_err_has "^embedkvfs import: fmt2.json: unknown export format \"embedkv-export-2\" \(this embedkvfs reads embedkv-export-1\)$" \
    "names the format"
printf '{"format": 1, "keys": [{"key": "z", "value": "1"}]}' >fmt3.json
ekv import -f fmt3.json fmt.img
expect_rc 2 "a format that is not a string"
expect_err_has "fmt3.json: \"format\" is not a string" "says so"
expect_same fmt.img fmt.before "a document of a wrong format writes nothing"
ekv format --size 8K --from fmt2.json fmtfrom.img
expect_rc 2 "format --from checks the format too"
[ ! -e fmtfrom.img ] || fail "nothing created"; pass
printf '{"format": "embedkv-export-1", "keys": [{"key": "z", "value": "1"}]}' >fmt1.json
ekv import -f fmt1.json fmt.img
expect_rc 0 "the format export writes"
printf '{"keys": [{"key": "y", "value": "1"}]}' >fmt0.json
ekv import -f fmt0.json fmt.img
expect_rc 0 "no format field (optional on input)"

# --- import: special files and endless input are refused, not read ----------
# no_hang_in WHAT STDIN CMD...: embedkvfs CMD with a timeout that only
# catches a hang, and an address-space limit that turns reading without
# end into a failure instead of the OOM killer's work (not in a sanitizer
# build: its shadow memory needs the address space).
vlimit=unlimited
grep -aq __asan_init "$EKV" || vlimit=2000000
no_hang_in() {
    local what=$1 in=$2
    shift 2
    (ulimit -v "$vlimit"; exec timeout 60 "$EKV" "$@") <"$in" >"$WORK/out" 2>"$WORK/err"
    rc=$?
    [ "$rc" -ne 124 ] || fail "$what: embedkvfs $* hangs"
    sanitizer_clean "$@"
}
"$EKV" format --size 8K sp.img >/dev/null || fail "format sp.img"
cp sp.img sp.before
mkfifo vfifo
printf 'ok,string,1\nk,file,/dev/zero\n' >z.csv
no_hang_in "a device as a CSV file value" /dev/null import -f z.csv sp.img
expect_rc 2 "a character device as a file value"
expect_err_has "^embedkvfs import: z.csv: line 2: /dev/zero: not a regular file \(it is a character device\)$" \
    "names the line, the path and what it is"
printf 'k,file,vfifo\n' >f.csv
no_hang_in "a FIFO as a CSV file value" /dev/null import -f f.csv sp.img
expect_rc 2 "a FIFO as a file value"
expect_err_has "^embedkvfs import: f.csv: line 1: vfifo: not a regular file \(it is a FIFO\)$" \
    "names the FIFO"
no_hang_in "format --from with a FIFO value" /dev/null format --size 8K --from f.csv ffrom.img
expect_rc 2 "format --from CSV refuses it too"
[ ! -e ffrom.img ] || fail "nothing created"; pass
mkdir fdir; mkfifo fdir/k
no_hang_in "format --from DIR with a FIFO" /dev/null format --size 8K --from fdir fdir.img
expect_rc 2 "a FIFO in a key source directory"
expect_err_has "fdir/k: not a regular file \(it is a FIFO\): a key source directory holds only regular files" \
    "names it"
no_hang_in "import -f /dev/zero" /dev/null import -f /dev/zero sp.img
expect_rc 5 "endless input from a device"
expect_err_has "^embedkvfs import: /dev/zero: input larger than the store could hold \(more than [0-9]+ bytes in all for a store of 8192 bytes\)$" \
    "says the input is too large for the store"
no_hang_in "endless standard input" /dev/zero import sp.img
expect_rc 5 "endless standard input"
expect_err_has "^embedkvfs import: standard input: input larger than the store could hold" "bounded as well"
expect_same sp.img sp.before "nothing written for a refused input"
# A pipe or a FIFO stays a fine input (scripts pipe into import).
printf '{"keys": [{"key": "p", "value": "piped"}]}' >pipe.json
cat pipe.json | "$EKV" import sp.img || fail "import from a pipe"; pass
timeout 60 sh -c 'printf "{\"keys\": [{\"key\": \"q\", \"value\": \"fifo\"}]}" >vfifo' &
no_hang_in "import -f FIFO" /dev/null import -f vfifo sp.img
wait
expect_rc 0 "import -f FIFO"
ekv get sp.img q
expect_out "fifo" "read from the FIFO"

# --- import of a key whose generation counter is exhausted ------------------
exhausted_generation gen.img k
cp gen.img gen.before
printf '{"keys": [{"key": "a", "value": "1"}, {"key": "k", "value": "w"}]}' >gen.json
ekv import -f gen.json gen.img
expect_rc 1 "import onto an exhausted generation: put's status"
expect_err_has "^embedkvfs import: gen.json: keys\[1\] \(key 'k'\): the key's generation counter is exhausted \(4294967295 writes\): rm the key, then import again; nothing was written$" \
    "says the generation is exhausted and what to do"
grep -q "buffer too small" "$WORK/err" && fail "says buffer too small"
pass
expect_same gen.img gen.before "nothing written"
printf '{"keys": [{"key": "k", "value": "v"}]}' >gen_same.json
ekv import -f gen_same.json gen.img
expect_rc 0 "a value that is already the same is not rewritten: no error"

# --- import under a device error: stops at the failing key ------------------
# Each write and flush of the import fails in turn (strace fault
# injection): the import stops at the key being written, that key and
# the rest keep their old values on every replica, the replicas agree,
# and the message names the image and the real cause.
if command -v strace >/dev/null && strace -o /dev/null true 2>/dev/null; then
    "$EKV" format --blocks 128 dv0.img dv1.img >/dev/null || fail "format dv"
    echo old | "$EKV" put dv0.img dv1.img b || fail "put b"
    cp dv0.img dv0.base; cp dv1.img dv1.base
    printf '{"keys": [{"key": "a", "value": "A"}, {"key": "b", "value": "B"}, {"key": "c", "value": "C"}]}' >dv.json
    declare -A new=([a]=A [b]=B [c]=C) old=([a]="" [b]=old [c]="")
    for inj in pwrite64:EIO pwrite64:ENOSPC fdatasync:EIO; do
        call=${inj%:*} errno=${inj#*:}
        for when in $(seq 1 40); do
            cp dv0.base dv0.img; cp dv1.base dv1.img
            ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
            strace -qq -y -o "$WORK/strace" -e trace=pwrite64,fdatasync \
                -e inject="$call:error=$errno:when=$when" \
                "$EKV" import -f dv.json dv0.img dv1.img >"$WORK/out" 2>"$WORK/err"
            rc=$?
            sanitizer_clean import
            hit=$(grep -o '^[a-z0-9]*([0-9]*<[^>]*>.*INJECTED' "$WORK/strace" |
                  sed 's/^[^<]*<\([^>]*\)>.*/\1/')
            [ -n "$hit" ] || break   # fewer calls than that: the import ran through
            what="$call #$when fails ($errno on $(basename "$hit"))"
            failed=
            # An erase of an old copy that fails and then succeeds when
            # the library tries again is no failure of the put.
            if [ "$rc" -ne 0 ]; then
                expect_rc 5 "$what"
                [ "$call" = pwrite64 ] && op=write || op=flush
                [ "$errno" = EIO ] && cause="Input/output error" || cause="No space left on device"
                expect_err_has "cannot $op the image dv[01].img: $cause" "$what: the real cause"
                expect_err_has "cannot $op the image $(basename "$hit"): " "$what: names the failing image"
                failed=$(sed -n 's/^embedkvfs import: \([a-c]\) (keys\[[0-9]\]): .*/\1/p' "$WORK/err")
            fi
            "$EKV" export dv0.img dv1.img >"$WORK/out" 2>"$WORK/err" || fail "$what: export"
            seen=0
            for k in a b c; do
                [ "$k" = "$failed" ] && seen=1
                want=${new[$k]}
                [ "$seen" = 1 ] && want=${old[$k]}
                got=$("$JQ" -r --arg k "$k" '.keys[] | select(.key == $k) | .value' "$WORK/out")
                [ "$got" = "$want" ] ||
                    fail "$what: key $k holds '$got', expected '$want' (failed key: ${failed:-none})"
            done; pass
            ekv ls --json dv0.img dv1.img
            expect_json '[.keys[].agree] | all' "$what: the replicas agree on every key"
            ekv check dv0.img dv1.img
            [ "$rc" -le 1 ] || fail "$what: check exits $rc"; pass
        done
        [ "$when" -gt 1 ] || fail "$call was never called"
    done
else
    [ "${CI:-}" != true ] || fail "CI=true: strace is needed (tests/install-deps.sh --all)"
    echo "note: strace cannot run here: the device error checks not run"
fi

# --- diff ---------------------------------------------------------------------
cp a.img a1.img
"$EKV" format --size 64K --force --from a.json c0.img c1.img >/dev/null || fail "replica set"
ekv diff a.img c0.img,c1.img
expect_rc 0 "diff against a replica set"
echo other | "$EKV" put c0.img c1.img a/b
echo only | "$EKV" put c0.img c1.img new
"$EKV" rm -x c0.img c1.img 7a
ekv diff a.img c0.img,c1.img
expect_rc 1 "stores that differ"
expect_out "~ a%2Fb
+ new
- z" "only in A, different, only in B (sorted by key)"
ekv diff --json a.img c0.img,c1.img
expect_json '.only_a[0].name == "z" and .only_b[0].key_hex == "6e6577" and .differ[0].name == "a%2Fb"' "diff --json"
ekv diff a.img missing.img
expect_rc 5 "an error is not 'different'"

# --- numbers everywhere ---------------------------------------------------------
ekv dump --block-size 0x100 a.img
expect_rc 0 "dump --block-size in hex"
ekv format --block-size 1K --size 0x4000 n.img
expect_out "n.img: 16 blocks of 1024 bytes (16384 bytes), replica_id 0" "K and 0x"

# --- bash completion ------------------------------------------------------------
comp=$(dirname "$0")/../../src/tool/embedkvfs.bash
compgen_for() { # WORDS...: the completions of the last word
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=()
    _embedkvfs; echo "${COMPREPLY[*]}"
}
if [ -f "$comp" ]; then
    . "$comp"
    [[ " $(compgen_for embedkvfs lo) " == *" locate "* ]] || fail "completes subcommands"; pass
    [[ " $(compgen_for embedkvfs import --re) " == *" --replace "* ]] || fail "completes options"; pass
    [[ " $(compgen_for embedkvfs ls --of) " == *" --offset "* ]] || fail "completes --offset"; pass
fi
done_ok
