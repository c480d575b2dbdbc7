//! What the data plane's handlers share. Nothing here reaches an admin write.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_util::task::TaskTracker;

use super::auth_failures::AuthFailures;
use super::routing::Routes;
use crate::config::{AccessLog, GovernanceConfig, RoutingConfig};
use crate::governance::Governor;
use crate::keys::KeyCache;
use crate::ledger::Ledger;
use crate::pricing::PriceTable;

#[derive(Clone)]
pub struct ProxyState(Arc<ProxyInner>);

pub struct ProxyInner {
    pub keys: Arc<KeyCache>,
    /// Failed authentications per client address, refused past their limit.
    pub auth_failures: Arc<AuthFailures>,
    pub routes: Routes,
    /// Swapped whole on a pricing reload; a request keeps the snapshot it started with.
    pub prices: Arc<ArcSwap<PriceTable>>,
    pub allow_unpriced: bool,
    pub ledger: Ledger,
    /// Settlement and relaying run here so they outlive a client that disconnects;
    /// shutdown waits for them.
    pub tasks: TaskTracker,
    pub max_body_bytes: usize,
    pub governor: Arc<Governor>,
    pub governance: GovernanceConfig,
    pub routing: RoutingConfig,
    pub access_log: AccessLog,
    /// The admin pool, for the spend behind the forecasts of `GET /v1/tollgate/usage`: not
    /// the ledger writer's connections.
    pub reads: crate::store::Store,
}

impl ProxyState {
    pub fn new(inner: ProxyInner) -> ProxyState {
        ProxyState(Arc::new(inner))
    }
}

impl std::ops::Deref for ProxyState {
    type Target = ProxyInner;
    fn deref(&self) -> &ProxyInner {
        &self.0
    }
}
