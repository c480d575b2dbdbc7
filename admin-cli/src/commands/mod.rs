//! One module per resource: its clap arguments, how it prints, and what it asks the API.

pub mod alerts;
pub mod campaigns;
pub mod experiments;
pub mod keys;
pub mod limits;
pub mod pricing;
pub mod requests;
pub mod spend;
pub mod teams;
pub mod token;
pub mod ui;

use crate::client::Client;
use crate::output::Format;

/// What every API command needs.
pub struct Ctx {
    pub client: Client,
    pub format: Format,
}
