#!/usr/bin/env python3
"""Time SDMetrics and Anonymeter on the tables our gate was timed on, and
print the ratio of their time to ours.

Called by ``cargo run --release --example gate_bench -- compare DIR``, which
times our full gate, writes ``train.csv``, ``holdout.csv``, ``synthetic.csv``,
``metadata.json`` and ``ours_timing.json`` into DIR and then runs this script
with ``RESYNTH_PYTHON``. What is timed, on the same files:

- SDMetrics ``QualityReport.generate`` (real = train, synthetic);
- SDMetrics ``DCROverfittingProtection.compute_breakdown`` with its defaults
  (every row, no subsampling), train / synthetic / holdout;
- Anonymeter's ``SinglingOutEvaluator`` (multivariate, 3 columns,
  ``max_attempts`` = 100 per wanted query, as our gate tries),
  ``LinkabilityEvaluator`` (the quasi-identifiers split in halves, 1
  neighbour) and one ``InferenceEvaluator`` per sensitive column, each with
  our gate's ``anonymeter_n_attacks`` targets and ``n_jobs=2``.

Some of these cannot finish on 50 000 rows in a few minutes (the DCR metric
cross-joins every synthetic row with every real row in pandas). Each is
first run small (a pilot); then, cheapest first, each runs in full if its
estimate fits an equal share of what is left of the ``--budget`` (default
600 s), else on a subsample sized to that share, and its full-size time is
extrapolated:

- every knob here (rows for the QualityReport, synthetic rows for the DCR
  metric, attacks for Anonymeter) enters the cost linearly, so the time is
  modelled as ``a + b · knob``, fitted through the pilot and the larger run
  (a fixed setup cost is not scaled up), or ``t · full / knob`` when only
  the pilot ran (an upper estimate when there is a setup cost);
- every subsample and extrapolation is printed.

Import time and a tiny warm-up call (numba / polars compilation) are not
counted. Wall times; the machine's load average is printed with them,
since the two-core budget is shared.

Usage:
    python tools/crosscheck/reference_timing.py DIR --ours DIR/ours_timing.json \\
        [--budget 600]
"""

import argparse
import json
import os
import sys
import time
import warnings

import pandas as pd
from anonymeter.evaluators import (
    InferenceEvaluator,
    LinkabilityEvaluator,
    SinglingOutEvaluator,
)
from sdmetrics.reports.single_table import QualityReport
from sdmetrics.single_table.privacy import DCROverfittingProtection

ATTEMPTS_PER_QUERY = 100  # our gate's singling-out attempts per wanted predicate


def read_tables(directory):
    with open(os.path.join(directory, "metadata.json")) as f:
        metadata = json.load(f)
    names = list(metadata["columns"])
    dtypes = {
        n: (float if m["sdtype"] == "numerical" else "object")
        for n, m in metadata["columns"].items()
    }

    def read(name):
        # Only empty fields are missing, as in sdmetrics_check.py.
        return pd.read_csv(
            os.path.join(directory, f"{name}.csv"),
            dtype=dtypes,
            keep_default_na=False,
            na_values=[""],
        )[names]

    return read("train"), read("holdout"), read("synthetic"), metadata


class Component:
    """One reference computation with a knob that its cost is linear in."""

    def __init__(self, name, knob_name, full, pilot, run, same_work_as_ours=None):
        self.name = name
        self.knob_name = knob_name
        self.full = full
        self.pilot = min(pilot, full)
        self.run = run  # run(knob) -> None
        self.same_work_as_ours = same_work_as_ours
        self.measured = []  # (knob, seconds)

    def time(self, knob):
        start = time.perf_counter()
        self.run(knob)
        seconds = time.perf_counter() - start
        self.measured.append((knob, seconds))
        print(
            f"  {self.name}: {self.knob_name} = {knob:,} → {seconds:.1f} s "
            f"(load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        return seconds

    def estimate(self, knob):
        """Seconds at ``knob`` from the measurements (exact if measured)."""
        for k, t in self.measured:
            if k == knob:
                return t
        (k1, t1), (k2, t2) = self.measured[0], self.measured[-1]
        if k2 > k1 and t2 > t1:
            b = (t2 - t1) / (k2 - k1)
            return t2 + b * (knob - k2)
        return t2 * knob / k2

    def how(self):
        largest = max(k for k, _ in self.measured)
        if largest >= self.full:
            return "measured in full"
        fit = "a + b·knob through pilot and run" if len(self.measured) > 1 else "linear from the pilot"
        return f"extrapolated from {self.knob_name} = {largest:,} ({fit})"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dir")
    p.add_argument("--ours", required=True, help="ours_timing.json from gate_bench compare")
    p.add_argument("--budget", type=float, default=600.0, help="seconds for the reference runs")
    args = p.parse_args(argv)

    with open(args.ours) as f:
        ours = json.load(f)
    train, holdout, synthetic, metadata = read_tables(args.dir)
    qis, sensitive = ours["quasi_identifiers"], ours["sensitive"]
    n_attacks = ours["anonymeter_n_attacks"]
    rows = len(synthetic)
    # Targets are drawn without replacement, by Anonymeter and by our gate.
    targets = min(n_attacks, len(train), len(holdout))

    def sample(df, n):
        return df if n >= len(df) else df.sample(n=n, random_state=0)

    def quality_report(n):
        QualityReport().generate(sample(train, n), sample(synthetic, n), metadata, verbose=False)

    def dcr(n):
        DCROverfittingProtection.compute_breakdown(
            train, sample(synthetic, n), holdout, metadata, None
        )

    def singling_out(k):
        SinglingOutEvaluator(
            ori=train[qis],
            syn=synthetic[qis],
            control=holdout[qis],
            n_attacks=k,
            n_cols=min(3, len(qis)),
            max_attempts=ATTEMPTS_PER_QUERY * k,
            seed=0,
        ).evaluate(mode="multivariate")

    half = len(qis) // 2

    def linkability(k):
        LinkabilityEvaluator(
            ori=train[qis],
            syn=synthetic[qis],
            control=holdout[qis],
            aux_cols=(qis[:half], qis[half:]),
            n_attacks=k,
            n_neighbors=1,
        ).evaluate(n_jobs=2)

    def inference(secret):
        def run(k):
            columns = qis + [secret]
            InferenceEvaluator(
                ori=train[columns],
                syn=synthetic[columns],
                control=holdout[columns],
                aux_cols=qis,
                secret=secret,
                regression=bool(pd.api.types.is_numeric_dtype(train[secret])),
                n_attacks=k,
            ).evaluate(n_jobs=2)

        return run

    sdmetrics = [
        Component("SDMetrics QualityReport", "rows per table", rows, 2000, quality_report),
        Component(
            "SDMetrics DCROverfittingProtection",
            "synthetic rows (train, holdout in full)",
            rows,
            20,
            dcr,
            same_work_as_ours=(ours.get("dcr_overfitting_protection") or {}).get("synthetic_rows"),
        ),
    ]
    anonymeter = [
        Component("Anonymeter singling out", "attacks", n_attacks, 200, singling_out),
        Component("Anonymeter linkability", "attacks", targets, 200, linkability),
    ] + [
        Component(f"Anonymeter inference[{s}]", "attacks", targets, 200, inference(s))
        for s in sensitive
        if s not in qis
    ]
    components = sdmetrics + anonymeter

    print(
        f"reference timing on {rows:,} synthetic vs {len(train):,} train + {len(holdout):,} "
        f"holdout × {len(metadata['columns'])} columns, budget {args.budget:.0f} s",
        flush=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Warm-up (not counted): numba / polars compile on first use.
        for c in anonymeter:
            c.run(10)
        print("pilots:", flush=True)
        spent = sum(c.time(c.pilot) for c in components)
        full = sum(c.estimate(c.full) for c in components)
        remaining = max(args.budget - spent, 0.0)
        print(
            f"estimated full-size total {full:.0f} s; {remaining:.0f} s of budget left",
            flush=True,
        )
        print("runs (cheapest first; each gets an equal share of what is left):", flush=True)
        pending = sorted(components, key=lambda c: c.estimate(c.full))
        for i, c in enumerate(pending):
            share = remaining / (len(pending) - i)
            estimate = c.estimate(c.full)
            knob = c.full if estimate <= share else int(c.full * share / estimate)
            if knob > c.pilot and (knob == c.full or knob > 1.5 * c.pilot):
                remaining -= c.time(knob)
            else:
                print(f"  {c.name}: no time for more than the pilot", flush=True)

    ours_seconds = ours["wall_seconds"]
    print()
    print(f"{'component':44} {'full size':>22} {'seconds':>9}  how")
    total = 0.0
    for c in components:
        seconds = c.estimate(c.full)
        total += seconds
        print(f"{c.name:44} {c.knob_name.split(' ')[0]} = {c.full:>9,} {seconds:9.1f}  {c.how()}")
    sdm = sum(c.estimate(c.full) for c in sdmetrics)
    ano = sum(c.estimate(c.full) for c in anonymeter)
    print()
    print(f"resynth full gate (every operator, 2 threads): {ours_seconds:.2f} s wall")
    print(f"SDMetrics (QualityReport + DCROverfittingProtection): {sdm:.1f} s")
    print(f"Anonymeter (singling out + linkability + inference × {len(anonymeter) - 2}): {ano:.1f} s")
    print(f"ratio reference / resynth: {total / ours_seconds:.0f}×")
    d = sdmetrics[1]
    if d.same_work_as_ours and d.same_work_as_ours < d.full:
        # Our gate scores DCR on a synthetic subsample; the same work in SDMetrics:
        same = total - d.estimate(d.full) + d.estimate(d.same_work_as_ours)
        print(
            f"ratio with SDMetrics' DCR on the {d.same_work_as_ours:,} synthetic rows our gate "
            f"scores: {same / ours_seconds:.0f}× ({same:.1f} s)"
        )
    without = total - d.estimate(d.full)
    print(
        f"ratio without the DCR metric (all measured in full unless said above): "
        f"{without / ours_seconds:.0f}× ({without:.1f} s)"
    )
    result = {
        "ours_wall_seconds": ours_seconds,
        "components": {
            c.name: {
                "full": c.full,
                "knob": c.knob_name,
                "measured": c.measured,
                "seconds_full": c.estimate(c.full),
                "how": c.how(),
            }
            for c in components
        },
        "sdmetrics_seconds": sdm,
        "anonymeter_seconds": ano,
        "ratio": total / ours_seconds,
    }
    with open(os.path.join(args.dir, "reference_timing.json"), "w") as f:
        json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
