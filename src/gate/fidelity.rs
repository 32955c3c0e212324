//! Fidelity operators: does the synthetic batch look like the training data,
//! column by column and pair by pair?
//!
//! Each operator scores synthetic S against training R and, as a noise
//! floor, holdout H against R. The operators here only measure: the verdict
//! comes from `gate::calibration`, which compares each statistic with the
//! larger of its effect limit (`gate.*_max`) and its noise allowance (what
//! fresh real rows score at these sizes, from the resampling null of
//! `gate::null`).
//!
//! Choices for degenerate columns (never NaN):
//! - a numeric column with no finite value in R nor in S scores 0 (nothing
//!   to compare); with values on one side only it scores 1 (the column went
//!   missing, or appeared from nothing), and the null says whether fresh
//!   rows of a mostly-missing column do that too;
//! - Wasserstein-1 is scaled by a robust spread of the training column that
//!   never collapses while the column varies: the larger of its IQR and
//!   1.6903 × its mean absolute deviation from the median (the IQR a normal
//!   column with that deviation has: IQR/E|X − med| = 1.3490σ / 0.7979σ).
//!   On a bell-shaped column this is the IQR, as before; on a column that is
//!   usually 0 or has a long tail (a clinical score, a length of stay) the
//!   IQR is tiny or 0 while the tail moves the distance, and the deviation
//!   keeps the ratio meaningful. A constant column is measured in its own
//!   units;
//! - correlations use numeric columns only (categories have no order); a pair
//!   is gated when its training |Spearman r| ≥ `correlation_min_real`
//!   (pairs below are not reported); an undefined synthetic correlation
//!   (constant column) counts as r = 0; a flipped sign has effect limit 0
//!   (it fails once it is beyond noise, whatever `correlation_diff_max`).

use super::config::GateConfig;
use super::contingency::floor_note;
use super::input::ColumnTriple;
use super::parallel::parallel_map;
use super::report::{OperatorResult, operator};
use super::result;
use crate::stats::{
    RankedColumn, aligned_counts, iqr, ks_statistic_sorted, quantile_sorted, sorted_finite,
    spearman_ranked, total_variation, wasserstein1_sorted,
};
use crate::table::{Column, ColumnValues};

/// All fidelity results, in training column order: per numeric column KS
/// and Wasserstein/IQR, per categorical column TV, then correlated pairs.
pub(crate) fn fidelity(columns: &[ColumnTriple<'_>], config: &GateConfig) -> Vec<OperatorResult> {
    let mut out: Vec<OperatorResult> =
        parallel_map(columns, |triple| column_results(triple, config))
            .into_iter()
            .flatten()
            .collect();
    let numeric: Vec<ColumnTriple<'_>> = columns
        .iter()
        .filter(|t| matches!(t.train.values, ColumnValues::Numeric(_)))
        .copied()
        .collect();
    out.extend(correlations(&numeric, config));
    out
}

/// KS and Wasserstein/IQR for a numeric column, TV for a categorical one.
fn column_results(triple: &ColumnTriple<'_>, config: &GateConfig) -> Vec<OperatorResult> {
    match &triple.train.values {
        ColumnValues::Numeric(r) => {
            let samples = Samples {
                r: sorted_finite(r),
                h: sorted_finite(numeric_values(triple.holdout)),
                s: sorted_finite(numeric_values(triple.synthetic)),
            };
            vec![
                ks(triple, &samples, config),
                wasserstein(triple, &samples, config),
            ]
        }
        ColumnValues::Categorical { .. } => vec![tv(triple, config)],
    }
}

struct Samples {
    r: Vec<f64>,
    h: Vec<f64>,
    s: Vec<f64>,
}

/// `Ok(statistic)` when both samples have values, otherwise the degenerate
/// outcome: `Err((statistic, passed, why))`.
fn two_samples(
    r: &[f64],
    x: &[f64],
    what: &str,
    score: impl Fn(&[f64], &[f64]) -> Option<f64>,
) -> Result<f64, (f64, bool, String)> {
    match (r.is_empty(), x.is_empty()) {
        (true, true) => Err((0.0, true, format!("no values in training or {what}"))),
        (true, false) => Err((1.0, false, format!("{what} has values, training has none"))),
        (false, true) => Err((1.0, false, format!("{what} has no values, training has"))),
        (false, false) => score(r, x).ok_or((1.0, false, "statistic undefined".to_string())),
    }
}

fn floor_of(r: &[f64], h: &[f64], score: impl Fn(&[f64], &[f64]) -> Option<f64>) -> Option<f64> {
    two_samples(r, h, "holdout", score).ok()
}

/// Missing values of a numeric column, and its length.
fn missing(column: &Column) -> (usize, usize) {
    let missing = match &column.values {
        ColumnValues::Numeric(v) => v.iter().filter(|x| !x.is_finite()).count(),
        ColumnValues::Categorical { .. } => 0,
    };
    (missing, column.values.len())
}

fn ks(triple: &ColumnTriple<'_>, x: &Samples, config: &GateConfig) -> OperatorResult {
    let name = triple.name();
    let floor = floor_of(&x.r, &x.h, ks_statistic_sorted);
    let (d, what) = match two_samples(&x.r, &x.s, "synthetic", ks_statistic_sorted) {
        Ok(d) => (d, format!("KS D {d:.4}")),
        Err((d, _, why)) => (d, format!("column `{name}`: {why}: KS D {d:.4}")),
    };
    // The training share is a real count: a bound when it is a small cell.
    let ((m_s, n_s), (m_r, n_r)) = (missing(triple.synthetic), missing(triple.train));
    let explanation = format!(
        "{what}{}; missing {:.1}% synthetic vs {} training",
        floor_note(floor),
        100.0 * m_s as f64 / n_s.max(1) as f64,
        super::cells::share(m_r, n_r, config.small_cell_min, 1),
    );
    result(
        operator::KS,
        vec![name.to_string()],
        d,
        config.ks_max,
        floor,
        d <= config.ks_max,
        explanation,
    )
}

/// Ratio of a normal distribution's IQR to its mean absolute deviation from
/// the median: 2·0.674490σ / (σ·√(2/π)) = 1.690 308.
const IQR_PER_MEAN_ABS_DEVIATION: f64 = 1.690_308;

/// The spread Wasserstein-1 is measured in, and its name: the larger of the
/// IQR and the IQR implied by the mean absolute deviation from the median,
/// so a column that is usually one value still has a scale.
pub(crate) fn robust_scale(sorted: &[f64]) -> (f64, &'static str) {
    let iqr = iqr(sorted).unwrap_or(0.0);
    let deviation = match quantile_sorted(sorted, 0.5) {
        Some(median) if !sorted.is_empty() => {
            IQR_PER_MEAN_ABS_DEVIATION * sorted.iter().map(|v| (v - median).abs()).sum::<f64>()
                / sorted.len() as f64
        }
        _ => 0.0,
    };
    if iqr <= 0.0 && deviation <= 0.0 {
        (1.0, "column units (training is constant)")
    } else if iqr >= deviation {
        (iqr, "training IQR")
    } else {
        (
            deviation,
            "training spread (1.69 × mean absolute deviation, above the IQR)",
        )
    }
}

fn wasserstein(triple: &ColumnTriple<'_>, x: &Samples, config: &GateConfig) -> OperatorResult {
    let name = triple.name();
    let (scale, unit) = robust_scale(&x.r);
    let score = |a: &[f64], b: &[f64]| wasserstein1_sorted(a, b).map(|w| w / scale);
    let floor = floor_of(&x.r, &x.h, score);
    let limit = config.wasserstein_iqr_max;
    let (w, explanation) = match two_samples(&x.r, &x.s, "synthetic", score) {
        Ok(w) => (
            w,
            format!(
                "Wasserstein-1 = {w:.4} × {unit} ({scale:.4}){}",
                floor_note(floor)
            ),
        ),
        Err((w, _, why)) => (w, format!("column `{name}`: {why}")),
    };
    result(
        operator::WASSERSTEIN_IQR,
        vec![name.to_string()],
        w,
        limit,
        floor,
        w <= limit,
        explanation,
    )
}

fn tv(triple: &ColumnTriple<'_>, config: &GateConfig) -> OperatorResult {
    let columns = vec![triple.name().to_string()];
    let score = |other: &Column| {
        aligned_counts(triple.train, other)
            .ok()
            .and_then(|c| total_variation(&c.a, &c.b).map(|tv| (tv, c)))
    };
    let floor = score(triple.holdout).map(|(tv, _)| tv);
    let (tv, explanation) = match score(triple.synthetic) {
        Some((tv, counts)) => {
            let unseen = counts
                .labels
                .iter()
                .zip(counts.a.iter().zip(&counts.b))
                .filter(|(_, (r, s))| **r == 0 && **s > 0)
                .count();
            (
                tv,
                format!(
                    "total variation {tv:.4} over {} categories{}{}",
                    counts.labels.len(),
                    if unseen > 0 {
                        format!(" ({unseen} not in training)")
                    } else {
                        String::new()
                    },
                    floor_note(floor),
                ),
            )
        }
        None => (1.0, "categories could not be counted".to_string()),
    };
    result(
        operator::TOTAL_VARIATION,
        columns,
        tv,
        config.tv_max,
        floor,
        tv <= config.tv_max,
        explanation,
    )
}

fn numeric_values(column: &Column) -> &[f64] {
    match &column.values {
        ColumnValues::Numeric(v) => v,
        ColumnValues::Categorical { .. } => &[],
    }
}

fn correlations<'a>(numeric: &[ColumnTriple<'a>], config: &GateConfig) -> Vec<OperatorResult> {
    let ranked: Vec<[RankedColumn<'a>; 3]> = parallel_map(numeric, |t| {
        [t.train, t.holdout, t.synthetic].map(|c| RankedColumn::new(numeric_values(c)))
    });
    let [r, h, s] = [0, 1, 2].map(|k| ranked.iter().map(|x| &x[k]).collect::<Vec<_>>());
    let pairs: Vec<(usize, usize)> = (0..numeric.len())
        .flat_map(|i| (i + 1..numeric.len()).map(move |j| (i, j)))
        .collect();
    parallel_map(&pairs, |&(i, j)| {
        let real = spearman_ranked(r[i], r[j])?;
        if real.abs() < config.correlation_min_real {
            return None;
        }
        let synthetic = spearman_ranked(s[i], s[j]);
        let syn = synthetic.unwrap_or(0.0);
        let diff = (syn - real).abs();
        let floor = spearman_ranked(h[i], h[j]).map(|hr| (hr - real).abs());
        // A flipped sign is a material change whatever its size: its limit
        // is 0, so only the noise allowance can excuse it.
        let flipped = syn * real < 0.0;
        let limit = if flipped {
            0.0
        } else {
            config.correlation_diff_max
        };
        let explanation = format!(
            "Spearman r {real:.3} in training, {} in synthetic: |Δr| {diff:.4}{}{}",
            synthetic.map_or("undefined (taken as 0)".to_string(), |v| format!("{v:.3}")),
            if flipped { "; the sign flipped" } else { "" },
            floor_note(floor),
        );
        Some(result(
            operator::SPEARMAN_DIFF,
            vec![numeric[i].name().to_string(), numeric[j].name().to_string()],
            diff,
            limit,
            floor,
            diff <= limit,
            explanation,
        ))
    })
    .into_iter()
    .flatten()
    .collect()
}
