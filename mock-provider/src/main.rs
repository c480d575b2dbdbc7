//! `mock-provider`: the mock upstream as a standalone server, for benchmarks and manual runs.

use clap::Parser;
use mock_provider::{MockConfig, MockUsage};
use tokio::net::TcpListener;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "OpenAI-compatible mock upstream for Tollgate tests and benchmarks"
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
            chunks: self.chunks,
            chunk_delay_ms: self.chunk_delay_ms,
            content: self.content,
            error_every: self.error_every,
            rate_limit_every: self.rate_limit_every,
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
}
