#!/usr/bin/env python3
"""Build the fidelity benchmark table from scikit-survival's `flchain`.

flchain (Dispenzieri et al. 2012; Kyle et al. 2006) is a real cohort of 7,874
residents of Olmsted County, Minnesota, aged 50+, with serum free light chain
assays, follow-up time and death. It ships inside the scikit-survival wheel,
so it installs from PyPI with no download at run time and never needs to sit
in this repository.

Writes to OUT_DIR: train.csv and holdout.csv (a seeded 50/50 split, one row
per person), roles.toml for `resynth validate` / `resynth synthesize`, and
metadata.json (SDMetrics single-table metadata).

Usage: python prepare.py OUT_DIR [--seed 0]
"""

import argparse
import json
import os

import numpy as np
import pandas as pd
from sksurv.datasets import load_flchain

# Every categorical column, in the order written. Their labels are made
# non-numeric below, so no CSV reader (ours, pandas, SDV) can infer them as
# numbers even without the roles file.
CATEGORICAL = ["sex", "sample_yr", "flc_grp", "mgus", "death", "chapter"]
NUMERICAL = ["age", "kappa", "lambda", "creatinine", "futime"]
COLUMNS = ["age", "sex", "sample_yr", "kappa", "lambda", "flc_grp",
           "creatinine", "mgus", "futime", "death", "chapter"]

ROLES = """\
# Roles for `resynth validate` / `resynth synthesize` on flchain (written by
# tools/quality/prepare.py). No identifier column: one row per person and
# the source has no id.
id_columns = []
categorical = {categorical}
seed = {seed}

[roles]
# What an attacker plausibly knows about a resident.
quasi_identifiers = ["age", "sex"]
# MGUS diagnosis, cause of death and the kappa light chain level are what a
# linkage must not reveal.
sensitive = ["mgus", "chapter", "kappa"]
subgroups = [{{ column = "sex" }}, {{ column = "age", bands = [65, 80] }}]
target = {{ column = "death", positive = "yes" }}
# Follow-up time is censoring time for survivors and time to death for the
# dead: very different shapes a single copula may blur.
conditionals = [{{ column = "futime", given = "death" }}]
"""


def flat_table():
    """One row per person: features, event and time as plain columns."""
    x, y = load_flchain()
    df = x.rename(columns={"flc.grp": "flc_grp", "sample.yr": "sample_yr"}).copy()
    df["futime"] = y["futime"]
    df["death"] = np.where(y["death"], "yes", "no")
    # Prefixes keep codes from being read back as numbers by type inference.
    df["sample_yr"] = "y" + df["sample_yr"].astype(str)
    df["flc_grp"] = "grp" + df["flc_grp"].astype(int).map("{:02d}".format)
    # Cause-of-death chapter is blank exactly for survivors: a real category,
    # not a missing value, so give it a label.
    df["chapter"] = df["chapter"].astype(object).where(df["chapter"].notna(), "alive")
    for c in ("sex", "mgus"):
        df[c] = df[c].astype(str)
    # Whole numbers written without ".0"; creatinine keeps its real missing
    # values (blank fields), which a generator has to reproduce too.
    for c in ("age", "futime"):
        df[c] = df[c].round().astype("Int64")
    return df[COLUMNS]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    df = flat_table()
    assert ((df["chapter"] == "alive") == (df["death"] == "no")).all()
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(df))
    half = len(df) // 2
    train, holdout = df.iloc[order[:half]], df.iloc[order[half:]]

    os.makedirs(args.out_dir, exist_ok=True)
    train.to_csv(os.path.join(args.out_dir, "train.csv"), index=False)
    holdout.to_csv(os.path.join(args.out_dir, "holdout.csv"), index=False)
    with open(os.path.join(args.out_dir, "roles.toml"), "w") as f:
        f.write(ROLES.format(categorical=json.dumps(CATEGORICAL), seed=args.seed))
    metadata = {"columns": {c: {"sdtype": "categorical" if c in CATEGORICAL
                                else "numerical"} for c in COLUMNS}}
    with open(os.path.join(args.out_dir, "metadata.json"), "w") as f:
        json.dump(metadata, f, indent=2)
    print(json.dumps({
        "dataset": "flchain (scikit-survival)",
        "rows": len(df), "columns": len(COLUMNS),
        "train_rows": len(train), "holdout_rows": len(holdout),
        "categorical": CATEGORICAL, "numerical": NUMERICAL,
        "missing": {c: int(n) for c, n in df.isna().sum().items() if n},
    }))


if __name__ == "__main__":
    main()
