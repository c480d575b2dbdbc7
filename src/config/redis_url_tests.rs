use super::{MultiNodeKind, MultiNodeUrl, RedisNode, RedisUrl};

fn multi(url: &str) -> MultiNodeUrl {
    match RedisUrl::parse(url) {
        Ok(RedisUrl::Multi(url)) => url,
        other => panic!("{url}: {other:?}"),
    }
}

fn refused(url: &str) -> String {
    match RedisUrl::parse(url) {
        Err(problem) => format!("{}; {}", problem.problem, problem.fix),
        Ok(parsed) => panic!("{url} was accepted: {parsed:?}"),
    }
}

fn node(host: &str, port: u16) -> RedisNode {
    RedisNode {
        host: host.to_string(),
        port,
    }
}

#[test]
fn a_cluster_url_lists_its_seed_nodes_with_one_set_of_credentials() {
    let url = multi("redis+cluster://app:s%40pw9@10.0.0.1:7000,10.0.0.2,[::1]:7002");
    assert_eq!(url.kind, MultiNodeKind::Cluster);
    assert!(!url.tls);
    assert_eq!(
        url.nodes,
        vec![
            node("10.0.0.1", 7000),
            node("10.0.0.2", 6379),
            node("::1", 7002)
        ]
    );
    assert_eq!(url.username.as_deref(), Some("app"));
    assert_eq!(
        url.password.as_ref().map(|p| p.expose().as_str()),
        Some("s@pw9")
    );
    assert_eq!(
        url.shown(),
        "redis+cluster://app@10.0.0.1:7000,10.0.0.2:6379,[::1]:7002"
    );
    assert_eq!(
        url.secrets(),
        vec!["s%40pw9".to_string(), "s@pw9".to_string()]
    );
    assert!(
        !format!("{url:?}").contains("pw9"),
        "Debug shows no password"
    );

    let tls = multi("rediss+cluster://h1:7000/#insecure");
    assert!(tls.tls && tls.insecure);
    assert_eq!(
        multi("redis+cluster://h1:7000/0").kind,
        MultiNodeKind::Cluster
    );
}

#[test]
fn a_sentinel_url_names_the_master_and_may_carry_the_sentinels_own_credentials() {
    let url = multi(
        "rediss+sentinel://:data-pass@s1,s2:26380/mymaster/2\
         ?sentinel_username=watcher&sentinel_password=s%26p",
    );
    assert_eq!(
        url.kind,
        MultiNodeKind::Sentinel {
            master: "mymaster".to_string(),
            db: 2
        }
    );
    assert!(url.tls && !url.insecure);
    assert_eq!(url.nodes, vec![node("s1", 26379), node("s2", 26380)]);
    assert_eq!(url.username, None);
    assert_eq!(
        url.password.as_ref().map(|p| p.expose().as_str()),
        Some("data-pass")
    );
    assert_eq!(url.sentinel_username.as_deref(), Some("watcher"));
    assert_eq!(
        url.sentinel_password.as_ref().map(|p| p.expose().as_str()),
        Some("s&p")
    );
    assert_eq!(
        url.shown(),
        "rediss+sentinel://s1:26379,s2:26380/mymaster/2"
    );
    for secret in ["data-pass", "s&p", "s%26p"] {
        assert!(url.secrets().contains(&secret.to_string()), "{secret}");
    }
    let plain = multi("redis+sentinel://127.0.0.1:26379/mymaster");
    assert_eq!(
        plain.kind,
        MultiNodeKind::Sentinel {
            master: "mymaster".to_string(),
            db: 0
        }
    );
}

#[test]
fn one_server_urls_keep_their_meaning() {
    for (url, tls, insecure) in [
        ("redis://127.0.0.1:6379/2", false, false),
        ("rediss://u:p@h:6380", true, false),
        ("rediss://h:6380/#insecure", true, true),
        ("redis+unix:///run/redis.sock", false, false),
    ] {
        match RedisUrl::parse(url) {
            Ok(RedisUrl::Single {
                tls: t,
                insecure: i,
            }) => assert_eq!((t, i), (tls, insecure), "{url}"),
            other => panic!("{url}: {other:?}"),
        }
    }
}

#[test]
fn malformed_cluster_and_sentinel_urls_are_refused_without_being_echoed() {
    for (url, part) in [
        ("redis+cluster://", "names no node"),
        (
            "redis+cluster://u:hunter2@h1:1,,h3:3",
            "node 2 of the list has no host",
        ),
        (
            "redis+cluster://u:hunter2@h1:1,h2:port",
            "node 2 of the list has no valid port",
        ),
        (
            "redis+cluster://h1:0",
            "node 1 of the list has no valid port",
        ),
        ("redis+cluster://[::1:7000", "node 1 opens an IPv6"),
        ("redis+cluster://h1:7000/3", "has only database 0"),
        (
            "redis+cluster://h1:7000?password=hunter2",
            "the query parameter `password` is not understood",
        ),
        (
            "redis+cluster://h1:7000#insecure",
            "only fragment understood",
        ),
        ("redis+sentinel://u:hunter2@s1:26379", "names no master"),
        (
            "redis+sentinel://s1/mymaster/x",
            "database after the master name",
        ),
        ("redis+sentinel://s1/mymaster/1/more", "more path than"),
        (
            "redis+sentinel://s1/mymaster?db=2",
            "takes only sentinel_username and sentinel_password",
        ),
        (
            "redis+sentinel://u:%ff@s1/m",
            "the password is not percent-encoded UTF-8",
        ),
        (
            "rediss+raft://u:hunter2@h",
            "the scheme rediss+raft:// is not supported",
        ),
    ] {
        let message = refused(url);
        assert!(
            message.contains(part),
            "{url}: {part:?} missing from {message}"
        );
        assert!(
            !message.contains("hunter2"),
            "{url}: the password leaked: {message}"
        );
    }
}

#[test]
fn a_password_that_spills_out_of_its_place_is_not_shown_either() {
    // An unencoded `/` ends the node list early: what follows is read as the path, and the
    // problem names the node by its place, not by the text that is really a password.
    let message = refused("redis+cluster://u:hun/ter2@h1:7000");
    assert!(message.contains("node 1 of the list"), "{message}");
    assert!(
        !message.contains("hun") && !message.contains("ter2"),
        "{message}"
    );
}
