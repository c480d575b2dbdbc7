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
}

impl Operation {
    pub const ALL: [Operation; 4] = [
        Operation::Chat,
        Operation::Completions,
        Operation::Embeddings,
        Operation::Messages,
    ];

    pub fn endpoint(self) -> &'static str {
        match self {
            Operation::Chat => "/v1/chat/completions",
            Operation::Completions => "/v1/completions",
            Operation::Embeddings => "/v1/embeddings",
            Operation::Messages => "/v1/messages",
        }
    }

    /// The upstream path (after the deployment's base URL), or `None` when this kind of
    /// provider cannot serve the operation.
    pub fn upstream_path(self, kind: ProviderKind) -> Option<&'static str> {
        match (kind, self) {
            (ProviderKind::OpenAi, Operation::Chat) => Some("/chat/completions"),
            (ProviderKind::OpenAi, Operation::Completions) => Some("/completions"),
            (ProviderKind::OpenAi, Operation::Embeddings) => Some("/embeddings"),
            (ProviderKind::Anthropic, Operation::Chat | Operation::Messages) => Some("/messages"),
            (ProviderKind::OpenAi, Operation::Messages)
            | (ProviderKind::Anthropic, Operation::Completions | Operation::Embeddings) => None,
        }
    }

    /// How the gateway talks to the upstream for this operation.
    pub fn dialect(self, kind: ProviderKind) -> Dialect {
        match (kind, self) {
            (ProviderKind::Anthropic, Operation::Chat) => Dialect::ChatViaAnthropic,
            (ProviderKind::Anthropic, _) => Dialect::Anthropic,
            (ProviderKind::OpenAi, _) => Dialect::OpenAi,
        }
    }

    /// The kind of model this endpoint serves (from the model's price entry).
    pub fn serves(self) -> ModelMode {
        match self {
            Operation::Embeddings => ModelMode::Embedding,
            Operation::Chat | Operation::Completions | Operation::Messages => ModelMode::Chat,
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
}
