#!/usr/bin/env bash
# Bench (not CI): the whole loop on a Synthea population. Generates N
# patients (Patient, Encounter, Condition, Observation), replays the tables'
# whole history and the streams' span into a real broker under unique topic
# names, then runs topologies/synthea-fhir.toml on it until the feed is idle.
# Prints generation and replay times and the engine's JSON summary (events/s,
# seconds per window, gate verdicts per batch from the audit log).
# Usage: loop-bench.sh N [OUT_DIR]   (env: BROKERS, RESYNTH, SEED, SINCE,
#        UNTIL, PARTITIONS; SYNTHEA_THREADS as for synthea.sh)
# Run it niced on a shared machine: nice -n 19 deploy/synthea/loop-bench.sh 1000
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"
N="${1:?usage: loop-bench.sh N [OUT_DIR]}"
OUT="${2:-$REPO_DIR/target/synthea/pop-$N}"
BROKERS="${BROKERS:-127.0.0.1:19092}"
RESYNTH="${RESYNTH:-$REPO_DIR/target/release/resynth}"
SEED="${SEED:-42}"
SINCE="${SINCE:-2015-01-01}"
UNTIL="${UNTIL:-2025-01-01}"
PARTITIONS="${PARTITIONS:-3}"
RUN="loop-$N-$(date +%s)"
WORK="$REPO_DIR/target/synthea/$RUN"

bash "$SCRIPT_DIR/synthea.sh" fetch
if [[ ! -d "$OUT/fhir" ]]; then
  t0=$(date +%s.%N)
  bash "$SCRIPT_DIR/synthea.sh" generate -p "$N" -s "$SEED" -o "$OUT" -- \
    --exporter.fhir.included_resources=Patient,Encounter,Condition,Observation >/dev/null
  t1=$(date +%s.%N)
  echo "generate -p $N -s $SEED: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
else
  echo "reusing $OUT (remove it to time the generation)"
fi
bash "$SCRIPT_DIR/synthea.sh" counts "$OUT" | tail -n 1
echo "size: $(du -sh "$OUT/fhir" | cut -f1)"

# The shipped topology under unique topics, group and audit dir.
mkdir -p "$WORK"
sed -e "s|\"fhir\.|\"$RUN.fhir.|g" \
    -e "s|^group_id = .*|group_id = \"$RUN\"|" \
    -e "s|^alerts_topic = .*|alerts_topic = \"$RUN.alerts\"|" \
    -e "s|\.\./schemas/|$REPO_DIR/schemas/|" \
    -e "s|^dir = .*|dir = \"$WORK/audit\"|" \
    -e "s|^metrics_addr = .*|metrics_addr = \"\"|" \
    "$REPO_DIR/topologies/synthea-fhir.toml" >"$WORK/topology.toml"

replay() {
  /usr/bin/env time -f "replay $1: wall %e s, user %U s, max RSS %M kB" \
    "$RESYNTH" replay "$OUT" --brokers "$BROKERS" --topic-prefix "$RUN.fhir." \
    --partitions "$PARTITIONS" --speed max "${@:2}" >"$WORK/replay-$1.json"
  python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print("  ", s["events"], "records,", round(s["events_per_sec"]), "records/s")' "$WORK/replay-$1.json"
}
replay tables --types Patient,Condition
replay streams --types Encounter,Observation --since "$SINCE" --until "$UNTIL"

/usr/bin/env time -f "run: wall %e s, user %U s, max RSS %M kB" \
  "$RESYNTH" run "$WORK/topology.toml" --brokers "$BROKERS" --until-idle 5 --json >"$WORK/run.json"
python3 - "$WORK" <<'PY'
import json, sys, pathlib
work = pathlib.Path(sys.argv[1])
s = json.loads(work.joinpath("run.json").read_text().strip().splitlines()[-1])
w = max(s["windows_closed"], 1)
print(f"run: {s['events_in']} events, {s['windows_closed']} windows, "
      f"{s['events_in'] / s['elapsed_secs']:.0f} events/s, {s['elapsed_secs'] / w:.1f} s per window, "
      f"fits {s['refits']}, published {s['batches_published']} ({s['records_published']} records), "
      f"quarantined {s['batches_quarantined']}, dead letters {s['dead_lettered']}, late {s['late']}")
kinds = {}
for line in work.joinpath("audit", "audit.jsonl").read_text().splitlines():
    e = json.loads(line)
    kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    d = e.get("data", {})
    if "batch" in e["kind"]:
        gates = d.get("lineage", {}).get("gates") or d.get("gates") or d.get("failed")
        print(f"  {e['kind']} {d.get('batch_id')}: {gates}")
print("audit entries:", kinds)
PY
