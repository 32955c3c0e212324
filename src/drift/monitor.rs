//! The per-topology drift state machine: OK → WARN → DRIFT, and when to refit.
//!
//! Why a state machine: one window's verdict is evidence, not a decision.
//! A page should mean "the population moved and stayed moved", and a refit
//! (which may spend privacy budget) should happen once per move. So:
//! - a drifting window moves OK to WARN; `persist_k` drifting windows among
//!   the last `persist_m` move it to DRIFT;
//! - it goes back to OK only after `clear_windows` quiet windows in a row,
//!   quiet meaning no significant test scoring above `exit_score` (a lower
//!   bar than the one to enter, so a shift hovering at the threshold does not
//!   flap between states);
//! - a refit is asked for only while drift is persistent, on a window with at
//!   least `refit_min_rows` rows, outside the cooldown after the last refit
//!   and while no other refit is pending; the caller reports back
//!   (`refitted`, or `refit_abandoned` when the batch was quarantined or the
//!   budget refused), and only then can the next one be asked for.
//!
//! Pure: no clocks, no I/O; the engine owns time and alerts.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::topology::DriftConfig;

/// Where a topology stands with respect to drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum DriftState {
    /// The population matches the deployed model's reference.
    #[default]
    Ok,
    /// A recent window drifted, not (yet) persistently.
    Warn,
    /// Drift is persistent: at least k of the last m windows drifted.
    Drift,
}

impl DriftState {
    pub fn as_gauge(self) -> f64 {
        match self {
            DriftState::Ok => 0.0,
            DriftState::Warn => 1.0,
            DriftState::Drift => 2.0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DriftState::Ok => "OK",
            DriftState::Warn => "WARN",
            DriftState::Drift => "DRIFT",
        }
    }
}

/// What the monitor needs from one window's verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowSignal {
    pub drifted: bool,
    /// Highest score among significant tests (0 when none is significant).
    pub score: f64,
    pub rows: usize,
}

/// What to do after a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub previous: DriftState,
    pub state: DriftState,
    pub refit: bool,
    /// Drift is persistent but the cooldown holds a refit back.
    pub cooling_down: bool,
    /// Drift is persistent but the window has fewer than `refit_min_rows` rows.
    pub too_few_rows: bool,
}

impl Decision {
    /// The state changed: the one case that raises an alert.
    pub fn changed(&self) -> bool {
        self.previous != self.state
    }
}

#[derive(Debug, Clone)]
pub struct DriftMonitor {
    k: usize,
    m: usize,
    cooldown: usize,
    clear_windows: usize,
    exit_score: f64,
    refit_min_rows: usize,
    history: VecDeque<bool>,
    quiet: usize,
    windows_since_refit: usize,
    refit_pending: bool,
    state: DriftState,
}

impl DriftMonitor {
    pub fn new(config: &DriftConfig) -> Self {
        DriftMonitor {
            k: config.persist_k,
            m: config.persist_m,
            cooldown: config.cooldown_windows,
            clear_windows: config.clear_windows,
            exit_score: config.exit_score,
            refit_min_rows: config.refit_min_rows,
            history: VecDeque::new(),
            quiet: 0,
            windows_since_refit: 0,
            refit_pending: false,
            state: DriftState::Ok,
        }
    }

    pub fn state(&self) -> DriftState {
        self.state
    }

    /// Records one window and decides.
    pub fn observe(&mut self, signal: WindowSignal) -> Decision {
        let previous = self.state;
        self.windows_since_refit += 1;
        self.history.push_back(signal.drifted);
        while self.history.len() > self.m {
            self.history.pop_front();
        }
        self.quiet = if !signal.drifted && signal.score < self.exit_score {
            self.quiet + 1
        } else {
            0
        };
        let recent = self.history.iter().filter(|&&d| d).count();
        let persistent = recent >= self.k;
        self.state = match self.state {
            _ if persistent => DriftState::Drift,
            DriftState::Ok if signal.drifted => DriftState::Warn,
            DriftState::Ok => DriftState::Ok,
            DriftState::Warn | DriftState::Drift if self.quiet >= self.clear_windows => {
                DriftState::Ok
            }
            other => other,
        };
        let cooling_down = persistent && self.windows_since_refit <= self.cooldown;
        let too_few_rows = persistent && signal.rows < self.refit_min_rows;
        let refit = persistent && !cooling_down && !too_few_rows && !self.refit_pending;
        if refit {
            self.refit_pending = true;
        }
        Decision {
            previous,
            state: self.state,
            refit,
            cooling_down,
            too_few_rows,
        }
    }

    /// A new model was deployed: its reference starts a fresh history.
    pub fn refitted(&mut self) {
        self.history.clear();
        self.quiet = 0;
        self.windows_since_refit = 0;
        self.refit_pending = false;
        self.state = DriftState::Ok;
    }

    /// What the monitor has learned so far, small enough to ride in the
    /// source commit's offset metadata: it is written in the transaction of
    /// the window that produced it, so a restart resumes the same streak
    /// (a crash between two drifting windows must not cancel a refit).
    pub fn snapshot(&self) -> MonitorSnapshot {
        MonitorSnapshot {
            history: self.history.iter().map(|&d| d as u8).collect(),
            quiet: self.quiet,
            windows_since_refit: self.windows_since_refit,
            refit_pending: self.refit_pending,
            state: self.state,
        }
    }

    /// Resumes from a committed snapshot. A history longer than this
    /// topology's `persist_m` (the config changed) keeps its newest windows.
    pub fn restore(&mut self, s: &MonitorSnapshot) {
        self.history = s.history.iter().map(|&d| d != 0).collect();
        while self.history.len() > self.m {
            self.history.pop_front();
        }
        self.quiet = s.quiet;
        self.windows_since_refit = s.windows_since_refit;
        self.refit_pending = s.refit_pending;
        self.state = s.state;
    }

    /// The asked-for refit did not deploy a model (quarantined batch,
    /// budget refused): the state stays, and the cooldown starts again so
    /// the next attempt waits rather than retrying every window.
    pub fn refit_abandoned(&mut self) {
        self.refit_pending = false;
        self.windows_since_refit = 0;
    }
}

/// A [`DriftMonitor`]'s state without its configuration (see
/// [`DriftMonitor::snapshot`]). History is 0/1 per window, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MonitorSnapshot {
    pub history: Vec<u8>,
    pub quiet: usize,
    pub windows_since_refit: usize,
    pub refit_pending: bool,
    pub state: DriftState,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monitor(k: usize, m: usize, cooldown: usize) -> DriftMonitor {
        DriftMonitor::new(&DriftConfig {
            persist_k: k,
            persist_m: m,
            cooldown_windows: cooldown,
            clear_windows: 2,
            exit_score: 0.25,
            refit_min_rows: 100,
            ..DriftConfig::default()
        })
    }

    fn drifted() -> WindowSignal {
        WindowSignal {
            drifted: true,
            score: 2.0,
            rows: 1000,
        }
    }

    fn quiet() -> WindowSignal {
        WindowSignal {
            drifted: false,
            score: 0.0,
            rows: 1000,
        }
    }

    /// Significant but below the floor: not drifting, not quiet either.
    fn grey() -> WindowSignal {
        WindowSignal {
            drifted: false,
            score: 0.4,
            rows: 1000,
        }
    }

    #[test]
    fn enters_on_k_of_m_and_refits_once() {
        let mut m = monitor(2, 3, 0);
        let d = m.observe(drifted());
        assert_eq!(
            (d.previous, d.state, d.refit),
            (DriftState::Ok, DriftState::Warn, false)
        );
        let d = m.observe(drifted());
        assert_eq!((d.state, d.refit), (DriftState::Drift, true));
        // Pending refit: a second persistent window asks for no second refit.
        let d = m.observe(drifted());
        assert!(!d.refit && !d.changed());
        m.refitted();
        assert_eq!(m.observe(quiet()).state, DriftState::Ok);
    }

    #[test]
    fn hysteresis_leaves_only_after_quiet_windows() {
        let mut m = monitor(2, 3, 0);
        m.observe(drifted());
        m.observe(drifted());
        m.refit_abandoned();
        // Grey windows (significant, below the floor) keep DRIFT.
        for _ in 0..5 {
            assert_eq!(m.observe(grey()).state, DriftState::Drift);
        }
        assert_eq!(
            m.observe(quiet()).state,
            DriftState::Drift,
            "1 quiet window"
        );
        assert_eq!(m.observe(quiet()).state, DriftState::Ok, "2 quiet windows");
        // One noisy window warns, and two quiet ones clear it.
        assert_eq!(m.observe(drifted()).state, DriftState::Warn);
        assert_eq!(m.observe(quiet()).state, DriftState::Warn);
        assert_eq!(m.observe(quiet()).state, DriftState::Ok);
    }

    #[test]
    fn cooldown_rows_and_abandoned_refits_hold_refits_back() {
        let mut m = monitor(2, 3, 2);
        m.observe(drifted());
        let d = m.observe(drifted());
        assert!(d.cooling_down && !d.refit, "2 windows after deployment");
        let d = m.observe(drifted());
        assert!(d.refit);
        m.refit_abandoned();
        let d = m.observe(drifted());
        assert!(
            d.cooling_down && !d.refit,
            "an abandoned refit restarts the cooldown"
        );
        m.observe(drifted());
        let d = m.observe(WindowSignal {
            rows: 50,
            ..drifted()
        });
        assert!(d.too_few_rows && !d.refit);
        assert!(m.observe(drifted()).refit);
    }
    #[test]
    fn a_restored_snapshot_resumes_the_streak() {
        // k=2 of m=3: one drifted window, then a restart, then a second one
        // must still refit, as it would have without the restart.
        let mut before = monitor(2, 3, 0);
        before.observe(drifted());
        let snap = before.snapshot();
        let json = serde_json::to_string(&snap).unwrap();
        let mut after = monitor(2, 3, 0);
        after.restore(&serde_json::from_str(&json).unwrap());
        assert_eq!(after.snapshot(), snap);
        let d = after.observe(drifted());
        assert!(d.refit, "the streak survived the restart");
        // A fresh monitor (the state lost) would not refit yet.
        assert!(!monitor(2, 3, 0).observe(drifted()).refit);
        // A shorter persist_m keeps the newest windows only.
        let mut short = monitor(1, 1, 0);
        short.restore(&MonitorSnapshot {
            history: vec![1, 0],
            ..MonitorSnapshot::default()
        });
        assert_eq!(short.snapshot().history, vec![0]);
    }
}
