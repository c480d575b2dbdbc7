//! Redis key names. Every key one request touches carries the team's id as its hash tag, so
//! the scripts run unchanged on Redis Cluster and teams spread across shards.

use super::limits::ScopeKind;
use crate::ids::TeamId;

#[derive(Debug, Clone)]
pub struct ScopeKeys {
    base: String,
}

impl ScopeKeys {
    pub fn new(prefix: &str, team: TeamId, kind: ScopeKind, id: uuid::Uuid) -> ScopeKeys {
        ScopeKeys {
            base: format!("{prefix}:{{{team}}}:{}:{id}", kind.as_str()),
        }
    }

    /// The keys of the scope's limits on one model or group of models (`selector` is checked
    /// by `model_limits::selector_problem`: no braces, so the hash tag stays the team's).
    pub fn for_model(self, selector: &str) -> ScopeKeys {
        ScopeKeys {
            base: format!("{}:m:{selector}", self.base),
        }
    }

    /// The scope's rate buckets: requests (`r`, `rts`) and tokens (`t`, `tts`) in one hash,
    /// so one read and one write serve both.
    pub fn rates(&self) -> String {
        format!("{}:rate", self.base)
    }

    pub fn concurrency(&self) -> String {
        format!("{}:conc", self.base)
    }

    /// The budget hash for one period window (`label`): `spent`, and the reservations of
    /// requests not settled yet as `r:<expiry ms>` fields (see `lua/govern.lua`).
    pub fn budget(&self, label: &str) -> String {
        format!("{}:b:{label}", self.base)
    }
}
