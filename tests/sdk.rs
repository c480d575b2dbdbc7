//! The official `openai` Python SDK against the gateway (content, usage, streaming, errors).
//! `scripts/test.sh` installs the SDK into a virtualenv and points `TOLLGATE_TEST_PYTHON`
//! at it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::TestApp;

#[tokio::test]
async fn the_official_openai_sdk_works_unchanged() {
    let app = TestApp::spawn().await;
    let key = app.key().await;
    let python = std::env::var("TOLLGATE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_sdk.py");
    let base_url = format!("{}/v1", app.data_url);
    // Off the runtime's thread: the gateway under test runs on it.
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&python)
            .arg(script)
            .env("TOLLGATE_BASE_URL", base_url)
            .env("TOLLGATE_KEY", &key)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run {python}: {e} (run ./scripts/test.sh, which installs the SDK)")
            })
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "openai SDK checks failed (is the SDK installed? ./scripts/test.sh installs it):\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
