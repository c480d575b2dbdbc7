//! HTTP client for the gateway's admin API (`/admin/v1`).
//!
//! Errors are written for people: API errors become [`ApiError`] (`<message> (HTTP <status>)`),
//! transport errors name the URL that could not be reached. Neither ever includes the token.

use std::fmt;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::ErrorBody;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
// Issuing 1,000 keys in one call is the slowest legitimate request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// An error response from the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    /// The API's stable `code`, when the answer was the API's.
    pub code: Option<String>,
    pub param: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (HTTP {})", self.message, self.status)
    }
}

impl std::error::Error for ApiError {}

pub struct Client {
    http: reqwest::Client,
    /// The base URL with `/admin/v1` appended.
    api: Url,
    /// The base URL as given, minus any credentials, for error messages.
    shown: String,
    auth: HeaderValue,
}

impl Client {
    pub fn new(base_url: &str, token: Option<&str>) -> Result<Self> {
        let api = api_root(base_url)?;
        let shown = display_url(&api);
        let token = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                anyhow!(
                    "no admin token: set TOLLGATE_ADMIN_TOKEN or pass --token \
                 (to bootstrap: export TOLLGATE_ADMIN_TOKEN=$(tollctl token mint --role admin))"
                )
            })?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            anyhow!("the admin token contains characters that are not allowed in an HTTP header")
        })?;
        auth.set_sensitive(true);
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("tollctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow!("could not set up the HTTP client: {}", root_cause(&e)))?;
        Ok(Self {
            http,
            api,
            shown,
            auth,
        })
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &[&str],
        query: &[(&str, Option<&str>)],
    ) -> Result<T> {
        let url = self.url(path, query)?;
        self.send(self.http.request(Method::GET, url)).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &[&str],
        body: &B,
    ) -> Result<T> {
        let url = self.url(path, &[])?;
        self.send(self.http.request(Method::POST, url).json(body))
            .await
    }

    /// Any method with a JSON body and a query string (PUT, PATCH, DELETE, POST with a query).
    pub async fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, Option<&str>)],
        body: &B,
    ) -> Result<T> {
        let url = self.url(path, query)?;
        self.send(self.http.request(method, url).json(body)).await
    }

    pub async fn patch<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &[&str],
        body: &B,
    ) -> Result<T> {
        self.send_json(Method::PATCH, path, &[], body).await
    }

    pub async fn delete<T: DeserializeOwned>(
        &self,
        path: &[&str],
        query: &[(&str, Option<&str>)],
    ) -> Result<T> {
        let url = self.url(path, query)?;
        self.send(self.http.request(Method::DELETE, url)).await
    }

    /// Builds `<base>/admin/v1/<path...>?<query>`, percent-encoding each segment so a team name
    /// with `/` or spaces stays one segment.
    pub fn url(&self, path: &[&str], query: &[(&str, Option<&str>)]) -> Result<Url> {
        let mut url = self.api.clone();
        url.path_segments_mut()
            .map_err(|()| anyhow!("the admin URL {} cannot have a path", self.shown))?
            .extend(path);
        let pairs: Vec<_> = query
            .iter()
            .filter_map(|(k, v)| v.map(|v| (*k, v)))
            .collect();
        if !pairs.is_empty() {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        Ok(url)
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T> {
        let resp = req
            .header(AUTHORIZATION, self.auth.clone())
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| self.transport_error(&e))?;
        if !status.is_success() {
            return Err(api_error(status, &body).into());
        }
        serde_json::from_slice(&body).map_err(|e| {
            anyhow!(
                "unexpected response from the admin API at {} (HTTP {}): {e}",
                self.shown,
                status.as_u16()
            )
        })
    }

    fn transport_error(&self, e: &reqwest::Error) -> anyhow::Error {
        if e.is_timeout() {
            anyhow!("the admin API at {} did not answer in time", self.shown)
        } else if e.is_connect() {
            anyhow!(
                "could not reach the admin API at {}: {}",
                self.shown,
                root_cause(e)
            )
        } else {
            anyhow!(
                "request to the admin API at {} failed: {}",
                self.shown,
                root_cause(e)
            )
        }
    }
}

/// Turns an error response into an [`ApiError`], falling back to the body's first line (or
/// the status reason) when a proxy in front of the gateway answered instead.
pub fn api_error(status: StatusCode, body: &[u8]) -> ApiError {
    let (message, code, param) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) if !b.error.message.trim().is_empty() => {
            (b.error.message, b.error.code, b.error.param)
        }
        _ => {
            let text = String::from_utf8_lossy(body);
            let line = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("");
            let message = if line.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("request failed")
                    .to_string()
            } else {
                line.chars().take(200).collect()
            };
            (message, None, None)
        }
    };
    ApiError {
        status: status.as_u16(),
        message,
        code,
        param,
    }
}

fn api_root(base_url: &str) -> Result<Url> {
    let base = base_url.trim();
    let mut url = Url::parse(base).map_err(|e| {
        anyhow!("invalid admin URL {base:?}: {e} (expected e.g. http://127.0.0.1:8081)")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!(
            "invalid admin URL {}: the scheme must be http or https",
            display_url(&url)
        );
    }
    url.set_query(None);
    url.set_fragment(None);
    // Accept a URL that already ends in /admin/v1 rather than requesting /admin/v1/admin/v1.
    let path = url.path().trim_end_matches('/');
    let path = if path.ends_with("/admin/v1") {
        path.to_string()
    } else {
        format!("{path}/admin/v1")
    };
    url.set_path(&path);
    Ok(url)
}

/// reqwest is built without a default TLS provider; without one, building a client panics.
/// Installing twice is an `Err` we can ignore: a provider is in place either way.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The URL without any `user:password@`, so credentials never reach the terminal.
fn display_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    let s = u.to_string();
    s.strip_suffix("/admin/v1")
        .map_or(s.clone(), str::to_string)
}

/// The innermost error message, which is the one that says what actually went wrong
/// ("Connection refused", "invalid peer certificate") rather than "error sending request".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Result<Client> {
        Client::new(base, Some("tok"))
    }

    #[test]
    fn builds_paths_and_encodes_segments() -> Result<()> {
        let c = client("http://127.0.0.1:8081")?;
        assert_eq!(
            c.url(&["teams", "a b/c"], &[])?.as_str(),
            "http://127.0.0.1:8081/admin/v1/teams/a%20b%2Fc"
        );
        assert_eq!(
            c.url(&["keys"], &[("team", Some("r&d")), ("experiment", None)])?
                .as_str(),
            "http://127.0.0.1:8081/admin/v1/keys?team=r%26d"
        );
        Ok(())
    }

    #[test]
    fn accepts_prefixes_trailing_slash_and_full_api_root() -> Result<()> {
        for (base, want) in [
            ("http://h:1/", "http://h:1/admin/v1/teams"),
            ("https://h/gw", "https://h/gw/admin/v1/teams"),
            ("https://h/gw/", "https://h/gw/admin/v1/teams"),
            ("http://h:1/admin/v1", "http://h:1/admin/v1/teams"),
            ("http://h:1/admin/v1/", "http://h:1/admin/v1/teams"),
        ] {
            assert_eq!(client(base)?.url(&["teams"], &[])?.as_str(), want, "{base}");
        }
        Ok(())
    }

    #[test]
    fn rejects_bad_urls_and_missing_token() {
        assert!(client("127.0.0.1:8081").is_err());
        assert!(client("ftp://h").is_err());
        assert!(Client::new("http://h", None).is_err());
        assert!(Client::new("http://h", Some("  ")).is_err());
        let err = Client::new("http://h", Some("bad\ntoken"))
            .err()
            .map(|e| e.to_string());
        assert!(!err.unwrap_or_default().contains("token\n"));
    }

    #[test]
    fn display_url_hides_credentials() -> Result<()> {
        let c = client("http://admin:hunter2@h:8081")?;
        assert_eq!(c.shown, "http://h:8081");
        Ok(())
    }

    #[test]
    fn api_errors_use_the_message_or_fall_back() {
        let body = br#"{"error":{"message":"team not found","type":"not_found_error","code":"team_not_found","param":"team"}}"#;
        let e = api_error(StatusCode::NOT_FOUND, body);
        assert_eq!(e.to_string(), "team not found (HTTP 404)");
        let e = api_error(StatusCode::BAD_GATEWAY, b"\n<html>bad gateway</html>\n");
        assert_eq!(e.to_string(), "<html>bad gateway</html> (HTTP 502)");
        let e = api_error(StatusCode::UNAUTHORIZED, b"");
        assert_eq!(e.to_string(), "Unauthorized (HTTP 401)");
    }
}
