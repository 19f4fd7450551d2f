# Error paths shared by the subcommands: a clear one-line message on
# stderr and the documented exit code for a missing image, a file that is
# not an image, a wrong size, mismatched geometry, a locked image, the
# same image twice; --help, --version and usage errors.
. "$(dirname "$0")/lib.sh"

"$EKV" format --blocks 16 good.img good2.img >/dev/null || fail "format"
printf v | "$EKV" put good.img good2.img k || fail "put"
"$EKV" format --blocks 32 other.img >/dev/null || fail "format"
echo "just some text, not an image" >text.txt
cp good.img short.img
truncate -s 3000 short.img
printf v >v

# cmd_args CMD IMAGE...: the argument list of CMD for these images.
run_on() { # CMD IMAGES...
    local cmd=$1
    shift
    case $cmd in
    ls) ekv ls "$@" ;;
    get) ekv get "$@" k ;;
    put) ekv_in v put "$@" k ;;
    rm) ekv rm "$@" k ;;
    esac
}

for cmd in ls get put rm; do
    run_on "$cmd" missing.img
    expect_rc 5 "$cmd: a missing image"
    expect_err_has "^embedkvfs: missing.img: no such file or directory$" \
        "$cmd: says the image is missing (not 'no such key')"
    expect_err_one_line "$cmd: missing image"

    run_on "$cmd" text.txt
    expect_rc 4 "$cmd: not an image"
    expect_err_has "^embedkvfs: text.txt: not an embedkv image: no storage header" \
        "$cmd: says it is not an image"
    expect_err_one_line "$cmd: not an image"

    run_on "$cmd" short.img
    expect_rc 4 "$cmd: wrong size"
    expect_err_has "short.img: .*file is 3000 bytes but its header says 16 blocks of 256 bytes" \
        "$cmd: says the sizes"
    expect_err_one_line "$cmd: wrong size"

    run_on "$cmd" good.img ./good.img
    expect_rc 2 "$cmd: the same image twice"
    expect_err_has "same image as good.img" "$cmd: says so"

    hold_lock good.img
    run_on "$cmd" good.img
    expect_rc 5 "$cmd: an image locked by a writer"
    expect_err_has "^embedkvfs: good.img: image is locked by another process" \
        "$cmd: says locked"
    expect_err_one_line "$cmd: locked"
    release_lock

    hold_lock good2.img -s
    run_on "$cmd" good.img good2.img
    case $cmd in
    ls | get) expect_rc 0 "$cmd: readers share a lock with another reader" ;;
    put | rm) expect_rc 5 "$cmd: a writer waits for no reader" ;;
    esac
    release_lock
done

# Mismatched geometry, one image each: nothing tells which is the store, so
# writers and readers refuse (exit 4), naming every image's geometry.
ekv_in v put good.img other.img k
expect_rc 4 "put: replicas of different geometry"
expect_err_has "^embedkvfs: the images have different geometries: good.img 16 blocks of 256 bytes, other.img 32 blocks of 256 bytes$" \
    "says both geometries"
ekv rm good.img other.img k
expect_rc 4 "rm: replicas of different geometry"
ekv get good.img other.img k
expect_rc 4 "get: no geometry is most images': refused"
expect_err_one_line "geometry refusal"
# With a majority, readers drop the odd one out and say so.
cp good.img good2.img
"$EKV" format --force --blocks 16 good.img good2.img >/dev/null || fail "format"
printf v | "$EKV" put good.img good2.img k || fail "put"
ekv get good.img other.img good2.img k
expect_rc 0 "get: the replica of the minority geometry is dropped"
expect_err_has "warning: other.img: geometry 256 x 32 differs from good.img \(256 x 16, the geometry most images share\); replica dropped" \
    "warns"

# A missing key, with nothing on stdout.
ekv get good.img nokey
expect_rc 3 "missing key"
expect_no_out "nothing on stdout"
expect_err_has "^embedkvfs get: nokey: no such key$" "one line"

# The top level.
ekv
expect_rc 2 "no command"
expect_err_has "^usage: embedkvfs COMMAND" "usage on stderr"
ekv frobnicate
expect_rc 2 "unknown command"
ekv --help
expect_rc 0 "--help"
for cmd in format ls get put rm check repair dump; do
    expect_out_has "^  embedkvfs $cmd " "--help lists $cmd"
done
ekv --version
expect_rc 0 "--version"
expect_out_has "^embedkvfs [0-9]+\.[0-9]+\.[0-9]+ \(libembedkv .*format 1\.0\)$" \
    "--version"
for cmd in format ls get put rm check repair dump; do
    ekv "$cmd" --help
    expect_rc 0 "$cmd --help"
    expect_out_has "^usage: embedkvfs $cmd" "$cmd --help starts with its usage"
    ekv "$cmd" -h
    expect_rc 0 "$cmd -h"
    ekv "$cmd" --no-such-option x
    case $cmd in
    check) expect_rc 16 "check: usage error is 16" ;;
    *) expect_rc 2 "$cmd: usage error is 2" ;;
    esac
    expect_err_has "bad option '--no-such-option'" "$cmd names the bad option"
    expect_err_one_line "$cmd bad option"
done

# The file system holding the image is full: the store has room, the file
# cannot grow. The message names that cause and the image, not the
# store's free blocks (ENOSPC from pwrite is EKV_ENOSPC's number too), and
# the old value stays.
if [ "$(id -u)" -eq 0 ] && mkdir full && mount -t tmpfs -o size=256K tmpfs full; then
    trap 'umount "$WORK/full" 2>/dev/null; cleanup' EXIT
    truncate -s 4M full/s.img
    "$EKV" format --block-size 4096 full/s.img >/dev/null || fail "format"
    head -c 100000 /dev/urandom >v1
    "$EKV" put --file v1 full/s.img big || fail "put of a value that fits"
    head -c 300000 /dev/urandom >v2
    ekv put --file v2 full/s.img big
    expect_rc 5 "put on a full file system"
    expect_err_has "^embedkvfs put: big: cannot write the image full/s.img: No space left on device$" \
        "names the full file system's error and the image"
    ekv get full/s.img big
    expect_same out v1 "the old value stays"
    printf '{"format": "embedkv-export-1", "keys": [{"key": "x", "value": "%s"}]}' \
        "$(head -c 300000 /dev/zero | tr '\0' a)" >big.json
    ekv_in big.json import full/s.img
    expect_rc 5 "import on a full file system"
    expect_err_has "^embedkvfs import: x \(keys\[0\]\): cannot write the image full/s.img: No space left on device" \
        "import names the cause too"
    umount full
else
    [ "${CI:-}" != true ] || fail "CI=true: the full file system check needs root (a tmpfs)"
    echo "note: not root: the full file system check not run"
fi

done_ok
