//! The one place this crate calls into `gemm`'s raw-pointer API, behind a bounds-checked,
//! borrow-checked wrapper.

pub use gemm::Parallelism;

/// A strided, row/column view description of a matrix stored in a slice.
#[derive(Clone, Copy, Debug)]
pub struct Mat {
    /// Distance (in elements) between consecutive rows.
    pub rs: usize,
    /// Distance (in elements) between consecutive columns.
    pub cs: usize,
}

impl Mat {
    pub const fn new(rs: usize, cs: usize) -> Self {
        Self { rs, cs }
    }
}

/// Largest element index touched by a `rows × cols` view, or `None` for an empty view.
fn max_index(rows: usize, cols: usize, m: Mat) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return None;
    }
    (rows - 1)
        .checked_mul(m.rs)
        .and_then(|a| (cols - 1).checked_mul(m.cs).and_then(|b| a.checked_add(b)))
}

fn check_view(len: usize, rows: usize, cols: usize, m: Mat, what: &str) {
    if let Some(mx) = max_index(rows, cols, m) {
        assert!(
            mx < len,
            "sgemm: {what} view {rows}x{cols} rs={} cs={} exceeds slice of {len}",
            m.rs,
            m.cs
        );
        // Strides must fit the isize gemm takes.
        assert!(isize::try_from(mx).is_ok(), "sgemm: {what} too large");
    }
}

/// `dst[m×n] (+)= lhs[m×k] · rhs[k×n]` in f32. With `accumulate` the product is added to
/// `dst`, otherwise `dst` is overwritten (and never read).
///
/// Panics if a view does not fit its slice or if the `dst` view maps two elements to one
/// address.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_v: Mat,
    lhs: &[f32],
    lhs_v: Mat,
    rhs: &[f32],
    rhs_v: Mat,
    accumulate: bool,
    par: Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    check_view(dst.len(), m, n, dst_v, "dst");
    // dst elements must be pairwise distinct addresses (gemm may write them from several
    // threads): either row-major-like or column-major-like without overlap.
    let distinct = (dst_v.cs >= 1 && (m == 1 || dst_v.rs >= n * dst_v.cs))
        || (dst_v.rs >= 1 && (n == 1 || dst_v.cs >= m * dst_v.rs));
    assert!(distinct, "sgemm: dst view aliases itself");
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst[i * dst_v.rs + j * dst_v.cs] = 0.0;
                }
            }
        }
        return;
    }
    check_view(lhs.len(), m, k, lhs_v, "lhs");
    check_view(rhs.len(), k, n, rhs_v, "rhs");
    raw_sgemm(m, n, k, dst, dst_v, lhs, lhs_v, rhs, rhs_v, accumulate, par);
}

#[allow(unsafe_code, clippy::too_many_arguments)]
fn raw_sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_v: Mat,
    lhs: &[f32],
    lhs_v: Mat,
    rhs: &[f32],
    rhs_v: Mat,
    accumulate: bool,
    par: Parallelism,
) {
    // SAFETY: `gemm::gemm` reads `lhs[i*lhs_rs + l*lhs_cs]` for i<m, l<k, `rhs[l*rhs_rs +
    // j*rhs_cs]` for l<k, j<n and reads/writes `dst[i*dst_rs + j*dst_cs]` for i<m, j<n.
    // `sgemm` (the only caller) has checked that the largest such index of each view is
    // inside its slice (all strides are non-negative, so the smallest index is 0) and fits
    // in isize, and that distinct (i, j) of `dst` map to distinct elements, so concurrent
    // writes by gemm's worker threads never race. `dst` is a `&mut` borrow, so it cannot
    // alias `lhs` or `rhs`, and all three borrows outlive this call (gemm returns only after
    // its workers have finished). T = f32 is one of gemm's supported types, so it does not
    // panic on the type dispatch.
    unsafe {
        gemm::gemm::<f32>(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_v.cs as isize,
            dst_v.rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_v.cs as isize,
            lhs_v.rs as isize,
            rhs.as_ptr(),
            rhs_v.cs as isize,
            rhs_v.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}
