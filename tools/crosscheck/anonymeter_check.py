#!/usr/bin/env python3
"""Cross-check resynth's Anonymeter-style privacy risks against Anonymeter.

Runs Anonymeter (https://github.com/statice/anonymeter, `pip install
anonymeter`) on the same training / holdout / synthetic CSVs and the same
quasi-identifiers the gate uses, and prints its singling-out, linkability
and inference risks with their 95 % intervals as JSON, with the settings
the gate uses so the two are comparable:

- singling out: multivariate predicates on min(3, #QI) quasi-identifiers,
  `n_attacks` queries, `--singling-out-max-attempts` attempts (give the
  number the gate reports as "tried"), holdout as control;
- linkability: the QIs split into the first floor(n/2) and the rest, in the
  order given, 1 nearest neighbour;
- inference: every sensitive column that is not a QI, the QIs as auxiliary
  columns, `regression=True` for numeric secrets (Anonymeter's 5 % relative
  tolerance), holdout as control.

With `--ours FILE` (the `ours_<scenario>.json` written by the gate's
`anonymeter_crosscheck_export` test) it also
- recomputes Anonymeter's `EvaluationResults(...).risk()` from the gate's
  own success counts, which checks the risk formula exactly, and
- lists the gate's risk next to Anonymeter's for each attack; the attacks
  themselves are randomised (Anonymeter's queries and tie order, ours), so
  those agree within sampling error, not to the digit.

Usage:
  python anonymeter_check.py --train train.csv --holdout holdout.csv \\
      --synthetic synthetic.csv --quasi-identifiers age,zip3,weight,height \\
      --sensitive dx,lab --n-attacks 2000 --singling-out-max-attempts 80000 \\
      [--seed 0] [--ours ours.json]

Missing values are empty CSV fields. Columns pandas reads as numbers are
numeric; everything else is categorical (so give categories non-numeric
labels, e.g. "Z100" rather than "100", on both sides).
"""

import argparse
import json
import re
import sys
import warnings

import numpy as np
import pandas as pd
from anonymeter.evaluators import (
    InferenceEvaluator,
    LinkabilityEvaluator,
    SinglingOutEvaluator,
)
from anonymeter.stats.confidence import EvaluationResults

CONFIDENCE = 0.95


def risk_json(evaluator, n_attacks_note=None):
    """Risk, interval and raw counts of an evaluated Anonymeter evaluator."""
    results = evaluator.results(confidence_level=CONFIDENCE)
    risk = results.risk()
    out = {
        "risk": risk.value,
        "ci": list(risk.ci),
        "attack_rate": results.attack_rate.value,
        "attack_error": results.attack_rate.error,
        "control_rate": results.control_rate.value,
        "control_error": results.control_rate.error,
        "n_success": int(results.n_success),
        "n_control": float(results.n_control),
        "n_attacks": [
            results.n_attacks_ori,
            results.n_attacks_baseline,
            results.n_attacks_control,
        ],
    }
    if n_attacks_note:
        out["note"] = n_attacks_note
    return out


def run_anonymeter(train, holdout, synthetic, qis, sensitive, n_attacks, max_attempts, seed):
    np.random.seed(seed)  # pandas .sample() of targets uses the global state
    out = {}
    so = SinglingOutEvaluator(
        ori=train[qis],
        syn=synthetic[qis],
        control=holdout[qis],
        n_attacks=n_attacks,
        n_cols=min(3, len(qis)),
        max_attempts=max_attempts,
        seed=seed,
    ).evaluate(mode="multivariate")
    out["singling_out"] = risk_json(so)
    out["singling_out"]["queries_found"] = len(so.queries())

    if len(qis) >= 2:
        half = len(qis) // 2
        aux = (qis[:half], qis[half:])
        link = LinkabilityEvaluator(
            ori=train[qis],
            syn=synthetic[qis],
            control=holdout[qis],
            aux_cols=aux,
            n_attacks=min(n_attacks, len(train), len(holdout)),
            n_neighbors=1,
        ).evaluate(n_jobs=2)
        out["linkability"] = risk_json(link)
        out["linkability"]["aux_cols"] = [list(a) for a in aux]

    out["inference"] = {}
    for secret in [c for c in sensitive if c not in qis]:
        columns = qis + [secret]
        regression = bool(pd.api.types.is_numeric_dtype(train[secret]))
        inf = InferenceEvaluator(
            ori=train[columns],
            syn=synthetic[columns],
            control=holdout[columns],
            aux_cols=qis,
            secret=secret,
            regression=regression,
            n_attacks=n_attacks,
        ).evaluate(n_jobs=2)
        out["inference"][secret] = risk_json(inf)
        out["inference"][secret]["regression"] = regression
    return out


# Counts as the gate's explanations state them.
PATTERNS = {
    "singling_out_risk": re.compile(
        r"\((?P<tried>\d+) tried, (?P<wanted>\d+) wanted\); (?P<a>\d+) isolate exactly one "
        r"training record and (?P<c>\d+) exactly one holdout record"
    ),
    "linkability_risk": re.compile(
        r"(?P<a>\d+) of (?P<na>\d+) training targets and (?P<c>\d+) of (?P<nc>\d+) holdout "
        r"targets linked"
    ),
    "inference_risk": re.compile(
        r"(?P<a>\d+) of (?P<na>\d+) training targets and (?P<c>\d+) of (?P<nc>\d+) holdout "
        r"targets guessed right"
    ),
}
OURS_RISK = re.compile(
    r"risk \(a − c\)/\(1 − c\) = (?P<risk>-?[\d.]+), 95% interval \[(?P<lo>[\d.]+), (?P<hi>[\d.]+)\]"
)


def compare(ours, theirs):
    """Formula check from our counts, and our risks next to Anonymeter's."""
    rows = []
    for result in ours:
        op = result["operator"]
        m = PATTERNS[op].search(result["explanation"])
        r = OURS_RISK.search(result["explanation"])
        if not m or not r:
            rows.append({"operator": op, "error": "could not parse explanation"})
            continue
        g = m.groupdict()
        a, c = int(g["a"]), int(g["c"])
        if op == "singling_out_risk":
            na = nc = int(g["wanted"])
            mine = theirs["singling_out"]
            name = op
        elif op == "linkability_risk":
            na, nc = int(g["na"]), int(g["nc"])
            mine = theirs.get("linkability")
            name = op
        else:
            na, nc = int(g["na"]), int(g["nc"])
            mine = theirs["inference"].get(result["columns"][0])
            name = f"{op}[{result['columns'][0]}]"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from_counts = EvaluationResults(
                n_attacks=(na, na, nc), n_success=a, n_baseline=0, n_control=c,
                confidence_level=CONFIDENCE,
            ).risk()
        row = {
            "attack": name,
            "ours": {
                "successes": [a, na],
                "control": [c, nc],
                "risk_unclipped": float(r["risk"]),
                "ci": [float(r["lo"]), float(r["hi"])],
                "gated_risk": result["statistic"],
                "interval": result.get("interval"),
            },
            "anonymeter_formula_on_our_counts": {
                "risk": from_counts.value,
                "ci": list(from_counts.ci),
            },
            # The gate gates the risk itself (clipped at 0) and reports the
            # interval; both must be Anonymeter's formula on our counts.
            "formula_agrees": bool(
                abs(max(from_counts.value, 0.0) - result["statistic"]) < 1e-9
                and result.get("interval") is not None
                and abs(from_counts.ci[1] - result["interval"][1]) < 1e-9
                and abs(from_counts.ci[0] - result["interval"][0]) < 1e-9
            ),
        }
        if mine is not None:
            row["anonymeter"] = {
                "successes": [mine["n_success"], mine["n_attacks"][0]],
                "control": [mine["n_control"], mine["n_attacks"][2]],
                "risk": mine["risk"],
                "ci": mine["ci"],
            }
            row["upper_bound_difference"] = (result.get("interval") or [0, 0])[1] - mine["ci"][1]
        rows.append(row)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train", required=True)
    p.add_argument("--holdout", required=True)
    p.add_argument("--synthetic", required=True)
    p.add_argument("--quasi-identifiers", required=True, help="comma-separated, in order")
    p.add_argument("--sensitive", default="", help="comma-separated")
    p.add_argument("--n-attacks", type=int, default=500)
    p.add_argument("--singling-out-max-attempts", type=int, default=10_000_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ours", help="the gate's ours_<scenario>.json to compare with")
    args = p.parse_args(argv)

    qis = [c for c in args.quasi_identifiers.split(",") if c]
    sensitive = [c for c in args.sensitive.split(",") if c]
    train, holdout, synthetic = (pd.read_csv(f) for f in (args.train, args.holdout, args.synthetic))
    for name, df in (("train", train), ("holdout", holdout), ("synthetic", synthetic)):
        missing = [c for c in qis + sensitive if c not in df.columns]
        if missing:
            sys.exit(f"{name} CSV lacks columns {missing}")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = run_anonymeter(
            train, holdout, synthetic, qis, sensitive, args.n_attacks,
            args.singling_out_max_attempts, args.seed,
        )
    out = {"anonymeter": theirs}
    if args.ours:
        with open(args.ours) as f:
            out["comparison"] = compare(json.load(f), theirs)
    # numpy scalars (Anonymeter's counts and rates) as plain numbers
    json.dump(out, sys.stdout, indent=2, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    print()


if __name__ == "__main__":
    main()
