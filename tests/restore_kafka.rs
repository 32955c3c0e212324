//! Restarts change nothing (issue 12), against a real Apache Kafka broker:
//! one source topic, read by an uninterrupted run and by a run that stops
//! after every window and starts again, as an operator's restarts would. The
//! two publish the same batches, record by record, because a window's output
//! depends only on its contents (canonical row order, split seeded by the
//! window's start) and the drift monitor's streak and the model versions are
//! resumed from the engine state committed in Kafka.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use resynth::engine::{self, RunOptions, RunSummary};
use resynth::schema::RecordSchema;
use resynth::source::load::{LoadPlan, load_topic};
use resynth::source::simulator::{DriftSpec, Simulator, SimulatorConfig};
use resynth::topology::{EventFormat, Topology};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Key → (payload, batch id) of every committed record of `topic`.
fn by_key(brokers: &str, topic: &str) -> BTreeMap<Vec<u8>, (Vec<u8>, Option<String>)> {
    let records = common::read_all(brokers, topic);
    let n = records.len();
    let map: BTreeMap<_, _> = records
        .into_iter()
        .map(|r| {
            let batch = r.header("resynth.batch_id");
            (r.key.clone().unwrap_or_default(), (r.payload, batch))
        })
        .collect();
    assert_eq!(map.len(), n, "{topic}: a key published twice");
    map
}

/// Payloads of `topic`, sorted (dead letters and late events have no key of
/// their own that must be unique).
fn payloads(brokers: &str, topic: &str) -> Vec<Vec<u8>> {
    let mut p: Vec<Vec<u8>> = common::read_all(brokers, topic)
        .into_iter()
        .map(|r| r.payload)
        .collect();
    p.sort();
    p
}

/// Version → model content hash of every model record in the registry.
fn registry(audit_dir: &Path, name: &str) -> BTreeMap<u64, String> {
    let dir = audit_dir.join("models").join(name);
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(v) = file.strip_prefix('v').and_then(|s| s.strip_suffix(".json")) {
            let record: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            out.insert(
                v.parse().unwrap(),
                record["sha256"].as_str().unwrap().to_string(),
            );
        }
    }
    out
}

/// Audit entries of `kind` in a log whose chain verifies.
fn audited(audit_dir: &Path, kind: &str) -> usize {
    resynth::audit::verify(&audit_dir.join("audit.jsonl"))
        .expect("the audit chain verifies")
        .iter()
        .filter(|e| e.kind == kind)
        .count()
}

#[test]
#[ignore = "open (issue 12): the restarted run writes one dead letter twice; run with --ignored"]
fn restarting_after_every_window_publishes_what_an_uninterrupted_run_does() {
    let brokers = common::kafka();
    let rt = rt();
    let id = common::unique("restore");
    let dir = tempfile::tempdir().unwrap();
    let source = format!("{id}.labs");
    // Same name (so the same batch ids), own group, outputs and audit dir.
    let topology = |run: &str| -> Topology {
        let mut t = common::topology(brokers, &format!("{id}-{run}"), &dir.path().join(run));
        t.name = id.clone();
        t.kafka.source_topic = source.clone();
        t.kafka.transactional_id = Some(format!("{id}-{run}"));
        t
    };
    let (a, b) = (topology("a"), topology("b"));
    let mut topics = common::all_topics(&a);
    topics.extend(common::all_topics(&b).into_iter().skip(1));
    // Three partitions: the two runs' consumers interleave them differently.
    rt.block_on(common::create_topics(
        brokers,
        &topics.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        3,
    ));
    let schema = RecordSchema::load(&a.source.schema).unwrap();
    let sim = Simulator::new(SimulatorConfig {
        patients: 3000,
        window_ms: (a.window.size_secs * 1000) as i64,
        // Persistent from window 2: with persist_k = 2 of 3, the refit is
        // decided on window 3, one restart after window 2 drifted first.
        drift: Some(DriftSpec {
            start_window: 2,
            columns: vec!["hba1c".into(), "glucose".into()],
            size: 1.0,
        }),
        seed: 23,
        ..Default::default()
    });
    let loaded = load_topic(
        brokers,
        &source,
        &sim,
        &schema,
        &LoadPlan {
            windows: 5,
            max_events: None,
            corrupt: 3,
            late: 2,
            format: EventFormat::Avro,
        },
    )
    .unwrap();

    let run = |t: &Topology, max_windows: Option<u64>| -> RunSummary {
        let options = RunOptions {
            max_windows,
            idle_exit: Some(Duration::from_secs(3)),
            ..Default::default()
        };
        engine::run(t, brokers, &options, rt.handle(), &mut |_| {}).unwrap()
    };
    let whole = run(&a, None);
    assert_eq!(whole.windows_closed, 5, "{whole:?}");
    assert!(
        whole.refits >= 2,
        "an initial fit and a drift refit: {whole:?}"
    );

    let mut restarts = Vec::new();
    loop {
        let s = run(&b, Some(1));
        if s.windows_closed == 0 && s.events_in == 0 {
            break;
        }
        restarts.push(s);
        assert!(restarts.len() <= 10, "the restarted run never drains");
    }
    let sum = |f: fn(&RunSummary) -> u64| restarts.iter().map(f).sum::<u64>();
    assert_eq!(
        sum(|s| s.windows_closed),
        5,
        "each window once: {restarts:?}"
    );
    assert_eq!(sum(|s| s.refits), whole.refits, "the drift refit survives");
    assert_eq!(sum(|s| s.batches_published), whole.batches_published);
    assert_eq!(sum(|s| s.late), whole.late);
    assert_eq!(whole.late, loaded.late as u64);

    // Record by record, byte for byte.
    let (out_a, out_b) = (
        by_key(brokers, &a.output.topic),
        by_key(brokers, &b.output.topic),
    );
    assert!(!out_a.is_empty());
    assert_eq!(
        out_a.keys().collect::<Vec<_>>(),
        out_b.keys().collect::<Vec<_>>(),
        "the same records"
    );
    for (k, (payload, batch)) in &out_a {
        let (p, bt) = &out_b[k];
        assert_eq!(batch, bt, "batch of {k:?}");
        assert!(payload == p, "record {k:?} differs between the runs");
    }
    // Dead letters and late events, each exactly once, with their bytes.
    let dlq_a = payloads(brokers, &a.kafka.dead_letter_topic);
    assert_eq!(dlq_a.len(), loaded.corrupt_payloads.len());
    assert_eq!(dlq_a, payloads(brokers, &b.kafka.dead_letter_topic));
    let late = |t: &Topology| payloads(brokers, t.kafka.late_topic.as_ref().unwrap());
    assert_eq!(late(&a).len(), loaded.late);
    assert_eq!(late(&a), late(&b));
    // The same registry versions with the same model contents.
    let reg_a = registry(&dir.path().join("a"), &id);
    assert_eq!(reg_a.len() as u64, whole.refits);
    assert_eq!(reg_a, registry(&dir.path().join("b"), &id));
    // Audit chains that verify, one batch_published entry per batch.
    for run in ["a", "b"] {
        assert_eq!(
            audited(&dir.path().join(run), "batch_published") as u64,
            whole.batches_published,
            "run {run}"
        );
    }
}
