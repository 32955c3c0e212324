//! Replay speed: event time mapped onto wall-clock time.
//!
//! At speed `s` an event `t` ms after the replay's origin (the span's start,
//! or the first event when no `--since` is given) is due `t / s` ms after
//! the first event was sent; `max` sends without waiting. The arithmetic is
//! pure ([`due`]); the waiting goes through a [`Clock`] so that tests drive
//! a fake one instead of sleeping.

use std::str::FromStr;
use std::time::{Duration, Instant};

/// How fast event time passes during a replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// No pacing: as fast as the broker takes it.
    Max,
    /// Event-time seconds per wall-clock second (3600: an hour per second).
    Factor(f64),
}

impl FromStr for Speed {
    type Err = String;
    fn from_str(s: &str) -> Result<Speed, String> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        match s.parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 => Ok(Speed::Factor(f)),
            _ => Err(format!(
                "--speed: {s:?} is neither `max` nor a positive number (3600 = an hour per second)"
            )),
        }
    }
}

impl std::fmt::Display for Speed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Speed::Max => f.write_str("max"),
            Speed::Factor(x) => write!(f, "{x}"),
        }
    }
}

/// When an event is due, as an offset from the replay's start; `None` at
/// [`Speed::Max`]. Events before the origin are due at once.
pub fn due(speed: Speed, origin_ms: i64, event_ms: i64) -> Option<Duration> {
    match speed {
        Speed::Max => None,
        Speed::Factor(f) => {
            let ahead_ms = event_ms.saturating_sub(origin_ms).max(0) as f64;
            Some(Duration::from_secs_f64(ahead_ms / 1000.0 / f))
        }
    }
}

/// Wall-clock time as the pacer sees it.
pub trait Clock {
    /// Time since the replay started.
    fn elapsed(&self) -> Duration;
    fn sleep(&mut self, d: Duration);
}

/// The real clock.
pub struct WallClock(Instant);

impl WallClock {
    pub fn start() -> WallClock {
        WallClock(Instant::now())
    }
}

impl Clock for WallClock {
    fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// Holds each event back until it is due.
pub struct Pacer<C: Clock> {
    pub speed: Speed,
    pub origin_ms: i64,
    pub clock: C,
    /// Total time spent waiting.
    pub waited: Duration,
    /// The clock's reading when the pacer was made: the replay's start.
    start: Duration,
}

impl<C: Clock> Pacer<C> {
    pub fn new(speed: Speed, origin_ms: i64, clock: C) -> Pacer<C> {
        Pacer {
            speed,
            origin_ms,
            start: clock.elapsed(),
            clock,
            waited: Duration::ZERO,
        }
    }

    /// Waits until the event at `event_ms` is due (not at all if the replay
    /// is behind, e.g. because the broker is slower than the pace).
    pub fn wait_for(&mut self, event_ms: i64) {
        let Some(at) = due(self.speed, self.origin_ms, event_ms) else {
            return;
        };
        let now = self.clock.elapsed().saturating_sub(self.start);
        if at > now {
            self.clock.sleep(at - now);
            self.waited += at - now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Time moves only when the pacer sleeps (or the test says so).
    #[derive(Default)]
    struct FakeClock {
        now: Duration,
        sleeps: Vec<Duration>,
    }

    impl Clock for FakeClock {
        fn elapsed(&self) -> Duration {
            self.now
        }
        fn sleep(&mut self, d: Duration) {
            self.sleeps.push(d);
            self.now += d;
        }
    }

    const HOUR: i64 = 3_600_000;

    #[test]
    fn speed_parses_max_and_positive_factors_only() {
        assert_eq!("max".parse(), Ok(Speed::Max));
        assert_eq!("MAX".parse(), Ok(Speed::Max));
        assert_eq!("3600".parse(), Ok(Speed::Factor(3600.0)));
        assert_eq!("0.5".parse(), Ok(Speed::Factor(0.5)));
        for bad in ["0", "-1", "inf", "NaN", "fast", ""] {
            assert!(bad.parse::<Speed>().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_hour_per_second_at_3600() {
        let t0 = 1_700_000_000_000;
        assert_eq!(
            due(Speed::Factor(3600.0), t0, t0 + HOUR),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            due(Speed::Factor(3600.0), t0, t0 + 24 * HOUR),
            Some(Duration::from_secs(24))
        );
        // Wall-clock pace.
        assert_eq!(
            due(Speed::Factor(1.0), t0, t0 + 1500),
            Some(Duration::from_millis(1500))
        );
        // Before the origin: due at once.
        assert_eq!(due(Speed::Factor(1.0), t0, t0 - HOUR), Some(Duration::ZERO));
        assert_eq!(due(Speed::Max, t0, t0 + HOUR), None);
    }

    #[test]
    fn the_pacer_sleeps_only_up_to_the_next_due_time() {
        let t0 = 0;
        let mut p = Pacer::new(Speed::Factor(3600.0), t0, FakeClock::default());
        p.wait_for(t0); // due now
        p.wait_for(t0 + HOUR); // 1 s
        p.wait_for(t0 + HOUR); // same instant: no wait
        p.clock.now += Duration::from_millis(300); // sending took 0.3 s
        p.wait_for(t0 + 2 * HOUR); // 0.7 s more
        p.clock.now += Duration::from_secs(5); // the broker stalled
        p.wait_for(t0 + 3 * HOUR); // behind: no wait
        assert_eq!(
            p.clock.sleeps,
            vec![Duration::from_secs(1), Duration::from_millis(700)]
        );
        assert_eq!(p.waited, Duration::from_millis(1700));
        // A paced run lasts at least (last event − origin) / speed.
        assert!(p.clock.elapsed() >= Duration::from_secs(3));
    }

    #[test]
    fn the_pace_counts_from_the_pacer_start_not_the_clock_start() {
        // Indexing took 5 s before the first event was sent.
        let clock = FakeClock {
            now: Duration::from_secs(5),
            ..Default::default()
        };
        let mut p = Pacer::new(Speed::Factor(3600.0), 0, clock);
        p.wait_for(2 * HOUR);
        assert_eq!(p.clock.sleeps, vec![Duration::from_secs(2)]);
    }

    #[test]
    fn max_never_waits() {
        let mut p = Pacer::new(Speed::Max, 0, FakeClock::default());
        for h in 0..100 {
            p.wait_for(h * HOUR);
        }
        assert!(p.clock.sleeps.is_empty());
        assert_eq!(p.waited, Duration::ZERO);
    }
}
