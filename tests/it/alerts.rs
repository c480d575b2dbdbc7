//! Budget alerts end to end: rules made through the admin API and `tollctl`, a campaign pushed
//! through its thresholds from two instances, a webhook receiver on a real socket that fails
//! at first, a gateway restart with alerts pending, a daily period re-arming its thresholds
//! (injected clock), a projected exhaustion. Real PostgreSQL, Redis, mock upstream and
//! sockets.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tollgate::alerts::sign;
use tollgate::config::Secret;
use tollgate::governance::Clock;

use crate::common::requests::exact_request;
use crate::common::webhook::{Delivery, Receiver};
use crate::common::{Options, TestApp, dec, tollctl, two_instances};

/// Rules evaluated and retries made fast enough for a test.
const FAST: &str = "evaluate_interval_ms = 100\nfirst_retry_ms = 200\nmax_retry_interval_secs = 1";

fn fast() -> Options {
    Options {
        alerts_extra: FAST.into(),
        ..Options::default()
    }
}

async fn new_team(app: &TestApp) -> String {
    let name = format!("team-{}", uuid::Uuid::new_v4().simple());
    let (status, body) = app
        .admin(Method::POST, "/teams", Some(json!({"name": name})))
        .await;
    assert_eq!(status, 201, "{body}");
    name
}

/// Launches campaign `gsm8k` of `team` with a total budget and `keys` keys; returns them.
async fn launch(app: &TestApp, team: &str, budget: Decimal, keys: usize) -> Vec<String> {
    let (status, launched) = app
        .admin(
            Method::POST,
            "/campaigns",
            Some(json!({
                "team": team, "name": "gsm8k", "keys": keys,
                "ends_at": Utc::now() + chrono::Duration::days(7),
                "limits": {"budgets": [{"period": "total", "amount_usd": budget.to_string()}]},
            })),
        )
        .await;
    assert_eq!(status, 201, "{launched}");
    launched["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap().to_owned())
        .collect()
}

/// Makes a rule; returns (its id, its signing secret).
async fn add_rule(app: &TestApp, rule: Value) -> (String, Secret<String>) {
    let (status, made) = app.admin(Method::POST, "/alerts", Some(rule)).await;
    assert_eq!(status, 201, "{made}");
    let secret = made["signing_secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{made}");
    (
        made["id"].as_str().unwrap().to_owned(),
        Secret::new(secret.to_owned()),
    )
}

fn verified(delivery: &Delivery, secret: &Secret<String>) -> Value {
    assert!(
        sign::verify(secret, &delivery.signature, &delivery.body),
        "signature {:?} does not verify",
        delivery.signature
    );
    let event = delivery.json();
    assert_eq!(event["id"], delivery.event_id, "event id header and body");
    event
}

/// Distinct event ids among `deliveries`, by how many times each was accepted.
fn accepted_per_event(deliveries: &[Delivery]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for d in deliveries.iter().filter(|d| d.status == 200) {
        *counts.entry(d.event_id.clone()).or_insert(0) += 1;
    }
    counts
}

async fn history(app: &TestApp, rule: &str) -> Vec<Value> {
    let (status, body) = app
        .admin(Method::GET, &format!("/alert-events?rule={rule}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

/// Waits until every alert of `rule` is delivered, and returns them.
async fn all_delivered(app: &TestApp, rule: &str, n: usize) -> Vec<Value> {
    let start = tokio::time::Instant::now();
    loop {
        let events = history(app, rule).await;
        if events.len() == n && events.iter().all(|e| e["status"] == "delivered") {
            return events;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "alerts of rule {rule} not all delivered: {events:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_campaign_pushed_through_its_thresholds_from_two_instances_alerts_once_per_threshold() {
    const REQUESTS: usize = 10;
    let receiver = Receiver::start().await;
    let (a, b) = two_instances(fast).await;
    let team = new_team(&a).await;
    let (body, cost) = exact_request(false);
    let budget = cost * Decimal::from(REQUESTS as u64);
    let keys = launch(&a, &team, budget, 4).await;
    let (rule, secret) = add_rule(
        &a,
        json!({"team": team, "experiment": "gsm8k", "thresholds": [50, 80, 100],
               "webhook_url": receiver.url}),
    )
    .await;

    // A concurrent burst from both instances: more requests than the budget admits.
    let burst = (0..REQUESTS + 6).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        app.chat(&keys[i % keys.len()], body.clone())
    });
    let statuses: Vec<u16> = futures_util::future::join_all(burst)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        REQUESTS,
        "{statuses:?}"
    );
    let ledger = a.ledger_cost(REQUESTS + 6).await;
    assert_eq!(ledger, budget);

    receiver
        .wait_for(Duration::from_secs(20), "three threshold alerts", |got| {
            got.len() >= 3
        })
        .await;
    // Both instances keep evaluating; nothing more may arrive.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = receiver.all();
    assert_eq!(
        got.len(),
        3,
        "{:#?}",
        got.iter().map(Delivery::json).collect::<Vec<_>>()
    );
    let mut thresholds = Vec::new();
    for delivery in &got {
        let event = verified(delivery, &secret);
        assert_eq!(event["type"], "budget.threshold");
        assert_eq!(event["rule_id"], rule);
        assert_eq!(event["scope"]["kind"], "experiment");
        assert_eq!(event["scope"]["name"], "gsm8k");
        assert_eq!(event["team"]["name"], team);
        assert_eq!(event["budget"]["period"], "total");
        assert_eq!(dec(event["budget"]["limit_usd"].as_str().unwrap()), budget);
        let threshold = event["threshold_percent"].as_i64().unwrap();
        let spent = dec(event["budget"]["spent_usd"].as_str().unwrap());
        // Spend as settled, exact: a whole number of requests, past the line, within the ledger.
        assert_eq!(spent % cost, Decimal::ZERO, "{event}");
        assert!(
            spent * Decimal::ONE_HUNDRED >= budget * Decimal::from(threshold),
            "{event}"
        );
        assert!(spent <= ledger, "{event}");
        if threshold == 100 {
            assert_eq!(spent, ledger, "{event}");
        }
        let summary = event["summary"].as_str().unwrap();
        assert!(
            summary.contains("gsm8k") && summary.contains(&format!("{threshold} %")),
            "{summary}"
        );
        thresholds.push(threshold);
    }
    thresholds.sort_unstable();
    assert_eq!(thresholds, vec![50, 80, 100]);
    let events = all_delivered(&a, &rule, 3).await;
    assert!(events.iter().all(|e| e["attempts"] == 1), "{events:#?}");
}

#[tokio::test]
async fn alerts_survive_a_failing_receiver_and_a_restart_and_arrive_once_each() {
    let receiver = Receiver::start().await;
    receiver.answer(500);
    let mut first = TestApp::spawn_with(fast()).await;
    let team = new_team(&first).await;
    let (body, cost) = exact_request(false);
    let keys = launch(&first, &team, cost * Decimal::from(2), 1).await;
    let (rule, secret) = add_rule(
        &first,
        json!({"team": team, "experiment": "gsm8k", "thresholds": [50, 100],
               "webhook_url": receiver.url}),
    )
    .await;
    for _ in 0..2 {
        assert_eq!(first.chat(&keys[0], body.clone()).await.status(), 200);
    }
    receiver
        .wait_for(
            Duration::from_secs(20),
            "retried failures of both alerts",
            |got| {
                let ids: HashSet<&str> = got.iter().map(|d| d.event_id.as_str()).collect();
                ids.len() == 2 && got.len() >= 4
            },
        )
        .await;
    let pending = history(&first, &rule).await;
    assert!(
        pending
            .iter()
            .all(|e| e["status"] == "pending" && e["last_error"].as_str().unwrap().contains("500")),
        "{pending:#?}"
    );
    first.stop().await;

    let second = TestApp::spawn_with(Options {
        database_url: Some(first.database_url.clone()),
        ..fast()
    })
    .await;
    // Still failing for a while under the new instance, then the receiver recovers.
    let before = receiver.all().len();
    receiver
        .wait_for(
            Duration::from_secs(20),
            "a retry from the restarted gateway",
            |got| got.len() > before,
        )
        .await;
    receiver.answer(200);
    let events = all_delivered(&second, &rule, 2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let got = receiver.all();
    let accepted = accepted_per_event(&got);
    assert_eq!(accepted.len(), 2, "{accepted:?}");
    assert!(
        accepted.values().all(|n| *n == 1),
        "accepted twice: {accepted:?}"
    );
    for delivery in got.iter().filter(|d| d.status == 200) {
        let event = verified(delivery, &secret);
        assert_eq!(event["type"], "budget.threshold");
    }
    for event in &events {
        assert!(event["attempts"].as_i64().unwrap() >= 3, "{event}");
        assert!(accepted.contains_key(event["id"].as_str().unwrap()));
    }
}

#[derive(Clone)]
struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

#[tokio::test]
async fn a_new_day_of_a_daily_budget_re_arms_its_thresholds() {
    let clock = ManualClock(Arc::new(Mutex::new(
        "2026-11-21T12:00:00Z".parse().unwrap(),
    )));
    let receiver = Receiver::start().await;
    let app = TestApp::spawn_with(Options {
        clock: Some(Arc::new(clock.clone())),
        ..fast()
    })
    .await;
    let (key, record) = app.issue_key(json!({})).await;
    let key_id = record["id"].as_str().unwrap();
    let (body, cost) = exact_request(false);
    let (status, limits) = app
        .admin(
            Method::PUT,
            &format!("/keys/{key_id}/limits"),
            Some(json!({"budgets": [{"period": "daily", "amount_usd": (cost * Decimal::from(4)).to_string()}]})),
        )
        .await;
    assert_eq!(status, 200, "{limits}");
    let (rule, secret) = add_rule(
        &app,
        json!({"key": key_id, "thresholds": [50], "webhook_url": receiver.url}),
    )
    .await;

    for _ in 0..2 {
        assert_eq!(app.chat(&key, body.clone()).await.status(), 200);
    }
    receiver
        .wait_for(
            Duration::from_secs(20),
            "the first day's 50 % alert",
            |got| got.len() == 1,
        )
        .await;
    // The rest of the day's spend crosses nothing new.
    assert_eq!(app.chat(&key, body.clone()).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.all().len(), 1);

    *clock.0.lock().unwrap() = "2026-11-22T00:00:01Z".parse().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.all().len(),
        1,
        "a new day with no spend is below 50 %"
    );
    for _ in 0..2 {
        assert_eq!(app.chat(&key, body.clone()).await.status(), 200);
    }
    receiver
        .wait_for(
            Duration::from_secs(20),
            "the second day's 50 % alert",
            |got| got.len() == 2,
        )
        .await;
    let starts: Vec<String> = receiver
        .all()
        .iter()
        .map(|d| {
            let event = verified(d, &secret);
            assert_eq!(event["threshold_percent"], 50);
            assert_eq!(event["scope"]["kind"], "key");
            assert_eq!(
                dec(event["budget"]["spent_usd"].as_str().unwrap()),
                cost * Decimal::from(2)
            );
            event["budget"]["period_start"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(starts.len(), 2);
    assert!(starts[0].starts_with("2026-11-21"), "{starts:?}");
    assert!(starts[1].starts_with("2026-11-22"), "{starts:?}");
    all_delivered(&app, &rule, 2).await;
}

#[tokio::test]
async fn a_burn_that_would_exhaust_the_budget_before_the_campaign_ends_is_projected_once() {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn_with(fast()).await;
    let team = new_team(&app).await;
    let (body, cost) = exact_request(false);
    // A hundred requests' worth for a week; three in the last hour burn it in well under that.
    let keys = launch(&app, &team, cost * Decimal::from(100), 1).await;
    let (rule, secret) = add_rule(
        &app,
        json!({"team": team, "every_campaign": true, "projection_window_secs": 3600,
               "webhook_url": receiver.url}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receiver.all().is_empty(), "no spend, no projection");
    for _ in 0..3 {
        assert_eq!(app.chat(&keys[0], body.clone()).await.status(), 200);
    }
    receiver
        .wait_for(Duration::from_secs(20), "the projection alert", |got| {
            !got.is_empty()
        })
        .await;
    for _ in 0..3 {
        assert_eq!(app.chat(&keys[0], body.clone()).await.status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let got = receiver.all();
    assert_eq!(
        got.len(),
        1,
        "{:#?}",
        got.iter().map(Delivery::json).collect::<Vec<_>>()
    );
    let event = verified(&got[0], &secret);
    assert_eq!(event["type"], "budget.projected_exhaustion");
    assert_eq!(event["scope"]["name"], "gsm8k");
    let exhausted: DateTime<Utc> = event["projected_exhaustion_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let ends: DateTime<Utc> = event["ends_at"].as_str().unwrap().parse().unwrap();
    assert!(exhausted < ends, "{event}");
    // Everything was spent within the hour: the burn rate per hour is at most what the
    // budget has spent (the request log may trail the counters by a batch).
    let spent = dec(event["budget"]["spent_usd"].as_str().unwrap());
    assert!(
        spent > Decimal::ZERO && spent % cost == Decimal::ZERO,
        "{event}"
    );
    let burn = dec(event["burn_rate_usd_per_hour"].as_str().unwrap());
    assert!(burn > Decimal::ZERO && burn <= spent.round_dp(6), "{event}");
    all_delivered(&app, &rule, 1).await;
}

#[tokio::test]
async fn rules_are_validated_by_name_scoped_to_their_team_and_never_show_their_secrets() {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn_with(fast()).await;
    let team = new_team(&app).await;
    let (_, cost) = exact_request(false);
    launch(&app, &team, cost * Decimal::from(10), 1).await;
    for (rule, param, words) in [
        (
            json!({"team": team, "webhook_url": "ftp://x/y"}),
            "webhook_url",
            "http or https",
        ),
        (
            json!({"team": team, "webhook_url": "not a url"}),
            "webhook_url",
            "not a URL",
        ),
        (
            json!({"team": team, "thresholds": [0], "webhook_url": receiver.url}),
            "thresholds",
            "1 to 1000",
        ),
        (
            json!({"team": team, "thresholds": [], "webhook_url": receiver.url}),
            "thresholds",
            "1 to 20",
        ),
        (
            json!({"team": team, "refusals": {"percent": 150}, "webhook_url": receiver.url}),
            "refusals.percent",
            "1 to 100",
        ),
        (
            json!({"team": team, "format": "xml", "webhook_url": receiver.url}),
            "format",
            "`json` or `slack`",
        ),
        (
            json!({"team": team, "experiment": "gsm8k", "every_campaign": true, "webhook_url": receiver.url}),
            "experiment",
            "one scope",
        ),
        (
            json!({"webhook_url": receiver.url}),
            "team",
            "name the team",
        ),
    ] {
        let (status, err) = app.admin(Method::POST, "/alerts", Some(rule.clone())).await;
        assert_eq!(status, 400, "{rule}: {err}");
        assert_eq!(err["error"]["param"], param, "{rule}: {err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{rule}: {message}");
    }
    let (status, err) = app
        .admin(
            Method::POST,
            "/alerts",
            Some(json!({"experiment": "gsm8k", "webhook_url": receiver.url})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("team_required")),
        "{err}"
    );
    let (status, err) = app
        .admin(
            Method::POST,
            "/alerts",
            Some(json!({"team": team, "experiment": "nope", "webhook_url": receiver.url})),
        )
        .await;
    assert_eq!(status, 404, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("has no experiment `nope`"),
        "{err}"
    );

    // Without any kind named: the default set.
    let (rule, _) = add_rule(
        &app,
        json!({"team": team, "experiment": "gsm8k", "webhook_url": receiver.url}),
    )
    .await;
    let (status, list) = app
        .admin(Method::GET, &format!("/alerts?team={team}"), None)
        .await;
    assert_eq!(status, 200);
    let listed = &list["data"][0];
    assert_eq!(listed["id"], rule);
    assert_eq!(listed["thresholds"], json!([50, 80, 100]));
    assert_eq!(listed["projection_window_secs"], 3600);
    assert_eq!(listed["expiry_hours"], 24);
    assert_eq!(
        listed["refusals"],
        json!({"percent": 25, "window_secs": 300, "min_requests": 20})
    );
    let port = receiver
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    assert_eq!(listed["webhook"], format!("http://127.0.0.1:{port}/…"));
    let text = list.to_string();
    assert!(
        !text.contains("whsec_") && !text.contains("not-shown-anywhere"),
        "{text}"
    );

    // A test delivery arrives like an alert (the campaign ends in 7 days: no expiry alert).
    let (status, test) = app
        .admin(Method::POST, &format!("/alerts/{rule}/test"), None)
        .await;
    assert_eq!(status, 200, "{test}");
    assert_eq!(test["delivered"], true, "{test}");
    assert_eq!(test["status"], 200);
    let got = receiver.all();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["type"], "test");

    // A team token sees its own team's rules only.
    let other = new_team(&app).await;
    let other_id = app
        .admin(Method::GET, &format!("/teams/{other}"), None)
        .await
        .1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let now = Utc::now().timestamp() as u64;
    let token = tollgate::admin::mint(
        &Secret::new(crate::common::JWT_SECRET.to_string()),
        &tollgate::admin::Claims {
            sub: "other-team".into(),
            role: tollgate::admin::Role::Team,
            team: Some(tollgate::ids::TeamId(other_id.parse().unwrap())),
            iat: now,
            exp: now + 600,
        },
    )
    .unwrap();
    let client = reqwest::Client::new();
    let listed: Value = client
        .get(format!("{}/admin/v1/alerts", app.admin_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"], json!([]), "{listed}");
    let status = client
        .delete(format!("{}/admin/v1/alerts/{rule}", app.admin_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);

    let (status, removed) = app
        .admin(Method::DELETE, &format!("/alerts/{rule}"), None)
        .await;
    assert_eq!(status, 200, "{removed}");
    let (_, audit) = app.admin(Method::GET, "/audit?action=alert.*", None).await;
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["alert.delete", "alert.create"]);
    assert!(!audit.to_string().contains("whsec_"));
}

#[tokio::test]
async fn tollctl_adds_lists_tests_and_removes_rules() {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn_with(fast()).await;
    let team = new_team(&app).await;
    let (_, cost) = exact_request(false);
    launch(&app, &team, cost * Decimal::from(10), 1).await;
    let added = tollctl::run(
        &app,
        &[
            "--format",
            "json",
            "alerts",
            "add",
            "--team",
            &team,
            "--experiment",
            "gsm8k",
            "--at",
            "50,80,100",
            "--expiry",
            "2d",
            "--webhook",
            &receiver.url,
        ],
    )
    .await;
    let added: Value = serde_json::from_str(&added).unwrap();
    assert_eq!(added["thresholds"], json!([50, 80, 100]));
    assert_eq!(added["expiry_hours"], 48);
    assert_eq!(added["projection_window_secs"], Value::Null);
    assert!(
        added["signing_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    let id = added["id"].as_str().unwrap();
    let table = tollctl::run(&app, &["alerts", "list", "--team", &team]).await;
    assert!(
        table.contains(id)
            && table.contains("experiment gsm8k")
            && table.contains("50%, 80%, 100%"),
        "{table}"
    );
    assert!(!table.contains("whsec_"), "{table}");
    let tested = tollctl::run(&app, &["alerts", "test", id]).await;
    assert!(tested.contains("yes"), "{tested}");
    let history = tollctl::run(&app, &["alerts", "history", "--team", &team]).await;
    assert!(history.contains("No alerts."), "{history}");
    tollctl::run(&app, &["alerts", "remove", id]).await;
    let table = tollctl::run(&app, &["alerts", "list", "--team", &team]).await;
    assert!(table.contains("No alert rules."), "{table}");
}
