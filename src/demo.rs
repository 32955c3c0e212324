//! `resynth demo`: the whole loop with no external services.
//!
//! An in-process Kafka (librdkafka's mock cluster) receives simulator events —
//! with a drift injected part-way, a few corrupt events and a few late ones —
//! and the engine runs on `topologies/demo.toml` until the stream is drained.
//! Afterwards a separate consumer reads the synthetic topic back, so the
//! summary reports what a downstream subscriber actually sees. The mock
//! cluster writes no transaction markers, so that consumer reads uncommitted:
//! read-committed behaviour is tested against the real broker (tests/).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::engine::{self, Progress, RunOptions, RunSummary};
use crate::schema::RecordSchema;
use crate::sink::header_names;
use crate::source::load::{LoadPlan, Loaded, load_topic};
use crate::source::simulator::{DriftSpec, Simulator, SimulatorConfig};
use crate::topology::Topology;

const DEMO_PARTITIONS: i32 = 6;

/// The demo topology and the schemas it names, compiled into the binary so
/// `resynth demo` runs from any directory after `cargo install`; paths are
/// relative to the directory they are written into (the topology names its
/// schemas as `../schemas/...`).
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "topologies/demo.toml",
        include_str!("../topologies/demo.toml"),
    ),
    (
        "schemas/ehr/lab_result.avsc",
        include_str!("../schemas/ehr/lab_result.avsc"),
    ),
    (
        "schemas/synthetic/lab_patient.avsc",
        include_str!("../schemas/synthetic/lab_patient.avsc"),
    ),
];

/// Writes [`EMBEDDED`] under `dir` (replacing earlier copies) and returns
/// the topology's path, ready for `Topology::load`.
pub fn write_embedded(dir: &std::path::Path) -> Result<std::path::PathBuf, DemoError> {
    for (rel, text) in EMBEDDED {
        let path = dir.join(rel);
        let io = |source| DemoError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, text).map_err(io)?;
    }
    Ok(dir.join(EMBEDDED[0].0))
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("mock Kafka cluster: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    #[error("demo output directory {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Demo knobs (CLI flags).
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub windows: usize,
    pub max_events: Option<usize>,
    pub duration: Option<Duration>,
    pub patients: usize,
    pub drift: Option<DriftSpec>,
    pub corrupt: usize,
    pub late: usize,
    pub seed: u64,
}

/// What the downstream check saw.
#[derive(Debug, Clone, Default)]
pub struct Downstream {
    pub records: usize,
    pub decoded: usize,
    pub with_all_headers: usize,
    pub batches: BTreeMap<String, usize>,
    pub dead_letters: usize,
    /// Too-late events read back from the late topic (original bytes).
    pub late: usize,
}

/// Runs the demo, printing progress; returns the engine summary.
pub fn run(
    topology: &mut Topology,
    options: &DemoOptions,
    rt: &tokio::runtime::Handle,
) -> Result<(RunSummary, Loaded, Downstream), DemoError> {
    let started = Instant::now();
    let cluster = MockCluster::new(1)?;
    let brokers = cluster.bootstrap_servers();
    topology.kafka.brokers = brokers.clone();
    // A fresh registry and audit log each time, so the demo always shows an
    // initial fit followed by drift.
    let dir = topology.audit.dir.clone();
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|source| DemoError::Io {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let late_topic = topology.kafka.late_topic.clone();
    for topic in [
        &topology.kafka.source_topic,
        &topology.kafka.dead_letter_topic,
        &topology.kafka.quarantine_topic,
        &topology.kafka.alerts_topic,
        &topology.output.topic,
    ]
    .into_iter()
    .chain(late_topic.as_ref())
    {
        // Several partitions: the mock cluster keeps at most 5 MB per
        // partition and silently drops older segments beyond that.
        cluster.create_topic(topic, DEMO_PARTITIONS, 1)?;
    }
    let simulator = Simulator::new(SimulatorConfig {
        patients: options.patients,
        window_ms: (topology.window.size_secs * 1000) as i64,
        drift: options.drift.clone(),
        seed: options.seed,
        ..Default::default()
    });
    let schema = RecordSchema::load(&topology.source.schema).map_err(engine::EngineError::from)?;
    let plan = LoadPlan {
        windows: options.windows,
        max_events: options.max_events,
        corrupt: options.corrupt,
        late: options.late,
        format: topology.source.format,
    };
    println!(
        "resynth demo: in-process Kafka at {brokers}; {} patients, {} windows of {} s{}",
        options.patients,
        options.windows,
        topology.window.size_secs,
        match &options.drift {
            Some(d) => format!(
                "; drift of {} sd in [{}] from window {}",
                d.size,
                d.columns.join(", "),
                d.start_window
            ),
            None => String::new(),
        }
    );
    let loaded = load_topic(
        &brokers,
        &topology.kafka.source_topic,
        &simulator,
        &schema,
        &plan,
    )?;
    println!(
        "loaded {} lab events, {} corrupt, {} late into {} ({:.1} s)",
        loaded.good,
        loaded.corrupt_payloads.len(),
        loaded.late,
        topology.kafka.source_topic,
        started.elapsed().as_secs_f64()
    );
    let run_options = RunOptions {
        idle_exit: Some(Duration::from_millis(1500)),
        duration: options.duration,
        ..Default::default()
    };
    let summary = engine::run(topology, &brokers, &run_options, rt, &mut print_progress)?;
    let downstream = read_back(topology, &brokers)?;
    Ok((summary, loaded, downstream))
}

/// One line per step, for a person watching the demo.
pub fn print_progress(p: Progress) {
    match p {
        Progress::WindowClosed {
            index,
            start_ms,
            events,
            training_rows,
        } => println!(
            "window {index:>2} [{}] closed: {events} events → {training_rows} patients",
            format_ms(start_ms)
        ),
        Progress::WindowSkipped {
            index,
            rows,
            min_rows,
        } => {
            println!("window {index:>2} skipped: {rows} patients < min_rows {min_rows}")
        }
        Progress::Drift {
            state,
            drifting,
            refit,
            ..
        } => println!(
            "  drift {:?}{}{}",
            state,
            if drifting.is_empty() {
                String::new()
            } else {
                format!(": {}", drifting.join(", "))
            },
            if refit { " → refit" } else { "" }
        ),
        Progress::Fitted {
            version,
            reason,
            train_rows,
            holdout_rows,
            sha256,
        } => println!(
            "  fit model v{version} ({reason}) on {train_rows} patients, {holdout_rows} held out; sha256 {}",
            &sha256[..12.min(sha256.len())]
        ),
        Progress::Gate {
            attempt,
            passed,
            operators,
            failed,
            ..
        } => {
            if passed {
                println!("  gate attempt {attempt}: PASS ({operators} operators)")
            } else {
                println!(
                    "  gate attempt {attempt}: FAIL {} of {operators}: {}",
                    failed.len(),
                    failed.join(", ")
                )
            }
        }
        Progress::Published {
            batch_id, records, ..
        } => println!("  published {records} synthetic records as {batch_id}"),
        Progress::Quarantined { batch_id, failed } => {
            println!("  QUARANTINED {batch_id} (failed: {})", failed.join(", "))
        }
        Progress::RefitRefused {
            spent,
            requested,
            cap,
        } => println!(
            "  REFIT REFUSED: ε {requested} on top of {spent} spent would pass the cap {cap}; deployed model stays"
        ),
        Progress::Committed {
            records,
            dead_letters,
        } => {
            if records + dead_letters > 0 {
                println!(
                    "  committed transaction: {records} records, {dead_letters} dead letters, source offsets"
                )
            }
        }
    }
}

/// `YYYY-MM-DD HH:MM` in UTC (civil-from-days, Howard Hinnant's algorithm).
pub fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// Reads the synthetic, dead-letter and late topics as a downstream subscriber,
/// from the beginning of every partition to its end.
fn read_back(topology: &Topology, brokers: &str) -> Result<Downstream, DemoError> {
    let schema = RecordSchema::load(&topology.output.schema).map_err(engine::EngineError::from)?;
    let consumer: BaseConsumer<engine::EngineContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "resynth-demo-downstream")
        .set("isolation.level", "read_uncommitted")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create_with_context(engine::EngineContext::default())?;
    let mut tpl = TopicPartitionList::new();
    let late_topic = topology.kafka.late_topic.clone();
    let mut topics = vec![&topology.output.topic, &topology.kafka.dead_letter_topic];
    if let Some(late) = late_topic
        .as_ref()
        .filter(|t| **t != topology.kafka.dead_letter_topic)
    {
        topics.push(late);
    }
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        for t in metadata.topics() {
            for p in t.partitions() {
                tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
            }
        }
    }
    let partitions = tpl.count();
    consumer.assign(&tpl)?;
    let mut d = Downstream::default();
    // The engine has stopped, so each partition reports its end exactly once.
    let mut ends = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while ends < partitions && Instant::now() < deadline {
        let msg = match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => {
                ends += 1;
                continue;
            }
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(m)) => m,
        };
        // This reader is read-uncommitted, so it sees the engine's preflight
        // probes (one empty record per output topic in an aborted
        // transaction); a read-committed subscriber never does.
        if msg
            .headers()
            .is_some_and(|h| h.iter().any(|h| h.key == crate::preflight::PROBE_HEADER))
        {
            continue;
        }
        let is_late = msg
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "resynth.error"))
            .is_some_and(|h| h.value.unwrap_or(&[]).starts_with(b"late"));
        if msg.topic() == topology.kafka.dead_letter_topic
            || late_topic.as_deref() == Some(msg.topic())
        {
            if is_late {
                d.late += 1;
            } else {
                d.dead_letters += 1;
            }
            continue;
        }
        d.records += 1;
        let payload = msg.payload().unwrap_or(&[]);
        if crate::schema::read_datum(&schema.avro, &mut &payload[..]).is_ok() {
            d.decoded += 1;
        }
        let names: Vec<String> = msg
            .headers()
            .map(|h| h.iter().map(|h| h.key.to_string()).collect())
            .unwrap_or_default();
        if header_names().iter().all(|n| names.iter().any(|k| k == n)) {
            d.with_all_headers += 1;
        }
        if let Some(h) = msg.headers() {
            for h in h.iter() {
                if h.key == "resynth.batch_id" {
                    *d.batches
                        .entry(String::from_utf8_lossy(h.value.unwrap_or(&[])).into_owned())
                        .or_default() += 1;
                }
            }
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_epoch_and_a_known_date() {
        assert_eq!(super::format_ms(0), "1970-01-01 00:00");
        // 2026-01-01T00:00:00Z = 1767225600 s
        assert_eq!(
            super::format_ms(1_767_225_600_000 + 3_660_000),
            "2026-01-01 01:01"
        );
    }
}
