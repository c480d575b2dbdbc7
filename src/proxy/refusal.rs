//! The words of a governance refusal: which scope refused, by name (the campaign and its
//! team, not only an id), and what the caller can do about it.

use std::fmt;
use std::time::Duration;

use rust_decimal::Decimal;

use crate::governance::{Period, RateKind, ScopeKind};
use crate::keys::KeyPolicy;

/// A scope as people know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeLabel {
    pub kind: ScopeKind,
    pub id: uuid::Uuid,
    /// The team's, experiment's or key's name (a key without one: its visible prefix).
    pub name: String,
    /// The team the scope belongs to (for a team, itself).
    pub team: String,
    /// Set when the limit is the scope's limit on a model or group of models.
    pub model: Option<String>,
}

impl ScopeLabel {
    /// The label of one of `policy`'s scopes (of its limits on `model`, if given).
    pub fn of(
        policy: &KeyPolicy,
        kind: ScopeKind,
        id: uuid::Uuid,
        model: Option<String>,
    ) -> ScopeLabel {
        let name = policy
            .scopes
            .iter()
            .find(|scope| scope.kind == kind && scope.id == id)
            .map_or_else(|| id.to_string(), |scope| scope.name.clone());
        ScopeLabel {
            kind,
            id,
            name,
            team: policy.team_name.clone(),
            model,
        }
    }

    /// How `tollctl limits` names the scope: `experiment gsm8k --team research`,
    /// `team research`, `key <id>` (keys are named by id only), and `--model gpt-5` for its
    /// limits on a model.
    pub fn tollctl_args(&self) -> String {
        let scope = self.tollctl_scope();
        match &self.model {
            Some(model) => format!("{scope} --model {}", shell_word(model)),
            None => scope,
        }
    }

    fn tollctl_scope(&self) -> String {
        match self.kind {
            ScopeKind::Team => format!("team {}", shell_word(&self.name)),
            ScopeKind::Experiment => format!(
                "experiment {} --team {}",
                shell_word(&self.name),
                shell_word(&self.team)
            ),
            ScopeKind::Key => format!("key {}", self.id),
        }
    }
}

/// `experiment "gsm8k" of team "research"`, `team "research"`, `key "worker-1" of team
/// "research"`; a limit on a model: `model "gpt-5" in experiment "gsm8k" of team "research"`
/// (a group: `models "gpt-5*" in ...`).
impl fmt::Display for ScopeLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(model) = &self.model {
            let what = if model.ends_with('*') {
                "models"
            } else {
                "model"
            };
            write!(f, "{what} {model:?} in ")?;
        }
        match self.kind {
            ScopeKind::Team => write!(f, "team {:?}", self.name),
            kind => write!(
                f,
                "{} {:?} of team {:?}",
                kind.as_str(),
                self.name,
                self.team
            ),
        }
    }
}

/// A name as one shell word: as is when it is plain, else in single quotes.
fn shell_word(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':'));
    if plain {
        name.to_string()
    } else {
        format!("'{}'", name.replace('\'', r"'\''"))
    }
}

/// Why a budget refused, with the numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetRefusal {
    pub scope: ScopeLabel,
    pub period: Period,
    pub limit_usd: Decimal,
    /// Spent plus reserved by requests in flight.
    pub committed_usd: Decimal,
    /// What this request needed to reserve (the most it can cost, in `strict` mode).
    pub request_usd: Decimal,
    /// Set when the request sent no `max_tokens` and a strict budget reserved this many
    /// output tokens for it (`governance.default_max_output_tokens`).
    pub default_output_reserved: Option<u64>,
}

impl fmt::Display for BudgetRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = &self.scope;
        write!(
            f,
            "budget exceeded: the {} budget of ${} on {scope} has ${} spent or reserved, and this request may cost up to ${}. ",
            self.period.as_str(),
            self.limit_usd.normalize(),
            self.committed_usd.normalize(),
            self.request_usd.normalize(),
        )?;
        let raise = format!(
            "`tollctl limits set {} --budget {}=<USD>`",
            scope.tollctl_args(),
            self.period.as_str()
        );
        if self.committed_usd >= self.limit_usd {
            return write!(f, "The budget is used up: raise it with {raise}.");
        }
        if let Some(tokens) = self.default_output_reserved {
            write!(
                f,
                "The request sets no max_tokens, so it reserves {tokens} output tokens (governance.default_max_output_tokens). "
            )?;
        }
        write!(
            f,
            "Send a smaller max_tokens, let the budget reserve an estimate instead \
             (`tollctl limits set {} --budget-mode estimate`), or raise it with {raise}.",
            scope.tollctl_args()
        )
    }
}

/// The message of a rate-limit refusal.
pub fn rate_message(
    scope: &ScopeLabel,
    rate: RateKind,
    limit: u64,
    retry_after: Duration,
) -> String {
    let (what, flag, hint) = match rate {
        RateKind::Requests => ("requests", "--rpm", ""),
        RateKind::Tokens => (
            "tokens",
            "--tpm",
            " (a request takes its prompt and its max_tokens from the bucket until it ends: a smaller max_tokens takes fewer)",
        ),
    };
    format!(
        "rate limit reached: {scope} allows {limit} {what} per minute{hint}; retry in {} s, or raise it with `tollctl limits set {} {flag} <N>`",
        retry_after.as_millis().div_ceil(1000).max(1),
        scope.tollctl_args()
    )
}

/// The message of a concurrency-limit refusal.
pub fn concurrency_message(scope: &ScopeLabel, limit: u64) -> String {
    format!(
        "concurrency limit reached: {scope} allows {limit} requests in flight; retry when one ends, or raise it with `tollctl limits set {} --max-concurrent <N>`",
        scope.tollctl_args()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(kind: ScopeKind, name: &str) -> ScopeLabel {
        ScopeLabel {
            kind,
            id: uuid::Uuid::nil(),
            name: name.into(),
            team: "research".into(),
            model: None,
        }
    }

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn scopes_are_named_as_people_and_tollctl_know_them() {
        let experiment = label(ScopeKind::Experiment, "gsm8k");
        assert_eq!(
            experiment.to_string(),
            r#"experiment "gsm8k" of team "research""#
        );
        assert_eq!(
            experiment.tollctl_args(),
            "experiment gsm8k --team research"
        );
        assert_eq!(
            label(ScopeKind::Team, "research").tollctl_args(),
            "team research"
        );
        assert_eq!(
            label(ScopeKind::Key, "worker-1").tollctl_args(),
            format!("key {}", uuid::Uuid::nil())
        );
        assert_eq!(
            label(ScopeKind::Experiment, "it's big").tollctl_args(),
            r"experiment 'it'\''s big' --team research"
        );
    }

    #[test]
    fn a_limit_on_a_model_is_named_with_its_scope() {
        let gpt5 = ScopeLabel {
            model: Some("gpt-5".into()),
            ..label(ScopeKind::Experiment, "gsm8k")
        };
        assert_eq!(
            gpt5.to_string(),
            r#"model "gpt-5" in experiment "gsm8k" of team "research""#
        );
        assert_eq!(
            gpt5.tollctl_args(),
            "experiment gsm8k --team research --model gpt-5"
        );
        let group = ScopeLabel {
            model: Some("claude-*".into()),
            ..label(ScopeKind::Team, "research")
        };
        assert_eq!(group.to_string(), r#"models "claude-*" in team "research""#);
        assert_eq!(group.tollctl_args(), "team research --model 'claude-*'");
    }

    #[test]
    fn a_budget_refusal_says_what_to_do() {
        let refusal = BudgetRefusal {
            scope: label(ScopeKind::Experiment, "gsm8k"),
            period: Period::Total,
            limit_usd: dec("0.01"),
            committed_usd: dec("0.002"),
            request_usd: dec("0.0098"),
            default_output_reserved: Some(16384),
        };
        assert_eq!(
            refusal.to_string(),
            "budget exceeded: the total budget of $0.01 on experiment \"gsm8k\" of team \"research\" \
             has $0.002 spent or reserved, and this request may cost up to $0.0098. The request sets \
             no max_tokens, so it reserves 16384 output tokens (governance.default_max_output_tokens). \
             Send a smaller max_tokens, let the budget reserve an estimate instead (`tollctl limits set \
             experiment gsm8k --team research --budget-mode estimate`), or raise it with `tollctl \
             limits set experiment gsm8k --team research --budget total=<USD>`."
        );
        let spent = BudgetRefusal {
            committed_usd: dec("0.01"),
            ..refusal
        };
        assert!(
            spent
                .to_string()
                .ends_with("The budget is used up: raise it with `tollctl limits set experiment gsm8k --team research --budget total=<USD>`."),
            "{spent}"
        );
    }

    #[test]
    fn rate_and_concurrency_refusals_name_the_flag_to_raise() {
        let scope = label(ScopeKind::Team, "research");
        assert_eq!(
            rate_message(&scope, RateKind::Requests, 3, Duration::from_millis(11_200)),
            "rate limit reached: team \"research\" allows 3 requests per minute; retry in 12 s, or raise it with `tollctl limits set team research --rpm <N>`"
        );
        assert!(
            rate_message(&scope, RateKind::Tokens, 1000, Duration::from_secs(1))
                .contains("smaller max_tokens takes fewer)")
        );
        assert_eq!(
            concurrency_message(&scope, 4),
            "concurrency limit reached: team \"research\" allows 4 requests in flight; retry when one ends, or raise it with `tollctl limits set team research --max-concurrent <N>`"
        );
    }
}
