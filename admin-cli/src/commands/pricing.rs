//! `tollctl pricing list|quote` (the gateway's live price table, through the admin API) and
//! `tollctl pricing import-litellm` (local: LiteLLM's price map to Tollgate price files).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chrono::{NaiveDate, Utc};
use clap::Subcommand;
use serde::Serialize;
use serde_json::{Value, json};

use super::Ctx;
use crate::litellm;
use crate::output::{self, Format};
use crate::report::{self, Align};

#[derive(Debug, Subcommand)]
pub enum PricingCmd {
    /// The prices the gateway charges now (--all: with history and scheduled changes).
    List {
        /// Only this model (name or alias), with its whole history.
        #[arg(long)]
        model: Option<String>,
        /// Only this provider.
        #[arg(long)]
        provider: Option<String>,
        /// Include superseded and scheduled entries.
        #[arg(long)]
        all: bool,
    },
    /// What a usage costs, part by part, exactly as the gateway would charge it.
    Quote {
        /// Model name or alias.
        #[arg(long)]
        model: String,
        /// All prompt tokens, including cached and cache-write tokens.
        #[arg(long)]
        input: u64,
        /// All completion tokens, including reasoning tokens.
        #[arg(long)]
        output: u64,
        /// Prompt tokens read from the cache (part of --input).
        #[arg(long, default_value_t = 0)]
        cached: u64,
        /// Prompt tokens written to the cache, 5-minute (part of --input).
        #[arg(long, default_value_t = 0)]
        cache_write: u64,
        /// Prompt tokens written to the 1-hour cache (part of --input).
        #[arg(long, default_value_t = 0)]
        cache_write_1h: u64,
        /// Reasoning tokens (part of --output).
        #[arg(long, default_value_t = 0)]
        reasoning: u64,
        /// Price as of this time (RFC 3339 or YYYY-MM-DD; default now).
        #[arg(long)]
        at: Option<String>,
    },
    /// Convert LiteLLM's price map into Tollgate price files (local; no API call).
    ImportLitellm {
        /// LiteLLM's model_prices_and_context_window.json.
        file: PathBuf,
        /// Directory for the price files, one per provider (created if missing).
        #[arg(long, default_value = "litellm-pricing")]
        out: PathBuf,
        /// Only these LiteLLM providers (litellm_provider), comma-separated.
        #[arg(long, value_name = "PROVIDER,...", value_delimiter = ',')]
        provider: Vec<String>,
        /// First day the imported prices apply (default: today, UTC).
        #[arg(long, value_name = "YYYY-MM-DD")]
        effective_from: Option<NaiveDate>,
        /// Overwrite price files that already exist in --out.
        #[arg(long)]
        force: bool,
    },
}

/// Whether a command needs the admin API (`import-litellm` does not).
pub fn needs_api(cmd: &PricingCmd) -> bool {
    !matches!(cmd, PricingCmd::ImportLitellm { .. })
}

pub async fn run(cmd: PricingCmd, ctx: Option<&Ctx>, format: Format) -> Result<()> {
    let out = match (cmd, ctx) {
        (
            PricingCmd::ImportLitellm {
                file,
                out,
                provider,
                effective_from,
                force,
            },
            _,
        ) => {
            let effective_from = effective_from.unwrap_or_else(|| Utc::now().date_naive());
            import(&file, &out, &provider, effective_from, force, format)?
        }
        (
            PricingCmd::List {
                model,
                provider,
                all,
            },
            Some(ctx),
        ) => {
            let query = [
                ("model", model.as_deref()),
                ("provider", provider.as_deref()),
            ];
            let body: Value = ctx.client.get(&["pricing"], &query).await?;
            let entries: Vec<Value> = body["data"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|e| all || model.is_some() || e["status"] == "current")
                .collect();
            render_list(&entries, format)?
        }
        (
            PricingCmd::Quote {
                model,
                input,
                output,
                cached,
                cache_write,
                cache_write_1h,
                reasoning,
                at,
            },
            Some(ctx),
        ) => {
            let body = json!({
                "model": model,
                "input_tokens": input,
                "output_tokens": output,
                "cached_input_tokens": cached,
                "cache_write_tokens": cache_write,
                "cache_write_1h_tokens": cache_write_1h,
                "reasoning_tokens": reasoning,
                "at": at,
            });
            let quote: Value = ctx.client.post(&["pricing", "quote"], &body).await?;
            render_quote(&quote, format)?
        }
        (_, None) => bail!("this command needs the admin API"),
    };
    output::emit(&out)
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A price in a table: `-` when the entry leaves it to its default (shown as the default).
fn rate(v: &Value) -> String {
    if v.is_null() { "-".into() } else { s(v) }
}

const LIST_COLUMNS: [&str; 15] = [
    "provider",
    "name",
    "aliases",
    "effective_from",
    "effective_until",
    "status",
    "input",
    "cached_input",
    "cache_write",
    "cache_write_1h",
    "output",
    "reasoning",
    "tiers",
    "in_force_for",
    "source",
];

fn list_values(e: &Value) -> Vec<String> {
    let join = |v: &Value| -> String {
        v.as_array()
            .map(|a| a.iter().map(s).collect::<Vec<_>>().join(","))
            .unwrap_or_default()
    };
    let tiers = e["tiers"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| format!(">{}", s(&t["above_prompt_tokens"])))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let r = &e["rates"];
    vec![
        s(&e["provider"]),
        s(&e["name"]),
        join(&e["aliases"]),
        s(&e["effective_from"]),
        s(&e["effective_until"]),
        s(&e["status"]),
        rate(&r["input"]),
        rate(&r["cached_input"]),
        rate(&r["cache_write"]),
        rate(&r["cache_write_1h"]),
        rate(&r["output"]),
        rate(&r["reasoning"]),
        tiers,
        join(&e["in_force_for"]),
        s(&e["source"]),
    ]
}

fn render_list(entries: &[Value], format: Format) -> Result<String> {
    match format {
        Format::Json => return output::json(entries),
        Format::Csv => {
            let rows: Vec<Vec<String>> = entries.iter().map(list_values).collect();
            return Ok(output::csv(&LIST_COLUMNS, &rows));
        }
        Format::Env => bail!("{}", output::ENV_ONLY),
        Format::Table => {}
    }
    if entries.is_empty() {
        return Ok("No prices.\n".into());
    }
    let headers = [
        "PROVIDER",
        "MODEL",
        "FROM",
        "UNTIL",
        "INPUT",
        "CACHED",
        "CACHE WRITE",
        "WRITE 1H",
        "OUTPUT",
        "REASONING",
        "TIERS",
        "ALIASES",
    ];
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let v = list_values(e);
            let dash = |x: &str| {
                if x.is_empty() {
                    "-".to_owned()
                } else {
                    x.to_owned()
                }
            };
            vec![
                v[0].clone(),
                v[1].clone(),
                v[3].clone(),
                dash(&v[4]),
                v[6].clone(),
                v[7].clone(),
                v[8].clone(),
                v[9].clone(),
                v[10].clone(),
                v[11].clone(),
                dash(&v[12]),
                dash(&v[2].replace(',', ", ")),
            ]
        })
        .collect();
    let mut align = vec![Align::Left; 4];
    align.extend([Align::Right; 6]);
    align.extend([Align::Left; 2]);
    Ok(format!(
        "{}USD per 1M tokens.\n",
        report::table(&headers, &align, &rows)
    ))
}

fn render_quote(q: &Value, format: Format) -> Result<String> {
    let (rates, billed, cost) = (&q["rates"], &q["billed_tokens"], &q["cost"]);
    let parts = [
        (
            "input",
            s(&billed["input"]),
            s(&rates["input"]),
            &cost["input"],
        ),
        (
            "cached input",
            s(&billed["cached_input"]),
            s(&rates["cached_input"]),
            &cost["cached_input"],
        ),
        (
            "cache write",
            format!(
                "{} + {} (1h)",
                report::group_digits(&s(&billed["cache_write"])),
                report::group_digits(&s(&billed["cache_write_1h"]))
            ),
            format!(
                "{} / {} (1h)",
                s(&rates["cache_write"]),
                s(&rates["cache_write_1h"])
            ),
            &cost["cache_write"],
        ),
        (
            "output",
            s(&billed["output"]),
            s(&rates["output"]),
            &cost["output"],
        ),
        (
            "reasoning",
            s(&billed["reasoning"]),
            s(&rates["reasoning"]),
            &cost["reasoning"],
        ),
    ];
    match format {
        Format::Json => return output::json(q),
        Format::Csv => {
            let mut rows: Vec<Vec<String>> = parts
                .iter()
                .map(|(p, t, r, c)| vec![(*p).to_owned(), t.clone(), r.clone(), s(c)])
                .collect();
            rows.push(vec![
                "total".into(),
                String::new(),
                String::new(),
                s(&cost["total"]),
            ]);
            return Ok(output::csv(
                &["part", "tokens", "usd_per_1m", "cost_usd"],
                &rows,
            ));
        }
        Format::Env => bail!("{}", output::ENV_ONLY),
        Format::Table => {}
    }
    let entry = &q["entry"];
    let tier = match q["tier"]["above_prompt_tokens"].as_u64() {
        Some(t) => format!(
            "prompt above {} tokens",
            report::group_digits(&t.to_string())
        ),
        None => "base prices".into(),
    };
    let mut out = report::table(
        &[],
        &[],
        &[
            vec!["MODEL".into(), s(&q["model"])],
            vec![
                "ENTRY".into(),
                format!(
                    "{} ({}), effective from {}",
                    s(&entry["name"]),
                    s(&entry["provider"]),
                    s(&entry["effective_from"])
                ),
            ],
            vec!["AT".into(), s(&q["at"])],
            vec!["TIER".into(), tier],
        ],
    );
    out.push('\n');
    let mut rows: Vec<Vec<String>> = parts
        .iter()
        .map(|(p, t, r, c)| {
            let tokens = if t.contains('+') {
                t.clone()
            } else {
                report::group_digits(t)
            };
            vec![(*p).to_owned(), tokens, r.clone(), s(c)]
        })
        .collect();
    rows.push(vec![
        "TOTAL".into(),
        String::new(),
        String::new(),
        s(&cost["total"]),
    ]);
    let mut costs: Vec<String> = rows.iter().map(|r| r[3].clone()).collect();
    report::align_decimals(&mut costs);
    for (row, c) in rows.iter_mut().zip(costs) {
        row[3] = c;
    }
    out.push_str(&report::table(
        &["PART", "TOKENS", "USD PER 1M", "COST USD"],
        &[Align::Left, Align::Right, Align::Right, Align::Right],
        &rows,
    ));
    Ok(out)
}

#[derive(Serialize)]
struct WrittenFile {
    provider: String,
    path: String,
    entries: usize,
}

fn import(
    file: &Path,
    out_dir: &Path,
    providers: &[String],
    effective_from: NaiveDate,
    force: bool,
    format: Format,
) -> Result<String> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let providers: Vec<String> = providers
        .iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    let wanted = (!providers.is_empty()).then_some(providers.as_slice());
    let conversion = litellm::convert(&text, wanted)
        .with_context(|| format!("cannot convert {}", file.display()))?;
    for p in &providers {
        if !conversion.providers.contains_key(p)
            && !conversion
                .skipped
                .iter()
                .any(|s| s.provider.as_deref() == Some(p.as_str()))
        {
            bail!(
                "{} has no entries for provider {p:?} (the names are LiteLLM's `litellm_provider` values, e.g. openai, anthropic)",
                file.display()
            );
        }
    }
    if conversion.providers.is_empty() {
        bail!(
            "no entry of {} could be converted, so no price file was written",
            file.display()
        );
    }
    // Refuse before writing anything, so a run never leaves half the files replaced.
    let files: Vec<(String, PathBuf)> = conversion
        .providers
        .keys()
        .map(|p| (p.clone(), out_dir.join(litellm::file_name(p))))
        .collect();
    for (i, (_, path)) in files.iter().enumerate() {
        if files[..i].iter().any(|(_, other)| other == path) {
            bail!(
                "two providers would be written to {}; import them separately with --provider",
                path.display()
            );
        }
        if path.exists() && !force {
            bail!(
                "{} already exists (pass --force to overwrite it, or choose another --out)",
                path.display()
            );
        }
    }
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let source = file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut written = Vec::new();
    for (provider, path) in &files {
        let models = &conversion.providers[provider];
        let toml = litellm::render(provider, models, effective_from, &source);
        std::fs::write(path, toml).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(WrittenFile {
            provider: provider.clone(),
            path: path.display().to_string(),
            entries: models.len(),
        });
    }
    import_report(&conversion, &written, effective_from, format)
}

fn import_report(
    conversion: &litellm::Conversion,
    written: &[WrittenFile],
    effective_from: NaiveDate,
    format: Format,
) -> Result<String> {
    let ignored = litellm::ignored_summary(conversion);
    match format {
        Format::Json => {
            return output::json(&json!({
                "effective_from": effective_from,
                "files": written,
                "not_mapped": conversion.skipped,
                "ignored_fields": ignored.iter().map(|(field, count, examples)| json!({
                    "field": field, "entries": count, "examples": examples,
                })).collect::<Vec<_>>(),
                "other_service_tier_entries": conversion.other_service_tier_entries,
                "other_provider_entries": conversion.other_provider_entries,
            }));
        }
        Format::Csv => {
            let rows: Vec<Vec<String>> = conversion
                .skipped
                .iter()
                .map(|s| {
                    vec![
                        s.model.clone(),
                        s.provider.clone().unwrap_or_default(),
                        s.reason.clone(),
                    ]
                })
                .collect();
            return Ok(output::csv(&["model", "provider", "reason"], &rows));
        }
        Format::Env => bail!("{}", output::ENV_ONLY),
        Format::Table => {}
    }
    let total: usize = written.iter().map(|w| w.entries).sum();
    let mut out = format!(
        "Wrote {total} entries (effective from {effective_from}) to {} file{}:\n",
        written.len(),
        if written.len() == 1 { "" } else { "s" }
    );
    let files: Vec<Vec<String>> = written
        .iter()
        .map(|w| {
            let noun = if w.entries == 1 { "entry" } else { "entries" };
            vec![format!("  {}", w.path), format!("{} {noun}", w.entries)]
        })
        .collect();
    out.push_str(&report::table(&[], &[], &files));
    if !conversion.skipped.is_empty() {
        out.push_str(&format!("\nNot mapped ({}):\n", conversion.skipped.len()));
        let rows: Vec<Vec<String>> = conversion
            .skipped
            .iter()
            .map(|s| {
                vec![
                    format!("  {}", s.model),
                    s.provider.clone().unwrap_or_else(|| "-".into()),
                    s.reason.clone(),
                ]
            })
            .collect();
        out.push_str(&report::table(
            &["  MODEL", "PROVIDER", "REASON"],
            &[],
            &rows,
        ));
    }
    if !ignored.is_empty() {
        out.push_str(
            "\nPrices left out of converted entries (Tollgate charges text tokens only):\n",
        );
        let rows: Vec<Vec<String>> = ignored
            .iter()
            .map(|(field, count, examples)| {
                let more = if *count > examples.len() { ", ..." } else { "" };
                vec![
                    format!("  {field}"),
                    format!("{count} {}", if *count == 1 { "entry" } else { "entries" }),
                    format!("e.g. {}{more}", examples.join(", ")),
                ]
            })
            .collect();
        out.push_str(&report::table(&[], &[], &rows));
    }
    if conversion.other_service_tier_entries > 0 {
        out.push_str(&format!(
            "\nBatch, priority and flex prices of {} entries were left out (the standard tier is imported).\n",
            conversion.other_service_tier_entries
        ));
    }
    Ok(out)
}
