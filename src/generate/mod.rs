//! Generators and their bookkeeping: the patient-level train/holdout split, the
//! fitted model with its provenance, and the on-disk model registry.
//!
//! Every fitted model is written to the registry before anything it generates
//! is published, with its content hash, its seed and what it was fitted on
//! (window bounds, source offsets, row and patient counts), so any published
//! batch can be traced to — and re-sampled from — exactly one model version.

pub mod copula;
pub mod registry;

use serde::{Deserialize, Serialize};

use crate::drift::ReferenceProfile;
use crate::table::Table;

pub use registry::{ModelRegistry, RegistryError};

/// Name of the generator family, as it appears in lineage headers.
pub use copula::GENERATOR_NAME as GAUSSIAN_COPULA;

/// What a model was fitted on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FittedOn {
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    /// `topic:partition:first-last` per partition.
    pub source_offsets: Vec<String>,
    pub train_rows: usize,
    pub holdout_rows: usize,
}

/// A fitted, versioned model as stored in the registry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelRecord {
    pub topology: String,
    pub version: u64,
    pub generator: String,
    /// sha256 of the generator's canonical serialisation.
    pub sha256: String,
    pub fit_seed: u64,
    pub fitted_on: FittedOn,
    /// (epsilon, delta) spent by this fit. The copula is not differentially
    /// private: it spends nothing and gives no DP guarantee.
    pub epsilon: Option<f64>,
    pub reference: ReferenceProfile,
    pub model: copula::CopulaModel,
}

/// Splits rows into (train, holdout) by privacy unit: all rows of one entity
/// land on the same side, decided by a seeded hash of its id, so a patient's
/// records never appear on both sides of a privacy test.
pub fn split_by_entity(
    entity_ids: &[Option<String>],
    holdout_fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let mut train = Vec::new();
    let mut holdout = Vec::new();
    for (row, id) in entity_ids.iter().enumerate() {
        let key = id.as_deref().unwrap_or("");
        let u = unit_hash(key, seed);
        if u < holdout_fraction {
            holdout.push(row);
        } else {
            train.push(row);
        }
    }
    (train, holdout)
}

/// A stable hash of `key` mapped to [0, 1).
fn unit_hash(key: &str, seed: u64) -> f64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(key.as_bytes());
    let d = h.finalize();
    let v = u64::from_le_bytes(d[..8].try_into().expect("32-byte digest"));
    (v >> 11) as f64 / (1u64 << 53) as f64
}

/// Derives a seed for one purpose from the topology seed and a counter, so
/// seeds differ across windows and attempts but are reproducible.
pub fn derive_seed(base: u64, purpose: &str, n: u64) -> u64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::new()
        .chain_update(base.to_le_bytes())
        .chain_update(purpose.as_bytes())
        .chain_update(n.to_le_bytes())
        .finalize();
    u64::from_le_bytes(d[..8].try_into().expect("32-byte digest"))
}

/// Fits the copula on `train` and wraps it with its provenance.
pub fn fit_copula(
    topology: &str,
    version: u64,
    train: &Table,
    config: &copula::CopulaConfig,
    seed: u64,
    fitted_on: FittedOn,
) -> Result<ModelRecord, copula::CopulaError> {
    let model = copula::fit(train, config, seed)?;
    Ok(ModelRecord {
        topology: topology.to_string(),
        version,
        generator: GAUSSIAN_COPULA.to_string(),
        sha256: model.content_sha256(),
        fit_seed: seed,
        fitted_on,
        epsilon: None,
        reference: ReferenceProfile::build(train),
        model,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_each_entity_on_one_side_and_respects_fraction() {
        let ids: Vec<Option<String>> = (0..4000).map(|i| Some(format!("p{}", i % 2000))).collect();
        let (train, holdout) = split_by_entity(&ids, 0.3, 9);
        assert_eq!(train.len() + holdout.len(), 4000);
        let h: std::collections::HashSet<_> = holdout.iter().map(|&r| ids[r].clone()).collect();
        assert!(train.iter().all(|&r| !h.contains(&ids[r])));
        let share = holdout.len() as f64 / 4000.0;
        assert!((share - 0.3).abs() < 0.03, "{share}");
        assert_eq!(split_by_entity(&ids, 0.3, 9), (train, holdout));
    }

    #[test]
    fn derived_seeds_differ_by_purpose_and_counter() {
        assert_ne!(derive_seed(1, "fit", 0), derive_seed(1, "fit", 1));
        assert_ne!(derive_seed(1, "fit", 0), derive_seed(1, "sample", 0));
        assert_eq!(derive_seed(1, "fit", 0), derive_seed(1, "fit", 0));
    }
}
