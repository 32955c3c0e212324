//! k-anonymity risk and distinct l-diversity on the declared
//! quasi-identifiers, measured where the risk is: at the synthetic records.
//!
//! A synthetic batch is not itself "k-anonymous" or not (its records are no
//! one), but a synthetic record whose quasi-identifiers equal those of a
//! small training equivalence class points at the few real people in it.
//! Some of that happens by chance to any record of the population, so the
//! yardstick is the holdout: the share of synthetic records that land in a
//! training class smaller than k may exceed the share of holdout records
//! that do only by `k_anonymity_margin` plus a one-sided 95 % sampling
//! allowance for the difference of two shares (as the DCR threshold has its
//! binomial margin; it shrinks to a few thousandths at 50 000 records).
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

use super::config::GateConfig;
use super::report::{OperatorResult, operator};
use super::roles::Roles;
use super::{GateError, result};
use crate::stats::equivalence_classes;
use crate::table::Table;

/// z of a one-sided 95 % bound.
const ONE_SIDED_Z95: f64 = 1.645;

/// k-anonymity risk then one l-diversity result per sensitive column.
/// Tables must already be aligned and the roles validated.
pub(crate) fn anonymity(
    train: &Table,
    holdout: &Table,
    synthetic: &Table,
    roles: &Roles,
    config: &GateConfig,
) -> Result<Vec<OperatorResult>, GateError> {
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
    let threshold = h_share
        + config.k_anonymity_margin
        + allowance(s_hits, s_class.len(), h_hits, h_class.len());
    let small_classes = classes.sizes.iter().filter(|&&n| n < k).count();
    let mut out = vec![result(
        operator::K_ANONYMITY_RISK,
        qis.clone(),
        s_share,
        threshold,
        Some(h_share),
        s_share <= threshold,
        format!(
            "{s_hits} of {} synthetic records ({:.2}%) match a training class smaller than k = {k} \
             on the quasi-identifiers (each points at fewer than {k} real people; {small_classes} \
             of {} training classes are that small); {h_hits} of {} holdout records ({:.2}%) do; \
             allowed {:.2}% (holdout share + margin + sampling allowance)",
            s_class.len(),
            100.0 * s_share,
            classes.sizes.len(),
            h_class.len(),
            100.0 * h_share,
            100.0 * threshold,
        ),
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
        let threshold =
            h_share + config.l_diversity_margin + allowance(s_below, s_matched, h_below, h_matched);
        out.push(result(
            operator::L_DIVERSITY,
            vec![sensitive.clone()],
            s_share,
            threshold,
            Some(h_share),
            s_share <= threshold,
            format!(
                "{s_below} of {s_matched} synthetic records matched to a training class ({:.2}%) \
                 fall in a class with fewer than {l} distinct `{sensitive}` values; {h_below} of \
                 {h_matched} matched holdout records ({:.2}%) do; allowed {:.2}%",
                100.0 * s_share,
                100.0 * h_share,
                100.0 * threshold,
            ),
        ));
    }
    Ok(out)
}

/// One-sided 95 % allowance for the difference of two shares drawn from
/// the same population: 1.645 · √(p(1 − p)(1/n₁ + 1/n₂)) with p pooled.
/// Without it a generator that is exactly as risky as fresh real data
/// would fail about half the time at small sizes; at 50 000 records and a
/// share of 0.15 it is 0.004. 0 when either side is empty.
pub(super) fn allowance(hits_a: usize, n_a: usize, hits_b: usize, n_b: usize) -> f64 {
    if n_a == 0 || n_b == 0 {
        return 0.0;
    }
    let p = (hits_a + hits_b) as f64 / (n_a + n_b) as f64;
    ONE_SIDED_Z95 * (p * (1.0 - p) * (1.0 / n_a as f64 + 1.0 / n_b as f64)).sqrt()
}

/// `(hits, hits / n)`, with 0 for an empty denominator.
fn share(hits: usize, n: usize) -> (usize, f64) {
    (hits, if n == 0 { 0.0 } else { hits as f64 / n as f64 })
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let k = &out[0];
        assert_eq!(k.operator, operator::K_ANONYMITY_RISK);
        assert!((k.statistic - 0.6).abs() < 1e-12, "{k:?}");
        assert_eq!(k.noise_floor, Some(0.25));
        // Pooled p = 400/900; allowance 1.645·√(p(1−p)(1/500 + 1/400))
        // = 1.645 · 0.033333 = 0.054833; threshold 0.25 + 0.01 + 0.054833.
        assert!((k.threshold - 0.314_833_3).abs() < 1e-6, "{k:?}");
        assert!(!k.passed);
        // l = 2: matched synthetic A, B, B, C → B, B, C below → 300/400;
        // matched holdout A, A, C → C below → 100/300. Pooled p = 400/700;
        // allowance 1.645·√(p(1−p)(1/400 + 1/300)) = 0.062172.
        let l = &out[1];
        assert_eq!(l.operator, operator::L_DIVERSITY);
        assert_eq!(l.columns, vec!["dx".to_string()]);
        assert!((l.statistic - 0.75).abs() < 1e-12, "{l:?}");
        assert!((l.noise_floor.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert!(
            (l.threshold - (1.0 / 3.0 + 0.01 + 0.062_172)).abs() < 1e-5,
            "{l:?}"
        );
        assert!(!l.passed);
        // A synthetic batch that only lands in the large, diverse class A
        // passes both.
        let s = table(&[30.0; 4], &["100"; 4], &[Some("x"); 4]);
        let out = anonymity(&r, &h, &s, &roles(), &config).unwrap();
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
        let out = anonymity(&r, &r, &r, &roles(), &GateConfig::default()).unwrap();
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
