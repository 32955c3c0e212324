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
    assert_eq!(count(operator::NNDR_SHARE), 1);
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
    // Relabelling the 1500 copies among 3000 records moves the share by
    // about ±0.0183 (√(0.25·2/1500)); at α = 0.004 the allowance stays far
    // below the copy's share of 1.
    assert_eq!(exact.effect_limit, 0.001);
    assert!(
        exact.noise_allowance.is_some_and(|a| a > 0.03 && a < 0.08),
        "{exact:?}"
    );
    let dcr = find(&report, operator::DCR_SHARE, &[]);
    assert!(!dcr.passed);
    assert_eq!(dcr.statistic, 1.0);
    let nndr = find(&report, operator::NNDR_SHARE, &[]);
    assert_eq!(nndr.statistic, 1.0, "every copied row sits on its original");
    assert!(nndr.noise_floor.is_some_and(|f| f <= 0.06));
    // Fidelity alone would have let it through; membership inference sees
    // it too (see risk_tests.rs for the quasi-identifier operators).
    assert_eq!(
        report.failed_operators(),
        vec![
            operator::EXACT_MATCH,
            operator::DCR_SHARE,
            operator::NNDR_SHARE,
            operator::MIA_NEAREST_RECORD,
            operator::MIA_DENSITY_RATIO
        ]
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
    // 4 000 training vs 1 000 holdout rows, none discarded: a faithful row
    // is nearest to training about 4 times in 5, and the threshold sits
    // above that baseline (not above ½).
    assert!(dcr.statistic > 0.7 && dcr.statistic < 0.9, "{dcr:?}");
    assert!(dcr.threshold > 0.8 && dcr.threshold < 0.86, "{dcr:?}");
    assert!(dcr.passed, "{dcr:?}");
    assert!(dcr.explanation.contains("subsampled from 3000"));
    assert!(dcr.explanation.contains("training (4000 rows)"));
    assert!(dcr.explanation.contains("holdout (1000 rows)"));
    // A copy of training still fails with the sizes unequal.
    let copy = evaluate(&r, &h, &r, &config, &Roles::default(), 9).unwrap();
    let dcr = find(&copy, operator::DCR_SHARE, &[]);
    assert!(!dcr.passed && dcr.statistic == 1.0, "{dcr:?}");
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
    assert!((w.statistic - 0.5).abs() < 1e-12, "{w:?}");
    assert!(w.explanation.contains("column units"));
    // Three training rows and two synthetic ones cannot show a difference:
    // the permutation null says so, and noise decides.
    assert!(
        w.noise_allowance.is_some_and(|a| a > w.effect_limit)
            && w.explanation.contains("noise decides"),
        "{w:?}"
    );
}

// ---- Contingency, conditionals, utility and SDMetrics-style aggregates ----

/// Knobs to distort a draw from the clinical population.
#[derive(Default, Clone, Copy)]
struct Clinical {
    /// Permute every column independently: marginals kept, joint broken.
    shuffle: bool,
    /// Shift HbA1c by this many (within-stratum) s.d. in one diagnosis only.
    hba1c_shift: Option<(&'static str, f64)>,
    /// Every row gets readmit = "no".
    no_positives: bool,
}

/// age, bmi (with age), sex, smoker (depends on sex), dx (depends on age
/// and smoking; "rare" in ~1 % of rows), hba1c | dx, and the binary target
/// readmit (logistic in age, hba1c, smoker; AUROC ≈ 0.75).
fn clinical(n: usize, seed: u64, k: Clinical) -> Table {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut age, mut bmi, mut hba1c) = (Vec::new(), Vec::new(), Vec::new());
    let (mut sex, mut smoker, mut dx, mut readmit) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let z = normal(&mut rng);
        let a = 55.0 + 15.0 * z;
        age.push(a);
        bmi.push(27.0 + 4.0 * (0.6 * z + 0.8 * normal(&mut rng)));
        let female = rng.random_bool(0.5);
        sex.push(Some(if female { "F" } else { "M" }));
        let smokes = rng.random_bool(if female { 0.10 } else { 0.60 });
        smoker.push(Some(if smokes { "yes" } else { "no" }));
        let p_diab = 1.0 / (1.0 + (-(-1.2 + 0.04 * (a - 55.0) + 0.8 * f64::from(smokes))).exp());
        let d = if rng.random_bool(0.01) {
            "rare"
        } else if rng.random_bool(p_diab) {
            "E11.9"
        } else if rng.random_bool(0.4) {
            "I10"
        } else {
            "none"
        };
        dx.push(Some(d));
        let (mu, sd) = match d {
            "E11.9" => (8.0, 1.0),
            "I10" => (6.0, 0.5),
            _ => (5.4, 0.4),
        };
        let shift = match k.hba1c_shift {
            Some((stratum, s)) if stratum == d => s * sd,
            _ => 0.0,
        };
        let h = mu + sd * normal(&mut rng) + shift;
        hba1c.push(h);
        let logit = -1.0 + 0.05 * (a - 55.0) + 0.5 * (h - 6.5) + 0.7 * f64::from(smokes);
        let y = !k.no_positives && rng.random_bool(1.0 / (1.0 + (-logit).exp()));
        readmit.push(Some(if y { "yes" } else { "no" }));
    }
    let mut t = Table::new(vec![
        Column::numeric("age", age),
        Column::numeric("bmi", bmi),
        Column::numeric("hba1c", hba1c),
        Column::categorical("sex", &sex),
        Column::categorical("smoker", &smoker),
        Column::categorical("dx", &dx),
        Column::categorical("readmit", &readmit),
    ]);
    if k.shuffle {
        use rand::seq::SliceRandom;
        for c in &mut t.columns {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut rng);
            let one = Table::new(vec![c.clone()]).take(&order);
            *c = one.columns.into_iter().next().expect("one column");
        }
    }
    t
}

fn clinical_roles() -> Roles {
    toml::from_str(
        r#"
        subgroups = [{ column = "sex" }, { column = "age", bands = [40, 65] }]
        target = { column = "readmit", positive = "yes" }
        conditionals = [{ column = "hba1c", given = "dx" }, { column = "smoker", given = "sex" }]
        "#,
    )
    .expect("roles parse")
}

fn clinical_trio(n: usize, k: Clinical) -> (Table, Table, Table) {
    (
        clinical(n, 11, Clinical::default()),
        clinical(n, 12, Clinical::default()),
        clinical(n, 13, k),
    )
}

/// Runs the gate with the clinical roles and checks that nothing anywhere
/// in the report (gated, reported, aggregates) is NaN.
fn run_clinical(r: &Table, h: &Table, s: &Table, roles: &Roles) -> GateReport {
    let report = evaluate(r, h, s, &GateConfig::default(), roles, 42).expect("gate runs");
    for x in report.results.iter().chain(&report.reported) {
        assert!(x.statistic.is_finite() && x.threshold.is_finite(), "{x:?}");
        assert!(x.noise_floor.is_none_or(f64::is_finite), "{x:?}");
    }
    // serde_json would write a NaN as null, so check the numbers themselves.
    if let Some(q) = &report.aggregates {
        let mut all = vec![
            q.column_shapes,
            q.column_pair_trends,
            q.column_pair_trends_associated,
            q.holdout_column_shapes,
            q.holdout_column_pair_trends,
        ];
        all.extend(q.columns.iter().flat_map(|c| [c.score, c.holdout]));
        all.extend(
            q.pairs
                .iter()
                .flat_map(|p| [p.score, p.holdout, p.real_association]),
        );
        assert!(all.iter().flatten().all(|x| x.is_finite()), "{q:?}");
    }
    report
}

fn count(report: &GateReport, op: &str) -> usize {
    report.results.iter().filter(|x| x.operator == op).count()
}

#[test]
fn same_clinical_distribution_passes_contingency_conditionals_and_utility() {
    let (r, h, s) = clinical_trio(4000, Clinical::default());
    let report = run_clinical(&r, &h, &s, &clinical_roles());
    // Every fidelity and utility result passes. (Privacy is not asserted:
    // the DCR bound is one-sided 95 %, so ~5 % of faithful batches fail it
    // by chance, and this seed happens to be one: 51.6 % vs 51.3 %.)
    let privacy = [
        operator::EXACT_MATCH,
        operator::DCR_SHARE,
        operator::NNDR_SHARE,
    ];
    let failed: Vec<_> = report
        .failures()
        .into_iter()
        .filter(|x| !privacy.contains(&x.operator.as_str()))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    // Gated contingency pairs: the C(4, 2) = 6 categorical pairs.
    assert_eq!(count(&report, operator::CONTINGENCY_TV), 6);
    // Mixed pairs are reported: 3 numeric × 4 categorical.
    let mixed = report
        .reported
        .iter()
        .filter(|x| x.operator == operator::CONTINGENCY_TV)
        .count();
    assert_eq!(mixed, 12);
    // hba1c | dx: E11.9, I10, none are scored, rare (~40 rows) is skipped;
    // smoker | sex: F and M.
    assert_eq!(count(&report, operator::CONDITIONAL_KS), 5);
    find(&report, operator::CONDITIONAL_KS, &["hba1c", "dx=I10"]);
    // Utility: overall + sex (F, M) + age (<40, [40, 65), ≥65).
    assert_eq!(count(&report, operator::UTILITY_AUROC_GAP), 1);
    assert_eq!(count(&report, operator::UTILITY_SUBGROUP_GAP), 5);
    let u = find(&report, operator::UTILITY_AUROC_GAP, &["readmit"]);
    assert!(u.explanation.contains("bootstrap 95% interval"), "{u:?}");
    assert_eq!(u.threshold, 0.05);
    // SDMetrics-style scores are reported, high for a faithful batch, and
    // close to what fresh real data gets.
    let q = report.aggregates.as_ref().expect("aggregates");
    let (shapes, trends) = (q.column_shapes.unwrap(), q.column_pair_trends.unwrap());
    assert!(shapes > 0.95 && trends > 0.95, "{shapes} {trends}");
    assert!((shapes - q.holdout_column_shapes.unwrap()).abs() < 0.02);
    assert_eq!(q.columns.len(), 7);
    assert_eq!(q.pairs.len(), 21);
    assert!(q.note.starts_with("reported, not gated"));
}

#[test]
fn broken_joint_fails_contingency_and_utility_but_not_marginals() {
    let (r, h, s) = clinical_trio(
        4000,
        Clinical {
            shuffle: true,
            ..Default::default()
        },
    );
    let report = run_clinical(&r, &h, &s, &clinical_roles());
    // Marginals are intact: the per-column operators cannot see it.
    for x in &report.results {
        if [
            operator::KS,
            operator::TOTAL_VARIATION,
            operator::WASSERSTEIN_IQR,
        ]
        .contains(&x.operator.as_str())
        {
            assert!(x.passed, "{x:?}");
        }
    }
    // The dependent categorical pair fails (smoking depends on sex: joint
    // TV between dependence and independence is ½·4·0.125 = 0.25),
    let pair = find(&report, operator::CONTINGENCY_TV, &["sex", "smoker"]);
    assert!(!pair.passed, "{pair:?}");
    assert!(pair.noise_floor.is_some_and(|f| f < 0.05), "{pair:?}");
    // and a model trained on it learns nothing: TSTR ≈ 0.5.
    let u = find(&report, operator::UTILITY_AUROC_GAP, &["readmit"]);
    assert!(!u.passed && u.statistic > 0.15, "{u:?}");
    assert!(
        !find(
            &report,
            operator::UTILITY_SUBGROUP_GAP,
            &["readmit", "sex=F"]
        )
        .passed
    );
    // The stratum conditionals see it too (HbA1c no longer depends on dx).
    assert!(!find(&report, operator::CONDITIONAL_KS, &["hba1c", "dx=E11.9"]).passed);
    let q = report.aggregates.as_ref().unwrap();
    assert!(q.column_pair_trends.unwrap() < q.holdout_column_pair_trends.unwrap() - 0.02);
    assert!(q.column_shapes.unwrap() > 0.95);
}

#[test]
fn stratum_specific_shift_fails_only_that_stratum() {
    let k = Clinical {
        hba1c_shift: Some(("I10", 1.0)),
        ..Default::default()
    };
    let (r, h, s) = clinical_trio(4000, k);
    let report = run_clinical(&r, &h, &s, &clinical_roles());
    let failed: Vec<String> = report
        .failed_operators()
        .into_iter()
        .filter(|x| x.starts_with(operator::CONDITIONAL_KS))
        .collect();
    assert_eq!(failed, vec!["conditional_ks[hba1c,dx=I10]"]);
    let shifted = find(&report, operator::CONDITIONAL_KS, &["hba1c", "dx=I10"]);
    assert!(shifted.statistic > 0.3, "{shifted:?}");
    assert!(shifted.explanation.contains("training"), "{shifted:?}");
    assert!(find(&report, operator::CONDITIONAL_KS, &["hba1c", "dx=E11.9"]).passed);
    assert!(find(&report, operator::CONDITIONAL_KS, &["hba1c", "dx=none"]).passed);
}

#[test]
fn tiny_strata_and_small_subgroups_are_skipped_with_an_explanation() {
    let (r, h, s) = clinical_trio(4000, Clinical::default());
    let report = run_clinical(&r, &h, &s, &clinical_roles());
    let skipped = report
        .reported
        .iter()
        .find(|x| x.operator == operator::CONDITIONAL_KS && x.columns == ["hba1c", "dx"])
        .expect("skipped-strata note");
    assert!(skipped.passed);
    assert!(skipped.explanation.starts_with("reported, not gated"));
    assert!(skipped.explanation.contains("rare ("), "{skipped:?}");
    assert!(skipped.explanation.contains("fewer than 50"), "{skipped:?}");
    // A subgroup needs 100 holdout rows: with 4000 rows every one has them
    // (age < 40 holds ~16 %, ~640 rows); ask for 800 to see it skipped.
    let strict = GateConfig {
        utility_min_subgroup_rows: 800,
        ..GateConfig::default()
    };
    let report = evaluate(&r, &h, &s, &strict, &clinical_roles(), 42).unwrap();
    let young = report
        .reported
        .iter()
        .find(|x| x.columns == ["readmit", "age=<40"])
        .expect("skipped subgroup note");
    assert!(young.explanation.contains("fewer than 800"), "{young:?}");
    assert!(
        !report
            .results
            .iter()
            .any(|x| x.columns == ["readmit", "age=<40"])
    );
}

#[test]
fn no_target_and_no_conditionals_give_no_results() {
    let (r, h, s) = clinical_trio(600, Clinical::default());
    let report = run_clinical(&r, &h, &s, &Roles::default());
    assert_eq!(count(&report, operator::CONDITIONAL_KS), 0);
    assert_eq!(count(&report, operator::UTILITY_AUROC_GAP), 0);
    assert_eq!(count(&report, operator::UTILITY_SUBGROUP_GAP), 0);
    // Besides contingency notes, only the detection score, which every
    // report carries.
    assert!(
        report
            .reported
            .iter()
            .all(|x| x.operator == operator::CONTINGENCY_TV || x.operator == super::DETECTION_AUC)
    );
    assert_eq!(
        report
            .reported
            .iter()
            .filter(|x| x.operator == super::DETECTION_AUC)
            .count(),
        1
    );
}

#[test]
fn single_class_target_is_skipped_or_fails_with_an_explanation() {
    // No positive in training: no real model to compare with → skipped.
    let r = clinical(
        2000,
        11,
        Clinical {
            no_positives: true,
            ..Default::default()
        },
    );
    let (h, s) = (
        clinical(2000, 12, Clinical::default()),
        clinical(2000, 13, Clinical::default()),
    );
    let report = run_clinical(&r, &h, &s, &clinical_roles());
    assert_eq!(count(&report, operator::UTILITY_AUROC_GAP), 0);
    let note = report
        .reported
        .iter()
        .find(|x| x.operator == operator::UTILITY_AUROC_GAP)
        .expect("skip note");
    assert!(note.explanation.contains("single class"), "{note:?}");
    // Same in the holdout: AUROC undefined → skipped.
    let h1 = clinical(
        2000,
        12,
        Clinical {
            no_positives: true,
            ..Default::default()
        },
    );
    let report = run_clinical(&h, &h1, &s, &clinical_roles());
    assert!(
        report
            .reported
            .iter()
            .any(|x| x.operator == operator::UTILITY_AUROC_GAP
                && x.explanation.contains("AUROC is undefined"))
    );
    // The synthetic batch lost every positive: constant scorer, fails.
    let s1 = clinical(
        2000,
        13,
        Clinical {
            no_positives: true,
            ..Default::default()
        },
    );
    let report = run_clinical(&r.clone(), &h, &s1, &clinical_roles());
    // (training has no positives either here, so use a proper training set)
    assert_eq!(count(&report, operator::UTILITY_AUROC_GAP), 0);
    let r2 = clinical(2000, 11, Clinical::default());
    let report = run_clinical(&r2, &h, &s1, &clinical_roles());
    let u = find(&report, operator::UTILITY_AUROC_GAP, &["readmit"]);
    assert!(!u.passed, "{u:?}");
    assert!(u.explanation.contains("constant scorer"), "{u:?}");
    assert!(u.explanation.contains("TSTR 0.5000"), "{u:?}");
}

#[test]
fn numeric_target_threshold_and_invalid_roles() {
    let (r, h, s) = clinical_trio(1500, Clinical::default());
    let roles: Roles = toml::from_str(r#"target = { column = "hba1c", threshold = 6.5 }"#).unwrap();
    let report = run_clinical(&r, &h, &s, &roles);
    let u = find(&report, operator::UTILITY_AUROC_GAP, &["hba1c"]);
    assert!(u.passed, "{u:?}");
    // Roles that do not fit the tables are an error listing every problem.
    let bad: Roles = toml::from_str(
        r#"
        subgroups = [{ column = "age" }, { column = "sex", bands = [1] }]
        target = { column = "hba1c", positive = "high" }
        conditionals = [{ column = "hba1c", given = "nope" }]
        "#,
    )
    .unwrap();
    match evaluate(&r, &h, &s, &GateConfig::default(), &bad, 0) {
        Err(GateError::InvalidRoles { problems }) => {
            assert_eq!(problems.len(), 4, "{problems:?}");
            assert!(problems.iter().any(|p| p.contains("\"nope\"")));
            assert!(problems.iter().any(|p| p.contains("needs `bands`")));
            assert!(problems.iter().any(|p| p.contains("only apply to numeric")));
            assert!(problems.iter().any(|p| p.contains("give `threshold`")));
        }
        other => panic!("expected InvalidRoles, got {other:?}"),
    }
}

#[test]
fn clinical_report_is_deterministic_for_a_seed() {
    let (r, h, s) = clinical_trio(1000, Clinical::default());
    let roles = clinical_roles();
    let a = evaluate(&r, &h, &s, &GateConfig::default(), &roles, 5).unwrap();
    let b = evaluate(&r, &h, &s, &GateConfig::default(), &roles, 5).unwrap();
    assert_eq!(a, b);
    let json = serde_json::to_string(&a).unwrap();
    let back: GateReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back.results.len(), a.results.len());
}

#[test]
fn staged_gate_skips_privacy_only_after_a_fidelity_failure() {
    let shift = Distortion {
        age_shift: 0.5,
        ..Default::default()
    };
    let (r, h, s) = trio(1500, shift);
    let config = GateConfig::default();
    let full = evaluate(&r, &h, &s, &config, &Roles::default(), 42).unwrap();
    let staged = evaluate_staged(
        &r,
        &h,
        &s,
        &Units::default(),
        &config,
        &Roles::default(),
        42,
    )
    .unwrap();
    assert!(!full.passed && !staged.passed);
    assert_eq!(count(&full, operator::DCR_SHARE), 1);
    assert_eq!(count(&staged, operator::DCR_SHARE), 0);
    assert_eq!(count(&staged, operator::MIA_NEAREST_RECORD), 0);
    assert!(
        staged
            .reported
            .iter()
            .any(|x| x.operator == PRIVACY_SKIPPED && x.explanation.contains("did not run"))
    );
    // The fidelity results are the same either way.
    assert_eq!(
        staged.failed_operators(),
        full.failed_operators()
            .into_iter()
            .filter(|o| !o.starts_with("dcr")
                && !o.starts_with("mia")
                && !o.starts_with("nndr")
                && !o.starts_with("exact"))
            .collect::<Vec<_>>()
    );

    // A faithful batch goes through both gates.
    let (r, h, s) = trio(1500, Distortion::default());
    let staged = evaluate_staged(
        &r,
        &h,
        &s,
        &Units::default(),
        &config,
        &Roles::default(),
        42,
    )
    .unwrap();
    assert_eq!(count(&staged, operator::DCR_SHARE), 1);
    assert!(
        !staged
            .reported
            .iter()
            .any(|x| x.operator == PRIVACY_SKIPPED)
    );
}

/// Rows of `patients` people, `per` rows each, every row of a person a copy
/// of that person's row in `population` (as a one-row-per-test table repeats
/// a patient's age and sex), with unit codes.
fn clustered(patients: usize, per: usize, seed: u64) -> (Table, Vec<u32>) {
    let people = population(patients, seed, Distortion::default());
    let rows: Vec<usize> = (0..patients * per).map(|r| r / per).collect();
    let units = rows.iter().map(|&p| p as u32).collect();
    (people.take(&rows), units)
}

/// With several rows per patient, two samples of patients differ more than
/// two samples of rows: the fidelity allowances computed in units are
/// larger than the same allowances computed as if every row were a person,
/// by about √(rows per patient) for a statistic whose noise is binomial.
#[test]
fn units_widen_the_fidelity_noise_to_that_of_patients() {
    let (r, ru) = clustered(150, 4, 1);
    let (h, hu) = clustered(150, 4, 2);
    let (s, su) = clustered(150, 4, 3);
    let config = GateConfig::default();
    let roles = Roles::default();
    let rows = evaluate(&r, &h, &s, &config, &roles, 5).unwrap();
    let units = Units {
        train: Some(ru),
        holdout: Some(hu),
        synthetic: Some(su),
    };
    let patients = evaluate_in_units(&r, &h, &s, &units, &config, &roles, 5).unwrap();
    let allowance = |report: &GateReport, op: &str, col: &str| {
        report
            .results
            .iter()
            .find(|x| x.operator == op && x.columns == [col])
            .and_then(|x| x.noise_allowance)
            .unwrap()
    };
    for (op, col) in [("total_variation", "sex"), ("ks", "age")] {
        let (a_rows, a_units) = (allowance(&rows, op, col), allowance(&patients, op, col));
        assert!(
            a_units > 1.5 * a_rows,
            "{op}[{col}]: {a_units} in units vs {a_rows} in rows"
        );
    }
}

/// Issue 16: result names leave in alerts and lineage, so a subgroup label
/// held by fewer than 11 training rows is never one: such levels are scored
/// together as one pooled level.
#[test]
fn rare_subgroup_labels_are_pooled_not_named() {
    let with_site = |t: Table, rare: &[&str]| {
        let n = t.n_rows();
        let labels: Vec<Option<String>> = (0..n)
            .map(|i| {
                Some(
                    rare.get(i)
                        .map_or(if i % 2 == 0 { "A" } else { "B" }, |r| *r)
                        .to_string(),
                )
            })
            .collect();
        let mut columns = t.columns.clone();
        columns.push(Column::categorical("site", &labels));
        Table::new(columns)
    };
    let (r, h, s) = clinical_trio(1200, Clinical::default());
    let r = with_site(r, &["RARE-1", "RARE-1", "RARE-2", "RARE-3"]);
    let h = with_site(h, &["RARE-2"]);
    let s = with_site(s, &[]);
    let roles: Roles = toml::from_str(r#"subgroups = [{ column = "site" }]"#).unwrap();
    let report = run_clinical(&r, &h, &s, &roles);
    let shares: Vec<&OperatorResult> = report
        .results
        .iter()
        .filter(|x| x.operator == operator::SUBGROUP_SHARE)
        .collect();
    let names: Vec<String> = shares.iter().map(|x| x.columns.join(",")).collect();
    assert!(names.iter().all(|n| !n.contains("RARE")), "{names:?}");
    let pooled = format!(
        "site=(levels under {} rows)",
        subgroups::MIN_NAMED_LEVEL_ROWS
    );
    assert_eq!(subgroups::RARE_LEVELS, &pooled["site=".len()..]);
    assert_eq!(
        names,
        ["site,site=A", "site,site=B", &format!("site,{pooled}")]
    );
    // The pooled level vanished from the synthetic side: its whole share is lost.
    let rare = shares.iter().find(|x| x.columns[1] == pooled).unwrap();
    assert_eq!(rare.statistic, 1.0);
    // Its 4 training rows are a small cell: written as a bound, not a count.
    assert!(rare.explanation.contains("(<11)"), "{}", rare.explanation);
    assert!(!rare.explanation.contains("(4)"), "{}", rare.explanation);
}
