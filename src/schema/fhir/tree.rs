//! The part of a resource the columns' paths can reach, parsed in one pass.
//!
//! The paths of a source are merged into a trie of keys ([`Keys`]). The
//! resource is read once by serde_json, driven by that trie: keys on no
//! path are skipped without building anything (serde_json's iterative
//! skip: no recursion, no allocation), strings are borrowed from the
//! payload unless they hold escapes, and of an array only the elements a
//! path can pick are kept (the first non-null one passing each filter used
//! at that step, see `path`). A filter's key is in the trie too: along
//! `[a.b.c='v']` an array at `a` keeps its first element whose `b.c`
//! reaches `v`, at `b` its first whose `c` does, at `c` its first `v`, so
//! an element passes the pruned filter exactly when it passes the whole
//! one (the match may be any element, not only the first). What is built
//! is therefore bounded by the paths, not by the resource; serde_json's
//! recursion limit (128) bounds the nesting of what is kept.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::path::{Filter, Step};

/// The keys of every path, as a trie; each node also lists the filters
/// an array there is pruned by: those its paths apply there (`None`: no
/// filter) and, on a filter's key, the rest of that key with its value.
#[derive(Debug, Default, Clone)]
pub struct Keys {
    children: Vec<(String, Keys)>,
    filters: Vec<Option<Filter>>,
}

impl Keys {
    /// Adds one alternative of a path, with the keys its filters read.
    pub fn insert(&mut self, steps: &[Step]) {
        let mut node = self;
        for step in steps {
            node = node.child_mut(&step.name);
            node.prune_by(step.filter.clone());
            if let Some(f) = &step.filter {
                // Below the filtered node, each key of the filter keeps
                // the elements from which the rest of the key can match.
                let mut at = &mut *node;
                for (i, name) in f.key.iter().enumerate() {
                    at = at.child_mut(name);
                    at.prune_by(Some(Filter {
                        key: f.key[i + 1..].to_vec(),
                        value: f.value.clone(),
                    }));
                }
            }
        }
    }

    fn child_mut(&mut self, name: &str) -> &mut Keys {
        let at = match self.children.iter().position(|(k, _)| k == name) {
            Some(i) => i,
            None => {
                self.children.push((name.to_string(), Keys::default()));
                self.children.len() - 1
            }
        };
        &mut self.children[at].1
    }

    fn prune_by(&mut self, filter: Option<Filter>) {
        if !self.filters.contains(&filter) {
            self.filters.push(filter);
        }
    }

    fn child(&self, key: &str) -> Option<(&str, &Keys)> {
        self.children
            .iter()
            .find(|(k, _)| k == key)
            .map(|(k, n)| (k.as_str(), n))
    }
}

/// A pruned JSON value. Object keys borrow from [`Keys`], strings from the
/// payload where they can.
#[derive(Debug, Clone, PartialEq)]
pub enum Tree<'v> {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(Cow<'v, str>),
    Array(Vec<Tree<'v>>),
    Object(Vec<(&'v str, Tree<'v>)>),
}

impl<'v> Tree<'v> {
    /// The value of `key` (the first, should a resource repeat a key).
    pub fn get(&self, key: &str) -> Option<&Tree<'v>> {
        match self {
            Tree::Object(entries) => entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Tree::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Whether any value reached from this along the filter's key is the
    /// filter's string (no filter: true). See `path` for the rule.
    pub fn passes(&self, filter: Option<&Filter>) -> bool {
        filter.is_none_or(|f| self.reaches(&f.key, &f.value))
    }

    /// Whether following `key` from here reaches the string `want`; a step
    /// on an array tries every element (nulls and scalars never match).
    fn reaches(&self, key: &[String], want: &str) -> bool {
        let Some((first, rest)) = key.split_first() else {
            return self.as_str() == Some(want);
        };
        match self.get(first) {
            Some(Tree::Array(items)) => items.iter().any(|e| e.reaches(rest, want)),
            Some(v) => v.reaches(rest, want),
            None => false,
        }
    }
}

/// Parses `payload` keeping only what `keys` can reach.
pub fn parse<'v>(payload: &'v [u8], keys: &'v Keys) -> Result<Tree<'v>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(payload);
    let tree = Prune(keys).deserialize(&mut de)?;
    de.end()?;
    Ok(tree)
}

struct Prune<'v>(&'v Keys);

impl<'de: 'v, 'v> DeserializeSeed<'de> for Prune<'v> {
    type Value = Tree<'v>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Tree<'v>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de: 'v, 'v> Visitor<'de> for Prune<'v> {
    type Value = Tree<'v>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Tree<'v>, E> {
        Ok(Tree::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Tree<'v>, E> {
        Ok(Tree::I64(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Tree<'v>, E> {
        Ok(Tree::U64(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Tree<'v>, E> {
        Ok(Tree::F64(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Tree<'v>, E> {
        Ok(Tree::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Tree<'v>, E> {
        Ok(Tree::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_unit<E>(self) -> Result<Tree<'v>, E> {
        Ok(Tree::Null)
    }
    fn visit_none<E>(self) -> Result<Tree<'v>, E> {
        Ok(Tree::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree<'v>, A::Error> {
        let filters = &self.0.filters;
        let mut found = vec![false; filters.len()];
        let mut kept = Vec::new();
        loop {
            if found.iter().all(|&f| f) {
                // Nothing later can be picked: skip the rest unbuilt.
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                break;
            }
            let Some(e) = seq.next_element_seed(Prune(self.0))? else {
                break;
            };
            if matches!(e, Tree::Null) {
                continue;
            }
            let mut keep = false;
            for (f, done) in filters.iter().zip(found.iter_mut()) {
                if !*done && e.passes(f.as_ref()) {
                    *done = true;
                    keep = true;
                }
            }
            if keep {
                kept.reserve_exact(1);
                kept.push(e);
            }
        }
        Ok(Tree::Array(kept))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree<'v>, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key_seed(Key(self.0))? {
            match key {
                Some((name, child)) => {
                    let v = map.next_value_seed(Prune(child))?;
                    entries.reserve_exact(1);
                    entries.push((name, v));
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Tree::Object(entries))
    }
}

/// A key, looked up in the trie without being copied.
struct Key<'v>(&'v Keys);

impl<'de, 'v> DeserializeSeed<'de> for Key<'v> {
    type Value = Option<(&'v str, &'v Keys)>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, 'v> Visitor<'de> for Key<'v> {
    type Value = Option<(&'v str, &'v Keys)>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.child(v))
    }
}
