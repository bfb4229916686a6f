//! Integration tests of osips-models: the name contract, save/load, shapes, VGG16 import.
#![allow(clippy::unwrap_used)]

mod testutil;

mod checkpoint;
mod forward;
mod frozen;
mod names;
mod synthesizer;
mod untrusted;
mod vgg_import;
