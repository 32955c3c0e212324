//! Whether a batch is already on the output topic: the check that makes a
//! held release's publication idempotent across a `kill -9`.
//!
//! A release approved after its window committed is published in a
//! transaction of its own, with no source offsets to carry engine state, and
//! only then recorded (`batch_published`). A kill between the two leaves the
//! batch on the topic and the release still held in the log; without this
//! check the next start would publish it again. Nothing else is produced
//! between the release's commit and its entry, so if it committed, its
//! records are the last committed ones of the partitions it wrote: reading
//! the tail of each partition (read_committed, so an aborted attempt does
//! not count) for the `resynth.batch_id` header settles it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

/// Offsets read back from each partition's end: the release's records, plus
/// its transaction marker, are the last of any partition they reached.
const TAIL: i64 = 32;
const TIMEOUT: Duration = Duration::from_secs(30);

/// Whether the last committed records of `topic` include one of `batch_id`.
pub(super) fn tail_holds_batch(
    brokers: &str,
    properties: &BTreeMap<String, String>,
    topic: &str,
    batch_id: &str,
) -> Result<bool, String> {
    // The source consumer's settings (read_committed, partition EOF, no
    // commits); the group is never joined, partitions are assigned.
    let consumer: BaseConsumer =
        super::consumer_config(brokers, "resynth-release-check", properties)
            .create()
            .map_err(|e| format!("kafka client at {brokers}: {e}"))?;
    let md = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .map_err(|e| format!("metadata of {topic}: {e}"))?;
    let Some(t) = md.topics().first().filter(|t| t.error().is_none()) else {
        return Ok(false);
    };
    let mut tpl = TopicPartitionList::new();
    let mut reading = std::collections::BTreeSet::new();
    for p in t.partitions() {
        let (low, high) = consumer
            .fetch_watermarks(topic, p.id(), TIMEOUT)
            .map_err(|e| format!("watermarks of {topic}/{}: {e}", p.id()))?;
        if high > low {
            tpl.add_partition_offset(topic, p.id(), Offset::Offset((high - TAIL).max(low)))
                .map_err(|e| e.to_string())?;
            reading.insert(p.id());
        }
    }
    if reading.is_empty() {
        return Ok(false);
    }
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    // The lineage headers' first: `resynth.batch_id`.
    let batch_header = crate::sink::header_names()[0];
    let deadline = Instant::now() + TIMEOUT;
    while !reading.is_empty() {
        if Instant::now() > deadline {
            return Err(format!("timed out reading the end of {topic}"));
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let ours = m.headers().is_some_and(|h| {
                    h.iter()
                        .any(|x| x.key == batch_header && x.value == Some(batch_id.as_bytes()))
                });
                if ours {
                    return Ok(true);
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                reading.remove(&p);
            }
            Some(Err(e)) => return Err(format!("reading {topic}: {e}")),
            None => {}
        }
    }
    Ok(false)
}
