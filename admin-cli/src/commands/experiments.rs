use anyhow::Result;
use chrono::{DateTime, TimeDelta, Utc};
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
        /// A default tag, NAME=VALUE, that every request of its keys carries unless it sets
        /// its own; repeat for several (at most 8).
        #[arg(long = "default-tag", value_name = "NAME=VALUE", value_parser = super::requests::tag_filter)]
        default_tags: Vec<(String, String)>,
    },
    /// List experiments, optionally of one team.
    List {
        /// Team id or name.
        #[arg(long)]
        team: Option<String>,
    },
    /// Show one experiment.
    Show {
        /// Experiment id, or its name with --team.
        id: String,
        /// The experiment's team (id or name), when ID is a name.
        #[arg(long)]
        team: Option<String>,
    },
    /// Launch a campaign in one call: the experiment, its budget and limits, and N keys
    /// (printed once).
    Launch(LaunchArgs),
    /// Close a campaign: revoke every key, end it now, and print its final spend report.
    Close(CloseArgs),
}

impl Experiment {
    /// `running`, `ended` or `closed`: the gateway's word, or worked out from `ends_at` and
    /// `closed_at` when it sends none.
    pub fn state(&self, now: DateTime<Utc>) -> String {
        if let Some(state) = &self.state {
            return state.clone();
        }
        let ended = self
            .ends_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| t <= now);
        match (self.closed_at.is_some(), ended) {
            (true, _) => "closed",
            (false, true) => "ended",
            (false, false) => "running",
        }
        .to_owned()
    }
}

impl Record for Experiment {
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "team_id",
        "name",
        "state",
        "tags",
        "ends_at",
        "closed_at",
        "created_at",
    ];
    const TABLE_COLUMNS: &'static [&'static str] =
        &["id", "name", "state", "tags", "ends_at", "created_at"];

    fn values(&self, style: Style) -> Vec<String> {
        vec![
            self.id.clone(),
            self.team_id.clone(),
            self.name.clone(),
            self.state(Utc::now()),
            output::join(&self.tags, style),
            output::time(self.ends_at.as_deref(), style),
            output::time(self.closed_at.as_deref(), style),
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
            default_tags,
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
                default_tags: default_tags.into_iter().collect(),
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
        ExperimentsCmd::Show { id, team } => {
            let exp: Experiment = ctx
                .client
                .get(&["experiments", &id], &[("team", team.as_deref())])
                .await?;
            output::one(&exp, ctx.format)?
        }
    };
    output::emit(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Format;

    fn experiment(
        ends_at: Option<&str>,
        closed_at: Option<&str>,
        state: Option<&str>,
    ) -> Experiment {
        Experiment {
            id: "e1".into(),
            team_id: "t1".into(),
            name: "gsm8k".into(),
            tags: vec![],
            ends_at: ends_at.map(String::from),
            created_at: "2025-06-01T00:00:00Z".into(),
            closed_at: closed_at.map(String::from),
            state: state.map(String::from),
            extra: serde_json::Map::new(),
        }
    }

    #[test]
    fn the_state_is_the_gateways_or_worked_out() -> anyhow::Result<()> {
        let now = DateTime::parse_from_rfc3339("2025-06-10T00:00:00Z")?.with_timezone(&Utc);
        assert_eq!(experiment(None, None, None).state(now), "running");
        assert_eq!(
            experiment(Some("2025-06-20T00:00:00Z"), None, None).state(now),
            "running"
        );
        assert_eq!(
            experiment(Some("2025-06-08T00:00:00Z"), None, None).state(now),
            "ended"
        );
        let closed = Some("2025-06-08T00:00:00Z");
        assert_eq!(experiment(closed, closed, None).state(now), "closed");
        assert_eq!(experiment(None, None, Some("closed")).state(now), "closed");
        let table = output::list(
            &[experiment(closed, closed, Some("closed"))],
            Format::Table,
            "experiments",
        )?;
        assert!(table.starts_with("ID  NAME   STATE"), "{table}");
        assert!(table.contains("gsm8k  closed"), "{table}");
        Ok(())
    }
}
