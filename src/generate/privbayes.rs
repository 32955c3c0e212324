//! Differentially private Bayesian network generator (PrivBayes).
//!
//! The copula keeps marginals and pairwise Gaussian dependence but gives no
//! formal privacy guarantee. This generator is the one to use when a topology
//! must publish under differential privacy: it follows PrivBayes (J. Zhang,
//! G. Cormode, C. M. Procopiuc, D. Srivastava, X. Xiao, "PrivBayes: Private
//! Data Release via Bayesian Networks", ACM TODS 42(4), 2017). A Bayesian
//! network of degree `k` is learned with the exponential mechanism, each
//! attribute's joint table with its parents is released with Laplace noise,
//! and synthetic rows are drawn by ancestral sampling from the noisy
//! conditionals. Because the model keeps k-way interactions among discretised
//! attributes, nominal associations the copula blurs (diagnosis ↔ drug) keep
//! their strength when the budget allows.
//!
//! # Domain
//! Differential privacy needs the output space fixed before the data is seen,
//! so every column's domain comes from [`PrivBayesConfig::domain`], never from
//! the data: a numeric column is clipped into `[min, max]` and cut into `bins`
//! equal-width bins (synthetic values are uniform inside the drawn bin, on
//! the grid of `decimals` when given, so rounding never changes the bin); a categorical column has its declared
//! `categories`, plus an OTHER bucket for any value outside the list. Every
//! column has a null bucket. A table column without a declared domain is an
//! error ([`PrivBayesError::DomainMismatch`]): inferring the domain from the
//! window would leak which values occur in it. Categories absent from the data
//! are still part of the model and can be sampled, since noise covers every
//! cell of the declared domain.
//!
//! # Privacy
//! * **Neighbouring datasets**: the privacy unit is the patient and the
//!   training table holds one row per patient, so neighbours differ by adding
//!   or removing one row (unbounded DP). The guarantee is pure ε-DP (δ = 0),
//!   under basic sequential composition of the parts below.
//! * **Budget split** (basic composition, adds up to ε exactly):
//!   `row_count_share` ρ of ε (default 0.01) releases a Laplace row count `ñ`
//!   (sensitivity 1), used only to size parent sets (θ-usefulness, below).
//!   Of the rest `ε' = (1 − ρ)·ε`, `structure_share` β (default 0.3) learns
//!   the network over `d − 1` exponential-mechanism steps of `β·ε'/(d − 1)`
//!   each (the first attribute is drawn uniformly, independently of the
//!   data), and `(1 − β)·ε'` releases `d` noisy count tables of
//!   `(1 − β)·ε'/d` each. With θ-usefulness off (`usefulness = 0`) ρ is 0
//!   and these are exactly `β·ε/(d − 1)` and `(1 − β)·ε/d`. With a single
//!   column there is no structure step and `ε'` goes to its table.
//!   [`PrivBayesModel::epsilon_spent`] is the sum of the parts.
//! * **Parent sets** (PrivBayes' θ-usefulness, adapted to count tables with
//!   sensitivity 1): a candidate parent set of at most `degree` placed
//!   attributes must give a joint table of at most
//!   `min(max_table_cells, ñ·ε_table/θ)` cells, so that the average count per
//!   cell is θ times the noise scale; an attribute with no fitting set is
//!   modelled by its noisy marginal. This is what keeps small budgets
//!   useful: at ε = 1 on 20k rows, 20-bin columns get one parent, binary
//!   ones two. The rule uses only the declared domains and the released
//!   `ñ`, so it is post-processing.
//! * **Structure score**: the mutual information `I(X; Π)` in bits of an
//!   attribute and a candidate parent set. Its sensitivity for add/remove-one
//!   is bounded by the general-case expression of the paper's Lemma 4.1,
//!   `S(n) = (2/n)·log2((n+1)/2) + ((n−1)/n)·log2((n+1)/(n−1))`, where `n` is
//!   the larger of the two datasets (the paper proves it for replace-one; see
//!   [`mi_sensitivity`] for the add/remove argument). Since `n` itself differs
//!   between neighbours and is not published, the mechanism scores candidates
//!   with `I/S(n)`, whose sensitivity is a data-independent constant
//!   `C = 1 + sup_m log2(min(K, m−1))·(1/S(m) − 1/S(m−1))` (`K` the largest
//!   column domain; `C` ≈ 1.3 for 20-bin columns, at most 1.45), and picks a
//!   candidate with probability `∝ exp(ε_step · I / (2 · C · S(n)))`.
//! * **Conditionals**: for each attribute, the full joint count table over
//!   its own and its parents' declared domains (every cell, seen or not). One
//!   row adds 1 to exactly one cell, so the L1 sensitivity of one table is 1
//!   under add/remove-one (2 under replace-one), and each cell gets
//!   Laplace(`1/ε_table`) = Laplace(`d / ((1 − β)·ε')`) noise. Negative cells are clamped to 0 and each
//!   parent configuration is normalised; a configuration whose cells are all 0
//!   gets the uniform distribution. Clamping and normalising are
//!   post-processing.
//! * The model does not store the training row count: under add/remove-one
//!   DP, `n` is itself private. (Publishing it elsewhere, e.g. in lineage,
//!   is outside this guarantee.)
//!
//! # Determinism and serialized format (`format_version` 1)
//! Fit and sample are pure functions of their inputs and seed, independent of
//! the thread count (each purpose and chunk has its own RNG stream). The
//! canonical form is `serde_json` of [`PrivBayesModel`]; its SHA-256 is the
//! content hash:
//! ```text
//! { "format_version": 1, "generator": "privbayes", "config": {PrivBayesConfig},
//!   "budget": {Budget}, "columns": ["name", ..]  (output order),
//!   "network": [ { "column": "name", "parents": ["name", ..],
//!                  "probabilities": [..] }, .. ]  (sampling order) }
//! ```
//! `probabilities` is parent-configuration-major: entry `c·K + x` is
//! `P(x | parents = c)`, with `c` the mixed-radix index of the parents' bucket
//! indices (first parent most significant) and `K` the column's domain size.
//! Bucket indices: numeric `0..bins` then null; categorical the declared
//! categories in order, then OTHER, then null.

use super::copula::{json_sha256, json_stable, par_map};
use std::collections::{BTreeMap, HashMap, HashSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::Exp1;
use serde::{Deserialize, Serialize};

use crate::generate::ledger::{Accounting, LedgerEntry};
use crate::table::{Column, ColumnValues, NULL_CODE, ShapeError, Table};

mod conditional;

/// The only `format_version` this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Name recorded in the model and in the `resynth.generator` lineage header.
pub const GENERATOR_NAME: &str = "privbayes";

/// Mechanism name booked in the privacy-budget ledger.
pub const MECHANISM: &str = "privbayes_exponential_laplace";

/// Largest domain (buckets, null and OTHER included) of one column: bucket
/// indices are stored as `u16`.
pub const MAX_COLUMN_DOMAIN: usize = u16::MAX as usize;

/// Largest number of numeric bins a column may declare.
const MAX_BINS: usize = 10_000;

/// Largest decimal precision a numeric domain may declare.
const MAX_DECIMALS: u32 = 10;

/// Rows per sampling chunk; each chunk has its own RNG stream, so samples do
/// not depend on how many threads share the chunks.
const SAMPLE_CHUNK: usize = 4096;

/// Options for [`fit`]. Lives in the topology's `[generate.privbayes]` table.
///
/// ```toml
/// epsilon = 1.0            # required: total ε of one fit
/// degree = 2               # max parents per attribute (k)
/// structure_share = 0.3    # β: share of ε for learning the network
/// max_table_cells = 1000000
/// usefulness = 4.0         # θ; 0 = off
/// row_count_share = 0.01   # ρ: share of ε for the noisy row count
/// [domain.age]
/// min = 18
/// max = 90
/// bins = 20
/// decimals = 0
/// [domain.sex]
/// categories = ["F", "M"]
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivBayesConfig {
    /// Total privacy budget ε of one fit (pure ε-DP, δ = 0, add/remove one
    /// patient). Required: there is no safe default. Must be finite and > 0.
    pub epsilon: f64,
    /// Maximum number of parents per attribute (PrivBayes' `k`). Higher
    /// degrees keep higher-order interactions but spread the same noise over
    /// exponentially larger tables. Default 2; at least 1, at most 8.
    #[serde(default = "default_degree")]
    pub degree: usize,
    /// β, the share of ε spent on learning the network structure; the rest
    /// goes to the noisy conditional tables. Default 0.3, as in the PrivBayes
    /// experiments; strictly between 0 and 1.
    #[serde(default = "default_structure_share")]
    pub structure_share: f64,
    /// Largest joint table (cells of an attribute and its parents) the
    /// network may use. Parent sets whose table would be larger are not
    /// candidates, which bounds memory and keeps the noise per cell from
    /// drowning the counts. A data-independent rule, so it costs no budget.
    /// Default 1,000,000; every column's own domain must fit.
    #[serde(default = "default_max_table_cells")]
    pub max_table_cells: usize,
    /// θ of PrivBayes' θ-usefulness: a parent set is a candidate only if its
    /// joint table has at most `ñ · ε_table / θ` cells, i.e. the average true
    /// count per cell is at least θ times the Laplace noise scale (`ñ` is a
    /// noisy row count, below). This is how PrivBayes picks the degree from
    /// the budget: at small ε or n, attributes get fewer or smaller parents
    /// instead of tables drowned in noise. An attribute with no fitting
    /// parent set is modelled by its noisy marginal. Default 4 (the paper's
    /// recommendation); 0 turns the rule off (only `degree` and
    /// `max_table_cells` limit parent sets) and spends nothing on `ñ`.
    #[serde(default = "default_usefulness")]
    pub usefulness: f64,
    /// Share ρ of ε spent on the noisy row count `ñ` that θ-usefulness needs
    /// (under add/remove-one DP the row count is private). Default 0.01;
    /// strictly between 0 and 1 when `usefulness` > 0, unused otherwise.
    #[serde(default = "default_row_count_share")]
    pub row_count_share: f64,
    /// The declared domain of every column of the training table, by name.
    pub domain: BTreeMap<String, ColumnDomain>,
}

fn default_degree() -> usize {
    2
}

fn default_structure_share() -> f64 {
    0.3
}

fn default_max_table_cells() -> usize {
    1_000_000
}

fn default_usefulness() -> f64 {
    4.0
}

fn default_row_count_share() -> f64 {
    0.01
}

fn default_other_label() -> String {
    "OTHER".to_string()
}

/// The declared, data-independent domain of one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ColumnDomain {
    /// `{ min, max, bins, decimals? }`
    Numeric(NumericDomain),
    /// `{ categories = [...], other_label? }`
    Categorical(CategoricalDomain),
}

/// A numeric column: values are clipped into `[min, max]` and cut into
/// `bins` equal-width bins; null (NaN) has its own bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumericDomain {
    /// Lower clipping bound, finite.
    pub min: f64,
    /// Upper clipping bound, finite and greater than `min`.
    pub max: f64,
    /// Number of equal-width bins, 1 to 10,000.
    pub bins: usize,
    /// Synthetic values (uniform within their bin) are rounded to this many
    /// decimals when given (0 = integers). At most 10. Default: unrounded.
    #[serde(default)]
    pub decimals: Option<u32>,
}

/// A categorical column: the declared categories, one OTHER bucket for any
/// value outside them, and a null bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoricalDomain {
    /// The categories, in the order of the synthetic column's dictionary.
    /// Non-empty, without duplicates.
    pub categories: Vec<String>,
    /// Label of the OTHER bucket in synthetic output, appended after the
    /// categories in the dictionary. Default `"OTHER"`; must not be one of
    /// the categories.
    #[serde(default = "default_other_label")]
    pub other_label: String,
}

impl ColumnDomain {
    /// Number of buckets, null (and OTHER) included.
    pub fn size(&self) -> usize {
        match self {
            ColumnDomain::Numeric(d) => d.bins.saturating_add(1),
            ColumnDomain::Categorical(d) => d.categories.len().saturating_add(2),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            ColumnDomain::Numeric(_) => "numeric",
            ColumnDomain::Categorical(_) => "categorical",
        }
    }

    fn problems(&self, name: &str, max_table_cells: usize) -> Vec<String> {
        let mut problems = Vec::new();
        let mut bad = |msg: String| problems.push(format!("domain.{name}: {msg}"));
        match self {
            ColumnDomain::Numeric(d) => {
                if !(d.min.is_finite() && d.max.is_finite() && d.min < d.max) {
                    bad(format!(
                        "min and max must be finite with min < max, got [{}, {}]",
                        d.min, d.max
                    ));
                }
                if !(1..=MAX_BINS).contains(&d.bins) {
                    bad(format!("bins must be 1 to {MAX_BINS}, got {}", d.bins));
                }
                if d.decimals.is_some_and(|x| x > MAX_DECIMALS) {
                    bad(format!("decimals must be at most {MAX_DECIMALS}"));
                }
            }
            ColumnDomain::Categorical(d) => {
                if d.categories.is_empty() {
                    bad("categories must not be empty".into());
                }
                let mut seen = HashSet::new();
                for c in &d.categories {
                    if !seen.insert(c.as_str()) {
                        bad(format!("category `{c}` is listed twice"));
                    }
                }
                if seen.contains(d.other_label.as_str()) {
                    bad(format!(
                        "other_label `{}` is also a declared category",
                        d.other_label
                    ));
                }
            }
        }
        let size = self.size();
        if size > MAX_COLUMN_DOMAIN {
            bad(format!(
                "{size} buckets exceed the limit of {MAX_COLUMN_DOMAIN}"
            ));
        } else if size > max_table_cells {
            bad(format!(
                "{size} buckets exceed max_table_cells = {max_table_cells}"
            ));
        }
        problems
    }
}

impl PrivBayesConfig {
    /// A config with the given ε and domains and default settings otherwise.
    pub fn new(epsilon: f64, domain: BTreeMap<String, ColumnDomain>) -> Self {
        PrivBayesConfig {
            epsilon,
            degree: default_degree(),
            structure_share: default_structure_share(),
            max_table_cells: default_max_table_cells(),
            usefulness: default_usefulness(),
            row_count_share: default_row_count_share(),
            domain,
        }
    }

    /// Every problem with the settings, each naming its field, for `resynth check`.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            problems.push(format!(
                "epsilon: must be finite and > 0, got {}",
                self.epsilon
            ));
        }
        if !(1..=8).contains(&self.degree) {
            problems.push(format!("degree: must be 1 to 8, got {}", self.degree));
        }
        if !(self.structure_share > 0.0 && self.structure_share < 1.0) {
            problems.push(format!(
                "structure_share: must be strictly between 0 and 1, got {}",
                self.structure_share
            ));
        }
        if !(self.usefulness.is_finite() && self.usefulness >= 0.0) {
            problems.push(format!(
                "usefulness: must be finite and >= 0, got {}",
                self.usefulness
            ));
        }
        if self.usefulness > 0.0 && !(self.row_count_share > 0.0 && self.row_count_share < 1.0) {
            problems.push(format!(
                "row_count_share: must be strictly between 0 and 1 when usefulness > 0, got {}",
                self.row_count_share
            ));
        }
        if self.max_table_cells < 2 {
            problems.push("max_table_cells: must be at least 2".into());
        }
        if self.domain.is_empty() {
            problems.push("domain: no column declared".into());
        }
        for (name, domain) in &self.domain {
            problems.extend(domain.problems(name, self.max_table_cells));
        }
        problems
    }
}

/// Why a model could not be fitted or loaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PrivBayesError {
    #[error("privbayes config: {}", .problems.join("; "))]
    InvalidConfig { problems: Vec<String> },
    #[error("cannot fit privbayes: {0}")]
    Shape(#[from] ShapeError),
    #[error("cannot fit privbayes on a table with no rows")]
    NoRows,
    #[error(
        "privbayes needs a declared domain for every column (differential privacy requires a \
         domain fixed before seeing the data): columns without one: {undeclared:?}; declared \
         domains with no such column: {unused:?}"
    )]
    DomainMismatch {
        undeclared: Vec<String>,
        unused: Vec<String>,
    },
    #[error("column `{column}` is {actual} but its declared domain is {declared}")]
    TypeMismatch {
        column: String,
        declared: &'static str,
        actual: &'static str,
    },
    #[error("privbayes model is inconsistent: {0}")]
    InvalidModel(String),
}

/// How the budget of one fit was spent. Stored in the model for audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Total ε spent: `structure_steps · epsilon_per_step + tables · epsilon_per_table`.
    pub epsilon: f64,
    /// Always 0: the mechanisms are pure ε-DP.
    pub delta: f64,
    /// The neighbouring relation the guarantee is stated for.
    pub neighbouring: String,
    /// ε of the noisy row count (`ρ·ε`, or 0 when θ-usefulness is off).
    pub row_count_epsilon: f64,
    /// The released noisy row count `ñ` (Laplace, sensitivity 1), if any.
    pub noisy_rows: Option<f64>,
    /// Largest joint table a non-empty parent set could use in this fit:
    /// `min(max_table_cells, ñ · epsilon_per_table / usefulness)`.
    pub table_cell_limit: usize,
    /// Exponential-mechanism steps (`d − 1`).
    pub structure_steps: usize,
    pub epsilon_per_step: f64,
    /// `C`, the sensitivity of the normalised score `I / S(n)`.
    pub score_sensitivity: f64,
    /// Noisy count tables (`d`).
    pub tables: usize,
    pub epsilon_per_table: f64,
    /// Laplace scale on counts: L1 sensitivity 1 / `epsilon_per_table`.
    pub laplace_scale: f64,
}

/// Neighbouring relation recorded in [`Budget::neighbouring`].
pub const NEIGHBOURING: &str = "add_remove_one_row";

impl Budget {
    /// Splits ε: `ρ·ε` for the row count (when θ-usefulness is on), then of
    /// the rest `ε' = ε − ρ·ε`, `β·ε'/(d − 1)` per structure step and
    /// `(1 − β)·ε'/d` per table (all of `ε'` to the table when `d = 1`).
    fn plan(config: &PrivBayesConfig, sizes: &[usize]) -> Budget {
        let d = sizes.len();
        let steps = d.saturating_sub(1);
        let rows = if config.usefulness > 0.0 {
            json_stable(config.row_count_share * config.epsilon)
        } else {
            0.0
        };
        let rest = config.epsilon - rows;
        let structure = if steps == 0 {
            0.0
        } else {
            config.structure_share * rest
        };
        let epsilon_per_step = json_stable(if steps == 0 {
            0.0
        } else {
            structure / steps as f64
        });
        let epsilon_per_table = json_stable((rest - structure) / d as f64);
        let largest = sizes.iter().copied().max().unwrap_or(1).max(2);
        let epsilon =
            json_stable(rows + steps as f64 * epsilon_per_step + d as f64 * epsilon_per_table);
        Budget {
            epsilon,
            delta: 0.0,
            neighbouring: NEIGHBOURING.to_string(),
            row_count_epsilon: rows,
            noisy_rows: None,
            table_cell_limit: config.max_table_cells,
            structure_steps: steps,
            epsilon_per_step,
            score_sensitivity: json_stable(score_sensitivity((largest as f64).log2())),
            tables: d,
            epsilon_per_table,
            laplace_scale: json_stable(1.0 / epsilon_per_table),
        }
    }

    /// Releases `ñ` and derives the θ-usefulness cell limit from it.
    fn release_rows(&mut self, config: &PrivBayesConfig, n: usize, rng: &mut StdRng) {
        if self.row_count_epsilon <= 0.0 {
            return;
        }
        let noisy = json_stable(n as f64 + laplace(1.0 / self.row_count_epsilon, rng));
        self.noisy_rows = Some(noisy);
        let limit = noisy.max(0.0) * self.epsilon_per_table / config.usefulness;
        self.table_cell_limit = config.max_table_cells.min(limit.floor() as usize);
    }
}

/// Sensitivity bound `S(n)` of the empirical mutual information (bits) of
/// two discrete attributes, for neighbouring datasets of `n` and `n − 1`
/// rows: `S(n) = (2/n)·log2((n+1)/2) + ((n−1)/n)·log2((n+1)/(n−1))`, the
/// general case of Zhang et al. (TODS 2017), Lemma 4.1. Defined for `n ≥ 2`
/// (with at most one row the information is 0 on both sides).
///
/// The paper proves it for replace-one; for add/remove-one, write
/// `g = n·I = φ(n) + Σ φ(c_xπ) − Σ φ(c_x) − Σ φ(c_π)` with `φ(c) = c·log2 c`
/// and `δ(c) = φ(c+1) − φ(c)` (increasing, concave, `δ(0) = 0`). Adding a
/// row at `(a, b)` to `D'` (`m = n − 1` rows) changes `g` by
/// `Δ = δ(m) + δ(c_ab) − δ(c_a) − δ(c_b)`, and `I(D) − I(D') = (Δ − I(D'))/n`.
/// Upper side: `Δ ≤ δ(m)`, so the change is at most `δ(n−1)/n`, the paper's
/// binary-case expression, which is below `S(n)`. Lower side: subadditivity
/// gives `δ(c_b) ≤ δ(c_ab) + δ(c_b − c_ab)`, the rows counted by `c_a` and
/// `c_b − c_ab` are disjoint (together at most `m`), and concavity gives
/// `Δ ≥ δ(m) − 2·δ(m/2)`. Expanding both sides shows `n·S(n) = 2·δ(m/2)`,
/// so the change is at least `−S(n) + (δ(m) − I(D'))/n ≥ −S(n)`, because
/// `I(D') ≤ log2 m < δ(m)`. (Upper side again: `δ(m) ≤ 2·δ(m/2)` by
/// subadditivity, so `δ(m)/n ≤ S(n)`.) Checked on random data in the tests.
pub fn mi_sensitivity(n: usize) -> f64 {
    if n < 2 {
        return 0.0;
    }
    let n = n as f64;
    (2.0 / n) * ((n + 1.0) / 2.0).log2() + ((n - 1.0) / n) * ((n + 1.0) / (n - 1.0)).log2()
}

/// Sensitivity `C` of the normalised score `s(D) = I(D) / S(n_D)` for
/// add/remove-one, when every mutual information is at most `max_bits`.
///
/// For `D` of `m` rows and `D' = D` minus a row,
/// `s(D) − s(D') = (I(D) − I(D'))/S(m) + I(D')·(1/S(m) − 1/S(m−1))`: the
/// first term is within ±1 by [`mi_sensitivity`], the second is in
/// `[0, min(max_bits, log2(m−1))·(1/S(m) − 1/S(m−1))]` (an entropy of `m − 1`
/// rows is at most `log2(m − 1)`). That bound rises while `log2(m−1) <
/// max_bits` and falls after (`1/S` grows like `m / (2·log2 m)`, with a
/// decreasing slope), so scanning `m` up to `2^17 > 2^16 + 1` covers the
/// supremum for every domain this module accepts.
pub fn score_sensitivity(max_bits: f64) -> f64 {
    let mut sup = 0.0f64;
    let mut previous = 1.0 / mi_sensitivity(2);
    for m in 3..=(1usize << 17) {
        let inverse = 1.0 / mi_sensitivity(m);
        let bits = max_bits.min(((m - 1) as f64).log2());
        sup = sup.max(bits * (inverse - previous));
        previous = inverse;
    }
    1.0 + sup
}

/// A fitted PrivBayes model. Serializes to the documented format; loading
/// checks it so that [`PrivBayesModel::sample`] cannot fail.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "ModelSpec")]
pub struct PrivBayesModel {
    spec: ModelSpec,
    /// Derived from `spec` for sampling, never serialized.
    plan: Plan,
}

impl Serialize for PrivBayesModel {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.spec.serialize(serializer)
    }
}

impl TryFrom<ModelSpec> for PrivBayesModel {
    type Error = PrivBayesError;

    fn try_from(spec: ModelSpec) -> Result<Self, PrivBayesError> {
        let plan = spec.validate()?;
        Ok(PrivBayesModel { spec, plan })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelSpec {
    format_version: u32,
    generator: String,
    config: PrivBayesConfig,
    budget: Budget,
    /// Output column order (the training table's).
    columns: Vec<String>,
    /// Attributes in sampling order; parents always come earlier.
    network: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Node {
    column: String,
    parents: Vec<String>,
    probabilities: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq)]
struct Plan {
    domains: Vec<ColumnDomain>,
    sizes: Vec<usize>,
    nodes: Vec<NodePlan>,
}

impl NodePlan {
    /// The node's cumulative distribution given the parents' buckets in `row`.
    fn cdf_given(&self, row: &[u16], sizes: &[usize]) -> &[f64] {
        let mut config = 0usize;
        for &p in &self.parents {
            config = config * sizes[p] + row[p] as usize;
        }
        let k = sizes[self.column];
        &self.cdf[config * k..(config + 1) * k]
    }
}

#[derive(Debug, Clone, PartialEq)]
struct NodePlan {
    /// Output column index.
    column: usize,
    /// Output column indices of the parents.
    parents: Vec<usize>,
    /// Per parent configuration, the cumulative distribution over buckets;
    /// the last entry of each row is exactly 1.
    cdf: Vec<f64>,
}

/// Fits PrivBayes on `train` (the window's training split, one row per
/// patient), spending exactly `config.epsilon` (see the module docs).
///
/// `seed` drives the structure choice, the noise and nothing else: the same
/// table, config and seed give the same model byte for byte. For a DP release
/// the seed must not be known to an adversary.
///
/// ```
/// use std::collections::BTreeMap;
/// use resynth::generate::privbayes::{fit, ColumnDomain, CategoricalDomain, PrivBayesConfig};
/// use resynth::table::{Column, Table};
/// let t = Table::new(vec![Column::categorical("sex", &[Some("F"), Some("M"), Some("F")])]);
/// let domain = BTreeMap::from([(
///     "sex".to_string(),
///     ColumnDomain::Categorical(CategoricalDomain {
///         categories: vec!["F".into(), "M".into()],
///         other_label: "OTHER".into(),
///     }),
/// )]);
/// let model = fit(&t, &PrivBayesConfig::new(1.0, domain), 7).unwrap();
/// assert_eq!(model.epsilon_spent(), (1.0, 0.0));
/// assert_eq!(model.sample(10, 1).n_rows(), 10);
/// ```
pub fn fit(
    train: &Table,
    config: &PrivBayesConfig,
    seed: u64,
) -> Result<PrivBayesModel, PrivBayesError> {
    let problems = config.validate();
    if !problems.is_empty() {
        return Err(PrivBayesError::InvalidConfig { problems });
    }
    // The model stores its config; fit with exactly the values a reload sees.
    let config = &json_stable_config(config);
    let n = validate_table(train, config)?;
    let domains: Vec<&ColumnDomain> = train
        .columns
        .iter()
        .map(|c| &config.domain[&c.name])
        .collect();
    let codes = par_map(&train.columns, |i, column| encode(column, domains[i]));
    let sizes: Vec<usize> = domains.iter().map(|d| d.size()).collect();
    let mut budget = Budget::plan(config, &sizes);
    budget.release_rows(config, n, &mut stream_rng(seed, Stream::Rows, 0));

    let structure = learn_structure(&codes, &sizes, n, config, &budget, seed);
    let tables = par_map(&structure, |i, (child, parents)| {
        let mut rng = stream_rng(seed, Stream::Noise, i as u64);
        noisy_conditional(
            &codes,
            &sizes,
            *child,
            parents,
            budget.laplace_scale,
            &mut rng,
        )
    });
    let names: Vec<String> = train.columns.iter().map(|c| c.name.clone()).collect();
    let network = structure
        .iter()
        .zip(tables)
        .map(|((child, parents), probabilities)| Node {
            column: names[*child].clone(),
            parents: parents.iter().map(|&p| names[p].clone()).collect(),
            probabilities,
        })
        .collect();
    let spec = ModelSpec {
        format_version: FORMAT_VERSION,
        generator: GENERATOR_NAME.to_string(),
        config: config.clone(),
        budget,
        columns: names,
        network,
    };
    // Same path as loading, so a fitted and a reloaded model sample alike.
    PrivBayesModel::try_from(spec)
}

impl PrivBayesModel {
    /// Draws `n` synthetic rows with the training table's column names and
    /// order. Numeric columns are numeric (NaN for null); categorical columns
    /// have the declared categories followed by the OTHER label as their
    /// dictionary. Same model and seed give an identical table.
    pub fn sample(&self, n: usize, seed: u64) -> Table {
        let plan = &self.plan;
        let d = plan.sizes.len();
        let chunks: Vec<(usize, usize)> = (0..n)
            .step_by(SAMPLE_CHUNK)
            .map(|start| (start, (start + SAMPLE_CHUNK).min(n)))
            .collect();
        let parts = par_map(&chunks, |chunk, &(start, end)| {
            let mut rng = stream_rng(seed, Stream::Sample, chunk as u64);
            let len = end - start;
            // Row-major: ancestral sampling fills one row at a time.
            let mut codes = vec![0u16; len * d];
            for row in codes.chunks_mut(d.max(1)) {
                for node in &plan.nodes {
                    let u: f64 = rng.random();
                    row[node.column] = locate(node.cdf_given(row, &plan.sizes), u) as u16;
                }
            }
            (0..d)
                .map(|j| {
                    let column: Vec<u16> = codes.iter().skip(j).step_by(d).copied().collect();
                    decode(&column, &plan.domains[j], &mut rng)
                })
                .collect::<Vec<ColumnValues>>()
        });
        let columns = self
            .spec
            .columns
            .iter()
            .enumerate()
            .map(|(j, name)| {
                let values = match &plan.domains[j] {
                    ColumnDomain::Numeric(_) => ColumnValues::Numeric(
                        parts
                            .iter()
                            .flat_map(|p| match &p[j] {
                                ColumnValues::Numeric(v) => v.clone(),
                                ColumnValues::Categorical { .. } => Vec::new(),
                            })
                            .collect(),
                    ),
                    ColumnDomain::Categorical(c) => ColumnValues::Categorical {
                        codes: parts
                            .iter()
                            .flat_map(|p| match &p[j] {
                                ColumnValues::Categorical { codes, .. } => codes.clone(),
                                ColumnValues::Numeric(_) => Vec::new(),
                            })
                            .collect(),
                        dictionary: output_dictionary(c),
                    },
                };
                Column {
                    name: name.clone(),
                    values,
                }
            })
            .collect();
        Table::new(columns)
    }

    /// Hex SHA-256 of the canonical serialization; identifies the model in
    /// lineage headers, the registry and the budget ledger.
    pub fn content_sha256(&self) -> String {
        json_sha256(self)
    }

    /// `(ε, δ)` spent by this fit; δ is always 0. Book it in the ledger.
    pub fn epsilon_spent(&self) -> (f64, f64) {
        (self.spec.budget.epsilon, self.spec.budget.delta)
    }

    /// The budget breakdown (steps, tables, noise scale, sensitivities).
    pub fn budget(&self) -> &Budget {
        &self.spec.budget
    }

    /// The config the model was fitted with, domains included.
    pub fn config(&self) -> &PrivBayesConfig {
        &self.spec.config
    }

    /// Column names in output order.
    pub fn columns(&self) -> Vec<String> {
        self.spec.columns.clone()
    }

    /// The learned network in sampling order: `(column, parents)`.
    pub fn network(&self) -> Vec<(String, Vec<String>)> {
        self.spec
            .network
            .iter()
            .map(|n| (n.column.clone(), n.parents.clone()))
            .collect()
    }

    /// The ledger entry that books this fit, for [`crate::generate::ledger::Ledger::try_book`].
    pub fn ledger_entry(&self, topology: &str, model_version: u64, at_ms: i64) -> LedgerEntry {
        let (epsilon, delta) = self.epsilon_spent();
        LedgerEntry {
            at_ms,
            topology: topology.to_string(),
            model_version,
            model_sha256: self.content_sha256(),
            mechanism: MECHANISM.to_string(),
            epsilon,
            delta,
            accounting: Accounting::BasicComposition,
        }
    }
}

/// Checks the table's shape against the declared domains; returns the row count.
fn validate_table(train: &Table, config: &PrivBayesConfig) -> Result<usize, PrivBayesError> {
    let n = train.check_shape()?;
    let names: HashSet<&str> = train.columns.iter().map(|c| c.name.as_str()).collect();
    let undeclared: Vec<String> = train
        .columns
        .iter()
        .filter(|c| !config.domain.contains_key(&c.name))
        .map(|c| c.name.clone())
        .collect();
    let unused: Vec<String> = config
        .domain
        .keys()
        .filter(|name| !names.contains(name.as_str()))
        .cloned()
        .collect();
    if !undeclared.is_empty() || !unused.is_empty() {
        return Err(PrivBayesError::DomainMismatch { undeclared, unused });
    }
    for column in &train.columns {
        let domain = &config.domain[&column.name];
        let actual = match &column.values {
            ColumnValues::Numeric(_) => "numeric",
            ColumnValues::Categorical { .. } => "categorical",
        };
        if actual != domain.kind() {
            return Err(PrivBayesError::TypeMismatch {
                column: column.name.clone(),
                declared: domain.kind(),
                actual,
            });
        }
    }
    // Refusing an empty table discloses only that the window had no rows,
    // which the engine knows without the data.
    if n == 0 {
        return Err(PrivBayesError::NoRows);
    }
    Ok(n)
}

/// Maps a column onto its declared buckets (see the module docs for the order).
fn encode(column: &Column, domain: &ColumnDomain) -> Vec<u16> {
    match (&column.values, domain) {
        (ColumnValues::Numeric(values), ColumnDomain::Numeric(d)) => {
            values.iter().map(|&x| numeric_bucket(x, d)).collect()
        }
        (ColumnValues::Categorical { codes, dictionary }, ColumnDomain::Categorical(d)) => {
            let index: HashMap<&str, usize> = d
                .categories
                .iter()
                .enumerate()
                .map(|(i, c)| (c.as_str(), i))
                .collect();
            let other = d.categories.len();
            let recode: Vec<u16> = dictionary
                .iter()
                .map(|label| *index.get(label.as_str()).unwrap_or(&other) as u16)
                .collect();
            let null = (other + 1) as u16;
            codes
                .iter()
                .map(|&c| {
                    if c == NULL_CODE {
                        null
                    } else {
                        recode[c as usize]
                    }
                })
                .collect()
        }
        _ => unreachable!("types are checked by validate_table"),
    }
}

fn numeric_bucket(x: f64, d: &NumericDomain) -> u16 {
    if x.is_nan() {
        return d.bins as u16;
    }
    let x = x.clamp(d.min, d.max);
    let position = (x - d.min) / (d.max - d.min) * d.bins as f64;
    (position.floor() as usize).min(d.bins - 1) as u16
}

/// Turns sampled buckets back into values.
fn decode(codes: &[u16], domain: &ColumnDomain, rng: &mut StdRng) -> ColumnValues {
    match domain {
        ColumnDomain::Numeric(d) => {
            let width = (d.max - d.min) / d.bins as f64;
            ColumnValues::Numeric(
                codes
                    .iter()
                    .map(|&b| {
                        let b = b as usize;
                        if b >= d.bins {
                            return f64::NAN;
                        }
                        let low = d.min + b as f64 * width;
                        let x = match d.decimals {
                            Some(p) => value_on_grid(low, low + width, p, rng),
                            None => low + rng.random::<f64>() * width,
                        };
                        x.clamp(d.min, d.max)
                    })
                    .collect(),
            )
        }
        ColumnDomain::Categorical(c) => {
            let null = c.categories.len() + 1;
            ColumnValues::Categorical {
                codes: codes
                    .iter()
                    .map(|&b| {
                        if b as usize >= null {
                            NULL_CODE
                        } else {
                            b as u32
                        }
                    })
                    .collect(),
                dictionary: Vec::new(),
            }
        }
    }
}

fn output_dictionary(domain: &CategoricalDomain) -> Vec<String> {
    let mut dictionary = domain.categories.clone();
    dictionary.push(domain.other_label.clone());
    dictionary
}

/// A value uniform among the multiples of `10^-decimals` in `[low, high)`,
/// so that rounding never moves a value into a neighbouring bin (which would
/// shift mass between bins); the rounded uniform value when the bin is
/// narrower than the grid.
fn value_on_grid(low: f64, high: f64, decimals: u32, rng: &mut StdRng) -> f64 {
    let scale = 10f64.powi(decimals as i32);
    let first = (low * scale - 1e-9).ceil();
    let last = (high * scale - 1e-9).ceil() - 1.0;
    if first <= last && last - first < u32::MAX as f64 {
        let j = first + rng.random_range(0..=(last - first) as u32) as f64;
        round_to(j / scale, decimals)
    } else {
        round_to(low + rng.random::<f64>() * (high - low), decimals)
    }
}

fn round_to(x: f64, decimals: u32) -> f64 {
    if decimals == 0 {
        return x.round();
    }
    let scale = 10f64.powi(decimals as i32);
    (x * scale).round() / scale
}

/// Greedy network construction (PrivBayes Algorithm 4 with the exponential
/// mechanism on mutual information). Returns `(child, parents)` in order.
fn learn_structure(
    codes: &[Vec<u16>],
    sizes: &[usize],
    n: usize,
    config: &PrivBayesConfig,
    budget: &Budget,
    seed: u64,
) -> Vec<(usize, Vec<usize>)> {
    let d = sizes.len();
    let mut rng = stream_rng(seed, Stream::Structure, 0);
    let first = rng.random_range(0..d);
    let mut network = vec![(first, Vec::new())];
    let mut placed = vec![first];
    let phi = PhiTable::new(n);
    // Mutual information of each member of an attribute set (sorted) with
    // the rest of the set; computed once, reused by later steps.
    let mut cache: HashMap<Vec<usize>, Vec<f64>> = HashMap::new();
    let lambda = if n >= 2 {
        budget.epsilon_per_step / (2.0 * budget.score_sensitivity * mi_sensitivity(n))
    } else {
        0.0 // at most one row: every score is 0, the choice is uniform
    };
    while placed.len() < d {
        placed.sort_unstable();
        let candidates = candidates(sizes, &placed, config.degree, budget.table_cell_limit);
        let mut missing: Vec<Vec<usize>> = candidates
            .iter()
            .filter(|(_, parents)| !parents.is_empty())
            .map(|(child, parents)| attribute_set(*child, parents))
            .filter(|set| !cache.contains_key(set))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        let computed = par_map(&missing, |_, set| {
            mutual_informations(codes, sizes, set, &phi)
        });
        cache.extend(missing.into_iter().zip(computed));
        let scores: Vec<f64> = candidates
            .iter()
            .map(|(child, parents)| {
                if parents.is_empty() {
                    return 0.0;
                }
                let set = attribute_set(*child, parents);
                let position = set.iter().position(|a| a == child).unwrap_or(0);
                cache[&set][position]
            })
            .collect();
        let pick = exponential_mechanism(&scores, lambda, &mut rng);
        let (child, parents) = candidates[pick].clone();
        placed.push(child);
        network.push((child, parents));
    }
    network
}

fn attribute_set(child: usize, parents: &[usize]) -> Vec<usize> {
    let mut set = parents.to_vec();
    set.push(child);
    set.sort_unstable();
    set
}

/// Candidate (attribute, parent set) pairs of one step: for each unplaced
/// attribute, every non-empty set of at most `degree` placed attributes whose
/// joint table with it has at most `max_cells` cells; when none fits, the
/// empty parent set. Depends only on the domains and on released values
/// (`ñ`), never directly on the data.
fn candidates(
    sizes: &[usize],
    placed: &[usize],
    degree: usize,
    max_cells: usize,
) -> Vec<(usize, Vec<usize>)> {
    let mut out = Vec::new();
    for child in 0..sizes.len() {
        if placed.contains(&child) {
            continue;
        }
        let before = out.len();
        for size in 1..=degree.min(placed.len()) {
            for_each_combination(placed, size, &mut |parents| {
                let cells = parents
                    .iter()
                    .try_fold(sizes[child], |acc, &p| acc.checked_mul(sizes[p]));
                if cells.is_some_and(|c| c <= max_cells) {
                    out.push((child, parents.to_vec()));
                }
            });
        }
        if out.len() == before {
            out.push((child, Vec::new()));
        }
    }
    out
}

/// Calls `f` on every `size`-subset of `items`, in lexicographic order.
fn for_each_combination(items: &[usize], size: usize, f: &mut dyn FnMut(&[usize])) {
    fn go(
        items: &[usize],
        size: usize,
        start: usize,
        current: &mut Vec<usize>,
        f: &mut dyn FnMut(&[usize]),
    ) {
        if current.len() == size {
            f(current);
            return;
        }
        let needed = size - current.len();
        for i in start..=items.len().saturating_sub(needed) {
            if i >= items.len() {
                break;
            }
            current.push(items[i]);
            go(items, size, i + 1, current, f);
            current.pop();
        }
    }
    go(items, size, 0, &mut Vec::with_capacity(size), f);
}

/// Samples an index with probability `∝ exp(lambda · score)`.
fn exponential_mechanism(scores: &[f64], lambda: f64, rng: &mut StdRng) -> usize {
    let top = scores
        .iter()
        .map(|&s| lambda * s)
        .fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = scores.iter().map(|&s| (lambda * s - top).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i;
        }
        u -= w;
    }
    weights.len() - 1
}

/// `c · log2 c`, tabulated for the counts of one fit.
struct PhiTable(Vec<f64>);

impl PhiTable {
    fn new(n: usize) -> Self {
        let len = n.min(1 << 22) + 1;
        PhiTable((0..len).map(|c| xlog2x(c as f64)).collect())
    }

    fn get(&self, c: u32) -> f64 {
        self.0
            .get(c as usize)
            .copied()
            .unwrap_or_else(|| xlog2x(c as f64))
    }
}

fn xlog2x(c: f64) -> f64 {
    if c > 0.0 { c * c.log2() } else { 0.0 }
}

/// Joint counts of the given columns, first column most significant.
fn joint_counts(columns: &[&[u16]], dims: &[usize]) -> Vec<u32> {
    let cells: usize = dims.iter().product();
    let mut counts = vec![0u32; cells];
    match columns {
        [] => {}
        [a] => a.iter().for_each(|&x| counts[x as usize] += 1),
        [a, b] => {
            let kb = dims[1];
            for (&x, &y) in a.iter().zip(b.iter()) {
                counts[x as usize * kb + y as usize] += 1;
            }
        }
        [a, b, c] => {
            let (kb, kc) = (dims[1], dims[2]);
            for ((&x, &y), &z) in a.iter().zip(b.iter()).zip(c.iter()) {
                counts[(x as usize * kb + y as usize) * kc + z as usize] += 1;
            }
        }
        _ => {
            let mut index = vec![0usize; columns[0].len()];
            for (column, &k) in columns.iter().zip(dims) {
                for (i, &x) in index.iter_mut().zip(column.iter()) {
                    *i = *i * k + x as usize;
                }
            }
            index.iter().for_each(|&i| counts[i] += 1);
        }
    }
    counts
}

/// Empirical mutual information (bits) of each member of `set` with the
/// other members jointly, from one joint count table.
fn mutual_informations(
    codes: &[Vec<u16>],
    sizes: &[usize],
    set: &[usize],
    phi: &PhiTable,
) -> Vec<f64> {
    let columns: Vec<&[u16]> = set.iter().map(|&j| codes[j].as_slice()).collect();
    let dims: Vec<usize> = set.iter().map(|&j| sizes[j]).collect();
    mutual_informations_of_counts(&joint_counts(&columns, &dims), &dims, phi)
}

fn mutual_informations_of_counts(counts: &[u32], dims: &[usize], phi: &PhiTable) -> Vec<f64> {
    let n: u64 = counts.iter().map(|&c| c as u64).sum();
    if n < 2 {
        return vec![0.0; dims.len()];
    }
    let nonzero: Vec<(usize, u32)> = counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(i, &c)| (i, c))
        .collect();
    let joint: f64 = nonzero.iter().map(|&(_, c)| phi.get(c)).sum();
    let total = xlog2x(n as f64);
    let mut stride = 1usize;
    let mut strides = vec![0usize; dims.len()];
    for p in (0..dims.len()).rev() {
        strides[p] = stride;
        stride *= dims[p];
    }
    (0..dims.len())
        .map(|p| {
            let (k, s) = (dims[p], strides[p]);
            let mut child = vec![0u32; k];
            let mut rest = vec![0u32; counts.len() / k];
            for &(i, c) in &nonzero {
                child[(i / s) % k] += c;
                rest[(i / (s * k)) * s + i % s] += c;
            }
            let sum = |v: &[u32]| {
                v.iter()
                    .filter(|&&c| c > 0)
                    .map(|&c| phi.get(c))
                    .sum::<f64>()
            };
            let g = total + joint - sum(&child) - sum(&rest);
            (g / n as f64).max(0.0)
        })
        .collect()
}

/// The noisy conditional `P(child | parents)` over the full declared domain:
/// Laplace noise on every cell of the joint count table, negatives clamped,
/// each parent configuration normalised (uniform when all its cells are 0).
fn noisy_conditional(
    codes: &[Vec<u16>],
    sizes: &[usize],
    child: usize,
    parents: &[usize],
    scale: f64,
    rng: &mut StdRng,
) -> Vec<f64> {
    let mut columns: Vec<&[u16]> = parents.iter().map(|&p| codes[p].as_slice()).collect();
    columns.push(&codes[child]);
    let mut dims: Vec<usize> = parents.iter().map(|&p| sizes[p]).collect();
    dims.push(sizes[child]);
    let counts = joint_counts(&columns, &dims);
    let mut noisy: Vec<f64> = counts
        .iter()
        .map(|&c| (c as f64 + laplace(scale, rng)).max(0.0))
        .collect();
    normalise_rows(&mut noisy, sizes[child]);
    noisy
}

/// Normalises each run of `k` cells to sum to 1 (uniform when all are 0).
fn normalise_rows(cells: &mut [f64], k: usize) {
    for row in cells.chunks_mut(k) {
        let total: f64 = row.iter().sum();
        if total > 0.0 && total.is_finite() {
            row.iter_mut().for_each(|x| *x = json_stable(*x / total));
        } else {
            let u = json_stable(1.0 / k as f64);
            row.iter_mut().for_each(|x| *x = u);
        }
    }
}

/// A Laplace(0, scale) draw as the difference of two unit exponentials.
fn laplace(scale: f64, rng: &mut StdRng) -> f64 {
    let a: f64 = rng.sample(Exp1);
    let b: f64 = rng.sample(Exp1);
    scale * (a - b)
}

/// Index of the bucket whose cumulative interval contains `u`.
fn locate(cdf: &[f64], u: f64) -> usize {
    cdf.partition_point(|&c| c <= u)
        .min(cdf.len().saturating_sub(1))
}

impl ModelSpec {
    /// Structural checks for a loaded model; anything that could make
    /// sampling index out of bounds or emit NaN is rejected here.
    fn validate(&self) -> Result<Plan, PrivBayesError> {
        let bad = |msg: String| Err(PrivBayesError::InvalidModel(msg));
        if self.format_version != FORMAT_VERSION {
            return bad(format!(
                "format_version {} is not supported (expected {FORMAT_VERSION})",
                self.format_version
            ));
        }
        if self.generator != GENERATOR_NAME {
            return bad(format!("generator `{}` is not privbayes", self.generator));
        }
        let problems = self.config.validate();
        if !problems.is_empty() {
            return bad(format!("config: {}", problems.join("; ")));
        }
        let b = &self.budget;
        if !(b.epsilon.is_finite() && b.epsilon > 0.0 && b.delta == 0.0) {
            return bad("budget must have a finite epsilon > 0 and delta 0".into());
        }
        let d = self.columns.len();
        let mut index = HashMap::new();
        for (i, name) in self.columns.iter().enumerate() {
            if index.insert(name.as_str(), i).is_some() {
                return bad(format!("column `{name}` appears twice"));
            }
        }
        if d == 0 || d != self.config.domain.len() || self.network.len() != d {
            return bad("columns, declared domains and network nodes must match one to one".into());
        }
        let mut domains = Vec::with_capacity(d);
        for name in &self.columns {
            match self.config.domain.get(name) {
                Some(domain) => domains.push(domain.clone()),
                None => return bad(format!("column `{name}` has no declared domain")),
            }
        }
        let sizes: Vec<usize> = domains.iter().map(|x| x.size()).collect();
        let mut seen = vec![false; d];
        let mut nodes = Vec::with_capacity(d);
        for node in &self.network {
            let Some(&column) = index.get(node.column.as_str()) else {
                return bad(format!("network node `{}` is not a column", node.column));
            };
            if std::mem::replace(&mut seen[column], true) {
                return bad(format!("network node `{}` appears twice", node.column));
            }
            if node.parents.len() > self.config.degree {
                return bad(format!(
                    "node `{}` has more parents than degree",
                    node.column
                ));
            }
            let mut parents = Vec::with_capacity(node.parents.len());
            let mut configs = 1usize;
            for parent in &node.parents {
                match index.get(parent.as_str()) {
                    Some(&p) if seen[p] && p != column && !parents.contains(&p) => {
                        parents.push(p);
                        configs = configs.saturating_mul(sizes[p]);
                    }
                    _ => {
                        return bad(format!(
                            "node `{}`: parent `{parent}` must be an earlier, distinct node",
                            node.column
                        ));
                    }
                }
            }
            let k = sizes[column];
            if node.probabilities.len() != configs.saturating_mul(k) {
                return bad(format!(
                    "node `{}`: expected {configs} × {k} probabilities, got {}",
                    node.column,
                    node.probabilities.len()
                ));
            }
            let mut cdf = Vec::with_capacity(node.probabilities.len());
            for row in node.probabilities.chunks(k) {
                let mut total = 0.0;
                for &p in row {
                    if !(p.is_finite() && p >= 0.0) {
                        return bad(format!("node `{}`: invalid probability {p}", node.column));
                    }
                    total += p;
                    cdf.push(total);
                }
                if (total - 1.0).abs() > 1e-6 {
                    return bad(format!(
                        "node `{}`: a parent configuration sums to {total}, not 1",
                        node.column
                    ));
                }
                if let Some(last) = cdf.last_mut() {
                    *last = 1.0;
                }
            }
            nodes.push(NodePlan {
                column,
                parents,
                cdf,
            });
        }
        Ok(Plan {
            domains,
            sizes,
            nodes,
        })
    }
}

fn json_stable_config(config: &PrivBayesConfig) -> PrivBayesConfig {
    let mut config = config.clone();
    config.epsilon = json_stable(config.epsilon);
    config.structure_share = json_stable(config.structure_share);
    config.usefulness = json_stable(config.usefulness);
    config.row_count_share = json_stable(config.row_count_share);
    for domain in config.domain.values_mut() {
        if let ColumnDomain::Numeric(d) = domain {
            d.min = json_stable(d.min);
            d.max = json_stable(d.max);
        }
    }
    config
}

#[derive(Clone, Copy)]
enum Stream {
    Structure = 1,
    Noise = 2,
    Sample = 3,
    Rows = 4,
    Conditional = 5,
}

/// An independent RNG per (seed, purpose, stream).
fn stream_rng(seed: u64, purpose: Stream, stream: u64) -> StdRng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&(purpose as u64).to_le_bytes());
    key[16..24].copy_from_slice(&stream.to_le_bytes());
    key[24..].copy_from_slice(b"privbaye");
    StdRng::from_seed(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(min: f64, max: f64, bins: usize, decimals: Option<u32>) -> ColumnDomain {
        ColumnDomain::Numeric(NumericDomain {
            min,
            max,
            bins,
            decimals,
        })
    }

    fn categorical(categories: &[&str]) -> ColumnDomain {
        ColumnDomain::Categorical(CategoricalDomain {
            categories: categories.iter().map(|c| c.to_string()).collect(),
            other_label: "OTHER".into(),
        })
    }

    fn config(epsilon: f64, domain: &[(&str, ColumnDomain)]) -> PrivBayesConfig {
        PrivBayesConfig::new(
            epsilon,
            domain
                .iter()
                .map(|(n, d)| (n.to_string(), d.clone()))
                .collect(),
        )
    }

    /// age → diabetes → hba1c, plus an independent sex column with nulls.
    fn clinic(n: usize, seed: u64) -> (Table, PrivBayesConfig) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut age = Vec::with_capacity(n);
        let mut diabetes = Vec::with_capacity(n);
        let mut hba1c = Vec::with_capacity(n);
        let mut sex = Vec::with_capacity(n);
        for _ in 0..n {
            let a: f64 = (18.0 + 72.0 * rng.random::<f64>().powf(0.8)).round();
            let p = 0.05 + 0.5 * (a - 18.0) / 72.0;
            let d = rng.random::<f64>() < p;
            let h = if d { 8.0 } else { 5.5 } + rng.random::<f64>() * 1.5;
            age.push(a);
            diabetes.push(Some(if d { "yes" } else { "no" }));
            hba1c.push(if rng.random::<f64>() < 0.1 {
                f64::NAN
            } else {
                h
            });
            sex.push(match rng.random_range(0..10) {
                0 => None,
                1..=5 => Some("F"),
                _ => Some("M"),
            });
        }
        let table = Table::new(vec![
            Column::numeric("age", age),
            Column::categorical("diabetes", &diabetes),
            Column::numeric("hba1c", hba1c),
            Column::categorical("sex", &sex),
        ]);
        let config = config(
            1.0,
            &[
                ("age", numeric(18.0, 90.0, 18, Some(0))),
                ("diabetes", categorical(&["no", "yes"])),
                ("hba1c", numeric(4.0, 12.0, 16, Some(1))),
                ("sex", categorical(&["F", "M"])),
            ],
        );
        (table, config)
    }

    /// Bucket shares of a column under its declared domain.
    fn shares(column: &Column, domain: &ColumnDomain) -> Vec<f64> {
        let codes = encode(column, domain);
        let mut counts = vec![0.0; domain.size()];
        codes.iter().for_each(|&c| counts[c as usize] += 1.0);
        counts.iter().map(|c| c / codes.len() as f64).collect()
    }

    fn tv(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / 2.0
    }

    fn joint_shares(t: &Table, cfg: &PrivBayesConfig, a: &str, b: &str) -> Vec<f64> {
        let (ca, cb) = (t.column(a).unwrap(), t.column(b).unwrap());
        let (da, db) = (&cfg.domain[a], &cfg.domain[b]);
        let counts = joint_counts(&[&encode(ca, da), &encode(cb, db)], &[da.size(), db.size()]);
        let n = t.n_rows() as f64;
        counts.iter().map(|&c| c as f64 / n).collect()
    }

    /// Random small coded datasets: `columns` columns of `n` rows, domain
    /// sizes 2..=5, with a random mix of copied and fresh values so that
    /// mutual information ranges from 0 to its maximum.
    fn random_codes(rng: &mut StdRng, n: usize, columns: usize) -> (Vec<Vec<u16>>, Vec<usize>) {
        let sizes: Vec<usize> = (0..columns).map(|_| rng.random_range(2..=5)).collect();
        let copy = rng.random::<f64>();
        let mut codes: Vec<Vec<u16>> = vec![Vec::with_capacity(n); columns];
        for _ in 0..n {
            let base: u16 = rng.random_range(0..5);
            for j in 0..columns {
                let v = if rng.random::<f64>() < copy {
                    base % sizes[j] as u16
                } else {
                    rng.random_range(0..sizes[j] as u16)
                };
                codes[j].push(v);
            }
        }
        (codes, sizes)
    }

    fn without_row(codes: &[Vec<u16>], row: usize) -> Vec<Vec<u16>> {
        codes
            .iter()
            .map(|c| {
                let mut c = c.clone();
                c.remove(row);
                c
            })
            .collect()
    }

    #[test]
    fn count_tables_change_by_at_most_one_per_added_or_removed_row() {
        for seed in 0..200 {
            let mut rng = StdRng::seed_from_u64(seed);
            let n = rng.random_range(1..30);
            let (codes, sizes) = random_codes(&mut rng, n, 3);
            let row = rng.random_range(0..n);
            let smaller = without_row(&codes, row);
            for set in [vec![0], vec![1, 0], vec![2, 0, 1]] {
                let dims: Vec<usize> = set.iter().map(|&j| sizes[j]).collect();
                let table = |c: &[Vec<u16>]| {
                    let cols: Vec<&[u16]> = set.iter().map(|&j| c[j].as_slice()).collect();
                    joint_counts(&cols, &dims)
                };
                let (a, b) = (table(&codes), table(&smaller));
                let l1: u32 = a.iter().zip(&b).map(|(x, y)| x.abs_diff(*y)).sum();
                assert_eq!(l1, 1, "seed {seed} set {set:?}");
            }
        }
    }

    #[test]
    fn mutual_information_respects_its_add_remove_sensitivity() {
        let phi = PhiTable::new(64);
        let mut worst_ratio = 0.0f64;
        for seed in 0..400 {
            let mut rng = StdRng::seed_from_u64(1000 + seed);
            let n = rng.random_range(2..48);
            let (codes, sizes) = random_codes(&mut rng, n, 3);
            let max_bits = (*sizes.iter().max().unwrap() as f64).log2();
            let c = score_sensitivity(max_bits);
            for row in 0..n {
                let smaller = without_row(&codes, row);
                for set in [vec![0, 1], vec![0, 1, 2]] {
                    let big = mutual_informations(&codes, &sizes, &set, &phi);
                    let small = mutual_informations(&smaller, &sizes, &set, &phi);
                    for (i, s) in big.iter().zip(&small) {
                        let bound = mi_sensitivity(n);
                        let change = (i - s).abs();
                        assert!(
                            change <= bound + 1e-12,
                            "seed {seed} n {n}: {change} > {bound}"
                        );
                        worst_ratio = worst_ratio.max(change / bound);
                        // The normalised score the mechanism uses moves by at most C.
                        let scaled = if n > 2 {
                            i / bound - s / mi_sensitivity(n - 1)
                        } else {
                            i / bound
                        };
                        assert!(scaled.abs() <= c + 1e-9, "seed {seed}: {scaled} > {c}");
                    }
                }
            }
        }
        // The bound is not vacuous: random data comes within a factor of it.
        assert!(worst_ratio > 0.3, "{worst_ratio}");
    }

    #[test]
    fn mutual_information_worst_case_stays_within_the_bound() {
        // Perfectly dependent binary halves, then a row in an empty cell:
        // the largest drop (PrivBayes' tightness example, add/remove form).
        for m in [2usize, 4, 10, 100, 1000] {
            let x: Vec<u16> = (0..m).map(|i| (i % 2) as u16).collect();
            let mut codes = vec![x.clone(), x];
            let phi = PhiTable::new(m + 1);
            let before = mutual_informations(&codes, &[2, 2], &[0, 1], &phi)[0];
            codes[0].push(0);
            codes[1].push(1);
            let after = mutual_informations(&codes, &[2, 2], &[0, 1], &phi)[0];
            let change = before - after;
            assert!(
                change > 0.0 && change <= mi_sensitivity(m + 1),
                "m {m}: {change}"
            );
        }
    }

    #[test]
    fn mutual_information_matches_a_hand_computed_value() {
        // X = Y on 4 rows with two values: I = H(X) = 1 bit. Independent
        // 2 × 2 with equal cells: I = 0.
        let phi = PhiTable::new(8);
        let dependent = mutual_informations_of_counts(&[2, 0, 0, 2], &[2, 2], &phi);
        assert!((dependent[0] - 1.0).abs() < 1e-12 && (dependent[1] - 1.0).abs() < 1e-12);
        let independent = mutual_informations_of_counts(&[1, 1, 1, 1], &[2, 2], &phi);
        assert!(independent.iter().all(|&i| i.abs() < 1e-12));
        // Lemma 4.1's general case at n = 2: 1·log2(1.5) + 0.5·log2(3).
        assert!((mi_sensitivity(2) - (1.5f64.log2() + 0.5 * 3f64.log2())).abs() < 1e-15);
    }

    #[test]
    fn score_sensitivity_is_small_and_its_scan_covers_the_tail() {
        let c20 = score_sensitivity(21f64.log2());
        assert!((1.25..1.4).contains(&c20), "{c20}");
        let c_max = score_sensitivity((MAX_COLUMN_DOMAIN as f64).log2());
        assert!(c_max < 1.45 && c_max >= c20, "{c_max}");
        // Past the scan the increments of 1/S keep shrinking.
        let step = |m: usize| 1.0 / mi_sensitivity(m) - 1.0 / mi_sensitivity(m - 1);
        let mut previous = step(1 << 17);
        // (Beyond 2^26 the difference of two f64 reciprocals is rounding noise.)
        for shift in 17..26 {
            for m in [(1usize << shift) + 1, (3usize << shift) / 2] {
                let s = step(m);
                assert!(s <= previous * (1.0 + 1e-4), "m {m}");
                previous = s;
            }
        }
    }

    #[test]
    fn large_epsilon_recovers_marginals_and_dependence() {
        let (train, mut cfg) = clinic(20_000, 3);
        cfg.epsilon = 1e6;
        let model = fit(&train, &cfg, 11).unwrap();
        let synth = model.sample(20_000, 12);
        for column in &train.columns {
            let domain = &cfg.domain[&column.name];
            let real = shares(column, domain);
            let fake = shares(synth.column(&column.name).unwrap(), domain);
            let d = tv(&real, &fake);
            assert!(d < 0.03, "{}: TV {d}", column.name);
        }
        // hba1c | diabetes is kept: the joint table matches and the gap in
        // means between diabetics and the rest stays.
        let real = joint_shares(&train, &cfg, "diabetes", "hba1c");
        let fake = joint_shares(&synth, &cfg, "diabetes", "hba1c");
        assert!(tv(&real, &fake) < 0.05, "{}", tv(&real, &fake));
        let gap = |t: &Table| {
            let d = t.column("diabetes").unwrap();
            let ColumnValues::Numeric(h) = &t.column("hba1c").unwrap().values else {
                unreachable!()
            };
            let mean = |yes: bool| {
                let v: Vec<f64> = (0..t.n_rows())
                    .filter(|&r| (d.label(r) == Some("yes")) == yes && !h[r].is_nan())
                    .map(|r| h[r])
                    .collect();
                v.iter().sum::<f64>() / v.len() as f64
            };
            mean(true) - mean(false)
        };
        let (real_gap, fake_gap) = (gap(&train), gap(&synth));
        assert!(
            real_gap > 2.0 && (real_gap - fake_gap).abs() < 0.15,
            "{real_gap} {fake_gap}"
        );
        let network = model.network();
        let linked = network.iter().any(|(c, p)| {
            (c == "hba1c" && p.contains(&"diabetes".to_string()))
                || (c == "diabetes" && p.contains(&"hba1c".to_string()))
        });
        assert!(linked, "{network:?}");
    }

    #[test]
    fn epsilon_accounting_adds_up_to_the_configured_epsilon() {
        let (train, base) = clinic(500, 5);
        for (epsilon, share) in [(1.0, 0.3), (0.1, 0.5), (3.7, 0.05), (1e-3, 0.99)] {
            for d in 1..=4 {
                let columns: Vec<Column> = train.columns[..d].to_vec();
                let mut cfg = base.clone();
                cfg.epsilon = epsilon;
                cfg.structure_share = share;
                cfg.domain
                    .retain(|name, _| columns.iter().any(|c| &c.name == name));
                let model = fit(&Table::new(columns), &cfg, 1).unwrap();
                let b = model.budget();
                assert_eq!((b.structure_steps, b.tables), (d - 1, d));
                let sum = b.row_count_epsilon
                    + b.structure_steps as f64 * b.epsilon_per_step
                    + b.tables as f64 * b.epsilon_per_table;
                assert!((b.row_count_epsilon - 0.01 * epsilon).abs() <= 1e-15);
                assert!(b.noisy_rows.is_some());
                assert!(
                    (sum - epsilon).abs() <= 1e-12 * epsilon,
                    "{sum} vs {epsilon}"
                );
                let (spent, delta) = model.epsilon_spent();
                assert!((spent - epsilon).abs() <= 1e-12 * epsilon && delta == 0.0);
                if d > 1 {
                    let structure = b.structure_steps as f64 * b.epsilon_per_step;
                    assert!((structure - share * 0.99 * epsilon).abs() <= 1e-12 * epsilon);
                }
                assert!((b.laplace_scale * b.epsilon_per_table - 1.0).abs() < 1e-12);
                let entry = model.ledger_entry("t", 3, 42);
                assert_eq!((entry.epsilon, entry.delta), (spent, 0.0));
                assert_eq!(entry.model_sha256, model.content_sha256());
            }
        }
    }

    #[test]
    fn categories_absent_from_the_data_can_be_sampled() {
        // Only "A" occurs; B, C, D, OTHER and null are cells of the declared
        // domain, so they get noise too. At ε = 0.1 on 200 rows a cell's
        // noise (scale 10) is positive about half the time.
        let values: Vec<Option<&str>> = vec![Some("A"); 200];
        let train = Table::new(vec![Column::categorical("dx", &values)]);
        let cfg = config(0.1, &[("dx", categorical(&["A", "B", "C", "D"]))]);
        let mut fits_with = [0usize; 4];
        for seed in 0..20 {
            let model = fit(&train, &cfg, seed).unwrap();
            assert_eq!(model.spec.network[0].probabilities.len(), 6);
            let synth = model.sample(5000, seed);
            let ColumnValues::Categorical { codes, dictionary } = &synth.columns[0].values else {
                panic!("categorical expected")
            };
            assert_eq!(dictionary, &["A", "B", "C", "D", "OTHER"]);
            for label in 1..4u32 {
                fits_with[label as usize] += codes.contains(&label) as usize;
            }
        }
        for label in 1..4 {
            assert!(fits_with[label] >= 4, "category {label}: {fits_with:?}");
        }
    }

    #[test]
    fn values_outside_the_domain_are_clipped_or_other() {
        let train = Table::new(vec![
            Column::numeric("x", vec![-5.0, 0.5, 99.0, f64::INFINITY, f64::NAN]),
            Column::categorical("c", &[Some("a"), Some("zzz"), None, Some("a"), Some("b")]),
        ]);
        let cfg = config(
            1.0,
            &[
                ("x", numeric(0.0, 1.0, 4, Some(2))),
                ("c", categorical(&["a", "b"])),
            ],
        );
        let x = encode(&train.columns[0], &cfg.domain["x"]);
        assert_eq!(x, vec![0, 2, 3, 3, 4]);
        let c = encode(&train.columns[1], &cfg.domain["c"]);
        assert_eq!(c, vec![0, 2, 3, 0, 1]);
        let synth = fit(&train, &cfg, 1).unwrap().sample(5000, 1);
        let ColumnValues::Numeric(v) = &synth.columns[0].values else {
            panic!()
        };
        for &x in v.iter().filter(|x| !x.is_nan()) {
            assert!((0.0..=1.0).contains(&x) && (x * 100.0 - (x * 100.0).round()).abs() < 1e-9);
        }
    }

    #[test]
    fn bad_input_is_an_error_or_a_documented_fallback() {
        let cfg = config(1.0, &[("x", numeric(0.0, 10.0, 5, None))]);
        assert_eq!(
            fit(&Table::default(), &cfg, 1),
            Err(PrivBayesError::Shape(ShapeError::NoColumns))
        );
        let empty = Table::new(vec![Column::numeric("x", vec![])]);
        assert_eq!(fit(&empty, &cfg, 1), Err(PrivBayesError::NoRows));

        // Undeclared column: named in the error, with the unused declaration.
        let t = Table::new(vec![Column::numeric("y", vec![1.0, 2.0])]);
        let err = fit(&t, &cfg, 1).unwrap_err();
        assert_eq!(
            err,
            PrivBayesError::DomainMismatch {
                undeclared: vec!["y".into()],
                unused: vec!["x".into()]
            }
        );
        assert!(err.to_string().contains("`y`") || err.to_string().contains("\"y\""));
        let t = Table::new(vec![Column::categorical("x", &[Some("a")])]);
        assert!(matches!(
            fit(&t, &cfg, 1),
            Err(PrivBayesError::TypeMismatch { .. })
        ));

        // Single row, constant and all-null columns: fitted, no NaN where a
        // value belongs, uniform structure choice (every score is 0).
        let cfg3 = config(
            0.5,
            &[
                ("x", numeric(0.0, 10.0, 5, None)),
                ("k", categorical(&["only"])),
                ("z", numeric(0.0, 1.0, 3, None)),
            ],
        );
        for n in [1usize, 2, 50] {
            let t = Table::new(vec![
                Column::numeric("x", (0..n).map(|i| i as f64).collect()),
                Column::categorical("k", &vec![Some("only"); n]),
                Column::numeric("z", vec![f64::NAN; n]),
            ]);
            let model = fit(&t, &cfg3, 9).unwrap();
            let s = model.sample(300, 1);
            assert_eq!(s.n_rows(), 300);
            let ColumnValues::Numeric(x) = &s.columns[0].values else {
                panic!()
            };
            assert!(x.iter().all(|v| v.is_nan() || (0.0..=10.0).contains(v)));
            let json = serde_json::to_string(&model).unwrap();
            assert!(!json.contains("NaN") && !json.contains("null,\"probabilities\""));
        }

        // Config problems are listed together.
        let mut bad = config(
            -1.0,
            &[
                ("x", numeric(5.0, 5.0, 0, None)),
                ("c", categorical(&["a", "a", "OTHER"])),
            ],
        );
        bad.structure_share = 1.0;
        let Err(PrivBayesError::InvalidConfig { problems }) = fit(&t_one(), &bad, 1) else {
            panic!("invalid config accepted")
        };
        assert_eq!(problems.len(), 6, "{problems:?}");
    }

    fn t_one() -> Table {
        Table::new(vec![Column::numeric("x", vec![1.0])])
    }

    #[test]
    fn model_round_trips_and_rejects_tampering() {
        let (train, cfg) = clinic(2000, 8);
        let model = fit(&train, &cfg, 4).unwrap();
        assert_eq!(model, fit(&train, &cfg, 4).unwrap());
        let json = serde_json::to_string(&model).unwrap();
        let loaded: PrivBayesModel = serde_json::from_str(&json).unwrap();
        assert_eq!(loaded.content_sha256(), model.content_sha256());
        let debug = |t: Table| format!("{t:?}"); // NaN != NaN, so compare text
        assert_eq!(debug(loaded.sample(500, 6)), debug(model.sample(500, 6)));
        assert_eq!(model.columns(), vec!["age", "diabetes", "hba1c", "sex"]);
        assert!(!json.contains("n_train_rows"));

        let tampered = json.replacen("\"format_version\":1", "\"format_version\":2", 1);
        assert!(serde_json::from_str::<PrivBayesModel>(&tampered).is_err());
        let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
        value["network"][1]["probabilities"][0] = serde_json::json!(7.5);
        assert!(serde_json::from_value::<PrivBayesModel>(value).is_err());
        let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let first = value["network"][0]["column"].clone();
        value["network"][0]["parents"] = serde_json::json!([first]);
        assert!(serde_json::from_value::<PrivBayesModel>(value).is_err());
    }

    #[test]
    fn toml_config_uses_documented_defaults_and_rejects_typos() {
        let text = r#"
            epsilon = 1.0
            [domain.age]
            min = 18
            max = 90
            bins = 20
            decimals = 0
            [domain.sex]
            categories = ["F", "M"]
        "#;
        let cfg: PrivBayesConfig = toml::from_str(text).unwrap();
        assert_eq!((cfg.degree, cfg.structure_share), (2, 0.3));
        assert_eq!(cfg.max_table_cells, 1_000_000);
        assert_eq!((cfg.usefulness, cfg.row_count_share), (4.0, 0.01));
        assert_eq!(cfg.domain["age"], numeric(18.0, 90.0, 20, Some(0)));
        assert_eq!(cfg.domain["sex"], categorical(&["F", "M"]));
        assert!(cfg.validate().is_empty());
        assert!(toml::from_str::<PrivBayesConfig>(&text.replace("epsilon", "epsilom")).is_err());
        assert!(toml::from_str::<PrivBayesConfig>(&text.replace("bins", "bin")).is_err());
    }

    #[test]
    fn parent_sets_respect_degree_and_table_cap() {
        let sizes = [10, 10, 10, 10];
        let c = candidates(&sizes, &[0, 1, 2], 2, 1000);
        assert!(
            c.iter()
                .all(|(x, p)| *x == 3 && !p.is_empty() && p.len() <= 2)
        );
        assert_eq!(c.len(), 6);
        let c = candidates(&sizes, &[0, 1, 2], 2, 999);
        assert!(c.iter().all(|(_, p)| p.len() == 1) && c.len() == 3);
        let c = candidates(&sizes, &[0, 1, 2], 3, 1_000_000);
        assert_eq!(c.len(), 7);
        assert_eq!(
            candidates(&sizes, &[0, 1], 2, 99),
            vec![(2, vec![]), (3, vec![])]
        );
    }
}
