#!/usr/bin/env bash
# valgrind.sh ROOT - the unit tests, the quick power-loss sweeps (small
# workloads), the sweep regressions and the fuzz corpus replays under
# valgrind memcheck (no sanitizers: build-valgrind). Any invalid access,
# uninitialised value that matters, or leak fails the run.
source "$(dirname "$0")/lib/common.bash"
root=$(proof_root "${1:-}") || exit 2
need meson meson
need ninja ninja-build
need valgrind valgrind
bdir=$root/build-valgrind
log=$(logfile "$bdir")

echo "valgrind: building in $bdir"
if [ ! -d "$bdir" ]; then
    quiet "$log" meson setup "$bdir" -Dbuildtype=debugoptimized \
        -Dbench=false || exit 1
fi
fail=0
if ! quiet "$log" ninja -C "$bdir" -k 0; then
    echo "valgrind: the build failed (see above); testing what was built"
    fail=1
fi

# check forks a child per test by default; run in-process so valgrind sees
# every test.
export CK_FORK=no
wrap="valgrind -q --error-exitcode=99 --leak-check=full \
--show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible \
--track-origins=yes"
echo "valgrind: unit, compat, powerloss and fuzz-replay suites"
mapfile -t tests < <(python3 - "$bdir" <<'PY'
import json, os, subprocess, sys
t = json.loads(subprocess.run(["meson", "introspect", "--tests", sys.argv[1]],
                              capture_output=True, text=True).stdout)
want = {"embedkv:" + s for s in ("unit", "compat", "powerloss", "fuzz-replay")}
for x in t:
    # valgrind wraps C programs only (not the shell and python drivers).
    if set(x["suite"]) & want and os.path.exists(x["cmd"][0]) and \
            open(x["cmd"][0], "rb").read(4) == b"\x7fELF":
        print(x["name"])
PY
)
echo "valgrind: ${#tests[@]} tests"
if ! meson test -C "$bdir" --no-rebuild --wrapper "$wrap" \
        --timeout-multiplier 20 --print-errorlogs "${tests[@]}" \
        >"$bdir/test.txt" 2>&1; then
    fail=1
fi
grep -E '^ *[0-9]+/[0-9]+ ' "$bdir/test.txt" | grep -vE ' OK ' | head -n 40
sed -n '/^Ok:/,/^Timeout:/p' "$bdir/test.txt"
echo "valgrind: done in $SECONDS s"
[ $fail -eq 0 ] && echo "valgrind: clean" || echo "valgrind: FAILED"
exit $fail
