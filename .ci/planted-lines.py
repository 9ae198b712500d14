#!/usr/bin/env python3
"""Prints a regex matching the cargo-mutants names of mutants on lines compiled only with
cfg(raft_planted) (the planted bugs' hooks, raft-core/PLANTED-BUGS.md): a normal build has no
such code, so a mutant there changes nothing that a test could see.

Usage: .ci/planted-lines.py raft-core/src  ->  ^(raft-core/src/a\\.rs:(12|13)|...):
"""
import os
import re
import sys


def hook_lines(lines):
    """Line numbers (1-based) of each statement or block right after #[cfg(raft_planted)]."""
    out = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "#[cfg(raft_planted)]":
            depth = 0
            j = i + 1
            while j < len(lines):
                code = lines[j].split("//")[0]
                depth += code.count("{") + code.count("(") - code.count("}") - code.count(")")
                out.append(j + 1)
                end = code.rstrip()
                if depth <= 0 and (end.endswith(";") or end.endswith("}")):
                    break
                j += 1
            i = j
        i += 1
    return out


def main():
    root = sys.argv[1]
    alts = []
    for dirpath, _, files in os.walk(root):
        for name in sorted(files):
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            with open(path, encoding="utf-8") as f:
                nums = hook_lines(f.read().split("\n"))
            if nums:
                alts.append(re.escape(path) + ":(" + "|".join(map(str, nums)) + ")")
    print("^(" + "|".join(alts) + "):" if alts else "^$never")


if __name__ == "__main__":
    main()
