//! Conditional sampling for the CART generator: a cohort drawn from the
//! model itself, not filtered from an unconditional sample.
//!
//! The model is a chain of conditionals in visit order, so a cohort is
//! sampled by likelihood weighting: each row walks the chain as usual, but at
//! a conditioned column it draws only from the values the cohort allows and
//! its weight is multiplied by the leaf's probability of that set. Rows are
//! then resampled by weight (systematic resampling), which gives the model's
//! exact conditional distribution as the number of candidates grows. A
//! condition on a looked-up column (a group determined by a code) becomes a
//! condition on its determinant (the codes of that group), so it is drawn
//! directly rather than found by chance.

use rand::Rng;

use super::structure::{Source, numeric_key};
use super::{CartModel, Kind, Synthesis, key_value, stream_rng};
use crate::generate::cohort::{Cohort, CohortError, Condition};
use crate::table::{NULL_CODE, Table};

/// Candidate rows drawn per requested row.
const CANDIDATES_PER_ROW: usize = 4;

/// What a column may take in the rows being drawn.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Allowed {
    Any,
    /// Only these value keys (sorted): category codes, with `NULL_CODE` for
    /// null; numeric values' order keys, with `u64::MAX` for null.
    Keys(Vec<u64>),
    /// A numeric value in `[lo, hi]`, never null.
    Range(f64, f64),
}

fn key_of(value: f64, kind: &Kind) -> u64 {
    match kind {
        Kind::Categorical { .. } => value as u32 as u64,
        Kind::Numeric { .. } => numeric_key(value),
    }
}

fn null_key(kind: &Kind) -> u64 {
    match kind {
        Kind::Categorical { .. } => u64::from(NULL_CODE),
        Kind::Numeric { .. } => u64::MAX,
    }
}

impl Allowed {
    /// Whether a sampled value (a code as f64 for categorical) is allowed.
    pub fn admits(&self, value: f64, kind: &Kind) -> bool {
        match self {
            Allowed::Any => true,
            Allowed::Keys(keys) => keys.binary_search(&key_of(value, kind)).is_ok(),
            Allowed::Range(lo, hi) => !value.is_nan() && value >= *lo && value <= *hi,
        }
    }

    pub fn admits_null(&self) -> bool {
        match self {
            Allowed::Any => true,
            Allowed::Keys(keys) => {
                keys.last() == Some(&u64::MAX) || keys.binary_search(&u64::from(NULL_CODE)).is_ok()
            }
            Allowed::Range(..) => false,
        }
    }

    /// `Some(true)`: must be null; `Some(false)`: must be present.
    pub fn must_be_null(&self) -> Option<bool> {
        match self {
            Allowed::Any => None,
            Allowed::Range(..) => Some(false),
            Allowed::Keys(keys) => {
                let nulls = keys
                    .iter()
                    .filter(|&&k| k == u64::MAX || k == u64::from(NULL_CODE))
                    .count();
                if nulls == keys.len() && nulls > 0 {
                    Some(true)
                } else if nulls == 0 {
                    Some(false)
                } else {
                    None
                }
            }
        }
    }

    pub fn range(&self) -> Option<(f64, f64)> {
        match *self {
            Allowed::Range(lo, hi) => Some((lo, hi)),
            _ => None,
        }
    }

    /// Both conditions at once.
    fn and(self, other: Allowed, kind: &Kind) -> Allowed {
        match (self, other) {
            (Allowed::Any, x) | (x, Allowed::Any) => x,
            (Allowed::Keys(a), Allowed::Keys(b)) => Allowed::Keys(
                a.into_iter()
                    .filter(|k| b.binary_search(k).is_ok())
                    .collect(),
            ),
            (Allowed::Range(a, b), Allowed::Range(c, d)) => {
                let (lo, hi) = (a.max(c), b.min(d));
                if lo <= hi {
                    Allowed::Range(lo, hi)
                } else {
                    Allowed::Keys(Vec::new())
                }
            }
            (Allowed::Keys(k), r @ Allowed::Range(..))
            | (r @ Allowed::Range(..), Allowed::Keys(k)) => Allowed::Keys(
                k.into_iter()
                    .filter(|&key| r.admits(key_value(key, kind), kind))
                    .collect(),
            ),
        }
    }
}

impl CartModel {
    /// Draws `n` rows of the cohort; every row meets every condition.
    /// Deterministic per seed. A label never seen in training, a range
    /// outside the training range or a cohort the model gives probability
    /// zero is an error that names the column.
    pub fn sample_cohort(
        &self,
        n: usize,
        seed: u64,
        cohort: &Cohort,
    ) -> Result<Table, CohortError> {
        let allowed = self.resolve(cohort)?;
        if allowed.iter().all(|a| *a == Allowed::Any) {
            return Ok(self.sample(n, seed));
        }
        if n == 0 {
            return Ok(self.sample(0, seed));
        }
        let m = (CANDIDATES_PER_ROW * n).max(256);
        let (values, weights) = self.draw(m, seed, &allowed);
        let total: f64 = weights.iter().sum();
        if total.is_nan() || total <= 0.0 {
            return Err(CohortError::Impossible {
                reason: format!("none of {m} candidate rows could meet every condition"),
            });
        }
        // Systematic resampling: n evenly spaced points on the cumulative weights.
        let mut rng = stream_rng(seed, 2, 0);
        let start: f64 = rng.random::<f64>() / n as f64;
        let mut chosen = Vec::with_capacity(n);
        let mut acc = 0.0;
        let mut i = 0;
        for k in 0..n {
            let target = (start + k as f64 / n as f64) * total;
            while i + 1 < m && acc + weights[i] <= target {
                acc += weights[i];
                i += 1;
            }
            chosen.push(i);
        }
        let picked: Vec<Vec<f64>> = values
            .iter()
            .map(|column| chosen.iter().map(|&r| column[r]).collect())
            .collect();
        Ok(self.to_table(picked, n))
    }

    /// Each column's allowed values, conditions on looked-up columns carried
    /// over to their determinants.
    fn resolve(&self, cohort: &Cohort) -> Result<Vec<Allowed>, CohortError> {
        let mut allowed = vec![Allowed::Any; self.columns.len()];
        for (name, condition) in &cohort.conditions {
            let c = self
                .columns
                .iter()
                .position(|col| &col.name == name)
                .ok_or_else(|| CohortError::UnknownColumn {
                    column: name.clone(),
                })?;
            let kind = &self.columns[c].kind;
            let a = match (condition, kind) {
                (
                    Condition::Label(label),
                    Kind::Categorical {
                        dictionary,
                        level_codes,
                        pool,
                        ..
                    },
                ) => {
                    let code = dictionary
                        .iter()
                        .position(|l| l == label)
                        .map(|i| i as u32)
                        .filter(|code| {
                            level_codes.contains(code) || pool.iter().any(|(p, _)| p == code)
                        })
                        .ok_or_else(|| CohortError::UnknownLabel {
                            column: name.clone(),
                            label: label.clone(),
                        })?;
                    Allowed::Keys(vec![u64::from(code)])
                }
                (Condition::Label(_), Kind::Numeric { .. }) => {
                    return Err(CohortError::label_on_numeric(name));
                }
                (Condition::Between { .. }, Kind::Categorical { .. }) => {
                    return Err(CohortError::range_on_categorical(name));
                }
                (
                    Condition::Between { .. },
                    Kind::Numeric {
                        min,
                        max,
                        null_rate,
                        ..
                    },
                ) => {
                    let (lo, hi) = condition.checked_range(name)?.expect("a range");
                    if *null_rate >= 1.0 || hi < *min || lo > *max {
                        return Err(CohortError::OutsideRange {
                            column: name.clone(),
                            lo,
                            hi,
                            min: *min,
                            max: *max,
                        });
                    }
                    Allowed::Range(lo, hi)
                }
                (Condition::Null, Kind::Categorical { null_level, .. }) => {
                    if null_level.is_none() {
                        return Err(CohortError::NeverNull {
                            column: name.clone(),
                        });
                    }
                    Allowed::Keys(vec![u64::from(NULL_CODE)])
                }
                (Condition::Null, Kind::Numeric { null_rate, .. }) => {
                    if *null_rate <= 0.0 {
                        return Err(CohortError::NeverNull {
                            column: name.clone(),
                        });
                    }
                    Allowed::Keys(vec![u64::MAX])
                }
            };
            allowed[c] = a;
        }
        // Carry conditions up through lookups, latest in the visit first so
        // chains (code → group → chapter) reach the first determinant.
        for &c in self.visit.iter().rev() {
            let Synthesis::Lookup(lookup) = &self.columns[c].synthesis else {
                continue;
            };
            if allowed[c] == Allowed::Any {
                continue;
            }
            let kind = &self.columns[c].kind;
            let keys: Vec<u64> = lookup
                .map
                .iter()
                .filter(|(_, v)| allowed[c].admits(key_value(*v, kind), kind))
                .map(|(k, _)| *k)
                .collect();
            let (a, source_allowed) = match lookup.source {
                Source::Value(a) => (a, Allowed::Keys(keys)),
                Source::IsNull(a) => {
                    let source_kind = &self.columns[a].kind;
                    let null = keys.contains(&1);
                    let present = keys.contains(&0);
                    let allow = match (null, present) {
                        (true, true) => Allowed::Any,
                        (true, false) => Allowed::Keys(vec![null_key(source_kind)]),
                        (false, true) => match source_kind {
                            Kind::Numeric { min, max, .. } => Allowed::Range(*min, *max),
                            Kind::Categorical { dictionary, .. } => {
                                Allowed::Keys((0..dictionary.len() as u64).collect())
                            }
                        },
                        (false, false) => Allowed::Keys(Vec::new()),
                    };
                    (a, allow)
                }
            };
            let source_kind = self.columns[a].kind.clone();
            let current = std::mem::replace(&mut allowed[a], Allowed::Any);
            allowed[a] = current.and(source_allowed, &source_kind);
            if allowed[a] == Allowed::Keys(Vec::new()) {
                return Err(CohortError::Impossible {
                    reason: format!(
                        "`{}` is determined by `{}`, and no value of it gives the cohort",
                        self.columns[c].name, self.columns[a].name
                    ),
                });
            }
        }
        Ok(allowed)
    }
}
