use std::sync::Arc;

use rustls::{AlertDescription, CertificateError};

use super::*;

#[test]
fn a_url_is_shown_without_password_or_query() {
    let redacted = Redacted::new(
        "postgres://app:p%40ss%2Fw0rd@db.internal:5432/prod?sslmode=require&password=other-secret",
    );
    assert_eq!(redacted.shown, "postgres://app@db.internal:5432/prod");
    let scrubbed = redacted.scrub("auth failed for p@ss/w0rd, p%40ss%2Fw0rd and other-secret");
    assert_eq!(
        scrubbed,
        "auth failed for [redacted], [redacted] and [redacted]"
    );
    let redis = Redacted::new("rediss://:only-password@cache:6380/2");
    assert_eq!(redis.shown, "rediss://cache:6380/2");
    assert_eq!(redis.scrub("x only-password y"), "x [redacted] y");
}

#[test]
fn an_unparsable_url_is_never_shown() {
    let redacted = Redacted::new("not a url with hunter2");
    assert!(!redacted.shown.contains("hunter2"));
    assert_eq!(
        redacted.scrub("echo: not a url with hunter2"),
        "echo: [redacted]"
    );
}

#[test]
fn tls_errors_are_found_inside_io_errors_and_arcs() {
    let tls = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
    let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls.clone());
    assert_eq!(find_tls_error(&io), Some(&tls));
    let shared: Arc<dyn Error + Send + Sync> = Arc::new(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        tls.clone(),
    ));
    assert_eq!(find_tls_error(&shared), Some(&tls));
    let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    assert_eq!(find_tls_error(&plain), None);
}

#[test]
fn tls_failures_say_which_setting_to_look_at() {
    let trust = Trust {
        source: "the CA in redis_ca_file (/etc/ca.pem)".into(),
        fix: "point redis_ca_file at the right CA",
        host: "cache.internal",
        client_settings: "redis_client_cert_file and redis_client_key_file",
    };
    let describe = |e| describe_tls_error(&e, &trust);
    let unknown = describe(rustls::Error::InvalidCertificate(
        CertificateError::UnknownIssuer,
    ));
    assert!(unknown.starts_with(
        "the server's certificate is not signed by the CA in redis_ca_file (/etc/ca.pem): point redis_ca_file"
    ), "{unknown}");
    assert!(
        unknown.ends_with("[TLS: invalid peer certificate: UnknownIssuer]"),
        "{unknown}"
    );
    assert!(
        describe(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName
        ))
        .contains("does not name the host \"cache.internal\"")
    );
    assert!(
        describe(rustls::Error::InvalidCertificate(CertificateError::Expired))
            .contains("has expired")
    );
    assert!(
        describe(rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired
        ))
        .contains("requires a client certificate: set redis_client_cert_file")
    );
    assert!(
        describe(rustls::Error::AlertReceived(AlertDescription::UnknownCA))
            .contains("refused the client certificate")
    );
    assert!(describe(rustls::Error::HandshakeNotComplete).starts_with("the TLS handshake failed"));
}
