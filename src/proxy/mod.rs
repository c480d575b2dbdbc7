//! The data plane: the OpenAI-compatible endpoints clients call. It touches no database for
//! a key it has seen; per request the only network call is the upstream.

mod admission;
mod auth;
mod body;
mod chat;
mod error;
mod exchange;
mod key_usage;
mod models;
mod sse;
mod state;
mod stream;
mod upstream;
mod usage;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::{get, post};

pub use chat::{COST_HEADER, REQUEST_ID_HEADER};
pub use error::ApiError;
pub use state::{ProxyInner, ProxyState};
pub use upstream::Routes;

/// Every route here authenticates its caller itself (there is no unauthenticated data-plane
/// route); health and metrics live on the router built in `app`.
pub fn router(state: ProxyState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/models", get(models::list_models))
        .route("/v1/tollgate/usage", get(key_usage::key_usage))
        .fallback(|| async { ApiError::NotFound.into_response() })
        .with_state(state)
}
