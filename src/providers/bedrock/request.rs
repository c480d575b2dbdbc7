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
use crate::providers::chat_request::{self, ChatRequest, Result, content, push_turn, role};

/// Translates `openai_body` into a Converse body.
pub fn chat_to_converse(openai_body: &[u8]) -> Result<Bytes> {
    let request = ChatRequest::parse(openai_body, "Bedrock")?;
    if let Some(format) = request.get("response_format")
        && format.get("type").and_then(Value::as_str) != Some("text")
    {
        return Err(TranslateError::field(
            "response_format",
            "is not supported by Bedrock's Converse API; ask for JSON in the prompt, or define a tool",
        ));
    }
    let (system, turns, has_tool_history) = turns(request.messages()?)?;
    let mut out = Map::new();
    out.insert("messages".into(), Value::Array(turns));
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    let inference = inference_config(&request)?;
    if !inference.is_empty() {
        out.insert("inferenceConfig".into(), Value::Object(inference));
    }
    if let Some(tools) = request.function_tools("Bedrock")? {
        let choice = request.get("tool_choice");
        let none = choice.and_then(Value::as_str) == Some("none");
        if !none || has_tool_history {
            let specs: Vec<Value> = tools
                .iter()
                .map(|tool| {
                    let schema = tool
                        .parameters
                        .cloned()
                        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
                    let mut spec = json!({"name": tool.name, "inputSchema": {"json": schema}});
                    if let Some(description) = tool.description {
                        spec["description"] = description.clone();
                    }
                    json!({ "toolSpec": spec })
                })
                .collect();
            let mut config = json!({ "tools": specs });
            if let Some(choice) = choice.filter(|_| !none) {
                config["toolChoice"] = tool_choice(choice)?;
            }
            out.insert("toolConfig".into(), config);
        }
    }
    ChatRequest::to_bytes(&Value::Object(out))
}

/// The system blocks, the merged turns, and whether the conversation has tool calls.
fn turns(messages: &[Value]) -> Result<(Vec<Value>, Vec<Value>, bool)> {
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut tool_history = false;
    for (i, message) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let content = content(message);
        let (role, blocks) = match role(message, &at)? {
            "system" | "developer" => {
                system.extend(chat_request::text_parts(content, &format!("{at}.content"))?);
                continue;
            }
            "user" => (
                "user",
                chat_request::user_parts(content, &at, "Bedrock", image)?,
            ),
            "assistant" => {
                let mut blocks = chat_request::text_parts(content, &format!("{at}.content"))?;
                for (j, call) in chat_request::tool_calls(message, &at)?
                    .into_iter()
                    .enumerate()
                {
                    let id = call.id.ok_or_else(|| {
                        TranslateError::field(format!("{at}.tool_calls[{j}].id"), "is missing")
                    })?;
                    tool_history = true;
                    blocks.push(json!({"toolUse": {"toolUseId": id, "name": call.name, "input": call.arguments}}));
                }
                ("assistant", blocks)
            }
            "tool" => {
                tool_history = true;
                let (id, text) = chat_request::tool_result(message, &at)?;
                let block = match chat_request::result_object(&text) {
                    Some(object) => json!({ "json": object }),
                    None => json!({ "text": text }),
                };
                (
                    "user",
                    vec![json!({"toolResult": {"toolUseId": id, "content": [block]}})],
                )
            }
            other => {
                return Err(TranslateError::field(
                    format!("{at}.role"),
                    format!("{other:?} is not supported; use system, user, assistant or tool"),
                ));
            }
        };
        push_turn(&mut turns, role, blocks);
    }
    let turns = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    Ok((system, turns, tool_history))
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

fn inference_config(request: &ChatRequest) -> Result<Map<String, Value>> {
    let mut config = Map::new();
    if let Some(max) = request.max_tokens() {
        config.insert("maxTokens".into(), max.clone());
    }
    for (from, to) in [("temperature", "temperature"), ("top_p", "topP")] {
        if let Some(value) = request.get(from) {
            config.insert(to.into(), value.clone());
        }
    }
    if let Some(stop) = request.stop_sequences()? {
        config.insert("stopSequences".into(), stop);
    }
    Ok(config)
}
