//! The gateway's integration tests: one test binary with a module per area, so the gateway and
//! its dependencies are linked once rather than once per file. Run one area with
//! `cargo test --test it governance::`, one test with its full name.
//!
//! Every test runs in this one process, so what is process-wide is shared by all of them: the
//! metrics recorder (a test that reads `/metrics` asserts only on the series of its own team,
//! experiment or key, or on differences it caused), the tracing subscriber and the TLS crypto
//! provider (both installed once, whoever comes first). Each test has its own database, Redis
//! key prefix, listeners and ledger.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

mod access;
mod admin;
mod alerts;
mod azure;
mod bedrock;
mod campaigns;
mod cluster;
mod console;
mod crash;
mod database;
mod forecast;
mod gemini;
mod governance;
mod headroom;
mod key_flood;
mod keys;
mod leases;
mod ledger;
mod lifecycle;
mod metrics;
mod model_limits;
mod openapi;
mod pricing_import;
mod pricing_reload;
mod providers;
mod proxy;
mod reports;
mod responses;
mod retention;
mod routing;
mod saturation;
mod sdk;
mod tags;
mod tls;
