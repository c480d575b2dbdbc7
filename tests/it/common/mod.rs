//! The integration-test harness: a real PostgreSQL database per test, the shared Redis, the
//! in-repo mock upstream and the gateway itself, all over real sockets on 127.0.0.1.

pub mod browser;
pub mod cluster;
pub mod events;
pub mod million;
pub mod process;
pub mod redis;
pub mod requests;
pub mod tls;
pub mod tollctl;
pub mod webhook;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mock_provider::{MockConfig, MockServer};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::{PgPool, Row};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tollgate::admin::{Claims, Role, mint};
use tollgate::app::App;
use tollgate::config::{Config, Secret};
use tollgate::governance::{Clock, SystemClock};

pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

pub fn admin_database_url() -> String {
    std::env::var("TOLLGATE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://tollgate:tollgate@127.0.0.1:5432/tollgate".into())
}

pub fn redis_url() -> String {
    std::env::var("TOLLGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

const TEST_DATABASE_PREFIX: &str = "tg_test_";

/// Creates an empty database for one test and returns its URL. Its name carries this test
/// process's id, so a later run can tell it is no longer in use.
pub async fn create_database() -> String {
    let admin_url = admin_database_url();
    let admin = PgPool::connect(&admin_url)
        .await
        .expect("connect to the test PostgreSQL (run scripts/services.sh)");
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT.get_or_init(|| drop_abandoned_databases(&admin)).await;
    let name = format!(
        "{TEST_DATABASE_PREFIX}{}_{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// Drops the databases of test processes that have ended. Each test keeps its database to the
/// end of its process (a failed test's data stays inspectable while it runs); without this sweep
/// every run would leave a couple of hundred behind and the cluster would grow without bound.
async fn drop_abandoned_databases(admin: &PgPool) {
    let proc_fs = std::path::Path::new("/proc/self");
    if !proc_fs.exists() {
        return; // No way to tell whether a process is alive; leave everything.
    }
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'tg\\_test\\_%'")
            .fetch_all(admin)
            .await
            .unwrap();
    for name in names {
        if owner_is_alive(&name) {
            continue;
        }
        // Another test process may be sweeping the same name; losing that race is harmless.
        let dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(admin)
            .await;
        if let Err(error) = dropped {
            eprintln!("could not drop abandoned test database {name}: {error}");
        }
    }
}

/// Whether the test process named in `tg_test_<pid>_<uuid>` is still running. Names without a
/// process id come from an older harness and are never in use.
fn owner_is_alive(database: &str) -> bool {
    let Some((pid, _)) = database
        .strip_prefix(TEST_DATABASE_PREFIX)
        .and_then(|rest| rest.split_once('_'))
    else {
        return false;
    };
    match pid.parse::<u32>() {
        Ok(pid) => std::path::Path::new(&format!("/proc/{pid}")).exists(),
        Err(_) => false,
    }
}

/// An admin token for `sub` "test", signed with [`JWT_SECRET`] and valid for an hour.
pub fn admin_token() -> String {
    let now = chrono::Utc::now().timestamp() as u64;
    mint(
        &Secret::new(JWT_SECRET.to_string()),
        &Claims {
            sub: "test".into(),
            role: Role::Admin,
            team: None,
            iat: now,
            exp: now + 3600,
        },
    )
    .unwrap()
}

/// Two gateway instances sharing one PostgreSQL (the first one's) and one Redis.
pub async fn two_instances(options: impl Fn() -> Options) -> (TestApp, TestApp) {
    let a = TestApp::spawn_with(options()).await;
    let b = TestApp::spawn_with(Options {
        database_url: Some(a.database_url.clone()),
        ..options()
    })
    .await;
    (a, b)
}

#[derive(Default)]
pub struct Options {
    pub mock: MockConfig,
    /// Extra top-level TOML (must come before any table), e.g. `max_body_bytes = 1024`.
    pub extra: String,
    /// Extra `[[deployments]]` fields for the mock deployment.
    pub deployment_extra: String,
    pub database_url: Option<String>,
    pub spill_dir: Option<PathBuf>,
    /// Points the deployment somewhere other than the mock.
    pub base_url: Option<String>,
    /// Extra `[ledger]` fields.
    pub ledger_extra: String,
    /// Extra `[governance]` fields.
    pub governance_extra: String,
    pub redis_url: Option<String>,
    pub clock: Option<Arc<dyn Clock>>,
    /// A pricing directory other than tests/fixtures/pricing.
    pub pricing_dir: Option<PathBuf>,
    /// Replaces the default mock deployment: complete `[[deployments]]` tables.
    pub deployments: Option<String>,
    /// Extra `[admin]` fields (JWT algorithm, key files, issuer, audience, leeway).
    pub admin_extra: String,
    /// Extra `[alerts]` fields.
    pub alerts_extra: String,
    /// Environment variables the configuration sees besides the `TEST_KEY_*` keys (AWS
    /// credentials, say).
    pub env: Vec<(&'static str, String)>,
}

pub struct TestApp {
    pub data_url: String,
    pub admin_url: String,
    pub mock: MockServer,
    pub db: PgPool,
    pub database_url: String,
    pub admin_token: String,
    pub http: reqwest::Client,
    /// The running gateway's data-plane state, for tests that inspect its caches.
    pub proxy: tollgate::proxy::ProxyState,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

pub fn fixture_pricing_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pricing")
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(options: Options) -> TestApp {
        tollgate::telemetry::init_logging();
        tollgate::app::init_tls();
        let mock = mock_provider::spawn(options.mock).await.unwrap();
        let database_url = match options.database_url {
            Some(url) => url,
            None => create_database().await,
        };
        let spill_dir = options.spill_dir.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("tollgate-spill-{}", uuid::Uuid::new_v4().simple()))
        });
        let toml = format!(
            r#"
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
database_url = "{database_url}"
redis_url = "{redis}"
shutdown_grace_secs = 10
{extra}
[admin]
jwt_secret = "{JWT_SECRET}"
{admin_extra}
[pricing]
dir = "{pricing}"
[ledger]
spill_dir = "{spill}"
{ledger_extra}
[governance]
{governance_extra}
[alerts]
{alerts_extra}
{deployments}
"#,
            redis = options.redis_url.unwrap_or_else(redis_url),
            extra = options.extra,
            pricing = options
                .pricing_dir
                .unwrap_or_else(fixture_pricing_dir)
                .display(),
            spill = spill_dir.display(),
            deployments = options.deployments.unwrap_or_else(|| format!(
                r#"[[deployments]]
name = "mock"
kind = "openai"
base_url = "{base_url}"
{deployment_extra}
models = {{ "test-model" = "test-model", "gpt-4o-mini" = "gpt-4o-mini", "test-embed" = "test-embed", "renamed" = {{ upstream = "upstream-name", price = "test-model" }}, "unpriced" = "no-such-price" }}
"#,
                base_url = options.base_url.unwrap_or_else(|| mock.base_url()),
                deployment_extra = options.deployment_extra,
            )),
            ledger_extra = options.ledger_extra,
            governance_extra = options.governance_extra,
            admin_extra = options.admin_extra,
            alerts_extra = options.alerts_extra,
        );
        // Provider keys for test deployments: `TEST_KEY_abc` holds the key `abc`.
        let extra_env = options.env.clone();
        let env = move |name: &str| {
            extra_env
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .or_else(|| name.strip_prefix("TEST_KEY_").map(str::to_string))
        };
        let config = Config::from_toml_str("test.toml", &toml, &env).expect("test config");
        let clock = options.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let app = App::build_with_clock(&config, clock)
            .await
            .expect("build app");
        let data = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let data_url = format!("http://{}", data.local_addr().unwrap());
        let admin_url = format!("http://{}", admin.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let proxy = app.proxy.clone();
        let server = tokio::spawn(app.run(data, admin, async move {
            let _ = stopped.await;
        }));
        TestApp {
            data_url,
            admin_url,
            mock,
            db: PgPool::connect(&database_url).await.unwrap(),
            database_url,
            admin_token: admin_token(),
            http: reqwest::Client::new(),
            proxy,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Stops the gateway the way SIGTERM does and waits for the ledger to drain.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/admin/v1{path}", self.admin_url))
            .bearer_auth(&self.admin_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Creates a team (and optionally an experiment) and issues one key with `key_options`
    /// merged into the request. Returns (key secret, key record).
    pub async fn issue_key(&self, key_options: Value) -> (String, Value) {
        let team = format!("team-{}", uuid::Uuid::new_v4().simple());
        let (status, _) = self
            .admin(reqwest::Method::POST, "/teams", Some(json!({"name": team})))
            .await;
        assert_eq!(status, 201);
        let (status, _) = self
            .admin(
                reqwest::Method::POST,
                "/experiments",
                Some(json!({"team": team, "name": "exp"})),
            )
            .await;
        assert_eq!(status, 201);
        let mut body = json!({"team": team, "experiment": "exp"});
        for (k, v) in key_options.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        let (status, issued) = self.admin(reqwest::Method::POST, "/keys", Some(body)).await;
        assert_eq!(status, 201, "{issued}");
        let record = issued["data"][0].clone();
        (record["key"].as_str().unwrap().to_string(), record)
    }

    /// `PUT {path}/limits` (a scope's path, e.g. `/experiments/<id>`), which must succeed;
    /// the scope's limits and usage as answered.
    pub async fn put_limits(&self, path: &str, limits: Value) -> Value {
        let (status, body) = self
            .admin(
                reqwest::Method::PUT,
                &format!("{path}/limits"),
                Some(limits),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// `GET /v1/tollgate/usage` with `key`: its limits and usage on every scope.
    /// A scope's first budget as the admin API reads it from Redis: (spent, reserved).
    pub async fn budget_usage(&self, scope_path: &str) -> (Decimal, Decimal) {
        let (status, shown) = self
            .admin(reqwest::Method::GET, &format!("{scope_path}/limits"), None)
            .await;
        assert_eq!(status, 200, "{shown}");
        let budget = &shown["usage"]["budgets"][0];
        (
            dec(budget["spent_usd"].as_str().unwrap()),
            dec(budget["reserved_usd"].as_str().unwrap()),
        )
    }

    pub async fn key_usage(&self, key: &str) -> Value {
        self.http
            .get(format!("{}/v1/tollgate/usage", self.data_url))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn key(&self) -> String {
        self.issue_key(json!({})).await.0
    }

    pub async fn chat(&self, key: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/chat/completions", self.data_url))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Waits (at most 10 s) for a ledger row with `status`, e.g. 499 for a stream its client
    /// left, and returns it.
    pub async fn row_with_status(&self, status: i16) -> LedgerRow {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(row) = self
                .all_ledger_rows()
                .await
                .into_iter()
                .find(|r| r.status == status)
            {
                return row;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no ledger row with status {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts a stream, reads its first chunk (which must carry the assistant's role) and
    /// leaves; returns the ledger's row for it, recorded as 499.
    pub async fn leave_after_first_chunk(&self, key: &str, body: Value) -> LedgerRow {
        let mut response = self.chat(key, body).await;
        assert_eq!(response.status(), 200);
        let first = response.chunk().await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&first).contains("assistant"));
        drop(response);
        self.row_with_status(499).await
    }

    /// Waits until the ledger holds `n` rows, then returns them (oldest first).
    pub async fn ledger_rows(&self, n: usize) -> Vec<LedgerRow> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let rows = self.all_ledger_rows().await;
            if rows.len() >= n || tokio::time::Instant::now() > deadline {
                assert_eq!(rows.len(), n, "ledger rows");
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the ledger holds `n` rows, then returns their total cost.
    pub async fn ledger_cost(&self, n: usize) -> Decimal {
        self.ledger_rows(n).await.iter().map(|r| r.cost_usd).sum()
    }

    pub async fn all_ledger_rows(&self) -> Vec<LedgerRow> {
        sqlx::query(
            "SELECT request_id, model, upstream_model, status, error_type, streamed, usage_estimated, \
             input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, cost_usd \
             FROM request_log ORDER BY created_at, request_id",
        )
        .fetch_all(&self.db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| LedgerRow {
            request_id: r.get::<uuid::Uuid, _>(0).to_string(),
            model: r.get(1),
            upstream_model: r.get(2),
            status: r.get(3),
            error_type: r.get(4),
            streamed: r.get(5),
            usage_estimated: r.get(6),
            input_tokens: r.get(7),
            cached_input_tokens: r.get(8),
            output_tokens: r.get(9),
            reasoning_tokens: r.get(10),
            cost_usd: r.get(11),
        })
        .collect()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[derive(Debug, Clone)]
pub struct LedgerRow {
    pub request_id: String,
    pub model: String,
    pub upstream_model: String,
    pub status: i16,
    pub error_type: Option<String>,
    pub streamed: bool,
    pub usage_estimated: bool,
    pub input_tokens: i64,
    pub cached_input_tokens: i64,
    pub output_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_usd: Decimal,
}

/// Held by the tests that load the whole machine (a million-row report, a flood of keys,
/// bursts of hundreds of requests) so that no two of them run at once in this process: what
/// one of them measures or waits for is then not slowed by another's load.
pub async fn heavy() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    HEAVY.lock().await
}

pub fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}
