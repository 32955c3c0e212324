//! A Gaussian copula per stratum of one declared categorical column.
//!
//! One copula has a single normal score per categorical column, so it cannot
//! carry a distribution that changes shape with a category — HbA1c given a
//! diabetes diagnosis is bimodal across diagnoses and the gate's conditional
//! and utility operators reject a single copula for it. Fitting one copula
//! per stratum (e.g. per diagnosis) keeps every conditional of that column
//! exactly; strata with too few rows to fit on their own share one pooled
//! copula, which still keeps their frequencies. Stratum weights are the
//! training shares, so the sampled mix matches the training mix.

use rand::SeedableRng;
use rand::distr::{Distribution, weighted::WeightedIndex};
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::cohort::{Cohort, CohortError, Condition};
use super::copula::{self, CopulaConfig, CopulaError, CopulaModel};
use crate::table::{Column, ColumnValues, NULL_CODE, Table};

/// One stratum's copula and its share of the training rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stratum {
    /// Labels of the stratifying column this model covers (one, or several when pooled).
    pub labels: Vec<Option<String>>,
    pub weight: f64,
    pub model: CopulaModel,
}

/// Copulas per stratum of `column`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StratifiedCopula {
    pub column: String,
    pub columns: Vec<String>,
    pub strata: Vec<Stratum>,
}

/// Why a stratified fit failed.
#[derive(Debug, thiserror::Error)]
pub enum StratifiedError {
    #[error("model.stratify_by: {0:?} is not a categorical column of the training table")]
    NotCategorical(String),
    #[error("stratum {stratum}: {source}")]
    Copula {
        stratum: String,
        source: CopulaError,
    },
}

/// Fits one copula per label of `column` with at least `min_rows` rows, and
/// one pooled copula for the remaining rows.
pub fn fit(
    train: &Table,
    column: &str,
    min_rows: usize,
    config: &CopulaConfig,
    seed: u64,
) -> Result<StratifiedCopula, StratifiedError> {
    let Some(Column {
        values: ColumnValues::Categorical { codes, dictionary },
        ..
    }) = train.column(column)
    else {
        return Err(StratifiedError::NotCategorical(column.to_string()));
    };
    let mut rows_by_code: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
    for (row, &code) in codes.iter().enumerate() {
        rows_by_code.entry(code).or_default().push(row);
    }
    let label = |code: u32| (code != NULL_CODE).then(|| dictionary[code as usize].clone());
    let total = train.n_rows().max(1) as f64;
    // Labels below `min_rows` share one pooled stratum; if the pool itself is
    // too small to fit (a copula of one or two patients would copy them), it
    // is folded into the largest stratum, whose copula then carries those
    // labels at their training frequency.
    let mut big: Vec<(Vec<Option<String>>, Vec<usize>)> = Vec::new();
    let mut pooled: (Vec<Option<String>>, Vec<usize>) = (Vec::new(), Vec::new());
    for (code, rows) in &rows_by_code {
        if rows.len() >= min_rows.max(2) {
            big.push((vec![label(*code)], rows.clone()));
        } else {
            pooled.0.push(label(*code));
            pooled.1.extend_from_slice(rows);
        }
    }
    if !pooled.1.is_empty() {
        if pooled.1.len() >= min_rows.max(2) || big.is_empty() {
            big.push(pooled);
        } else if let Some(largest) = big.iter_mut().max_by_key(|(_, rows)| rows.len()) {
            largest.0.extend(pooled.0);
            largest.1.extend(pooled.1);
        }
    }
    let mut strata = Vec::with_capacity(big.len());
    for (i, (labels, mut rows)) in big.into_iter().enumerate() {
        rows.sort_unstable();
        let part = train.take(&rows);
        let model = copula::fit(&part, config, seed.wrapping_add(i as u64)).map_err(|source| {
            StratifiedError::Copula {
                stratum: format!("{labels:?}"),
                source,
            }
        })?;
        strata.push(Stratum {
            labels,
            weight: rows.len() as f64 / total,
            model,
        });
    }
    Ok(StratifiedCopula {
        column: column.to_string(),
        columns: train.columns.iter().map(|c| c.name.clone()).collect(),
        strata,
    })
}

impl StratifiedCopula {
    /// Draws stratum sizes from the training mix, samples each stratum's
    /// copula, and concatenates (categories re-coded by label).
    pub fn sample(&self, n: usize, seed: u64) -> Table {
        let mut counts = vec![0usize; self.strata.len()];
        if let Ok(dist) = WeightedIndex::new(self.strata.iter().map(|s| s.weight)) {
            let mut rng = StdRng::seed_from_u64(seed);
            for _ in 0..n {
                counts[dist.sample(&mut rng)] += 1;
            }
        }
        let parts: Vec<Table> = self
            .strata
            .iter()
            .zip(&counts)
            .enumerate()
            .filter(|(_, (_, c))| **c > 0)
            .map(|(i, (s, &c))| s.model.sample(c, seed.wrapping_add(1 + i as u64)))
            .collect();
        concat(&self.columns, &parts)
    }

    /// Draws `n` rows of a cohort. A condition on the stratifying column picks
    /// its stratum; otherwise each stratum's share is its training weight times
    /// the cohort's probability under its copula, so the mix is the model's
    /// conditional mix.
    pub fn sample_cohort(
        &self,
        n: usize,
        seed: u64,
        cohort: &Cohort,
    ) -> Result<Table, CohortError> {
        if let Some(condition) = cohort.get(&self.column) {
            let wanted = match condition {
                Condition::Label(l) => Some(l.clone()),
                Condition::Null => None,
                Condition::Between { .. } => {
                    return Err(CohortError::range_on_categorical(&self.column));
                }
            };
            let stratum = self
                .strata
                .iter()
                .find(|s| s.labels.contains(&wanted))
                .ok_or_else(|| match &wanted {
                    Some(label) => CohortError::UnknownLabel {
                        column: self.column.clone(),
                        label: label.clone(),
                    },
                    None => CohortError::NeverNull {
                        column: self.column.clone(),
                    },
                })?;
            return stratum.model.sample_cohort(n, seed, cohort);
        }
        let mut weights = Vec::with_capacity(self.strata.len());
        let mut first_error = None;
        for (i, s) in self.strata.iter().enumerate() {
            match s
                .model
                .cohort_probability(cohort, seed.wrapping_add(i as u64))
            {
                Ok(p) => weights.push(s.weight * p),
                Err(e) => {
                    // A label this stratum never saw: the stratum cannot hold the cohort.
                    weights.push(0.0);
                    first_error.get_or_insert(e);
                }
            }
        }
        let Ok(dist) = WeightedIndex::new(&weights) else {
            return Err(first_error.unwrap_or(CohortError::Impossible {
                reason: format!("no stratum of `{}` can hold it", self.column),
            }));
        };
        let mut counts = vec![0usize; self.strata.len()];
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..n {
            counts[dist.sample(&mut rng)] += 1;
        }
        let mut parts = Vec::new();
        for (i, (s, &c)) in self.strata.iter().zip(&counts).enumerate() {
            if c > 0 {
                parts.push(
                    s.model
                        .sample_cohort(c, seed.wrapping_add(1 + i as u64), cohort)?,
                );
            }
        }
        Ok(concat(&self.columns, &parts))
    }

    /// sha256 over the strata's content hashes, weights and labels.
    pub fn content_sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.column.as_bytes());
        for s in &self.strata {
            h.update(serde_json::to_vec(&s.labels).unwrap_or_default());
            h.update(s.weight.to_le_bytes());
            h.update(s.model.content_sha256().as_bytes());
        }
        format!("{:x}", h.finalize())
    }
}

/// Concatenates tables with the same column names and kinds, merging
/// categorical dictionaries by label.
pub fn concat(columns: &[String], parts: &[Table]) -> Table {
    let mut out = Vec::with_capacity(columns.len());
    for name in columns {
        let pieces: Vec<&ColumnValues> = parts
            .iter()
            .filter_map(|t| t.column(name))
            .map(|c| &c.values)
            .collect();
        let numeric = pieces.iter().all(|v| matches!(v, ColumnValues::Numeric(_)));
        let values = if numeric {
            ColumnValues::Numeric(
                pieces
                    .iter()
                    .flat_map(|v| match v {
                        ColumnValues::Numeric(x) => x.clone(),
                        ColumnValues::Categorical { .. } => Vec::new(),
                    })
                    .collect(),
            )
        } else {
            let mut dictionary: Vec<String> = Vec::new();
            let mut index = std::collections::HashMap::<String, u32>::new();
            let mut codes = Vec::new();
            for v in &pieces {
                if let ColumnValues::Categorical {
                    codes: c,
                    dictionary: d,
                } = v
                {
                    let map: Vec<u32> = d
                        .iter()
                        .map(|label| {
                            *index.entry(label.clone()).or_insert_with(|| {
                                dictionary.push(label.clone());
                                (dictionary.len() - 1) as u32
                            })
                        })
                        .collect();
                    codes.extend(c.iter().map(|&x| {
                        if x == NULL_CODE {
                            NULL_CODE
                        } else {
                            map[x as usize]
                        }
                    }));
                }
            }
            ColumnValues::Categorical { codes, dictionary }
        };
        out.push(Column {
            name: name.clone(),
            values,
        });
    }
    Table::new(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use rand_distr::Normal;

    /// y is N(0,1) for group a and N(5,1) for group b: a single copula blurs
    /// the modes, per-stratum copulas keep each conditional.
    #[test]
    fn conditionals_survive_per_stratum() {
        let mut rng = StdRng::seed_from_u64(1);
        let n = 4000;
        let mut g = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            let b = rng.random::<f64>() < 0.3;
            g.push(Some(if b { "b" } else { "a" }));
            let mean = if b { 5.0 } else { 0.0 };
            y.push(Normal::new(mean, 1.0).unwrap().sample(&mut rng));
        }
        g[0] = Some("rare");
        let t = Table::new(vec![Column::categorical("g", &g), Column::numeric("y", y)]);
        let m = fit(&t, "g", 50, &CopulaConfig::default(), 3).unwrap();
        assert_eq!(
            m.strata.len(),
            2,
            "the one-row label is folded into the largest stratum"
        );
        assert!(m.strata.iter().any(|s| s.labels.len() == 2));
        let s = m.sample(n, 9);
        assert_eq!(s.n_rows(), n);
        let g = s.column("g").unwrap();
        let ColumnValues::Numeric(y) = &s.column("y").unwrap().values else {
            panic!()
        };
        let (mut sb, mut nb, mut sa, mut na) = (0.0, 0.0, 0.0, 0.0);
        for (r, &v) in y.iter().enumerate() {
            match g.label(r) {
                Some("b") => {
                    sb += v;
                    nb += 1.0
                }
                Some("a") => {
                    sa += v;
                    na += 1.0
                }
                _ => {}
            }
        }
        assert!((sb / nb - 5.0).abs() < 0.15, "mean y | b = {}", sb / nb);
        assert!((sa / na).abs() < 0.15, "mean y | a = {}", sa / na);
        assert!((nb / n as f64 - 0.3).abs() < 0.03);
        assert_eq!(m.content_sha256(), m.clone().content_sha256());
    }

    #[test]
    fn numeric_stratifier_is_rejected() {
        let t = Table::new(vec![Column::numeric("x", vec![1.0, 2.0])]);
        assert!(matches!(
            fit(&t, "x", 1, &CopulaConfig::default(), 0),
            Err(StratifiedError::NotCategorical(_))
        ));
    }
}
