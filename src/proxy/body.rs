//! Reading the request body: the size limit, the few fields governance needs, and the
//! minimal rewrite (upstream model name, usage reporting for streams). Everything else is
//! forwarded as the client sent it.

use std::borrow::Cow;

use axum::body::Body;
use bytes::Bytes;
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::error::ApiError;

pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        if too_large {
            ApiError::BodyTooLarge { limit }
        } else {
            // The body stopped arriving: the client hung up in the middle of sending it.
            ApiError::ClientDisconnected
        }
    })
}

/// The fields of a chat request that governance reads.
#[derive(Debug, Deserialize)]
pub struct ChatPeek<'a> {
    #[serde(borrow)]
    pub model: Option<Cow<'a, str>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptionsPeek>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    /// The Responses API's output cap.
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    /// Read for the request's tags; forwarded untouched.
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub struct StreamOptionsPeek {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

impl ChatPeek<'_> {
    pub fn parse(body: &[u8]) -> Result<ChatPeek<'_>, ApiError> {
        let peek: ChatPeek = serde_json::from_slice(body).map_err(|e| ApiError::MalformedBody {
            message: format!("not a valid JSON chat request ({e})"),
            param: None,
        })?;
        match &peek.model {
            Some(m) if !m.is_empty() => Ok(peek),
            _ => Err(ApiError::MalformedBody {
                message: "`model` is required".into(),
                param: Some("model"),
            }),
        }
    }

    pub fn model(&self) -> &str {
        self.model.as_deref().unwrap_or_default()
    }

    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    pub fn client_wants_usage(&self) -> bool {
        self.stream_options.as_ref().and_then(|o| o.include_usage) == Some(true)
    }
}

/// The top-level members of a JSON object, in order, values untouched.
struct TopLevel<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = TopLevel<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some((k, v)) = map.next_entry::<Cow<'de, str>, &'de RawValue>()? {
                    members.push((k, v));
                }
                Ok(TopLevel(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// Rewrites only what must change: the value of `model` (when the upstream name differs) and
/// `stream_options.include_usage` (so a stream reports its usage), added where missing. Every
/// other byte of the body, keys, whitespace and the client's other stream options included,
/// is copied as the client sent it.
pub fn rewrite(
    body: &[u8],
    model: Option<&str>,
    force_include_usage: bool,
) -> Result<Bytes, ApiError> {
    let malformed = |e: serde_json::Error| ApiError::MalformedBody {
        message: e.to_string(),
        param: None,
    };
    let TopLevel(members) = serde_json::from_slice(body).map_err(malformed)?;
    let model = match model {
        Some(model) => Some(serde_json::to_vec(model).map_err(malformed)?),
        None => None,
    };
    let rewritten = splice(
        body,
        &members,
        |name, value| match name {
            "model" => model.clone(),
            "stream_options" if force_include_usage => Some(with_include_usage(value.get())),
            _ => None,
        },
        force_include_usage.then_some((&b"stream_options"[..], &br#"{"include_usage":true}"#[..])),
    );
    // Reached only if serde_json stopped borrowing values from the body it parsed.
    rewritten
        .map(Bytes::from)
        .ok_or_else(|| ApiError::MalformedBody {
            message: "the body could not be rewritten".into(),
            param: None,
        })
}

/// A `stream_options` value with `include_usage` set to true: the client's object with that
/// one member changed or added, or `{"include_usage":true}` in place of a value that is not
/// an object.
fn with_include_usage(options: &str) -> Vec<u8> {
    const FRESH: &[u8] = br#"{"include_usage":true}"#;
    let Ok(TopLevel(members)) = serde_json::from_str(options) else {
        return FRESH.to_vec();
    };
    splice(
        options.as_bytes(),
        &members,
        |name, _| (name == "include_usage").then(|| b"true".to_vec()),
        Some((b"include_usage", b"true")),
    )
    .unwrap_or_else(|| FRESH.to_vec())
}

/// `object` (the JSON text `members` were parsed from) with the value of each member that
/// `replace` has a replacement for swapped, and, if no member has `append`'s name, that member
/// added before the closing brace. `None` if a value does not lie in `object`.
fn splice(
    object: &[u8],
    members: &[(Cow<'_, str>, &RawValue)],
    replace: impl Fn(&str, &RawValue) -> Option<Vec<u8>>,
    append: Option<(&[u8], &[u8])>,
) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(object.len().saturating_add(48));
    // Bytes of `object` already in `out`: members come in text order, so values do too.
    let mut copied = 0;
    for (name, value) in members {
        let Some(replacement) = replace(name, value) else {
            continue;
        };
        let at = position_in(object, value.get().as_bytes())?;
        out.extend_from_slice(object.get(copied..at.start)?);
        out.extend_from_slice(&replacement);
        copied = at.end;
    }
    if let Some((name, value)) = append
        && !members.iter().any(|(n, _)| n.as_bytes() == name)
    {
        // An object ends with its closing brace, then at most whitespace.
        let close = object.iter().rposition(|b| *b == b'}')?;
        out.extend_from_slice(object.get(copied..close)?);
        if !members.is_empty() {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(name);
        out.extend_from_slice(b"\":");
        out.extend_from_slice(value);
        copied = close;
    }
    out.extend_from_slice(object.get(copied..)?);
    Some(out)
}

/// Where `part`, a slice borrowed from `whole`, sits in it.
fn position_in(whole: &[u8], part: &[u8]) -> Option<std::ops::Range<usize>> {
    let start = part.as_ptr().addr().checked_sub(whole.as_ptr().addr())?;
    let end = start.checked_add(part.len())?;
    (end <= whole.len()).then_some(start..end)
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn peek_reads_governance_fields() {
        let body = br#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true},"max_tokens":7}"#;
        let peek = ChatPeek::parse(body).unwrap();
        assert_eq!(peek.model(), "m");
        assert!(peek.is_stream());
        assert!(peek.client_wants_usage());
    }

    #[test]
    fn peek_refuses_bad_bodies() {
        for body in [
            &b"{"[..],
            b"[]",
            b"{\"messages\":[]}",
            b"{\"model\":\"\"}",
            b"{\"model\":3}",
        ] {
            assert!(
                matches!(ChatPeek::parse(body), Err(ApiError::MalformedBody { .. })),
                "{body:?}"
            );
        }
    }

    #[test]
    fn rewrite_keeps_other_members_byte_for_byte() {
        let body = br#"{"model":"public","messages":[{"role":"user","content":"h\u00e9 \"x\""}],"temperature":0.70,"stream":true}"#;
        let out = rewrite(body, Some("upstream"), true).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"model":"upstream","messages":[{"role":"user","content":"h\u00e9 \"x\""}],"temperature":0.70,"stream":true,"stream_options":{"include_usage":true}}"#
        );
    }

    #[test]
    fn rewrite_keeps_keys_and_whitespace_as_sent() {
        let body =
            b"{ \"m\\u006fdel\" : \"public\" ,\n  \"model\":\"public\",\"\\u0078\": [1 , 2] }\n";
        let out = rewrite(body, Some("up"), true).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "{ \"m\\u006fdel\" : \"up\" ,\n  \"model\":\"up\",\"\\u0078\": [1 , 2] ,\"stream_options\":{\"include_usage\":true}}\n"
        );
        assert_eq!(
            &rewrite(b"{}", None, true).unwrap()[..],
            br#"{"stream_options":{"include_usage":true}}"#
        );
        assert_eq!(&rewrite(b" { } ", Some("x"), false).unwrap()[..], b" { } ");
        // The client's other stream options keep their bytes, even numbers no float holds.
        let body = br#"{"stream_options":{"include_usage":false, "x":36030001677460314000}}"#;
        assert_eq!(
            &rewrite(body, None, true).unwrap()[..],
            br#"{"stream_options":{"include_usage":true, "x":36030001677460314000}}"#
        );
        let body = br#"{"stream_options":null}"#;
        assert_eq!(
            &rewrite(body, None, true).unwrap()[..],
            br#"{"stream_options":{"include_usage":true}}"#
        );
    }

    #[test]
    fn rewrite_merges_existing_stream_options() {
        let body = br#"{"model":"m","stream_options":{"include_usage":false,"x":1}}"#;
        let out = rewrite(body, None, true).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["stream_options"]["x"], 1);
        assert_eq!(v["model"], "m");
    }
}
