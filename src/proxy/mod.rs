//! The data plane: the OpenAI- and Anthropic-compatible endpoints clients call. It touches
//! no database for a key it has seen; per request the network calls are one Redis round trip
//! for admission (when a scope has limits), the upstream, and settlement after the answer.

mod admission;
mod auth;
mod auth_failures;
mod body;
mod error;
mod exchange;
mod finish;
mod forward;
mod handler;
mod headroom;
mod key_usage;
mod models;
mod operation;
mod refusal;
mod responses;
mod routing;
mod sse;
mod state;
mod stored_responses;
mod stream;
mod upstream;
mod usage;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::{get, post};

use crate::ids;

pub use auth_failures::{AuthFailures, ClientNet, Peer, Throttled};
pub use error::ApiError;
pub use finish::{COST_HEADER, REQUEST_ID_HEADER};
pub use routing::Routes;
pub use state::{ProxyInner, ProxyState};

/// Every route here authenticates its caller itself (there is no unauthenticated data-plane
/// route); health and metrics live on the router built in `app`.
pub fn router(state: ProxyState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(handler::chat_completions))
        .route("/v1/completions", post(handler::completions))
        .route("/v1/embeddings", post(handler::embeddings))
        .route("/v1/messages", post(handler::messages))
        .route("/v1/responses", post(handler::responses))
        .route(
            "/v1/responses/{id}",
            get(stored_responses::retrieve).delete(stored_responses::delete),
        )
        .route("/v1/models", get(models::list_models))
        .route("/v1/tollgate/usage", get(key_usage::key_usage))
        .fallback(|| async {
            finish::with_request_id(ApiError::NotFound.into_response(), ids::RequestId::new())
        })
        .with_state(state)
}
