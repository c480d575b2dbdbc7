//! `default_tags` on experiments and keys: tags merged under each request's own
//! (docs/tags.md), checked like a request's tags and bounded so that an experiment's and a
//! key's defaults together stay within one request's worth.

use std::collections::BTreeMap;

use super::error::AdminError;
use crate::tags::{MAX_TAGS, Tags};

/// The most default tags an experiment or a key may carry: half a request's worth each, so
/// both together are at most [`MAX_TAGS`].
pub const MAX_DEFAULT_TAGS: usize = MAX_TAGS / 2;

/// The `default_tags` of a body, checked; empty when it gave none.
pub fn parse(pairs: Option<BTreeMap<String, String>>) -> Result<Tags, AdminError> {
    let Some(pairs) = pairs else {
        return Ok(Tags::default());
    };
    if pairs.len() > MAX_DEFAULT_TAGS {
        return Err(AdminError::bad(
            "default_tags",
            format!(
                "{} default tags: at most {MAX_DEFAULT_TAGS} (requests add their own)",
                pairs.len()
            ),
        ));
    }
    Tags::from_map("default_tags", &pairs)
        .map_err(|e| AdminError::bad("default_tags", e.to_string()))
}
