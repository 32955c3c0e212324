//! One column of a window against its reference: a significance test and
//! effect sizes, and which of them decided.
//!
//! Why both: on a large window every column is "significant" (p-values
//! shrink with n), and on a small one an effect size is mostly noise. So
//! every column gets a test (KS for numeric values, chi² for categories,
//! a two-proportion z for null rates and two-category columns) whose p-value
//! goes into Benjamini–Hochberg, and effect sizes that say how big the
//! change is: on small windows the test's own distance (KS D, total
//! variation, difference of shares), on large windows PSI, Jensen–Shannon
//! (bits), Wasserstein-1 / reference std, null-rate change and unseen share.
//! Each effect is judged against its threshold after subtracting what it
//! would be with no drift at these sample sizes (its noise level, which
//! grows as n shrinks), so the floor a small window must clear is higher.

use serde::{Deserialize, Serialize};
use statrs::function::erf::erfc;

use super::profile::{CategoricalProfile, ColumnProfile, NumericProfile, WindowColumn};
use crate::stats::{
    chi_square_homogeneity, jensen_shannon, kolmogorov_sf, ks_statistic_sorted, psi_counts,
    total_variation, wasserstein1_sorted,
};
use crate::table::Column;
use crate::topology::DriftConfig;

/// E[sup |Brownian bridge|] = √(π/2)·ln 2 (Kolmogorov distribution mean):
/// E[D] ≈ this · √(1/n + 1/N) for two samples with no drift.
const KS_NULL_MEAN: f64 = 0.868_731_160_636_159_4;
/// √(2/π) = E|Z| for a standard normal Z.
const MEAN_ABS_NORMAL: f64 = 0.797_884_560_802_865_4;
/// Cells of the chi² test expected to get fewer window rows than this are
/// pooled (the χ² approximation is poor for small expected counts).
const CHI2_MIN_EXPECTED: f64 = 5.0;

/// One effect size of a test, with the threshold it is judged against.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Effect {
    /// `ks`, `tv`, `proportion_diff`, `psi`, `js`, `wasserstein_sigma`,
    /// `null_rate`, `unseen_share`, `spearman_diff`, `joint`, `missing`.
    pub method: String,
    pub value: f64,
    pub threshold: f64,
    /// Expected value with no drift at these sample sizes.
    pub noise: f64,
}

impl Effect {
    fn new(method: &str, value: f64, threshold: f64, noise: f64) -> Effect {
        Effect {
            method: method.into(),
            value,
            threshold,
            noise,
        }
    }

    /// Effect above noise in units of the threshold: 1 = a shift of threshold size.
    pub fn score(&self) -> f64 {
        (self.value - self.noise) / self.threshold
    }

    /// The value the effect must reach to count as drift.
    pub fn floor(&self, floor_fraction: f64) -> f64 {
        floor_fraction * self.threshold + self.noise
    }
}

/// One hypothesis of a window: a column (or segment column, pair, joint
/// check) with its test, effects and the decision.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestResult {
    /// Column name, `a~b` for a correlation pair, `(joint)` for the joint check.
    pub column: String,
    /// `column=label` when the test ran within a segment.
    pub segment: Option<String>,
    /// `distribution`, `null_rate`, `correlation`, `joint` or `schema`.
    pub aspect: String,
    /// Significance test: `ks`, `chi2`, `two_proportion_z`, `fisher_z`, `mahalanobis`, `none`.
    pub test: String,
    pub p_value: f64,
    /// Benjamini–Hochberg adjusted p-value across all tests of the window.
    pub q_value: f64,
    pub rows: u64,
    pub reference_rows: u64,
    /// Every effect measured (all exported as metrics).
    pub effects: Vec<Effect>,
    /// The effect that decided (highest score).
    pub method: String,
    pub statistic: f64,
    pub threshold: f64,
    /// `floor_fraction · threshold + noise`: what `statistic` had to reach.
    pub floor: f64,
    pub score: f64,
    pub significant: bool,
    pub drifted: bool,
    /// `small` or `large` (which effect sizes were used), `any` for tests
    /// that do not depend on it (null rate, correlation, joint, schema).
    pub regime: String,
    /// Plain words: which method decided and why.
    pub reason: String,
}

impl TestResult {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        column: &str,
        segment: Option<&str>,
        aspect: &str,
        test: &str,
        p_value: f64,
        rows: u64,
        reference_rows: u64,
        effects: Vec<Effect>,
    ) -> TestResult {
        let best = effects
            .iter()
            .max_by(|a, b| a.score().total_cmp(&b.score()))
            .cloned()
            .unwrap_or_else(|| Effect::new("none", 0.0, 1.0, 0.0));
        TestResult {
            column: column.into(),
            segment: segment.map(str::to_string),
            aspect: aspect.into(),
            test: test.into(),
            p_value: if p_value.is_nan() { 1.0 } else { p_value },
            q_value: 1.0,
            rows,
            reference_rows,
            method: best.method.clone(),
            statistic: best.value,
            threshold: best.threshold,
            floor: best.noise,
            score: best.score(),
            effects,
            significant: false,
            drifted: false,
            regime: "any".into(),
            reason: String::new(),
        }
    }

    fn in_regime(mut self, large: bool) -> TestResult {
        self.regime = if large { "large" } else { "small" }.into();
        self
    }

    /// Applies the decision rule once the q-value is known.
    pub fn decide(&mut self, q_value: f64, alpha: f64, floor_fraction: f64) {
        self.q_value = q_value;
        self.floor += floor_fraction * self.threshold;
        self.significant = q_value <= alpha;
        let big_enough = self.statistic >= self.floor;
        self.drifted = self.significant && big_enough;
        let test = format!(
            "{} p={:.2e} (BH q={:.2e} {} {alpha})",
            self.test,
            self.p_value,
            q_value,
            if self.significant { "≤" } else { ">" }
        );
        let effect = format!(
            "{} {:.4} {} floor {:.4} (threshold {} × {floor_fraction} + noise {:.4} at n={})",
            self.method,
            self.statistic,
            if big_enough { "≥" } else { "<" },
            self.floor,
            self.threshold,
            self.floor - floor_fraction * self.threshold,
            self.rows
        );
        let regime = match self.regime.as_str() {
            "any" => String::new(),
            r => format!("{r} window: "),
        };
        self.reason = format!(
            "{regime}{test}; {effect} → {}",
            if self.drifted {
                "drift"
            } else if self.significant {
                "significant but too small to matter"
            } else {
                "within noise"
            }
        );
    }
}

/// p-value of the pooled two-proportion z test of x₁/n₁ against x₂/n₂.
pub fn two_proportion_z(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<(f64, f64)> {
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let pooled = (x1 + x2) as f64 / (n1f + n2f);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1f + 1.0 / n2f)).sqrt();
    let diff = x1 as f64 / n1f - x2 as f64 / n2f;
    if se == 0.0 {
        return Some((0.0, if diff == 0.0 { 1.0 } else { 0.0 }));
    }
    let z = diff / se;
    Some((z, erfc(z.abs() / std::f64::consts::SQRT_2)))
}

/// 1/n + 1/N: the variance scale of a difference between two samples.
fn inv(n: u64, reference: u64) -> f64 {
    1.0 / n.max(1) as f64 + 1.0 / reference.max(1) as f64
}

/// The window is large enough to be judged on effect sizes.
pub fn is_large(rows: u64, config: &DriftConfig) -> bool {
    rows >= config.large_window_rows as u64
}

/// A column the reference has but the window lacks, or of another kind:
/// the schema moved, which is drift whatever the data say.
pub fn schema_change(column: &str, segment: Option<&str>, what: &str, rows: u64) -> TestResult {
    TestResult::new(
        column,
        segment,
        "schema",
        "none",
        0.0,
        rows,
        0,
        vec![Effect::new(what, 1.0, 1.0, 0.0)],
    )
}

/// Every test of one column, appended to `out`.
pub fn column_tests(
    name: &str,
    segment: Option<&str>,
    profile: &ColumnProfile,
    column: Option<&Column>,
    config: &DriftConfig,
    out: &mut Vec<TestResult>,
) {
    let Some(column) = column else {
        out.push(schema_change(name, segment, "missing", 0));
        return;
    };
    let Some(window) = profile.window(column) else {
        out.push(schema_change(
            name,
            segment,
            "kind_changed",
            column.values.len() as u64,
        ));
        return;
    };
    match (profile, &window) {
        (
            ColumnProfile::Numeric(p),
            WindowColumn::Numeric {
                counts,
                sorted,
                nulls,
                rows,
            },
        ) => {
            null_rate_test(name, segment, p.nulls, p.rows, *nulls, *rows, config, out);
            numeric_test(name, segment, p, counts, sorted, *rows, config, out);
        }
        (
            ColumnProfile::Categorical(p),
            WindowColumn::Categorical {
                counts,
                nulls,
                rows,
            },
        ) => {
            null_rate_test(name, segment, p.nulls, p.rows, *nulls, *rows, config, out);
            categorical_test(name, segment, p, counts, *rows, config, out);
        }
        _ => out.push(schema_change(name, segment, "kind_changed", 0)),
    }
}

#[allow(clippy::too_many_arguments)]
fn null_rate_test(
    name: &str,
    segment: Option<&str>,
    ref_nulls: u64,
    ref_rows: u64,
    nulls: u64,
    rows: u64,
    config: &DriftConfig,
    out: &mut Vec<TestResult>,
) {
    if ref_nulls == 0 && nulls == 0 {
        return;
    }
    let Some((_, p)) = two_proportion_z(nulls, rows, ref_nulls, ref_rows) else {
        return;
    };
    let pooled = (ref_nulls + nulls) as f64 / (ref_rows + rows) as f64;
    let diff = (nulls as f64 / rows as f64 - ref_nulls as f64 / ref_rows as f64).abs();
    let noise = MEAN_ABS_NORMAL * (pooled * (1.0 - pooled) * inv(rows, ref_rows)).sqrt();
    out.push(TestResult::new(
        name,
        segment,
        "null_rate",
        "two_proportion_z",
        p,
        rows,
        ref_rows,
        vec![Effect::new("null_rate", diff, config.null_rate_max, noise)],
    ));
}

#[allow(clippy::too_many_arguments)]
fn numeric_test(
    name: &str,
    segment: Option<&str>,
    p: &NumericProfile,
    counts: &[u64],
    sorted: &[f64],
    rows: u64,
    config: &DriftConfig,
    out: &mut Vec<TestResult>,
) {
    let (n, big_n) = (sorted.len() as u64, p.non_null());
    let Some(d) = ks_statistic_sorted(sorted, &p.sketch.points) else {
        return; // all null on one side: the null-rate test speaks for it
    };
    let (nf, nr) = (n as f64, big_n as f64);
    let p_value = kolmogorov_sf((nf * nr / (nf + nr)).sqrt() * d);
    let scale = inv(n, big_n);
    let effects = if !is_large(rows, config) {
        vec![Effect::new(
            "ks",
            d,
            config.ks_max,
            KS_NULL_MEAN * scale.sqrt(),
        )]
    } else {
        let occupied = p.counts.iter().filter(|&&c| c > 0).count().max(2) as f64;
        let mut e = vec![
            Effect::new(
                "psi",
                psi_counts(&p.counts, counts).unwrap_or(0.0),
                config.psi_max,
                (occupied - 1.0) * scale,
            ),
            Effect::new(
                "js",
                jensen_shannon(&p.counts, counts).unwrap_or(0.0),
                config.js_max,
                (occupied - 1.0) / (8.0 * std::f64::consts::LN_2) * scale,
            ),
        ];
        if p.std > 0.0 {
            let w1 = wasserstein1_sorted(sorted, &p.sketch.points).unwrap_or(0.0);
            e.push(Effect::new(
                "wasserstein_sigma",
                w1 / p.std,
                config.wasserstein_sigma_max,
                MEAN_ABS_NORMAL * p.sketch.bridge_area() / p.std * scale.sqrt(),
            ));
        }
        e
    };
    out.push(
        TestResult::new(
            name,
            segment,
            "distribution",
            "ks",
            p_value,
            n,
            big_n,
            effects,
        )
        .in_regime(is_large(rows, config)),
    );
}

fn categorical_test(
    name: &str,
    segment: Option<&str>,
    p: &CategoricalProfile,
    counts: &[u64],
    rows: u64,
    config: &DriftConfig,
    out: &mut Vec<TestResult>,
) {
    let reference = p.reference_counts();
    let (n, big_n) = (counts.iter().sum::<u64>(), p.non_null());
    if n == 0 || big_n == 0 {
        return;
    }
    let scale = inv(n, big_n);
    let shares: Vec<f64> = reference.iter().map(|&c| c as f64 / big_n as f64).collect();
    let (test, p_value) = if p.is_binary() && counts[2] + counts[3] == 0 {
        let (_, pv) = two_proportion_z(counts[0], n, reference[0], big_n).unwrap_or((0.0, 1.0));
        ("two_proportion_z", pv)
    } else {
        // Pool cells too small for the χ² approximation into one.
        let (mut r, mut w) = (Vec::new(), Vec::new());
        let (mut pool_r, mut pool_w) = (0u64, 0u64);
        for (k, (&rc, &wc)) in reference.iter().zip(counts).enumerate() {
            if shares[k] * n as f64 >= CHI2_MIN_EXPECTED {
                r.push(rc);
                w.push(wc);
            } else {
                pool_r += rc;
                pool_w += wc;
            }
        }
        r.push(pool_r);
        w.push(pool_w);
        (
            "chi2",
            chi_square_homogeneity(&w, &r).map_or(1.0, |c| c.p_value),
        )
    };
    let tv_noise = 0.5
        * MEAN_ABS_NORMAL
        * shares
            .iter()
            .map(|s| (s * (1.0 - s) * scale).sqrt())
            .sum::<f64>();
    let tv = total_variation(&reference, counts).unwrap_or(0.0);
    let effects = if !is_large(rows, config) {
        if p.is_binary() {
            vec![Effect::new("proportion_diff", tv, config.tv_max, tv_noise)]
        } else {
            vec![Effect::new("tv", tv, config.tv_max, tv_noise)]
        }
    } else {
        let occupied = reference.iter().filter(|&&c| c > 0).count().max(2) as f64;
        let unseen = counts[counts.len() - 1] as f64 / n as f64;
        vec![
            Effect::new(
                "psi",
                psi_counts(&reference, counts).unwrap_or(0.0),
                config.psi_max,
                (occupied - 1.0) * scale,
            ),
            Effect::new(
                "js",
                jensen_shannon(&reference, counts).unwrap_or(0.0),
                config.js_max,
                (occupied - 1.0) / (8.0 * std::f64::consts::LN_2) * scale,
            ),
            Effect::new(
                "unseen_share",
                unseen,
                config.unseen_max,
                p.singletons as f64 / big_n as f64,
            ),
        ]
    };
    out.push(
        TestResult::new(
            name,
            segment,
            "distribution",
            test,
            p_value,
            n,
            big_n,
            effects,
        )
        .in_regime(is_large(rows, config)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_proportion_z_matches_statsmodels() {
        // statsmodels proportions_ztest([30, 50], [100, 100]):
        // z = −2.886751, p = 0.003892
        let (z, p) = two_proportion_z(30, 100, 50, 100).unwrap();
        assert!((z + 2.886_751).abs() < 1e-5, "{z}");
        assert!((p - 0.003_892).abs() < 1e-6, "{p}");
    }

    #[test]
    fn effect_floor_and_score() {
        let e = Effect::new("psi", 0.25, 0.2, 0.05);
        assert!((e.score() - 1.0).abs() < 1e-12);
        assert!((e.floor(0.5) - 0.15).abs() < 1e-12);
    }
}
