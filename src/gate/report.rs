//! The gate's verdict, one result per operator and column (or column pair).
//!
//! Results are evidence as well as a verdict: they are attached to the audit
//! report, summarised in the `resynth.gates` lineage header, and carried by
//! quarantined batches, so each one names its operator and columns, states
//! the score, the threshold and the holdout noise floor, and explains itself.

use serde::{Deserialize, Serialize};

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
    /// The largest passing score.
    pub threshold: f64,
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
    /// Fidelity results first, then privacy, in column order.
    pub results: Vec<OperatorResult>,
    /// True only if every result passed.
    pub passed: bool,
}

impl GateReport {
    /// Builds a report; `passed` is the conjunction of the results.
    pub fn new(results: Vec<OperatorResult>) -> Self {
        let passed = results.iter().all(|r| r.passed);
        GateReport { results, passed }
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
