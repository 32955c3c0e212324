//! The path language of `fhir` columns: where a value is in a resource.
//!
//! ```text
//! path        := alternative ( " | " alternative )*
//! alternative := step ( "." step )*
//! step        := name ( "[" name "=" "'" text "'" "]" )?
//! name        := [A-Za-z_][A-Za-z0-9_]*          (a JSON key of the resource)
//! text        := any characters; \' is a quote and \\ a backslash
//! ```
//!
//! * `a.b` reads key `b` of the object at key `a`.
//! * When a step lands on an **array**, the first element that is not null
//!   and passes the step's filter is taken, and the rest of the path
//!   continues from that element only. **Several matches: the first, in
//!   document order, wins; later elements are never looked at**, even when
//!   the first one lacks the rest of the path. A step on a single object
//!   treats it as a one-element array (FHIR JSON writes a 0..1 element as an
//!   object).
//! * `[key='value']` keeps elements whose `key` is the string `value`
//!   (`coding[system='http://loinc.org']`, `extension[url='...']`).
//! * `a | b`: the first alternative that finds a value decides
//!   (`effectiveDateTime | effectivePeriod.start`); a malformed value in it
//!   is an error, not a reason to try the next.
//! * Absent keys and JSON `null` are "missing"; a step that meets a string,
//!   number or boolean where it needs an object is malformed.
//!
//! Paths are parsed once, when the topology is loaded ([`FhirPath::parse`]
//! lists what is wrong); evaluation runs on the pruned [`Tree`] and
//! allocates nothing.

use super::tree::Tree;

/// One step: a key, optionally filtered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub name: String,
    pub filter: Option<(String, String)>,
}

/// A parsed path: one or more alternatives of steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FhirPath {
    pub text: String,
    pub alternatives: Vec<Vec<Step>>,
}

/// What evaluating a path found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Found<'t, 'v> {
    Missing,
    Value(&'t Tree<'v>),
    /// A step met a scalar where it needed an object (or an array element).
    NotAnObject,
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl FhirPath {
    /// Parses a path; the error says what is wrong and where.
    pub fn parse(text: &str) -> Result<FhirPath, String> {
        if text.trim().is_empty() {
            return Err("is empty".into());
        }
        let mut alternatives = Vec::new();
        for (n, alt) in split_outside_quotes(text, '|')?.into_iter().enumerate() {
            let alt = alt.trim();
            if alt.is_empty() {
                return Err(format!("alternative {} is empty", n + 1));
            }
            let mut steps = Vec::new();
            for part in split_outside_quotes(alt, '.')? {
                steps.push(parse_step(part).map_err(|e| format!("step {part:?}: {e}"))?);
            }
            alternatives.push(steps);
        }
        Ok(FhirPath {
            text: text.to_string(),
            alternatives,
        })
    }

    /// A plain one-step path (`status`, `id`) or dotted fields, no filters.
    pub fn fields(text: &str) -> FhirPath {
        FhirPath::parse(text).expect("built-in path parses")
    }

    /// Evaluates the path on a resource (see the module doc).
    pub fn find<'t, 'v>(&self, root: &'t Tree<'v>) -> Found<'t, 'v> {
        for alt in &self.alternatives {
            match find_alternative(alt, root) {
                Found::Missing => continue,
                other => return other,
            }
        }
        Found::Missing
    }
}

fn find_alternative<'t, 'v>(steps: &[Step], root: &'t Tree<'v>) -> Found<'t, 'v> {
    let mut cur = root;
    for step in steps {
        if !matches!(cur, Tree::Object(_)) {
            return Found::NotAnObject;
        }
        let Some(next) = cur.get(&step.name) else {
            return Found::Missing;
        };
        cur = match pick(next, step.filter.as_ref()) {
            Found::Value(v) => v,
            other => return other,
        };
    }
    Found::Value(cur)
}

/// The first non-null element of an array (or the value itself) that
/// passes the filter.
fn pick<'t, 'v>(v: &'t Tree<'v>, filter: Option<&(String, String)>) -> Found<'t, 'v> {
    match v {
        Tree::Null => Found::Missing,
        Tree::Array(items) => items
            .iter()
            .find(|e| !matches!(e, Tree::Null) && e.passes(filter))
            .map_or(Found::Missing, Found::Value),
        Tree::Object(_) => {
            if v.passes(filter) {
                Found::Value(v)
            } else {
                Found::Missing
            }
        }
        _ if filter.is_some() => Found::NotAnObject,
        _ => Found::Value(v),
    }
}

fn parse_step(part: &str) -> Result<Step, String> {
    let Some(open) = part.find('[') else {
        if !is_name(part) {
            return Err("expected a name (letters, digits, '_')".into());
        }
        return Ok(Step {
            name: part.to_string(),
            filter: None,
        });
    };
    let name = &part[..open];
    if !is_name(name) {
        return Err("expected a name before '['".into());
    }
    let inner = part[open + 1..]
        .strip_suffix(']')
        .ok_or("a filter must end the step with ']'")?;
    let eq = inner.find('=').ok_or("a filter is [key='value']")?;
    let key = inner[..eq].trim();
    if !is_name(key) {
        return Err("the filter's key must be a name".into());
    }
    let quoted = inner[eq + 1..].trim();
    let body = quoted
        .strip_prefix('\'')
        .and_then(|q| q.strip_suffix('\''))
        .filter(|_| quoted.len() >= 2)
        .ok_or("the filter's value must be in single quotes")?;
    let mut value = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\'' | '\\')) => value.push(e),
                _ => return Err("only \\' and \\\\ are escapes in a filter value".into()),
            },
            '\'' => return Err("a quote inside a filter value must be written \\'".into()),
            c => value.push(c),
        }
    }
    Ok(Step {
        name: name.to_string(),
        filter: Some((key.to_string(), value)),
    })
}

/// Splits on `sep` outside single-quoted filter values.
fn split_outside_quotes(text: &str, sep: char) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '\'' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            out.push(&text[start..i]);
            start = i + c.len_utf8();
        }
    }
    if quoted {
        return Err("a filter value's quote is not closed".into());
    }
    out.push(&text[start..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::tree::{self, Keys};
    use super::*;

    /// An Observation with two LOINC codings (the first match wins) and a
    /// null in an array.
    const OBS: &str = r#"{
        "resourceType": "Observation",
        "code": {"coding": [
            {"system": "http://snomed.info/sct", "code": "S1"},
            {"system": "http://loinc.org", "code": "4548-4", "display": "HbA1c"},
            {"system": "http://loinc.org", "code": "second"}
        ]},
        "valueQuantity": {"value": 7.2, "unit": "%"},
        "subject": {"reference": "Patient/p1"},
        "name": [null, {"given": ["Ann", "B"]}],
        "status": "final"
    }"#;

    /// What `path` finds in `json`, parsed through the pruning reader with
    /// only this path's keys, as a plain JSON value (None: missing).
    fn find(path: &str, json: &str) -> Result<Option<serde_json::Value>, ()> {
        let p = FhirPath::parse(path).unwrap();
        let mut keys = Keys::default();
        for alt in &p.alternatives {
            keys.insert(alt);
        }
        let t = tree::parse(json.as_bytes(), &keys).unwrap();
        match p.find(&t) {
            Found::Missing => Ok(None),
            Found::NotAnObject => Err(()),
            Found::Value(v) => Ok(Some(match v {
                Tree::Str(s) => serde_json::json!(s),
                Tree::F64(f) => serde_json::json!(f),
                Tree::I64(i) => serde_json::json!(i),
                other => serde_json::json!(format!("{other:?}")),
            })),
        }
    }

    fn some(v: serde_json::Value) -> Result<Option<serde_json::Value>, ()> {
        Ok(Some(v))
    }

    #[test]
    fn filters_pick_the_first_match() {
        let o = OBS;
        assert_eq!(
            find("code.coding[system='http://loinc.org'].code", o),
            some("4548-4".into())
        );
        // No filter: the first element.
        assert_eq!(find("code.coding.code", o), some(serde_json::json!("S1")));
        assert_eq!(find("code.coding[system='http://x'].code", o), Ok(None));
        // First match only: its missing key is not looked up in the second.
        assert_eq!(
            find("code.coding[system='http://loinc.org'].userSelected", o),
            Ok(None)
        );
        // Nulls in arrays are skipped; nested arrays take their first.
        assert_eq!(find("name.given", o), some(serde_json::json!("Ann")));
        // A filter on a single object.
        assert_eq!(
            find("valueQuantity[unit='%'].value", o),
            some(serde_json::json!(7.2))
        );
        assert_eq!(find("valueQuantity[unit='mg'].value", o), Ok(None));
    }

    #[test]
    fn missing_alternatives_and_malformed() {
        let o = OBS;
        assert_eq!(find("valueQuantity.comparator", o), Ok(None));
        assert_eq!(find("nothing.here", o), Ok(None));
        assert_eq!(
            find("effectiveDateTime | subject.reference", o),
            some(serde_json::json!("Patient/p1"))
        );
        // A string where an object is needed.
        assert_eq!(find("status.coding", o), Err(()));
        assert_eq!(
            find("status | subject.reference", o),
            some(serde_json::json!("final"))
        );
    }

    #[test]
    fn bad_paths_are_rejected_with_the_reason() {
        for (bad, why) in [
            ("", "empty"),
            ("a..b", "expected a name"),
            ("a.", "expected a name"),
            ("a | ", "alternative 2 is empty"),
            ("code.coding[system=loinc]", "single quotes"),
            ("code.coding[system='x'", "end the step"),
            ("code.coding[='x']", "key must be a name"),
            ("code.coding[system='it's']", "not closed"),
            ("1abc", "expected a name"),
            ("a-b", "expected a name"),
            ("coding[system]", "[key='value']"),
        ] {
            let err = FhirPath::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        let p = FhirPath::parse(r"extension[url='a.b|c\'d'].valueString").unwrap();
        assert_eq!(
            p.alternatives[0][0].filter,
            Some(("url".into(), "a.b|c'd".into()))
        );
        assert_eq!(p.alternatives.len(), 1);
        assert_eq!(p.alternatives[0].len(), 2);
    }
}
