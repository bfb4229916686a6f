//! Face sources: the [`FaceSource`] trait and its implementations.

pub mod folder;
pub mod recordio;
pub mod tsv;

use std::fs::File;
use std::path::Path;
use std::sync::Mutex;

use image::RgbImage;

use crate::DataError;

/// One face as a source hands it out: encoded bytes (decoded later, in parallel) or an
/// image already in memory (synthetic faces).
#[derive(Clone, Debug)]
pub enum FaceData {
    /// Encoded image file bytes (JPEG, PNG, GIF).
    Encoded(Vec<u8>),
    /// Decoded pixels.
    Image(RgbImage),
}

impl FaceData {
    /// Decodes (if needed) to RGB; `location` names the input in errors.
    pub fn into_image(self, location: &str) -> Result<RgbImage, DataError> {
        match self {
            FaceData::Encoded(bytes) => crate::imaging::decode_image(&bytes, location),
            FaceData::Image(img) => Ok(img),
        }
    }
}

/// A collection of face images, each with an optional identity.
///
/// Implementations keep only a compact index in memory (offsets, names) and read images
/// on demand; `read` is called concurrently from many threads.
pub trait FaceSource: Send + Sync {
    /// Number of images.
    fn len(&self) -> usize;
    /// True when the source has no image.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The identity of image `i`, in `0..n_identities()`; `None` for unlabeled images or
    /// an index out of range.
    fn identity(&self, i: usize) -> Option<u32>;
    /// Reads image `i`.
    fn read(&self, i: usize) -> Result<FaceData, DataError>;
    /// Number of identity classes (an upper bound on `identity(i) + 1`; 0 if unlabeled).
    fn n_identities(&self) -> usize;
    /// A short human-readable name, e.g. `folder /data/casia (10575 identities, 494414 images)`.
    fn describe(&self) -> String;
    /// Where image `i` lives, for error reports: a path, `file:line` or `file@offset`.
    fn location(&self, i: usize) -> String;
    /// The source's own name of identity `id` (folder name, MID, ...), if it has one.
    fn identity_name(&self, _id: u32) -> Option<String> {
        None
    }
    /// Inputs skipped while the source was indexed (non-image files, malformed lines, ...).
    fn skipped_at_open(&self) -> &[BadInput] {
        &[]
    }
    /// `Some(k)` when images are laid out uniformly, image `i` having identity `i / k`
    /// (synthetic faces): lets the dataset skip building an explicit identity index.
    fn images_per_identity(&self) -> Option<usize> {
        None
    }
}

/// One input that was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadInput {
    /// Which source it belongs to ([`FaceSource::describe`]).
    pub source: String,
    /// The file and line or offset.
    pub location: String,
    /// Why it was skipped.
    pub reason: String,
}

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.reason)
    }
}

/// How many entries a [`SourceReport`] keeps verbatim (all are counted).
pub const REPORT_MAX_LISTED: usize = 1000;

#[derive(Debug, Default)]
struct ReportInner {
    entries: Vec<BadInput>,
    total: usize,
    seen: std::collections::HashSet<(u8, usize)>,
}

/// Counts and locations of the inputs skipped as bad, found while indexing the sources
/// and while loading batches. Shared by all loader threads.
#[derive(Debug, Default)]
pub struct SourceReport {
    inner: Mutex<ReportInner>,
}

impl SourceReport {
    pub(crate) fn push(&self, bad: BadInput) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.total += 1;
            if inner.entries.len() < REPORT_MAX_LISTED {
                inner.entries.push(bad);
            }
        }
    }

    /// Records a bad image (`which`: 0 labeled, 1 unlabeled source), once per image.
    pub(crate) fn push_once(&self, which: u8, index: usize, bad: BadInput) {
        if let Ok(mut inner) = self.inner.lock() {
            if inner.seen.insert((which, index)) {
                inner.total += 1;
                if inner.entries.len() < REPORT_MAX_LISTED {
                    inner.entries.push(bad);
                }
            }
        }
    }

    /// Number of inputs skipped so far.
    pub fn n_bad(&self) -> usize {
        self.inner.lock().map(|i| i.total).unwrap_or(0)
    }

    /// The skipped inputs (at most [`REPORT_MAX_LISTED`]), in the order they were found.
    pub fn entries(&self) -> Vec<BadInput> {
        self.inner
            .lock()
            .map(|i| i.entries.clone())
            .unwrap_or_default()
    }

    /// A multi-line text: the count, then up to `max_lines` entries.
    pub fn summary(&self, max_lines: usize) -> String {
        let entries = self.entries();
        let n = self.n_bad();
        let mut s = format!("{n} bad input(s) skipped");
        for e in entries.iter().take(max_lines) {
            s.push_str(&format!("\n  {e}"));
        }
        if n > max_lines.min(entries.len()) {
            s.push_str(&format!(
                "\n  ... and {} more",
                n - max_lines.min(entries.len())
            ));
        }
        s
    }
}

/// Reads exactly `buf.len()` bytes at `offset` without moving a shared cursor.
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let mut done = 0usize;
        while done < buf.len() {
            let n = std::os::windows::fs::FileExt::seek_read(
                file,
                &mut buf[done..],
                offset + done as u64,
            )?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            done += n;
        }
        Ok(())
    }
}

/// True when the file name has an image extension this crate decodes or may meet.
pub(crate) fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| {
            matches!(
                e.to_ascii_lowercase().as_str(),
                "jpg" | "jpeg" | "png" | "gif" | "jpe" | "jfif"
            )
        })
        .unwrap_or(false)
}
