#!/usr/bin/env bash
# Runs tools/openlineage/check.py in a venv with the official OpenLineage
# Python client (pinned), jsonschema and cryptography; the venv lives in
# target/openlineage-venv and is reused while its pins hold.
# Usage: tools/openlineage/run.sh events FILE... | serve PORT FILE SECS | dsse ENVELOPE PEM
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/target/openlineage-venv"
pins="openlineage-python==1.54.0 jsonschema==4.26.0 cryptography==48.0.0"
mkdir -p "$root/target"
exec 9>"$root/target/.openlineage-venv.lock"
flock -w 300 9
if [[ ! -x "$venv/bin/python" ]]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
if [[ "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ]]; then
    # shellcheck disable=SC2086  # $pins is a list of requirements
    "$venv/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check $pins >&2
    echo "$pins" >"$venv/.pins"
fi
flock -u 9
exec "$venv/bin/python" "$root/tools/openlineage/check.py" "$@"
