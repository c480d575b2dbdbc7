//! Absurd usage from an upstream, end to end: a token count of 2^64 − 1 (or more) reported by
//! the mock upstream over a real socket is charged the saturated cost, recorded as such in the
//! ledger, the metrics and Redis, exhausts any budget, and nothing panics or wraps on the way
//! (these tests run in debug builds, where integer overflow panics).

use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tollgate::pricing::MAX_COST_USD;

use crate::common::{TestApp, dec};

/// What the ledger stores for a count of `u64::MAX`: its columns are `bigint`.
const SATURATED_TOKENS: i64 = i64::MAX;

async fn send(app: &TestApp, key: &str, body: String) -> (u16, Option<String>, String) {
    let response = app
        .http
        .post(format!("{}/v1/chat/completions", app.data_url))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let cost = response
        .headers()
        .get("x-tollgate-cost-usd")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, cost, response.text().await.unwrap())
}

/// A chat request whose answer reports `usage` (raw JSON) instead of the mock's own.
fn reporting(usage: &str, stream: bool) -> String {
    format!(
        r#"{{"model":"test-model","messages":[{{"role":"user","content":"hi"}}],"stream":{stream},"mock":{{"raw_usage":{usage}}}}}"#
    )
}

async fn scrape(app: &TestApp) -> String {
    app.http
        .get(format!("{}/metrics", app.data_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the one sample of `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<Decimal> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .find(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|line| line.rsplit_once(' '))
        .map(|(_, value)| value.parse().unwrap())
}

#[tokio::test]
async fn two_to_the_64_minus_1_tokens_cost_the_saturated_maximum_and_exhaust_the_budget() {
    let app = TestApp::spawn().await;
    let (key, record) = app.issue_key(json!({})).await;
    let key_path = format!("/keys/{}", record["id"].as_str().unwrap());
    let (status, body) = app
        .admin(
            Method::PUT,
            &format!("{key_path}/limits"),
            Some(json!({"budgets": [{"period": "total", "amount_usd": "10"}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Exactly 2^64 − 1 completion tokens, through the typed override.
    let body = json!({"model": "test-model", "messages": [{"role": "user", "content": "hi"}],
        "mock": {"usage": {"completion_tokens": u64::MAX}}});
    let (status, cost, text) = send(&app, &key, body.to_string()).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(cost.as_deref(), Some("9223372036.854775807"));

    let rows = app.ledger_rows(1).await;
    assert_eq!(rows[0].cost_usd, MAX_COST_USD);
    assert_eq!(rows[0].output_tokens, SATURATED_TOKENS);
    assert!(!rows[0].usage_estimated);

    // Redis was charged the saturated cost (not a wrapped, negative one): the budget is
    // spent and refuses the next request, even a tiny one.
    let (status, _, text) = send(&app, &key, reporting(r#"{"prompt_tokens":1}"#, false)).await;
    assert_eq!(status, 402, "{text}");
    let error: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["error"]["type"], "budget_exceeded", "{error}");
    let (status, limits) = app
        .admin(Method::GET, &format!("{key_path}/limits"), None)
        .await;
    assert_eq!(status, 200, "{limits}");
    let spent: Decimal = limits["usage"]["budgets"][0]["spent_usd"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(spent > dec("4000000000"), "{limits}");
    assert_eq!(limits["usage"]["budgets"][0]["remaining_usd"], "0");

    let metrics = scrape(&app).await;
    let team = record["team_id"].as_str().unwrap();
    let mine = [("team", team), ("kind", "output")];
    assert_eq!(
        sample(&metrics, "tollgate_tokens_total", &mine),
        Some(Decimal::from(u64::MAX)),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "tollgate_cost_usd_total", &[("team", team)]),
        Some(MAX_COST_USD)
    );
    for what in ["usage", "cost"] {
        let saturated = sample(
            &metrics,
            "tollgate_saturated_requests_total",
            &[("what", what), ("model", "test-model")],
        );
        assert!(saturated >= Some(Decimal::ONE), "{what}: {metrics}");
    }
}

#[tokio::test]
async fn counts_beyond_u64_saturate_and_unreadable_ones_are_estimated() {
    let app = TestApp::spawn().await;
    let key = app.key().await;
    let cases = [
        // 2^64: beyond u64, read as the most there can be.
        (
            r#"{"prompt_tokens":18446744073709551616,"completion_tokens":2}"#,
            false,
        ),
        (r#"{"prompt_tokens":1e300,"completion_tokens":2}"#, true),
        // Fractions round up.
        (r#"{"prompt_tokens":10.2,"completion_tokens":2.5}"#, false),
        // Negative: the report cannot be read, the request is charged by estimate.
        (r#"{"prompt_tokens":-5,"completion_tokens":2}"#, false),
        (r#"{"prompt_tokens":"12","completion_tokens":2}"#, true),
    ];
    for (usage, stream) in cases {
        let (status, _, text) = send(&app, &key, reporting(usage, stream)).await;
        assert_eq!(status, 200, "{usage}: {text}");
    }
    let rows = app.ledger_rows(cases.len()).await;
    let tokens: Vec<(i64, i64, bool)> = rows
        .iter()
        .map(|r| (r.input_tokens, r.output_tokens, r.usage_estimated))
        .collect();
    assert_eq!(tokens[0], (SATURATED_TOKENS, 2, false));
    assert_eq!(tokens[1], (SATURATED_TOKENS, 2, false));
    assert_eq!(tokens[2], (11, 3, false));
    assert!(tokens[3].2 && tokens[3].0 > 0, "{:?}", tokens[3]);
    assert!(tokens[4].2 && tokens[4].0 > 0, "{:?}", tokens[4]);
    // 2^64 − 1 prompt tokens at 2.50 USD per 1M: far above the maximum, so saturated.
    assert_eq!(rows[0].cost_usd, MAX_COST_USD);
    assert_eq!(rows[1].cost_usd, MAX_COST_USD);
    // 11 × 2.50 + 3 × 10, per 1M tokens.
    assert_eq!(rows[2].cost_usd, dec("0.0000575"));
}

#[tokio::test]
async fn anthropic_usage_parts_summing_past_u64_saturate() {
    // Each part fits a u64; their sum (Anthropic's prompt is the three together) does not.
    // Server-wide, because a translated request's `mock` object does not reach the upstream.
    let usage = r#"{"input_tokens":18446744073709551615,"cache_read_input_tokens":18446744073709551615,"cache_creation_input_tokens":7,"output_tokens":3}"#;
    let anthropic = mock_provider::spawn(mock_provider::MockConfig {
        raw_usage: Some(usage.to_owned()),
        ..mock_provider::MockConfig::default()
    })
    .await
    .unwrap();
    let app = TestApp::spawn_with(crate::common::Options {
        deployments: Some(format!(
            r#"[[deployments]]
name = "claude"
kind = "anthropic"
base_url = "{}"
models = {{ "test-claude" = "test-claude" }}
"#,
            anthropic.base_url()
        )),
        ..crate::common::Options::default()
    })
    .await;
    let key = app.key().await;
    let native =
        r#"{"model":"test-claude","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;
    let response = app
        .http
        .post(format!("{}/v1/messages", app.data_url))
        .header("x-api-key", &key)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(native)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-tollgate-cost-usd"],
        "9223372036.854775807"
    );

    // Translated and streamed: the usage chunk the client asked for saturates too.
    let translated = r#"{"model":"test-claude","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
    let (status, _, text) = send(&app, &key, translated.to_owned()).await;
    assert_eq!(status, 200, "{text}");
    let usage_chunk = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .find(|chunk| chunk["usage"].is_object())
        .unwrap_or_else(|| panic!("no usage chunk in {text}"));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], u64::MAX);
    assert_eq!(usage_chunk["usage"]["total_tokens"], u64::MAX);

    let rows = app.ledger_rows(2).await;
    for row in &rows {
        assert_eq!(row.input_tokens, SATURATED_TOKENS, "{row:?}");
        assert_eq!(row.cached_input_tokens, SATURATED_TOKENS, "{row:?}");
        assert_eq!(row.cost_usd, MAX_COST_USD, "{row:?}");
        assert!(!row.usage_estimated);
    }
}

#[tokio::test]
async fn saturated_rows_add_up_in_rollups_and_reports_without_overflowing() {
    let app = TestApp::spawn().await;
    let (key, record) = app.issue_key(json!({})).await;
    let saturated =
        r#"{"prompt_tokens":18446744073709551615,"completion_tokens":18446744073709551615}"#;
    for _ in 0..3 {
        let (status, _, text) = send(&app, &key, reporting(saturated, false)).await;
        assert_eq!(status, 200, "{text}");
    }
    // One ordinary request in the same hour and group as the three absurd ones.
    let (status, _, text) = send(&app, &key, reporting(r#"{"prompt_tokens":4}"#, false)).await;
    assert_eq!(status, 200, "{text}");

    // All four rows are written: a rollup that overflowed its bigint would fail the batch.
    let rows = app.ledger_rows(4).await;
    let total: Decimal = rows.iter().map(|r| r.cost_usd).sum();
    let (status, report) = app
        .admin(
            Method::GET,
            &format!("/spend?key={}", record["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 200, "{report}");
    let totals = &report["total"];
    assert_eq!(totals["requests"], 4, "{report}");
    assert_eq!(totals["input_tokens"], SATURATED_TOKENS, "{report}");
    assert_eq!(totals["output_tokens"], SATURATED_TOKENS, "{report}");
    // Costs are NUMERIC: their sum stays exact, the report's total equals the ledger's.
    assert_eq!(
        totals["cost_usd"]
            .as_str()
            .unwrap()
            .parse::<Decimal>()
            .unwrap(),
        total,
        "{report}"
    );
    assert_eq!(total, MAX_COST_USD * Decimal::from(3) + dec("0.00001"));
}

#[tokio::test]
async fn a_quote_of_absurd_usage_saturates_and_limits_past_the_bounds_are_refused() {
    let app = TestApp::spawn().await;
    let (status, quote) = app
        .admin(
            Method::POST,
            "/pricing/quote",
            Some(
                json!({"model": "test-model", "input_tokens": u64::MAX, "output_tokens": u64::MAX,
                "cached_input_tokens": u64::MAX, "reasoning_tokens": u64::MAX}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{quote}");
    assert_eq!(quote["cost"]["total"], "9223372036.854775807", "{quote}");
    assert_eq!(quote["cost"]["saturated"], true, "{quote}");
    // 2^64 − 1 cached tokens at 1.25 USD per 1M: a part above the maximum, capped at it.
    assert_eq!(quote["cost"]["cached_input"], "9223372036.854775807");

    let (status, quote) = app
        .admin(
            Method::POST,
            "/pricing/quote",
            Some(json!({"model": "test-model", "input_tokens": 1000, "output_tokens": 10})),
        )
        .await;
    assert_eq!(status, 200, "{quote}");
    assert_eq!(quote["cost"]["saturated"], false, "{quote}");

    let (_, record) = app.issue_key(json!({})).await;
    let path = format!("/keys/{}/limits", record["id"].as_str().unwrap());
    for (limits, param, message) in [
        (
            json!({"budgets": [{"period": "daily", "amount_usd": "1000000000.000000001"}]}),
            "budgets",
            "`amount_usd` 1000000000.000000001 is above the largest budget, 1000000000 USD (omit the budget for no limit)",
        ),
        (
            json!({"budgets": [{"period": "total", "amount_usd": "79228162514264337593543950335"}]}),
            "budgets",
            "`amount_usd` 79228162514264337593543950335 is above the largest budget",
        ),
        (
            json!({"tpm": u64::MAX}),
            "tpm",
            "`tpm` 18446744073709551615 is above the largest tokens-per-minute limit, 100000000000",
        ),
    ] {
        let (status, body) = app.admin(Method::PUT, &path, Some(limits)).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["param"], param, "{body}");
        let text = body["error"]["message"].as_str().unwrap();
        assert!(text.contains(message), "{text}");
    }
    let (status, body) = app
        .admin(
            Method::PUT,
            &path,
            Some(json!({"tpm": 100_000_000_000u64, "budgets": [{"period": "total", "amount_usd": "1000000000"}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// A client's `max_tokens` of 2^64 − 1 (or just past the accepted maximum) is a 400 naming the
/// field, on a governed key (where the reservation would be computed from it) and on an
/// ungoverned one; the largest accepted value is admitted and reserves at most a saturated cost.
#[tokio::test]
async fn absurd_max_tokens_are_refused_by_name_and_the_largest_accepted_one_cannot_overflow() {
    let app = TestApp::spawn().await;
    let (governed, record) = app.issue_key(json!({})).await;
    let (status, body) = app
        .admin(
            Method::PUT,
            &format!("/keys/{}/limits", record["id"].as_str().unwrap()),
            Some(json!({"tpm": 100000, "budgets": [{"period": "total", "amount_usd": "1000"}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let plain = app.key().await;
    for key in [&governed, &plain] {
        for (field, value) in [
            ("max_tokens", u64::MAX),
            ("max_completion_tokens", u64::MAX),
            ("max_tokens", u64::from(u32::MAX) + 1),
        ] {
            let body = format!(r#"{{"model":"test-model","messages":[],"{field}":{value}}}"#);
            let (status, _, text) = send(&app, key, body).await;
            assert_eq!(status, 400, "{field} {value}: {text}");
            let error: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(error["error"]["param"], field);
            assert_eq!(
                error["error"]["message"],
                format!(
                    "invalid request body: `{field}` is {value}, more than any model can produce; send at most 4294967295, or leave it out"
                )
            );
        }
    }
    // The largest accepted cap reserves 2^32 − 1 output tokens at the dearest output rate
    // ($15 per 1M for reasoning), $64,424.51 with the prompt: the $1000 budget (checked
    // before the tpm bucket) refuses it, with the exact amount.
    let body = format!(
        r#"{{"model":"test-model","messages":[],"max_tokens":{}}}"#,
        u32::MAX
    );
    let (status, _, text) = send(&app, &governed, body.clone()).await;
    assert_eq!(status, 402, "{text}");
    assert!(text.contains("may cost up to $64424.509575."), "{text}");
    let (status, _, text) = send(&app, &plain, body).await;
    assert_eq!(status, 200, "{text}");
}
