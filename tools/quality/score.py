#!/usr/bin/env python3
"""SDMetrics fidelity of one table against the training table, as JSON.

ColumnShapes = mean KSComplement (numerical) / TVComplement (categorical)
over all columns; ColumnPairTrends = mean CorrelationSimilarity (Pearson,
numerical pairs) / ContingencySimilarity (every other pair, numerical
columns cut in 10 bins) over all pairs. Also the QualityReport's own two
property scores, which average only strongly associated pairs.

The scoring is tools/crosscheck/sdmetrics_check.py's, imported by path, so
this benchmark and the crosscheck of our own metric code cannot drift apart.

Usage: python score.py TRAIN_CSV OTHER_CSV METADATA_JSON [--label NAME]
"""

import argparse
import importlib.util
import json
import os
import sys
import warnings

import pandas as pd

_CHECK = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "..", "crosscheck", "sdmetrics_check.py")
_spec = importlib.util.spec_from_file_location("sdmetrics_check", _CHECK)
sdmetrics_check = importlib.util.module_from_spec(_spec)
with warnings.catch_warnings():
    # SDMetrics 0.32 announces at import that the single-table QualityReport
    # the crosscheck uses is deprecated; it still computes the same scores.
    warnings.simplefilter("ignore", FutureWarning)
    _spec.loader.exec_module(sdmetrics_check)


def read(path, metadata):
    """As the crosscheck reads: types from the metadata, only empty fields
    missing (so a label like "NA" stays a label)."""
    columns = metadata["columns"]
    dtypes = {c: (float if m["sdtype"] == "numerical" else "object")
              for c, m in columns.items()}
    return pd.read_csv(path, dtype=dtypes, keep_default_na=False,
                       na_values=[""])[list(columns)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train")
    parser.add_argument("other", help="synthetic (or holdout) CSV")
    parser.add_argument("metadata")
    parser.add_argument("--label", default=None)
    args = parser.parse_args()

    with open(args.metadata) as f:
        metadata = json.load(f)
    train, other = read(args.train, metadata), read(args.other, metadata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = sdmetrics_check.sdmetrics_scores(train, other, metadata)
    # A metric SDMetrics could not compute is left out of the mean by the
    # crosscheck; count them so a mean over fewer items is visible.
    unscored = [c["column"] for c in s["columns"] if c["score"] is None] + [
        "/".join(p["columns"]) for p in s["pairs"] if p["score"] is None]
    worst = lambda items, key: sorted(  # noqa: E731
        ({"item": key(i), "metric": i["metric"], "score": round(i["score"], 4)}
         for i in items if i["score"] is not None), key=lambda i: i["score"])[:3]
    json.dump({
        "label": args.label or os.path.basename(args.other),
        "rows": len(other),
        "column_shapes": s["column_shapes"],
        "column_pair_trends": s["column_pair_trends"],
        "quality_report": s["quality_report"],
        "quality_report_overall": s["quality_report_overall"],
        "unscored": unscored,
        "worst_columns": worst(s["columns"], lambda c: c["column"]),
        "worst_pairs": worst(s["pairs"], lambda p: "/".join(p["columns"])),
    }, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
