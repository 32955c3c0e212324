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
    /// P[d(s, R) < d(s, H)]. The threshold is the 95th percentile of that
    /// share over 200 random relabellings of training ∪ holdout (what the
    /// share looks like when nothing leaked, including the noise of the two
    /// reference sets that a plain binomial bound misses), capped so small
    /// batches cannot pass with a clearly training-leaning share. Default
    /// 0.55. Must be in [0.5, 1].
    pub dcr_share_cap: f64,
    /// Upper cap on the nearest-neighbour distance ratio threshold. NNDR of
    /// a record = (distance to its nearest training row) / (distance to the
    /// second nearest): near 0 means it sits on one real person rather than
    /// among several. The statistic is the share of synthetic rows whose
    /// NNDR is below the 5th percentile of fresh real (holdout) rows' NNDR,
    /// ≈ 0.05 for a generator that learned the population; the threshold is
    /// `min(0.05 + 2.326·√(0.0475·(1/n_s + 1/n_h)), nndr_share_cap)`.
    /// Default 0.10. Must be in [0.05, 1].
    pub nndr_share_cap: f64,
    /// Allowance on top of the holdout's exact-match share: synthetic rows
    /// may copy training rows only as often as fresh real rows coincide with
    /// them by chance, plus this margin. Default 0.001 (0.1 % of rows).
    /// Must be in [0, 1].
    pub exact_match_margin: f64,
    /// Allowance on top of the holdout's outlier-replication share: the
    /// share of synthetic rows that reproduce a real extreme (a numeric
    /// column's exact training minimum or maximum, or a category, held by
    /// fewer than `small_cell_min` training patients) may exceed the share
    /// of holdout rows that do only by this margin (and by more than
    /// sampling explains). Default 0.001 (0.1 % of rows). Must be in [0, 1].
    pub outlier_replication_margin: f64,
    /// Synthetic rows used for the distance-to-closest-record test; larger
    /// batches are subsampled (seeded) on the synthetic side only, because
    /// the exact nearest-neighbour scan costs rows × reference rows × columns.
    /// 5 000 keeps the binomial bound within ±1.2 % and the scan in seconds.
    /// Default 5000. Must be ≥ 100.
    pub max_dcr_synthetic_rows: usize,
    /// Largest total variation allowed between the 2-D contingency tables
    /// (joint distributions) of a pair of categorical columns in the
    /// synthetic batch and in the training data: catches generators that
    /// get every column right but break how columns co-occur. Looser than
    /// the per-column `tv_max` because a joint table has many more cells,
    /// so its sampling noise is larger. Default 0.15. Must be in (0, 1].
    pub contingency_tv_max: f64,
    /// Largest KS D (numeric column) or total variation (categorical
    /// column) allowed within one stratum of a configured conditional
    /// (`roles.conditionals`, e.g. HbA1c given diagnosis). Looser than
    /// `ks_max` because a stratum has fewer rows. For a numeric column the
    /// stratum's threshold is the larger of this and the KS D two samples of
    /// the stratum's sizes exceed by chance with probability 0.001
    /// (1.9495·√((n + m)/(n·m)), ≈ 0.39 at 50 rows a side), so small strata
    /// do not fail faithful batches at random. Default 0.15. Must be in
    /// (0, 1].
    pub conditional_ks_max: f64,
    /// Training rows a stratum of a conditional needs to be gated; smaller
    /// strata are listed as skipped (a KS D of a few dozen rows is mostly
    /// noise). Default 50. Must be ≥ 1.
    pub conditional_min_rows: usize,
    /// Largest allowed AUROC(train on real) − AUROC(train on synthetic),
    /// both measured on the holdout, for the utility target
    /// (`roles.target`), overall and within each subgroup: a model
    /// trained on the synthetic batch may lose at most this much
    /// discrimination. Default 0.05. Must be in [0, 1].
    pub utility_auroc_gap_max: f64,
    /// Labelled holdout rows a subgroup (`roles.subgroups`) needs for its
    /// own utility gap; with fewer, the AUROC's noise swamps a 0.05 gap and
    /// the subgroup is listed as skipped. Default 100. Must be ≥ 1.
    pub utility_min_subgroup_rows: usize,
    /// Labelled rows each utility model is fitted on: training and
    /// synthetic are subsampled (seeded) to the same
    /// `min(|R|, |S|, utility_max_fit_rows)` so neither model sees more
    /// data and the fit stays well under a second. Default 20000. Must be
    /// ≥ 100.
    pub utility_max_fit_rows: usize,
    /// Largest allowed 95 % upper bound on a membership-inference
    /// attacker's advantage max(TPR − FPR) at telling training records from
    /// holdout records using only the synthetic batch. 0 means the batch
    /// tells an attacker nothing about who was in the training data; 0.10
    /// (the default, from DESIGN.md) bounds how much better than a coin any
    /// threshold on the attacker's score can do. Must be in (0, 1].
    pub mia_advantage_max: f64,
    /// Training members and holdout non-members given to the
    /// membership-inference attackers (equal counts; the larger side is
    /// subsampled, seeded). Each record costs one scan of the synthetic and
    /// holdout tables, so this caps the operator's time; 2 000 per side keeps
    /// the bootstrap bound within about ±0.03 of the estimate. Chance alone
    /// gives an advantage of about 1.22·√(2/n) at n per side, so below
    /// roughly 1 000 records per side even a generator that leaks nothing
    /// cannot be shown to stay under 0.10. Default 2000. Must be ≥ 50.
    pub mia_max_records: usize,
    /// k of k-anonymity: a training equivalence class (rows with equal
    /// quasi-identifiers) smaller than k points at fewer than k real
    /// people. Default 5; use 11 for data released to the public (the
    /// small-cell rule of CMS and many registries). Must be ≥ 2.
    pub k_anonymity_k: usize,
    /// Allowance on top of the holdout's share of records that fall in a
    /// training class smaller than k: synthetic records may land there only
    /// as often as fresh real records do, plus this margin. Default 0.01.
    /// Must be in [0, 1].
    pub k_anonymity_margin: f64,
    /// Distinct l-diversity: a training class whose sensitive column takes
    /// fewer than l distinct values (missing counts as a value) reveals that
    /// value to anyone who places a person in the class. Default 2. Must be
    /// ≥ 1 (1 disables the check in effect).
    pub l_diversity_min: usize,
    /// Allowance on top of the holdout's share of matched records in
    /// classes below l. Default 0.01. Must be in [0, 1].
    pub l_diversity_margin: f64,
    /// Largest allowed 95 % upper bound on the singling-out risk
    /// (a − c)/(1 − c), Anonymeter-style: how much more often predicates
    /// read off the synthetic batch isolate exactly one training record than
    /// one holdout record. Default 0.05. Must be in (0, 1].
    pub singling_out_risk_max: f64,
    /// Largest allowed 95 % upper bound on the linkability risk: how much
    /// more often the synthetic batch links the two halves of a training
    /// record's quasi-identifiers than a holdout record's. Default 0.05.
    /// Must be in (0, 1].
    pub linkability_risk_max: f64,
    /// Largest allowed 95 % upper bound on the attribute-inference risk per
    /// sensitive column: how much more often the nearest synthetic record
    /// on the quasi-identifiers reveals a training record's value than a
    /// holdout record's. Default 0.10. Must be in (0, 1].
    pub inference_risk_max: f64,
    /// Attacks per Anonymeter-style risk (singling-out queries, linkability
    /// and inference targets on each of training and holdout, fewer when a
    /// table is smaller), seeded. The gate tests the *upper* bound of the
    /// risk, whose width grows as 1/(1 − c) with the control success rate c:
    /// at Anonymeter's default of 500 a generator that leaks nothing has an
    /// upper bound of ≈ 0.06 at c = 0.2 and ≈ 0.12 at c = 0.5, above the
    /// 0.05 / 0.10 limits, so it would fail most batches. 5 000 brings those
    /// to ≈ 0.02 and ≈ 0.04 (Wilson half-width ≤ 0.014 per rate) for about
    /// 2 s of CPU at 50 000 rows. Default 5000. Must be ≥ 10.
    pub anonymeter_n_attacks: usize,
    /// An inferred numeric secret counts as correct when
    /// |guess − secret| ≤ tolerance · |secret| (categorical secrets must
    /// match exactly). Default 0.05, as Anonymeter. Must be in [0, 1].
    pub inference_tolerance: f64,
    /// The chance that fresh real rows, given as the synthetic batch, fail
    /// any gated result of it: the gate's false-fail rate for a perfect
    /// generator. Split between the operators (see `gate::calibration`);
    /// each operator's noise allowance is the quantile of its null at its
    /// share. Default 0.04: the target is 5 % on real tables, and the point
    /// of margin covers what is still approximate (normal tails of the DCR
    /// relabellings, the replicates' own Monte Carlo error). Must be in
    /// (0, 0.5].
    pub false_fail_rate: f64,
    /// Largest relative loss of share allowed for a declared subgroup
    /// (`roles.subgroups`): 0.5 means a group may not lose half of its
    /// share of the batch (a group that vanished scores 1). Default 0.5.
    /// Must be in (0, 1].
    pub subgroup_loss_max: f64,
    /// Resampling replicates behind the fidelity operators' noise
    /// allowances (each one re-scores the whole fidelity family on a random
    /// split of training ∪ holdout). 200 estimate the family's 98th
    /// percentile to within about ±1 % of false fails. Default 200. Must be
    /// ≥ 20.
    pub null_replicates: usize,
    /// Small-cell threshold: the fewest real records (training or holdout
    /// rows; patients where the table has privacy units) behind any count
    /// that leaves the gate by name or number. Subgroup levels held by
    /// fewer training rows are pooled (`subgroup_share`); categories held
    /// by fewer training patients are the rare real categories
    /// `outlier_replication` guards; and reports (HTML, JSON, binder
    /// evidence) show a real count below it only as "<k", never exactly.
    /// Default 11 (the CMS cell-size rule). Must be at least 2.
    pub small_cell_min: usize,
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
            nndr_share_cap: 0.10,
            exact_match_margin: 0.001,
            outlier_replication_margin: 0.001,
            max_dcr_synthetic_rows: 5000,
            contingency_tv_max: 0.15,
            conditional_ks_max: 0.15,
            conditional_min_rows: 50,
            utility_auroc_gap_max: 0.05,
            utility_min_subgroup_rows: 100,
            utility_max_fit_rows: 20_000,
            mia_advantage_max: 0.10,
            mia_max_records: 2000,
            k_anonymity_k: 5,
            k_anonymity_margin: 0.01,
            l_diversity_min: 2,
            l_diversity_margin: 0.01,
            singling_out_risk_max: 0.05,
            linkability_risk_max: 0.05,
            inference_risk_max: 0.10,
            anonymeter_n_attacks: 5000,
            inference_tolerance: 0.05,
            false_fail_rate: 0.04,
            subgroup_loss_max: 0.5,
            null_replicates: 200,
            small_cell_min: 11,
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
            "nndr_share_cap",
            self.nndr_share_cap,
            (0.05..=1.0).contains(&self.nndr_share_cap),
            "[0.05, 1]",
        );
        for (field, value) in [
            ("exact_match_margin", self.exact_match_margin),
            (
                "outlier_replication_margin",
                self.outlier_replication_margin,
            ),
        ] {
            check(field, value, (0.0..=1.0).contains(&value), "[0, 1]");
        }
        check(
            "contingency_tv_max",
            self.contingency_tv_max,
            open_unit(self.contingency_tv_max),
            "(0, 1]",
        );
        check(
            "conditional_ks_max",
            self.conditional_ks_max,
            open_unit(self.conditional_ks_max),
            "(0, 1]",
        );
        for (field, value) in [
            ("mia_advantage_max", self.mia_advantage_max),
            ("singling_out_risk_max", self.singling_out_risk_max),
            ("linkability_risk_max", self.linkability_risk_max),
            ("inference_risk_max", self.inference_risk_max),
        ] {
            check(field, value, open_unit(value), "(0, 1]");
        }
        for (field, value) in [
            ("k_anonymity_margin", self.k_anonymity_margin),
            ("l_diversity_margin", self.l_diversity_margin),
            ("inference_tolerance", self.inference_tolerance),
        ] {
            check(field, value, (0.0..=1.0).contains(&value), "[0, 1]");
        }
        check(
            "subgroup_loss_max",
            self.subgroup_loss_max,
            open_unit(self.subgroup_loss_max),
            "(0, 1]",
        );
        check(
            "false_fail_rate",
            self.false_fail_rate,
            self.false_fail_rate > 0.0 && self.false_fail_rate <= 0.5,
            "(0, 0.5]",
        );
        check(
            "utility_auroc_gap_max",
            self.utility_auroc_gap_max,
            (0.0..=1.0).contains(&self.utility_auroc_gap_max),
            "[0, 1]",
        );
        for (field, value, least) in [
            ("max_dcr_synthetic_rows", self.max_dcr_synthetic_rows, 100),
            ("conditional_min_rows", self.conditional_min_rows, 1),
            (
                "utility_min_subgroup_rows",
                self.utility_min_subgroup_rows,
                1,
            ),
            ("utility_max_fit_rows", self.utility_max_fit_rows, 100),
            ("mia_max_records", self.mia_max_records, 50),
            ("k_anonymity_k", self.k_anonymity_k, 2),
            ("l_diversity_min", self.l_diversity_min, 1),
            ("anonymeter_n_attacks", self.anonymeter_n_attacks, 10),
            ("null_replicates", self.null_replicates, 20),
            ("small_cell_min", self.small_cell_min, 2),
        ] {
            if value < least {
                problems.push(format!(
                    "gate.{field}: must be at least {least}, got {value}"
                ));
            }
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
        assert_eq!((c.contingency_tv_max, c.conditional_ks_max), (0.15, 0.15));
        assert_eq!(c.conditional_min_rows, 50);
        assert_eq!((c.mia_advantage_max, c.mia_max_records), (0.10, 2000));
        assert_eq!((c.k_anonymity_k, c.k_anonymity_margin), (5, 0.01));
        assert_eq!((c.l_diversity_min, c.l_diversity_margin), (2, 0.01));
        assert_eq!(
            (
                c.singling_out_risk_max,
                c.linkability_risk_max,
                c.inference_risk_max
            ),
            (0.05, 0.05, 0.10)
        );
        assert_eq!(
            (c.anonymeter_n_attacks, c.inference_tolerance),
            (5000, 0.05)
        );
        assert_eq!(
            (c.utility_auroc_gap_max, c.utility_min_subgroup_rows),
            (0.05, 100)
        );
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
            ..GateConfig::default()
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
        let c = GateConfig {
            contingency_tv_max: 0.0,
            conditional_ks_max: 1.5,
            conditional_min_rows: 0,
            utility_auroc_gap_max: -0.01,
            utility_min_subgroup_rows: 0,
            utility_max_fit_rows: 99,
            ..GateConfig::default()
        };
        let problems = c.validate();
        assert_eq!(problems.len(), 6, "{problems:?}");
        for field in [
            "contingency_tv_max",
            "conditional_ks_max",
            "conditional_min_rows",
            "utility_auroc_gap_max",
            "utility_min_subgroup_rows",
            "utility_max_fit_rows",
        ] {
            assert!(
                problems
                    .iter()
                    .any(|p| p.starts_with(&format!("gate.{field}:"))),
                "{field}: {problems:?}"
            );
        }
    }

    #[test]
    fn lists_every_privacy_problem() {
        let c = GateConfig {
            mia_advantage_max: 0.0,
            mia_max_records: 10,
            k_anonymity_k: 1,
            k_anonymity_margin: -0.1,
            l_diversity_min: 0,
            l_diversity_margin: 2.0,
            singling_out_risk_max: f64::NAN,
            linkability_risk_max: 1.5,
            inference_risk_max: 0.0,
            anonymeter_n_attacks: 0,
            inference_tolerance: f64::INFINITY,
            ..GateConfig::default()
        };
        let problems = c.validate();
        assert_eq!(problems.len(), 11, "{problems:?}");
        assert!(problems.contains(&"gate.k_anonymity_k: must be at least 2, got 1".to_string()));
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("gate.singling_out_risk_max: must be in (0, 1]"))
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
