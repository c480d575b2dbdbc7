//! TLS to PostgreSQL and Redis against real servers of the tests' own (tests/common/tls.rs):
//! the gateway serves governed requests with verification on, and every way a certificate
//! check can fail stops start-up with an error that names the setting and the reason and
//! never the password.
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::tls::{
    CERT_USER, GATEWAY_PASSWORD, GATEWAY_PASSWORD_IN_URL, GATEWAY_USER, Pki, RedisTlsSetup,
    TlsPostgres, TlsRedis,
};
use crate::common::{JWT_SECRET, Options, TestApp, fixture_pricing_dir, two_instances};
use reqwest::Method;
use serde_json::{Value, json};
use tollgate::app::App;
use tollgate::config::Config;

/// Builds the gateway (no listeners) from a minimal configuration.
async fn build(database_url: &str, redis_url: &str, extra: &str) -> Result<App, String> {
    tollgate::telemetry::init_logging();
    let toml = format!(
        r#"
database_url = "{database_url}"
redis_url = "{redis_url}"
{extra}
[admin]
jwt_secret = "{JWT_SECRET}"
[pricing]
dir = "{pricing}"
[ledger]
spill_dir = "{spill}"
"#,
        pricing = fixture_pricing_dir().display(),
        spill = std::env::temp_dir()
            .join(format!("tollgate-spill-{}", uuid::Uuid::new_v4().simple()))
            .display(),
    );
    let config = Config::from_toml_str("test.toml", &toml, &|_| None).map_err(|e| e.to_string())?;
    App::build(&config).await.map_err(|e| e.to_string())
}

/// The start-up error of a gateway that must not start.
async fn start_error(database_url: &str, redis_url: &str, extra: &str) -> String {
    match build(database_url, redis_url, extra).await {
        Ok(_) => panic!("the gateway started, but should have refused"),
        Err(message) => message,
    }
}

fn assert_has(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
}

fn assert_lacks(message: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !message.contains(secret),
            "{secret:?} leaked into: {message}"
        );
    }
}

fn chat_body() -> Value {
    json!({"model": "test-model", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
}

/// Issues a key with a budget and a rate limit, sends one request, and checks that it was
/// admitted and charged in Redis and recorded in PostgreSQL. Returns the key and its id.
async fn governed_request(app: &TestApp) -> (String, String) {
    let (key, record) = app.issue_key(json!({})).await;
    let path = format!("/keys/{}", record["id"].as_str().unwrap());
    let (status, body) = app
        .admin(
            Method::PUT,
            &format!("{path}/limits"),
            Some(json!({"rpm": 100, "budgets": [{"period": "total", "amount_usd": "10"}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let response = app.chat(&key, chat_body()).await;
    assert_eq!(response.status(), 200);
    let cost = app.ledger_cost(1).await;
    assert!(cost > rust_decimal::Decimal::ZERO);
    let (_, shown) = app
        .admin(Method::GET, &format!("{path}/limits"), None)
        .await;
    assert_eq!(
        crate::common::dec(shown["usage"]["budgets"][0]["spent_usd"].as_str().unwrap()),
        cost,
        "settled in Redis: {shown}"
    );
    (key, record["id"].as_str().unwrap().to_string())
}

fn tls_redis(pki: &Pki) -> TlsRedis {
    TlsRedis::start(RedisTlsSetup {
        cert: &pki.server_cert,
        key: &pki.server_key,
        ca: &pki.ca,
        require_client_cert: false,
        acl_user: None,
    })
}

fn ca_file(path: &std::path::Path) -> String {
    format!("redis_ca_file = \"{}\"", path.display())
}

#[tokio::test]
async fn verified_tls_to_both_serves_governed_requests_on_two_instances() {
    let pki = Pki::generate();
    let pg = TlsPostgres::start(&pki).await;
    let redis = tls_redis(&pki);
    let database = pg.create_database(GATEWAY_USER).await;
    let database_url = pg.url(
        "127.0.0.1",
        &database,
        &format!("sslmode=verify-full&sslrootcert={}", pki.ca.display()),
    );
    let (a, b) = two_instances(|| Options {
        database_url: Some(database_url.clone()),
        redis_url: Some(redis.url("")),
        extra: ca_file(&pki.ca),
        ..Options::default()
    })
    .await;
    let (key, key_id) = governed_request(&a).await;
    assert_eq!(b.chat(&key, chat_body()).await.status(), 200);
    a.ledger_rows(2).await;
    let tls = pg.connections_use_tls(GATEWAY_USER, &database).await;
    assert!(!tls.is_empty() && tls.iter().all(|t| *t), "{tls:?}");

    // B learns of a revocation made on A only through the pub/sub connection, which runs
    // over TLS like the others.
    let (status, body) = a
        .admin(Method::POST, &format!("/keys/{key_id}/revoke"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let start = tokio::time::Instant::now();
    while b.chat(&key, chat_body()).await.status() != 403 {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "instance B never heard of the revocation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// verify-ca checks the chain against sslrootcert; with sqlx 0.8 it checks the host name too
/// (docs/configuration.md says so), so the server's certificate, which names 127.0.0.1 only,
/// is refused under `localhost` in both modes, with the reason.
#[tokio::test]
async fn verify_ca_checks_the_chain_and_verify_full_the_host_name() {
    let pki = Pki::generate();
    let pg = TlsPostgres::start(&pki).await;
    let database = pg.create_database(GATEWAY_USER).await;
    let ca = pki.ca.display().to_string();
    let other_ca = pki.other_ca.display().to_string();
    let url = |host: &str, params: &str| pg.url(host, &database, params);
    let redis = crate::common::redis_url();
    let refused = async |database_url: String| start_error(&database_url, &redis, "").await;

    let app = TestApp::spawn_with(Options {
        database_url: Some(url(
            "127.0.0.1",
            &format!("sslmode=verify-ca&sslrootcert={ca}"),
        )),
        ..Options::default()
    })
    .await;
    governed_request(&app).await;

    let message = refused(url(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={other_ca}"),
    ))
    .await;
    assert_has(
        &message,
        &[
            "database_url",
            "sslmode=verify-ca",
            "not signed by a CA in sslrootcert",
        ],
    );
    for mode in ["verify-full", "verify-ca"] {
        let message = refused(url(
            "localhost",
            &format!("sslmode={mode}&sslrootcert={ca}"),
        ))
        .await;
        assert_has(
            &message,
            &[
                "database_url",
                &format!("sslmode={mode}"),
                "does not name the host \"localhost\"",
            ],
        );
        assert_lacks(&message, &[GATEWAY_PASSWORD, GATEWAY_PASSWORD_IN_URL]);
    }

    // With a root certificate, `require` checks the chain, as in libpq.
    build(
        &url("127.0.0.1", &format!("sslmode=require&sslrootcert={ca}")),
        &redis,
        "",
    )
    .await
    .unwrap()
    .shutdown()
    .await;
    let message = refused(url(
        "127.0.0.1",
        &format!("sslmode=require&sslrootcert={other_ca}"),
    ))
    .await;
    assert_has(
        &message,
        &["sslmode=verify-ca", "not signed by a CA in sslrootcert"],
    );
}

#[tokio::test]
async fn postgres_with_a_wrong_ca_is_refused_naming_database_url_without_the_password() {
    let pki = Pki::generate();
    let pg = TlsPostgres::start(&pki).await;
    let database = pg.create_database(GATEWAY_USER).await;
    let redis = crate::common::redis_url();
    let other_ca = pki.other_ca.display().to_string();
    let message = start_error(
        &pg.url(
            "127.0.0.1",
            &database,
            &format!("sslmode=verify-full&sslrootcert={other_ca}"),
        ),
        &redis,
        "",
    )
    .await;
    assert_has(
        &message,
        &[
            "cannot connect to PostgreSQL",
            "database_url",
            &format!("not signed by a CA in sslrootcert ({other_ca})"),
            "UnknownIssuer",
            "tollgate@127.0.0.1",
        ],
    );
    assert_lacks(&message, &[GATEWAY_PASSWORD, GATEWAY_PASSWORD_IN_URL]);

    // Without sslrootcert the system's roots are used, and they do not know the test CA.
    let message = start_error(
        &pg.url("127.0.0.1", &database, "sslmode=verify-full"),
        &redis,
        "",
    )
    .await;
    assert_has(
        &message,
        &["database_url", "system's trust store", "set sslrootcert"],
    );
    assert_lacks(&message, &[GATEWAY_PASSWORD, GATEWAY_PASSWORD_IN_URL]);

    // A wrong password is named as such, and not printed either.
    let message = start_error(
        &pg.url("127.0.0.1", &database, "sslmode=require")
            .replace(GATEWAY_PASSWORD_IN_URL, "not-the-password-91"),
        &redis,
        "",
    )
    .await;
    assert_has(&message, &["password authentication failed"]);
    assert_lacks(&message, &["not-the-password-91"]);
}

#[tokio::test]
async fn prefer_encrypts_without_verifying_and_disable_stays_plain() {
    let pki = Pki::generate();
    let pg = TlsPostgres::start(&pki).await;
    let redis = crate::common::redis_url();
    for (params, tls) in [
        ("sslmode=prefer", true),
        ("", true),
        ("sslmode=disable", false),
    ] {
        let database = pg.create_database(GATEWAY_USER).await;
        // No CA given: `prefer` accepts the unknown CA, as documented.
        let app = build(&pg.url("127.0.0.1", &database, params), &redis, "")
            .await
            .unwrap();
        let connections = pg.connections_use_tls(GATEWAY_USER, &database).await;
        assert!(
            !connections.is_empty() && connections.iter().all(|c| *c == tls),
            "{params:?}: {connections:?}"
        );
        app.shutdown().await;
    }
}

#[tokio::test]
async fn a_client_certificate_logs_in_to_postgres() {
    let pki = Pki::generate();
    let pg = TlsPostgres::start(&pki).await;
    let database = pg.create_database(CERT_USER).await;
    let redis = crate::common::redis_url();
    let url = |params: &str| {
        format!(
            "postgres://{CERT_USER}@127.0.0.1:{}/{database}?sslmode=verify-full&sslrootcert={}{params}",
            pg.port,
            pki.ca.display()
        )
    };
    let app = build(
        &url(&format!(
            "&sslcert={}&sslkey={}",
            pki.client_cert.display(),
            pki.client_key.display()
        )),
        &redis,
        "",
    )
    .await
    .unwrap();
    app.shutdown().await;
    let message = start_error(&url(""), &redis, "").await;
    assert_has(&message, &["cannot connect to PostgreSQL", "certificate"]);
}

#[tokio::test]
async fn rediss_with_a_wrong_ca_is_refused_naming_redis_ca_file() {
    let pki = Pki::generate();
    let redis = tls_redis(&pki);
    let database = crate::common::create_database().await;
    let message = start_error(&database, &redis.url(""), &ca_file(&pki.other_ca)).await;
    assert_has(
        &message,
        &[
            "cannot connect to Redis at rediss://127.0.0.1",
            &format!(
                "not signed by the CA in redis_ca_file ({})",
                pki.other_ca.display()
            ),
            "UnknownIssuer",
        ],
    );
    // The system's roots do not know the test CA either.
    let message = start_error(&database, &redis.url(""), "").await;
    assert_has(
        &message,
        &[
            "system's trust store",
            "set redis_ca_file",
            "TOLLGATE_REDIS_CA_FILE",
        ],
    );
}

#[tokio::test]
async fn mutual_tls_to_redis_needs_the_client_certificate() {
    let pki = Pki::generate();
    let redis = TlsRedis::start(RedisTlsSetup {
        cert: &pki.server_cert,
        key: &pki.server_key,
        ca: &pki.ca,
        require_client_cert: true,
        acl_user: None,
    });
    let database = crate::common::create_database().await;
    let message = start_error(&database, &redis.url(""), &ca_file(&pki.ca)).await;
    assert_has(
        &message,
        &[
            "cannot connect to Redis",
            "client certificate",
            "redis_client_cert_file",
        ],
    );
    let app = TestApp::spawn_with(Options {
        database_url: Some(database),
        redis_url: Some(redis.url("")),
        extra: format!(
            "{}\nredis_client_cert_file = \"{}\"\nredis_client_key_file = \"{}\"",
            ca_file(&pki.ca),
            pki.client_cert.display(),
            pki.client_key.display()
        ),
        ..Options::default()
    })
    .await;
    governed_request(&app).await;
}

#[tokio::test]
async fn a_redis_acl_user_logs_in_and_its_password_never_shows() {
    const PASSWORD: &str = "r3dis/p@ss:word";
    const PASSWORD_IN_URL: &str = "r3dis%2Fp%40ss%3Aword";
    let pki = Pki::generate();
    let redis = TlsRedis::start(RedisTlsSetup {
        cert: &pki.server_cert,
        key: &pki.server_key,
        ca: &pki.ca,
        require_client_cert: false,
        acl_user: Some(("alice", PASSWORD)),
    });
    let database = crate::common::create_database().await;
    let app = TestApp::spawn_with(Options {
        database_url: Some(database.clone()),
        redis_url: Some(redis.url(&format!("alice:{PASSWORD_IN_URL}@"))),
        extra: ca_file(&pki.ca),
        ..Options::default()
    })
    .await;
    governed_request(&app).await;

    let message = start_error(
        &database,
        &redis.url("alice:wr0ng-pass%2Fword@"),
        &ca_file(&pki.ca),
    )
    .await;
    assert_has(
        &message,
        &["cannot connect to Redis at rediss://alice@127.0.0.1"],
    );
    assert_lacks(
        &message,
        &["wr0ng-pass", PASSWORD, PASSWORD_IN_URL, "wr0ng-pass%2Fword"],
    );
    // A wrong CA with the right password: the password is not printed either.
    let message = start_error(
        &database,
        &redis.url(&format!("alice:{PASSWORD_IN_URL}@")),
        &ca_file(&pki.other_ca),
    )
    .await;
    assert_has(&message, &["redis_ca_file"]);
    assert_lacks(&message, &[PASSWORD, PASSWORD_IN_URL]);
}

/// A `tracing` writer that keeps what is written.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test]
async fn the_insecure_opt_out_accepts_a_self_signed_server_and_says_so() {
    let pki = Pki::generate();
    let redis = TlsRedis::start(RedisTlsSetup {
        cert: &pki.self_signed_cert,
        key: &pki.self_signed_key,
        ca: &pki.self_signed_cert,
        require_client_cert: false,
        acl_user: None,
    });
    let database = crate::common::create_database().await;
    let message = start_error(&database, &redis.url(""), "").await;
    assert_has(
        &message,
        &["not signed by a CA in the system's trust store"],
    );

    for (url, extra) in [
        (redis.url(""), "redis_tls_insecure = true"),
        (format!("{}#insecure", redis.url("")), ""),
    ] {
        let logs = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_max_level(tracing::Level::WARN)
            .finish();
        let app = {
            // The test's runtime has one thread, so the whole build logs here.
            let _guard = tracing::subscriber::set_default(subscriber);
            build(&database, &url, extra).await.unwrap()
        };
        app.shutdown().await;
        let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert_has(&logs, &["WARN", "redis_tls_insecure", "NOT verified"]);
    }
}
