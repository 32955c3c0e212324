//! The Avro binary encoding of a flat record, read directly (no
//! `apache_avro::types::Value`, no allocation per record).
//!
//! `AvroPlan` is compiled once from the writer schema; `AvroPlan::read`
//! walks one datum field by field into a reusable scratch of `Slot`s (text
//! goes into one reusable `String`), so the caller can check the whole
//! record before any Arrow builder is touched. Every failure names the field
//! and what was wrong with the bytes, never the value.
//! Spec: <https://avro.apache.org/docs/1.12.0/specification/#binary-encoding>.

use apache_avro::Schema as AvroSchema;
use apache_avro::schema::UuidSchema;

/// What was wrong with the bytes of one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AvroProblem {
    #[error("datum ends inside this field")]
    Truncated,
    #[error("varint longer than 10 bytes or above 64 bits")]
    BadVarint,
    #[error("int out of the 32-bit range")]
    IntOutOfRange,
    #[error("union branch {0} is not one of the schema's branches")]
    BadUnionBranch(i64),
    #[error("negative length")]
    NegativeLength,
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    #[error("boolean byte is neither 0 nor 1")]
    BadBoolean,
    #[error("enum index outside the schema's symbols")]
    BadEnumIndex,
    #[error("not a valid UUID")]
    BadUuid,
    /// NaN and ±infinity are valid IEEE bits but no measurement: a window's
    /// AVG would carry them into the training table and the model.
    #[error("NaN or infinite number")]
    NotFinite,
}

/// One field's value, held until the whole record has been read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Slot {
    /// Null, or (JSON) absent.
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Byte range of the text in the scratch string.
    Text(u32, u32),
    /// Byte range of text (checked UTF-8) in the datum itself: most strings
    /// are used as they are on the wire, so they are copied once, into Arrow.
    Raw(u32, u32),
}

/// How one field is laid out on the wire.
#[derive(Debug, Clone)]
enum Wire {
    Int,
    Long,
    Float,
    Double,
    Boolean,
    String,
    Enum(Vec<String>),
    UuidString,
    UuidBytes,
    UuidFixed,
}

#[derive(Debug, Clone)]
struct PlanField {
    wire: Wire,
    /// For a `["null", T]` union: (branch of null, branch of T).
    union: Option<(i64, i64)>,
}

/// The read plan of a flat record schema (see `RecordSchema`).
#[derive(Debug, Clone)]
pub(crate) struct AvroPlan {
    fields: Vec<PlanField>,
}

impl AvroPlan {
    /// `None` when the schema is not a flat record `RecordSchema::parse`
    /// accepts (it has already rejected those, naming the field).
    pub(crate) fn new(schema: &AvroSchema) -> Option<AvroPlan> {
        let AvroSchema::Record(record) = schema else {
            return None;
        };
        let fields = record
            .fields
            .iter()
            .map(|f| match &f.schema {
                AvroSchema::Union(u) => {
                    let v = u.variants();
                    let null = v.iter().position(|s| matches!(s, AvroSchema::Null))?;
                    if v.len() != 2 {
                        return None;
                    }
                    let other = 1 - null;
                    Some(PlanField {
                        wire: wire(&v[other])?,
                        union: Some((null as i64, other as i64)),
                    })
                }
                s => Some(PlanField {
                    wire: wire(s)?,
                    union: None,
                }),
            })
            .collect::<Option<Vec<_>>>()?;
        Some(AvroPlan { fields })
    }

    /// Reads one whole datum into `slots` (one per field) and `text`.
    /// On error returns the index of the field and the problem; trailing
    /// bytes are reported as `Err(None)` with their count.
    pub(crate) fn read(
        &self,
        payload: &[u8],
        slots: &mut Vec<Slot>,
        text: &mut String,
    ) -> Result<(), ReadError> {
        slots.clear();
        text.clear();
        let mut r = Cursor { buf: payload };
        for (i, f) in self.fields.iter().enumerate() {
            let slot =
                read_field(f, &mut r, payload.len(), text).map_err(|p| ReadError::Field(i, p))?;
            slots.push(slot);
        }
        if r.buf.is_empty() {
            Ok(())
        } else {
            Err(ReadError::Trailing(r.buf.len()))
        }
    }
}

/// Why `AvroPlan::read` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// Field index and problem.
    Field(usize, AvroProblem),
    /// This many bytes follow a complete datum.
    Trailing(usize),
}

fn wire(s: &AvroSchema) -> Option<Wire> {
    Some(match s {
        AvroSchema::Int => Wire::Int,
        AvroSchema::Long | AvroSchema::TimestampMillis => Wire::Long,
        AvroSchema::Float => Wire::Float,
        AvroSchema::Double => Wire::Double,
        AvroSchema::Boolean => Wire::Boolean,
        AvroSchema::String => Wire::String,
        AvroSchema::Enum(e) => Wire::Enum(e.symbols.clone()),
        AvroSchema::Uuid(UuidSchema::String) => Wire::UuidString,
        AvroSchema::Uuid(UuidSchema::Bytes) => Wire::UuidBytes,
        AvroSchema::Uuid(UuidSchema::Fixed(f)) if f.size == 16 => Wire::UuidFixed,
        _ => return None,
    })
}

struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    #[inline]
    fn varint(&mut self) -> Result<u64, AvroProblem> {
        let mut value = 0u64;
        for (i, &b) in self.buf.iter().enumerate().take(10) {
            if i == 9 && b > 1 {
                // The 10th byte carries only bit 63.
                return Err(AvroProblem::BadVarint);
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        Err(if self.buf.len() >= 10 {
            AvroProblem::BadVarint
        } else {
            AvroProblem::Truncated
        })
    }

    #[inline]
    fn long(&mut self) -> Result<i64, AvroProblem> {
        let z = self.varint()?;
        Ok((z >> 1) as i64 ^ -((z & 1) as i64))
    }

    #[inline]
    fn int(&mut self) -> Result<i32, AvroProblem> {
        i32::try_from(self.long()?).map_err(|_| AvroProblem::IntOutOfRange)
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], AvroProblem> {
        if self.buf.len() < n {
            return Err(AvroProblem::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    #[inline]
    fn bytes(&mut self) -> Result<&'a [u8], AvroProblem> {
        let len = self.long()?;
        let len = usize::try_from(len).map_err(|_| AvroProblem::NegativeLength)?;
        self.take(len)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], AvroProblem> {
        let b = self.take(N)?;
        Ok(b.try_into().expect("took exactly N bytes"))
    }
}

#[inline]
fn push_text(text: &mut String, s: &str) -> Slot {
    let start = text.len();
    text.push_str(s);
    Slot::Text(start as u32, text.len() as u32)
}

fn push_uuid(text: &mut String, uuid: uuid::Uuid) -> Slot {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    push_text(text, uuid.hyphenated().encode_lower(&mut buf))
}

#[inline]
fn finite(x: f64) -> Result<Slot, AvroProblem> {
    if x.is_finite() {
        Ok(Slot::Float(x))
    } else {
        Err(AvroProblem::NotFinite)
    }
}

fn read_field(
    f: &PlanField,
    r: &mut Cursor<'_>,
    datum_len: usize,
    text: &mut String,
) -> Result<Slot, AvroProblem> {
    if let Some((null, value)) = f.union {
        let branch = r.long()?;
        if branch == null {
            return Ok(Slot::Null);
        }
        if branch != value {
            return Err(AvroProblem::BadUnionBranch(branch));
        }
    }
    Ok(match &f.wire {
        Wire::Int => Slot::Int(i64::from(r.int()?)),
        Wire::Long => Slot::Int(r.long()?),
        Wire::Float => finite(f64::from(f32::from_le_bytes(r.array()?)))?,
        Wire::Double => finite(f64::from_le_bytes(r.array()?))?,
        Wire::Boolean => match r.array::<1>()? {
            [0] => Slot::Bool(false),
            [1] => Slot::Bool(true),
            _ => return Err(AvroProblem::BadBoolean),
        },
        Wire::String => {
            let b = r.bytes()?;
            // Word-at-a-time ASCII check first: EHR codes and ids nearly always are.
            if !b.is_ascii() {
                std::str::from_utf8(b).map_err(|_| AvroProblem::InvalidUtf8)?;
            }
            let end = datum_len - r.buf.len();
            Slot::Raw((end - b.len()) as u32, end as u32)
        }
        Wire::Enum(symbols) => {
            let i = r.int()?;
            let symbol = usize::try_from(i)
                .ok()
                .and_then(|i| symbols.get(i))
                .ok_or(AvroProblem::BadEnumIndex)?;
            push_text(text, symbol)
        }
        Wire::UuidString => {
            let s = std::str::from_utf8(r.bytes()?).map_err(|_| AvroProblem::InvalidUtf8)?;
            let uuid = uuid::Uuid::parse_str(s).map_err(|_| AvroProblem::BadUuid)?;
            push_uuid(text, uuid)
        }
        Wire::UuidBytes => {
            let uuid = uuid::Uuid::from_slice(r.bytes()?).map_err(|_| AvroProblem::BadUuid)?;
            push_uuid(text, uuid)
        }
        Wire::UuidFixed => push_uuid(text, uuid::Uuid::from_bytes(r.array()?)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(bytes: &[u8]) -> Result<u64, AvroProblem> {
        Cursor { buf: bytes }.varint()
    }

    #[test]
    fn varints_follow_the_spec() {
        // Zigzag examples from the Avro specification's table.
        let long = |b: &[u8]| Cursor { buf: b }.long();
        assert_eq!(long(&[0x00]), Ok(0));
        assert_eq!(long(&[0x01]), Ok(-1));
        assert_eq!(long(&[0x02]), Ok(1));
        assert_eq!(long(&[0x03]), Ok(-2));
        assert_eq!(long(&[0x7f]), Ok(-64));
        assert_eq!(long(&[0x80, 0x01]), Ok(64));
        let max = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(long(&max), Ok(i64::MAX));
        let min = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(long(&min), Ok(i64::MIN));
        assert_eq!(varint(&[0x80]), Err(AvroProblem::Truncated));
        assert_eq!(varint(&[]), Err(AvroProblem::Truncated));
        assert_eq!(varint(&[0xff; 10]), Err(AvroProblem::BadVarint));
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(varint(&over), Err(AvroProblem::BadVarint));
        let int = |b: &[u8]| Cursor { buf: b }.int();
        assert_eq!(
            int(&[0x80, 0x80, 0x80, 0x80, 0x10]),
            Err(AvroProblem::IntOutOfRange)
        );
    }
}
