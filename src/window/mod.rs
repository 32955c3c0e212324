//! Event-time windows (tumbling or sliding) built from panes, with a
//! watermark and allowed lateness.
//!
//! EHR feeds are late, out of order and bursty, so time is the events' own.
//! * **Panes.** Events are stored once, in the pane of length
//!   `gcd(size, slide)` that holds their event time. A window `[s, s + size)`
//!   (s a multiple of `slide`) is the concatenation of its panes' Arrow
//!   batches (shared, not copied), so a slide costs O(pane), never a re-scan
//!   of the window; tumbling windows are the case `slide = size` (one pane
//!   per window).
//! * **Watermark.** Each source partition has its own: largest event time
//!   seen there − `delay`. The operator's watermark is the minimum over
//!   partitions that are still delivering, so a partition read ahead cannot
//!   make the others' events late. The engine marks a partition idle when it
//!   is caught up or silent longer than the idle timeout: it then stops
//!   holding the watermark back, and rejoins when it delivers again.
//! * **Finality.** A window is finalised once the watermark passes its end
//!   plus `allowed_lateness`. Until then an event behind the watermark still
//!   lands in it (counted as late-but-accepted). An event whose every window
//!   is finalised is too late: [`Windower::is_late`] says so before it is
//!   pushed, and the caller routes it (late topic or counted drop), never
//!   silently.
//! * **Lateness is decided by the event's own partition.** An event is also
//!   too late when its own partition, read in offset order, had already
//!   passed every window holding it by more than the allowed lateness, even
//!   if the window is still open because another partition lags; one whose
//!   partition had passed only some of its windows joins the others only
//!   ([`Windower::divert_late`]). So which events are late, and which
//!   windows hold the rest, depends only on each partition's contents, never
//!   on how the consumer interleaved or batched the partitions: two runs (or
//!   a run with restarts, which resume each partition's running maximum from
//!   the commit, [`Windower::max_event_before`]) route the same events late
//!   and fill windows with the same events. The global rule is then implied,
//!   except for a partition marked idle (caught up or silent) that later
//!   delivers old events: a live-feed case where arrival, not content,
//!   decides.
//! * **Memory.** A pane is released as soon as the last window holding it is
//!   finalised. Each pane remembers the source offsets it holds, so the
//!   engine commits only offsets whose events are in no open pane.

pub mod future;
pub mod pane;
mod reach;
pub mod sql;

#[cfg(test)]
mod properties;

use std::collections::BTreeMap;

use datafusion::arrow::array::BooleanArray;
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::record_batch::RecordBatch;
use serde::Serialize;

use reach::PartitionReach;

use crate::schema::decode::DecodedBatch;
pub use pane::{PanePiece, split_by_pane};

/// One partition of one stream source: the key of every per-partition clock,
/// held offset and commit. `source` indexes the topology's sources
/// (`Topology::sources`), so a topology of several topics never mixes up
/// partition 0 of one with partition 0 of another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SourcePartition {
    pub source: u16,
    pub partition: i32,
}

impl SourcePartition {
    pub fn new(source: u16, partition: i32) -> Self {
        SourcePartition { source, partition }
    }
}

/// Offset range of one source partition held by a window (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OffsetRange {
    pub first: i64,
    pub last: i64,
}

impl OffsetRange {
    fn merge(
        into: &mut BTreeMap<SourcePartition, OffsetRange>,
        partition: SourcePartition,
        range: OffsetRange,
    ) {
        into.entry(partition)
            .and_modify(|r| {
                r.first = r.first.min(range.first);
                r.last = r.last.max(range.last);
            })
            .or_insert(range);
    }
}

/// A window whose events are final.
#[derive(Debug, Clone)]
pub struct ClosedWindow {
    pub start_ms: i64,
    pub end_ms: i64,
    /// Per stream source (its index in `Topology::sources`), the window's
    /// events; a source with no event in the window has no entry.
    pub batches: BTreeMap<u16, Vec<RecordBatch>>,
    pub rows: usize,
    /// Per partition, the offsets of the events in this window.
    pub offsets: BTreeMap<SourcePartition, OffsetRange>,
}

impl ClosedWindow {
    /// The events of one source (none if it delivered nothing in the window).
    pub fn batches_of(&self, source: u16) -> Vec<RecordBatch> {
        self.batches.get(&source).cloned().unwrap_or_default()
    }
}

/// Window geometry and timing, in ms of event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    pub size_ms: i64,
    /// Distance between window starts; `size_ms` for tumbling windows.
    pub slide_ms: i64,
    /// Watermark = largest event time seen − this.
    pub delay_ms: i64,
    /// A window is finalised when the watermark passes its end plus this.
    pub allowed_lateness_ms: i64,
}

impl WindowSpec {
    /// Tumbling windows of `size_ms` with no allowed lateness.
    pub fn tumbling(size_ms: i64, delay_ms: i64) -> Self {
        WindowSpec {
            size_ms,
            slide_ms: size_ms,
            delay_ms,
            allowed_lateness_ms: 0,
        }
    }

    /// Every problem with the geometry (the topology validates it too).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.size_ms <= 0 {
            p.push(format!("size must be > 0, got {} ms", self.size_ms));
        }
        if self.slide_ms <= 0 || self.slide_ms > self.size_ms {
            p.push(format!(
                "slide must be > 0 and ≤ size ({} ms), got {} ms",
                self.size_ms, self.slide_ms
            ));
        }
        if self.delay_ms < 0 || self.allowed_lateness_ms < 0 {
            p.push("delay and allowed lateness must be ≥ 0".into());
        }
        p
    }

    /// Pane length: the largest length that divides both size and slide.
    pub fn pane_ms(&self) -> i64 {
        gcd(self.size_ms, self.slide_ms)
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a.abs() } else { gcd(b, a % b) }
}

#[derive(Debug, Default)]
struct Pane {
    /// Per stream source, the pane's events.
    batches: BTreeMap<u16, Vec<Held>>,
    rows: usize,
    offsets: BTreeMap<SourcePartition, OffsetRange>,
}

/// One pushed piece's rows in a pane.
#[derive(Debug)]
struct Held {
    batch: RecordBatch,
    /// Per row, the window end a window must pass to hold the row, and the
    /// largest of them ([`PanePiece::reach`]); `None`: every window holds
    /// every row.
    reach: Option<(Vec<i64>, i64)>,
}

impl Held {
    /// The rows a window ending at `end` holds, and how many.
    fn rows_for(&self, end: i64) -> Option<(RecordBatch, usize)> {
        match &self.reach {
            Some((reach, max)) if *max >= end => {
                let mask: BooleanArray = reach.iter().map(|&r| Some(end > r)).collect();
                let n = mask.true_count();
                (n > 0).then(|| {
                    let b =
                        filter_record_batch(&self.batch, &mask).expect("mask matches the batch");
                    (b, n)
                })
            }
            _ => Some((self.batch.clone(), self.batch.num_rows())),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct PartitionClock {
    max_event_ms: Option<i64>,
    /// Caught up or silent: excluded from the watermark until it delivers again.
    idle: bool,
}

/// What one [`Windower::push`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushStats {
    /// Rows behind the watermark that still landed in an open window
    /// (within the allowed lateness).
    pub late_accepted: usize,
    /// Rows of sliding windows that arrived after some (not all) of their
    /// windows were finalised: they are in the open ones only.
    pub missed_windows: usize,
}

#[derive(Debug)]
pub struct Windower {
    spec: WindowSpec,
    pane_ms: i64,
    panes: BTreeMap<i64, Pane>,
    partitions: BTreeMap<SourcePartition, PartitionClock>,
    /// Per partition, its running maximum by offset (lateness is decided
    /// against it). Kept for revoked partitions too, so a start can restore
    /// it before the assignment arrives.
    reach: BTreeMap<SourcePartition, PartitionReach>,
    /// Every window ending at or before this is finalised.
    closed_through_ms: Option<i64>,
}

impl Windower {
    pub fn new(spec: WindowSpec) -> Self {
        assert!(
            spec.problems().is_empty(),
            "window geometry is validated by the topology: {:?}",
            spec.problems()
        );
        Windower {
            pane_ms: spec.pane_ms(),
            spec,
            panes: BTreeMap::new(),
            partitions: BTreeMap::new(),
            reach: BTreeMap::new(),
            closed_through_ms: None,
        }
    }

    pub fn spec(&self) -> WindowSpec {
        self.spec
    }

    /// Start of the pane holding `t`.
    pub fn pane_start(&self, t: i64) -> i64 {
        t.div_euclid(self.pane_ms) * self.pane_ms
    }

    /// End of the last window that holds `t`: once it is finalised, `t` is too late.
    pub fn last_end(&self, t: i64) -> i64 {
        t.div_euclid(self.spec.slide_ms) * self.spec.slide_ms + self.spec.size_ms
    }

    /// Start of the first window that holds `t`.
    fn first_start(&self, t: i64) -> i64 {
        (t - self.spec.size_ms).div_euclid(self.spec.slide_ms) * self.spec.slide_ms
            + self.spec.slide_ms
    }

    /// End of the first window that holds `t`.
    fn first_end(&self, t: i64) -> i64 {
        self.first_start(t).saturating_add(self.spec.size_ms)
    }

    /// Every window holding an event at `t` is already finalised.
    pub fn is_late(&self, t: i64) -> bool {
        self.closed_through_ms
            .is_some_and(|c| self.last_end(t) <= c)
    }

    /// Every window ending at or before this has been finalised.
    pub fn closed_through_ms(&self) -> Option<i64> {
        self.closed_through_ms
    }

    /// Restores finality after a restart (from the committed resume state), so
    /// events of windows finalised by the previous run are not windowed again.
    pub fn restore(&mut self, closed_through_ms: i64) {
        self.closed_through_ms = Some(
            self.closed_through_ms
                .map_or(closed_through_ms, |c| c.max(closed_through_ms)),
        );
    }

    /// Restores each partition's largest windowed event time before the
    /// offset a restart resumes from (committed with that offset, see
    /// [`Windower::max_event_before`]), so replayed rows are judged late or
    /// not exactly as the first run judged them.
    pub fn restore_reach(&mut self, floors: &BTreeMap<SourcePartition, i64>) {
        for (&p, &floor) in floors {
            self.reach.insert(p, PartitionReach::restored(floor));
        }
    }

    /// Largest event time of the partition's windowed rows before `offset`:
    /// what a commit resuming at `offset` must carry.
    pub fn max_event_before(&self, partition: SourcePartition, offset: i64) -> Option<i64> {
        self.reach.get(&partition).and_then(|r| r.before(offset))
    }

    /// Commits resume at these offsets: what came before them is folded
    /// into one floor per partition, so the running maxima stay small.
    pub fn committed(&mut self, offsets: &BTreeMap<SourcePartition, i64>) {
        for (p, &o) in offsets {
            if let Some(r) = self.reach.get_mut(p) {
                r.committed(o);
            }
        }
    }

    /// Sets the partitions this instance reads; a newly assigned partition
    /// holds the watermark back until its first event (or until it is idle).
    pub fn assign(&mut self, partitions: &[SourcePartition]) {
        self.partitions.retain(|p, _| partitions.contains(p));
        for &p in partitions {
            self.partitions.entry(p).or_default();
        }
    }

    /// The partition is caught up or silent: stop holding the watermark back for it.
    pub fn mark_idle(&mut self, partition: SourcePartition) {
        self.partitions.entry(partition).or_default().idle = true;
    }

    /// The partition delivered an event: it counts for the watermark again.
    pub fn mark_active(&mut self, partition: SourcePartition) {
        self.partitions.entry(partition).or_default().idle = false;
    }

    /// Partitions whose largest event time is ahead of the watermark; pausing
    /// them (backpressure) never stalls the watermark, since the partitions
    /// that hold it back keep delivering.
    pub fn partitions_ahead(&self) -> Vec<SourcePartition> {
        let Some(w) = self.watermark_ms() else {
            return Vec::new();
        };
        self.partitions
            .iter()
            .filter(|(_, c)| c.max_event_ms.is_some_and(|m| m - self.spec.delay_ms > w))
            .map(|(&p, _)| p)
            .collect()
    }

    /// Whether a partition outside `except` still counts for the watermark
    /// (assigned and not idle). If none does, pausing `except` would stall the
    /// watermark, so backpressure must let go.
    pub fn delivering_except(&self, except: &[SourcePartition]) -> bool {
        self.partitions
            .iter()
            .any(|(p, c)| !c.idle && !except.contains(p))
    }

    /// Minimum over delivering partitions of (largest event time − delay);
    /// `None` while a delivering partition has not shown an event yet. When
    /// every partition is idle, the minimum over those with events.
    pub fn watermark_ms(&self) -> Option<i64> {
        let active: Vec<&PartitionClock> = self.partitions.values().filter(|c| !c.idle).collect();
        let min = if active.is_empty() {
            self.partitions
                .values()
                .filter_map(|c| c.max_event_ms)
                .min()
        } else {
            active
                .iter()
                .map(|c| c.max_event_ms)
                .collect::<Option<Vec<i64>>>()?
                .into_iter()
                .min()
        };
        min.map(|m| m - self.spec.delay_ms)
    }

    /// Rows held in panes (each event once, however many windows share it).
    pub fn buffered_rows(&self) -> usize {
        self.panes.values().map(|p| p.rows).sum()
    }

    /// Memory of the Arrow batches held in panes (what DESIGN.md's memory
    /// target is measured against).
    pub fn buffered_bytes(&self) -> usize {
        self.panes
            .values()
            .flat_map(|p| p.batches.values().flatten())
            .map(|h| h.batch.get_array_memory_size())
            .sum()
    }

    /// Panes held in memory.
    pub fn open_panes(&self) -> usize {
        self.panes.len()
    }

    /// Splits one decoded batch's pieces (`split_by_pane` of `decoded` with
    /// this windower's pane length) into the pieces to push and the rows
    /// (indices into `decoded`) that are too late: every window holding the
    /// row is finalised ([`Windower::is_late`]), or the row's own partition,
    /// up to the row in offset order, had passed the row's last window end
    /// by `delay + allowed_lateness`. A row whose partition had passed only
    /// some of its windows joins the others only ([`PanePiece::reach`]).
    /// Both rules make a window's rows a function of each partition's
    /// contents (see the module doc). One pass over the rows' times and
    /// offsets; pieces are cut only when some row is late.
    pub fn divert_late(
        &mut self,
        decoded: &DecodedBatch,
        pieces: Vec<PanePiece>,
    ) -> (Vec<PanePiece>, Vec<u32>) {
        let Some(source) = pieces.first().map(|p| p.source) else {
            return (pieces, Vec::new());
        };
        let behind = self
            .spec
            .delay_ms
            .saturating_add(self.spec.allowed_lateness_ms);
        let n = decoded.event_time_ms.len();
        let mut late_row = vec![false; n];
        let mut reach_of = vec![i64::MIN; n];
        let (mut any_late, mut any_partial) = (false, false);
        let mut current: Option<(i32, PartitionReach)> = None;
        for r in 0..n {
            let (t, p, o) = (
                decoded.event_time_ms[r],
                decoded.partition[r],
                decoded.offset[r],
            );
            // Rows come in runs of one partition: keep its reach at hand.
            if current.as_ref().is_none_or(|(q, _)| *q != p) {
                if let Some((q, done)) = current.take() {
                    self.reach.insert(SourcePartition::new(source, q), done);
                }
                let sp = SourcePartition::new(source, p);
                current = Some((p, self.reach.remove(&sp).unwrap_or_default()));
            }
            let Some((_, running)) = current.as_mut() else {
                unreachable!("set above")
            };
            let reach = running
                .before(o)
                .map_or(i64::MIN, |m| m.saturating_sub(behind));
            if self.is_late(t) || self.last_end(t) <= reach {
                late_row[r] = true;
                any_late = true;
                continue;
            }
            if self.first_end(t) <= reach {
                reach_of[r] = reach;
                any_partial = true;
            }
            running.windowed(o, t);
        }
        if let Some((q, done)) = current {
            self.reach.insert(SourcePartition::new(source, q), done);
        }
        if !any_late && !any_partial {
            return (pieces, Vec::new());
        }
        let mut keep = Vec::with_capacity(pieces.len());
        let mut late = Vec::new();
        for piece in pieces {
            let (gone, stay): (Vec<u32>, Vec<u32>) = (0..piece.rows.len() as u32)
                .partition(|&i| late_row[piece.rows[i as usize] as usize]);
            late.extend(gone.iter().map(|&i| piece.rows[i as usize]));
            if stay.is_empty() {
                continue;
            }
            let mut piece = if gone.is_empty() {
                piece
            } else {
                piece.select(&stay, &decoded.partition, &decoded.offset)
            };
            if piece.rows.iter().any(|&r| reach_of[r as usize] != i64::MIN) {
                piece.reach = Some(piece.rows.iter().map(|&r| reach_of[r as usize]).collect());
            }
            keep.push(piece);
        }
        late.sort_unstable();
        (keep, late)
    }

    /// Adds decoded events of source 0. The caller has already diverted
    /// too-late events (`is_late`), so every row lands in a pane of an open window.
    pub fn push(&mut self, decoded: DecodedBatch) -> PushStats {
        let pieces = split_by_pane(&decoded, self.pane_ms, 0);
        self.push_pieces(pieces)
    }

    /// Adds decoded events already cut by pane (`split_by_pane` with this
    /// windower's pane length), with no per-row work here.
    pub fn push_pieces(&mut self, pieces: Vec<PanePiece>) -> PushStats {
        let mut stats = PushStats::default();
        let watermark = self.watermark_ms();
        for piece in pieces {
            let n = piece.num_rows();
            if n == 0 {
                continue;
            }
            debug_assert_eq!(piece.pane_start, self.pane_start(piece.min_event_ms));
            debug_assert!(
                !self.is_late(piece.min_event_ms),
                "late rows are diverted before push"
            );
            if let Some(w) = watermark {
                stats.late_accepted += if piece.max_event_ms < w {
                    n
                } else if piece.min_event_ms < w {
                    piece.event_time_ms.iter().filter(|&&t| t < w).count()
                } else {
                    0
                };
            }
            // All rows of a pane share their first window.
            if self
                .closed_through_ms
                .is_some_and(|c| self.first_start(piece.min_event_ms) + self.spec.size_ms <= c)
            {
                stats.missed_windows += n;
            }
            for (p, t) in piece.clocks {
                let clock = self.partitions.entry(p).or_default();
                clock.max_event_ms = Some(clock.max_event_ms.map_or(t, |m| m.max(t)));
            }
            let pane = self.panes.entry(piece.pane_start).or_default();
            pane.rows += n;
            let reach = piece.reach.map(|r| {
                let max = r.iter().copied().max().unwrap_or(i64::MIN);
                (r, max)
            });
            pane.batches.entry(piece.source).or_default().push(Held {
                batch: piece.batch,
                reach,
            });
            for (p, r) in piece.offsets {
                OffsetRange::merge(&mut pane.offsets, p, r);
            }
        }
        stats
    }

    /// Finalises and returns, oldest first, every window whose end plus the
    /// allowed lateness the watermark has passed.
    pub fn advance(&mut self) -> Vec<ClosedWindow> {
        match self.watermark_ms() {
            Some(w) => self.close_until(w.saturating_sub(self.spec.allowed_lateness_ms)),
            None => Vec::new(),
        }
    }

    /// Finalises every window that holds an event (end of a bounded stream).
    pub fn flush(&mut self) -> Vec<ClosedWindow> {
        self.close_until(i64::MAX)
    }

    /// Finalises windows ending at or before `limit`.
    fn close_until(&mut self, limit: i64) -> Vec<ClosedWindow> {
        let (size, slide) = (self.spec.size_ms, self.spec.slide_ms);
        let mut closed = Vec::new();
        while let Some((&first_pane, _)) = self.panes.first_key_value() {
            // The next window to finalise: after the last finalised one, and
            // not before the first window holding a buffered event.
            let mut start = self.first_start(first_pane);
            if let Some(c) = self.closed_through_ms {
                start = start.max(c - size + slide);
            }
            let end = start.saturating_add(size);
            if end > limit {
                break;
            }
            let mut window = ClosedWindow {
                start_ms: start,
                end_ms: end,
                batches: BTreeMap::new(),
                rows: 0,
                offsets: BTreeMap::new(),
            };
            for (_, pane) in self.panes.range(start..end) {
                for (&source, held) in &pane.batches {
                    for (batch, rows) in held.iter().filter_map(|h| h.rows_for(end)) {
                        window.batches.entry(source).or_default().push(batch);
                        window.rows += rows;
                    }
                }
                for (&p, &r) in &pane.offsets {
                    OffsetRange::merge(&mut window.offsets, p, r);
                }
            }
            self.closed_through_ms = Some(self.closed_through_ms.map_or(end, |c| c.max(end)));
            // Release panes whose last window is now final.
            let through = end;
            let released: Vec<i64> = self
                .panes
                .keys()
                .copied()
                .take_while(|&p| self.last_end(p) <= through)
                .collect();
            for p in released {
                self.panes.remove(&p);
            }
            if window.rows > 0 {
                closed.push(window);
            }
        }
        // Windows that never received an event are finalised too: the
        // watermark alone decides finality.
        if limit != i64::MAX && limit >= i64::MIN + size {
            let through = (limit - size).div_euclid(slide) * slide + size;
            let blocked = self
                .panes
                .keys()
                .next()
                .is_some_and(|&p| self.first_start(p) + size <= through);
            if !blocked && self.closed_through_ms.is_none_or(|c| c < through) {
                self.closed_through_ms = Some(through);
            }
        }
        closed
    }

    /// Lowest offset per partition still held by a pane: a commit may not go
    /// past it, or a restart would lose those events.
    pub fn held_offsets(&self) -> BTreeMap<SourcePartition, i64> {
        let mut held: BTreeMap<SourcePartition, i64> = BTreeMap::new();
        for pane in self.panes.values() {
            for (&p, r) in &pane.offsets {
                held.entry(p)
                    .and_modify(|o| *o = (*o).min(r.first))
                    .or_insert(r.first);
            }
        }
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn sp(partition: i32) -> SourcePartition {
        SourcePartition::new(0, partition)
    }

    fn decoded(times: &[i64], first_offset: i64) -> DecodedBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("t", DataType::Int64, false)]));
        DecodedBatch {
            batch: RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(times.to_vec()))])
                .unwrap(),
            event_time_ms: times.to_vec(),
            partition: vec![0; times.len()],
            offset: (first_offset..first_offset + times.len() as i64).collect(),
        }
    }

    #[test]
    fn window_closes_only_when_watermark_passes_its_end() {
        let mut w = Windower::new(WindowSpec::tumbling(100, 10));
        w.push(decoded(&[5, 50, 99], 0));
        assert!(w.advance().is_empty());
        w.push(decoded(&[109], 3)); // watermark 99 < end 100
        assert!(w.advance().is_empty());
        w.push(decoded(&[110], 4)); // watermark 100 = end 100
        let closed = w.advance();
        assert_eq!(closed.len(), 1);
        assert_eq!(
            (closed[0].start_ms, closed[0].end_ms, closed[0].rows),
            (0, 100, 3)
        );
        assert_eq!(closed[0].offsets[&sp(0)], OffsetRange { first: 0, last: 2 });
        assert!(w.is_late(99));
        assert!(!w.is_late(100));
    }

    fn on_partition(mut d: DecodedBatch, p: i32) -> DecodedBatch {
        d.partition = vec![p; d.partition.len()];
        d
    }

    #[test]
    fn watermark_is_the_minimum_over_delivering_partitions() {
        let mut w = Windower::new(WindowSpec::tumbling(100, 0));
        w.assign(&[sp(0), sp(1)]);
        w.push(on_partition(decoded(&[10, 250], 0), 0));
        assert_eq!(w.watermark_ms(), None, "partition 1 has not delivered yet");
        assert!(w.advance().is_empty());
        w.push(on_partition(decoded(&[20], 2), 1));
        assert_eq!(w.watermark_ms(), Some(20));
        assert!(w.advance().is_empty(), "partition 1 is still in window 0");
        w.push(on_partition(decoded(&[130], 3), 1));
        let closed = w.advance();
        assert_eq!(closed.len(), 1, "both partitions past 100");
        assert_eq!(closed[0].rows, 2);
        // Partition 1 catches up: it no longer holds the watermark back.
        w.mark_idle(sp(1));
        assert_eq!(w.watermark_ms(), Some(250));
        assert_eq!(w.advance().len(), 1);
        // ...and rejoins when it delivers again.
        w.mark_active(sp(1));
        w.push(on_partition(decoded(&[260], 4), 1));
        assert_eq!(w.watermark_ms(), Some(250));
    }

    #[test]
    fn boundary_timestamp_belongs_to_the_next_window() {
        let w = Windower::new(WindowSpec::tumbling(100, 0));
        assert_eq!(w.pane_start(99), 0);
        assert_eq!(w.pane_start(100), 100);
        assert_eq!(w.pane_start(-1), -100);
        assert_eq!(w.last_end(99), 100);
        assert_eq!(w.last_end(100), 200);
    }

    #[test]
    fn out_of_order_rows_within_delay_land_in_their_window() {
        let mut w = Windower::new(WindowSpec::tumbling(100, 50));
        w.push(decoded(&[120, 90, 130, 95], 0));
        let closed = w.advance();
        assert!(closed.is_empty(), "watermark 80 < 100");
        w.push(decoded(&[150], 4));
        let closed = w.advance();
        assert_eq!(closed[0].rows, 2);
        assert_eq!(closed[0].offsets[&sp(0)], OffsetRange { first: 1, last: 3 });
    }

    #[test]
    fn held_offsets_never_pass_an_open_window() {
        let mut w = Windower::new(WindowSpec::tumbling(100, 0));
        w.push(decoded(&[150, 10, 160], 7)); // offsets 7,8,9; 10 is in window 0
        assert_eq!(w.held_offsets()[&sp(0)], 7);
        let closed = w.advance(); // watermark 160 closes window 0
        assert_eq!(closed.len(), 1);
        assert_eq!(
            w.held_offsets()[&sp(0)],
            7,
            "offset 7 (t=150) is still open"
        );
        assert_eq!(w.flush().len(), 1);
        assert!(w.held_offsets().is_empty());
    }
}
