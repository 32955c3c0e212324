#!/usr/bin/env python3
"""Cross-check resynth's SDMetrics-style scores against SDMetrics itself.

Given real and synthetic CSVs and SDMetrics single-table metadata
({"columns": {name: {"sdtype": "numerical" | "categorical"}}}), prints as
JSON, for synthetic vs real:

- KSComplement (numerical) / TVComplement (categorical) per column;
- CorrelationSimilarity (Pearson, SDMetrics' default) per numerical pair;
- ContingencySimilarity per other pair, numerical columns discretised with
  ``continuous_column_names`` (10 equal-width bins over the real range);
- ColumnShapes and ColumnPairTrends as the plain means of those scores;
- the QualityReport's own property scores for reference (it averages only
  pairs with real |r| > 0.5 or Cramér's V > 0.3 and bins each table on its
  own edges, so it is expected to differ; see src/gate/aggregate.rs).

With ``--holdout holdout.csv`` (real rows the generator never saw) it also
computes DCROverfittingProtection (``compute_breakdown`` with
``num_rows_subsample=None, num_iterations=1``: every row, no subsampling),
its score and the share of synthetic rows closer to training. SDMetrics
cross-joins every synthetic row with every real row in pandas (≈ 4 s per
million row pairs), so keep the tables to a few thousand rows.

With ``--compare ours.json`` (``QualityScores`` as written by
``cargo run --release --example gate_bench -- crosscheck DIR``) it also
prints the largest absolute difference per metric, every pair or column
that differs by more than ``--tolerance`` (default 0.01), and a ``summary``
(metric, ours, reference, |diff|, tolerance) for ``tools/crosscheck/run.sh``;
it exits 1 if anything differs by more than the tolerance.

Usage:
    pip install sdmetrics==0.32.0
    python tools/crosscheck/sdmetrics_check.py real.csv synthetic.csv \
        metadata.json [--holdout holdout.csv] [--compare ours.json] \
        [--tolerance 0.01]
"""

import argparse
import itertools
import json
import math
import sys
import warnings

import pandas as pd
from sdmetrics.column_pairs import ContingencySimilarity, CorrelationSimilarity
from sdmetrics.reports.single_table import QualityReport
from sdmetrics.single_column import KSComplement, TVComplement
from sdmetrics.single_table.privacy import DCROverfittingProtection


def _finite(x):
    """A float, or None for NaN/inf/errors (JSON has no NaN)."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _safe(fn, *args, **kwargs):
    try:
        return _finite(fn(*args, **kwargs))
    except Exception:  # SDMetrics raises on constant/empty input
        return None


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def sdmetrics_scores(real, synthetic, metadata):
    kinds = {name: meta["sdtype"] for name, meta in metadata["columns"].items()}
    names = list(kinds)
    numerical = {n for n in names if kinds[n] == "numerical"}

    columns = []
    for name in names:
        if name in numerical:
            metric, score = "KSComplement", _safe(
                KSComplement.compute, real[name], synthetic[name]
            )
        else:
            metric, score = "TVComplement", _safe(
                TVComplement.compute, real[name], synthetic[name]
            )
        columns.append({"column": name, "metric": metric, "score": score})

    pairs = []
    for a, b in itertools.combinations(names, 2):
        r, s = real[[a, b]], synthetic[[a, b]]
        if a in numerical and b in numerical:
            metric = "CorrelationSimilarity"
            score = _safe(CorrelationSimilarity.compute, r, s, coefficient="Pearson")
        else:
            metric = "ContingencySimilarity"
            continuous = [c for c in (a, b) if c in numerical] or None
            score = _safe(
                ContingencySimilarity.compute,
                r.copy(),
                s.copy(),
                continuous_column_names=continuous,
                num_discrete_bins=10,
            )
        pairs.append({"columns": [a, b], "metric": metric, "score": score})

    report = QualityReport()
    report.generate(real, synthetic, metadata, verbose=False)
    properties = report.get_properties().set_index("Property")["Score"].to_dict()

    return {
        "column_shapes": _mean(c["score"] for c in columns),
        "column_pair_trends": _mean(p["score"] for p in pairs),
        "quality_report": {k: _finite(v) for k, v in properties.items()},
        "quality_report_overall": _finite(report.get_score()),
        "columns": columns,
        "pairs": pairs,
    }


def dcr_overfitting(real, synthetic, holdout, metadata):
    """DCROverfittingProtection on every row (SDMetrics' default)."""
    breakdown = DCROverfittingProtection.compute_breakdown(
        real_training_data=real,
        synthetic_data=synthetic,
        real_validation_data=holdout,
        metadata=metadata,
        table_name=None,
        num_rows_subsample=None,
        num_iterations=1,
    )
    return {
        "score": _finite(breakdown["score"]),
        "closer_to_training": _finite(
            breakdown["synthetic_data_percentages"]["closer_to_training"]
        ),
        "synthetic_rows": len(synthetic),
    }


def compare(theirs, ours, tolerance):
    """Largest |difference| per metric, the items above the tolerance and a
    summary row per headline number."""
    out = {"max_abs_diff": {}, "above_tolerance": [], "summary": []}

    def headline(metric, a, b):
        """A summary row; ``a`` is SDMetrics', ``b`` ours."""
        d = abs(a - b) if a is not None and b is not None else None
        out["summary"].append(
            {
                "metric": metric,
                "ours": b,
                "reference": a,
                "abs_diff": d,
                "tolerance": tolerance,
                "ok": (a is None) == (b is None) and (d is None or d <= tolerance),
            }
        )

    def note(metric, label, a, b):
        if a is None or b is None:
            if (a is None) != (b is None):
                out["above_tolerance"].append(
                    {"metric": metric, "item": label, "sdmetrics": a, "resynth": b}
                )
            return
        d = abs(a - b)
        out["max_abs_diff"][metric] = max(out["max_abs_diff"].get(metric, 0.0), d)
        if d > tolerance:
            out["above_tolerance"].append(
                {"metric": metric, "item": label, "sdmetrics": a, "resynth": b}
            )

    ours_cols = {c["column"]: c for c in ours["columns"]}
    for c in theirs["columns"]:
        o = ours_cols.get(c["column"], {})
        note(c["metric"], c["column"], c["score"], o.get("score"))
    # Pair order may differ (metadata key order vs table column order).
    ours_pairs = {frozenset(p["columns"]): p for p in ours["pairs"]}
    for p in theirs["pairs"]:
        o = ours_pairs.get(frozenset(p["columns"]), {})
        note(p["metric"], "/".join(p["columns"]), p["score"], o.get("score"))
    note("ColumnShapes", "table", theirs["column_shapes"], ours["column_shapes"])
    note(
        "ColumnPairTrends",
        "table",
        theirs["column_pair_trends"],
        ours["column_pair_trends"],
    )
    headline("ColumnShapes", theirs["column_shapes"], ours["column_shapes"])
    headline("ColumnPairTrends", theirs["column_pair_trends"], ours["column_pair_trends"])
    for metric in ("KSComplement", "TVComplement", "CorrelationSimilarity", "ContingencySimilarity"):
        if metric in out["max_abs_diff"]:
            worst = out["max_abs_diff"][metric]
            out["summary"].append(
                {
                    "metric": f"{metric} (worst item)",
                    "ours": None,
                    "reference": None,
                    "abs_diff": worst,
                    "tolerance": tolerance,
                    "ok": worst <= tolerance,
                }
            )
    dcr = theirs.get("dcr_overfitting")
    if dcr is not None:
        mine = ours.get("dcr_overfitting_protection") or {}
        rows = mine.get("synthetic_rows")
        if rows != dcr["synthetic_rows"]:
            # Ours scored a subsample (more rows than max_dcr_synthetic_rows):
            # not the same computation, so not comparable to the digit.
            out["above_tolerance"].append(
                {
                    "metric": "DCROverfittingProtection",
                    "item": f"resynth scored {rows} of {dcr['synthetic_rows']} synthetic rows",
                    "sdmetrics": dcr["score"],
                    "resynth": mine.get("score"),
                }
            )
        for metric, a, b in (
            ("DCROverfittingProtection", dcr["score"], mine.get("score")),
            (
                "DCROverfittingProtection closer_to_training",
                dcr["closer_to_training"],
                mine.get("closer_to_training"),
            ),
        ):
            note(metric, "table", a, b)
            headline(metric, a, b)
    # Not held to the tolerance (different binning and subsampling, see
    # src/gate/aggregate.rs), but shown next to each other.
    out["quality_report_column_pair_trends"] = {
        "sdmetrics_quality_report": theirs["quality_report"].get("Column Pair Trends"),
        "resynth_associated_pairs": ours.get("column_pair_trends_associated"),
    }
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("real")
    parser.add_argument("synthetic")
    parser.add_argument("metadata")
    parser.add_argument("--holdout", help="real holdout CSV, for DCROverfittingProtection")
    parser.add_argument("--compare", help="resynth QualityScores JSON")
    parser.add_argument("--tolerance", type=float, default=0.01)
    args = parser.parse_args()

    with open(args.metadata) as f:
        metadata = json.load(f)
    names = list(metadata["columns"])
    dtypes = {
        n: (float if m["sdtype"] == "numerical" else "object")
        for n, m in metadata["columns"].items()
    }
    # keep_default_na=False + na_values=[""]: only empty fields are missing,
    # so a category called "NA" or "None" stays a category.
    read = lambda p: pd.read_csv(  # noqa: E731
        p, dtype=dtypes, keep_default_na=False, na_values=[""]
    )[names]
    real, synthetic = read(args.real), read(args.synthetic)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = sdmetrics_scores(real, synthetic, metadata)
        if args.holdout:
            theirs["dcr_overfitting"] = dcr_overfitting(
                real, synthetic, read(args.holdout), metadata
            )
    result = {"sdmetrics": theirs}
    failed = False
    if args.compare:
        with open(args.compare) as f:
            ours = json.load(f)
        result["comparison"] = compare(theirs, ours, args.tolerance)
        result["resynth"] = {
            k: ours.get(k)
            for k in (
                "column_shapes",
                "column_pair_trends",
                "column_pair_trends_associated",
                "dcr_overfitting_protection",
            )
        }
        failed = bool(result["comparison"]["above_tolerance"])
    json.dump(result, sys.stdout, indent=2)
    print()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
