use anyhow::Result;
use chrono::TimeDelta;
use clap::Subcommand;

use super::Ctx;
use super::campaigns::{self, CloseArgs, LaunchArgs};
use crate::api::{CreateExperiment, Experiment, List};
use crate::duration;
use crate::output::{self, Record, Style};

#[derive(Debug, Subcommand)]
pub enum ExperimentsCmd {
    /// Create an experiment (an eval campaign) in a team.
    Create {
        /// Owning team, by id or name.
        #[arg(long)]
        team: String,
        /// Experiment name, unique within the team.
        name: String,
        /// A tag; repeat for several.
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// When the experiment ends (RFC 3339, e.g. 2025-12-31T23:59:00Z).
        #[arg(long, value_name = "RFC3339", conflicts_with = "ends_in")]
        ends_at: Option<String>,
        /// When the experiment ends, from now (e.g. 7d, 12h).
        #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
        ends_in: Option<TimeDelta>,
    },
    /// List experiments, optionally of one team.
    List {
        /// Team id or name.
        #[arg(long)]
        team: Option<String>,
    },
    /// Show one experiment.
    Show {
        /// Experiment id.
        id: String,
    },
    /// Launch a campaign in one call: the experiment, its budget and limits, and N keys
    /// (printed once).
    Launch(LaunchArgs),
    /// Close a campaign: revoke every key, end it now, and print its final spend report.
    Close(CloseArgs),
}

impl Record for Experiment {
    const COLUMNS: &'static [&'static str] =
        &["id", "team_id", "name", "tags", "ends_at", "created_at"];

    fn values(&self, style: Style) -> Vec<String> {
        vec![
            self.id.clone(),
            self.team_id.clone(),
            self.name.clone(),
            output::join(&self.tags, style),
            output::time(self.ends_at.as_deref(), style),
            output::time(Some(&self.created_at), style),
        ]
    }
}

pub async fn run(cmd: ExperimentsCmd, ctx: &Ctx) -> Result<()> {
    let out = match cmd {
        ExperimentsCmd::Launch(args) => return campaigns::launch(args, ctx).await,
        ExperimentsCmd::Close(args) => return campaigns::close(args, ctx).await,
        ExperimentsCmd::Create {
            team,
            name,
            tags,
            ends_at,
            ends_in,
        } => {
            let ends_at = match (ends_at, ends_in) {
                (Some(at), _) => Some(output::parse_time("--ends-at", &at)?),
                (None, Some(d)) => Some(duration::from_now(d).map_err(anyhow::Error::msg)?),
                (None, None) => None,
            };
            let body = CreateExperiment {
                team: &team,
                name: &name,
                tags: &tags,
                ends_at,
            };
            let exp: Experiment = ctx.client.post(&["experiments"], &body).await?;
            output::one(&exp, ctx.format)?
        }
        ExperimentsCmd::List { team } => {
            let list: List<Experiment> = ctx
                .client
                .get(&["experiments"], &[("team", team.as_deref())])
                .await?;
            output::list(&list.data, ctx.format, "experiments")?
        }
        ExperimentsCmd::Show { id } => {
            let exp: Experiment = ctx.client.get(&["experiments", &id], &[]).await?;
            output::one(&exp, ctx.format)?
        }
    };
    output::emit(&out)
}
