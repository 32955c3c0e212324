//! The wiring: one loop that polls the source, decodes, windows, hands each
//! closed window to `window_job`, and commits that window's outputs with the
//! source offsets in one Kafka transaction.
//!
//! Offsets: the committed position of a partition never passes an event that
//! is still in an open window, so a restart re-reads exactly what was not
//! finalised. Dead letters ride in the next transaction with the offsets that
//! step over them, so a bad event is neither lost nor written twice.

pub mod coordinator;
pub mod dead_letter;
mod held;
pub mod ingest;
mod journal;
mod published;
mod sources;
mod state;
pub mod supervisor;
mod tables;
mod window_job;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use serde::Serialize;
use tracing::{info, warn};

use crate::audit::{self, AuditLog};
use crate::drift::{DriftMonitor, DriftState};
use crate::generate::ledger::Ledger;
use crate::generate::{ModelRecord, ModelRegistry, RegistryError};
use crate::health;
use crate::schema::{RecordSchema, SchemaError, arrow_table, encode};
use crate::sink::{OutRecord, Publisher, SinkError};
use crate::telemetry as t;
use crate::topology::{LatePolicy, MinRowsPolicy, Topology};
use crate::window::{SourcePartition, Windower, sql};
use ingest::{Decoded, Ingest, SourceMessage};
use state::{EngineState, commit_offsets, resume_state};

/// How long one poll waits for a message; a poll that returns nothing after
/// this long makes the engine window what it has buffered.
const POLL_WAIT: Duration = Duration::from_millis(100);
/// Dead letters wait at most this long for a window to close before they are
/// committed in a transaction of their own.
const DEAD_LETTER_MAX_WAIT: Duration = Duration::from_secs(2);
/// How often the loop refreshes the read lag and, while the broker is
/// lost, asks it for metadata to see whether it is back.
const HEALTH_TICK: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("topology problem(s):\n  - {}", .0.join("\n  - "))]
    Check(Vec<String>),
    #[error("kafka consumer: {0}")]
    Consumer(rdkafka::error::KafkaError),
    #[error(transparent)]
    Sink(Box<SinkError>),
    #[error(transparent)]
    Sql(#[from] sql::SqlError),
    #[error("training table: {0}")]
    Convert(arrow_table::ConvertError),
    #[error(transparent)]
    Registry(RegistryError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    #[error("generator: {0}")]
    Generate(String),
    #[error("FHIR version rule: {0}")]
    Versions(datafusion::arrow::error::ArrowError),
    #[error("gate: {0}")]
    Gate(String),
    #[error("encoding synthetic records: {0}")]
    Encode(encode::EncodeError),
    #[error("encoding an alert: {0}")]
    Alert(String),
    #[error(transparent)]
    Recorder(#[from] crate::audit::recorder::RecorderError),
    #[error(transparent)]
    Access(#[from] crate::preflight::AccessError),
}

impl From<SinkError> for EngineError {
    fn from(e: SinkError) -> Self {
        EngineError::Sink(Box::new(e))
    }
}

/// What the engine reports while it runs (the demo prints these).
#[derive(Debug, Clone)]
pub enum Progress {
    WindowClosed {
        index: u64,
        start_ms: i64,
        events: usize,
        training_rows: usize,
    },
    WindowSkipped {
        index: u64,
        rows: usize,
        min_rows: usize,
    },
    Drift {
        index: u64,
        state: DriftState,
        drifting: Vec<String>,
        refit: bool,
    },
    Fitted {
        version: u64,
        reason: &'static str,
        train_rows: usize,
        holdout_rows: usize,
        sha256: String,
    },
    Gate {
        version: u64,
        attempt: usize,
        passed: bool,
        operators: usize,
        failed: Vec<String>,
    },
    Published {
        batch_id: String,
        records: usize,
        version: u64,
    },
    Quarantined {
        batch_id: String,
        failed: Vec<String>,
    },
    RefitRefused {
        spent: f64,
        requested: f64,
        cap: f64,
    },
    Committed {
        records: usize,
        dead_letters: usize,
    },
}

/// How long `idle_exit` waits for a first assignment and end of partition
/// before it gives up on them and ends the run anyway.
pub const IDLE_EXIT_UNASSIGNED: Duration = Duration::from_secs(60);

/// Bounds and controls for one run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Stop after this many windows were processed.
    pub max_windows: Option<u64>,
    /// Treat the stream as ended after this long without a message once every
    /// assigned partition has reported its end: close every open window,
    /// process and commit them, and stop. Waiting for the end-of-partition
    /// marks keeps a slow group join (a fresh broker creating its offsets
    /// topic) from ending the run before the first fetch; without any
    /// assignment the run still ends after [`IDLE_EXIT_UNASSIGNED`].
    pub idle_exit: Option<Duration>,
    /// Stop (gracefully, keeping open windows for the next run) after this long.
    pub duration: Option<Duration>,
    /// Set from outside (Ctrl-C) to stop gracefully.
    pub stop: Arc<AtomicBool>,
}

/// Totals of a run, printed by the CLI and asserted by tests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    pub events_in: u64,
    pub dead_lettered: u64,
    /// Dead letters and late events whose payload was cut to fit their
    /// topic (original size and SHA-256 in headers).
    pub dead_letters_truncated: u64,
    /// Too-late events (sent to the late topic or dropped, per policy).
    pub late: u64,
    /// Of `late`: FHIR versions and withdrawals of resources whose window
    /// was already finalised (`schema::fhir::is_replacement`).
    pub late_replacements: u64,
    /// Events behind the watermark that still landed in an open window.
    pub late_accepted: u64,
    /// Sliding-window events that missed some finalised windows but landed
    /// in their open ones.
    pub late_partial: u64,
    /// Small windows whose events were merged into the next window.
    pub windows_merged: u64,
    /// Times partitions were paused for backpressure.
    pub backpressure_pauses: u64,
    /// Events re-read after a restart that the previous run had already
    /// finalised (in a closed window or as a dead letter): skipped, not counted twice.
    pub replayed: u64,
    pub windows_closed: u64,
    pub windows_skipped: u64,
    /// Models fitted (initial and drift refits), whether or not their batch passed.
    pub refits: u64,
    pub drift_windows: u64,
    pub batches_published: u64,
    pub batches_quarantined: u64,
    pub records_published: u64,
    pub transactions: u64,
    pub deployed_version: Option<u64>,
    pub elapsed_secs: f64,
    /// Starts after a recoverable Kafka error (`supervisor::run_supervised`);
    /// the other counts are those of the last start.
    pub restarts: u64,
}

/// What `check_offline` found usable: each source with its schema (in
/// topology order) and the output schema.
#[derive(Debug, Clone)]
pub struct Checked {
    pub sources: Vec<(crate::topology::Source, RecordSchema)>,
    pub output: RecordSchema,
}

/// Everything `check` verifies without touching Kafka: every source's schema
/// loads, its event time (and a table's key) field exists, the SQL plans
/// against all of the sources' tables, and its output can fill the output
/// schema.
pub fn check_offline(
    topology: &Topology,
    rt: &tokio::runtime::Handle,
) -> Result<Checked, Vec<String>> {
    let mut problems = Vec::new();
    let mut sources = Vec::new();
    let mut unloaded = false;
    for s in topology.sources() {
        match RecordSchema::for_source(&s.decode) {
            Ok(schema) => {
                problems.extend(source_field_problems(&s, &schema));
                sources.push((s, schema));
            }
            Err(e) => {
                let at = match s.decode.format {
                    crate::topology::EventFormat::Fhir => s.path.clone(),
                    _ => format!("{}.schema", s.path),
                };
                problems.push(format!("{at}: {e}"));
                unloaded = true;
            }
        }
    }
    let output =
        RecordSchema::load(&topology.output.schema).map_err(|e| format!("output.schema: {e}"));
    let output = match output {
        Ok(o) if !unloaded => o,
        o => {
            problems.extend(o.err());
            return Err(problems);
        }
    };
    let tables: Vec<(String, datafusion::arrow::datatypes::SchemaRef)> = sources
        .iter()
        .map(|(s, schema)| (s.name.clone(), schema.arrow_schema()))
        .collect();
    match rt.block_on(sql::plan(&tables, &topology.window.sql)) {
        Err(e) => problems.push(e.to_string()),
        Ok(training) => {
            if training
                .field_with_name(&topology.model.entity_column)
                .is_err()
            {
                problems.push(format!(
                    "model.entity_column: {:?} is not a column of the training table (window.sql)",
                    topology.model.entity_column
                ));
            }
            problems.extend(encode::check_output_matches(
                &output,
                &training,
                &topology.model.id_columns,
            ));
            if let Some(mapping) = &topology.output.fhir {
                problems.extend(mapping.check_columns(&training));
            }
            // The gate's roles, resolved as the gate resolves them (the
            // identifier columns are not gated), so a wrong role stops the
            // start instead of failing every window.
            let gated: Vec<String> = training
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .filter(|c| !topology.model.id_columns.contains(c))
                .collect();
            problems.extend(topology.roles.validate(&gated));
            problems.extend(crate::gate::role_kind_problems(&topology.roles, |c| {
                training
                    .field_with_name(c)
                    .ok()
                    .map(|f| f.data_type().is_numeric())
            }));
            // Drift columns must exist in the training table, with the right kind.
            use datafusion::arrow::datatypes::DataType;
            let numeric = |t: &DataType| t.is_numeric();
            for (field, list, want_numeric) in [
                ("drift.segments", &topology.drift.segments, false),
                (
                    "drift.correlation_columns",
                    &topology.drift.correlation_columns,
                    true,
                ),
            ] {
                for c in list {
                    match training.field_with_name(c) {
                        Err(_) => problems.push(format!(
                            "{field}: {c:?} is not a column of the training table (window.sql)"
                        )),
                        Ok(f) if want_numeric && !numeric(f.data_type()) => problems
                            .push(format!("{field}: {c:?} is not numeric ({})", f.data_type())),
                        Ok(_) => {}
                    }
                    if topology.model.id_columns.contains(c) {
                        problems.push(format!(
                            "{field}: {c:?} is an identifier column (model.id_columns); it is not profiled"
                        ));
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(Checked { sources, output })
    } else {
        Err(problems)
    }
}

/// A source's event time field must be a time in ms, and a table's key field
/// must exist.
fn source_field_problems(source: &crate::topology::Source, schema: &RecordSchema) -> Vec<String> {
    use crate::schema::FieldKind;
    let mut problems = Vec::new();
    let (at, field) = (&source.path, &source.decode.event_time_field);
    let of = match source.decode.format {
        crate::topology::EventFormat::Fhir => format!("the columns of {at}"),
        _ => source.decode.schema.display().to_string(),
    };
    match schema.field_index(field) {
        None => problems.push(format!(
            "{at}.event_time_field: {field:?} is not a field of {of}"
        )),
        Some(i)
            if !matches!(
                schema.fields[i].kind,
                FieldKind::TimestampMillis | FieldKind::Long | FieldKind::Int
            ) =>
        {
            problems.push(format!(
                "{at}.event_time_field: {field:?} must be timestamp-millis or long (ms), is {:?}",
                schema.fields[i].kind
            ))
        }
        Some(_) => {}
    }
    if let Some(key) = &source.key_field
        && schema.field_index(key).is_none()
    {
        problems.push(format!("{at}.key_field: {key:?} is not a field of {of}"));
    }
    problems
}

/// Client callbacks: reaching the end of a partition is routine here (it marks
/// the partition caught up), not an error worth a log line.
#[derive(Debug)]
pub struct EngineContext {
    /// Set after every rebalance (the callback runs inside `poll`), so the
    /// loop re-reads the assignment only when it changed: asking librdkafka
    /// for it after every message cost more than decoding the message.
    rebalanced: AtomicBool,
    /// Set when the client reports every broker down; cleared by the loop
    /// once a metadata request answers again (`/readyz`).
    brokers_down: AtomicBool,
}

impl Default for EngineContext {
    fn default() -> Self {
        EngineContext {
            rebalanced: AtomicBool::new(true),
            brokers_down: AtomicBool::new(false),
        }
    }
}

impl rdkafka::ClientContext for EngineContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        use rdkafka::error::KafkaError;
        let eof = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !eof {
            warn!(error = %error, reason, "kafka client error");
        }
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.brokers_down.store(true, Ordering::Relaxed);
        }
    }
}

impl rdkafka::consumer::ConsumerContext for EngineContext {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, _: &rdkafka::consumer::Rebalance<'_>) {
        self.rebalanced.store(true, Ordering::Relaxed);
    }
}

type EngineConsumer = BaseConsumer<EngineContext>;

/// The source consumer's settings (also used by `examples/ingest_bench`, so
/// the bench measures this configuration).
pub fn consumer_config(
    brokers: &str,
    group_id: &str,
    properties: &BTreeMap<String, String>,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    // librdkafka 2.x waits up to 1 s (its default) before fetching again once
    // its queue is full, so a consumer slower than the fetch path idles;
    // 10 ms took ingest from 0.15 to 0.89 M events/s (examples/ingest_bench).
    // Set first so `kafka.properties` can still override it.
    config.set("fetch.queue.backoff.ms", "10");
    for (k, v) in properties {
        config.set(k, v);
    }
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true");
    config
}

fn consumer(topology: &Topology, brokers: &str) -> Result<EngineConsumer, EngineError> {
    let mut config = consumer_config(
        brokers,
        &topology.kafka.group_id,
        &topology.kafka.properties,
    );
    if !topology.kafka.properties.contains_key("group.instance.id") {
        config.set("group.instance.id", topology.group_instance_id());
    }
    config
        .create_with_context(EngineContext::default())
        .map_err(EngineError::Consumer)
}

struct Pending {
    dead_letters: Vec<OutRecord>,
    since: Option<Instant>,
}

/// Runs the pipeline until a bound in `options` is reached.
pub fn run(
    topology: &Topology,
    brokers: &str,
    options: &RunOptions,
    rt: &tokio::runtime::Handle,
    progress: &mut dyn FnMut(Progress),
) -> Result<RunSummary, EngineError> {
    let started = Instant::now();
    let checked = check_offline(topology, rt).map_err(EngineError::Check)?;
    let output_schema = checked.output;
    let sources = sources::Sources::new(checked.sources)?;
    let topics = sources.topics();
    let name = topology.name.clone();
    // Not ready (503, with this reason) until the consumer has its assignment.
    let mut run_health = health::Run::start(&name, "checking Kafka access");
    // Authentication, TLS and every ACL, before anything retries on them.
    crate::preflight::verify(topology, brokers)?;
    run_health.step("loading the model registry and audit log");
    let mut ingest = Ingest::with_sources(
        sources.decoders()?,
        topology.window.spec().pane_ms(),
        Some(crate::window::future::FutureBound {
            max_future_ms: i64::try_from(topology.window.max_future_ms).unwrap_or(i64::MAX),
        }),
    );
    let mut windower = Windower::new(topology.window.spec());
    let registry =
        ModelRegistry::open(&topology.audit.dir, &name).map_err(EngineError::Registry)?;
    let mut deployed: Option<ModelRecord> = registry.deployed().map_err(EngineError::Registry)?;
    let mut audit_log = AuditLog::open(&topology.audit.dir.join("audit.jsonl"))?;
    // The binder's run data: config snapshot, lineage, access evidence.
    let mut recorder = crate::audit::recorder::Recorder::start(
        topology,
        brokers,
        sources.primary_schema(),
        &output_schema,
        &mut audit_log,
    )?;
    let mut pending_release = held::pending(&audit_log)?;
    let mut monitor = DriftMonitor::new(&topology.drift);
    // When the deployed model was deployed: its registry file's time at
    // start, then the time of each deployment.
    let mut last_deployed: Option<std::time::SystemTime> = deployed.as_ref().and_then(|m| {
        std::fs::metadata(registry.dir().join(format!("v{}.json", m.version)))
            .and_then(|md| md.modified())
            .ok()
    });
    let ledger_dir = topology.audit.dir.join("ledger");
    crate::owner_only::create_dir_all(&ledger_dir)
        .map_err(|e| EngineError::Generate(format!("{}: {e}", ledger_dir.display())))?;
    let mut ledger = Ledger::open(
        ledger_dir.join(format!("{name}--{}.jsonl", topology.primary_topic())),
        topology.budget.epsilon_cap,
        topology.budget.delta,
    )
    .map_err(|e| EngineError::Generate(e.to_string()))?;
    gauge!(t::PRIVACY_BUDGET_SPENT, "topology" => name.clone()).set(ledger.spent_epsilon());
    if let Some(cap) = topology.budget.epsilon_cap {
        gauge!(t::PRIVACY_BUDGET_CAP, "topology" => name.clone()).set(cap);
    }
    run_health.step("initialising the transactional producer");
    let publisher = Publisher::new(
        brokers,
        &topology.transactional_id(),
        &topology.kafka.properties,
    )?;
    run_health.producer_ready();
    let consumer = consumer(topology, brokers)?;
    let streams = sources.streams();
    let stream_topics: Vec<&str> = streams.iter().map(|(_, t)| t.as_str()).collect();
    consumer
        .subscribe(&stream_topics)
        .map_err(EngineError::Consumer)?;
    run_health.step("waiting for a partition assignment");
    audit_log.append(
        &name,
        "engine_started",
        serde_json::json!({"deployed_version": deployed.as_ref().map(|m| m.version),
                           "engine_version": env!("CARGO_PKG_VERSION"), "source_topic": topology.primary_topic(),
                           "source_topics": stream_topics}),
    )?;
    info!(topology = %name, brokers, deployed = ?deployed.as_ref().map(|m| m.version), "engine started");

    let resume = resume_state(&consumer, &streams, &topology.kafka.group_id)?;
    let journal_path = journal::path(&topology.audit.dir, &name);
    if journal::recover(
        &journal_path,
        resume.engine.as_ref().map_or(0, |e| e.windows),
        &name,
        &topology.audit.dir,
        &mut audit_log,
        &registry,
    )? {
        // The recovered window may have held a release or deployed a model.
        pending_release = held::pending(&audit_log)?;
        deployed = registry.deployed().map_err(EngineError::Registry)?;
    }
    let mut engine_state = state::restore(
        resume.engine.clone(),
        &registry,
        &mut deployed,
        &mut monitor,
        &mut audit_log,
        &name,
    )?;

    let mut summary = RunSummary::default();
    let decisions = recorder.pending_decisions(&mut audit_log)?;
    settle_decisions(
        decisions,
        held::Context {
            topology,
            brokers,
            output_schema: &output_schema,
            registry: &registry,
            publisher: &publisher,
            consumer: &consumer,
            recorder: &mut recorder,
            audit_log: &mut audit_log,
        },
        &mut deployed,
        &mut pending_release,
        &mut monitor,
        &mut engine_state,
        &mut last_deployed,
        &mut summary,
    )?;
    if let Some(ct) = resume.closed_through_ms {
        windower.restore(ct);
    }
    windower.restore_reach(&resume.max_event_before_ms);
    let lanes = Lanes {
        topology,
        sources: sources.all.iter().map(|(s, _)| s.clone()).collect(),
        name: name.clone(),
        read_through: resume.read_through.clone(),
        limits: routing_limits(topology, brokers, rt),
    };
    let mut pending = Pending {
        dead_letters: Vec::new(),
        since: None,
    };
    run_health.step("rebuilding table state from its topics");
    let (mut tables, bad) = tables::Tables::open(&sources.all, topology, brokers)?;
    route_table_records(bad, &tables, &mut pending, &mut summary, &lanes);
    // Since when the source has had nothing to deliver (None while it delivers).
    let mut quiet_since: Option<Instant> = None;
    let mut assigned: Vec<SourcePartition> = Vec::new();
    let idle_timeout = Duration::from_secs(topology.window.idle_timeout_secs);
    // One handle, not a registry lookup per message (that halved ingest).
    let events_in = counter!(t::EVENTS_IN, "topology" => name.clone());
    let mut last_seen: BTreeMap<SourcePartition, Instant> = BTreeMap::new();
    // Partitions whose last fetch reached the end of the log.
    let mut at_end: std::collections::BTreeSet<SourcePartition> = std::collections::BTreeSet::new();
    // The partition of the previous message, while it is known to be marked
    // active: consumers deliver runs of one partition, so most messages skip
    // the per-partition bookkeeping.
    let mut active_run: Option<SourcePartition> = None;
    let mut paused: Vec<SourcePartition> = Vec::new();
    // A window too small to fit on, waiting to be merged into the next one.
    let mut carry: Option<crate::window::ClosedWindow> = None;
    // Windows closed beyond `max_windows`, kept until the run ends: the
    // windower has dropped their panes, so only these hold their offsets
    // back from every later commit (a dead-letter commit on the way out
    // once committed past such a window and lost it).
    let mut deferred: Vec<crate::window::ClosedWindow> = Vec::new();
    let w = &topology.window;
    let progress_clock = health::Progress::start(
        &name,
        (w.slide_secs.unwrap_or(w.size_secs) + w.watermark_delay_secs + w.allowed_lateness_secs)
            as f64,
    );
    let mut drift_streak = health::DriftStreak::new(&name);
    // Whether a poll returned without a client error since the progress
    // clock last moved (set per message, acted on at batch boundaries).
    let mut polled_ok = false;
    let mut last_health_tick = Instant::now();

    loop {
        let mut end_of_stream = false;
        let mut stop = options.stop.load(Ordering::Relaxed)
            || options
                .max_windows
                .is_some_and(|m| summary.windows_closed >= m);
        // Whether anything but copying a message in happened: only then is
        // the bookkeeping below worth its cost (per message it halved ingest).
        let mut dirty = stop;
        if !stop {
            match consumer.poll(POLL_WAIT) {
                Some(Ok(msg)) => {
                    polled_ok = true;
                    quiet_since = None;
                    summary.events_in += 1;
                    let Some(p) = sources.lookup(msg.topic(), msg.partition()) else {
                        warn!(topology = %name, topic = msg.topic(), "message of a topic that is no stream source: skipped");
                        continue;
                    };
                    if active_run != Some(p) {
                        // A partition marked idle counts for the watermark
                        // again before its event reaches a window, and is
                        // seen now, not when its batch is sent.
                        windower.mark_active(p);
                        at_end.remove(&p);
                        last_seen.insert(p, Instant::now());
                        active_run = Some(p);
                    }
                    dirty = ingest.add_from(p.source, &msg);
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => {
                    // Its rows still in flight must reach the windower while
                    // the partition still holds the watermark back.
                    absorb_all(
                        &mut ingest,
                        &mut windower,
                        &mut pending,
                        &mut summary,
                        &lanes,
                    );
                    let ended = sources::at_end(
                        &consumer,
                        &topics,
                        &assigned,
                        partition,
                        ingest.next_offsets(),
                    );
                    for p in ended {
                        windower.mark_idle(p);
                        at_end.insert(p);
                    }
                    active_run = None;
                    polled_ok = true;
                    dirty = true;
                }
                Some(Err(e)) => {
                    warn!(topology = %name, error = %e, "consumer error");
                    if e.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
                        consumer
                            .context()
                            .brokers_down
                            .store(true, Ordering::Relaxed);
                    }
                    dirty = true;
                }
                None => {
                    polled_ok |= !consumer.context().brokers_down.load(Ordering::Relaxed);
                    // The poll waited POLL_WAIT for nothing: window what is
                    // buffered rather than wait for a full batch.
                    let since = *quiet_since.get_or_insert_with(|| Instant::now() - POLL_WAIT);
                    absorb_all(
                        &mut ingest,
                        &mut windower,
                        &mut pending,
                        &mut summary,
                        &lanes,
                    );
                    let drained =
                        !assigned.is_empty() && assigned.iter().all(|p| at_end.contains(p));
                    if options.idle_exit.is_some_and(|d| {
                        let quiet = since.elapsed();
                        (drained && quiet >= d) || quiet >= d.max(IDLE_EXIT_UNASSIGNED)
                    }) {
                        end_of_stream = true;
                        stop = true;
                    }
                    dirty = true;
                }
            }
        }
        if ingest.awaiting() {
            while let Some(mut d) = ingest.try_take() {
                absorb(
                    &mut d,
                    &mut windower,
                    &mut pending,
                    &mut summary,
                    &mut ingest,
                    &lanes,
                );
                dirty = true;
            }
        }
        if consumer.context().rebalanced.swap(false, Ordering::Relaxed)
            && let Ok(assignment) = consumer.assignment()
        {
            // Rows of a revoked partition must reach the windower before it
            // forgets that partition, or they would bring back its clock
            // with nothing left to mark it idle.
            absorb_all(
                &mut ingest,
                &mut windower,
                &mut pending,
                &mut summary,
                &lanes,
            );
            assigned = assignment
                .elements()
                .iter()
                .filter_map(|e| sources.lookup(e.topic(), e.partition()))
                .collect();
            windower.assign(&assigned);
            run_health.assigned(assigned.len());
            // A new assignment fetches from the committed offsets again.
            at_end.clear();
            active_run = None;
            dirty = true;
        }
        if !dirty {
            continue;
        }
        if options.duration.is_some_and(|d| started.elapsed() >= d) {
            stop = true;
        }
        if std::mem::take(&mut polled_ok) {
            progress_clock.polled();
        }
        if last_health_tick.elapsed() >= HEALTH_TICK {
            last_health_tick = Instant::now();
            health_tick(&consumer, &topics, &assigned, &run_health);
        }
        if stop {
            run_health.draining();
            absorb_all(
                &mut ingest,
                &mut windower,
                &mut pending,
                &mut summary,
                &lanes,
            );
        }
        let now = Instant::now();
        let sent = ingest.take_sent();
        events_in.increment(sent.messages);
        for p in sent.partitions {
            last_seen.insert(p, now);
        }
        // A partition silent for the idle timeout stops holding the watermark.
        for &p in &assigned {
            let seen = *last_seen.entry(p).or_insert(now);
            if now.duration_since(seen) >= idle_timeout {
                windower.mark_idle(p);
                if active_run == Some(p) {
                    active_run = None;
                }
            }
        }
        backpressure(
            &consumer,
            &windower,
            &mut paused,
            topology,
            &topics,
            &mut summary,
        )?;
        let mut closed = std::mem::take(&mut deferred);
        closed.extend(windower.advance());
        if end_of_stream {
            closed.extend(windower.flush());
        }
        let room = options.max_windows.map_or(usize::MAX, |max| {
            max.saturating_sub(summary.windows_closed) as usize
        });
        // Windows beyond the bound stay unprocessed: their offsets stay held,
        // so they are not committed and the next run handles them.
        let process = closed.len().min(room);
        let remaining = closed.split_off(process);
        for i in 0..closed.len() {
            let mut window = std::mem::replace(&mut closed[i], empty_window());
            if let Some(small) = carry.take() {
                window = merge_windows(small, window);
            }
            // FHIR: latest version per resource id, withdrawals removed.
            sources
                .resolve_versions(&mut window)
                .map_err(EngineError::Versions)?;
            let window_end = window.end_ms;
            // Later windows closed in this same round are still unfinished.
            let mut held = windower.held_offsets();
            hold_offsets(&mut held, &ingest.held_offsets());
            for later in closed[i + 1..].iter().chain(remaining.iter()) {
                hold(&mut held, later);
            }
            let table_state = tables_as_of(
                &mut tables,
                window.end_ms,
                &mut pending,
                &mut summary,
                &lanes,
            )?;
            let sql_started = Instant::now();
            let training = rt.block_on(sql::run(
                sources.window_tables(&window, table_state),
                &topology.window.sql,
            ))?;
            histogram!(t::STAGE_SECONDS, "topology" => name.clone(), "stage" => "sql")
                .record(sql_started.elapsed().as_secs_f64());
            let training_rows: usize = training.iter().map(|b| b.num_rows()).sum();
            let last_of_stream = end_of_stream && i + 1 == closed.len() && remaining.is_empty();
            if topology.window.min_rows_policy == MinRowsPolicy::MergeForward
                && training_rows < topology.window.min_rows
                && !last_of_stream
            {
                // Not final: its offsets stay held and the committed finality
                // stays before it until the merged window is processed.
                summary.windows_merged += 1;
                counter!(t::WINDOWS_MERGED, "topology" => name.clone()).increment(1);
                info!(topology = %name, start_ms = window.start_ms, end_ms = window.end_ms,
                      rows = training_rows, min_rows = topology.window.min_rows,
                      "window merged forward");
                audit_log.append(
                    &name,
                    "window_merged_forward",
                    serde_json::json!({"window": format!("{}-{}", window.start_ms, window.end_ms),
                                       "rows": training_rows, "min_rows": topology.window.min_rows}),
                )?;
                carry = Some(window);
                continue;
            }
            engine_state.windows += 1;
            let track =
                recorder.window_started(window.start_ms, window.end_ms, sources.ranges(&window))?;
            let ctx = window_job::WindowContext {
                topology,
                output_schema: &output_schema,
                registry: &registry,
                deployed: &mut deployed,
                monitor: &mut monitor,
                ledger: &mut ledger,
                window_index: engine_state.windows,
                next_version: engine_state.last_version + 1,
                last_deployed,
                release_pending: pending_release.is_some(),
            };
            let outcome = match window_job::process(ctx, window, training, progress) {
                Ok(o) => o,
                Err(e) => {
                    recorder.window_failed(&track, &e.to_string());
                    return Err(e);
                }
            };
            recorder.window_processed(&track, &outcome.audit, &outcome.reports)?;
            summary.windows_closed += 1;
            if outcome.skipped {
                summary.windows_skipped += 1;
            }
            let mut records = outcome.records;
            let dead = pending.dead_letters.len();
            records.append(&mut pending.dead_letters);
            pending.since = None;
            // Finality recorded with this commit stops at this window: later
            // windows closed in the same round are not processed yet.
            let closed_through = if i + 1 < closed.len() || !remaining.is_empty() {
                Some(window_end)
            } else {
                windower.closed_through_ms()
            };
            state::advance(
                &mut engine_state,
                &mut monitor,
                state::Processed {
                    deployed: outcome.deploy.as_ref(),
                    refit_requested: outcome.refit_requested,
                    fitted: outcome.fitted,
                },
                deployed.as_ref(),
            );
            let mut offsets = commit_offsets(
                &topics,
                ingest.next_offsets(),
                &held,
                &ingest.held_offsets(),
                &lanes.read_through,
                &state::Carried {
                    closed_through_ms: closed_through,
                    engine: &engine_state,
                    max_event_before: &|p, at| windower.max_event_before(p, at),
                },
            );
            offsets.extend(tables.commit_offsets());
            recorder.anchor(&mut records, &audit_log);
            // Written down before the commit: what must follow it.
            let after = journal::AfterCommit {
                windows: engine_state.windows,
                audit_seq: audit_log.head().0,
                entries: outcome
                    .audit
                    .iter()
                    .cloned()
                    .chain(recorder.committed_entries(&track, &outcome.audit, &outcome.reports))
                    .collect(),
                reports: outcome.reports.clone(),
                html_reports: outcome.html_reports.clone(),
                deploy: outcome.deploy.as_ref().map(|m| m.version),
            };
            journal::write(&journal_path, &after)?;
            if let Err(e) = commit(
                &publisher,
                &consumer,
                &records,
                &offsets,
                &mut summary,
                &name,
            ) {
                recorder.window_failed(&track, &e.to_string());
                return Err(e);
            }
            tables.committed(&offsets);
            windower.committed(&state::stream_positions(&topics, &offsets));
            crate::kill_point::reached("after_commit");
            progress(Progress::Committed {
                records: records.len() - dead,
                dead_letters: dead,
            });
            journal::apply(
                &journal_path,
                &after,
                &name,
                &topology.audit.dir,
                &mut audit_log,
                &registry,
            )?;
            if let Some((_, data)) = outcome.audit.iter().find(|(k, _)| k == "release_held") {
                pending_release = Some(data.clone());
            }
            recorder.window_completed(&track, &outcome.audit, &records)?;
            let published = outcome.deploy.is_some();
            if let Some(model) = outcome.deploy {
                // The new reference (inside the model record) replaces the
                // old one in one assignment below; the monitor's history was
                // reset with the state committed above: no window is judged
                // against a mix.
                last_deployed = Some(std::time::SystemTime::now());
                summary.batches_published += 1;
                summary.records_published += outcome.published_records as u64;
                counter!(t::BATCHES_PUBLISHED, "topology" => name.clone()).increment(1);
                counter!(t::RECORDS_PUBLISHED, "topology" => name.clone())
                    .increment(outcome.published_records as u64);
                deployed = Some(model);
            }
            drift_streak.window(monitor.state() == DriftState::Drift, published);
            if outcome.fitted.is_some() {
                summary.refits += 1;
            }
            if outcome.quarantined {
                summary.batches_quarantined += 1;
                counter!(t::BATCHES_QUARANTINED, "topology" => name.clone()).increment(1);
            }
            if monitor.state() == DriftState::Drift {
                summary.drift_windows += 1;
            }
            report_lag(&consumer, &offsets, &name);
            // Time spent processing is not time the source was quiet.
            quiet_since = None;
        }
        let dead_letters_due = pending
            .since
            .is_some_and(|s| s.elapsed() >= DEAD_LETTER_MAX_WAIT);
        if !pending.dead_letters.is_empty() && (dead_letters_due || stop) {
            let records = std::mem::take(&mut pending.dead_letters);
            pending.since = None;
            let mut held = windower.held_offsets();
            hold_offsets(&mut held, &ingest.held_offsets());
            for later in remaining.iter().chain(carry.iter()) {
                hold(&mut held, later);
            }
            // Finality stops before the oldest window not yet processed: a
            // merged-forward one is older than any deferred one.
            let closed_through = match remaining
                .iter()
                .chain(carry.iter())
                .map(|w| w.start_ms)
                .min()
            {
                Some(start) => Some(start),
                None => windower.closed_through_ms(),
            };
            let mut offsets = commit_offsets(
                &topics,
                ingest.next_offsets(),
                &held,
                &ingest.held_offsets(),
                &lanes.read_through,
                &state::Carried {
                    closed_through_ms: closed_through,
                    engine: &engine_state,
                    max_event_before: &|p, at| windower.max_event_before(p, at),
                },
            );
            offsets.extend(tables.commit_offsets());
            commit(
                &publisher,
                &consumer,
                &records,
                &offsets,
                &mut summary,
                &name,
            )?;
            tables.committed(&offsets);
            windower.committed(&state::stream_positions(&topics, &offsets));
            progress(Progress::Committed {
                records: 0,
                dead_letters: records.len(),
            });
        }
        deferred = remaining;
        let decisions = recorder.poll_inbox(&mut audit_log, stop)?;
        settle_decisions(
            decisions,
            held::Context {
                topology,
                brokers,
                output_schema: &output_schema,
                registry: &registry,
                publisher: &publisher,
                consumer: &consumer,
                recorder: &mut recorder,
                audit_log: &mut audit_log,
            },
            &mut deployed,
            &mut pending_release,
            &mut monitor,
            &mut engine_state,
            &mut last_deployed,
            &mut summary,
        )?;
        if stop {
            break;
        }
    }
    summary.deployed_version = deployed.as_ref().map(|m| m.version);
    summary.elapsed_secs = started.elapsed().as_secs_f64();
    audit_log.append(
        &name,
        "engine_stopped",
        serde_json::to_value(&summary).unwrap_or_default(),
    )?;
    recorder.stopped(None);
    run_health.finished();
    info!(topology = %name, events = summary.events_in, windows = summary.windows_closed,
          published = summary.batches_published, "engine stopped");
    Ok(summary)
}

/// Acts on decisions about held releases; a published one deploys its
/// model and restarts drift monitoring, as a refit does.
#[allow(clippy::too_many_arguments)]
fn settle_decisions(
    decisions: Vec<crate::audit::recorder::Decided>,
    mut ctx: held::Context<'_>,
    deployed: &mut Option<ModelRecord>,
    pending_release: &mut Option<serde_json::Value>,
    monitor: &mut DriftMonitor,
    engine_state: &mut EngineState,
    last_deployed: &mut Option<std::time::SystemTime>,
    summary: &mut RunSummary,
) -> Result<(), EngineError> {
    let name = ctx.topology.name.clone();
    for decided in decisions {
        let Some(n) = held::settle(decided, &mut ctx, deployed, pending_release)? else {
            continue;
        };
        monitor.refitted();
        // Committed with the next window's transaction: the release's own
        // carries no offsets.
        engine_state.deployed_version = deployed.as_ref().map(|m| m.version);
        engine_state.drift = monitor.snapshot();
        *last_deployed = Some(std::time::SystemTime::now());
        summary.batches_published += 1;
        summary.records_published += n as u64;
        summary.transactions += 1;
        counter!(t::BATCHES_PUBLISHED, "topology" => name.clone()).increment(1);
        counter!(t::RECORDS_PUBLISHED, "topology" => name.clone()).increment(n as u64);
    }
    Ok(())
}

/// What routing a message elsewhere needs besides the message.
struct Lanes<'a> {
    topology: &'a Topology,
    /// Every source by index: its topic and where its bad and late events go.
    sources: Vec<crate::topology::Source>,
    name: String,
    /// Per partition, the previous run's read position (see `ResumeState`).
    read_through: BTreeMap<SourcePartition, i64>,
    /// What the dead-letter and late topics accept.
    limits: dead_letter::Limits,
}

/// The dead-letter and late topics' byte limits, described once at start.
fn routing_limits(
    topology: &Topology,
    brokers: &str,
    rt: &tokio::runtime::Handle,
) -> dead_letter::Limits {
    let sources = topology.sources();
    let mut topics: Vec<&str> = Vec::new();
    for s in &sources {
        for t in [s.dead_letter_topic.as_str(), s.late_topic.as_str()] {
            if !topics.contains(&t) {
                topics.push(t);
            }
        }
    }
    dead_letter::Limits::discover(
        brokers,
        &topology.kafka.properties,
        &topics,
        crate::sink::PRODUCER_MAX_MESSAGE_BYTES,
        rt,
    )
}

/// Sends what is being copied in, waits for every batch in flight and
/// absorbs them all, oldest first.
fn absorb_all(
    ingest: &mut Ingest,
    windower: &mut Windower,
    pending: &mut Pending,
    summary: &mut RunSummary,
    lanes: &Lanes,
) {
    for mut d in ingest.drain() {
        absorb(&mut d, windower, pending, summary, ingest, lanes);
    }
}

/// Windows a decoded batch's rows, routes its late and undecodable messages
/// (with their original bytes) and counts everything.
fn absorb(
    decoded: &mut Decoded,
    windower: &mut Windower,
    pending: &mut Pending,
    summary: &mut RunSummary,
    ingest: &mut Ingest,
    lanes: &Lanes,
) {
    let (topology, name) = (lanes.topology, &lanes.name);
    let source = &lanes.sources[usize::from(decoded.raw.source())];
    let sorted = ingest::sort_rows(decoded, windower, &lanes.read_through);
    summary.replayed += sorted.replayed;
    if !sorted.late.is_empty() {
        let late = sorted.late.len() as u64;
        summary.late += late;
        let policy = match topology.window.late_policy {
            LatePolicy::Topic => "topic",
            LatePolicy::Drop => "drop",
        };
        counter!(t::EVENTS_LATE, "topology" => name.clone(),
                 "topic" => source.topic.clone(), "policy" => policy)
        .increment(late);
        if sorted.late_replacements > 0 {
            summary.late_replacements += sorted.late_replacements;
            counter!(t::FHIR_LATE_REPLACEMENTS, "topology" => name.clone(),
                     "topic" => source.topic.clone())
            .increment(sorted.late_replacements);
        }
        if topology.window.late_policy == LatePolicy::Topic {
            let late_topic = source.late_topic.as_str();
            for &i in &sorted.late {
                pending.dead_letters.push(routed(
                    lanes,
                    &decoded.raw.message(i),
                    late_topic,
                    "late: every window holding its event time is already finalised",
                    summary,
                ));
            }
            pending.since.get_or_insert_with(Instant::now);
        }
    }
    if !sorted.bad.is_empty() {
        summary.dead_lettered += sorted.bad.len() as u64;
        for (i, e) in &sorted.bad {
            counter!(t::DEAD_LETTERED, "topology" => name.clone(), "reason" => e.metric_reason())
                .increment(1);
            pending.dead_letters.push(routed(
                lanes,
                &decoded.raw.message(*i),
                &source.dead_letter_topic,
                &e.to_string(),
                summary,
            ));
        }
        pending.since.get_or_insert_with(Instant::now);
    }
    let accepted = sorted.push.late_accepted as u64;
    if accepted > 0 {
        summary.late_accepted += accepted;
        counter!(t::EVENTS_LATE_ACCEPTED, "topology" => name.clone()).increment(accepted);
    }
    let partial = sorted.push.missed_windows as u64;
    if partial > 0 {
        summary.late_partial += partial;
        counter!(t::EVENTS_LATE, "topology" => name.clone(), "policy" => "partial")
            .increment(partial);
    }
    ingest.recycle(std::mem::take(&mut decoded.raw));
}

/// The tables' state as of a window's end (`end_ms`), each caught up with
/// its topic first; records that did not decode join the dead letters.
fn tables_as_of(
    tables: &mut tables::Tables,
    end_ms: i64,
    pending: &mut Pending,
    summary: &mut RunSummary,
    lanes: &Lanes,
) -> Result<BTreeMap<u16, datafusion::arrow::record_batch::RecordBatch>, EngineError> {
    let bad = tables.catch_up()?;
    route_table_records(bad, tables, pending, summary, lanes);
    tables.as_of(end_ms).map_err(EngineError::Versions)
}

/// Table records that did not decode, to their source's dead-letter topic
/// (the reader's position, committed with them, keeps a rebuild from
/// routing them again), and the tables' sizes.
fn route_table_records(
    bad: Vec<tables::BadRecord>,
    tables: &tables::Tables,
    pending: &mut Pending,
    summary: &mut RunSummary,
    lanes: &Lanes,
) {
    for (source, keys) in tables.sizes() {
        gauge!(t::TABLE_KEYS, "topology" => lanes.name.clone(), "source" => source)
            .set(keys as f64);
    }
    if bad.is_empty() {
        return;
    }
    summary.dead_lettered += bad.len() as u64;
    for b in &bad {
        counter!(t::DEAD_LETTERED, "topology" => lanes.name.clone(), "reason" => b.error.metric_reason())
            .increment(1);
        let msg = SourceMessage {
            source: b.source,
            partition: b.partition,
            offset: b.offset,
            key: b.key.as_deref(),
            payload: &b.payload,
            headers: &b.headers,
        };
        let topic = &lanes.sources[usize::from(b.source)].dead_letter_topic;
        pending
            .dead_letters
            .push(routed(lanes, &msg, topic, &b.error.to_string(), summary));
    }
    pending.since.get_or_insert_with(Instant::now);
}

/// The original message, bytes and headers intact, for the dead-letter or
/// late topic, with the reason and its source coordinates added; cut to fit
/// the topic when it is too large (`dead_letter::fit`), and counted then.
fn routed(
    lanes: &Lanes,
    msg: &SourceMessage,
    topic: &str,
    error: &str,
    summary: &mut RunSummary,
) -> OutRecord {
    let topology = lanes.topology;
    let source = &lanes.sources[usize::from(msg.source)];
    let mut headers = vec![
        ("resynth.error".to_string(), error.as_bytes().to_vec()),
        (
            "resynth.source.topic".to_string(),
            source.topic.as_bytes().to_vec(),
        ),
        (
            "resynth.source.partition".to_string(),
            msg.partition.to_string().into_bytes(),
        ),
        (
            "resynth.source.offset".to_string(),
            msg.offset.to_string().into_bytes(),
        ),
        (
            "resynth.topology".to_string(),
            topology.name.clone().into_bytes(),
        ),
    ];
    let own = headers.len();
    headers.extend(msg.headers.iter().cloned());
    let mut record = OutRecord {
        topic: topic.to_string(),
        key: msg.key.map(|k| k.to_vec()),
        payload: msg.payload.to_vec(),
        headers,
    };
    if dead_letter::fit(&mut record, own, lanes.limits.for_topic(topic)) {
        summary.dead_letters_truncated += 1;
        counter!(t::DEAD_LETTERS_TRUNCATED, "topology" => lanes.name.clone(),
                 "topic" => topic.to_string())
        .increment(1);
        warn!(topology = %lanes.name, topic, partition = msg.partition, offset = msg.offset,
              bytes = msg.payload.len(), "routed payload too large for its topic: truncated, digest in headers");
    }
    record
}

/// A small window's events joined with the next window's (merge forward).
fn merge_windows(
    small: crate::window::ClosedWindow,
    next: crate::window::ClosedWindow,
) -> crate::window::ClosedWindow {
    let mut merged = next;
    merged.start_ms = small.start_ms;
    merged.rows += small.rows;
    for (source, mut batches) in small.batches {
        let later = merged.batches.entry(source).or_default();
        batches.append(later);
        *later = batches;
    }
    for (p, r) in small.offsets {
        merged
            .offsets
            .entry(p)
            .and_modify(|m| {
                m.first = m.first.min(r.first);
                m.last = m.last.max(r.last);
            })
            .or_insert(r);
    }
    merged
}

/// Pauses the partitions ahead of the watermark while open panes hold more
/// than `window.max_buffered_rows` events, and resumes them below 90 % of it.
/// The partitions holding the watermark back keep flowing, so windows keep
/// closing and the buffer drains. The ceiling is soft: when every partition
/// left running is idle, the paused ones resume, since only they can move
/// the watermark (one open window may hold more than the ceiling).
fn backpressure(
    consumer: &EngineConsumer,
    windower: &Windower,
    paused: &mut Vec<SourcePartition>,
    topology: &Topology,
    topics: &[String],
    summary: &mut RunSummary,
) -> Result<(), EngineError> {
    let buffered = windower.buffered_rows();
    let ceiling = topology.window.max_buffered_rows;
    gauge!(t::BUFFERED_EVENTS, "topology" => topology.name.clone()).set(buffered as f64);
    let list = |parts: &[SourcePartition]| {
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in parts {
            tpl.add_partition(&topics[usize::from(p.source)], p.partition);
        }
        tpl
    };
    if buffered >= ceiling && paused.is_empty() {
        let ahead = windower.partitions_ahead();
        if !ahead.is_empty() {
            consumer
                .pause(&list(&ahead))
                .map_err(EngineError::Consumer)?;
            summary.backpressure_pauses += 1;
            counter!(t::BACKPRESSURE_PAUSES, "topology" => topology.name.clone()).increment(1);
            warn!(topology = %topology.name, buffered, ceiling, partitions = ?ahead,
                  "buffer full: pausing partitions ahead of the watermark");
            *paused = ahead;
        }
    } else if !paused.is_empty()
        && (buffered < ceiling / 10 * 9 || !windower.delivering_except(paused))
    {
        // Drained, or the partitions left running went idle: only the paused
        // ones can move the watermark now, so the ceiling yields.
        consumer
            .resume(&list(paused))
            .map_err(EngineError::Consumer)?;
        info!(topology = %topology.name, buffered, "buffer drained: resuming partitions");
        paused.clear();
    }
    Ok(())
}

fn hold_offsets(held: &mut BTreeMap<SourcePartition, i64>, more: &BTreeMap<SourcePartition, i64>) {
    for (&p, &o) in more {
        held.entry(p).and_modify(|h| *h = (*h).min(o)).or_insert(o);
    }
}

fn hold(held: &mut BTreeMap<SourcePartition, i64>, window: &crate::window::ClosedWindow) {
    for (&p, r) in &window.offsets {
        held.entry(p)
            .and_modify(|o| *o = (*o).min(r.first))
            .or_insert(r.first);
    }
}

fn empty_window() -> crate::window::ClosedWindow {
    crate::window::ClosedWindow {
        start_ms: 0,
        end_ms: 0,
        batches: BTreeMap::new(),
        rows: 0,
        offsets: BTreeMap::new(),
    }
}

fn commit(
    publisher: &Publisher,
    consumer: &EngineConsumer,
    records: &[OutRecord],
    offsets: &BTreeMap<(String, i32), (i64, String)>,
    summary: &mut RunSummary,
    name: &str,
) -> Result<(), EngineError> {
    let group = consumer.group_metadata().ok_or_else(|| {
        EngineError::Consumer(rdkafka::error::KafkaError::Subscription(
            "no consumer group metadata".into(),
        ))
    })?;
    let started = Instant::now();
    match publisher.commit(records, offsets, &group) {
        Ok(()) => {
            summary.transactions += 1;
            counter!(t::TRANSACTIONS, "topology" => name.to_string(), "result" => "committed")
                .increment(1);
            histogram!(t::STAGE_SECONDS, "topology" => name.to_string(), "stage" => "publish")
                .record(started.elapsed().as_secs_f64());
            health::committed(name);
            Ok(())
        }
        Err(e) => {
            counter!(t::TRANSACTIONS, "topology" => name.to_string(), "result" => "aborted")
                .increment(1);
            Err(e.into())
        }
    }
}

/// Broker reachability for `/readyz` (a metadata request, only while the
/// client reports every broker down) and the read lag per assigned
/// partition, from librdkafka's cached watermarks (no request).
fn health_tick(
    consumer: &EngineConsumer,
    topics: &[String],
    assigned: &[SourcePartition],
    run_health: &health::Run,
) {
    let flag = &consumer.context().brokers_down;
    if flag.load(Ordering::Relaxed) {
        run_health.broker_lost("every broker is down");
        if consumer
            .fetch_metadata(
                topics.first().map(String::as_str),
                Duration::from_millis(500),
            )
            .is_ok()
        {
            flag.store(false, Ordering::Relaxed);
            run_health.broker_back();
        }
        return;
    }
    let Ok(positions) = consumer.position() else {
        return;
    };
    for p in assigned {
        let topic = &topics[usize::from(p.source)];
        let Some(rdkafka::Offset::Offset(pos)) = positions
            .find_partition(topic, p.partition)
            .map(|e| e.offset())
        else {
            continue;
        };
        if let Some((_, high)) = sources::cached_watermarks(consumer, topic, p.partition) {
            gauge!(t::CONSUMER_READ_LAG, "topology" => run_health.topology().to_string(),
                   "topic" => topic.clone(), "partition" => p.partition.to_string())
            .set((high - pos).max(0) as f64);
        }
    }
}

/// The committed lag per partition, from the high watermarks librdkafka
/// cached from its fetches (no request: a watermark query per partition
/// waited behind the consumer's fetch on the broker, up to 0.5 s each, and
/// cost 3 s per window with six partitions). Table partitions, which this
/// consumer does not fetch, have none and are skipped.
fn report_lag(
    consumer: &EngineConsumer,
    offsets: &BTreeMap<(String, i32), (i64, String)>,
    name: &str,
) {
    for ((topic, partition), (committed, _)) in offsets {
        if let Some((_, high)) = sources::cached_watermarks(consumer, topic, *partition) {
            gauge!(t::CONSUMER_LAG, "topology" => name.to_string(), "topic" => topic.clone(),
                   "partition" => partition.to_string())
            .set((high - committed).max(0) as f64);
        }
    }
}
