//! Joint drift: a change in how columns move together while each column on
//! its own looks the same (e.g. glucose no longer following HbA1c).
//!
//! Per-column tests cannot see it, so the reference keeps, for the declared
//! numeric columns, their pairwise Spearman correlations and the mean and
//! covariance of their normal scores (each value mapped through the
//! reference column's CDF and the standard normal quantile — a Gaussian
//! copula view that needs no training rows). A window is checked two ways:
//! - `correlation`: per pair, the change in Spearman r (Fisher z test with
//!   the 1.06/(n−3) variance of Fieller et al. for Spearman's r);
//! - `joint`: the mean squared Mahalanobis distance of the window's rows
//!   from the reference copula — a reconstruction-error check whose
//!   no-drift value is known (Hotelling: d·(N+1)(N−1)/(N(N−d−2))), and
//!   which rises when rows stop fitting the reference dependence.
//!
//! Both run on at most `drift.joint_max_rows` evenly spaced rows of a window
//! (5,000 by default: their noise there is far below the thresholds, and it
//! keeps the verdict fast) and of at most 20,000 rows of the reference.

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};
use statrs::function::erf::erfc;

use super::column_tests::{Effect, TestResult};
use super::profile::ColumnProfile;
use super::sketch::QuantileSketch;
use crate::stats::{RankedColumn, spearman_ranked};
use crate::table::{ColumnValues, Table};
use crate::topology::DriftConfig;

/// Rows of the reference used for its joint profile.
const MAX_REFERENCE_ROWS: usize = 20_000;
/// Declared columns used when none are declared (the first numeric ones).
const MAX_DEFAULT_COLUMNS: usize = 30;
/// Variance factor of Fisher's z for Spearman's r (Fieller, Hartley & Pearson 1957).
const SPEARMAN_VAR: f64 = 1.06;
const MEAN_ABS_NORMAL: f64 = 0.797_884_560_802_865_4;

/// Reference joint structure of the declared numeric columns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JointProfile {
    pub columns: Vec<String>,
    /// Spearman r of each pair (i < j, row-major order).
    pub spearman: Vec<f64>,
    /// Complete rows behind each r.
    pub pair_rows: Vec<u64>,
    pub rows: u64,
    /// Mean of the normal scores.
    pub mean: Vec<f64>,
    /// Inverse covariance of the normal scores, row-major d × d.
    pub precision: Vec<f64>,
    /// Expected squared Mahalanobis distance of a new row with no drift.
    pub d2_expected: f64,
    /// Variance of the squared distance over the reference rows.
    pub d2_variance: f64,
}

fn stride_rows(n: usize, at_most: usize) -> Vec<usize> {
    if n <= at_most {
        return (0..n).collect();
    }
    (0..at_most).map(|i| i * n / at_most).collect()
}

fn numeric<'a>(table: &'a Table, name: &str) -> Option<&'a [f64]> {
    match &table.column(name)?.values {
        ColumnValues::Numeric(v) => Some(v),
        ColumnValues::Categorical { .. } => None,
    }
}

/// Normal scores of `values[rows]` through `sketch` (missing → 0, the median).
fn normal_scores(values: &[f64], rows: &[usize], sketch: &QuantileSketch) -> Vec<f64> {
    let normal = Normal::standard();
    rows.iter()
        .map(|&r| {
            let x = values[r];
            if x.is_finite() {
                normal.inverse_cdf(sketch.mid_cdf(x))
            } else {
                0.0
            }
        })
        .collect()
}

/// Pairwise Spearman r and complete-row counts, pairs in (i < j) order.
fn spearman_pairs(columns: &[Vec<f64>]) -> (Vec<f64>, Vec<u64>) {
    let ranked: Vec<RankedColumn<'_>> = columns.iter().map(|c| RankedColumn::new(c)).collect();
    let (mut r, mut n) = (Vec::new(), Vec::new());
    for i in 0..columns.len() {
        for j in i + 1..columns.len() {
            r.push(spearman_ranked(&ranked[i], &ranked[j]).unwrap_or(0.0));
            n.push(
                columns[i]
                    .iter()
                    .zip(&columns[j])
                    .filter(|(a, b)| a.is_finite() && b.is_finite())
                    .count() as u64,
            );
        }
    }
    (r, n)
}

fn d2(z: &[Vec<f64>], row: usize, mean: &[f64], precision: &[f64]) -> f64 {
    let d = mean.len();
    let centred: Vec<f64> = (0..d).map(|j| z[j][row] - mean[j]).collect();
    let mut total = 0.0;
    for a in 0..d {
        let mut s = 0.0;
        for b in 0..d {
            s += precision[a * d + b] * centred[b];
        }
        total += centred[a] * s;
    }
    total
}

impl JointProfile {
    /// The joint profile of the declared (or first numeric) columns; `None`
    /// with fewer than two usable columns.
    pub fn build(
        table: &Table,
        profiles: &[(String, ColumnProfile)],
        config: &DriftConfig,
    ) -> Option<JointProfile> {
        let sketches: Vec<(&str, &QuantileSketch)> = profiles
            .iter()
            .filter_map(|(name, p)| match p {
                ColumnProfile::Numeric(n) if !n.sketch.points.is_empty() && n.std > 0.0 => {
                    Some((name.as_str(), &n.sketch))
                }
                _ => None,
            })
            .filter(|(name, _)| {
                config.correlation_columns.is_empty()
                    || config.correlation_columns.iter().any(|c| c == name)
            })
            .take(if config.correlation_columns.is_empty() {
                MAX_DEFAULT_COLUMNS
            } else {
                usize::MAX
            })
            .collect();
        if sketches.len() < 2 {
            return None;
        }
        let rows = stride_rows(table.n_rows(), MAX_REFERENCE_ROWS);
        let n = rows.len();
        let d = sketches.len();
        if n < d + 10 {
            return None;
        }
        let raw: Vec<Vec<f64>> = sketches
            .iter()
            .map(|(name, _)| {
                let v = numeric(table, name).expect("profiled numeric column");
                rows.iter().map(|&r| v[r]).collect()
            })
            .collect();
        let (spearman, pair_rows) = spearman_pairs(&raw);
        let z: Vec<Vec<f64>> = sketches
            .iter()
            .map(|(name, s)| normal_scores(numeric(table, name).expect("numeric"), &rows, s))
            .collect();
        let mean: Vec<f64> = z.iter().map(|c| c.iter().sum::<f64>() / n as f64).collect();
        let mut cov = DMatrix::<f64>::zeros(d, d);
        for a in 0..d {
            for b in a..d {
                let s: f64 = (0..n)
                    .map(|r| (z[a][r] - mean[a]) * (z[b][r] - mean[b]))
                    .sum::<f64>()
                    / (n - 1) as f64;
                cov[(a, b)] = s;
                cov[(b, a)] = s;
            }
        }
        // A tiny ridge keeps exactly collinear columns invertible.
        let ridge = 1e-6 * (0..d).map(|i| cov[(i, i)]).sum::<f64>() / d as f64;
        for i in 0..d {
            cov[(i, i)] += ridge.max(1e-12);
        }
        let inverse = cov.cholesky()?.inverse();
        let precision: Vec<f64> = (0..d)
            .flat_map(|a| (0..d).map(move |b| (a, b)))
            .map(|(a, b)| inverse[(a, b)])
            .collect();
        let in_sample: Vec<f64> = (0..n).map(|r| d2(&z, r, &mean, &precision)).collect();
        let m = in_sample.iter().sum::<f64>() / n as f64;
        let d2_variance = in_sample.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64;
        let (df, nf) = (d as f64, n as f64);
        Some(JointProfile {
            columns: sketches.iter().map(|(n, _)| n.to_string()).collect(),
            spearman,
            pair_rows,
            rows: n as u64,
            mean,
            precision,
            d2_expected: df * (nf + 1.0) * (nf - 1.0) / (nf * (nf - df - 2.0)),
            d2_variance,
        })
    }

    /// Correlation-change and joint tests of a window, appended to `out`.
    /// Skipped (the schema tests report it) when a declared column is gone.
    pub fn window_tests(
        &self,
        profiles: &[(String, ColumnProfile)],
        window: &Table,
        config: &DriftConfig,
        out: &mut Vec<TestResult>,
    ) {
        let rows = stride_rows(window.n_rows(), config.joint_max_rows);
        let n = rows.len();
        let d = self.columns.len();
        if n < d + 10 {
            return;
        }
        let mut raw = Vec::with_capacity(d);
        let mut z = Vec::with_capacity(d);
        for name in &self.columns {
            let (Some(values), Some((_, ColumnProfile::Numeric(p)))) = (
                numeric(window, name),
                profiles.iter().find(|(n, _)| n == name),
            ) else {
                return;
            };
            raw.push(rows.iter().map(|&r| values[r]).collect::<Vec<f64>>());
            z.push(normal_scores(values, &rows, &p.sketch));
        }
        let (spearman, pair_rows) = spearman_pairs(&raw);
        let mut k = 0;
        for i in 0..d {
            for j in i + 1..d {
                let (r_ref, r_win) = (self.spearman[k], spearman[k]);
                let (n_ref, n_win) = (self.pair_rows[k] as f64, pair_rows[k] as f64);
                k += 1;
                if n_ref < 10.0 || n_win < 10.0 {
                    continue;
                }
                let var = SPEARMAN_VAR / (n_win - 3.0) + SPEARMAN_VAR / (n_ref - 3.0);
                let fz = |r: f64| r.clamp(-0.999_999, 0.999_999).atanh();
                let stat = (fz(r_win) - fz(r_ref)) / var.sqrt();
                let p = erfc(stat.abs() / std::f64::consts::SQRT_2);
                // Var(r) ≈ (1 − r²)² · Var(atanh r) (delta method).
                let noise = MEAN_ABS_NORMAL * (1.0 - r_ref * r_ref) * var.sqrt();
                out.push(TestResult::new(
                    &format!("{}~{}", self.columns[i], self.columns[j]),
                    None,
                    "correlation",
                    "fisher_z",
                    p,
                    n_win as u64,
                    n_ref as u64,
                    vec![Effect {
                        method: "spearman_diff".into(),
                        value: (r_win - r_ref).abs(),
                        threshold: config.correlation_diff_max,
                        noise,
                    }],
                ));
            }
        }
        let mean_d2 = (0..n)
            .map(|r| d2(&z, r, &self.mean, &self.precision))
            .sum::<f64>()
            / n as f64;
        // The reference's own mean and covariance are estimates too.
        let se = (self.d2_variance * (1.0 / n as f64 + 1.0 / self.rows as f64)).sqrt();
        let stat = (mean_d2 - self.d2_expected) / se.max(1e-12);
        out.push(TestResult::new(
            "(joint)",
            None,
            "joint",
            "mahalanobis",
            erfc(stat.abs() / std::f64::consts::SQRT_2),
            n as u64,
            self.rows,
            vec![Effect {
                method: "joint".into(),
                value: (mean_d2 / self.d2_expected - 1.0).abs(),
                threshold: config.joint_max,
                noise: MEAN_ABS_NORMAL * se / self.d2_expected,
            }],
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::profile::ReferenceProfile;
    use crate::table::Column;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal as RNormal};

    /// Two normal columns with correlation `rho`.
    fn pair(n: usize, rho: f64, seed: u64) -> Table {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let g = RNormal::new(0.0, 1.0).unwrap();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let (a, b): (f64, f64) = (g.sample(&mut rng), g.sample(&mut rng));
            x.push(a);
            y.push(rho * a + (1.0 - rho * rho).sqrt() * b);
        }
        Table::new(vec![Column::numeric("x", x), Column::numeric("y", y)])
    }

    #[test]
    fn reference_spearman_matches_the_normal_closed_form() {
        // For a bivariate normal, Spearman ρ_s = (6/π)·asin(ρ/2): ρ = 0.8 → 0.7859.
        let r = ReferenceProfile::build(&pair(20_000, 0.8, 1));
        let j = r.joint.expect("joint profile");
        assert!((j.spearman[0] - 0.7859).abs() < 0.01, "{}", j.spearman[0]);
        // d = 2, N = 20000: E[D²] = 2·20001·19999/(20000·19996) ≈ 2.0003.
        assert!((j.d2_expected - 2.0003).abs() < 1e-3);
    }

    #[test]
    fn changed_dependence_with_same_marginals_is_caught_and_same_is_not() {
        let config = DriftConfig::default();
        let r = ReferenceProfile::build(&pair(5_000, 0.8, 1));
        let j = r.joint.as_ref().unwrap();
        let mut same = Vec::new();
        j.window_tests(&r.profiles, &pair(3_000, 0.8, 2), &config, &mut same);
        assert!(same.iter().all(|t| t.p_value > 0.001), "{same:?}");
        let mut changed = Vec::new();
        j.window_tests(&r.profiles, &pair(3_000, 0.3, 3), &config, &mut changed);
        assert!(
            changed.iter().all(|t| t.p_value < 1e-6 && t.score > 1.0),
            "{changed:?}"
        );
    }
}
