//! Cohorts for conditional sampling: "sex = F and diagnosis = E11.9 and age
//! 40–65".
//!
//! Downstream teams rarely want the whole population again; they want more of
//! one cohort (a rare diagnosis, one age band) than a proportional draw gives.
//! Filtering an unconditional sample (rejection) wastes draws in proportion to
//! the cohort's rarity and returns nothing for a cohort of 0.1 %. Each
//! generator therefore conditions its own model: the copula samples its latent
//! normal vector inside the cohort's box (truncated normals, exact for one
//! condition, Gibbs sweeps for several) and the rest from the conditional
//! normal; a stratified copula picks the cohort's stratum; PrivBayes clamps the
//! evidence and reweights (likelihood weighting, then resampling).
//!
//! A cohort names each column at most once. What a condition means depends on
//! the column: a label for a categorical column, an inclusive range (or one
//! value) for a numeric column, or null for either.

use crate::table::{ColumnValues, Table};

/// What one column must hold in the sampled cohort.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// A categorical column equals this label.
    Label(String),
    /// The column is missing.
    Null,
    /// A numeric column lies in `[lo, hi]` (both included; `lo == hi` is one value).
    Between { lo: f64, hi: f64 },
}

/// Conditions that every sampled row meets, at most one per column.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cohort {
    pub conditions: Vec<(String, Condition)>,
}

/// Why a cohort cannot be sampled. Each names the column and what was expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CohortError {
    #[error("cohort `{spec}`: {reason}")]
    Syntax { spec: String, reason: String },
    #[error("cohort: column `{column}` is conditioned more than once")]
    Duplicate { column: String },
    #[error("cohort: column `{column}` is not a column of the model")]
    UnknownColumn { column: String },
    #[error("cohort: column `{column}` is {actual}, so {expected}")]
    WrongKind {
        column: String,
        actual: &'static str,
        expected: &'static str,
    },
    #[error(
        "cohort: column `{column}` has no category {label:?} in the model (it was never seen in training, so it cannot be generated)"
    )]
    UnknownLabel { column: String, label: String },
    #[error("cohort: column `{column}` range [{lo}, {hi}] misses the model's range [{min}, {max}]")]
    OutsideRange {
        column: String,
        lo: f64,
        hi: f64,
        min: f64,
        max: f64,
    },
    #[error("cohort: column `{column}` range [{lo}, {hi}] is empty or not finite")]
    BadRange { column: String, lo: f64, hi: f64 },
    #[error("cohort: column `{column}` is never null in the model")]
    NeverNull { column: String },
    #[error("cohort: the model gives this cohort probability zero ({reason})")]
    Impossible { reason: String },
}

impl CohortError {
    /// A range asked of a categorical column.
    pub(super) fn range_on_categorical(column: &str) -> Self {
        CohortError::WrongKind {
            column: column.to_string(),
            actual: "categorical",
            expected: "it takes a label, not a range",
        }
    }

    /// A label asked of a numeric column.
    pub(super) fn label_on_numeric(column: &str) -> Self {
        CohortError::WrongKind {
            column: column.to_string(),
            actual: "numeric",
            expected: "it takes a number or a range lo..hi, not a label",
        }
    }
}

impl Cohort {
    /// Parses `column=value` specs against the training table's column kinds:
    /// for a categorical column `value` is a label; for a numeric one it is a
    /// number or an inclusive range `lo..hi`. `column=` (nothing after `=`)
    /// asks for nulls.
    pub fn parse(specs: &[String], kinds: &Table) -> Result<Cohort, CohortError> {
        let mut cohort = Cohort::default();
        for spec in specs {
            let syntax = |reason: &str| CohortError::Syntax {
                spec: spec.clone(),
                reason: reason.to_string(),
            };
            let (column, value) = spec
                .split_once('=')
                .ok_or_else(|| syntax("expected column=value"))?;
            let column = column.trim();
            if column.is_empty() {
                return Err(syntax("the column name is empty"));
            }
            let kind = kinds
                .column(column)
                .ok_or_else(|| CohortError::UnknownColumn {
                    column: column.to_string(),
                })?;
            let condition = if value.is_empty() {
                Condition::Null
            } else {
                match &kind.values {
                    ColumnValues::Categorical { .. } => Condition::Label(value.to_string()),
                    ColumnValues::Numeric(_) => parse_range(value).ok_or_else(|| {
                        syntax("a numeric column takes a number or an inclusive range lo..hi")
                    })?,
                }
            };
            cohort.push(column, condition)?;
        }
        Ok(cohort)
    }

    /// Adds a condition; a column may appear once.
    pub fn push(&mut self, column: &str, condition: Condition) -> Result<(), CohortError> {
        if self.conditions.iter().any(|(c, _)| c == column) {
            return Err(CohortError::Duplicate {
                column: column.to_string(),
            });
        }
        self.conditions.push((column.to_string(), condition));
        Ok(())
    }

    /// The condition on `column`, if any.
    pub fn get(&self, column: &str) -> Option<&Condition> {
        self.conditions
            .iter()
            .find(|(c, _)| c == column)
            .map(|(_, condition)| condition)
    }

    /// Whether `row` of `table` belongs to the cohort; columns the table lacks
    /// do not match. Used to check samples and to filter real data in tests.
    pub fn matches(&self, table: &Table, row: usize) -> bool {
        self.conditions.iter().all(|(name, condition)| {
            let Some(column) = table.column(name) else {
                return false;
            };
            match (condition, &column.values) {
                (Condition::Null, _) => column.values.is_null(row),
                (Condition::Label(l), ColumnValues::Categorical { .. }) => {
                    column.label(row) == Some(l.as_str())
                }
                (Condition::Between { lo, hi }, ColumnValues::Numeric(v)) => {
                    v[row] >= *lo && v[row] <= *hi
                }
                _ => false,
            }
        })
    }
}

impl Condition {
    /// Checks a numeric range; returns it as `(lo, hi)`.
    pub(super) fn checked_range(&self, column: &str) -> Result<Option<(f64, f64)>, CohortError> {
        match *self {
            Condition::Between { lo, hi } => {
                if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                    return Err(CohortError::BadRange {
                        column: column.to_string(),
                        lo,
                        hi,
                    });
                }
                Ok(Some((lo, hi)))
            }
            _ => Ok(None),
        }
    }
}

/// `57`, `40..65`, `-1.5..2`.
fn parse_range(value: &str) -> Option<Condition> {
    let parse = |s: &str| s.trim().parse::<f64>().ok().filter(|x| x.is_finite());
    match value.split_once("..") {
        Some((lo, hi)) => Some(Condition::Between {
            lo: parse(lo)?,
            hi: parse(hi)?,
        }),
        None => {
            let x = parse(value)?;
            Some(Condition::Between { lo: x, hi: x })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Column;

    fn kinds() -> Table {
        Table::new(vec![
            Column::numeric("age", vec![40.0, 50.0]),
            Column::categorical("sex", &[Some("F"), Some("M")]),
        ])
    }

    #[test]
    fn specs_parse_by_column_kind() {
        let specs: Vec<String> = ["sex=F", "age=40..65"].map(String::from).to_vec();
        let cohort = Cohort::parse(&specs, &kinds()).unwrap();
        assert_eq!(cohort.get("sex"), Some(&Condition::Label("F".into())));
        assert_eq!(
            cohort.get("age"),
            Some(&Condition::Between { lo: 40.0, hi: 65.0 })
        );
        let one = Cohort::parse(&["age=57".into()], &kinds()).unwrap();
        assert_eq!(
            one.get("age"),
            Some(&Condition::Between { lo: 57.0, hi: 57.0 })
        );
        let null = Cohort::parse(&["sex=".into()], &kinds()).unwrap();
        assert_eq!(null.get("sex"), Some(&Condition::Null));
    }

    #[test]
    fn bad_specs_name_the_problem() {
        let err = |s: &str| Cohort::parse(&[s.to_string()], &kinds()).unwrap_err();
        assert!(matches!(err("sex"), CohortError::Syntax { .. }));
        assert!(matches!(err("age=old"), CohortError::Syntax { .. }));
        assert!(matches!(err("age=1..x"), CohortError::Syntax { .. }));
        assert!(matches!(err("=F"), CohortError::Syntax { .. }));
        assert_eq!(
            err("postcode=021"),
            CohortError::UnknownColumn {
                column: "postcode".into()
            }
        );
        let twice = Cohort::parse(&["sex=F".into(), "sex=M".into()], &kinds()).unwrap_err();
        assert_eq!(
            twice,
            CohortError::Duplicate {
                column: "sex".into()
            }
        );
        let reversed = Condition::Between { lo: 5.0, hi: 1.0 };
        assert!(matches!(
            reversed.checked_range("age"),
            Err(CohortError::BadRange { .. })
        ));
    }

    #[test]
    fn matches_checks_every_condition() {
        let t = kinds();
        let cohort = Cohort::parse(&["sex=M".into(), "age=45..55".into()], &t).unwrap();
        assert!(!cohort.matches(&t, 0));
        assert!(cohort.matches(&t, 1));
    }
}
