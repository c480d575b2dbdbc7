//! `tollctl alerts`: rules that post budget alerts to a webhook, and what they fired.

use anyhow::Result;
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Ctx;
use crate::api::List;
use crate::output::{self, Record, Style};

#[derive(Debug, Subcommand)]
pub enum AlertsCmd {
    /// Add a rule. Without any of --at, --projection, --expiry, --refusals it gets the
    /// gateway's default set (docs/alerts.md). The signing secret is shown once.
    Add(AddArgs),
    /// List rules (a team token sees its own team's).
    List {
        /// Team id or name.
        #[arg(long)]
        team: Option<String>,
    },
    /// Remove a rule; its pending alerts are not delivered.
    Remove {
        /// The rule's id.
        id: String,
    },
    /// Send a signed `test` event to a rule's webhook now and show the answer.
    Test {
        /// The rule's id.
        id: String,
    },
    /// The alerts fired, newest first: delivered, pending (retrying) or failed.
    History {
        #[arg(long)]
        team: Option<String>,
        /// One rule's id.
        #[arg(long)]
        rule: Option<String>,
        /// How many, 1 to 1000.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Team id or name (team tokens: their own).
    #[arg(long)]
    team: Option<String>,
    /// Watch an experiment (id, or name within --team).
    #[arg(long, conflicts_with_all = ["key", "every_campaign"])]
    experiment: Option<String>,
    /// Watch a key (id).
    #[arg(long, conflicts_with = "every_campaign")]
    key: Option<String>,
    /// Watch every open campaign of --team, those launched later included.
    #[arg(long)]
    every_campaign: bool,
    /// Thresholds in percent of each budget, e.g. 50,80,100.
    #[arg(long, value_delimiter = ',')]
    at: Vec<u16>,
    /// Alert when the burn rate over this window (e.g. 1h) would exhaust a budget before
    /// the scope ends.
    #[arg(long, value_parser = seconds)]
    projection: Option<u32>,
    /// Alert this long (e.g. 24h) before the campaign ends or the key expires.
    #[arg(long, value_parser = hours)]
    expiry: Option<u32>,
    /// Alert when at least this percentage of requests are refused or fail (402, 429, 5xx).
    #[arg(long)]
    refusals: Option<u16>,
    /// The window --refusals looks at (e.g. 5m).
    #[arg(long, value_parser = seconds, requires = "refusals")]
    refusal_window: Option<u32>,
    /// Fewer requests than this in the window never alert.
    #[arg(long, requires = "refusals")]
    refusal_min_requests: Option<u32>,
    /// Where to post alerts (http or https).
    #[arg(long)]
    webhook: String,
    /// Post Slack-compatible `{"text": ...}` instead of the event.
    #[arg(long)]
    slack: bool,
}

fn seconds(text: &str) -> Result<u32, String> {
    let d = crate::duration::parse(text)?;
    u32::try_from(d.num_seconds()).map_err(|_| format!("{text:?} is too long"))
}

fn hours(text: &str) -> Result<u32, String> {
    let secs = seconds(text)?;
    if secs % 3600 != 0 {
        return Err(format!("{text:?}: give whole hours, e.g. 24h or 2d"));
    }
    Ok(secs / 3600)
}

#[derive(Debug, Serialize)]
struct CreateRule<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    team: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    experiment: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    every_campaign: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    thresholds: Option<&'a [u16]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    projection_window_secs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiry_hours: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusals: Option<Refusals>,
    webhook_url: &'a str,
    format: &'static str,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Refusals {
    percent: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    window_secs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_requests: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Scope {
    kind: String,
    id: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Rule {
    id: String,
    team: String,
    scope: Scope,
    thresholds: Vec<i64>,
    projection_window_secs: Option<i64>,
    expiry_hours: Option<i64>,
    refusals: Option<Refusals>,
    webhook: String,
    format: String,
    created_at: String,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl Record for Rule {
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "team",
        "scope",
        "thresholds",
        "projection",
        "expiry",
        "refusals",
        "webhook",
        "format",
        "created_at",
        "signing_secret",
    ];
    const TABLE_COLUMNS: &'static [&'static str] = &[
        "id",
        "team",
        "scope",
        "thresholds",
        "projection",
        "expiry",
        "refusals",
        "webhook",
    ];

    fn values(&self, style: Style) -> Vec<String> {
        let scope = match (&self.scope.kind[..], &self.scope.name) {
            ("experiment", None) => "every campaign".to_owned(),
            (kind, name) => format!("{kind} {}", name.as_deref().unwrap_or("?")),
        };
        let thresholds: Vec<String> = self.thresholds.iter().map(|t| format!("{t}%")).collect();
        let refusals = self
            .refusals
            .as_ref()
            .map(|r| {
                format!(
                    "{}% of >= {} in {}s",
                    r.percent,
                    r.min_requests.unwrap_or(0),
                    r.window_secs.unwrap_or(0)
                )
            })
            .unwrap_or_default();
        let secret = self
            .extra
            .get("signing_secret")
            .and_then(Value::as_str)
            .unwrap_or_default();
        vec![
            self.id.clone(),
            self.team.clone(),
            scope,
            output::join(&thresholds, style),
            self.projection_window_secs
                .map(|s| format!("{s}s"))
                .unwrap_or_default(),
            self.expiry_hours
                .map(|h| format!("{h}h"))
                .unwrap_or_default(),
            refusals,
            self.webhook.clone(),
            self.format.clone(),
            output::time(Some(&self.created_at), style),
            secret.to_owned(),
        ]
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Event {
    id: String,
    rule_id: String,
    #[serde(rename = "type")]
    kind: String,
    summary: Option<String>,
    status: String,
    attempts: i64,
    created_at: String,
    next_attempt_at: Option<String>,
    delivered_at: Option<String>,
    last_error: Option<String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl Record for Event {
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "rule_id",
        "type",
        "status",
        "attempts",
        "created_at",
        "next_attempt_at",
        "delivered_at",
        "last_error",
        "summary",
    ];
    const TABLE_COLUMNS: &'static [&'static str] = &[
        "created_at",
        "type",
        "status",
        "attempts",
        "summary",
        "last_error",
    ];

    fn values(&self, style: Style) -> Vec<String> {
        vec![
            self.id.clone(),
            self.rule_id.clone(),
            self.kind.clone(),
            self.status.clone(),
            self.attempts.to_string(),
            output::time(Some(&self.created_at), style),
            output::time(self.next_attempt_at.as_deref(), style),
            output::time(self.delivered_at.as_deref(), style),
            output::opt(self.last_error.as_deref(), style),
            output::opt(self.summary.as_deref(), style),
        ]
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TestDelivery {
    delivered: bool,
    status: Option<u16>,
    error: Option<String>,
    event: Value,
}

impl Record for TestDelivery {
    const COLUMNS: &'static [&'static str] = &["delivered", "status", "error", "event_id"];

    fn values(&self, style: Style) -> Vec<String> {
        vec![
            if self.delivered { "yes" } else { "no" }.to_owned(),
            self.status.map(|s| s.to_string()).unwrap_or_default(),
            output::opt(self.error.as_deref(), style),
            self.event
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        ]
    }
}

pub async fn run(cmd: AlertsCmd, ctx: &Ctx) -> Result<()> {
    let out = match cmd {
        AlertsCmd::Add(args) => {
            let refusals = args.refusals.map(|percent| Refusals {
                percent,
                window_secs: args.refusal_window,
                min_requests: args.refusal_min_requests,
            });
            let body = CreateRule {
                team: args.team.as_deref(),
                experiment: args.experiment.as_deref(),
                key: args.key.as_deref(),
                every_campaign: args.every_campaign,
                thresholds: (!args.at.is_empty()).then_some(args.at.as_slice()),
                projection_window_secs: args.projection,
                expiry_hours: args.expiry,
                refusals,
                webhook_url: &args.webhook,
                format: if args.slack { "slack" } else { "json" },
            };
            let rule: Rule = ctx.client.post(&["alerts"], &body).await?;
            let mut out = output::one(&rule, ctx.format)?;
            if ctx.format == output::Format::Table {
                out.push_str(
                    "\nThe signing secret is shown once: keep it where the receiver verifies \
                     x-tollgate-signature.\n",
                );
            }
            out
        }
        AlertsCmd::List { team } => {
            let list: List<Rule> = ctx
                .client
                .get(&["alerts"], &[("team", team.as_deref())])
                .await?;
            output::list(&list.data, ctx.format, "alert rules")?
        }
        AlertsCmd::Remove { id } => {
            let rule: Rule = ctx.client.delete(&["alerts", &id], &[]).await?;
            output::one(&rule, ctx.format)?
        }
        AlertsCmd::Test { id } => {
            let result: TestDelivery = ctx
                .client
                .post(&["alerts", &id, "test"], &serde_json::json!({}))
                .await?;
            output::one(&result, ctx.format)?
        }
        AlertsCmd::History { team, rule, limit } => {
            let limit = limit.to_string();
            let list: List<Event> = ctx
                .client
                .get(
                    &["alert-events"],
                    &[
                        ("team", team.as_deref()),
                        ("rule", rule.as_deref()),
                        ("limit", Some(&limit)),
                    ],
                )
                .await?;
            output::list(&list.data, ctx.format, "alerts")?
        }
    };
    output::emit(&out)
}
