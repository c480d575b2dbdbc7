//! Amazon Bedrock's Converse API (`/model/{id}/converse`, `/converse-stream`), reached
//! through the OpenAI chat format: requests translated, answers and event streams translated
//! back, usage (with cache reads and writes) read from Converse's `usage`, every request
//! signed with SigV4.
//!
//! - [`request`]: an OpenAI chat-completions request as a Converse request.
//! - [`response`]: an answer (or an error) back in OpenAI's shape, and its usage.
//! - [`stream`]: a ConverseStream event stream (AWS event-stream frames) as OpenAI chunks.
//! - [`messages`]: Anthropic's Messages format to Anthropic models on Bedrock (InvokeModel).
//! - [`sigv4`]: the signature headers of a request.

mod frames;
pub mod messages;
pub mod request;
pub mod response;
pub mod sigv4;
pub mod stream;

#[cfg(test)]
mod tests;

pub use request::chat_to_converse;
pub use response::{converse_to_chat, error_to_chat, usage_from_body};
pub use stream::BedrockChunks;

/// The upstream path (after the deployment's base URL, e.g.
/// `https://bedrock-runtime.us-east-1.amazonaws.com`) for model id `model`, which is
/// percent-encoded (ids such as `anthropic.claude-sonnet-4-5-20250929-v1:0` have a colon).
pub fn path(model: &str, stream: bool) -> String {
    let mut encoded = String::with_capacity(model.len());
    for b in model.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let action = if stream {
        "converse-stream"
    } else {
        "converse"
    };
    format!("/model/{encoded}/{action}")
}
