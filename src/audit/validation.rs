//! The evidence of a `resynth validate` run: what was judged (each input
//! file's path, sha256 and size, so a verdict can be tied to exact bytes),
//! with what settings, and the gate's verdict — as JSON for machines, HTML
//! for people, and a plain verdict table for the terminal.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::AuditError;
use super::html::{self, HtmlContext};
use crate::gate::GateReport;
use crate::table::Table;

/// One input file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// `train`, `holdout` or `synthetic`.
    pub role: String,
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    /// Rows and columns after identifier columns were dropped.
    pub rows: usize,
    pub columns: usize,
}

impl Input {
    /// Hashes the file as it is on disk now (streamed, any size).
    pub fn describe(role: &str, path: &Path, table: &Table) -> Result<Input, AuditError> {
        let io = |source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut bytes = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
            hasher.update(&buf[..n]);
        }
        Ok(Input {
            role: role.to_string(),
            path: path.display().to_string(),
            sha256: format!("{:x}", hasher.finalize()),
            bytes,
            rows: table.n_rows(),
            columns: table.columns.len(),
        })
    }
}

/// Everything `validation.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidationRecord {
    pub run_id: String,
    pub engine_version: String,
    pub inputs: Vec<Input>,
    /// The roles file as parsed, defaults filled in: the thresholds applied.
    pub spec: serde_json::Value,
    pub gate_seconds: f64,
    pub report: GateReport,
}

/// Writes `validation.json` and `validation.html` into `dir`; the page
/// suppresses real counts below `min_cell` (`gate.small_cell_min`).
pub fn write(
    dir: &Path,
    record: &ValidationRecord,
    train: &Table,
    holdout: &Table,
    synthetic: &Table,
    min_cell: usize,
) -> Result<Vec<PathBuf>, AuditError> {
    crate::owner_only::create_dir_all(dir).map_err(|source| AuditError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AuditError::Io { path, source }
    };
    let json_path = dir.join("validation.json");
    let json = serde_json::to_vec_pretty(record).expect("validation record serialises");
    crate::owner_only::write_atomic(&json_path, &json).map_err(io(&json_path))?;

    let mut meta = vec![
        ("run id".to_string(), record.run_id.clone()),
        ("resynth".to_string(), record.engine_version.clone()),
        (
            "gate time".to_string(),
            format!("{:.1} s", record.gate_seconds),
        ),
    ];
    for input in &record.inputs {
        meta.push((
            input.role.clone(),
            format!(
                "{} ({} rows × {} columns, sha256 {})",
                input.path,
                input.rows,
                input.columns,
                &input.sha256[..16]
            ),
        ));
    }
    let ctx = HtmlContext {
        title: "resynth validation report",
        meta,
        train,
        holdout: Some(holdout),
        synthetic,
        min_cell,
    };
    let html_path = dir.join("validation.html");
    let page = html::render(&record.report, &ctx).map_err(|e| AuditError::Io {
        path: html_path.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    crate::owner_only::write_atomic(&html_path, page.as_bytes()).map_err(io(&html_path))?;
    Ok(vec![json_path, html_path])
}

/// A plain-text verdict table, one line per gated result, failures marked.
pub fn verdict_table(report: &GateReport) -> String {
    let mut out = format!(
        "{:<6} {:<22} {:<34} {:>10} {:>10} {:>10}\n",
        "result", "operator", "columns", "statistic", "threshold", "floor"
    );
    for r in &report.results {
        let columns = r.columns.join(",");
        let columns = if columns.chars().count() > 34 {
            format!("{}…", columns.chars().take(33).collect::<String>())
        } else {
            columns
        };
        out.push_str(&format!(
            "{:<6} {:<22} {:<34} {:>10.4} {:>10.4} {:>10}\n",
            if r.passed { "pass" } else { "FAIL" },
            r.operator,
            columns,
            r.statistic,
            r.threshold,
            r.noise_floor.map_or("-".to_string(), |f| format!("{f:.4}")),
        ));
    }
    out.push_str(&format!(
        "verdict: {} ({} of {} results failed)\n",
        if report.passed { "PASS" } else { "FAIL" },
        report.failures().len(),
        report.results.len()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::OperatorResult;

    fn result(op: &str, columns: &[&str], passed: bool) -> OperatorResult {
        OperatorResult {
            operator: op.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            statistic: 0.12345,
            threshold: 0.1,
            effect_limit: 0.1,
            noise_allowance: None,
            interval: None,
            noise_floor: Some(0.01),
            passed,
            explanation: String::new(),
        }
    }

    #[test]
    fn verdict_table_marks_failures_and_counts_them() {
        let long: Vec<String> = (0..10).map(|i| format!("column_{i}")).collect();
        let long: Vec<&str> = long.iter().map(String::as_str).collect();
        let report = GateReport::new(vec![
            result("ks", &["age"], true),
            result("contingency_tv", &long, false),
        ]);
        let table = verdict_table(&report);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[1].starts_with("pass   ks"));
        assert!(lines[2].starts_with("FAIL   contingency_tv"));
        assert!(
            lines[2].contains('…'),
            "long column lists are cut: {}",
            lines[2]
        );
        assert!(lines[2].contains("0.1235") && lines[2].contains("0.0100"));
        assert_eq!(lines[3], "verdict: FAIL (1 of 2 results failed)");
    }

    #[test]
    fn inputs_are_hashed_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        std::fs::write(&path, "abc").unwrap();
        let input = Input::describe("train", &path, &Table::default()).unwrap();
        // sha256("abc"), FIPS 180-2 example.
        assert_eq!(
            input.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(input.bytes, 3);
        assert!(Input::describe("train", &dir.path().join("missing"), &Table::default()).is_err());
    }
}
