#!/usr/bin/env python3
"""Worst-case stack depth of each public ekv_* function, from GCC's
-fcallgraph-info=su output (.ci files, VCG graphs with each function's frame
size). Calls through function pointers (the device and allocator callbacks)
are not followed: the figure is the core's own stack, callbacks come on top.

usage: stack_depth.py CI_FILE...   prints "function bytes", deepest first
"""
import re
import sys

frames = {}   # function -> own frame bytes
edges = {}    # function -> callees
node_re = re.compile(r'node:\s*\{\s*title:\s*"([^"]+)"\s*label:\s*"([^"]*)"')
edge_re = re.compile(r'edge:\s*\{\s*sourcename:\s*"([^"]+)"\s*targetname:\s*"([^"]+)"')

for path in sys.argv[1:]:
    text = open(path).read()
    for title, label in node_re.findall(text):
        m = re.search(r'\\n(\d+) bytes', label)
        frames[title] = max(frames.get(title, 0), int(m.group(1)) if m else 0)
    for src, dst in edge_re.findall(text):
        edges.setdefault(src, set()).add(dst)


def resolve(name):
    """Edges may name a static function with or without its file prefix."""
    if name in frames:
        return name
    for t in frames:
        if t.endswith(":" + name):
            return t
    return name


memo = {}


def depth(fn, seen=()):
    if fn in memo:
        return memo[fn]
    if fn in seen:
        raise SystemExit("recursion through " + fn)
    best = 0
    for callee in edges.get(fn, ()):
        best = max(best, depth(resolve(callee), seen + (fn,)))
    memo[fn] = frames.get(fn, 0) + best
    return memo[fn]


public = sorted((t for t in frames if re.fullmatch(r"ekv_\w+", t.split(":")[-1])),
                key=lambda t: -depth(t))
for t in public:
    print("%-28s %6d" % (t.split(":")[-1], depth(t)))
