use anyhow::Result;
use clap::Subcommand;

use super::Ctx;
use crate::api::{CreateTeam, List, Team};
use crate::output::{self, Record, Style};

#[derive(Debug, Subcommand)]
pub enum TeamsCmd {
    /// Create a team.
    Create {
        /// Unique team name.
        name: String,
    },
    /// List teams (a team token sees only its own).
    List,
    /// Show one team.
    Show {
        /// Team id or name.
        team: String,
    },
}

impl Record for Team {
    const COLUMNS: &'static [&'static str] = &["id", "name", "created_at"];

    fn values(&self, style: Style) -> Vec<String> {
        vec![
            self.id.clone(),
            self.name.clone(),
            output::time(Some(&self.created_at), style),
        ]
    }
}

pub async fn run(cmd: TeamsCmd, ctx: &Ctx) -> Result<()> {
    let out = match cmd {
        TeamsCmd::Create { name } => {
            let team: Team = ctx
                .client
                .post(&["teams"], &CreateTeam { name: &name })
                .await?;
            output::one(&team, ctx.format)?
        }
        TeamsCmd::List => {
            let list: List<Team> = ctx.client.get(&["teams"], &[]).await?;
            output::list(&list.data, ctx.format, "teams")?
        }
        TeamsCmd::Show { team } => {
            let team: Team = ctx.client.get(&["teams", &team], &[]).await?;
            output::one(&team, ctx.format)?
        }
    };
    output::emit(&out)
}
