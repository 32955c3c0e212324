#!/usr/bin/env python3
"""Generator benchmark on real public tables: ours (CART, Gaussian copula,
auto) against SDV's GaussianCopula and CTGAN, in one run, on the same splits.

For every table (tools/quality/tables.py) and generator it reports:

- fit + sample seconds (ours: the in-process figure `resynth synthesize`
  prints; SDV: fit + sample in this process);
- detection AUC: 5-fold out-of-fold AUC of scikit-learn's
  HistGradientBoostingClassifier telling training rows (0) from synthetic
  rows (1), equal numbers of each (the larger side subsampled); 0.5 = cannot
  tell them apart;
- 2-way and 3-way marginal accuracy: mean over column pairs (all) and
  triples (up to 300, seeded) of 1 − TVD between the training and synthetic
  joint distributions, numeric columns cut at training deciles, categories
  beyond the 20 most frequent pooled, missing a bin of its own;
- SDMetrics Column Shapes and Column Pair Trends (tools/crosscheck);
- TSTR vs TRTR: AUROC on the holdout of the same classifier trained on
  synthetic vs on training rows, for the table's target;
- `resynth validate`'s verdict and failed operators.

The holdout row ("fresh real data") is the yardstick: its detection AUC is
the noise floor and its marginal accuracies are what a perfect generator
reaches at this size.

Usage: python bench.py OUT_DIR [--tables opt,flchain,nafld1,medpar]
       [--resynth target/release/resynth] [--seed 0] [--ctgan-epochs 300]
       [--skip-ctgan]
       python bench.py --render OUT_DIR/bench.json   (the table of a finished run)
"""

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import score as sdm_score  # noqa: E402  (tools/quality/score.py)

OURS = {"resynth_cart": "cart", "resynth_copula": "gaussian_copula", "resynth_auto": "auto"}


def read(path, metadata):
    return sdm_score.read(path, metadata)


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def ours(resynth, d, family, out, seed):
    roles = os.path.join(d, f"roles_{family}.toml")
    with open(os.path.join(d, "roles.toml")) as f:
        text = f.read()
    with open(roles, "w") as f:
        f.write(text + f'\n[generator]\nfamily = "{family}"\n')
    rows = sum(1 for _ in open(os.path.join(d, "train.csv"))) - 1
    started = time.perf_counter()
    code, text = run([resynth, "synthesize", "--train", os.path.join(d, "train.csv"),
                      "--roles", roles, "--rows", str(rows), "--out", out])
    wall = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"synthesize {family}: {text}")
    m = re.search(r"in ([0-9.]+) s; wrote", text)
    chosen = re.search(r"auto: chose (\S+)", text)
    return {"fit_sample_s": float(m.group(1)) if m else None, "process_s": round(wall, 3),
            "chosen": chosen.group(1) if chosen else None}


def sdv(kind, train, metadata, out, seed, epochs):
    from sdv.metadata import Metadata
    from sdv.single_table import CTGANSynthesizer, GaussianCopulaSynthesizer

    meta = Metadata.load_from_dict({"columns": metadata["columns"]}, single_table_name="table")
    np.random.seed(seed)
    import torch

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        if kind == "sdv_gaussian_copula":
            s = GaussianCopulaSynthesizer(meta)
        else:
            s = CTGANSynthesizer(meta, epochs=epochs)
        s.fit({"table": train})
        if hasattr(s, "_set_random_state"):
            s._set_random_state(seed)
        synthetic = s.sample(num_rows=len(train))
        if isinstance(synthetic, dict):
            (synthetic,) = synthetic.values()
        elapsed = time.perf_counter() - started
    # Whole numbers as integers, so `resynth validate` reads them as training did.
    for c, m in metadata["columns"].items():
        if m["sdtype"] == "numerical" and pd.api.types.is_integer_dtype(train[c].dropna()):
            pass
    synthetic.to_csv(out, index=False)
    return {"fit_sample_s": round(elapsed, 3)}


def encode(frames, metadata):
    """Ordinal codes for categories (shared across frames), floats otherwise."""
    out = [pd.DataFrame(index=f.index) for f in frames]
    cat_mask = []
    for c, m in metadata["columns"].items():
        if m["sdtype"] == "numerical":
            for o, f in zip(out, frames):
                o[c] = pd.to_numeric(f[c], errors="coerce").astype(float)
            cat_mask.append(False)
        else:
            labels = sorted(set().union(*[set(f[c].dropna().astype(str)) for f in frames]))
            index = {l: i for i, l in enumerate(labels)}
            for o, f in zip(out, frames):
                o[c] = f[c].map(lambda v: index.get(str(v), np.nan) if pd.notna(v) else np.nan)
            cat_mask.append(len(labels) <= 250)
            if len(labels) > 250:  # too many for HGB's categorical support
                pass
    return out, np.array(cat_mask)


def classifier(cat_mask, seed):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(categorical_features=cat_mask, random_state=seed)


def detection_auc(train, other, metadata, seed):
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    m = min(len(train), len(other))
    a = train.sample(n=m, random_state=seed)
    b = other.sample(n=m, random_state=seed)
    (xa, xb), mask = encode([a, b], metadata)
    x = pd.concat([xa, xb], ignore_index=True)
    y = np.r_[np.zeros(m), np.ones(m)]
    p = cross_val_predict(classifier(mask, seed), x, y,
                          cv=StratifiedKFold(5, shuffle=True, random_state=seed),
                          method="predict_proba")[:, 1]
    return float(roc_auc_score(y, p))


def utility(train_like, holdout, metadata, target, seed):
    from sklearn.metrics import roc_auc_score

    col, pos = target["column"], target["positive"]
    meta = {"columns": {c: m for c, m in metadata["columns"].items() if c != col}}
    (xt, xh), mask = encode([train_like, holdout], meta)
    yt = (train_like[col].astype(str) == pos).astype(int).values
    yh = (holdout[col].astype(str) == pos).astype(int).values
    if yt.min() == yt.max():
        return 0.5
    model = classifier(mask, seed).fit(xt, yt)
    return float(roc_auc_score(yh, model.predict_proba(xh)[:, 1]))


def binned(train, frame, metadata):
    out = pd.DataFrame(index=frame.index)
    for c, m in metadata["columns"].items():
        if m["sdtype"] == "numerical":
            t = pd.to_numeric(train[c], errors="coerce")
            edges = np.unique(np.nanquantile(t, np.linspace(0, 1, 11))) if t.notna().any() else []
            v = pd.to_numeric(frame[c], errors="coerce")
            b = np.searchsorted(edges[1:-1], v, side="right") if len(edges) > 2 else np.zeros(len(v))
            out[c] = np.where(v.isna(), -1, b)
        else:
            top = train[c].value_counts().index[:20]
            v = frame[c]
            out[c] = np.where(v.isna(), "<NA>", np.where(v.isin(top), v.astype(str), "<other>"))
    return out


def marginal_accuracy(train, other, metadata, k, seed, limit=300):
    bt, bo = binned(train, train, metadata), binned(train, other, metadata)
    combos = list(itertools.combinations(list(metadata["columns"]), k))
    if len(combos) > limit:
        rng = np.random.default_rng(seed)
        combos = [combos[i] for i in sorted(rng.choice(len(combos), limit, replace=False))]
    scores = []
    for cs in combos:
        p = bt.groupby(list(cs)).size() / len(bt)
        q = bo.groupby(list(cs)).size() / len(bo)
        p, q = p.align(q, fill_value=0)
        scores.append(1 - 0.5 * float(np.abs(p - q).sum()))
    return float(np.mean(scores))


def validate(resynth, d, synthetic):
    code, text = run([resynth, "validate", "--train", os.path.join(d, "train.csv"),
                      "--holdout", os.path.join(d, "holdout.csv"), "--synthetic", synthetic,
                      "--roles", os.path.join(d, "roles.toml")])
    failed = sorted({line.split()[1] for line in text.splitlines() if line.startswith("FAIL")})
    verdict = {0: "pass", 1: "fail"}.get(code, "error")
    return {"verdict": verdict, "failed": failed, "error": text[-400:] if code == 2 else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--tables", default="opt,flchain,nafld1,medpar")
    ap.add_argument("--resynth", default="target/release/resynth")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ctgan-epochs", type=int, default=300)
    ap.add_argument("--skip-ctgan", action="store_true")
    args = ap.parse_args()
    resynth = os.path.abspath(args.resynth)
    results = []
    for table in args.tables.split(","):
        d = os.path.join(args.out, table)
        subprocess.run([sys.executable, os.path.join(HERE, "tables.py"), table, d,
                        "--seed", str(args.seed)], check=True, capture_output=True)
        metadata = json.load(open(os.path.join(d, "metadata.json")))
        roles = open(os.path.join(d, "roles.toml")).read()
        target = dict(re.findall(r'(column|positive) = "([^"]*)"', roles.split("target =")[1])[:2])
        train = read(os.path.join(d, "train.csv"), metadata)
        holdout = read(os.path.join(d, "holdout.csv"), metadata)
        gens = list(OURS) + ["sdv_gaussian_copula"] + ([] if args.skip_ctgan else ["sdv_ctgan"])
        trtr = utility(train, holdout, metadata, target, args.seed)
        for gen in ["holdout"] + gens:
            out = os.path.join(d, f"{gen}.csv")
            row = {"table": table, "generator": gen, "rows": len(train)}
            try:
                if gen == "holdout":
                    out = os.path.join(d, "holdout.csv")
                elif gen in OURS:
                    row.update(ours(resynth, d, OURS[gen], out, args.seed))
                else:
                    row.update(sdv(gen, train, metadata, out, args.seed, args.ctgan_epochs))
                s = read(out, metadata)
                row["detection_auc"] = detection_auc(train, s, metadata, args.seed)
                row["two_way"] = marginal_accuracy(train, s, metadata, 2, args.seed)
                row["three_way"] = marginal_accuracy(train, s, metadata, 3, args.seed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    q = sdm_score.sdmetrics_check.sdmetrics_scores(train, s, metadata)
                row["shapes"], row["trends"] = q["column_shapes"], q["column_pair_trends"]
                row["tstr"], row["trtr"] = utility(s, holdout, metadata, target, args.seed), trtr
                row.update(validate(resynth, d, out))
            except Exception as e:  # one generator's failure must not hide the rest
                row["error"] = f"{type(e).__name__}: {e}"[:400]
            print(json.dumps(row), flush=True)
            results.append(row)
    json.dump(results, open(os.path.join(args.out, "bench.json"), "w"), indent=1)
    print(table_md(results))


def render(path):
    """The Markdown table of a finished run's bench.json."""
    print(table_md(json.load(open(path))))


def table_md(results):
    f = lambda x, p=3: "–" if x is None else (f"{x:.{p}f}" if isinstance(x, float) else str(x))  # noqa: E731
    lines = ["| table | generator | fit+sample s | detection AUC | 2-way | 3-way | shapes | trends "
             "| TSTR / TRTR | gate (failed operators) |", "|" + "---|" * 10]
    for r in results:
        # validate() records "error": None when it ran; only a set error is one.
        if r.get("error"):
            lines.append(f"| {r['table']} | {r['generator']} | error: {r['error'][:80]} |")
            continue
        gate = r.get("verdict", "–") + ("" if not r.get("failed") else " (" + ", ".join(r["failed"]) + ")")
        gen = r["generator"] + (f" → {r['chosen']}" if r.get("chosen") else "")
        lines.append(f"| {r['table']} | {gen} | {f(r.get('fit_sample_s'), 2)} | {f(r['detection_auc'])} "
                     f"| {f(r['two_way'])} | {f(r['three_way'])} | {f(r['shapes'])} | {f(r['trends'])} "
                     f"| {f(r['tstr'])} / {f(r['trtr'])} | {gate} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--render":
        render(sys.argv[2])
    else:
        main()
