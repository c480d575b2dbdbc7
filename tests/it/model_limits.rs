//! Limits a scope puts on one model or group of models: a judge model capped inside its
//! campaign's budget, held across instances, refused by name, shown with usage, and rebuilt
//! from the ledger like any budget.

use std::time::Duration;

use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::common::requests::exact_request;
use crate::common::{Options, TestApp, dec, two_instances};

/// The experiment's path in the admin API.
fn experiment_path(record: &Value) -> String {
    format!("/experiments/{}", record["experiment_id"].as_str().unwrap())
}

/// A request for the model nobody caps (`test-model`).
fn other_model_request() -> Value {
    json!({
        "model": "test-model",
        "messages": [{"role": "user", "content": "grade this"}],
        "max_tokens": 20,
    })
}

/// Sends every body at once, alternating between the instances; the statuses by model.
async fn burst(apps: [&TestApp; 2], key: &str, bodies: Vec<Value>) -> Vec<(String, u16, Value)> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, body) in bodies.into_iter().enumerate() {
        let app = apps[i % 2];
        let request = app
            .http
            .post(format!("{}/v1/chat/completions", app.data_url))
            .bearer_auth(key)
            .json(&body);
        tasks.spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            (body["model"].as_str().unwrap().to_string(), status, answer)
        });
    }
    let mut out = Vec::new();
    while let Some(result) = tasks.join_next().await {
        out.push(result.unwrap());
    }
    out
}

/// The ledger's successful requests for `model`: how many, and what they cost.
async fn ledger_of(app: &TestApp, model: &str, n: usize) -> (usize, Decimal) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (count, total): (i64, Option<Decimal>) = sqlx::query_as(
            "SELECT count(*), sum(cost_usd) FROM request_log WHERE status = 200 AND model = $1",
        )
        .bind(model)
        .fetch_one(&app.db)
        .await
        .unwrap();
        if count as usize >= n || tokio::time::Instant::now() > deadline {
            return (count as usize, total.unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_model_budget_holds_across_instances_while_other_models_serve() {
    const K: usize = 23;
    const OTHER: usize = 60;
    let _heavy = crate::common::heavy().await;
    let (a, b) = two_instances(Options::default).await;
    let (key, record) = a.issue_key(json!({})).await;
    let (judge, cost) = exact_request(false);
    // The experiment may spend 1,000 requests' worth, of which the judge model at most K.
    let shown = a
        .put_limits(
            &experiment_path(&record),
            json!({
                "budgets": [{"period": "total", "amount_usd": (cost * Decimal::from(1000)).to_string()}],
                "models": [{"model": "gpt-4o-mini", "budgets": [{"period": "total", "amount_usd": (cost * Decimal::from(K)).to_string()}]}],
            }),
        )
        .await;
    assert_eq!(shown["limits"]["models"][0]["model"], "gpt-4o-mini");

    let mut bodies = vec![judge.clone(); 500];
    // The other model's requests go in the middle of the burst, while the judge is refused.
    for i in 0..OTHER {
        bodies.insert(100 + i * 6, other_model_request());
    }
    let results = burst([&a, &b], &key, bodies).await;
    let count = |model: &str, status: u16| {
        results
            .iter()
            .filter(|(m, s, _)| m == model && *s == status)
            .count()
    };
    assert_eq!(count("gpt-4o-mini", 200), K);
    assert_eq!(count("gpt-4o-mini", 402), 500 - K);
    assert_eq!(count("test-model", 200), OTHER);

    // The refusal names the model, the scope and the budget, and how to raise it.
    let (_, _, refusal) = results.iter().find(|(_, s, _)| *s == 402).unwrap();
    let message = refusal["error"]["message"].as_str().unwrap();
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
    assert!(
        message.starts_with(&format!(
            "budget exceeded: the total budget of ${} on model \"gpt-4o-mini\" in experiment \"exp\" of team \"{team}\"",
            (cost * Decimal::from(K)).normalize()
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "`tollctl limits set experiment exp --team {team} --model gpt-4o-mini --budget total=<USD>`"
        )),
        "{message}"
    );

    // The ledger agrees: exactly K judge requests, exactly the model budget.
    let (n, spent) = ledger_of(&a, "gpt-4o-mini", K).await;
    assert_eq!((n, spent), (K, cost * Decimal::from(K)));
    let (others, other_spent) = ledger_of(&a, "test-model", OTHER).await;
    assert_eq!(others, OTHER);

    // Usage shows both, with the model's budget used up and the experiment's spent by both.
    let usage = a.key_usage(&key).await;
    let experiment = usage["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["usage"]["scope"] == "experiment")
        .unwrap();
    let model_budget = &experiment["usage"]["models"][0]["budgets"][0];
    assert_eq!(experiment["usage"]["models"][0]["model"], "gpt-4o-mini");
    assert_eq!(dec(model_budget["spent_usd"].as_str().unwrap()), spent);
    assert_eq!(
        dec(model_budget["remaining_usd"].as_str().unwrap()),
        Decimal::ZERO
    );
    assert_eq!(
        dec(model_budget["forecast"]["spent_in_window_usd"]
            .as_str()
            .unwrap()),
        spent
    );
    assert_eq!(
        dec(experiment["usage"]["budgets"][0]["spent_usd"]
            .as_str()
            .unwrap()),
        spent + other_spent
    );
}

#[tokio::test]
async fn a_model_group_rate_limit_refuses_by_name_and_leaves_other_models_alone() {
    let app = TestApp::spawn().await;
    let (key, record) = app.issue_key(json!({})).await;
    let key_path = format!("/keys/{}", record["id"].as_str().unwrap());
    app.put_limits(&key_path, json!({"models": [{"model": "gpt-*", "rpm": 2}]}))
        .await;
    let (judge, _) = exact_request(false);
    for _ in 0..2 {
        assert_eq!(app.chat(&key, judge.clone()).await.status(), 200);
    }
    let refused = app.chat(&key, judge.clone()).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("rate limit reached: models \"gpt-*\" in key"),
        "{message}"
    );
    assert!(message.contains("--model 'gpt-*' --rpm <N>"), "{message}");
    // Requests for a model outside the group are not counted.
    for _ in 0..5 {
        let response = app.chat(&key, other_model_request()).await;
        assert_eq!(response.status(), 200);
    }
    let usage = app.key_usage(&key).await;
    let rpm = &usage["scopes"][0]["usage"]["models"][0]["rpm"];
    assert_eq!(
        (rpm["limit"].as_u64(), rpm["remaining"].as_u64()),
        (Some(2), Some(0))
    );
}

#[tokio::test]
async fn a_lost_model_budget_counter_is_rebuilt_from_that_models_spend() {
    let app = TestApp::spawn().await;
    let (key, record) = app.issue_key(json!({})).await;
    let (judge, cost) = exact_request(false);
    app.put_limits(
        &experiment_path(&record),
        json!({"models": [{"model": "gpt-4o-mini", "budgets": [{"period": "daily", "amount_usd": (cost * Decimal::from(5)).to_string()}]}]}),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(app.chat(&key, judge.clone()).await.status(), 200);
        assert_eq!(app.chat(&key, other_model_request()).await.status(), 200);
    }
    ledger_of(&app, "test-model", 3).await;
    let (_, spent) = ledger_of(&app, "gpt-4o-mini", 3).await;
    // Redis loses the model's counter (a restart without persistence, say).
    let mut redis = redis::Client::open(crate::common::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let team = record["team_id"].as_str().unwrap();
    let lost: Vec<String> = redis::cmd("KEYS")
        .arg(format!("*{{{team}}}:experiment:*:m:gpt-4o-mini:b:*"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(lost.len(), 1, "{lost:?}");
    let _: i64 = redis::cmd("DEL")
        .arg(&lost)
        .query_async(&mut redis)
        .await
        .unwrap();

    // The counter comes back with the judge's spend only: two more fit, then a refusal.
    for _ in 0..2 {
        assert_eq!(app.chat(&key, judge.clone()).await.status(), 200);
    }
    assert_eq!(app.chat(&key, judge.clone()).await.status(), 402);
    assert_eq!(app.chat(&key, other_model_request()).await.status(), 200);
    let restored: Option<i64> = redis::cmd("HGET")
        .arg(&lost[0])
        .arg("spent")
        .query_async(&mut redis)
        .await
        .unwrap();
    let nanos = (cost * Decimal::from(5) * Decimal::from(1_000_000_000))
        .ceil()
        .to_string()
        .parse::<i64>()
        .unwrap();
    assert_eq!(
        restored,
        Some(nanos),
        "three before the loss ({spent}), two after"
    );
}

#[tokio::test]
async fn bad_model_limits_are_refused_by_name() {
    let app = TestApp::spawn().await;
    let (_, record) = app.issue_key(json!({})).await;
    let path = format!("{}/limits", experiment_path(&record));
    let cases = [
        (
            json!([{"model": "gpt-*-mini", "rpm": 1}]),
            "model \"gpt-*-mini\" has '*'",
        ),
        (
            json!([{"model": "*", "rpm": 1}]),
            "model \"*\" names no model",
        ),
        (json!([{"model": "gpt-5"}]), "model \"gpt-5\" has no limit"),
        (
            json!([{"model": "gpt-5", "rpm": 1}, {"model": "gpt-5", "tpm": 10}]),
            "model \"gpt-5\" is given twice",
        ),
        (
            json!([{"model": "gpt-5", "rpm": 0}]),
            "model \"gpt-5\": `rpm` must be at least 1",
        ),
        (
            json!([{"model": "gpt-5", "budgets": [{"period": "yearly", "amount_usd": "1"}]}]),
            "model \"gpt-5\": unknown period \"yearly\"",
        ),
        (
            json!([{"model": "gpt-5", "max_concurrent": 3}]),
            "unknown field `max_concurrent`",
        ),
    ];
    for (models, expected) in cases {
        let (status, body) = app
            .admin(Method::PUT, &path, Some(json!({"models": models})))
            .await;
        // A field that does not exist is a body that does not parse (422, as everywhere).
        let unparsed = expected.starts_with("unknown field");
        assert_eq!(status, if unparsed { 422 } else { 400 }, "{models}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{models}: {message}");
    }
}

#[tokio::test]
async fn tollctl_sets_and_shows_a_judge_models_budget_inside_the_campaigns() {
    let app = TestApp::spawn().await;
    let (key, record) = app.issue_key(json!({})).await;
    let team = app
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
    let scope = [
        "limits",
        "set",
        "experiment",
        "exp",
        "--team",
        team.as_str(),
    ];
    let run = async |extra: &[&str]| {
        let args: Vec<&str> = scope.iter().chain(extra).copied().collect();
        crate::common::tollctl::run(&app, &args).await
    };
    run(&["--budget", "500"]).await;
    run(&[
        "--model",
        "gpt-4o-mini",
        "--budget",
        "total=100",
        "--rpm",
        "50",
    ])
    .await;
    let (judge, cost) = exact_request(false);
    assert_eq!(app.chat(&key, judge).await.status(), 200);
    ledger_of(&app, "gpt-4o-mini", 1).await;

    let (_, shown) = app
        .admin(
            Method::GET,
            &format!("{}/limits", experiment_path(&record)),
            None,
        )
        .await;
    assert_eq!(shown["limits"]["budgets"][0]["amount_usd"], "500");
    assert_eq!(
        shown["limits"]["models"],
        json!([{"model": "gpt-4o-mini", "rpm": 50, "tpm": null,
                "budgets": [{"period": "total", "amount_usd": "100"}]}])
    );
    let csv = crate::common::tollctl::run(
        &app,
        &[
            "--format",
            "csv",
            "limits",
            "show",
            "experiment",
            "exp",
            "--team",
            &team,
        ],
    )
    .await;
    let spent = cost.normalize().to_string();
    let left = (dec("100") - cost).normalize().to_string();
    assert!(csv.contains("\nmodel:gpt-4o-mini:rpm,50,1,,49,"), "{csv}");
    assert!(
        csv.contains(&format!(
            "\nmodel:gpt-4o-mini:budget_total,100,{spent},0,{left},"
        )),
        "{csv}"
    );
    let table = crate::common::tollctl::run(
        &app,
        &["limits", "show", "experiment", "exp", "--team", &team],
    )
    .await;
    assert!(table.contains("\nMODEL gpt-4o-mini\n"), "{table}");

    // Removing the model's limits keeps the scope's.
    run(&["--model", "gpt-4o-mini", "--unset", "model"]).await;
    let (_, shown) = app
        .admin(
            Method::GET,
            &format!("{}/limits", experiment_path(&record)),
            None,
        )
        .await;
    assert_eq!(shown["limits"]["models"], json!([]));
    assert_eq!(shown["limits"]["budgets"][0]["amount_usd"], "500");
}

#[tokio::test]
async fn a_campaign_launches_with_its_judge_models_budget() {
    let app = TestApp::spawn().await;
    let team = format!("team-{}", uuid::Uuid::new_v4().simple());
    app.admin(Method::POST, "/teams", Some(json!({"name": team})))
        .await;
    let out = crate::common::tollctl::run(
        &app,
        &[
            "--format",
            "json",
            "campaigns",
            "launch",
            "--team",
            &team,
            "judged",
            "--keys",
            "1",
            "--budget",
            "500",
            "--model-budget",
            "gpt-4o-mini=100",
            "--model-budget",
            "gpt-4o-mini=daily=20",
        ],
    )
    .await;
    let launched: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(launched["limits"]["budgets"][0]["amount_usd"], "500");
    assert_eq!(
        launched["limits"]["models"],
        json!([{"model": "gpt-4o-mini", "rpm": null, "tpm": null, "budgets": [
            {"period": "total", "amount_usd": "100"}, {"period": "daily", "amount_usd": "20"}]}])
    );
}
