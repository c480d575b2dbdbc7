//! What a team token may set on its experiments and keys: never more than the admin set on
//! the team. A team's own limits are the admin's ceiling (team tokens cannot change them), and
//! a scope's limit above the team's would be unreachable anyway, so refusing it makes the
//! answer honest instead of silently ineffective.

use super::AdminState;
use super::caller::Caller;
use super::error::AdminError;
use crate::governance::{Limits, ScopeKind};
use crate::ids::TeamId;

/// 403 when a team token sets, on an experiment or key of `team`, a budget above the team's
/// budget for the same period, or a rate above the team's. Admins are not capped.
pub async fn within_team_limits(
    state: &AdminState,
    caller: &Caller,
    team: TeamId,
    limits: &Limits,
) -> Result<(), AdminError> {
    if caller.is_admin() {
        return Ok(());
    }
    let Some(team_limits) = state
        .store
        .limits_of(&[(ScopeKind::Team, team.0)])
        .await?
        .pop()
    else {
        return Ok(());
    };
    excess(limits, &team_limits.limits).map_or(Ok(()), |message| {
        Err(AdminError::Denied(format!(
            "{message}; a team token may not set more than its team's limit (an admin may)"
        )))
    })
}

/// The first of `limits` above `team`, described.
fn excess(limits: &Limits, team: &Limits) -> Option<String> {
    for budget in &limits.budgets {
        if let Some(cap) = team.budgets.iter().find(|b| b.period == budget.period)
            && budget.amount_usd > cap.amount_usd
        {
            return Some(format!(
                "the {} budget of {} USD is above the team's {} USD",
                budget.period.as_str(),
                budget.amount_usd.normalize(),
                cap.amount_usd.normalize()
            ));
        }
    }
    let rates = [
        ("rpm", limits.rpm.map(u64::from), team.rpm.map(u64::from)),
        ("tpm", limits.tpm, team.tpm),
        (
            "max_concurrent",
            limits.max_concurrent.map(u64::from),
            team.max_concurrent.map(u64::from),
        ),
    ];
    rates
        .into_iter()
        .find_map(|(name, asked, cap)| match (asked, cap) {
            (Some(asked), Some(cap)) if asked > cap => {
                Some(format!("`{name}` {asked} is above the team's {cap}"))
            }
            _ => None,
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::governance::{Budget, Period};

    fn budget(period: Period, amount: &str) -> Budget {
        Budget {
            period,
            amount_usd: amount.parse().unwrap(),
        }
    }

    #[test]
    fn only_the_same_period_and_higher_amounts_exceed() {
        let team = Limits {
            rpm: Some(100),
            budgets: vec![budget(Period::Monthly, "50")],
            ..Limits::default()
        };
        let ok = Limits {
            rpm: Some(100),
            budgets: vec![
                budget(Period::Monthly, "50.00"),
                budget(Period::Daily, "80"),
            ],
            ..Limits::default()
        };
        assert_eq!(excess(&ok, &team), None);
        let over = Limits {
            budgets: vec![budget(Period::Monthly, "50.01")],
            ..Limits::default()
        };
        assert!(excess(&over, &team).unwrap().contains("monthly"));
        let fast = Limits {
            rpm: Some(101),
            ..Limits::default()
        };
        assert!(excess(&fast, &team).unwrap().contains("rpm"));
        assert_eq!(excess(&fast, &Limits::default()), None);
    }
}
