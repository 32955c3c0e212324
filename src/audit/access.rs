//! Access evidence: who read source PHI, and who did what through the CLI.
//!
//! The engine records every read of the source topic as a `source_read`
//! audit entry (principal, topic, partitions and offset ranges, purpose:
//! which window job and training run), once the window's transaction has
//! committed. Operator commands (`sample`, `validate`, `approve`, `binder`,
//! `keygen`, `audit verify`) record an `operator_action` entry: OS user,
//! host, time and arguments, with secrets and key material replaced by
//! `<redacted>`.
//!
//! One writer per log: a running engine holds `<audit.dir>/engine.lock`.
//! A command that finds it held drops its entry into `<audit.dir>/inbox/`,
//! which the engine appends (in file-name order) within a second; with no
//! engine running the command appends itself, holding the lock meanwhile.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{AuditError, AuditLog};

/// Who the process runs as: OS user and uid, host, and the Kafka
/// principal the client authenticates as (SASL user name if configured,
/// otherwise the listener's anonymous principal).
pub fn principal(kafka_properties: &std::collections::BTreeMap<String, String>) -> Value {
    let kafka = match kafka_properties.get("sasl.username") {
        Some(u) => format!("User:{u}"),
        None => match kafka_properties
            .get("security.protocol")
            .map(String::as_str)
        {
            Some(p) if p.eq_ignore_ascii_case("ssl") => "User:<TLS client certificate>".into(),
            _ => "User:ANONYMOUS".into(),
        },
    };
    json!({"os_user": os_user(), "uid": uid(), "host": host(), "kafka_principal": kafka,
           "pid": std::process::id()})
}

/// The OS user name (`$USER`, else `$LOGNAME`, else the uid).
pub fn os_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| uid().map_or("unknown".into(), |u| format!("uid {u}")))
}

/// The real uid, read from `/proc/self/status` (Linux), when available.
pub fn uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// Flags whose value is secret or key material: replaced by `<redacted>`.
const SECRET_FLAGS: [&str; 6] = [
    "--key",
    "--password",
    "--secret",
    "--token",
    "--api-key",
    "--sasl-password",
];

/// Command-line arguments with the values of secret flags (and `k=v`
/// arguments whose key names a secret) replaced.
pub fn redact_args(args: &[String]) -> Vec<String> {
    let secret_word = |s: &str| {
        let s = s.to_ascii_lowercase();
        [
            "password", "secret", "token", "api_key", "apikey", "private",
        ]
        .iter()
        .any(|w| s.contains(w))
    };
    let mut out = Vec::with_capacity(args.len());
    let mut hide_next = false;
    for a in args {
        if hide_next {
            out.push("<redacted>".into());
            hide_next = false;
            continue;
        }
        if let Some((flag, _)) = a.split_once('=')
            && flag.starts_with("--")
            && (SECRET_FLAGS.contains(&flag) || secret_word(flag))
        {
            out.push(format!("{flag}=<redacted>"));
            continue;
        }
        if SECRET_FLAGS.contains(&a.as_str()) {
            hide_next = true;
            out.push(a.clone());
            continue;
        }
        if let Some((k, _)) = a.split_once('=')
            && !k.starts_with('-')
            && secret_word(k)
        {
            out.push(format!("{k}=<redacted>"));
            continue;
        }
        out.push(a.clone());
    }
    out
}

/// The data of an `operator_action` entry.
pub fn operator_action(command: &str, args: &[String]) -> Value {
    json!({"command": command, "args": redact_args(args), "os_user": os_user(), "uid": uid(),
           "host": host(), "at_ms": super::now_ms(), "pid": std::process::id()})
}

/// The data of a `source_read` entry: one window's read of the source.
pub fn source_read(
    principal: &Value,
    group_id: &str,
    window: &str,
    ranges: &[String],
    purpose: &str,
    lineage_run: &str,
) -> Value {
    let partitions: Vec<Value> = ranges
        .iter()
        .filter_map(|r| {
            let (topic_partition, span) = r.rsplit_once('/')?;
            let (topic, partition) = topic_partition.rsplit_once('/')?;
            let (first, last) = span.split_once('-')?;
            Some(json!({"topic": topic, "partition": partition.parse::<i32>().ok()?,
                        "first_offset": first.parse::<i64>().ok()?, "last_offset": last.parse::<i64>().ok()?}))
        })
        .collect();
    json!({"principal": principal, "consumer_group": group_id, "window": window,
           "partitions": partitions, "purpose": purpose, "lineage_run": lineage_run})
}

/// The lock a running engine holds on its audit directory.
#[derive(Debug)]
pub struct EngineLock {
    _file: File,
}

fn lock_path(audit_dir: &Path) -> PathBuf {
    audit_dir.join("engine.lock")
}

fn open_lock(audit_dir: &Path) -> Result<(PathBuf, File), AuditError> {
    let path = lock_path(audit_dir);
    let io = |source| AuditError::Io {
        path: path.clone(),
        source,
    };
    crate::owner_only::create_dir_all(audit_dir).map_err(io)?;
    let file = crate::owner_only::open(&path, |o| {
        o.create(true).truncate(false).write(true);
    })
    .map_err(io)?;
    Ok((path, file))
}

impl EngineLock {
    /// Takes the lock, or says who seems to hold it.
    pub fn acquire(audit_dir: &Path) -> Result<EngineLock, AuditError> {
        let (path, file) = open_lock(audit_dir)?;
        // A command appending by itself holds the lock for milliseconds:
        // wait for it, but not for another engine.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(EngineLock { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(AuditError::Broken {
                        path,
                        line: 0,
                        problem: "held by another process: one engine per audit directory".into(),
                    });
                }
                Err(std::fs::TryLockError::Error(source)) => {
                    return Err(AuditError::Io { path, source });
                }
            }
        }
    }

    /// Takes the lock only if it is free (no engine running).
    pub fn try_acquire(audit_dir: &Path) -> Result<Option<EngineLock>, AuditError> {
        let (path, file) = open_lock(audit_dir)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(EngineLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(source)) => Err(AuditError::Io { path, source }),
        }
    }
}

/// Where an entry went.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// Appended to the log, with this seq.
    Appended(u64),
    /// Left in the inbox for the running engine.
    Queued(PathBuf),
}

/// Records an entry from outside the engine: appended now when no engine
/// runs, queued in the inbox when one does.
pub fn record_external(
    audit_dir: &Path,
    topology: &str,
    kind: &str,
    data: Value,
) -> Result<Recorded, AuditError> {
    if let Some(_lock) = EngineLock::try_acquire(audit_dir)? {
        let mut log = AuditLog::open(&audit_dir.join("audit.jsonl"))?;
        let e = log.append(topology, kind, data)?;
        return Ok(Recorded::Appended(e.seq));
    }
    let inbox = audit_dir.join("inbox");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AuditError::Io { path, source }
    };
    crate::owner_only::create_dir_all(&inbox).map_err(io(&inbox))?;
    let name = format!(
        "{:020}-{}.json",
        super::now_ms(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let path = inbox.join(&name);
    let body = json!({"topology": topology, "kind": kind, "data": data});
    let tmp = inbox.join(format!(".{name}.tmp"));
    crate::owner_only::write(&tmp, body.to_string().as_bytes()).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(Recorded::Queued(path))
}

/// Appends every queued entry (oldest first) and removes it; returns the
/// appended entries. Called by the engine, which holds the lock.
pub fn drain_inbox(
    audit_dir: &Path,
    log: &mut AuditLog,
) -> Result<Vec<super::AuditEntry>, AuditError> {
    let inbox = audit_dir.join("inbox");
    let Ok(dir) = std::fs::read_dir(&inbox) else {
        return Ok(Vec::new());
    };
    let mut names: Vec<PathBuf> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for path in names {
        let io = |source| AuditError::Io {
            path: path.clone(),
            source,
        };
        let text = std::fs::read_to_string(&path).map_err(io)?;
        let v: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                // Evidence of a bad drop is kept, not lost: logged and recorded.
                log.append(
                    "",
                    "inbox_rejected",
                    json!({"file": path.display().to_string(), "error": e.to_string()}),
                )?;
                std::fs::remove_file(&path).map_err(io)?;
                continue;
            }
        };
        let e = log.append(
            v["topology"].as_str().unwrap_or(""),
            v["kind"].as_str().unwrap_or("operator_action"),
            v["data"].clone(),
        )?;
        std::fs::remove_file(&path).map_err(io)?;
        out.push(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn secrets_never_reach_the_log() {
        let args = s(&[
            "approve",
            "demo-0-v1",
            "--key",
            "/home/po/key.pem",
            "--api-key=abc123",
            "sasl.password=hunter2",
            "--binder",
            "out/b",
        ]);
        let r = redact_args(&args);
        assert_eq!(
            r,
            s(&[
                "approve",
                "demo-0-v1",
                "--key",
                "<redacted>",
                "--api-key=<redacted>",
                "sasl.password=<redacted>",
                "--binder",
                "out/b"
            ])
        );
        let joined = r.join(" ");
        for secret in ["key.pem", "abc123", "hunter2"] {
            assert!(!joined.contains(secret), "{secret} leaked");
        }
    }

    #[test]
    fn source_reads_name_partitions_and_offsets() {
        let p = json!({"os_user": "x"});
        let v = source_read(
            &p,
            "g",
            "0-10",
            &["ehr.labs/0/5-9".into(), "ehr.labs/3/0-2".into()],
            "drift check",
            "r",
        );
        assert_eq!(v["partitions"][1]["partition"], 3);
        assert_eq!(v["partitions"][0]["first_offset"], 5);
        assert_eq!(v["partitions"][0]["last_offset"], 9);
        assert_eq!(v["partitions"][0]["topic"], "ehr.labs");
    }

    #[test]
    fn commands_append_directly_or_queue_for_a_running_engine() {
        let dir = tempfile::tempdir().unwrap();
        let r = record_external(dir.path(), "t", "operator_action", json!({"n": 1})).unwrap();
        assert_eq!(r, Recorded::Appended(1));
        let lock = EngineLock::acquire(dir.path()).unwrap();
        assert!(EngineLock::try_acquire(dir.path()).unwrap().is_none());
        let r = record_external(dir.path(), "t", "operator_action", json!({"n": 2})).unwrap();
        assert!(matches!(r, Recorded::Queued(_)), "{r:?}");
        let mut log = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
        let drained = drain_inbox(dir.path(), &mut log).unwrap();
        assert_eq!(drained.len(), 1);
        assert_eq!(drained[0].data["n"], 2);
        assert!(drain_inbox(dir.path(), &mut log).unwrap().is_empty());
        drop(lock);
        let entries = super::super::verify(&dir.path().join("audit.jsonl")).unwrap();
        assert_eq!(entries.len(), 2);
    }
}
