//! Anthropic's Messages API (`POST /v1/messages`).
//!
//! - [`usage`]: Anthropic usage reports (a message body, or a stream's events) normalised into
//!   [`crate::pricing::Usage`], for native Anthropic traffic and translated traffic alike.
//! - [`request`]: an OpenAI chat-completions request translated into a Messages request.
//! - [`response`]: a Messages answer (or error) translated back into OpenAI's shape.
//! - [`stream`]: a Messages event stream translated, event by event, into OpenAI chunks.
//! - [`sse`]: reading the `event:` name and `data:` payload of one raw SSE event.

pub mod request;
pub mod response;
pub mod sse;
pub mod stream;
pub mod usage;

pub use super::translate_error::TranslateError;
pub use request::{RequestFacts, chat_to_messages};
pub use response::{error_to_chat, messages_to_chat};
pub use stream::ChunkTranslator;
pub use usage::{StreamUsage, from_message_json};
