//! The topology file: one TOML document that says where events come from, how
//! they are windowed and turned into a training table, how drift is judged,
//! which generator to fit, what the gates demand and where results go.
//!
//! The structs here are the single source of truth for every option: they carry
//! the defaults and the doc comments that the README's topology reference
//! mirrors. Loading never stops at the first problem: `Topology::load` parses
//! with unknown keys rejected, then `validate` lists every value problem with
//! its path in the file, so an operator fixes a topology in one pass.

use std::path::{Path, PathBuf};

pub mod secrets;

use serde::{Deserialize, Serialize};

use crate::gate::{GateConfig, Roles};
use crate::generate::GeneratorKind;
use crate::generate::cart::CartConfig;
use crate::generate::copula::CopulaConfig;
use crate::generate::privbayes::PrivBayesConfig;

/// Problems found while loading a topology, each naming its path in the file.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("cannot read topology {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("topology {path} is not valid TOML for resynth: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("topology {path} has {} problem(s):\n  - {}", problems.len(), problems.join("\n  - "))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

/// A whole topology file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Name used in lineage headers, metric labels and the audit log. Letters,
    /// digits, `-`, `_` and `.` only, so it is safe in every one of those places.
    pub name: String,
    /// Kafka endpoints and topic names.
    pub kafka: KafkaConfig,
    /// How the events of a one-source topology are decoded (with
    /// `kafka.source_topic` and `window.table`: one stream source). Absent
    /// when `[[sources]]` lists the sources.
    #[serde(default, skip_serializing_if = "SourceConfig::is_unset")]
    pub source: SourceConfig,
    /// Every source of a several-source topology, each a stream (windowed
    /// events) or a table (latest state per key). Empty: the one stream of
    /// `kafka.source_topic` and `[source]`; see [`Topology::sources`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceEntry>,
    /// Event-time windowing and the SQL that builds the training table.
    pub window: WindowConfig,
    /// Which columns identify people, and how the training table is split.
    #[serde(default)]
    pub model: ModelConfig,
    /// Drift detection and the refit decision.
    #[serde(default)]
    pub drift: DriftConfig,
    /// Gaussian copula settings (used when `model.generator = "gaussian_copula"`).
    #[serde(default)]
    pub copula: CopulaConfig,
    /// CART settings (used when `model.generator = "cart"`, the default, or
    /// `"auto"`).
    #[serde(default)]
    pub cart: CartConfig,
    /// PrivBayes settings: ε and the declared domain of every training column
    /// (required when `model.generator = "privbayes"`).
    #[serde(default)]
    pub privbayes: Option<PrivBayesConfig>,
    /// Privacy-budget cap for the ledger of this topology and source.
    #[serde(default)]
    pub budget: BudgetConfig,
    /// Fidelity and privacy gate thresholds.
    #[serde(default)]
    pub gate: GateConfig,
    /// What columns mean to the gate: quasi-identifiers, sensitive columns,
    /// subgroups, utility target, conditionals.
    #[serde(default)]
    pub roles: Roles,
    /// Where the synthetic records are published and what they look like.
    pub output: OutputConfig,
    /// Audit log, reports and model registry on disk.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Prometheus endpoint.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// OpenLineage events: job namespace and transports (file, Kafka, HTTP).
    #[serde(default)]
    pub lineage: crate::audit::openlineage::LineageConfig,
}

/// Kafka endpoints and topics.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port]`. `resynth run --brokers` overrides it.
    pub brokers: String,
    /// Consumer group; its committed offsets are the engine's progress.
    pub group_id: String,
    /// Topic with the source EHR change events of a one-source topology
    /// (empty when `[[sources]]` lists the sources).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_topic: String,
    /// Undecodable events, with original bytes and a `resynth.error` header.
    pub dead_letter_topic: String,
    /// Too-late events (`window.late_policy = "topic"`), with original bytes.
    /// Default: the dead-letter topic.
    #[serde(default)]
    pub late_topic: Option<String>,
    /// Batches that failed the gates after every regeneration.
    pub quarantine_topic: String,
    /// Drift and gate alerts (JSON).
    pub alerts_topic: String,
    /// Transactional id of the publisher; one per running topology instance.
    /// Default: `resynth-<name>`.
    #[serde(default)]
    pub transactional_id: Option<String>,
    /// Static group membership (`group.instance.id`): an instance restarted
    /// after a crash gets its partitions back at once, instead of waiting
    /// `session.timeout.ms` for the dead member to expire while it reads
    /// only some of them. Default: the transactional id (one per instance).
    #[serde(default)]
    pub group_instance_id: Option<String>,
    /// Extra librdkafka properties for every client (e.g. security settings).
    /// Values may reference secrets, `"${ENV_VAR}"` or `"file:/path"`; secret
    /// keys (`sasl.password`, ...) must (see `topology::secrets`).
    #[serde(default)]
    pub properties: secrets::KafkaProperties,
}

/// Wire format of source events.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EventFormat {
    /// Raw Avro binary datum written with `schema` (no container, no registry prefix).
    #[default]
    Avro,
    /// One JSON object per message with the fields of `schema`.
    Json,
    /// One FHIR R4 resource (JSON) per message, decoded into `columns` by
    /// path (see `schema::fhir`); no `schema` file.
    Fhir,
}

/// How source events are decoded: the `[source]` section of a one-source
/// topology, and the decode fields of each `[[sources]]` entry. `Default` is
/// the absent `[source]` of a topology that lists `[[sources]]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `avro`, `json` or `fhir`.
    pub format: EventFormat,
    /// Avro schema (`.avsc`) of a source event, relative to the topology file.
    /// JSON events are validated against it too. Required for `avro` and
    /// `json`; not given for `fhir` (the columns are the schema).
    #[serde(default, skip_serializing_if = "path_is_empty")]
    pub schema: PathBuf,
    /// Field holding the event time (Avro `timestamp-millis` or a long in
    /// ms). For `fhir`: the name of a `timestamp` column of `columns`.
    pub event_time_field: String,
    /// `fhir` only: the `resourceType` every message must have
    /// (`Observation`, `Patient`, ...); any other is a dead letter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// `fhir` only: the columns, each a path into the resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<FhirColumn>,
    /// `fhir` only: path of the status that marks a withdrawal
    /// (`entered-in-error`). Default by resource type: `status`, or for
    /// Condition and AllergyIntolerance
    /// `verificationStatus.coding[system='...'].code`; Patient and other
    /// types without a status have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_path: Option<String>,
    /// `fhir` only: larger messages are dead letters before they are parsed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_resource_bytes: Option<usize>,
}

/// One column of a `fhir` source: where its value is in the resource and
/// which flat type it takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FhirColumn {
    /// Column name in the window's table (a plain SQL identifier).
    pub name: String,
    /// Path into the resource: `code.coding[system='http://loinc.org'].code`,
    /// `valueQuantity.value`, alternatives with `|` (see `schema::fhir::path`).
    pub path: String,
    /// `string`, `int`, `long`, `double`, `boolean`, `timestamp` (a FHIR
    /// date, dateTime or instant as ms since the epoch) or `age_years` (a
    /// FHIR date, e.g. `birthDate`, as completed years at the event time).
    #[serde(rename = "type")]
    pub kind: FhirValueType,
    /// A resource without a value here is a dead letter; otherwise null.
    #[serde(default = "default_true")]
    pub required: bool,
}

/// The value type of a [`FhirColumn`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FhirValueType {
    String,
    Int,
    Long,
    Double,
    Boolean,
    Timestamp,
    AgeYears,
}

fn path_is_empty(p: &Path) -> bool {
    p.as_os_str().is_empty()
}

fn default_true() -> bool {
    true
}

impl SourceConfig {
    /// No `[source]` section was given (a `[[sources]]` topology).
    pub fn is_unset(&self) -> bool {
        path_is_empty(&self.schema)
            && self.event_time_field.is_empty()
            && self.resource_type.is_none()
            && self.columns.is_empty()
    }
}

/// What a source is to the windows' SQL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Events, windowed by event time: each closed window's SQL sees that
    /// window's events of this source.
    #[default]
    Stream,
    /// Latest state per key (a KTable), from a compacted topic, kept across
    /// windows and rebuilt from the topic on start: each closed window's SQL
    /// sees, per key, the latest record with event time ≤ the window's end.
    /// A record with a null payload (tombstone) deletes its key.
    Table,
}

/// One `[[sources]]` entry. The decode fields are those of [`SourceConfig`]
/// (flattened, so every decode option of `[source]` works here too).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceEntry {
    /// The source's table name in `window.sql` (a plain SQL identifier);
    /// also its label in metrics and dead-letter headers.
    pub name: String,
    /// `stream` (default) or `table`.
    #[serde(default)]
    pub kind: SourceKind,
    /// Topic of this source's events (a table's should be compacted).
    pub topic: String,
    /// This source's undecodable events. Default: `kafka.dead_letter_topic`.
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// This source's too-late events (streams). Default: `kafka.late_topic`,
    /// else this source's dead-letter topic.
    #[serde(default)]
    pub late_topic: Option<String>,
    /// Tables only: the field whose value is the state's key (a later record
    /// with the same key replaces the earlier one).
    #[serde(default)]
    pub key_field: Option<String>,
    /// How this source's events are decoded.
    #[serde(flatten)]
    pub decode: SourceConfig,
}

/// A source with every default settled: what the engine and `check` use,
/// whether the topology lists `[[sources]]` or has the one-source shape.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub kind: SourceKind,
    pub topic: String,
    pub dead_letter_topic: String,
    pub late_topic: String,
    pub key_field: Option<String>,
    pub decode: SourceConfig,
    /// Where the source's options sit in the file, for problems:
    /// `source` or `sources[2]`.
    pub path: String,
}

/// Event-time windows and the training-table query.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Window length in seconds of event time.
    pub size_secs: u64,
    /// Distance between window starts in seconds. Default: `size_secs`
    /// (tumbling windows). Smaller values give sliding (hopping) windows that
    /// overlap; events are stored once, in panes of gcd(size, slide).
    #[serde(default)]
    pub slide_secs: Option<u64>,
    /// Watermark = max event time seen − this delay.
    #[serde(default = "default_watermark_delay")]
    pub watermark_delay_secs: u64,
    /// A window is finalised when the watermark passes its end plus this; until
    /// then an event behind the watermark still lands in its window (counted
    /// as late-but-accepted). Events whose windows are all finalised are too
    /// late and follow `late_policy`.
    #[serde(default)]
    pub allowed_lateness_secs: u64,
    /// A partition that delivers nothing for this long (wall clock) stops
    /// holding the watermark back, and rejoins when it delivers again. A
    /// partition at its end is idle at once.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Too-late events: `topic` (default) sends the original bytes to
    /// `kafka.late_topic` with the reason and source coordinates in headers;
    /// `drop` only counts them (`resynth_events_late_total`).
    #[serde(default)]
    pub late_policy: LatePolicy,
    /// Name under which a closed window is registered as a DataFusion table.
    #[serde(default = "default_table")]
    pub table: String,
    /// SQL over `table` that yields the training table: one row per privacy
    /// unit (patient). Its output must match `output.schema`.
    pub sql: String,
    /// Windows whose training table has fewer rows than this follow
    /// `min_rows_policy` (logged and counted): fitting or gating on a
    /// handful of patients is noise.
    #[serde(default = "default_min_rows")]
    pub min_rows: usize,
    /// `skip` (default): the small window is processed no further.
    /// `merge_forward`: its events join the next window (tumbling windows only).
    #[serde(default)]
    pub min_rows_policy: MinRowsPolicy,
    /// Ceiling on events buffered in open panes. Above it the engine pauses
    /// the partitions that are ahead of the watermark (backpressure) until
    /// windows close, instead of growing without limit.
    #[serde(default = "default_max_buffered_rows")]
    pub max_buffered_rows: usize,
    /// An event whose event time is more than this many milliseconds ahead
    /// of the wall clock goes to the dead-letter topic (reason
    /// `event_time_future`) and never moves a watermark: one event dated in
    /// year 3000 would otherwise make its partition's valid events late.
    /// Default 86,400,000 (one day). Historic data is never affected.
    #[serde(default = "default_max_future_ms")]
    pub max_future_ms: u64,
}

/// What happens to events whose windows are all finalised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatePolicy {
    /// Original bytes to `kafka.late_topic`, with reason and coordinates.
    #[default]
    Topic,
    /// Counted (per topic) and dropped.
    Drop,
}

/// What happens to a window with fewer than `min_rows` training rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MinRowsPolicy {
    #[default]
    Skip,
    MergeForward,
}

impl WindowConfig {
    /// The window geometry in ms.
    pub fn spec(&self) -> crate::window::WindowSpec {
        let ms = |s: u64| (s as i64).saturating_mul(1000);
        crate::window::WindowSpec {
            size_ms: ms(self.size_secs),
            slide_ms: ms(self.slide_secs.unwrap_or(self.size_secs)),
            delay_ms: ms(self.watermark_delay_secs),
            allowed_lateness_ms: ms(self.allowed_lateness_secs),
        }
    }
}

/// The privacy-budget ledger's cap.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// Total ε that DP fits of this topology may spend on its source
    /// population. A refit that would pass it is refused and alerted; the
    /// deployed model stays. None = no cap (not advised).
    pub epsilon_cap: Option<f64>,
    /// δ of the stated guarantee. When set (0 < δ < 1), the ledger also
    /// composes the pure ε-DP fits by zCDP and counts the smaller of that
    /// total and the plain sum of ε; None = the plain sum (pure ε-DP).
    pub delta: Option<f64>,
}

/// Columns that identify people, and the train/holdout split.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// `cart` (default: sequential CART synthesis with structure rules),
    /// `auto` (CART and the copula judged on an inner split of the training
    /// rows, the best that passes deployed), `gaussian_copula` (none of these
    /// is differentially private) or `privbayes` (ε-DP; needs `[privbayes]`).
    pub generator: GeneratorKind,
    /// The privacy unit's id column in the training table (usually the patient).
    pub entity_column: String,
    /// Identifier columns: never learned; the generator issues fresh ids.
    pub id_columns: Vec<String>,
    /// Share of patients held out for the gates' noise floor and privacy tests.
    /// 0.5 keeps train and holdout the same size, which the DCR share test assumes.
    pub holdout_fraction: f64,
    /// Categorical column to stratify the copula by: one copula per label
    /// (with at least `min_stratum_rows` rows), so distributions conditional
    /// on it (lab values given diagnosis) are kept. None = one copula.
    pub stratify_by: Option<String>,
    /// Rows a stratum needs for its own copula; smaller ones share a pooled one.
    pub min_stratum_rows: usize,
    /// Synthetic rows per batch; 0 means as many as the training split.
    pub synthetic_rows: usize,
    /// Base seed: fits and samples derive their seeds from it and the window,
    /// so any published batch can be reproduced.
    pub seed: u64,
}

/// The longest drift history (`drift.persist_m`) the engine keeps.
pub const MAX_PERSIST_M: usize = 64;

/// Drift detection and refit policy. The README's "Drift alerts, for
/// on-call engineers" section explains each option in plain words.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriftConfig {
    /// False-discovery rate of Benjamini–Hochberg across every test of a
    /// window (columns, null rates, pairs, joint check, segments).
    pub alpha: f64,
    /// Windows with at least this many rows are judged on effect sizes
    /// (PSI, JS, Wasserstein/σ, unseen share); smaller ones on the tests'
    /// own distances (KS D, total variation).
    pub large_window_rows: usize,
    /// A significant test drifts only when its effect reaches this share of
    /// its threshold, plus the effect's no-drift noise at the window's size.
    pub floor_fraction: f64,
    /// Small windows, numeric columns: KS D of a shift meant to be caught.
    pub ks_max: f64,
    /// Small windows, categorical columns: total variation (or difference of
    /// the two shares of a two-category column) meant to be caught.
    pub tv_max: f64,
    /// Large windows: population stability index meant to be caught.
    pub psi_max: f64,
    /// Large windows: Jensen–Shannon divergence (bits) meant to be caught.
    pub js_max: f64,
    /// Large windows, numeric: Wasserstein-1 / reference std meant to be caught.
    pub wasserstein_sigma_max: f64,
    /// Change of a column's missing-value share meant to be caught (any window).
    pub null_rate_max: f64,
    /// Large windows, categorical: share of rows in categories the reference never saw.
    pub unseen_max: f64,
    /// Change of a pair's Spearman r meant to be caught.
    pub correlation_diff_max: f64,
    /// Relative change of the mean squared Mahalanobis distance in the
    /// reference copula (the joint check) meant to be caught.
    pub joint_max: f64,
    /// Numeric columns whose pairwise correlations and joint structure are
    /// checked; empty = the first 30 numeric columns.
    pub correlation_columns: Vec<String>,
    /// Rows of a window (evenly spaced) used by the correlation and joint checks.
    pub joint_max_rows: usize,
    /// Quantile bins per numeric column (plus two open tail bins).
    pub bins: usize,
    /// Categories kept per categorical column; rarer ones share OTHER.
    pub top_k: usize,
    /// Numeric columns with at most this many distinct values are treated as categorical.
    pub categorical_max_distinct: usize,
    /// Categorical columns (site, sex, …) whose segments are also checked on their own.
    pub segments: Vec<String>,
    /// Rows a segment needs, in the reference and in the window, to be checked.
    pub min_segment_rows: usize,
    /// A window drifts when at least this many columns drift.
    pub min_drifting_columns: usize,
    /// DRIFT when at least `persist_k` of the last `persist_m` windows drifted.
    pub persist_k: usize,
    /// See `persist_k`. At most 64: the history rides in the source commit's
    /// offset metadata (`engine::state`), which the broker bounds.
    pub persist_m: usize,
    /// Quiet windows in a row that return WARN or DRIFT to OK.
    pub clear_windows: usize,
    /// A window is quiet when no significant test scores at or above this
    /// (score 1 = an effect of threshold size).
    pub exit_score: f64,
    /// Rows a window needs for a drift refit.
    pub refit_min_rows: usize,
    /// Windows after a refit (or an abandoned one) during which no new refit starts.
    pub cooldown_windows: usize,
}

/// Published output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Topic receiving accepted synthetic records.
    pub topic: String,
    /// Avro schema of a synthetic record, relative to the topology file. Every
    /// field must be a column of the training table.
    pub schema: PathBuf,
    /// Regenerations (new sampling seed) of a failing batch before it is quarantined.
    #[serde(default = "default_max_regenerations")]
    pub max_regenerations: usize,
    /// Hold every batch that passed the gate until a trusted approver signs
    /// its binder (`resynth approve`); meanwhile the engine keeps consuming,
    /// judging drift against the last approved model, and starts no refit.
    #[serde(default)]
    pub require_approval: bool,
    /// `avro` (default): one datum of `schema` per synthetic row. `fhir`:
    /// FHIR R4 JSON resources instead (a Patient per row, its Observations
    /// and Conditions, one resource per record keyed by the synthetic
    /// patient id), as `[output.fhir]` maps them; `schema` is then still the
    /// column contract `check` holds the training table to.
    #[serde(default)]
    pub format: crate::sink::fhir::OutputFormat,
    /// How a synthetic row becomes FHIR resources (with `format = "fhir"`).
    #[serde(default)]
    pub fhir: Option<crate::sink::fhir::FhirMapping>,
}

/// Evidence on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Directory for `audit.jsonl`, `reports/` and `models/`, relative to the
    /// working directory.
    pub dir: PathBuf,
    /// Anticipated recipient, for the Expert Determination inputs:
    /// `internal`, `partner` (under a data use agreement) or `public`.
    pub recipient: String,
    /// Public keys (SPKI PEM, relative to the topology file) whose approvals
    /// the engine and `binder verify` accept.
    pub approver_keys: Vec<PathBuf>,
}

/// Metrics endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// `host:port` for Prometheus `/metrics`; empty disables the endpoint.
    pub metrics_addr: String,
}

fn default_watermark_delay() -> u64 {
    60
}
fn default_idle_timeout() -> u64 {
    30
}
fn default_max_buffered_rows() -> usize {
    5_000_000
}
fn default_max_future_ms() -> u64 {
    86_400_000
}
/// Ten years: more is no sanity bound, and now + it stays far from overflow.
const MAX_FUTURE_MS_CEILING: u64 = 10 * 366 * 86_400_000;
fn default_table() -> String {
    "events".to_string()
}
fn default_min_rows() -> usize {
    200
}
fn default_max_regenerations() -> usize {
    2
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            generator: GeneratorKind::default(),
            stratify_by: None,
            min_stratum_rows: 100,
            entity_column: "patient_id".into(),
            id_columns: vec!["patient_id".into()],
            holdout_fraction: 0.5,
            synthetic_rows: 0,
            seed: 42,
        }
    }
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            alpha: 0.01,
            large_window_rows: 5000,
            floor_fraction: 0.5,
            ks_max: 0.15,
            tv_max: 0.1,
            psi_max: 0.2,
            js_max: 0.035,
            wasserstein_sigma_max: 0.4,
            null_rate_max: 0.05,
            unseen_max: 0.05,
            correlation_diff_max: 0.1,
            joint_max: 0.2,
            correlation_columns: vec![],
            joint_max_rows: 5000,
            bins: 20,
            top_k: 20,
            categorical_max_distinct: 10,
            segments: vec![],
            min_segment_rows: 200,
            min_drifting_columns: 1,
            persist_k: 2,
            persist_m: 3,
            clear_windows: 2,
            exit_score: 0.25,
            refit_min_rows: 200,
            cooldown_windows: 2,
        }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            dir: PathBuf::from("out"),
            recipient: "partner".into(),
            approver_keys: Vec::new(),
        }
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            metrics_addr: "127.0.0.1:9898".into(),
        }
    }
}

impl Topology {
    /// Reads, parses and validates a topology; schema paths become absolute
    /// (relative to the file) so the engine can run from any directory.
    pub fn load(path: &Path) -> Result<Topology, TopologyError> {
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut topology = Topology::parse(&text).map_err(|message| TopologyError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        if !path_is_empty(&topology.source.schema) {
            topology.source.schema = base.join(&topology.source.schema);
        }
        for s in &mut topology.sources {
            if !path_is_empty(&s.decode.schema) {
                s.decode.schema = base.join(&s.decode.schema);
            }
        }
        topology.output.schema = base.join(&topology.output.schema);
        for key in &mut topology.audit.approver_keys {
            *key = base.join(&*key);
        }
        topology.kafka.properties.rebase(base);
        let problems = topology.validate();
        if problems.is_empty() {
            Ok(topology)
        } else {
            Err(TopologyError::Invalid {
                path: path.to_path_buf(),
                problems,
            })
        }
    }

    /// Parses TOML text; unknown keys and missing fields are errors that name
    /// their line and key.
    pub fn parse(text: &str) -> Result<Topology, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The transactional id, defaulting from the topology name.
    pub fn transactional_id(&self) -> String {
        self.kafka
            .transactional_id
            .clone()
            .unwrap_or_else(|| format!("resynth-{}", self.name))
    }

    /// The consumer's static membership id (`kafka.group_instance_id`).
    pub fn group_instance_id(&self) -> String {
        self.kafka
            .group_instance_id
            .clone()
            .unwrap_or_else(|| self.transactional_id())
    }

    /// Every source with its defaults settled, in file order: the `[[sources]]`
    /// entries, or the one stream of a one-source topology (`kafka.source_topic`,
    /// `[source]`, named `window.table`).
    pub fn sources(&self) -> Vec<Source> {
        let k = &self.kafka;
        if self.sources.is_empty() {
            return vec![Source {
                name: self.window.table.clone(),
                kind: SourceKind::Stream,
                topic: k.source_topic.clone(),
                dead_letter_topic: k.dead_letter_topic.clone(),
                late_topic: k
                    .late_topic
                    .clone()
                    .unwrap_or_else(|| k.dead_letter_topic.clone()),
                key_field: None,
                decode: self.source.clone(),
                path: "source".into(),
            }];
        }
        self.sources
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let dead = e
                    .dead_letter_topic
                    .clone()
                    .unwrap_or_else(|| k.dead_letter_topic.clone());
                Source {
                    name: e.name.clone(),
                    kind: e.kind,
                    topic: e.topic.clone(),
                    late_topic: e
                        .late_topic
                        .clone()
                        .or_else(|| k.late_topic.clone())
                        .unwrap_or_else(|| dead.clone()),
                    dead_letter_topic: dead,
                    key_field: e.key_field.clone(),
                    decode: e.decode.clone(),
                    path: format!("sources[{i}]"),
                }
            })
            .collect()
    }

    /// The first stream source's topic: the topology's source in the places
    /// that name one (the privacy ledger's file, lineage's input dataset).
    pub fn primary_topic(&self) -> String {
        self.sources()
            .into_iter()
            .find(|s| s.kind == SourceKind::Stream)
            .map(|s| s.topic)
            .unwrap_or_default()
    }

    /// Problems with the source list: one shape or the other, unique names
    /// and topics, a key for each table, at least one stream.
    fn source_problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let k = &self.kafka;
        if !self.sources.is_empty() {
            if !k.source_topic.is_empty() {
                p.push("kafka.source_topic: not used when [[sources]] lists the sources; give each its topic there".into());
            }
            if !self.source.is_unset() {
                p.push("source: not used when [[sources]] lists the sources; give each its decode fields there".into());
            }
        } else if k.source_topic.trim().is_empty() {
            p.push("kafka.source_topic: must not be empty (or list [[sources]])".into());
        }
        let outputs = [
            Some(&k.dead_letter_topic),
            Some(&k.quarantine_topic),
            Some(&k.alerts_topic),
            Some(&self.output.topic),
            k.late_topic.as_ref(),
        ];
        let sources = self.sources();
        let mut names = std::collections::BTreeSet::new();
        let mut topics = std::collections::BTreeSet::new();
        let plain =
            |n: &str| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        for s in &sources {
            let at = &s.path;
            let topic_field = if self.sources.is_empty() {
                "kafka.source_topic".to_string()
            } else {
                format!("{at}.topic")
            };
            if !self.sources.is_empty() {
                if !plain(&s.name) {
                    p.push(format!("{at}.name: must be a plain SQL identifier (letters, digits, '_'); got {:?}", s.name));
                }
                if !names.insert(s.name.to_ascii_lowercase()) {
                    p.push(format!("{at}.name: {:?} names another source too", s.name));
                }
                if s.topic.trim().is_empty() {
                    p.push(format!("{topic_field}: must not be empty"));
                }
            }
            if !s.topic.is_empty() && !topics.insert(s.topic.clone()) {
                p.push(format!(
                    "{topic_field}: {:?} is the topic of another source too",
                    s.topic
                ));
            }
            let outs = sources
                .iter()
                .flat_map(|o| [&o.dead_letter_topic, &o.late_topic]);
            if !s.topic.is_empty()
                && (outputs.contains(&Some(&s.topic)) || outs.clone().any(|o| o == &s.topic))
            {
                p.push(format!(
                    "{topic_field}: {:?} is also used as an output topic; the engine would read its own output",
                    s.topic
                ));
            }
            if s.decode.event_time_field.is_empty() {
                p.push(format!("{at}.event_time_field: must not be empty"));
            }
            p.extend(s.decode.problems(at));
            if let Some(entry) = self.sources.iter().find(|e| e.name == s.name) {
                for (field, v) in [
                    ("dead_letter_topic", &entry.dead_letter_topic),
                    ("late_topic", &entry.late_topic),
                ] {
                    if v.as_deref().is_some_and(|t| t.trim().is_empty()) {
                        p.push(format!("{at}.{field}: must not be empty when given"));
                    }
                }
            }
            match (s.kind, &s.key_field) {
                (SourceKind::Table, None) => p.push(format!(
                    "{at}.key_field: a table needs the field that keys its state"
                )),
                (SourceKind::Table, Some(f)) if f.is_empty() => {
                    p.push(format!("{at}.key_field: must not be empty"))
                }
                (SourceKind::Stream, Some(_)) => p.push(format!(
                    "{at}.key_field: only a table has a key (kind = \"table\")"
                )),
                (SourceKind::Table, Some(_))
                    if self
                        .sources
                        .iter()
                        .any(|e| e.name == s.name && e.late_topic.is_some()) =>
                {
                    p.push(format!(
                        "{at}.late_topic: a table has no late events (it does not hold the watermark); remove it"
                    ))
                }
                _ => {}
            }
        }
        if !self.sources.is_empty() && !sources.iter().any(|s| s.kind == SourceKind::Stream) {
            p.push("sources: need at least one stream (kind = \"stream\"): only streams drive the windows".into());
        }
        p
    }

    /// Every value problem, each prefixed with its path (`window.size_secs: ...`).
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            p.push(format!(
                "name: must be non-empty and use only letters, digits, '-', '_', '.'; got {:?}",
                self.name
            ));
        }
        let k = &self.kafka;
        for (field, value) in [
            ("kafka.brokers", &k.brokers),
            ("kafka.group_id", &k.group_id),
            ("kafka.dead_letter_topic", &k.dead_letter_topic),
            ("kafka.quarantine_topic", &k.quarantine_topic),
            ("kafka.alerts_topic", &k.alerts_topic),
            ("output.topic", &self.output.topic),
        ] {
            if value.trim().is_empty() {
                p.push(format!("{field}: must not be empty"));
            }
        }
        p.extend(self.source_problems());
        p.extend(k.properties.problems());
        for key in k.properties.raw_keys() {
            if key.starts_with("transactional.")
                || key == "enable.auto.commit"
                || key == "isolation.level"
            {
                p.push(format!(
                    "kafka.properties.{key}: managed by resynth for exactly-once delivery; remove it"
                ));
            }
        }
        let w = &self.window;
        if w.size_secs == 0 {
            p.push("window.size_secs: must be > 0".into());
        }
        if let Some(slide) = w.slide_secs
            && (slide == 0 || slide > w.size_secs)
        {
            p.push(format!(
                "window.slide_secs: must be > 0 and ≤ size_secs ({}); got {slide}",
                w.size_secs
            ));
        }
        if w.min_rows_policy == MinRowsPolicy::MergeForward
            && w.slide_secs.is_some_and(|s| s != w.size_secs)
        {
            p.push(
                "window.min_rows_policy: merge_forward needs tumbling windows (slide_secs = size_secs); sliding windows already overlap".into(),
            );
        }
        if w.idle_timeout_secs == 0 {
            p.push("window.idle_timeout_secs: must be > 0".into());
        }
        if w.max_buffered_rows == 0 {
            p.push("window.max_buffered_rows: must be > 0".into());
        }
        if w.max_future_ms == 0 || w.max_future_ms > MAX_FUTURE_MS_CEILING {
            p.push(format!(
                "window.max_future_ms: must be > 0 and ≤ {MAX_FUTURE_MS_CEILING} (ten years); got {}",
                w.max_future_ms
            ));
        }
        if self.kafka.late_topic.as_deref().is_some_and(str::is_empty) {
            p.push("kafka.late_topic: must not be empty when given".into());
        }
        if w.table.is_empty()
            || !w
                .table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            p.push(format!(
                "window.table: must be a plain SQL identifier (letters, digits, '_'); got {:?}",
                w.table
            ));
        }
        if w.sql.trim().is_empty() {
            p.push("window.sql: must not be empty".into());
        }
        if w.min_rows < 4 {
            p.push(format!(
                "window.min_rows: must be ≥ 4 so train and holdout both have rows; got {}",
                w.min_rows
            ));
        }
        let m = &self.model;
        if m.entity_column.is_empty() {
            p.push("model.entity_column: must not be empty".into());
        }
        if !(m.holdout_fraction > 0.0 && m.holdout_fraction < 1.0) {
            p.push(format!(
                "model.holdout_fraction: must be in (0, 1); got {}",
                m.holdout_fraction
            ));
        }
        if let Some(cap) = self.budget.epsilon_cap
            && !(cap.is_finite() && cap >= 0.0)
        {
            p.push(format!(
                "budget.epsilon_cap: must be a finite number ≥ 0; got {cap}"
            ));
        }
        if let Some(delta) = self.budget.delta
            && !(delta > 0.0 && delta < 1.0)
        {
            p.push(format!("budget.delta: must be in (0, 1); got {delta}"));
        }
        p.extend(self.drift.validate());
        p.extend(self.gate.validate().into_iter().map(|e| prefix("gate", e)));
        p.extend(
            self.copula
                .validate()
                .into_iter()
                .map(|e| prefix("copula", e)),
        );
        p.extend(self.cart.validate().into_iter().map(|e| prefix("cart", e)));
        p.extend(self.lineage.validate());
        if !["internal", "partner", "public"].contains(&self.audit.recipient.as_str()) {
            p.push(format!(
                "audit.recipient: expected internal, partner or public; got {:?}",
                self.audit.recipient
            ));
        }
        p.extend(crate::sink::fhir::validate_output(
            self.output.format,
            self.output.fhir.as_ref(),
            &self.model.id_columns,
            &self.model.entity_column,
        ));
        if self.output.require_approval && self.audit.approver_keys.is_empty() {
            p.push(
                "output.require_approval: needs audit.approver_keys (the public keys whose approvals count)"
                    .into(),
            );
        }
        if self.telemetry.metrics_addr.is_empty() {
            // disabled: fine
        } else if self
            .telemetry
            .metrics_addr
            .parse::<std::net::SocketAddr>()
            .is_err()
        {
            p.push(format!(
                "telemetry.metrics_addr: expected host:port like 127.0.0.1:9898; got {:?}",
                self.telemetry.metrics_addr
            ));
        }
        p
    }
}

impl SourceConfig {
    /// Every problem with the format-specific settings, each with its path
    /// under `at` (`source`): the FHIR paths are parsed here, once, so a
    /// bad one stops the topology at load, listed with all the others.
    pub fn problems(&self, at: &str) -> Vec<String> {
        let mut p = Vec::new();
        let fhir_only = [
            ("resource_type", self.resource_type.is_some()),
            ("columns", !self.columns.is_empty()),
            ("status_path", self.status_path.is_some()),
            ("max_resource_bytes", self.max_resource_bytes.is_some()),
        ];
        match self.format {
            EventFormat::Avro | EventFormat::Json => {
                if path_is_empty(&self.schema) {
                    p.push(format!("{at}.schema: required for format avro and json"));
                }
                for (key, set) in fhir_only {
                    if set {
                        p.push(format!("{at}.{key}: only for format = \"fhir\""));
                    }
                }
            }
            EventFormat::Fhir => {
                if !path_is_empty(&self.schema) {
                    p.push(format!(
                        "{at}.schema: not used by format = \"fhir\" (the columns are the schema); remove it"
                    ));
                }
                p.extend(crate::schema::fhir::config_problems(self, at));
            }
        }
        p
    }
}

impl DriftConfig {
    /// Every problem with the drift settings, each with its path.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        for (field, v) in [
            ("drift.ks_max", self.ks_max),
            ("drift.tv_max", self.tv_max),
            ("drift.psi_max", self.psi_max),
            ("drift.js_max", self.js_max),
            ("drift.wasserstein_sigma_max", self.wasserstein_sigma_max),
            ("drift.null_rate_max", self.null_rate_max),
            ("drift.unseen_max", self.unseen_max),
            ("drift.correlation_diff_max", self.correlation_diff_max),
            ("drift.joint_max", self.joint_max),
            ("drift.exit_score", self.exit_score),
        ] {
            if !(v.is_finite() && v > 0.0) {
                p.push(format!("{field}: must be a positive number; got {v}"));
            }
        }
        for (field, v) in [
            ("drift.ks_max", self.ks_max),
            ("drift.tv_max", self.tv_max),
            ("drift.js_max", self.js_max),
            ("drift.null_rate_max", self.null_rate_max),
            ("drift.unseen_max", self.unseen_max),
        ] {
            if v > 1.0 {
                p.push(format!(
                    "{field}: must be ≤ 1 (it is a distance or share between distributions); got {v}"
                ));
            }
        }
        if self.correlation_diff_max > 2.0 {
            p.push(format!(
                "drift.correlation_diff_max: a change of correlation is at most 2; got {}",
                self.correlation_diff_max
            ));
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            p.push(format!(
                "drift.alpha: must be in (0, 1); got {}",
                self.alpha
            ));
        }
        if !(self.floor_fraction > 0.0 && self.floor_fraction <= 1.0) {
            p.push(format!(
                "drift.floor_fraction: must be in (0, 1]; got {}",
                self.floor_fraction
            ));
        }
        if self.exit_score.is_finite() && self.exit_score > self.floor_fraction {
            p.push(format!(
                "drift.exit_score: must be ≤ drift.floor_fraction ({}) so leaving a state needs less than entering it; got {}",
                self.floor_fraction, self.exit_score
            ));
        }
        if self.persist_m == 0
            || self.persist_k == 0
            || self.persist_k > self.persist_m
            || self.persist_m > MAX_PERSIST_M
        {
            p.push(format!(
                "drift.persist_k/persist_m: need 1 ≤ persist_k ≤ persist_m ≤ {MAX_PERSIST_M}; got {} of {}",
                self.persist_k, self.persist_m
            ));
        }
        for (field, v, min) in [
            ("drift.min_drifting_columns", self.min_drifting_columns, 1),
            ("drift.clear_windows", self.clear_windows, 1),
            ("drift.bins", self.bins, 2),
            ("drift.top_k", self.top_k, 1),
            ("drift.large_window_rows", self.large_window_rows, 1),
            ("drift.min_segment_rows", self.min_segment_rows, 20),
            ("drift.joint_max_rows", self.joint_max_rows, 100),
            ("drift.refit_min_rows", self.refit_min_rows, 4),
        ] {
            if v < min {
                p.push(format!("{field}: must be ≥ {min}; got {v}"));
            }
        }
        if self.bins > 1000 {
            p.push(format!("drift.bins: must be ≤ 1000; got {}", self.bins));
        }
        if self.categorical_max_distinct > self.top_k {
            p.push(format!(
                "drift.categorical_max_distinct: must be ≤ drift.top_k ({}) so every value of such a column is kept; got {}",
                self.top_k, self.categorical_max_distinct
            ));
        }
        for (field, list) in [
            ("drift.correlation_columns", &self.correlation_columns),
            ("drift.segments", &self.segments),
        ] {
            let mut seen = std::collections::BTreeSet::new();
            for c in list {
                if c.trim().is_empty() {
                    p.push(format!("{field}: column names must not be empty"));
                } else if !seen.insert(c) {
                    p.push(format!("{field}: {c:?} is listed twice"));
                }
            }
        }
        if self.correlation_columns.len() == 1 {
            p.push(
                "drift.correlation_columns: need at least two columns (or none for the default)"
                    .into(),
            );
        }
        p
    }
}

/// Problems from nested configs may or may not carry their section already.
fn prefix(section: &str, problem: String) -> String {
    if problem.starts_with(&format!("{section}.")) {
        problem
    } else {
        format!("{section}.{problem}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
[kafka]
brokers = "127.0.0.1:9092"
group_id = "g"
source_topic = "in"
dead_letter_topic = "dlq"
quarantine_topic = "q"
alerts_topic = "alerts"
[source]
format = "avro"
schema = "s.avsc"
event_time_field = "event_time"
[window]
size_secs = 60
sql = "SELECT * FROM events"
[output]
topic = "out"
schema = "o.avsc"
"#;

    #[test]
    fn minimal_topology_gets_documented_defaults() {
        let t = Topology::parse(MINIMAL).expect("parses");
        assert!(t.validate().is_empty(), "{:?}", t.validate());
        assert_eq!(t.window.watermark_delay_secs, 60);
        assert_eq!(t.model.holdout_fraction, 0.5);
        assert_eq!(t.transactional_id(), "resynth-t");
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let text = MINIMAL.replace("size_secs = 60", "size_secs = 60\nsize_mins = 1");
        let err = Topology::parse(&text).unwrap_err();
        assert!(err.contains("size_mins"), "{err}");
    }

    #[test]
    fn missing_field_is_named() {
        let text = MINIMAL.replace("group_id = \"g\"\n", "");
        let err = Topology::parse(&text).unwrap_err();
        assert!(err.contains("group_id"), "{err}");
    }

    #[test]
    fn every_value_problem_is_listed_with_its_path() {
        let text = MINIMAL
            .replace("size_secs = 60", "size_secs = 0")
            .replace("source_topic = \"in\"", "source_topic = \"out\"")
            .replace(
                "[output]",
                "[drift]\nks_max = 1.5\npersist_k = 4\n[model]\nholdout_fraction = 1.0\n[output]",
            );
        let t = Topology::parse(&text).expect("parses");
        let problems = t.validate();
        for path in [
            "window.size_secs",
            "kafka.source_topic",
            "drift.ks_max",
            "drift.persist_k",
            "model.holdout_fraction",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(path)),
                "{path} missing from {problems:?}"
            );
        }
    }

    /// Two streams and a table, in the `[[sources]]` shape.
    fn several() -> String {
        let head = MINIMAL.replace("source_topic = \"in\"\n", "").replace(
            "[source]\nformat = \"avro\"\nschema = \"s.avsc\"\nevent_time_field = \"event_time\"\n",
            "",
        );
        format!(
            "{head}
[[sources]]
name = \"labs\"
topic = \"ehr.labs\"
format = \"avro\"
schema = \"labs.avsc\"
event_time_field = \"event_time\"
[[sources]]
name = \"vitals\"
topic = \"ehr.vitals\"
dead_letter_topic = \"vitals.dlq\"
format = \"json\"
schema = \"vitals.avsc\"
event_time_field = \"event_time\"
[[sources]]
name = \"patients\"
kind = \"table\"
topic = \"ehr.patients\"
key_field = \"patient_id\"
format = \"avro\"
schema = \"patients.avsc\"
event_time_field = \"updated_at\"
"
        )
    }

    #[test]
    fn one_source_shape_is_one_stream_named_by_window_table() {
        let t = Topology::parse(MINIMAL).unwrap();
        let s = t.sources();
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].name.as_str(), s[0].kind, s[0].topic.as_str()),
            ("events", SourceKind::Stream, "in")
        );
        assert_eq!(
            (s[0].dead_letter_topic.as_str(), s[0].late_topic.as_str()),
            ("dlq", "dlq")
        );
        assert_eq!(t.primary_topic(), "in");
        // Serialised back, it has the same shape (the binder's config snapshot).
        let value = toml::Value::try_from(&t).unwrap();
        assert!(value.get("sources").is_none());
        assert_eq!(value["kafka"]["source_topic"].as_str(), Some("in"));
    }

    #[test]
    fn several_sources_parse_with_their_defaults() {
        let t = Topology::parse(&several()).expect("parses");
        assert!(t.validate().is_empty(), "{:?}", t.validate());
        let s = t.sources();
        let names: Vec<&str> = s.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["labs", "vitals", "patients"]);
        assert_eq!(s[1].decode.format, EventFormat::Json);
        assert_eq!(
            s[0].dead_letter_topic, "dlq",
            "kafka.dead_letter_topic by default"
        );
        assert_eq!(
            (s[1].dead_letter_topic.as_str(), s[1].late_topic.as_str()),
            ("vitals.dlq", "vitals.dlq")
        );
        assert_eq!(s[2].kind, SourceKind::Table);
        assert_eq!(s[2].key_field.as_deref(), Some("patient_id"));
        assert_eq!(t.primary_topic(), "ehr.labs");
        let value = toml::Value::try_from(&t).unwrap();
        assert!(
            value.get("source").is_none(),
            "no empty [source] written back"
        );
    }

    #[test]
    fn unknown_key_in_a_source_is_rejected() {
        let text = several().replace(
            "key_field = \"patient_id\"",
            "key_field = \"patient_id\"\nkey_feild = \"x\"",
        );
        let err = Topology::parse(&text).unwrap_err();
        assert!(err.contains("key_feild"), "{err}");
    }

    #[test]
    fn every_source_problem_is_listed_with_its_path() {
        let text = several()
            .replace("name = \"vitals\"", "name = \"labs\"")
            .replace("key_field = \"patient_id\"\n", "")
            .replace("topic = \"ehr.vitals\"", "topic = \"out\"")
            .replace(
                "event_time_field = \"updated_at\"",
                "event_time_field = \"\"",
            );
        let mut t = Topology::parse(&text).expect("parses");
        t.kafka.source_topic = "in".into();
        let problems = t.validate();
        for path in [
            "kafka.source_topic: not used",
            "sources[1].name",
            "sources[1].topic",
            "sources[2].key_field",
            "sources[2].event_time_field",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(path)),
                "{path} missing from {problems:?}"
            );
        }
        let streams_only_tables = several()
            .replace(
                "name = \"labs\"\ntopic",
                "name = \"labs\"\nkind = \"table\"\nkey_field = \"k\"\ntopic",
            )
            .replace(
                "name = \"vitals\"\ntopic",
                "name = \"vitals\"\nkind = \"table\"\nkey_field = \"k\"\ntopic",
            );
        let t = Topology::parse(&streams_only_tables).unwrap();
        assert!(
            t.validate()
                .iter()
                .any(|p| p.starts_with("sources: need at least one stream")),
            "{:?}",
            t.validate()
        );
        let late_table = several().replace(
            "key_field = \"patient_id\"",
            "key_field = \"patient_id\"\nlate_topic = \"patients.late\"",
        );
        let problems = Topology::parse(&late_table).unwrap().validate();
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("sources[2].late_topic: a table has no late events")),
            "{problems:?}"
        );
    }
}
