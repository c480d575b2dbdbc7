//! Google's Gemini API (`models/{model}:generateContent`, `:streamGenerateContent?alt=sse`),
//! reached through the OpenAI chat format: requests, answers and streams translated both ways,
//! usage read from `usageMetadata`.
//!
//! - [`request`]: an OpenAI chat-completions request as a `generateContent` request.
//! - [`response`]: an answer (or an error) back in OpenAI's shape, and its usage.
//! - [`stream`]: a Gemini event stream as OpenAI chunks.

pub mod request;
pub mod response;
pub mod stream;

#[cfg(test)]
mod tests;

pub use request::chat_to_gemini;
pub use response::{error_to_chat, gemini_to_chat, usage_from_body};
pub use stream::GeminiChunks;

/// The upstream path (after the deployment's base URL, e.g.
/// `https://generativelanguage.googleapis.com/v1beta`) for `model`.
pub fn path(model: &str, stream: bool) -> String {
    if stream {
        format!("/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("/models/{model}:generateContent")
    }
}
