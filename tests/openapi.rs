//! The OpenAPI document against the running router: every route of `ADMIN_ROUTES` is served
//! (answers neither the router's bare 404 nor 405), every other method on those paths is 405,
//! the document describes each of them and nothing else, it is served without a token, and
//! team tokens are held to the routes marked for them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use common::{JWT_SECRET, TestApp};
use reqwest::Method;
use serde_json::{Value, json};
use tollgate::admin::{ADMIN_ROUTES, Claims, Role, RouteAccess, mint};
use tollgate::config::Secret;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

struct Ids {
    team: String,
    experiment: String,
    key: String,
}

/// A concrete URL for a route template, using real objects where the path names one.
fn concrete(path: &str, ids: &Ids) -> String {
    let id = if path.contains("{scope}") || path.starts_with("/admin/v1/teams/") {
        &ids.team
    } else if path.starts_with("/admin/v1/keys/") {
        &ids.key
    } else {
        &ids.experiment
    };
    path.replace("{scope}", "teams")
        .replace("{team}", &ids.team)
        .replace("{id}", id)
}

async fn send(app: &TestApp, method: &str, url: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = app
        .http
        .request(Method::from_bytes(method.as_bytes()).unwrap(), url)
        .json(&json!({}));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Our handlers' 404s carry the error object; the router's own (no such route) does not.
fn routed(status: u16, body: &Value) -> bool {
    status != 405 && !(status == 404 && body["error"]["code"].is_null())
}

#[tokio::test]
async fn the_router_the_route_table_and_the_document_agree() {
    let app = TestApp::spawn().await;
    let (_, key) = app.issue_key(json!({})).await;
    let ids = Ids {
        team: key["team_id"].as_str().unwrap().into(),
        experiment: key["experiment_id"].as_str().unwrap().into(),
        key: key["id"].as_str().unwrap().into(),
    };

    // The document needs no token and lists exactly the table.
    let response = app
        .http
        .get(format!("{}/admin/v1/openapi.json", app.admin_url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let table: BTreeSet<(String, String)> = ADMIN_ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    for route in &table {
        assert!(documented.contains(route), "{route:?} is not documented");
    }
    for route in &documented {
        assert!(
            table.contains(route),
            "{route:?} is documented but not in ADMIN_ROUTES"
        );
    }

    let paths: BTreeSet<&str> = ADMIN_ROUTES.iter().map(|r| r.path).collect();
    for path in paths {
        let url = format!("{}{}", app.admin_url, concrete(path, &ids));
        for method in METHODS {
            let listed = ADMIN_ROUTES
                .iter()
                .find(|r| r.path == path && r.method == method);
            let (status, body) = send(&app, method, &url, Some(&app.admin_token)).await;
            match listed {
                Some(_) => assert!(routed(status, &body), "{method} {path}: {status} {body}"),
                None => assert_eq!(status, 405, "{method} {path} is served but not listed"),
            }
            if listed.is_some_and(|r| r.access != RouteAccess::Public) {
                let (status, _) = send(&app, method, &url, None).await;
                assert_eq!(status, 401, "{method} {path} answers without a token");
            }
        }
    }
}

#[tokio::test]
async fn team_tokens_reach_only_the_routes_marked_for_them() {
    let app = TestApp::spawn().await;
    let (_, key) = app.issue_key(json!({})).await;
    let ids = Ids {
        team: key["team_id"].as_str().unwrap().into(),
        experiment: key["experiment_id"].as_str().unwrap().into(),
        key: key["id"].as_str().unwrap().into(),
    };
    let now = chrono::Utc::now().timestamp() as u64;
    let token = mint(
        &Secret::new(JWT_SECRET.to_string()),
        &Claims {
            sub: "team-bot".into(),
            role: Role::Team,
            team: Some(serde_json::from_value(json!(ids.team)).unwrap()),
            iat: now,
            exp: now + 600,
        },
    )
    .unwrap();
    for route in ADMIN_ROUTES {
        // `keys` rather than `teams` for limits: a team's own limits are admin-only.
        let url = format!(
            "{}{}",
            app.admin_url,
            concrete(route.path, &ids).replace(
                &format!("/teams/{}/limits", ids.team),
                &format!("/keys/{}/limits", ids.key)
            )
        );
        let (status, body) = send(&app, route.method, &url, Some(&token)).await;
        match route.access {
            RouteAccess::Admin => assert_eq!(
                (status, body["error"]["message"].as_str()),
                (403, Some("this route needs a token with role `admin`")),
                "{} {}",
                route.method,
                route.path
            ),
            RouteAccess::Team | RouteAccess::Public => assert!(
                status != 403 && routed(status, &body),
                "{} {}: {status} {body}",
                route.method,
                route.path
            ),
        }
    }
}
