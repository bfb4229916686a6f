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

/// An error and its causes on one line, `outer: cause: root`, for a binary's last words.
/// A cause whose text the line already holds is left out: our errors print their source
/// in their own message (useful without anyhow), which `{:#}` would then repeat.
pub fn error_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_line_does_not_repeat_a_cause_already_in_the_message() {
        let io = std::io::Error::other("disk full");
        let err = TrainError::io("/runs/x", io);
        assert_eq!(error_line(&err), "/runs/x: disk full");
        let wrapped = anyhow::Error::new(err).context("writing a checkpoint");
        assert_eq!(
            error_line(wrapped.as_ref()),
            "writing a checkpoint: /runs/x: disk full"
        );
    }
}
