//! Synthetic tables written to files (`resynth synthesize`), so file-mode
//! users get the same generator as the engine without Kafka.
//!
//! CSV as RFC 4180 writes it: a header row, fields quoted only when they
//! hold a comma, quote or line break, missing values as empty fields.
//! Numbers use Rust's shortest round-trip form, so reading the file back
//! gives the sampled values exactly; with the formats the training file was
//! read with, dates and timestamps are written in ISO 8601 and whole-number
//! columns without a decimal point, so `resynth validate` reads the output
//! with the training file's kinds.

use std::io::Write;
use std::path::Path;

use crate::source::text_values::ColumnFormat;
use crate::table::{ColumnValues, Table};

fn quoted(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

fn field(column: &crate::table::Column, row: usize, format: Option<ColumnFormat>) -> String {
    match (&column.values, format) {
        (ColumnValues::Numeric(v), Some(f)) => f.format(v[row]).unwrap_or_default(),
        (ColumnValues::Numeric(v), None) if v[row].is_finite() => format!("{}", v[row]),
        (ColumnValues::Numeric(_), None) => String::new(),
        (ColumnValues::Categorical { .. }, _) => column.label(row).map(quoted).unwrap_or_default(),
    }
}

/// Writes `table` as CSV to `path` (replacing it).
pub fn write_csv(table: &Table, path: &Path) -> std::io::Result<()> {
    write_csv_with(table, &[], path)
}

/// Writes `table` as CSV to `path`, each column in its `formats` entry
/// (columns without one as plain numbers or labels).
pub fn write_csv_with(
    table: &Table,
    formats: &[(String, ColumnFormat)],
    path: &Path,
) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let header: Vec<String> = table.columns.iter().map(|c| quoted(&c.name)).collect();
    writeln!(out, "{}", header.join(","))?;
    let of: Vec<Option<ColumnFormat>> = table
        .columns
        .iter()
        .map(|c| formats.iter().find(|(n, _)| *n == c.name).map(|(_, f)| *f))
        .collect();
    for row in 0..table.n_rows() {
        let fields: Vec<String> = table
            .columns
            .iter()
            .zip(&of)
            .map(|(c, f)| field(c, row, *f))
            .collect();
        writeln!(out, "{}", fields.join(","))?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Column;

    #[test]
    fn quotes_only_what_needs_quoting_and_leaves_missing_empty() {
        let table = Table::new(vec![
            Column::numeric("x", vec![1.5, f64::NAN, 0.1 + 0.2]),
            Column::categorical("label", &[Some("a,b"), None, Some("say \"hi\"")]),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        write_csv(&table, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "x,label\n1.5,\"a,b\"\n,\n0.30000000000000004,\"say \"\"hi\"\"\"\n"
        );
    }

    #[test]
    fn formats_write_dates_and_whole_numbers() {
        let table = Table::new(vec![
            Column::numeric("visit", vec![16_972.0, f64::NAN]),
            Column::numeric("age", vec![57.0, 61.0]),
            Column::numeric("at", vec![1_580_458_500.0, 0.0]),
        ]);
        let formats = vec![
            ("visit".to_string(), ColumnFormat::Date),
            ("age".to_string(), ColumnFormat::Number { integer: true }),
            ("at".to_string(), ColumnFormat::Timestamp),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        write_csv_with(&table, &formats, &path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "visit,age,at\n2016-06-20,57,2020-01-31T08:15:00\n,61,1970-01-01T00:00:00\n"
        );
    }
}
