//! Host patterns (being written).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("invalid regular expression in host pattern `{pattern}`")]
    BadRegex { pattern: String },
}
