//! Governance on a Redis Cluster and on a Sentinel-managed master, each the test's own:
//! budgets and rate limits that hold across two instances, revocation across instances, a
//! flushed master's counters rebuilt from the ledger, and a master lost mid-load (handed
//! over or killed, its replica promoted) with nothing charged twice and nothing left reserved.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::common::cluster::{OwnCluster, OwnSentinel};
use crate::common::requests::exact_request;
use crate::common::{Options, TestApp, two_instances};

/// Reservations a lost call leaves behind expire within this plus one second.
const TTL_SECS: u64 = 3;

fn options(redis_url: &str) -> impl Fn() -> Options + '_ {
    move || Options {
        redis_url: Some(redis_url.to_string()),
        governance_extra: format!("reservation_ttl_secs = {TTL_SECS}\nredis_timeout_ms = 500"),
        ..Options::default()
    }
}

async fn send(app: &TestApp, key: &str, body: &Value) -> u16 {
    let response = app
        .http
        .post(format!("{}/v1/chat/completions", app.data_url))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    // A stream is over only when it has been read.
    let _ = response.bytes().await;
    status
}

/// What the ledger charged for successful requests, and how many rows it has in all.
async fn ledger(app: &TestApp) -> (i64, i64, Decimal) {
    let (rows, ok, total): (i64, i64, Option<Decimal>) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE status = 200), \
         sum(cost_usd) FILTER (WHERE status = 200) FROM request_log",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    (rows, ok, total.unwrap_or_default())
}

/// Waits until the ledger has a row for each of `requests`.
async fn ledger_settled(app: &TestApp, requests: usize) -> (i64, Decimal) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (rows, ok, total) = ledger(app).await;
        if rows as usize >= requests {
            assert_eq!(rows as usize, requests, "one ledger row per request");
            return (ok, total);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ledger has {rows} of {requests}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `n` concurrent requests through both instances: their statuses.
async fn burst(apps: [&TestApp; 2], key: &str, stream: bool, n: usize) -> Vec<u16> {
    let (body, _) = exact_request(stream);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let app = apps[i % 2];
        let request = app
            .http
            .post(format!("{}/v1/chat/completions", app.data_url))
            .bearer_auth(key)
            .json(&body);
        tasks.spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let _ = response.bytes().await;
            status
        });
    }
    tasks.join_all().await
}

/// A key of a new team whose budget (on `scope`) is exactly `k` requests: the key, the
/// budget's limits path and the budget.
async fn key_with_budget(
    app: &TestApp,
    scope: &str,
    stream: bool,
    k: usize,
) -> (String, String, Decimal) {
    let (key, record) = app.issue_key(json!({})).await;
    let path = match scope {
        "key" => format!("/keys/{}", record["id"].as_str().unwrap()),
        _ => format!("/teams/{}", record["team_id"].as_str().unwrap()),
    };
    let budget = exact_request(stream).1 * Decimal::from(k);
    app.put_limits(
        &path,
        json!({"budgets": [{"period": "total", "amount_usd": budget.to_string()}]}),
    )
    .await;
    (key, path, budget)
}

#[tokio::test]
async fn on_a_cluster_a_budget_holds_across_instances_and_revocation_reaches_both() {
    const K: usize = 23;
    const N: usize = 250;
    let _heavy = crate::common::heavy().await;
    let cluster = OwnCluster::start();
    let url = cluster.url();
    let (a, b) = two_instances(options(&url)).await;
    // Two teams (most likely on two masters), one streaming: 500 requests at once.
    let (team_key, team_path, team_budget) = key_with_budget(&a, "team", false, K).await;
    let (stream_key, key_path, key_budget) = key_with_budget(&a, "key", true, K).await;
    let (plain, streamed) = tokio::join!(
        burst([&a, &b], &team_key, false, N),
        burst([&b, &a], &stream_key, true, N)
    );
    for statuses in [plain, streamed] {
        let ok = statuses.iter().filter(|s| **s == 200).count();
        let refused = statuses.iter().filter(|s| **s == 402).count();
        assert_eq!((ok, refused), (K, N - K), "{statuses:?}");
    }
    let (ok, total) = ledger_settled(&a, 2 * N).await;
    assert_eq!((ok as usize, total), (2 * K, team_budget + key_budget));
    assert_eq!(
        a.budget_usage(&team_path).await,
        (team_budget, Decimal::ZERO)
    );
    assert_eq!(a.budget_usage(&key_path).await, (key_budget, Decimal::ZERO));

    // Both instances have the key cached; a revocation on one reaches the other.
    let (other, other_record) = a.issue_key(json!({})).await;
    let (body, _) = exact_request(false);
    assert_eq!(send(&a, &other, &body).await, 200);
    assert_eq!(send(&b, &other, &body).await, 200);
    let id = other_record["id"].as_str().unwrap();
    let (status, _) = a
        .admin(Method::POST, &format!("/keys/{id}/revoke"), None)
        .await;
    assert_eq!(status, 200);
    let start = tokio::time::Instant::now();
    while send(&b, &other, &body).await != 403 {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "revocation did not reach instance b"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn on_a_cluster_rate_limits_hold_across_instances_and_a_flushed_master_is_rebuilt() {
    let _heavy = crate::common::heavy().await;
    let cluster = OwnCluster::start();
    let url = cluster.url();
    let (a, b) = two_instances(options(&url)).await;

    // 90 requests at once through both instances against 60 a minute.
    let (key, record) = a.issue_key(json!({})).await;
    let key_path = format!("/keys/{}", record["id"].as_str().unwrap());
    a.put_limits(&key_path, json!({"rpm": 60})).await;
    let statuses = burst([&a, &b], &key, false, 90).await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    // The bucket holds 60 and refills one per second while the burst runs.
    assert!((60..=62).contains(&ok), "{ok} admitted: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 90 - ok);

    // A team with a budget of five requests spends three; then the master holding the
    // team's counters loses everything (FLUSHALL, which its replica follows).
    let (key, record) = a.issue_key(json!({})).await;
    let team = record["team_id"].as_str().unwrap().to_string();
    let (body, cost) = exact_request(false);
    a.put_limits(&format!("/teams/{team}"),
        json!({"budgets": [{"period": "total", "amount_usd": (cost * Decimal::from(5)).to_string()}]}),
    )
    .await;
    for app in [&a, &b, &a] {
        assert_eq!(send(app, &key, &body).await, 200);
    }
    ledger_settled(&a, 90 + 3).await;
    let master = cluster.master_of(&format!("{{{team}}}"));
    let counters = format!("*{{{team}}}*");
    assert_ne!(
        cluster.nodes[master]
            .cli(&["--scan", "--pattern", &counters])
            .trim(),
        "",
        "the team's counters are on the master that serves its slot"
    );
    assert_eq!(cluster.nodes[master].cli(&["flushall"]).trim(), "OK");
    assert_eq!(
        cluster.nodes[master]
            .cli(&["--scan", "--pattern", &counters])
            .trim(),
        ""
    );

    // Rebuilt from the ledger on the next admission: two more fit, on either instance.
    let mut statuses = Vec::new();
    for app in [&b, &a, &b, &a] {
        statuses.push(send(app, &key, &body).await);
    }
    assert_eq!(
        statuses,
        vec![200, 200, 402, 402],
        "a fresh budget after the master lost the counters"
    );
}

/// Requests in a loop from a few workers on both instances until `stop`: their statuses.
fn load(apps: [&TestApp; 2], key: &str, stop: Arc<AtomicBool>) -> tokio::task::JoinSet<Vec<u16>> {
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let app = apps[worker % 2];
        let (http, url, key, stop) = (
            app.http.clone(),
            app.data_url.clone(),
            key.to_string(),
            stop.clone(),
        );
        workers.spawn(async move {
            let mut statuses = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let (body, _) = exact_request((worker + i) % 2 == 0);
                i += 1;
                let response = http
                    .post(format!("{url}/v1/chat/completions"))
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                statuses.push(response.status().as_u16());
                let _ = response.bytes().await;
            }
            statuses
        });
    }
    workers
}

/// Runs load through two instances on `url`, calls `fail` a second in, keeps the load going
/// until the gateway serves again, then checks that the budget's spent counter is what the
/// ledger charged (never more: nothing charged twice) and that nothing stays reserved.
async fn master_lost_mid_load(url: &str, fail: impl FnOnce(&str) + Send, exact: bool) {
    let _heavy = crate::common::heavy().await;
    let (a, b) = two_instances(options(url)).await;
    let (key, record) = a.issue_key(json!({})).await;
    let (body, cost) = exact_request(false);
    let key_path = format!("/keys/{}", record["id"].as_str().unwrap());
    a.put_limits(&key_path, json!({"budgets": [{"period": "total", "amount_usd": (cost * Decimal::from(100_000)).to_string()}]})).await;
    assert_eq!(send(&a, &key, &body).await, 200);

    let stop = Arc::new(AtomicBool::new(false));
    let workers = load([&a, &b], &key, stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let team = record["team_id"].as_str().unwrap().to_string();
    tokio::task::block_in_place(|| fail(&team));
    // Both instances serve again without a restart.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut probes = 0;
    for app in [&a, &b] {
        probes += 1;
        while send(app, &key, &body).await != 200 {
            probes += 1;
            assert!(
                tokio::time::Instant::now() < deadline,
                "the gateway did not follow the failover"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let statuses: Vec<u16> = workers.join_all().await.concat();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "only successes and the fail-closed 503: {statuses:?}"
    );
    let served_during = statuses.iter().filter(|s| **s == 200).count();
    assert!(served_during > 50, "the load ran: {served_during} served");

    // Every request is in the ledger; lost calls' reservations expire.
    let (_, charged) = ledger_settled(&a, statuses.len() + 1 + probes).await;
    tokio::time::sleep(Duration::from_secs(TTL_SECS + 2)).await;
    let (spent, reserved) = a.budget_usage(&key_path).await;
    let unavailable = statuses.iter().filter(|s| **s == 503).count();
    eprintln!(
        "master lost mid-load: {served_during} served, {unavailable} fail-closed 503s; \
         counter {spent}, ledger {charged}, reserved {reserved}"
    );
    assert_eq!(reserved, Decimal::ZERO, "nothing stays reserved");
    if exact {
        assert_eq!(spent, charged, "the counter is the ledger's sum");
    } else {
        // A settlement in flight when its master died may not have run (it is never sent
        // again, as it may also have run), and writes the replica had not received are
        // lost with the master: the counter can fall short by those, never exceed.
        assert!(
            spent <= charged,
            "charged twice: spent {spent}, ledger {charged}"
        );
        assert!(
            spent >= charged - cost * Decimal::from(16),
            "spent {spent}, ledger {charged}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_master_handing_over_to_its_replica_mid_load_charges_nothing_twice() {
    let cluster = OwnCluster::start();
    let url = cluster.url();
    let cluster = &cluster;
    master_lost_mid_load(
        &url,
        |team| {
            // A manual failover: the master stops taking writes, the replica catches up and
            // takes over, and the old master answers MOVED.
            let master = cluster.master_of(&format!("{{{team}}}"));
            let replica = cluster.replica_of(master);
            assert_eq!(
                cluster.nodes[replica].cli(&["cluster", "failover"]).trim(),
                "OK"
            );
            crate::common::cluster::wait_until(
                Duration::from_secs(10),
                "the replica to take over",
                || cluster.master_of(&format!("{{{team}}}")) == replica,
            );
        },
        true,
    )
    .await;
}

/// SIGKILL of the team's master: the replica takes over after the node timeout, and the
/// gateway follows it, replacing its cluster connection if that wedges (see
/// `src/connect/redis/cluster.rs`).
#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_master_killed_mid_load_is_replaced_and_nothing_is_charged_twice() {
    let cluster = std::sync::Mutex::new(OwnCluster::start());
    let url = cluster.lock().unwrap().url();
    let cluster = &cluster;
    master_lost_mid_load(
        &url,
        |team| {
            let mut cluster = cluster.lock().unwrap();
            let master = cluster.master_of(&format!("{{{team}}}"));
            cluster.nodes[master].kill();
            cluster.wait_ok();
        },
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sentinel_failover_mid_load_is_followed_and_nothing_is_charged_twice() {
    let sentinel = std::sync::Mutex::new(OwnSentinel::start());
    let url = sentinel.lock().unwrap().url();
    let sentinel = &sentinel;
    master_lost_mid_load(
        &url,
        |_| {
            let mut sentinel = sentinel.lock().unwrap();
            sentinel.master.kill();
            let replica = sentinel.replica.port;
            sentinel.wait_master(replica);
        },
        false,
    )
    .await;
}

/// The gateway's cluster connection under many impatient callers (a 500 ms wait each, as
/// admissions wait) while the master of their slot is killed: with that pattern redis-rs's
/// own connection can wedge for good in its slot refresh; the gateway's replaces it, so
/// calls succeed again soon after the replica has taken over.
#[tokio::test(flavor = "multi_thread")]
async fn the_cluster_connection_serves_again_after_its_master_is_killed_under_impatient_callers() {
    let _heavy = crate::common::heavy().await;
    let mut cluster = OwnCluster::start();
    let connection = tollgate::connect::redis::RedisConnector::new(
        &tollgate::config::Secret::new(cluster.url()),
        None,
    )
    .unwrap()
    .multiplexed(Duration::from_millis(500))
    .await
    .unwrap();
    let script = Arc::new(redis::Script::new("return redis.call('INCR', KEYS[1])"));
    let stop = Arc::new(AtomicBool::new(false));
    let served_since = Arc::new(std::sync::Mutex::new(None::<tokio::time::Instant>));
    let callers: Vec<_> = (0..50)
        .map(|_| {
            let (connection, script, stop, served_since) = (
                connection.clone(),
                script.clone(),
                stop.clone(),
                served_since.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let mut connection = connection.clone();
                    let invocation = script.key("{impatient}:n");
                    let call = invocation.invoke_async::<i64>(&mut connection);
                    match tokio::time::timeout(Duration::from_millis(500), call).await {
                        Ok(Ok(_)) => {
                            served_since
                                .lock()
                                .unwrap()
                                .get_or_insert_with(tokio::time::Instant::now);
                        }
                        // An error reply (MOVED, CLUSTERDOWN) is tried again a little
                        // later; a caller that timed out tries again at once.
                        Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
                        Err(_) => {}
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(served_since.lock().unwrap().is_some(), "calls were served");

    let master = cluster.master_of("{impatient}");
    tokio::task::block_in_place(|| {
        cluster.nodes[master].kill();
        cluster.wait_ok();
    });
    let promoted = tokio::time::Instant::now();
    *served_since.lock().unwrap() = None;
    let deadline = promoted + Duration::from_secs(15);
    loop {
        let served = *served_since.lock().unwrap();
        if let Some(at) = served {
            eprintln!(
                "served again {:?} after the replica took over",
                at.saturating_duration_since(promoted)
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no call served within 15 s of the replica taking over"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.unwrap();
    }
}
