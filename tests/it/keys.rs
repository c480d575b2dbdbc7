//! Changing keys that are in use: rotation with a grace period, updates of models, expiry and
//! name, on two gateway instances sharing PostgreSQL and Redis; listings with spend equal to
//! the ledger; and `tollctl keys rotate|update|list`.

use std::time::Duration;

use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{Options, TestApp, tollctl, two_instances};

fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

async fn outcome(app: &TestApp, key: &str, model: &str) -> (u16, String) {
    let response = app.chat(key, chat_body(model)).await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

/// Polls until `app` answers `want` for the key and model, failing after a second.
async fn within_a_second(app: &TestApp, key: &str, model: &str, want: u16, what: &str) {
    let start = tokio::time::Instant::now();
    loop {
        if outcome(app, key, model).await.0 == want {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(1), "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_rotated_key_keeps_its_id_and_its_old_secret_works_only_during_the_grace() {
    const GRACE_SECS: i64 = 2;
    let (a, b) = two_instances(Options::default).await;
    let (old, record) = a.issue_key(json!({})).await;
    let id = record["id"].as_str().unwrap().to_owned();
    // Both instances have the old secret cached.
    assert_eq!(outcome(&a, &old, "test-model").await.0, 200);
    assert_eq!(outcome(&b, &old, "test-model").await.0, 200);

    let (status, rotated) = a
        .admin(
            Method::POST,
            &format!("/keys/{id}/rotate"),
            Some(json!({"grace_secs": GRACE_SECS})),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let rotated_at = chrono::Utc::now();
    let new = rotated["key"].as_str().unwrap().to_owned();
    assert_eq!(rotated["id"], record["id"]);
    assert_ne!(new, old);
    assert!(new.starts_with(rotated["prefix"].as_str().unwrap()));
    let until: chrono::DateTime<chrono::Utc> = rotated["previous_valid_until"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(until > rotated_at && until <= rotated_at + chrono::TimeDelta::seconds(GRACE_SECS));

    // The new secret works at once everywhere; the old one still does, for now.
    for app in [&a, &b] {
        assert_eq!(outcome(app, &new, "test-model").await.0, 200);
        assert_eq!(outcome(app, &old, "test-model").await.0, 200);
    }
    let wait = (until - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(100)).await;
    for app in [&a, &b] {
        assert_eq!(
            outcome(app, &old, "test-model").await,
            (403, "key_expired".to_owned())
        );
        assert_eq!(outcome(app, &new, "test-model").await.0, 200);
    }

    // Attribution carried on: every request, old secret or new, is the same key's (refusals
    // at authentication are not recorded: 6 before the grace ended, 2 after).
    a.ledger_rows(8).await;
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT DISTINCT key_id FROM request_log")
        .fetch_all(&a.db)
        .await
        .unwrap();
    assert_eq!(ids, [uuid::Uuid::parse_str(&id).unwrap()]);
    // Only hashes are stored, the new one as the key's and the old one as its previous.
    let (hash, previous): (Vec<u8>, Vec<u8>) =
        sqlx::query_as("SELECT key_hash, previous_key_hash FROM virtual_keys WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&a.db)
            .await
            .unwrap();
    assert_eq!(hash, Sha256::digest(new.as_bytes()).to_vec());
    assert_eq!(previous, Sha256::digest(old.as_bytes()).to_vec());
}

#[tokio::test]
async fn rotating_again_ends_the_earlier_secret_and_revoked_keys_do_not_rotate() {
    let app = TestApp::spawn().await;
    let (first, record) = app.issue_key(json!({})).await;
    let id = record["id"].as_str().unwrap();
    let path = format!("/keys/{id}/rotate");
    let rotate = |body: Option<Value>| app.admin(Method::POST, &path, body);
    let (status, second) = rotate(None).await;
    assert_eq!(status, 200, "the body may be omitted: {second}");
    let until: chrono::DateTime<chrono::Utc> = second["previous_valid_until"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let default_grace = until - chrono::Utc::now();
    assert!(
        default_grace > chrono::TimeDelta::hours(23)
            && default_grace <= chrono::TimeDelta::hours(24)
    );
    let second = second["key"].as_str().unwrap().to_owned();
    assert_eq!(outcome(&app, &first, "test-model").await.0, 200);

    let (status, third) = rotate(Some(json!({"grace_secs": 0}))).await;
    assert_eq!(status, 200, "{third}");
    let third = third["key"].as_str().unwrap().to_owned();
    assert_eq!(outcome(&app, &third, "test-model").await.0, 200);
    assert_eq!(
        outcome(&app, &second, "test-model").await,
        (403, "key_expired".to_owned()),
        "no grace: the previous secret stops at once"
    );
    assert_eq!(
        outcome(&app, &first, "test-model").await.0,
        401,
        "two rotations ago: unknown"
    );

    for (body, want) in [
        (json!({"grace_secs": 2_592_001}), 400),
        (json!({"grace_secs": -1}), 400),
        (json!({"grace": 5}), 400),
    ] {
        let (status, answer) = rotate(Some(body.clone())).await;
        assert!(
            status == want || status == 422,
            "{body} -> {status} {answer}"
        );
    }
    let (status, _) = app
        .admin(
            Method::POST,
            "/keys/00000000-0000-0000-0000-000000000000/rotate",
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .admin(Method::POST, &format!("/keys/{id}/revoke"), None)
        .await;
    assert_eq!(status, 200);
    let (status, answer) = rotate(None).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(
        outcome(&app, &third, "test-model").await,
        (403, "key_revoked".to_owned())
    );
}

#[tokio::test]
async fn key_updates_reach_every_instance_within_a_second() {
    let (a, b) = two_instances(Options::default).await;
    let (key, record) = a
        .issue_key(json!({"allowed_models": ["test-model", "gpt-4o-mini"]}))
        .await;
    let path = format!("/keys/{}", record["id"].as_str().unwrap());
    assert_eq!(outcome(&b, &key, "gpt-4o-mini").await.0, 200);

    let (status, updated) = a
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"allowed_models": ["test-model"], "name": "worker-1"})),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["allowed_models"], json!(["test-model"]));
    assert_eq!(updated["name"], "worker-1");
    assert_eq!(updated["expires_at"], Value::Null, "untouched");
    for app in [&a, &b] {
        within_a_second(app, &key, "gpt-4o-mini", 403, "a now-disallowed model").await;
        assert_eq!(
            outcome(app, &key, "gpt-4o-mini").await,
            (403, "model_not_allowed".to_owned())
        );
        assert_eq!(outcome(app, &key, "test-model").await.0, 200);
    }

    let (status, updated) = a
        .admin(Method::PATCH, &path, Some(json!({"allowed_models": null})))
        .await;
    assert_eq!((status, &updated["allowed_models"]), (200, &Value::Null));
    assert_eq!(updated["name"], "worker-1", "untouched");
    within_a_second(&b, &key, "gpt-4o-mini", 200, "every model allowed again").await;

    let past = chrono::Utc::now() - chrono::TimeDelta::seconds(1);
    let (status, _) = a
        .admin(Method::PATCH, &path, Some(json!({"expires_at": past})))
        .await;
    assert_eq!(status, 200);
    within_a_second(&b, &key, "test-model", 403, "an expiry in the past").await;
    assert_eq!(
        outcome(&a, &key, "test-model").await,
        (403, "key_expired".to_owned())
    );
    let (status, updated) = a
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"expires_at": null, "name": null})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (&updated["expires_at"], &updated["name"]),
        (&Value::Null, &Value::Null)
    );
    within_a_second(&b, &key, "test-model", 200, "no expiry").await;

    for bad in [
        json!({"allowed_models": []}),
        json!({"name": ""}),
        json!({"expires_at": "tomorrow"}),
        json!({"models": ["a"]}),
    ] {
        let (status, answer) = a.admin(Method::PATCH, &path, Some(bad.clone())).await;
        assert!(status == 400 || status == 422, "{bad} -> {status} {answer}");
    }
    let (status, _) = a
        .admin(
            Method::PATCH,
            "/keys/00000000-0000-0000-0000-000000000000",
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn listings_show_spend_equal_to_the_ledger_and_never_a_secret() {
    let app = TestApp::spawn().await;
    let (first, record) = app.issue_key(json!({})).await;
    let team = record["team_id"].as_str().unwrap();
    let (status, issued) = app
        .admin(
            Method::POST,
            "/keys",
            Some(json!({"team": team, "experiment": "exp", "count": 2})),
        )
        .await;
    assert_eq!(status, 201);
    let secrets = [
        first,
        issued["data"][0]["key"].as_str().unwrap().to_owned(),
        issued["data"][1]["key"].as_str().unwrap().to_owned(),
    ];
    let (status, _) = app
        .admin(
            Method::PUT,
            &format!("/keys/{}/limits", record["id"].as_str().unwrap()),
            Some(json!({"rpm": 100, "budgets": [{"period": "daily", "amount_usd": "2.5"}]})),
        )
        .await;
    assert_eq!(status, 200);
    // Different amounts per key (the third key spends nothing), streaming too.
    let mut sent = 0;
    for (i, secret) in secrets.iter().take(2).enumerate() {
        for n in 0..(i + 2) {
            let mut body = chat_body("gpt-4o-mini");
            body["stream"] = json!(n % 2 == 1);
            let response = app.chat(secret, body).await;
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap();
            sent += 1;
        }
    }
    app.ledger_rows(sent).await;

    let experiment = record["experiment_id"].as_str().unwrap();
    let (status, listed) = app
        .admin(Method::GET, &format!("/keys?experiment={experiment}"), None)
        .await;
    assert_eq!(status, 200);
    let rows = listed["data"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let mut nonzero = 0;
    for row in rows {
        let id = row["id"].as_str().unwrap();
        let ledger: Option<Decimal> =
            sqlx::query_scalar("SELECT sum(cost_usd) FROM request_log WHERE key_id = $1::uuid")
                .bind(id)
                .fetch_one(&app.db)
                .await
                .unwrap();
        let spend: Decimal = row["spend_usd"].as_str().unwrap().parse().unwrap();
        assert_eq!(spend, ledger.unwrap_or_default(), "key {id}");
        if !spend.is_zero() {
            nonzero += 1;
        }
        if row["id"] == record["id"] {
            assert_eq!(row["limits"]["rpm"], 100);
            assert_eq!(row["limits"]["budgets"][0]["amount_usd"], "2.5");
        } else {
            assert_eq!(row["limits"], Value::Null);
        }
        assert!(row.get("key").is_none() && row.get("key_hash").is_none());
    }
    assert_eq!(nonzero, 2);
    let text = listed.to_string();
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()));
        assert!(!text.contains(&hex(&Sha256::digest(secret.as_bytes()))));
    }
    let (status, shown) = app
        .admin(
            Method::GET,
            &format!("/keys/{}", record["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(shown["spend_usd"], rows[0]["spend_usd"]);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn tollctl_rotates_updates_and_lists_keys_with_spend() {
    let app = TestApp::spawn().await;
    let (old, record) = app.issue_key(json!({})).await;
    let id = record["id"].as_str().unwrap();
    let team = record["team_id"].as_str().unwrap();
    assert_eq!(outcome(&app, &old, "test-model").await.0, 200);

    let env = tollctl::run(
        &app,
        &["keys", "rotate", id, "--grace", "1h", "--format", "env"],
    )
    .await;
    let new = env
        .trim_end()
        .strip_prefix("OPENAI_API_KEY=")
        .unwrap()
        .to_owned();
    assert_eq!(env.lines().count(), 1);
    assert_eq!(outcome(&app, &new, "test-model").await.0, 200);
    assert_eq!(
        outcome(&app, &old, "test-model").await.0,
        200,
        "in its grace"
    );

    let shown = tollctl::run(
        &app,
        &[
            "keys",
            "update",
            id,
            "--models",
            "gpt-4o-mini",
            "--expires-in",
            "7d",
            "--name",
            "w1",
        ],
    )
    .await;
    assert!(
        shown.contains("ALLOWED MODELS        gpt-4o-mini"),
        "{shown}"
    );
    assert_eq!(
        outcome(&app, &new, "test-model").await,
        (403, "model_not_allowed".to_owned())
    );
    tollctl::run(&app, &["keys", "update", id, "--all-models", "--no-expiry"]).await;
    assert_eq!(outcome(&app, &new, "test-model").await.0, 200);

    app.ledger_rows(5).await;
    let spend: Decimal = sqlx::query_scalar("SELECT sum(cost_usd) FROM request_log")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let table = tollctl::run(&app, &["keys", "list", "--team", team]).await;
    assert!(
        table.lines().next().unwrap().ends_with("SPEND USD"),
        "{table}"
    );
    let row = table.lines().nth(1).unwrap();
    assert!(row.contains("w1") && row.contains("any"), "{table}");
    assert_eq!(
        row.split_whitespace()
            .last()
            .unwrap()
            .parse::<Decimal>()
            .unwrap(),
        spend,
        "{table}"
    );
    assert!(!table.contains(&new) && !table.contains(&old));
}
