//! Conditional sampling for the copula: draws a cohort from the model itself,
//! not by filtering unconditional samples.
//!
//! Every condition is a box on the latent normal vector: a category is its
//! interval of `(0, 1)` mapped through `Φ⁻¹`, a numeric range is the interval
//! of quantile levels whose values round into the range, null is the null
//! interval of the column's missingness dimension. So the cohort's rows are
//! draws of `z ~ N(0, Σ)` restricted to the box:
//! * the constrained dimensions `C` follow a truncated multivariate normal: one
//!   dimension is sampled exactly by the inverse CDF; several by Gibbs sweeps
//!   of univariate truncated normals (each row's chain starts inside the box);
//! * the other dimensions follow the Gaussian conditional
//!   `z_R | z_C ~ N(Σ_RC Σ_CC⁻¹ z_C, Σ_RR − Σ_RC Σ_CC⁻¹ Σ_CR)`, exactly.
//!
//! The probability of the box (used to mix the strata of a stratified copula)
//! is exact for one dimension and a GHK estimate for several.

use nalgebra::DMatrix;
use rand::Rng;
use rand::distr::Open01;
use rand::rngs::StdRng;
use rand_distr::StandardNormal;

use super::{
    CopulaModel, Domain, LevelValue, Marginal, NumericMarginal, cumulative, round_to,
    std_normal_cdf, std_normal_inv_cdf, stream_rng,
};
use crate::generate::cohort::{Cohort, CohortError, Condition};
use crate::table::{ColumnValues, Table};

/// Gibbs sweeps per row when two or more latent dimensions are constrained.
/// Chains start inside the box from independent truncated draws; with the
/// moderate correlations of clinical tables 25 sweeps leave no trace of the
/// start (checked against rejection sampling in the tests).
const GIBBS_SWEEPS: usize = 25;

/// Draws of the GHK estimator of a multi-dimensional box probability.
const GHK_DRAWS: usize = 4000;

/// Relative half-width that turns a one-value condition on a continuous
/// column into a tiny range when only its probability is wanted (its
/// probability would otherwise be zero in every stratum alike).
const POINT_WIDTH: f64 = 1e-6;

/// One constrained latent dimension: `lo ≤ z[dim] ≤ hi` (infinite for open).
#[derive(Debug, Clone, Copy)]
struct Bound {
    dim: usize,
    lo: f64,
    hi: f64,
}

/// A cohort resolved against this model.
#[derive(Debug, Default)]
struct Resolved {
    bounds: Vec<Bound>,
    /// `(column index, code)`: a pooled rare label the cohort asked for.
    forced: Vec<(usize, u32)>,
    /// `(column index, lo, hi)`: numeric values are kept inside the range
    /// after rounding.
    ranges: Vec<(usize, f64, f64)>,
}

impl CopulaModel {
    /// Draws `n` rows of the cohort: every row meets every condition, and the
    /// other columns follow the model's distribution given the cohort.
    /// Deterministic per seed. A cohort the model cannot produce (a label never
    /// seen in training, a range outside the training range) is an error that
    /// names the column.
    pub fn sample_cohort(
        &self,
        n: usize,
        seed: u64,
        cohort: &Cohort,
    ) -> Result<Table, CohortError> {
        let resolved = self.resolve(cohort, false)?;
        if resolved.bounds.is_empty() && resolved.forced.is_empty() {
            return Ok(self.clamp_ranges(self.sample(n, seed), &resolved.ranges));
        }
        let z = self.conditional_latent(&resolved.bounds, n, seed);
        let table = self.decode_latent(&z, n, seed, &resolved.forced);
        Ok(self.clamp_ranges(table, &resolved.ranges))
    }

    /// Probability of the cohort under the model (its share of unconditional
    /// samples). Exact for a condition on one latent dimension, a GHK estimate
    /// (seeded, deterministic) for several.
    pub fn cohort_probability(&self, cohort: &Cohort, seed: u64) -> Result<f64, CohortError> {
        let resolved = self.resolve(cohort, true)?;
        let forced = resolved
            .forced
            .iter()
            .map(|&(i, code)| self.pooled_share(i, code))
            .product::<f64>();
        Ok(forced * self.box_probability(&resolved.bounds, seed))
    }

    /// Within-pool probability of a pooled rare label.
    fn pooled_share(&self, column: usize, code: u32) -> f64 {
        match &self.spec.columns[column].marginal {
            Marginal::Categorical(m) => m
                .pooled
                .iter()
                .find(|p| p.code == code)
                .map_or(0.0, |p| p.probability),
            Marginal::Numeric(_) => 1.0,
        }
    }

    fn resolve(&self, cohort: &Cohort, widen_points: bool) -> Result<Resolved, CohortError> {
        let mut out = Resolved::default();
        for (name, condition) in &cohort.conditions {
            let index = self
                .spec
                .columns
                .iter()
                .position(|c| &c.name == name)
                .ok_or_else(|| CohortError::UnknownColumn {
                    column: name.clone(),
                })?;
            match (&self.spec.columns[index].marginal, condition) {
                (Marginal::Categorical(m), Condition::Label(label)) => {
                    let unknown = || CohortError::UnknownLabel {
                        column: name.clone(),
                        label: label.clone(),
                    };
                    let code = m
                        .dictionary
                        .iter()
                        .position(|l| l == label)
                        .ok_or_else(unknown)? as u32;
                    let level = match m
                        .levels
                        .iter()
                        .position(|l| l.value == LevelValue::Code(code))
                    {
                        Some(level) => level,
                        None if m.pooled.iter().any(|p| p.code == code) => {
                            out.forced.push((index, code));
                            m.levels
                                .iter()
                                .position(|l| l.value == LevelValue::Pooled)
                                .ok_or_else(unknown)?
                        }
                        None => return Err(unknown()),
                    };
                    push_level(&mut out, m.dim, &m.levels, level);
                }
                (Marginal::Categorical(m), Condition::Null) => {
                    let level = m
                        .levels
                        .iter()
                        .position(|l| l.value == LevelValue::Null)
                        .ok_or_else(|| CohortError::NeverNull {
                            column: name.clone(),
                        })?;
                    push_level(&mut out, m.dim, &m.levels, level);
                }
                (Marginal::Categorical(_), Condition::Between { .. }) => {
                    return Err(CohortError::range_on_categorical(name));
                }
                (Marginal::Numeric(_), Condition::Label(_)) => {
                    return Err(CohortError::label_on_numeric(name));
                }
                (Marginal::Numeric(m), Condition::Null) => {
                    if m.knots.is_empty() {
                        continue; // always null
                    }
                    let j = m.null_dim.ok_or_else(|| CohortError::NeverNull {
                        column: name.clone(),
                    })?;
                    out.bounds.push(Bound {
                        dim: j,
                        lo: f64::NEG_INFINITY,
                        hi: std_normal_inv_cdf(m.null_rate),
                    });
                }
                (Marginal::Numeric(m), range @ Condition::Between { .. }) => {
                    let (lo, hi) = range.checked_range(name)?.expect("a range");
                    resolve_range(&mut out, index, name, m, lo, hi, widen_points)?;
                }
            }
        }
        Ok(out)
    }

    /// Latent rows (column-major, `n × d`) drawn from `N(0, Σ)` inside the box.
    fn conditional_latent(&self, bounds: &[Bound], n: usize, seed: u64) -> Vec<f64> {
        let d = self.spec.n_dims;
        let sigma = &self.factor * self.factor.transpose();
        let c_dims: Vec<usize> = bounds.iter().map(|b| b.dim).collect();
        let r_dims: Vec<usize> = (0..d).filter(|i| !c_dims.contains(i)).collect();
        let c = c_dims.len();
        let sub = |rows: &[usize], cols: &[usize]| {
            DMatrix::from_fn(rows.len(), cols.len(), |i, j| sigma[(rows[i], cols[j])])
        };
        let s_cc = sub(&c_dims, &c_dims);
        let precision = invert_spd(&s_cc);

        // Constrained dimensions, row by row (one sequential stream).
        let mut rng = stream_rng(seed, Domain::Conditional, 0);
        let mut z_c = DMatrix::<f64>::zeros(n, c);
        let mut row = vec![0.0; c];
        for r in 0..n {
            for (k, b) in bounds.iter().enumerate() {
                row[k] = truncated_normal(0.0, 1.0, b.lo, b.hi, &mut rng);
            }
            let sweeps = if c > 1 { GIBBS_SWEEPS } else { 0 };
            for _ in 0..sweeps {
                for (k, b) in bounds.iter().enumerate() {
                    let p_kk = precision[(k, k)];
                    let shift: f64 = (0..c)
                        .filter(|&j| j != k)
                        .map(|j| precision[(k, j)] * row[j])
                        .sum();
                    let mean = -shift / p_kk;
                    row[k] = truncated_normal(mean, 1.0 / p_kk.sqrt(), b.lo, b.hi, &mut rng);
                }
            }
            for k in 0..c {
                z_c[(r, k)] = row[k];
            }
        }

        // Free dimensions from the Gaussian conditional.
        let mut z = vec![0.0; n * d];
        for (k, &dim) in c_dims.iter().enumerate() {
            z[dim * n..(dim + 1) * n].copy_from_slice(z_c.column(k).as_slice());
        }
        if r_dims.is_empty() {
            return z;
        }
        let s_rc = sub(&r_dims, &c_dims);
        let gain = &s_rc * &precision; // r × c
        let cond_cov = sub(&r_dims, &r_dims) - &gain * s_rc.transpose();
        let factor = psd_factor(&cond_cov);
        let mut w = DMatrix::<f64>::zeros(n, r_dims.len());
        for (k, &dim) in r_dims.iter().enumerate() {
            let mut rng = stream_rng(seed, Domain::Conditional, 1 + dim as u64);
            for r in 0..n {
                w[(r, k)] = rng.sample(StandardNormal);
            }
        }
        let z_r = &z_c * gain.transpose() + w * factor.transpose();
        for (k, &dim) in r_dims.iter().enumerate() {
            z[dim * n..(dim + 1) * n].copy_from_slice(z_r.column(k).as_slice());
        }
        z
    }

    /// `P(z_C in box)` under `N(0, Σ_CC)`.
    fn box_probability(&self, bounds: &[Bound], seed: u64) -> f64 {
        match bounds {
            [] => 1.0,
            [b] => interval_probability(b.lo, b.hi),
            _ => {
                let sigma = &self.factor * self.factor.transpose();
                let dims: Vec<usize> = bounds.iter().map(|b| b.dim).collect();
                let s = DMatrix::from_fn(dims.len(), dims.len(), |i, j| sigma[(dims[i], dims[j])]);
                ghk(&s, bounds, seed)
            }
        }
    }

    /// Keeps rounded numeric values of range-conditioned columns in the range.
    fn clamp_ranges(&self, mut table: Table, ranges: &[(usize, f64, f64)]) -> Table {
        for &(index, lo, hi) in ranges {
            if let ColumnValues::Numeric(v) = &mut table.columns[index].values {
                v.iter_mut()
                    .filter(|x| !x.is_nan())
                    .for_each(|x| *x = x.clamp(lo, hi));
            }
        }
        table
    }
}

/// Constrains a categorical column's dimension to one level's interval.
fn push_level(out: &mut Resolved, dim: Option<usize>, levels: &[super::Level], level: usize) {
    let Some(dim) = dim else {
        return; // a single level: every row has it
    };
    let upper = cumulative(levels.iter().map(|l| l.probability));
    let u_lo = if level == 0 { 0.0 } else { upper[level - 1] };
    let u_hi = upper[level];
    out.bounds.push(Bound {
        dim,
        lo: z_of(u_lo),
        hi: z_of(u_hi),
    });
}

/// Resolves `lo ≤ x ≤ hi` on a numeric column to latent bounds.
fn resolve_range(
    out: &mut Resolved,
    index: usize,
    name: &str,
    m: &NumericMarginal,
    lo: f64,
    hi: f64,
    widen_points: bool,
) -> Result<(), CohortError> {
    let Some((&min, &max)) = m.knots.first().zip(m.knots.last()) else {
        return Err(CohortError::Impossible {
            reason: format!("column `{name}` is always null in the model"),
        });
    };
    let outside = || CohortError::OutsideRange {
        column: name.to_string(),
        lo,
        hi,
        min,
        max,
    };
    // Values the model can emit in [lo, hi], given its precision.
    let (glo, ghi, half) = match m.decimals {
        Some(d) => {
            let scale = 10f64.powi(d as i32);
            let glo = round_to((lo * scale - 1e-9).ceil() / scale, d);
            let ghi = round_to((hi * scale + 1e-9).floor() / scale, d);
            (glo, ghi, 0.5 / scale)
        }
        None if widen_points && lo == hi => {
            let w = POINT_WIDTH * lo.abs().max(1.0);
            (lo, hi, w)
        }
        None => (lo, hi, 0.0),
    };
    if glo > ghi || ghi < min || glo > max {
        return Err(outside());
    }
    let raw_lo = (glo - half).max(min);
    let raw_hi = (ghi + half).min(max);
    out.ranges.push((index, glo.max(min), ghi.min(max)));
    if let Some(j) = m.null_dim {
        out.bounds.push(Bound {
            dim: j,
            lo: std_normal_inv_cdf(m.null_rate),
            hi: f64::INFINITY,
        });
    }
    match m.value_dim {
        Some(j) => out.bounds.push(Bound {
            dim: j,
            lo: z_of(lower_level(&m.knots, raw_lo)),
            hi: z_of(upper_level(&m.knots, raw_hi)),
        }),
        // A constant column: in range or not at all.
        None if (raw_lo..=raw_hi).contains(&min) => {}
        None => return Err(outside()),
    }
    Ok(())
}

/// `inf { u : Q(u) ≥ x }` for the piecewise-linear quantile function on `knots`.
fn lower_level(knots: &[f64], x: f64) -> f64 {
    let k = knots.len();
    if k < 2 || x <= knots[0] {
        return 0.0;
    }
    for i in 0..k - 1 {
        if knots[i + 1] >= x {
            let t = (x - knots[i]) / (knots[i + 1] - knots[i]);
            return (i as f64 + t) / (k - 1) as f64;
        }
    }
    1.0
}

/// `sup { u : Q(u) ≤ x }`.
fn upper_level(knots: &[f64], x: f64) -> f64 {
    let k = knots.len();
    if k < 2 || x >= knots[k - 1] {
        return 1.0;
    }
    for i in (0..k - 1).rev() {
        if knots[i] <= x {
            let t = (x - knots[i]) / (knots[i + 1] - knots[i]);
            return (i as f64 + t) / (k - 1) as f64;
        }
    }
    0.0
}

/// `Φ⁻¹(u)` with the open ends mapped to ±∞.
fn z_of(u: f64) -> f64 {
    if u <= 0.0 {
        f64::NEG_INFINITY
    } else if u >= 1.0 {
        f64::INFINITY
    } else {
        std_normal_inv_cdf(u)
    }
}

/// `Φ(hi) − Φ(lo)`, computed in the lower tail for accuracy.
fn interval_probability(lo: f64, hi: f64) -> f64 {
    if lo > 0.0 {
        return interval_probability(-hi, -lo);
    }
    (std_normal_cdf(hi) - std_normal_cdf(lo)).max(0.0)
}

/// A draw of `N(mean, sd²)` restricted to `[lo, hi]` by the inverse CDF. The
/// interval is reflected into the lower tail, where `Φ` keeps its relative
/// precision, so boxes far out in a tail still sample correctly.
fn truncated_normal(mean: f64, sd: f64, lo: f64, hi: f64, rng: &mut StdRng) -> f64 {
    let a = (lo - mean) / sd;
    let b = (hi - mean) / sd;
    mean + sd * standard_truncated(a, b, rng)
}

fn standard_truncated(a: f64, b: f64, rng: &mut StdRng) -> f64 {
    if a >= b {
        return a;
    }
    if a > 0.0 {
        return -standard_truncated(-b, -a, rng);
    }
    let pa = std_normal_cdf(a);
    let pb = std_normal_cdf(b);
    if pb <= pa {
        // Both bounds beyond f64's reach of Φ: the mass sits at the bound nearest 0.
        return if b.is_finite() { b } else { a };
    }
    let v: f64 = rng.sample(Open01);
    std_normal_inv_cdf(pa + v * (pb - pa)).clamp(a, b)
}

/// Inverse of a small symmetric positive definite matrix (a principal block
/// of a correlation matrix), with a ridge if rounding made it singular.
fn invert_spd(m: &DMatrix<f64>) -> DMatrix<f64> {
    let n = m.nrows();
    for ridge in [0.0, 1e-10, 1e-8, 1e-6] {
        let a = m + DMatrix::<f64>::identity(n, n) * ridge;
        if let Some(ch) = a.cholesky() {
            return ch.inverse();
        }
    }
    DMatrix::identity(n, n)
}

/// A factor `L` with `L Lᵀ ≈ m` for a positive semi-definite `m` (a
/// conditional covariance may be singular when columns duplicate each other).
fn psd_factor(m: &DMatrix<f64>) -> DMatrix<f64> {
    let sym = (m + m.transpose()) * 0.5;
    let eigen = sym.symmetric_eigen();
    let roots = eigen.eigenvalues.map(|l| l.max(0.0).sqrt());
    &eigen.eigenvectors * DMatrix::from_diagonal(&roots)
}

/// GHK estimate of `P(lo ≤ z ≤ hi)` for `z ~ N(0, s)`: sequential sampling
/// along the Cholesky factor, weighting each draw by the conditional interval
/// probabilities. Unbiased and, unlike counting hits, never zero for a box of
/// positive probability.
fn ghk(s: &DMatrix<f64>, bounds: &[Bound], seed: u64) -> f64 {
    let c = bounds.len();
    let l = match (s + DMatrix::<f64>::identity(c, c) * 1e-12).cholesky() {
        Some(ch) => ch.l(),
        None => psd_factor(s),
    };
    let mut rng = stream_rng(seed, Domain::Conditional, u64::MAX);
    let mut total = 0.0;
    let mut e = vec![0.0; c];
    for _ in 0..GHK_DRAWS {
        let mut weight = 1.0;
        for i in 0..c {
            let shift: f64 = (0..i).map(|j| l[(i, j)] * e[j]).sum();
            let diag = l[(i, i)].max(1e-12);
            let a = (bounds[i].lo - shift) / diag;
            let b = (bounds[i].hi - shift) / diag;
            weight *= interval_probability(a, b);
            if weight == 0.0 {
                break;
            }
            e[i] = standard_truncated(a, b, &mut rng);
        }
        total += weight;
    }
    total / GHK_DRAWS as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::copula::{CopulaConfig, fit};
    use crate::table::Column;
    use rand::SeedableRng;

    /// Bivariate normal (x, y) with correlation `rho`; `grp` = "hi" when y > 0.
    fn bivariate(n: usize, rho: f64, seed: u64) -> Table {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut x = Vec::with_capacity(n);
        let mut g = Vec::with_capacity(n);
        for _ in 0..n {
            let a: f64 = rng.sample(StandardNormal);
            let b: f64 = rng.sample(StandardNormal);
            let y = rho * a + (1.0 - rho * rho).sqrt() * b;
            x.push(a);
            g.push(Some(if y > 0.0 { "hi" } else { "lo" }));
        }
        Table::new(vec![
            Column::numeric("x", x),
            Column::categorical("grp", &g),
        ])
    }

    fn numbers(t: &Table, name: &str) -> Vec<f64> {
        match &t.column(name).unwrap().values {
            ColumnValues::Numeric(v) => v.clone(),
            _ => panic!("numeric"),
        }
    }

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    /// Closed form: for standard bivariate normal (X, Y) with correlation ρ,
    /// E[X | Y > 0] = ρ·φ(0)/P(Y > 0) = ρ·√(2/π).
    #[test]
    fn category_condition_matches_the_closed_form_conditional_mean() {
        let rho = 0.7;
        let model = fit(&bivariate(40_000, rho, 1), &CopulaConfig::default(), 3).unwrap();
        let cohort = Cohort {
            conditions: vec![("grp".into(), Condition::Label("hi".into()))],
        };
        let s = model.sample_cohort(40_000, 9, &cohort).unwrap();
        assert!((0..s.n_rows()).all(|r| cohort.matches(&s, r)));
        let expected = rho * (2.0 / std::f64::consts::PI).sqrt();
        let got = mean(&numbers(&s, "x"));
        assert!((got - expected).abs() < 0.03, "{got} vs {expected}");
        let p = model.cohort_probability(&cohort, 1).unwrap();
        assert!((p - 0.5).abs() < 0.01, "{p}");
    }

    /// A numeric range condition gives the other column its conditional share:
    /// P(Y > 0 | X > 1) for ρ = 0.7 is P(Y > 0, X > 1) / P(X > 1); by the
    /// bivariate normal orthant formula with a shifted bound this is ≈ 0.906
    /// (computed here by one-dimensional quadrature, independent of the code
    /// under test).
    #[test]
    fn range_condition_matches_quadrature() {
        let rho: f64 = 0.7;
        let model = fit(&bivariate(40_000, rho, 2), &CopulaConfig::default(), 4).unwrap();
        let cohort = Cohort {
            conditions: vec![("x".into(), Condition::Between { lo: 1.0, hi: 10.0 })],
        };
        let s = model.sample_cohort(20_000, 5, &cohort).unwrap();
        let x = numbers(&s, "x");
        assert!(x.iter().all(|&v| v >= 1.0));
        let grp = s.column("grp").unwrap();
        let hi = (0..s.n_rows())
            .filter(|&r| grp.label(r) == Some("hi"))
            .count() as f64
            / s.n_rows() as f64;
        // ∫_1^∞ φ(x) Φ(ρx/√(1−ρ²)) dx / (1 − Φ(1)), midpoint rule.
        let (mut num, step): (f64, f64) = (0.0, 1e-4);
        let mut t: f64 = 1.0 + step / 2.0;
        while t < 9.0 {
            let phi = (-t * t / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
            num += phi * std_normal_cdf(rho * t / (1.0 - rho * rho).sqrt()) * step;
            t += step;
        }
        let expected = num / (1.0 - std_normal_cdf(1.0));
        assert!((hi - expected).abs() < 0.02, "{hi} vs {expected}");
    }

    /// Several conditions at once agree with rejection sampling from the same
    /// model (the definition of the conditional distribution).
    #[test]
    fn several_conditions_agree_with_rejection_from_the_same_model() {
        let mut rng = StdRng::seed_from_u64(11);
        let n = 30_000;
        let (mut age, mut lab, mut sex, mut dx) = (vec![], vec![], vec![], vec![]);
        for _ in 0..n {
            let a: f64 = rng.sample(StandardNormal);
            let b: f64 = rng.sample(StandardNormal);
            let c: f64 = rng.sample(StandardNormal);
            let years = (60.0 + 12.0 * a).round().clamp(18.0, 95.0);
            age.push(years);
            sex.push(Some(if b > 0.2 { "F" } else { "M" }));
            let risk = 0.6 * a + 0.3 * b + 0.5 * c;
            dx.push(Some(if risk > 0.8 {
                "E11"
            } else if risk > 0.0 {
                "I10"
            } else {
                "Z00"
            }));
            lab.push((5.5 + 1.2 * risk + 0.3 * rng.sample::<f64, _>(StandardNormal)) * 10.0);
        }
        let lab: Vec<f64> = lab.iter().map(|x| (x.round()) / 10.0).collect();
        let train = Table::new(vec![
            Column::numeric("age", age),
            Column::categorical("sex", &sex),
            Column::categorical("dx", &dx),
            Column::numeric("hba1c", lab),
        ]);
        let model = fit(&train, &CopulaConfig::default(), 1).unwrap();
        let cohort = Cohort {
            conditions: vec![
                ("sex".into(), Condition::Label("F".into())),
                ("dx".into(), Condition::Label("E11".into())),
                ("age".into(), Condition::Between { lo: 50.0, hi: 70.0 }),
            ],
        };
        let conditional = model.sample_cohort(5_000, 2, &cohort).unwrap();
        assert_eq!(conditional.n_rows(), 5_000);
        assert!((0..5_000).all(|r| cohort.matches(&conditional, r)));
        let pool = model.sample(400_000, 3);
        let rows: Vec<usize> = (0..pool.n_rows())
            .filter(|&r| cohort.matches(&pool, r))
            .collect();
        assert!(rows.len() > 3_000, "rejection kept {}", rows.len());
        let rejected = pool.take(&rows);
        let ks = |name: &str| {
            crate::stats::ks_two_sample(&numbers(&conditional, name), &numbers(&rejected, name))
                .unwrap()
                .statistic
        };
        let d = ks("hba1c");
        assert!(d < 0.05, "hba1c KS {d}");
        let d_age = ks("age");
        assert!(d_age < 0.05, "age KS {d_age}");
        let share = rows.len() as f64 / pool.n_rows() as f64;
        let p = model.cohort_probability(&cohort, 4).unwrap();
        assert!(
            (p - share).abs() < 0.1 * share,
            "GHK {p} vs rejection {share}"
        );
    }

    #[test]
    fn rare_pooled_labels_and_nulls_can_be_asked_for() {
        let n = 2_000;
        let labels: Vec<Option<String>> = (0..n)
            .map(|i| match i % 100 {
                0 => Some("rare".to_string()),
                1..=3 => None,
                k => Some(format!("c{}", k % 3)),
            })
            .collect();
        let t = Table::new(vec![
            Column::categorical("code", &labels),
            Column::numeric("v", (0..n).map(|i| (i % 7) as f64).collect()),
        ]);
        let config = CopulaConfig {
            max_categories: 2,
            ..CopulaConfig::default()
        };
        let model = fit(&t, &config, 1).unwrap();
        for condition in [Condition::Label("rare".into()), Condition::Null] {
            let cohort = Cohort {
                conditions: vec![("code".into(), condition)],
            };
            let s = model.sample_cohort(300, 1, &cohort).unwrap();
            assert!((0..300).all(|r| cohort.matches(&s, r)), "{cohort:?}");
        }
        let p = model
            .cohort_probability(
                &Cohort {
                    conditions: vec![("code".into(), Condition::Label("rare".into()))],
                },
                1,
            )
            .unwrap();
        assert!((p - 0.01).abs() < 0.002, "{p}");
    }

    #[test]
    fn impossible_cohorts_are_errors_naming_the_column() {
        let t = bivariate(500, 0.5, 3);
        let model = fit(&t, &CopulaConfig::default(), 1).unwrap();
        let one = |column: &str, condition: Condition| Cohort {
            conditions: vec![(column.into(), condition)],
        };
        let err = |c: Cohort| model.sample_cohort(10, 1, &c).unwrap_err();
        assert!(matches!(
            err(one("grp", Condition::Label("zz".into()))),
            CohortError::UnknownLabel { .. }
        ));
        assert!(matches!(
            err(one("x", Condition::Between { lo: 50.0, hi: 60.0 })),
            CohortError::OutsideRange { .. }
        ));
        assert!(matches!(
            err(one("x", Condition::Label("a".into()))),
            CohortError::WrongKind { .. }
        ));
        assert!(matches!(
            err(one("grp", Condition::Null)),
            CohortError::NeverNull { .. }
        ));
        assert!(matches!(
            err(one("nope", Condition::Null)),
            CohortError::UnknownColumn { .. }
        ));
    }

    #[test]
    fn integer_point_conditions_and_determinism() {
        let mut rng = StdRng::seed_from_u64(5);
        let ages: Vec<f64> = (0..3_000)
            .map(|_| (50.0 + 10.0 * rng.sample::<f64, _>(StandardNormal)).round())
            .collect();
        let t = Table::new(vec![
            Column::numeric("age", ages.clone()),
            Column::numeric(
                "w",
                ages.iter().map(|a| a * 1.5 + rng.random::<f64>()).collect(),
            ),
        ]);
        let model = fit(&t, &CopulaConfig::default(), 1).unwrap();
        let cohort = Cohort {
            conditions: vec![("age".into(), Condition::Between { lo: 57.0, hi: 57.0 })],
        };
        let a = model.sample_cohort(500, 7, &cohort).unwrap();
        assert!(numbers(&a, "age").iter().all(|&x| x == 57.0));
        let w = mean(&numbers(&a, "w"));
        assert!((w - 57.0 * 1.5 - 0.5).abs() < 3.0, "{w}");
        let b = model.sample_cohort(500, 7, &cohort).unwrap();
        assert_eq!(numbers(&a, "w"), numbers(&b, "w"));
    }
}
