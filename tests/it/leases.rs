//! Governance leases: instances admit from slices of a scope's headroom they hold in process,
//! and still never overshoot a budget, use it to the end, give back what a dead instance held
//! and obey a revocation or a limit change within a second. Real Redis (one of the test's own,
//! to count its commands), real PostgreSQL, the mock upstream, real sockets.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::json;

use crate::common::process::GatewayProcess;
use crate::common::redis::{OwnRedis, free_port, script_calls};
use crate::common::requests::exact_request;
use crate::common::{Options, TestApp};

/// Short lease timings, so a test sees leases expire and be given back quickly.
const LEASES: &str = "[governance.leases]\nttl_secs = 2\nidle_ms = 500\nreport_interval_ms = 100";

async fn instances(n: usize, redis: &OwnRedis, leases: &str) -> Vec<TestApp> {
    let options = |database_url: Option<String>| Options {
        database_url,
        redis_url: Some(redis.url()),
        governance_extra: leases.into(),
        ..Options::default()
    };
    let first = TestApp::spawn_with(options(None)).await;
    let mut apps = vec![];
    for _ in 1..n {
        apps.push(TestApp::spawn_with(options(Some(first.database_url.clone()))).await);
    }
    apps.insert(0, first);
    apps
}

/// Waits until the ledger holds `n` successful requests, then returns their total cost.
async fn successes_cost(app: &TestApp, n: usize) -> Decimal {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (count, total): (i64, Option<Decimal>) =
            sqlx::query_as("SELECT count(*), sum(cost_usd) FROM request_log WHERE status = 200")
                .fetch_one(&app.db)
                .await
                .unwrap();
        if count as usize >= n || tokio::time::Instant::now() > deadline {
            assert_eq!(count as usize, n, "successful requests in the ledger");
            return total.unwrap_or_default();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Eight workers on each instance send `body` with `key`, one request after the other, until
/// `next` (given each answer's status) says stop; an answer it does not expect fails the test.
async fn load(
    apps: &[TestApp],
    key: &str,
    body: &serde_json::Value,
    next: Arc<dyn Fn(u16) -> Option<bool> + Send + Sync>,
) {
    let mut workers = tokio::task::JoinSet::new();
    for app in apps {
        for _ in 0..8 {
            let (http, url) = (
                app.http.clone(),
                format!("{}/v1/chat/completions", app.data_url),
            );
            let (key, body, next) = (key.to_string(), body.clone(), next.clone());
            workers.spawn(async move {
                loop {
                    let response = http
                        .post(&url)
                        .bearer_auth(&key)
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    match next(status) {
                        Some(true) => {}
                        Some(false) => return,
                        None => panic!("{status}: {}", response.text().await.unwrap()),
                    }
                }
            });
        }
    }
    while let Some(worker) = workers.join_next().await {
        worker.unwrap();
    }
}

/// Three instances, eight workers each, send until the budget refuses them: nothing is spent
/// beyond the budget, at least 95 % of it is used before the first refusal, and the requests
/// were admitted from leases (far fewer script calls than requests).
#[tokio::test]
async fn three_instances_holding_leases_use_a_budget_to_the_end_without_overshoot() {
    const K: usize = 1500;
    let _heavy = crate::common::heavy().await;
    let redis = OwnRedis::start(free_port());
    let apps = instances(3, &redis, LEASES).await;
    let (key, record) = apps[0].issue_key(json!({})).await;
    let (body, cost) = exact_request(false);
    let budget = cost * Decimal::from(K);
    let path = format!("/experiments/{}", record["experiment_id"].as_str().unwrap());
    apps[0]
        .put_limits(
            &path,
            json!({"rpm": 1000000,
                   "budgets": [{"period": "total", "amount_usd": budget.to_string()}]}),
        )
        .await;

    let ok = Arc::new(AtomicUsize::new(0));
    let ok_before_refusal = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicBool::new(false));
    let counts = (ok.clone(), ok_before_refusal.clone(), refused.clone());
    // Each worker stops at its first refusal.
    let next = move |status| match status {
        200 => {
            counts.0.fetch_add(1, Ordering::SeqCst);
            if !counts.2.load(Ordering::SeqCst) {
                counts.1.fetch_add(1, Ordering::SeqCst);
            }
            Some(true)
        }
        402 => {
            counts.2.store(true, Ordering::SeqCst);
            Some(false)
        }
        _ => None,
    };
    load(&apps, &key, &body, Arc::new(next)).await;
    let (ok, ok_before_refusal) = (
        ok.load(Ordering::SeqCst),
        ok_before_refusal.load(Ordering::SeqCst),
    );
    assert!(ok <= K, "{ok} admitted for a budget of {K}");
    assert!(
        ok_before_refusal * 100 >= K * 95,
        "only {ok_before_refusal} of {K} before the first refusal ({ok} in all)"
    );
    let calls = script_calls(&redis.url()).await;
    eprintln!(
        "budget of {K}: {ok} admitted, {ok_before_refusal} before the first refusal, {calls} script calls"
    );
    assert!(
        calls * 4 < ok,
        "{calls} script calls for {ok} requests: leases were not used"
    );

    // The ledger has every success and never more than the budget; once the leases are given
    // back, Redis counts exactly what the ledger has.
    let total = successes_cost(&apps[0], ok).await;
    assert_eq!(total, cost * Decimal::from(ok));
    assert!(total <= budget);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (spent, reserved) = apps[0].budget_usage(&path).await;
        if spent == total && reserved.is_zero() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "spent {spent}, reserved {reserved}; the ledger has {total}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A gateway killed (SIGKILL) while it holds a lease: what the lease reserved returns to the
/// budget within the lease's ttl, with no instance giving it back.
#[tokio::test]
async fn a_killed_instance_lease_returns_within_its_ttl() {
    tollgate::app::init_tls();
    let admin = TestApp::spawn().await;
    let (key, record) = admin.issue_key(json!({})).await;
    let path = format!("/keys/{}", record["id"].as_str().unwrap());
    admin
        .put_limits(
            &path,
            json!({"budgets": [{"period": "total", "amount_usd": "100"}]}),
        )
        .await;
    let dir =
        std::env::temp_dir().join(format!("tollgate-lease-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let rest = crate::common::process::config(
        &admin.database_url,
        &crate::common::fixture_pricing_dir(),
        &dir.join("journal"),
        &admin.mock.base_url(),
        "\n[governance.leases]\nttl_secs = 2\nidle_ms = 60000\nreport_interval_ms = 100",
    );
    let mut gateway = GatewayProcess::start(&dir.join("tollgate.toml"), &rest).await;
    let http = reqwest::Client::new();
    let body = json!({"model": "test-model", "messages": [], "max_tokens": 10});
    let send = || {
        http.post(format!("{}/v1/chat/completions", gateway.data_url))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    // Enough traffic for a lease; then the gateway holds one while nothing is in flight.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let held = loop {
        let burst: Vec<_> = (0..20).map(|_| send()).collect();
        for response in futures_util::future::join_all(burst).await {
            assert_eq!(response.unwrap().status(), 200);
        }
        let (_, reserved) = admin.budget_usage(&path).await;
        if !reserved.is_zero() {
            break reserved;
        }
        assert!(tokio::time::Instant::now() < deadline, "no lease was taken");
    };
    // With nothing in flight, all that is reserved is the lease, and the usage says so.
    let (_, shown) = admin
        .admin(Method::GET, &format!("{path}/limits"), None)
        .await;
    let budget = &shown["usage"]["budgets"][0];
    assert_eq!(budget["leased_usd"], budget["reserved_usd"], "{budget}");
    gateway.kill();
    let killed = tokio::time::Instant::now();
    let (_, reserved) = admin.budget_usage(&path).await;
    assert!(
        !reserved.is_zero(),
        "the lease ({held} USD) is still held right after the kill"
    );
    loop {
        let (_, reserved) = admin.budget_usage(&path).await;
        if reserved.is_zero() {
            break;
        }
        // The ttl is 2 s from the last renewal, which came before the kill; the rest is
        // slack for a busy machine.
        assert!(
            killed.elapsed() < Duration::from_secs(4),
            "{reserved} USD still reserved {:?} after the kill, past the 2 s ttl",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(admin.chat(&key, body.clone()).await.status(), 200);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Traffic that only leases admit: a key revoked, or its budget cut to nothing, on one
/// instance is refused on the other within a second.
#[tokio::test]
async fn a_revocation_or_a_cut_budget_stops_a_leased_scope_within_a_second() {
    let redis = OwnRedis::start(free_port());
    let apps = instances(2, &redis, LEASES).await;
    let (a, b) = (&apps[0], &apps[1]);
    let body = json!({"model": "test-model", "messages": [], "max_tokens": 10});
    for action in ["revoke", "cut"] {
        let (key, record) = a.issue_key(json!({})).await;
        let path = format!("/keys/{}", record["id"].as_str().unwrap());
        a.put_limits(
            &path,
            json!({"rpm": 100000, "budgets": [{"period": "total", "amount_usd": "100"}]}),
        )
        .await;
        // Until b admits from a lease: 20 requests one after the other (each its own script
        // call without a lease) cost at most 10 calls (renewals and reports).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let before = script_calls(&redis.url()).await;
            for _ in 0..20 {
                assert_eq!(b.chat(&key, body.clone()).await.status(), 200);
            }
            if script_calls(&redis.url()).await - before <= 10 {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "b never leased");
        }
        match action {
            "revoke" => {
                let (status, _) = a.admin(Method::POST, &format!("{path}/revoke"), None).await;
                assert_eq!(status, 200);
            }
            _ => {
                a.put_limits(
                    &path,
                    json!({"rpm": 100000, "budgets": [{"period": "total", "amount_usd": "0"}]}),
                )
                .await;
            }
        }
        let changed = tokio::time::Instant::now();
        let expected = if action == "revoke" { 403 } else { 402 };
        loop {
            let response = b.chat(&key, body.clone()).await;
            if response.status() == expected {
                break;
            }
            assert_eq!(response.status(), 200);
            assert!(
                changed.elapsed() < Duration::from_secs(1),
                "{action}: b still admits after {:?}",
                changed.elapsed()
            );
        }
    }
}

/// Spend admitted from a lease reaches Redis with the lease's renewals: another instance's
/// usage shows it within the report interval (here a second), and it is never counted twice.
#[tokio::test]
async fn spend_under_a_lease_is_reported_once() {
    let redis = OwnRedis::start(free_port());
    let leases = "[governance.leases]\nidle_ms = 500\nreport_interval_ms = 1000";
    let apps = instances(2, &redis, leases).await;
    let (a, b) = (&apps[0], &apps[1]);
    let (key, record) = a.issue_key(json!({})).await;
    let path = format!("/keys/{}", record["id"].as_str().unwrap());
    a.put_limits(
        &path,
        json!({"budgets": [{"period": "total", "amount_usd": "100"}]}),
    )
    .await;
    let (body, cost) = exact_request(false);
    // One after the other, so that without leases each would be a script call of its own.
    let sent = 200;
    for _ in 0..sent {
        let response = b.chat(&key, body.clone()).await;
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }
    let expected = cost * Decimal::from(sent);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let (spent, reserved) = a.budget_usage(&path).await;
        assert!(spent <= expected, "{spent} counted for {expected} spent");
        if spent == expected && reserved.is_zero() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "spent {spent}, reserved {reserved}; expected {expected} and nothing reserved"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let calls = script_calls(&redis.url()).await;
    assert!(calls * 5 < sent, "{calls} script calls for {sent} requests");
}

/// Leased request tokens come out of the shared bucket: two instances hammering a key with
/// 640 requests a minute admit no more than the bucket holds plus its refill while they run,
/// and use most of it; the first 400, well inside the bucket, take few script calls.
#[tokio::test]
async fn requests_per_minute_hold_across_instances_holding_leases() {
    const RPM: usize = 640;
    let _heavy = crate::common::heavy().await;
    let redis = OwnRedis::start(free_port());
    let apps = instances(2, &redis, LEASES).await;
    let (key, record) = apps[0].issue_key(json!({})).await;
    let path = format!("/keys/{}", record["id"].as_str().unwrap());
    apps[0].put_limits(&path, json!({"rpm": RPM})).await;
    let body = json!({"model": "test-model", "messages": [], "max_tokens": 10});
    let started = tokio::time::Instant::now();
    let ok = Arc::new(AtomicUsize::new(0));
    let limited = Arc::new(AtomicUsize::new(0));
    // Counts each answer; the workers stop once `done` says so.
    let counting = |done: Arc<dyn Fn(usize) -> bool + Send + Sync>| {
        let (ok, limited) = (ok.clone(), limited.clone());
        Arc::new(move |status| {
            match status {
                200 => ok.fetch_add(1, Ordering::SeqCst),
                429 => limited.fetch_add(1, Ordering::SeqCst),
                _ => return None,
            };
            Some(!done(ok.load(Ordering::SeqCst)))
        })
    };
    load(&apps, &key, &body, counting(Arc::new(|ok| ok >= 400))).await;
    let (first, calls) = (ok.load(Ordering::SeqCst), script_calls(&redis.url()).await);
    assert_eq!(limited.load(Ordering::SeqCst), 0, "400 of a bucket of 640");
    assert!(
        calls * 4 < first,
        "{calls} script calls for {first} requests: no leases"
    );
    let run_for = Duration::from_secs(3);
    load(
        &apps,
        &key,
        &body,
        counting(Arc::new(move |_| started.elapsed() >= run_for)),
    )
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let (ok, limited) = (ok.load(Ordering::SeqCst), limited.load(Ordering::SeqCst));
    // The bucket holds 640 and refills 640/60 a second while the load runs (two requests of
    // slack for rounding the refill to whole requests).
    let allowed = RPM + (elapsed * RPM as f64 / 60.0).ceil() as usize + 2;
    eprintln!(
        "rpm {RPM}: {ok} admitted ({first} first, with {calls} script calls), {limited} limited in {elapsed:.2} s"
    );
    assert!(ok <= allowed, "{ok} admitted, the bucket allows {allowed}");
    assert!(ok * 10 >= RPM * 9, "only {ok} of the bucket's {RPM} used");
    assert!(limited > 0, "the load went past the bucket");
}

/// An instance stopped the way SIGTERM stops it gives its leases back, with their spend,
/// before it exits: nothing waits for an idle timeout or an expiry.
#[tokio::test]
async fn shutdown_gives_leases_back() {
    let redis = OwnRedis::start(free_port());
    let leases = "[governance.leases]\nidle_ms = 60000";
    let mut apps = instances(2, &redis, leases).await;
    let (key, record) = apps[0].issue_key(json!({})).await;
    let path = format!("/keys/{}", record["id"].as_str().unwrap());
    apps[0]
        .put_limits(
            &path,
            json!({"budgets": [{"period": "total", "amount_usd": "100"}]}),
        )
        .await;
    let (body, cost) = exact_request(false);
    let sent = 100;
    for _ in 0..sent {
        assert_eq!(apps[1].chat(&key, body.clone()).await.status(), 200);
    }
    let (_, reserved) = apps[0].budget_usage(&path).await;
    assert!(!reserved.is_zero(), "the second instance holds a lease");
    apps[1].stop().await;
    let (spent, reserved) = apps[0].budget_usage(&path).await;
    assert_eq!(reserved, Decimal::ZERO, "given back at shutdown");
    assert_eq!(spent, cost * Decimal::from(sent));
}
