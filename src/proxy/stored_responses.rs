//! `GET` and `DELETE /v1/responses/{id}`: a response the Responses API stored upstream
//! (`store`, its default), passed through to the deployment that has it. The id says nothing
//! of where it was created, so the deployments that serve the Responses API for the key's
//! models are asked in configuration order until one does not answer 404. These calls use
//! no tokens: they are not admitted, charged or written to the ledger.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth;
use super::auth_failures::Peer;
use super::error::ApiError;
use super::operation::Operation;
use super::state::ProxyState;
use super::upstream::AttemptError;

/// Largest stored response passed back (a response with long outputs can be large).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Longest id accepted: OpenAI's are about 50 characters.
const MAX_ID_LEN: usize = 256;

pub async fn retrieve(
    State(state): State<ProxyState>,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let endpoint = "/v1/responses/{id}";
    let state = &state;
    auth::answer_for_key(state, peer, &headers, endpoint, |policy| async move {
        let allowed = |model: &str| policy.allows_model(model);
        pass_through(state, reqwest::Method::GET, &id, query.as_deref(), &allowed).await
    })
    .await
}

pub async fn delete(
    State(state): State<ProxyState>,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let endpoint = "/v1/responses/{id}";
    let state = &state;
    auth::answer_for_key(state, peer, &headers, endpoint, |policy| async move {
        let allowed = |model: &str| policy.allows_model(model);
        pass_through(state, reqwest::Method::DELETE, &id, None, &allowed).await
    })
    .await
}

/// Whether `id` can be put in an upstream path as it is.
fn plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

async fn pass_through(
    state: &ProxyState,
    method: reqwest::Method,
    id: &str,
    query: Option<&str>,
    allowed: &(dyn Fn(&str) -> bool + Sync),
) -> Response {
    if !plain_id(id) {
        return not_found(id);
    }
    let mut path = format!("/responses/{id}");
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        path.push('?');
        path.push_str(query);
    }
    let deadline = Instant::now() + state.routing.deadline;
    let deployments = state
        .routes
        .deployments_serving(Operation::Responses, allowed);
    let mut last_error = None;
    for upstream in &deployments {
        let response = match upstream.send_stored(method.clone(), &path, deadline).await {
            Ok(response) => response,
            Err(AttemptError::Timeout) => {
                last_error = Some(ApiError::UpstreamTimeout {
                    deployment: upstream.name.clone(),
                });
                continue;
            }
            Err(AttemptError::Unreachable) => {
                last_error = Some(ApiError::UpstreamUnreachable {
                    deployment: upstream.name.clone(),
                });
                continue;
            }
        };
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            continue;
        }
        return relay(response, &upstream.name).await;
    }
    match last_error {
        Some(e) => e.into_response(),
        None => not_found(id),
    }
}

/// The upstream's answer, status and JSON body as they came.
async fn relay(response: reqwest::Response, deployment: &str) -> Response {
    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let too_large = response
        .content_length()
        .is_some_and(|n| n > MAX_BODY as u64);
    let bytes = match response.bytes().await {
        Ok(bytes) if !too_large && bytes.len() <= MAX_BODY => bytes,
        _ => {
            return ApiError::UpstreamUnreachable {
                deployment: deployment.to_owned(),
            }
            .into_response();
        }
    };
    let mut out = Response::new(Body::from(bytes));
    *out.status_mut() = status;
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        content_type.unwrap_or(HeaderValue::from_static("application/json")),
    );
    out
}

/// OpenAI's answer for an unknown response id.
fn not_found(id: &str) -> Response {
    let shown: String = id.chars().take(64).collect();
    let body = serde_json::json!({"error": {
        "message": format!("no response with id {shown:?} is stored by any deployment this key may use"),
        "type": "invalid_request_error",
        "code": "not_found",
        "param": null,
    }});
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::plain_id;

    #[test]
    fn only_plain_ids_reach_an_upstream_path() {
        assert!(plain_id(
            "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b"
        ));
        for bad in [
            "",
            "../models",
            "a/b",
            "resp?x=1",
            "résumé",
            &"r".repeat(257),
        ] {
            assert!(!plain_id(bad), "{bad}");
        }
    }
}
