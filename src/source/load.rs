//! Loads simulator events (plus optional corrupt and late ones) into a Kafka
//! topic, as an upstream EHR feed would: the demo and the integration tests
//! use it to give the engine a known stream.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::simulator::{
    LabEvent, Simulator, corrupt_payload, encode_event_avro, encode_event_json,
};
use crate::schema::RecordSchema;
use crate::topology::EventFormat;

/// What to load.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub windows: usize,
    /// Stop after this many good events in total.
    pub max_events: Option<usize>,
    /// Corrupt messages, spread evenly through the stream.
    pub corrupt: usize,
    /// Events of window 0 re-sent at the very end (they arrive after their
    /// window has closed, so the engine must treat them as late).
    pub late: usize,
    pub format: EventFormat,
}

/// What was loaded, so callers can check the engine accounted for all of it.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub good: usize,
    pub corrupt_payloads: Vec<Vec<u8>>,
    pub late: usize,
}

/// Produces the plan's events to `topic` and waits until all are acknowledged.
pub fn load_topic(
    brokers: &str,
    topic: &str,
    simulator: &Simulator,
    schema: &RecordSchema,
    plan: &LoadPlan,
) -> Result<Loaded, KafkaError> {
    load_topic_with(brokers, topic, simulator, schema, plan, &Default::default())
}

/// [`load_topic`] with extra librdkafka properties (e.g. a secured broker's).
pub fn load_topic_with(
    brokers: &str,
    topic: &str,
    simulator: &Simulator,
    schema: &RecordSchema,
    plan: &LoadPlan,
    properties: &std::collections::BTreeMap<String, String>,
) -> Result<Loaded, KafkaError> {
    let mut config = ClientConfig::new();
    for (k, v) in properties {
        config.set(k, v);
    }
    let producer: BaseProducer = config
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .set("enable.idempotence", "true")
        .create()?;
    let mut loaded = Loaded::default();
    let mut all: Vec<LabEvent> = Vec::new();
    for w in 0..plan.windows {
        all.extend(simulator.window_events(w));
        if plan.max_events.is_some_and(|m| all.len() >= m) {
            break;
        }
    }
    if let Some(m) = plan.max_events {
        all.truncate(m);
    }
    let late: Vec<LabEvent> = all.iter().take(plan.late).cloned().collect();
    let every = all
        .len()
        .checked_div(plan.corrupt)
        .map_or(usize::MAX, |e| e.max(1));
    let encode = |e: &LabEvent| -> Vec<u8> {
        match plan.format {
            EventFormat::Avro => {
                encode_event_avro(schema, e).expect("simulator events fit the schema")
            }
            EventFormat::Json => encode_event_json(e),
            EventFormat::Fhir => crate::schema::fhir::example::observation_bytes(e),
        }
    };
    let send = |key: &[u8], payload: &[u8]| -> Result<(), KafkaError> {
        let mut record = BaseRecord::to(topic).key(key).payload(payload);
        loop {
            match producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(20));
                }
                Err((e, _)) => return Err(e),
            }
        }
    };
    for (i, e) in all.iter().enumerate() {
        send(e.patient_id.as_bytes(), &encode(e))?;
        loaded.good += 1;
        if plan.corrupt > 0
            && i % every == every / 2
            && loaded.corrupt_payloads.len() < plan.corrupt
        {
            let bad = corrupt_payload(loaded.corrupt_payloads.len());
            send(b"corrupt", &bad)?;
            loaded.corrupt_payloads.push(bad);
        }
    }
    for e in &late {
        send(e.patient_id.as_bytes(), &encode(e))?;
        loaded.late += 1;
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(loaded)
}
