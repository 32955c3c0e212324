//! File mode: the training, holdout and synthetic tables of `resynth
//! validate`, read from CSV or Parquet through DataFusion, so a team can run
//! the engine's gate on any generator's output (ours or another tool's).
//!
//! The training file fixes the types: a column present in training is read
//! with the training type in the other two files, so the three tables line
//! up. Columns the spec declares categorical are read as strings everywhere,
//! because type inference would turn codes like zip3 `021` into the number
//! 21. A column missing from the synthetic file is left for the gate to
//! report; a column the training file lacks is an error, since nothing could
//! judge it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};
use serde::{Deserialize, Serialize};

use crate::gate::{GateConfig, Roles};
use crate::generate::GeneratorKind;
use crate::generate::cart::CartConfig;
use crate::generate::copula::CopulaConfig;
use crate::schema::arrow_table;
use crate::table::Table;

/// The `--roles` file of `resynth validate`: what the columns are and the
/// thresholds to apply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidateSpec {
    /// Identifier columns (patient id, MRN): dropped before scoring, since
    /// fresh ids never match and must not be compared.
    pub id_columns: Vec<String>,
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
    #[error("{}: {source}", path.display())]
    Convert {
        path: PathBuf,
        source: arrow_table::ConvertError,
    },
}

impl ValidateSpec {
    /// Reads and checks the roles file; every problem is listed.
    pub fn load(path: &Path) -> Result<ValidateSpec, FileError> {
        let err = |message: String| FileError::Spec {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let spec: ValidateSpec = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
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

/// The three tables of a validation, identifiers dropped.
#[derive(Debug, Clone)]
pub struct ValidationTables {
    pub train: Table,
    pub holdout: Table,
    pub synthetic: Table,
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

/// The file's own schema (inferred for CSV).
async fn file_schema(ctx: &SessionContext, path: &Path) -> Result<SchemaRef, FileError> {
    let err = read_error(path);
    let name = path
        .to_str()
        .ok_or_else(|| err("path is not UTF-8".into()))?;
    let df = if is_parquet(path) {
        ctx.read_parquet(name, ParquetReadOptions::default()).await
    } else {
        ctx.read_csv(name, CsvReadOptions::new().has_header(true))
            .await
    }
    .map_err(|e| err(e.to_string()))?;
    Ok(Arc::new(df.schema().as_arrow().clone()))
}

/// The schema to read `own` with: categorical columns as strings, columns
/// known from training with the training type, the rest as inferred.
fn read_schema(own: &Schema, train: Option<&Schema>, categorical: &[String]) -> Schema {
    Schema::new(
        own.fields()
            .iter()
            .map(|f| {
                let dt = if categorical.contains(f.name()) {
                    DataType::Utf8
                } else {
                    let dt = train
                        .and_then(|t| t.field_with_name(f.name()).ok())
                        .map_or_else(|| f.data_type().clone(), |t| t.data_type().clone());
                    // Every number becomes f64 in the gate anyway; reading
                    // integers as floats lets another tool write `57.0`
                    // where training had `57`.
                    if dt.is_integer() {
                        DataType::Float64
                    } else {
                        dt
                    }
                };
                Field::new(f.name(), dt, true)
            })
            .collect::<Vec<_>>(),
    )
}

async fn read_batches(
    ctx: &SessionContext,
    path: &Path,
    schema: &Schema,
) -> Result<Vec<RecordBatch>, FileError> {
    let err = read_error(path);
    let name = path
        .to_str()
        .ok_or_else(|| err("path is not UTF-8".into()))?;
    if is_parquet(path) {
        let df = ctx
            .read_parquet(name, ParquetReadOptions::default())
            .await
            .map_err(|e| err(e.to_string()))?;
        let batches = df.collect().await.map_err(|e| err(e.to_string()))?;
        // Parquet carries its own types: cast to the agreed ones.
        let target = Arc::new(schema.clone());
        batches
            .into_iter()
            .map(|b| {
                let columns = b
                    .columns()
                    .iter()
                    .zip(target.fields())
                    .map(|(c, f)| cast(c, f.data_type()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| err(format!("casting to the training types: {e}")))?;
                RecordBatch::try_new(target.clone(), columns).map_err(|e| err(e.to_string()))
            })
            .collect()
    } else {
        let options = CsvReadOptions::new().has_header(true).schema(schema);
        let df = ctx
            .read_csv(name, options)
            .await
            .map_err(|e| err(e.to_string()))?;
        df.collect().await.map_err(|e| err(e.to_string()))
    }
}

async fn read_table(
    ctx: &SessionContext,
    path: &Path,
    train: Option<&Schema>,
    spec: &ValidateSpec,
) -> Result<(Schema, Table), FileError> {
    let own = file_schema(ctx, path).await?;
    if let Some(t) = train
        && let Some(extra) = own
            .fields()
            .iter()
            .find(|f| t.field_with_name(f.name()).is_err())
    {
        return Err(FileError::ExtraColumn {
            path: path.to_path_buf(),
            column: extra.name().clone(),
        });
    }
    let schema = read_schema(&own, train, &spec.categorical);
    let batches = read_batches(ctx, path, &schema).await?;
    let table = if batches.is_empty() {
        Table::default()
    } else {
        arrow_table::to_table(&batches, &spec.id_columns).map_err(|source| FileError::Convert {
            path: path.to_path_buf(),
            source,
        })?
    };
    Ok((schema, table))
}

/// Reads the three files; training first, since it fixes the types.
pub async fn read_tables(
    train: &Path,
    holdout: &Path,
    synthetic: &Path,
    spec: &ValidateSpec,
) -> Result<ValidationTables, FileError> {
    let ctx = SessionContext::new();
    let (schema, train_t) = read_table(&ctx, train, None, spec).await?;
    let (_, holdout_t) = read_table(&ctx, holdout, Some(&schema), spec).await?;
    let (_, synthetic_t) = read_table(&ctx, synthetic, Some(&schema), spec).await?;
    Ok(ValidationTables {
        train: train_t,
        holdout: holdout_t,
        synthetic: synthetic_t,
    })
}

/// Reads one file on its own (the training file of `resynth synthesize`).
pub async fn read_one(path: &Path, spec: &ValidateSpec) -> Result<Table, FileError> {
    let ctx = SessionContext::new();
    Ok(read_table(&ctx, path, None, spec).await?.1)
}
