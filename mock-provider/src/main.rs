//! `mock-provider`: the mock upstream as a standalone server, for benchmarks and manual runs.

use std::collections::HashMap;

use clap::Parser;
use mock_provider::{MockConfig, MockUsage};
use tokio::net::TcpListener;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "OpenAI-compatible and Anthropic mock upstream for Tollgate tests and benchmarks"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "MOCK_LISTEN", default_value = "127.0.0.1:18080")]
    listen: String,
    /// Wait before sending response headers.
    #[arg(long, env = "MOCK_DELAY_MS", default_value_t = 0)]
    delay_ms: u64,
    #[arg(long, env = "MOCK_PROMPT_TOKENS", default_value_t = 10)]
    prompt_tokens: u64,
    #[arg(long, env = "MOCK_COMPLETION_TOKENS", default_value_t = 20)]
    completion_tokens: u64,
    #[arg(long, env = "MOCK_CACHED_TOKENS", default_value_t = 0)]
    cached_tokens: u64,
    #[arg(long, env = "MOCK_REASONING_TOKENS", default_value_t = 0)]
    reasoning_tokens: u64,
    /// Content chunks per streamed answer.
    #[arg(long, env = "MOCK_CHUNKS", default_value_t = 3)]
    chunks: usize,
    /// Pause between stream events.
    #[arg(long, env = "MOCK_CHUNK_DELAY_MS", default_value_t = 0)]
    chunk_delay_ms: u64,
    /// The assistant message.
    #[arg(long, env = "MOCK_CONTENT", default_value = "pong")]
    content: String,
    /// Answer every N-th chat request with 500 (0 = never).
    #[arg(long, env = "MOCK_ERROR_EVERY", default_value_t = 0)]
    error_every: u64,
    /// Answer every N-th chat request with 429 (0 = never).
    #[arg(long, env = "MOCK_RATE_LIMIT_EVERY", default_value_t = 0)]
    rate_limit_every: u64,
    /// JSON written verbatim as every chat and messages answer's `usage` (empty = the
    /// counts above), e.g. `{"prompt_tokens":18446744073709551616}`.
    #[arg(long, env = "MOCK_RAW_USAGE", default_value = "", value_parser = parse_raw_usage)]
    raw_usage: RawUsage,
    /// Scripted statuses per API key: `KEY=429,529;OTHER=500` (empty = none).
    #[arg(long, env = "MOCK_KEY_FAILURES", default_value = "", value_parser = parse_key_failures)]
    key_failures: KeyFailures,
}

#[derive(Clone, Debug, Default)]
struct RawUsage(Option<String>);

fn parse_raw_usage(text: &str) -> Result<RawUsage, String> {
    if text.trim().is_empty() {
        return Ok(RawUsage(None));
    }
    serde_json::from_str::<Box<serde_json::value::RawValue>>(text)
        .map(|raw| RawUsage(Some(raw.get().to_owned())))
        .map_err(|e| format!("not JSON: {e}"))
}

#[derive(Clone, Debug, Default)]
struct KeyFailures(HashMap<String, Vec<u16>>);

fn parse_key_failures(text: &str) -> Result<KeyFailures, String> {
    let mut scripts = HashMap::new();
    for entry in text.split(';').filter(|e| !e.trim().is_empty()) {
        let (key, statuses) = entry
            .split_once('=')
            .ok_or_else(|| format!("`{entry}` is not KEY=STATUS,..."))?;
        let statuses = statuses
            .split(',')
            .map(|s| {
                s.trim()
                    .parse::<u16>()
                    .map_err(|_| format!("`{s}` is not a status"))
            })
            .collect::<Result<Vec<u16>, String>>()?;
        scripts.insert(key.trim().to_owned(), statuses);
    }
    Ok(KeyFailures(scripts))
}

impl Args {
    fn config(self) -> MockConfig {
        MockConfig {
            delay_ms: self.delay_ms,
            usage: MockUsage {
                prompt_tokens: self.prompt_tokens,
                completion_tokens: self.completion_tokens,
                cached_tokens: self.cached_tokens,
                reasoning_tokens: self.reasoning_tokens,
            },
            raw_usage: self.raw_usage.0,
            chunks: self.chunks,
            chunk_delay_ms: self.chunk_delay_ms,
            content: self.content,
            error_every: self.error_every,
            rate_limit_every: self.rate_limit_every,
            key_failures: self.key_failures.0,
            // The binary's Bedrock mode accepts unsigned requests.
            aws_credentials: None,
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(&args.listen).await?;
    eprintln!("mock-provider listening on {}", listener.local_addr()?);
    mock_provider::serve(listener, args.config()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_defaults_match_library_defaults() {
        let args = Args::try_parse_from(["mock-provider"]).unwrap_or_else(|e| e.exit());
        assert_eq!(args.config(), MockConfig::default());
    }

    #[test]
    fn key_failures_flag() {
        let args = Args::try_parse_from(["mock-provider", "--key-failures", "k1=429,529; k2=500"])
            .unwrap_or_else(|e| e.exit());
        let config = args.config();
        assert_eq!(config.key_failures["k1"], [429, 529]);
        assert_eq!(config.key_failures["k2"], [500]);
        assert!(Args::try_parse_from(["mock-provider", "--key-failures", "k1"]).is_err());
        assert!(Args::try_parse_from(["mock-provider", "--key-failures", "k1=x"]).is_err());
    }

    #[test]
    fn raw_usage_flag() {
        let raw = r#"{"prompt_tokens":18446744073709551616}"#;
        let args = Args::try_parse_from(["mock-provider", "--raw-usage", raw])
            .unwrap_or_else(|e| e.exit());
        assert_eq!(args.config().raw_usage.as_deref(), Some(raw));
        assert!(Args::try_parse_from(["mock-provider", "--raw-usage", "{"]).is_err());
    }
}
