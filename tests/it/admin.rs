//! The admin API and `tollctl` against a running gateway.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tollgate::admin::{Claims, Role, mint};
use tollgate::config::Secret;

use crate::common::{JWT_SECRET, Options, TestApp, tollctl, two_instances};

fn token(secret: &str, role: Role, exp_offset: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: "t".into(),
        role,
        team: None,
        iat: now as u64,
        exp: (now + exp_offset) as u64,
    };
    mint(&Secret::new(secret.to_string()), &claims).unwrap()
}

#[tokio::test]
async fn admin_routes_require_an_admin_token() {
    let app = TestApp::spawn().await;
    let url = format!("{}/admin/v1/teams", app.admin_url);
    let status = |request: reqwest::RequestBuilder| async move {
        request.send().await.unwrap().status().as_u16()
    };
    assert_eq!(status(app.http.get(&url)).await, 401);
    assert_eq!(status(app.http.get(&url).bearer_auth("garbage")).await, 401);
    let forged = token("another-secret-another-secret-another", Role::Admin, 3600);
    assert_eq!(status(app.http.get(&url).bearer_auth(forged)).await, 401);
    let expired = token(JWT_SECRET, Role::Admin, -3600);
    assert_eq!(status(app.http.get(&url).bearer_auth(expired)).await, 401);
    let team = token(JWT_SECRET, Role::Team, 3600);
    assert_eq!(status(app.http.get(&url).bearer_auth(team)).await, 403);
    assert_eq!(
        status(app.http.get(&url).bearer_auth(&app.admin_token)).await,
        200
    );
    // The admin API is not on the data-plane listener.
    let on_data_plane = app
        .http
        .get(format!("{}/admin/v1/teams", app.data_url))
        .bearer_auth(&app.admin_token);
    assert_eq!(status(on_data_plane).await, 404);
}

/// HS256 over arbitrary claims, to build every kind of wrong token.
fn raw_token(secret: &str, claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn a_refused_token_is_told_what_failed_and_where_the_key_comes_from() {
    let app = TestApp::spawn_with(Options {
        admin_extra: "jwt_issuer = \"tollgate-test\"".into(),
        ..Options::default()
    })
    .await;
    let now = chrono::Utc::now().timestamp();
    let good = json!({"sub": "t", "role": "admin", "iss": "tollgate-test", "exp": now + 600});
    let with = |change: Value| {
        let mut claims = good.clone();
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    };
    let forger = "another-secret-another-secret-another";
    let cases: Vec<(String, &[&str])> = vec![
        ("garbage".into(), &["malformed", "three base64url parts"]),
        ("a.b.c".into(), &["malformed"]),
        (
            raw_token(forger, good.clone()),
            &[
                "signature does not match",
                "TOLLGATE_ADMIN_JWT_SECRET",
                "admin.jwt_secret",
            ],
        ),
        (
            raw_token(JWT_SECRET, with(json!({"exp": now - 3600}))),
            &["has expired at 20", "clock skew"],
        ),
        (
            raw_token(JWT_SECRET, with(json!({"iss": "someone-else"}))),
            &["issuer (`iss`)", "\"tollgate-test\"", "admin.jwt_issuer"],
        ),
        (
            raw_token(JWT_SECRET, with(json!({"iss": null}))),
            &["no `iss` claim"],
        ),
        (
            raw_token(JWT_SECRET, with(json!({"role": "root"}))),
            &["claims are not valid", "`role`"],
        ),
    ];
    for (token, words) in cases {
        let response = app
            .http
            .get(format!("{}/admin/v1/teams", app.admin_url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        for word in words {
            assert!(message.contains(word), "{message} should say {word}");
        }
        for secret in [JWT_SECRET, forger, token.as_str()] {
            assert!(
                !message.contains(secret),
                "{message} shows a secret or the token"
            );
        }
    }
    let response = app
        .http
        .get(format!("{}/admin/v1/teams", app.admin_url))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`Bearer <admin JWT>`"),
        "{body}"
    );
    let accepted = raw_token(JWT_SECRET, good);
    let status = app
        .http
        .get(format!("{}/admin/v1/teams", app.admin_url))
        .header("authorization", format!("bearer {accepted}"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200, "the scheme is case-insensitive");
}

#[tokio::test]
async fn the_data_plane_points_admin_requests_to_the_admin_listener() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .get(format!("{}/admin/v1/teams", app.data_url))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("data-plane listener")
            && message.contains("admin_listen")
            && message.contains("127.0.0.1:8081"),
        "{message}"
    );
}

#[tokio::test]
async fn teams_experiments_and_keys() {
    let app = TestApp::spawn().await;
    let (status, team) = app
        .admin(Method::POST, "/teams", Some(json!({"name": "evals"})))
        .await;
    assert_eq!(status, 201);
    let (status, error) = app
        .admin(Method::POST, "/teams", Some(json!({"name": "evals"})))
        .await;
    assert_eq!(status, 409, "{error}");
    let (status, _) = app
        .admin(
            Method::POST,
            "/teams",
            Some(json!({"name": "x", "budget": 1})),
        )
        .await;
    assert_eq!(status, 422, "unknown fields are refused");
    let (status, shown) = app.admin(Method::GET, "/teams/evals", None).await;
    assert_eq!((status, &shown["id"]), (200, &team["id"]));

    let (status, _) = app
        .admin(
            Method::POST,
            "/experiments",
            Some(json!({"team": "nope", "name": "e"})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, experiment) = app
        .admin(
            Method::POST,
            "/experiments",
            Some(json!({"team": "evals", "name": "mmlu", "tags": ["nightly"]})),
        )
        .await;
    assert_eq!((status, &experiment["tags"]), (201, &json!(["nightly"])));

    let (status, _) = app
        .admin(
            Method::POST,
            "/keys",
            Some(json!({"team": "evals", "experiment": "mmlu", "count": 0})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, issued) = app
        .admin(
            Method::POST,
            "/keys",
            Some(json!({"team": "evals", "experiment": "mmlu", "count": 3})),
        )
        .await;
    assert_eq!(status, 201);
    let keys: Vec<&Value> = issued["data"].as_array().unwrap().iter().collect();
    assert_eq!(keys.len(), 3);
    let secrets: std::collections::HashSet<&str> =
        keys.iter().map(|k| k["key"].as_str().unwrap()).collect();
    assert_eq!(secrets.len(), 3);
    for k in &keys {
        let secret = k["key"].as_str().unwrap();
        assert!(secret.starts_with(k["prefix"].as_str().unwrap()));
        assert_eq!(k["experiment_id"], experiment["id"]);
    }

    // Only the hash is stored.
    let secret = keys[0]["key"].as_str().unwrap();
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT key_hash FROM virtual_keys WHERE id = $1::uuid")
            .bind(keys[0]["id"].as_str().unwrap())
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(stored, Sha256::digest(secret.as_bytes()).to_vec());

    // Listings never show secrets.
    let (status, listed) = app
        .admin(Method::GET, "/keys?team=evals&experiment=mmlu", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed["data"].as_array().unwrap().len(), 3);
    assert!(!listed.to_string().contains(secret));
    assert!(listed["data"][0].get("key").is_none());
}

#[tokio::test]
async fn revocation_on_one_instance_stops_the_key_on_another_within_a_second() {
    let (a, b) = two_instances(Options::default).await;
    let (key, record) = a.issue_key(json!({})).await;
    let body = json!({"model": "test-model", "messages": []});
    // B has the key cached now.
    assert_eq!(b.chat(&key, body.clone()).await.status(), 200);
    let (status, _) = a
        .admin(
            Method::POST,
            &format!("/keys/{}/revoke", record["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let revoked_at = tokio::time::Instant::now();
    loop {
        if b.chat(&key, body.clone()).await.status() == 403 {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "B still accepts a revoked key"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `tollctl` that can also mint tokens with the gateway's secret (`token mint`).
fn run(app: &TestApp, args: &[&str]) -> String {
    let out = tollctl::command(&app.admin_url, &app.admin_token)
        .env("TOLLGATE_ADMIN_JWT_SECRET", JWT_SECRET)
        .args(args)
        .output()
        .unwrap();
    tollctl::stdout_of(args, out)
}

#[tokio::test]
async fn tollctl_bootstraps_a_campaign_end_to_end() {
    let app = TestApp::spawn().await;
    let minted = run(&app, &["token", "mint", "--role", "admin"]);
    let status = app
        .http
        .get(format!("{}/admin/v1/teams", app.admin_url))
        .bearer_auth(minted.trim())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200, "a minted token is accepted");

    let admin_url = app.admin_url.clone();
    let token = app.admin_token.clone();
    let out = tokio::task::spawn_blocking({
        let app_admin = (admin_url, token);
        move || {
            let cmd = |args: &[&str]| tollctl::run_blocking(&app_admin.0, &app_admin.1, args);
            cmd(&["teams", "create", "research"]);
            cmd(&[
                "campaigns",
                "create",
                "--team",
                "research",
                "gsm8k",
                "--ends-in",
                "7d",
            ]);
            let keys = cmd(&[
                "keys",
                "issue",
                "--team",
                "research",
                "--experiment",
                "gsm8k",
                "--count",
                "2",
                "--format",
                "json",
            ]);
            let table = cmd(&["keys", "list", "--team", "research"]);
            (keys, table)
        }
    })
    .await
    .unwrap();
    let (keys, table) = out;
    let keys: Value = serde_json::from_str(&keys).unwrap();
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 2);
    let secret = keys[0]["key"].as_str().unwrap();
    assert!(table.contains(keys[0]["prefix"].as_str().unwrap()) && !table.contains(secret));
    let response = app
        .chat(secret, json!({"model": "test-model", "messages": []}))
        .await;
    assert_eq!(response.status(), 200);
}

/// The whole error object, checked to have exactly the four members of the API's shape.
fn error_of(status: u16, body: &Value) -> (u16, String, String, Option<String>) {
    let error = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("not the API's error shape: {status} {body}"));
    let mut members: Vec<&str> = error.keys().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(members, ["code", "message", "param", "type"], "{body}");
    (
        status,
        error["code"].as_str().unwrap().to_owned(),
        error["message"].as_str().unwrap().to_owned(),
        error["param"].as_str().map(str::to_owned),
    )
}

async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, String, String, Option<String>) {
    let mut request = app
        .http
        .request(method, format!("{}/admin/v1{path}", app.admin_url))
        .bearer_auth(&app.admin_token)
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    error_of(status, &body)
}

#[tokio::test]
async fn every_kind_of_bad_input_gets_the_json_error_and_its_documented_status() {
    let app = TestApp::spawn().await;
    let (_, key) = app.issue_key(json!({})).await;
    let key = key["id"].as_str().unwrap();
    let json = Some("application/json");

    // Not JSON, or not sent as JSON: 400 `invalid_json`.
    for (path, method) in [
        ("/teams".to_owned(), Method::POST),
        ("/campaigns".to_owned(), Method::POST),
        (format!("/keys/{key}/limits"), Method::PUT),
        (format!("/keys/{key}"), Method::PATCH),
        (format!("/keys/{key}/rotate"), Method::POST),
    ] {
        let (status, code, message, _) = raw(&app, method.clone(), &path, json, "{,").await;
        assert_eq!((status, code.as_str()), (400, "invalid_json"), "{path}");
        assert!(message.contains("not valid JSON"), "{message}");
        let (status, code, message, _) =
            raw(&app, method.clone(), &path, Some("text/plain"), "{}").await;
        assert_eq!((status, code.as_str()), (400, "invalid_json"), "{path}");
        assert!(
            message.contains("text/plain") && message.contains("application/json"),
            "{message}"
        );
    }
    let (status, _, message, _) = raw(&app, Method::POST, "/teams", None, "{}").await;
    assert_eq!(status, 400);
    assert!(message.contains("no `Content-Type`"), "{message}");

    // JSON of the wrong shape: 422 `invalid_body`, naming the field.
    for (method, path, body, param, words) in [
        (
            Method::POST,
            "/teams".to_owned(),
            json!({}),
            "name",
            "missing field `name`",
        ),
        (
            Method::POST,
            "/teams".to_owned(),
            json!({"name": 5}),
            "name",
            "expected a string",
        ),
        (
            Method::POST,
            "/teams".to_owned(),
            json!({"name": "x", "budget": 1}),
            "budget",
            "unknown field `budget`",
        ),
        (
            Method::POST,
            "/campaigns".to_owned(),
            json!({"team": "t", "name": "n", "keys": 2, "limits": {"rpm": "fast"}}),
            "limits.rpm",
            "expected u32",
        ),
        (
            Method::PUT,
            format!("/keys/{key}/limits"),
            json!({"budgets": [{"period": "total"}]}),
            "budgets[0].amount_usd",
            "missing field `amount_usd`",
        ),
        (
            Method::POST,
            "/keys".to_owned(),
            json!({"team": "t", "count": -1}),
            "count",
            "expected u32",
        ),
        (
            Method::PATCH,
            format!("/keys/{key}"),
            json!("x"),
            "",
            "expected struct",
        ),
        (
            Method::POST,
            "/pricing/quote".to_owned(),
            json!({"model": "test-model", "input_tokens": "10", "output_tokens": 1}),
            "input_tokens",
            "expected u64",
        ),
    ] {
        let (status, code, message, got) = raw(&app, method, &path, json, body.to_string()).await;
        assert_eq!(
            (status, code.as_str()),
            (422, "invalid_body"),
            "{path} {body}"
        );
        assert_eq!(
            got.as_deref().unwrap_or(""),
            param,
            "{path} {body}: {message}"
        );
        assert!(message.contains(words), "{path} {body}: {message}");
    }

    // Valid JSON but an invalid value stays a 400 naming the field.
    let (status, code, _, param) = raw(
        &app,
        Method::POST,
        "/keys",
        json,
        json!({"team": "t", "count": 0}).to_string(),
    )
    .await;
    assert_eq!(
        (status, code.as_str(), param.as_deref()),
        (400, "invalid_request", Some("count"))
    );

    // A rotation's body may be left out entirely.
    let response = app
        .http
        .post(format!("{}/admin/v1/keys/{key}/rotate", app.admin_url))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Query strings and paths.
    for path in [
        "/keys?tem=research",
        "/experiments?bogus=1",
        "/spend?grup_by=team",
    ] {
        let (status, code, message, _) = raw(&app, Method::GET, path, None, "").await;
        assert_eq!(
            (status, code.as_str()),
            (400, "invalid_request"),
            "{path}: {message}"
        );
        assert!(
            message.contains("tem") || message.contains("bogus") || message.contains("grup_by")
        );
    }
    let (status, _, message, param) = raw(&app, Method::GET, "/keys/not-a-key", None, "").await;
    assert_eq!((status, param.as_deref()), (400, Some("key")), "{message}");

    // Too big: 413; no such route: 404; no such method: 405. All in the same shape.
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(300 * 1024));
    let (status, code, _, _) = raw(&app, Method::POST, "/teams", json, big).await;
    assert_eq!((status, code.as_str()), (413, "body_too_large"));
    let (status, code, message, _) = raw(&app, Method::GET, "/nope", None, "").await;
    assert_eq!((status, code.as_str()), (404, "unknown_route"));
    assert!(message.contains("/admin/v1/nope"), "{message}");
    let (status, code, message, _) = raw(&app, Method::DELETE, "/teams", None, "").await;
    assert_eq!((status, code.as_str()), (405, "method_not_allowed"));
    assert!(
        message.contains("GET, POST") || message.contains("POST, GET"),
        "{message}"
    );
}

/// `tollctl` with the app's URL and admin token; returns (success, stdout, stderr).
async fn tollctl_output(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let (url, token) = (app.admin_url.clone(), app.admin_token.clone());
    tollctl_at(&url, &token, args).await
}

async fn tollctl_at(url: &str, token: &str, args: &[&str]) -> (bool, String, String) {
    let mut command = tollctl::command(url, token);
    command.args(args);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn an_experiment_named_without_its_team_gets_one_answer_everywhere() {
    let app = TestApp::spawn().await;
    let (_, key) = app.issue_key(json!({})).await;
    let team = key["team_id"].as_str().unwrap().to_owned();

    // The API: the same 400 `team_required` on every route that names an experiment.
    let mut messages = std::collections::BTreeSet::new();
    for (method, path) in [
        (Method::GET, "/experiments/exp"),
        (Method::GET, "/experiments/exp/limits"),
        (Method::PUT, "/experiments/exp/limits"),
        (Method::POST, "/campaigns/exp/close"),
        (Method::GET, "/keys?experiment=exp"),
        (Method::GET, "/spend?experiment=exp"),
        (Method::GET, "/requests?experiment=exp"),
    ] {
        let (status, body) = app.admin(method.clone(), path, Some(json!({}))).await;
        let (status, code, message, param) = error_of(status, &body);
        assert_eq!(
            (status, code.as_str(), param.as_deref()),
            (400, "team_required", Some("experiment")),
            "{method} {path}"
        );
        messages.insert(message);
    }
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages.iter().all(|m| m.contains("`exp`")));

    // tollctl: one message, in the words of the command typed, with what to add.
    for args in [
        vec!["limits", "show", "experiment", "exp"],
        vec!["limits", "set", "experiment", "exp", "--rpm", "5"],
        vec!["campaigns", "close", "exp"],
        vec!["experiments", "show", "exp"],
        vec!["keys", "list", "--experiment", "exp"],
        vec!["spend", "report", "--experiment", "exp"],
        vec!["requests", "tail", "--experiment", "exp"],
    ] {
        let (ok, _, stderr) = tollctl_output(&app, &args).await;
        assert!(!ok, "{args:?}");
        let typed = format!("`tollctl {} --team <team>`", args.join(" "));
        assert_eq!(
            stderr.trim_end(),
            format!(
                "error: \"exp\" is an experiment name, and experiment names are unique only within a team: \
                 add its team, e.g. {typed} (or give the experiment's id: `tollctl experiments list` shows them)"
            ),
            "{args:?}"
        );
        assert!(!stderr.contains(&app.admin_token));
    }
    // And with the team they work.
    for args in [
        vec!["limits", "show", "experiment", "exp", "--team", &team],
        vec!["experiments", "show", "exp", "--team", &team],
        vec!["keys", "list", "--experiment", "exp", "--team", &team],
    ] {
        let (ok, _, stderr) = tollctl_output(&app, &args).await;
        assert!(ok, "{args:?}: {stderr}");
    }
    let (ok, _, stderr) = tollctl_output(&app, &["keys", "show", "worker-3"]).await;
    assert!(!ok);
    assert!(
        stderr.starts_with("error: \"worker-3\" is not a key id"),
        "{stderr}"
    );
}

#[tokio::test]
async fn tollctl_says_what_went_wrong_in_its_own_words() {
    let app = TestApp::spawn().await;
    // Usage lines name the command typed.
    let (ok, _, stderr) = tollctl_output(&app, &["campaigns", "close"]).await;
    assert!(
        !ok && stderr.contains("Usage: tollctl campaigns close"),
        "{stderr}"
    );
    let (ok, _, stderr) = tollctl_output(&app, &["campaigns", "launch", "--help"]).await;
    assert!(ok && !stderr.contains("experiments"));
    let (_, help, _) = tollctl_output(&app, &["campaigns", "launch", "--help"]).await;
    assert!(help.contains("Usage: tollctl campaigns launch"), "{help}");

    // Negative numbers and a zero budget say what is allowed.
    for (args, words) in [
        (
            vec!["campaigns", "launch", "--team", "t", "n", "--budget", "-5"],
            "a budget must be a positive amount in USD, like 50 or 0.25",
        ),
        (
            vec!["limits", "set", "key", "k", "--rpm", "-3"],
            "must be a whole number of requests per minute, at least 1",
        ),
        (
            vec!["campaigns", "launch", "--team", "t", "n", "--budget", "0"],
            "a budget of 0 would refuse every request",
        ),
    ] {
        let (ok, _, stderr) = tollctl_output(&app, &args).await;
        assert!(!ok && stderr.contains(words), "{args:?}: {stderr}");
        assert!(!stderr.contains("tip:"), "{stderr}");
    }

    // `--group-by` is `--by`.
    let (ok, by, _) = tollctl_output(&app, &["spend", "report", "--by", "team"]).await;
    let (ok2, group_by, stderr) =
        tollctl_output(&app, &["spend", "report", "--group-by", "team"]).await;
    assert!(ok && ok2, "{stderr}");
    assert_eq!(by, group_by);

    // A bad token: what failed and where the secret comes from, never the token.
    let forged = token("another-secret-another-secret-another", Role::Admin, 3600);
    let (ok, _, stderr) = tollctl_at(&app.admin_url, &forged, &["teams", "list"]).await;
    assert!(!ok);
    assert!(
        stderr.contains("signature does not match") && stderr.contains("TOLLGATE_ADMIN_JWT_SECRET"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&forged) && !stderr.contains(JWT_SECRET),
        "{stderr}"
    );

    // Pointed at the data plane: a hint at the admin listener.
    let (ok, _, stderr) = tollctl_at(&app.data_url, &app.admin_token, &["teams", "list"]).await;
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "{} is the gateway's data-plane listener",
            app.data_url
        )) && stderr.contains("TOLLGATE_ADMIN_URL")
            && stderr.contains("http://127.0.0.1:8081"),
        "{stderr}"
    );
}

#[tokio::test]
async fn ended_and_closed_campaigns_show_their_state_and_their_keys_theirs() {
    let app = TestApp::spawn().await;
    tollctl::run(&app, &["teams", "create", "research"]).await;
    for name in ["ran-out", "closed", "running"] {
        tollctl::run(
            &app,
            &[
                "campaigns",
                "launch",
                "--team",
                "research",
                name,
                "--keys",
                "1",
                "--ends-in",
                "7d",
            ],
        )
        .await;
    }
    // `ran-out` reaches its end; `closed` is closed.
    sqlx::query("UPDATE experiments SET ends_at = '2026-01-02T03:00:00Z' WHERE name = 'ran-out'")
        .execute(&app.db)
        .await
        .unwrap();
    tollctl::run(
        &app,
        &["campaigns", "close", "closed", "--team", "research"],
    )
    .await;

    let table = tollctl::run(&app, &["campaigns", "list", "--team", "research"]).await;
    let state_of = |name: &str| {
        table
            .lines()
            .find(|l| l.contains(&format!("  {name}  ")))
            .map(|l| l.split_whitespace().nth(2).unwrap_or_default().to_owned())
    };
    assert!(
        table.starts_with("ID") && table.contains("STATE"),
        "{table}"
    );
    assert_eq!(state_of("ran-out").as_deref(), Some("ended"), "{table}");
    assert_eq!(state_of("closed").as_deref(), Some("closed"), "{table}");
    assert_eq!(state_of("running").as_deref(), Some("running"), "{table}");

    let keys = tollctl::run(&app, &["keys", "list", "--team", "research"]).await;
    let line_of = |name: &str| {
        keys.lines()
            .find(|l| l.contains(&format!("  {name}  ")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        line_of("ran-out").contains("ended 2026-01-02 03:00 UTC"),
        "{keys}"
    );
    assert!(line_of("closed").contains("revoked 20"), "{keys}");
    assert!(line_of("running").contains("active until 20"), "{keys}");
    let csv = tollctl::run(
        &app,
        &["keys", "list", "--team", "research", "--format", "csv"],
    )
    .await;
    assert!(csv.contains(",ended,"), "{csv}");
}

/// `requests tail --follow` prints requests in the order they ended, with columns that stay
/// put: a long stream started first is printed after the short requests that ended before it.
#[tokio::test]
async fn tail_follow_prints_in_the_order_requests_ended_in_fixed_columns() {
    use std::io::{BufRead, BufReader};

    let app = TestApp::spawn_with(Options {
        mock: mock_provider::MockConfig {
            chunks: 10,
            chunk_delay_ms: 300,
            ..mock_provider::MockConfig::default()
        },
        ..Options::default()
    })
    .await;
    let (key, _) = app.issue_key(json!({})).await;
    let mut child = tollctl::command(&app.admin_url, &app.admin_token)
        .args(["requests", "tail", "--follow"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Read on a thread of its own: the gateway answers on this test's runtime, which must not
    // be blocked.
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::channel::<String>(100);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines_tx.blocking_send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });

    // The stream starts first and takes about 3 s; three short requests end meanwhile.
    let slow = {
        let (http, url, key) = (app.http.clone(), app.data_url.clone(), key.clone());
        tokio::spawn(async move {
            let response = http
                .post(format!("{url}/v1/chat/completions"))
                .bearer_auth(key)
                .json(&json!({"model": "test-model", "stream": true, "messages": []}))
                .send()
                .await
                .unwrap();
            response.bytes().await.unwrap();
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let response = app
            .chat(
                &key,
                json!({"model": "test-model", "messages": [], "max_tokens": 5}),
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    slow.await.unwrap();

    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while lines.len() < 5 && std::time::Instant::now() < deadline {
        if let Ok(Some(line)) =
            tokio::time::timeout(Duration::from_millis(200), lines_rx.recv()).await
        {
            lines.push(line);
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (_, now, stderr) = tollctl_output(&app, &["requests", "tail"]).await;
    assert_eq!(lines.len(), 5, "{lines:#?}\n{now}\n{stderr}");
    let header = &lines[0];
    assert!(header.starts_with("ENDED"), "{header}");
    let ended: Vec<&str> = lines[1..].iter().map(|l| &l[..23]).collect();
    let mut sorted = ended.clone();
    sorted.sort_unstable();
    assert_eq!(ended, sorted, "printed out of order:\n{}", lines.join("\n"));
    // The stream (the longest MS) ended last.
    let ms = |line: &str| -> u64 {
        line.split_whitespace()
            .last()
            .unwrap()
            .replace(',', "")
            .parse()
            .unwrap()
    };
    assert!(ms(&lines[4]) >= 2500, "{}", lines.join("\n"));
    assert!(
        lines[1..4].iter().all(|l| ms(l) < 2500),
        "{}",
        lines.join("\n")
    );
    let column = |line: &str, at: usize| line.chars().nth(at);
    let status_at = header.find("STATUS").unwrap();
    for line in &lines[1..] {
        assert_eq!(column(line, status_at), Some('2'), "{line}\n{header}");
        assert_eq!(
            column(line, status_at.saturating_sub(1)),
            Some(' '),
            "{line}"
        );
    }
}

/// The licence Cargo.toml declares is the one in the repository.
#[test]
fn the_declared_licence_is_in_the_repository() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("license = \"Apache-2.0\""));
    let licence = std::fs::read_to_string(root.join("LICENSE")).unwrap();
    assert!(licence.contains("Apache License") && licence.contains("Version 2.0, January 2004"));
    assert!(licence.contains("END OF TERMS AND CONDITIONS"));
}

/// Code and docs say what they mean in place, rather than pointing at a specification that is
/// not in the repository.
#[test]
fn nothing_points_readers_to_a_file_that_is_not_there() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(!root.join("product.md").exists() && !root.join("docs/product.md").exists());
    let mut stack = vec![
        root.join("src"),
        root.join("docs"),
        root.join("admin-cli/src"),
        root.join("README.md"),
    ];
    let needle = ["product", ".md"].concat();
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if let Ok(text) = std::fs::read_to_string(&path) {
            assert!(
                !text.contains(&needle),
                "{} mentions {needle}",
                path.display()
            );
        }
    }
}
