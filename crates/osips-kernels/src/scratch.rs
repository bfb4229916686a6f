//! The kernels' buffers, allocated without a memset that is overwritten anyway.
//!
//! * [`with_scratch`]: one reusable buffer per thread for the lowered (im2col) matrices and
//!   gemm products. Every conv pass needs a `C·K² × tile` matrix per task; allocating it
//!   zeroed each time cost a memset (and, for large ones, fresh pages).
//! * [`par_build`]: an output vector written chunk by chunk in parallel, straight into
//!   uninitialised capacity.
//! * [`zeroed`]: an output vector that must start at zero, zero-filled by all threads.

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

/// A vector of `len` floats whose chunks of `chunk` values (`chunk > 0`; the last one
/// shorter) are computed in parallel, chunk `i` from the iterator `values(i)`, at least
/// `min_chunks` chunks per task.
///
/// Unlike `vec![0.0; len]` followed by an overwrite, the memory is not zeroed first: with
/// the step's buffers reused from the heap (`trainer::configure_allocator`), that zeroing
/// was a memset over every output on the calling thread, before the parallel pass; without
/// it the channel ops of a tiny iteration went from 122 to 85 ms. Panics (before the
/// vector is initialised, so soundly) if an iterator yields fewer values than its chunk.
pub(crate) fn par_build<I>(
    len: usize,
    chunk: usize,
    min_chunks: usize,
    values: impl Fn(usize) -> I + Sync,
) -> Vec<f32>
where
    I: Iterator<Item = f32>,
{
    let mut out = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .with_min_len(min_chunks.max(1))
        .for_each(|(i, slots)| {
            let mut written = 0;
            for (slot, v) in slots.iter_mut().zip(values(i)) {
                slot.write(v);
                written += 1;
            }
            assert_eq!(written, slots.len(), "par_build: chunk {i} not filled");
        });
    // SAFETY: the capacity is at least `len`; the chunks above partition
    // `spare_capacity_mut()[..len]` and each was written in full (the assert counts the
    // writes of every chunk; a failed assert panics out of `for_each` before this line, so
    // no uninitialised value is ever exposed).
    #[allow(unsafe_code)]
    unsafe {
        out.set_len(len);
    }
    out
}

/// The indices of chunk `i` of `chunk` values in a slice of `len` (the last one shorter).
pub(crate) fn chunk_range(i: usize, chunk: usize, len: usize) -> std::ops::Range<usize> {
    i * chunk..((i + 1) * chunk).min(len)
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
    let chunk = PAR_ZERO_MIN / 4;
    par_build(len, chunk, 1, |i| {
        std::iter::repeat_n(0.0, chunk_range(i, chunk, len).len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn par_build_fills_every_chunk_including_a_short_last_one() {
        for (len, chunk, min) in [(0, 4, 1), (1, 4, 1), (10, 3, 1), (1000, 7, 5), (64, 64, 2)] {
            let v = par_build(len, chunk, min, |i| {
                chunk_range(i, chunk, len).map(|j| j as f32 * 0.5)
            });
            let want: Vec<f32> = (0..len).map(|j| j as f32 * 0.5).collect();
            assert_eq!(v, want, "len {len} chunk {chunk}");
        }
    }

    #[test]
    #[should_panic(expected = "not filled")]
    fn par_build_refuses_a_chunk_left_short() {
        let _ = par_build(10, 5, 1, |i| {
            (0..if i == 1 { 4 } else { 5 }).map(|j| j as f32)
        });
    }
}
