//! The engine's resume state, kept in Kafka: it rides as offset metadata in
//! the source commit of each transaction, so it is exactly as durable as the
//! offsets and the batch it belongs to (Kafka Streams keeps its changelogs in
//! the same transaction for the same reason). A `kill -9` anywhere leaves
//! either the old state with the old offsets and no batch, or the new state
//! with the new offsets and the batch; never a mix.
//!
//! What it holds: the windows finalised (`closed_through_ms`), each
//! partition's read position, and [`EngineState`]: the drift monitor's
//! history, the deployed model version and the last version number used.
//! The registry's files (`models/vN.json`, `deployed`) are a mirror: a model
//! file is written before its transaction, so a crash can leave an orphan
//! that the next fit overwrites under the same number, and a `deployed`
//! pointer behind Kafka's is brought forward at start.
//!
//! Each partition carries the state as of the last transaction that read it;
//! the newest (most windows processed) wins on start. The broker bounds
//! offset metadata (`offset.metadata.max.bytes`, 4096 by default); the state
//! is a few hundred bytes (a drift history of `drift.persist_m` windows).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::warn;

use rdkafka::consumer::Consumer;

use super::{EngineConsumer, EngineError, coordinator};
use crate::audit::AuditLog;
use crate::drift::{DriftMonitor, MonitorSnapshot};
use crate::generate::{ModelRecord, ModelRegistry};
use crate::window::SourcePartition;

/// The resume state committed with the offsets (as offset metadata), one per
/// committed partition. Its `read_through` names partitions of the topic it
/// is committed on, so the format is the same for one source or several.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct ResumeState {
    /// Windows ending at or before this were finalised.
    pub closed_through_ms: Option<i64>,
    /// Per partition of this commit's topic, the position the previous run
    /// had read up to.
    #[serde(default)]
    pub read_through: BTreeMap<i32, i64>,
    /// Per partition of this commit's topic, the largest event time of its
    /// windowed events before the committed offset: a restart judges the
    /// replayed events late or not against it, as the first run did
    /// (`Windower::max_event_before`). Absent before the first event.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub max_event_before_ms: BTreeMap<i32, i64>,
    /// What the windows so far decided (absent in commits of engines before
    /// it was kept here, and before the first window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineState>,
}

/// Every committed partition's [`ResumeState`], merged: what a start resumes.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Resumed {
    /// Windows ending at or before this were finalised.
    pub closed_through_ms: Option<i64>,
    /// Per stream partition, the position the previous run had read up to.
    pub read_through: BTreeMap<SourcePartition, i64>,
    /// Per stream partition, its largest windowed event time before the
    /// committed offset.
    pub max_event_before_ms: BTreeMap<SourcePartition, i64>,
    /// The engine state of the most windows.
    pub engine: Option<EngineState>,
}

/// What a restart must resume besides positions: state that changes only
/// when a window is processed, so it is committed with that window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineState {
    /// Windows processed over all runs (orders states from several partitions).
    pub windows: u64,
    /// The drift monitor, as the last processed window left it.
    pub drift: MonitorSnapshot,
    /// The model deployed when the last window committed.
    pub deployed_version: Option<u64>,
    /// The highest model version fitted (deployed, quarantined or held).
    pub last_version: u64,
}

/// Reads the resume state from the group's committed offsets on every stream
/// source's topic (`streams`: source index and topic).
pub(super) fn resume_state(
    consumer: &EngineConsumer,
    streams: &[(u16, String)],
    group: &str,
) -> Result<Resumed, EngineError> {
    let mut tpl = rdkafka::TopicPartitionList::new();
    for (_, topic) in streams {
        let metadata = coordinator::retry_transient(coordinator::COORDINATOR_DEADLINE, || {
            consumer.fetch_metadata(Some(topic), Duration::from_secs(10))
        })
        .map_err(EngineError::Consumer)?;
        for t in metadata.topics() {
            for p in t.partitions() {
                tpl.add_partition(topic, p.id());
            }
        }
    }
    let committed = coordinator::retry_transient(coordinator::COORDINATOR_DEADLINE, || {
        consumer.committed_offsets(tpl.clone(), Duration::from_secs(10))
    })
    .map_err(EngineError::Consumer)?;
    let mut states = Vec::new();
    for e in committed.elements() {
        if e.metadata().is_empty() {
            continue;
        }
        let Some(&(source, _)) = streams.iter().find(|(_, t)| t == e.topic()) else {
            continue;
        };
        match serde_json::from_str::<ResumeState>(e.metadata()) {
            Ok(s) => states.push((source, s)),
            Err(err) => {
                warn!(group, topic = e.topic(), partition = e.partition(), error = %err, "ignoring unreadable commit metadata")
            }
        }
    }
    Ok(merge(states))
}

/// One state from every partition's (each with its stream source): the
/// latest finality, every read position, and the engine state of the most
/// windows.
fn merge(states: Vec<(u16, ResumeState)>) -> Resumed {
    let mut out = Resumed::default();
    for (source, s) in states {
        if let Some(ct) = s.closed_through_ms {
            out.closed_through_ms = Some(out.closed_through_ms.map_or(ct, |c| c.max(ct)));
        }
        out.read_through.extend(
            s.read_through
                .into_iter()
                .map(|(p, r)| (SourcePartition::new(source, p), r)),
        );
        out.max_event_before_ms.extend(
            s.max_event_before_ms
                .into_iter()
                .map(|(p, m)| (SourcePartition::new(source, p), m)),
        );
        if let Some(e) = s.engine
            && out.engine.as_ref().is_none_or(|o| e.windows > o.windows)
        {
            out.engine = Some(e);
        }
    }
    out
}

/// Resumes from the committed engine state, or starts one from the files
/// when Kafka has none (a first run, or commits from an older engine). The
/// drift monitor resumes its streak; a `deployed` pointer behind Kafka's (a
/// crash between the commit and the file write) is brought forward. A
/// pointer ahead of Kafka's is kept: a held release approved since the last
/// window commits its deployment with the next window.
pub(super) fn restore(
    committed: Option<EngineState>,
    registry: &ModelRegistry,
    deployed: &mut Option<ModelRecord>,
    monitor: &mut DriftMonitor,
    audit_log: &mut AuditLog,
    topology: &str,
) -> Result<EngineState, EngineError> {
    let on_file = deployed.as_ref().map(|m| m.version);
    let Some(mut state) = committed else {
        return Ok(EngineState {
            deployed_version: on_file,
            last_version: fitted_before(audit_log, topology, on_file)?,
            ..EngineState::default()
        });
    };
    monitor.restore(&state.drift);
    if let Some(v) = state.deployed_version
        && on_file.is_none_or(|f| f < v)
    {
        *deployed = Some(registry.load(v).map_err(EngineError::Registry)?);
        registry.deploy(v).map_err(EngineError::Registry)?;
        audit_log.append(
            topology,
            "deployed_restored",
            serde_json::json!({"version": v, "file_pointer": on_file,
                               "why": "the committed engine state deploys a newer version than the registry's pointer (a crash after the transaction, before the file write)"}),
        )?;
    }
    state.deployed_version = deployed.as_ref().map(|m| m.version);
    Ok(state)
}

/// The last version used when Kafka holds no engine state: the newest
/// `model_fitted` the audit log records for this topology, or the deployed
/// pointer if that is newer. Not the model files: a model is saved before
/// its window's transaction, so a kill between the two leaves a `vN.json`
/// no commit ever published, and counting it would make the restarted run
/// fit `vN+1` where the uninterrupted run fits `vN` (its save overwrites the
/// orphan instead). Audit entries are written only once their window has
/// committed (the commit journal), so they count only published work.
fn fitted_before(
    audit_log: &AuditLog,
    topology: &str,
    deployed: Option<u64>,
) -> Result<u64, EngineError> {
    let entries = crate::audit::verify(audit_log.path())?;
    let logged = entries
        .iter()
        .filter(|e| e.topology == topology && e.kind == "model_fitted")
        .filter_map(|e| e.data.get("version").and_then(serde_json::Value::as_u64))
        .max();
    Ok(logged.unwrap_or(0).max(deployed.unwrap_or(0)))
}

/// The state a processed window leaves, settled before its transaction so
/// that the transaction carries it: the monitor restarts after a deployment
/// and cools down after an abandoned refit; the version fitted is used up.
pub(super) fn advance(
    state: &mut EngineState,
    monitor: &mut DriftMonitor,
    window: Processed<'_>,
    deployed: Option<&ModelRecord>,
) {
    if window.deployed.is_some() {
        monitor.refitted();
    } else if window.refit_requested {
        monitor.refit_abandoned();
    }
    if let Some(v) = window.fitted {
        state.last_version = state.last_version.max(v);
    }
    state.deployed_version = window.deployed.or(deployed).map(|m| m.version);
    state.drift = monitor.snapshot();
}

/// What [`advance`] needs of a window's outcome (its records are already
/// on their way to the transaction).
pub(super) struct Processed<'a> {
    /// The model this window deploys.
    pub deployed: Option<&'a ModelRecord>,
    /// The drift monitor asked for this window's refit.
    pub refit_requested: bool,
    /// The version fitted, deployed or not.
    pub fitted: Option<u64>,
}

/// What a commit carries besides the positions.
pub(super) struct Carried<'a> {
    /// Windows ending at or before this were finalised.
    pub closed_through_ms: Option<i64>,
    pub engine: &'a EngineState,
    /// A partition's largest windowed event time before an offset
    /// (`Windower::max_event_before`).
    pub max_event_before: &'a dyn Fn(SourcePartition, i64) -> Option<i64>,
}

/// Position to commit per partition: past everything read, but never past an
/// event still held by an open window; with the resume state as metadata.
///
/// The read position recorded is where routing is complete: every bad or
/// late event below it is in this transaction or an earlier one. Messages
/// still being decoded (`in_flight`, lowest offset per partition) are not
/// routed yet, so the position stops at them; a kill after this commit must
/// not make the next run skip them as already handled. It never moves back
/// below the previous run's (`read_before`) either: a restarted run that
/// commits before it has re-read that far would otherwise forget that the
/// bad and late events between were already routed, and the run after it
/// would route them again.
///
/// Every stream source's partitions go into the one map, so one transaction
/// carries every source's offsets; `topics` names each source index's topic.
pub(super) fn commit_offsets(
    topics: &[String],
    next: &BTreeMap<SourcePartition, i64>,
    held: &BTreeMap<SourcePartition, i64>,
    in_flight: &BTreeMap<SourcePartition, i64>,
    read_before: &BTreeMap<SourcePartition, i64>,
    carried: &Carried<'_>,
) -> BTreeMap<(String, i32), (i64, String)> {
    next.iter()
        .map(|(&p, &n)| {
            let routed = in_flight.get(&p).map_or(n, |&f| f.min(n));
            let read = read_before.get(&p).map_or(routed, |&r| r.max(routed));
            let at = held.get(&p).map_or(n, |&h| h.min(n));
            let state = ResumeState {
                closed_through_ms: carried.closed_through_ms,
                read_through: BTreeMap::from([(p.partition, read)]),
                max_event_before_ms: (carried.max_event_before)(p, at)
                    .map(|m| BTreeMap::from([(p.partition, m)]))
                    .unwrap_or_default(),
                engine: Some(carried.engine.clone()),
            };
            let metadata = serde_json::to_string(&state).unwrap_or_default();
            (
                (topics[usize::from(p.source)].clone(), p.partition),
                (at, metadata),
            )
        })
        .collect()
}

/// The stream partitions' positions in a commit (`commit_offsets`, maybe
/// with table offsets added), by partition.
pub(super) fn stream_positions(
    topics: &[String],
    offsets: &BTreeMap<(String, i32), (i64, String)>,
) -> BTreeMap<SourcePartition, i64> {
    offsets
        .iter()
        .filter_map(|((topic, partition), &(at, _))| {
            let source = topics.iter().position(|t| t == topic)?;
            Some((
                SourcePartition::new(u16::try_from(source).ok()?, *partition),
                at,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::DriftState;

    fn engine(windows: u64, deployed: u64) -> EngineState {
        EngineState {
            windows,
            drift: MonitorSnapshot {
                history: vec![1, 1, 0],
                state: DriftState::Drift,
                ..MonitorSnapshot::default()
            },
            deployed_version: Some(deployed),
            last_version: deployed + 1,
        }
    }

    /// The resume states the commits' metadata carries, one per partition.
    fn committed_states(
        commits: &BTreeMap<(String, i32), (i64, String)>,
    ) -> Vec<(u16, ResumeState)> {
        commits
            .iter()
            .map(|((topic, _), (_, m))| {
                let source = if topic == "vitals" { 1 } else { 0 };
                (source, serde_json::from_str(m).unwrap())
            })
            .collect()
    }

    fn sp(partition: i32) -> SourcePartition {
        SourcePartition::new(0, partition)
    }

    fn labs() -> Vec<String> {
        vec!["labs".to_string()]
    }

    /// Two stream sources share partition numbers: each commit names its
    /// topic, and a restart gives each source its own read positions.
    #[test]
    fn one_commit_carries_every_sources_offsets() {
        let vitals = |p| SourcePartition::new(1, p);
        let commits = commit_offsets(
            &["labs".to_string(), "vitals".to_string()],
            &BTreeMap::from([(sp(0), 10), (vitals(0), 7), (vitals(1), 3)]),
            &BTreeMap::from([(vitals(0), 5)]),
            &BTreeMap::new(),
            &BTreeMap::new(),
            &Carried {
                closed_through_ms: Some(3_600_000),
                engine: &engine(2, 1),
                // Asked at the committed offset: source, partition, offset.
                max_event_before: &|p, at| {
                    (p.partition == 0).then_some(i64::from(p.source) * 1000 + at)
                },
            },
        );
        assert_eq!(commits[&("labs".to_string(), 0)].0, 10);
        assert_eq!(commits[&("vitals".to_string(), 0)].0, 5, "held back");
        assert_eq!(commits[&("vitals".to_string(), 1)].0, 3);
        let merged = merge(committed_states(&commits));
        assert_eq!(
            merged.read_through,
            BTreeMap::from([(sp(0), 10), (vitals(0), 7), (vitals(1), 3)])
        );
        assert_eq!(merged.engine, Some(engine(2, 1)));
        assert_eq!(
            merged.max_event_before_ms,
            BTreeMap::from([(sp(0), 10), (vitals(0), 1005)]),
            "each partition's maximum before its committed offset; none where unknown"
        );
    }

    #[test]
    fn the_newest_engine_state_wins_and_positions_merge() {
        let commits = commit_offsets(
            &labs(),
            &BTreeMap::from([(sp(0), 10), (sp(1), 20)]),
            &BTreeMap::from([(sp(1), 15)]),
            &BTreeMap::new(),
            &BTreeMap::new(),
            &Carried {
                closed_through_ms: Some(3_600_000),
                engine: &engine(7, 2),
                max_event_before: &|_, _| None,
            },
        );
        assert_eq!(commits[&("labs".to_string(), 0)].0, 10);
        assert_eq!(commits[&("labs".to_string(), 1)].0, 15, "held back");
        let mut states = committed_states(&commits);
        // A partition not read since an older window carries older state.
        states.push((
            0,
            ResumeState {
                closed_through_ms: Some(0),
                read_through: BTreeMap::from([(2, 5)]),
                max_event_before_ms: BTreeMap::new(),
                engine: Some(engine(3, 1)),
            },
        ));
        // And a commit from before the engine state was kept.
        states.insert(
            0,
            (
                0,
                serde_json::from_str(r#"{"closed_through_ms":1}"#).unwrap(),
            ),
        );
        let merged = merge(states);
        assert_eq!(merged.closed_through_ms, Some(3_600_000));
        assert_eq!(
            merged.read_through,
            BTreeMap::from([(sp(0), 10), (sp(1), 20), (sp(2), 5)])
        );
        assert_eq!(merged.engine, Some(engine(7, 2)));
    }

    /// A restarted run commits partition 0 after re-reading only to 4 of the
    /// 9 the run before it read: the next run must still skip 4..9.
    #[test]
    fn a_restarted_run_never_records_a_read_position_behind_the_last() {
        let before = BTreeMap::from([(sp(0), 9), (sp(1), 3)]);
        let commits = commit_offsets(
            &labs(),
            &BTreeMap::from([(sp(0), 4), (sp(1), 6)]),
            &BTreeMap::new(),
            &BTreeMap::new(),
            &before,
            &Carried {
                closed_through_ms: None,
                engine: &engine(1, 1),
                max_event_before: &|_, _| None,
            },
        );
        let states = committed_states(&commits);
        assert_eq!(
            commits[&("labs".to_string(), 0)].0,
            4,
            "the position is what was read"
        );
        assert_eq!(
            merge(states).read_through,
            BTreeMap::from([(sp(0), 9), (sp(1), 6)])
        );
    }

    /// Messages 6..12 of partition 0 were sent for decoding but not routed
    /// when the window committed: a bad one among them is not in this
    /// transaction, so the read position must stop at 6 for the next run to
    /// dead-letter it. Partition 1 has nothing in flight.
    #[test]
    fn the_read_position_stops_at_messages_still_being_decoded() {
        let commits = commit_offsets(
            &labs(),
            &BTreeMap::from([(sp(0), 12), (sp(1), 8)]),
            &BTreeMap::from([(sp(0), 6)]),
            &BTreeMap::from([(sp(0), 6)]),
            &BTreeMap::from([(sp(0), 2)]),
            &Carried {
                closed_through_ms: None,
                engine: &engine(1, 1),
                max_event_before: &|_, _| None,
            },
        );
        let states = committed_states(&commits);
        assert_eq!(
            merge(states).read_through,
            BTreeMap::from([(sp(0), 6), (sp(1), 8)])
        );
    }

    /// A kill after `v1.json` was saved, before window 0 committed, leaves
    /// Kafka without engine state and the file behind. The restarted run
    /// must fit v1 again, as the uninterrupted run did; once the audit log
    /// records a committed fit, numbering goes on from it.
    #[test]
    fn an_orphan_model_file_does_not_use_up_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let registry = ModelRegistry::open(dir.path(), "labs").unwrap();
        std::fs::write(registry.dir().join("v1.json"), b"{}").unwrap();
        let mut log = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
        let mut monitor = DriftMonitor::new(&crate::topology::DriftConfig::default());
        let mut restored = |log: &mut AuditLog| {
            restore(None, &registry, &mut None, &mut monitor, log, "labs")
                .unwrap()
                .last_version
        };
        assert_eq!(restored(&mut log), 0, "the orphan is not counted");
        log.append("other", "model_fitted", serde_json::json!({"version": 5}))
            .unwrap();
        log.append("labs", "model_fitted", serde_json::json!({"version": 2}))
            .unwrap();
        assert_eq!(restored(&mut log), 2, "this topology's committed fits");
    }

    #[test]
    fn the_state_fits_the_brokers_default_metadata_limit() {
        let mut e = engine(u64::MAX, u64::MAX - 1);
        // persist_m is validated small; 64 windows of history is generous.
        e.drift.history = vec![1; 64];
        let commits = commit_offsets(
            &["a-long-source-topic-name".to_string()],
            &BTreeMap::from([(sp(i32::MAX), i64::MAX)]),
            &BTreeMap::new(),
            &BTreeMap::new(),
            &BTreeMap::new(),
            &Carried {
                closed_through_ms: Some(i64::MAX),
                engine: &e,
                max_event_before: &|_, _| None,
            },
        );
        let (_, metadata) = commits.values().next().unwrap();
        assert!(metadata.len() < 4096, "{} bytes", metadata.len());
    }
}
