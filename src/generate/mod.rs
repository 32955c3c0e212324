//! Generators and their bookkeeping: the patient-level train/holdout split, the
//! fitted model with its provenance, and the on-disk model registry.
//!
//! Every fitted model is written to the registry before anything it generates
//! is published, with its content hash, its seed and what it was fitted on
//! (window bounds, source offsets, row and patient counts), so any published
//! batch can be traced to — and re-sampled from — exactly one model version.

pub mod auto;
pub mod cart;
pub mod cohort;
pub mod copula;
pub mod ledger;
pub mod privbayes;
pub mod registry;
pub mod stratified;

use serde::{Deserialize, Serialize};

use crate::drift::ReferenceProfile;
use crate::table::Table;

pub use registry::{ModelRegistry, RegistryError};

/// Name of the generator family, as it appears in lineage headers.
pub use cart::GENERATOR_NAME as CART;
pub use copula::GENERATOR_NAME as GAUSSIAN_COPULA;
pub use privbayes::GENERATOR_NAME as PRIVBAYES;

/// Which generator a topology fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GeneratorKind {
    /// Sequential CART synthesis with structure rules: the best measured on
    /// real tables (README, "Choosing a generator"); not differentially private.
    #[default]
    Cart,
    /// Fit CART and the copula on an inner split of the training rows, gate
    /// each there, deploy the best that passes (see [`auto`]).
    Auto,
    /// Gaussian copula: fast, keeps marginals and pairwise correlation; not
    /// differentially private.
    GaussianCopula,
    /// PrivBayes: ε-differentially private Bayesian network over a declared domain.
    Privbayes,
}

/// A fitted model of either family.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "family", content = "model", rename_all = "snake_case")]
pub enum GeneratorModel {
    GaussianCopula(copula::CopulaModel),
    /// Sequential CART synthesis with structure rules.
    Cart(cart::CartModel),
    /// One copula per stratum of a declared column (`model.stratify_by`).
    StratifiedCopula(stratified::StratifiedCopula),
    Privbayes(privbayes::PrivBayesModel),
}

impl GeneratorModel {
    pub fn sample(&self, n: usize, seed: u64) -> Table {
        match self {
            GeneratorModel::GaussianCopula(m) => m.sample(n, seed),
            GeneratorModel::Cart(m) => m.sample(n, seed),
            GeneratorModel::StratifiedCopula(m) => m.sample(n, seed),
            GeneratorModel::Privbayes(m) => m.sample(n, seed),
        }
    }

    /// Draws `n` rows of a cohort ("sex = F and diagnosis = E11.9") from the
    /// model itself; see [`cohort`] for how each family conditions.
    pub fn sample_cohort(
        &self,
        n: usize,
        seed: u64,
        cohort: &cohort::Cohort,
    ) -> Result<Table, cohort::CohortError> {
        match self {
            GeneratorModel::GaussianCopula(m) => m.sample_cohort(n, seed, cohort),
            GeneratorModel::Cart(m) => m.sample_cohort(n, seed, cohort),
            GeneratorModel::StratifiedCopula(m) => m.sample_cohort(n, seed, cohort),
            GeneratorModel::Privbayes(m) => m.sample_cohort(n, seed, cohort),
        }
    }

    pub fn content_sha256(&self) -> String {
        match self {
            GeneratorModel::GaussianCopula(m) => m.content_sha256(),
            GeneratorModel::Cart(m) => m.content_sha256(),
            GeneratorModel::StratifiedCopula(m) => m.content_sha256(),
            GeneratorModel::Privbayes(m) => m.content_sha256(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            GeneratorModel::GaussianCopula(_) => GAUSSIAN_COPULA,
            GeneratorModel::Cart(_) => CART,
            GeneratorModel::StratifiedCopula(_) => "gaussian_copula_stratified",
            GeneratorModel::Privbayes(_) => PRIVBAYES,
        }
    }

    /// (ε, δ) spent by the fit; `None` for a non-DP generator.
    pub fn epsilon(&self) -> Option<(f64, f64)> {
        match self {
            GeneratorModel::GaussianCopula(_)
            | GeneratorModel::Cart(_)
            | GeneratorModel::StratifiedCopula(_) => None,
            GeneratorModel::Privbayes(m) => Some(m.epsilon_spent()),
        }
    }
}

/// What a model was fitted on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FittedOn {
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    /// `topic:partition:first-last` per partition.
    pub source_offsets: Vec<String>,
    /// Training rows; for DP fits the model's noisy count (rounded), since
    /// the exact count of patients is itself private.
    pub train_rows: usize,
    /// Holdout rows; omitted (0) for DP fits for the same reason.
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
    /// Seed of the fit, so the model can be refitted bit for bit. `None` for
    /// DP fits: whoever knows the seed can regenerate and subtract the noise,
    /// so a DP fit draws it from the OS and never stores it.
    pub fit_seed: Option<u64>,
    pub fitted_on: FittedOn,
    /// (ε, δ) spent by this fit. The copula is not differentially private:
    /// it spends nothing and gives no DP guarantee (`None`).
    pub epsilon: Option<(f64, f64)>,
    pub reference: ReferenceProfile,
    /// How `model.generator = "auto"` chose this model: every candidate's
    /// scores on the inner split. Absent for a generator named outright.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<auto::Selection>,
    pub model: GeneratorModel,
    /// How each column was read from a file (`resynth synthesize`), so
    /// `resynth sample` writes dates as dates; empty for engine models,
    /// whose output schema says it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub column_formats: Vec<(String, crate::source::text_values::ColumnFormat)>,
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

/// Why a fit did not produce a model.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error("gaussian copula: {0}")]
    Copula(#[from] copula::CopulaError),
    #[error("cart: {0}")]
    Cart(#[from] cart::CartError),
    #[error("auto: {0}")]
    Auto(String),
    #[error("privbayes: {0}")]
    PrivBayes(#[from] privbayes::PrivBayesError),
    #[error("{0}")]
    Stratified(#[from] stratified::StratifiedError),
    #[error(
        "generator privbayes needs a [privbayes] section with epsilon and a domain for every column"
    )]
    MissingPrivBayesConfig,
}

/// Which generator to fit, with its settings (from the topology).
#[derive(Debug, Clone, Copy)]
pub struct GeneratorSettings<'a> {
    pub kind: GeneratorKind,
    pub copula: &'a copula::CopulaConfig,
    pub cart: &'a cart::CartConfig,
    /// Privacy unit of each training row, when a patient can have several
    /// rows (dense ids; see [`entity_index`]). CART counts leaves in them.
    pub entities: Option<&'a [u32]>,
    /// The gate `auto` judges its candidates with (config, roles).
    pub gate: Option<(&'a crate::gate::GateConfig, &'a crate::gate::Roles)>,
    /// (column, min rows per stratum) for a stratified copula.
    pub stratify: Option<(&'a str, usize)>,
    pub privbayes: Option<&'a privbayes::PrivBayesConfig>,
}

/// Fits the topology's generator on `train` and wraps it with its provenance
/// and the drift `reference` the caller built (the engine profiles the whole
/// window with the topology's drift settings).
pub fn fit_model(
    topology: &str,
    version: u64,
    train: &Table,
    settings: GeneratorSettings<'_>,
    seed: u64,
    mut fitted_on: FittedOn,
    reference: ReferenceProfile,
) -> Result<ModelRecord, FitError> {
    // The model must depend on the rows, not on the order they were read
    // in: a multi-partition scan (DataFusion splits CSV files of 10 MB and
    // more into byte ranges read in parallel) or Kafka partitions interleave
    // rows differently on every run.
    let (canonical, entities) = canonical_order(train, settings.entities);
    let train = &canonical;
    let settings = GeneratorSettings {
        entities: entities.as_deref(),
        ..settings
    };
    let (model, fit_seed, selection) = match settings.kind {
        GeneratorKind::Auto => {
            let (model, selection) = auto::select(train, &settings, seed)?;
            (model, Some(seed), Some(selection))
        }
        GeneratorKind::Privbayes => {
            let config = settings.privbayes.ok_or(FitError::MissingPrivBayesConfig)?;
            let secret: u64 = rand::random();
            let model = privbayes::fit(train, config, secret)?;
            fitted_on.train_rows = model
                .budget()
                .noisy_rows
                .map_or(0, |n| n.max(0.0).round() as usize);
            fitted_on.holdout_rows = 0;
            (GeneratorModel::Privbayes(model), None, None)
        }
        kind => (
            fit_generator(kind, train, &settings, seed)?,
            Some(seed),
            None,
        ),
    };
    Ok(ModelRecord {
        topology: topology.to_string(),
        version,
        generator: model.name().to_string(),
        sha256: model.content_sha256(),
        fit_seed,
        fitted_on,
        epsilon: model.epsilon(),
        reference,
        selection,
        model,
        column_formats: Vec::new(),
    })
}

/// Fits one non-DP generator family (not `auto`, not PrivBayes).
pub(crate) fn fit_generator(
    kind: GeneratorKind,
    train: &Table,
    settings: &GeneratorSettings<'_>,
    seed: u64,
) -> Result<GeneratorModel, FitError> {
    Ok(match kind {
        GeneratorKind::GaussianCopula => match settings.stratify {
            Some((column, min_rows)) => GeneratorModel::StratifiedCopula(stratified::fit(
                train,
                column,
                min_rows,
                settings.copula,
                seed,
            )?),
            None => GeneratorModel::GaussianCopula(copula::fit(train, settings.copula, seed)?),
        },
        GeneratorKind::Cart => {
            GeneratorModel::Cart(cart::fit(train, settings.cart, seed, settings.entities)?)
        }
        GeneratorKind::Auto | GeneratorKind::Privbayes => {
            return Err(FitError::Auto(format!(
                "{kind:?} is not a single generator family"
            )));
        }
    })
}

/// The rows of `table` in a canonical order, with every categorical
/// dictionary sorted by label (only labels in use kept): the same multiset of
/// rows gives the same table whatever order it arrived in. `entities` follow
/// their rows.
pub fn canonical_order(table: &Table, entities: Option<&[u32]>) -> (Table, Option<Vec<u32>>) {
    use crate::table::{Column, ColumnValues, NULL_CODE};
    let columns: Vec<Column> = table
        .columns
        .iter()
        .map(|c| match &c.values {
            ColumnValues::Numeric(_) => c.clone(),
            ColumnValues::Categorical { codes, dictionary } => {
                let mut used: Vec<&str> = codes
                    .iter()
                    .filter(|&&k| k != NULL_CODE && (k as usize) < dictionary.len())
                    .map(|&k| dictionary[k as usize].as_str())
                    .collect();
                used.sort_unstable();
                used.dedup();
                let recode = |k: u32| {
                    if k == NULL_CODE || k as usize >= dictionary.len() {
                        k
                    } else {
                        used.binary_search(&dictionary[k as usize].as_str())
                            .expect("a used label") as u32
                    }
                };
                Column {
                    name: c.name.clone(),
                    values: ColumnValues::Categorical {
                        codes: codes.iter().map(|&k| recode(k)).collect(),
                        dictionary: used.iter().map(|s| s.to_string()).collect(),
                    },
                }
            }
        })
        .collect();
    let recoded = Table::new(columns);
    let key = |row: usize, column: &Column| -> u64 {
        match &column.values {
            ColumnValues::Numeric(v) => cart::structure::numeric_key(v[row]),
            ColumnValues::Categorical { codes, .. } => u64::from(codes[row]),
        }
    };
    let mut rows: Vec<usize> = (0..recoded.n_rows()).collect();
    rows.sort_by(|&a, &b| {
        recoded
            .columns
            .iter()
            .map(|c| key(a, c).cmp(&key(b, c)))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| {
                let e = |r: usize| entities.map_or(0, |e| e[r]);
                e(a).cmp(&e(b))
            })
    });
    let entities = entities.map(|e| rows.iter().map(|&r| e[r]).collect());
    (recoded.take(&rows), entities)
}

/// Dense privacy-unit ids of the rows, or None when every row is its own
/// unit (the usual one row per patient), so nothing needs counting.
pub fn entity_index(ids: &[Option<String>]) -> Option<Vec<u32>> {
    let mut sorted: Vec<&Option<String>> = ids.iter().collect();
    sorted.sort();
    sorted.dedup();
    if sorted.len() == ids.len() {
        return None;
    }
    Some(
        ids.iter()
            .map(|id| sorted.binary_search(&id).expect("an id of the rows") as u32)
            .collect(),
    )
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

    /// Issue 12: `synthesize` on one file gave different models from run to
    /// run, because a CSV of 10 MB or more is scanned in parallel byte ranges
    /// and its rows arrive in a different order each time. Every family must
    /// give the same model for the same rows in any order and on any number
    /// of threads.
    #[test]
    fn fits_depend_on_the_rows_not_their_order_or_the_thread_count() {
        let table = cart::tests::clinical(1500, 31);
        let mut shuffled: Vec<usize> = (0..table.n_rows()).collect();
        use rand::SeedableRng;
        use rand::seq::SliceRandom;
        shuffled.shuffle(&mut rand::rngs::StdRng::seed_from_u64(4));
        // Same rows, shuffled, with categories first seen in another order.
        let other = table.take(&shuffled);
        let copula_config = copula::CopulaConfig::default();
        let cart_config = cart::CartConfig::default();
        for (kind, stratify) in [
            (GeneratorKind::GaussianCopula, None),
            (GeneratorKind::GaussianCopula, Some(("group", 100))),
            (GeneratorKind::Cart, None),
        ] {
            let settings = GeneratorSettings {
                kind,
                copula: &copula_config,
                cart: &cart_config,
                entities: None,
                gate: None,
                stratify,
                privbayes: None,
            };
            let fit = |t: &Table, threads: usize| {
                let record = copula::with_threads(threads, || {
                    fit_model(
                        "t",
                        1,
                        t,
                        settings,
                        9,
                        FittedOn {
                            window_start_ms: 0,
                            window_end_ms: 0,
                            source_offsets: Vec::new(),
                            train_rows: t.n_rows(),
                            holdout_rows: 0,
                        },
                        ReferenceProfile::build(t),
                    )
                    .unwrap()
                });
                let rows = copula::with_threads(threads, || record.model.sample(2000, 5));
                (record.sha256, rows.content_sha256())
            };
            let first = fit(&table, 2);
            assert_eq!(fit(&table, 2), first, "{kind:?}: repeated fit");
            assert_eq!(fit(&table, 1), first, "{kind:?}: one thread");
            assert_eq!(fit(&table, 4), first, "{kind:?}: four threads");
            assert_eq!(fit(&other, 3), first, "{kind:?}: rows in another order");
        }
    }

    #[test]
    fn derived_seeds_differ_by_purpose_and_counter() {
        assert_ne!(derive_seed(1, "fit", 0), derive_seed(1, "fit", 1));
        assert_ne!(derive_seed(1, "fit", 0), derive_seed(1, "sample", 0));
        assert_eq!(derive_seed(1, "fit", 0), derive_seed(1, "fit", 0));
    }
}
