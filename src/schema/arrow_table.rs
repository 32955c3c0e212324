//! Arrow record batches ↔ the pure core's `Table`.
//!
//! Numeric and timestamp columns become `f64` with NaN for null; strings and
//! booleans become dictionary-coded categories. Identifier columns are left
//! out here, at the boundary, so no generator or gate can ever learn them.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::arrow::record_batch::RecordBatch;

use crate::table::{Column, ColumnValues, NULL_CODE, Table};

/// A training-table column the core cannot use.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error(
        "training column {column:?} has type {data_type}, expected a number, timestamp, string or boolean"
    )]
    Unsupported { column: String, data_type: String },
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
}

/// Converts batches (all with the same schema) to a `Table`, skipping `skip`.
pub fn to_table(batches: &[RecordBatch], skip: &[String]) -> Result<Table, ConvertError> {
    let Some(first) = batches.first() else {
        return Ok(Table::default());
    };
    let schema = first.schema();
    let mut columns = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        if skip.iter().any(|s| s == field.name()) {
            continue;
        }
        let dt = field.data_type();
        let values = if dt.is_numeric()
            || matches!(
                dt,
                DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
            ) {
            let mut v = Vec::with_capacity(batches.iter().map(|b| b.num_rows()).sum());
            for b in batches {
                let col = b.column(i);
                let col = match dt {
                    DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => {
                        cast(&cast(col, &DataType::Int64)?, &DataType::Float64)?
                    }
                    _ => cast(col, &DataType::Float64)?,
                };
                let arr = col.as_primitive::<Float64Type>();
                v.extend((0..arr.len()).map(|r| {
                    if arr.is_null(r) {
                        f64::NAN
                    } else {
                        arr.value(r)
                    }
                }));
            }
            ColumnValues::Numeric(v)
        } else if matches!(
            dt,
            DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Boolean
                | DataType::Dictionary(..)
        ) {
            let mut labels: Vec<Option<String>> = Vec::new();
            for b in batches {
                let col = cast(b.column(i), &DataType::Utf8)?;
                let arr = col.as_string::<i32>();
                labels.extend(
                    (0..arr.len()).map(|r| (!arr.is_null(r)).then(|| arr.value(r).to_string())),
                );
            }
            Column::categorical(field.name().clone(), &labels).values
        } else {
            return Err(ConvertError::Unsupported {
                column: field.name().clone(),
                data_type: dt.to_string(),
            });
        };
        columns.push(Column {
            name: field.name().clone(),
            values,
        });
    }
    Ok(Table::new(columns))
}

/// The string labels of a column, one per row (for ids and group keys).
pub fn labels(batches: &[RecordBatch], column: &str) -> Result<Vec<Option<String>>, ConvertError> {
    let mut out = Vec::new();
    for b in batches {
        let Some(col) = b.column_by_name(column) else {
            continue;
        };
        let col = cast(col, &DataType::Utf8)?;
        let arr = col.as_string::<i32>();
        out.extend((0..arr.len()).map(|r| (!arr.is_null(r)).then(|| arr.value(r).to_string())));
    }
    Ok(out)
}

/// Whether a categorical column has a null (used by tests and profiles).
pub fn has_null(values: &ColumnValues) -> bool {
    match values {
        ColumnValues::Numeric(v) => v.iter().any(|x| x.is_nan()),
        ColumnValues::Categorical { codes, .. } => codes.contains(&NULL_CODE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    #[test]
    fn batches_become_typed_columns_without_ids() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("patient_id", DataType::Utf8, false),
            Field::new("age", DataType::Int64, true),
            Field::new("sex", DataType::Utf8, true),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["p1", "p2"])),
                Arc::new(Int64Array::from(vec![Some(40), None])),
                Arc::new(StringArray::from(vec![Some("F"), None])),
            ],
        )
        .unwrap();
        let t = to_table(&[b.clone(), b], &["patient_id".into()]).unwrap();
        assert_eq!(t.columns.len(), 2);
        assert_eq!(t.n_rows(), 4);
        let ColumnValues::Numeric(age) = &t.column("age").unwrap().values else {
            panic!()
        };
        assert_eq!(age[0], 40.0);
        assert!(age[1].is_nan());
        assert_eq!(t.column("sex").unwrap().label(0), Some("F"));
        assert!(has_null(&t.column("sex").unwrap().values));
    }
}
