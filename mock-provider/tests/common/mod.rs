//! What every mock-provider test file needs: a server and a client for it.
#![allow(dead_code, clippy::unwrap_used)]

use mock_provider::{MockConfig, MockServer, spawn};

pub async fn server(config: MockConfig) -> MockServer {
    spawn(config).await.unwrap()
}

pub fn client() -> reqwest::Client {
    // Ignored error: another test already installed it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
