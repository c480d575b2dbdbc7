//! Upstream providers that do not speak the OpenAI format natively: what their requests,
//! answers, streams and usage reports look like, as pure functions over bytes. The proxy
//! decides what to send where; nothing here does I/O.

pub mod anthropic;
pub mod azure;
pub mod gemini;
mod translate_error;

pub use translate_error::TranslateError;
pub mod bedrock;
mod chat_answer;
mod chat_request;
