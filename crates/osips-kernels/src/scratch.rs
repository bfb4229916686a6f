//! One reusable buffer per thread for the lowered (im2col) matrices and gemm products.
//!
//! Every conv pass needs a `C·K² × tile` matrix per task. Allocating it zeroed each time
//! cost a memset (and, for large ones, fresh pages) that was immediately overwritten: the
//! users below write every element before they read it.

use std::cell::RefCell;

use rayon::prelude::*;

/// Below this many floats, [`zeroed`] is a plain `vec![0.0; len]`.
const PAR_ZERO_MIN: usize = 64 * 1024;

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

/// `vec![0.0; len]`, zero-filled by all the pool's threads for large `len`.
///
/// The step's large buffers come back from the heap (`trainer::configure_allocator`), so
/// `calloc` zeroes them with a memset on the calling thread while the other core waits;
/// an output buffer of a conv or a pooling pass is 1–4 MB here.
pub(crate) fn zeroed(len: usize) -> Vec<f32> {
    if len < PAR_ZERO_MIN {
        return vec![0.0; len];
    }
    let mut v = Vec::with_capacity(len);
    v.spare_capacity_mut()[..len]
        .par_chunks_mut(PAR_ZERO_MIN / 4)
        .for_each(|c| c.fill(std::mem::MaybeUninit::new(0.0)));
    // SAFETY: the capacity is at least `len`, and the chunks above, which partition
    // `spare_capacity_mut()[..len]`, were each filled in full (`fill` writes every slot;
    // a panic would leave `for_each` before this line).
    #[allow(unsafe_code)]
    unsafe {
        v.set_len(len);
    }
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn zeroed_is_all_zeros_at_every_size() {
        for len in [
            0,
            1,
            super::PAR_ZERO_MIN - 1,
            super::PAR_ZERO_MIN,
            3 * super::PAR_ZERO_MIN + 5,
        ] {
            let v = super::zeroed(len);
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x == 0.0));
        }
    }
}
