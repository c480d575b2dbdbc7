//! Failed authentications counted per client address: past `max_failures_per_minute` in a
//! minute, the address's requests are refused with 429 before any key is hashed or looked up,
//! until that minute is over. A client guessing keys gets that many guesses a minute.
//!
//! The state is a bounded `moka` cache (`tracked_addresses` entries, each living one minute),
//! so a flood of source addresses cannot grow it: past the bound the least useful entries
//! are dropped, and an address that is not tracked is simply not limited (the set of existing
//! keys still keeps its guesses away from PostgreSQL). IPv6 clients are counted by /64, the
//! block one host usually holds, so a host cannot escape the limit by changing its address.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use moka::future::Cache;

use crate::config::ClientAuthConfig;

/// How long failures are counted from the first one.
const WINDOW: Duration = Duration::from_secs(60);

/// The connection's peer address; absent when the server was not started with connect info
/// (a router served directly, as some tests do), and then nothing is limited.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Peer, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0),
        ))
    }
}

/// A client as the limit counts it: an IPv4 address, or the /64 network of an IPv6 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientNet(IpAddr);

impl ClientNet {
    pub fn of(ip: IpAddr) -> ClientNet {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & (u128::MAX << 64);
                ClientNet(IpAddr::V6(Ipv6Addr::from(network)))
            }
            v4 => ClientNet(v4),
        }
    }
}

impl fmt::Display for ClientNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// Why a client's request is refused before authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttled {
    pub client: ClientNet,
    pub limit: u32,
    pub retry_after: Duration,
}

struct Window {
    started: Instant,
    failures: AtomicU32,
}

pub struct AuthFailures {
    windows: Cache<ClientNet, Arc<Window>>,
    limit: Option<u32>,
    trusted_proxy_hops: usize,
}

impl AuthFailures {
    pub fn new(config: &ClientAuthConfig) -> AuthFailures {
        AuthFailures {
            windows: Cache::builder()
                .max_capacity(config.tracked_addresses)
                .time_to_live(WINDOW)
                .build(),
            limit: config.max_failures_per_minute,
            trusted_proxy_hops: config.trusted_proxy_hops,
        }
    }

    /// The client a request comes from: the peer address, or with `trusted_proxy_hops` set,
    /// the address the outermost trusted proxy saw (read from the right of
    /// `X-Forwarded-For`, since everything left of what the trusted proxies appended is the
    /// client's to write). A request without the header came around the proxies: its peer
    /// is used.
    pub fn client(&self, peer: Peer, headers: &HeaderMap) -> Option<ClientNet> {
        let forwarded = self.trusted_proxy_hops.checked_sub(1).and_then(|skip| {
            headers
                .get_all("x-forwarded-for")
                .iter()
                .rev()
                // Bytes, not `to_str`: a client's non-ASCII entry must not hide the entries
                // the proxies appended to the same line.
                .flat_map(|value| value.as_bytes().rsplit(|b| *b == b','))
                .nth(skip)
                .and_then(parse_forwarded)
        });
        forwarded.or(peer.0.map(|p| p.ip())).map(ClientNet::of)
    }

    /// `Some` when this client has used up its failures for the current minute.
    pub async fn refusal(&self, client: Option<ClientNet>) -> Option<Throttled> {
        let (limit, client) = (self.limit?, client?);
        let window = self.windows.get(&client).await?;
        if window.failures.load(Ordering::Relaxed) < limit {
            return None;
        }
        Some(Throttled {
            client,
            limit,
            retry_after: WINDOW.saturating_sub(window.started.elapsed()),
        })
    }

    /// Counts one failed authentication of this client.
    pub async fn record(&self, client: Option<ClientNet>) {
        let (Some(_), Some(client)) = (self.limit, client) else {
            return;
        };
        let window = self
            .windows
            .get_with(client, async {
                Arc::new(Window {
                    started: Instant::now(),
                    failures: AtomicU32::new(0),
                })
            })
            .await;
        window.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Client addresses tracked (including pending evictions until [`AuthFailures::sync`]).
    pub fn tracked(&self) -> u64 {
        self.windows.entry_count()
    }

    /// Applies pending evictions, so [`AuthFailures::tracked`] is exact.
    pub async fn sync(&self) {
        self.windows.run_pending_tasks().await;
    }
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `2001:db8::1`, or with a port, `1.2.3.4:5678` or
/// `[2001:db8::1]:5678`.
fn parse_forwarded(entry: &[u8]) -> Option<IpAddr> {
    let entry = std::str::from_utf8(entry).ok()?.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failures(limit: u32, hops: usize) -> AuthFailures {
        AuthFailures::new(&ClientAuthConfig {
            max_failures_per_minute: Some(limit),
            tracked_addresses: 100,
            trusted_proxy_hops: hops,
        })
    }

    fn forwarded(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        headers
    }

    fn peer(addr: &str) -> Peer {
        Peer(Some(addr.parse().unwrap()))
    }

    fn net(ip: &str) -> Option<ClientNet> {
        Some(ClientNet::of(ip.parse().unwrap()))
    }

    #[tokio::test]
    async fn refuses_after_the_limit_for_the_rest_of_the_minute() {
        let limiter = failures(3, 0);
        let client = net("10.0.0.1");
        for _ in 0..3 {
            assert_eq!(limiter.refusal(client).await, None);
            limiter.record(client).await;
        }
        let refused = limiter.refusal(client).await.unwrap();
        assert_eq!(refused.limit, 3);
        assert!(refused.retry_after > Duration::from_secs(59));
        // Another address is not affected, and a request without an address is never limited.
        assert_eq!(limiter.refusal(net("10.0.0.2")).await, None);
        limiter.record(None).await;
        assert_eq!(limiter.refusal(None).await, None);
    }

    #[tokio::test]
    async fn zero_turns_the_limit_off() {
        let limiter = AuthFailures::new(&ClientAuthConfig {
            max_failures_per_minute: None,
            tracked_addresses: 100,
            trusted_proxy_hops: 0,
        });
        for _ in 0..10 {
            limiter.record(net("10.0.0.1")).await;
        }
        assert_eq!(limiter.refusal(net("10.0.0.1")).await, None);
        limiter.sync().await;
        assert_eq!(limiter.tracked(), 0);
    }

    #[tokio::test]
    async fn tracked_addresses_stay_within_the_bound() {
        let limiter = failures(3, 0);
        for i in 0..2_000u32 {
            limiter
                .record(Some(ClientNet::of(IpAddr::from(i.to_be_bytes()))))
                .await;
        }
        limiter.sync().await;
        assert!(limiter.tracked() <= 100, "{}", limiter.tracked());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        assert_eq!(net("2001:db8:1:2:aaaa::1"), net("2001:db8:1:2:bbbb::2"));
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"));
        assert_eq!(net("::ffff:10.0.0.1"), net("10.0.0.1"));
        assert_eq!(
            net("2001:db8:1:2::1").unwrap().to_string(),
            "2001:db8:1:2::/64"
        );
    }

    #[test]
    fn forwarded_for_is_read_only_when_trusted_and_from_the_right() {
        let headers = forwarded(&["6.6.6.6, 1.1.1.1", "2.2.2.2"]);
        let lb = peer("10.0.0.9:4000");
        assert_eq!(failures(1, 0).client(lb, &headers), net("10.0.0.9"));
        assert_eq!(failures(1, 1).client(lb, &headers), net("2.2.2.2"));
        assert_eq!(failures(1, 2).client(lb, &headers), net("1.1.1.1"));
        // Fewer entries than trusted hops, or none, or garbage: the peer.
        assert_eq!(failures(1, 4).client(lb, &headers), net("10.0.0.9"));
        assert_eq!(
            failures(1, 1).client(lb, &HeaderMap::new()),
            net("10.0.0.9")
        );
        assert_eq!(
            failures(1, 1).client(lb, &forwarded(&["not-an-address"])),
            net("10.0.0.9")
        );
        assert_eq!(
            failures(1, 1).client(lb, &forwarded(&["[2001:db8::1]:443"])),
            net("2001:db8::1")
        );
        assert_eq!(failures(1, 0).client(Peer(None), &headers), None);
        let mut spoofed = HeaderMap::new();
        spoofed.append(
            "x-forwarded-for",
            axum::http::HeaderValue::from_bytes(b"\xffsp\xf6\xf6f, 3.3.3.3").unwrap(),
        );
        assert_eq!(failures(1, 1).client(lb, &spoofed), net("3.3.3.3"));
    }
}
