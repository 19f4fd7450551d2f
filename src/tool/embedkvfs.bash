# bash completion for embedkvfs (installed by meson install into
# bash-completion's completions directory; see embedkvfs(1)).

_embedkvfs()
{
    local cur prev cmd
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    local commands="mount format ls get put rm check repair dump locate
        export import extract diff help"
    local window="--offset --length" wait="--wait --no-wait"

    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "$commands --help --version" -- "$cur"))
        return
    fi
    cmd=${COMP_WORDS[1]}

    case $prev in
    --offset|--length|--block-size|-b|--blocks|--size|--wait)
        return ;;   # a number
    -k|--key)
        return ;;   # a key
    --erase-byte)
        COMPREPLY=($(compgen -W "00 ff" -- "$cur")); return ;;
    --from|-f|--file)
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$cur")); return ;;
    -o)
        COMPREPLY=($(compgen -W "ro rw degraded nosync xattr uid= gid=
            umask= offset= length= allow_other" -- "$cur"))
        compopt -o nospace 2>/dev/null
        return ;;
    esac

    local opts
    case $cmd in
    mount)   opts="-f -d -s -o --help"; wait= ;;
    format)  opts="--block-size --blocks --size --erase-byte --keep-data
                   --force --from --help"; wait= ;;
    ls)      opts="-l --long --json --help" ;;
    get|rm)  opts="-e -x -k --escaped --hex --key --help" ;;
    put)     opts="-e -x -k -f --escaped --hex --key --file --help" ;;
    check)   opts="--json --help" ;;
    repair)  opts="--force --json --help" ;;
    dump)    opts="-b --block-size --json --help" ;;
    locate)  opts="--json --help"; window=; wait= ;;
    export)  opts="--help" ;;
    import)  opts="--replace -f --file --help" ;;
    extract) opts="--force --help" ;;
    diff)    opts="--json --help" ;;
    *)       opts=; wait= ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts $window $wait" -- "$cur"))
        return
    fi
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -f -- "$cur"))
}
complete -F _embedkvfs embedkvfs
