//! Conditional distributions: does a column keep its shape within each
//! stratum of another (e.g. HbA1c given diagnosis)?
//!
//! Clinical meaning often lives in conditionals: a generator can reproduce
//! the overall HbA1c distribution while giving diabetics and non-diabetics
//! the same values. For every `roles.conditionals` entry `column | given`,
//! each stratum of `given` with at least `conditional_min_rows` training
//! rows is scored on its own: KS D for a numeric `column`, total variation
//! (missing as a category) for a categorical one, synthetic vs training
//! within the stratum, holdout vs training as the noise floor; each is gated
//! at `conditional_ks_max`, one result per stratum, named
//! `column, given=label` so a failure points at the stratum.
//!
//! Strata are the categories of `given` (missing is a stratum of its own); a
//! numeric `given` is cut into training deciles. Strata with fewer training
//! rows are not scored (the KS of 20 rows is mostly noise) and are listed in
//! one reported result per conditional. A scored stratum with no synthetic
//! row fails with statistic 1: the generator dropped that group. Categories
//! of `given` that exist only in the synthetic batch are not strata (the
//! per-column TV of `given` already counts them).

use super::codes::{self, Binning, Coded};
use super::config::GateConfig;
use super::contingency::{NUMERIC_BINS, floor_note};
use super::input::ColumnTriple;
use super::parallel::parallel_map;
use super::report::{OperatorResult, operator};
use super::result;
use super::roles::Conditional;
use crate::stats::{ks_statistic_sorted, sorted_finite, total_variation};
use crate::table::{Column, ColumnValues};

/// Gated per-stratum results and reported notes on skipped strata.
pub(crate) fn conditionals(
    columns: &[ColumnTriple<'_>],
    specs: &[Conditional],
    config: &GateConfig,
) -> (Vec<OperatorResult>, Vec<OperatorResult>) {
    let (mut gated, mut reported) = (Vec::new(), Vec::new());
    for spec in specs {
        let find = |name: &str| columns.iter().find(|t| t.name() == name);
        // Unknown columns are rejected by `Roles::validate` before this runs.
        let (Some(column), Some(given)) = (find(&spec.column), find(&spec.given)) else {
            continue;
        };
        let (g, mut r) = one(column, given, config);
        gated.extend(g);
        reported.append(&mut r);
    }
    (gated, reported)
}

/// What a stratum's column values are compared as.
enum Target {
    Numeric,
    Categorical(Coded),
}

fn one(
    column: &ColumnTriple<'_>,
    given: &ColumnTriple<'_>,
    config: &GateConfig,
) -> (Vec<OperatorResult>, Vec<OperatorResult>) {
    let strata = codes::code(given, Binning::Quantile(NUMERIC_BINS));
    let target = match column.train.values {
        ColumnValues::Numeric(_) => Target::Numeric,
        ColumnValues::Categorical { .. } => {
            Target::Categorical(codes::code(column, Binning::Quantile(NUMERIC_BINS)))
        }
    };
    // Row indices per stratum, per table.
    let group = |codes: &[u32]| {
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); strata.levels()];
        for (i, &c) in codes.iter().enumerate() {
            if let Some(g) = rows.get_mut(c as usize) {
                g.push(i as u32);
            }
        }
        rows
    };
    let (r, h, s) = (group(&strata.r), group(&strata.h), group(&strata.s));
    let min = config.conditional_min_rows;
    let scored: Vec<usize> = (0..strata.levels())
        .filter(|&k| r[k].len() >= min)
        .collect();
    let skipped: Vec<String> = (0..strata.levels())
        .filter(|&k| !r[k].is_empty() && r[k].len() < min)
        .map(|k| format!("{} ({} rows)", strata.labels[k], r[k].len()))
        .collect();

    let gated = parallel_map(&scored, |&k| {
        let label = &strata.labels[k];
        let columns = vec![
            column.name().to_string(),
            format!("{}={label}", given.name()),
        ];
        let threshold = config.conditional_ks_max;
        let (what, stat, floor) = match &target {
            Target::Numeric => {
                let values = |c: &Column, rows: &[u32]| match &c.values {
                    ColumnValues::Numeric(v) => {
                        sorted_finite(&rows.iter().map(|&i| v[i as usize]).collect::<Vec<_>>())
                    }
                    ColumnValues::Categorical { .. } => Vec::new(),
                };
                let vr = values(column.train, &r[k]);
                let floor = ks_statistic_sorted(&vr, &values(column.holdout, &h[k]));
                let vs = values(column.synthetic, &s[k]);
                let stat = match (vr.is_empty(), vs.is_empty(), s[k].is_empty()) {
                    (_, _, true) => Err("the synthetic batch has no row in this stratum"),
                    (true, true, false) => Ok(0.0),
                    (true, false, false) => Err("synthetic has values here, training has none"),
                    (false, true, false) => Err("synthetic has no values here, training has"),
                    (false, false, false) => ks_statistic_sorted(&vr, &vs).ok_or("undefined"),
                };
                let allowance = ks_critical(vr.len(), vs.len());
                ("KS D", stat.map(|d| (d, allowance)), floor)
            }
            Target::Categorical(coded) => {
                let count = |codes: &[u32], rows: &[u32]| {
                    let mut c = vec![0u64; coded.levels()];
                    for &i in rows {
                        if let Some(slot) =
                            codes.get(i as usize).and_then(|&x| c.get_mut(x as usize))
                        {
                            *slot += 1;
                        }
                    }
                    c
                };
                let cr = count(&coded.r, &r[k]);
                let floor = total_variation(&cr, &count(&coded.h, &h[k]));
                let stat = if s[k].is_empty() {
                    Err("the synthetic batch has no row in this stratum")
                } else {
                    total_variation(&cr, &count(&coded.s, &s[k])).ok_or("undefined")
                };
                ("total variation", stat.map(|d| (d, 0.0)), floor)
            }
        };
        let sizes = format!(
            "{} training, {} synthetic, {} holdout rows",
            r[k].len(),
            s[k].len(),
            h[k].len()
        );
        match stat {
            Ok((d, allowance)) => {
                let threshold = threshold.max(allowance);
                let passed = d <= threshold;
                result(
                    operator::CONDITIONAL_KS,
                    columns,
                    d,
                    threshold,
                    floor,
                    passed,
                    format!(
                        "{what} of `{}` within {}={label}: {d:.4} {} threshold {threshold:.4} \
                         ({sizes}){}",
                        column.name(),
                        given.name(),
                        if passed { "≤" } else { ">" },
                        floor_note(floor, threshold),
                    ),
                )
            }
            Err(why) => result(
                operator::CONDITIONAL_KS,
                columns,
                1.0,
                threshold,
                floor,
                false,
                format!(
                    "{what} of `{}` within {}={label}: {why} ({sizes})",
                    column.name(),
                    given.name()
                ),
            ),
        }
    });
    let mut reported = Vec::new();
    if !skipped.is_empty() {
        reported.push(result(
            operator::CONDITIONAL_KS,
            vec![column.name().to_string(), given.name().to_string()],
            0.0,
            config.conditional_ks_max,
            None,
            true,
            format!(
                "reported, not gated: {} of {} strata of `{}` skipped, fewer than {min} training \
                 rows: {}",
                skipped.len(),
                skipped.len() + scored.len(),
                given.name(),
                skipped.join(", ")
            ),
        ));
    }
    (gated, reported)
}

/// c(α) of the two-sample Kolmogorov–Smirnov test at α = 0.001 (asymptotic:
/// √(−½ ln(α/2)) = 1.9495).
const KS_C_ALPHA: f64 = 1.9495;

/// The KS D that two samples of `n` and `m` rows from one distribution
/// exceed with probability 0.001: c(α)·√((n + m)/(n·m)). A stratum of 50
/// training rows has D ≈ 0.2 from sampling alone, so a fixed 0.15 would
/// fail faithful batches at random (measured: 13 % of faithful 3 000-row
/// batches); the stratum's threshold is the larger of the configured one
/// and this. α is small because a batch has many strata: the allowance only
/// matters for small ones, where it keeps a chance failure rare, and a real
/// difference in a small stratum still fails once it exceeds the noise.
pub(crate) fn ks_critical(n: usize, m: usize) -> f64 {
    if n == 0 || m == 0 {
        return 0.0;
    }
    let (n, m) = (n as f64, m as f64);
    KS_C_ALPHA * ((n + m) / (n * m)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ks_critical_value_is_the_asymptotic_bound() {
        // c(0.001) = √(−½·ln(0.0005)) = 1.94947…
        assert!((KS_C_ALPHA - (-0.5 * (0.0005f64).ln()).sqrt()).abs() < 1e-4);
        // n = m = 50: 1.9495·√(100/2500) = 0.3899
        assert!((ks_critical(50, 50) - 0.3899).abs() < 1e-4);
        // Large strata: below the configured 0.15, which then decides.
        assert!(ks_critical(2000, 2000) < 0.07);
        assert_eq!(ks_critical(0, 10), 0.0);
    }
}
