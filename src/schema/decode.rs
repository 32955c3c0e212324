//! Source events (Avro datum or JSON object) → Arrow columns.
//!
//! This is the ingest hot path. A record is read into a small reusable
//! scratch (one primitive `Slot` per field, text in one reusable `String`;
//! no `apache_avro::types::Value`, no `serde_json::Value`, no per-record
//! allocation once warm), checked completely, and only then appended to the
//! Arrow builders, so a bad event never leaves a half-appended row behind: it
//! is reported with the field that failed and what was expected, and the
//! caller dead-letters it. Avro is read by `avro_binary` (the writer schema
//! compiled into a read plan once), JSON by `json_record` (keys matched
//! against the schema's field names as they stream past).

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use super::avro_binary::{AvroPlan, AvroProblem, ReadError, Slot};
use super::json_record::{self, Scalar};
use super::{FieldKind, RecordSchema};
use crate::topology::EventFormat;

/// Why one event could not be decoded. The text goes into the dead-letter
/// record's `resynth.error` header, so it names the field, never its value.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("field {field:?}: not valid Avro for the source schema: {problem}")]
    Avro { field: String, problem: AvroProblem },
    #[error("{0} trailing byte(s) after the Avro datum")]
    TrailingBytes(usize),
    #[error("not a JSON object: {0}")]
    Json(String),
    #[error("field {field:?}: expected {expected}")]
    Field { field: String, expected: String },
    /// A `fhir` resource: the path of the column (or `resourceType`) and
    /// what was wrong there, never the value.
    #[error("FHIR path {path:?}: {problem}")]
    Fhir { path: String, problem: String },
    #[error("{bytes} bytes is more than the source's limit of {max} (source.max_resource_bytes)")]
    TooLarge { bytes: usize, max: usize },
    #[error("field {field:?}: event time is missing")]
    MissingEventTime { field: String },
    /// Too far ahead of the wall clock (`window.max_future_ms`): it would
    /// move its partition's watermark and make valid events late.
    #[error(
        "field {field:?}: event time is more than {max_future_ms} ms ahead of the wall clock \
         (window.max_future_ms); it is not windowed and does not move the watermark"
    )]
    FutureEventTime { field: String, max_future_ms: i64 },
}

impl DecodeError {
    /// The `reason` label of `resynth_events_dead_lettered_total`.
    pub fn metric_reason(&self) -> &'static str {
        match self {
            DecodeError::FutureEventTime { .. } => "event_time_future",
            _ => "decode",
        }
    }
}

enum Builder {
    Str(StringBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Time(TimestampMillisecondBuilder),
}

/// Decoded events ready for windowing: the Arrow batch plus, per row, the
/// event time and the Kafka coordinates it came from (for offset tracking).
#[derive(Debug, Clone)]
pub struct DecodedBatch {
    pub batch: RecordBatch,
    pub event_time_ms: Vec<i64>,
    pub partition: Vec<i32>,
    pub offset: Vec<i64>,
}

/// Accumulates decoded events into Arrow builders.
pub struct EventDecoder {
    schema: Arc<RecordSchema>,
    arrow_schema: SchemaRef,
    format: EventFormat,
    time_index: usize,
    plan: AvroPlan,
    names: Vec<String>,
    builders: Vec<Builder>,
    /// The record being decoded, between reading and appending it.
    slots: Vec<Slot>,
    scalars: Vec<Scalar>,
    text: String,
    event_time_ms: Vec<i64>,
    partition: Vec<i32>,
    offset: Vec<i64>,
    /// `format = "fhir"`: the compiled column paths.
    fhir: Option<Box<super::fhir::FhirPlan>>,
}

impl EventDecoder {
    /// The decoder of one source, whatever its format: the constructor the
    /// engine calls. `schema` is [`RecordSchema::for_source`] of `source`.
    pub fn for_source(
        schema: Arc<RecordSchema>,
        source: &crate::topology::SourceConfig,
    ) -> Result<EventDecoder, Vec<String>> {
        let unusable = || vec!["source.event_time_field: unusable".to_string()];
        match source.format {
            EventFormat::Avro | EventFormat::Json => {
                EventDecoder::new(schema, source.format, &source.event_time_field)
                    .ok_or_else(unusable)
            }
            EventFormat::Fhir => {
                let plan = super::fhir::FhirPlan::new(source)?;
                let mut d = EventDecoder::build(schema, EventFormat::Fhir, plan.time_slot())
                    .ok_or_else(unusable)?;
                d.fhir = Some(Box::new(plan));
                Ok(d)
            }
        }
    }

    /// `time_field` must name a numeric field of `schema` (checked by `check`).
    /// Avro and JSON only (`fhir` needs its columns: [`for_source`](Self::for_source)).
    pub fn new(schema: Arc<RecordSchema>, format: EventFormat, time_field: &str) -> Option<Self> {
        if format == EventFormat::Fhir {
            return None;
        }
        let time_index = schema.field_index(time_field)?;
        EventDecoder::build(schema, format, time_index)
    }

    fn build(schema: Arc<RecordSchema>, format: EventFormat, time_index: usize) -> Option<Self> {
        if !matches!(
            schema.fields[time_index].kind,
            FieldKind::TimestampMillis | FieldKind::Long | FieldKind::Int
        ) {
            return None;
        }
        let plan = AvroPlan::new(&schema.avro)?;
        let builders = new_builders(&schema);
        Some(EventDecoder {
            arrow_schema: schema.arrow_schema(),
            names: schema.fields.iter().map(|f| f.name.clone()).collect(),
            slots: Vec::with_capacity(schema.fields.len()),
            scalars: Vec::with_capacity(schema.fields.len()),
            text: String::with_capacity(256),
            schema,
            format,
            time_index,
            plan,
            builders,
            event_time_ms: Vec::new(),
            partition: Vec::new(),
            offset: Vec::new(),
            fhir: None,
        })
    }

    pub fn len(&self) -> usize {
        self.event_time_ms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.event_time_ms.is_empty()
    }

    /// Decodes one message; on error nothing is appended.
    pub fn decode(
        &mut self,
        payload: &[u8],
        partition: i32,
        offset: i64,
    ) -> Result<i64, DecodeError> {
        self.decode_within(payload, partition, offset, None)
    }

    /// [`decode`](Self::decode), rejecting an event whose time is after
    /// `bound.latest_ms` (see `window::future`).
    pub fn decode_within(
        &mut self,
        payload: &[u8],
        partition: i32,
        offset: i64,
        bound: Option<crate::window::future::Latest>,
    ) -> Result<i64, DecodeError> {
        let time = self.parse(payload)?;
        if let Some(b) = bound
            && time > b.latest_ms
        {
            self.slots.clear();
            return Err(DecodeError::FutureEventTime {
                field: self.schema.fields[self.time_index].name.clone(),
                max_future_ms: b.max_future_ms,
            });
        }
        for (builder, slot) in self.builders.iter_mut().zip(self.slots.drain(..)) {
            append(builder, slot, &self.text, payload);
        }
        self.event_time_ms.push(time);
        self.partition.push(partition);
        self.offset.push(offset);
        Ok(time)
    }

    /// Validates one message and returns its event time without appending
    /// it (`decode` appends).
    pub fn parse(&mut self, payload: &[u8]) -> Result<i64, DecodeError> {
        let read = match self.format {
            EventFormat::Avro => self.read_avro(payload),
            EventFormat::Json => self.read_json(payload),
            EventFormat::Fhir => match &self.fhir {
                Some(plan) => plan.read(payload, &mut self.slots, &mut self.text),
                None => Err(DecodeError::Json("no FHIR columns".into())),
            },
        };
        if let Err(e) = read {
            self.slots.clear();
            return Err(e);
        }
        match self.slots[self.time_index] {
            Slot::Int(t) => Ok(t),
            _ => {
                self.slots.clear();
                Err(DecodeError::MissingEventTime {
                    field: self.schema.fields[self.time_index].name.clone(),
                })
            }
        }
    }

    /// Takes what was decoded so far as one batch and starts afresh.
    pub fn finish(&mut self) -> DecodedBatch {
        let columns: Vec<ArrayRef> = self.builders.iter_mut().map(finish_builder).collect();
        let batch = RecordBatch::try_new(self.arrow_schema.clone(), columns)
            .expect("builders follow the schema they were made from");
        DecodedBatch {
            batch,
            event_time_ms: std::mem::take(&mut self.event_time_ms),
            partition: std::mem::take(&mut self.partition),
            offset: std::mem::take(&mut self.offset),
        }
    }

    fn read_avro(&mut self, payload: &[u8]) -> Result<(), DecodeError> {
        self.plan
            .read(payload, &mut self.slots, &mut self.text)
            .map_err(|e| match e {
                ReadError::Field(i, problem) => DecodeError::Avro {
                    field: self.schema.fields[i].name.clone(),
                    problem,
                },
                ReadError::Trailing(n) => DecodeError::TrailingBytes(n),
            })
    }

    fn read_json(&mut self, payload: &[u8]) -> Result<(), DecodeError> {
        let is_object = json_record::read(payload, &self.names, &mut self.scalars, &mut self.text)
            .map_err(|e| json_error(&e))?;
        if !is_object {
            return Err(DecodeError::Json("top level is not an object".into()));
        }
        self.slots.clear();
        for (field, &v) in self.schema.fields.iter().zip(&self.scalars) {
            let bad = || DecodeError::Field {
                field: field.name.clone(),
                expected: expected_json(field.kind, field.nullable),
            };
            let slot = match (v, field.kind) {
                (Scalar::Absent | Scalar::Null, _) if field.nullable => Slot::Null,
                (Scalar::Str(a, b), FieldKind::String) => Slot::Text(a, b),
                (Scalar::Bool(b), FieldKind::Boolean) => Slot::Bool(b),
                (Scalar::I64(i), FieldKind::Int | FieldKind::Long | FieldKind::TimestampMillis) => {
                    Slot::Int(i)
                }
                (Scalar::U64(u), FieldKind::Int | FieldKind::Long | FieldKind::TimestampMillis) => {
                    Slot::Int(i64::try_from(u).map_err(|_| bad())?)
                }
                (Scalar::I64(i), FieldKind::Float | FieldKind::Double) => Slot::Float(i as f64),
                (Scalar::U64(u), FieldKind::Float | FieldKind::Double) => Slot::Float(u as f64),
                (Scalar::F64(f), FieldKind::Float | FieldKind::Double) if f.is_finite() => {
                    Slot::Float(f)
                }
                _ => return Err(bad()),
            };
            if field.kind == FieldKind::Int
                && let Slot::Int(i) = slot
                && i32::try_from(i).is_err()
            {
                return Err(bad());
            }
            self.slots.push(slot);
        }
        Ok(())
    }
}

/// A JSON parse failure as a dead-letter reason and log field. Syntax and
/// end-of-input messages are serde_json's fixed vocabulary plus a position;
/// a data error's message can quote the offending value (`invalid type:
/// string "..."`), which is PHI, so it is replaced by its kind and position.
pub(crate) fn json_error(e: &serde_json::Error) -> DecodeError {
    use serde_json::error::Category;
    DecodeError::Json(match e.classify() {
        Category::Syntax | Category::Eof => e.to_string(),
        Category::Data | Category::Io => format!(
            "a value of an unexpected type at line {} column {}",
            e.line(),
            e.column()
        ),
    })
}

fn expected_json(kind: FieldKind, nullable: bool) -> String {
    let base = match kind {
        FieldKind::String => "a string",
        FieldKind::Int => "a 32-bit integer",
        FieldKind::Long => "an integer",
        FieldKind::TimestampMillis => "an integer (milliseconds since the epoch)",
        FieldKind::Float | FieldKind::Double => "a number",
        FieldKind::Boolean => "true or false",
    };
    if nullable {
        format!("{base} or null")
    } else {
        base.to_string()
    }
}

fn new_builders(schema: &RecordSchema) -> Vec<Builder> {
    schema
        .fields
        .iter()
        .map(|f| match f.kind {
            FieldKind::String => Builder::Str(StringBuilder::new()),
            FieldKind::Int | FieldKind::Long => Builder::Int(Int64Builder::new()),
            FieldKind::Float | FieldKind::Double => Builder::Float(Float64Builder::new()),
            FieldKind::Boolean => Builder::Bool(BooleanBuilder::new()),
            FieldKind::TimestampMillis => Builder::Time(TimestampMillisecondBuilder::new()),
        })
        .collect()
}

#[inline]
fn append(builder: &mut Builder, slot: Slot, text: &str, payload: &[u8]) {
    match (builder, slot) {
        (Builder::Str(b), Slot::Text(start, end)) => {
            b.append_value(&text[start as usize..end as usize])
        }
        (Builder::Str(b), Slot::Raw(start, end)) => {
            let bytes = &payload[start as usize..end as usize];
            // SAFETY: `parse` checked exactly these bytes of this payload as
            // UTF-8 in the same `decode` call (avro_binary::read_field).
            b.append_value(unsafe { std::str::from_utf8_unchecked(bytes) })
        }
        (Builder::Int(b), Slot::Int(i)) => b.append_value(i),
        (Builder::Float(b), Slot::Float(f)) => b.append_value(f),
        (Builder::Float(b), Slot::Int(i)) => b.append_value(i as f64),
        (Builder::Bool(b), Slot::Bool(v)) => b.append_value(v),
        (Builder::Time(b), Slot::Int(i)) => b.append_value(i),
        (Builder::Str(b), _) => b.append_null(),
        (Builder::Int(b), _) => b.append_null(),
        (Builder::Float(b), _) => b.append_null(),
        (Builder::Bool(b), _) => b.append_null(),
        (Builder::Time(b), _) => b.append_null(),
    }
}

fn finish_builder(builder: &mut Builder) -> ArrayRef {
    match builder {
        Builder::Str(b) => Arc::new(b.finish()),
        Builder::Int(b) => Arc::new(b.finish()),
        Builder::Float(b) => Arc::new(b.finish()),
        Builder::Bool(b) => Arc::new(b.finish()),
        Builder::Time(b) => Arc::new(b.finish()),
    }
}

#[cfg(test)]
mod crosscheck;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::simulator::{LabEvent, encode_event_avro};
    use datafusion::arrow::array::{Array, Float64Array, StringArray};

    fn decoder(format: EventFormat) -> EventDecoder {
        let schema = Arc::new(
            RecordSchema::load(std::path::Path::new("schemas/ehr/lab_result.avsc")).unwrap(),
        );
        EventDecoder::new(schema, format, "event_time").unwrap()
    }

    fn event() -> LabEvent {
        LabEvent {
            event_id: "e1".into(),
            patient_id: "p1".into(),
            event_time_ms: 1_700_000_000_000,
            age: 61,
            sex: "F".into(),
            race: "White".into(),
            ethnicity: "Not Hispanic".into(),
            zip3: "021".into(),
            diagnosis_code: "E11.9".into(),
            lab_code: "4548-4".into(),
            lab_value: Some(7.2),
            lab_unit: "%".into(),
        }
    }

    #[test]
    fn nan_and_infinite_avro_doubles_are_errors_naming_the_field() {
        let schema =
            RecordSchema::load(std::path::Path::new("schemas/ehr/lab_result.avsc")).unwrap();
        let mut d = decoder(EventFormat::Avro);
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut e = event();
            // Encoded with a finite placeholder, then its 8 bytes replaced
            // (apache-avro writes NaN too; this keeps the layout explicit).
            e.lab_value = Some(1.5);
            let mut bytes = encode_event_avro(&schema, &e).unwrap();
            let at = bytes
                .windows(8)
                .position(|w| w == 1.5f64.to_le_bytes())
                .unwrap();
            bytes[at..at + 8].copy_from_slice(&bad.to_le_bytes());
            let err = d.decode(&bytes, 0, 0).unwrap_err();
            assert_eq!(
                err,
                DecodeError::Avro {
                    field: "lab_value".into(),
                    problem: AvroProblem::NotFinite
                }
            );
        }
        assert!(d.is_empty(), "nothing appended");
        // A finite value still decodes.
        let ok = encode_event_avro(&schema, &event()).unwrap();
        assert!(d.decode(&ok, 0, 0).is_ok());
    }

    #[test]
    fn avro_event_round_trips_into_arrow() {
        let schema =
            RecordSchema::load(std::path::Path::new("schemas/ehr/lab_result.avsc")).unwrap();
        let bytes = encode_event_avro(&schema, &event()).unwrap();
        let mut d = decoder(EventFormat::Avro);
        assert_eq!(d.decode(&bytes, 0, 7).unwrap(), 1_700_000_000_000);
        let out = d.finish();
        assert_eq!(out.batch.num_rows(), 1);
        assert_eq!(out.offset, vec![7]);
        let value = out.batch.column_by_name("lab_value").unwrap();
        let value = value.as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(value.value(0), 7.2);
        let sex = out.batch.column_by_name("sex").unwrap();
        assert_eq!(
            sex.as_any().downcast_ref::<StringArray>().unwrap().value(0),
            "F"
        );
    }

    #[test]
    fn corrupt_avro_is_an_error_and_appends_nothing() {
        let schema =
            RecordSchema::load(std::path::Path::new("schemas/ehr/lab_result.avsc")).unwrap();
        let good = encode_event_avro(&schema, &event()).unwrap();
        let mut d = decoder(EventFormat::Avro);
        assert!(d.decode(b"\x00\x01garbage", 0, 1).is_err());
        assert!(d.decode(&good[..good.len() / 2], 0, 2).is_err());
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"xx");
        assert_eq!(
            d.decode(&trailing, 0, 3),
            Err(DecodeError::TrailingBytes(2))
        );
        assert!(d.is_empty());
        // A rejected parse appends nothing.
        assert!(d.parse(&good[..3]).is_err());
        assert!(d.is_empty());
        d.decode(&good, 0, 4).unwrap();
        assert_eq!(d.finish().batch.num_rows(), 1);
    }

    /// Each kind of bad bytes is reported with the field it hit and what was
    /// wrong, and the message never carries the field's value.
    #[test]
    fn avro_errors_name_the_field_and_the_problem() {
        let schema = Arc::new(
            RecordSchema::parse(
                r#"{"type":"record","name":"R","fields":[
                    {"name":"a","type":"long"},
                    {"name":"v","type":["null","double"]},
                    {"name":"s","type":"string"},
                    {"name":"b","type":"boolean"},
                    {"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y"]}}]}"#,
                "test",
            )
            .unwrap(),
        );
        let mut d = EventDecoder::new(schema, EventFormat::Avro, "a").unwrap();
        let err = |field: &str, problem| DecodeError::Avro {
            field: field.into(),
            problem,
        };
        // a=1, v=null, s="hi", b=true, e=Y
        let good = [0x02, 0x00, 0x04, b'h', b'i', 0x01, 0x02];
        assert_eq!(d.parse(&good), Ok(1));
        let cases: Vec<(Vec<u8>, DecodeError)> = vec![
            (vec![0xff; 11], err("a", AvroProblem::BadVarint)),
            (vec![0x02], err("v", AvroProblem::Truncated)),
            (vec![0x02, 0x04], err("v", AvroProblem::BadUnionBranch(2))),
            (vec![0x02, 0x02, 1, 2, 3], err("v", AvroProblem::Truncated)),
            (
                vec![0x02, 0x00, 0x01],
                err("s", AvroProblem::NegativeLength),
            ),
            (
                vec![0x02, 0x00, 0x06, b'h'],
                err("s", AvroProblem::Truncated),
            ),
            (
                vec![0x02, 0x00, 0x04, 0xc3, 0x28],
                err("s", AvroProblem::InvalidUtf8),
            ),
            (
                vec![0x02, 0x00, 0x00, 0x02],
                err("b", AvroProblem::BadBoolean),
            ),
            (
                vec![0x02, 0x00, 0x00, 0x01, 0x04],
                err("e", AvroProblem::BadEnumIndex),
            ),
            (
                vec![0x02, 0x00, 0x00, 0x01, 0x01],
                err("e", AvroProblem::BadEnumIndex),
            ),
            ([&good[..], &[0x00]].concat(), DecodeError::TrailingBytes(1)),
        ];
        for (bytes, want) in cases {
            assert_eq!(d.decode(&bytes, 0, 0), Err(want.clone()), "{bytes:?}");
        }
        assert!(d.is_empty());
        let text = err("s", AvroProblem::InvalidUtf8).to_string();
        assert_eq!(
            text,
            "field \"s\": not valid Avro for the source schema: string is not valid UTF-8"
        );
        d.decode(&good, 3, 4).unwrap();
        let out = d.finish();
        assert_eq!((out.partition, out.offset), (vec![3], vec![4]));
        let e = out.batch.column_by_name("e").unwrap();
        assert_eq!(
            e.as_any().downcast_ref::<StringArray>().unwrap().value(0),
            "Y"
        );
    }

    #[test]
    fn json_errors_name_the_field_and_expectation() {
        let mut d = decoder(EventFormat::Json);
        let ok = r#"{"event_id":"e","patient_id":"p","event_time":1000,"age":40,"sex":"M","race":"r",
            "ethnicity":"e","zip3":"100","diagnosis_code":"I10","lab_code":"x","lab_value":null,"lab_unit":"u"}"#;
        d.decode(ok.as_bytes(), 0, 0).unwrap();
        let bad = ok.replace("\"age\":40", "\"age\":\"forty\"");
        let err = d.decode(bad.as_bytes(), 0, 1).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Field {
                field: "age".into(),
                expected: "a 32-bit integer".into()
            }
        );
        let missing = ok.replace("\"sex\":\"M\",", "");
        let err = d.decode(missing.as_bytes(), 0, 2).unwrap_err().to_string();
        assert!(err.contains("\"sex\"") && err.contains("a string"), "{err}");
        let out = d.finish();
        assert_eq!(out.batch.num_rows(), 1);
        assert!(out.batch.column_by_name("lab_value").unwrap().is_null(0));
    }

    /// Issue 16: a decode error becomes a dead-letter reason and a log
    /// field, so it names fields and positions, never the payload's values
    /// or unknown key names (canaries below).
    #[test]
    fn decode_errors_never_echo_payload_values() {
        let ok = r#"{"event_id":"e","patient_id":"p","event_time":1000,"age":40,"sex":"M","race":"r",
            "ethnicity":"e","zip3":"100","diagnosis_code":"I10","lab_code":"x","lab_value":null,"lab_unit":"u"}"#;
        let json: Vec<Vec<u8>> = [
            ok.replace("\"age\":40", "\"age\":\"CNRY-AGE\""),
            ok.replace("\"sex\":\"M\"", "\"sex\":[\"CNRY-ARRAY\"]"),
            ok.replace("\"sex\":\"M\"", "\"sex\":{\"CNRY-KEY\":\"CNRY-VALUE\"}"),
            ok.replace(
                "\"race\":\"r\"",
                "\"CNRY-UNKNOWN-KEY\":\"CNRY-V\",\"race\":7",
            ),
            ok.replace("\"lab_value\":null", "\"lab_value\":\"CNRY-NUM\""),
            ok.replace("\"lab_value\":null", "\"lab_value\":1e999"),
            ok.replace("\"age\":40", "\"age\":123456789012"),
            ok.replace("\"age\":40", "\"age\":-73519.25"),
            "{\"CNRY-TRUNCATED".to_string(),
            "{\"patient_id\":\"CNRY-\\uZZZZ\"}".to_string(),
            "{\"patient_id\":\"CNRY-\\ud800\"}".to_string(),
            "[{\"CNRY-NOT-OBJECT\":1}]".to_string(),
            "\"CNRY-TOP-STRING\"".to_string(),
            format!("{ok} CNRY-TRAILING"),
            format!("{}{}", "[".repeat(200), "\"CNRY-DEEP\""),
        ]
        .into_iter()
        .map(String::into_bytes)
        .chain([b"{\"patient_id\":\"CNRY-\xff\"}".to_vec()])
        .collect();
        let mut d = decoder(EventFormat::Json);
        for payload in &json {
            let err = d
                .decode(payload, 0, 0)
                .expect_err("hostile JSON is rejected");
            for text in [err.to_string(), format!("{err:?}")] {
                assert!(
                    !text.contains("CNRY")
                        && !text.contains("73519")
                        && !text.contains("123456789012"),
                    "{text} echoes {}",
                    String::from_utf8_lossy(payload)
                );
            }
        }
        let mut d = decoder(EventFormat::Avro);
        let mut avro = vec![0x10];
        avro.extend_from_slice(b"CNRY-AVR");
        for payload in [
            avro.clone(),
            [avro.as_slice(), &[0x10, 0xff]].concat(),
            b"CNRY-NOT-AVRO".to_vec(),
        ] {
            if let Err(err) = d.decode(&payload, 0, 0) {
                for text in [err.to_string(), format!("{err:?}")] {
                    assert!(!text.contains("CNRY"), "{text}");
                }
            }
        }
    }
}
