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
