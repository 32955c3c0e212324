//! Schemas at the edges: the Avro schema of a source event mapped to an Arrow
//! schema (decode), the Avro schema of a synthetic record (encode), and the
//! bridge between Arrow batches and the pure core's `Table`.
//!
//! Only flat records are accepted: EHR change events are flat facts, and a
//! flat Arrow table is what the topology's SQL and the generators work on.
//! Anything else is rejected when the topology is loaded, naming the field.

pub mod arrow_table;
pub mod avro_binary;
pub mod decode;
pub mod encode;
pub mod fhir;
pub mod fuzz;
mod json_record;

use std::path::Path;
use std::sync::Arc;

use apache_avro::Schema as AvroSchema;
use datafusion::arrow::datatypes::{DataType, Field, Schema as ArrowSchema, SchemaRef, TimeUnit};

/// Errors about schemas themselves (not about individual events).
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot read schema {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("schema {path} is not valid Avro: {message}")]
    Parse { path: String, message: String },
    #[error("schema {path}: {message}")]
    Unsupported { path: String, message: String },
}

/// The kind of value a flat field holds, shared by decode and encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    String,
    Int,
    Long,
    Float,
    Double,
    Boolean,
    TimestampMillis,
}

/// One field of a flat record schema.
#[derive(Debug, Clone)]
pub struct FlatField {
    pub name: String,
    pub kind: FieldKind,
    pub nullable: bool,
    /// Position of the non-null branch in a `["null", T]` union (encode needs it).
    pub union_branch: Option<(usize, usize)>,
}

/// A parsed flat Avro record schema.
#[derive(Debug, Clone)]
pub struct RecordSchema {
    pub avro: AvroSchema,
    pub fields: Vec<FlatField>,
    /// Canonical form's fingerprint, so consumers can pin the schema they read.
    pub fingerprint: String,
}

impl FieldKind {
    fn arrow_type(self) -> DataType {
        match self {
            FieldKind::String => DataType::Utf8,
            FieldKind::Int | FieldKind::Long => DataType::Int64,
            FieldKind::Float | FieldKind::Double => DataType::Float64,
            FieldKind::Boolean => DataType::Boolean,
            FieldKind::TimestampMillis => DataType::Timestamp(TimeUnit::Millisecond, None),
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            FieldKind::Int
                | FieldKind::Long
                | FieldKind::Float
                | FieldKind::Double
                | FieldKind::TimestampMillis
        )
    }
}

impl RecordSchema {
    /// Loads a flat record schema from an `.avsc` file.
    pub fn load(path: &Path) -> Result<RecordSchema, SchemaError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Read {
            path: shown.clone(),
            source,
        })?;
        RecordSchema::parse(&text, &shown)
    }

    /// The schema of a source's events: its `.avsc` for `avro` and `json`,
    /// built from its columns for `fhir` (`fhir::record_schema`).
    pub fn for_source(source: &crate::topology::SourceConfig) -> Result<RecordSchema, SchemaError> {
        match source.format {
            crate::topology::EventFormat::Fhir => fhir::record_schema(source),
            _ => RecordSchema::load(&source.schema),
        }
    }

    /// Parses schema text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<RecordSchema, SchemaError> {
        let avro = AvroSchema::parse_str(text).map_err(|e| SchemaError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        let AvroSchema::Record(record) = &avro else {
            return Err(SchemaError::Unsupported {
                path: origin.to_string(),
                message: "top level must be a record".into(),
            });
        };
        let mut fields = Vec::with_capacity(record.fields.len());
        let mut problems = Vec::new();
        for f in &record.fields {
            match flat_kind(&f.schema) {
                Ok((kind, nullable, union_branch)) => fields.push(FlatField {
                    name: f.name.clone(),
                    kind,
                    nullable,
                    union_branch,
                }),
                Err(what) => problems.push(format!("field {:?}: {what}", f.name)),
            }
        }
        if !problems.is_empty() {
            return Err(SchemaError::Unsupported {
                path: origin.to_string(),
                message: problems.join("; "),
            });
        }
        use sha2::Digest;
        let canonical = avro.canonical_form();
        let fingerprint = format!("{:x}", sha2::Sha256::digest(canonical.as_bytes()));
        Ok(RecordSchema {
            avro,
            fields,
            fingerprint,
        })
    }

    /// The Arrow schema decoded events take.
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::new(ArrowSchema::new(
            self.fields
                .iter()
                .map(|f| Field::new(&f.name, f.kind.arrow_type(), f.nullable))
                .collect::<Vec<_>>(),
        ))
    }

    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }
}

type Flat = (FieldKind, bool, Option<(usize, usize)>);

fn flat_kind(schema: &AvroSchema) -> Result<Flat, String> {
    let plain = |s: &AvroSchema| -> Option<FieldKind> {
        Some(match s {
            AvroSchema::String | AvroSchema::Enum(_) | AvroSchema::Uuid(_) => FieldKind::String,
            AvroSchema::Int => FieldKind::Int,
            AvroSchema::Long => FieldKind::Long,
            AvroSchema::Float => FieldKind::Float,
            AvroSchema::Double => FieldKind::Double,
            AvroSchema::Boolean => FieldKind::Boolean,
            AvroSchema::TimestampMillis => FieldKind::TimestampMillis,
            _ => return None,
        })
    };
    if let Some(kind) = plain(schema) {
        return Ok((kind, false, None));
    }
    if let AvroSchema::Union(u) = schema {
        let variants = u.variants();
        if variants.len() == 2 {
            let null_at = variants.iter().position(|v| matches!(v, AvroSchema::Null));
            if let Some(n) = null_at {
                let other = 1 - n;
                if let Some(kind) = plain(&variants[other]) {
                    return Ok((kind, true, Some((n, other))));
                }
            }
        }
        return Err("only [\"null\", T] unions of a primitive T are supported".into());
    }
    Err(format!(
        "type {:?} is not supported; use string, enum, int, long, float, double, boolean or timestamp-millis",
        schema.canonical_form()
    ))
}

/// Reads one raw Avro datum (no container, no registry prefix) written with `schema`.
pub fn read_datum(
    schema: &AvroSchema,
    reader: &mut &[u8],
) -> apache_avro::AvroResult<apache_avro::types::Value> {
    apache_avro::reader::datum::GenericDatumReader::builder(schema)
        .build()?
        .read_value(reader)
}

/// Writes one raw Avro datum of `schema`, validating the value against it.
pub fn write_datum(
    schema: &AvroSchema,
    value: apache_avro::types::Value,
) -> apache_avro::AvroResult<Vec<u8>> {
    apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()?
        .write_value_to_vec(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_event_schema_maps_to_arrow() {
        let s = RecordSchema::load(Path::new("schemas/ehr/lab_result.avsc")).expect("loads");
        let a = s.arrow_schema();
        assert_eq!(
            a.field_with_name("age").unwrap().data_type(),
            &DataType::Int64
        );
        assert!(a.field_with_name("lab_value").unwrap().is_nullable());
        assert_eq!(
            a.field_with_name("event_time").unwrap().data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, None)
        );
    }

    #[test]
    fn nested_field_is_rejected_naming_it() {
        let text = r#"{"type":"record","name":"R","fields":[
            {"name":"ok","type":"string"},
            {"name":"tags","type":{"type":"array","items":"string"}}]}"#;
        let err = RecordSchema::parse(text, "x.avsc").unwrap_err().to_string();
        assert!(err.contains("tags"), "{err}");
    }
}
