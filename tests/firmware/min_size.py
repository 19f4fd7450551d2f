#!/usr/bin/env python3
"""min_size.py ELF [--platform SYMBOL...] - the minimal-application
footprint of issue 11.

Prints "CODE DATA DIVHELPERS" for the linked min_app.elf. CODE is the size
of every code and read-only data symbol (nm types T, t, W, R, r) linked,
except the application's own (app_*) and the C library's memcpy, memset
and memcmp (min_app.c supplies them); a code symbol without a size (an
assembly helper from libgcc) counts up to the next symbol. DATA is the same
for data and bss (D, d, B, b). DIVHELPERS names the libgcc division helpers
linked, or "none". --platform names further symbols the application
supplies (ekv_crc32 in an EKV_CRC_EXTERN build), left out as its own.
"""
import re
import subprocess
import sys

APP = re.compile(r"^(app_|memcpy$|memset$|memcmp$)")
DIV = re.compile(r"^(__(u)?(div|mod)(di|si)3|__(u)?divmod(di|si)4|"
                 r"__aeabi_(u)?(l|i)div(mod)?|__aeabi_(l|i)div0)$")


def main():
    platform = set(sys.argv[3:]) if sys.argv[2:3] == ["--platform"] else set()
    out = subprocess.run(["arm-none-eabi-nm", "-n", "-S", sys.argv[1]],
                         check=True, capture_output=True, text=True).stdout
    syms = []
    for line in out.splitlines():
        f = line.split()
        if len(f) == 4:
            syms.append((int(f[0], 16), int(f[1], 16), f[2], f[3]))
        elif len(f) == 3:
            syms.append((int(f[0], 16), None, f[1], f[2]))
    code = data = 0
    div = set()
    for i, (addr, size, kind, name) in enumerate(syms):
        if DIV.match(name):
            div.add(name)
        if APP.match(name) or name in platform:
            continue
        if size is None:
            if kind not in "Tt":
                continue  # linker-defined markers
            later = [a for a, _, _, _ in syms[i + 1:] if a > addr]
            size = (later[0] - addr) if later else 0
        if kind in "TtRrWw":
            code += size
        elif kind in "DdBb":
            data += size
    print(code, data, ",".join(sorted(div)) or "none")


if __name__ == "__main__":
    main()
