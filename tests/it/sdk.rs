//! The official `openai` and `anthropic` Python SDKs against the gateway (content, usage,
//! streaming, embeddings, models, messages, errors). `scripts/test.sh` installs both into a
//! virtualenv and points `TOLLGATE_TEST_PYTHON` at it.

use mock_provider::MockConfig;

use crate::common::{Options, TestApp};

/// A gateway serving `test-model` and `test-embed` from an OpenAI-compatible mock and
/// `test-claude` from an Anthropic one (the Responses API tests use it too).
pub(crate) async fn gateway() -> TestApp {
    let openai = mock_provider::spawn(MockConfig::default()).await.unwrap();
    let anthropic = mock_provider::spawn(MockConfig::default()).await.unwrap();
    TestApp::spawn_with(Options {
        deployments: Some(format!(
            r#"[[deployments]]
name = "openai"
kind = "openai"
base_url = "{}"
models = {{ "test-model" = "test-model", "test-embed" = "test-embed" }}

[[deployments]]
name = "claude"
kind = "anthropic"
base_url = "{}"
models = {{ "test-claude" = "test-claude" }}
"#,
            openai.base_url(),
            anthropic.base_url()
        )),
        ..Options::default()
    })
    .await
}

/// Runs a Python SDK script with `env`; fails the test, with its output, if it fails.
pub(crate) async fn run_script(script: &'static str, env: Vec<(&'static str, String)>) {
    let python = std::env::var("TOLLGATE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    // Off the runtime's thread: the gateway under test runs on it.
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&python)
            .arg(script)
            .envs(env)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run {python}: {e} (run ./scripts/test.sh, which installs the SDKs)")
            })
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{script} failed (are the SDKs installed? ./scripts/test.sh installs them):\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs an `openai` SDK script against `app` with `key`: TOLLGATE_BASE_URL and TOLLGATE_KEY
/// set, and TOLLGATE_MODEL when a model is given.
pub(crate) async fn run_openai_script(
    script: &'static str,
    app: &TestApp,
    key: String,
    model: Option<&str>,
) {
    let mut env = vec![
        ("TOLLGATE_BASE_URL", format!("{}/v1", app.data_url)),
        ("TOLLGATE_KEY", key),
    ];
    if let Some(model) = model {
        env.push(("TOLLGATE_MODEL", model.to_owned()));
    }
    run_script(script, env).await;
}

#[tokio::test]
async fn the_official_openai_sdk_works_unchanged() {
    let app = gateway().await;
    let key = app.key().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_sdk.py");
    run_script(
        script,
        vec![
            ("TOLLGATE_BASE_URL", format!("{}/v1", app.data_url)),
            ("TOLLGATE_KEY", key),
        ],
    )
    .await;
}

#[tokio::test]
async fn the_official_anthropic_sdk_works_unchanged() {
    let app = gateway().await;
    let key = app.key().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/anthropic_sdk.py");
    // The anthropic SDK appends /v1/messages to its base URL.
    run_script(
        script,
        vec![
            ("TOLLGATE_ANTHROPIC_BASE_URL", app.data_url.clone()),
            ("TOLLGATE_KEY", key),
        ],
    )
    .await;
}

/// The repository's own `tollgate.toml`, its deployments pointed at a mock, serves what a
/// newcomer tries first: OpenAI and Claude models through both SDKs, and embeddings.
#[tokio::test]
async fn the_example_configuration_serves_openai_claude_and_embeddings() {
    let mock = mock_provider::spawn(MockConfig::default()).await.unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let example = std::fs::read_to_string(format!("{root}/tollgate.toml")).unwrap();
    let start = example.find("[[deployments]]").unwrap();
    let deployments = example[start..].replace("http://127.0.0.1:18080/v1", &mock.base_url());
    let app = TestApp::spawn_with(Options {
        deployments: Some(deployments),
        pricing_dir: Some(format!("{root}/pricing").into()),
        ..Options::default()
    })
    .await;
    let key = app.key().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/example_config.py");
    run_script(
        script,
        vec![
            ("TOLLGATE_BASE_URL", app.data_url.clone()),
            ("TOLLGATE_KEY", key),
        ],
    )
    .await;
    let models: Vec<String> = app
        .all_ledger_rows()
        .await
        .into_iter()
        .map(|row| row.model)
        .collect();
    assert_eq!(models.len(), 7, "{models:?}");
}
