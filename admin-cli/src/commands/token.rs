use anyhow::{Result, anyhow};
use chrono::{TimeDelta, Utc};
use clap::{Args, Subcommand};

use crate::duration;
use crate::output;
use crate::token::{self, Role};

pub const SECRET_ENV: &str = "TOLLGATE_ADMIN_JWT_SECRET";

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Mint an admin API token locally from the gateway's JWT secret and print it.
    ///
    /// For bootstrapping: export TOLLGATE_ADMIN_TOKEN=$(tollctl token mint --role admin)
    Mint(MintArgs),
}

#[derive(Debug, Args)]
pub struct MintArgs {
    /// `admin` can do everything; `team` only its own team's experiments and keys.
    #[arg(long, value_enum)]
    role: Role,
    /// Team UUID, required for --role team.
    #[arg(long, value_name = "TEAM_UUID")]
    team: Option<String>,
    /// Who the token is for (the `sub` claim).
    #[arg(long, value_name = "NAME", default_value = "tollctl")]
    subject: String,
    /// How long the token is valid (e.g. 15m, 24h, 7d).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = duration::parse)]
    ttl: TimeDelta,
    /// The gateway's HS256 secret (prefer the environment variable: flags show up in `ps`).
    #[arg(long, env = SECRET_ENV, hide_env_values = true)]
    secret: Option<String>,
}

pub fn run(cmd: TokenCmd) -> Result<()> {
    match cmd {
        TokenCmd::Mint(args) => {
            let secret = args
                .secret
                .filter(|s| !s.is_empty())
                .ok_or_else(|| anyhow!("no JWT secret: set {SECRET_ENV} or pass --secret"))?;
            let claims = token::claims(
                args.role,
                args.team.as_deref(),
                &args.subject,
                args.ttl,
                Utc::now(),
            )?;
            let jwt = token::mint(&claims, &secret)?;
            output::emit(&format!("{jwt}\n"))
        }
    }
}
