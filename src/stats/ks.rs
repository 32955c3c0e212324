//! Two-sample Kolmogorov–Smirnov: the largest gap between two empirical CDFs.
//!
//! KS D is the gate's per-column effect size for numeric columns and one of
//! the drift tests for small windows. The statistic is exact (merge of two
//! sorted samples); the p-value uses the asymptotic Kolmogorov distribution,
//! which is what drift needs for Benjamini–Hochberg and is accurate once both
//! samples have a few dozen values.

use super::sample::sorted_finite;

/// Result of a two-sample KS test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KsTest {
    /// sup_x |F_a(x) − F_b(x)|, in [0, 1].
    pub statistic: f64,
    /// Asymptotic p-value `Q_KS(sqrt(n·m/(n+m)) · D)`.
    pub p_value: f64,
    /// Finite values used from the first sample.
    pub n: usize,
    /// Finite values used from the second sample.
    pub m: usize,
}

/// Two-sample KS test on the finite values of `a` and `b`.
///
/// Returns `None` when either sample has no finite value.
///
/// ```
/// # use resynth::stats::ks_two_sample;
/// let t = ks_two_sample(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]).unwrap();
/// assert_eq!(t.statistic, 1.0);
/// ```
pub fn ks_two_sample(a: &[f64], b: &[f64]) -> Option<KsTest> {
    let a = sorted_finite(a);
    let b = sorted_finite(b);
    let statistic = ks_statistic_sorted(&a, &b)?;
    let (n, m) = (a.len() as f64, b.len() as f64);
    let en = (n * m / (n + m)).sqrt();
    Some(KsTest {
        statistic,
        p_value: kolmogorov_sf(en * statistic),
        n: a.len(),
        m: b.len(),
    })
}

/// KS D of two samples that are already sorted ascending and finite.
///
/// Exact: the gap is tracked as the integer `|i·m − j·n|` and divided once.
/// Returns `None` when either sample is empty.
pub fn ks_statistic_sorted(a: &[f64], b: &[f64]) -> Option<f64> {
    let (n, m) = (a.len(), b.len());
    if n == 0 || m == 0 {
        return None;
    }
    let (mut i, mut j) = (0usize, 0usize);
    let mut widest: u128 = 0;
    while i < n && j < m {
        let x = a[i].min(b[j]);
        while i < n && a[i] <= x {
            i += 1;
        }
        while j < m && b[j] <= x {
            j += 1;
        }
        let gap = (i as i128 * m as i128 - j as i128 * n as i128).unsigned_abs();
        widest = widest.max(gap);
    }
    Some(widest as f64 / (n as f64 * m as f64))
}

/// Survival function of the Kolmogorov distribution, `P(K > λ)`.
///
/// Uses the two classical series: for small λ the Jacobi-theta form
/// `K(λ) = √(2π)/λ · Σ exp(−(2k−1)²π²/(8λ²))`, otherwise
/// `Q(λ) = 2 Σ (−1)^(k−1) exp(−2k²λ²)`. Both converge within a few terms in
/// their range. Same function as `scipy.stats.kstwobign.sf`.
pub fn kolmogorov_sf(lambda: f64) -> f64 {
    if lambda.is_nan() || lambda <= 0.0 {
        return 1.0;
    }
    let p = if lambda < 1.18 {
        let l2 = lambda * lambda;
        let c = std::f64::consts::PI * std::f64::consts::PI / (8.0 * l2);
        let mut cdf = 0.0;
        for k in 1..=20 {
            let odd = (2 * k - 1) as f64;
            cdf += (-odd * odd * c).exp();
        }
        1.0 - (2.0 * std::f64::consts::PI).sqrt() / lambda * cdf
    } else {
        let mut sf = 0.0;
        for k in 1..=100 {
            let kf = k as f64;
            let term = (-2.0 * kf * kf * lambda * lambda).exp();
            sf += if k % 2 == 1 { term } else { -term };
            if term < 1e-17 {
                break;
            }
        }
        2.0 * sf
    };
    p.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn disjoint_samples_have_d_one() {
        // scipy.stats.ks_2samp([1,2,3],[4,5,6]) → statistic = 1.0
        let t = ks_two_sample(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]).unwrap();
        assert_eq!(t.statistic, 1.0);
        // scipy.stats.kstwobign.sf(sqrt(1.5) * 1.0) = 0.09956184831478034
        assert!(close(t.p_value, 0.09956184831478034, 1e-12));
    }

    #[test]
    fn matches_scipy_on_interleaved_samples() {
        let a = [
            0.61, 0.29, 0.06, 0.59, -1.73, -0.74, 0.51, -0.56, 0.39, 1.64, 0.05, -0.06, 0.64,
            -0.82, 0.37, 1.77, 1.09, -1.28, 2.36, 1.31, 1.05, -0.32, -0.4, 1.06, -2.47,
        ];
        let b = [
            2.20, 1.66, 1.38, 0.20, 0.36, 0.00, 0.96, 1.56, 0.44, 1.50, -0.30, 0.66, 2.31, 3.29,
            -0.27, -0.37, 0.38, 0.70, 0.19, -0.41, -0.15, 0.80, 1.43, 0.02, 0.61,
        ];
        // scipy.stats.ks_2samp(a, b).statistic = 0.24
        // scipy.stats.kstwobign.sf(sqrt(12.5) * 0.24) = 0.46755799912056456
        // (scipy's method='asymp' uses kstwo with round(en) instead and gives 0.427)
        let t = ks_two_sample(&a, &b).unwrap();
        assert!(close(t.statistic, 0.24, 1e-15));
        assert!(close(t.p_value, 0.46755799912056456, 1e-12));
    }

    #[test]
    fn ties_across_samples_are_stepped_together() {
        // scipy.stats.ks_2samp([1,1,2,2,3],[1,2,2,3,3,3,4]).statistic = 0.37142857142857144 (= 13/35)
        let t = ks_two_sample(
            &[1.0, 1.0, 2.0, 2.0, 3.0],
            &[1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0],
        )
        .unwrap();
        assert!(close(t.statistic, 13.0 / 35.0, 1e-15));
        assert_eq!((t.n, t.m), (5, 7));
    }

    #[test]
    fn nan_is_ignored_and_empty_is_none() {
        let t = ks_two_sample(&[1.0, f64::NAN, 2.0], &[1.0, 2.0]).unwrap();
        assert_eq!(t.statistic, 0.0);
        assert_eq!(t.p_value, 1.0);
        assert!(ks_two_sample(&[f64::NAN], &[1.0]).is_none());
        assert!(ks_two_sample(&[], &[]).is_none());
    }

    #[test]
    fn kolmogorov_sf_matches_scipy_kstwobign() {
        // scipy.stats.kstwobign.sf([0.2, 0.5, 1.0, 1.5, 3.0])
        let expected = [
            (0.2, 1.0),
            (0.5, 9.63945244e-01),
            (1.0, 2.69999672e-01),
            (1.5, 2.22179626e-02),
            (3.0, 3.04599595e-08),
        ];
        for (x, p) in expected {
            assert!(close(kolmogorov_sf(x), p, 1e-8 * p.max(1e-2)), "x = {x}");
        }
        assert_eq!(kolmogorov_sf(0.0), 1.0);
        assert_eq!(kolmogorov_sf(f64::NAN), 1.0);
    }
}
