#!/usr/bin/env bash
# static.sh ROOT - static analysis of src/: cppcheck over all of it
# (warning, portability, performance), and clang-tidy (the clang static
# analyzer plus the bugprone checks) over the library (src/core,
# src/posix). Both must be clean. clang-tidy's findings in the tool
# (src/tool) are printed for its owners but fail only with STRICT=1: the
# analyzer's va_list checks misfire on glibc there.
source "$(dirname "$0")/lib/common.bash"
root=$(proof_root "${1:-}") || exit 2
need cppcheck cppcheck
need clang-tidy clang-tidy
need meson meson
bdir=$root/build-static
fail=0

echo "static: cppcheck on src/"
if ! cppcheck --quiet --enable=warning,portability,performance --std=c11 \
        --error-exitcode=1 --inline-suppr -I include -I src/core -I src/tool \
        --suppress=missingIncludeSystem src/ 2>&1; then
    echo "static: cppcheck found problems"
    fail=1
else
    echo "static: cppcheck clean"
fi

# compile_commands.json for clang-tidy (configure only, no build).
if [ ! -f "$bdir/compile_commands.json" ]; then
    CC=clang quiet "$(logfile "$bdir")" meson setup "$bdir" -Dbench=false || exit 1
fi
checks='-*,clang-analyzer-*,-clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling'
checks+=',bugprone-*,-bugprone-easily-swappable-parameters'
checks+=',-bugprone-reserved-identifier,-bugprone-narrowing-conversions'
# Style rather than bugs in this code base: multiplications of small
# constants, memcmp used as a boolean, the 3-byte magic copied unterminated.
checks+=',-bugprone-implicit-widening-of-multiplication-result'
checks+=',-bugprone-suspicious-string-compare,-bugprone-not-null-terminated-result'

# tidy [EXTRA_ARG] FILE...: one file per process, two at a time.
tidy() {
    local extra=$1; shift
    printf '%s\n' "$@" |
        xargs -P 2 -I{} clang-tidy -p "$bdir" --quiet --checks="$checks" \
            ${extra:+--extra-arg=$extra} {} 2>&1 |
        grep -E '^[^ ].*(warning|error):' || true
}
lib_files=$(ls src/core/*.c src/posix/*.c)
# Both index modes: the scanning core is compiled with -DEKV_NO_INDEX.
out=$(tidy '' $lib_files; tidy -DEKV_NO_INDEX $lib_files)
if [ -n "$out" ]; then
    echo "$out" | sort -u
    echo "static: clang-tidy found problems in the library"
    fail=1
else
    echo "static: clang-tidy clean on src/core and src/posix (both index modes)"
fi
tool_out=$(tidy '' src/tool/*.c)
if [ -n "$tool_out" ]; then
    echo "static: clang-tidy notes on src/tool (for its owners):"
    echo "$tool_out" | sort -u | sed 's/^/  /'
    [ "${STRICT:-0}" = 1 ] && fail=1
fi
echo "static: done in $SECONDS s"
[ $fail -eq 0 ] && echo "static: clean" || echo "static: FAILED"
exit $fail
