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

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

pub use request::chat_to_converse;
pub use response::{converse_to_chat, error_to_chat, usage_from_body};
pub use stream::BedrockChunks;

/// The upstream path (after the deployment's base URL, e.g.
/// `https://bedrock-runtime.us-east-1.amazonaws.com`) for model id `model`, which is
/// percent-encoded (ids such as `anthropic.claude-sonnet-4-5-20250929-v1:0` have a colon).
pub fn path(model: &str, stream: bool) -> String {
    let action = if stream {
        "converse-stream"
    } else {
        "converse"
    };
    format!("{}/{action}", model_path(model))
}

/// `/model/{id}`, the id percent-encoded.
fn model_path(model: &str) -> String {
    format!("/model/{}", utf8_percent_encode(model, MODEL_ID))
}

/// What a model id keeps unencoded in a path: RFC 3986's unreserved characters.
const MODEL_ID: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
