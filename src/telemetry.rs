//! Metric names in one place, the Prometheus exporter, and tracing setup.
//!
//! Every stage reports through these names with a `topology` label, so one
//! dashboard and one set of alert rules cover every topology. Logs carry ids,
//! counts and scores only — never record contents.

use std::net::SocketAddr;

/// Source events read from Kafka.
pub const EVENTS_IN: &str = "resynth_events_in_total";
/// Events sent to the dead-letter topic, by `reason` (`decode`, or
/// `event_time_future` for events beyond `window.max_future_ms`).
pub const DEAD_LETTERED: &str = "resynth_events_dead_lettered_total";
/// Dead letters and late events whose payload was cut to fit their topic's
/// `max.message.bytes` (original size and SHA-256 in headers), by `topic`.
pub const DEAD_LETTERS_TRUNCATED: &str = "resynth_dead_letters_truncated_total";
/// Too-late events (every window holding them finalised), by `topic` (the
/// source) and `policy` (`topic`: sent to the late topic; `drop`: dropped).
pub const EVENTS_LATE: &str = "resynth_events_late_total";
/// FHIR versions and withdrawals (`entered-in-error`) that arrived after
/// their window was finalised, by source `topic`; also counted in
/// [`EVENTS_LATE`] and routed like any late event.
pub const FHIR_LATE_REPLACEMENTS: &str = "resynth_fhir_late_replacements_total";
/// Keys held by a table source's state (`source`), after each catch-up
/// with its topic.
pub const TABLE_KEYS: &str = "resynth_table_keys";
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
/// Bucket bounds of [`STAGE_SECONDS`]: from a publish (milliseconds) to a
/// gate with regenerations on a large window (about a minute).
pub const STAGE_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// OpenLineage events by `transport` (file, kafka, http) and `result` (ok, error).
pub const LINEAGE_EVENTS: &str = "resynth_lineage_events_total";
/// The privacy-budget cap (`budget.epsilon_cap`); absent without a cap.
pub const PRIVACY_BUDGET_CAP: &str = "resynth_privacy_budget_epsilon_cap";
/// Messages between the read position and the partition's high watermark
/// (cached from fetches, refreshed every few seconds), by `partition`:
/// how far the engine is behind the source, open windows aside.
pub const CONSUMER_READ_LAG: &str = "resynth_consumer_read_lag";
/// Unix time of the last poll that returned without a client error.
pub const LAST_POLL: &str = "resynth_last_poll_timestamp_seconds";
/// Unix time of the last committed Kafka transaction.
pub const LAST_COMMIT: &str = "resynth_last_commit_timestamp_seconds";
/// The longest a live stream should go between window closes: window slide
/// (or size) + watermark delay + allowed lateness, in seconds.
pub const WINDOW_CLOSE_INTERVAL: &str = "resynth_window_close_interval_seconds";
/// 1 while `/readyz` says ready for this topology, else 0.
pub const READY: &str = "resynth_ready";
/// Consecutive windows in DRIFT since the last published batch.
pub const DRIFT_UNRESOLVED_WINDOWS: &str = "resynth_drift_unresolved_windows";
/// Always 1, labelled with `version` and `commit` of the running binary.
pub const BUILD_INFO: &str = "resynth_build_info";

/// Every metric the engine exports, as Prometheus names them (histograms
/// add `_bucket`, `_sum` and `_count`): the dashboard and alert tests check
/// their expressions against this list.
pub const CATALOGUE: &[&str] = &[
    EVENTS_IN,
    DEAD_LETTERED,
    DEAD_LETTERS_TRUNCATED,
    EVENTS_LATE,
    EVENTS_LATE_ACCEPTED,
    FHIR_LATE_REPLACEMENTS,
    TABLE_KEYS,
    BUFFERED_EVENTS,
    BACKPRESSURE_PAUSES,
    WINDOWS_MERGED,
    WINDOWS_CLOSED,
    WINDOWS_SKIPPED,
    DRIFT_SCORE,
    DRIFT_STATE,
    DRIFT_SECONDS_SINCE_REFIT,
    REFITS,
    REFITS_REFUSED,
    PRIVACY_BUDGET_SPENT,
    GATE_RESULTS,
    GATE_OPERATOR_FAILURES,
    BATCHES_PUBLISHED,
    BATCHES_QUARANTINED,
    RECORDS_PUBLISHED,
    CONSUMER_LAG,
    TRANSACTIONS,
    STAGE_SECONDS,
    LINEAGE_EVENTS,
    PRIVACY_BUDGET_CAP,
    CONSUMER_READ_LAG,
    LAST_POLL,
    LAST_COMMIT,
    WINDOW_CLOSE_INTERVAL,
    READY,
    DRIFT_UNRESOLVED_WINDOWS,
    BUILD_INFO,
];

/// The version and build commit, as `resynth --version` prints them.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("RESYNTH_BUILD_COMMIT"),
    ")"
);

#[derive(Debug, thiserror::Error)]
#[error("cannot start the Prometheus endpoint on {addr}: {message}")]
pub struct TelemetryError {
    pub addr: String,
    pub message: String,
}

/// Installs the Prometheus recorder and serves `/metrics`, `/livez` and
/// `/readyz` on `addr` (see [`crate::health`]); once per process. The
/// exporter's own listener cannot serve extra paths, so the recorder is
/// installed bare and rendered by our listener.
pub fn install_prometheus(addr: &str) -> Result<(), TelemetryError> {
    let err = |message: String| TelemetryError {
        addr: addr.to_string(),
        message,
    };
    let socket: SocketAddr = addr
        .parse()
        .map_err(|e: std::net::AddrParseError| err(e.to_string()))?;
    // Bind first: a taken port leaves no recorder half-installed.
    let listener = std::net::TcpListener::bind(socket).map_err(|e| err(e.to_string()))?;
    // Buckets, not the exporter's default summaries: histograms add up across
    // instances and give the dashboard its p95 per stage.
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(STAGE_SECONDS.to_string()),
            STAGE_BUCKETS,
        )
        .map_err(|e| err(e.to_string()))?
        .install_recorder()
        .map_err(|e| err(e.to_string()))?;
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"),
                    "commit" => env!("RESYNTH_BUILD_COMMIT"))
    .set(1.0);
    // Histograms need upkeep; the exporter's listener did it every 5 s.
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("resynth-metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(5));
                upkeep.run_upkeep();
            }
        })
        .map_err(|e| err(e.to_string()))?;
    crate::health::serve(
        listener,
        crate::health::global(),
        std::sync::Arc::new(move || handle.render()),
    );
    Ok(())
}

/// Exports the counters alert rules take `increase()` of at zero, so the
/// first quarantine, abort or refused refit of a run is an increase
/// Prometheus can see (a series born at 1 has no earlier sample to rise from).
pub fn zero_counters(topology: &str) {
    let t = || topology.to_string();
    for name in [
        EVENTS_IN,
        WINDOWS_CLOSED,
        REFITS,
        REFITS_REFUSED,
        BATCHES_PUBLISHED,
        BATCHES_QUARANTINED,
        RECORDS_PUBLISHED,
    ] {
        metrics::counter!(name, "topology" => t()).increment(0);
    }
    for reason in ["decode", "event_time_future"] {
        metrics::counter!(DEAD_LETTERED, "topology" => t(), "reason" => reason).increment(0);
    }
    for result in ["committed", "aborted"] {
        metrics::counter!(TRANSACTIONS, "topology" => t(), "result" => result).increment(0);
    }
    for result in ["pass", "fail"] {
        metrics::counter!(GATE_RESULTS, "topology" => t(), "result" => result).increment(0);
    }
    for operator in crate::gate::operator::ALL {
        metrics::counter!(GATE_OPERATOR_FAILURES, "topology" => t(), "operator" => operator)
            .increment(0);
    }
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
