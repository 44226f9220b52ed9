//! One pass over the JSON body that validates its structure (object at the top, nesting depth,
//! duplicate keys) and picks out the values of the configured paths, borrowing strings from
//! the body where they have no escapes. Nested objects flatten by path: the column with path
//! `device.id` takes `{"device": {"id": ...}}`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use smallvec::SmallVec;

use crate::reason::Reason;

/// What was found at a configured path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Found<'de> {
    Absent,
    Null,
    Str(Cow<'de, str>),
    Int(i128),
    /// A number with a fraction or an exponent (or beyond 64-bit integers), as written in the
    /// body: `1.10` stays `1.10` (its f64, 1.1, would collide with `"1.1"` as a version).
    Float(Cow<'de, str>),
    /// A bool, object or array where a scalar was expected, or a scalar where the path needs
    /// an object to descend into: named for the error message.
    Other(&'static str),
}

pub(crate) type Values<'de> = SmallVec<[Found<'de>; 8]>;

/// Scans `body`. `paths[i]` holds the segments of column `i`'s path (empty: not from the body).
pub(crate) fn scan<'de>(
    body: &'de str,
    paths: &[Vec<String>],
    max_depth: usize,
) -> Result<Values<'de>, Reason> {
    let found = scan_with(body, paths, max_depth, false)?;
    if found.iter().any(|f| matches!(f, Found::Float(_))) {
        // A number with a fraction keeps its literal text (`1.10` is not `1.1`): read the body,
        // now known to be valid, again, taking the columns' values as raw text (`Leaf`). Only
        // then, so that which problem an invalid body is rejected for never changes.
        return scan_with(body, paths, max_depth, true);
    }
    Ok(found)
}

fn scan_with<'de>(
    body: &'de str,
    paths: &[Vec<String>],
    max_depth: usize,
    literal: bool,
) -> Result<Values<'de>, Reason> {
    let mut state = State {
        paths,
        max_depth,
        literal,
        found: (0..paths.len()).map(|_| Found::Absent).collect(),
        keys: SmallVec::new(),
        failure: None,
    };
    let all =
        paths.iter().enumerate().filter(|(_, p)| !p.is_empty()).fold(0u64, |m, (i, _)| m | 1 << i);
    let mut de = serde_json::Deserializer::from_str(body);
    let top = Node { state: &mut state, depth: 1, columns: all, level: 0, top: true };
    let outcome = top.deserialize(&mut de).and_then(|()| de.end());
    match (outcome, state.failure) {
        (Ok(()), _) => Ok(state.found),
        (Err(_), Some(reason)) => Err(reason),
        (Err(_), None) => Err(Reason::BodyNotJson),
    }
}

struct State<'p, 'de> {
    paths: &'p [Vec<String>],
    max_depth: usize,
    /// Whether the values at the end of a column's path are read as raw text (`Leaf`).
    literal: bool,
    found: Values<'de>,
    /// Keys of the objects being walked, innermost last, to find duplicates (inline for the
    /// small objects of real events: no allocation per message).
    keys: SmallVec<[Cow<'de, str>; 16]>,
    failure: Option<Reason>,
}

impl<'de> State<'_, 'de> {
    fn fail<E: de::Error>(&mut self, reason: Reason) -> E {
        self.failure = Some(reason);
        E::custom(reason.code())
    }

    /// Records a non-object value for every column still matching at this point.
    fn record(&mut self, columns: u64, level: usize, value: Found<'de>) {
        for i in bits(columns) {
            self.found[i] = if self.paths[i].len() == level {
                value.clone()
            } else {
                match value {
                    Found::Null => Found::Absent,
                    Found::Str(_) => Found::Other("string"),
                    Found::Int(_) | Found::Float(_) => Found::Other("number"),
                    ref other => other.clone(),
                }
            };
        }
    }
}

/// The set bits of `mask`, lowest first (one step per set bit: this runs for every key).
fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            i
        })
    })
}

/// A value at some position: `columns` are the columns whose first `level` path segments led here.
struct Node<'s, 'p, 'de> {
    state: &'s mut State<'p, 'de>,
    depth: usize,
    columns: u64,
    level: usize,
    top: bool,
}

impl<'de> DeserializeSeed<'de> for Node<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Node<'_, '_, 'de> {
    fn scalar<E: de::Error>(self, value: Found<'de>) -> Result<(), E> {
        if self.top {
            return Err(self.state.fail(Reason::BodyNotObject));
        }
        self.state.record(self.columns, self.level, value);
        Ok(())
    }

    fn enter<E: de::Error>(&mut self) -> Result<(), E> {
        if self.depth > self.state.max_depth {
            return Err(self.state.fail(Reason::NestingTooDeep));
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for Node<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar(Found::Other("boolean"))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.scalar(Found::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.scalar(Found::Int(v.into()))
    }
    /// Without `literal`, a marker that the body must be read again with it; with it, only
    /// what `Leaf` did not keep as written: `-0` and integers beyond 64 bits.
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.scalar(Found::Float(Cow::Owned(format!("{v}"))))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        self.scalar(Found::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.scalar(Found::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar(Found::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        if self.top {
            return Err(self.state.fail(Reason::BodyNotObject));
        }
        self.enter()?;
        self.state.record(self.columns, self.level, Found::Other("array"));
        while seq
            .next_element_seed(Node {
                state: self.state,
                depth: self.depth + 1,
                columns: 0,
                level: 0,
                top: false,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.enter()?;
        let level = self.level;
        let paths = self.state.paths;
        // Columns whose path ends here see an object where they wanted a scalar.
        let ends_here =
            bits(self.columns).filter(|&i| paths[i].len() == level).fold(0, |m, i| m | 1 << i);
        self.state.record(ends_here, level, Found::Other("object"));
        let descending = self.columns & !ends_here;

        let first_key = self.state.keys.len();
        // Linear search for the small objects of real events; a hash set once an object grows
        // past 32 keys, so a 256 KiB object of distinct keys stays linear time.
        let mut large: Option<rustc_hash::FxHashSet<Cow<'de, str>>> = None;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let seen = &self.state.keys[first_key..];
            let duplicate = match &mut large {
                Some(set) => !set.insert(key.clone()),
                None if seen.len() >= 32 => {
                    let set = large.insert(seen.iter().cloned().collect());
                    !set.insert(key.clone())
                }
                None => seen.contains(&key),
            };
            if duplicate {
                self.state.keys.truncate(first_key);
                return Err(self.state.fail(Reason::DuplicateKey));
            }
            let next =
                bits(descending).filter(|&i| paths[i][level] == key).fold(0, |m, i| m | 1 << i);
            let leaf = self.state.literal && bits(next).any(|i| paths[i].len() == level + 1);
            self.state.keys.push(key);
            let node = Node {
                state: self.state,
                depth: self.depth + 1,
                columns: next,
                level: level + 1,
                top: false,
            };
            if leaf {
                map.next_value_seed(Leaf(node))?;
            } else {
                map.next_value_seed(node)?;
            }
        }
        self.state.keys.truncate(first_key);
        Ok(())
    }
}

/// The value at the end of a column's path: read as raw text first, so that a number keeps
/// its literal (`Found::Float`); anything else is then read from that text as any value is.
struct Leaf<'s, 'p, 'de>(Node<'s, 'p, 'de>);

impl<'de> DeserializeSeed<'de> for Leaf<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let text = <&'de RawValue>::deserialize(d)?.get();
        let number = text.starts_with(|c: char| c == '-' || c.is_ascii_digit());
        if number && text.contains(['.', 'e', 'E']) {
            // The raw reader does not check a number's range: serde_json's f64 does (`1e400`
            // is not JSON to it), as for every other number of the body.
            serde_json::from_str::<f64>(text).map_err(de::Error::custom)?;
            return self.0.scalar(Found::Float(Cow::Borrowed(text)));
        }
        let mut inner = serde_json::Deserializer::from_str(text);
        self.0.deserialize(&mut inner).map_err(de::Error::custom)
    }
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(body: &str, path: &[&str]) -> Result<Found<'static>, Reason> {
        let paths = vec![path.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
        let body: &'static str = Box::leak(body.to_owned().into_boxed_str());
        scan(body, &paths, 32).map(|mut found| found.remove(0))
    }

    #[test]
    fn numbers_at_a_path_keep_their_literal_text() {
        let float = |s: &'static str| Ok(Found::Float(Cow::Borrowed(s)));
        assert_eq!(one(r#"{"v": 1.10}"#, &["v"]), float("1.10"));
        assert_eq!(one(r#"{"a": {"v": 2.50}, "b": [1.5]}"#, &["a", "v"]), float("2.50"));
        assert_eq!(one(r#"{"v": 1e2}"#, &["v"]), float("1e2"));
        assert_eq!(one(r#"{"v": -0}"#, &["v"]), Ok(Found::Float(Cow::Owned("-0".into()))));
        assert_eq!(one(r#"{"v": 7, "w": 0.5}"#, &["v"]), Ok(Found::Int(7)));
        assert_eq!(
            one(r#"{"v": "x\n", "w": 0.5}"#, &["v"]),
            Ok(Found::Str(Cow::Owned("x\n".into())))
        );
        // Invalid bodies are rejected for the same reason as without literals.
        assert_eq!(one(r#"{"v": 1e400}"#, &["v"]), Err(Reason::BodyNotJson));
        assert_eq!(one(r#"{"v": {"a": 1, "a": 2}, "w": 1.5}"#, &["v"]), Err(Reason::DuplicateKey));
        let deep = format!(r#"{{"v": {}1.5{}}}"#, "[".repeat(40), "]".repeat(40));
        assert_eq!(one(&deep, &["v"]), Err(Reason::NestingTooDeep));
    }
}
