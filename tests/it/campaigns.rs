//! Campaigns end to end: launch (experiment, budget, limits and keys in one call and one
//! transaction), workers through the gateway, the budget holding, close (every key revoked, a
//! final report equal to the ledger), ended experiments, and the same through `tollctl`.
//! Real PostgreSQL, Redis, mock upstream and sockets.

use std::time::Duration;

use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::common::requests::exact_request;
use crate::common::{TestApp, dec, tollctl};

async fn team(app: &TestApp) -> String {
    let name = format!("team-{}", uuid::Uuid::new_v4().simple());
    let (status, body) = app
        .admin(Method::POST, "/teams", Some(json!({"name": name})))
        .await;
    assert_eq!(status, 201, "{body}");
    name
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.db).await.unwrap()
}

async fn error_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test]
async fn a_launched_campaign_serves_its_workers_holds_its_budget_and_closes_with_the_ledgers_total()
{
    const K: usize = 5;
    let app = TestApp::spawn().await;
    let team = team(&app).await;
    let (body, cost) = exact_request(false);
    let budget = cost * Decimal::from(K);
    let (status, launched) = app
        .admin(
            Method::POST,
            "/campaigns",
            Some(json!({
                "team": team, "name": "gsm8k", "tags": ["nightly"], "keys": 3,
                "allowed_models": ["gpt-4o-mini"],
                "limits": {"rpm": 600, "tpm": 200000,
                           "budgets": [{"period": "total", "amount_usd": budget.to_string()}]},
            })),
        )
        .await;
    assert_eq!(status, 201, "{launched}");
    let experiment = &launched["experiment"];
    assert_eq!(experiment["name"], "gsm8k");
    assert_eq!(experiment["tags"], json!(["nightly"]));
    assert_eq!(launched["limits"]["rpm"], 600);
    assert_eq!(
        dec(launched["limits"]["budgets"][0]["amount_usd"]
            .as_str()
            .unwrap()),
        budget
    );
    let keys: Vec<String> = launched["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            assert_eq!(k["experiment_id"], experiment["id"]);
            assert_eq!(k["allowed_models"], json!(["gpt-4o-mini"]));
            let secret = k["key"].as_str().unwrap();
            assert!(secret.starts_with(k["prefix"].as_str().unwrap()));
            secret.to_owned()
        })
        .collect();
    assert_eq!(keys.len(), 3);
    assert_eq!(count(&app, "SELECT count(*) FROM experiments").await, 1);
    assert_eq!(count(&app, "SELECT count(*) FROM virtual_keys").await, 3);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM scope_limits WHERE scope_kind = 'experiment'"
        )
        .await,
        1
    );

    // Workers share the campaign's budget: exactly K requests fit, spread over the keys.
    for i in 0..K {
        let response = app.chat(&keys[i % keys.len()], body.clone()).await;
        assert_eq!(response.status(), 200, "request {i}");
    }
    let (status, code) = error_code(app.chat(&keys[K % keys.len()], body.clone()).await).await;
    assert_eq!((status, code.as_str()), (402, "budget_exceeded"));
    let (status, code) = error_code(
        app.chat(&keys[0], json!({"model": "test-model", "messages": []}))
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (403, "model_not_allowed"));
    let rows = K + 2;
    let total = app.ledger_cost(rows).await;
    assert_eq!(total, budget);

    // Closing by name revokes every key and reports exactly what the ledger holds.
    let (status, closed) = app
        .admin(
            Method::POST,
            &format!("/campaigns/gsm8k/close?team={team}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["revoked_keys"], 3);
    assert_eq!(closed["report"]["group_by"], json!(["key", "model"]));
    assert_eq!(closed["report"]["total"]["requests"], rows);
    assert_eq!(
        dec(closed["report"]["total"]["cost_usd"].as_str().unwrap()),
        total
    );
    let report_sum: Decimal = closed["report"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| dec(row["cost_usd"].as_str().unwrap()))
        .sum();
    assert_eq!(report_sum, total);
    let ends_at: chrono::DateTime<chrono::Utc> = closed["experiment"]["ends_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ends_at <= chrono::Utc::now());
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM virtual_keys WHERE revoked_at IS NULL"
        )
        .await,
        0
    );
    for key in &keys {
        let (status, code) = error_code(app.chat(key, body.clone()).await).await;
        assert_eq!((status, code.as_str()), (403, "key_revoked"));
    }

    // Closing again (here by id) is harmless and reports the same.
    let id = experiment["id"].as_str().unwrap();
    let (status, again) = app
        .admin(Method::POST, &format!("/campaigns/{id}/close"), None)
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["revoked_keys"], 0);
    assert_eq!(
        again["experiment"]["ends_at"],
        closed["experiment"]["ends_at"]
    );
    assert_eq!(again["report"]["total"], closed["report"]["total"]);

    // The audit log has one entry per change, none for the second close, and no secret.
    let (status, audit) = app.admin(Method::GET, "/audit?limit=1000", None).await;
    assert_eq!(status, 200, "{audit}");
    let mut actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "campaign.close",
            "campaign.launch",
            "key.issue",
            "key.issue",
            "key.issue",
            "key.revoke",
            "key.revoke",
            "key.revoke",
            "limits.set",
            "team.create"
        ]
    );
    assert!(keys.iter().all(|k| !audit.to_string().contains(k.as_str())));

    let (status, _) = app
        .admin(Method::POST, "/campaigns/gsm8k/close", None)
        .await;
    assert_eq!(status, 400, "a name needs its team");
    let (status, _) = app
        .admin(
            Method::POST,
            &format!("/campaigns/nope/close?team={team}"),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_invalid_launch_creates_nothing() {
    let app = TestApp::spawn().await;
    let team = team(&app).await;
    let launch = |changes: Value| {
        let mut body = json!({"team": team, "name": "c", "keys": 2,
                              "limits": {"budgets": [{"period": "total", "amount_usd": "10"}]}});
        for (k, v) in changes.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        body
    };
    for (changes, want) in [
        (
            json!({"limits": {"budgets": [{"period": "total", "amount_usd": "abc"}]}}),
            400,
        ),
        (
            json!({"limits": {"budgets": [{"period": "total", "amount_usd": "-1"}]}}),
            400,
        ),
        (json!({"limits": {"rpm": 0}}), 400),
        (json!({"keys": 0}), 400),
        (json!({"keys": 1001}), 400),
        (json!({"allowed_models": []}), 400),
        (json!({"ends_at": "2020-01-01T00:00:00Z"}), 400),
        (json!({"name": " "}), 400),
        (json!({"team": "no-such-team"}), 404),
    ] {
        let (status, body) = app
            .admin(Method::POST, "/campaigns", Some(launch(changes.clone())))
            .await;
        assert_eq!(status, want, "{changes} -> {body}");
    }
    let (status, _) = app
        .admin(
            Method::POST,
            "/campaigns",
            Some(json!({"team": team, "name": "c", "keys": 1, "budget": 5})),
        )
        .await;
    assert!(status == 400 || status == 422, "unknown fields are refused");
    // A name already taken is refused as a whole: no keys or limits are left behind.
    let (status, _) = app
        .admin(
            Method::POST,
            "/experiments",
            Some(json!({"team": team, "name": "taken"})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = app
        .admin(
            Method::POST,
            "/campaigns",
            Some(launch(json!({"name": "taken"}))),
        )
        .await;
    assert_eq!(status, 409, "{body}");

    assert_eq!(count(&app, "SELECT count(*) FROM experiments").await, 1);
    assert_eq!(count(&app, "SELECT count(*) FROM virtual_keys").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM scope_limits").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM scope_budgets").await, 0);
}

#[tokio::test]
async fn a_campaign_past_its_end_answers_experiment_ended() {
    let app = TestApp::spawn().await;
    let team = team(&app).await;
    let ends_at = chrono::Utc::now() + chrono::TimeDelta::seconds(2);
    let (status, launched) = app
        .admin(
            Method::POST,
            "/campaigns",
            Some(json!({"team": team, "name": "short", "keys": 1, "ends_at": ends_at})),
        )
        .await;
    assert_eq!(status, 201, "{launched}");
    let key = launched["keys"][0]["key"].as_str().unwrap().to_owned();
    let body = json!({"model": "test-model", "messages": []});
    assert_eq!(app.chat(&key, body.clone()).await.status(), 200);
    let wait = (ends_at - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(100)).await;
    let response = app.chat(&key, body).await;
    let (status, code) = error_code(response).await;
    assert_eq!((status, code.as_str()), (403, "experiment_ended"));
}

#[tokio::test]
async fn tollctl_launches_a_campaign_for_workers_and_closes_it() {
    let app = TestApp::spawn().await;
    let team = team(&app).await;
    let env = tollctl::run(
        &app,
        &[
            "campaigns",
            "launch",
            "--team",
            &team,
            "gsm8k",
            "--budget",
            "500",
            "--period",
            "total",
            "--keys",
            "4",
            "--rpm",
            "600",
            "--tpm",
            "200000",
            "--models",
            "gpt-4o-mini,test-model",
            "--ends-in",
            "7d",
            "--format",
            "env",
        ],
    )
    .await;
    let keys: Vec<&str> = env
        .lines()
        .map(|line| line.strip_prefix("OPENAI_API_KEY=").unwrap())
        .collect();
    assert_eq!(keys.len(), 4, "{env}");
    for key in &keys {
        assert!(key.starts_with("tg-"));
        let response = app
            .chat(key, json!({"model": "test-model", "messages": []}))
            .await;
        assert_eq!(response.status(), 200);
    }

    // The budget and limits are on the experiment, which `limits show` finds by name.
    let shown: Value = serde_json::from_str(
        &tollctl::run(
            &app,
            &[
                "limits",
                "show",
                "experiment",
                "gsm8k",
                "--team",
                &team,
                "--format",
                "json",
            ],
        )
        .await,
    )
    .unwrap();
    assert_eq!(shown["limits"]["rpm"], 600);
    assert_eq!(shown["limits"]["tpm"], 200000);
    assert_eq!(
        shown["limits"]["budgets"],
        json!([{"period": "total", "amount_usd": "500"}])
    );
    let (_, listed) = app
        .admin(Method::GET, &format!("/experiments?team={team}"), None)
        .await;
    assert!(listed["data"][0]["ends_at"].is_string());

    app.ledger_rows(4).await;
    let report = tollctl::run(&app, &["campaigns", "close", "gsm8k", "--team", &team]).await;
    let total = report.lines().last().unwrap();
    assert!(total.starts_with("TOTAL"), "{report}");
    assert!(
        total.split_whitespace().nth(1) == Some("4"),
        "four requests: {report}"
    );
    for key in &keys {
        let response = app
            .chat(key, json!({"model": "test-model", "messages": []}))
            .await;
        assert_eq!(error_code(response).await.0, 403);
    }
}

#[tokio::test]
async fn tollctl_limits_set_show_and_clear_round_trip() {
    let app = TestApp::spawn().await;
    let (_, record) = app.issue_key(json!({})).await;
    let id = record["id"].as_str().unwrap();
    let team = record["team_id"].as_str().unwrap();
    let api = |path: String| {
        let app = &app;
        async move {
            let (status, body) = app.admin(Method::GET, &path, None).await;
            assert_eq!(status, 200, "{body}");
            body["limits"].clone()
        }
    };
    let key_limits = format!("/keys/{id}/limits");

    tollctl::run(
        &app,
        &[
            "limits",
            "set",
            "key",
            id,
            "--rpm",
            "5",
            "--budget",
            "daily=1.50",
        ],
    )
    .await;
    let limits = api(key_limits.clone()).await;
    assert_eq!(limits["rpm"], 5);
    assert_eq!(
        limits["budgets"],
        json!([{"period": "daily", "amount_usd": "1.50"}])
    );

    // `set` changes only what it names.
    tollctl::run(
        &app,
        &[
            "limits",
            "set",
            "key",
            id,
            "--tpm",
            "1000",
            "--budget",
            "total=10",
            "--budget-mode",
            "estimate",
        ],
    )
    .await;
    let limits = api(key_limits.clone()).await;
    assert_eq!(
        (
            &limits["rpm"],
            &limits["tpm"],
            &limits["budget_mode"],
            limits["budgets"].as_array().map(Vec::len)
        ),
        (&json!(5), &json!(1000), &json!("estimate"), Some(2))
    );
    let table = tollctl::run(&app, &["limits", "show", "key", id]).await;
    assert!(table.contains("BUDGET MODE       estimate"), "{table}");
    let rpm_line = table.lines().find(|l| l.starts_with("rpm")).unwrap();
    assert_eq!(
        rpm_line.split_whitespace().collect::<Vec<_>>(),
        ["rpm", "5", "0", "5"],
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("daily") && l.contains("1.50") && l.contains(" to ")),
        "{table}"
    );

    tollctl::run(&app, &["limits", "set", "key", id, "--unset", "rpm,daily"]).await;
    let limits = api(key_limits.clone()).await;
    assert_eq!(limits["rpm"], Value::Null);
    assert_eq!(
        limits["budgets"],
        json!([{"period": "total", "amount_usd": "10"}])
    );

    tollctl::run(
        &app,
        &["limits", "set", "key", id, "--replace", "--rpm", "7"],
    )
    .await;
    let limits = api(key_limits.clone()).await;
    assert_eq!((&limits["rpm"], &limits["tpm"]), (&json!(7), &Value::Null));
    assert_eq!(limits["budgets"], json!([]));

    let cleared = tollctl::run(&app, &["limits", "clear", "key", id]).await;
    assert_eq!(cleared, format!("No limits on key {id}.\n"));
    assert_eq!(api(key_limits).await, Value::Null);

    // A team by its id, as well as by name; the table says so when there is nothing.
    tollctl::run(
        &app,
        &["limits", "set", "team", team, "--max-concurrent", "3"],
    )
    .await;
    assert_eq!(
        api(format!("/teams/{team}/limits")).await["max_concurrent"],
        3
    );
}
