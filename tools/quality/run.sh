#!/usr/bin/env bash
# Fidelity of our Gaussian copula on a real public clinical table, against
# SDV's GaussianCopulaSynthesizer on the same split in the same run.
#
# Dataset: scikit-survival's flchain (7,874 Olmsted County residents, serum
# free light chains, follow-up and death), installed with the package from
# PyPI, never stored in this repository. Split 50/50 (seeded) into train and
# holdout; both generators fit on train and sample as many rows.
#
# Fidelity as SDMetrics defines it (tools/quality/score.py): ColumnShapes =
# mean KSComplement/TVComplement, ColumnPairTrends = mean
# CorrelationSimilarity/ContingencySimilarity over all pairs. Holdout vs
# train is printed as the noise ceiling: what fresh real rows score.
#
# Exits 1 if ours is below 0.90 on a property AND below SDV on it (0.90 may be
# out of a copula's reach; SDV's copula is then the bar). When the resynth
# binary has no `synthesize` subcommand the comparison is skipped (exit 0).
#
# Usage (from anywhere): tools/quality/run.sh
# Environment:
#   PYTHON   interpreter for the venv (default: python3)
#   RESYNTH  binary to test (default: target/release/resynth; not built here)
#   SEED     split, SDV and resynth seed (default: 0)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
venv="target/quality-venv"
out="target/quality/flchain"
here="tools/quality"
resynth="${RESYNTH:-target/release/resynth}"
seed="${SEED:-0}"
# Checked together here: sdv 2.0.0 accepts sdmetrics 0.32.0 and `pip check`
# is clean. sdv pulls in torch (for its GAN synthesizers), about 5 GB.
pins="sdv==2.0.0 sdmetrics==0.32.0 scikit-survival==0.28.0"

if [[ ! -x "$venv/bin/python" ]]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
if [[ "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ]]; then
    t=$SECONDS
    # shellcheck disable=SC2086  # $pins is a list of requirements
    "$venv/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check $pins
    "$venv/bin/python" -m pip check
    echo "$pins" >"$venv/.pins"
    echo "quality: pip install took $((SECONDS - t)) s"
fi
py="$venv/bin/python"
mkdir -p "$out"
# A previous run's output of ours must not be scored as this run's.
rm -f "$out/resynth_synthetic.csv" "$out/score_resynth.json"
"$py" -m pip freeze --disable-pip-version-check >"$out/pip-freeze.txt"

echo "quality: preparing flchain in $out"
"$py" "$here/prepare.py" "$out" --seed "$seed" | tee "$out/prepare.json"
rows=$(($(wc -l <"$out/train.csv") - 1))

echo "quality: SDV GaussianCopulaSynthesizer (default settings)"
"$py" "$here/sdv_baseline.py" "$out/train.csv" "$out/metadata.json" \
    "$out/sdv_synthetic.csv" --seed "$seed" | tee "$out/sdv_timing.json"

ours=""
if [[ -x "$resynth" ]] && "$resynth" synthesize --help >/dev/null 2>&1; then
    echo "quality: resynth synthesize"
    t=$SECONDS
    "$resynth" synthesize --train "$out/train.csv" --roles "$out/roles.toml" \
        --rows "$rows" --out "$out/resynth_synthetic.csv"
    echo "quality: resynth fit+sample (process) took $((SECONDS - t)) s"
    ours="$out/resynth_synthetic.csv"
else
    echo "quality: SKIPPED ours: $resynth is missing or has no 'synthesize' subcommand" \
        "(build it with cargo build --release); scoring SDV and holdout only"
fi

# Floor: every column shuffled on its own keeps each shape exactly and no
# dependence at all. On flchain most pairs are weakly associated, so this
# alone scores about 0.90 on the plain-mean ColumnPairTrends: read ours and
# SDV's pair trends against it, not against 0.90 alone.
"$py" - "$out/train.csv" "$out/independent_synthetic.csv" "$seed" <<'PY'
import sys, numpy as np, pandas as pd
d = pd.read_csv(sys.argv[1], dtype=str, keep_default_na=False)
rng = np.random.default_rng(int(sys.argv[3]))
for c in d:
    d[c] = rng.permutation(d[c].values)
d.to_csv(sys.argv[2], index=False)
PY

score() { "$py" "$here/score.py" "$out/train.csv" "$1" "$out/metadata.json" --label "$2" >"$out/score_$2.json"; }
score "$out/sdv_synthetic.csv" sdv
score "$out/independent_synthetic.csv" independent
score "$out/holdout.csv" holdout
[[ -n "$ours" ]] && score "$ours" resynth

# Table and verdict in one place so the exit rule is next to what it prints.
"$py" - "$out" <<'EOF'
import json, os, sys
out = sys.argv[1]
load = lambda n: json.load(open(os.path.join(out, f"score_{n}.json")))
rows = {"resynth": load("resynth") if os.path.exists(os.path.join(out, "score_resynth.json")) else None,
        "sdv": load("sdv"), "independent": load("independent"), "holdout": load("holdout")}
props = [("ColumnShapes", "column_shapes", "Column Shapes"),
         ("ColumnPairTrends", "column_pair_trends", "Column Pair Trends")]
fmt = lambda x: "   -  " if x is None else f"{x:.4f}"
print(f"\n{'property (vs train)':<20}{'resynth':>9}{'SDV GC':>9}{'indep.':>9}{'holdout':>9}"
      "   (QualityReport: same order)")
failed = []
for name, key, qr in props:
    vals = [None if r is None else r[key] for r in rows.values()]
    qrs = [None if r is None else r["quality_report"].get(qr) for r in rows.values()]
    print(f"{name:<20}" + "".join(f"{fmt(v):>9}" for v in vals)
          + "   (" + " / ".join(fmt(v) for v in qrs) + ")")
    ours, sdv = vals[0], vals[1]
    if ours is not None and ours < 0.90 and ours < sdv:
        failed.append(f"{name}: ours {ours:.4f} < 0.90 and < SDV {sdv:.4f}")
for label, r in rows.items():
    if r and r["unscored"]:
        print(f"note: {label}: SDMetrics could not score {r['unscored']}")
# The means skip what SDMetrics could not score (e.g. a constant column), which
# would flatter a degenerate output: fail on any item real holdout data scores.
if rows["resynth"]:
    extra = sorted(set(rows["resynth"]["unscored"]) - set(rows["holdout"]["unscored"]))
    if extra:
        failed.append(f"unscorable in ours only: {extra}")
summary = {"target": 0.90, "failed": failed,
           **{k: None if r is None else {p[1]: r[p[1]] for p in props} for k, r in rows.items()}}
json.dump(summary, open(os.path.join(out, "comparison.json"), "w"), indent=2)
if rows["resynth"] is None:
    print("quality: resynth not scored (no synthesize subcommand); nothing to gate")
elif failed:
    print("quality: FAIL: " + "; ".join(failed))
    sys.exit(1)
else:
    print("quality: OK: each property >= 0.90 or >= SDV's")
EOF
