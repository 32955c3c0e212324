//! The commit journal: what a window's commit leaves to write after it
//! (its audit entries, its reports, the `deployed` pointer), written down
//! before the commit, so a `kill -9` between the commit and those writes
//! loses none of them (issue 12, defect 5).
//!
//! The batch is on Kafka once the transaction commits, and the audit log
//! must then say so: the log is local and cannot join Kafka's transaction,
//! so the journal is its write-ahead record. One file, replaced atomically
//! before each window's commit and removed once its writes are done. On
//! start, the committed engine state in Kafka says whether the journal's
//! transaction committed (its window count was reached): then the missing
//! writes are made, marked by an `after_commit_recovered` entry; otherwise
//! the window is processed again and the journal is dropped. Entries
//! already in the log (a kill part-way through the writes) are not written
//! twice.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::EngineError;
use crate::audit::{self, AuditLog};
use crate::generate::ModelRegistry;

/// One window's writes after its commit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AfterCommit {
    /// The engine state's window count this commit records.
    pub windows: u64,
    /// The audit log's head before these entries.
    pub audit_seq: u64,
    /// Audit entries, in order: the window job's, then the recorder's.
    pub entries: Vec<(String, Value)>,
    pub reports: Vec<(String, Value)>,
    pub html_reports: Vec<(String, String)>,
    /// The model version the commit deployed.
    pub deploy: Option<u64>,
}

/// The journal of the topology's audit directory.
pub fn path(audit_dir: &Path, topology: &str) -> PathBuf {
    audit_dir.join(format!("{topology}.commit-journal.json"))
}

fn io(path: &Path, e: impl std::fmt::Display) -> EngineError {
    EngineError::Audit(audit::AuditError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// Writes the journal (atomically, owner-only) before the commit.
pub fn write(path: &Path, after: &AfterCommit) -> Result<(), EngineError> {
    let bytes = serde_json::to_vec(after).map_err(|e| io(path, e))?;
    crate::owner_only::write_atomic(path, &bytes).map_err(|e| io(path, e))
}

/// Makes the writes of a committed window, skipping audit entries the log
/// already has since the journal was written, then removes the journal.
/// Returns how many entries it wrote.
pub fn apply(
    path: &Path,
    after: &AfterCommit,
    topology: &str,
    audit_dir: &Path,
    log: &mut AuditLog,
    registry: &ModelRegistry,
) -> Result<usize, EngineError> {
    for (name, body) in &after.reports {
        audit::write_report(audit_dir, name, body)?;
    }
    for (name, page) in &after.html_reports {
        audit::write_html_report(audit_dir, name, page)?;
    }
    let mut present: Vec<(String, Value)> = if log.head().0 > after.audit_seq {
        audit::verify(log.path())?
            .into_iter()
            .filter(|e| e.seq > after.audit_seq)
            .map(|e| (e.kind, e.data))
            .collect()
    } else {
        Vec::new()
    };
    let mut written = 0;
    for (kind, data) in &after.entries {
        if let Some(i) = present.iter().position(|(k, d)| k == kind && d == data) {
            present.swap_remove(i);
            continue;
        }
        log.append(topology, kind, data.clone())?;
        written += 1;
        if written == 1 {
            crate::kill_point::reached("mid_audit");
        }
    }
    if let Some(v) = after.deploy {
        registry.deploy(v).map_err(EngineError::Registry)?;
    }
    std::fs::remove_file(path).map_err(|e| io(path, e))?;
    Ok(written)
}

/// On start: finishes the writes of a window whose transaction committed
/// (`committed_windows` is the engine state Kafka holds), or drops the
/// journal of one that did not. Returns whether anything was written.
pub fn recover(
    path: &Path,
    committed_windows: u64,
    topology: &str,
    audit_dir: &Path,
    log: &mut AuditLog,
    registry: &ModelRegistry,
) -> Result<bool, EngineError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(path, e)),
    };
    let after: AfterCommit = serde_json::from_slice(&bytes)
        .map_err(|e| io(path, format!("unreadable commit journal: {e}")))?;
    if committed_windows < after.windows {
        // Not committed: the window is read and processed again.
        std::fs::remove_file(path).map_err(|e| io(path, e))?;
        return Ok(false);
    }
    let written = apply(path, &after, topology, audit_dir, log, registry)?;
    log.append(
        topology,
        "after_commit_recovered",
        serde_json::json!({"windows": after.windows, "entries_written": written,
                           "entries": after.entries.len(), "reports": after.reports.len(),
                           "deployed_version": after.deploy}),
    )?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn after(audit_seq: u64) -> AfterCommit {
        AfterCommit {
            windows: 3,
            audit_seq,
            entries: vec![
                ("batch_published".into(), json!({"batch_id": "b-3"})),
                ("source_read".into(), json!({"window": "0-1"})),
            ],
            reports: vec![("r3".into(), json!({"gate": "passed"}))],
            html_reports: vec![],
            deploy: None,
        }
    }

    fn kinds(log: &AuditLog) -> Vec<String> {
        audit::verify(log.path())
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }

    /// Killed after the commit with one entry written and an unrelated
    /// one (the restart's `engine_started`) after it: the missing entry
    /// and the report are written once, the present one is not repeated.
    #[test]
    fn a_committed_window_gets_each_missing_write_once() {
        let dir = tempfile::tempdir().unwrap();
        let registry = ModelRegistry::open(dir.path(), "t").unwrap();
        let mut log = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
        log.append("t", "engine_started", json!({})).unwrap();
        let a = after(log.head().0);
        let journal = path(dir.path(), "t");
        write(&journal, &a).unwrap();
        log.append("t", "batch_published", json!({"batch_id": "b-3"}))
            .unwrap();
        log.append("t", "engine_started", json!({})).unwrap();

        assert!(recover(&journal, 3, "t", dir.path(), &mut log, &registry).unwrap());
        assert_eq!(
            kinds(&log),
            [
                "engine_started",
                "batch_published",
                "engine_started",
                "source_read",
                "after_commit_recovered"
            ]
        );
        assert!(dir.path().join("reports/r3.json").exists());
        assert!(!journal.exists());
        // Nothing left to recover on the next start.
        assert!(!recover(&journal, 3, "t", dir.path(), &mut log, &registry).unwrap());
    }

    /// The transaction never committed: nothing is written, the journal goes.
    #[test]
    fn an_uncommitted_window_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let registry = ModelRegistry::open(dir.path(), "t").unwrap();
        let mut log = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
        let journal = path(dir.path(), "t");
        write(&journal, &after(0)).unwrap();
        assert!(!recover(&journal, 2, "t", dir.path(), &mut log, &registry).unwrap());
        assert_eq!(log.head().0, 0);
        assert!(!dir.path().join("reports/r3.json").exists());
        assert!(!journal.exists());
    }
}
