//! FHIR Observations on the real broker, through the real `resynth` binary:
//! amendments, out-of-order versions and a withdrawal inside an open
//! window reach the training table as one row per resource (checked on
//! the fitted model's reference profile of that table, and on the window
//! line the binary prints), bad resources become dead letters whose
//! `resynth.error` names the path, and a replacement that arrives after
//! its window was finalised goes to the late topic and is counted as a
//! late replacement.
//!
//! Bounded: one 60 s window of 30 patients, one small one, a few seconds.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::{Value, json};

use resynth::drift::profile::ColumnProfile;
use resynth::generate::ModelRegistry;

/// Window 1 starts here (a multiple of the 60 s window), in the past.
const T0: i64 = 1_700_000_040_000;

fn iso(ms: i64) -> String {
    resynth::schema::fhir::time::format_instant(ms)
}

fn observation(
    id: &str,
    patient: &str,
    version: &str,
    status: &str,
    value: Value,
    at: i64,
) -> Value {
    json!({
        "resourceType": "Observation",
        "id": id,
        "meta": {"versionId": version},
        "status": status,
        "code": {"coding": [
            {"system": "http://snomed.info/sct", "code": "43396009"},
            {"system": "http://loinc.org", "code": "4548-4"}
        ]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": iso(at),
        "valueQuantity": {"value": value, "unit": "%"}
    })
}

fn topology(brokers: &str, id: &str, dir: &std::path::Path) -> String {
    std::fs::write(
        dir.join("out.avsc"),
        r#"{"type":"record","name":"Row","fields":[
            {"name":"patient_id","type":"string"},
            {"name":"value","type":["null","double"]}]}"#,
    )
    .unwrap();
    format!(
        r#"
name = "{id}"
[kafka]
brokers = "{brokers}"
group_id = "{id}-group"
source_topic = "{id}.obs"
dead_letter_topic = "{id}.dlq"
late_topic = "{id}.late"
quarantine_topic = "{id}.quarantine"
alerts_topic = "{id}.alerts"
[source]
format = "fhir"
resource_type = "Observation"
event_time_field = "event_time"
columns = [
  {{ name = "patient_id", path = "subject.reference", type = "string" }},
  {{ name = "loinc", path = "code.coding[system='http://loinc.org'].code", type = "string" }},
  {{ name = "value", path = "valueQuantity.value", type = "double", required = false }},
  {{ name = "event_time", path = "effectiveDateTime | effectivePeriod.start", type = "timestamp" }},
]
[window]
size_secs = 60
watermark_delay_secs = 0
idle_timeout_secs = 600
table = "obs"
min_rows = 10
sql = "SELECT patient_id, AVG(value) AS value FROM obs WHERE loinc = '4548-4' GROUP BY patient_id"
[model]
generator = "gaussian_copula"
[output]
topic = "{id}.synthetic"
schema = "out.avsc"
max_regenerations = 0
[audit]
dir = "{audit}"
[telemetry]
metrics_addr = ""
"#,
        audit = dir.join("audit").display()
    )
}

fn producer(brokers: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .create()
        .unwrap()
}

fn send(p: &BaseProducer, topic: &str, key: &str, payload: &[u8]) {
    p.send(BaseRecord::to(topic).key(key).payload(payload))
        .map_err(|(e, _)| e)
        .unwrap();
}

#[test]
fn versions_withdrawals_dead_letters_and_late_replacements_on_the_real_broker() {
    let brokers = common::kafka();
    let id = common::unique("fhir");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fhir.toml");
    std::fs::write(&file, topology(brokers, &id, dir.path())).unwrap();
    let topic = |s: &str| format!("{id}.{s}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let names: Vec<String> = ["obs", "dlq", "late", "quarantine", "alerts", "synthetic"]
        .iter()
        .map(|s| topic(s))
        .collect();
    rt.block_on(common::create_topics(
        brokers,
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
        1,
    ));

    // Window 1: 30 patients, one Observation each, value 10 + i.
    let p = producer(brokers);
    let obs = topic("obs");
    let put = |v: &Value| {
        let key = v["subject"]["reference"]
            .as_str()
            .unwrap_or("x")
            .to_string();
        send(&p, &obs, &key, &serde_json::to_vec(v).unwrap());
    };
    for i in 0..30 {
        let value = if i == 7 {
            json!(900.0)
        } else {
            json!(10.0 + i as f64)
        };
        put(&observation(
            &format!("o{i}"),
            &format!("p{i}"),
            "1",
            "final",
            value,
            T0 + i * 1000,
        ));
    }
    // p7's 900 is amended to 17; p10 gets versions 3 (20) then 2 (800):
    // version 3 wins; p3's only Observation is withdrawn.
    put(&observation(
        "o7",
        "p7",
        "2",
        "amended",
        json!(17.0),
        T0 + 7000,
    ));
    put(&observation(
        "o10",
        "p10",
        "3",
        "corrected",
        json!(20.0),
        T0 + 10_000,
    ));
    put(&observation(
        "o10",
        "p10",
        "2",
        "amended",
        json!(800.0),
        T0 + 10_000,
    ));
    put(&observation(
        "o3",
        "p3",
        "2",
        "entered-in-error",
        json!(13.0),
        T0 + 3000,
    ));
    // Dead letters, each named by its path.
    let mut patient = observation("x1", "p1", "1", "final", json!(1.0), T0 + 40_000);
    patient["resourceType"] = json!("Patient");
    let mut no_subject = observation("x2", "p2", "1", "final", json!(1.0), T0 + 41_000);
    no_subject.as_object_mut().unwrap().remove("subject");
    let not_a_number = observation("x3", "p3", "1", "final", json!("high"), T0 + 42_000);
    let mut bad_date = observation("x4", "p4", "1", "final", json!(1.0), T0 + 43_000);
    bad_date["effectiveDateTime"] = json!("2023-13-01");
    for v in [&patient, &no_subject, &not_a_number, &bad_date] {
        put(v);
    }
    send(&p, &obs, "junk", b"{\"resourceType\": \"Observation\", ");
    // Window 2 (5 events): moves the watermark past window 1's end.
    for i in 0..5 {
        put(&observation(
            &format!("q{i}"),
            &format!("q{i}"),
            "1",
            "final",
            json!(1.0),
            T0 + 61_000 + i * 1000,
        ));
    }
    p.flush(Duration::from_secs(10)).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_resynth"))
        .arg("run")
        .arg(&file)
        .args(["--until-idle", "4", "--json"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Once window 1 is closed (the binary says so), its replacement is late.
    let mut seen = Vec::new();
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no window line; stdout so far: {seen:#?}"));
        let closed = line.contains("closed:");
        seen.push(line);
        if closed {
            break;
        }
    }
    put(&observation(
        "o12",
        "p12",
        "2",
        "amended",
        json!(99.0),
        T0 + 12_000,
    ));
    put(&observation(
        "o99",
        "p99",
        "1",
        "final",
        json!(1.0),
        T0 + 50_000,
    ));
    p.flush(Duration::from_secs(10)).unwrap();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    seen.extend(lines.try_iter());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{seen:#?}\n{stderr}");

    // Window 1: 30 + 4 versions = 34 events → 30 resources → 29 after the
    // withdrawal, one training row per patient.
    let window1 = seen.iter().find(|l| l.contains("closed:")).unwrap();
    assert!(
        window1.contains("closed: 29 events → 29 patients"),
        "{window1}"
    );

    // The training table, as its reference profile recorded it: p7 at 17
    // (not 900, nor their mean), p10 at 20 (version 3), p3 absent. Mean by
    // hand: (Σ_{i=0..29} (10 + i)) − 13 (p3) = 735 − 13 = 722 over 29 rows.
    let registry = ModelRegistry::open(&dir.path().join("audit"), &id).unwrap();
    let model = registry.load(1).expect("window 1 was fitted");
    let (_, profile) = model
        .reference
        .profiles
        .iter()
        .find(|(c, _)| c == "value")
        .expect("value profiled");
    let ColumnProfile::Numeric(value) = profile else {
        panic!("value is numeric: {profile:?}")
    };
    assert_eq!(value.rows, 29);
    assert_eq!(value.max, 39.0);
    assert!((value.mean - 722.0 / 29.0).abs() < 1e-9, "{}", value.mean);

    let summary = common::json_summary(&seen.join("\n"));
    assert_eq!(summary["dead_lettered"], 5, "{summary}");
    assert_eq!(summary["late"], 2, "{summary}");
    assert_eq!(summary["late_replacements"], 1, "{summary}");
    assert_eq!(summary["refits"], 1, "{summary}");
    let batches = summary["batches_published"].as_u64().unwrap()
        + summary["batches_quarantined"].as_u64().unwrap();
    assert_eq!(
        batches, 1,
        "window 1's batch is published or quarantined: {summary}"
    );

    // Dead letters: bytes intact, the reason names the path, not the value.
    let dead = common::read_all(brokers, &topic("dlq"));
    let reasons: Vec<String> = dead
        .iter()
        .map(|r| r.header("resynth.error").unwrap())
        .collect();
    for want in [
        "FHIR path \"resourceType\": expected \"Observation\"",
        "FHIR path \"subject.reference\": is missing (the column is required)",
        "FHIR path \"valueQuantity.value\": expected a number",
        "FHIR path \"effectiveDateTime | effectivePeriod.start\": expected a FHIR date",
        "not a JSON object",
    ] {
        assert!(
            reasons.iter().any(|r| r.starts_with(want)),
            "{want} not in {reasons:#?}"
        );
    }
    assert!(
        reasons
            .iter()
            .all(|r| !r.contains("high") && !r.contains("2023-13"))
    );
    assert_eq!(dead.len(), 5);
    assert!(
        dead.iter()
            .any(|r| r.payload == serde_json::to_vec(&not_a_number).unwrap())
    );

    // Late: the replacement and the late original, bytes intact.
    let late = common::read_all(brokers, &topic("late"));
    assert_eq!(late.len(), 2);
    assert!(
        late.iter()
            .all(|r| r.header("resynth.error").unwrap().starts_with("late"))
    );
    let ids: Vec<String> = late
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.payload).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids, ["o12", "o99"]);

    // The batch of window 1, wherever the gate sent it, carries its window.
    let published = common::read_all(brokers, &topic("synthetic"));
    let quarantined = common::read_all(brokers, &topic("quarantine"));
    let window = format!("{T0}-{}", T0 + 60_000);
    let batch: Vec<_> = published.iter().chain(&quarantined).collect();
    assert!(!batch.is_empty());
    assert!(
        batch.iter().all(|r| r
            .header("resynth.window")
            .is_some_and(|w| w.contains(&window))),
        "{:?}",
        batch.first().map(|r| r.header("resynth.window"))
    );
}
