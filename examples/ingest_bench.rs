//! Ingest speed against a real Kafka broker, in one run.
//!
//! ```text
//! bash deploy/kafka/kafka.sh start
//! RESYNTH_TEST_BROKERS=127.0.0.1:19092 cargo run --release --example ingest_bench -- [N] [BROKERS]
//! ```
//!
//! Pre-loads N (default 1,000,000) simulator lab events (Avro, the schema of
//! `schemas/ehr/lab_result.avsc`) into a fresh 2-partition topic, then measures
//! on those same messages, with a `BaseConsumer` polled one message at a time
//! as the engine does:
//!
//! - **decode only**: the N payloads decoded from memory into Arrow (no Kafka),
//!   beside apache-avro's generic `Value` reader (the previous decode path);
//! - **raw consume**: read all N messages touching only the payload length;
//! - **ingest**: the same loop plus `EventDecoder::parse`/`append_parsed`,
//!   batches of 4096 rows pushed to a `Windower` (1 h windows, 120 s delay,
//!   like the shipped topologies), `advance` after every poll, rows counted
//!   in closed windows, `flush` at the end;
//! - **engine loop**: ingest plus the per-message extras `engine::run` had
//!   before they were removed
//!   (`consumer.assignment()`, a labelled `counter!` with a Prometheus
//!   recorder installed, `Instant::now()`), to show what they cost.
//!
//! Each consume phase reports events/s, CPU seconds of the whole process
//! (`/proc/self/stat`: every thread, librdkafka's included), cores used
//! (CPU s ÷ wall s), events/s per core used and peak RSS (`VmHWM`, reset
//! before the phase through `/proc/self/clear_refs`). The topic is deleted at
//! the end. Targets (DESIGN.md): ingest ≥ 250k events/s per core, ≥ 0.7 of
//! the raw consume rate.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use resynth::schema::RecordSchema;
use resynth::schema::decode::EventDecoder;
use resynth::source::simulator::{Simulator, SimulatorConfig, encode_event_avro};
use resynth::topology::EventFormat;
use resynth::window::{WindowSpec, Windower};

/// The engine hands decoded rows to the windower in batches of this size
/// (`engine::DECODE_BATCH`).
const DECODE_BATCH: usize = 4096;
const PARTITIONS: i32 = 2;
const WINDOW_MS: i64 = 3_600_000;
const DELAY_MS: i64 = 120_000;
/// `/proc/self/stat` counts CPU time in USER_HZ ticks, 100 on Linux.
const TICKS_PER_SEC: f64 = 100.0;
const TARGET_PER_CORE: f64 = 250_000.0;
const TARGET_RATIO: f64 = 0.7;
/// librdkafka (2.4+) waits `fetch.queue.backoff.ms` (default 1000) before
/// fetching again once its local queue is full (`queued.min.messages`,
/// 100k per partition): a consumer slower than the fetch path then idles up
/// to a second per refill. The engine's consumer keeps the default today.
const TUNED_BACKOFF_MS: &str = "10";

/// N payloads in one buffer, like a fetch response: no allocation each.
struct Payloads {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    keys: Vec<u32>,
}

impl Payloads {
    fn len(&self) -> usize {
        self.ends.len()
    }
    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

fn simulate(schema: &RecordSchema, n: usize) -> Payloads {
    let sim = Simulator::new(SimulatorConfig::default());
    let mut p = Payloads {
        bytes: Vec::with_capacity(n * 120),
        ends: Vec::with_capacity(n),
        keys: Vec::with_capacity(n),
    };
    let mut window = 0;
    'outer: loop {
        for e in sim.window_events(window) {
            if p.len() == n {
                break 'outer;
            }
            let bytes = encode_event_avro(schema, &e).expect("simulator events fit the schema");
            p.bytes.extend_from_slice(&bytes);
            p.ends.push(p.bytes.len());
            let id = e.patient_id.rsplit('-').next().unwrap_or("0");
            p.keys.push(id.parse().unwrap_or(0));
        }
        window += 1;
    }
    p
}

/// CPU seconds used so far by this process (all threads).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the
    // 14th field of the line, stime the 15th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / TICKS_PER_SEC
}

/// Busy CPU seconds of the whole machine so far (`/proc/stat`), to show
/// what else (the broker, other work) competed for the cores.
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let total: f64 = cpu.iter().take(8).sum();
    let idle = cpu.get(3).copied().unwrap_or(0.0) + cpu.get(4).copied().unwrap_or(0.0);
    (total - idle) / TICKS_PER_SEC
}

fn status_kb(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0), so a phase's peak is its own.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

struct Phase {
    events: usize,
    wall: f64,
    cpu: f64,
    machine_busy: f64,
    peak_kb: u64,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.events as f64 / self.wall
    }
    fn cores(&self) -> f64 {
        self.cpu / self.wall
    }
    fn per_core(&self) -> f64 {
        self.events as f64 / self.cpu.max(1e-9)
    }
    fn line(&self, name: &str) -> String {
        format!(
            "{name:<34} {:>9.0} ev/s  wall {:>5.2} s  cpu {:>5.2} s  cores used {:>4.2} (machine {:>4.2})  {:>8.0} ev/s per core  peak RSS {:>5.1} MiB",
            self.rate(),
            self.wall,
            self.cpu,
            self.cores(),
            self.machine_busy / self.wall,
            self.per_core(),
            mib(self.peak_kb)
        )
    }
}

fn measure(events: usize, f: impl FnOnce()) -> Phase {
    reset_peak();
    let (t0, c0, m0) = (Instant::now(), cpu_seconds(), machine_busy_seconds());
    f();
    Phase {
        events,
        wall: t0.elapsed().as_secs_f64(),
        cpu: cpu_seconds() - c0,
        machine_busy: machine_busy_seconds() - m0,
        peak_kb: status_kb("VmHWM:"),
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

fn admin(brokers: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client")
}

fn produce(brokers: &str, topic: &str, payloads: &Payloads) -> Result<(), KafkaError> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "50")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create()?;
    for i in 0..payloads.len() {
        let key = payloads.keys[i].to_le_bytes();
        let mut record = BaseRecord::to(topic)
            .key(&key[..])
            .payload(payloads.get(i))
            .partition((payloads.keys[i] % PARTITIONS as u32) as i32);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(e),
            }
        }
        if i % 10_000 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(120))
}

/// A consumer reading every partition of `topic` from the beginning, set up
/// like the engine's (manual offsets, read-committed, partition EOF events).
fn consumer(brokers: &str, topic: &str, tuned: bool) -> BaseConsumer {
    let mut config = ClientConfig::new();
    if tuned {
        config.set("fetch.queue.backoff.ms", TUNED_BACKOFF_MS);
        // Extra consumer settings to try, e.g. "queued.min.messages=500000".
        if let Ok(extra) = std::env::var("INGEST_BENCH_CONSUMER") {
            for kv in extra.split(',').filter(|kv| !kv.is_empty()) {
                let (k, v) = kv.split_once('=').expect("key=value");
                config.set(k, v);
            }
        }
    }
    let c: BaseConsumer = config
        .set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("{topic}-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("valid partition");
    }
    c.assign(&tpl).expect("assign");
    c
}

/// Waits for the first message (connection and first fetch are not part of
/// the rate), so the caller times the stream itself.
fn first_message(c: &BaseConsumer) -> (Vec<u8>, i32, i64) {
    loop {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            return (
                m.payload().unwrap_or(&[]).to_vec(),
                m.partition(),
                m.offset(),
            );
        }
    }
}

fn raw_consume(brokers: &str, topic: &str, n: usize, tuned: bool) -> (Phase, usize) {
    let c = consumer(brokers, topic, tuned);
    let (first, _, _) = first_message(&c);
    let mut bytes = first.len();
    let mut seen = 1;
    let phase = measure(n, || {
        while seen < n {
            match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    bytes += m.payload_len();
                    seen += 1;
                }
                Some(Err(KafkaError::PartitionEOF(_))) | None => {}
                Some(Err(e)) => panic!("consume: {e}"),
            }
        }
    });
    (phase, bytes)
}

#[derive(Default)]
struct IngestOutcome {
    rows_closed: usize,
    windows: usize,
    late: usize,
    bad: usize,
    largest_window_bytes: usize,
    /// (partition, next offset there, messages seen) at each end-of-partition event.
    eof: Vec<(i32, i64, usize)>,
}

/// Per-message work `engine::run` does besides decoding and windowing.
#[derive(Clone, Copy)]
struct Extras {
    /// `consumer.assignment()` after every poll.
    assignment: bool,
    /// `counter!(EVENTS_IN, "topology" => name.clone())` and
    /// `Instant::now()` per message, the idle check per poll.
    counter: bool,
}

const NO_EXTRAS: Extras = Extras {
    assignment: false,
    counter: false,
};

fn ingest(
    brokers: &str,
    topic: &str,
    n: usize,
    schema: &Arc<RecordSchema>,
    tuned: bool,
    extras: Extras,
) -> (Phase, IngestOutcome) {
    let c = consumer(brokers, topic, tuned);
    let mut decoder = EventDecoder::new(schema.clone(), EventFormat::Avro, "event_time")
        .expect("event_time is a timestamp");
    let mut windower = Windower::new(WindowSpec::tumbling(WINDOW_MS, DELAY_MS));
    windower.assign(&(0..PARTITIONS).collect::<Vec<_>>());
    let mut out = IngestOutcome::default();
    let mut next_offset: BTreeMap<i32, i64> = BTreeMap::new();
    let name = String::from("ingest-bench");
    let mut last_message = Instant::now();
    let mut assigned = 0usize;
    let take = |closed: Vec<resynth::window::ClosedWindow>, out: &mut IngestOutcome| {
        for w in closed {
            out.rows_closed += w.rows;
            out.windows += 1;
            let bytes = w
                .batches
                .iter()
                .map(|b| b.get_array_memory_size())
                .sum::<usize>();
            out.largest_window_bytes = out.largest_window_bytes.max(bytes);
        }
    };
    let (first, p0, o0) = first_message(&c);
    let handle = |payload: &[u8],
                  partition: i32,
                  offset: i64,
                  decoder: &mut EventDecoder,
                  windower: &mut Windower,
                  out: &mut IngestOutcome,
                  next_offset: &mut BTreeMap<i32, i64>| {
        windower.mark_active(partition);
        next_offset.insert(partition, offset + 1);
        match decoder.parse(payload) {
            Ok(t) if windower.is_late(t) => out.late += 1,
            Ok(t) => decoder.append_parsed(t, partition, offset),
            Err(_) => out.bad += 1,
        }
        if decoder.len() >= DECODE_BATCH {
            windower.push(decoder.finish());
        }
    };
    let phase = measure(n, || {
        handle(
            &first,
            p0,
            o0,
            &mut decoder,
            &mut windower,
            &mut out,
            &mut next_offset,
        );
        let mut seen = 1;
        while seen < n {
            match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    seen += 1;
                    if extras.counter {
                        last_message = Instant::now();
                        metrics::counter!(resynth::telemetry::EVENTS_IN, "topology" => name.clone())
                            .increment(1);
                    }
                    let (p, o) = (m.partition(), m.offset());
                    handle(
                        m.payload().unwrap_or(&[]),
                        p,
                        o,
                        &mut decoder,
                        &mut windower,
                        &mut out,
                        &mut next_offset,
                    );
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    windower.mark_idle(p);
                    out.eof
                        .push((p, next_offset.get(&p).copied().unwrap_or(0), seen));
                }
                Some(Err(e)) => panic!("consume: {e}"),
                None => {}
            }
            if extras.assignment
                && let Ok(a) = c.assignment()
            {
                assigned = a.count();
            }
            if extras.counter
                && !decoder.is_empty()
                && last_message.elapsed() >= Duration::from_millis(100)
            {
                windower.push(decoder.finish());
            }
            take(windower.advance(), &mut out);
        }
        if !decoder.is_empty() {
            windower.push(decoder.finish());
        }
        take(windower.advance(), &mut out);
        take(windower.flush(), &mut out);
    });
    if extras.assignment {
        assert_eq!(assigned, PARTITIONS as usize);
    }
    (phase, out)
}

fn decode_only(schema: &Arc<RecordSchema>, payloads: &Payloads) -> Phase {
    let mut d = EventDecoder::new(schema.clone(), EventFormat::Avro, "event_time")
        .expect("event_time is a timestamp");
    let mut rows = 0;
    let phase = measure(payloads.len(), || {
        for i in 0..payloads.len() {
            d.decode(payloads.get(i), 0, i as i64)
                .expect("simulator events decode");
            if d.len() >= DECODE_BATCH {
                rows += d.finish().batch.num_rows();
            }
        }
        rows += d.finish().batch.num_rows();
    });
    assert_eq!(rows, payloads.len());
    phase
}

/// Reading and checking records without appending them (the builders' share
/// of the decode cost is the difference).
fn parse_only(schema: &Arc<RecordSchema>, payloads: &Payloads) -> Phase {
    let mut d = EventDecoder::new(schema.clone(), EventFormat::Avro, "event_time")
        .expect("event_time is a timestamp");
    let mut sum = 0i64;
    let phase = measure(payloads.len(), || {
        for i in 0..payloads.len() {
            sum = sum.wrapping_add(d.parse(payloads.get(i)).expect("simulator events decode"));
        }
    });
    std::hint::black_box(sum);
    phase
}

/// The previous decode path's core: apache-avro's generic reader, one
/// `Value` tree per record (without even building Arrow columns).
fn apache_avro_values(schema: &RecordSchema, payloads: &Payloads, n: usize) -> Phase {
    measure(n, || {
        for i in 0..n {
            let mut r = payloads.get(i);
            let v = resynth::schema::read_datum(&schema.avro, &mut r).expect("valid datum");
            std::hint::black_box(v);
        }
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args
        .first()
        .map(|a| a.replace('_', "").parse().expect("N is a number of events"))
        .unwrap_or(1_000_000);
    let brokers = args
        .get(1)
        .cloned()
        .or_else(|| std::env::var("RESYNTH_TEST_BROKERS").ok())
        .expect("brokers: pass them as the second argument or set RESYNTH_TEST_BROKERS");
    let schema = Arc::new(
        RecordSchema::load(std::path::Path::new("schemas/ehr/lab_result.avsc"))
            .expect("lab schema"),
    );
    if !reset_peak() {
        println!("note: /proc/self/clear_refs is not writable; peak RSS is the process peak");
    }
    let t = Instant::now();
    let payloads = simulate(&schema, n);
    println!(
        "N = {n} simulated lab events, Avro, {:.1} bytes each on average (simulated and encoded in {:.1} s)",
        payloads.bytes.len() as f64 / n as f64,
        t.elapsed().as_secs_f64()
    );

    let decode = decode_only(&schema, &payloads);
    let reference = apache_avro_values(&schema, &payloads, n.min(200_000));
    let parse = parse_only(&schema, &payloads);
    if brokers == "none" {
        for _ in 0..3 {
            println!(
                "{}",
                decode_only(&schema, &payloads).line("decode only (memory)")
            );
            println!(
                "{}",
                parse_only(&schema, &payloads).line("parse only (memory)")
            );
        }
        return;
    }

    let topic = format!(
        "ingest-bench-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let admin = admin(&brokers);
    let created = block_on(admin.create_topics(
        &[NewTopic::new(
            &topic,
            PARTITIONS,
            TopicReplication::Fixed(1),
        )],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
    ))
    .expect("create topic");
    created
        .into_iter()
        .for_each(|r| r.map(|_| ()).expect("topic created"));
    let t = Instant::now();
    produce(&brokers, &topic, &payloads).expect("produce");
    let produce_secs = t.elapsed().as_secs_f64();
    let payload_bytes = payloads.bytes.len();
    drop(payloads);
    println!(
        "loaded into topic {topic} ({PARTITIONS} partitions) at {brokers} in {produce_secs:.1} s ({:.0} ev/s)",
        n as f64 / produce_secs
    );

    // The recorder the engine installs, so `counter!` costs what it costs there.
    let _prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("prometheus recorder");

    // Engine consumer settings (a) as they are today and (b) with
    // fetch.queue.backoff.ms lowered; two rounds each, best round reported.
    let mut phases: BTreeMap<(bool, &str), Vec<Phase>> = BTreeMap::new();
    let mut outcome = IngestOutcome::default();
    for _round in 0..2 {
        for tuned in [false, true] {
            let (raw, bytes) = raw_consume(&brokers, &topic, n, tuned);
            assert_eq!(bytes, payload_bytes, "raw consume saw every payload byte");
            phases.entry((tuned, "raw")).or_default().push(raw);
            let (ing, out) = ingest(&brokers, &topic, n, &schema, tuned, NO_EXTRAS);
            assert_eq!(out.bad, 0, "simulator events decode");
            assert_eq!(
                out.rows_closed + out.late,
                n,
                "every event is windowed or late"
            );
            if out.late > 0 {
                println!(
                    "note: {} events late in an ingest run; end-of-partition events (partition, next offset, seen): {:?}",
                    out.late, out.eof
                );
            }
            phases.entry((tuned, "ingest")).or_default().push(ing);
            outcome = out;
        }
    }
    let all = Extras {
        assignment: true,
        counter: true,
    };
    let engine_variants = [
        (false, "engine loop", all),
        (true, "engine loop", all),
        (
            true,
            "+ counter! only",
            Extras {
                assignment: false,
                counter: true,
            },
        ),
        (
            true,
            "+ assignment() only",
            Extras {
                assignment: true,
                counter: false,
            },
        ),
    ];
    for (tuned, name, extras) in engine_variants {
        let (phase, out) = ingest(&brokers, &topic, n, &schema, tuned, extras);
        assert_eq!(
            out.rows_closed + out.late,
            n,
            "every event is windowed or late"
        );
        phases.entry((tuned, name)).or_default().push(phase);
    }

    let best = |tuned: bool, name: &'static str| -> &Phase {
        phases[&(tuned, name)]
            .iter()
            .max_by(|a, b| a.rate().total_cmp(&b.rate()))
            .expect("measured")
    };

    println!();
    println!("{}", decode.line("decode only (memory)"));
    println!("{}", parse.line("parse only (no append)"));
    println!("{}", reference.line("apache-avro Value only"));
    println!(
        "  decode: {:.0} ns/event; apache-avro's Value reader {:.0} ns/event ({:.1}x)",
        1e9 / decode.rate(),
        1e9 / reference.rate(),
        decode.rate() / reference.rate()
    );
    for ((tuned, name), runs) in &phases {
        let config = if *tuned {
            "backoff 10ms (engine)"
        } else {
            "librdkafka default"
        };
        for (i, p) in runs.iter().enumerate() {
            println!("{}", p.line(&format!("{name} [{config}] #{}", i + 1)));
        }
    }
    println!(
        "  ingest: {} windows closed, {} rows, largest window {:.1} MiB of Arrow",
        outcome.windows,
        outcome.rows_closed,
        outcome.largest_window_bytes as f64 / (1024.0 * 1024.0)
    );
    println!();
    println!("summary (best of 2 rounds; N = {n}; 2-partition topic, one consumer):");
    for tuned in [false, true] {
        let (raw, ing) = (best(tuned, "raw"), best(tuned, "ingest"));
        let ratio = ing.rate() / raw.rate();
        let met = |ok: bool| if ok { "met" } else { "MISSED" };
        println!(
            "  consumer {}:",
            if tuned {
                "with fetch.queue.backoff.ms=10, as the engine sets it"
            } else {
                "with librdkafka's default fetch.queue.backoff.ms (1000)"
            }
        );
        println!(
            "    raw consume    {:>10.0} ev/s  cores used {:.2}  peak RSS {:.1} MiB",
            raw.rate(),
            raw.cores(),
            mib(raw.peak_kb)
        );
        println!(
            "    ingest         {:>10.0} ev/s  cores used {:.2}  {:.0} ev/s per core (target >= {TARGET_PER_CORE:.0}: {})  peak RSS {:.1} MiB",
            ing.rate(),
            ing.cores(),
            ing.per_core(),
            met(ing.per_core() >= TARGET_PER_CORE),
            mib(ing.peak_kb)
        );
        println!(
            "    ingest / raw   {ratio:>10.2}       (target >= {TARGET_RATIO}: {})",
            met(ratio >= TARGET_RATIO)
        );
        let engine = best(tuned, "engine loop");
        println!(
            "    old engine loop {:>9.0} ev/s  cores used {:.2}  {:.0} ev/s per core  ({:.2} of raw; assignment() per poll and a labelled counter! per message, both removed)",
            engine.rate(),
            engine.cores(),
            engine.per_core(),
            engine.rate() / raw.rate()
        );
    }

    let deleted = block_on(admin.delete_topics(&[&topic], &AdminOptions::new()));
    if let Err(e) = deleted {
        eprintln!("could not delete topic {topic}: {e}");
    }
}
