//! The columnar view the pure core (drift, generators, gates) works on.
//!
//! Stages exchange Arrow `RecordBatch`es; the statistical code needs typed,
//! contiguous columns with nulls made explicit and categories dictionary-coded
//! so that distances and contingency tables are integer work. `Table` is that
//! view. Conversion to and from Arrow lives in `crate::schema::arrow_table`.

/// Sentinel code for a missing categorical value.
pub const NULL_CODE: u32 = u32::MAX;

/// One column's values.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValues {
    /// Real-valued data; `f64::NAN` marks a missing value.
    Numeric(Vec<f64>),
    /// Dictionary-coded categories; `NULL_CODE` marks a missing value.
    Categorical {
        codes: Vec<u32>,
        dictionary: Vec<String>,
    },
}

/// A named column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: ColumnValues,
}

/// Rows × named columns, all columns of equal length.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub columns: Vec<Column>,
}

impl ColumnValues {
    pub fn len(&self) -> usize {
        match self {
            ColumnValues::Numeric(v) => v.len(),
            ColumnValues::Categorical { codes, .. } => codes.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_null(&self, row: usize) -> bool {
        match self {
            ColumnValues::Numeric(v) => v[row].is_nan(),
            ColumnValues::Categorical { codes, .. } => codes[row] == NULL_CODE,
        }
    }
}

impl Column {
    pub fn numeric(name: impl Into<String>, values: Vec<f64>) -> Self {
        Column {
            name: name.into(),
            values: ColumnValues::Numeric(values),
        }
    }

    /// Builds a categorical column from optional strings, coding categories in
    /// order of first appearance.
    pub fn categorical<S: AsRef<str>>(name: impl Into<String>, values: &[Option<S>]) -> Self {
        let mut dictionary: Vec<String> = Vec::new();
        let mut index = std::collections::HashMap::<String, u32>::new();
        let codes = values
            .iter()
            .map(|v| match v {
                None => NULL_CODE,
                Some(s) => {
                    let s = s.as_ref();
                    if let Some(&c) = index.get(s) {
                        c
                    } else {
                        let c = dictionary.len() as u32;
                        dictionary.push(s.to_string());
                        index.insert(s.to_string(), c);
                        c
                    }
                }
            })
            .collect();
        Column {
            name: name.into(),
            values: ColumnValues::Categorical { codes, dictionary },
        }
    }

    /// The category label of `row`, or `None` when missing or numeric.
    pub fn label(&self, row: usize) -> Option<&str> {
        match &self.values {
            ColumnValues::Categorical { codes, dictionary } => {
                let c = codes[row];
                (c != NULL_CODE).then(|| dictionary[c as usize].as_str())
            }
            ColumnValues::Numeric(_) => None,
        }
    }
}

/// Why a table cannot be fitted at all, whatever the model: the checks every
/// generator runs before it looks at the values. Errors name the column and
/// row, never a value (a value is patient data).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ShapeError {
    #[error("the table has no columns")]
    NoColumns,
    #[error("column name `{column}` appears more than once")]
    DuplicateColumn { column: String },
    #[error("column `{column}` has {len} rows, expected {expected} like the first column")]
    RaggedColumns {
        column: String,
        len: usize,
        expected: usize,
    },
    #[error(
        "column `{column}` row {row}: category code {code} is outside its dictionary of {dictionary_len} labels"
    )]
    InvalidCategoryCode {
        column: String,
        row: usize,
        code: u32,
        dictionary_len: usize,
    },
    #[error(
        "column `{column}` row {row}: value is infinite (only finite values or NaN for null are allowed)"
    )]
    NonFiniteValue { column: String, row: usize },
}

impl Table {
    /// Checks names, lengths and category codes; returns the row count.
    pub fn check_shape(&self) -> Result<usize, ShapeError> {
        let n = self
            .columns
            .first()
            .ok_or(ShapeError::NoColumns)?
            .values
            .len();
        let mut names = std::collections::BTreeSet::new();
        for column in &self.columns {
            if !names.insert(column.name.as_str()) {
                return Err(ShapeError::DuplicateColumn {
                    column: column.name.clone(),
                });
            }
            if column.values.len() != n {
                return Err(ShapeError::RaggedColumns {
                    column: column.name.clone(),
                    len: column.values.len(),
                    expected: n,
                });
            }
            if let ColumnValues::Categorical { codes, dictionary } = &column.values
                && let Some(row) = codes
                    .iter()
                    .position(|&c| c != NULL_CODE && c as usize >= dictionary.len())
            {
                return Err(ShapeError::InvalidCategoryCode {
                    column: column.name.clone(),
                    row,
                    code: codes[row],
                    dictionary_len: dictionary.len(),
                });
            }
        }
        Ok(n)
    }

    /// Checks that no numeric value is infinite (NaN is a null). Generators
    /// that fit ranges and quantiles need this; bucketing ones do not.
    pub fn check_finite(&self) -> Result<(), ShapeError> {
        for column in &self.columns {
            if let ColumnValues::Numeric(v) = &column.values
                && let Some(row) = v.iter().position(|x| x.is_infinite())
            {
                return Err(ShapeError::NonFiniteValue {
                    column: column.name.clone(),
                    row,
                });
            }
        }
        Ok(())
    }

    pub fn new(columns: Vec<Column>) -> Self {
        Table { columns }
    }

    pub fn n_rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.values.len())
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// SHA-256 over names and values (labels, not codes; NaN bits as stored),
    /// so the audit log can say which exact rows a batch held and a re-sample
    /// from the registry can be checked against it.
    pub fn content_sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for c in &self.columns {
            h.update((c.name.len() as u64).to_le_bytes());
            h.update(c.name.as_bytes());
            match &c.values {
                ColumnValues::Numeric(v) => {
                    h.update([0u8]);
                    v.iter().for_each(|x| h.update(x.to_bits().to_le_bytes()));
                }
                ColumnValues::Categorical { .. } => {
                    h.update([1u8]);
                    for row in 0..c.values.len() {
                        match c.label(row) {
                            Some(l) => {
                                h.update((l.len() as u64).to_le_bytes());
                                h.update(l.as_bytes());
                            }
                            None => h.update(u64::MAX.to_le_bytes()),
                        }
                    }
                }
            }
        }
        format!("{:x}", h.finalize())
    }

    /// A new table holding the given rows, in the given order.
    pub fn take(&self, rows: &[usize]) -> Table {
        let columns = self
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                values: match &c.values {
                    ColumnValues::Numeric(v) => {
                        ColumnValues::Numeric(rows.iter().map(|&r| v[r]).collect())
                    }
                    ColumnValues::Categorical { codes, dictionary } => ColumnValues::Categorical {
                        codes: rows.iter().map(|&r| codes[r]).collect(),
                        dictionary: dictionary.clone(),
                    },
                },
            })
            .collect();
        Table { columns }
    }

    /// The same rows in a canonical order: by `keys` (the entity id of each
    /// row; `None` first), then by the row's values, column by column
    /// (numbers by `total_cmp`, categories by label, missing last); and
    /// every dictionary in label order. Two arrival orders of one window's
    /// events give the same table, so the split, fit, sample and gate that
    /// follow depend on the window's contents alone, not on how partitions
    /// interleaved (a dictionary in first-appearance order would give the
    /// same categories other codes, and tree splits and copula orderings
    /// other models). Returns the table and, for each new row, its old row.
    pub fn canonical(&self, keys: &[Option<String>]) -> (Table, Vec<usize>) {
        let sorted = Table {
            columns: self
                .columns
                .iter()
                .map(Column::with_sorted_dictionary)
                .collect(),
        };
        let mut order: Vec<usize> = (0..self.n_rows()).collect();
        order.sort_by(|&a, &b| {
            keys.get(a)
                .cmp(&keys.get(b))
                .then_with(|| sorted.compare_rows(a, b))
        });
        (sorted.take(&order), order)
    }

    /// Row `a` against row `b`, column by column; codes must be in label
    /// order (see [`Column::with_sorted_dictionary`]).
    fn compare_rows(&self, a: usize, b: usize) -> std::cmp::Ordering {
        for c in &self.columns {
            let o = match &c.values {
                ColumnValues::Numeric(v) => v[a].total_cmp(&v[b]),
                // NULL_CODE is u32::MAX: missing sorts last, consistently.
                ColumnValues::Categorical { codes, .. } => codes[a].cmp(&codes[b]),
            };
            if o.is_ne() {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    }
}

impl Column {
    /// This column with its dictionary in label order (codes remapped).
    fn with_sorted_dictionary(&self) -> Column {
        let values = match &self.values {
            ColumnValues::Numeric(v) => ColumnValues::Numeric(v.clone()),
            ColumnValues::Categorical { codes, dictionary } => {
                let mut by_label: Vec<u32> = (0..dictionary.len() as u32).collect();
                by_label.sort_by(|&x, &y| dictionary[x as usize].cmp(&dictionary[y as usize]));
                let mut recode = vec![0u32; dictionary.len()];
                for (new, &old) in by_label.iter().enumerate() {
                    recode[old as usize] = new as u32;
                }
                ColumnValues::Categorical {
                    codes: codes
                        .iter()
                        .map(|&c| {
                            if c == NULL_CODE {
                                NULL_CODE
                            } else {
                                recode[c as usize]
                            }
                        })
                        .collect(),
                    dictionary: by_label
                        .iter()
                        .map(|&old| dictionary[old as usize].clone())
                        .collect(),
                }
            }
        };
        Column {
            name: self.name.clone(),
            values,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_errors_name_the_column_and_row_but_never_the_value() {
        assert_eq!(Table::default().check_shape(), Err(ShapeError::NoColumns));
        let t = Table::new(vec![
            Column::numeric("a", vec![1.0, 2.0]),
            Column::numeric("a", vec![1.0, 2.0]),
        ]);
        assert!(
            matches!(t.check_shape(), Err(ShapeError::DuplicateColumn { column }) if column == "a")
        );
        let t = Table::new(vec![
            Column::numeric("a", vec![1.0, 2.0]),
            Column::numeric("b", vec![1.0]),
        ]);
        assert_eq!(
            t.check_shape(),
            Err(ShapeError::RaggedColumns {
                column: "b".into(),
                len: 1,
                expected: 2
            })
        );
        let t = Table::new(vec![Column {
            name: "c".into(),
            values: ColumnValues::Categorical {
                codes: vec![0, NULL_CODE, 2],
                dictionary: vec!["x".into(), "y".into()],
            },
        }]);
        assert!(matches!(
            t.check_shape(),
            Err(ShapeError::InvalidCategoryCode {
                row: 2,
                code: 2,
                dictionary_len: 2,
                ..
            })
        ));
        let t = Table::new(vec![Column::numeric(
            "v",
            vec![f64::NAN, 123456.0, f64::NEG_INFINITY],
        )]);
        assert_eq!(t.check_shape(), Ok(3));
        let err = t.check_finite().unwrap_err();
        assert_eq!(
            err,
            ShapeError::NonFiniteValue {
                column: "v".into(),
                row: 2
            }
        );
        assert!(err.to_string().contains("column `v` row 2"));
        assert!(!err.to_string().contains("-inf"));
    }
}
