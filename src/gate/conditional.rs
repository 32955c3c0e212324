//! Conditional distributions: does a column keep its shape within each
//! stratum of another (e.g. HbA1c given diagnosis)?
//!
//! Clinical meaning often lives in conditionals: a generator can reproduce
//! the overall HbA1c distribution while giving diabetics and non-diabetics
//! the same values. For every `roles.conditionals` entry `column | given`,
//! each stratum of `given` with at least `conditional_min_rows` training
//! rows is scored on its own: KS D for a numeric `column`, total variation
//! (missing as a category) for a categorical one, synthetic vs training
//! within the stratum, holdout vs training as the noise floor; each has the
//! effect limit `conditional_ks_max` and joins the fidelity family's
//! resampling null (a small stratum's KS D is mostly noise, and the null
//! says how much), one result per stratum, named `column, given=label` so a
//! failure points at the stratum.
//!
//! Strata are the categories of `given` (missing is a stratum of its own); a
//! numeric `given` is cut into training deciles. Strata with fewer training
//! rows are not scored (the KS of 20 rows is mostly noise) and are listed in
//! one reported result per conditional. A stratum behind a small real cell
//! (`gate.small_cell_min`, see [`super::cells`]) is never named: a scored
//! one is shown as `given=(levels under k rows)`, skipped ones are only
//! counted, and real row counts below k are written `<k`. (With the default
//! 50 training rows per scored stratum, only a stratum the training side
//! lacks can be a scored small cell.) A scored stratum
//! with no synthetic row fails with statistic 1: the generator dropped that
//! group. Categories of `given` that exist only in the synthetic batch are
//! not strata (the per-column TV of `given` already counts them).

use super::cells;
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

/// A gated result and the key that finds the same stratum in a null
/// replicate: the label for a categorical `given`, the decile's position for
/// a numeric one (a replicate's deciles have other edges, so other labels).
pub(crate) type Keyed = (OperatorResult, String);

/// Gated per-stratum results (with their null keys) and reported notes on
/// skipped strata.
pub(crate) fn conditionals(
    columns: &[ColumnTriple<'_>],
    specs: &[Conditional],
    config: &GateConfig,
) -> (Vec<Keyed>, Vec<OperatorResult>) {
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
) -> (Vec<Keyed>, Vec<OperatorResult>) {
    let numeric_given = matches!(given.train.values, ColumnValues::Numeric(_));
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
    // Strata behind a small real cell are not named and their counts are
    // bounds (`gate::cells`); the null's key keeps the real label, which
    // never leaves the gate.
    let cell_min = config.small_cell_min;
    let shown = strata.shown_labels(cell_min);
    let nameable = strata.nameable(cell_min);
    let skipped: Vec<usize> = (0..strata.levels())
        .filter(|&k| !r[k].is_empty() && r[k].len() < min)
        .collect();
    let (named, unnamed): (Vec<usize>, Vec<usize>) = skipped.iter().partition(|&&k| nameable[k]);
    let mut listed: Vec<String> = named
        .iter()
        .map(|&k| {
            format!(
                "{} ({} rows)",
                strata.labels[k],
                cells::count(r[k].len(), cell_min)
            )
        })
        .collect();
    if !unnamed.is_empty() {
        listed.push(format!(
            "{} more, each under {cell_min} training rows",
            unnamed.len()
        ));
    }

    let gated = parallel_map(&scored, |&k| {
        let label = &strata.labels[k];
        let shown = &shown[k];
        let columns = vec![
            column.name().to_string(),
            format!("{}={shown}", given.name()),
        ];
        let limit = config.conditional_ks_max;
        let key = if numeric_given && k != strata.missing as usize {
            format!("{}|{}#{k}", column.name(), given.name())
        } else {
            format!("{}|{}={label}", column.name(), given.name())
        };
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
                ("KS D", stat, floor)
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
                ("total variation", stat, floor)
            }
        };
        let sizes = format!(
            "{} training, {} synthetic, {} holdout rows",
            cells::count(r[k].len(), cell_min),
            s[k].len(),
            cells::count(h[k].len(), cell_min)
        );
        // A stratum the batch lacks or empties scores 1; whether fresh rows
        // do that too at these sizes is the null's call.
        let (d, why) = match stat {
            Ok(d) => (d, String::new()),
            Err(why) => (1.0, format!(": {why}")),
        };
        let r = result(
            operator::CONDITIONAL_KS,
            columns,
            d,
            limit,
            floor,
            d <= limit,
            format!(
                "{what} of `{}` within {}={shown}{why}: {d:.4} ({sizes}){}",
                column.name(),
                given.name(),
                floor_note(floor),
            ),
        );
        (r, key)
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
                listed.join(", ")
            ),
        ));
    }
    (gated, reported)
}
