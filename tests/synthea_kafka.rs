//! Synthea end to end (issue 13), on the real broker: the test generates a
//! seeded Synthea population (deploy/synthea/synthea.sh: jars from Maven
//! Central; nothing generated is committed), `resynth replay` publishes three
//! years of it to one topic per resource type, and the shipped
//! `topologies/synthea-fhir.toml` (four FHIR sources: observations and
//! encounters as streams, conditions and patients as tables) runs the whole
//! loop on it: windows, fit, gates, publish.
//!
//! Protects: every Synthea resource decodes (no dead letter), each window's
//! training table holds exactly the patients with an Observation in it
//! (computed here from the files with serde_json, not with the engine's
//! paths), every window is gated and either
//! published or quarantined, and what is published decodes with the shipped
//! output schema, carries lineage and names no real patient.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use resynth::audit::openlineage::rfc3339;
use resynth::engine::{self, Progress, RunOptions};
use resynth::schema::RecordSchema;
use resynth::source::text_values::parse_timestamp;
use resynth::topology::Topology;

/// Living patients asked of Synthea (it adds the dead it simulated).
const PATIENTS: &str = "120";
const SEED: &str = "42";
/// Windows replayed: the last ones before Synthea's fixed end date.
const WINDOWS: i64 = 3;

fn time_ms(v: &str) -> i64 {
    (parse_timestamp(v).unwrap_or_else(|| panic!("{v}: not a timestamp")) * 1000.0).round() as i64
}

fn lines(fhir: &Path, ty: &str) -> Vec<Value> {
    std::fs::read_to_string(fhir.join(format!("{ty}.ndjson")))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// What each window's training table must hold, from the files: per window
/// start, the patients with an Observation in it.
fn expected(fhir: &Path, size_ms: i64, since: i64, until: i64) -> BTreeMap<i64, BTreeSet<String>> {
    let patients: BTreeSet<String> = lines(fhir, "Patient")
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    let mut seen: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for o in lines(fhir, "Observation") {
        let t = time_ms(o["effectiveDateTime"].as_str().unwrap());
        if t < since || t >= until {
            continue;
        }
        let patient = o["subject"]["reference"]
            .as_str()
            .unwrap()
            .strip_prefix("Patient/")
            .unwrap()
            .to_string();
        assert!(
            patients.contains(&patient),
            "an Observation of a known Patient"
        );
        seen.entry(t.div_euclid(size_ms) * size_ms)
            .or_default()
            .insert(patient);
    }
    seen
}

/// `resynth replay` of the population to topics named `prefix` + type.
fn replay(fhir: &Path, brokers: &str, prefix: &str, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_resynth"))
        .arg("replay")
        .arg(fhir)
        .args(["--brokers", brokers, "--topic-prefix", prefix])
        .args(args)
        .output()
        .expect("run resynth replay");
    assert!(
        out.status.success(),
        "resynth replay: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    common::json_summary(&String::from_utf8_lossy(&out.stdout))
}

/// The shipped topology with every topic, the group and the audit dir unique.
fn topology(brokers: &str, id: &str, dir: &Path) -> Topology {
    let mut t = Topology::load(&common::repo().join("topologies/synthea-fhir.toml"))
        .expect("topologies/synthea-fhir.toml loads");
    t.name = id.to_string();
    t.kafka.brokers = brokers.to_string();
    t.kafka.group_id = format!("{id}-group");
    let unique = |topic: &mut String| *topic = format!("{id}.{topic}");
    for s in &mut t.sources {
        unique(&mut s.topic);
        if let Some(d) = s.dead_letter_topic.as_mut() {
            unique(d);
        }
    }
    unique(&mut t.kafka.dead_letter_topic);
    if let Some(l) = t.kafka.late_topic.as_mut() {
        unique(l);
    }
    unique(&mut t.kafka.quarantine_topic);
    unique(&mut t.kafka.alerts_topic);
    unique(&mut t.output.topic);
    t.audit.dir = dir.to_path_buf();
    t.telemetry.metrics_addr = String::new();
    t
}

#[test]
fn a_synthea_population_runs_the_whole_loop_through_the_shipped_fhir_topology() {
    let brokers = common::kafka();
    let dir = tempfile::tempdir().unwrap();
    let fhir = common::synthea_population(
        &dir.path().join("pop"),
        PATIENTS,
        SEED,
        &[
            "--",
            "--exporter.fhir.included_resources=Patient,Encounter,Condition,Observation",
        ],
        &[],
    );
    let id = common::unique("synthea");
    let t = topology(brokers, &id, &dir.path().join("audit"));
    let size_ms = t.window.size_secs as i64 * 1000;

    // The last WINDOWS whole windows before Synthea's end date (2025-01-01).
    let end = time_ms("2025-01-01T00:00:00Z").div_euclid(size_ms) * size_ms;
    let (since, until) = (end - WINDOWS * size_ms, end);
    let want = expected(&fhir, size_ms, since, until);
    assert_eq!(want.len() as i64, WINDOWS, "every window has observations");

    // The tables' topics hold their whole history (a platform's compacted
    // topics do): patients and every condition ever diagnosed. The streams
    // carry the span only.
    let prefix = format!("{id}.fhir.");
    replay(&fhir, brokers, &prefix, &["--types", "Patient,Condition"]);
    let replayed = replay(
        &fhir,
        brokers,
        &prefix,
        &[
            "--types",
            "Encounter,Observation",
            "--since",
            &rfc3339(since),
            "--until",
            &rfc3339(until),
        ],
    );
    eprintln!("replay of the span: {replayed}");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut events = Vec::new();
    let options = RunOptions {
        idle_exit: Some(Duration::from_secs(3)),
        ..Default::default()
    };
    let summary = engine::run(&t, brokers, &options, rt.handle(), &mut |p| events.push(p))
        .expect("the engine runs the synthea topology");
    eprintln!("engine: {summary:?}");

    assert_eq!(summary.dead_lettered, 0, "every Synthea resource decodes");
    assert_eq!(summary.late, 0, "replayed in event-time order");
    let closed: BTreeMap<i64, usize> = events
        .iter()
        .filter_map(|p| match p {
            Progress::WindowClosed {
                start_ms,
                training_rows,
                ..
            } => Some((*start_ms, *training_rows)),
            _ => None,
        })
        .collect();
    let rows: BTreeMap<i64, usize> = want.iter().map(|(w, ps)| (*w, ps.len())).collect();
    assert_eq!(
        closed, rows,
        "one training row per patient with an Observation"
    );
    assert!(
        rows.values().all(|&n| n >= t.window.min_rows),
        "the population fills every window: {rows:?}"
    );

    // Every window was decided: gated (a first fit, a drift refit or a
    // regeneration of a quarantined model) or judged against the deployed
    // model and kept, with no drift to refit on.
    let gates = events
        .iter()
        .filter(|p| matches!(p, Progress::Gate { operators, .. } if *operators > 0))
        .count();
    let kept = events
        .iter()
        .filter(|p| matches!(p, Progress::Drift { refit: false, .. }))
        .count();
    assert!(gates >= 1, "the first window is gated");
    assert!(
        gates + kept >= WINDOWS as usize,
        "every window is gated or kept: {gates} gated, {kept} kept"
    );
    for p in &events {
        if !matches!(p, Progress::Committed { .. }) {
            eprintln!("progress: {p:?}");
        }
    }
    // Every fitted model's batch is gated and then published or quarantined.
    assert!(summary.refits >= 1);
    assert_eq!(
        summary.batches_published + summary.batches_quarantined,
        summary.refits,
        "{summary:?}"
    );

    // Published records: the shipped schema decodes them, each carries
    // lineage naming the FHIR topics, and none names a real patient.
    let real: BTreeSet<String> = want.values().flatten().cloned().collect();
    let schema =
        RecordSchema::load(&common::repo().join("schemas/synthetic/synthea_patient.avsc")).unwrap();
    let synthetic = common::read_all(brokers, &t.output.topic);
    assert_eq!(synthetic.len() as u64, summary.records_published);
    for r in &synthetic {
        let value = apache_avro::reader::datum::GenericDatumReader::builder(&schema.avro)
            .build()
            .unwrap()
            .read_value(&mut &r.payload[..])
            .expect("a synthetic record decodes with schemas/synthetic/synthea_patient.avsc");
        let apache_avro::types::Value::Record(fields) = value else {
            panic!("not a record")
        };
        let get = |name: &str| {
            let v = &fields.iter().find(|(n, _)| n == name).unwrap().1;
            match v {
                apache_avro::types::Value::Union(_, inner) => inner.as_ref().clone(),
                other => other.clone(),
            }
        };
        let apache_avro::types::Value::String(pid) = get("patient_id") else {
            panic!("patient_id is a string")
        };
        assert!(!real.contains(&pid), "a synthetic id is never a real one");
        for flag in ["diabetes", "hypertension", "prediabetes", "hyperlipidemia"] {
            match get(flag) {
                apache_avro::types::Value::Long(v) => assert!(v == 0 || v == 1, "{flag} = {v}"),
                apache_avro::types::Value::Null => {}
                other => panic!("{flag}: {other:?}"),
            }
        }
        let source = r.header("resynth.source").expect("lineage: source");
        assert!(
            source.contains(&format!("{id}.fhir.observation/")),
            "{source}"
        );
        assert!(r.header("resynth.gates").unwrap().starts_with("passed"));
    }
    eprintln!(
        "synthea: windows {rows:?}, published {} batches ({} records), quarantined {}",
        summary.batches_published, summary.records_published, summary.batches_quarantined
    );
}
