//! Redis connections with the settings of `redis_url` applied: the request path's
//! connection, the control plane's, and the invalidation listener's pub/sub, for one server,
//! a Redis Cluster or a Sentinel-managed master.
//!
//! [`RedisConnector`] is built once from the configuration (which has read the certificate
//! files) and hands out every connection, so none can skip the TLS settings. What it hands
//! out for commands is a [`RedisConnection`], the same type whatever the deployment, so the
//! governance code has one path.

mod cluster;
mod connection;
mod sentinel;
mod servers;

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSub};

pub use connection::{Delivery, RedisConnection, delivery};

use self::servers::Servers;
use super::{ConnectError, Redacted, Trust, describe_tls_error, find_tls_error};
use crate::config::{RedisTls, RedisUrl, RedisVerify, Secret};

/// How long a governance call sent to Redis is waited for before it counts as lost.
pub const REDIS_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest the invalidation listener waits to be connected to one node.
const PUBSUB_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the gateway's Redis connections. Cheap to clone.
#[derive(Clone)]
pub struct RedisConnector {
    servers: Arc<Servers>,
    target: Arc<Target>,
}

/// What error messages say about the servers.
struct Target {
    redacted: Redacted,
    /// The host(s) a TLS certificate must name.
    host: String,
    /// "Redis Cluster", "Redis Sentinel", or nothing for one server.
    topology: Option<&'static str>,
    /// How the server is trusted, for TLS; `None` for plain text.
    trust: Option<Trusted>,
}

/// How a TLS server's certificate is checked, for the client and for messages.
pub(super) struct Trusted {
    /// The CAs handed to the client; `None` for the system's trust store.
    root_cert: Option<Vec<u8>>,
    /// Where trust comes from, e.g. "the CA in redis_ca_file (/etc/ca.pem)".
    source: String,
    /// The TLS settings in a few words, for every error.
    summary: &'static str,
    /// What to change when the server's certificate is not signed by `source`.
    fix: &'static str,
}

impl Trusted {
    fn of(verify: &RedisVerify) -> Trusted {
        match verify {
            RedisVerify::SystemRoots => Trusted {
                root_cert: None,
                source: "a CA in the system's trust store".to_string(),
                summary: "TLS, CAs from the system's trust store",
                fix: "set redis_ca_file (or TOLLGATE_REDIS_CA_FILE) to the CA that signed it",
            },
            RedisVerify::Bundle(bundle) => Trusted {
                root_cert: Some(bundle.pem.clone()),
                source: format!("the CA in redis_ca_file ({})", bundle.path.display()),
                summary: "TLS, CA from redis_ca_file",
                fix: "point redis_ca_file (or TOLLGATE_REDIS_CA_FILE) at the CA that signed the \
                      server's certificate",
            },
            RedisVerify::Off => Trusted {
                root_cert: None,
                source: "no CA (verification off)".to_string(),
                summary: "TLS, certificate not verified",
                fix: "",
            },
        }
    }
}

impl RedisConnector {
    /// Checks `url` and builds the clients; connects nothing yet. With verification off, logs
    /// a warning: every start says so.
    pub fn new(
        url: &Secret<String>,
        tls: Option<&RedisTls>,
    ) -> Result<RedisConnector, ConnectError> {
        let parsed = RedisUrl::parse(url.expose()).map_err(|problem| {
            ConnectError::new(format!(
                "invalid redis_url: {}; {} (check redis_url / TOLLGATE_REDIS_URL)",
                problem.problem, problem.fix
            ))
        })?;
        let redacted = match &parsed {
            RedisUrl::Single { .. } => Redacted::new(url.expose()),
            RedisUrl::Multi(multi) => Redacted::from_parts(multi.shown(), multi.secrets()),
        };
        let fail = |e: redis::RedisError| {
            ConnectError::new(format!(
                "invalid redis_url {}: {} (check redis_url / TOLLGATE_REDIS_URL)",
                redacted.shown,
                redacted.scrub(&e.to_string())
            ))
        };
        let trust = tls.map(|tls| Trusted::of(&tls.verify));
        if tls.is_some_and(|tls| tls.verify == RedisVerify::Off) {
            tracing::warn!(
                redis = %redacted.shown,
                "redis_tls_insecure: the Redis server's TLS certificate is NOT verified, \
                 so anyone on the network path can impersonate it and read or change \
                 every budget and rate-limit counter. Use this only with a self-signed \
                 development server; give production servers redis_ca_file instead"
            );
        }
        let servers = match &parsed {
            RedisUrl::Single { .. } => Servers::single(url, tls, trust.as_ref()).map_err(fail)?,
            RedisUrl::Multi(multi) => Servers::multi(multi, tls, trust.as_ref()).map_err(fail)?,
        };
        let (host, topology) = servers.described();
        Ok(RedisConnector {
            servers: Arc::new(servers),
            target: Arc::new(Target {
                redacted,
                host,
                topology,
                trust,
            }),
        })
    }

    /// The request path's connection for admission and settlement: one multiplexed
    /// connection (one per node on a cluster), reconnected on failure.
    ///
    /// A request waits at most `timeout` for its answer (the governor's own timeout), but the
    /// call itself is not abandoned that early: a script that runs late in a slow Redis still
    /// answers, and the batcher gives back what it took for a request that stopped waiting.
    /// Only an answer later than [`REDIS_RESPONSE_TIMEOUT`] is lost (its reservation expires).
    ///
    /// The connecting future is boxed here and in [`Self::control`]: the cluster and sentinel
    /// clients' futures are deep enough to overflow the compiler's query depth in the
    /// start-up future that awaits them.
    pub async fn multiplexed(&self, timeout: Duration) -> Result<RedisConnection, ConnectError> {
        Box::pin(self.connection(timeout, REDIS_RESPONSE_TIMEOUT.max(timeout))).await
    }

    /// The control plane's connection (publishing invalidations), separate from the request
    /// path's so an admin burst never queues in front of admissions.
    pub async fn control(&self) -> Result<RedisConnection, ConnectError> {
        Box::pin(self.connection(Duration::from_secs(1), Duration::from_secs(2))).await
    }

    /// A connection whose servers have answered a PING (every master, on a cluster), so a
    /// server that refuses the credentials or the client certificate stops start-up.
    async fn connection(
        &self,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<RedisConnection, ConnectError> {
        let mut connection = match self.servers.as_ref() {
            Servers::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(response_timeout))
                    // Reconnection is retried on the next calls; a call never waits through
                    // many attempts.
                    .set_number_of_retries(1);
                let manager = ConnectionManager::new_with_config(client.clone(), config)
                    .await
                    .map_err(|e| self.failure(&e))?;
                RedisConnection::Single(manager)
            }
            Servers::Cluster(cluster) => RedisConnection::Cluster(
                cluster
                    .connect(connect_timeout, response_timeout)
                    .await
                    .map_err(|e| self.failure(&e))?,
            ),
            Servers::Sentinel(sentinel) => RedisConnection::Sentinel(
                sentinel
                    .connect(connect_timeout, response_timeout)
                    .await
                    .map_err(|e| self.failure(&e))?,
            ),
        };
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map_err(|e| self.failure(&e))?;
        Ok(connection)
    }

    /// A pub/sub connection (the invalidation listener's). On a cluster it is one node's:
    /// a PUBLISH reaches every node of a cluster, so any one will do, and each call starts
    /// with the node after the one the previous call chose, so a subscription lost with its
    /// node comes back on another. With Sentinel it is the current master's.
    pub async fn pubsub(&self) -> redis::RedisResult<PubSub> {
        match self.servers.as_ref() {
            Servers::Single(client) => client.get_async_pubsub().await,
            Servers::Cluster(cluster) => cluster.pubsub(PUBSUB_CONNECT_TIMEOUT).await,
            Servers::Sentinel(sentinel) => sentinel.pubsub(PUBSUB_CONNECT_TIMEOUT).await,
        }
    }

    /// The servers and their TLS settings, without the password (for the start-up log).
    pub fn describe(&self) -> String {
        let target = &self.target;
        let topology = target
            .topology
            .map(|t| format!("{t}, "))
            .unwrap_or_default();
        match &target.trust {
            Some(trust) => format!("{} ({topology}{})", target.redacted.shown, trust.summary),
            None => format!("{} ({topology}plain text)", target.redacted.shown),
        }
    }

    /// `error` described for an operator, without the password.
    fn failure(&self, error: &redis::RedisError) -> ConnectError {
        let target = &self.target;
        let reason = match (find_tls_error(error), &target.trust) {
            (Some(tls_error), Some(trust)) => describe_tls_error(
                tls_error,
                &Trust {
                    source: trust.source.clone(),
                    fix: trust.fix,
                    host: &target.host,
                    client_settings: "redis_client_cert_file and redis_client_key_file",
                },
            ),
            _ => error.to_string(),
        };
        ConnectError::new(format!(
            "cannot connect to Redis at {}: {} (check redis_url / TOLLGATE_REDIS_URL)",
            self.describe(),
            target.redacted.scrub(&reason),
        ))
    }
}

#[cfg(test)]
#[path = "redis/tests.rs"]
mod tests;
