//! Drift detection: is the population in this window still the one the
//! deployed model was fitted on?
//!
//! A drift alert wakes someone up and a refit may spend privacy budget, so
//! the detector is built to fire on real shifts quickly and almost never on
//! noise. The pieces, each a small pure module (no I/O, no clock, so they are
//! tested directly and benchmarked in isolation — the engine does the rest):
//! - `profile` + `sketch`: the reference profile stored with each model and
//!   window profiles counted into the same bins;
//! - `column_tests`: per column, a significance test and effect sizes, with
//!   the method chosen by window size (tests for small, effects for large);
//! - `multiple`: Benjamini–Hochberg across every test of the window;
//! - `multivariate`: correlation change and a copula reconstruction check
//!   for shifts in the joint distribution with unchanged marginals;
//! - `segments`: the same column tests within segments (site, sex, …);
//! - `monitor`: the OK / WARN / DRIFT state machine and the refit decision;
//! - `evaluation`: the calibration harness (false alarms, detection delay).
//!
//! A test *drifts* only if it is significant after BH **and** its effect
//! clears a floor (`floor_fraction` × its threshold + its no-drift noise at
//! this sample size). A window drifts when at least `min_drifting_columns`
//! columns (counting segment columns, pairs and the joint check) drift.

pub mod column_tests;
pub mod evaluation;
pub mod monitor;
pub mod multiple;
pub mod multivariate;
pub mod profile;
pub mod segments;
pub mod sketch;

use serde::{Deserialize, Serialize};

pub use column_tests::{Effect, TestResult};
pub use monitor::{Decision, DriftMonitor, DriftState, MonitorSnapshot, WindowSignal};
pub use profile::{ColumnProfile, PROFILE_FORMAT, ReferenceProfile};

use crate::table::Table;
use crate::topology::DriftConfig;

/// The verdict for one window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DriftVerdict {
    pub rows: usize,
    pub reference_rows: usize,
    /// `small` (decided by test statistics) or `large` (by effect sizes).
    pub regime: String,
    /// Every test, in order: columns, correlations, joint, segments.
    pub tests: Vec<TestResult>,
    pub drifted: bool,
    /// Highest score among significant tests; 0 when none is significant.
    pub score: f64,
}

impl DriftVerdict {
    /// Drifting columns, one entry per column (`column[segment]` within a segment).
    pub fn drifting_columns(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in self.tests.iter().filter(|t| t.drifted) {
            let label = match &t.segment {
                Some(s) => format!("{}[{s}]", t.column),
                None => t.column.clone(),
            };
            if !out.contains(&label) {
                out.push(label);
            }
        }
        out
    }

    pub fn drifting_tests(&self) -> impl Iterator<Item = &TestResult> {
        self.tests.iter().filter(|t| t.drifted)
    }

    pub fn signal(&self) -> WindowSignal {
        WindowSignal {
            drifted: self.drifted,
            score: self.score,
            rows: self.rows,
        }
    }
}

/// Compares a window's training table with the deployed model's reference.
/// Columns missing from the window, or of another kind, count as drifted
/// (the schema itself moved); so does a reference from an older engine.
pub fn compare(reference: &ReferenceProfile, window: &Table, config: &DriftConfig) -> DriftVerdict {
    let rows = window.n_rows();
    let large = column_tests::is_large(rows as u64, config);
    let regime = if large { "large" } else { "small" };
    let mut tests = Vec::new();
    if reference.format < PROFILE_FORMAT {
        tests.push(column_tests::schema_change(
            "(reference)",
            None,
            "reference_outdated",
            rows as u64,
        ));
    }
    tests.extend(run_jobs(reference, window, config));
    let q = multiple::bh_adjust(&tests.iter().map(|t| t.p_value).collect::<Vec<_>>());
    for (t, q) in tests.iter_mut().zip(q) {
        t.decide(q, config.alpha, config.floor_fraction);
    }
    let score = tests
        .iter()
        .filter(|t| t.significant)
        .map(|t| t.score)
        .fold(0.0, f64::max);
    let mut verdict = DriftVerdict {
        rows,
        reference_rows: reference.rows,
        regime: regime.into(),
        tests,
        drifted: false,
        score,
    };
    verdict.drifted = verdict.drifting_columns().len() >= config.min_drifting_columns;
    verdict
}

/// One independent piece of a verdict.
enum Job<'a> {
    Column(&'a str, &'a ColumnProfile),
    Joint(&'a multivariate::JointProfile),
    Segment(&'a segments::SegmentProfile),
}

/// Rows from which a verdict's pieces are spread over threads.
const PARALLEL_ROWS: usize = 20_000;
/// Most threads one verdict uses.
const MAX_THREADS: usize = 4;

/// Runs every column, joint and segment test; on large windows the pieces
/// are shared out over a few threads (they are independent), and the
/// results keep the order of the reference whatever ran where.
fn run_jobs(reference: &ReferenceProfile, window: &Table, config: &DriftConfig) -> Vec<TestResult> {
    let mut jobs: Vec<Job<'_>> = reference
        .profiles
        .iter()
        .map(|(name, p)| Job::Column(name, p))
        .collect();
    jobs.extend(reference.joint.iter().map(Job::Joint));
    jobs.extend(reference.segments.iter().map(Job::Segment));
    let run = |job: &Job<'_>| {
        let mut out = Vec::new();
        match job {
            Job::Column(name, profile) => column_tests::column_tests(
                name,
                None,
                profile,
                window.column(name),
                config,
                &mut out,
            ),
            Job::Joint(joint) => joint.window_tests(&reference.profiles, window, config, &mut out),
            Job::Segment(segment) => segment.window_tests(window, config, &mut out),
        }
        out
    };
    let threads = if window.n_rows() >= PARALLEL_ROWS {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_THREADS)
    } else {
        1
    };
    if threads == 1 {
        return jobs.iter().flat_map(run).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(job) = jobs.get(i) else { break };
            done.push((i, run(job)));
        }
        done
    };
    let mut done = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut done = work();
        for h in helpers {
            done.extend(h.join().expect("drift tests do not panic"));
        }
        done
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().flat_map(|(_, t)| t).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Column;
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, Normal};

    fn cfg() -> DriftConfig {
        DriftConfig::default()
    }

    fn sample(n: usize, mean: f64, share_a: f64, seed: u64) -> Table {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let d = Normal::new(mean, 1.0).unwrap();
        let x: Vec<f64> = (0..n).map(|_| d.sample(&mut rng)).collect();
        let c: Vec<Option<&str>> = (0..n)
            .map(|_| {
                let u: f64 = rng.random();
                Some(if u < share_a {
                    "a"
                } else if u < 0.7 {
                    "b"
                } else {
                    "c"
                })
            })
            .collect();
        Table::new(vec![Column::numeric("x", x), Column::categorical("c", &c)])
    }

    #[test]
    fn same_population_does_not_drift_at_any_size() {
        for (n, seed) in [(200, 2), (2_000, 3), (50_000, 4)] {
            let reference = ReferenceProfile::build(&sample(n, 0.0, 0.3, 1));
            let v = compare(&reference, &sample(n, 0.0, 0.3, seed), &cfg());
            assert!(!v.drifted, "n={n}: {:?}", v.drifting_columns());
        }
    }

    #[test]
    fn a_half_sigma_shift_drifts_in_small_and_large_windows_with_the_right_method() {
        let reference = ReferenceProfile::build(&sample(2_000, 0.0, 0.3, 1));
        let small = compare(&reference, &sample(300, 0.5, 0.3, 2), &cfg());
        assert_eq!(small.drifting_columns(), vec!["x"]);
        let t = small.drifting_tests().next().unwrap();
        assert_eq!((t.test.as_str(), t.method.as_str()), ("ks", "ks"));
        // KS D between N(0,1) and N(0.5,1) is 2Φ(0.25) − 1 ≈ 0.1974 (closed form).
        assert!((t.statistic - 0.1974).abs() < 0.06, "{}", t.statistic);
        let large = compare(&reference, &sample(20_000, 0.5, 0.3, 3), &cfg());
        assert_eq!(large.drifting_columns(), vec!["x"]);
        let t = large.drifting_tests().next().unwrap();
        assert_eq!(t.test, "ks");
        assert!(["psi", "js", "wasserstein_sigma"].contains(&t.method.as_str()));
        // W1 between N(0,1) and N(0.5,1) is 0.5σ (closed form: the mean shift).
        let w1 = t
            .effects
            .iter()
            .find(|e| e.method == "wasserstein_sigma")
            .unwrap();
        assert!((w1.value - 0.5).abs() < 0.05, "{}", w1.value);
        // PSI of a δ = 0.5 normal shift is ≈ δ² = 0.25 (continuous limit; 20 bins a bit less).
        let psi = t.effects.iter().find(|e| e.method == "psi").unwrap();
        assert!((psi.value - 0.24).abs() < 0.04, "{}", psi.value);
        assert!(t.reason.contains("large window"), "{}", t.reason);
    }

    #[test]
    fn category_shift_and_unseen_categories_are_finite_and_caught() {
        let reference = ReferenceProfile::build(&sample(5_000, 0.0, 0.3, 1));
        let shifted = compare(&reference, &sample(5_000, 0.0, 0.5, 2), &cfg());
        assert_eq!(shifted.drifting_columns(), vec!["c"]);
        let mut window = sample(5_000, 0.0, 0.3, 3);
        let labels: Vec<Option<String>> = (0..5_000)
            .map(|i| {
                Some(if i % 5 == 0 {
                    "new".into()
                } else {
                    "a".to_string()
                })
            })
            .collect();
        window.columns[1] = Column::categorical("c", &labels);
        let v = compare(&reference, &window, &cfg());
        let t = v
            .drifting_tests()
            .find(|t| t.column == "c")
            .expect("c drifts");
        assert!(t.effects.iter().all(|e| e.value.is_finite()));
        let unseen = t
            .effects
            .iter()
            .find(|e| e.method == "unseen_share")
            .unwrap();
        assert!((unseen.value - 0.2).abs() < 1e-12);
    }

    #[test]
    fn missing_column_and_outdated_reference_count_as_drift() {
        let reference = ReferenceProfile::build(&sample(500, 0.0, 0.3, 1));
        let window = Table::new(vec![sample(500, 0.0, 0.3, 2).columns[0].clone()]);
        let v = compare(&reference, &window, &cfg());
        assert_eq!(v.drifting_columns(), vec!["c"]);
        let legacy: ReferenceProfile = serde_json::from_str(r#"{"rows": 3}"#).unwrap();
        assert!(compare(&legacy, &window, &cfg()).drifted);
    }

    #[test]
    fn a_shift_inside_one_segment_is_caught_per_segment() {
        // Half the rows are segment "a": the shift there is diluted overall.
        let build = |n: usize, shift: f64, seed: u64| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let g = Normal::new(0.0, 1.0).unwrap();
            let seg: Vec<Option<&str>> = (0..n)
                .map(|i| Some(if i % 2 == 0 { "a" } else { "b" }))
                .collect();
            let x: Vec<f64> = (0..n)
                .map(|i| g.sample(&mut rng) + if i % 2 == 0 { shift } else { 0.0 })
                .collect();
            let _ = rng.random::<f64>();
            Table::new(vec![
                Column::categorical("site", &seg),
                Column::numeric("x", x),
            ])
        };
        let config = DriftConfig {
            segments: vec!["site".into()],
            ..cfg()
        };
        let reference = ReferenceProfile::build_with(&build(4_000, 0.0, 1), &config);
        assert_eq!(reference.segments.len(), 2);
        let v = compare(&reference, &build(4_000, 0.5, 2), &config);
        assert!(
            v.drifting_columns().contains(&"x[site=a]".to_string()),
            "{:?}",
            v.drifting_columns()
        );
        assert!(!v.drifting_columns().contains(&"x[site=b]".to_string()));
    }
}
