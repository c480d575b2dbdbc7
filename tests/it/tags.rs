//! Request tags: from the `x-tollgate-tags` header and the body's `metadata`, validated,
//! stored with the ledger row, shown and filtered in the request log; `metadata` still
//! reaches the upstream exactly as sent.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::requests::exact_request;
use crate::common::{TestApp, dec};

async fn stored_tags(app: &TestApp) -> Vec<Option<Value>> {
    sqlx::query_scalar("SELECT tags FROM request_log ORDER BY created_at, request_id")
        .fetch_all(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_openai_sdk_tags_calls_by_metadata_and_header() {
    let app = TestApp::spawn().await;
    let key = app.key().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_tags.py");
    crate::sdk::run_openai_script(script, &app, key, None).await;
    app.ledger_rows(2).await;
    let tags = stored_tags(&app).await;
    assert_eq!(
        tags[0],
        Some(json!({"seed": "3", "split": "test", "task": "gsm8k"}))
    );
    // The refused request is in the ledger, without tags.
    assert_eq!(tags[1], None);
}

#[tokio::test]
async fn tags_are_stored_filtered_and_metadata_is_forwarded_unchanged() {
    let app = TestApp::spawn().await;
    let key = app.key().await;
    let (body, cost) = exact_request(false);
    let tagged = |tags: &str| {
        app.http
            .post(format!("{}/v1/chat/completions", app.data_url))
            .bearer_auth(&key)
            .header("x-tollgate-tags", tags)
            .json(&body)
    };
    assert_eq!(
        tagged("task=gsm8k, split=test")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(tagged("task=mmlu").send().await.unwrap().status(), 200);
    assert_eq!(app.chat(&key, body.clone()).await.status(), 200);

    // metadata: members become tags, the header wins over it, and the upstream gets the
    // body's metadata byte for byte.
    let mut with_metadata = body.clone();
    with_metadata["metadata"] = json!({"task": "arc", "seed": 7, "user": "ada"});
    let response = app
        .http
        .post(format!("{}/v1/chat/completions", app.data_url))
        .bearer_auth(&key)
        .header("x-tollgate-tags", "user=grace")
        .json(&with_metadata)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let upstream: Value = serde_json::from_slice(&app.mock.last_body().unwrap()).unwrap();
    assert_eq!(
        upstream["metadata"],
        json!({"task": "arc", "seed": 7, "user": "ada"})
    );

    app.ledger_rows(4).await;
    assert_eq!(
        stored_tags(&app).await,
        vec![
            Some(json!({"split": "test", "task": "gsm8k"})),
            Some(json!({"task": "mmlu"})),
            None,
            Some(json!({"seed": "7", "task": "arc", "user": "grace"})),
        ]
    );

    // The request log shows them and filters by them.
    let (status, page) = app
        .admin(Method::GET, "/requests?tag:task=gsm8k", None)
        .await;
    assert_eq!(status, 200, "{page}");
    let rows = page["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["tags"], json!({"split": "test", "task": "gsm8k"}));
    assert_eq!(dec(rows[0]["cost_usd"].as_str().unwrap()), cost);
    let (_, page) = app
        .admin(Method::GET, "/requests?tag:task=arc&tag:seed=7", None)
        .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    let (_, page) = app
        .admin(Method::GET, "/requests?tag:task=none", None)
        .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 0);
    // tollctl filters the same way, and its CSV has the tags as JSON.
    let csv = crate::common::tollctl::run(
        &app,
        &["requests", "tail", "--tag", "task=gsm8k", "--format", "csv"],
    )
    .await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[0].ends_with(",tags"), "{csv}");
    assert!(
        lines[1].ends_with(r#""{""split"":""test"",""task"":""gsm8k""}""#),
        "{csv}"
    );
    let (status, error) = app
        .admin(Method::GET, "/requests?tag:ta%20sk=x", None)
        .await;
    assert_eq!(status, 400, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"ta sk\""),
        "{error}"
    );
}

#[tokio::test]
async fn experiment_and_key_defaults_go_under_the_requests_own_tags() {
    let app = TestApp::spawn().await;
    let team = format!("team-{}", uuid::Uuid::new_v4().simple());
    app.admin(Method::POST, "/teams", Some(json!({"name": team})))
        .await;
    let (status, experiment) = app
        .admin(
            Method::POST,
            "/experiments",
            Some(json!({"team": team, "name": "gsm8k", "default_tags": {"task": "gsm8k", "split": "test"}})),
        )
        .await;
    assert_eq!(status, 201, "{experiment}");
    assert_eq!(
        experiment["default_tags"],
        json!({"task": "gsm8k", "split": "test"})
    );
    let (status, issued) = app
        .admin(
            Method::POST,
            "/keys",
            Some(json!({"team": team, "experiment": "gsm8k", "default_tags": {"worker": "3", "split": "train"}})),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    let record = &issued["data"][0];
    assert_eq!(
        record["default_tags"],
        json!({"worker": "3", "split": "train"})
    );
    let key = record["key"].as_str().unwrap().to_string();
    let (body, _) = exact_request(false);

    // The key's defaults over the experiment's; then the request's metadata and header.
    assert_eq!(app.chat(&key, body.clone()).await.status(), 200);
    let mut with_metadata = body.clone();
    with_metadata["metadata"] = json!({"seed": 1, "task": "gsm8k-hard"});
    let response = app
        .http
        .post(format!("{}/v1/chat/completions", app.data_url))
        .bearer_auth(&key)
        .header("x-tollgate-tags", "split=dev")
        .json(&with_metadata)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let upstream: Value = serde_json::from_slice(&app.mock.last_body().unwrap()).unwrap();
    assert_eq!(
        upstream["metadata"],
        json!({"seed": 1, "task": "gsm8k-hard"})
    );

    // A change of the key's defaults reaches the gateway at once.
    let key_path = format!("/keys/{}", record["id"].as_str().unwrap());
    let (status, patched) = app
        .admin(
            Method::PATCH,
            &key_path,
            Some(json!({"default_tags": {"worker": "4"}})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(app.chat(&key, body.clone()).await.status(), 200);
    let (status, _) = app
        .admin(
            Method::PATCH,
            &key_path,
            Some(json!({"default_tags": null})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.chat(&key, body.clone()).await.status(), 200);

    app.ledger_rows(4).await;
    assert_eq!(
        stored_tags(&app).await,
        [
            Some(json!({"task": "gsm8k", "split": "train", "worker": "3"})),
            Some(json!({"task": "gsm8k-hard", "split": "dev", "worker": "3", "seed": "1"})),
            Some(json!({"task": "gsm8k", "split": "test", "worker": "4"})),
            Some(json!({"task": "gsm8k", "split": "test"})),
        ]
    );
    // Reports see defaults like tags the client sent.
    let (status, report) = app
        .admin(Method::GET, "/spend?group_by=tag:worker", None)
        .await;
    assert_eq!(status, 200, "{report}");
    let mut workers: Vec<Value> = report["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tags"]["worker"].clone())
        .collect();
    workers.sort_by_key(Value::to_string);
    assert_eq!(workers, [json!("3"), json!("4"), Value::Null]);
}

#[tokio::test]
async fn bad_default_tags_are_refused_by_name_and_campaigns_carry_theirs() {
    let app = TestApp::spawn().await;
    let (_, record) = app.issue_key(json!({})).await;
    let team = record["team_id"].as_str().unwrap();
    let nine: serde_json::Map<String, Value> =
        (0..9).map(|i| (format!("t{i}"), json!("x"))).collect();
    for (tags, expected) in [
        (
            json!({"bad name": "x"}),
            "default_tags: tag name \"bad name\" must be 1 to 64",
        ),
        (
            json!({"task": ""}),
            "default_tags: tag \"task\" has an empty value",
        ),
        (Value::Object(nine), "9 default tags: at most 8"),
    ] {
        let (status, body) = app
            .admin(
                Method::POST,
                "/keys",
                Some(json!({"team": team, "default_tags": tags})),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["param"], "default_tags");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{message}");
    }

    let team_name = app
        .admin(Method::GET, &format!("/teams/{team}"), None)
        .await
        .1["name"]
        .as_str()
        .unwrap()
        .to_string();
    let out = crate::common::tollctl::run(
        &app,
        &[
            "--format",
            "json",
            "campaigns",
            "launch",
            "--team",
            &team_name,
            "mmlu",
            "--keys",
            "1",
            "--default-tag",
            "task=mmlu",
            "--default-tag",
            "split=val",
        ],
    )
    .await;
    let launched: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        launched["experiment"]["default_tags"],
        json!({"task": "mmlu", "split": "val"})
    );
    let key = launched["keys"][0]["key"].as_str().unwrap();
    let (body, _) = exact_request(false);
    assert_eq!(app.chat(key, body).await.status(), 200);
    app.ledger_rows(1).await;
    assert_eq!(
        stored_tags(&app).await,
        [Some(json!({"task": "mmlu", "split": "val"}))]
    );
}

#[tokio::test]
async fn a_bad_tag_is_refused_with_a_400_that_names_it() {
    let app = TestApp::spawn().await;
    let key = app.key().await;
    let (body, _) = exact_request(false);
    let send = |header: Option<&str>, body: &Value| {
        let mut request = app
            .http
            .post(format!("{}/v1/chat/completions", app.data_url))
            .bearer_auth(&key)
            .json(body);
        if let Some(h) = header {
            request = request.header("x-tollgate-tags", h);
        }
        request.send()
    };
    let cases = [
        (
            Some("task"),
            body.clone(),
            "invalid tags in the x-tollgate-tags header: \"task\" is not name=value; send tags as `task=gsm8k,split=test`",
        ),
        (
            Some("task=a,task=b"),
            body.clone(),
            "invalid tags in the x-tollgate-tags header: tag \"task\" is given twice",
        ),
        (
            Some("bad name=1"),
            body.clone(),
            "invalid tags in the x-tollgate-tags header: tag name \"bad name\" must be 1 to 64 letters, digits, `_`, `-` and `.`",
        ),
    ];
    for (header, body, message) in cases {
        let response = send(header, &body).await.unwrap();
        assert_eq!(response.status(), 400);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_tags");
        assert_eq!(error["error"]["message"], message);
    }
    let mut nested = body.clone();
    nested["metadata"] = json!({"task": {"name": "gsm8k"}});
    let response = send(None, &nested).await.unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["param"], "metadata");
    assert_eq!(
        error["error"]["message"],
        "invalid tags in metadata: \"task\" is an object or array; a tag's value is a string"
    );
    let many: Vec<String> = (0..17).map(|i| format!("t{i}=x")).collect();
    let response = send(Some(&many.join(",")), &body).await.unwrap();
    assert_eq!(response.status(), 400);
    // Nothing refused reached the upstream.
    assert_eq!(app.mock.requests(), 0);
}

#[tokio::test]
async fn spend_reports_group_and_filter_by_tag_and_equal_the_ledger() {
    let app = TestApp::spawn().await;
    let key = app.key().await;
    let (body, cost) = exact_request(false);
    for tags in [
        "task=gsm8k",
        "task=gsm8k,split=test",
        "task=mmlu,split=test",
        "",
    ] {
        let mut request = app
            .http
            .post(format!("{}/v1/chat/completions", app.data_url))
            .bearer_auth(&key)
            .json(&body);
        if !tags.is_empty() {
            request = request.header("x-tollgate-tags", tags);
        }
        assert_eq!(request.send().await.unwrap().status(), 200);
    }
    app.ledger_rows(4).await;
    // An independent sum: request_log's own rows, grouped by the tag.
    let by_task: Vec<(Option<String>, rust_decimal::Decimal)> = sqlx::query_as(
        "SELECT tags->>'task', sum(cost_usd) FROM request_log GROUP BY 1 ORDER BY 1 NULLS LAST",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(by_task.len(), 3);

    let (status, report) = app
        .admin(
            Method::GET,
            "/spend?group_by=model,tag:task&order=model",
            None,
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["group_by"], json!(["model", "tag:task"]));
    let mut got: Vec<(Option<String>, rust_decimal::Decimal)> = report["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["model"], "gpt-4o-mini");
            (
                r["tags"]["task"].as_str().map(str::to_owned),
                dec(r["cost_usd"].as_str().unwrap()),
            )
        })
        .collect();
    got.sort_by(|a, b| match (&a.0, &b.0) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, _) => std::cmp::Ordering::Greater,
        (_, None) => std::cmp::Ordering::Less,
        (x, y) => x.cmp(y),
    });
    assert_eq!(got, by_task);
    assert_eq!(got[0].1, cost * rust_decimal::Decimal::from(2));

    // A filter by one tag, grouped by another.
    let (_, report) = app
        .admin(Method::GET, "/spend?group_by=tag:task&tag:split=test", None)
        .await;
    let rows = report["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{report}");
    assert_eq!(
        dec(report["total"]["cost_usd"].as_str().unwrap()),
        cost * rust_decimal::Decimal::from(2)
    );
    let (status, error) = app
        .admin(Method::GET, "/spend?group_by=tag:bad%20name", None)
        .await;
    assert_eq!(status, 400, "{error}");

    // CSV and tollctl carry the tag as a column.
    let csv = app
        .http
        .get(format!(
            "{}/admin/v1/spend?group_by=tag:task&format=csv&order=cost",
            app.admin_url
        ))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.starts_with("tag:task,requests,"), "{csv}");
    assert!(csv.lines().nth(1).unwrap().starts_with("gsm8k,2,"), "{csv}");
    let table = crate::common::tollctl::run(
        &app,
        &["spend", "report", "--by", "tag:task", "--tag", "split=test"],
    )
    .await;
    assert!(table.starts_with("TAG:TASK"), "{table}");
    assert!(table.contains("mmlu") && table.contains("gsm8k"), "{table}");
}

/// How long reports by tag take over the rollups of ten million tagged requests. A
/// measurement, not a timed test (the figure is in bench/README.md):
/// `cargo test --release --test it tags::measure -- --ignored --nocapture`.
///
/// The rollups are made from the requests directly (the report reads `spend_hourly` only, so
/// ten million `request_log` rows would only cost the setup minutes and gigabytes): one
/// request every 0.7776 s for 90 days, 20 keys × 3 models, each key running one of 10 tasks
/// at a time (it moves on every 6 hours), with 2 splits and 3 seeds.
#[tokio::test]
#[ignore]
async fn measure_reports_by_tag_over_ten_million_requests() {
    let _heavy = crate::common::heavy().await;
    let app = TestApp::spawn().await;
    let setup = std::time::Instant::now();
    for sql in [
        "INSERT INTO teams (id, name) SELECT gen_random_uuid(), 'team-' || t FROM generate_series(0, 4) t",
        "INSERT INTO experiments (id, team_id, name) SELECT gen_random_uuid(), id, 'exp-' || e FROM teams, generate_series(0, 1) e",
        "INSERT INTO virtual_keys (id, team_id, experiment_id, key_hash, key_prefix) \
         SELECT gen_random_uuid(), e.team_id, e.id, sha256((e.id::text || k)::bytea), 'tg-' || substr(md5(e.id::text || k), 1, 8) \
         FROM experiments e, generate_series(0, 1) k",
        "SET work_mem = '256MB'",
        "INSERT INTO spend_hourly (hour, team_id, experiment_id, key_id, model, provider, tags, requests, errors, \
            input_tokens, cached_input_tokens, cache_write_tokens, cache_write_1h_tokens, output_tokens, \
            reasoning_tokens, cost_usd) \
         WITH k AS (SELECT array_agg(id ORDER BY id) AS ids, array_agg(team_id ORDER BY id) AS teams, \
                           array_agg(experiment_id ORDER BY id) AS exps FROM virtual_keys), \
         r AS (SELECT i, date_trunc('hour', timestamptz '2026-08-01 00:00:00+00' + i * interval '777.6 milliseconds', 'UTC') AS hour, \
                      k.teams[1 + i % 20] AS team_id, k.exps[1 + i % 20] AS experiment_id, k.ids[1 + i % 20] AS key_id, \
                      (ARRAY['test-model', 'gpt-4o-mini', 'claude-x'])[1 + (i / 20) % 3] AS model, \
                      (ARRAY['openai', 'openai', 'anthropic'])[1 + (i / 20) % 3] AS provider, \
                      jsonb_build_object('task', 'task-' || ((i / 27778 + i % 20) % 10), \
                                         'split', (ARRAY['train', 'test'])[1 + (i / 60) % 2], \
                                         'seed', ((i / 120) % 3)::text) AS tags \
               FROM generate_series(0, 9999999) AS i, k) \
         SELECT hour, team_id, experiment_id, key_id, model, provider, tags, count(*), count(*) FILTER (WHERE i % 50 = 0), \
            sum(100 + i % 900), sum((i % 7) * 10), sum(i % 5), sum(i % 2), sum(10 + i % 200), sum(i % 4), \
            sum((100 + i % 900) * 0.0000025 + (10 + i % 200) * 0.00001 + (i % 13) * 0.000000001) \
         FROM r GROUP BY 1, 2, 3, 4, 5, 6, 7",
        "ANALYZE spend_hourly",
    ] {
        sqlx::query(sql).execute(&app.db).await.unwrap();
    }
    let rollups: i64 = sqlx::query_scalar("SELECT count(*) FROM spend_hourly")
        .fetch_one(&app.db)
        .await
        .unwrap();
    println!(
        "setup: the rollups of 10,000,000 requests, {rollups} spend_hourly rows, in {:.1?}",
        setup.elapsed()
    );
    for path in [
        "/spend?group_by=tag:task",
        "/spend?group_by=tag:task,model",
        "/spend?group_by=tag:seed&tag:split=test",
        "/spend?group_by=tag:task,day&from=2026-09-01&to=2026-10-01",
        "/spend?group_by=team,model",
    ] {
        let mut times = Vec::new();
        for _ in 0..3 {
            let started = std::time::Instant::now();
            let (status, answer) = app.admin(Method::GET, path, None).await;
            times.push(started.elapsed());
            assert_eq!(status, 200, "{path}: {answer}");
            if path == "/spend?group_by=tag:task" {
                assert_eq!(answer["total"]["requests"], 10_000_000);
                assert_eq!(answer["data"].as_array().unwrap().len(), 10);
            }
        }
        let mut sorted = times.clone();
        sorted.sort();
        println!("{path}: median {:.1?} (runs: {times:.1?})", sorted[1]);
    }
}
