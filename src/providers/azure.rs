//! Azure OpenAI: OpenAI's own formats (nothing to translate), addressed differently. A
//! deployment is reached by its Azure deployment name and an `api-version`, or through the
//! newer OpenAI-compatible `/openai/v1/` API, which takes the deployment as the body's
//! `model`.

/// The path (after the resource endpoint) of a request whose OpenAI path is `rest`
/// (`/chat/completions`, `/responses/resp_1`) to Azure deployment `deployment`. With an
/// `api_version`, Azure's deployment URLs (the Responses API has none: it names its
/// deployment in the body); without, the `/openai/v1/` API.
pub fn path(rest: &str, deployment: &str, api_version: Option<&str>) -> String {
    let Some(version) = api_version else {
        return format!("/openai/v1{rest}");
    };
    // `rest` may carry the client's own query (a stored response's `include[]`).
    let join = if rest.contains('?') { '&' } else { '?' };
    if rest.starts_with("/responses") {
        format!("/openai{rest}{join}api-version={version}")
    } else {
        format!("/openai/deployments/{deployment}{rest}{join}api-version={version}")
    }
}

#[cfg(test)]
mod tests {
    use super::path;

    #[test]
    fn deployment_urls_carry_the_api_version_and_the_v1_api_does_not() {
        let v = Some("2024-10-21");
        assert_eq!(
            path("/chat/completions", "prod-4o", v),
            "/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            path("/embeddings", "embed", v),
            "/openai/deployments/embed/embeddings?api-version=2024-10-21"
        );
        assert_eq!(
            path("/responses", "prod-4o", v),
            "/openai/responses?api-version=2024-10-21"
        );
        assert_eq!(
            path("/responses/resp_1?include[]=x", "", v),
            "/openai/responses/resp_1?include[]=x&api-version=2024-10-21"
        );
        assert_eq!(
            path("/chat/completions", "prod-4o", None),
            "/openai/v1/chat/completions"
        );
    }
}
