//! Structure discovered in the training table and honoured when sampling:
//! rules a tree would only approximate, kept exactly.
//!
//! * **Dependencies** (code → group, device columns that are functions of each
//!   other): column B is a function of column A, or of whether A is null. B is
//!   then looked up from A's sampled value instead of being modelled.
//! * **Null patterns** (a date missing exactly when the patient is alive):
//!   whether D is null is a function of another column. D's presence is then
//!   looked up; its value, when present, is modelled on the present rows.
//! * **Derived columns**: C = αA + β, A + B, A − B, A × B, A / B, or
//!   s·A / B² (BMI from weight and height, s = 1, 703 or 10⁴), exact to C's
//!   precision on every row. C is computed from the sampled inputs.
//!
//! A rule is learned only with support: a dependency must hold on every row
//! and be witnessed by determinant values seen at least twice on at least
//! 80 % of the rows and at least `min_support` rows (a near-unique column
//! "determines" everything on its singletons, which is no rule at all); a
//! derived column must hold on at least `min_support` complete rows. Rules
//! are accepted in a fixed order and only if they keep the visit order
//! acyclic (a determinant is always sampled before what it determines).

use serde::{Deserialize, Serialize};

use crate::table::{ColumnValues, NULL_CODE, Table};

/// Determinants seen at least twice must cover this share of the rows.
const SUPPORT_SHARE: f64 = 0.8;

/// Rows used to screen a candidate formula before checking every row.
const SCREEN_ROWS: usize = 64;

/// What a rule reads from its determinant column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "of", content = "column", rename_all = "snake_case")]
pub enum Source {
    /// The value itself (a category code, or a numeric value's bits).
    Value(usize),
    /// Whether the column is null.
    IsNull(usize),
}

impl Source {
    pub fn column(&self) -> usize {
        match *self {
            Source::Value(c) | Source::IsNull(c) => c,
        }
    }
}

/// Key of a value for lookups: a code, a numeric value's order key, or the
/// null marker; `IsNull` sources give 0 / 1.
pub fn value_key(values: &ColumnValues, row: usize) -> u64 {
    match values {
        ColumnValues::Categorical { codes, .. } => u64::from(codes[row]),
        ColumnValues::Numeric(v) => numeric_key(v[row]),
    }
}

pub fn numeric_key(x: f64) -> u64 {
    if x.is_nan() {
        u64::MAX
    } else {
        let x = if x == 0.0 { 0.0 } else { x };
        let bits = x.to_bits();
        if bits >> 63 == 1 {
            !bits
        } else {
            bits | (1 << 63)
        }
    }
}

/// Key of one row for `source`.
pub fn source_key(table: &Table, source: Source, row: usize) -> u64 {
    match source {
        Source::Value(c) => value_key(&table.columns[c].values, row),
        Source::IsNull(c) => u64::from(table.columns[c].values.is_null(row)),
    }
}

/// B as a function of a determinant: sorted `(key, value key of B)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lookup {
    pub source: Source,
    pub map: Vec<(u64, u64)>,
}

/// D is null exactly when the determinant's key is in `null_keys` (sorted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NullRule {
    pub source: Source,
    pub null_keys: Vec<u64>,
}

/// A numeric column computed from others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Formula {
    Affine {
        a: usize,
        alpha: f64,
        beta: f64,
    },
    Sum {
        a: usize,
        b: usize,
    },
    Difference {
        a: usize,
        b: usize,
    },
    Product {
        a: usize,
        b: usize,
    },
    Ratio {
        a: usize,
        b: usize,
    },
    /// `scale · a / b²`.
    RatioSquare {
        a: usize,
        b: usize,
        scale: f64,
    },
}

impl Formula {
    pub fn inputs(&self) -> Vec<usize> {
        match *self {
            Formula::Affine { a, .. } => vec![a],
            Formula::Sum { a, b }
            | Formula::Difference { a, b }
            | Formula::Product { a, b }
            | Formula::Ratio { a, b }
            | Formula::RatioSquare { a, b, .. } => vec![a, b],
        }
    }

    /// The value from the inputs' values (NaN if an input is null or the
    /// result is not finite).
    pub fn eval(&self, value: impl Fn(usize) -> f64) -> f64 {
        let r = match *self {
            Formula::Affine { a, alpha, beta } => alpha * value(a) + beta,
            Formula::Sum { a, b } => value(a) + value(b),
            Formula::Difference { a, b } => value(a) - value(b),
            Formula::Product { a, b } => value(a) * value(b),
            Formula::Ratio { a, b } => value(a) / value(b),
            Formula::RatioSquare { a, b, scale } => scale * value(a) / (value(b) * value(b)),
        };
        if r.is_finite() { r } else { f64::NAN }
    }
}

/// Everything discovered, by dependent column.
#[derive(Debug, Clone, Default)]
pub struct Discovered {
    pub lookups: Vec<(usize, Lookup)>,
    pub null_rules: Vec<(usize, NullRule)>,
    pub formulas: Vec<(usize, Formula)>,
}

/// Dense codes of a column's values (nulls included as a value).
struct Dense {
    ids: Vec<u32>,
    keys: Vec<u64>,
}

fn dense(keys_of_rows: impl Iterator<Item = u64>, n: usize) -> Dense {
    let raw: Vec<u64> = keys_of_rows.collect();
    let mut keys = raw.clone();
    keys.sort_unstable();
    keys.dedup();
    let ids = raw
        .iter()
        .map(|k| keys.binary_search(k).expect("key of a row") as u32)
        .collect();
    debug_assert_eq!(raw.len(), n);
    Dense { ids, keys }
}

/// `Some(map)` when `b` is a function of `a` on every row and the rule is
/// supported (see the module docs).
fn dependency(a: &Dense, b: &Dense, n: usize, min_support: usize) -> Option<Vec<(u64, u64)>> {
    if a.keys.len() < 2 || b.keys.len() < 2 || a.keys.len() >= n {
        return None;
    }
    let mut count = vec![0u32; a.keys.len()];
    for &x in &a.ids {
        count[x as usize] += 1;
    }
    let supported: usize = count.iter().filter(|&&c| c >= 2).map(|&c| c as usize).sum();
    if (supported as f64) < SUPPORT_SHARE * n as f64 || supported < min_support {
        return None;
    }
    let mut image = vec![u32::MAX; a.keys.len()];
    for (&x, &y) in a.ids.iter().zip(&b.ids) {
        let slot = &mut image[x as usize];
        if *slot == u32::MAX {
            *slot = y;
        } else if *slot != y {
            return None;
        }
    }
    Some(
        a.keys
            .iter()
            .zip(&image)
            .map(|(&k, &y)| (k, b.keys[y as usize]))
            .collect(),
    )
}

/// Rule graph: `deps[c]` = columns that must be sampled before `c`.
struct Graph {
    deps: Vec<Vec<usize>>,
}

impl Graph {
    fn reaches(&self, from: usize, to: usize) -> bool {
        let mut stack = vec![from];
        let mut seen = vec![false; self.deps.len()];
        while let Some(c) = stack.pop() {
            if c == to {
                return true;
            }
            if !std::mem::replace(&mut seen[c], true) {
                stack.extend(&self.deps[c]);
            }
        }
        false
    }

    /// Adds `c` ← `inputs` unless it would close a cycle.
    fn try_add(&mut self, c: usize, inputs: &[usize]) -> bool {
        if inputs.iter().any(|&i| i == c || self.reaches(i, c)) {
            return false;
        }
        self.deps[c].extend_from_slice(inputs);
        true
    }
}

/// Detected decimals of a numeric column (≤ `max`), as the copula does.
pub fn detect_decimals(values: &[f64], max: u32) -> Option<u32> {
    (0..=max).find(|&d| {
        values
            .iter()
            .filter(|x| !x.is_nan())
            .all(|&x| near(round_to(x, d), x))
    })
}

pub fn near(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

pub fn round_to(x: f64, decimals: u32) -> f64 {
    if decimals == 0 {
        return x.round();
    }
    let scale = 10f64.powi(decimals as i32);
    (x * scale).round() / scale
}

/// A candidate source for a looked-up column: its number of distinct
/// values, the source and the value map.
type Candidate = (usize, Source, Vec<(u64, u64)>);

/// Finds the rules of `table`. `decimals[c]` is each numeric column's
/// detected precision.
pub fn discover(table: &Table, decimals: &[Option<u32>], min_support: usize) -> Discovered {
    let n = table.n_rows();
    let p = table.columns.len();
    let mut found = Discovered::default();
    if n < 2 || p < 2 {
        return found;
    }
    let values: Vec<Dense> = (0..p)
        .map(|c| dense((0..n).map(|r| value_key(&table.columns[c].values, r)), n))
        .collect();
    let nulls: Vec<Option<Dense>> = (0..p)
        .map(|c| {
            let v = &table.columns[c].values;
            let k = (0..n).filter(|&r| v.is_null(r)).count();
            (k > 0 && k < n).then(|| dense((0..n).map(|r| u64::from(v.is_null(r))), n))
        })
        .collect();
    let mut graph = Graph {
        deps: vec![Vec::new(); p],
    };
    // Dependencies: finest columns first; each takes the coarsest
    // determinant ranked before it, so determinants precede dependents.
    let mut rank: Vec<usize> = (0..p).collect();
    rank.sort_by(|&a, &b| {
        values[b]
            .keys
            .len()
            .cmp(&values[a].keys.len())
            .then(a.cmp(&b))
    });
    let mut position = vec![0; p];
    for (i, &c) in rank.iter().enumerate() {
        position[c] = i;
    }
    let mut looked_up = vec![false; p];
    for &b in &rank {
        let mut candidates: Vec<Candidate> = Vec::new();
        for a in 0..p {
            if a == b {
                continue;
            }
            if position[a] < position[b]
                && let Some(map) = dependency(&values[a], &values[b], n, min_support)
            {
                candidates.push((values[a].keys.len(), Source::Value(a), map));
            }
            if let Some(na) = &nulls[a]
                && let Some(map) = dependency(na, &values[b], n, min_support)
            {
                candidates.push((2, Source::IsNull(a), map));
            }
        }
        candidates.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.column().cmp(&y.1.column())));
        for (_, source, map) in candidates {
            if graph.try_add(b, &[source.column()]) {
                found.lookups.push((b, Lookup { source, map }));
                looked_up[b] = true;
                break;
            }
        }
    }
    // Null patterns of columns not looked up.
    for d in 0..p {
        let Some(nd) = &nulls[d] else { continue };
        if looked_up[d] {
            continue;
        }
        let mut candidates: Vec<Candidate> = Vec::new();
        for a in 0..p {
            if a == d {
                continue;
            }
            if let Some(na) = &nulls[a]
                && let Some(map) = dependency(na, nd, n, min_support)
            {
                candidates.push((2, Source::IsNull(a), map));
            }
            if let Some(map) = dependency(&values[a], nd, n, min_support) {
                candidates.push((values[a].keys.len(), Source::Value(a), map));
            }
        }
        candidates.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.column().cmp(&y.1.column())));
        for (_, source, map) in candidates {
            if graph.try_add(d, &[source.column()]) {
                let null_keys = map
                    .iter()
                    .filter(|(_, y)| *y == 1)
                    .map(|(k, _)| *k)
                    .collect();
                found.null_rules.push((d, NullRule { source, null_keys }));
                break;
            }
        }
    }
    // Derived numeric columns.
    let numeric: Vec<usize> = (0..p)
        .filter(|&c| matches!(table.columns[c].values, ColumnValues::Numeric(_)))
        .collect();
    for &c in &numeric {
        if looked_up[c] || found.null_rules.iter().any(|(d, _)| *d == c) {
            continue;
        }
        if let Some(formula) = derived(table, &numeric, c, decimals[c], min_support, &graph) {
            let inputs = formula.inputs();
            if graph.try_add(c, &inputs) {
                found.formulas.push((c, formula));
            }
        }
    }
    found
}

fn num(table: &Table, c: usize) -> &[f64] {
    match &table.columns[c].values {
        ColumnValues::Numeric(v) => v,
        ColumnValues::Categorical { .. } => &[],
    }
}

/// The first formula (in a fixed order of forms and inputs) that gives `c`
/// exactly on every row and whose nulls match `c`'s.
fn derived(
    table: &Table,
    numeric: &[usize],
    c: usize,
    decimals: Option<u32>,
    min_support: usize,
    graph: &Graph,
) -> Option<Formula> {
    let n = table.n_rows();
    let y = num(table, c);
    let present: Vec<usize> = (0..n).filter(|&r| !y[r].is_nan()).collect();
    if present.len() < min_support.max(2) {
        return None;
    }
    let first = y[present[0]];
    if present.iter().all(|&r| y[r] == first) {
        return None; // constant: nothing to derive
    }
    let screen: Vec<usize> = present.iter().copied().take(SCREEN_ROWS).collect();
    let matches = |f: f64, target: f64| match decimals {
        Some(d) => near(round_to(f, d), target),
        None => near(f, target),
    };
    let holds = |formula: &Formula, rows: &mut dyn Iterator<Item = usize>| {
        let mut count = 0usize;
        for r in rows {
            let f = formula.eval(|i| num(table, i)[r]);
            if f.is_nan() || !matches(f, y[r]) {
                return None;
            }
            count += 1;
        }
        Some(count)
    };
    let others: Vec<usize> = numeric
        .iter()
        .copied()
        .filter(|&a| a != c && !graph.reaches(a, c))
        .collect();
    let inputs_present =
        |inputs: &[usize], r: usize| inputs.iter().all(|&i| !num(table, i)[r].is_nan());
    let check = |formula: Formula| -> Option<Formula> {
        let inputs = formula.inputs();
        holds(&formula, &mut screen.iter().copied())?;
        // c is null exactly when an input is.
        if (0..n).any(|r| y[r].is_nan() == inputs_present(&inputs, r)) {
            return None;
        }
        match holds(&formula, &mut present.iter().copied()) {
            Some(k) if k >= min_support => Some(formula),
            _ => None,
        }
    };
    // Affine in one column.
    for &a in &others {
        let x = num(table, a);
        let pair = present
            .iter()
            .copied()
            .filter(|&r| !x[r].is_nan())
            .take(SCREEN_ROWS);
        let rows: Vec<usize> = pair.collect();
        let (Some(&r0), Some(&r1)) = (rows.first(), rows.iter().find(|&&r| x[r] != x[rows[0]]))
        else {
            continue;
        };
        let alpha = (y[r1] - y[r0]) / (x[r1] - x[r0]);
        if alpha == 0.0 || !alpha.is_finite() {
            continue;
        }
        let beta = y[r0] - alpha * x[r0];
        // Snap to short decimals so that 2.54 stays 2.54.
        let snap = |v: f64| {
            (0..=6)
                .map(|d| round_to(v, d))
                .find(|&s| near(s, v))
                .unwrap_or(v)
        };
        for (alpha, beta) in [(snap(alpha), snap(beta)), (alpha, beta)] {
            if let Some(f) = check(Formula::Affine { a, alpha, beta }) {
                return Some(f);
            }
        }
    }
    for (i, &a) in others.iter().enumerate() {
        for &b in &others[i + 1..] {
            for f in [Formula::Sum { a, b }, Formula::Product { a, b }] {
                if let Some(f) = check(f) {
                    return Some(f);
                }
            }
        }
    }
    for &a in &others {
        for &b in &others {
            if a == b {
                continue;
            }
            let forms = [
                Formula::Difference { a, b },
                Formula::Ratio { a, b },
                Formula::RatioSquare { a, b, scale: 1.0 },
                Formula::RatioSquare { a, b, scale: 703.0 },
                Formula::RatioSquare {
                    a,
                    b,
                    scale: 10_000.0,
                },
            ];
            for f in forms {
                if let Some(f) = check(f) {
                    return Some(f);
                }
            }
        }
    }
    None
}

/// Is `code` a null category code.
pub fn is_null_code(code: u32) -> bool {
    code == NULL_CODE
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Column;

    fn decimals(t: &Table) -> Vec<Option<u32>> {
        t.columns
            .iter()
            .map(|c| match &c.values {
                ColumnValues::Numeric(v) => detect_decimals(v, 4),
                ColumnValues::Categorical { .. } => None,
            })
            .collect()
    }

    #[test]
    fn code_determines_group_but_not_the_reverse() {
        let codes = ["E11.9", "E11.2", "I10", "I11", "J45"];
        let groups = ["E", "E", "I", "I", "J"];
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let n = 500;
        let pick: Vec<usize> = (0..n).map(|_| rng.random_range(0..5)).collect();
        let code: Vec<Option<&str>> = pick.iter().map(|&i| Some(codes[i])).collect();
        let group: Vec<Option<&str>> = pick.iter().map(|&i| Some(groups[i])).collect();
        let age: Vec<f64> = (0..n).map(|_| rng.random_range(18..90) as f64).collect();
        let t = Table::new(vec![
            Column::categorical("group", &group),
            Column::numeric("age", age),
            Column::categorical("code", &code),
        ]);
        let found = discover(&t, &decimals(&t), 50);
        assert_eq!(found.lookups.len(), 1, "{found:?}");
        let (dependent, lookup) = &found.lookups[0];
        assert_eq!(*dependent, 0);
        assert_eq!(lookup.source, Source::Value(2));
    }

    #[test]
    fn a_rule_seen_in_a_handful_of_rows_is_not_learned() {
        // 30 rows: the group is a function of the code, but 30 < min_support.
        let code: Vec<Option<String>> = (0..30).map(|i| Some(format!("c{}", i % 6))).collect();
        let group: Vec<Option<String>> = (0..30).map(|i| Some(format!("g{}", i % 3))).collect();
        let t = Table::new(vec![
            Column::categorical("code", &code),
            Column::categorical("group", &group),
        ]);
        assert!(discover(&t, &decimals(&t), 50).lookups.is_empty());
        // A near-unique column determines nothing.
        let id: Vec<Option<String>> = (0..300).map(|i| Some(format!("p{i}"))).collect();
        let sex: Vec<Option<&str>> = (0..300).map(|i| Some(["F", "M"][i % 2])).collect();
        let t = Table::new(vec![
            Column::categorical("id", &id),
            Column::categorical("sex", &sex),
        ]);
        assert!(discover(&t, &decimals(&t), 50).lookups.is_empty());
    }

    #[test]
    fn null_iff_and_derived_columns_are_found() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let n = 400;
        let dead: Vec<bool> = (0..n).map(|_| rng.random_bool(0.3)).collect();
        let alive: Vec<Option<&str>> = dead
            .iter()
            .map(|&d| Some(if d { "no" } else { "yes" }))
            .collect();
        let death_day: Vec<f64> = dead
            .iter()
            .map(|&d| {
                if d {
                    rng.random_range(0..3000) as f64
                } else {
                    f64::NAN
                }
            })
            .collect();
        let w: Vec<f64> = (0..n).map(|_| rng.random_range(45..120) as f64).collect();
        let h: Vec<f64> = (0..n).map(|_| rng.random_range(150..200) as f64).collect();
        let bmi: Vec<f64> = w
            .iter()
            .zip(&h)
            .map(|(w, h)| round_to(w / (h / 100.0).powi(2), 1))
            .collect();
        let start: Vec<f64> = (0..n).map(|_| rng.random_range(0..5000) as f64).collect();
        let los: Vec<f64> = (0..n).map(|_| rng.random_range(0..30) as f64).collect();
        let end: Vec<f64> = start.iter().zip(&los).map(|(s, l)| s + l).collect();
        let t = Table::new(vec![
            Column::categorical("alive", &alive),
            Column::numeric("death_day", death_day),
            Column::numeric("weight", w),
            Column::numeric("height", h),
            Column::numeric("bmi", bmi),
            Column::numeric("start", start),
            Column::numeric("end", end),
            Column::numeric("los", los),
        ]);
        let found = discover(&t, &decimals(&t), 50);
        // Either side of "death_day is null exactly when alive": alive looked
        // up from death_day's nullness, or death_day's nulls from alive.
        let by_lookup = found
            .lookups
            .iter()
            .any(|(d, l)| *d == 0 && l.source == Source::IsNull(1));
        let by_rule = found
            .null_rules
            .iter()
            .any(|(d, r)| *d == 1 && r.source == Source::Value(0));
        assert!(by_lookup != by_rule, "{found:?}");
        let formula = |c: usize| {
            found
                .formulas
                .iter()
                .find(|(d, _)| *d == c)
                .map(|(_, f)| f.clone())
        };
        assert_eq!(
            formula(4),
            Some(Formula::RatioSquare {
                a: 2,
                b: 3,
                scale: 10_000.0
            })
        );
        // One of start, end, los is derived from the other two, once.
        let derived: Vec<usize> = [5, 6, 7]
            .into_iter()
            .filter(|&c| formula(c).is_some())
            .collect();
        assert_eq!(derived.len(), 1, "{found:?}");
        assert_eq!(formula(5), Some(Formula::Difference { a: 6, b: 7 }));
    }
}
