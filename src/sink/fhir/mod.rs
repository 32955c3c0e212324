//! Synthetic batches as FHIR R4 resources, for consumers whose code already
//! reads FHIR (`output.format = "fhir"`).
//!
//! Each synthetic row becomes a Patient, plus the Observations (one per
//! mapped numeric column with a value) and Conditions (one per mapped code
//! column with a code, or flag column that is set) the topology's
//! `[output.fhir]` mapping declares. Every id is fresh: derived from the
//! batch id, the sampling seed and the row number only (see [`fresh_id`]),
//! never from anything read from the source, so a batch regenerated after a
//! restart gives the same bytes and no id points at a real person. The
//! synthetic table itself holds no identifier column (`model.id_columns`
//! are never learned); the mapping refuses to read one.
//!
//! The mapping is checked in two stages like the rest of the topology:
//! [`FhirMapping::validate`] (values, with `Topology::validate`) and
//! [`FhirMapping::check_columns`] (against the training table's schema, with
//! `resynth check` and at engine start).
//!
//! `deploy/hapi/hapi.sh validate` checks the output with HAPI FHIR, an
//! independent implementation (`tests/fhir_output.rs`).

pub mod codes;
mod resources;

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::{DataType, Schema as ArrowSchema};
use serde::{Deserialize, Serialize};

pub use resources::{BatchRef, FhirResource, batch_resources, fresh_id};

use crate::schema::RecordSchema;
use crate::schema::encode::{self, EncodeError};
use crate::table::Table;

/// What a synthetic record on `output.topic` looks like.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// One Avro datum of `output.schema` per synthetic row (default).
    #[default]
    Avro,
    /// FHIR R4 JSON resources instead: a Patient per synthetic row plus the
    /// Observations and Conditions `[output.fhir]` declares, one resource per
    /// record, keyed by the synthetic patient's id.
    Fhir,
}

/// `[output.fhir]`: how a synthetic row becomes FHIR R4 resources.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FhirMapping {
    /// Categorical column whose label gives `Patient.gender`.
    #[serde(default)]
    pub sex_column: Option<String>,
    /// Label → FHIR gender (`male`, `female`, `other`, `unknown`), on top of
    /// the built-in `M`/`male` → male, `F`/`female` → female,
    /// `O`/`other` → other, `U`/`unknown` → unknown (any case). A label
    /// neither knows gives `unknown`.
    #[serde(default)]
    pub sex_values: BTreeMap<String, String>,
    /// Numeric column with the age in whole years at the window: the
    /// Patient's `birthDate` is drawn so that the patient is exactly that
    /// old at the row's effective time inside the window.
    #[serde(default)]
    pub age_column: Option<String>,
    /// Numeric columns published as Observations.
    #[serde(default)]
    pub observations: Vec<ObservationMapping>,
    /// Code or flag columns published as Conditions.
    #[serde(default)]
    pub conditions: Vec<ConditionMapping>,
}

/// `[[output.fhir.observations]]`: a numeric column → an Observation with a
/// LOINC code and a UCUM `valueQuantity`; a missing value gives none.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ObservationMapping {
    /// Numeric column of the training table.
    pub column: String,
    /// LOINC code (`4548-4`), check digit verified at startup.
    pub loinc: String,
    /// `code.coding.display` and `code.text`. Default: the column name.
    #[serde(default)]
    pub display: Option<String>,
    /// UCUM unit code of the value (`%`, `mg/dL`, `kg/m2`).
    pub unit: String,
    /// Observation category (FHIR `observation-category`): `laboratory`
    /// (default), `vital-signs`, `exam`, `survey`, `social-history`, ...
    #[serde(default = "default_category")]
    pub category: String,
    /// Decimal places the value is rounded to. Default 2.
    #[serde(default = "default_decimals")]
    pub decimals: u32,
}

/// `[[output.fhir.conditions]]`: a Condition per row that has one.
/// Without `code`, the column's label is the code (a diagnosis column);
/// with `code`, the column is a flag (true / 1 / yes) and a set flag gives
/// a Condition with that code.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConditionMapping {
    /// Code column (categorical) or flag column (boolean-like or 0/1).
    pub column: String,
    /// Code system URI: `http://snomed.info/sct`,
    /// `http://hl7.org/fhir/sid/icd-10-cm`, ...
    pub system: String,
    /// The code of a flag column's Condition. None: the column holds codes.
    #[serde(default)]
    pub code: Option<String>,
    /// `code.coding.display` of a flag column's code.
    #[serde(default)]
    pub display: Option<String>,
    /// Code column: label → display.
    #[serde(default)]
    pub displays: BTreeMap<String, String>,
    /// Code column: labels that mean "no condition" (e.g. a well-visit
    /// code); a missing value never gives one.
    #[serde(default)]
    pub skip: Vec<String>,
    /// Condition category: `encounter-diagnosis` (default) or `problem-list-item`.
    #[serde(default = "default_condition_category")]
    pub category: String,
}

fn default_category() -> String {
    "laboratory".into()
}
fn default_condition_category() -> String {
    "encounter-diagnosis".into()
}
fn default_decimals() -> u32 {
    2
}

/// Codes of FHIR R4's `observation-category` code system.
const OBSERVATION_CATEGORIES: [&str; 9] = [
    "social-history",
    "vital-signs",
    "imaging",
    "laboratory",
    "procedure",
    "survey",
    "exam",
    "therapy",
    "activity",
];
const GENDERS: [&str; 4] = ["male", "female", "other", "unknown"];

impl FhirMapping {
    /// Every value problem of the mapping, each with its path
    /// (`output.fhir.observations[1].loinc: ...`). `id_columns` and `entity`
    /// are the topology's identifier columns, which no mapping may read.
    pub fn validate(&self, id_columns: &[String], entity: &str) -> Vec<String> {
        let mut p = Vec::new();
        let is_id = |c: &str| c == entity || id_columns.iter().any(|i| i == c);
        let column = |path: String, c: &str, p: &mut Vec<String>| {
            if c.trim().is_empty() {
                p.push(format!("{path}: must not be empty"));
            } else if is_id(c) {
                p.push(format!(
                    "{path}: {c:?} is an identifier column (model.entity_column / model.id_columns); a synthetic resource never carries a real identifier"
                ));
            }
        };
        for (field, c) in [
            ("output.fhir.sex_column", &self.sex_column),
            ("output.fhir.age_column", &self.age_column),
        ] {
            if let Some(c) = c {
                column(field.to_string(), c, &mut p);
            }
        }
        for (label, gender) in &self.sex_values {
            if !GENDERS.contains(&gender.as_str()) {
                p.push(format!(
                    "output.fhir.sex_values.{label}: {gender:?} is not a FHIR gender ({})",
                    GENDERS.join(", ")
                ));
            }
        }
        if !self.sex_values.is_empty() && self.sex_column.is_none() {
            p.push("output.fhir.sex_values: given without output.fhir.sex_column".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, o) in self.observations.iter().enumerate() {
            let at = format!("output.fhir.observations[{i}]");
            column(format!("{at}.column"), &o.column, &mut p);
            if !seen.insert((o.column.clone(), o.loinc.clone())) {
                p.push(format!(
                    "{at}: column {:?} with LOINC {} is mapped twice",
                    o.column, o.loinc
                ));
            }
            if let Some(e) = codes::loinc_problem(&o.loinc) {
                p.push(format!("{at}.loinc: {e}"));
            }
            if let Some(e) = codes::ucum_problem(&o.unit) {
                p.push(format!("{at}.unit: {e}"));
            }
            if !OBSERVATION_CATEGORIES.contains(&o.category.as_str()) {
                p.push(format!(
                    "{at}.category: {:?} is not an observation-category code ({})",
                    o.category,
                    OBSERVATION_CATEGORIES.join(", ")
                ));
            }
            if o.decimals > 9 {
                p.push(format!("{at}.decimals: must be ≤ 9; got {}", o.decimals));
            }
            if o.display.as_deref().is_some_and(|d| d.trim().is_empty()) {
                p.push(format!("{at}.display: must not be empty when given"));
            }
        }
        for (i, c) in self.conditions.iter().enumerate() {
            let at = format!("output.fhir.conditions[{i}]");
            column(format!("{at}.column"), &c.column, &mut p);
            if !["http://", "https://", "urn:"]
                .iter()
                .any(|s| c.system.starts_with(s))
                || c.system.contains(char::is_whitespace)
            {
                p.push(format!(
                    "{at}.system: {:?} is not a code system URI (e.g. {} or {})",
                    c.system,
                    codes::SNOMED,
                    codes::ICD10CM
                ));
            }
            if !["encounter-diagnosis", "problem-list-item"].contains(&c.category.as_str()) {
                p.push(format!(
                    "{at}.category: {:?} is not a condition-category code (encounter-diagnosis, problem-list-item)",
                    c.category
                ));
            }
            match &c.code {
                Some(code) => {
                    if let Some(e) = codes::code_problem(&c.system, code) {
                        p.push(format!("{at}.code: {e}"));
                    }
                    if !c.displays.is_empty() || !c.skip.is_empty() {
                        p.push(format!(
                            "{at}: displays and skip are for code columns; a flag column (code given) takes display"
                        ));
                    }
                }
                None => {
                    if c.display.is_some() {
                        p.push(format!(
                            "{at}.display: only with code (a flag column); a code column takes displays = {{ code = \"display\" }}"
                        ));
                    }
                    for code in c.displays.keys() {
                        if let Some(e) = codes::code_problem(&c.system, code) {
                            p.push(format!("{at}.displays.{code}: {e}"));
                        }
                    }
                }
            }
        }
        p
    }

    /// Problems of the mapping against the training table (window.sql's
    /// output): every column exists and has a kind its resource can use.
    pub fn check_columns(&self, training: &ArrowSchema) -> Vec<String> {
        let mut p = Vec::new();
        let mut want =
            |path: String, column: &str, ok: fn(&DataType) -> bool, what: &str| match training
                .field_with_name(column)
            {
                Err(_) => p.push(format!(
                    "{path}: {column:?} is not a column of the training table (window.sql)"
                )),
                Ok(f) if !ok(f.data_type()) => p.push(format!(
                    "{path}: {column:?} is {} but must be {what}",
                    f.data_type()
                )),
                Ok(_) => {}
            };
        let numeric = |t: &DataType| t.is_numeric();
        let text = |t: &DataType| {
            matches!(
                t,
                DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
                    | DataType::Dictionary(..)
            )
        };
        let flag = |t: &DataType| {
            t.is_numeric()
                || matches!(
                    t,
                    DataType::Boolean
                        | DataType::Utf8
                        | DataType::LargeUtf8
                        | DataType::Utf8View
                        | DataType::Dictionary(..)
                )
        };
        if let Some(c) = &self.sex_column {
            want("output.fhir.sex_column".into(), c, text, "text (a label)");
        }
        if let Some(c) = &self.age_column {
            want(
                "output.fhir.age_column".into(),
                c,
                numeric,
                "numeric (years)",
            );
        }
        for (i, o) in self.observations.iter().enumerate() {
            want(
                format!("output.fhir.observations[{i}].column"),
                &o.column,
                numeric,
                "numeric",
            );
        }
        for (i, c) in self.conditions.iter().enumerate() {
            let path = format!("output.fhir.conditions[{i}].column");
            if c.code.is_some() {
                want(
                    path,
                    &c.column,
                    flag,
                    "a flag (boolean, 0/1 or true/false text)",
                );
            } else {
                want(path, &c.column, text, "text (the codes)");
            }
        }
        p
    }
}

/// Problems with `format` and `[output.fhir]` together (for `Topology::validate`).
pub fn validate_output(
    format: OutputFormat,
    mapping: Option<&FhirMapping>,
    id_columns: &[String],
    entity: &str,
) -> Vec<String> {
    match (format, mapping) {
        (OutputFormat::Fhir, None) => {
            vec!["output.fhir: output.format = \"fhir\" needs an [output.fhir] mapping".into()]
        }
        (OutputFormat::Avro, Some(_)) => vec![
            "output.fhir: given but output.format is \"avro\"; set output.format = \"fhir\" or remove it"
                .into(),
        ],
        (OutputFormat::Fhir, Some(m)) => m.validate(id_columns, entity),
        (OutputFormat::Avro, None) => Vec::new(),
    }
}

/// One output record: (key, payload).
pub type KeyedRecord = (Vec<u8>, Vec<u8>);

/// The records of one synthetic batch in the output format, as (key,
/// payload): Avro rows keyed `<batch id>-<row>`, or FHIR resources keyed by
/// the synthetic patient id. The one place the publish path (a window's
/// batch, a held release) turns a sampled table into bytes.
pub fn encode_batch(
    format: OutputFormat,
    mapping: Option<&FhirMapping>,
    avro: &RecordSchema,
    id_columns: &[String],
    table: &Table,
    batch: &BatchRef<'_>,
) -> Result<Vec<KeyedRecord>, EncodeError> {
    match (format, mapping) {
        (OutputFormat::Fhir, Some(m)) => Ok(batch_resources(m, table, batch)
            .map_err(|e| EncodeError::Value {
                field: e.path,
                problem: e.problem,
            })?
            .into_iter()
            .map(|r| (r.key.into_bytes(), r.json))
            .collect()),
        (OutputFormat::Fhir, None) => Err(EncodeError::Value {
            field: "output.fhir".into(),
            problem: "output.format = \"fhir\" without a mapping".into(),
        }),
        (OutputFormat::Avro, _) => {
            Ok(
                encode::encode_rows(avro, table, id_columns, batch.batch_id)?
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| (format!("{}-{i}", batch.batch_id).into_bytes(), p))
                    .collect(),
            )
        }
    }
}

/// `start_ms-end_ms` (the `resynth.window` header) → bounds.
pub fn window_bounds(label: &str) -> Option<(i64, i64)> {
    let (a, b) = label.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[cfg(test)]
mod tests;
