//! Gaussian copula generator: the default, fast synthesizer of the generate stage.
//!
//! When the drift monitor asks for a refit, the engine fits a model on the
//! window's patient-level *training* split and samples a synthetic batch that the
//! fidelity, utility and privacy gates then check against training and holdout.
//! The copula is the cheap baseline generator: one pass over the data, a model of
//! a few kilobytes per column, and sampling that is a matrix multiply. It keeps
//! every column's marginal distribution and the pairwise (Gaussian) dependence
//! between columns; it does not promise higher-order interactions, nor nominal
//! associations between categoricals that one latent normal per column cannot
//! express (e.g. "diagnosis X goes with drug X"): those keep their direction and
//! roughly half their strength. Use the DP Bayesian network for those.
//!
//! # Method
//! * Each column gets a marginal: numeric columns an interpolated empirical
//!   quantile function on a fixed grid of `quantile_knots` probabilities, so
//!   the model holds quantile summaries, never training rows; categorical
//!   columns an interval of (0, 1) per category, sized by its frequency and
//!   ordered most frequent first (the SDV construction). Missing values of a
//!   categorical column are a category of their own; missingness of a numeric
//!   column is an extra binary latent dimension, so "lab missing" keeps its
//!   correlation with, say, the diagnosis.
//! * Every row is mapped to normal scores: `Φ⁻¹(u)` where `u` is drawn uniformly
//!   inside the row's rank block (numeric, ties included) or category interval,
//!   with a seeded RNG. The Pearson correlation of these scores (pairwise over
//!   rows where both are present) is divided by each dimension's attenuation
//!   factor (see `latent_correlation`: without it a binary column keeps only
//!   ~0.64 of its correlation), repaired to positive definite when needed
//!   (eigenvalue clipping, rescaled to a unit diagonal) and Cholesky-factored.
//! * Sampling draws `z ~ N(0, Σ)`, sets `u = Φ(z)` and maps `u` back through each
//!   marginal's inverse CDF. Numeric samples are clamped to the training range
//!   and rounded to the precision detected in training (integers stay integers);
//!   a rounded sample never lands on a training minimum or maximum that fewer
//!   than 11 rows hold (one patient's extreme), it goes one grid step inward.
//!
//! # Privacy
//! The model stores summaries, not records, but it is not differentially
//! private: the first and last knots are the training minimum and maximum, and
//! on windows with fewer rows than knots the knots sit on or between actual
//! values. Category frequencies are stored exactly. The privacy gate, not this
//! module, decides whether a batch may be published.
//!
//! # Determinism
//! Fit and sample are pure functions of their inputs and seed: every column and
//! latent dimension draws from its own RNG stream derived from `(seed, stream)`,
//! so results do not depend on the number of threads. Streams use `rand`'s
//! `StdRng`, which is stable within a `rand` release, not across releases.
//!
//! # Serialized format (`format_version` 1)
//! `serde_json` of [`CopulaModel`] is the canonical form, and its SHA-256 is the
//! model's content hash (the `resynth.model_sha256` lineage header):
//! ```text
//! { "format_version": 1, "generator": "gaussian_copula",
//!   "config": {CopulaConfig}, "n_train_rows": N, "n_dims": D,
//!   "columns": [ { "name": "...", "marginal":
//!        { "kind": "numeric", "null_rate": p, "knots": [..K values, min..max],
//!          "decimals": d | null, "value_dim": i | null, "null_dim": j | null }
//!      | { "kind": "categorical", "dictionary": ["label", ..],
//!          "levels": [ { "value": {"code": c} | "null" | "pooled", "probability": p }, .. ],
//!          "pooled": [ { "code": c, "probability": p_within_pool }, .. ],
//!          "dim": i | null } } ],
//!   "correlation": [[D × D]], "correlation_repaired": bool }
//! ```
//! A column with a single state (constant, all-null) has no latent dimension.
//! Floats are stored as fixed points of `serde_json` print → parse (see
//! `json_stable`), so save → load keeps the bits, the hash and the samples.

use std::sync::atomic::{AtomicUsize, Ordering};

use nalgebra::DMatrix;
use rand::distr::Open01;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::table::{Column, ColumnValues, NULL_CODE, ShapeError, Table};

mod conditional;

/// The only `format_version` this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Name recorded in the model and in the `resynth.generator` lineage header.
pub const GENERATOR_NAME: &str = "gaussian_copula";

/// Eigenvalue floor when repairing a correlation matrix. Small enough not to
/// distort a valid matrix, large enough that Cholesky stays well conditioned.
const MIN_EIGENVALUE: f64 = 1e-6;

/// Largest decimal precision a model may declare; beyond this, rounding is
/// below f64 resolution for typical clinical magnitudes anyway.
const MAX_DECIMALS_LIMIT: u32 = 10;

/// Options for [`fit`]. Lives in the topology's `[generate.copula]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CopulaConfig {
    /// Categories of a column that keep their own copula interval, most
    /// frequent first. Rarer categories are pooled into one interval: the pool
    /// as a whole keeps its correlation with other columns, and a pooled draw
    /// picks one of the rare categories by its training frequency, independently
    /// of the rest of the row. So marginal frequencies are kept for every
    /// category while the correlation matrix stays small. The null category and
    /// the pool do not count toward the cap. Must be at least 1.
    pub max_categories: usize,
    /// Number of probabilities (evenly spaced on [0, 1], both ends included) at
    /// which a numeric column's quantile function is stored. More knots follow
    /// the tails more closely; the model holds at most this many values per
    /// numeric column whatever the window size. Must be at least 2.
    pub quantile_knots: usize,
    /// Fewest non-null training values per knot: a column with m values gets
    /// at most `max(2, m / min_rows_per_knot)` knots. With a knot per handful
    /// of rows the quantile function traces individual patients' values (and
    /// a small stratum's noise, which the inference-risk attack then exploits);
    /// with at least this many rows behind each knot it is a smoothed summary.
    /// 1 (default) = no cap beyond `quantile_knots`. Measured: a cap of 10 did
    /// not lower the inference risk of a copula stratified by the sensitive
    /// column itself (that leak comes from stratifying, see `stratified`).
    pub min_rows_per_knot: usize,
    /// Highest decimal precision that is detected and reproduced. A column whose
    /// values all have at most this many decimals is sampled at that precision
    /// (0 = integer); otherwise it is sampled unrounded. At most 10.
    pub max_decimals: u32,
    /// Windows with fewer training rows are refused with
    /// [`CopulaError::TooFewRows`]. Values below 2 act as 2: a single record can
    /// only be "synthesized" by copying it, which the privacy gate would reject.
    pub min_rows: usize,
}

impl Default for CopulaConfig {
    fn default() -> Self {
        CopulaConfig {
            max_categories: 256,
            quantile_knots: 201,
            min_rows_per_knot: 1,
            max_decimals: 4,
            min_rows: 2,
        }
    }
}

/// Why a model could not be fitted or loaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CopulaError {
    #[error("cannot fit a copula: {0}")]
    Shape(#[from] ShapeError),
    #[error("cannot fit a copula on {rows} training rows: at least {min} are required")]
    TooFewRows { rows: usize, min: usize },
    #[error("copula config `{field}`: {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    #[error("copula model is inconsistent: {0}")]
    InvalidModel(String),
}

/// A fitted Gaussian copula. Serializes to the documented format above;
/// deserializing checks the format so that [`CopulaModel::sample`] cannot fail.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "ModelSpec")]
pub struct CopulaModel {
    spec: ModelSpec,
    /// Lower Cholesky factor of `spec.correlation`, derived, never serialized.
    factor: DMatrix<f64>,
}

impl Serialize for CopulaModel {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.spec.serialize(serializer)
    }
}

impl TryFrom<ModelSpec> for CopulaModel {
    type Error = CopulaError;

    fn try_from(spec: ModelSpec) -> Result<Self, CopulaError> {
        spec.validate()?;
        let (_, factor) = repair_and_factor(&spec.correlation_matrix());
        Ok(CopulaModel { spec, factor })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelSpec {
    format_version: u32,
    generator: String,
    config: CopulaConfig,
    n_train_rows: usize,
    n_dims: usize,
    columns: Vec<ColumnModel>,
    correlation: Vec<Vec<f64>>,
    correlation_repaired: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnModel {
    name: String,
    marginal: Marginal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Marginal {
    Numeric(NumericMarginal),
    Categorical(CategoricalMarginal),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NumericMarginal {
    null_rate: f64,
    /// Quantiles at probabilities `k / (K - 1)`; the first and last are the
    /// training minimum and maximum, which bound every sample. Empty when the
    /// column was entirely null.
    knots: Vec<f64>,
    /// Detected precision; `Some(0)` for integer-valued columns.
    decimals: Option<u32>,
    value_dim: Option<usize>,
    /// Latent dimension of "is null"; null when `u < null_rate`.
    null_dim: Option<usize>,
    /// The training minimum (maximum) is held by fewer than
    /// [`RARE_END_ROWS`] rows: a real patient's extreme, not a floor (cap)
    /// that many share. A rounded draw is then never put on it (see
    /// [`NumericMarginal::quantile`]). Absent in models fitted before.
    #[serde(default, skip_serializing_if = "is_false")]
    rare_min: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    rare_max: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Rows an end of a numeric column's training range needs to be a floor or
/// cap rather than someone's extreme: the privacy gate's small-cell
/// threshold (`gate.small_cell_min`, default 11), counted in rows here
/// (the copula does not see patients; a patient's rows only add to it).
const RARE_END_ROWS: usize = 11;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoricalMarginal {
    /// Labels seen in training, in training dictionary order; sampled codes index it.
    dictionary: Vec<String>,
    /// Copula intervals in order along (0, 1), most frequent first.
    levels: Vec<Level>,
    /// Rare categories behind the `pooled` level, with within-pool probabilities.
    pooled: Vec<PooledLabel>,
    dim: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Level {
    value: LevelValue,
    probability: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum LevelValue {
    Code(u32),
    Null,
    Pooled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PooledLabel {
    code: u32,
    probability: f64,
}

/// Fits a copula on `train` (the window's training split, one row per patient).
///
/// `seed` drives the uniform draws inside rank ties and category intervals, so
/// the same table, config and seed give the same model byte for byte.
///
/// ```
/// use resynth::generate::copula::{fit, CopulaConfig};
/// use resynth::table::{Column, Table};
/// let t = Table::new(vec![Column::numeric("age", vec![30.0, 41.0, 55.0, 62.0])]);
/// let model = fit(&t, &CopulaConfig::default(), 7).unwrap();
/// let batch = model.sample(10, 1);
/// assert_eq!(batch.n_rows(), 10);
/// ```
pub fn fit(train: &Table, config: &CopulaConfig, seed: u64) -> Result<CopulaModel, CopulaError> {
    validate_config(config)?;
    let n = validate_table(train, config)?;

    let fitted = par_map(&train.columns, |i, column| {
        let mut rng = stream_rng(seed, Domain::Fit, i as u64);
        fit_column(column, n, config, &mut rng)
    });

    let mut columns = Vec::with_capacity(fitted.len());
    let mut latents = Vec::new();
    for (column, (mut marginal, column_latents)) in train.columns.iter().zip(fitted) {
        marginal.shift_dims(latents.len());
        latents.extend(column_latents);
        columns.push(ColumnModel {
            name: column.name.clone(),
            marginal,
        });
    }

    let n_dims = latents.len();
    let raw = latent_correlation(&score_correlation(&latents, n), &latents);
    let (repaired, _) = repair_and_factor(&raw);
    let correlation_repaired = repaired.is_some();
    let correlation = repaired.unwrap_or(raw);
    for column in &mut columns {
        column.marginal.make_json_stable();
    }
    let spec = ModelSpec {
        format_version: FORMAT_VERSION,
        generator: GENERATOR_NAME.to_string(),
        config: config.clone(),
        n_train_rows: n,
        n_dims,
        columns,
        correlation: (0..n_dims)
            .map(|i| {
                (0..n_dims)
                    .map(|j| json_stable(correlation[(i, j)]))
                    .collect()
            })
            .collect(),
        correlation_repaired,
    };
    // The same path as loading, so a fitted and a reloaded model share their
    // Cholesky factor bit for bit and sample identically.
    CopulaModel::try_from(spec)
}

impl CopulaModel {
    /// Draws `n` synthetic rows with the training table's column names, order
    /// and types. Same model and seed give an identical table.
    pub fn sample(&self, n: usize, seed: u64) -> Table {
        let d = self.spec.n_dims;
        let dims: Vec<usize> = (0..d).collect();
        let independent = par_map(&dims, |_, &dim| {
            let mut rng = stream_rng(seed, Domain::Sample, dim as u64);
            (0..n)
                .map(|_| rng.sample::<f64, _>(StandardNormal))
                .collect::<Vec<f64>>()
        });
        let w = DMatrix::from_vec(n, d, independent.concat());
        let z = if d > 0 && n > 0 {
            w * self.factor.transpose()
        } else {
            w
        };
        self.decode_latent(z.as_slice(), n, seed, &[])
    }

    /// Maps latent normal vectors (`z[dim * n + row]`, column-major) to a
    /// table through each column's marginal. `forced` pins a pooled column's
    /// rare-category pick to one code (a cohort asked for that label).
    fn decode_latent(&self, z: &[f64], n: usize, seed: u64, forced: &[(usize, u32)]) -> Table {
        let uniform = |dim: usize, row: usize| std_normal_cdf(z[dim * n + row]);
        let columns = par_map(&self.spec.columns, |i, column| {
            let values = match &column.marginal {
                Marginal::Numeric(m) => ColumnValues::Numeric(
                    (0..n)
                        .map(|row| {
                            if m.null_dim.is_some_and(|j| uniform(j, row) < m.null_rate)
                                || m.knots.is_empty()
                            {
                                return f64::NAN;
                            }
                            let u = m.value_dim.map_or(0.5, |j| uniform(j, row));
                            m.quantile(u)
                        })
                        .collect(),
                ),
                Marginal::Categorical(m) => {
                    let level_upper = cumulative(m.levels.iter().map(|l| l.probability));
                    let pool_upper = cumulative(m.pooled.iter().map(|p| p.probability));
                    let mut pool_rng = stream_rng(seed, Domain::Pool, i as u64);
                    let pinned = forced.iter().find(|(c, _)| *c == i).map(|&(_, code)| code);
                    let codes = (0..n)
                        .map(|row| {
                            let u = m.dim.map_or(0.5, |j| uniform(j, row));
                            match m.levels[locate(&level_upper, u)].value {
                                LevelValue::Code(c) => c,
                                LevelValue::Null => NULL_CODE,
                                LevelValue::Pooled => {
                                    let v: f64 = pool_rng.sample(Open01);
                                    pinned.unwrap_or(m.pooled[locate(&pool_upper, v)].code)
                                }
                            }
                        })
                        .collect();
                    ColumnValues::Categorical {
                        codes,
                        dictionary: m.dictionary.clone(),
                    }
                }
            };
            Column {
                name: column.name.clone(),
                values,
            }
        });
        Table::new(columns)
    }

    /// Hex SHA-256 of the canonical serialization; identifies the model in
    /// lineage headers and the registry, stable across save and load.
    pub fn content_sha256(&self) -> String {
        json_sha256(self)
    }

    /// Column names in training order, which [`CopulaModel::sample`] keeps.
    pub fn columns(&self) -> Vec<String> {
        self.spec.columns.iter().map(|c| c.name.clone()).collect()
    }

    /// Number of training rows the model was fitted on (for lineage and reports).
    pub fn n_train_rows(&self) -> usize {
        self.spec.n_train_rows
    }

    /// Whether the estimated correlation had to be repaired to be positive
    /// definite; worth reporting, since it means the fit lost some dependence.
    pub fn correlation_repaired(&self) -> bool {
        self.spec.correlation_repaired
    }
}

impl CopulaConfig {
    /// Every problem with the settings, each naming its field, for `resynth check`.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let valid = CopulaConfig::default();
        for probe in [
            CopulaConfig {
                max_categories: self.max_categories,
                ..valid.clone()
            },
            CopulaConfig {
                quantile_knots: self.quantile_knots,
                ..valid.clone()
            },
            CopulaConfig {
                min_rows_per_knot: self.min_rows_per_knot,
                ..valid.clone()
            },
            CopulaConfig {
                max_decimals: self.max_decimals,
                ..valid.clone()
            },
        ] {
            if let Err(CopulaError::InvalidConfig { field, reason }) = validate_config(&probe) {
                problems.push(format!("{field}: {reason}"));
            }
        }
        problems
    }
}

fn validate_config(config: &CopulaConfig) -> Result<(), CopulaError> {
    if config.max_categories < 1 {
        return Err(CopulaError::InvalidConfig {
            field: "max_categories",
            reason: "must be at least 1".into(),
        });
    }
    if config.min_rows_per_knot < 1 {
        return Err(CopulaError::InvalidConfig {
            field: "min_rows_per_knot",
            reason: "must be at least 1".into(),
        });
    }
    if config.quantile_knots < 2 {
        return Err(CopulaError::InvalidConfig {
            field: "quantile_knots",
            reason: format!("must be at least 2, got {}", config.quantile_knots),
        });
    }
    if config.max_decimals > MAX_DECIMALS_LIMIT {
        return Err(CopulaError::InvalidConfig {
            field: "max_decimals",
            reason: format!(
                "must be at most {MAX_DECIMALS_LIMIT}, got {}",
                config.max_decimals
            ),
        });
    }
    Ok(())
}

/// Checks the table's shape and values; returns the row count.
fn validate_table(train: &Table, config: &CopulaConfig) -> Result<usize, CopulaError> {
    let n = train.check_shape()?;
    let min = config.min_rows.max(2);
    if n < min {
        return Err(CopulaError::TooFewRows { rows: n, min });
    }
    train.check_finite()?;
    Ok(n)
}

/// Normal scores of one latent dimension; `mask[row] == false` means the row
/// has no score (a null numeric value) and is left out of its correlations.
struct Latent {
    scores: Vec<f64>,
    mask: Option<Vec<bool>>,
    /// `Var(E[L | interval])` for a standard normal `L` cut at this dimension's
    /// interval bounds; see [`latent_correlation`].
    attenuation: f64,
}

fn fit_column(
    column: &Column,
    n: usize,
    config: &CopulaConfig,
    rng: &mut StdRng,
) -> (Marginal, Vec<Latent>) {
    match &column.values {
        ColumnValues::Numeric(v) => {
            let (m, latents) = fit_numeric(v, config, rng);
            (Marginal::Numeric(m), latents)
        }
        ColumnValues::Categorical { codes, dictionary } => {
            let (m, latents) = fit_categorical(codes, dictionary, n, config, rng);
            (Marginal::Categorical(m), latents)
        }
    }
}

fn fit_numeric(
    values: &[f64],
    config: &CopulaConfig,
    rng: &mut StdRng,
) -> (NumericMarginal, Vec<Latent>) {
    let n = values.len();
    let mut order: Vec<usize> = (0..n).filter(|&r| !values[r].is_nan()).collect();
    let m = order.len();
    let null_rate = (n - m) as f64 / n as f64;
    if m == 0 {
        let marginal = NumericMarginal {
            null_rate,
            knots: Vec::new(),
            decimals: None,
            value_dim: None,
            null_dim: None,
            rare_min: false,
            rare_max: false,
        };
        return (marginal, Vec::new());
    }
    // Sort (value, row) pairs by an order-preserving integer key: ties are
    // broken by row, so the order, and hence the RNG use, is fixed; integer
    // keys next to the row make this much faster than an indirect comparator.
    let mut keyed: Vec<(u64, u32)> = order
        .iter()
        .map(|&r| (total_order_key(values[r]), r as u32))
        .collect();
    keyed.sort_unstable();
    order = keyed.iter().map(|&(_, r)| r as usize).collect();
    let sorted: Vec<f64> = order.iter().map(|&r| values[r]).collect();
    let k = config
        .quantile_knots
        .min((m / config.min_rows_per_knot.max(1)).max(2));
    let knots: Vec<f64> = (0..k)
        .map(|i| empirical_quantile(&sorted, i as f64 / (k - 1) as f64))
        .collect();
    let decimals = detect_decimals(&sorted, config.max_decimals);

    let mut latents = Vec::new();
    let mut value_dim = None;
    if sorted[0] < sorted[m - 1] {
        // Each tie block [start, end) of the sorted values owns the interval
        // (start/m, end/m); a uniform draw inside it keeps ties from collapsing
        // onto one score, which would bias the correlation toward zero.
        let mut scores = vec![0.0; n];
        let mut attenuation = Attenuation::default();
        let mut start = 0;
        while start < m {
            let mut end = start + 1;
            while end < m && sorted[end] == sorted[start] {
                end += 1;
            }
            for &row in &order[start..end] {
                let w: f64 = rng.sample(Open01);
                let u = (start as f64 + w * (end - start) as f64) / m as f64;
                scores[row] = std_normal_inv_cdf(u);
            }
            attenuation.add((end - start) as f64 / m as f64);
            start = end;
        }
        let mask = (m < n).then(|| values.iter().map(|x| !x.is_nan()).collect());
        value_dim = Some(latents.len());
        latents.push(Latent {
            scores,
            mask,
            attenuation: attenuation.value(),
        });
    }
    let mut null_dim = None;
    if m < n {
        // Null owns (0, null_rate), present owns (null_rate, 1).
        let scores = values
            .iter()
            .map(|x| {
                let w: f64 = rng.sample(Open01);
                let u = if x.is_nan() {
                    w * null_rate
                } else {
                    null_rate + w * (1.0 - null_rate)
                };
                std_normal_inv_cdf(u)
            })
            .collect();
        let mut attenuation = Attenuation::default();
        attenuation.add(null_rate);
        attenuation.add(1.0 - null_rate);
        null_dim = Some(latents.len());
        latents.push(Latent {
            scores,
            mask: None,
            attenuation: attenuation.value(),
        });
    }
    let held = |end: f64| sorted.iter().filter(|&&x| x == end).count();
    let marginal = NumericMarginal {
        null_rate,
        knots,
        decimals,
        value_dim,
        null_dim,
        rare_min: sorted[0] < sorted[m - 1] && held(sorted[0]) < RARE_END_ROWS,
        rare_max: sorted[0] < sorted[m - 1] && held(sorted[m - 1]) < RARE_END_ROWS,
    };
    (marginal, latents)
}

/// Maps an f64 (not NaN) to a u64 whose unsigned order is the numeric order.
fn total_order_key(x: f64) -> u64 {
    let x = if x == 0.0 { 0.0 } else { x }; // -0.0 and 0.0 tie
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// Type-7 (linear interpolation) quantile of sorted, non-empty data.
fn empirical_quantile(sorted: &[f64], q: f64) -> f64 {
    let h = q * (sorted.len() - 1) as f64;
    let lo = (h.floor() as usize).min(sorted.len() - 1);
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Smallest number of decimals (≤ `max`) that represents every value, if any.
fn detect_decimals(values: &[f64], max: u32) -> Option<u32> {
    (0..=max).find(|&d| {
        values
            .iter()
            .all(|&x| round_to(x, d) == x || near(round_to(x, d), x))
    })
}

fn near(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

fn round_to(x: f64, decimals: u32) -> f64 {
    if decimals == 0 {
        return x.round();
    }
    let scale = 10f64.powi(decimals as i32);
    (x * scale).round() / scale
}

fn fit_categorical(
    codes: &[u32],
    dictionary: &[String],
    n: usize,
    config: &CopulaConfig,
    rng: &mut StdRng,
) -> (CategoricalMarginal, Vec<Latent>) {
    let dictionary_len = dictionary.len();
    let mut counts = vec![0usize; dictionary_len];
    let mut nulls = 0usize;
    for &c in codes {
        if c == NULL_CODE {
            nulls += 1;
        } else {
            counts[c as usize] += 1;
        }
    }
    // Output dictionary: labels actually seen, in training order, so codes
    // line up with training whenever training had no unused labels.
    let mut recode = vec![u32::MAX; dictionary_len];
    let mut kept_old = Vec::new();
    for (old, &count) in counts.iter().enumerate() {
        if count > 0 {
            recode[old] = kept_old.len() as u32;
            kept_old.push(old);
        }
    }
    let mut by_frequency: Vec<u32> = (0..kept_old.len() as u32).collect();
    by_frequency.sort_by(|&a, &b| counts[kept_old[b as usize]].cmp(&counts[kept_old[a as usize]]));
    let own = by_frequency.len().min(config.max_categories);
    let total = n as f64;

    let mut levels: Vec<(Level, usize)> = by_frequency[..own]
        .iter()
        .map(|&c| {
            let count = counts[kept_old[c as usize]];
            let level = Level {
                value: LevelValue::Code(c),
                probability: count as f64 / total,
            };
            (level, count)
        })
        .collect();
    if nulls > 0 {
        let level = Level {
            value: LevelValue::Null,
            probability: nulls as f64 / total,
        };
        levels.push((level, nulls));
    }
    let tail = &by_frequency[own..];
    let tail_count: usize = tail.iter().map(|&c| counts[kept_old[c as usize]]).sum();
    let pooled: Vec<PooledLabel> = tail
        .iter()
        .map(|&c| PooledLabel {
            code: c,
            probability: counts[kept_old[c as usize]] as f64 / tail_count as f64,
        })
        .collect();
    if tail_count > 0 {
        let level = Level {
            value: LevelValue::Pooled,
            probability: tail_count as f64 / total,
        };
        levels.push((level, tail_count));
    }
    levels.sort_by_key(|l| std::cmp::Reverse(l.1)); // stable: ties keep code, null, pool order
    let levels: Vec<Level> = levels.into_iter().map(|(l, _)| l).collect();

    let mut latents = Vec::new();
    let mut dim = None;
    if levels.len() > 1 {
        let mut level_of_code = vec![0usize; kept_old.len()];
        let mut null_level = 0;
        let mut pool_level = 0;
        for (i, level) in levels.iter().enumerate() {
            match level.value {
                LevelValue::Code(c) => level_of_code[c as usize] = i,
                LevelValue::Null => null_level = i,
                LevelValue::Pooled => pool_level = i,
            }
        }
        for p in &pooled {
            level_of_code[p.code as usize] = pool_level;
        }
        let upper = cumulative(levels.iter().map(|l| l.probability));
        let scores = codes
            .iter()
            .map(|&c| {
                let i = if c == NULL_CODE {
                    null_level
                } else {
                    level_of_code[recode[c as usize] as usize]
                };
                let lower = if i == 0 { 0.0 } else { upper[i - 1] };
                let w: f64 = rng.sample(Open01);
                std_normal_inv_cdf(lower + w * (upper[i] - lower))
            })
            .collect();
        let mut attenuation = Attenuation::default();
        levels.iter().for_each(|l| attenuation.add(l.probability));
        dim = Some(0);
        latents.push(Latent {
            scores,
            mask: None,
            attenuation: attenuation.value(),
        });
    }
    let marginal = CategoricalMarginal {
        dictionary: kept_old
            .iter()
            .map(|&old| dictionary[old].clone())
            .collect(),
        levels,
        pooled,
        dim,
    };
    (marginal, latents)
}

impl NumericMarginal {
    /// Inverse CDF: interpolate between knots, round to the training precision,
    /// and clamp to the training range so rounding never leaves it.
    ///
    /// Rounding gathers every draw within half a grid step of an end onto
    /// the end itself: in `tests/validate_cli.rs` (integer ages, 26 knots)
    /// that put 0.47 % of a batch's rows on real extremes few patients hold,
    /// nine times the holdout's share, and `outlier_replication` failed it. A draw rounded onto a rare
    /// end ([`RARE_END_ROWS`]) goes one grid step inward instead; an
    /// unrounded draw meets an end only at u = 0 or 1.
    fn quantile(&self, u: f64) -> f64 {
        let k = &self.knots;
        let (lo, hi) = (k[0], k[k.len() - 1]);
        let raw = if k.len() == 1 {
            k[0]
        } else {
            let pos = u.clamp(0.0, 1.0) * (k.len() - 1) as f64;
            let i = (pos.floor() as usize).min(k.len() - 2);
            k[i] + (pos - i as f64) * (k[i + 1] - k[i])
        };
        let Some(d) = self.decimals else {
            return raw.clamp(lo, hi);
        };
        let v = round_to(raw, d).clamp(lo, hi);
        let step = 10f64.powi(-(d as i32));
        if self.rare_min && v == lo && raw > lo && lo + step < hi {
            round_to(lo + step, d)
        } else if self.rare_max && v == hi && raw < hi && hi - step > lo {
            round_to(hi - step, d)
        } else {
            v
        }
    }
}

impl Marginal {
    fn make_json_stable(&mut self) {
        match self {
            Marginal::Numeric(m) => {
                m.null_rate = json_stable(m.null_rate);
                m.knots.iter_mut().for_each(|x| *x = json_stable(*x));
            }
            Marginal::Categorical(m) => {
                m.levels
                    .iter_mut()
                    .for_each(|l| l.probability = json_stable(l.probability));
                m.pooled
                    .iter_mut()
                    .for_each(|p| p.probability = json_stable(p.probability));
            }
        }
    }

    fn shift_dims(&mut self, base: usize) {
        let shift = |d: &mut Option<usize>| {
            if let Some(x) = d {
                *x += base;
            }
        };
        match self {
            Marginal::Numeric(m) => {
                shift(&mut m.value_dim);
                shift(&mut m.null_dim);
            }
            Marginal::Categorical(m) => shift(&mut m.dim),
        }
    }

    fn dims(&self) -> Vec<usize> {
        match self {
            Marginal::Numeric(m) => m.value_dim.into_iter().chain(m.null_dim).collect(),
            Marginal::Categorical(m) => m.dim.into_iter().collect(),
        }
    }
}

/// Upper ends of consecutive intervals with the given widths; the last is
/// forced to exactly 1 so rounding can never leave a gap at the top.
fn cumulative(widths: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut acc = 0.0;
    let mut out: Vec<f64> = widths
        .map(|w| {
            acc += w;
            acc
        })
        .collect();
    if let Some(last) = out.last_mut() {
        *last = 1.0;
    }
    out
}

/// Index of the interval containing `u`, given the intervals' upper ends.
fn locate(upper: &[f64], u: f64) -> usize {
    upper
        .partition_point(|&c| c <= u)
        .min(upper.len().saturating_sub(1))
}

/// Pearson correlation of the latent scores, pairwise over rows where both
/// dimensions have a score. Masked-out scores are stored as zero, so every
/// pairwise sum is a dense matrix product: `ZᵀZ` over all dimensions, and
/// products against the few masked dimensions only for the pairwise counts,
/// sums and sums of squares. No loop over pairs × rows.
fn score_correlation(latents: &[Latent], n: usize) -> DMatrix<f64> {
    let d = latents.len();
    if d == 0 {
        return DMatrix::zeros(0, 0);
    }
    let z = DMatrix::from_iterator(n, d, latents.iter().flat_map(|l| l.scores.iter().copied()));
    let zt = z.transpose();
    // `transpose() * ` goes through the blocked GEMM; `tr_mul` would be a
    // naive dot product per entry, several times slower at this size.
    let cross = &zt * &z;
    let sums: Vec<f64> = latents.iter().map(|l| l.scores.iter().sum()).collect();
    let squares: Vec<f64> = latents
        .iter()
        .map(|l| l.scores.iter().map(|x| x * x).sum())
        .collect();
    let masked: Vec<usize> = (0..d).filter(|&i| latents[i].mask.is_some()).collect();
    // slot[j] = column of dimension j in the masked products, if masked.
    let mut slot = vec![None; d];
    let (count, sum_given, square_given) = if masked.is_empty() {
        (
            DMatrix::zeros(0, 0),
            DMatrix::zeros(0, 0),
            DMatrix::zeros(0, 0),
        )
    } else {
        for (k, &j) in masked.iter().enumerate() {
            slot[j] = Some(k);
        }
        let mask = DMatrix::from_iterator(
            n,
            masked.len(),
            masked.iter().flat_map(|&j| {
                let m = latents[j].mask.as_deref().unwrap_or_default();
                m.iter().map(|&present| if present { 1.0 } else { 0.0 })
            }),
        );
        let z_sq = z.component_mul(&z).transpose();
        // sum_given[(i, k)] = Σ z_i over rows where masked dimension k is present.
        (mask.transpose() * &mask, &zt * &mask, z_sq * &mask)
    };
    // Pairwise count, Σ z_i and Σ z_i² over rows where dimension j is present.
    let stats = |i: usize, j: usize| match (slot[i], slot[j]) {
        (_, None) => {
            let c = slot[i].map_or(n as f64, |k| count[(k, k)]);
            (c, sums[i], squares[i])
        }
        (ki, Some(k)) => {
            let c = ki.map_or(count[(k, k)], |ki| count[(ki, k)]);
            (c, sum_given[(i, k)], square_given[(i, k)])
        }
    };
    DMatrix::from_fn(d, d, |i, j| {
        if i == j {
            return 1.0;
        }
        let (c, si, ssi) = stats(i, j);
        let (_, sj, ssj) = stats(j, i);
        if c < 3.0 {
            return 0.0;
        }
        let cov = cross[(i, j)] - si * sj / c;
        let var_i = ssi - si * si / c;
        let var_j = ssj - sj * sj / c;
        if var_i <= 1e-12 * c || var_j <= 1e-12 * c {
            return 0.0;
        }
        (cov / (var_i * var_j).sqrt()).clamp(-1.0, 1.0)
    })
}

/// Accumulates `Var(E[L | interval]) = Σ (φ(a) − φ(b))² / p` over consecutive
/// intervals of (0, 1) with widths `p`, where `a`, `b` are their normal-score
/// bounds (the mean of a normal truncated to [a, b] is (φ(a) − φ(b)) / p).
#[derive(Default)]
struct Attenuation {
    upper: f64,
    density_at_upper: f64,
    total: f64,
}

impl Attenuation {
    fn add(&mut self, width: f64) {
        if width <= 0.0 {
            return;
        }
        let lower_density = self.density_at_upper;
        self.upper += width;
        self.density_at_upper = if self.upper >= 1.0 - 1e-15 {
            0.0
        } else {
            let z = std_normal_inv_cdf(self.upper);
            (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
        };
        self.total += (lower_density - self.density_at_upper).powi(2) / width;
    }

    fn value(&self) -> f64 {
        self.total.clamp(0.0, 1.0)
    }
}

/// Turns the correlation of jittered scores into the latent correlation the
/// sampler must use. A score drawn uniformly inside its interval carries no
/// information about the other columns beyond the interval itself, so for a
/// Gaussian latent `L` cut at those intervals, `corr(score_i, score_j) ≈
/// ρ_ij · a_i · a_j` with `a = Var(E[L | interval])` (exact when one side is
/// continuous, first order in ρ otherwise). Sampling thresholds the latent at
/// the same intervals, so dividing by `a_i · a_j` makes the synthetic scores
/// correlate like the training scores. Without it a binary column keeps only
/// about 0.64 of its correlation with a continuous one, and two binaries about
/// 0.4, which visibly weakens "diagnosis rises with age" relations.
fn latent_correlation(scores: &DMatrix<f64>, latents: &[Latent]) -> DMatrix<f64> {
    DMatrix::from_fn(scores.nrows(), scores.ncols(), |i, j| {
        if i == j {
            return 1.0;
        }
        let scale = latents[i].attenuation * latents[j].attenuation;
        if scale <= 1e-9 {
            return 0.0;
        }
        (scores[(i, j)] / scale).clamp(-1.0, 1.0)
    })
}

/// Makes `corr` usable for sampling: returns the repaired matrix when one was
/// needed, and the lower Cholesky factor. Never fails: eigenvalue clipping
/// handles estimation noise, shrinkage toward the identity handles numerical
/// leftovers, and the identity (independent columns) is the last resort.
fn repair_and_factor(corr: &DMatrix<f64>) -> (Option<DMatrix<f64>>, DMatrix<f64>) {
    let d = corr.nrows();
    let identity = DMatrix::<f64>::identity(d, d);
    if d == 0 {
        return (None, identity);
    }
    if corr.iter().any(|x| !x.is_finite()) {
        return (Some(identity.clone()), identity);
    }
    let symmetric = (corr + corr.transpose()) * 0.5;
    let eigen = symmetric.clone().symmetric_eigen();
    let needs_repair = eigen.eigenvalues.iter().any(|&l| l < MIN_EIGENVALUE);
    let candidate = if needs_repair {
        let clipped = eigen.eigenvalues.map(|l| l.max(MIN_EIGENVALUE));
        let rebuilt =
            &eigen.eigenvectors * DMatrix::from_diagonal(&clipped) * eigen.eigenvectors.transpose();
        let scale = rebuilt.diagonal().map(|x| 1.0 / x.sqrt());
        DMatrix::from_fn(d, d, |i, j| {
            if i == j {
                1.0
            } else {
                rebuilt[(i, j)] * scale[i] * scale[j]
            }
        })
    } else {
        symmetric
    };
    for shrink in [0.0, 1e-3, 1e-2, 1e-1] {
        let blended = &candidate * (1.0 - shrink) + &identity * shrink;
        if let Some(cholesky) = blended.clone().cholesky() {
            let repaired = (needs_repair || shrink > 0.0).then_some(blended);
            return (repaired, cholesky.l());
        }
    }
    (Some(identity.clone()), identity)
}

impl ModelSpec {
    fn correlation_matrix(&self) -> DMatrix<f64> {
        let d = self.n_dims;
        DMatrix::from_fn(d, d, |i, j| self.correlation[i][j])
    }

    /// Structural checks for a loaded model; anything that could make sampling
    /// index out of bounds or emit NaN where a value belongs is rejected here.
    fn validate(&self) -> Result<(), CopulaError> {
        let bad = |msg: String| Err(CopulaError::InvalidModel(msg));
        if self.format_version != FORMAT_VERSION {
            return bad(format!(
                "format_version {} is not supported (expected {FORMAT_VERSION})",
                self.format_version
            ));
        }
        let d = self.n_dims;
        if self.correlation.len() != d
            || self
                .correlation
                .iter()
                .any(|r| r.len() != d || r.iter().any(|x| !x.is_finite()))
        {
            return bad(format!("correlation must be a finite {d} × {d} matrix"));
        }
        let mut used = vec![false; d];
        for column in &self.columns {
            let name = &column.name;
            for dim in column.marginal.dims() {
                if dim >= d || std::mem::replace(&mut used[dim], true) {
                    return bad(format!(
                        "column `{name}`: latent dimension {dim} is out of range or shared"
                    ));
                }
            }
            match &column.marginal {
                Marginal::Numeric(m) => {
                    if !(0.0..=1.0).contains(&m.null_rate) {
                        return bad(format!("column `{name}`: null_rate outside [0, 1]"));
                    }
                    if m.knots.iter().any(|x| !x.is_finite())
                        || m.knots.windows(2).any(|w| w[0] > w[1])
                    {
                        return bad(format!(
                            "column `{name}`: knots must be finite and non-decreasing"
                        ));
                    }
                    if m.knots.is_empty() && (m.null_rate != 1.0 || m.value_dim.is_some()) {
                        return bad(format!("column `{name}`: no knots but not all-null"));
                    }
                    if m.decimals.is_some_and(|x| x > MAX_DECIMALS_LIMIT) {
                        return bad(format!(
                            "column `{name}`: decimals above {MAX_DECIMALS_LIMIT}"
                        ));
                    }
                }
                Marginal::Categorical(m) => {
                    let probabilities_ok = |ps: &mut dyn Iterator<Item = f64>| {
                        let mut total = 0.0;
                        let mut count = 0;
                        for p in ps {
                            if !(p.is_finite() && p > 0.0) {
                                return false;
                            }
                            total += p;
                            count += 1;
                        }
                        count == 0 || (total - 1.0).abs() < 1e-6
                    };
                    if m.levels.is_empty()
                        || !probabilities_ok(&mut m.levels.iter().map(|l| l.probability))
                        || !probabilities_ok(&mut m.pooled.iter().map(|p| p.probability))
                    {
                        return bad(format!(
                            "column `{name}`: level probabilities must be positive and sum to 1"
                        ));
                    }
                    let n_labels = m.dictionary.len();
                    let has_pool = m.levels.iter().any(|l| l.value == LevelValue::Pooled);
                    if has_pool == m.pooled.is_empty()
                        || m.levels.iter().any(
                            |l| matches!(l.value, LevelValue::Code(c) if c as usize >= n_labels),
                        )
                        || m.pooled.iter().any(|p| p.code as usize >= n_labels)
                    {
                        return bad(format!(
                            "column `{name}`: level codes or pool do not match the dictionary"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Hex SHA-256 of a model's canonical JSON, the content hash every generator
/// reports (models hold only JSON-stable numbers, so it survives save → load).
pub(super) fn json_sha256<T: Serialize>(model: &T) -> String {
    let bytes = serde_json::to_vec(model).expect("a generator model always serializes to JSON");
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The nearest value that survives `serde_json` print → parse unchanged.
///
/// `serde_json` without its `float_roundtrip` feature may parse a printed f64
/// back one ULP off. Every float stored in a model is moved to a fixed point of
/// print → parse at fit time, so a saved and reloaded model has the same bits,
/// the same content hash and the same samples. (With `float_roundtrip` on,
/// every value is already a fixed point and this is the identity.)
pub(super) fn json_stable(x: f64) -> f64 {
    let mut x = x;
    for _ in 0..8 {
        let parsed = serde_json::to_string(&x)
            .ok()
            .and_then(|s| serde_json::from_str::<f64>(&s).ok());
        match parsed {
            Some(y) if y.to_bits() != x.to_bits() => x = y,
            _ => break,
        }
    }
    x
}

#[derive(Clone, Copy)]
enum Domain {
    Fit = 1,
    Sample = 2,
    Pool = 3,
    Conditional = 4,
}

/// An independent RNG per (seed, purpose, stream): the key is the three values
/// side by side, so distinct triples never share a stream.
fn stream_rng(seed: u64, domain: Domain, stream: u64) -> StdRng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&(domain as u64).to_le_bytes());
    key[16..24].copy_from_slice(&stream.to_le_bytes());
    StdRng::from_seed(key)
}

thread_local! {
    /// Worker threads for [`par_map`] calls made from this thread; `None` =
    /// one per core. Set by [`with_threads`] (tests of thread independence).
    static THREADS: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with [`par_map`] limited to `threads` workers on this thread.
pub fn with_threads<R>(threads: usize, f: impl FnOnce() -> R) -> R {
    let before = THREADS.with(|t| t.replace(Some(threads.max(1))));
    let out = f();
    THREADS.with(|t| t.set(before));
    out
}

/// Order-preserving parallel map over scoped threads. Work is per column, so a
/// shared counter balances uneven columns across the available cores.
pub(super) fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(usize, &T) -> R + Sync) -> Vec<R> {
    let threads = THREADS
        .with(|t| t.get())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .min(items.len());
    if threads <= 1 {
        return items.iter().enumerate().map(|(i, t)| f(i, t)).collect();
    }
    let next = AtomicUsize::new(0);
    let mut slots: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        done.push((i, f(i, item)));
                    }
                    done
                })
            })
            .collect();
        for worker in workers {
            match worker.join() {
                Ok(done) => done.into_iter().for_each(|(i, r)| slots[i] = Some(r)),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    slots
        .into_iter()
        .map(|r| r.expect("every index is claimed by exactly one worker"))
        .collect()
}

/// Φ(z), via the complementary error function for accuracy in both tails.
fn std_normal_cdf(z: f64) -> f64 {
    0.5 * statrs::function::erf::erfc(-z / std::f64::consts::SQRT_2)
}

/// Φ⁻¹(p) for p in (0, 1) by Wichura's AS 241 (PPND16), relative error about
/// 1e-16 and much cheaper than a generic inverse-erf; it runs once per cell in
/// fit. Coefficients are copied verbatim from the paper (Applied Statistics 37,
/// 1988, pp. 477–484).
#[allow(clippy::excessive_precision)]
fn std_normal_inv_cdf(p: f64) -> f64 {
    let p = p.clamp(1e-300, 1.0 - f64::EPSILON / 2.0);
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        return q
            * (((((((r * 2509.0809287301226727 + 33430.575583588128105) * r
                + 67265.770927008700853)
                * r
                + 45921.953931549871457)
                * r
                + 13731.693765509461125)
                * r
                + 1971.5909503065514427)
                * r
                + 133.14166789178437745)
                * r
                + 3.387132872796366608)
            / (((((((r * 5226.495278852545925 + 28729.085735721942674) * r
                + 39307.89580009271061)
                * r
                + 21213.794301586595867)
                * r
                + 5394.1960214247511077)
                * r
                + 687.1870074920579083)
                * r
                + 42.313330701600911252)
                * r
                + 1.0);
    }
    let r = if q < 0.0 { p } else { 1.0 - p };
    let r = (-r.ln()).sqrt();
    let value = if r <= 5.0 {
        let r = r - 1.6;
        (((((((r * 7.7454501427834140764e-4 + 0.0227238449892691845833) * r
            + 0.24178072517745061177)
            * r
            + 1.27045825245236838258)
            * r
            + 3.64784832476320460504)
            * r
            + 5.7694972214606914055)
            * r
            + 4.6303378461565452959)
            * r
            + 1.42343711074968357734)
            / (((((((r * 1.05075007164441684324e-9 + 5.475938084995344946e-4) * r
                + 0.0151986665636164571966)
                * r
                + 0.14810397642748007459)
                * r
                + 0.68976733498510000455)
                * r
                + 1.6763848301838038494)
                * r
                + 2.05319162663775882187)
                * r
                + 1.0)
    } else {
        let r = r - 5.0;
        (((((((r * 2.01033439929228813265e-7 + 2.71155556874348757815e-5) * r
            + 0.0012426609473880784386)
            * r
            + 0.026532189526576123093)
            * r
            + 0.29656057182850489123)
            * r
            + 1.7848265399172913358)
            * r
            + 5.4637849111641143699)
            * r
            + 6.6579046435011037772)
            / (((((((r * 2.04426310338993978564e-15 + 1.4215117583164458887e-7) * r
                + 1.8463183175100546818e-5)
                * r
                + 7.868691311456132591e-4)
                * r
                + 0.0148753612908506148525)
                * r
                + 0.13692988092273580531)
                * r
                + 0.59983220655588793769)
                * r
                + 1.0)
    };
    if q < 0.0 { -value } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, Normal};

    fn rng(seed: u64) -> StdRng {
        StdRng::seed_from_u64(seed)
    }

    fn numeric(t: &Table, name: &str) -> Vec<f64> {
        match &t.column(name).expect("column exists").values {
            ColumnValues::Numeric(v) => v.clone(),
            other => panic!("{name} is not numeric: {other:?}"),
        }
    }

    fn labels(t: &Table, name: &str) -> Vec<Option<String>> {
        let c = t.column(name).expect("column exists");
        (0..c.values.len())
            .map(|r| c.label(r).map(str::to_string))
            .collect()
    }

    fn mean_std(v: &[f64]) -> (f64, f64) {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var.sqrt())
    }

    fn pearson(a: &[f64], b: &[f64]) -> f64 {
        let (ma, sa) = mean_std(a);
        let (mb, sb) = mean_std(b);
        let cov = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - ma) * (y - mb))
            .sum::<f64>()
            / (a.len() as f64 - 1.0);
        cov / (sa * sb)
    }

    /// Two-sample Kolmogorov–Smirnov D: the largest gap between the ECDFs,
    /// evaluated after each distinct value so ties are handled.
    fn ks_d(a: &[f64], b: &[f64]) -> f64 {
        let mut a = a.to_vec();
        let mut b = b.to_vec();
        a.sort_by(f64::total_cmp);
        b.sort_by(f64::total_cmp);
        let (mut i, mut j, mut d) = (0, 0, 0.0f64);
        while i < a.len() && j < b.len() {
            let x = a[i].min(b[j]);
            while i < a.len() && a[i] <= x {
                i += 1;
            }
            while j < b.len() && b[j] <= x {
                j += 1;
            }
            d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
        }
        d
    }

    #[test]
    fn ks_helper_matches_hand_computed_values() {
        // ECDFs of {1,2,3} and {2,3,4} differ by 1/3 at x = 1 (and x = 3).
        assert!((ks_d(&[1.0, 2.0, 3.0], &[2.0, 3.0, 4.0]) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(ks_d(&[1.0, 2.0], &[5.0, 6.0]), 1.0);
        assert_eq!(ks_d(&[1.0, 2.0], &[2.0, 1.0]), 0.0);
    }

    fn share(v: &[Option<String>], label: Option<&str>) -> f64 {
        v.iter().filter(|x| x.as_deref() == label).count() as f64 / v.len() as f64
    }

    fn bits(t: &Table) -> Vec<(String, Vec<u64>)> {
        t.columns
            .iter()
            .map(|c| {
                let v = match &c.values {
                    ColumnValues::Numeric(v) => v.iter().map(|x| x.to_bits()).collect(),
                    ColumnValues::Categorical { codes, .. } => {
                        codes.iter().map(|&x| x as u64).collect()
                    }
                };
                (c.name.clone(), v)
            })
            .collect()
    }

    fn fit_default(t: &Table) -> CopulaModel {
        fit(t, &CopulaConfig::default(), 11).expect("fit succeeds")
    }

    /// A small mixed table: correlated lab values, a category, nulls.
    fn mixed(n: usize, seed: u64) -> Table {
        let mut r = rng(seed);
        let mut age = Vec::new();
        let mut lab = Vec::new();
        let mut ward = Vec::new();
        for _ in 0..n {
            let a: f64 = r.random_range(18..=90) as f64;
            let noise: f64 = r.sample(StandardNormal);
            age.push(a);
            lab.push(if r.random::<f64>() < 0.2 {
                f64::NAN
            } else {
                ((5.0 + 0.03 * a + noise) * 100.0).round() / 100.0
            });
            ward.push(Some(["icu", "med", "surg"][r.random_range(0..3)]));
        }
        Table::new(vec![
            Column::numeric("age", age),
            Column::numeric("lab", lab),
            Column::categorical("ward", &ward),
        ])
    }

    #[test]
    fn normal_marginal_is_reproduced() {
        let mut r = rng(1);
        let normal = Normal::new(50.0, 10.0).unwrap();
        let x: Vec<f64> = (0..20_000).map(|_| normal.sample(&mut r)).collect();
        let model = fit_default(&Table::new(vec![Column::numeric("x", x.clone())]));
        let s = numeric(&model.sample(20_000, 5), "x");
        let (mean, std) = mean_std(&s);
        assert!((mean - 50.0).abs() < 0.4, "mean {mean}");
        assert!((std - 10.0).abs() < 0.4, "std {std}");
        let d = ks_d(&x, &s);
        assert!(d < 0.05, "KS D {d}");
        // And against a sample from a shifted normal, the KS must notice.
        let shifted: Vec<f64> = x.iter().map(|v| v + 3.0).collect();
        assert!(ks_d(&shifted, &s) > 0.05);
    }

    #[test]
    fn bivariate_correlation_is_reproduced() {
        let mut r = rng(2);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..20_000 {
            let z1: f64 = r.sample(StandardNormal);
            let z2: f64 = r.sample(StandardNormal);
            a.push(10.0 + 2.0 * z1);
            b.push(-3.0 + 0.5 * (0.8 * z1 + 0.6 * z2));
        }
        let model = fit_default(&Table::new(vec![
            Column::numeric("a", a),
            Column::numeric("b", b),
        ]));
        let s = model.sample(20_000, 9);
        let rho = pearson(&numeric(&s, "a"), &numeric(&s, "b"));
        assert!((rho - 0.8).abs() < 0.05, "sampled rho {rho}");
    }

    #[test]
    fn categorical_dependence_on_numeric_keeps_sign_and_size() {
        let mut r = rng(3);
        let (mut age, mut diabetic) = (Vec::new(), Vec::new());
        for _ in 0..20_000 {
            let a = r.random_range(20..=80) as f64;
            let p = 1.0 / (1.0 + (-(a - 55.0) / 8.0).exp());
            age.push(a);
            diabetic.push(Some(if r.random::<f64>() < p { "yes" } else { "no" }));
        }
        let train = Table::new(vec![
            Column::numeric("age", age),
            Column::categorical("diabetic", &diabetic),
        ]);
        let gap = |t: &Table| {
            let age = numeric(t, "age");
            let d = labels(t, "diabetic");
            let rate = |old: bool| {
                let rows: Vec<usize> = (0..age.len())
                    .filter(|&i| (age[i] >= 60.0) == old)
                    .collect();
                rows.iter()
                    .filter(|&&i| d[i].as_deref() == Some("yes"))
                    .count() as f64
                    / rows.len() as f64
            };
            rate(true) - rate(false)
        };
        let real = gap(&train);
        let synthetic = gap(&fit_default(&train).sample(20_000, 4));
        assert!(
            real > 0.4,
            "test data should have a strong effect, got {real}"
        );
        assert!(synthetic > 0.0, "dependence sign lost: {synthetic}");
        assert!(
            (synthetic - real).abs() < 0.06,
            "real {real}, synthetic {synthetic}"
        );
    }

    #[test]
    fn two_categorical_columns_keep_most_of_their_association() {
        // P(med | dx): a strong, non-monotone association between two
        // categoricals; the gate checks 2-D contingency TV <= 0.15.
        let mut r = rng(13);
        let dx_names = ["dm", "htn", "copd", "none"];
        let med_names = ["metformin", "lisinopril", "inhaler", "nothing"];
        let (mut dx, mut med) = (Vec::new(), Vec::new());
        for _ in 0..20_000 {
            let d = [0, 0, 1, 1, 1, 2, 3, 3, 3, 3][r.random_range(0..10)];
            let m = if r.random::<f64>() < 0.7 {
                d
            } else {
                r.random_range(0..4)
            };
            dx.push(Some(dx_names[d]));
            med.push(Some(med_names[m]));
        }
        let train = Table::new(vec![
            Column::categorical("dx", &dx),
            Column::categorical("med", &med),
        ]);
        let joint = |t: &Table| {
            let (a, b) = (labels(t, "dx"), labels(t, "med"));
            let mut cells = std::collections::BTreeMap::new();
            for (x, y) in a.into_iter().zip(b) {
                *cells.entry((x, y)).or_insert(0.0f64) += 1.0 / 20_000.0;
            }
            cells
        };
        let (real, synthetic) = (joint(&train), joint(&fit_default(&train).sample(20_000, 2)));
        let keys: std::collections::BTreeSet<_> = real.keys().chain(synthetic.keys()).collect();
        let tv = 0.5
            * keys
                .iter()
                .map(|k| (real.get(*k).unwrap_or(&0.0) - synthetic.get(*k).unwrap_or(&0.0)).abs())
                .sum::<f64>();
        let independent_tv = {
            // What an independence model would score, to show the test can fail.
            let p = |col: usize, label: &Option<String>| {
                real.iter()
                    .filter(|(k, _)| {
                        if col == 0 {
                            &k.0 == label
                        } else {
                            &k.1 == label
                        }
                    })
                    .map(|(_, v)| v)
                    .sum::<f64>()
            };
            0.5 * real
                .iter()
                .map(|(k, v)| (v - p(0, &k.0) * p(1, &k.1)).abs())
                .sum::<f64>()
        };
        assert!(
            independent_tv > 0.3,
            "association too weak to test: {independent_tv}"
        );
        // A single Gaussian latent per column cannot express "70% on the
        // diagonal, the rest uniform": the copula keeps the direction and about
        // half of the association (TV ≈ 0.27 here, 0.35 without the attenuation
        // correction). Exact nominal interactions are the Bayesian network's job.
        assert!(
            tv < 0.3 && tv < 0.6 * independent_tv,
            "contingency TV {tv}, independence {independent_tv}"
        );
    }

    /// One patient aged 18 and one aged 99 among 2,000 aged 30..=80, and a
    /// count whose floor 0 a quarter of them share: rounded draws never land
    /// on the two one-patient ages (before the fix about one draw in 250
    /// did), while the shared floor keeps its mass.
    #[test]
    fn rounded_draws_never_land_on_a_rare_training_extreme() {
        let mut r = rng(9);
        let n = 2_000;
        let mut age: Vec<f64> = (0..n).map(|_| r.random_range(30..=80) as f64).collect();
        age[0] = 18.0;
        age[1] = 99.0;
        let visits: Vec<f64> = (0..n)
            .map(|i| {
                if i % 4 == 0 {
                    0.0
                } else {
                    r.random_range(1..=12) as f64
                }
            })
            .collect();
        let model = fit_default(&Table::new(vec![
            Column::numeric("age", age),
            Column::numeric("visits", visits),
        ]));
        let s = model.sample(50_000, 2);
        let age = numeric(&s, "age");
        assert!(!age.iter().any(|&x| x == 18.0 || x == 99.0));
        assert!(age.iter().all(|&x| (18.0..=99.0).contains(&x)));
        assert!(age.contains(&19.0) && age.contains(&98.0), "the tails stay");
        let zeros = numeric(&s, "visits").iter().filter(|&&x| x == 0.0).count();
        assert!((0.2..0.3).contains(&(zeros as f64 / 50_000.0)), "{zeros}");
    }

    #[test]
    fn integers_bounds_and_precision_are_kept() {
        let mut r = rng(4);
        let n = 5_000;
        let age: Vec<f64> = (0..n).map(|_| r.random_range(18..=90) as f64).collect();
        let bmi: Vec<f64> = (0..n)
            .map(|_| (r.random_range(15.0..45.0f64) * 10.0).round() / 10.0)
            .collect();
        let lab: Vec<f64> = (0..n)
            .map(|_| (r.random_range(0.5..3.0f64) * 100.0).round() / 100.0)
            .collect();
        let raw: Vec<f64> = (0..n).map(|_| r.random::<f64>()).collect();
        let model = fit_default(&Table::new(vec![
            Column::numeric("age", age),
            Column::numeric("bmi", bmi.clone()),
            Column::numeric("lab", lab),
            Column::numeric("raw", raw),
        ]));
        let s = model.sample(20_000, 1);
        let age = numeric(&s, "age");
        assert!(
            age.iter()
                .all(|x| x.fract() == 0.0 && (18.0..=90.0).contains(x))
        );
        assert!(
            age.contains(&18.0) && age.contains(&90.0),
            "bounds reachable"
        );
        let (lo, hi) = bmi
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
        let sb = numeric(&s, "bmi");
        assert!(
            sb.iter()
                .all(|&x| x >= lo && x <= hi && round_to(x, 1) == x)
        );
        assert!(
            sb.iter().any(|x| x.fract() != 0.0),
            "one decimal, not integers"
        );
        let sl = numeric(&s, "lab");
        assert!(sl.iter().all(|&x| round_to(x, 2) == x));
        assert!(
            sl.iter().any(|&x| round_to(x, 1) != x),
            "two decimals, not one"
        );
        // Unrounded input stays unrounded (more than max_decimals digits).
        let sr = numeric(&s, "raw");
        assert!(sr.iter().filter(|&&x| round_to(x, 4) != x).count() > 19_000);
        match &model.spec.columns[0].marginal {
            Marginal::Numeric(m) => assert_eq!(m.decimals, Some(0)),
            _ => unreachable!(),
        }
    }

    #[test]
    fn detect_decimals_handles_binary_fractions() {
        assert_eq!(
            detect_decimals(&[0.1, 0.2, 0.30000000000000004], 4),
            Some(1)
        );
        assert_eq!(detect_decimals(&[1.0, -2.0, 1e12], 4), Some(0));
        assert_eq!(detect_decimals(&[0.123456], 4), None);
        assert_eq!(detect_decimals(&[0.0125], 4), Some(4));
    }

    #[test]
    fn categorical_frequencies_are_kept_and_no_unseen_labels() {
        let mut r = rng(5);
        let probs = [0.4, 0.25, 0.15, 0.1, 0.05, 0.05];
        let names = ["a", "b", "c", "d", "e"];
        let mut values: Vec<Option<&str>> = (0..20_000)
            .map(|_| {
                let u: f64 = r.random();
                let mut acc = 0.0;
                for (k, p) in probs.iter().enumerate() {
                    acc += p;
                    if u < acc {
                        return names.get(k).copied();
                    }
                }
                None
            })
            .collect();
        values.push(Some("a"));
        let mut column = Column::categorical("dx", &values);
        // A dictionary entry no training row uses must never be sampled.
        if let ColumnValues::Categorical { dictionary, .. } = &mut column.values {
            dictionary.push("never".into());
        }
        let train = Table::new(vec![column]);
        let real = labels(&train, "dx");
        let s = fit_default(&train).sample(20_000, 3);
        let synthetic = labels(&s, "dx");
        for label in names.iter().map(|x| Some(*x)).chain([None]) {
            let (a, b) = (share(&real, label), share(&synthetic, label));
            assert!((a - b).abs() < 0.02, "{label:?}: real {a}, synthetic {b}");
        }
        match &s.columns[0].values {
            ColumnValues::Categorical { codes, dictionary } => {
                assert!(!dictionary.contains(&"never".to_string()));
                assert!(
                    codes
                        .iter()
                        .all(|&c| c == NULL_CODE || (c as usize) < dictionary.len())
                );
            }
            _ => panic!("type changed"),
        }
    }

    #[test]
    fn rare_categories_are_pooled_but_all_still_sampled_at_their_rate() {
        let mut r = rng(6);
        let values: Vec<Option<String>> = (0..20_000)
            .map(|_| Some(format!("k{}", (r.random::<f64>().powi(2) * 10.0) as usize)))
            .collect();
        let train = Table::new(vec![Column::categorical("code", &values)]);
        let config = CopulaConfig {
            max_categories: 3,
            ..CopulaConfig::default()
        };
        let model = fit(&train, &config, 1).unwrap();
        match &model.spec.columns[0].marginal {
            Marginal::Categorical(m) => {
                assert_eq!(m.levels.len(), 4, "3 own levels + pool");
                assert_eq!(m.pooled.len(), 7);
            }
            _ => unreachable!(),
        }
        let s = labels(&model.sample(20_000, 2), "code");
        for k in 0..10 {
            let label = format!("k{k}");
            let (a, b) = (share(&values, Some(&label)), share(&s, Some(&label)));
            assert!((a - b).abs() < 0.02, "{label}: real {a}, synthetic {b}");
        }
    }

    #[test]
    fn null_rates_and_missingness_dependence_are_kept() {
        let mut r = rng(7);
        let n = 20_000;
        let (mut setting, mut lab, mut smoker) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let outpatient = r.random::<f64>() < 0.5;
            setting.push(Some(if outpatient { "out" } else { "in" }));
            // Labs are mostly missing for outpatients: missingness is informative.
            let p_missing = if outpatient { 0.5 } else { 0.05 };
            lab.push(if r.random::<f64>() < p_missing {
                f64::NAN
            } else {
                r.sample::<f64, _>(StandardNormal)
            });
            smoker.push(if r.random::<f64>() < 0.1 {
                None
            } else {
                Some("no")
            });
        }
        let train = Table::new(vec![
            Column::categorical("setting", &setting),
            Column::numeric("lab", lab),
            Column::categorical("smoker", &smoker),
        ]);
        let s = fit_default(&train).sample(n, 8);
        let null_rate =
            |t: &Table| numeric(t, "lab").iter().filter(|x| x.is_nan()).count() as f64 / n as f64;
        assert!((null_rate(&train) - null_rate(&s)).abs() < 0.02);
        let (a, b) = (
            share(&labels(&train, "smoker"), None),
            share(&labels(&s, "smoker"), None),
        );
        assert!((a - b).abs() < 0.02, "categorical null share {a} vs {b}");
        let gap = |t: &Table| {
            let lab = numeric(t, "lab");
            let set = labels(t, "setting");
            let rate = |which: &str| {
                let rows: Vec<usize> = (0..n)
                    .filter(|&i| set[i].as_deref() == Some(which))
                    .collect();
                rows.iter().filter(|&&i| lab[i].is_nan()).count() as f64 / rows.len() as f64
            };
            rate("out") - rate("in")
        };
        let (real, synthetic) = (gap(&train), gap(&s));
        assert!(
            (real - synthetic).abs() < 0.08,
            "real {real}, synthetic {synthetic}"
        );
        assert!(
            numeric(&s, "lab")
                .iter()
                .all(|x| x.is_nan() || x.is_finite())
        );
    }

    #[test]
    fn sampling_is_deterministic_per_seed() {
        let model = fit_default(&mixed(2_000, 1));
        let a = model.sample(1_000, 42);
        assert_eq!(bits(&a), bits(&model.sample(1_000, 42)));
        assert_ne!(bits(&a), bits(&model.sample(1_000, 43)));
        // The fit seed matters too, and the same fit seed reproduces the model.
        let t = mixed(2_000, 1);
        let cfg = CopulaConfig::default();
        assert_eq!(
            fit(&t, &cfg, 5).unwrap().content_sha256(),
            fit(&t, &cfg, 5).unwrap().content_sha256()
        );
        assert_ne!(
            fit(&t, &cfg, 5).unwrap().content_sha256(),
            fit(&t, &cfg, 6).unwrap().content_sha256()
        );
    }

    #[test]
    fn content_hash_survives_round_trip_and_tracks_changes() {
        let model = fit_default(&mixed(3_000, 2));
        let hash = model.content_sha256();
        assert_eq!(hash.len(), 64);
        assert!(
            hash.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        let json = serde_json::to_string(&model).unwrap();
        let loaded: CopulaModel = serde_json::from_str(&json).unwrap();
        assert_eq!(loaded.content_sha256(), hash);
        assert_eq!(bits(&loaded.sample(500, 1)), bits(&model.sample(500, 1)));
        let other = fit_default(&mixed(3_000, 3));
        assert_ne!(other.content_sha256(), hash);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["format_version"], 1);
        assert_eq!(value["generator"], "gaussian_copula");
    }

    #[test]
    fn model_size_does_not_grow_with_training_rows() {
        let size = |n| {
            serde_json::to_vec(&fit_default(&mixed(n, 4)))
                .unwrap()
                .len()
        };
        let (small, large) = (size(5_000), size(50_000));
        assert!(
            large < small * 2,
            "model grew from {small} to {large} bytes"
        );
        let model = fit_default(&mixed(50_000, 4));
        match &model.spec.columns[1].marginal {
            Marginal::Numeric(m) => assert_eq!(m.knots.len(), 201),
            _ => unreachable!(),
        }
    }

    #[test]
    fn small_columns_get_fewer_knots_so_no_knot_traces_a_patient() {
        let knots = |n: usize, per: usize| {
            let t = Table::new(vec![Column::numeric(
                "x",
                (0..n).map(|i| (i * 7 % 101) as f64).collect(),
            )]);
            let config = CopulaConfig {
                min_rows_per_knot: per,
                ..CopulaConfig::default()
            };
            match &fit(&t, &config, 1).unwrap().spec.columns[0].marginal {
                Marginal::Numeric(m) => m.knots.len(),
                _ => unreachable!(),
            }
        };
        assert_eq!(knots(100, 10), 10);
        assert_eq!(knots(15, 10), 2);
        assert_eq!(knots(100, 1), 100);
        assert_eq!(knots(5_000, 10), 201);
        let bad = CopulaConfig {
            min_rows_per_knot: 0,
            quantile_knots: 1,
            ..CopulaConfig::default()
        };
        let problems = bad.validate();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().any(|p| p.starts_with("min_rows_per_knot")));
    }

    #[test]
    fn output_has_training_names_order_and_types() {
        let train = mixed(500, 5);
        let model = fit_default(&train);
        assert_eq!(model.columns(), vec!["age", "lab", "ward"]);
        let s = model.sample(77, 0);
        assert_eq!(s.n_rows(), 77);
        for (a, b) in train.columns.iter().zip(&s.columns) {
            assert_eq!(a.name, b.name);
            assert_eq!(
                std::mem::discriminant(&a.values),
                std::mem::discriminant(&b.values)
            );
        }
        assert_eq!(model.sample(0, 0).n_rows(), 0);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let cfg = CopulaConfig::default();
        assert_eq!(
            fit(&Table::default(), &cfg, 0),
            Err(CopulaError::Shape(ShapeError::NoColumns))
        );
        let empty = Table::new(vec![Column::numeric("x", vec![])]);
        assert_eq!(
            fit(&empty, &cfg, 0),
            Err(CopulaError::TooFewRows { rows: 0, min: 2 })
        );
        let one = Table::new(vec![Column::numeric("x", vec![1.0])]);
        assert_eq!(
            fit(&one, &cfg, 0),
            Err(CopulaError::TooFewRows { rows: 1, min: 2 })
        );
        let inf = Table::new(vec![Column::numeric("x", vec![1.0, f64::INFINITY])]);
        assert!(matches!(
            fit(&inf, &cfg, 0),
            Err(CopulaError::Shape(ShapeError::NonFiniteValue {
                row: 1,
                ..
            }))
        ));
        let ragged = Table::new(vec![
            Column::numeric("x", vec![1.0, 2.0]),
            Column::numeric("y", vec![1.0]),
        ]);
        assert!(matches!(
            fit(&ragged, &cfg, 0),
            Err(CopulaError::Shape(ShapeError::RaggedColumns { .. }))
        ));
        let dup = Table::new(vec![
            Column::numeric("x", vec![1.0, 2.0]),
            Column::numeric("x", vec![1.0, 3.0]),
        ]);
        assert!(matches!(
            fit(&dup, &cfg, 0),
            Err(CopulaError::Shape(ShapeError::DuplicateColumn { .. }))
        ));
        let bad_code = Table::new(vec![Column {
            name: "c".into(),
            values: ColumnValues::Categorical {
                codes: vec![0, 3],
                dictionary: vec!["a".into()],
            },
        }]);
        assert!(matches!(
            fit(&bad_code, &cfg, 0),
            Err(CopulaError::Shape(ShapeError::InvalidCategoryCode {
                code: 3,
                ..
            }))
        ));
        let bad_cfg = CopulaConfig {
            quantile_knots: 1,
            ..cfg.clone()
        };
        let ok = Table::new(vec![Column::numeric("x", vec![1.0, 2.0])]);
        assert!(matches!(
            fit(&ok, &bad_cfg, 0),
            Err(CopulaError::InvalidConfig {
                field: "quantile_knots",
                ..
            })
        ));
        let strict = CopulaConfig {
            min_rows: 100,
            ..cfg
        };
        assert_eq!(
            fit(&ok, &strict, 0),
            Err(CopulaError::TooFewRows { rows: 2, min: 100 })
        );
    }

    #[test]
    fn degenerate_columns_sample_without_panics_or_stray_nans() {
        let n = 50;
        let half_null: Vec<f64> = (0..n)
            .map(|i| if i % 2 == 0 { f64::NAN } else { i as f64 })
            .collect();
        let train = Table::new(vec![
            Column::numeric("constant", vec![7.25; n]),
            Column::numeric("all_null", vec![f64::NAN; n]),
            Column::categorical::<&str>("all_null_cat", &vec![None; n]),
            Column::categorical("one_cat", &vec![Some("x"); n]),
            Column::numeric("half_null", half_null),
            Column::numeric(
                "const_or_null",
                (0..n).map(|i| if i < 5 { f64::NAN } else { 3.0 }).collect(),
            ),
        ]);
        let model = fit_default(&train);
        let s = model.sample(1_000, 1);
        assert!(numeric(&s, "constant").iter().all(|&x| x == 7.25));
        assert!(numeric(&s, "all_null").iter().all(|x| x.is_nan()));
        assert!(labels(&s, "all_null_cat").iter().all(Option::is_none));
        assert!(
            labels(&s, "one_cat")
                .iter()
                .all(|x| x.as_deref() == Some("x"))
        );
        let h = numeric(&s, "half_null");
        let nulls = h.iter().filter(|x| x.is_nan()).count();
        assert!((350..650).contains(&nulls), "nulls {nulls}");
        assert!(h.iter().all(|x| x.is_nan() || (1.0..=49.0).contains(x)));
        let c = numeric(&s, "const_or_null");
        assert!(c.iter().all(|&x| x.is_nan() || x == 3.0));
        assert!(c.iter().any(|x| x.is_nan()) && c.contains(&3.0));

        // Two rows is the documented minimum and works.
        let two = Table::new(vec![
            Column::numeric("x", vec![1.0, 2.0]),
            Column::categorical("c", &[Some("a"), None]),
        ]);
        let s = fit_default(&two).sample(100, 0);
        assert!(numeric(&s, "x").iter().all(|x| (1.0..=2.0).contains(x)));
    }

    #[test]
    fn inverse_normal_cdf_matches_statrs() {
        use statrs::distribution::{ContinuousCDF, Normal as StatrsNormal};
        let reference = StatrsNormal::standard();
        for &p in &[
            1e-300,
            1e-20,
            1e-8,
            0.001,
            0.02425,
            0.1,
            0.3,
            0.5,
            0.7,
            0.975,
            0.999999,
            1.0 - 1e-12,
        ] {
            let ours = std_normal_inv_cdf(p);
            let theirs = reference.inverse_cdf(p);
            assert!(
                (ours - theirs).abs() < 1e-8 * theirs.abs().max(1.0),
                "p={p}: {ours} vs {theirs}"
            );
            if p > 1e-200 {
                let back = std_normal_cdf(ours);
                assert!(
                    (back - p).abs() < 1e-9 * p.min(1.0 - p).max(1e-300) + 1e-15,
                    "p={p}: Φ(Φ⁻¹) = {back}"
                );
            }
        }
        assert!(std_normal_inv_cdf(0.0).is_finite() && std_normal_inv_cdf(1.0).is_finite());
    }

    #[test]
    fn indefinite_correlation_is_repaired_to_unit_diagonal_pd() {
        // Pairwise ±0.9 with inconsistent signs: no valid correlation matrix.
        let bad = DMatrix::from_row_slice(3, 3, &[1.0, 0.9, -0.9, 0.9, 1.0, 0.9, -0.9, 0.9, 1.0]);
        assert!(bad.clone().cholesky().is_none());
        let (repaired, l) = repair_and_factor(&bad);
        let repaired = repaired.expect("repair reported");
        for i in 0..3 {
            assert!((repaired[(i, i)] - 1.0).abs() < 1e-12);
        }
        assert!((&l * l.transpose() - &repaired).abs().max() < 1e-9);
        // Signs of the strongest relations survive the repair.
        assert!(repaired[(0, 1)] > 0.0 && repaired[(1, 2)] > 0.0 && repaired[(0, 2)] < 0.0);
        let good = DMatrix::from_row_slice(2, 2, &[1.0, 0.5, 0.5, 1.0]);
        assert!(repair_and_factor(&good).0.is_none());
        let broken = DMatrix::from_row_slice(2, 2, &[1.0, f64::NAN, f64::NAN, 1.0]);
        assert_eq!(repair_and_factor(&broken).1, DMatrix::identity(2, 2));
    }

    #[test]
    fn duplicated_column_fits_despite_singular_correlation() {
        let mut r = rng(9);
        let x: Vec<f64> = (0..2_000).map(|_| r.random::<f64>()).collect();
        let t = Table::new(vec![
            Column::numeric("a", x.clone()),
            Column::numeric("b", x),
        ]);
        let s = fit_default(&t).sample(2_000, 1);
        assert!(pearson(&numeric(&s, "a"), &numeric(&s, "b")) > 0.99);
    }

    #[test]
    fn tampered_models_are_rejected_on_load() {
        let json = serde_json::to_value(fit_default(&mixed(300, 6))).unwrap();
        let mut v = json.clone();
        v["format_version"] = 2.into();
        let err = serde_json::from_value::<CopulaModel>(v)
            .unwrap_err()
            .to_string();
        assert!(err.contains("format_version 2"), "{err}");
        let mut v = json.clone();
        v["columns"][1]["marginal"]["knots"][0] = 1e9.into();
        assert!(serde_json::from_value::<CopulaModel>(v).is_err());
        let mut v = json.clone();
        v["columns"][2]["marginal"]["levels"][0]["value"] = serde_json::json!({"code": 99});
        assert!(serde_json::from_value::<CopulaModel>(v).is_err());
        let mut v = json;
        v["correlation"] = serde_json::json!([[1.0]]);
        assert!(serde_json::from_value::<CopulaModel>(v).is_err());
    }

    #[test]
    fn config_defaults_and_unknown_fields() {
        let c: CopulaConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, CopulaConfig::default());
        let c: CopulaConfig = serde_json::from_str(r#"{"max_categories": 10}"#).unwrap();
        assert_eq!(c.max_categories, 10);
        assert_eq!(c.quantile_knots, 201);
        assert!(serde_json::from_str::<CopulaConfig>(r#"{"max_categorie": 10}"#).is_err());
    }
}
