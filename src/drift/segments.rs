//! Per-segment drift: a shift inside one site or one sex that the whole
//! window dilutes below the thresholds.
//!
//! For each configured segment column, every category with at least
//! `min_segment_rows` reference rows gets its own column profiles. A window
//! segment is tested only when it too has that many rows (a small segment
//! would mostly add noise and dilute the multiple-testing correction). Its
//! tests join the window's Benjamini–Hochberg family, labelled
//! `column=label`.

use serde::{Deserialize, Serialize};

use super::column_tests::{TestResult, column_tests};
use super::profile::{ColumnProfile, numeric_label};
use crate::table::{ColumnValues, NULL_CODE, Table};
use crate::topology::DriftConfig;

/// Column profiles of one segment of the reference.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentProfile {
    pub column: String,
    pub label: String,
    pub rows: u64,
    pub profiles: Vec<(String, ColumnProfile)>,
}

/// Rows of `table` whose `column` has `label`.
fn rows_with(table: &Table, column: &str, label: &str) -> Vec<usize> {
    let Some(c) = table.column(column) else {
        return vec![];
    };
    match &c.values {
        ColumnValues::Categorical { codes, dictionary } => {
            let hits: Vec<bool> = dictionary.iter().map(|l| l == label).collect();
            codes
                .iter()
                .enumerate()
                .filter(|&(_, &code)| code != NULL_CODE && hits.get(code as usize) == Some(&true))
                .map(|(i, _)| i)
                .collect()
        }
        ColumnValues::Numeric(v) => v
            .iter()
            .enumerate()
            .filter(|(_, x)| x.is_finite() && numeric_label(**x) == label)
            .map(|(i, _)| i)
            .collect(),
    }
}

impl SegmentProfile {
    /// Profiles of every large-enough segment of every configured column.
    pub fn build_all(
        table: &Table,
        profiles: &[(String, ColumnProfile)],
        config: &DriftConfig,
    ) -> Vec<SegmentProfile> {
        let mut out = Vec::new();
        for column in &config.segments {
            let Some((_, ColumnProfile::Categorical(p))) =
                profiles.iter().find(|(n, _)| n == column)
            else {
                continue;
            };
            for (label, &count) in p.labels.iter().zip(&p.counts) {
                if count < config.min_segment_rows as u64 {
                    continue;
                }
                let part = table.take(&rows_with(table, column, label));
                out.push(SegmentProfile {
                    column: column.clone(),
                    label: label.clone(),
                    rows: part.n_rows() as u64,
                    profiles: part
                        .columns
                        .iter()
                        .filter(|c| &c.name != column)
                        .map(|c| (c.name.clone(), ColumnProfile::build(c, config)))
                        .collect(),
                });
            }
        }
        out
    }

    /// This segment's column tests on `window`, if it has enough rows.
    pub fn window_tests(&self, window: &Table, config: &DriftConfig, out: &mut Vec<TestResult>) {
        let rows = rows_with(window, &self.column, &self.label);
        if rows.len() < config.min_segment_rows {
            return;
        }
        let part = window.take(&rows);
        let segment = format!("{}={}", self.column, self.label);
        for (name, profile) in &self.profiles {
            column_tests(
                name,
                Some(&segment),
                profile,
                part.column(name),
                config,
                out,
            );
        }
    }
}
