//! An OpenAI chat-completions request translated into an Anthropic Messages request.
//!
//! Translated:
//! - `system` and `developer` messages → the top-level `system` (a string for one string
//!   message, text blocks otherwise), wherever they appear in `messages`;
//! - `user` content: strings and `text` parts → text blocks; `image_url` parts → image blocks
//!   (`data:` URLs as base64 sources, http(s) URLs as url sources);
//! - `assistant` content (`text` and `refusal` parts) → text blocks, `tool_calls` → `tool_use`
//!   blocks (the arguments string parsed into `input`);
//! - `tool` messages → `tool_result` blocks in a user message;
//! - consecutive messages of one role (after the above) merged into one, since Anthropic needs
//!   the roles to alternate; empty text is dropped, since Anthropic refuses empty text blocks;
//! - `max_completion_tokens`, else `max_tokens`, else the default → `max_tokens`;
//! - `stop` → `stop_sequences`; `temperature`, `top_p`, `stream` as they are;
//! - `tools` (function tools) → `name`/`description`/`input_schema`; `tool_choice` `auto`,
//!   `none`, `required` (→ `any`) or a named function (→ `tool`); `parallel_tool_calls: false`
//!   → `disable_parallel_tool_use`;
//! - `user` → `metadata.user_id`;
//! - a `cache_control` object on a content part, a system part or a tool is kept, so prompt
//!   caching can be asked for through the OpenAI format.
//!
//! Ignored, having no Anthropic equivalent: `frequency_penalty`, `presence_penalty`,
//! `logit_bias`, `logprobs`, `top_logprobs`, `seed`, `response_format`, `service_tier`,
//! `store`, `metadata`, `modalities`, `audio`, `prediction`, `reasoning_effort`, `verbosity`,
//! `web_search_options`, `prompt_cache_key`, `safety_identifier`, `stream_options` (read into
//! [`RequestFacts`]), `n` when 1, a message's `name`, `image_url.detail`, a tool's `strict`.
//!
//! Refused, because ignoring them would change the answer: `n` > 1, tools other than
//! functions, content parts other than text and images (audio, files), images outside user
//! messages, the legacy `function` role and `functions`/`function_call`.

mod messages;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use self::messages::messages;
use super::TranslateError;

/// What the proxy needs to know about a translated request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestFacts {
    pub stream: bool,
    /// The client asked for the usage chunk (`stream_options.include_usage`).
    pub client_wants_usage: bool,
    /// The `max_tokens` sent upstream.
    pub max_tokens: u64,
}

type Result<T> = std::result::Result<T, TranslateError>;

/// Translates `openai_body` into a Messages request for `upstream_model`. `default_max_tokens`
/// is used when the client set no limit (Anthropic requires one).
pub fn chat_to_messages(
    openai_body: &[u8],
    upstream_model: &str,
    default_max_tokens: u64,
) -> Result<(Bytes, RequestFacts)> {
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
            "must be 1: Anthropic answers with one choice",
        ));
    }

    let mut out = Map::new();
    out.insert("model".into(), upstream_model.into());
    let max_tokens = max_tokens(&request, default_max_tokens)?;
    out.insert("max_tokens".into(), max_tokens.into());
    let (system, messages) = messages(get("messages"))?;
    if let Some(system) = system {
        out.insert("system".into(), system);
    }
    out.insert("messages".into(), messages);

    if let Some(stop) = get("stop") {
        let sequences = match stop {
            Value::String(s) => vec![Value::String(s.clone())],
            Value::Array(items) if items.iter().all(Value::is_string) => items.clone(),
            _ => {
                return Err(TranslateError::field(
                    "stop",
                    "must be a string or an array of strings",
                ));
            }
        };
        if !sequences.is_empty() {
            out.insert("stop_sequences".into(), Value::Array(sequences));
        }
    }
    for key in ["temperature", "top_p"] {
        if let Some(value) = get(key) {
            if !value.is_number() {
                return Err(TranslateError::field(key, "must be a number"));
            }
            out.insert(key.into(), value.clone());
        }
    }
    let stream = flag(get("stream"), "stream")?;
    if stream {
        out.insert("stream".into(), true.into());
    }
    let tools = tools(get("tools"))?;
    let has_tools = tools.is_some();
    if let Some(tools) = tools {
        out.insert("tools".into(), tools);
    }
    let parallel = match get("parallel_tool_calls") {
        None => true,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| TranslateError::field("parallel_tool_calls", "must be a boolean"))?,
    };
    if let Some(choice) = tool_choice(get("tool_choice"), parallel, has_tools)? {
        out.insert("tool_choice".into(), choice);
    }
    if let Some(user) = get("user") {
        let user = user
            .as_str()
            .ok_or_else(|| TranslateError::field("user", "must be a string"))?;
        out.insert("metadata".into(), json!({ "user_id": user }));
    }

    let client_wants_usage = match get("stream_options") {
        None => false,
        Some(Value::Object(o)) => flag(
            o.get("include_usage").filter(|v| !v.is_null()),
            "stream_options.include_usage",
        )?,
        Some(_) => {
            return Err(TranslateError::field("stream_options", "must be an object"));
        }
    };
    let body =
        serde_json::to_vec(&Value::Object(out)).map_err(|e| TranslateError::Json(e.to_string()))?;
    Ok((
        Bytes::from(body),
        RequestFacts {
            stream,
            client_wants_usage,
            max_tokens,
        },
    ))
}

fn flag(value: Option<&Value>, field: &str) -> Result<bool> {
    match value {
        None => Ok(false),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| TranslateError::field(field, "must be a boolean")),
    }
}

fn max_tokens(request: &Map<String, Value>, default: u64) -> Result<u64> {
    for key in ["max_completion_tokens", "max_tokens"] {
        if let Some(value) = request.get(key).filter(|v| !v.is_null()) {
            return match value.as_u64() {
                Some(n) if n > 0 => Ok(n),
                _ => Err(TranslateError::field(key, "must be a positive integer")),
            };
        }
    }
    Ok(default)
}

fn tools(value: Option<&Value>) -> Result<Option<Value>> {
    let Some(value) = value else {
        return Ok(None);
    };
    let list = value
        .as_array()
        .ok_or_else(|| TranslateError::field("tools", "must be an array"))?;
    if list.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, tool) in list.iter().enumerate() {
        let at = |field: &str| format!("tools[{i}]{field}");
        if tool.get("type").and_then(Value::as_str) != Some("function") {
            return Err(TranslateError::field(
                at(".type"),
                "must be `function`: Anthropic takes only function tools here",
            ));
        }
        let function = tool
            .get("function")
            .and_then(Value::as_object)
            .ok_or_else(|| TranslateError::field(at(".function"), "must be an object"))?;
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| TranslateError::field(at(".function.name"), "must be a string"))?;
        let mut translated = Map::new();
        translated.insert("name".into(), name.into());
        match function.get("description") {
            None | Some(Value::Null) => {}
            Some(Value::String(d)) => {
                translated.insert("description".into(), d.as_str().into());
            }
            Some(_) => {
                return Err(TranslateError::field(
                    at(".function.description"),
                    "must be a string",
                ));
            }
        }
        let schema = match function.get("parameters") {
            None | Some(Value::Null) => json!({ "type": "object", "properties": {} }),
            Some(schema @ Value::Object(_)) => schema.clone(),
            Some(_) => {
                return Err(TranslateError::field(
                    at(".function.parameters"),
                    "must be a JSON Schema object",
                ));
            }
        };
        translated.insert("input_schema".into(), schema);
        if let Some(cache) = tool.get("cache_control").filter(|c| c.is_object()) {
            translated.insert("cache_control".into(), cache.clone());
        }
        out.push(Value::Object(translated));
    }
    Ok(Some(Value::Array(out)))
}

fn tool_choice(value: Option<&Value>, parallel: bool, has_tools: bool) -> Result<Option<Value>> {
    let mut choice = match value {
        None if !parallel && has_tools => json!({ "type": "auto" }),
        None => return Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => json!({ "type": "auto" }),
            "none" => json!({ "type": "none" }),
            "required" => json!({ "type": "any" }),
            other => {
                return Err(TranslateError::field(
                    "tool_choice",
                    format!("`{other}` is not one of `auto`, `none`, `required`"),
                ));
            }
        },
        Some(Value::Object(o)) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .filter(|_| o.get("type").and_then(Value::as_str) == Some("function"))
                .ok_or_else(|| {
                    TranslateError::field(
                        "tool_choice",
                        "must be `auto`, `none`, `required` or {\"type\":\"function\",\"function\":{\"name\":...}}",
                    )
                })?;
            json!({ "type": "tool", "name": name })
        }
        Some(_) => {
            return Err(TranslateError::field(
                "tool_choice",
                "must be a string or an object",
            ));
        }
    };
    let accepts_flag = choice.get("type").and_then(Value::as_str) != Some("none");
    if let (false, true, Some(map)) = (parallel, accepts_flag, choice.as_object_mut()) {
        map.insert("disable_parallel_tool_use".into(), true.into());
    }
    Ok(Some(choice))
}
