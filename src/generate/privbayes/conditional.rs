//! Conditional sampling for PrivBayes: likelihood weighting, then resampling.
//!
//! Ancestral sampling cannot simply fix an evidence node: its ancestors must
//! be drawn as they are *given* the evidence. Likelihood weighting draws every
//! other node as usual, sets each evidence node to an allowed bucket (chosen in
//! proportion to its conditional probability) and weights the row by the
//! probability its parents gave the evidence. Resampling the weighted rows
//! gives draws from the network's exact conditional as the number of proposals
//! grows; unlike rejection it never discards a row and works for rare cohorts.
//! It is post-processing of the DP model, so it spends no budget.

use rand::Rng;
use rand::rngs::StdRng;

use super::{
    ColumnDomain, NumericDomain, PrivBayesModel, Stream, decode, locate, output_dictionary,
    round_to, stream_rng,
};
use crate::generate::cohort::{Cohort, CohortError, Condition};
use crate::table::{Column, ColumnValues, Table};

/// Proposals per requested row; the resampled rows repeat a proposal only
/// when the cohort is concentrated on few of them.
const PROPOSALS_PER_ROW: usize = 8;
const MIN_PROPOSALS: usize = 4_096;
const MAX_PROPOSALS: usize = 4_000_000;

/// What an evidence node may take: buckets with the share of each bucket's
/// values that meet the condition, and the numeric range to draw values in.
#[derive(Debug, Clone)]
struct Evidence {
    buckets: Vec<(u16, f64)>,
    range: Option<(f64, f64)>,
}

impl PrivBayesModel {
    /// Draws `n` rows of the cohort by likelihood weighting and systematic
    /// resampling (module docs). Deterministic per seed.
    pub fn sample_cohort(
        &self,
        n: usize,
        seed: u64,
        cohort: &Cohort,
    ) -> Result<Table, CohortError> {
        let evidence = self.resolve(cohort)?;
        if evidence.iter().all(Option::is_none) || n == 0 {
            return Ok(self.sample(n, seed));
        }
        let plan = &self.plan;
        let d = plan.sizes.len();
        let m = (n * PROPOSALS_PER_ROW).clamp(MIN_PROPOSALS, MAX_PROPOSALS);
        let mut rng = stream_rng(seed, Stream::Conditional, 0);
        let mut codes = vec![0u16; m * d];
        let mut weights = vec![0.0f64; m];
        let mut scratch = Vec::new();
        for (row, weight) in codes.chunks_mut(d).zip(weights.iter_mut()) {
            let mut w = 1.0;
            for node in &plan.nodes {
                let cdf = node.cdf_given(row, &plan.sizes);
                let u: f64 = rng.random();
                match &evidence[node.column] {
                    None => row[node.column] = locate(cdf, u) as u16,
                    Some(e) => {
                        scratch.clear();
                        let mut total = 0.0;
                        for &(b, share) in &e.buckets {
                            let b = b as usize;
                            let p = cdf[b] - if b == 0 { 0.0 } else { cdf[b - 1] };
                            total += p.max(0.0) * share;
                            scratch.push(total);
                        }
                        w *= total;
                        if total <= 0.0 {
                            break;
                        }
                        let pick = scratch.partition_point(|&c| c <= u * total);
                        row[node.column] = e.buckets[pick.min(e.buckets.len() - 1)].0;
                    }
                }
            }
            *weight = w;
        }
        let chosen =
            systematic_resample(&weights, n, &mut rng).ok_or_else(|| CohortError::Impossible {
                reason: "every proposal had weight zero under the network".into(),
            })?;
        let columns = self
            .spec
            .columns
            .iter()
            .enumerate()
            .map(|(j, name)| {
                let picked: Vec<u16> = chosen.iter().map(|&r| codes[r * d + j]).collect();
                let mut values = match (&plan.domains[j], &evidence[j]) {
                    (ColumnDomain::Numeric(dom), Some(Evidence { range: Some(r), .. })) => {
                        ColumnValues::Numeric(
                            picked
                                .iter()
                                .map(|&b| value_in_range(b, dom, *r, &mut rng))
                                .collect(),
                        )
                    }
                    (domain, _) => decode(&picked, domain, &mut rng),
                };
                if let (
                    ColumnValues::Categorical { dictionary, .. },
                    ColumnDomain::Categorical(c),
                ) = (&mut values, &plan.domains[j])
                {
                    *dictionary = output_dictionary(c);
                }
                Column {
                    name: name.clone(),
                    values,
                }
            })
            .collect();
        Ok(Table::new(columns))
    }

    /// Per output column, the evidence on it, if any.
    fn resolve(&self, cohort: &Cohort) -> Result<Vec<Option<Evidence>>, CohortError> {
        let mut evidence = vec![None; self.spec.columns.len()];
        for (name, condition) in &cohort.conditions {
            let j = self
                .spec
                .columns
                .iter()
                .position(|c| c == name)
                .ok_or_else(|| CohortError::UnknownColumn {
                    column: name.clone(),
                })?;
            let e = match (&self.plan.domains[j], condition) {
                (ColumnDomain::Categorical(c), Condition::Label(label)) => {
                    let bucket = if *label == c.other_label {
                        c.categories.len()
                    } else {
                        c.categories
                            .iter()
                            .position(|x| x == label)
                            .ok_or_else(|| CohortError::UnknownLabel {
                                column: name.clone(),
                                label: label.clone(),
                            })?
                    };
                    Evidence {
                        buckets: vec![(bucket as u16, 1.0)],
                        range: None,
                    }
                }
                (ColumnDomain::Categorical(c), Condition::Null) => Evidence {
                    buckets: vec![((c.categories.len() + 1) as u16, 1.0)],
                    range: None,
                },
                (ColumnDomain::Numeric(dom), Condition::Null) => Evidence {
                    buckets: vec![(dom.bins as u16, 1.0)],
                    range: None,
                },
                (ColumnDomain::Numeric(dom), range @ Condition::Between { .. }) => {
                    let (lo, hi) = range.checked_range(name)?.expect("a range");
                    numeric_evidence(name, dom, lo, hi)?
                }
                (ColumnDomain::Categorical(_), Condition::Between { .. }) => {
                    return Err(CohortError::range_on_categorical(name));
                }
                (ColumnDomain::Numeric(_), Condition::Label(_)) => {
                    return Err(CohortError::label_on_numeric(name));
                }
            };
            evidence[j] = Some(e);
        }
        Ok(evidence)
    }
}

/// Bins overlapping `[lo, hi]` with the share of each bin inside it (values are
/// uniform within a bin); a single value takes its bin whole.
fn numeric_evidence(
    name: &str,
    dom: &NumericDomain,
    lo: f64,
    hi: f64,
) -> Result<Evidence, CohortError> {
    if hi < dom.min || lo > dom.max {
        return Err(CohortError::OutsideRange {
            column: name.to_string(),
            lo,
            hi,
            min: dom.min,
            max: dom.max,
        });
    }
    let (lo, hi) = (lo.max(dom.min), hi.min(dom.max));
    let width = (dom.max - dom.min) / dom.bins as f64;
    let buckets = (0..dom.bins)
        .filter_map(|b| {
            let (bl, bh) = (dom.min + b as f64 * width, dom.min + (b + 1) as f64 * width);
            let share = if lo == hi {
                let last = b == dom.bins - 1;
                ((bl..bh).contains(&lo) || (last && lo == bh)).then_some(1.0)?
            } else {
                let overlap = bh.min(hi) - bl.max(lo);
                (overlap > 0.0).then_some(overlap / width)?
            };
            Some((b as u16, share))
        })
        .collect();
    Ok(Evidence {
        buckets,
        range: Some((lo, hi)),
    })
}

/// A value of bin `b` inside `[lo, hi]`: uniform over the overlap, on the
/// declared decimal grid when there is one.
fn value_in_range(b: u16, dom: &NumericDomain, (lo, hi): (f64, f64), rng: &mut StdRng) -> f64 {
    if b as usize >= dom.bins {
        return f64::NAN;
    }
    let width = (dom.max - dom.min) / dom.bins as f64;
    let bl = (dom.min + b as f64 * width).max(lo);
    let bh = (dom.min + (b as f64 + 1.0) * width).min(hi);
    let x = bl + rng.random::<f64>() * (bh - bl).max(0.0);
    let x = match dom.decimals {
        Some(p) => round_to(x, p),
        None => x,
    };
    x.clamp(lo, hi)
}

/// Systematic resampling: `n` indices with frequencies proportional to the
/// weights and lower variance than independent draws. `None` if all weights are 0.
fn systematic_resample(weights: &[f64], n: usize, rng: &mut StdRng) -> Option<Vec<usize>> {
    let total: f64 = weights.iter().sum();
    if total.is_nan() || total <= 0.0 {
        return None;
    }
    let step = total / n as f64;
    let mut position = rng.random::<f64>() * step;
    let mut out = Vec::with_capacity(n);
    let mut acc = 0.0;
    for (i, &w) in weights.iter().enumerate() {
        acc += w;
        while out.len() < n && position < acc {
            out.push(i);
            position += step;
        }
    }
    while out.len() < n {
        out.push(weights.len() - 1);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::privbayes::{CategoricalDomain, PrivBayesConfig, fit};
    use rand::SeedableRng;
    use std::collections::BTreeMap;

    /// sex → dx → lab: conditioning on the child (dx) must change the parent
    /// (sex) by Bayes' rule, which forward sampling with a fixed value misses.
    fn model() -> (Table, PrivBayesModel) {
        let mut rng = StdRng::seed_from_u64(3);
        let n = 20_000;
        let (mut sex, mut dx, mut lab) = (vec![], vec![], vec![]);
        for _ in 0..n {
            let f = rng.random::<f64>() < 0.5;
            let p_e11 = if f { 0.1 } else { 0.4 };
            let e11 = rng.random::<f64>() < p_e11;
            sex.push(Some(if f { "F" } else { "M" }));
            dx.push(Some(if e11 { "E11" } else { "Z00" }));
            lab.push(if e11 { 7.5 } else { 5.2 } + rng.random::<f64>());
        }
        let t = Table::new(vec![
            Column::categorical("sex", &sex),
            Column::categorical("dx", &dx),
            Column::numeric("lab", lab),
        ]);
        let cat = |c: &[&str]| {
            ColumnDomain::Categorical(CategoricalDomain {
                categories: c.iter().map(|s| s.to_string()).collect(),
                other_label: "OTHER".into(),
            })
        };
        let domain = BTreeMap::from([
            ("sex".to_string(), cat(&["F", "M"])),
            ("dx".to_string(), cat(&["E11", "Z00", "I10"])),
            (
                "lab".to_string(),
                ColumnDomain::Numeric(NumericDomain {
                    min: 4.0,
                    max: 10.0,
                    bins: 12,
                    decimals: Some(1),
                }),
            ),
        ]);
        // A huge ε: the network is the empirical one, so Bayes' rule is checkable.
        let model = fit(&t, &PrivBayesConfig::new(1e6, domain), 1).unwrap();
        (t, model)
    }

    fn share(t: &Table, column: &str, label: &str) -> f64 {
        let c = t.column(column).unwrap();
        (0..t.n_rows())
            .filter(|&r| c.label(r) == Some(label))
            .count() as f64
            / t.n_rows() as f64
    }

    #[test]
    fn evidence_on_a_child_updates_its_parents_by_bayes_rule() {
        let (_, model) = model();
        let cohort = Cohort {
            conditions: vec![("dx".into(), Condition::Label("E11".into()))],
        };
        let s = model.sample_cohort(20_000, 4, &cohort).unwrap();
        assert!((0..s.n_rows()).all(|r| cohort.matches(&s, r)));
        // P(F | E11) = 0.5·0.1 / (0.5·0.1 + 0.5·0.4) = 0.2
        let f = share(&s, "sex", "F");
        assert!((f - 0.2).abs() < 0.03, "P(F | E11) = {f}");
        // Lab given E11 sits in [7.5, 8.5].
        let ColumnValues::Numeric(lab) = &s.column("lab").unwrap().values else {
            panic!()
        };
        let mean = lab.iter().sum::<f64>() / lab.len() as f64;
        assert!((mean - 8.0).abs() < 0.15, "{mean}");
    }

    #[test]
    fn ranges_nulls_and_errors() {
        let (_, model) = model();
        let cohort = Cohort {
            conditions: vec![("lab".into(), Condition::Between { lo: 7.6, hi: 8.2 })],
        };
        let s = model.sample_cohort(2_000, 1, &cohort).unwrap();
        assert!((0..s.n_rows()).all(|r| cohort.matches(&s, r)));
        assert!(share(&s, "dx", "E11") > 0.9);
        let err = |c: Condition, col: &str| {
            model
                .sample_cohort(
                    10,
                    1,
                    &Cohort {
                        conditions: vec![(col.into(), c)],
                    },
                )
                .unwrap_err()
        };
        assert!(matches!(
            err(Condition::Label("J45".into()), "dx"),
            CohortError::UnknownLabel { .. }
        ));
        assert!(matches!(
            err(Condition::Between { lo: 20.0, hi: 30.0 }, "lab"),
            CohortError::OutsideRange { .. }
        ));
        assert!(matches!(
            err(Condition::Between { lo: 1.0, hi: 2.0 }, "sex"),
            CohortError::WrongKind { .. }
        ));
        let a = model.sample_cohort(100, 9, &cohort).unwrap();
        let b = model.sample_cohort(100, 9, &cohort).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn systematic_resampling_follows_the_weights() {
        let mut rng = StdRng::seed_from_u64(1);
        let picks = systematic_resample(&[1.0, 0.0, 3.0], 4_000, &mut rng).unwrap();
        let third = picks.iter().filter(|&&i| i == 2).count();
        assert_eq!(picks.iter().filter(|&&i| i == 1).count(), 0);
        assert!((third as i64 - 3_000).abs() <= 1, "{third}");
        assert!(systematic_resample(&[0.0, 0.0], 3, &mut rng).is_none());
    }
}
