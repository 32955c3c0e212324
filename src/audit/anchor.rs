//! Anchoring the audit log in Kafka, so a truncated tail or a wholesale
//! rewrite of the log shows.
//!
//! A hash chain proves that what is in the log was not edited in place, but
//! whoever can write the file can cut its tail off or recompute every hash.
//! So every record of a publishing transaction (synthetic and quarantined
//! batches) carries the log's head at that moment, `resynth.audit_head` =
//! `<seq>:<sha256>`, written by the broker under the topic's own retention
//! and ACLs. `resynth audit verify --brokers` then checks the log against
//! every anchor on the topics: each anchored entry must still be there with
//! the same hash (a rewrite changes it), and each batch on a topic must
//! have its entry in the log after its anchor (a truncation loses it).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use serde::Serialize;

use super::AuditEntry;

/// Header carrying the audit log's head.
pub const HEADER: &str = "resynth.audit_head";

/// Header value for a log head.
pub fn header_value(seq: u64, hash: &str) -> Vec<u8> {
    format!("{seq}:{hash}").into_bytes()
}

/// One batch as seen on a topic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anchored {
    pub topic: String,
    pub batch_id: String,
    pub anchor_seq: u64,
    pub anchor_hash: String,
    /// Offsets of its records on the topic (first, last, count).
    pub first_offset: i64,
    pub last_offset: i64,
    pub records: usize,
    pub partition: i32,
}

/// The verdict of checking a log against its anchors.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AnchorReport {
    pub entries: usize,
    pub anchors: usize,
    pub batches: usize,
    /// Entries after the last anchor: not yet protected by one.
    pub unanchored_tail: usize,
    pub problems: Vec<String>,
}

/// Reads every committed record of `topics` (all partitions, from the
/// start to the high watermark) and groups the anchored ones by batch.
pub fn scan(
    brokers: &str,
    topics: &[String],
    properties: &BTreeMap<String, String>,
) -> Result<Vec<Anchored>, String> {
    let mut config = ClientConfig::new();
    for (k, v) in properties {
        config.set(k, v);
    }
    let consumer: BaseConsumer = config
        .set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("resynth-anchor-check-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .map_err(|e| format!("kafka client at {brokers}: {e}"))?;
    let mut batches: BTreeMap<(String, String), Anchored> = BTreeMap::new();
    for topic in topics {
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map_err(|e| format!("metadata of {topic} at {brokers}: {e}"))?;
        let Some(t) = md.topics().first() else {
            continue;
        };
        if t.error().is_some() {
            continue;
        }
        let mut tpl = rdkafka::TopicPartitionList::new();
        let mut pending = std::collections::BTreeSet::new();
        for p in t.partitions() {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .map_err(|e| format!("watermarks of {topic}/{}: {e}", p.id()))?;
            if high > low {
                tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning)
                    .map_err(|e| e.to_string())?;
                pending.insert(p.id());
            }
        }
        if pending.is_empty() {
            continue;
        }
        consumer.assign(&tpl).map_err(|e| e.to_string())?;
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while !pending.is_empty() {
            if std::time::Instant::now() > deadline {
                return Err(format!("timed out reading {topic}"));
            }
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    let header = |name: &str| {
                        m.headers().and_then(|h| {
                            h.iter()
                                .find(|x| x.key == name)
                                .and_then(|x| x.value)
                                .map(|v| String::from_utf8_lossy(v).into_owned())
                        })
                    };
                    let (Some(anchor), Some(batch)) = (header(HEADER), header("resynth.batch_id"))
                    else {
                        continue;
                    };
                    let Some((seq, hash)) = anchor.split_once(':') else {
                        continue;
                    };
                    let seq: u64 = seq.parse().unwrap_or(0);
                    let e = batches
                        .entry((topic.clone(), batch.clone()))
                        .or_insert_with(|| Anchored {
                            topic: topic.clone(),
                            batch_id: batch.clone(),
                            anchor_seq: seq,
                            anchor_hash: hash.to_string(),
                            first_offset: m.offset(),
                            last_offset: m.offset(),
                            records: 0,
                            partition: m.partition(),
                        });
                    e.first_offset = e.first_offset.min(m.offset());
                    e.last_offset = e.last_offset.max(m.offset());
                    e.records += 1;
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                    pending.remove(&p);
                }
                Some(Err(e)) => return Err(format!("reading {topic}: {e}")),
                None => {}
            }
        }
    }
    Ok(batches.into_values().collect())
}

/// Checks a verified log against the anchors found on the topics.
pub fn check(entries: &[AuditEntry], anchored: &[Anchored]) -> AnchorReport {
    let mut report = AnchorReport {
        entries: entries.len(),
        batches: anchored.len(),
        ..Default::default()
    };
    let mut anchors: BTreeMap<u64, &str> = BTreeMap::new();
    for a in anchored {
        anchors.insert(a.anchor_seq, &a.anchor_hash);
    }
    report.anchors = anchors.len();
    for (&seq, &hash) in &anchors {
        if seq == 0 {
            continue; // anchored on an empty log
        }
        match entries.get(seq as usize - 1) {
            None => report.problems.push(format!(
                "truncated: the topics anchor entry {seq}, the log ends at entry {}",
                entries.len()
            )),
            Some(e) if e.hash != hash => report.problems.push(format!(
                "rewritten: entry {seq} hashes to {}, the topics anchored {hash}",
                e.hash
            )),
            Some(_) => {}
        }
    }
    for a in anchored {
        let kinds = ["batch_published", "batch_quarantined", "release_published"];
        let found = entries.iter().find(|e| {
            kinds.contains(&e.kind.as_str()) && e.data["batch_id"].as_str() == Some(&a.batch_id)
        });
        match found {
            None => report.problems.push(format!(
                "truncated: batch {} ({} records on {} at offsets {}-{}) has no entry in the log",
                a.batch_id, a.records, a.topic, a.first_offset, a.last_offset
            )),
            Some(e) if e.seq <= a.anchor_seq => report.problems.push(format!(
                "rewritten: batch {} is recorded at entry {}, before its anchor {}",
                a.batch_id, e.seq, a.anchor_seq
            )),
            Some(_) => {}
        }
    }
    let last = anchors.keys().next_back().copied().unwrap_or(0);
    report.unanchored_tail = entries.len().saturating_sub(last as usize);
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditLog;

    /// A log of three batches, each anchored on the head before its entry.
    fn setup() -> (tempfile::TempDir, Vec<Anchored>) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
        let mut anchored = Vec::new();
        for i in 0..3 {
            log.append("t", "model_fitted", serde_json::json!({"v": i}))
                .unwrap();
            let (seq, hash) = log.head();
            anchored.push(Anchored {
                topic: "out".into(),
                batch_id: format!("b{i}"),
                anchor_seq: seq,
                anchor_hash: hash.to_string(),
                first_offset: i * 10,
                last_offset: i * 10 + 9,
                records: 10,
                partition: 0,
            });
            log.append(
                "t",
                "batch_published",
                serde_json::json!({"batch_id": format!("b{i}")}),
            )
            .unwrap();
        }
        (dir, anchored)
    }

    #[test]
    fn an_intact_log_matches_its_anchors() {
        let (dir, anchored) = setup();
        let entries = crate::audit::verify(&dir.path().join("audit.jsonl")).unwrap();
        let r = check(&entries, &anchored);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!((r.anchors, r.batches, r.unanchored_tail), (3, 3, 1));
    }

    #[test]
    fn a_truncated_tail_is_caught_though_the_chain_still_verifies() {
        let (dir, anchored) = setup();
        let path = dir.path().join("audit.jsonl");
        let text = std::fs::read_to_string(&path).unwrap();
        let kept: Vec<&str> = text.lines().take(5).collect();
        std::fs::write(&path, format!("{}\n", kept.join("\n"))).unwrap();
        let entries = crate::audit::verify(&path).expect("a cut chain still verifies");
        let r = check(&entries, &anchored);
        assert!(
            r.problems
                .iter()
                .any(|p| p.contains("batch b2") && p.starts_with("truncated")),
            "{:?}",
            r.problems
        );
    }

    #[test]
    fn a_rewritten_log_with_a_valid_chain_is_caught() {
        let (dir, anchored) = setup();
        // Rewrite from scratch: same kinds, one value changed, every hash
        // recomputed, so the chain verifies.
        let path = dir.path().join("audit.jsonl");
        let old = crate::audit::verify(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let mut log = AuditLog::open(&path).unwrap();
        for e in &old {
            let mut data = e.data.clone();
            if e.kind == "model_fitted" && data["v"] == 1 {
                data["v"] = serde_json::json!(7);
            }
            log.append(&e.topology, &e.kind, data).unwrap();
        }
        let entries = crate::audit::verify(&path).expect("the rewritten chain verifies");
        let r = check(&entries, &anchored);
        assert!(
            r.problems.iter().any(|p| p.starts_with("rewritten: entry")),
            "{:?}",
            r.problems
        );
    }
}
