//! What the GPU executor needs from a device: buffers of f64 or f32 (one [`Precision`] per device;
//! the host side of every call is f64, converted on the way), copies between host and device,
//! launches of PTX kernels, and the library calls (matrix product, sum, largest |x|, axpy,
//! scaling, dot product, LU
//! with log-determinant, inverse, solve). Two implementations: [`super::cuda::CudaDevice`]
//! (CUDA driver, cuBLAS, cuSOLVER through `cudarc`) and [`super::reference::ReferenceDevice`]
//! (host memory, kernels run by the interpreter), which tests the executor here.
//!
//! All matrices are row-major, as everywhere in optc.

use super::plan::{GpuPlan, LaunchOperand, Precision};
use crate::linalg::{NonPositiveMinor, Pivoting};
use optc_compiler::ir::NodeId;
use std::collections::HashMap;
use std::fmt;

/// A device buffer, by the index the device gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DevBuf(pub usize);

/// A position in a device buffer (element offset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevPtr {
    pub buf: DevBuf,
    pub offset: usize,
}

impl DevBuf {
    pub fn at(self, offset: usize) -> DevPtr {
        DevPtr { buf: self, offset }
    }
}

/// One 64-bit kernel parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelParam {
    /// A device address.
    Ptr(DevPtr),
    /// An integer (an `index` value, a memref offset, size or stride).
    Word(u64),
}

/// A kernel launch as the executor makes it. `operands` and `node` say what the kernel computes,
/// for devices that run it without its PTX; the CUDA device uses only the names, sizes and
/// parameters.
pub struct LaunchCall<'a> {
    pub module: &'a str,
    pub entry: &'a str,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub params: &'a [KernelParam],
    pub plan: &'a GpuPlan,
    pub node: NodeId,
    pub operands: &'a [LaunchOperand],
}

/// `c = op(a) · op(b)`, `c` of `m × n`, the product over `k`; `trans_a` means `a` is stored as
/// `k × m` (and `b` as `n × k` with `trans_b`).
#[derive(Clone, Copy, Debug)]
pub struct Gemm {
    pub a: DevPtr,
    pub b: DevPtr,
    pub c: DevPtr,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub trans_a: bool,
    pub trans_b: bool,
}

/// Why a device operation failed.
#[derive(Clone, Debug, PartialEq)]
pub enum DeviceError {
    /// The driver or a CUDA library reported an error.
    Cuda(String),
    /// A library needed at run time (cuBLAS, cuSOLVER) could not be loaded.
    Library(String),
    /// A singular matrix where an inverse or solve was asked.
    Singular,
    /// A call that does not fit the buffers or the plan (a bug, or a damaged artifact).
    Invalid(String),
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::Cuda(m) => write!(f, "CUDA error: {m}"),
            DeviceError::Library(m) => write!(f, "cannot load a CUDA library: {m}"),
            DeviceError::Singular => write!(f, "singular matrix"),
            DeviceError::Invalid(m) => write!(f, "invalid device call: {m}"),
        }
    }
}

impl std::error::Error for DeviceError {}

pub type DeviceResult<T> = Result<T, DeviceError>;

/// The kernels of a PTX module with the number of parameters each declares: an entry
/// (`.entry NAME(`) opens a list of `.param` lines that `)` closes. Devices check launches
/// against it, so that a damaged artifact is an error, not a kernel reading past its arguments.
pub fn ptx_entries(ptx: &str) -> HashMap<String, usize> {
    let mut entries = HashMap::new();
    let mut open: Option<(String, usize)> = None;
    for line in ptx.lines().map(str::trim) {
        if let Some(rest) = line
            .strip_prefix(".visible .entry ")
            .or(line.strip_prefix(".entry "))
        {
            let (entry, params) = rest.split_once('(').unwrap_or((rest, ""));
            let entry = entry.trim().to_string();
            if params.trim_start().starts_with(')') {
                // `.entry name()`: no parameters.
                entries.insert(entry, 0);
            } else {
                open = Some((entry, 0));
            }
        } else if let Some((_, params)) = open.as_mut().filter(|_| line.starts_with(".param")) {
            *params += 1;
        } else if line.starts_with(')') {
            if let Some((entry, params)) = open.take() {
                entries.insert(entry, params);
            }
        }
    }
    entries
}

/// A device the executor runs a [`GpuPlan`] on.
pub trait Device {
    /// A name for reports (the card's name for a GPU).
    fn name(&self) -> String;
    /// The element type of its buffers and library calls (f64 until set); set before the first
    /// allocation.
    fn set_precision(&mut self, precision: Precision) -> DeviceResult<()>;
    /// A zeroed buffer of `len` elements.
    fn alloc(&mut self, len: usize) -> DeviceResult<DevBuf>;
    fn upload(&mut self, dst: DevPtr, data: &[f64]) -> DeviceResult<()>;
    fn download(&mut self, src: DevPtr, out: &mut [f64]) -> DeviceResult<()>;
    /// Device-to-device copy of `len` elements.
    fn copy(&mut self, src: DevPtr, dst: DevPtr, len: usize) -> DeviceResult<()>;
    /// Loads a PTX module under its name (once, before launches of its kernels).
    fn load_module(&mut self, name: &str, ptx: &str) -> DeviceResult<()>;
    fn launch(&mut self, call: &LaunchCall<'_>) -> DeviceResult<()>;
    fn gemm(&mut self, g: &Gemm) -> DeviceResult<()>;
    /// Writes the sum of the `len` elements at `x` to `out`, on the device (in its precision;
    /// nothing crosses to the host).
    fn sum(&mut self, x: DevPtr, len: usize, out: DevPtr) -> DeviceResult<()>;
    /// The largest absolute value of the `len` elements at `x` (0 when `len` is 0).
    fn max_abs(&mut self, x: DevPtr, len: usize) -> DeviceResult<f64>;
    /// `y ← y + alpha·x`, `len` elements each.
    fn axpy(&mut self, alpha: f64, x: DevPtr, y: DevPtr, len: usize) -> DeviceResult<()>;
    /// `x ← alpha·x`, `len` elements.
    fn scale(&mut self, alpha: f64, x: DevPtr, len: usize) -> DeviceResult<()>;
    /// `xᵀy` of `len` elements each, read back to the host.
    fn dot(&mut self, x: DevPtr, y: DevPtr, len: usize) -> DeviceResult<f64>;
    /// LU-factorizes the `n × n` matrix at `a` (left unchanged); the device keeps the factors
    /// for the `lu_*` calls until the next factorization.
    fn lu_factor(&mut self, a: DevPtr, n: usize, pivoting: Pivoting) -> DeviceResult<()>;
    /// log det of the matrix factorized without pivoting, or the first of its leading principal
    /// minors that is not positive ([`crate::linalg::Lu::logdet`]).
    fn lu_logdet(&mut self) -> DeviceResult<Result<f64, NonPositiveMinor>>;
    /// `out = A⁻¹` of the factorized matrix ([`DeviceError::Singular`] when it is singular).
    fn lu_inverse(&mut self, out: DevPtr) -> DeviceResult<()>;
    /// `out = A⁻¹ b` of the factorized matrix, `b` and `out` of `n × m`.
    fn lu_solve(&mut self, b: DevPtr, m: usize, out: DevPtr) -> DeviceResult<()>;
    /// Waits for the queued work (timings, and errors of asynchronous launches).
    fn synchronize(&mut self) -> DeviceResult<()>;
}

/// A boxed device is a device (the CLI picks one at run time).
impl<D: Device + ?Sized> Device for Box<D> {
    fn name(&self) -> String {
        (**self).name()
    }
    fn set_precision(&mut self, precision: Precision) -> DeviceResult<()> {
        (**self).set_precision(precision)
    }
    fn alloc(&mut self, len: usize) -> DeviceResult<DevBuf> {
        (**self).alloc(len)
    }
    fn upload(&mut self, dst: DevPtr, data: &[f64]) -> DeviceResult<()> {
        (**self).upload(dst, data)
    }
    fn download(&mut self, src: DevPtr, out: &mut [f64]) -> DeviceResult<()> {
        (**self).download(src, out)
    }
    fn copy(&mut self, src: DevPtr, dst: DevPtr, len: usize) -> DeviceResult<()> {
        (**self).copy(src, dst, len)
    }
    fn load_module(&mut self, name: &str, ptx: &str) -> DeviceResult<()> {
        (**self).load_module(name, ptx)
    }
    fn launch(&mut self, call: &LaunchCall<'_>) -> DeviceResult<()> {
        (**self).launch(call)
    }
    fn gemm(&mut self, g: &Gemm) -> DeviceResult<()> {
        (**self).gemm(g)
    }
    fn sum(&mut self, x: DevPtr, len: usize, out: DevPtr) -> DeviceResult<()> {
        (**self).sum(x, len, out)
    }
    fn max_abs(&mut self, x: DevPtr, len: usize) -> DeviceResult<f64> {
        (**self).max_abs(x, len)
    }
    fn axpy(&mut self, alpha: f64, x: DevPtr, y: DevPtr, len: usize) -> DeviceResult<()> {
        (**self).axpy(alpha, x, y, len)
    }
    fn scale(&mut self, alpha: f64, x: DevPtr, len: usize) -> DeviceResult<()> {
        (**self).scale(alpha, x, len)
    }
    fn dot(&mut self, x: DevPtr, y: DevPtr, len: usize) -> DeviceResult<f64> {
        (**self).dot(x, y, len)
    }
    fn lu_factor(&mut self, a: DevPtr, n: usize, pivoting: Pivoting) -> DeviceResult<()> {
        (**self).lu_factor(a, n, pivoting)
    }
    fn lu_logdet(&mut self) -> DeviceResult<Result<f64, NonPositiveMinor>> {
        (**self).lu_logdet()
    }
    fn lu_inverse(&mut self, out: DevPtr) -> DeviceResult<()> {
        (**self).lu_inverse(out)
    }
    fn lu_solve(&mut self, b: DevPtr, m: usize, out: DevPtr) -> DeviceResult<()> {
        (**self).lu_solve(b, m, out)
    }
    fn synchronize(&mut self) -> DeviceResult<()> {
        (**self).synchronize()
    }
}

#[cfg(test)]
mod tests {
    use super::ptx_entries;

    #[test]
    fn ptx_entries_count_each_kernels_parameters() {
        let ptx = "\
.version 8.0
.visible .entry first(
\t.param .u64 first_param_0,
\t.param .u64 .ptr .align 1 first_param_1
)
{
\tret;
}
.visible .entry empty()
{
\tret;
}
.entry second(
\t.param .u64 second_param_0
)
{
\tret;
}
";
        let entries = ptx_entries(ptx);
        assert_eq!(entries.len(), 3, "{entries:?}");
        assert_eq!(entries["first"], 2);
        assert_eq!(entries["empty"], 0);
        assert_eq!(entries["second"], 1);
    }
}
