#!/usr/bin/env bash
# sanitizers.sh ROOT - build everything with AddressSanitizer and
# UndefinedBehaviorSanitizer and -Werror (gcc, -Wall -Wextra by
# warning_level=2) in build-asan, then run every meson test except the
# benchmarks, then the FUSE suite again with the daemon's reports written
# to files (a daemon's stderr goes to its test's log, and an ASan abort at
# unmount could pass unnoticed there): any report fails the script. Any
# leak, overflow, use after free or undefined behaviour fails a test, and
# so the script.
# Then ThreadSanitizer on the daemon (build-tsan): the FUSE suite again,
# any data race or lock-order report failing it (the daemon answers
# requests in several threads: src/tool/mount_loop.c).
# Then the same -Werror build with clang (its warnings differ from gcc's).
source "$(dirname "$0")/lib/common.bash"
root=$(proof_root "${1:-}") || exit 2
need meson meson
need ninja ninja-build
bdir=$root/build-asan
log=$(logfile "$bdir")
fail=0

echo "sanitizers: building in $bdir (gcc, address+undefined, -Werror)"
if [ ! -d "$bdir" ]; then
    quiet "$log" meson setup "$bdir" -Db_sanitize=address,undefined \
        -Db_lundef=false -Dwerror=true -Dbench=false || exit 1
fi
# Keep going past a broken target, so that every other test still runs.
if ! quiet "$log" ninja -C "$bdir" -k 0; then
    echo "sanitizers: the -Werror build failed (see above)"
    fail=1
fi

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
echo "sanitizers: running the tests (all suites but fuse and bench)"
# Every test of the wanted suites whose program got built (a broken
# target already failed the run above; the rest is still worth knowing).
mapfile -t tests < <(python3 - "$bdir" <<'PY'
import json, os, subprocess, sys
t = json.loads(subprocess.run(["meson", "introspect", "--tests", sys.argv[1]],
                              capture_output=True, text=True).stdout)
for x in t:
    if set(x["suite"]) & {"embedkv:fuse", "embedkv:bench"}:
        continue
    if os.path.exists(x["cmd"][0]) and all(
            os.path.exists(a) for a in x["cmd"][1:2] if a.startswith("/")):
        print(x["name"])
PY
)
echo "sanitizers: ${#tests[@]} tests"
if ! meson test -C "$bdir" --no-rebuild --print-errorlogs \
        --timeout-multiplier 4 "${tests[@]}" >"$bdir/test.txt" 2>&1; then
    fail=1
fi
grep -E '^ *[0-9]+/[0-9]+ ' "$bdir/test.txt" | grep -vE ' OK ' | head -n 40
sed -n '/^Ok:/,/^Timeout:/p' "$bdir/test.txt"

# fuse_suite BUILD_DIR WHAT ENV... - the FUSE suite of BUILD_DIR with the
# sanitizer options ENV (VAR=VALUE), which write their reports into
# BUILD_DIR/fuse-reports: a failed test or any report fails the script.
fuse_suite() {
    local dir=$1 what=$2 rdir=$1/fuse-reports
    shift 2
    rm -rf "$rdir"; mkdir -p "$rdir"
    if ! env "$@" meson test -C "$dir" --no-rebuild \
            --print-errorlogs --suite fuse --timeout-multiplier 4 \
            >"$dir/fuse.txt" 2>&1; then
        fail=1
    fi
    grep -E '^ *[0-9]+/[0-9]+ ' "$dir/fuse.txt" | grep -vE ' OK ' | head -n 40
    sed -n '/^Ok:/,/^Timeout:/p' "$dir/fuse.txt"
    if [ -n "$(ls -A "$rdir")" ]; then
        echo "sanitizers: $what reports from the FUSE suite:"
        head -n 40 "$rdir"/*
        fail=1
    fi
}

# The FUSE suite: real mounts through the sanitized daemon.
if [ -e /dev/fuse ] && [ -x "$bdir/src/tool/embedkvfs" ]; then
    echo "sanitizers: the FUSE suite on the sanitized daemon"
    fuse_suite "$bdir" ASan/UBSan \
        "ASAN_OPTIONS=$ASAN_OPTIONS:log_path=$bdir/fuse-reports/asan" \
        "UBSAN_OPTIONS=$UBSAN_OPTIONS:log_path=$bdir/fuse-reports/ubsan"
elif [ "${CI:-}" = true ]; then
    echo "sanitizers: no /dev/fuse or no daemon: the FUSE suite cannot run"
    fail=1
else
    echo "sanitizers: SKIP the FUSE suite (no /dev/fuse or no daemon)"
fi

# ThreadSanitizer: only what the FUSE suite runs is built.
tdir=$root/build-tsan
if [ -e /dev/fuse ]; then
    echo "sanitizers: the FUSE suite on a ThreadSanitizer daemon ($tdir)"
    if [ ! -d "$tdir" ]; then
        quiet "$(logfile "$tdir")" meson setup "$tdir" -Db_sanitize=thread \
            -Db_lundef=false -Dbench=false || fail=1
    fi
    # The programs the FUSE suite runs: every path into the build that a
    # test's command names (the test programs, the daemon, imgcheck).
    targets=()
    [ -d "$tdir" ] && mapfile -t targets < <(python3 - "$tdir" <<'PY'
import json, os, subprocess, sys
d = os.path.realpath(sys.argv[1])
t = json.loads(subprocess.run(["meson", "introspect", "--tests", d],
                              capture_output=True, text=True).stdout)
# Meson names built programs relative to the build directory in a test's
# arguments (other arguments are options and test names, with no slash),
# and absolutely as its command.
paths = (os.path.realpath(os.path.join(d, a)) for x in t
         if "embedkv:fuse" in x["suite"] for a in x["cmd"] if "/" in a)
used = {os.path.relpath(p, d) for p in paths if p.startswith(d + "/")}
print("\n".join(sorted(used)))
PY
)
    if [ ${#targets[@]} -gt 0 ] && quiet "$(logfile "$tdir")" ninja -C "$tdir" \
            "${targets[@]}"; then
        fuse_suite "$tdir" ThreadSanitizer \
            "TSAN_OPTIONS=log_path=$tdir/fuse-reports/tsan:halt_on_error=0:exitcode=66"
    else
        echo "sanitizers: the ThreadSanitizer build failed"
        fail=1
    fi
fi

if command -v clang >/dev/null 2>&1; then
    cdir=$root/build-clang-werror
    echo "sanitizers: -Werror build with clang in $cdir"
    if [ ! -d "$cdir" ]; then
        CC=clang quiet "$(logfile "$cdir")" meson setup "$cdir" -Dwerror=true \
            -Dbench=false || fail=1
    fi
    [ -d "$cdir" ] && { quiet "$(logfile "$cdir")" ninja -C "$cdir" || fail=1; }
fi
echo "sanitizers: done in $SECONDS s"
[ $fail -eq 0 ] && echo "sanitizers: clean" || echo "sanitizers: FAILED"
exit $fail
