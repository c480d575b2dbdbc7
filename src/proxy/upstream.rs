//! Upstream deployments as the data plane uses them: a pooled client per deployment, the
//! resolved URL and credentials, and sending with the deployment's timeouts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, header};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::error::ApiError;
use crate::config::{Deployment, ProviderKind};

pub struct Upstream {
    pub name: String,
    pub kind: ProviderKind,
    chat_url: String,
    /// Marked sensitive so it is never logged.
    auth: Option<HeaderValue>,
    client: reqwest::Client,
    request_timeout: Duration,
    pub read_timeout: Duration,
}

/// Where a public model name goes.
pub struct Route {
    pub upstream: Arc<Upstream>,
    pub upstream_model: String,
    /// The pricing entry that prices this route.
    pub price_name: String,
    /// True when the body's `model` must be rewritten for the upstream.
    pub renames_model: bool,
}

pub struct Routes {
    by_model: HashMap<String, Route>,
}

impl Routes {
    pub fn build(deployments: &[Deployment]) -> Result<Routes, reqwest::Error> {
        let mut by_model = HashMap::new();
        for d in deployments {
            let upstream = Arc::new(Upstream::build(d)?);
            for (public, route) in &d.models {
                by_model.insert(
                    public.clone(),
                    Route {
                        upstream: upstream.clone(),
                        upstream_model: route.upstream.clone(),
                        price_name: route.price.clone(),
                        renames_model: &route.upstream != public,
                    },
                );
            }
        }
        Ok(Routes { by_model })
    }

    pub fn get(&self, model: &str) -> Option<&Route> {
        self.by_model.get(model)
    }

    pub fn public_models(&self) -> impl Iterator<Item = &str> {
        self.by_model.keys().map(String::as_str)
    }
}

pub enum ChunkError {
    Timeout,
    Failed,
}

impl Upstream {
    fn build(d: &Deployment) -> Result<Upstream, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(d.connect_timeout)
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .build()?;
        let auth = d.api_key.as_ref().and_then(|key| {
            let mut value = HeaderValue::try_from(format!("Bearer {}", key.expose())).ok()?;
            value.set_sensitive(true);
            Some(value)
        });
        Ok(Upstream {
            name: d.name.clone(),
            kind: d.kind,
            chat_url: format!("{}/chat/completions", d.base_url),
            auth,
            client,
            request_timeout: d.request_timeout,
            read_timeout: d.read_timeout,
        })
    }

    /// Sends a chat request; resolves when the upstream's response headers arrive.
    pub async fn send_chat(&self, body: Bytes) -> Result<reqwest::Response, ApiError> {
        let mut request = self
            .client
            .post(&self.chat_url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(auth) = &self.auth {
            request = request.header(header::AUTHORIZATION, auth.clone());
        }
        match tokio::time::timeout(self.request_timeout, request.send()).await {
            Err(_) => Err(ApiError::UpstreamTimeout {
                deployment: self.name.clone(),
            }),
            Ok(Err(e)) if e.is_timeout() => Err(ApiError::UpstreamTimeout {
                deployment: self.name.clone(),
            }),
            Ok(Err(e)) => {
                tracing::warn!(deployment = %self.name, error = %e.without_url(), "upstream request failed");
                Err(ApiError::UpstreamUnreachable {
                    deployment: self.name.clone(),
                })
            }
            Ok(Ok(response)) => Ok(response),
        }
    }
}

/// A response body read piece by piece, each piece within the read timeout.
pub struct BodyReader {
    stream: BoxStream<'static, reqwest::Result<Bytes>>,
    read_timeout: Duration,
}

impl BodyReader {
    pub fn new(response: reqwest::Response, read_timeout: Duration) -> BodyReader {
        BodyReader {
            stream: response.bytes_stream().boxed(),
            read_timeout,
        }
    }

    pub async fn next(&mut self) -> Result<Option<Bytes>, ChunkError> {
        match tokio::time::timeout(self.read_timeout, self.stream.next()).await {
            Err(_) => Err(ChunkError::Timeout),
            Ok(None) => Ok(None),
            Ok(Some(Ok(bytes))) => Ok(Some(bytes)),
            Ok(Some(Err(_))) => Err(ChunkError::Failed),
        }
    }

    /// The whole remaining body, up to `limit` bytes.
    pub async fn read_all(&mut self, limit: usize) -> Result<Bytes, ChunkError> {
        let mut out = bytes::BytesMut::new();
        while let Some(chunk) = self.next().await? {
            if out.len() + chunk.len() > limit {
                return Err(ChunkError::Failed);
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }
}
