//! A gate is one set of counters a request is admitted against: a scope's own limits, or the
//! scope's limits on the request's model. A request passes every gate of every scope in one
//! admission call, all or nothing, and settles on each the same way.

use super::keys::ScopeKeys;
use super::limits::{Budget, BudgetMode, FailurePolicy, MAX_TPM, ScopeKind, ScopeLimits};
use super::model_limits::ModelLimits;
use crate::ids::TeamId;

#[derive(Debug, Clone, Copy)]
pub struct Gate<'a> {
    pub scope: &'a ScopeLimits,
    /// Set for the scope's limits on one model (group): its index in `limits.models`.
    pub model: Option<(usize, &'a ModelLimits)>,
}

impl<'a> Gate<'a> {
    /// The gates of a request for `model` on `scopes`: each scope's own limits (if any), then
    /// its limits on every model group `model` belongs to.
    pub fn all(scopes: &'a [ScopeLimits], model: &str) -> Vec<Gate<'a>> {
        let mut gates = Vec::with_capacity(scopes.len());
        for scope in scopes {
            if !scope.limits.own_is_empty() {
                gates.push(Gate { scope, model: None });
            }
            for (i, limits) in scope.limits.models.iter().enumerate() {
                if !limits.is_empty() && limits.matches(model) {
                    gates.push(Gate {
                        scope,
                        model: Some((i, limits)),
                    });
                }
            }
        }
        gates
    }

    pub fn kind(&self) -> ScopeKind {
        self.scope.kind
    }

    pub fn id(&self) -> uuid::Uuid {
        self.scope.id
    }

    /// The model selector of a model gate.
    pub fn model_selector(&self) -> Option<&'a str> {
        self.model.map(|(_, m)| m.model.as_str())
    }

    pub fn rpm(&self) -> Option<u32> {
        match self.model {
            Some((_, m)) => m.rpm,
            None => self.scope.limits.rpm,
        }
    }

    /// Tokens per minute; a limit stored before [`MAX_TPM`] existed is enforced at it.
    pub fn tpm(&self) -> Option<u64> {
        match self.model {
            Some((_, m)) => m.tpm,
            None => self.scope.limits.tpm,
        }
        .map(|tpm| tpm.min(MAX_TPM))
    }

    /// Concurrency is limited per scope only.
    pub fn max_concurrent(&self) -> Option<u32> {
        match self.model {
            Some(_) => None,
            None => self.scope.limits.max_concurrent,
        }
    }

    pub fn budgets(&self) -> &'a [Budget] {
        match self.model {
            Some((_, m)) => &m.budgets,
            None => &self.scope.limits.budgets,
        }
    }

    /// A model's budgets reserve like their scope's.
    pub fn budget_mode(&self) -> BudgetMode {
        self.scope.limits.budget_mode
    }

    pub fn on_redis_failure(&self) -> FailurePolicy {
        self.scope.limits.on_redis_failure
    }

    pub fn keys(&self, prefix: &str, team: TeamId) -> ScopeKeys {
        let keys = ScopeKeys::new(prefix, team, self.scope.kind, self.scope.id);
        match self.model_selector() {
            Some(selector) => keys.for_model(selector),
            None => keys,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::governance::Period;
    use crate::governance::limits::Limits;

    fn scope(limits: Limits) -> ScopeLimits {
        ScopeLimits {
            kind: ScopeKind::Experiment,
            id: uuid::Uuid::nil(),
            name: "gsm8k".into(),
            limits,
        }
    }

    fn capped(model: &str, usd: i64) -> ModelLimits {
        ModelLimits {
            model: model.into(),
            rpm: None,
            tpm: None,
            budgets: vec![Budget {
                period: Period::Total,
                amount_usd: usd.into(),
            }],
        }
    }

    #[test]
    fn a_request_passes_its_scopes_and_the_model_groups_it_belongs_to() {
        let scopes = [scope(Limits {
            rpm: Some(60),
            models: vec![
                capped("gpt-5", 100),
                capped("gpt-*", 200),
                capped("claude-*", 5),
            ],
            ..Limits::default()
        })];
        let gates = Gate::all(&scopes, "gpt-5");
        let selectors: Vec<_> = gates.iter().map(Gate::model_selector).collect();
        assert_eq!(selectors, [None, Some("gpt-5"), Some("gpt-*")]);
        assert_eq!(gates[1].budgets()[0].amount_usd, 100.into());
        assert_eq!(gates[1].rpm(), None);
        assert_eq!(gates[0].rpm(), Some(60));
        assert_eq!(Gate::all(&scopes, "o3").len(), 1);
    }

    #[test]
    fn a_scope_limiting_only_a_model_has_no_gate_of_its_own() {
        let scopes = [scope(Limits {
            models: vec![capped("gpt-5", 100)],
            ..Limits::default()
        })];
        assert!(Gate::all(&scopes, "gpt-4o").is_empty());
        let gates = Gate::all(&scopes, "gpt-5");
        assert_eq!(gates.len(), 1);
        assert_eq!(gates[0].max_concurrent(), None);
        let team = TeamId(uuid::Uuid::nil());
        assert!(gates[0].keys("tg", team).rates().contains(":m:gpt-5:rate"));
    }
}
