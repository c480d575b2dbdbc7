//! `POST /admin/v1/pricing/reload`: re-reads the pricing directory into the live table, as
//! `SIGHUP` does. A bad file leaves the table in force unchanged and answers 400 naming the
//! file and the field.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::AdminState;
use super::audit::{self, Change};
use super::caller::Caller;
use super::error::{AdminError, ErrorBody};
use crate::pricing::PriceTable;

/// The table now in force.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Reloaded {
    /// Entries, history included.
    entries: usize,
    /// The directory read (`pricing.dir`).
    dir: String,
}

/// Admin only.
#[utoipa::path(
    post,
    path = "/admin/v1/pricing/reload",
    tag = "pricing",
    responses(
        (status = 200, body = Reloaded),
        (status = 400, body = ErrorBody, description = "a bad file; the previous table stays"),
        (status = 403, body = ErrorBody),
    )
)]
pub async fn reload(
    State(state): State<AdminState>,
    caller: Caller,
) -> Result<Json<Reloaded>, AdminError> {
    caller.require_admin()?;
    let table = PriceTable::load_dir(&state.pricing_dir).map_err(|e| {
        tracing::warn!(error = %e, "price table not reloaded; the previous one stays in force");
        AdminError::BadRequest {
            message: format!("price table not reloaded, the previous one stays in force: {e}"),
            param: None,
        }
    })?;
    let answer = Reloaded {
        entries: table.len(),
        dir: state.pricing_dir.display().to_string(),
    };
    // The table is swapped in only once its audit entry is committed: a reload that cannot be
    // recorded does not happen.
    let tx = state.store.begin().await?;
    let change = Change::new("pricing.reload", "pricing", "table").after(&answer);
    audit::commit(tx, &caller, vec![change]).await?;
    state.prices.store(Arc::new(table));
    tracing::info!(dir = %answer.dir, entries = answer.entries, "price table reloaded");
    Ok(Json(answer))
}
