//! Statistical kernels shared by drift detection and the gate.
//!
//! Both the drift detector and the gate compare two samples of the same column
//! (or the same table), so the comparisons live here once, as plain functions
//! over slices and [`crate::table`] columns with no I/O. Each kernel is tested
//! against values computed by hand or published by a reference tool (scipy).
//!
//! Conventions used throughout:
//! - numeric samples are `&[f64]`; non-finite values (`NaN` = missing, and
//!   `±inf`, which cannot be placed on a distance scale) are ignored;
//! - categorical samples are count vectors aligned by label (see
//!   [`aligned_counts`]); a missing value is its own category;
//! - a statistic that is undefined for the input (e.g. an empty sample) is
//!   `None`, never `NaN`.

mod categorical;
mod correlation;
mod distance;
mod exact;
mod ks;
mod neighbours;
mod sample;

pub use categorical::{
    AlignedCounts, ChiSquare, aligned_counts, chi_square_homogeneity, jensen_shannon, psi_counts,
    total_variation,
};
pub use correlation::{RankedColumn, average_ranks, pearson, spearman, spearman_ranked};
pub use distance::{GowerRows, GowerSpace};
pub use exact::{EquivalenceClasses, equivalence_classes, exact_match_flags};
pub use ks::{KsTest, kolmogorov_sf, ks_statistic_sorted, ks_two_sample};
pub use neighbours::{Neighbours, k_nearest_gower, nearest_gower_distances};
pub use sample::{
    DEFAULT_PSI_BINS, PSI_EPSILON, iqr, psi, quantile_bin_counts, quantile_sorted, sorted_finite,
    wasserstein1, wasserstein1_sorted,
};

/// Why a kernel could not run on the columns or tables it was given.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// A column expected in the second table is absent.
    #[error("column `{column}` is missing (expected because the reference table has it)")]
    MissingColumn { column: String },
    /// Two columns with the same name hold different kinds of data.
    #[error("column `{column}`: expected {expected} values, found {found}")]
    KindMismatch {
        column: String,
        expected: &'static str,
        found: &'static str,
    },
    /// A categorical code points outside its dictionary.
    #[error(
        "column `{column}`: code {code} at row {row} is outside its dictionary of {dictionary_len} labels"
    )]
    InvalidCode {
        column: String,
        row: usize,
        code: u32,
        dictionary_len: usize,
    },
    /// A column's length differs from the table's row count.
    #[error("column `{column}` has {found} rows, expected {expected}")]
    RaggedColumn {
        column: String,
        expected: usize,
        found: usize,
    },
}

/// The kind name used in error messages.
pub(crate) fn kind_name(values: &crate::table::ColumnValues) -> &'static str {
    match values {
        crate::table::ColumnValues::Numeric(_) => "numeric",
        crate::table::ColumnValues::Categorical { .. } => "categorical",
    }
}

/// Checks that every code of a categorical column indexes its dictionary.
pub(crate) fn check_codes(column: &crate::table::Column) -> Result<(), StatsError> {
    if let crate::table::ColumnValues::Categorical { codes, dictionary } = &column.values {
        let len = dictionary.len();
        if let Some((row, &code)) = codes
            .iter()
            .enumerate()
            .find(|&(_, &c)| c != crate::table::NULL_CODE && c as usize >= len)
        {
            return Err(StatsError::InvalidCode {
                column: column.name.clone(),
                row,
                code,
                dictionary_len: len,
            });
        }
    }
    Ok(())
}
