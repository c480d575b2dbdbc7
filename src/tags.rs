//! Request tags: `key=value` pairs a client attaches to a request (the `x-tollgate-tags`
//! header, or the body's `metadata` object as the OpenAI and Anthropic SDKs send it), stored
//! with its ledger row and reported on.
//!
//! Tags are bounded so a stranger cannot grow the ledger or the rollups with them: at most
//! [`MAX_TAGS`] per request, names of [`NAME_CHARS`] up to [`MAX_NAME_LEN`] bytes, values of
//! up to [`MAX_VALUE_LEN`] bytes without control characters.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const HEADER: &str = "x-tollgate-tags";
const HEADER_SOURCE: &str = "the x-tollgate-tags header";
/// The bounds of OpenAI's own `metadata`: 16 pairs, names up to 64 and values up to 512.
pub const MAX_TAGS: usize = 16;
pub const MAX_NAME_LEN: usize = 64;
pub const MAX_VALUE_LEN: usize = 512;
pub const NAME_CHARS: &str = "letters, digits, `_`, `-` and `.`";

/// A request's tags, sorted by name (so equal sets are equal and store identically).
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct Tags(BTreeMap<String, String>);

/// A `jsonb` column of tags, read as its text (`default_tags::text AS "default_tags!: Tags"`):
/// the query macros check it like any text column.
impl sqlx::Type<sqlx::Postgres> for Tags {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <String as sqlx::Type<sqlx::Postgres>>::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <String as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for Tags {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Tags, sqlx::error::BoxDynError> {
        let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
        Ok(serde_json::from_str(text)?)
    }
}

/// Why tags were refused, naming the tag and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagError {
    /// `the x-tollgate-tags header`, `metadata`, `the tag: filters`.
    pub source: &'static str,
    pub message: String,
}

impl fmt::Display for TagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source, self.message)
    }
}

impl std::error::Error for TagError {}

impl Tags {
    /// As a JSON object's text, to be stored (`$1::text::jsonb`).
    pub fn to_json_text(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".to_owned())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// [`Tags::from_header`] of a header's raw value, which must be text.
    pub fn from_header_bytes(value: &[u8]) -> Result<Tags, TagError> {
        let text = std::str::from_utf8(value).map_err(|_| TagError {
            source: HEADER_SOURCE,
            message: "is not text; send tags as `task=gsm8k,split=test`".into(),
        })?;
        Tags::from_header(text)
    }

    /// `task=gsm8k,split=test`: names and values split at the first `=`, pairs at `,`, spaces
    /// around either trimmed. A name given twice is refused (which one was meant?).
    pub fn from_header(text: &str) -> Result<Tags, TagError> {
        let source = HEADER_SOURCE;
        let mut tags = Tags::default();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, value)) = pair.split_once('=') else {
                return Err(TagError {
                    source,
                    message: format!(
                        "{:?} is not name=value; send tags as `task=gsm8k,split=test`",
                        shorten(pair)
                    ),
                });
            };
            tags.insert(source, name.trim(), value.trim())?;
        }
        Ok(tags)
    }

    /// The members of a request's `metadata` object: strings, numbers and booleans (as their
    /// JSON text). `null` is no tag; anything else is refused.
    pub fn from_metadata(metadata: &Value) -> Result<Tags, TagError> {
        let source = "metadata";
        let Value::Object(members) = metadata else {
            return if metadata.is_null() {
                Ok(Tags::default())
            } else {
                Err(TagError {
                    source,
                    message: "must be an object of names to string values".into(),
                })
            };
        };
        let mut tags = Tags::default();
        for (name, value) in members {
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null => continue,
                _ => {
                    return Err(TagError {
                        source,
                        message: format!(
                            "{:?} is an object or array; a tag's value is a string",
                            shorten(name)
                        ),
                    });
                }
            };
            tags.insert(source, name, &value)?;
        }
        Ok(tags)
    }

    /// Names and values an admin sends (`tag:task=gsm8k` filters), checked like a request's;
    /// `source` says where they came from in errors.
    pub fn from_map(
        source: &'static str,
        pairs: &BTreeMap<String, String>,
    ) -> Result<Tags, TagError> {
        let mut tags = Tags::default();
        for (name, value) in pairs {
            tags.insert(source, name, value)?;
        }
        Ok(tags)
    }

    fn insert(&mut self, source: &'static str, name: &str, value: &str) -> Result<(), TagError> {
        let refuse = |message: String| Err(TagError { source, message });
        if name.is_empty() {
            return refuse("a tag has no name; send `name=value`".into());
        }
        if !is_name(name) {
            return refuse(format!(
                "tag name {:?} must be 1 to {MAX_NAME_LEN} {NAME_CHARS}",
                shorten(name)
            ));
        }
        if value.is_empty() {
            return refuse(format!("tag {name:?} has an empty value"));
        }
        if value.len() > MAX_VALUE_LEN || value.chars().any(char::is_control) {
            return refuse(format!(
                "tag {name:?} must have a value of at most {MAX_VALUE_LEN} bytes with no control characters"
            ));
        }
        if self.0.contains_key(name) {
            return refuse(format!("tag {name:?} is given twice"));
        }
        if self.0.len() >= MAX_TAGS {
            return refuse(format!("more than {MAX_TAGS} tags"));
        }
        self.0.insert(name.to_owned(), value.to_owned());
        Ok(())
    }

    /// `self` with `over`'s tags on top (a name in both takes `over`'s value).
    pub fn merged(&self, over: &Tags) -> Tags {
        let mut out = self.clone();
        for (k, v) in &over.0 {
            out.0.insert(k.clone(), v.clone());
        }
        out
    }

    /// The request's tags: `metadata`'s, with the header's on top; refused if more than
    /// [`MAX_TAGS`] remain.
    pub fn for_request(metadata: &Tags, header: &Tags) -> Result<Tags, TagError> {
        let tags = metadata.merged(header);
        if tags.len() > MAX_TAGS {
            return Err(TagError {
                source: "the request's tags",
                message: format!(
                    "{} tags in metadata and the header together; at most {MAX_TAGS}",
                    tags.len()
                ),
            });
        }
        Ok(tags)
    }
}

/// Whether `name` is a valid tag name.
pub fn is_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.bytes().all(name_byte)
}

fn name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// What an error message quotes of something a client sent: at most 64 characters.
fn shorten(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_header_lists_pairs() {
        let tags = Tags::from_header(" task=gsm8k, split = test,seed=3,").unwrap();
        assert_eq!(
            tags.iter().collect::<Vec<_>>(),
            vec![("seed", "3"), ("split", "test"), ("task", "gsm8k")]
        );
        assert_eq!(
            Tags::from_header("url=a=b").unwrap().get("url"),
            Some("a=b")
        );
        assert!(Tags::from_header("").unwrap().is_empty());
        assert_eq!(
            Tags::from_header_bytes("lang=français".as_bytes())
                .unwrap()
                .get("lang"),
            Some("français")
        );
        assert_eq!(
            Tags::from_header_bytes(b"task=\xff")
                .unwrap_err()
                .to_string(),
            "the x-tollgate-tags header: is not text; send tags as `task=gsm8k,split=test`"
        );
    }

    #[test]
    fn bad_tags_are_named() {
        let e = Tags::from_header("task").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the x-tollgate-tags header: \"task\" is not name=value; send tags as `task=gsm8k,split=test`"
        );
        let e = Tags::from_header("ta sk=1").unwrap_err();
        assert!(e.message.contains("tag name \"ta sk\""), "{e}");
        let e = Tags::from_header("task=").unwrap_err();
        assert_eq!(e.message, "tag \"task\" has an empty value");
        let e = Tags::from_header("task=a,task=b").unwrap_err();
        assert_eq!(e.message, "tag \"task\" is given twice");
        let long = "v".repeat(MAX_VALUE_LEN + 1);
        assert!(Tags::from_header(&format!("task={long}")).is_err());
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}=x")).collect();
        assert_eq!(
            Tags::from_header(&many.join(",")).unwrap_err().message,
            "more than 16 tags"
        );
    }

    #[test]
    fn metadata_members_are_tags() {
        let tags = Tags::from_metadata(&json!({"task": "gsm8k", "seed": 3, "ok": true, "x": null}))
            .unwrap();
        assert_eq!(tags.get("seed"), Some("3"));
        assert_eq!(tags.get("ok"), Some("true"));
        assert_eq!(tags.len(), 3);
        let e = Tags::from_metadata(&json!({"task": {"a": 1}})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "metadata: \"task\" is an object or array; a tag's value is a string"
        );
        assert!(Tags::from_metadata(&json!("x")).is_err());
        assert!(Tags::from_metadata(&Value::Null).unwrap().is_empty());
        let e = Tags::from_metadata(&json!({"note": "a\nb"})).unwrap_err();
        assert!(e.message.contains("control characters"), "{e}");
    }

    #[test]
    fn the_header_wins_over_metadata_and_the_total_is_bounded() {
        let metadata = Tags::from_metadata(&json!({"task": "meta", "split": "dev"})).unwrap();
        let header = Tags::from_header("split=test").unwrap();
        let tags = Tags::for_request(&metadata, &header).unwrap();
        assert_eq!(
            tags.iter().collect::<Vec<_>>(),
            vec![("split", "test"), ("task", "meta")]
        );
        let many = Tags::from_header(
            &(0..10)
                .map(|i| format!("a{i}=x"))
                .collect::<Vec<_>>()
                .join(","),
        )
        .unwrap();
        let more = Tags::from_header(
            &(0..10)
                .map(|i| format!("b{i}=x"))
                .collect::<Vec<_>>()
                .join(","),
        )
        .unwrap();
        let e = Tags::for_request(&many, &more).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the request's tags: 20 tags in metadata and the header together; at most 16"
        );
    }

    proptest::proptest! {
        /// Whatever a client sends in the header is parsed or refused, never a panic; a set
        /// of valid tags written as a header reads back the same.
        #[test]
        fn any_header_is_parsed_or_refused(text in "\\PC{0,300}") {
            let _ = Tags::from_header(&text);
        }

        #[test]
        fn valid_tags_round_trip_through_the_header(
            pairs in proptest::collection::btree_map("[A-Za-z0-9_.-]{1,64}", "[a-z0-9=:/ ]{0,40}[a-z0-9]", 0..=16)
        ) {
            let header: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let tags = Tags::from_header(&header.join(",")).unwrap();
            let want: Vec<(String, String)> =
                pairs.iter().map(|(k, v)| (k.clone(), v.trim().to_owned())).collect();
            let got: Vec<(String, String)> =
                tags.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
