//! An OpenAI-compatible mock upstream for Tollgate's integration tests (in-process via [`spawn`])
//! and benchmarks (the `mock-provider` binary, via [`serve`]).
//!
//! The default path parses only `model`, `stream`, `stream_options` and `mock` from the request
//! and answers from bodies rendered at start-up, so it costs about as little as an HTTP server
//! can. A request may steer its own answer with a top-level `"mock"` object; see the README.

mod body;
mod chat;
mod config;
mod sse;

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

    /// Chat requests received so far, including malformed and error-answered ones.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The body of the most recent chat request, byte for byte as received.
    pub fn last_body(&self) -> Option<Bytes> {
        lock(&self.shared.last_body).clone()
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
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/health", get(|| async { "ok" }))
        // The gateway's own limits are under test, not the mock's.
        .layer(DefaultBodyLimit::disable())
        .with_state(shared)
}

async fn models() -> Response {
    chat::with_content_type(Body::from(body::MODELS_BODY), "application/json")
}

#[derive(Debug)]
struct Shared {
    config: MockConfig,
    /// Answers for requests without body-changing overrides, rendered once.
    bodies: body::Bodies,
    requests: AtomicU64,
    last_body: Mutex<Option<Bytes>>,
}

impl Shared {
    fn new(config: MockConfig) -> Self {
        let bodies = body::Bodies::new(&config.content, config.chunks, Some(config.usage));
        Self {
            config,
            bodies,
            requests: AtomicU64::new(0),
            last_body: Mutex::new(None),
        }
    }

    /// Counts the request and keeps its body; returns its number, counting from 1.
    fn record(&self, body: &Bytes) -> u64 {
        let previous = lock(&self.last_body).replace(body.clone());
        // Freeing the previous body happens after the lock is released.
        drop(previous);
        self.requests.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// A panic while holding the lock cannot leave an `Option<Bytes>` half-written, so poisoning
/// carries no information here.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
