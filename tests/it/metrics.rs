//! `/metrics` against the ledger: after real requests through the gateway, the scraped
//! counters equal what the ledger recorded. The recorder is process-wide and the tests in
//! this file run in parallel, so every assertion filters on its own team's id.

use std::time::Duration;

use futures_util::StreamExt;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::common::{Options, TestApp, dec};

fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "ping"}]})
}

async fn scrape(app: &TestApp) -> String {
    let response = app
        .http
        .get(format!("{}/metrics", app.data_url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

/// One sample of the text format: name, labels and value.
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: Decimal,
}

impl Sample {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value = value
                .parse::<Decimal>()
                .or_else(|_| Decimal::from_scientific(value))
                .unwrap_or_else(|_| panic!("value of {line}"));
            let (name, labels) = match series.split_once('{') {
                None => (series.to_string(), Vec::new()),
                Some((name, rest)) => {
                    let rest = rest.strip_suffix('}').unwrap();
                    // Our label values (ids, model names, kinds) hold no quotes or commas.
                    let labels = rest
                        .split("\",")
                        .filter(|pair| !pair.is_empty())
                        .map(|pair| {
                            let (k, v) = pair.split_once("=\"").unwrap();
                            (k.to_string(), v.trim_end_matches('"').to_string())
                        })
                        .collect();
                    (name.to_string(), labels)
                }
            };
            Sample {
                name,
                labels,
                value,
            }
        })
        .collect()
}

/// The sum of `name`'s samples whose labels include every pair of `with`.
fn sum(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> Decimal {
    samples
        .iter()
        .filter(|s| s.name == name && with.iter().all(|(k, v)| s.label(k) == Some(*v)))
        .map(|s| s.value)
        .sum()
}

#[tokio::test]
async fn counters_equal_the_ledger() {
    let app = TestApp::spawn().await;
    let (key, record) = app.issue_key(json!({})).await;
    let team = record["team_id"].as_str().unwrap().to_string();
    let experiment = record["experiment_id"].as_str().unwrap().to_string();
    let key_id = record["id"].as_str().unwrap().to_string();

    let mut body = chat_body("test-model");
    body["mock"] = json!({"usage": {"prompt_tokens": 1_000_003, "cached_tokens": 400_001,
        "completion_tokens": 300_007, "reasoning_tokens": 100_003}});
    assert_eq!(app.chat(&key, body).await.status(), 200);
    assert_eq!(app.chat(&key, chat_body("test-model")).await.status(), 200);
    assert_eq!(app.chat(&key, chat_body("gpt-4o-mini")).await.status(), 200);
    let mut stream = chat_body("test-model");
    stream["stream"] = json!(true);
    let response = app.chat(&key, stream).await;
    assert_eq!(response.status(), 200);
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        chunk.unwrap();
    }
    let mut failing = chat_body("test-model");
    failing["mock"] = json!({"status": 500});
    assert_eq!(app.chat(&key, failing).await.status(), 502);
    // Refused before routing: the client's model name must not become a label value.
    assert_eq!(
        app.chat(&key, chat_body("client-invented-model"))
            .await
            .status(),
        404
    );

    let rows = app.ledger_rows(6).await;
    let text = scrape(&app).await;
    let samples = samples(&text);
    let mine = [("team", team.as_str())];

    assert_eq!(
        sum(&samples, "tollgate_requests_total", &mine),
        Decimal::from(rows.len())
    );
    let ok = rows.iter().filter(|r| r.status == 200).count();
    assert_eq!(
        sum(
            &samples,
            "tollgate_requests_total",
            &[("team", &team), ("status_class", "2xx")]
        ),
        Decimal::from(ok)
    );
    assert_eq!(
        sum(
            &samples,
            "tollgate_requests_total",
            &[("team", &team), ("experiment", &experiment)]
        ),
        Decimal::from(rows.len())
    );
    assert_eq!(
        sum(
            &samples,
            "tollgate_requests_total",
            &[("team", &team), ("model", "none"), ("status_class", "4xx")]
        ),
        Decimal::ONE
    );
    assert!(!text.contains("client-invented-model"));

    // Spend: the nano-USD counter is exactly the ledger's sum × 10⁹, the USD one its sum.
    let spent: Decimal = rows.iter().map(|r| r.cost_usd).sum();
    assert!(spent > Decimal::ZERO);
    assert_eq!(
        sum(&samples, "tollgate_cost_nanousd_total", &mine),
        spent * dec("1000000000")
    );
    assert_eq!(sum(&samples, "tollgate_cost_usd_total", &mine), spent);
    let mini: Decimal = rows
        .iter()
        .filter(|r| r.model == "gpt-4o-mini")
        .map(|r| r.cost_usd)
        .sum();
    assert_eq!(
        sum(
            &samples,
            "tollgate_cost_usd_total",
            &[
                ("team", &team),
                ("model", "gpt-4o-mini"),
                ("provider", "openai")
            ]
        ),
        mini
    );

    let tokens = |kind: &str| {
        sum(
            &samples,
            "tollgate_tokens_total",
            &[("team", &team), ("kind", kind)],
        )
    };
    let total =
        |f: fn(&crate::common::LedgerRow) -> i64| Decimal::from(rows.iter().map(f).sum::<i64>());
    assert_eq!(tokens("input"), total(|r| r.input_tokens));
    assert_eq!(tokens("cached_input"), total(|r| r.cached_input_tokens));
    assert_eq!(tokens("output"), total(|r| r.output_tokens));
    assert_eq!(tokens("reasoning"), total(|r| r.reasoning_tokens));

    // Errors by type; other tests share the process, so at least ours.
    assert!(
        sum(
            &samples,
            "tollgate_errors_total",
            &[("type", "upstream_error"), ("scope", "none")]
        ) >= Decimal::ONE
    );
    assert!(
        sum(
            &samples,
            "tollgate_errors_total",
            &[("type", "model_not_found")]
        ) >= Decimal::ONE
    );
    // Four test-model requests and one gpt-4o-mini reached the upstream.
    assert!(
        sum(
            &samples,
            "tollgate_upstream_latency_seconds_count",
            &[("provider", "openai"), ("model", "test-model")]
        ) >= Decimal::from(4)
    );
    assert!(text.contains("# TYPE tollgate_upstream_latency_seconds histogram"));

    // The ledger's own state, read at scrape time from this app's writer.
    assert!(text.contains("# TYPE tollgate_ledger_queue_depth gauge"));
    assert!(
        samples
            .iter()
            .any(|s| s.name == "tollgate_ledger_queue_depth")
    );
    assert_eq!(
        sum(&samples, "tollgate_ledger_write_failures_total", &[]),
        Decimal::ZERO
    );

    // No key ids unless `metrics.key_labels` is on.
    assert!(!text.contains(&key_id));
    assert!(
        samples
            .iter()
            .filter(|s| s.label("team") == Some(&team))
            .all(|s| s.label("key").is_none())
    );
}

#[tokio::test]
async fn key_labels_when_enabled() {
    let app = TestApp::spawn_with(Options {
        extra: "[metrics]\nkey_labels = true".into(),
        ..Options::default()
    })
    .await;
    let (key, record) = app.issue_key(json!({})).await;
    let team = record["team_id"].as_str().unwrap().to_string();
    let key_id = record["id"].as_str().unwrap().to_string();
    assert_eq!(app.chat(&key, chat_body("test-model")).await.status(), 200);
    app.ledger_rows(1).await;
    let samples = samples(&scrape(&app).await);
    let with_key = [("team", team.as_str()), ("key", key_id.as_str())];
    assert_eq!(
        sum(&samples, "tollgate_requests_total", &with_key),
        Decimal::ONE
    );
    assert_eq!(
        sum(&samples, "tollgate_cost_usd_total", &with_key),
        dec("0.000225")
    );
}

#[tokio::test]
async fn budget_remaining_gauge_for_noted_scopes() {
    use tollgate::governance::{Budget, Limits, Period, ScopeKind, ScopeLimits};
    use tollgate::ids::TeamId;

    let app = TestApp::spawn().await;
    let (_, record) = app.issue_key(json!({})).await;
    let team = record["team_id"].as_str().unwrap().to_string();
    let (status, body) = app
        .admin(
            reqwest::Method::PUT,
            &format!("/teams/{team}/limits"),
            Some(json!({"budgets": [{"period": "daily", "amount_usd": "12.5"}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let team_id: uuid::Uuid = team.parse().unwrap();
    // What the proxy does for every request of a key with budgets.
    tollgate::metrics::note_budget_scopes(
        TeamId(team_id),
        &[ScopeLimits {
            kind: ScopeKind::Team,
            id: team_id,
            name: "metrics-team".into(),
            limits: Limits {
                budgets: vec![Budget {
                    period: Period::Daily,
                    amount_usd: dec("12.5"),
                }],
                ..Limits::default()
            },
        }],
    );
    let series = [
        ("scope", "team"),
        ("id", team.as_str()),
        ("period", "daily"),
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let samples = samples(&scrape(&app).await);
        if samples
            .iter()
            .any(|s| s.name == "tollgate_budget_remaining_usd" && s.label("id") == Some(&team))
        {
            assert_eq!(
                sum(&samples, "tollgate_budget_remaining_usd", &series),
                dec("12.5")
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no budget gauge for the noted scope"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_gateways_own_overhead_is_observed() {
    let app = TestApp::spawn().await;
    let key = app.key().await;
    let count = |text: &str| {
        samples(text)
            .into_iter()
            .find(|s| s.name == "tollgate_gateway_overhead_seconds_count")
            .map_or(Decimal::ZERO, |s| s.value)
    };
    let before = count(&scrape(&app).await);
    for _ in 0..3 {
        assert_eq!(app.chat(&key, chat_body("test-model")).await.status(), 200);
    }
    // The histogram is process-wide (other tests add to it too): it grew by at least ours.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while count(&scrape(&app).await) < before + Decimal::from(3) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "overhead was not observed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn governance_refusals_are_counted_by_type_and_scope() {
    let app = TestApp::spawn().await;
    let (key, record) = app.issue_key(json!({})).await;
    let experiment = record["experiment_id"].as_str().unwrap();
    let (status, body) = app
        .admin(
            reqwest::Method::PUT,
            &format!("/experiments/{experiment}/limits"),
            Some(json!({"budgets": [{"period": "total", "amount_usd": "0"}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let count = |text: &str| {
        samples(text)
            .into_iter()
            .filter(|s| {
                s.name == "tollgate_errors_total"
                    && s.label("type") == Some("budget_exceeded")
                    && s.label("scope") == Some("experiment")
            })
            .map(|s| s.value)
            .sum::<Decimal>()
    };
    let before = count(&scrape(&app).await);
    assert_eq!(app.chat(&key, chat_body("test-model")).await.status(), 402);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while count(&scrape(&app).await) < before + Decimal::ONE {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the refusal was not counted with its scope"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn admission_round_trips_are_timed() {
    let app = TestApp::spawn().await;
    let (key, record) = app.issue_key(json!({})).await;
    let id = record["id"].as_str().unwrap();
    let (status, body) = app
        .admin(
            reqwest::Method::PUT,
            &format!("/keys/{id}/limits"),
            Some(json!({"rpm": 1000})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let count = |text: &str| {
        samples(text)
            .into_iter()
            .find(|s| s.name == "tollgate_admission_seconds_count")
            .map_or(Decimal::ZERO, |s| s.value)
    };
    let before = count(&scrape(&app).await);
    for _ in 0..3 {
        assert_eq!(app.chat(&key, chat_body("test-model")).await.status(), 200);
    }
    // Process-wide like the overhead histogram: it grew by at least our three admissions.
    assert!(count(&scrape(&app).await) >= before + Decimal::from(3));
}
