//! The gate's verdict, one result per operator and column (or column pair).
//!
//! Results are evidence as well as a verdict: they are attached to the audit
//! report, summarised in the `resynth.gates` lineage header, and carried by
//! quarantined batches, so each one names its operator and columns, states
//! the score, the threshold and the holdout noise floor, and explains itself.

use serde::{Deserialize, Serialize};

use super::aggregate::QualityScores;

/// Operator names used in [`OperatorResult::operator`].
pub mod operator {
    /// Kolmogorov–Smirnov D per numeric column.
    pub const KS: &str = "ks";
    /// Total variation distance per categorical column.
    pub const TOTAL_VARIATION: &str = "total_variation";
    /// Wasserstein-1 over the training IQR per numeric column.
    pub const WASSERSTEIN_IQR: &str = "wasserstein_iqr";
    /// |Δ Spearman r| per strongly correlated numeric pair.
    pub const SPEARMAN_DIFF: &str = "spearman_diff";
    /// Share of synthetic rows equal to a training row.
    pub const EXACT_MATCH: &str = "exact_match";
    /// Distance-to-closest-record share P[d(s,R) < d(s,H)].
    pub const DCR_SHARE: &str = "dcr_share";
    /// Share of synthetic rows whose nearest-neighbour distance ratio to
    /// training is below the holdout's 5th percentile.
    pub const NNDR_SHARE: &str = "nndr_share";
    /// Share of synthetic rows reproducing a real extreme (a numeric
    /// column's exact training minimum or maximum, or a category held by
    /// fewer than `gate.small_cell_min` training patients), against the
    /// holdout's share.
    pub const OUTLIER_REPLICATION: &str = "outlier_replication";
    /// Total variation of a pair's 2-D contingency table.
    pub const CONTINGENCY_TV: &str = "contingency_tv";
    /// KS D (numeric) or TV (categorical) of a column within one stratum
    /// of a configured conditional.
    pub const CONDITIONAL_KS: &str = "conditional_ks";
    /// Relative loss of a declared subgroup's share of the batch.
    pub const SUBGROUP_SHARE: &str = "subgroup_share";
    /// AUROC(train on real) − AUROC(train on synthetic) on the holdout.
    pub const UTILITY_AUROC_GAP: &str = "utility_auroc_gap";
    /// The same gap within one subgroup.
    pub const UTILITY_SUBGROUP_GAP: &str = "utility_subgroup_gap";
    /// Membership-inference advantage (95 % upper bound) of the attacker
    /// scoring a record by −(Gower distance to the closest synthetic record).
    pub const MIA_NEAREST_RECORD: &str = "mia_nearest_record";
    /// Membership-inference advantage (95 % upper bound) of the attacker
    /// scoring a record by its k-NN density ratio, synthetic vs holdout.
    pub const MIA_DENSITY_RATIO: &str = "mia_density_ratio";
    /// Share of synthetic records matching a training equivalence class
    /// smaller than k on the quasi-identifiers.
    pub const K_ANONYMITY_RISK: &str = "k_anonymity_risk";
    /// Share of matched synthetic records in training classes with fewer
    /// than l distinct values of a sensitive column.
    pub const L_DIVERSITY: &str = "l_diversity";
    /// Anonymeter-style singling-out risk (95 % upper bound).
    pub const SINGLING_OUT_RISK: &str = "singling_out_risk";
    /// Anonymeter-style linkability risk (95 % upper bound).
    pub const LINKABILITY_RISK: &str = "linkability_risk";
    /// Anonymeter-style attribute-inference risk per sensitive column (95 %
    /// upper bound).
    pub const INFERENCE_RISK: &str = "inference_risk";

    /// Every gated operator, in report order.
    pub const ALL: [&str; 20] = [
        KS,
        TOTAL_VARIATION,
        WASSERSTEIN_IQR,
        SPEARMAN_DIFF,
        CONTINGENCY_TV,
        CONDITIONAL_KS,
        SUBGROUP_SHARE,
        UTILITY_AUROC_GAP,
        UTILITY_SUBGROUP_GAP,
        EXACT_MATCH,
        DCR_SHARE,
        NNDR_SHARE,
        OUTLIER_REPLICATION,
        MIA_NEAREST_RECORD,
        MIA_DENSITY_RATIO,
        K_ANONYMITY_RISK,
        L_DIVERSITY,
        SINGLING_OUT_RISK,
        LINKABILITY_RISK,
        INFERENCE_RISK,
    ];
}

/// One operator's score on one column, column pair or the whole table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorResult {
    /// One of the names in [`operator`].
    pub operator: String,
    /// Columns scored; empty for whole-table operators.
    pub columns: Vec<String>,
    /// The score of synthetic vs training (always finite).
    pub statistic: f64,
    /// The largest passing score: the larger of `effect_limit` and
    /// `noise_allowance` (the calibration rule, see `gate::calibration`).
    pub threshold: f64,
    /// The effect size that counts as material: the configured limit
    /// (`gate.*_max`), or for a comparison with the holdout the holdout's
    /// score plus the configured margin.
    #[serde(default)]
    pub effect_limit: f64,
    /// What fresh real data scores at these sizes with probability no more
    /// than this operator's share of the gate's false-fail rate: the
    /// resampling or analytic null quantile. `None` where the operator has
    /// no noise allowance (its limit alone decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_allowance: Option<f64>,
    /// A 95 % interval of the statistic, where the operator has one
    /// (membership advantage: stratified bootstrap; Anonymeter-style risks:
    /// Wilson intervals propagated): evidence for a reviewer and the
    /// binder's residual-risk figures, never the verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<[f64; 2]>,
    /// The same score for holdout vs training, where meaningful: how far
    /// fresh real data already sits from the training data.
    pub noise_floor: Option<f64>,
    /// Usually `statistic <= threshold`; an operator may also fail on its
    /// own condition (a correlation whose sign flipped, a column with values
    /// on one side only), which its explanation states.
    pub passed: bool,
    /// One sentence a reviewer can act on.
    pub explanation: String,
}

/// All operator results of one gate run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    /// Fidelity results first (per column, pairs, contingency, conditionals),
    /// then utility, then privacy (exact match, DCR, NNDR, outlier replication, membership inference,
    /// then the quasi-identifier operators), in column order.
    pub results: Vec<OperatorResult>,
    /// True only if every result passed.
    pub passed: bool,
    /// Evidence that is never gated and does not count towards `passed`:
    /// contingency TV of categorical × numeric pairs, strata and subgroups
    /// skipped for size, a utility check that could not run. Each
    /// explanation starts with "reported, not gated".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reported: Vec<OperatorResult>,
    /// SDMetrics-style Column Shapes / Column Pair Trends (reported, never
    /// gated: an average hides the worst column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregates: Option<QualityScores>,
}

impl GateReport {
    /// Builds a report; `passed` is the conjunction of the results.
    pub fn new(results: Vec<OperatorResult>) -> Self {
        let passed = results.iter().all(|r| r.passed);
        GateReport {
            results,
            passed,
            reported: Vec::new(),
            aggregates: None,
        }
    }

    /// Adds ungated evidence; `passed` is unchanged.
    pub fn with_evidence(
        mut self,
        reported: Vec<OperatorResult>,
        aggregates: Option<QualityScores>,
    ) -> Self {
        self.reported = reported;
        self.aggregates = aggregates;
        self
    }

    /// The results that failed.
    pub fn failures(&self) -> Vec<&OperatorResult> {
        self.results.iter().filter(|r| !r.passed).collect()
    }

    /// Failed operators as `operator[col,…]` labels, e.g. `ks[age]`, for
    /// headers and log lines.
    pub fn failed_operators(&self) -> Vec<String> {
        self.failures()
            .into_iter()
            .map(|r| {
                if r.columns.is_empty() {
                    r.operator.clone()
                } else {
                    format!("{}[{}]", r.operator, r.columns.join(","))
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(op: &str, columns: &[&str], passed: bool) -> OperatorResult {
        OperatorResult {
            operator: op.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            statistic: 0.0,
            threshold: 0.1,
            effect_limit: 0.1,
            noise_allowance: None,
            interval: None,
            noise_floor: None,
            passed,
            explanation: String::new(),
        }
    }

    #[test]
    fn lists_failed_operators() {
        let report = GateReport::new(vec![
            result(operator::KS, &["age"], false),
            result(operator::TOTAL_VARIATION, &["sex"], true),
            result(operator::SPEARMAN_DIFF, &["age", "bmi"], false),
            result(operator::DCR_SHARE, &[], false),
        ]);
        assert!(!report.passed);
        assert_eq!(
            report.failed_operators(),
            vec!["ks[age]", "spearman_diff[age,bmi]", "dcr_share"]
        );
        assert!(GateReport::new(vec![]).passed);
        let json = serde_json::to_string(&report).unwrap();
        let back: GateReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
    }
}
