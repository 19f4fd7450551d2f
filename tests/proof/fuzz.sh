#!/usr/bin/env bash
# fuzz.sh ROOT [SCALE] - build the libFuzzer targets (tests/fuzz/) with
# clang, ASan and UBSan in build-fuzz, and run each for a fixed number of
# executions (about 9 million in all; SCALE multiplies them), two
# targets at a time on a 2-core machine. Seeds: tests/fuzz/corpus/TARGET
# (the testdata images among them); storage and ops also run against the
# scanning core (EKV_NO_INDEX). The verdict is what was found: a crash,
# leak, sanitizer report or hung input (one input running over 60 s)
# fails the script and leaves the input in build-fuzz/crashes/: copy it
# into tests/fuzz/corpus/TARGET so the fuzz-replay tests keep it. There is
# no time limit: a busy machine takes longer, it does not fail.
source "$(dirname "$0")/lib/common.bash"
root=$(proof_root "${1:-}") || exit 2
scale=${2:-1}
need clang clang
need meson meson
need ninja ninja-build
bdir=$root/build-fuzz
log=$(logfile "$bdir")

echo "fuzz: building in $bdir"
if [ ! -d "$bdir" ]; then
    CC=clang quiet "$log" meson setup "$bdir" -Dfuzz=true \
        -Db_sanitize=address,undefined -Db_lundef=false -Dbench=false \
        -Dbuildtype=debugoptimized || exit 1
fi
targets=(block descriptor chunk storage ops names storage_noindex ops_noindex)
quiet "$log" ninja -C "$bdir" $(printf 'tests/fuzz/fuzz_%s ' "${targets[@]}") \
    || exit 1

# Executions per target: a fixed budget, chosen from measured speed so
# that the whole run takes about 7 minutes on 2 idle cores (exec/s: block
# ~45k, names ~30k, descriptor and chunk ~15k, storage ~6k, ops ~1.5k; the
# scanning core's storage ~1k, ops ~350).
declare -A runs=([block]=3000000 [names]=2000000 [descriptor]=1300000
                 [chunk]=1700000 [storage]=600000 [ops]=260000
                 [storage_noindex]=45000 [ops_noindex]=45000)

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
mkdir -p "$bdir/crashes" "$bdir/corpus"

fuzz_one() {
    local t=$1
    local var=RUNS_$t
    local n=$((${!var} * scale))
    local work=$bdir/corpus/$t
    mkdir -p "$work"
    cp -n "$root/tests/fuzz/corpus/${t%_noindex}/"* "$work/" 2>/dev/null
    local t0=$SECONDS
    local before
    before=$(ls "$bdir/crashes" | grep -c "^$t-")
    "$bdir/tests/fuzz/fuzz_$t" -runs="$n" \
        -timeout=60 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$bdir/crashes/$t-" "$work" \
        >"$bdir/fuzz-$t.log" 2>&1
    local rc=$?
    local done
    done=$(awk '/stat::number_of_executed_units/ {print $2}' \
        "$bdir/fuzz-$t.log")
    # What was found: inputs written to crashes/ by this run.
    local found
    found=$(($(ls "$bdir/crashes" | grep -c "^$t-") - before))
    echo "$t ${done:-0} $((SECONDS - t0)) $rc $found" >"$bdir/fuzz-$t.result"
}

# Two at a time from a queue, slowest first, so both cores stay busy.
export -f fuzz_one
export bdir root scale
export RUNS_block=${runs[block]} RUNS_names=${runs[names]} \
    RUNS_descriptor=${runs[descriptor]} RUNS_chunk=${runs[chunk]} \
    RUNS_storage=${runs[storage]} RUNS_ops=${runs[ops]} \
    RUNS_storage_noindex=${runs[storage_noindex]} \
    RUNS_ops_noindex=${runs[ops_noindex]}
printf '%s\n' descriptor ops_noindex ops chunk storage storage_noindex \
    names block |
    xargs -P 2 -I{} bash -c 'fuzz_one {}'

total=0
fail=0
printf '\n%-16s %12s %8s %s\n' target executions seconds result
for t in "${targets[@]}"; do
    read -r _ n secs rc found <"$bdir/fuzz-$t.result"
    status=ok
    if [ "$rc" != 0 ] || [ "${found:-0}" -gt 0 ]; then
        status="FOUND (exit $rc, $found input(s) in $bdir/crashes, see $bdir/fuzz-$t.log)"
        fail=1
        grep -E 'ERROR|invariant|SUMMARY|Test unit written' \
            "$bdir/fuzz-$t.log" | head -n 8
    elif ! grep -q "^Done [0-9]* runs" "$bdir/fuzz-$t.log"; then
        status="did not finish its budget (see $bdir/fuzz-$t.log)"
        fail=1
    fi
    printf '%-16s %12s %8s %s\n' "$t" "$n" "$secs" "$status"
    total=$((total + n))
done
echo "fuzz: $total executions in all ($SECONDS s)"
[ $fail -eq 0 ] && echo "fuzz: no crash, leak, hang or sanitizer report" \
    || echo "fuzz: FAILED"
exit $fail
