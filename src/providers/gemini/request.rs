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
use crate::providers::chat_request::{self, ChatRequest, Result, content, push_turn, role};

/// Translates `openai_body` into a `generateContent` body.
pub fn chat_to_gemini(openai_body: &[u8]) -> Result<Bytes> {
    let request = ChatRequest::parse(openai_body, "Gemini")?;
    let (system, contents) = turns(request.messages()?)?;
    let mut out = Map::new();
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({ "parts": system }));
    }
    if let Some(tools) = request.function_tools("Gemini")? {
        let declarations: Vec<Value> = tools
            .iter()
            .map(|tool| {
                let mut declaration = json!({ "name": tool.name });
                if let Some(description) = tool.description {
                    declaration["description"] = description.clone();
                }
                if let Some(parameters) = tool.parameters {
                    declaration["parameters"] = parameters.clone();
                }
                declaration
            })
            .collect();
        out.insert(
            "tools".into(),
            json!([{ "functionDeclarations": declarations }]),
        );
    }
    if let Some(choice) = request.get("tool_choice") {
        out.insert("toolConfig".into(), tool_config(choice)?);
    }
    let config = generation_config(&request)?;
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    ChatRequest::to_bytes(&Value::Object(out))
}

/// The system text parts, and the turns (`contents`) with roles merged.
fn turns(messages: &[Value]) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut system = Vec::new();
    let mut contents: Vec<(&str, Vec<Value>)> = Vec::new();
    // Tool call ids → function names, for the results that answer them.
    let mut calls: HashMap<String, String> = HashMap::new();
    for (i, message) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let content = content(message);
        let (role, parts) = match role(message, &at)? {
            "system" | "developer" => {
                system.extend(chat_request::text_parts(content, &format!("{at}.content"))?);
                continue;
            }
            "user" => (
                "user",
                chat_request::user_parts(content, &at, "Gemini", inline_image)?,
            ),
            "assistant" => ("model", assistant_parts(message, content, &at, &mut calls)?),
            "tool" => ("user", vec![tool_result(message, &at, &calls)?]),
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
        push_turn(&mut contents, role, parts);
    }
    let contents = contents
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect();
    Ok((system, contents))
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
    let mut out = chat_request::text_parts(content, &format!("{at}.content"))?;
    for call in chat_request::tool_calls(message, at)? {
        if let Some(id) = call.id {
            calls.insert(id.to_owned(), call.name.to_owned());
        }
        out.push(json!({"functionCall": {"name": call.name, "args": call.arguments}}));
    }
    Ok(out)
}

fn tool_result(message: &Value, at: &str, calls: &HashMap<String, String>) -> Result<Value> {
    let (id, text) = chat_request::tool_result(message, at)?;
    let name = calls.get(id).ok_or_else(|| {
        TranslateError::field(
            format!("{at}.tool_call_id"),
            format!("{id:?} answers no tool call of an earlier assistant message"),
        )
    })?;
    let response = match chat_request::result_object(&text) {
        Some(object) => Value::Object(object),
        None => json!({ "content": text }),
    };
    Ok(json!({"functionResponse": {"name": name, "response": response}}))
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

fn generation_config(request: &ChatRequest) -> Result<Map<String, Value>> {
    let mut config = Map::new();
    if let Some(max) = request.max_tokens() {
        config.insert("maxOutputTokens".into(), max.clone());
    }
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        if let Some(value) = request.get(from) {
            config.insert(to.into(), value.clone());
        }
    }
    if let Some(stop) = request.stop_sequences()? {
        config.insert("stopSequences".into(), stop);
    }
    if let Some(format) = request.get("response_format") {
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
