//! The downstream consumer registry: which consumer groups read a synthetic
//! topic, read from the broker itself at binder time.
//!
//! Every consumer group the broker knows is listed with its state and
//! members (client id and host), and its committed offset on each partition
//! of the topic. A group with a committed offset has read the topic; when
//! the release's records are known (their partition and last offset, from
//! the anchor scan), the registry also says whether the group has read past
//! them, i.e. received this release.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{Value, json};

fn client(
    brokers: &str,
    group: &str,
    properties: &std::collections::BTreeMap<String, String>,
) -> Result<BaseConsumer, String> {
    let mut c = ClientConfig::new();
    for (k, v) in properties {
        c.set(k, v);
    }
    c.set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| format!("kafka client at {brokers}: {e}"))
}

/// The registry for `topic`. `release` = (partition, last offset) of the
/// release's records, when known.
pub fn registry(
    brokers: &str,
    topic: &str,
    release: Option<(i32, i64)>,
    properties: &std::collections::BTreeMap<String, String>,
) -> Result<Value, String> {
    let admin = client(brokers, "resynth-consumer-registry", properties)?;
    let md = admin
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| format!("metadata of {topic}: {e}"))?;
    let partitions: Vec<i32> = md
        .topics()
        .first()
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    let mut high = std::collections::BTreeMap::new();
    for &p in &partitions {
        let (_, h) = admin
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .map_err(|e| format!("watermarks of {topic}/{p}: {e}"))?;
        high.insert(p, h);
    }
    let groups = admin
        .fetch_group_list(None, Duration::from_secs(10))
        .map_err(|e| format!("listing consumer groups at {brokers}: {e}"))?;
    let mut readers = Vec::new();
    let mut others = 0usize;
    for g in groups.groups() {
        let c = client(brokers, g.name(), properties)?;
        let mut tpl = rdkafka::TopicPartitionList::new();
        for &p in &partitions {
            tpl.add_partition(topic, p);
        }
        let committed = c
            .committed_offsets(tpl, Duration::from_secs(10))
            .map_err(|e| format!("committed offsets of group {}: {e}", g.name()))?;
        let offsets: Vec<(i32, i64)> = committed
            .elements()
            .iter()
            .filter_map(|e| {
                e.offset()
                    .to_raw()
                    .filter(|&o| o >= 0)
                    .map(|o| (e.partition(), o))
            })
            .collect();
        if offsets.is_empty() {
            others += 1;
            continue;
        }
        let received =
            release.map(|(part, last)| offsets.iter().any(|&(p, o)| p == part && o > last));
        readers.push(json!({
            "group": g.name(), "state": g.state(), "protocol_type": g.protocol_type(),
            "members": g.members().iter().map(|m| json!({"client_id": m.client_id(), "client_host": m.client_host()})).collect::<Vec<_>>(),
            "committed": offsets.iter().map(|(p, o)| json!({"partition": p, "offset": o,
                "lag": high.get(p).map(|h| (h - o).max(0))})).collect::<Vec<_>>(),
            "received_release": received,
        }));
    }
    Ok(json!({
        "topic": topic, "brokers": brokers, "read_at_ms": super::now_ms(),
        "release_records": release.map(|(p, o)| json!({"partition": p, "last_offset": o})),
        "groups_reading_topic": readers, "other_groups_on_broker": others,
    }))
}
