//! Calibration harness for the gate on real tables: how often fresh real
//! rows fail (false fails) and how often deliberately bad batches are caught
//! (power), per operator and batch size.
//!
//! ```text
//! tools/calibration/run.sh                 # fetches the tables, runs this on each
//! cargo run --release --example gate_calibration -- DIR [--runs N] [--sizes 200,1000]
//!     [--kinds fresh,copy5,...] [--seed S] [--json OUT] [--bad-runs N]
//!     [--null-replicates N]
//! ```
//!
//! `--bad-runs` caps the runs of the bad kinds (as `bad_runs` in
//! `calibration.toml`); `--null-replicates` sets `gate.null_replicates` (the
//! fidelity family's resampling null, most of a batch's time; at least 20).
//! Lowering it makes the fidelity figures coarser and leaves every privacy
//! operator's result unchanged (their nulls are their own), so it serves
//! runs that calibrate a privacy operator alone.
//!
//! DIR holds `table.csv` and `roles.toml` (the `resynth validate` roles
//! file), plus optional `calibration.toml` with `entity = "<column>"` (the
//! privacy unit to split by; rows otherwise) and `sizes = [...]`.
//!
//! Each run shuffles the patients (seeded by the run number) and takes, for a
//! batch size n, training R = the first n rows' worth of patients, holdout H
//! = the next n, and fresh F = the next n, like a window split in half with a
//! batch as large as its training side. The batches scored against (R, H):
//! - `fresh`: F itself, fresh patients from the same population (a perfect
//!   generator); `bootstrap`: n rows drawn with replacement from every row
//!   outside R and H (F and the rest of the table);
//! - `copy5` / `copy50`: F with 5 % / 50 % of its rows replaced by training
//!   rows;
//! - `noise`: training rows with every numeric value moved by N(0, (0.05 σ)²)
//!   (σ of the column in R), categories kept;
//! - `shuffled`: F with every column permuted on its own (marginals kept,
//!   every dependence destroyed);
//! - `correlation_only`: a Gaussian copula of R's numeric columns (normal
//!   scores, their correlation, R's quantiles back) with every categorical
//!   column drawn on its own from R's frequencies: what a generator that
//!   models correlations but not categorical structure produces;
//! - `subgroup_collapse`: F with the smallest level (in R) of the first
//!   declared subgroup column replaced by rows of the other levels;
//! - `clamped`: F with every number outside R's range moved onto R's
//!   nearer minimum or maximum, what a generator that clamps its draws to
//!   the training range produces (about 2 rows in n + 1 per numeric column
//!   land on a real extreme): the case `outlier_replication` is for.
//!
//! It prints, per size and batch kind, the share of runs whose gate failed
//! and which operators failed; for fresh batches, the per-operator false-fail
//! rates and the median noise allowance against the effect limit, so a user
//! sees what effect size a window of that size can prove.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use resynth::gate::{GateReport, Units, evaluate_in_units};
use resynth::source::files::{ValidateSpec, read_one};
use resynth::table::{Column, ColumnValues, NULL_CODE, Table};
use serde::Serialize;

const KINDS: [&str; 9] = [
    "fresh",
    "bootstrap",
    "copy5",
    "copy50",
    "noise",
    "shuffled",
    "correlation_only",
    "subgroup_collapse",
    "clamped",
];

#[derive(serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Calibration {
    entity: Option<String>,
    sizes: Vec<usize>,
    /// Runs per size for the bad batches (fresh and bootstrap always get
    /// `--runs`); 0 = the same.
    bad_runs: usize,
}

struct Args {
    dir: PathBuf,
    runs: usize,
    sizes: Option<Vec<usize>>,
    kinds: Vec<String>,
    seed: u64,
    json: Option<PathBuf>,
    bad_runs: Option<usize>,
    null_replicates: Option<usize>,
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let dir = PathBuf::from(it.next().expect("usage: gate_calibration DIR [options]"));
    let mut args = Args {
        dir,
        runs: 100,
        sizes: None,
        kinds: KINDS.iter().map(|s| s.to_string()).collect(),
        seed: 0,
        json: None,
        bad_runs: None,
        null_replicates: None,
    };
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--runs" => args.runs = value.parse().expect("--runs N"),
            "--sizes" => {
                args.sizes = Some(value.split(',').map(|v| v.parse().expect("size")).collect())
            }
            "--kinds" => args.kinds = value.split(',').map(String::from).collect(),
            "--seed" => args.seed = value.parse().expect("--seed S"),
            "--json" => args.json = Some(PathBuf::from(value)),
            "--bad-runs" => args.bad_runs = Some(value.parse().expect("--bad-runs N")),
            "--null-replicates" => {
                args.null_replicates = Some(value.parse().expect("--null-replicates N"))
            }
            other => panic!("unknown option {other}"),
        }
    }
    args
}

/// Row groups by privacy unit (one group per row without an entity).
fn units(table: &Table, entity: Option<&str>) -> Vec<Vec<usize>> {
    let Some(col) = entity.and_then(|e| table.column(e)) else {
        return (0..table.n_rows()).map(|r| vec![r]).collect();
    };
    let mut by: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for row in 0..table.n_rows() {
        let key = match &col.values {
            ColumnValues::Numeric(v) => format!("{}", v[row]),
            ColumnValues::Categorical { .. } => col.label(row).unwrap_or("").to_string(),
        };
        by.entry(key).or_default().push(row);
    }
    by.into_values().collect()
}

fn without(table: &Table, name: Option<&str>) -> Table {
    Table::new(
        table
            .columns
            .iter()
            .filter(|c| Some(c.name.as_str()) != name)
            .cloned()
            .collect(),
    )
}

/// Takes whole units from `order[*next..]` until `n` rows are collected.
fn take_rows(groups: &[Vec<usize>], order: &[usize], next: &mut usize, n: usize) -> Vec<usize> {
    let mut rows = Vec::with_capacity(n);
    while rows.len() < n && *next < order.len() {
        rows.extend(&groups[order[*next]]);
        *next += 1;
    }
    rows.truncate(n);
    rows
}

fn normal(rng: &mut StdRng) -> f64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

fn numeric(c: &Column) -> Option<&[f64]> {
    match &c.values {
        ColumnValues::Numeric(v) => Some(v),
        ColumnValues::Categorical { .. } => None,
    }
}

fn sd(v: &[f64]) -> f64 {
    let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    let n = f.len().max(2) as f64;
    let m = f.iter().sum::<f64>() / n;
    (f.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0)).sqrt()
}

fn shuffled(fresh: &Table, rng: &mut StdRng) -> Table {
    let n = fresh.n_rows();
    Table::new(
        fresh
            .columns
            .iter()
            .map(|c| {
                let mut perm: Vec<usize> = (0..n).collect();
                perm.shuffle(rng);
                Table::new(vec![c.clone()]).take(&perm).columns.remove(0)
            })
            .collect(),
    )
}

fn with_copies(fresh: &Table, train: &Table, share: f64, rng: &mut StdRng) -> Table {
    let n = fresh.n_rows();
    let k = ((n as f64) * share).round() as usize;
    let mut rows: Vec<usize> = (0..n).collect();
    rows.shuffle(rng);
    let copied: Vec<usize> = (0..k)
        .map(|_| rng.random_range(0..train.n_rows()))
        .collect();
    let kept = fresh.take(&rows[k..]);
    let copies = train.take(&copied);
    concat(&copies, &kept)
}

fn concat(a: &Table, b: &Table) -> Table {
    Table::new(
        a.columns
            .iter()
            .map(|ca| {
                let cb = b.column(&ca.name).expect("same columns");
                match (&ca.values, &cb.values) {
                    (ColumnValues::Numeric(x), ColumnValues::Numeric(y)) => {
                        Column::numeric(ca.name.clone(), x.iter().chain(y).copied().collect())
                    }
                    _ => {
                        let labels: Vec<Option<&str>> = (0..a.n_rows())
                            .map(|r| ca.label(r))
                            .chain((0..b.n_rows()).map(|r| cb.label(r)))
                            .collect();
                        Column::categorical(ca.name.clone(), &labels)
                    }
                }
            })
            .collect(),
    )
}

fn noisy_copies(train: &Table, n: usize, rng: &mut StdRng) -> Table {
    let rows: Vec<usize> = (0..n)
        .map(|_| rng.random_range(0..train.n_rows()))
        .collect();
    let base = train.take(&rows);
    Table::new(
        base.columns
            .iter()
            .zip(&train.columns)
            .map(|(c, orig)| match numeric(c) {
                Some(v) => {
                    let s = 0.05 * sd(numeric(orig).unwrap_or(&[]));
                    Column::numeric(
                        c.name.clone(),
                        v.iter().map(|x| x + s * normal(rng)).collect(),
                    )
                }
                None => c.clone(),
            })
            .collect(),
    )
}

/// Gaussian copula over R's numeric columns; categorical columns drawn
/// independently from R's frequencies.
fn correlation_only(train: &Table, n: usize, rng: &mut StdRng) -> Table {
    let nums: Vec<(usize, Vec<f64>)> = train
        .columns
        .iter()
        .enumerate()
        .filter_map(|(i, c)| numeric(c).map(|v| (i, v.to_vec())))
        .collect();
    let rows = train.n_rows();
    // Normal scores of each numeric column (missing → 0, the median).
    let scores: Vec<Vec<f64>> = nums
        .iter()
        .map(|(_, v)| {
            let mut idx: Vec<usize> = (0..rows).filter(|&r| v[r].is_finite()).collect();
            idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
            let mut z = vec![0.0; rows];
            let m = idx.len() as f64;
            for (k, &r) in idx.iter().enumerate() {
                z[r] = probit((k as f64 + 0.5) / m);
            }
            z
        })
        .collect();
    let d = scores.len();
    let mut cov = vec![vec![0.0; d]; d];
    for i in 0..d {
        for j in 0..d {
            cov[i][j] = (0..rows).map(|r| scores[i][r] * scores[j][r]).sum::<f64>() / rows as f64;
        }
        cov[i][i] += 1e-6;
    }
    let l = cholesky(&cov);
    let sorted: Vec<Vec<f64>> = nums
        .iter()
        .map(|(_, v)| {
            let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
            s.sort_by(f64::total_cmp);
            s
        })
        .collect();
    let missing: Vec<f64> = nums
        .iter()
        .map(|(_, v)| v.iter().filter(|x| !x.is_finite()).count() as f64 / rows as f64)
        .collect();
    let mut out_num: Vec<Vec<f64>> = vec![Vec::with_capacity(n); d];
    for _ in 0..n {
        let e: Vec<f64> = (0..d).map(|_| normal(rng)).collect();
        for i in 0..d {
            let z: f64 = (0..=i).map(|k| l[i][k] * e[k]).sum();
            let u = 0.5 * (1.0 + erf(z / std::f64::consts::SQRT_2));
            let s = &sorted[i];
            let x = if s.is_empty() || rng.random::<f64>() < missing[i] {
                f64::NAN
            } else {
                s[((u * s.len() as f64) as usize).min(s.len() - 1)]
            };
            out_num[i].push(x);
        }
    }
    let mut generated: BTreeMap<usize, Vec<f64>> =
        nums.iter().map(|(i, _)| *i).zip(out_num).collect();
    let columns = train
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| match generated.remove(&i) {
            Some(v) => Column::numeric(c.name.clone(), v),
            None => {
                let rows: Vec<usize> = (0..n)
                    .map(|_| rng.random_range(0..train.n_rows()))
                    .collect();
                Table::new(vec![c.clone()]).take(&rows).columns.remove(0)
            }
        })
        .collect();
    Table::new(columns)
}

fn cholesky(a: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let d = a.len();
    let mut l = vec![vec![0.0; d]; d];
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                l[i][j] = (a[i][i] - s).max(1e-12).sqrt();
            } else {
                l[i][j] = (a[i][j] - s) / l[j][j];
            }
        }
    }
    l
}

fn erf(x: f64) -> f64 {
    statrs::function::erf::erf(x)
}

fn probit(p: f64) -> f64 {
    std::f64::consts::SQRT_2 * statrs::function::erf::erf_inv(2.0 * p - 1.0)
}

/// F with every finite number outside R's range of its column set to the
/// nearer end of that range.
fn clamped(fresh: &Table, train: &Table) -> Table {
    Table::new(
        fresh
            .columns
            .iter()
            .map(|c| {
                let (Some(v), Some(r)) = (numeric(c), train.column(&c.name).and_then(numeric))
                else {
                    return c.clone();
                };
                let finite = r.iter().copied().filter(|x| x.is_finite());
                let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                    (a.min(x), b.max(x))
                });
                if lo > hi {
                    return c.clone();
                }
                let v = v
                    .iter()
                    .map(|&x| if x.is_finite() { x.clamp(lo, hi) } else { x })
                    .collect();
                Column::numeric(c.name.clone(), v)
            })
            .collect(),
    )
}

/// F with the rows of the smallest level (in R) of `column` replaced by
/// rows of the other levels. `None` when the column has a single level.
fn collapse(fresh: &Table, train: &Table, column: &str, rng: &mut StdRng) -> Option<Table> {
    let (rc, fc) = (train.column(column)?, fresh.column(column)?);
    let key = |c: &Column, r: usize| -> String {
        match &c.values {
            ColumnValues::Numeric(v) => format!("{}", v[r]),
            ColumnValues::Categorical { codes, .. } if codes[r] == NULL_CODE => "(missing)".into(),
            ColumnValues::Categorical { .. } => c.label(r).unwrap_or("").to_string(),
        }
    };
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in 0..train.n_rows() {
        *counts.entry(key(rc, r)).or_default() += 1;
    }
    if counts.len() < 2 {
        return None;
    }
    let smallest = counts.iter().min_by_key(|(_, n)| **n)?.0.clone();
    let keep: Vec<usize> = (0..fresh.n_rows())
        .filter(|&r| key(fc, r) != smallest)
        .collect();
    let rows: Vec<usize> = (0..fresh.n_rows())
        .map(|r| {
            if key(fc, r) == smallest {
                keep[rng.random_range(0..keep.len())]
            } else {
                r
            }
        })
        .collect();
    Some(fresh.take(&rows))
}

#[derive(Default, Serialize, Clone)]
struct Tally {
    runs: usize,
    failed: usize,
    by_operator: BTreeMap<String, usize>,
    /// Fresh batches: per operator, (effect limit, noise allowance) of every
    /// result, to report the median allowance.
    #[serde(skip)]
    allowances: BTreeMap<String, Vec<(f64, f64)>>,
    seconds: f64,
}

impl Tally {
    fn add(&mut self, report: &GateReport, seconds: f64) {
        self.runs += 1;
        self.seconds += seconds;
        self.failed += usize::from(!report.passed);
        let mut seen = std::collections::BTreeSet::new();
        for f in report.failures() {
            if seen.insert(f.operator.clone()) {
                *self.by_operator.entry(f.operator.clone()).or_default() += 1;
            }
        }
        for r in &report.results {
            if let Some(a) = r.noise_allowance {
                self.allowances
                    .entry(r.operator.clone())
                    .or_default()
                    .push((r.effect_limit, a));
            }
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let args = parse_args();
    let mut spec = ValidateSpec::load(&args.dir.join("roles.toml")).expect("roles.toml");
    if let Some(b) = args.null_replicates {
        spec.gate.null_replicates = b;
    }
    let mut cal: Calibration = std::fs::read_to_string(args.dir.join("calibration.toml"))
        .ok()
        .map(|t| toml::from_str(&t).expect("calibration.toml"))
        .unwrap_or_default();
    if let Some(b) = args.bad_runs {
        cal.bad_runs = b;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    // The privacy unit is read as a label (even when it is also an id
    // column, which the gate never sees) so runs can split by it.
    let entity = cal.entity.as_deref();
    let mut read_spec = spec.clone();
    if let Some(e) = entity {
        read_spec.id_columns.retain(|c| c != e);
        read_spec.categorical.push(e.to_string());
    }
    let (table, _) = rt
        .block_on(read_one(&args.dir.join("table.csv"), &read_spec))
        .expect("table.csv");
    let groups = units(&table, entity);
    let mut unit_of_row = vec![0u32; table.n_rows()];
    for (u, rows) in groups.iter().enumerate() {
        for &r in rows {
            unit_of_row[r] = u as u32;
        }
    }
    let unit_codes = |rows: &[usize]| rows.iter().map(|&r| unit_of_row[r]).collect::<Vec<u32>>();
    let table = without(&table, entity);
    let sizes = args.sizes.clone().unwrap_or_else(|| cal.sizes.clone());
    let name = args
        .dir
        .file_name()
        .map_or("table".into(), |n| n.to_string_lossy().to_string());
    println!(
        "{name}: {} rows × {} columns, {} privacy units; sizes {sizes:?}, {} runs",
        table.n_rows(),
        table.columns.len(),
        groups.len(),
        args.runs
    );
    let subgroup = spec.roles.subgroups.first().map(|s| s.column.clone());
    let mut results: BTreeMap<(usize, String), Tally> = BTreeMap::new();
    for &n in &sizes {
        if 3 * n > table.n_rows() {
            println!("  size {n}: skipped, the table has fewer than 3 × {n} rows");
            continue;
        }
        for run in 0..args.runs {
            let mut rng = StdRng::seed_from_u64(args.seed ^ (n as u64) << 20 ^ run as u64);
            let mut order: Vec<usize> = (0..groups.len()).collect();
            order.shuffle(&mut rng);
            let mut next = 0;
            let r_rows = take_rows(&groups, &order, &mut next, n);
            let h_rows = take_rows(&groups, &order, &mut next, n);
            let f_rows = take_rows(&groups, &order, &mut next, n);
            // Every row neither in R nor in H is unseen; a bootstrap batch
            // draws from all of them, so it repeats few rows.
            let unseen: Vec<usize> = order[next..]
                .iter()
                .flat_map(|&u| groups[u].iter().copied())
                .chain(f_rows.iter().copied())
                .collect();
            let (r, h, f) = (
                table.take(&r_rows),
                table.take(&h_rows),
                table.take(&f_rows),
            );
            for kind in &args.kinds {
                let bad_runs = if cal.bad_runs == 0 {
                    args.runs
                } else {
                    cal.bad_runs
                };
                if !matches!(kind.as_str(), "fresh" | "bootstrap") && run >= bad_runs {
                    continue;
                }
                // The batch's privacy units where its rows are real
                // patients' rows (fresh; bootstrap, where a row drawn twice
                // is one patient twice); other kinds' rows are their own.
                let mut s_units = None;
                let s = match kind.as_str() {
                    "fresh" => {
                        s_units = Some(unit_codes(&f_rows));
                        Some(f.clone())
                    }
                    "bootstrap" => {
                        let rows: Vec<usize> = (0..n)
                            .map(|_| unseen[rng.random_range(0..unseen.len())])
                            .collect();
                        s_units = Some(unit_codes(&rows));
                        Some(table.take(&rows))
                    }
                    "copy5" => Some(with_copies(&f, &r, 0.05, &mut rng)),
                    "copy50" => Some(with_copies(&f, &r, 0.5, &mut rng)),
                    "noise" => Some(noisy_copies(&r, n, &mut rng)),
                    "shuffled" => Some(shuffled(&f, &mut rng)),
                    "correlation_only" => Some(correlation_only(&r, n, &mut rng)),
                    "subgroup_collapse" => subgroup
                        .as_deref()
                        .and_then(|c| collapse(&f, &r, c, &mut rng)),
                    "clamped" => Some(clamped(&f, &r)),
                    other => panic!("unknown kind {other}"),
                };
                let Some(s) = s else { continue };
                let t = std::time::Instant::now();
                let units = Units {
                    train: Some(unit_codes(&r_rows)),
                    holdout: Some(unit_codes(&h_rows)),
                    synthetic: s_units,
                };
                let report = evaluate_in_units(
                    &r,
                    &h,
                    &s,
                    &units,
                    &spec.gate,
                    &spec.roles,
                    run as u64 ^ args.seed,
                )
                .expect("gate");
                if std::env::var_os("EXPLAIN").is_some() && kind == "fresh" {
                    for f in report.failures() {
                        println!("    run {run} {}: {}", f.operator, f.explanation);
                    }
                }
                results
                    .entry((n, kind.clone()))
                    .or_default()
                    .add(&report, t.elapsed().as_secs_f64());
            }
        }
        print_size(&results, n, &args.kinds);
    }
    if let Some(path) = &args.json {
        let out: BTreeMap<String, &Tally> = results
            .iter()
            .map(|((n, k), t)| (format!("{n}/{k}"), t))
            .collect();
        std::fs::write(path, serde_json::to_vec_pretty(&out).expect("json")).expect("write json");
        println!("wrote {}", path.display());
    }
}

fn print_size(results: &BTreeMap<(usize, String), Tally>, n: usize, kinds: &[String]) {
    for kind in kinds {
        let Some(t) = results.get(&(n, kind.clone())) else {
            continue;
        };
        let ops: Vec<String> = t
            .by_operator
            .iter()
            .map(|(op, k)| format!("{op} {:.0}%", 100.0 * *k as f64 / t.runs as f64))
            .collect();
        println!(
            "  n={n:<6} {kind:<18} failed {:>3} of {:>3} ({:>5.1}%)  {:.2} s/run  [{}]",
            t.failed,
            t.runs,
            100.0 * t.failed as f64 / t.runs.max(1) as f64,
            t.seconds / t.runs.max(1) as f64,
            ops.join(", ")
        );
        if kind == "fresh" {
            let parts: Vec<String> = t
                .allowances
                .iter()
                .map(|(op, v)| {
                    let limit = median(v.iter().map(|x| x.0).collect());
                    let noise = median(v.iter().map(|x| x.1).collect());
                    format!("{op} {noise:.3}/{limit:.3}")
                })
                .collect();
            println!(
                "           median noise allowance / effect limit: {}",
                parts.join(", ")
            );
        }
    }
}
