//! Runs the real `tollctl` binary against a one-shot HTTP stub, to check what people see:
//! exit codes, stdout, stderr, and that the token never leaks.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::mpsc;
use std::thread;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const TOKEN: &str = "eyJ.super-secret-admin-token.sig";
const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// What the stub saw: request line, headers (lowercased names), body.
struct Seen {
    request_line: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Serves exactly one request with `status` and `body`, returning the base URL and what it saw.
fn stub(status: u16, body: &'static str) -> std::io::Result<(String, mpsc::Receiver<Seen>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || -> std::io::Result<()> {
        let (stream, _) = listener.accept()?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                headers.push((n.trim().to_lowercase(), v.trim().to_string()));
            }
        }
        let len = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut buf = vec![0; len];
        reader.read_exact(&mut buf)?;
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )?;
        stream.flush()?;
        let _ = tx.send(Seen {
            request_line: request_line.trim_end().to_string(),
            headers,
            body: String::from_utf8_lossy(&buf).into_owned(),
        });
        Ok(())
    });
    Ok((url, rx))
}

fn tollctl(args: &[&str], envs: &[(&str, &str)]) -> std::io::Result<Output> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollctl"));
    for var in [
        "TOLLGATE_ADMIN_URL",
        "TOLLGATE_ADMIN_TOKEN",
        "TOLLGATE_ADMIN_JWT_SECRET",
    ] {
        cmd.env_remove(var);
    }
    cmd.args(args).envs(envs.iter().copied()).output()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn lists_teams_as_a_table_with_the_bearer_token() -> TestResult {
    let (url, seen) = stub(
        200,
        r#"{"data":[{"id":"0190a7c2-4e5b-7c3d-8e9f-0a1b2c3d4e5f","name":"research","created_at":"2025-06-01T12:00:00Z"}]}"#,
    )?;
    let out = tollctl(
        &["teams", "list"],
        &[
            ("TOLLGATE_ADMIN_URL", &url),
            ("TOLLGATE_ADMIN_TOKEN", TOKEN),
        ],
    )?;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "ID                                    NAME      CREATED AT\n\
         0190a7c2-4e5b-7c3d-8e9f-0a1b2c3d4e5f  research  2025-06-01 12:00 UTC\n"
    );
    let seen = seen.recv()?;
    assert_eq!(seen.request_line, "GET /admin/v1/teams HTTP/1.1");
    assert_eq!(
        seen.header("authorization"),
        Some(&*format!("Bearer {TOKEN}"))
    );
    Ok(())
}

#[test]
fn api_errors_print_message_and_status_and_exit_1() -> TestResult {
    let (url, _seen) = stub(
        404,
        r#"{"error":{"message":"team not found: nope","type":"not_found_error","code":"not_found","param":"team"}}"#,
    )?;
    let out = tollctl(
        &["teams", "show", "nope", "--url", &url, "--token", TOKEN],
        &[],
    )?;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: team not found: nope (HTTP 404)\n"
    );
    assert!(out.stdout.is_empty());
    Ok(())
}

#[test]
fn unreachable_gateway_names_the_url_but_not_the_token() -> TestResult {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let url = format!("http://127.0.0.1:{port}");
    let out = tollctl(
        &["keys", "list"],
        &[
            ("TOLLGATE_ADMIN_URL", &url),
            ("TOLLGATE_ADMIN_TOKEN", TOKEN),
        ],
    )?;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.starts_with(&format!("error: could not reach the admin API at {url}")),
        "{err}"
    );
    assert!(!err.contains(TOKEN), "{err}");
    Ok(())
}

#[test]
fn issue_env_format_prints_assignments_and_a_note() -> TestResult {
    let (url, seen) = stub(
        201,
        r#"{"data":[
            {"id":"k1","team_id":"t","experiment_id":null,"name":null,"prefix":"tg-AbCd1234","allowed_models":null,"expires_at":null,"revoked_at":null,"created_at":"2025-06-01T12:00:00Z","key":"tg-AbCd1234aaaa"},
            {"id":"k2","team_id":"t","experiment_id":null,"name":null,"prefix":"tg-EfGh5678","allowed_models":null,"expires_at":null,"revoked_at":null,"created_at":"2025-06-01T12:00:00Z","key":"tg-EfGh5678bbbb"}]}"#,
    )?;
    let out = tollctl(
        &[
            "keys",
            "issue",
            "--team",
            "research",
            "--experiment",
            "evals",
            "--count",
            "2",
            "--models",
            "gpt-4o,claude-sonnet-4",
            "--format",
            "env",
        ],
        &[
            ("TOLLGATE_ADMIN_URL", &url),
            ("TOLLGATE_ADMIN_TOKEN", TOKEN),
        ],
    )?;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "OPENAI_API_KEY=tg-AbCd1234aaaa\nOPENAI_API_KEY=tg-EfGh5678bbbb\n"
    );
    assert!(text(&out.stderr).contains("shown only once"));
    let seen = seen.recv()?;
    assert_eq!(seen.request_line, "POST /admin/v1/keys HTTP/1.1");
    let body: serde_json::Value = serde_json::from_str(&seen.body)?;
    assert_eq!(
        body,
        serde_json::json!({"team":"research","experiment":"evals","count":2,"allowed_models":["gpt-4o","claude-sonnet-4"]})
    );
    Ok(())
}

#[test]
fn missing_token_is_explained() -> TestResult {
    let out = tollctl(&["teams", "list"], &[])?;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("TOLLGATE_ADMIN_TOKEN"));
    Ok(())
}

#[test]
fn token_mint_prints_only_a_verifiable_token() -> TestResult {
    let out = tollctl(
        &["token", "mint", "--role", "admin", "--ttl", "1h"],
        &[("TOLLGATE_ADMIN_JWT_SECRET", SECRET)],
    )?;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let token = stdout.trim_end_matches('\n');
    assert_eq!(stdout.lines().count(), 1);
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_required_spec_claims(&["exp", "sub"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
        &v,
    )?;
    assert_eq!(data.claims["role"], "admin");
    assert_eq!(data.claims["sub"], "tollctl");
    Ok(())
}

#[test]
fn token_mint_without_secret_names_the_env_var() -> TestResult {
    let out = tollctl(&["token", "mint", "--role", "admin"], &[])?;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("TOLLGATE_ADMIN_JWT_SECRET"));
    assert!(out.stdout.is_empty());
    Ok(())
}

#[test]
fn help_never_shows_secret_env_values() -> TestResult {
    let envs = [
        ("TOLLGATE_ADMIN_TOKEN", TOKEN),
        ("TOLLGATE_ADMIN_JWT_SECRET", SECRET),
    ];
    for args in [vec!["--help"], vec!["token", "mint", "--help"]] {
        let out = tollctl(&args, &envs)?;
        let all = text(&out.stdout) + &text(&out.stderr);
        assert!(!all.contains(TOKEN) && !all.contains(SECRET), "{all}");
    }
    Ok(())
}
