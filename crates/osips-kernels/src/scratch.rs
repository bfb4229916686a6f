//! One reusable buffer per thread for the lowered (im2col) matrices and gemm products.
//!
//! Every conv pass needs a `C·K² × tile` matrix per task. Allocating it zeroed each time
//! cost a memset (and, for large ones, fresh pages) that was immediately overwritten: the
//! users below write every element before they read it.

use std::cell::RefCell;

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a buffer of `len` floats with arbitrary (finite, initialised) contents.
/// `f` must write every element it reads. Re-entered on the same thread (a nested
/// parallel task stolen while the buffer is lent), it falls back to a fresh buffer.
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
            f(&mut buf[..len])
        }
        Err(_) => f(&mut vec![0f32; len]),
    })
}
