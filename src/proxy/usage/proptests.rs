//! Property tests: OpenAI usage reports of any shape never panic, and every count is read as
//! documented (`pricing::token_count`): saturated beyond `u64`, never wrapped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;

use super::{from_json_body, from_stream_chunk};
use crate::pricing::Usage;
use crate::test_support::{Count, cases, count, json_text, object};

/// A `usage` object and the usage the gateway must read from it (`None`: unreadable).
fn report() -> impl Strategy<Value = (String, Option<Usage>)> {
    (count(), count(), count(), count(), count(), 0..3u8, 0..3u8).prop_map(
        |(prompt, completion, total, cached, reasoning, prompt_details, completion_details)| {
            // 0: absent, 1: null, 2: an object with the count.
            let details = |shape: u8, name: &str, c: &Count| match shape {
                0 => (None, Ok(None)),
                1 => (Some("null".to_owned()), Ok(None)),
                _ => (Some(object([c.member(name)])), c.read()),
            };
            let (prompt_text, cached_read) = details(prompt_details, "cached_tokens", &cached);
            let (completion_text, reasoning_read) =
                details(completion_details, "reasoning_tokens", &reasoning);
            let text = object([
                prompt.member("prompt_tokens"),
                completion.member("completion_tokens"),
                total.member("total_tokens"),
                prompt_text.map(|t| format!("\"prompt_tokens_details\":{t}")),
                completion_text.map(|t| format!("\"completion_tokens_details\":{t}")),
            ]);
            let expected = (|| {
                Some(Usage {
                    input_tokens: prompt.read().ok()?.unwrap_or(0),
                    output_tokens: completion.read().ok()?.unwrap_or(0),
                    cached_input_tokens: cached_read.ok()?.unwrap_or(0),
                    reasoning_tokens: reasoning_read.ok()?.unwrap_or(0),
                    // total_tokens is skipped unread, whatever it holds.
                    cache_write_tokens: 0,
                    cache_write_1h_tokens: 0,
                })
            })();
            (text, expected)
        },
    )
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn any_bytes_or_json_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), text in json_text()) {
        let _ = from_json_body(&bytes);
        let _ = from_stream_chunk(&bytes);
        let _ = from_json_body(text.as_bytes());
        let _ = from_stream_chunk(text.as_bytes());
        let wrapped = format!(r#"{{"choices":[],"usage":{text}}}"#);
        let _ = from_json_body(wrapped.as_bytes());
        let _ = from_stream_chunk(wrapped.as_bytes());
    }

    #[test]
    fn counts_are_read_saturating_in_bodies_and_stream_chunks((usage, expected) in report(), content in any::<bool>()) {
        let body = format!(r#"{{"id":"x","choices":[],"usage":{usage}}}"#);
        prop_assert_eq!(from_json_body(body.as_bytes()), expected);

        let choices = if content { r#"[{"delta":{"content":"hi"}}]"# } else { "[]" };
        let chunk = format!(r#"{{"id":"x","choices":{choices},"usage":{usage}}}"#);
        let read = from_stream_chunk(chunk.as_bytes());
        prop_assert_eq!(read.as_ref().map(|c| c.usage), expected);
        if let Some(read) = read {
            prop_assert_eq!(read.usage_only, !content);
        }
    }
}
