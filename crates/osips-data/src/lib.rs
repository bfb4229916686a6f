//! # osips-data
//!
//! Face data for OSIPS: the sources a user has (CASIA-WebFace folders, MS-Celeb-1M TSV,
//! insightface RecordIO packs, unlabeled folders) and synthetic faces with known ground
//! truth, all behind [`FaceSource`]; identity-balanced pair sampling for the paper's
//! reconstruction and transformation processes; decode/crop/resize/flip/normalise with
//! rayon; batches prefetched on a background thread ([`Loader`]).
//!
//! Tensors are NCHW `f32` RGB in `[-1, 1]`. Batch `k` is a pure function of
//! `(seed, k, dataset)`: resuming from a [`SamplerState`] reproduces the following batches
//! exactly, whatever the thread count or prefetch depth.
//!
//! Bad inputs (corrupt images, bad base64, bad record magic, unreadable files, empty
//! identity folders, ...) are counted in the [`SourceReport`] with their location and
//! skipped; a source with nothing usable fails at [`Dataset::open`].
#![cfg_attr(test, allow(clippy::unwrap_used))]
#![warn(missing_docs)]

mod config;
mod dataset;
mod error;
mod imaging;
mod pipeline;
pub mod rng;
pub mod source;
pub mod synthetic;

pub use config::{DataConfig, SourceSpec};
pub use dataset::{Dataset, Part};
pub use error::DataError;
pub use imaging::{
    center_crop_resize, chw_to_image, decode_image, image_to_chw, load_face, load_face_bytes,
    try_chw_to_image, write_chw, LoadedFace,
};
pub use pipeline::{
    draw_face, make_pair_batch, DrawKey, FaceRef, ImageBatch, Loader, PairBatch, ProcessBatch,
    SamplerState, MAX_ATTEMPTS,
};
pub use source::folder::FolderSource;
pub use source::recordio::RecordIoSource;
pub use source::tsv::TsvSource;
pub use source::{BadInput, FaceData, FaceSource, SourceReport};
pub use synthetic::SyntheticSource;
