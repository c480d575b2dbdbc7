//! Tollgate: a governance and cost-attribution gateway for LLM traffic.
//!
//! `main.rs` only parses the command line; everything it starts is built here by
//! [`app::App::build`], which the integration tests call too.

pub mod admin;
pub mod alerts;
pub mod app;
pub mod config;
pub mod connect;
pub mod console;
pub mod governance;
pub mod ids;
pub mod invalidation;
pub mod keys;
pub mod ledger;
pub mod metrics;
pub mod pricing;
pub mod providers;
pub mod proxy;
pub mod store;
pub mod tags;
pub mod telemetry;

#[cfg(test)]
mod test_support;
