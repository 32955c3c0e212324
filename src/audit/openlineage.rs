//! OpenLineage run events: the open standard lineage systems (Marquez,
//! DataHub, OpenMetadata, AWS DataZone) ingest, so a release's provenance
//! can be followed outside resynth too.
//!
//! The shape follows the spec (`OpenLineage.json` 2-0-2) and its naming
//! conventions: Kafka datasets live in the namespace `kafka://{host}:{port}`
//! of the first bootstrap server and are named by topic; jobs live in
//! `lineage.namespace`. Three jobs per topology:
//!
//! - `<topology>`: a STREAMING job, one run per engine run (START when the
//!   engine starts, COMPLETE when it stops, FAIL when it dies on an error);
//! - `<topology>.window`: one run per closed window, parent = the engine run:
//!   START when the window closes, RUNNING once a model is fitted and gated,
//!   COMPLETE once its transaction committed (outputs: the topic the batch
//!   went to), FAIL when processing or the commit failed; OTHER when a
//!   release is approved later;
//! - `<topology>.gate`: one run per gate attempt, parent = the window run,
//!   reading the batch meant for the output topic, with every gated operator
//!   as a data-quality assertion (the spec defines assertions as an input
//!   facet: the gate is the job that reads and tests the batch).
//!
//! Window and gate runs carry the custom `resynth` run facet (model version
//! and hash, validation run, ε, batch id, source ranges, approval digest),
//! whose JSON schema ships as `schemas/openlineage/ResynthRunFacet.json`.
//!
//! Every event goes to the file transport (`<audit.dir>/<lineage.file>`,
//! JSON lines: the binder's copy), and also to a Kafka topic and an HTTP
//! endpoint when configured. A failed Kafka or HTTP delivery is logged and
//! counted (`resynth_lineage_events_total{transport,result}`), never a
//! reason to hold a batch: the file copy is the evidence.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use metrics::counter;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::schema::{FieldKind, RecordSchema};
use crate::telemetry::LINEAGE_EVENTS;

/// RunEvent schema this module emits against.
pub const RUN_EVENT_SCHEMA: &str =
    "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
/// `_schemaURL` of the custom run facet (its JSON schema is
/// `schemas/openlineage/ResynthRunFacet.json`).
pub const RESYNTH_FACET_SCHEMA: &str =
    "urn:resynth:openlineage:facets:1-0-0:ResynthRunFacet.json#/$defs/ResynthRunFacet";
const JOB_TYPE_SCHEMA: &str =
    "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet";
const PARENT_SCHEMA: &str =
    "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet";
const ENGINE_SCHEMA: &str = "https://openlineage.io/spec/facets/1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet";
const NOMINAL_TIME_SCHEMA: &str =
    "https://openlineage.io/spec/facets/1-0-1/NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet";
const ERROR_SCHEMA: &str = "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet";
const SCHEMA_FACET_SCHEMA: &str =
    "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet";
const ASSERTIONS_SCHEMA: &str = "https://openlineage.io/spec/facets/1-1-0/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet";
const OUTPUT_STATS_SCHEMA: &str = "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet";

/// `[lineage]` in the topology: where OpenLineage events go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LineageConfig {
    /// Job namespace (the "scheduler" in OpenLineage's naming).
    pub namespace: String,
    /// File transport: JSON lines, relative to `audit.dir`. Always written:
    /// it is the copy the audit binder reads.
    pub file: PathBuf,
    /// Kafka transport: topic to also send every event to (key = run id).
    pub kafka_topic: Option<String>,
    /// HTTP transport: endpoint to POST every event to, e.g. Marquez's
    /// `http://host:5000/api/v1/lineage` (plain HTTP).
    pub http_url: Option<String>,
    /// Environment variable holding an API key, sent as `Authorization:
    /// Bearer <key>`; the key itself never appears in the topology.
    pub http_api_key_env: Option<String>,
    /// Timeout of one HTTP delivery.
    pub http_timeout_secs: u64,
    /// `producer` URI of every event and facet.
    pub producer: String,
}

impl Default for LineageConfig {
    fn default() -> Self {
        LineageConfig {
            namespace: "resynth".into(),
            file: PathBuf::from("lineage/openlineage.jsonl"),
            kafka_topic: None,
            http_url: None,
            http_api_key_env: None,
            http_timeout_secs: 5,
            producer: default_producer(),
        }
    }
}

/// `urn:resynth:engine:<version>`: a URI naming this engine build.
pub fn default_producer() -> String {
    format!("urn:resynth:engine:{}", env!("CARGO_PKG_VERSION"))
}

impl LineageConfig {
    /// Every problem, each with its path.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.namespace.trim().is_empty() {
            p.push("lineage.namespace: must not be empty".into());
        }
        if self.file.as_os_str().is_empty() {
            p.push("lineage.file: must not be empty (the binder reads it)".into());
        }
        if self
            .kafka_topic
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            p.push("lineage.kafka_topic: must not be empty when given".into());
        }
        if let Some(url) = &self.http_url
            && !url.starts_with("http://")
        {
            p.push(format!(
                "lineage.http_url: expected http://host:port/path (plain HTTP); got {url:?}"
            ));
        }
        if self.http_timeout_secs == 0 {
            p.push("lineage.http_timeout_secs: must be > 0".into());
        }
        if !self.producer.contains(':') {
            p.push(format!(
                "lineage.producer: must be a URI (scheme:...); got {:?}",
                self.producer
            ));
        }
        p
    }
}

/// The OpenLineage dataset namespace of a Kafka cluster: `kafka://host:port`
/// of the first bootstrap server (port 9092 when none is given).
pub fn kafka_namespace(brokers: &str) -> String {
    let first = brokers.split(',').next().unwrap_or("").trim();
    let first = first
        .strip_prefix("PLAINTEXT://")
        .or_else(|| first.strip_prefix("SSL://"))
        .unwrap_or(first);
    if first
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        format!("kafka://{first}")
    } else {
        format!("kafka://{first}:9092")
    }
}

/// RFC 3339 UTC time of `ms` since the epoch, with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn avro_type(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::String => "string",
        FieldKind::Int => "int",
        FieldKind::Long => "long",
        FieldKind::Float => "float",
        FieldKind::Double => "double",
        FieldKind::Boolean => "boolean",
        FieldKind::TimestampMillis => "timestamp-millis",
    }
}

/// The run-time facts one window's lineage needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WindowFacts {
    /// `start_ms-end_ms`.
    pub window: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// `topic/partition/first-last` per partition read.
    pub source_ranges: Vec<String>,
}

/// What a window produced, for its RUNNING and COMPLETE events.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReleaseFacts {
    pub batch_id: Option<String>,
    pub model_version: Option<u64>,
    pub model_sha256: Option<String>,
    pub generator: Option<String>,
    pub validation_run: Option<String>,
    /// ε spent by this model's fit (none: not differentially private).
    pub epsilon: Option<f64>,
    pub ledger_total_epsilon: Option<f64>,
    /// `published`, `quarantined`, `held` (awaiting approval), `no_batch`.
    pub outcome: String,
    /// Topic the batch went to and its record count.
    pub destination: Option<(String, usize)>,
    /// sha256 of the DSSE envelope that approved the release, once approved.
    pub approval_digest: Option<String>,
}

/// One gate attempt's assertions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GateFacts {
    pub validation_run: String,
    pub passed: bool,
    /// (operator label, column, passed, statistic, threshold).
    pub assertions: Vec<(String, Option<String>, bool, f64, f64)>,
}

impl GateFacts {
    /// From a gate report as stored in `reports/<validation_run>.json`.
    pub fn from_report(validation_run: &str, gate: &crate::gate::GateReport) -> GateFacts {
        GateFacts {
            validation_run: validation_run.to_string(),
            passed: gate.passed,
            assertions: gate
                .results
                .iter()
                .map(|r| {
                    let label = if r.columns.is_empty() {
                        r.operator.clone()
                    } else {
                        format!("{}[{}]", r.operator, r.columns.join(","))
                    };
                    let column = (r.columns.len() == 1).then(|| r.columns[0].clone());
                    (label, column, r.passed, r.statistic, r.threshold)
                })
                .collect(),
        }
    }
}

/// Builds the events of one topology: pure, so tests and the binder can
/// produce exactly what the engine sends.
#[derive(Debug, Clone)]
pub struct EventBuilder {
    pub namespace: String,
    pub producer: String,
    pub topology: String,
    pub kafka_namespace: String,
    pub source_topic: String,
    pub output_topic: String,
    pub source_fields: Vec<(String, String)>,
    pub output_fields: Vec<(String, String)>,
}

fn fields_of(schema: &RecordSchema) -> Vec<(String, String)> {
    schema
        .fields
        .iter()
        .map(|f| (f.name.clone(), avro_type(f.kind).to_string()))
        .collect()
}

impl EventBuilder {
    pub fn new(
        config: &LineageConfig,
        topology: &crate::topology::Topology,
        brokers: &str,
        source: &RecordSchema,
        output: &RecordSchema,
    ) -> EventBuilder {
        EventBuilder {
            namespace: config.namespace.clone(),
            producer: config.producer.clone(),
            topology: topology.name.clone(),
            kafka_namespace: kafka_namespace(brokers),
            source_topic: topology.primary_topic(),
            output_topic: topology.output.topic.clone(),
            source_fields: fields_of(source),
            output_fields: fields_of(output),
        }
    }

    fn facet(&self, schema: &str, body: Value) -> Value {
        let mut v = body;
        v["_producer"] = json!(self.producer);
        v["_schemaURL"] = json!(schema);
        v
    }

    fn job(&self, name: &str, processing: &str, job_type: &str) -> Value {
        json!({"namespace": self.namespace, "name": name, "facets": {
            "jobType": self.facet(JOB_TYPE_SCHEMA, json!({
                "processingType": processing, "integration": "RESYNTH", "jobType": job_type}))}})
    }

    fn schema_facet(&self, fields: &[(String, String)]) -> Value {
        self.facet(
            SCHEMA_FACET_SCHEMA,
            json!({"fields": fields.iter().map(|(n, t)| json!({"name": n, "type": t})).collect::<Vec<_>>()}),
        )
    }

    fn dataset(&self, topic: &str, fields: Option<&[(String, String)]>) -> Value {
        let mut d = json!({"namespace": self.kafka_namespace, "name": topic});
        if let Some(f) = fields {
            d["facets"] = json!({"schema": self.schema_facet(f)});
        }
        d
    }

    fn event(
        &self,
        event_type: &str,
        at_ms: i64,
        run: Value,
        job: Value,
        inputs: Vec<Value>,
        outputs: Vec<Value>,
    ) -> Value {
        json!({"eventType": event_type, "eventTime": rfc3339(at_ms), "run": run, "job": job,
               "inputs": inputs, "outputs": outputs, "producer": self.producer,
               "schemaURL": RUN_EVENT_SCHEMA})
    }

    fn parent(&self, run_id: &str, job: &str) -> Value {
        self.facet(
            PARENT_SCHEMA,
            json!({"run": {"runId": run_id}, "job": {"namespace": self.namespace, "name": job}}),
        )
    }

    /// Name of the window job.
    pub fn window_job(&self) -> String {
        format!("{}.window", self.topology)
    }

    /// Name of the gate job.
    pub fn gate_job(&self) -> String {
        format!("{}.gate", self.topology)
    }

    /// The engine run: START, COMPLETE, or FAIL with the error.
    pub fn topology_event(
        &self,
        event_type: &str,
        run_id: &str,
        at_ms: i64,
        error: Option<&str>,
    ) -> Value {
        let mut facets = json!({"processing_engine": self.facet(ENGINE_SCHEMA, json!({
            "version": env!("CARGO_PKG_VERSION"), "name": "resynth",
            "openlineageAdapterVersion": env!("CARGO_PKG_VERSION")}))});
        if let Some(e) = error {
            facets["errorMessage"] = self.facet(
                ERROR_SCHEMA,
                json!({"message": e, "programmingLanguage": "Rust"}),
            );
        }
        self.event(
            event_type,
            at_ms,
            json!({"runId": run_id, "facets": facets}),
            self.job(&self.topology, "STREAMING", "JOB"),
            vec![self.dataset(&self.source_topic, Some(&self.source_fields))],
            vec![self.dataset(&self.output_topic, Some(&self.output_fields))],
        )
    }

    fn resynth_facet(&self, window: &WindowFacts, release: &ReleaseFacts) -> Value {
        self.facet(
            RESYNTH_FACET_SCHEMA,
            json!({"topology": self.topology, "window": window.window,
                   "sourceRanges": window.source_ranges,
                   "outcome": release.outcome, "batchId": release.batch_id,
                   "modelVersion": release.model_version, "modelSha256": release.model_sha256,
                   "generator": release.generator, "validationRun": release.validation_run,
                   "epsilon": release.epsilon, "ledgerTotalEpsilon": release.ledger_total_epsilon,
                   "approvalDigest": release.approval_digest,
                   "engineVersion": env!("CARGO_PKG_VERSION")}),
        )
    }

    /// One window run's event. `release` is `None` at START.
    #[allow(clippy::too_many_arguments)]
    pub fn window_event(
        &self,
        event_type: &str,
        run_id: &str,
        parent_run: &str,
        at_ms: i64,
        window: &WindowFacts,
        release: Option<&ReleaseFacts>,
        error: Option<&str>,
    ) -> Value {
        let mut facets = json!({
            "parent": self.parent(parent_run, &self.topology),
            "nominalTime": self.facet(NOMINAL_TIME_SCHEMA, json!({
                "nominalStartTime": rfc3339(window.start_ms), "nominalEndTime": rfc3339(window.end_ms)})),
        });
        let empty = ReleaseFacts {
            outcome: "in_progress".into(),
            ..Default::default()
        };
        facets["resynth"] = self.resynth_facet(window, release.unwrap_or(&empty));
        if let Some(e) = error {
            facets["errorMessage"] = self.facet(
                ERROR_SCHEMA,
                json!({"message": e, "programmingLanguage": "Rust"}),
            );
        }
        let mut outputs = Vec::new();
        if let Some((topic, rows)) = release.and_then(|r| r.destination.as_ref()) {
            let fields = (topic == &self.output_topic).then_some(self.output_fields.as_slice());
            let mut d = self.dataset(topic, fields);
            d["outputFacets"] = json!({"outputStatistics": self.facet(OUTPUT_STATS_SCHEMA, json!({"rowCount": rows}))});
            outputs.push(d);
        }
        self.event(
            event_type,
            at_ms,
            json!({"runId": run_id, "facets": facets}),
            self.job(&self.window_job(), "BATCH", "TASK"),
            vec![self.dataset(&self.source_topic, Some(&self.source_fields))],
            outputs,
        )
    }

    /// One gate attempt's event (START without assertions, COMPLETE with).
    #[allow(clippy::too_many_arguments)]
    pub fn gate_event(
        &self,
        event_type: &str,
        run_id: &str,
        window_run: &str,
        at_ms: i64,
        window: &WindowFacts,
        release: &ReleaseFacts,
        gate: &GateFacts,
    ) -> Value {
        let mut release = release.clone();
        release.validation_run = Some(gate.validation_run.clone());
        let facets = json!({
            "parent": self.parent(window_run, &self.window_job()),
            "resynth": self.resynth_facet(window, &release),
        });
        let mut input = self.dataset(&self.output_topic, Some(&self.output_fields));
        if event_type != "START" {
            let assertions: Vec<Value> = gate
                .assertions
                .iter()
                .map(|(label, column, passed, statistic, threshold)| {
                    let mut a = json!({"assertion": label.split('[').next().unwrap_or(label),
                        "success": passed, "name": label, "severity": "error",
                        "expected": format!("<= {threshold}"), "actual": format!("{statistic}")});
                    if let Some(c) = column {
                        a["column"] = json!(c);
                    }
                    a
                })
                .collect();
            input["inputFacets"] = json!({"dataQualityAssertions": self.facet(ASSERTIONS_SCHEMA, json!({"assertions": assertions}))});
        }
        self.event(
            event_type,
            at_ms,
            json!({"runId": run_id, "facets": facets}),
            self.job(&self.gate_job(), "BATCH", "TASK"),
            vec![input],
            Vec::new(),
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LineageError {
    #[error("lineage file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("lineage kafka transport: {0}")]
    Kafka(rdkafka::error::KafkaError),
}

/// Sends events to every configured transport.
pub struct Emitter {
    pub builder: EventBuilder,
    /// The engine run's id (the STREAMING job's run).
    pub run_id: String,
    path: PathBuf,
    file: std::fs::File,
    kafka: Option<(BaseProducer, String)>,
    http: Option<(ureq::Agent, String, Option<String>)>,
    topology: String,
}

impl Emitter {
    /// Opens the file transport (appending) and the configured others.
    pub fn open(
        config: &LineageConfig,
        audit_dir: &Path,
        builder: EventBuilder,
        brokers: &str,
        properties: &std::collections::BTreeMap<String, String>,
    ) -> Result<Emitter, LineageError> {
        let path = audit_dir.join(&config.file);
        let io = |source| LineageError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            crate::owner_only::create_dir_all(dir).map_err(io)?;
        }
        let file = crate::owner_only::open_append(&path).map_err(io)?;
        let kafka = match &config.kafka_topic {
            Some(topic) => {
                let mut c = ClientConfig::new();
                for (k, v) in properties {
                    c.set(k, v);
                }
                let p: BaseProducer = c
                    .set("bootstrap.servers", brokers)
                    .create()
                    .map_err(LineageError::Kafka)?;
                Some((p, topic.clone()))
            }
            None => None,
        };
        let http = config.http_url.as_ref().map(|url| {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(config.http_timeout_secs)))
                .build()
                .into();
            let key = config
                .http_api_key_env
                .as_ref()
                .and_then(|v| std::env::var(v).ok());
            (agent, url.clone(), key)
        });
        Ok(Emitter {
            topology: builder.topology.clone(),
            builder,
            run_id: uuid::Uuid::new_v4().to_string(),
            path,
            file,
            kafka,
            http,
        })
    }

    /// Writes one event to the file (synced) and sends it to the others.
    pub fn emit(&mut self, event: &Value) -> Result<(), LineageError> {
        let line = format!("{event}\n");
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.sync_data())
            .map_err(|source| LineageError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.count("file", "ok");
        let run_id = event["run"]["runId"].as_str().unwrap_or("").to_string();
        let body = event.to_string();
        if let Some((producer, topic)) = &self.kafka {
            let sent = producer
                .send(BaseRecord::to(topic).key(&run_id).payload(&body))
                .map_err(|(e, _)| e)
                .and_then(|_| producer.flush(Duration::from_secs(10)));
            match sent {
                Ok(()) => self.count("kafka", "ok"),
                Err(e) => {
                    tracing::warn!(topology = %self.topology, error = %e, "OpenLineage event not delivered to Kafka");
                    self.count("kafka", "error");
                }
            }
        }
        if let Some((agent, url, key)) = &self.http {
            let mut req = agent.post(url).header("Content-Type", "application/json");
            if let Some(k) = key {
                req = req.header("Authorization", &format!("Bearer {k}"));
            }
            match req.send(&body) {
                Ok(_) => self.count("http", "ok"),
                Err(e) => {
                    tracing::warn!(topology = %self.topology, error = %e, "OpenLineage event not delivered over HTTP");
                    self.count("http", "error");
                }
            }
        }
        Ok(())
    }

    fn count(&self, transport: &'static str, result: &'static str) {
        counter!(LINEAGE_EVENTS, "topology" => self.topology.clone(), "transport" => transport, "result" => result)
            .increment(1);
    }
}

/// Reads every event of a JSON-lines file, naming the line of a bad one.
pub fn read_events(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| format!("{} line {}: not JSON: {e}", path.display(), i + 1))
        })
        .collect()
}

/// The structural rules of a RunEvent that a consumer relies on, checked
/// without a schema validator (the tests run the official client too):
/// required fields, event type, RFC 3339 time, UUID run id, facets with
/// `_producer` and `_schemaURL`, datasets with namespace and name.
pub fn check_event(e: &Value) -> Result<(), String> {
    let s = |v: &Value, what: &str| -> Result<(), String> {
        v.as_str()
            .filter(|x| !x.is_empty())
            .map(|_| ())
            .ok_or_else(|| format!("{what} missing or not a string"))
    };
    s(&e["eventTime"], "eventTime")?;
    s(&e["producer"], "producer")?;
    s(&e["schemaURL"], "schemaURL")?;
    let t = e["eventType"].as_str().unwrap_or("");
    if !["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"].contains(&t) {
        return Err(format!("eventType {t:?} is not a RunEvent type"));
    }
    let run_id = e["run"]["runId"].as_str().unwrap_or("");
    if uuid::Uuid::parse_str(run_id).is_err() {
        return Err(format!("run.runId {run_id:?} is not a UUID"));
    }
    s(&e["job"]["namespace"], "job.namespace")?;
    s(&e["job"]["name"], "job.name")?;
    let mut facet_maps = vec![&e["run"]["facets"], &e["job"]["facets"]];
    for side in ["inputs", "outputs"] {
        for d in e[side].as_array().into_iter().flatten() {
            s(&d["namespace"], &format!("{side}[].namespace"))?;
            s(&d["name"], &format!("{side}[].name"))?;
            facet_maps.extend([&d["facets"], &d["inputFacets"], &d["outputFacets"]]);
        }
    }
    for map in facet_maps {
        for (k, f) in map.as_object().into_iter().flatten() {
            s(&f["_producer"], &format!("facet {k}: _producer"))?;
            s(&f["_schemaURL"], &format!("facet {k}: _schemaURL"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder() -> EventBuilder {
        EventBuilder {
            namespace: "resynth".into(),
            producer: default_producer(),
            topology: "demo".into(),
            kafka_namespace: kafka_namespace("127.0.0.1:19092,other:1"),
            source_topic: "ehr.labs".into(),
            output_topic: "ehr.labs.synthetic".into(),
            source_fields: vec![("age".into(), "int".into())],
            output_fields: vec![("age".into(), "int".into())],
        }
    }

    #[test]
    fn kafka_namespaces_follow_the_naming_spec() {
        assert_eq!(
            kafka_namespace("127.0.0.1:19092,b:9093"),
            "kafka://127.0.0.1:19092"
        );
        assert_eq!(kafka_namespace("broker"), "kafka://broker:9092");
        assert_eq!(kafka_namespace("PLAINTEXT://h:1"), "kafka://h:1");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        // 2024-02-29T12:34:56.789Z (a leap day), checked against `date -u -d @1709210096`.
        assert_eq!(rfc3339(1_709_210_096_789), "2024-02-29T12:34:56.789Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn every_event_kind_passes_the_structural_check() {
        let b = builder();
        let top = uuid::Uuid::new_v4().to_string();
        let run = uuid::Uuid::new_v4().to_string();
        let w = WindowFacts {
            window: "0-3600000".into(),
            start_ms: 0,
            end_ms: 3_600_000,
            source_ranges: vec!["ehr.labs/0/0-9".into()],
        };
        let release = ReleaseFacts {
            batch_id: Some("demo-0-v1".into()),
            model_version: Some(1),
            outcome: "published".into(),
            destination: Some(("ehr.labs.synthetic".into(), 10)),
            ..Default::default()
        };
        let gate = GateFacts {
            validation_run: "demo-0-v1-a0".into(),
            passed: true,
            assertions: vec![("ks[age]".into(), Some("age".into()), true, 0.01, 0.1)],
        };
        let events = [
            b.topology_event("START", &top, 0, None),
            b.topology_event("FAIL", &top, 0, Some("boom")),
            b.window_event("START", &run, &top, 1, &w, None, None),
            b.window_event("COMPLETE", &run, &top, 2, &w, Some(&release), None),
            b.gate_event(
                "COMPLETE",
                &uuid::Uuid::new_v4().to_string(),
                &run,
                3,
                &w,
                &release,
                &gate,
            ),
        ];
        for e in &events {
            check_event(e).unwrap();
        }
        assert_eq!(
            events[3]["outputs"][0]["namespace"],
            "kafka://127.0.0.1:19092"
        );
        assert_eq!(events[3]["run"]["facets"]["parent"]["run"]["runId"], top);
        let a = &events[4]["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"][0];
        assert_eq!(a["assertion"], "ks");
        assert_eq!(a["column"], "age");
        let mut bad = events[0].clone();
        bad["run"]["runId"] = json!("not-a-uuid");
        assert!(check_event(&bad).unwrap_err().contains("UUID"));
        let mut bad = events[2].clone();
        bad["run"]["facets"]["parent"]
            .as_object_mut()
            .unwrap()
            .remove("_schemaURL");
        assert!(check_event(&bad).unwrap_err().contains("parent"));
    }
}
