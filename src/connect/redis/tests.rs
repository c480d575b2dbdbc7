use super::RedisConnector;
use crate::config::Secret;

fn connector(url: &str) -> RedisConnector {
    match RedisConnector::new(&Secret::new(url.to_string()), None) {
        Ok(connector) => connector,
        Err(e) => panic!("{url}: {e}"),
    }
}

#[test]
fn cluster_and_sentinel_urls_are_described_without_their_passwords() {
    assert_eq!(
        connector("redis+cluster://app:hunter2@10.0.0.1:7000,10.0.0.2:7001").describe(),
        "redis+cluster://app@10.0.0.1:7000,10.0.0.2:7001 (Redis Cluster, plain text)"
    );
    assert_eq!(
        connector("redis+sentinel://:hunter2@s1,s2:26380/mymaster?sentinel_password=hunter3")
            .describe(),
        "redis+sentinel://s1:26379,s2:26380/mymaster (Redis Sentinel, plain text)"
    );
    assert_eq!(
        connector("redis://:hunter2@cache:6379/2").describe(),
        "redis://cache:6379/2 (plain text)"
    );
}
