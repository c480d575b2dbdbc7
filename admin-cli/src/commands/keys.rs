use anyhow::{Result, bail};
use chrono::{DateTime, TimeDelta, Utc};
use clap::Subcommand;
use serde_json::{Map, Value, json};

use super::Ctx;
use crate::api::{IssueKeys, IssuedKey, Key, List};
use crate::duration;
use crate::numbers;
use crate::output::{self, Format, Record, Style};

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Issue virtual keys. The secrets are printed once and cannot be shown again.
    Issue {
        /// Owning team, by id or name.
        #[arg(long)]
        team: String,
        /// Experiment, by id or by name within the team.
        #[arg(long)]
        experiment: Option<String>,
        /// How many keys to issue (1 to 1000).
        #[arg(long, default_value_t = 1, allow_negative_numbers = true, value_parser = numbers::count(1, 1000, "keys"))]
        count: u32,
        /// A label stored with each key.
        #[arg(long)]
        name: Option<String>,
        /// Models the keys may call, comma-separated (default: any model).
        #[arg(long, value_name = "MODEL,...", value_delimiter = ',')]
        models: Vec<String>,
        /// Expiry time (RFC 3339, e.g. 2025-12-31T23:59:00Z).
        #[arg(long, value_name = "RFC3339", conflicts_with = "expires_in")]
        expires_at: Option<String>,
        /// Expiry from now (e.g. 30d, 12h).
        #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
        expires_in: Option<TimeDelta>,
        /// A default tag, NAME=VALUE, that every request of these keys carries unless it sets
        /// its own; repeat for several (at most 8).
        #[arg(long = "default-tag", value_name = "NAME=VALUE", value_parser = super::requests::tag_filter)]
        default_tags: Vec<(String, String)>,
    },
    /// List keys (never their secrets).
    List {
        /// Team id or name.
        #[arg(long)]
        team: Option<String>,
        /// Experiment id or name (a name is looked up within --team).
        #[arg(long)]
        experiment: Option<String>,
    },
    /// Show one key.
    Show {
        /// Key id.
        id: String,
    },
    /// Revoke a key; it stops working on every gateway instance. Revoking twice is harmless.
    Revoke {
        /// Key id.
        id: String,
    },
    /// Give a key a new secret (printed once) under the same id, so its limits, spend and
    /// attribution carry on; the old secret keeps working for the grace period.
    Rotate {
        /// Key id.
        id: String,
        /// How long the old secret keeps working (e.g. 1h, 7d; at most 30d).
        #[arg(long, value_name = "DURATION", value_parser = duration::parse, default_value = "24h", conflicts_with = "no_grace")]
        grace: TimeDelta,
        /// Stop the old secret at once.
        #[arg(long)]
        no_grace: bool,
    },
    /// Change a key's allowed models, expiry or name; every gateway instance applies it at once.
    Update {
        /// Key id.
        id: String,
        /// Models the key may call, comma-separated.
        #[arg(
            long,
            value_name = "MODEL,...",
            value_delimiter = ',',
            conflicts_with = "all_models"
        )]
        models: Vec<String>,
        /// Let the key call any model.
        #[arg(long)]
        all_models: bool,
        /// Expiry time (RFC 3339).
        #[arg(long, value_name = "RFC3339", conflicts_with_all = ["expires_in", "no_expiry"])]
        expires_at: Option<String>,
        /// Expiry from now (e.g. 7d, 12h).
        #[arg(long, value_name = "DURATION", value_parser = duration::parse, conflicts_with = "no_expiry")]
        expires_in: Option<TimeDelta>,
        /// Remove the expiry.
        #[arg(long)]
        no_expiry: bool,
        /// A new label.
        #[arg(long, conflicts_with = "no_name")]
        name: Option<String>,
        /// Remove the label.
        #[arg(long)]
        no_name: bool,
        /// Replace the key's default tags with these, NAME=VALUE; repeat for several.
        #[arg(long = "default-tag", value_name = "NAME=VALUE", value_parser = super::requests::tag_filter, conflicts_with = "no_default_tags")]
        default_tags: Vec<(String, String)>,
        /// Remove the key's default tags.
        #[arg(long)]
        no_default_tags: bool,
    },
}

impl Key {
    /// `active`, `revoked`, `expired` (its own expiry passed) or `ended` (its experiment
    /// ended, e.g. a closed campaign): the gateway's word, or worked out the same way when it
    /// sends none.
    pub fn status(&self, now: DateTime<Utc>) -> String {
        if let Some(status) = &self.status {
            return status.clone();
        }
        let passed = |t: Option<&str>| {
            t.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t <= now)
        };
        if self.revoked_at.is_some() {
            "revoked"
        } else if passed(self.expires_at.as_deref()) {
            "expired"
        } else if passed(self.experiment_ends_at.as_deref()) {
            "ended"
        } else {
            "active"
        }
        .to_owned()
    }

    /// The status with the time it refers to, for a table: `revoked 2025-06-01 12:00 UTC`,
    /// `ended ...` (when its experiment ended), `active until ...` (the earlier of its expiry
    /// and its experiment's end), or `active`.
    fn status_line(&self, now: DateTime<Utc>) -> String {
        let status = self.status(now);
        let until = earliest(&[
            self.expires_at.as_deref(),
            self.experiment_ends_at.as_deref(),
        ]);
        let when = match status.as_str() {
            "revoked" => self.revoked_at.clone(),
            "expired" => self.expires_at.clone(),
            "ended" => self.experiment_ends_at.clone(),
            _ => until.map(|t| format!("until {}", output::time(Some(&t), Style::Human))),
        };
        match (status.as_str(), when) {
            ("active", Some(until)) => format!("active {until}"),
            (_, Some(t)) => format!("{status} {}", output::time(Some(&t), Style::Human)),
            (_, None) => status,
        }
    }
}

/// The earliest of some RFC 3339 times.
fn earliest(times: &[Option<&str>]) -> Option<String> {
    times
        .iter()
        .flatten()
        .filter_map(|t| DateTime::parse_from_rfc3339(t).ok().map(|p| (p, *t)))
        .min_by_key(|(p, _)| *p)
        .map(|(_, t)| t.to_owned())
}

impl Record for Key {
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "prefix",
        "name",
        "team_id",
        "experiment_id",
        "allowed_models",
        "status",
        "expires_at",
        "experiment_ends_at",
        "revoked_at",
        "created_at",
        "previous_valid_until",
        "spend_usd",
    ];
    const TABLE_COLUMNS: &'static [&'static str] = &[
        "id",
        "prefix",
        "name",
        "experiment_id",
        "allowed_models",
        "status",
        "spend_usd",
    ];

    fn values(&self, style: Style) -> Vec<String> {
        let models = match (&self.allowed_models, style) {
            (None, Style::Human) => "any".to_string(),
            (None, Style::Raw) => String::new(),
            (Some(m), Style::Human) if m.is_empty() => "none".to_string(),
            (Some(m), _) => output::join(m, style),
        };
        let now = Utc::now();
        let status = match style {
            Style::Human => self.status_line(now),
            Style::Raw => self.status(now),
        };
        vec![
            self.id.clone(),
            self.prefix.clone(),
            output::opt(self.name.as_deref(), style),
            self.team_id.clone(),
            output::opt(self.experiment_id.as_deref(), style),
            models,
            status,
            output::time(self.expires_at.as_deref(), style),
            output::time(self.experiment_ends_at.as_deref(), style),
            output::time(self.revoked_at.as_deref(), style),
            output::time(Some(&self.created_at), style),
            output::time(self.previous_valid_until.as_deref(), style),
            output::opt(self.spend_usd.as_deref(), style),
        ]
    }
}

/// Freshly issued keys print only what is needed to hand them out.
impl Record for IssuedKey {
    const COLUMNS: &'static [&'static str] = &["id", "prefix", "key"];

    fn values(&self, _style: Style) -> Vec<String> {
        vec![
            self.info.id.clone(),
            self.info.prefix.clone(),
            self.key.clone(),
        ]
    }
}

/// `OPENAI_API_KEY=tg-...`, one line per key, ready for a `.env` file or `eval`.
pub fn env_lines(keys: &[IssuedKey]) -> String {
    keys.iter()
        .map(|k| format!("OPENAI_API_KEY={}\n", shell_value(&k.key)))
        .collect()
}

/// Keys are URL-safe tokens and print bare; anything else is single-quoted so that sourcing
/// the output can never run a command.
fn shell_value(v: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if !v.is_empty() && v.chars().all(safe) {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', r"'\''"))
    }
}

pub async fn run(cmd: KeysCmd, ctx: &Ctx) -> Result<()> {
    let out = match cmd {
        KeysCmd::Issue {
            team,
            experiment,
            count,
            name,
            models,
            expires_at,
            expires_in,
            default_tags,
        } => {
            let models: Vec<String> = models
                .iter()
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect();
            let expires_at = match (expires_at, expires_in) {
                (Some(at), _) => Some(output::parse_time("--expires-at", &at)?),
                (None, Some(d)) => Some(duration::from_now(d).map_err(anyhow::Error::msg)?),
                (None, None) => None,
            };
            let body = IssueKeys {
                team: &team,
                experiment: experiment.as_deref(),
                count,
                name: name.as_deref(),
                allowed_models: (!models.is_empty()).then_some(models.as_slice()),
                expires_at,
                default_tags: default_tags.into_iter().collect(),
            };
            let issued: List<IssuedKey> = ctx.client.post(&["keys"], &body).await?;
            let out = match ctx.format {
                Format::Env => env_lines(&issued.data),
                f => output::list(&issued.data, f, "keys")?,
            };
            output::emit(&out)?;
            let n = issued.data.len();
            let what = if n == 1 {
                "1 key"
            } else {
                &format!("{n} keys")
            };
            eprintln!("note: issued {what}; secrets are shown only once, store them now.");
            return Ok(());
        }
        KeysCmd::List { team, experiment } => {
            let query = [
                ("team", team.as_deref()),
                ("experiment", experiment.as_deref()),
            ];
            let list: List<Key> = ctx.client.get(&["keys"], &query).await?;
            output::list(&list.data, ctx.format, "keys")?
        }
        KeysCmd::Show { id } => {
            let key: Key = ctx.client.get(&["keys", &id], &[]).await?;
            output::one(&key, ctx.format)?
        }
        KeysCmd::Rotate {
            id,
            grace,
            no_grace,
        } => {
            let grace_secs = if no_grace { 0 } else { grace.num_seconds() };
            let rotated: IssuedKey = ctx
                .client
                .post(
                    &["keys", &id, "rotate"],
                    &json!({ "grace_secs": grace_secs }),
                )
                .await?;
            let out = match ctx.format {
                Format::Env => env_lines(std::slice::from_ref(&rotated)),
                f => output::list(std::slice::from_ref(&rotated), f, "keys")?,
            };
            output::emit(&out)?;
            let until = output::time(rotated.info.previous_valid_until.as_deref(), Style::Human);
            eprintln!(
                "note: the old secret works until {until}; the new one is shown only once, store it now."
            );
            return Ok(());
        }
        KeysCmd::Update {
            id,
            models,
            all_models,
            expires_at,
            expires_in,
            no_expiry,
            name,
            no_name,
            default_tags,
            no_default_tags,
        } => {
            let mut patch = Map::new();
            let models: Vec<String> = models
                .iter()
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect();
            if all_models {
                patch.insert("allowed_models".into(), Value::Null);
            } else if !models.is_empty() {
                patch.insert("allowed_models".into(), json!(models));
            }
            if no_expiry {
                patch.insert("expires_at".into(), Value::Null);
            } else if let Some(at) = expires_at {
                patch.insert(
                    "expires_at".into(),
                    json!(output::parse_time("--expires-at", &at)?),
                );
            } else if let Some(d) = expires_in {
                let at = duration::from_now(d).map_err(anyhow::Error::msg)?;
                patch.insert("expires_at".into(), json!(at));
            }
            if no_name {
                patch.insert("name".into(), Value::Null);
            } else if let Some(name) = name {
                patch.insert("name".into(), json!(name));
            }
            if no_default_tags {
                patch.insert("default_tags".into(), Value::Null);
            } else if !default_tags.is_empty() {
                let tags: serde_json::Map<String, Value> = default_tags
                    .into_iter()
                    .map(|(name, value)| (name, Value::String(value)))
                    .collect();
                patch.insert("default_tags".into(), Value::Object(tags));
            }
            if patch.is_empty() {
                bail!(
                    "nothing to update: give --models, --all-models, --expires-in, --expires-at, --no-expiry, --name, --no-name, --default-tag or --no-default-tags"
                );
            }
            let key: Key = ctx.client.patch(&["keys", &id], &patch).await?;
            output::one(&key, ctx.format)?
        }
        KeysCmd::Revoke { id } => {
            let key: Key = ctx
                .client
                .post(&["keys", &id, "revoke"], &serde_json::json!({}))
                .await?;
            output::one(&key, ctx.format)?
        }
    };
    output::emit(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(revoked: Option<&str>, expires: Option<&str>, models: Option<Vec<&str>>) -> Key {
        Key {
            id: "0190a7c2-0000-7000-8000-000000000001".into(),
            team_id: "t".into(),
            experiment_id: None,
            name: Some("eval".into()),
            prefix: "tg-AbCd1234".into(),
            allowed_models: models.map(|m| m.into_iter().map(String::from).collect()),
            expires_at: expires.map(String::from),
            revoked_at: revoked.map(String::from),
            created_at: "2025-01-01T00:00:00Z".into(),
            previous_valid_until: None,
            spend_usd: Some("0.25".into()),
            status: None,
            experiment_ends_at: None,
            extra: Map::new(),
        }
    }

    fn issued(secret: &str) -> IssuedKey {
        IssuedKey {
            key: secret.into(),
            info: key(None, None, None),
        }
    }

    #[test]
    fn env_output_is_one_assignment_per_key() {
        let keys = [issued("tg-AbCd1234xyz"), issued("tg-EfGh5678_-.")];
        assert_eq!(
            env_lines(&keys),
            "OPENAI_API_KEY=tg-AbCd1234xyz\nOPENAI_API_KEY=tg-EfGh5678_-.\n"
        );
        assert_eq!(env_lines(&[]), "");
    }

    #[test]
    fn env_output_quotes_anything_unusual() {
        assert_eq!(
            env_lines(&[issued("tg-x$(rm -rf ~)'")]),
            "OPENAI_API_KEY='tg-x$(rm -rf ~)'\\'''\n"
        );
    }

    #[test]
    fn issued_table_and_csv_show_id_prefix_key() -> Result<()> {
        let keys = [issued("tg-AbCd1234xyz")];
        let t = output::list(&keys, Format::Table, "keys")?;
        assert_eq!(
            t,
            "ID                                    PREFIX       KEY\n\
             0190a7c2-0000-7000-8000-000000000001  tg-AbCd1234  tg-AbCd1234xyz\n"
        );
        let c = output::list(&keys, Format::Csv, "keys")?;
        assert_eq!(
            c,
            "id,prefix,key\n0190a7c2-0000-7000-8000-000000000001,tg-AbCd1234,tg-AbCd1234xyz\n"
        );
        let j: serde_json::Value =
            serde_json::from_str(&output::list(&keys, Format::Json, "keys")?)?;
        assert_eq!(j[0]["key"], "tg-AbCd1234xyz");
        assert_eq!(j[0]["team_id"], "t");
        Ok(())
    }

    #[test]
    fn a_key_of_an_ended_campaign_shows_ended_with_the_time() -> Result<()> {
        let now = DateTime::parse_from_rfc3339("2025-06-10T00:00:00Z")?.with_timezone(&Utc);
        let mut k = key(None, None, None);
        k.experiment_ends_at = Some("2025-06-08T12:00:00Z".into());
        assert_eq!(k.status(now), "ended");
        assert_eq!(k.status_line(now), "ended 2025-06-08 12:00 UTC");
        k.experiment_ends_at = Some("2025-06-20T00:00:00Z".into());
        k.expires_at = Some("2025-06-15T00:00:00Z".into());
        assert_eq!(k.status_line(now), "active until 2025-06-15 00:00 UTC");
        k.status = Some("revoked".into());
        k.revoked_at = Some("2025-06-09T00:00:00Z".into());
        assert_eq!(k.status_line(now), "revoked 2025-06-09 00:00 UTC");
        Ok(())
    }

    #[test]
    fn status_reflects_revocation_and_expiry() -> Result<()> {
        let now = DateTime::parse_from_rfc3339("2025-06-01T00:00:00Z")?.with_timezone(&Utc);
        assert_eq!(key(None, None, None).status(now), "active");
        assert_eq!(
            key(None, Some("2025-07-01T00:00:00Z"), None).status(now),
            "active"
        );
        assert_eq!(
            key(None, Some("2025-05-01T00:00:00Z"), None).status(now),
            "expired"
        );
        assert_eq!(
            key(Some("2025-05-01T00:00:00Z"), None, None).status(now),
            "revoked"
        );
        Ok(())
    }

    #[test]
    fn key_rows_distinguish_any_model_from_a_list() -> Result<()> {
        let any = key(None, None, None);
        let some = key(None, None, Some(vec!["gpt-4o", "claude-sonnet-4"]));
        let c = output::list(&[any, some], Format::Csv, "keys")?;
        let lines: Vec<&str> = c.split("\n").collect();
        assert_eq!(
            lines[0],
            "id,prefix,name,team_id,experiment_id,allowed_models,status,expires_at,experiment_ends_at,revoked_at,created_at,previous_valid_until,spend_usd"
        );
        assert!(lines[1].contains(",t,,,active,"), "{}", lines[1]);
        assert!(
            lines[2].contains(",\"gpt-4o,claude-sonnet-4\",active,"),
            "{}",
            lines[2]
        );
        let t = output::list(&[key(None, None, None)], Format::Table, "keys")?;
        assert!(t.starts_with("ID "));
        assert!(t.contains("  any  "), "{t}");
        assert!(!t.contains("TEAM ID"), "{t}");
        Ok(())
    }

    #[test]
    fn key_json_passes_through_unknown_fields() -> Result<()> {
        let mut k = key(None, None, None);
        k.extra
            .insert("last_used_at".into(), json!("2025-01-02T00:00:00Z"));
        let j: serde_json::Value = serde_json::from_str(&output::one(&k, Format::Json)?)?;
        assert_eq!(j["last_used_at"], "2025-01-02T00:00:00Z");
        assert_eq!(j["allowed_models"], serde_json::Value::Null);
        Ok(())
    }
}
