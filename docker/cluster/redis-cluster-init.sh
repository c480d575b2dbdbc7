#!/bin/sh
# Makes the Redis Cluster of docker-compose.cluster.yml out of six empty nodes: three masters,
# one replica each, all 16384 slots assigned. Does nothing when the first node already reports
# cluster_state:ok, so it can run at every `docker compose up`.
#
#   redis-cluster-init.sh HOST:PORT HOST:PORT HOST:PORT HOST:PORT HOST:PORT HOST:PORT
#
# Host names are fine: redis-cli resolves them, and the nodes then know each other (and tell
# clients) by IP address.
set -eu

if [ $# -ne 6 ]; then
  echo "usage: $0 HOST:PORT x 6 (three masters and their replicas)" >&2
  exit 2
fi

cli() {
  node=$1
  shift
  redis-cli -h "${node%:*}" -p "${node##*:}" "$@"
}

state() {
  cli "$1" cluster info 2>/dev/null | tr -d '\r' | sed -n 's/^cluster_state://p'
}

# Runs the rest of the line until it succeeds, at most $1 times, $2 seconds apart; fails if
# it never does.
retry() {
  tries=$1
  pause=$2
  shift 2
  until "$@"; do
    tries=$((tries - 1))
    [ "$tries" -gt 0 ] || return 1
    sleep "$pause"
  done
}
answers() { cli "$1" ping >/dev/null 2>&1; }
is_ok() { [ "$(state "$1")" = ok ]; }
replicas_attached() { [ "$(cli "$1" cluster nodes | grep -c ' slave ')" -ge 3 ]; }

# Every node must answer first (under compose, depends_on has waited for their health checks).
for node in "$@"; do
  retry 60 1 answers "$node" || {
    echo "redis-cluster-init: $node does not answer PING after 60 s" >&2
    exit 1
  }
done

if is_ok "$1"; then
  echo "redis-cluster-init: $1 already reports cluster_state:ok; nothing to do"
  exit 0
fi

# Fails, changing nothing, if a node already holds slots or data: a cluster that lost some of
# its nodes is not mended here (`docker compose -f docker-compose.cluster.yml down`, then
# `up`, makes a new one).
redis-cli --cluster create "$@" --cluster-replicas 1 --cluster-yes

# The slots are assigned; wait until every node has heard of it.
for node in "$@"; do
  retry 60 0.5 is_ok "$node" || {
    echo "redis-cluster-init: $node still does not report cluster_state:ok after 30 s" >&2
    exit 1
  }
done
echo "redis-cluster-init: cluster_state:ok on all six nodes"

# The replicas attach a moment later; they are for failover only, so not waiting is no error.
retry 60 0.5 replicas_attached "$1" ||
  echo "redis-cluster-init: warning: not all three replicas have attached after 30 s" >&2
cli "$1" cluster nodes
