//! End-to-end against a real Apache Kafka broker: simulator events plus
//! corrupt and late ones go into a source topic, the engine runs, and an
//! independent consumer checks what downstream subscribers would see.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use resynth::audit;
use resynth::engine::{self, RunOptions};
use resynth::schema::RecordSchema;
use resynth::sink::header_names;
use resynth::source::load::{LoadPlan, load_topic};
use resynth::source::simulator::{DriftSpec, Simulator, SimulatorConfig};
use resynth::topology::EventFormat;

use apache_avro::types::Value;

fn simulator(window_ms: i64) -> Simulator {
    Simulator::new(SimulatorConfig {
        patients: 4000,
        window_ms,
        drift: Some(DriftSpec {
            start_window: 3,
            columns: vec!["hba1c".into(), "glucose".into()],
            size: 1.0,
        }),
        seed: 11,
        ..Default::default()
    })
}

/// Decodes with the apache-avro crate directly, as a downstream consumer would.
fn avro_reader(schema: &apache_avro::Schema) -> apache_avro::reader::datum::GenericDatumReader<'_> {
    apache_avro::reader::datum::GenericDatumReader::builder(schema)
        .build()
        .unwrap()
}

/// Every alert on `topic`, decoded independently with the shipped schema
/// file (not the engine's copy of it).
fn decoded_alerts(brokers: &str, topic: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(common::repo().join("schemas/alerts/drift_alert.avsc"))
        .expect("alert schema file");
    let schema = apache_avro::Schema::parse_str(&text).expect("alert schema parses");
    common::read_all(brokers, topic)
        .iter()
        .map(|r| {
            avro_reader(&schema)
                .read_value(&mut &r.payload[..])
                .expect("alert decodes with schemas/alerts/drift_alert.avsc")
        })
        .collect()
}

/// A field of a decoded Avro record (or of the record inside a union).
fn field<'a>(record: &'a Value, name: &str) -> &'a Value {
    let record = match record {
        Value::Union(_, inner) => inner.as_ref(),
        other => other,
    };
    let Value::Record(fields) = record else {
        panic!("not a record: {record:?}")
    };
    &fields
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no field {name}"))
        .1
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The whole loop: published records decode with the shipped schema and carry
/// lineage headers that agree with the audit log; corrupt and late events are
/// dead-lettered with their original bytes; offsets cover exactly what ran.
#[test]
fn synthetic_topic_dead_letters_and_offsets_are_right() {
    let brokers = common::kafka();
    let rt = rt();
    let id = common::unique("e2e");
    let dir = tempfile::tempdir().unwrap();
    let topo = common::topology(brokers, &id, dir.path());
    let topics = common::all_topics(&topo);
    rt.block_on(common::create_topics(
        brokers,
        &topics.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        1,
    ));

    let schema = RecordSchema::load(&topo.source.schema).unwrap();
    let sim = simulator((topo.window.size_secs * 1000) as i64);
    let loaded = load_topic(
        brokers,
        &topo.kafka.source_topic,
        &sim,
        &schema,
        &LoadPlan {
            windows: 6,
            max_events: None,
            corrupt: 4,
            late: 2,
            format: EventFormat::Avro,
        },
    )
    .unwrap();

    let options = RunOptions {
        idle_exit: Some(Duration::from_secs(3)),
        ..Default::default()
    };
    let summary = engine::run(&topo, brokers, &options, rt.handle(), &mut |_| {}).unwrap();
    assert_eq!(
        summary.events_in as usize,
        loaded.good + loaded.corrupt_payloads.len() + loaded.late
    );
    assert_eq!(summary.windows_closed, 6);
    assert!(
        summary.refits >= 2,
        "initial fit and a drift refit: {summary:?}"
    );
    assert_eq!(summary.late, 2);

    // Drift alerts: Avro with the shipped schema; the injected HbA1c/glucose
    // shift from window 3 is named, with the method that decided.
    let alerts = decoded_alerts(brokers, &topo.kafka.alerts_topic);
    let drift_alerts: Vec<&Value> = alerts
        .iter()
        .filter(|a| field(a, "kind") == &Value::Enum(0, "drift_state".into()))
        .collect();
    assert!(!drift_alerts.is_empty(), "drift alerts: {alerts:?}");
    let refit_alert = drift_alerts
        .iter()
        .find(|a| field(field(a, "drift"), "refit") == &Value::Boolean(true))
        .expect("a drift alert starts the refit");
    assert!(matches!(
        field(refit_alert, "model_version"),
        Value::Union(1, _)
    ));
    let Value::Array(columns) = field(field(refit_alert, "drift"), "columns") else {
        panic!("columns")
    };
    let named: Vec<&Value> = columns.iter().map(|c| field(c, "column")).collect();
    assert!(
        named.contains(&&Value::String("hba1c".into())),
        "hba1c drifts: {named:?}"
    );
    for c in columns {
        for f in ["method", "test", "reason"] {
            assert!(
                matches!(field(c, f), Value::String(s) if !s.is_empty()),
                "{f}"
            );
        }
        assert!(matches!(field(c, "statistic"), Value::Double(x) if x.is_finite()));
        assert!(matches!(field(c, "threshold"), Value::Double(x) if *x > 0.0));
    }

    // Synthetic records: decode with the shipped schema, all lineage headers,
    // agreeing with the audit log's batch_published entries.
    let output_schema =
        RecordSchema::load(&common::repo().join("schemas/synthetic/lab_patient.avsc")).unwrap();
    let synthetic = common::read_all(brokers, &topo.output.topic);
    assert_eq!(synthetic.len() as u64, summary.records_published);
    let entries = audit::verify(&dir.path().join("audit.jsonl")).unwrap();
    let published: BTreeMap<String, &serde_json::Value> = entries
        .iter()
        .filter(|e| e.kind == "batch_published")
        .map(|e| (e.data["batch_id"].as_str().unwrap().to_string(), &e.data))
        .collect();
    assert_eq!(published.len() as u64, summary.batches_published);
    let mut per_batch: BTreeMap<String, usize> = BTreeMap::new();
    for r in &synthetic {
        avro_reader(&output_schema.avro)
            .read_value(&mut &r.payload[..])
            .expect("synthetic record decodes with schemas/synthetic/lab_patient.avsc");
        for name in header_names() {
            assert!(r.header(name).is_some(), "missing header {name}");
        }
        let batch = r.header("resynth.batch_id").unwrap();
        let audit = published.get(&batch).expect("batch is in the audit log");
        let lineage = &audit["lineage"];
        for (header, field) in [
            ("resynth.model_sha256", "model_sha256"),
            ("resynth.validation_run", "validation_run"),
            ("resynth.source", "source"),
            ("resynth.window", "window"),
            ("resynth.gates", "gates"),
        ] {
            assert_eq!(
                r.header(header).unwrap(),
                lineage[field].as_str().unwrap(),
                "{header}"
            );
        }
        assert!(r.header("resynth.gates").unwrap().starts_with("passed"));
        *per_batch.entry(batch).or_default() += 1;
    }
    for (batch, n) in &per_batch {
        assert_eq!(
            *n as u64,
            published[batch]["records"].as_u64().unwrap(),
            "batch {batch} complete"
        );
    }

    // Dead letters: every corrupt payload, byte for byte; late events go to
    // the late topic with their original bytes.
    let dead = common::read_all(brokers, &topo.kafka.dead_letter_topic);
    assert_eq!(dead.len(), loaded.corrupt_payloads.len());
    let late_records = common::read_all(brokers, topo.kafka.late_topic.as_deref().unwrap());
    let dead_payloads: BTreeSet<Vec<u8>> = dead.iter().map(|r| r.payload.clone()).collect();
    for bad in &loaded.corrupt_payloads {
        assert!(
            dead_payloads.contains(bad),
            "corrupt payload kept byte for byte"
        );
    }
    for r in dead.iter().chain(&late_records) {
        assert!(r.header("resynth.error").is_some());
        assert_eq!(
            r.header("resynth.source.topic").unwrap(),
            topo.kafka.source_topic
        );
        assert!(
            r.header("resynth.source.offset")
                .unwrap()
                .parse::<i64>()
                .is_ok()
        );
    }
    assert!(
        dead.iter()
            .all(|r| !r.header("resynth.error").unwrap().starts_with("late"))
    );
    let late: Vec<_> = late_records
        .iter()
        .filter(|r| r.header("resynth.error").unwrap().starts_with("late"))
        .collect();
    assert_eq!(late.len(), 2);
    for r in late {
        // Late events are valid events: they still decode with the source schema.
        avro_reader(&schema.avro)
            .read_value(&mut &r.payload[..])
            .unwrap();
    }

    // The stream was drained: committed offsets equal the end of the source.
    assert_eq!(
        common::committed(brokers, &topo.kafka.group_id, &topo.kafka.source_topic),
        common::high_watermarks(brokers, &topo.kafka.source_topic)
    );
}

/// Stopping after two windows commits offsets only for what was finalised;
/// a second run picks up from there, so each window is published once.
#[test]
fn bounded_run_commits_only_finalised_offsets_and_resumes_without_duplicates() {
    let brokers = common::kafka();
    let rt = rt();
    let id = common::unique("resume");
    let dir = tempfile::tempdir().unwrap();
    let mut topo = common::topology(brokers, &id, dir.path());
    topo.drift.persist_k = 1;
    topo.drift.persist_m = 1;
    topo.drift.cooldown_windows = 0;
    let topics = common::all_topics(&topo);
    rt.block_on(common::create_topics(
        brokers,
        &topics.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        1,
    ));
    let schema = RecordSchema::load(&topo.source.schema).unwrap();
    let sim = simulator((topo.window.size_secs * 1000) as i64);
    let loaded = load_topic(
        brokers,
        &topo.kafka.source_topic,
        &sim,
        &schema,
        &LoadPlan {
            windows: 5,
            max_events: None,
            corrupt: 0,
            late: 0,
            format: EventFormat::Avro,
        },
    )
    .unwrap();
    let window_sizes: Vec<usize> = (0..5).map(|w| sim.window_events(w).len()).collect();

    let first = engine::run(
        &topo,
        brokers,
        &RunOptions {
            max_windows: Some(2),
            idle_exit: Some(Duration::from_secs(3)),
            ..Default::default()
        },
        rt.handle(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(first.windows_closed, 2);
    let committed = common::committed(brokers, &topo.kafka.group_id, &topo.kafka.source_topic)[0].1;
    // Events are produced in window order (with < 1 min jitter inside a window),
    // so everything of windows 0 and 1 lies before the committed offset and
    // nothing of window 3 or later does.
    let two = (window_sizes[0] + window_sizes[1]) as i64;
    assert!(
        committed >= two - 200 && committed <= two + 200,
        "committed {committed}, windows 0-1 hold {two}"
    );
    assert!(committed < loaded.good as i64);

    let second = engine::run(
        &topo,
        brokers,
        &RunOptions {
            idle_exit: Some(Duration::from_secs(3)),
            ..Default::default()
        },
        rt.handle(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(
        first.windows_closed + second.windows_closed,
        5,
        "each window processed exactly once"
    );
    assert_eq!(
        second.late, 0,
        "re-read events of finalised windows are not counted late"
    );
    let synthetic = common::read_all(brokers, &topo.output.topic);
    let batches: BTreeSet<String> = synthetic
        .iter()
        .map(|r| r.header("resynth.batch_id").unwrap())
        .collect();
    assert_eq!(
        batches.len() as u64,
        first.batches_published + second.batches_published
    );
    let keys: BTreeSet<Vec<u8>> = synthetic.iter().map(|r| r.key.clone().unwrap()).collect();
    assert_eq!(keys.len(), synthetic.len(), "no record published twice");
    assert_eq!(
        common::committed(brokers, &topo.kafka.group_id, &topo.kafka.source_topic),
        common::high_watermarks(brokers, &topo.kafka.source_topic)
    );
}

/// A batch that fails the gate after every regeneration goes to the
/// quarantine topic with its failed operators, never to the synthetic topic,
/// and the failing model is not deployed.
#[test]
fn failing_batches_are_quarantined_never_published() {
    let brokers = common::kafka();
    let rt = rt();
    let id = common::unique("quarantine");
    let dir = tempfile::tempdir().unwrap();
    let mut topo = common::topology(brokers, &id, dir.path());
    topo.gate.ks_max = 1e-6; // no sample can pass
    topo.output.max_regenerations = 1;
    let topics = common::all_topics(&topo);
    rt.block_on(common::create_topics(
        brokers,
        &topics.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        1,
    ));
    let schema = RecordSchema::load(&topo.source.schema).unwrap();
    let sim = simulator((topo.window.size_secs * 1000) as i64);
    load_topic(
        brokers,
        &topo.kafka.source_topic,
        &sim,
        &schema,
        &LoadPlan {
            windows: 2,
            max_events: None,
            corrupt: 0,
            late: 0,
            format: EventFormat::Avro,
        },
    )
    .unwrap();
    let options = RunOptions {
        idle_exit: Some(Duration::from_secs(3)),
        ..Default::default()
    };
    let summary = engine::run(&topo, brokers, &options, rt.handle(), &mut |_| {}).unwrap();
    assert_eq!(summary.batches_published, 0);
    assert_eq!(
        summary.batches_quarantined, 2,
        "no model deployed, so each window tries again: {summary:?}"
    );
    assert_eq!(summary.deployed_version, None);

    assert!(
        common::read_all(brokers, &topo.output.topic).is_empty(),
        "nothing failing is published"
    );
    let quarantined = common::read_all(brokers, &topo.kafka.quarantine_topic);
    assert!(!quarantined.is_empty());
    for r in &quarantined {
        assert!(r.header("resynth.gates").unwrap().starts_with("failed"));
        let failed: serde_json::Value =
            serde_json::from_str(&r.header("resynth.failed_operators").unwrap()).unwrap();
        assert!(
            failed
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["operator"] == "ks")
        );
        for name in header_names() {
            assert!(
                r.header(name).is_some(),
                "quarantined records keep lineage: {name}"
            );
        }
    }
    let alerts = decoded_alerts(brokers, &topo.kafka.alerts_topic);
    let quarantine_alerts: Vec<_> = alerts
        .iter()
        .filter(|a| field(a, "kind") == &Value::Enum(1, "batch_quarantined".into()))
        .collect();
    assert_eq!(quarantine_alerts.len(), 2);
    for a in quarantine_alerts {
        let Value::Union(1, detail) = field(a, "quarantine") else {
            panic!("quarantine detail set: {a:?}")
        };
        let Value::Array(failed) = field(detail, "failed") else {
            panic!("failed operators")
        };
        assert!(
            failed
                .iter()
                .any(|f| field(f, "operator") == &Value::String("ks".into()))
        );
        assert_eq!(field(a, "drift"), &Value::Union(0, Box::new(Value::Null)));
    }
    let entries = audit::verify(&dir.path().join("audit.jsonl")).unwrap();
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.kind == "batch_quarantined")
            .count(),
        2
    );
    // Every attempt's JSON report is on disk as evidence, and one HTML page
    // per quarantined batch, saying so.
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path().join("reports"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let with_ext = |ext: &str| {
        files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        with_ext("json").len(),
        4,
        "2 windows × (1 + 1 regeneration)"
    );
    let pages = with_ext("html");
    assert_eq!(pages.len(), 2, "one page per quarantined batch");
    for page in pages {
        let html = std::fs::read_to_string(page).unwrap();
        assert!(
            html.contains("FAIL") && html.contains("quarantined"),
            "{}",
            page.display()
        );
    }
}
