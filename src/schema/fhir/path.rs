//! The path language of `fhir` columns: where a value is in a resource.
//!
//! ```text
//! path        := alternative ( " | " alternative )*
//! alternative := step ( "." step )*
//! step        := name ( "[" key "=" "'" text "'" "]" )?
//! key         := name ( "." name )*
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
//! * `[a.b.c='value']` keeps elements from which **any** value reached by
//!   following `a.b.c` is the string `value`, like FHIRPath's
//!   `where(a.b.c = 'value')`: a key step that lands on an array looks at
//!   every non-null element, not just the first, and a single object is a
//!   one-element array. This is what selects a blood-pressure component by
//!   its code, whose codings are an array and the match need not be first:
//!   `component[code.coding.code='8480-6'].valueQuantity.value`. The same
//!   rule holds for a one-name key (`[given='Ann']` matches an array of
//!   strings holding `Ann`). Numbers, booleans and objects never equal a
//!   value; a missing key never matches.
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
    pub filter: Option<Filter>,
}

/// `[a.b.c='value']`: an element passes when any value reached along `key`
/// is the string `value` (see the module doc). The pruning trie also keeps
/// filters whose `key` is the rest of a filter's key below a node, down to
/// an empty `key` (the value itself must be the string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub key: Vec<String>,
    pub value: String,
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
fn pick<'t, 'v>(v: &'t Tree<'v>, filter: Option<&Filter>) -> Found<'t, 'v> {
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
    if !key.split('.').all(is_name) {
        return Err(format!(
            "the filter's key must be a name or dotted names (a.b.c), not {key:?}"
        ));
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
        filter: Some(Filter {
            key: key.split('.').map(str::to_string).collect(),
            value,
        }),
    })
}

/// Splits on `sep` outside single-quoted filter values and outside
/// brackets (a filter's dotted key is not a step).
fn split_outside_quotes(text: &str, sep: char) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped, mut depth) = (0, false, false, 0usize);
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '\'' {
            quoted = !quoted;
        } else if !quoted {
            match c {
                '[' => depth += 1,
                ']' => depth = depth.saturating_sub(1),
                _ if c == sep && depth == 0 => {
                    out.push(&text[start..i]);
                    start = i + c.len_utf8();
                }
                _ => {}
            }
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
                Tree::U64(u) => serde_json::json!(u),
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
        // A filter's key on an array of strings matches any of them.
        assert_eq!(
            find("name[given='B'].given", o),
            some(serde_json::json!("Ann"))
        );
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
            ("code.coding[='x']", "key must be a name or dotted names"),
            ("component[a..b='x']", "key must be a name or dotted names"),
            ("component[.a='x']", "key must be a name or dotted names"),
            ("component[a.='x']", "key must be a name or dotted names"),
            ("component[a.b-c='x']", "key must be a name or dotted names"),
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
            Some(Filter {
                key: vec!["url".into()],
                value: "a.b|c'd".into()
            })
        );
        assert_eq!(p.alternatives.len(), 1);
        assert_eq!(p.alternatives[0].len(), 2);
        // A dotted key stays inside its step.
        let p =
            FhirPath::parse("component[code.coding.code='8480-6'].valueQuantity.value").unwrap();
        assert_eq!(p.alternatives[0].len(), 3);
        assert_eq!(
            p.alternatives[0][0].filter,
            Some(Filter {
                key: vec!["code".into(), "coding".into(), "code".into()],
                value: "8480-6".into()
            })
        );
    }

    /// Two components, each with an array of codings; the one wanted is
    /// matched by its second coding.
    const BP: &str = r#"{
        "resourceType": "Observation",
        "component": [
            {"code": {"coding": [
                {"system": "http://snomed.info/sct", "code": "S9"},
                {"system": "http://loinc.org", "code": "8462-4"}]},
             "valueQuantity": {"value": 53}},
            {"code": {"coding": [
                {"system": "http://snomed.info/sct", "code": "S8"},
                {"system": "http://loinc.org", "code": "8480-6"}]},
             "valueQuantity": {"value": 100, "unit": "mm[Hg]"},
             "valueInteger": 7}
        ]
    }"#;

    #[test]
    fn dotted_filters_match_any_value_along_the_key() {
        let b = BP;
        let systolic = "component[code.coding.code='8480-6'].valueQuantity.value";
        assert_eq!(find(systolic, b), some(serde_json::json!(100)));
        assert_eq!(
            find(
                "component[code.coding.code='8462-4'].valueQuantity.value",
                b
            ),
            some(serde_json::json!(53))
        );
        // The match is the second coding of the second component, and other
        // paths through the same keys do not prune it away.
        assert_eq!(
            find(
                &format!(
                    "{systolic} | component.code.coding.code | component.code.coding[system='http://loinc.org'].code"
                ),
                b
            ),
            some(serde_json::json!(100))
        );
        assert_eq!(
            find(
                "component[code.coding.system='http://loinc.org'].valueQuantity.value",
                b
            ),
            some(serde_json::json!(53))
        );
        // A single object along the key is a one-element array.
        assert_eq!(
            find(
                "component[valueQuantity.unit='mm[Hg]'].valueQuantity.value",
                b
            ),
            some(serde_json::json!(100))
        );
        // A number is never the string, even one that reads the same.
        assert_eq!(
            find("component[valueQuantity.value='100'].valueInteger", b),
            Ok(None)
        );
        assert_eq!(
            find("component[valueInteger='7'].valueInteger", b),
            Ok(None)
        );
        // A key path ending on an object, or going on past a string.
        assert_eq!(
            find("component[code.coding='8480-6'].valueInteger", b),
            Ok(None)
        );
        assert_eq!(
            find("component[code.coding.code.x='8480-6'].valueInteger", b),
            Ok(None)
        );
        // A missing key, and no element with the value.
        assert_eq!(
            find("component[code.text='8480-6'].valueQuantity.value", b),
            Ok(None)
        );
        assert_eq!(
            find(
                "component[code.coding.code='0000-0'].valueQuantity.value",
                b
            ),
            Ok(None)
        );
    }

    /// The trie built from several paths keeps what each filter reads and
    /// no more elements than the filters can pick.
    #[test]
    fn pruning_keeps_what_dotted_filters_read() {
        let p =
            FhirPath::parse("component[code.coding.code='8480-6'].valueQuantity.value").unwrap();
        let mut keys = Keys::default();
        keys.insert(&p.alternatives[0]);
        let t = tree::parse(BP.as_bytes(), &keys).unwrap();
        let component = t.get("component").unwrap();
        let Tree::Array(kept) = component else {
            panic!("{component:?}")
        };
        // Only the matching component, with only its matching coding.
        assert_eq!(kept.len(), 1);
        let codings = kept[0].get("code").and_then(|c| c.get("coding")).unwrap();
        assert_eq!(
            codings,
            &Tree::Array(vec![Tree::Object(vec![(
                "code",
                Tree::Str("8480-6".into())
            )])])
        );
        assert_eq!(kept[0].get("valueInteger"), None);
    }
}
