//! Everything the engine writes to Kafka for one closed window — synthetic
//! records, quarantined batches, dead letters, alerts — goes out in one Kafka
//! transaction together with the source offsets those outputs account for.
//!
//! So a crash at any point either commits a window's outputs and its offsets
//! together, or neither: on restart the window is re-read and re-processed,
//! and read-committed consumers never see a half-written or duplicated batch.

pub mod alerts;
pub mod fhir;
pub mod files;
pub mod lineage;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

pub use lineage::{Lineage, header_names};

const TXN_TIMEOUT: Duration = Duration::from_secs(60);
/// The producer's `message.max.bytes` (set after `kafka.properties`, so it
/// is the effective value): synthetic batches are small, and dead letters
/// are sized to their topic's own, usually smaller, limit
/// (`engine::dead_letter`).
pub const PRODUCER_MAX_MESSAGE_BYTES: usize = 10_000_000;

/// A record to write, with its headers.
#[derive(Debug, Clone)]
pub struct OutRecord {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot create the transactional producer: {0}")]
    Create(KafkaError),
    #[error("init_transactions failed (is the broker reachable?): {0}")]
    Init(String),
    #[error("transaction aborted while {during}: {source}")]
    Aborted { during: String, source: KafkaError },
    #[error("producer is fenced or in a fatal state; another instance took over: {0}")]
    Fatal(KafkaError),
}

/// The transactional producer.
pub struct Publisher {
    producer: BaseProducer,
}

impl Publisher {
    /// Creates the producer and initialises transactions (fencing any older
    /// instance with the same transactional id).
    pub fn new(
        brokers: &str,
        transactional_id: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<Publisher, SinkError> {
        let mut config = ClientConfig::new();
        for (k, v) in properties {
            config.set(k, v);
        }
        config
            .set("bootstrap.servers", brokers)
            .set("transactional.id", transactional_id)
            .set("enable.idempotence", "true")
            .set("message.max.bytes", PRODUCER_MAX_MESSAGE_BYTES.to_string())
            .set("queue.buffering.max.messages", "1000000")
            .set("linger.ms", "5");
        let producer: BaseProducer = config.create().map_err(SinkError::Create)?;
        producer.init_transactions(TXN_TIMEOUT).map_err(|e| {
            SinkError::Init(format!(
                "transactional.id {transactional_id:?} at {brokers}: {e}"
            ))
        })?;
        Ok(Publisher { producer })
    }

    /// Writes `records` and commits `offsets` for `group` atomically.
    /// `offsets` maps (topic, partition) to the next offset to read and the
    /// commit metadata (the engine's resume state, committed with the offset).
    pub fn commit(
        &self,
        records: &[OutRecord],
        offsets: &BTreeMap<(String, i32), (i64, String)>,
        group: &ConsumerGroupMetadata,
    ) -> Result<(), SinkError> {
        self.producer
            .begin_transaction()
            .map_err(|e| self.fail("beginning", e))?;
        if let Err(e) = self.send_all(records) {
            return Err(self.abort("sending records", e));
        }
        if !offsets.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for ((topic, partition), (offset, metadata)) in offsets {
                let mut elem = tpl.add_partition(topic, *partition);
                if let Err(e) = elem.set_offset(Offset::Offset(*offset)) {
                    return Err(self.abort("preparing offsets", e));
                }
                elem.set_metadata(metadata.as_str());
            }
            if let Err(e) = self
                .producer
                .send_offsets_to_transaction(&tpl, group, TXN_TIMEOUT)
            {
                return Err(self.abort("adding offsets", e));
            }
        }
        crate::kill_point::reached("before_commit");
        if let Err(e) = self.producer.commit_transaction(TXN_TIMEOUT) {
            return Err(self.abort("committing", e));
        }
        Ok(())
    }

    fn send_all(&self, records: &[OutRecord]) -> Result<(), KafkaError> {
        for r in records {
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for (k, v) in &r.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_slice()),
                });
            }
            let mut record = BaseRecord::<[u8], [u8]>::to(&r.topic)
                .payload(r.payload.as_slice())
                .headers(headers);
            if let Some(k) = &r.key {
                record = record.key(k.as_slice());
            }
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        self.producer.poll(Duration::from_millis(50));
                    }
                    Err((e, _)) => return Err(e),
                }
            }
            self.producer.poll(Duration::ZERO);
        }
        self.producer.flush(TXN_TIMEOUT)
    }

    fn abort(&self, during: &str, error: KafkaError) -> SinkError {
        if let Err(e) = self.producer.abort_transaction(TXN_TIMEOUT) {
            return SinkError::Fatal(e);
        }
        SinkError::Aborted {
            during: during.to_string(),
            source: error,
        }
    }

    fn fail(&self, during: &str, error: KafkaError) -> SinkError {
        if let KafkaError::Transaction(ref e) = error
            && e.is_fatal()
        {
            return SinkError::Fatal(error);
        }
        SinkError::Aborted {
            during: during.to_string(),
            source: error,
        }
    }
}
