//! The forecast next to each budget, in `GET /v1/tollgate/usage` and the admin API's limits:
//! the burn rate from the ledger and when the budget runs out at it.

use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::json;

use crate::common::requests::exact_request;
use crate::common::{TestApp, dec};

#[tokio::test]
async fn budgets_show_the_burn_rate_and_when_they_run_out() {
    let app = TestApp::spawn().await;
    let (key, record) = app.issue_key(json!({})).await;
    let (body, cost) = exact_request(false);
    let key_path = format!("/keys/{}", record["id"].as_str().unwrap());
    app.put_limits(
        &key_path,
        json!({"budgets": [
            {"period": "total", "amount_usd": "1000"},
            {"period": "daily", "amount_usd": (cost * Decimal::from(6)).to_string()},
        ]}),
    )
    .await;
    for _ in 0..5 {
        assert_eq!(app.chat(&key, body.clone()).await.status(), 200);
    }
    let spent = app.ledger_cost(5).await;
    assert_eq!(spent, cost * Decimal::from(5));

    let (_, shown) = app
        .admin(Method::GET, &format!("{key_path}/limits"), None)
        .await;
    let usage = app.key_usage(&key).await;
    let key_scope = usage["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["usage"]["scope"] == "key")
        .unwrap();
    for budgets in [&shown["usage"]["budgets"], &key_scope["usage"]["budgets"]] {
        for budget in budgets.as_array().unwrap() {
            let forecast = &budget["forecast"];
            assert_eq!(
                dec(forecast["spent_in_window_usd"].as_str().unwrap()),
                spent
            );
            // Measured from the first request, under a minute ago: over the 60 s floor.
            let rate = dec(forecast["burn_rate_usd_per_hour"].as_str().unwrap());
            assert_eq!(rate, (spent * Decimal::from(60)).round_dp(9), "{budget}");
            assert!(forecast["exhausted_at"].is_string(), "{budget}");
        }
        let of_period = |period: &str| {
            let budget = budgets
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["period"] == period);
            budget.unwrap()["forecast"]["exhausted_before_period_end"].clone()
        };
        // One request's worth left at $/minute of five requests: gone within the day.
        assert_eq!(of_period("daily"), true);
        assert_eq!(of_period("total"), true);
    }
}
