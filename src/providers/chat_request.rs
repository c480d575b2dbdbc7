//! Reading an OpenAI chat-completions request, shared by the translators that build another
//! API's request from it (Gemini, Bedrock): the checks every one of them makes, and the parts
//! of messages and tools in a form each can turn into its own blocks. Errors name the field.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::TranslateError;

pub type Result<T> = std::result::Result<T, TranslateError>;

/// A chat request's top-level fields.
pub struct ChatRequest {
    fields: Map<String, Value>,
}

/// One tool call of an assistant message.
pub struct ToolCall<'a> {
    pub id: Option<&'a str>,
    pub name: &'a str,
    /// The arguments string parsed (`{}` when empty).
    pub arguments: Value,
}

/// One function tool.
pub struct FunctionTool<'a> {
    pub name: &'a str,
    pub description: Option<&'a Value>,
    pub parameters: Option<&'a Value>,
}

impl ChatRequest {
    /// Parses `body` and refuses what no translation can carry: the legacy `functions` /
    /// `function_call`, and `n` > 1 (`provider` answers with one choice).
    pub fn parse(body: &[u8], provider: &str) -> Result<ChatRequest> {
        let fields: Map<String, Value> =
            serde_json::from_slice(body).map_err(|e| TranslateError::Json(e.to_string()))?;
        let request = ChatRequest { fields };
        for refused in ["functions", "function_call"] {
            if request.get(refused).is_some() {
                return Err(TranslateError::field(
                    refused,
                    "is not supported; use `tools` and `tool_choice`",
                ));
            }
        }
        if let Some(n) = request.get("n")
            && n.as_u64() != Some(1)
        {
            return Err(TranslateError::field(
                "n",
                format!("must be 1: {provider} answers with one choice"),
            ));
        }
        Ok(request)
    }

    /// A field that is present and not `null`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key).filter(|v| !v.is_null())
    }

    pub fn messages(&self) -> Result<&[Value]> {
        self.get("messages")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .ok_or_else(|| TranslateError::field("messages", "must be a list of messages"))
    }

    /// `max_completion_tokens`, else `max_tokens`.
    pub fn max_tokens(&self) -> Option<&Value> {
        self.get("max_completion_tokens")
            .or_else(|| self.get("max_tokens"))
    }

    /// `stop` as a list of sequences.
    pub fn stop_sequences(&self) -> Result<Option<Value>> {
        match self.get("stop") {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(Value::Array(vec![Value::String(s.clone())]))),
            Some(Value::Array(list)) => Ok(Some(Value::Array(list.clone()))),
            Some(_) => Err(TranslateError::field(
                "stop",
                "must be a string or a list of strings",
            )),
        }
    }

    /// The function tools; any other kind is refused (`provider` takes functions only).
    pub fn function_tools(&self, provider: &str) -> Result<Option<Vec<FunctionTool<'_>>>> {
        let Some(tools) = self.get("tools") else {
            return Ok(None);
        };
        let tools = tools
            .as_array()
            .ok_or_else(|| TranslateError::field("tools", "must be a list"))?;
        let mut out = Vec::with_capacity(tools.len());
        for (i, tool) in tools.iter().enumerate() {
            if tool.get("type").and_then(Value::as_str) != Some("function") {
                return Err(TranslateError::field(
                    format!("tools[{i}].type"),
                    format!("only `function` tools can be sent to {provider}"),
                ));
            }
            let name = tool
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    TranslateError::field(format!("tools[{i}].function.name"), "is missing")
                })?;
            let present = |pointer: &str| tool.pointer(pointer).filter(|v| !v.is_null());
            out.push(FunctionTool {
                name,
                description: present("/function/description"),
                parameters: present("/function/parameters"),
            });
        }
        Ok(Some(out))
    }

    /// Serializes a translated body.
    pub fn to_bytes(body: &Value) -> Result<Bytes> {
        serde_json::to_vec(body)
            .map(Bytes::from)
            .map_err(|e| TranslateError::Json(e.to_string()))
    }
}

/// A message's role.
pub fn role<'a>(message: &'a Value, at: &str) -> Result<&'a str> {
    message
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::field(format!("{at}.role"), "is missing"))
}

/// A message's `content`, when present and not `null`.
pub fn content(message: &Value) -> Option<&Value> {
    message.get("content").filter(|c| !c.is_null())
}

/// The texts of a string or of a list of `text` (and `refusal`) parts; empty texts are left
/// out. `at` is the content's path.
pub fn texts<'a>(content: Option<&'a Value>, at: &str) -> Result<Vec<&'a str>> {
    match content {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok((!s.is_empty()).then_some(s.as_str()).into_iter().collect()),
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
                    out.push(text);
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

/// `{"text": ...}` parts (Gemini's parts and Converse's blocks have this shape alike) of the
/// texts of `content`.
pub fn text_parts(content: Option<&Value>, at: &str) -> Result<Vec<Value>> {
    Ok(texts(content, at)?
        .into_iter()
        .map(|text| serde_json::json!({ "text": text }))
        .collect())
}

/// A user message's content as `{"text": ...}` parts and the images `image` translates (given
/// the part and its path); other parts are refused, naming `provider`. `at` is the message's
/// path.
pub fn user_parts(
    content: Option<&Value>,
    at: &str,
    provider: &str,
    image: impl Fn(&Value, &str) -> Result<Value>,
) -> Result<Vec<Value>> {
    let Some(Value::Array(parts)) = content else {
        return text_parts(content, &format!("{at}.content"));
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
                    out.push(serde_json::json!({ "text": text }));
                }
            }
            Some("image_url") => out.push(image(part, &here)?),
            Some(other) => {
                return Err(TranslateError::field(
                    format!("{here}.type"),
                    format!(
                        "{other:?} parts are not supported for {provider}; send text and images"
                    ),
                ));
            }
            None => return Err(TranslateError::field(format!("{here}.type"), "is missing")),
        }
    }
    Ok(out)
}

/// An assistant message's tool calls, their arguments parsed.
pub fn tool_calls<'a>(message: &'a Value, at: &str) -> Result<Vec<ToolCall<'a>>> {
    let Some(calls) = message.get("tool_calls").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let calls = calls
        .as_array()
        .ok_or_else(|| TranslateError::field(format!("{at}.tool_calls"), "must be a list"))?;
    let mut out = Vec::with_capacity(calls.len());
    for (j, call) in calls.iter().enumerate() {
        let here = format!("{at}.tool_calls[{j}]");
        let name = call
            .pointer("/function/name")
            .and_then(Value::as_str)
            .ok_or_else(|| TranslateError::field(format!("{here}.function.name"), "is missing"))?;
        let arguments = call
            .pointer("/function/arguments")
            .and_then(Value::as_str)
            .filter(|a| !a.trim().is_empty())
            .unwrap_or("{}");
        let arguments = serde_json::from_str(arguments).map_err(|_| {
            TranslateError::field(
                format!("{here}.function.arguments"),
                "must be a JSON object (as a string)",
            )
        })?;
        out.push(ToolCall {
            id: call.get("id").and_then(Value::as_str),
            name,
            arguments,
        });
    }
    Ok(out)
}

/// A `tool` message's call id and result text.
pub fn tool_result<'a>(message: &'a Value, at: &str) -> Result<(&'a str, String)> {
    let id = message
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::field(format!("{at}.tool_call_id"), "is missing"))?;
    let text = texts(content(message), &format!("{at}.content"))?.concat();
    Ok((id, text))
}

/// A tool result that is a JSON object, as that object.
pub fn result_object(text: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str(text) {
        Ok(Value::Object(object)) => Some(object),
        _ => None,
    }
}

/// The parts of one turn appended to the last turn when it has the same role (the APIs
/// translated to need roles to alternate), else as a new turn.
pub fn push_turn<R: PartialEq>(turns: &mut Vec<(R, Vec<Value>)>, role: R, parts: Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((last, existing)) if *last == role => existing.extend(parts),
        _ => turns.push((role, parts)),
    }
}
