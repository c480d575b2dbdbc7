//! The forms `redis_url` can take: one server (`redis://`, `rediss://`, `redis+unix://`), a
//! Redis Cluster (`redis+cluster://`, `rediss+cluster://`) or a master found through Redis
//! Sentinel (`redis+sentinel://`, `rediss+sentinel://`).
//!
//! A cluster or sentinel URL lists several `host:port` nodes, which no URL parser accepts, so
//! those are taken apart here. Problems are described without echoing any part of the URL:
//! a password with an unencoded `/` or `@` would otherwise leak through the part it spilled
//! into. Nodes are named by their place in the list instead.

use percent_encoding::percent_decode_str;

use super::Secret;

pub(super) const URL_FIX: &str = "write it as redis://host:6379, rediss://user:password@host:6380 \
    (TLS), redis+unix:///path/to/redis.sock, redis+cluster://host1:6379,host2:6379 (Redis \
    Cluster) or redis+sentinel://host1:26379,host2:26379/mymaster (Redis Sentinel)";

const CLUSTER_FIX: &str = "write it as redis+cluster://[user:password@]host1:port1,host2:port2,... \
    (rediss+cluster:// for TLS): any few nodes of the cluster, which tells the rest";

const SENTINEL_FIX: &str = "write it as \
    redis+sentinel://[user:password@]host1:26379,host2:26379/<master name>[/<db>] \
    (rediss+sentinel:// for TLS), with ?sentinel_username=...&sentinel_password=... when the \
    sentinels themselves require a password";

/// Port a cluster node listens on when the URL names none.
const CLUSTER_DEFAULT_PORT: u16 = 6379;
/// Port a sentinel listens on when the URL names none.
const SENTINEL_DEFAULT_PORT: u16 = 26379;

/// `redis_url`, understood.
#[derive(Debug, Clone)]
pub enum RedisUrl {
    /// One server: redis-rs reads the URL itself (host, port, database, unix socket).
    Single { tls: bool, insecure: bool },
    /// A Redis Cluster or a Sentinel-managed master.
    Multi(MultiNodeUrl),
}

/// A cluster or sentinel URL, taken apart. `Debug` shows no password.
#[derive(Debug, Clone)]
pub struct MultiNodeUrl {
    pub kind: MultiNodeKind,
    /// `rediss+...`: TLS to every node (and, for Sentinel, to the sentinels too).
    pub tls: bool,
    /// `#insecure`: TLS without checking certificates.
    pub insecure: bool,
    /// The cluster's seed nodes, or the sentinels.
    pub nodes: Vec<RedisNode>,
    /// The ACL user and password of the data nodes (cluster nodes, or the master).
    pub username: Option<String>,
    pub password: Option<Secret<String>>,
    /// The user and password the sentinels themselves require, if any.
    pub sentinel_username: Option<String>,
    pub sentinel_password: Option<Secret<String>>,
    /// The passwords as the URL spells them (percent-encoded), for scrubbing messages.
    raw_secrets: Vec<Secret<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiNodeKind {
    Cluster,
    Sentinel { master: String, db: i64 },
}

/// One `host:port` of a cluster or sentinel URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisNode {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for RedisNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Why a `redis_url` was refused, and how to write it instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlProblem {
    pub problem: String,
    pub fix: &'static str,
}

fn problem(problem: impl Into<String>, fix: &'static str) -> UrlProblem {
    UrlProblem {
        problem: problem.into(),
        fix,
    }
}

impl RedisUrl {
    pub fn parse(url: &str) -> Result<RedisUrl, UrlProblem> {
        // The scheme first: a cluster's `host1:port1,host2:port2` is not a single URL.
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(problem("not a URL (no scheme://)", URL_FIX));
        };
        let (kind, tls) = match scheme {
            "redis" | "redis+unix" | "unix" => (None, false),
            "rediss" => (None, true),
            "redis+cluster" => (Some(Kind::Cluster), false),
            "rediss+cluster" => (Some(Kind::Cluster), true),
            "redis+sentinel" => (Some(Kind::Sentinel), false),
            "rediss+sentinel" => (Some(Kind::Sentinel), true),
            other => {
                return Err(problem(
                    format!("the scheme {other}:// is not supported"),
                    URL_FIX,
                ));
            }
        };
        match kind {
            None => single(url, tls).map(|insecure| RedisUrl::Single { tls, insecure }),
            Some(kind) => multi(kind, tls, rest).map(RedisUrl::Multi),
        }
    }

    pub fn tls(&self) -> bool {
        match self {
            RedisUrl::Single { tls, .. } => *tls,
            RedisUrl::Multi(url) => url.tls,
        }
    }

    /// `#insecure` at the end of a TLS URL.
    pub fn insecure(&self) -> bool {
        match self {
            RedisUrl::Single { insecure, .. } => *insecure,
            RedisUrl::Multi(url) => url.insecure,
        }
    }
}

impl MultiNodeUrl {
    /// The URL without its passwords, e.g. `redis+sentinel://app@s1:26379,s2:26379/mymaster`.
    pub fn shown(&self) -> String {
        let scheme = match (&self.kind, self.tls) {
            (MultiNodeKind::Cluster, false) => "redis+cluster",
            (MultiNodeKind::Cluster, true) => "rediss+cluster",
            (MultiNodeKind::Sentinel { .. }, false) => "redis+sentinel",
            (MultiNodeKind::Sentinel { .. }, true) => "rediss+sentinel",
        };
        let user = self
            .username
            .as_deref()
            .map(|user| format!("{user}@"))
            .unwrap_or_default();
        let nodes: Vec<String> = self.nodes.iter().map(RedisNode::to_string).collect();
        let path = match &self.kind {
            MultiNodeKind::Cluster => String::new(),
            MultiNodeKind::Sentinel { master, db: 0 } => format!("/{master}"),
            MultiNodeKind::Sentinel { master, db } => format!("/{master}/{db}"),
        };
        format!("{scheme}://{user}{}{path}", nodes.join(","))
    }

    /// Every password of the URL, decoded and as written, longest first.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets: Vec<String> = self
            .password
            .iter()
            .chain(&self.sentinel_password)
            .chain(&self.raw_secrets)
            .map(|secret| secret.expose().clone())
            .filter(|secret| !secret.is_empty())
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        secrets
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Cluster,
    Sentinel,
}

/// Checks a one-server URL; returns whether it ends in `#insecure`.
fn single(url: &str, tls: bool) -> Result<bool, UrlProblem> {
    let parsed = url::Url::parse(url).map_err(|e| problem(format!("not a URL ({e})"), URL_FIX))?;
    let insecure = fragment(parsed.fragment(), tls)?;
    redis::IntoConnectionInfo::into_connection_info(url).map_err(|e| {
        // redis-rs describes the problem (bad database number, bad encoding) without the
        // URL's contents.
        problem(e.to_string(), URL_FIX)
    })?;
    Ok(insecure)
}

fn fragment(fragment: Option<&str>, tls: bool) -> Result<bool, UrlProblem> {
    match fragment {
        None | Some("") => Ok(false),
        Some("insecure") if tls => Ok(true),
        Some(_) => Err(problem(
            "the only fragment understood is #insecure, on a TLS (rediss...) URL",
            "remove the #... part (set redis_tls_insecure = true to skip verification)",
        )),
    }
}

fn multi(kind: Kind, tls: bool, rest: &str) -> Result<MultiNodeUrl, UrlProblem> {
    let fix = match kind {
        Kind::Cluster => CLUSTER_FIX,
        Kind::Sentinel => SENTINEL_FIX,
    };
    let (rest, fragment_text) = match rest.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (rest, None),
    };
    let insecure = fragment(fragment_text, tls)?;
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let mut raw_secrets = Vec::new();
    let (username, password) = match userinfo {
        None => (None, None),
        Some(userinfo) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            if let Some(password) = password {
                raw_secrets.push(Secret::new(password.to_string()));
            }
            let user = decode(user, "the user name", fix)?;
            let password = password
                .map(|p| decode(p, "the password", fix))
                .transpose()?;
            (
                Some(user).filter(|u| !u.is_empty()),
                password.filter(|p| !p.is_empty()).map(Secret::new),
            )
        }
    };
    let default_port = match kind {
        Kind::Cluster => CLUSTER_DEFAULT_PORT,
        Kind::Sentinel => SENTINEL_DEFAULT_PORT,
    };
    let nodes = nodes(hosts, default_port, fix)?;
    let mut sentinel_username = None;
    let mut sentinel_password = None;
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match (kind, name.as_ref()) {
            (Kind::Sentinel, "sentinel_username") => {
                sentinel_username = Some(value.into_owned()).filter(|u| !u.is_empty());
            }
            (Kind::Sentinel, "sentinel_password") => {
                raw_secrets.extend(raw_query_value(query, "sentinel_password"));
                sentinel_password = Some(value.into_owned())
                    .filter(|p| !p.is_empty())
                    .map(Secret::new);
            }
            (Kind::Cluster, _) => {
                return Err(problem(
                    format!(
                        "the query parameter `{name}` is not understood: a redis+cluster:// URL \
                         takes none"
                    ),
                    fix,
                ));
            }
            (Kind::Sentinel, _) => {
                return Err(problem(
                    format!(
                        "the query parameter `{name}` is not understood: a redis+sentinel:// URL \
                         takes only sentinel_username and sentinel_password"
                    ),
                    fix,
                ));
            }
        }
    }
    let kind = match kind {
        Kind::Cluster => match path {
            "" | "/" | "/0" => MultiNodeKind::Cluster,
            _ => {
                return Err(problem(
                    "a Redis Cluster has only database 0, so a redis+cluster:// URL takes no \
                     path",
                    fix,
                ));
            }
        },
        Kind::Sentinel => sentinel_path(path, fix)?,
    };
    Ok(MultiNodeUrl {
        kind,
        tls,
        insecure,
        nodes,
        username,
        password,
        sentinel_username,
        sentinel_password,
        raw_secrets,
    })
}

fn decode(text: &str, what: &str, fix: &'static str) -> Result<String, UrlProblem> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| problem(format!("{what} is not percent-encoded UTF-8"), fix))
}

/// `name`'s value as the query spells it (before decoding).
fn raw_query_value(query: &str, name: &str) -> Option<Secret<String>> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| Secret::new(value.to_string()))
}

fn nodes(hosts: &str, default_port: u16, fix: &'static str) -> Result<Vec<RedisNode>, UrlProblem> {
    if hosts.is_empty() {
        return Err(problem("names no node", fix));
    }
    hosts
        .split(',')
        .enumerate()
        .map(|(i, node)| {
            let place = i + 1;
            let (host, port) = if let Some(v6) = node.strip_prefix('[') {
                let (host, after) = v6.split_once(']').ok_or_else(|| {
                    problem(
                        format!("node {place} opens an IPv6 `[` it never closes"),
                        fix,
                    )
                })?;
                match after {
                    "" => (host, None),
                    _ => match after.strip_prefix(':') {
                        Some(port) => (host, Some(port)),
                        None => {
                            return Err(problem(
                                format!("node {place} has text after its IPv6 address"),
                                fix,
                            ));
                        }
                    },
                }
            } else {
                match node.rsplit_once(':') {
                    Some((host, port)) => (host, Some(port)),
                    None => (node, None),
                }
            };
            if host.is_empty() {
                return Err(problem(
                    format!("node {place} of the list has no host"),
                    fix,
                ));
            }
            let port = match port {
                None => default_port,
                Some(port) => port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                    problem(
                        format!("node {place} of the list has no valid port (1 to 65535)"),
                        fix,
                    )
                })?,
            };
            Ok(RedisNode {
                host: host.to_string(),
                port,
            })
        })
        .collect()
}

fn sentinel_path(path: &str, fix: &'static str) -> Result<MultiNodeKind, UrlProblem> {
    let mut parts = path.trim_start_matches('/').split('/');
    let master = parts.next().unwrap_or("");
    if master.is_empty() {
        return Err(problem(
            "names no master: write the name the sentinels monitor it by (`sentinel monitor \
             <name> ...`) after the nodes",
            fix,
        ));
    }
    let master = decode(master, "the master name", fix)?;
    let db = match parts.next() {
        None | Some("") => 0,
        Some(db) => db
            .parse::<i64>()
            .ok()
            .filter(|db| *db >= 0)
            .ok_or_else(|| {
                problem(
                    "the database after the master name is not a number (0, 1, ...)",
                    fix,
                )
            })?,
    };
    if parts.next().is_some() {
        return Err(problem("has more path than /<master name>/<database>", fix));
    }
    Ok(MultiNodeKind::Sentinel { master, db })
}

#[cfg(test)]
#[path = "redis_url_tests.rs"]
mod tests;
