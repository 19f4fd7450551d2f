# A command waits a bounded time for an image another process has locked
# (issue 9, item 12): the README's "fusermount3 -u kv; embedkvfs get ..."
# works every time, while the ending daemon still holds the image.
# --wait SECONDS and --no-wait set the bound.
. "$(dirname "$0")/lib.sh"

"$EKV" format --size 16K a.img >/dev/null || fail "format"
printf v | "$EKV" put a.img k || fail "put"

# --- the options --------------------------------------------------------------
hold_lock a.img
mkdir xdir
echo '{"format": "embedkv-export-1", "keys": []}' >doc.json
for cmd in "ls" "get" "put" "rm" "check" "repair" "dump" "export" "import" \
           "extract" "diff"; do
    case $cmd in
    get | rm) args="a.img k" ;;
    put) args="a.img k2" ;;
    import) args="-f doc.json a.img" ;;
    extract) args="a.img xdir" ;;
    diff) args="a.img a.img" ;;
    *) args="a.img" ;;
    esac
    # shellcheck disable=SC2086
    ekv $cmd --no-wait $args
    case $cmd in
    check) expect_rc 8 "check --no-wait on a locked image" ;;
    *) expect_rc 5 "$cmd --no-wait on a locked image" ;;
    esac
    expect_err_has "a.img: image is locked by another process" "$cmd: says locked"
    grep -q "waiting" "$WORK/err" && fail "$cmd --no-wait says it waited"
    pass
done
ekv ls --wait 1 a.img
expect_rc 5 "ls --wait 1 gives up"
expect_err_has "^embedkvfs: a.img: image is locked by another process \(mounted\?\); gave up after waiting 1\.0 s$" \
    "says how long it waited"
for bad in abc -1 1.5 100000; do
    ekv ls --wait "$bad" a.img
    expect_rc 2 "--wait $bad is a usage error"
    expect_err_has "wait" "--wait $bad: names the option"
done

# A waiting command goes on once the lock is released. The bound is far
# beyond any delay here, so the verdict does not depend on speed.
"$EKV" get --wait 600 a.img k >got 2>goterr &
getpid=$!
sleep 1
release_lock
wait "$getpid"
rc=$?
[ "$rc" -eq 0 ] || { cat goterr >&2; fail "get waited for the lock: exit $rc"; }
pass
[ "$(cat got)" = v ] || fail "and read the value"; pass

# The default wait is bounded too (5 s, documented): a reader that waits
# for a writer that never goes gives up.
hold_lock a.img
ekv ls a.img
expect_rc 5 "ls gives up after the default wait"
expect_err_has "gave up after waiting 5\.0 s" "the default wait is 5 s"
release_lock

# --- the README sequence, on a real mount, many times ------------------------------
if [ -e /dev/fuse ] && [ "$(id -u)" -eq 0 ]; then
    mkdir kv
    cycles=${LOCKWAIT_CYCLES:-25}
    for i in $(seq 1 "$cycles"); do
        "$EKV" mount a.img kv >mount.log 2>&1 || { cat mount.log >&2; fail "mount $i"; }
        printf 'value %d' "$i" >kv/k || fail "write through the mount ($i)"
        fusermount3 -u kv || fail "unmount $i"
        # The daemon may still hold the image: get waits for it.
        ekv get a.img k
        [ "$rc" -eq 0 ] || fail "cycle $i: get right after unmount: exit $rc"
        [ "$(cat "$WORK/out")" = "value $i" ] || fail "cycle $i: get reads the value written"
        printf 'put %d' "$i" | "$EKV" put a.img k2 ||
            fail "cycle $i: put after get"
    done
    pass
    echo "mount/unmount/get: $cycles cycles"
else
    echo "note: no /dev/fuse or not root: the mount cycles not run"
    [ "${CI:-}" != true ] || fail "CI=true: the mount cycles need root and /dev/fuse"
fi

done_ok
