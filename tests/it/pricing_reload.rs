//! Reloading the price table without a restart: `POST /admin/v1/pricing/reload` and SIGHUP
//! to the real binary. New prices apply from their `effective_from`; a bad file changes
//! nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::common::process::{self, GatewayProcess};
use crate::common::{Options, TestApp, dec, fixture_pricing_dir};

fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "ping"}]})
}

/// A fresh pricing directory holding a copy of the test fixtures.
fn pricing_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tollgate-pricing-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(fixture_pricing_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}

/// test-model at $5 in / $20 out per 1M from yesterday (UTC), and at $100 / $100 from a date
/// that has not come yet.
fn write_new_prices(dir: &Path) {
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).date_naive();
    std::fs::write(
        dir.join("update.toml"),
        format!(
            r#"provider = "test"

[[models]]
name = "test-model"
effective_from = "{yesterday}"
input = "5.00"
output = "20.00"

[[models]]
name = "test-model"
effective_from = "2999-01-01"
input = "100"
output = "100"
"#
        ),
    )
    .unwrap();
}

/// Default mock usage (10 prompt, 20 completion tokens) at $2.50 / $10 per 1M.
const OLD_COST: &str = "0.000225";
/// The same at $5 / $20 per 1M.
const NEW_COST: &str = "0.00045";

async fn cost_of_one_request(http: &reqwest::Client, data_url: &str, key: &str) -> Decimal {
    let response = http
        .post(format!("{data_url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&chat_body("test-model"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    dec(response.headers()["x-tollgate-cost-usd"].to_str().unwrap())
}

async fn reload(app: &TestApp) -> (u16, Value) {
    app.admin(reqwest::Method::POST, "/pricing/reload", None)
        .await
}

#[tokio::test]
async fn admin_reload_applies_new_prices_from_their_effective_date() {
    let dir = pricing_dir();
    let app = TestApp::spawn_with(Options {
        pricing_dir: Some(dir.clone()),
        ..Options::default()
    })
    .await;
    let key = app.key().await;
    assert_eq!(
        cost_of_one_request(&app.http, &app.data_url, &key).await,
        dec(OLD_COST)
    );

    let (status, before) = reload(&app).await;
    assert_eq!(status, 200, "{before}");
    let entries = before["entries"].as_u64().unwrap();
    write_new_prices(&dir);
    let (status, after) = reload(&app).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["entries"].as_u64().unwrap(), entries + 2);
    // Yesterday's entry is in force; the one dated 2999 is not.
    assert_eq!(
        cost_of_one_request(&app.http, &app.data_url, &key).await,
        dec(NEW_COST)
    );

    // A bad file: 400 naming the file and the field, and the table in force stays.
    std::fs::write(
        dir.join("zz-bad.toml"),
        "provider = \"test\"\n\n[[models]]\nname = \"other\"\neffective_from = \"2024-01-01\"\ninput = 2.5\noutput = \"1\"\n",
    )
    .unwrap();
    let (status, error) = reload(&app).await;
    assert_eq!(status, 400, "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("zz-bad.toml") && message.contains("`input`"),
        "{message}"
    );
    assert_eq!(
        cost_of_one_request(&app.http, &app.data_url, &key).await,
        dec(NEW_COST)
    );

    let costs: Vec<Decimal> = app
        .ledger_rows(3)
        .await
        .iter()
        .map(|r| r.cost_usd)
        .collect();
    assert_eq!(costs, [dec(OLD_COST), dec(NEW_COST), dec(NEW_COST)]);

    // The reload needs an admin token like every admin route.
    let status = app
        .http
        .post(format!("{}/admin/v1/pricing/reload", app.admin_url))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The real binary, so the signal handler is the one `tollgate serve` installs.
#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_prices_and_keeps_serving() {
    let dir = pricing_dir();
    let mock = mock_provider::spawn(Default::default()).await.unwrap();
    let database_url = crate::common::create_database().await;
    let journal = std::env::temp_dir().join(format!("tollgate-journal-{}", uuid::Uuid::new_v4()));
    let mut child = GatewayProcess::start(
        &dir.join("tollgate.conf"),
        &process::config(&database_url, &dir, &journal, &mock.base_url(), ""),
    )
    .await;
    let http = reqwest::Client::new();
    let (data_url, admin_url) = (child.data_url.clone(), child.admin_url.clone());
    assert!(child.running(), "gateway exited");

    let token = crate::common::admin_token();
    let admin_post = |path: &str, body: Value| {
        http.post(format!("{admin_url}/admin/v1{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    assert_eq!(
        admin_post("/teams", json!({"name": "sighup"}))
            .await
            .unwrap()
            .status(),
        201
    );
    let issued: Value = admin_post("/keys", json!({"team": "sighup"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = issued["data"][0]["key"].as_str().unwrap().to_string();
    assert_eq!(
        cost_of_one_request(&http, &data_url, &key).await,
        dec(OLD_COST)
    );

    let pid = child.pid();
    let hangup = || {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    write_new_prices(&dir);
    hangup();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cost_of_one_request(&http, &data_url, &key).await != dec(NEW_COST) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "SIGHUP did not reload the prices"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A bad file on SIGHUP: logged, the gateway keeps serving at the prices in force.
    std::fs::write(dir.join("zz-bad.toml"), "provider = \n").unwrap();
    hangup();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(child.running(), "SIGHUP stopped the gateway");
    assert_eq!(
        cost_of_one_request(&http, &data_url, &key).await,
        dec(NEW_COST)
    );

    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&journal);
}
