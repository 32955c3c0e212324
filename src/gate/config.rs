//! Thresholds of the gate operators, with the defaults from DESIGN.md.
//!
//! One struct is the single source of truth for every gate threshold: it is
//! parsed from the topology file (`[gate]`), validated before a pipeline
//! starts, and its doc comments are the reference for each option. The
//! thresholds are effect sizes, not p-values, so they mean the same thing
//! at 1 000 rows as at 1 000 000.

use serde::{Deserialize, Serialize};

/// Thresholds for [`crate::gate::evaluate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateConfig {
    /// Largest Kolmogorov–Smirnov D allowed between a numeric column of the
    /// synthetic batch and of the training data: the widest gap between the
    /// two CDFs, so 0.10 means no value's percentile moves by more than 10
    /// points. Default 0.10. Must be in (0, 1].
    pub ks_max: f64,
    /// Largest total variation distance allowed between a categorical
    /// column's synthetic and training distributions (missing counts as a
    /// category): the share of probability mass that would have to move.
    /// Default 0.10. Must be in (0, 1].
    pub tv_max: f64,
    /// Largest Wasserstein-1 distance allowed per numeric column, in units
    /// of the training column's interquartile range, so one number fits
    /// columns measured in any unit. Catches shifts of the bulk that KS
    /// underweights (e.g. a long tail moved). Default 0.10. Must be > 0.
    pub wasserstein_iqr_max: f64,
    /// Largest allowed |Spearman r (synthetic) − Spearman r (training)| on a
    /// pair of numeric columns; a change of sign also fails. Default 0.10.
    /// Must be in (0, 2].
    pub correlation_diff_max: f64,
    /// Only pairs whose training |Spearman r| reaches this are gated: weak
    /// correlations are mostly noise, and gating them would fail good
    /// batches at random. Default 0.3. Must be in [0, 1].
    pub correlation_min_real: f64,
    /// Upper cap on the distance-to-closest-record threshold
    /// P[d(s, R) < d(s, H)]. The threshold is
    /// `min(0.5 + 1.645·√(0.25/n), dcr_share_cap)`: the one-sided 95 % bound
    /// of a fair coin over n synthetic rows, capped so small batches cannot
    /// pass with a clearly training-leaning share. Default 0.55. Must be in
    /// [0.5, 1].
    pub dcr_share_cap: f64,
    /// Allowance on top of the holdout's exact-match share: synthetic rows
    /// may copy training rows only as often as fresh real rows coincide with
    /// them by chance, plus this margin. Default 0.001 (0.1 % of rows).
    /// Must be in [0, 1].
    pub exact_match_margin: f64,
    /// Synthetic rows used for the distance-to-closest-record test; larger
    /// batches are subsampled (seeded) on the synthetic side only, because
    /// the exact nearest-neighbour scan costs rows × reference rows × columns.
    /// 5 000 keeps the binomial bound within ±1.2 % and the scan in seconds.
    /// Default 5000. Must be ≥ 100.
    pub max_dcr_synthetic_rows: usize,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            ks_max: 0.10,
            tv_max: 0.10,
            wasserstein_iqr_max: 0.10,
            correlation_diff_max: 0.10,
            correlation_min_real: 0.3,
            dcr_share_cap: 0.55,
            exact_match_margin: 0.001,
            max_dcr_synthetic_rows: 5000,
        }
    }
}

impl GateConfig {
    /// Every problem with the values, one message each, prefixed with the
    /// option's path (`gate.<field>`). Empty when the config is usable.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut check = |field: &str, value: f64, ok: bool, range: &str| {
            if !ok || !value.is_finite() {
                problems.push(format!("gate.{field}: must be in {range}, got {value}"));
            }
        };
        let open_unit = |x: f64| x > 0.0 && x <= 1.0;
        check("ks_max", self.ks_max, open_unit(self.ks_max), "(0, 1]");
        check("tv_max", self.tv_max, open_unit(self.tv_max), "(0, 1]");
        check(
            "wasserstein_iqr_max",
            self.wasserstein_iqr_max,
            self.wasserstein_iqr_max > 0.0,
            "(0, inf)",
        );
        check(
            "correlation_diff_max",
            self.correlation_diff_max,
            self.correlation_diff_max > 0.0 && self.correlation_diff_max <= 2.0,
            "(0, 2]",
        );
        check(
            "correlation_min_real",
            self.correlation_min_real,
            (0.0..=1.0).contains(&self.correlation_min_real),
            "[0, 1]",
        );
        check(
            "dcr_share_cap",
            self.dcr_share_cap,
            (0.5..=1.0).contains(&self.dcr_share_cap),
            "[0.5, 1]",
        );
        check(
            "exact_match_margin",
            self.exact_match_margin,
            (0.0..=1.0).contains(&self.exact_match_margin),
            "[0, 1]",
        );
        if self.max_dcr_synthetic_rows < 100 {
            problems.push(format!(
                "gate.max_dcr_synthetic_rows: must be at least 100, got {}",
                self.max_dcr_synthetic_rows
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_design_and_validate() {
        let c = GateConfig::default();
        assert_eq!(
            (c.ks_max, c.tv_max, c.wasserstein_iqr_max),
            (0.10, 0.10, 0.10)
        );
        assert_eq!(
            (c.correlation_diff_max, c.correlation_min_real),
            (0.10, 0.3)
        );
        assert_eq!((c.dcr_share_cap, c.exact_match_margin), (0.55, 0.001));
        assert!(c.validate().is_empty());
    }

    #[test]
    fn lists_every_problem() {
        let c = GateConfig {
            ks_max: 1.5,
            tv_max: 0.0,
            wasserstein_iqr_max: f64::NAN,
            correlation_diff_max: 0.1,
            correlation_min_real: -0.1,
            dcr_share_cap: 0.4,
            exact_match_margin: 0.001,
            max_dcr_synthetic_rows: 10,
        };
        let problems = c.validate();
        assert_eq!(problems.len(), 6, "{problems:?}");
        assert_eq!(problems[0], "gate.ks_max: must be in (0, 1], got 1.5");
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("gate.wasserstein_iqr_max"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("gate.max_dcr_synthetic_rows"))
        );
    }

    #[test]
    fn partial_config_fills_defaults_and_rejects_unknown_fields() {
        let c: GateConfig = serde_json::from_str(r#"{"ks_max": 0.2}"#).unwrap();
        assert_eq!(c.ks_max, 0.2);
        assert_eq!(c.tv_max, 0.10);
        assert!(serde_json::from_str::<GateConfig>(r#"{"ks_maxx": 0.2}"#).is_err());
    }
}
