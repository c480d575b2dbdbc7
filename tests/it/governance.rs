//! Governance across instances: budgets that hold under concurrency, rate and concurrency
//! limits, reservations that expire, counters rebuilt from the ledger, Redis failures and
//! UTC period roll-over. Real Redis, real PostgreSQL, the mock upstream, real sockets.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tollgate::governance::Clock;

use crate::common::redis::{OwnRedis, script_calls};
use crate::common::requests::{exact_request, exact_request_with};
use crate::common::{Options, TestApp, dec, two_instances};

async fn burst(apps: [&TestApp; 2], key: &str, body: &Value, n: usize) -> Vec<u16> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let app = apps[i % 2];
        let request = app
            .http
            .post(format!("{}/v1/chat/completions", app.data_url))
            .bearer_auth(key)
            .json(body);
        tasks.spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            // Read the whole body: a stream is only over when it has been consumed.
            let body = response.bytes().await.unwrap();
            if status == 402 {
                let error: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(error["error"]["type"], "budget_exceeded", "{error}");
            }
            status
        });
    }
    let mut statuses = Vec::new();
    while let Some(status) = tasks.join_next().await {
        statuses.push(status.unwrap());
    }
    statuses
}

async fn ledger_total(app: &TestApp) -> (i64, Decimal) {
    let (n, total): (i64, Option<Decimal>) =
        sqlx::query_as("SELECT count(*), sum(cost_usd) FROM request_log WHERE status = 200")
            .fetch_one(&app.db)
            .await
            .unwrap();
    (n, total.unwrap_or_default())
}

/// 500 concurrent requests through two instances against a budget for exactly K of them.
async fn budget_holds(scope: &str, stream: bool) {
    const K: usize = 37;
    let _heavy = crate::common::heavy().await;
    let (a, b) = two_instances(Options::default).await;
    let (key, record) = a.issue_key(json!({})).await;
    let (body, cost) = exact_request(stream);
    let budget = cost * Decimal::from(K);
    let path = match scope {
        "key" => format!("/keys/{}", record["id"].as_str().unwrap()),
        "experiment" => format!("/experiments/{}", record["experiment_id"].as_str().unwrap()),
        _ => format!("/teams/{}", record["team_id"].as_str().unwrap()),
    };
    a.put_limits(
        &path,
        json!({"budgets": [{"period": "total", "amount_usd": budget.to_string()}]}),
    )
    .await;

    let statuses = burst([&a, &b], &key, &body, 500).await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 402).count();
    assert_eq!(
        (ok, refused),
        (K, 500 - K),
        "scope {scope}, stream {stream}"
    );

    // Every success is in the ledger, and the ledger never exceeds the budget.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (n, total) = loop {
        let (n, total) = ledger_total(&a).await;
        if n as usize == K || tokio::time::Instant::now() > deadline {
            break (n, total);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(n as usize, K);
    assert_eq!(total, budget);
    assert!(total <= budget);
}

#[tokio::test]
async fn key_budget_holds_across_instances() {
    budget_holds("key", false).await;
}

#[tokio::test]
async fn key_budget_holds_across_instances_streaming() {
    budget_holds("key", true).await;
}

#[tokio::test]
async fn experiment_budget_holds_across_instances() {
    budget_holds("experiment", false).await;
}

#[tokio::test]
async fn experiment_budget_holds_across_instances_streaming() {
    budget_holds("experiment", true).await;
}

#[tokio::test]
async fn team_budget_holds_across_instances() {
    budget_holds("team", false).await;
}

#[tokio::test]
async fn team_budget_holds_across_instances_streaming() {
    budget_holds("team", true).await;
}

#[tokio::test]
async fn budget_refusal_names_scope_and_period_and_usage_shows_it() {
    let app = TestApp::spawn().await;
    let (key, record) = app.issue_key(json!({})).await;
    let (body, cost) = exact_request(false);
    let experiment = record["experiment_id"].as_str().unwrap();
    app.put_limits(
        &format!("/experiments/{experiment}"),
        json!({"budgets": [{"period": "daily", "amount_usd": cost.to_string()}]}),
    )
    .await;
    assert_eq!(app.chat(&key, body.clone()).await.status(), 200);
    let response = app.chat(&key, body).await;
    assert_eq!(response.status(), 402);
    let error: Value = response.json().await.unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    // It names the campaign and its team, states the numbers (what the first request spent,
    // what this one would reserve), and says how to raise the budget.
    let (_, team) = app
        .admin(
            Method::GET,
            &format!("/teams/{}", record["team_id"].as_str().unwrap()),
            None,
        )
        .await;
    let team = team["name"].as_str().unwrap();
    let cost = cost.normalize();
    assert_eq!(
        message,
        format!(
            "budget exceeded: the daily budget of ${cost} on experiment \"exp\" of team \"{team}\" \
             has ${cost} spent or reserved, and this request may cost up to ${cost}. The budget is \
             used up: raise it with `tollctl limits set experiment exp --team {team} --budget daily=<USD>`."
        )
    );
    assert_eq!(error["error"]["code"], "budget_exceeded");

    // The key holder sees the spent budget on its experiment.
    let usage = app.key_usage(&key).await;
    let scope = &usage["scopes"][0];
    assert_eq!(scope["usage"]["scope"], "experiment");
    assert_eq!(
        dec(scope["usage"]["budgets"][0]["spent_usd"].as_str().unwrap()),
        cost
    );
    assert_eq!(
        dec(scope["usage"]["budgets"][0]["remaining_usd"]
            .as_str()
            .unwrap()),
        Decimal::ZERO
    );
}

/// A newcomer's first request, from an SDK that sends no `max_tokens`, against a small strict
/// budget: the 402 says that the request reserved the default output and what to do; the
/// same request with a `max_tokens` is served.
#[tokio::test]
async fn a_strict_budget_refusal_of_a_request_without_max_tokens_says_why() {
    let app = TestApp::spawn().await;
    let (key, record) = app.issue_key(json!({})).await;
    app.put_limits(
        &format!("/keys/{}", record["id"].as_str().unwrap()),
        json!({"budgets": [{"period": "total", "amount_usd": "0.001"}]}),
    )
    .await;
    let mut body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let response = app.chat(&key, body.clone()).await;
    assert_eq!(response.status(), 402);
    let error: Value = response.json().await.unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    let key_id = record["id"].as_str().unwrap();
    assert!(
        message.contains(
            "The request sets no max_tokens, so it reserves 16384 output tokens (governance.default_max_output_tokens). \
             Send a smaller max_tokens, let the budget reserve an estimate instead \
             (`tollctl limits set key "
        ) && message.ends_with(&format!(
            "--budget-mode estimate`), or raise it with `tollctl limits set key {key_id} --budget total=<USD>`."
        )),
        "{message}"
    );
    body["max_tokens"] = json!(20);
    assert_eq!(app.chat(&key, body).await.status(), 200);
}

#[tokio::test]
async fn requests_per_minute_hold_across_instances_and_retry_after_is_honest() {
    let (a, b) = two_instances(Options::default).await;
    let (key, record) = a.issue_key(json!({})).await;
    a.put_limits(
        &format!("/keys/{}", record["id"].as_str().unwrap()),
        json!({"rpm": 60}),
    )
    .await;
    let body = json!({"model": "test-model", "messages": []});
    let statuses = burst([&a, &b], &key, &body, 90).await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    // The bucket holds 60 and refills one per second while the burst runs.
    assert!((60..=62).contains(&ok), "{ok} admitted");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 90 - ok);

    // The burst emptied the bucket; it refills one request a second, so at most the first
    // of a few quick requests can still be admitted.
    let mut refused = None;
    for _ in 0..3 {
        let response = b.chat(&key, body.clone()).await;
        if response.status() == 429 {
            refused = Some(response);
            break;
        }
    }
    let refused = refused.expect("three requests right after the burst were all admitted");
    let headers = refused.headers().clone();
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(headers["x-ratelimit-limit-requests"], "60");
    assert_eq!(headers["x-ratelimit-remaining-requests"], "0");
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "rate_limit_requests");
    let prefix = record["prefix"].as_str().unwrap();
    let team = a
        .admin(
            Method::GET,
            &format!("/teams/{}", record["team_id"].as_str().unwrap()),
            None,
        )
        .await
        .1["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        error["error"]["message"],
        format!(
            "rate limit reached: key \"{prefix}\" of team \"{team}\" allows 60 requests per minute; \
             retry in {retry_after} s, or raise it with `tollctl limits set key {} --rpm <N>`",
            record["id"].as_str().unwrap()
        )
    );
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(
        a.chat(&key, body).await.status(),
        200,
        "a retry after Retry-After succeeds"
    );
}

#[tokio::test]
async fn tokens_per_minute_hold_across_instances() {
    let (a, b) = two_instances(Options::default).await;
    let (key, record) = a.issue_key(json!({})).await;
    a.put_limits(
        &format!("/keys/{}", record["id"].as_str().unwrap()),
        json!({"tpm": 1000}),
    )
    .await;
    // Each request really uses 300 tokens; admission takes only its estimate and settlement
    // takes the rest, so the fourth request finds 100 tokens left.
    let body = json!({"model": "test-model", "messages": [], "max_tokens": 100,
        "mock": {"usage": {"prompt_tokens": 200, "completion_tokens": 100}}});
    let mut statuses = Vec::new();
    for i in 0..4 {
        let app = if i % 2 == 0 { &a } else { &b };
        let response = app.chat(&key, body.clone()).await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            assert_eq!(response.headers()["x-ratelimit-limit-tokens"], "1000");
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["error"]["code"], "rate_limit_tokens");
        }
    }
    assert_eq!(statuses, vec![200, 200, 200, 429]);
}

#[tokio::test]
async fn concurrency_limit_holds() {
    let app = TestApp::spawn().await;
    let (key, record) = app.issue_key(json!({})).await;
    app.put_limits(
        &format!("/keys/{}", record["id"].as_str().unwrap()),
        json!({"max_concurrent": 2}),
    )
    .await;
    let body = json!({"model": "test-model", "messages": [], "mock": {"delay_ms": 700}});
    let statuses = burst([&app, &app], &key, &body, 6).await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 2);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 4);
    // Slots are freed by settlement, which runs just after each response is handed over.
    let freed = tokio::time::Instant::now();
    while app
        .chat(&key, json!({"model": "test-model", "messages": []}))
        .await
        .status()
        != 200
    {
        assert!(
            freed.elapsed() < Duration::from_secs(1),
            "slots were not freed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn lost_redis_counters_are_rebuilt_from_the_ledger() {
    let app = TestApp::spawn().await;
    let (key, record) = app.issue_key(json!({})).await;
    let (body, cost) = exact_request(false);
    let team = record["team_id"].as_str().unwrap();
    app.put_limits(&format!("/teams/{team}"), json!({"budgets": [{"period": "monthly", "amount_usd": (cost * Decimal::from(5)).to_string()}]}))
        .await;
    for _ in 0..3 {
        assert_eq!(app.chat(&key, body.clone()).await.status(), 200);
    }
    app.ledger_rows(3).await;
    // Redis loses everything this team had (as a restart without persistence would).
    let mut redis = redis::Client::open(crate::common::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("tg:{{{team}}}:*"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    let _: i64 = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut redis)
        .await
        .unwrap();

    let statuses: Vec<u16> = {
        let mut out = Vec::new();
        for _ in 0..4 {
            out.push(app.chat(&key, body.clone()).await.status().as_u16());
        }
        out
    };
    assert_eq!(
        statuses,
        vec![200, 200, 402, 402],
        "no fresh budget after Redis lost its counters"
    );
}

#[derive(Clone)]
struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

#[tokio::test]
async fn daily_budget_rolls_over_at_utc_midnight() {
    let clock = ManualClock(Arc::new(Mutex::new(
        "2026-11-21T23:59:58Z".parse().unwrap(),
    )));
    let app = TestApp::spawn_with(Options {
        clock: Some(Arc::new(clock.clone())),
        ..Options::default()
    })
    .await;
    let (key, record) = app.issue_key(json!({})).await;
    let (body, cost) = exact_request(false);
    app.put_limits(
        &format!("/keys/{}", record["id"].as_str().unwrap()),
        json!({"budgets": [{"period": "daily", "amount_usd": cost.to_string()}]}),
    )
    .await;
    assert_eq!(app.chat(&key, body.clone()).await.status(), 200);
    assert_eq!(app.chat(&key, body.clone()).await.status(), 402);
    *clock.0.lock().unwrap() = "2026-11-21T23:59:59.999Z".parse().unwrap();
    assert_eq!(
        app.chat(&key, body.clone()).await.status(),
        402,
        "still the same UTC day"
    );
    *clock.0.lock().unwrap() = "2026-11-22T00:00:00Z".parse().unwrap();
    assert_eq!(
        app.chat(&key, body.clone()).await.status(),
        200,
        "a new UTC day, a new budget"
    );
    assert_eq!(app.chat(&key, body).await.status(), 402);
}

#[tokio::test]
async fn limit_changes_reach_another_instance_within_a_second() {
    let (a, b) = two_instances(Options::default).await;
    let (key, record) = a.issue_key(json!({})).await;
    let body = json!({"model": "test-model", "messages": []});
    assert_eq!(b.chat(&key, body.clone()).await.status(), 200);
    a.put_limits(
        &format!("/teams/{}", record["team_id"].as_str().unwrap()),
        json!({"budgets": [{"period": "total", "amount_usd": "0"}]}),
    )
    .await;
    let changed = tokio::time::Instant::now();
    while b.chat(&key, body.clone()).await.status() != 402 {
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "B still admits past a zero budget"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn limits_api_validates_and_clears() {
    let app = TestApp::spawn().await;
    let (_, record) = app.issue_key(json!({})).await;
    let path = format!("/keys/{}/limits", record["id"].as_str().unwrap());
    for bad in [
        json!({"rpm": 0}),
        json!({"budgets": [{"period": "yearly", "amount_usd": "5"}]}),
        json!({"budgets": [{"period": "daily", "amount_usd": "-1"}]}),
        json!({"budgets": [{"period": "daily", "amount_usd": "abc"}]}),
        json!({"budget_mode": "loose"}),
        json!({"rpm": 5, "burst": 3}),
    ] {
        let (status, body) = app.admin(Method::PUT, &path, Some(bad.clone())).await;
        assert!(status == 400 || status == 422, "{bad} -> {status} {body}");
    }
    let (status, _) = app
        .admin(
            Method::PUT,
            "/keys/00000000-0000-0000-0000-000000000000/limits",
            Some(json!({"rpm": 5})),
        )
        .await;
    assert_eq!(status, 404);
    let shown = app
        .put_limits(
            &format!("/keys/{}", record["id"].as_str().unwrap()),
            json!({"rpm": 5, "budgets": [{"period": "weekly", "amount_usd": "12.50"}]}),
        )
        .await;
    assert_eq!(shown["limits"]["rpm"], 5);
    assert_eq!(shown["limits"]["budgets"][0]["amount_usd"], "12.50");
    assert_eq!(shown["usage"]["rpm"]["remaining"], 5);
    let (status, cleared) = app.admin(Method::DELETE, &path, None).await;
    assert_eq!((status, &cleared["limits"]), (200, &Value::Null));
}

#[test]
fn a_dead_instance_releases_its_reservations_within_the_stated_expiry() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (b, key, body, db_url) = runtime.block_on(async {
        let b = TestApp::spawn_with(Options {
            governance_extra: "reservation_ttl_secs = 2".into(),
            ..Options::default()
        })
        .await;
        let (key, record) = b.issue_key(json!({})).await;
        let (body, cost) = exact_request_with(false, json!({"delay_ms": 60_000}));
        let budget = cost * dec("1.5");
        b.put_limits(
            &format!("/keys/{}", record["id"].as_str().unwrap()),
            json!({"budgets": [{"period": "total", "amount_usd": budget.to_string()}]}),
        )
        .await;
        let db = b.database_url.clone();
        (b, key, body, db)
    });

    // Instance A runs on its own runtime, so it can die with its work unfinished.
    let dying = tokio::runtime::Runtime::new().unwrap();
    let a_url = dying.block_on(async {
        let a = TestApp::spawn_with(Options {
            database_url: Some(db_url),
            governance_extra: "reservation_ttl_secs = 2".into(),
            ..Options::default()
        })
        .await;
        let url = a.data_url.clone();
        // A request that holds a reservation for a minute, on a task of A's runtime.
        let request = a
            .http
            .post(format!("{url}/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&body);
        tokio::spawn(async move {
            let _ = request.send().await;
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        std::mem::forget(a);
        url
    });

    runtime.block_on(async {
        let fast = exact_request(false).0;
        assert_eq!(
            b.chat(&key, fast.clone()).await.status(),
            402,
            "A's reservation holds the budget"
        );
        let _ = &a_url;
        // A dies: no settlement, no cleanup.
        dying.shutdown_background();
        let died = tokio::time::Instant::now();
        loop {
            let status = b.chat(&key, fast.clone()).await.status();
            if status == 200 {
                break;
            }
            assert_eq!(status, 402);
            assert!(
                died.elapsed() < Duration::from_secs(4),
                "the dead instance's reservation was not released"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

#[tokio::test]
async fn redis_down_fails_closed_or_open_per_scope_and_nothing_is_charged_twice() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = OwnRedis::start(port);
    let app = TestApp::spawn_with(Options {
        redis_url: Some(redis.url()),
        governance_extra: "redis_timeout_ms = 300".into(),
        ..Options::default()
    })
    .await;
    let (closed_key, closed) = app.issue_key(json!({})).await;
    let (open_key, open) = app.issue_key(json!({})).await;
    let (body, cost) = exact_request(false);
    app.put_limits(
        &format!("/keys/{}", closed["id"].as_str().unwrap()),
        json!({"rpm": 1000}),
    )
    .await;
    let open_path = format!("/keys/{}", open["id"].as_str().unwrap());
    app.put_limits(
        &open_path,
        json!({"rpm": 3, "on_redis_failure": "open",
        "budgets": [{"period": "total", "amount_usd": "10"}]}),
    )
    .await;
    assert_eq!(app.chat(&closed_key, body.clone()).await.status(), 200);
    assert_eq!(app.chat(&open_key, body.clone()).await.status(), 200);

    redis.stop();
    let response = app.chat(&closed_key, body.clone()).await;
    assert_eq!(response.status(), 503);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "governance_unavailable");
    // The fail-open scope serves under this instance's own limit of 3 a minute.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(app.chat(&open_key, body.clone()).await.status().as_u16());
    }
    assert_eq!(statuses, vec![200, 200, 200, 429]);

    // Redis comes back empty: the counters are rebuilt from the ledger, which has every
    // request exactly once (2 before the outage; the 503, 3 served and the 429 during it).
    let _redis = OwnRedis::start(port);
    app.ledger_rows(7).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while app.chat(&closed_key, body.clone()).await.status() != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "did not recover after Redis returned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.chat(&open_key, body.clone()).await.status(), 200);
    let (_, shown) = app
        .admin(Method::GET, &format!("{open_path}/limits"), None)
        .await;
    let spent = dec(shown["usage"]["budgets"][0]["spent_usd"].as_str().unwrap());
    assert_eq!(
        spent,
        cost * Decimal::from(5),
        "4 before the return + 1 after, each once"
    );
}

#[tokio::test]
async fn a_burst_shares_script_calls_and_settles_every_request_once() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let redis = OwnRedis::start(port);
    let app = TestApp::spawn_with(Options {
        redis_url: Some(redis.url()),
        ..Options::default()
    })
    .await;
    let (key, record) = app.issue_key(json!({})).await;
    let path = format!("/keys/{}", record["id"].as_str().unwrap());
    app.put_limits(
        &path,
        json!({"rpm": 100000, "budgets": [{"period": "total", "amount_usd": "100"}]}),
    )
    .await;
    let (body, cost) = exact_request(false);
    let requests = 300;
    let statuses = burst([&app, &app], &key, &body, requests).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");

    // Every request settled exactly once: its reservation is gone and its cost counted.
    let expected = cost * Decimal::from(requests);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, shown) = app
            .admin(Method::GET, &format!("{path}/limits"), None)
            .await;
        let budget = &shown["usage"]["budgets"][0];
        let spent = dec(budget["spent_usd"].as_str().unwrap());
        let reserved = dec(budget["reserved_usd"].as_str().unwrap());
        if spent == expected && reserved.is_zero() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "spent {spent}, reserved {reserved}; expected {expected} spent, nothing reserved"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 300 admissions and 300 settlements went to Redis in batches: at most one script call
    // per request, i.e. two jobs a call on average (about 230 calls here; one call per job
    // would be 600).
    let calls = script_calls(&redis.url()).await;
    assert!(
        calls > 0 && calls <= requests,
        "{calls} script calls for {requests} admissions and {requests} settlements"
    );
}

#[tokio::test]
async fn a_reservation_that_expired_is_not_released_twice_and_its_spend_counts() {
    let app = TestApp::spawn_with(Options {
        governance_extra: "reservation_ttl_secs = 1".into(),
        ..Options::default()
    })
    .await;
    let (key, record) = app.issue_key(json!({})).await;
    let path = format!("/keys/{}", record["id"].as_str().unwrap());
    // Each request reserves exactly its cost: the budget holds one request, not two.
    let (slow, slow_cost) = exact_request_with(false, json!({"delay_ms": 3_000}));
    let (fast, fast_cost) = exact_request(false);
    let budget = slow_cost * dec("1.5");
    app.put_limits(
        &path,
        json!({"budgets": [{"period": "total", "amount_usd": budget.to_string()}]}),
    )
    .await;

    // A request outlives its reservation (1 s, in buckets of 1 s: gone within 2 s).
    let slow_request = {
        let request = app
            .http
            .post(format!("{}/v1/chat/completions", app.data_url))
            .bearer_auth(&key)
            .json(&slow);
        tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.chat(&key, fast.clone()).await.status(), 402);
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(
        app.chat(&key, fast.clone()).await.status(),
        200,
        "the expired reservation was released"
    );
    assert_eq!(slow_request.await.unwrap(), 200);

    // The slow request's settlement found its reservation gone: it added its cost and
    // released nothing more, so both requests are spent and nothing is reserved.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, shown) = app
            .admin(Method::GET, &format!("{path}/limits"), None)
            .await;
        let budget = &shown["usage"]["budgets"][0];
        let spent = dec(budget["spent_usd"].as_str().unwrap());
        let reserved = dec(budget["reserved_usd"].as_str().unwrap());
        if spent == slow_cost + fast_cost {
            assert!(reserved.is_zero(), "{reserved} still reserved");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "spent {spent}; expected both requests"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.chat(&key, fast).await.status(), 402);
}
