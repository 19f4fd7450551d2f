#!/usr/bin/env bash
# Installs with apt-get everything the project needs on Debian 12, as root.
#   tests/install-deps.sh          build + demo (compiler, Meson, libfuse3)
#   tests/install-deps.sh --all    also the test suite, proof and firmware
#                                  tools (check, clang/libFuzzer, valgrind,
#                                  cppcheck, arm-none-eabi-gcc, jq)
set -euo pipefail

demo=(gcc meson ninja-build pkg-config libfuse3-dev fuse3 python3 util-linux)
all=(check jq clang libclang-rt-14-dev valgrind cppcheck clang-tidy
     gcc-arm-none-eabi libnewlib-arm-none-eabi binutils-arm-none-eabi man-db
     groff-base)
# The mount's tests: rsync -a onto a mount, fdatasync counted with strace.
all+=(rsync strace)

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
