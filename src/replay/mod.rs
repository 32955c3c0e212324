//! `resynth replay`: FHIR R4 bulk ndjson (what Synthea's bulk exporter
//! writes, one file per resource type) published to one Kafka topic per
//! resource type, as a hospital's change feed would be.
//!
//! - **Keys**: every record is keyed by its patient id (a Patient by its own
//!   `id`, every other resource by the patient its `subject` / `patient` /
//!   `beneficiary` / Provenance `target` references), so one patient's
//!   records share a partition on every topic (same partition count, same
//!   murmur2 partitioner as Java clients: the topics are co-partitioned).
//! - **Order**: event time across all files ([`resource::TYPES`] lists each
//!   type's event-time path); Patients carry none and are published first,
//!   as demographics that arrived before any of their events. The patient
//!   topic is compacted (latest demographics per key, a table).
//! - **Span and speed**: `[since, until)` cuts the lifetimes Synthea writes;
//!   at speed `s` an event `t` after the span's start is sent `t / s` after
//!   the replay's start ([`pacing`]); `max` does not wait.
//! - **Memory**: an index of 32 bytes per event in the span, not the
//!   resources ([`index`]); lines are read back by byte range when sent.
//! - **Bad lines** stop the replay before anything is published, naming file,
//!   line and path; `skip_bad` skips and counts them instead.
//! - **Delivery**: the idempotent producer (no duplicates or reordering on
//!   retries within a partition); the replay fails if any record is not
//!   acknowledged. Nothing is logged from a resource's content.

pub mod index;
pub mod pacing;
pub mod resource;

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use serde::Serialize;

use index::{BadLinePolicy, Entry, Index, IndexError, Span};
use pacing::{Clock, Pacer, Speed, WallClock};
use resource::TYPES;

/// Header with each record's event time (ms since the epoch, decimal);
/// absent on Patients.
pub const EVENT_TIME_HEADER: &str = "resynth.replay.event_time";

/// Lines above this are not sent by default (Kafka's default
/// `max.message.bytes` is 1,048,588 per record batch).
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1_000_000;

/// What to replay and where.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// ndjson files, or folders of them.
    pub inputs: Vec<PathBuf>,
    pub brokers: String,
    /// librdkafka properties (resolved; security settings go here).
    pub properties: BTreeMap<String, String>,
    /// Topic of a type: the prefix and the lowercased type ...
    pub topic_prefix: String,
    /// ... unless named here (type → topic).
    pub topics: BTreeMap<String, String>,
    /// Types to replay (`None`: every type of [`TYPES`]).
    pub types: Option<Vec<String>>,
    pub span: Span,
    pub speed: Speed,
    /// Topics replay creates (if missing): partitions and replication
    /// factor (-1: the broker's default).
    pub partitions: i32,
    pub replication_factor: i32,
    pub create_topics: bool,
    pub bad_lines: BadLinePolicy,
    /// Longer lines are bad lines (Kafka's default `max.message.bytes` is
    /// 1,048,588 per record batch).
    pub max_record_bytes: usize,
}

impl ReplayOptions {
    /// Defaults for everything but inputs and brokers.
    pub fn new(inputs: Vec<PathBuf>, brokers: impl Into<String>) -> ReplayOptions {
        ReplayOptions {
            inputs,
            brokers: brokers.into(),
            properties: BTreeMap::new(),
            topic_prefix: "fhir.".into(),
            topics: BTreeMap::new(),
            types: None,
            span: Span::default(),
            speed: Speed::Max,
            partitions: 3,
            replication_factor: -1,
            create_topics: true,
            bad_lines: BadLinePolicy::Stop,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{0}")]
    Options(String),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("creating the Kafka {what}: {source}")]
    Client {
        what: &'static str,
        #[source]
        source: KafkaError,
    },
    #[error("creating topic {topic}: {reason}")]
    CreateTopic { topic: String, reason: String },
    #[error("{path}: reading a line back: {source} (was the file changed during the replay?)")]
    Reread {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{failed} record(s) not delivered; first error: {first}")]
    Delivery { failed: u64, first: String },
    #[error("flushing the producer: {0}")]
    Flush(KafkaError),
}

/// One type's figures in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct TypeSummary {
    pub topic: String,
    pub published: u64,
    /// Timed resources outside `[since, until)`, not published.
    pub outside_span: u64,
}

/// Event-time bounds (RFC 3339, UTC).
#[derive(Debug, Clone, Serialize)]
pub struct SpanSummary {
    pub since: Option<String>,
    pub until: Option<String>,
    pub first_event: Option<String>,
    pub last_event: Option<String>,
}

/// What `resynth replay` prints (JSON).
#[derive(Debug, Clone, Serialize)]
pub struct ReplaySummary {
    /// Records published per topic.
    pub topics: BTreeMap<String, u64>,
    pub types: BTreeMap<String, TypeSummary>,
    /// Records published in all.
    pub events: u64,
    /// Distinct patient keys.
    pub patients: u64,
    pub span: SpanSummary,
    pub speed: String,
    pub files: usize,
    pub bytes_read: u64,
    pub skipped_files: Vec<String>,
    /// Resources of types not replayed, by type.
    pub skipped_types: BTreeMap<String, u64>,
    pub bad_lines: u64,
    /// The first few bad lines (file:line: path at fault).
    pub bad_examples: Vec<String>,
    pub created_topics: Vec<String>,
    /// Building the index (reading every file once).
    pub index_secs: f64,
    /// Publishing, from the first record sent to the last acknowledged.
    pub publish_secs: f64,
    /// Of which waiting for the pace.
    pub paced_wait_secs: f64,
    /// The whole replay.
    pub elapsed_secs: f64,
    /// `events / publish_secs`.
    pub events_per_sec: f64,
}

/// Brokers and librdkafka properties for replay's clients.
#[derive(Debug, Default, Clone)]
pub struct KafkaSettings {
    pub brokers: Option<String>,
    /// Resolved (secrets included: for librdkafka only, never printed).
    pub properties: BTreeMap<String, String>,
}

impl KafkaSettings {
    /// `kafka.brokers` and `kafka.properties` of a topology file (only its
    /// `[kafka]` table is read), secret references resolved as `resynth run`
    /// resolves them (`topology::secrets`; relative `file:` paths against
    /// the topology's folder).
    pub fn from_topology(path: &std::path::Path) -> Result<KafkaSettings, ReplayError> {
        let bad = |why: String| ReplayError::Options(format!("{}: {why}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let doc: toml::Table = toml::from_str(&text).map_err(|e| bad(e.message().to_string()))?;
        let Some(kafka) = doc.get("kafka").and_then(toml::Value::as_table) else {
            return Err(bad("no [kafka] table".into()));
        };
        let brokers = match kafka.get("brokers") {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .ok_or_else(|| bad("kafka.brokers: not a string".into()))?
                    .to_string(),
            ),
        };
        let mut raw = BTreeMap::new();
        if let Some(props) = kafka.get("properties") {
            let props = props
                .as_table()
                .ok_or_else(|| bad("kafka.properties: not a table".into()))?;
            for (k, v) in props {
                let v = v
                    .as_str()
                    .ok_or_else(|| bad(format!("kafka.properties.{k}: not a string")))?;
                raw.insert(k.clone(), v.to_string());
            }
        }
        let base = path.parent().unwrap_or(std::path::Path::new("."));
        let properties = Self::resolve(raw, base).map_err(bad)?;
        Ok(KafkaSettings {
            brokers,
            properties,
        })
    }

    /// Adds `KEY=VALUE` properties (the command line's), which win over the
    /// topology's; values may reference secrets like a topology's.
    pub fn add_properties(&mut self, pairs: &[String]) -> Result<(), ReplayError> {
        let mut raw = BTreeMap::new();
        for p in pairs {
            // The argument is not echoed: it may be a mistyped secret.
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| ReplayError::Options("--property: expected KEY=VALUE".into()))?;
            raw.insert(k.trim().to_string(), v.to_string());
        }
        let resolved = Self::resolve(raw, std::path::Path::new("."))
            .map_err(|e| ReplayError::Options(format!("--property: {e}")))?;
        self.properties.extend(resolved);
        Ok(())
    }

    fn resolve(
        raw: BTreeMap<String, String>,
        base: &std::path::Path,
    ) -> Result<BTreeMap<String, String>, String> {
        let p = crate::topology::secrets::KafkaProperties::new(raw, base);
        let problems = p.problems();
        if problems.is_empty() {
            Ok((*p).clone())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// Counts acknowledgements; keeps the first error's text (never a payload).
#[derive(Default)]
struct Delivery {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Delivery {}

impl ProducerContext for Delivery {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

impl Delivery {
    fn check(&self) -> Result<(), ReplayError> {
        let failed = self.failed.load(Ordering::Relaxed);
        if failed == 0 {
            return Ok(());
        }
        let first = self
            .first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default();
        Err(ReplayError::Delivery { failed, first })
    }
}

/// Properties replay sets itself.
const MANAGED: &[(&str, &str)] = &[("enable.idempotence", "true")];

/// The producer's settings: replay's defaults, then `properties`, then the
/// idempotence replay relies on.
pub fn producer_config(
    brokers: &str,
    properties: &BTreeMap<String, String>,
    max_record_bytes: usize,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    // Room for the key, headers and batch overhead above the largest line.
    c.set(
        "message.max.bytes",
        (max_record_bytes + 65_536).max(1_000_000).to_string(),
    );
    // Defaults `properties` may override. FHIR JSON compresses several-fold;
    // murmur2 is the Java clients' partitioner, so a Kafka Streams or Java
    // producer keyed by patient lands on the same partitions.
    c.set("linger.ms", "10")
        .set("compression.type", "lz4")
        .set("partitioner", "murmur2_random")
        .set("queue.buffering.max.messages", "200000");
    for (k, v) in properties {
        c.set(k, v);
    }
    c.set("bootstrap.servers", brokers);
    for (k, v) in MANAGED {
        c.set(*k, *v);
    }
    c
}

/// The problems of the given librdkafka properties for a replay.
pub fn property_problems(properties: &BTreeMap<String, String>) -> Vec<String> {
    let mut p = Vec::new();
    for (k, v) in properties {
        if let Some((_, want)) = MANAGED.iter().find(|(m, _)| m == k)
            && v != want
        {
            p.push(format!(
                "{k}={v}: replay always uses the idempotent producer ({k}={want})"
            ));
        }
        if k.starts_with("transactional.") {
            p.push(format!("{k}: replay does not use transactions"));
        }
    }
    p
}

/// Which of [`TYPES`] are replayed, and each one's topic.
fn plan_topics(options: &ReplayOptions) -> Result<(Vec<bool>, Vec<String>), ReplayError> {
    let known = || TYPES.iter().map(|t| t.name).collect::<Vec<_>>().join(", ");
    let mut selected: Vec<bool> = TYPES
        .iter()
        .map(|t| options.types.is_none() && t.default)
        .collect();
    for name in options.types.iter().flatten() {
        let k = resource::type_index(name).ok_or_else(|| {
            ReplayError::Options(format!(
                "--types: {name} has no known event-time path; replayable types: {}",
                known()
            ))
        })?;
        selected[k] = true;
    }
    for name in options.topics.keys() {
        if resource::type_index(name).is_none() {
            return Err(ReplayError::Options(format!(
                "--topic {name}=...: not a replayable type ({})",
                known()
            )));
        }
    }
    let topics = TYPES
        .iter()
        .map(|t| {
            options
                .topics
                .get(t.name)
                .cloned()
                .unwrap_or_else(|| resource::default_topic(&options.topic_prefix, t.name))
        })
        .collect();
    Ok((selected, topics))
}

fn rfc3339(ms: Option<i64>) -> Option<String> {
    ms.map(crate::audit::openlineage::rfc3339)
}

/// Creates the topics that will receive records (the Patient one
/// compacted); existing ones are left as they are.
fn create_topics(
    options: &ReplayOptions,
    needed: &[(String, bool)],
) -> Result<Vec<String>, ReplayError> {
    let mut config = ClientConfig::new();
    for (k, v) in &options.properties {
        config.set(k, v);
    }
    let admin: AdminClient<DefaultClientContext> = config
        .set("bootstrap.servers", &options.brokers)
        .create()
        .map_err(|source| ReplayError::Client {
            what: "admin client",
            source,
        })?;
    let new: Vec<NewTopic> = needed
        .iter()
        .map(|(name, compact)| {
            let t = NewTopic::new(
                name,
                options.partitions,
                TopicReplication::Fixed(options.replication_factor),
            );
            if *compact {
                t.set("cleanup.policy", "compact")
            } else {
                t
            }
        })
        .collect();
    let results = futures::executor::block_on(admin.create_topics(
        &new,
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
    ))
    .map_err(|e| ReplayError::CreateTopic {
        topic: needed
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        reason: e.to_string(),
    })?;
    let mut created = Vec::new();
    for r in results {
        match r {
            Ok(name) => created.push(name),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(ReplayError::CreateTopic {
                    topic,
                    reason: code.to_string(),
                });
            }
        }
    }
    Ok(created)
}

/// Replays `options.inputs`; `progress(sent, total)` is called about once
/// a second while publishing.
pub fn replay(
    options: &ReplayOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ReplaySummary, ReplayError> {
    replay_with_clock(options, WallClock::start(), progress)
}

/// [`replay`] paced by `clock` (tests pass a fake one).
pub fn replay_with_clock<C: Clock>(
    options: &ReplayOptions,
    clock: C,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ReplaySummary, ReplayError> {
    let started = Instant::now();
    let problems = property_problems(&options.properties);
    if !problems.is_empty() {
        return Err(ReplayError::Options(problems.join("; ")));
    }
    if options.partitions < 1 {
        return Err(ReplayError::Options("--partitions: must be ≥ 1".into()));
    }
    if let (Some(s), Some(u)) = (options.span.since_ms, options.span.until_ms)
        && s >= u
    {
        return Err(ReplayError::Options(
            "--since must be before --until".into(),
        ));
    }
    let (selected, topics) = plan_topics(options)?;
    let files = index::collect_files(&options.inputs)?;
    let index = index::build(
        files,
        &selected,
        options.span,
        options.bad_lines,
        options.max_record_bytes,
    )?;
    let index_secs = started.elapsed().as_secs_f64();

    // The topics that will receive records.
    let mut needed: Vec<(String, bool)> = Vec::new();
    for (k, t) in TYPES.iter().enumerate() {
        if index.counts[k].in_span > 0 && !needed.iter().any(|(n, _)| n == &topics[k]) {
            needed.push((topics[k].clone(), t.time_paths.is_empty()));
        }
    }
    let created_topics = if options.create_topics && !needed.is_empty() {
        create_topics(options, &needed)?
    } else {
        Vec::new()
    };

    let producer: ThreadedProducer<Delivery> = producer_config(
        &options.brokers,
        &options.properties,
        options.max_record_bytes,
    )
    .create_with_context(Delivery::default())
    .map_err(|source| ReplayError::Client {
        what: "producer",
        source,
    })?;
    let publish_started = Instant::now();
    let (published, waited) = publish(&index, &topics, options, &producer, clock, progress)?;
    producer
        .flush(Duration::from_secs(120))
        .map_err(ReplayError::Flush)?;
    producer.context().check()?;
    let publish_secs = publish_started.elapsed().as_secs_f64();

    let mut by_topic: BTreeMap<String, u64> = BTreeMap::new();
    let mut types = BTreeMap::new();
    for (k, t) in TYPES.iter().enumerate() {
        let c = index.counts[k];
        if c.in_span + c.outside_span == 0 {
            continue;
        }
        *by_topic.entry(topics[k].clone()).or_default() += published[k];
        types.insert(
            t.name.to_string(),
            TypeSummary {
                topic: topics[k].clone(),
                published: published[k],
                outside_span: c.outside_span,
            },
        );
    }
    let events: u64 = published.iter().sum();
    let (first, last) = index.first_last().unzip();
    Ok(ReplaySummary {
        topics: by_topic,
        types,
        events,
        patients: index.patients.len() as u64,
        span: SpanSummary {
            since: rfc3339(options.span.since_ms),
            until: rfc3339(options.span.until_ms),
            first_event: rfc3339(first),
            last_event: rfc3339(last),
        },
        speed: options.speed.to_string(),
        files: index.files.len(),
        bytes_read: index.bytes,
        skipped_files: index.skipped_files.clone(),
        skipped_types: index.skipped_types.clone(),
        bad_lines: index.bad_lines,
        bad_examples: index.bad_examples.iter().map(ToString::to_string).collect(),
        created_topics,
        index_secs,
        publish_secs,
        paced_wait_secs: waited.as_secs_f64(),
        elapsed_secs: started.elapsed().as_secs_f64(),
        events_per_sec: if publish_secs > 0.0 {
            events as f64 / publish_secs
        } else {
            0.0
        },
    })
}

/// Sends the demographics, then every event at its pace. Returns the
/// records sent per type and the time spent waiting for the pace.
fn publish<C: Clock>(
    index: &Index,
    topics: &[String],
    options: &ReplayOptions,
    producer: &ThreadedProducer<Delivery>,
    clock: C,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(Vec<u64>, Duration), ReplayError> {
    let files: Vec<File> = index
        .files
        .iter()
        .map(|p| {
            File::open(p).map_err(|source| ReplayError::Reread {
                path: p.display().to_string(),
                source,
            })
        })
        .collect::<Result<_, _>>()?;
    let total = (index.demographics.len() + index.events.len()) as u64;
    let mut sent = vec![0u64; TYPES.len()];
    let mut buf = Vec::new();
    let mut last_progress = Instant::now();
    let mut n = 0u64;
    let mut send = |e: &Entry, sent: &mut Vec<u64>| -> Result<(), ReplayError> {
        buf.resize(e.len as usize, 0);
        files[e.file as usize]
            .read_exact_at(&mut buf, e.offset)
            .map_err(|source| ReplayError::Reread {
                path: index.files[e.file as usize].display().to_string(),
                source,
            })?;
        let key = index.patients[e.patient as usize].as_bytes();
        let topic = topics[e.kind as usize].as_str();
        let time = (e.time_ms != i64::MIN).then(|| e.time_ms.to_string());
        let headers = time.as_ref().map(|t| {
            OwnedHeaders::new().insert(Header {
                key: EVENT_TIME_HEADER,
                value: Some(t.as_bytes()),
            })
        });
        loop {
            let mut record = BaseRecord::to(topic).key(key).payload(buf.as_slice());
            if let Some(h) = &headers {
                record = record.headers(h.clone());
            }
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // The producer's own thread drains the queue.
                    producer.context().check()?;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => {
                    return Err(ReplayError::Delivery {
                        failed: 1,
                        first: e.to_string(),
                    });
                }
            }
        }
        sent[e.kind as usize] += 1;
        n += 1;
        if n.is_multiple_of(4096) {
            producer.context().check()?;
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            progress(n, total);
            last_progress = Instant::now();
        }
        Ok(())
    };
    for e in &index.demographics {
        send(e, &mut sent)?;
    }
    let origin = options
        .span
        .since_ms
        .or(index.events.first().map(|e| e.time_ms))
        .unwrap_or(0);
    let mut pacer = Pacer::new(options.speed, origin, clock);
    for e in &index.events {
        pacer.wait_for(e.time_ms);
        send(e, &mut sent)?;
    }
    progress(total, total);
    Ok((sent, pacer.waited))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topologys_kafka_table_gives_brokers_and_resolved_properties() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("pw"), "s3cret-replay\n").unwrap();
        let topo = d.path().join("t.toml");
        std::fs::write(
            &topo,
            r#"name = "x"
[kafka]
brokers = "b:9092"
source_topic = "ignored"
[kafka.properties]
"security.protocol" = "SASL_SSL"
"sasl.password" = "file:pw"
[window]
anything = "not read"
"#,
        )
        .unwrap();
        let mut k = KafkaSettings::from_topology(&topo).unwrap();
        assert_eq!(k.brokers.as_deref(), Some("b:9092"));
        assert_eq!(k.properties["sasl.password"], "s3cret-replay");
        k.add_properties(&["security.protocol=SSL".into()]).unwrap();
        assert_eq!(k.properties["security.protocol"], "SSL");
        // A literal secret on the command line is refused, and not echoed.
        let e = k
            .add_properties(&["sasl.password=hunter22".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sasl.password") && !e.contains("hunter22"),
            "{e}"
        );
        assert!(k.add_properties(&["no-equals-sign".into()]).is_err());
    }

    #[test]
    fn idempotence_cannot_be_turned_off() {
        let p: BTreeMap<String, String> = [("enable.idempotence".to_string(), "false".to_string())]
            .into_iter()
            .collect();
        assert_eq!(property_problems(&p).len(), 1);
        assert_eq!(
            producer_config("b", &p, DEFAULT_MAX_RECORD_BYTES).get("enable.idempotence"),
            Some("true")
        );
    }

    #[test]
    fn provenance_is_replayed_only_when_named() {
        let mut o = ReplayOptions::new(vec![], "b");
        let (selected, topics) = plan_topics(&o).unwrap();
        let prov = resource::type_index("Provenance").unwrap();
        assert!(!selected[prov]);
        assert!(selected[resource::type_index("Observation").unwrap()]);
        assert_eq!(topics[0], "fhir.patient");
        o.types = Some(vec!["Provenance".into()]);
        assert!(plan_topics(&o).unwrap().0[prov]);
        o.types = Some(vec!["Organization".into()]);
        assert!(plan_topics(&o).is_err());
    }
}
