//! The `messages` array of an OpenAI request as Anthropic's `system` and `messages`: content
//! parts as blocks, tool calls and results as `tool_use` and `tool_result` blocks, and
//! consecutive messages of one role merged.

use serde_json::{Map, Value, json};

use super::Result;
use crate::providers::anthropic::TranslateError;

/// One message of the Anthropic conversation being built.
struct Turn {
    role: &'static str,
    blocks: Vec<Value>,
}

/// The `system` value and the `messages` array.
pub(super) fn messages(value: Option<&Value>) -> Result<(Option<Value>, Value)> {
    let list = value
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError::field("messages", "must be an array of messages"))?;
    let mut system: Vec<Value> = Vec::new();
    let mut only_string_system = true;
    let mut turns: Vec<Turn> = Vec::with_capacity(list.len());
    for (i, message) in list.iter().enumerate() {
        let at = |field: &str| format!("messages[{i}]{field}");
        let message = message
            .as_object()
            .ok_or_else(|| TranslateError::field(at(""), "must be an object"))?;
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| TranslateError::field(at(".role"), "must be a string"))?;
        let content = message.get("content").filter(|v| !v.is_null());
        match role {
            "system" | "developer" => {
                only_string_system &= matches!(content, Some(Value::String(_)));
                system.extend(text_blocks(content, &at(".content"), &["text"])?);
            }
            "user" => push(&mut turns, "user", user_blocks(content, &at(".content"))?),
            "assistant" => {
                let mut blocks = text_blocks(content, &at(".content"), &["text", "refusal"])?;
                blocks.extend(tool_uses(message.get("tool_calls"), &at(".tool_calls"))?);
                push(&mut turns, "assistant", blocks);
            }
            "tool" => push(&mut turns, "user", vec![tool_result(message, &at)?]),
            other => {
                return Err(TranslateError::field(
                    at(".role"),
                    format!("`{other}` is not supported"),
                ));
            }
        }
    }
    let system = match system.len() {
        0 => None,
        1 if only_string_system => system
            .pop()
            .and_then(|mut b| b.get_mut("text").map(Value::take)),
        _ => Some(Value::Array(system)),
    };
    let messages = turns
        .into_iter()
        .map(|t| json!({ "role": t.role, "content": t.blocks }))
        .collect();
    Ok((system, Value::Array(messages)))
}

/// Appends blocks to the last turn when it has the same role, else starts a turn.
fn push(turns: &mut Vec<Turn>, role: &'static str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(last) if last.role == role => last.blocks.extend(blocks),
        _ => turns.push(Turn { role, blocks }),
    }
}

fn text_block(text: &str, part: Option<&Map<String, Value>>) -> Value {
    let mut block = json!({ "type": "text", "text": text });
    if let (Some(cache), Some(map)) = (
        part.and_then(|p| p.get("cache_control"))
            .filter(|c| c.is_object()),
        block.as_object_mut(),
    ) {
        map.insert("cache_control".into(), cache.clone());
    }
    block
}

/// Content made only of text: a string or an array of parts whose types are in `kinds`
/// (`refusal` parts carry their text in `refusal`).
fn text_blocks(content: Option<&Value>, at: &str, kinds: &[&str]) -> Result<Vec<Value>> {
    match content {
        None => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![text_block(s, None)]),
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let (kind, part) = part_kind(part, &format!("{at}[{j}]"))?;
                if !kinds.contains(&kind) {
                    return Err(TranslateError::field(
                        format!("{at}[{j}].type"),
                        format!("`{kind}` is not supported here"),
                    ));
                }
                if let Some(block) = text_part(kind, part, &format!("{at}[{j}]"))? {
                    blocks.push(block);
                }
            }
            Ok(blocks)
        }
        Some(_) => Err(TranslateError::field(
            at,
            "must be a string or an array of content parts",
        )),
    }
}

fn part_kind<'a>(part: &'a Value, at: &str) -> Result<(&'a str, &'a Map<String, Value>)> {
    let part = part
        .as_object()
        .ok_or_else(|| TranslateError::field(at, "must be an object"))?;
    let kind = part
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::field(format!("{at}.type"), "must be a string"))?;
    Ok((kind, part))
}

/// A `text` or `refusal` part as a text block; `None` when its text is empty.
fn text_part(kind: &str, part: &Map<String, Value>, at: &str) -> Result<Option<Value>> {
    let text = part
        .get(kind)
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::field(format!("{at}.{kind}"), "must be a string"))?;
    Ok((!text.is_empty()).then(|| text_block(text, Some(part))))
}

fn user_blocks(content: Option<&Value>, at: &str) -> Result<Vec<Value>> {
    let Some(Value::Array(parts)) = content else {
        return text_blocks(content, at, &["text"]);
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let at = format!("{at}[{j}]");
        let (kind, part) = part_kind(part, &at)?;
        let block = match kind {
            "text" => text_part(kind, part, &at)?,
            "image_url" => Some(image_block(part, &at)?),
            other => {
                return Err(TranslateError::field(
                    format!("{at}.type"),
                    format!("`{other}` is not supported"),
                ));
            }
        };
        blocks.extend(block);
    }
    Ok(blocks)
}

fn image_block(part: &Map<String, Value>, at: &str) -> Result<Value> {
    let url = match part.get("image_url") {
        Some(Value::Object(o)) => o.get("url").and_then(Value::as_str),
        // Some clients send the URL itself.
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    }
    .ok_or_else(|| TranslateError::field(format!("{at}.image_url.url"), "must be a string"))?;
    let bad = |reason: &str| TranslateError::field(format!("{at}.image_url.url"), reason);
    let source = if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| bad("is a data URL without data"))?;
        let media_type = meta
            .strip_suffix(";base64")
            .ok_or_else(|| bad("must be a base64 data URL"))?;
        let media_type = media_type.split(';').next().unwrap_or(media_type);
        if media_type.is_empty() {
            return Err(bad("is a data URL without a media type"));
        }
        json!({ "type": "base64", "media_type": media_type, "data": data })
    } else if has_scheme(url, "https://") || has_scheme(url, "http://") {
        json!({ "type": "url", "url": url })
    } else {
        return Err(bad("must be an http(s) URL or a data: URL"));
    };
    let mut block = json!({ "type": "image", "source": source });
    if let (Some(cache), Some(map)) = (
        part.get("cache_control").filter(|c| c.is_object()),
        block.as_object_mut(),
    ) {
        map.insert("cache_control".into(), cache.clone());
    }
    Ok(block)
}

fn has_scheme(url: &str, scheme: &str) -> bool {
    url.get(..scheme.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
}

fn tool_uses(value: Option<&Value>, at: &str) -> Result<Vec<Value>> {
    let calls = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(calls)) => calls,
        Some(_) => return Err(TranslateError::field(at, "must be an array")),
    };
    let mut blocks = Vec::with_capacity(calls.len());
    for (k, call) in calls.iter().enumerate() {
        let at = format!("{at}[{k}]");
        let str_at = |field: &str| {
            call.pointer(field).and_then(Value::as_str).ok_or_else(|| {
                TranslateError::field(
                    format!("{at}{}", field.replace('/', ".")),
                    "must be a string",
                )
            })
        };
        let id = str_at("/id")?;
        let name = str_at("/function/name")?;
        let input = match call.pointer("/function/arguments") {
            None | Some(Value::Null) => json!({}),
            Some(Value::String(s)) if s.trim().is_empty() => json!({}),
            Some(Value::String(s)) => {
                let input: Value = serde_json::from_str(s).map_err(|e| {
                    TranslateError::field(
                        format!("{at}.function.arguments"),
                        format!("is not valid JSON: {e}"),
                    )
                })?;
                if !input.is_object() {
                    return Err(TranslateError::field(
                        format!("{at}.function.arguments"),
                        "must encode a JSON object",
                    ));
                }
                input
            }
            Some(_) => {
                return Err(TranslateError::field(
                    format!("{at}.function.arguments"),
                    "must be a string",
                ));
            }
        };
        blocks.push(json!({ "type": "tool_use", "id": id, "name": name, "input": input }));
    }
    Ok(blocks)
}

fn tool_result(message: &Map<String, Value>, at: &dyn Fn(&str) -> String) -> Result<Value> {
    let id = message
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::field(at(".tool_call_id"), "must be a string"))?;
    let mut block = json!({ "type": "tool_result", "tool_use_id": id });
    let content = match message.get("content").filter(|v| !v.is_null()) {
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(Value::String(s.clone())),
        other => {
            let blocks = text_blocks(other, &at(".content"), &["text"])?;
            (!blocks.is_empty()).then_some(Value::Array(blocks))
        }
    };
    if let (Some(content), Some(map)) = (content, block.as_object_mut()) {
        map.insert("content".into(), content);
    }
    Ok(block)
}
