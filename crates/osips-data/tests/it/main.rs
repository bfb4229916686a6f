//! The integration tests of `osips-data`: one binary, helpers in `testutil`.
#![allow(clippy::unwrap_used)]

mod bad_inputs;
mod formats;
mod fuzz;
mod images;
mod sampling;
mod synthetic;
mod testutil;
