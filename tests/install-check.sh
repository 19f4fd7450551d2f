#!/usr/bin/env bash
# Installs a build into a scratch prefix and builds a program against it
# with pkg-config, shared and static: proves `meson install` ships what a
# user of the library needs (headers, libembedkv.pc, both libraries, man
# pages, embedkvfs).
#   tests/install-check.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: install-check.sh BUILD_DIR}
dest=$(mktemp -d /tmp/ekv-install.XXXXXX)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest" >/dev/null
prefix=$(meson introspect "$build" --buildoptions |
         python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
root=$dest$prefix
pc=$(dirname "$(find "$root" -name libembedkv.pc | head -n1)")
[ -n "$pc" ] || { echo "install-check: no libembedkv.pc installed" >&2; exit 1; }
for f in include/embedkv.h include/embedkv_file.h bin/embedkvfs \
         share/man/man1/embedkvfs.1 share/man/man3/libembedkv.3 \
         share/bash-completion/completions/embedkvfs; do
    [ -e "$root/$f" ] || { echo "install-check: $f not installed" >&2; exit 1; }
done
cat > "$dest/use.c" <<'C'
#include <embedkv.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    static unsigned char mem[64 * 256];
    ekv_device d, *dp = &d;
    ekv_store *s;
    char buf[16];
    size_t len;
    if (ekv_mem_device_init(&d, mem, 256, 64) || ekv_format(&dp, 1, NULL) ||
        ekv_open(&s, &dp, 1, NULL) || ekv_put(s, "k", 1, "installed", 9) ||
        ekv_get(s, "k", 1, buf, sizeof(buf), &len) || len != 9 ||
        memcmp(buf, "installed", 9))
        return 1;
    ekv_close(s);
    puts("install-check: program built against the installed library works");
    return 0;
}
C
# The .pc file names the final prefix: point it at the scratch copy.
sed "s|^prefix=.*|prefix=$root|" "$pc/libembedkv.pc" > "$dest/libembedkv.pc"
export PKG_CONFIG_PATH=$dest
cc "$dest/use.c" -o "$dest/use-shared" $(pkg-config --cflags --libs libembedkv)
LD_LIBRARY_PATH=$(pkg-config --variable=libdir libembedkv) "$dest/use-shared"
cc "$dest/use.c" -o "$dest/use-static" $(pkg-config --cflags libembedkv) \
    "$(pkg-config --variable=libdir libembedkv)/libembedkv.a"
"$dest/use-static"
