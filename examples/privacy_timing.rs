//! Times the whole gate on 50k synthetic vs 50k training + 50k holdout × 30
//! columns (18 numeric, 12 categorical, 5 % missing): without roles, with
//! declared quasi-identifiers, and with a utility target and subgroups
//! too. Target (DESIGN.md): ≤ 10 s on 2 cores.
//!
//! `cargo run --release --example privacy_timing [rows]`
//!
//! Prints wall time and, on Linux, the process CPU time spent in the call:
//! on a shared machine the CPU time / 2 is the better guide to an idle
//! 2-core run.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use resynth::gate::{GateConfig, Roles, Subgroup, Target, evaluate};
use resynth::table::{Column, Table};

fn normal(rng: &mut StdRng) -> f64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// Independent draw: age (years), sex, zip3, race, 16 more numeric
/// columns correlated with a latent factor, 9 more categorical columns.
fn table(n: usize, seed: u64) -> Table {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut columns = Vec::new();
    let latent: Vec<f64> = (0..n).map(|_| normal(&mut rng)).collect();
    let missing = |rng: &mut StdRng| rng.random_bool(0.05);
    columns.push(Column::numeric(
        "age",
        latent
            .iter()
            .map(|z| (50.0 + 15.0 * z).round().clamp(18.0, 90.0))
            .collect(),
    ));
    columns.push(Column::numeric(
        "weight",
        (0..n)
            .map(|_| ((75.0 + 12.0 * normal(&mut rng)) * 10.0).round() / 10.0)
            .collect(),
    ));
    for j in 0..16 {
        let v = latent
            .iter()
            .map(|z| {
                if missing(&mut rng) {
                    f64::NAN
                } else {
                    (0.5 * z + normal(&mut rng)).exp() * (j + 1) as f64
                }
            })
            .collect();
        columns.push(Column::numeric(format!("lab{j}"), v));
    }
    let cat = |rng: &mut StdRng, k: usize| -> Option<String> {
        let x: f64 = rng.random();
        Some(format!("c{}", ((x * x) * k as f64) as usize))
    };
    let mut push_cat = |name: &str, k: usize, rng: &mut StdRng| {
        let v: Vec<Option<String>> = (0..n)
            .map(|_| {
                if rng.random_bool(0.05) {
                    None
                } else {
                    cat(rng, k)
                }
            })
            .collect();
        columns.push(Column::categorical(name, &v));
    };
    push_cat("sex", 2, &mut rng);
    push_cat("zip3", 40, &mut rng);
    push_cat("race", 5, &mut rng);
    push_cat("dx", 12, &mut rng);
    for j in 0..8 {
        push_cat(&format!("cat{j}"), 3 + j, &mut rng);
    }
    Table::new(columns)
}

/// User + system CPU seconds of this process (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|x| x.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50_000);
    let (r, h, s) = (table(n, 1), table(n, 2), table(n, 3));
    let roles = Roles {
        quasi_identifiers: ["age", "sex", "zip3", "race", "weight"]
            .map(String::from)
            .to_vec(),
        sensitive: ["dx", "lab0"].map(String::from).to_vec(),
        ..Roles::default()
    };
    let full = Roles {
        target: Some(Target {
            column: "lab1".into(),
            positive: None,
            threshold: Some(4.0),
        }),
        subgroups: vec![Subgroup {
            column: "age".into(),
            bands: Some(vec![40.0, 65.0]),
        }],
        ..roles.clone()
    };
    for (label, roles) in [
        ("no roles", Roles::default()),
        ("5 QIs, 2 sensitive", roles),
        ("5 QIs, 2 sensitive, utility target, age bands", full),
    ] {
        let (start, cpu) = (Instant::now(), cpu_seconds());
        let report = evaluate(&r, &h, &s, &GateConfig::default(), &roles, 7).expect("gate runs");
        let secs = start.elapsed().as_secs_f64();
        println!(
            "gate, {n} synthetic vs {n} train + {n} holdout × 30 columns, {label}: {secs:.2} s \
             wall, {:.2} s CPU (target ≤ 10 s wall on 2 cores), {} results, failed {:?}",
            cpu_seconds() - cpu,
            report.results.len(),
            report.failed_operators()
        );
    }
}
