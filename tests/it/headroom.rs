//! What a client is told ahead of a refusal: the headroom headers on successful responses
//! (`governance.headroom_headers`).

use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::json;

use crate::common::requests::exact_request;
use crate::common::{Options, TestApp, dec};

const REMAINING: &str = "x-tollgate-budget-remaining-usd";
const SCOPE: &str = "x-tollgate-budget-scope";

async fn with_headroom() -> TestApp {
    TestApp::spawn_with(Options {
        governance_extra: "headroom_headers = true".into(),
        ..Options::default()
    })
    .await
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn each_response_says_what_is_left_of_the_tightest_budget_until_the_402() {
    let app = with_headroom().await;
    let (key, record) = app.issue_key(json!({})).await;
    let (body, cost) = exact_request(false);
    let experiment = record["experiment_id"].as_str().unwrap();
    let team = record["team_id"].as_str().unwrap();
    // The experiment's total budget fits 100 requests; the team's daily one fits 3 and a half,
    // so it is the tightest and the fourth request is refused.
    app.put_limits(&format!("/experiments/{experiment}"),
        json!({"budgets": [{"period": "total", "amount_usd": (cost * Decimal::from(100)).to_string()}]}),
    )
    .await;
    let daily = cost * Decimal::from(7) / Decimal::from(2);
    app.put_limits(
        &format!("/teams/{team}"),
        json!({"budgets": [{"period": "daily", "amount_usd": daily.to_string()}]}),
    )
    .await;
    let (_, team_record) = app
        .admin(Method::GET, &format!("/teams/{team}"), None)
        .await;
    let team_name = team_record["name"].as_str().unwrap();

    for n in 1..=3 {
        let response = app.chat(&key, body.clone()).await;
        assert_eq!(response.status(), 200);
        // Each request reserved exactly what it then cost, so what is left after the n-th
        // admission is the budget less n requests, whether or not the earlier ones settled.
        assert_eq!(
            dec(&header(&response, REMAINING).unwrap()),
            daily - cost * Decimal::from(n),
            "after request {n}"
        );
        assert_eq!(
            header(&response, SCOPE).unwrap(),
            format!("team:{team_name}:daily")
        );
    }
    let refused = app.chat(&key, body.clone()).await;
    assert_eq!(refused.status(), 402);
    assert_eq!(header(&refused, REMAINING), None);

    // A stream carries them too, before its first byte; other scopes' budgets still count.
    app.put_limits(&format!("/teams/{team}"), json!({"budgets": []}))
        .await;
    let (stream_body, stream_cost) = exact_request(true);
    let streamed = app.chat(&key, stream_body).await;
    assert_eq!(streamed.status(), 200);
    assert_eq!(
        dec(&header(&streamed, REMAINING).unwrap()),
        cost * Decimal::from(100) - cost * Decimal::from(3) - stream_cost,
    );
    assert_eq!(header(&streamed, SCOPE).unwrap(), "experiment:exp:total");
    streamed.bytes().await.unwrap();
}

#[tokio::test]
async fn no_headers_without_a_budget_or_when_they_are_off() {
    let app = with_headroom().await;
    let (key, _) = app.issue_key(json!({})).await;
    let (body, _) = exact_request(false);
    let response = app.chat(&key, body.clone()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, REMAINING), None);
    assert_eq!(header(&response, SCOPE), None);

    let off = TestApp::spawn().await;
    let (key, record) = off.issue_key(json!({})).await;
    let key_path = format!("/keys/{}", record["id"].as_str().unwrap());
    off.put_limits(
        &key_path,
        json!({"budgets": [{"period": "total", "amount_usd": "1"}]}),
    )
    .await;
    let response = off.chat(&key, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, REMAINING), None);
}
