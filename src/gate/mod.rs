//! The gate: fidelity and privacy operators that decide whether a synthetic
//! batch may be published.
//!
//! Every batch is scored against the training table R it was generated from
//! and the holdout H kept back from the same window. Each operator yields an
//! [`OperatorResult`] with its score, threshold, holdout noise floor and an
//! explanation; the batch passes only if every result passes, otherwise it is
//! regenerated or quarantined with the failed results as evidence. Pure
//! functions over [`crate::table::Table`]: no I/O, so `resynth validate` and
//! the streaming engine run exactly the same gate.
//!
//! Cost: the distance-to-closest-record scan dominates (synthetic rows,
//! capped at `max_dcr_synthetic_rows`, × training and holdout rows ×
//! columns). Measured in release mode for 50k synthetic vs 50k training +
//! 50k holdout × 30 columns (18 numeric, 12 categorical, 5 % missing):
//! 4.7 s wall on a 2-core machine that was also running a parallel `cargo`
//! build (load ≈ 5), 3.0 s of CPU in total (≈ 2.2 s of it the scan), so about
//! 1.5–2 s on two idle cores; target ≤ 10 s. With the 2-D contingency,
//! conditional and utility operators and the SDMetrics-style aggregates
//! (`cargo run --release --example gate_bench -- timing`, 30 mixed columns,
//! a target, three subgroup columns, two conditionals): 4.1 s of CPU in
//! total (≈ 1.1 s of it utility: two logistic fits on 20k rows and the
//! bootstrap), 6.2 s wall at load ≈ 5, so about 2.5–3 s on two idle cores.
//! The privacy operators that follow DCR add two more exact k-NN workloads:
//! membership inference (2 × `mia_max_records` records × synthetic rows,
//! plus two 10 000-row density references) and, with quasi-identifiers
//! declared, the Anonymeter-style attacks (`anonymeter_n_attacks` targets ×
//! synthetic rows × quasi-identifiers). With them
//! (`cargo run --release --example privacy_timing`, same table shape, 5
//! quasi-identifiers, 2 sensitive columns): 4.4 s of CPU without roles
//! (membership ≈ 1.3 s), 5.9 s with the quasi-identifier operators
//! (k-anonymity 0.04 s, Anonymeter-style ≈ 1.5 s, singling out 0.4 s of it
//! on one thread), 7.3 s with a utility target and subgroups as well;
//! 7.4 s wall at load ≈ 3.7, so about 4 s on two idle cores.
//!
//! ```
//! # use resynth::gate::{evaluate, GateConfig};
//! # use resynth::table::{Column, Table};
//! let t = |v: Vec<f64>| Table::new(vec![Column::numeric("x", v)]);
//! let (r, h) = (t((0..200).map(f64::from).collect()), t((0..200).map(|i| i as f64 + 0.5).collect()));
//! let s = r.clone(); // a copy of the training data must not be published
//! let report = evaluate(&r, &h, &s, &GateConfig::default(), &Default::default(), 7).unwrap();
//! assert_eq!(
//!     report.failed_operators(),
//!     vec!["exact_match", "dcr_share", "nndr_share", "mia_nearest_record", "mia_density_ratio"]
//! );
//! ```

mod aggregate;
mod anonymeter;
mod anonymity;
mod calibration;
pub mod cells;
mod codes;
mod conditional;
mod config;
mod contingency;
mod detection;
mod fidelity;
mod input;
mod membership;
mod null;
mod outliers;
mod parallel;
mod privacy;
mod report;
#[cfg(test)]
mod risk_tests;
mod roles;
pub mod subgroups;
#[cfg(test)]
mod tests;
mod units;
mod utility;

pub use aggregate::{ColumnScore, DcrOverfittingProtection, PairScore, QualityScores};
pub use config::GateConfig;
pub use detection::detection_auc;
pub use report::{GateReport, OperatorResult, operator};
pub use roles::{Conditional, Roles, Subgroup, Target};
pub use units::Units;
pub use utility::auroc;
pub use utility::role_kind_problems;

use crate::stats::StatsError;
use crate::table::Table;

/// Why the gate could not score a batch (as opposed to the batch failing).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GateError {
    /// The configuration has invalid values; every problem is listed.
    #[error("invalid gate configuration: {}", problems.join("; "))]
    InvalidConfig { problems: Vec<String> },
    /// The roles name columns the tables do not have, or give a column a
    /// role its kind cannot play; every problem is listed.
    #[error("invalid gate roles: {}", problems.join("; "))]
    InvalidRoles { problems: Vec<String> },
    /// A table has no rows or no columns.
    #[error("{table} table has no {what}")]
    Empty {
        table: &'static str,
        what: &'static str,
    },
    /// A training column is absent from another table.
    #[error(
        "{table} table: column `{column}` is missing (expected {expected}, as in the training table)"
    )]
    MissingColumn {
        table: &'static str,
        column: String,
        expected: &'static str,
    },
    /// A table has a column the training table does not.
    #[error("{table} table: column `{column}` is not in the training table")]
    UnexpectedColumn { table: &'static str, column: String },
    /// A column name appears twice in one table.
    #[error("{table} table: column `{column}` appears more than once")]
    DuplicateColumn { table: &'static str, column: String },
    /// A column has a different kind than in the training table.
    #[error(
        "{table} table: column `{column}` is {found}, expected {expected} as in the training table"
    )]
    KindMismatch {
        table: &'static str,
        column: String,
        expected: &'static str,
        found: &'static str,
    },
    /// A column's length differs from its table's row count.
    #[error("{table} table: column `{column}` has {found} rows, expected {expected}")]
    RaggedColumn {
        table: &'static str,
        column: String,
        expected: usize,
        found: usize,
    },
    /// A categorical code lies outside its dictionary.
    #[error(
        "{table} table: column `{column}`: code {code} at row {row} is outside its dictionary of {dictionary_len} labels"
    )]
    InvalidCode {
        table: &'static str,
        column: String,
        row: usize,
        code: u32,
        dictionary_len: usize,
    },
    /// A statistics kernel rejected its input (not expected after the table
    /// checks; kept so no path panics).
    #[error("gate statistics: {0}")]
    Stats(#[from] StatsError),
}

/// Scores `synthetic` against `train`, with `holdout` as the yardstick:
/// fidelity operators first (per column, correlated pairs, 2-D
/// contingency, configured conditionals), then utility (TSTR vs TRTR when
/// `roles.target` is set), then privacy; SDMetrics-style averages and
/// ungated evidence go to `GateReport::aggregates` / `reported`. Privacy
/// is exact match, DCR, NNDR, outlier replication (real extremes and rare
/// categories reproduced), membership inference, then — on
/// `roles.quasi_identifiers`, when declared — k-anonymity risk,
/// l-diversity, singling-out, linkability and inference risk. `seed`
/// drives every subsample, bootstrap and attack, so equal inputs and seed
/// give an equal report.
///
/// # Errors
/// [`GateError`] when the config or the roles are invalid, or the tables do
/// not share the training table's schema (names, kinds, lengths, codes), or
/// one is empty. A batch that scores badly is not an error: it is a report
/// with `passed == false`.
pub fn evaluate(
    train: &Table,
    holdout: &Table,
    synthetic: &Table,
    config: &GateConfig,
    roles: &Roles,
    seed: u64,
) -> Result<GateReport, GateError> {
    evaluate_in_units(
        train,
        holdout,
        synthetic,
        &Units::default(),
        config,
        roles,
        seed,
    )
}

/// [`evaluate`] for tables where a privacy unit (patient) may own several
/// rows: `units` says which, so the noise allowances are those of a sample
/// of patients (see [`Units`]).
pub fn evaluate_in_units(
    train: &Table,
    holdout: &Table,
    synthetic: &Table,
    units: &Units,
    config: &GateConfig,
    roles: &Roles,
    seed: u64,
) -> Result<GateReport, GateError> {
    run(
        [train, holdout, synthetic],
        config,
        roles,
        units,
        seed,
        false,
    )
}

/// The engine's two gates: fidelity and utility first; privacy only for a
/// batch that passed them. A batch that already failed is regenerated or
/// quarantined whatever its privacy scores, so the privacy operators (the
/// costly nearest-neighbour scans) are skipped and a reported result says
/// so. `resynth validate` uses [`evaluate_in_units`], which always runs
/// both.
pub fn evaluate_staged(
    train: &Table,
    holdout: &Table,
    synthetic: &Table,
    units: &Units,
    config: &GateConfig,
    roles: &Roles,
    seed: u64,
) -> Result<GateReport, GateError> {
    run(
        [train, holdout, synthetic],
        config,
        roles,
        units,
        seed,
        true,
    )
}

/// Operator name of the reported result that says the privacy gate was
/// skipped.
pub const PRIVACY_SKIPPED: &str = "privacy_gate";

/// Operator name of the reported, not gated, detection score: 5-fold AUC of
/// boosted trees telling synthetic from training rows (noise floor: holdout
/// vs training). Not in [`operator::ALL`], which lists gated operators.
pub const DETECTION_AUC: &str = "detection_auc";

/// Both gates on `[train, holdout, synthetic]`; `staged` skips privacy
/// for a batch that already failed.
fn run(
    [train, holdout, synthetic]: [&Table; 3],
    config: &GateConfig,
    roles: &Roles,
    units: &Units,
    seed: u64,
    staged: bool,
) -> Result<GateReport, GateError> {
    let problems = config.validate();
    if !problems.is_empty() {
        return Err(GateError::InvalidConfig { problems });
    }
    let columns = input::align(train, holdout, synthetic)?;
    let names: Vec<String> = train.columns.iter().map(|c| c.name.clone()).collect();
    let mut problems = roles.validate(&names);
    problems.extend(utility::role_problems(&columns, roles));
    if !problems.is_empty() {
        return Err(GateError::InvalidRoles { problems });
    }
    let (mut results, mut reported) =
        fidelity_family(train, synthetic, &columns, roles, config, units, seed)?;
    let (gated, mut skipped) = utility::utility(&columns, roles, config, seed);
    results.extend(calibration::calibrate_split(
        gated,
        config.false_fail_rate * calibration::UTILITY_SHARE,
    ));
    reported.append(&mut skipped);
    reported.push(detection::detection(train, holdout, synthetic, seed));
    let aggregates = aggregate::quality_scores(&columns);
    if staged && results.iter().any(|r| !r.passed) {
        reported.push(result(
            PRIVACY_SKIPPED,
            Vec::new(),
            0.0,
            0.0,
            None,
            false,
            "reported, not gated: the privacy gate did not run because the batch already \
             failed the fidelity/utility gate"
                .into(),
        ));
        return Ok(GateReport::new(results).with_evidence(reported, Some(aggregates)));
    }
    let aggregates = aggregates.with_dcr_overfitting(train, holdout, synthetic, config, seed)?;
    let mut private = privacy::privacy(train, holdout, synthetic, config, seed)?;
    private.push(outliers::outlier_replication(
        &columns,
        (holdout.n_rows(), synthetic.n_rows()),
        units,
        config,
    ));
    private.extend(membership::membership(
        train, holdout, synthetic, config, units, seed,
    )?);
    private.extend(anonymity::anonymity(
        train, holdout, synthetic, roles, config,
    )?);
    private.extend(anonymeter::anonymeter(
        train, holdout, synthetic, roles, config, units, seed,
    )?);
    results.extend(calibration::calibrate_split(
        private,
        config.false_fail_rate * calibration::PRIVACY_SHARE,
    ));
    Ok(GateReport::new(results).with_evidence(reported, Some(aggregates)))
}

/// The fidelity family, calibrated: every per-column, pair, contingency,
/// conditional and subgroup result gets its noise allowance from one
/// permutation null of training ∪ synthetic at the batch's sizes (max-T over
/// the family at its share of the false-fail rate). Returns (gated,
/// reported).
fn fidelity_family(
    train: &Table,
    synthetic: &Table,
    columns: &[input::ColumnTriple<'_>],
    roles: &Roles,
    config: &GateConfig,
    units: &Units,
    seed: u64,
) -> Result<(Vec<OperatorResult>, Vec<OperatorResult>), GateError> {
    let (keyed, reported) = null::keyed_results(columns, roles, config);
    let keys: Vec<String> = keyed.iter().map(|(_, k)| k.clone()).collect();
    let null = null::fidelity_null(train, synthetic, &keys, roles, config, units, seed)?;
    let alpha = config.false_fail_rate * calibration::FIDELITY_SHARE;
    let allowances = calibration::max_t_allowances(&null.values, alpha);
    let how = format!(
        "{} random splits of training ∪ synthetic into {} × {} rows, {:.1}% familywise over \
         {} fidelity results{}",
        config.null_replicates,
        null.rows.0,
        null.rows.1,
        100.0 * alpha,
        keyed.len(),
        if null.scale < 1.0 {
            format!(", scaled ×{:.3} to the batch's sizes", null.scale)
        } else {
            String::new()
        }
    );
    let results = keyed
        .into_iter()
        .zip(allowances)
        .map(|((mut r, _), a)| {
            calibration::calibrate(&mut r, a.map(|a| a * null.scale), &how);
            r
        })
        .collect();
    Ok((results, reported))
}

/// Builds a result, refusing to carry a non-finite number: a statistic that
/// is not finite fails the operator and is reported as 1.
fn result(
    operator: &str,
    columns: Vec<String>,
    statistic: f64,
    threshold: f64,
    noise_floor: Option<f64>,
    passed: bool,
    explanation: String,
) -> OperatorResult {
    let (statistic, passed, explanation) = if statistic.is_finite() {
        (statistic, passed, explanation)
    } else {
        (
            1.0,
            false,
            format!("statistic was not finite; {explanation}"),
        )
    };
    OperatorResult {
        operator: operator.to_string(),
        columns,
        statistic,
        threshold,
        effect_limit: threshold,
        noise_allowance: None,
        interval: None,
        noise_floor: noise_floor.filter(|f| f.is_finite()),
        passed,
        explanation,
    }
}
