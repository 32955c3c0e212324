//! Gower distance between mixed-type records, in an encoding built for
//! nearest-neighbour search.
//!
//! The privacy gate asks how close each synthetic record is to the nearest
//! training and holdout record, over numeric and categorical columns at once.
//! Gower distance does that without any model: the mean over columns of a
//! per-column distance in [0, 1]. To make the brute-force search in
//! `neighbours.rs` cheap, tables are encoded once into column-major arrays:
//! numeric values pre-scaled by the reference range (f32), categories as
//! codes interned by label so independent dictionaries compare correctly.
//!
//! Per-column distance, as chosen here:
//! - numeric: `min(|a − b| / range, 1)` where `range = max − min` of the
//!   finite reference values; the cap keeps values outside the reference
//!   range (possible for holdout and synthetic rows) from weighing more than
//!   a categorical mismatch;
//! - numeric column whose reference range is zero or empty: 0 if equal, 1
//!   otherwise (there is no scale to measure a difference on);
//! - categorical: 0 if the labels are equal, 1 otherwise;
//! - missing vs missing = 0, missing vs value = 1. `±inf` counts as missing.

use std::collections::HashMap;

use super::{StatsError, check_codes, kind_name};
use crate::table::{ColumnValues, NULL_CODE, Table};

/// Encoded stand-in for a missing numeric value: far from every scaled value
/// (those are clamped to ±`SCALED_LIMIT`), and equal to itself.
pub(crate) const NUMERIC_NULL: f32 = f32::MAX;
const SCALED_LIMIT: f64 = 1e30;

/// How one reference column is measured.
#[derive(Debug, Clone)]
enum SpaceColumn {
    Scaled {
        name: String,
        min: f64,
        range: f64,
    },
    ExactNumeric {
        name: String,
        codes: HashMap<u64, u32>,
    },
    Categorical {
        name: String,
        codes: HashMap<String, u32>,
    },
}

/// The Gower metric fitted on a reference table: per-column ranges and the
/// label interners that align categorical codes across tables.
#[derive(Debug, Clone)]
pub struct GowerSpace {
    columns: Vec<SpaceColumn>,
}

/// Rows of one table encoded in a [`GowerSpace`], column-major.
#[derive(Debug, Clone, PartialEq)]
pub struct GowerRows {
    pub(crate) n_rows: usize,
    /// Scaled numeric columns; missing = `NUMERIC_NULL`.
    pub(crate) scaled: Vec<Vec<f32>>,
    /// Categorical and exact-match numeric columns; missing = `NULL_CODE`.
    pub(crate) codes: Vec<Vec<u32>>,
}

fn canonical_bits(x: f64) -> u64 {
    if x == 0.0 { 0 } else { x.to_bits() }
}

fn intern<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, key: K) -> u32 {
    let next = map.len() as u32;
    *map.entry(key).or_insert(next)
}

impl GowerSpace {
    /// Fits numeric ranges on the finite values of `reference`.
    ///
    /// # Errors
    /// [`StatsError::RaggedColumn`] or [`StatsError::InvalidCode`] for a
    /// malformed table.
    pub fn fit(reference: &Table) -> Result<Self, StatsError> {
        let n = reference.n_rows();
        let mut columns = Vec::with_capacity(reference.columns.len());
        for column in &reference.columns {
            if column.values.len() != n {
                return Err(StatsError::RaggedColumn {
                    column: column.name.clone(),
                    expected: n,
                    found: column.values.len(),
                });
            }
            check_codes(column)?;
            let name = column.name.clone();
            columns.push(match &column.values {
                ColumnValues::Numeric(v) => {
                    let (lo, hi) = v
                        .iter()
                        .filter(|x| x.is_finite())
                        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                            (lo.min(x), hi.max(x))
                        });
                    let range = hi - lo;
                    if range > 0.0 && range.is_finite() {
                        SpaceColumn::Scaled {
                            name,
                            min: lo,
                            range,
                        }
                    } else {
                        SpaceColumn::ExactNumeric {
                            name,
                            codes: HashMap::new(),
                        }
                    }
                }
                ColumnValues::Categorical { .. } => SpaceColumn::Categorical {
                    name,
                    codes: HashMap::new(),
                },
            });
        }
        Ok(GowerSpace { columns })
    }

    /// Number of columns the distance averages over.
    pub fn n_columns(&self) -> usize {
        self.columns.len()
    }

    /// Encodes `table`'s rows. Columns are found by name; columns the
    /// reference does not have are ignored. New labels extend the interners,
    /// so encode every table that will be compared with the same space.
    ///
    /// # Errors
    /// [`StatsError::MissingColumn`], [`StatsError::KindMismatch`],
    /// [`StatsError::RaggedColumn`], [`StatsError::InvalidCode`].
    pub fn encode(&mut self, table: &Table) -> Result<GowerRows, StatsError> {
        let n_rows = table.n_rows();
        let mut rows = GowerRows {
            n_rows,
            scaled: Vec::new(),
            codes: Vec::new(),
        };
        for space in &mut self.columns {
            let name = match space {
                SpaceColumn::Scaled { name, .. }
                | SpaceColumn::ExactNumeric { name, .. }
                | SpaceColumn::Categorical { name, .. } => name.as_str(),
            };
            let column = table
                .column(name)
                .ok_or_else(|| StatsError::MissingColumn {
                    column: name.to_string(),
                })?;
            if column.values.len() != n_rows {
                return Err(StatsError::RaggedColumn {
                    column: name.to_string(),
                    expected: n_rows,
                    found: column.values.len(),
                });
            }
            let expected = match space {
                SpaceColumn::Categorical { .. } => "categorical",
                _ => "numeric",
            };
            let mismatch = || StatsError::KindMismatch {
                column: column.name.clone(),
                expected,
                found: kind_name(&column.values),
            };
            match (space, &column.values) {
                (SpaceColumn::Scaled { min, range, .. }, ColumnValues::Numeric(v)) => {
                    rows.scaled.push(
                        v.iter()
                            .map(|&x| {
                                if x.is_finite() {
                                    ((x - *min) / *range).clamp(-SCALED_LIMIT, SCALED_LIMIT) as f32
                                } else {
                                    NUMERIC_NULL
                                }
                            })
                            .collect(),
                    );
                }
                (SpaceColumn::ExactNumeric { codes, .. }, ColumnValues::Numeric(v)) => {
                    rows.codes.push(
                        v.iter()
                            .map(|&x| {
                                if x.is_finite() {
                                    intern(codes, canonical_bits(x))
                                } else {
                                    NULL_CODE
                                }
                            })
                            .collect(),
                    );
                }
                (
                    SpaceColumn::Categorical { codes, .. },
                    ColumnValues::Categorical {
                        codes: raw,
                        dictionary,
                    },
                ) => {
                    check_codes(column)?;
                    let by_code: Vec<u32> = dictionary
                        .iter()
                        .map(|label| match codes.get(label) {
                            Some(&c) => c,
                            None => intern(codes, label.clone()),
                        })
                        .collect();
                    rows.codes.push(
                        raw.iter()
                            .map(|&c| {
                                if c == NULL_CODE {
                                    NULL_CODE
                                } else {
                                    by_code[c as usize]
                                }
                            })
                            .collect(),
                    );
                }
                _ => return Err(mismatch()),
            }
        }
        Ok(rows)
    }
}

impl GowerRows {
    /// Number of encoded rows.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of columns the distance averages over.
    pub fn n_columns(&self) -> usize {
        self.scaled.len() + self.codes.len()
    }

    pub(crate) fn same_layout(&self, other: &GowerRows) -> bool {
        self.scaled.len() == other.scaled.len() && self.codes.len() == other.codes.len()
    }

    /// Gower distance between row `i` of `self` and row `j` of `other`
    /// (both encoded in the same space). `None` if a row is out of range or
    /// the layouts differ; 0 for a space with no columns.
    pub fn distance(&self, i: usize, other: &GowerRows, j: usize) -> Option<f64> {
        if i >= self.n_rows || j >= other.n_rows || !self.same_layout(other) {
            return None;
        }
        let n = self.n_columns();
        if n == 0 {
            return Some(0.0);
        }
        let numeric: f32 = self
            .scaled
            .iter()
            .zip(&other.scaled)
            .map(|(a, b)| (a[i] - b[j]).abs().min(1.0))
            .sum();
        let categorical = self
            .codes
            .iter()
            .zip(&other.codes)
            .filter(|(a, b)| a[i] != b[j])
            .count();
        Some((numeric as f64 + categorical as f64) / n as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Column;

    fn reference() -> Table {
        Table::new(vec![
            Column::numeric("age", vec![20.0, 60.0, 40.0]),
            Column::categorical("sex", &[Some("F"), Some("M"), None]),
            Column::numeric("constant", vec![7.0, 7.0, 7.0]),
        ])
    }

    #[test]
    fn hand_computed_gower_distances() {
        let r = reference();
        let mut space = GowerSpace::fit(&r).unwrap();
        let rr = space.encode(&r).unwrap();
        // Query coded with its own dictionary order (M first) and extra columns.
        let q = Table::new(vec![
            Column::categorical("sex", &[Some("M"), Some("F"), None, Some("F")]),
            Column::numeric("ignored", vec![0.0; 4]),
            Column::numeric("age", vec![30.0, 20.0, f64::NAN, 500.0]),
            Column::numeric("constant", vec![7.0, 8.0, 7.0, 7.0]),
        ]);
        let qq = space.encode(&q).unwrap();
        assert_eq!(qq.n_columns(), 3);
        // q0 = (30, M, 7) vs r0 = (20, F, 7): (10/40 + 1 + 0) / 3
        assert!((qq.distance(0, &rr, 0).unwrap() - 1.25 / 3.0).abs() < 1e-7);
        // q0 vs r1 = (60, M, 7): (30/40 + 0 + 0) / 3
        assert!((qq.distance(0, &rr, 1).unwrap() - 0.25).abs() < 1e-7);
        // q1 = (20, F, 8) vs r0: constant column differs → (0 + 0 + 1) / 3
        assert!((qq.distance(1, &rr, 0).unwrap() - 1.0 / 3.0).abs() < 1e-7);
        // q2 = (null, null, 7) vs r2 = (40, null, 7): (1 + 0 + 0) / 3
        assert!((qq.distance(2, &rr, 2).unwrap() - 1.0 / 3.0).abs() < 1e-7);
        // q3 = (500, F, 7) vs r0: age capped at 1 → (1 + 0 + 0) / 3
        assert!((qq.distance(3, &rr, 0).unwrap() - 1.0 / 3.0).abs() < 1e-7);
        // A row against itself is 0, including its nulls.
        assert_eq!(rr.distance(2, &rr, 2), Some(0.0));
        assert!(qq.distance(9, &rr, 0).is_none());
    }

    #[test]
    fn encode_reports_schema_problems() {
        let mut space = GowerSpace::fit(&reference()).unwrap();
        let missing = Table::new(vec![Column::numeric("age", vec![1.0])]);
        assert!(matches!(
            space.encode(&missing),
            Err(StatsError::MissingColumn { column }) if column == "sex"
        ));
        let wrong_kind = Table::new(vec![
            Column::categorical("age", &[Some("old")]),
            Column::categorical("sex", &[Some("F")]),
            Column::numeric("constant", vec![7.0]),
        ]);
        assert!(matches!(
            space.encode(&wrong_kind),
            Err(StatsError::KindMismatch {
                expected: "numeric",
                found: "categorical",
                ..
            })
        ));
        let ragged = Table::new(vec![
            Column::numeric("age", vec![1.0, 2.0]),
            Column::categorical("sex", &[Some("F")]),
            Column::numeric("constant", vec![7.0, 7.0]),
        ]);
        assert!(matches!(
            space.encode(&ragged),
            Err(StatsError::RaggedColumn { .. })
        ));
    }
}
