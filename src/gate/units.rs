//! Privacy units: which patient owns each row, for tables where a patient
//! may own several rows (one row per test, per visit, per lab result).
//!
//! Training and holdout are split by patient, and a fresh batch is a batch
//! of fresh patients, so the sampling noise the gate must allow for is that
//! of a sample of patients, not of rows. A patient's rows share their age,
//! sex, clinic and much else, so a row-level resampling null sees two
//! samples of rows agree more closely than two samples of patients do: on
//! a table of COVID-19 tests (15,524 tests of 12,344 children, 1.9 rows per
//! patient on the size-weighted average) fresh patients failed 23–32 % of
//! batches against row-level allowances. With units, the fidelity null
//! moves whole patients between its pseudo-training and pseudo-batch sides,
//! and the membership attacks score one record per patient, so records of
//! one person are not counted as independent evidence.
//!
//! Without units every row is its own unit (what a window whose SQL keeps
//! one row per patient has anyway).

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// Unit codes per row of each table; `None` means one unit per row. The
/// codes of different tables are unrelated (a synthetic batch's patients are
/// not real patients), so only equal codes *within* a table group rows.
#[derive(Debug, Clone, Default)]
pub struct Units {
    pub train: Option<Vec<u32>>,
    pub holdout: Option<Vec<u32>>,
    pub synthetic: Option<Vec<u32>>,
}

impl Units {
    /// Codes from labels (any text: patient ids as the source spells
    /// them); a missing label is a unit of its own.
    pub fn codes<'a>(labels: impl IntoIterator<Item = Option<&'a str>>) -> Vec<u32> {
        let mut seen = std::collections::HashMap::new();
        let mut next = 0u32;
        labels
            .into_iter()
            .map(|l| {
                let fresh = next;
                let code = match l {
                    Some(l) => *seen.entry(l).or_insert(fresh),
                    None => fresh,
                };
                if code == fresh {
                    next += 1;
                }
                code
            })
            .collect()
    }
}

/// Row indices grouped by unit, in first-appearance order; a missing or
/// ill-sized code list gives one group per row.
pub(crate) fn groups(units: Option<&[u32]>, rows: usize) -> Vec<Vec<usize>> {
    let Some(codes) = units.filter(|c| c.len() == rows) else {
        return (0..rows).map(|r| vec![r]).collect();
    };
    let mut slot = std::collections::HashMap::new();
    let mut out: Vec<Vec<usize>> = Vec::new();
    for (row, &code) in codes.iter().enumerate() {
        let i = *slot.entry(code).or_insert_with(|| {
            out.push(Vec::new());
            out.len() - 1
        });
        out[i].push(row);
    }
    out
}

/// One row per unit, chosen at random, in row order: the records a
/// membership attacker is scored on, so each person counts once.
pub(crate) fn one_per_unit(rng: &mut StdRng, units: Option<&[u32]>, rows: usize) -> Vec<usize> {
    let mut picked: Vec<usize> = groups(units, rows)
        .into_iter()
        .map(|g| match g.len() {
            // No draw for a unit of one row: without units the random
            // stream (and every seeded result after it) is unchanged.
            1 => g[0],
            len => g[rng.random_range(0..len)],
        })
        .collect();
    picked.sort_unstable();
    picked
}

/// Disjoint pseudo-samples of `n_a` and `n_b` rows drawn by whole groups:
/// the groups are shuffled and dealt to the first side until it has `n_a`
/// rows, then to the second until it has `n_b` (the group that crosses a
/// side's size is cut, so sizes are exact). When the groups hold fewer rows
/// than `n_a + n_b`, the second side is filled by drawing groups again with
/// replacement.
pub(crate) fn split_groups(
    rng: &mut StdRng,
    groups: &[Vec<usize>],
    n_a: usize,
    n_b: usize,
) -> (Vec<usize>, Vec<usize>) {
    if groups.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.shuffle(rng);
    let mut deal = order.into_iter();
    let mut fill = |n: usize, rng: &mut StdRng| {
        let mut rows = Vec::with_capacity(n);
        while rows.len() < n {
            let g = match deal.next() {
                Some(g) => g,
                None => rng.random_range(0..groups.len()),
            };
            let room = n - rows.len();
            rows.extend(groups[g].iter().take(room).copied());
        }
        rows
    };
    let a = fill(n_a, rng);
    let b = fill(n_b, rng);
    (a, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn groups_follow_codes_and_default_to_rows() {
        assert_eq!(
            groups(Some(&[7, 3, 7, 3, 9]), 5),
            vec![vec![0, 2], vec![1, 3], vec![4]]
        );
        assert_eq!(groups(None, 3), vec![vec![0], vec![1], vec![2]]);
        // A code list of the wrong length is ignored, not trusted.
        assert_eq!(groups(Some(&[1, 1]), 3).len(), 3);
        assert_eq!(
            Units::codes([Some("b"), Some("a"), None, Some("b"), None]),
            vec![0, 1, 2, 0, 3]
        );
    }

    #[test]
    fn split_keeps_units_together_and_sizes_exact() {
        // 30 units of 4 rows each.
        let codes: Vec<u32> = (0..120).map(|r| (r / 4) as u32).collect();
        let g = groups(Some(&codes), 120);
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..20 {
            let (a, b) = split_groups(&mut rng, &g, 40, 60);
            assert_eq!((a.len(), b.len()), (40, 60));
            let ua: std::collections::BTreeSet<u32> = a.iter().map(|&r| codes[r]).collect();
            let ub: std::collections::BTreeSet<u32> = b.iter().map(|&r| codes[r]).collect();
            // Sizes are multiples of 4, so no unit is cut: 10 and 15 units,
            // none on both sides.
            assert_eq!((ua.len(), ub.len()), (10, 15));
            assert!(ua.is_disjoint(&ub));
        }
        let picked = one_per_unit(&mut rng, Some(&codes), 120);
        assert_eq!(picked.len(), 30);
        let units: std::collections::BTreeSet<u32> = picked.iter().map(|&r| codes[r]).collect();
        assert_eq!(units.len(), 30);
    }
}
