#!/usr/bin/env bash
# Run a real single-node Apache Kafka (KRaft, broker+controller in one JVM) for
# tests and local runs. The broker is plain jars from Maven Central (see pom.xml),
# no download from anywhere else. Usage: kafka.sh help
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"
POM="$SCRIPT_DIR/pom.xml"

# KAFKA_SECURITY=plaintext (default): PLAINTEXT listener, no authentication.
# KAFKA_SECURITY=sasl_ssl: SASL_SSL listener (SCRAM-SHA-512 users made at
# format time, TLS from a test CA made on the fly), StandardAuthorizer with
# allow.everyone.if.no.acl.found=false. Its own home and ports, so both modes
# can run side by side.
KAFKA_SECURITY="${KAFKA_SECURITY:-plaintext}"
KAFKA_HOST="${KAFKA_HOST:-127.0.0.1}"
KAFKA_PORT="${KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
LIBS="${KAFKA_HOME:+$KAFKA_HOME/libs}"
case "$KAFKA_SECURITY" in
  plaintext)
    KAFKA_HOME="${KAFKA_HOME:-$REPO_DIR/target/kafka}"
    PORT="$KAFKA_PORT"
    CONTROLLER_PORT="$KAFKA_CONTROLLER_PORT" ;;
  sasl_ssl)
    KAFKA_HOME="${KAFKA_HOME:-$REPO_DIR/target/kafka-secure}"
    PORT="${KAFKA_SECURE_PORT:-$((KAFKA_PORT + 2))}"
    CONTROLLER_PORT="${KAFKA_SECURE_CONTROLLER_PORT:-$((KAFKA_PORT + 3))}" ;;
  *) echo "kafka.sh: error: KAFKA_SECURITY must be plaintext or sasl_ssl, not '$KAFKA_SECURITY'" >&2; exit 2 ;;
esac
# Without an explicit KAFKA_HOME both modes share one jar cache.
LIBS="${LIBS:-$REPO_DIR/target/kafka/libs}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512m -Xms512m}"
KAFKA_READY_TIMEOUT="${KAFKA_READY_TIMEOUT:-120}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
JAVA="${JAVA:-java}"
MVN="${MVN:-mvn}"

DATA="$KAFKA_HOME/data"
PROPS="$KAFKA_HOME/server.properties"
CLIENT_PROPS="$KAFKA_HOME/client.properties"
TLS="$KAFKA_HOME/tls"
SECRETS="$KAFKA_HOME/secrets"
# The SCRAM users of the secure mode: the super user the tools run as, and the
# engine's principal, which gets only the ACLs granted with grant-engine.
ENGINE_USER="${KAFKA_ENGINE_USER:-resynth}"
LOG="$KAFKA_HOME/server.log"
PIDFILE="$KAFKA_HOME/kafka.pid"
STAMP="$LIBS/.fetched"
BOOTSTRAP="$KAFKA_HOST:$PORT"

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
  mkdir -p "$KAFKA_HOME" "$(dirname "$LIBS")"
  local tmp="$LIBS.tmp.$$"
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
  (
    umask 077
    cat >"$CLIENT_PROPS" <<EOF
request.timeout.ms=5000
default.api.timeout.ms=10000
EOF
    if [[ "$KAFKA_SECURITY" == sasl_ssl ]]; then
      cat >>"$CLIENT_PROPS" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(cat "$SECRETS/admin.password")";
ssl.truststore.type=PEM
ssl.truststore.location=$TLS/ca.pem
EOF
    fi
  )
}

random_secret() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# A test CA and a server certificate for $KAFKA_HOST signed by it, made fresh
# on every secure start (EC P-256: fast). The CA key is deleted once the
# server certificate is signed, so nothing else can be issued under it.
# other-ca.pem is a second CA that signed nothing: a client trusting only it
# must fail the handshake.
make_tls() {
  command -v openssl >/dev/null 2>&1 || die "openssl not found (apt-get install openssl)"
  rm -rf "$TLS"
  mkdir -p "$TLS"
  chmod 755 "$TLS"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
  (
    cd "$TLS"
    umask 077
    openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 2 -subj "/CN=resynth test CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -x509 "${ec[@]}" -keyout other-ca.key -out other-ca.pem -days 2 -subj "/CN=resynth untrusted CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req "${ec[@]}" -keyout server.key -out server.csr -subj "/CN=$KAFKA_HOST"
    printf 'subjectAltName=IP:%s,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n' \
      "$KAFKA_HOST" >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 \
      -extfile server.ext
    openssl pkcs12 -export -in server.pem -inkey server.key -certfile ca.pem -name kafka \
      -out server.p12 -passout "file:$SECRETS/keystore.password"
    rm -f ca.key other-ca.key server.key server.csr server.ext ca.srl
    chmod 644 ca.pem other-ca.pem server.pem
  ) >"$KAFKA_HOME/tls.log" 2>&1 || { cat "$KAFKA_HOME/tls.log" >&2; die "making the test CA and server certificate failed"; }
}

# Random passwords, owner-only: the SCRAM users, the controller's PLAIN user
# and the keystore. Tests read them as `file:` secrets.
make_secrets() {
  rm -rf "$SECRETS"
  mkdir -p "$SECRETS"
  chmod 700 "$SECRETS"
  (
    umask 077
    for name in admin controller "$ENGINE_USER" keystore; do random_secret >"$SECRETS/$name.password"; done
  )
}

# A real metadata request through the admin client.
answering() {
  port_open "$PORT" || return 1
  [[ -f "$CLIENT_PROPS" ]] || write_client_props
  timeout 30 "$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 -Dorg.slf4j.simpleLogger.defaultLogLevel=off \
    -cp "$LIBS/*" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$BOOTSTRAP" --command-config "$CLIENT_PROPS" --list >/dev/null 2>&1
}

write_server_props() {
  if [[ "$KAFKA_SECURITY" == sasl_ssl ]]; then write_secure_server_props; else write_plain_server_props; fi
  if [[ -n "${KAFKA_EXTRA_CONFIG:-}" ]]; then
    printf '# KAFKA_EXTRA_CONFIG\n%s\n' "$KAFKA_EXTRA_CONFIG" >>"$PROPS"
  fi
}

write_plain_server_props() {
  cat >"$PROPS" <<EOF
# written by deploy/kafka/kafka.sh; rewritten on every start
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$KAFKA_HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$KAFKA_HOST:$PORT,CONTROLLER://$KAFKA_HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
auto.create.topics.enable=true
$(single_node_props)
EOF
}

# Storage and internal topics of a single-node broker, shared by both modes.
single_node_props() {
  cat <<EOF
log.dirs=$DATA
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
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
}

# Clients (and the broker to itself) speak SASL_SSL with SCRAM-SHA-512 on
# $PORT; the KRaft controller listener is loopback SASL_PLAINTEXT with a PLAIN
# user only this file knows. Nothing is allowed without an ACL; admin and
# controller are the super users. The file holds passwords: owner-only.
write_secure_server_props() {
  (
    umask 077
    cat >"$PROPS" <<EOF
# written by deploy/kafka/kafka.sh (KAFKA_SECURITY=sasl_ssl); rewritten on every start
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$KAFKA_HOST:$CONTROLLER_PORT
listeners=SASL_SSL://$KAFKA_HOST:$PORT,CONTROLLER://$KAFKA_HOST:$CONTROLLER_PORT
advertised.listeners=SASL_SSL://$KAFKA_HOST:$PORT
inter.broker.listener.name=SASL_SSL
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(cat "$SECRETS/admin.password")";
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="$(cat "$SECRETS/controller.password")" user_controller="$(cat "$SECRETS/controller.password")";
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS/server.p12
ssl.keystore.password=$(cat "$SECRETS/keystore.password")
ssl.truststore.type=PEM
ssl.truststore.location=$TLS/ca.pem
ssl.client.auth=none
ssl.enabled.protocols=TLSv1.3,TLSv1.2
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:controller
auto.create.topics.enable=false
$(single_node_props)
EOF
  )
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
  for p in "$PORT" "$CONTROLLER_PORT"; do
    port_open "$p" && die "port $KAFKA_HOST:$p is already in use by another process"
  done

  local t0=$SECONDS
  rm -rf "$DATA"
  mkdir -p "$DATA"
  local scram=()
  if [[ "$KAFKA_SECURITY" == sasl_ssl ]]; then
    make_secrets
    make_tls
    local u
    for u in admin "$ENGINE_USER"; do
      scram+=(--add-scram "SCRAM-SHA-512=[name=$u,password=$(cat "$SECRETS/$u.password")]")
    done
  fi
  write_server_props
  write_client_props
  local cid; cid="$(random_cluster_id)"
  log "formatting $DATA (cluster id $cid${scram[0]:+, SCRAM-SHA-512 users admin and $ENGINE_USER})"
  if ! "$JAVA" -Xmx256m -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$LIBS/*" \
      kafka.tools.StorageTool format --standalone -t "$cid" -c "$PROPS" "${scram[@]}" >"$KAFKA_HOME/format.log" 2>&1; then
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

need_running() { pid_alive || port_open "$PORT" || die "kafka is not running at $BOOTSTRAP (run '$0 start')"; }

# The minimal ACL set of a read-process-write exactly-once engine (README,
# "Running against a secured Kafka"), created with Kafka's own AclCommand.
# Repeatable flags add several resources at once (one JVM per operation set).
grant_engine() {
  local user="$ENGINE_USER" reads=() writes=() txids=()
  while (($#)); do
    case "$1" in
      --user) user="$2"; shift 2 ;;
      --source) reads+=(--topic "$2"); shift 2 ;;
      --group) reads+=(--group "$2"); shift 2 ;;
      --transactional-id) txids+=(--transactional-id "$2"); shift 2 ;;
      --write) writes+=(--topic "$2"); shift 2 ;;
      *) die "grant-engine: unknown argument '$1' (--user U --source T --group G --transactional-id X --write T ...)" ;;
    esac
  done
  local acl=(run_tool org.apache.kafka.tools.AclCommand --bootstrap-server "$BOOTSTRAP" --command-config "$CLIENT_PROPS"
    --add --allow-principal "User:$user")
  if ((${#reads[@]})); then "${acl[@]}" --operation Read "${reads[@]}" >/dev/null; fi
  if ((${#writes[@]})); then "${acl[@]}" --operation Write "${writes[@]}" >/dev/null; fi
  if ((${#txids[@]})); then "${acl[@]}" --operation Write --operation Describe "${txids[@]}" >/dev/null; fi
  echo "granted User:$user: READ ${reads[*]:-}; WRITE ${writes[*]:-}; WRITE+DESCRIBE ${txids[*]:-}"
}

usage() {
  cat <<EOF
usage: $0 COMMAND
  fetch                       resolve the Kafka jars into $LIBS (cached)
  start                       fresh single-node KRaft broker at $BOOTSTRAP; waits until it answers
  stop                        stop it (TERM, then KILL after ${KAFKA_STOP_TIMEOUT}s); no-op when not running
  status                      exit 0 when running and answering
  topics                      list topics
  create-topic NAME [PARTS]   create a topic (replication 1, default 1 partition) if missing
  tool CLASS [ARGS...]        run a Kafka tool class with the jars on the classpath,
                              e.g. tool org.apache.kafka.tools.consumer.ConsoleConsumer --help
  bootstrap                   print the bootstrap address
  client-config               print the path of the tools' client properties (admin in sasl_ssl mode)
  home                        print \$KAFKA_HOME
  acl ARGS...                 (sasl_ssl) Kafka's AclCommand as admin, e.g. acl --list
  grant-engine [--user U] --source T --group G --transactional-id X --write T [--write T ...]
                              (sasl_ssl) the engine's minimal ACLs for User:U (default $ENGINE_USER);
                              each flag may repeat
env: KAFKA_SECURITY=$KAFKA_SECURITY KAFKA_HOME=$KAFKA_HOME KAFKA_PORT=$KAFKA_PORT KAFKA_CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT
     (sasl_ssl listens on KAFKA_SECURE_PORT=$PORT, its controller on KAFKA_SECURE_CONTROLLER_PORT=$CONTROLLER_PORT)
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
    run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --command-config "$CLIENT_PROPS" --list ;;
  create-topic)
    [[ $# -ge 1 ]] || die "usage: $0 create-topic NAME [PARTITIONS]"
    have_libs || die "jars missing; run '$0 fetch'"
    need_running
    run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --command-config "$CLIENT_PROPS" --create --if-not-exists \
      --topic "$1" --partitions "${2:-1}" --replication-factor 1 ;;
  tool)
    [[ $# -ge 1 ]] || die "usage: $0 tool CLASS [ARGS...]"
    have_libs || die "jars missing; run '$0 fetch'"
    run_tool "$@" ;;
  acl)
    [[ "$KAFKA_SECURITY" == sasl_ssl ]] || die "acl: only with KAFKA_SECURITY=sasl_ssl"
    have_libs || die "jars missing; run '$0 fetch'"
    need_running
    run_tool org.apache.kafka.tools.AclCommand --bootstrap-server "$BOOTSTRAP" --command-config "$CLIENT_PROPS" "$@" ;;
  grant-engine)
    [[ "$KAFKA_SECURITY" == sasl_ssl ]] || die "grant-engine: only with KAFKA_SECURITY=sasl_ssl"
    have_libs || die "jars missing; run '$0 fetch'"
    need_running
    grant_engine "$@" ;;
  client-config) echo "$CLIENT_PROPS" ;;
  home) echo "$KAFKA_HOME" ;;
  bootstrap) echo "$BOOTSTRAP" ;;
  help | -h | --help) usage ;;
  *) usage >&2; exit 2 ;;
esac
