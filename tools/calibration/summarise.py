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
  there; below it the window can only show larger effects);
- one operator alone (`--operator NAME`, default outlier_replication): per
  table and batch size, the share of each batch kind that this operator
  failed, and the median effect limit and noise allowance of fresh batches.

Usage: python summarise.py DIR [--operator NAME] [TABLE ...]
"""

import json
import os
import re
import sys

RESULT = re.compile(
    r"^\s*n=(\d+)\s+(\w+)\s+failed\s+(\d+) of\s+(\d+)\s+\(\s*([\d.]+)%\)"
    r".*\[(.*)\]\s*$")
ALLOWANCE = re.compile(r"median noise allowance / effect limit: (.*)$")
BAD = ["copy5", "copy50", "noise", "shuffled", "correlation_only",
       "subgroup_collapse", "clamped"]


def parse(path):
    """{size: {kind: (failed, runs)}}, {size: {operator: (allowance, limit)}}
    and {size: {kind: {operator: percent failed}}}."""
    results, allowances, by_operator = {}, {}, {}
    size = None
    with open(path) as f:
        for line in f:
            m = RESULT.match(line)
            if m:
                size = int(m.group(1))
                results.setdefault(size, {})[m.group(2)] = (
                    int(m.group(3)), int(m.group(4)))
                ops = {}
                for part in filter(None, m.group(6).split(", ")):
                    name, share = part.rsplit(" ", 1)
                    ops[name] = float(share.rstrip("%"))
                by_operator.setdefault(size, {})[m.group(2)] = ops
                continue
            m = ALLOWANCE.search(line)
            if m and size is not None:
                ops = {}
                for part in m.group(1).split(", "):
                    name, values = part.split(" ")
                    allowance, limit = values.split("/")
                    ops[name] = (float(allowance), float(limit))
                allowances[size] = ops
    return results, allowances, by_operator


def pct(failed, runs):
    return f"{100.0 * failed / runs:.0f} % ({failed}/{runs})"


def main():
    root = sys.argv[1]
    rest = sys.argv[2:]
    operator = "outlier_replication"
    if rest[:1] == ["--operator"]:
        operator, rest = rest[1], rest[2:]
    tables = rest or sorted(
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

    # Exact per-operator counts from result.json where run.sh wrote it.
    counts = {}
    for t in tables:
        path = os.path.join(root, t, "result.json")
        if os.path.exists(path):
            with open(path) as f:
                counts[t] = json.load(f)
    print()
    kinds = ["fresh", "bootstrap"] + BAD
    print(f"`{operator}` alone (effect limit and noise allowance: medians over "
          "fresh batches):")
    print()
    print("| table | batch rows | runs | " + " | ".join(kinds)
          + " | effect limit | noise allowance |")
    print("|---|---|---|" + "---|" * (len(kinds) + 2))
    for t in tables:
        results, allowances, by_operator = parsed[t]
        for size, kinds_run in sorted(results.items()):
            runs = kinds_run.get("fresh", (0, 0))[1]
            cells = []
            for k in kinds:
                if k not in kinds_run:
                    cells.append("–")
                    continue
                n = kinds_run[k][1]
                exact = counts.get(t, {}).get(f"{size}/{k}")
                if exact is not None:
                    failed = exact["by_operator"].get(operator, 0)
                    share = 100.0 * failed / max(exact["runs"], 1)
                else:  # the printed, rounded share
                    share = by_operator[size][k].get(operator, 0.0)
                    failed = round(share * n / 100)
                cells.append(f"{share:.0f} % ({failed}/{n})"
                             if k in ("fresh", "bootstrap") else f"{share:.0f} %")
            a, limit = allowances.get(size, {}).get(operator, (float("nan"),) * 2)
            print(f"| {t} | {size} | {runs} | {' | '.join(cells)} | "
                  f"{limit:.4f} | {a:.4f} |")


if __name__ == "__main__":
    main()
