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

use super::config::GateConfig;
use super::input::ColumnTriple;
use super::report::{OperatorResult, operator};
use super::result;
use super::roles::Roles;
use super::utility::groups;

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
        let (_, h) = count(t.holdout);
        let total = |c: &[usize]| c.iter().sum::<usize>().max(1) as f64;
        let (nr, ns, nh) = (total(&r), total(&s), total(&h));
        for (k, name) in names.iter().enumerate() {
            if r[k] == 0 {
                continue;
            }
            let p_r = r[k] as f64 / nr;
            // Categorical levels are named by label in each table.
            let s_k = names_s.iter().position(|n| n == name).map_or(0, |i| s[i]);
            let p_s = s_k as f64 / ns;
            let loss = |p: f64| ((p_r - p) / p_r).max(0.0);
            let statistic = loss(p_s);
            let floor = h.get(k).map(|&c| loss(c as f64 / nh));
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
                    "{}={name}: {:.2}% of training rows ({}), {:.2}% of synthetic rows ({s_k}): \
                     relative loss of share {statistic:.3}{}",
                    subgroup.column,
                    100.0 * p_r,
                    r[k],
                    100.0 * p_s,
                    super::contingency::floor_note(floor),
                ),
            ));
        }
    }
    out
}
