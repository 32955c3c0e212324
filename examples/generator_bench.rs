//! Generator speed and fidelity, printed with their targets.
//!
//! ```text
//! cargo run --release --example generator_bench -- speed [rows] [runs]
//! cargo run --release --example generator_bench -- fidelity [rows]
//! ```
//!
//! `speed` times CART fit + sample on 10 000 × 40 and 100 000 × 30 (targets
//! ≤ 1 s and ≤ 10 s on two cores), then, on the shared mixed table (rows × 30 columns, default
//! 100 000): Gaussian copula fit + sample of as many rows (target ≤ 1 s on two
//! cores), PrivBayes fit (target ≤ 10 s) and sample, and conditional sampling
//! of a cohort from the copula. `fidelity` fits each generator on a training
//! table (default 5 000 rows) and prints the SDMetrics-style column-shape and
//! column-pair-trend scores against training, next to a holdout's (fresh
//! real data, the ceiling): the copula, and PrivBayes at ε = 1 and ε = 0.1.

use std::collections::BTreeMap;
use std::time::Instant;

use resynth::gate::{GateConfig, Roles, evaluate};
use resynth::generate::cart;
use resynth::generate::cohort::{Cohort, Condition};
use resynth::generate::copula::{self, CopulaConfig};
use resynth::generate::privbayes::{
    self, CategoricalDomain, ColumnDomain, NumericDomain, PrivBayesConfig,
};
use resynth::table::Table;

#[path = "common/mixed_table.rs"]
mod mixed_table;
use mixed_table::{CATEGORICAL, NUMERIC, mixed};

/// The declared domain of the mixed table: fixed from how the table is
/// generated, never read from the data (as a topology would declare it).
fn domain() -> BTreeMap<String, ColumnDomain> {
    let mut d = BTreeMap::new();
    for k in 0..NUMERIC {
        let (min, max, bins, decimals) = match k % 3 {
            0 => (-100.0, 200.0, 30, None),
            1 => (0.0, 20.0, 40, None),
            _ => (-80.0, 80.0, 32, Some(0)),
        };
        d.insert(
            format!("n{k}"),
            ColumnDomain::Numeric(NumericDomain {
                min,
                max,
                bins,
                decimals,
            }),
        );
    }
    for k in 0..CATEGORICAL {
        let categories = if k == 0 {
            vec!["no".to_string(), "yes".to_string()]
        } else {
            (0..2 + k % 7).map(|l| format!("L{l}")).collect()
        };
        d.insert(
            format!("c{k}"),
            ColumnDomain::Categorical(CategoricalDomain {
                categories,
                other_label: "OTHER".into(),
            }),
        );
    }
    d
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// `rows` × `columns` of the mixed table (30 columns, widened with a second
/// draw's columns under new names).
fn wide(rows: usize, columns: usize) -> Table {
    let mut t = mixed(rows, 1, 1.0, 0.0);
    let extra = mixed(rows, 2, 1.0, 0.0);
    for (i, mut c) in extra.columns.into_iter().enumerate() {
        if t.columns.len() >= columns {
            break;
        }
        c.name = format!("{}_{i}", c.name);
        t.columns.push(c);
    }
    t.columns.truncate(columns);
    t
}

/// CART fit + sample on the 2-core targets of issue 11.
fn cart_speed(runs: usize) {
    for (rows, columns, target) in [(10_000, 40, 1.0), (100_000, 30, 10.0)] {
        let train = wide(rows, columns);
        let config = cart::CartConfig::default();
        let mut fit_s = Vec::new();
        let mut sample_s = Vec::new();
        for run in 0..runs {
            let t = Instant::now();
            let model = cart::fit(&train, &config, run as u64, None).expect("cart fit");
            fit_s.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let s = model.sample(rows, run as u64);
            sample_s.push(t.elapsed().as_secs_f64());
            assert_eq!(s.n_rows(), rows);
        }
        let (fit, sample) = (median(fit_s), median(sample_s));
        println!(
            "cart        {rows} rows × {columns} columns: fit {fit:.3} s + sample {sample:.3} s = {:.3} s (target ≤ {target} s)",
            fit + sample
        );
    }
}

fn speed(rows: usize, runs: usize) {
    cart_speed(runs);
    let train = mixed(rows, 1, 1.0, 0.0);
    let config = CopulaConfig::default();
    let mut fit_s = Vec::new();
    let mut sample_s = Vec::new();
    for run in 0..runs {
        let t = Instant::now();
        let model = copula::fit(&train, &config, run as u64).expect("copula fit");
        fit_s.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let s = model.sample(rows, run as u64);
        sample_s.push(t.elapsed().as_secs_f64());
        assert_eq!(s.n_rows(), rows);
    }
    let (fit, sample) = (median(fit_s), median(sample_s));
    println!(
        "copula      {rows} rows × 30 columns: fit {fit:.3} s + sample {sample:.3} s = {:.3} s (target ≤ 1 s)",
        fit + sample
    );

    let model = copula::fit(&train, &config, 0).expect("copula fit");
    let cohort = Cohort {
        conditions: vec![
            ("c1".into(), Condition::Label("L1".into())),
            ("c0".into(), Condition::Label("yes".into())),
            ("n0".into(), Condition::Between { lo: 40.0, hi: 65.0 }),
        ],
    };
    let t = Instant::now();
    let s = model.sample_cohort(rows, 1, &cohort).expect("cohort");
    let cohort_s = t.elapsed().as_secs_f64();
    let share = model.cohort_probability(&cohort, 1).expect("probability");
    assert!((0..s.n_rows()).all(|r| cohort.matches(&s, r)));
    println!(
        "copula      cohort c1=L1, c0=yes, n0 in 40..65 (model share {:.1} %): {rows} rows in {cohort_s:.3} s \
         (rejection would need about {:.0} draws)",
        100.0 * share,
        rows as f64 / share.max(1e-12)
    );

    let pb = PrivBayesConfig::new(1.0, domain());
    let mut pb_fit = Vec::new();
    let mut pb_sample = Vec::new();
    for run in 0..runs {
        let t = Instant::now();
        let model = privbayes::fit(&train, &pb, run as u64).expect("privbayes fit");
        pb_fit.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let s = model.sample(rows, run as u64);
        pb_sample.push(t.elapsed().as_secs_f64());
        assert_eq!(s.n_rows(), rows);
    }
    println!(
        "privbayes   {rows} rows × 30 columns, ε = 1, degree {}: fit {:.3} s (target ≤ 10 s), sample {:.3} s",
        pb.degree,
        median(pb_fit),
        median(pb_sample)
    );
}

fn scores(train: &Table, holdout: &Table, synthetic: &Table) -> (f64, f64, f64, f64) {
    let report = evaluate(
        train,
        holdout,
        synthetic,
        &GateConfig::default(),
        &Roles::default(),
        7,
    )
    .expect("gate");
    let q = report.aggregates.expect("SDMetrics-style scores");
    let v = |x: Option<f64>| x.unwrap_or(f64::NAN);
    (
        v(q.column_shapes),
        v(q.column_pair_trends),
        v(q.holdout_column_shapes),
        v(q.holdout_column_pair_trends),
    )
}

fn fidelity(rows: usize) {
    let train = mixed(rows, 11, 1.0, 0.0);
    let holdout = mixed(rows, 12, 1.0, 0.0);
    let line = |name: &str, synthetic: &Table| {
        let (shapes, pairs, h_shapes, h_pairs) = scores(&train, &holdout, synthetic);
        println!(
            "{name:<22} column shapes {shapes:.3}  pair trends {pairs:.3}   (holdout {h_shapes:.3} / {h_pairs:.3}; target ≥ 0.90 / 0.90 for the copula)"
        );
    };
    let model = copula::fit(&train, &CopulaConfig::default(), 1).expect("copula");
    line("gaussian_copula", &model.sample(rows, 2));
    for epsilon in [1.0, 0.1] {
        let config = PrivBayesConfig::new(epsilon, domain());
        let model = privbayes::fit(&train, &config, 3).expect("privbayes");
        line(&format!("privbayes ε = {epsilon}"), &model.sample(rows, 4));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number =
        |i: usize, default: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str) {
        Some("speed") => speed(number(1, 100_000), number(2, 3)),
        Some("fidelity") => fidelity(number(1, 5_000)),
        _ => {
            eprintln!("usage: generator_bench speed [rows] [runs] | fidelity [rows]");
            std::process::exit(2);
        }
    }
}
