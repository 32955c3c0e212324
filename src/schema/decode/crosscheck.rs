//! The direct decoders checked against independent readers on many random
//! records: Avro against apache-avro's `GenericDatumReader` (its `Value`s turned
//! into Arrow columns the way this module did before it read bytes itself),
//! JSON against a `serde_json::Value` map (the previous JSON path, kept here
//! as the oracle for results *and* error values).

use std::sync::Arc;

use apache_avro::types::Value as Avro;
use datafusion::arrow::array::{Array, Float64Array};
use datafusion::arrow::datatypes::DataType;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::source::simulator::{
    LabEvent, Simulator, SimulatorConfig, encode_event_avro, encode_event_json,
};

/// One value as the oracle sees it.
#[derive(Debug, Clone)]
enum Cell {
    Null,
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

const ALL_KINDS: &str = r#"{"type":"record","name":"All","fields":[
    {"name":"s","type":"string"},
    {"name":"ns","type":["null","string"]},
    {"name":"sn","type":["string","null"]},
    {"name":"i","type":"int"},
    {"name":"ni","type":["null","int"]},
    {"name":"l","type":"long"},
    {"name":"t","type":{"type":"long","logicalType":"timestamp-millis"}},
    {"name":"f","type":"float"},
    {"name":"d","type":"double"},
    {"name":"nd","type":["double","null"]},
    {"name":"b","type":"boolean"},
    {"name":"nb","type":["null","boolean"]},
    {"name":"e","type":{"type":"enum","name":"Color","symbols":["RED","GREEN","BLUE"]}},
    {"name":"ne","type":["null",{"type":"enum","name":"Shade","symbols":["LIGHT","DARK"]}]},
    {"name":"u","type":{"type":"string","logicalType":"uuid"}},
    {"name":"uf","type":{"type":"fixed","name":"U16","size":16,"logicalType":"uuid"}}
]}"#;

fn all_kinds() -> Arc<RecordSchema> {
    Arc::new(RecordSchema::parse(ALL_KINDS, "all_kinds").expect("test schema parses"))
}

fn lab_schema() -> Arc<RecordSchema> {
    Arc::new(RecordSchema::load(std::path::Path::new("schemas/ehr/lab_result.avsc")).unwrap())
}

fn random_string(rng: &mut StdRng) -> String {
    const PIECES: [&str; 8] = ["a", "Z", "0", " ", "é", "漢", "🦀", "\u{0}"];
    let n = rng.random_range(0..24);
    (0..n)
        .map(|_| PIECES[rng.random_range(0..PIECES.len())])
        .collect()
}

fn random_long(rng: &mut StdRng) -> i64 {
    match rng.random_range(0..6) {
        0 => [0, -1, 1, i64::MIN, i64::MAX, 63, 64, -64, -65][rng.random_range(0..9)],
        1 => rng.random_range(-200..200),
        _ => rng.random::<i64>() >> rng.random_range(0..63),
    }
}

fn random_int(rng: &mut StdRng) -> i32 {
    match rng.random_range(0..4) {
        0 => [0, -1, 1, i32::MIN, i32::MAX][rng.random_range(0..5)],
        _ => rng.random::<i32>() >> rng.random_range(0..31),
    }
}

fn random_double(rng: &mut StdRng) -> f64 {
    match rng.random_range(0..4) {
        // NaN and ±infinity are dead-lettered (AvroProblem::NotFinite,
        // tested in decode::tests), so valid records hold finite extremes.
        0 => [0.0, -0.0, f64::MIN_POSITIVE, f64::MAX, f64::MIN][rng.random_range(0..5)],
        _ => (rng.random::<f64>() - 0.5) * 10f64.powi(rng.random_range(-10..10)),
    }
}

fn nullable(rng: &mut StdRng, null_branch: u32, value: Avro) -> Avro {
    if rng.random_bool(0.3) {
        Avro::Union(null_branch, Box::new(Avro::Null))
    } else {
        Avro::Union(1 - null_branch, Box::new(value))
    }
}

fn random_record(rng: &mut StdRng) -> Avro {
    let colors = ["RED", "GREEN", "BLUE"];
    let shades = ["LIGHT", "DARK"];
    let c = rng.random_range(0..3);
    let sh = rng.random_range(0..2);
    let s = random_string(rng);
    let ns = random_string(rng);
    let sn = random_string(rng);
    let i = random_int(rng);
    let ni = random_int(rng);
    let l = random_long(rng);
    let t = random_long(rng);
    // f64::MAX and MIN overflow an f32 to infinity, which is a dead letter.
    let f = (random_double(rng) as f32).clamp(f32::MIN, f32::MAX);
    let d = random_double(rng);
    let nd = random_double(rng);
    let b = rng.random_bool(0.5);
    let nb = rng.random_bool(0.5);
    let u = apache_avro::Uuid::from_bytes(rng.random());
    let uf = apache_avro::Uuid::from_bytes(rng.random());
    Avro::Record(vec![
        ("s".into(), Avro::String(s)),
        ("ns".into(), nullable(rng, 0, Avro::String(ns))),
        ("sn".into(), nullable(rng, 1, Avro::String(sn))),
        ("i".into(), Avro::Int(i)),
        ("ni".into(), nullable(rng, 0, Avro::Int(ni))),
        ("l".into(), Avro::Long(l)),
        ("t".into(), Avro::TimestampMillis(t)),
        ("f".into(), Avro::Float(f)),
        ("d".into(), Avro::Double(d)),
        ("nd".into(), nullable(rng, 1, Avro::Double(nd))),
        ("b".into(), Avro::Boolean(b)),
        ("nb".into(), nullable(rng, 0, Avro::Boolean(nb))),
        ("e".into(), Avro::Enum(c, colors[c as usize].into())),
        (
            "ne".into(),
            nullable(rng, 0, Avro::Enum(sh, shades[sh as usize].into())),
        ),
        ("u".into(), Avro::Uuid(u)),
        ("uf".into(), Avro::Uuid(uf)),
    ])
}

/// The oracle for Avro: apache-avro's generic datum reader (what
/// `from_avro_datum` wraps), then `Value` → cells.
fn avro_oracle(schema: &RecordSchema, payload: &[u8]) -> Option<Vec<Cell>> {
    let mut reader = payload;
    let value = crate::schema::read_datum(&schema.avro, &mut reader).ok()?;
    let Avro::Record(fields) = value else {
        return None;
    };
    fields
        .into_iter()
        .map(|(_, v)| {
            let v = match v {
                Avro::Union(_, inner) => *inner,
                v => v,
            };
            Some(match v {
                Avro::Null => Cell::Null,
                Avro::String(s) | Avro::Enum(_, s) => Cell::Str(s),
                Avro::Uuid(u) => Cell::Str(u.to_string()),
                Avro::Int(i) => Cell::Int(i64::from(i)),
                Avro::Long(i) | Avro::TimestampMillis(i) => Cell::Int(i),
                Avro::Float(f) => Cell::Float(f64::from(f)),
                Avro::Double(f) => Cell::Float(f),
                Avro::Boolean(b) => Cell::Bool(b),
                _ => return None,
            })
        })
        .collect()
}

/// The oracle for JSON: the `serde_json::Value` path this module used before.
fn json_oracle(schema: &RecordSchema, payload: &[u8]) -> Result<Vec<Cell>, DecodeError> {
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| super::json_error(&e))?;
    let serde_json::Value::Object(map) = value else {
        return Err(DecodeError::Json("top level is not an object".into()));
    };
    let mut cells = Vec::new();
    for field in &schema.fields {
        let v = map.get(&field.name).unwrap_or(&serde_json::Value::Null);
        let bad = || DecodeError::Field {
            field: field.name.clone(),
            expected: expected_json(field.kind, field.nullable),
        };
        let cell = match (v, field.kind) {
            (serde_json::Value::Null, _) if field.nullable => Cell::Null,
            (serde_json::Value::String(s), FieldKind::String) => Cell::Str(s.clone()),
            (serde_json::Value::Bool(b), FieldKind::Boolean) => Cell::Bool(*b),
            (
                serde_json::Value::Number(n),
                FieldKind::Int | FieldKind::Long | FieldKind::TimestampMillis,
            ) => Cell::Int(n.as_i64().ok_or_else(bad)?),
            (serde_json::Value::Number(n), FieldKind::Float | FieldKind::Double) => {
                Cell::Float(n.as_f64().ok_or_else(bad)?)
            }
            _ => return Err(bad()),
        };
        if field.kind == FieldKind::Int
            && let Cell::Int(i) = cell
            && i32::try_from(i).is_err()
        {
            return Err(bad());
        }
        cells.push(cell);
    }
    Ok(cells)
}

/// Arrow columns from oracle rows, built independently of `append`.
fn oracle_batch(schema: &RecordSchema, rows: &[Vec<Cell>]) -> RecordBatch {
    let mut builders = new_builders(schema);
    for row in rows {
        for (b, cell) in builders.iter_mut().zip(row) {
            match (b, cell) {
                (Builder::Str(b), Cell::Str(s)) => b.append_value(s),
                (Builder::Int(b), Cell::Int(i)) => b.append_value(*i),
                (Builder::Float(b), Cell::Float(f)) => b.append_value(*f),
                (Builder::Bool(b), Cell::Bool(v)) => b.append_value(*v),
                (Builder::Time(b), Cell::Int(i)) => b.append_value(*i),
                (Builder::Str(b), _) => b.append_null(),
                (Builder::Int(b), _) => b.append_null(),
                (Builder::Float(b), _) => b.append_null(),
                (Builder::Bool(b), _) => b.append_null(),
                (Builder::Time(b), _) => b.append_null(),
            }
        }
    }
    let columns = builders.iter_mut().map(finish_builder).collect();
    RecordBatch::try_new(schema.arrow_schema(), columns).unwrap()
}

/// Column-by-column equality; floats compare by bits, so NaN and -0.0 count.
fn assert_same(ours: &RecordBatch, oracle: &RecordBatch) {
    assert_eq!(ours.schema(), oracle.schema());
    assert_eq!(ours.num_rows(), oracle.num_rows());
    for (i, field) in ours.schema().fields().iter().enumerate() {
        let (a, b) = (ours.column(i), oracle.column(i));
        if field.data_type() == &DataType::Float64 {
            let a = a.as_any().downcast_ref::<Float64Array>().unwrap();
            let b = b.as_any().downcast_ref::<Float64Array>().unwrap();
            for r in 0..a.len() {
                assert_eq!(a.is_null(r), b.is_null(r), "{} row {r}", field.name());
                assert_eq!(
                    a.value(r).to_bits(),
                    b.value(r).to_bits(),
                    "{} row {r}",
                    field.name()
                );
            }
        } else {
            assert_eq!(a.to_data(), b.to_data(), "column {}", field.name());
        }
    }
}

#[test]
fn random_avro_records_decode_like_apache_avro() {
    let schema = all_kinds();
    let mut rng = StdRng::seed_from_u64(3);
    let mut d = EventDecoder::new(schema.clone(), EventFormat::Avro, "t").unwrap();
    let mut rows = Vec::new();
    let mut times = Vec::new();
    for k in 0..3000 {
        let payload = write_datum(&schema.avro, random_record(&mut rng)).unwrap();
        let t = d.decode(&payload, 1, k).expect("a valid datum decodes");
        let cells = avro_oracle(&schema, &payload).expect("apache-avro reads its own datum");
        let Cell::Int(want) = cells[6] else {
            panic!("t is a long")
        };
        assert_eq!(t, want);
        times.push(t);
        rows.push(cells);
    }
    let out = d.finish();
    assert_eq!(out.event_time_ms, times);
    assert_same(&out.batch, &oracle_batch(&schema, &rows));
}

#[test]
fn simulator_events_decode_like_apache_avro() {
    let schema = lab_schema();
    let sim = Simulator::new(SimulatorConfig {
        patients: 400,
        ..Default::default()
    });
    let events = sim.window_events(0);
    let mut d = EventDecoder::new(schema.clone(), EventFormat::Avro, "event_time").unwrap();
    let mut rows = Vec::new();
    for (k, e) in events.iter().enumerate() {
        let payload = encode_event_avro(&schema, e).unwrap();
        assert_eq!(d.decode(&payload, 0, k as i64), Ok(e.event_time_ms));
        rows.push(avro_oracle(&schema, &payload).unwrap());
    }
    assert!(
        rows.iter().any(|r| matches!(r[10], Cell::Null)),
        "some nulls"
    );
    assert_same(&d.finish().batch, &oracle_batch(&schema, &rows));
}

/// Every strict prefix of a valid datum is an error naming a field (never a
/// panic, never a row); apache-avro itself reads some of these as nulls.
#[test]
fn every_truncation_is_an_error() {
    let schema = all_kinds();
    let mut rng = StdRng::seed_from_u64(5);
    let mut d = EventDecoder::new(schema.clone(), EventFormat::Avro, "t").unwrap();
    for _ in 0..300 {
        let payload = write_datum(&schema.avro, random_record(&mut rng)).unwrap();
        for cut in 0..payload.len() {
            match d.decode(&payload[..cut], 0, 0) {
                Err(DecodeError::Avro { problem, .. }) => {
                    assert_eq!(problem, AvroProblem::Truncated, "cut {cut}")
                }
                other => panic!("cut {cut} of {}: {other:?}", payload.len()),
            }
        }
        assert!(d.is_empty());
    }
}

/// Random damage never panics, and whatever the direct decoder accepts,
/// apache-avro reads to the same values.
#[test]
fn damaged_datums_never_panic_and_accepted_ones_agree() {
    let schema = all_kinds();
    let mut rng = StdRng::seed_from_u64(11);
    let mut d = EventDecoder::new(schema.clone(), EventFormat::Avro, "t").unwrap();
    let (mut accepted, mut rows) = (0, Vec::new());
    for _ in 0..20_000 {
        let mut payload = write_datum(&schema.avro, random_record(&mut rng)).unwrap();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(0..payload.len());
            match rng.random_range(0..3) {
                0 => payload[at] = rng.random(),
                1 => payload[at] ^= 1 << rng.random_range(0..8),
                _ => {
                    payload.remove(at);
                }
            }
        }
        if d.decode(&payload, 0, 0).is_ok() {
            accepted += 1;
            rows.push(avro_oracle(&schema, &payload).expect("apache-avro accepts it too"));
        }
    }
    assert!(
        accepted > 100,
        "some damage keeps a datum valid: {accepted}"
    );
    assert_same(&d.finish().batch, &oracle_batch(&schema, &rows));
}

fn lab_json(e: &LabEvent) -> String {
    String::from_utf8(encode_event_json(e)).unwrap()
}

/// Valid, damaged and oddly written JSON events: the same rows and the same
/// errors as the `serde_json::Value` path.
#[test]
fn json_events_decode_like_a_value_map() {
    let schema = lab_schema();
    let sim = Simulator::new(SimulatorConfig {
        patients: 60,
        ..Default::default()
    });
    let events = sim.window_events(0);
    let edits: &[(&str, &str)] = &[
        ("\"age\":", "\"age\":40.0,\"x\":"),
        ("\"age\":", "\"age\":3000000000,\"x\":"),
        ("\"age\":", "\"a\\u0067e\":"),
        ("\"sex\":", "\"sex\":null,\"y\":"),
        ("\"sex\":", "\"zzz\":"),
        ("\"sex\":", "\"sex\":1,\"sex\":"),
        ("\"race\":", "\"race\":\"x\\n\\u00e9\\\"\",\"r2\":"),
        (
            "\"event_time\":",
            "\"event_time\":18446744073709551615,\"t\":",
        ),
        ("\"event_time\":", "\"event_time\":-5,\"t\":"),
        ("\"event_time\":", "\"event_time\":null,\"t\":"),
        ("\"lab_value\":", "\"lab_value\":\"7\",\"v\":"),
        ("\"lab_value\":", "\"lab_value\":7,\"v\":"),
        ("\"lab_value\":", "\"lab_value\":-7,\"v\":"),
        ("\"lab_value\":", "\"lab_value\":1e400,\"v\":"),
        ("\"lab_value\":", "\"lab_value\":[1,{\"a\":[]}],\"v\":"),
        (
            "\"lab_value\":",
            "\"nested\":{\"a\":[1,2,{}]},\"lab_value\":",
        ),
        ("\"lab_unit\":", "\"lab_unit\":true,\"u\":"),
        ("{", "[{"),
        ("{", "  {"),
        ("{", "{,"),
    ];
    let mut ours = EventDecoder::new(schema.clone(), EventFormat::Json, "event_time").unwrap();
    let mut rows = Vec::new();
    let mut rng = StdRng::seed_from_u64(17);
    let mut docs: Vec<String> = vec![
        "[]".into(),
        "7".into(),
        "\"x\"".into(),
        "null".into(),
        "{}".into(),
        String::new(),
        "[1, 2".into(),
    ];
    for e in &events {
        let mut doc = lab_json(e);
        if rng.random_bool(0.6) {
            let (from, to) = edits[rng.random_range(0..edits.len())];
            doc = doc.replacen(from, to, 1);
        }
        match rng.random_range(0..10) {
            0 => doc.truncate(rng.random_range(0..doc.len())),
            1 => doc.push_str(" x"),
            2 => doc.push_str(" \n"),
            _ => {}
        }
        docs.push(doc);
    }
    let (mut ok, mut failed) = (0, 0);
    for doc in &docs {
        let want = json_oracle(&schema, doc.as_bytes());
        let time = schema.field_index("event_time").unwrap();
        let want = want.and_then(|cells| match cells[time] {
            Cell::Int(t) => Ok((t, cells)),
            _ => Err(DecodeError::MissingEventTime {
                field: "event_time".into(),
            }),
        });
        let got = ours.decode(doc.as_bytes(), 0, 0);
        match want {
            Ok((t, cells)) => {
                assert_eq!(got, Ok(t), "{doc}");
                rows.push(cells);
                ok += 1;
            }
            Err(e) => {
                assert_eq!(got, Err(e), "{doc}");
                failed += 1;
            }
        }
    }
    assert!(
        ok > 20 && failed > 20,
        "both outcomes exercised: {ok} ok, {failed} failed"
    );
    assert_same(&ours.finish().batch, &oracle_batch(&schema, &rows));
}

#[test]
fn nothing_is_allocated_per_record_once_warm() {
    // The scratch text buffer keeps its capacity across records: decoding
    // the same events again never grows it.
    let schema = lab_schema();
    let sim = Simulator::new(SimulatorConfig {
        patients: 50,
        ..Default::default()
    });
    let payloads: Vec<Vec<u8>> = sim
        .window_events(0)
        .iter()
        .map(|e| encode_event_avro(&schema, e).unwrap())
        .collect();
    let mut d = EventDecoder::new(schema, EventFormat::Avro, "event_time").unwrap();
    for p in &payloads {
        d.parse(p).unwrap();
    }
    let (text, slots) = (d.text.capacity(), d.slots.capacity());
    for p in &payloads {
        d.decode(p, 0, 0).unwrap();
    }
    assert_eq!((d.text.capacity(), d.slots.capacity()), (text, slots));
}

fn write_datum(schema: &apache_avro::Schema, v: Avro) -> apache_avro::AvroResult<Vec<u8>> {
    crate::schema::write_datum(schema, v)
}
