//! Who may do what on the admin API, against the real gateway: team tokens see and change only
//! their own team (another team's ids and names are 404s that echo nothing), never its team
//! limits or more than its budget; RS256, ES256 and JWKS tokens are checked for key, issuer,
//! audience and expiry; and every change lands in the audit log without a secret.

use std::path::PathBuf;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};
use tollgate::admin::{Claims, Role, mint};
use tollgate::config::Secret;

use crate::common::{JWT_SECRET, Options, TestApp};

const OTHER: &str = "bravo-confidential-name";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An HS256 team token for `team` (a uuid string).
fn team_token(team: &str, sub: &str) -> String {
    let claims = Claims {
        sub: sub.into(),
        role: Role::Team,
        team: Some(serde_json::from_value(json!(team)).unwrap()),
        iat: now() as u64,
        exp: (now() + 3600) as u64,
    };
    mint(&Secret::new(JWT_SECRET.to_string()), &claims).unwrap()
}

async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app
        .http
        .request(method, format!("{}/admin/v1{path}", app.admin_url))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

struct Team {
    id: String,
    experiment: String,
    key: String,
    secret: String,
}

/// A team with an experiment and one key, created by the admin.
async fn team(app: &TestApp, name: &str) -> Team {
    let (status, team) = app
        .admin(Method::POST, "/teams", Some(json!({"name": name})))
        .await;
    assert_eq!(status, 201, "{team}");
    let (status, experiment) = app
        .admin(
            Method::POST,
            "/experiments",
            Some(json!({"team": name, "name": format!("{name}-exp")})),
        )
        .await;
    assert_eq!(status, 201, "{experiment}");
    let (status, keys) = app
        .admin(
            Method::POST,
            "/keys",
            Some(json!({"team": name, "experiment": experiment["id"]})),
        )
        .await;
    assert_eq!(status, 201, "{keys}");
    Team {
        id: team["id"].as_str().unwrap().into(),
        experiment: experiment["id"].as_str().unwrap().into(),
        key: keys["data"][0]["id"].as_str().unwrap().into(),
        secret: keys["data"][0]["key"].as_str().unwrap().into(),
    }
}

fn ids(list: &Value, field: &str) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[field].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_team_token_sees_only_its_own_team_and_probes_of_others_are_opaque_404s() {
    let app = TestApp::spawn().await;
    let alpha = team(&app, "alpha").await;
    let bravo = team(&app, OTHER).await;
    for t in [&alpha, &bravo] {
        let response = app
            .chat(
                &t.secret,
                json!({"model": "test-model", "messages": [{"role": "user", "content": "hi"}]}),
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    app.ledger_rows(2).await;
    let token = team_token(&alpha.id, "alice");

    // Listings hold only the own team.
    let (status, teams) = call(&app, &token, Method::GET, "/teams", None).await;
    assert_eq!((status, ids(&teams, "id")), (200, vec![alpha.id.clone()]));
    let (_, experiments) = call(&app, &token, Method::GET, "/experiments", None).await;
    assert_eq!(ids(&experiments, "id"), vec![alpha.experiment.clone()]);
    let (_, keys) = call(&app, &token, Method::GET, "/keys", None).await;
    assert_eq!(ids(&keys, "id"), vec![alpha.key.clone()]);
    let (_, requests) = call(&app, &token, Method::GET, "/requests", None).await;
    assert_eq!(ids(&requests, "team_id"), vec![alpha.id.clone()]);
    let (status, spend) = call(&app, &token, Method::GET, "/spend?group_by=team", None).await;
    assert_eq!(status, 200, "{spend}");
    assert_eq!(ids(&spend, "team_id"), vec![alpha.id.clone()]);
    assert_eq!(spend["total"]["requests"], 1);
    let (status, top) = call(&app, &token, Method::GET, "/spend/top?by=key", None).await;
    assert_eq!(
        (status, ids(&top, "key_id")),
        (200, vec![alpha.key.clone()])
    );

    // Its own things by id and name.
    for path in [
        "/teams/alpha".to_string(),
        format!("/teams/{}", alpha.id),
        format!("/experiments/{}", alpha.experiment),
        format!("/keys/{}", alpha.key),
        format!("/teams/{}/limits", alpha.id),
        format!("/experiments/{}/limits", alpha.experiment),
        format!("/keys/{}/limits", alpha.key),
        "/experiments?team=alpha".to_string(),
        "/keys?experiment=alpha-exp".to_string(),
        format!("/spend?experiment={}", alpha.experiment),
        format!("/requests?key={}", alpha.key),
    ] {
        let (status, body) = call(&app, &token, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
    }

    // Another team's ids and names answer exactly like things that do not exist.
    let missing = uuid::Uuid::new_v4().to_string();
    let probes = [
        (format!("/teams/{OTHER}"), "/teams/no-such-team".to_string()),
        (format!("/teams/{}", bravo.id), format!("/teams/{missing}")),
        (
            format!("/experiments/{}", bravo.experiment),
            format!("/experiments/{missing}"),
        ),
        (format!("/keys/{}", bravo.key), format!("/keys/{missing}")),
        (
            format!("/teams/{OTHER}/limits"),
            "/teams/no-such-team/limits".to_string(),
        ),
        (
            format!("/experiments/{}/limits", bravo.experiment),
            format!("/experiments/{missing}/limits"),
        ),
        (
            format!("/keys/{}/limits", bravo.key),
            format!("/keys/{missing}/limits"),
        ),
        (
            format!("/experiments?team={OTHER}"),
            "/experiments?team=no-such-team".to_string(),
        ),
        (
            format!("/keys?team={}", bravo.id),
            format!("/keys?team={missing}"),
        ),
        (
            format!("/keys?experiment={}", bravo.experiment),
            format!("/keys?experiment={missing}"),
        ),
        (
            format!("/spend?team={OTHER}"),
            "/spend?team=no-such-team".to_string(),
        ),
        (
            format!("/spend?key={}", bravo.key),
            format!("/spend?key={missing}"),
        ),
        (
            format!("/spend?experiment={}", bravo.experiment),
            format!("/spend?experiment={missing}"),
        ),
        (
            format!("/spend/top?by=key&team={}", bravo.id),
            format!("/spend/top?by=key&team={missing}"),
        ),
        (
            format!("/requests?team={OTHER}"),
            "/requests?team=no-such-team".to_string(),
        ),
        (
            format!("/requests?key={}", bravo.key),
            format!("/requests?key={missing}"),
        ),
        (
            format!("/audit?team={}", bravo.id),
            format!("/audit?team={missing}"),
        ),
    ];
    for (foreign, absent) in &probes {
        let (status, body) = call(&app, &token, Method::GET, foreign, None).await;
        assert_eq!(status, 404, "{foreign}: {body}");
        assert!(!body.to_string().contains(OTHER), "{foreign} leaks: {body}");
        assert!(!body.to_string().contains(&bravo.id), "{foreign}: {body}");
        let (_, absent_body) = call(&app, &token, Method::GET, absent, None).await;
        assert_eq!(body, absent_body, "{foreign} differs from {absent}");
    }

    // Changes aimed at another team are the same 404s, and change nothing.
    let writes = [
        (
            Method::POST,
            "/experiments".to_string(),
            json!({"team": OTHER, "name": "sneaky"}),
        ),
        (Method::POST, "/keys".to_string(), json!({"team": bravo.id})),
        (
            Method::POST,
            "/keys".to_string(),
            json!({"team": "alpha", "experiment": bravo.experiment}),
        ),
        (
            Method::POST,
            format!("/keys/{}/revoke", bravo.key),
            json!({}),
        ),
        (
            Method::PUT,
            format!("/keys/{}/limits", bravo.key),
            json!({"rpm": 1}),
        ),
        (
            Method::DELETE,
            format!("/experiments/{}/limits", bravo.experiment),
            json!({}),
        ),
    ];
    for (method, path, body) in writes {
        let (status, answer) = call(&app, &token, method.clone(), &path, Some(body)).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
        assert!(!answer.to_string().contains(OTHER), "{answer}");
    }
    let (_, key) = app
        .admin(Method::GET, &format!("/keys/{}", bravo.key), None)
        .await;
    assert_eq!(key["revoked_at"], Value::Null);
    let (_, limits) = app
        .admin(Method::GET, &format!("/keys/{}/limits", bravo.key), None)
        .await;
    assert_eq!(limits["limits"], Value::Null);

    // Within its own team a team token works.
    let (status, created) = call(
        &app,
        &token,
        Method::POST,
        "/experiments",
        Some(json!({"team": "alpha", "name": "second"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (status, issued) = call(
        &app,
        &token,
        Method::POST,
        "/keys",
        Some(json!({"team": alpha.id, "experiment": "second", "count": 2})),
    )
    .await;
    assert_eq!(status, 201, "{issued}");
    let (status, _) = call(
        &app,
        &token,
        Method::POST,
        &format!("/keys/{}/revoke", alpha.key),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200);
    // The price table is the gateway's, not a team's: readable.
    let (status, _) = call(&app, &token, Method::GET, "/pricing", None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn team_tokens_cannot_do_global_things_or_exceed_their_team() {
    let app = TestApp::spawn().await;
    let alpha = team(&app, "alpha").await;
    let bravo = team(&app, OTHER).await;
    let token = team_token(&alpha.id, "alice");

    // Global operations and team-scope limits are admin-only: 403 whatever the target.
    let forbidden = [
        (Method::POST, "/teams".to_string(), json!({"name": "new"})),
        (Method::POST, "/pricing/reload".to_string(), json!({})),
        (
            Method::PUT,
            format!("/teams/{}/limits", alpha.id),
            json!({"rpm": 5}),
        ),
        (
            Method::PUT,
            format!("/teams/{OTHER}/limits"),
            json!({"rpm": 5}),
        ),
        (
            Method::PUT,
            "/teams/no-such-team/limits".to_string(),
            json!({"rpm": 5}),
        ),
        (
            Method::DELETE,
            format!("/teams/{}/limits", alpha.id),
            json!({}),
        ),
    ];
    let mut bodies = Vec::new();
    for (method, path, body) in forbidden {
        let (status, answer) = call(&app, &token, method.clone(), &path, Some(body)).await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
        bodies.push(answer);
    }
    // Team-scope refusals are the same for the own team, another one and none at all.
    assert_eq!(bodies[2], bodies[3]);
    assert_eq!(bodies[3], bodies[4]);
    let (_, teams) = app.admin(Method::GET, "/teams", None).await;
    assert_eq!(teams["data"].as_array().unwrap().len(), 2);

    // A team token without its team in the claims is refused.
    let claims = Claims {
        sub: "x".into(),
        role: Role::Team,
        team: None,
        iat: now() as u64,
        exp: (now() + 60) as u64,
    };
    let teamless = mint(&Secret::new(JWT_SECRET.to_string()), &claims).unwrap();
    let (status, _) = call(&app, &teamless, Method::GET, "/teams", None).await;
    assert_eq!(status, 403);

    // Budgets: never above the team's for the same period.
    let (status, set) = app
        .admin(
            Method::PUT,
            &format!("/teams/{}/limits", alpha.id),
            Some(json!({"rpm": 100, "budgets": [{"period": "monthly", "amount_usd": "10.00"}]})),
        )
        .await;
    assert_eq!(status, 200, "{set}");
    let experiment_limits = format!("/experiments/{}/limits", alpha.experiment);
    let key_limits = format!("/keys/{}/limits", alpha.key);
    let over = json!({"budgets": [{"period": "monthly", "amount_usd": "10.01"}]});
    let (status, answer) = call(
        &app,
        &token,
        Method::PUT,
        &experiment_limits,
        Some(over.clone()),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("monthly"),
        "{answer}"
    );
    let (status, _) = call(
        &app,
        &token,
        Method::PUT,
        &key_limits,
        Some(json!({"rpm": 101})),
    )
    .await;
    assert_eq!(status, 403);
    for (path, body) in [
        (
            &experiment_limits,
            json!({"budgets": [{"period": "monthly", "amount_usd": "10"}]}),
        ),
        (
            &key_limits,
            json!({"rpm": 50, "budgets": [{"period": "monthly", "amount_usd": "2.5"}, {"period": "daily", "amount_usd": "99"}]}),
        ),
    ] {
        let (status, answer) = call(&app, &token, Method::PUT, path, Some(body)).await;
        assert_eq!(status, 200, "{path}: {answer}");
    }
    let (status, _) = call(&app, &token, Method::DELETE, &key_limits, None).await;
    assert_eq!(status, 200);
    // An admin is not capped.
    let (status, _) = app.admin(Method::PUT, &experiment_limits, Some(over)).await;
    assert_eq!(status, 200);
    // Bravo's token cannot touch alpha's scopes either.
    let bravo_token = team_token(&bravo.id, "bob");
    let (status, _) = call_get(&app, &bravo_token, &key_limits).await;
    assert_eq!(status, 404);
}

async fn call_get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    call(app, token, Method::GET, path, None).await
}

#[tokio::test]
async fn every_change_is_in_the_audit_log_with_actor_before_and_after_and_no_secret() {
    let app = TestApp::spawn().await;
    let alpha = team(&app, "alpha").await;
    let bravo = team(&app, OTHER).await;
    let token = team_token(&alpha.id, "alice@team");
    let (status, issued) = call(
        &app,
        &token,
        Method::POST,
        "/keys",
        Some(json!({"team": "alpha", "count": 2, "name": "worker"})),
    )
    .await;
    assert_eq!(status, 201);
    let secrets: Vec<String> = issued["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap().to_string())
        .collect();
    let limits = json!({"rpm": 7, "budgets": [{"period": "daily", "amount_usd": "1.5"}]});
    let key_limits = format!("/keys/{}/limits", alpha.key);
    assert_eq!(
        call(&app, &token, Method::PUT, &key_limits, Some(limits))
            .await
            .0,
        200
    );
    assert_eq!(
        call(&app, &token, Method::DELETE, &key_limits, None)
            .await
            .0,
        200
    );
    let revoke = format!("/keys/{}/revoke", alpha.key);
    assert_eq!(
        call(&app, &token, Method::POST, &revoke, Some(json!({})))
            .await
            .0,
        200
    );
    // Revoking again changes nothing, so records nothing.
    assert_eq!(
        call(&app, &token, Method::POST, &revoke, Some(json!({})))
            .await
            .0,
        200
    );
    let (status, _) = app
        .admin(
            Method::PUT,
            &format!("/teams/{}/limits", bravo.id),
            Some(json!({"tpm": 1000})),
        )
        .await;
    assert_eq!(status, 200);

    let (status, all) = app.admin(Method::GET, "/audit?limit=1000", None).await;
    assert_eq!(status, 200, "{all}");
    let entries = all["data"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // Newest first.
    assert_eq!(
        actions,
        [
            "limits.set",
            "key.revoke",
            "limits.clear",
            "limits.set",
            "key.issue",
            "key.issue",
            "key.issue",
            "experiment.create",
            "team.create",
            "key.issue",
            "experiment.create",
            "team.create",
        ]
    );
    let set = &entries[3];
    assert_eq!(
        (
            &set["actor"],
            &set["role"],
            &set["team_id"],
            &set["target_kind"],
            &set["target_id"]
        ),
        (
            &json!("alice@team"),
            &json!("team"),
            &json!(alpha.id),
            &json!("key"),
            &json!(alpha.key)
        )
    );
    assert_eq!(set["before"], Value::Null);
    assert_eq!(set["after"]["rpm"], 7);
    assert_eq!(set["after"]["budgets"][0]["amount_usd"], "1.5");
    let clear = &entries[2];
    assert_eq!(
        (&clear["before"]["rpm"], &clear["after"]),
        (&json!(7), &Value::Null)
    );
    let revoked = &entries[1];
    assert_eq!(revoked["before"]["revoked_at"], Value::Null);
    assert!(revoked["after"]["revoked_at"].is_string());
    let created = entries.last().unwrap();
    assert_eq!(
        (&created["actor"], &created["role"]),
        (&json!("test"), &json!("admin"))
    );
    assert_eq!(created["after"]["name"], "alpha");
    let issued_entry = &entries[4];
    assert!(
        issued_entry["after"]["prefix"]
            .as_str()
            .unwrap()
            .starts_with("tg-")
    );

    // No secret anywhere: not in the API's answer, not in the table.
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT concat_ws(' ', actor, target_id, before::text, after::text) FROM audit_log",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    for secret in secrets.iter().chain([&alpha.secret, &bravo.secret]) {
        assert!(!all.to_string().contains(secret.as_str()));
        assert!(stored.iter().all(|row| !row.contains(secret.as_str())));
        assert!(
            !all.to_string().contains(&secret[11..]),
            "a secret's tail leaked"
        );
    }

    // Filters and paging.
    let (_, by_alice) = app
        .admin(Method::GET, "/audit?actor=alice@team", None)
        .await;
    assert_eq!(by_alice["data"].as_array().unwrap().len(), 5);
    let (_, issues) = app
        .admin(Method::GET, "/audit?action=key.issue", None)
        .await;
    assert_eq!(issues["data"].as_array().unwrap().len(), 4);
    let (_, key_actions) = app.admin(Method::GET, "/audit?action=key.*", None).await;
    assert_eq!(key_actions["data"].as_array().unwrap().len(), 5);
    let (_, on_key) = app
        .admin(Method::GET, &format!("/audit?target={}", alpha.key), None)
        .await;
    assert_eq!(on_key["data"].as_array().unwrap().len(), 4);
    let (status, _) = app.admin(Method::GET, "/audit?before=zz", None).await;
    assert_eq!(status, 400);
    let (_, none_later) = app.admin(Method::GET, "/audit?from=2999-01-01", None).await;
    assert_eq!(none_later["data"], json!([]));
    let mut seen = Vec::new();
    let mut path = "/audit?limit=5".to_string();
    loop {
        let (status, page) = app.admin(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(ids_i64(&page));
        match page["next"].as_str() {
            Some(next) => path = format!("/audit?limit=5&before={next}"),
            None => break,
        }
    }
    let all_ids = ids_i64(&all);
    assert_eq!(seen, all_ids);

    // A team token reads its own team's entries only.
    let (status, own) = call_get(&app, &token, "/audit?limit=1000").await;
    assert_eq!(status, 200);
    let own = own["data"].as_array().unwrap();
    assert_eq!(own.len(), 8);
    assert!(own.iter().all(|e| e["team_id"] == json!(alpha.id)));
    assert!(!Value::Array(own.clone()).to_string().contains(OTHER));
}

fn ids_i64(page: &Value) -> Vec<i64> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect()
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwt")
        .join(name)
}

#[derive(serde::Serialize)]
struct ExternalClaims<'a> {
    sub: &'a str,
    role: &'a str,
    iss: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

fn signed(
    algorithm: Algorithm,
    private: &str,
    kid: Option<&str>,
    claims: &ExternalClaims,
) -> String {
    let pem = std::fs::read(fixture(private)).unwrap();
    let key = match algorithm {
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem).unwrap(),
        _ => EncodingKey::from_rsa_pem(&pem).unwrap(),
    };
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

const ISSUER: &str = "https://idp.example.test";
const AUDIENCE: &str = "tollgate-admin";

fn claims(exp_offset: i64) -> ExternalClaims<'static> {
    ExternalClaims {
        sub: "ops@example.test",
        role: "admin",
        iss: ISSUER,
        aud: AUDIENCE,
        iat: now(),
        exp: now() + exp_offset,
    }
}

async fn status_with(app: &TestApp, token: &str) -> u16 {
    call_get(app, token, "/teams").await.0
}

/// Accepted with the configured key; refused with another key, another issuer or audience,
/// or past the leeway (and accepted within it).
async fn check_public_key(algorithm: Algorithm, name: &str) {
    let app = TestApp::spawn_with(Options {
        admin_extra: format!(
            "jwt_algorithm = \"{alg:?}\"\njwt_public_key_file = \"{public}\"\njwt_issuer = \"{ISSUER}\"\njwt_audience = \"{AUDIENCE}\"\njwt_leeway_secs = 30",
            alg = algorithm,
            public = fixture(&format!("test-only-{name}-public.pem")).display(),
        ),
        ..Options::default()
    })
    .await;
    let private = format!("test-only-{name}-private.pem");
    let other = format!("test-only-{name}-other-private.pem");
    let good = signed(algorithm, &private, None, &claims(3600));
    assert_eq!(
        status_with(&app, &good).await,
        200,
        "{name}: the configured key"
    );
    // A `kid` does not matter with a single configured key.
    let with_kid = signed(algorithm, &private, Some("anything"), &claims(3600));
    assert_eq!(status_with(&app, &with_kid).await, 200);
    let wrong_key = signed(algorithm, &other, None, &claims(3600));
    assert_eq!(
        status_with(&app, &wrong_key).await,
        401,
        "{name}: another key"
    );
    let mut c = claims(3600);
    c.iss = "https://evil.example.test";
    assert_eq!(
        status_with(&app, &signed(algorithm, &private, None, &c)).await,
        401
    );
    let mut c = claims(3600);
    c.aud = "someone-else";
    assert_eq!(
        status_with(&app, &signed(algorithm, &private, None, &c)).await,
        401
    );
    let within_leeway = signed(algorithm, &private, None, &claims(-10));
    assert_eq!(
        status_with(&app, &within_leeway).await,
        200,
        "{name}: 10 s late"
    );
    let expired = signed(algorithm, &private, None, &claims(-120));
    let (status, body) = call_get(&app, &expired, "/teams").await;
    assert_eq!(status, 401, "{name}: 2 min late");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    // The configured secret no longer signs tokens: HS256 is refused outright.
    assert_eq!(status_with(&app, &app.admin_token).await, 401);
}

#[tokio::test]
async fn rs256_tokens_are_checked_against_the_configured_public_key() {
    check_public_key(Algorithm::RS256, "rs256").await;
}

#[tokio::test]
async fn es256_tokens_are_checked_against_the_configured_public_key() {
    check_public_key(Algorithm::ES256, "es256").await;
}

#[tokio::test]
async fn jwks_keys_are_picked_by_kid() {
    let app = TestApp::spawn_with(Options {
        admin_extra: format!(
            "jwks_file = \"{}\"\njwt_audience = \"{AUDIENCE}\"",
            fixture("test-only-jwks.json").display()
        ),
        ..Options::default()
    })
    .await;
    let rsa = "test-only-rs256-private.pem";
    let ec = "test-only-es256-private.pem";
    let ok = claims(3600);
    assert_eq!(
        status_with(&app, &signed(Algorithm::RS256, rsa, Some("test-rsa"), &ok)).await,
        200
    );
    assert_eq!(
        status_with(&app, &signed(Algorithm::ES256, ec, Some("test-ec"), &ok)).await,
        200
    );
    // The key named must be the one that signed, with its own algorithm.
    assert_eq!(
        status_with(&app, &signed(Algorithm::ES256, ec, Some("test-rsa"), &ok)).await,
        401
    );
    assert_eq!(
        status_with(
            &app,
            &signed(
                Algorithm::RS256,
                "test-only-rs256-other-private.pem",
                Some("test-rsa"),
                &ok
            )
        )
        .await,
        401
    );
    let (status, body) = call_get(
        &app,
        &signed(Algorithm::RS256, rsa, Some("rotated-away"), &ok),
        "/teams",
    )
    .await;
    assert_eq!(status, 401);
    assert!(body["error"]["message"].as_str().unwrap().contains("kid"));
    assert_eq!(
        status_with(&app, &signed(Algorithm::RS256, rsa, None, &ok)).await,
        401
    );
    // No issuer configured: any `iss` passes; the audience is still checked.
    let mut c = claims(3600);
    c.iss = "anyone";
    assert_eq!(
        status_with(&app, &signed(Algorithm::ES256, ec, Some("test-ec"), &c)).await,
        200
    );
    c.aud = "elsewhere";
    assert_eq!(
        status_with(&app, &signed(Algorithm::ES256, ec, Some("test-ec"), &c)).await,
        401
    );
}

/// The audit log's inserts fail (a trigger in this test's own database refuses them): every
/// change must then fail as a whole, leaving nothing behind, and the answer is a 500.
#[tokio::test]
async fn a_change_whose_audit_entry_cannot_be_written_is_not_made() {
    let pricing = std::env::temp_dir().join(format!(
        "tollgate-pricing-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&pricing).unwrap();
    std::fs::copy(
        crate::common::fixture_pricing_dir().join("test.toml"),
        pricing.join("test.toml"),
    )
    .unwrap();
    let app = TestApp::spawn_with(Options {
        pricing_dir: Some(pricing.clone()),
        ..Options::default()
    })
    .await;
    let alpha = team(&app, "alpha").await;
    let entries_before: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let snapshot = |table: &'static str| {
        let db = app.db.clone();
        async move {
            let rows: Vec<String> = sqlx::query_scalar(&format!(
                "SELECT row_to_json(t)::text FROM {table} t ORDER BY 1"
            ))
            .fetch_all(&db)
            .await
            .unwrap();
            rows
        }
    };
    let tables = [
        "teams",
        "experiments",
        "virtual_keys",
        "scope_limits",
        "scope_budgets",
    ];
    let mut before = Vec::new();
    for table in tables {
        before.push(snapshot(table).await);
    }

    sqlx::query(
        "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'audit log unavailable'; END $$",
    )
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log \
         FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit()",
    )
    .execute(&app.db)
    .await
    .unwrap();
    std::fs::write(
        pricing.join("new.toml"),
        "provider = \"new\"\n[[models]]\nname = \"brand-new\"\neffective_from = \"2020-01-01\"\ninput = \"1\"\noutput = \"2\"\n",
    )
    .unwrap();

    let key = &alpha.key;
    let experiment = &alpha.experiment;
    let changes: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/teams".into(),
            Some(json!({"name": "bravo"})),
        ),
        (
            Method::POST,
            "/experiments".into(),
            Some(json!({"team": "alpha", "name": "second"})),
        ),
        (
            Method::POST,
            "/keys".into(),
            Some(json!({"team": "alpha", "count": 3})),
        ),
        (
            Method::POST,
            "/campaigns".into(),
            Some(json!({"team": "alpha", "name": "gsm8k", "keys": 2,
                        "limits": {"rpm": 5, "budgets": [{"period": "total", "amount_usd": "1"}]}})),
        ),
        (Method::POST, format!("/keys/{key}/revoke"), None),
        (Method::POST, format!("/keys/{key}/rotate"), Some(json!({}))),
        (
            Method::PATCH,
            format!("/keys/{key}"),
            Some(json!({"name": "renamed", "allowed_models": ["test-model"]})),
        ),
        (
            Method::PUT,
            format!("/keys/{key}/limits"),
            Some(json!({"rpm": 1})),
        ),
        (
            Method::PUT,
            format!("/teams/{}/limits", alpha.id),
            Some(json!({"budgets": [{"period": "daily", "amount_usd": "3"}]})),
        ),
        (Method::POST, format!("/campaigns/{experiment}/close"), None),
        (Method::POST, "/pricing/reload".into(), None),
    ];
    for (method, path, body) in changes {
        let (status, answer) = app.admin(method.clone(), &path, body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (500, Some("internal_error")),
            "{method} {path}: {answer}"
        );
    }

    for (table, rows) in tables.iter().zip(&before) {
        assert_eq!(&snapshot(table).await, rows, "{table} changed");
    }
    let entries_after: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(entries_after, entries_before);
    // The price table in force is the old one, and the key still works with its old secret.
    let (status, _) = app
        .admin(Method::GET, "/pricing?model=brand-new", None)
        .await;
    assert_eq!(status, 404);
    let response = app
        .chat(
            &alpha.secret,
            json!({"model": "test-model", "messages": []}),
        )
        .await;
    assert_eq!(response.status(), 200);

    // Once entries can be written again, the same changes go through.
    sqlx::query("DROP TRIGGER refuse_audit ON audit_log")
        .execute(&app.db)
        .await
        .unwrap();
    let (status, _) = app
        .admin(Method::POST, format!("/keys/{key}/revoke").as_str(), None)
        .await;
    assert_eq!(status, 200);
    let (_, page) = app
        .admin(Method::GET, &format!("/audit?target={key}"), None)
        .await;
    assert_eq!(page["data"][0]["action"], "key.revoke", "{page}");
    let _ = std::fs::remove_dir_all(&pricing);
}
