//! FHIR decode speed, from memory (no Kafka): simulator lab events written
//! as FHIR R4 Observations (`schema::fhir::example`, about 0.6 KB each)
//! decoded into Arrow by the example Observation source's five column
//! paths (a LOINC filter, an alternative for the event time), beside the
//! flat JSON decoder on the same events as flat JSON objects; then the
//! version rule on one window of them.
//!
//! ```text
//! cargo run --release --example fhir_decode_bench -- [N]
//! ```
//! Prints the best of five rounds, events/s and MB/s.

use std::sync::Arc;
use std::time::Instant;

use resynth::schema::RecordSchema;
use resynth::schema::decode::EventDecoder;
use resynth::schema::fhir::{self, example};
use resynth::source::simulator::{Simulator, SimulatorConfig, encode_event_json};
use resynth::topology::EventFormat;

fn best_of(rounds: usize, mut f: impl FnMut() -> usize) -> f64 {
    (0..rounds)
        .map(|_| {
            let started = Instant::now();
            let n = f();
            n as f64 / started.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let sim = Simulator::new(SimulatorConfig {
        patients: 2_000,
        seed: 3,
        ..Default::default()
    });
    let mut events = Vec::with_capacity(n);
    let mut w = 0;
    while events.len() < n {
        events.extend(sim.window_events(w));
        w += 1;
    }
    events.truncate(n);
    let fhir_payloads: Vec<Vec<u8>> = events.iter().map(example::observation_bytes).collect();
    let json_payloads: Vec<Vec<u8>> = events.iter().map(encode_event_json).collect();
    let fhir_bytes: usize = fhir_payloads.iter().map(Vec::len).sum();
    let json_bytes: usize = json_payloads.iter().map(Vec::len).sum();

    let source = example::observation_source();
    let fhir_schema = Arc::new(RecordSchema::for_source(&source).unwrap());
    let mut fhir_decoder = EventDecoder::for_source(fhir_schema.clone(), &source).unwrap();
    let flat_schema = Arc::new(
        RecordSchema::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/ehr/lab_result.avsc"
        )))
        .unwrap(),
    );
    let mut json_decoder = EventDecoder::new(flat_schema, EventFormat::Json, "event_time").unwrap();

    let run = |d: &mut EventDecoder, payloads: &[Vec<u8>]| {
        for (i, p) in payloads.iter().enumerate() {
            d.decode(p, 0, i as i64).expect("valid");
            if d.len() == 8192 {
                d.finish();
            }
        }
        d.finish();
        payloads.len()
    };
    let fhir_rate = best_of(5, || run(&mut fhir_decoder, &fhir_payloads));
    let json_rate = best_of(5, || run(&mut json_decoder, &json_payloads));
    println!(
        "fhir decode: {n} Observations ({:.0} B each): {:.0} events/s, {:.0} MB/s (one core)",
        fhir_bytes as f64 / n as f64,
        fhir_rate,
        fhir_rate * fhir_bytes as f64 / n as f64 / 1e6
    );
    println!(
        "flat json decode, same events ({:.0} B each): {:.0} events/s, {:.0} MB/s",
        json_bytes as f64 / n as f64,
        json_rate,
        json_rate * json_bytes as f64 / n as f64 / 1e6
    );

    // The version rule on one window of all of them, one in ten amended.
    let mut d = EventDecoder::for_source(fhir_schema.clone(), &source).unwrap();
    for (i, p) in fhir_payloads.iter().enumerate() {
        d.decode(p, 0, i as i64).unwrap();
        if i % 10 == 0 {
            let amended = example::observation(&events[i], Some("2"), "amended");
            d.decode(&serde_json::to_vec(&amended).unwrap(), 0, i as i64)
                .unwrap();
        }
    }
    let batch = d.finish().batch;
    let rows = batch.num_rows();
    let schema = batch.schema();
    let batches = vec![batch];
    let started = Instant::now();
    let v = fhir::latest_versions(&schema, &batches).unwrap();
    println!(
        "version rule: {rows} rows → {} in {:.1} ms ({} replaced)",
        v.batch.num_rows(),
        started.elapsed().as_secs_f64() * 1e3,
        v.replaced
    );
}
