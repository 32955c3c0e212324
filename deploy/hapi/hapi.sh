#!/usr/bin/env bash
# HAPI FHIR's R4 validator (ca.uhn.hapi.fhir, plain jars from Maven Central,
# see pom.xml), no download from anywhere else: an implementation independent
# of resynth that parses and validates FHIR resources written as ndjson.
# Usage: hapi.sh help
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"
POM="$SCRIPT_DIR/pom.xml"
SRC="$SCRIPT_DIR/src/main/java/resynth/hapi/Validate.java"

HAPI_HOME="${HAPI_HOME:-$REPO_DIR/target/hapi}"
LIBS="$HAPI_HOME/libs"
CLASSES="$HAPI_HOME/classes"
STAMP="$HAPI_HOME/.fetched"
HAPI_HEAP_OPTS="${HAPI_HEAP_OPTS:--Xmx1g}"
JAVA="${JAVA:-java}"
JAVAC="${JAVAC:-javac}"
MVN="${MVN:-mvn}"

log() { echo "hapi.sh: $*" >&2; }
die() { log "error: $*"; exit 2; }

# Serialise fetch between concurrent callers (e.g. parallel tests).
with_lock() {
  mkdir -p "$HAPI_HOME"
  exec 9>"$HAPI_HOME/.lock"
  if command -v flock >/dev/null 2>&1; then
    flock -w 600 9 || die "another hapi.sh holds $HAPI_HOME/.lock for over 600s"
  fi
}

# The jars and the compiled validator follow the pom and the source.
stamp() { cat "$POM" "$SRC" | sha256sum | cut -d' ' -f1; }

have_build() {
  [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(stamp)" ]] &&
    compgen -G "$LIBS/hapi-fhir-validation-*.jar" >/dev/null &&
    [[ -f "$CLASSES/resynth/hapi/Validate.class" ]]
}

do_fetch() {
  if have_build; then
    log "validator already built in $HAPI_HOME"
    return 0
  fi
  command -v "$MVN" >/dev/null 2>&1 || die "maven ($MVN) not found; install it (apt-get install maven)"
  command -v "$JAVAC" >/dev/null 2>&1 || die "javac ($JAVAC) not found; install a JDK 17 (apt-get install openjdk-17-jdk-headless)"
  mkdir -p "$HAPI_HOME"
  local tmp="$HAPI_HOME/build.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp/classes"
  # outputDirectory must be absolute: Maven resolves a relative one against the pom's folder.
  local args=(-B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies "-DoutputDirectory=$tmp/libs")
  # Maven's own default local repository (~/.m2/repository) unless told otherwise.
  if [[ -n "${HAPI_M2_REPO:-}" ]]; then args+=("-Dmaven.repo.local=$HAPI_M2_REPO"); fi
  log "resolving HAPI FHIR jars with maven into $LIBS"
  local mvnlog="$HAPI_HOME/fetch.log"
  if ! "$MVN" "${args[@]}" >"$mvnlog" 2>&1; then
    cat "$mvnlog" >&2
    rm -rf "$tmp"
    die "maven could not resolve the HAPI FHIR jars (see output above, also in $mvnlog)"
  fi
  compgen -G "$tmp/libs/hapi-fhir-validation-*.jar" >/dev/null || { rm -rf "$tmp"; die "no hapi-fhir-validation jar resolved"; }
  log "compiling the validator"
  if ! "$JAVAC" -nowarn -encoding UTF-8 --release 17 -d "$tmp/classes" -cp "$tmp/libs/*" "$SRC" >"$HAPI_HOME/javac.log" 2>&1; then
    cat "$HAPI_HOME/javac.log" >&2
    rm -rf "$tmp"
    die "javac failed"
  fi
  rm -rf "$LIBS" "$CLASSES"
  mv "$tmp/libs" "$LIBS"
  mv "$tmp/classes" "$CLASSES"
  rm -rf "$tmp"
  stamp >"$STAMP"
  log "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars ($(du -sh "$LIBS" | cut -f1)) and built the validator"
}

do_validate() {
  have_build || die "validator not built; run '$0 fetch'"
  command -v "$JAVA" >/dev/null 2>&1 || die "java ($JAVA) not found; install a JDK 17 (apt-get install openjdk-17-jdk-headless)"
  # HAPI logs through slf4j-simple to stderr; warnings about its own packaged
  # resources are noise here, so only errors are logged. The verdicts are on stdout.
  # HAPI_HEAP_OPTS is a list of JVM flags: split on purpose.
  # shellcheck disable=SC2086
  exec "$JAVA" $HAPI_HEAP_OPTS -Xshare:auto \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=error \
    -cp "$CLASSES:$LIBS/*" resynth.hapi.Validate "$@"
}

usage() {
  cat <<EOF2
usage: $0 COMMAND
  fetch                         resolve HAPI FHIR $(grep -o '<hapi.version>[^<]*' "$POM" | cut -d'>' -f2) and its dependency jars into
                                $LIBS and compile the validator (cached; rebuilt when
                                pom.xml or Validate.java change)
  validate [--check-references] FILE.ndjson...
                                validate every resource (one JSON resource per line; '-' =
                                stdin) with HAPI's R4 instance validator; print one JSON line
                                per resource (errors, warnings, information, each with HAPI's
                                message id and location) and a last {"summary": ...} line with
                                the counts. --check-references: every Type/id reference must
                                name a resource of the input. Exit 0 no errors, 1 errors, 2
                                usage or setup problem
  libs                          print the jar folder
env: HAPI_HOME=$HAPI_HOME HAPI_M2_REPO=${HAPI_M2_REPO:-} HAPI_HEAP_OPTS="$HAPI_HEAP_OPTS"
EOF2
}

cmd="${1:-help}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  fetch) with_lock; do_fetch ;;
  validate) do_validate "$@" ;;
  libs) echo "$LIBS" ;;
  help | -h | --help) usage ;;
  *) usage >&2; exit 2 ;;
esac
