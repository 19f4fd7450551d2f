#!/usr/bin/env bash
# powerloss.sh ROOT - the full power-loss and fault sweep (tests/powerloss/
# sweep.c): every write of small random workloads cut under every failure
# model, erase bytes 0x00 and 0xFF, plus sampled cuts of large workloads
# and of the scanning (EKV_NO_INDEX) core. At least 100,000 power-cut cases.
# Replays of any failure are printed as `sweep ...` commands.
source "$(dirname "$0")/lib/common.bash"
root=$(proof_root "${1:-}") || exit 2
need meson meson
need ninja ninja-build
bdir=$root/build-powerloss
log=$(logfile "$bdir")

echo "powerloss: building in $bdir"
if [ ! -d "$bdir" ]; then
    quiet "$log" meson setup "$bdir" -Dbuildtype=release -Dtool=true \
        -Dbench=false -Dfuse=disabled || exit 1
fi
quiet "$log" ninja -C "$bdir" tests/powerloss/sweep tests/powerloss/sweep_noindex \
    || exit 1

sweep=$bdir/tests/powerloss/sweep
sweep_noindex=$bdir/tests/powerloss/sweep_noindex
fail=0
total=0
power=0

run() {
    local name=$1; shift
    local out=$bdir/sweep-$name.txt
    local t0=$SECONDS
    echo
    echo "== $name: $*"
    "$@" >"$out" 2>&1
    local rc=$?
    # the per-model table and the totals
    sed -n '/^sweep (/,$p' "$out"
    grep -E '^(FAIL|  replay)' "$out" | head -n 20
    local cases pcases
    cases=$(awk '/^total:/ {print $2}' "$out")
    # power-cut models: all but the fault injection ones
    pcases=$(awk '/^  [a-z]/ && $1 !~ /^(werr|ferr|rerr|flip)/ {s += $2} END {print s+0}' "$out")
    total=$((total + ${cases:-0}))
    power=$((power + pcases))
    echo "   ($((SECONDS - t0)) s, $pcases power-cut cases)"
    [ $rc -eq 0 ] || fail=1
}

# Exhaustive: every write of 600 small workloads, every model, 0x00 and
# 0xFF erase bytes.
run small-exhaustive "$sweep" --size small --seed 1 --seeds 600 --model all --ff
# Sampled: 250 cut points of each of 40 large workloads.
run large-sampled "$sweep" --size large --seed 1 --seeds 40 --model all \
    --samples 250
# The scanning core (reads the whole device per operation): sampled.
run small-noindex "$sweep_noindex" --size small --seed 1 --seeds 60 \
    --model all --samples 200
run large-noindex "$sweep_noindex" --size large --seed 1 --seeds 4 \
    --model power --samples 150 --ff

echo
echo "powerloss: $total cases in all, $power of them power cuts" \
     "($((SECONDS)) s)"
if [ "$power" -lt 100000 ]; then
    echo "powerloss: fewer than 100000 power-cut cases" >&2
    fail=1
fi
[ $fail -eq 0 ] && echo "powerloss: no failures" || echo "powerloss: FAILED"
exit $fail
