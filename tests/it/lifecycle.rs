//! A request's life cannot leak what its admission took: clients that give up before,
//! during and after admission, a governance timeout racing Redis's answer, and a Redis that
//! is frozen for less and for more than the gateway's Redis timeout. After each, a key with
//! `max_concurrent` 4 serves four concurrent requests and nothing is reserved.

use std::time::Duration;

use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::common::redis::OwnRedis;
use crate::common::requests::exact_request_with;
use crate::common::{Options, TestApp, dec};

/// A gateway on a Redis of its own and a key with a concurrency limit of 4, a rate limit and
/// a strict budget (so every admission takes a slot, rate tokens and a reservation).
async fn governed(redis: &OwnRedis, governance: &str) -> (TestApp, String, String) {
    let app = TestApp::spawn_with(Options {
        redis_url: Some(redis.url()),
        governance_extra: governance.into(),
        ..Options::default()
    })
    .await;
    let (key, record) = app.issue_key(json!({})).await;
    let path = format!("/keys/{}/limits", record["id"].as_str().unwrap());
    let (status, body) = app
        .admin(
            Method::PUT,
            &path,
            Some(json!({
                "max_concurrent": 4,
                "rpm": 100000,
                "tpm": 100000000,
                "budgets": [{"period": "total", "amount_usd": "10"}],
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    (app, key, path)
}

/// Slots in use and USD reserved on the key, as `tollctl limits show` reports them.
async fn held(app: &TestApp, path: &str) -> (u64, Decimal) {
    let (status, body) = app.admin(Method::GET, path, None).await;
    assert_eq!(status, 200, "{body}");
    let usage = &body["usage"];
    let concurrency = &usage["concurrency"];
    let in_use =
        concurrency["limit"].as_u64().unwrap() - concurrency["remaining"].as_u64().unwrap();
    let reserved = dec(usage["budgets"][0]["reserved_usd"].as_str().unwrap());
    (in_use, reserved)
}

/// Waits (a bounded time) for in-flight work to end, then asserts that nothing is held and
/// that the key serves four concurrent requests, each holding its slot for a while.
async fn assert_released(app: &TestApp, key: &str, path: &str, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    let mut last = held(app, path).await;
    while last != (0, Decimal::ZERO) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = held(app, path).await;
    }
    assert_eq!(
        last,
        (0, Decimal::ZERO),
        "{what}: slots in use and USD reserved"
    );
    let (body, _) = exact_request_with(false, json!({"delay_ms": 300}));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let request = app
            .http
            .post(format!("{}/v1/chat/completions", app.data_url))
            .bearer_auth(key)
            .json(&body);
        tasks.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    let statuses: Vec<u16> = tasks.join_all().await;
    assert_eq!(statuses, vec![200; 4], "{what}: four concurrent requests");
    assert_eq!(
        held(app, path).await,
        (0, Decimal::ZERO),
        "{what}: after the four"
    );
}

/// Sends `n` requests whose clients give up after `patience` (their outcome is not awaited
/// beyond that), and returns once every client has given up or been answered.
async fn impatient(app: &TestApp, key: &str, body: &Value, n: usize, patience: Duration) {
    let client = reqwest::Client::builder()
        .timeout(patience)
        .build()
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let request = client
            .post(format!("{}/v1/chat/completions", app.data_url))
            .bearer_auth(key)
            .json(body);
        tasks.spawn(async move {
            if let Ok(response) = request.send().await {
                let _ = response.bytes().await;
            }
        });
    }
    tasks.join_all().await;
}

#[tokio::test]
async fn clients_giving_up_while_redis_is_slow_leave_nothing_held() {
    let redis = OwnRedis::start_anywhere();
    let (app, key, path) = governed(&redis, "redis_timeout_ms = 1000").await;
    let (body, _) = exact_request_with(false, json!({}));
    assert_eq!(app.chat(&key, body.clone()).await.status(), 200);

    // Frozen for less than the Redis timeout: every client gives up while its admission
    // waits, and Redis admits them all once it is thawed.
    redis.freeze();
    let clients = impatient(&app, &key, &body, 20, Duration::from_millis(300));
    let thaw = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        redis.thaw();
    };
    tokio::join!(clients, thaw);
    assert_released(&app, &key, &path, "frozen 0.7 s, clients gone after 0.3 s").await;

    // Frozen for longer than the Redis timeout: the admissions time out (503 for a client
    // still waiting) and are answered after their waiters left.
    redis.freeze();
    let gone = impatient(&app, &key, &body, 20, Duration::from_millis(300));
    let waiting = async {
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(app.chat(&key, body.clone()).await.status().as_u16());
        }
        statuses
    };
    let thaw = async {
        tokio::time::sleep(Duration::from_millis(1600)).await;
        redis.thaw();
    };
    let ((), statuses, ()) = tokio::join!(gone, waiting, thaw);
    assert_eq!(
        statuses[0], 503,
        "a waiting client gets the fail-closed answer"
    );
    assert_released(&app, &key, &path, "frozen 1.6 s, longer than the timeout").await;
}

#[tokio::test]
async fn a_timeout_racing_the_reply_leaves_nothing_held() {
    let redis = OwnRedis::start_anywhere();
    let (app, key, path) = governed(&redis, "redis_timeout_ms = 60").await;
    let (body, _) = exact_request_with(false, json!({}));
    assert_eq!(app.chat(&key, body.clone()).await.status(), 200);
    // Freezes around the timeout: some replies arrive just before it, some just after.
    let mut statuses = Vec::new();
    for freeze_ms in [20, 40, 55, 60, 65, 80, 120] {
        redis.freeze();
        let requests = async {
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..4 {
                let request = app
                    .http
                    .post(format!("{}/v1/chat/completions", app.data_url))
                    .bearer_auth(&key)
                    .json(&body);
                tasks.spawn(async move { request.send().await.unwrap().status().as_u16() });
            }
            tasks.join_all().await
        };
        let thaw = async {
            tokio::time::sleep(Duration::from_millis(freeze_ms)).await;
            redis.thaw();
        };
        let (answered, ()) = tokio::join!(requests, thaw);
        statuses.extend(answered);
    }
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&503),
        "some admissions timed out: {statuses:?}"
    );
    assert_released(&app, &key, &path, "timeouts racing replies").await;
}

#[tokio::test]
async fn clients_gone_before_during_and_after_admission_leave_nothing_held() {
    let redis = OwnRedis::start_anywhere();
    let (app, key, path) = governed(&redis, "").await;
    let address = app.data_url.trim_start_matches("http://").to_string();

    // Before admission: the client hangs up in the middle of its body.
    for _ in 0..5 {
        let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\n\
             content-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"model\":"
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        drop(socket);
    }

    // After admission: the upstream takes 500 ms and the clients leave after 150 ms, both
    // non-streaming (the request completes and is charged) and streaming (cut, charged for
    // what was produced).
    let (slow, _) = exact_request_with(false, json!({"delay_ms": 500}));
    let (slow_stream, _) = exact_request_with(true, json!({"chunks": 20, "chunk_delay_ms": 50}));
    let patience = Duration::from_millis(150);
    // One after the other: together they would be eight, over the concurrency limit.
    impatient(&app, &key, &slow, 4, patience).await;
    assert_released(&app, &key, &path, "non-streaming clients gone").await;
    impatient(&app, &key, &slow_stream, 4, patience).await;
    assert_released(&app, &key, &path, "clients gone before and after admission").await;

    let rows = app.ledger_rows(21).await;
    let mut by_status: Vec<(i16, bool)> = rows.iter().map(|r| (r.status, r.streamed)).collect();
    by_status.sort_unstable();
    let expected: Vec<(i16, bool)> = [(200, false); 12]
        .into_iter()
        .chain([(499, false); 5])
        .chain([(499, true); 4])
        .collect();
    assert_eq!(
        by_status, expected,
        "four completed and twice four checks, five bodies cut short, four streams cut"
    );
}

/// The ticket's own contract, on the governor alone: one dropped unsettled gives back its
/// slot and reservation by itself, and one settled charges exactly once.
#[tokio::test]
async fn a_ticket_dropped_unsettled_gives_back_what_it_took() {
    use std::sync::Arc;
    use tollgate::governance::{
        Admission, Budget, Governor, GovernorConfig, Limits, LocalShield, Period, Refusal,
        ScopeKind, ScopeLimits, SystemClock,
    };
    use tollgate::ids::{RequestId, TeamId};

    let redis = OwnRedis::start_anywhere();
    let store = tollgate::store::Store::connect(
        &tollgate::config::Secret::new(crate::common::create_database().await),
        2,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let connection = tollgate::connect::redis::RedisConnector::new(
        &tollgate::config::Secret::new(redis.url()),
        None,
    )
    .unwrap()
    .multiplexed(Duration::from_secs(1))
    .await
    .unwrap();
    let governor = Governor::new(
        connection,
        GovernorConfig {
            redis_prefix: "t".into(),
            reservation_ttl: Duration::from_secs(900),
            redis_timeout: Duration::from_secs(1),
        },
        Arc::new(SystemClock),
        store,
        LocalShield::new(None, None),
    );
    let team = TeamId::new();
    let scopes = vec![ScopeLimits {
        kind: ScopeKind::Key,
        id: uuid::Uuid::now_v7(),
        name: "worker-1".into(),
        limits: Limits {
            max_concurrent: Some(1),
            budgets: vec![Budget {
                period: Period::Total,
                amount_usd: dec("1"),
            }],
            ..Limits::default()
        },
    }];
    let admission = |max_cost_nanos| Admission {
        request_id: RequestId::new(),
        team,
        scopes: &scopes,
        model: "gpt-4o-mini",
        tokens_estimate: 10,
        max_cost_nanos,
        estimated_cost_nanos: max_cost_nanos,
    };
    let usage = async || {
        let usage = governor.usage(team, &scopes[0]).await.unwrap();
        let budget = &usage.budgets[0];
        (
            usage.concurrency.unwrap().remaining,
            budget.spent_usd,
            budget.reserved_usd,
        )
    };

    let ticket = governor.admit(&admission(5_000)).await.unwrap().unwrap();
    assert_eq!(usage().await, (0, Decimal::ZERO, dec("0.000005")));
    assert!(matches!(
        governor.admit(&admission(5_000)).await,
        Err(Refusal::Concurrency { .. })
    ));
    drop(ticket);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while usage().await != (1, Decimal::ZERO, Decimal::ZERO) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dropped ticket was not released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let ticket = governor.admit(&admission(5_000)).await.unwrap().unwrap();
    ticket.settle(8, 3_000).await;
    assert_eq!(usage().await, (1, dec("0.000003"), Decimal::ZERO));
}

/// Log lines written on this test's thread, as the JSON formatter writes them.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

/// Every answer carries `x-tollgate-request-id`, and with `log.access = "all"` each request
/// has one access-log line under that id. (A `#[tokio::test]` runs the gateway on this
/// thread, so a thread-local subscriber sees its lines.)
#[tokio::test]
async fn every_answer_has_a_request_id_and_an_access_log_line() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_env_filter("off,tollgate::access=info,tollgate::proxy::handler=info")
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = TestApp::spawn_with(Options {
        extra: "[log]\naccess = \"all\"".into(),
        ..Options::default()
    })
    .await;
    let key = app.key().await;
    let (body, _) = exact_request_with(false, json!({}));
    let url = |path: &str| format!("{}{path}", app.data_url);
    let answers = [
        (
            "chat",
            app.http
                .post(url("/v1/chat/completions"))
                .bearer_auth(&key)
                .json(&body),
        ),
        (
            "chat without a key",
            app.http.post(url("/v1/chat/completions")).json(&body),
        ),
        (
            "chat with an unknown key",
            app.http
                .post(url("/v1/chat/completions"))
                .bearer_auth("tg-nope")
                .json(&body),
        ),
        ("models", app.http.get(url("/v1/models")).bearer_auth(&key)),
        ("models without a key", app.http.get(url("/v1/models"))),
        (
            "usage",
            app.http.get(url("/v1/tollgate/usage")).bearer_auth(&key),
        ),
        (
            "usage without a key",
            app.http.get(url("/v1/tollgate/usage")),
        ),
        (
            "no such endpoint",
            app.http.get(url("/v1/nope")).bearer_auth(&key),
        ),
    ];
    let mut ids = Vec::new();
    for (what, request) in answers {
        let response = request.send().await.unwrap();
        let id = response
            .headers()
            .get("x-tollgate-request-id")
            .unwrap_or_else(|| panic!("{what}: no request id"))
            .to_str()
            .unwrap()
            .to_string();
        ids.push((what, response.status().as_u16(), id));
    }
    app.ledger_rows(1).await;
    let lines = captured.lines();
    let logged = |id: &str| {
        lines
            .iter()
            .filter(|line| {
                line["target"] == "tollgate::access" && line["fields"]["request_id"] == id
            })
            .count()
    };
    let (_, status, chat_id) = &ids[0];
    assert_eq!(*status, 200);
    assert_eq!(
        logged(chat_id),
        1,
        "one line for the chat request: {lines:?}"
    );
    let chat_line = lines
        .iter()
        .find(|line| line["fields"]["request_id"] == chat_id.as_str())
        .unwrap();
    assert_eq!(chat_line["fields"]["status"], 200);
    assert_eq!(chat_line["fields"]["model"], "gpt-4o-mini");
    assert_eq!(chat_line["span"]["request_id"], chat_id.as_str());
    let ledger_id = app.all_ledger_rows().await[0].request_id.clone();
    assert_eq!(
        &ledger_id, chat_id,
        "the ledger keeps the id the client saw"
    );
    for (what, status, id) in &ids[1..3] {
        assert_eq!(*status, 401, "{what}");
        assert_eq!(logged(id), 1, "{what}: one line");
    }
}
