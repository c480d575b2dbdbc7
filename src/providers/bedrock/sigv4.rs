//! Signing a Bedrock request with AWS Signature Version 4 (`aws-sigv4`, AWS's own
//! implementation): the headers to add to the request.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use crate::config::AwsCredentials;

/// The service name Bedrock's runtime endpoints are signed for.
pub const SERVICE: &str = "bedrock";

/// The headers (`authorization`, `x-amz-date`, and `x-amz-security-token` with temporary
/// credentials) that sign `method url` with `body` and the given other `headers` at `now`.
pub fn signed_headers(
    credentials: &AwsCredentials,
    region: &str,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    now: SystemTime,
) -> Result<Vec<(&'static str, String)>, String> {
    let identity: Identity = Credentials::new(
        credentials.access_key_id.clone(),
        credentials.secret_access_key.expose().clone(),
        credentials
            .session_token
            .as_ref()
            .map(|t| t.expose().clone()),
        None,
        "tollgate",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let request = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let (headers, _) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|h| (h.name(), h.value().to_owned()))
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::config::Secret;

    /// AWS's documented example credentials, at a fixed time: the signature is a function of
    /// them, the request and the time only.
    fn example() -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
            session_token: None,
            source: "test".into(),
        }
    }

    #[test]
    fn a_request_is_signed_for_bedrock_in_its_region() {
        let at = UNIX_EPOCH + Duration::from_secs(1_440_938_160); // 2015-08-30T12:36:00Z
        let url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse";
        let headers = [("content-type", "application/json")];
        let sign = |body: &[u8]| {
            signed_headers(&example(), "us-east-1", "POST", url, &headers, body, at).unwrap()
        };
        let signed = sign(b"{}");
        let get = |name: &str| {
            signed
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(get("x-amz-date"), "20150830T123600Z");
        let authorization = get("authorization");
        assert!(
            authorization.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="
            ),
            "{authorization}"
        );
        // The same request signs the same; another body does not.
        assert_eq!(sign(b"{}"), signed);
        assert_ne!(sign(b"{\"a\":1}"), signed);
        assert!(!format!("{:?}", example()).contains("wJalr"));
    }
}
