//! The one error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong while opening, reading or sampling face data.
///
/// Errors about one input (a corrupt JPEG, a bad record) are usually *not* returned to the
/// trainer: the loader counts them in the [`crate::SourceReport`] and skips the input. They
/// surface as errors only from the low-level readers and when nothing usable is left.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// An I/O operation failed on `path`.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An image could not be decoded.
    #[error("{location}: cannot decode image: {message}")]
    Decode {
        /// Where the image came from (file, line, offset).
        location: String,
        /// What the decoder said.
        message: String,
    },
    /// A line of an MS-Celeb-1M TSV file is malformed.
    #[error("{location}: bad TSV record: {message}")]
    Tsv {
        /// `file:line` of the record.
        location: String,
        /// What is wrong with it.
        message: String,
    },
    /// A RecordIO record or index entry is malformed.
    #[error("{location}: bad RecordIO record: {message}")]
    RecordIo {
        /// `file@offset` of the record, or `file:line` of the index entry.
        location: String,
        /// What is wrong with it.
        message: String,
    },
    /// A source specification or data configuration is invalid.
    #[error("invalid data configuration: {0}")]
    Config(String),
    /// A source (or the combination of sources) has nothing the trainer could use.
    #[error("{source_name}: nothing usable: {message}")]
    NothingUsable {
        /// The source, as [`crate::FaceSource::describe`] names it.
        source_name: String,
        /// Why, including how many inputs were skipped as bad.
        message: String,
    },
    /// An index is out of range for the source.
    #[error("{source_name}: index {index} out of range (len {len})")]
    OutOfRange {
        /// The source, as [`crate::FaceSource::describe`] names it.
        source_name: String,
        /// The requested index.
        index: usize,
        /// The length of the source.
        len: usize,
    },
    /// A buffer has the wrong length for the requested image shape.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// The loader's background thread stopped (it panicked or was shut down).
    #[error("the data loader's background thread stopped: {0}")]
    LoaderStopped(String),
}

impl DataError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> DataError {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}
