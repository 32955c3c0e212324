//! Synthetic `Table` rows → Avro datums of the output schema.
//!
//! Downstream consumers decode with the schema shipped in `schemas/`, so the
//! encoder follows that schema exactly: identifier fields get fresh ids (the
//! generator never learns them), every other field is taken from the column
//! of the same name, and a null goes only where the schema allows one.

use apache_avro::types::Value as Avro;
use datafusion::arrow::datatypes::{DataType, Schema as ArrowSchema};

use super::{FieldKind, FlatField, RecordSchema};
use crate::table::{ColumnValues, Table};

/// Why a synthetic row could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("output field {field:?}: no column of that name in the synthetic table")]
    MissingColumn { field: String },
    #[error("output field {field:?}: {problem}")]
    Value { field: String, problem: String },
    #[error("avro: {0}")]
    Avro(String),
}

/// Encodes every row of `table`; ids are `<id_prefix>-<row>`.
pub fn encode_rows(
    schema: &RecordSchema,
    table: &Table,
    id_columns: &[String],
    id_prefix: &str,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    let sources: Vec<Option<&ColumnValues>> = schema
        .fields
        .iter()
        .map(|f| {
            if id_columns.contains(&f.name) {
                Ok(None)
            } else {
                table
                    .column(&f.name)
                    .map(|c| Some(&c.values))
                    .ok_or_else(|| EncodeError::MissingColumn {
                        field: f.name.clone(),
                    })
            }
        })
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(table.n_rows());
    for row in 0..table.n_rows() {
        let mut fields = Vec::with_capacity(schema.fields.len());
        for (field, source) in schema.fields.iter().zip(&sources) {
            let value = match source {
                None => id_value(field, &format!("{id_prefix}-{row}"), row),
                Some(values) => cell_value(field, values, row)?,
            };
            fields.push((field.name.clone(), wrap(field, value)?));
        }
        let bytes = super::write_datum(&schema.avro, Avro::Record(fields))
            .map_err(|e| EncodeError::Avro(e.to_string()))?;
        out.push(bytes);
    }
    Ok(out)
}

fn id_value(field: &FlatField, text: &str, row: usize) -> Avro {
    match field.kind {
        FieldKind::String => Avro::String(text.to_string()),
        FieldKind::Int => Avro::Int(row as i32),
        _ => Avro::Long(row as i64),
    }
}

fn cell_value(field: &FlatField, values: &ColumnValues, row: usize) -> Result<Avro, EncodeError> {
    let bad = |problem: String| EncodeError::Value {
        field: field.name.clone(),
        problem,
    };
    Ok(match values {
        ColumnValues::Numeric(v) => {
            let x = v[row];
            if x.is_nan() {
                return Ok(Avro::Null);
            }
            match field.kind {
                FieldKind::Int => {
                    Avro::Int(x.round().clamp(i32::MIN as f64, i32::MAX as f64) as i32)
                }
                FieldKind::Long => Avro::Long(x.round() as i64),
                FieldKind::TimestampMillis => Avro::TimestampMillis(x.round() as i64),
                FieldKind::Float => Avro::Float(x as f32),
                FieldKind::Double => Avro::Double(x),
                FieldKind::String => Avro::String(format_number(x)),
                FieldKind::Boolean => {
                    return Err(bad("numeric column cannot fill a boolean".into()));
                }
            }
        }
        ColumnValues::Categorical { codes, dictionary } => {
            let code = codes[row];
            if code == crate::table::NULL_CODE {
                return Ok(Avro::Null);
            }
            let label = &dictionary[code as usize];
            match field.kind {
                FieldKind::String => Avro::String(label.clone()),
                FieldKind::Boolean => Avro::Boolean(label == "true"),
                _ => {
                    return Err(bad(format!(
                        "categorical column cannot fill {:?}",
                        field.kind
                    )));
                }
            }
        }
    })
}

fn format_number(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

fn wrap(field: &FlatField, value: Avro) -> Result<Avro, EncodeError> {
    match (field.union_branch, value) {
        (Some((null_at, _)), Avro::Null) => Ok(Avro::Union(null_at as u32, Box::new(Avro::Null))),
        (Some((_, other)), v) => Ok(Avro::Union(other as u32, Box::new(v))),
        (None, Avro::Null) => Err(EncodeError::Value {
            field: field.name.clone(),
            problem: "value is missing but the schema does not allow null".into(),
        }),
        (None, v) => Ok(v),
    }
}

/// Checks, before anything runs, that the training table the topology's SQL
/// produces can fill the output schema. Returns every mismatch.
pub fn check_output_matches(
    output: &RecordSchema,
    training: &ArrowSchema,
    id_columns: &[String],
) -> Vec<String> {
    let mut problems = Vec::new();
    for f in &output.fields {
        if id_columns.contains(&f.name) {
            continue;
        }
        let Ok(column) = training.field_with_name(&f.name) else {
            problems.push(format!(
                "output.schema field {:?}: the training table (window.sql) has no column of that name; it has {:?}",
                f.name,
                training.fields().iter().map(|c| c.name().as_str()).collect::<Vec<_>>()
            ));
            continue;
        };
        let numeric = column.data_type().is_numeric()
            || matches!(column.data_type(), DataType::Timestamp(..));
        let ok = match f.kind {
            FieldKind::String => true,
            FieldKind::Boolean => matches!(column.data_type(), DataType::Boolean),
            _ => numeric,
        };
        if !ok {
            problems.push(format!(
                "output.schema field {:?}: is {:?} but the training column is {}",
                f.name,
                f.kind,
                column.data_type()
            ));
        }
        if !f.nullable && column.is_nullable() {
            problems.push(format!(
                "output.schema field {:?}: the training column can be null (generators model missing values), so the field must be a [\"null\", T] union",
                f.name
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Column;

    #[test]
    fn synthetic_rows_decode_with_the_shipped_schema() {
        let schema =
            RecordSchema::load(std::path::Path::new("schemas/synthetic/lab_patient.avsc")).unwrap();
        let table = Table::new(vec![
            Column::numeric("age", vec![54.4, f64::NAN]),
            Column::categorical("sex", &[Some("F"), None]),
            Column::categorical("race", &[Some("Asian"), Some("White")]),
            Column::categorical("ethnicity", &[Some("Hispanic"), Some("Not Hispanic")]),
            Column::categorical("zip3", &[Some("021"), Some("100")]),
            Column::categorical("diagnosis_code", &[Some("E11.9"), Some("I10")]),
            Column::numeric("hba1c", vec![7.1, 5.2]),
            Column::numeric("glucose", vec![150.0, f64::NAN]),
            Column::numeric("ldl", vec![120.0, 99.0]),
            Column::numeric("creatinine", vec![1.1, 0.9]),
        ]);
        let rows = encode_rows(&schema, &table, &["patient_id".to_string()], "syn-b1").unwrap();
        assert_eq!(rows.len(), 2);
        let v = crate::schema::read_datum(&schema.avro, &mut &rows[0][..]).unwrap();
        let Avro::Record(fields) = v else {
            panic!("record")
        };
        assert_eq!(fields[0].1, Avro::String("syn-b1-0".into()));
        assert_eq!(fields[1].1, Avro::Union(1, Box::new(Avro::Long(54))));
        let v = crate::schema::read_datum(&schema.avro, &mut &rows[1][..]).unwrap();
        let Avro::Record(fields) = v else {
            panic!("record")
        };
        assert_eq!(fields[2].1, Avro::Union(0, Box::new(Avro::Null)));
    }

    #[test]
    fn missing_column_is_named() {
        let schema =
            RecordSchema::load(std::path::Path::new("schemas/synthetic/lab_patient.avsc")).unwrap();
        let table = Table::new(vec![Column::numeric("age", vec![1.0])]);
        let err = encode_rows(&schema, &table, &["patient_id".to_string()], "x").unwrap_err();
        assert!(err.to_string().contains("\"sex\""), "{err}");
    }
}
