//! Wall time by op, for the "time by op" profile of a training iteration
//! (`BENCH_PROFILE=1 cargo xtask bench train`).
//!
//! Off by default: then each op pays one relaxed atomic load. When on, every op of this
//! crate adds its wall time (the ops are parallel inside, so wall time is what the op
//! costs the iteration) to a table keyed by the op and its shape.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

static ENABLED: AtomicBool = AtomicBool::new(false);
static TABLE: Mutex<BTreeMap<String, Entry>> = Mutex::new(BTreeMap::new());

/// The totals of one op at one shape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Entry {
    pub calls: u64,
    pub seconds: f64,
    /// Floating-point operations of all calls (0 where not counted: memory-bound ops).
    pub flops: f64,
}

/// Starts (or stops) recording. Recording does not clear the table: see [`take`].
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether ops are being recorded.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The table recorded so far, keyed by op and shape, and clears it.
pub fn take() -> BTreeMap<String, Entry> {
    let mut t = TABLE.lock().unwrap_or_else(|p| p.into_inner());
    std::mem::take(&mut *t)
}

/// Runs `f`, and when recording, adds its wall time under `key()` with `flops`.
pub(crate) fn timed<R>(key: impl FnOnce() -> String, flops: f64, f: impl FnOnce() -> R) -> R {
    if !enabled() {
        return f();
    }
    let t = Instant::now();
    let r = f();
    record(key(), t, flops);
    r
}

/// Adds one call of `key`, started at `t`, with `flops`, to the table.
fn record(key: String, t: Instant, flops: f64) {
    let dt = t.elapsed().as_secs_f64();
    let mut table = TABLE.lock().unwrap_or_else(|p| p.into_inner());
    let e = table.entry(key).or_default();
    e.calls += 1;
    e.seconds += dt;
    e.flops += flops;
}

/// Records the wall time from its creation to its drop under `key`, when recording.
pub(crate) struct Span(Option<(Instant, String)>);

impl Span {
    pub(crate) fn new(key: impl FnOnce() -> String) -> Self {
        Span(enabled().then(|| (Instant::now(), key())))
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some((t, key)) = self.0.take() {
            record(key, t, 0.0);
        }
    }
}
