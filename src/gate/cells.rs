//! Small-cell suppression: how a count of real records is written where it
//! leaves the gate (explanations, reports, binder evidence).
//!
//! A count of 1 to k − 1 real people (k = `gate.small_cell_min`, 11 by
//! default, the CMS cell-size rule) is itself identifying next to the
//! table it came from, so it is written `<k`, never exactly; 0 and counts of
//! k or more are written as they are. Shares of a suppressed count are
//! written as an upper bound (`<0.92%`) so the denominator does not give the
//! count back. Counts of synthetic records and of categories are not counts
//! of people and are written as they are.

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
}
