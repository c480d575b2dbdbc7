//! Locating and running `tollctl`, the admin CLI, against a test gateway.

use std::path::PathBuf;
use std::process::{Command, Output};

use super::TestApp;

/// The `tollctl` binary: `cargo test --workspace` builds it next to the gateway's own.
pub fn path() -> PathBuf {
    let path = std::path::Path::new(env!("CARGO_BIN_EXE_tollgate"))
        .parent()
        .unwrap()
        .join("tollctl");
    assert!(
        path.exists(),
        "{} is missing: build the workspace (cargo test --workspace)",
        path.display()
    );
    path
}

/// `tollctl` pointed at an admin API with a token, ready for arguments.
pub fn command(admin_url: &str, token: &str) -> Command {
    let mut command = Command::new(path());
    command
        .env("TOLLGATE_ADMIN_URL", admin_url)
        .env("TOLLGATE_ADMIN_TOKEN", token);
    command
}

/// The standard output of a `tollctl` run, failing the test (with its stderr) if it failed.
pub fn stdout_of(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "tollctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `tollctl` to the end on this thread and returns its standard output.
pub fn run_blocking(admin_url: &str, token: &str, args: &[&str]) -> String {
    stdout_of(args, command(admin_url, token).args(args).output().unwrap())
}

/// Runs `tollctl` against the app and returns its standard output. It runs off the runtime's
/// thread: the app answers on that runtime, so blocking it would deadlock.
pub async fn run(app: &TestApp, args: &[&str]) -> String {
    let (url, token) = (app.admin_url.clone(), app.admin_token.clone());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_blocking(&url, &token, &args)
    })
    .await
    .unwrap()
}
