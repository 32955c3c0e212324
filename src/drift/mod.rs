//! Drift detection: is the population in this window still the one the
//! deployed model was fitted on?
//!
//! When a model is fitted, its training table is summarised into a
//! `ReferenceProfile` (quantiles and decile bins per numeric column, category
//! shares per categorical column) that is stored with the model. Each closed
//! window is compared against it per column with effect sizes (KS D against
//! the reference quantile function, total variation, PSI), the columns are
//! combined into a window verdict, and `DriftMonitor` turns verdicts into a
//! refit decision: persistent drift (k of the last m windows) outside a
//! cooldown after the previous refit.

pub mod profile;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

pub use profile::{ColumnProfile, ReferenceProfile};

use crate::table::Table;
use crate::topology::DriftConfig;

/// One column's comparison with the reference.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ColumnDrift {
    pub column: String,
    /// `ks` for numeric columns, `tv` for categorical ones; PSI is computed for both.
    pub method: String,
    /// KS D or total variation distance.
    pub distance: f64,
    pub distance_max: f64,
    pub psi: f64,
    pub psi_max: f64,
    pub drifted: bool,
}

/// The verdict for one window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DriftVerdict {
    pub columns: Vec<ColumnDrift>,
    pub drifted: bool,
}

impl DriftVerdict {
    pub fn drifting_columns(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|c| c.drifted)
            .map(|c| c.column.as_str())
            .collect()
    }
}

/// Compares a window's training table with the deployed model's reference.
/// Columns missing from the window count as drifted (the schema itself moved).
pub fn compare(reference: &ReferenceProfile, window: &Table, config: &DriftConfig) -> DriftVerdict {
    let mut columns = Vec::with_capacity(reference.columns.len());
    for (name, profile) in &reference.columns {
        let Some(column) = window.column(name) else {
            columns.push(ColumnDrift {
                column: name.clone(),
                method: "missing".into(),
                distance: 1.0,
                distance_max: 0.0,
                psi: f64::INFINITY.min(99.0),
                psi_max: config.psi_max,
                drifted: true,
            });
            continue;
        };
        let (method, distance, distance_max) = match profile {
            ColumnProfile::Numeric { .. } => {
                ("ks", profile.ks_distance(&column.values), config.ks_max)
            }
            ColumnProfile::Categorical { .. } => ("tv", profile.tv_distance(column), config.tv_max),
        };
        let psi = profile.psi(column);
        columns.push(ColumnDrift {
            column: name.clone(),
            method: method.into(),
            distance,
            distance_max,
            psi,
            psi_max: config.psi_max,
            drifted: distance > distance_max || psi > config.psi_max,
        });
    }
    let drifted = columns.iter().filter(|c| c.drifted).count() >= config.min_drifting_columns;
    DriftVerdict { columns, drifted }
}

/// Where a topology stands with respect to drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DriftState {
    /// The last window matched the reference.
    Ok,
    /// Some recent window drifted, not yet persistently.
    Warn,
    /// Drift is persistent: k of the last m windows drifted.
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
}

/// What to do after a window's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub state: DriftState,
    pub refit: bool,
    /// Drift is persistent but a refit is held back by the cooldown.
    pub cooling_down: bool,
}

/// Persistence and cooldown, so one shift yields one refit, not one per window.
#[derive(Debug, Clone)]
pub struct DriftMonitor {
    k: usize,
    m: usize,
    cooldown: usize,
    history: VecDeque<bool>,
    windows_since_refit: usize,
    state: DriftState,
}

impl DriftMonitor {
    pub fn new(config: &DriftConfig) -> Self {
        DriftMonitor {
            k: config.persist_k,
            m: config.persist_m,
            cooldown: config.cooldown_windows,
            history: VecDeque::new(),
            windows_since_refit: 0,
            state: DriftState::Ok,
        }
    }

    pub fn state(&self) -> DriftState {
        self.state
    }

    /// Records one window's verdict and decides.
    pub fn observe(&mut self, drifted: bool) -> Decision {
        self.windows_since_refit += 1;
        self.history.push_back(drifted);
        while self.history.len() > self.m {
            self.history.pop_front();
        }
        let recent = self.history.iter().filter(|&&d| d).count();
        self.state = if recent >= self.k {
            DriftState::Drift
        } else if recent > 0 {
            DriftState::Warn
        } else {
            DriftState::Ok
        };
        let persistent = self.state == DriftState::Drift;
        let cooling_down = persistent && self.windows_since_refit <= self.cooldown;
        Decision {
            state: self.state,
            refit: persistent && !cooling_down,
            cooling_down,
        }
    }

    /// A new model was deployed: its reference starts a fresh history.
    pub fn refitted(&mut self) {
        self.history.clear();
        self.windows_since_refit = 0;
        self.state = DriftState::Ok;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Column;
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, Normal};

    fn cfg() -> DriftConfig {
        DriftConfig::default()
    }

    fn sample(n: usize, mean: f64, seed: u64) -> Table {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let d = Normal::new(mean, 1.0).unwrap();
        let x: Vec<f64> = (0..n).map(|_| d.sample(&mut rng)).collect();
        let c: Vec<Option<&str>> = (0..n)
            .map(|_| Some(if rng.random::<f64>() < 0.3 { "a" } else { "b" }))
            .collect();
        Table::new(vec![Column::numeric("x", x), Column::categorical("c", &c)])
    }

    #[test]
    fn same_population_does_not_drift_and_a_one_sigma_shift_does() {
        let reference = ReferenceProfile::build(&sample(5000, 0.0, 1));
        let same = compare(&reference, &sample(3000, 0.0, 2), &cfg());
        assert!(!same.drifted, "{:?}", same.columns);
        let shifted = compare(&reference, &sample(3000, 1.0, 3), &cfg());
        assert_eq!(shifted.drifting_columns(), vec!["x"]);
        // KS D between N(0,1) and N(1,1) is 2Φ(0.5) − 1 ≈ 0.3829 (closed form).
        let ks = shifted.columns[0].distance;
        assert!((ks - 0.3829).abs() < 0.03, "ks {ks}");
    }

    #[test]
    fn missing_column_counts_as_drift() {
        let reference = ReferenceProfile::build(&sample(500, 0.0, 1));
        let window = Table::new(vec![sample(500, 0.0, 2).columns[0].clone()]);
        let v = compare(&reference, &window, &cfg());
        assert_eq!(v.drifting_columns(), vec!["c"]);
    }

    #[test]
    fn refit_needs_k_of_m_and_respects_cooldown() {
        let mut m = DriftMonitor::new(&DriftConfig {
            persist_k: 2,
            persist_m: 3,
            cooldown_windows: 2,
            ..cfg()
        });
        // Right after deployment, cooldown holds even persistent drift back.
        assert_eq!(m.observe(true).state, DriftState::Warn);
        let d = m.observe(true);
        assert_eq!(d.state, DriftState::Drift);
        assert!(!d.refit && d.cooling_down);
        let d = m.observe(true);
        assert!(d.refit);
        m.refitted();
        assert_eq!(m.observe(false).state, DriftState::Ok);
        assert_eq!(m.observe(true).state, DriftState::Warn);
        let d = m.observe(false);
        assert_eq!(d.state, DriftState::Warn, "1 of last 3");
        assert!(!d.refit);
        let d = m.observe(true);
        assert!(d.refit, "2 of last 3, cooldown over");
    }
}
