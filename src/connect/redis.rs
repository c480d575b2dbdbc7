//! Redis connections with the TLS settings of `redis_url` applied: the request path's
//! multiplexed connection, the control plane's, and the invalidation listener's pub/sub.
//!
//! [`RedisConnector`] is built once from the configuration (which has read the certificate
//! files) and hands out every connection, so none can skip the TLS settings.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSub};
use redis::{ClientTlsConfig, ConnectionAddr, IntoConnectionInfo, TlsCertificates};

use super::{ConnectError, Redacted, Trust, describe_tls_error, find_tls_error};
use crate::config::{RedisTls, RedisVerify, Secret};

/// How long a governance call sent to Redis is waited for before it counts as lost.
pub const REDIS_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens the gateway's Redis connections. Cheap to clone.
#[derive(Clone)]
pub struct RedisConnector {
    client: redis::Client,
    target: Arc<Target>,
}

/// What error messages say about the server.
struct Target {
    redacted: Redacted,
    host: String,
    /// How the server is trusted, for `rediss://`; `None` for plain text.
    trust: Option<Trusted>,
}

/// How a `rediss://` server's certificate is checked, for the client and for messages.
struct Trusted {
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
    /// Checks `url` and builds the client; connects nothing yet. With verification off, logs
    /// a warning: every start says so.
    pub fn new(
        url: &Secret<String>,
        tls: Option<&RedisTls>,
    ) -> Result<RedisConnector, ConnectError> {
        let redacted = Redacted::new(url.expose());
        let fail = |e: redis::RedisError| {
            ConnectError::new(format!(
                "invalid redis_url {}: {} (check redis_url / TOLLGATE_REDIS_URL)",
                redacted.shown,
                redacted.scrub(&e.to_string())
            ))
        };
        let info = url.expose().as_str().into_connection_info().map_err(fail)?;
        let host = match info.addr() {
            ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => host.clone(),
            _ => String::new(),
        };
        let (client, trust) = match tls {
            None => (redis::Client::open(info).map_err(fail)?, None),
            Some(tls) => {
                let trust = Trusted::of(&tls.verify);
                let info = if tls.verify == RedisVerify::Off {
                    tracing::warn!(
                        redis = %redacted.shown,
                        "redis_tls_insecure: the Redis server's TLS certificate is NOT verified, \
                         so anyone on the network path can impersonate it and read or change \
                         every budget and rate-limit counter. Use this only with a self-signed \
                         development server; give production servers redis_ca_file instead"
                    );
                    insecure(info)
                } else {
                    info
                };
                let certificates = TlsCertificates {
                    client_tls: tls.client.as_ref().map(|client| ClientTlsConfig {
                        client_cert: client.cert_pem.clone(),
                        client_key: client.key_pem.expose().clone(),
                    }),
                    root_cert: trust.root_cert.clone(),
                };
                let client = redis::Client::build_with_tls(info, certificates).map_err(fail)?;
                (client, Some(trust))
            }
        };
        Ok(RedisConnector {
            client,
            target: Arc::new(Target {
                redacted,
                host,
                trust,
            }),
        })
    }

    /// The request path's connection for admission and settlement: one multiplexed
    /// connection, reconnected on failure.
    pub async fn multiplexed(&self, timeout: Duration) -> Result<ConnectionManager, ConnectError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            // A request waits at most `timeout` for its answer (the governor's own timeout),
            // but the call itself is not abandoned that early: a script that runs late in a
            // slow Redis still answers, and the batcher gives back what it took for a request
            // that stopped waiting. Only an answer later than this is lost (its reservation
            // expires).
            .set_response_timeout(Some(REDIS_RESPONSE_TIMEOUT.max(timeout)))
            // Reconnection is retried on the next calls; a call never waits through many
            // attempts.
            .set_number_of_retries(1);
        self.manager(config).await
    }

    /// The control plane's connection (publishing invalidations), separate from the request
    /// path's so an admin burst never queues in front of admissions.
    pub async fn control(&self) -> Result<ConnectionManager, ConnectError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1);
        self.manager(config).await
    }

    /// A pub/sub connection (the invalidation listener's).
    pub async fn pubsub(&self) -> redis::RedisResult<PubSub> {
        self.client.get_async_pubsub().await
    }

    /// A connection manager whose first connection has answered a PING, so a server that
    /// refuses the credentials or the client certificate stops start-up.
    async fn manager(
        &self,
        config: ConnectionManagerConfig,
    ) -> Result<ConnectionManager, ConnectError> {
        let mut manager = ConnectionManager::new_with_config(self.client.clone(), config)
            .await
            .map_err(|e| self.failure(&e))?;
        redis::cmd("PING")
            .query_async::<String>(&mut manager)
            .await
            .map_err(|e| self.failure(&e))?;
        Ok(manager)
    }

    /// The server and its TLS settings, without the password (for the start-up log).
    pub fn describe(&self) -> String {
        let target = &self.target;
        match &target.trust {
            Some(trust) => format!("{} ({})", target.redacted.shown, trust.summary),
            None => format!("{} (plain text)", target.redacted.shown),
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

/// The same address with certificate verification off (redis-rs's `#insecure`).
fn insecure(info: redis::ConnectionInfo) -> redis::ConnectionInfo {
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
