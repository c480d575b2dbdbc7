use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;

use super::*;

fn limits() -> LeaseLimits {
    LeaseLimits {
        rpm: Some(600),
        tpm: Some(100_000),
        budgets: vec![(Period::Total, 1_000_000)],
    }
}

fn budget() -> Vec<BudgetLease> {
    vec![BudgetLease::new("tg:{t}:experiment:e:b:total".into(), None)]
}

const NEED: Need = Need {
    tokens: 100,
    reserve: 1_000,
};

fn grant(amount: i64, held: i64) -> BudgetGrant {
    BudgetGrant::Granted {
        amount,
        held,
        left: 900_000,
        pressure: false,
    }
}

fn answer(requests: i64, tokens: i64, budget: BudgetGrant) -> Granted {
    Granted {
        requests,
        requests_left: 500,
        tokens,
        tokens_left: 90_000,
        budgets: vec![budget],
    }
}

/// A lease that saw eight requests in its first 100 ms and asked for its first renewal.
fn first_renewal(config: &LeaseConfig) -> (LeaseState, Renewal, Instant) {
    let start = Instant::now();
    let mut state = LeaseState::new(start);
    for _ in 0..8 {
        state.note(NEED, start);
    }
    let at = start + Duration::from_millis(100);
    let renewal = state
        .plan(&limits(), config, Mode::Active, at, budget)
        .unwrap();
    (state, renewal, at)
}

/// [`first_renewal`], granted 20 requests' worth of everything.
fn granted_lease(config: &LeaseConfig) -> (LeaseState, Instant) {
    let (mut state, renewal, at) = first_renewal(config);
    state
        .apply(&renewal, &answer(20, 2_000, grant(20_000, 20_000)), config)
        .unwrap();
    (state, at)
}

#[test]
fn the_first_renewal_asks_for_a_horizon_of_the_demand_seen() {
    let config = LeaseConfig::default();
    let (mut state, renewal, at) = first_renewal(&config);
    // Eight requests in 100 ms is 80 a second: a one-second lease wants 80 of them.
    assert_eq!(renewal.requests_want, 80);
    assert_eq!(renewal.tokens_want, 8_000);
    assert_eq!(renewal.budgets[0].want, 80_000);
    assert_eq!(renewal.budgets[0].unit, 1_000);
    assert_eq!(renewal.budgets[0].base, 0);
    assert!(
        state
            .plan(&limits(), &config, Mode::Active, at, budget)
            .is_none(),
        "one renewal at a time"
    );
}

#[test]
fn a_granted_lease_admits_in_process_and_reports_what_was_spent() {
    let config = LeaseConfig::default();
    let (mut state, at) = granted_lease(&config);
    let now = Utc::now();
    assert!(state.covers(&limits(), NEED, now, at));
    assert!(state.take(&limits(), NEED), "19 of a target of 80 is low");
    assert_eq!(
        (state.requests, state.tokens, state.budgets[0].available),
        (19, 1_900, 19_000)
    );
    // It used 150 tokens and cost 400 of the 1000 it reserved.
    state.settle(&limits(), NEED, 150, 400);
    assert_eq!(state.tokens, 1_850);
    let b = &state.budgets[0];
    assert_eq!((b.available, b.in_flight, b.spent_total), (19_600, 0, 400));
    assert_eq!(state.in_flight, 0);

    // The next renewal reports the lease's whole spend and what it holds, both absolute.
    let later = at + config.report_interval;
    state.last_used = later;
    let renewal = state
        .plan(&limits(), &config, Mode::Active, later, budget)
        .unwrap();
    let op = renewal.budgets[0];
    assert_eq!((op.spent_total, op.spent_acked, op.base), (400, 0, 19_600));
    state
        .apply(&renewal, &answer(0, 0, grant(0, 19_600)), &config)
        .unwrap();
    assert_eq!(state.budgets[0].spent_acked, 400);
}

#[test]
fn a_lease_does_not_cover_what_it_lacks_or_after_it_expired() {
    let config = LeaseConfig::default();
    let (mut state, at) = granted_lease(&config);
    let now = Utc::now();
    let big = Need {
        tokens: 100,
        reserve: 20_001,
    };
    assert!(!state.covers(&limits(), big, now, at));
    let greedy = Need {
        tokens: 2_001,
        reserve: 1,
    };
    assert!(!state.covers(&limits(), greedy, now, at));
    assert!(!state.covers(&limits(), NEED, now, at + config.ttl));
    let changed = LeaseLimits {
        budgets: vec![(Period::Total, 1), (Period::Daily, 1)],
        ..limits()
    };
    assert!(!state.covers(&changed, NEED, now, at));
    state.budgets[0].period_end = Some(now);
    assert!(!state.covers(&limits(), NEED, now, at), "its period ended");
}

#[test]
fn going_below_half_the_target_asks_for_more() {
    let config = LeaseConfig {
        horizon: Duration::from_millis(250),
        ..LeaseConfig::default()
    };
    let (mut state, renewal, _) = first_renewal(&config);
    assert_eq!(renewal.requests_want, 20);
    state
        .apply(&renewal, &answer(20, 2_000, grant(20_000, 20_000)), &config)
        .unwrap();
    let lows: Vec<bool> = (0..11).map(|_| state.take(&limits(), NEED)).collect();
    assert_eq!(lows.iter().filter(|low| **low).count(), 1, "{lows:?}");
    assert!(lows[10], "9 of 20 is below half");
}

#[test]
fn an_idle_lease_gives_back_what_it_does_not_use_and_a_failure_is_put_right_later() {
    let config = LeaseConfig::default();
    let (mut state, at) = granted_lease(&config);
    state.take(&limits(), NEED);
    state.take(&limits(), NEED);
    state.settle(&limits(), NEED, 100, 1_000);
    let idle = at + config.idle;
    let renewal = state
        .plan(&limits(), &config, Mode::Active, idle, budget)
        .unwrap();
    // Idle: everything unused goes back; Redis keeps what the request in flight holds.
    assert_eq!(renewal.requests_back, 18);
    assert_eq!(renewal.tokens_back, 1_800);
    let op = renewal.budgets[0];
    assert_eq!((op.spent_total, op.base, op.want), (1_000, 1_000, 0));
    assert_eq!(state.budgets[0].available, 0);
    // It may have run: nothing comes back, and the next call (due at once) says it all again.
    state.failed(&config, idle);
    assert_eq!((state.requests, state.tokens), (0, 0));
    assert!(!state.is_empty());
    let after = idle + config.report_interval;
    let again = state
        .plan(&limits(), &config, Mode::GiveBack, after, budget)
        .unwrap();
    assert_eq!(again.budgets[0], op);
    state.settle(&limits(), NEED, 100, 1_000);
    state
        .apply(&again, &answer(0, 0, grant(0, 1_000)), &config)
        .unwrap();
    let last = state
        .plan(
            &limits(),
            &config,
            Mode::GiveBack,
            after + config.report_interval,
            budget,
        )
        .unwrap();
    assert_eq!(
        (last.budgets[0].spent_total, last.budgets[0].base),
        (2_000, 0)
    );
    state
        .apply(&last, &answer(0, 0, grant(0, 0)), &config)
        .unwrap();
    assert!(state.is_empty());
}

#[test]
fn a_lease_redis_lost_or_let_expire_stops() {
    let config = LeaseConfig::default();
    for lost in [BudgetGrant::CounterMissing, BudgetGrant::Expired] {
        let (mut state, at) = granted_lease(&config);
        let later = at + config.ttl / 2;
        state.last_used = later;
        let renewal = state
            .plan(&limits(), &config, Mode::Active, later, budget)
            .unwrap();
        assert!(state.apply(&renewal, &answer(0, 0, lost), &config).is_err());
        assert!(!state.covers(&limits(), NEED, Utc::now(), later));
        assert_eq!(state.budgets[0].available, 0);
    }
}

#[test]
fn pressure_on_a_budget_makes_the_lease_give_back_and_ask_for_nothing() {
    let config = LeaseConfig::default();
    let (mut state, at) = granted_lease(&config);
    let later = at + config.report_interval;
    state.last_used = later;
    for _ in 0..8 {
        state.note(NEED, later);
    }
    let renewal = state
        .plan(&limits(), &config, Mode::Active, later, budget)
        .unwrap();
    let pressed = BudgetGrant::Granted {
        amount: 0,
        held: 20_000,
        left: 10,
        pressure: true,
    };
    state
        .apply(&renewal, &answer(0, 0, pressed), &config)
        .unwrap();
    let next = state
        .plan(&limits(), &config, Mode::Active, later, budget)
        .unwrap();
    assert_eq!(next.budgets[0].base, 0, "gives back all it does not use");
    assert_eq!(next.budgets[0].want, 0);
    assert_eq!(next.requests_want, 0);
}

#[test]
fn a_few_requests_start_no_lease_and_nothing_granted_waits_before_asking_again() {
    let config = LeaseConfig::default();
    let start = Instant::now();
    let mut state = LeaseState::new(start);
    for _ in 0..7 {
        state.note(NEED, start);
    }
    let later = start + Duration::from_millis(200);
    assert!(
        state
            .plan(&limits(), &config, Mode::Active, later, budget)
            .is_none(),
        "seven requests in a window start nothing"
    );
    for _ in 0..8 {
        state.note(NEED, later);
    }
    let renewal = state
        .plan(&limits(), &config, Mode::Active, later, budget)
        .unwrap();
    state
        .apply(&renewal, &answer(0, 0, grant(0, 0)), &config)
        .unwrap();
    assert!(
        state
            .plan(&limits(), &config, Mode::Active, later, budget)
            .is_none(),
        "quiet for a report interval"
    );
    assert!(
        state
            .plan(
                &limits(),
                &config,
                Mode::Active,
                later + config.report_interval,
                budget
            )
            .is_some()
    );
}

#[test]
fn estimates_that_ran_over_become_a_token_debt_and_never_wrap() {
    let config = LeaseConfig::default();
    let (mut state, _) = granted_lease(&config);
    state.take(&limits(), NEED);
    state.settle(&limits(), NEED, i64::MAX, i64::MAX);
    assert_eq!(state.tokens, 2_000 - i64::MAX);
    assert_eq!(state.budgets[0].available, 20_000 - i64::MAX);
    assert_eq!(state.budgets[0].spent_total, i64::MAX);
    state.take(&limits(), NEED);
    state.settle(&limits(), NEED, i64::MAX, i64::MAX);
    assert_eq!(state.tokens, i64::MIN, "saturates");
    assert_eq!(state.budgets[0].spent_total, i64::MAX, "saturates");
}
