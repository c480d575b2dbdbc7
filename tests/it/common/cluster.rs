//! A Redis Cluster and a Sentinel-managed master of a test's own, on loopback ports, so a
//! test can kill a master and watch its replica take over without touching the Redis every
//! other test shares. Every process is killed when its guard drops, even on failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One redis-server process (a cluster node, a master, a replica or a sentinel).
pub struct Node {
    pub port: u16,
    child: Option<Child>,
}

impl Node {
    fn start(dir: &Path, port: u16, args: &[&str]) -> Node {
        let child = Command::new("redis-server")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/services.sh installs it)");
        wait_until(Duration::from_secs(5), "redis-server to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Node {
            port,
            child: Some(child),
        }
    }

    /// SIGKILL: the node is gone at once, with whatever it had not replicated.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's answer to `args`, as redis-cli prints it.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli (scripts/services.sh installs it)");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Calls `done` until it holds, failing the test after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A fresh directory for the servers' files (cluster configs, sentinel configs).
fn scratch_dir(kind: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("tollgate-{kind}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A free port whose cluster bus port (port + 10000) is free too.
fn cluster_port() -> u16 {
    loop {
        let port = super::redis::free_port();
        if port < 55000 && std::net::TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

/// Three masters with one replica each.
pub struct OwnCluster {
    pub nodes: Vec<Node>,
    dir: PathBuf,
}

impl OwnCluster {
    pub fn start() -> OwnCluster {
        let dir = scratch_dir("cluster");
        let nodes: Vec<Node> = (0..6)
            .map(|i| {
                let port = cluster_port();
                let config = format!("nodes-{i}.conf");
                Node::start(
                    &dir,
                    port,
                    &[
                        "--port",
                        &port.to_string(),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        &config,
                        // A dead master is replaced within about two seconds.
                        "--cluster-node-timeout",
                        "1000",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ],
                )
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = OwnCluster { nodes, dir };
        cluster.wait_ok();
        // A replica that has not finished its first sync cannot take over ("disconnected
        // from master for longer than allowed"), and a loaded master can hold that sync
        // back for seconds: wait for all three before any test kills a master.
        wait_until(Duration::from_secs(20), "three replicas in sync", || {
            let synced = cluster
                .nodes
                .iter()
                .filter(|n| {
                    n.cli(&["info", "replication"])
                        .contains("master_link_status:up")
                })
                .count();
            synced == 3
        });
        cluster
    }

    /// Waits until every live node says the cluster is whole, with three masters.
    pub fn wait_ok(&self) {
        wait_until(Duration::from_secs(20), "cluster_state:ok", || {
            self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
                let info = n.cli(&["cluster", "info"]);
                info.contains("cluster_state:ok") && self.masters_seen_by(n) == 3
            })
        });
    }

    fn masters_seen_by(&self, node: &Node) -> usize {
        node.cli(&["cluster", "nodes"])
            .lines()
            .filter(|line| {
                let flags = line.split(' ').nth(2).unwrap_or("");
                flags.contains("master") && !flags.contains("fail")
            })
            .count()
    }

    /// `redis+cluster://` naming the three first nodes (the client finds the rest).
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self.nodes[..3]
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// Which of `nodes` is the master serving `key` now.
    pub fn master_of(&self, key: &str) -> usize {
        let live = self.nodes.iter().find(|n| n.child.is_some()).unwrap();
        let slot: u16 = live
            .cli(&["cluster", "keyslot", key])
            .trim()
            .parse()
            .unwrap();
        for line in live.cli(&["cluster", "nodes"]).lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let (from, to) = range.split_once('-').unwrap_or((range, range));
                match (from.parse::<u16>(), to.parse::<u16>()) {
                    (Ok(from), Ok(to)) => (from..=to).contains(&slot),
                    _ => false,
                }
            });
            if serves {
                let port: u16 = fields[1].split(['@', ':']).nth(1).unwrap().parse().unwrap();
                return self.nodes.iter().position(|n| n.port == port).unwrap();
            }
        }
        panic!("no master serves slot {slot}");
    }

    /// Which of `nodes` replicates the master `master`.
    pub fn replica_of(&self, master: usize) -> usize {
        let table = self.nodes[master].cli(&["cluster", "nodes"]);
        let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split(' ').collect()).collect();
        let port =
            |row: &[&str]| -> u16 { row[1].split(['@', ':']).nth(1).unwrap().parse().unwrap() };
        let master_port = self.nodes[master].port;
        let id = rows.iter().find(|row| port(row) == master_port).unwrap()[0];
        let replica = rows
            .iter()
            .find(|row| row[3] == id)
            .expect("the master has a replica");
        let replica_port = port(replica);
        self.nodes
            .iter()
            .position(|n| n.port == replica_port)
            .unwrap()
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub const SENTINEL_MASTER: &str = "tgmaster";

/// A master, its replica and three sentinels watching them (quorum two).
pub struct OwnSentinel {
    pub master: Node,
    pub replica: Node,
    pub sentinels: Vec<Node>,
    dir: PathBuf,
}

impl OwnSentinel {
    pub fn start() -> OwnSentinel {
        let dir = scratch_dir("sentinel");
        let data = |port: u16, extra: &[&str]| {
            let port_arg = port.to_string();
            let mut args = vec![
                "--port",
                &port_arg,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ];
            args.extend_from_slice(extra);
            Node::start(&dir, port, &args)
        };
        let master = data(super::redis::free_port(), &[]);
        let master_port = master.port.to_string();
        let replica = data(
            super::redis::free_port(),
            &["--replicaof", "127.0.0.1", &master_port],
        );
        wait_until(Duration::from_secs(10), "the replica to sync", || {
            replica
                .cli(&["info", "replication"])
                .contains("master_link_status:up")
        });
        let sentinels = (0..3)
            .map(|i| {
                let port = super::redis::free_port();
                let config = format!("sentinel-{i}.conf");
                // Sentinels rewrite their config file, so each has its own.
                std::fs::write(
                    dir.join(&config),
                    format!(
                        "port {port}\nbind 127.0.0.1\n\
                         sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {master_port} 2\n\
                         sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n\
                         sentinel failover-timeout {SENTINEL_MASTER} 5000\n"
                    ),
                )
                .unwrap();
                Node::start(&dir, port, &[&config, "--sentinel"])
            })
            .collect();
        let sentinel = OwnSentinel {
            master,
            replica,
            sentinels,
            dir,
        };
        sentinel.wait_master(sentinel.master.port);
        // A failover needs a majority of sentinels that know each other and the replica.
        wait_until(
            Duration::from_secs(20),
            "the sentinels to find each other",
            || {
                sentinel.sentinels.iter().all(|s| {
                    let shown = s.cli(&["sentinel", "master", SENTINEL_MASTER]);
                    let field = |name: &str| {
                        let mut lines = shown.lines();
                        lines
                            .position(|l| l == name)
                            .and_then(|_| lines.next())
                            .map(str::to_string)
                    };
                    field("num-other-sentinels").as_deref() == Some("2")
                        && field("num-slaves").as_deref() == Some("1")
                })
            },
        );
        sentinel
    }

    /// Waits until every sentinel names the server on `port` as the master.
    pub fn wait_master(&self, port: u16) {
        wait_until(
            Duration::from_secs(20),
            "the sentinels to agree on the master",
            || {
                self.sentinels.iter().all(|s| {
                    s.cli(&["sentinel", "get-master-addr-by-name", SENTINEL_MASTER])
                        .lines()
                        .nth(1)
                        .is_some_and(|p| p.trim() == port.to_string())
                })
            },
        );
    }

    pub fn url(&self) -> String {
        let sentinels: Vec<String> = self
            .sentinels
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+sentinel://{}/{SENTINEL_MASTER}", sentinels.join(","))
    }
}

impl Drop for OwnSentinel {
    fn drop(&mut self) {
        self.sentinels.clear();
        self.replica.kill();
        self.master.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
