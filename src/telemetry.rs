//! Structured JSON logs (`RUST_LOG` filters; default `info`). A line written during a
//! request carries the request's span (`request_id`, endpoint), so every line of one
//! request can be found by its id.

use tracing_subscriber::EnvFilter;

pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .try_init();
}
