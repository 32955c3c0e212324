//! Cutting decoded rows into per-pane pieces.
//!
//! Every row of one pane shares its windows, so everything the windower
//! decides per row (late or not, which windows it missed) it can decide once
//! per piece. The cut is the per-row work of windowing; the engine does it
//! on the decode thread, next to the freshly decoded (cache-hot) columns,
//! and the poll thread only files whole pieces.

use datafusion::arrow::array::UInt32Array;
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::record_batch::RecordBatch;

use super::{OffsetRange, SourcePartition};
use crate::schema::decode::DecodedBatch;

/// The rows of one decoded batch that fall into one pane.
#[derive(Debug, Clone)]
pub struct PanePiece {
    pub pane_start: i64,
    /// The stream source the rows came from (its index in `Topology::sources`).
    pub source: u16,
    pub batch: RecordBatch,
    /// Row indices in the batch the piece was cut from.
    pub rows: Vec<u32>,
    /// Event time of each row of the piece.
    pub event_time_ms: Vec<i64>,
    pub min_event_ms: i64,
    pub max_event_ms: i64,
    /// Per source partition: largest event time in the piece.
    pub clocks: Vec<(SourcePartition, i64)>,
    /// Per source partition: the offsets the piece holds.
    pub offsets: Vec<(SourcePartition, OffsetRange)>,
    /// Per row, when some row's own partition had already passed some (not
    /// all) of its windows: the row joins only windows ending after its
    /// value ([`super::Windower::divert_late`] sets it). `None`: every row
    /// joins every window holding it.
    pub reach: Option<Vec<i64>>,
}

impl PanePiece {
    fn new(pane_start: i64, source: u16) -> PanePiece {
        PanePiece {
            pane_start,
            source,
            batch: RecordBatch::new_empty(std::sync::Arc::new(
                datafusion::arrow::datatypes::Schema::empty(),
            )),
            rows: Vec::new(),
            event_time_ms: Vec::new(),
            min_event_ms: i64::MAX,
            max_event_ms: i64::MIN,
            clocks: Vec::new(),
            offsets: Vec::new(),
            reach: None,
        }
    }

    fn add(&mut self, row: u32, t: i64, partition: i32, offset: i64) {
        let partition = SourcePartition::new(self.source, partition);
        self.rows.push(row);
        self.event_time_ms.push(t);
        self.min_event_ms = self.min_event_ms.min(t);
        self.max_event_ms = self.max_event_ms.max(t);
        // A batch holds a few partitions, mostly in runs: search from the end.
        match self.clocks.iter_mut().rev().find(|c| c.0 == partition) {
            Some(c) => c.1 = c.1.max(t),
            None => self.clocks.push((partition, t)),
        }
        match self.offsets.iter_mut().rev().find(|r| r.0 == partition) {
            Some((_, r)) => {
                r.first = r.first.min(offset);
                r.last = r.last.max(offset);
            }
            None => self.offsets.push((
                partition,
                OffsetRange {
                    first: offset,
                    last: offset,
                },
            )),
        }
    }

    pub fn num_rows(&self) -> usize {
        self.rows.len()
    }

    /// The piece cut down to the rows at `positions` (ascending positions
    /// within this piece), with its bounds, clocks and offsets recomputed.
    pub fn select(&self, positions: &[u32], partition: &[i32], offset: &[i64]) -> PanePiece {
        let mut out = PanePiece::new(self.pane_start, self.source);
        for &i in positions {
            let row = self.rows[i as usize];
            out.add(
                row,
                self.event_time_ms[i as usize],
                partition[row as usize],
                offset[row as usize],
            );
        }
        let idx = UInt32Array::from(positions.to_vec());
        out.batch = take_record_batch(&self.batch, &idx).expect("positions are in bounds");
        out.reach = self
            .reach
            .as_ref()
            .map(|r| positions.iter().map(|&i| r[i as usize]).collect());
        out
    }
}

/// Cuts `decoded` (events of stream source `source`) into one piece per pane
/// of length `pane_ms`, ordered by first appearance. A batch within one pane
/// is shared, not copied.
pub fn split_by_pane(decoded: &DecodedBatch, pane_ms: i64, source: u16) -> Vec<PanePiece> {
    let mut pieces: Vec<PanePiece> = Vec::new();
    let mut last = usize::MAX;
    for (row, &t) in decoded.event_time_ms.iter().enumerate() {
        let pane = t.div_euclid(pane_ms) * pane_ms;
        if pieces.get(last).is_none_or(|p| p.pane_start != pane) {
            last = match pieces.iter().rposition(|p| p.pane_start == pane) {
                Some(i) => i,
                None => {
                    pieces.push(PanePiece::new(pane, source));
                    pieces.len() - 1
                }
            };
        }
        pieces[last].add(row as u32, t, decoded.partition[row], decoded.offset[row]);
    }
    let single = pieces.len() == 1;
    for piece in &mut pieces {
        piece.batch = if single {
            decoded.batch.clone()
        } else {
            let idx = UInt32Array::from(piece.rows.clone());
            take_record_batch(&decoded.batch, &idx).expect("indices are in bounds")
        };
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn rows_go_to_their_pane_with_clocks_and_offsets() {
        let times = vec![150, 10, 160, 99, 100, -1];
        let schema = Arc::new(Schema::new(vec![Field::new("t", DataType::Int64, false)]));
        let decoded = DecodedBatch {
            batch: RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(times.clone()))])
                .unwrap(),
            event_time_ms: times,
            partition: vec![0, 1, 0, 1, 1, 0],
            offset: vec![7, 3, 8, 4, 5, 9],
        };
        let pieces = split_by_pane(&decoded, 100, 0);
        let sp = |p| SourcePartition::new(0, p);
        let starts: Vec<i64> = pieces.iter().map(|p| p.pane_start).collect();
        assert_eq!(starts, vec![100, 0, -100]);
        let p100 = &pieces[0];
        assert_eq!(p100.rows, vec![0, 2, 4]);
        assert_eq!((p100.min_event_ms, p100.max_event_ms), (100, 160));
        assert_eq!(p100.clocks, vec![(sp(0), 160), (sp(1), 100)]);
        assert_eq!(
            p100.offsets,
            vec![
                (sp(0), OffsetRange { first: 7, last: 8 }),
                (sp(1), OffsetRange { first: 5, last: 5 })
            ]
        );
        let column = p100
            .batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(column.values().to_vec(), vec![150, 160, 100]);
        assert_eq!(pieces[2].event_time_ms, vec![-1], "negative times floor");
        assert_eq!(pieces.iter().map(|p| p.batch.num_rows()).sum::<usize>(), 6);
    }
}
