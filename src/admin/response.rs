//! The envelopes answers share: `{"data": [...]}` for lists and `{"data": [...], "next": ...}`
//! for pages. Handlers return these (never `json!` objects), so the OpenAPI document, which is
//! generated from them, describes exactly what is sent.

use serde::Serialize;
use utoipa::ToSchema;

/// A complete list.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T> {
    pub data: Vec<T>,
}

impl<T> List<T> {
    pub fn of(data: Vec<T>) -> List<T> {
        List { data }
    }
}

/// One page of a longer listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// The cursor of the next page (pass it back unchanged); `null` on the last page.
    pub next: Option<String>,
}
