//! Outlier replication: does the synthetic batch reproduce real extremes
//! more often than fresh real data does?
//!
//! The most identifying values of a table are its extremes: the one patient
//! with the highest creatinine, the oldest patient, the only patient at a
//! rare site. A generator that clamps its samples to the training range, or
//! draws category labels by training frequency, can put that exact value
//! into many synthetic rows, and anyone who knows the real extreme then
//! learns the generator saw that person. Two kinds of real extreme count,
//! both by the small-cell rule (k = `gate.small_cell_min` training
//! patients; rows when the table has no privacy units):
//! - the exact training minimum and the exact training maximum of each
//!   numeric column (finite values; a constant column has none), each only
//!   while fewer than k training patients hold it. An end that many
//!   patients share is a floor or a cap, not a person: a count's floor
//!   (one previous pregnancy, the fewest one trial recorded, for 27 % of its
//!   women), an assay's reporting cap (a PCR cycle threshold of 45 for
//!   every negative test, 94 % of the tests with a value). Counting such a value would make nearly every row, real or
//!   synthetic, "hit", and the share would hide a batch that does copy a
//!   one-patient extreme of another column;
//! - a category held by fewer than k training patients (missing is not a
//!   category).
//!
//! A row *hits* when any of its values is one of these. Some of that is
//! chance: integer ages sit on a rare training minimum now and then, and
//! fresh patients carry rare categories too. So the yardstick is the
//! holdout, as for exact match: the statistic is the share of synthetic rows
//! that hit, the noise floor the share of holdout rows that hit, the effect
//! limit the holdout share + `gate.outlier_replication_margin`, and the
//! noise allowance the holdout share plus the upper α critical difference
//! of the two shares when batch and holdout records are relabelled at
//! random: Fisher's test by hypergeometric draws
//! (`calibration::share_permutation`), or, with privacy units that own
//! several rows, by relabelling whole patients, since one patient's rows
//! hit together.
//!
//! The explanation names columns and counts rows only: never a real
//! extreme's value or a rare label, and a count below the small-cell
//! threshold is written `<k`, synthetic ones too (a synthetic row that holds
//! a real extreme copies a real patient's value).

use std::collections::HashMap;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::calibration::{Allowance, SHARE_PERMUTATIONS, share_permutation};
use super::cells;
use super::config::GateConfig;
use super::input::ColumnTriple;
use super::report::{OperatorResult, operator};
use super::result;
use super::units::{self, Units};
use crate::table::{Column, ColumnValues, NULL_CODE};

/// Separates this operator's random stream from the other operators'.
const SEED_SALT: u64 = 0x006f_7574_6c69_6572;

/// The real extremes of one training column.
enum Extremes {
    /// Exact training minimum and maximum, each `None` when k or more
    /// training units hold it.
    Range { min: Option<f64>, max: Option<f64> },
    /// Labels held by fewer than k training units.
    Rare(Vec<String>),
}

impl Extremes {
    fn of(column: &Column, units: Option<&[u32]>, k: usize) -> Option<Extremes> {
        // Distinct units: a patient with ten rows of a value is still one
        // patient.
        let rows = column.values.len();
        let unit_of = |row: usize| {
            units
                .filter(|u| u.len() == rows)
                .map_or(row as u64, |u| u64::from(u[row]))
        };
        match &column.values {
            ColumnValues::Numeric(v) => {
                let finite = v.iter().copied().filter(|x| x.is_finite());
                let (min, max) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                    (a.min(x), b.max(x))
                });
                if min >= max {
                    return None;
                }
                let holders = |end: f64| {
                    let held: std::collections::HashSet<u64> = v
                        .iter()
                        .enumerate()
                        .filter(|&(_, &x)| x == end)
                        .map(|(row, _)| unit_of(row))
                        .collect();
                    held.len()
                };
                let (min, max) = (
                    (holders(min) < k).then_some(min),
                    (holders(max) < k).then_some(max),
                );
                (min.is_some() || max.is_some()).then_some(Extremes::Range { min, max })
            }
            ColumnValues::Categorical { codes, dictionary } => {
                let mut seen: HashMap<u32, std::collections::HashSet<u64>> = HashMap::new();
                for (row, &c) in codes.iter().enumerate() {
                    if c != NULL_CODE && (c as usize) < dictionary.len() {
                        seen.entry(c).or_default().insert(unit_of(row));
                    }
                }
                let mut rare: Vec<String> = seen
                    .into_iter()
                    .filter(|(_, u)| u.len() < k)
                    .map(|(c, _)| dictionary[c as usize].clone())
                    .collect();
                rare.sort_unstable();
                (!rare.is_empty()).then_some(Extremes::Rare(rare))
            }
        }
    }

    /// Per row of `column`: does it hold one of the extremes?
    fn hits(&self, column: &Column) -> Vec<bool> {
        match (self, &column.values) {
            (Extremes::Range { min, max }, ColumnValues::Numeric(v)) => v
                .iter()
                .map(|x| Some(*x) == *min || Some(*x) == *max)
                .collect(),
            (Extremes::Rare(labels), ColumnValues::Categorical { codes, dictionary }) => {
                let rare: Vec<bool> = dictionary
                    .iter()
                    .map(|l| labels.binary_search(l).is_ok())
                    .collect();
                codes
                    .iter()
                    .map(|&c| c != NULL_CODE && rare.get(c as usize).copied().unwrap_or(false))
                    .collect()
            }
            _ => vec![false; column.values.len()],
        }
    }
}

/// The outlier-replication result. Columns must already be aligned.
pub(crate) fn outlier_replication(
    columns: &[ColumnTriple<'_>],
    n_rows: (usize, usize),
    units: &Units,
    config: &GateConfig,
) -> (OperatorResult, Allowance) {
    let (n_h, n_s) = n_rows;
    let k = config.small_cell_min;
    let (mut s_hit, mut h_hit) = (vec![false; n_s], vec![false; n_h]);
    let (mut numeric, mut rare_levels) = (0usize, 0usize);
    // (column, synthetic rows hitting its extremes)
    let mut by_column: Vec<(&str, usize)> = Vec::new();
    for t in columns {
        let Some(extremes) = Extremes::of(t.train, units.train.as_deref(), k) else {
            continue;
        };
        match &extremes {
            Extremes::Range { .. } => numeric += 1,
            Extremes::Rare(l) => rare_levels += l.len(),
        }
        let s = extremes.hits(t.synthetic);
        let s_count = s.iter().filter(|&&x| x).count();
        if s_count > 0 {
            by_column.push((t.name(), s_count));
        }
        for (acc, x) in s_hit.iter_mut().zip(s) {
            *acc |= x;
        }
        for (acc, x) in h_hit.iter_mut().zip(extremes.hits(t.holdout)) {
            *acc |= x;
        }
    }
    let count = |v: &[bool]| v.iter().filter(|&&x| x).count();
    let (s_hits, h_hits) = (count(&s_hit), count(&h_hit));
    let share = |hits: usize, n: usize| hits as f64 / n.max(1) as f64;
    let (s_share, h_share) = (share(s_hits, n_s), share(h_hits, n_h));
    let limit = h_share + config.outlier_replication_margin;
    let noise = allowance(&s_hit, &h_hit, units);
    by_column.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let worst = if by_column.is_empty() {
        String::new()
    } else {
        let top: Vec<String> = by_column
            .iter()
            .take(3)
            .map(|(c, n)| format!("{c} ({})", cells::count(*n, k)))
            .collect();
        format!("; most synthetic hits in {}", top.join(", "))
    };
    // Synthetic hits are bounded like holdout ones: a synthetic row that
    // holds a real extreme copies a real patient's value, so its count is a
    // count of real people (`gate::cells`).
    let explanation = format!(
        "{} of {n_s} synthetic rows ({}) reproduce a real extreme (the exact training minimum or \
         maximum of {numeric} numeric columns, or one of {rare_levels} categories held by fewer \
         than {k} training patients); {} of {n_h} holdout rows ({}) do by coincidence{worst}; \
         effect limit: holdout share + margin {:.3}%",
        cells::count(s_hits, k),
        cells::share(s_hits, n_s, k, 3),
        cells::count(h_hits, k),
        cells::share(h_hits, n_h, k, 3),
        100.0 * config.outlier_replication_margin,
    );
    (
        result(
            operator::OUTLIER_REPLICATION,
            Vec::new(),
            s_share,
            limit,
            Some(h_share),
            s_share <= limit,
            explanation,
        ),
        noise,
    )
}

/// The share's null when the batch is fresh real data: batch and holdout
/// records relabelled at random. Records are rows, or whole patients when
/// either side has units that own several rows.
fn allowance(s_hit: &[bool], h_hit: &[bool], units: &Units) -> Allowance {
    let s_groups = units::groups(units.synthetic.as_deref(), s_hit.len());
    let h_groups = units::groups(units.holdout.as_deref(), h_hit.len());
    let count = |v: &[bool]| v.iter().filter(|&&x| x).count();
    if s_groups.len() == s_hit.len() && h_groups.len() == h_hit.len() {
        return share_permutation(
            (s_hit.len(), s_hit.len(), count(s_hit)),
            (h_hit.len(), h_hit.len(), count(h_hit)),
            SEED_SALT,
        );
    }
    // (rows, hits) per unit of the pool.
    let tally = |groups: Vec<Vec<usize>>, hit: &[bool]| -> Vec<(usize, usize)> {
        groups
            .into_iter()
            .map(|g| (g.len(), g.iter().filter(|&&r| hit[r]).count()))
            .collect()
    };
    let mut pool = tally(s_groups, s_hit);
    pool.extend(tally(h_groups, h_hit));
    Allowance::Empirical(unit_permutation(pool, s_hit.len(), share_of(h_hit), SEED_SALT).into())
}

fn share_of(hit: &[bool]) -> f64 {
    hit.iter().filter(|&&x| x).count() as f64 / hit.len().max(1) as f64
}

/// Sorted `h_share + (share of pseudo-batch − share of pseudo-holdout)`
/// over random deals of whole units: the units are shuffled and dealt to
/// the pseudo-batch until it holds `batch_rows` rows, the rest form the
/// pseudo-holdout.
fn unit_permutation(
    mut pool: Vec<(usize, usize)>,
    batch_rows: usize,
    h_share: f64,
    seed: u64,
) -> Vec<f64> {
    let (rows, hits): (usize, usize) = pool
        .iter()
        .fold((0, 0), |(r, h), &(gr, gh)| (r + gr, h + gh));
    let mut rng = StdRng::seed_from_u64(seed ^ 0x0075_6e69_7473);
    let mut out: Vec<f64> = (0..SHARE_PERMUTATIONS)
        .map(|_| {
            pool.shuffle(&mut rng);
            let (mut r_s, mut h_s) = (0usize, 0usize);
            for &(gr, gh) in &pool {
                if r_s >= batch_rows {
                    break;
                }
                r_s += gr;
                h_s += gh;
            }
            let (r_h, h_h) = (rows - r_s, hits - h_s);
            let share = |h: usize, r: usize| if r == 0 { 0.0 } else { h as f64 / r as f64 };
            h_share + share(h_s, r_s) - share(h_h, r_h)
        })
        .collect();
    out.sort_unstable_by(f64::total_cmp);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::calibration::calibrate_split;
    use crate::gate::input::align;
    use crate::table::Table;

    fn run(r: &Table, h: &Table, s: &Table, units: &Units) -> OperatorResult {
        let columns = align(r, h, s).unwrap();
        let out = outlier_replication(
            &columns,
            (h.n_rows(), s.n_rows()),
            units,
            &GateConfig::default(),
        );
        calibrate_split(vec![out], 0.02).remove(0)
    }

    /// 1 000 rows: a continuous lab (the extremes are single patients) and
    /// a site with a rare level held by 3 patients.
    fn table(offset: f64, rare: usize) -> Table {
        let n = 1000;
        let lab: Vec<f64> = (0..n)
            .map(|i| 50.0 + ((i as f64 * 0.618_034 + offset).fract() - 0.5) * 40.0)
            .collect();
        let site: Vec<Option<String>> = (0..n)
            .map(|i| {
                Some(if i < rare {
                    "ZZ-RARE".to_string()
                } else {
                    ["A", "B", "C"][i % 3].to_string()
                })
            })
            .collect();
        Table::new(vec![
            Column::numeric("lab", lab),
            Column::categorical("site", &site),
        ])
    }

    #[test]
    fn finds_exact_extremes_and_rare_labels_by_patient() {
        let t = Table::new(vec![
            Column::numeric("x", vec![3.0, 1.0, 2.0, 9.0, f64::NAN]),
            Column::categorical("c", &[Some("a"), Some("a"), Some("b"), None, Some("a")]),
        ]);
        let Some(Extremes::Range { min, max }) = Extremes::of(&t.columns[0], None, 11) else {
            panic!("numeric extremes")
        };
        assert_eq!((min, max), (Some(1.0), Some(9.0)));
        assert_eq!(
            Extremes::of(&t.columns[0], None, 11)
                .unwrap()
                .hits(&t.columns[0]),
            vec![false, true, false, true, false]
        );
        // k = 3: "a" has 3 rows (not rare), "b" 1 (rare).
        let Some(Extremes::Rare(l)) = Extremes::of(&t.columns[1], None, 3) else {
            panic!("rare labels")
        };
        assert_eq!(l, vec!["b".to_string()]);
        // By patient: rows 0, 1 and 4 of "a" belong to two patients → rare at k = 3.
        let Some(Extremes::Rare(l)) = Extremes::of(&t.columns[1], Some(&[7, 7, 8, 9, 8]), 3) else {
            panic!("rare labels by unit")
        };
        assert_eq!(l, vec!["a".to_string(), "b".to_string()]);
        // A constant column has no extreme.
        let flat = Column::numeric("f", vec![2.0; 4]);
        assert!(Extremes::of(&flat, None, 11).is_none());
    }

    /// The exact training minimum and maximum of `lab`.
    fn lab_range(t: &Table) -> (f64, f64) {
        let ColumnValues::Numeric(lab) = &t.column("lab").unwrap().values else {
            unreachable!()
        };
        (
            lab.iter().copied().fold(f64::INFINITY, f64::min),
            lab.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        )
    }

    #[test]
    fn fails_a_batch_that_copies_extremes_and_passes_fresh_rows() {
        let (r, h) = (table(0.0, 3), table(0.3, 3));
        // Fresh rows of the same population: other lab values, the rare
        // site about as often as the holdout.
        let fresh = table(0.7, 2);
        let ok = run(&r, &h, &fresh, &Units::default());
        assert!(ok.passed, "{ok:?}");
        // A clamping generator: 2 % of rows sit on the exact training
        // minimum or maximum, and the rare site comes out 20 times.
        let (lo, hi) = lab_range(&r);
        let copied: Vec<f64> = (0..1000)
            .map(|i| match i % 50 {
                0 => lo,
                1 => hi,
                _ => 50.0 + (i as f64 * 0.001),
            })
            .collect();
        let bad = Table::new(vec![
            Column::numeric("lab", copied),
            table(0.7, 20).columns[1].clone(),
        ]);
        let fail = run(&r, &h, &bad, &Units::default());
        assert!(!fail.passed, "{fail:?}");
        // 40 lab rows and 20 rare-site rows, rows 0 and 1 both.
        assert!((fail.statistic - 0.058).abs() < 1e-12, "{}", fail.statistic);
        // Neither a real extreme nor the rare label is named; the holdout's
        // 3 rare rows are a small cell.
        let lo_text = format!("{lo}");
        assert!(!fail.explanation.contains(&lo_text[..lo_text.len().min(6)]));
        assert!(!fail.explanation.contains("ZZ-RARE"));
        assert!(
            fail.explanation.contains("<11 of 1000 holdout rows"),
            "{}",
            fail.explanation
        );
        assert!(
            fail.explanation.contains("lab (40), site (20)"),
            "{}",
            fail.explanation
        );
    }

    /// A floor or cap that many patients share is no one's extreme. Here a
    /// count column sits at its minimum 0 for 30 % of patients (opt's
    /// `N.prev.preg` sits at its minimum, 1, for 27 % of its women) and a
    /// cycle-threshold column at its reporting cap 45 for 90 %
    /// (covid_testing's `ct_result`, 94 %).
    /// Neither end is an extreme: 300 and 900 of 1 000 training patients
    /// hold it, far above k = 11. The count's maximum (one patient) still is.
    /// With the shared ends counted, 90 % of holdout rows "hit" and a
    /// generator that clamps 2 % of its lab values onto the lab's
    /// one-patient training extremes would sit inside the noise; without
    /// them the holdout hits almost never and the clamping fails.
    #[test]
    fn a_floor_or_cap_shared_by_many_patients_is_not_an_outlier() {
        let base = |offset: f64| {
            let t = table(offset, 0);
            let n = t.n_rows();
            let mut count: Vec<f64> = (0..n)
                .map(|i| if i % 10 < 3 { 0.0 } else { (1 + i % 7) as f64 })
                .collect();
            if offset == 0.0 {
                count[5] = 12.0; // one training patient's maximum
            }
            let ct: Vec<f64> = (0..n)
                .map(|i| {
                    if i % 10 == 9 {
                        20.0 + ((i as f64 * 0.414_213 + offset).fract()) * 20.0
                    } else {
                        45.0
                    }
                })
                .collect();
            let mut columns = t.columns;
            columns.push(Column::numeric("count", count));
            columns.push(Column::numeric("ct", ct));
            Table::new(columns)
        };
        let (r, h, fresh) = (base(0.0), base(0.3), base(0.7));
        let k = GateConfig::default().small_cell_min;
        let Some(Extremes::Range { min, max }) = Extremes::of(r.column("count").unwrap(), None, k)
        else {
            panic!("the count's maximum is an extreme")
        };
        assert_eq!((min, max), (None, Some(12.0)));
        let Some(Extremes::Range { min, max }) = Extremes::of(r.column("ct").unwrap(), None, 11)
        else {
            panic!("the cycle threshold's minimum is an extreme")
        };
        assert!(min.is_some() && max.is_none(), "{min:?} {max:?}");
        // By patient: 10 patients of 3 rows each at the minimum are 10 < 11
        // holders, so the minimum is an extreme again.
        let small = Column::numeric(
            "x",
            (0..60)
                .map(|i| if i < 30 { 0.0 } else { i as f64 })
                .collect(),
        );
        let units: Vec<u32> = (0..60).map(|i| if i < 30 { i / 3 } else { i }).collect();
        let Some(Extremes::Range { min, .. }) = Extremes::of(&small, Some(&units), 11) else {
            panic!("extremes of x")
        };
        assert_eq!(min, Some(0.0));
        assert!(matches!(
            Extremes::of(&small, None, 11),
            Some(Extremes::Range { min: None, .. })
        ));

        let ok = run(&r, &h, &fresh, &Units::default());
        assert!(ok.passed, "{ok:?}");
        // The holdout almost never hits: the shared floor and cap are out.
        assert!(ok.noise_floor.unwrap() < 0.01, "{ok:?}");
        // 2 % of rows clamped onto the lab's one-patient extremes.
        let (lo, hi) = lab_range(&r);
        let mut columns = fresh.columns.clone();
        columns[0] = Column::numeric(
            "lab",
            (0..1000)
                .map(|i| match i % 50 {
                    0 => lo,
                    1 => hi,
                    _ => 50.0 + (i as f64 * 0.001),
                })
                .collect(),
        );
        let clamped = Table::new(columns);
        let fail = run(&r, &h, &clamped, &Units::default());
        assert!(!fail.passed, "{fail:?}");
        assert!((fail.statistic - 0.04).abs() < 1e-12, "{}", fail.statistic);
    }

    /// With one row per record, the allowance is Fisher's test: 10 hits
    /// among 400 records, 200 a side, 2 in the holdout; the pseudo-batch's
    /// hits X ~ Hypergeometric(400, 10, 200), P(X ≥ 9) = 0.0100, P(X ≥ 10)
    /// = 0.0009 (exact sums of binomial coefficients, Python's math.comb), so
    /// at α = 0.5 % the critical X is 9 and the allowance 0.01 + (2·9 −
    /// 10)/200 = 0.05 (one step of the sampled quantile either way).
    #[test]
    fn allowance_is_fishers_test_on_rows() {
        let mut s = vec![false; 200];
        let mut h = vec![false; 200];
        s[..8].iter_mut().for_each(|x| *x = true);
        h[..2].iter_mut().for_each(|x| *x = true);
        let a = allowance(&s, &h, &Units::default()).at(0.005).unwrap();
        assert!((a - 0.05).abs() <= 0.0101, "{a}");
    }

    /// With patients of two rows that hit together, the relabelling moves
    /// patients: 100 + 100 patients, 5 of them hitting (1 in the holdout).
    /// The pseudo-batch's hitting patients X ~ Hypergeometric(200, 5, 100),
    /// and its share difference is 0.01 + (2X − 5)/100. P(X ≥ 4) =
    /// [C(5,4)·C(195,96) + C(195,95)] / C(200,100) = 0.1843 and P(X ≥ 5) =
    /// 0.0297 (math.comb), so at α = 2 % the critical X is 5: allowance
    /// 0.01 + 5/100 = 0.06, where a row-level Fisher test (10 hits among
    /// 400 rows, P(Y ≥ 8) = 0.0525, P(Y ≥ 9) = 0.0100) would allow only
    /// 0.01 + (2·8 − 10)/200 = 0.04.
    #[test]
    fn allowance_relabels_whole_patients() {
        let codes: Vec<u32> = (0..200).map(|r| r / 2).collect();
        let mut s = vec![false; 200];
        let mut h = vec![false; 200];
        s[..8].iter_mut().for_each(|x| *x = true);
        h[..2].iter_mut().for_each(|x| *x = true);
        let units = Units {
            train: None,
            holdout: Some(codes.clone()),
            synthetic: Some(codes),
        };
        let a = allowance(&s, &h, &units);
        let q = a.at(0.02).unwrap();
        assert!((q - 0.06).abs() < 1e-9, "{q}");
        let rows = allowance(&s, &h, &Units::default()).at(0.02).unwrap();
        assert!((rows - 0.04).abs() < 1e-9, "{rows}");
        assert!((a.at(0.5).unwrap() - 0.01).abs() <= 0.0201);
    }
}
