//! Small-cell suppression: how a count of real records is written where it
//! leaves the gate (explanations, reports, binder evidence).
//!
//! A count of 1 to k − 1 real people (k = `gate.small_cell_min`, 11 by
//! default, the CMS cell-size rule) is itself identifying next to the
//! table it came from, so it is written `<k`, never exactly; 0 and counts of
//! k or more are written as they are. Shares of a suppressed count are
//! written as an upper bound (`<0.92%`) so the denominator does not give the
//! count back. Counts of synthetic records and of categories are not counts
//! of people and are written as they are, except synthetic records that
//! reproduce a real one (an exact copy of a training row, a real extreme):
//! those are counts of the real people they copy.
//!
//! A level (a category, a numeric bin, a subgroup) is named only when the
//! real records behind it are not a small cell ([`nameable`]): held by k or
//! more training records, or by none in training and none or k or more in
//! the holdout (a level only the synthetic batch has is not real data).
//! Where a level may not be named it is written as [`rare_levels`]; a label
//! that a handful of real patients hold (a rare code, a free-text value) is
//! itself identifying, whatever count stands next to it.

/// `count`, or `<k` when it is between 1 and k − 1.
pub fn count(count: usize, k: usize) -> String {
    if is_small(count, k) {
        format!("<{k}")
    } else {
        count.to_string()
    }
}

/// Whether `count` real records must not be shown: between 1 and k − 1.
pub fn is_small(count: usize, k: usize) -> bool {
    count > 0 && count < k
}

/// Whether a level held by `train` training and `holdout` holdout records
/// may be named (see the module doc): k or more training records, or none
/// in training and none or k or more in the holdout. With k or more
/// training records the holdout does not matter: the label is then held by
/// k or more real people whatever the holdout count (which is itself
/// written with [`count`]).
pub fn nameable(train: usize, holdout: usize, k: usize) -> bool {
    !is_small(train, k) && (train > 0 || !is_small(holdout, k))
}

/// The name given to a level, or to the pool of levels, that may not be
/// named: `(levels under k rows)`.
pub fn rare_levels(k: usize) -> String {
    format!("(levels under {k} rows)")
}

/// `count / total` as a percentage with `decimals` decimals, or an upper
/// bound `<(k / total)%` when the count is small.
pub fn share(count: usize, total: usize, k: usize, decimals: usize) -> String {
    let pct = |c: usize| 100.0 * c as f64 / total.max(1) as f64;
    if is_small(count, k) {
        format!("<{:.*}%", decimals, pct(k))
    } else {
        format!("{:.*}%", decimals, pct(count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_counts_are_bounds_others_exact() {
        assert_eq!(count(0, 11), "0");
        assert_eq!(count(1, 11), "<11");
        assert_eq!(count(10, 11), "<11");
        assert_eq!(count(11, 11), "11");
        assert_eq!(share(3, 1000, 11, 2), "<1.10%");
        assert_eq!(share(0, 1000, 11, 2), "0.00%");
        assert_eq!(share(250, 1000, 11, 1), "25.0%");
    }

    #[test]
    fn levels_are_named_only_when_no_real_side_is_small() {
        // Common in training: named whatever the holdout holds.
        assert!(nameable(11, 0, 11) && nameable(500, 3, 11));
        // Rare in training: never named, however common in the holdout.
        assert!(!nameable(3, 0, 11) && !nameable(10, 400, 11));
        // Not in training: the holdout decides; synthetic-only is named.
        assert!(!nameable(0, 2, 11) && nameable(0, 11, 11) && nameable(0, 0, 11));
        assert_eq!(rare_levels(11), "(levels under 11 rows)");
    }
}
