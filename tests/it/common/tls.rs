//! TLS servers of a test's own: a throwaway PKI (made with rcgen), a `redis-server` that
//! speaks only TLS, and a PostgreSQL cluster (initdb into a temp dir) with `ssl = on`. Every
//! server listens on 127.0.0.1 only and is stopped, with its files removed, when its guard is
//! dropped — also when the test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use sqlx::{Connection, PgConnection};

use super::redis::free_port;

/// A directory removed with everything in it when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "tollgate-{label}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The user that owns the CA and client certificate: PostgreSQL's `cert` authentication
/// maps the client certificate's CN to this role.
pub const CERT_USER: &str = "tollgate_cert";

/// A CA, a server certificate it signed (for 127.0.0.1 only, so `localhost` tells verify-ca
/// from verify-full), a client certificate it signed, an unrelated CA, and a self-signed
/// server certificate no CA signed.
pub struct Pki {
    /// Holds the files: the directory is removed when the PKI is dropped.
    _dir: TempDir,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub other_ca: PathBuf,
    pub self_signed_cert: PathBuf,
    pub self_signed_key: PathBuf,
}

fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

fn leaf(
    names: &[&str],
    common_name: &str,
    usage: ExtendedKeyUsagePurpose,
    issuer: Option<&Issuer<'static, KeyPair>>,
) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = match issuer {
        Some(issuer) => {
            params.use_authority_key_identifier_extension = true;
            params.signed_by(&key, issuer).unwrap()
        }
        None => params.self_signed(&key).unwrap(),
    };
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    pub fn generate() -> Pki {
        let dir = TempDir::new("pki");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let (ca_pem, issuer) = ca("Tollgate test CA");
        let (other_ca_pem, _) = ca("Unrelated test CA");
        let (server_cert, server_key) = leaf(
            &["127.0.0.1"],
            "127.0.0.1",
            ExtendedKeyUsagePurpose::ServerAuth,
            Some(&issuer),
        );
        let (client_cert, client_key) = leaf(
            &[],
            CERT_USER,
            ExtendedKeyUsagePurpose::ClientAuth,
            Some(&issuer),
        );
        let (self_signed_cert, self_signed_key) = leaf(
            &["127.0.0.1", "localhost"],
            "self-signed",
            ExtendedKeyUsagePurpose::ServerAuth,
            None,
        );
        Pki {
            ca: write("ca.crt", &ca_pem),
            server_cert: write("server.crt", &server_cert),
            server_key: write("server.key", &server_key),
            client_cert: write("client.crt", &client_cert),
            client_key: write("client.key", &client_key),
            other_ca: write("other-ca.crt", &other_ca_pem),
            self_signed_cert: write("self-signed.crt", &self_signed_cert),
            self_signed_key: write("self-signed.key", &self_signed_key),
            _dir: dir,
        }
    }
}

/// Stops `child` with `signal` (a name for kill(1)), waiting up to a few seconds before
/// SIGKILL, so nothing a test started outlives it.
fn stop(child: &mut Child, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// How a [`TlsRedis`] is set up.
pub struct RedisTlsSetup<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
    /// The CA client certificates are checked against.
    pub ca: &'a Path,
    /// Require a client certificate (`tls-auth-clients yes`).
    pub require_client_cert: bool,
    /// An ACL user (name, password); the default user is then disabled.
    pub acl_user: Option<(&'a str, &'a str)>,
}

/// A `redis-server` that accepts TLS only (`--port 0`).
pub struct TlsRedis {
    pub port: u16,
    child: Child,
}

impl TlsRedis {
    pub fn start(setup: RedisTlsSetup<'_>) -> TlsRedis {
        let port = free_port();
        let mut args: Vec<String> = [
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &setup.cert.display().to_string(),
            "--tls-key-file",
            &setup.key.display().to_string(),
            "--tls-ca-cert-file",
            &setup.ca.display().to_string(),
            "--tls-auth-clients",
            if setup.require_client_cert {
                "yes"
            } else {
                "no"
            },
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some((user, password)) = setup.acl_user {
            for arg in [
                "--user",
                user,
                "on",
                &format!(">{password}"),
                "~*",
                "&*",
                "+@all",
                "--user",
                "default",
                "off",
            ] {
                args.push(arg.to_string());
            }
        }
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/services.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        TlsRedis { port, child }
    }

    /// `rediss://[userinfo@]127.0.0.1:port`.
    pub fn url(&self, userinfo: &str) -> String {
        format!("rediss://{userinfo}127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        stop(&mut self.child, "TERM");
    }
}

/// The newest PostgreSQL server binaries: Debian's `/usr/lib/postgresql/<version>/bin`.
fn postgres_bin(name: &str) -> PathBuf {
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin").join(name)))
        })
        .filter(|(_, path)| path.exists())
        .max_by_key(|(version, _)| *version);
    newest
        .map(|(_, path)| path)
        .unwrap_or_else(|| PathBuf::from(name))
}

/// PostgreSQL refuses to run as root: as root (here and in CI) the cluster runs as the
/// `postgres` user; as anyone else, as that user.
fn postgres_user() -> Option<(u32, u32)> {
    let id = |args: &[&str]| -> u32 {
        let out = Command::new("id").args(args).output().unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    if id(&["-u"]) != 0 {
        return None;
    }
    Some((id(&["-u", "postgres"]), id(&["-g", "postgres"])))
}

/// `command` as the cluster's user, started in `dir`: PostgreSQL's programs resolve their own
/// path from the working directory, which must be one that user can read.
fn as_postgres<'a>(
    command: &'a mut Command,
    user: Option<(u32, u32)>,
    dir: &Path,
) -> &'a mut Command {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    command.current_dir(dir)
}

fn chown(path: &Path, user: Option<(u32, u32)>) {
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    }
}

pub const SUPERUSER_PASSWORD: &str = "superuser-pw-7c1e";
/// The gateway's role: a password with characters that must be percent-encoded in a URL.
pub const GATEWAY_USER: &str = "tollgate";
pub const GATEWAY_PASSWORD: &str = "pg-s3cret/p@ss";
pub const GATEWAY_PASSWORD_IN_URL: &str = "pg-s3cret%2Fp%40ss";

/// A PostgreSQL cluster of the test's own with `ssl = on`, the server certificate of a
/// [`Pki`] and `cert` authentication for [`CERT_USER`]; plain connections are allowed for
/// other roles, so `sslmode=disable` can be seen to stay plain.
pub struct TlsPostgres {
    pub port: u16,
    child: Child,
    dir: TempDir,
}

impl TlsPostgres {
    pub async fn start(pki: &Pki) -> TlsPostgres {
        let user = postgres_user();
        let dir = TempDir::new("pg");
        chown(dir.path(), user);
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, SUPERUSER_PASSWORD).unwrap();
        chown(&pwfile, user);
        let status = as_postgres(&mut Command::new(postgres_bin("initdb")), user, dir.path())
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--no-sync", "-E", "UTF8", "--no-locale"])
            .args(["--auth-local=scram-sha-256", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .stdout(Stdio::null())
            .status()
            .expect("initdb (scripts/services.sh installs postgresql)");
        assert!(status.success(), "initdb failed");
        for (name, from) in [
            ("server.crt", &pki.server_cert),
            ("server.key", &pki.server_key),
            ("ca.crt", &pki.ca),
        ] {
            let to = data.join(name);
            std::fs::copy(from, &to).unwrap();
            chown(&to, user);
        }
        // PostgreSQL refuses a key file others can read.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                data.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
        }
        std::fs::write(
            data.join("pg_hba.conf"),
            format!(
                "local all all scram-sha-256\n\
                 hostssl all {CERT_USER} 127.0.0.1/32 cert\n\
                 host all {CERT_USER} 127.0.0.1/32 reject\n\
                 host all all 127.0.0.1/32 scram-sha-256\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("postgres.log")).unwrap();
        let child = as_postgres(
            &mut Command::new(postgres_bin("postgres")),
            user,
            dir.path(),
        )
        .arg("-D")
        .arg(&data)
        .args(["-c", &format!("port={port}")])
        .args(["-c", "listen_addresses=127.0.0.1"])
        .args([
            "-c",
            &format!("unix_socket_directories={}", dir.path().display()),
        ])
        .args(["-c", "ssl=on"])
        .args(["-c", "ssl_cert_file=server.crt"])
        .args(["-c", "ssl_key_file=server.key"])
        .args(["-c", "ssl_ca_file=ca.crt"])
        .args(["-c", "fsync=off", "-c", "max_connections=60"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("postgres");
        let server = TlsPostgres { port, child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match PgConnection::connect(&server.superuser_url()).await {
                Ok(conn) => {
                    let _ = conn.close().await;
                    break;
                }
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "postgres did not start: {e}\n{}",
                        server.log()
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        server
            .superuser(&format!(
                "CREATE ROLE {GATEWAY_USER} LOGIN PASSWORD '{GATEWAY_PASSWORD}'"
            ))
            .await;
        server
            .superuser(&format!("CREATE ROLE {CERT_USER} LOGIN"))
            .await;
        server
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    fn superuser_url(&self) -> String {
        format!(
            "postgres://postgres:{SUPERUSER_PASSWORD}@127.0.0.1:{}/postgres?sslmode=require",
            self.port
        )
    }

    async fn superuser(&self, sql: &str) {
        let mut conn = PgConnection::connect(&self.superuser_url()).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        let _ = conn.close().await;
    }

    /// A new database owned by `owner`.
    pub async fn create_database(&self, owner: &str) -> String {
        let name = format!("tg_tls_{}", uuid::Uuid::new_v4().simple());
        self.superuser(&format!("CREATE DATABASE {name} OWNER {owner}"))
            .await;
        name
    }

    /// `postgres://tollgate:<password>@<host>:<port>/<database>?<params>`.
    pub fn url(&self, host: &str, database: &str, params: &str) -> String {
        format!(
            "postgres://{GATEWAY_USER}:{GATEWAY_PASSWORD_IN_URL}@{host}:{}/{database}?{params}",
            self.port
        )
    }

    /// Whether each open connection of `user` to `database` uses TLS.
    pub async fn connections_use_tls(&self, user: &str, database: &str) -> Vec<bool> {
        let mut conn = PgConnection::connect(&self.superuser_url()).await.unwrap();
        let rows: Vec<bool> = sqlx::query_scalar(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid \
             WHERE a.usename = $1 AND a.datname = $2",
        )
        .bind(user)
        .bind(database)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let _ = conn.close().await;
        rows
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        // Immediate shutdown: the postmaster stops its backends at once; the data is thrown
        // away with the directory.
        stop(&mut self.child, "QUIT");
    }
}
