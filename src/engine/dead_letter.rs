//! Dead letters and late events that always fit on their topic.
//!
//! A routed message is the original bytes plus our `resynth.*` headers, so a
//! payload the source topic just accepted can exceed what the dead-letter
//! topic accepts. The broker would then reject the record, the transaction
//! holding it would abort, and every restart would re-read the same event and
//! abort again: a poison pill that stops the pipeline for good. So before a
//! record joins a transaction it is sized against the smallest of the
//! producer's `message.max.bytes` and the destination topic's
//! `max.message.bytes` (described at start; the broker default when it cannot
//! be described), less a safety margin for Kafka's framing. A payload that
//! does not fit is cut to what fits and marked, with its original size and
//! SHA-256 digest in headers, so it is still accounted for and verifiable.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::sink::OutRecord;

/// Kafka's default `message.max.bytes` (broker) and `max.message.bytes`
/// (topic): 1 MiB plus the record batch overhead.
pub const BROKER_DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;
/// Room left under the limit for Kafka's framing: the record batch header
/// (61 bytes), the record's varints (at most ~30 bytes) and each header's two
/// length varints are far below it, so a record sized to the budget is
/// accepted whatever librdkafka batches it with (`batch.size` caps a batch
/// of several messages at 1,000,000 bytes; a larger message goes alone).
pub const SAFETY_MARGIN: usize = 1024;
/// Per header: two length varints.
const HEADER_FRAMING: usize = 10;

/// Marks a cut payload; its value is `true`.
pub const TRUNCATED: &str = "resynth.payload.truncated";
/// Why the payload was cut (sizes and limits only, never its contents).
pub const TRUNCATED_REASON: &str = "resynth.payload.truncated_reason";
/// Size of the original payload in bytes.
pub const ORIGINAL_BYTES: &str = "resynth.payload.original_bytes";
/// Lowercase hex SHA-256 of the whole original payload.
pub const ORIGINAL_SHA256: &str = "resynth.payload.sha256";
/// Set when the source message's own headers had to be dropped to fit:
/// how many and how many bytes.
pub const HEADERS_DROPPED: &str = "resynth.source.headers_dropped";
/// Set when the source key had to be dropped to fit: its size and digest.
pub const KEY_DROPPED: &str = "resynth.source.key_dropped";

/// The byte limit of each routing topic.
#[derive(Debug, Clone)]
pub struct Limits {
    producer_max: usize,
    topics: BTreeMap<String, usize>,
}

impl Limits {
    /// Limits with every topic at `topic_max` (tests, and the fallback).
    pub fn uniform(producer_max: usize, topic_max: usize, topics: &[&str]) -> Limits {
        Limits {
            producer_max,
            topics: topics.iter().map(|t| (t.to_string(), topic_max)).collect(),
        }
    }

    /// Largest record (key, value, headers and framing) `topic` accepts.
    pub fn for_topic(&self, topic: &str) -> usize {
        self.topics
            .get(topic)
            .copied()
            .unwrap_or(BROKER_DEFAULT_MAX_MESSAGE_BYTES)
            .min(self.producer_max)
    }

    /// Describes each topic's `max.message.bytes` through the admin client.
    /// A topic that cannot be described (not created yet, or the principal
    /// lacks DESCRIBE_CONFIGS on it) gets the broker default, logged: a
    /// broker configured below it would still reject an oversized record.
    pub fn discover(
        brokers: &str,
        properties: &BTreeMap<String, String>,
        topics: &[&str],
        producer_max: usize,
        rt: &tokio::runtime::Handle,
    ) -> Limits {
        let mut limits = Limits::uniform(producer_max, BROKER_DEFAULT_MAX_MESSAGE_BYTES, topics);
        let mut config = ClientConfig::new();
        for (k, v) in properties {
            config.set(k, v);
        }
        let admin: AdminClient<DefaultClientContext> = match config
            .set("bootstrap.servers", brokers)
            .create()
        {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "cannot create an admin client; dead letters sized to the broker default");
                return limits;
            }
        };
        let specs: Vec<ResourceSpecifier> =
            topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
        let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
        match rt.block_on(admin.describe_configs(&specs, &options)) {
            Err(e) => {
                warn!(error = %e, "cannot describe the dead-letter and late topics; dead letters sized to the broker default")
            }
            Ok(results) => {
                for (topic, result) in topics.iter().zip(results) {
                    let value = result.as_ref().ok().and_then(|r| {
                        r.get("max.message.bytes")
                            .and_then(|e| e.value.as_deref())
                            .and_then(|v| v.parse::<usize>().ok())
                    });
                    match (value, result) {
                        (Some(v), _) => {
                            info!(topic, max_message_bytes = v, "routing topic limit");
                            limits.topics.insert(topic.to_string(), v);
                        }
                        (None, Err(code)) => {
                            warn!(topic, error = ?code, default = BROKER_DEFAULT_MAX_MESSAGE_BYTES,
                                  "cannot describe max.message.bytes; using the broker default")
                        }
                        (None, Ok(_)) => {
                            warn!(
                                topic,
                                default = BROKER_DEFAULT_MAX_MESSAGE_BYTES,
                                "no max.message.bytes in the topic config; using the broker default"
                            )
                        }
                    }
                }
            }
        }
        limits
    }
}

/// Bytes a record takes on the wire, framing aside (see [`SAFETY_MARGIN`]).
pub fn record_bytes(r: &OutRecord) -> usize {
    r.payload.len()
        + r.key.as_ref().map_or(0, Vec::len)
        + r.headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + HEADER_FRAMING)
            .sum::<usize>()
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Makes `record` fit under `limit` bytes. Its first `own_headers` headers
/// are ours (kept whatever happens); the rest are the source message's.
/// When it does not fit, the payload is cut to the room left and the cut is
/// described in headers; should the key and source headers alone leave no
/// room, the source headers and then the key are dropped too (described by
/// size and digest). Returns whether anything was cut.
pub fn fit(record: &mut OutRecord, own_headers: usize, limit: usize) -> bool {
    let budget = limit.saturating_sub(SAFETY_MARGIN);
    if record_bytes(record) <= budget {
        return false;
    }
    let original = record.payload.len();
    let digest = hex_sha256(&record.payload);
    let topic = record.topic.clone();
    // Our own marker headers, with the widest values they can take, so the
    // room computed below holds once they are filled in.
    let reason_for = |kept: usize| {
        format!(
            "payload of {original} bytes does not fit the {limit}-byte limit of topic {topic:?} \
             with its key, headers and a {SAFETY_MARGIN}-byte margin; its first {kept} bytes are kept"
        )
    };
    let marker_bytes = [
        (TRUNCATED, "true".len()),
        (TRUNCATED_REASON, reason_for(usize::MAX).len()),
        (ORIGINAL_BYTES, usize::MAX.to_string().len()),
        (ORIGINAL_SHA256, 64),
    ]
    .iter()
    .map(|(k, v)| k.len() + v + HEADER_FRAMING)
    .sum::<usize>();
    let envelope = |r: &OutRecord| record_bytes(r) - r.payload.len() + marker_bytes;
    if envelope(record) > budget && record.headers.len() > own_headers {
        let dropped: Vec<(String, Vec<u8>)> = record.headers.split_off(own_headers);
        let bytes: usize = dropped.iter().map(|(k, v)| k.len() + v.len()).sum();
        record.headers.push((
            HEADERS_DROPPED.to_string(),
            format!("{} header(s), {bytes} bytes", dropped.len()).into_bytes(),
        ));
    }
    if envelope(record) > budget
        && let Some(key) = record.key.take()
    {
        record.headers.push((
            KEY_DROPPED.to_string(),
            format!("{} bytes, sha256 {}", key.len(), hex_sha256(&key)).into_bytes(),
        ));
    }
    let kept = budget.saturating_sub(envelope(record)).min(original);
    if kept == original {
        // Dropping the source's key or headers was enough.
        return true;
    }
    record.payload.truncate(kept);
    record.headers.extend([
        (TRUNCATED.to_string(), b"true".to_vec()),
        (TRUNCATED_REASON.to_string(), reason_for(kept).into_bytes()),
        (
            ORIGINAL_BYTES.to_string(),
            original.to_string().into_bytes(),
        ),
        (ORIGINAL_SHA256.to_string(), digest.into_bytes()),
    ]);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(payload: usize, key: usize, source_headers: &[(usize, usize)]) -> OutRecord {
        let mut headers = vec![
            ("resynth.error".to_string(), b"not avro".to_vec()),
            ("resynth.source.offset".to_string(), b"12".to_vec()),
        ];
        for (i, &(k, v)) in source_headers.iter().enumerate() {
            headers.push((format!("h{i}{}", "k".repeat(k)), vec![7; v]));
        }
        OutRecord {
            topic: "t.dlq".into(),
            key: (key > 0).then(|| vec![b'k'; key]),
            payload: (0..payload).map(|i| (i * 31 % 251) as u8).collect(),
            headers,
        }
    }

    fn header<'a>(r: &'a OutRecord, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| std::str::from_utf8(v).unwrap())
    }

    #[test]
    fn a_record_that_fits_is_left_alone() {
        let mut r = record(1000, 10, &[(3, 40)]);
        let before = r.clone();
        assert!(!fit(&mut r, 2, BROKER_DEFAULT_MAX_MESSAGE_BYTES));
        assert_eq!(r.payload, before.payload);
        assert_eq!(r.headers, before.headers);
        assert_eq!(r.key, before.key);
    }

    #[test]
    fn the_exact_budget_fits_and_one_byte_more_is_cut() {
        let limit = 10_000;
        let mut r = record(0, 5, &[]);
        let room = limit - SAFETY_MARGIN - record_bytes(&r);
        let mut at = record(room, 5, &[]);
        assert!(!fit(&mut at, 2, limit), "exactly the budget fits");
        let mut over = record(room + 1, 5, &[]);
        let original = over.payload.clone();
        assert!(fit(&mut over, 2, limit));
        assert!(record_bytes(&over) <= limit - SAFETY_MARGIN);
        assert!(original.starts_with(&over.payload), "a prefix is kept");
        r = over;
        assert_eq!(header(&r, TRUNCATED), Some("true"));
        assert_eq!(header(&r, ORIGINAL_BYTES), Some(&*(room + 1).to_string()));
        assert_eq!(header(&r, ORIGINAL_SHA256), Some(&*hex_sha256(&original)));
        assert_eq!(
            r.key.as_deref(),
            Some(&b"kkkkk"[..]),
            "the key fits and stays"
        );
    }

    #[test]
    fn a_megabyte_payload_is_cut_to_the_room_left_and_stays_verifiable() {
        let mut r = record(1_048_576 + 100, 36, &[(10, 200)]);
        let original = r.payload.clone();
        assert!(fit(&mut r, 2, BROKER_DEFAULT_MAX_MESSAGE_BYTES));
        let size = record_bytes(&r);
        assert!(
            size <= BROKER_DEFAULT_MAX_MESSAGE_BYTES - SAFETY_MARGIN,
            "{size}"
        );
        // Nothing wasted: the cut leaves less than the marker headers' slack.
        assert!(
            size + 200 > BROKER_DEFAULT_MAX_MESSAGE_BYTES - SAFETY_MARGIN,
            "{size}"
        );
        assert_eq!(&original[..r.payload.len()], &r.payload[..]);
        assert_eq!(
            header(&r, ORIGINAL_SHA256).unwrap(),
            hex_sha256(&original),
            "the digest is of the whole original payload"
        );
        let reason = header(&r, TRUNCATED_REASON).unwrap();
        assert!(
            reason.contains(&format!("first {} bytes", r.payload.len())),
            "{reason}"
        );
        assert!(reason.contains("1048676 bytes"), "{reason}");
        // Our headers and the source's stay.
        assert_eq!(header(&r, "resynth.error"), Some("not avro"));
        assert!(r.headers.iter().any(|(k, _)| k.starts_with("h0")));
        assert!(header(&r, HEADERS_DROPPED).is_none());
    }

    #[test]
    fn oversized_source_headers_and_key_are_dropped_but_described() {
        let limit = 4096;
        let mut r = record(100, 3000, &[(5, 3000), (5, 10)]);
        assert!(fit(&mut r, 2, limit));
        assert!(record_bytes(&r) <= limit - SAFETY_MARGIN);
        assert_eq!(header(&r, HEADERS_DROPPED), Some("2 header(s), 3024 bytes"));
        assert!(
            header(&r, KEY_DROPPED)
                .unwrap()
                .starts_with("3000 bytes, sha256 ")
        );
        assert_eq!(r.key, None);
        assert_eq!(
            header(&r, "resynth.error"),
            Some("not avro"),
            "ours are kept"
        );
        assert_eq!(r.payload.len(), 100, "the payload fits once they are gone");
        assert!(header(&r, TRUNCATED).is_none(), "and is not marked cut");
        // The headers alone fit: the key is kept, only the headers go.
        let mut r = record(100, 10, &[(5, 3000)]);
        assert!(fit(&mut r, 2, limit));
        assert!(header(&r, KEY_DROPPED).is_none());
        assert!(header(&r, HEADERS_DROPPED).is_some());
    }

    #[test]
    fn the_smallest_of_producer_and_topic_limit_applies() {
        let l = Limits::uniform(10_000_000, 2_000_000, &["a"]);
        assert_eq!(l.for_topic("a"), 2_000_000);
        assert_eq!(l.for_topic("unknown"), BROKER_DEFAULT_MAX_MESSAGE_BYTES);
        let l = Limits::uniform(500_000, 2_000_000, &["a"]);
        assert_eq!(l.for_topic("a"), 500_000);
    }
}
