//! `tollctl campaigns launch` and `tollctl campaigns close`: a whole eval campaign (the
//! experiment, its budget and limits, N keys) in one API call, and its end (every key revoked,
//! the final spend report).

use anyhow::{Result, anyhow};
use chrono::TimeDelta;
use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};

use super::Ctx;
use super::keys::env_lines;
use super::limits::LimitFlags;
use crate::api::{LaunchCampaign, Launched, Limits};
use crate::duration;
use crate::numbers;
use crate::output::{self, Format};

#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Owning team, by id or name.
    #[arg(long)]
    team: String,
    /// Campaign (experiment) name, unique within the team.
    name: String,
    /// How many keys to issue, one per worker (1 to 1000).
    #[arg(long = "keys", default_value_t = 1, allow_negative_numbers = true, value_parser = numbers::count(1, 1000, "keys"))]
    keys: u32,
    /// Models the keys may call, comma-separated (default: any model).
    #[arg(long, value_name = "MODEL,...", value_delimiter = ',')]
    models: Vec<String>,
    /// A tag; repeat for several.
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// When the campaign ends (RFC 3339); its keys are refused from then on.
    #[arg(long, value_name = "RFC3339", conflicts_with = "ends_in")]
    ends_at: Option<String>,
    /// When the campaign ends, from now (e.g. 7d, 12h).
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    ends_in: Option<TimeDelta>,
    #[command(flatten)]
    limits: LimitFlags,
    /// A budget on one model inside the campaign's, MODEL=[PERIOD=]USD (`gpt-5=100`,
    /// `gpt-5=daily=20`; a group: `'claude-*=50'`); repeat for several.
    #[arg(long = "model-budget", value_name = "MODEL=[PERIOD=]USD", value_parser = super::limits::parse_model_budget)]
    model_budgets: Vec<super::limits::ModelBudgetArg>,
    /// A default tag, NAME=VALUE, that every request of the campaign's keys carries unless it sets
    /// its own; repeat for several (at most 8).
    #[arg(long = "default-tag", value_name = "NAME=VALUE", value_parser = super::requests::tag_filter)]
    default_tags: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub struct CloseArgs {
    /// The campaign: its experiment id, or its name with --team.
    name: String,
    /// The campaign's team (id or name), when NAME is a name.
    #[arg(long)]
    team: Option<String>,
}

pub async fn launch(args: LaunchArgs, ctx: &Ctx) -> Result<()> {
    let models: Vec<String> = args
        .models
        .iter()
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    let ends_at = match (args.ends_at, args.ends_in) {
        (Some(at), _) => Some(output::parse_time("--ends-at", &at)?),
        (None, Some(d)) => Some(duration::from_now(d).map_err(anyhow::Error::msg)?),
        (None, None) => None,
    };
    let model_limits = super::limits::model_budgets(&args.model_budgets, &args.limits.period)?;
    let limits = if args.limits.is_empty() && model_limits.is_empty() {
        None
    } else {
        let mut limits = args.limits.apply(Limits::default())?;
        limits.models = model_limits;
        Some(limits)
    };
    let body = LaunchCampaign {
        team: &args.team,
        name: &args.name,
        tags: &args.tags,
        ends_at,
        keys: args.keys,
        allowed_models: (!models.is_empty()).then_some(models.as_slice()),
        limits,
        default_tags: args.default_tags.into_iter().collect(),
    };
    let raw: Value = ctx.client.post(&["campaigns"], &body).await?;
    let launched: Launched = serde_json::from_value(raw.clone())
        .map_err(|e| anyhow!("unexpected answer from the admin API: {e}"))?;
    let out = match ctx.format {
        Format::Env => env_lines(&launched.keys),
        Format::Json => output::json(&raw)?,
        f => output::list(&launched.keys, f, "keys")?,
    };
    output::emit(&out)?;
    let n = launched.keys.len();
    eprintln!(
        "note: launched campaign {} ({}) with {n} key{}{}; secrets are shown only once, store them now.",
        launched.experiment.name,
        launched.experiment.id,
        if n == 1 { "" } else { "s" },
        budget_note(launched.limits.as_ref()),
    );
    Ok(())
}

/// `, budget total 500 USD` for the note after a launch.
fn budget_note(limits: Option<&Limits>) -> String {
    let Some(limits) = limits else {
        return String::new();
    };
    limits
        .budgets
        .iter()
        .map(|b| format!(", budget {} {} USD", b.period, b.amount_usd))
        .collect()
}

pub async fn close(args: CloseArgs, ctx: &Ctx) -> Result<()> {
    let body: Value = ctx
        .client
        .send_json(
            Method::POST,
            &["campaigns", &args.name, "close"],
            &[("team", args.team.as_deref())],
            &json!({}),
        )
        .await?;
    let out = match ctx.format {
        Format::Json => output::json(&body)?,
        f => super::spend::render_report(&body["report"], f)?,
    };
    output::emit(&out)?;
    let experiment = &body["experiment"];
    eprintln!(
        "note: closed campaign {} ({}): {} key{} revoked by this call; it ended {}.",
        experiment["name"].as_str().unwrap_or("?"),
        experiment["id"].as_str().unwrap_or("?"),
        body["revoked_keys"],
        if body["revoked_keys"] == 1 { "" } else { "s" },
        output::time(experiment["ends_at"].as_str(), output::Style::Human),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_names_each_budget() -> Result<()> {
        let limits: Limits = serde_json::from_value(json!({
            "budgets": [{"period": "total", "amount_usd": "500"}, {"period": "daily", "amount_usd": "50"}]
        }))?;
        assert_eq!(
            budget_note(Some(&limits)),
            ", budget total 500 USD, budget daily 50 USD"
        );
        assert_eq!(budget_note(None), "");
        Ok(())
    }
}
