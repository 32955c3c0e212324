//! Fidelity operators: does the synthetic batch look like the training data,
//! column by column and pair by pair?
//!
//! Each operator scores synthetic S against training R and, as a noise
//! floor, holdout H against R: the floor says how far fresh real data sits
//! from R at this sample size, which tells a reviewer whether a failure is
//! the generator's fault or a threshold too tight for the window. The gate
//! decides on the threshold alone; the floor is evidence.
//!
//! Choices for degenerate columns (never NaN):
//! - a numeric column with no finite value in R nor in S passes with
//!   statistic 0 (nothing to compare); with values on one side only it fails
//!   with statistic 1 (the column went missing, or appeared from nothing);
//! - Wasserstein-1 is scaled by the training IQR; when that is 0 (a column
//!   dominated by one value) by the training range; when that is also 0, the
//!   distance is taken in the column's own units;
//! - correlations use numeric columns only (categories have no order); a pair
//!   is gated when its training |Spearman r| ≥ `correlation_min_real`
//!   (pairs below are not reported); an
//!   undefined synthetic correlation (constant column) counts as r = 0.

use super::config::GateConfig;
use super::input::ColumnTriple;
use super::parallel::parallel_map;
use super::report::{OperatorResult, operator};
use super::result;
use crate::stats::{
    RankedColumn, aligned_counts, iqr, ks_statistic_sorted, sorted_finite, spearman_ranked,
    total_variation, wasserstein1_sorted,
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

fn missing_share(column: &Column) -> f64 {
    let n = column.values.len().max(1);
    let missing = match &column.values {
        ColumnValues::Numeric(v) => v.iter().filter(|x| !x.is_finite()).count(),
        ColumnValues::Categorical { .. } => 0,
    };
    missing as f64 / n as f64
}

fn floor_note(floor: Option<f64>, threshold: f64) -> String {
    match floor {
        Some(f) if f > threshold => format!(
            "; holdout vs training is {f:.4}, above the threshold: the window may be too small for it"
        ),
        Some(f) => format!("; holdout vs training {f:.4}"),
        None => String::new(),
    }
}

fn ks(triple: &ColumnTriple<'_>, x: &Samples, config: &GateConfig) -> OperatorResult {
    let name = triple.name();
    let floor = floor_of(&x.r, &x.h, ks_statistic_sorted);
    let columns = vec![name.to_string()];
    match two_samples(&x.r, &x.s, "synthetic", ks_statistic_sorted) {
        Ok(d) => {
            let passed = d <= config.ks_max;
            let explanation = format!(
                "KS D {d:.4} {} threshold {:.4}{}; missing {:.1}% synthetic vs {:.1}% training",
                if passed { "≤" } else { ">" },
                config.ks_max,
                floor_note(floor, config.ks_max),
                100.0 * missing_share(triple.synthetic),
                100.0 * missing_share(triple.train),
            );
            result(
                operator::KS,
                columns,
                d,
                config.ks_max,
                floor,
                passed,
                explanation,
            )
        }
        Err((d, passed, why)) => result(
            operator::KS,
            columns,
            d,
            config.ks_max,
            floor,
            passed,
            format!("column `{name}`: {why}"),
        ),
    }
}

fn wasserstein(triple: &ColumnTriple<'_>, x: &Samples, config: &GateConfig) -> OperatorResult {
    let name = triple.name();
    let (scale, unit) = match iqr(&x.r) {
        Some(q) if q > 0.0 => (q, "training IQR"),
        _ => match (x.r.first(), x.r.last()) {
            (Some(lo), Some(hi)) if hi > lo => (hi - lo, "training range (IQR is 0)"),
            _ => (1.0, "column units (training is constant)"),
        },
    };
    let score = |a: &[f64], b: &[f64]| wasserstein1_sorted(a, b).map(|w| w / scale);
    let floor = floor_of(&x.r, &x.h, score);
    let threshold = config.wasserstein_iqr_max;
    let columns = vec![name.to_string()];
    match two_samples(&x.r, &x.s, "synthetic", score) {
        Ok(w) => {
            let passed = w <= threshold;
            let explanation = format!(
                "Wasserstein-1 = {w:.4} × {unit} ({scale:.4}) {} threshold {threshold:.4}{}",
                if passed { "≤" } else { ">" },
                floor_note(floor, threshold),
            );
            result(
                operator::WASSERSTEIN_IQR,
                columns,
                w,
                threshold,
                floor,
                passed,
                explanation,
            )
        }
        Err((w, passed, why)) => result(
            operator::WASSERSTEIN_IQR,
            columns,
            w,
            threshold,
            floor,
            passed,
            format!("column `{name}`: {why}"),
        ),
    }
}

fn tv(triple: &ColumnTriple<'_>, config: &GateConfig) -> OperatorResult {
    let columns = vec![triple.name().to_string()];
    let score = |other: &Column| {
        aligned_counts(triple.train, other)
            .ok()
            .and_then(|c| total_variation(&c.a, &c.b).map(|tv| (tv, c)))
    };
    let floor = score(triple.holdout).map(|(tv, _)| tv);
    match score(triple.synthetic) {
        Some((tv, counts)) => {
            let passed = tv <= config.tv_max;
            let unseen = counts
                .labels
                .iter()
                .zip(counts.a.iter().zip(&counts.b))
                .filter(|(_, (r, s))| **r == 0 && **s > 0)
                .count();
            let explanation = format!(
                "total variation {tv:.4} {} threshold {:.4} over {} categories{}{}",
                if passed { "≤" } else { ">" },
                config.tv_max,
                counts.labels.len(),
                if unseen > 0 {
                    format!(" ({unseen} not in training)")
                } else {
                    String::new()
                },
                floor_note(floor, config.tv_max),
            );
            result(
                operator::TOTAL_VARIATION,
                columns,
                tv,
                config.tv_max,
                floor,
                passed,
                explanation,
            )
        }
        None => result(
            operator::TOTAL_VARIATION,
            columns,
            1.0,
            config.tv_max,
            floor,
            false,
            "categories could not be counted".to_string(),
        ),
    }
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
        let flipped = syn * real < 0.0;
        let floor = spearman_ranked(h[i], h[j]).map(|hr| (hr - real).abs());
        let threshold = config.correlation_diff_max;
        let passed = diff <= threshold && !flipped;
        let explanation = format!(
            "Spearman r {real:.3} in training, {} in synthetic: |Δr| {diff:.4} {} threshold {threshold:.4}{}{}",
            synthetic.map_or("undefined (taken as 0)".to_string(), |v| format!("{v:.3}")),
            if diff <= threshold { "≤" } else { ">" },
            if flipped { "; the sign flipped" } else { "" },
            floor_note(floor, threshold),
        );
        Some(result(
            operator::SPEARMAN_DIFF,
            vec![
                numeric[i].name().to_string(),
                numeric[j].name().to_string(),
            ],
            diff,
            threshold,
            floor,
            passed,
            explanation,
        ))
    })
    .into_iter()
    .flatten()
    .collect()
}
