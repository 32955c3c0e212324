//! Hostile inputs for the network-facing decoders (Avro datum, JSON object,
//! FHIR resource):
//! arbitrary bytes and mutations of valid events, shared by the bounded
//! property tests that CI runs (below) and the long-running fuzz command
//! (`cargo run --release --example fuzz_decoders -- --seconds 300`), which
//! also measures the bytes each decode allocates.
//!
//! The contract under test: every input returns `Ok` or a `DecodeError`
//! (which becomes a dead letter with a reason), never panics, finishes in
//! time linear in its size, and allocates at most a bound proportional to
//! its size.

use rand::Rng;

/// A valid event changed the ways hostile or broken producers change bytes.
pub fn mutate(rng: &mut impl Rng, valid: &[u8]) -> Vec<u8> {
    let mut b = valid.to_vec();
    let rounds = rng.random_range(1..=4);
    for _ in 0..rounds {
        let len = b.len();
        match rng.random_range(0..10) {
            // flip a byte
            0 | 1 if len > 0 => {
                let i = rng.random_range(0..len);
                b[i] ^= 1 << rng.random_range(0..8);
            }
            // random byte
            2 if len > 0 => {
                let i = rng.random_range(0..len);
                b[i] = rng.random();
            }
            // truncate
            3 if len > 0 => b.truncate(rng.random_range(0..len)),
            // an absurd Avro length / zig-zag varint (up to 10 bytes)
            4 => {
                let at = rng.random_range(0..=len);
                let n = rng.random_range(1..=10);
                let mut v: Vec<u8> = (0..n).map(|_| 0x80 | rng.random::<u8>()).collect();
                if rng.random_bool(0.7) {
                    *v.last_mut().unwrap() &= 0x7f;
                }
                b.splice(at..at, v);
            }
            // duplicate a slice
            5 if len > 0 => {
                let s = rng.random_range(0..len);
                let e = rng.random_range(s..=len.min(s + 64));
                let chunk = b[s..e].to_vec();
                let at = rng.random_range(0..=b.len());
                b.splice(at..at, chunk);
            }
            // JSON-shaped poison
            6 => {
                const POISON: [&[u8]; 10] = [
                    b"NaN",
                    b"Infinity",
                    b"-Infinity",
                    b"1e999",
                    b"\"\\ud800\"",
                    b"[[[[[[[[[[[[[[[[",
                    b"{\"a\":{\"a\":{\"a\":",
                    b"\xff\xfe",
                    b"\0",
                    b"99999999999999999999999",
                ];
                let p = POISON[rng.random_range(0..POISON.len())];
                let at = rng.random_range(0..=len);
                b.splice(at..at, p.iter().copied());
            }
            // delete a range
            7 if len > 1 => {
                let s = rng.random_range(0..len - 1);
                let e = rng.random_range(s + 1..=len);
                b.drain(s..e);
            }
            // append garbage
            _ => {
                let n = rng.random_range(0..32);
                b.extend((0..n).map(|_| rng.random::<u8>()));
            }
        }
    }
    b
}

/// Fixed hostile payloads (regression inputs): empty, deep nesting, large
/// strings and arrays, non-finite numbers, absurd length prefixes.
pub fn hostile_cases() -> Vec<(&'static str, Vec<u8>)> {
    let mut v: Vec<(&'static str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("one zero byte", vec![0]),
        (
            "absurd avro length",
            vec![0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        ),
        ("negative avro length", vec![0x01, b'a']),
        (
            "json NaN",
            br#"{"patient_id":"p","lab_value":NaN}"#.to_vec(),
        ),
        (
            "json inf",
            br#"{"patient_id":"p","lab_value":1e999}"#.to_vec(),
        ),
        ("json null object", b"null".to_vec()),
    ];
    v.push((
        "deep json arrays",
        [vec![b'['; 100_000], vec![b']'; 100_000]].concat(),
    ));
    v.push(("deep json objects", "{\"a\":".repeat(50_000).into_bytes()));
    v.push((
        "100 KB json string",
        format!("{{\"patient_id\":\"{}\"}}", "x".repeat(100_000)).into_bytes(),
    ));
    v.push(("1 MB of 0xff", vec![0xff; 1 << 20]));
    v.push(("1 MB of zeros", vec![0; 1 << 20]));
    v.extend(fhir_hostile_cases());
    v
}

/// FHIR-shaped hostile payloads: deep nesting and huge arrays on a column's
/// path, filters that never match, a resource just above the size limit.
pub fn fhir_hostile_cases() -> Vec<(&'static str, Vec<u8>)> {
    let obs = |body: String| format!("{{\"resourceType\":\"Observation\",{body}}}").into_bytes();
    vec![
        (
            "fhir: deep arrays on a path",
            obs(format!(
                "\"code\":{{\"coding\":{}{}}}",
                "[".repeat(50_000),
                "]".repeat(50_000)
            )),
        ),
        (
            "fhir: deep objects off the paths",
            obs(format!(
                "\"x\":{}1{}",
                "{\"a\":".repeat(50_000),
                "}".repeat(50_000)
            )),
        ),
        (
            "fhir: 100k codings, none matching",
            obs(format!(
                "\"code\":{{\"coding\":[{}{{}}]}}",
                "{\"system\":\"s\",\"code\":\"c\"},".repeat(100_000)
            )),
        ),
        (
            "fhir: 300k empty objects in an array on a path",
            obs(format!(
                "\"code\":{{\"coding\":[{}{{}}]}}",
                "{},".repeat(300_000)
            )),
        ),
        (
            "fhir: just above 1 MiB",
            obs(format!("\"note\":\"{}\"", "x".repeat(1 << 20))),
        ),
        (
            "fhir: top-level array",
            b"[{\"resourceType\":\"Observation\"}]".to_vec(),
        ),
        (
            "fhir: escaped key and value",
            obs("\"\\u0069d\":\"\\u0061\",\"status\":\"\\ud800\"".into()),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::schema::RecordSchema;
    use crate::schema::decode::EventDecoder;
    use crate::source::simulator::{
        Simulator, SimulatorConfig, encode_event_avro, encode_event_json,
    };
    use crate::topology::EventFormat;

    fn schema() -> Arc<RecordSchema> {
        Arc::new(
            RecordSchema::load(std::path::Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/schemas/ehr/lab_result.avsc"
            )))
            .unwrap(),
        )
    }

    /// A decoder of `format`; `fhir` reads the example Observation source.
    fn decoder(format: EventFormat) -> EventDecoder {
        match format {
            EventFormat::Fhir => {
                let source = crate::schema::fhir::example::observation_source();
                let schema = Arc::new(RecordSchema::for_source(&source).unwrap());
                EventDecoder::for_source(schema, &source).unwrap()
            }
            _ => EventDecoder::new(schema(), format, "event_time").unwrap(),
        }
    }

    const FORMATS: [EventFormat; 3] = [EventFormat::Avro, EventFormat::Json, EventFormat::Fhir];

    fn valid(format: EventFormat, n: usize) -> Vec<Vec<u8>> {
        let schema = schema();
        let sim = Simulator::new(SimulatorConfig {
            patients: 50,
            seed: 5,
            ..Default::default()
        });
        sim.window_events(0)
            .iter()
            .take(n)
            .map(|e| match format {
                EventFormat::Avro => encode_event_avro(&schema, e).unwrap(),
                EventFormat::Json => encode_event_json(e),
                EventFormat::Fhir => crate::schema::fhir::example::observation_bytes(e),
            })
            .collect()
    }

    /// Decodes and checks the contract: no panic (the test would fail),
    /// time linear in the size, an error that names no payload bytes.
    fn check(d: &mut EventDecoder, input: &[u8]) {
        let started = Instant::now();
        let before = d.len();
        match d.decode(input, 0, 0) {
            Ok(_) => assert_eq!(d.len(), before + 1),
            Err(e) => {
                assert_eq!(d.len(), before, "a failed decode appended a row");
                assert!(e.to_string().len() < 512, "error text is bounded: {e}");
            }
        }
        let limit = Duration::from_millis(50) + Duration::from_micros(input.len() as u64 / 10);
        assert!(
            started.elapsed() < limit,
            "took {:?} on {} bytes",
            started.elapsed(),
            input.len()
        );
        if d.len() > 1000 {
            d.finish();
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            for format in FORMATS {
                let mut d = decoder(format);
                check(&mut d, &bytes);
            }
        }

        #[test]
        fn mutated_valid_events_never_panic(seed in any::<u64>()) {
            let mut rng = StdRng::seed_from_u64(seed);
            for format in FORMATS {
                let events = valid(format, 8);
                let mut d = decoder(format);
                for e in &events {
                    let m = mutate(&mut rng, e);
                    check(&mut d, &m);
                }
            }
        }
    }

    #[test]
    fn hostile_cases_are_decode_errors() {
        for format in FORMATS {
            let mut d = decoder(format);
            for (name, bytes) in hostile_cases() {
                let started = Instant::now();
                let r = d.decode(&bytes, 0, 0);
                assert!(r.is_err(), "{format:?} {name}: decoded");
                assert!(
                    started.elapsed() < Duration::from_millis(500),
                    "{format:?} {name}: slow"
                );
            }
            // and the decoder still works afterwards
            for e in valid(format, 3) {
                d.decode(&e, 0, 0).unwrap();
            }
        }
    }
}
