use serde_json::{Value, json};

use super::*;

const TOOL_STREAM: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-sonnet-4-5","stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":2},"content":[],"stop_reason":null}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":", checking."}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\":"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" \"San Francisco, CA\", \"unit\": \"c\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_02","name":"get_time","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"#;

fn run(stream: &str, include_usage: bool) -> (Vec<String>, ChunkTranslator) {
    let mut t = ChunkTranslator::new_at("public-model", include_usage, 1_700_000_000);
    let mut out = Vec::new();
    for raw in stream.split_inclusive("\n\n") {
        for event in t.push_sse_event(raw.as_bytes()) {
            let text = String::from_utf8(event.to_vec()).unwrap();
            let payload = text
                .strip_prefix("data: ")
                .and_then(|t| t.strip_suffix("\n\n"))
                .unwrap_or_else(|| panic!("not a complete data event: {text:?}"));
            assert!(!payload.contains('\n'), "{payload:?}");
            out.push(payload.to_owned());
        }
    }
    (out, t)
}

fn chunks(events: &[String]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

fn text_stream(usage: &str, stop_reason: &str) -> String {
    format!(
        "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude\",\"stop_reason\":null,\"usage\":{usage}}}}}\n\n\
event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}\n\n\
event: ping\ndata: {{\"type\":\"ping\"}}\n\n\
event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"Hel\"}}}}\n\n\
event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"lo \\\"you\\\"\"}}}}\n\n\
event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\n\n\
event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"{stop_reason}\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":12}}}}\n\n\
event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
    )
}

const CACHED_USAGE: &str = r#"{"input_tokens":20,"cache_creation_input_tokens":300,"cache_read_input_tokens":1000,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":200},"output_tokens":1}"#;

#[test]
fn streamed_text_in_openai_order() {
    let (events, t) = run(&text_stream(CACHED_USAGE, "end_turn"), true);
    assert_eq!(events.len(), 6, "{events:#?}");
    assert_eq!(events[5], "[DONE]");
    let chunks = chunks(&events);
    for c in &chunks {
        assert_eq!(c["id"], "msg_1");
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["created"], 1_700_000_000);
        assert_eq!(c["model"], "public-model");
    }
    assert_eq!(
        chunks[0]["choices"],
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}])
    );
    assert_eq!(chunks[0]["usage"], Value::Null);
    assert_eq!(chunks[1]["choices"][0]["delta"], json!({"content": "Hel"}));
    assert_eq!(
        chunks[2]["choices"][0]["delta"],
        json!({"content": "lo \"you\""})
    );
    assert_eq!(chunks[3]["choices"][0]["delta"], json!({}));
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[4]["choices"], json!([]));
    assert_eq!(
        chunks[4]["usage"],
        json!({"prompt_tokens": 1320, "completion_tokens": 12, "total_tokens": 1332,
               "prompt_tokens_details": {"cached_tokens": 1000}})
    );
    assert_eq!(
        t.usage(),
        Some(Usage {
            input_tokens: 1320,
            cached_input_tokens: 1000,
            cache_write_tokens: 100,
            cache_write_1h_tokens: 200,
            output_tokens: 12,
            reasoning_tokens: 0,
        })
    );
    assert!(t.saw_stop() && t.produced_content() && t.error_type().is_none());
    assert_eq!(t.content_events(), 2);
}

#[test]
fn without_include_usage_no_usage_is_sent_but_it_is_kept() {
    let (events, t) = run(
        &text_stream(r#"{"input_tokens":5,"output_tokens":1}"#, "max_tokens"),
        false,
    );
    assert_eq!(events.len(), 5);
    assert!(events.iter().all(|e| !e.contains("usage")), "{events:#?}");
    assert_eq!(chunks(&events)[3]["choices"][0]["finish_reason"], "length");
    assert_eq!(
        t.usage().map(|u| (u.input_tokens, u.output_tokens)),
        Some((5, 12))
    );
}

#[test]
fn streamed_tool_calls() {
    let (events, t) = run(TOOL_STREAM, false);
    let chunks = chunks(&events);
    let deltas: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["delta"]).collect();
    assert_eq!(deltas[0], &json!({"role": "assistant", "content": ""}));
    assert_eq!(deltas[1], &json!({"content": "Okay"}));
    assert_eq!(deltas[2], &json!({"content": ", checking."}));
    assert_eq!(
        deltas[3],
        &json!({"tool_calls": [{"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
                                "function": {"name": "get_weather", "arguments": ""}}]})
    );
    // The empty first input_json_delta is not forwarded.
    assert_eq!(
        deltas[4],
        &json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"location\":"}}]})
    );
    assert_eq!(deltas[6]["tool_calls"][0]["index"], 1);
    assert_eq!(deltas[6]["tool_calls"][0]["function"]["name"], "get_time");
    assert_eq!(deltas[7]["tool_calls"][0]["index"], 1);
    assert_eq!(chunks[8]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(chunks.len(), 9);
    assert_eq!(events.last().unwrap(), "[DONE]");

    // What a client accumulates from the deltas is the tool input.
    let mut arguments = [String::new(), String::new()];
    for d in &deltas {
        if let Some(call) = d.get("tool_calls") {
            let i = call[0]["index"].as_u64().unwrap() as usize;
            arguments[i].push_str(call[0]["function"]["arguments"].as_str().unwrap());
        }
    }
    assert_eq!(
        serde_json::from_str::<Value>(&arguments[0]).unwrap(),
        json!({"location": "San Francisco, CA", "unit": "c"})
    );
    assert_eq!(
        serde_json::from_str::<Value>(&arguments[1]).unwrap(),
        json!({})
    );
    assert_eq!(
        t.usage().map(|u| (u.input_tokens, u.output_tokens)),
        Some((472, 89))
    );
}

#[test]
fn cut_stream_has_no_done() {
    let stream = text_stream(r#"{"input_tokens":5,"output_tokens":1}"#, "end_turn");
    let cut = stream.find("event: content_block_stop").unwrap();
    let (events, t) = run(&stream[..cut], true);
    assert_eq!(events.len(), 3);
    assert!(
        !events
            .iter()
            .any(|e| e == "[DONE]" || e.contains("finish_reason\":\""))
    );
    assert!(!t.saw_stop());
    assert_eq!(t.content_events(), 2);
    assert_eq!(t.usage().map(|u| u.output_tokens), Some(1));
}

#[test]
fn error_event_becomes_an_openai_error() {
    let stream = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_e\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n\
event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let (events, t) = run(stream, false);
    assert_eq!(events.len(), 2);
    assert_eq!(
        serde_json::from_str::<Value>(&events[1]).unwrap(),
        json!({"error": {"message": "Overloaded", "type": "overloaded_error", "code": null, "param": null}})
    );
    assert_eq!(t.error_type(), Some("overloaded_error"));
    assert!(!t.saw_stop() && !t.produced_content());
}

#[test]
fn event_name_falls_back_to_the_payload_type_and_junk_is_skipped() {
    let mut t = ChunkTranslator::new_at("m", false, 0);
    assert!(t.push_event("", b"not json").is_empty());
    assert!(t.push_event("ping", br#"{"type":"ping"}"#).is_empty());
    let out = t.push_event(
        "",
        br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}"#,
    );
    // A delta without message_start still gets the role chunk first.
    assert_eq!(out.len(), 2);
    assert!(String::from_utf8_lossy(&out[0]).contains(r#""role":"assistant""#));
    assert!(String::from_utf8_lossy(&out[1]).contains(r#""content":"x""#));
    let out = t.push_event("message_stop", br#"{"type":"message_stop"}"#);
    // No stop_reason came: the finish chunk says "stop"; nothing reported usage.
    assert_eq!(out.len(), 2);
    assert!(String::from_utf8_lossy(&out[0]).contains(r#""finish_reason":"stop""#));
    assert_eq!(&out[1][..], DONE);
    assert_eq!(t.usage(), None);
    assert!(
        t.push_event("message_stop", br#"{"type":"message_stop"}"#)
            .iter()
            .all(|e| &e[..] != DONE)
    );
}
