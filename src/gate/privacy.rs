//! Privacy operators: does the synthetic batch sit closer to the people it
//! was trained on than to comparable people it never saw?
//!
//! Both operators use the holdout H (real rows not used for training) as the
//! yardstick, so they measure what the generator leaked rather than how
//! clustered the population is:
//! - exact match: the share of synthetic rows equal to a training row may
//!   exceed the share of holdout rows equal to a training row (coincidence
//!   among real people) only by `exact_match_margin`;
//! - distance to closest record: for each synthetic row s, is its nearest
//!   training row closer than its nearest holdout row? A generator that
//!   learned the population and not the individuals gives P = ½; the share
//!   may exceed ½ by the one-sided 95 % binomial margin, and never the cap.
//!
//! DCR subsamples the synthetic side (seeded) to `max_dcr_synthetic_rows`.
//! The ½ baseline also needs |R| = |H|: with four times more training rows,
//! a row from the same population is nearest to R about 4 times out of 5.
//! So when the sizes differ, the larger of R and H is subsampled (seeded) to
//! the size of the smaller for the distance test; the result says so.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::index::sample;

use super::config::GateConfig;
use super::report::{OperatorResult, operator};
use super::{GateError, result};
use crate::stats::{GowerSpace, exact_match_flags, nearest_gower_distances};
use crate::table::Table;

/// z of the one-sided 95 % bound on the DCR share.
const DCR_Z: f64 = 1.645;

/// Exact-match and DCR results. Tables must already be aligned (see
/// `input::align`).
pub(crate) fn privacy(
    train: &Table,
    holdout: &Table,
    synthetic: &Table,
    config: &GateConfig,
    seed: u64,
) -> Result<Vec<OperatorResult>, GateError> {
    Ok(vec![
        exact_match(train, holdout, synthetic, config)?,
        dcr_share(train, holdout, synthetic, config, seed)?,
    ])
}

fn share(flags: &[bool]) -> (usize, f64) {
    let hits = flags.iter().filter(|&&f| f).count();
    (hits, hits as f64 / flags.len().max(1) as f64)
}

fn exact_match(
    train: &Table,
    holdout: &Table,
    synthetic: &Table,
    config: &GateConfig,
) -> Result<OperatorResult, GateError> {
    let (s_hits, s_share) = share(&exact_match_flags(synthetic, train)?);
    let (h_hits, h_share) = share(&exact_match_flags(holdout, train)?);
    let threshold = h_share + config.exact_match_margin;
    let passed = s_share <= threshold;
    let explanation = format!(
        "{s_hits} of {} synthetic rows ({:.3}%) equal a training row; {h_hits} of {} holdout rows \
         ({:.3}%) do by coincidence; allowed {:.3}%",
        synthetic.n_rows(),
        100.0 * s_share,
        holdout.n_rows(),
        100.0 * h_share,
        100.0 * threshold,
    );
    Ok(result(
        operator::EXACT_MATCH,
        Vec::new(),
        s_share,
        threshold,
        Some(h_share),
        passed,
        explanation,
    ))
}

/// `table` itself when it has at most `n` rows, else `n` rows drawn without
/// replacement.
fn subsample(table: &Table, n: usize, rng: &mut StdRng) -> Option<Table> {
    let rows = table.n_rows();
    (rows > n).then(|| {
        let mut picked = sample(rng, rows, n).into_vec();
        picked.sort_unstable();
        table.take(&picked)
    })
}

/// Threshold of the DCR share for `n` synthetic rows.
pub(crate) fn dcr_threshold(n: usize, cap: f64) -> f64 {
    (0.5 + DCR_Z * (0.25 / n.max(1) as f64).sqrt()).min(cap)
}

fn dcr_share(
    train: &Table,
    holdout: &Table,
    synthetic: &Table,
    config: &GateConfig,
    seed: u64,
) -> Result<OperatorResult, GateError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let s_sub = subsample(synthetic, config.max_dcr_synthetic_rows, &mut rng);
    let s = s_sub.as_ref().unwrap_or(synthetic);
    let size = train.n_rows().min(holdout.n_rows());
    let r_sub = subsample(train, size, &mut rng);
    let h_sub = subsample(holdout, size, &mut rng);
    let (r, h) = (
        r_sub.as_ref().unwrap_or(train),
        h_sub.as_ref().unwrap_or(holdout),
    );

    let mut space = GowerSpace::fit(train)?;
    let (rr, hh, ss) = (space.encode(r)?, space.encode(h)?, space.encode(s)?);
    let (Some(to_r), Some(to_h)) = (
        nearest_gower_distances(&ss, &rr),
        nearest_gower_distances(&ss, &hh),
    ) else {
        return Err(GateError::Empty {
            table: "training or holdout",
            what: "rows to measure distances to",
        });
    };
    let n = to_r.len();
    let (mut closer, mut ties) = (0usize, 0usize);
    for (dr, dh) in to_r.iter().zip(&to_h) {
        if dr < dh {
            closer += 1;
        } else if dr == dh {
            ties += 1;
        }
    }
    let statistic = (closer as f64 + 0.5 * ties as f64) / n.max(1) as f64;
    let threshold = dcr_threshold(n, config.dcr_share_cap);
    let passed = statistic <= threshold;
    let mut explanation = format!(
        "{:.2}% of {n} synthetic rows are closer (Gower) to training than to holdout \
         ({closer} closer, {ties} ties counted half); allowed {:.2}%; median distance {:.4} to \
         training, {:.4} to holdout",
        100.0 * statistic,
        100.0 * threshold,
        median(&to_r),
        median(&to_h),
    );
    if s_sub.is_some() {
        explanation.push_str(&format!(
            "; synthetic subsampled from {} rows",
            synthetic.n_rows()
        ));
    }
    if r_sub.is_some() || h_sub.is_some() {
        explanation.push_str(&format!(
            "; training ({}) and holdout ({}) subsampled to {size} rows each so ½ is the fair baseline",
            train.n_rows(),
            holdout.n_rows()
        ));
    }
    Ok(result(
        operator::DCR_SHARE,
        Vec::new(),
        statistic,
        threshold,
        None,
        passed,
        explanation,
    ))
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dcr_threshold_follows_design() {
        // 0.5 + 1.645·sqrt(0.25/5000) = 0.5116319065505187
        assert!((dcr_threshold(5000, 0.55) - 0.511_631_906_550_518_7).abs() < 1e-9);
        // n = 100: 0.5 + 1.645·0.05 = 0.58225 → capped at 0.55
        assert_eq!(dcr_threshold(100, 0.55), 0.55);
    }
}
