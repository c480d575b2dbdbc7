//! `GET /admin/v1/openapi.json`: the admin API's OpenAPI document, generated from the
//! `#[utoipa::path]` annotations on the handlers and the `ToSchema` types they exchange.
//!
//! It is served without a token: it describes the API's surface (the same as
//! docs/admin-api.md, which is public with the source), never data, and clients and
//! code generators need it before they hold a token. Every other route stays behind the auth
//! layer; the route table in `super::ADMIN_ROUTES` marks this one as the only public one.
//!
//! Most answers are built with `json!`, so the wrappers below describe their shape for the
//! document only; the tests compare them with real answers.

use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::error::AdminError;
use crate::store::{AuditEntry, Experiment, KeyRecord, RequestRow, Team};

/// Every error: `{"error": {...}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// For people.
    message: String,
    /// Stable: `authentication_error`, `permission_error`, `invalid_request_error`, `api_error`.
    #[serde(rename = "type")]
    kind: String,
    /// Stable: `invalid_token`, `forbidden`, `not_found`, `conflict`, `invalid_request`, ...
    code: String,
    /// The offending request field, when there is one.
    param: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TeamList {
    data: Vec<Team>,
}

#[derive(Serialize, ToSchema)]
pub struct ExperimentList {
    data: Vec<Experiment>,
}

/// A key as listed and shown: the record, its spend so far and its own limits.
#[derive(Serialize, ToSchema)]
pub struct ListedKeyDoc {
    #[serde(flatten)]
    record: KeyRecord,
    /// USD, a decimal string.
    spend_usd: String,
    /// The key's own limits, as in `PUT .../limits`; `null` when it has none.
    #[schema(value_type = Option<Object>)]
    limits: Option<Value>,
}

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    data: Vec<ListedKeyDoc>,
}

/// A key with its secret: in the answer that creates it only.
#[derive(Serialize, ToSchema)]
pub struct IssuedKeyDoc {
    #[serde(flatten)]
    record: KeyRecord,
    /// The secret (`tg-...`), shown once.
    key: String,
}

#[derive(Serialize, ToSchema)]
pub struct IssuedKeyList {
    data: Vec<IssuedKeyDoc>,
}

/// A scope's limits with current usage next to them.
#[derive(Serialize, ToSchema)]
pub struct LimitsView {
    /// `team`, `experiment` or `key`.
    scope: String,
    id: uuid::Uuid,
    /// `rpm`, `tpm`, `max_concurrent`, `budgets` (`[{period, amount_usd}]`, amounts as decimal
    /// strings), `budget_mode`, `on_redis_failure`; `null` when none are set.
    #[schema(value_type = Option<Object>)]
    limits: Option<Value>,
    /// Current usage of each limit; `null` when none are set or Redis cannot be read.
    #[schema(value_type = Option<Object>)]
    usage: Option<Value>,
}

/// A spend report. Rows carry the columns of their groups, then the totals; money is a
/// decimal string (`cost_usd`).
#[derive(Serialize, ToSchema)]
pub struct SpendReport {
    group_by: Vec<String>,
    from: Option<String>,
    to: Option<String>,
    #[schema(value_type = Vec<Object>)]
    data: Vec<Value>,
    #[schema(value_type = Object)]
    total: Value,
    /// `spend/top` only.
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct RequestPageDoc {
    data: Vec<RequestRow>,
    /// The cursor of the next page; `null` on the last.
    next: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    data: Vec<AuditEntry>,
    /// Pass as `before` for the next page; `null` on the last.
    next: Option<String>,
}

/// Price entries with their history; rates are decimal strings in USD per 1M tokens.
#[derive(Serialize, ToSchema)]
pub struct PriceList {
    #[schema(value_type = Vec<Object>)]
    data: Vec<Value>,
}

/// A quote: the entry and rates that applied and the cost of each part (decimal strings).
#[derive(Serialize, ToSchema)]
pub struct QuoteDoc {
    model: String,
    at: String,
    #[schema(value_type = Object)]
    usage: Value,
    #[schema(value_type = Object)]
    entry: Value,
    #[schema(value_type = Option<Object>)]
    tier: Option<Value>,
    #[schema(value_type = Object)]
    rates: Value,
    #[schema(value_type = Object)]
    billed_tokens: Value,
    #[schema(value_type = Object)]
    cost: Value,
}

struct BearerJwt;

impl Modify for BearerJwt {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = Http::builder()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "An admin JWT: role `admin`, or role `team` with the team's id in `team`.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("jwt", SecurityScheme::Http(scheme));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tollgate admin API",
        description = "The control plane of Tollgate: teams, experiments, virtual keys, limits, spend, the request log, prices and the audit log. See docs/admin-api.md."
    ),
    paths(
        document,
        super::teams::create_team,
        super::teams::list_teams,
        super::teams::show_team,
        super::teams::create_experiment,
        super::teams::list_experiments,
        super::teams::show_experiment,
        super::keys::issue_keys,
        super::keys::list_keys,
        super::keys::show_key,
        super::keys::revoke_key,
        super::key_changes::update_key,
        super::key_changes::rotate_key,
        super::campaigns::launch,
        super::campaigns::close,
        super::limits::put_limits,
        super::limits::get_limits,
        super::limits::delete_limits,
        super::spend::report,
        super::spend::top,
        super::requests::list,
        super::pricing::list,
        super::pricing::quote,
        super::pricing_reload::reload,
        super::audit::list,
    ),
    modifiers(&BearerJwt),
    security(("jwt" = [])),
)]
pub struct AdminApiDoc;

/// The document itself; no token needed.
#[utoipa::path(
    get,
    path = "/admin/v1/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "this OpenAPI document", content_type = "application/json"))
)]
pub async fn document() -> Result<Json<Value>, AdminError> {
    serde_json::to_value(AdminApiDoc::openapi())
        .map(Json)
        .map_err(|_| AdminError::Internal)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::admin::ADMIN_ROUTES;

    /// (method, path) of every operation the document describes.
    fn documented() -> BTreeSet<(String, String)> {
        let doc = serde_json::to_value(AdminApiDoc::openapi()).unwrap();
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
        out
    }

    #[test]
    fn the_document_describes_exactly_the_route_table() {
        let table: BTreeSet<(String, String)> = ADMIN_ROUTES
            .iter()
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        assert_eq!(table.len(), ADMIN_ROUTES.len(), "a route is listed twice");
        assert_eq!(documented(), table);
    }

    /// The router lives in mod.rs: every path it routes must be in `ADMIN_ROUTES`, so a route
    /// added to the router alone fails here (the integration test checks the methods).
    #[test]
    fn every_routed_path_is_in_the_route_table() {
        let source = include_str!("mod.rs");
        let routed: Vec<&str> = source
            .split(".route(")
            .skip(1)
            .filter_map(|rest| rest.trim_start().strip_prefix('"'))
            .filter_map(|rest| rest.split('"').next())
            .collect();
        assert!(routed.len() >= 10, "the router was not found in mod.rs");
        for path in routed {
            assert!(
                ADMIN_ROUTES.iter().any(|r| r.path == path),
                "{path} is routed but not in ADMIN_ROUTES (add it there and document it)"
            );
        }
    }

    #[test]
    fn money_is_a_string_and_the_document_needs_no_token() {
        let doc = serde_json::to_value(AdminApiDoc::openapi()).unwrap();
        let cost = &doc["components"]["schemas"]["RequestRow"]["properties"]["cost_usd"];
        assert_eq!(cost["type"], "string", "{cost}");
        let me = &doc["paths"]["/admin/v1/openapi.json"]["get"];
        assert_eq!(me["security"], serde_json::json!([{}]));
        assert_eq!(doc["security"], serde_json::json!([{"jwt": []}]));
    }
}
