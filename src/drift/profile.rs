//! The reference profile stored with every model, and the per-column
//! distances of a window from it.
//!
//! Numeric columns keep 101 quantiles (the reference CDF, interpolated, for
//! KS; the interpolation error is at most 0.01 in D) and decile bins (for PSI).
//! Categorical columns keep category shares; a category the reference never
//! saw is counted in an UNSEEN bucket instead of producing an infinity.

use serde::{Deserialize, Serialize};

use crate::table::{Column, ColumnValues, Table};

/// Floor for an empty bin's share in PSI, so one empty bin cannot make it infinite.
const PSI_FLOOR: f64 = 1e-4;
/// Columns with at most this many distinct values keep their exact CDF.
const MAX_EXACT_DISTINCT: usize = 512;
const NULL: &str = "\u{0}NULL";

/// Summary of one column of the training table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ColumnProfile {
    Numeric {
        /// Quantiles at 0, 0.01, …, 1 of the non-null values (empty if all null).
        quantiles: Vec<f64>,
        /// Interior bin edges (deduplicated deciles); bins are (-∞,e0), [e0,e1), …, [ek,∞).
        edges: Vec<f64>,
        /// Share of rows per bin, then a last entry for null.
        shares: Vec<f64>,
        /// For columns with at most `MAX_EXACT_DISTINCT` distinct values (lab
        /// results rounded to a unit, ages): (value, cumulative share of
        /// non-null rows ≤ value), so KS uses the exact step CDF. Interpolating
        /// quantiles of such data would misstate D by up to a tie's mass.
        #[serde(default)]
        steps: Option<Vec<(f64, f64)>>,
    },
    Categorical {
        /// (label, share) sorted by label; nulls under an internal NULL label.
        shares: Vec<(String, f64)>,
    },
}

/// Per-column profiles of a model's training table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReferenceProfile {
    pub rows: usize,
    pub columns: Vec<(String, ColumnProfile)>,
}

impl ReferenceProfile {
    pub fn build(table: &Table) -> ReferenceProfile {
        ReferenceProfile {
            rows: table.n_rows(),
            columns: table
                .columns
                .iter()
                .map(|c| (c.name.clone(), ColumnProfile::build(c)))
                .collect(),
        }
    }
}

fn sorted_non_null(values: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    v
}

fn quantile(sorted: &[f64], p: f64) -> f64 {
    let pos = p * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn category_shares(column: &Column) -> Vec<(String, f64)> {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    let n = column.values.len();
    for row in 0..n {
        let label = column.label(row).unwrap_or(NULL).to_string();
        *counts.entry(label).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(l, c)| (l, c as f64 / n.max(1) as f64))
        .collect()
}

impl ColumnProfile {
    pub fn build(column: &Column) -> ColumnProfile {
        match &column.values {
            ColumnValues::Numeric(values) => {
                let sorted = sorted_non_null(values);
                if sorted.is_empty() {
                    return ColumnProfile::Numeric {
                        quantiles: vec![],
                        edges: vec![],
                        shares: vec![0.0, 1.0],
                        steps: None,
                    };
                }
                let quantiles: Vec<f64> = (0..=100)
                    .map(|i| quantile(&sorted, i as f64 / 100.0))
                    .collect();
                let mut edges: Vec<f64> = (1..10).map(|i| quantiles[i * 10]).collect();
                edges.dedup();
                let shares = numeric_shares(&edges, values);
                let steps = exact_steps(&sorted);
                ColumnProfile::Numeric {
                    quantiles,
                    edges,
                    shares,
                    steps,
                }
            }
            ColumnValues::Categorical { .. } => ColumnProfile::Categorical {
                shares: category_shares(column),
            },
        }
    }

    /// KS D between the window's empirical CDF and the reference's
    /// interpolated quantile function (non-null values only).
    pub fn ks_distance(&self, values: &ColumnValues) -> f64 {
        let (
            ColumnProfile::Numeric {
                quantiles, steps, ..
            },
            ColumnValues::Numeric(v),
        ) = (self, values)
        else {
            return 0.0;
        };
        let sorted = sorted_non_null(v);
        match (quantiles.is_empty(), sorted.is_empty()) {
            (true, true) => return 0.0,
            (true, false) | (false, true) => return 1.0,
            _ => {}
        }
        if let Some(steps) = steps {
            return ks_steps(steps, &sorted);
        }
        let n = sorted.len() as f64;
        let mut d: f64 = 0.0;
        let mut i = 0;
        while i < sorted.len() {
            let x = sorted[i];
            let mut j = i;
            while j < sorted.len() && sorted[j] == x {
                j += 1;
            }
            // The interpolated reference CDF is continuous, so the sup is
            // reached just below or at a window point.
            let f_ref = reference_cdf(quantiles, x);
            let below = i as f64 / n;
            let at = j as f64 / n;
            d = d.max((at - f_ref).abs()).max((below - f_ref).abs());
            i = j;
        }
        d.min(1.0)
    }

    /// Total variation distance of category shares; unseen categories pool into one bucket.
    pub fn tv_distance(&self, column: &Column) -> f64 {
        let ColumnProfile::Categorical { shares } = self else {
            return 0.0;
        };
        let (r, w) = aligned_categorical(shares, column);
        0.5 * r.iter().zip(&w).map(|(a, b)| (a - b).abs()).sum::<f64>()
    }

    /// Population stability index Σ (w − r) ln(w / r) over the reference bins.
    pub fn psi(&self, column: &Column) -> f64 {
        let (r, w) = match (self, &column.values) {
            (ColumnProfile::Numeric { edges, shares, .. }, ColumnValues::Numeric(v)) => {
                (shares.clone(), numeric_shares(edges, v))
            }
            (ColumnProfile::Categorical { shares }, ColumnValues::Categorical { .. }) => {
                aligned_categorical(shares, column)
            }
            _ => return 0.0,
        };
        r.iter()
            .zip(&w)
            .map(|(&r, &w)| {
                let (r, w) = (r.max(PSI_FLOOR), w.max(PSI_FLOOR));
                (w - r) * (w / r).ln()
            })
            .sum()
    }
}

/// (value, cumulative share) for each distinct value, if there are few.
fn exact_steps(sorted: &[f64]) -> Option<Vec<(f64, f64)>> {
    let n = sorted.len() as f64;
    let mut steps: Vec<(f64, f64)> = Vec::new();
    for (i, &x) in sorted.iter().enumerate() {
        match steps.last_mut() {
            Some(last) if last.0 == x => last.1 = (i + 1) as f64 / n,
            _ => {
                if steps.len() == MAX_EXACT_DISTINCT {
                    return None;
                }
                steps.push((x, (i + 1) as f64 / n));
            }
        }
    }
    Some(steps)
}

/// KS D between two right-continuous step CDFs: the sup is reached at one of
/// the jump points of either, so a merge over both sets of points is exact.
fn ks_steps(steps: &[(f64, f64)], sorted: &[f64]) -> f64 {
    let n = sorted.len() as f64;
    let (mut i, mut j) = (0, 0);
    let mut f_ref = 0.0;
    let mut d: f64 = 0.0;
    while i < steps.len() || j < sorted.len() {
        let x = match (steps.get(i), sorted.get(j)) {
            (Some(&(r, _)), Some(&w)) => r.min(w),
            (Some(&(r, _)), None) => r,
            (None, Some(&w)) => w,
            (None, None) => break,
        };
        while i < steps.len() && steps[i].0 <= x {
            f_ref = steps[i].1;
            i += 1;
        }
        while j < sorted.len() && sorted[j] <= x {
            j += 1;
        }
        d = d.max((f_ref - j as f64 / n).abs());
    }
    d.min(1.0)
}

fn reference_cdf(q: &[f64], x: f64) -> f64 {
    let last = q.len() - 1;
    if x < q[0] {
        return 0.0;
    }
    if x >= q[last] {
        return 1.0;
    }
    // first index with q[k] > x
    let k = q.partition_point(|&v| v <= x);
    let (lo, hi) = (q[k - 1], q[k]);
    let frac = if hi > lo { (x - lo) / (hi - lo) } else { 1.0 };
    ((k - 1) as f64 + frac) / last as f64
}

fn numeric_shares(edges: &[f64], values: &[f64]) -> Vec<f64> {
    let mut counts = vec![0usize; edges.len() + 2];
    for &x in values {
        if x.is_nan() {
            counts[edges.len() + 1] += 1;
        } else {
            counts[edges.partition_point(|&e| e <= x)] += 1;
        }
    }
    let n = values.len().max(1) as f64;
    counts.into_iter().map(|c| c as f64 / n).collect()
}

/// Reference and window shares over the reference labels plus one bucket
/// for categories the reference never saw.
fn aligned_categorical(reference: &[(String, f64)], column: &Column) -> (Vec<f64>, Vec<f64>) {
    let window = category_shares(column);
    let mut r: Vec<f64> = reference.iter().map(|(_, s)| *s).collect();
    r.push(0.0);
    let mut w = vec![0.0; r.len()];
    for (label, share) in window {
        match reference.binary_search_by(|(l, _)| l.as_str().cmp(&label)) {
            Ok(i) => w[i] += share,
            Err(_) => w[r.len() - 1] += share,
        }
    }
    (r, w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_matches_a_hand_computed_value() {
        // Reference shares a:0.5 b:0.5; window a:0.7 b:0.3.
        // PSI = (0.7−0.5)ln(0.7/0.5) + (0.3−0.5)ln(0.3/0.5) = 0.0673 + 0.1022 = 0.1695
        let r = Column::categorical("c", &[Some("a"), Some("b")]);
        let w = Column::categorical(
            "c",
            &(0..10)
                .map(|i| Some(if i < 7 { "a" } else { "b" }))
                .collect::<Vec<_>>(),
        );
        let p = ColumnProfile::build(&r);
        assert!((p.psi(&w) - 0.1695).abs() < 1e-3, "{}", p.psi(&w));
        assert!((p.tv_distance(&w) - 0.2).abs() < 1e-12);
    }

    #[test]
    fn unseen_category_is_finite_and_counted() {
        let r = Column::categorical("c", &[Some("a"), Some("b")]);
        let w = Column::categorical("c", &[Some("a"), Some("z")]);
        let p = ColumnProfile::build(&r);
        assert!((p.tv_distance(&w) - 0.5).abs() < 1e-12);
        assert!(p.psi(&w).is_finite());
    }

    #[test]
    fn ks_on_discrete_values_is_exact() {
        // Reference: 1,1,2,2,2,3 (CDF 1/3, 5/6, 1); window: 1,2,2,3,3,3 (1/6, 1/2, 1).
        // D = max(|1/3−1/6|, |5/6−1/2|) = 1/3.
        let p = ColumnProfile::build(&Column::numeric("x", vec![1.0, 1.0, 2.0, 2.0, 2.0, 3.0]));
        let d = p.ks_distance(&ColumnValues::Numeric(vec![1.0, 2.0, 2.0, 3.0, 3.0, 3.0]));
        assert!((d - 1.0 / 3.0).abs() < 1e-12, "{d}");
        let same = p.ks_distance(&ColumnValues::Numeric(vec![3.0, 2.0, 1.0, 2.0, 1.0, 2.0]));
        assert!(same.abs() < 1e-12, "{same}");
    }

    #[test]
    fn ks_of_identical_sample_is_small_and_of_disjoint_is_one() {
        let x: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        let p = ColumnProfile::build(&Column::numeric("x", x.clone()));
        assert!(p.ks_distance(&ColumnValues::Numeric(x)) <= 0.011);
        let far: Vec<f64> = (0..100).map(|i| 5000.0 + i as f64).collect();
        assert_eq!(p.ks_distance(&ColumnValues::Numeric(far)), 1.0);
    }
}
