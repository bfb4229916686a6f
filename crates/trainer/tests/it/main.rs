//! Trainer integration tests, on a micro model (16×16 faces, a few thousand parameters) so
//! that they take seconds: the update table phase by phase, exact resume, the run directory,
//! stopping on NaN, the presets in `data/presets`, and the `trainer` binary end to end.

mod binary;
mod common;
mod disk;
mod kill;
mod phases;
mod presets;
mod runs;
mod soak;
