//! `model.generator = "auto"`: fit every candidate family, judge each on an
//! inner split of the training rows, deploy the best that passes.
//!
//! The gate's holdout is never touched: the training rows are split again
//! (half and half, by a seeded hash of the row's privacy unit), each candidate
//! is fitted on the inner training half and sampled, and its batch is judged
//! by the topology's own gate against the inner halves, plus the detection
//! score (how well boosted trees tell its rows from real ones). The winner is
//! the candidate that passes with the lowest detection AUC (if none passes:
//! the fewest failed operators, then the lowest AUC); it is then refitted on
//! all training rows, and the engine's real gate judges it as usual. Every
//! candidate's scores are kept in the model record (`selection`).

use serde::{Deserialize, Serialize};

use super::{
    FitError, GeneratorKind, GeneratorModel, GeneratorSettings, derive_seed, fit_generator,
    unit_hash,
};
use crate::gate::{self, GateConfig, Roles};
use crate::table::Table;

/// The candidates, in the order ties are broken.
pub const CANDIDATES: [GeneratorKind; 2] = [GeneratorKind::Cart, GeneratorKind::GaussianCopula];

/// How one candidate did on the inner split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub generator: String,
    /// Whether its inner batch passed every gated operator.
    pub passed: bool,
    pub failed_operators: Vec<String>,
    /// Real-vs-synthetic AUC (0.5 = indistinguishable), and the same for
    /// the inner holdout as its noise floor.
    pub detection_auc: Option<f64>,
    pub holdout_detection_auc: Option<f64>,
    /// Why the candidate could not be fitted or judged, if so.
    pub error: Option<String>,
}

/// The choice and every candidate's scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    pub chosen: String,
    pub inner_train_rows: usize,
    pub inner_holdout_rows: usize,
    pub candidates: Vec<Candidate>,
}

fn name(kind: GeneratorKind, settings: &GeneratorSettings<'_>) -> String {
    match (kind, settings.stratify) {
        (GeneratorKind::GaussianCopula, Some(_)) => "gaussian_copula_stratified".into(),
        (GeneratorKind::GaussianCopula, None) => super::GAUSSIAN_COPULA.into(),
        (GeneratorKind::Cart, _) => super::CART.into(),
        (k, _) => format!("{k:?}"),
    }
}

/// Chooses and fits the generator for `train`.
pub fn select(
    train: &Table,
    settings: &GeneratorSettings<'_>,
    seed: u64,
) -> Result<(GeneratorModel, Selection), FitError> {
    let n = train.n_rows();
    let split_seed = derive_seed(seed, "auto-split", 0);
    let unit = |row: usize| match settings.entities {
        Some(e) => e[row] as u64,
        None => row as u64,
    };
    let (mut inner_train, mut inner_holdout) = (Vec::new(), Vec::new());
    for row in 0..n {
        if unit_hash(&unit(row).to_string(), split_seed) < 0.5 {
            inner_holdout.push(row);
        } else {
            inner_train.push(row);
        }
    }
    let r = train.take(&inner_train);
    let h = train.take(&inner_holdout);
    let entities: Option<Vec<u32>> = settings
        .entities
        .map(|e| inner_train.iter().map(|&row| e[row]).collect());
    let inner_settings = GeneratorSettings {
        entities: entities.as_deref(),
        ..*settings
    };
    let default_gate = (GateConfig::default(), Roles::default());
    let (gate_config, roles) = settings.gate.unwrap_or((&default_gate.0, &default_gate.1));
    let judge_seed = derive_seed(seed, "auto-judge", 0);
    let holdout_auc = gate::detection_auc(&r, &h, judge_seed);
    let mut candidates = Vec::new();
    for kind in CANDIDATES {
        let mut candidate = Candidate {
            generator: name(kind, settings),
            passed: false,
            failed_operators: Vec::new(),
            detection_auc: None,
            holdout_detection_auc: holdout_auc,
            error: None,
        };
        match fit_generator(
            kind,
            &r,
            &inner_settings,
            derive_seed(seed, "auto-fit", kind as u64),
        ) {
            Err(e) => candidate.error = Some(e.to_string()),
            Ok(model) => {
                let s = model.sample(r.n_rows(), derive_seed(seed, "auto-sample", kind as u64));
                candidate.detection_auc = gate::detection_auc(&r, &s, judge_seed);
                match gate::evaluate(&r, &h, &s, gate_config, roles, judge_seed) {
                    Ok(report) => {
                        candidate.passed = report.passed;
                        candidate.failed_operators = report
                            .results
                            .iter()
                            .filter(|x| !x.passed)
                            .map(|x| x.operator.clone())
                            .collect();
                        candidate.failed_operators.dedup();
                    }
                    Err(e) => candidate.error = Some(format!("gate: {e}")),
                }
            }
        }
        candidates.push((kind, candidate));
    }
    let rank = |c: &Candidate| {
        (
            c.error.is_some(),
            !c.passed,
            c.failed_operators.len(),
            // Lower AUC first; a missing score sorts last.
            (c.detection_auc.unwrap_or(2.0) * 1e6).round() as i64,
        )
    };
    let best = candidates
        .iter()
        .filter(|(_, c)| c.error.is_none())
        .min_by_key(|(_, c)| rank(c))
        .map(|(k, _)| *k);
    let Some(best) = best else {
        let reasons: Vec<String> = candidates
            .iter()
            .map(|(_, c)| format!("{}: {}", c.generator, c.error.as_deref().unwrap_or("?")))
            .collect();
        return Err(FitError::Auto(format!(
            "no candidate could be fitted on the inner split ({})",
            reasons.join("; ")
        )));
    };
    let model = fit_generator(best, train, settings, seed)?;
    let selection = Selection {
        chosen: name(best, settings),
        inner_train_rows: r.n_rows(),
        inner_holdout_rows: h.n_rows(),
        candidates: candidates.into_iter().map(|(_, c)| c).collect(),
    };
    Ok((model, selection))
}
