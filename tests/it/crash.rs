//! A gateway killed with SIGKILL mid-load loses no spend record: every request whose client
//! received a complete 200 has exactly one ledger row once a new process has started on the
//! same journal directory.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::common::process::GatewayProcess;

const WORKERS: usize = 48;
/// Completed requests before the kill: the load is well under way.
const KILL_AFTER: usize = 3000;

fn config(database_url: &str, journal: &Path, mock_url: &str) -> String {
    // A long flush interval keeps events in the writer's memory for up to a second, so a crash
    // that lost what is only in memory would lose hundreds of them.
    crate::common::process::config(
        database_url,
        &crate::common::fixture_pricing_dir(),
        journal,
        mock_url,
        "flush_interval_ms = 1000",
    )
}

async fn issue_key(http: &reqwest::Client, admin_url: &str) -> String {
    let token = crate::common::admin_token();
    let post = |path: &str, body: Value| {
        http.post(format!("{admin_url}/admin/v1{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let team = post("/teams", json!({"name": "crash"})).await.unwrap();
    assert_eq!(team.status(), 201);
    let issued: Value = post("/keys", json!({"team": "crash"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    issued["data"][0]["key"].as_str().unwrap().to_string()
}

/// One request; its id when the client received the whole answer with status 200: for a
/// stream, every event through `[DONE]`; otherwise the complete JSON body.
async fn complete_200(
    http: &reqwest::Client,
    data_url: &str,
    key: &str,
    stream: bool,
) -> Option<Uuid> {
    let response = http
        .post(format!("{data_url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({
            "model": "test-model",
            "stream": stream,
            "messages": [{"role": "user", "content": "ping"}],
        }))
        .send()
        .await
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    let id = response
        .headers()
        .get("x-tollgate-request-id")?
        .to_str()
        .ok()?;
    let id = Uuid::parse_str(id).ok()?;
    let body = response.bytes().await.ok()?;
    let complete = if stream {
        body.ends_with(b"data: [DONE]\n\n")
    } else {
        serde_json::from_slice::<Value>(&body).is_ok_and(|v| v["choices"].is_array())
    };
    complete.then_some(id)
}

/// Rows per request id, for the ids asked about.
async fn rows_per_id(pool: &PgPool, ids: &[Uuid]) -> HashMap<Uuid, i64> {
    sqlx::query_as::<_, (Uuid, i64)>(
        "SELECT request_id, count(*) FROM request_log WHERE request_id = ANY($1) GROUP BY 1",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_mid_load_keeps_a_row_for_every_complete_200() {
    let _heavy = crate::common::heavy().await;
    tollgate::app::init_tls();
    let mock = mock_provider::spawn(Default::default()).await.unwrap();
    let database_url = crate::common::create_database().await;
    let dir = std::env::temp_dir().join(format!("tollgate-crash-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (journal, config_path) = (dir.join("journal"), dir.join("tollgate.toml"));
    let rest = config(&database_url, &journal, &mock.base_url());
    let mut gateway = GatewayProcess::start(&config_path, &rest).await;
    let http = reqwest::Client::new();
    let key = issue_key(&http, &gateway.admin_url).await;

    // Workers send streaming and non-streaming requests until the gateway is gone, keeping the
    // ids of the answers that reached them whole.
    let completed = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        let (http, url, key) = (http.clone(), gateway.data_url.clone(), key.clone());
        let (completed, done) = (completed.clone(), done.clone());
        workers.spawn(async move {
            let mut failures = 0;
            for n in 0.. {
                match complete_200(&http, &url, &key, (worker + n) % 2 == 0).await {
                    Some(id) => {
                        completed.lock().await.push(id);
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    // The gateway was killed: a few failures in a row and this worker stops.
                    None if failures >= 3 => break,
                    None => failures += 1,
                }
            }
        });
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while done.load(Ordering::Relaxed) < KILL_AFTER {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the load did not get going"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gateway.kill();
    while let Some(worker) = workers.join_next().await {
        worker.unwrap();
    }
    let completed = std::mem::take(&mut *completed.lock().await);
    assert!(
        completed.len() >= KILL_AFTER,
        "{} completed",
        completed.len()
    );

    let pool = PgPool::connect(&database_url).await.unwrap();
    let before_restart = rows_per_id(&pool, &completed).await.len();
    // A new process on the same journal replays what the killed one had not written.
    let restarted = GatewayProcess::start(&config_path, &rest).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let rows = rows_per_id(&pool, &completed).await;
        if rows.len() == completed.len() || tokio::time::Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let missing = completed.iter().filter(|id| !rows.contains_key(id)).count();
    let twice = rows.values().filter(|n| **n != 1).count();
    eprintln!(
        "{} complete 200s before the kill; {before_restart} had a row when it died, \
         {} after the restart; {missing} missing, {twice} with more than one row",
        completed.len(),
        rows.len()
    );
    // Without the journal, every id without a row when the process died would stay missing.
    assert_eq!((missing, twice), (0, 0));
    // No request id has two rows, among those the clients saw complete or any other.
    let duplicated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT request_id FROM request_log GROUP BY 1 HAVING count(*) > 1) d",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(duplicated, 0);
    drop(restarted);
    let _ = std::fs::remove_dir_all(&dir);
}
