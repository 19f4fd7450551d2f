#!/bin/sh
# same_output.sh A B SEEDS: run "A seed" and "B seed" for seeds 1..SEEDS
# and fail at the first seed where their outputs differ.
a=$1 b=$2 seeds=$3
i=1
while [ "$i" -le "$seeds" ]; do
    if ! "$a" "$i" > "${TMPDIR:-/tmp}/same_a.$$" ||
       ! "$b" "$i" > "${TMPDIR:-/tmp}/same_b.$$"; then
        echo "seed $i: a program failed"; rm -f "${TMPDIR:-/tmp}"/same_[ab].$$; exit 1
    fi
    if ! cmp -s "${TMPDIR:-/tmp}/same_a.$$" "${TMPDIR:-/tmp}/same_b.$$"; then
        echo "seed $i: outputs differ (replay: $a $i; $b $i)"
        diff "${TMPDIR:-/tmp}/same_a.$$" "${TMPDIR:-/tmp}/same_b.$$" | head -20
        rm -f "${TMPDIR:-/tmp}"/same_[ab].$$
        exit 1
    fi
    i=$((i + 1))
done
rm -f "${TMPDIR:-/tmp}"/same_[ab].$$
echo "$seeds seeds: identical"
