//! Subgroup representation: does every declared subgroup keep its share of
//! the batch?
//!
//! A generator can collapse a small group (the 8 % of patients who are not
//! white, one age band) while every per-column distance stays under its
//! limit, because the group's whole share is below `tv_max`; downstream, a
//! model trained on the batch then never sees those patients. For each level
//! of each `roles.subgroups` column (numeric ones cut at their `bands`,
//! missing a level of its own) with training rows, the statistic is the
//! group's relative loss of share, `max(0, (p_R − p_S)/p_R)`: 1 when the
//! group vanished, 0 when it kept or grew its share (growth shows up in the
//! per-column total variation). Effect limit `subgroup_loss_max` (half the
//! group); the result joins the fidelity family, so its noise allowance comes
//! from the same resampling null: a group of four training rows can vanish
//! from a fresh batch by chance, and its allowance says so.
//!
//! Levels with fewer than `gate.small_cell_min` training rows (11 by
//! default, [`MIN_NAMED_LEVEL_ROWS`]) are scored together, as one level
//! named `<column>=(levels under 11 rows)`: result
//! names leave the controlled environment in alerts and OpenLineage
//! assertions, and a label that a handful of real patients hold (a rare
//! code, a free-text value) is itself identifying. Pooled, their total share
//! is still kept, without pushing the generator to reproduce any one rare
//! label. Explanations give a real count below the threshold as `<11`
//! (see [`super::cells`]).

use super::config::GateConfig;
use super::input::ColumnTriple;
use super::report::{OperatorResult, operator};
use super::result;
use super::roles::Roles;
use super::utility::groups;

/// Levels held by fewer training rows are pooled (see the module doc):
/// the default of `gate.small_cell_min`.
pub const MIN_NAMED_LEVEL_ROWS: usize = 11;

/// The name of the pooled level of rare labels at the default threshold.
pub const RARE_LEVELS: &str = "(levels under 11 rows)";

/// The name of the pooled level of labels held by fewer than `k` rows
/// (the name every small-cell level goes by, see [`super::cells`]).
pub use super::cells::rare_levels;

/// One result per subgroup level with training rows.
pub(crate) fn subgroup_shares(
    columns: &[ColumnTriple<'_>],
    roles: &Roles,
    config: &GateConfig,
) -> Vec<OperatorResult> {
    let mut out = Vec::new();
    for subgroup in &roles.subgroups {
        let Some(t) = columns.iter().find(|t| t.name() == subgroup.column) else {
            continue;
        };
        let count = |column| {
            let (names, of) = groups(column, subgroup);
            let mut counts = vec![0usize; names.len()];
            for g in of {
                if let Some(c) = counts.get_mut(g) {
                    *c += 1;
                }
            }
            (names, counts)
        };
        let (names, r) = count(t.train);
        let (names_s, s) = count(t.synthetic);
        let (names_h, h) = count(t.holdout);
        let total = |c: &[usize]| c.iter().sum::<usize>().max(1) as f64;
        let (nr, ns, nh) = (total(&r), total(&s), total(&h));
        // (name, training, synthetic, holdout rows) per scored level.
        let mut levels: Vec<(String, usize, usize, usize)> = Vec::new();
        let k_min = config.small_cell_min;
        let mut rare = (rare_levels(k_min), 0, 0, 0);
        for (k, name) in names.iter().enumerate() {
            if r[k] == 0 {
                continue;
            }
            // Categorical levels are named by label in each table (each
            // table has its own dictionary, so its own order).
            let s_k = names_s.iter().position(|n| n == name).map_or(0, |i| s[i]);
            let h_k = names_h.iter().position(|n| n == name).map_or(0, |i| h[i]);
            // With training rows, a level may be named when it has k of
            // them, whatever the holdout holds (`cells::nameable`).
            if !super::cells::nameable(r[k], h_k, k_min) {
                rare.1 += r[k];
                rare.2 += s_k;
                rare.3 += h_k;
            } else {
                levels.push((name.clone(), r[k], s_k, h_k));
            }
        }
        if rare.1 > 0 {
            levels.push(rare);
        }
        for (name, r_k, s_k, h_k) in levels {
            let p_r = r_k as f64 / nr;
            let p_s = s_k as f64 / ns;
            let loss = |p: f64| ((p_r - p) / p_r).max(0.0);
            let statistic = loss(p_s);
            let floor = Some(loss(h_k as f64 / nh));
            out.push(result(
                operator::SUBGROUP_SHARE,
                vec![
                    subgroup.column.clone(),
                    format!("{}={name}", subgroup.column),
                ],
                statistic,
                config.subgroup_loss_max,
                floor,
                statistic <= config.subgroup_loss_max,
                format!(
                    "{}={name}: {} of training rows ({}), {:.2}% of synthetic rows ({s_k}): \
                     relative loss of share {statistic:.3}{}",
                    subgroup.column,
                    super::cells::share(r_k, nr as usize, k_min, 2),
                    super::cells::count(r_k, k_min),
                    100.0 * p_s,
                    super::contingency::floor_note(floor),
                ),
            ));
        }
    }
    out
}
