//! Source events (Avro datum or JSON object) → Arrow columns.
//!
//! A record is validated completely before any builder is touched, so a bad
//! event never leaves a half-appended row behind: it is reported with the
//! field that failed and what was expected, and the caller dead-letters it.

use std::sync::Arc;

use apache_avro::types::Value as Avro;
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder,
};
use datafusion::arrow::record_batch::RecordBatch;

use super::{FieldKind, RecordSchema};
use crate::topology::EventFormat;

/// Why one event could not be decoded. The text goes into the dead-letter
/// record's `resynth.error` header, so it names the field, never its value.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("not a valid Avro datum for the source schema: {0}")]
    Avro(String),
    #[error("{0} trailing byte(s) after the Avro datum")]
    TrailingBytes(usize),
    #[error("not a JSON object: {0}")]
    Json(String),
    #[error("field {field:?}: expected {expected}")]
    Field { field: String, expected: String },
    #[error("field {field:?}: event time is missing")]
    MissingEventTime { field: String },
}

/// A decoded cell, held only until the whole record has validated.
#[derive(Debug, Clone)]
enum Cell {
    Null,
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
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
    format: EventFormat,
    time_index: usize,
    builders: Vec<Builder>,
    cells: Vec<Cell>,
    event_time_ms: Vec<i64>,
    partition: Vec<i32>,
    offset: Vec<i64>,
}

impl EventDecoder {
    /// `time_field` must name a numeric field of `schema` (checked by `check`).
    pub fn new(schema: Arc<RecordSchema>, format: EventFormat, time_field: &str) -> Option<Self> {
        let time_index = schema.field_index(time_field)?;
        if !matches!(
            schema.fields[time_index].kind,
            FieldKind::TimestampMillis | FieldKind::Long | FieldKind::Int
        ) {
            return None;
        }
        let builders = new_builders(&schema);
        Some(EventDecoder {
            cells: Vec::with_capacity(schema.fields.len()),
            schema,
            format,
            time_index,
            builders,
            event_time_ms: Vec::new(),
            partition: Vec::new(),
            offset: Vec::new(),
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
        let time = self.parse(payload)?;
        self.append_parsed(time, partition, offset);
        Ok(time)
    }

    /// Validates one message and returns its event time without appending it,
    /// so the caller can still route it elsewhere (e.g. late) with its bytes.
    pub fn parse(&mut self, payload: &[u8]) -> Result<i64, DecodeError> {
        self.cells.clear();
        match self.format {
            EventFormat::Avro => self.read_avro(payload)?,
            EventFormat::Json => self.read_json(payload)?,
        }
        match self.cells[self.time_index] {
            Cell::Int(t) => Ok(t),
            _ => Err(DecodeError::MissingEventTime {
                field: self.schema.fields[self.time_index].name.clone(),
            }),
        }
    }

    /// Appends the record last accepted by `parse`.
    pub fn append_parsed(&mut self, time: i64, partition: i32, offset: i64) {
        for (builder, cell) in self.builders.iter_mut().zip(self.cells.drain(..)) {
            append(builder, cell);
        }
        self.event_time_ms.push(time);
        self.partition.push(partition);
        self.offset.push(offset);
    }

    /// Takes what was decoded so far as one batch and starts afresh.
    pub fn finish(&mut self) -> DecodedBatch {
        let columns: Vec<ArrayRef> = self.builders.iter_mut().map(finish_builder).collect();
        let batch = RecordBatch::try_new(self.schema.arrow_schema(), columns)
            .expect("builders follow the schema they were made from");
        DecodedBatch {
            batch,
            event_time_ms: std::mem::take(&mut self.event_time_ms),
            partition: std::mem::take(&mut self.partition),
            offset: std::mem::take(&mut self.offset),
        }
    }

    fn read_avro(&mut self, payload: &[u8]) -> Result<(), DecodeError> {
        let mut reader = payload;
        let value = super::read_datum(&self.schema.avro, &mut reader)
            .map_err(|e| DecodeError::Avro(short(&e.to_string())))?;
        if !reader.is_empty() {
            return Err(DecodeError::TrailingBytes(reader.len()));
        }
        let Avro::Record(fields) = value else {
            return Err(DecodeError::Avro("datum is not a record".into()));
        };
        for (field, (_, value)) in self.schema.fields.iter().zip(fields) {
            let value = match value {
                Avro::Union(_, inner) => *inner,
                v => v,
            };
            let cell = match value {
                Avro::Null => Cell::Null,
                Avro::String(s) => Cell::Str(s),
                Avro::Enum(_, s) => Cell::Str(s),
                Avro::Uuid(u) => Cell::Str(u.to_string()),
                Avro::Int(i) => Cell::Int(i64::from(i)),
                Avro::Long(i) | Avro::TimestampMillis(i) => Cell::Int(i),
                Avro::Float(f) => Cell::Float(f64::from(f)),
                Avro::Double(f) => Cell::Float(f),
                Avro::Boolean(b) => Cell::Bool(b),
                _ => {
                    return Err(DecodeError::Field {
                        field: field.name.clone(),
                        expected: format!("{:?}", field.kind),
                    });
                }
            };
            self.cells.push(cell);
        }
        Ok(())
    }

    fn read_json(&mut self, payload: &[u8]) -> Result<(), DecodeError> {
        let value: serde_json::Value =
            serde_json::from_slice(payload).map_err(|e| DecodeError::Json(e.to_string()))?;
        let serde_json::Value::Object(map) = value else {
            return Err(DecodeError::Json("top level is not an object".into()));
        };
        for field in &self.schema.fields {
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
            self.cells.push(cell);
        }
        Ok(())
    }
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

/// Avro errors can quote large chunks of the schema; keep headers small.
fn short(s: &str) -> String {
    let mut out: String = s.chars().take(200).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
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

fn append(builder: &mut Builder, cell: Cell) {
    match (builder, cell) {
        (Builder::Str(b), Cell::Str(s)) => b.append_value(s),
        (Builder::Int(b), Cell::Int(i)) => b.append_value(i),
        (Builder::Float(b), Cell::Float(f)) => b.append_value(f),
        (Builder::Float(b), Cell::Int(i)) => b.append_value(i as f64),
        (Builder::Bool(b), Cell::Bool(v)) => b.append_value(v),
        (Builder::Time(b), Cell::Int(i)) => b.append_value(i),
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
        d.decode(&good, 0, 4).unwrap();
        assert_eq!(d.finish().batch.num_rows(), 1);
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
}
