#!/usr/bin/env bash
# Installs with apt-get everything the project needs on Debian 12, as root.
#   tests/install-deps.sh          build + demo (compiler, Meson, libfuse3, jansson)
#   tests/install-deps.sh --all    also everything the test suite, proof
#                                  and firmware scripts run (check, jq,
#                                  make, strace, clang/libFuzzer, valgrind,
#                                  cppcheck, arm-none-eabi-gcc, zlib for the
#                                  benchmark's baseline, ...)
set -euo pipefail

demo=(gcc meson ninja-build pkg-config libfuse3-dev fuse3 libjansson-dev bash-completion python3 util-linux)
# Every command a test runs, essential packages included (coreutils:
# timeout, truncate, du, stat, sha256sum, mkfifo; diffutils: cmp), so the
# list is complete on a minimal image too.
all=(check jq make strace coreutils diffutils sed mawk
     libjansson-dev bash-completion
     clang libclang-rt-14-dev valgrind cppcheck clang-tidy
     gcc-arm-none-eabi libnewlib-arm-none-eabi binutils-arm-none-eabi man-db
     groff-base zlib1g-dev rsync)

want=("${demo[@]}")
[ "${1:-}" = "--all" ] && want+=("${all[@]}")

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#want[@]} packages present"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: need root to install: ${missing[*]}" >&2
    exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
