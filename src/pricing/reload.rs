//! Replacing the live price table without a restart (`SIGHUP` or
//! `POST /admin/v1/pricing/reload`).

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::{PriceTable, PricingError};

/// Re-reads every price file in `dir` and, only if all of them are valid, makes the result the
/// table `live` serves; returns its number of entries. On any error the live table is left as
/// it was and the error names the file and the field.
///
/// A request prices itself with the table in force when it arrived, and a new entry applies
/// only from its `effective_from`, so a reload never reprices a request in flight.
///
/// Reads a handful of small files synchronously: it runs on an admin request or a signal,
/// never on the request path.
///
/// # Errors
/// Anything [`PriceTable::load_dir`] refuses.
pub fn reload(dir: &Path, live: &ArcSwap<PriceTable>) -> Result<usize, PricingError> {
    match PriceTable::load_dir(dir) {
        Ok(table) => {
            let entries = table.len();
            live.store(Arc::new(table));
            tracing::info!(dir = %dir.display(), entries, "price table reloaded");
            Ok(entries)
        }
        Err(e) => {
            tracing::warn!(error = %e, "price table not reloaded; the previous one stays in force");
            Err(e)
        }
    }
}
