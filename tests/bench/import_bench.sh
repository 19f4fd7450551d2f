#!/usr/bin/env bash
# import_bench.sh - storing many keys: one `embedkvfs import` against one
# `embedkvfs put` per key (each of which opens, locks and recovers the
# store), printed side by side. Prints figures, never pass/fail.
#
# usage: tests/bench/import_bench.sh [EMBEDKVFS] [--quick | N]
#   N keys (default 10000; --quick: 200, what `meson test --suite bench`
#   runs to prove the benchmark works). Both runs write durably (fsync).
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
ekv=$(realpath "${1:-$top/build/src/tool/embedkvfs}")
n=10000
case "${2:-}" in
--quick) n=200 ;;
"") ;;
*) n=$2 ;;
esac
[ -x "$ekv" ] || { echo "import_bench: no $ekv (build first)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/ekv-importbench.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

# Keys key00000..; 16-byte values; 256-byte blocks, room for every key.
blocks=$(( n + n / 4 + 16 ))
{
    printf '{"keys": [\n'
    for ((i = 0; i < n; i++)); do
        printf '%s{"key": "key%05d", "value": "value-%010d"}\n' \
            "$([ $i -eq 0 ] || echo ,)" "$i" "$i"
    done
    printf ']}\n'
} >keys.json

now() { date +%s%N; }
"$ekv" format --blocks "$blocks" imp.img >/dev/null
t0=$(now)
"$ekv" import -f keys.json imp.img
t1=$(now)
import_ms=$(( (t1 - t0) / 1000000 ))

"$ekv" format --blocks "$blocks" put.img >/dev/null
t0=$(now)
for ((i = 0; i < n; i++)); do
    printf 'value-%010d' "$i" | "$ekv" put put.img "$(printf 'key%05d' "$i")"
done
t1=$(now)
put_ms=$(( (t1 - t0) / 1000000 ))

# The same keys in the same order: the images must agree.
same=$(cmp -s imp.img put.img && echo "byte-identical" || echo "DIFFERENT")
printf '%-34s %10s %12s\n' "storing $n keys (16-byte values)" "time" "keys/s"
printf '%-34s %8d ms %12d\n' "1 import command" "$import_ms" \
    $(( n * 1000 / (import_ms > 0 ? import_ms : 1) ))
printf '%-34s %8d ms %12d\n' "$n put commands" "$put_ms" \
    $(( n * 1000 / (put_ms > 0 ? put_ms : 1) ))
printf 'import is %dx faster; the two images are %s\n' \
    $(( put_ms / (import_ms > 0 ? import_ms : 1) )) "$same"
