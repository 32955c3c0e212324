//! Behaviour of `evaluate`: each operator passes on data drawn from the same
//! distribution and fails on a clearly shifted or copied batch, with the
//! thresholds taken from the config; bad input is an error, never a panic.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::table::{Column, ColumnValues};

/// Standard normal by Box–Muller (keeps the dependency list short).
fn normal(rng: &mut StdRng) -> f64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// Knobs to distort a draw from the "population".
#[derive(Default, Clone, Copy)]
struct Distortion {
    age_shift: f64,
    independent_bmi: bool,
    negate_bmi: bool,
    sex_f_share: Option<f64>,
}

/// A mixed table: age, bmi (Spearman ≈ 0.6 with age), lab with ~10 %
/// missing, sex, and a race column with missing values.
fn population(n: usize, seed: u64, d: Distortion) -> Table {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut age, mut bmi, mut lab) = (Vec::new(), Vec::new(), Vec::new());
    let (mut sex, mut race) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let z = normal(&mut rng);
        age.push(50.0 + 15.0 * z + 15.0 * d.age_shift);
        let coupled = if d.independent_bmi {
            normal(&mut rng)
        } else {
            0.7 * z + 0.7 * normal(&mut rng)
        };
        bmi.push(27.0 + 4.0 * if d.negate_bmi { -coupled } else { coupled });
        lab.push(if rng.random_bool(0.1) {
            f64::NAN
        } else {
            (normal(&mut rng) * 0.3).exp()
        });
        sex.push(Some(if rng.random_bool(d.sex_f_share.unwrap_or(0.5)) {
            "F"
        } else {
            "M"
        }));
        let u: f64 = rng.random();
        race.push(match u {
            u if u < 0.6 => Some("white"),
            u if u < 0.8 => Some("black"),
            u if u < 0.95 => Some("asian"),
            _ => None,
        });
    }
    Table::new(vec![
        Column::numeric("age", age),
        Column::numeric("bmi", bmi),
        Column::numeric("lab", lab),
        Column::categorical("sex", &sex),
        Column::categorical("race", &race),
    ])
}

fn trio(n: usize, d: Distortion) -> (Table, Table, Table) {
    (
        population(n, 1, Distortion::default()),
        population(n, 2, Distortion::default()),
        population(n, 3, d),
    )
}

fn run(r: &Table, h: &Table, s: &Table) -> GateReport {
    let report =
        evaluate(r, h, s, &GateConfig::default(), &Roles::default(), 42).expect("gate runs");
    for x in &report.results {
        assert!(x.statistic.is_finite() && x.threshold.is_finite(), "{x:?}");
        assert!(x.noise_floor.is_none_or(f64::is_finite), "{x:?}");
    }
    report
}

fn find<'a>(report: &'a GateReport, op: &str, columns: &[&str]) -> &'a OperatorResult {
    report
        .results
        .iter()
        .find(|r| r.operator == op && r.columns == columns)
        .unwrap_or_else(|| panic!("no {op} result for {columns:?} in {report:#?}"))
}

#[test]
fn same_distribution_passes_every_operator() {
    let (r, h, s) = trio(1500, Distortion::default());
    let report = run(&r, &h, &s);
    assert!(report.passed, "{:#?}", report.failures());
    // One result per numeric column (KS, W), per categorical (TV), the one
    // strongly correlated pair, and the two privacy operators.
    let count = |op: &str| report.results.iter().filter(|x| x.operator == op).count();
    assert_eq!(count(operator::KS), 3);
    assert_eq!(count(operator::WASSERSTEIN_IQR), 3);
    assert_eq!(count(operator::TOTAL_VARIATION), 2);
    assert_eq!(count(operator::SPEARMAN_DIFF), 1);
    assert_eq!(count(operator::EXACT_MATCH), 1);
    assert_eq!(count(operator::DCR_SHARE), 1);
    let ks = find(&report, operator::KS, &["age"]);
    assert!(ks.noise_floor.is_some_and(|f| f < 0.1));
    assert_eq!(ks.threshold, 0.10);
}

#[test]
fn shifted_numeric_column_fails_ks_and_wasserstein_only_there() {
    let shift = Distortion {
        age_shift: 0.5,
        ..Default::default()
    };
    let (r, h, s) = trio(1500, shift);
    let report = run(&r, &h, &s);
    assert!(!find(&report, operator::KS, &["age"]).passed);
    assert!(!find(&report, operator::WASSERSTEIN_IQR, &["age"]).passed);
    assert!(find(&report, operator::KS, &["bmi"]).passed);
    assert!(find(&report, operator::TOTAL_VARIATION, &["sex"]).passed);
    // A looser config lets the same batch through the KS check: thresholds
    // come from the config.
    let loose = GateConfig {
        ks_max: 0.5,
        ..GateConfig::default()
    };
    let report = evaluate(&r, &h, &s, &loose, &Roles::default(), 42).unwrap();
    assert!(find(&report, operator::KS, &["age"]).passed);
}

#[test]
fn shifted_category_fails_total_variation() {
    let d = Distortion {
        sex_f_share: Some(0.7),
        ..Default::default()
    };
    let (r, h, s) = trio(1500, d);
    let report = run(&r, &h, &s);
    let tv = find(&report, operator::TOTAL_VARIATION, &["sex"]);
    assert!(!tv.passed);
    assert!((tv.statistic - 0.2).abs() < 0.03, "{tv:?}");
    assert!(find(&report, operator::TOTAL_VARIATION, &["race"]).passed);
}

#[test]
fn broken_or_flipped_correlation_fails() {
    let d = Distortion {
        independent_bmi: true,
        ..Default::default()
    };
    let (r, h, s) = trio(1500, d);
    let pair = find(&run(&r, &h, &s), operator::SPEARMAN_DIFF, &["age", "bmi"]).clone();
    assert!(!pair.passed);
    assert!(pair.statistic > 0.4);
    // A sign flip fails even when the allowed |Δr| is at its maximum.
    let d = Distortion {
        negate_bmi: true,
        ..Default::default()
    };
    let s = population(1500, 3, d);
    let any_change = GateConfig {
        correlation_diff_max: 2.0,
        ..GateConfig::default()
    };
    let report = evaluate(&r, &h, &s, &any_change, &Roles::default(), 42).unwrap();
    let pair = find(&report, operator::SPEARMAN_DIFF, &["age", "bmi"]);
    assert!(!pair.passed && pair.statistic <= 2.0, "{pair:?}");
    assert!(pair.explanation.contains("sign flipped"));
}

#[test]
fn copy_of_training_fails_exact_match_and_dcr() {
    let (r, h, _) = trio(1500, Distortion::default());
    let report = run(&r, &h, &r);
    let exact = find(&report, operator::EXACT_MATCH, &[]);
    assert!(!exact.passed);
    assert_eq!(exact.statistic, 1.0);
    assert_eq!(exact.noise_floor, Some(0.0));
    assert!((exact.threshold - 0.001).abs() < 1e-12);
    let dcr = find(&report, operator::DCR_SHARE, &[]);
    assert!(!dcr.passed);
    assert_eq!(dcr.statistic, 1.0);
    // Fidelity alone would have let it through.
    assert_eq!(
        report.failed_operators(),
        vec![operator::EXACT_MATCH, operator::DCR_SHARE]
    );
}

#[test]
fn partial_copy_is_caught_by_exact_match_margin() {
    let (r, h, mut s) = trio(1500, Distortion::default());
    // Copy 1 % of training rows (15 of 1500) into the synthetic batch.
    const COPIED: usize = 15;
    let copied = r.take(&(0..COPIED).collect::<Vec<_>>());
    for (dst, src) in s.columns.iter_mut().zip(&copied.columns) {
        match (&mut dst.values, &src.values) {
            (ColumnValues::Numeric(d), ColumnValues::Numeric(c)) => d[..COPIED].copy_from_slice(c),
            _ => {
                for row in 0..COPIED {
                    let label = src.label(row).map(str::to_string);
                    set_label(dst, row, label);
                }
            }
        }
    }
    let report = run(&r, &h, &s);
    let exact = find(&report, operator::EXACT_MATCH, &[]);
    assert!(!exact.passed);
    assert!((exact.statistic - 0.01).abs() < 1e-12);
    // Fidelity cannot see a 1 % copy; only the privacy operator fails.
    assert_eq!(report.failed_operators(), vec![operator::EXACT_MATCH]);
}

fn set_label(column: &mut Column, row: usize, label: Option<String>) {
    if let ColumnValues::Categorical { codes, dictionary } = &mut column.values {
        codes[row] = match label {
            None => crate::table::NULL_CODE,
            Some(l) => match dictionary.iter().position(|d| *d == l) {
                Some(c) => c as u32,
                None => {
                    dictionary.push(l);
                    dictionary.len() as u32 - 1
                }
            },
        };
    }
}

#[test]
fn dcr_subsamples_synthetic_and_balances_reference_sizes() {
    let r = population(4000, 1, Distortion::default());
    let h = population(1000, 2, Distortion::default());
    let s = population(3000, 3, Distortion::default());
    let config = GateConfig {
        max_dcr_synthetic_rows: 500,
        ..GateConfig::default()
    };
    let report = evaluate(&r, &h, &s, &config, &Roles::default(), 9).unwrap();
    let dcr = find(&report, operator::DCR_SHARE, &[]);
    // n = 500 → 0.5 + 1.645·sqrt(0.25/500) = 0.5367828...
    assert!((dcr.threshold - 0.536_782_8).abs() < 1e-6, "{dcr:?}");
    assert!(dcr.passed, "{dcr:?}");
    assert!(dcr.explanation.contains("subsampled from 3000"));
    assert!(dcr.explanation.contains("subsampled to 1000"));
    // Same seed, same report.
    assert_eq!(
        evaluate(&r, &h, &s, &config, &Roles::default(), 9).unwrap(),
        report
    );
}

#[test]
fn all_null_columns_pass_and_vanished_columns_fail() {
    let (mut r, mut h, mut s) = trio(500, Distortion::default());
    for t in [&mut r, &mut h, &mut s] {
        t.columns
            .push(Column::numeric("empty", vec![f64::NAN; 500]));
    }
    // The synthetic batch lost every lab value.
    if let Some(c) = s.columns.iter_mut().find(|c| c.name == "lab") {
        c.values = ColumnValues::Numeric(vec![f64::NAN; 500]);
    }
    let report = run(&r, &h, &s);
    let empty = find(&report, operator::KS, &["empty"]);
    assert!(empty.passed && empty.statistic == 0.0);
    assert!(empty.explanation.contains("no values"));
    assert!(find(&report, operator::WASSERSTEIN_IQR, &["empty"]).passed);
    let lab = find(&report, operator::KS, &["lab"]);
    assert!(!lab.passed && lab.statistic == 1.0);
    assert!(!find(&report, operator::WASSERSTEIN_IQR, &["lab"]).passed);
}

#[test]
fn bad_input_is_an_error_naming_the_problem() {
    let (r, h, s) = trio(50, Distortion::default());
    let cfg = GateConfig::default();

    let mut missing = s.clone();
    missing.columns.retain(|c| c.name != "bmi");
    let err = evaluate(&r, &h, &missing, &cfg, &Roles::default(), 0).unwrap_err();
    assert!(
        matches!(&err, GateError::MissingColumn { table: "synthetic", column, .. } if column == "bmi")
    );
    assert!(err.to_string().contains("expected numeric"), "{err}");

    let mut extra = h.clone();
    extra.columns.push(Column::numeric("zip", vec![0.0; 50]));
    assert!(matches!(
        evaluate(&r, &extra, &s, &cfg, &Roles::default(), 0),
        Err(GateError::UnexpectedColumn {
            table: "holdout",
            ..
        })
    ));

    let mut kind = s.clone();
    kind.columns[0] = Column::categorical("age", &vec![Some("old"); 50]);
    assert!(matches!(
        evaluate(&r, &h, &kind, &cfg, &Roles::default(), 0),
        Err(GateError::KindMismatch {
            expected: "numeric",
            found: "categorical",
            ..
        })
    ));

    let empty = Table::new(
        r.columns
            .iter()
            .map(|c| Column::numeric(c.name.clone(), vec![]))
            .collect(),
    );
    assert!(matches!(
        evaluate(&r, &h, &empty, &cfg, &Roles::default(), 0),
        Err(GateError::Empty {
            table: "synthetic",
            what: "rows"
        })
    ));
    assert!(matches!(
        evaluate(&Table::default(), &h, &s, &cfg, &Roles::default(), 0),
        Err(GateError::Empty {
            table: "training",
            what: "columns"
        })
    ));

    let mut ragged = s.clone();
    ragged.columns[1] = Column::numeric("bmi", vec![1.0; 10]);
    assert!(matches!(
        evaluate(&r, &h, &ragged, &cfg, &Roles::default(), 0),
        Err(GateError::RaggedColumn {
            expected: 50,
            found: 10,
            ..
        })
    ));

    let mut bad_code = s.clone();
    if let ColumnValues::Categorical { codes, .. } = &mut bad_code.columns[3].values {
        codes[7] = 99;
    }
    assert!(matches!(
        evaluate(&r, &h, &bad_code, &cfg, &Roles::default(), 0),
        Err(GateError::InvalidCode {
            row: 7,
            code: 99,
            ..
        })
    ));

    let mut dup = r.clone();
    dup.columns.push(dup.columns[0].clone());
    assert!(matches!(
        evaluate(&dup, &h, &s, &cfg, &Roles::default(), 0),
        Err(GateError::DuplicateColumn {
            table: "training",
            ..
        })
    ));

    let bad_cfg = GateConfig {
        ks_max: 0.0,
        tv_max: 2.0,
        ..GateConfig::default()
    };
    match evaluate(&r, &h, &s, &bad_cfg, &Roles::default(), 0) {
        Err(GateError::InvalidConfig { problems }) => assert_eq!(problems.len(), 2),
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

#[test]
fn constant_and_single_row_inputs_do_not_produce_nan() {
    let t = |age: Vec<f64>, sex: &[Option<&str>]| {
        Table::new(vec![
            Column::numeric("age", age),
            Column::categorical("sex", sex),
        ])
    };
    let r = t(vec![5.0, 5.0, 5.0], &[Some("F"), Some("F"), Some("F")]);
    let h = t(vec![5.0], &[Some("F")]);
    let s = t(vec![6.0, 5.0], &[None, Some("M")]);
    let report = run(&r, &h, &s);
    let w = find(&report, operator::WASSERSTEIN_IQR, &["age"]);
    assert!(!w.passed && (w.statistic - 0.5).abs() < 1e-12, "{w:?}");
    assert!(w.explanation.contains("column units"));
}
