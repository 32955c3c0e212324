//! Drift calibration on simulator streams, a fast version of
//! `examples/drift_bench.rs` (seconds in release mode): the detector almost
//! never refits on noise, and catches threshold-size changes within three
//! windows. Windows are fresh samples of the simulated population, the
//! hardest case for false alarms.

use resynth::drift::evaluation::{detection, population_score, run_stream, threshold_size};
use resynth::source::simulator::{PopulationDrift, Simulator, SimulatorConfig};
use resynth::topology::DriftConfig;

const START: usize = 4;

fn sim() -> Simulator {
    Simulator::new(SimulatorConfig {
        patients: 0,
        ..Default::default()
    })
}

fn config() -> DriftConfig {
    DriftConfig {
        segments: vec!["sex".into()],
        ..DriftConfig::default()
    }
}

/// False refits stay ≤ 1 % of windows with no drift, at every window size.
#[test]
fn no_drift_almost_never_refits() {
    let sim = sim();
    for (rows, windows) in [(200, 300), (2_000, 150), (20_000, 30)] {
        let o = run_stream(&config(), windows, usize::MAX, |w| {
            sim.patient_table(w, rows, &PopulationDrift::None, 11 + rows as u64)
        });
        assert!(
            o.refits as f64 <= 0.01 * windows as f64,
            "{rows} rows: {} refits in {windows} windows ({o:?})",
            o.refits
        );
        assert!(
            o.warn_alerts as f64 <= 0.05 * windows as f64,
            "{rows} rows: {} WARN alerts in {windows} windows",
            o.warn_alerts
        );
    }
}

/// Detection rate within 3 windows of a change whose population score is 1
/// (threshold size), over `runs` streams of `rows`-row windows.
fn detection_rate(
    make: &dyn Fn(f64) -> PopulationDrift,
    column: &str,
    rows: usize,
    runs: usize,
) -> f64 {
    let sim = sim();
    let large = rows >= config().large_window_rows;
    let reference = sim.patient_table(0, 40_000, &PopulationDrift::None, 1);
    let size = threshold_size(
        |s| {
            let window = sim.patient_table(START, 40_000, &make(s), 2);
            population_score(&reference, &window, &config(), column, large)
        },
        2.0,
        9,
    );
    let drift = make(size);
    let outcomes: Vec<_> = (0..runs)
        .map(|r| {
            run_stream(&config(), START + 2, START, |w| {
                sim.patient_table(w, rows, &drift, 500 + r as u64)
            })
        })
        .collect();
    detection(&outcomes, START, 3).rate
}

#[test]
fn threshold_size_changes_are_caught_within_three_windows() {
    let shift = |s: f64| PopulationDrift::Shift {
        column: "hba1c".into(),
        size: s,
        start: START,
    };
    let rate = detection_rate(&shift, "hba1c", 2_000, 30);
    assert!(rate >= 0.95, "hba1c mean shift, 2k rows: {rate}");
    let rate = detection_rate(&shift, "hba1c", 20_000, 10);
    assert!(rate >= 0.95, "hba1c mean shift, 20k rows: {rate}");
    // Joint: glucose stops following HbA1c in some rows; every marginal is unchanged.
    let decouple = |s: f64| PopulationDrift::Decouple {
        size: s,
        start: START,
    };
    let rate = detection_rate(&decouple, "hba1c~glucose", 2_000, 30);
    assert!(rate >= 0.95, "joint change, 2k rows: {rate}");
    // One segment: HbA1c shifts for women only.
    let segment = |s: f64| PopulationDrift::Segment {
        column: "hba1c".into(),
        size: s,
        start: START,
        segment: "F".into(),
    };
    let rate = detection_rate(&segment, "hba1c[sex=F]", 2_000, 30);
    assert!(rate >= 0.95, "segment change, 2k rows: {rate}");
}
