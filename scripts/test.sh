#!/usr/bin/env bash
# Runs every test: starts the real Kafka broker from deploy/kafka (fetching its
# jars from Maven Central on first use), runs the test suite against it, and
# always stops the broker it started.
set -euo pipefail
cd "$(dirname "$0")/.."

started_here=0
if ! bash deploy/kafka/kafka.sh status >/dev/null 2>&1; then
  bash deploy/kafka/kafka.sh start
  started_here=1
fi
stop() { if [[ $started_here == 1 ]]; then bash deploy/kafka/kafka.sh stop || true; fi; }
trap stop EXIT

export RESYNTH_TEST_BROKERS="$(bash deploy/kafka/kafka.sh bootstrap)"
cargo test --release --all-targets "$@"
