//! Anonymeter-style attacks: singling out, linkability and attribute
//! inference, the three re-identification risks of the Article 29 Working
//! Party's opinion on anonymisation, measured by running the attacks.
//!
//! Each attack uses the synthetic batch S as the attacker's only data and is
//! scored twice: against training records R (the people S was made from)
//! and against holdout records H (people S never saw). Success on H is what
//! the population's regularities alone give; only the excess on R is a
//! leak. Following Anonymeter (Giomi et al., PETS 2023), each success rate
//! is the centre of its 95 % Wilson interval and the risk is
//! `(a − c)/(1 − c)`, with the Wilson half-widths propagated to first order
//! (the gradient of the risk in a and c, added in quadrature), as
//! Anonymeter's `EvaluationResults.risk()`. Our numbers agree with
//! Anonymeter's formula exactly for given success counts (see the tests).
//!
//! What is gated differs from Anonymeter's reading on purpose: the
//! statistic is the risk itself (clipped at 0), and a batch fails only when
//! it exceeds the operator's limit (`*_risk_max`, the material risk) *and*
//! the attack's excess over the control is beyond chance: the noise
//! allowance is z(1 − α) standard errors of the difference a − c at the
//! control's rate (a two-proportion z test; `calibration::null_se`),
//! divided by 1 − c like the risk. Gating the upper
//! end of the interval, as before, asked a batch to prove its risk small;
//! when the control succeeds almost always (a rare positive class: c =
//! 0.984), 1 − c = 0.016 turns five chance successes into a risk of 0.08 and
//! an upper bound of 0.41, and fresh real rows failed. With the z test the
//! same five successes are 0.4 standard errors: noise. A real leak (the
//! attack right on every training target) is still far beyond it. Where we
//! differ from Anonymeter's attacks:
//! - singling out: when |R| ≠ |H| Anonymeter fits a correction for the
//!   control size; we subsample the larger of R and H (seeded) to the size
//!   of the smaller, like the DCR operator, so no model is needed;
//! - nearest neighbours: Gower distance as in `stats::distance` (numeric
//!   differences scaled by the synthetic column's range and capped at 1;
//!   missing equals missing) where Anonymeter scales by the range over both
//!   tables and counts missing vs missing as a mismatch; ties between
//!   equally near synthetic records are broken at random (S is shuffled,
//!   seeded; each linkability half with its own shuffle, so two halves
//!   that tie between many records do not link by index order), where
//!   Anonymeter takes numpy's `argsort` order;
//! - inference on a numeric secret: correct when
//!   |guess − secret| ≤ tolerance · |secret|; Anonymeter divides by the
//!   guess (which lets any negative guess succeed);
//! - we do not run Anonymeter's random-guess baseline (it does not enter
//!   the risk).
//!
//! The attacks, all on the declared quasi-identifiers (no result when none
//! are declared):
//! - singling out (multivariate): a predicate is built from a random
//!   synthetic record on 3 random quasi-identifiers (fewer if fewer are
//!   declared): `==` for categories, `≥ v` above the synthetic median and
//!   `≤ v` otherwise for numbers, `is missing` for a missing value; it is
//!   kept if it matches exactly one distinct synthetic QI tuple, until
//!   `anonymeter_n_attacks` distinct predicates are found or 100 attempts
//!   per wanted predicate were made (fewer when the synthetic batch has so
//!   few distinct tuples that ten draws per possible predicate suffice).
//!   Success: it matches exactly one distinct QI tuple of R (resp. H); R, H
//!   and S are deduplicated on the QIs first, as Anonymeter does. Rates are
//!   over `anonymeter_n_attacks` even when fewer predicates were found, as
//!   in Anonymeter: the risk then measures how many people the batch lets an
//!   attacker single out, not how reliable each predicate is, so with coarse
//!   QIs (a few hundred predicates at most) even a copy of R scores low here
//!   and is caught by k-anonymity risk and membership inference instead;
//! - linkability: the quasi-identifiers are split into halves (declared
//!   order, first ⌊n/2⌋ and the rest); a target is linked when its nearest
//!   synthetic record on the first half is also its nearest on the second.
//!   Needs at least two quasi-identifiers;
//! - inference: for each sensitive column that is not a quasi-identifier,
//!   the attacker guesses a target's value as that of its nearest
//!   synthetic record on the quasi-identifiers.
//!
//! Targets are `anonymeter_n_attacks` records sampled from R and from H
//! (fewer when a table is smaller), seeded; the k-NN searches use the
//! exact kernel in `stats::neighbours` and cost ≈ 2 × n_attacks × |S| ×
//! |QI| per search.

use std::collections::{HashMap, HashSet};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};

use super::calibration::{Allowance, null_se};
use super::config::GateConfig;
use super::report::{OperatorResult, operator};
use super::roles::Roles;
use super::{GateError, result};
use crate::stats::{
    GowerSpace, Neighbours, equivalence_classes, k_nearest_gower, quantile_sorted, sorted_finite,
};
use crate::table::{Column, ColumnValues, NULL_CODE, Table};

/// z of a two-sided 95 % interval: Φ⁻¹(0.975).
const Z95: f64 = 1.959_963_984_540_054;
/// Columns per singling-out predicate (Anonymeter's default `n_cols`).
const SINGLING_OUT_COLUMNS: usize = 3;
/// Predicate attempts allowed per predicate wanted.
const ATTEMPTS_PER_QUERY: usize = 100;
/// Separates this operator's random stream from the other operators'.
const SEED_SALT: u64 = 0x616e_6f6e_796d_6574;

/// A success rate: the centre of its Wilson interval and the half-width.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rate {
    pub value: f64,
    pub error: f64,
}

/// Wilson score interval for `successes` of `n` at 95 %, as centre ±
/// half-width; `None` when `n == 0` or `successes > n`.
pub(crate) fn wilson(successes: f64, n: usize) -> Option<Rate> {
    if n == 0 || !(0.0..=n as f64).contains(&successes) {
        return None;
    }
    let n = n as f64;
    let z2 = Z95 * Z95;
    let denominator = n + z2;
    Some(Rate {
        value: (successes + 0.5 * z2) / denominator,
        error: Z95 / denominator * (successes * (n - successes) / n + 0.25 * z2).sqrt(),
    })
}

/// A privacy risk with its 95 % interval, clipped to [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Risk {
    /// `(a − c)/(1 − c)`, unclipped (negative when the control is easier).
    pub residual: f64,
    /// First-order propagated error of `residual`.
    pub error: f64,
    pub lower: f64,
    pub upper: f64,
}

/// `(a − c)/(1 − c)` with the Wilson errors of `a` and `c` propagated:
/// ∂/∂a = 1/(1 − c), ∂/∂c = (a − 1)/(1 − c)². A Wilson centre is below 1
/// for every finite n, so the division is defined.
pub(crate) fn residual_risk(attack: Rate, control: Rate) -> Risk {
    let margin = 1.0 - control.value;
    let residual = (attack.value - control.value) / margin;
    let d_attack = 1.0 / margin.abs();
    let d_control = (attack.value - 1.0) / (margin * margin);
    let error = ((attack.error * d_attack).powi(2) + (control.error * d_control).powi(2)).sqrt();
    Risk {
        residual,
        error,
        lower: (residual - error).clamp(0.0, 1.0),
        upper: (residual + error).clamp(0.0, 1.0),
    }
}

/// Singling-out, linkability and inference results. Tables must already be
/// aligned and the roles validated.
pub(crate) fn anonymeter(
    train: &Table,
    holdout: &Table,
    synthetic: &Table,
    roles: &Roles,
    config: &GateConfig,
    seed: u64,
) -> Result<Vec<(OperatorResult, Allowance)>, GateError> {
    let qis = &roles.quasi_identifiers;
    if qis.is_empty() {
        return Ok(Vec::new());
    }
    let mut rng = StdRng::seed_from_u64(seed ^ SEED_SALT);
    let mut out = vec![singling_out(
        train, holdout, synthetic, qis, config, &mut rng,
    )?];

    // Shuffled synthetic QIs: the kernel keeps the lowest index among equal
    // distances, so a random order is a random tie-break.
    let mut perm: Vec<usize> = (0..synthetic.n_rows()).collect();
    perm.shuffle(&mut rng);
    let s_qi = select(synthetic, qis)?.take(&perm);
    let n_attacks = config.anonymeter_n_attacks;
    let targets = pick(train, n_attacks, &mut rng);
    let controls = pick(holdout, n_attacks, &mut rng);

    out.push(linkability(
        synthetic, &targets, &controls, qis, config, &mut rng,
    )?);

    let secrets: Vec<&String> = roles
        .sensitive
        .iter()
        .filter(|c| !qis.contains(c))
        .collect();
    if !secrets.is_empty() {
        let [to_t, to_c] = nearest_synthetic(&s_qi, [&targets, &controls], 1)?;
        for secret in secrets {
            let column = |table: &Table, name: &'static str| {
                table
                    .column(secret)
                    .ok_or_else(|| GateError::MissingColumn {
                        table: name,
                        column: secret.clone(),
                        expected: "a sensitive column",
                    })
                    .cloned()
            };
            let s_col = column(synthetic, "synthetic")?;
            let hits = |t: &Column, nn: &Neighbours| {
                (0..nn.n_queries())
                    .filter(|&q| correct(&s_col, perm[nn.indices_of(q)[0]], t, q, config))
                    .count()
            };
            let a = hits(&column(&targets, "training")?, &to_t);
            let c = hits(&column(&controls, "holdout")?, &to_c);
            out.push(risk_result(
                operator::INFERENCE_RISK,
                vec![secret.clone()],
                (a, to_t.n_queries()),
                (c, to_c.n_queries()),
                config.inference_risk_max,
                &format!(
                    "inference of `{secret}` from the nearest synthetic record on the \
                     quasi-identifiers: {a} of {} training targets and {c} of {} holdout targets \
                     guessed right",
                    to_t.n_queries(),
                    to_c.n_queries()
                ),
            ));
        }
    }
    Ok(out)
}

/// The risk result shared by the three attacks: statistic = the risk
/// (a − c)/(1 − c) at the Wilson centres, clipped at 0; noise allowance from
/// the two-proportion z test of a − c, in risk units.
fn risk_result(
    op: &str,
    columns: Vec<String>,
    (a, n_a): (usize, usize),
    (c, n_c): (usize, usize),
    max: f64,
    what: &str,
) -> (OperatorResult, Allowance) {
    let (Some(attack), Some(control)) = (wilson(a as f64, n_a), wilson(c as f64, n_c)) else {
        return (
            result(
                op,
                columns,
                0.0,
                max,
                None,
                true,
                format!("{what}: no attack could be run, so there is no risk to measure"),
            ),
            Allowance::None,
        );
    };
    let risk = residual_risk(attack, control);
    let statistic = risk.residual.max(0.0);
    let saturated = if c == n_c {
        "; the attack succeeds on every holdout target, so no excess over it can be measured"
    } else {
        ""
    };
    let se = null_se(n_a, c, n_c);
    let sd = se / (1.0 - control.value).max(1e-12);
    let mut r = result(
        op,
        columns,
        statistic,
        max,
        None,
        statistic <= max,
        format!(
            "{what}; success rates {:.3} ± {:.3} (training) vs {:.3} ± {:.3} (holdout, Wilson \
                 95%); risk (a − c)/(1 − c) = {:.3}, 95% interval [{:.3}, {:.3}]; excess a − c \
                 {:+.4} ({:.2} standard errors at the control's rate){saturated}",
            attack.value,
            attack.error,
            control.value,
            control.error,
            risk.residual,
            risk.lower,
            risk.upper,
            a as f64 / n_a.max(1) as f64 - c as f64 / n_c.max(1) as f64,
            if se > 0.0 {
                (a as f64 / n_a.max(1) as f64 - c as f64 / n_c.max(1) as f64) / se
            } else {
                0.0
            },
        ),
    );
    r.interval = Some([risk.lower, risk.upper]);
    (r, Allowance::Normal { mean: 0.0, sd })
}

/// `table`'s columns named in `names`, in that order.
fn select(table: &Table, names: &[String]) -> Result<Table, GateError> {
    names
        .iter()
        .map(|name| {
            table
                .column(name)
                .cloned()
                .ok_or_else(|| GateError::MissingColumn {
                    table: "synthetic",
                    column: name.clone(),
                    expected: "a quasi-identifier",
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Table::new)
}

/// Up to `n` rows of `table` drawn without replacement.
fn pick(table: &Table, n: usize, rng: &mut StdRng) -> Table {
    let mut rows = sample(rng, table.n_rows(), n.min(table.n_rows())).into_vec();
    rows.sort_unstable();
    table.take(&rows)
}

/// The `k` nearest rows of `synthetic` (every column of it) for each row of
/// both query tables, in a Gower space fitted on `synthetic`: the attacker
/// scales distances by what it holds.
fn nearest_synthetic(
    synthetic: &Table,
    queries: [&Table; 2],
    k: usize,
) -> Result<[Neighbours; 2], GateError> {
    let mut space = GowerSpace::fit(synthetic)?;
    let s = space.encode(synthetic)?;
    let search = |space: &mut GowerSpace, q: &Table| -> Result<Neighbours, GateError> {
        let q = space.encode(q)?;
        k_nearest_gower(&q, &s, k).ok_or(GateError::Empty {
            table: "synthetic",
            what: "rows to find neighbours in",
        })
    };
    Ok([
        search(&mut space, queries[0])?,
        search(&mut space, queries[1])?,
    ])
}

fn linkability(
    synthetic: &Table,
    targets: &Table,
    controls: &Table,
    qis: &[String],
    config: &GateConfig,
    rng: &mut StdRng,
) -> Result<(OperatorResult, Allowance), GateError> {
    let max = config.linkability_risk_max;
    if qis.len() < 2 {
        return Ok((
            result(
                operator::LINKABILITY_RISK,
                qis.to_vec(),
                0.0,
                max,
                None,
                true,
                "linkability skipped: it splits the quasi-identifiers into two halves and only \
                 one is declared"
                    .into(),
            ),
            Allowance::None,
        ));
    }
    let (first, second) = qis.split_at(qis.len() / 2);
    // Each half breaks ties with its own shuffle: a half whose nearest
    // records are many equally near ones must not link by tie order alone.
    let mut half = |columns: &[String]| -> Result<_, GateError> {
        let mut perm: Vec<usize> = (0..synthetic.n_rows()).collect();
        perm.shuffle(rng);
        let [t, c] = nearest_synthetic(
            &select(synthetic, columns)?.take(&perm),
            [targets, controls],
            1,
        )?;
        let rows = |nn: &Neighbours| -> Vec<usize> {
            (0..nn.n_queries())
                .map(|q| perm[nn.indices_of(q)[0]])
                .collect()
        };
        Ok((rows(&t), rows(&c)))
    };
    let (t1, c1) = half(first)?;
    let (t2, c2) = half(second)?;
    let links = |a: &[usize], b: &[usize]| a.iter().zip(b).filter(|(x, y)| x == y).count();
    let (a, c) = (links(&t1, &t2), links(&c1, &c2));
    Ok(risk_result(
        operator::LINKABILITY_RISK,
        qis.to_vec(),
        (a, t1.len()),
        (c, c1.len()),
        max,
        &format!(
            "linkability of [{}] with [{}] through the nearest synthetic record: {a} of {} \
             training targets and {c} of {} holdout targets linked",
            first.join(", "),
            second.join(", "),
            t1.len(),
            c1.len(),
        ),
    ))
}

/// Whether the synthetic value at `g` is a correct guess of the target's
/// value at `t`: equal labels, or numbers within the relative tolerance;
/// missing guesses missing correctly.
fn correct(guess: &Column, g: usize, target: &Column, t: usize, config: &GateConfig) -> bool {
    match (&guess.values, &target.values) {
        (ColumnValues::Numeric(gv), ColumnValues::Numeric(tv)) => {
            let (x, y) = (gv[g], tv[t]);
            match (x.is_finite(), y.is_finite()) {
                (false, false) => true,
                (true, true) => (x - y).abs() <= config.inference_tolerance * y.abs(),
                _ => false,
            }
        }
        _ => guess.label(g) == target.label(t),
    }
}

/// One quasi-identifier's values over distinct QI tuples: numbers (NaN =
/// missing) or labels interned across the three tables (NULL_CODE =
/// missing).
enum QiValues {
    Numeric(Vec<f64>),
    Codes(Vec<u32>),
}

/// One condition of a singling-out predicate.
#[derive(Debug, Clone, Copy)]
enum Condition {
    Missing,
    Equals(u32),
    AtLeast(f64),
    AtMost(f64),
}

impl Condition {
    fn key(&self) -> (u8, u64) {
        match *self {
            Condition::Missing => (0, 0),
            Condition::Equals(c) => (1, u64::from(c)),
            Condition::AtLeast(v) => (2, v.to_bits()),
            Condition::AtMost(v) => (3, v.to_bits()),
        }
    }

    fn holds(&self, values: &QiValues, row: usize) -> bool {
        match (self, values) {
            (Condition::Missing, QiValues::Numeric(v)) => v[row].is_nan(),
            (Condition::Missing, QiValues::Codes(c)) => c[row] == NULL_CODE,
            (Condition::Equals(x), QiValues::Codes(c)) => c[row] == *x,
            (Condition::AtLeast(x), QiValues::Numeric(v)) => v[row] >= *x,
            (Condition::AtMost(x), QiValues::Numeric(v)) => v[row] <= *x,
            _ => false,
        }
    }
}

type Predicate = Vec<(usize, Condition)>;

/// Distinct QI tuples of one table, column by column, with an index that
/// lists the rows meeting a condition, so counting a predicate's matches
/// walks only the rows of its most selective condition.
#[derive(Default)]
struct Tuples {
    n_rows: usize,
    columns: Vec<QiValues>,
    index: Vec<ColumnIndex>,
}

enum ColumnIndex {
    /// Rows with a finite value sorted by value, the values in that order,
    /// and the rows with a missing value.
    Numeric {
        rows: Vec<usize>,
        values: Vec<f64>,
        missing: Vec<usize>,
    },
    /// Rows of each code (missing under `NULL_CODE`).
    Codes(HashMap<u32, Vec<usize>>),
}

impl Tuples {
    fn new(n_rows: usize, columns: Vec<QiValues>) -> Self {
        let index = columns
            .iter()
            .map(|values| match values {
                QiValues::Numeric(v) => {
                    let (mut rows, missing): (Vec<usize>, Vec<usize>) =
                        (0..v.len()).partition(|&r| !v[r].is_nan());
                    rows.sort_unstable_by(|&a, &b| v[a].total_cmp(&v[b]));
                    let values = rows.iter().map(|&r| v[r]).collect();
                    ColumnIndex::Numeric {
                        rows,
                        values,
                        missing,
                    }
                }
                QiValues::Codes(c) => {
                    let mut by_code: HashMap<u32, Vec<usize>> = HashMap::new();
                    for (row, &code) in c.iter().enumerate() {
                        by_code.entry(code).or_default().push(row);
                    }
                    ColumnIndex::Codes(by_code)
                }
            })
            .collect();
        Tuples {
            n_rows,
            columns,
            index,
        }
    }

    /// Rows meeting one condition.
    fn candidates(&self, col: usize, cond: &Condition) -> &[usize] {
        match (&self.index[col], cond) {
            (ColumnIndex::Numeric { missing, .. }, Condition::Missing) => missing,
            (ColumnIndex::Numeric { rows, values, .. }, Condition::AtLeast(x)) => {
                &rows[values.partition_point(|v| v < x)..]
            }
            (ColumnIndex::Numeric { rows, values, .. }, Condition::AtMost(x)) => {
                &rows[..values.partition_point(|v| v <= x)]
            }
            (ColumnIndex::Codes(by_code), Condition::Missing) => {
                by_code.get(&NULL_CODE).map_or(&[], Vec::as_slice)
            }
            (ColumnIndex::Codes(by_code), Condition::Equals(c)) => {
                by_code.get(c).map_or(&[], Vec::as_slice)
            }
            _ => &[],
        }
    }

    /// Tuples matching `predicate`, counting stops at `limit` (singling
    /// out only asks "exactly one?").
    fn count_matches(&self, predicate: &Predicate, limit: usize) -> usize {
        let Some(smallest) = predicate
            .iter()
            .map(|(col, cond)| self.candidates(*col, cond))
            .min_by_key(|rows| rows.len())
        else {
            return self.n_rows.min(limit);
        };
        let mut n = 0;
        for &row in smallest {
            if predicate
                .iter()
                .all(|(col, cond)| cond.holds(&self.columns[*col], row))
            {
                n += 1;
                if n >= limit {
                    break;
                }
            }
        }
        n
    }
}

/// The three tables' distinct QI tuples, with category labels interned
/// across tables.
fn distinct_tuples(tables: [&Table; 3], qis: &[String]) -> Result<[Tuples; 3], GateError> {
    let mut rows: Vec<Vec<usize>> = Vec::new();
    for table in tables {
        let classes = equivalence_classes(table, &[], qis)?;
        let mut first = vec![usize::MAX; classes.sizes.len()];
        for (row, &c) in classes.reference.iter().enumerate() {
            if first[c] == usize::MAX {
                first[c] = row;
            }
        }
        rows.push(first);
    }
    let mut columns: [Vec<QiValues>; 3] = Default::default();
    for name in qis {
        let mut labels: HashMap<String, u32> = HashMap::new();
        for ((out, table), r) in columns.iter_mut().zip(tables).zip(&rows) {
            let column = select(table, std::slice::from_ref(name))?;
            let values = match &column.columns[0].values {
                ColumnValues::Numeric(v) => QiValues::Numeric(
                    r.iter()
                        .map(|&i| v[i])
                        .map(|x| if x.is_finite() { x } else { f64::NAN })
                        .collect(),
                ),
                ColumnValues::Categorical { codes, dictionary } => {
                    let by_code: Vec<u32> = dictionary
                        .iter()
                        .map(|l| {
                            let next = labels.len() as u32;
                            *labels.entry(l.clone()).or_insert(next)
                        })
                        .collect();
                    QiValues::Codes(
                        r.iter()
                            .map(|&i| match codes[i] {
                                NULL_CODE => NULL_CODE,
                                c => by_code.get(c as usize).copied().unwrap_or(NULL_CODE),
                            })
                            .collect(),
                    )
                }
            };
            out.push(values);
        }
    }
    let [s, r, h] = columns;
    Ok([
        Tuples::new(rows[0].len(), s),
        Tuples::new(rows[1].len(), r),
        Tuples::new(rows[2].len(), h),
    ])
}

fn singling_out(
    train: &Table,
    holdout: &Table,
    synthetic: &Table,
    qis: &[String],
    config: &GateConfig,
    rng: &mut StdRng,
) -> Result<(OperatorResult, Allowance), GateError> {
    // Equal sizes so "matches exactly one" is as likely in R as in H by
    // chance (Anonymeter corrects with a fitted model instead).
    let size = train.n_rows().min(holdout.n_rows());
    let (r, h) = (pick(train, size, rng), pick(holdout, size, rng));
    let [s_tuples, r_tuples, h_tuples] = distinct_tuples([synthetic, &r, &h], qis)?;
    let (s_view, s_n) = (&s_tuples.columns, s_tuples.n_rows);
    let medians: Vec<Option<f64>> = s_view
        .iter()
        .map(|v| match v {
            QiValues::Numeric(x) => quantile_sorted(&sorted_finite(x), 0.5),
            QiValues::Codes(_) => None,
        })
        .collect();

    let n_attacks = config.anonymeter_n_attacks;
    let n_cols = SINGLING_OUT_COLUMNS.min(qis.len());
    // Each distinct tuple × column subset gives one predicate; ten draws per
    // predicate leave any one of them undrawn with probability e⁻¹⁰.
    let subsets = (0..n_cols).fold(1usize, |acc, i| acc * (qis.len() - i) / (i + 1));
    let max_attempts = (n_attacks * ATTEMPTS_PER_QUERY).min(10 * s_n * subsets);
    let mut accepted: HashSet<Vec<(usize, u8, u64)>> = HashSet::new();
    let mut queries: Vec<Predicate> = Vec::new();
    let mut attempts = 0;
    while queries.len() < n_attacks && attempts < max_attempts && s_n > 0 {
        attempts += 1;
        let row = rng.random_range(0..s_n);
        let mut cols = sample(rng, qis.len(), n_cols).into_vec();
        cols.sort_unstable();
        let predicate: Predicate = cols
            .into_iter()
            .map(|col| {
                let cond = match &s_view[col] {
                    QiValues::Numeric(v) if v[row].is_nan() => Condition::Missing,
                    QiValues::Numeric(v) => match medians[col] {
                        Some(m) if v[row] > m => Condition::AtLeast(v[row]),
                        _ => Condition::AtMost(v[row]),
                    },
                    QiValues::Codes(c) if c[row] == NULL_CODE => Condition::Missing,
                    QiValues::Codes(c) => Condition::Equals(c[row]),
                };
                (col, cond)
            })
            .collect();
        if s_tuples.count_matches(&predicate, 2) == 1 {
            let key = predicate
                .iter()
                .map(|(col, cond)| {
                    let (tag, bits) = cond.key();
                    (*col, tag, bits)
                })
                .collect();
            if accepted.insert(key) {
                queries.push(predicate);
            }
        }
    }
    let singles = |t: &Tuples| {
        queries
            .iter()
            .filter(|p| t.count_matches(p, 2) == 1)
            .count()
    };
    let (a, c) = (singles(&r_tuples), singles(&h_tuples));
    let (r_n, h_n) = (r_tuples.n_rows, h_tuples.n_rows);
    Ok(risk_result(
        operator::SINGLING_OUT_RISK,
        qis.to_vec(),
        (a, n_attacks),
        (c, n_attacks),
        config.singling_out_risk_max,
        &format!(
            "singling out: {} predicates on {n_cols} quasi-identifiers isolate one synthetic record \
             ({attempts} tried, {n_attacks} wanted); {a} isolate exactly one training record and \
             {c} exactly one holdout record ({size} rows each, {r_n} and {h_n} distinct QI tuples)",
            queries.len(),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_published_interval() {
        // Wilson (1927) score interval for 5 of 10 at 95 %: [0.2366, 0.7634]
        // (e.g. statsmodels proportion_confint(5, 10, method="wilson")).
        let r = wilson(5.0, 10).unwrap();
        assert!((r.value - r.error - 0.236_593).abs() < 1e-5, "{r:?}");
        assert!((r.value + r.error - 0.763_407).abs() < 1e-5, "{r:?}");
        // 0 of 500: centre z²/2/(n + z²) = 0.0038..., interval [0, 0.0076].
        let r = wilson(0.0, 500).unwrap();
        assert!((r.value - 1.920_729 / 503.841_459).abs() < 1e-9);
        assert!((r.value - r.error).abs() < 1e-12);
        assert!(wilson(1.0, 0).is_none() && wilson(3.0, 2).is_none());
    }

    #[test]
    fn residual_risk_by_hand() {
        // a = 0.6 ± 0.04, c = 0.2 ± 0.03:
        // risk = 0.4 / 0.8 = 0.5;
        // error = sqrt((0.04 / 0.8)² + (0.03 · (0.6 − 1) / 0.64)²)
        //       = sqrt(0.0025 + 0.00035156) = 0.05339...
        let r = residual_risk(
            Rate {
                value: 0.6,
                error: 0.04,
            },
            Rate {
                value: 0.2,
                error: 0.03,
            },
        );
        assert!((r.residual - 0.5).abs() < 1e-12);
        assert!((r.error - 0.002_851_562_5f64.sqrt()).abs() < 1e-12);
        assert!((r.upper - (0.5 + 0.002_851_562_5f64.sqrt())).abs() < 1e-12);
        // From counts: anonymeter 1.1.0 EvaluationResults(n_attacks=500,
        // n_success=100, n_baseline=0, n_control=50) gives attack rate
        // 0.20228730 ± 0.03500180, control 0.10304974 ± 0.02637217 and
        // risk() = PrivacyRisk(value=0.11063887, ci=(0.06366466, 0.15761308)).
        let a = wilson(100.0, 500).unwrap();
        let c = wilson(50.0, 500).unwrap();
        assert!((a.value - 0.202_287_30).abs() < 1e-8 && (a.error - 0.035_001_80).abs() < 1e-8);
        assert!((c.value - 0.103_049_74).abs() < 1e-8 && (c.error - 0.026_372_17).abs() < 1e-8);
        let r = residual_risk(a, c);
        assert!((r.residual - 0.110_638_87).abs() < 1e-8, "{r:?}");
        assert!((r.lower - 0.063_664_66).abs() < 1e-8, "{r:?}");
        assert!((r.upper - 0.157_613_08).abs() < 1e-8, "{r:?}");
        // Control more attackable than training: negative residual, clipped.
        let r = residual_risk(c, a);
        assert!(r.residual < 0.0 && r.lower == 0.0 && r.upper < 0.05);
    }
}
