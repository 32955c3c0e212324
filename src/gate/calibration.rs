//! The calibration rule every gated operator follows, and the false-fail
//! budget it is held to.
//!
//! A batch fails an operator only when its statistic is **materially** worse
//! than fresh real data (beyond the operator's effect limit, `gate.*_max` or
//! the holdout's score plus a margin) **and** worse than sampling noise at the
//! batch's sizes explains (beyond the operator's noise allowance: the
//! `1 − α_op` quantile of the statistic when the "synthetic" rows are fresh
//! real rows). So the threshold is `max(effect_limit, noise_allowance)`. On a
//! large window the noise is small and the limit decides; on a small window,
//! or a sparse contingency table, the noise decides, and the report says what
//! size of effect the window could prove.
//!
//! The gate's false-fail rate (`gate.false_fail_rate`, 4 % by default, so
//! the measured rate on real tables stays under 5 %) is the chance
//! that fresh real data fails *any* result of the batch. It is split into
//! shares `α_op`:
//! - fidelity (every column, pair, contingency and conditional result) shares
//!   [`FIDELITY_SHARE`] of it as one family, controlled by the max-T
//!   resampling method (Westfall & Young 1993): a null replicate's
//!   standardised statistics are maxed over the family, and each result's
//!   allowance is its null mean plus the `1 − α` quantile of that maximum in
//!   its own null standard deviations. Dependence between columns is kept,
//!   so 800 correlated pairs are not 800 separate lotteries;
//! - utility shares [`UTILITY_SHARE`], split evenly (Bonferroni) over its
//!   overall and subgroup results;
//! - the privacy operators share the rest, split evenly over the privacy
//!   operators that run and, within one, over its results (per sensitive
//!   column).
//!
//! Bonferroni is conservative where results are dependent; the fidelity
//! family, the one with hundreds of results, is the one that gets the exact
//! treatment.

use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

use super::report::OperatorResult;

/// Share of the false-fail rate given to the fidelity family.
pub(crate) const FIDELITY_SHARE: f64 = 0.4;
/// Share given to the utility results.
pub(crate) const UTILITY_SHARE: f64 = 0.1;
/// Share given to the privacy operators together.
pub(crate) const PRIVACY_SHARE: f64 = 1.0 - FIDELITY_SHARE - UTILITY_SHARE;

/// Upper `1 − alpha` quantile of the standard normal (`alpha` clamped to
/// (1e-12, 0.5]).
pub(crate) fn z_upper(alpha: f64) -> f64 {
    let alpha = alpha.clamp(1e-12, 0.5);
    Normal::standard().inverse_cdf(1.0 - alpha)
}

/// Applies the rule to one result: the threshold becomes the larger of its
/// effect limit and `allowance`, and the verdict and explanation follow.
/// `how` says where the allowance came from.
pub(crate) fn calibrate(r: &mut OperatorResult, allowance: Option<f64>, how: &str) {
    let allowance = allowance.filter(|a| a.is_finite());
    r.noise_allowance = allowance;
    r.threshold = allowance.map_or(r.effect_limit, |a| a.max(r.effect_limit));
    let hard_fail = r.explanation.contains(HARD_FAIL);
    r.passed = !hard_fail && r.statistic <= r.threshold;
    let decided = match allowance {
        Some(a) if a > r.effect_limit => format!(
            "noise decides: fresh real data reaches {a:.4} at these sizes ({how}), above the \
             effect limit {:.4}",
            r.effect_limit
        ),
        Some(a) => format!(
            "the effect limit {:.4} decides (noise allowance {a:.4}, {how})",
            r.effect_limit
        ),
        None => format!("effect limit {:.4}", r.effect_limit),
    };
    r.explanation = format!(
        "{}; {} threshold {:.4}: {decided}",
        r.explanation,
        if r.passed { "within" } else { "beyond" },
        r.threshold,
    );
}

/// Marks an explanation whose result fails whatever the numbers say (e.g. a
/// column the synthetic batch lacks entirely).
pub(crate) const HARD_FAIL: &str = "[fails regardless of noise]";

/// The upper `alpha` critical value of a permutation null from B sorted
/// replicates: the ⌈(B + 1)(1 − α)⌉-th smallest, so that a statistic
/// exchangeable with the replicates exceeds it with probability at most α
/// (interpolating at the (1 − α) quantile instead exceeds it by about
/// (1 + 1/(αB))·α: 2.5 % at α = 2 %, B = 200).
pub(crate) fn order_quantile(sorted: &[f64], alpha: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let b = sorted.len();
    let k = (((b + 1) as f64) * (1.0 - alpha)).ceil() as usize;
    Some(sorted[k.clamp(1, b) - 1])
}

/// Per-result allowances of a family from null replicates, by the max-T
/// method. `nulls[i]` holds result i's statistic in each replicate (NaN
/// where a replicate could not compute it). Returns, per result, `mean_i +
/// c·sd_i` where c is the `1 − alpha` quantile over replicates of
/// `max_i (x_i − mean_i)/sd_i`; `None` for a result with fewer than two
/// finite replicate values.
pub(crate) fn max_t_allowances(nulls: &[Vec<f64>], alpha: f64) -> Vec<Option<f64>> {
    let moments: Vec<Option<(f64, f64)>> = nulls
        .iter()
        .map(|x| {
            let v: Vec<f64> = x.iter().copied().filter(|v| v.is_finite()).collect();
            if v.len() < 2 {
                return None;
            }
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
            Some((mean, var.sqrt()))
        })
        .collect();
    let replicates = nulls.iter().map(Vec::len).max().unwrap_or(0);
    let mut maxima: Vec<f64> = (0..replicates)
        .map(|b| {
            nulls
                .iter()
                .zip(&moments)
                .filter_map(|(x, m)| {
                    let (mean, sd) = (*m)?;
                    let v = *x.get(b)?;
                    (v.is_finite() && sd > 0.0).then(|| (v - mean) / sd)
                })
                .fold(f64::NEG_INFINITY, f64::max)
        })
        .filter(|m| m.is_finite())
        .collect();
    maxima.sort_unstable_by(f64::total_cmp);
    let c = order_quantile(&maxima, alpha).unwrap_or(0.0);
    moments
        .iter()
        .zip(nulls)
        .map(|(m, x)| {
            let (mean, sd) = (*m)?;
            // A result whose null never varied: its allowance is the value
            // it always took (and at least its largest replicate).
            let top = x
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .fold(f64::NEG_INFINITY, f64::max);
            Some(if sd > 0.0 { mean + c * sd } else { top })
        })
        .collect()
}

/// How a privacy or utility result's noise allowance follows from its
/// share α of the false-fail rate, which is only known once every result of
/// the gate is in (the shares are split over them).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Allowance {
    /// The statistic is approximately normal under the null:
    /// `mean + z(1 − α)·sd`.
    Normal { mean: f64, sd: f64 },
    /// A maximum of F₁ − F₂ over thresholds of two samples of `n` each (a
    /// membership attacker's advantage, the one-sided KS statistic D⁺):
    /// `√(−½ ln α)·√(2/n)`, from P(√(n/2)·D⁺ > c) ≈ exp(−2c²) (Smirnov);
    /// exact for continuous scores, conservative with ties.
    Kolmogorov { per_side: usize },
    /// Like `Normal`, but the standard deviation was estimated from `df`
    /// draws: Student's t quantile, so a noisy estimate of the spread does
    /// not thin the tail (with 16 draws z(0.25 %) = 2.81 would be exceeded
    /// 2.5 times too often; t₁₆ gives 3.25).
    Student { mean: f64, sd: f64, df: usize },
    /// A sorted sample of the statistic's null (permutations): its upper α
    /// critical value by [`order_quantile`].
    Empirical(std::sync::Arc<[f64]>),
    /// No noise allowance: the effect limit alone decides.
    None,
}

impl Allowance {
    pub(crate) fn at(&self, alpha: f64) -> Option<f64> {
        match *self {
            Allowance::Normal { mean, sd } => Some(mean + z_upper(alpha) * sd.max(0.0)),
            Allowance::Student { mean, sd, df } if df > 0 => {
                let t = StudentsT::new(0.0, 1.0, df as f64).ok()?;
                Some(mean + t.inverse_cdf(1.0 - alpha.clamp(1e-12, 0.5)) * sd.max(0.0))
            }
            Allowance::Empirical(ref sorted) => order_quantile(sorted, alpha),
            Allowance::Kolmogorov { per_side } if per_side > 0 => {
                Some((-0.5 * alpha.clamp(1e-12, 1.0).ln()).sqrt() * (2.0 / per_side as f64).sqrt())
            }
            Allowance::Kolmogorov { .. } | Allowance::Student { .. } | Allowance::None => None,
        }
    }

    /// Words for the explanation.
    pub(crate) fn describe(&self, alpha: f64) -> String {
        match *self {
            Allowance::Normal { mean, sd } => format!(
                "{mean:.4} + z({:.4}%)·{sd:.4}, its null distribution at these sizes",
                100.0 * alpha
            ),
            Allowance::Student { mean, sd, df } => format!(
                "{mean:.4} + t{df}({:.4}%)·{sd:.4}, its null distribution at these sizes",
                100.0 * alpha
            ),
            Allowance::Empirical(ref sorted) => format!(
                "the upper {:.4}% critical value of {} permutations",
                100.0 * alpha,
                sorted.len()
            ),
            Allowance::Kolmogorov { per_side } => format!(
                "one-sided Kolmogorov bound √(−½ ln α)·√(2/n) at α = {:.4}%, n = {per_side} a side",
                100.0 * alpha
            ),
            Allowance::None => "none".to_string(),
        }
    }
}

/// Calibrates results that carry an [`Allowance`], splitting `alpha` evenly
/// over operator kinds and, within a kind, over its results.
pub(crate) fn calibrate_split(
    results: Vec<(OperatorResult, Allowance)>,
    alpha: f64,
) -> Vec<OperatorResult> {
    let mut kinds: Vec<&str> = results.iter().map(|(r, _)| r.operator.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let per_kind = alpha / kinds.len().max(1) as f64;
    let count = |op: &str| {
        results
            .iter()
            .filter(|(r, _)| r.operator == op)
            .count()
            .max(1)
    };
    let counts: Vec<usize> = results.iter().map(|(r, _)| count(&r.operator)).collect();
    results
        .into_iter()
        .zip(counts)
        .map(|((mut r, allowance), n)| {
            let a = per_kind / n as f64;
            calibrate(&mut r, allowance.at(a), &allowance.describe(a));
            r
        })
        .collect()
}

/// Permutations behind a share comparison with the holdout.
pub(crate) const SHARE_PERMUTATIONS: usize = 2000;

/// The permutation null of a share compared with the holdout's: the
/// batch's records and the holdout's are exchangeable when the batch is
/// fresh real data, so relabelling them at random gives the share's null
/// exactly (Fisher's test, by sampling). A record is counted (`s_counted`
/// of `s_records`, `h_counted` of `h_records`) when it enters the share's
/// denominator (every record for exact match and k-anonymity, matched ones
/// for l-diversity) and is a hit when the share counts it. Only counts move
/// in a relabelling, so each draw is two hypergeometric numbers: how many
/// counted records land in the pseudo-batch, and how many hits among them.
/// Returns the allowance on the batch's share: holdout share + each
/// relabelling's share difference. Normal approximations of this were
/// measured too thin in the tail for small counts (l-diversity: 2 % false
/// fails at a 0.125 % share).
pub(crate) fn share_permutation(
    (s_records, s_counted, s_hits): (usize, usize, usize),
    (h_records, h_counted, h_hits): (usize, usize, usize),
    seed: u64,
) -> Allowance {
    use rand::SeedableRng;
    use rand::distr::Distribution;
    use rand_distr::Hypergeometric;
    let share = |hits: usize, counted: usize| {
        if counted == 0 {
            0.0
        } else {
            hits as f64 / counted as f64
        }
    };
    let h_share = share(h_hits, h_counted);
    let (records, counted, hits) = (
        (s_records + h_records) as u64,
        (s_counted + h_counted) as u64,
        (s_hits + h_hits) as u64,
    );
    let Ok(counted_in_s) = Hypergeometric::new(records, counted, s_records as u64) else {
        return Allowance::None;
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x7368_6172_6573);
    let mut values: Vec<f64> = (0..SHARE_PERMUTATIONS)
        .filter_map(|_| {
            let c_s = counted_in_s.sample(&mut rng);
            let hits_in_s = Hypergeometric::new(counted, hits, c_s)
                .ok()?
                .sample(&mut rng);
            let (c_h, hits_h) = (counted - c_s, hits - hits_in_s);
            Some(
                h_share + share(hits_in_s as usize, c_s as usize)
                    - share(hits_h as usize, c_h as usize),
            )
        })
        .collect();
    values.sort_unstable_by(f64::total_cmp);
    Allowance::Empirical(values.into())
}

/// Standard error of the difference between a batch's share (of `n`
/// records) and the holdout's share `y/m` when the batch is fresh real data,
/// so both share the holdout's rate: √(p(1 − p)(1/n + 1/m)), with p =
/// (y + ½)/(m + 1) so that a holdout share of 0 or 1 still leaves room for
/// chance. The batch's own count is left out on purpose: pooling it, as the
/// textbook two-proportion test does, lets a leak widen its own allowance.
pub(crate) fn null_se(n: usize, y: usize, m: usize) -> f64 {
    if n == 0 || m == 0 {
        return 0.0;
    }
    let p = (y as f64 + 0.5) / (m as f64 + 1.0);
    (p * (1.0 - p) * (1.0 / n as f64 + 1.0 / m as f64)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;

    #[test]
    fn normal_quantiles_match_tables() {
        // Standard normal table: z(0.05) = 1.6449, z(0.025) = 1.9600, z(0.001) = 3.0902.
        assert!((z_upper(0.05) - 1.644_854).abs() < 1e-5);
        assert!((z_upper(0.025) - 1.959_964).abs() < 1e-5);
        assert!((z_upper(0.001) - 3.090_232).abs() < 1e-5);
    }

    /// One-sided two-sample KS D⁺ of n = m = 400 continuous values: its 95th
    /// percentile by simulation agrees with √(−½ ln 0.05)·√(2/400) = 0.0865.
    #[test]
    fn kolmogorov_allowance_matches_simulated_d_plus() {
        let n = 400;
        let bound = Allowance::Kolmogorov { per_side: n }.at(0.05).unwrap();
        assert!((bound - 0.086_55).abs() < 1e-4, "{bound}");
        let mut rng = StdRng::seed_from_u64(9);
        let mut d: Vec<f64> = (0..2000)
            .map(|_| {
                let mut v: Vec<(f64, bool)> =
                    (0..2 * n).map(|i| (rng.random::<f64>(), i < n)).collect();
                v.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
                let (mut a, mut b, mut best) = (0.0f64, 0.0f64, 0.0f64);
                for (_, first) in v {
                    if first {
                        a += 1.0
                    } else {
                        b += 1.0
                    }
                    best = best.max((a - b) / n as f64);
                }
                best
            })
            .collect();
        d.sort_unstable_by(f64::total_cmp);
        let q95 = d[1900];
        // Finite n sits a little below the asymptote; 2000 draws: ±0.004.
        assert!(
            q95 < bound + 0.004 && q95 > bound - 0.012,
            "{q95} vs {bound}"
        );
    }

    /// Independent standard normal statistics: the max-T allowance of m
    /// results at family rate α is the Šidák quantile z(1 − (1 − α)^(1/m)).
    #[test]
    fn max_t_of_independent_normals_is_the_sidak_quantile() {
        let (m, b, alpha) = (20, 20_000, 0.05f64);
        let mut rng = StdRng::seed_from_u64(3);
        let nulls: Vec<Vec<f64>> = (0..m)
            .map(|_| {
                (0..b)
                    .map(|_| rng.sample::<f64, _>(StandardNormal))
                    .collect()
            })
            .collect();
        let sidak = z_upper(1.0 - (1.0 - alpha).powf(1.0 / m as f64));
        for a in max_t_allowances(&nulls, alpha) {
            let a = a.unwrap();
            assert!((a - sidak).abs() < 0.06, "{a} vs Šidák {sidak}");
        }
    }

    /// Perfectly dependent results (one statistic copied m times) need no
    /// multiplicity correction: the allowance is the single-test quantile.
    #[test]
    fn max_t_of_identical_results_is_the_single_quantile() {
        let mut rng = StdRng::seed_from_u64(4);
        let one: Vec<f64> = (0..20_000)
            .map(|_| rng.sample::<f64, _>(StandardNormal))
            .collect();
        let nulls = vec![one; 50];
        for a in max_t_allowances(&nulls, 0.05) {
            assert!((a.unwrap() - 1.6449).abs() < 0.05);
        }
    }

    #[test]
    fn constant_and_missing_nulls() {
        let nulls = vec![vec![0.2; 10], vec![f64::NAN; 10], vec![0.0, 1.0, 0.5, 0.5]];
        let a = max_t_allowances(&nulls, 0.05);
        assert_eq!(a[0], Some(0.2));
        assert_eq!(a[1], None);
        assert!(a[2].unwrap() > 0.5);
    }

    /// By hand: y = 20 of m = 500 → p = 20.5/501 = 0.040918;
    /// √(p(1 − p)·(1/500 + 1/500)) = 0.012534.
    #[test]
    fn null_se_uses_the_holdout_rate_only() {
        assert!((null_se(500, 20, 500) - 0.012_534).abs() < 1e-5);
        // The batch's own hits never enter: a leak cannot widen it.
        assert!(null_se(100, 0, 100) > 0.0 && null_se(100, 0, 100) < 0.01);
        assert_eq!(null_se(0, 1, 10), 0.0);
    }

    #[test]
    fn split_shares_alpha_by_kind_then_result() {
        let r = |op: &str| OperatorResult {
            operator: op.into(),
            columns: vec![],
            statistic: 0.0,
            threshold: 0.0,
            effect_limit: 0.0,
            noise_allowance: None,
            interval: None,
            noise_floor: None,
            passed: true,
            explanation: String::new(),
        };
        let unit = Allowance::Normal { mean: 0.0, sd: 1.0 };
        let out = calibrate_split(
            vec![
                (r("a"), unit.clone()),
                (r("b"), unit.clone()),
                (r("b"), unit),
            ],
            0.02,
        );
        // a: α = 0.01 → z = 2.3263; each b: α = 0.005 → z = 2.5758.
        assert!((out[0].threshold - 2.326_3).abs() < 1e-3);
        assert!((out[1].threshold - 2.575_8).abs() < 1e-3);
        assert!((out[2].threshold - 2.575_8).abs() < 1e-3);
    }

    /// Fisher's exact test: 10 hits among 400 records, 200 a side, the
    /// holdout with 2. The pseudo-batch's hits X are Hypergeometric(400, 10,
    /// 200), symmetric about 5, with P(X ≥ 9) ≈ 0.0088 and P(X ≥ 10) ≈ 0.0007
    /// (scipy.stats.hypergeom.sf(8, 400, 10, 200) and .sf(9, …)).
    #[test]
    fn share_permutation_is_fishers_test() {
        let a = share_permutation((200, 200, 8), (200, 200, 2), 1);
        // Batch share x/200 with the rest (10 − x) in the holdout: allowance
        // h + x/200 − (10 − x)/200 = 0.01 + (2x − 10)/200. The 99.5 %
        // critical x is 9 (P(X ≥ 9) = 0.0088 > 0.005 ≥ P(X ≥ 10)), so the
        // allowance is 0.01 + 8/200 = 0.05, give or take one step of the
        // sampled quantile.
        let v = a.at(0.005).unwrap();
        assert!((v - 0.05).abs() <= 0.0101, "{v}");
        // Median: X = 5 → 0.01 + 0.
        assert!((a.at(0.5).unwrap() - 0.01).abs() < 1e-9);
        assert_eq!(
            share_permutation((0, 0, 0), (0, 0, 0), 1).at(0.05),
            Some(0.0)
        );
    }

    #[test]
    fn order_quantile_and_student_allowances() {
        // B = 199 replicates 1..=199: ⌈200 × 0.95⌉ = 190th smallest.
        let v: Vec<f64> = (1..=199).map(f64::from).collect();
        assert_eq!(order_quantile(&v, 0.05), Some(190.0));
        assert_eq!(order_quantile(&v, 1e-6), Some(199.0));
        assert_eq!(Allowance::Empirical(v.into()).at(0.05), Some(190.0));
        // t₁₆ upper 0.25 % = 3.2519 (scipy.stats.t.isf(0.0025, 16)).
        let t = Allowance::Student {
            mean: 0.0,
            sd: 1.0,
            df: 16,
        }
        .at(0.0025)
        .unwrap();
        assert!((t - 3.2519).abs() < 1e-3, "{t}");
    }

    #[test]
    fn calibrate_takes_the_larger_of_limit_and_noise() {
        let mut r = OperatorResult {
            operator: "ks".into(),
            columns: vec!["x".into()],
            statistic: 0.15,
            threshold: 0.1,
            effect_limit: 0.1,
            noise_allowance: None,
            interval: None,
            noise_floor: None,
            passed: false,
            explanation: "KS D 0.15".into(),
        };
        calibrate(&mut r, Some(0.2), "test");
        assert!(r.passed && r.threshold == 0.2, "{r:?}");
        assert!(r.explanation.contains("noise decides"));
        calibrate(&mut r, Some(0.05), "test");
        assert!(!r.passed && r.threshold == 0.1);
        r.explanation.push_str(HARD_FAIL);
        r.statistic = 0.0;
        calibrate(&mut r, Some(0.2), "test");
        assert!(!r.passed);
    }
}
