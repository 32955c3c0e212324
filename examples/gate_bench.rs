//! Gate timing, the SDMetrics cross-check data and the speed comparison
//! with the reference tools, on a seeded mixed table (18 numeric + 12
//! categorical columns, 5 % missing, correlated through two latent
//! factors, with a binary target `c0`).
//!
//! ```text
//! cargo run --release --example gate_bench -- timing [rows] [runs]
//! cargo run --release --example gate_bench -- crosscheck DIR [rows]
//! python tools/crosscheck/sdmetrics_check.py DIR/real.csv DIR/synthetic.csv \
//!     DIR/metadata.json --holdout DIR/holdout.csv --compare DIR/ours.json
//! RESYNTH_PYTHON=python3 cargo run --release --example gate_bench -- compare DIR [rows]
//! ```
//!
//! `timing` prints the wall time of `gate::evaluate` on rows × 3 tables
//! (target: ≤ 10 s for 50k rows on two cores), with and without roles.
//! `crosscheck` writes real (training) / holdout / synthetic CSVs,
//! SDMetrics metadata and our SDMetrics-style scores (`ours.json`); its
//! default of 2 000 rows keeps SDMetrics' DCROverfittingProtection (a
//! pandas cross join of every synthetic row with every real row, ≈ 4 s per
//! million row pairs) to about a minute. `compare` times our full gate
//! (roles with quasi-identifiers, so the Anonymeter-style attacks run) on
//! rows × 3 tables (default 50 000), writes the same tables as CSV and runs
//! `tools/crosscheck/reference_timing.py` with `RESYNTH_PYTHON` (default
//! `python3`), which times SDMetrics and Anonymeter on them and prints the
//! ratio of their time to ours.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use resynth::gate::{GateConfig, Roles, evaluate};
use resynth::table::{Column, ColumnValues, Table};

#[path = "common/mixed_table.rs"]
mod mixed_table;
use mixed_table::mixed;

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

/// `roles()` plus quasi-identifiers and sensitive columns, so the gate runs
/// every operator, the Anonymeter-style attacks included.
const QUASI_IDENTIFIERS: [&str; 5] = ["n0", "c1", "c2", "c5", "n2"];
const SENSITIVE: [&str; 2] = ["c4", "n4"];

fn full_roles() -> Roles {
    Roles {
        quasi_identifiers: QUASI_IDENTIFIERS.map(String::from).to_vec(),
        sensitive: SENSITIVE.map(String::from).to_vec(),
        ..roles()
    }
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
            for f in report.failures() {
                println!("  {}: {}", f.operator, f.explanation);
            }
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

fn write_csv(t: &Table, path: &Path) {
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

/// The first `k` rows of `a` followed by rows `k..` of `b` (same schema).
fn splice(a: &Table, b: &Table, k: usize) -> Table {
    let head = a.take(&(0..k).collect::<Vec<_>>());
    let tail = b.take(&(k..b.n_rows()).collect::<Vec<_>>());
    let columns = head
        .columns
        .iter()
        .zip(&tail.columns)
        .map(|(x, y)| match (&x.values, &y.values) {
            (ColumnValues::Numeric(p), ColumnValues::Numeric(q)) => {
                Column::numeric(x.name.clone(), p.iter().chain(q).copied().collect())
            }
            _ => {
                let labels: Vec<Option<&str>> = (0..head.n_rows())
                    .map(|i| x.label(i))
                    .chain((0..tail.n_rows()).map(|i| y.label(i)))
                    .collect();
                Column::categorical(x.name.clone(), &labels)
            }
        })
        .collect();
    Table::new(columns)
}

fn write_metadata(t: &Table, path: &Path) {
    let columns: serde_json::Map<String, serde_json::Value> = t
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
        path,
        serde_json::to_string_pretty(&serde_json::json!({ "columns": columns })).expect("json"),
    )
    .expect("write metadata");
}

fn crosscheck(dir: &str, rows: usize) {
    let dir = Path::new(dir);
    std::fs::create_dir_all(dir).expect("output dir");
    let r = mixed(rows, 1, 1.0, 0.0);
    let h = mixed(rows, 2, 1.0, 0.0);
    // A flawed "generator": weaker dependence, one shifted column, and a
    // fifth of its rows copied from training, so the DCR share sits above
    // ½ and DCROverfittingProtection is not pinned at 1.
    let s = splice(&r, &mixed(rows, 3, 0.6, 0.3), rows / 5);
    write_csv(&r, &dir.join("real.csv"));
    write_csv(&h, &dir.join("holdout.csv"));
    write_csv(&s, &dir.join("synthetic.csv"));
    write_metadata(&r, &dir.join("metadata.json"));
    let report = evaluate(&r, &h, &s, &GateConfig::default(), &roles(), 7).expect("gate");
    let q = report.aggregates.clone().expect("aggregates");
    std::fs::write(
        dir.join("ours.json"),
        serde_json::to_string_pretty(&q).expect("json"),
    )
    .expect("write ours");
    let dcr = q
        .dcr_overfitting_protection
        .expect("the full gate scores DCR");
    println!(
        "wrote {}: ColumnShapes {:.4}, ColumnPairTrends {:.4} (associated pairs {:?}); \
         holdout {:.4} / {:.4}; DCROverfittingProtection {:.4} ({:.4} of {} synthetic rows \
         closer to training)",
        dir.display(),
        q.column_shapes.unwrap_or(f64::NAN),
        q.column_pair_trends.unwrap_or(f64::NAN),
        q.column_pair_trends_associated,
        q.holdout_column_shapes.unwrap_or(f64::NAN),
        q.holdout_column_pair_trends.unwrap_or(f64::NAN),
        dcr.score,
        dcr.closer_to_training,
        dcr.synthetic_rows,
    );
    let failed = report.failed_operators();
    println!(
        "the flawed generator fails {} of {} gated results, e.g. {:?}",
        failed.len(),
        report.results.len(),
        &failed[..failed.len().min(5)]
    );
}

/// Times our full gate on rows × 3 tables, writes them as CSV, then lets
/// `reference_timing.py` time SDMetrics and Anonymeter on the same files.
fn compare(dir: &str, rows: usize) {
    let dir = Path::new(dir);
    std::fs::create_dir_all(dir).expect("output dir");
    let (r, h, s) = (
        mixed(rows, 1, 1.0, 0.0),
        mixed(rows, 2, 1.0, 0.0),
        mixed(rows, 3, 1.0, 0.0),
    );
    let config = GateConfig::default();
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let report = evaluate(&r, &h, &s, &config, &full_roles(), 7).expect("gate");
    let (secs, cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    println!(
        "resynth gate, {rows} synthetic vs {rows} train + {rows} holdout × {} columns, \
         {} QIs, {} sensitive, utility target, subgroups, conditionals: {secs:.2} s wall, \
         {cpu:.2} s CPU, {} gated + {} reported results",
        r.columns.len(),
        QUASI_IDENTIFIERS.len(),
        SENSITIVE.len(),
        report.results.len(),
        report.reported.len(),
    );
    for (name, table) in [("train", &r), ("holdout", &h), ("synthetic", &s)] {
        write_csv(table, &dir.join(format!("{name}.csv")));
    }
    write_metadata(&r, &dir.join("metadata.json"));
    let q = report.aggregates.as_ref().expect("aggregates");
    let ours = serde_json::json!({
        "rows": rows,
        "wall_seconds": secs,
        "cpu_seconds": cpu,
        "quasi_identifiers": QUASI_IDENTIFIERS,
        "sensitive": SENSITIVE,
        "anonymeter_n_attacks": config.anonymeter_n_attacks,
        "dcr_overfitting_protection": q.dcr_overfitting_protection,
        "column_shapes": q.column_shapes,
        "column_pair_trends": q.column_pair_trends,
    });
    let ours_path = dir.join("ours_timing.json");
    std::fs::write(
        &ours_path,
        serde_json::to_string_pretty(&ours).expect("json"),
    )
    .expect("write ours_timing.json");
    let python = std::env::var("RESYNTH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/crosscheck/reference_timing.py");
    let status = std::process::Command::new(&python)
        .arg(&script)
        .arg(dir)
        .arg("--ours")
        .arg(&ours_path)
        .status()
        .unwrap_or_else(|e| panic!("could not run {python} {}: {e}", script.display()));
    if !status.success() {
        eprintln!("reference_timing.py failed: {status}");
        std::process::exit(1);
    }
}

/// False-fail rate of each gated operator on independent draws from one
/// population: what a faithful generator would see, by chance alone.
fn calibrate(rows: usize, trials: u64) {
    let mut fails: std::collections::BTreeMap<String, usize> = Default::default();
    let mut batches_failed = 0;
    for trial in 0..trials {
        let base = 100 + 3 * trial;
        let (r, h, s) = (
            mixed(rows, base, 1.0, 0.0),
            mixed(rows, base + 1, 1.0, 0.0),
            mixed(rows, base + 2, 1.0, 0.0),
        );
        let report = evaluate(&r, &h, &s, &GateConfig::default(), &roles(), trial).expect("gate");
        batches_failed += usize::from(!report.passed);
        let mut seen = std::collections::BTreeSet::new();
        for f in report.failures() {
            if seen.insert(f.operator.clone()) {
                *fails.entry(f.operator.clone()).or_default() += 1;
            }
        }
    }
    println!(
        "{trials} faithful batches of {rows} rows × 30 columns: {batches_failed} failed the gate \
         ({:.1}%)",
        100.0 * batches_failed as f64 / trials as f64
    );
    for (op, n) in fails {
        println!(
            "  {op}: failed {n} of {trials} ({:.1}%)",
            100.0 * n as f64 / trials as f64
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows =
        |i: usize, default: usize| args.get(i).and_then(|x| x.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str) {
        Some("timing") => timing(rows(1, 50_000), rows(2, 2)),
        Some("calibrate") => calibrate(rows(1, 3_000), rows(2, 100) as u64),
        Some("crosscheck") => crosscheck(
            args.get(1).map_or("target/crosscheck", String::as_str),
            rows(2, 2_000),
        ),
        Some("compare") => compare(
            args.get(1)
                .map_or("target/crosscheck/compare", String::as_str),
            rows(2, 50_000),
        ),
        _ => {
            eprintln!(
                "usage: gate_bench timing [rows] [runs] | calibrate [rows] [trials] | crosscheck DIR [rows] | compare DIR [rows]"
            );
            std::process::exit(2);
        }
    }
}
