#!/usr/bin/env python3
"""Summarise gate_calibration runs into the README's tables.

Reads DIR/<table>/out.txt (what examples/gate_calibration prints; run.sh
writes it) for every table under DIR and prints three Markdown tables:
- false fails: the share of fresh and bootstrap batches that failed, per
  table and batch size, with the number of runs;
- power: the share of each deliberately bad batch kind that failed;
- what a window can prove: per operator, the smallest batch size at which
  the median noise allowance of fresh batches is at most the effect limit
  (from that size on a threshold-size effect is caught whenever it is
  there; below it the window can only show larger effects).

Usage: python summarise.py DIR [TABLE ...]
"""

import os
import re
import sys

RESULT = re.compile(
    r"^\s*n=(\d+)\s+(\w+)\s+failed\s+(\d+) of\s+(\d+)\s+\(\s*([\d.]+)%\)")
ALLOWANCE = re.compile(r"median noise allowance / effect limit: (.*)$")
BAD = ["copy5", "copy50", "noise", "shuffled", "correlation_only",
       "subgroup_collapse"]


def parse(path):
    """{size: {kind: (failed, runs)}} and {size: {operator: (allowance, limit)}}."""
    results, allowances = {}, {}
    size = None
    with open(path) as f:
        for line in f:
            m = RESULT.match(line)
            if m:
                size = int(m.group(1))
                results.setdefault(size, {})[m.group(2)] = (
                    int(m.group(3)), int(m.group(4)))
                continue
            m = ALLOWANCE.search(line)
            if m and size is not None:
                ops = {}
                for part in m.group(1).split(", "):
                    name, values = part.split(" ")
                    allowance, limit = values.split("/")
                    ops[name] = (float(allowance), float(limit))
                allowances[size] = ops
    return results, allowances


def pct(failed, runs):
    return f"{100.0 * failed / runs:.0f} % ({failed}/{runs})"


def main():
    root = sys.argv[1]
    tables = sys.argv[2:] or sorted(
        t for t in os.listdir(root)
        if os.path.exists(os.path.join(root, t, "out.txt")))
    parsed = {t: parse(os.path.join(root, t, "out.txt")) for t in tables}

    print("| table | batch rows | fresh fails | bootstrap fails |")
    print("|---|---|---|---|")
    for t in tables:
        for size, kinds in sorted(parsed[t][0].items()):
            cells = [pct(*kinds[k]) if k in kinds else "–"
                     for k in ("fresh", "bootstrap")]
            print(f"| {t} | {size} | {' | '.join(cells)} |")

    print()
    print("| table | batch rows | " + " | ".join(BAD) + " |")
    print("|---|---|" + "---|" * len(BAD))
    for t in tables:
        for size, kinds in sorted(parsed[t][0].items()):
            cells = [f"{100.0 * kinds[k][0] / kinds[k][1]:.0f} %"
                     if k in kinds else "–" for k in BAD]
            print(f"| {t} | {size} | {' | '.join(cells)} |")

    print()
    operators = sorted({op for t in tables for ops in parsed[t][1].values()
                        for op in ops})
    print("| operator | " + " | ".join(tables) + " |")
    print("|---|" + "---|" * len(tables))
    for op in operators:
        cells = []
        for t in tables:
            sizes = sorted(s for s, ops in parsed[t][1].items() if op in ops)
            if not sizes:
                cells.append("–")
                continue
            proven = [s for s in sizes
                      if parsed[t][1][s][op][0] <= parsed[t][1][s][op][1]]
            if proven:
                cells.append(f"{proven[0]}")
            else:
                a, limit = parsed[t][1][sizes[-1]][op]
                cells.append(f"> {sizes[-1]} ({a:.2f} vs {limit:.2f})")
        print(f"| `{op}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
