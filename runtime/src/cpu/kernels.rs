//! Runtime kernels and math helpers called by compiled code, through a small C ABI.
//!
//! Solve, inverse, log-determinant, expm and matpow (and their Fréchet derivatives) and singular
//! values reuse
//! [`crate::linalg`] (the interpreter's kernels), and the sort adjoints the interpreter's
//! [`descending_order`]; matmul uses faer (sequential). Every matrix is a dense row-major `f64` array; sizes are `i64`. Kernels return an `i32`
//! status: [`OK`] or one of the error codes below, which the compiled function returns at once.
//! The compiled code itself returns [`BAD_INDEX`] when an index of `select` or `scatter` fails its
//! check (see [`super`]).
//!
//! Kernels that run vector code return with the upper halves of the YMM registers cleared
//! (`vzeroupper`; see [`clear_upper_state`]).
//!
//! | symbol | arguments | computes |
//! |---|---|---|
//! | `optc_kernel_matmul` | `a, b, c, m, k, n, ta, tb` | `c[m×n] = op(a) · op(b)`; `op(a)` is `a[m×k]`, or `a[k×m]ᵀ` when `ta ≠ 0` (same for `b`) |
//! | `optc_kernel_logdet` | `a, out, n` | `out[0] = log det a`; [`LOGDET_DOMAIN`] when a leading principal minor of `a` is ≤ 0 (LU without pivoting) |
//! | `optc_kernel_solve` | `a, b, out, n, m` | `out[n×m] = a⁻¹ b`; [`SINGULAR`] |
//! | `optc_kernel_inv` | `a, out, n` | `out = a⁻¹`; [`SINGULAR`] |
//! | `optc_kernel_logdet_inv` | `a, logdet, inv, n` | both of the above from one LU (a `logdet` and an `inv` of the same matrix); [`LOGDET_DOMAIN`], [`SINGULAR`] |
//! | `optc_kernel_expm` | `a, out, n` | `out = exp(a)` (Padé degree 3–13, scaling and squaring) |
//! | `optc_kernel_sort_desc` | `x, out, n` | `out = x` sorted descending |
//! | `optc_kernel_topk` | `x, out, n, k` | `out[k]` = the `k` largest of `x`, descending |
//! | `optc_kernel_nuclear_norm` | `a, out, m, n` | `out[0]` = sum of singular values; [`SVD_FAILED`] |
//! | `optc_kernel_expm_frechet` | `a, e, out, n` | `out` = d/dt exp(a + t e) at 0 |
//! | `optc_kernel_expm_frechet2` | `a, e, f, out, n` | `out` = ∂²/∂s∂t exp(a + s e + t f) at 0 |
//! | `optc_kernel_matpow` | `a, out, n, k` | `out = a^k` (`k ≥ 0`, repeated squaring) |
//! | `optc_kernel_matpow_frechet` | `a, e, out, n, k` | `out` = d/dt (a + t e)^k at 0 |
//! | `optc_kernel_matpow_frechet2` | `a, e, f, out, n, k` | `out` = ∂²/∂s∂t (a + s e + t f)^k at 0 |
//! | `optc_kernel_sort_scatter` | `x, g, out, n, k` | `out[n]` = zeros with `g[i]` at the position of the `i`-th largest of `x` (`i < min(k, n)`) |
//! | `optc_kernel_sort_gather` | `x, h, out, n, k` | `out[k]` = `h` at the positions of the `k` largest of `x`, descending; [`BAD_TOPK`] when `k > n` |
//!
//! Scalar helpers `optc_exp`, `optc_log`, `optc_tanh`, `optc_sigmoid`, `optc_softplus` take and
//! return one `f64`; `optc_pow(x, y)` two.

use crate::interp::descending_order;
use crate::linalg::{self, LinalgError, Pivoting};
use faer::{Accum, MatMut, MatRef, Par};
use ndarray::{Array2, ArrayView1, ArrayView2};
use optc_compiler::ir::UnaryOp;
use std::cell::RefCell;
use std::slice;

pub const OK: i32 = 0;
pub const LOGDET_DOMAIN: i32 = 1;
pub const SVD_FAILED: i32 = 2;
pub const BAD_TOPK: i32 = 3;
pub const SINGULAR: i32 = 4;
pub const BAD_INDEX: i32 = 5;

/// A row-major `rows × cols` view of `ptr` (empty when either size is 0).
///
/// # Safety
/// `ptr` must point to `rows * cols` readable f64 when both are nonzero.
unsafe fn view<'a>(ptr: *const f64, rows: i64, cols: i64) -> MatRef<'a, f64> {
    let (r, c) = (rows as usize, cols as usize);
    let data: &[f64] = if r * c == 0 {
        &[]
    } else {
        slice::from_raw_parts(ptr, r * c)
    };
    MatRef::from_row_major_slice(data, r, c)
}

/// # Safety
/// `ptr` must point to `rows * cols` writable f64 when both are nonzero.
unsafe fn view_mut<'a>(ptr: *mut f64, rows: i64, cols: i64) -> MatMut<'a, f64> {
    let (r, c) = (rows as usize, cols as usize);
    let data: &mut [f64] = if r * c == 0 {
        &mut []
    } else {
        slice::from_raw_parts_mut(ptr, r * c)
    };
    MatMut::from_row_major_slice_mut(data, r, c)
}

/// # Safety
/// See the module table; `a`, `b`, `c` must not overlap `c`.
pub unsafe extern "C" fn optc_kernel_matmul(
    a: *const f64,
    b: *const f64,
    c: *mut f64,
    m: i64,
    k: i64,
    n: i64,
    ta: i32,
    tb: i32,
) -> i32 {
    let lhs = if ta != 0 {
        view(a, k, m).transpose()
    } else {
        view(a, m, k)
    };
    let rhs = if tb != 0 {
        view(b, n, k).transpose()
    } else {
        view(b, k, n)
    };
    let dst = view_mut(c, m, n);
    faer::linalg::matmul::matmul(dst, Accum::Replace, lhs, rhs, 1.0, Par::Seq);
    clear_upper_state();
    OK
}

thread_local! {
    /// The LU factorization whose allocations every LU kernel call on this thread reuses.
    static LU: RefCell<linalg::Lu> = const { RefCell::new(linalg::Lu::new()) };
    /// The workspace every `expm` kernel call on this thread reuses.
    static EXPM: RefCell<linalg::ExpmWork> = const { RefCell::new(linalg::ExpmWork::new()) };
}

/// Runs `use_lu` on the LU factors of the row-major `n × n` matrix at `a`.
///
/// # Safety
/// `a` must point to `n * n` readable f64 when `n > 0`.
unsafe fn with_lu(
    a: *const f64,
    n: i64,
    pivoting: Pivoting,
    use_lu: impl FnOnce(&linalg::Lu) -> i32,
) -> i32 {
    let status = LU.with_borrow_mut(|lu| {
        lu.refactor(slice_ref(a, n * n), n as usize, pivoting);
        use_lu(lu)
    });
    clear_upper_state();
    status
}

/// Writes log det A from its unpivoted LU to `out`; the status says whether A is in the domain.
fn write_logdet(lu: &linalg::Lu, out: &mut f64) -> i32 {
    match lu.logdet() {
        Ok(value) => {
            *out = value;
            OK
        }
        Err(_) => LOGDET_DOMAIN,
    }
}

/// The status of a kernel result.
fn status(result: Result<(), LinalgError>) -> i32 {
    match result {
        Ok(()) => OK,
        Err(LinalgError::Singular) => SINGULAR,
        Err(LinalgError::SvdNoConvergence) => SVD_FAILED,
    }
}

/// # Safety
/// See the module table.
pub unsafe extern "C" fn optc_kernel_logdet(a: *const f64, out: *mut f64, n: i64) -> i32 {
    with_lu(a, n, Pivoting::None, |lu| write_logdet(lu, &mut *out))
}

/// # Safety
/// See the module table.
pub unsafe extern "C" fn optc_kernel_logdet_inv(
    a: *const f64,
    logdet: *mut f64,
    inv: *mut f64,
    n: i64,
) -> i32 {
    with_lu(a, n, Pivoting::None, |lu| {
        match write_logdet(lu, &mut *logdet) {
            OK => status(lu.inverse_into(slice_mut(inv, n * n))),
            failed => failed,
        }
    })
}

/// Clears the upper halves of the YMM registers (`vzeroupper`) on a CPU with AVX. Every kernel
/// that runs vector code calls it before returning: faer's matrix-product microkernels return
/// with them dirty, and the compiled code mixes VEX and legacy SSE encodings, every legacy
/// instruction of which then pays for merging the dirty state (a whole DAGMA solve ran 3× slower
/// on an AMD EPYC host).
fn clear_upper_state() {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx")]
        unsafe fn vzeroupper() {
            std::arch::x86_64::_mm256_zeroupper();
        }
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU has AVX.
            unsafe { vzeroupper() };
        }
    }
}

/// A row-major `rows × cols` ndarray view of `ptr`.
///
/// # Safety
/// `ptr` must be non-null, aligned, and point to `rows * cols` readable f64.
unsafe fn array<'a>(ptr: *const f64, rows: i64, cols: i64) -> ArrayView2<'a, f64> {
    ArrayView2::from_shape_ptr((rows as usize, cols as usize), ptr)
}

/// Writes a result matrix (or its failure) to `out`.
///
/// # Safety
/// `out` must point to as many writable f64 as `result` has elements.
unsafe fn write(out: *mut f64, result: Result<Array2<f64>, LinalgError>) -> i32 {
    clear_upper_state();
    match result {
        Ok(m) => {
            for (k, &x) in m.iter().enumerate() {
                *out.add(k) = x;
            }
            OK
        }
        Err(LinalgError::Singular) => SINGULAR,
        Err(LinalgError::SvdNoConvergence) => SVD_FAILED,
    }
}

/// # Safety
/// See the module table.
pub unsafe extern "C" fn optc_kernel_solve(
    a: *const f64,
    b: *const f64,
    out: *mut f64,
    n: i64,
    m: i64,
) -> i32 {
    let x = slice_mut(out, n * m);
    x.copy_from_slice(slice_ref(b, n * m));
    with_lu(a, n, Pivoting::Partial, |lu| {
        status(lu.solve_in_place(x, m as usize))
    })
}

/// # Safety
/// See the module table.
pub unsafe extern "C" fn optc_kernel_inv(a: *const f64, out: *mut f64, n: i64) -> i32 {
    with_lu(a, n, Pivoting::Partial, |lu| {
        status(lu.inverse_into(slice_mut(out, n * n)))
    })
}

/// # Safety
/// See the module table.
pub unsafe extern "C" fn optc_kernel_expm(a: *const f64, out: *mut f64, n: i64) -> i32 {
    let n_usize = n as usize;
    let (a, out) = (slice_ref(a, n * n), slice_mut(out, n * n));
    EXPM.with(|work| linalg::expm_into(a, n_usize, out, &mut work.borrow_mut()));
    clear_upper_state();
    OK
}

/// # Safety
/// See the module table.
pub unsafe extern "C" fn optc_kernel_sort_desc(x: *const f64, out: *mut f64, n: i64) -> i32 {
    let dst = slice_mut(out, n);
    dst.copy_from_slice(slice_ref(x, n));
    dst.sort_by(|p, q| q.total_cmp(p));
    OK
}

/// # Safety
/// See the module table.
pub unsafe extern "C" fn optc_kernel_topk(x: *const f64, out: *mut f64, n: i64, k: i64) -> i32 {
    if k > n {
        return BAD_TOPK;
    }
    let mut sorted = slice_ref(x, n).to_vec();
    sorted.sort_by(|p, q| q.total_cmp(p));
    slice_mut(out, k).copy_from_slice(&sorted[..k as usize]);
    OK
}

/// # Safety
/// See the module table.
pub unsafe extern "C" fn optc_kernel_nuclear_norm(
    a: *const f64,
    out: *mut f64,
    m: i64,
    n: i64,
) -> i32 {
    let singular_values = linalg::singular_values(array(a, m, n));
    clear_upper_state();
    match singular_values {
        Ok(s) => {
            *out = s.iter().sum();
            OK
        }
        Err(_) => SVD_FAILED,
    }
}

/// # Safety
/// See the module table.
pub unsafe extern "C" fn optc_kernel_expm_frechet(
    a: *const f64,
    e: *const f64,
    out: *mut f64,
    n: i64,
) -> i32 {
    write(
        out,
        Ok(linalg::expm_frechet(array(a, n, n), array(e, n, n))),
    )
}

/// # Safety
/// See the module table.
pub unsafe extern "C" fn optc_kernel_expm_frechet2(
    a: *const f64,
    e: *const f64,
    f: *const f64,
    out: *mut f64,
    n: i64,
) -> i32 {
    let (a, e, f) = (array(a, n, n), array(e, n, n), array(f, n, n));
    write(out, Ok(linalg::expm_frechet2(a, e, f)))
}

/// # Safety
/// See the module table (`k ≥ 0`).
pub unsafe extern "C" fn optc_kernel_matpow(a: *const f64, out: *mut f64, n: i64, k: i64) -> i32 {
    write(out, Ok(linalg::matpow(array(a, n, n), k as usize)))
}

/// # Safety
/// See the module table (`k ≥ 0`).
pub unsafe extern "C" fn optc_kernel_matpow_frechet(
    a: *const f64,
    e: *const f64,
    out: *mut f64,
    n: i64,
    k: i64,
) -> i32 {
    let (a, e) = (array(a, n, n), array(e, n, n));
    write(out, Ok(linalg::matpow_frechet(a, e, k as usize)))
}

/// # Safety
/// See the module table (`k ≥ 0`).
pub unsafe extern "C" fn optc_kernel_matpow_frechet2(
    a: *const f64,
    e: *const f64,
    f: *const f64,
    out: *mut f64,
    n: i64,
    k: i64,
) -> i32 {
    let (a, e, f) = (array(a, n, n), array(e, n, n), array(f, n, n));
    write(out, Ok(linalg::matpow_frechet2(a, e, f, k as usize)))
}

/// # Safety
/// See the module table.
pub unsafe extern "C" fn optc_kernel_sort_scatter(
    x: *const f64,
    g: *const f64,
    out: *mut f64,
    n: i64,
    k: i64,
) -> i32 {
    let dst = slice_mut(out, n);
    dst.fill(0.0);
    let order = descending_order(ArrayView1::from(slice_ref(x, n)));
    for (&position, &value) in order.iter().zip(slice_ref(g, k)) {
        dst[position] = value;
    }
    OK
}

/// # Safety
/// See the module table.
pub unsafe extern "C" fn optc_kernel_sort_gather(
    x: *const f64,
    h: *const f64,
    out: *mut f64,
    n: i64,
    k: i64,
) -> i32 {
    if k > n {
        return BAD_TOPK;
    }
    let order = descending_order(ArrayView1::from(slice_ref(x, n)));
    let h = slice_ref(h, n);
    for (o, &position) in slice_mut(out, k).iter_mut().zip(&order) {
        *o = h[position];
    }
    OK
}

/// # Safety
/// `ptr` must point to `n` readable f64 when `n > 0`.
unsafe fn slice_ref<'a>(ptr: *const f64, n: i64) -> &'a [f64] {
    if n == 0 {
        &[]
    } else {
        slice::from_raw_parts(ptr, n as usize)
    }
}

/// # Safety
/// `ptr` must point to `n` writable f64 when `n > 0`.
unsafe fn slice_mut<'a>(ptr: *mut f64, n: i64) -> &'a mut [f64] {
    if n == 0 {
        &mut []
    } else {
        slice::from_raw_parts_mut(ptr, n as usize)
    }
}

pub extern "C" fn optc_exp(x: f64) -> f64 {
    x.exp()
}

pub extern "C" fn optc_log(x: f64) -> f64 {
    x.ln()
}

pub extern "C" fn optc_tanh(x: f64) -> f64 {
    x.tanh()
}

pub extern "C" fn optc_pow(x: f64, y: f64) -> f64 {
    x.powf(y)
}

/// 1 / (1 + e^-x), without overflow for large |x|.
pub extern "C" fn optc_sigmoid(x: f64) -> f64 {
    UnaryOp::Sigmoid.apply(x)
}

/// log(1 + e^x) = max(x, 0) + log1p(e^-|x|).
pub extern "C" fn optc_softplus(x: f64) -> f64 {
    UnaryOp::Softplus.apply(x)
}

/// The C signature of a symbol, as counts of pointer, i64, i32 and f64 parameters in order.
#[derive(Clone, Copy, Debug)]
pub enum Param {
    Ptr,
    I64,
    I32,
    F64,
}

/// A symbol the compiled code may call: name, address, parameters, and whether it returns an
/// `i32` status (kernels) or an `f64` (scalar helpers).
pub struct Symbol {
    pub name: &'static str,
    pub address: *const u8,
    pub params: &'static [Param],
    pub returns_status: bool,
}

/// Every symbol registered with the JIT.
pub fn symbols() -> Vec<Symbol> {
    use Param::*;
    let kernel = |name, address: *const u8, params| Symbol {
        name,
        address,
        params,
        returns_status: true,
    };
    let scalar = |name, address: *const u8, params| Symbol {
        name,
        address,
        params,
        returns_status: false,
    };
    vec![
        kernel(
            "optc_kernel_matmul",
            optc_kernel_matmul as *const u8,
            &[Ptr, Ptr, Ptr, I64, I64, I64, I32, I32],
        ),
        kernel(
            "optc_kernel_logdet",
            optc_kernel_logdet as *const u8,
            &[Ptr, Ptr, I64],
        ),
        kernel(
            "optc_kernel_solve",
            optc_kernel_solve as *const u8,
            &[Ptr, Ptr, Ptr, I64, I64],
        ),
        kernel(
            "optc_kernel_inv",
            optc_kernel_inv as *const u8,
            &[Ptr, Ptr, I64],
        ),
        kernel(
            "optc_kernel_logdet_inv",
            optc_kernel_logdet_inv as *const u8,
            &[Ptr, Ptr, Ptr, I64],
        ),
        kernel(
            "optc_kernel_expm",
            optc_kernel_expm as *const u8,
            &[Ptr, Ptr, I64],
        ),
        kernel(
            "optc_kernel_sort_desc",
            optc_kernel_sort_desc as *const u8,
            &[Ptr, Ptr, I64],
        ),
        kernel(
            "optc_kernel_topk",
            optc_kernel_topk as *const u8,
            &[Ptr, Ptr, I64, I64],
        ),
        kernel(
            "optc_kernel_nuclear_norm",
            optc_kernel_nuclear_norm as *const u8,
            &[Ptr, Ptr, I64, I64],
        ),
        kernel(
            "optc_kernel_expm_frechet",
            optc_kernel_expm_frechet as *const u8,
            &[Ptr, Ptr, Ptr, I64],
        ),
        kernel(
            "optc_kernel_expm_frechet2",
            optc_kernel_expm_frechet2 as *const u8,
            &[Ptr, Ptr, Ptr, Ptr, I64],
        ),
        kernel(
            "optc_kernel_matpow",
            optc_kernel_matpow as *const u8,
            &[Ptr, Ptr, I64, I64],
        ),
        kernel(
            "optc_kernel_matpow_frechet",
            optc_kernel_matpow_frechet as *const u8,
            &[Ptr, Ptr, Ptr, I64, I64],
        ),
        kernel(
            "optc_kernel_matpow_frechet2",
            optc_kernel_matpow_frechet2 as *const u8,
            &[Ptr, Ptr, Ptr, Ptr, I64, I64],
        ),
        kernel(
            "optc_kernel_sort_scatter",
            optc_kernel_sort_scatter as *const u8,
            &[Ptr, Ptr, Ptr, I64, I64],
        ),
        kernel(
            "optc_kernel_sort_gather",
            optc_kernel_sort_gather as *const u8,
            &[Ptr, Ptr, Ptr, I64, I64],
        ),
        scalar("optc_exp", optc_exp as *const u8, &[F64]),
        scalar("optc_log", optc_log as *const u8, &[F64]),
        scalar("optc_tanh", optc_tanh as *const u8, &[F64]),
        scalar("optc_sigmoid", optc_sigmoid as *const u8, &[F64]),
        scalar("optc_softplus", optc_softplus as *const u8, &[F64]),
        scalar("optc_pow", optc_pow as *const u8, &[F64, F64]),
    ]
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// Whether the upper halves of the YMM registers are in use (bit 2 of XINUSE, read by
    /// `xgetbv` with ECX = 1); `None` on a CPU that cannot tell.
    fn upper_state_in_use() -> Option<bool> {
        #[target_feature(enable = "xsave")]
        unsafe fn xinuse() -> u64 {
            std::arch::x86_64::_xgetbv(1)
        }
        let xgetbv1 = std::arch::x86_64::__cpuid_count(0xD, 1).eax & 4 != 0;
        let can_tell = std::arch::is_x86_feature_detected!("avx")
            && std::arch::is_x86_feature_detected!("xsave")
            && xgetbv1;
        // SAFETY: the CPU has XSAVE and XGETBV with ECX = 1.
        can_tell.then(|| unsafe { xinuse() } & 4 != 0)
    }

    #[test]
    fn vector_kernels_return_with_the_upper_ymm_state_clear() {
        if upper_state_in_use().is_none() {
            return; // this CPU cannot report it (no AVX or no XGETBV with ECX = 1)
        }
        let n = 48;
        let a: Vec<f64> = (0..n * n)
            .map(|i| match i % (n + 1) {
                0 => 4.0,
                r => (r % 13) as f64 / 50.0 - 0.12,
            })
            .collect();
        let mut out = vec![0.0; n * n];
        let mut logdet = 0.0;
        let (a, o, l, m) = (
            a.as_ptr(),
            out.as_mut_ptr(),
            &mut logdet as *mut f64,
            n as i64,
        );
        // SAFETY: `a` and `out` hold n × n f64, `logdet` one.
        let kernels: [(&str, &dyn Fn() -> i32); 5] = [
            ("matmul", &|| unsafe {
                optc_kernel_matmul(a, a, o, m, m, m, 0, 1)
            }),
            ("logdet_inv", &|| unsafe {
                optc_kernel_logdet_inv(a, l, o, m)
            }),
            ("solve", &|| unsafe { optc_kernel_solve(a, a, o, m, m) }),
            ("expm", &|| unsafe { optc_kernel_expm(a, o, m) }),
            ("nuclear_norm", &|| unsafe {
                optc_kernel_nuclear_norm(a, l, m, m)
            }),
        ];
        for (name, run) in kernels {
            let status = run();
            let in_use = upper_state_in_use();
            assert_eq!(status, OK, "{name}");
            assert_eq!(
                in_use,
                Some(false),
                "{name} returned with the upper YMM state in use"
            );
        }
    }
}
