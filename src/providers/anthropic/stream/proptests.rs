//! Property tests: any sequence of events, well-formed or not, never panics the stream's
//! usage accumulator or its translator; the usage read so far never decreases, and at the end
//! it is the largest of each count reported, as a single message carrying them would give.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;

use super::ChunkTranslator;
use crate::pricing::Usage;
use crate::providers::anthropic::usage::proptests::{Report, check, report};
use crate::providers::anthropic::{StreamUsage, from_message_json};
use crate::test_support::cases;

#[derive(Debug, Clone)]
enum Event {
    Start(Report),
    Delta(Report),
    Text(String),
    Stop,
    Ping,
    Error,
    Garbage(Vec<u8>),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => report().prop_map(Event::Start),
        4 => report().prop_map(Event::Delta),
        2 => any::<String>().prop_map(Event::Text),
        1 => Just(Event::Text(r#""usage": {"output_tokens": 99}"#.to_owned())),
        1 => Just(Event::Stop),
        1 => Just(Event::Ping),
        1 => Just(Event::Error),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Event::Garbage),
    ]
}

impl Event {
    fn name(&self) -> &'static str {
        match self {
            Event::Start(_) => "message_start",
            Event::Delta(_) => "message_delta",
            Event::Text(_) => "content_block_delta",
            Event::Stop => "message_stop",
            Event::Ping => "ping",
            Event::Error => "error",
            Event::Garbage(_) => "message_delta",
        }
    }

    fn data(&self) -> Vec<u8> {
        match self {
            Event::Start(r) => format!(
                r#"{{"type":"message_start","message":{{"id":"msg_1","type":"message","role":"assistant","content":[],"usage":{}}}}}"#,
                r.json()
            )
            .into_bytes(),
            Event::Delta(r) => format!(
                r#"{{"type":"message_delta","delta":{{"stop_reason":"end_turn","stop_sequence":null}},"usage":{}}}"#,
                r.json()
            )
            .into_bytes(),
            Event::Text(text) => format!(
                r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{}}}}}"#,
                serde_json::Value::String(text.clone())
            )
            .into_bytes(),
            Event::Stop => br#"{"type":"message_stop"}"#.to_vec(),
            Event::Ping => br#"{"type":"ping"}"#.to_vec(),
            Event::Error => br#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#.to_vec(),
            Event::Garbage(bytes) => bytes.clone(),
        }
    }

    /// The counts a readable usage report of this event carries.
    fn counts(&self) -> Option<[Option<u64>; 6]> {
        match self {
            Event::Start(r) | Event::Delta(r) => r.read(),
            _ => None,
        }
    }
}

/// The counts the stream must keep: for each, the largest any readable report gave.
fn largest(events: &[Event]) -> Option<[Option<u64>; 6]> {
    events
        .iter()
        .filter_map(Event::counts)
        .fold(None, |kept, counts| {
            let kept = kept.unwrap_or([None; 6]);
            Some(std::array::from_fn(|i| match (kept[i], counts[i]) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            }))
        })
}

/// Counts that only grow: a later view of a stream's usage may not show less of any.
fn grew(before: &Usage, after: &Usage) -> bool {
    let writes = |u: &Usage| u128::from(u.cache_write_tokens) + u128::from(u.cache_write_1h_tokens);
    after.input_tokens >= before.input_tokens
        && after.cached_input_tokens >= before.cached_input_tokens
        && after.output_tokens >= before.output_tokens
        && after.cache_write_1h_tokens >= before.cache_write_1h_tokens
        && writes(after) >= writes(before)
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn usage_is_the_largest_reported_and_never_decreases(events in prop::collection::vec(event(), 0..12)) {
        let mut stream = StreamUsage::default();
        let mut translator = ChunkTranslator::new("m", true);
        let mut raw_translator = ChunkTranslator::new("m", false);
        let mut seen: Option<Usage> = None;
        for event in &events {
            let data = event.data();
            stream.push(&data);
            for chunk in translator.push_event(event.name(), &data) {
                // Every chunk is a complete SSE event carrying JSON (or the end marker).
                let payload = chunk.strip_prefix(b"data: ").and_then(|c| c.strip_suffix(b"\n\n")).unwrap();
                prop_assert!(payload == b"[DONE]" || serde_json::from_slice::<serde_json::Value>(payload).is_ok());
            }
            let mut raw = format!("event: {}\ndata: ", event.name()).into_bytes();
            raw.extend_from_slice(&data);
            raw.extend_from_slice(b"\n\n");
            let _ = raw_translator.push_sse_event(&raw);

            let now = stream.usage();
            prop_assert_eq!(translator.usage(), now);
            if let (Some(before), Some(after)) = (&seen, &now) {
                prop_assert!(grew(before, after), "{before:?} -> {after:?}");
            }
            prop_assert!(seen.is_none() || now.is_some());
            seen = now;
        }
        match largest(&events) {
            None => prop_assert_eq!(stream.usage(), None),
            Some(counts) => {
                let usage = stream.usage().unwrap();
                check(counts, usage)?;
                // The same counts in one message give the same usage.
                let members: Vec<String> = ["input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"]
                    .iter()
                    .zip(&counts)
                    .filter_map(|(name, count)| count.map(|c| format!("\"{name}\":{c}")))
                    .collect();
                let breakdown: Vec<String> = ["ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"]
                    .iter()
                    .zip(&counts[4..])
                    .filter_map(|(name, count)| count.map(|c| format!("\"{name}\":{c}")))
                    .collect();
                let had_breakdown = events.iter().any(|e| matches!(e, Event::Start(r) | Event::Delta(r) if r.breakdown == 2 && r.read().is_some()));
                let mut usage_json = members.join(",");
                if had_breakdown {
                    if !usage_json.is_empty() {
                        usage_json.push(',');
                    }
                    usage_json.push_str(&format!("\"cache_creation\":{{{}}}", breakdown.join(",")));
                }
                let message = format!(r#"{{"type":"message","usage":{{{usage_json}}}}}"#);
                prop_assert_eq!(from_message_json(message.as_bytes()), Some(usage));
            }
        }
        prop_assert_eq!(stream.saw_stop(), events.iter().any(|e| matches!(e, Event::Stop)));
        prop_assert_eq!(raw_translator.usage(), stream.usage());
    }
}
