//! An OpenAI chat-completions request translated into a Gemini `generateContent` request.
//!
//! Translated:
//! - `system` and `developer` messages → `systemInstruction` (their text, in order);
//! - `user` content: strings and `text` parts → text parts; `image_url` parts with a `data:`
//!   URL → `inlineData` parts;
//! - `assistant` content → text parts of a `model` turn, `tool_calls` → `functionCall` parts
//!   (the arguments string parsed into `args`);
//! - `tool` messages → `functionResponse` parts of a `user` turn, named after the call they
//!   answer (a JSON object result is the `response`; anything else is `{"content": ...}`);
//! - consecutive turns of one role merged, since Gemini expects them to alternate;
//! - `max_completion_tokens`, else `max_tokens` → `generationConfig.maxOutputTokens`;
//!   `temperature`, `top_p` → `topP`, `stop` → `stopSequences`, `seed`,
//!   `presence_penalty`, `frequency_penalty`; `response_format` `json_object` →
//!   `responseMimeType: application/json`, `json_schema` → that and `responseJsonSchema`;
//! - `tools` (functions) → `functionDeclarations`; `tool_choice` `auto`, `none`, `required`
//!   (→ `ANY`) or a named function (→ `ANY` with `allowedFunctionNames`).
//!
//! Ignored, having no Gemini equivalent: `user`, `metadata`, `store`, `logit_bias`,
//! `logprobs`, `top_logprobs`, `service_tier`, `stream_options`, `parallel_tool_calls`,
//! `reasoning_effort`, `n` when 1, a message's `name`, `image_url.detail`, a tool's `strict`.
//!
//! Refused with a 400, because ignoring them would change the answer: `n` > 1, tools other
//! than functions, images given by http(s) URL (Gemini takes images inline: send a `data:`
//! URL), content parts other than text and images, and the legacy `functions` /
//! `function_call`.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::providers::TranslateError;

type Result<T> = std::result::Result<T, TranslateError>;

/// Translates `openai_body` into a `generateContent` body.
pub fn chat_to_gemini(openai_body: &[u8]) -> Result<Bytes> {
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
            "must be 1: the gateway asks Gemini for one candidate",
        ));
    }
    let messages = get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError::field("messages", "must be a list of messages"))?;
    let (system, contents) = turns(messages)?;
    let mut out = Map::new();
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({ "parts": system }));
    }
    if let Some(tools) = get("tools") {
        out.insert("tools".into(), function_declarations(tools)?);
    }
    if let Some(choice) = get("tool_choice") {
        out.insert("toolConfig".into(), tool_config(choice)?);
    }
    let config = generation_config(&request)?;
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    serde_json::to_vec(&Value::Object(out))
        .map(Bytes::from)
        .map_err(|e| TranslateError::Json(e.to_string()))
}

/// The system text parts, and the turns (`contents`) with roles merged.
fn turns(messages: &[Value]) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut system = Vec::new();
    let mut contents: Vec<(String, Vec<Value>)> = Vec::new();
    // Tool call ids → function names, for the results that answer them.
    let mut calls: HashMap<String, String> = HashMap::new();
    for (i, message) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| TranslateError::field(format!("{at}.role"), "is missing"))?;
        let content = message.get("content").filter(|c| !c.is_null());
        let (role, parts) = match role {
            "system" | "developer" => {
                system.extend(text_parts(content, &format!("{at}.content"))?);
                continue;
            }
            "user" => ("user", user_parts(content, &at)?),
            "assistant" => ("model", assistant_parts(message, content, &at, &mut calls)?),
            "tool" => ("user", vec![tool_result(message, content, &at, &calls)?]),
            "function" => {
                return Err(TranslateError::field(
                    format!("{at}.role"),
                    "`function` is not supported; use `tool` messages",
                ));
            }
            other => {
                return Err(TranslateError::field(
                    format!("{at}.role"),
                    format!("{other:?} is not a chat role"),
                ));
            }
        };
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some((last, existing)) if last == role => existing.extend(parts),
            _ => contents.push((role.to_owned(), parts)),
        }
    }
    let contents = contents
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect();
    Ok((system, contents))
}

/// Text parts of a string or of a list of `text` parts; empty text is dropped.
fn text_parts(content: Option<&Value>, at: &str) -> Result<Vec<Value>> {
    match content {
        None => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({ "text": s })]),
        Some(Value::Array(parts)) => {
            let mut out = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                match part.get("type").and_then(Value::as_str) {
                    Some("text" | "refusal") => {
                        let key = if part.get("text").is_some() {
                            "text"
                        } else {
                            "refusal"
                        };
                        if let Some(text) = part.get(key).and_then(Value::as_str)
                            && !text.is_empty()
                        {
                            out.push(json!({ "text": text }));
                        }
                    }
                    _ => {
                        return Err(TranslateError::field(
                            format!("{at}[{j}]"),
                            "must be a text part here",
                        ));
                    }
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

fn user_parts(content: Option<&Value>, at: &str) -> Result<Vec<Value>> {
    let Some(Value::Array(parts)) = content else {
        return text_parts(content, &format!("{at}.content"));
    };
    let mut out = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let here = format!("{at}.content[{j}]");
        match part.get("type").and_then(Value::as_str) {
            Some("text") => {
                if let Some(text) = part.get("text").and_then(Value::as_str)
                    && !text.is_empty()
                {
                    out.push(json!({ "text": text }));
                }
            }
            Some("image_url") => out.push(inline_image(part, &here)?),
            Some(other) => {
                return Err(TranslateError::field(
                    format!("{here}.type"),
                    format!("{other:?} parts are not supported for Gemini; send text and images"),
                ));
            }
            None => return Err(TranslateError::field(format!("{here}.type"), "is missing")),
        }
    }
    Ok(out)
}

/// A `data:<mime>;base64,<data>` image as an `inlineData` part.
fn inline_image(part: &Value, at: &str) -> Result<Value> {
    let url = part
        .get("image_url")
        .and_then(|i| i.get("url").or(Some(i)))
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::field(format!("{at}.image_url.url"), "is missing"))?;
    let Some(rest) = url.strip_prefix("data:") else {
        return Err(TranslateError::field(
            format!("{at}.image_url.url"),
            "must be a data: URL: Gemini takes images inline (base64), not by http(s) URL",
        ));
    };
    let (mime, data) = rest
        .split_once(";base64,")
        .filter(|(mime, data)| !mime.is_empty() && !data.is_empty())
        .ok_or_else(|| {
            TranslateError::field(
                format!("{at}.image_url.url"),
                "must be data:<mime type>;base64,<data>",
            )
        })?;
    Ok(json!({"inlineData": {"mimeType": mime, "data": data}}))
}

fn assistant_parts(
    message: &Value,
    content: Option<&Value>,
    at: &str,
    calls: &mut HashMap<String, String>,
) -> Result<Vec<Value>> {
    let mut out = text_parts(content, &format!("{at}.content"))?;
    let Some(tool_calls) = message.get("tool_calls").filter(|v| !v.is_null()) else {
        return Ok(out);
    };
    let tool_calls = tool_calls
        .as_array()
        .ok_or_else(|| TranslateError::field(format!("{at}.tool_calls"), "must be a list"))?;
    for (j, call) in tool_calls.iter().enumerate() {
        let here = format!("{at}.tool_calls[{j}]");
        let function = call
            .get("function")
            .ok_or_else(|| TranslateError::field(format!("{here}.function"), "is missing"))?;
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| TranslateError::field(format!("{here}.function.name"), "is missing"))?;
        let arguments = function
            .get("arguments")
            .and_then(Value::as_str)
            .unwrap_or("{}");
        let args: Value = serde_json::from_str(if arguments.trim().is_empty() {
            "{}"
        } else {
            arguments
        })
        .map_err(|_| {
            TranslateError::field(
                format!("{here}.function.arguments"),
                "must be a JSON object (as a string)",
            )
        })?;
        if let Some(id) = call.get("id").and_then(Value::as_str) {
            calls.insert(id.to_owned(), name.to_owned());
        }
        out.push(json!({"functionCall": {"name": name, "args": args}}));
    }
    Ok(out)
}

fn tool_result(
    message: &Value,
    content: Option<&Value>,
    at: &str,
    calls: &HashMap<String, String>,
) -> Result<Value> {
    let id = message
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::field(format!("{at}.tool_call_id"), "is missing"))?;
    let name = calls.get(id).ok_or_else(|| {
        TranslateError::field(
            format!("{at}.tool_call_id"),
            format!("{id:?} answers no tool call of an earlier assistant message"),
        )
    })?;
    let text: String = match content {
        Some(Value::String(s)) => s.clone(),
        other => text_parts(other, &format!("{at}.content"))?
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect(),
    };
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(object)) => Value::Object(object),
        _ => json!({ "content": text }),
    };
    Ok(json!({"functionResponse": {"name": name, "response": response}}))
}

fn function_declarations(tools: &Value) -> Result<Value> {
    let tools = tools
        .as_array()
        .ok_or_else(|| TranslateError::field("tools", "must be a list"))?;
    let mut declarations = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        if tool.get("type").and_then(Value::as_str) != Some("function") {
            return Err(TranslateError::field(
                format!("tools[{i}].type"),
                "only `function` tools can be sent to Gemini",
            ));
        }
        let function = tool
            .get("function")
            .ok_or_else(|| TranslateError::field(format!("tools[{i}].function"), "is missing"))?;
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                TranslateError::field(format!("tools[{i}].function.name"), "is missing")
            })?;
        let mut declaration = json!({ "name": name });
        for (from, to) in [("description", "description"), ("parameters", "parameters")] {
            if let Some(value) = function.get(from).filter(|v| !v.is_null()) {
                declaration[to] = value.clone();
            }
        }
        declarations.push(declaration);
    }
    Ok(json!([{ "functionDeclarations": declarations }]))
}

fn tool_config(choice: &Value) -> Result<Value> {
    let mode = |mode: &str| json!({"functionCallingConfig": {"mode": mode}});
    match choice {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(mode("AUTO")),
            "none" => Ok(mode("NONE")),
            "required" => Ok(mode("ANY")),
            other => Err(TranslateError::field(
                "tool_choice",
                format!("{other:?} is not auto, none, required or a function"),
            )),
        },
        Value::Object(_) => {
            let name = choice
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| TranslateError::field("tool_choice.function.name", "is missing"))?;
            Ok(json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}))
        }
        _ => Err(TranslateError::field(
            "tool_choice",
            "must be a string or a function",
        )),
    }
}

fn generation_config(request: &Map<String, Value>) -> Result<Map<String, Value>> {
    let get = |key: &str| request.get(key).filter(|v| !v.is_null());
    let mut config = Map::new();
    if let Some(max) = get("max_completion_tokens").or_else(|| get("max_tokens")) {
        config.insert("maxOutputTokens".into(), max.clone());
    }
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        if let Some(value) = get(from) {
            config.insert(to.into(), value.clone());
        }
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
    if let Some(format) = get("response_format") {
        match format.get("type").and_then(Value::as_str) {
            Some("text") => {}
            Some("json_object") => {
                config.insert("responseMimeType".into(), json!("application/json"));
            }
            Some("json_schema") => {
                config.insert("responseMimeType".into(), json!("application/json"));
                if let Some(schema) = format.pointer("/json_schema/schema") {
                    config.insert("responseJsonSchema".into(), schema.clone());
                }
            }
            _ => {
                return Err(TranslateError::field(
                    "response_format.type",
                    "must be text, json_object or json_schema",
                ));
            }
        }
    }
    Ok(config)
}
