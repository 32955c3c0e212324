//! How far each partition had got, by offset: the running maximum event
//! time of its windowed rows, as a staircase of the offsets that raised it.
//!
//! Lateness is decided against a row's own partition up to that row (see
//! the module doc of [`super`]), so the windower must answer "what was this
//! partition's largest event time before offset o" for the row being read,
//! and for the offset a commit resumes from: a restart starts reading there
//! and needs the same answer the first run had, or it would window the
//! replayed rows differently. The staircase holds one step per raise since
//! the last commit (at most one per row read since then) and is cut back
//! to a single floor at each commit.

use std::collections::VecDeque;

/// One partition's running maximum event time, by offset.
#[derive(Debug, Clone, Default)]
pub(super) struct PartitionReach {
    /// Largest event time of the rows before the first step (a commit's
    /// floor, or restored from one).
    floor: Option<i64>,
    /// `(offset, max)`: the row at `offset` raised the maximum to `max`.
    /// Both strictly increase along the deque.
    steps: VecDeque<(i64, i64)>,
}

impl PartitionReach {
    pub(super) fn restored(floor: i64) -> Self {
        PartitionReach {
            floor: Some(floor),
            steps: VecDeque::new(),
        }
    }

    /// Largest event time of the rows before `offset`.
    pub(super) fn before(&self, offset: i64) -> Option<i64> {
        match self.steps.partition_point(|&(o, _)| o < offset) {
            0 => self.floor,
            i => Some(self.steps[i - 1].1),
        }
    }

    /// The row at `offset` (read in offset order) was windowed. A row below
    /// the last step means the partition was rewound (a seek back to the
    /// committed offset): the steps at and after it are read again, so they
    /// are dropped first.
    pub(super) fn windowed(&mut self, offset: i64, t: i64) {
        while self.steps.back().is_some_and(|&(o, _)| o >= offset) {
            self.steps.pop_back();
        }
        if self.before(offset).is_none_or(|m| t > m) {
            self.steps.push_back((offset, t));
        }
    }

    /// A commit resumes at `offset`: steps below it fold into the floor.
    pub(super) fn committed(&mut self, offset: i64) {
        while self.steps.front().is_some_and(|&(o, _)| o < offset) {
            self.floor = self.steps.pop_front().map(|(_, m)| m);
        }
    }

    #[cfg(test)]
    pub(super) fn steps(&self) -> usize {
        self.steps.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_the_maximum_before_each_offset_and_folds_at_commit() {
        let mut r = PartitionReach::default();
        for (o, t) in [(0, 10), (1, 5), (2, 30), (3, 20), (4, 40)] {
            r.windowed(o, t);
        }
        assert_eq!(r.before(0), None);
        assert_eq!(r.before(1), Some(10));
        assert_eq!(r.before(2), Some(10));
        assert_eq!(r.before(3), Some(30));
        assert_eq!(r.before(5), Some(40));
        assert_eq!(r.steps(), 3, "only raises are kept");
        r.committed(3);
        assert_eq!(r.steps(), 1);
        assert_eq!(
            r.before(3),
            Some(30),
            "the floor answers below the first step"
        );
        assert_eq!(r.before(9), Some(40));
    }

    #[test]
    fn a_rewind_reads_the_dropped_steps_again() {
        let mut r = PartitionReach::restored(7);
        r.windowed(10, 50);
        r.windowed(11, 60);
        r.windowed(10, 8); // seek back to 10: offset 10 and after are read again
        assert_eq!(r.before(11), Some(8));
        assert_eq!(r.before(10), Some(7));
    }
}
