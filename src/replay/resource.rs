//! What replay needs from one FHIR R4 resource: its type, the patient it
//! belongs to (the Kafka key) and its event time (the replay order).
//!
//! A line is read with a probe that keeps only the top-level members named
//! in [`TYPES`] (plus `resourceType`, `id` and the patient references) and
//! skips the rest without building it, so an `ExplanationOfBenefit` of a few
//! kilobytes costs a scan, not a tree.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::source::text_values::{parse_date, parse_timestamp};

/// A resource type replay knows: where its event time is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeSpec {
    /// `resourceType`, e.g. `Observation`.
    pub name: &'static str,
    /// Paths tried in order; the first present one is the event time. Empty
    /// for `Patient`, which carries no event time (demographics are
    /// published before every event, see `replay`).
    pub time_paths: &'static [&'static str],
    /// Replayed unless `--types` says otherwise.
    pub default: bool,
}

const fn spec(name: &'static str, time_paths: &'static [&'static str]) -> TypeSpec {
    TypeSpec {
        name,
        time_paths,
        default: true,
    }
}

/// Every replayable type, in the order that breaks ties between events of
/// the same instant (an Encounter before the Conditions and Observations
/// recorded at its start, a Claim after them). The paths are what Synthea's
/// bulk export writes, with the R4 alternatives (`effectivePeriod`, ...).
pub const TYPES: &[TypeSpec] = &[
    spec("Patient", &[]),
    spec("Encounter", &["period.start"]),
    spec(
        "Condition",
        &["onsetDateTime", "onsetPeriod.start", "recordedDate"],
    ),
    spec("AllergyIntolerance", &["recordedDate", "onsetDateTime"]),
    spec(
        "Observation",
        &[
            "effectiveDateTime",
            "effectivePeriod.start",
            "effectiveInstant",
            "issued",
        ],
    ),
    spec(
        "DiagnosticReport",
        &["effectiveDateTime", "effectivePeriod.start", "issued"],
    ),
    spec("Procedure", &["performedDateTime", "performedPeriod.start"]),
    spec("MedicationRequest", &["authoredOn"]),
    spec(
        "MedicationAdministration",
        &["effectiveDateTime", "effectivePeriod.start"],
    ),
    spec("Immunization", &["occurrenceDateTime", "recorded"]),
    spec("ImagingStudy", &["started"]),
    spec("CarePlan", &["period.start", "created"]),
    spec("CareTeam", &["period.start"]),
    spec("Device", &["manufactureDate"]),
    spec(
        "SupplyDelivery",
        &["occurrenceDateTime", "occurrencePeriod.start"],
    ),
    spec("DocumentReference", &["date", "context.period.start"]),
    spec("Claim", &["billablePeriod.start", "created"]),
    spec("ExplanationOfBenefit", &["billablePeriod.start", "created"]),
    // Bookkeeping, not care: one per patient listing every resource of the
    // patient (over 2 MB each in a 200-patient Synthea population, above
    // Kafka's default record limit). Only with `--types`.
    TypeSpec {
        name: "Provenance",
        time_paths: &["recorded"],
        default: false,
    },
];

/// Members that may hold the patient reference, tried in order (`target`
/// is Provenance's list; its first `Patient/` entry counts).
pub const PATIENT_PATHS: &[&str] = &["subject", "patient", "beneficiary", "target"];

/// The position of `name` in [`TYPES`].
pub fn type_index(name: &str) -> Option<usize> {
    TYPES.iter().position(|t| t.name == name)
}

/// Why a line cannot be replayed. Names the path, never the value (a value
/// could be a name, an address or an identifier).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("not a JSON object: {0}")]
    Json(String),
    #[error("resourceType: missing or not a string")]
    NoType,
    #[error("id: missing or not a string (a Patient's id is its key)")]
    NoId,
    #[error(
        "no patient reference: none of {} holds a Patient/<id> or urn:uuid:<id> reference",
        PATIENT_PATHS.join(", ")
    )]
    NoPatient,
    #[error("{path}.reference: not a Patient/<id> or urn:uuid:<id> reference")]
    BadReference { path: &'static str },
    #[error("no event time: none of {} is present", .paths.join(", "))]
    NoTime { paths: &'static [&'static str] },
    #[error("{path}: not a FHIR dateTime or instant")]
    BadTime { path: &'static str },
    #[error(
        "{bytes} bytes, over the {max}-byte record limit (--max-record-bytes; raise it with the topic's max.message.bytes)"
    )]
    TooLarge { bytes: usize, max: usize },
}

/// One resource's replay coordinates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    /// Its type's position in [`TYPES`].
    pub kind: usize,
    /// The patient id (a Patient's own `id`; for others the referenced id).
    pub patient: String,
    /// Event time, ms since the epoch (UTC); `None` for a Patient.
    pub time_ms: Option<i64>,
}

/// What a line is to the replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A resource to publish.
    Resource(Probed),
    /// A resource of a type not in [`TYPES`] or not selected (`resourceType`).
    Skipped(String),
}

/// The top-level members replay reads, nothing else kept.
struct Probe(Map<String, Value>);

fn wanted(key: &str) -> bool {
    key == "resourceType"
        || key == "id"
        || PATIENT_PATHS.contains(&key)
        || TYPES.iter().any(|t| {
            t.time_paths
                .iter()
                .any(|p| p.split('.').next() == Some(key))
        })
}

impl<'de> de::Deserialize<'de> for Probe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Probe;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a FHIR resource (a JSON object)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Probe, A::Error> {
                let mut kept = Map::new();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if wanted(&key) {
                        kept.insert(key.into_owned(), map.next_value::<Value>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Probe(kept))
            }
        }
        d.deserialize_map(V)
    }
}

fn walk<'a>(root: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut v = root.get(parts.next()?)?;
    for p in parts {
        v = v.get(p)?;
    }
    Some(v)
}

/// The patient id a reference points at: `Patient/<id>` (also an absolute
/// `.../Patient/<id>` and a trailing `/_history/<n>`) or `urn:uuid:<id>`
/// (Synthea's transaction bundles).
pub fn patient_of_reference(reference: &str) -> Option<&str> {
    let id = if let Some(uuid) = reference.strip_prefix("urn:uuid:") {
        uuid
    } else {
        let at = if reference.starts_with("Patient/") {
            0
        } else {
            reference.rfind("/Patient/")? + 1
        };
        let rest = &reference[at + "Patient/".len()..];
        rest.split('/').next().unwrap_or_default()
    };
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_graphic())).then_some(id)
}

/// A FHIR `dateTime` or `instant` as ms since the epoch: `YYYY`, `YYYY-MM`,
/// `YYYY-MM-DD` (each at its first instant, UTC) or a full timestamp with
/// an offset (a timestamp without one is taken as UTC).
pub fn fhir_time_ms(v: &str) -> Option<i64> {
    let day_ms = |days: i64| days * 86_400_000;
    match v.len() {
        4 => v
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| parse_date(&format!("{v}-01-01")).map(day_ms))
            .flatten(),
        7 => parse_date(&format!("{v}-01")).map(day_ms),
        10 => parse_date(v).map(day_ms),
        _ => parse_timestamp(v).map(|s| (s * 1000.0).round() as i64),
    }
}

/// Reads one ndjson line; `selected` says which of [`TYPES`] are replayed.
pub fn probe(line: &[u8], selected: &dyn Fn(usize) -> bool) -> Result<Line, LineError> {
    let Probe(m) = serde_json::from_slice(line).map_err(|e| LineError::Json(json_reason(&e)))?;
    let resource_type = m
        .get("resourceType")
        .and_then(Value::as_str)
        .ok_or(LineError::NoType)?;
    let Some(kind) = type_index(resource_type).filter(|&k| selected(k)) else {
        return Ok(Line::Skipped(resource_type.to_string()));
    };
    let spec = TYPES[kind];
    if spec.time_paths.is_empty() {
        // Patient: its own id is the key.
        let id = m
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(LineError::NoId)?;
        return Ok(Line::Resource(Probed {
            kind,
            patient: id.to_string(),
            time_ms: None,
        }));
    }
    let patient = patient_key(&m)?.to_string();
    let time_ms = Some(event_time(&m, spec.time_paths)?);
    Ok(Line::Resource(Probed {
        kind,
        patient,
        time_ms,
    }))
}

fn patient_key(m: &Map<String, Value>) -> Result<&str, LineError> {
    for &path in PATIENT_PATHS {
        let Some(v) = m.get(path) else { continue };
        let refs: Vec<&Value> = match v {
            Value::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        let mut saw_reference = false;
        for r in refs {
            if let Some(text) = r.get("reference").and_then(Value::as_str) {
                saw_reference = true;
                if let Some(id) = patient_of_reference(text) {
                    return Ok(id);
                }
            }
        }
        // `subject` → Group/..., say so rather than "none found".
        if saw_reference && path != "target" {
            return Err(LineError::BadReference { path });
        }
    }
    Err(LineError::NoPatient)
}

fn event_time(m: &Map<String, Value>, paths: &'static [&'static str]) -> Result<i64, LineError> {
    for &path in paths {
        match walk(m, path) {
            None | Some(Value::Null) => continue,
            Some(v) => {
                return v
                    .as_str()
                    .and_then(fhir_time_ms)
                    .ok_or(LineError::BadTime { path });
            }
        }
    }
    Err(LineError::NoTime { paths })
}

/// serde_json's message without anything copied from the input: the
/// category and the column.
fn json_reason(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Io => "read error",
        Category::Syntax => "syntax error",
        Category::Data => "not an object",
        Category::Eof => "truncated",
    };
    format!("{what} at column {}", e.column())
}

/// The default topic of a type: the prefix and the lowercased type
/// (`fhir.` + `MedicationRequest` → `fhir.medicationrequest`).
pub fn default_topic(prefix: &str, resource_type: &str) -> String {
    format!("{prefix}{}", resource_type.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(line: &[u8]) -> Result<Probed, LineError> {
        match super::probe(line, &|_| true)? {
            Line::Resource(p) => Ok(p),
            Line::Skipped(t) => panic!("{t} skipped"),
        }
    }

    #[test]
    fn unknown_and_unselected_types_are_skipped_not_read() {
        let org = br#"{"resourceType":"Organization","id":"o","name":"x"}"#;
        assert_eq!(
            super::probe(org, &|_| true),
            Ok(Line::Skipped("Organization".into()))
        );
        // Not selected: skipped even without a patient reference or time.
        let obs = br#"{"resourceType":"Observation","id":"o"}"#;
        assert_eq!(
            super::probe(obs, &|k| TYPES[k].name == "Patient"),
            Ok(Line::Skipped("Observation".into()))
        );
    }

    #[test]
    fn patient_references_in_every_form_synthea_and_r4_write() {
        assert_eq!(patient_of_reference("Patient/abc-1"), Some("abc-1"));
        assert_eq!(patient_of_reference("urn:uuid:abc-1"), Some("abc-1"));
        assert_eq!(
            patient_of_reference("https://fhir.example.org/r4/Patient/abc-1/_history/3"),
            Some("abc-1")
        );
        assert_eq!(
            patient_of_reference("Patient/abc-1/_history/2"),
            Some("abc-1")
        );
        assert_eq!(patient_of_reference("Group/abc-1"), None);
        assert_eq!(patient_of_reference("Patient/"), None);
        assert_eq!(patient_of_reference("Practitioner/x"), None);
    }

    #[test]
    fn every_resource_is_keyed_by_its_patient() {
        let p = probe(br#"{"resourceType":"Patient","id":"p1","name":[{"family":"X"}]}"#).unwrap();
        assert_eq!((p.patient.as_str(), p.time_ms), ("p1", None));
        let o = probe(
            br#"{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"},
                 "effectiveDateTime":"2020-01-02T03:04:05+00:00","issued":"2021-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(o.patient, "p1");
        let c = probe(
            br#"{"resourceType":"Claim","patient":{"reference":"urn:uuid:p2"},"created":"2020-01-02"}"#,
        )
        .unwrap();
        assert_eq!(c.patient, "p2");
        // Provenance: the first Patient among its targets.
        let v = probe(
            br#"{"resourceType":"Provenance","target":[{"reference":"Organization/o"},{"reference":"Patient/p3"}],
                 "recorded":"2020-01-02T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(v.patient, "p3");
    }

    #[test]
    fn missing_or_foreign_references_name_the_path() {
        assert_eq!(
            probe(br#"{"resourceType":"Observation","subject":{"reference":"Group/g"},"issued":"2020"}"#),
            Err(LineError::BadReference { path: "subject" })
        );
        assert_eq!(
            probe(br#"{"resourceType":"Observation","issued":"2020"}"#),
            Err(LineError::NoPatient)
        );
        assert_eq!(
            probe(br#"{"resourceType":"Patient","name":[]}"#),
            Err(LineError::NoId)
        );
        assert_eq!(probe(br#"{"id":"x"}"#), Err(LineError::NoType));
        let e = probe(br#"{"resourceType":"Patient","id":"Alice Smith"#).unwrap_err();
        assert!(matches!(e, LineError::Json(_)));
        assert!(!e.to_string().contains("Alice"), "{e}");
    }

    #[test]
    fn event_time_takes_the_first_present_path() {
        let ms = |line: &str| probe(line.as_bytes()).map(|p| p.time_ms.unwrap());
        let subject = r#""subject":{"reference":"Patient/p"}"#;
        // effectiveDateTime wins over issued.
        assert_eq!(
            ms(&format!(
                r#"{{"resourceType":"Observation",{subject},"issued":"2021-01-01T00:00:00Z","effectiveDateTime":"1970-01-01T00:00:01Z"}}"#
            )),
            Ok(1000)
        );
        // issued when there is no effective[x].
        assert_eq!(
            ms(&format!(
                r#"{{"resourceType":"Observation",{subject},"issued":"1970-01-01T00:00:02.5+00:00"}}"#
            )),
            Ok(2500)
        );
        // A nested path, with an offset.
        assert_eq!(
            ms(&format!(
                r#"{{"resourceType":"Encounter",{subject},"period":{{"start":"1970-01-01T01:00:00+01:00","end":"x"}}}}"#
            )),
            Ok(0)
        );
        assert_eq!(
            ms(&format!(
                r#"{{"resourceType":"Condition",{subject},"onsetDateTime":"yesterday"}}"#
            )),
            Err(LineError::BadTime {
                path: "onsetDateTime"
            })
        );
        assert_eq!(
            ms(&format!(
                r#"{{"resourceType":"MedicationRequest",{subject}}}"#
            )),
            Err(LineError::NoTime {
                paths: &["authoredOn"]
            })
        );
    }

    #[test]
    fn fhir_partial_dates_start_at_their_first_instant() {
        assert_eq!(fhir_time_ms("1970"), Some(0));
        assert_eq!(fhir_time_ms("1970-02"), Some(31 * 86_400_000));
        assert_eq!(fhir_time_ms("1970-01-02"), Some(86_400_000));
        assert_eq!(
            fhir_time_ms("2024-02-29T12:34:56.789Z"),
            Some(1_709_210_096_789)
        );
        assert_eq!(fhir_time_ms("1969-12-31T23:59:59+00:00"), Some(-1000));
        assert_eq!(fhir_time_ms("2023-02-29"), None);
        assert_eq!(fhir_time_ms("20x0"), None);
    }

    #[test]
    fn topics_are_the_prefix_and_the_lowercased_type() {
        assert_eq!(
            default_topic("fhir.", "MedicationRequest"),
            "fhir.medicationrequest"
        );
        assert_eq!(default_topic("", "Patient"), "patient");
    }
}
