//! Event-time tumbling windows with a watermark.
//!
//! Events are assigned to the window containing their event time. Each source
//! partition has its own watermark (largest event time seen there − delay);
//! the operator's watermark is the minimum over partitions that are still
//! delivering, so a partition read ahead of the others cannot make their
//! events late. A partition that is caught up (at its end) stops holding the
//! watermark back and rejoins when it delivers again. A window closes once
//! the watermark passes its end. An event for a window that has
//! already closed is late: the caller routes it (dead-letter topic) and counts
//! it, never drops it silently. Each window remembers the source offsets it
//! holds, so the engine commits only offsets whose events are finalised.

pub mod sql;

use std::collections::BTreeMap;

use datafusion::arrow::array::UInt32Array;
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::record_batch::RecordBatch;
use serde::Serialize;

use crate::schema::decode::DecodedBatch;

/// Offset range of one source partition held by a window (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OffsetRange {
    pub first: i64,
    pub last: i64,
}

/// A window whose events are final.
#[derive(Debug, Clone)]
pub struct ClosedWindow {
    pub start_ms: i64,
    pub end_ms: i64,
    pub batches: Vec<RecordBatch>,
    pub rows: usize,
    /// Per partition, the offsets of the events in this window.
    pub offsets: BTreeMap<i32, OffsetRange>,
}

#[derive(Debug, Default)]
struct OpenWindow {
    batches: Vec<RecordBatch>,
    rows: usize,
    offsets: BTreeMap<i32, OffsetRange>,
}

/// Tumbling event-time windows.
#[derive(Debug, Clone, Copy, Default)]
struct PartitionClock {
    max_event_ms: Option<i64>,
    /// Caught up: excluded from the watermark until it delivers again.
    idle: bool,
}

#[derive(Debug)]
pub struct Windower {
    size_ms: i64,
    delay_ms: i64,
    open: BTreeMap<i64, OpenWindow>,
    partitions: BTreeMap<i32, PartitionClock>,
    /// Every window ending at or before this is closed.
    closed_through_ms: Option<i64>,
}

impl Windower {
    pub fn new(size_ms: i64, delay_ms: i64) -> Self {
        assert!(size_ms > 0, "window size is validated by the topology");
        Windower {
            size_ms,
            delay_ms,
            open: BTreeMap::new(),
            partitions: BTreeMap::new(),
            closed_through_ms: None,
        }
    }

    /// Start of the window holding `t`.
    pub fn window_start(&self, t: i64) -> i64 {
        t.div_euclid(self.size_ms) * self.size_ms
    }

    /// An event at `t` belongs to a window that is already closed.
    pub fn is_late(&self, t: i64) -> bool {
        self.closed_through_ms.is_some_and(|c| t < c)
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

    /// Sets the partitions this instance reads; a newly assigned partition
    /// holds the watermark back until its first event (or until it is idle).
    pub fn assign(&mut self, partitions: &[i32]) {
        self.partitions.retain(|p, _| partitions.contains(p));
        for &p in partitions {
            self.partitions.entry(p).or_default();
        }
    }

    /// The partition is caught up: stop holding the watermark back for it.
    pub fn mark_idle(&mut self, partition: i32) {
        self.partitions.entry(partition).or_default().idle = true;
    }

    /// The partition delivered an event: it counts for the watermark again.
    pub fn mark_active(&mut self, partition: i32) {
        self.partitions.entry(partition).or_default().idle = false;
    }

    /// Minimum over delivering partitions of (largest event time − delay);
    /// `None` while a delivering partition has not shown an event yet. When
    /// every partition is caught up, the minimum over those with events.
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
        min.map(|m| m - self.delay_ms)
    }

    /// Rows held in open windows.
    pub fn buffered_rows(&self) -> usize {
        self.open.values().map(|w| w.rows).sum()
    }

    pub fn open_windows(&self) -> usize {
        self.open.len()
    }

    /// Adds decoded events. The caller has already diverted late events
    /// (`is_late`), so every row lands in an open window.
    pub fn push(&mut self, decoded: DecodedBatch) {
        let n = decoded.event_time_ms.len();
        if n == 0 {
            return;
        }
        let mut groups: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for (row, &t) in decoded.event_time_ms.iter().enumerate() {
            debug_assert!(!self.is_late(t), "late rows are diverted before push");
            groups
                .entry(self.window_start(t))
                .or_default()
                .push(row as u32);
            let clock = self.partitions.entry(decoded.partition[row]).or_default();
            clock.max_event_ms = Some(clock.max_event_ms.map_or(t, |m| m.max(t)));
        }
        let single = groups.len() == 1;
        for (start, rows) in groups {
            let window = self.open.entry(start).or_default();
            let batch = if single {
                decoded.batch.clone()
            } else {
                let idx = UInt32Array::from(rows.clone());
                take_record_batch(&decoded.batch, &idx).expect("indices are in bounds")
            };
            window.rows += batch.num_rows();
            window.batches.push(batch);
            for &r in &rows {
                let (p, o) = (decoded.partition[r as usize], decoded.offset[r as usize]);
                window
                    .offsets
                    .entry(p)
                    .and_modify(|range| {
                        range.first = range.first.min(o);
                        range.last = range.last.max(o);
                    })
                    .or_insert(OffsetRange { first: o, last: o });
            }
        }
    }

    /// Closes and returns, oldest first, every window the watermark has passed.
    pub fn advance(&mut self) -> Vec<ClosedWindow> {
        match self.watermark_ms() {
            Some(w) => self.close_until(w),
            None => Vec::new(),
        }
    }

    /// Closes every open window (end of a bounded stream).
    pub fn flush(&mut self) -> Vec<ClosedWindow> {
        self.close_until(i64::MAX)
    }

    fn close_until(&mut self, watermark: i64) -> Vec<ClosedWindow> {
        let mut closed = Vec::new();
        while let Some((&start, _)) = self.open.first_key_value() {
            let end = start.saturating_add(self.size_ms);
            if end > watermark {
                break;
            }
            let w = self.open.remove(&start).expect("key just seen");
            self.closed_through_ms = Some(self.closed_through_ms.map_or(end, |c| c.max(end)));
            closed.push(ClosedWindow {
                start_ms: start,
                end_ms: end,
                batches: w.batches,
                rows: w.rows,
                offsets: w.offsets,
            });
        }
        // Windows that never received an event are closed too: the watermark
        // alone decides finality.
        if watermark != i64::MAX {
            let through = self.window_start(watermark);
            if self.closed_through_ms.is_none_or(|c| c < through)
                && self.open.keys().all(|&s| s >= through)
            {
                self.closed_through_ms = Some(through);
            }
        }
        closed
    }

    /// Lowest offset per partition still held by an open window: a commit may
    /// not go past it, or a restart would lose those events.
    pub fn held_offsets(&self) -> BTreeMap<i32, i64> {
        let mut held: BTreeMap<i32, i64> = BTreeMap::new();
        for w in self.open.values() {
            for (&p, r) in &w.offsets {
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
        let mut w = Windower::new(100, 10);
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
        assert_eq!(closed[0].offsets[&0], OffsetRange { first: 0, last: 2 });
        assert!(w.is_late(99));
        assert!(!w.is_late(100));
    }

    fn on_partition(mut d: DecodedBatch, p: i32) -> DecodedBatch {
        d.partition = vec![p; d.partition.len()];
        d
    }

    #[test]
    fn watermark_is_the_minimum_over_delivering_partitions() {
        let mut w = Windower::new(100, 0);
        w.assign(&[0, 1]);
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
        w.mark_idle(1);
        assert_eq!(w.watermark_ms(), Some(250));
        assert_eq!(w.advance().len(), 1);
        // ...and rejoins when it delivers again.
        w.mark_active(1);
        w.push(on_partition(decoded(&[260], 4), 1));
        assert_eq!(w.watermark_ms(), Some(250));
    }

    #[test]
    fn boundary_timestamp_belongs_to_the_next_window() {
        let w = Windower::new(100, 0);
        assert_eq!(w.window_start(99), 0);
        assert_eq!(w.window_start(100), 100);
        assert_eq!(w.window_start(-1), -100);
    }

    #[test]
    fn out_of_order_rows_within_delay_land_in_their_window() {
        let mut w = Windower::new(100, 50);
        w.push(decoded(&[120, 90, 130, 95], 0));
        let closed = w.advance();
        assert!(closed.is_empty(), "watermark 80 < 100");
        w.push(decoded(&[150], 4));
        let closed = w.advance();
        assert_eq!(closed[0].rows, 2);
        assert_eq!(closed[0].offsets[&0], OffsetRange { first: 1, last: 3 });
    }

    #[test]
    fn held_offsets_never_pass_an_open_window() {
        let mut w = Windower::new(100, 0);
        w.push(decoded(&[150, 10, 160], 7)); // offsets 7,8,9; 10 is in window 0
        assert_eq!(w.held_offsets()[&0], 7);
        let closed = w.advance(); // watermark 160 closes window 0
        assert_eq!(closed.len(), 1);
        assert_eq!(w.held_offsets()[&0], 7, "offset 7 (t=150) is still open");
        assert_eq!(w.flush().len(), 1);
        assert!(w.held_offsets().is_empty());
    }
}
