//! `POST /admin/v1/pricing/reload`: re-reads the pricing directory into the live table, as
//! `SIGHUP` does. A bad file leaves the table in force unchanged and answers 400 naming the
//! file and the field.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AdminState;
use super::audit::{self, Change};
use super::caller::Caller;
use super::error::AdminError;
use super::openapi::ErrorBody;

/// Admin only.
#[utoipa::path(
    post,
    path = "/admin/v1/pricing/reload",
    tag = "pricing",
    responses(
        (status = 200, description = "`{\"entries\": N, \"dir\": \"pricing\"}`"),
        (status = 400, body = ErrorBody, description = "a bad file; the previous table stays"),
        (status = 403, body = ErrorBody),
    )
)]
pub async fn reload(
    State(state): State<AdminState>,
    caller: Caller,
) -> Result<Json<Value>, AdminError> {
    caller.require_admin()?;
    let entries = crate::pricing::reload(&state.pricing_dir, &state.prices).map_err(|e| {
        AdminError::BadRequest {
            message: format!("price table not reloaded, the previous one stays in force: {e}"),
            param: None,
        }
    })?;
    let answer = json!({
        "entries": entries,
        "dir": state.pricing_dir.display().to_string(),
    });
    audit::record(
        &state,
        &caller,
        Change::new("pricing.reload", "pricing", "table").after(&answer),
    )
    .await;
    Ok(Json(answer))
}
