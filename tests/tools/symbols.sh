#!/bin/sh
# symbols.sh NM INCLUDE_DIR LIBRARY... - the names each build of the
# library gives the program it is linked into.
# - An archive: every global name it defines starts with ekv_ (the API)
#   or ekvi_ (what the core's modules share, see src/core/ekv_internal.h),
#   so none can meet a name of the program's own.
# - A shared library: it exports exactly the functions the public headers
#   in INCLUDE_DIR mark EKV_API, nothing of the core's inside.
# Prints what is wrong and fails if anything is.
set -eu
nm=$1
inc=$2
shift 2
bad=0
api=$(cat "$inc"/*.h | grep -A1 -x 'EKV_API' | grep -o 'ekv_[a-z0-9_]*(' |
    tr -d '(' | sort -u)
[ -n "$api" ] || { echo "symbols: no EKV_API declaration in $inc" >&2; exit 1; }
for lib in "$@"; do
    case $lib in
    *.so | *.so.*)
        names=$("$nm" -D --defined-only "$lib" | awk 'NF == 3 { print $3 }' |
            sort -u)
        extra=$(printf '%s\n' "$names" | grep -v -x -F "$api" || true)
        missing=$(printf '%s\n' "$api" | grep -v -x -F "$names" || true)
        if [ -n "$extra$missing" ]; then
            echo "symbols: $lib exports other than the API:" >&2
            [ -z "$extra" ] || printf '  extra: %s\n' $extra >&2
            [ -z "$missing" ] || printf '  missing: %s\n' $missing >&2
            bad=1
        else
            echo "symbols: $lib exports the $(printf '%s\n' "$api" | wc -l) API functions, nothing else"
        fi
        ;;
    *)
        # Names with two leading underscores are the implementation's
        # (a sanitizer's __odr_asan.NAME), which no program may define.
        names=$("$nm" -g --defined-only "$lib" | awk 'NF == 3 { print $3 }' |
            grep -v -e '^ekv_' -e '^ekvi_' -e '^__' | sort -u) || true
        if [ -n "$names" ]; then
            echo "symbols: $lib defines global names outside ekv_/ekvi_:" >&2
            printf '  %s\n' $names >&2
            bad=1
        else
            echo "symbols: $lib: every global name is ekv_ or ekvi_"
        fi
        ;;
    esac
done
exit $bad
