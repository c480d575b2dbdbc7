use crate::common::{Options, TestApp, redis::OwnRedis};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch_commit_rate() {
    let redis = OwnRedis::start_anywhere();
    let a = TestApp::spawn_with(Options {
        redis_url: Some(redis.url()),
        ..Options::default()
    })
    .await;
    let (_, db) = a.database_url.rsplit_once('/').unwrap();
    let mut observer = PgConnection::connect(&crate::common::admin_database_url())
        .await
        .unwrap();
    let commits = async |o: &mut PgConnection| -> i64 {
        sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
            .bind(db)
            .fetch_one(o)
            .await
            .unwrap()
    };
    let key = a.key().await;
    assert_eq!(
        a.chat(&key, json!({"model":"test-model","messages":[]}))
            .await
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_secs(12)).await;
    let c0 = commits(&mut observer).await;
    let r0 = a.proxy.keys.known().reads();
    for _ in 0..40 {
        a.proxy.keys.known().request_refresh();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    tokio::time::sleep(Duration::from_secs(12)).await;
    let c1 = commits(&mut observer).await;
    let r1 = a.proxy.keys.known().reads();
    eprintln!("reads: {} commits for {} reads", c1 - c0, r1 - r0);
    for _ in 0..60 {
        assert_eq!(
            a.chat(&key, json!({"model":"test-model","messages":[]}))
                .await
                .status(),
            200
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(12)).await;
    let c2 = commits(&mut observer).await;
    eprintln!(
        "60 requests: {} commits, {} reads",
        c2 - c1,
        a.proxy.keys.known().reads() - r1
    );
}
