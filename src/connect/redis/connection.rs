//! The one connection type the governance code talks through, whatever the deployment, and
//! what a failed call says about whether it ran.

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, ServerErrorKind, Value};

use super::cluster::SelfHealingCluster;
use super::sentinel::SentinelConnection;

/// A multiplexed connection to the gateway's Redis: one server, a Redis Cluster (one
/// connection per node, commands routed by their keys' slot), or the master a set of
/// sentinels names. Cheap to clone: clones share the connections.
///
/// None of them sends a command twice by itself; see [`delivery`] for when the caller may.
#[derive(Clone)]
pub enum RedisConnection {
    Single(ConnectionManager),
    Cluster(SelfHealingCluster),
    Sentinel(SentinelConnection),
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Single(connection) => connection.req_packed_command(cmd),
            RedisConnection::Cluster(connection) => connection.req_packed_command(cmd),
            RedisConnection::Sentinel(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Single(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            RedisConnection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            RedisConnection::Sentinel(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Single(connection) => connection.get_db(),
            RedisConnection::Cluster(connection) => connection.get_db(),
            RedisConnection::Sentinel(connection) => connection.get_db(),
        }
    }
}

/// What a failed call says about whether it ran, which decides whether sending it again is
/// safe: a governance script that ran twice would take or give back twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// It never reached a server: the connection was refused, no node of the cluster was
    /// connected, or the sentinels named no reachable master.
    NotSent,
    /// A server answered that it did not run it, because the data lives or is moving
    /// elsewhere, or the node is not (or not yet) a master that serves it: MOVED, ASK,
    /// TRYAGAIN, CLUSTERDOWN, MASTERDOWN, LOADING, READONLY. Redis checks all of these before
    /// a script starts, except READONLY, which a script meets at its first write, so it has
    /// written nothing. The connection is already finding the data's new home (a MOVED makes
    /// the cluster client refresh its slot map; a READONLY makes the sentinel connection ask
    /// the sentinels again), so a second try soon is likely to land.
    Redirected,
    /// It may have run, whole or in part: a timeout, a connection lost after sending, an
    /// answer that could not be read, or an error raised while the script ran (a script that
    /// fails midway keeps what it wrote). Never sent again. Errors that a second try would
    /// only repeat (a script bug, a permission) are here too.
    MayHaveRun,
}

pub fn delivery(error: &RedisError) -> Delivery {
    match error.kind() {
        ErrorKind::Server(
            ServerErrorKind::Moved
            | ServerErrorKind::Ask
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::BusyLoading
            | ServerErrorKind::ReadOnly,
        ) => Delivery::Redirected,
        ErrorKind::ClusterConnectionNotFound => Delivery::NotSent,
        _ if error.is_connection_refusal() => Delivery::NotSent,
        _ => Delivery::MayHaveRun,
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use redis::{ErrorKind, RedisError, Value};

    use super::{Delivery, delivery};

    fn server(reply: &str) -> RedisError {
        match redis::parse_redis_value(reply.as_bytes()) {
            Ok(Value::ServerError(error)) => error.into(),
            other => panic!("{reply}: {other:?}"),
        }
    }

    #[test]
    fn only_a_call_that_surely_did_not_run_may_be_sent_again() {
        let io = |kind| RedisError::from(io::Error::new(kind, "test"));
        assert_eq!(
            delivery(&io(io::ErrorKind::ConnectionRefused)),
            Delivery::NotSent
        );
        assert_eq!(
            delivery(&RedisError::from((
                ErrorKind::ClusterConnectionNotFound,
                "no connection"
            ))),
            Delivery::NotSent
        );
        for reply in [
            "-MOVED 3999 127.0.0.1:6381\r\n",
            "-ASK 3999 127.0.0.1:6381\r\n",
            "-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
            "-CLUSTERDOWN The cluster is down\r\n",
            "-MASTERDOWN Link with MASTER is down\r\n",
            "-LOADING Redis is loading the dataset in memory\r\n",
            "-READONLY You can't write against a read only replica. script: 1f0e, on @user_script:92.\r\n",
        ] {
            assert_eq!(delivery(&server(reply)), Delivery::Redirected, "{reply}");
        }
        for kind in [
            io::ErrorKind::TimedOut,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::UnexpectedEof,
            io::ErrorKind::BrokenPipe,
        ] {
            assert_eq!(delivery(&io(kind)), Delivery::MayHaveRun, "{kind:?}");
        }
        // The multiplexed connection's own "connection closed": it may have been sent.
        assert_eq!(
            delivery(&RedisError::from((ErrorKind::Io, "connection closed"))),
            Delivery::MayHaveRun
        );
        for reply in [
            "-ERR user_script:12: attempt to compare nil with number\r\n",
            "-OOM command not allowed when used memory > 'maxmemory'.\r\n",
            "-NOPERM this user has no permissions to run the 'evalsha' command\r\n",
        ] {
            assert_eq!(delivery(&server(reply)), Delivery::MayHaveRun, "{reply}");
        }
    }
}
