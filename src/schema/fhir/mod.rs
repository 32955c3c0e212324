//! `format = "fhir"`: FHIR R4 JSON resources, one per Kafka message,
//! decoded straight into the flat columns a topology declares.
//!
//! Each column is a path into the resource (`path`), with a flat type that
//! maps onto a [`FieldKind`], so windows, SQL and generators see an
//! ordinary flat table. The source's [`RecordSchema`] is built from the
//! columns ([`record_schema`]), and [`FhirPlan::read`] fills the same
//! reusable slots the Avro and JSON readers fill, so `EventDecoder`'s
//! check-then-append contract holds unchanged: a resource is checked
//! completely, an error appends nothing, and it names the path and what
//! was expected, never the value.
//!
//! Three columns follow the declared ones, for the version rule
//! (`versions`): [`ID_COLUMN`] (`id`, required), [`VERSION_COLUMN`]
//! (`meta.versionId`) and [`STATUS_COLUMN`] (the status path, see
//! [`default_status_path`]).
//!
//! A resource is read with serde_json, bounded: larger than
//! `source.max_resource_bytes` (default 1 MiB) it is refused unread, and
//! only what the paths reach is built (`tree`), under serde_json's
//! recursion limit.

pub mod example;
pub mod path;
pub mod time;
pub mod tree;
pub mod versions;

pub use path::FhirPath;
pub use versions::{Versioned, is_replacement, latest_versions, resolve_versions};

use super::avro_binary::Slot;
use super::decode::{DecodeError, json_error};
use super::{RecordSchema, SchemaError};
use crate::topology::{EventFormat, FhirValueType, SourceConfig};
use path::Found;
use tree::{Keys, Tree};

/// The resource's `id`: the key of the version rule.
pub const ID_COLUMN: &str = "fhir_id";
/// `meta.versionId`, null when absent.
pub const VERSION_COLUMN: &str = "fhir_version";
/// The status at the source's status path, null when absent or none.
pub const STATUS_COLUMN: &str = "fhir_status";
/// Status code of a withdrawn resource.
pub const WITHDRAWN: &str = "entered-in-error";
/// Default of `source.max_resource_bytes`.
pub const DEFAULT_MAX_RESOURCE_BYTES: usize = 1 << 20;
/// Ceiling of `source.max_resource_bytes` (slots hold u32 offsets).
pub const MAX_RESOURCE_BYTES_CEILING: usize = 64 << 20;

/// Condition's verification status, whose `entered-in-error` withdraws it.
pub const CONDITION_STATUS: &str = "verificationStatus.coding[system='http://terminology.hl7.org/CodeSystem/condition-ver-status'].code";
const ALLERGY_STATUS: &str = "verificationStatus.coding[system='http://terminology.hl7.org/CodeSystem/allergyintolerance-verification'].code";

/// The status path used when `source.status_path` is not given: the
/// element whose `entered-in-error` code withdraws a resource of this type
/// in R4. None for types without one (Patient, Practitioner, ...).
pub fn default_status_path(resource_type: &str) -> Option<&'static str> {
    Some(match resource_type {
        "Condition" => CONDITION_STATUS,
        "AllergyIntolerance" => ALLERGY_STATUS,
        "Goal" => "lifecycleStatus",
        "Observation"
        | "DiagnosticReport"
        | "Encounter"
        | "MedicationRequest"
        | "MedicationAdministration"
        | "MedicationStatement"
        | "MedicationDispense"
        | "Medication"
        | "Procedure"
        | "Immunization"
        | "CarePlan"
        | "CareTeam"
        | "ServiceRequest"
        | "DocumentReference"
        | "ImagingStudy"
        | "Device"
        | "Claim"
        | "ExplanationOfBenefit"
        | "Coverage"
        | "SupplyDelivery" => "status",
        _ => return None,
    })
}

fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Every problem with a `fhir` source's settings, each with its path under
/// `at`. Every column path is parsed here, so all bad ones are listed.
pub fn config_problems(source: &SourceConfig, at: &str) -> Vec<String> {
    let mut p = Vec::new();
    match source.resource_type.as_deref() {
        None => p.push(format!(
            "{at}.resource_type: required for format = \"fhir\" (e.g. \"Observation\")"
        )),
        Some(t) if !(t.starts_with(|c: char| c.is_ascii_uppercase()) && is_identifier(t)) => p
            .push(format!(
                "{at}.resource_type: expected a FHIR resource type like \"Observation\"; got {t:?}"
            )),
        Some(_) => {}
    }
    if source.columns.is_empty() {
        p.push(format!(
            "{at}.columns: a fhir source needs at least one column (and its event time)"
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, c) in source.columns.iter().enumerate() {
        let here = format!("{at}.columns[{i}]");
        if !is_identifier(&c.name) {
            p.push(format!(
                "{here}.name: must be a plain identifier (letters, digits, '_'); got {:?}",
                c.name
            ));
        } else if [ID_COLUMN, VERSION_COLUMN, STATUS_COLUMN].contains(&c.name.as_str()) {
            p.push(format!(
                "{here}.name: {:?} is reserved for the version rule's column",
                c.name
            ));
        } else if !seen.insert(c.name.as_str()) {
            p.push(format!("{here}.name: {:?} is declared twice", c.name));
        }
        if let Err(e) = FhirPath::parse(&c.path) {
            p.push(format!("{here}.path: {e}; got {:?}", c.path));
        }
    }
    match source
        .columns
        .iter()
        .find(|c| c.name == source.event_time_field)
    {
        None if !source.columns.is_empty() => p.push(format!(
            "{at}.event_time_field: {:?} is not one of {at}.columns",
            source.event_time_field
        )),
        Some(c) if c.kind != FhirValueType::Timestamp || !c.required => p.push(format!(
            "{at}.event_time_field: column {:?} must be type = \"timestamp\" and required",
            c.name
        )),
        _ => {}
    }
    if let Some(s) = &source.status_path
        && let Err(e) = FhirPath::parse(s)
    {
        p.push(format!("{at}.status_path: {e}; got {s:?}"));
    }
    if let Some(n) = source.max_resource_bytes
        && !(1024..=MAX_RESOURCE_BYTES_CEILING).contains(&n)
    {
        p.push(format!(
            "{at}.max_resource_bytes: must be in 1024..={MAX_RESOURCE_BYTES_CEILING}; got {n}"
        ));
    }
    p
}

/// The flat record schema of a `fhir` source: its columns, then the
/// version rule's three.
pub fn record_schema(source: &SourceConfig) -> Result<RecordSchema, SchemaError> {
    let origin = "source.columns";
    let problems = config_problems(source, "source");
    if !problems.is_empty() {
        return Err(SchemaError::Unsupported {
            path: origin.into(),
            message: problems.join("; "),
        });
    }
    let avro_type = |kind: FhirValueType| match kind {
        FhirValueType::String => serde_json::json!("string"),
        FhirValueType::Int => serde_json::json!("int"),
        FhirValueType::Long | FhirValueType::AgeYears => serde_json::json!("long"),
        FhirValueType::Double => serde_json::json!("double"),
        FhirValueType::Boolean => serde_json::json!("boolean"),
        FhirValueType::Timestamp => {
            serde_json::json!({"type": "long", "logicalType": "timestamp-millis"})
        }
    };
    let mut fields: Vec<serde_json::Value> = source
        .columns
        .iter()
        .map(|c| {
            let t = avro_type(c.kind);
            let t = if c.required {
                t
            } else {
                serde_json::json!(["null", t])
            };
            serde_json::json!({"name": c.name, "type": t})
        })
        .collect();
    fields.push(serde_json::json!({"name": ID_COLUMN, "type": "string"}));
    for name in [VERSION_COLUMN, STATUS_COLUMN] {
        fields.push(serde_json::json!({"name": name, "type": ["null", "string"]}));
    }
    let text = serde_json::json!({
        "type": "record",
        "name": source.resource_type.as_deref().unwrap_or("Resource"),
        "namespace": "resynth.fhir",
        "fields": fields,
    })
    .to_string();
    RecordSchema::parse(&text, origin)
}

#[derive(Debug, Clone)]
struct Column {
    path: FhirPath,
    kind: FhirValueType,
    required: bool,
}

/// A `fhir` source compiled once: paths parsed, their keys merged.
#[derive(Debug, Clone)]
pub struct FhirPlan {
    resource_type: String,
    /// Declared columns, then id, version and status (slot order).
    columns: Vec<Column>,
    time_slot: usize,
    status: Option<FhirPath>,
    keys: Keys,
    max_bytes: usize,
}

const RESOURCE_TYPE: &str = "resourceType";

impl FhirPlan {
    /// Compiles `source` (`format = "fhir"`); every problem is listed.
    pub fn new(source: &SourceConfig) -> Result<FhirPlan, Vec<String>> {
        if source.format != EventFormat::Fhir {
            return Err(vec!["source.format: not fhir".into()]);
        }
        let problems = config_problems(source, "source");
        if !problems.is_empty() {
            return Err(problems);
        }
        let resource_type = source.resource_type.clone().unwrap_or_default();
        let mut columns: Vec<Column> = source
            .columns
            .iter()
            .map(|c| Column {
                path: FhirPath::parse(&c.path).expect("checked above"),
                kind: c.kind,
                required: c.required,
            })
            .collect();
        let time_slot = source
            .columns
            .iter()
            .position(|c| c.name == source.event_time_field)
            .expect("checked above");
        for (text, required) in [("id", true), ("meta.versionId", false)] {
            columns.push(Column {
                path: FhirPath::fields(text),
                kind: FhirValueType::String,
                required,
            });
        }
        let status = match &source.status_path {
            Some(s) => Some(FhirPath::parse(s).expect("checked above")),
            None => default_status_path(&resource_type).map(FhirPath::fields),
        };
        let mut keys = Keys::default();
        keys.insert(&FhirPath::fields(RESOURCE_TYPE).alternatives[0]);
        for path in columns.iter().map(|c| &c.path).chain(status.iter()) {
            for alt in &path.alternatives {
                keys.insert(alt);
            }
        }
        Ok(FhirPlan {
            resource_type,
            columns,
            time_slot,
            status,
            keys,
            max_bytes: source
                .max_resource_bytes
                .unwrap_or(DEFAULT_MAX_RESOURCE_BYTES),
        })
    }

    /// Index of the event-time slot.
    pub fn time_slot(&self) -> usize {
        self.time_slot
    }

    /// Reads one resource into `slots` (one per column of
    /// [`record_schema`], text in `text`), checking all of it.
    pub(crate) fn read(
        &self,
        payload: &[u8],
        slots: &mut Vec<Slot>,
        text: &mut String,
    ) -> Result<(), DecodeError> {
        slots.clear();
        text.clear();
        if payload.len() > self.max_bytes {
            return Err(DecodeError::TooLarge {
                bytes: payload.len(),
                max: self.max_bytes,
            });
        }
        let root = tree::parse(payload, &self.keys).map_err(|e| json_error(&e))?;
        if !matches!(root, Tree::Object(_)) {
            return Err(DecodeError::Json("top level is not an object".into()));
        }
        if root.get(RESOURCE_TYPE).and_then(Tree::as_str) != Some(self.resource_type.as_str()) {
            return Err(self.error(RESOURCE_TYPE, format!("expected {:?}", self.resource_type)));
        }
        let n = self.columns.len();
        slots.resize(n, Slot::Null);
        let mut ages = Vec::new();
        for (i, c) in self.columns.iter().enumerate() {
            let found = c.path.find(&root);
            let v = match found {
                Found::Value(v) => v,
                Found::Missing if c.required => {
                    return Err(self.error(&c.path.text, "is missing (the column is required)"));
                }
                Found::Missing => continue,
                Found::NotAnObject => {
                    return Err(self.error(
                        &c.path.text,
                        "expected an object (or an array of objects) along the path",
                    ));
                }
            };
            let bad = || self.error(&c.path.text, format!("expected {}", expected(c.kind)));
            slots[i] = match (c.kind, v) {
                (FhirValueType::String, Tree::Str(s)) => {
                    if i == n - 2 && !is_fhir_id(s) {
                        return Err(self.error(
                            &c.path.text,
                            "expected a FHIR id (1 to 64 of A-Z, a-z, 0-9, '-', '.')",
                        ));
                    }
                    push_text(text, s)
                }
                (FhirValueType::Int, Tree::I64(x)) if i32::try_from(*x).is_ok() => Slot::Int(*x),
                (FhirValueType::Int, Tree::U64(x)) if i32::try_from(*x).is_ok() => {
                    Slot::Int(*x as i64)
                }
                (FhirValueType::Long, Tree::I64(x)) => Slot::Int(*x),
                (FhirValueType::Long, Tree::U64(x)) => {
                    Slot::Int(i64::try_from(*x).map_err(|_| bad())?)
                }
                (FhirValueType::Double, Tree::F64(x)) if x.is_finite() => Slot::Float(*x),
                (FhirValueType::Double, Tree::I64(x)) => Slot::Float(*x as f64),
                (FhirValueType::Double, Tree::U64(x)) => Slot::Float(*x as f64),
                (FhirValueType::Boolean, Tree::Bool(b)) => Slot::Bool(*b),
                (FhirValueType::Timestamp, Tree::Str(s)) => {
                    Slot::Int(time::parse_time_ms(s).ok_or_else(bad)?)
                }
                (FhirValueType::AgeYears, Tree::Str(s)) => {
                    ages.push((i, time::parse_date(s).ok_or_else(bad)?));
                    continue;
                }
                _ => return Err(bad()),
            };
        }
        if let Some(status) = &self.status {
            match status.find(&root) {
                Found::Value(Tree::Str(s)) => slots.push(push_text(text, s)),
                Found::Missing => slots.push(Slot::Null),
                _ => return Err(self.error(&status.text, "expected a code (a string)")),
            }
        } else {
            slots.push(Slot::Null);
        }
        let Slot::Int(at) = slots[self.time_slot] else {
            unreachable!("the event-time column is required and a timestamp")
        };
        for (i, birth) in ages {
            let c = &self.columns[i];
            let age = time::age_years(birth, at).ok_or_else(|| {
                self.error(&c.path.text, format!("expected {}", expected(c.kind)))
            })?;
            slots[i] = Slot::Int(age);
        }
        Ok(())
    }

    fn error(&self, path: &str, problem: impl Into<String>) -> DecodeError {
        DecodeError::Fhir {
            path: path.to_string(),
            problem: problem.into(),
        }
    }
}

fn push_text(text: &mut String, s: &str) -> Slot {
    let start = text.len();
    text.push_str(s);
    Slot::Text(start as u32, text.len() as u32)
}

/// FHIR R4 `id`: `[A-Za-z0-9\-\.]{1,64}`.
fn is_fhir_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn expected(kind: FhirValueType) -> &'static str {
    match kind {
        FhirValueType::String => "a string",
        FhirValueType::Int => "a 32-bit integer",
        FhirValueType::Long => "an integer",
        FhirValueType::Double => "a number",
        FhirValueType::Boolean => "true or false",
        FhirValueType::Timestamp => {
            "a FHIR date, dateTime or instant (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm|-hh:mm))"
        }
        FhirValueType::AgeYears => {
            "a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD) on or before the event time"
        }
    }
}

#[cfg(test)]
mod tests;
