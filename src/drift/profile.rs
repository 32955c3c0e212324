//! The reference profile stored with every model, and window profiles cut
//! on the same bins.
//!
//! Why: a drift verdict must compare like with like and must not need the
//! training rows (they are not kept). So when a model is fitted, each column
//! of its training window is summarised once — numeric columns by quantile
//! bin edges with open tail bins, a mergeable quantile sketch, mean, std and
//! null rate; categorical columns (and numeric columns with few distinct
//! values) by their top-K categories plus OTHER / UNSEEN / NULL buckets — and
//! every later window is counted into exactly those bins. Comparisons are
//! then exact counts against counts: a value outside the reference range
//! lands in a tail bin and a category the reference never saw in UNSEEN, so
//! nothing is infinite. The profile is plain data (serde), versioned with the
//! model; `format` tells a profile written by an older engine apart.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::multivariate::JointProfile;
use super::segments::SegmentProfile;
use super::sketch::{QuantileSketch, SKETCH_POINTS};
use crate::stats::{quantile_sorted, sorted_finite};
use crate::table::{Column, ColumnValues, NULL_CODE, Table};
use crate::topology::DriftConfig;

/// Version of the profile layout; 0 marks a profile from before it existed
/// (such a reference cannot be compared with, and the model is refitted).
pub const PROFILE_FORMAT: u32 = 2;
/// Labels outside the top K remembered (as hashes) to tell OTHER from UNSEEN.
const MAX_OTHER_LABELS: usize = 4096;

/// Summary of one training column.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnProfile {
    Numeric(NumericProfile),
    Categorical(CategoricalProfile),
}

/// A numeric column: bins, sketch and moments of its finite values.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NumericProfile {
    /// Bin edges: the minimum, then the reference quantiles 1/B … (B−1)/B
    /// (duplicates merged). Bin 0 is the open lower tail (< minimum), bin
    /// `edges.len() + 1` the open upper tail (> maximum), bin j in between
    /// holds [edges[j−1], edges[j]) (the last interior bin is closed at max).
    pub edges: Vec<f64>,
    pub max: f64,
    /// Reference count per bin (tails are 0 by construction).
    pub counts: Vec<u64>,
    pub nulls: u64,
    pub rows: u64,
    pub mean: f64,
    pub std: f64,
    pub sketch: QuantileSketch,
}

/// A categorical column (or a numeric one with few distinct values).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CategoricalProfile {
    /// The K most frequent labels (count descending, then label).
    pub labels: Vec<String>,
    /// For a numeric column treated as categorical: the value of each label.
    pub numeric_values: Option<Vec<f64>>,
    pub counts: Vec<u64>,
    /// Rows in labels seen but outside the top K.
    pub other: u64,
    /// Hashes of those labels (sorted), so they count as OTHER, not UNSEEN.
    pub other_hashes: Vec<u64>,
    /// False when more labels than could be remembered fell outside the top
    /// K: an unknown label then counts as OTHER (it cannot be called unseen).
    pub other_complete: bool,
    /// Labels seen exactly once: by Good–Turing, the share of a fresh sample
    /// in never-seen labels is about `singletons / non-null rows`.
    pub singletons: u64,
    pub nulls: u64,
    pub rows: u64,
}

/// Per-column profiles of a model's training window, its joint structure
/// and optional per-segment profiles.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReferenceProfile {
    /// `PROFILE_FORMAT` when written; 0 for a profile from an older engine.
    #[serde(default)]
    pub format: u32,
    pub rows: usize,
    #[serde(default)]
    pub profiles: Vec<(String, ColumnProfile)>,
    /// Rank correlations and copula-space covariance of the declared numeric columns.
    #[serde(default)]
    pub joint: Option<JointProfile>,
    #[serde(default)]
    pub segments: Vec<SegmentProfile>,
}

/// A window column counted into the reference's buckets.
#[derive(Debug, Clone)]
pub enum WindowColumn {
    Numeric {
        /// Same bins as `NumericProfile::counts`.
        counts: Vec<u64>,
        /// Finite values, ascending (for KS and Wasserstein-1).
        sorted: Vec<f64>,
        nulls: u64,
        rows: u64,
    },
    Categorical {
        /// `labels.len()` top-K buckets, then OTHER, then UNSEEN.
        counts: Vec<u64>,
        nulls: u64,
        rows: u64,
    },
}

impl ReferenceProfile {
    /// Profile with default settings (see `build_with`).
    pub fn build(table: &Table) -> ReferenceProfile {
        Self::build_with(table, &DriftConfig::default())
    }

    /// Profiles every column, the declared correlation columns and, when
    /// configured, every segment with enough rows.
    pub fn build_with(table: &Table, config: &DriftConfig) -> ReferenceProfile {
        let profiles: Vec<(String, ColumnProfile)> = table
            .columns
            .iter()
            .map(|c| (c.name.clone(), ColumnProfile::build(c, config)))
            .collect();
        let joint = JointProfile::build(table, &profiles, config);
        let segments = SegmentProfile::build_all(table, &profiles, config);
        ReferenceProfile {
            format: PROFILE_FORMAT,
            rows: table.n_rows(),
            profiles,
            joint,
            segments,
        }
    }

    pub fn column(&self, name: &str) -> Option<&ColumnProfile> {
        self.profiles
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p)
    }
}

fn label_hash(label: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(label.as_bytes());
    u64::from_le_bytes(d[..8].try_into().expect("32-byte digest"))
}

fn moments(sorted: &[f64]) -> (f64, f64) {
    let n = sorted.len() as f64;
    if sorted.is_empty() {
        return (0.0, 0.0);
    }
    let mean = sorted.iter().sum::<f64>() / n;
    let var = if sorted.len() > 1 {
        sorted.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

fn distinct(sorted: &[f64], at_most: usize) -> Option<Vec<(f64, u64)>> {
    let mut out: Vec<(f64, u64)> = Vec::new();
    for &x in sorted {
        match out.last_mut() {
            Some(last) if last.0 == x => last.1 += 1,
            _ => {
                if out.len() == at_most {
                    return None;
                }
                out.push((x, 1));
            }
        }
    }
    Some(out)
}

/// Label of a numeric value treated as a category (shortest round-trip form).
pub fn numeric_label(x: f64) -> String {
    format!("{x}")
}

impl ColumnProfile {
    pub fn build(column: &Column, config: &DriftConfig) -> ColumnProfile {
        let rows = column.values.len() as u64;
        match &column.values {
            ColumnValues::Numeric(values) => {
                let sorted = sorted_finite(values);
                let nulls = rows - sorted.len() as u64;
                if let Some(levels) = distinct(&sorted, config.categorical_max_distinct)
                    && !sorted.is_empty()
                {
                    let mut levels = levels;
                    levels.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.total_cmp(&b.0)));
                    return ColumnProfile::Categorical(CategoricalProfile {
                        labels: levels.iter().map(|l| numeric_label(l.0)).collect(),
                        numeric_values: Some(levels.iter().map(|l| l.0).collect()),
                        counts: levels.iter().map(|l| l.1).collect(),
                        other: 0,
                        other_hashes: vec![],
                        other_complete: true,
                        singletons: levels.iter().filter(|l| l.1 == 1).count() as u64,
                        nulls,
                        rows,
                    });
                }
                ColumnProfile::Numeric(NumericProfile::build(&sorted, nulls, rows, config.bins))
            }
            ColumnValues::Categorical { codes, dictionary } => {
                let mut by_label: HashMap<&str, u64> = HashMap::new();
                let mut by_code = vec![0u64; dictionary.len()];
                let mut nulls = 0;
                for &c in codes {
                    if c == NULL_CODE || c as usize >= dictionary.len() {
                        nulls += 1;
                    } else {
                        by_code[c as usize] += 1;
                    }
                }
                for (code, &n) in by_code.iter().enumerate() {
                    if n > 0 {
                        *by_label.entry(dictionary[code].as_str()).or_default() += n;
                    }
                }
                let mut levels: Vec<(&str, u64)> = by_label.into_iter().collect();
                levels.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
                let k = config.top_k.min(levels.len());
                let rest = &levels[k..];
                let mut other_hashes: Vec<u64> = rest
                    .iter()
                    .take(MAX_OTHER_LABELS)
                    .map(|l| label_hash(l.0))
                    .collect();
                other_hashes.sort_unstable();
                ColumnProfile::Categorical(CategoricalProfile {
                    labels: levels[..k].iter().map(|l| l.0.to_string()).collect(),
                    numeric_values: None,
                    counts: levels[..k].iter().map(|l| l.1).collect(),
                    other: rest.iter().map(|l| l.1).sum(),
                    other_hashes,
                    other_complete: rest.len() <= MAX_OTHER_LABELS,
                    singletons: levels.iter().filter(|l| l.1 == 1).count() as u64,
                    nulls,
                    rows,
                })
            }
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ColumnProfile::Numeric(_) => "numeric",
            ColumnProfile::Categorical(_) => "categorical",
        }
    }

    /// Counts a window column into this profile's buckets; `None` when the
    /// column's kind cannot be compared (categorical data for a numeric profile).
    pub fn window(&self, column: &Column) -> Option<WindowColumn> {
        match (self, &column.values) {
            (ColumnProfile::Numeric(p), ColumnValues::Numeric(values)) => {
                let sorted = sorted_finite(values);
                Some(WindowColumn::Numeric {
                    counts: p.bin_sorted(&sorted),
                    nulls: (values.len() - sorted.len()) as u64,
                    rows: values.len() as u64,
                    sorted,
                })
            }
            (ColumnProfile::Categorical(p), values) => Some(p.window(values)),
            (ColumnProfile::Numeric(_), ColumnValues::Categorical { .. }) => None,
        }
    }
}

impl NumericProfile {
    fn build(sorted: &[f64], nulls: u64, rows: u64, bins: usize) -> NumericProfile {
        let (mean, std) = moments(sorted);
        let mut p = NumericProfile {
            edges: vec![],
            max: 0.0,
            counts: vec![0],
            nulls,
            rows,
            mean,
            std,
            sketch: QuantileSketch::from_sorted(sorted, SKETCH_POINTS),
        };
        if sorted.is_empty() {
            return p;
        }
        let mut edges = vec![sorted[0]];
        for k in 1..bins {
            let q = quantile_sorted(sorted, k as f64 / bins as f64).unwrap_or(sorted[0]);
            if q > *edges.last().expect("non-empty") {
                edges.push(q);
            }
        }
        p.edges = edges;
        p.max = sorted[sorted.len() - 1];
        p.counts = p.bin_sorted(sorted);
        p
    }

    /// Bin counts of sorted finite values (one linear pass).
    pub fn bin_sorted(&self, sorted: &[f64]) -> Vec<u64> {
        let e = &self.edges;
        let mut counts = vec![0u64; e.len() + 2];
        if e.is_empty() {
            counts[0] = sorted.len() as u64;
            return counts;
        }
        let mut b = 0; // edges ≤ x so far
        for &x in sorted {
            if x < e[0] {
                counts[0] += 1;
            } else if x > self.max {
                counts[e.len() + 1] += 1;
            } else {
                while b < e.len() && e[b] <= x {
                    b += 1;
                }
                counts[b] += 1;
            }
        }
        counts
    }

    /// Non-null share of the reference.
    pub fn non_null(&self) -> u64 {
        self.rows - self.nulls
    }
}

impl CategoricalProfile {
    /// Buckets: top-K labels, OTHER, UNSEEN.
    pub fn reference_counts(&self) -> Vec<u64> {
        let mut c = self.counts.clone();
        c.push(self.other);
        c.push(0);
        c
    }

    pub fn non_null(&self) -> u64 {
        self.rows - self.nulls
    }

    /// True for a column with exactly two categories and nothing else.
    pub fn is_binary(&self) -> bool {
        self.labels.len() == 2 && self.other == 0
    }

    fn bucket_of_label(&self, index: &HashMap<&str, usize>, label: &str) -> usize {
        let k = self.labels.len();
        match index.get(label) {
            Some(&i) => i,
            None if !self.other_complete => k,
            None if self.other_hashes.binary_search(&label_hash(label)).is_ok() => k,
            None => k + 1,
        }
    }

    fn window(&self, values: &ColumnValues) -> WindowColumn {
        let k = self.labels.len();
        let mut counts = vec![0u64; k + 2];
        let mut nulls = 0u64;
        match values {
            ColumnValues::Categorical { codes, dictionary } => {
                let index: HashMap<&str, usize> = self
                    .labels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (l.as_str(), i))
                    .collect();
                let bucket: Vec<usize> = dictionary
                    .iter()
                    .map(|l| self.bucket_of_label(&index, l))
                    .collect();
                let mut by_code = vec![0u64; dictionary.len()];
                for &c in codes {
                    if c == NULL_CODE || c as usize >= dictionary.len() {
                        nulls += 1;
                    } else {
                        by_code[c as usize] += 1;
                    }
                }
                for (code, n) in by_code.into_iter().enumerate() {
                    counts[bucket[code]] += n;
                }
            }
            ColumnValues::Numeric(v) => {
                // Few distinct values: match by value, not by printed label.
                let mut order: Vec<(f64, usize)> = self
                    .numeric_values
                    .as_deref()
                    .unwrap_or(&[])
                    .iter()
                    .copied()
                    .zip(0..)
                    .collect();
                order.sort_by(|a, b| a.0.total_cmp(&b.0));
                let labelled: HashMap<&str, usize> = if self.numeric_values.is_none() {
                    self.labels
                        .iter()
                        .enumerate()
                        .map(|(i, l)| (l.as_str(), i))
                        .collect()
                } else {
                    HashMap::new()
                };
                for &x in v {
                    if !x.is_finite() {
                        nulls += 1;
                    } else if self.numeric_values.is_some() {
                        match order.binary_search_by(|p| p.0.total_cmp(&x)) {
                            Ok(i) => counts[order[i].1] += 1,
                            Err(_) => counts[k + 1] += 1,
                        }
                    } else {
                        // A categorical reference for a now-numeric column: by label.
                        counts[self.bucket_of_label(&labelled, &numeric_label(x))] += 1;
                    }
                }
            }
        }
        WindowColumn::Categorical {
            counts,
            nulls,
            rows: values.len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> DriftConfig {
        DriftConfig::default()
    }

    #[test]
    fn numeric_bins_have_open_tails_and_count_exactly() {
        let values: Vec<f64> = (0..100).map(f64::from).chain([f64::NAN]).collect();
        let p = ColumnProfile::build(
            &Column::numeric("x", values),
            &DriftConfig { bins: 4, ..cfg() },
        );
        let ColumnProfile::Numeric(p) = p else {
            panic!("numeric")
        };
        // min 0, quartiles 24.75, 49.5, 74.25 (type 7), max 99.
        assert_eq!(p.edges, vec![0.0, 24.75, 49.5, 74.25]);
        assert_eq!(p.counts, vec![0, 25, 25, 25, 25, 0]);
        assert_eq!((p.nulls, p.rows), (1, 101));
        let w = p.bin_sorted(&[-5.0, 0.0, 24.75, 99.0, 99.5, 1e9]);
        assert_eq!(w, vec![1, 1, 1, 0, 1, 2]);
        // mean of 0..99 = 49.5, sample std = √(100·101/12) ≈ 29.0115.
        assert!((p.mean - 49.5).abs() < 1e-12 && (p.std - 29.011_491).abs() < 1e-5);
    }

    #[test]
    fn categories_keep_top_k_other_unseen_and_null_apart() {
        let labels: Vec<Option<&str>> = ["a", "a", "a", "b", "b", "c", "d"]
            .iter()
            .map(|s| Some(*s))
            .chain([None])
            .collect();
        let p = ColumnProfile::build(
            &Column::categorical("c", &labels),
            &DriftConfig { top_k: 2, ..cfg() },
        );
        let ColumnProfile::Categorical(cp) = &p else {
            panic!("categorical")
        };
        assert_eq!(cp.labels, vec!["a", "b"]);
        assert_eq!((cp.other, cp.nulls, cp.singletons), (2, 1, 2));
        let w = Column::categorical("c", &[Some("b"), Some("d"), Some("zzz"), None, Some("a")]);
        let Some(WindowColumn::Categorical {
            counts,
            nulls,
            rows,
        }) = p.window(&w)
        else {
            panic!("categorical window")
        };
        assert_eq!(counts, vec![1, 1, 1, 1], "a, b, OTHER (d), UNSEEN (zzz)");
        assert_eq!((nulls, rows), (1, 5));
    }

    #[test]
    fn numeric_column_with_few_values_is_categorical() {
        let values: Vec<f64> = (0..300).map(|i| f64::from(i % 3)).collect();
        let p = ColumnProfile::build(&Column::numeric("k", values), &cfg());
        let ColumnProfile::Categorical(cp) = &p else {
            panic!("categorical")
        };
        assert_eq!(cp.labels.len(), 3);
        let Some(WindowColumn::Categorical { counts, .. }) =
            p.window(&Column::numeric("k", vec![0.0, 1.0, 7.0]))
        else {
            panic!()
        };
        assert_eq!(counts.iter().sum::<u64>(), 3);
        assert_eq!(counts[4], 1, "7 was never seen");
    }

    #[test]
    fn legacy_profiles_deserialize_as_format_zero() {
        let old = r#"{"rows": 10, "columns": [["x", {"Categorical": {"shares": []}}]]}"#;
        let p: ReferenceProfile = serde_json::from_str(old).unwrap();
        assert_eq!(p.format, 0);
        assert!(p.profiles.is_empty());
    }
}
