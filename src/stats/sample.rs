//! Kernels over one-dimensional numeric samples: quantiles, IQR, Wasserstein-1
//! and PSI with reference-quantile bins.
//!
//! The gate scales Wasserstein-1 by the training IQR so one threshold fits
//! columns of any unit; drift uses PSI/Jensen–Shannon on bins fixed by the
//! reference profile so successive windows are binned identically.

use super::categorical::psi_counts;

/// Bins used by [`psi`] when the caller has no preference (deciles).
pub const DEFAULT_PSI_BINS: usize = 10;

/// Floor on a bin's proportion in PSI.
///
/// PSI has `ln(q/p)`, which is infinite for an empty bin. Replacing a zero
/// proportion by 1e-4 (the usual choice in credit-scoring practice) keeps the
/// index finite while still making an emptied bin contribute heavily
/// (≈ 0.1 · ln(1000) ≈ 0.7 for a bin that held 10 %).
pub const PSI_EPSILON: f64 = 1e-4;

/// The finite values of `values`, sorted ascending.
pub fn sorted_finite(values: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_unstable_by(f64::total_cmp);
    v
}

/// Quantile `q ∈ [0, 1]` of a sorted, finite sample by linear interpolation
/// between order statistics (Hyndman–Fan type 7, numpy's default).
///
/// Returns `None` for an empty sample or `q` outside [0, 1].
pub fn quantile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let frac = h - lo as f64;
    Some(sorted[lo] + frac * (sorted[hi] - sorted[lo]))
}

/// Interquartile range Q3 − Q1 (type-7 quantiles) of the finite values.
pub fn iqr(values: &[f64]) -> Option<f64> {
    let s = sorted_finite(values);
    Some(quantile_sorted(&s, 0.75)? - quantile_sorted(&s, 0.25)?)
}

/// Wasserstein-1 (earth mover's) distance between the empirical
/// distributions of the finite values of `a` and `b`.
pub fn wasserstein1(a: &[f64], b: &[f64]) -> Option<f64> {
    wasserstein1_sorted(&sorted_finite(a), &sorted_finite(b))
}

/// Wasserstein-1 of two sorted, finite samples: `∫ |F_a(x) − F_b(x)| dx`,
/// integrated exactly over the merged sample points.
pub fn wasserstein1_sorted(a: &[f64], b: &[f64]) -> Option<f64> {
    let (n, m) = (a.len(), b.len());
    if n == 0 || m == 0 {
        return None;
    }
    let (mut i, mut j) = (0usize, 0usize);
    let mut area = 0.0;
    while i < n || j < m {
        let x = match (a.get(i), b.get(j)) {
            (Some(&u), Some(&v)) => u.min(v),
            (Some(&u), None) => u,
            (None, Some(&v)) => v,
            (None, None) => break,
        };
        while i < n && a[i] <= x {
            i += 1;
        }
        while j < m && b[j] <= x {
            j += 1;
        }
        let next = match (a.get(i), b.get(j)) {
            (Some(&u), Some(&v)) => u.min(v),
            (Some(&u), None) => u,
            (None, Some(&v)) => v,
            (None, None) => break,
        };
        let gap = (i as f64 / n as f64 - j as f64 / m as f64).abs();
        area += gap * (next - x);
    }
    Some(area)
}

/// Counts of `reference` and `other` in bins cut at the reference's
/// quantiles `1/bins, …, (bins−1)/bins` (duplicate cuts merged, so a column
/// with few distinct values gets fewer bins). Bins are `(c_{k−1}, c_k]`, the
/// outer ones open-ended, so values of `other` outside the reference range
/// still land in a bin.
///
/// Returns `None` when `bins == 0` or either sample has no finite value.
pub fn quantile_bin_counts(
    reference: &[f64],
    other: &[f64],
    bins: usize,
) -> Option<(Vec<u64>, Vec<u64>)> {
    let r = sorted_finite(reference);
    if bins == 0 || r.is_empty() || !other.iter().any(|x| x.is_finite()) {
        return None;
    }
    let mut cuts: Vec<f64> = (1..bins)
        .filter_map(|k| quantile_sorted(&r, k as f64 / bins as f64))
        .collect();
    cuts.dedup();
    let count = |values: &[f64]| {
        let mut counts = vec![0u64; cuts.len() + 1];
        for &x in values.iter().filter(|x| x.is_finite()) {
            counts[cuts.partition_point(|&c| c < x)] += 1;
        }
        counts
    };
    Some((count(&r), count(other)))
}

/// Population stability index of `current` against `reference`, on
/// `bins` reference-quantile bins (see [`quantile_bin_counts`]) with empty
/// bins floored at [`PSI_EPSILON`].
pub fn psi(reference: &[f64], current: &[f64], bins: usize) -> Option<f64> {
    let (r, c) = quantile_bin_counts(reference, current, bins)?;
    psi_counts(&r, &c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12
    }

    #[test]
    fn quantiles_and_iqr_match_numpy() {
        // scipy.stats.iqr([1..10]) = 4.5
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert!(close(iqr(&v).unwrap(), 4.5));
        // numpy.percentile([1,3,7,15], [25,75]) = [2.5, 9.0]; scipy.stats.iqr = 6.5
        let s = [1.0, 3.0, 7.0, 15.0];
        assert!(close(quantile_sorted(&s, 0.25).unwrap(), 2.5));
        assert!(close(quantile_sorted(&s, 0.75).unwrap(), 9.0));
        assert!(close(iqr(&[15.0, f64::NAN, 1.0, 7.0, 3.0]).unwrap(), 6.5));
        assert_eq!(quantile_sorted(&s, 0.0), Some(1.0));
        assert_eq!(quantile_sorted(&s, 1.0), Some(15.0));
        assert!(quantile_sorted(&[], 0.5).is_none());
        assert!(iqr(&[f64::NAN]).is_none());
    }

    #[test]
    fn wasserstein_matches_scipy() {
        // scipy.stats.wasserstein_distance([0, 1, 3], [5, 6, 8]) = 5.0 (scipy docs example)
        assert!(close(
            wasserstein1(&[0.0, 1.0, 3.0], &[5.0, 6.0, 8.0]).unwrap(),
            5.0
        ));
        // scipy.stats.wasserstein_distance([1, 2, 2, 10], [0, 3.5, 4]) = 2.583333333333333
        assert!(close(
            wasserstein1(&[1.0, 2.0, 2.0, 10.0], &[0.0, 3.5, 4.0]).unwrap(),
            2.583333333333333
        ));
        // Shifting a sample by c moves it exactly c.
        let a = [1.0, 4.0, 2.0, 8.0];
        let b: Vec<f64> = a.iter().map(|x| x + 0.5).collect();
        assert!(close(wasserstein1(&a, &b).unwrap(), 0.5));
        assert_eq!(wasserstein1(&a, &a), Some(0.0));
        assert!(wasserstein1(&a, &[f64::NAN]).is_none());
    }

    #[test]
    fn quantile_bins_follow_reference_cuts() {
        // Median of [1,2,3,4] is 2.5, so two bins are (-inf, 2.5] and (2.5, inf).
        let (r, c) = quantile_bin_counts(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 3.0, 40.0], 2).unwrap();
        assert_eq!(r, vec![2, 2]);
        assert_eq!(c, vec![1, 3]);
        // Constant reference: every cut is the same value, merged into one.
        let (r, c) = quantile_bin_counts(&[5.0; 6], &[4.0, 5.0, 6.0], 10).unwrap();
        assert_eq!(r, vec![6, 0]);
        assert_eq!(c, vec![2, 1]);
    }

    #[test]
    fn psi_hand_computed() {
        // Reference proportions [0.5, 0.5], current [0.25, 0.75]:
        // (0.25-0.5)·ln(0.5) + (0.75-0.5)·ln(1.5) = 0.2746530721670273
        let p = psi(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 3.0, 4.0], 2).unwrap();
        assert!(close(p, 0.2746530721670273));
        assert_eq!(
            psi(&[1.0, 2.0, 3.0, 4.0], &[1.0, 2.0, 3.0, 4.0], 4),
            Some(0.0)
        );
    }
}
