//! Decoding off the poll thread.
//!
//! Polling librdkafka one message at a time costs about as much per event as
//! decoding it, so a loop doing both serially reaches only about half of the
//! raw consume rate. The poll thread therefore only copies each message into
//! a [`RawBatch`] (one buffer, no allocation per message once warm) and a
//! worker thread decodes whole batches into Arrow while the next batch is
//! being polled. Results come back in order; the poll thread then decides,
//! against the windower it alone owns, which rows are late or replayed
//! ([`sort_rows`]) before pushing the rest.
//!
//! Offsets: rows in flight are in no window yet, so [`Ingest::held_offsets`]
//! reports them and a commit never passes them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::message::{Headers, Message};

use crate::schema::decode::{DecodeError, DecodedBatch, EventDecoder};
use crate::window::future::{FutureBound, Latest};
use crate::window::{PanePiece, PushStats, SourcePartition, Windower, split_by_pane};

/// Messages per batch handed to the decode thread.
pub const BATCH_MESSAGES: usize = 4096;
/// A batch holding this many payload and key bytes goes to the decode thread
/// at once: it bounds memory in flight and keeps byte ranges within `u32`.
const MAX_BATCH_BYTES: usize = 64 << 20;
/// A batch older than this goes to the decode thread however small, so a
/// slow but steady source is still windowed promptly.
const MAX_BATCH_AGE: Duration = Duration::from_millis(100);
/// How often (in messages) `add` looks at the clock for [`MAX_BATCH_AGE`]:
/// a clock read costs about a tenth of polling a message here.
const AGE_CHECK_EVERY: usize = 64;
/// Batches queued for or held by the decode thread before `add` waits: two
/// keep it busy while the poll thread fills the next one.
const IN_FLIGHT: usize = 2;

/// One source message, copied: enough to decode it and, if it must be routed
/// elsewhere (dead letter, late), to forward it with its bytes and headers.
#[derive(Debug, Clone)]
struct RawMessage {
    partition: i32,
    offset: i64,
    payload: (u32, u32),
    key: Option<(u32, u32)>,
    /// Source headers are rare on EHR feeds; none means no allocation.
    headers: Option<Vec<(String, Vec<u8>)>>,
}

/// Messages copied from the consumer, payloads and keys in one buffer; all
/// of one stream source, so the worker decodes them with that source's decoder.
#[derive(Debug, Default)]
pub struct RawBatch {
    /// The stream source (index in `Topology::sources`) of every message.
    source: u16,
    bytes: Vec<u8>,
    messages: Vec<RawMessage>,
    /// Per partition delivering into this batch: (partition, lowest offset,
    /// highest offset). Consumers deliver runs of one partition, so the last
    /// entry is nearly always the one to update.
    spans: Vec<(i32, i64, i64)>,
    /// When the first message was copied in.
    started: Option<Instant>,
}

/// A message of a [`RawBatch`], for routing it elsewhere.
pub struct SourceMessage<'a> {
    pub source: u16,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
    pub headers: &'a [(String, Vec<u8>)],
}

impl RawBatch {
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The stream source of every message in the batch.
    pub fn source(&self) -> u16 {
        self.source
    }

    fn push<M: Message>(&mut self, msg: &M) {
        let mut span = |b: &[u8]| {
            let start = self.bytes.len() as u32;
            self.bytes.extend_from_slice(b);
            (start, self.bytes.len() as u32)
        };
        let payload = span(msg.payload().unwrap_or(&[]));
        let key = msg.key().map(&mut span);
        let headers = msg.headers().map(|h| {
            h.iter()
                .map(|h| (h.key.to_string(), h.value.unwrap_or(&[]).to_vec()))
                .collect()
        });
        let (partition, offset) = (msg.partition(), msg.offset());
        match self.spans.iter_mut().rev().find(|s| s.0 == partition) {
            Some(s) => {
                s.1 = s.1.min(offset);
                s.2 = s.2.max(offset);
            }
            None => self.spans.push((partition, offset, offset)),
        }
        self.messages.push(RawMessage {
            partition,
            offset,
            payload,
            key,
            headers,
        });
    }

    fn bytes(&self, (start, end): (u32, u32)) -> &[u8] {
        &self.bytes[start as usize..end as usize]
    }

    pub fn message(&self, i: usize) -> SourceMessage<'_> {
        let m = &self.messages[i];
        SourceMessage {
            source: self.source,
            partition: m.partition,
            offset: m.offset,
            key: m.key.map(|k| self.bytes(k)),
            payload: self.bytes(m.payload),
            headers: m.headers.as_deref().unwrap_or(&[]),
        }
    }

    /// Lowest offset per partition in this batch.
    fn lowest_offsets(&self) -> BTreeMap<SourcePartition, i64> {
        self.spans
            .iter()
            .map(|&(p, low, _)| (SourcePartition::new(self.source, p), low))
            .collect()
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.messages.clear();
        self.spans.clear();
        self.started = None;
    }
}

/// A batch decoded by the worker: the good rows in message order, the same
/// rows cut by pane, which message each row came from, and why the others
/// failed.
pub struct Decoded {
    pub raw: RawBatch,
    pub rows: DecodedBatch,
    pub pieces: Vec<PanePiece>,
    pub row_message: Vec<u32>,
    pub errors: Vec<(usize, DecodeError)>,
}

fn decode(
    decoders: &mut BTreeMap<u16, EventDecoder>,
    pane_ms: i64,
    raw: RawBatch,
    bound: Option<Latest>,
) -> Decoded {
    let decoder = decoders
        .get_mut(&raw.source)
        .expect("a batch is only filled from a stream source with a decoder");
    let mut row_message = Vec::with_capacity(raw.len());
    let mut errors = Vec::new();
    for (i, m) in raw.messages.iter().enumerate() {
        match decoder.decode_within(raw.bytes(m.payload), m.partition, m.offset, bound) {
            Ok(_) => row_message.push(i as u32),
            Err(e) => errors.push((i, e)),
        }
    }
    let rows = decoder.finish();
    Decoded {
        pieces: split_by_pane(&rows, pane_ms, raw.source),
        rows,
        raw,
        row_message,
        errors,
    }
}

/// The poll thread's side of the decode thread.
pub struct Ingest {
    filling: RawBatch,
    to_worker: Option<SyncSender<RawBatch>>,
    from_worker: Receiver<Decoded>,
    worker: Option<JoinHandle<()>>,
    /// Lowest offsets of each batch sent and not yet returned, oldest first.
    in_flight: VecDeque<BTreeMap<SourcePartition, i64>>,
    /// Batches sent and not yet received back from the worker (queued,
    /// being decoded or waiting in its outbox): never more than
    /// [`IN_FLIGHT`], so neither channel ever fills and neither side can
    /// block the other.
    at_worker: usize,
    /// Received from the worker, not yet taken by the caller.
    ready: VecDeque<Decoded>,
    spare: Vec<RawBatch>,
    /// Per partition, the offset after the last message sent for decoding.
    next_offset: BTreeMap<SourcePartition, i64>,
    /// Partitions and message counts of batches sent since [`Ingest::take_sent`].
    sent: Sent,
}

/// What went to the decode thread since the caller last asked.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Sent {
    pub messages: u64,
    pub partitions: Vec<SourcePartition>,
}

impl Ingest {
    /// `pane_ms` is the windower's pane length (`WindowSpec::pane_ms`): the
    /// worker cuts decoded rows by pane, so the poll thread files whole pieces.
    pub fn new(decoder: EventDecoder, pane_ms: i64) -> Ingest {
        Ingest::with_future_bound(decoder, pane_ms, None)
    }

    /// [`Ingest::new`], with events too far ahead of the wall clock
    /// (`future`, see `window::future`) decoded as errors, so they are
    /// dead-lettered and never reach a watermark.
    pub fn with_future_bound(
        decoder: EventDecoder,
        pane_ms: i64,
        future: Option<FutureBound>,
    ) -> Ingest {
        Ingest::with_sources(BTreeMap::from([(0, decoder)]), pane_ms, future)
    }

    /// [`Ingest::with_future_bound`] for several stream sources: one decoder
    /// per source index; [`Ingest::add_from`] names each message's source.
    pub fn with_sources(
        mut decoders: BTreeMap<u16, EventDecoder>,
        pane_ms: i64,
        future: Option<FutureBound>,
    ) -> Ingest {
        let (to_worker, inbox) = sync_channel::<RawBatch>(IN_FLIGHT);
        let (outbox, from_worker) = sync_channel::<Decoded>(IN_FLIGHT);
        let worker = std::thread::Builder::new()
            .name("resynth-decode".into())
            .spawn(move || {
                for raw in inbox {
                    let bound = future.map(|f| f.now());
                    if outbox
                        .send(decode(&mut decoders, pane_ms, raw, bound))
                        .is_err()
                    {
                        break;
                    }
                }
            })
            .expect("the OS can start a thread");
        Ingest {
            filling: RawBatch::default(),
            to_worker: Some(to_worker),
            from_worker,
            worker: Some(worker),
            in_flight: VecDeque::new(),
            at_worker: 0,
            ready: VecDeque::new(),
            spare: Vec::new(),
            next_offset: BTreeMap::new(),
            sent: Sent::default(),
        }
    }

    /// Copies a message in; a full batch (messages or bytes), or one older
    /// than [`MAX_BATCH_AGE`], goes to the decode thread (waiting while it already
    /// has [`IN_FLIGHT`] batches: that is the backpressure from decoding onto
    /// polling). Returns whether a batch was sent.
    pub fn add<M: Message>(&mut self, msg: &M) -> bool {
        self.add_from(0, msg)
    }

    /// [`Ingest::add`] of a message of stream source `source`. A batch holds
    /// one source's messages, so a message of another source sends the batch
    /// being filled first (consumers deliver runs of one partition, so this
    /// is rare).
    pub fn add_from<M: Message>(&mut self, source: u16, msg: &M) -> bool {
        let switched = !self.filling.is_empty() && self.filling.source != source;
        if switched {
            self.send();
        }
        self.filling.source = source;
        self.filling.push(msg);
        let n = self.filling.len();
        if n == 1 {
            self.filling.started = Some(Instant::now());
        }
        let full = n >= BATCH_MESSAGES || self.filling.bytes.len() >= MAX_BATCH_BYTES;
        // Every message while the batch is small (a slow source), then every
        // AGE_CHECK_EVERY-th (a busy one fills the batch long before).
        let old = (n < AGE_CHECK_EVERY || n.is_multiple_of(AGE_CHECK_EVERY))
            && self
                .filling
                .started
                .is_some_and(|t| t.elapsed() >= MAX_BATCH_AGE);
        if full || old {
            self.send();
        }
        switched || full || old
    }

    /// Batches were sent and not all taken back yet.
    pub fn awaiting(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Nothing copied in is waiting to be taken back decoded.
    pub fn is_empty(&self) -> bool {
        self.filling.is_empty() && self.in_flight.is_empty()
    }

    /// Sends the batch being filled, however small.
    pub fn send(&mut self) {
        if self.filling.is_empty() {
            return;
        }
        if self.at_worker >= IN_FLIGHT {
            self.receive();
        }
        let next = self.spare.pop().unwrap_or_default();
        let batch = std::mem::replace(&mut self.filling, next);
        self.in_flight.push_back(batch.lowest_offsets());
        self.sent.messages += batch.len() as u64;
        for &(p, _, high) in &batch.spans {
            let p = SourcePartition::new(batch.source, p);
            self.next_offset.insert(p, high + 1);
            if !self.sent.partitions.contains(&p) {
                self.sent.partitions.push(p);
            }
        }
        self.at_worker += 1;
        self.to_worker
            .as_ref()
            .expect("the sender lives until drop")
            .send(batch)
            .expect("the decode thread runs until the sender is dropped");
    }

    /// Waits for the worker's oldest batch.
    fn receive(&mut self) {
        let d = self
            .from_worker
            .recv()
            .expect("the decode thread answers every batch");
        self.at_worker -= 1;
        self.ready.push_back(d);
    }

    /// A decoded batch if one is ready, oldest first.
    pub fn try_take(&mut self) -> Option<Decoded> {
        if self.ready.is_empty() && self.at_worker > 0 {
            match self.from_worker.try_recv() {
                Ok(d) => {
                    self.at_worker -= 1;
                    self.ready.push_back(d);
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => panic!("the decode thread ended early"),
            }
        }
        let d = self.ready.pop_front()?;
        self.in_flight.pop_front();
        Some(d)
    }

    /// Sends what is being filled and returns every batch in flight, oldest
    /// first, waiting for the worker.
    pub fn drain(&mut self) -> Vec<Decoded> {
        self.send();
        while self.at_worker > 0 {
            self.receive();
        }
        self.in_flight.clear();
        self.ready.drain(..).collect()
    }

    /// Per partition, the offset after the last message sent for decoding
    /// (messages still being copied in are held, see `held_offsets`).
    pub fn next_offsets(&self) -> &BTreeMap<SourcePartition, i64> {
        &self.next_offset
    }

    /// What was sent for decoding since the last call.
    pub fn take_sent(&mut self) -> Sent {
        std::mem::take(&mut self.sent)
    }

    /// Hands a batch's buffers back for reuse.
    pub fn recycle(&mut self, mut raw: RawBatch) {
        raw.clear();
        if self.spare.len() < IN_FLIGHT {
            self.spare.push(raw);
        }
    }

    /// Lowest offset per partition of messages copied but not yet windowed.
    pub fn held_offsets(&self) -> BTreeMap<SourcePartition, i64> {
        let mut held = self.filling.lowest_offsets();
        for low in &self.in_flight {
            for (&p, &o) in low {
                held.entry(p)
                    .and_modify(|h: &mut i64| *h = (*h).min(o))
                    .or_insert(o);
            }
        }
        held
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        // Closing the channel ends the worker's loop; its outbox has room for
        // every batch it still holds, so it never blocks on the way out.
        self.to_worker.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// What became of one decoded batch's messages.
#[derive(Debug, Default)]
pub struct Sorted {
    /// Message indices too late for any open window.
    pub late: Vec<usize>,
    /// Of `late`: FHIR versions and withdrawals (`schema::fhir::is_replacement`).
    pub late_replacements: u64,
    /// Message indices that did not decode, with the reason.
    pub bad: Vec<(usize, DecodeError)>,
    /// Messages a previous run already handled (re-read below its read position).
    pub replayed: u64,
    pub rows_windowed: usize,
    pub push: PushStats,
}

/// Pushes a decoded batch's rows into the windower, except rows whose every
/// window is already final: those are late (or, below `read_through`, were
/// handled by the previous run and are skipped, as are bad events there).
/// Rows of one pane share their windows, so lateness is decided per piece.
pub fn sort_rows(
    decoded: &mut Decoded,
    windower: &mut Windower,
    read_through: &BTreeMap<SourcePartition, i64>,
) -> Sorted {
    let source = decoded.raw.source;
    let replayed = |p: i32, o: i64| {
        read_through
            .get(&SourcePartition::new(source, p))
            .is_some_and(|&r| o < r)
    };
    let mut sorted = Sorted::default();
    for (i, e) in decoded.errors.drain(..) {
        let m = &decoded.raw.messages[i];
        if replayed(m.partition, m.offset) {
            sorted.replayed += 1;
        } else {
            sorted.bad.push((i, e));
        }
    }
    let rows = &decoded.rows;
    let (keep, late) = windower.divert_late(rows, std::mem::take(&mut decoded.pieces));
    sorted.rows_windowed = keep.iter().map(|p| p.num_rows()).sum();
    for r in late {
        let r = r as usize;
        if replayed(rows.partition[r], rows.offset[r]) {
            sorted.replayed += 1;
        } else {
            sorted.late.push(decoded.row_message[r] as usize);
            sorted.late_replacements +=
                u64::from(crate::schema::fhir::is_replacement(&rows.batch, r));
        }
    }
    if !keep.is_empty() {
        sorted.push = windower.push_pieces(keep);
    }
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::RecordSchema;
    use crate::source::simulator::{LabEvent, encode_event_avro};
    use crate::topology::EventFormat;
    use crate::window::WindowSpec;
    use rdkafka::Timestamp;
    use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
    use std::sync::Arc;

    fn sp(partition: i32) -> SourcePartition {
        SourcePartition::new(0, partition)
    }

    fn schema() -> Arc<RecordSchema> {
        Arc::new(RecordSchema::load(std::path::Path::new("schemas/ehr/lab_result.avsc")).unwrap())
    }

    fn ingest() -> Ingest {
        Ingest::new(
            EventDecoder::new(schema(), EventFormat::Avro, "event_time").unwrap(),
            1_000,
        )
    }

    fn payload(t: i64) -> Vec<u8> {
        let e = LabEvent {
            event_id: format!("e{t}"),
            patient_id: "p1".into(),
            event_time_ms: t,
            age: 61,
            sex: "F".into(),
            race: "White".into(),
            ethnicity: "Not Hispanic".into(),
            zip3: "021".into(),
            diagnosis_code: "E11.9".into(),
            lab_code: "4548-4".into(),
            lab_value: Some(7.2),
            lab_unit: "%".into(),
        };
        encode_event_avro(&schema(), &e).unwrap()
    }

    fn message(partition: i32, offset: i64, payload: Vec<u8>) -> OwnedMessage {
        OwnedMessage::new(
            Some(payload),
            Some(format!("k{offset}").into_bytes()),
            "src".into(),
            Timestamp::NotAvailable,
            partition,
            offset,
            None,
        )
    }

    #[test]
    fn offsets_stay_held_until_the_decoded_batch_is_taken() {
        let mut ing = ingest();
        ing.add(&message(0, 10, payload(1_000)));
        ing.add(&message(1, 4, payload(1_001)));
        ing.add(&message(0, 11, payload(1_002)));
        assert_eq!(
            ing.held_offsets(),
            BTreeMap::from([(sp(0), 10), (sp(1), 4)])
        );
        ing.send();
        ing.add(&message(0, 12, payload(1_003)));
        assert_eq!(
            ing.held_offsets(),
            BTreeMap::from([(sp(0), 10), (sp(1), 4)]),
            "in flight"
        );
        let first = loop {
            if let Some(d) = ing.try_take() {
                break d;
            }
            std::thread::yield_now();
        };
        assert_eq!(first.rows.offset, vec![10, 4, 11]);
        assert_eq!(ing.held_offsets(), BTreeMap::from([(sp(0), 12)]));
        let rest = ing.drain();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].rows.offset, vec![12]);
        assert!(ing.is_empty());
        assert!(ing.held_offsets().is_empty());
    }

    #[test]
    fn a_batch_goes_to_the_worker_once_its_bytes_reach_the_cap() {
        let mut ing = ingest();
        assert!(!ing.add(&message(0, 1, payload(1_000))));
        assert!(ing.add(&message(0, 2, vec![0u8; MAX_BATCH_BYTES])));
        assert!(ing.awaiting());
        let d = ing.drain().pop().unwrap();
        assert_eq!(d.raw.len(), 2);
        assert_eq!(d.rows.offset, vec![1]);
        assert_eq!(d.errors.len(), 1, "64 MiB of zeros is not a lab event");
    }

    #[test]
    fn batches_come_back_in_order_and_bad_messages_keep_their_bytes() {
        let mut ing = ingest();
        let mut sent = 0i64;
        for _ in 0..3 * BATCH_MESSAGES + 5 {
            let bytes = if sent % 1000 == 7 {
                b"\x02not avro".to_vec()
            } else {
                payload(sent)
            };
            let mut m = message(0, sent, bytes);
            if sent == 7 {
                m = m.replace_headers(Some(OwnedHeaders::new().insert(Header {
                    key: "trace",
                    value: Some("abc"),
                })));
            }
            ing.add(&m);
            sent += 1;
        }
        let mut all = Vec::new();
        while let Some(d) = ing.try_take() {
            all.push(d);
        }
        all.extend(ing.drain());
        let offsets: Vec<i64> = all.iter().flat_map(|d| d.rows.offset.clone()).collect();
        let bad: Vec<i64> = all
            .iter()
            .flat_map(|d| d.errors.iter().map(|(i, _)| d.raw.message(*i).offset))
            .collect();
        assert_eq!(bad, (0..sent).filter(|o| o % 1000 == 7).collect::<Vec<_>>());
        assert_eq!(
            offsets,
            (0..sent).filter(|o| o % 1000 != 7).collect::<Vec<_>>()
        );
        let (i, e) = &all[0].errors[0];
        let m = all[0].raw.message(*i);
        assert_eq!(m.payload, b"\x02not avro");
        assert_eq!(m.key, Some(&b"k7"[..]));
        assert_eq!(m.headers, &[("trace".to_string(), b"abc".to_vec())]);
        // b"\x02n" is a one-letter event_id; "ot avro" is no patient_id.
        assert!(e.to_string().contains("patient_id"), "{e}");
    }

    #[test]
    fn an_event_far_ahead_of_the_wall_clock_is_an_error_and_moves_no_watermark() {
        let future = FutureBound {
            max_future_ms: 86_400_000,
        };
        let mut ing = Ingest::with_future_bound(
            EventDecoder::new(schema(), EventFormat::Avro, "event_time").unwrap(),
            1_000,
            Some(future),
        );
        let now = crate::window::future::wall_clock_ms();
        let year_3000 = 32_503_680_000_000;
        ing.add(&message(0, 0, payload(1_000)));
        ing.add(&message(0, 1, payload(year_3000)));
        // Within the bound: an hour ahead is accepted.
        ing.add(&message(0, 2, payload(now + 3_600_000)));
        let mut d = ing.drain().pop().unwrap();
        assert_eq!(d.rows.offset, vec![0, 2]);
        let (i, e) = &d.errors[0];
        assert_eq!(d.raw.message(*i).offset, 1);
        assert_eq!(e.metric_reason(), "event_time_future");
        let text = e.to_string();
        assert!(
            text.contains("86400000 ms ahead of the wall clock"),
            "{text}"
        );
        assert!(!text.contains("32503680000000"), "no value in the reason");
        let mut w = Windower::new(WindowSpec::tumbling(1_000, 0));
        let sorted = sort_rows(&mut d, &mut w, &BTreeMap::new());
        assert_eq!(sorted.bad.len(), 1);
        assert!(
            w.watermark_ms().unwrap() <= now + 3_600_000,
            "the year-3000 event is in no watermark"
        );
    }

    #[test]
    fn late_and_replayed_rows_are_sorted_out_before_windowing() {
        let mut w = Windower::new(WindowSpec::tumbling(1_000, 0));
        w.restore(2_000); // windows ending at or before t=2000 are final
        let mut ing = ingest();
        // offset: event time
        for (o, t) in [(0, 500), (1, 2_500), (2, 1_500), (3, 2_600), (4, 900)] {
            ing.add(&message(0, o, payload(t)));
        }
        ing.add(&message(0, 5, b"junk".to_vec()));
        ing.add(&message(0, 6, b"junk".to_vec()));
        let mut d = ing.drain().pop().unwrap();
        // The previous run read partition 0 up to offset 3 (exclusive): of
        // the late rows, those below it are replays, the others late.
        let read_through = BTreeMap::from([(sp(0), 3)]);
        let sorted = sort_rows(&mut d, &mut w, &read_through);
        assert_eq!(sorted.replayed, 2, "t=500 and t=1500 below offset 3");
        assert_eq!(
            sorted
                .late
                .iter()
                .map(|&i| d.raw.message(i).offset)
                .collect::<Vec<_>>(),
            vec![4]
        );
        assert_eq!(
            sorted
                .bad
                .iter()
                .map(|(i, _)| d.raw.message(*i).offset)
                .collect::<Vec<_>>(),
            vec![5, 6]
        );
        assert_eq!(sorted.rows_windowed, 2);
        assert_eq!(w.buffered_rows(), 2);
        assert_eq!(w.held_offsets(), BTreeMap::from([(sp(0), 1)]));
    }
}
