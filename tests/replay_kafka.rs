//! `resynth replay` against the real broker, on a Synthea population that
//! the test generates (deploy/synthea/synthea.sh: jars from Maven Central,
//! a seeded population of 2 patients aged 20-30; nothing generated is
//! committed). Protects: every resource inside the span reaches its type's
//! topic and nothing outside it does; every record is keyed by its
//! patient's id (and one patient's records share a partition on every
//! topic); event times never go backwards within a partition; the patient
//! topic is compacted; a paced replay takes at least span / speed; a bad
//! line stops the replay before anything is published, naming file and line.
//!
//! The expectations are computed here from the files with serde_json, not
//! with replay's own path tables.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::Value;

use resynth::audit::openlineage::rfc3339;
use resynth::source::text_values::parse_timestamp;

/// The types this test replays and reads back (what the engine's FHIR
/// topologies consume), with the event-time member Synthea writes for each.
const TYPES: &[(&str, Option<&str>)] = &[
    ("Patient", None),
    ("Encounter", Some("/period/start")),
    ("Condition", Some("/onsetDateTime")),
    ("Observation", Some("/effectiveDateTime")),
    ("MedicationRequest", Some("/authoredOn")),
];

fn types_arg() -> String {
    TYPES.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(",")
}

/// The generated population's fhir/ folder (made once per test process).
fn population() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let fhir = common::synthea_population(
            &dir.path().join("pop"),
            "2",
            "1",
            &["--", "-a", "20-30"],
            &[("SYNTHEA_THREADS", "1")],
        );
        (dir, fhir)
    })
    .1
}

/// One resource as this test reads it.
#[derive(Debug, Clone)]
struct Res {
    patient: String,
    time_ms: Option<i64>,
}

fn time_ms(v: &str) -> i64 {
    (parse_timestamp(v).unwrap_or_else(|| panic!("{v}: not a timestamp")) * 1000.0).round() as i64
}

/// Key and event time of a resource of type `ty`, from its JSON.
fn read_resource(ty: &str, json: &Value) -> Res {
    assert_eq!(json["resourceType"], ty);
    let (_, time_path) = TYPES.iter().find(|(t, _)| *t == ty).unwrap();
    match time_path {
        None => Res {
            patient: json["id"].as_str().unwrap().to_string(),
            time_ms: None,
        },
        Some(path) => {
            let reference = json["subject"]["reference"].as_str().unwrap();
            // What Synthea's bulk export writes.
            let patient = reference
                .strip_prefix("Patient/")
                .unwrap_or_else(|| panic!("{ty}.subject.reference is not Patient/<id>"));
            Res {
                patient: patient.to_string(),
                time_ms: Some(time_ms(json.pointer(path).unwrap().as_str().unwrap())),
            }
        }
    }
}

/// Every resource of each replayed type in the files.
fn resources() -> BTreeMap<&'static str, Vec<Res>> {
    TYPES
        .iter()
        .map(|(ty, _)| {
            let text = std::fs::read_to_string(population().join(format!("{ty}.ndjson"))).unwrap();
            let all = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| read_resource(ty, &serde_json::from_str(l).unwrap()))
                .collect();
            (*ty, all)
        })
        .collect()
}

fn in_span(r: &Res, since: i64, until: i64) -> bool {
    r.time_ms.is_none_or(|t| since <= t && t < until)
}

fn topic(prefix: &str, ty: &str) -> String {
    format!("{prefix}{}", ty.to_ascii_lowercase())
}

fn replay(args: &[&str]) -> (std::process::Output, f64) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_resynth"))
        .arg("replay")
        .args(args)
        .output()
        .expect("run resynth replay");
    (out, started.elapsed().as_secs_f64())
}

fn ok_summary(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "resynth replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    common::json_summary(&String::from_utf8_lossy(&out.stdout))
}

fn topic_config(brokers: &str, topic: &str, key: &str) -> Option<String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let got = rt
        .block_on(admin.describe_configs(
            &[ResourceSpecifier::Topic(topic)],
            &AdminOptions::new().request_timeout(Some(Duration::from_secs(10))),
        ))
        .unwrap();
    let resource = got.into_iter().next().unwrap().unwrap();
    resource.get(key).and_then(|e| e.value.clone())
}

fn topic_names(brokers: &str) -> Vec<String> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let m = c.fetch_metadata(None, Duration::from_secs(10)).unwrap();
    m.topics().iter().map(|t| t.name().to_string()).collect()
}

#[test]
fn a_synthea_population_replays_by_patient_and_event_time_within_the_span() {
    let brokers = common::kafka();
    let all = resources();
    // A span that cuts the lifetimes: from the 20th to the 80th percentile
    // of the event times.
    let mut times: Vec<i64> = all.values().flatten().filter_map(|r| r.time_ms).collect();
    times.sort_unstable();
    let (since, until) = (times[times.len() / 5], times[times.len() * 4 / 5]);
    let prefix = format!("{}.", common::unique("replay"));
    let (out, _) = replay(&[
        population().to_str().unwrap(),
        "--brokers",
        brokers,
        "--topic-prefix",
        &prefix,
        "--types",
        &types_arg(),
        "--partitions",
        "3",
        "--since",
        &rfc3339(since),
        "--until",
        &rfc3339(until),
        "--speed",
        "max",
    ]);
    let summary = ok_summary(&out);

    let mut partition_of: HashMap<String, i32> = HashMap::new();
    for (ty, res) in &all {
        let t = topic(&prefix, ty);
        let expected: Vec<&Res> = res.iter().filter(|r| in_span(r, since, until)).collect();
        if *ty != "Patient" {
            assert!(expected.len() < res.len(), "{ty}: the span cuts nothing");
        }
        assert!(!expected.is_empty(), "{ty}: nothing in the span");
        let mut got = common::read_all(brokers, &t);
        assert_eq!(got.len(), expected.len(), "{t}: records in the span");
        assert_eq!(summary["topics"][&t], expected.len() as u64, "{t}: summary");
        got.sort_by_key(|r| (r.partition, r.offset));
        let mut last: HashMap<i32, i64> = HashMap::new();
        let mut expected_keys: BTreeMap<String, usize> = BTreeMap::new();
        for r in &expected {
            *expected_keys.entry(r.patient.clone()).or_default() += 1;
        }
        let mut got_keys: BTreeMap<String, usize> = BTreeMap::new();
        for rec in &got {
            let res = read_resource(ty, &serde_json::from_slice(&rec.payload).unwrap());
            let key = String::from_utf8(rec.key.clone().expect("keyed")).unwrap();
            assert_eq!(key, res.patient, "{t}: key is the patient id");
            *got_keys.entry(key.clone()).or_default() += 1;
            // Same partition count, same partitioner: a patient's records
            // share a partition on every topic.
            let p = *partition_of.entry(key).or_insert(rec.partition);
            assert_eq!(p, rec.partition, "{t}: patient on another partition");
            if let Some(tm) = res.time_ms {
                assert!(since <= tm && tm < until, "{t}: outside the span");
                let prev = last.insert(rec.partition, tm).unwrap_or(i64::MIN);
                assert!(
                    prev <= tm,
                    "{t}: event time went backwards on partition {}",
                    rec.partition
                );
                assert_eq!(
                    rec.header("resynth.replay.event_time"),
                    Some(tm.to_string()),
                    "{t}: event time header"
                );
            }
        }
        assert_eq!(got_keys, expected_keys, "{t}: records per patient");
    }
    let patients = topic(&prefix, "Patient");
    assert_eq!(
        topic_config(brokers, &patients, "cleanup.policy").as_deref(),
        Some("compact")
    );
    assert_eq!(
        topic_config(brokers, &topic(&prefix, "Observation"), "cleanup.policy").as_deref(),
        Some("delete")
    );
    assert_eq!(common::high_watermarks(brokers, &patients).len(), 3);
    assert_eq!(summary["speed"], "max");
    assert!(summary["events_per_sec"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_paced_replay_takes_at_least_span_over_speed() {
    let brokers = common::kafka();
    let all = resources();
    let mut times: Vec<i64> = all["Observation"]
        .iter()
        .chain(&all["Encounter"])
        .filter_map(|r| r.time_ms)
        .collect();
    times.sort_unstable();
    // About 60 events: a span from one event time to a later one, played
    // in 2 s of wall-clock time.
    let i = times.len() / 3;
    let (since, until) = (times[i], times[(i + 60).min(times.len() - 1)] + 1);
    let target_secs = 2.0;
    let speed = (until - since) as f64 / 1000.0 / target_secs;
    let prefix = format!("{}.", common::unique("replay-paced"));
    let (out, wall) = replay(&[
        population().to_str().unwrap(),
        "--brokers",
        brokers,
        "--topic-prefix",
        &prefix,
        "--types",
        "Encounter,Observation",
        "--partitions",
        "1",
        "--since",
        &rfc3339(since),
        "--until",
        &rfc3339(until),
        "--speed",
        &speed.to_string(),
    ]);
    let summary = ok_summary(&out);
    let in_span: Vec<i64> = times
        .iter()
        .copied()
        .filter(|&t| since <= t && t < until)
        .collect();
    let last = *in_span.last().unwrap();
    let floor = (last - since) as f64 / 1000.0 / speed;
    assert!(
        floor > 1.0,
        "the span's events should take over a second: {floor}"
    );
    let publish = summary["publish_secs"].as_f64().unwrap();
    assert!(publish >= floor, "published in {publish} s < {floor} s");
    assert!(wall >= floor, "ran {wall} s < {floor} s");
    assert!(
        publish < floor + 30.0,
        "far slower than the pace: {publish} s"
    );
    let got: usize = ["Encounter", "Observation"]
        .iter()
        .map(|ty| common::read_all(brokers, &topic(&prefix, ty)).len())
        .sum();
    assert_eq!(got, in_span.len());
    assert_eq!(summary["events"], in_span.len() as u64);
}

#[test]
fn a_bad_line_stops_the_replay_before_anything_is_published() {
    let brokers = common::kafka();
    let d = tempfile::tempdir().unwrap();
    let src = std::fs::read_to_string(population().join("Observation.ndjson")).unwrap();
    let mut lines: Vec<String> = src.lines().take(5).map(str::to_string).collect();
    // A truncated resource on line 3.
    let half = lines[2].len() / 2;
    lines[2].truncate(half);
    std::fs::write(d.path().join("Observation.ndjson"), lines.join("\n") + "\n").unwrap();
    let prefix = format!("{}.", common::unique("replay-bad"));
    let (out, _) = replay(&[
        d.path().to_str().unwrap(),
        "--brokers",
        brokers,
        "--topic-prefix",
        &prefix,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Observation.ndjson:3: not a JSON object"),
        "{err}"
    );
    assert!(err.contains("--skip-bad"), "{err}");
    assert!(
        !topic_names(brokers).iter().any(|t| t.starts_with(&prefix)),
        "a topic was created"
    );
    // Skipped and counted instead.
    let (out, _) = replay(&[
        d.path().to_str().unwrap(),
        "--brokers",
        brokers,
        "--topic-prefix",
        &prefix,
        "--skip-bad",
    ]);
    let summary = ok_summary(&out);
    assert_eq!(summary["bad_lines"], 1);
    assert_eq!(summary["events"], 4);
    assert_eq!(
        common::read_all(brokers, &topic(&prefix, "Observation")).len(),
        4
    );
}
