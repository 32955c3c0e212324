//! Table sources: latest state per key, like a Kafka Streams KTable.
//!
//! A table's topic is compacted and keyed; the engine never commits a read
//! position for it as a source, because its state is the whole topic: on
//! every start it is read again from the beginning ([`TableReader::open`]
//! then [`TableReader::catch_up`]), and before each closed window's SQL runs
//! it is read up to the end the broker reports then. So a patient's
//! demographics written years ago are in the state when their labs arrive
//! now, and a restart cannot lose them.
//!
//! What a window sees ([`TableState::as_of`]): per key, the latest version
//! (by event time, then arrival) whose event time is before the window's
//! end. A record with a null payload (a tombstone) deletes its message key:
//! from then on the key is absent from every window whose end is after the
//! key's latest version. Tables do not hold the watermark: only streams'
//! event times close windows.
//!
//! Undecodable table records go to the source's dead-letter topic once, not
//! once per restart: the reader's position is committed for the table's
//! partitions in the same transaction as the dead letters it produced
//! ([`Tables::commit_offsets`]), and a rebuild routes only records at or
//! after that committed position.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::Array;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::EngineError;
use crate::schema::RecordSchema;
use crate::schema::decode::{DecodeError, EventDecoder};
use crate::topology::{Source, SourceKind, Topology};

/// How long one catch-up may take before the run fails (a recoverable
/// consumer error: the supervisor restarts and the table is rebuilt).
const CATCH_UP_LIMIT: Duration = Duration::from_secs(120);
const POLL_WAIT: Duration = Duration::from_millis(100);
const METADATA_WAIT: Duration = Duration::from_secs(10);

/// One version of a key's state: its row (None for a tombstone).
#[derive(Debug, Clone)]
struct Version {
    time_ms: i64,
    row: Option<RecordBatch>,
}

/// Per key, the versions that a window still to close may see, oldest
/// first. Pure: the reader feeds it, the engine asks it `as_of` a window's
/// end.
#[derive(Debug)]
pub struct TableState {
    schema: SchemaRef,
    keys: HashMap<String, Vec<Version>>,
}

impl TableState {
    pub fn new(schema: SchemaRef) -> TableState {
        TableState {
            schema,
            keys: HashMap::new(),
        }
    }

    /// Keys with at least one version kept.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// A new version of `key` (a one-row batch of the table's schema). Among
    /// versions of equal event time, the later arrival wins.
    pub fn upsert(&mut self, key: String, time_ms: i64, row: RecordBatch) {
        let versions = self.keys.entry(key).or_default();
        let at = versions.partition_point(|v| v.time_ms <= time_ms);
        versions.insert(
            at,
            Version {
                time_ms,
                row: Some(row),
            },
        );
    }

    /// A tombstone for `key`: it supersedes every version seen so far, as of
    /// the latest one's event time (a tombstone carries no event time).
    pub fn delete(&mut self, key: &str) {
        if let Some(versions) = self.keys.get_mut(key)
            && let Some(last) = versions.last()
        {
            let time_ms = last.time_ms;
            versions.push(Version { time_ms, row: None });
        }
    }

    /// The state a window ending at `end_ms` (exclusive) sees: per key, the
    /// latest version with event time < `end_ms`, unless it is a tombstone.
    /// Rows are in key order, so the same state gives the same table.
    /// Versions older than the chosen one are dropped: windows close in
    /// order of their ends, so no later window can choose them.
    pub fn as_of(&mut self, end_ms: i64) -> Result<RecordBatch, ArrowError> {
        let mut chosen: Vec<(&String, &RecordBatch)> = Vec::new();
        let mut emptied = Vec::new();
        for (key, versions) in self.keys.iter_mut() {
            let visible = versions.partition_point(|v| v.time_ms < end_ms);
            if visible == 0 {
                continue;
            }
            versions.drain(..visible - 1);
            if versions[0].row.is_none() && versions.len() == 1 {
                emptied.push(key.clone());
            }
        }
        for key in emptied {
            self.keys.remove(&key);
        }
        for (key, versions) in &self.keys {
            if let Some(Version {
                time_ms,
                row: Some(row),
            }) = versions.first()
                && *time_ms < end_ms
            {
                chosen.push((key, row));
            }
        }
        chosen.sort_unstable_by(|a, b| a.0.cmp(b.0));
        concat_batches(&self.schema, chosen.into_iter().map(|(_, row)| row))
    }
}

/// The text of row `row` of `column` (the state's key); None when null.
fn key_text(batch: &RecordBatch, column: usize, row: usize) -> Option<String> {
    let array = batch.column(column);
    if array.is_null(row) {
        return None;
    }
    array_value_to_string(array, row).ok()
}

/// A table record that did not decode, owned, for the dead-letter topic.
pub struct BadRecord {
    pub source: u16,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub error: DecodeError,
}

/// One table source: its own consumer (assigned every partition, never in
/// the group), its decoder and its state.
pub struct TableReader {
    pub index: u16,
    pub source: Source,
    /// Paused between catch-ups (see [`TableReader::catch_up`]); its
    /// end-of-partition events are routine, as the stream consumer's are.
    consumer: super::EngineConsumer,
    decoder: EventDecoder,
    key_column: usize,
    pub state: TableState,
    /// Per partition, the next offset to read.
    next: BTreeMap<i32, i64>,
    /// Per partition, where the previous runs' dead letters stopped.
    routed_through: BTreeMap<i32, i64>,
    /// Per partition, the position last committed by this run.
    committed: BTreeMap<i32, i64>,
    /// Per partition told "end of partition" since its last record: the
    /// high watermark it had then.
    eof_high: BTreeMap<i32, i64>,
}

impl TableReader {
    /// Assigns every partition of the table's topic from the beginning and
    /// reads the group's committed position for them (where dead letters
    /// stopped); nothing is read yet.
    pub fn open(
        index: u16,
        source: Source,
        schema: Arc<RecordSchema>,
        topology: &Topology,
        brokers: &str,
    ) -> Result<TableReader, EngineError> {
        let decoder =
            EventDecoder::for_source(schema.clone(), &source.decode).map_err(EngineError::Check)?;
        let key_field = source.key_field.clone().unwrap_or_default();
        let key_column = schema.field_index(&key_field).ok_or_else(|| {
            EngineError::Check(vec![format!(
                "{}.key_field: {key_field:?} is not a column",
                source.path
            )])
        })?;
        let mut config = super::consumer_config(
            brokers,
            &topology.kafka.group_id,
            &topology.kafka.properties,
        );
        // Only a catch-up fetches (paused otherwise), and it waits for every
        // answer: a fetch that reaches the end must not idle on the broker.
        if !topology.kafka.properties.contains_key("fetch.wait.max.ms") {
            config.set("fetch.wait.max.ms", "10");
        }
        let consumer: super::EngineConsumer = config
            .create_with_context(super::EngineContext::default())
            .map_err(EngineError::Consumer)?;
        let metadata = consumer
            .fetch_metadata(Some(&source.topic), METADATA_WAIT)
            .map_err(EngineError::Consumer)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == source.topic)
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(EngineError::Check(vec![format!(
                "{}.topic: {:?} has no partitions (does it exist?)",
                source.path, source.topic
            )]));
        }
        let mut tpl = TopicPartitionList::new();
        for &p in &partitions {
            tpl.add_partition(&source.topic, p);
        }
        let routed_through: BTreeMap<i32, i64> = consumer
            .committed_offsets(tpl.clone(), METADATA_WAIT)
            .map_err(EngineError::Consumer)?
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect();
        for &p in &partitions {
            tpl.set_partition_offset(&source.topic, p, Offset::Beginning)
                .map_err(EngineError::Consumer)?;
        }
        consumer.assign(&tpl).map_err(EngineError::Consumer)?;
        Ok(TableReader {
            index,
            state: TableState::new(schema.arrow_schema()),
            source,
            consumer,
            decoder,
            key_column,
            next: partitions.iter().map(|&p| (p, 0)).collect(),
            committed: routed_through.clone(),
            routed_through,
            eof_high: BTreeMap::new(),
        })
    }

    /// Reads every partition up to the end the broker reports now (its high
    /// watermark, or the end of what a read-committed consumer may read),
    /// folding each record into the state. Returns the records that did not
    /// decode and that no earlier run has routed.
    ///
    /// The partitions stay paused between catch-ups: a consumer with nothing
    /// to read keeps a fetch waiting on the broker (up to
    /// `fetch.wait.max.ms`), and each watermark request queued behind it on
    /// the same connection; with six table partitions that cost 3 s per
    /// window. Paused, nothing is in flight when the next window asks, and
    /// nothing is prefetched between windows.
    pub fn catch_up(&mut self) -> Result<Vec<BadRecord>, EngineError> {
        let bad = self.read_to_end();
        let all = self.partitions();
        self.consumer.pause(&all).map_err(EngineError::Consumer)?;
        bad
    }

    /// Per partition, the end the broker reports now, in one request for
    /// every partition (a ListOffsets for the latest offset, which for this
    /// read-committed consumer is the last stable offset): one round trip,
    /// where a watermark query per partition cost two each.
    fn ends(&self) -> Result<BTreeMap<i32, i64>, EngineError> {
        let mut latest = TopicPartitionList::new();
        for &p in self.next.keys() {
            latest
                .add_partition_offset(&self.source.topic, p, Offset::End)
                .map_err(EngineError::Consumer)?;
        }
        let answer = self
            .consumer
            .offsets_for_times(latest, METADATA_WAIT)
            .map_err(EngineError::Consumer)?;
        let mut ends = BTreeMap::new();
        for e in answer.elements() {
            match e.offset() {
                Offset::Offset(o) => {
                    ends.insert(e.partition(), o);
                }
                other => {
                    return Err(EngineError::Consumer(
                        rdkafka::error::KafkaError::Subscription(format!(
                            "table source {}: no end offset for {} partition {} ({other:?})",
                            self.source.name,
                            self.source.topic,
                            e.partition()
                        )),
                    ));
                }
            }
        }
        Ok(ends)
    }

    fn partitions(&self) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for &p in self.next.keys() {
            tpl.add_partition(&self.source.topic, p);
        }
        tpl
    }

    fn read_to_end(&mut self) -> Result<Vec<BadRecord>, EngineError> {
        let started = Instant::now();
        let targets = self.ends()?;
        self.consumer
            .resume(&self.partitions())
            .map_err(EngineError::Consumer)?;
        let mut bad = Vec::new();
        // At its end: read up to the high watermark, or told "end of
        // partition" with the high watermark unchanged since (a
        // read-committed consumer stops before an open transaction; a
        // compacted partition's last offsets may be gone).
        let done = |next: &BTreeMap<i32, i64>, eof_high: &BTreeMap<i32, i64>| {
            targets
                .iter()
                .all(|(p, &high)| next[p] >= high || eof_high.get(p) == Some(&high))
        };
        while !done(&self.next, &self.eof_high) {
            if started.elapsed() > CATCH_UP_LIMIT {
                return Err(EngineError::Consumer(
                    rdkafka::error::KafkaError::Subscription(format!(
                        "table source {}: not caught up with {} after {} s",
                        self.source.name,
                        self.source.topic,
                        CATCH_UP_LIMIT.as_secs()
                    )),
                ));
            }
            match self.consumer.poll(POLL_WAIT) {
                Some(Ok(msg)) => {
                    let (p, offset) = (msg.partition(), msg.offset());
                    self.next.insert(p, offset + 1);
                    self.eof_high.remove(&p);
                    let routed = offset < self.routed_through.get(&p).copied().unwrap_or(0);
                    match msg.payload() {
                        None => {
                            if let Some(key) = msg.key().and_then(|k| std::str::from_utf8(k).ok()) {
                                self.state.delete(key);
                            }
                        }
                        Some(payload) => {
                            if let Err(error) = apply(
                                &mut self.decoder,
                                &mut self.state,
                                self.key_column,
                                payload,
                                p,
                                offset,
                            ) && !routed
                            {
                                bad.push(BadRecord {
                                    source: self.index,
                                    partition: p,
                                    offset,
                                    key: msg.key().map(<[u8]>::to_vec),
                                    payload: payload.to_vec(),
                                    headers: owned_headers(&msg),
                                    error,
                                });
                            }
                        }
                    }
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                    if let Some(&high) = targets.get(&p) {
                        self.eof_high.insert(p, high);
                    }
                }
                Some(Err(e)) => return Err(EngineError::Consumer(e)),
                None => {}
            }
        }
        Ok(bad)
    }

    /// Partitions whose read position moved since the last commit: (topic,
    /// partition) → (next offset, no metadata).
    fn uncommitted(&self) -> Vec<(i32, i64)> {
        self.next
            .iter()
            .filter(|(p, n)| self.committed.get(p).is_none_or(|c| c < n))
            .map(|(&p, &n)| (p, n))
            .collect()
    }
}

/// Decodes one record into a one-row batch and makes it its key's newest
/// version. A row without a key is refused: it could never be found or
/// deleted.
fn apply(
    decoder: &mut EventDecoder,
    state: &mut TableState,
    key_column: usize,
    payload: &[u8],
    partition: i32,
    offset: i64,
) -> Result<(), DecodeError> {
    let time_ms = decoder.decode(payload, partition, offset)?;
    let row = decoder.finish().batch;
    let key = key_text(&row, key_column, 0).ok_or_else(|| DecodeError::Field {
        field: row.schema().field(key_column).name().clone(),
        expected: "a value: it is the table's key (key_field)".into(),
    })?;
    state.upsert(key, time_ms, row);
    Ok(())
}

fn owned_headers(msg: &rdkafka::message::BorrowedMessage<'_>) -> Vec<(String, Vec<u8>)> {
    msg.headers()
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    (
                        h.key.to_string(),
                        h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every table source of the topology.
pub struct Tables {
    pub readers: Vec<TableReader>,
}

impl Tables {
    /// Opens a reader per table source and rebuilds each state from its
    /// topic.
    pub fn open(
        sources: &[(Source, Arc<RecordSchema>)],
        topology: &Topology,
        brokers: &str,
    ) -> Result<(Tables, Vec<BadRecord>), EngineError> {
        let mut readers = Vec::new();
        let mut bad = Vec::new();
        for (i, (s, schema)) in sources.iter().enumerate() {
            if s.kind != SourceKind::Table {
                continue;
            }
            let mut reader =
                TableReader::open(i as u16, s.clone(), schema.clone(), topology, brokers)?;
            bad.extend(reader.catch_up()?);
            tracing::info!(topology = %topology.name, source = %s.name, keys = reader.state.len(),
                           "table state rebuilt from its topic");
            readers.push(reader);
        }
        Ok((Tables { readers }, bad))
    }

    /// Every table caught up with its topic (see [`TableReader::catch_up`]).
    pub fn catch_up(&mut self) -> Result<Vec<BadRecord>, EngineError> {
        let mut bad = Vec::new();
        for r in &mut self.readers {
            bad.extend(r.catch_up()?);
        }
        Ok(bad)
    }

    /// Per table source index, the state a window ending at `end_ms` sees.
    pub fn as_of(&mut self, end_ms: i64) -> Result<BTreeMap<u16, RecordBatch>, ArrowError> {
        self.readers
            .iter_mut()
            .map(|r| Ok((r.index, r.state.as_of(end_ms)?)))
            .collect()
    }

    /// The read positions to commit with the next transaction: its dead
    /// letters include every bad record before them.
    pub fn commit_offsets(&self) -> Vec<((String, i32), (i64, String))> {
        self.readers
            .iter()
            .flat_map(|r| {
                r.uncommitted()
                    .into_iter()
                    .map(|(p, n)| ((r.source.topic.clone(), p), (n, String::new())))
            })
            .collect()
    }

    /// The transaction carrying [`commit_offsets`](Self::commit_offsets)
    /// committed.
    pub fn committed(&mut self, offsets: &BTreeMap<(String, i32), (i64, String)>) {
        for r in &mut self.readers {
            for &p in r.next.keys() {
                if let Some(&(n, _)) = offsets.get(&(r.source.topic.clone(), p)) {
                    let c = r.committed.entry(p).or_insert(n);
                    *c = (*c).max(n);
                }
            }
        }
    }

    /// Keys per table, for the gauge.
    pub fn sizes(&self) -> Vec<(String, usize)> {
        self.readers
            .iter()
            .map(|r| (r.source.name.clone(), r.state.len()))
            .collect()
    }
}

#[cfg(test)]
mod tests;
