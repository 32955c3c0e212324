#!/usr/bin/env bash
# Runs every test: starts the real Kafka brokers from deploy/kafka (fetching
# their jars from Maven Central on first use): the plaintext one for most
# tests and the secured one (SASL_SSL, SCRAM, ACLs) for tests/secure_kafka.rs;
# runs the test suite against them, and always stops the brokers it started.
set -euo pipefail
cd "$(dirname "$0")/.."

started_plain=0
started_secure=0
stop() {
  if [[ $started_plain == 1 ]]; then bash deploy/kafka/kafka.sh stop || true; fi
  if [[ $started_secure == 1 ]]; then KAFKA_SECURITY=sasl_ssl bash deploy/kafka/kafka.sh stop || true; fi
}
trap stop EXIT
if ! bash deploy/kafka/kafka.sh status >/dev/null 2>&1; then
  bash deploy/kafka/kafka.sh start
  started_plain=1
fi
if ! KAFKA_SECURITY=sasl_ssl bash deploy/kafka/kafka.sh status >/dev/null 2>&1; then
  KAFKA_SECURITY=sasl_ssl bash deploy/kafka/kafka.sh start
  started_secure=1
fi

export RESYNTH_TEST_BROKERS="$(bash deploy/kafka/kafka.sh bootstrap)"
export RESYNTH_TEST_SECURE_HOME="$(KAFKA_SECURITY=sasl_ssl bash deploy/kafka/kafka.sh home)"
export RESYNTH_TEST_SECURE_BROKERS="$(KAFKA_SECURITY=sasl_ssl bash deploy/kafka/kafka.sh bootstrap)"
cargo test --release --all-targets "$@"
