//! `tollctl limits set|show|clear`: rate limits, concurrency and budgets on a team, an
//! experiment or a key, through `PUT/GET/DELETE /admin/v1/{scope}s/{id}/limits`.
//!
//! The API's `PUT` replaces a scope's whole limits, so `set` reads the current ones first and
//! changes only what its flags name (unless `--replace`). With `--model`, the flags name the
//! scope's limits on that model or group of models instead.

use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::Value;

use super::Ctx;
use crate::api::{Budget, Limits, ModelLimits, ScopeLimits};
use crate::numbers;
use crate::output::{self, Format, Style};
use crate::report::{self, Align};

const PERIODS: [&str; 4] = ["total", "daily", "weekly", "monthly"];
/// What `--unset` can remove: a limit, one budget (by period), every budget, or a setting
/// (back to its default).
const UNSETTABLE: [&str; 11] = [
    "rpm",
    "tpm",
    "max-concurrent",
    "budgets",
    "total",
    "daily",
    "weekly",
    "monthly",
    "budget-mode",
    "on-redis-failure",
    "model",
];

#[derive(Debug, Subcommand)]
pub enum LimitsCmd {
    /// Set limits and budgets; what no flag names is kept (unless --replace).
    Set {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        flags: LimitFlags,
        /// Remove these, comma-separated: rpm, tpm, max-concurrent, a budget period (total,
        /// daily, weekly, monthly), budgets (all of them), budget-mode, on-redis-failure; with
        /// --model, `model` removes all of that model's limits.
        #[arg(long, value_name = "WHAT,...", value_delimiter = ',', value_parser = UNSETTABLE, conflicts_with = "replace")]
        unset: Vec<String>,
        /// Make the flags the scope's complete limits: everything they do not name is removed
        /// (with --model: that model's complete limits).
        #[arg(long)]
        replace: bool,
        /// Set the scope's limits on this model (`gpt-5`) or group of models (a prefix ending
        /// in `*`: `gpt-5*`) instead: --rpm, --tpm and --budget, inside the scope's own.
        #[arg(long, value_name = "MODEL")]
        model: Option<String>,
    },
    /// Show the limits with current usage next to each.
    Show {
        #[command(flatten)]
        target: Target,
    },
    /// Remove every limit and budget of the scope.
    Clear {
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    Team,
    Experiment,
    Key,
}

impl ScopeArg {
    fn segment(self) -> &'static str {
        match self {
            ScopeArg::Team => "teams",
            ScopeArg::Experiment => "experiments",
            ScopeArg::Key => "keys",
        }
    }
}

#[derive(Debug, Args)]
pub struct Target {
    /// The kind of scope.
    #[arg(value_enum)]
    scope: ScopeArg,
    /// Its id (a team also by name; an experiment by name with --team).
    id: String,
    /// The team of an experiment given by name.
    #[arg(long)]
    team: Option<String>,
}

/// Limit flags, shared by `limits set` and `campaigns launch`.
#[derive(Debug, Clone, Default, Args)]
pub struct LimitFlags {
    /// Requests per minute (at least 1).
    #[arg(long, allow_negative_numbers = true, value_parser = numbers::limit("requests per minute", u32::MAX.into()))]
    pub rpm: Option<u64>,
    /// Tokens per minute (at least 1).
    #[arg(long, allow_negative_numbers = true, value_parser = numbers::limit("tokens per minute", u64::MAX))]
    pub tpm: Option<u64>,
    /// Requests in flight at once (at least 1).
    #[arg(long, allow_negative_numbers = true, value_parser = numbers::limit("requests in flight", u32::MAX.into()))]
    pub max_concurrent: Option<u64>,
    /// A budget in USD, more than 0: PERIOD=AMOUNT (total, daily, weekly, monthly), or AMOUNT
    /// for the --period; repeat for several periods.
    #[arg(long = "budget", value_name = "[PERIOD=]USD", allow_negative_numbers = true, value_parser = parse_budget)]
    pub budgets: Vec<BudgetArg>,
    /// The period of --budget amounts given without one.
    #[arg(long, value_parser = PERIODS, default_value = "total")]
    pub period: String,
    /// strict: reserve the most a request can cost; estimate: reserve an estimate.
    #[arg(long, value_parser = ["strict", "estimate"])]
    pub budget_mode: Option<String>,
    /// What to do when Redis is unreachable: closed (503) or open.
    #[arg(long, value_parser = ["closed", "open"])]
    pub on_redis_failure: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetArg {
    period: Option<String>,
    amount: String,
}

/// `--model-budget gpt-5=100` or `gpt-5=daily=50`: a budget on one model (or a `*` group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelBudgetArg {
    model: String,
    budget: BudgetArg,
}

pub(super) fn parse_model_budget(text: &str) -> Result<ModelBudgetArg, String> {
    let (model, budget) = text.split_once('=').ok_or_else(|| {
        format!("{text:?} is not MODEL=[PERIOD=]USD, e.g. gpt-5=100 or gpt-5=daily=20")
    })?;
    let model = model.trim();
    if model.is_empty() {
        return Err(format!("{text:?} names no model: write MODEL=[PERIOD=]USD"));
    }
    Ok(ModelBudgetArg {
        model: model.to_owned(),
        budget: parse_budget(budget)?,
    })
}

/// The limits on models that `--model-budget` flags give, one entry per model; `period` is
/// the period of amounts given without one.
pub(super) fn model_budgets(args: &[ModelBudgetArg], period: &str) -> Result<Vec<ModelLimits>> {
    let mut out: Vec<ModelLimits> = Vec::new();
    for arg in args {
        let period = arg
            .budget
            .period
            .clone()
            .unwrap_or_else(|| period.to_owned());
        let at = match out.iter().position(|m| m.model == arg.model) {
            Some(at) => at,
            None => {
                out.push(ModelLimits {
                    model: arg.model.clone(),
                    ..ModelLimits::default()
                });
                out.len() - 1
            }
        };
        let entry = &mut out[at];
        if entry.budgets.iter().any(|b| b.period == period) {
            bail!("two {period} budgets given for model {}", arg.model);
        }
        entry.budgets.push(Budget {
            period,
            amount_usd: arg.budget.amount.clone(),
        });
    }
    Ok(out)
}

/// `500`, `daily=50`, `total=12.50`: exact decimals, never floats.
pub(super) fn parse_budget(text: &str) -> Result<BudgetArg, String> {
    let (period, amount) = match text.split_once('=') {
        Some((p, a)) => (Some(p.trim().to_ascii_lowercase()), a.trim()),
        None => (None, text.trim()),
    };
    if let Some(p) = &period
        && !PERIODS.contains(&p.as_str())
    {
        return Err(format!(
            "unknown budget period {p:?}: use total, daily, weekly or monthly"
        ));
    }
    numbers::budget_amount(amount)?;
    Ok(BudgetArg {
        period,
        amount: amount.to_owned(),
    })
}

impl LimitFlags {
    pub fn is_empty(&self) -> bool {
        self.rpm.is_none()
            && self.tpm.is_none()
            && self.max_concurrent.is_none()
            && self.budgets.is_empty()
            && self.budget_mode.is_none()
            && self.on_redis_failure.is_none()
    }

    /// The budgets the flags give, each with its period; a period given twice is an error.
    fn budgets(&self) -> Result<Vec<Budget>> {
        let mut out: Vec<Budget> = Vec::new();
        for b in &self.budgets {
            let period = b.period.clone().unwrap_or_else(|| self.period.clone());
            if out.iter().any(|x| x.period == period) {
                bail!("two {period} budgets given: a scope has one budget per period");
            }
            out.push(Budget {
                period,
                amount_usd: b.amount.clone(),
            });
        }
        Ok(out)
    }

    /// `base` with what the flags name changed.
    pub fn apply(&self, mut base: Limits) -> Result<Limits> {
        if let Some(rpm) = self.rpm {
            base.rpm = Some(rpm);
        }
        if let Some(tpm) = self.tpm {
            base.tpm = Some(tpm);
        }
        if let Some(max) = self.max_concurrent {
            base.max_concurrent = Some(max);
        }
        for budget in self.budgets()? {
            match base.budgets.iter_mut().find(|b| b.period == budget.period) {
                Some(existing) => *existing = budget,
                None => base.budgets.push(budget),
            }
        }
        if let Some(mode) = &self.budget_mode {
            base.budget_mode = Some(mode.clone());
        }
        if let Some(policy) = &self.on_redis_failure {
            base.on_redis_failure = Some(policy.clone());
        }
        Ok(base)
    }
}

/// What `limits set` sends: the current limits (or nothing, with `--replace`), changed by the
/// flags, minus what `--unset` names.
fn merge(
    current: Option<Limits>,
    flags: &LimitFlags,
    unset: &[String],
    replace: bool,
) -> Result<Limits> {
    let named = |what: &str| match what {
        "rpm" => flags.rpm.is_some(),
        "tpm" => flags.tpm.is_some(),
        "max-concurrent" => flags.max_concurrent.is_some(),
        "budget-mode" => flags.budget_mode.is_some(),
        "on-redis-failure" => flags.on_redis_failure.is_some(),
        _ => false,
    };
    if let Some(both) = unset.iter().find(|u| named(u)) {
        bail!("--{both} and --unset {both} contradict each other");
    }
    let base = if replace {
        Limits::default()
    } else {
        current.unwrap_or_default()
    };
    let mut limits = flags.apply(base)?;
    for what in unset {
        match what.as_str() {
            "rpm" => limits.rpm = None,
            "tpm" => limits.tpm = None,
            "max-concurrent" => limits.max_concurrent = None,
            "budget-mode" => limits.budget_mode = None,
            "on-redis-failure" => limits.on_redis_failure = None,
            "budgets" => limits.budgets.clear(),
            period => limits.budgets.retain(|b| b.period != period),
        }
    }
    Ok(limits)
}

/// What `limits set --model M` sends: the current limits with the flags (and `--unset`, and
/// `--replace`) applied to the limits on `model` only. A model left with no limit is removed.
fn merge_model(
    current: Option<Limits>,
    model: &str,
    flags: &LimitFlags,
    unset: &[String],
    replace: bool,
) -> Result<Limits> {
    for (given, flag) in [
        (flags.max_concurrent.is_some(), "--max-concurrent"),
        (flags.budget_mode.is_some(), "--budget-mode"),
        (flags.on_redis_failure.is_some(), "--on-redis-failure"),
    ] {
        if given {
            bail!("{flag} applies to the whole scope, not to one model: leave out --model");
        }
    }
    if let Some(what) = unset
        .iter()
        .find(|u| ["max-concurrent", "budget-mode", "on-redis-failure"].contains(&u.as_str()))
    {
        bail!("--unset {what} applies to the whole scope, not to one model: leave out --model");
    }
    let mut limits = current.unwrap_or_default();
    let existing = limits.models.iter().position(|m| m.model == model);
    if unset.iter().any(|u| u == "model") {
        if !flags.is_empty() {
            bail!("--unset model removes every limit on {model}: give no other limit flags");
        }
        let Some(at) = existing else {
            bail!("there are no limits on model {model} to remove");
        };
        limits.models.remove(at);
        return Ok(limits);
    }
    let entry = existing.map(|at| limits.models.remove(at));
    // The model's limits as a scope's, so `merge` applies the same flags the same way.
    let as_scope = entry.as_ref().map(|m| Limits {
        rpm: m.rpm,
        tpm: m.tpm,
        budgets: m.budgets.clone(),
        ..Limits::default()
    });
    let merged = merge(as_scope, flags, unset, replace)?;
    let changed = ModelLimits {
        model: model.to_owned(),
        rpm: merged.rpm,
        tpm: merged.tpm,
        budgets: merged.budgets,
        extra: entry.map(|m| m.extra).unwrap_or_default(),
    };
    if changed.rpm.is_some() || changed.tpm.is_some() || !changed.budgets.is_empty() {
        let at = existing.unwrap_or(limits.models.len());
        limits.models.insert(at, changed);
    }
    Ok(limits)
}

/// The API path segments of the target, and the `team` parameter that names an experiment's
/// team when the experiment is given by name.
fn resolve(target: &Target) -> Result<(&'static str, &str, Option<&str>)> {
    if target.team.is_some() && target.scope != ScopeArg::Experiment {
        bail!(
            "--team names the team of an experiment given by name; a team or a key is named by itself"
        );
    }
    Ok((target.scope.segment(), &target.id, target.team.as_deref()))
}

pub async fn run(cmd: LimitsCmd, ctx: &Ctx) -> Result<()> {
    let body: Value = match cmd {
        LimitsCmd::Set {
            target,
            flags,
            unset,
            replace,
            model,
        } => {
            if flags.is_empty() && unset.is_empty() && !replace {
                bail!(
                    "nothing to set: give --rpm, --tpm, --max-concurrent, --budget, --budget-mode, --on-redis-failure or --unset"
                );
            }
            if model.is_none() && unset.iter().any(|u| u == "model") {
                bail!("--unset model needs --model, the model whose limits to remove");
            }
            let (segment, id, team) = resolve(&target)?;
            let query = [("team", team)];
            // Limits on a model sit inside the scope's, so those are read even with --replace.
            let current = if replace && model.is_none() {
                None
            } else {
                let shown: ScopeLimits = ctx.client.get(&[segment, id, "limits"], &query).await?;
                shown.limits
            };
            let limits = match &model {
                Some(model) => merge_model(current, model, &flags, &unset, replace)?,
                None => merge(current, &flags, &unset, replace)?,
            };
            ctx.client
                .send_json(Method::PUT, &[segment, id, "limits"], &query, &limits)
                .await?
        }
        LimitsCmd::Show { target } => {
            let (segment, id, team) = resolve(&target)?;
            ctx.client
                .get(&[segment, id, "limits"], &[("team", team)])
                .await?
        }
        LimitsCmd::Clear { target } => {
            let (segment, id, team) = resolve(&target)?;
            ctx.client
                .delete(&[segment, id, "limits"], &[("team", team)])
                .await?
        }
    };
    let shown: ScopeLimits = serde_json::from_value(body.clone())
        .map_err(|e| anyhow!("unexpected answer from the admin API: {e}"))?;
    if shown.limits.is_some() && shown.usage.is_none() && ctx.format != Format::Json {
        eprintln!("note: current usage is unavailable (the gateway could not read Redis).");
    }
    let out = match ctx.format {
        Format::Json => output::json(&body)?,
        Format::Csv => csv(&shown),
        Format::Table => table(&shown),
        Format::Env => bail!("{}", output::ENV_ONLY),
    };
    output::emit(&out)
}

/// A field of the usage object as text (numbers as written, decimal strings verbatim).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// One rate-like limit: (name, limit, used, remaining), usage as shown (`?` when unknown).
fn rates(shown: &ScopeLimits) -> Vec<(&'static str, u64, Option<u64>, Option<u64>)> {
    let Some(limits) = &shown.limits else {
        return Vec::new();
    };
    let usage = shown.usage.as_ref();
    let remaining = |field: &str| usage.and_then(|u| u[field]["remaining"].as_u64());
    [
        ("rpm", limits.rpm, "rpm"),
        ("tpm", limits.tpm, "tpm"),
        ("max-concurrent", limits.max_concurrent, "concurrency"),
    ]
    .into_iter()
    .filter_map(|(name, limit, field)| {
        let limit = limit?;
        let left = remaining(field);
        Some((name, limit, left.map(|r| limit.saturating_sub(r)), left))
    })
    .collect()
}

/// The usage of the budget of `period`, if the gateway could read it.
fn budget_usage<'a>(shown: &'a ScopeLimits, period: &str) -> Option<&'a Value> {
    shown.usage.as_ref()?["budgets"]
        .as_array()?
        .iter()
        .find(|b| b["period"] == period)
}

fn table(shown: &ScopeLimits) -> String {
    let Some(limits) = &shown.limits else {
        return format!("No limits on {} {}.\n", shown.scope, shown.id);
    };
    let mut out = output::table::<&str>(
        &[],
        &[
            vec!["SCOPE".into(), format!("{} {}", shown.scope, shown.id)],
            vec![
                "BUDGET MODE".into(),
                limits
                    .budget_mode
                    .clone()
                    .unwrap_or_else(|| "strict".into()),
            ],
            vec![
                "ON REDIS FAILURE".into(),
                limits
                    .on_redis_failure
                    .clone()
                    .unwrap_or_else(|| "closed".into()),
            ],
        ],
    );
    out.push_str(&limit_tables(shown));
    for view in model_views(shown) {
        out.push_str(&format!("\nMODEL {}\n", view.id));
        out.push_str(&limit_tables(&view));
    }
    out
}

/// The scope's limits on each model as a scope of their own (`scope` "model", `id` the
/// model), with their usage, so they are shown the way the scope's are.
fn model_views(shown: &ScopeLimits) -> Vec<ScopeLimits> {
    let Some(limits) = &shown.limits else {
        return Vec::new();
    };
    limits
        .models
        .iter()
        .map(|m| ScopeLimits {
            scope: "model".into(),
            id: m.model.clone(),
            limits: Some(Limits {
                rpm: m.rpm,
                tpm: m.tpm,
                budgets: m.budgets.clone(),
                ..Limits::default()
            }),
            usage: shown.usage.as_ref().and_then(|u| {
                u["models"]
                    .as_array()?
                    .iter()
                    .find(|usage| usage["model"] == m.model.as_str())
                    .cloned()
            }),
            extra: Default::default(),
        })
        .collect()
}

/// The rate and budget tables of a scope's limits, each after a blank line.
fn limit_tables(shown: &ScopeLimits) -> String {
    let mut out = String::new();
    let Some(limits) = &shown.limits else {
        return out;
    };
    let unknown = || "?".to_owned();
    let rates = rates(shown);
    if !rates.is_empty() {
        let rows: Vec<Vec<String>> = rates
            .iter()
            .map(|(name, limit, used, left)| {
                let n = |v: u64| report::group_digits(&v.to_string());
                vec![
                    (*name).to_owned(),
                    n(*limit),
                    used.map_or_else(unknown, n),
                    left.map_or_else(unknown, n),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&report::table(
            &["LIMIT", "VALUE", "USED", "REMAINING"],
            &[Align::Left, Align::Right, Align::Right, Align::Right],
            &rows,
        ));
    }
    if !limits.budgets.is_empty() {
        let mut rows: Vec<Vec<String>> = limits
            .budgets
            .iter()
            .map(|b| {
                let usage = budget_usage(shown, &b.period);
                let field = |name: &str| usage.and_then(|u| text(&u[name])).unwrap_or_else(unknown);
                let period = match usage {
                    None => "?".to_owned(),
                    Some(u) => match (text(&u["period_start"]), text(&u["period_end"])) {
                        (_, None) => "all time".to_owned(),
                        (start, end) => format!(
                            "{} to {}",
                            output::time(start.as_deref(), Style::Human),
                            output::time(end.as_deref(), Style::Human)
                        ),
                    },
                };
                let forecast = usage.map(|u| &u["forecast"]);
                let (rate, runs_out) = match forecast {
                    None => (unknown(), unknown()),
                    Some(Value::Null) => (String::new(), String::new()),
                    Some(f) => (
                        text(&f["burn_rate_usd_per_hour"]).unwrap_or_default(),
                        runs_out(f),
                    ),
                };
                vec![
                    b.period.clone(),
                    b.amount_usd.clone(),
                    field("spent_usd"),
                    field("reserved_usd"),
                    field("remaining_usd"),
                    rate,
                    runs_out,
                    period,
                ]
            })
            .collect();
        for column in 1..=5 {
            let mut values: Vec<String> = rows.iter().map(|r| r[column].clone()).collect();
            report::align_decimals(&mut values);
            for (row, value) in rows.iter_mut().zip(values) {
                row[column] = value;
            }
        }
        out.push('\n');
        out.push_str(&report::table(
            &[
                "BUDGET",
                "LIMIT USD",
                "SPENT USD",
                "RESERVED USD",
                "REMAINING USD",
                "USD/HOUR",
                "RUNS OUT",
                "PERIOD",
            ],
            &[
                Align::Left,
                Align::Right,
                Align::Right,
                Align::Right,
                Align::Right,
                Align::Right,
                Align::Left,
                Align::Left,
            ],
            &rows,
        ));
    }
    out
}

/// When a budget runs out at its burn rate: a time, `renews first` when its period ends
/// before that, `not at this rate` when nothing is being spent.
fn runs_out(forecast: &Value) -> String {
    match text(&forecast["exhausted_at"]) {
        None => "not at this rate".to_owned(),
        Some(_) if forecast["exhausted_before_period_end"] == false => "renews first".to_owned(),
        Some(at) => output::time(Some(&at), Style::Human),
    }
}

fn csv(shown: &ScopeLimits) -> String {
    let headers = [
        "limit",
        "value",
        "used",
        "reserved",
        "remaining",
        "period_start",
        "period_end",
        "burn_rate_usd_per_hour",
        "exhausted_at",
    ];
    let mut rows = csv_rows(shown, "");
    for view in model_views(shown) {
        rows.extend(csv_rows(&view, &format!("model:{}:", view.id)));
    }
    if let Some(limits) = &shown.limits {
        let setting = |name: &str, value: &Option<String>, default: &str| {
            let mut row = vec![
                name.to_owned(),
                value.clone().unwrap_or_else(|| default.into()),
            ];
            row.resize(headers.len(), String::new());
            row
        };
        rows.push(setting("budget_mode", &limits.budget_mode, "strict"));
        rows.push(setting(
            "on_redis_failure",
            &limits.on_redis_failure,
            "closed",
        ));
    }
    output::csv(&headers, &rows)
}

/// One CSV row per rate limit and budget, each named with `prefix` (`model:gpt-5:` for the
/// limits on a model).
fn csv_rows(shown: &ScopeLimits, prefix: &str) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    for (name, limit, used, left) in rates(shown) {
        rows.push(vec![
            format!("{prefix}{name}"),
            limit.to_string(),
            opt(used),
            String::new(),
            opt(left),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    if let Some(limits) = &shown.limits {
        for b in &limits.budgets {
            let usage = budget_usage(shown, &b.period);
            let field = |name: &str| usage.and_then(|u| text(&u[name])).unwrap_or_default();
            rows.push(vec![
                format!("{prefix}budget_{}", b.period),
                b.amount_usd.clone(),
                field("spent_usd"),
                field("reserved_usd"),
                field("remaining_usd"),
                field("period_start"),
                field("period_end"),
                usage
                    .and_then(|u| text(&u["forecast"]["burn_rate_usd_per_hour"]))
                    .unwrap_or_default(),
                usage
                    .and_then(|u| text(&u["forecast"]["exhausted_at"]))
                    .unwrap_or_default(),
            ]);
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flags(args: &[&str]) -> LimitFlags {
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            f: LimitFlags,
        }
        let mut argv = vec!["p"];
        argv.extend(args);
        <P as clap::Parser>::try_parse_from(argv)
            .map(|p| p.f)
            .unwrap_or_default()
    }

    fn current() -> Limits {
        serde_json::from_value(json!({
            "rpm": 600, "tpm": null, "max_concurrent": 8,
            "budgets": [{"period": "total", "amount_usd": "500"}],
            "budget_mode": "estimate", "on_redis_failure": "closed",
            "future_field": 3
        }))
        .unwrap_or_default()
    }

    #[test]
    fn budgets_parse_exactly() {
        assert_eq!(
            parse_budget("daily=50.10"),
            Ok(BudgetArg {
                period: Some("daily".into()),
                amount: "50.10".into()
            })
        );
        assert_eq!(parse_budget("500").map(|b| b.period), Ok(None));
        for bad in ["yearly=5", "daily=-1", "daily=abc", "1e3", ""] {
            assert!(parse_budget(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn set_keeps_what_the_flags_do_not_name() -> Result<()> {
        let merged = merge(
            Some(current()),
            &flags(&["--tpm", "1000", "--budget", "daily=50"]),
            &[],
            false,
        )?;
        assert_eq!(merged.rpm, Some(600));
        assert_eq!(merged.tpm, Some(1000));
        assert_eq!(merged.max_concurrent, Some(8));
        assert_eq!(merged.budget_mode.as_deref(), Some("estimate"));
        let periods: Vec<(&str, &str)> = merged
            .budgets
            .iter()
            .map(|b| (b.period.as_str(), b.amount_usd.as_str()))
            .collect();
        assert_eq!(periods, [("total", "500"), ("daily", "50")]);
        // Fields this version does not know go back unchanged.
        assert_eq!(serde_json::to_value(&merged)?["future_field"], 3);
        Ok(())
    }

    #[test]
    fn set_replaces_a_budget_of_the_same_period_and_unsets() -> Result<()> {
        let merged = merge(
            Some(current()),
            &flags(&["--budget", "750", "--budget", "weekly=10"]),
            &["rpm".into(), "budget-mode".into()],
            false,
        )?;
        assert_eq!(merged.rpm, None);
        assert_eq!(merged.budget_mode, None);
        assert_eq!(merged.budgets[0].amount_usd, "750");
        assert_eq!(merged.budgets.len(), 2);
        let merged = merge(Some(current()), &flags(&[]), &["total".into()], false)?;
        assert!(merged.budgets.is_empty());
        Ok(())
    }

    #[test]
    fn replace_starts_from_nothing_and_contradictions_are_refused() -> Result<()> {
        let merged = merge(Some(current()), &flags(&["--rpm", "5"]), &[], true)?;
        assert_eq!(merged.rpm, Some(5));
        assert_eq!(merged.max_concurrent, None);
        assert!(merged.budgets.is_empty());
        assert!(merge(None, &flags(&["--rpm", "5"]), &["rpm".into()], false).is_err());
        assert!(
            merge(
                None,
                &flags(&["--budget", "5", "--budget", "total=6"]),
                &[],
                false
            )
            .is_err()
        );
        Ok(())
    }

    #[test]
    fn model_budgets_group_by_model_with_their_periods() -> Result<()> {
        let args: Vec<ModelBudgetArg> = ["gpt-5=100", "gpt-5=daily=20", "claude-*=5"]
            .iter()
            .map(|t| parse_model_budget(t).map_err(anyhow::Error::msg))
            .collect::<Result<_>>()?;
        let models = model_budgets(&args, "total")?;
        assert_eq!(models.len(), 2);
        let periods: Vec<(&str, &str)> = models[0]
            .budgets
            .iter()
            .map(|b| (b.period.as_str(), b.amount_usd.as_str()))
            .collect();
        assert_eq!(
            (models[0].model.as_str(), periods),
            ("gpt-5", vec![("total", "100"), ("daily", "20")])
        );
        assert_eq!(models[1].model, "claude-*");
        for bad in ["gpt-5", "=100", "gpt-5=yearly=3", "gpt-5=-1"] {
            assert!(parse_model_budget(bad).is_err(), "{bad}");
        }
        let twice = [
            parse_model_budget("m=1").map_err(anyhow::Error::msg)?,
            parse_model_budget("m=2").map_err(anyhow::Error::msg)?,
        ];
        assert!(model_budgets(&twice, "total").is_err());
        Ok(())
    }

    #[test]
    fn set_with_a_model_changes_only_that_models_limits() -> Result<()> {
        let mut base = current();
        base.models = vec![ModelLimits {
            model: "claude-*".into(),
            rpm: Some(10),
            ..ModelLimits::default()
        }];
        let merged = merge_model(
            Some(base.clone()),
            "gpt-5",
            &flags(&["--budget", "100", "--rpm", "30"]),
            &[],
            false,
        )?;
        // The scope's own limits and the other model's are kept.
        assert_eq!((merged.rpm, merged.max_concurrent), (Some(600), Some(8)));
        assert_eq!(merged.budgets, base.budgets);
        assert_eq!(merged.models.len(), 2);
        assert_eq!(merged.models[0], base.models[0]);
        let gpt5 = &merged.models[1];
        assert_eq!((gpt5.model.as_str(), gpt5.rpm), ("gpt-5", Some(30)));
        assert_eq!(gpt5.budgets[0].amount_usd, "100");

        let changed = merge_model(
            Some(merged.clone()),
            "gpt-5",
            &flags(&[]),
            &["rpm".into()],
            false,
        )?;
        assert_eq!(changed.models[1].rpm, None);
        assert_eq!(changed.models[1].budgets.len(), 1);
        let removed = merge_model(
            Some(merged.clone()),
            "gpt-5",
            &flags(&[]),
            &["model".into()],
            false,
        )?;
        assert_eq!(removed.models, base.models);
        // A model left with no limit at all is removed rather than sent empty.
        let emptied = merge_model(
            Some(merged),
            "gpt-5",
            &flags(&[]),
            &["rpm".into(), "budgets".into()],
            false,
        )?;
        assert_eq!(emptied.models, base.models);
        Ok(())
    }

    #[test]
    fn scope_wide_settings_are_refused_with_a_model() {
        for args in [
            &["--max-concurrent", "3"][..],
            &["--budget-mode", "estimate"],
        ] {
            let error = merge_model(None, "gpt-5", &flags(args), &[], false).unwrap_err();
            assert!(
                error.to_string().contains("applies to the whole scope"),
                "{error}"
            );
        }
        let error = merge_model(None, "gpt-5", &flags(&[]), &["model".into()], false).unwrap_err();
        assert_eq!(
            error.to_string(),
            "there are no limits on model gpt-5 to remove"
        );
    }

    #[test]
    fn show_lists_the_limits_on_each_model_with_their_usage() {
        let mut with_model = shown();
        if let Some(limits) = &mut with_model.limits {
            limits.models = vec![ModelLimits {
                model: "gpt-5".into(),
                rpm: Some(30),
                budgets: vec![Budget {
                    period: "total".into(),
                    amount_usd: "100".into(),
                }],
                ..ModelLimits::default()
            }];
        }
        if let Some(usage) = &mut with_model.usage {
            usage["models"] = json!([{"model": "gpt-5", "rpm": {"limit": 30, "remaining": 29},
                "tpm": null, "budgets": [{"period": "total", "period_start": "1970-01-01T00:00:00Z",
                "period_end": null, "limit_usd": "100", "spent_usd": "99.5", "reserved_usd": "0",
                "remaining_usd": "0.5", "forecast": null}]}]);
        }
        let t = table(&with_model);
        let model_part = &t[t.find("MODEL gpt-5").unwrap()..];
        assert_eq!(
            model_part,
            "MODEL gpt-5\n\
             \n\
             LIMIT  VALUE  USED  REMAINING\n\
             rpm       30     1         29\n\
             \n\
             BUDGET  LIMIT USD  SPENT USD  RESERVED USD  REMAINING USD  USD/HOUR  RUNS OUT  PERIOD\n\
             total         100       99.5             0            0.5                      all time\n"
        );
        let c = csv(&with_model);
        assert!(c.contains("\nmodel:gpt-5:rpm,30,1,,29,,,,\n"), "{c}");
        assert!(
            c.contains("\nmodel:gpt-5:budget_total,100,99.5,0,0.5,1970-01-01T00:00:00Z,,,\n"),
            "{c}"
        );
    }

    fn shown() -> ScopeLimits {
        serde_json::from_value(json!({
            "scope": "experiment", "id": "e1",
            "limits": {"rpm": 600, "tpm": 200000, "max_concurrent": null,
                       "budgets": [{"period": "total", "amount_usd": "500"},
                                   {"period": "daily", "amount_usd": "50.5"}],
                       "budget_mode": "strict", "on_redis_failure": "closed"},
            "usage": {"scope": "experiment", "id": "e1",
                      "rpm": {"limit": 600, "remaining": 598},
                      "tpm": {"limit": 200000, "remaining": 199000},
                      "concurrency": null,
                      "budgets": [
                        {"period": "total", "period_start": "1970-01-01T00:00:00Z", "period_end": null,
                         "limit_usd": "500", "spent_usd": "12.25", "reserved_usd": "0.001",
                         "remaining_usd": "487.749",
                         "forecast": {"window_start": "2026-10-31T12:00:00Z",
                                      "spent_in_window_usd": "12.25",
                                      "burn_rate_usd_per_hour": "0.510416667",
                                      "exhausted_at": "2026-11-10T03:36:00Z",
                                      "exhausted_before_period_end": true}},
                        {"period": "daily", "period_start": "2026-11-01T00:00:00Z",
                         "period_end": "2026-11-02T00:00:00Z", "limit_usd": "50.5",
                         "spent_usd": "1", "reserved_usd": "0", "remaining_usd": "49.5"}]}
        }))
        .unwrap_or_else(|_| ScopeLimits {
            scope: String::new(),
            id: String::new(),
            limits: None,
            usage: None,
            extra: Default::default(),
        })
    }

    #[test]
    fn show_puts_usage_next_to_each_limit() {
        let t = table(&shown());
        assert_eq!(
            t,
            "SCOPE             experiment e1\n\
             BUDGET MODE       strict\n\
             ON REDIS FAILURE  closed\n\
             \n\
             LIMIT    VALUE   USED  REMAINING\n\
             rpm        600      2        598\n\
             tpm    200,000  1,000    199,000\n\
             \n\
             BUDGET  LIMIT USD  SPENT USD  RESERVED USD  REMAINING USD     USD/HOUR  RUNS OUT              PERIOD\n\
             total       500.0      12.25         0.001        487.749  0.510416667  2026-11-10 03:36 UTC  all time\n\
             daily        50.5       1.00         0.000         49.500                                     2026-11-01 00:00 UTC to 2026-11-02 00:00 UTC\n"
        );
        let mut none = shown();
        none.limits = None;
        assert_eq!(table(&none), "No limits on experiment e1.\n");
    }

    #[test]
    fn show_csv_has_one_row_per_limit() {
        let c = csv(&shown());
        let lines: Vec<&str> = c.lines().collect();
        assert_eq!(
            lines[0],
            "limit,value,used,reserved,remaining,period_start,period_end,burn_rate_usd_per_hour,exhausted_at"
        );
        assert_eq!(lines[1], "rpm,600,2,,598,,,,");
        assert_eq!(
            lines[3],
            "budget_total,500,12.25,0.001,487.749,1970-01-01T00:00:00Z,,0.510416667,2026-11-10T03:36:00Z"
        );
        assert_eq!(
            lines[4],
            "budget_daily,50.5,1,0,49.5,2026-11-01T00:00:00Z,2026-11-02T00:00:00Z,,"
        );
        assert_eq!(lines[5], "budget_mode,strict,,,,,,,");
    }
}
