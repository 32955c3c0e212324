//! Benjamini–Hochberg: which of a window's many tests are significant.
//!
//! A window is tested per column, per null rate, per correlation pair and
//! per segment — dozens of tests. Taken one by one at 1 %, some would fire on
//! noise in most windows; BH keeps the expected share of false discoveries
//! among the flagged tests at `alpha` while keeping power for real shifts.

/// BH-adjusted p-values (q-values) in the input order: a test is
/// significant at false-discovery rate `alpha` when its q ≤ `alpha`.
///
/// q₍ᵢ₎ = min over j ≥ i of p₍ⱼ₎ · m / j (sorted ascending), capped at 1 —
/// the same as R's `p.adjust(p, "BH")`.
pub fn bh_adjust(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut q = vec![1.0; m];
    let mut running = 1.0f64;
    for rank in (0..m).rev() {
        let i = order[rank];
        let p = if p_values[i].is_nan() {
            1.0
        } else {
            p_values[i]
        };
        running = running.min(p * m as f64 / (rank + 1) as f64);
        q[i] = running.min(1.0);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_r_p_adjust() {
        // R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "BH") = 0.02 0.04 0.04 0.02
        let q = bh_adjust(&[0.01, 0.04, 0.03, 0.005]);
        for (got, want) in q.iter().zip([0.02, 0.04, 0.04, 0.02]) {
            assert!((got - want).abs() < 1e-12, "{q:?}");
        }
        // R: p.adjust(c(0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205), "BH")
        //  = 0.0080 0.0320 0.0672 0.0672 0.0672 0.0800 0.0846 0.2050
        let q = bh_adjust(&[0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205]);
        let want = [
            0.008,
            0.032,
            0.0672,
            0.0672,
            0.0672,
            0.08,
            0.084_571_43,
            0.205,
        ];
        for (got, want) in q.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{q:?}");
        }
    }

    #[test]
    fn empty_and_nan_are_safe() {
        assert!(bh_adjust(&[]).is_empty());
        assert_eq!(bh_adjust(&[f64::NAN]), vec![1.0]);
    }
}
