#!/usr/bin/env python3
"""test_names_model.py - the FUSE tests' model of key names against the tool.

tests/fuse/fuselib.py has escape_key, the test side's own statement of how
a key becomes a file name; the FUSE tests use it to predict what a mount
lists. Here it is held against what embedkvfs itself prints (`ls --json`,
the names the mount shows, from src/tool/names.c) for a set of keys chosen
to hit every rule: every single byte, every escaped code point and its
neighbours, broken and overlong UTF-8, the dot names, and long keys whose
shortened names are cut next to a %XX escape or inside a multi-byte
character. Any difference fails, naming the key, so the model and the
tool cannot drift apart again.

Run as: test_names_model.py EMBEDKVFS
"""

import base64
import json
import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "fuse"))
import fuselib  # noqa: E402

BLOCK_SIZE = 1024
MAX_KEY = BLOCK_SIZE - 36


def tricky_keys():
    keys = set()
    # Every single byte, and each inside text (a byte alone and between
    # ASCII can be judged differently).
    for b in range(256):
        keys.add(bytes([b]))
        keys.add(b"a" + bytes([b]) + b"z")
    # Every code point of the BMP and of plane 1, and the end of the last
    # plane, 24 to a key (escaping is per character, so packing them
    # loses nothing, and the escaped name stays below 255 bytes). The
    # sweep does not use the model's list of escaped code points: a range
    # the model forgot is found too.
    sweep = [cp for cp in range(0x80, 0x20000)
             if not 0xD800 <= cp <= 0xDFFF]
    sweep += list(range(0x10FF00, 0x110000))
    for i in range(0, len(sweep), 24):
        keys.add("".join(chr(cp) for cp in sweep[i:i + 24]).encode())
    # The escaped ones alone and between ASCII, too.
    for cp in [0x80, 0x9B, 0x9F, 0x61C, 0x200B, 0x200E, 0x200F, 0x2028,
               0x202E, 0x2060, 0x2066, 0x2069, 0x206F, 0xFEFF, 0xFFF9,
               0xFFFB]:
        keys.add(chr(cp).encode())
        keys.add(b"x" + chr(cp).encode() + b"y")
    # Visible non-ASCII that must stay as it is.
    for c in ["\u00e9", "\u00a0", "\u00ad", "\u05d0", "\u0627",
              "\u200a", "\u200c", "\u200d", "\u2030", "\u205f", "\u2070",
              "\u65e5\u672c", "\ufeff\ufeff", "\ufffd", "\U0001f600",
              "\U0010ffff", "\u0300"]:
        keys.add(c.encode())
        keys.add(b"k" + c.encode())
    # UTF-8 that is not valid: overlong, surrogates, beyond U+10FFFF,
    # truncated, stray continuation bytes, bytes that never start one.
    for b in [b"\xc0\xaf", b"\xc1\xbf", b"\xe0\x80\xaf", b"\xe0\x9f\xbf",
              b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf0\x80\x80\xaf",
              b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xff\xfe",
              b"\xe2\x80", b"\xe2", b"\xf0\x9f\x98", b"\x80", b"\xbf\xbf",
              b"\xc2", b"\xc2\x80\x80", b"\xe2\x80\xaeok", b"ok\xe2\x80"]:
        keys.add(b)
        keys.add(b"p" + b + b"q")
    # Names with a meaning of their own.
    keys.update([b"", b".", b"..", b"...", b"%", b"%%", b"%2E", b"%2E%2E",
                 b"%25", b"/", b"a/b", b"./", b"/..", b".hidden", b"-",
                 b"--", b"%#0123456789ABCDEF", b" ", b"trailing "])
    # Long keys: the shortened name is cut at byte 200 or just before it,
    # never inside a %XX escape or a UTF-8 character.
    for pad in range(195, 206):
        keys.add(b"x" * pad + b"\x01" * 30)
        keys.add(b"x" * pad + "\u00e9".encode() * 40)
        keys.add(b"x" * pad + "\U0001f600".encode() * 20)
        keys.add(b"x" * pad + "\u202e".encode() * 20)
        keys.add(b"x" * pad + "\u65e5".encode() * 30)
    for n in [85, 86, 255, 256, 300, MAX_KEY]:
        keys.add(b"y" * n)
        keys.add(b"\x01" * min(n, MAX_KEY))
        keys.add(("\u00e9" * n).encode()[:MAX_KEY])
    # Random mixtures of the interesting pieces (a fixed seed: the same
    # keys every run).
    pieces = [b"a", b"/", b"%", b".", b"\x00", b"\x1b", b"\x7f", b"\x80",
              b"\xff", "\u00e9".encode(), "\u009b".encode(),
              "\u202e".encode(), "\u2066".encode(), "\ufeff".encode(),
              "\U0001f600".encode(), b"\xe2\x80", b"\xed\xa0\x80"]
    rnd = random.Random(20261202)
    for _ in range(400):
        k = b"".join(rnd.choice(pieces)
                     for _ in range(rnd.choice([1, 2, 3, 8, 60, 120])))
        keys.add(k[:MAX_KEY])
    return sorted(keys)


def short(text, n=100):
    return text if len(text) <= n else text[:n] + "..."


def where(got, want):
    """Where two names first differ, with a little context."""
    i = 0
    while i < min(len(got), len(want)) and got[i] == want[i]:
        i += 1
    lo = max(i - 12, 0)
    return " (byte %d: %r vs %r)" % (i, got[lo:i + 24], want[lo:i + 24])


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    ekv = os.path.abspath(argv[1])
    keys = tricky_keys()
    failures = []
    with tempfile.TemporaryDirectory(prefix="ekv-names.") as d:
        img = os.path.join(d, "k.img")
        doc = os.path.join(d, "keys.json")
        with open(doc, "w") as f:
            json.dump({"format": "embedkv-export-1",
                       "keys": [{"key_base64": base64.b64encode(k).decode(),
                                 "value": ""} for k in keys]}, f)
        blocks = 2 * len(keys) + 64
        for args in (["format", "--block-size", str(BLOCK_SIZE), "--blocks",
                      str(blocks), img],
                     ["import", "-f", doc, img]):
            p = subprocess.run([ekv] + args, capture_output=True, text=True)
            if p.returncode != 0:
                print("FAIL: embedkvfs %s: exit %d: %s" % (
                    " ".join(args), p.returncode, p.stderr))
                return 1
        p = subprocess.run([ekv, "ls", "--json", img], capture_output=True)
        if p.returncode != 0:
            print("FAIL: embedkvfs ls --json: exit %d: %s" % (
                p.returncode, p.stderr.decode(errors="replace")))
            return 1
        listed = json.loads(p.stdout)["keys"]
        # The plain listing is the same names, one per line.
        p = subprocess.run([ekv, "ls", img], capture_output=True)
        plain = p.stdout.split(b"\n")[:-1]
    got = {bytes.fromhex(e["key_hex"]): e["name"].encode() for e in listed}
    if sorted(got) != keys:
        missing = [k for k in keys if k not in got]
        print("FAIL: ls lists %d keys, %d were stored; missing e.g. %r" % (
            len(got), len(keys), missing[:5]))
        return 1
    if plain != [got[k] for k in keys]:
        print("FAIL: ls and ls --json name the keys differently")
        return 1
    for k in keys:
        want = fuselib.escape_key(k)
        if got[k] != want:
            failures.append("key %s: embedkvfs names it %s, fuselib.escape_key"
                            " %s" % (short(k.hex()), short(repr(got[k])),
                                     short(repr(want))) + where(got[k], want))
    names = set(got.values())
    if len(names) != len(keys):
        failures.append("two keys share a name")
    for f in failures[:20]:
        print("FAIL: " + f)
    if failures:
        print("FAIL: %d of %d keys named differently" % (len(failures),
                                                         len(keys)))
        return 1
    print("ok: fuselib.escape_key matches embedkvfs for %d keys" % len(keys))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
