//! Pearson and Spearman correlation on pairwise-complete rows.
//!
//! The gate checks that the synthetic data keeps the training data's
//! monotone relationships (Spearman, robust to skewed lab values); Pearson
//! is kept because Spearman is Pearson on ranks and callers that rank once
//! per column reuse it directly.

/// Pearson correlation over rows where both `x` and `y` are finite.
///
/// `None` when fewer than two complete rows remain or either side is
/// constant on them (the correlation is undefined, not zero).
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let (xs, ys) = complete_pairs(x, y);
    pearson_complete(&xs, &ys)
}

/// Spearman rank correlation (Pearson on average ranks, so ties get the
/// mean of the ranks they span) over rows where both values are finite.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    let (xs, ys) = complete_pairs(x, y);
    pearson_complete(&average_ranks(&xs), &average_ranks(&ys))
}

/// 1-based ranks, tied values sharing the average of their ranks
/// (scipy's `rankdata(method="average")`). Values should be finite; a NaN
/// is ordered after every number by `total_cmp`.
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_unstable_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end hold ranks start+1 ..= end; their mean:
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// A numeric column prepared for many Spearman correlations: its finite
/// rows in value order, sorted once, so each pair costs O(n) instead of a
/// sort per pair (the gate correlates every pair of numeric columns).
#[derive(Debug, Clone)]
pub struct RankedColumn<'a> {
    values: &'a [f64],
    /// Indices of the finite values, ascending by value.
    order: Vec<u32>,
}

impl<'a> RankedColumn<'a> {
    /// Sorts the finite values of `values` once.
    pub fn new(values: &'a [f64]) -> Self {
        let mut order: Vec<u32> = (0..values.len() as u32)
            .filter(|&i| values[i as usize].is_finite())
            .collect();
        order.sort_unstable_by(|&a, &b| values[a as usize].total_cmp(&values[b as usize]));
        RankedColumn { values, order }
    }

    /// Average ranks among the rows where `keep` is true (0 elsewhere).
    fn ranks_where(&self, keep: &[bool]) -> Vec<f64> {
        let mut ranks = vec![0.0; self.values.len()];
        let kept: Vec<usize> = self
            .order
            .iter()
            .map(|&i| i as usize)
            .filter(|&i| keep[i])
            .collect();
        let mut start = 0;
        while start < kept.len() {
            let value = self.values[kept[start]];
            let mut end = start + 1;
            while end < kept.len() && self.values[kept[end]] == value {
                end += 1;
            }
            let rank = (start + 1 + end) as f64 / 2.0;
            for &i in &kept[start..end] {
                ranks[i] = rank;
            }
            start = end;
        }
        ranks
    }
}

/// Spearman correlation of two prepared columns over their pairwise-complete
/// rows; same result as [`spearman`]. `None` if the lengths differ or the
/// correlation is undefined.
pub fn spearman_ranked(a: &RankedColumn<'_>, b: &RankedColumn<'_>) -> Option<f64> {
    if a.values.len() != b.values.len() {
        return None;
    }
    let keep: Vec<bool> = a
        .values
        .iter()
        .zip(b.values)
        .map(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let (ra, rb) = (a.ranks_where(&keep), b.ranks_where(&keep));
    let (xs, ys): (Vec<f64>, Vec<f64>) = ra
        .iter()
        .zip(&rb)
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|((&x, &y), _)| (x, y))
        .unzip();
    pearson_complete(&xs, &ys)
}

fn complete_pairs(x: &[f64], y: &[f64]) -> (Vec<f64>, Vec<f64>) {
    x.iter()
        .zip(y)
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .map(|(&a, &b)| (a, b))
        .unzip()
}

fn pearson_complete(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len().min(y.len());
    if n < 2 {
        return None;
    }
    let mx = x[..n].iter().sum::<f64>() / n as f64;
    let my = y[..n].iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (&a, &b) in x[..n].iter().zip(&y[..n]) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx <= 0.0 || syy <= 0.0 {
        return None;
    }
    let r = sxy / (sxx.sqrt() * syy.sqrt());
    r.is_finite().then(|| r.clamp(-1.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12
    }

    #[test]
    fn pearson_matches_scipy() {
        // scipy.stats.pearsonr([1,2,3,4,5],[5,6,7,8,7]).statistic = 0.8320502943378436
        let r = pearson(&[1.0, 2.0, 3.0, 4.0, 5.0], &[5.0, 6.0, 7.0, 8.0, 7.0]).unwrap();
        assert!(close(r, 0.8320502943378436));
        assert!(close(
            pearson(&[1.0, 2.0, 3.0], &[6.0, 4.0, 2.0]).unwrap(),
            -1.0
        ));
    }

    #[test]
    fn spearman_matches_scipy() {
        // scipy.stats.spearmanr([1,2,3,4,5],[5,6,7,8,7]).statistic = 0.8207826816681233
        let r = spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[5.0, 6.0, 7.0, 8.0, 7.0]).unwrap();
        assert!(close(r, 0.8207826816681233));
        // With ties on both sides:
        // spearmanr([1,2,2,3,4,4,4,5],[2,1,3,3,5,6,6,9]).statistic = 0.9256265453136692
        let x = [1.0, 2.0, 2.0, 3.0, 4.0, 4.0, 4.0, 5.0];
        let y = [2.0, 1.0, 3.0, 3.0, 5.0, 6.0, 6.0, 9.0];
        assert!(close(spearman(&x, &y).unwrap(), 0.9256265453136692));
        // Monotone but non-linear → 1.
        assert!(close(
            spearman(&[1.0, 2.0, 3.0], &[1.0, 10.0, 1000.0]).unwrap(),
            1.0
        ));
    }

    #[test]
    fn average_ranks_match_rankdata() {
        // scipy.stats.rankdata([1,2,2,3,4,4,4,5]) = [1, 2.5, 2.5, 4, 6, 6, 6, 8]
        let r = average_ranks(&[1.0, 2.0, 2.0, 3.0, 4.0, 4.0, 4.0, 5.0]);
        assert_eq!(r, vec![1.0, 2.5, 2.5, 4.0, 6.0, 6.0, 6.0, 8.0]);
        assert_eq!(average_ranks(&[3.0, 1.0, 2.0]), vec![3.0, 1.0, 2.0]);
    }

    #[test]
    fn prepared_columns_give_the_same_spearman() {
        // Ties and missing values on both sides, missing in different rows.
        let x = [1.0, 2.0, f64::NAN, 2.0, 3.0, 4.0, 4.0, 4.0, 5.0, 0.5];
        let y = [2.0, 1.0, 3.0, 3.0, f64::NAN, 5.0, 6.0, 6.0, 9.0, 2.0];
        let (a, b) = (RankedColumn::new(&x), RankedColumn::new(&y));
        // Complete rows: scipy.stats.spearmanr([1,2,2,4,4,4,5,.5],[2,1,3,5,6,6,9,2])
        //   .statistic = 0.8697162170732461
        assert!(close(spearman(&x, &y).unwrap(), 0.8697162170732461));
        assert!(close(spearman_ranked(&a, &b).unwrap(), 0.8697162170732461));
        let c = RankedColumn::new(&[1.0, 1.0]);
        assert!(spearman_ranked(&a, &c).is_none());
    }

    #[test]
    fn uses_pairwise_complete_rows_and_never_nan() {
        let x = [1.0, f64::NAN, 2.0, 3.0, 100.0];
        let y = [1.0, 50.0, 2.0, 3.0, f64::NAN];
        assert!(close(pearson(&x, &y).unwrap(), 1.0));
        assert!(pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_none());
        assert!(spearman(&[1.0], &[2.0]).is_none());
        assert!(spearman(&[f64::NAN, 1.0], &[1.0, f64::NAN]).is_none());
    }
}
