//! Drift detector calibration and speed, on simulator streams.
//!
//! ```sh
//! cargo run --release --example drift_bench              # everything
//! cargo run --release --example drift_bench -- noise 500 # false alarms only
//! cargo run --release --example drift_bench -- detect 100
//! cargo run --release --example drift_bench -- timing
//! ```
//!
//! (a) No drift: 500 windows of fresh patients per window size (200, 2k, 20k
//! rows): share of windows that drifted, WARN alerts and refits per window.
//! (b) Injected drift of threshold size — the size at which the detector's
//! own score (effect above noise, in units of the threshold) is 1 on the
//! population, found by bisection on 100k-row samples — in one column, in
//! the joint distribution with every marginal fixed, in one segment (sex = F),
//! and gradually (ramping to twice that size over 10 windows): share of runs
//! in DRIFT within 3 windows of the start, and the mean delay.
//! (c) Verdict time on a 100k-row × 30-column window.
//! Each figure is printed with its target.

use std::time::Instant;

use resynth::drift::evaluation::{
    Detection, detection, population_score, run_stream, threshold_size,
};
use resynth::drift::{ReferenceProfile, compare};
use resynth::source::simulator::{PopulationDrift, Simulator, SimulatorConfig};
use resynth::table::{Column, Table};
use resynth::topology::DriftConfig;

const SIZES: [usize; 3] = [200, 2_000, 20_000];
const START: usize = 4;

/// Topology drift settings under test: the defaults, segments by sex, and
/// any `--set key=value` overrides (TOML values, as in a topology's `[drift]`).
fn config() -> DriftConfig {
    static CONFIG: std::sync::OnceLock<DriftConfig> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let args: Vec<String> = std::env::args().collect();
            let mut text = String::from("segments = [\"sex\"]\n");
            for pair in args.windows(2).filter(|w| w[0] == "--set") {
                text.push_str(&pair[1]);
                text.push('\n');
            }
            let config: DriftConfig = toml::from_str(&text).expect("valid --set overrides");
            let problems = config.validate();
            assert!(problems.is_empty(), "{problems:?}");
            config
        })
        .clone()
}

fn sim() -> Simulator {
    Simulator::new(SimulatorConfig {
        patients: 0,
        ..Default::default()
    })
}

/// Size of `make(size)` whose population score (100k rows, noise ≈ 0) is 1.
fn threshold_size_of(
    make: &dyn Fn(f64) -> PopulationDrift,
    large: bool,
    column: &str,
    hi: f64,
) -> f64 {
    let sim = sim();
    let reference = sim.patient_table(0, 100_000, &PopulationDrift::None, 1);
    threshold_size(
        |size| {
            let window = sim.patient_table(START, 100_000, &make(size), 2);
            population_score(&reference, &window, &config(), column, large)
        },
        hi,
        12,
    )
}

fn noise(windows: usize) {
    println!("(a) no drift, {windows} windows of fresh patients each, reference = window 0");
    println!(
        "    rows   drifted windows   WARN alerts/window   refits/window (target ≤ 1%)   verdict ms"
    );
    for rows in SIZES {
        let sim = sim();
        let o = run_stream(&config(), windows, usize::MAX, |w| {
            sim.patient_table(w, rows, &PopulationDrift::None, 1000 + rows as u64)
        });
        let rate = |n: usize| 100.0 * n as f64 / o.windows as f64;
        println!(
            "    {rows:>6}   {:>6.2}%          {:>6.2}%              {:>6.2}% {}          {:.2}",
            rate(o.drifted_windows),
            rate(o.warn_alerts),
            rate(o.refits),
            if rate(o.refits) <= 1.0 {
                "ok"
            } else {
                "MISSED"
            },
            1000.0 * o.verdict_seconds / o.windows as f64
        );
    }
}

struct Kind {
    name: &'static str,
    /// Column label the threshold size is measured on.
    column: &'static str,
    make: Box<dyn Fn(f64) -> PopulationDrift>,
    /// Upper bound for the bisection.
    hi: f64,
    gradual: bool,
}

fn kinds() -> Vec<Kind> {
    vec![
        Kind {
            name: "single column (hba1c mean)",
            column: "hba1c",
            make: Box::new(|s| PopulationDrift::Shift {
                column: "hba1c".into(),
                size: s,
                start: START,
            }),
            hi: 2.0,
            gradual: false,
        },
        Kind {
            name: "single column (diagnosis mix)",
            column: "diagnosis_code",
            make: Box::new(|s| PopulationDrift::Shift {
                column: "diabetes".into(),
                size: s,
                start: START,
            }),
            hi: 4.0,
            gradual: false,
        },
        Kind {
            name: "joint, marginals fixed (glucose~hba1c)",
            column: "hba1c~glucose",
            make: Box::new(|s| PopulationDrift::Decouple {
                size: s,
                start: START,
            }),
            hi: 1.0,
            gradual: false,
        },
        Kind {
            name: "one segment (hba1c, sex=F)",
            column: "hba1c[sex=F]",
            make: Box::new(|s| PopulationDrift::Segment {
                column: "hba1c".into(),
                size: s,
                start: START,
                segment: "F".into(),
            }),
            hi: 2.0,
            gradual: false,
        },
        Kind {
            name: "gradual (ldl, to 2x over 10 windows)",
            column: "ldl",
            make: Box::new(|s| PopulationDrift::Shift {
                column: "ldl".into(),
                size: s,
                start: START,
            }),
            hi: 2.0,
            gradual: true,
        },
    ]
}

fn detect(runs: usize) {
    println!(
        "(b) injected drift of threshold size from window {START}; detection = state DRIFT (refit-eligible)"
    );
    println!(
        "    kind                                     rows    size   within 3 (target ≥ 95%)   mean delay   first WARN   early alarms"
    );
    for kind in kinds() {
        let small = threshold_size_of(&*kind.make, false, kind.column, kind.hi);
        let large = threshold_size_of(&*kind.make, true, kind.column, kind.hi);
        for rows in SIZES {
            let size = if rows >= config().large_window_rows {
                large
            } else {
                small
            };
            let drift = |multiple: f64| {
                if kind.gradual {
                    let PopulationDrift::Shift { column, .. } = (kind.make)(size) else {
                        unreachable!()
                    };
                    PopulationDrift::Gradual {
                        column,
                        size: 2.0 * size * multiple,
                        start: START,
                        ramp: 10,
                    }
                } else {
                    (kind.make)(size * multiple)
                }
            };
            // Gradual: counted from the start of the ramp; it reaches the
            // threshold size at delay 5, so "within 3" means delay ≤ 7.
            let within = if kind.gradual { 7 } else { 3 };
            let runs = if rows == 20_000 {
                runs.div_ceil(3)
            } else {
                runs
            };
            let sim = sim();
            let run = |multiple: f64| -> Detection {
                let drift = drift(multiple);
                let outcomes: Vec<_> = (0..runs)
                    .map(|r| {
                        run_stream(&config(), START + 12, START, |w| {
                            sim.patient_table(w, rows, &drift, 7_000 + 97 * r as u64)
                        })
                    })
                    .collect();
                detection(&outcomes, START, within)
            };
            let d = run(1.0);
            // Where threshold size is not caught reliably: the smallest
            // multiple of it that is.
            let mut caught = String::new();
            if d.rate < 0.95 {
                caught = "  (>=95% needs > 3x)".into();
                for multiple in [1.5, 2.0, 3.0] {
                    let m = run(multiple);
                    if m.rate >= 0.95 {
                        caught = format!(
                            "  (>=95% at {multiple}x: {:.1}%, delay {:.2})",
                            100.0 * m.rate,
                            m.mean_delay
                        );
                        break;
                    }
                }
            }
            println!(
                "    {:<40} {rows:>6}   {size:>5.3}   {:>6.1}% {:<6}              {:>5.2}        {:>5.2}        {:>5.1}%{caught}",
                kind.name,
                100.0 * d.rate,
                if d.rate >= 0.95 { "ok" } else { "MISSED" },
                d.mean_delay,
                d.mean_warn_delay,
                100.0 * d.early_alarms,
            );
        }
    }
    println!(
        "    (size: simulator units, ~1 = one standard deviation; diagnosis: 10 points of diabetes prevalence; joint: share of rows decoupled)"
    );
    println!(
        "    (gradual: ramps to twice the threshold size over 10 windows; delay from the ramp start, threshold size reached at delay 5; within = by delay 7)"
    );
}

/// 100k rows × 30 columns: 20 numeric (lab-like, correlated in pairs), 10 categorical.
fn wide(rows: usize, seed: u64) -> Table {
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, Normal};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let g = Normal::new(0.0, 1.0).unwrap();
    let mut columns = Vec::new();
    let mut previous: Vec<f64> = vec![0.0; rows];
    for c in 0..20 {
        let v: Vec<f64> = (0..rows)
            .map(|i| {
                let x = 0.6 * previous[i] + 0.8 * g.sample(&mut rng);
                ((100.0 + 15.0 * x) * 10.0).round() / 10.0
            })
            .collect();
        previous = v.iter().map(|x| (x - 100.0) / 15.0).collect();
        columns.push(Column::numeric(format!("n{c}"), v));
    }
    let labels: Vec<String> = (0..40).map(|k| format!("c{k}")).collect();
    for c in 0..10 {
        let k = 3 + 4 * c;
        let v: Vec<Option<&str>> = (0..rows)
            .map(|_| {
                let u: f64 = rng.random();
                Some(labels[((u * u) * k as f64) as usize].as_str())
            })
            .collect();
        columns.push(Column::categorical(format!("k{c}"), &v));
    }
    Table::new(columns)
}

fn timing() {
    println!(
        "(c) speed, 100k rows × 30 columns (20 numeric with 190 pairs + joint check, 10 categorical)"
    );
    let reference_table = wide(100_000, 1);
    let window = wide(100_000, 2);
    for (label, config) in [
        ("no segments", DriftConfig::default()),
        (
            "segments of k0 (3)",
            DriftConfig {
                segments: vec!["k0".into()],
                ..DriftConfig::default()
            },
        ),
    ] {
        let started = Instant::now();
        let reference = ReferenceProfile::build_with(&reference_table, &config);
        let build = started.elapsed().as_secs_f64();
        let mut best = f64::INFINITY;
        let mut tests = 0;
        for _ in 0..5 {
            let started = Instant::now();
            let v = compare(&reference, &window, &config);
            best = best.min(started.elapsed().as_secs_f64());
            tests = v.tests.len();
        }
        println!(
            "    {label:<20} verdict {best:.3} s (target ≤ 0.2 s) {}; {tests} tests; reference profile {build:.3} s",
            if best <= 0.2 { "ok" } else { "MISSED" },
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = |default: usize| args.get(1).and_then(|s| s.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str) {
        Some("noise") => noise(n(500)),
        Some("detect") => detect(n(100)),
        Some("timing") => timing(),
        _ => {
            timing();
            noise(500);
            detect(100);
        }
    }
}
