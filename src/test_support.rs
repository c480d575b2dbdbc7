//! What the property tests share: their case budget and generators of JSON.
//!
//! Every property test runs as an ordinary `cargo test` test, so CI runs it, with a case count
//! small enough that the whole set stays well under a minute in a debug build (where integer
//! overflow panics). `PROPTEST_CASES=100000 cargo test` runs each one longer.

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::Value;

/// `cases` cases, unless `PROPTEST_CASES` is set.
pub(crate) fn cases(cases: u32) -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

/// JSON number text an upstream might send: in and beyond `u64`, negative, fractional, with
/// exponents.
pub(crate) fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        Just(u64::MAX.to_string()),
        Just("18446744073709551616".to_owned()),
        "[1-9][0-9]{19,40}",
        any::<i64>().prop_map(|n| n.to_string()),
        (0.0f64..1e30).prop_map(|f| format!("{f}")),
        (-1e6f64..0.0).prop_map(|f| format!("{f}")),
        "-?(0|[1-9][0-9]{0,2})(\\.[0-9]{1,3})?[eE][+-]?[0-9]{1,3}",
        Just("-0".to_owned()),
        Just("0.0".to_owned()),
    ]
}

/// Any JSON value, a few levels deep, as text. Numbers come from [`number_text`], so some of
/// them are beyond what `serde_json` turns into an integer.
pub(crate) fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        number_text(),
        any::<String>().prop_map(|s| Value::String(s).to_string()),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|items| format!("[{}]", items.join(","))),
            prop::collection::vec((any::<String>(), inner), 0..4).prop_map(|members| {
                let members: Vec<String> = members
                    .into_iter()
                    .map(|(k, v)| format!("{}:{v}", Value::String(k)))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

/// A token count as an upstream might write it, with what the gateway must read from it.
#[derive(Debug, Clone)]
pub(crate) enum Count {
    /// Any `u64`, written as an integer.
    Int(u64),
    /// An integer beyond `u64`: read as `u64::MAX`.
    Beyond(String),
    /// A non-negative float, written as Rust prints it (a whole one without a point): read
    /// rounded up, saturating.
    Float(f64),
    /// Not a count (negative, beyond a float's range, a string, a bool, an object): the
    /// report cannot be read.
    Unreadable(String),
    /// `null`: no count.
    Null,
    /// The member is absent: no count.
    Absent,
}

impl Count {
    /// The JSON text of the value, `None` when the member is absent.
    pub(crate) fn json(&self) -> Option<String> {
        match self {
            Count::Int(n) => Some(n.to_string()),
            Count::Beyond(text) | Count::Unreadable(text) => Some(text.clone()),
            Count::Float(f) => Some(format!("{f}")),
            Count::Null => Some("null".to_owned()),
            Count::Absent => None,
        }
    }

    /// What the gateway reads: `Err` when the report is unreadable, `Ok(None)` for no count.
    pub(crate) fn read(&self) -> Result<Option<u64>, ()> {
        match self {
            Count::Int(n) => Ok(Some(*n)),
            Count::Beyond(_) => Ok(Some(u64::MAX)),
            Count::Float(f) => {
                let text = format!("{f}");
                Ok(Some(if text.contains('.') {
                    // A fraction (below 2^53 when Rust prints one): rounded up.
                    u64::try_from(f.ceil() as u128).unwrap()
                } else {
                    // Printed as a whole number, which is what the parser reads.
                    text.parse::<u128>()
                        .map_or(u64::MAX, |n| u64::try_from(n).unwrap_or(u64::MAX))
                }))
            }
            Count::Unreadable(_) => Err(()),
            Count::Null | Count::Absent => Ok(None),
        }
    }

    /// `"name":value` for an object, or nothing when absent.
    pub(crate) fn member(&self, name: &str) -> Option<String> {
        self.json().map(|value| format!("\"{name}\":{value}"))
    }
}

/// Mostly readable counts, with every kind of unreadable one now and then.
pub(crate) fn count() -> impl Strategy<Value = Count> {
    prop_oneof![
        4 => any::<u64>().prop_map(Count::Int),
        2 => (0u64..100_000).prop_map(Count::Int),
        2 => Just(Count::Int(u64::MAX)),
        1 => Just(Count::Beyond("18446744073709551616".to_owned())),
        1 => "[1-9][0-9]{20,40}".prop_map(Count::Beyond),
        2 => (0.0f64..1e22).prop_map(Count::Float),
        1 => (0.0f64..10.0).prop_map(Count::Float),
        1 => "-[1-9][0-9]{0,20}".prop_map(Count::Unreadable),
        1 => (-1e6f64..-1e-9).prop_map(|f| Count::Unreadable(format!("{f}"))),
        1 => Just(Count::Unreadable("1e400".to_owned())),
        1 => Just(Count::Unreadable("\"12\"".to_owned())),
        1 => Just(Count::Unreadable("true".to_owned())),
        1 => Just(Count::Unreadable("{}".to_owned())),
        2 => Just(Count::Null),
        3 => Just(Count::Absent),
    ]
}

/// `{...}` of the members that are present.
pub(crate) fn object(members: impl IntoIterator<Item = Option<String>>) -> String {
    let members: Vec<String> = members.into_iter().flatten().collect();
    format!("{{{}}}", members.join(","))
}
