//! A mock upstream, OpenAI-compatible (`/v1/chat/completions`) and Anthropic-native
//! (`/v1/messages`), for Tollgate's integration tests (in-process via [`spawn`]) and benchmarks
//! (the `mock-provider` binary, via [`serve`]).
//!
//! The default chat path parses only `model`, `stream`, `stream_options` and `mock` from the
//! request and answers from bodies rendered at start-up, so it costs about as little as an HTTP
//! server can. A request may steer its own answer with a top-level `"mock"` object, and a
//! request's API key may have a script of failures; see the README.

mod anthropic;
mod bedrock;
mod body;
mod chat;
mod config;
mod exchange;
mod gemini;
mod legacy;
mod messages;
mod responses;
mod sse;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::response::Response;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use bytes::Bytes;
use tokio::net::TcpListener;

pub use config::{MockConfig, MockUsage};

/// A mock running on a task of the current tokio runtime.
///
/// Dropping it does not stop the server: it keeps serving until the runtime shuts down (for a
/// `#[tokio::test]`, at the end of the test), so a helper may return just the URL.
#[derive(Clone, Debug)]
pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl MockServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/v1`, what an OpenAI client takes as its base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Chat and messages requests received so far, including malformed and error-answered ones.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Chat and messages requests received so far with API key `key` (`Authorization: Bearer`
    /// or `x-api-key`), including malformed and error-answered ones.
    pub fn requests_for_key(&self, key: &str) -> u64 {
        lock(&self.shared.tracked)
            .per_key
            .get(key)
            .copied()
            .unwrap_or(0)
    }

    /// The body of the most recent chat or messages request, byte for byte as received.
    /// The path and query of the last request received (Azure's and Gemini's carry the
    /// deployment, the model and the `api-version`).
    pub fn last_path(&self) -> Option<String> {
        lock(&self.shared.tracked).last_path.clone()
    }

    pub fn last_body(&self) -> Option<Bytes> {
        lock(&self.shared.tracked).last_body.clone()
    }
}

/// Binds `127.0.0.1:0` and serves on a spawned task.
pub async fn spawn(config: MockConfig) -> std::io::Result<MockServer> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::new(config));
    tokio::spawn(run(listener, Arc::clone(&shared)));
    Ok(MockServer { addr, shared })
}

/// Serves on `listener` until the process ends.
pub async fn serve(listener: TcpListener, config: MockConfig) -> std::io::Result<()> {
    run(listener, Arc::new(Shared::new(config))).await
}

async fn run(listener: TcpListener, shared: Arc<Shared>) -> std::io::Result<()> {
    // Streams write many small events; without TCP_NODELAY, Nagle would hold each one back until
    // the previous is acknowledged and blur the timing that chunk_delay_ms promises.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(shared)).await
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat::completions))
        .route("/chat/completions", post(chat::completions))
        .route("/v1/messages", post(messages::messages))
        .route("/v1/embeddings", post(legacy::embeddings))
        .route("/embeddings", post(legacy::embeddings))
        .route("/v1/completions", post(legacy::completions))
        .route("/completions", post(legacy::completions))
        .route("/messages", post(messages::messages))
        .route("/model/{model}/{action}", post(bedrock::converse))
        .route("/v1beta/models/{call}", post(gemini::generate))
        .route("/v1/models/{call}", post(gemini::generate))
        .route("/models/{call}", post(gemini::generate))
        // Azure OpenAI: deployment URLs (`?api-version=`) and the /openai/v1/ API.
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(chat::completions),
        )
        .route(
            "/openai/deployments/{deployment}/completions",
            post(legacy::completions),
        )
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(legacy::embeddings),
        )
        .route("/openai/v1/chat/completions", post(chat::completions))
        .route("/openai/v1/completions", post(legacy::completions))
        .route("/openai/v1/embeddings", post(legacy::embeddings))
        .route("/openai/v1/responses", post(responses::create))
        .route("/openai/responses", post(responses::create))
        .route(
            "/openai/v1/responses/{id}",
            get(responses::retrieve).delete(responses::delete),
        )
        .route(
            "/openai/responses/{id}",
            get(responses::retrieve).delete(responses::delete),
        )
        .route("/v1/responses", post(responses::create))
        .route("/responses", post(responses::create))
        .route(
            "/v1/responses/{id}",
            get(responses::retrieve).delete(responses::delete),
        )
        .route(
            "/responses/{id}",
            get(responses::retrieve).delete(responses::delete),
        )
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/health", get(|| async { "ok" }))
        // The gateway's own limits are under test, not the mock's.
        .layer(DefaultBodyLimit::disable())
        .with_state(shared)
}

async fn models() -> Response {
    exchange::with_content_type(Body::from(body::MODELS_BODY), "application/json")
}

#[derive(Debug)]
struct Shared {
    config: MockConfig,
    /// Answers for chat requests without body-changing overrides, rendered once.
    bodies: body::Bodies,
    requests: AtomicU64,
    /// Everything a request updates behind one lock, so recording costs a single acquisition.
    tracked: Mutex<Tracked>,
}

#[derive(Debug, Default)]
struct Tracked {
    last_body: Option<Bytes>,
    last_path: Option<String>,
    per_key: HashMap<String, u64>,
    /// What is left of each key's `key_failures` script.
    scripts: HashMap<String, VecDeque<u16>>,
    /// Responses stored by `POST /v1/responses`, oldest first, at most [`STORED_RESPONSES`].
    stored: VecDeque<(String, String)>,
}

/// How many stored responses the mock keeps.
const STORED_RESPONSES: usize = 1000;

impl Shared {
    fn new(config: MockConfig) -> Self {
        let bodies = match &config.raw_usage {
            Some(raw) => {
                body::Bodies::with_usage_json(&config.content, config.chunks, Some(raw.clone()))
            }
            None => body::Bodies::new(&config.content, config.chunks, Some(config.usage)),
        };
        let scripts = config
            .key_failures
            .iter()
            .map(|(key, statuses)| (key.clone(), statuses.iter().copied().collect()))
            .collect();
        Self {
            config,
            bodies,
            requests: AtomicU64::new(0),
            tracked: Mutex::new(Tracked {
                scripts,
                ..Tracked::default()
            }),
        }
    }

    /// Counts the request (per key too), keeps its body and takes the next status off the key's
    /// script; returns the request's number, counting from 1, and that status.
    fn record(&self, body: &Bytes, key: Option<&str>, path: Option<String>) -> (u64, Option<u16>) {
        let (previous, scripted) = {
            let mut tracked = lock(&self.tracked);
            let previous = tracked.last_body.replace(body.clone());
            tracked.last_path = path;
            let scripted = key.and_then(|key| {
                match tracked.per_key.get_mut(key) {
                    Some(count) => *count += 1,
                    None => {
                        tracked.per_key.insert(key.to_owned(), 1);
                    }
                }
                tracked.scripts.get_mut(key)?.pop_front()
            });
            (previous, scripted)
        };
        // Freeing the previous body happens after the lock is released.
        drop(previous);
        (self.requests.fetch_add(1, Ordering::SeqCst) + 1, scripted)
    }
}

impl Shared {
    fn store_response(&self, id: &str, body: String) {
        let mut tracked = lock(&self.tracked);
        if tracked.stored.len() >= STORED_RESPONSES {
            tracked.stored.pop_front();
        }
        tracked.stored.push_back((id.to_owned(), body));
    }

    /// Keeps a request's path as the last one seen (for requests without a body to record).
    fn note_path(&self, uri: &axum::http::Uri) {
        lock(&self.tracked).last_path = uri.path_and_query().map(|p| p.as_str().to_owned());
    }

    /// A stored response's body; `remove` deletes it too.
    fn stored_response(&self, id: &str, remove: bool) -> Option<String> {
        let mut tracked = lock(&self.tracked);
        let at = tracked.stored.iter().position(|(stored, _)| stored == id)?;
        if remove {
            tracked.stored.remove(at).map(|(_, body)| body)
        } else {
            tracked.stored.get(at).map(|(_, body)| body.clone())
        }
    }
}

/// Nothing panics while holding the lock (counters, a body swap, a queue pop), so poisoning
/// carries no information here.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
