# Every subcommand's --help lists every option the subcommand accepts.
#
# Which options exist comes from the code: the long options of every
# getopt_long table in src/tool/cli*.c (LOCK_WAIT_LONGOPTS included), the
# letters of their getopt_long strings, and the --offset/--length that
# main.c takes for every command (window.c). Which of them a command
# accepts is asked of the binary itself: an option it does not know is
# refused with "bad option '--X'" (or "unknown option '-X'"). Each
# accepted option must then appear in --help as an option line
# ("  -x, --name ARG   text"), not merely be mentioned in prose, and the
# bash completion (src/tool/embedkvfs.bash) must offer it.
#
# Run as: bash test_help.sh EMBEDKVFS TESTDATA_DIR TOOL_SOURCE_DIR
SRC=$(realpath "${3:?usage: test_help.sh EMBEDKVFS TESTDATA_DIR TOOL_SOURCE_DIR}")
. "$(dirname "$0")/lib.sh"

[ -f "$SRC/main.c" ] && [ -f "$SRC/cli.h" ] || fail "$SRC is not src/tool"
pass

# --- what the code says exists ------------------------------------------------
# The subcommands, from main.c's table (mount has its own -o syntax and
# help, tested with the mount).
cmds=$(grep -oE '\{"[a-z]+", cmd_[a-z]+' "$SRC/main.c" |
       sed -E 's/^\{"([a-z]+)".*/\1/' | grep -vx mount)
longs=$( { grep -ohE '\{"[a-z][a-z-]*", *(no|required|optional)_argument' \
               "$SRC"/cli*.c "$SRC/cli.h"
           grep -ohE '"--[a-z]+="' "$SRC/window.c"; } |
         sed -E 's/^\{?"(--)?([a-z-]+)=?".*/\2/' | sort -u)
shorts=$(grep -ohE 'getopt_long\(argc, argv, "[^"]*"' "$SRC"/cli*.c |
         sed -E 's/.*"([^"]*)"$/\1/' | tr -d ':\n' | fold -w1 | sort -u)

# The extraction itself must have worked, or the test would pass vacuously.
ncmds=$(echo "$cmds" | wc -w)
[ "$ncmds" -ge 13 ] || fail "found only $ncmds subcommands in main.c: $cmds"
pass
for o in help json wait no-wait offset length escaped hex key file force \
         block-size replace from long; do
    echo "$longs" | grep -qx -- "$o" ||
        fail "option --$o not found in the sources (extraction broken?)"
    pass
done
for o in h l e x k f b; do
    echo "$shorts" | grep -qx -- "$o" ||
        fail "option -$o not found in the getopt strings (extraction broken?)"
    pass
done

# --- which options a command accepts -----------------------------------------
# refused CMD OPTION-WORD ARG...: whether CMD refuses the option. Run with
# no image, in an empty directory, standard input empty: a command that
# knows the option stops at the next usage error without touching a file.
refused() {
    local cmd=$1 word=$2
    shift 2
    mkdir -p "$WORK/probe"
    (cd "$WORK/probe" && timeout 20 "$EKV" "$cmd" "$@" \
        </dev/null >"$WORK/out" 2>"$WORK/err")
    rc=$?
    [ "$rc" -ne 124 ] || fail "embedkvfs $cmd $*: hung"
    sanitizer_clean "$cmd" "$@"
    # Refused: unknown to getopt, a value it lacks (the other form gives
    # one), or the window options that locate turns down.
    grep -qF -- "option '$word" "$WORK/err" ||
        grep -qF -- "$word needs a value" "$WORK/err" ||
        grep -qF -- "--offset and --length do not apply" "$WORK/err"
}
accepts_long() { # CMD NAME: with a value, else without one
    ! refused "$1" "--$2" "--$2=1" || ! refused "$1" "--$2" "--$2"
}
accepts_short() { # CMD LETTER: with an attached value, else alone
    ! refused "$1" "-$2" "-${2}1" || ! refused "$1" "-$2" "-$2"
}

# listed HELP-FILE OPTION: OPTION heads an option line of the help, alone
# or in a list such as "  -e, --escaped" or "  --offset N, --length N".
listed() {
    grep -Eq -- "^ +(-[^ ,]+( [A-Z]+)?, )*$2( |=|,|$)" "$1"
}

# The bash completion offers the same options (the completions of "-").
[ -f "$SRC/embedkvfs.bash" ] || fail "no $SRC/embedkvfs.bash"
. "$SRC/embedkvfs.bash"
completes() { # CMD OPTION
    COMP_WORDS=(embedkvfs "$1" -); COMP_CWORD=2; COMPREPLY=()
    _embedkvfs
    [[ " ${COMPREPLY[*]} " == *" $2 "* ]]
}

for cmd in $cmds; do
    ekv "$cmd" --help
    expect_rc 0 "$cmd --help"
    cp "$WORK/out" "$WORK/help.$cmd"
    n=0
    for o in $longs; do
        accepts_long "$cmd" "$o" || continue
        n=$((n + 1))
        listed "$WORK/help.$cmd" "--$o" ||
            fail "$cmd accepts --$o but '$cmd --help' does not list it:
$(cat "$WORK/help.$cmd")"
        completes "$cmd" "--$o" ||
            fail "$cmd accepts --$o but the bash completion does not offer it"
        pass
    done
    for o in $shorts; do
        accepts_short "$cmd" "$o" || continue
        n=$((n + 1))
        listed "$WORK/help.$cmd" "-$o" ||
            fail "$cmd accepts -$o but '$cmd --help' does not list it:
$(cat "$WORK/help.$cmd")"
        [ "$o" = h ] || completes "$cmd" "-$o" ||
            fail "$cmd accepts -$o but the bash completion does not offer it"
        pass
    done
    [ "$n" -ge 2 ] || fail "$cmd: only $n options found accepted (probe broken?)"
    pass
done

# The probe tells accepted from refused options: spot checks both ways.
accepts_long ls wait || fail "probe: ls --wait not seen as accepted"
accepts_short ls l || fail "probe: ls -l not seen as accepted"
accepts_long get key || fail "probe: get --key (required value) not accepted"
accepts_long rm offset || fail "probe: rm --offset not seen as accepted"
accepts_long format wait && fail "probe: format --wait seen as accepted"
accepts_long locate offset && fail "probe: locate --offset seen as accepted"
accepts_short ls e && fail "probe: ls -e seen as accepted"
accepts_long ls file && fail "probe: ls --file seen as accepted"
pass

# --- the same option, the same words -----------------------------------------
# The lines of the shared options read the same in every help that has them.
for re in '^  --wait SECONDS ' '^  --no-wait ' '^  -h, --help '; do
    grep -hE -- "$re" "$WORK"/help.* | sort -u >"$WORK/variants"
    [ "$(wc -l <"$WORK/variants")" -eq 1 ] ||
        fail "/$re/ is worded differently across the helps: $(cat "$WORK/variants")"
    pass
done
grep -hE -A1 -- '^  --wait SECONDS ' "$WORK"/help.* | sort -u >"$WORK/variants"
[ "$(wc -l <"$WORK/variants")" -eq 3 ] || # the two lines and grep's "--"
    fail "--wait is explained differently across the helps: $(cat "$WORK/variants")"
pass

done_ok
