//! A JSON object read straight into one scalar per schema field, with no
//! `serde_json::Value` tree or map per record: keys are matched against the
//! schema's field names as they stream past, unknown keys are skipped, and
//! string values are copied into one reusable scratch `String`.
//!
//! Type checking against the schema happens afterwards, in schema order
//! (`decode`), so the error contract is the one of a parsed `Value`: a
//! syntax error wins over a field error, a repeated key keeps its last value.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A JSON value as one field of the schema sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scalar {
    Absent,
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    /// Byte range in the scratch string.
    Str(u32, u32),
    /// An array or object.
    Nested,
}

/// Reads one JSON document. `Ok(false)`: valid JSON whose top level is not
/// an object. `names` are the schema's field names, `scalars` gets one entry
/// per name.
pub(crate) fn read(
    payload: &[u8],
    names: &[String],
    scalars: &mut Vec<Scalar>,
    text: &mut String,
) -> Result<bool, serde_json::Error> {
    scalars.clear();
    scalars.resize(names.len(), Scalar::Absent);
    text.clear();
    let mut de = serde_json::Deserializer::from_slice(payload);
    let is_object = Top {
        names,
        scalars,
        text,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(is_object)
}

struct Top<'s> {
    names: &'s [String],
    scalars: &'s mut [Scalar],
    text: &'s mut String,
}

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while let Some(key) = map.next_key_seed(Key(self.names))? {
            match key {
                Some(i) => self.scalars[i] = map.next_value_seed(Value(self.text))?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(true)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// Matches an object key against the field names: `Some(index)` or `None`
/// for an unknown key. Escaped keys arrive unescaped, as in a `Value` map.
struct Key<'s>(&'s [String]);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|n| n == key))
    }
}

/// One field's value.
struct Value<'s>(&'s mut String);

impl<'de> DeserializeSeed<'de> for Value<'_> {
    type Value = Scalar;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Value<'_> {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::I64(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::U64(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::F64(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
        let start = self.0.len();
        self.0.push_str(v);
        Ok(Scalar::Str(start as u32, self.0.len() as u32))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Nested)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Nested)
    }
}
