//! Discrete codes for one column across the three tables of a gate run.
//!
//! Joint (2-D contingency) comparisons, per-stratum conditionals and the
//! SDMetrics-style pair scores all need every column as small integers that
//! mean the same thing in training R, holdout H and synthetic S. Categorical
//! columns carry independent dictionaries per table, so labels are aligned
//! once here; numeric columns are cut into bins whose edges come from R
//! only, so a shifted synthetic column lands in different bins instead of
//! dragging the edges along. The missing value is always a level of its own
//! (the last one), so losing or inventing missingness shows up as mass moved.

use std::collections::HashMap;

use super::cells;
use super::input::ColumnTriple;
use crate::stats::{quantile_sorted, sorted_finite};
use crate::table::{Column, ColumnValues, NULL_CODE};

/// How numeric columns are cut into levels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Binning {
    /// Cuts at the training quantiles `1/k, …, (k−1)/k` (duplicates merged,
    /// so a column with few distinct values gets fewer bins); bins are
    /// `(c_{i−1}, c_i]` with open outer ends, as in
    /// [`crate::stats::quantile_bin_counts`]. Equal-mass bins keep every
    /// cell of a joint table populated, which keeps the sampling noise of
    /// the joint TV low for skewed lab values.
    Quantile(usize),
    /// `k` equal-width bins over the training range with open outer ends,
    /// left-closed `[e_{i−1}, e_i)`: SDMetrics' `discretize_column`
    /// (`numpy.histogram_bin_edges` on the real values, outer edges set to
    /// ±∞, `numpy.digitize`). Used only where we reproduce SDMetrics.
    EqualWidth(usize),
}

/// One column coded on a shared set of levels in R, H and S.
#[derive(Debug, Clone)]
pub(crate) struct Coded {
    /// Human-readable level names (category label, bin interval or
    /// `(missing)`); `labels.len()` is the number of levels.
    pub labels: Vec<String>,
    /// Index of the missing level (always the last).
    pub missing: u32,
    pub r: Vec<u32>,
    pub h: Vec<u32>,
    pub s: Vec<u32>,
}

impl Coded {
    pub fn levels(&self) -> usize {
        self.labels.len()
    }

    /// Per level: may it be named where it leaves the gate, i.e. are the
    /// training and holdout records behind it no small cell at `k`
    /// ([`cells::nameable`])?
    pub fn nameable(&self, k: usize) -> Vec<bool> {
        let (r, h) = (
            counts(&self.r, self.levels()),
            counts(&self.h, self.levels()),
        );
        r.iter()
            .zip(&h)
            .map(|(&r, &h)| cells::nameable(r as usize, h as usize, k))
            .collect()
    }

    /// The name of every level as it may leave the gate: its label, or
    /// [`cells::rare_levels`] where [`Coded::nameable`] says no.
    pub fn shown_labels(&self, k: usize) -> Vec<String> {
        self.labels
            .iter()
            .zip(self.nameable(k))
            .map(|(label, ok)| {
                if ok {
                    label.clone()
                } else {
                    cells::rare_levels(k)
                }
            })
            .collect()
    }

    /// The codes of training (0), holdout (1) or synthetic (2).
    pub fn side(&self, k: usize) -> &[u32] {
        match k {
            0 => &self.r,
            1 => &self.h,
            _ => &self.s,
        }
    }
}

pub(crate) const MISSING_LABEL: &str = "(missing)";

/// Codes one column of the three tables. Kinds must already agree (see
/// `input::align`).
pub(crate) fn code(triple: &ColumnTriple<'_>, binning: Binning) -> Coded {
    match &triple.train.values {
        ColumnValues::Categorical { .. } => code_categorical(triple),
        ColumnValues::Numeric(r) => code_numeric(r, triple, binning),
    }
}

fn code_categorical(triple: &ColumnTriple<'_>) -> Coded {
    let mut index: HashMap<&str, u32> = HashMap::new();
    let mut labels: Vec<String> = Vec::new();
    let tables = [triple.train, triple.holdout, triple.synthetic];
    // Slot of every dictionary entry, per table (labels in R's order first).
    let slots: Vec<Vec<u32>> = tables
        .iter()
        .map(|c| match &c.values {
            ColumnValues::Categorical { dictionary, .. } => dictionary
                .iter()
                .map(|label| {
                    *index.entry(label.as_str()).or_insert_with(|| {
                        labels.push(label.clone());
                        labels.len() as u32 - 1
                    })
                })
                .collect(),
            ColumnValues::Numeric(_) => Vec::new(),
        })
        .collect();
    let missing = labels.len() as u32;
    labels.push(MISSING_LABEL.to_string());
    let map = |c: &Column, slot: &[u32]| -> Vec<u32> {
        match &c.values {
            ColumnValues::Categorical { codes, .. } => codes
                .iter()
                .map(|&x| {
                    if x == NULL_CODE {
                        missing
                    } else {
                        slot.get(x as usize).copied().unwrap_or(missing)
                    }
                })
                .collect(),
            ColumnValues::Numeric(v) => vec![missing; v.len()],
        }
    };
    Coded {
        r: map(triple.train, &slots[0]),
        h: map(triple.holdout, &slots[1]),
        s: map(triple.synthetic, &slots[2]),
        labels,
        missing,
    }
}

/// Interior bin edges from the finite training values.
pub(crate) fn edges(train: &[f64], binning: Binning) -> Vec<f64> {
    let sorted = sorted_finite(train);
    let (Some(&lo), Some(&hi)) = (sorted.first(), sorted.last()) else {
        return Vec::new();
    };
    match binning {
        Binning::Quantile(k) => {
            let mut cuts: Vec<f64> = (1..k)
                .filter_map(|i| quantile_sorted(&sorted, i as f64 / k as f64))
                .collect();
            cuts.dedup();
            cuts
        }
        Binning::EqualWidth(k) => {
            // numpy.histogram_bin_edges widens a zero range to ±0.5.
            let (lo, hi) = if hi > lo {
                (lo, hi)
            } else {
                (lo - 0.5, hi + 0.5)
            };
            let width = (hi - lo) / k as f64;
            (1..k).map(|i| lo + i as f64 * width).collect()
        }
    }
}

/// The bin of a finite `x` given interior `edges`.
pub(crate) fn bin_of(x: f64, edges: &[f64], binning: Binning) -> u32 {
    let i = match binning {
        Binning::Quantile(_) => edges.partition_point(|&c| c < x),
        Binning::EqualWidth(_) => edges.partition_point(|&c| c <= x),
    };
    i as u32
}

fn code_numeric(r: &[f64], triple: &ColumnTriple<'_>, binning: Binning) -> Coded {
    let cuts = edges(r, binning);
    let bins = cuts.len() + 1;
    let missing = bins as u32;
    let map = |c: &Column| -> Vec<u32> {
        match &c.values {
            ColumnValues::Numeric(v) => v
                .iter()
                .map(|&x| {
                    if x.is_finite() {
                        bin_of(x, &cuts, binning)
                    } else {
                        missing
                    }
                })
                .collect(),
            ColumnValues::Categorical { codes, .. } => vec![missing; codes.len()],
        }
    };
    let (open, close) = match binning {
        Binning::Quantile(_) => ("(", "]"),
        Binning::EqualWidth(_) => ("[", ")"),
    };
    let mut labels: Vec<String> = (0..bins)
        .map(|i| {
            let lo = if i == 0 {
                "-inf".to_string()
            } else {
                format!("{:.4}", cuts[i - 1])
            };
            let hi = if i == bins - 1 {
                "inf".to_string()
            } else {
                format!("{:.4}", cuts[i])
            };
            format!("{open}{lo}, {hi}{close}")
        })
        .collect();
    labels.push(MISSING_LABEL.to_string());
    Coded {
        r: map(triple.train),
        h: map(triple.holdout),
        s: map(triple.synthetic),
        labels,
        missing,
    }
}

/// Counts of `codes` over `levels`.
pub(crate) fn counts(codes: &[u32], levels: usize) -> Vec<u64> {
    let mut c = vec![0u64; levels];
    for &x in codes {
        if let Some(slot) = c.get_mut(x as usize) {
            *slot += 1;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triple<'a>(r: &'a Column, h: &'a Column, s: &'a Column) -> ColumnTriple<'a> {
        ColumnTriple {
            train: r,
            holdout: h,
            synthetic: s,
        }
    }

    #[test]
    fn categorical_labels_are_aligned_across_dictionaries() {
        let r = Column::categorical("x", &[Some("a"), Some("b"), None]);
        let h = Column::categorical("x", &[Some("b"), Some("a")]);
        let s = Column::categorical("x", &[Some("c"), Some("a"), None]);
        let c = code(&triple(&r, &h, &s), Binning::Quantile(10));
        assert_eq!(c.labels, vec!["a", "b", "c", MISSING_LABEL]);
        assert_eq!((c.r, c.h, c.s), (vec![0, 1, 3], vec![1, 0], vec![2, 0, 3]));
    }

    #[test]
    fn levels_behind_small_real_cells_are_not_shown_by_name() {
        let labels = |n: usize, rare: usize, only_h: usize| -> Vec<Option<String>> {
            (0..n)
                .map(|i| {
                    Some(if i < rare {
                        "rare".to_string()
                    } else if i < rare + only_h {
                        "holdout-only".to_string()
                    } else {
                        "common".to_string()
                    })
                })
                .collect()
        };
        let r = Column::categorical("x", &labels(40, 3, 0));
        let h = Column::categorical("x", &labels(40, 2, 4));
        let s = Column::categorical("x", &labels(40, 30, 0));
        let c = code(&triple(&r, &h, &s), Binning::Quantile(10));
        assert_eq!(
            c.labels,
            vec!["rare", "common", "holdout-only", MISSING_LABEL]
        );
        let pooled = cells::rare_levels(11);
        assert_eq!(
            c.shown_labels(11),
            vec![
                pooled.clone(),
                "common".into(),
                pooled,
                MISSING_LABEL.into()
            ]
        );
        assert_eq!(c.shown_labels(2), c.labels);
    }

    #[test]
    fn numeric_bins_follow_training_edges() {
        let r = Column::numeric("x", vec![1.0, 2.0, 3.0, 4.0]);
        let h = Column::numeric("x", vec![2.5, f64::NAN]);
        let s = Column::numeric("x", vec![100.0, -5.0, 2.0]);
        // Quantile(2): one cut at the median 2.5, bins (-inf,2.5], (2.5,inf).
        let c = code(&triple(&r, &h, &s), Binning::Quantile(2));
        assert_eq!(
            (c.r, c.h, c.s),
            (vec![0, 0, 1, 1], vec![0, 2], vec![1, 0, 0])
        );
        // EqualWidth(3) over [1, 4]: edges 2, 3, left-closed.
        let c = code(&triple(&r, &h, &s), Binning::EqualWidth(3));
        assert_eq!(
            (c.r, c.h, c.s),
            (vec![0, 1, 2, 2], vec![1, 3], vec![2, 0, 1])
        );
        assert_eq!(c.labels[1], "[2.0000, 3.0000)");
    }
}
