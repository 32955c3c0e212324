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
    let mut topo = common::topology(brokers, &id, dir.path());
    // Lineage also to a Kafka topic and to an HTTP receiver that parses each
    // event with the official OpenLineage client as it arrives.
    let lineage_topic = format!("{id}.lineage");
    topo.lineage.kafka_topic = Some(lineage_topic.clone());
    let received = dir.path().join("http-events.jsonl");
    let mut receiver = binder_support::receiver(&received);
    topo.lineage.http_url = Some(format!("http://{}/api/v1/lineage", receiver.addr));
    let keys = binder_support::keygen(dir.path());
    topo.audit.approver_keys = vec![keys.1.clone()];
    let mut topics = common::all_topics(&topo);
    topics.push(lineage_topic.clone());
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

    binder_support::lineage_checks(brokers, &topo, &lineage_topic, &received, &mut receiver);
    binder_support::binder_checks(brokers, &topo, dir.path(), &keys, &published);
}

/// The audit binder, OpenLineage, approvals and anchors on a real-broker run.
mod binder_support {
    use std::io::BufRead;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};

    use resynth::topology::Topology;

    use super::common;

    pub fn resynth() -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_resynth"));
        c.current_dir(common::repo());
        c
    }

    fn run(c: &mut Command) -> (i32, String, String) {
        let out = c.output().expect("run resynth");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(c: &mut Command) -> String {
        let (code, out, err) = run(c);
        assert_eq!(code, 0, "{c:?}\nstdout: {out}\nstderr: {err}");
        out
    }

    /// `tools/openlineage/run.sh events FILE`: the official client's strict parse.
    pub fn official_parse(file: &Path) -> usize {
        let out = Command::new(common::repo().join("tools/openlineage/run.sh"))
            .arg("events")
            .arg(file)
            .output()
            .expect("tools/openlineage/run.sh");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {text}{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let line = text.lines().last().unwrap_or("").to_string();
        let (n, _) = line
            .strip_prefix("openlineage-python strict parse: ")
            .and_then(|r| r.split_once(" of "))
            .unwrap_or_else(|| panic!("{text}"));
        n.parse().unwrap()
    }

    pub struct Receiver {
        pub addr: String,
        child: Child,
    }

    /// The HTTP receiver of tools/openlineage/check.py, on a free port;
    /// returns once it listens (it says so on stdout).
    pub fn receiver(file: &Path) -> Receiver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(common::repo().join("tools/openlineage/run.sh"))
            .args(["serve", &port.to_string()])
            .arg(file)
            .arg("600")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the OpenLineage HTTP receiver");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("listening"), "receiver: {line}");
        Receiver {
            addr: format!("127.0.0.1:{port}"),
            child,
        }
    }

    /// `resynth keygen`: (private, public) PEM paths.
    pub fn keygen(dir: &Path) -> (PathBuf, PathBuf) {
        let prefix = dir.join("privacy-officer");
        ok(resynth().arg("keygen").arg("--out").arg(&prefix));
        (
            prefix.with_extension("pem"),
            prefix.with_extension("pub.pem"),
        )
    }

    pub fn write_topology(topo: &Topology, dir: &Path) -> PathBuf {
        let path = dir.join("topology.toml");
        std::fs::write(&path, toml::to_string(topo).unwrap()).unwrap();
        path
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }

    pub fn lineage_checks(
        brokers: &str,
        topo: &Topology,
        lineage_topic: &str,
        received: &Path,
        receiver: &mut Receiver,
    ) {
        let file = topo.audit.dir.join(&topo.lineage.file);
        let events = lines(&file);
        // Every event the engine emitted parses strictly with the official client.
        assert_eq!(official_parse(&file), events.len());
        let parsed: Vec<serde_json::Value> = events
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let of = |job: &str, t: &str| {
            parsed
                .iter()
                .filter(|e| e["job"]["name"] == job && e["eventType"] == t)
                .count()
        };
        assert_eq!(of(&topo.name, "START"), 1);
        assert_eq!(of(&topo.name, "COMPLETE"), 1);
        let windows = of(&format!("{}.window", topo.name), "START");
        assert_eq!(windows, 6, "one window run per closed window");
        assert_eq!(of(&format!("{}.window", topo.name), "COMPLETE"), windows);
        assert!(of(&format!("{}.gate", topo.name), "COMPLETE") >= 2);
        let ns = format!("kafka://{}", brokers.split(',').next().unwrap());
        assert!(
            parsed
                .iter()
                .all(|e| e["inputs"][0]["namespace"] == ns.as_str())
        );
        // The same events on the Kafka topic and at the HTTP receiver.
        let on_kafka: Vec<String> = common::read_all(brokers, lineage_topic)
            .iter()
            .map(|r| String::from_utf8(r.payload.clone()).unwrap())
            .collect();
        assert_eq!(on_kafka, events, "Kafka transport");
        let at_http = lines(received);
        assert_eq!(
            at_http.len(),
            events.len(),
            "HTTP transport: every event accepted (201)"
        );
        receiver.child.kill().ok();
        receiver.child.wait().ok();
    }

    /// A downstream team's consumer group reads the synthetic topic and commits.
    fn downstream_reader(brokers: &str, topic: &str, group: &str) {
        use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
        let c: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .create()
            .unwrap();
        c.subscribe(&[topic]).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            assert!(
                std::time::Instant::now() < deadline,
                "downstream reader timed out"
            );
            match c.poll(std::time::Duration::from_millis(200)) {
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
                _ => continue,
            }
        }
        c.commit_consumer_state(CommitMode::Sync).unwrap();
    }

    pub fn binder_checks(
        brokers: &str,
        topo: &Topology,
        dir: &Path,
        keys: &(PathBuf, PathBuf),
        published: &std::collections::BTreeMap<String, &serde_json::Value>,
    ) {
        let group = format!("{}-downstream", topo.name);
        downstream_reader(brokers, &topo.output.topic, &group);
        let topo_file = write_topology(topo, dir);
        let mut first = None;
        for batch in published.keys() {
            let out = dir.join(format!("binder-{batch}"));
            ok(resynth()
                .args(["binder", batch, "--out"])
                .arg(&out)
                .arg("--topology")
                .arg(&topo_file)
                .args(["--brokers", brokers]));
            let v = ok(resynth().args(["binder", "verify"]).arg(&out));
            assert!(v.contains("verified"), "{v}");
            let consumers: serde_json::Value =
                serde_json::from_slice(&std::fs::read(out.join("06-consumers.json")).unwrap())
                    .unwrap();
            let readers = consumers["groups_reading_topic"].as_array().unwrap();
            let mine = readers
                .iter()
                .find(|g| g["group"] == group.as_str())
                .unwrap_or_else(|| panic!("{consumers}"));
            assert_eq!(mine["received_release"], true, "{consumers}");
            assert!(official_parse(&out.join("06-lineage.openlineage.jsonl")) >= 5);
            first.get_or_insert((batch.clone(), out));
        }
        let (batch, out) = first.expect("a published batch");

        // Approve: an in-toto statement in a DSSE envelope; verified by
        // `binder verify` and, independently, by the `cryptography` package.
        ok(resynth()
            .args(["approve", &batch, "--key"])
            .arg(&keys.0)
            .arg("--binder")
            .arg(&out)
            .arg("--topology")
            .arg(&topo_file)
            .args(["--approver", "privacy officer"]));
        let v = ok(resynth()
            .args(["binder", "verify"])
            .arg(&out)
            .arg("--trusted-key")
            .arg(&keys.1)
            .arg("--require-approval"));
        assert!(v.contains("privacy officer: pass"), "{v}");
        let (code, v, _) = run(resynth()
            .args(["binder", "verify", "--require-approval"])
            .arg(&out));
        assert_eq!(
            code, 1,
            "an approval by an untrusted key does not count: {v}"
        );
        let envelope = std::fs::read_dir(out.join("approvals"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(".dsse.json"))
            .unwrap();
        let py = Command::new(common::repo().join("tools/openlineage/run.sh"))
            .arg("dsse")
            .arg(&envelope)
            .arg(&keys.1)
            .output()
            .unwrap();
        assert!(
            py.status.success(),
            "{}",
            String::from_utf8_lossy(&py.stdout)
        );
        let statement: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
        let digest = {
            use sha2::Digest;
            format!(
                "{:x}",
                sha2::Sha256::digest(std::fs::read(out.join("manifest.json")).unwrap())
            )
        };
        assert_eq!(statement["subject"][0]["digest"]["sha256"], digest.as_str());
        assert_eq!(statement["predicate"]["result"], "pass");

        // Access evidence names every window's read and every command, secrets redacted.
        let entries = resynth::audit::verify(&topo.audit.dir.join("audit.jsonl")).unwrap();
        let reads: Vec<_> = entries.iter().filter(|e| e.kind == "source_read").collect();
        assert_eq!(reads.len(), 6);
        for r in &reads {
            let p = &r.data["partitions"][0];
            assert_eq!(p["topic"], topo.kafka.source_topic.as_str());
            assert!(p["last_offset"].as_i64() >= p["first_offset"].as_i64());
            assert!(r.data["principal"]["os_user"].is_string());
        }
        let actions: Vec<_> = entries
            .iter()
            .filter(|e| e.kind == "operator_action")
            .collect();
        assert!(actions.iter().any(|a| a.data["command"] == "binder"));
        let approve = actions
            .iter()
            .find(|a| a.data["command"] == "approve")
            .unwrap();
        let args = approve.data["args"].to_string();
        assert!(
            args.contains("<redacted>") && !args.contains("privacy-officer.pem"),
            "{args}"
        );
        assert!(entries.iter().any(|e| e.kind == "release_approval"));

        // Anchors: the log agrees with the heads carried by the topics; a
        // truncated tail and a rewrite with a valid chain are both caught.
        let log = topo.audit.dir.join("audit.jsonl");
        let v = ok(resynth()
            .args(["audit", "verify"])
            .arg(&log)
            .args(["--brokers", brokers, "--topology"])
            .arg(&topo_file));
        assert!(v.contains("agrees with every anchor"), "{v}");
        let last_batch = entries
            .iter()
            .rfind(|e| e.kind == "batch_published")
            .unwrap()
            .seq as usize;
        let cut = dir.join("truncated");
        std::fs::create_dir_all(&cut).unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        let kept: Vec<&str> = text.lines().take(last_batch - 1).collect();
        std::fs::write(cut.join("audit.jsonl"), format!("{}\n", kept.join("\n"))).unwrap();
        let (code, _, err) = run(resynth()
            .args(["audit", "verify"])
            .arg(cut.join("audit.jsonl"))
            .args(["--brokers", brokers, "--topology"])
            .arg(&topo_file));
        assert_eq!(code, 1);
        assert!(err.contains("truncated"), "{err}");
        let rewritten = dir.join("rewritten");
        let mut forged = resynth::audit::AuditLog::open(&rewritten.join("audit.jsonl")).unwrap();
        for e in &entries {
            let mut data = e.data.clone();
            if e.kind == "batch_published" {
                data["records"] = serde_json::json!(1);
            }
            forged.append(&e.topology, &e.kind, data).unwrap();
        }
        resynth::audit::verify(&rewritten.join("audit.jsonl")).expect("the forged chain verifies");
        let (code, _, err) = run(resynth()
            .args(["audit", "verify"])
            .arg(rewritten.join("audit.jsonl"))
            .args(["--brokers", brokers, "--topology"])
            .arg(&topo_file));
        assert_eq!(code, 1);
        assert!(err.contains("rewritten"), "{err}");
    }
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
    // The Gaussian copula (not the default CART, which has no quantile
    // knots) with a quantile function of two knots is uniform between each
    // column's minimum and maximum. No lab value or age is uniform, so every
    // batch's KS distances are several times both the effect limit and the
    // noise allowance of ~1,500 rows a side: the gate must fail it, however
    // often it is regenerated. (A tiny `ks_max` no longer does this: the gate
    // rightly passes a faithful batch within sampling noise whatever the limit.)
    topo.model.generator = resynth::generate::GeneratorKind::GaussianCopula;
    topo.copula.quantile_knots = 2;
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

/// `output.require_approval`: a batch that passed the gate is held, not
/// published; the engine keeps consuming and starts no other fit; the hold
/// survives a restart; a signed approval (given while the engine is down)
/// publishes exactly the held batch on the next start, with the approval's
/// digest in its headers and lineage, even when that start is killed between
/// the release's commit and its audit entry.
#[test]
fn held_release_waits_for_a_signed_approval_across_restarts() {
    let brokers = common::kafka();
    let rt = rt();
    let id = common::unique("approval");
    let dir = tempfile::tempdir().unwrap();
    let mut topo = common::topology(brokers, &id, dir.path());
    let keys = binder_support::keygen(dir.path());
    topo.output.require_approval = true;
    topo.audit.approver_keys = vec![keys.1.clone()];
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
    let first = engine::run(&topo, brokers, &options, rt.handle(), &mut |_| {}).unwrap();
    assert_eq!(first.windows_closed, 2);
    assert_eq!(first.batches_published, 0, "{first:?}");
    assert!(common::read_all(brokers, &topo.output.topic).is_empty());
    let log = dir.path().join("audit.jsonl");
    let entries = audit::verify(&log).unwrap();
    let held: Vec<_> = entries
        .iter()
        .filter(|e| e.kind == "release_held")
        .collect();
    assert_eq!(held.len(), 1, "one release held");
    // No other fit while it waits: every later window is deferred (the held
    // window's own source_read also comes after its release_held entry).
    let after = |kind: &str| {
        entries
            .iter()
            .filter(|e| e.kind == kind && e.seq > held[0].seq)
            .count()
    };
    assert_eq!(
        after("model_fitted"),
        0,
        "no other fit while a release waits"
    );
    assert_eq!(after("refit_deferred"), after("source_read") - 1);
    let batch = held[0].data["batch_id"].as_str().unwrap().to_string();
    // Offsets were committed meanwhile: the source is not re-read.
    assert_eq!(
        common::committed(brokers, &topo.kafka.group_id, &topo.kafka.source_topic),
        common::high_watermarks(brokers, &topo.kafka.source_topic)
    );

    // A restart without a decision keeps holding it.
    let second = engine::run(&topo, brokers, &options, rt.handle(), &mut |_| {}).unwrap();
    assert_eq!(second.batches_published, 0);
    assert!(common::read_all(brokers, &topo.output.topic).is_empty());

    // The privacy officer reviews the held release's binder and signs it.
    let topo_file = binder_support::write_topology(&topo, dir.path());
    let out = dir.path().join("binder-held");
    let run = |args: &mut std::process::Command| {
        let o = args.output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    run(binder_support::resynth()
        .args(["binder", &batch, "--out"])
        .arg(&out)
        .arg("--topology")
        .arg(&topo_file)
        .args(["--brokers", brokers]));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["release"]["status"], "held");
    let (code, _, _) = {
        let o = binder_support::resynth()
            .args(["binder", "verify"])
            .arg(&out)
            .arg("--topology")
            .arg(&topo_file)
            .output()
            .unwrap();
        (o.status.code(), (), ())
    };
    assert_eq!(
        code,
        Some(1),
        "a release that needs approval does not verify without one"
    );
    let said = run(binder_support::resynth()
        .args(["approve", &batch, "--key"])
        .arg(&keys.0)
        .arg("--binder")
        .arg(&out)
        .arg("--topology")
        .arg(&topo_file));
    assert!(
        said.contains("audit entry"),
        "no engine runs, so approve appends: {said}"
    );

    // The next start publishes the held batch and is killed (`kill -9`, by
    // its kill point) after the release's commit, before its entry.
    let killed = binder_support::resynth()
        .args(["run"])
        .arg(&topo_file)
        .args(["--until-idle", "3", "--brokers", brokers])
        .env("RESYNTH_KILL_AT", "released")
        .output()
        .unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&killed.status),
        Some(9),
        "the kill point is reached: {}",
        String::from_utf8_lossy(&killed.stderr)
    );
    let n = held[0].data["records"].as_u64().unwrap();
    assert_eq!(
        common::read_all(brokers, &topo.output.topic).len() as u64,
        n
    );
    assert!(
        !audit::verify(&log)
            .unwrap()
            .iter()
            .any(|e| e.kind == "batch_published"),
        "killed before its entry"
    );

    // The start after it finds the batch on the topic: it records and
    // deploys it, and publishes nothing twice.
    let third = engine::run(&topo, brokers, &options, rt.handle(), &mut |_| {}).unwrap();
    assert_eq!(third.batches_published, 1, "{third:?}");
    let records = common::read_all(brokers, &topo.output.topic);
    assert_eq!(records.len() as u64, n, "published exactly once");
    let entries = audit::verify(&log).unwrap();
    let approval = entries
        .iter()
        .find(|e| e.kind == "release_approval")
        .unwrap();
    let digest = approval.data["envelope_sha256"].as_str().unwrap();
    for r in &records {
        assert_eq!(r.header("resynth.batch_id").unwrap(), batch);
        assert_eq!(r.header("resynth.approval").unwrap(), digest);
        assert!(r.header("resynth.audit_head").is_some());
    }
    let published = entries
        .iter()
        .find(|e| e.kind == "batch_published")
        .unwrap();
    assert_eq!(published.data["batch_sha256"], held[0].data["batch_sha256"]);
    assert_eq!(published.data["found_on_topic"], true);
    let lineage = std::fs::read_to_string(dir.path().join(&topo.lineage.file)).unwrap();
    assert!(
        lineage
            .lines()
            .any(|l| l.contains("\"OTHER\"") && l.contains(digest)),
        "the approval digest reaches the lineage"
    );
    // A restart after publication publishes nothing again.
    let fourth = engine::run(&topo, brokers, &options, rt.handle(), &mut |_| {}).unwrap();
    assert_eq!(fourth.batches_published, 0);
    assert_eq!(
        common::read_all(brokers, &topo.output.topic).len(),
        records.len()
    );

    // The binder exported after publication still verifies with the
    // approval of the held export: its evidence did not change.
    let later = dir.path().join("binder-published");
    run(binder_support::resynth()
        .args(["binder", &batch, "--out"])
        .arg(&later)
        .arg("--topology")
        .arg(&topo_file)
        .args(["--brokers", brokers]));
    let v = run(binder_support::resynth()
        .args(["binder", "verify"])
        .arg(&later)
        .arg("--topology")
        .arg(&topo_file));
    assert!(v.contains("earlier export"), "{v}");
    binder_support::official_parse(&later.join("06-lineage.openlineage.jsonl"));
}

/// Issue 16, "No PHI where it does not belong": unique canary strings (ids,
/// category labels, a unit, unknown JSON keys) and exact extremes (the real
/// maximum HbA1c and minimum creatinine) are planted in source events and
/// in hostile payloads; the engine runs on the real broker twice at
/// `RUST_LOG=trace` (Avro source that publishes; JSON source whose batches
/// fail the gate and are quarantined), with dead letters and late events on
/// both, and `check` and `validate` run on the same kind of data. No canary
/// may reach stdout or stderr, a metric name or label on `/metrics`, the
/// audit log, the lineage file, or an alert. (Dead-letter, late and
/// quarantine topics, reports and model records are PHI-derived by design:
/// see the README's "Data classification".)
#[test]
fn canaries_reach_no_log_metric_audit_entry_or_alert() {
    use canary::*;
    let brokers = common::kafka();
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let avro_id = common::unique("canary-avro");
    let json_id = common::unique("canary-json");
    let avro = common::topology(brokers, &avro_id, &dir.path().join("avro"));
    let mut json = common::topology(brokers, &json_id, &dir.path().join("json"));
    json.source.format = EventFormat::Json;
    // Fails the gate on every attempt (see the quarantine test above).
    json.model.generator = resynth::generate::GeneratorKind::GaussianCopula;
    json.copula.quantile_knots = 2;
    json.output.max_regenerations = 1;
    let mut topics = common::all_topics(&avro);
    topics.extend(common::all_topics(&json));
    rt.block_on(common::create_topics(
        brokers,
        &topics.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        1,
    ));

    let schema = RecordSchema::load(&avro.source.schema).unwrap();
    // The simulator of the whole-loop test above, whose batches pass.
    let sim = simulator((avro.window.size_secs * 1000) as i64);
    let planted = plant(&sim);
    let (avro_n, json_n) = (
        produce(
            brokers,
            &avro.kafka.source_topic,
            &planted,
            EventFormat::Avro,
            &schema,
        ),
        produce(
            brokers,
            &json.kafka.source_topic,
            &planted,
            EventFormat::Json,
            &schema,
        ),
    );

    let avro_run = Engine::start(&avro, dir.path());
    let json_run = Engine::start(&json, dir.path());
    let (avro_out, json_out) = (avro_run.finish(), json_run.finish());
    assert_eq!(
        avro_out.summary["dead_lettered"], avro_n.corrupt as u64,
        "{}",
        avro_out.summary
    );
    assert_eq!(
        json_out.summary["dead_lettered"], json_n.corrupt as u64,
        "{}",
        json_out.summary
    );
    for out in [&avro_out, &json_out] {
        assert_eq!(
            out.summary["late"],
            planted.late.len() as u64,
            "{}",
            out.summary
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("TRACE"),
            "trace-level logs were captured"
        );
        assert!(
            out.metrics.contains("resynth_"),
            "metrics scraped: {}",
            out.metrics
        );
    }
    let failed: Vec<serde_json::Value> = audit::verify(&avro.audit.dir.join("audit.jsonl"))
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "batch_quarantined")
        .map(|e| e.data)
        .collect();
    assert!(
        avro_out.summary["batches_published"].as_u64().unwrap() >= 1,
        "{}; failed: {failed:?}",
        avro_out.summary
    );
    assert!(
        json_out.summary["batches_quarantined"].as_u64().unwrap() >= 1,
        "{}",
        json_out.summary
    );

    let mut places: Vec<(String, Vec<u8>)> = Vec::new();
    for (topo, out) in [(&avro, avro_out), (&json, json_out)] {
        let name = &topo.name;
        places.push((format!("{name}: run stdout"), out.stdout));
        places.push((format!("{name}: run stderr (RUST_LOG=trace)"), out.stderr));
        places.push((format!("{name}: /metrics"), out.metrics.into_bytes()));
        let audit_log = std::fs::read(topo.audit.dir.join("audit.jsonl")).unwrap();
        assert!(!audit_log.is_empty());
        places.push((format!("{name}: audit.jsonl"), audit_log));
        let lineage = topo.audit.dir.join(&topo.lineage.file);
        places.push((
            format!("{name}: lineage"),
            std::fs::read(lineage).unwrap_or_default(),
        ));
        let alerts = common::read_all(brokers, &topo.kafka.alerts_topic);
        for a in &alerts {
            places.push((format!("{name}: alert"), a.payload.clone()));
            for (k, v) in &a.headers {
                places.push((format!("{name}: alert header {k}"), v.clone()));
            }
        }
        // The PHI-derived topics hold the planted bytes: the canaries were
        // really carried through the dead-letter and late paths.
        let dead = common::read_all(brokers, &topo.kafka.dead_letter_topic);
        assert!(
            dead.iter().any(|r| contains(&r.payload, CANARY)),
            "{name}: dead letters keep the bytes"
        );
        for r in &dead {
            places.push((
                format!("{name}: dead-letter reason"),
                r.header("resynth.error").unwrap().into_bytes(),
            ));
        }
        let late = common::read_all(brokers, topo.kafka.late_topic.as_deref().unwrap());
        assert!(
            late.iter().any(|r| contains(&r.payload, CANARY)),
            "{name}: late events keep the bytes"
        );
    }
    let quarantine_alerts = common::read_all(brokers, &json.kafka.alerts_topic);
    assert!(
        !quarantine_alerts.is_empty(),
        "quarantine alerts were raised"
    );

    // `check` against the broker holding the planted topic.
    let file = binder_support::write_topology(&avro, dir.path());
    let check = traced(&["check", file.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    places.push(("check stdout".into(), check.stdout));
    places.push(("check stderr".into(), check.stderr));

    // `validate`: a synthetic file that copies a canary row (so privacy
    // operators fail with evidence), then a holdout file whose numeric
    // column holds a canary word (a value that does not fit its column).
    let files = validate_files(dir.path());
    let report = dir.path().join("validate-report");
    let audit_dir = dir.path().join("validate-audit");
    let run = |holdout: &std::path::Path| {
        traced(&[
            "validate",
            "--train",
            files.train.to_str().unwrap(),
            "--holdout",
            holdout.to_str().unwrap(),
            "--synthetic",
            files.synthetic.to_str().unwrap(),
            "--roles",
            concat!(env!("CARGO_MANIFEST_DIR"), "/roles/lab_patients.toml"),
            "--report",
            report.to_str().unwrap(),
            "--audit-dir",
            audit_dir.to_str().unwrap(),
        ])
    };
    let judged = run(&files.holdout);
    assert_eq!(
        judged.status.code(),
        Some(1),
        "the copied rows fail the gate: {}",
        String::from_utf8_lossy(&judged.stdout)
    );
    assert!(report.join("validation.html").exists());
    let bad_input = run(&files.bad_holdout);
    assert_eq!(
        bad_input.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&bad_input.stderr)
    );
    for (what, out) in [("validate", judged), ("validate (bad input)", bad_input)] {
        places.push((format!("{what} stdout"), out.stdout));
        places.push((format!("{what} stderr"), out.stderr));
    }
    places.push((
        "validate audit.jsonl".into(),
        std::fs::read(audit_dir.join("audit.jsonl")).unwrap(),
    ));

    let needles = planted.needles();
    let leaks: Vec<String> = places
        .iter()
        .flat_map(|(place, bytes)| {
            needles.iter().filter_map(move |n| {
                find_leak(bytes, n.as_bytes()).map(|at| {
                    let text = String::from_utf8_lossy(
                        &bytes[at.saturating_sub(200)..(at + 200).min(bytes.len())],
                    )
                    .into_owned();
                    format!("{n:?} in {place}: …{text}…")
                })
            })
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "PHI canaries leaked:\n{}",
        leaks.join("\n\n")
    );
}

/// The leak search itself: the CI line of stop 21 is no leak, a printed
/// value is, wherever JSON or a log field puts it.
#[test]
fn canary_search_skips_log_times_and_finds_printed_values() {
    use canary::find_leak;
    let log = b"\x1b[2m2026-12-03T17:47:50.328764Z\x1b[0m TRACE Destroyed event";
    assert_eq!(find_leak(log, b"0.32876"), None);
    assert_eq!(
        find_leak(b"at 2026-12-03T10:00:13.241234Z ok", b"13.2412"),
        None
    );
    for printed in [
        &b"{\"max\":13.2412}"[..],
        b"value=13.2412",
        b"max 13.241234 seen",
    ] {
        assert!(find_leak(printed, b"13.2412").is_some(), "{printed:?}");
    }
    assert!(find_leak(b"min=0.32876", b"0.32876").is_some());
    assert!(find_leak(b"CNRY-PATIENT-0-1", b"CNRY").is_some());
}

mod canary {
    use std::io::{Read, Write};
    use std::path::{Path, PathBuf};
    use std::process::{Output, Stdio};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use rdkafka::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use resynth::schema::RecordSchema;
    use resynth::source::simulator::{LabEvent, Simulator, encode_event_avro, encode_event_json};
    use resynth::topology::{EventFormat, Topology};

    use super::binder_support;

    /// Every planted string starts with this (nothing else in the system does).
    pub const CANARY: &str = "CNRY";

    pub struct Planted {
        /// Window 0 then window 1, in event-time order within each.
        pub windows: Vec<Vec<LabEvent>>,
        /// Canary events of window 0, re-sent after window 1 (too late).
        pub late: Vec<LabEvent>,
        pub hba1c_max: f64,
        pub creatinine_min: f64,
    }

    impl Planted {
        /// What must not appear: the prefix, the strings as the bytes of a
        /// `Debug`-printed `Vec<u8>` would show them, and the extremes as
        /// Rust and JSON print them.
        pub fn needles(&self) -> Vec<String> {
            let debug_bytes = CANARY
                .bytes()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                CANARY.to_string(),
                CANARY.to_lowercase(),
                debug_bytes,
                self.hba1c_max.to_string(),
                format!("{:.4}", self.hba1c_max),
                self.creatinine_min.to_string(),
                format!("{:.5}", self.creatinine_min),
            ]
        }
    }

    /// A number just beyond `edge` (above when `up`), whose shortest
    /// decimal form is distinctive: e.g. 13.24 → 13.241234.
    fn beyond(edge: f64, up: bool) -> f64 {
        let rounded = if up {
            (edge * 100.0).ceil()
        } else {
            (edge * 100.0).floor() - 1.0
        } / 100.0;
        format!("{rounded:.2}{}", if up { "1234" } else { "8765" })
            .parse()
            .unwrap()
    }

    /// Two windows of simulator events; 3 patients per window get canary
    /// ids, event ids, units and race / diagnosis labels; one HbA1c and one
    /// creatinine result become both windows' exact maximum and minimum.
    pub fn plant(sim: &Simulator) -> Planted {
        let mut windows: Vec<Vec<LabEvent>> = (0..2).map(|w| sim.window_events(w)).collect();
        let all = |windows: &[Vec<LabEvent>]| windows.iter().flatten().cloned().collect::<Vec<_>>();
        let values = |code: &str| {
            all(&windows)
                .into_iter()
                .filter(|e| e.lab_code == code)
                .filter_map(|e| e.lab_value)
                .collect::<Vec<_>>()
        };
        let hba1c_max = beyond(values("4548-4").into_iter().fold(f64::MIN, f64::max), true);
        let creatinine_min = beyond(values("2160-0").into_iter().fold(f64::MAX, f64::min), false);
        for (w, events) in windows.iter_mut().enumerate() {
            let mut chosen: Vec<String> = Vec::new();
            for e in events.iter() {
                if chosen.len() < 3 && !chosen.contains(&e.patient_id) {
                    chosen.push(e.patient_id.clone());
                }
            }
            for (n, e) in events.iter_mut().enumerate() {
                if let Some(k) = chosen.iter().position(|p| *p == e.patient_id) {
                    e.patient_id = format!("{CANARY}-PATIENT-{w}-{k}");
                    e.event_id = format!("{CANARY}-EVENT-{w}-{n}");
                    e.lab_unit = format!("{CANARY}-UNIT");
                    match k {
                        0 => e.race = format!("{CANARY}-RACE"),
                        1 => e.diagnosis_code = format!("{CANARY}-DX"),
                        _ => e.ethnicity = format!("{CANARY}-ETHNICITY"),
                    }
                }
            }
            for (code, value) in [("4548-4", hba1c_max), ("2160-0", creatinine_min)] {
                let e = events
                    .iter_mut()
                    .find(|e| e.patient_id.starts_with(CANARY) && e.lab_code == code);
                if let Some(e) = e {
                    e.lab_value = Some(value);
                }
            }
        }
        let late = windows[0]
            .iter()
            .filter(|e| e.patient_id.starts_with(CANARY))
            .take(4)
            .cloned()
            .collect();
        assert!(
            all(&windows).iter().any(|e| e.lab_value == Some(hba1c_max)),
            "the HbA1c maximum was planted"
        );
        assert!(
            all(&windows)
                .iter()
                .any(|e| e.lab_value == Some(creatinine_min)),
            "the creatinine minimum was planted"
        );
        Planted {
            windows,
            late,
            hba1c_max,
            creatinine_min,
        }
    }

    /// Hostile payloads carrying canaries, for a source of `format`.
    fn corrupt(format: EventFormat, schema: &RecordSchema, e: &LabEvent) -> Vec<Vec<u8>> {
        match format {
            EventFormat::Fhir => unreachable!("these tests use avro and json sources"),
            EventFormat::Avro => {
                let good = encode_event_avro(schema, e).unwrap();
                vec![
                    good[..good.len() - 3].to_vec(),
                    [good.as_slice(), format!("{CANARY}-TRAILING").as_bytes()].concat(),
                    format!("{{\"{CANARY}-KEY\": \"{CANARY}-VALUE\"}}").into_bytes(),
                    [&[0x10][..], b"CNRY-\xff\xfe"].concat(),
                ]
            }
            EventFormat::Json => {
                let good = String::from_utf8(encode_event_json(e)).unwrap();
                vec![
                    good.replacen("\"age\":", &format!("\"age\":\"{CANARY}-AGE\",\"x\":"), 1)
                        .into_bytes(),
                    format!("{{\"{CANARY}-KEY\": {{\"{CANARY}-NESTED\": [1,").into_bytes(),
                    format!("{{\"patient_id\": \"{CANARY}-\\uZZZZ\"}}").into_bytes(),
                    format!("[\"{CANARY}-NOT-AN-OBJECT\"]").into_bytes(),
                    format!("{good} {CANARY}-TRAILING").into_bytes(),
                    [
                        format!("{{\"patient_id\": \"{CANARY}-").as_bytes(),
                        b"\xff\"}",
                    ]
                    .concat(),
                ]
            }
        }
    }

    pub struct Produced {
        pub corrupt: usize,
    }

    /// Window 0, the hostile payloads, window 1, then the late events.
    pub fn produce(
        brokers: &str,
        topic: &str,
        planted: &Planted,
        format: EventFormat,
        schema: &RecordSchema,
    ) -> Produced {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("linger.ms", "20")
            .create()
            .unwrap();
        let encode = |e: &LabEvent| match format {
            EventFormat::Avro => encode_event_avro(schema, e).unwrap(),
            EventFormat::Json => encode_event_json(e),
            EventFormat::Fhir => unreachable!("these tests use avro and json sources"),
        };
        let send = |key: &str, payload: &[u8]| {
            let mut record = BaseRecord::to(topic).key(key).payload(payload);
            while let Err((_, r)) = producer.send(record) {
                record = r;
                producer.poll(Duration::from_millis(20));
            }
        };
        let canary_event = planted.windows[0]
            .iter()
            .find(|e| e.patient_id.starts_with(CANARY))
            .unwrap();
        let bad = corrupt(format, schema, canary_event);
        for e in &planted.windows[0] {
            send(&e.patient_id, &encode(e));
        }
        for b in &bad {
            send(&canary_event.patient_id, b);
        }
        for e in planted.windows[1].iter().chain(&planted.late) {
            send(&e.patient_id, &encode(e));
        }
        producer.flush(Duration::from_secs(60)).unwrap();
        Produced { corrupt: bad.len() }
    }

    /// `resynth ARGS` with every log level on.
    pub fn traced(args: &[&str]) -> Output {
        binder_support::resynth()
            .args(args)
            .env("RUST_LOG", "trace")
            .output()
            .unwrap()
    }

    fn free_port() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    }

    fn scrape(addr: &str) -> Option<String> {
        let mut s = std::net::TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        body.contains("resynth_").then_some(body)
    }

    /// A `resynth run` process at trace level, its `/metrics` scraped
    /// until it exits (the last full scrape is kept).
    pub struct Engine {
        output: std::thread::JoinHandle<Output>,
        scraper: std::thread::JoinHandle<String>,
        done: Arc<AtomicBool>,
    }

    pub struct Finished {
        pub summary: serde_json::Value,
        pub stdout: Vec<u8>,
        pub stderr: Vec<u8>,
        pub metrics: String,
    }

    impl Engine {
        pub fn start(topo: &Topology, dir: &Path) -> Engine {
            let mut topo = topo.clone();
            let addr = free_port();
            topo.telemetry.metrics_addr = addr.clone();
            let file: PathBuf = dir.join(format!("{}.toml", topo.name));
            std::fs::write(&file, toml::to_string(&topo).unwrap()).unwrap();
            let child = binder_support::resynth()
                .arg("run")
                .arg(&file)
                .args(["--until-idle", "3", "--json"])
                .env("RUST_LOG", "trace")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let done = Arc::new(AtomicBool::new(false));
            let flag = done.clone();
            let output = std::thread::spawn(move || {
                let out = child.wait_with_output().unwrap();
                flag.store(true, Ordering::SeqCst);
                out
            });
            let flag = done.clone();
            let scraper = std::thread::spawn(move || {
                let mut last = String::new();
                while !flag.load(Ordering::SeqCst) {
                    if let Some(body) = scrape(&addr) {
                        last = body;
                    }
                    std::thread::sleep(Duration::from_millis(300));
                }
                last
            });
            Engine {
                output,
                scraper,
                done,
            }
        }

        pub fn finish(self) -> Finished {
            let out = self.output.join().unwrap();
            assert!(self.done.load(Ordering::SeqCst));
            let metrics = self.scraper.join().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr[out.stderr.len().saturating_sub(4000)..])
            );
            let summary = super::common::json_summary(&stdout);
            Finished {
                summary,
                stdout: out.stdout,
                stderr: out.stderr,
                metrics,
            }
        }
    }

    pub struct ValidateFiles {
        pub train: PathBuf,
        pub bad_holdout: PathBuf,
        pub holdout: PathBuf,
        pub synthetic: PathBuf,
    }

    /// Per-patient rows in the shape `roles/lab_patients.toml` expects,
    /// with canary ids, a canary diagnosis and the canary extreme HbA1c.
    pub fn validate_files(dir: &Path) -> ValidateFiles {
        use rand::{Rng, SeedableRng};
        let rows = |n: usize, seed: u64, prefix: &str| -> Vec<String> {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            (0..n)
                .map(|i| {
                    let age = rng.random_range(18..90);
                    let sex = if rng.random_bool(0.5) { "F" } else { "M" };
                    let dx = if rng.random_bool(0.3) {
                        "E11.9"
                    } else {
                        "Z00.0"
                    };
                    let hba1c = 5.0 + 3.0 * rng.random::<f64>();
                    let weight = 60.0 + 40.0 * rng.random::<f64>();
                    format!(
                        "{prefix}{i},{age},{sex},{:03},{dx},{hba1c:.1},{weight:.1}",
                        rng.random_range(0..5) * 100
                    )
                })
                .collect()
        };
        let header = "patient_id,age,sex,zip3,diagnosis_code,hba1c,weight_kg";
        let canary_rows = [
            format!("{CANARY}-VP-1,101,F,999,{CANARY}-DX-V,19.876543,211.2"),
            format!("{CANARY}-VP-2,19,M,998,E11.9,4.123456,39.7"),
        ];
        let write = |name: &str, lines: &[String]| {
            let p = dir.join(name);
            std::fs::write(&p, format!("{header}\n{}\n", lines.join("\n"))).unwrap();
            p
        };
        let mut train = rows(800, 1, "T");
        train.extend(canary_rows.iter().cloned());
        let holdout = rows(800, 2, "H");
        // The synthetic side copies real rows (canaries included) verbatim.
        let mut synthetic: Vec<String> = train.iter().take(300).cloned().collect();
        synthetic.extend(rows(500, 3, "S"));
        synthetic.extend(canary_rows.iter().cloned());
        let mut bad_holdout = holdout.clone();
        bad_holdout.push(format!("H-bad,40,F,100,Z00.0,{CANARY}-NOT-A-NUMBER,70.0"));
        ValidateFiles {
            train: write("train.csv", &train),
            bad_holdout: write("bad-holdout.csv", &bad_holdout),
            holdout: write("holdout.csv", &holdout),
            synthetic: write("synthetic.csv", &synthetic),
        }
    }

    pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }

    /// Where `needle` occurs as itself. A number needle inside a longer
    /// number, or inside a log line's RFC 3339 time, does not count: the
    /// trace log prints microseconds, and "17:47:50.328764" held the planted
    /// creatinine "0.32876" by chance (CI, stop 21); "…:13.241234Z" could
    /// hold an HbA1c of 13.2412 the same way.
    pub fn find_leak(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        let numeric = needle.first().is_some_and(u8::is_ascii_digit);
        haystack
            .windows(needle.len())
            .enumerate()
            .filter(|(_, w)| *w == needle)
            .map(|(at, _)| at)
            .find(|&at| {
                !numeric
                    || !(at > 0 && haystack[at - 1].is_ascii_digit() || in_clock_time(haystack, at))
            })
    }

    /// Whether byte `at` lies in an `Thh:mm:ss[.f…]` time of day.
    fn in_clock_time(haystack: &[u8], at: usize) -> bool {
        let token = |b: &u8| b.is_ascii_digit() || *b == b':' || *b == b'.';
        let start = haystack[..at]
            .iter()
            .rposition(|b| !token(b))
            .map_or(0, |i| i + 1);
        let time = &haystack[start..];
        start > 0
            && haystack[start - 1] == b'T'
            && time.len() >= 8
            && time[2] == b':'
            && time[5] == b':'
            && [0, 1, 3, 4, 6, 7].iter().all(|&i| time[i].is_ascii_digit())
    }

    pub fn contains(haystack: &[u8], needle: &str) -> bool {
        find(haystack, needle.as_bytes()).is_some()
    }
}

/// The on-call kit against real systems: Debian's Prometheus, run with the
/// shipped scrape config and alert rules (scrape and evaluation every
/// second), scrapes this process's `/metrics` while two topologies run on the
/// real broker, one with drift injected from window 3 and one without.
/// Prometheus's own API must show `ResynthDriftDetected` firing for the
/// drifting topology, and never for the clean one once Prometheus has
/// evaluated its final state; `/readyz` follows both runs.
#[test]
fn prometheus_fires_the_drift_alert_on_injected_drift_only() {
    let Some(prometheus) = common::prometheus_tool("prometheus") else {
        return;
    };
    let brokers = common::kafka();
    let rt = rt();
    let port = |var: &str, default: u16| {
        std::env::var(var)
            .ok()
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or(default)
    };
    // Below Linux's ephemeral range (32768-60999): a port in it can be
    // taken by any outbound connection of the parallel Kafka tests, and then
    // Prometheus cannot bind (one CI run waited 30 s on a Prometheus that had
    // exited).
    let metrics_addr = format!("127.0.0.1:{}", port("RESYNTH_TEST_METRICS_PORT", 29091));
    let prom_addr = format!("127.0.0.1:{}", port("RESYNTH_TEST_PROMETHEUS_PORT", 29090));
    resynth::telemetry::install_prometheus(&metrics_addr).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let shipped =
        std::fs::read_to_string(common::repo().join("deploy/prometheus/prometheus.yml")).unwrap();
    let rules = common::repo().join("deploy/prometheus/rules/resynth.rules.yml");
    let mut config = shipped.clone();
    for (from, to) in [
        ("scrape_interval: 15s", "scrape_interval: 1s"),
        ("evaluation_interval: 15s", "evaluation_interval: 1s"),
        ("127.0.0.1:9898", metrics_addr.as_str()),
        ("rules/resynth.rules.yml", rules.to_str().unwrap()),
    ] {
        assert!(
            config.contains(from),
            "shipped prometheus.yml lacks {from:?}"
        );
        config = config.replace(from, to);
    }
    std::fs::write(dir.path().join("prometheus.yml"), &config).unwrap();
    let log_path = dir.path().join("prometheus.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = prom::Server(
        std::process::Command::new(&prometheus)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={prom_addr}"))
            .arg("--log.level=warn")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    let api = prom::Api::new(&prom_addr);
    api.wait_ready(&mut server, &log_path, Duration::from_secs(30));

    // Two topologies, four hourly windows each; drift from window 2 makes
    // windows 2 and 3 drift, so the drifting run ends in DRIFT (2 of 3) on
    // the window that refits. 4,000 patients as in the other tests (at
    // 3,000 the demo topology quarantines every window on conditional_ks,
    // so no model is deployed and drift is never measured).
    let make = |tag: &str, drift: bool| {
        let id = common::unique(tag);
        let topo = common::topology(brokers, &id, &dir.path().join(tag));
        let topics = common::all_topics(&topo);
        rt.block_on(common::create_topics(
            brokers,
            &topics.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            2,
        ));
        let sim = Simulator::new(SimulatorConfig {
            patients: 4000,
            window_ms: (topo.window.size_secs * 1000) as i64,
            drift: drift.then(|| DriftSpec {
                start_window: 2,
                columns: vec!["hba1c".into(), "glucose".into()],
                size: 1.0,
            }),
            seed: 11,
            ..Default::default()
        });
        let schema = RecordSchema::load(&topo.source.schema).unwrap();
        let plan = LoadPlan {
            windows: 4,
            max_events: None,
            corrupt: 0,
            late: 0,
            format: EventFormat::Avro,
        };
        load_topic(brokers, &topo.kafka.source_topic, &sim, &schema, &plan).unwrap();
        topo
    };
    let drifting = make("prom-drift", true);
    let clean = make("prom-clean", false);
    let options = RunOptions {
        idle_exit: Some(Duration::from_secs(2)),
        ..Default::default()
    };

    let started = std::time::Instant::now();
    let deadline = started + Duration::from_secs(240);
    // (alertname, topology) -> seconds after start when first seen firing.
    let mut fired: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut phases: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let (drift_summary, clean_summary) = std::thread::scope(|s| {
        let runs = [&drifting, &clean].map(|topo| {
            let (rt, options) = (rt.handle(), &options);
            s.spawn(move || engine::run(topo, brokers, options, rt, &mut |_| {}).unwrap())
        });
        loop {
            assert!(
                std::time::Instant::now() < deadline,
                "bounded: no verdict after 240 s; fired so far {fired:?}"
            );
            for alert in api.firing() {
                fired
                    .entry((alert.name.clone(), alert.topology.clone()))
                    .or_insert_with(|| started.elapsed().as_secs_f64());
            }
            let ready = prom::readyz(&metrics_addr);
            for t in [&drifting.name, &clean.name] {
                if let Some(phase) = ready["topologies"][t]["phase"].as_str() {
                    phases
                        .entry(t.clone())
                        .or_default()
                        .insert(phase.to_string());
                }
            }
            let both_done = runs.iter().all(|h| h.is_finished());
            let drift_seen =
                fired.contains_key(&("ResynthDriftDetected".into(), drifting.name.clone()));
            if both_done && drift_seen && api.evaluated_after_final_scrape() {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let [a, b] = runs.map(|h| h.join().unwrap());
        (a, b)
    });
    // Prometheus has evaluated the rules on a scrape taken after both runs
    // ended: its view of the clean topology is final.
    let final_alerts = api.firing();
    for a in &final_alerts {
        fired
            .entry((a.name.clone(), a.topology.clone()))
            .or_insert_with(|| started.elapsed().as_secs_f64());
    }
    for ((name, topology), secs) in &fired {
        if topology == &drifting.name || topology == &clean.name {
            eprintln!("e2e-alert: {name} topology={topology} firing after {secs:.1} s");
        }
    }
    // The drift refit (the initial fit plus one); `drift_windows` counts the
    // state after each window, which the refit has already reset.
    assert!(drift_summary.refits >= 2, "{drift_summary:?}");
    assert_eq!(drift_summary.windows_closed, 4);
    assert_eq!(clean_summary.windows_closed, 4);
    assert!(drift_summary.batches_published >= 1, "{drift_summary:?}");
    assert!(clean_summary.batches_published >= 1, "{clean_summary:?}");
    assert_eq!(clean_summary.drift_windows, 0, "{clean_summary:?}");
    let drift_alert = final_alerts
        .iter()
        .find(|a| a.name == "ResynthDriftDetected" && a.topology == drifting.name)
        .expect("ResynthDriftDetected firing for the drifting topology");
    assert_eq!(drift_alert.labels["severity"], "ticket");
    assert_eq!(
        drift_alert.annotations["runbook_url"],
        "docs/runbooks/ResynthDriftDetected.md"
    );
    assert!(
        drift_alert.annotations["description"]
            .as_str()
            .unwrap()
            .contains(&format!("Topology {} is in state DRIFT", drifting.name)),
        "{:?}",
        drift_alert.annotations
    );
    // Silent without drift, and not vacuously: Prometheus has the clean
    // topology's drift state, and it is not DRIFT.
    for name in ["ResynthDriftDetected", "ResynthDriftUnresolved"] {
        assert!(
            !fired.contains_key(&(name.to_string(), clean.name.clone())),
            "{name} fired for the clean topology: {fired:?}"
        );
    }
    let state = api.query(&format!(
        "resynth_drift_state{{topology=\"{}\"}}",
        clean.name
    ));
    assert_eq!(state.len(), 1, "clean drift state scraped: {state:?}");
    assert!(state[0] < 2.0, "clean topology ends in state {}", state[0]);
    // Readiness followed both runs: running (ready) while they ran, then stopped.
    for t in [&drifting.name, &clean.name] {
        let seen = &phases[t];
        assert!(
            seen.contains("running") && seen.contains("stopped"),
            "{t}: {seen:?}"
        );
    }
    let ready = prom::readyz(&metrics_addr);
    assert_eq!(ready["topologies"][&drifting.name]["step"], "finished");
}

/// A Prometheus server the test started, and the parts of its HTTP API the
/// end-to-end test reads.
mod prom {
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use serde_json::Value;

    /// Killed when the test ends, however it ends.
    pub struct Server(pub std::process::Child);

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn unix_now() -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    }

    /// Seconds since the epoch of an RFC 3339 UTC time as Prometheus writes
    /// it (`2026-12-02T06:50:01.123456789Z`).
    pub fn parse_rfc3339(s: &str) -> Option<f64> {
        let (date, time) = s.strip_suffix('Z')?.split_once('T')?;
        let d: Vec<i64> = date
            .split('-')
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
        let t: Vec<i64> = hms
            .split(':')
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
        let (y, m) = if d[1] <= 2 {
            (d[0] - 1, d[1] + 9)
        } else {
            (d[0], d[1] - 3)
        };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * m + 2) / 5 + d[2] - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146097 + doe - 719468;
        let frac: f64 = format!("0.{frac}").parse().ok()?;
        Some((days * 86400 + t[0] * 3600 + t[1] * 60 + t[2]) as f64 + frac)
    }

    #[derive(Debug)]
    pub struct Alert {
        pub name: String,
        pub topology: String,
        pub labels: Value,
        pub annotations: Value,
    }

    pub struct Api {
        base: String,
        agent: ureq::Agent,
        /// When `evaluated_after_final_scrape` was first asked (after the runs ended).
        asked: std::cell::Cell<Option<f64>>,
        /// Start of the first scrape after that.
        final_scrape: std::cell::Cell<Option<f64>>,
    }

    impl Api {
        pub fn new(addr: &str) -> Api {
            Api {
                base: format!("http://{addr}"),
                agent: ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(5)))
                    .http_status_as_error(false)
                    .build()
                    .into(),
                asked: std::cell::Cell::new(None),
                final_scrape: std::cell::Cell::new(None),
            }
        }

        fn get(&self, path: &str, query: &[(&str, &str)]) -> Option<(u16, String)> {
            let mut req = self.agent.get(format!("{}{path}", self.base));
            for (k, v) in query {
                req = req.query(*k, *v);
            }
            let mut resp = req.call().ok()?;
            let status = resp.status().as_u16();
            Some((status, resp.body_mut().read_to_string().ok()?))
        }

        fn data(&self, path: &str, query: &[(&str, &str)]) -> Value {
            let (status, body) = self.get(path, query).expect("prometheus answers");
            assert_eq!(status, 200, "{path}: {body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["status"], "success", "{body}");
            v["data"].clone()
        }

        /// Polls `/-/ready` until it answers 200 (bounded). A Prometheus
        /// that exited (a port taken, a bad config) fails at once with its
        /// log, not after the whole wait.
        pub fn wait_ready(&self, server: &mut Server, log: &std::path::Path, within: Duration) {
            let until = Instant::now() + within;
            while self.get("/-/ready", &[]).map(|(s, _)| s) != Some(200) {
                let exited = server.0.try_wait().ok().flatten();
                if exited.is_some() || Instant::now() >= until {
                    let log = std::fs::read_to_string(log).unwrap_or_default();
                    panic!(
                        "prometheus not ready after {within:?} (exit status {exited:?}); its log:\n{log}"
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }

        /// Alerts in state `firing` (pending ones are not yet alerts).
        pub fn firing(&self) -> Vec<Alert> {
            self.data("/api/v1/alerts", &[])["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["state"] == "firing")
                .map(|a| Alert {
                    name: a["labels"]["alertname"].as_str().unwrap_or("").into(),
                    topology: a["labels"]["topology"].as_str().unwrap_or("").into(),
                    labels: a["labels"].clone(),
                    annotations: a["annotations"].clone(),
                })
                .collect()
        }

        /// Values of an instant query's vector result.
        pub fn query(&self, promql: &str) -> Vec<f64> {
            self.data("/api/v1/query", &[("query", promql)])["result"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|r| r["value"][1].as_str()?.parse().ok())
                .collect()
        }

        /// Call once the runs have ended: true once the first scrape that
        /// started after the first call has been followed by an evaluation
        /// of the resynth rule group (0.1 s later, past the scrape's end).
        pub fn evaluated_after_final_scrape(&self) -> bool {
            let after = *self.asked.get().get_or_insert_with(unix_now);
            self.asked.set(Some(after));
            let targets = self.data("/api/v1/targets", &[]);
            let Some(target) = targets["activeTargets"]
                .as_array()
                .and_then(|t| t.iter().find(|t| t["labels"]["job"] == "resynth"))
            else {
                return false;
            };
            let scraped = target["lastScrape"].as_str().and_then(parse_rfc3339);
            let groups = self.data("/api/v1/rules", &[]);
            let evaluated = groups["groups"]
                .as_array()
                .and_then(|g| g.iter().find(|g| g["name"] == "resynth"))
                .and_then(|g| g["lastEvaluation"].as_str())
                .and_then(parse_rfc3339);
            if self.final_scrape.get().is_none() {
                self.final_scrape.set(scraped.filter(|&s| s > after));
            }
            // The group's evaluation began after that scrape had appended
            // its samples (a scrape of this endpoint takes milliseconds).
            matches!((self.final_scrape.get(), evaluated), (Some(s), Some(e)) if e > s + 0.1)
        }
    }

    /// `/readyz` of this process's listener, as JSON (any status).
    pub fn readyz(addr: &str) -> Value {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(addr) else {
            return Value::Null;
        };
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = write!(
            s,
            "GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        );
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text.split("\r\n\r\n")
            .nth(1)
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null)
    }

    #[test]
    fn rfc3339_times_parse_like_the_epoch_says() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:01.5Z"), Some(951868801.5));
        assert_eq!(
            parse_rfc3339("2026-12-02T06:50:01.25Z"),
            Some(1796194201.25)
        );
    }
}

/// Hostile bytes on a real source topic (issue 16) and the two poison
/// events of issue 12: a payload at the source topic's size limit, whose
/// dead letter plus headers cannot fit the dead-letter topic (defect 7), and
/// one event dated year 3000 among a window's events (defect 8). Each
/// hostile event ends once on the dead-letter topic (the year-1900 event on
/// the late topic) with its original bytes, or cut with a verifiable digest;
/// no valid event is late; the valid window still publishes and the engine
/// exits 0 with bounded memory.
#[test]
fn hostile_events_are_routed_once_and_the_window_still_publishes() {
    use rdkafka::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use resynth::source::simulator::{LabEvent, encode_event_avro};
    use sha2::{Digest, Sha256};
    use std::process::Stdio;

    let brokers = common::kafka();
    let rt = rt();
    let id = common::unique("hostile");
    let dir = tempfile::tempdir().unwrap();
    let topo = common::topology(brokers, &id, dir.path());
    let topics = common::all_topics(&topo);
    rt.block_on(common::create_topics(
        brokers,
        &topics.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        1,
    ));
    let schema = RecordSchema::load(&topo.source.schema).unwrap();
    let window_ms = (topo.window.size_secs * 1000) as i64;
    let sim = simulator(window_ms);
    let (w0, w1) = (sim.window_events(0), sim.window_events(1));
    assert!(
        w0.len() > 2 * 4096,
        "window 0 spans several decode batches, so window 0 is final before the hostile events"
    );
    let avro = |e: &LabEvent| encode_event_avro(&schema, e).unwrap();
    let at = |t: i64| LabEvent {
        event_time_ms: t,
        ..w1[0].clone()
    };
    let with_value = |v: f64| {
        let mut b = avro(&w1[1]);
        // lab_value is the union's double branch (index 1), then lab_unit.
        let unit = w1[1].lab_unit.as_bytes();
        let tail = 1 + 8 + 1 + unit.len();
        let pos = b.len() - tail;
        assert_eq!(b[pos], 0x02, "double branch");
        b[pos + 1..pos + 9].copy_from_slice(&v.to_le_bytes());
        b
    };
    assert!(w1[1].lab_value.is_some());
    let other_schema = apache_avro::Schema::parse_str(
        r#"{"type":"record","name":"Other","fields":[{"name":"flag","type":"boolean"},{"name":"n","type":"double"}]}"#,
    )
    .unwrap();
    let other = resynth::schema::write_datum(
        &other_schema,
        apache_avro::types::Value::Record(vec![
            ("flag".into(), apache_avro::types::Value::Boolean(true)),
            ("n".into(), apache_avro::types::Value::Double(2.5)),
        ]),
    )
    .unwrap();
    let valid = avro(&w1[2]);
    let mut long_string = vec![0x80, 0x9a, 0x0c]; // varint 100,000 (zigzag)
    long_string.extend(std::iter::repeat_n(b'x', 100_000));
    // At the source topic's limit (1,048,588 bytes per batch, less the batch
    // and record framing of one unkeyed record): random bytes.
    let mut big = vec![0u8; 1_048_500];
    {
        use rand::{Rng, SeedableRng};
        rand::rngs::StdRng::seed_from_u64(7).fill(&mut big[..]);
    }
    let year_1900 = -2_208_988_800_000;
    let year_3000 = 32_503_680_000_000;
    let mut hostile: Vec<(&str, Vec<u8>)> = resynth::schema::fuzz::hostile_cases()
        .into_iter()
        .filter(|(_, b)| b.len() < 1_000_000)
        .collect();
    hostile.extend([
        ("truncated avro", valid[..valid.len() / 2].to_vec()),
        ("another schema's datum", other),
        (
            "json on an avro topic",
            resynth::source::simulator::encode_event_json(&w1[3]),
        ),
        ("100 KB avro string", long_string),
        ("NaN lab value", with_value(f64::NAN)),
        ("infinite lab value", with_value(f64::INFINITY)),
        ("year 3000", avro(&at(year_3000))),
        ("1 MB random at the source limit", big.clone()),
    ]);
    let late_payload = avro(&at(year_1900));

    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.max.bytes", "2000000")
        .set("linger.ms", "20")
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let send = |key: &[u8], payload: &[u8]| {
        let mut record = BaseRecord::to(&topo.kafka.source_topic)
            .key(key)
            .payload(payload);
        if payload.len() > 1_000_000 {
            // No key: the record must fit the topic's limit on its own.
            record = BaseRecord::to(&topo.kafka.source_topic).payload(payload);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::error::RDKafkaErrorCode::QueueFull,
                    ),
                    r,
                )) => {
                    record = r;
                    producer.poll(Duration::from_millis(20));
                }
                Err((e, _)) => panic!("producing {} bytes: {e}", payload.len()),
            }
        }
    };
    for e in &w0 {
        send(e.patient_id.as_bytes(), &avro(e));
    }
    let half = w1.len() / 2;
    for e in &w1[..half] {
        send(e.patient_id.as_bytes(), &avro(e));
    }
    for (name, b) in &hostile {
        send(name.as_bytes(), b);
    }
    send(b"year 1900", &late_payload);
    for e in &w1[half..] {
        send(e.patient_id.as_bytes(), &avro(e));
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    let produced = common::high_watermarks(brokers, &topo.kafka.source_topic)[0].1 as usize;
    assert_eq!(
        produced,
        w0.len() + w1.len() + hostile.len() + 1,
        "the source accepted every hostile payload"
    );

    // The real binary, so the exit code and peak RSS are the engine's own.
    let file = binder_support::write_topology(&topo, dir.path());
    let mut child = binder_support::resynth()
        .arg("run")
        .arg(&file)
        .args(["--until-idle", "3", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap());
    let err_reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    // VmHWM is monotonic: its last reading before exit is the peak so far.
    let mut peak_kib = 0u64;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(v) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(v);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = out_reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    assert!(
        status.success(),
        "engine exits 0: {status}\n{}",
        &stderr[stderr.len().saturating_sub(4000)..]
    );
    let summary = common::json_summary(&stdout);
    eprintln!(
        "hostile run: peak RSS {} MiB; summary {summary}",
        peak_kib / 1024
    );
    assert!(peak_kib > 0, "VmHWM was read");
    assert!(
        peak_kib < 1024 * 1024,
        "peak RSS {} MiB stays below 1 GiB",
        peak_kib / 1024
    );
    assert!(
        summary["batches_published"].as_u64().unwrap() >= 1,
        "{summary}"
    );
    assert_eq!(
        summary["dead_lettered"].as_u64().unwrap(),
        hostile.len() as u64
    );
    assert_eq!(
        summary["late"].as_u64().unwrap(),
        1,
        "only the year-1900 event"
    );
    assert_eq!(summary["dead_letters_truncated"].as_u64().unwrap(), 1);
    assert!(!common::read_all(brokers, &topo.output.topic).is_empty());

    // Late topic: the year-1900 event alone, byte for byte. No valid event
    // was made late by the year-3000 one.
    let late = common::read_all(brokers, topo.kafka.late_topic.as_deref().unwrap());
    assert_eq!(
        late.len(),
        1,
        "late: {:?}",
        late.iter()
            .map(|r| r.header("resynth.error"))
            .collect::<Vec<_>>()
    );
    assert_eq!(late[0].payload, late_payload);
    assert!(late[0].header("resynth.error").unwrap().starts_with("late"));

    // Dead letters: each hostile payload exactly once, with its bytes; the
    // oversized one cut to fit, with its size and digest.
    let dead = common::read_all(brokers, &topo.kafka.dead_letter_topic);
    assert_eq!(dead.len(), hostile.len());
    for (name, bytes) in &hostile {
        let found: Vec<&common::Read> = dead
            .iter()
            .filter(|r| {
                if r.header("resynth.payload.truncated").is_some() {
                    bytes.len() == 1_048_500 && bytes.starts_with(&r.payload)
                } else {
                    &r.payload == bytes
                }
            })
            .collect();
        assert_eq!(found.len(), 1, "{name}: exactly one dead letter");
        let r = found[0];
        let reason = r.header("resynth.error").unwrap();
        assert!(!reason.is_empty(), "{name}");
        assert!(r.header("resynth.source.offset").is_some(), "{name}");
        if *name == "year 3000" {
            assert!(reason.contains("ahead of the wall clock"), "{reason}");
        }
        if *name == "NaN lab value" || *name == "infinite lab value" {
            assert!(reason.contains("NaN or infinite"), "{reason}");
        }
    }
    let cut = dead
        .iter()
        .find(|r| r.header("resynth.payload.truncated").is_some())
        .expect("the 1 MB payload is dead-lettered, cut");
    assert_eq!(cut.header("resynth.payload.truncated").unwrap(), "true");
    assert_eq!(
        cut.header("resynth.payload.original_bytes").unwrap(),
        big.len().to_string()
    );
    let digest: String = Sha256::digest(&big)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(cut.header("resynth.payload.sha256").unwrap(), digest);
    assert!(
        cut.payload.len() > 1_040_000,
        "kept {} bytes",
        cut.payload.len()
    );
    assert_eq!(&big[..cut.payload.len()], &cut.payload[..]);
    assert!(
        cut.header("resynth.payload.truncated_reason")
            .unwrap()
            .contains("1048588")
    );

    // Everything was accounted for: the committed offsets reach the end.
    assert_eq!(
        common::committed(brokers, &topo.kafka.group_id, &topo.kafka.source_topic),
        common::high_watermarks(brokers, &topo.kafka.source_topic)
    );
}
