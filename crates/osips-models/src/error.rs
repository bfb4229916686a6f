//! The error type of `osips-models`.

use std::path::PathBuf;

/// Everything that can go wrong when building, running, saving or loading a network.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor operation failed inside candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// An input tensor does not have the shape the network documents.
    #[error("{network}: input {input} has shape {got:?}, expected {expected}")]
    Shape {
        network: &'static str,
        input: &'static str,
        got: Vec<usize>,
        expected: String,
    },

    /// A model configuration is inconsistent (e.g. the trunk depth does not match the image size).
    #[error("invalid model config: {0}")]
    Config(String),

    /// Two layers asked for the same tensor name: they would silently share weights.
    #[error("tensor name `{0}` requested twice: two layers would silently share one variable")]
    DuplicateName(String),

    /// A weight file does not hold exactly the tensors the network expects.
    #[error("{path}: {problem}")]
    Checkpoint { path: PathBuf, problem: String },

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A JSON file (config or state) could not be parsed or written.
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// `Result` with [`ModelError`].
pub type Result<T> = std::result::Result<T, ModelError>;

impl ModelError {
    pub(crate) fn checkpoint(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        ModelError::Checkpoint {
            path: path.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.into(),
            source,
        }
    }
}
