//! Exact-match detection: which rows of one table reappear verbatim in another.
//!
//! A synthetic record identical to a training record in every column is the
//! plainest privacy leak, and the gate weighs it against how often holdout
//! records coincide with training records by chance. Rows are hashed over
//! canonical per-column keys (numeric bit patterns, categorical labels
//! interned across both tables) and every hash hit is confirmed column by
//! column, so collisions never produce a false match.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use super::{StatsError, check_codes, kind_name};
use crate::table::{ColumnValues, NULL_CODE, Table};

/// Key of a missing value (equal to other missing values).
const MISSING: u64 = u64::MAX;
/// Key of a query label the reference never uses (matches nothing).
const UNSEEN: u64 = u64::MAX - 1;

/// For each row of `queries`, whether some row of `reference` has equal
/// values in every column of `reference` (matched by name).
///
/// Numeric values compare by value (`0.0 == -0.0`), every non-finite
/// value is treated as missing, missing equals missing; categories compare
/// by label.
///
/// # Errors
/// [`StatsError::MissingColumn`], [`StatsError::KindMismatch`],
/// [`StatsError::RaggedColumn`], [`StatsError::InvalidCode`].
pub fn exact_match_flags(queries: &Table, reference: &Table) -> Result<Vec<bool>, StatsError> {
    let mut ref_keys = Vec::with_capacity(reference.columns.len());
    let mut query_keys = Vec::with_capacity(reference.columns.len());
    for column in &reference.columns {
        let query = queries
            .column(&column.name)
            .ok_or_else(|| StatsError::MissingColumn {
                column: column.name.clone(),
            })?;
        if std::mem::discriminant(&column.values) != std::mem::discriminant(&query.values) {
            return Err(StatsError::KindMismatch {
                column: column.name.clone(),
                expected: kind_name(&column.values),
                found: kind_name(&query.values),
            });
        }
        for (table, c) in [(reference, column), (queries, query)] {
            check_codes(c)?;
            if c.values.len() != table.n_rows() {
                return Err(StatsError::RaggedColumn {
                    column: c.name.clone(),
                    expected: table.n_rows(),
                    found: c.values.len(),
                });
            }
        }
        let mut interned: HashMap<&str, u64> = HashMap::new();
        ref_keys.push(keys(&column.values, |label| {
            let next = interned.len() as u64;
            *interned.entry(label).or_insert(next)
        }));
        query_keys.push(keys(&query.values, |label| {
            interned.get(label).copied().unwrap_or(UNSEEN)
        }));
    }

    let row_hash = |cols: &[Vec<u64>], row: usize| {
        let mut h = DefaultHasher::new();
        for col in cols {
            col[row].hash(&mut h);
        }
        h.finish()
    };
    let mut buckets: HashMap<u64, Vec<usize>> = HashMap::with_capacity(reference.n_rows());
    for row in 0..reference.n_rows() {
        buckets
            .entry(row_hash(&ref_keys, row))
            .or_default()
            .push(row);
    }
    Ok((0..queries.n_rows())
        .map(|q| {
            buckets.get(&row_hash(&query_keys, q)).is_some_and(|rows| {
                rows.iter().any(|&r| {
                    ref_keys
                        .iter()
                        .zip(&query_keys)
                        .all(|(rc, qc)| rc[r] == qc[q])
                })
            })
        })
        .collect())
}

/// Rows grouped by equal values over a set of columns (equivalence classes,
/// as k-anonymity defines them).
#[derive(Debug, Clone, PartialEq)]
pub struct EquivalenceClasses {
    /// Class of each reference row, numbered in order of first appearance.
    pub reference: Vec<usize>,
    /// Rows of the reference in each class.
    pub sizes: Vec<usize>,
    /// For each query table, the reference class of each row, or `None`
    /// when no reference row has its values.
    pub queries: Vec<Vec<Option<usize>>>,
}

/// Groups the rows of `reference` by their values in `columns` and finds
/// the class of every row of each table in `queries`. Values compare as in
/// [`exact_match_flags`]: numbers by value (every non-finite value is
/// missing), missing equals missing, categories by label. Numeric columns
/// are used as exact values, so they should be coarse (age in years, zip3).
///
/// # Errors
/// [`StatsError::MissingColumn`] when a table lacks one of `columns`, and
/// the other schema errors of [`exact_match_flags`].
pub fn equivalence_classes(
    reference: &Table,
    queries: &[&Table],
    columns: &[String],
) -> Result<EquivalenceClasses, StatsError> {
    let pick = |table: &Table| -> Result<Table, StatsError> {
        columns
            .iter()
            .map(|name| {
                table
                    .column(name)
                    .cloned()
                    .ok_or_else(|| StatsError::MissingColumn {
                        column: name.clone(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Table::new)
    };
    let n_reference = reference.n_rows();
    let reference = pick(reference)?;
    let mut ref_keys = Vec::with_capacity(columns.len());
    let mut query_keys: Vec<Vec<Vec<u64>>> = vec![Vec::new(); queries.len()];
    let picked: Vec<Table> = queries.iter().map(|q| pick(q)).collect::<Result<_, _>>()?;
    for column in &reference.columns {
        check_codes(column)?;
        if column.values.len() != n_reference {
            return Err(StatsError::RaggedColumn {
                column: column.name.clone(),
                expected: n_reference,
                found: column.values.len(),
            });
        }
        let mut interned: HashMap<&str, u64> = HashMap::new();
        ref_keys.push(keys(&column.values, |label| {
            let next = interned.len() as u64;
            *interned.entry(label).or_insert(next)
        }));
        for ((original, table), out) in queries.iter().zip(&picked).zip(&mut query_keys) {
            let query = table
                .column(&column.name)
                .ok_or_else(|| StatsError::MissingColumn {
                    column: column.name.clone(),
                })?;
            if std::mem::discriminant(&column.values) != std::mem::discriminant(&query.values) {
                return Err(StatsError::KindMismatch {
                    column: column.name.clone(),
                    expected: kind_name(&column.values),
                    found: kind_name(&query.values),
                });
            }
            check_codes(query)?;
            if query.values.len() != original.n_rows() {
                return Err(StatsError::RaggedColumn {
                    column: query.name.clone(),
                    expected: original.n_rows(),
                    found: query.values.len(),
                });
            }
            out.push(keys(&query.values, |label| {
                interned.get(label).copied().unwrap_or(UNSEEN)
            }));
        }
    }
    let tuple =
        |cols: &[Vec<u64>], row: usize| -> Vec<u64> { cols.iter().map(|c| c[row]).collect() };
    let mut class_of: HashMap<Vec<u64>, usize> = HashMap::with_capacity(n_reference);
    let mut sizes = Vec::new();
    let reference_classes = (0..n_reference)
        .map(|row| {
            let next = class_of.len();
            let class = *class_of.entry(tuple(&ref_keys, row)).or_insert(next);
            if class == sizes.len() {
                sizes.push(0);
            }
            sizes[class] += 1;
            class
        })
        .collect();
    let queries = queries
        .iter()
        .zip(&query_keys)
        .map(|(table, cols)| {
            (0..table.n_rows())
                .map(|row| class_of.get(&tuple(cols, row)).copied())
                .collect()
        })
        .collect();
    Ok(EquivalenceClasses {
        reference: reference_classes,
        sizes,
        queries,
    })
}

/// Canonical per-row keys of one column; `label_key` maps a label to its key.
fn keys<'a>(values: &'a ColumnValues, mut label_key: impl FnMut(&'a str) -> u64) -> Vec<u64> {
    match values {
        ColumnValues::Numeric(v) => v
            .iter()
            .map(|&x| match x {
                x if !x.is_finite() => MISSING,
                0.0 => 0,
                x => x.to_bits(),
            })
            .collect(),
        ColumnValues::Categorical { codes, dictionary } => {
            let by_code: Vec<u64> = dictionary.iter().map(|l| label_key(l)).collect();
            codes
                .iter()
                .map(|&c| {
                    if c == NULL_CODE {
                        MISSING
                    } else {
                        by_code[c as usize]
                    }
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Column;

    #[test]
    fn finds_rows_equal_in_every_column() {
        let r = Table::new(vec![
            Column::numeric("x", vec![1.0, 2.0, f64::NAN, 0.0]),
            Column::categorical("c", &[Some("a"), Some("b"), None, Some("a")]),
        ]);
        // Query dictionary in a different order; extra column ignored.
        let q = Table::new(vec![
            Column::categorical("c", &[Some("b"), Some("a"), None, Some("a"), Some("z")]),
            Column::numeric("x", vec![2.0, 2.0, f64::NAN, -0.0, 1.0]),
            Column::numeric("extra", vec![9.0; 5]),
        ]);
        // (2,b) yes; (2,a) no; (null,null) yes; (-0,a) yes; (1,z) no.
        assert_eq!(
            exact_match_flags(&q, &r).unwrap(),
            vec![true, false, true, true, false]
        );
    }

    #[test]
    fn equivalence_classes_by_label_and_value() {
        let r = Table::new(vec![
            Column::numeric("age", vec![30.0, 30.0, 40.0, f64::NAN, 30.0]),
            Column::categorical("sex", &[Some("F"), Some("F"), Some("M"), None, Some("M")]),
            Column::numeric("other", vec![1.0, 2.0, 3.0, 4.0, 5.0]),
        ]);
        // Different dictionary order; a label R never uses; -0/0; NaN.
        let q = Table::new(vec![
            Column::categorical("sex", &[Some("M"), Some("F"), None, Some("X")]),
            Column::numeric("age", vec![40.0, 30.0, f64::INFINITY, 30.0]),
        ]);
        let cols = vec!["age".to_string(), "sex".to_string()];
        let c = equivalence_classes(&r, &[&q], &cols).unwrap();
        assert_eq!(c.reference, vec![0, 0, 1, 2, 3]);
        assert_eq!(c.sizes, vec![2, 1, 1, 1]);
        assert_eq!(c.queries, vec![vec![Some(1), Some(0), Some(2), None]]);
        let missing = vec!["zip".to_string()];
        assert!(matches!(
            equivalence_classes(&r, &[&q], &missing),
            Err(StatsError::MissingColumn { .. })
        ));
        // No columns: one class holding every row.
        let none = equivalence_classes(&r, &[&q], &[]).unwrap();
        assert_eq!(none.sizes, vec![5]);
    }

    #[test]
    fn reports_schema_problems() {
        let r = Table::new(vec![Column::numeric("x", vec![1.0])]);
        let q = Table::new(vec![Column::categorical("x", &[Some("1")])]);
        assert!(matches!(
            exact_match_flags(&q, &r),
            Err(StatsError::KindMismatch { .. })
        ));
        let q = Table::new(vec![Column::numeric("y", vec![1.0])]);
        assert!(matches!(
            exact_match_flags(&q, &r),
            Err(StatsError::MissingColumn { .. })
        ));
    }
}
