//! Several sources (issue 13), against a real Apache Kafka broker: lab
//! results (Avro, 3 partitions) and diagnoses (JSON, 2 partitions) are two
//! stream sources of one topology, read by one consumer, windowed together
//! (the watermark is the minimum over both topics' partitions) and joined by
//! the window's SQL. Each source's bad events go to its own dead-letter
//! topic; one transaction commits both topics' offsets; a run restarted
//! after every window publishes what an uninterrupted run does.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use resynth::engine::{self, Progress, RunOptions, RunSummary};
use resynth::schema::RecordSchema;
use resynth::source::load::{LoadPlan, load_topic};
use resynth::source::simulator::{Simulator, SimulatorConfig};
use resynth::topology::{EventFormat, SourceConfig, SourceEntry, SourceKind, Topology};

const WINDOWS: usize = 3;

/// The labs and diagnoses join: one row per patient with a diagnosis in the
/// window, its demographics and lab means from `labs`, its diagnosis from
/// `diagnoses` only.
const SQL: &str = "
WITH d AS (SELECT patient_id, MAX(diagnosis_code) AS diagnosis_code
           FROM diagnoses GROUP BY patient_id)
SELECT l.patient_id,
       MAX(l.age) AS age, MAX(l.sex) AS sex, MAX(l.race) AS race,
       MAX(l.ethnicity) AS ethnicity, MAX(l.zip3) AS zip3,
       MAX(d.diagnosis_code) AS diagnosis_code,
       AVG(CASE WHEN l.lab_code = '4548-4'  THEN l.lab_value END) AS hba1c,
       AVG(CASE WHEN l.lab_code = '1558-6'  THEN l.lab_value END) AS glucose,
       AVG(CASE WHEN l.lab_code = '13457-7' THEN l.lab_value END) AS ldl,
       AVG(CASE WHEN l.lab_code = '2160-0'  THEN l.lab_value END) AS creatinine
FROM labs l JOIN d ON d.patient_id = l.patient_id
GROUP BY l.patient_id";

/// Patients given a diagnosis event (two in three): the join must drop the rest.
fn diagnosed(patient_id: &str) -> bool {
    patient_id.bytes().map(u32::from).sum::<u32>() % 3 != 0
}

/// The demo topology (unique topics) as two stream sources.
fn topology(brokers: &str, id: &str, run: &str, dir: &std::path::Path) -> Topology {
    let mut t = common::topology(brokers, &format!("{id}-{run}"), &dir.join(run));
    t.name = id.to_string();
    t.kafka.transactional_id = Some(format!("{id}-{run}"));
    t.kafka.source_topic = String::new();
    let labs = std::mem::take(&mut t.source);
    t.sources = vec![
        SourceEntry {
            name: "labs".into(),
            kind: SourceKind::Stream,
            topic: format!("{id}.labs"),
            dead_letter_topic: None,
            late_topic: None,
            key_field: None,
            decode: labs,
        },
        SourceEntry {
            name: "diagnoses".into(),
            kind: SourceKind::Stream,
            topic: format!("{id}.diagnoses"),
            dead_letter_topic: Some(format!("{id}-{run}.diagnoses.dlq")),
            late_topic: None,
            key_field: None,
            decode: SourceConfig {
                format: EventFormat::Json,
                schema: common::repo().join("schemas/ehr/diagnosis.avsc"),
                event_time_field: "event_time".into(),
                ..Default::default()
            },
        },
    ];
    t.window.sql = SQL.into();
    assert!(t.validate().is_empty(), "{:?}", t.validate());
    t
}

fn outputs(t: &Topology) -> Vec<String> {
    let mut topics = vec![
        t.kafka.dead_letter_topic.clone(),
        t.kafka.late_topic.clone().unwrap(),
        t.kafka.quarantine_topic.clone(),
        t.kafka.alerts_topic.clone(),
        t.output.topic.clone(),
    ];
    topics.extend(t.sources[1].dead_letter_topic.clone());
    topics
}

/// One diagnosis event (JSON) per diagnosed patient and window, at the
/// patient's first lab of the window, keyed by patient; then `corrupt` bad
/// ones. Returns the expected training rows per window start.
fn load_diagnoses(
    brokers: &str,
    topic: &str,
    sim: &Simulator,
    corrupt: &[Vec<u8>],
) -> BTreeMap<i64, usize> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let mut expected = BTreeMap::new();
    let window_ms = sim.config().window_ms;
    for w in 0..WINDOWS {
        let mut first: BTreeMap<String, (i64, String)> = BTreeMap::new();
        for e in sim.window_events(w) {
            let entry = first
                .entry(e.patient_id.clone())
                .or_insert((e.event_time_ms, e.diagnosis_code.clone()));
            entry.0 = entry.0.min(e.event_time_ms);
        }
        let start = sim.config().start_ms + w as i64 * window_ms;
        let mut rows = 0;
        for (patient, (t, code)) in &first {
            if !diagnosed(patient) {
                continue;
            }
            rows += 1;
            let payload = serde_json::json!({"event_id": format!("dx-{w}-{patient}"),
                "patient_id": patient, "event_time": t, "diagnosis_code": code})
            .to_string();
            producer
                .send(BaseRecord::to(topic).key(patient).payload(&payload))
                .map_err(|(e, _)| e)
                .unwrap();
        }
        expected.insert(start, rows);
    }
    for bad in corrupt {
        producer
            .send(BaseRecord::<(), _>::to(topic).payload(bad))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    expected
}

/// Both runs' topics: the first source on 3 partitions, the second on 2
/// (so partition numbers overlap and differ), every output on 1.
fn create_topics(rt: &tokio::runtime::Runtime, brokers: &str, runs: [&Topology; 2]) {
    let (first, second) = (&runs[0].sources[0].topic, &runs[0].sources[1].topic);
    rt.block_on(common::create_topics(brokers, &[first.as_str()], 3));
    rt.block_on(common::create_topics(brokers, &[second.as_str()], 2));
    let out: Vec<String> = runs.iter().flat_map(|t| outputs(t)).collect();
    rt.block_on(common::create_topics(
        brokers,
        &out.iter().map(String::as_str).collect::<Vec<_>>(),
        1,
    ));
}

/// Runs `t` until the feed is idle (at most `max_windows`), recording each
/// closed window's training rows by its start; a window closed twice fails.
fn run_counting_rows(
    t: &Topology,
    brokers: &str,
    rt: &tokio::runtime::Runtime,
    max_windows: Option<u64>,
    rows: &mut BTreeMap<i64, usize>,
) -> RunSummary {
    let options = RunOptions {
        max_windows,
        idle_exit: Some(Duration::from_secs(3)),
        ..Default::default()
    };
    engine::run(t, brokers, &options, rt.handle(), &mut |p| {
        if let Progress::WindowClosed {
            start_ms,
            training_rows,
            ..
        } = p
        {
            assert!(
                rows.insert(start_ms, training_rows).is_none(),
                "window twice"
            );
        }
    })
    .unwrap()
}

#[test]
fn two_streams_are_windowed_together_joined_and_restart_to_the_same_output() {
    let brokers = common::kafka();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = common::unique("sources");
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        topology(brokers, &id, "a", dir.path()),
        topology(brokers, &id, "b", dir.path()),
    );
    let (labs, dx) = (a.sources[0].topic.clone(), a.sources[1].topic.clone());
    create_topics(&rt, brokers, [&a, &b]);
    let sim = Simulator::new(SimulatorConfig {
        patients: 2500,
        window_ms: (a.window.size_secs * 1000) as i64,
        seed: 13,
        ..Default::default()
    });
    let schema = RecordSchema::load(&a.sources[0].decode.schema).unwrap();
    let loaded = load_topic(
        brokers,
        &labs,
        &sim,
        &schema,
        &LoadPlan {
            windows: WINDOWS,
            max_events: None,
            corrupt: 3,
            late: 0,
            format: EventFormat::Avro,
        },
    )
    .unwrap();
    let bad_dx = vec![b"{not json".to_vec(), br#"{"patient_id": 7}"#.to_vec()];
    let expected_rows = load_diagnoses(brokers, &dx, &sim, &bad_dx);

    let run = |t: &Topology, max_windows: Option<u64>, rows: &mut BTreeMap<i64, usize>| {
        run_counting_rows(t, brokers, &rt, max_windows, rows)
    };
    let mut rows_a = BTreeMap::new();
    let whole = run(&a, None, &mut rows_a);
    assert_eq!(whole.windows_closed, WINDOWS as u64, "{whole:?}");
    assert!(whole.batches_published >= 1, "{whole:?}");
    // The join: one training row per patient with a diagnosis event in the
    // window; both streams' events of a window were in it when it closed.
    assert_eq!(rows_a, expected_rows);
    // Each source's bad events in its own dead-letter topic, named by topic.
    let labs_dlq = common::read_all(brokers, &a.kafka.dead_letter_topic);
    assert_eq!(labs_dlq.len(), loaded.corrupt_payloads.len());
    assert!(
        labs_dlq
            .iter()
            .all(|r| r.header("resynth.source.topic").as_deref() == Some(labs.as_str()))
    );
    let dx_dlq_topic = a.sources[1].dead_letter_topic.clone().unwrap();
    let dx_dlq = common::read_all(brokers, &dx_dlq_topic);
    let mut got: Vec<Vec<u8>> = dx_dlq.iter().map(|r| r.payload.clone()).collect();
    got.sort();
    let mut want = bad_dx.clone();
    want.sort();
    assert_eq!(got, want);
    assert!(
        dx_dlq
            .iter()
            .all(|r| r.header("resynth.source.topic").as_deref() == Some(dx.as_str()))
    );
    // One group, both topics' offsets committed to their ends.
    for topic in [&labs, &dx] {
        assert_eq!(
            common::committed(brokers, &a.kafka.group_id, topic),
            common::high_watermarks(brokers, topic),
            "{topic}"
        );
    }
    // Lineage names both sources' offset ranges.
    let published = common::read_all(brokers, &a.output.topic);
    let source = published[0].header("resynth.source").unwrap();
    assert!(
        source.contains(&format!("{labs}/")) && source.contains(&format!("{dx}/")),
        "{source}"
    );

    // Restarted after every window: the same records, byte for byte.
    let mut restarts: Vec<RunSummary> = Vec::new();
    let mut rows_b = BTreeMap::new();
    loop {
        let s = run(&b, Some(1), &mut rows_b);
        if s.windows_closed == 0 && s.events_in == 0 {
            break;
        }
        restarts.push(s);
        assert!(restarts.len() <= 8, "the restarted run never drains");
    }
    assert_eq!(rows_b, expected_rows, "{restarts:?}");
    let by_key = |t: &Topology| -> BTreeMap<Vec<u8>, Vec<u8>> {
        common::read_all(brokers, &t.output.topic)
            .into_iter()
            .map(|r| (r.key.unwrap_or_default(), r.payload))
            .collect()
    };
    let (out_a, out_b) = (by_key(&a), by_key(&b));
    assert_eq!(out_a.len(), published.len(), "no key twice");
    assert!(out_a == out_b, "the restarted run published other records");
    assert_eq!(
        common::sorted_payloads(brokers, &b.kafka.dead_letter_topic),
        common::sorted_payloads(brokers, &a.kafka.dead_letter_topic)
    );
    assert_eq!(
        common::sorted_payloads(brokers, b.sources[1].dead_letter_topic.as_ref().unwrap()),
        common::sorted_payloads(brokers, &dx_dlq_topic),
        "bad diagnoses routed once"
    );
    let patients: BTreeSet<_> = out_a.keys().collect();
    assert_eq!(patients.len(), out_a.len());
}

/// Which version history a patient of the table test gets, by its index.
#[derive(Debug, Clone, Copy, PartialEq)]
enum History {
    /// One version written years before any lab.
    Old,
    /// An old version, then a tombstone: never in a window.
    Deleted,
    /// Its only version has an event time in window 1: absent from window 0.
    FromWindow1,
    /// An old version with zip3 "000" (the SQL drops it) and a new one in
    /// window 2, the new one sent first: only window 2 sees the new one.
    NewInWindow2,
}

fn history(i: usize) -> History {
    match i % 7 {
        0 => History::Deleted,
        1 => History::FromWindow1,
        2 => History::NewInWindow2,
        _ => History::Old,
    }
}

/// The labs stream joined with a patients table: demographics come from the
/// table as of the window's end; zip3 "000" marks a stale version.
const TABLE_SQL: &str = "
WITH l AS (
  SELECT patient_id, MAX(diagnosis_code) AS diagnosis_code,
         AVG(CASE WHEN lab_code = '4548-4'  THEN lab_value END) AS hba1c,
         AVG(CASE WHEN lab_code = '1558-6'  THEN lab_value END) AS glucose,
         AVG(CASE WHEN lab_code = '13457-7' THEN lab_value END) AS ldl,
         AVG(CASE WHEN lab_code = '2160-0'  THEN lab_value END) AS creatinine
  FROM labs GROUP BY patient_id)
SELECT l.patient_id, p.age, p.sex, p.race, p.ethnicity, p.zip3, l.diagnosis_code,
       l.hba1c, l.glucose, l.ldl, l.creatinine
FROM l JOIN patients p ON p.patient_id = l.patient_id
WHERE p.zip3 <> '000'";

fn table_topology(brokers: &str, id: &str, run: &str, dir: &std::path::Path) -> Topology {
    let mut t = common::topology(brokers, &format!("{id}-{run}"), &dir.join(run));
    t.name = id.to_string();
    t.kafka.transactional_id = Some(format!("{id}-{run}"));
    t.kafka.source_topic = String::new();
    let labs = std::mem::take(&mut t.source);
    t.sources = vec![
        SourceEntry {
            name: "labs".into(),
            kind: SourceKind::Stream,
            topic: format!("{id}.labs"),
            dead_letter_topic: None,
            late_topic: None,
            key_field: None,
            decode: labs,
        },
        SourceEntry {
            name: "patients".into(),
            kind: SourceKind::Table,
            topic: format!("{id}.patients"),
            dead_letter_topic: Some(format!("{id}-{run}.patients.dlq")),
            late_topic: None,
            key_field: Some("patient_id".into()),
            decode: SourceConfig {
                format: EventFormat::Json,
                schema: common::repo().join("schemas/ehr/patient.avsc"),
                event_time_field: "updated_at".into(),
                ..Default::default()
            },
        },
    ];
    t.window.sql = TABLE_SQL.into();
    t.window.min_rows = 50;
    assert!(t.validate().is_empty(), "{:?}", t.validate());
    t
}

#[test]
fn a_table_source_is_joined_as_of_each_window_end_and_rebuilt_on_every_start() {
    let brokers = common::kafka();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = common::unique("table");
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        table_topology(brokers, &id, "a", dir.path()),
        table_topology(brokers, &id, "b", dir.path()),
    );
    let (labs, patients) = (a.sources[0].topic.clone(), a.sources[1].topic.clone());
    create_topics(&rt, brokers, [&a, &b]);
    let sim = Simulator::new(SimulatorConfig {
        patients: 2500,
        window_ms: (a.window.size_secs * 1000) as i64,
        seed: 17,
        ..Default::default()
    });
    let (start, window_ms) = (sim.config().start_ms, sim.config().window_ms);

    // The table first: demographics recorded long before the labs.
    let mut demographics: BTreeMap<String, resynth::source::simulator::LabEvent> = BTreeMap::new();
    let windows: Vec<_> = (0..WINDOWS).map(|w| sim.window_events(w)).collect();
    for e in windows.iter().flatten() {
        demographics
            .entry(e.patient_id.clone())
            .or_insert(e.clone());
    }
    let ids: Vec<String> = demographics.keys().cloned().collect();
    let index: BTreeMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, p)| (p.as_str(), i))
        .collect();
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let send = |key: &str, payload: Option<String>| {
        let record = BaseRecord::<str, str>::to(&patients).key(key);
        let record = match &payload {
            Some(p) => record.payload(p.as_str()),
            None => record,
        };
        producer.send(record).map_err(|(e, _)| e).unwrap();
    };
    let version = |e: &resynth::source::simulator::LabEvent, at: i64, zip3: &str| {
        serde_json::json!({"patient_id": e.patient_id, "updated_at": at, "age": e.age,
            "sex": e.sex, "race": e.race, "ethnicity": e.ethnicity, "zip3": zip3})
        .to_string()
    };
    let years_before = start - 10 * 365 * 86_400_000;
    for (i, (p, e)) in demographics.iter().enumerate() {
        match history(i) {
            History::Old => send(p, Some(version(e, years_before, &e.zip3))),
            History::Deleted => {
                send(p, Some(version(e, years_before, &e.zip3)));
                send(p, None);
            }
            History::FromWindow1 => send(p, Some(version(e, start + window_ms + 1_000, &e.zip3))),
            History::NewInWindow2 => {
                send(p, Some(version(e, start + 2 * window_ms + 1_000, &e.zip3)));
                send(p, Some(version(e, years_before, "000")));
            }
        }
    }
    let bad_patients = vec![b"{not json".to_vec(), br#"{"patient_id": "p-x"}"#.to_vec()];
    for bad in &bad_patients {
        producer
            .send(
                BaseRecord::<str, [u8]>::to(&patients)
                    .key("p-x")
                    .payload(bad),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let visible = |w: usize, patient: &str| match history(index[patient]) {
        History::Old => true,
        History::Deleted => false,
        History::FromWindow1 => w >= 1,
        History::NewInWindow2 => w >= 2,
    };
    let expected_rows: BTreeMap<i64, usize> = windows
        .iter()
        .enumerate()
        .map(|(w, events)| {
            let with_labs: BTreeSet<&str> = events.iter().map(|e| e.patient_id.as_str()).collect();
            let n = with_labs.into_iter().filter(|p| visible(w, p)).count();
            (start + w as i64 * window_ms, n)
        })
        .collect();

    let schema = RecordSchema::load(&a.sources[0].decode.schema).unwrap();
    load_topic(
        brokers,
        &labs,
        &sim,
        &schema,
        &LoadPlan {
            windows: WINDOWS,
            max_events: None,
            corrupt: 0,
            late: 0,
            format: EventFormat::Avro,
        },
    )
    .unwrap();

    let run = |t: &Topology, max_windows: Option<u64>, rows: &mut BTreeMap<i64, usize>| {
        run_counting_rows(t, brokers, &rt, max_windows, rows)
    };
    let mut rows_a = BTreeMap::new();
    let whole = run(&a, None, &mut rows_a);
    assert_eq!(whole.windows_closed, WINDOWS as u64, "{whole:?}");
    // Each window joined the table as of its end: tombstoned patients in
    // none, later versions only in the windows they precede, the stale
    // version (arrived last, older in event time) never chosen over the
    // new one.
    assert_eq!(rows_a, expected_rows);
    assert!(
        expected_rows.values().collect::<BTreeSet<_>>().len() == WINDOWS,
        "the histories make every window's count differ: {expected_rows:?}"
    );
    let dlq = |t: &Topology| {
        common::sorted_payloads(brokers, t.sources[1].dead_letter_topic.as_ref().unwrap())
    };
    let mut want = bad_patients.clone();
    want.sort();
    assert_eq!(dlq(&a), want, "the bad table records, once");
    // The table's read position is committed with its dead letters.
    assert_eq!(
        common::committed(brokers, &a.kafka.group_id, &patients),
        common::high_watermarks(brokers, &patients)
    );

    // Restarted after every window: each start rebuilds the table from its
    // topic, and routes its bad records no second time.
    let mut rows_b = BTreeMap::new();
    let mut starts = 0;
    loop {
        let s = run(&b, Some(1), &mut rows_b);
        starts += 1;
        if s.windows_closed == 0 && s.events_in == 0 {
            break;
        }
        assert!(starts <= 8, "the restarted run never drains");
    }
    assert!(starts > WINDOWS, "{starts} starts");
    assert_eq!(rows_b, expected_rows);
    assert_eq!(
        dlq(&b),
        want,
        "the bad table records, once over {starts} starts"
    );
    let by_key = |t: &Topology| -> BTreeMap<Vec<u8>, Vec<u8>> {
        common::read_all(brokers, &t.output.topic)
            .into_iter()
            .map(|r| (r.key.unwrap_or_default(), r.payload))
            .collect()
    };
    assert!(
        by_key(&a) == by_key(&b),
        "the restarted run published other records"
    );
}
