//! Evidence for auditors: an append-only, hash-chained JSONL log, one JSON
//! validation report per batch, and HTML reports with plots for people.
//!
//! Each log entry carries the sha256 of the previous entry, so editing or
//! deleting any line breaks the chain from that point on, which `verify`
//! detects and names. Entries hold ids, counts, scores and hashes — never
//! record contents.

pub mod access;
pub mod anchor;
pub mod approval;
pub mod binder;
pub mod consumers;
pub mod html;
pub mod openlineage;
pub mod recorder;
#[cfg(test)]
mod tests_cells;
pub mod validation;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("audit log {path} line {line}: {problem}")]
    Broken {
        path: PathBuf,
        line: usize,
        problem: String,
    },
}

/// The hash that precedes the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One line of the log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditEntry {
    pub seq: u64,
    /// Wall-clock time of writing, ms since the epoch.
    pub at_ms: i64,
    pub topology: String,
    /// e.g. `model_fitted`, `batch_published`, `batch_quarantined`, `drift`, `window_skipped`.
    pub kind: String,
    pub data: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// Appends entries, keeping the chain.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
    seq: u64,
    last_hash: String,
}

fn entry_hash(e: &AuditEntry) -> String {
    let body = serde_json::json!({
        "seq": e.seq, "at_ms": e.at_ms, "topology": e.topology,
        "kind": e.kind, "data": e.data, "prev_hash": e.prev_hash,
    });
    format!("{:x}", Sha256::digest(body.to_string().as_bytes()))
}

impl AuditLog {
    /// Opens (creating) the log and verifies the existing chain first, so
    /// nothing is appended to a log that was tampered with.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        if let Some(dir) = path.parent() {
            crate::owner_only::create_dir_all(dir).map_err(|source| AuditError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let (seq, last_hash) = if path.exists() {
            let entries = verify(path)?;
            entries
                .last()
                .map_or((0, GENESIS.to_string()), |e| (e.seq, e.hash.clone()))
        } else {
            (0, GENESIS.to_string())
        };
        let file = crate::owner_only::open_append(path).map_err(|source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            file,
            seq,
            last_hash,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last entry's seq and hash (0 and [`GENESIS`] when empty): what
    /// publishing transactions carry as their anchor.
    pub fn head(&self) -> (u64, &str) {
        (self.seq, &self.last_hash)
    }

    /// Appends one entry and syncs it to disk.
    pub fn append(
        &mut self,
        topology: &str,
        kind: &str,
        data: serde_json::Value,
    ) -> Result<AuditEntry, AuditError> {
        let mut entry = AuditEntry {
            seq: self.seq + 1,
            at_ms: now_ms(),
            topology: topology.to_string(),
            kind: kind.to_string(),
            data,
            prev_hash: self.last_hash.clone(),
            hash: String::new(),
        };
        entry.hash = entry_hash(&entry);
        let mut line = serde_json::to_string(&entry).expect("entry serialises");
        line.push('\n');
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(line.as_bytes()).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.seq = entry.seq;
        self.last_hash = entry.hash.clone();
        Ok(entry)
    }
}

/// Reads the whole log and checks every link; returns the entries.
pub fn verify(path: &Path) -> Result<Vec<AuditEntry>, AuditError> {
    let file = File::open(path).map_err(|source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut prev = GENESIS.to_string();
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line_no = i + 1;
        let broken = |problem: String| AuditError::Broken {
            path: path.to_path_buf(),
            line: line_no,
            problem,
        };
        let line = line.map_err(|source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let entry: AuditEntry =
            serde_json::from_str(&line).map_err(|e| broken(format!("not an audit entry: {e}")))?;
        if entry.prev_hash != prev {
            return Err(broken(
                "prev_hash does not match the previous entry's hash".into(),
            ));
        }
        if entry_hash(&entry) != entry.hash {
            return Err(broken("content does not match its hash (edited)".into()));
        }
        if entry.seq != out.len() as u64 + 1 {
            return Err(broken(format!(
                "seq {} where {} was expected",
                entry.seq,
                out.len() + 1
            )));
        }
        prev = entry.hash.clone();
        out.push(entry);
    }
    Ok(out)
}

/// Writes a JSON report to `<dir>/reports/<name>.json`.
pub fn write_report(
    dir: &Path,
    name: &str,
    report: &serde_json::Value,
) -> Result<PathBuf, AuditError> {
    let reports = dir.join("reports");
    crate::owner_only::create_dir_all(&reports).map_err(|source| AuditError::Io {
        path: reports.clone(),
        source,
    })?;
    let path = reports.join(format!("{name}.json"));
    let bytes = serde_json::to_vec_pretty(report).expect("json value serialises");
    crate::owner_only::write_atomic(&path, &bytes).map_err(|source| AuditError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Writes an HTML report to `<dir>/reports/<name>.html`.
pub fn write_html_report(dir: &Path, name: &str, page: &str) -> Result<PathBuf, AuditError> {
    let reports = dir.join("reports");
    crate::owner_only::create_dir_all(&reports).map_err(|source| AuditError::Io {
        path: reports.clone(),
        source,
    })?;
    let path = reports.join(format!("{name}.html"));
    crate::owner_only::write_atomic(&path, page.as_bytes()).map_err(|source| AuditError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_survives_reopen_and_detects_edits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        {
            let mut log = AuditLog::open(&path).unwrap();
            log.append("t", "a", serde_json::json!({"n": 1})).unwrap();
            log.append("t", "b", serde_json::json!({"n": 2})).unwrap();
        }
        let mut log = AuditLog::open(&path).unwrap();
        let e = log.append("t", "c", serde_json::json!({"n": 3})).unwrap();
        assert_eq!(e.seq, 3);
        let entries = verify(&path).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[2].prev_hash, entries[1].hash);

        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\"n\":2", "\"n\":20");
        std::fs::write(&path, text).unwrap();
        let err = verify(&path).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(
            AuditLog::open(&path).is_err(),
            "never append to a broken chain"
        );
    }

    /// The audit log, its directory and the reports are PHI-derived: all
    /// owner-only, including a log that existed world-readable.
    #[cfg(unix)]
    #[test]
    fn audit_log_and_reports_are_owner_only() {
        use crate::owner_only::tests::mode;
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("out/audit");
        let path = dir.join("audit.jsonl");
        AuditLog::open(&path)
            .unwrap()
            .append("t", "k", serde_json::json!({}))
            .unwrap();
        assert_eq!(mode(&root.path().join("out")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&path), 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        AuditLog::open(&path).unwrap();
        assert_eq!(mode(&path), 0o600, "reopening narrows a wide log");
        let json = write_report(&dir, "run-1", &serde_json::json!({"ok": true})).unwrap();
        let html = write_html_report(&dir, "run-1", "<html></html>").unwrap();
        assert_eq!(mode(&dir.join("reports")), 0o700);
        assert_eq!(mode(&json), 0o600);
        assert_eq!(mode(&html), 0o600);
        let _lock = access::EngineLock::acquire(&dir).unwrap();
        assert_eq!(mode(&dir.join("engine.lock")), 0o600);
    }

    #[test]
    fn deleting_a_line_breaks_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path).unwrap();
        for i in 0..3 {
            log.append("t", "k", serde_json::json!(i)).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let kept: Vec<&str> = text
            .lines()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, l)| l)
            .collect();
        std::fs::write(&path, kept.join("\n")).unwrap();
        assert!(verify(&path).unwrap_err().to_string().contains("line 2"));
    }
}
