//! A small mergeable quantile sketch: a column summarised by `K` points of
//! equal weight (its quantiles at (i + ½)/K), plus the number of values.
//!
//! Why this shape: drift compares a window with the reference through its
//! CDF (KS D, Wasserstein-1, normal scores for the joint check). Equal-weight
//! points are themselves a sample, so the exact two-sample kernels in
//! `crate::stats` (KS, Wasserstein-1) run on them unchanged, and the CDF they
//! describe is within 1/K of the column's (exact when it has ≤ K values).
//! Two sketches merge by pooling their weighted points and re-cutting K
//! quantiles, so per-window profiles can be rolled up. No crate in the lock
//! file provides a quantile sketch, hence this one (no new dependency).

use serde::{Deserialize, Serialize};

/// Points kept per sketch: the CDF is within 1/512 ≈ 0.002 of the data's.
pub const SKETCH_POINTS: usize = 512;

/// `points` are sorted; each stands for `count / points.len()` values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantileSketch {
    pub count: u64,
    pub points: Vec<f64>,
}

impl QuantileSketch {
    /// Sketch of a sorted, finite sample (all of it when it has ≤ `k` values).
    pub fn from_sorted(sorted: &[f64], k: usize) -> QuantileSketch {
        let n = sorted.len();
        let points = if n <= k {
            sorted.to_vec()
        } else {
            (0..k)
                .map(|i| sorted[(((i as f64 + 0.5) / k as f64) * n as f64) as usize])
                .collect()
        };
        QuantileSketch {
            count: n as u64,
            points,
        }
    }

    /// The sketch of both inputs' data (each point weighted by its share).
    pub fn merge(&self, other: &QuantileSketch, k: usize) -> QuantileSketch {
        let mut weighted: Vec<(f64, f64)> = Vec::new();
        for s in [self, other] {
            if !s.points.is_empty() {
                let w = s.count as f64 / s.points.len() as f64;
                weighted.extend(s.points.iter().map(|&p| (p, w)));
            }
        }
        weighted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total: f64 = weighted.iter().map(|p| p.1).sum();
        let count = self.count + other.count;
        if weighted.len() <= k {
            return QuantileSketch {
                count,
                points: weighted.into_iter().map(|p| p.0).collect(),
            };
        }
        let mut points = Vec::with_capacity(k);
        let mut acc = 0.0;
        let mut j = 0;
        for i in 0..k {
            let target = (i as f64 + 0.5) / k as f64 * total;
            while j + 1 < weighted.len() && acc + weighted[j].1 <= target {
                acc += weighted[j].1;
                j += 1;
            }
            points.push(weighted[j].0);
        }
        QuantileSketch { count, points }
    }

    /// Share of the data ≤ x (a step function).
    pub fn cdf(&self, x: f64) -> f64 {
        if self.points.is_empty() {
            return 0.0;
        }
        self.points.partition_point(|&p| p <= x) as f64 / self.points.len() as f64
    }

    /// Mid-distribution function F(x−) + ½ P(X = x), kept inside (0, 1):
    /// the probability-integral transform that treats ties symmetrically.
    pub fn mid_cdf(&self, x: f64) -> f64 {
        let k = self.points.len();
        if k == 0 {
            return 0.5;
        }
        let below = self.points.partition_point(|&p| p < x);
        let at_or_below = self.points.partition_point(|&p| p <= x);
        let u = (below as f64 + 0.5 * (at_or_below - below) as f64) / k as f64;
        u.clamp(0.5 / k as f64, 1.0 - 0.5 / k as f64)
    }

    /// ∫ √(F(1 − F)) dx over the sketch: E|F_n − F| integrates to
    /// √(2/π)·this·√(1/n) for a sample of n (Brownian-bridge limit), the
    /// expected Wasserstein-1 between two samples with no drift.
    pub fn bridge_area(&self) -> f64 {
        let k = self.points.len();
        (0..k.saturating_sub(1))
            .map(|i| {
                let f = (i + 1) as f64 / k as f64;
                (f * (1.0 - f)).sqrt() * (self.points[i + 1] - self.points[i])
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_samples_are_kept_exactly() {
        let s = QuantileSketch::from_sorted(&[1.0, 2.0, 2.0, 5.0], 8);
        assert_eq!(s.points, vec![1.0, 2.0, 2.0, 5.0]);
        assert_eq!(s.cdf(2.0), 0.75);
        // mid-CDF at a tie: F(2−) = 1/4, P(X=2) = 1/2 → 1/2.
        assert_eq!(s.mid_cdf(2.0), 0.5);
    }

    #[test]
    fn cdf_is_within_one_over_k_and_merge_matches_the_whole() {
        let all: Vec<f64> = (0..100_000)
            .map(|i| ((i * 7919) % 100_000) as f64)
            .collect();
        let mut sorted = all.clone();
        sorted.sort_by(f64::total_cmp);
        let whole = QuantileSketch::from_sorted(&sorted, 256);
        let (mut a, mut b): (Vec<f64>, Vec<f64>) = (all[..30_000].to_vec(), all[30_000..].to_vec());
        a.sort_by(f64::total_cmp);
        b.sort_by(f64::total_cmp);
        let merged =
            QuantileSketch::from_sorted(&a, 256).merge(&QuantileSketch::from_sorted(&b, 256), 256);
        assert_eq!(merged.count, 100_000);
        for x in [0.0, 12_345.0, 50_000.0, 99_999.0] {
            let truth = (x + 1.0) / 100_000.0;
            assert!((whole.cdf(x) - truth).abs() <= 1.0 / 256.0 + 1e-9, "{x}");
            assert!((merged.cdf(x) - truth).abs() <= 2.0 / 256.0 + 1e-9, "{x}");
        }
    }

    #[test]
    fn bridge_area_of_uniform_is_pi_over_8() {
        // ∫₀¹ √(t(1−t)) dt = π/8 ≈ 0.3927 (Beta(3/2, 3/2) = π/8).
        let sorted: Vec<f64> = (0..10_000).map(|i| (i as f64 + 0.5) / 10_000.0).collect();
        let s = QuantileSketch::from_sorted(&sorted, 512);
        assert!(
            (s.bridge_area() - std::f64::consts::PI / 8.0).abs() < 0.005,
            "{}",
            s.bridge_area()
        );
    }
}
