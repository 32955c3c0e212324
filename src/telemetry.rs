//! Metric names in one place, the Prometheus exporter, and tracing setup.
//!
//! Every stage reports through these names with a `topology` label, so one
//! dashboard and one set of alert rules cover every topology. Logs carry ids,
//! counts and scores only — never record contents.

use std::net::SocketAddr;

/// Source events read from Kafka.
pub const EVENTS_IN: &str = "resynth_events_in_total";
/// Events sent to the dead-letter topic, by `reason` (decode).
pub const DEAD_LETTERED: &str = "resynth_events_dead_lettered_total";
/// Too-late events (every window holding them finalised), by `topic` (the
/// source) and `policy` (`topic`: sent to the late topic; `drop`: dropped).
pub const EVENTS_LATE: &str = "resynth_events_late_total";
/// Events behind the watermark that still landed in an open window
/// (within `window.allowed_lateness_secs`).
pub const EVENTS_LATE_ACCEPTED: &str = "resynth_events_late_accepted_total";
/// Events buffered in open panes.
pub const BUFFERED_EVENTS: &str = "resynth_buffered_events";
/// Times the consumer paused partitions because `window.max_buffered_rows` was reached.
pub const BACKPRESSURE_PAUSES: &str = "resynth_backpressure_pauses_total";
/// Small windows merged into the next (`window.min_rows_policy = "merge_forward"`).
pub const WINDOWS_MERGED: &str = "resynth_windows_merged_total";
/// Windows closed, and skipped for too few rows.
pub const WINDOWS_CLOSED: &str = "resynth_windows_closed_total";
pub const WINDOWS_SKIPPED: &str = "resynth_windows_skipped_total";
/// Last window's drift effect per `column` (`col[segment=label]` within a
/// segment, `a~b` for a pair, `(joint)`) and `method` (ks, tv,
/// proportion_diff, psi, js, wasserstein_sigma, null_rate, unseen_share,
/// spearman_diff, joint).
pub const DRIFT_SCORE: &str = "resynth_drift_score";
/// 0 = OK, 1 = WARN, 2 = DRIFT.
pub const DRIFT_STATE: &str = "resynth_drift_state";
/// Seconds since the deployed model (and its reference) was deployed.
pub const DRIFT_SECONDS_SINCE_REFIT: &str = "resynth_drift_seconds_since_refit";
pub const REFITS: &str = "resynth_refits_total";
/// Refits refused because the privacy budget cap would be passed.
pub const REFITS_REFUSED: &str = "resynth_refits_refused_total";
/// ε booked in the privacy-budget ledger (basic composition).
pub const PRIVACY_BUDGET_SPENT: &str = "resynth_privacy_budget_epsilon";
/// Gate attempts by `result` (pass, fail).
pub const GATE_RESULTS: &str = "resynth_gate_results_total";
/// Failed operators by `operator`.
pub const GATE_OPERATOR_FAILURES: &str = "resynth_gate_operator_failures_total";
pub const BATCHES_PUBLISHED: &str = "resynth_batches_published_total";
pub const BATCHES_QUARANTINED: &str = "resynth_batches_quarantined_total";
pub const RECORDS_PUBLISHED: &str = "resynth_records_published_total";
/// Messages between the committed position and the partition's high watermark, by `partition`.
pub const CONSUMER_LAG: &str = "resynth_consumer_lag";
/// Kafka transactions committed and aborted.
pub const TRANSACTIONS: &str = "resynth_transactions_total";
/// Seconds spent per stage (sql, drift, fit, gate, publish).
pub const STAGE_SECONDS: &str = "resynth_stage_seconds";
/// OpenLineage events by `transport` (file, kafka, http) and `result` (ok, error).
pub const LINEAGE_EVENTS: &str = "resynth_lineage_events_total";

#[derive(Debug, thiserror::Error)]
#[error("cannot start the Prometheus endpoint on {addr}: {message}")]
pub struct TelemetryError {
    pub addr: String,
    pub message: String,
}

/// Starts `/metrics` on `addr` (needs a tokio runtime).
pub fn install_prometheus(addr: &str) -> Result<(), TelemetryError> {
    let err = |message: String| TelemetryError {
        addr: addr.to_string(),
        message,
    };
    let socket: SocketAddr = addr
        .parse()
        .map_err(|e: std::net::AddrParseError| err(e.to_string()))?;
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(socket)
        .install()
        .map_err(|e| err(e.to_string()))
}

/// Structured logs to stderr; `RUST_LOG` overrides the level.
pub fn init_tracing(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| ScrubbedStderr)
        .with_target(false)
        .try_init();
}

/// Stderr with every resolved secret (`topology::secrets`) redacted: a
/// library echoing a password in an error must not put it in the log.
/// The formatter writes one event per `write`, so a secret is never split.
struct ScrubbedStderr;

impl std::io::Write for ScrubbedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let clean = crate::topology::secrets::scrub(&text);
        std::io::stderr().write_all(clean.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
