//! An OpenAI chat-completions request translated into a Bedrock Converse request.
//!
//! Translated:
//! - `system` and `developer` messages → `system` text blocks;
//! - `user` content: strings and `text` parts → text blocks; `image_url` parts with a `data:`
//!   URL (png, jpeg, gif, webp) → `image` blocks;
//! - `assistant` content → text blocks, `tool_calls` → `toolUse` blocks (the arguments
//!   string parsed into `input`);
//! - `tool` messages → `toolResult` blocks of a `user` turn (a JSON object result as `json`,
//!   anything else as `text`);
//! - consecutive turns of one role merged (Converse needs them to alternate);
//! - `max_completion_tokens`, else `max_tokens` → `inferenceConfig.maxTokens`;
//!   `temperature`, `top_p` → `topP`, `stop` → `stopSequences`;
//! - function `tools` → `toolConfig.tools[].toolSpec` (`parameters` as `inputSchema.json`);
//!   `tool_choice` `auto`, `required` (→ `any`) or a named function (→ `tool`); `none` sends
//!   no tools unless the conversation already has tool calls (Converse then needs them).
//!
//! Ignored: `user`, `metadata`, `store`, `seed`, `logit_bias`, `logprobs`, `service_tier`,
//! `stream_options`, `parallel_tool_calls`, `response_format` `text`, `n` when 1, a message's
//! `name`, `image_url.detail`, a tool's `strict`.
//!
//! Refused with a 400: `n` > 1, images by http(s) URL (Converse takes image bytes), content
//! parts other than text and images, non-function tools, `response_format` other than
//! `text`, and the legacy `functions` / `function_call`.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::providers::TranslateError;

type Result<T> = std::result::Result<T, TranslateError>;

/// Translates `openai_body` into a Converse body.
pub fn chat_to_converse(openai_body: &[u8]) -> Result<Bytes> {
    let request: Map<String, Value> =
        serde_json::from_slice(openai_body).map_err(|e| TranslateError::Json(e.to_string()))?;
    let get = |key: &str| request.get(key).filter(|v| !v.is_null());
    for refused in ["functions", "function_call"] {
        if get(refused).is_some() {
            return Err(TranslateError::field(
                refused,
                "is not supported; use `tools` and `tool_choice`",
            ));
        }
    }
    if let Some(n) = get("n")
        && n.as_u64() != Some(1)
    {
        return Err(TranslateError::field(
            "n",
            "must be 1: Bedrock answers with one choice",
        ));
    }
    if let Some(format) = get("response_format")
        && format.get("type").and_then(Value::as_str) != Some("text")
    {
        return Err(TranslateError::field(
            "response_format",
            "is not supported by Bedrock's Converse API; ask for JSON in the prompt, or define a tool",
        ));
    }
    let messages = get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError::field("messages", "must be a list of messages"))?;
    let (system, turns, has_tool_history) = turns(messages)?;
    let mut out = Map::new();
    out.insert("messages".into(), Value::Array(turns));
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    let inference = inference_config(&request)?;
    if !inference.is_empty() {
        out.insert("inferenceConfig".into(), Value::Object(inference));
    }
    if let Some(tools) = get("tools") {
        let choice = get("tool_choice");
        let none = choice.and_then(Value::as_str) == Some("none");
        if !none || has_tool_history {
            let mut config = json!({ "tools": tool_specs(tools)? });
            if let Some(choice) = choice.filter(|_| !none) {
                config["toolChoice"] = tool_choice(choice)?;
            }
            out.insert("toolConfig".into(), config);
        }
    }
    serde_json::to_vec(&Value::Object(out))
        .map(Bytes::from)
        .map_err(|e| TranslateError::Json(e.to_string()))
}

/// The system blocks, the merged turns, and whether the conversation has tool calls.
fn turns(messages: &[Value]) -> Result<(Vec<Value>, Vec<Value>, bool)> {
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut tool_history = false;
    for (i, message) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| TranslateError::field(format!("{at}.role"), "is missing"))?;
        let content = message.get("content").filter(|c| !c.is_null());
        let (role, blocks) = match role {
            "system" | "developer" => {
                system.extend(text_blocks(content, &format!("{at}.content"))?);
                continue;
            }
            "user" => ("user", user_blocks(content, &at)?),
            "assistant" => {
                let mut blocks = text_blocks(content, &format!("{at}.content"))?;
                let calls = tool_uses(message, &at)?;
                tool_history |= !calls.is_empty();
                blocks.extend(calls);
                ("assistant", blocks)
            }
            "tool" => {
                tool_history = true;
                ("user", vec![tool_result(message, content, &at)?])
            }
            other => {
                return Err(TranslateError::field(
                    format!("{at}.role"),
                    format!("{other:?} is not supported; use system, user, assistant or tool"),
                ));
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let turns = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    Ok((system, turns, tool_history))
}

fn text_blocks(content: Option<&Value>, at: &str) -> Result<Vec<Value>> {
    match content {
        None => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({ "text": s })]),
        Some(Value::Array(parts)) => {
            let mut out = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                let text = match part.get("type").and_then(Value::as_str) {
                    Some("text") => part.get("text"),
                    Some("refusal") => part.get("refusal"),
                    _ => {
                        return Err(TranslateError::field(
                            format!("{at}[{j}]"),
                            "must be a text part here",
                        ));
                    }
                };
                if let Some(text) = text.and_then(Value::as_str).filter(|t| !t.is_empty()) {
                    out.push(json!({ "text": text }));
                }
            }
            Ok(out)
        }
        Some(_) => Err(TranslateError::field(
            at,
            "must be a string or a list of parts",
        )),
    }
}

fn user_blocks(content: Option<&Value>, at: &str) -> Result<Vec<Value>> {
    let Some(Value::Array(parts)) = content else {
        return text_blocks(content, &format!("{at}.content"));
    };
    let mut out = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let here = format!("{at}.content[{j}]");
        match part.get("type").and_then(Value::as_str) {
            Some("text") => {
                if let Some(text) = part
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    out.push(json!({ "text": text }));
                }
            }
            Some("image_url") => out.push(image(part, &here)?),
            Some(other) => {
                return Err(TranslateError::field(
                    format!("{here}.type"),
                    format!("{other:?} parts are not supported for Bedrock; send text and images"),
                ));
            }
            None => return Err(TranslateError::field(format!("{here}.type"), "is missing")),
        }
    }
    Ok(out)
}

/// A `data:image/<format>;base64,<data>` image as a Converse `image` block.
fn image(part: &Value, at: &str) -> Result<Value> {
    let field = format!("{at}.image_url.url");
    let url = part
        .pointer("/image_url/url")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::field(&field, "is missing"))?;
    let rest = url.strip_prefix("data:image/").ok_or_else(|| {
        TranslateError::field(
            &field,
            "must be a data:image/... URL: Converse takes image bytes, not http(s) URLs",
        )
    })?;
    let (format, data) = rest.split_once(";base64,").ok_or_else(|| {
        TranslateError::field(&field, "must be data:image/<format>;base64,<data>")
    })?;
    let format = match format {
        "jpg" => "jpeg",
        "png" | "jpeg" | "gif" | "webp" => format,
        other => {
            return Err(TranslateError::field(
                &field,
                format!("image/{other} is not a format Converse takes (png, jpeg, gif, webp)"),
            ));
        }
    };
    Ok(json!({"image": {"format": format, "source": {"bytes": data}}}))
}

fn tool_uses(message: &Value, at: &str) -> Result<Vec<Value>> {
    let Some(calls) = message.get("tool_calls").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let calls = calls
        .as_array()
        .ok_or_else(|| TranslateError::field(format!("{at}.tool_calls"), "must be a list"))?;
    let mut out = Vec::with_capacity(calls.len());
    for (j, call) in calls.iter().enumerate() {
        let here = format!("{at}.tool_calls[{j}]");
        let id = call
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| TranslateError::field(format!("{here}.id"), "is missing"))?;
        let name = call
            .pointer("/function/name")
            .and_then(Value::as_str)
            .ok_or_else(|| TranslateError::field(format!("{here}.function.name"), "is missing"))?;
        let arguments = call
            .pointer("/function/arguments")
            .and_then(Value::as_str)
            .filter(|a| !a.trim().is_empty())
            .unwrap_or("{}");
        let input: Value = serde_json::from_str(arguments).map_err(|_| {
            TranslateError::field(
                format!("{here}.function.arguments"),
                "must be a JSON object (as a string)",
            )
        })?;
        out.push(json!({"toolUse": {"toolUseId": id, "name": name, "input": input}}));
    }
    Ok(out)
}

fn tool_result(message: &Value, content: Option<&Value>, at: &str) -> Result<Value> {
    let id = message
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::field(format!("{at}.tool_call_id"), "is missing"))?;
    let text: String = match content {
        Some(Value::String(s)) => s.clone(),
        other => text_blocks(other, &format!("{at}.content"))?
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect(),
    };
    let block = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(object)) => json!({ "json": object }),
        _ => json!({ "text": text }),
    };
    Ok(json!({"toolResult": {"toolUseId": id, "content": [block]}}))
}

fn tool_specs(tools: &Value) -> Result<Vec<Value>> {
    let tools = tools
        .as_array()
        .ok_or_else(|| TranslateError::field("tools", "must be a list"))?;
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        if tool.get("type").and_then(Value::as_str) != Some("function") {
            return Err(TranslateError::field(
                format!("tools[{i}].type"),
                "only `function` tools can be sent to Bedrock",
            ));
        }
        let name = tool
            .pointer("/function/name")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                TranslateError::field(format!("tools[{i}].function.name"), "is missing")
            })?;
        let schema = tool
            .pointer("/function/parameters")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        let mut spec = json!({"name": name, "inputSchema": {"json": schema}});
        if let Some(description) = tool.pointer("/function/description") {
            spec["description"] = description.clone();
        }
        out.push(json!({ "toolSpec": spec }));
    }
    Ok(out)
}

fn tool_choice(choice: &Value) -> Result<Value> {
    match choice {
        Value::String(s) if s == "auto" => Ok(json!({"auto": {}})),
        Value::String(s) if s == "required" => Ok(json!({"any": {}})),
        Value::Object(_) => {
            let name = choice
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| TranslateError::field("tool_choice.function.name", "is missing"))?;
            Ok(json!({"tool": {"name": name}}))
        }
        other => Err(TranslateError::field(
            "tool_choice",
            format!("{other} is not auto, none, required or a function"),
        )),
    }
}

fn inference_config(request: &Map<String, Value>) -> Result<Map<String, Value>> {
    let get = |key: &str| request.get(key).filter(|v| !v.is_null());
    let mut config = Map::new();
    if let Some(max) = get("max_completion_tokens").or_else(|| get("max_tokens")) {
        config.insert("maxTokens".into(), max.clone());
    }
    if let Some(t) = get("temperature") {
        config.insert("temperature".into(), t.clone());
    }
    if let Some(p) = get("top_p") {
        config.insert("topP".into(), p.clone());
    }
    match get("stop") {
        None => {}
        Some(Value::String(s)) => {
            config.insert("stopSequences".into(), json!([s]));
        }
        Some(Value::Array(list)) => {
            config.insert("stopSequences".into(), Value::Array(list.clone()));
        }
        Some(_) => {
            return Err(TranslateError::field(
                "stop",
                "must be a string or a list of strings",
            ));
        }
    }
    Ok(config)
}
