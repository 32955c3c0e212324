//! Event-time sanity: how far ahead of now an event may claim to be.
//!
//! A partition's watermark follows the largest event time it has seen, so a
//! single event dated in year 3000 would make every later valid event of its
//! partition late. An event more than `window.max_future_ms` ahead of the
//! wall clock is therefore rejected while it is decoded: it goes to the
//! dead-letter topic with its original bytes and a reason, and never reaches
//! a window or a watermark.
//!
//! The bound is the wall clock, not the partition's watermark. A bound
//! relative to the watermark would reject every event after a legitimate
//! gap in a feed (a weekend, an outage, a backfill of older data followed by
//! current data), and since rejected events never move the watermark the
//! partition would never recover. Historic data (replays, backfills) is
//! never ahead of the wall clock, so the rule only ever rejects events from
//! the future, and the decision is the same in every run that sees them
//! before their time. Events far in the past (year 1900) are not rejected
//! here: they are late by the watermark and follow `window.late_policy`.

use std::time::{SystemTime, UNIX_EPOCH};

/// The latest event time accepted now, and the setting it came from (for
/// the dead-letter reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latest {
    pub latest_ms: i64,
    pub max_future_ms: i64,
}

/// `window.max_future_ms` applied to a clock reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FutureBound {
    pub max_future_ms: i64,
}

impl FutureBound {
    /// The bound at wall-clock time `now_ms` (ms since the epoch).
    pub fn at(&self, now_ms: i64) -> Latest {
        Latest {
            latest_ms: now_ms.saturating_add(self.max_future_ms),
            max_future_ms: self.max_future_ms,
        }
    }

    /// The bound now. Read once per decoded batch: a batch is decoded within
    /// milliseconds, far below any sensible `max_future_ms`.
    pub fn now(&self) -> Latest {
        self.at(wall_clock_ms())
    }
}

/// Milliseconds since the epoch by the system clock (0 if it is before 1970).
pub fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_now_plus_the_setting_and_never_overflows() {
        let b = FutureBound {
            max_future_ms: 86_400_000,
        };
        assert_eq!(b.at(1_000).latest_ms, 86_401_000);
        assert_eq!(b.at(i64::MAX - 5).latest_ms, i64::MAX);
        let now = b.now();
        // Year 3000 is rejected, today's events are not.
        assert!(32_503_680_000_000 > now.latest_ms);
        assert!(wall_clock_ms() <= now.latest_ms);
    }
}
