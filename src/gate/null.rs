//! The fidelity family's null distribution: what every fidelity statistic
//! looks like when the synthetic rows are exchangeable with the training
//! rows, as fresh real rows of the population are.
//!
//! This is the two-sample permutation test, run on the whole family at
//! once: each replicate pools R ∪ S, splits the pool at random into a
//! pseudo-training set R* of |R| rows and a pseudo-batch S* of |S| rows, and
//! scores S* against R* with the very operators the batch is scored with,
//! R*'s own bins, scales and strata included. Row counts, category counts,
//! ties, missing values, skew and the dependence between columns are all
//! those of the data, so no formula has to guess them; when S is fresh real
//! data the observed split is just one of the random ones, which makes the
//! test exact (up to the replicates' own noise). The calibration then takes
//! each result's allowance from the family's maximum (max-T).
//!
//! Pooling R ∪ H instead (so the null would not depend on the batch) was
//! measured and rejected: the observed statistic is then not one of the
//! splits, the pool's own sampling noise moves every allowance together, and
//! at the per-result levels a family of eight binary columns needs (0.25 %),
//! fresh batches failed 4.4 % of the time instead of 2 % (R ∪ S: 2.2–2.5 %).
//!
//! Cost: one fidelity pass per replicate. Above [`NULL_MAX_ROWS`] rows a
//! side, replicates draw that many rows a side from the pool (without
//! replacement) and the allowances are scaled by
//! √((1/|S| + 1/|R|)/(1/|S*| + 1/|R*|)), the rate at which every fidelity
//! distance's noise shrinks once cells are populated; with sparse cells the
//! noise shrinks more slowly, so the scaled allowance is the lower end.
//! Replicates are seeded by their index, so the result does not depend on
//! thread scheduling.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};

use super::config::GateConfig;
use super::input::{self, ColumnTriple};
use super::parallel::parallel_map;
use super::report::OperatorResult;
use super::roles::Roles;
use super::{GateError, conditional, contingency, fidelity, subgroups};
use crate::table::{Column, ColumnValues, NULL_CODE, Table};

/// Rows a side beyond which replicates are drawn smaller and scaled.
pub(crate) const NULL_MAX_ROWS: usize = 10_000;

/// Separates the null's random stream from the other operators'.
const SEED_SALT: u64 = 0x6e75_6c6c_5f72_6570;

/// Every gated fidelity result of one table triple, keyed so that the same
/// result can be found in a null replicate.
pub(crate) fn keyed_results(
    columns: &[ColumnTriple<'_>],
    roles: &Roles,
    config: &GateConfig,
) -> (Vec<(OperatorResult, String)>, Vec<OperatorResult>) {
    let key = |r: &OperatorResult| format!("{}[{}]", r.operator, r.columns.join(","));
    let mut gated: Vec<(OperatorResult, String)> = fidelity::fidelity(columns, config)
        .into_iter()
        .map(|r| {
            let k = key(&r);
            (r, k)
        })
        .collect();
    let (pairs, mut reported) = contingency::contingency(columns, config);
    gated.extend(pairs.into_iter().map(|r| {
        let k = key(&r);
        (r, k)
    }));
    gated.extend(
        subgroups::subgroup_shares(columns, roles, config)
            .into_iter()
            .map(|r| {
                let k = key(&r);
                (r, k)
            }),
    );
    let (strata, mut skipped) = conditional::conditionals(columns, &roles.conditionals, config);
    gated.extend(strata);
    reported.append(&mut skipped);
    (gated, reported)
}

/// The statistic of each key in each of `replicates` null replicates (NaN
/// where a replicate lacks it), and the factor that scales allowances from
/// the replicates' sizes to the batch's.
pub(crate) struct FidelityNull {
    pub values: Vec<Vec<f64>>,
    pub scale: f64,
    pub rows: (usize, usize),
}

pub(crate) fn fidelity_null(
    train: &Table,
    synthetic: &Table,
    keys: &[String],
    roles: &Roles,
    config: &GateConfig,
    seed: u64,
) -> Result<FidelityNull, GateError> {
    let pool = concat(train, synthetic);
    let n_pool = pool.n_rows();
    let (n_r, n_s) = (train.n_rows(), synthetic.n_rows());
    let (m_r, m_s) = (n_r.min(NULL_MAX_ROWS), n_s.min(NULL_MAX_ROWS));
    let scale = if (m_r, m_s) == (n_r, n_s) {
        1.0
    } else {
        let v = |a: usize, b: usize| 1.0 / a.max(1) as f64 + 1.0 / b.max(1) as f64;
        (v(n_r, n_s) / v(m_r, m_s)).sqrt()
    };
    // Every pair and every stratum is scored in a replicate, so a result
    // gated on the real training data is found even where the replicate's
    // training side would not have gated it.
    let replicate_config = GateConfig {
        correlation_min_real: 0.0,
        conditional_min_rows: 1,
        ..config.clone()
    };
    let index: HashMap<&str, usize> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let replicates: Vec<u64> = (0..config.null_replicates as u64).collect();
    let per_replicate: Vec<Result<Vec<f64>, GateError>> = parallel_map(&replicates, |&b| {
        let mut rng = StdRng::seed_from_u64(
            seed ^ SEED_SALT ^ (b.wrapping_add(1)).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        let (rows_r, rows_s) = split(&mut rng, n_pool, m_r, m_s);
        let r_star = pool.take(&rows_r);
        let s_star = pool.take(&rows_s);
        // The floor is not needed in a replicate: a one-row holdout keeps
        // its cost out of the way.
        let h_star = r_star.take(&[0]);
        let columns = input::align(&r_star, &h_star, &s_star)?;
        let (results, _) = keyed_results(&columns, roles, &replicate_config);
        let mut out = vec![f64::NAN; keys.len()];
        for (r, k) in results {
            if let Some(&i) = index.get(k.as_str()) {
                out[i] = r.statistic;
            }
        }
        Ok(out)
    });
    let mut values = vec![Vec::with_capacity(replicates.len()); keys.len()];
    for replicate in per_replicate {
        for (i, v) in replicate?.into_iter().enumerate() {
            values[i].push(v);
        }
    }
    Ok(FidelityNull {
        values,
        scale,
        rows: (m_r, m_s),
    })
}

/// Row indices of a pseudo-training and a pseudo-synthetic sample of the
/// pool: disjoint draws without replacement (the pool always holds both;
/// with replacement only as a fallback).
fn split(rng: &mut StdRng, pool: usize, n_r: usize, n_s: usize) -> (Vec<usize>, Vec<usize>) {
    if pool == 0 {
        return (Vec::new(), Vec::new());
    }
    if n_r + n_s <= pool {
        let picked = sample(rng, pool, n_r + n_s).into_vec();
        let (a, b) = picked.split_at(n_r);
        (a.to_vec(), b.to_vec())
    } else {
        let mut draw = |n: usize| (0..n).map(|_| rng.random_range(0..pool)).collect();
        (draw(n_r), draw(n_s))
    }
}

/// Rows of `a` then rows of `b` (same column names and kinds, as checked by
/// `input::align`), categorical labels coded on one dictionary.
pub(crate) fn concat(a: &Table, b: &Table) -> Table {
    let columns = a
        .columns
        .iter()
        .map(|ca| {
            let cb = b.column(&ca.name);
            let values = match (&ca.values, cb.map(|c| &c.values)) {
                (ColumnValues::Numeric(x), Some(ColumnValues::Numeric(y))) => {
                    ColumnValues::Numeric(x.iter().chain(y).copied().collect())
                }
                (
                    ColumnValues::Categorical { codes, dictionary },
                    Some(ColumnValues::Categorical {
                        codes: codes_b,
                        dictionary: dict_b,
                    }),
                ) => {
                    let mut dictionary = dictionary.clone();
                    let mut slot: HashMap<String, u32> = dictionary
                        .iter()
                        .enumerate()
                        .map(|(i, l)| (l.clone(), i as u32))
                        .collect();
                    let remap: Vec<u32> = dict_b
                        .iter()
                        .map(|l| {
                            *slot.entry(l.clone()).or_insert_with(|| {
                                dictionary.push(l.clone());
                                dictionary.len() as u32 - 1
                            })
                        })
                        .collect();
                    let codes = codes
                        .iter()
                        .copied()
                        .chain(codes_b.iter().map(|&c| {
                            if c == NULL_CODE {
                                NULL_CODE
                            } else {
                                remap.get(c as usize).copied().unwrap_or(NULL_CODE)
                            }
                        }))
                        .collect();
                    ColumnValues::Categorical { codes, dictionary }
                }
                // Kinds are checked before this runs; keep `a` alone.
                (values, _) => values.clone(),
            };
            Column {
                name: ca.name.clone(),
                values,
            }
        })
        .collect();
    Table::new(columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_codes_labels_on_one_dictionary() {
        let a = Table::new(vec![
            Column::numeric("x", vec![1.0, 2.0]),
            Column::categorical("c", &[Some("a"), None]),
        ]);
        let b = Table::new(vec![
            Column::categorical("c", &[Some("b"), Some("a")]),
            Column::numeric("x", vec![3.0, f64::NAN]),
        ]);
        let t = concat(&a, &b);
        assert_eq!(t.n_rows(), 4);
        let c = t.column("c").unwrap();
        let labels: Vec<Option<&str>> = (0..4).map(|i| c.label(i)).collect();
        assert_eq!(labels, vec![Some("a"), None, Some("b"), Some("a")]);
        match &t.column("x").unwrap().values {
            ColumnValues::Numeric(v) => assert_eq!(&v[..3], &[1.0, 2.0, 3.0]),
            _ => panic!("numeric"),
        }
    }

    #[test]
    fn split_is_disjoint_when_the_pool_allows() {
        let mut rng = StdRng::seed_from_u64(1);
        let (r, s) = split(&mut rng, 100, 50, 50);
        let mut all: Vec<usize> = r.iter().chain(&s).copied().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 100);
        let (r, s) = split(&mut rng, 10, 50, 50);
        assert_eq!((r.len(), s.len()), (50, 50));
        assert!(r.iter().chain(&s).all(|&i| i < 10));
    }
}
