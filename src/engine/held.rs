//! Releases held for approval (`output.require_approval`).
//!
//! A batch that passed the gate is not published: its window commits its
//! offsets as usual, and the audit log records `release_held` with the model
//! version, sampling seed, row count and batch digest. Nothing else holds
//! it, so a restart loses nothing: the held release is found again in the
//! log. Meanwhile the engine keeps consuming and drift-checking windows
//! against the last approved model and starts no new fit (`refit_deferred`).
//!
//! When a trusted approver's decision arrives (a `release_approval` entry,
//! from the inbox or found in the log at start): on `pass` the batch is
//! re-sampled from the registered model with its seed, checked against the
//! recorded digest, published in a transaction of its own with its lineage
//! headers and `resynth.approval` (the envelope's sha256), and its model is
//! deployed; on `fail` it is recorded `release_rejected` and dropped. A
//! release whose transaction committed before a kill, its entry not yet
//! written, is found on the output topic and recorded, not published twice
//! (`found_on_topic` in its `batch_published` entry).

use std::collections::BTreeMap;

use rdkafka::consumer::Consumer;
use serde_json::{Value, json};

use super::{EngineConsumer, EngineError};
use crate::audit::AuditLog;
use crate::audit::recorder::{Decided, Recorder};
use crate::generate::{ModelRecord, ModelRegistry};
use crate::schema::RecordSchema;
use crate::sink::{Lineage, OutRecord, Publisher};
use crate::topology::Topology;

/// Header naming the approval of a release published after approval.
pub const APPROVAL_HEADER: &str = "resynth.approval";

pub(super) struct Context<'a> {
    pub topology: &'a Topology,
    pub brokers: &'a str,
    pub output_schema: &'a RecordSchema,
    pub registry: &'a ModelRegistry,
    pub publisher: &'a Publisher,
    pub consumer: &'a EngineConsumer,
    pub recorder: &'a mut Recorder,
    pub audit_log: &'a mut AuditLog,
}

/// The release still held in the log, if any.
pub(super) fn pending(log: &AuditLog) -> Result<Option<Value>, EngineError> {
    let entries = crate::audit::verify(log.path())?;
    let settled = |batch: &Value| {
        entries.iter().any(|e| {
            ["batch_published", "release_rejected"].contains(&e.kind.as_str())
                && e.data["batch_id"] == *batch
        })
    };
    Ok(entries
        .iter()
        .rfind(|e| e.kind == "release_held" && !settled(&e.data["batch_id"]))
        .map(|e| e.data.clone()))
}

/// Acts on a decision: publish (pass) or drop (fail). Returns the records
/// published (the engine then counts them and restarts drift monitoring).
pub(super) fn settle(
    decided: Decided,
    ctx: &mut Context<'_>,
    deployed: &mut Option<ModelRecord>,
    pending: &mut Option<Value>,
) -> Result<Option<usize>, EngineError> {
    let name = &ctx.topology.name;
    let held = &decided.held;
    if !decided.passed {
        ctx.audit_log.append(
            name,
            "release_rejected",
            json!({"batch_id": decided.batch_id, "approval_envelope_sha256": decided.envelope_sha256}),
        )?;
        ctx.recorder
            .release_decided(held, &decided.envelope_sha256, None)?;
        if pending
            .as_ref()
            .is_some_and(|p| p["batch_id"] == held["batch_id"])
        {
            *pending = None;
        }
        return Ok(None);
    }
    let version = held["model_version"].as_u64().unwrap_or(0);
    let model = ctx.registry.load(version).map_err(EngineError::Registry)?;
    let rows = held["records"].as_u64().unwrap_or(0) as usize;
    let seed = held["sample_seed"].as_u64().unwrap_or(0);
    let synthetic = model.model.sample(rows, seed);
    let digest = synthetic.content_sha256();
    if held["batch_sha256"].as_str() != Some(digest.as_str()) {
        return Err(EngineError::Generate(format!(
            "held release {}: re-sampling model v{version} with seed {seed} gives batch sha256 {digest}, the log recorded {}; not published",
            decided.batch_id, held["batch_sha256"]
        )));
    }
    let lineage: Lineage = serde_json::from_value(held["lineage"].clone())
        .map_err(|e| EngineError::Generate(format!("held release lineage: {e}")))?;
    let (window_start_ms, window_end_ms) = crate::sink::fhir::window_bounds(&lineage.window)
        .ok_or_else(|| {
            EngineError::Generate(format!(
                "held release {}: lineage window {:?} is not start-end",
                decided.batch_id, lineage.window
            ))
        })?;
    let payloads = crate::sink::fhir::encode_batch(
        ctx.topology.output.format,
        ctx.topology.output.fhir.as_ref(),
        ctx.output_schema,
        &ctx.topology.model.id_columns,
        &synthetic,
        &crate::sink::fhir::BatchRef {
            batch_id: &decided.batch_id,
            sample_seed: seed,
            window_start_ms,
            window_end_ms,
        },
    )
    .map_err(EngineError::Encode)?;
    let mut headers = lineage.headers();
    headers.push((
        APPROVAL_HEADER.into(),
        decided.envelope_sha256.clone().into_bytes(),
    ));
    let mut records: Vec<OutRecord> = payloads
        .into_iter()
        .map(|(key, payload)| OutRecord {
            topic: ctx.topology.output.topic.clone(),
            key: Some(key),
            payload,
            headers: headers.clone(),
        })
        .collect();
    ctx.recorder.anchor(&mut records, &*ctx.audit_log);
    let group = ctx.consumer.group_metadata().ok_or_else(|| {
        EngineError::Consumer(rdkafka::error::KafkaError::Subscription(
            "no consumer group metadata".into(),
        ))
    })?;
    // A kill after an earlier start's commit, before its entry, left the
    // batch published and the release held (see `published`).
    let output = &ctx.topology.output.topic;
    let already = super::published::tail_holds_batch(
        ctx.brokers,
        &ctx.topology.kafka.properties,
        output,
        &decided.batch_id,
    )
    .map_err(|e| EngineError::Generate(format!("held release {}: {e}", decided.batch_id)))?;
    if !already {
        ctx.publisher.commit(&records, &BTreeMap::new(), &group)?;
        crate::kill_point::reached("released");
    }
    let mut data = held.clone();
    data["approval_envelope_sha256"] = json!(decided.envelope_sha256);
    if already {
        data["found_on_topic"] = json!(true);
    }
    if let Some(o) = data.as_object_mut() {
        o.remove("lineage_run");
    }
    ctx.audit_log.append(name, "batch_published", data)?;
    ctx.registry
        .deploy(model.version)
        .map_err(EngineError::Registry)?;
    ctx.recorder
        .release_decided(held, &decided.envelope_sha256, Some(records.len()))?;
    *deployed = Some(model);
    *pending = None;
    Ok(Some(records.len()))
}
