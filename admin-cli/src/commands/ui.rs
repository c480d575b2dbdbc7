//! `tollctl ui`: a short-lived token and the console URL that signs in with it.

use anyhow::{Result, anyhow};
use chrono::{TimeDelta, Utc};
use clap::Args;

use crate::api::Team;
use crate::client::Client;
use crate::commands::token::SECRET_ENV;
use crate::duration;
use crate::output;
use crate::token::{self, Role};

#[derive(Debug, Args)]
pub struct UiArgs {
    /// Sign in with a token of this team only (its UUID or name): the console then shows and
    /// changes only that team, as the API allows a team token. Without it: an admin token.
    #[arg(long, value_name = "TEAM")]
    team: Option<String>,
    /// How long the token, and so the console session, stays valid (e.g. 15m, 1h, 8h).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = duration::parse)]
    ttl: TimeDelta,
    /// Who the token is for (the `sub` claim, the actor in the audit log).
    #[arg(long, value_name = "NAME", default_value = "console")]
    subject: String,
    /// The gateway's HS256 secret (prefer the environment variable: flags show up in `ps`).
    #[arg(long, env = SECRET_ENV, hide_env_values = true)]
    secret: Option<String>,
}

/// Prints `<url>/ui/#token=<jwt>`. The token is in the fragment, which browsers never send,
/// so it reaches no server or proxy log; the console moves it into session storage.
pub async fn run(args: UiArgs, url: &str) -> Result<()> {
    let secret = args
        .secret
        .filter(|s| !s.is_empty())
        .ok_or_else(|| anyhow!("no JWT secret: set {SECRET_ENV} or pass --secret"))?;
    let now = Utc::now();
    let team = match args.team.as_deref().map(str::trim) {
        None => None,
        Some(id) if uuid::Uuid::parse_str(id).is_ok() => Some(id.to_owned()),
        Some(name) => Some(team_id_by_name(name, url, &secret).await?),
    };
    let role = if team.is_some() {
        Role::Team
    } else {
        Role::Admin
    };
    let claims = token::claims(role, team.as_deref(), &args.subject, args.ttl, now)?;
    let jwt = token::mint(&claims, &secret)?;
    let base = url.trim_end_matches('/');
    let until = chrono::DateTime::from_timestamp(claims.exp, 0).unwrap_or(now);
    eprintln!(
        "open this URL to sign in to the console ({}, valid until {}):",
        if role == Role::Team {
            "team token"
        } else {
            "admin token"
        },
        until.format("%Y-%m-%d %H:%M UTC"),
    );
    output::emit(&format!("{base}/ui/#token={jwt}\n"))
}

/// A team named by name is looked up with a one-minute admin token from the same secret.
async fn team_id_by_name(name: &str, url: &str, secret: &str) -> Result<String> {
    let lookup = token::claims(
        Role::Admin,
        None,
        "tollctl",
        TimeDelta::minutes(1),
        Utc::now(),
    )?;
    let client = Client::new(url, Some(&token::mint(&lookup, secret)?))?;
    let team: Team = client.get(&["teams", name], &[]).await?;
    Ok(team.id)
}
