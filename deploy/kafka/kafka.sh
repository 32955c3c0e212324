#!/usr/bin/env bash
# Run a real single-node Apache Kafka (KRaft, broker+controller in one JVM) for
# tests and local runs. The broker is plain jars from Maven Central (see pom.xml),
# no download from anywhere else. Usage: kafka.sh help
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"
POM="$SCRIPT_DIR/pom.xml"

KAFKA_HOME="${KAFKA_HOME:-$REPO_DIR/target/kafka}"
KAFKA_HOST="${KAFKA_HOST:-127.0.0.1}"
KAFKA_PORT="${KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512m -Xms512m}"
KAFKA_READY_TIMEOUT="${KAFKA_READY_TIMEOUT:-120}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
JAVA="${JAVA:-java}"
MVN="${MVN:-mvn}"

LIBS="$KAFKA_HOME/libs"
DATA="$KAFKA_HOME/data"
PROPS="$KAFKA_HOME/server.properties"
CLIENT_PROPS="$KAFKA_HOME/client.properties"
LOG="$KAFKA_HOME/server.log"
PIDFILE="$KAFKA_HOME/kafka.pid"
STAMP="$LIBS/.fetched"
BOOTSTRAP="$KAFKA_HOST:$KAFKA_PORT"

log() { echo "kafka.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Serialise start/stop/fetch between concurrent callers (e.g. parallel tests).
with_lock() {
  mkdir -p "$KAFKA_HOME"
  exec 9>"$KAFKA_HOME/.lock"
  if command -v flock >/dev/null 2>&1; then
    flock -w 300 9 || die "another kafka.sh holds $KAFKA_HOME/.lock for over 300s"
  fi
}

pom_hash() { sha256sum "$POM" | cut -d' ' -f1; }

have_libs() {
  [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(pom_hash)" ]] && compgen -G "$LIBS/kafka_2.13-*.jar" >/dev/null
}

do_fetch() {
  if have_libs; then
    log "jars already in $LIBS"
    return 0
  fi
  command -v "$MVN" >/dev/null 2>&1 || die "maven ($MVN) not found; install it (apt-get install maven)"
  mkdir -p "$KAFKA_HOME"
  local tmp="$KAFKA_HOME/libs.tmp.$$"
  rm -rf "$tmp"
  local args=(-B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies "-DoutputDirectory=$tmp")
  # Maven's own default local repository (~/.m2/repository) unless told otherwise.
  if [[ -n "${KAFKA_M2_REPO:-}" ]]; then args+=("-Dmaven.repo.local=$KAFKA_M2_REPO"); fi
  log "resolving Kafka jars with maven into $LIBS"
  local mvnlog="$KAFKA_HOME/fetch.log"
  if ! "$MVN" "${args[@]}" >"$mvnlog" 2>&1; then
    cat "$mvnlog" >&2
    rm -rf "$tmp"
    die "maven could not resolve the Kafka jars (see output above, also in $mvnlog)"
  fi
  compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || { rm -rf "$tmp"; die "no kafka_2.13 jar resolved"; }
  pom_hash >"$tmp/.fetched"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  log "fetched $(ls "$LIBS" | wc -l) jars"
}

# Run a class from the Kafka jars as a client tool (quiet logging).
run_tool() {
  local cls="$1"; shift
  "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 -Xshare:auto \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
    -cp "$LIBS/*" "$cls" "$@"
}

pid_alive() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid; pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # guard against pid reuse by an unrelated process
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
}

port_open() { (exec 3<>"/dev/tcp/$KAFKA_HOST/$1") 2>/dev/null; }

write_client_props() {
  cat >"$CLIENT_PROPS" <<EOF
request.timeout.ms=5000
default.api.timeout.ms=10000
EOF
}

# A real metadata request through the admin client.
answering() {
  port_open "$KAFKA_PORT" || return 1
  [[ -f "$CLIENT_PROPS" ]] || write_client_props
  timeout 30 "$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 -Dorg.slf4j.simpleLogger.defaultLogLevel=off \
    -cp "$LIBS/*" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$BOOTSTRAP" --command-config "$CLIENT_PROPS" --list >/dev/null 2>&1
}

write_server_props() {
  cat >"$PROPS" <<EOF
# written by deploy/kafka/kafka.sh; rewritten on every start
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# abort transactions of crashed producers soon after their transaction.timeout.ms
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
EOF
  if [[ -n "${KAFKA_EXTRA_CONFIG:-}" ]]; then
    printf '# KAFKA_EXTRA_CONFIG\n%s\n' "$KAFKA_EXTRA_CONFIG" >>"$PROPS"
  fi
}

# Kafka cluster ids are 16 random bytes in URL-safe base64 without padding (22 chars);
# one starting with '-' would be read as a command-line flag, so draw again.
random_cluster_id() {
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" != -* ]] && { echo "$id"; return; }
  done
}

do_start() {
  if pid_alive; then
    if answering; then
      echo "kafka already running (pid $(cat "$PIDFILE")) at $BOOTSTRAP"
      return 0
    fi
    die "kafka process $(cat "$PIDFILE") is alive but does not answer at $BOOTSTRAP; run '$0 stop' first"
  fi
  rm -f "$PIDFILE"
  do_fetch
  command -v "$JAVA" >/dev/null 2>&1 || die "java ($JAVA) not found; Kafka 4.x needs Java 17+"
  for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    port_open "$p" && die "port $KAFKA_HOST:$p is already in use by another process"
  done

  local t0=$SECONDS
  rm -rf "$DATA"
  mkdir -p "$DATA"
  write_server_props
  write_client_props
  local cid; cid="$(random_cluster_id)"
  log "formatting $DATA (cluster id $cid)"
  if ! "$JAVA" -Xmx256m -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$LIBS/*" \
      kafka.tools.StorageTool format --standalone -t "$cid" -c "$PROPS" >"$KAFKA_HOME/format.log" 2>&1; then
    cat "$KAFKA_HOME/format.log" >&2
    die "storage format failed"
  fi

  log "starting broker, log in $LOG"
  # Detached: own session, no inherited stdio, so callers that capture our output
  # (e.g. a test harness) do not wait for the broker to exit; fd 9 (our lock) is
  # closed so the broker does not hold the lock for its lifetime.
  local launcher=()
  command -v setsid >/dev/null 2>&1 && launcher=(setsid)
  # shellcheck disable=SC2086
  nohup "${launcher[@]}" "$JAVA" $KAFKA_HEAP_OPTS -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true \
    -Dorg.slf4j.simpleLogger.defaultLogLevel="${KAFKA_LOG_LEVEL:-info}" \
    -Dorg.slf4j.simpleLogger.showDateTime=true \
    -Dorg.slf4j.simpleLogger.dateTimeFormat="yyyy-MM-dd'T'HH:mm:ss.SSS" \
    -cp "$LIBS/*" kafka.Kafka "$PROPS" >"$LOG" 2>&1 </dev/null 9>&- &
  local pid=$!
  echo "$pid" >"$PIDFILE"

  local deadline=$((SECONDS + KAFKA_READY_TIMEOUT))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "broker exited during startup; last lines of $LOG:"
      tail -n 60 "$LOG" >&2 || true
      rm -f "$PIDFILE"
      exit 1
    fi
    if answering; then break; fi
    if ((SECONDS >= deadline)); then
      log "broker not answering after ${KAFKA_READY_TIMEOUT}s; last lines of $LOG:"
      tail -n 60 "$LOG" >&2 || true
      do_stop >/dev/null 2>&1 || true
      exit 1
    fi
    sleep 0.5
  done
  log "ready after $((SECONDS - t0))s (pid $pid)"
  echo "kafka ready at $BOOTSTRAP"
}

do_stop() {
  if [[ ! -f "$PIDFILE" ]]; then
    echo "kafka not running"
    return 0
  fi
  local pid; pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  if ! pid_alive; then
    rm -f "$PIDFILE"
    echo "kafka not running (removed stale pid file)"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    log "broker did not stop within ${KAFKA_STOP_TIMEOUT}s; killing"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$PIDFILE"
  echo "kafka stopped"
}

do_status() {
  if pid_alive && answering; then
    echo "kafka running (pid $(cat "$PIDFILE")) at $BOOTSTRAP"
    return 0
  fi
  echo "kafka not running at $BOOTSTRAP"
  return 1
}

need_running() { pid_alive || port_open "$KAFKA_PORT" || die "kafka is not running at $BOOTSTRAP (run '$0 start')"; }

usage() {
  cat <<EOF
usage: $0 COMMAND
  fetch                       resolve the Kafka jars into \$KAFKA_HOME/libs (cached)
  start                       fresh single-node KRaft broker at $BOOTSTRAP; waits until it answers
  stop                        stop it (TERM, then KILL after ${KAFKA_STOP_TIMEOUT}s); no-op when not running
  status                      exit 0 when running and answering
  topics                      list topics
  create-topic NAME [PARTS]   create a topic (replication 1, default 1 partition) if missing
  tool CLASS [ARGS...]        run a Kafka tool class with the jars on the classpath,
                              e.g. tool org.apache.kafka.tools.consumer.ConsoleConsumer --help
  bootstrap                   print the bootstrap address
env: KAFKA_HOME=$KAFKA_HOME KAFKA_PORT=$KAFKA_PORT KAFKA_CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT
EOF
}

cmd="${1:-help}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  fetch) with_lock; do_fetch ;;
  start) with_lock; do_start ;;
  stop) with_lock; do_stop ;;
  status) do_status ;;
  topics)
    have_libs || die "jars missing; run '$0 fetch'"
    need_running
    run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --list ;;
  create-topic)
    [[ $# -ge 1 ]] || die "usage: $0 create-topic NAME [PARTITIONS]"
    have_libs || die "jars missing; run '$0 fetch'"
    need_running
    run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
      --topic "$1" --partitions "${2:-1}" --replication-factor 1 ;;
  tool)
    [[ $# -ge 1 ]] || die "usage: $0 tool CLASS [ARGS...]"
    have_libs || die "jars missing; run '$0 fetch'"
    run_tool "$@" ;;
  bootstrap) echo "$BOOTSTRAP" ;;
  help | -h | --help) usage ;;
  *) usage >&2; exit 2 ;;
esac
