//! Shared setup for integration tests: the real Kafka broker from
//! `deploy/kafka`, unique topic names per test, and a topology built from the
//! demo topology pointed at them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};

use resynth::topology::Topology;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Bootstrap address of the real broker, starting it if needed
/// (`deploy/kafka/kafka.sh start` is idempotent and serialised by a lock).
pub fn kafka() -> &'static str {
    static BROKERS: OnceLock<String> = OnceLock::new();
    BROKERS.get_or_init(|| {
        if let Ok(b) = std::env::var("RESYNTH_TEST_BROKERS") {
            return b;
        }
        let status = Command::new("bash")
            .arg(repo().join("deploy/kafka/kafka.sh"))
            .arg("start")
            .status()
            .expect("run deploy/kafka/kafka.sh");
        assert!(status.success(), "deploy/kafka/kafka.sh start failed");
        format!(
            "127.0.0.1:{}",
            std::env::var("KAFKA_PORT").unwrap_or_else(|_| "19092".into())
        )
    })
}

/// A fresh name for this test's topics and group.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

pub async fn create_topics(brokers: &str, names: &[&str], partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(
            &topics,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("create topics");
    for r in results {
        r.expect("topic created");
    }
}

/// The demo topology with every topic, the group and the audit dir made unique.
pub fn topology(brokers: &str, id: &str, audit_dir: &Path) -> Topology {
    let mut t = Topology::load(&repo().join("topologies/demo.toml")).expect("demo topology loads");
    t.name = id.to_string();
    t.kafka.brokers = brokers.to_string();
    t.kafka.group_id = format!("{id}-group");
    t.kafka.source_topic = format!("{id}.labs");
    t.kafka.dead_letter_topic = format!("{id}.dlq");
    t.kafka.late_topic = Some(format!("{id}.late"));
    t.kafka.quarantine_topic = format!("{id}.quarantine");
    t.kafka.alerts_topic = format!("{id}.alerts");
    t.output.topic = format!("{id}.synthetic");
    t.audit.dir = audit_dir.to_path_buf();
    t.telemetry.metrics_addr = String::new();
    // Each privacy operator's bound is one-sided 95%, so with ~50 operators a
    // good batch of ~1,500 rows per side fails one now and then; these tests
    // check the pipeline, so they allow more regenerations than the default.
    t.output.max_regenerations = 5;
    t
}

pub fn all_topics(t: &Topology) -> Vec<String> {
    vec![
        t.kafka.source_topic.clone(),
        t.kafka.dead_letter_topic.clone(),
        t.kafka.late_topic.clone().expect("tests set a late topic"),
        t.kafka.quarantine_topic.clone(),
        t.kafka.alerts_topic.clone(),
        t.output.topic.clone(),
    ]
}

/// A record as an independent downstream consumer sees it.
#[derive(Debug, Clone)]
pub struct Read {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Read {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// Reads every committed record of `topic` from the start, until the
/// consumer's position reaches the high watermark of every partition.
pub fn read_all(brokers: &str, topic: &str) -> Vec<Read> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("reader");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions = metadata.topics()[0].partitions().len();
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let mut eof = std::collections::HashSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while eof.len() < partitions {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out reading {topic}"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                eof.remove(&m.partition());
                out.push(Read {
                    topic: m.topic().to_string(),
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| k.to_vec()),
                    payload: m.payload().unwrap_or(&[]).to_vec(),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_string(), h.value.unwrap_or(&[]).to_vec()))
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                eof.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// Every payload of `topic`, sorted: compares topics whose records (dead
/// letters, late events) have no key of their own that must be unique.
pub fn sorted_payloads(brokers: &str, topic: &str) -> Vec<Vec<u8>> {
    let mut p: Vec<Vec<u8>> = read_all(brokers, topic)
        .into_iter()
        .map(|r| r.payload)
        .collect();
    p.sort();
    p
}

/// Committed offsets of `group` on `topic` (partition → offset; -1001 = none).
pub fn committed(brokers: &str, group: &str, topic: &str) -> Vec<(i32, i64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("offset reader");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        tpl.add_partition(topic, p.id());
    }
    let got = resynth::engine::coordinator::retry_transient(
        resynth::engine::coordinator::COORDINATOR_DEADLINE,
        || consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)),
    )
    .expect("committed offsets");
    got.elements()
        .iter()
        .map(|e| (e.partition(), e.offset().to_raw().unwrap_or(-1)))
        .collect()
}

/// High watermark per partition.
pub fn high_watermarks(brokers: &str, topic: &str) -> Vec<(i32, i64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("client");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            let (_, high) = consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .expect("watermarks");
            (p.id(), high)
        })
        .collect()
}

/// Reads `topic` with Kafka's own Java console consumer (read_committed), an
/// independent client, and counts occurrences of `needle` in its output
/// (headers are printed, so a header name counts records that carry it).
pub fn java_console_count(brokers: &str, topic: &str, needle: &str) -> usize {
    let out = Command::new("bash")
        .arg(repo().join("deploy/kafka/kafka.sh"))
        .args([
            "tool",
            "org.apache.kafka.tools.consumer.ConsoleConsumer",
            "--bootstrap-server",
            brokers,
            "--topic",
            topic,
            "--from-beginning",
            "--isolation-level",
            "read_committed",
            "--timeout-ms",
            "8000",
            "--formatter-property",
            "print.headers=true",
        ])
        .output()
        .expect("run the Java console consumer");
    let text = String::from_utf8_lossy(&out.stdout);
    text.matches(needle).count()
}

/// A binary of Debian's `prometheus` package (`prometheus`, `promtool`) from
/// PATH. `None` means skip, with the reason on stderr, and is only allowed
/// locally: `.ci/run` installs the package and sets
/// `RESYNTH_REQUIRE_PROMETHEUS=1`, so in CI a missing binary fails the test.
pub fn prometheus_tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("RESYNTH_REQUIRE_PROMETHEUS").is_none(),
            "{name} not found on PATH (apt-get install prometheus) and RESYNTH_REQUIRE_PROMETHEUS is set"
        );
        eprintln!("SKIPPED: {name} not found on PATH; apt-get install prometheus to run this test");
    }
    found
}

/// The run's JSON summary: the last line of `resynth run --json`'s stdout
/// that starts with `{` (progress lines come before it).
pub fn json_summary(stdout: &str) -> serde_json::Value {
    serde_json::from_str(
        stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .expect("json summary"),
    )
    .expect("the summary line is JSON")
}

/// A seeded Synthea population written into `out` by deploy/synthea/synthea.sh
/// (its jars fetched first, the fetch .ci/run also runs); returns the
/// `fhir/` folder. `extra` follows `-o OUT` (e.g. `["--", "-a", "20-30"]`),
/// `env` is set for the script (e.g. `SYNTHEA_THREADS`).
pub fn synthea_population(
    out: &Path,
    patients: &str,
    seed: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> PathBuf {
    let script = repo().join("deploy/synthea/synthea.sh");
    let fetch = Command::new("bash")
        .arg(&script)
        .arg("fetch")
        .status()
        .expect("run deploy/synthea/synthea.sh fetch");
    assert!(fetch.success(), "synthea.sh fetch failed");
    let started = std::time::Instant::now();
    let run = Command::new("bash")
        .arg(&script)
        .args(["generate", "-p", patients, "-s", seed, "-o"])
        .arg(out)
        .args(extra)
        .envs(env.iter().copied())
        .output()
        .expect("run deploy/synthea/synthea.sh generate");
    assert!(
        run.status.success(),
        "synthea.sh generate: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    eprintln!(
        "synthea: {patients} patients generated in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    out.join("fhir")
}
