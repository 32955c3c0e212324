//! Binary decision trees grown on binned predictors: the building block of the
//! sequential CART synthesizer (one tree per column) and of the gate's
//! detection classifier (boosted trees on real-vs-synthetic).
//!
//! Predictors are binned once per fit (numeric values into at most
//! `MAX_BINS` quantile bins plus a null bin, categories into their levels), so
//! finding a node's best split costs one pass over its rows per predictor,
//! whatever the number of target classes: classification sweeps the rows in
//! bin order and updates Σ count² incrementally (Gini), regression sums per
//! bin (squared error). Categories of a predictor are ordered by the target's
//! mean (regression) or by the share of the node's majority class
//! (classification) and split as an ordered sequence, Breiman's shortcut
//! (exact for regression and two classes).
//!
//! Growth is best-first: the split with the largest impurity decrease among
//! all open nodes goes next, until no split clears `min_gain`, every node is
//! below `2 × min_leaf`, or `max_leaves` is reached. Every leaf holds at least
//! `min_leaf` rows (and, when entities are given, `min_leaf` distinct
//! entities). Ties are broken by feature index and bin, so the same data give
//! the same tree.

use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

/// Most bins of a numeric predictor (besides its null bin).
pub const MAX_BINS: usize = 63;

/// One predictor column prepared for split search.
#[derive(Debug, Clone)]
pub struct Feature {
    /// Index of the model column the split reads at sampling time.
    pub column: u32,
    /// Bin of every training row.
    pub bins: Vec<u16>,
    pub n_bins: usize,
    pub space: BinSpace,
}

/// What the bins mean, to turn a chosen bin split into a [`Split`].
#[derive(Debug, Clone)]
pub enum BinSpace {
    /// Bin 0 = null; bin b ≥ 1 holds values in `[lo[b-1], hi[b-1]]`,
    /// increasing with b.
    Numeric { lo: Vec<f64>, hi: Vec<f64> },
    /// Bin = level of a categorical column (levels include null and pool).
    Levels,
}

impl Feature {
    /// Bins a numeric column (NaN = null, bin 0).
    pub fn numeric(column: u32, values: &[f64]) -> Feature {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        sorted.sort_by(f64::total_cmp);
        sorted.dedup();
        let d = sorted.len();
        // Cut points: indices into the distinct values where a new bin starts.
        let mut starts: Vec<usize> = Vec::new();
        if d <= MAX_BINS {
            starts.extend(0..d);
        } else {
            // Quantiles of the row values, mapped onto distinct values.
            let mut present: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
            present.sort_by(f64::total_cmp);
            let m = present.len();
            starts.push(0);
            for b in 1..MAX_BINS {
                let v = present[(b * m / MAX_BINS).min(m - 1)];
                let i = sorted.partition_point(|&x| x < v);
                if i > *starts.last().unwrap_or(&0) && i < d {
                    starts.push(i);
                }
            }
        }
        let mut lo = Vec::with_capacity(starts.len());
        let mut hi = Vec::with_capacity(starts.len());
        for (k, &s) in starts.iter().enumerate() {
            let e = starts.get(k + 1).copied().unwrap_or(d);
            lo.push(sorted[s]);
            hi.push(sorted[e - 1]);
        }
        let bins = values
            .iter()
            .map(|&x| {
                if x.is_nan() {
                    0
                } else {
                    // First bin whose upper end is ≥ x.
                    (hi.partition_point(|&h| h < x) + 1) as u16
                }
            })
            .collect();
        Feature {
            column,
            bins,
            n_bins: lo.len() + 1,
            space: BinSpace::Numeric { lo, hi },
        }
    }

    /// A categorical column already mapped to levels `0..n_levels`.
    pub fn levels(column: u32, levels: Vec<u16>, n_levels: usize) -> Feature {
        Feature {
            column,
            bins: levels,
            n_bins: n_levels.max(1),
            space: BinSpace::Levels,
        }
    }
}

/// A split as applied to generated values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Split {
    /// Left when the value is ≤ `threshold`; a null goes left iff `null_left`.
    Numeric {
        column: u32,
        threshold: f64,
        null_left: bool,
    },
    /// Left when the level's bit is set in `left`.
    Levels { column: u32, left: Vec<u64> },
}

impl Split {
    pub fn column(&self) -> u32 {
        match self {
            Split::Numeric { column, .. } | Split::Levels { column, .. } => *column,
        }
    }

    /// Whether a numeric value goes left.
    pub fn numeric_left(threshold: f64, null_left: bool, x: f64) -> bool {
        if x.is_nan() {
            null_left
        } else {
            x <= threshold
        }
    }

    /// Whether a level goes left.
    pub fn level_left(left: &[u64], level: u32) -> bool {
        left.get(level as usize / 64)
            .is_some_and(|w| w >> (level % 64) & 1 == 1)
    }
}

/// A node of a fitted tree: a split with its children, or a leaf.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Node {
    Split { split: Split, left: u32, right: u32 },
    Leaf { leaf: u32 },
}

/// The target a tree is grown for.
pub enum Target<'a> {
    /// Class of each training row in `0..k`.
    Classes { y: &'a [u32], k: usize },
    /// Real value of each training row (rows given to `grow` must be finite).
    Values { y: &'a [f64] },
}

/// Stopping rules.
#[derive(Debug, Clone, Copy)]
pub struct Growth {
    pub min_leaf: usize,
    pub max_leaves: usize,
    pub max_depth: usize,
    /// A split must lower the impurity by at least this share of the root's.
    pub min_gain: f64,
}

/// A grown tree: its nodes (root first) and the training rows of each leaf.
#[derive(Debug, Clone)]
pub struct Grown {
    pub nodes: Vec<Node>,
    pub leaf_rows: Vec<Vec<u32>>,
}

/// A split found for one node, in bin terms.
#[derive(Debug, Clone)]
struct Found {
    gain: f64,
    feature: usize,
    /// Bins going left.
    left: Vec<bool>,
}

struct Open {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
    found: Option<Found>,
}

#[derive(PartialEq)]
struct Ranked {
    gain: f64,
    open: usize,
}

impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Largest gain first; among equal gains the earliest node.
        self.gain
            .total_cmp(&other.gain)
            .then_with(|| other.open.cmp(&self.open))
    }
}

/// Grows one tree on `rows` (training row indices) of `features`.
/// `entities`, when given, maps each row to its privacy unit: a split is made
/// only if both children keep `min_leaf` distinct units.
pub fn grow(
    features: &[&Feature],
    target: &Target<'_>,
    rows: Vec<u32>,
    growth: &Growth,
    entities: Option<&[u32]>,
) -> Grown {
    let min_leaf = growth.min_leaf.max(1);
    let mut rows = rows;
    let n = rows.len();
    let mut scratch = Scratch::new(target);
    let root_impurity = scratch.impurity(target, &rows);
    let min_gain = (growth.min_gain * root_impurity).max(1e-12);
    let mut nodes: Vec<Node> = vec![Node::Leaf { leaf: 0 }];
    let mut opens: Vec<Open> = Vec::new();
    let mut heap = BinaryHeap::new();
    let mut finished: Vec<(usize, usize, usize)> = Vec::new(); // (node, start, end)

    let consider = |open: &mut Open, rows: &[u32], scratch: &mut Scratch| {
        if open.end - open.start >= 2 * min_leaf && open.depth < growth.max_depth {
            open.found = best_split(
                features,
                target,
                &rows[open.start..open.end],
                min_leaf,
                scratch,
            )
            .filter(|f| f.gain >= min_gain);
        }
    };
    let mut root = Open {
        node: 0,
        start: 0,
        end: n,
        depth: 0,
        found: None,
    };
    consider(&mut root, &rows, &mut scratch);
    if let Some(f) = &root.found {
        heap.push(Ranked {
            gain: f.gain,
            open: 0,
        });
    }
    let root_found = root.found.is_some();
    opens.push(root);
    if !root_found {
        finished.push((0, 0, n));
    }
    let mut leaves = 1usize;
    while let Some(Ranked { open: i, .. }) = heap.pop() {
        let (node, start, end, depth) = {
            let o = &opens[i];
            (o.node, o.start, o.end, o.depth)
        };
        if leaves >= growth.max_leaves.max(1) {
            finished.push((node, start, end));
            continue;
        }
        let found = opens[i].found.take().expect("queued nodes have a split");
        let bins = &features[found.feature].bins;
        let slice = &mut rows[start..end];
        let mid = start + partition(slice, |r| found.left[bins[r as usize] as usize]);
        if let Some(ent) = entities
            && (distinct(&rows[start..mid], ent) < min_leaf
                || distinct(&rows[mid..end], ent) < min_leaf)
        {
            finished.push((node, start, end));
            continue;
        }
        let split = to_split(features[found.feature], &found.left);
        let l = nodes.len();
        nodes.push(Node::Leaf { leaf: 0 });
        nodes.push(Node::Leaf { leaf: 0 });
        nodes[node] = Node::Split {
            split,
            left: l as u32,
            right: l as u32 + 1,
        };
        leaves += 1;
        for (child, s, e) in [(l, start, mid), (l + 1, mid, end)] {
            let mut open = Open {
                node: child,
                start: s,
                end: e,
                depth: depth + 1,
                found: None,
            };
            consider(&mut open, &rows, &mut scratch);
            let k = opens.len();
            match &open.found {
                Some(f) => heap.push(Ranked {
                    gain: f.gain,
                    open: k,
                }),
                None => finished.push((child, s, e)),
            }
            opens.push(open);
        }
    }
    // Number leaves in node order, so the layout is canonical.
    finished.sort_unstable();
    let mut leaf_rows = Vec::with_capacity(finished.len());
    for (k, &(node, s, e)) in finished.iter().enumerate() {
        nodes[node] = Node::Leaf { leaf: k as u32 };
        let mut r = rows[s..e].to_vec();
        r.sort_unstable();
        leaf_rows.push(r);
    }
    Grown { nodes, leaf_rows }
}

/// Walks a tree; `go_left(split)` says where the current row goes.
pub fn leaf_of(nodes: &[Node], mut go_left: impl FnMut(&Split) -> bool) -> u32 {
    let mut i = 0usize;
    loop {
        match &nodes[i] {
            Node::Leaf { leaf } => return *leaf,
            Node::Split { split, left, right } => {
                i = if go_left(split) { *left } else { *right } as usize;
            }
        }
    }
}

fn distinct(rows: &[u32], entities: &[u32]) -> usize {
    let mut e: Vec<u32> = rows.iter().map(|&r| entities[r as usize]).collect();
    e.sort_unstable();
    e.dedup();
    e.len()
}

/// Stable in-place partition: rows with `left(r)` first; returns their count.
fn partition(rows: &mut [u32], left: impl Fn(u32) -> bool) -> usize {
    let (l, r): (Vec<u32>, Vec<u32>) = rows.iter().partition(|&&x| left(x));
    let k = l.len();
    rows[..k].copy_from_slice(&l);
    rows[k..].copy_from_slice(&r);
    k
}

fn to_split(feature: &Feature, left: &[bool]) -> Split {
    match &feature.space {
        BinSpace::Numeric { lo, hi } => {
            // Left bins are a prefix of 1..; the threshold sits halfway to the
            // first right bin.
            let last_left = (1..feature.n_bins).filter(|&b| left[b]).max();
            let threshold = match last_left {
                Some(b) if b < feature.n_bins - 1 => 0.5 * (hi[b - 1] + lo[b]),
                Some(b) => hi[b - 1],
                None => f64::MIN,
            };
            Split::Numeric {
                column: feature.column,
                threshold,
                null_left: left[0],
            }
        }
        BinSpace::Levels => {
            let mut words = vec![0u64; feature.n_bins.div_ceil(64)];
            for (b, &l) in left.iter().enumerate() {
                if l {
                    words[b / 64] |= 1 << (b % 64);
                }
            }
            Split::Levels {
                column: feature.column,
                left: words,
            }
        }
    }
}

/// Reused buffers for split search.
struct Scratch {
    class_counts: Vec<f64>,
    left_counts: Vec<f64>,
    bin_count: Vec<usize>,
    bin_sum: Vec<f64>,
    bin_score: Vec<f64>,
    offsets: Vec<usize>,
    grouped: Vec<u32>,
    bin_class_major: Vec<f64>,
}

impl Scratch {
    fn new(target: &Target<'_>) -> Scratch {
        let k = match target {
            Target::Classes { k, .. } => *k,
            Target::Values { .. } => 0,
        };
        Scratch {
            class_counts: vec![0.0; k],
            left_counts: vec![0.0; k],
            bin_count: Vec::new(),
            bin_sum: Vec::new(),
            bin_score: Vec::new(),
            offsets: Vec::new(),
            grouped: Vec::new(),
            bin_class_major: Vec::new(),
        }
    }

    /// n × Gini impurity, or the sum of squared errors.
    fn impurity(&mut self, target: &Target<'_>, rows: &[u32]) -> f64 {
        match target {
            Target::Classes { y, .. } => {
                self.class_counts.iter_mut().for_each(|c| *c = 0.0);
                for &r in rows {
                    self.class_counts[y[r as usize] as usize] += 1.0;
                }
                let n = rows.len() as f64;
                let sq: f64 = self.class_counts.iter().map(|c| c * c).sum();
                if n > 0.0 { n - sq / n } else { 0.0 }
            }
            Target::Values { y } => {
                let n = rows.len() as f64;
                let (mut s, mut ss) = (0.0, 0.0);
                for &r in rows {
                    let v = y[r as usize];
                    s += v;
                    ss += v * v;
                }
                if n > 0.0 {
                    (ss - s * s / n).max(0.0)
                } else {
                    0.0
                }
            }
        }
    }
}

/// The best split of `rows` over every feature, if any keeps `min_leaf` rows
/// on both sides and lowers the impurity.
fn best_split(
    features: &[&Feature],
    target: &Target<'_>,
    rows: &[u32],
    min_leaf: usize,
    scratch: &mut Scratch,
) -> Option<Found> {
    let mut best: Option<Found> = None;
    match target {
        Target::Classes { y, k } => {
            let n = rows.len() as f64;
            scratch.class_counts.iter_mut().for_each(|c| *c = 0.0);
            for &r in rows {
                scratch.class_counts[y[r as usize] as usize] += 1.0;
            }
            let parent_sq: f64 = scratch.class_counts.iter().map(|c| c * c).sum();
            if scratch.class_counts.contains(&n) {
                return None; // pure
            }
            let major = (0..*k)
                .max_by(|&a, &b| {
                    scratch.class_counts[a]
                        .total_cmp(&scratch.class_counts[b])
                        .then(b.cmp(&a))
                })
                .unwrap_or(0) as u32;
            for (fi, f) in features.iter().enumerate() {
                let found = class_split(f, y, major, rows, min_leaf, parent_sq / n, scratch);
                if let Some((gain, left)) = found
                    && best.as_ref().is_none_or(|b| gain > b.gain)
                {
                    best = Some(Found {
                        gain,
                        feature: fi,
                        left,
                    });
                }
            }
        }
        Target::Values { y } => {
            let n = rows.len() as f64;
            let s: f64 = rows.iter().map(|&r| y[r as usize]).sum();
            for (fi, f) in features.iter().enumerate() {
                let found = value_split(f, y, rows, min_leaf, s * s / n, scratch);
                if let Some((gain, left)) = found
                    && best.as_ref().is_none_or(|b| gain > b.gain)
                {
                    best = Some(Found {
                        gain,
                        feature: fi,
                        left,
                    });
                }
            }
        }
    }
    best
}

/// Orders of bins to sweep: numeric bins ascending with null first or last;
/// levels by `score` (ascending), each empty bin left out.
fn sweep_orders(f: &Feature, counts: &[usize], score: &[f64]) -> Vec<Vec<usize>> {
    match f.space {
        BinSpace::Numeric { .. } => {
            let body: Vec<usize> = (1..f.n_bins).filter(|&b| counts[b] > 0).collect();
            if counts[0] == 0 {
                vec![body]
            } else {
                let mut first = vec![0];
                first.extend(&body);
                let mut last = body;
                last.push(0);
                vec![first, last]
            }
        }
        BinSpace::Levels => {
            let mut order: Vec<usize> = (0..f.n_bins).filter(|&b| counts[b] > 0).collect();
            order.sort_by(|&a, &b| score[a].total_cmp(&score[b]).then(a.cmp(&b)));
            vec![order]
        }
    }
}

fn left_mask(n_bins: usize, order: &[usize], upto: usize) -> Vec<bool> {
    let mut left = vec![false; n_bins];
    for &b in &order[..=upto] {
        left[b] = true;
    }
    left
}

fn value_split(
    f: &Feature,
    y: &[f64],
    rows: &[u32],
    min_leaf: usize,
    parent_term: f64,
    s: &mut Scratch,
) -> Option<(f64, Vec<bool>)> {
    let nb = f.n_bins;
    s.bin_count.clear();
    s.bin_count.resize(nb, 0);
    s.bin_sum.clear();
    s.bin_sum.resize(nb, 0.0);
    for &r in rows {
        let b = f.bins[r as usize] as usize;
        s.bin_count[b] += 1;
        s.bin_sum[b] += y[r as usize];
    }
    s.bin_score.clear();
    s.bin_score
        .extend((0..nb).map(|b| s.bin_sum[b] / (s.bin_count[b].max(1)) as f64));
    let n = rows.len();
    let total: f64 = s.bin_sum.iter().sum();
    let mut best: Option<(f64, Vec<bool>)> = None;
    for order in sweep_orders(f, &s.bin_count, &s.bin_score) {
        let (mut nl, mut sl) = (0usize, 0.0);
        for (i, &b) in order.iter().enumerate().take(order.len().saturating_sub(1)) {
            nl += s.bin_count[b];
            sl += s.bin_sum[b];
            let nr = n - nl;
            if nl < min_leaf || nr < min_leaf {
                continue;
            }
            let sr = total - sl;
            let gain = sl * sl / nl as f64 + sr * sr / nr as f64 - parent_term;
            if best.as_ref().is_none_or(|(g, _)| gain > *g) {
                best = Some((gain, left_mask(nb, &order, i)));
            }
        }
    }
    best
}

fn class_split(
    f: &Feature,
    y: &[u32],
    major: u32,
    rows: &[u32],
    min_leaf: usize,
    parent_term: f64,
    s: &mut Scratch,
) -> Option<(f64, Vec<bool>)> {
    let nb = f.n_bins;
    s.bin_count.clear();
    s.bin_count.resize(nb, 0);
    s.bin_class_major.clear();
    s.bin_class_major.resize(nb, 0.0);
    for &r in rows {
        let b = f.bins[r as usize] as usize;
        s.bin_count[b] += 1;
        if y[r as usize] == major {
            s.bin_class_major[b] += 1.0;
        }
    }
    if s.bin_count.iter().filter(|&&c| c > 0).count() < 2 {
        return None;
    }
    // Group the rows' classes by bin (counting sort).
    s.offsets.clear();
    s.offsets.resize(nb + 1, 0);
    for b in 0..nb {
        s.offsets[b + 1] = s.offsets[b] + s.bin_count[b];
    }
    s.grouped.clear();
    s.grouped.resize(rows.len(), 0);
    {
        let mut fill = s.offsets.clone();
        for &r in rows {
            let b = f.bins[r as usize] as usize;
            s.grouped[fill[b]] = y[r as usize];
            fill[b] += 1;
        }
    }
    s.bin_score.clear();
    s.bin_score
        .extend((0..nb).map(|b| s.bin_class_major[b] / (s.bin_count[b].max(1)) as f64));
    let n = rows.len();
    let parent_sq: f64 = s.class_counts.iter().map(|c| c * c).sum();
    let mut best: Option<(f64, Vec<bool>)> = None;
    for order in sweep_orders(f, &s.bin_count, &s.bin_score) {
        s.left_counts.iter_mut().for_each(|c| *c = 0.0);
        let (mut nl, mut lsq, mut rsq) = (0usize, 0.0f64, parent_sq);
        for (i, &b) in order.iter().enumerate().take(order.len().saturating_sub(1)) {
            for &c in &s.grouped[s.offsets[b]..s.offsets[b + 1]] {
                let c = c as usize;
                let l = s.left_counts[c];
                let r = s.class_counts[c] - l;
                lsq += 2.0 * l + 1.0;
                rsq += -2.0 * r + 1.0;
                s.left_counts[c] = l + 1.0;
            }
            nl += s.bin_count[b];
            let nr = n - nl;
            if nl < min_leaf || nr < min_leaf {
                continue;
            }
            let gain = lsq / nl as f64 + rsq / nr as f64 - parent_term;
            if best.as_ref().is_none_or(|(g, _)| gain > *g) {
                best = Some((gain, left_mask(nb, &order, i)));
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn growth(min_leaf: usize) -> Growth {
        Growth {
            min_leaf,
            max_leaves: 1000,
            max_depth: 30,
            min_gain: 1e-9,
        }
    }

    #[test]
    fn numeric_bins_keep_order_and_nulls_apart() {
        let f = Feature::numeric(0, &[3.0, f64::NAN, 1.0, 2.0, 3.0]);
        assert_eq!(f.bins, vec![3, 0, 1, 2, 3]);
        assert_eq!(f.n_bins, 4);
        let many: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        let f = Feature::numeric(0, &many);
        assert!(f.n_bins <= MAX_BINS + 1);
        assert!(f.bins.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn a_clean_threshold_is_found_and_leaves_respect_min_leaf() {
        let x: Vec<f64> = (0..200).map(|i| i as f64).collect();
        let y: Vec<u32> = x.iter().map(|&v| u32::from(v >= 120.0)).collect();
        let f = Feature::numeric(0, &x);
        let grown = grow(
            &[&f],
            &Target::Classes { y: &y, k: 2 },
            (0..200).collect(),
            &growth(10),
            None,
        );
        match &grown.nodes[0] {
            Node::Split {
                split: Split::Numeric { threshold, .. },
                ..
            } => assert!((119.0..120.0).contains(threshold), "{threshold}"),
            other => panic!("expected a numeric root split, got {other:?}"),
        }
        assert!(grown.leaf_rows.iter().all(|l| l.len() >= 10));
        let total: usize = grown.leaf_rows.iter().map(|l| l.len()).sum();
        assert_eq!(total, 200);
        // Pure leaves: each leaf's rows share one class.
        for rows in &grown.leaf_rows {
            assert!(rows.iter().all(|&r| y[r as usize] == y[rows[0] as usize]));
        }
    }

    #[test]
    fn levels_split_groups_categories_by_target_mean() {
        // Levels 0 and 2 have high values, 1 and 3 low.
        let lv: Vec<u16> = (0..400).map(|i| (i % 4) as u16).collect();
        let y: Vec<f64> = lv
            .iter()
            .map(|&l| if l % 2 == 0 { 10.0 } else { 0.0 })
            .collect();
        let f = Feature::levels(0, lv.clone(), 4);
        let grown = grow(
            &[&f],
            &Target::Values { y: &y },
            (0..400).collect(),
            &growth(5),
            None,
        );
        assert_eq!(grown.leaf_rows.len(), 2);
        let Node::Split {
            split: Split::Levels { left, .. },
            ..
        } = &grown.nodes[0]
        else {
            panic!("expected a level split");
        };
        let side = |l| Split::level_left(left, l);
        assert_eq!(side(0), side(2));
        assert_eq!(side(1), side(3));
        assert_ne!(side(0), side(1));
    }

    #[test]
    fn no_leaf_has_fewer_entities_than_min_leaf() {
        // 100 rows, but only 10 entities of 10 rows each; min_leaf 5 entities.
        let x: Vec<f64> = (0..100).map(|i| i as f64).collect();
        let y: Vec<f64> = x.iter().map(|v| v * v).collect();
        let ent: Vec<u32> = (0..100).map(|i| i / 10).collect();
        let f = Feature::numeric(0, &x);
        let grown = grow(
            &[&f],
            &Target::Values { y: &y },
            (0..100).collect(),
            &growth(5),
            Some(&ent),
        );
        for rows in &grown.leaf_rows {
            assert!(distinct(rows, &ent) >= 5, "{rows:?}");
        }
    }

    #[test]
    fn max_leaves_caps_the_tree() {
        let x: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        let y = x.clone();
        let f = Feature::numeric(0, &x);
        let g = Growth {
            max_leaves: 7,
            ..growth(2)
        };
        let grown = grow(
            &[&f],
            &Target::Values { y: &y },
            (0..1000).collect(),
            &g,
            None,
        );
        assert_eq!(grown.leaf_rows.len(), 7);
    }
}
