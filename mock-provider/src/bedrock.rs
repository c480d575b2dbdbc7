//! Bedrock mode: `POST /model/{id}/converse` and `/model/{id}/converse-stream`, answered in
//! Converse's shape (the stream in AWS event-stream frames, written with
//! `aws-smithy-eventstream`), steered by the same `mock` object as chat completions (`usage` in
//! chat's names: `prompt_tokens` is `inputTokens`, `completion_tokens` `outputTokens`,
//! `cached_tokens` `cacheReadInputTokens`). With `aws_credentials` configured, every request's
//! SigV4 signature is checked by signing the request again with `aws-sigv4` and the known
//! secret; a mismatch is a 403 `InvalidSignatureException`. A request with `toolConfig.toolChoice`
//! `any` or `tool` is answered with a `toolUse` of that (or the first) tool.

use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::Shared;
use crate::anthropic::{Answer, Content};
use crate::body::split_content;
use crate::config::{AnthropicUsage, MockOverrides, MockUsage};
use crate::exchange::{forced_status, sleep_ms};
use crate::sse::{self, Script};

pub(crate) async fn converse(
    State(shared): State<Arc<Shared>>,
    Path((_model, action)): Path<(String, String)>,
    request: Request,
) -> Response {
    let (stream, invoke) = match action.as_str() {
        "converse" => (false, false),
        "converse-stream" => (true, false),
        "invoke" => (false, true),
        "invoke-with-response-stream" => (true, true),
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                "mock: unknown operation",
            );
        }
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "mock: unreadable body",
        );
    };
    let path = parts.uri.path_and_query().map(|p| p.as_str().to_owned());
    let (n, scripted) = shared.record(&body, access_key(&parts.headers), path);
    let config = &shared.config;
    if let Some((id, secret)) = &config.aws_credentials
        && let Err(problem) = verify(&parts.method, &parts.uri, &parts.headers, &body, id, secret)
    {
        return error(StatusCode::FORBIDDEN, "InvalidSignatureException", &problem);
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                &format!("mock: {e}"),
            );
        }
    };
    if request["messages"].as_array().is_none_or(Vec::is_empty) {
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "The provided request is not valid: messages must not be empty",
        );
    }
    let overrides: Option<MockOverrides> = request
        .get("mock")
        .and_then(|m| serde_json::from_value(m.clone()).ok());
    let overrides = overrides.as_ref();
    let get = |field, default| MockOverrides::number(overrides, field, default);
    match forced_status(overrides.and_then(|o| o.status), scripted, n, config) {
        Ok(Some(status)) => {
            let kind = if status == StatusCode::TOO_MANY_REQUESTS {
                "ThrottlingException"
            } else {
                "InternalServerException"
            };
            return error(status, kind, "mock error");
        }
        Ok(None) => {}
        Err(message) => return error(StatusCode::BAD_REQUEST, "ValidationException", message),
    }
    sleep_ms(get(|o| o.delay_ms, config.delay_ms)).await;
    let usage = MockOverrides::reported_usage(overrides, config.usage);
    let content = MockOverrides::content(overrides, config);
    if invoke {
        let delay = get(|o| o.chunk_delay_ms, config.chunk_delay_ms);
        return invoke_answer(&request, config, usage, content, stream, delay);
    }
    let tool = forced_tool(&request);
    if !stream {
        let (blocks, stop) = match &tool {
            Some(name) => (
                json!([{"toolUse": {"toolUseId": format!("tooluse_{n}"), "name": name, "input": {}}}]),
                "tool_use",
            ),
            None => (json!([{ "text": content }]), "end_turn"),
        };
        let mut answer = json!({
            "output": {"message": {"role": "assistant", "content": blocks}},
            "stopReason": stop, "metrics": {"latencyMs": 1},
        });
        if let Some(u) = usage {
            answer["usage"] = usage_json(u);
        }
        let mut response = Response::new(Body::from(answer.to_string()));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        return response;
    }
    let chunks = overrides.and_then(|o| o.chunks).unwrap_or(config.chunks);
    let cut_after = overrides.and_then(|o| o.cut_after);
    let mut events = vec![frame("messageStart", &json!({"role": "assistant"}))];
    let stop = match &tool {
        Some(name) => {
            events.push(frame("contentBlockStart", &json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": format!("tooluse_{n}"), "name": name}}})));
            events.push(frame(
                "contentBlockDelta",
                &json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{}"}}}),
            ));
            "tool_use"
        }
        None => {
            let pieces = split_content(content, chunks.max(1));
            let sent = cut_after.map_or(pieces.len(), |cut| cut.min(pieces.len()));
            for piece in &pieces[..sent] {
                events.push(frame(
                    "contentBlockDelta",
                    &json!({"contentBlockIndex": 0, "delta": {"text": piece}}),
                ));
            }
            "end_turn"
        }
    };
    if cut_after.is_none() {
        events.push(frame("contentBlockStop", &json!({"contentBlockIndex": 0})));
        events.push(frame("messageStop", &json!({ "stopReason": stop })));
        let mut metadata = json!({"metrics": {"latencyMs": 1}});
        if let Some(u) = usage {
            metadata["usage"] = usage_json(u);
        }
        events.push(frame("metadata", &metadata));
    }
    let mut response = sse::response(Script {
        events,
        chunk_delay: Duration::from_millis(get(|o| o.chunk_delay_ms, config.chunk_delay_ms)),
        hang: Duration::from_millis(get(|o| o.hang_ms, 0)),
        first_content: 1,
        abort: cut_after.is_some(),
    });
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    response
}

/// InvokeModel with an Anthropic Messages body: Anthropic's own answer, or its stream events
/// wrapped in `chunk` frames (`{"bytes": base64 of the event}`), as Bedrock sends them.
fn invoke_answer(
    request: &Value,
    config: &crate::config::MockConfig,
    usage: Option<MockUsage>,
    content: &str,
    stream: bool,
    chunk_delay_ms: u64,
) -> Response {
    if request.get("model").is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "Malformed input request: extraneous key [model] is not permitted",
        );
    }
    if request["anthropic_version"].as_str() != Some("bedrock-2023-05-31") {
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "Malformed input request: anthropic_version is required (bedrock-2023-05-31)",
        );
    }
    let answer = Answer {
        model: "claude-on-bedrock",
        content: Content::Text(content),
        usage: usage.map(AnthropicUsage::from),
        raw_usage: None,
    };
    if !stream {
        let mut response = Response::new(Body::from(answer.json()));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        return response;
    }
    let events = answer
        .events(config.chunks, config.chunks, true)
        .into_iter()
        .filter_map(|event| {
            let text = String::from_utf8(event).ok()?;
            let data = text
                .lines()
                .find_map(|l| l.strip_prefix("data: "))?
                .to_owned();
            let payload = json!({ "bytes": aws_smithy_types::base64::encode(data) });
            Some(frame("chunk", &payload))
        })
        .collect();
    let mut response = sse::response(Script {
        events,
        chunk_delay: Duration::from_millis(chunk_delay_ms),
        hang: Duration::ZERO,
        first_content: 3,
        abort: false,
    });
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    response
}

/// The tool a `toolChoice` of `any` or `tool` makes the model call.
fn forced_tool(request: &Value) -> Option<String> {
    let config = request.get("toolConfig")?;
    let choice = config.get("toolChoice")?;
    if let Some(name) = choice.pointer("/tool/name") {
        return name.as_str().map(str::to_owned);
    }
    choice.get("any")?;
    config
        .pointer("/tools/0/toolSpec/name")?
        .as_str()
        .map(str::to_owned)
}

fn usage_json(u: MockUsage) -> Value {
    json!({
        "inputTokens": u.prompt_tokens,
        "outputTokens": u.completion_tokens,
        "totalTokens": u.prompt_tokens.saturating_add(u.completion_tokens).saturating_add(u.cached_tokens),
        "cacheReadInputTokens": u.cached_tokens,
        "cacheWriteInputTokens": 0,
    })
}

/// One event-stream frame of a ConverseStream answer.
fn frame(event_type: &'static str, payload: &Value) -> Bytes {
    let message = Message::new(Bytes::from(payload.to_string()))
        .add_header(Header::new(
            ":event-type",
            HeaderValue::String(event_type.into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("event".into()),
        ));
    let mut out = Vec::new();
    // Writing to a Vec cannot fail for a message this size.
    let _ = write_message_to(&message, &mut out);
    Bytes::from(out)
}

/// The access key id of the request's SigV4 `Authorization` header.
fn access_key(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.split("Credential=").nth(1)?.split('/').next()
}

/// Signs the request again with the known secret, as the gateway should have, and compares.
fn verify(
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
    id: &str,
    secret: &str,
) -> Result<(), String> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let authorization =
        text("authorization").ok_or("mock: the request is not signed (no Authorization header)")?;
    let date = text("x-amz-date").ok_or("mock: no x-amz-date header")?;
    let at = chrono::NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| format!("mock: x-amz-date {date:?} is not a time"))?
        .and_utc();
    let region = authorization
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').nth(2))
        .ok_or("mock: no region in the credential scope")?;
    let host = text("host").ok_or("mock: no host header")?;
    let url = format!(
        "http://{host}{}",
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let identity: Identity = Credentials::new(id, secret, None, None, "mock").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("bedrock")
        .time(std::time::SystemTime::from(at))
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signed_names: Vec<&str> = authorization
        .split("SignedHeaders=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .map(|s| s.split(';').collect())
        .unwrap_or_default();
    let others: Vec<(&str, &str)> = signed_names
        .iter()
        .filter(|n| !matches!(**n, "host" | "x-amz-date"))
        .filter_map(|n| Some((*n, text(n)?)))
        .collect();
    let request = SignableRequest::new(
        method.as_str(),
        &url,
        others.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let expected = instructions
        .headers()
        .find(|(name, _)| *name == "authorization")
        .map(|(_, value)| value.to_owned())
        .unwrap_or_default();
    if expected == authorization {
        Ok(())
    } else {
        Err("The request signature we calculated does not match the signature you provided.".into())
    }
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let mut response = Response::new(Body::from(json!({ "message": message }).to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    if let Ok(value) = header::HeaderValue::try_from(kind) {
        headers.insert("x-amzn-errortype", value);
    }
    response
}
