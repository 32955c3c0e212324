//! Comparisons of two categorical distributions given as aligned counts.
//!
//! Tables carry independent dictionaries (the synthetic batch codes its
//! categories in its own order), so codes are never compared directly: both
//! columns are first counted by label into one aligned vector pair, with the
//! missing value as a category of its own, and every statistic here works on
//! those counts.

use std::collections::HashMap;

use statrs::distribution::{ChiSquared, ContinuousCDF};

use super::sample::PSI_EPSILON;
use super::{StatsError, check_codes, kind_name};
use crate::table::{Column, ColumnValues, NULL_CODE};

/// Counts of two categorical columns over a shared list of labels.
#[derive(Debug, Clone, PartialEq)]
pub struct AlignedCounts {
    /// `Some(label)` for a category, `None` for the missing value.
    pub labels: Vec<Option<String>>,
    /// Counts of the first column, `labels[k]` ↔ `a[k]`.
    pub a: Vec<u64>,
    /// Counts of the second column.
    pub b: Vec<u64>,
}

/// Counts two categorical columns by label.
///
/// Labels appear in the order of the first column's dictionary, then labels
/// only the second column knows; the missing category comes last and only
/// when either column has a missing value. Duplicate labels inside one
/// dictionary are merged.
///
/// # Errors
/// [`StatsError::KindMismatch`] if either column is numeric,
/// [`StatsError::InvalidCode`] if a code lies outside its dictionary.
pub fn aligned_counts(a: &Column, b: &Column) -> Result<AlignedCounts, StatsError> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut labels: Vec<Option<String>> = Vec::new();
    let mut per_column = Vec::with_capacity(2);
    for column in [a, b] {
        let ColumnValues::Categorical { codes, dictionary } = &column.values else {
            return Err(StatsError::KindMismatch {
                column: column.name.clone(),
                expected: "categorical",
                found: kind_name(&column.values),
            });
        };
        check_codes(column)?;
        let slot: Vec<usize> = dictionary
            .iter()
            .map(|label| {
                *index.entry(label.as_str()).or_insert_with(|| {
                    labels.push(Some(label.clone()));
                    labels.len() - 1
                })
            })
            .collect();
        per_column.push((codes, slot));
    }
    let null_slot = labels.len();
    let mut counts = [vec![0u64; null_slot + 1], vec![0u64; null_slot + 1]];
    for (side, (codes, slot)) in per_column.iter().enumerate() {
        // Count by code first (cheap), then fold codes onto labels.
        let mut by_code = vec![0u64; slot.len()];
        for &c in codes.iter() {
            if c == NULL_CODE {
                counts[side][null_slot] += 1;
            } else {
                by_code[c as usize] += 1;
            }
        }
        for (code, &n) in by_code.iter().enumerate() {
            counts[side][slot[code]] += n;
        }
    }
    let [mut ca, mut cb] = counts;
    if ca[null_slot] == 0 && cb[null_slot] == 0 {
        ca.pop();
        cb.pop();
    } else {
        labels.push(None);
    }
    Ok(AlignedCounts {
        labels,
        a: ca,
        b: cb,
    })
}

fn proportions(counts: &[u64], len: usize) -> Option<Vec<f64>> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let mut p: Vec<f64> = counts.iter().map(|&c| c as f64 / total as f64).collect();
    p.resize(len, 0.0);
    Some(p)
}

/// Total variation distance `½ Σ |p_k − q_k|` between two count vectors
/// (a shorter vector is padded with zeros). In [0, 1]; `None` if either
/// side has no observations.
pub fn total_variation(a: &[u64], b: &[u64]) -> Option<f64> {
    let len = a.len().max(b.len());
    let (p, q) = (proportions(a, len)?, proportions(b, len)?);
    let tv = 0.5 * p.iter().zip(&q).map(|(x, y)| (x - y).abs()).sum::<f64>();
    Some(tv.clamp(0.0, 1.0))
}

/// Jensen–Shannon divergence in bits (base 2, so in [0, 1]) between two
/// count vectors. This is the divergence; scipy's `jensenshannon` returns
/// its square root (the distance). `None` if either side is empty.
pub fn jensen_shannon(a: &[u64], b: &[u64]) -> Option<f64> {
    let len = a.len().max(b.len());
    let (p, q) = (proportions(a, len)?, proportions(b, len)?);
    let kl_to_mid = |x: f64, m: f64| if x > 0.0 { x * (x / m).log2() } else { 0.0 };
    let js: f64 = p
        .iter()
        .zip(&q)
        .map(|(&x, &y)| {
            let m = 0.5 * (x + y);
            0.5 * kl_to_mid(x, m) + 0.5 * kl_to_mid(y, m)
        })
        .sum();
    Some(js.clamp(0.0, 1.0))
}

/// Population stability index `Σ (q − p) · ln(q / p)` of `current` (q)
/// against `reference` (p), with proportions floored at
/// [`PSI_EPSILON`] so an empty bin stays finite. `None` if either side is
/// empty.
pub fn psi_counts(reference: &[u64], current: &[u64]) -> Option<f64> {
    let len = reference.len().max(current.len());
    let (p, q) = (proportions(reference, len)?, proportions(current, len)?);
    let psi = p
        .iter()
        .zip(&q)
        .map(|(&x, &y)| {
            let (x, y) = (x.max(PSI_EPSILON), y.max(PSI_EPSILON));
            (y - x) * (y / x).ln()
        })
        .sum::<f64>();
    Some(psi.max(0.0))
}

/// Pearson chi-square test of homogeneity on a 2 × k table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChiSquare {
    /// Σ (observed − expected)² / expected, no continuity correction.
    pub statistic: f64,
    /// k − 1, counting only categories observed in either sample.
    pub dof: usize,
    /// Upper tail of χ²(dof); 1 when dof = 0.
    pub p_value: f64,
}

/// Chi-square test that two count vectors come from the same categorical
/// distribution. Categories empty in both samples are dropped. `None` if
/// either side has no observations.
pub fn chi_square_homogeneity(a: &[u64], b: &[u64]) -> Option<ChiSquare> {
    let len = a.len().max(b.len());
    let get = |v: &[u64], k: usize| v.get(k).copied().unwrap_or(0) as f64;
    let (na, nb) = (a.iter().sum::<u64>() as f64, b.iter().sum::<u64>() as f64);
    if na == 0.0 || nb == 0.0 {
        return None;
    }
    let total = na + nb;
    let mut statistic = 0.0;
    let mut categories = 0usize;
    for k in 0..len {
        let (oa, ob) = (get(a, k), get(b, k));
        let col = oa + ob;
        if col == 0.0 {
            continue;
        }
        categories += 1;
        let (ea, eb) = (na * col / total, nb * col / total);
        statistic += (oa - ea).powi(2) / ea + (ob - eb).powi(2) / eb;
    }
    let dof = categories.saturating_sub(1);
    let p_value = match ChiSquared::new(dof as f64) {
        Ok(dist) if dof > 0 => dist.sf(statistic).clamp(0.0, 1.0),
        _ => 1.0,
    };
    Some(ChiSquare {
        statistic,
        dof,
        p_value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12
    }

    #[test]
    fn aligns_by_label_not_code() {
        let a = Column::categorical("sex", &[Some("F"), Some("M"), Some("F"), None]);
        let b = Column::categorical("sex", &[Some("M"), Some("X"), Some("F"), Some("M")]);
        let c = aligned_counts(&a, &b).unwrap();
        assert_eq!(
            c.labels,
            vec![
                Some("F".to_string()),
                Some("M".to_string()),
                Some("X".to_string()),
                None
            ]
        );
        assert_eq!(c.a, vec![2, 1, 0, 1]);
        assert_eq!(c.b, vec![1, 2, 1, 0]);
    }

    #[test]
    fn rejects_numeric_and_bad_codes() {
        let num = Column::numeric("x", vec![1.0]);
        let cat = Column::categorical("x", &[Some("a")]);
        assert!(matches!(
            aligned_counts(&cat, &num),
            Err(StatsError::KindMismatch { .. })
        ));
        let bad = Column {
            name: "x".into(),
            values: ColumnValues::Categorical {
                codes: vec![0, 7],
                dictionary: vec!["a".into()],
            },
        };
        assert!(matches!(
            aligned_counts(&cat, &bad),
            Err(StatsError::InvalidCode {
                code: 7,
                row: 1,
                ..
            })
        ));
    }

    #[test]
    fn total_variation_hand_computed() {
        // p = [.5,.25,.25], q = [.25,.5,.25] → ½(.25 + .25 + 0) = 0.25
        assert!(close(
            total_variation(&[2, 1, 1], &[1, 2, 1]).unwrap(),
            0.25
        ));
        assert_eq!(total_variation(&[3, 0], &[0, 5]), Some(1.0));
        assert_eq!(total_variation(&[1, 1], &[5, 5]), Some(0.0));
        // padding: [1] vs [1, 1] → p = [1, 0], q = [.5, .5]
        assert!(close(total_variation(&[1], &[1, 1]).unwrap(), 0.5));
        assert!(total_variation(&[0, 0], &[1]).is_none());
    }

    #[test]
    fn jensen_shannon_matches_scipy() {
        // scipy.spatial.distance.jensenshannon(p, q, base=2) ** 2
        assert!(close(jensen_shannon(&[1, 0], &[0, 1]).unwrap(), 1.0));
        // jensenshannon([1,0,0],[.5,.5,0], base=2)**2 = 0.3112781244591328
        assert!(close(
            jensen_shannon(&[2, 0, 0], &[1, 1, 0]).unwrap(),
            0.3112781244591328
        ));
        // jensenshannon([10,20,30],[30,20,10], base=2)**2 = 0.1258145836939115
        assert!(close(
            jensen_shannon(&[10, 20, 30], &[30, 20, 10]).unwrap(),
            0.1258145836939115
        ));
        assert_eq!(jensen_shannon(&[4, 4], &[1, 1]), Some(0.0));
    }

    #[test]
    fn psi_counts_hand_computed() {
        // (0.25-0.5)·ln(0.5) + (0.75-0.5)·ln(1.5) = 0.2746530721670273
        assert!(close(
            psi_counts(&[2, 2], &[1, 3]).unwrap(),
            0.2746530721670273
        ));
        // Empty current bin floored at 1e-4:
        // (1e-4 - .5)·ln(1e-4/.5) + (1 - .5)·ln(1/.5) = 4.60431846666895 (hand, via python math)
        assert!((psi_counts(&[1, 1], &[0, 4]).unwrap() - 4.604_318_466_668_95).abs() < 1e-9);
    }

    #[test]
    fn chi_square_matches_scipy() {
        // scipy.stats.chi2_contingency([[10,20,30],[20,20,20]], correction=False)
        //   → statistic 5.333333333333334, p 0.0694834512228015, dof 2
        let t = chi_square_homogeneity(&[10, 20, 30], &[20, 20, 20]).unwrap();
        assert!(close(t.statistic, 5.333333333333334));
        assert_eq!(t.dof, 2);
        assert!((t.p_value - 0.0694834512228015).abs() < 1e-10);
        // [[50,30,20],[40,40,20]] → 2.5396825396825395, p 0.28087620176428163
        // (a category empty in both is dropped, so dof stays 2)
        let t = chi_square_homogeneity(&[50, 30, 0, 20], &[40, 40, 0, 20]).unwrap();
        assert!(close(t.statistic, 2.5396825396825395));
        assert_eq!(t.dof, 2);
        assert!((t.p_value - 0.28087620176428163).abs() < 1e-10);
        let single = chi_square_homogeneity(&[3], &[5]).unwrap();
        assert_eq!(
            (single.statistic, single.dof, single.p_value),
            (0.0, 0, 1.0)
        );
        assert!(chi_square_homogeneity(&[], &[1]).is_none());
    }
}
