//! Upstream deployments as the data plane uses them: a pooled client per deployment, its
//! key pool with per-key cool-downs, and sending one attempt with the deployment's timeouts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::operation::Operation;
use crate::config::{AzureOptions, BedrockOptions, Deployment, ProviderKind};
use crate::providers::{azure, bedrock};

const ANTHROPIC_VERSION: &str = "2023-06-01";

pub struct Upstream {
    pub name: String,
    pub kind: ProviderKind,
    base_url: String,
    /// `base_url` joined with each upstream path, parsed once rather than on every request.
    urls: Vec<(&'static str, reqwest::Url)>,
    pub keys: Vec<UpstreamKey>,
    client: reqwest::Client,
    pub weight: u32,
    pub priority: u32,
    first_byte_timeout: Duration,
    read_timeout: Duration,
    /// Longest a whole exchange may take, answer body included (none by default).
    total_timeout: Option<Duration>,
    pub retries: u32,
    cooldown: Duration,
    /// Cool-down deadlines are kept as milliseconds since this instant, in atomics.
    epoch: Instant,
    azure: AzureOptions,
    bedrock: Option<BedrockOptions>,
}

/// One provider key of the pool (a keyless server has one entry without credentials).
pub struct UpstreamKey {
    /// Marked sensitive so it is never logged.
    credential: Option<HeaderValue>,
    pub weight: u32,
    cool_until_ms: AtomicU64,
}

pub enum AttemptError {
    Timeout,
    Unreachable,
}

impl Upstream {
    pub fn build(d: &Deployment) -> Result<Upstream, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(d.connect_timeout)
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .build()?;
        let credential = |secret: &str| {
            let text = match d.kind {
                ProviderKind::OpenAi => format!("Bearer {secret}"),
                ProviderKind::Azure if d.azure.entra_id => format!("Bearer {secret}"),
                ProviderKind::Anthropic
                | ProviderKind::Gemini
                | ProviderKind::Azure
                | ProviderKind::Bedrock => secret.to_string(),
            };
            HeaderValue::try_from(text).ok().map(|mut value| {
                value.set_sensitive(true);
                value
            })
        };
        let mut keys: Vec<UpstreamKey> = d
            .api_keys
            .iter()
            .map(|k| UpstreamKey {
                credential: credential(k.secret.expose()),
                weight: k.weight,
                cool_until_ms: AtomicU64::new(0),
            })
            .collect();
        if keys.is_empty() {
            keys.push(UpstreamKey {
                credential: None,
                weight: 1,
                cool_until_ms: AtomicU64::new(0),
            });
        }
        let urls = Operation::ALL
            .iter()
            .filter_map(|op| op.upstream_path(d.kind))
            .filter_map(|path| {
                let url = reqwest::Url::parse(&format!("{}{path}", d.base_url)).ok()?;
                Some((path, url))
            })
            .collect();
        Ok(Upstream {
            name: d.name.clone(),
            kind: d.kind,
            base_url: d.base_url.clone(),
            urls,
            keys,
            client,
            weight: d.weight,
            priority: d.priority,
            first_byte_timeout: d.first_byte_timeout,
            read_timeout: d.read_timeout,
            total_timeout: d.total_timeout,
            retries: d.retries,
            cooldown: d.cooldown,
            epoch: Instant::now(),
            azure: d.azure.clone(),
            bedrock: d.bedrock.clone(),
        })
    }

    /// The path (after the base URL) of an Azure OpenAI request (`providers::azure::path`).
    pub fn azure_path(&self, rest: &str, deployment: &str) -> String {
        azure::path(rest, deployment, self.azure.api_version.as_deref())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A reader for a response to an attempt sent at `sent_at`, with this deployment's
    /// read and total timeouts.
    pub fn reader(&self, response: reqwest::Response, sent_at: Instant) -> BodyReader {
        BodyReader {
            stream: response.bytes_stream().boxed(),
            read_timeout: self.read_timeout,
            deadline: self.total_timeout.map(|total| sent_at + total),
        }
    }

    /// When key `key` may be used again (0 or past: now).
    pub fn cool_until(&self, key: usize) -> u64 {
        self.keys
            .get(key)
            .map_or(0, |k| k.cool_until_ms.load(Ordering::Relaxed))
    }

    pub fn is_healthy(&self, key: usize) -> bool {
        self.cool_until(key) <= self.now_ms()
    }

    /// Leaves a key alone for `retry_after` (the upstream's word) or the deployment's
    /// cool-down.
    pub fn cool_down(&self, key: usize, retry_after: Option<Duration>) {
        let pause = retry_after
            .unwrap_or(self.cooldown)
            .min(Duration::from_secs(300));
        let until = self
            .now_ms()
            .saturating_add(u64::try_from(pause.as_millis()).unwrap_or(u64::MAX));
        if let Some(k) = self.keys.get(key) {
            k.cool_until_ms.fetch_max(until, Ordering::Relaxed);
        }
        tracing::warn!(deployment = %self.name, key = key, pause_ms = pause.as_millis() as u64, "upstream key cooling down");
    }

    /// Sends one attempt; resolves when the response headers arrive (or the first-byte
    /// timeout, capped by `deadline`, passes).
    pub async fn send(
        &self,
        key: usize,
        op: Operation,
        body: Bytes,
        client_headers: &HeaderMap,
        deadline: Instant,
    ) -> Result<reqwest::Response, AttemptError> {
        let path = op.upstream_path(self.kind).unwrap_or("/");
        let mut request = match self.urls.iter().find(|(p, _)| *p == path) {
            Some((_, url)) => self.client.post(url.clone()),
            None => self.client.post(format!("{}{path}", self.base_url)),
        }
        .header(header::CONTENT_TYPE, "application/json")
        .body(body);
        request = self.authorize(request, key, client_headers);
        self.exchange(request, deadline).await
    }

    /// A request to an upstream whose path depends on the request (Gemini's names the model
    /// and whether it streams): `path` after the base URL.
    pub async fn send_to(
        &self,
        key: usize,
        path: &str,
        body: Bytes,
        deadline: Instant,
    ) -> Result<reqwest::Response, AttemptError> {
        let url = format!("{}{path}", self.base_url);
        let mut request = self
            .client
            .post(&url)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(bedrock) = &self.bedrock {
            // SigV4 signs the URL, the headers and the body, so it is done last.
            let signed = bedrock::sigv4::signed_headers(
                &bedrock.credentials,
                &bedrock.region,
                "POST",
                &url,
                &[("content-type", "application/json")],
                &body,
                std::time::SystemTime::now(),
            );
            match signed {
                Ok(headers) => {
                    for (name, value) in headers {
                        request = request.header(name, value);
                    }
                }
                Err(e) => {
                    tracing::error!(deployment = %self.name, error = %e, "could not sign the request");
                    return Err(AttemptError::Unreachable);
                }
            }
        }
        let request = self.authorize(request.body(body), key, &HeaderMap::new());
        self.exchange(request, deadline).await
    }

    /// A request for a stored object at `path` (after the base URL, e.g.
    /// `/responses/resp_123`), with the deployment's first key: `GET` or `DELETE` of what an
    /// earlier request created.
    pub async fn send_stored(
        &self,
        method: reqwest::Method,
        path: &str,
        deadline: Instant,
    ) -> Result<reqwest::Response, AttemptError> {
        let path = match self.kind {
            ProviderKind::Azure => self.azure_path(path, ""),
            _ => path.to_owned(),
        };
        let request = self
            .client
            .request(method, format!("{}{path}", self.base_url));
        let request = self.authorize(request, 0, &HeaderMap::new());
        self.exchange(request, deadline).await
    }

    /// The provider's credential header (and Anthropic's version headers).
    fn authorize(
        &self,
        mut request: reqwest::RequestBuilder,
        key: usize,
        client_headers: &HeaderMap,
    ) -> reqwest::RequestBuilder {
        let credential = self.keys.get(key).and_then(|k| k.credential.clone());
        match self.kind {
            ProviderKind::OpenAi => {
                if let Some(credential) = credential {
                    request = request.header(header::AUTHORIZATION, credential);
                }
            }
            ProviderKind::Anthropic => {
                if let Some(credential) = credential {
                    request = request.header("x-api-key", credential);
                }
                let version = client_headers
                    .get("anthropic-version")
                    .cloned()
                    .unwrap_or(HeaderValue::from_static(ANTHROPIC_VERSION));
                request = request.header("anthropic-version", version);
                if let Some(beta) = client_headers.get("anthropic-beta") {
                    request = request.header("anthropic-beta", beta.clone());
                }
            }
            ProviderKind::Gemini => {
                if let Some(credential) = credential {
                    request = request.header("x-goog-api-key", credential);
                }
            }
            // Bedrock's requests are signed in `send_to`, where the body is known.
            ProviderKind::Bedrock => {}
            ProviderKind::Azure => {
                if let Some(credential) = credential {
                    let name = if self.azure.entra_id {
                        header::AUTHORIZATION.as_str()
                    } else {
                        "api-key"
                    };
                    request = request.header(name, credential);
                }
            }
        }
        request
    }

    /// Sends, waiting at most the first-byte timeout (and never past `deadline`).
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        deadline: Instant,
    ) -> Result<reqwest::Response, AttemptError> {
        let wait = self
            .first_byte_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(wait, request.send()).await {
            Err(_) => Err(AttemptError::Timeout),
            Ok(Err(e)) if e.is_timeout() => Err(AttemptError::Timeout),
            Ok(Err(e)) => {
                tracing::warn!(deployment = %self.name, error = %e.without_url(), "upstream request failed");
                Err(AttemptError::Unreachable)
            }
            Ok(Ok(response)) => Ok(response),
        }
    }
}

pub enum ChunkError {
    Timeout,
    Failed,
}

/// A response body read piece by piece, each piece within the read timeout and all of it
/// before the deployment's total deadline, if it has one.
pub struct BodyReader {
    stream: BoxStream<'static, reqwest::Result<Bytes>>,
    read_timeout: Duration,
    deadline: Option<Instant>,
}

impl BodyReader {
    pub async fn next(&mut self) -> Result<Option<Bytes>, ChunkError> {
        let wait = match self.deadline {
            Some(deadline) => self
                .read_timeout
                .min(deadline.saturating_duration_since(Instant::now())),
            None => self.read_timeout,
        };
        match tokio::time::timeout(wait, self.stream.next()).await {
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
