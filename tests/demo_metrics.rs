//! The embedded demo path (librdkafka mock cluster) end to end, plus the
//! Prometheus endpoint: every stage's counters moved and are scrapeable.

use std::io::{Read, Write};
use std::time::Duration;

use resynth::demo::{self, DemoOptions};
use resynth::source::simulator::DriftSpec;
use resynth::topology::Topology;

fn scrape(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("metrics endpoint listens");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

fn value(metrics: &str, name: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn demo_fits_detects_drift_refits_publishes_and_reports_metrics() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut topology = Topology::load(std::path::Path::new(&format!(
        "{root}/topologies/demo.toml"
    )))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    topology.audit.dir = dir.path().join("out");
    topology.output.max_regenerations = 5; // see tests/common: pipeline, not gate calibration
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    resynth::telemetry::install_prometheus(&addr).unwrap();

    let options = DemoOptions {
        windows: 6,
        max_events: None,
        duration: Some(Duration::from_secs(120)),
        patients: 4000,
        drift: Some(DriftSpec {
            start_window: 3,
            columns: vec!["hba1c".into(), "glucose".into()],
            size: 1.0,
        }),
        corrupt: 3,
        late: 2,
        seed: 3,
    };
    let (summary, loaded, downstream) = demo::run(&mut topology, &options, rt.handle()).unwrap();
    assert_eq!(summary.windows_closed, 6);
    assert!(summary.refits >= 2, "{summary:?}");
    assert!(summary.batches_published >= 2, "{summary:?}");
    assert_eq!(
        summary.dead_lettered as usize,
        loaded.corrupt_payloads.len()
    );
    assert_eq!(summary.late as usize, loaded.late);
    assert_eq!(downstream.records as u64, summary.records_published);
    assert_eq!(downstream.decoded, downstream.records);
    assert_eq!(downstream.with_all_headers, downstream.records);
    assert_eq!(downstream.dead_letters, 3);
    assert_eq!(downstream.late, 2, "late events reach the late topic");

    let m = scrape(&addr);
    assert_eq!(
        value(&m, "resynth_events_in_total", "topology=\"demo\""),
        summary.events_in as f64
    );
    assert_eq!(
        value(
            &m,
            "resynth_events_dead_lettered_total",
            "reason=\"decode\""
        ),
        3.0
    );
    assert_eq!(
        value(&m, "resynth_events_late_total", "policy=\"topic\""),
        2.0
    );
    assert_eq!(value(&m, "resynth_windows_closed_total", ""), 6.0);
    assert_eq!(value(&m, "resynth_refits_total", ""), summary.refits as f64);
    assert_eq!(
        value(&m, "resynth_records_published_total", ""),
        summary.records_published as f64
    );
    assert!(value(&m, "resynth_gate_results_total", "result=\"pass\"") >= 2.0);
    assert!(
        m.contains("resynth_drift_score{") && m.contains("column=\"hba1c\""),
        "drift gauges exported"
    );
    assert!(m.contains("resynth_drift_state"));
    assert!(value(&m, "resynth_transactions_total", "result=\"committed\"") >= 6.0);
    assert!(m.contains("resynth_consumer_lag"));
    assert!(m.contains("resynth_stage_seconds"));

    // The audit chain holds and names each published batch.
    let entries = resynth::audit::verify(&topology.audit.dir.join("audit.jsonl")).unwrap();
    let published = entries
        .iter()
        .filter(|e| e.kind == "batch_published")
        .count();
    assert_eq!(published as u64, summary.batches_published);
    assert!(entries.iter().any(|e| e.kind == "drift_state"));

    // Every published batch is reproduced, row for row, from the registry's
    // model version and the sample seed in the audit log.
    let registry =
        resynth::generate::ModelRegistry::open(&topology.audit.dir, &topology.name).unwrap();
    for e in entries.iter().filter(|e| e.kind == "batch_published") {
        let version = e.data["model_version"].as_u64().unwrap();
        let record = registry.load(version).unwrap();
        assert_eq!(record.sha256, e.data["model_sha256"].as_str().unwrap());
        let rows = e.data["records"].as_u64().unwrap() as usize;
        let seed = e.data["sample_seed"].as_u64().unwrap();
        let again = record.model.sample(rows, seed);
        assert_eq!(
            again.content_sha256(),
            e.data["batch_sha256"].as_str().unwrap(),
            "batch of model v{version} is not reproducible"
        );
    }
}
