//! The engine against a secured real broker (`KAFKA_SECURITY=sasl_ssl
//! deploy/kafka/kafka.sh`): SASL_SSL with SCRAM-SHA-512, a TLS test CA,
//! StandardAuthorizer with nothing allowed without an ACL. Protects: the
//! minimal ACL set of the README is enough for the whole loop to publish
//! exactly once; a wrong password, an untrusted CA and each missing ACL
//! fail fast with an error naming what to grant; the password appears in
//! no log line (RUST_LOG=trace), audit entry or report.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};

use resynth::engine::{self, EngineError, RunOptions};
use resynth::preflight::{self, ProbeOptions};
use resynth::schema::RecordSchema;
use resynth::source::load::{LoadPlan, load_topic_with};
use resynth::source::simulator::{Simulator, SimulatorConfig};
use resynth::topology::{EventFormat, Topology};

struct Secure {
    brokers: String,
    home: PathBuf,
}

fn kafka_sh(args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(common::repo().join("deploy/kafka/kafka.sh"))
        .args(args)
        .env("KAFKA_SECURITY", "sasl_ssl")
        .output()
        .expect("run deploy/kafka/kafka.sh");
    assert!(
        out.status.success(),
        "kafka.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The secured broker, started if the test script did not.
fn secure() -> &'static Secure {
    static S: OnceLock<Secure> = OnceLock::new();
    S.get_or_init(|| {
        if let (Ok(b), Ok(h)) = (
            std::env::var("RESYNTH_TEST_SECURE_BROKERS"),
            std::env::var("RESYNTH_TEST_SECURE_HOME"),
        ) {
            return Secure {
                brokers: b,
                home: h.into(),
            };
        }
        kafka_sh(&["start"]);
        Secure {
            brokers: kafka_sh(&["bootstrap"]),
            home: kafka_sh(&["home"]).into(),
        }
    })
}

fn password(user: &str) -> String {
    std::fs::read_to_string(secure().home.join(format!("secrets/{user}.password")))
        .unwrap()
        .trim()
        .to_string()
}

fn tls_props(user: &str, password: &str, ca: &str) -> BTreeMap<String, String> {
    [
        ("security.protocol", "SASL_SSL".to_string()),
        ("sasl.mechanism", "SCRAM-SHA-512".to_string()),
        ("sasl.username", user.to_string()),
        ("sasl.password", password.to_string()),
        (
            "ssl.ca.location",
            secure().home.join("tls").join(ca).display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The super user's client settings (tests set up topics and read back as it).
fn admin() -> BTreeMap<String, String> {
    tls_props("admin", &password("admin"), "ca.pem")
}

fn config(props: &BTreeMap<String, String>) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in props {
        c.set(k, v);
    }
    c.set("bootstrap.servers", &secure().brokers);
    c
}

/// The demo topology on unique names, as the engine principal `resynth`,
/// its password referenced by `password_ref` (never written inline).
fn topology(id: &str, audit: &Path, password_ref: &str, ca: &str) -> Topology {
    let mut t = common::topology(&secure().brokers, id, audit);
    t.kafka.transactional_id = Some(format!("{id}-tx"));
    for (k, v) in tls_props("resynth", password_ref, ca) {
        t.kafka.properties.insert(k, v);
    }
    t
}

fn outputs(t: &Topology) -> Vec<String> {
    vec![
        t.output.topic.clone(),
        t.kafka.dead_letter_topic.clone(),
        t.kafka.late_topic.clone().unwrap(),
        t.kafka.quarantine_topic.clone(),
        t.kafka.alerts_topic.clone(),
    ]
}

fn create_topics(names: &[String]) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let admin_client: AdminClient<DefaultClientContext> = config(&admin()).create().unwrap();
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, 1, TopicReplication::Fixed(1)))
        .collect();
    let results = rt
        .block_on(admin_client.create_topics(
            &topics,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .unwrap();
    for r in results {
        r.expect("topic created");
    }
}

/// `kafka.sh grant-engine` for several topologies at once, leaving out the
/// grants `skip` names (one JVM per operation set, not per topology).
fn grant(topologies: &[(&Topology, &str)]) {
    let mut args: Vec<String> = vec!["grant-engine".into()];
    for (t, skip) in topologies {
        if *skip != "source" {
            args.extend(["--source".into(), t.kafka.source_topic.clone()]);
        }
        if *skip != "group" {
            args.extend(["--group".into(), t.kafka.group_id.clone()]);
        }
        if *skip != "txid" {
            args.extend(["--transactional-id".into(), t.transactional_id()]);
        }
        for o in outputs(t) {
            if *skip != o {
                args.extend(["--write".into(), o]);
            }
        }
    }
    kafka_sh(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// Every committed record of `topic`, read as admin with read_committed.
fn read_all(topic: &str) -> Vec<(Vec<u8>, BTreeMap<String, String>)> {
    let consumer: BaseConsumer = config(&admin())
        .set("group.id", common::unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "timed out reading {topic}");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_string(),
                                    String::from_utf8_lossy(h.value.unwrap_or(&[])).into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((m.payload().unwrap_or(&[]).to_vec(), headers));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return out,
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn minimal_acls_publish_exactly_once_over_sasl_ssl_and_the_password_leaks_nowhere() {
    let id = common::unique("sec");
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    let topo = topology(&id, &audit, "${RESYNTH_TEST_KAFKA_PASSWORD}", "ca.pem");
    let mut topics = outputs(&topo);
    topics.push(topo.kafka.source_topic.clone());
    create_topics(&topics);
    grant(&[(&topo, "")]);

    let schema = RecordSchema::load(&topo.source.schema).unwrap();
    let sim = Simulator::new(SimulatorConfig {
        patients: 4000,
        window_ms: (topo.window.size_secs * 1000) as i64,
        seed: 11,
        ..Default::default()
    });
    let loaded = load_topic_with(
        &secure().brokers,
        &topo.kafka.source_topic,
        &sim,
        &schema,
        &LoadPlan {
            windows: 3,
            max_events: None,
            corrupt: 3,
            late: 0,
            format: EventFormat::Avro,
        },
        &admin(),
    )
    .unwrap();

    // The topology as a file: the password is a reference, resolved from
    // the environment of the engine process only.
    let file = dir.path().join("secure.toml");
    std::fs::write(&file, toml::to_string(&topo).unwrap()).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let secret = password("resynth");
    assert!(!text.contains(&secret));
    assert!(text.contains("${RESYNTH_TEST_KAFKA_PASSWORD}"), "{text}");

    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_resynth"))
            .args(args)
            .env("RESYNTH_TEST_KAFKA_PASSWORD", &secret)
            .env("RUST_LOG", "trace")
            .output()
            .unwrap()
    };
    let check = run(&["check", file.to_str().unwrap()]);
    let check_out = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(
        check.status.success(),
        "{check_out}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for what in [
        format!("ok   READ on topic {}", topo.kafka.source_topic),
        format!("ok   READ on group {}", topo.kafka.group_id),
        format!(
            "ok   WRITE and DESCRIBE on transactional id {}",
            topo.transactional_id()
        ),
        format!("ok   WRITE on topic {}", topo.output.topic),
        format!("ok   WRITE on topic {}", topo.kafka.alerts_topic),
    ] {
        assert!(
            check_out.contains(&what),
            "{what} missing from:\n{check_out}"
        );
    }

    let out = run(&["run", file.to_str().unwrap(), "--until-idle", "3", "--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        &stderr[stderr.len().saturating_sub(4000)..]
    );
    let summary = common::json_summary(&stdout);
    assert!(
        summary["batches_published"].as_u64().unwrap() >= 1,
        "{summary}"
    );

    // Exactly once: what read_committed sees is what the engine says it
    // published, each batch once, and every bad event is a dead letter.
    let synthetic = read_all(&topo.output.topic);
    assert_eq!(
        synthetic.len() as u64,
        summary["records_published"].as_u64().unwrap()
    );
    let batches: BTreeSet<&String> = synthetic
        .iter()
        .filter_map(|(_, h)| h.get("resynth.batch_id"))
        .collect();
    assert_eq!(
        batches.len() as u64,
        summary["batches_published"].as_u64().unwrap()
    );
    let dead = read_all(&topo.kafka.dead_letter_topic);
    assert_eq!(dead.len(), loaded.corrupt_payloads.len());
    // The access probes' records were aborted: no consumer sees them.
    assert!(
        synthetic
            .iter()
            .chain(&dead)
            .all(|(_, h)| !h.contains_key(preflight::PROBE_HEADER))
    );

    // The password: not in any output, log line (trace), audit file or report.
    assert!(stderr.len() > 10_000, "trace logging was on");
    for (name, text) in [
        ("check stdout", &check_out),
        ("run stdout", &stdout),
        ("run stderr", &stderr),
    ] {
        assert!(!text.contains(&secret), "password in {name}");
    }
    let files = files_under(&audit);
    assert!(
        files.iter().any(|f| f.ends_with("audit.jsonl")),
        "{files:?}"
    );
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&secret),
            "password in {}",
            f.display()
        );
    }
}

#[test]
fn wrong_password_untrusted_ca_and_each_missing_acl_fail_fast_naming_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong.password");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let good_ref = format!(
        "file:{}",
        secure().home.join("secrets/resynth.password").display()
    );
    let wrong_ref = format!("file:{}", wrong.display());

    // (case, what the topology gets wrong or which grant is left out, expected text)
    struct Case {
        topo: Topology,
        skip: String,
        expect: String,
    }
    let mut cases = Vec::new();
    let mut all_topics = Vec::new();
    for case in [
        "wrong-password",
        "untrusted-ca",
        "source",
        "group",
        "txid",
        "out:output",
        "out:dlq",
        "out:late",
        "out:quarantine",
        "out:alerts",
    ] {
        let id = common::unique("acl");
        let audit = dir.path().join(&id);
        let (pw, ca) = match case {
            "wrong-password" => (wrong_ref.as_str(), "ca.pem"),
            "untrusted-ca" => (good_ref.as_str(), "other-ca.pem"),
            _ => (good_ref.as_str(), "ca.pem"),
        };
        let t = topology(&id, &audit, pw, ca);
        assert!(t.kafka.properties.problems().is_empty());
        let o = outputs(&t);
        let (skip, expect) = match case {
            "wrong-password" => (String::new(), "authentication failed".to_string()),
            "untrusted-ca" => (String::new(), "TLS handshake failed".to_string()),
            "source" => (
                "source".into(),
                format!("grant READ on topic {}", t.kafka.source_topic),
            ),
            "group" => (
                "group".into(),
                format!("grant READ on group {}", t.kafka.group_id),
            ),
            "txid" => (
                "txid".into(),
                format!(
                    "grant WRITE and DESCRIBE on transactional id {}",
                    t.transactional_id()
                ),
            ),
            other => {
                let topic = match other {
                    "out:output" => o[0].clone(),
                    "out:dlq" => o[1].clone(),
                    "out:late" => o[2].clone(),
                    "out:quarantine" => o[3].clone(),
                    _ => o[4].clone(),
                };
                (topic.clone(), format!("grant WRITE on topic {topic}"))
            }
        };
        all_topics.extend(o);
        all_topics.push(t.kafka.source_topic.clone());
        cases.push(Case {
            topo: t,
            skip,
            expect,
        });
    }
    create_topics(&all_topics);
    grant(
        &cases
            .iter()
            .map(|c| (&c.topo, c.skip.as_str()))
            .collect::<Vec<_>>(),
    );

    for c in &cases {
        let started = Instant::now();
        let report = preflight::probe(&c.topo, &secure().brokers, ProbeOptions::default());
        let elapsed = started.elapsed();
        let problems = report.problems();
        assert_eq!(problems.len(), 1, "{}: {problems:#?}", c.expect);
        assert!(
            problems[0].contains(&c.expect),
            "{}: {problems:#?}",
            c.expect
        );
        assert!(
            elapsed < Duration::from_secs(8),
            "{}: took {elapsed:?}",
            c.expect
        );
        assert!(!problems[0].contains(&password("resynth")));
    }

    // The engine refuses to start on the same check, within seconds.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let group_case = &cases[3].topo;
    let started = Instant::now();
    let outcome = engine::run(
        group_case,
        &secure().brokers,
        &RunOptions {
            idle_exit: Some(Duration::from_secs(2)),
            ..Default::default()
        },
        rt.handle(),
        &mut |_| {},
    );
    let Err(err) = outcome else {
        panic!("the engine must not start without READ on its group");
    };
    assert!(matches!(err, EngineError::Access(_)), "{err}");
    assert!(err.to_string().contains(&cases[3].expect), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // `resynth check` reports it as a failed health check, exit 1.
    let file = dir.path().join("no-group.toml");
    std::fs::write(&file, toml::to_string(group_case).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_resynth"))
        .args(["check", file.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("FAIL READ on group"), "{stdout}");
    assert!(stderr.contains(&cases[3].expect), "{stderr}");
}
