//! File mode: the training, holdout and synthetic tables of `resynth
//! validate`, read from CSV or Parquet, so a team can run the engine's gate
//! on any generator's output (ours or another tool's).
//!
//! Every file is read as text first (Parquet values are cast to text), and
//! the training file fixes each column's kind from its values (number, date,
//! timestamp or label, see `text_values::ColumnFormat::infer`); the other
//! two files are parsed with those kinds, so the three tables line up
//! whatever tool wrote them (`57` and `57.0`, `1` and `1.0` as a category,
//! `NA`, `NaN` and empty fields as missing, `TRUE` and `True`). Columns the
//! spec declares categorical are labels everywhere (zip3 `021` stays `021`).
//! Identifier columns are dropped before anything is parsed, so SDV's
//! `sdv-id-…` strings where training had numbers never stop a validation;
//! so is the unnamed row-number column R's `write.csv` and pandas' `to_csv`
//! write first by default.
//!
//! A value that does not fit its column (`abc` in a numeric column, `6015`
//! in a date column) stops the run with exit code 2 and a list of every such
//! value with its file, column and line (quoted for the synthetic file; for
//! the real training and holdout files only its length, since their cells
//! are PHI): a file whose values do not fit the
//! training file's columns is not the data the gate is asked about, and
//! scoring it (say, as missing values) would judge a different table.
//! A column missing from the synthetic file is left for the gate to report;
//! a column the training file lacks is an error, since nothing could judge
//! it.

use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionConfig, SessionContext};
use serde::{Deserialize, Serialize};

use super::text_values::{ColumnFormat, canonical_label, is_missing};
use crate::gate::{GateConfig, Roles, Units};
use crate::generate::GeneratorKind;
use crate::generate::cart::CartConfig;
use crate::generate::copula::CopulaConfig;
use crate::table::{Column, Table};

/// The `--roles` file of `resynth validate`: what the columns are and the
/// thresholds to apply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidateSpec {
    /// Identifier columns (patient id, MRN): dropped before scoring, since
    /// fresh ids never match and must not be compared.
    pub id_columns: Vec<String>,
    /// The privacy unit's column (the patient id) when a patient may own
    /// several rows (one row per test or visit). The gate's noise
    /// allowances are then those of a sample of patients, not of rows
    /// (`gate::Units`); the column is dropped like an id column. A file
    /// without it (a synthetic file without ids) counts each row as a
    /// patient. None = every row is its own patient.
    pub entity: Option<String>,
    /// Columns read as categories even if they look numeric (zip3, codes).
    pub categorical: Vec<String>,
    /// Column roles, as in a topology's `[roles]`.
    pub roles: Roles,
    /// Thresholds, as in a topology's `[gate]`; defaults from DESIGN.md.
    pub gate: GateConfig,
    /// Seed for the gate's subsampling and attacks (default 0), so a
    /// verdict can be reproduced; also the fit and sample seed of
    /// `resynth synthesize`.
    pub seed: Option<u64>,
    /// The generator `resynth synthesize` fits (the engine's copula).
    pub generator: FileGenerator,
}

/// `[generator]` of the roles file: the generator as a topology's `[model]`,
/// `[cart]` and `[copula]` configure it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileGenerator {
    /// `cart` (default), `auto` (CART and the copula judged on an inner
    /// split of the training file with this file's `[gate]` and `[roles]`,
    /// the best that passes kept) or `gaussian_copula`. PrivBayes needs a
    /// declared domain and is for topologies only.
    pub family: GeneratorKind,
    /// CART options, as a topology's `[cart]`.
    pub cart: CartConfig,
    /// Categorical column to stratify by (one copula per label).
    pub stratify_by: Option<String>,
    /// Rows a stratum needs for its own copula.
    pub min_stratum_rows: usize,
    /// Copula options, as a topology's `[copula]`.
    pub copula: CopulaConfig,
}

impl Default for FileGenerator {
    fn default() -> Self {
        FileGenerator {
            family: GeneratorKind::default(),
            cart: CartConfig::default(),
            stratify_by: None,
            min_stratum_rows: 100,
            copula: CopulaConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("roles file {}: {message}", path.display())]
    Spec { path: PathBuf, message: String },
    #[error("{}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    #[error("{}: column {column:?} is not in the training file", path.display())]
    ExtraColumn { path: PathBuf, column: String },
    /// Values that do not fit their column's kind; every one is listed (up
    /// to [`MAX_LISTED`], then a count).
    #[error("{}: {} value(s) do not fit their column:\n  - {}", path.display(), count, listed.join("\n  - "))]
    Values {
        path: PathBuf,
        count: usize,
        listed: Vec<String>,
    },
}

/// Bad values listed in one error; the rest are counted.
pub const MAX_LISTED: usize = 20;

impl ValidateSpec {
    /// Reads and checks the roles file; every problem is listed.
    pub fn load(path: &Path) -> Result<ValidateSpec, FileError> {
        let err = |message: String| FileError::Spec {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mut spec: ValidateSpec = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        if let Some(e) = &spec.entity
            && !spec.id_columns.contains(e)
        {
            spec.id_columns.push(e.clone());
        }
        let mut problems = spec.gate.validate();
        problems.extend(
            spec.generator
                .cart
                .validate()
                .into_iter()
                .map(|p| format!("generator.cart.{p}")),
        );
        if spec.generator.family == GeneratorKind::Privbayes {
            problems
                .push("generator.family: privbayes needs a declared domain; use a topology".into());
        }
        if !problems.is_empty() {
            return Err(err(problems.join("; ")));
        }
        Ok(spec)
    }

    /// Problems with the roles given the training columns (after ids are
    /// dropped), each naming the option.
    pub fn problems(&self, train: &Table) -> Vec<String> {
        let columns: Vec<String> = train.columns.iter().map(|c| c.name.clone()).collect();
        let mut problems = self.roles.validate(&columns);
        for c in &self.categorical {
            if !columns.contains(c) && !self.id_columns.contains(c) {
                problems.push(format!(
                    "categorical: {c:?} is not a column of the training file"
                ));
            }
        }
        problems
    }
}

/// The three tables of a validation, identifiers dropped, and the kind of
/// each column as the training file fixed it.
#[derive(Debug, Clone)]
pub struct ValidationTables {
    pub train: Table,
    pub holdout: Table,
    pub synthetic: Table,
    pub formats: Vec<(String, ColumnFormat)>,
    /// Each table's privacy units, from the `entity` column where the file
    /// has it.
    pub units: Units,
}

fn is_parquet(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
}

fn read_error(path: &Path) -> impl Fn(String) -> FileError + '_ {
    move |message| FileError::Read {
        path: path.to_path_buf(),
        message,
    }
}

/// One file's columns as text, in file order (`None` for a null field).
type TextColumns = Vec<(String, Vec<Option<String>>)>;

/// Reads a file with every column as text: CSV fields as written, Parquet
/// values cast to their text form (dates as `2016-06-20`).
async fn read_text(ctx: &SessionContext, path: &Path) -> Result<TextColumns, FileError> {
    let err = read_error(path);
    let name = path
        .to_str()
        .ok_or_else(|| err("path is not UTF-8".into()))?;
    let batches: Vec<RecordBatch> = if is_parquet(path) {
        let df = ctx
            .read_parquet(name, ParquetReadOptions::default())
            .await
            .map_err(|e| err(e.to_string()))?;
        df.collect().await.map_err(|e| err(e.to_string()))?
    } else {
        // The header gives the names; every field is then read as text so
        // no inferred type can refuse another tool's spelling.
        let inferred = ctx
            .read_csv(name, CsvReadOptions::new().has_header(true))
            .await
            .map_err(|e| err(e.to_string()))?;
        let text = Schema::new(
            inferred
                .schema()
                .fields()
                .iter()
                .map(|f| Field::new(f.name(), DataType::Utf8, true))
                .collect::<Vec<_>>(),
        );
        let df = ctx
            .read_csv(name, CsvReadOptions::new().has_header(true).schema(&text))
            .await
            .map_err(|e| err(e.to_string()))?;
        df.collect().await.map_err(|e| err(e.to_string()))?
    };
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let schema = first.schema();
    let mut columns: TextColumns = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), Vec::new()))
        .collect();
    for b in &batches {
        for (i, (_, values)) in columns.iter_mut().enumerate() {
            let col = cast(b.column(i), &DataType::Utf8)
                .map_err(|e| err(format!("column {:?}: {e}", schema.field(i).name())))?;
            let arr = col.as_string::<i32>();
            values.extend(
                (0..arr.len()).map(|r| (!arr.is_null(r)).then(|| arr.value(r).to_string())),
            );
        }
    }
    Ok(columns)
}

/// A column of row numbers that R's `write.csv` and pandas' `to_csv` add by
/// default, under an empty header (read back by pandas as `Unnamed: 0`): not
/// data, so it is dropped from every file.
fn is_row_index(name: &str) -> bool {
    let name = name.trim();
    name.is_empty()
        || name
            .strip_prefix("Unnamed: ")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The present values of a text column (missing spellings left out).
fn present(values: &[Option<String>]) -> impl Iterator<Item = &str> + Clone {
    values
        .iter()
        .filter_map(|v| v.as_deref())
        .filter(|v| !is_missing(v))
}

/// Line of the `row`-th data row of a CSV file (the header is line 1; a
/// quoted field spanning lines shifts later rows); Parquet: the row.
fn place(path: &Path, row: usize) -> String {
    if is_parquet(path) {
        format!("row {}", row + 1)
    } else {
        format!("line {}", row + 2)
    }
}

/// Whose rows a file holds, which decides whether an error may quote them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rows {
    /// Real patients (training, holdout): PHI, never echoed.
    Real,
    /// Generator output: quoted, to help fix the generator.
    Synthetic,
}

/// Builds the table of one file with the given formats (ids dropped),
/// listing every value that does not fit.
fn to_table(
    path: &Path,
    rows: Rows,
    text: TextColumns,
    formats: &[(String, ColumnFormat)],
) -> Result<Table, FileError> {
    let mut bad: Vec<String> = Vec::new();
    let mut count = 0usize;
    let mut columns = Vec::new();
    for (name, values) in text {
        let Some(&(_, format)) = formats.iter().find(|(n, _)| *n == name) else {
            continue;
        };
        let column = match format {
            ColumnFormat::Text => {
                let labels: Vec<Option<String>> = values
                    .iter()
                    .map(|v| v.as_deref().filter(|v| !is_missing(v)).map(canonical_label))
                    .collect();
                Column::categorical(name, &labels)
            }
            _ => {
                let parsed = values
                    .iter()
                    .enumerate()
                    .map(|(row, v)| match v.as_deref().filter(|v| !is_missing(v)) {
                        None => f64::NAN,
                        Some(v) => format.parse(v).unwrap_or_else(|| {
                            count += 1;
                            if bad.len() < MAX_LISTED {
                                // A real file's cell is PHI and this message
                                // goes to stderr and CI logs: say where and
                                // how long, never what.
                                let value = match rows {
                                    Rows::Synthetic => format!("{v:?}"),
                                    Rows::Real => {
                                        format!("a {}-character value", v.chars().count())
                                    }
                                };
                                bad.push(format!(
                                    "column {name:?}, {}: {value} is not {}",
                                    place(path, row),
                                    format.expected()
                                ));
                            }
                            f64::NAN
                        }),
                    })
                    .collect();
                Column::numeric(name, parsed)
            }
        };
        columns.push(column);
    }
    if count > 0 {
        if count > bad.len() {
            bad.push(format!("… and {} more", count - bad.len()));
        }
        return Err(FileError::Values {
            path: path.to_path_buf(),
            count,
            listed: bad,
        });
    }
    Ok(Table::new(columns))
}

/// The training file: each non-id column's format from its values
/// (declared categorical columns are text).
fn infer_formats(text: &TextColumns, spec: &ValidateSpec) -> Vec<(String, ColumnFormat)> {
    text.iter()
        .filter(|(name, _)| !spec.id_columns.contains(name))
        .map(|(name, values)| {
            let format = if spec.categorical.contains(name) {
                ColumnFormat::Text
            } else {
                ColumnFormat::infer(present(values))
            };
            (name.clone(), format)
        })
        .collect()
}

/// Reads one file given the training file's formats (or, for the training
/// file itself, infers them).
async fn read_table(
    ctx: &SessionContext,
    path: &Path,
    rows: Rows,
    formats: Option<&[(String, ColumnFormat)]>,
    spec: &ValidateSpec,
) -> Result<(Vec<(String, ColumnFormat)>, Table, Option<Vec<u32>>), FileError> {
    let text: TextColumns = read_text(ctx, path)
        .await?
        .into_iter()
        .filter(|(name, _)| !is_row_index(name))
        .collect();
    let units = spec.entity.as_ref().and_then(|e| {
        text.iter()
            .find(|(name, _)| name == e)
            .map(|(_, values)| Units::codes(values.iter().map(|v| v.as_deref())))
    });
    let formats = match formats {
        Some(f) => {
            if let Some((extra, _)) = text.iter().find(|(name, _)| {
                !spec.id_columns.contains(name) && !f.iter().any(|(n, _)| n == name)
            }) {
                return Err(FileError::ExtraColumn {
                    path: path.to_path_buf(),
                    column: extra.clone(),
                });
            }
            f.to_vec()
        }
        None => infer_formats(&text, spec),
    };
    let table = to_table(path, rows, text, &formats)?;
    Ok((formats, table, units))
}

/// A DataFusion context that reads a file in one partition, in file order.
/// By default DataFusion splits files of 10 MB or more into byte ranges read
/// in parallel, and rows then arrive in a different order on every run; the
/// generators' draws and the gate's subsamples follow row order, so a
/// verdict or a model would depend on thread timing.
fn in_order() -> SessionContext {
    SessionContext::new_with_config(
        SessionConfig::new()
            .with_target_partitions(1)
            .with_repartition_file_scans(false),
    )
}

/// Reads the three files; training first, since it fixes the kinds.
pub async fn read_tables(
    train: &Path,
    holdout: &Path,
    synthetic: &Path,
    spec: &ValidateSpec,
) -> Result<ValidationTables, FileError> {
    let ctx = in_order();
    let (formats, train_t, train_u) = read_table(&ctx, train, Rows::Real, None, spec).await?;
    if let Some(e) = &spec.entity
        && train_u.is_none()
    {
        return Err(FileError::Spec {
            path: train.to_path_buf(),
            message: format!("entity: {e:?} is not a column of the training file"),
        });
    }
    let (_, holdout_t, holdout_u) =
        read_table(&ctx, holdout, Rows::Real, Some(&formats), spec).await?;
    let (_, synthetic_t, synthetic_u) =
        read_table(&ctx, synthetic, Rows::Synthetic, Some(&formats), spec).await?;
    Ok(ValidationTables {
        train: train_t,
        holdout: holdout_t,
        synthetic: synthetic_t,
        formats,
        units: Units {
            train: train_u,
            holdout: holdout_u,
            synthetic: synthetic_u,
        },
    })
}

/// Reads one file on its own (the training file of `resynth synthesize`),
/// with the formats its columns were read as.
pub async fn read_one(
    path: &Path,
    spec: &ValidateSpec,
) -> Result<(Table, Vec<(String, ColumnFormat)>), FileError> {
    let ctx = in_order();
    let (formats, table, _) = read_table(&ctx, path, Rows::Real, None, spec).await?;
    Ok((table, formats))
}
