//! Ingest speed against a real Kafka broker, in one run.
//!
//! ```text
//! bash deploy/kafka/kafka.sh start
//! RESYNTH_TEST_BROKERS=127.0.0.1:19092 cargo run --release --example ingest_bench -- [N] [BROKERS]
//! ```
//!
//! Pre-loads N (default 1,000,000) simulator lab events (Avro, the schema of
//! `schemas/ehr/lab_result.avsc`) into a fresh 2-partition topic, then measures
//! on those same messages, with a `BaseConsumer` set up by
//! `engine::consumer_config` and polled one message at a time as the engine
//! does:
//!
//! - **decode only**: the N payloads decoded from memory into Arrow (no Kafka),
//!   beside apache-avro's generic `Value` reader (the previous decode path);
//! - **raw consume**: read all N messages touching only the payload length;
//! - **ingest**: the engine's ingest path (`EngineLoop` below): the poll
//!   thread's per-message bookkeeping and copy into `engine::ingest::Ingest`,
//!   decoding on its worker thread, `sort_rows` into a `Windower`, `advance`
//!   after every poll, rows counted in closed windows, `flush` at the end.
//!
//! Raw and ingest alternate for five rounds; the best of each is compared
//! (medians shown too).
//! Each consume phase reports events/s, CPU seconds of the whole process
//! (`/proc/self/stat`: every thread, librdkafka's included), cores used
//! (CPU s ÷ wall s) and how busy the whole machine was (the broker runs on
//! it too), events/s per core used and peak RSS (`VmHWM`, reset before the
//! phase through `/proc/self/clear_refs`). The topic is deleted at the end.
//! Targets (DESIGN.md): ingest ≥ 250k events/s per core, ≥ 0.7 of the raw
//! consume rate.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use resynth::engine::ingest::{Decoded, Ingest, sort_rows};
use resynth::schema::RecordSchema;
use resynth::schema::decode::EventDecoder;
use resynth::source::simulator::{Simulator, SimulatorConfig, encode_event_avro};
use resynth::topology::EventFormat;
use resynth::window::SourcePartition;
use resynth::window::{WindowSpec, Windower};

/// Batch size of the decode-only phases (as `engine::ingest::BATCH_MESSAGES`).
const DECODE_BATCH: usize = resynth::engine::ingest::BATCH_MESSAGES;
const PARTITIONS: i32 = 2;
const WINDOW_MS: i64 = 3_600_000;
const DELAY_MS: i64 = 120_000;
/// `/proc/self/stat` counts CPU time in USER_HZ ticks, 100 on Linux.
const TICKS_PER_SEC: f64 = 100.0;
const TARGET_PER_CORE: f64 = 250_000.0;
const TARGET_RATIO: f64 = 0.7;
const ROUNDS: usize = 5;

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

/// A consumer reading every partition of `topic` from the beginning, with
/// the engine's settings (`engine::consumer_config`); extra librdkafka
/// properties to try come from `INGEST_BENCH_CONSUMER`
/// (e.g. `queued.max.messages.kbytes=16384`), as `kafka.properties` would.
fn consumer(brokers: &str, topic: &str) -> BaseConsumer {
    let mut extra = BTreeMap::new();
    if let Ok(props) = std::env::var("INGEST_BENCH_CONSUMER") {
        for kv in props.split(',').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=').expect("key=value");
            extra.insert(k.to_string(), v.to_string());
        }
    }
    let group = format!("{topic}-{}", uuid::Uuid::new_v4().simple());
    let c: BaseConsumer = resynth::engine::consumer_config(brokers, &group, &extra)
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
fn first_message(c: &BaseConsumer) -> OwnedMessage {
    loop {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            return m.detach();
        }
    }
}

fn raw_consume(brokers: &str, topic: &str, n: usize) -> (Phase, usize) {
    let c = consumer(brokers, topic);
    let mut bytes = first_message(&c).payload().map_or(0, <[u8]>::len);
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
}

/// The engine's ingest path, step by step as `engine::run` takes it: per
/// message the poll thread copies it into `engine::ingest::Ingest` (partition
/// bookkeeping only when the partition changes); decoding runs on `Ingest`'s
/// worker thread; only when a batch was sent or decoded does the poll thread
/// do the rest: `ingest::sort_rows` into a `Windower` (1 h windows, 120 s
/// delay, like the shipped topologies), per-partition clocks and the events
/// counter, and `advance`, counting rows in closed windows; `flush` at the end.
struct EngineLoop {
    ing: Ingest,
    windower: Windower,
    last_seen: BTreeMap<SourcePartition, Instant>,
    at_end: BTreeSet<SourcePartition>,
    active_run: Option<SourcePartition>,
    events_in: metrics::Counter,
    no_replays: BTreeMap<SourcePartition, i64>,
    seen: usize,
    out: IngestOutcome,
}

impl EngineLoop {
    fn new(schema: &Arc<RecordSchema>, window_ms: i64) -> EngineLoop {
        let decoder = EventDecoder::new(schema.clone(), EventFormat::Avro, "event_time")
            .expect("event_time is a timestamp");
        let spec = WindowSpec::tumbling(window_ms, DELAY_MS);
        let mut windower = Windower::new(spec);
        windower.assign(
            &(0..PARTITIONS)
                .map(|p| SourcePartition::new(0, p))
                .collect::<Vec<_>>(),
        );
        EngineLoop {
            ing: Ingest::new(decoder, spec.pane_ms()),
            windower,
            last_seen: BTreeMap::new(),
            at_end: BTreeSet::new(),
            active_run: None,
            events_in: metrics::counter!(resynth::telemetry::EVENTS_IN, "topology" => "ingest-bench"),
            no_replays: BTreeMap::new(),
            seen: 0,
            out: IngestOutcome::default(),
        }
    }

    /// Returns whether the bookkeeping is due (`dirty` in `engine::run`).
    fn on_message<M: Message>(&mut self, m: &M) -> bool {
        self.seen += 1;
        let p = SourcePartition::new(0, m.partition());
        if self.active_run != Some(p) {
            self.windower.mark_active(p);
            self.at_end.remove(&p);
            self.active_run = Some(p);
        }
        self.ing.add(m)
    }

    fn sort(&mut self, mut d: Decoded) {
        let sorted = sort_rows(&mut d, &mut self.windower, &self.no_replays);
        self.out.late += sorted.late.len();
        self.out.bad += sorted.bad.len();
        self.ing.recycle(std::mem::take(&mut d.raw));
    }

    fn on_eof(&mut self, p: i32) {
        let p = SourcePartition::new(0, p);
        for d in self.ing.drain() {
            self.sort(d);
        }
        self.windower.mark_idle(p);
        self.at_end.insert(p);
        self.active_run = None;
    }

    fn after_poll(&mut self, mut dirty: bool) {
        if self.ing.awaiting() {
            while let Some(d) = self.ing.try_take() {
                self.sort(d);
                dirty = true;
            }
        }
        if !dirty {
            return;
        }
        let now = Instant::now();
        let sent = self.ing.take_sent();
        self.events_in.increment(sent.messages);
        for p in sent.partitions {
            self.last_seen.insert(p, now);
        }
        let closed = self.windower.advance();
        self.take(closed);
    }

    /// Polls until `n` messages (counting `first`) were taken in.
    fn consume(&mut self, c: &BaseConsumer, first: OwnedMessage, n: usize) {
        let dirty = self.on_message(&first);
        self.after_poll(dirty);
        while self.seen < n {
            let dirty = match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => self.on_message(&m),
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    self.on_eof(p);
                    true
                }
                Some(Err(e)) => panic!("consume: {e}"),
                None => true,
            };
            self.after_poll(dirty);
        }
    }

    fn finish(&mut self) {
        for d in self.ing.drain() {
            self.sort(d);
        }
        let closed = self.windower.advance();
        self.take(closed);
        let closed = self.windower.flush();
        self.take(closed);
    }

    fn take(&mut self, closed: Vec<resynth::window::ClosedWindow>) {
        for w in closed {
            self.out.rows_closed += w.rows;
            self.out.windows += 1;
            let bytes = w
                .batches
                .values()
                .flatten()
                .map(|b| b.get_array_memory_size())
                .sum::<usize>();
            self.out.largest_window_bytes = self.out.largest_window_bytes.max(bytes);
        }
    }
}

fn ingest(
    brokers: &str,
    topic: &str,
    n: usize,
    schema: &Arc<RecordSchema>,
) -> (Phase, IngestOutcome) {
    let c = consumer(brokers, topic);
    let mut engine = EngineLoop::new(schema, WINDOW_MS);
    let first = first_message(&c);
    let phase = measure(n, || {
        engine.consume(&c, first, n);
        engine.finish();
    });
    (phase, engine.out)
}

/// Memory against what the windows hold: one window spanning the whole
/// load, so every event stays buffered; at the end (before the flush) the
/// process RSS, its growth over the phase, and the Arrow bytes in the panes.
struct MemoryOutcome {
    rows: usize,
    arrow_bytes: usize,
    rss_before_kb: u64,
    rss_end_kb: u64,
    peak_kb: u64,
}

fn memory(brokers: &str, topic: &str, n: usize, schema: &Arc<RecordSchema>) -> MemoryOutcome {
    let c = consumer(brokers, topic);
    let mut engine = EngineLoop::new(schema, WINDOW_MS * 10_000);
    let first = first_message(&c);
    reset_peak();
    let rss_before_kb = status_kb("VmRSS:");
    engine.consume(&c, first, n);
    for d in engine.ing.drain() {
        engine.sort(d);
    }
    MemoryOutcome {
        rows: engine.windower.buffered_rows(),
        arrow_bytes: engine.windower.buffered_bytes(),
        rss_before_kb,
        rss_end_kb: status_kb("VmRSS:"),
        peak_kb: status_kb("VmHWM:"),
    }
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

    // Raw and ingest alternate, five rounds, so both see the same broker
    // and page-cache conditions; the best round of each is compared.
    let (mut raws, mut ingests) = (Vec::new(), Vec::new());
    let mut outcome = IngestOutcome::default();
    for _round in 0..ROUNDS {
        let (raw, bytes) = raw_consume(&brokers, &topic, n);
        assert_eq!(bytes, payload_bytes, "raw consume saw every payload byte");
        raws.push(raw);
        let (ing, out) = ingest(&brokers, &topic, n, &schema);
        assert_eq!(out.bad, 0, "simulator events decode");
        assert_eq!(
            out.rows_closed + out.late,
            n,
            "every event is windowed or late"
        );
        ingests.push(ing);
        outcome = out;
    }
    let best = |phases: &[Phase]| -> usize {
        (0..phases.len())
            .max_by(|&a, &b| phases[a].rate().total_cmp(&phases[b].rate()))
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
    for (i, (raw, ing)) in raws.iter().zip(&ingests).enumerate() {
        println!("{}", raw.line(&format!("raw consume #{}", i + 1)));
        println!("{}", ing.line(&format!("ingest #{}", i + 1)));
    }
    println!(
        "  ingest: {} windows closed, {} rows ({} late), largest window {:.1} MiB of Arrow",
        outcome.windows,
        outcome.rows_closed,
        outcome.late,
        outcome.largest_window_bytes as f64 / (1024.0 * 1024.0)
    );
    let (raw, ing) = (&raws[best(&raws)], &ingests[best(&ingests)]);
    let ratio = ing.rate() / raw.rate();
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    println!();
    println!(
        "summary (best of {ROUNDS} rounds; N = {n}; {PARTITIONS}-partition topic, one consumer with the engine's settings):"
    );
    println!(
        "  raw consume    {:>10.0} ev/s  cores used {:.2} (machine {:.2})  peak RSS {:.1} MiB",
        raw.rate(),
        raw.cores(),
        raw.machine_busy / raw.wall,
        mib(raw.peak_kb)
    );
    println!(
        "  ingest         {:>10.0} ev/s  cores used {:.2} (machine {:.2})  {:.0} ev/s per core (target >= {TARGET_PER_CORE:.0}: {})  peak RSS {:.1} MiB",
        ing.rate(),
        ing.cores(),
        ing.machine_busy / ing.wall,
        ing.per_core(),
        met(ing.per_core() >= TARGET_PER_CORE),
        mib(ing.peak_kb)
    );
    println!(
        "  ingest / raw   {ratio:>10.2}       (target >= {TARGET_RATIO}: {})",
        met(ratio >= TARGET_RATIO)
    );
    // The broker shares the machine, so rounds vary; medians show the spread.
    let median = |phases: &[Phase]| -> f64 {
        let mut r: Vec<f64> = phases.iter().map(Phase::rate).collect();
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    };
    println!(
        "  medians: raw {:.0} ev/s, ingest {:.0} ev/s, ratio {:.2}",
        median(&raws),
        median(&ingests),
        median(&ingests) / median(&raws)
    );

    let m = memory(&brokers, &topic, n, &schema);
    assert_eq!(m.rows, n, "every event buffered in the one open window");
    let arrow = m.arrow_bytes as f64 / 1024.0;
    println!(
        "  memory (one open window holding all {n} events): Arrow {:.1} MiB; RSS {:.1} MiB at the end (peak {:.1}), {:.1} MiB before the phase; peak / Arrow {:.2}, growth / Arrow {:.2}  (target <= 3: {})",
        arrow / 1024.0,
        mib(m.rss_end_kb),
        mib(m.peak_kb),
        mib(m.rss_before_kb),
        m.peak_kb as f64 / arrow,
        m.peak_kb.saturating_sub(m.rss_before_kb) as f64 / arrow,
        met(m.peak_kb as f64 / arrow <= 3.0)
    );

    let deleted = block_on(admin.delete_topics(&[&topic], &AdminOptions::new()));
    if let Err(e) = deleted {
        eprintln!("could not delete topic {topic}: {e}");
    }
}
