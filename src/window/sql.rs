//! A closed window as a DataFusion table, and the topology's SQL over it.
//!
//! The SQL turns raw events into the training table: one row per privacy unit
//! (e.g. `GROUP BY patient_id` with lab codes pivoted into columns). Planning
//! the same SQL against an empty table of the source schema gives the output
//! schema without data, which is how `resynth check` catches SQL errors and
//! schema mismatches before the first window closes.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

/// The query failed to plan or run.
#[derive(Debug, thiserror::Error)]
#[error("window.sql: {message}")]
pub struct SqlError {
    pub message: String,
}

fn err(e: impl std::fmt::Display) -> SqlError {
    SqlError {
        message: e.to_string(),
    }
}

/// One table a window's SQL reads: a source's name, its Arrow schema, and
/// its rows for this window (a stream's events, a table's state).
#[derive(Debug, Clone)]
pub struct WindowTable {
    pub name: String,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

/// Runs `sql` over `batches` registered as `table`.
pub async fn training_table(
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    table: &str,
    sql: &str,
) -> Result<Vec<RecordBatch>, SqlError> {
    let table = WindowTable {
        name: table.to_string(),
        schema,
        batches,
    };
    run(vec![table], sql).await
}

/// Runs `sql` with every table registered under its name.
pub async fn run(tables: Vec<WindowTable>, sql: &str) -> Result<Vec<RecordBatch>, SqlError> {
    let ctx = SessionContext::new();
    for t in tables {
        let mem = MemTable::try_new(t.schema, vec![t.batches]).map_err(err)?;
        ctx.register_table(t.name.as_str(), Arc::new(mem))
            .map_err(err)?;
    }
    let df = ctx.sql(sql).await.map_err(err)?;
    df.collect().await.map_err(err)
}

/// Plans `sql` against an empty table of `schema` and returns its output schema.
pub async fn output_schema(
    schema: SchemaRef,
    table: &str,
    sql: &str,
) -> Result<SchemaRef, SqlError> {
    plan(&[(table.to_string(), schema)], sql).await
}

/// Plans `sql` against an empty table per `(name, schema)` and returns its
/// output schema: `check` plans a several-source topology's SQL this way.
pub async fn plan(tables: &[(String, SchemaRef)], sql: &str) -> Result<SchemaRef, SqlError> {
    let ctx = SessionContext::new();
    for (name, schema) in tables {
        let mem = MemTable::try_new(schema.clone(), vec![vec![]]).map_err(err)?;
        ctx.register_table(name.as_str(), Arc::new(mem))
            .map_err(err)?;
    }
    let df = ctx.sql(sql).await.map_err(err)?;
    Ok(Arc::new(df.schema().as_arrow().clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("patient_id", DataType::Utf8, false),
            Field::new("lab_code", DataType::Utf8, false),
            Field::new("lab_value", DataType::Float64, true),
            Field::new("age", DataType::Int64, false),
        ]))
    }

    #[tokio::test]
    async fn pivot_gives_one_row_per_patient() {
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(vec!["a", "a", "b"])),
                Arc::new(StringArray::from(vec!["hba1c", "ldl", "hba1c"])),
                Arc::new(Float64Array::from(vec![6.0, 120.0, 8.0])),
                Arc::new(Int64Array::from(vec![50, 50, 70])),
            ],
        )
        .unwrap();
        let sql = "SELECT patient_id, MAX(age) AS age, \
                   AVG(CASE WHEN lab_code = 'hba1c' THEN lab_value END) AS hba1c, \
                   AVG(CASE WHEN lab_code = 'ldl' THEN lab_value END) AS ldl \
                   FROM events GROUP BY patient_id ORDER BY patient_id";
        let out = training_table(schema(), vec![batch], "events", sql)
            .await
            .unwrap();
        let rows: usize = out.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 2);
        let ldl = out[0].column_by_name("ldl").unwrap();
        assert_eq!(ldl.null_count(), 1, "patient b has no LDL");
    }

    #[tokio::test]
    async fn sql_errors_surface_before_data() {
        let e = output_schema(schema(), "events", "SELECT nope FROM events")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        let s = output_schema(schema(), "events", "SELECT patient_id, age FROM events")
            .await
            .unwrap();
        assert_eq!(s.fields().len(), 2);
    }
}
