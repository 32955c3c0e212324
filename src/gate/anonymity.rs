//! k-anonymity risk and distinct l-diversity on the declared
//! quasi-identifiers, measured where the risk is: at the synthetic records.
//!
//! A synthetic batch is not itself "k-anonymous" or not (its records are no
//! one), but a synthetic record whose quasi-identifiers equal those of a
//! small training equivalence class points at the few real people in it.
//! Some of that happens by chance to any record of the population, so the
//! yardstick is the holdout: the share of synthetic records that land in a
//! training class smaller than k may exceed the share of holdout records
//! that do only by more than `k_anonymity_margin` (the effect limit) and
//! more than sampling explains (the noise allowance: the holdout share plus
//! the upper α critical difference of the two shares with synthetic and
//! holdout records relabelled, α the operator's share of the gate's
//! false-fail rate; a few thousandths at 50 000 records).
//! The same holds for classes that
//! fail distinct l-diversity: if every training record in a class has the
//! same diagnosis, a synthetic record matched to that class teaches its
//! diagnosis to anyone who can place a person there.
//!
//! Choices:
//! - equivalence classes are formed on the training table with the
//!   quasi-identifiers used as exact values (`stats::equivalence_classes`);
//!   numeric quasi-identifiers are meant to be coarse already (age in years,
//!   zip3) — a continuous one makes nearly every class a singleton, and the
//!   holdout comparison then shows that both shares are high rather than
//!   failing the batch by itself; missing equals missing;
//! - a synthetic or holdout record whose tuple matches no training class
//!   points at nobody and is counted in the denominator only;
//! - l-diversity: one result per sensitive column that is not itself a
//!   quasi-identifier; missing counts as one more value; the share is over
//!   matched records (those that point at a class at all);
//! - no quasi-identifiers declared: no result (the operator does not apply).

use super::calibration::{Allowance, share_permutation};
use super::cells;
use super::config::GateConfig;
use super::report::{OperatorResult, operator};
use super::roles::Roles;
use super::{GateError, result};
use crate::stats::equivalence_classes;
use crate::table::Table;

/// k-anonymity risk then one l-diversity result per sensitive column.
/// Tables must already be aligned and the roles validated.
pub(crate) fn anonymity(
    train: &Table,
    holdout: &Table,
    synthetic: &Table,
    roles: &Roles,
    config: &GateConfig,
) -> Result<Vec<(OperatorResult, Allowance)>, GateError> {
    let qis = &roles.quasi_identifiers;
    if qis.is_empty() {
        return Ok(Vec::new());
    }
    let classes = equivalence_classes(train, &[synthetic, holdout], qis)?;
    let (s_class, h_class) = (&classes.queries[0], &classes.queries[1]);
    let k = config.k_anonymity_k;
    let small = |c: &Option<usize>| c.is_some_and(|c| classes.sizes[c] < k);
    let (s_hits, s_share) = share(s_class.iter().filter(|c| small(c)).count(), s_class.len());
    let (h_hits, h_share) = share(h_class.iter().filter(|c| small(c)).count(), h_class.len());
    let limit = h_share + config.k_anonymity_margin;
    let noise = share_permutation(
        (s_class.len(), s_class.len(), s_hits),
        (h_class.len(), h_class.len(), h_hits),
        0x006b_616e_6f6e,
    );
    let small_classes = classes.sizes.iter().filter(|&&n| n < k).count();
    let mut out = vec![(
        result(
            operator::K_ANONYMITY_RISK,
            qis.clone(),
            s_share,
            limit,
            Some(h_share),
            s_share <= limit,
            format!(
                "{s_hits} of {} synthetic records ({:.2}%) match a training class smaller than k = \
                 {k} on the quasi-identifiers (each points at fewer than {k} real people; \
                 {small_classes} of {} training classes are that small); {} of {} holdout \
                 records ({}) do; effect limit: holdout share + margin {:.2}%",
                s_class.len(),
                100.0 * s_share,
                classes.sizes.len(),
                cells::count(h_hits, config.small_cell_min),
                h_class.len(),
                cells::share(h_hits, h_class.len(), config.small_cell_min, 2),
                100.0 * config.k_anonymity_margin,
            ),
        ),
        noise,
    )];

    for sensitive in roles.sensitive.iter().filter(|c| !qis.contains(c)) {
        // Classes on QIs + the sensitive column: each is one distinct value
        // within its QI class.
        let mut with_value = qis.clone();
        with_value.push(sensitive.clone());
        let fine = equivalence_classes(train, &[], &with_value)?;
        let mut distinct = vec![0usize; classes.sizes.len()];
        let mut seen = vec![false; fine.sizes.len()];
        for (&coarse, &f) in classes.reference.iter().zip(&fine.reference) {
            if !std::mem::replace(&mut seen[f], true) {
                distinct[coarse] += 1;
            }
        }
        let l = config.l_diversity_min;
        let below = |c: &Option<usize>| c.is_some_and(|c| distinct[c] < l);
        let matched = |cs: &[Option<usize>]| cs.iter().filter(|c| c.is_some()).count();
        let (s_matched, h_matched) = (matched(s_class), matched(h_class));
        let (s_below, s_share) = share(s_class.iter().filter(|c| below(c)).count(), s_matched);
        let (h_below, h_share) = share(h_class.iter().filter(|c| below(c)).count(), h_matched);
        let limit = h_share + config.l_diversity_margin;
        let noise = share_permutation(
            (s_class.len(), s_matched, s_below),
            (h_class.len(), h_matched, h_below),
            0x6c64_6976,
        );
        out.push((
            result(
                operator::L_DIVERSITY,
                vec![sensitive.clone()],
                s_share,
                limit,
                Some(h_share),
                s_share <= limit,
                format!(
                    "{s_below} of {s_matched} synthetic records matched to a training class \
                     ({:.2}%) fall in a class with fewer than {l} distinct `{sensitive}` values; \
                     {} of {} matched holdout records ({}) do; effect limit: holdout share + \
                     margin {:.2}%",
                    100.0 * s_share,
                    cells::count(h_below, config.small_cell_min),
                    cells::count(h_matched, config.small_cell_min),
                    cells::share(h_below, h_matched, config.small_cell_min, 2),
                    100.0 * config.l_diversity_margin,
                ),
            ),
            noise,
        ));
    }
    Ok(out)
}

/// `(hits, hits / n)`, with 0 for an empty denominator.
fn share(hits: usize, n: usize) -> (usize, f64) {
    (hits, if n == 0 { 0.0 } else { hits as f64 / n as f64 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::calibration::calibrate_split;
    use crate::table::Column;

    fn table(age: &[f64], zip: &[&str], dx: &[Option<&str>]) -> Table {
        let zip: Vec<Option<&str>> = zip.iter().map(|z| Some(*z)).collect();
        Table::new(vec![
            Column::numeric("age", age.to_vec()),
            Column::categorical("zip3", &zip),
            Column::categorical("dx", dx),
        ])
    }

    fn roles() -> Roles {
        Roles {
            quasi_identifiers: vec!["age".into(), "zip3".into()],
            sensitive: vec!["dx".into()],
            ..Roles::default()
        }
    }

    /// Each row of `t` repeated `times` times.
    fn repeat(t: &Table, times: usize) -> Table {
        let rows: Vec<usize> = (0..t.n_rows()).flat_map(|r| vec![r; times]).collect();
        t.take(&rows)
    }

    #[test]
    fn hand_built_shares() {
        // Training classes on (age, zip3):
        //   A = (30, 100) × 3 rows, dx {flu, flu, cold} → 2 distinct
        //   B = (40, 100) × 2 rows, dx {flu, flu}       → 1 distinct
        //   C = (50, 200) × 1 row,  dx {None}           → 1 distinct
        let r = table(
            &[30.0, 30.0, 30.0, 40.0, 40.0, 50.0],
            &["100", "100", "100", "100", "100", "200"],
            &[
                Some("flu"),
                Some("flu"),
                Some("cold"),
                Some("flu"),
                Some("flu"),
                None,
            ],
        );
        // Synthetic: A, B, B, C, unmatched (60, 100), each × 100 → with
        // k = 3, classes B (2 rows) and C (1 row) are small: 300 of 500 = 0.6.
        let s = repeat(
            &table(
                &[30.0, 40.0, 40.0, 50.0, 60.0],
                &["100", "100", "100", "200", "100"],
                &[Some("x"); 5],
            ),
            100,
        );
        // Holdout: A, A, C, unmatched, each × 100 → 100 of 400 = 0.25.
        let h = repeat(
            &table(
                &[30.0, 30.0, 50.0, 70.0],
                &["100", "100", "200", "300"],
                &[Some("x"); 4],
            ),
            100,
        );
        let config = GateConfig {
            k_anonymity_k: 3,
            ..GateConfig::default()
        };
        let out = anonymity(&r, &h, &s, &roles(), &config).unwrap();
        assert_eq!(out.len(), 2);
        let (k, noise) = &out[0];
        assert_eq!(k.operator, operator::K_ANONYMITY_RISK);
        assert!((k.statistic - 0.6).abs() < 1e-12, "{k:?}");
        assert_eq!(k.noise_floor, Some(0.25));
        assert!((k.effect_limit - 0.26).abs() < 1e-12);
        // Relabelling 500 synthetic and 400 holdout records with 400 hits:
        // the share difference has sd √(p(1−p)(1/500 + 1/400))·√(899/900)
        // ≈ 0.0333 at p = 4/9, so its 97.5 % point is ≈ 0.065 above the
        // holdout's 0.25.
        let a = noise.at(0.025).unwrap();
        assert!((a - (0.25 + 1.96 * 0.0333)).abs() < 0.01, "{a}");
        // l = 2: matched synthetic A, B, B, C → B, B, C below → 300/400;
        // matched holdout A, A, C → C below → 100/300.
        let (l, _) = &out[1];
        assert_eq!(l.operator, operator::L_DIVERSITY);
        assert_eq!(l.columns, vec!["dx".to_string()]);
        assert!((l.statistic - 0.75).abs() < 1e-12, "{l:?}");
        assert!((l.noise_floor.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        // Two kinds share α = 0.05: 2.5 % each.
        let out = calibrate_split(out, 0.05);
        assert!((out[0].threshold - a).abs() < 1e-12);
        assert!(!out[0].passed && !out[1].passed);
        // A synthetic batch that only lands in the large, diverse class A
        // passes both.
        let s = table(&[30.0; 4], &["100"; 4], &[Some("x"); 4]);
        let out = calibrate_split(anonymity(&r, &h, &s, &roles(), &config).unwrap(), 0.05);
        assert!(
            out.iter().all(|r| r.passed && r.statistic == 0.0),
            "{out:?}"
        );
    }

    #[test]
    fn no_quasi_identifiers_no_result_and_degenerate_columns_are_finite() {
        let r = table(&[f64::NAN; 3], &["1"; 3], &[None; 3]);
        let out = anonymity(&r, &r, &r, &Roles::default(), &GateConfig::default()).unwrap();
        assert!(out.is_empty());
        // All-null QI and sensitive columns: one class of 3 rows (< 5), every
        // record in it on both sides → equal shares → pass.
        let out = calibrate_split(
            anonymity(&r, &r, &r, &roles(), &GateConfig::default()).unwrap(),
            0.05,
        );
        assert_eq!(out.len(), 2);
        assert!(
            out.iter().all(|x| x.passed && x.statistic == 1.0),
            "{out:?}"
        );
        // A sensitive column that is also a QI is not an l-diversity target.
        let mut both = roles();
        both.sensitive = vec!["zip3".into()];
        assert_eq!(
            anonymity(&r, &r, &r, &both, &GateConfig::default())
                .unwrap()
                .len(),
            1
        );
    }
}
