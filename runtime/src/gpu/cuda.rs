//! The [`Device`] on an NVIDIA GPU: CUDA driver API, cuBLAS and cuSOLVER through `cudarc`, every
//! library loaded at run time (nothing CUDA is needed to build optc). Only created after
//! [`super::driver_present`]: cudarc panics when a library it needs is missing, so cuBLAS and
//! cuSOLVER are also looked for before their first use.
//!
//! **Untested on hardware** until a device session runs `scripts/gpu-check.sh`: this machine has
//! no GPU; the executor above it is tested on the reference device.
//!
//! Sums of all elements are cuBLAS dot products with a vector of ones.
//!
//! Buffers hold f64 or, after `set_precision(F32)`, f32: host data is converted on upload and
//! download, and each library call is its `D` or `S` variant.
//!
//! # Row-major operands in column-major libraries
//! A row-major `r × c` buffer is, read column-major, the `c × r` transpose. So:
//! - `C = op(A)·op(B)` (row-major) is `Cᵀ = op(B)ᵀ·op(A)ᵀ`: cuBLAS `gemm` is called with the
//!   operands swapped (B's buffer first), `m ↔ n` exchanged, and each operand's own transpose
//!   flag, with leading dimensions the row lengths of the buffers;
//! - `log|det A| = log|det Aᵀ|`: the buffer is factorized as it is;
//! - `A⁻¹`: the LU of the buffer (`Aᵀ`) solved against `I` gives `A⁻ᵀ` column-major, which is
//!   `A⁻¹` row-major;
//! - `A⁻¹B` with `B` of `n × m`: the LU of `Aᵀ` with `getrs(trans = T)` solves `A·Y = R`
//!   column-major; `B` (row-major) is transposed into `R` with `geam` first and the result
//!   transposed back (a vector, `m = 1`, needs neither).

use super::device::{
    ptx_entries, DevBuf, DevPtr, Device, DeviceError, DeviceResult, Gemm, KernelParam, LaunchCall,
};
use super::plan::Precision;
use crate::linalg::{logdet_of_pivots, NonPositiveMinor, Pivoting};
use cudarc::cublas::sys as blas;
use cudarc::cusolver::sys as solver;
use cudarc::driver::{result, sys, CudaContext, CudaFunction, CudaModule, CudaStream};
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;

/// Calls the `D` (f64) or the `S` (f32) variant of a cuBLAS or cuSOLVER routine, as `precision`
/// says, with the same arguments (their pointer casts and float literals take each variant's
/// types).
macro_rules! by_precision {
    ($precision:expr, $double:path | $single:path, ($($arg:expr),* $(,)?)) => {
        match $precision {
            Precision::F64 => $double($($arg),*),
            Precision::F32 => $single($($arg),*),
        }
    };
}

fn cuda(e: impl std::fmt::Debug) -> DeviceError {
    DeviceError::Cuda(format!("{e:?}"))
}

fn blas_ok(status: blas::cublasStatus_t) -> DeviceResult<()> {
    match status {
        blas::cublasStatus_t::CUBLAS_STATUS_SUCCESS => Ok(()),
        s => Err(DeviceError::Cuda(format!("cuBLAS: {s:?}"))),
    }
}

fn solver_ok(status: solver::cusolverStatus_t) -> DeviceResult<()> {
    match status {
        solver::cusolverStatus_t::CUSOLVER_STATUS_SUCCESS => Ok(()),
        s => Err(DeviceError::Cuda(format!("cuSOLVER: {s:?}"))),
    }
}

fn int(n: usize) -> DeviceResult<i32> {
    i32::try_from(n).map_err(|_| DeviceError::Invalid(format!("size {n} exceeds cuBLAS's int")))
}

/// Work space of LU factorizations of one size.
struct LuWork {
    n: usize,
    /// The factorized copy (`n × n`).
    lu: sys::CUdeviceptr,
    /// getrf's row interchanges (1-based), and the unit ones (`1..=n`) that stand for them after
    /// a factorization without pivoting (`pivoted` false), for getrs.
    pivots: sys::CUdeviceptr,
    unit_pivots: sys::CUdeviceptr,
    pivoted: bool,
    info: sys::CUdeviceptr,
    work: sys::CUdeviceptr,
    /// The diagonal of the factors (`n`), and the identity (`n × n`) for inverses.
    diagonal: sys::CUdeviceptr,
    identity: Option<sys::CUdeviceptr>,
    /// Whether the factors are of a matrix with an exactly zero pivot.
    singular: bool,
}

/// A loaded PTX module (kept alive for its functions) and its kernels by entry name, with the
/// number of parameters each declares.
struct LoadedModule {
    _module: Arc<CudaModule>,
    kernels: HashMap<String, (CudaFunction, usize)>,
}

/// The first GPU, its stream, library handles and buffers.
pub struct CudaDevice {
    precision: Precision,
    /// Host f32 values on their way to or from an f32 device (kept: the point and the gradient
    /// cross every evaluation).
    staging: Vec<f32>,
    context: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    buffers: Vec<(sys::CUdeviceptr, usize)>,
    /// Every device allocation (the buffers and the work spaces), freed on drop.
    allocations: Vec<sys::CUdeviceptr>,
    modules: HashMap<String, LoadedModule>,
    /// A launch's parameter words and the pointers to them (kept: no allocation per launch).
    words: Vec<u64>,
    params: Vec<*mut c_void>,
    blas: Option<blas::cublasHandle_t>,
    solver: Option<solver::cusolverDnHandle_t>,
    /// LU work spaces by size (a plan may factorize matrices of several sizes per evaluation),
    /// and the size of the last factorization.
    lu: HashMap<usize, LuWork>,
    factored: Option<usize>,
    /// Column-major right-hand sides of `solve` (elements, allocation).
    rhs: Option<(usize, sys::CUdeviceptr)>,
    /// A vector of ones (elements, allocation): sums are dot products with it.
    ones: Option<(usize, sys::CUdeviceptr)>,
}

impl CudaDevice {
    /// Opens GPU `ordinal` (call only when the driver library is present).
    pub fn new(ordinal: usize) -> DeviceResult<CudaDevice> {
        let context = CudaContext::new(ordinal).map_err(cuda)?;
        // One stream orders everything: no per-buffer events are needed.
        // SAFETY: no cudarc-managed slices are used with other streams.
        unsafe { context.disable_event_tracking() };
        let stream = context.default_stream();
        Ok(CudaDevice {
            precision: Precision::F64,
            staging: Vec::new(),
            context,
            stream,
            buffers: Vec::new(),
            allocations: Vec::new(),
            modules: HashMap::new(),
            words: Vec::new(),
            params: Vec::new(),
            blas: None,
            solver: None,
            lu: HashMap::new(),
            factored: None,
            rhs: None,
            ones: None,
        })
    }

    fn address(&self, p: DevPtr, len: usize) -> DeviceResult<sys::CUdeviceptr> {
        let &(base, size) = self
            .buffers
            .get(p.buf.0)
            .ok_or_else(|| DeviceError::Invalid(format!("no buffer {:?}", p.buf)))?;
        if p.offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(DeviceError::Invalid(format!(
                "{len} elements at {p:?} are outside the buffer of {size}"
            )));
        }
        Ok(base + (p.offset * self.bytes()) as u64)
    }

    /// Bytes per element.
    fn bytes(&self) -> usize {
        self.precision.bytes()
    }

    /// Copies `data` to `to`, converted to the device's precision (synchronous).
    fn put(&mut self, to: sys::CUdeviceptr, data: &[f64]) -> DeviceResult<()> {
        // SAFETY (both arms): `to` holds `data.len()` elements of the device's precision; the
        // copy is synchronous, so the host data may go afterwards.
        match self.precision {
            Precision::F64 => unsafe { result::memcpy_htod_sync(to, data) },
            Precision::F32 => {
                self.staging.clear();
                self.staging.extend(data.iter().map(|&x| x as f32));
                unsafe { result::memcpy_htod_sync(to, &self.staging) }
            }
        }
        .map_err(cuda)
    }

    /// Copies `out.len()` elements from `from` into `out`, widened to f64 (after the stream's
    /// work).
    fn get(&mut self, from: sys::CUdeviceptr, out: &mut [f64]) -> DeviceResult<()> {
        // SAFETY (both arms): `from` holds `out.len()` elements of the device's precision; the
        // stream is drained first.
        unsafe {
            result::stream::synchronize(self.cu_stream()).map_err(cuda)?;
            match self.precision {
                Precision::F64 => result::memcpy_dtoh_sync(out, from).map_err(cuda),
                Precision::F32 => {
                    self.staging.resize(out.len(), 0.0);
                    result::memcpy_dtoh_sync(&mut self.staging, from).map_err(cuda)?;
                    for (o, &s) in out.iter_mut().zip(&self.staging) {
                        *o = f64::from(s);
                    }
                    Ok(())
                }
            }
        }
    }

    /// A zeroed device allocation, kept in `allocations` (freed on drop) as soon as it is made.
    fn raw_alloc(&mut self, bytes: usize) -> DeviceResult<sys::CUdeviceptr> {
        // SAFETY: a fresh allocation, zeroed before use; freed on drop.
        unsafe {
            let ptr = result::malloc_sync(bytes.max(8)).map_err(cuda)?;
            self.allocations.push(ptr);
            result::memset_d8_sync(ptr, 0, bytes.max(8)).map_err(cuda)?;
            Ok(ptr)
        }
    }

    fn cu_stream(&self) -> sys::CUstream {
        self.stream.cu_stream()
    }

    fn blas(&mut self) -> DeviceResult<blas::cublasHandle_t> {
        if let Some(h) = self.blas {
            return Ok(h);
        }
        // SAFETY: looking for the library only loads it; the handle is bound to our stream.
        unsafe {
            if !blas::is_culib_present() {
                return Err(DeviceError::Library("cuBLAS (libcublas) not found".into()));
            }
            let mut handle = std::ptr::null_mut();
            blas_ok(blas::cublasCreate_v2(&mut handle))?;
            // Kept before the next call can fail: destroyed on drop.
            self.blas = Some(handle);
            blas_ok(blas::cublasSetStream_v2(handle, self.cu_stream() as _))?;
            Ok(handle)
        }
    }

    fn solver(&mut self) -> DeviceResult<solver::cusolverDnHandle_t> {
        if let Some(h) = self.solver {
            return Ok(h);
        }
        // SAFETY: as for cuBLAS.
        unsafe {
            if !solver::is_culib_present() {
                return Err(DeviceError::Library(
                    "cuSOLVER (libcusolver) not found".into(),
                ));
            }
            let mut handle = std::ptr::null_mut();
            solver_ok(solver::cusolverDnCreate(&mut handle))?;
            self.solver = Some(handle);
            solver_ok(solver::cusolverDnSetStream(handle, self.cu_stream() as _))?;
            Ok(handle)
        }
    }

    /// The LU work space for size `n` (made on first use), which becomes the current one.
    fn lu_work(&mut self, n: usize) -> DeviceResult<&mut LuWork> {
        if !self.lu.contains_key(&n) {
            let handle = self.solver()?;
            let bytes = self.bytes();
            let lu = self.raw_alloc(n * n * bytes)?;
            let mut lwork = 0i32;
            let size = int(n)?;
            // SAFETY: a query on a valid handle and an n × n allocation (cuSOLVER refuses a
            // leading dimension below 1, even for n = 0, which needs no work space).
            if n > 0 {
                solver_ok(unsafe {
                    by_precision!(
                        self.precision,
                        solver::cusolverDnDgetrf_bufferSize | solver::cusolverDnSgetrf_bufferSize,
                        (handle, size, size, lu as _, size, &mut lwork)
                    )
                })?;
            }
            let pivots = self.raw_alloc(n * 4)?;
            let unit_pivots = self.raw_alloc(n * 4)?;
            if n > 0 {
                let unit: Vec<i32> = (1..=int(n)?).collect();
                // SAFETY: `unit_pivots` holds n ints; the copy is synchronous.
                unsafe { result::memcpy_htod_sync(unit_pivots, &unit) }.map_err(cuda)?;
            }
            let info = self.raw_alloc(4)?;
            let work = self.raw_alloc(lwork.max(1) as usize * bytes)?;
            let diagonal = self.raw_alloc(n * bytes)?;
            let work_space = LuWork {
                n,
                lu,
                pivots,
                unit_pivots,
                pivoted: true,
                info,
                work,
                diagonal,
                identity: None,
                singular: false,
            };
            self.lu.insert(n, work_space);
        }
        self.factored = Some(n);
        Ok(self.lu.get_mut(&n).expect("just made"))
    }

    /// The work space of the last factorization.
    fn current_lu(&mut self) -> DeviceResult<&mut LuWork> {
        self.factored
            .and_then(|n| self.lu.get_mut(&n))
            .ok_or_else(|| DeviceError::Invalid("an LU call before any factorization".into()))
    }

    /// Copies `a` into the work space and factorizes it, noting whether a pivot is exactly zero.
    /// Without pivoting, getrf gets no pivot array (cuSOLVER then interchanges no rows).
    fn factorize(&mut self, a: DevPtr, n: usize, pivoting: Pivoting) -> DeviceResult<()> {
        let src = self.address(a, n * n)?;
        let handle = self.solver()?;
        let stream = self.cu_stream();
        let w = self.lu_work(n)?;
        w.pivoted = pivoting == Pivoting::Partial;
        let pivots = if w.pivoted { w.pivots } else { 0 };
        let (lu, work, info) = (w.lu, w.work, w.info);
        let mut status = 0i32;
        let (size, bytes) = (int(n)?, self.bytes());
        // SAFETY: all pointers are live allocations of the sizes the calls read and write.
        unsafe {
            result::memcpy_dtod_async(lu, src, n * n * bytes, stream).map_err(cuda)?;
            solver_ok(by_precision!(
                self.precision,
                solver::cusolverDnDgetrf | solver::cusolverDnSgetrf,
                (
                    handle,
                    size,
                    size,
                    lu as _,
                    size,
                    work as _,
                    pivots as _,
                    info as _
                )
            ))?;
            result::memcpy_dtoh_async(std::slice::from_mut(&mut status), info, stream)
                .map_err(cuda)?;
            result::stream::synchronize(stream).map_err(cuda)?;
        }
        if status < 0 {
            return Err(DeviceError::Cuda(format!(
                "getrf: argument {} invalid",
                -status
            )));
        }
        self.current_lu()?.singular = status > 0;
        Ok(())
    }

    /// The factors of the last [`Device::lu_factor`], refusing singular ones when `invertible`.
    fn factors(&mut self, invertible: bool) -> DeviceResult<&LuWork> {
        match self.current_lu()? {
            w if invertible && w.singular => Err(DeviceError::Singular),
            w => Ok(w),
        }
    }

    fn geam_transpose(
        &mut self,
        src: sys::CUdeviceptr,
        rows: usize,
        cols: usize,
        dst: sys::CUdeviceptr,
    ) -> DeviceResult<()> {
        // `src` is a column-major rows × cols matrix; `dst` receives its cols × rows transpose.
        let handle = self.blas()?;
        let (t, n) = (
            blas::cublasOperation_t::CUBLAS_OP_T,
            blas::cublasOperation_t::CUBLAS_OP_N,
        );
        let (rows, cols) = (int(rows)?, int(cols)?);
        // SAFETY: both buffers hold rows × cols elements; with beta = 0, B is not read.
        blas_ok(unsafe {
            by_precision!(
                self.precision,
                blas::cublasDgeam | blas::cublasSgeam,
                (
                    handle, t, n, cols, rows, &1.0, src as _, rows, &0.0, dst as _, cols, dst as _,
                    cols
                )
            )
        })
    }

    /// Solves with the factors of the last factorization, `trans` applied, the column-major
    /// `n × m` right-hand side at `rhs` overwritten by the solution.
    fn getrs(
        &mut self,
        trans: solver::cublasOperation_t,
        m: usize,
        rhs: sys::CUdeviceptr,
    ) -> DeviceResult<()> {
        let handle = self.solver()?;
        let w = self.factors(true)?;
        let (n, m) = (int(w.n)?, int(m)?);
        let pivots = if w.pivoted { w.pivots } else { w.unit_pivots };
        let (lu, info) = (w.lu, w.info);
        // SAFETY: n × n factors and pivots, an n × m right-hand side; info is one int.
        solver_ok(unsafe {
            by_precision!(
                self.precision,
                solver::cusolverDnDgetrs | solver::cusolverDnSgetrs,
                (
                    handle,
                    trans,
                    n,
                    m,
                    lu as _,
                    n,
                    pivots as _,
                    rhs as _,
                    n,
                    info as _
                )
            )
        })
    }
}

impl Drop for CudaDevice {
    fn drop(&mut self) {
        // SAFETY: handles and allocations were made by this device and are not used after this.
        // Errors while tearing down are ignored: nothing can be done about them here.
        unsafe {
            let _ = result::stream::synchronize(self.cu_stream());
            if let Some(h) = self.blas.take() {
                let _ = blas::cublasDestroy_v2(h);
            }
            if let Some(h) = self.solver.take() {
                let _ = solver::cusolverDnDestroy(h);
            }
            for &ptr in &self.allocations {
                let _ = result::free_sync(ptr);
            }
        }
    }
}

impl Device for CudaDevice {
    fn name(&self) -> String {
        self.context.name().unwrap_or_else(|_| "CUDA device".into())
    }

    fn set_precision(&mut self, precision: Precision) -> DeviceResult<()> {
        if !self.buffers.is_empty() && precision != self.precision {
            return Err(DeviceError::Invalid(
                "the precision changed after buffers were allocated".into(),
            ));
        }
        self.precision = precision;
        Ok(())
    }

    fn alloc(&mut self, len: usize) -> DeviceResult<DevBuf> {
        let ptr = self.raw_alloc(len * self.bytes())?;
        self.buffers.push((ptr, len));
        Ok(DevBuf(self.buffers.len() - 1))
    }

    fn upload(&mut self, dst: DevPtr, data: &[f64]) -> DeviceResult<()> {
        let to = self.address(dst, data.len())?;
        self.put(to, data)
    }

    fn download(&mut self, src: DevPtr, out: &mut [f64]) -> DeviceResult<()> {
        let from = self.address(src, out.len())?;
        self.get(from, out)
    }

    fn copy(&mut self, src: DevPtr, dst: DevPtr, len: usize) -> DeviceResult<()> {
        let (from, to) = (self.address(src, len)?, self.address(dst, len)?);
        let bytes = len * self.bytes();
        // SAFETY: both ranges were bounds-checked.
        unsafe { result::memcpy_dtod_async(to, from, bytes, self.cu_stream()) }.map_err(cuda)
    }

    fn load_module(&mut self, name: &str, ptx: &str) -> DeviceResult<()> {
        let module = self
            .context
            .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
            .map_err(|e| DeviceError::Cuda(format!("loading the PTX of `{name}`: {e:?}")))?;
        let mut kernels = HashMap::new();
        for (entry, params) in ptx_entries(ptx) {
            let function = module.load_function(&entry).map_err(cuda)?;
            kernels.insert(entry, (function, params));
        }
        if kernels.is_empty() {
            return Err(DeviceError::Invalid(format!(
                "module `{name}` has no kernel entry"
            )));
        }
        let loaded = LoadedModule {
            _module: module,
            kernels,
        };
        self.modules.insert(name.to_string(), loaded);
        Ok(())
    }

    fn launch(&mut self, call: &LaunchCall<'_>) -> DeviceResult<()> {
        let (function, declared) = self
            .modules
            .get(call.module)
            .ok_or_else(|| {
                DeviceError::Invalid(format!("module `{}` was not loaded", call.module))
            })?
            .kernels
            .get(call.entry)
            .ok_or_else(|| {
                DeviceError::Invalid(format!(
                    "module `{}` has no kernel `{}`",
                    call.module, call.entry
                ))
            })?;
        if *declared != call.params.len() {
            return Err(DeviceError::Invalid(format!(
                "kernel `{}` declares {declared} parameters, the launch passes {}",
                call.entry,
                call.params.len()
            )));
        }
        let function = function.cu_function();
        let mut words = std::mem::take(&mut self.words);
        words.clear();
        for p in call.params {
            words.push(match *p {
                KernelParam::Word(w) => w,
                KernelParam::Ptr(ptr) => self.address(ptr, 0)?,
            });
        }
        let mut params = std::mem::take(&mut self.params);
        params.clear();
        params.extend(words.iter_mut().map(|w| w as *mut u64 as *mut c_void));
        let [gx, gy, gz] = call.grid;
        let [bx, by, bz] = call.block;
        // SAFETY: as many 64-bit words as the kernel declares (checked above; the artifact's
        // operand list as MLIR outlined it: five per memref); the words outlive the launch call,
        // which copies them.
        let launched = unsafe {
            result::launch_kernel(
                function,
                (gx, gy, gz),
                (bx, by, bz),
                0,
                self.cu_stream(),
                &mut params,
            )
        };
        (self.words, self.params) = (words, params);
        launched.map_err(cuda)
    }

    fn gemm(&mut self, g: &Gemm) -> DeviceResult<()> {
        let a = self.address(g.a, g.m * g.k)?;
        let b = self.address(g.b, g.k * g.n)?;
        let c = self.address(g.c, g.m * g.n)?;
        let handle = self.blas()?;
        let op = |t: bool| {
            if t {
                blas::cublasOperation_t::CUBLAS_OP_T
            } else {
                blas::cublasOperation_t::CUBLAS_OP_N
            }
        };
        // Row-major C = op(A)·op(B) as column-major Cᵀ = op(B)ᵀ·op(A)ᵀ (see the module doc).
        let ld_b = int(if g.trans_b { g.k } else { g.n }.max(1))?;
        let ld_a = int(if g.trans_a { g.m } else { g.k }.max(1))?;
        let (ops, ld_c) = ((op(g.trans_b), op(g.trans_a)), int(g.n.max(1))?);
        let (m, n, k) = (int(g.n)?, int(g.m)?, int(g.k)?);
        // SAFETY: the three ranges were bounds-checked for these sizes.
        blas_ok(unsafe {
            by_precision!(
                self.precision,
                blas::cublasDgemm_v2 | blas::cublasSgemm_v2,
                (
                    handle, ops.0, ops.1, m, n, k, &1.0, b as _, ld_b, a as _, ld_a, &0.0, c as _,
                    ld_c
                )
            )
        })
    }

    fn sum(&mut self, x: DevPtr, len: usize, out: DevPtr) -> DeviceResult<()> {
        let from = self.address(x, len)?;
        let to = self.address(out, 1)?;
        if len == 0 {
            return self.put(to, &[0.0]);
        }
        let ones = match self.ones {
            Some((have, ptr)) if have >= len => ptr,
            _ => {
                let ptr = self.raw_alloc(len * self.bytes())?;
                self.put(ptr, &vec![1.0; len])?;
                self.ones = Some((len, ptr));
                ptr
            }
        };
        let handle = self.blas()?;
        let len = int(len)?;
        // SAFETY: both vectors hold `len` elements and `to` one; in the device pointer mode the
        // result is written to device memory by the queued call (no wait for it), then the
        // handle is set back to the host pointer mode the other calls use.
        unsafe {
            let device = blas::cublasPointerMode_t::CUBLAS_POINTER_MODE_DEVICE;
            blas_ok(blas::cublasSetPointerMode_v2(handle, device))?;
            let dot = blas_ok(by_precision!(
                self.precision,
                blas::cublasDdot_v2 | blas::cublasSdot_v2,
                (handle, len, from as _, 1, ones as _, 1, to as _)
            ));
            let host = blas::cublasPointerMode_t::CUBLAS_POINTER_MODE_HOST;
            blas_ok(blas::cublasSetPointerMode_v2(handle, host))?;
            dot
        }
    }

    fn max_abs(&mut self, x: DevPtr, len: usize) -> DeviceResult<f64> {
        let from = self.address(x, len)?;
        if len == 0 {
            return Ok(0.0);
        }
        let handle = self.blas()?;
        let mut index: std::ffi::c_int = 0;
        // SAFETY: `from` holds `len` elements; the 1-based index of the largest |x| is written
        // to a host int (the default host pointer mode: the call returns when it is there).
        unsafe {
            blas_ok(by_precision!(
                self.precision,
                blas::cublasIdamax_v2 | blas::cublasIsamax_v2,
                (handle, int(len)?, from as _, 1, &mut index)
            ))?;
        }
        let at = usize::try_from(index)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .filter(|&i| i < len)
            .ok_or_else(|| DeviceError::Cuda(format!("cuBLAS i*amax returned {index}")))?;
        let mut value = [0.0];
        self.get(from + (at * self.bytes()) as u64, &mut value)?;
        Ok(value[0].abs())
    }

    fn axpy(&mut self, alpha: f64, x: DevPtr, y: DevPtr, len: usize) -> DeviceResult<()> {
        let (from, to) = (self.address(x, len)?, self.address(y, len)?);
        if len == 0 {
            return Ok(());
        }
        let handle = self.blas()?;
        let n = int(len)?;
        // SAFETY: both vectors hold `len` elements of the device's precision; `alpha` is read
        // from the host before the call returns.
        unsafe {
            match self.precision {
                Precision::F64 => blas_ok(blas::cublasDaxpy_v2(
                    handle, n, &alpha, from as _, 1, to as _, 1,
                )),
                Precision::F32 => blas_ok(blas::cublasSaxpy_v2(
                    handle,
                    n,
                    &(alpha as f32),
                    from as _,
                    1,
                    to as _,
                    1,
                )),
            }
        }
    }

    fn scale(&mut self, alpha: f64, x: DevPtr, len: usize) -> DeviceResult<()> {
        let at = self.address(x, len)?;
        if len == 0 {
            return Ok(());
        }
        let handle = self.blas()?;
        let n = int(len)?;
        // SAFETY: the vector holds `len` elements of the device's precision; `alpha` is read
        // from the host before the call returns.
        unsafe {
            match self.precision {
                Precision::F64 => blas_ok(blas::cublasDscal_v2(handle, n, &alpha, at as _, 1)),
                Precision::F32 => {
                    blas_ok(blas::cublasSscal_v2(handle, n, &(alpha as f32), at as _, 1))
                }
            }
        }
    }

    fn dot(&mut self, x: DevPtr, y: DevPtr, len: usize) -> DeviceResult<f64> {
        let (a, b) = (self.address(x, len)?, self.address(y, len)?);
        if len == 0 {
            return Ok(0.0);
        }
        let handle = self.blas()?;
        let n = int(len)?;
        // SAFETY: both vectors hold `len` elements; in the default host pointer mode the
        // result is written to the host variable before the call returns.
        unsafe {
            match self.precision {
                Precision::F64 => {
                    let mut out = 0.0f64;
                    blas_ok(blas::cublasDdot_v2(
                        handle, n, a as _, 1, b as _, 1, &mut out,
                    ))?;
                    Ok(out)
                }
                Precision::F32 => {
                    let mut out = 0.0f32;
                    blas_ok(blas::cublasSdot_v2(
                        handle, n, a as _, 1, b as _, 1, &mut out,
                    ))?;
                    Ok(out as f64)
                }
            }
        }
    }

    fn lu_factor(&mut self, a: DevPtr, n: usize, pivoting: Pivoting) -> DeviceResult<()> {
        if n == 0 {
            self.address(a, 0)?;
            let w = self.lu_work(0)?;
            (w.singular, w.pivoted) = (false, pivoting == Pivoting::Partial);
            return Ok(());
        }
        self.factorize(a, n, pivoting)
    }

    fn lu_logdet(&mut self) -> DeviceResult<Result<f64, NonPositiveMinor>> {
        let w = self.factors(false)?;
        if w.pivoted {
            return Err(DeviceError::Invalid(
                "logdet of a factorization with pivoting".into(),
            ));
        }
        let n = w.n;
        if n == 0 {
            return Ok(Ok(0.0));
        }
        let handle = self.blas()?;
        let w = self.factors(false)?;
        let (lu, diagonal) = (w.lu, w.diagonal);
        let (len, stride) = (int(n)?, int(n + 1)?);
        // SAFETY: the diagonal of the n × n factors, gathered with stride n + 1 into n elements.
        unsafe {
            blas_ok(by_precision!(
                self.precision,
                blas::cublasDcopy_v2 | blas::cublasScopy_v2,
                (handle, len, lu as _, stride, diagonal as _, 1)
            ))?;
        }
        let mut diag = vec![0.0f64; n];
        self.get(diagonal, &mut diag)?;
        // The factors of Aᵀ (the row-major matrix read column-major): the same leading minors.
        Ok(logdet_of_pivots(diag))
    }

    fn lu_inverse(&mut self, out: DevPtr) -> DeviceResult<()> {
        let n = self.factors(true)?.n;
        let to = self.address(out, n * n)?;
        if n == 0 {
            return Ok(());
        }
        if self.current_lu()?.identity.is_none() {
            let eye = self.raw_alloc(n * n * self.bytes())?;
            let mut host = vec![0.0f64; n * n];
            host.iter_mut().step_by(n + 1).for_each(|x| *x = 1.0);
            self.put(eye, &host)?;
            self.current_lu()?.identity = Some(eye);
        }
        let stream = self.cu_stream();
        let eye = self.factors(true)?.identity.expect("just set");
        // SAFETY: n × n elements each.
        unsafe { result::memcpy_dtod_async(to, eye, n * n * self.bytes(), stream) }
            .map_err(cuda)?;
        self.getrs(solver::cublasOperation_t::CUBLAS_OP_N, n, to)
    }

    fn lu_solve(&mut self, b: DevPtr, m: usize, out: DevPtr) -> DeviceResult<()> {
        let n = self.factors(true)?.n;
        let (from, to) = (self.address(b, n * m)?, self.address(out, n * m)?);
        if n == 0 || m == 0 {
            return Ok(());
        }
        let stream = self.cu_stream();
        // The right-hand side, column-major n × m.
        let rhs = if m == 1 {
            // SAFETY: both hold n elements.
            unsafe { result::memcpy_dtod_async(to, from, n * self.bytes(), stream) }
                .map_err(cuda)?;
            to
        } else {
            let tmp = match self.rhs {
                Some((len, ptr)) if len >= n * m => ptr,
                _ => {
                    let ptr = self.raw_alloc(n * m * self.bytes())?;
                    self.rhs = Some((n * m, ptr));
                    ptr
                }
            };
            self.geam_transpose(from, m, n, tmp)?;
            tmp
        };
        self.getrs(solver::cublasOperation_t::CUBLAS_OP_T, m, rhs)?;
        if m > 1 {
            self.geam_transpose(rhs, n, m, to)?;
        }
        Ok(())
    }

    fn synchronize(&mut self) -> DeviceResult<()> {
        // SAFETY: our own stream.
        unsafe { result::stream::synchronize(self.cu_stream()) }.map_err(cuda)
    }
}
