#!/usr/bin/env python3
"""Import circles between a crate's top-level modules (ARCHITECTURE.md, "Code layout").

    .ci/modgraph.py SRC_DIR [SRC_DIR ...]

An edge m -> d is any `crate::d` path in module m (a file `m.rs`, or a directory `m/`), test
modules excepted; a circle is a strongly connected set of two or more modules. Prints each
circle with its edges; exits 1 if there is any.
"""
import os, re, sys


def circles(src):
    mods = {}
    for f in sorted(os.listdir(src)):
        p = os.path.join(src, f)
        if f.endswith('.rs') and f not in ('lib.rs',):
            mods[f[:-3]] = open(p).read()
        elif os.path.isdir(p) and os.path.exists(os.path.join(p, 'mod.rs')):
            mods[f] = ''.join(open(os.path.join(dp, x)).read() for dp, _, fs in os.walk(p) for x in fs if x.endswith('.rs'))
    edges = {m: set() for m in mods}
    for m, text in mods.items():
        text = re.sub(r'#\[cfg\(test\)\]\s*mod tests\s*\{.*', '', text, flags=re.S)
        for dep in re.findall(r'crate::(\w+)', text):
            if dep in mods and dep != m:
                edges[m].add(dep)
    idx, low, on, st, out, n = {}, {}, set(), [], [], [0]
    def sc(v):
        idx[v] = low[v] = n[0]; n[0] += 1; st.append(v); on.add(v)
        for w in edges[v]:
            if w not in idx: sc(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], idx[w])
        if low[v] == idx[v]:
            c = []
            while True:
                w = st.pop(); on.discard(w); c.append(w)
                if w == v: break
            if len(c) > 1: out.append(sorted(c))
    for v in mods:
        if v not in idx: sc(v)
    print(f"{src}: {len(out)} import circle(s)")
    for c in out:
        print("  circle:", " <-> ".join(c), "| edges:", "; ".join(f"{a}->{b}" for a in c for b in sorted(edges[a]) if b in c))
    return len(out)


sys.setrecursionlimit(10000)
found = sum(circles(d) for d in sys.argv[1:])
sys.exit(1 if found else 0)
