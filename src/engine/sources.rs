//! The topology's sources as the engine reads them: which topic is which
//! source, each stream's decoder, and the tables a closed window gives the
//! SQL. One consumer reads every stream topic; a message's (topic,
//! partition) becomes a [`SourcePartition`] here, once, and every clock,
//! held offset and commit downstream is keyed by it.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::error::ArrowError;

use super::EngineError;
use crate::schema::RecordSchema;
use crate::schema::decode::EventDecoder;
use crate::topology::{Source, SourceKind};
use crate::window::sql::WindowTable;
use crate::window::{ClosedWindow, SourcePartition};

/// Every source of the topology, in topology order (a source's index is
/// its `SourcePartition::source`), with its schema.
pub(super) struct Sources {
    pub all: Vec<(Source, Arc<RecordSchema>)>,
}

impl Sources {
    /// The checked sources (`check_offline`).
    pub fn new(checked: Vec<(Source, RecordSchema)>) -> Result<Sources, EngineError> {
        if checked.len() > usize::from(u16::MAX) {
            return Err(EngineError::Check(vec![format!(
                "sources: at most {} sources; got {}",
                u16::MAX,
                checked.len()
            )]));
        }
        Ok(Sources {
            all: checked
                .into_iter()
                .map(|(s, schema)| (s, Arc::new(schema)))
                .collect(),
        })
    }

    /// Each source's topic, by index (what commits are named by).
    pub fn topics(&self) -> Vec<String> {
        self.all.iter().map(|(s, _)| s.topic.clone()).collect()
    }

    /// The stream sources: index and topic (what the consumer subscribes to
    /// and the group's commits cover).
    pub fn streams(&self) -> Vec<(u16, String)> {
        self.all
            .iter()
            .enumerate()
            .filter(|(_, (s, _))| s.kind == SourceKind::Stream)
            .map(|(i, (s, _))| (i as u16, s.topic.clone()))
            .collect()
    }

    /// The first stream's schema: the source lineage and the binder describe.
    pub fn primary_schema(&self) -> &RecordSchema {
        self.all
            .iter()
            .find(|(s, _)| s.kind == SourceKind::Stream)
            .map(|(_, schema)| schema.as_ref())
            .expect("validation keeps at least one stream")
    }

    /// The key of a stream message; None for a topic that is no stream's.
    /// A few string comparisons per message (topologies have a handful of
    /// sources).
    pub fn lookup(&self, topic: &str, partition: i32) -> Option<SourcePartition> {
        self.all
            .iter()
            .position(|(s, _)| s.kind == SourceKind::Stream && s.topic == topic)
            .map(|i| SourcePartition::new(i as u16, partition))
    }

    /// One decoder per stream source, for the decode thread.
    pub fn decoders(&self) -> Result<BTreeMap<u16, EventDecoder>, EngineError> {
        let mut decoders = BTreeMap::new();
        for (i, (s, schema)) in self.all.iter().enumerate() {
            if s.kind != SourceKind::Stream {
                continue;
            }
            let decoder =
                EventDecoder::for_source(schema.clone(), &s.decode).map_err(EngineError::Check)?;
            decoders.insert(i as u16, decoder);
        }
        Ok(decoders)
    }

    /// The tables a closed window's SQL reads: one per stream, that window's
    /// events (empty for a stream with none in it), and one per table, its
    /// state as of the window's end (`tables`, by source index).
    pub fn window_tables(
        &self,
        window: &ClosedWindow,
        mut tables: BTreeMap<u16, datafusion::arrow::record_batch::RecordBatch>,
    ) -> Vec<WindowTable> {
        self.all
            .iter()
            .enumerate()
            .map(|(i, (s, schema))| WindowTable {
                name: s.name.clone(),
                schema: schema.arrow_schema(),
                batches: match s.kind {
                    SourceKind::Stream => window.batches_of(i as u16),
                    SourceKind::Table => tables.remove(&(i as u16)).into_iter().collect(),
                },
            })
            .collect()
    }

    /// FHIR streams: each keeps, in `window`, one row per resource id (the
    /// latest version; withdrawals removed), before the SQL sees it. Other
    /// formats are left alone. Returns (replaced, withdrawn) over all.
    pub fn resolve_versions(
        &self,
        window: &mut ClosedWindow,
    ) -> Result<(usize, usize), ArrowError> {
        let (mut replaced, mut withdrawn) = (0, 0);
        for (i, (s, schema)) in self.all.iter().enumerate() {
            if let Some(batches) = window.batches.get_mut(&(i as u16)) {
                let (r, w) = crate::schema::fhir::resolve_versions(
                    &s.decode,
                    &schema.arrow_schema(),
                    batches,
                )?;
                replaced += r;
                withdrawn += w;
            }
        }
        window.rows = window
            .batches
            .values()
            .flatten()
            .map(|b| b.num_rows())
            .sum();
        Ok((replaced, withdrawn))
    }

    /// The `topic/partition/first-last` ranges a window read, for lineage.
    pub fn ranges(&self, window: &ClosedWindow) -> Vec<String> {
        source_ranges(&self.topics(), window)
    }
}

/// `topic/partition/first-last` per partition of `window`, `topics` by
/// source index.
pub(super) fn source_ranges(topics: &[String], window: &ClosedWindow) -> Vec<String> {
    window
        .offsets
        .iter()
        .map(|(p, r)| {
            format!(
                "{}/{}/{}-{}",
                topics[usize::from(p.source)],
                p.partition,
                r.first,
                r.last
            )
        })
        .collect()
}

/// librdkafka's end-of-partition event names the partition number but not
/// its topic, and several stream topics share partition numbers. Of the
/// assigned partitions with that number, the ones at their end are those
/// whose next offset (`next`: what was read, else the consumer's position)
/// has reached the high watermark librdkafka cached from the fetch that
/// reported the end (no request). With one candidate, it is that one. A
/// partition this cannot tell (a transaction marker after its last record
/// keeps the high watermark one ahead) is left to `window.idle_timeout_secs`:
/// never marked idle early, so no window closes before its events arrive.
pub(super) fn at_end(
    consumer: &super::EngineConsumer,
    topics: &[String],
    assigned: &[SourcePartition],
    partition: i32,
    next: &BTreeMap<SourcePartition, i64>,
) -> Vec<SourcePartition> {
    use rdkafka::consumer::Consumer;
    let candidates: Vec<SourcePartition> = assigned
        .iter()
        .copied()
        .filter(|p| p.partition == partition)
        .collect();
    if candidates.len() <= 1 {
        return candidates;
    }
    let positions = consumer.position().ok();
    candidates
        .into_iter()
        .filter(|p| {
            let topic = &topics[usize::from(p.source)];
            let Some((_, high)) = cached_watermarks(consumer, topic, p.partition) else {
                return false;
            };
            let position = positions.as_ref().and_then(|tpl| {
                match tpl.find_partition(topic, p.partition).map(|e| e.offset()) {
                    Some(rdkafka::Offset::Offset(o)) => Some(o),
                    _ => None,
                }
            });
            next.get(p).copied().or(position).is_some_and(|n| n >= high)
        })
        .collect()
}

/// librdkafka's cached low and high watermarks of a partition (no request).
pub(super) fn cached_watermarks(
    consumer: &super::EngineConsumer,
    topic: &str,
    partition: i32,
) -> Option<(i64, i64)> {
    use rdkafka::consumer::Consumer;
    let topic_c = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: a valid client handle, a NUL-terminated topic name and two
    // out-parameters; the call only reads librdkafka's cache.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic_c.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some((low, high))
}
