#!/usr/bin/env bash
# Synthea (MITRE's rule-based patient simulator) as plain jars from Maven
# Central (see pom.xml), no download from anywhere else: fetch them, and write
# a seeded population as FHIR R4 bulk ndjson (one file per resource type).
# Usage: synthea.sh help
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"
POM="$SCRIPT_DIR/pom.xml"

SYNTHEA_HOME="${SYNTHEA_HOME:-$REPO_DIR/target/synthea}"
LIBS="$SYNTHEA_HOME/libs"
STAMP="$LIBS/.fetched"
SYNTHEA_HEAP_OPTS="${SYNTHEA_HEAP_OPTS:--Xmx2g}"
# Synthea's worker threads (its default, -1, is one per core).
SYNTHEA_THREADS="${SYNTHEA_THREADS:--1}"
# Fixed default reference and end dates: without them Synthea simulates up to
# "now", so two runs with the same seed on different days (or even minutes)
# differ. Empty values mean Synthea's own default (now).
SYNTHEA_REFERENCE_DATE="${SYNTHEA_REFERENCE_DATE-20250101}"
SYNTHEA_END_DATE="${SYNTHEA_END_DATE-$SYNTHEA_REFERENCE_DATE}"
JAVA="${JAVA:-java}"
MVN="${MVN:-mvn}"

log() { echo "synthea.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Serialise fetch between concurrent callers (e.g. parallel tests).
with_lock() {
  mkdir -p "$SYNTHEA_HOME"
  exec 9>"$SYNTHEA_HOME/.lock"
  if command -v flock >/dev/null 2>&1; then
    flock -w 600 9 || die "another synthea.sh holds $SYNTHEA_HOME/.lock for over 600s"
  fi
}

pom_hash() { sha256sum "$POM" | cut -d' ' -f1; }

have_libs() {
  [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(pom_hash)" ]] && compgen -G "$LIBS/synthea-*.jar" >/dev/null
}

do_fetch() {
  if have_libs; then
    log "jars already in $LIBS"
    return 0
  fi
  command -v "$MVN" >/dev/null 2>&1 || die "maven ($MVN) not found; install it (apt-get install maven)"
  mkdir -p "$SYNTHEA_HOME"
  local tmp="$LIBS.tmp.$$"
  rm -rf "$tmp"
  # outputDirectory must be absolute: Maven resolves a relative one against the pom's folder.
  local args=(-B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies "-DoutputDirectory=$tmp")
  # Maven's own default local repository (~/.m2/repository) unless told otherwise.
  if [[ -n "${SYNTHEA_M2_REPO:-}" ]]; then args+=("-Dmaven.repo.local=$SYNTHEA_M2_REPO"); fi
  log "resolving Synthea jars with maven into $LIBS"
  local mvnlog="$SYNTHEA_HOME/fetch.log"
  if ! "$MVN" "${args[@]}" >"$mvnlog" 2>&1; then
    cat "$mvnlog" >&2
    rm -rf "$tmp"
    die "maven could not resolve the Synthea jars (see output above, also in $mvnlog)"
  fi
  compgen -G "$tmp/synthea-*.jar" >/dev/null || { rm -rf "$tmp"; die "no synthea jar resolved"; }
  pom_hash >"$tmp/.fetched"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  log "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars ($(du -sh "$LIBS" | cut -f1))"
}

need_libs() { have_libs || die "jars missing; run '$0 fetch'"; }

# Per resource type: the number of lines (= resources) of each ndjson file.
do_counts() {
  local dir="$1"
  [[ -d "$dir/fhir" ]] || die "no $dir/fhir (not a 'generate' output folder?)"
  local f n total=0
  for f in "$dir"/fhir/*.ndjson; do
    [[ -e "$f" ]] || die "no ndjson files in $dir/fhir"
    n="$(wc -l <"$f")"
    total=$((total + n))
    printf '%-28s %9d\n' "$(basename "$f" .ndjson)" "$n"
  done
  printf '%-28s %9d\n' "total" "$total"
}

# A digest of the population that ignores line order (Synthea's worker
# threads write the patients in any order): sha256 of the sorted lines.
do_digest() {
  local dir="$1"
  [[ -d "$dir/fhir" ]] || die "no $dir/fhir (not a 'generate' output folder?)"
  local f
  for f in "$dir"/fhir/*.ndjson; do
    printf '%-28s %s\n' "$(basename "$f" .ndjson)" "$(LC_ALL=C sort "$f" | sha256sum | cut -d' ' -f1)"
  done
}

do_generate() {
  local pop="" seed="" out="" ref="$SYNTHEA_REFERENCE_DATE" end="$SYNTHEA_END_DATE"
  while [[ $# -gt 0 ]]; do
    case "$1" in
      -p) [[ $# -ge 2 ]] || die "-p needs a number"; pop="$2"; shift 2 ;;
      -s) [[ $# -ge 2 ]] || die "-s needs a number"; seed="$2"; shift 2 ;;
      -o) [[ $# -ge 2 ]] || die "-o needs a folder"; out="$2"; shift 2 ;;
      -r) [[ $# -ge 2 ]] || die "-r needs a date YYYYMMDD"; ref="$2"; shift 2 ;;
      -e) [[ $# -ge 2 ]] || die "-e needs a date YYYYMMDD"; end="$2"; shift 2 ;;
      --) shift; break ;;
      *) break ;;
    esac
  done
  [[ "$pop" =~ ^[0-9]+$ && "$pop" -gt 0 ]] || die "generate: -p N (a positive population size) is required"
  [[ "$seed" =~ ^-?[0-9]+$ ]] || die "generate: -s SEED (an integer) is required"
  [[ -n "$out" ]] || die "generate: -o DIR is required"
  if [[ -n "$ref" && ! "$ref" =~ ^[0-9]{8}$ ]]; then die "generate: -r takes YYYYMMDD, not '$ref'"; fi
  if [[ -n "$end" && ! "$end" =~ ^[0-9]{8}$ ]]; then die "generate: -e takes YYYYMMDD, not '$end'"; fi
  need_libs
  command -v "$JAVA" >/dev/null 2>&1 || die "java ($JAVA) not found; install a JDK 17 (apt-get install openjdk-17-jre-headless)"
  if [[ -e "$out/fhir" ]]; then
    # Synthea appends to existing bulk files: never mix two populations.
    die "$out/fhir exists; remove it or choose another -o"
  fi
  mkdir -p "$out"
  out="$(cd "$out" && pwd)"

  local args=(-p "$pop" -s "$seed" -cs "$seed")
  if [[ -n "$ref" ]]; then args+=(-r "$ref"); fi
  if [[ -n "$end" ]]; then args+=(-e "$end"); fi
  args+=(
    "--exporter.baseDirectory=$out/"
    --exporter.fhir.export=true
    --exporter.fhir.bulk_data=true
    --exporter.fhir.transaction_bundle=false
    --exporter.hospital.fhir.export=false
    --exporter.practitioner.fhir.export=false
    --exporter.groups.fhir.export=false
    --exporter.metadata.export=false
    --exporter.ccda.export=false
    --exporter.csv.export=false
    --exporter.json.export=false
    --exporter.text.export=false
    --exporter.clinical_note.export=false
    --exporter.cpcds.export=false
    --exporter.bfd.export=false
    --exporter.cdw.export=false
    --exporter.symptoms.csv.export=false
    --exporter.pretty_print=false
    "--generate.thread_pool_size=$SYNTHEA_THREADS"
    --generate.log_patients.detail=none
  )
  args+=("$@")

  log "generating $pop patients (seed $seed, reference ${ref:-now}, end ${end:-now}) into $out/fhir"
  local t0 t1 runlog="$out/synthea.log"
  t0="$(date +%s.%N)"
  # Synthea writes some scratch files relative to its working directory.
  # SYNTHEA_HEAP_OPTS is a list of JVM flags: split on purpose.
  # shellcheck disable=SC2086
  if ! (cd "$out" && "$JAVA" $SYNTHEA_HEAP_OPTS -cp "$LIBS/*" App "${args[@]}") >"$runlog" 2>&1; then
    tail -n 40 "$runlog" >&2
    die "synthea failed (see output above, all of it in $runlog)"
  fi
  t1="$(date +%s.%N)"
  compgen -G "$out/fhir/*.ndjson" >/dev/null || { tail -n 40 "$runlog" >&2; die "synthea wrote no ndjson into $out/fhir"; }
  log "done in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s; resources per type:"
  do_counts "$out"
}

usage() {
  cat <<EOF
usage: $0 COMMAND
  fetch                         resolve Synthea and its dependency jars into $LIBS (cached)
  generate -p N -s SEED -o DIR [-r YYYYMMDD] [-e YYYYMMDD] [SYNTHEA ARGS...]
                                write N patients as FHIR R4 bulk ndjson into DIR/fhir/ (one
                                file per resource type, other exporters off) and print the
                                resources per type; -r/-e: reference and end date (default
                                $SYNTHEA_REFERENCE_DATE, fixed so that a seed gives the same
                                population on any day; '' = now). Further args go to Synthea's
                                App, e.g. --exporter.years_of_history=0 (whole lifetimes;
                                default 10 years) or a state: Massachusetts
  counts DIR                    resources per type of a generated folder
  digest DIR                    per type, sha256 of the sorted lines (order-independent)
  libs                          print the jar folder (java -cp "\$(synthea.sh libs)/*" App ...)
env: SYNTHEA_HOME=$SYNTHEA_HOME SYNTHEA_M2_REPO=${SYNTHEA_M2_REPO:-} SYNTHEA_HEAP_OPTS="$SYNTHEA_HEAP_OPTS"
     SYNTHEA_THREADS=$SYNTHEA_THREADS SYNTHEA_REFERENCE_DATE=$SYNTHEA_REFERENCE_DATE SYNTHEA_END_DATE=$SYNTHEA_END_DATE
EOF
}

cmd="${1:-help}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  fetch) with_lock; do_fetch ;;
  generate) do_generate "$@" ;;
  counts) [[ $# -eq 1 ]] || die "usage: $0 counts DIR"; do_counts "$1" ;;
  digest) [[ $# -eq 1 ]] || die "usage: $0 digest DIR"; do_digest "$1" ;;
  libs) echo "$LIBS" ;;
  help | -h | --help) usage ;;
  *) usage >&2; exit 2 ;;
esac
