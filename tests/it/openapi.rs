//! The OpenAPI document against the running router: every route of `ADMIN_ROUTES` is served
//! (answers neither the router's own 404 nor 405), every other method on those paths is 405,
//! the document describes each of them and nothing else, it is served without a token, team
//! tokens are held to the routes marked for them, and every answer the server gives (success
//! or error, from every route) has a status the document lists and a body that fits the
//! schema it gives for that status: required members present, types right, no member the
//! schema does not know. So a response type that changes without the document fails here.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tollgate::admin::{ADMIN_ROUTES, Claims, Role, RouteAccess, mint};
use tollgate::config::Secret;

use crate::common::{JWT_SECRET, TestApp};

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

/// The schema checks, against one document.
struct Schemas<'a> {
    doc: &'a Value,
}

impl<'a> Schemas<'a> {
    fn resolve(&self, schema: &'a Value) -> &'a Value {
        match schema["$ref"].as_str() {
            Some(r) => {
                let name = r.strip_prefix("#/components/schemas/").unwrap();
                let target = &self.doc["components"]["schemas"][name];
                assert!(!target.is_null(), "dangling $ref {r}");
                self.resolve(target)
            }
            None => schema,
        }
    }

    /// The properties an object schema knows, its `allOf` parts' included.
    fn properties(&self, schema: &'a Value) -> Vec<(&'a str, &'a Value)> {
        let schema = self.resolve(schema);
        let mut out: Vec<(&str, &Value)> = schema["properties"]
            .as_object()
            .map(|p| p.iter().map(|(k, v)| (k.as_str(), v)).collect())
            .unwrap_or_default();
        for part in schema["allOf"].as_array().into_iter().flatten() {
            out.extend(self.properties(part));
        }
        out
    }

    fn required(&self, schema: &'a Value) -> Vec<&'a str> {
        let schema = self.resolve(schema);
        let mut out: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for part in schema["allOf"].as_array().into_iter().flatten() {
            out.extend(self.required(part));
        }
        out
    }

    fn check(&self, schema: &'a Value, value: &Value, at: &str) -> Result<(), String> {
        let schema = self.resolve(schema);
        for key in ["oneOf", "anyOf"] {
            if let Some(choices) = schema[key].as_array() {
                let errors: Vec<String> = choices
                    .iter()
                    .filter_map(|s| self.check(s, value, at).err())
                    .collect();
                if errors.len() == choices.len() {
                    return Err(format!("{at}: fits none of {key}: {}", errors.join("; ")));
                }
            }
        }
        if let Some(types) = schema.get("type") {
            let types: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            let fits = |t: &str| match t {
                "null" => value.is_null(),
                "string" => value.is_string(),
                "boolean" => value.is_boolean(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                "array" => value.is_array(),
                "object" => value.is_object(),
                _ => true,
            };
            if !types.iter().any(|t| fits(t)) {
                return Err(format!("{at}: {value} is not of type {types:?}"));
            }
        }
        if let Some(allowed) = schema["enum"].as_array()
            && !allowed.contains(value)
        {
            return Err(format!("{at}: {value} is not one of {allowed:?}"));
        }
        if let Value::Object(members) = value {
            for name in self.required(schema) {
                if !members.contains_key(name) {
                    return Err(format!("{at}: required member `{name}` is missing"));
                }
            }
            let known = self.properties(schema);
            let open = schema.get("additionalProperties").is_some() || known.is_empty();
            for (name, member) in members {
                match known.iter().find(|(k, _)| *k == name.as_str()) {
                    Some((_, property)) => self.check(property, member, &format!("{at}.{name}"))?,
                    None if open => {}
                    None => return Err(format!("{at}: member `{name}` is not in the document")),
                }
            }
        }
        if let (Value::Array(items), Some(item)) = (value, schema.get("items")) {
            for (i, member) in items.iter().enumerate() {
                self.check(item, member, &format!("{at}[{i}]"))?;
            }
        }
        Ok(())
    }

    /// An answer of `method template` checked against what the document says of its status.
    fn answer(&self, method: &str, template: &str, status: u16, body: &Value) {
        let operation = &self.doc["paths"][template][method.to_lowercase()];
        assert!(
            !operation.is_null(),
            "{method} {template} is not documented"
        );
        let response = &operation["responses"][status.to_string()];
        assert!(
            !response.is_null(),
            "{method} {template} answered {status}, which the document does not list: {body}"
        );
        let Some(schema) = response["content"]["application/json"].get("schema") else {
            return;
        };
        if let Err(e) = self.check(schema, body, "body") {
            panic!("{method} {template} {status}: {e}\n{body:#}");
        }
    }
}

async fn document(app: &TestApp) -> Value {
    let response = app
        .http
        .get(format!("{}/admin/v1/openapi.json", app.admin_url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn send(
    app: &TestApp,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app
        .http
        .request(Method::from_bytes(method.as_bytes()).unwrap(), url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Answered by a route, not by the router (its own 404 for an unknown path, 405 for a method).
fn routed(status: u16, body: &Value) -> bool {
    status != 405 && body["error"]["code"] != "unknown_route"
}

fn team_token(team: &str) -> String {
    let now = chrono::Utc::now().timestamp() as u64;
    mint(
        &Secret::new(JWT_SECRET.to_string()),
        &Claims {
            sub: "team-bot".into(),
            role: Role::Team,
            team: Some(serde_json::from_value(json!(team)).unwrap()),
            iat: now,
            exp: now + 600,
        },
    )
    .unwrap()
}

async fn ids(app: &TestApp) -> Ids {
    let (_, key) = app.issue_key(json!({})).await;
    Ids {
        team: key["team_id"].as_str().unwrap().into(),
        experiment: key["experiment_id"].as_str().unwrap().into(),
        key: key["id"].as_str().unwrap().into(),
    }
}

#[tokio::test]
async fn the_router_the_route_table_and_the_document_agree() {
    let app = TestApp::spawn().await;
    let ids = ids(&app).await;
    let doc = document(&app).await;
    let schemas = Schemas { doc: &doc };
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
            let (status, body) =
                send(&app, method, &url, Some(&app.admin_token), Some(json!({}))).await;
            match listed {
                Some(_) => {
                    assert!(routed(status, &body), "{method} {path}: {status} {body}");
                    schemas.answer(method, path, status, &body);
                }
                None => {
                    assert_eq!(status, 405, "{method} {path} is served but not listed");
                    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
                }
            }
            if listed.is_some_and(|r| r.access != RouteAccess::Public) {
                let (status, body) = send(&app, method, &url, None, None).await;
                assert_eq!(status, 401, "{method} {path} answers without a token");
                schemas.answer(method, path, status, &body);
            }
        }
    }
}

#[tokio::test]
async fn team_tokens_reach_only_the_routes_marked_for_them() {
    let app = TestApp::spawn().await;
    let ids = ids(&app).await;
    let doc = document(&app).await;
    let schemas = Schemas { doc: &doc };
    let token = team_token(&ids.team);
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
        let (status, body) = send(&app, route.method, &url, Some(&token), Some(json!({}))).await;
        schemas.answer(route.method, route.path, status, &body);
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

/// Every route's successful answer, with real data behind it (a logged request, spend, limits
/// with usage, a rotated key, a closed campaign), fits its documented schema.
#[tokio::test]
async fn real_answers_fit_the_documented_schemas() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let schemas = Schemas { doc: &doc };
    let admin =
        |method: &'static str, template: &'static str, path: String, body: Option<Value>| {
            let app = &app;
            let schemas = &schemas;
            async move {
                let url = format!("{}/admin/v1{path}", app.admin_url);
                let (status, answer) = send(app, method, &url, Some(&app.admin_token), body).await;
                assert!(status < 300, "{method} {path}: {status} {answer}");
                schemas.answer(method, &format!("/admin/v1{template}"), status, &answer);
                answer
            }
        };

    let team = admin(
        "POST",
        "/teams",
        "/teams".into(),
        Some(json!({"name": "research"})),
    )
    .await;
    let team_id = team["id"].as_str().unwrap().to_owned();
    admin(
        "POST",
        "/experiments",
        "/experiments".into(),
        Some(json!({"team": "research", "name": "mmlu", "tags": ["nightly"]})),
    )
    .await;
    let launched = admin(
        "POST",
        "/campaigns",
        "/campaigns".into(),
        Some(json!({"team": "research", "name": "gsm8k", "keys": 2,
                    "allowed_models": ["test-model"], "ends_at": "2999-01-01T00:00:00Z",
                    "limits": {"rpm": 600, "budgets": [{"period": "total", "amount_usd": "50"}]}})),
    )
    .await;
    let experiment = launched["experiment"]["id"].as_str().unwrap().to_owned();
    let secret = launched["keys"][0]["key"].as_str().unwrap().to_owned();
    let key = launched["keys"][0]["id"].as_str().unwrap().to_owned();
    let issued = admin(
        "POST",
        "/keys",
        "/keys".into(),
        Some(
            json!({"team": "research", "experiment": "mmlu", "count": 2, "name": "w",
                    "expires_at": "2999-01-01T00:00:00Z"}),
        ),
    )
    .await;
    let other_key = issued["data"][0]["id"].as_str().unwrap().to_owned();
    let response = app
        .chat(&secret, json!({"model": "test-model", "messages": []}))
        .await;
    assert_eq!(response.status(), 200);
    app.ledger_rows(1).await;
    // The rollups are written with the request log, in the same statement.
    tokio::time::sleep(Duration::from_millis(50)).await;

    let limits = json!({"rpm": 60, "max_concurrent": 4,
                        "budgets": [{"period": "daily", "amount_usd": "5"}]});
    for (scope, id) in [
        ("keys", &key),
        ("experiments", &experiment),
        ("teams", &team_id),
    ] {
        admin(
            "PUT",
            "/{scope}/{id}/limits",
            format!("/{scope}/{id}/limits"),
            Some(limits.clone()),
        )
        .await;
        let shown = admin(
            "GET",
            "/{scope}/{id}/limits",
            format!("/{scope}/{id}/limits"),
            None,
        )
        .await;
        assert!(!shown["usage"].is_null(), "{shown}");
    }
    admin(
        "DELETE",
        "/{scope}/{id}/limits",
        format!("/experiments/{experiment}/limits"),
        None,
    )
    .await;
    admin(
        "PATCH",
        "/keys/{id}",
        format!("/keys/{other_key}"),
        Some(json!({"name": null, "allowed_models": ["test-model"]})),
    )
    .await;
    admin(
        "POST",
        "/keys/{id}/rotate",
        format!("/keys/{other_key}/rotate"),
        Some(json!({"grace_secs": 60})),
    )
    .await;
    admin(
        "POST",
        "/keys/{id}/revoke",
        format!("/keys/{other_key}/revoke"),
        None,
    )
    .await;

    for (template, path) in [
        ("/teams", "/teams".to_owned()),
        ("/teams/{team}", "/teams/research".to_owned()),
        ("/experiments", "/experiments?team=research".to_owned()),
        ("/experiments/{id}", format!("/experiments/{experiment}")),
        ("/keys", "/keys?team=research".to_owned()),
        ("/keys/{id}", format!("/keys/{key}")),
        ("/keys/{id}", format!("/keys/{other_key}")),
        (
            "/spend",
            "/spend?group_by=team,experiment,key,model,provider,day,hour".to_owned(),
        ),
        ("/spend", "/spend".to_owned()),
        ("/spend/top", "/spend/top?by=key&limit=1".to_owned()),
        ("/requests", "/requests?limit=5".to_owned()),
        ("/pricing", "/pricing".to_owned()),
        ("/audit", "/audit?limit=100".to_owned()),
    ] {
        let answer = admin("GET", template, path.clone(), None).await;
        let data = &answer["data"];
        assert!(
            !data.is_array() || !data.as_array().unwrap().is_empty(),
            "{path}: nothing to check: {answer}"
        );
    }
    admin(
        "POST",
        "/pricing/quote",
        "/pricing/quote".into(),
        Some(json!({"model": "test-model", "input_tokens": 1000, "output_tokens": 10})),
    )
    .await;
    admin("POST", "/pricing/reload", "/pricing/reload".into(), None).await;
    let closed = admin(
        "POST",
        "/campaigns/{id}/close",
        "/campaigns/gsm8k/close?team=research".into(),
        None,
    )
    .await;
    assert_eq!(closed["experiment"]["state"], "closed", "{closed}");
    assert!(!closed["report"]["data"].as_array().unwrap().is_empty());
}

/// The checker itself catches what it is there for.
#[test]
fn the_schema_check_refuses_missing_extra_and_mistyped_members() {
    let doc = json!({"components": {"schemas": {
        "Key": {"type": "object", "required": ["id"],
                "properties": {"id": {"type": "string"}, "note": {"type": ["string", "null"]}}},
        "Listed": {"allOf": [{"$ref": "#/components/schemas/Key"},
                             {"type": "object", "required": ["spend"],
                              "properties": {"spend": {"type": "string"}}}]}
    }}});
    let schemas = Schemas { doc: &doc };
    let listed = json!({"$ref": "#/components/schemas/Listed"});
    assert!(
        schemas
            .check(
                &listed,
                &json!({"id": "k", "spend": "1", "note": null}),
                "b"
            )
            .is_ok()
    );
    for bad in [
        json!({"spend": "1"}),
        json!({"id": "k", "spend": 1}),
        json!({"id": "k", "spend": "1", "secret": "x"}),
        json!({"id": "k", "spend": "1", "note": 3}),
    ] {
        assert!(schemas.check(&listed, &bad, "b").is_err(), "{bad}");
    }
}
