//! Why a body could not be translated, for every provider that translates OpenAI chat.

/// A request (or answer) that cannot be expressed in the other format. For a client's request
/// it becomes a 400 whose message names the offending field; for an upstream answer it means
/// the upstream sent something that is not an answer of its API (a 502).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    #[error("the body is not a JSON object: {0}")]
    Json(String),
    #[error("`{field}` {reason}")]
    Field { field: String, reason: String },
}

impl TranslateError {
    pub(crate) fn field(field: impl Into<String>, reason: impl Into<String>) -> TranslateError {
        TranslateError::Field {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The path of the offending field (`messages[2].content[0].image_url.url`), for an OpenAI
    /// error's `param`; `None` when the body as a whole is not JSON.
    pub fn param(&self) -> Option<&str> {
        match self {
            TranslateError::Json(_) => None,
            TranslateError::Field { field, .. } => Some(field),
        }
    }
}
