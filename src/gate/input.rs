//! Checks the three tables of a gate run against each other before any
//! statistic runs, so every later step can index columns without failing.
//!
//! The training table defines the schema: holdout and synthetic must carry
//! exactly its columns (by name, in any order) with the same kinds, every
//! column must be as long as its table, and every categorical code must
//! point into its dictionary.

use std::collections::HashSet;

use super::GateError;
use crate::stats::kind_name;
use crate::table::{Column, ColumnValues, NULL_CODE, Table};

/// One training column with its holdout and synthetic counterparts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ColumnTriple<'a> {
    pub train: &'a Column,
    pub holdout: &'a Column,
    pub synthetic: &'a Column,
}

impl ColumnTriple<'_> {
    pub fn name(&self) -> &str {
        &self.train.name
    }
}

/// Columns of the three tables matched by name, in training order.
pub(crate) fn align<'a>(
    train: &'a Table,
    holdout: &'a Table,
    synthetic: &'a Table,
) -> Result<Vec<ColumnTriple<'a>>, GateError> {
    let tables = [
        ("training", train),
        ("holdout", holdout),
        ("synthetic", synthetic),
    ];
    for (name, table) in tables {
        check_table(name, table)?;
    }
    let expected: HashSet<&str> = train.columns.iter().map(|c| c.name.as_str()).collect();
    for (name, table) in &tables[1..] {
        if let Some(extra) = table
            .columns
            .iter()
            .find(|c| !expected.contains(c.name.as_str()))
        {
            return Err(GateError::UnexpectedColumn {
                table: name,
                column: extra.name.clone(),
            });
        }
    }
    train
        .columns
        .iter()
        .map(|t| {
            let find = |table_name: &'static str, table: &'a Table| {
                let c = table
                    .column(&t.name)
                    .ok_or_else(|| GateError::MissingColumn {
                        table: table_name,
                        column: t.name.clone(),
                        expected: kind_name(&t.values),
                    })?;
                if std::mem::discriminant(&c.values) != std::mem::discriminant(&t.values) {
                    return Err(GateError::KindMismatch {
                        table: table_name,
                        column: t.name.clone(),
                        expected: kind_name(&t.values),
                        found: kind_name(&c.values),
                    });
                }
                Ok(c)
            };
            Ok(ColumnTriple {
                train: t,
                holdout: find("holdout", holdout)?,
                synthetic: find("synthetic", synthetic)?,
            })
        })
        .collect()
}

fn check_table(name: &'static str, table: &Table) -> Result<(), GateError> {
    if table.columns.is_empty() {
        return Err(GateError::Empty {
            table: name,
            what: "columns",
        });
    }
    let rows = table.n_rows();
    if rows == 0 {
        return Err(GateError::Empty {
            table: name,
            what: "rows",
        });
    }
    let mut seen = HashSet::new();
    for column in &table.columns {
        if !seen.insert(column.name.as_str()) {
            return Err(GateError::DuplicateColumn {
                table: name,
                column: column.name.clone(),
            });
        }
        if column.values.len() != rows {
            return Err(GateError::RaggedColumn {
                table: name,
                column: column.name.clone(),
                expected: rows,
                found: column.values.len(),
            });
        }
        if let ColumnValues::Categorical { codes, dictionary } = &column.values
            && let Some((row, &code)) = codes
                .iter()
                .enumerate()
                .find(|&(_, &c)| c != NULL_CODE && c as usize >= dictionary.len())
        {
            return Err(GateError::InvalidCode {
                table: name,
                column: column.name.clone(),
                row,
                code,
                dictionary_len: dictionary.len(),
            });
        }
    }
    Ok(())
}
