//! FHIR output (`output.format = "fhir"`) as a downstream team sees it: the
//! engine runs on the real broker with a FHIR mapping, an independent
//! consumer reads the synthetic topic back, and HAPI FHIR (an independent
//! implementation, `deploy/hapi/hapi.sh`) parses and validates every
//! resource, together with a CART batch mapped with flags and vital signs,
//! in one JVM run: zero errors, only the warnings a terminology-less
//! validator must give. No real identifier reaches any record.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use resynth::engine::{self, RunOptions};
use resynth::schema::RecordSchema;
use resynth::sink::fhir::{self, BatchRef, FhirMapping, OutputFormat};
use resynth::sink::header_names;
use resynth::source::load::{LoadPlan, load_topic};
use resynth::source::simulator::{PopulationDrift, Simulator, SimulatorConfig};
use resynth::table::{Column, ColumnValues, Table};
use resynth::topology::EventFormat;

/// The mapping the README shows for the demo topology's training table.
const LAB_MAPPING: &str = r#"
sex_column = "sex"
age_column = "age"

[[observations]]
column = "hba1c"
loinc = "4548-4"
display = "Hemoglobin A1c/Hemoglobin.total in Blood"
unit = "%"

[[observations]]
column = "glucose"
loinc = "1558-6"
display = "Fasting glucose [Mass/volume] in Serum or Plasma"
unit = "mg/dL"
decimals = 0

[[observations]]
column = "ldl"
loinc = "13457-7"
display = "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation"
unit = "mg/dL"
decimals = 0

[[observations]]
column = "creatinine"
loinc = "2160-0"
display = "Creatinine [Mass/volume] in Serum or Plasma"
unit = "mg/dL"

[[conditions]]
column = "diagnosis_code"
system = "http://hl7.org/fhir/sid/icd-10-cm"
skip = ["Z00.00"]
displays = { "E11.9" = "Type 2 diabetes mellitus without complications", "I10" = "Essential (primary) hypertension", "E78.5" = "Hyperlipidemia, unspecified" }
"#;

/// Flags, SNOMED CT and a vital sign, for the CART batch.
const FLAG_MAPPING: &str = r#"
sex_column = "sex"
sex_values = { F = "female", M = "male" }
age_column = "age"

[[observations]]
column = "bmi"
loinc = "39156-5"
display = "Body mass index (BMI) [Ratio]"
unit = "kg/m2"
category = "vital-signs"
decimals = 1

[[observations]]
column = "hba1c"
loinc = "4548-4"
unit = "%"

[[conditions]]
column = "diabetes"
system = "http://snomed.info/sct"
code = "44054006"
display = "Diabetes mellitus type 2"
category = "problem-list-item"

[[conditions]]
column = "hypertension"
system = "http://snomed.info/sct"
code = "59621000"
display = "Essential hypertension"
"#;

/// Resources HAPI must reject: a gender that is no code, a dangling
/// reference with a unit that is no UCUM code, a clinical status that is
/// no code of its required value set.
const BROKEN: &str = concat!(
    r#"{"resourceType":"Patient","id":"broken-p1","gender":"woman"}"#,
    "\n",
    r#"{"resourceType":"Observation","id":"broken-o1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/nobody"},"valueQuantity":{"value":1,"system":"http://unitsofmeasure.org","code":"furlong/fortnight"}}"#,
    "\n",
    r#"{"resourceType":"Condition","id":"broken-c1","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"cured"}]},"subject":{"reference":"Patient/nobody"}}"#,
    "\n",
);

/// Warnings HAPI gives on valid resources when no terminology server is at
/// hand (message ids; see the README's FHIR output section).
const EXPECTED_WARNINGS: [&str; 2] = [
    // LOINC, SNOMED CT, ICD-10-CM: external code systems the R4 core
    // package does not contain, so codes cannot be looked up.
    "Terminology_PassThrough_TX_Message",
    // Best practice only: a synthetic lab has no performer to name.
    "All_observations_should_have_a_performer",
];

/// `deploy/hapi/hapi.sh`, built once (jars from Maven Central, cached).
fn hapi() -> &'static PathBuf {
    static SCRIPT: OnceLock<PathBuf> = OnceLock::new();
    SCRIPT.get_or_init(|| {
        let script = common::repo().join("deploy/hapi/hapi.sh");
        let status = Command::new("bash")
            .arg(&script)
            .arg("fetch")
            .status()
            .expect("run deploy/hapi/hapi.sh fetch");
        assert!(status.success(), "deploy/hapi/hapi.sh fetch failed");
        script
    })
}

/// HAPI's verdict on every line of `files`: (per-resource rows, summary).
fn validate_with_hapi(files: &[&Path]) -> (Vec<Value>, Value, bool) {
    let out = Command::new("bash")
        .arg(hapi())
        .arg("validate")
        .arg("--check-references")
        .args(files)
        .output()
        .expect("run hapi.sh validate");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let mut rows: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("hapi.sh prints JSON lines"))
        .collect();
    let summary = rows
        .pop()
        .and_then(|v| v.get("summary").cloned())
        .unwrap_or_else(|| {
            panic!(
                "no summary from hapi.sh; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    (rows, summary, out.status.success())
}

fn mapping(text: &str) -> FhirMapping {
    toml::from_str(text).expect("mapping parses")
}

/// Milliseconds of an RFC 3339 UTC time as the mapping writes them.
fn ms_of(t: &str) -> i64 {
    let days = resynth::source::text_values::days_from_civil(
        t[0..4].parse().unwrap(),
        t[5..7].parse().unwrap(),
        t[8..10].parse().unwrap(),
    );
    let hms: i64 = t[11..13].parse::<i64>().unwrap() * 3600
        + t[14..16].parse::<i64>().unwrap() * 60
        + t[17..19].parse::<i64>().unwrap();
    days * 86_400_000 + hms * 1000 + t[20..23].parse::<i64>().unwrap()
}

/// A CART batch of a small simulated table with flag columns and a vital sign.
fn cart_batch(dir: &Path) -> (PathBuf, usize) {
    let sim = Simulator::new(SimulatorConfig::default());
    let base = sim.patient_table(0, 400, &PopulationDrift::None, 3);
    let ColumnValues::Categorical { codes, dictionary } =
        &base.column("diagnosis_code").unwrap().values
    else {
        panic!("diagnosis_code is categorical")
    };
    let flag = |code: &str| -> Vec<Option<&'static str>> {
        codes
            .iter()
            .map(|&c| {
                Some(if dictionary[c as usize] == code {
                    "true"
                } else {
                    "false"
                })
            })
            .collect()
    };
    let ColumnValues::Numeric(ages) = &base.column("age").unwrap().values else {
        panic!("age is numeric")
    };
    let bmi: Vec<f64> = ages
        .iter()
        .enumerate()
        .map(|(i, a)| 22.0 + a / 10.0 + (i % 7) as f64)
        .collect();
    let mut columns: Vec<Column> = base
        .columns
        .iter()
        .filter(|c| ["age", "sex", "hba1c"].contains(&c.name.as_str()))
        .cloned()
        .collect();
    columns.push(Column::numeric("bmi", bmi));
    columns.push(Column::categorical("diabetes", &flag("E11.9")));
    columns.push(Column::categorical("hypertension", &flag("I10")));
    let train = Table::new(columns);
    let model = resynth::generate::cart::fit(&train, &Default::default(), 11, None).unwrap();
    let synthetic = model.sample(30, 12);
    let resources = fhir::batch_resources(
        &mapping(FLAG_MAPPING),
        &synthetic,
        &BatchRef {
            batch_id: "cart-check-1767225600000-v1",
            sample_seed: 12,
            window_start_ms: 1_767_225_600_000,
            window_end_ms: 1_767_229_200_000,
        },
    )
    .unwrap();
    assert!(resources.iter().any(|r| r.resource_type == "Condition"));
    let path = dir.join("cart.ndjson");
    let mut text = Vec::new();
    for r in &resources {
        text.extend_from_slice(&r.json);
        text.push(b'\n');
    }
    std::fs::write(&path, text).unwrap();
    (path, resources.len())
}

#[test]
fn engine_publishes_fhir_resources_that_hapi_validates_without_errors() {
    let brokers = common::kafka();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let id = common::unique("fhir-out");
    let dir = tempfile::tempdir().unwrap();
    let mut topo = common::topology(brokers, &id, dir.path());
    topo.output.format = OutputFormat::Fhir;
    topo.output.fhir = Some(mapping(LAB_MAPPING));
    topo.window.min_rows = 150;
    // HAPI takes 10-40 ms a resource: a small batch keeps the test in seconds.
    topo.model.synthetic_rows = 120;
    assert!(topo.validate().is_empty(), "{:?}", topo.validate());
    let topics = common::all_topics(&topo);
    rt.block_on(common::create_topics(
        brokers,
        &topics.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        2,
    ));
    let schema = RecordSchema::load(&topo.source.schema).unwrap();
    let sim = Simulator::new(SimulatorConfig {
        patients: 400,
        window_ms: (topo.window.size_secs * 1000) as i64,
        seed: 23,
        ..Default::default()
    });
    load_topic(
        brokers,
        &topo.kafka.source_topic,
        &sim,
        &schema,
        &LoadPlan {
            windows: 1,
            max_events: None,
            corrupt: 0,
            late: 0,
            format: EventFormat::Avro,
        },
    )
    .unwrap();
    // The source's real identifiers: none may reach the synthetic topic.
    let real: BTreeSet<String> = sim
        .window_events(0)
        .iter()
        .flat_map(|e| [e.patient_id.clone(), e.event_id.clone()])
        .collect();

    let t0 = std::time::Instant::now();
    let summary = engine::run(
        &topo,
        brokers,
        &RunOptions {
            idle_exit: Some(Duration::from_secs(2)),
            ..Default::default()
        },
        rt.handle(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(summary.batches_published, 1, "{summary:?}");
    println!("engine run: {:.1} s", t0.elapsed().as_secs_f64());

    let records = common::read_all(brokers, &topo.output.topic);
    assert_eq!(records.len() as u64, summary.records_published);
    let mut resources: Vec<Value> = Vec::new();
    let mut patient_of_key: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    let mut partition_of_patient: BTreeMap<String, i32> = BTreeMap::new();
    let mut seen_ids = BTreeSet::new();
    let window = records[0].header("resynth.window").unwrap();
    let (start, end) = fhir::window_bounds(&window).unwrap();
    for r in &records {
        for name in header_names() {
            assert!(r.header(name).is_some(), "missing lineage header {name}");
        }
        assert_eq!(r.header("resynth.window").unwrap(), window);
        let v: Value = serde_json::from_slice(&r.payload).expect("a record is one JSON resource");
        let kind = v["resourceType"].as_str().unwrap().to_string();
        let rid = v["id"].as_str().unwrap().to_string();
        assert!(
            seen_ids.insert(format!("{kind}/{rid}")),
            "{kind}/{rid} published twice"
        );
        let patient = if kind == "Patient" {
            rid.clone()
        } else {
            let subject = v["subject"]["reference"].as_str().unwrap();
            subject.strip_prefix("Patient/").unwrap().to_string()
        };
        assert_eq!(
            r.key.as_deref(),
            Some(patient.as_bytes()),
            "keyed by the synthetic patient"
        );
        *patient_of_key.entry(r.key.clone().unwrap()).or_default() += 1;
        let p = *partition_of_patient.entry(patient).or_insert(r.partition);
        assert_eq!(p, r.partition, "a patient's resources share a partition");
        let time = match kind.as_str() {
            "Observation" => v["effectiveDateTime"].as_str(),
            "Condition" => v["recordedDate"].as_str(),
            _ => None,
        };
        if let Some(t) = time {
            assert!(
                (start..end).contains(&ms_of(t)),
                "{t} outside window {window}"
            );
        }
        // Every token of the record (key, payload) is checked against the
        // source's real patient and event ids.
        let text = format!(
            "{} {}",
            String::from_utf8_lossy(r.key.as_deref().unwrap()),
            String::from_utf8_lossy(&r.payload)
        );
        for token in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
            assert!(
                !real.contains(token),
                "a real id reached the output: {token}"
            );
        }
        resources.push(v);
    }
    let kinds: BTreeMap<&str, usize> = resources.iter().fold(BTreeMap::new(), |mut m, v| {
        *m.entry(v["resourceType"].as_str().unwrap()).or_default() += 1;
        m
    });
    assert_eq!(kinds["Patient"], 120, "{kinds:?}");
    assert!(kinds["Observation"] >= 3 * kinds["Patient"], "{kinds:?}");
    assert!(
        kinds.get("Condition").copied().unwrap_or(0) > 0,
        "{kinds:?}"
    );

    let engine_file = dir.path().join("engine.ndjson");
    let mut text = Vec::new();
    for r in &records {
        text.extend_from_slice(&r.payload);
        text.push(b'\n');
    }
    std::fs::write(&engine_file, text).unwrap();
    let (cart_file, cart_count) = cart_batch(dir.path());

    // The validator is no rubber stamp: broken resources in the same run
    // (one JVM start) each fail it.
    let bad_file = dir.path().join("bad.ndjson");
    std::fs::write(&bad_file, BROKEN).unwrap();

    // One JVM run over both batches and the broken resources.
    let t1 = std::time::Instant::now();
    let (rows, summary, ok) = validate_with_hapi(&[&engine_file, &cart_file, &bad_file]);
    println!("HAPI run: {:.1} s", t1.elapsed().as_secs_f64());
    println!("HAPI summary: {summary:#}");
    let bad = bad_file.to_str().unwrap();
    let (broken, rows): (Vec<Value>, Vec<Value>) = rows.into_iter().partition(|r| r["file"] == bad);
    assert_eq!(broken.len(), BROKEN.lines().count());
    for r in &broken {
        assert!(
            !r["errors"].as_array().unwrap().is_empty(),
            "HAPI accepted a broken resource: {r}"
        );
    }
    assert!(!ok, "hapi.sh exits non-zero when any resource has an error");
    assert_eq!(rows.len(), records.len() + cart_count);
    let errors: Vec<&Value> = rows
        .iter()
        .filter(|r| !r["errors"].as_array().unwrap().is_empty())
        .take(5)
        .collect();
    assert!(errors.is_empty(), "HAPI errors: {errors:#?}");
    assert_eq!(summary["resources_with_errors"], broken.len() as u64);
    let unexpected: BTreeSet<String> = rows
        .iter()
        .flat_map(|r| r["warnings"].as_array().unwrap().iter())
        .filter(|w| !EXPECTED_WARNINGS.contains(&w["id"].as_str().unwrap()))
        .map(|w| format!("{}: {}", w["id"], w["message"]))
        .collect();
    assert!(
        unexpected.is_empty(),
        "unexpected HAPI warnings: {unexpected:#?}"
    );
    let warnings: usize = rows
        .iter()
        .map(|r| r["warnings"].as_array().unwrap().len())
        .sum();
    println!(
        "HAPI: {} resources ({} from the engine, {cart_count} CART), 0 errors, {warnings} warnings",
        rows.len(),
        records.len()
    );
}
