//! The engine's side of the binder: what it records while it runs, through
//! a few calls from the engine loop, so the binder can later be built from
//! the run's own data.
//!
//! - on start: the lock on the audit directory, a `config_snapshot` entry
//!   (the topology in force, its sha256, engine version and build commit,
//!   the principal), and the engine run's OpenLineage START;
//! - per window: START when it closes, RUNNING and the gate runs once it
//!   was processed, the audit head as an anchor header on every record of a
//!   publishing transaction, then COMPLETE with a `source_read` and a
//!   `reports_written` entry once it committed (FAIL when it did not);
//! - between windows: entries queued by CLI commands (the inbox), among
//!   them approvals, which are verified here against `audit.approver_keys`;
//! - on stop: COMPLETE, or FAIL with the error.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::access::{self, EngineLock};
use super::openlineage::{Emitter, EventBuilder, GateFacts, ReleaseFacts, WindowFacts};
use super::{AuditError, AuditLog, anchor, approval};
use crate::schema::RecordSchema;
use crate::sink::OutRecord;
use crate::topology::Topology;

/// How often the inbox is looked at.
const INBOX_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Lineage(#[from] super::openlineage::LineageError),
    #[error("audit.approver_keys: {0}")]
    Keys(#[from] approval::ApprovalError),
}

/// One window job in flight.
#[derive(Debug, Clone)]
pub struct WindowTrack {
    pub run_id: String,
    pub facts: WindowFacts,
}

/// A verified decision on a held release, for the engine to act on.
#[derive(Debug, Clone)]
pub struct Decided {
    pub batch_id: String,
    pub passed: bool,
    pub envelope_sha256: String,
    /// The `release_held` entry's data.
    pub held: Value,
}

pub struct Recorder {
    _lock: EngineLock,
    emitter: Emitter,
    audit_dir: std::path::PathBuf,
    topology: String,
    output_topic: String,
    quarantine_topic: String,
    group_id: String,
    principal: Value,
    trusted: Vec<ed25519_dalek::VerifyingKey>,
    last_inbox: Option<Instant>,
    /// The engine run's terminal event was emitted.
    finished: bool,
}

/// sha256 of the topology as the engine runs it.
pub fn topology_json(topology: &Topology) -> (Value, String) {
    let v = serde_json::to_value(topology).unwrap_or_default();
    let digest = format!("{:x}", Sha256::digest(v.to_string().as_bytes()));
    (v, digest)
}

fn release_facts(audit: &[(String, Value)]) -> ReleaseFacts {
    let find = |k: &str| audit.iter().find(|(kind, _)| kind == k).map(|(_, d)| d);
    let fitted = find("model_fitted");
    let batch = find("batch_published")
        .map(|d| ("published", d))
        .or_else(|| find("release_held").map(|d| ("held", d)))
        .or_else(|| find("batch_quarantined").map(|d| ("quarantined", d)));
    let mut f = ReleaseFacts {
        outcome: batch.map_or("no_batch", |(o, _)| o).to_string(),
        ..Default::default()
    };
    if let Some(m) = fitted {
        f.model_version = m["version"].as_u64();
        f.model_sha256 = m["sha256"].as_str().map(str::to_string);
        f.generator = m["generator"].as_str().map(str::to_string);
        f.epsilon = m["epsilon"][0].as_f64();
        f.ledger_total_epsilon = m["ledger_total_epsilon"].as_f64();
    }
    if let Some((_, b)) = batch {
        f.batch_id = b["batch_id"].as_str().map(str::to_string);
        f.validation_run = b["validation_run"].as_str().map(str::to_string);
    }
    f
}

impl Recorder {
    /// Locks the audit directory, snapshots the configuration and starts
    /// the engine run's lineage.
    pub fn start(
        topology: &Topology,
        brokers: &str,
        source: &RecordSchema,
        output: &RecordSchema,
        log: &mut AuditLog,
    ) -> Result<Recorder, RecorderError> {
        let dir = &topology.audit.dir;
        let lock = EngineLock::acquire(dir)?;
        let trusted = approval::load_trusted(&topology.audit.approver_keys)?;
        let builder = EventBuilder::new(&topology.lineage, topology, brokers, source, output);
        let emitter = Emitter::open(
            &topology.lineage,
            dir,
            builder,
            brokers,
            &topology.kafka.properties,
        )?;
        let principal = access::principal(&topology.kafka.properties);
        let (config, digest) = topology_json(topology);
        log.append(
            &topology.name,
            "config_snapshot",
            json!({"topology_sha256": digest, "topology": config,
                   "engine_version": env!("CARGO_PKG_VERSION"), "build_commit": env!("RESYNTH_BUILD_COMMIT"),
                   "principal": principal, "transactional_id": topology.transactional_id(),
                   "consumer_group": topology.kafka.group_id, "lineage_run": emitter.run_id}),
        )?;
        let mut r = Recorder {
            _lock: lock,
            audit_dir: dir.clone(),
            topology: topology.name.clone(),
            output_topic: topology.output.topic.clone(),
            quarantine_topic: topology.kafka.quarantine_topic.clone(),
            group_id: topology.kafka.group_id.clone(),
            principal,
            trusted,
            emitter,
            last_inbox: None,
            finished: false,
        };
        let e = r
            .emitter
            .builder
            .topology_event("START", &r.emitter.run_id, super::now_ms(), None);
        r.emitter.emit(&e)?;
        Ok(r)
    }

    /// A window closed: its run starts. `source_ranges` are the
    /// `topic/partition/first-last` ranges of every source it read.
    pub fn window_started(
        &mut self,
        start_ms: i64,
        end_ms: i64,
        source_ranges: Vec<String>,
    ) -> Result<WindowTrack, RecorderError> {
        let facts = WindowFacts {
            window: format!("{start_ms}-{end_ms}"),
            start_ms,
            end_ms,
            source_ranges,
        };
        let track = WindowTrack {
            run_id: uuid::Uuid::new_v4().to_string(),
            facts,
        };
        let e = self.emitter.builder.window_event(
            "START",
            &track.run_id,
            &self.emitter.run_id,
            super::now_ms(),
            &track.facts,
            None,
            None,
        );
        self.emitter.emit(&e)?;
        Ok(track)
    }

    /// The window was processed (before its commit): RUNNING, and one gate
    /// run per attempt with its assertions.
    pub fn window_processed(
        &mut self,
        track: &WindowTrack,
        audit: &[(String, Value)],
        reports: &[(String, Value)],
    ) -> Result<(), RecorderError> {
        let release = release_facts(audit);
        if release.model_version.is_none() {
            return Ok(());
        }
        let now = super::now_ms();
        let b = &self.emitter.builder;
        let mut events = vec![b.window_event(
            "RUNNING",
            &track.run_id,
            &self.emitter.run_id,
            now,
            &track.facts,
            Some(&release),
            None,
        )];
        for (name, body) in reports {
            let Ok(gate) = serde_json::from_value::<crate::gate::GateReport>(body["gate"].clone())
            else {
                continue;
            };
            let facts = GateFacts::from_report(name, &gate);
            let run = uuid::Uuid::new_v4().to_string();
            for t in ["START", "COMPLETE"] {
                events.push(b.gate_event(
                    t,
                    &run,
                    &track.run_id,
                    now,
                    &track.facts,
                    &release,
                    &facts,
                ));
            }
        }
        for e in events {
            self.emitter.emit(&e)?;
        }
        Ok(())
    }

    /// Adds the audit head to every record of a publishing transaction.
    pub fn anchor(&self, records: &mut [OutRecord], log: &AuditLog) {
        let (seq, hash) = log.head();
        let value = anchor::header_value(seq, hash);
        for r in records
            .iter_mut()
            .filter(|r| r.topic == self.output_topic || r.topic == self.quarantine_topic)
        {
            r.headers.push((anchor::HEADER.to_string(), value.clone()));
        }
    }

    /// What the window's commit adds to the audit log after the window
    /// job's own entries: the read of the source and the reports' digests.
    /// Computed before the commit, so the commit journal holds them too.
    pub fn committed_entries(
        &self,
        track: &WindowTrack,
        audit: &[(String, Value)],
        reports: &[(String, Value)],
    ) -> Vec<(String, Value)> {
        let release = release_facts(audit);
        let purpose = match (&release.model_version, release.outcome.as_str()) {
            (Some(v), o) => format!(
                "training run: fit of model v{v} on this window, gate against its holdout ({o})"
            ),
            (None, _) => "drift check of the window against the deployed model's reference".into(),
        };
        let mut out = vec![(
            "source_read".to_string(),
            access::source_read(
                &self.principal,
                &self.group_id,
                &track.facts.window,
                &track.facts.source_ranges,
                &purpose,
                &track.run_id,
            ),
        )];
        if !reports.is_empty() {
            let listed: Vec<Value> = reports
                .iter()
                .map(|(name, body)| {
                    let bytes = serde_json::to_vec_pretty(body).unwrap_or_default();
                    json!({"name": name, "sha256": format!("{:x}", Sha256::digest(&bytes))})
                })
                .collect();
            out.push(("reports_written".to_string(), json!({"reports": listed})));
        }
        out
    }

    /// The window's transaction committed and its evidence is written:
    /// COMPLETE, with where its records went.
    pub fn window_completed(
        &mut self,
        track: &WindowTrack,
        audit: &[(String, Value)],
        records: &[OutRecord],
    ) -> Result<(), RecorderError> {
        let release = {
            let mut r = release_facts(audit);
            let to = |topic: &str| records.iter().filter(|x| x.topic == topic).count();
            r.destination = match r.outcome.as_str() {
                "published" => Some((self.output_topic.clone(), to(&self.output_topic))),
                "quarantined" => Some((self.quarantine_topic.clone(), to(&self.quarantine_topic))),
                _ => None,
            };
            r
        };
        let e = self.emitter.builder.window_event(
            "COMPLETE",
            &track.run_id,
            &self.emitter.run_id,
            super::now_ms(),
            &track.facts,
            Some(&release),
            None,
        );
        self.emitter.emit(&e)?;
        Ok(())
    }

    /// The window job or its commit failed.
    pub fn window_failed(&mut self, track: &WindowTrack, error: &str) {
        let e = self.emitter.builder.window_event(
            "FAIL",
            &track.run_id,
            &self.emitter.run_id,
            super::now_ms(),
            &track.facts,
            None,
            Some(error),
        );
        if let Err(err) = self.emitter.emit(&e) {
            tracing::error!(topology = %self.topology, error = %err, "lineage FAIL event not written");
        }
    }

    /// Appends what CLI commands queued (at most every half second) and
    /// returns the verified decisions on releases held in this log.
    pub fn poll_inbox(
        &mut self,
        log: &mut AuditLog,
        force: bool,
    ) -> Result<Vec<Decided>, RecorderError> {
        if !force && self.last_inbox.is_some_and(|t| t.elapsed() < INBOX_EVERY) {
            return Ok(Vec::new());
        }
        self.last_inbox = Some(Instant::now());
        let appended = access::drain_inbox(&self.audit_dir, log)?;
        let mut out = Vec::new();
        for e in appended.iter().filter(|e| e.kind == "release_approval") {
            out.extend(self.decided(&e.data, log)?);
        }
        Ok(out)
    }

    /// On start: decisions already in the log for releases still held
    /// (approved while the engine was down).
    pub fn pending_decisions(&mut self, log: &mut AuditLog) -> Result<Vec<Decided>, RecorderError> {
        let entries = super::verify(log.path())?;
        let mut out = Vec::new();
        for e in entries.iter().filter(|e| e.kind == "release_approval") {
            out.extend(self.decided(&e.data, log)?);
        }
        Ok(out)
    }

    /// A recorded approval, re-verified against the trusted keys, if it
    /// decides a release that is still held.
    fn decided(&mut self, data: &Value, log: &AuditLog) -> Result<Option<Decided>, RecorderError> {
        let entries = super::verify(log.path())?;
        let batch = data["release"].as_str().unwrap_or("");
        let held = entries
            .iter()
            .find(|e| e.kind == "release_held" && e.data["batch_id"].as_str() == Some(batch));
        let settled = entries.iter().any(|e| {
            ["batch_published", "release_rejected"].contains(&e.kind.as_str())
                && e.data["batch_id"].as_str() == Some(batch)
        });
        let Some(held) = held else { return Ok(None) };
        if settled {
            return Ok(None);
        }
        let envelope = serde_json::to_vec(&data["envelope"]).unwrap_or_default();
        let mut held_data = held.data.clone();
        if let Some(read) = entries.iter().find(|e| {
            e.kind == "source_read" && e.data["window"] == held.data["window"] && e.seq > held.seq
        }) {
            held_data["lineage_run"] = read.data["lineage_run"].clone();
        }
        match approval::verify(&envelope, &self.trusted) {
            Ok(v) if v.decision.release == batch => Ok(Some(Decided {
                batch_id: batch.to_string(),
                passed: v.decision.result == "pass",
                envelope_sha256: data["envelope_sha256"].as_str().unwrap_or("").to_string(),
                held: held_data,
            })),
            Ok(_) | Err(_) => {
                tracing::warn!(topology = %self.topology, release = batch,
                    "an approval did not verify against audit.approver_keys; the release stays held");
                Ok(None)
            }
        }
    }

    /// A held release was decided and acted on: the OTHER event carrying
    /// the approval digest.
    pub fn release_decided(
        &mut self,
        held: &Value,
        approval_digest: &str,
        published: Option<usize>,
    ) -> Result<(), RecorderError> {
        let window = held["window"].as_str().unwrap_or("").to_string();
        let (start_ms, end_ms) = window
            .split_once('-')
            .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
            .unwrap_or((0, 0));
        let facts = WindowFacts {
            window,
            start_ms,
            end_ms,
            source_ranges: held["lineage"]["source"]
                .as_str()
                .unwrap_or("")
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        };
        let release = ReleaseFacts {
            batch_id: held["batch_id"].as_str().map(str::to_string),
            model_version: held["model_version"].as_u64(),
            model_sha256: held["model_sha256"].as_str().map(str::to_string),
            validation_run: held["validation_run"].as_str().map(str::to_string),
            outcome: if published.is_some() {
                "published"
            } else {
                "rejected"
            }
            .into(),
            destination: published.map(|n| (self.output_topic.clone(), n)),
            approval_digest: Some(approval_digest.to_string()),
            ..Default::default()
        };
        let run = held["lineage_run"].as_str().unwrap_or("").to_string();
        let run = if uuid::Uuid::parse_str(&run).is_ok() {
            run
        } else {
            uuid::Uuid::new_v4().to_string()
        };
        let e = self.emitter.builder.window_event(
            "OTHER",
            &run,
            &self.emitter.run_id,
            super::now_ms(),
            &facts,
            Some(&release),
            None,
        );
        self.emitter.emit(&e)?;
        Ok(())
    }

    /// The engine stopped (`error`: it failed).
    pub fn stopped(&mut self, error: Option<&str>) {
        self.finished = true;
        let t = if error.is_some() { "FAIL" } else { "COMPLETE" };
        let e =
            self.emitter
                .builder
                .topology_event(t, &self.emitter.run_id, super::now_ms(), error);
        if let Err(err) = self.emitter.emit(&e) {
            tracing::error!(topology = %self.topology, error = %err, "lineage stop event not written");
        }
    }

    pub fn audit_dir(&self) -> &Path {
        &self.audit_dir
    }
}

impl Drop for Recorder {
    /// An engine run that ends without `stopped` ended on an error: its
    /// lineage says FAIL rather than leaving the run open.
    fn drop(&mut self) {
        if !self.finished {
            self.stopped(Some(
                "the engine stopped on an error (see its exit message)",
            ));
        }
    }
}
