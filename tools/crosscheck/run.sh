#!/usr/bin/env bash
# Cross-checks our SDMetrics-style scores and Anonymeter-style risks against
# SDMetrics 0.32.0 and Anonymeter 1.1.0 themselves, on seeded data the gate
# writes, and exits non-zero when any number disagrees beyond its tolerance:
#   - SDMetrics scores (ColumnShapes, ColumnPairTrends and their per-column /
#     per-pair metrics, DCROverfittingProtection and its share): 0.01;
#   - Anonymeter's risk formula recomputed from our own success counts: 1e-9
#     on the gated risk (the estimate, clipped at 0) and on both ends of the
#     reported interval;
#   - our randomised attacks vs Anonymeter's: "within sampling error", as
#     anonymeter_check.py puts it, made precise here: each risk comes with
#     its 95 % half-width e (Anonymeter's Wilson-based error, ours from our
#     counts by the same formula), and their difference is allowed
#     sqrt(e_ours² + e_anonymeter²), the 95 % bound of a difference of two
#     independent estimates. Both attack the same records, so the bound is
#     generous rather than tight: it catches a systematic difference larger
#     than the attacks' own sampling error, not random noise.
#
# Usage (from anywhere; works in the repository root):
#   tools/crosscheck/run.sh
# Environment:
#   RESYNTH_MANIFEST  Cargo.toml to build (default: the repository's own)
#   PYTHON            interpreter for the venv (default: python3)
# The venv lives in target/crosscheck-venv and is reused while its pins hold;
# outputs go to target/crosscheck/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
manifest="${RESYNTH_MANIFEST:-$root/Cargo.toml}"
venv="target/crosscheck-venv"
out="target/crosscheck"
# What the three scripts import: sdmetrics, anonymeter, pandas, numpy (the
# last two come with the first two). Pinned so a release of either cannot
# move the reference under us.
pins="sdmetrics==0.32.0 anonymeter==1.1.0"

started=$SECONDS
if [[ ! -x "$venv/bin/python" ]]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
if [[ "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ]]; then
    t=$SECONDS
    # shellcheck disable=SC2086  # $pins is a list of requirements
    "$venv/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check $pins
    echo "$pins" >"$venv/.pins"
    echo "crosscheck: pip install took $((SECONDS - t)) s"
fi
py="$venv/bin/python"

t=$SECONDS
cargo run --quiet --manifest-path "$manifest" --release --example gate_bench -- \
    crosscheck "$out/sdm"
RESYNTH_CROSSCHECK_DIR="$out/anon" cargo test --quiet --manifest-path "$manifest" \
    --release --lib anonymeter_crosscheck_export -- --ignored
echo "crosscheck: our side (build + export) took $((SECONDS - t)) s"

t=$SECONDS
status=0
"$py" tools/crosscheck/sdmetrics_check.py "$out/sdm/real.csv" "$out/sdm/synthetic.csv" \
    "$out/sdm/metadata.json" --holdout "$out/sdm/holdout.csv" \
    --compare "$out/sdm/ours.json" --tolerance 0.01 >"$out/sdm/sdmetrics.json" || status=$?
echo "crosscheck: SDMetrics took $((SECONDS - t)) s"
t=$SECONDS

for scenario in independent leaky copy; do
    # Anonymeter gets as many singling-out attempts as our gate reports it tried.
    attempts="$("$py" -c '
import json, re, sys
for r in json.load(open(sys.argv[1])):
    m = re.search(r"\((\d+) tried", r["explanation"])
    if m:
        print(m.group(1))
        break
else:
    print(100000)
' "$out/anon/ours_$scenario.json")"
    "$py" tools/crosscheck/anonymeter_check.py --train "$out/anon/train.csv" \
        --holdout "$out/anon/holdout.csv" --synthetic "$out/anon/synthetic_$scenario.csv" \
        --quasi-identifiers age,zip3,weight,height --sensitive dx,lab --n-attacks 2000 \
        --singling-out-max-attempts "$attempts" --seed 0 \
        --ours "$out/anon/ours_$scenario.json" >"$out/anon/anonymeter_$scenario.json"
done
echo "crosscheck: Anonymeter took $((SECONDS - t)) s"

"$py" - "$out" "$status" <<'PY'
import json, math, sys

out, sdm_status = sys.argv[1], int(sys.argv[2])
rows = []  # (metric, ours, reference, |diff|, tolerance, ok)

sdm = json.load(open(f"{out}/sdm/sdmetrics.json"))
for r in sdm["comparison"]["summary"]:
    rows.append((f"SDMetrics {r['metric']}", r["ours"], r["reference"], r["abs_diff"],
                 r["tolerance"], r["ok"]))
for a in sdm["comparison"]["above_tolerance"]:
    rows.append((f"SDMetrics {a['metric']} [{a['item']}]", a.get("resynth"),
                 a.get("sdmetrics"), None, 0.01, False))

def residual(attack, control):
    """Anonymeter's unclipped risk and 95 % half-width for success counts
    (success, total) on training and control."""
    from anonymeter.stats.confidence import residual_success, success_rate
    r = residual_success(
        attack_rate=success_rate(attack[1], attack[0], 0.95),
        control_rate=success_rate(control[1], control[0], 0.95),
    )
    return r.value, r.error

def anonymeter_risk(section):
    """Anonymeter's own unclipped risk and half-width, from its rates."""
    from anonymeter.stats.confidence import SuccessRate, residual_success
    r = residual_success(
        attack_rate=SuccessRate(section["attack_rate"], section["attack_error"]),
        control_rate=SuccessRate(section["control_rate"], section["control_error"]),
    )
    return r.value, r.error

for scenario in ("independent", "leaky", "copy"):
    result = json.load(open(f"{out}/anon/anonymeter_{scenario}.json"))
    for r in result.get("comparison", []):
        attack = r.get("attack", r.get("operator"))
        name = f"Anonymeter {attack} ({scenario})"
        if "error" in r:
            rows.append((name, None, None, None, None, False))
            continue
        ours, formula = r["ours"], r["anonymeter_formula_on_our_counts"]
        upper = (ours.get("interval") or [None, float("nan")])[1]
        d = abs(formula["ci"][1] - upper)
        rows.append((f"{name} formula, upper bound", upper, formula["ci"][1],
                     d, 1e-9, d <= 1e-9 and r["formula_agrees"]))
        d = abs(max(formula["risk"], 0.0) - ours["gated_risk"])
        rows.append((f"{name} formula, gated risk", ours["gated_risk"], max(formula["risk"], 0.0),
                     d, 1e-9, d <= 1e-9))
        if attack.startswith("inference_risk["):
            section = result["anonymeter"]["inference"].get(attack[len("inference_risk["):-1])
        else:
            section = result["anonymeter"].get(attack.removesuffix("_risk"))
        if section is None:
            continue
        theirs, e_theirs = anonymeter_risk(section)
        # Ours from our counts (the formula agrees, checked above), not
        # from the 3 decimals the explanation prints.
        mine, e_mine = residual(ours["successes"], ours["control"])
        tol = math.hypot(e_mine, e_theirs)
        d = abs(mine - theirs)
        rows.append((f"{name} risk", mine, theirs, d, tol, d <= tol))

def fmt(x, digits=4):
    if x is None:
        return "-"
    if isinstance(x, bool):
        return str(x)
    return f"{x:.{digits}g}" if abs(x) < 1e-3 and x != 0 else f"{x:.{digits}f}"

width = max(len(r[0]) for r in rows)
print(f"{'metric':{width}}  {'ours':>9}  {'reference':>9}  {'|diff|':>9}  {'tolerance':>9}  ok")
for name, ours, ref, d, tol, ok in rows:
    print(f"{name:{width}}  {fmt(ours):>9}  {fmt(ref):>9}  {fmt(d):>9}  {fmt(tol):>9}  "
          f"{'ok' if ok else 'FAIL'}")
failed = [r[0] for r in rows if not r[5]]
if sdm_status not in (0, 1):
    failed.append(f"sdmetrics_check.py exited {sdm_status}")
print(f"{len(rows) - len(failed)} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)
PY
echo "crosscheck: $((SECONDS - started)) s in all"
