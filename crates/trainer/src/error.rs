//! The error type of the trainer library.

use std::path::PathBuf;

/// Everything that can stop a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Model(#[from] osips_models::ModelError),
    #[error(transparent)]
    Loss(#[from] osips_losses::LossError),
    #[error(transparent)]
    Data(#[from] osips_data::DataError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("invalid config: {0}")]
    Config(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    /// A loss became NaN or infinite; the last good checkpoint is kept.
    #[error("loss `{name}` is {value} at step {step}: training stopped (the last good checkpoint is kept)")]
    NonFinite { name: String, value: f64, step: u64 },
}

/// `Result` with [`TrainError`].
pub type Result<T> = std::result::Result<T, TrainError>;

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn file(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        TrainError::File {
            path: path.into(),
            message: message.to_string(),
        }
    }
}
