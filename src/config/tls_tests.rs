//! The TLS settings of `database_url` and `redis_url`: what each combination means, and that
//! every refusal names the setting and never the password.

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

use super::*;

const PASSWORD: &str = "hunter2";

/// PEM files in a directory removed when dropped.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new() -> Files {
        let dir = std::env::temp_dir().join(format!(
            "tollgate-config-tls-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let client_key = KeyPair::generate().unwrap();
        let client = CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .signed_by(&client_key, &issuer)
            .unwrap();
        let files = Files { dir };
        files.write("ca.pem", &ca.pem());
        files.write("client.crt", &client.pem());
        files.write("client.key", &client_key.serialize_pem());
        files.write("other.key", &KeyPair::generate().unwrap().serialize_pem());
        files.write("empty.pem", "not a certificate\n");
        files
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.join(name), text).unwrap();
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn file(top: &str) -> String {
    format!(
        r#"{top}
[admin]
jwt_secret = "0123456789abcdef0123456789abcdef"
"#
    )
}

fn load(top: &str, env: &[(&str, String)]) -> Result<Config, String> {
    let lookup = |name: &str| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
    let result = Config::from_toml_str("tollgate.toml", &file(top), &lookup);
    let result = result.map_err(|e| e.to_string());
    if let Err(message) = &result {
        assert!(!message.contains(PASSWORD), "password leaked: {message}");
    }
    result
}

fn postgres(params: &str) -> Result<PostgresTls, String> {
    postgres_env(params, &[])
}

fn postgres_env(params: &str, env: &[(&str, String)]) -> Result<PostgresTls, String> {
    let top = format!("database_url = \"postgres://u:{PASSWORD}@db.internal:5432/app?{params}\"");
    load(&top, env).map(|c| c.database_tls)
}

fn refused(result: Result<PostgresTls, String>, parts: &[&str]) {
    let message = result.map(|t| t.describe()).unwrap_err();
    assert!(
        message.starts_with("tollgate.toml: field `database_url`: "),
        "{message}"
    );
    for part in parts {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
}

#[test]
fn without_parameters_postgres_prefers_tls_without_checking() {
    let tls = postgres("").unwrap();
    assert_eq!(tls.mode, SslMode::Prefer);
    assert_eq!(tls.roots, PostgresRoots::System);
    assert!(tls.client.is_none());
    assert_eq!(postgres("sslmode=disable").unwrap().mode, SslMode::Disable);
    assert_eq!(postgres("sslmode=require").unwrap().mode, SslMode::Require);
}

#[test]
fn verify_full_with_a_root_certificate_reads_the_file() {
    let files = Files::new();
    let ca = files.path("ca.pem");
    let tls = postgres(&format!("sslmode=verify-full&sslrootcert={ca}")).unwrap();
    assert_eq!(tls.mode, SslMode::VerifyFull);
    let PostgresRoots::Bundle(bundle) = &tls.roots else {
        panic!("{:?}", tls.roots)
    };
    assert_eq!(bundle.path, PathBuf::from(&ca));
    assert!(String::from_utf8_lossy(&bundle.pem).contains("BEGIN CERTIFICATE"));
    // The driver's spellings mean the same.
    let tls = postgres(&format!("ssl-mode=verify-ca&ssl-root-cert={ca}")).unwrap();
    assert_eq!(tls.mode, SslMode::VerifyCa);
}

#[test]
fn require_with_a_root_certificate_checks_the_chain_as_in_libpq() {
    let files = Files::new();
    let ca = files.path("ca.pem");
    let tls = postgres(&format!("sslmode=require&sslrootcert={ca}")).unwrap();
    assert_eq!(tls.mode, SslMode::VerifyCa);
}

#[test]
fn a_root_certificate_that_would_not_be_checked_is_refused() {
    let files = Files::new();
    let ca = files.path("ca.pem");
    refused(
        postgres(&format!("sslrootcert={ca}")),
        &["sslmode=prefer (the default)", "add sslmode=verify-full"],
    );
    refused(
        postgres(&format!("sslmode=disable&sslrootcert={ca}")),
        &["sslmode=disable does not check"],
    );
}

#[test]
fn verify_ca_needs_its_own_ca() {
    refused(
        postgres("sslmode=verify-ca"),
        &["verify-ca without sslrootcert", "add sslrootcert="],
    );
    // Against the system's roots, verify-full is what libpq allows.
    let tls = postgres("sslmode=verify-full").unwrap();
    assert_eq!(
        (tls.mode, tls.roots),
        (SslMode::VerifyFull, PostgresRoots::System)
    );
}

#[test]
fn sslrootcert_system_means_verify_full_against_the_system_roots() {
    let tls = postgres("sslrootcert=system").unwrap();
    assert_eq!(
        (tls.mode, tls.roots),
        (SslMode::VerifyFull, PostgresRoots::System)
    );
    refused(
        postgres("sslmode=require&sslrootcert=system"),
        &["sslrootcert=system needs sslmode=verify-full, not require"],
    );
}

#[test]
fn unknown_modes_and_parameters_are_named() {
    refused(
        postgres("sslmode=allow"),
        &["sslmode=allow is not supported", "sslmode=prefer"],
    );
    refused(
        postgres("sslmode=verify_full"),
        &[
            "sslmode=\"verify_full\" is not an sslmode",
            "disable, prefer, require, verify-ca or verify-full",
        ],
    );
    refused(
        postgres("sslpassword=x"),
        &["the parameter sslpassword is not supported"],
    );
    // Other libpq parameters are the driver's business.
    postgres("application_name=tollgate&connect_timeout=5").unwrap();
}

#[test]
fn unreadable_or_wrong_files_are_named() {
    let files = Files::new();
    let missing = files.path("missing.pem");
    refused(
        postgres(&format!("sslmode=verify-full&sslrootcert={missing}")),
        &[&format!("sslrootcert: cannot read {missing}")],
    );
    refused(
        postgres(&format!(
            "sslmode=verify-full&sslrootcert={}",
            files.path("empty.pem")
        )),
        &["holds no PEM certificate"],
    );
    refused(
        postgres(&format!(
            "sslmode=verify-full&sslrootcert={}",
            files.path("client.key")
        )),
        &["holds no PEM certificate"],
    );
}

#[test]
fn a_client_certificate_needs_its_own_key() {
    let files = Files::new();
    let (cert, key) = (files.path("client.crt"), files.path("client.key"));
    let tls = postgres(&format!("sslmode=verify-full&sslcert={cert}&sslkey={key}")).unwrap();
    let client = tls.client.unwrap();
    assert_eq!(client.cert_path, PathBuf::from(&cert));
    assert_eq!(client.key_path, PathBuf::from(&key));
    refused(
        postgres(&format!("sslmode=verify-full&sslcert={cert}")),
        &["sslcert is set without its pair"],
    );
    refused(
        postgres(&format!(
            "sslmode=verify-full&sslcert={cert}&sslkey={}",
            files.path("other.key")
        )),
        &["sslkey:", "is not the private key of the certificate"],
    );
    refused(
        postgres(&format!("sslmode=verify-full&sslcert={cert}&sslkey={cert}")),
        &["holds no PEM private key"],
    );
    refused(
        postgres(&format!("sslmode=disable&sslcert={cert}&sslkey={key}")),
        &["sslmode=disable never uses TLS"],
    );
}

#[test]
fn libpq_environment_variables_apply_when_the_url_is_silent() {
    let files = Files::new();
    let env = [
        ("PGSSLMODE", "verify-full".to_string()),
        ("PGSSLROOTCERT", files.path("ca.pem")),
    ];
    let tls = postgres_env("", &env).unwrap();
    assert_eq!(tls.mode, SslMode::VerifyFull);
    assert!(matches!(tls.roots, PostgresRoots::Bundle(_)));
    // The URL wins.
    let tls = postgres_env("sslmode=verify-ca", &env).unwrap();
    assert_eq!(tls.mode, SslMode::VerifyCa);
    refused(
        postgres_env("", &[("PGSSLROOTCERT", files.path("missing.pem"))]),
        &["PGSSLROOTCERT (environment): cannot read"],
    );
}

#[test]
fn a_database_url_that_is_not_postgres_is_refused() {
    refused(postgres_url("mysql://u:hunter2@h/db"), &["mysql://"]);
    refused(postgres_url("hunter2"), &["not a URL"]);
}

fn postgres_url(url: &str) -> Result<PostgresTls, String> {
    load(&format!("database_url = \"{url}\""), &[]).map(|c| c.database_tls)
}

const DB: &str = "database_url = \"postgres://u@localhost/db\"";

fn redis(top: &str, env: &[(&str, String)]) -> Result<Option<RedisTls>, String> {
    load(&format!("{DB}\n{top}"), env).map(|c| c.redis_tls)
}

fn redis_refused(result: Result<Option<RedisTls>, String>, field: &str, parts: &[&str]) {
    let message = result.map(|t| format!("{t:?}")).unwrap_err();
    assert!(
        message.starts_with(&format!("tollgate.toml: field `{field}`: ")),
        "{message}"
    );
    for part in parts {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
}

#[test]
fn rediss_verifies_against_the_system_roots_or_redis_ca_file() {
    assert!(redis("", &[]).unwrap().is_none());
    assert!(
        redis("redis_url = \"redis://127.0.0.1:6379\"", &[])
            .unwrap()
            .is_none()
    );
    let tls = redis("redis_url = \"rediss://u:hunter2@cache.example:6380\"", &[])
        .unwrap()
        .unwrap();
    assert_eq!(tls.verify, RedisVerify::SystemRoots);
    assert!(tls.client.is_none());

    let files = Files::new();
    let ca = files.path("ca.pem");
    let tls = redis(
        &format!("redis_url = \"rediss://cache:6380\"\nredis_ca_file = \"{ca}\""),
        &[],
    )
    .unwrap()
    .unwrap();
    let RedisVerify::Bundle(bundle) = tls.verify else {
        panic!("{:?}", tls.verify)
    };
    assert_eq!(bundle.path, PathBuf::from(&ca));
    // The environment overrides the file.
    let tls = redis(
        "redis_url = \"rediss://cache:6380\"\nredis_ca_file = \"/nowhere\"",
        &[(ENV_REDIS_CA_FILE, ca)],
    )
    .unwrap()
    .unwrap();
    assert!(matches!(tls.verify, RedisVerify::Bundle(_)));
}

#[test]
fn tls_settings_on_a_plain_url_are_refused() {
    let files = Files::new();
    redis_refused(
        redis(
            &format!(
                "redis_url = \"redis://u:hunter2@h:6379\"\nredis_ca_file = \"{}\"",
                files.path("ca.pem")
            ),
            &[],
        ),
        "redis_ca_file",
        &["not a rediss:// (TLS) URL"],
    );
    redis_refused(
        redis("redis_tls_insecure = true", &[]),
        "redis_tls_insecure",
        &["not a rediss://"],
    );
}

#[test]
fn the_insecure_opt_out_is_explicit_and_excludes_a_ca() {
    let tls = redis(
        "redis_url = \"rediss://h:6380\"\nredis_tls_insecure = true",
        &[],
    )
    .unwrap()
    .unwrap();
    assert_eq!(tls.verify, RedisVerify::Off);
    let tls = redis("redis_url = \"rediss://h:6380/#insecure\"", &[])
        .unwrap()
        .unwrap();
    assert_eq!(tls.verify, RedisVerify::Off);
    let files = Files::new();
    redis_refused(
        redis(
            &format!(
                "redis_url = \"rediss://h:6380\"\nredis_tls_insecure = true\nredis_ca_file = \"{}\"",
                files.path("ca.pem")
            ),
            &[],
        ),
        "redis_tls_insecure",
        &["redis_ca_file would be ignored"],
    );
    redis_refused(
        redis("redis_url = \"rediss://h:6380/#verify\"", &[]),
        "redis_url",
        &["#insecure"],
    );
}

#[test]
fn a_redis_client_certificate_needs_its_own_key() {
    let files = Files::new();
    let (cert, key) = (files.path("client.crt"), files.path("client.key"));
    let url = "redis_url = \"rediss://h:6380\"";
    let tls = redis(
        &format!("{url}\nredis_client_cert_file = \"{cert}\"\nredis_client_key_file = \"{key}\""),
        &[],
    )
    .unwrap()
    .unwrap();
    let client = tls.client.unwrap();
    assert!(!format!("{client:?}").contains("PRIVATE KEY"));
    redis_refused(
        redis(&format!("{url}\nredis_client_cert_file = \"{cert}\""), &[]),
        "redis_client_key_file",
        &["not set, but redis_client_cert_file is"],
    );
    redis_refused(
        redis(&format!("{url}\nredis_client_key_file = \"{key}\""), &[]),
        "redis_client_cert_file",
        &["not set"],
    );
    redis_refused(
        redis(
            &format!(
                "{url}\nredis_client_cert_file = \"{cert}\"\nredis_client_key_file = \"{}\"",
                files.path("other.key")
            ),
            &[],
        ),
        "redis_client_key_file",
        &["is not the private key of the certificate"],
    );
    let missing = files.path("missing.pem");
    redis_refused(
        redis(&format!("{url}\nredis_ca_file = \"{missing}\""), &[]),
        "redis_ca_file",
        &[&format!("cannot read {missing}"), ENV_REDIS_CA_FILE],
    );
}

#[test]
fn redis_urls_are_checked_without_being_echoed() {
    for (url, part) in [
        ("http://u:hunter2@h", "the scheme http:// is not supported"),
        (
            "redis+cluster://u:hunter2@h1:1,h2:x",
            "node 2 of the list has no valid port",
        ),
        ("redis+sentinel://u:hunter2@h1:1,h2:2", "names no master"),
        ("rediss://u:hunter2@h:6380/notanumber", "database number"),
        ("u:hunter2", "not a URL"),
        (
            "rediss://u:hunter2@h:99999",
            "not a URL (invalid port number)",
        ),
    ] {
        redis_refused(
            redis(&format!("redis_url = \"{url}\""), &[]),
            "redis_url",
            &[part],
        );
    }
}

#[test]
fn debug_shows_paths_but_no_key_or_password() {
    let files = Files::new();
    let config = load(
        &format!(
            "database_url = \"postgres://u:{PASSWORD}@h/db?sslmode=verify-full&sslcert={}&sslkey={}\"\n\
             redis_url = \"rediss://u:{PASSWORD}@h:6380\"\n\
             redis_client_cert_file = \"{}\"\nredis_client_key_file = \"{}\"",
            files.path("client.crt"),
            files.path("client.key"),
            files.path("client.crt"),
            files.path("client.key"),
        ),
        &[],
    )
    .unwrap();
    let debug = format!("{config:?}");
    assert!(debug.contains("client.key"), "{debug}");
    for secret in [PASSWORD, "PRIVATE KEY"] {
        assert!(!debug.contains(secret), "{secret} leaked into Debug");
    }
}
