#!/bin/sh
# symbols.sh NM LIBRARY... - every global name a library defines starts
# with ekv_ (the API) or ekvi_ (what the core's modules share, see
# src/core/ekv_internal.h), so none can meet a name of the program it is
# linked into. Prints the offenders and fails if there are any.
set -eu
nm=$1
shift
bad=0
for lib in "$@"; do
    names=$("$nm" -g --defined-only "$lib" | awk 'NF == 3 { print $3 }' |
        grep -v -e '^ekv_' -e '^ekvi_' | sort -u) || true
    # A shared library also carries the linker's own names.
    names=$(printf '%s\n' "$names" |
        grep -v -x -e '' -e '_init' -e '_fini' -e '_edata' -e '_end' \
            -e '__bss_start' || true)
    if [ -n "$names" ]; then
        echo "symbols: $lib defines global names outside ekv_/ekvi_:" >&2
        printf '  %s\n' $names >&2
        bad=1
    else
        echo "symbols: $lib: every global name is ekv_ or ekvi_"
    fi
done
exit $bad
