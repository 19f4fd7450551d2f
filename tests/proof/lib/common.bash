# common.bash - shared by the tests/proof/*.sh scripts (sourced, not run).
# Each script takes the repository root as its only argument (default: two
# levels above the script), builds in its own build-* directory, prints
# what it proves and its numbers, and exits non-zero on any failure.

set -uo pipefail

proof_root() {
    local root=${1:-}
    if [ -z "$root" ]; then
        root=$(cd "$(dirname "${BASH_SOURCE[1]}")/../.." && pwd)
    fi
    cd "$root" || { echo "no such directory: $root" >&2; exit 2; }
    if [ ! -f meson.build ] || [ ! -d src/core ]; then
        echo "$root is not the embedkv repository" >&2
        exit 2
    fi
    pwd
}

# need CMD PACKAGE: make sure a tool is there (installed when we are root
# on Debian, as CI is; otherwise a clear message).
need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing $2 for $1"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null \
            && command -v "$1" >/dev/null 2>&1 && return 0
    fi
    echo "missing tool: $1 (Debian package $2)" >&2
    exit 2
}

# Seconds since the script started, for the summary.
elapsed() { echo "$SECONDS"; }

# Run a step quietly into a log; print the log's tail if it fails.
quiet() {
    local log=$1; shift
    if ! "$@" >"$log" 2>&1; then
        echo "FAILED: $*" >&2
        tail -n 60 "$log" >&2
        return 1
    fi
}

# logfile BUILD_DIR: where a build's log goes (build-logs/ is ignored by
# git like every build-* directory).
logfile() {
    mkdir -p "$root/build-logs"
    echo "$root/build-logs/$(basename "$1").log"
}
