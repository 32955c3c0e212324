use std::sync::Arc;

use datafusion::arrow::array::{Array, Float64Array, Int64Array, StringArray};
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::json;

use super::example::{observation, observation_source};
use super::*;
use crate::schema::decode::EventDecoder;
use crate::source::simulator::LabEvent;
use crate::topology::{FhirColumn, Topology};

fn decoder(source: &SourceConfig) -> EventDecoder {
    let schema = Arc::new(RecordSchema::for_source(source).unwrap());
    EventDecoder::for_source(schema, source).unwrap()
}

fn lab(id: &str, patient: &str, value: f64) -> LabEvent {
    LabEvent {
        event_id: id.into(),
        patient_id: patient.into(),
        event_time_ms: 1_700_000_000_000,
        age: 0,
        sex: String::new(),
        race: String::new(),
        ethnicity: String::new(),
        zip3: String::new(),
        diagnosis_code: String::new(),
        lab_code: "4548-4".into(),
        lab_value: Some(value),
        lab_unit: "%".into(),
    }
}

fn bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn strings(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let a = b.column_by_name(name).unwrap();
    let a = a.as_any().downcast_ref::<StringArray>().unwrap();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
        .collect()
}

#[test]
fn an_observation_decodes_into_its_columns() {
    let mut d = decoder(&observation_source());
    let mut o = observation(&lab("o1", "p1", 7.25), Some("3"), "amended");
    // A SNOMED coding first: the LOINC filter skips it.
    o["code"]["coding"]
        .as_array_mut()
        .unwrap()
        .insert(0, json!({"system": "http://snomed.info/sct", "code": "SN"}));
    o["effectiveDateTime"] = json!("2024-03-15T10:20:30.5+01:00");
    let t = d.decode(&bytes(&o), 2, 9).unwrap();
    assert_eq!(t, time::parse_time_ms("2024-03-15T09:20:30.5Z").unwrap());
    let out = d.finish();
    let b = &out.batch;
    assert_eq!(b.num_rows(), 1);
    assert_eq!(strings(b, "patient_id"), [Some("Patient/p1".into())]);
    assert_eq!(strings(b, "lab_code"), [Some("4548-4".into())]);
    let v = b.column_by_name("lab_value").unwrap();
    assert_eq!(
        v.as_any().downcast_ref::<Float64Array>().unwrap().value(0),
        7.25
    );
    assert_eq!(strings(b, ID_COLUMN), [Some("o1".into())]);
    assert_eq!(strings(b, VERSION_COLUMN), [Some("3".into())]);
    assert_eq!(strings(b, STATUS_COLUMN), [Some("amended".into())]);
    assert_eq!((out.partition, out.offset), (vec![2], vec![9]));
    // Optional value absent, event time from the second alternative.
    let mut o = observation(&lab("o2", "p1", 1.0), None, "final");
    o.as_object_mut().unwrap().remove("valueQuantity");
    o.as_object_mut().unwrap().remove("effectiveDateTime");
    o["effectivePeriod"] = json!({"start": "2024-03"});
    assert_eq!(
        d.decode(&bytes(&o), 0, 0).unwrap(),
        time::parse_time_ms("2024-03-01").unwrap()
    );
    let b = d.finish().batch;
    assert!(b.column_by_name("lab_value").unwrap().is_null(0));
    assert_eq!(strings(&b, VERSION_COLUMN), [None]);
}

/// Each problem is a `DecodeError` naming the path and what was expected;
/// nothing is appended; no value of the resource is in the text.
#[test]
fn bad_resources_are_errors_naming_the_path_never_the_value() {
    let mut d = decoder(&observation_source());
    let good = observation(&lab("o1", "CNRY-P", 7.25), Some("1"), "final");
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut o = good.clone();
        f(&mut o);
        bytes(&o)
    };
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (
            edit(&|o| o["resourceType"] = json!("CNRYPatient")),
            "resourceType",
            "expected \"Observation\"",
        ),
        (
            edit(&|o| {
                o.as_object_mut().unwrap().remove("resourceType");
            }),
            "resourceType",
            "expected",
        ),
        (
            edit(&|o| {
                o.as_object_mut().unwrap().remove("subject");
            }),
            "subject.reference",
            "is missing (the column is required)",
        ),
        (
            edit(&|o| o["code"]["coding"][0]["system"] = json!("http://CNRY")),
            "code.coding[system='http://loinc.org'].code",
            "missing",
        ),
        (
            edit(&|o| o["valueQuantity"]["value"] = json!("CNRY-7.25")),
            "valueQuantity.value",
            "expected a number",
        ),
        (
            edit(&|o| o["valueQuantity"] = json!("CNRY-q")),
            "valueQuantity.value",
            "expected an object",
        ),
        (
            edit(&|o| o["subject"]["reference"] = json!(73519)),
            "subject.reference",
            "expected a string",
        ),
        (
            edit(&|o| o["effectiveDateTime"] = json!("2024-02-30T99:CNRY")),
            "effectiveDateTime | effectivePeriod.start | issued",
            "expected a FHIR date, dateTime or instant",
        ),
        (
            edit(&|o| o["id"] = json!("CNRY/has/slashes")),
            "id",
            "expected a FHIR id",
        ),
        (
            edit(&|o| {
                o.as_object_mut().unwrap().remove("id");
            }),
            "id",
            "missing",
        ),
        (
            edit(&|o| o["status"] = json!({"CNRY": 1})),
            "status",
            "expected a code",
        ),
    ];
    for (payload, path, problem) in cases {
        let err = d.decode(&payload, 0, 0).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("FHIR path {path:?}")) && text.contains(problem),
            "{text} (want {path}: {problem})"
        );
        assert!(
            !text.contains("CNRY")
                && !text.contains("73519")
                && !format!("{err:?}").contains("CNRY"),
            "{text}"
        );
    }
    for hostile in [
        b"[{\"resourceType\":\"Observation\"}]".to_vec(),
        b"{\"resourceType\":\"Observation\",\"id\":\"CNRY".to_vec(),
        b"\"CNRY\"".to_vec(),
        [&bytes(&good)[..], b" CNRY"].concat(),
        b"{\"resourceType\":\"Observation\",\"valueQuantity\":{\"value\":1e999}}".to_vec(),
    ] {
        let err = d.decode(&hostile, 0, 0).unwrap_err().to_string();
        assert!(!err.contains("CNRY"), "{err}");
    }
    assert!(d.is_empty(), "a rejected resource appends nothing");
    d.decode(&bytes(&good), 0, 0).unwrap();
    assert_eq!(d.finish().batch.num_rows(), 1);
}

#[test]
fn a_resource_above_the_size_limit_is_refused_unread() {
    let mut source = observation_source();
    source.max_resource_bytes = Some(2048);
    let mut d = decoder(&source);
    let mut o = observation(&lab("o1", "p1", 1.0), None, "final");
    o["note"] = json!([{"text": "x".repeat(3000)}]);
    assert_eq!(
        d.decode(&bytes(&o), 0, 0),
        Err(DecodeError::TooLarge {
            bytes: bytes(&o).len(),
            max: 2048
        })
    );
}

/// `birthDate` → completed years at the resource's event time, checked
/// against a hand count: born 1961-03-16, event 2024-03-15 → 62; the next
/// day → 63; a year-only birth date is 1 January.
#[test]
fn age_in_years_at_the_event_time() {
    let source = SourceConfig {
        format: EventFormat::Fhir,
        schema: Default::default(),
        event_time_field: "updated".into(),
        resource_type: Some("Patient".into()),
        columns: vec![
            FhirColumn {
                name: "age".into(),
                path: "birthDate".into(),
                kind: FhirValueType::AgeYears,
                required: true,
            },
            FhirColumn {
                name: "updated".into(),
                path: "meta.lastUpdated".into(),
                kind: FhirValueType::Timestamp,
                required: true,
            },
            FhirColumn {
                name: "mrn".into(),
                path: "identifier[system='urn:mrn'].value".into(),
                kind: FhirValueType::String,
                required: false,
            },
        ],
        status_path: None,
        max_resource_bytes: None,
    };
    let mut d = decoder(&source);
    let patient = |birth: &str, at: &str| {
        bytes(
            &json!({"resourceType": "Patient", "id": "p1", "birthDate": birth,
            "meta": {"lastUpdated": at},
            "identifier": [{"system": "urn:ssn", "value": "1"}, {"system": "urn:mrn", "value": "M7"}]}),
        )
    };
    for (birth, at) in [
        ("1961-03-16", "2024-03-15T23:59:59Z"),
        ("1961-03-16", "2024-03-16T00:00:00Z"),
        ("1961", "2024-03-15"),
        ("1961-04", "2024-03-15"),
    ] {
        d.decode(&patient(birth, at), 0, 0).unwrap();
    }
    let b = d.finish().batch;
    let ages = b.column_by_name("age").unwrap();
    let ages = ages.as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(ages.values().to_vec(), vec![62, 63, 63, 62]);
    assert_eq!(strings(&b, "mrn")[0].as_deref(), Some("M7"));
    // Patient has no default status path: the status column is null.
    assert_eq!(strings(&b, STATUS_COLUMN), vec![None; 4]);
    // Born after the event: malformed, named.
    let err = d
        .decode(&patient("2025-01-01", "2024-03-15"), 0, 0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"birthDate\"") && err.contains("on or before"),
        "{err}"
    );
    let err = d
        .decode(&patient("1961-02-30", "2024-03-15"), 0, 0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"birthDate\"") && err.contains("FHIR date"),
        "{err}"
    );
}

/// A Synthea blood-pressure Observation (LOINC 85354-9, its components
/// 8462-4 diastolic and 8480-6 systolic, as Synthea writes them): a dotted
/// filter key picks each component by its code.
#[test]
fn blood_pressure_components_by_their_code() {
    let col = |name: &str, path: &str, kind| FhirColumn {
        name: name.into(),
        path: path.into(),
        kind,
        required: true,
    };
    let source = SourceConfig {
        format: EventFormat::Fhir,
        schema: Default::default(),
        event_time_field: "event_time".into(),
        resource_type: Some("Observation".into()),
        columns: vec![
            col("patient_id", "subject.reference", FhirValueType::String),
            col("event_time", "effectiveDateTime", FhirValueType::Timestamp),
            col(
                "systolic",
                "component[code.coding.code='8480-6'].valueQuantity.value",
                FhirValueType::Double,
            ),
            col(
                "diastolic",
                "component[code.coding.code='8462-4'].valueQuantity.value",
                FhirValueType::Double,
            ),
        ],
        status_path: None,
        max_resource_bytes: None,
    };
    let mut d = decoder(&source);
    let loinc = |code: &str, display: &str| {
        json!({"coding": [{"system": "http://loinc.org", "code": code, "display": display}],
               "text": display})
    };
    let bp = json!({
        "resourceType": "Observation", "id": "bp1", "status": "final",
        "category": [{"coding": [{"system":
            "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": loinc("85354-9", "Blood pressure panel with all children optional"),
        "subject": {"reference": "urn:uuid:p1"},
        "effectiveDateTime": "2024-03-15T10:20:30+01:00",
        "component": [
            {"code": loinc("8462-4", "Diastolic Blood Pressure"),
             "valueQuantity": {"value": 53, "unit": "mm[Hg]",
                "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
            {"code": loinc("8480-6", "Systolic Blood Pressure"),
             "valueQuantity": {"value": 100, "unit": "mm[Hg]",
                "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
        ]
    });
    d.decode(&bytes(&bp), 0, 0).unwrap();
    let b = d.finish().batch;
    let double = |name: &str| {
        let a = b.column_by_name(name).unwrap();
        a.as_any().downcast_ref::<Float64Array>().unwrap().value(0)
    };
    assert_eq!((double("systolic"), double("diastolic")), (100.0, 53.0));
    assert_eq!(strings(&b, "patient_id"), [Some("urn:uuid:p1".into())]);
}

#[test]
fn every_bad_setting_is_listed_at_load() {
    let toml = r#"
name = "t"
[kafka]
brokers = "127.0.0.1:9092"
group_id = "g"
source_topic = "in"
dead_letter_topic = "dlq"
quarantine_topic = "q"
alerts_topic = "alerts"
[source]
format = "fhir"
resource_type = "observation"
event_time_field = "when"
status_path = "status["
max_resource_bytes = 10
columns = [
  { name = "patient_id", path = "subject..reference", type = "string" },
  { name = "code", path = "code.coding[system=loinc].code", type = "string" },
  { name = "fhir_id", path = "id", type = "string" },
  { name = "code", path = "code.text", type = "string" },
  { name = "when", path = "effectiveDateTime", type = "string" },
  { name = "ok", path = "valueQuantity.value", type = "double", required = false },
]
[window]
size_secs = 60
sql = "SELECT * FROM events"
[output]
topic = "out"
schema = "o.avsc"
"#;
    let t = Topology::parse(toml).expect("parses");
    let problems = t.validate();
    for want in [
        "source.resource_type: expected a FHIR resource type",
        "source.columns[0].path: step \"\": expected a name",
        "source.columns[1].path: step \"coding[system=loinc]\": the filter's value must be in single quotes",
        "source.columns[2].name: \"fhir_id\" is reserved",
        "source.columns[3].name: \"code\" is declared twice",
        "source.event_time_field: column \"when\" must be type = \"timestamp\"",
        "source.status_path:",
        "source.max_resource_bytes:",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(want)),
            "{want} missing from {problems:#?}"
        );
    }
    // The other formats reject the FHIR keys, and fhir rejects a schema.
    let avro = toml.replace(
        "format = \"fhir\"",
        "format = \"avro\"\nschema = \"s.avsc\"",
    );
    let p = Topology::parse(&avro).unwrap().validate();
    assert!(
        p.iter()
            .any(|p| p.starts_with("source.columns: only for format")),
        "{p:?}"
    );
    let with_schema = toml.replace(
        "format = \"fhir\"",
        "format = \"fhir\"\nschema = \"s.avsc\"",
    );
    let p = Topology::parse(&with_schema).unwrap().validate();
    assert!(
        p.iter().any(|p| p.starts_with("source.schema: not used")),
        "{p:?}"
    );
}

#[test]
fn the_record_schema_is_the_columns_then_the_version_columns() {
    let s = RecordSchema::for_source(&observation_source()).unwrap();
    let names: Vec<&str> = s.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "patient_id",
            "lab_code",
            "lab_value",
            "lab_unit",
            "event_time",
            ID_COLUMN,
            VERSION_COLUMN,
            STATUS_COLUMN
        ]
    );
    assert_eq!(s.fields[4].kind, crate::schema::FieldKind::TimestampMillis);
    assert!(s.fields[2].nullable && !s.fields[0].nullable && !s.fields[5].nullable);
    assert!(EventDecoder::new(Arc::new(s), EventFormat::Fhir, "event_time").is_none());
}

/// Decodes `(id, version, status, value)` Observations, in arrival order,
/// and applies the version rule.
fn window(rows: &[(&str, Option<&str>, &str, f64)]) -> (Versioned, Vec<(String, f64)>) {
    let source = observation_source();
    let mut d = decoder(&source);
    for (i, (id, version, status, value)) in rows.iter().enumerate() {
        let o = observation(&lab(id, "p", *value), *version, status);
        d.decode(&bytes(&o), 0, i as i64).unwrap();
    }
    let batch = d.finish().batch;
    let schema = batch.schema();
    // Split in two batches, as panes deliver them.
    let cut = batch.num_rows() / 2;
    let parts = [
        batch.slice(0, cut),
        batch.slice(cut, batch.num_rows() - cut),
    ];
    let v = latest_versions(&schema, &parts).unwrap();
    let ids = strings(&v.batch, ID_COLUMN);
    let values = v.batch.column_by_name("lab_value").unwrap();
    let values = values.as_any().downcast_ref::<Float64Array>().unwrap();
    let kept = ids
        .into_iter()
        .zip(values.values().iter())
        .map(|(i, &x)| (i.unwrap(), x))
        .collect();
    (v, kept)
}

#[test]
fn an_amendment_or_correction_replaces_the_earlier_version() {
    let (v, kept) = window(&[
        ("a", Some("1"), "final", 1.0),
        ("b", Some("1"), "final", 2.0),
        ("a", Some("2"), "amended", 1.5),
        ("c", None, "preliminary", 3.0),
        ("c", None, "corrected", 3.5),
        ("b", Some("1"), "final", 2.0),
    ]);
    // Kept rows stay in arrival order: b's redelivery, a's amendment, c's correction.
    assert_eq!(
        kept,
        vec![("a".into(), 1.5), ("c".into(), 3.5), ("b".into(), 2.0)]
    );
    assert_eq!((v.replaced, v.withdrawn), (3, 0));
}

#[test]
fn entered_in_error_removes_the_resource() {
    let (v, kept) = window(&[
        ("a", Some("1"), "final", 1.0),
        ("b", Some("1"), "final", 2.0),
        ("a", Some("2"), "entered-in-error", 1.0),
        // A withdrawal alone (its original was in an earlier window).
        ("z", Some("4"), "entered-in-error", 0.0),
    ]);
    assert_eq!(kept, vec![("b".into(), 2.0)]);
    assert_eq!((v.replaced, v.withdrawn), (1, 2));
}

#[test]
fn numeric_versions_order_out_of_order_arrivals() {
    let (v, kept) = window(&[
        ("a", Some("3"), "amended", 3.0),
        ("a", Some("1"), "final", 1.0),
        // Withdrawn at version 2, but version 3 (an amendment) came after it.
        ("a", Some("2"), "entered-in-error", 2.0),
        ("b", Some("10"), "amended", 10.0),
        ("b", Some("9"), "final", 9.0),
        // Not all numeric: arrival decides (the last one).
        ("c", Some("2"), "amended", 2.0),
        ("c", Some("v1"), "final", 1.0),
    ]);
    assert_eq!(
        kept,
        vec![("a".into(), 3.0), ("b".into(), 10.0), ("c".into(), 1.0)]
    );
    assert_eq!((v.replaced, v.withdrawn), (4, 0));
}

#[test]
fn replacements_are_recognised_for_the_late_count() {
    let source = observation_source();
    let mut d = decoder(&source);
    for (version, status) in [
        (Some("1"), "final"),
        (Some("2"), "final"),
        (None, "amended"),
        (None, "corrected"),
        (Some("1"), "entered-in-error"),
        (None, "final"),
        (Some("x"), "preliminary"),
    ] {
        let o = observation(&lab("a", "p", 1.0), version, status);
        d.decode(&bytes(&o), 0, 0).unwrap();
    }
    let b = d.finish().batch;
    let got: Vec<bool> = (0..b.num_rows()).map(|r| is_replacement(&b, r)).collect();
    assert_eq!(got, [false, true, true, true, true, false, false]);
    // Other formats' batches have no version columns.
    let other = RecordBatch::new_empty(Arc::new(datafusion::arrow::datatypes::Schema::empty()));
    assert!(!is_replacement(&other, 0));
}

#[test]
fn resolve_versions_leaves_other_formats_alone() {
    let schema = Arc::new(datafusion::arrow::datatypes::Schema::empty());
    let mut batches = vec![RecordBatch::new_empty(schema.clone())];
    let mut avro = observation_source();
    avro.format = EventFormat::Avro;
    assert_eq!(
        resolve_versions(&avro, &schema, &mut batches).unwrap(),
        (0, 0)
    );
    assert_eq!(batches.len(), 1);
    // A FHIR source with nothing in the window stays empty.
    let mut none = Vec::new();
    let fhir = observation_source();
    assert_eq!(resolve_versions(&fhir, &schema, &mut none).unwrap(), (0, 0));
    assert!(none.is_empty());
}
