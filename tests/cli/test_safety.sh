# The tool must not harm (issue 9, items 9, 10 and 14): format never
# overwrites, truncates or follows what it should not; a FIFO, socket or
# character device given as an image is refused at once by every command;
# and each error names its real cause and the path.
. "$(dirname "$0")/lib.sh"

# no_hang WHAT CMD...: run embedkvfs CMD with a generous timeout that only
# catches a hang (a blocked open), never judges speed.
no_hang() {
    local what=$1
    shift
    timeout 60 "$EKV" "$@" </dev/null >"$WORK/out" 2>"$WORK/err"
    rc=$?
    [ "$rc" -ne 124 ] || fail "$what: embedkvfs $* hangs"
    sanitizer_clean "$@"
}

# --- format: never harms a file it was not asked to overwrite --------------
head -c 4194304 /dev/urandom >fw.bin
before=$(sums fw.bin)
ekv format --size 24K fw.bin
expect_rc 1 "format of a 4 MiB file of other data without --force"
expect_err_has "^embedkvfs format: fw.bin: a file holding data that is not an embedkv image \(4194304 bytes\); use --force to overwrite it \(it would be truncated\)$" \
    "says why, how, and that it would truncate"
expect_err_one_line "refusal"
[ "$(sums fw.bin)" = "$before" ] || fail "the file is unchanged"; pass
[ "$(stat -c %s fw.bin)" -eq 4194304 ] || fail "the file is not truncated"; pass
ekv format fw.bin
expect_rc 1 "also without --size"
[ "$(sums fw.bin)" = "$before" ] || fail "the file is still unchanged"; pass

# Blank files (sparse or written zeros, or all 0xFF) have nothing to lose.
truncate -s 8K sparse.img
ekv format sparse.img
expect_rc 0 "a sparse blank file is formatted without --force"
head -c 8192 /dev/zero >zeros.img
ekv format zeros.img
expect_rc 0 "a zero-filled file is formatted without --force"
head -c 8192 /dev/zero | tr '\0' '\377' >ff.img
ekv format ff.img
expect_rc 0 "an all-0xFF file (erased flash) is formatted without --force"
{ head -c 4096 /dev/zero; printf x; head -c 4095 /dev/zero; } >onebyte.img
ekv format onebyte.img
expect_rc 1 "one non-blank byte is data"
: >empty.img
ekv format --size 8K empty.img
expect_rc 0 "an empty file is formatted"

# With --force the user asked for it.
ekv format --force --size 24K fw.bin
expect_rc 0 "--force overwrites"
[ "$(stat -c %s fw.bin)" -eq 24576 ] || fail "--force resizes"; pass

# Dangling symbolic links are not followed into creating a file.
ln -s nothere.img dangling.img
ekv format --size 8K dangling.img
expect_rc 1 "a dangling symlink is refused"
expect_err_has "dangling.img: a symbolic link to 'nothere.img', which does not exist" \
    "says it is a dangling link, naming the target"
[ ! -e nothere.img ] || fail "nothing was created through the link"; pass
ekv format --force --size 8K dangling.img
expect_rc 1 "even with --force"
[ ! -e nothere.img ] || fail "nothing was created with --force either"; pass
# A link to an existing blank file is fine: it is that file.
truncate -s 8K target.img
ln -s target.img link.img
ekv format link.img
expect_rc 0 "a symlink to a blank file formats the file"

# A block device (a loop device here) is never overwritten without --force.
refuses_device() { # DEV ERR-REGEX WHAT: format without --force refuses DEV,
                   # saying ERR, and leaves every byte of it as it was
    local before
    before=$(sums "$1")
    ekv format "$1"
    expect_rc 1 "$3"
    expect_err_has "$2" "$3: says why"
    [ "$(sums "$1")" = "$before" ] || fail "$3: the device changed"; pass
}
LOOPDEV=
if [ "$(id -u)" -eq 0 ] && command -v losetup >/dev/null &&
    head -c 1048576 /dev/urandom >loop.bin &&
    LOOPDEV=$(losetup -f --show loop.bin 2>/dev/null); then
    trap '[ -n "$LOOPDEV" ] && losetup -d "$LOOPDEV"; cleanup' EXIT
    refuses_device "$LOOPDEV" \
        "^embedkvfs format: $LOOPDEV: a block device holding data that is not an embedkv image \(1048576 bytes\); use --force to overwrite it$" \
        "format of a block device with other data, without --force"
    before=$(sums "$LOOPDEV")
    ekv format --force --size 24K "$LOOPDEV"
    expect_rc 2 "an image smaller than its device could never be opened"
    expect_err_has "the device has 1048576 bytes, the image would have 24576" \
        "says the image must fill the device"
    [ "$(sums "$LOOPDEV")" = "$before" ] || fail "the device is still unchanged"; pass
    ekv format --force "$LOOPDEV"
    expect_rc 0 "format --force of the device"
    printf v | "$EKV" put "$LOOPDEV" k || fail "put on the device"
    ekv get "$LOOPDEV" k
    expect_out v "the device holds a usable store"
    ekv format "$LOOPDEV"
    expect_rc 1 "re-format of the device needs --force"
    losetup -d "$LOOPDEV"
    LOOPDEV=
    # A zeroed device is refused too, without a claim that it holds data.
    truncate -s 1M zero.bin
    LOOPDEV=$(losetup -f --show zero.bin) || fail "a second loop device"
    refuses_device "$LOOPDEV" \
        "^embedkvfs format: $LOOPDEV: a block device \(1048576 bytes\) with no embedkv image; format overwrites a device only with --force$" \
        "format of a zeroed block device (no claim of data), without --force"
    losetup -d "$LOOPDEV"
    LOOPDEV=
else
    echo "note: no loop device: the block device checks not run"
    [ "${CI:-}" != true ] || fail "CI=true: the block device checks need root and loop devices"
fi

# Character devices, FIFOs and sockets: never, not even with --force.
mkfifo fifo
python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); s.bind("sock")'
for f in /dev/null fifo sock; do
    for force in "" --force; do
        no_hang "format $force $f" format $force --size 24K "$f"
        expect_rc 1 "format $force $f is refused"
        expect_err_has "^embedkvfs format: $f: not a regular file or block device \(it is a (character device|FIFO|socket)\): refused$" \
            "format $force $f says what it is"
    done
done
[ -c /dev/null ] || fail "/dev/null is still a character device"; pass
[ -p fifo ] || fail "the FIFO is still a FIFO"; pass

# --- a FIFO (or device) given as an image never hangs any command ----------
"$EKV" format --size 8K good.img >/dev/null || fail "format good.img"
mkdir -p mnt
for spec in "ls fifo" "get fifo k" "put fifo k" "rm fifo k" "dump fifo" \
            "repair fifo" "ls good.img fifo" "get good.img fifo k"; do
    # shellcheck disable=SC2086
    no_hang "$spec" $spec
    expect_rc 5 "$spec: refused"
    expect_err_has "^embedkvfs: fifo: not a regular file or block device \(it is a FIFO\)$" \
        "$spec: says what the path is"
done
no_hang "check fifo" check fifo
expect_rc 8 "check fifo: an operational error"
expect_err_has "^embedkvfs: fifo: not a regular file or block device \(it is a FIFO\)$" \
    "check fifo: says what it is"
no_hang "check --json fifo" check --json fifo
expect_rc 8 "check --json fifo"
no_hang "check good.img fifo" check good.img fifo
expect_rc 8 "check of a set with a FIFO"
expect_err_has "^embedkvfs: fifo: not a regular file or block device \(it is a FIFO\)$" \
    "check good.img fifo: names the FIFO"
grep -q "good.img" "$WORK/err" "$WORK/out" && fail "check blames the good image"
pass
if [ -e /dev/fuse ] && [ "$(id -u)" -eq 0 ]; then
    no_hang "mount fifo" mount fifo mnt
    expect_rc 5 "mount fifo: refused"
    expect_err_has "^embedkvfs: fifo: not a regular file or block device \(it is a FIFO\)$" \
        "mount fifo: says what it is"
    mountpoint -q mnt && fail "mount of a FIFO mounted something"
    pass
fi

# --- misleading messages ----------------------------------------------------
# ls /dev/zero: not "empty file".
for cmd in ls check dump; do
    no_hang "$cmd /dev/zero" $cmd /dev/zero
    expect_err_has "/dev/zero: not a regular file or block device \(it is a character device\)" \
        "$cmd /dev/zero says what it is"
    grep -q "empty file" "$WORK/err" && fail "$cmd /dev/zero says 'empty file'"
    pass
done

# Permission denied is not "storage is read-only". Root may write anything,
# so take another user's identity.
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
    chmod 755 "$WORK"
    "$EKV" format --size 8K ro.img >/dev/null || fail "format ro.img"
    printf v | "$EKV" put ro.img k || fail "put ro.img"
    chmod 444 ro.img
    nobody() { setpriv --reuid 65534 --regid 65534 --clear-groups "$@"; }
    nobody "$EKV" put ro.img k2 </dev/null >"$WORK/out" 2>"$WORK/err"
    rc=$?
    expect_rc 5 "put on a 0444 image as another user"
    expect_err_has "^embedkvfs: ro.img: permission denied" "says permission denied"
    grep -q "read-only" "$WORK/err" && ! grep -q "read-only commands" "$WORK/err" &&
        fail "blames a read-only store"
    pass
    nobody "$EKV" get ro.img k >"$WORK/out" 2>"$WORK/err"
    rc=$?
    expect_rc 0 "get still works on a 0444 image"
    expect_out v "and reads the value"
else
    echo "note: not root: the permission-denied check needs another uid"
    [ "${CI:-}" != true ] || fail "CI=true: run as root for every check"
fi

# rm IMAGE IMAGE (the key forgotten): the image is not taken as the key.
"$EKV" format --size 8K a.img b.img >/dev/null || fail "format a b"
# An upstream-style set (flags 0): a.img alone may be written below.
upstream_set a.img b.img
printf v | "$EKV" put a.img b.img k || fail "put a b"
before=$(sums a.img b.img)
for cmd in rm get put; do
    ekv $cmd a.img b.img
    expect_rc 2 "$cmd a.img b.img: a usage error"
    expect_err_has "^embedkvfs $cmd: b.img: the last argument, taken as the KEY, is an embedkv image: was the KEY left out\?" \
        "$cmd: says the KEY looks left out"
    expect_err_one_line "$cmd: image as key"
done
[ "$(sums a.img b.img)" = "$before" ] || fail "nothing was changed"; pass
printf w | "$EKV" put a.img -- b.img || fail "put with -- before a key that is a file name"
ekv get a.img -k b.img
expect_rc 0 "-k gives such a key explicitly"
expect_out w "and it is the key 'b.img'"
ekv rm a.img -- b.img
expect_rc 0 "rm with '--' before the key"
ekv get a.img b.img -k k
expect_rc 0 "-k: every positional argument is an image"
expect_out v "both replicas read"

# get w.img -dash: the message names the real cause (an option-like KEY).
ekv get a.img -dash
expect_rc 2 "a key that looks like an option"
expect_err_has "unknown option '-d' in '-dash' \(if '-dash' is a KEY or a file name, put '--' before it\)" \
    "says -dash was read as options and how to pass it"
grep -q "a.img" "$WORK/err" && fail "the message blames the image"
pass
printf dash | "$EKV" put a.img -- -dash || fail "put -- -dash"
ekv get a.img -- -dash
expect_rc 0 "a key starting with '-' after --"
expect_out dash "reads it"

# A generation counter at its maximum: not "buffer too small".
exhausted_generation gen.img k
ekv ls -l gen.img
expect_out_has "4294967295" "the key is at the last generation"
printf w | "$EKV" put gen.img k >"$WORK/out" 2>"$WORK/err"
rc=$?
expect_rc 1 "put on an exhausted generation fails"
expect_err_has "^embedkvfs put: k: the key's generation counter is exhausted \(4294967295 writes\): rm the key, then put it again$" \
    "says the generation is exhausted and what to do"
grep -q "buffer too small" "$WORK/err" && fail "says buffer too small"
pass
ekv rm gen.img k
expect_rc 0 "rm of the exhausted key"
printf w | "$EKV" put gen.img k || fail "put again after rm"
ekv get gen.img k
expect_out w "the key is usable again"

# check on something that is not an image: not "run repair".
head -c 8192 /dev/urandom >noise.bin
ekv check noise.bin
expect_rc 4 "check of a non-image: status 4"
expect_out_has "^status:   4: not an embedkv image \(repair cannot help; format creates a store\)$" \
    "says it is not an image"
grep -q "run 'embedkvfs repair'" "$WORK/out" && fail "check advises repair"
pass
ekv repair noise.bin
expect_rc 4 "and repair indeed cannot help (exit 4)"

# Mount option values: one clear line and exit 2, like an unknown option.
if [ -e /dev/fuse ] && [ "$(id -u)" -eq 0 ]; then
    for o in umask=999 umask=-1 umask=abc bogus; do
        ekv mount -o "$o" good.img mnt
        expect_rc 2 "mount -o $o: exit 2"
        expect_err_one_line "mount -o $o: one line"
        expect_err_has "$o" "mount -o $o: names the option"
        mountpoint -q mnt && fail "mount -o $o mounted"
        pass
    done
    ekv mount -o umask=999 good.img mnt
    expect_err_has "^embedkvfs mount: -o umask=999: not an octal mask 0\.\.0777" \
        "umask=999 says what a umask is"
    ekv mount -o umask=027 good.img mnt
    expect_rc 0 "a valid umask mounts"
    [ "$(stat -c %a mnt)" = 750 ] || fail "the umask applies"
    pass
    fusermount3 -u mnt || fail "unmount"
else
    echo "note: no /dev/fuse or not root: mount option checks not run"
    [ "${CI:-}" != true ] || fail "CI=true: the mount checks need root and /dev/fuse"
fi

# A closed standard stream never lends its descriptor to an image: the
# image would take fd 0, 1 or 2, and a status line or error message would
# be written into it (outside a window, too), or a put would store bytes
# read from the image. The stream fails as a closed one does instead.
head -c 65536 /dev/urandom >dump.bin
python3 -c "f=open('dump.bin','r+b');f.seek(16384);f.write(b'\xff'*32768)"
cp dump.bin dump.orig
"$EKV" format --offset 16K --length 32K dump.bin >&- 2>"$WORK/err"
rc=$?
cmp -s <(head -c 16384 dump.bin) <(head -c 16384 dump.orig) ||
    fail "format with stdout closed wrote before its window"
cmp -s <(tail -c 16384 dump.bin) <(tail -c 16384 dump.orig) ||
    fail "format with stdout closed wrote after its window"
ekv ls --offset 16K --length 32K dump.bin
expect_rc 0 "format with stdout closed left a store in the window"
pass
"$EKV" format --blocks 16 closed.img >/dev/null
printf important >val
ekv_in val put closed.img cfg
expect_rc 0 "put of the first value"
"$EKV" put closed.img cfg <&- >"$WORK/out" 2>"$WORK/err"
rc=$?
[ "$rc" -ne 0 ] || fail "put with stdin closed succeeded"
expect_err_has "standard input" "put with stdin closed names standard input"
ekv get closed.img cfg
expect_out "important" "put with stdin closed kept the old value"
size=$(stat -c %s closed.img)
head -c 50000 /dev/zero >big
"$EKV" put closed.img big <big 2>&-
[ "$(stat -c %s closed.img)" = "$size" ] ||
    fail "an error with stderr closed went into the image"
ekv get closed.img cfg
expect_out "important" "the store still opens after an error with stderr closed"
"$EKV" get closed.img cfg >&- 2>"$WORK/err"
rc=$?
expect_rc 5 "get with stdout closed reports the failed write"
pass

# An extract stopped by SIGTERM while it writes a file leaves no
# temporary behind (a later format --from DIR would take it for a key).
# strace holds the first write 2 s, so the signal lands mid-file.
command -v strace >/dev/null ||
    fail "strace is needed (bash tests/install-deps.sh --all)"
"$EKV" format --block-size 4096 --size 1M stop.img >/dev/null
head -c 300000 /dev/urandom >bigval
"$EKV" put stop.img big <bigval
mkdir stopdir
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    strace -o /dev/null -e trace=write -e inject=write:delay_enter=2000000:when=1 \
    "$EKV" extract stop.img stopdir 2>/dev/null &
tracer=$!
for _ in $(seq 250); do
    ls -A stopdir | grep -q '^\.embedkvfs-extract\.' && break
    sleep 0.02
done
ls -A stopdir | grep -q '^\.embedkvfs-extract\.' ||
    fail "extract under strace never started its temporary file"
kill -TERM "$(pgrep -P "$tracer")"
wait "$tracer"
[ -z "$(ls -A stopdir)" ] ||
    fail "SIGTERM during extract left: $(ls -A stopdir | tr '\n' ' ')"
pass

# Blocks that every replica in use fails to read at open make the view
# partial: ls, export and a get that finds nothing fail with exit 5 and
# say so, instead of passing an empty listing for the store (strace fails
# every pread from the sixth on, after the header).
"$EKV" format --blocks 64 rd.img >/dev/null
for i in 1 2 3; do printf "v$i" | "$EKV" put rd.img "key$i"; done
for c in "get rd.img key1" "ls rd.img" "export rd.img"; do
    # shellcheck disable=SC2086
    # LeakSanitizer cannot run under ptrace: off for this run.
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
        strace -o /dev/null -e trace=pread64 -e inject=pread64:error=EIO:when=6+ \
        "$EKV" $c >"$WORK/out" 2>"$WORK/err"
    rc=$?
    expect_rc 5 "$c with unreadable blocks: exit 5"
    expect_err_has "could not be read" "$c with unreadable blocks says so"
    pass
done
ekv ls rd.img
expect_rc 0 "without the errors, ls passes"
expect_out_has "key3" "and lists every key"

done_ok
