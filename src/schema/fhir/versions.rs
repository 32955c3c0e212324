//! The version rule: one row per resource in a window.
//!
//! A FHIR feed updates resources in place (a new `meta.versionId`, status
//! `amended` or `corrected`) and withdraws them (`entered-in-error`). Over
//! the rows of one closed window of one `fhir` source:
//!
//! * rows are grouped by resource `id` ([`ID_COLUMN`]);
//! * in each group the **latest version** is kept and every other row
//!   dropped (an amendment or correction replaces what it amends; a second
//!   delivery of the same version collapses to one row). Latest means the
//!   highest `meta.versionId` when every row of the group has a numeric
//!   one, ties going to the later arrival; otherwise the last to arrive;
//! * a group whose latest version has status `entered-in-error` is
//!   removed entirely (the withdrawal and what it withdraws).
//!
//! Arrival is the window's row order: the order the engine read the rows,
//! which for one resource (same Kafka key, same partition) is offset
//! order. In sliding windows whose panes split a resource's versions by
//! event time, pane order comes first; numeric version ids avoid relying
//! on either.
//!
//! The rule sees one window: a version arriving after its window was
//! finalised is late like any late event (its event time is normally the
//! original's), routed by `window.late_policy`, and counted by
//! `resynth_fhir_late_replacements_total` when [`is_replacement`].
//! Pure: no I/O; the engine calls [`resolve_versions`] once per source of a closed window.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, BooleanArray, StringArray};
use datafusion::arrow::compute::{concat_batches, filter_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;

use super::{ID_COLUMN, STATUS_COLUMN, VERSION_COLUMN, WITHDRAWN};
use crate::topology::{EventFormat, SourceConfig};

/// One window's rows after the rule, and what it did.
#[derive(Debug, Clone)]
pub struct Versioned {
    pub batch: RecordBatch,
    /// Rows dropped because a later version of their resource replaced them.
    pub replaced: usize,
    /// Resources removed because their latest version is `entered-in-error`.
    pub withdrawn: usize,
}

fn strings<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray, ArrowError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| ArrowError::SchemaError(format!("no string column {name:?}")))
}

fn numeric_version(v: &str) -> Option<u64> {
    (!v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit()))
        .then(|| v.parse().ok())
        .flatten()
}

/// Applies the rule to the rows of one window of one `fhir` source.
pub fn latest_versions(
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<Versioned, ArrowError> {
    let batch = concat_batches(schema, batches)?;
    let ids = strings(&batch, ID_COLUMN)?;
    let versions = strings(&batch, VERSION_COLUMN)?;
    let statuses = strings(&batch, STATUS_COLUMN)?;
    struct Group {
        last: usize,
        /// Highest numeric version and its latest row, while all are numeric.
        best: Option<(u64, usize)>,
        all_numeric: bool,
    }
    let mut groups: HashMap<&str, Group> = HashMap::new();
    for row in 0..batch.num_rows() {
        let v = (!versions.is_null(row))
            .then(|| numeric_version(versions.value(row)))
            .flatten();
        let g = groups.entry(ids.value(row)).or_insert(Group {
            last: row,
            best: None,
            all_numeric: true,
        });
        g.last = row;
        match v {
            Some(v) if g.all_numeric => {
                if g.best.is_none_or(|(b, _)| v >= b) {
                    g.best = Some((v, row));
                }
            }
            _ => g.all_numeric = false,
        }
    }
    let mut keep = vec![false; batch.num_rows()];
    let mut withdrawn = 0;
    for g in groups.values() {
        let chosen = match (g.all_numeric, g.best) {
            (true, Some((_, row))) => row,
            _ => g.last,
        };
        if !statuses.is_null(chosen) && statuses.value(chosen) == WITHDRAWN {
            withdrawn += 1;
        } else {
            keep[chosen] = true;
        }
    }
    let kept = keep.iter().filter(|&&k| k).count();
    let replaced = batch.num_rows() - kept - withdrawn;
    let batch = if kept == batch.num_rows() {
        batch
    } else {
        filter_record_batch(&batch, &BooleanArray::from(keep))?
    };
    Ok(Versioned {
        batch,
        replaced,
        withdrawn,
    })
}

/// The engine's one call per source of a closed window: for a `fhir`
/// source, its rows in the window become [`latest_versions`] (one batch);
/// for any other format it does nothing. Returns (replaced, withdrawn).
/// The caller sums the window's rows again.
pub fn resolve_versions(
    source: &SourceConfig,
    schema: &SchemaRef,
    batches: &mut Vec<RecordBatch>,
) -> Result<(usize, usize), ArrowError> {
    if source.format != EventFormat::Fhir || batches.is_empty() {
        return Ok((0, 0));
    }
    let v = latest_versions(schema, batches)?;
    *batches = vec![v.batch];
    Ok((v.replaced, v.withdrawn))
}

/// Whether row `row` of a decoded `fhir` batch is a later version or a
/// withdrawal of a resource (`meta.versionId` numeric and above 1, or
/// status `amended`, `corrected` or `entered-in-error`): such a row that
/// arrives too late is counted as a late replacement. False for batches
/// without the version columns (other formats).
pub fn is_replacement(batch: &RecordBatch, row: usize) -> bool {
    let (Ok(versions), Ok(statuses)) = (
        strings(batch, VERSION_COLUMN),
        strings(batch, STATUS_COLUMN),
    ) else {
        return false;
    };
    if row >= batch.num_rows() {
        return false;
    }
    let later =
        !versions.is_null(row) && numeric_version(versions.value(row)).is_some_and(|v| v > 1);
    let status = !statuses.is_null(row)
        && matches!(statuses.value(row), "amended" | "corrected" | WITHDRAWN);
    later || status
}
