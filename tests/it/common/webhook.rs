//! A webhook receiver on a real socket: records every delivery it is sent and answers with
//! the status the test sets.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub signature: String,
    pub event_id: String,
    pub body: Bytes,
    /// What the receiver answered.
    pub status: u16,
}

impl Delivery {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Clone)]
struct Shared {
    status: Arc<AtomicU16>,
    got: Arc<Mutex<Vec<Delivery>>>,
}

pub struct Receiver {
    pub url: String,
    shared: Shared,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let shared = Shared {
            status: Arc::new(AtomicU16::new(200)),
            got: Arc::new(Mutex::new(Vec::new())),
        };
        let app = axum::Router::new()
            .route("/hook/{token}", axum::routing::post(receive))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/hook/not-shown-anywhere",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, shared }
    }

    /// What the receiver answers from now on.
    pub fn answer(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    pub fn all(&self) -> Vec<Delivery> {
        self.shared.got.lock().unwrap().clone()
    }

    /// Waits until `done` holds for what arrived, for at most `within`.
    pub async fn wait_for(&self, within: Duration, what: &str, done: impl Fn(&[Delivery]) -> bool) {
        let start = tokio::time::Instant::now();
        loop {
            let got = self.all();
            if done(&got) {
                return;
            }
            assert!(
                start.elapsed() < within,
                "waited {within:?} for {what}; got {} deliveries: {:#?}",
                got.len(),
                got.iter().map(Delivery::json).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let status = shared.status.load(Ordering::SeqCst);
    shared.got.lock().unwrap().push(Delivery {
        signature: header("x-tollgate-signature"),
        event_id: header("x-tollgate-event-id"),
        body,
        status,
    });
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
