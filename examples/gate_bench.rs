//! Gate timing and the SDMetrics cross-check data, on a seeded mixed table
//! (18 numeric + 12 categorical columns, 5 % missing, correlated through
//! two latent factors, with a binary target `c0`).
//!
//! ```text
//! cargo run --release --example gate_bench -- timing [rows] [runs]
//! cargo run --release --example gate_bench -- crosscheck DIR [rows]
//! python tools/crosscheck/sdmetrics_check.py DIR/real.csv DIR/synthetic.csv \
//!     DIR/metadata.json --compare DIR/ours.json
//! ```
//!
//! `timing` prints the wall time of `gate::evaluate` on rows × 3 tables
//! (target: ≤ 10 s for 50k rows on two cores), with and without roles.
//! `crosscheck` writes real/synthetic CSVs, SDMetrics metadata and our
//! SDMetrics-style scores (`ours.json`).

use std::fmt::Write as _;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use resynth::gate::{GateConfig, Roles, evaluate};
use resynth::table::{Column, ColumnValues, Table};

const NUMERIC: usize = 18;
const CATEGORICAL: usize = 12;

fn normal(rng: &mut StdRng) -> f64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// `coupling` scales how strongly columns follow the latent factors
/// (1 = the population; a weaker value mimics a generator that loses
/// dependence); `shift` moves n3 by that many s.d.
fn mixed(n: usize, seed: u64, coupling: f64, shift: f64) -> Table {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut num: Vec<Vec<f64>> = (0..NUMERIC).map(|_| Vec::with_capacity(n)).collect();
    let mut cat: Vec<Vec<Option<String>>> =
        (0..CATEGORICAL).map(|_| Vec::with_capacity(n)).collect();
    for _ in 0..n {
        let (z1, z2) = (normal(&mut rng), normal(&mut rng));
        for (k, col) in num.iter_mut().enumerate() {
            let (a, b) = ((k % 5) as f64 * 0.5, ((k + 2) % 4) as f64 * 0.4);
            let x = coupling * (a * z1 + b * z2) + normal(&mut rng);
            let x = match k % 3 {
                0 => 50.0 + 15.0 * x,    // age-like
                1 => (0.4 * x).exp(),    // skewed lab
                _ => (10.0 * x).round(), // integer-valued, many ties
            } + if k == 3 { shift * 15.0 } else { 0.0 };
            col.push(if rng.random_bool(0.05) { f64::NAN } else { x });
        }
        for (k, col) in cat.iter_mut().enumerate() {
            let levels = 2 + k % 7;
            let label = if k == 0 {
                // The target: logistic in the latent factors.
                let logit = -0.8 + 1.2 * coupling * z1 - 0.8 * coupling * z2;
                let y = rng.random_bool(1.0 / (1.0 + (-logit).exp()));
                Some(if y { "yes" } else { "no" }.to_string())
            } else {
                let signal = 1.5 * coupling * if k % 2 == 0 { z1 } else { z2 } + normal(&mut rng);
                let level = ((signal + 3.5) / 7.0 * levels as f64).clamp(0.0, levels as f64 - 1.0);
                Some(format!("L{}", level as usize))
            };
            col.push(if k > 0 && rng.random_bool(0.05) {
                None
            } else {
                label
            });
        }
    }
    let mut columns: Vec<Column> = num
        .into_iter()
        .enumerate()
        .map(|(k, v)| Column::numeric(format!("n{k}"), v))
        .collect();
    columns.extend(
        cat.into_iter()
            .enumerate()
            .map(|(k, v)| Column::categorical(format!("c{k}"), &v)),
    );
    Table::new(columns)
}

fn roles() -> Roles {
    toml::from_str(
        r#"
        subgroups = [{ column = "c1" }, { column = "n0", bands = [40, 65] }, { column = "c2" }]
        target = { column = "c0", positive = "yes" }
        conditionals = [{ column = "n4", given = "c3" }, { column = "n5", given = "c1" }]
        "#,
    )
    .expect("roles")
}

/// Process CPU seconds (user + system) from /proc (Linux; 0 elsewhere),
/// assuming the usual 100 clock ticks per second.
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            let f: Vec<&str> = after.split_whitespace().collect();
            let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

fn timing(rows: usize, runs: usize) {
    let t = Instant::now();
    let (r, h, s) = (
        mixed(rows, 1, 1.0, 0.0),
        mixed(rows, 2, 1.0, 0.0),
        mixed(rows, 3, 1.0, 0.0),
    );
    println!(
        "generated 3 × {rows} rows × {} columns in {:.2} s",
        r.columns.len(),
        t.elapsed().as_secs_f64()
    );
    let config = GateConfig::default();
    for (what, roles) in [("no roles", Roles::default()), ("full roles", roles())] {
        for run in 0..runs {
            let (t, cpu) = (Instant::now(), cpu_seconds());
            let report = evaluate(&r, &h, &s, &config, &roles, 7).expect("gate");
            let secs = t.elapsed().as_secs_f64();
            let cpu = cpu_seconds() - cpu;
            println!(
                "gate ({what}, run {run}): {secs:.2} s wall (target ≤ 10 s), {cpu:.2} s CPU, {} \
                 gated + {} reported results, passed = {}, failed = {:?}",
                report.results.len(),
                report.reported.len(),
                report.passed,
                report.failed_operators()
            );
        }
    }
}

fn csv_field(c: &Column, row: usize) -> String {
    match &c.values {
        ColumnValues::Numeric(v) if v[row].is_finite() => format!("{:?}", v[row]),
        ColumnValues::Numeric(_) => String::new(),
        ColumnValues::Categorical { .. } => c.label(row).unwrap_or("").to_string(),
    }
}

fn write_csv(t: &Table, path: &std::path::Path) {
    let mut out = String::new();
    let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
    out.push_str(&names.join(","));
    out.push('\n');
    for row in 0..t.n_rows() {
        let fields: Vec<String> = t.columns.iter().map(|c| csv_field(c, row)).collect();
        let _ = writeln!(out, "{}", fields.join(","));
    }
    std::fs::write(path, out).expect("write csv");
}

fn crosscheck(dir: &str, rows: usize) {
    let dir = std::path::Path::new(dir);
    std::fs::create_dir_all(dir).expect("output dir");
    let r = mixed(rows, 1, 1.0, 0.0);
    let h = mixed(rows, 2, 1.0, 0.0);
    // A flawed "generator": weaker dependence and one shifted column.
    let s = mixed(rows, 3, 0.6, 0.3);
    write_csv(&r, &dir.join("real.csv"));
    write_csv(&s, &dir.join("synthetic.csv"));
    let columns: serde_json::Map<String, serde_json::Value> = r
        .columns
        .iter()
        .map(|c| {
            let sdtype = match c.values {
                ColumnValues::Numeric(_) => "numerical",
                ColumnValues::Categorical { .. } => "categorical",
            };
            (c.name.clone(), serde_json::json!({ "sdtype": sdtype }))
        })
        .collect();
    std::fs::write(
        dir.join("metadata.json"),
        serde_json::to_string_pretty(&serde_json::json!({ "columns": columns })).expect("json"),
    )
    .expect("write metadata");
    let report = evaluate(&r, &h, &s, &GateConfig::default(), &roles(), 7).expect("gate");
    let q = report.aggregates.clone().expect("aggregates");
    std::fs::write(
        dir.join("ours.json"),
        serde_json::to_string_pretty(&q).expect("json"),
    )
    .expect("write ours");
    println!(
        "wrote {}: ColumnShapes {:.4}, ColumnPairTrends {:.4} (associated pairs {:?}); \
         holdout {:.4} / {:.4}",
        dir.display(),
        q.column_shapes.unwrap_or(f64::NAN),
        q.column_pair_trends.unwrap_or(f64::NAN),
        q.column_pair_trends_associated,
        q.holdout_column_shapes.unwrap_or(f64::NAN),
        q.holdout_column_pair_trends.unwrap_or(f64::NAN),
    );
    println!("failed operators: {:?}", report.failed_operators());
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows =
        |i: usize, default: usize| args.get(i).and_then(|x| x.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str) {
        Some("timing") => timing(rows(1, 50_000), rows(2, 2)),
        Some("crosscheck") => crosscheck(
            args.get(1).map_or("target/crosscheck", String::as_str),
            rows(2, 5_000),
        ),
        _ => eprintln!("usage: gate_bench timing [rows] [runs] | crosscheck DIR [rows]"),
    }
}
