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

    // The audit binder of every published batch verifies, and tampering
    // with any artifact is caught.
    let mut batches = 0;
    for e in entries.iter().filter(|e| e.kind == "batch_published") {
        let batch = e.data["batch_id"].as_str().unwrap();
        let out = dir.path().join(format!("binder-{batch}"));
        binder::build(
            &topology.audit.dir,
            &topology.lineage.file,
            batch,
            &out,
            &binder::BuildOptions::default(),
        )
        .unwrap();
        tamper_checks(&out, batch);
        batches += 1;
    }
    assert!(batches >= 2);
}

use resynth::audit::{approval, binder};

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Rewrites `manifest.json` with the current digest of `file`, as a forger
/// who edited an artifact would.
fn forge_manifest(dir: &std::path::Path, file: &str) {
    use sha2::Digest;
    let path = dir.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let bytes = std::fs::read(dir.join(file)).unwrap();
    for f in m["files"].as_array_mut().unwrap() {
        if f["path"] == file {
            f["sha256"] = format!("{:x}", sha2::Sha256::digest(&bytes)).into();
            f["bytes"] = bytes.len().into();
        }
    }
    let mut text = serde_json::to_vec_pretty(&m).unwrap();
    text.push(b'\n');
    std::fs::write(path, text).unwrap();
}

/// Edits one number or word of `file` so that it still parses.
fn edit(dir: &std::path::Path, file: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = if file.ends_with(".html") {
        text.replacen("<td>", "<td>0", 1)
    } else if let Some(i) = text.find("\"passed\": true") {
        format!("{}\"passed\": false{}", &text[..i], &text[i + 14..])
    } else if let Some(i) = text.find("\"batchId\":\"") {
        format!("{}\"batchId\":\"x{}", &text[..i], &text[i + 11..])
    } else {
        text.replacen("\"data\":{", "\"data\":{\"forged\":1,", 1)
            .replacen("\"rows\": {", "\"rows\": {\"forged\": 1,", 1)
            .replacen("\"topic\": \"", "\"topic\": \"x", 1)
    };
    assert_ne!(edited, text, "{file} was not edited");
    std::fs::write(path, edited).unwrap();
}

fn failed(v: &binder::Verification) -> Vec<String> {
    v.checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.check, c.detail))
        .collect()
}

fn tamper_checks(out: &std::path::Path, batch: &str) {
    let v = binder::verify(out, &[], false).unwrap();
    assert!(v.ok(), "{batch}: {:?}", failed(&v));
    assert_eq!(v.release, batch);
    let index = std::fs::read_to_string(out.join("index.html")).unwrap();
    for n in 1..=7 {
        assert!(
            index.contains(&format!("<tr><td>{n}</td>")),
            "index lists artifact {n}"
        );
    }
    let ed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("01-expert-determination.json")).unwrap())
            .unwrap();
    assert!(
        ed["measures"].as_array().unwrap().len() >= 8,
        "every re-identification measure"
    );
    assert!(ed["residual_risk"]["k_anonymity_at_public_k"]["k"] == 11);
    assert_eq!(ed["to_be_completed_by_the_expert"]["signature"], "");

    // A signed approval of this manifest verifies with its key only.
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = approval::generate().unwrap();
    std::fs::write(keys.path().join("k.pem"), private).unwrap();
    std::fs::write(keys.path().join("k.pub.pem"), public).unwrap();
    let key = approval::load_signing_key(&keys.path().join("k.pem")).unwrap();
    let trusted = approval::load_verifying_key(&keys.path().join("k.pub.pem")).unwrap();
    let decision = approval::Decision {
        release: batch.to_string(),
        manifest_sha256: binder::manifest_digest(out).unwrap(),
        result: "pass".into(),
        approver: "privacy officer".into(),
        time: "2026-01-01T00:00:00.000Z".into(),
        comment: String::new(),
    };
    std::fs::create_dir_all(out.join("approvals")).unwrap();
    std::fs::write(
        out.join("approvals/a.dsse.json"),
        serde_json::to_vec(&approval::sign(&decision, &key)).unwrap(),
    )
    .unwrap();
    let v = binder::verify(out, &[trusted], true).unwrap();
    assert!(v.ok(), "{:?}", failed(&v));
    assert_eq!(v.approvals.len(), 1);
    let (_, other) = approval::generate().unwrap();
    std::fs::write(keys.path().join("o.pub.pem"), other).unwrap();
    let other = approval::load_verifying_key(&keys.path().join("o.pub.pem")).unwrap();
    assert!(
        !binder::verify(out, &[other], true).unwrap().ok(),
        "an untrusted key does not approve"
    );

    let files = [
        "01-expert-determination.json",
        "01-expert-determination.html",
        "02-methodology.json",
        "03-privacy-validation.json",
        "04-fidelity-utility.json",
        "04-fidelity-utility.html",
        "05-subgroups.json",
        "06-lineage.openlineage.jsonl",
        "06-consumers.json",
        "07-access-evidence.json",
        "07-access-evidence.html",
        "index.html",
        "evidence/audit.jsonl",
    ];
    let scratch = tempfile::tempdir().unwrap();
    for (i, file) in files.iter().enumerate() {
        // An edit alone breaks the file's digest.
        let copy = scratch.path().join(format!("{i}"));
        copy_dir(out, &copy);
        edit(&copy, file);
        let v = binder::verify(&copy, &[trusted], true).unwrap();
        let f = failed(&v);
        assert!(
            f.iter()
                .any(|x| x.starts_with("digests") && x.contains(file)),
            "{file}: {f:?}"
        );
        // An edit with a forged manifest is caught by re-deriving the
        // artifact from the evidence (or by the chain, or the lineage
        // rules), and in every case by the approval, which signed the old
        // manifest.
        forge_manifest(&copy, file);
        let v = binder::verify(&copy, &[trusted], true).unwrap();
        let f = failed(&v);
        assert!(!f.iter().any(|x| x.starts_with("digests")), "{file}: {f:?}");
        // (A broken chain stops verification before the approvals.)
        if *file != "evidence/audit.jsonl" {
            assert!(
                f.iter().any(|x| x.starts_with("approvals")),
                "{file}: {f:?}"
            );
        }
        let caught_by_content = match *file {
            "06-consumers.json" => None,
            "06-lineage.openlineage.jsonl" => Some("lineage links"),
            "evidence/audit.jsonl" => Some("audit chain"),
            _ => Some("artifacts"),
        };
        if let Some(check) = caught_by_content {
            assert!(f.iter().any(|x| x.starts_with(check)), "{file}: {f:?}");
        }
    }
    // A gate report replaced in the evidence differs from the one the log recorded.
    let copy = scratch.path().join("report");
    copy_dir(out, &copy);
    let report = std::fs::read_dir(copy.join("evidence/reports"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let name = format!(
        "evidence/reports/{}",
        report.file_name().unwrap().to_string_lossy()
    );
    edit(&copy, &name);
    forge_manifest(&copy, &name);
    let f = failed(&binder::verify(&copy, &[trusted], true).unwrap());
    assert!(f.iter().any(|x| x.starts_with("gate reports")), "{f:?}");
    // A file slipped into the binder is named.
    let copy = scratch.path().join("extra");
    copy_dir(out, &copy);
    std::fs::write(copy.join("notes.txt"), "x").unwrap();
    let f = failed(&binder::verify(&copy, &[trusted], true).unwrap());
    assert!(f.iter().any(|x| x.contains("notes.txt")), "{f:?}");
    std::fs::remove_dir_all(out.join("approvals")).unwrap();
}
