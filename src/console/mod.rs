//! The web console: a small client app served by the admin listener under `/ui/`.
//!
//! The assets are compiled into the binary and nothing else is served here: every number the
//! pages show and every change they make goes through the admin REST API with the signed-in
//! token, so authorisation, validation and the audit log are the API's. The pages need no
//! token to load; the app reads it from the URL fragment or a sign-in form.

mod assets;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

pub use assets::ASSETS;

/// Scripts, styles and data only from this origin; no inline script or style, no framing,
/// no form posts elsewhere. `img-src data:` is for the empty favicon.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|| async { serve("index.html") }))
        .route(
            "/ui/{*file}",
            get(|Path(file): Path<String>| async move { serve(&file) }),
        )
}

fn serve(name: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        let body = "no such console file; the console is at /ui/\n";
        return with_headers((StatusCode::NOT_FOUND, body).into_response(), "text/plain");
    };
    with_headers(asset.body.into_response(), asset.content_type)
}

fn with_headers(mut response: Response, content_type: &'static str) -> Response {
    let headers = response.headers_mut();
    let fixed = |v: &'static str| HeaderValue::from_static(v);
    headers.insert(header::CONTENT_TYPE, fixed(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        fixed(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, fixed("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, fixed("DENY"));
    headers.insert(header::REFERRER_POLICY, fixed("no-referrer"));
    // Small files, and a new gateway version must never run an old script: revalidate.
    headers.insert(header::CACHE_CONTROL, fixed("no-cache"));
    response
}
