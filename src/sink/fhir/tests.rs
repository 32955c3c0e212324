use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::resources::age_on;
use super::*;
use crate::table::{Column, Table};

/// The mapping `topologies/ehr-labs-fhir.toml` ships, for the demo's columns.
pub(crate) fn lab_mapping() -> FhirMapping {
    let obs = |column: &str, loinc: &str, display: &str, unit: &str| ObservationMapping {
        column: column.into(),
        loinc: loinc.into(),
        display: Some(display.into()),
        unit: unit.into(),
        category: "laboratory".into(),
        decimals: 2,
    };
    FhirMapping {
        sex_column: Some("sex".into()),
        sex_values: BTreeMap::new(),
        age_column: Some("age".into()),
        observations: vec![
            obs(
                "hba1c",
                "4548-4",
                "Hemoglobin A1c/Hemoglobin.total in Blood",
                "%",
            ),
            obs(
                "glucose",
                "1558-6",
                "Fasting glucose [Mass/volume] in Serum or Plasma",
                "mg/dL",
            ),
            obs(
                "ldl",
                "13457-7",
                "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation",
                "mg/dL",
            ),
            obs(
                "creatinine",
                "2160-0",
                "Creatinine [Mass/volume] in Serum or Plasma",
                "mg/dL",
            ),
        ],
        conditions: vec![ConditionMapping {
            column: "diagnosis_code".into(),
            system: codes::ICD10CM.into(),
            code: None,
            display: None,
            displays: BTreeMap::from([
                (
                    "E11.9".into(),
                    "Type 2 diabetes mellitus without complications".into(),
                ),
                ("I10".into(), "Essential (primary) hypertension".into()),
            ]),
            skip: vec!["Z00.00".into()],
            category: "encounter-diagnosis".into(),
        }],
    }
}

const HOUR: i64 = 3_600_000;
/// 2024-03-01T00:00:00.250Z: a window that does not start on a whole second.
const START: i64 = 1_709_251_200_250;

fn batch(seed: u64) -> BatchRef<'static> {
    BatchRef {
        batch_id: "ehr-labs-1709251200250-v3",
        sample_seed: seed,
        window_start_ms: START,
        window_end_ms: START + HOUR,
    }
}

fn table() -> Table {
    fn labels<'a>(v: &[&'a str]) -> Vec<Option<&'a str>> {
        v.iter().map(|s| Some(*s)).collect()
    }
    Table::new(vec![
        Column::numeric("age", vec![0.0, 45.7, 90.0, f64::NAN]),
        Column::categorical("sex", &labels(&["F", "M", "X", "female"])),
        Column::categorical(
            "diagnosis_code",
            &labels(&["E11.9", "Z00.00", "I10", "MRN-0042"]),
        ),
        Column::numeric("hba1c", vec![7.456, f64::NAN, 5.1, 6.0]),
        Column::numeric("glucose", vec![140.0, 99.123, f64::NAN, 101.0]),
        Column::numeric("ldl", vec![100.0, 120.0, 130.0, 90.0]),
        Column::numeric("creatinine", vec![0.9, 1.1, 1.3, 0.8]),
    ])
}

fn parse(resources: &[FhirResource]) -> Vec<Value> {
    resources
        .iter()
        .map(|r| serde_json::from_slice(&r.json).expect("valid JSON"))
        .collect()
}

fn ms_of(rfc3339: &str) -> i64 {
    // YYYY-MM-DDTHH:MM:SS.mmmZ
    let days = crate::source::text_values::days_from_civil(
        rfc3339[0..4].parse().unwrap(),
        rfc3339[5..7].parse().unwrap(),
        rfc3339[8..10].parse().unwrap(),
    );
    let h: i64 = rfc3339[11..13].parse().unwrap();
    let m: i64 = rfc3339[14..16].parse().unwrap();
    let s: i64 = rfc3339[17..19].parse().unwrap();
    let ms: i64 = rfc3339[20..23].parse().unwrap();
    assert!(rfc3339.ends_with('Z'), "{rfc3339}");
    days * 86_400_000 + ((h * 60 + m) * 60 + s) * 1000 + ms
}

#[test]
fn a_row_gives_its_patient_observations_and_conditions() {
    let out = batch_resources(&lab_mapping(), &table(), &batch(7)).unwrap();
    let types: Vec<&str> = out.iter().map(|r| r.resource_type).collect();
    assert_eq!(
        types,
        [
            // row 0: 4 labs, E11.9
            "Patient",
            "Observation",
            "Observation",
            "Observation",
            "Observation",
            "Condition",
            // row 1: no HbA1c, Z00.00 is skipped
            "Patient",
            "Observation",
            "Observation",
            "Observation",
            // row 2: no glucose, I10
            "Patient",
            "Observation",
            "Observation",
            "Observation",
            "Condition",
            // row 3: "MRN-0042" is no ICD-10 code: no Condition
            "Patient",
            "Observation",
            "Observation",
            "Observation",
            "Observation",
        ]
    );
    let v = parse(&out);
    assert_eq!(v[0]["gender"], "female");
    assert_eq!(v[6]["gender"], "male");
    assert_eq!(v[10]["gender"], "unknown", "X is no known label");
    assert_eq!(v[15]["gender"], "female");
    assert!(v[15].get("birthDate").is_none(), "no age, no birth date");
    assert_eq!(
        v[1]["valueQuantity"]["value"], 7.46,
        "rounded to 2 decimals"
    );
    assert_eq!(v[1]["valueQuantity"]["system"], codes::UCUM);
    assert_eq!(v[1]["valueQuantity"]["code"], "%");
    assert_eq!(v[1]["code"]["coding"][0]["code"], "4548-4");
    assert_eq!(v[1]["code"]["coding"][0]["system"], codes::LOINC);
    assert_eq!(v[5]["code"]["coding"][0]["code"], "E11.9");
    assert_eq!(v[5]["code"]["coding"][0]["system"], codes::ICD10CM);
    assert_eq!(
        v[5]["code"]["coding"][0]["display"],
        "Type 2 diabetes mellitus without complications"
    );
    for r in &v {
        assert_eq!(
            r["meta"]["security"][0]["code"], "HTEST",
            "labelled test data"
        );
    }
}

#[test]
fn ids_are_fresh_unique_and_references_resolve_within_the_batch() {
    let out = batch_resources(&lab_mapping(), &table(), &batch(7)).unwrap();
    let v = parse(&out);
    let ids: BTreeSet<String> = out
        .iter()
        .map(|r| format!("{}/{}", r.resource_type, r.id))
        .collect();
    assert_eq!(ids.len(), out.len(), "every id unique");
    let patients: BTreeSet<String> = v
        .iter()
        .filter(|r| r["resourceType"] == "Patient")
        .map(|r| format!("Patient/{}", r["id"].as_str().unwrap()))
        .collect();
    assert_eq!(patients.len(), 4);
    for (r, json) in out.iter().zip(&v) {
        assert_eq!(json["id"], r.id.as_str());
        // FHIR id: [A-Za-z0-9-.]{1,64}; a UUID.
        assert!(uuid::Uuid::parse_str(&r.id).is_ok(), "{}", r.id);
        if r.resource_type == "Patient" {
            assert_eq!(r.key, r.id, "keyed by the synthetic patient id");
            assert_eq!(json["identifier"][0]["value"], format!("urn:uuid:{}", r.id));
        } else {
            let subject = json["subject"]["reference"].as_str().unwrap();
            assert!(
                patients.contains(subject),
                "{subject} resolves in the batch"
            );
            assert_eq!(
                subject,
                format!("Patient/{}", r.key),
                "keyed by its patient"
            );
        }
    }
}

#[test]
fn the_same_batch_gives_the_same_bytes_and_another_seed_other_ids() {
    let a = batch_resources(&lab_mapping(), &table(), &batch(7)).unwrap();
    let b = batch_resources(&lab_mapping(), &table(), &batch(7)).unwrap();
    let c = batch_resources(&lab_mapping(), &table(), &batch(8)).unwrap();
    assert_eq!(
        a.iter().map(|r| &r.json).collect::<Vec<_>>(),
        b.iter().map(|r| &r.json).collect::<Vec<_>>()
    );
    let ids = |x: &[FhirResource]| x.iter().map(|r| r.id.clone()).collect::<BTreeSet<_>>();
    assert!(ids(&a).is_disjoint(&ids(&c)));
    let other = BatchRef {
        batch_id: "ehr-labs-1709254800250-v3",
        ..batch(7)
    };
    let d = batch_resources(&lab_mapping(), &table(), &other).unwrap();
    assert!(ids(&a).is_disjoint(&ids(&d)), "ids differ between batches");
}

#[test]
fn effective_times_lie_in_the_window_and_birth_dates_give_the_row_age() {
    let mapping = lab_mapping();
    // Many rows: every draw lands inside the window.
    let n = 500;
    let ages: Vec<f64> = (0..n).map(|i| (i % 100) as f64 + 0.6).collect();
    let t = Table::new(vec![
        Column::numeric("age", ages.clone()),
        Column::categorical("sex", &vec![Some("F"); n]),
        Column::categorical("diagnosis_code", &vec![Some("I10"); n]),
        Column::numeric("hba1c", vec![6.0; n]),
        Column::numeric("glucose", vec![100.0; n]),
        Column::numeric("ldl", vec![100.0; n]),
        Column::numeric("creatinine", vec![1.0; n]),
    ]);
    let out = parse(&batch_resources(&mapping, &t, &batch(1)).unwrap());
    let mut visit_of: BTreeMap<String, i64> = BTreeMap::new();
    let mut times = BTreeSet::new();
    for r in &out {
        let time = match r["resourceType"].as_str().unwrap() {
            "Observation" => r["effectiveDateTime"].as_str().unwrap(),
            "Condition" => r["recordedDate"].as_str().unwrap(),
            _ => continue,
        };
        let ms = ms_of(time);
        assert!(
            (START..START + HOUR).contains(&ms),
            "{time} outside the window"
        );
        assert_eq!(ms % 1000, 0, "whole seconds");
        times.insert(ms);
        let subject = r["subject"]["reference"].as_str().unwrap().to_string();
        let prev = visit_of.insert(subject, ms);
        assert!(prev.is_none_or(|p| p == ms), "one visit time per patient");
    }
    assert!(
        times.len() > n / 2,
        "times spread over the window: {}",
        times.len()
    );
    let patients: Vec<&Value> = out
        .iter()
        .filter(|r| r["resourceType"] == "Patient")
        .collect();
    for (row, p) in patients.iter().enumerate() {
        let birth = p["birthDate"].as_str().unwrap();
        let b = crate::source::text_values::days_from_civil(
            birth[0..4].parse().unwrap(),
            birth[5..7].parse().unwrap(),
            birth[8..10].parse().unwrap(),
        );
        let visit = visit_of[&format!("Patient/{}", p["id"].as_str().unwrap())];
        assert_eq!(
            age_on(b, visit.div_euclid(86_400_000)),
            ages[row].floor() as i64,
            "row {row}: born {birth}"
        );
    }
}

#[test]
fn flag_columns_give_a_condition_only_when_set() {
    let mapping = FhirMapping {
        conditions: vec![ConditionMapping {
            column: "diabetes".into(),
            system: codes::SNOMED.into(),
            code: Some("44054006".into()),
            display: Some("Diabetes mellitus type 2".into()),
            displays: BTreeMap::new(),
            skip: vec![],
            category: "problem-list-item".into(),
        }],
        ..Default::default()
    };
    let labels = Table::new(vec![Column::categorical(
        "diabetes",
        &[Some("true"), Some("false"), None, Some("1")],
    )]);
    let numbers = Table::new(vec![Column::numeric(
        "diabetes",
        vec![1.0, 0.0, f64::NAN, 0.7],
    )]);
    for t in [labels, numbers] {
        let out = batch_resources(&mapping, &t, &batch(1)).unwrap();
        let conditions: Vec<&FhirResource> = out
            .iter()
            .filter(|r| r.resource_type == "Condition")
            .collect();
        assert_eq!(conditions.len(), 2);
        let v: Value = serde_json::from_slice(&conditions[0].json).unwrap();
        assert_eq!(v["code"]["coding"][0]["code"], "44054006");
        assert_eq!(v["category"][0]["coding"][0]["code"], "problem-list-item");
        assert!(v.get("gender").is_none());
    }
}

/// Real identifiers planted in every place the source rows hold them (the
/// entity column, another id column, a diagnosis label) reach no resource:
/// the engine's path drops id columns before the generator, and a label
/// that is no code of its system never becomes a Condition.
#[test]
fn planted_real_ids_reach_no_resource() {
    use crate::schema::arrow_table;
    use datafusion::arrow::array::{ArrayRef, Float64Array, StringArray};
    use datafusion::arrow::record_batch::RecordBatch;
    use std::sync::Arc;

    let n = 400;
    let real: Vec<String> = (0..n).map(|i| format!("MRN{:07}", 4_200_000 + i)).collect();
    let resource_ids: Vec<String> = (0..n).map(|i| format!("obs-real-{i:05}")).collect();
    let dx: Vec<String> = (0..n)
        .map(|i| match i % 4 {
            0 => "E11.9".to_string(),
            1 => "I10".to_string(),
            2 => "Z00.00".to_string(),
            _ => real[i].clone(), // an id typed into the diagnosis field
        })
        .collect();
    let strs = |v: &[String]| Arc::new(StringArray::from(v.to_vec())) as ArrayRef;
    let nums = |f: &dyn Fn(usize) -> f64| {
        Arc::new(Float64Array::from((0..n).map(f).collect::<Vec<_>>())) as ArrayRef
    };
    let sex: Vec<String> = (0..n)
        .map(|i| if i % 2 == 0 { "F" } else { "M" }.to_string())
        .collect();
    let rows = RecordBatch::try_from_iter(vec![
        ("patient_id", strs(&real)),
        ("source_resource_id", strs(&resource_ids)),
        ("age", nums(&|i| 20.0 + (i * 7 % 60) as f64)),
        ("sex", strs(&sex)),
        ("diagnosis_code", strs(&dx)),
        ("hba1c", nums(&|i| 5.0 + (i % 30) as f64 / 10.0)),
        ("glucose", nums(&|i| 90.0 + (i % 50) as f64)),
        ("ldl", nums(&|i| 80.0 + (i % 70) as f64)),
        ("creatinine", nums(&|i| 0.6 + (i % 9) as f64 / 10.0)),
    ])
    .unwrap();
    let id_columns = vec!["patient_id".to_string(), "source_resource_id".to_string()];
    // As the engine does (window_job::canonical_window): id columns never
    // reach the generator.
    let train = arrow_table::to_table(&[rows], &id_columns).unwrap();
    assert!(train.column("patient_id").is_none());
    let model = crate::generate::copula::fit(&train, &Default::default(), 5).unwrap();
    let synthetic = model.sample(n, 9);
    let out = batch_resources(&lab_mapping(), &synthetic, &batch(9)).unwrap();
    assert!(out.iter().any(|r| r.resource_type == "Condition"));
    let mut bytes = Vec::new();
    for r in &out {
        bytes.extend_from_slice(r.key.as_bytes());
        bytes.push(b'\n');
        bytes.extend_from_slice(&r.json);
        bytes.push(b'\n');
    }
    let text = String::from_utf8(bytes).unwrap();
    for planted in real.iter().chain(&resource_ids) {
        assert!(
            !text.contains(planted.as_str()),
            "{planted} reached the output"
        );
    }
    assert!(!text.contains("MRN"), "no fragment of a planted id");
    assert!(!text.contains("obs-real"));
}

#[test]
fn a_bad_mapping_lists_every_problem_with_its_path() {
    let mut m = lab_mapping();
    m.sex_values.insert("X".into(), "nonbinary".into());
    m.age_column = Some("patient_id".into());
    m.observations[0].loinc = "4548-5".into();
    m.observations[1].unit = "mg / dL".into();
    m.observations[2].category = "labs".into();
    m.observations.push(m.observations[3].clone());
    m.conditions[0].system = "icd10".into();
    m.conditions.push(ConditionMapping {
        column: "diabetes".into(),
        system: codes::SNOMED.into(),
        code: Some("44054007".into()),
        display: None,
        displays: BTreeMap::new(),
        skip: vec!["x".into()],
        category: "diagnosis".into(),
    });
    let problems = m.validate(&["patient_id".into()], "patient_id");
    for path in [
        "output.fhir.sex_values.X",
        "output.fhir.age_column",
        "output.fhir.observations[0].loinc",
        "output.fhir.observations[1].unit",
        "output.fhir.observations[2].category",
        "output.fhir.observations[4]: column",
        "output.fhir.conditions[0].system",
        "output.fhir.conditions[1].code",
        "output.fhir.conditions[1]: displays and skip",
        "output.fhir.conditions[1].category",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(path)),
            "{path} missing from {problems:#?}"
        );
    }
    assert_eq!(problems.len(), 10, "{problems:#?}");
    assert!(
        lab_mapping()
            .validate(&["patient_id".into()], "patient_id")
            .is_empty()
    );
}

#[test]
fn columns_are_checked_against_the_training_table() {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let training = Schema::new(vec![
        Field::new("patient_id", DataType::Utf8, false),
        Field::new("age", DataType::Utf8, true),
        Field::new("sex", DataType::Utf8, true),
        Field::new("diagnosis_code", DataType::Int64, true),
        Field::new("hba1c", DataType::Float64, true),
        Field::new("glucose", DataType::Float64, true),
        Field::new("ldl", DataType::Float64, true),
    ]);
    let problems = lab_mapping().check_columns(&training);
    assert_eq!(
        problems,
        [
            "output.fhir.age_column: \"age\" is Utf8 but must be numeric (years)",
            "output.fhir.observations[3].column: \"creatinine\" is not a column of the training table (window.sql)",
            "output.fhir.conditions[0].column: \"diagnosis_code\" is Int64 but must be text (the codes)",
        ]
    );
}

#[test]
fn format_and_mapping_go_together() {
    let m = lab_mapping();
    let ids = ["patient_id".to_string()];
    assert!(validate_output(OutputFormat::Fhir, Some(&m), &ids, "patient_id").is_empty());
    assert!(validate_output(OutputFormat::Avro, None, &ids, "patient_id").is_empty());
    assert!(
        validate_output(OutputFormat::Fhir, None, &ids, "patient_id")[0].starts_with("output.fhir")
    );
    assert!(
        validate_output(OutputFormat::Avro, Some(&m), &ids, "patient_id")[0]
            .starts_with("output.fhir")
    );
}

#[test]
fn the_topology_loader_reads_and_checks_the_mapping() {
    let text = r#"
name = "t"
[kafka]
brokers = "127.0.0.1:9092"
group_id = "g"
source_topic = "in"
dead_letter_topic = "dlq"
quarantine_topic = "q"
alerts_topic = "alerts"
[source]
format = "avro"
schema = "s.avsc"
event_time_field = "event_time"
[window]
size_secs = 60
sql = "SELECT * FROM events"
[output]
topic = "out"
schema = "o.avsc"
format = "fhir"
[output.fhir]
sex_column = "sex"
age_column = "age"
[[output.fhir.observations]]
column = "hba1c"
loinc = "4548-3"
unit = "%"
[[output.fhir.conditions]]
column = "patient_id"
system = "http://hl7.org/fhir/sid/icd-10-cm"
"#;
    let t = crate::topology::Topology::parse(text).expect("parses");
    assert_eq!(t.output.format, OutputFormat::Fhir);
    let problems = t.validate();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("output.fhir.observations[0].loinc")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("output.fhir.conditions[0].column")),
        "{problems:?}"
    );
    let unknown = text.replace("unit = \"%\"", "unit = \"%\"\nunits = \"%\"");
    assert!(
        crate::topology::Topology::parse(&unknown)
            .unwrap_err()
            .contains("units")
    );
}

#[test]
fn window_labels_parse() {
    assert_eq!(window_bounds("1000-4600000"), Some((1000, 4_600_000)));
    assert_eq!(window_bounds("x-1"), None);
}
