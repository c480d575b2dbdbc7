//! The servers `redis_url` names, as redis-rs clients: one server, a cluster's seed nodes, or
//! the sentinels of a master, each with the TLS settings applied.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::PubSub;
use redis::cluster::ClusterClientBuilder;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, ClientTlsConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo,
    RedisConnectionInfo, RedisResult, TlsCertificates, TlsMode,
};

use super::Trusted;
use super::cluster::{STALL_LIMIT, SelfHealingCluster};
use super::sentinel::SentinelConnection;
use crate::config::{MultiNodeKind, MultiNodeUrl, RedisNode, RedisTls, RedisVerify, Secret};

pub(super) enum Servers {
    Single(redis::Client),
    Cluster(ClusterServers),
    Sentinel(SentinelServers),
}

impl Servers {
    pub fn single(
        url: &Secret<String>,
        tls: Option<&RedisTls>,
        trust: Option<&Trusted>,
    ) -> RedisResult<Servers> {
        let info = url.expose().as_str().into_connection_info()?;
        let client = match (tls, trust) {
            (Some(tls), Some(trust)) => {
                let info = if tls.verify == RedisVerify::Off {
                    insecure(info)
                } else {
                    info
                };
                redis::Client::build_with_tls(info, certificates(tls, trust))?
            }
            _ => redis::Client::open(info)?,
        };
        Ok(Servers::Single(client))
    }

    pub fn multi(
        url: &MultiNodeUrl,
        tls: Option<&RedisTls>,
        trust: Option<&Trusted>,
    ) -> RedisResult<Servers> {
        let tls = match (tls, trust) {
            (Some(tls), Some(trust)) => Some(NodeTls {
                mode: if tls.verify == RedisVerify::Off {
                    TlsMode::Insecure
                } else {
                    TlsMode::Secure
                },
                certificates: certificates(tls, trust),
            }),
            _ => None,
        };
        let addr = |node: &RedisNode| match &tls {
            None => ConnectionAddr::Tcp(node.host.clone(), node.port),
            Some(tls) => ConnectionAddr::TcpTls {
                host: node.host.clone(),
                port: node.port,
                insecure: tls.mode == TlsMode::Insecure,
                tls_params: None,
            },
        };
        let mut settings = RedisConnectionInfo::default();
        if let Some(username) = &url.username {
            settings = settings.set_username(username);
        }
        if let Some(password) = &url.password {
            settings = settings.set_password(password.expose());
        }
        match &url.kind {
            MultiNodeKind::Cluster => {
                let seeds = url
                    .nodes
                    .iter()
                    .map(|node| {
                        addr(node)
                            .into_connection_info()
                            .map(|info| info.set_redis_settings(settings.clone()))
                    })
                    .collect::<RedisResult<Vec<_>>>()?;
                let subscribers = seeds
                    .iter()
                    .map(|info| match &tls {
                        None => redis::Client::open(info.clone()),
                        Some(tls) => {
                            redis::Client::build_with_tls(info.clone(), tls.certificates.clone())
                        }
                    })
                    .collect::<RedisResult<Vec<_>>>()?;
                Ok(Servers::Cluster(ClusterServers {
                    seeds,
                    nodes: url.nodes.clone(),
                    tls,
                    subscribers,
                    next_subscriber: AtomicUsize::new(0),
                }))
            }
            MultiNodeKind::Sentinel { master, db } => {
                let servers = SentinelServers {
                    sentinels: url.nodes.iter().map(addr).collect(),
                    nodes: url.nodes.clone(),
                    master: master.clone(),
                    db: *db,
                    username: url.username.clone(),
                    password: url.password.clone(),
                    sentinel_username: url.sentinel_username.clone(),
                    sentinel_password: url.sentinel_password.clone(),
                    tls,
                };
                // Built once here so a setting redis-rs refuses stops start-up now.
                servers.client()?;
                Ok(Servers::Sentinel(servers))
            }
        }
    }

    /// The host(s) a certificate must name, and the kind of deployment, for messages.
    pub fn described(&self) -> (String, Option<&'static str>) {
        let hosts = |nodes: &[RedisNode]| {
            let hosts: Vec<&str> = nodes.iter().map(|node| node.host.as_str()).collect();
            hosts.join(", ")
        };
        match self {
            Servers::Single(client) => {
                let host = match client.get_connection_info().addr() {
                    ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => {
                        host.clone()
                    }
                    _ => String::new(),
                };
                (host, None)
            }
            Servers::Cluster(cluster) => (hosts(&cluster.nodes), Some("Redis Cluster")),
            Servers::Sentinel(sentinel) => (hosts(&sentinel.nodes), Some("Redis Sentinel")),
        }
    }
}

/// TLS to every node of a cluster or sentinel deployment.
#[derive(Clone)]
struct NodeTls {
    mode: TlsMode,
    certificates: TlsCertificates,
}

pub(super) struct ClusterServers {
    seeds: Vec<ConnectionInfo>,
    nodes: Vec<RedisNode>,
    tls: Option<NodeTls>,
    /// One client per seed node, for the invalidation subscription.
    subscribers: Vec<redis::Client>,
    /// The seed the next subscription tries first.
    next_subscriber: AtomicUsize,
}

impl ClusterServers {
    /// A connection to the whole cluster: redis-rs keeps one multiplexed connection per node,
    /// follows the slot map, and refreshes it when a node answers MOVED.
    ///
    /// It never sends a command twice (`retries(0)`): its retries would also re-send a call
    /// whose connection dropped after sending, or that timed out, and a governance script
    /// that may have run must not run again. Whether to send again is the caller's decision
    /// ([`super::delivery`]); a MOVED answer still makes redis-rs refresh its slot map, so a
    /// call sent again goes to the new owner of the slot. A connection that stops answering
    /// altogether is replaced ([`SelfHealingCluster`]).
    pub async fn connect(
        &self,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> RedisResult<SelfHealingCluster> {
        let mut builder = ClusterClientBuilder::new(self.seeds.clone())
            .retries(0)
            .connection_timeout(connect_timeout)
            .response_timeout(response_timeout);
        if let Some(tls) = &self.tls {
            // The mode first: `certs` alone would turn verification back on.
            builder = builder.tls(tls.mode).certs(tls.certificates.clone());
        }
        SelfHealingCluster::connect(builder.build()?, connect_timeout.max(STALL_LIMIT)).await
    }

    pub async fn pubsub(&self, timeout: Duration) -> RedisResult<PubSub> {
        let count = self.subscribers.len();
        let first = self.next_subscriber.fetch_add(1, Ordering::Relaxed);
        let mut last_error = None;
        for i in 0..count {
            let Some(client) = self.subscribers.get(first.wrapping_add(i) % count) else {
                continue;
            };
            match within(timeout, client.get_async_pubsub()).await {
                Ok(pubsub) => {
                    self.next_subscriber
                        .store(first.wrapping_add(i).wrapping_add(1), Ordering::Relaxed);
                    return Ok(pubsub);
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "no cluster node"))
        }))
    }
}

pub(super) struct SentinelServers {
    sentinels: Vec<ConnectionAddr>,
    nodes: Vec<RedisNode>,
    master: String,
    db: i64,
    username: Option<String>,
    password: Option<Secret<String>>,
    sentinel_username: Option<String>,
    sentinel_password: Option<Secret<String>>,
    tls: Option<NodeTls>,
}

impl SentinelServers {
    /// A client that asks the sentinels for the master (each connection has its own, with
    /// its own connections to the sentinels).
    fn client(&self) -> RedisResult<SentinelClient> {
        let mut builder = SentinelClientBuilder::new(
            self.sentinels.clone(),
            &self.master,
            SentinelServerType::Master,
        )?
        .set_client_to_redis_db(self.db);
        if let Some(username) = &self.username {
            builder = builder.set_client_to_redis_username(username);
        }
        if let Some(password) = &self.password {
            builder = builder.set_client_to_redis_password(password.expose());
        }
        if let Some(username) = &self.sentinel_username {
            builder = builder.set_client_to_sentinel_username(username);
        }
        if let Some(password) = &self.sentinel_password {
            builder = builder.set_client_to_sentinel_password(password.expose());
        }
        if let Some(tls) = &self.tls {
            builder = builder
                .set_client_to_sentinel_tls_mode(tls.mode)
                .set_client_to_sentinel_certificates(tls.certificates.clone())
                .set_client_to_redis_tls_mode(tls.mode)
                .set_client_to_redis_certificates(tls.certificates.clone());
        }
        builder.build()
    }

    pub async fn connect(
        &self,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> RedisResult<SentinelConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(response_timeout));
        SentinelConnection::connect(
            self.client()?,
            self.master.clone(),
            self.db,
            config,
            // Asking the sentinels takes a round trip to one of them and one to the master
            // it names (to check that it is one).
            connect_timeout.saturating_mul(2),
        )
        .await
    }

    /// A subscription on the master the sentinels name now.
    pub async fn pubsub(&self, timeout: Duration) -> RedisResult<PubSub> {
        within(timeout, async {
            let client = self.client()?.async_get_client().await?;
            client.get_async_pubsub().await
        })
        .await
    }
}

async fn within<T>(
    timeout: Duration,
    future: impl Future<Output = RedisResult<T>>,
) -> RedisResult<T> {
    tokio::time::timeout(timeout, future).await.map_err(|_| {
        redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {} s", timeout.as_secs()),
        ))
    })?
}

fn certificates(tls: &RedisTls, trust: &Trusted) -> TlsCertificates {
    TlsCertificates {
        client_tls: tls.client.as_ref().map(|client| ClientTlsConfig {
            client_cert: client.cert_pem.clone(),
            client_key: client.key_pem.expose().clone(),
        }),
        root_cert: trust.root_cert.clone(),
    }
}

/// The same address with certificate verification off (redis-rs's `#insecure`).
fn insecure(info: ConnectionInfo) -> ConnectionInfo {
    let addr = match info.addr() {
        ConnectionAddr::TcpTls { host, port, .. } => ConnectionAddr::TcpTls {
            host: host.clone(),
            port: *port,
            insecure: true,
            tls_params: None,
        },
        other => other.clone(),
    };
    info.set_addr(addr)
}
