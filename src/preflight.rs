//! Kafka access preflight: can this principal do everything the engine will
//! do? Checked up front, each failure named, so a wrong password, an
//! untrusted CA or a missing ACL stops the engine (and fails `resynth
//! check`) within seconds, instead of surfacing as a retry loop or as an
//! aborted transaction at the first window.
//!
//! The checks follow what a read-process-write exactly-once engine needs
//! (README, "Running against a secured Kafka"):
//! 1. connect: TLS handshake and SASL authentication (librdkafka reports
//!    both through its error callback while a metadata request waits);
//! 2. DESCRIBE on every topic (implied by READ or WRITE): topic metadata;
//! 3. READ on the source topic: a fetch from its first offset;
//! 4. READ on the consumer group: an offset fetch for the group;
//! 5. WRITE + DESCRIBE on the transactional id: `init_transactions`;
//! 6. WRITE on each output topic: one empty record per topic in a
//!    transaction that is then aborted (read-committed consumers never see
//!    it), since Kafka has no "may I write" request for a non-admin.
//!
//! Steps 5 and 6 use the engine's own transactional id and so fence a
//! running instance: `check` skips them while an engine holds the audit
//! directory's lock. Messages name topics, groups, ids and the principal,
//! never a property value.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};

use crate::topology::Topology;

/// Header on the aborted probe records (never committed).
pub const PROBE_HEADER: &str = "resynth.access_probe";

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessCheck {
    /// What was checked, e.g. `READ on topic ehr-labs`.
    pub what: String,
    /// `None` when it passed; else what is wrong and what to grant.
    pub problem: Option<String>,
    /// Extra facts (a topic that does not exist yet, a skipped probe).
    pub note: Option<String>,
}

/// Every check of one preflight, in order.
#[derive(Debug, Clone, Default)]
pub struct AccessReport {
    pub checks: Vec<AccessCheck>,
}

impl AccessReport {
    /// The failed checks' messages.
    pub fn problems(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter_map(|c| c.problem.as_ref().map(|p| format!("{}: {p}", c.what)))
            .collect()
    }

    fn pass(&mut self, what: impl Into<String>, note: Option<String>) {
        self.checks.push(AccessCheck {
            what: what.into(),
            problem: None,
            note,
        });
    }

    fn fail(&mut self, what: impl Into<String>, problem: impl Into<String>) {
        self.checks.push(AccessCheck {
            what: what.into(),
            problem: Some(problem.into()),
            note: None,
        });
    }
}

/// The preflight failed; every problem found is listed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("kafka access check failed:\n  - {}", .0.join("\n  - "))]
pub struct AccessError(pub Vec<String>);

/// What to probe.
#[derive(Debug, Clone, Copy)]
pub struct ProbeOptions {
    /// Steps 5 and 6 (they fence a running engine with the same id).
    pub transactions: bool,
    /// Bound on each network step.
    pub timeout: Duration,
}

/// How long initialising the transactional id may take: the engine
/// producer's transaction timeout (librdkafka's default, 60 s), the longest
/// a killed engine's open transaction can hold it.
const FENCE_WAIT: Duration = Duration::from_secs(60);

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            transactions: true,
            timeout: Duration::from_secs(10),
        }
    }
}

/// The engine's check before it starts: every step, failing on any problem.
pub fn verify(topology: &Topology, brokers: &str) -> Result<AccessReport, AccessError> {
    let report = probe(topology, brokers, ProbeOptions::default());
    let problems = report.problems();
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(AccessError(problems))
    }
}

/// Global errors librdkafka reports while a request waits (authentication,
/// TLS, connection), kept for the check to name.
#[derive(Default)]
struct Captured {
    errors: Mutex<Vec<(Option<RDKafkaErrorCode>, String)>>,
    deliveries: Mutex<Vec<(String, Option<KafkaError>)>>,
}

impl Captured {
    fn first_fatal(&self) -> Option<(Option<RDKafkaErrorCode>, String)> {
        let errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        errors
            .iter()
            .find(|(code, reason)| {
                matches!(
                    code,
                    Some(RDKafkaErrorCode::Authentication)
                        | Some(RDKafkaErrorCode::SaslAuthenticationFailed)
                        | Some(RDKafkaErrorCode::SSL)
                ) || is_tls_failure(reason)
                    || reason.contains("SASL authentication error")
                    || reason.contains("Authentication failed")
            })
            .cloned()
    }

    fn last(&self) -> Option<String> {
        let errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        errors.last().map(|(_, r)| r.clone())
    }
}

impl ClientContext for Captured {
    /// Transaction failures arrive as log lines only (`TXNERR`, `ADDPARTS`):
    /// keep them, and log every line as the default context does.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => {
                tracing::error!("librdkafka: {fac} {message}")
            }
            L::Warning => tracing::warn!("librdkafka: {fac} {message}"),
            L::Notice | L::Info => tracing::info!("librdkafka: {fac} {message}"),
            L::Debug => tracing::debug!("librdkafka: {fac} {message}"),
        }
        // Connection failures (TLS, SASL) are log lines too, unless the
        // error callback is polled. A warning librdkafka says it retries
        // (fencing a killed engine's transaction answers CONCURRENT_TRANSACTIONS
        // until its abort is written, and the log line can arrive after the
        // init succeeded) is not a problem.
        let retried = matches!(level, L::Warning) && message.ends_with(": retrying");
        // `kafka.properties` go to every client, so a consumer setting
        // (`session.timeout.ms`) reaches the producer, which says it ignores
        // it: a remark on the configuration, not an access problem.
        let ignored_setting = matches!(level, L::Warning)
            && (message
                .ends_with("is a consumer property and will be ignored by this producer instance")
                || message.ends_with(
                    "is a producer property and will be ignored by this consumer instance",
                ));
        if retried || ignored_setting {
            return;
        }
        if matches!(fac, "TXNERR" | "ADDPARTS" | "FAIL")
            || matches!(
                level,
                L::Emerg | L::Alert | L::Critical | L::Error | L::Warning
            )
        {
            let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
            if errors.len() < 64 {
                errors.push((None, message.to_string()));
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "kafka client error during the access check");
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if errors.len() < 64 {
            errors.push((error.rdkafka_error_code(), reason.to_string()));
        }
    }
}

impl ConsumerContext for Captured {}

impl ProducerContext for Captured {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        use rdkafka::message::Message;
        let entry = match result {
            Ok(m) => (m.topic().to_string(), None),
            Err((e, m)) => (m.topic().to_string(), Some(e.clone())),
        };
        self.deliveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(entry);
    }
}

fn is_tls_failure(reason: &str) -> bool {
    reason.contains("SSL handshake failed") || reason.contains("certificate verify failed")
}

fn principal(topology: &Topology) -> String {
    let p = &topology.kafka.properties;
    match p.get("sasl.username") {
        Some(u) => format!(
            "User:{u} ({})",
            p.get("sasl.mechanism").map_or("GSSAPI", String::as_str)
        ),
        None => "the anonymous principal".into(),
    }
}

fn base_config(topology: &Topology, brokers: &str, timeout: Duration) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in topology.kafka.properties.iter() {
        c.set(k, v);
    }
    let ms = timeout.as_millis().to_string();
    c.set("bootstrap.servers", brokers)
        .set("socket.timeout.ms", &ms)
        .set("reconnect.backoff.max.ms", "1000");
    c
}

/// Runs the checks and reports each one (never fails itself).
pub fn probe(topology: &Topology, brokers: &str, options: ProbeOptions) -> AccessReport {
    let mut report = AccessReport::default();
    let k = &topology.kafka;
    let who = principal(topology);
    let mut config = base_config(topology, brokers, options.timeout);
    config
        .set("group.id", &k.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        // Access, not stability: under read_committed an offset fetch waits
        // (and here times out) while a killed engine's transaction is still
        // open on the group, which is exactly when a restart runs this
        // check. The transactional probe below fences that engine.
        .set("isolation.level", "read_uncommitted");
    let consumer: BaseConsumer<Captured> = match config.create_with_context(Captured::default()) {
        Ok(c) => c,
        Err(e) => {
            report.fail("kafka client", format!("cannot create a client: {e}"));
            return report;
        }
    };

    // 1. Connect: authentication and TLS fail through the error callback.
    let connect = format!("connect to {brokers} as {who}");
    let deadline = Instant::now() + options.timeout;
    loop {
        let attempt = consumer.fetch_metadata(None, Duration::from_millis(500));
        // Serves the main queue: logs and errors arrive through it.
        let _ = consumer.poll(Duration::from_millis(50));
        if let Some((code, reason)) = consumer.context().first_fatal() {
            let problem = match code {
                Some(RDKafkaErrorCode::SSL) => format!(
                    "TLS handshake failed ({reason}); is kafka.properties.ssl.ca.location the CA that signed the broker's certificate?"
                ),
                _ if is_tls_failure(&reason) => format!(
                    "TLS handshake failed ({reason}); is kafka.properties.ssl.ca.location the CA that signed the broker's certificate?"
                ),
                _ => format!(
                    "authentication failed ({reason}); check kafka.properties.sasl.username / sasl.password and sasl.mechanism"
                ),
            };
            report.fail(connect, problem);
            return report;
        }
        match attempt {
            Ok(_) => {
                report.pass(connect, None);
                break;
            }
            Err(e) if Instant::now() >= deadline => {
                let last = consumer.context().last().unwrap_or_default();
                report.fail(
                    connect,
                    format!(
                        "no answer within {:?} ({e}{}{last}); is kafka.brokers right and the broker up?",
                        options.timeout,
                        if last.is_empty() { "" } else { ": " }
                    ),
                );
                return report;
            }
            Err(_) => {}
        }
    }

    // 2. DESCRIBE on every topic; remember which exist.
    let sources = topology.sources();
    let source_field = |s: &crate::topology::Source| {
        if topology.sources.is_empty() {
            "kafka.source_topic".to_string()
        } else {
            format!("{}.topic", s.path)
        }
    };
    let mut outputs: Vec<(String, &str)> = vec![
        ("output.topic".into(), topology.output.topic.as_str()),
        (
            "kafka.dead_letter_topic".into(),
            k.dead_letter_topic.as_str(),
        ),
        ("kafka.quarantine_topic".into(), k.quarantine_topic.as_str()),
        ("kafka.alerts_topic".into(), k.alerts_topic.as_str()),
    ];
    if let Some(late) = &k.late_topic {
        outputs.push(("kafka.late_topic".into(), late.as_str()));
    }
    for (s, e) in sources.iter().zip(&topology.sources) {
        if let Some(t) = &e.dead_letter_topic {
            outputs.push((format!("{}.dead_letter_topic", s.path), t.as_str()));
        }
        if let Some(t) = &e.late_topic {
            outputs.push((format!("{}.late_topic", s.path), t.as_str()));
        }
    }
    if let Some(lineage) = &topology.lineage.kafka_topic {
        outputs.push(("lineage.kafka_topic".into(), lineage.as_str()));
    }
    let mut seen = std::collections::BTreeSet::new();
    outputs.retain(|(_, t)| seen.insert(*t));
    let mut partitions = std::collections::BTreeMap::<String, Vec<i32>>::new();
    let source_topics: Vec<(String, &str)> = sources
        .iter()
        .map(|s| (source_field(s), s.topic.as_str()))
        .collect();
    let all = source_topics
        .iter()
        .map(|(f, t)| (f.as_str(), *t, true))
        .chain(outputs.iter().map(|(f, t)| (f.as_str(), *t, false)));
    for (field, topic, is_source) in all {
        let needs = if is_source { "READ" } else { "WRITE" };
        let what = format!("{needs} on topic {topic} ({field})");
        match consumer.fetch_metadata(Some(topic), options.timeout) {
            Ok(md) => {
                let Some(t) = md.topics().first() else {
                    report.fail(what, "the broker returned no metadata for it");
                    continue;
                };
                match t.error().map(RDKafkaErrorCode::from) {
                    None => {
                        partitions.insert(
                            topic.to_string(),
                            t.partitions().iter().map(|p| p.id()).collect(),
                        );
                        // Described; READ / WRITE are checked below.
                        if !is_source && !options.transactions {
                            report.pass(
                                what,
                                Some("described; WRITE itself is probed only when no engine runs".into()),
                            );
                        }
                    }
                    Some(RDKafkaErrorCode::TopicAuthorizationFailed) => report.fail(
                        what,
                        format!("{who} may not access it (topic authorization failed); grant {needs} on topic {topic}"),
                    ),
                    Some(RDKafkaErrorCode::UnknownTopicOrPartition) => report.pass(
                        what,
                        Some("the topic does not exist yet: create it, or let the principal create it (CREATE)".into()),
                    ),
                    Some(code) => report.fail(what, format!("metadata error: {code}")),
                }
            }
            Err(e) => report.fail(what, format!("metadata request failed: {e}")),
        }
    }

    // 3. READ on each source topic: fetch from the start until a record or the end.
    let mut group_partitions = TopicPartitionList::new();
    for (s, (field, topic)) in sources.iter().zip(&source_topics) {
        let Some(parts) = partitions.get(*topic) else {
            continue;
        };
        let what = format!("READ on topic {topic} ({field})");
        let mut tpl = TopicPartitionList::new();
        for p in parts {
            let _ = tpl.add_partition_offset(topic, *p, Offset::Beginning);
            // Only streams' offsets are the group's; tables are read whole.
            if s.kind == crate::topology::SourceKind::Stream {
                group_partitions.add_partition(topic, *p);
            }
        }
        let grant = format!("grant READ on topic {topic} to {who}");
        match read_probe(&consumer, &tpl, options.timeout, &grant) {
            Ok(()) => report.pass(what, None),
            Err(e) => report.fail(what, e),
        }
        let _ = consumer.unassign();
    }
    if group_partitions.count() > 0 {
        // 4. READ on the group: its committed offsets.
        let what = format!("READ on group {} (kafka.group_id)", k.group_id);
        let tpl = group_partitions;
        // Without the group ACL librdkafka retries the coordinator lookup
        // until the timeout and only logs why: ask in short steps and
        // look at what it logged in between.
        let refused = |reason: &str| {
            reason.contains("Group authorization failed")
                || reason.contains("GROUP_AUTHORIZATION_FAILED")
        };
        let deadline = Instant::now() + options.timeout;
        let grant = format!(
            "{who} may not use the group (group authorization failed); grant READ on group {}",
            k.group_id
        );
        loop {
            let got = consumer.committed_offsets(tpl.clone(), Duration::from_millis(1000));
            let _ = consumer.poll(Duration::from_millis(50));
            let logged = consumer
                .context()
                .errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|(_, r)| refused(r));
            match got {
                Ok(_) => {
                    report.pass(what, None);
                    break;
                }
                Err(e)
                    if logged
                        || e.rdkafka_error_code()
                            == Some(RDKafkaErrorCode::GroupAuthorizationFailed) =>
                {
                    report.fail(what, grant);
                    break;
                }
                Err(e) if Instant::now() >= deadline => {
                    report.fail(what, format!("offset fetch failed: {e}"));
                    break;
                }
                Err(_) => {}
            }
        }
    }
    drop(consumer);

    // 5 and 6. The transactional id, then WRITE on each existing output topic.
    if options.transactions {
        let existing: Vec<(&str, &str)> = outputs
            .iter()
            .map(|(f, t)| (f.as_str(), *t))
            .filter(|(_, t)| partitions.contains_key(*t))
            .collect();
        transaction_probe(
            topology,
            brokers,
            &who,
            &existing,
            options.timeout,
            &mut report,
        );
    } else {
        report.pass(
            format!(
                "WRITE and DESCRIBE on transactional id {}",
                topology.transactional_id()
            ),
            Some("not probed: an engine holds the audit directory (probing would fence it)".into()),
        );
    }
    report
}

/// Polls an assigned consumer until a record or end of partition (READ
/// granted) or an authorization error.
fn read_probe(
    consumer: &BaseConsumer<Captured>,
    tpl: &TopicPartitionList,
    timeout: Duration,
    grant: &str,
) -> Result<(), String> {
    consumer
        .assign(tpl)
        .map_err(|e| format!("assign failed: {e}"))?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(_)) | Some(Err(KafkaError::PartitionEOF(_))) => return Ok(()),
            Some(Err(e))
                if e.rdkafka_error_code() == Some(RDKafkaErrorCode::TopicAuthorizationFailed) =>
            {
                return Err(format!(
                    "fetch refused (topic authorization failed); {grant}"
                ));
            }
            Some(Err(e)) => return Err(format!("fetch failed: {e}")),
            None => {}
        }
    }
    Err(format!("no fetch answer within {timeout:?}"))
}

fn transactional_producer(
    topology: &Topology,
    brokers: &str,
    timeout: Duration,
) -> Result<BaseProducer<Captured>, KafkaError> {
    let mut config = base_config(topology, brokers, timeout);
    config
        .set("transactional.id", topology.transactional_id())
        .set("enable.idempotence", "true")
        .set("transaction.timeout.ms", "10000");
    let producer: BaseProducer<Captured> = config.create_with_context(Captured::default())?;
    // Fencing a killed engine aborts its open transaction first (the broker
    // answers CONCURRENT_TRANSACTIONS meanwhile, and librdkafka retries);
    // that transaction times out on the broker by itself within the
    // engine's transaction.timeout.ms, so that long is worth waiting.
    producer.init_transactions(timeout.max(FENCE_WAIT))?;
    Ok(producer)
}

fn transaction_probe(
    topology: &Topology,
    brokers: &str,
    who: &str,
    outputs: &[(&str, &str)],
    timeout: Duration,
    report: &mut AccessReport,
) {
    let id = topology.transactional_id();
    let what = format!("WRITE and DESCRIBE on transactional id {id}");
    let mut producer = match transactional_producer(topology, brokers, timeout) {
        Ok(p) => Some(p),
        Err(e) => {
            let problem = if e.rdkafka_error_code()
                == Some(RDKafkaErrorCode::TransactionalIdAuthorizationFailed)
            {
                format!(
                    "{who} may not use it (transactional id authorization failed); grant WRITE and DESCRIBE on transactional id {id}"
                )
            } else {
                format!("init_transactions failed: {e}")
            };
            report.fail(what, problem);
            return;
        }
    };
    report.pass(what, None);
    // One transaction per topic, so a refusal is attributed to its topic; a
    // refused transaction leaves the producer unusable, so the next topic
    // gets a fresh one.
    for (field, topic) in outputs {
        let what = format!("WRITE on topic {topic} ({field})");
        let p = match producer.take() {
            Some(p) => p,
            None => match transactional_producer(topology, brokers, timeout) {
                Ok(p) => p,
                Err(e) => {
                    report.fail(what, format!("init_transactions failed: {e}"));
                    return;
                }
            },
        };
        match write_probe(&p, topic, timeout) {
            Ok(()) => {
                report.pass(what, None);
                producer = Some(p);
            }
            Err(text) if text.contains("uthorization") => report.fail(
                what,
                format!(
                    "{who} may not write it (topic authorization failed); grant WRITE on topic {topic}"
                ),
            ),
            Err(text) => report.fail(what, format!("probe write failed: {text}")),
        }
    }
}

/// One empty record to `topic` in a transaction that is then aborted.
fn write_probe(p: &BaseProducer<Captured>, topic: &str, timeout: Duration) -> Result<(), String> {
    p.begin_transaction()
        .map_err(|e| format!("begin_transaction failed: {e}"))?;
    p.context()
        .errors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    p.context()
        .deliveries
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    let headers = OwnedHeaders::new().insert(Header {
        key: PROBE_HEADER,
        value: Some("aborted".as_bytes()),
    });
    let sent = p.send(
        BaseRecord::<[u8], [u8]>::to(topic)
            .payload(&[])
            .headers(headers),
    );
    let mut problems: Vec<String> = sent.err().map(|(e, _)| e.to_string()).into_iter().collect();
    let _ = p.flush(timeout);
    problems.extend(
        p.context()
            .deliveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|(_, e)| e.as_ref().map(|e| e.to_string())),
    );
    if let Err(e) = p.abort_transaction(timeout) {
        problems.push(e.to_string());
    }
    let errors = p.context().errors.lock().unwrap_or_else(|e| e.into_inner());
    if problems.is_empty() && errors.is_empty() {
        return Ok(());
    }
    problems.extend(errors.iter().map(|(_, r)| r.clone()));
    Err(problems.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::config::RDKafkaLogLevel as L;

    fn kept(level: L, message: &str) -> usize {
        let c = Captured::default();
        c.log(level, "CONFWARN", message);
        c.errors.lock().unwrap().len()
    }

    #[test]
    fn settings_a_client_ignores_and_retries_are_not_access_problems() {
        assert_eq!(
            kept(
                L::Warning,
                "[thrd:app]: Configuration property session.timeout.ms is a consumer property and will be ignored by this producer instance"
            ),
            0
        );
        assert_eq!(
            kept(
                L::Warning,
                "[thrd:app]: Configuration property linger.ms is a producer property and will be ignored by this consumer instance"
            ),
            0
        );
        assert_eq!(
            kept(
                L::Warning,
                "InitProducerId failed: Coordinator load in progress: retrying"
            ),
            0
        );
        assert_eq!(kept(L::Warning, "SASL authentication failed"), 1);
        assert_eq!(kept(L::Error, "ssl handshake failed"), 1);
    }
}
