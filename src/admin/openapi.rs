//! `GET /admin/v1/openapi.json`: the admin API's OpenAPI document, generated from the
//! `#[utoipa::path]` annotations on the handlers and the `ToSchema` derives on the very types
//! they accept and return (there are no types written for the document only), so a field
//! added to an answer is in the document too. tests/it/openapi.rs checks real answers against it.
//!
//! It is served without a token: it describes the API's surface (the same as
//! docs/admin-api.md, which is public with the source), never data, and clients and
//! code generators need it before they hold a token. Every other route stays behind the auth
//! layer; the route table in `super::ADMIN_ROUTES` marks this one as the only public one.

use axum::Json;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;

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

/// The errors every route of a kind can answer, added to each operation so that a handler
/// lists only its own: 401 and 403 (a team token without its `team` claim) wherever a token
/// is needed, 400 wherever there is a query string or path to get wrong, and 400, 413 and 422
/// wherever there is a body.
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                add_common_errors(operation);
            }
        }
    }
}

fn add_common_errors(operation: &mut Operation) {
    // `security` is set on an operation only to lift the document-wide requirement.
    let secured = operation.security.is_none();
    let has_params = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let has_body = operation.request_body.is_some();
    let mut add = |status: &str, description: &str| {
        let error = ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert(RefOr::T(error));
    };
    if secured {
        add(
            "401",
            "no token, or one that is malformed, badly signed, expired or from another issuer",
        );
        add(
            "403",
            "the token's role may not do this (or a team token lacks its `team` claim)",
        );
    }
    if has_params || has_body {
        add(
            "400",
            "a parameter or field that is not valid, or a body that is not JSON",
        );
    }
    if has_body {
        add("413", "a body over the admin API's size limit");
        add(
            "422",
            "JSON of the wrong shape: a field missing, unknown or of the wrong type (named in `param`)",
        );
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
        super::alerts::create,
        super::alerts::list,
        super::alerts::remove,
        super::alerts::test,
        super::alerts::history,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerJwt, &CommonErrors),
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
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(AdminApiDoc::openapi())
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

    #[test]
    fn every_operation_with_a_body_documents_the_body_errors() {
        let doc = serde_json::to_value(AdminApiDoc::openapi()).unwrap();
        let post = &doc["paths"]["/admin/v1/teams"]["post"]["responses"];
        for status in ["400", "401", "403", "413", "422"] {
            assert!(post.get(status).is_some(), "POST /teams lacks {status}");
        }
        let public = &doc["paths"]["/admin/v1/openapi.json"]["get"]["responses"];
        assert!(public.get("401").is_none());
    }
}
