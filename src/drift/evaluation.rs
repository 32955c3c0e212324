//! Calibration harness: how often the detector cries wolf, and how fast it
//! sees a real shift.
//!
//! Runs the full detector (reference profile, verdict, state machine, refit
//! with reference swap) over a stream of windows supplied by the caller —
//! the bench and the calibration test use the EHR simulator — and counts
//! what an on-call engineer would have seen. Pure: the caller supplies the
//! windows and keeps the clock.

use super::monitor::{DriftMonitor, DriftState};
use super::{ReferenceProfile, compare};
use crate::table::Table;
use crate::topology::DriftConfig;

/// What happened over one stream.
#[derive(Debug, Clone, Default)]
pub struct StreamOutcome {
    /// Windows judged (window 0 only builds the first reference).
    pub windows: usize,
    /// Windows whose verdict drifted.
    pub drifted_windows: usize,
    /// Transitions OK → WARN (each one an alert).
    pub warn_alerts: usize,
    /// Transitions into DRIFT (each one an alert).
    pub drift_alerts: usize,
    /// Refits asked for (each one swaps the reference).
    pub refits: usize,
    /// First judged window at or after `watch_from` in WARN or DRIFT / in DRIFT.
    pub first_warn: Option<usize>,
    pub first_drift: Option<usize>,
    /// Alerts (WARN or DRIFT entries) before `watch_from`.
    pub alerts_before_watch: usize,
    /// Seconds spent in `compare` (profiles and verdicts, not the stream).
    pub verdict_seconds: f64,
}

/// Runs `windows` judged windows after a reference built from `table(0)`.
/// A refit rebuilds the reference from the window that asked for it, as the
/// engine does once the refitted model is deployed.
pub fn run_stream(
    config: &DriftConfig,
    windows: usize,
    watch_from: usize,
    mut table: impl FnMut(usize) -> Table,
) -> StreamOutcome {
    let mut reference = ReferenceProfile::build_with(&table(0), config);
    let mut monitor = DriftMonitor::new(config);
    let mut out = StreamOutcome::default();
    for w in 1..=windows {
        let window = table(w);
        let started = std::time::Instant::now();
        let verdict = compare(&reference, &window, config);
        out.verdict_seconds += started.elapsed().as_secs_f64();
        let decision = monitor.observe(verdict.signal());
        out.windows += 1;
        out.drifted_windows += usize::from(verdict.drifted);
        if decision.changed() && decision.state != DriftState::Ok && w < watch_from {
            out.alerts_before_watch += 1;
        }
        if decision.changed() {
            match decision.state {
                DriftState::Warn => out.warn_alerts += 1,
                DriftState::Drift => out.drift_alerts += 1,
                DriftState::Ok => {}
            }
        }
        if w >= watch_from {
            if decision.state != DriftState::Ok && out.first_warn.is_none() {
                out.first_warn = Some(w);
            }
            if decision.state == DriftState::Drift && out.first_drift.is_none() {
                out.first_drift = Some(w);
            }
        }
        if decision.refit {
            out.refits += 1;
            reference = ReferenceProfile::build_with(&window, config);
            monitor.refitted();
        }
    }
    out
}

/// Detection over replicated streams with drift from window `start`.
#[derive(Debug, Clone, Default)]
pub struct Detection {
    pub runs: usize,
    /// Share of runs in DRIFT within `within` windows of the start.
    pub rate: f64,
    /// Mean windows from the start to DRIFT (1 = the first drifted window), over detected runs.
    pub mean_delay: f64,
    /// Same for the first WARN.
    pub mean_warn_delay: f64,
    /// Share of runs that raised WARN or DRIFT before the drift started.
    pub early_alarms: f64,
}

/// Summarises runs whose drift starts at window `start`.
pub fn detection(outcomes: &[StreamOutcome], start: usize, within: usize) -> Detection {
    let runs = outcomes.len();
    let delay = |w: Option<usize>| w.map(|w| w + 1 - start);
    let drift_delays: Vec<usize> = outcomes
        .iter()
        .filter_map(|o| delay(o.first_drift))
        .collect();
    let warn_delays: Vec<usize> = outcomes
        .iter()
        .filter_map(|o| delay(o.first_warn))
        .collect();
    let mean = |v: &[usize]| {
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<usize>() as f64 / v.len() as f64
        }
    };
    Detection {
        runs,
        rate: drift_delays.iter().filter(|&&d| d <= within).count() as f64 / runs.max(1) as f64,
        mean_delay: mean(&drift_delays),
        mean_warn_delay: mean(&warn_delays),
        early_alarms: outcomes
            .iter()
            .filter(|o| o.alerts_before_watch > 0)
            .count() as f64
            / runs.max(1) as f64,
    }
}

/// The detector's score for the test labelled `column` (`col`, `col[seg=x]`,
/// `a~b`, `(joint)`; null-rate tests excluded) of `window` against a
/// reference built from `reference`, with small-window measures or, when
/// `large`, large-window ones. On population-sized samples the noise is
/// negligible, so this is the size of a change in units of its threshold.
pub fn population_score(
    reference: &Table,
    window: &Table,
    config: &DriftConfig,
    column: &str,
    large: bool,
) -> f64 {
    let config = DriftConfig {
        large_window_rows: if large { 1 } else { usize::MAX },
        joint_max_rows: usize::MAX,
        ..config.clone()
    };
    let reference = ReferenceProfile::build_with(reference, &config);
    compare(&reference, window, &config)
        .tests
        .iter()
        .filter(|t| t.aspect != "null_rate")
        .filter(|t| match &t.segment {
            Some(s) => format!("{}[{s}]", t.column) == column,
            None => t.column == column,
        })
        .map(|t| t.score)
        .fold(f64::NEG_INFINITY, f64::max)
}

/// The size in (0, `hi`) at which `score(size)` (increasing) reaches 1, by bisection.
pub fn threshold_size(score: impl Fn(f64) -> f64, hi: f64, steps: usize) -> f64 {
    let (mut lo, mut hi) = (0.0, hi);
    for _ in 0..steps {
        let mid = 0.5 * (lo + hi);
        if score(mid) < 1.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}
