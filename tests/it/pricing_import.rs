//! `tollctl pricing import-litellm` writes price files that the gateway's own loader accepts,
//! with every figure converted exactly, and reports what it could not convert.

use std::path::PathBuf;
use std::process::Command;

use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use tollgate::pricing::{ModelMode, PriceTable, Usage};

use crate::common::tollctl;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/litellm_prices.json")
}

fn temp_dir() -> PathBuf {
    std::env::temp_dir().join(format!("tollgate-import-{}", uuid::Uuid::new_v4().simple()))
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str_exact(s).unwrap()
}

fn import(args: &[&str]) -> std::process::Output {
    Command::new(tollctl::path())
        .args(["pricing", "import-litellm"])
        .args(args)
        .env_remove("TOLLGATE_ADMIN_TOKEN")
        .output()
        .unwrap()
}

#[test]
fn the_import_loads_with_the_gateways_price_loader_and_is_exact() {
    let out_dir = temp_dir();
    let out = import(&[
        fixture().to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--effective-from",
        "2026-11-01",
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();

    let table = PriceTable::load_dir(&out_dir)
        .unwrap_or_else(|e| panic!("the imported files do not load: {e}"));
    let mut files: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "anthropic.toml",
            "bedrock_converse.toml",
            "dashscope.toml",
            "gemini.toml",
            "openai.toml"
        ]
    );
    assert_eq!(table.len(), 9);
    let day = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    assert!(
        table
            .price_at("gpt-4o", day - chrono::TimeDelta::seconds(1))
            .is_none(),
        "effective_from is kept"
    );

    // 2.5e-06, 1e-05 and 1.25e-06 USD per token are exactly 2.5, 10 and 1.25 per 1M.
    let gpt4o = table.price_at("gpt-4o", day).unwrap();
    assert_eq!(gpt4o.provider, "openai");
    assert_eq!(
        (
            gpt4o.rates.input,
            gpt4o.rates.output,
            gpt4o.rates.cached_input
        ),
        (dec("2.5"), dec("10"), dec("1.25"))
    );
    assert_eq!(
        gpt4o.rates.cache_write,
        dec("2.5"),
        "no cache-write price: Tollgate's default, the input price"
    );
    // 7.5e-08 → 0.075: a cost of one cached token is exact to the nano-dollar and below.
    let mini = table.price_at("gpt-4o-mini", day).unwrap();
    let cost = mini.cost(&Usage {
        input_tokens: 1,
        cached_input_tokens: 1,
        output_tokens: 1,
        ..Usage::default()
    });
    assert_eq!(cost.total, dec("0.000000675"));

    // Cache writes (5 minutes and 1 hour) and reads.
    let sonnet = table.price_at("claude-sonnet-4-5", day).unwrap();
    assert_eq!(
        (
            sonnet.rates.input,
            sonnet.rates.cached_input,
            sonnet.rates.cache_write,
            sonnet.rates.cache_write_1h,
            sonnet.rates.output
        ),
        (dec("3"), dec("0.3"), dec("3.75"), dec("6"), dec("15"))
    );
    assert!(sonnet.tiers.is_empty());

    // Long-context tiers, every field of them, and a cost above the threshold.
    let bedrock = table
        .price_at("anthropic.claude-sonnet-4-5-20250929-v1:0", day)
        .unwrap();
    assert_eq!(bedrock.provider, "bedrock_converse");
    assert_eq!(bedrock.tiers.len(), 1);
    let tier = &bedrock.tiers[0];
    assert_eq!(tier.above_prompt_tokens, 200_000);
    assert_eq!(
        (
            tier.rates.input,
            tier.rates.cached_input,
            tier.rates.cache_write,
            tier.rates.cache_write_1h,
            tier.rates.output
        ),
        (dec("6"), dec("0.6"), dec("7.5"), dec("12"), dec("22.5"))
    );
    let long = Usage {
        input_tokens: 250_000,
        output_tokens: 1_000,
        ..Usage::default()
    };
    assert_eq!(bedrock.cost(&long).total, dec("1.5225")); // 250,000 × 6 + 1,000 × 22.5, per 1M
    let gemini = table.price_at("gemini/gemini-2.5-pro", day).unwrap();
    assert_eq!(gemini.tiers[0].rates.input, dec("2.5"));
    assert_eq!(gemini.tiers[0].rates.cached_input, dec("0.25"));
    assert_eq!(gemini.tiers[0].rates.output, dec("15"));

    // Reasoning when the map has it, the output price otherwise; embeddings cost nothing out.
    assert_eq!(
        table
            .price_at("dashscope/qwen-turbo", day)
            .unwrap()
            .rates
            .reasoning,
        dec("0.5")
    );
    assert_eq!(table.price_at("o3", day).unwrap().rates.reasoning, dec("8"));
    let embedding = table.price_at("text-embedding-3-small", day).unwrap();
    assert_eq!(
        (
            embedding.rates.input,
            embedding.rates.output,
            embedding.mode
        ),
        (dec("0.02"), Decimal::ZERO, ModelMode::Embedding)
    );
    assert_eq!(table.price_at("o3", day).unwrap().mode, ModelMode::Chat);

    // Everything else is reported with a reason, never silently dropped or rounded.
    let not_mapped: Vec<(String, String)> = report["not_mapped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["model"].as_str().unwrap().to_string(),
                s["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let reason = |model: &str| {
        not_mapped
            .iter()
            .find(|(m, _)| m == model)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("{model} is not reported: {not_mapped:?}"))
    };
    assert!(reason("whisper-1").contains("input_cost_per_second"));
    assert!(reason("tts-1").contains("input_cost_per_character"));
    assert!(reason("gpt-image-1").contains("no output_cost_per_token"));
    assert!(reason("dashscope/qwen-flash").contains("tiered_pricing"));
    assert!(reason("databricks/databricks-claude-sonnet-4-1").contains("decimal places"));
    assert!(reason("sample_spec").contains("documentation"));
    assert_eq!(not_mapped.len(), 6);
    let ignored: Vec<&str> = report["ignored_fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert!(
        ignored.contains(&"search_context_cost_per_query"),
        "{ignored:?}"
    );
    assert_eq!(report["files"].as_array().unwrap().len(), 5);

    // Files are never overwritten by accident.
    let again = import(&[
        fixture().to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    std::fs::remove_dir_all(&out_dir).unwrap();
}

#[test]
fn a_provider_filter_writes_only_those_providers_and_the_table_report_lists_the_rest() {
    let out_dir = temp_dir();
    let out = import(&[
        fixture().to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--provider",
        "openai,anthropic",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("Wrote 6 entries"), "{text}");
    assert!(text.contains("Not mapped (3):"), "{text}");
    assert!(
        text.contains("whisper-1") && !text.contains("qwen-flash"),
        "{text}"
    );
    let table = PriceTable::load_dir(&out_dir).unwrap();
    assert_eq!(table.len(), 6);
    assert!(
        table
            .models()
            .all(|m| m.provider == "openai" || m.provider == "anthropic")
    );
    assert_eq!(
        table.models().next().unwrap().effective_from,
        Utc::now().date_naive(),
        "today by default"
    );
    std::fs::remove_dir_all(&out_dir).unwrap();

    let unknown = import(&[
        fixture().to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--provider",
        "nobody",
    ]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no entries for provider \"nobody\"")
    );
    assert!(!out_dir.exists(), "nothing is written on failure");
}
