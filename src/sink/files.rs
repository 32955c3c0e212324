//! Synthetic tables written to files (`resynth synthesize`), so file-mode
//! users get the same generator as the engine without Kafka.
//!
//! CSV as RFC 4180 writes it: a header row, fields quoted only when they
//! hold a comma, quote or line break, missing values as empty fields.
//! Numbers use Rust's shortest round-trip form, so reading the file back
//! gives the sampled values exactly.

use std::io::Write;
use std::path::Path;

use crate::table::{ColumnValues, Table};

fn quoted(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

fn field(values: &ColumnValues, row: usize, column: &crate::table::Column) -> String {
    match values {
        ColumnValues::Numeric(v) if v[row].is_finite() => format!("{}", v[row]),
        ColumnValues::Numeric(_) => String::new(),
        ColumnValues::Categorical { .. } => column.label(row).map(quoted).unwrap_or_default(),
    }
}

/// Writes `table` as CSV to `path` (replacing it).
pub fn write_csv(table: &Table, path: &Path) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let header: Vec<String> = table.columns.iter().map(|c| quoted(&c.name)).collect();
    writeln!(out, "{}", header.join(","))?;
    for row in 0..table.n_rows() {
        let fields: Vec<String> = table
            .columns
            .iter()
            .map(|c| field(&c.values, row, c))
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
}
