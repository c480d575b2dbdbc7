//! The real `tollgate serve` binary as a child process: for what only the binary does (its
//! signal handlers) and what only a process can suffer (SIGKILL).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running gateway process, killed when dropped, whether the test passed or not.
pub struct GatewayProcess {
    child: Child,
    pub data_url: String,
    pub admin_url: String,
}

impl GatewayProcess {
    /// Starts the gateway with the configuration `rest` (everything but the listeners), written
    /// to `config_path`, on free loopback ports. Ports picked this way are free when picked, but
    /// another test may take one before the gateway binds it: the gateway then exits, and this
    /// tries again with new ports.
    pub async fn start(config_path: &Path, rest: &str) -> GatewayProcess {
        for _ in 0..5 {
            let (data, admin) = (free_port(), free_port());
            let config = format!("listen = \"{data}\"\nadmin_listen = \"{admin}\"\n{rest}");
            std::fs::write(config_path, config).unwrap();
            let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
                .arg("--config")
                .arg(config_path)
                .arg("serve")
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            // "tollgate serving" is logged once both listeners are bound by this process.
            let stdout = child.stdout.take().unwrap();
            let serving = tokio::task::spawn_blocking(move || {
                use std::io::BufRead;
                let mut lines = std::io::BufReader::new(stdout).lines();
                let found = lines
                    .by_ref()
                    .map_while(Result::ok)
                    .any(|line| line.contains("tollgate serving"));
                // Keep draining so the gateway never blocks on a full pipe.
                std::thread::spawn(move || lines.for_each(drop));
                found
            });
            let process = GatewayProcess {
                child,
                data_url: format!("http://{data}"),
                admin_url: format!("http://{admin}"),
            };
            let started = tokio::time::timeout(Duration::from_secs(60), serving)
                .await
                .unwrap()
                .unwrap();
            if started {
                return process;
            }
        }
        panic!("the gateway did not start");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGKILL: no shutdown, no flush, no destructor runs in the gateway.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The configuration of a gateway on `database_url` and the shared Redis, serving
/// `test-model` from the mock at `mock_url`, with prices from `pricing_dir` and its journal in
/// `journal_dir`; `ledger_extra` adds lines to the `[ledger]` section.
pub fn config(
    database_url: &str,
    pricing_dir: &Path,
    journal_dir: &Path,
    mock_url: &str,
    ledger_extra: &str,
) -> String {
    format!(
        r#"database_url = "{database_url}"
redis_url = "{redis}"
[admin]
jwt_secret = "{jwt_secret}"
[pricing]
dir = "{pricing}"
[ledger]
journal_dir = "{journal}"
{ledger_extra}
[[deployments]]
name = "mock"
kind = "openai"
base_url = "{mock_url}"
models = {{ "test-model" = "test-model" }}
"#,
        redis = super::redis_url(),
        jwt_secret = super::JWT_SECRET,
        pricing = pricing_dir.display(),
        journal = journal_dir.display(),
    )
}

fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}
