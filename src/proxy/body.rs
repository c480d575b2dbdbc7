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

/// Rewrites only what must change: `model` (when the upstream name differs) and
/// `stream_options.include_usage` (so a stream reports its usage). Other members keep their
/// order and their exact bytes.
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
    let mut out = Vec::with_capacity(body.len() + 48);
    out.push(b'{');
    let mut saw_stream_options = false;
    for (i, (name, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, name).map_err(malformed)?;
        out.push(b':');
        match name.as_ref() {
            "model" if model.is_some() => {
                serde_json::to_writer(&mut out, &model).map_err(malformed)?
            }
            "stream_options" if force_include_usage => {
                saw_stream_options = true;
                let mut options: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(value.get()).unwrap_or_default();
                options.insert("include_usage".into(), serde_json::Value::Bool(true));
                serde_json::to_writer(&mut out, &options).map_err(malformed)?;
            }
            _ => out.extend_from_slice(value.get().as_bytes()),
        }
    }
    if force_include_usage && !saw_stream_options {
        if !members.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(br#""stream_options":{"include_usage":true}"#);
    }
    out.push(b'}');
    Ok(Bytes::from(out))
}

#[cfg(test)]
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
    fn rewrite_merges_existing_stream_options() {
        let body = br#"{"model":"m","stream_options":{"include_usage":false,"x":1}}"#;
        let out = rewrite(body, None, true).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["stream_options"]["x"], 1);
        assert_eq!(v["model"], "m");
    }
}
