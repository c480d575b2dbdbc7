//! The client-facing operations and what each provider kind can do with them.

use crate::config::ProviderKind;
use crate::pricing::ModelMode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `POST /v1/chat/completions` (OpenAI format).
    Chat,
    /// `POST /v1/completions` (OpenAI legacy text completions).
    Completions,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `POST /v1/messages` (Anthropic format).
    Messages,
    /// `POST /v1/responses` (OpenAI's Responses API).
    Responses,
}

impl Operation {
    pub const ALL: [Operation; 5] = [
        Operation::Chat,
        Operation::Completions,
        Operation::Embeddings,
        Operation::Messages,
        Operation::Responses,
    ];

    pub fn endpoint(self) -> &'static str {
        match self {
            Operation::Chat => "/v1/chat/completions",
            Operation::Completions => "/v1/completions",
            Operation::Embeddings => "/v1/embeddings",
            Operation::Messages => "/v1/messages",
            Operation::Responses => "/v1/responses",
        }
    }

    /// The upstream path (after the deployment's base URL), or `None` when this kind of
    /// provider cannot serve the operation.
    pub fn upstream_path(self, kind: ProviderKind) -> Option<&'static str> {
        match (kind, self) {
            // Azure's paths are these under its prefix: `Upstream::azure_path`.
            (ProviderKind::OpenAi | ProviderKind::Azure, Operation::Chat) => {
                Some("/chat/completions")
            }
            (ProviderKind::OpenAi | ProviderKind::Azure, Operation::Completions) => {
                Some("/completions")
            }
            (ProviderKind::OpenAi | ProviderKind::Azure, Operation::Embeddings) => {
                Some("/embeddings")
            }
            (ProviderKind::OpenAi | ProviderKind::Azure, Operation::Responses) => {
                Some("/responses")
            }
            // The model and streaming are in Gemini's and Bedrock's paths:
            // `providers::gemini::path`, `providers::bedrock::path`.
            (ProviderKind::Gemini, Operation::Chat) => Some("/models"),
            (ProviderKind::Bedrock, Operation::Chat | Operation::Messages) => Some("/model"),
            (
                ProviderKind::Gemini,
                Operation::Completions
                | Operation::Embeddings
                | Operation::Messages
                | Operation::Responses,
            ) => None,
            (
                ProviderKind::Bedrock,
                Operation::Completions | Operation::Embeddings | Operation::Responses,
            ) => None,
            (ProviderKind::Anthropic, Operation::Chat | Operation::Messages) => Some("/messages"),
            // The Responses API is not translated to Anthropic's Messages: its stored state,
            // built-in tools and item types have no counterpart there (docs/providers.md).
            (ProviderKind::OpenAi | ProviderKind::Azure, Operation::Messages)
            | (
                ProviderKind::Anthropic,
                Operation::Completions | Operation::Embeddings | Operation::Responses,
            ) => None,
        }
    }

    /// How the gateway talks to the upstream for this operation.
    pub fn dialect(self, kind: ProviderKind) -> Dialect {
        match (kind, self) {
            (ProviderKind::Anthropic, Operation::Chat) => Dialect::ChatViaAnthropic,
            (ProviderKind::Anthropic, _) => Dialect::Anthropic,
            (ProviderKind::OpenAi | ProviderKind::Azure, Operation::Responses) => {
                Dialect::Responses
            }
            (ProviderKind::Gemini, _) => Dialect::ChatViaGemini,
            (ProviderKind::Bedrock, Operation::Messages) => Dialect::AnthropicViaBedrock,
            (ProviderKind::Bedrock, _) => Dialect::ChatViaBedrock,
            (ProviderKind::OpenAi | ProviderKind::Azure, _) => Dialect::OpenAi,
        }
    }

    /// The kind of model this endpoint serves (from the model's price entry).
    pub fn serves(self) -> ModelMode {
        match self {
            Operation::Embeddings => ModelMode::Embedding,
            Operation::Chat
            | Operation::Completions
            | Operation::Messages
            | Operation::Responses => ModelMode::Chat,
        }
    }

    /// Whether clients answer in Anthropic's error shape.
    pub fn anthropic_errors(self) -> bool {
        self == Operation::Messages
    }
}

/// Request and response formats on the upstream side of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI format both ways; bodies pass through.
    OpenAi,
    /// Anthropic format both ways; bodies pass through.
    Anthropic,
    /// The client speaks OpenAI chat, the upstream Anthropic Messages: translated both ways.
    ChatViaAnthropic,
    /// The client speaks OpenAI chat, the upstream Gemini's `generateContent`: translated
    /// both ways (`providers::gemini`).
    ChatViaGemini,
    /// The client speaks OpenAI chat, the upstream Bedrock's Converse: translated both ways
    /// (`providers::bedrock`), requests signed with SigV4.
    ChatViaBedrock,
    /// Anthropic's Messages format to an Anthropic model on Bedrock (InvokeModel): the body
    /// and the answer are Anthropic's, the stream is unwrapped from event-stream frames.
    AnthropicViaBedrock,
    /// OpenAI's Responses API both ways; bodies pass through, usage is read in its shape
    /// (`input_tokens`, `output_tokens`) and streams are typed events (`responses.rs`).
    Responses,
}
