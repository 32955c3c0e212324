#!/usr/bin/env bash
# Bench (not CI): generate a Synthea population and replay it at --speed max
# into a real broker; prints generation time, resources, and replay's JSON
# summary (index_secs, publish_secs, events_per_sec).
# Usage: replay-bench.sh N [OUT_DIR]   (env: BROKERS, RESYNTH, SEED, TYPES,
#        SINCE, UNTIL, PARTITIONS; SYNTHEA_THREADS as for synthea.sh)
# Run it niced on a shared machine: nice -n 19 deploy/synthea/replay-bench.sh 200
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"
N="${1:?usage: replay-bench.sh N [OUT_DIR]}"
OUT="${2:-$REPO_DIR/target/synthea/bench-$N}"
BROKERS="${BROKERS:-127.0.0.1:19092}"
RESYNTH="${RESYNTH:-$REPO_DIR/target/release/resynth}"
SEED="${SEED:-42}"
PARTITIONS="${PARTITIONS:-3}"
PREFIX="bench-$N-$(date +%s)."

bash "$SCRIPT_DIR/synthea.sh" fetch
if [[ ! -d "$OUT/fhir" ]]; then
  t0=$(date +%s.%N)
  bash "$SCRIPT_DIR/synthea.sh" generate -p "$N" -s "$SEED" -o "$OUT" >/dev/null
  t1=$(date +%s.%N)
  echo "generate -p $N -s $SEED: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
else
  echo "reusing $OUT (remove it to time the generation)"
fi
bash "$SCRIPT_DIR/synthea.sh" counts "$OUT" | tail -n 1
echo "size: $(du -sh "$OUT/fhir" | cut -f1)"
args=("$OUT" --brokers "$BROKERS" --topic-prefix "$PREFIX" --partitions "$PARTITIONS" --speed max)
[[ -n "${TYPES:-}" ]] && args+=(--types "$TYPES")
[[ -n "${SINCE:-}" ]] && args+=(--since "$SINCE")
[[ -n "${UNTIL:-}" ]] && args+=(--until "$UNTIL")
/usr/bin/env time -f "replay: wall %e s, user %U s, max RSS %M kB" "$RESYNTH" replay "${args[@]}"
