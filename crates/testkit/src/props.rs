//! What the property tests of outside-input parsers share: the case count, arbitrary JSON, and
//! mutations of valid inputs (tokens, keys, settings).
//!
//! The case count comes from `PROPTEST_CASES` (`scripts/proptest-release` runs 10,000 in
//! release); without it, [`DEFAULT_CASES`] keeps the ordinary debug test run fast.

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Map, Value};

/// Cases per property when `PROPTEST_CASES` is not set.
pub const DEFAULT_CASES: u32 = 256;

/// The configuration of every property: `PROPTEST_CASES` cases (default [`DEFAULT_CASES`]),
/// and no regression files written into the source tree (a failure found by a property is
/// kept as a plain unit test instead).
pub fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Text an attacker might send: any characters, weighted towards the ones parsers split on.
pub fn hostile_text(max_len: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(hostile_char(), 0..=max_len).prop_map(|cs| cs.into_iter().collect())
}

/// One character: base64url letters, separators and quotes, controls, or any `char`.
pub fn hostile_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::sample::select(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                .chars()
                .collect::<Vec<_>>()
        ),
        2 => proptest::sample::select(
            ".=+/ :;,'\"{}[]*@#?%&\\<>\n\r\t\u{0}\u{7f}\u{a0}\u{200b}\u{fffd}"
                .chars()
                .collect::<Vec<_>>()
        ),
        1 => any::<char>(),
    ]
}

/// Any JSON value, nested up to a few levels, with the edge cases of numbers (huge, negative,
/// fractional) and strings (empty, long, Unicode).
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // NaN and infinities become null
        proptest::sample::select(vec![0.5, -1.0, 1e40, 1e308, -0.0, 9_007_199_254_740_993.0])
            .prop_map(Value::from),
        hostile_text(40).prop_map(Value::String),
        "\\PC{0,300}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..8)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// A JSON object of arbitrary members.
pub fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    proptest::collection::vec((key(), json_value()), 0..8)
        .prop_map(|members| members.into_iter().collect())
}

/// A member name: often one a parser looks for, else anything.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => proptest::sample::select(vec![
            "alg", "kid", "typ", "crit", "b64", "jku", "jwk", "x5c", "sub", "exp", "nbf", "iat",
            "iss", "aud", "keys", "kty", "crv", "x", "y", "n", "e", "use", "method",
            "validation", "sharedToken", "publicKey", "jwksUrl", "encoding", "allowedUrls",
            "contactIdentityKey", "clockSkewSeconds", "maxTokenLifetimeSeconds", "issuer",
            "audience", "type", "token", "conversationId", "afterSeq", "seq",
        ])
        .prop_map(str::to_owned),
        1 => hostile_text(12),
    ]
}

/// One edit of a valid input.
#[derive(Debug, Clone)]
pub enum Edit {
    Replace(usize, char),
    Insert(usize, char),
    Delete(usize),
    /// Keep only the first n characters.
    Truncate(usize),
    /// Repeat a stretch (start, length) right after itself.
    Duplicate(usize, usize),
    /// Swap two characters.
    Swap(usize, usize),
}

/// One to three edits; positions are taken modulo the input's length when applied.
pub fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        4 => (any::<usize>(), hostile_char()).prop_map(|(i, c)| Edit::Replace(i, c)),
        2 => (any::<usize>(), hostile_char()).prop_map(|(i, c)| Edit::Insert(i, c)),
        2 => any::<usize>().prop_map(Edit::Delete),
        1 => any::<usize>().prop_map(Edit::Truncate),
        1 => (any::<usize>(), 1usize..64).prop_map(|(i, n)| Edit::Duplicate(i, n)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Edit::Swap(i, j)),
    ];
    proptest::collection::vec(edit, 1..=3)
}

/// `input` with `edits` applied, character by character.
pub fn apply(input: &str, edits: &[Edit]) -> String {
    let mut cs: Vec<char> = input.chars().collect();
    for edit in edits {
        let at = |i: usize, extra: usize| i % (cs.len() + extra).max(1);
        match *edit {
            Edit::Replace(i, c) if !cs.is_empty() => {
                let i = at(i, 0);
                cs[i] = c;
            }
            Edit::Insert(i, c) => {
                let i = at(i, 1);
                cs.insert(i, c);
            }
            Edit::Delete(i) if !cs.is_empty() => {
                let i = at(i, 0);
                cs.remove(i);
            }
            Edit::Truncate(i) => {
                let i = at(i, 0);
                cs.truncate(i);
            }
            Edit::Duplicate(i, n) if !cs.is_empty() => {
                let start = at(i, 0);
                let end = (start + n).min(cs.len());
                let copy: Vec<char> = cs[start..end].to_vec();
                cs.splice(end..end, copy);
            }
            Edit::Swap(i, j) if !cs.is_empty() => {
                let (i, j) = (at(i, 0), at(j, 0));
                cs.swap(i, j);
            }
            _ => {}
        }
    }
    cs.into_iter().collect()
}

/// One edit of a JSON value: a member or element replaced by any value, removed, or added.
#[derive(Debug, Clone)]
pub enum JsonEdit {
    /// Replace the value at a path (indices taken modulo what exists) with another.
    Set(Vec<usize>, Value),
    Remove(Vec<usize>),
    /// Add a member (to an object) or an element (to an array) at a path.
    Add(Vec<usize>, String, Value),
}

/// One to three JSON edits.
pub fn json_edits() -> impl Strategy<Value = Vec<JsonEdit>> {
    let path = || proptest::collection::vec(any::<usize>(), 0..4);
    let edit = prop_oneof![
        3 => (path(), json_value()).prop_map(|(p, v)| JsonEdit::Set(p, v)),
        1 => path().prop_map(JsonEdit::Remove),
        1 => (path(), key(), json_value()).prop_map(|(p, k, v)| JsonEdit::Add(p, k, v)),
    ];
    proptest::collection::vec(edit, 1..=3)
}

/// `value` with `edits` applied. A path walks into objects (by member order) and arrays while
/// it can; the edit lands where it stops.
pub fn apply_json(value: &Value, edits: &[JsonEdit]) -> Value {
    let mut out = value.clone();
    for edit in edits {
        match edit {
            JsonEdit::Set(path, v) => {
                let (at, _) = pointer(&out, path);
                if let Some(target) = out.pointer_mut(&at) {
                    *target = v.clone();
                }
            }
            JsonEdit::Remove(path) => {
                let Some((last, parent)) = path.split_last() else {
                    continue;
                };
                let (at, complete) = pointer(&out, parent);
                match out.pointer_mut(&at) {
                    Some(Value::Object(map)) if complete && !map.is_empty() => {
                        let name = map.keys().nth(last % map.len()).cloned();
                        if let Some(name) = name {
                            map.remove(&name);
                        }
                    }
                    Some(Value::Array(items)) if complete && !items.is_empty() => {
                        let i = last % items.len();
                        items.remove(i);
                    }
                    _ => {}
                }
            }
            JsonEdit::Add(path, name, v) => {
                let (at, _) = pointer(&out, path);
                match out.pointer_mut(&at) {
                    Some(Value::Object(map)) => {
                        map.insert(name.clone(), v.clone());
                    }
                    Some(Value::Array(items)) => items.push(v.clone()),
                    _ => {}
                }
            }
        }
    }
    out
}

/// The JSON pointer (RFC 6901) a path leads to, and whether the whole path was followed.
fn pointer(mut value: &Value, path: &[usize]) -> (String, bool) {
    let mut at = String::new();
    for step in path {
        match value {
            Value::Object(map) if !map.is_empty() => {
                let Some((name, next)) = map.iter().nth(step % map.len()) else {
                    return (at, false);
                };
                at.push('/');
                at.push_str(&name.replace('~', "~0").replace('/', "~1"));
                value = next;
            }
            Value::Array(items) if !items.is_empty() => {
                let i = step % items.len();
                at.push_str(&format!("/{i}"));
                value = &items[i];
            }
            _ => return (at, false),
        }
    }
    (at, true)
}
