//! Building the resources of one batch: pure functions of the synthetic
//! table, the mapping and the batch's identity (batch id, sampling seed,
//! window), so the same batch always gives the same bytes.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{ConditionMapping, FhirMapping, ObservationMapping, codes};
use crate::table::{ColumnValues, NULL_CODE, Table};

/// What identifies a batch: everything a resource's ids and times derive from.
#[derive(Debug, Clone, Copy)]
pub struct BatchRef<'a> {
    /// `resynth.batch_id` (topology, window start, model version).
    pub batch_id: &'a str,
    /// The seed the batch was sampled with.
    pub sample_seed: u64,
    /// Event-time bounds of the window, ms, half-open.
    pub window_start_ms: i64,
    pub window_end_ms: i64,
}

/// One resource, ready to publish.
#[derive(Debug, Clone)]
pub struct FhirResource {
    /// The synthetic patient's id: the Kafka key of each of its resources.
    pub key: String,
    pub resource_type: &'static str,
    pub id: String,
    /// FHIR R4 JSON.
    pub json: Vec<u8>,
}

/// A mapping that does not fit the table (`check` rejects these at startup).
#[derive(Debug, Clone)]
pub struct BuildError {
    pub path: String,
    pub problem: String,
}

/// A fresh id: a UUID (RFC 9562 version 8, name-based on SHA-256) of the
/// batch id, the sampling seed and `parts` (resource type, row, mapping
/// index). Nothing read from the source enters it.
pub fn fresh_id(batch: &BatchRef<'_>, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(b"resynth.fhir.v1\0");
    h.update(batch.batch_id.as_bytes());
    h.update(b"\0");
    h.update(batch.sample_seed.to_be_bytes());
    for p in parts {
        h.update(b"\0");
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80; // version 8
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 9562 variant
    uuid::Uuid::from_bytes(b).hyphenated().to_string()
}

/// A number in [0, 1) from the batch and `parts` (times, birth dates).
fn unit_draw(batch: &BatchRef<'_>, parts: &[&str]) -> u64 {
    let mut h = Sha256::new();
    h.update(b"resynth.fhir.draw\0");
    h.update(batch.batch_id.as_bytes());
    h.update(batch.sample_seed.to_be_bytes());
    for p in parts {
        h.update(b"\0");
        h.update(p.as_bytes());
    }
    u64::from_be_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
}

const SECURITY_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

#[derive(Serialize)]
struct Coding<'a> {
    system: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    display: Option<&'a str>,
}

#[derive(Serialize)]
struct Concept<'a> {
    coding: [Coding<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
}

fn concept<'a>(system: &'a str, code: &'a str, display: Option<&'a str>) -> Concept<'a> {
    Concept {
        coding: [Coding {
            system,
            code,
            display,
        }],
        text: None,
    }
}

#[derive(Serialize)]
struct Meta<'a> {
    security: [Coding<'a>; 1],
}

/// Every resource is labelled as test data (HL7 `HTEST`), so a system that
/// ingests it by mistake can tell.
fn meta() -> Meta<'static> {
    Meta {
        security: [Coding {
            system: SECURITY_SYSTEM,
            code: "HTEST",
            display: Some("test health data"),
        }],
    }
}

#[derive(Serialize)]
struct Narrative {
    status: &'static str,
    div: String,
}

fn narrative(text: &str) -> Narrative {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    Narrative {
        status: "generated",
        div: format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{escaped}</div>"),
    }
}

#[derive(Serialize)]
struct Identifier<'a> {
    system: &'a str,
    value: String,
}

#[derive(Serialize)]
struct Reference {
    reference: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Patient<'a> {
    resource_type: &'static str,
    id: &'a str,
    meta: Meta<'static>,
    text: Narrative,
    identifier: [Identifier<'static>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    gender: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    birth_date: Option<String>,
}

#[derive(Serialize)]
struct Quantity<'a> {
    value: f64,
    unit: &'a str,
    system: &'static str,
    code: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Observation<'a> {
    resource_type: &'static str,
    id: &'a str,
    meta: Meta<'static>,
    text: Narrative,
    status: &'static str,
    category: [Concept<'a>; 1],
    code: Concept<'a>,
    subject: Reference,
    effective_date_time: &'a str,
    value_quantity: Quantity<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Condition<'a> {
    resource_type: &'static str,
    id: &'a str,
    meta: Meta<'static>,
    text: Narrative,
    clinical_status: Concept<'static>,
    verification_status: Concept<'static>,
    category: [Concept<'a>; 1],
    code: Concept<'a>,
    subject: Reference,
    recorded_date: &'a str,
}

/// The columns a mapping reads, resolved once per batch.
struct Columns<'t> {
    sex: Option<&'t ColumnValues>,
    age: Option<&'t [f64]>,
    observations: Vec<&'t [f64]>,
    conditions: Vec<&'t ColumnValues>,
}

fn resolve<'t>(m: &FhirMapping, table: &'t Table) -> Result<Columns<'t>, BuildError> {
    let get = |path: String, name: &str| {
        table
            .column(name)
            .map(|c| &c.values)
            .ok_or_else(|| BuildError {
                path,
                problem: format!("no column {name:?} in the synthetic table"),
            })
    };
    let numeric = |path: String, name: &str| match get(path.clone(), name)? {
        ColumnValues::Numeric(v) => Ok(v.as_slice()),
        ColumnValues::Categorical { .. } => Err(BuildError {
            path,
            problem: format!("column {name:?} is categorical; a number is needed"),
        }),
    };
    Ok(Columns {
        sex: m
            .sex_column
            .as_deref()
            .map(|c| get("output.fhir.sex_column".into(), c))
            .transpose()?,
        age: m
            .age_column
            .as_deref()
            .map(|c| numeric("output.fhir.age_column".into(), c))
            .transpose()?,
        observations: m
            .observations
            .iter()
            .enumerate()
            .map(|(i, o)| numeric(format!("output.fhir.observations[{i}].column"), &o.column))
            .collect::<Result<_, _>>()?,
        conditions: m
            .conditions
            .iter()
            .enumerate()
            .map(|(i, c)| get(format!("output.fhir.conditions[{i}].column"), &c.column))
            .collect::<Result<_, _>>()?,
    })
}

fn gender(m: &FhirMapping, label: &str) -> &'static str {
    if let Some(g) = m.sex_values.get(label) {
        return super::GENDERS
            .iter()
            .find(|x| **x == g.as_str())
            .copied()
            .unwrap_or("unknown");
    }
    match label.to_ascii_lowercase().as_str() {
        "m" | "male" => "male",
        "f" | "female" => "female",
        "o" | "other" => "other",
        _ => "unknown",
    }
}

fn label(values: &ColumnValues, row: usize) -> Option<&str> {
    match values {
        ColumnValues::Categorical { codes, dictionary } => {
            let c = codes[row];
            (c != NULL_CODE).then(|| dictionary[c as usize].as_str())
        }
        ColumnValues::Numeric(_) => None,
    }
}

/// A flag column's value: true / 1 / yes / y (any case), or a number ≥ 0.5.
fn flag_set(values: &ColumnValues, row: usize) -> bool {
    match values {
        ColumnValues::Numeric(v) => v[row] >= 0.5,
        ColumnValues::Categorical { .. } => label(values, row).is_some_and(|l| {
            matches!(
                l.trim().to_ascii_lowercase().as_str(),
                "true" | "1" | "1.0" | "yes" | "y" | "t"
            )
        }),
    }
}

/// A time inside the window, whole seconds: the row's visit.
fn visit_ms(batch: &BatchRef<'_>, row: usize) -> i64 {
    let (start, end) = (
        batch.window_start_ms,
        batch.window_end_ms.max(batch.window_start_ms + 1),
    );
    let first = start.div_euclid(1000) + i64::from(start.rem_euclid(1000) != 0);
    let last = (end - 1).div_euclid(1000); // last whole second before end
    let draw = unit_draw(batch, &["visit", &row.to_string()]);
    if last >= first {
        (first + (draw % (last - first + 1) as u64) as i64) * 1000
    } else {
        start + (draw % (end - start) as u64) as i64
    }
}

/// A birth date (day number) at which the patient is exactly `age` whole
/// years old on `visit_day`: within the year before the age-th birthday.
fn birth_day(batch: &BatchRef<'_>, row: usize, age: f64, visit_day: i64) -> i64 {
    use crate::source::text_values::{civil_from_days, days_from_civil};
    let years = age.floor().clamp(0.0, 130.0) as i64;
    let (y, m, d) = civil_from_days(visit_day);
    // Day 28 at most: every month has it, so the anniversary exists.
    let anniversary = days_from_civil(y - years, m, d.min(28));
    let back = unit_draw(batch, &["birth", &row.to_string()]) % 361;
    anniversary - back as i64
}

/// Whole years from `birth` to `on` (day numbers), as a person counts them.
#[cfg(test)]
pub(super) fn age_on(birth: i64, on: i64) -> i64 {
    use crate::source::text_values::civil_from_days;
    let (by, bm, bd) = civil_from_days(birth);
    let (y, m, d) = civil_from_days(on);
    y - by - i64::from((m, d) < (bm, bd))
}

fn round_to(x: f64, decimals: u32) -> f64 {
    let f = 10f64.powi(decimals as i32);
    let r = (x * f).round() / f;
    if r == 0.0 { 0.0 } else { r }
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("resource structs serialise")
}

/// Every resource of the batch, patient by patient: its Patient, then its
/// Observations in mapping order, then its Conditions.
pub fn batch_resources(
    mapping: &FhirMapping,
    table: &Table,
    batch: &BatchRef<'_>,
) -> Result<Vec<FhirResource>, BuildError> {
    let cols = resolve(mapping, table)?;
    let mut out = Vec::new();
    for row in 0..table.n_rows() {
        let r = row.to_string();
        let pid = fresh_id(batch, &["Patient", &r]);
        let subject = || Reference {
            reference: format!("Patient/{pid}"),
        };
        let visit = visit_ms(batch, row);
        let visit_time = crate::audit::openlineage::rfc3339(visit);
        let gender = cols
            .sex
            .map(|s| label(s, row).map_or("unknown", |l| gender(mapping, l)));
        let birth = cols
            .age
            .and_then(|a| (!a[row].is_nan()).then_some(a[row]))
            .map(|age| birth_day(batch, row, age, visit.div_euclid(86_400_000)));
        let birth_date = birth.map(crate::source::text_values::format_date);
        let mut text = "Synthetic patient (resynth)".to_string();
        if let Some(g) = gender {
            text.push_str(&format!(", gender {g}"));
        }
        if let Some(b) = &birth_date {
            text.push_str(&format!(", born {b}"));
        }
        out.push(FhirResource {
            key: pid.clone(),
            resource_type: "Patient",
            id: pid.clone(),
            json: to_json(&Patient {
                resource_type: "Patient",
                id: &pid,
                meta: meta(),
                text: narrative(&text),
                identifier: [Identifier {
                    system: "urn:ietf:rfc:3986",
                    value: format!("urn:uuid:{pid}"),
                }],
                gender,
                birth_date,
            }),
        });
        for (i, (o, values)) in mapping
            .observations
            .iter()
            .zip(&cols.observations)
            .enumerate()
        {
            let x = values[row];
            if !x.is_finite() {
                continue;
            }
            out.push(observation(
                batch,
                &pid,
                &r,
                i,
                o,
                round_to(x, o.decimals),
                &visit_time,
                subject(),
            ));
        }
        for (i, (c, values)) in mapping.conditions.iter().zip(&cols.conditions).enumerate() {
            let (code, display) = match &c.code {
                Some(code) => {
                    if !flag_set(values, row) {
                        continue;
                    }
                    (code.as_str(), c.display.as_deref())
                }
                None => {
                    let Some(l) = label(values, row) else {
                        continue;
                    };
                    // A label that is not a code of the system (a free-text
                    // value, anything but a code) never becomes a Condition.
                    if c.skip.iter().any(|s| s == l) || codes::code_problem(&c.system, l).is_some()
                    {
                        continue;
                    }
                    (l, c.displays.get(l).map(String::as_str))
                }
            };
            out.push(condition(
                batch,
                &pid,
                &r,
                i,
                c,
                code,
                display,
                &visit_time,
                subject(),
            ));
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn observation(
    batch: &BatchRef<'_>,
    pid: &str,
    row: &str,
    index: usize,
    o: &ObservationMapping,
    value: f64,
    time: &str,
    subject: Reference,
) -> FhirResource {
    let id = fresh_id(batch, &["Observation", row, &index.to_string()]);
    let display = o.display.as_deref().unwrap_or(&o.column);
    let mut code = concept(codes::LOINC, &o.loinc, Some(display));
    code.text = Some(display);
    FhirResource {
        key: pid.to_string(),
        resource_type: "Observation",
        id: id.clone(),
        json: to_json(&Observation {
            resource_type: "Observation",
            id: &id,
            meta: meta(),
            text: narrative(&format!("{display}: {value} {} (synthetic)", o.unit)),
            status: "final",
            category: [concept(
                "http://terminology.hl7.org/CodeSystem/observation-category",
                &o.category,
                None,
            )],
            code,
            subject,
            effective_date_time: time,
            value_quantity: Quantity {
                value,
                unit: &o.unit,
                system: codes::UCUM,
                code: &o.unit,
            },
        }),
    }
}

#[allow(clippy::too_many_arguments)]
fn condition(
    batch: &BatchRef<'_>,
    pid: &str,
    row: &str,
    index: usize,
    c: &ConditionMapping,
    code: &str,
    display: Option<&str>,
    time: &str,
    subject: Reference,
) -> FhirResource {
    let id = fresh_id(batch, &["Condition", row, &index.to_string()]);
    FhirResource {
        key: pid.to_string(),
        resource_type: "Condition",
        id: id.clone(),
        json: to_json(&Condition {
            resource_type: "Condition",
            id: &id,
            meta: meta(),
            text: narrative(&format!(
                "{} {code}{} (synthetic)",
                c.system,
                display.map_or(String::new(), |d| format!(": {d}"))
            )),
            clinical_status: concept(
                "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "active",
                None,
            ),
            verification_status: concept(
                "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                "confirmed",
                None,
            ),
            category: [concept(
                "http://terminology.hl7.org/CodeSystem/condition-category",
                &c.category,
                None,
            )],
            code: concept(&c.system, code, display),
            subject,
            recorded_date: time,
        }),
    }
}
