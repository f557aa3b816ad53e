//! A [`Device`] in host memory that checks every call the executor makes as a GPU would take it,
//! so the executor's orchestration is tested without a GPU: a launch must pass as many parameters
//! as the kernel's PTX declares, they are decoded against the launch's operand list (five words
//! per memref descriptor, with the buffer's own size; index words as planned), the grid must
//! cover the node's elements, and a kernel may only read and write the memrefs passed to it. The kernel's computation itself is the interpreter's
//! (the node with its fused arguments); the linear algebra is the interpreter's as well.
//!
//! At [`Precision::F32`] the buffers still hold f64, but every value written to one (uploads,
//! kernel and library results, sums) is rounded to the nearest f32 first: storage in single
//! precision, as on an f32 GPU, with each kernel's arithmetic done in f64 before its result is
//! rounded (a GPU rounds after every operation; the difference is within f32 rounding of the
//! kernel's few operations).

use super::device::{
    ptx_entries, DevBuf, DevPtr, Device, DeviceError, DeviceResult, Gemm, KernelParam, LaunchCall,
};
use super::exec::{eval_stored, ExecError};
use super::plan::{LaunchOperand, Memory, Precision};
use crate::linalg::{self, NonPositiveMinor, Pivoting};
use ndarray::{Array2, ArrayView2};
use std::collections::HashMap;

/// Host memory standing in for a device.
#[derive(Default)]
pub struct ReferenceDevice {
    precision: Precision,
    buffers: Vec<Vec<f64>>,
    /// Loaded modules: the number of parameters each of their kernels declares.
    modules: HashMap<String, HashMap<String, usize>>,
    /// The factors of the last `lu_factor`.
    lu: Option<linalg::Lu>,
    /// Kernel launches, LU factorizations and elements moved between host and device (uploads,
    /// downloads, and the scalars `max_abs` and `dot` return) so far (for tests).
    pub launches: usize,
    pub factorizations: usize,
    pub transferred: usize,
}

fn invalid(m: impl Into<String>) -> DeviceError {
    DeviceError::Invalid(m.into())
}

impl ReferenceDevice {
    pub fn new() -> ReferenceDevice {
        ReferenceDevice::default()
    }

    fn factors(&self) -> DeviceResult<&linalg::Lu> {
        self.lu
            .as_ref()
            .ok_or_else(|| invalid("an LU call before any factorization"))
    }

    fn slice(&self, p: DevPtr, len: usize) -> DeviceResult<&[f64]> {
        self.buffers
            .get(p.buf.0)
            .and_then(|b| b.get(p.offset..p.offset.checked_add(len)?))
            .ok_or_else(|| invalid(format!("{len} elements at {p:?} are outside the buffer")))
    }

    fn slice_mut(&mut self, p: DevPtr, len: usize) -> DeviceResult<&mut [f64]> {
        self.buffers
            .get_mut(p.buf.0)
            .and_then(|b| b.get_mut(p.offset..p.offset.checked_add(len)?))
            .ok_or_else(|| invalid(format!("{len} elements at {p:?} are outside the buffer")))
    }

    fn matrix(&self, p: DevPtr, rows: usize, cols: usize) -> DeviceResult<ArrayView2<'_, f64>> {
        ArrayView2::from_shape((rows, cols), self.slice(p, rows * cols)?)
            .map_err(|e| invalid(e.to_string()))
    }

    fn store(&mut self, out: DevPtr, m: &Array2<f64>) -> DeviceResult<()> {
        let m = m.as_standard_layout();
        self.write(out, m.as_slice().expect("standard layout"))
    }

    /// Writes `data` at `out`, each value rounded to the device's precision.
    fn write(&mut self, out: DevPtr, data: &[f64]) -> DeviceResult<()> {
        let precision = self.precision;
        let to = self.slice_mut(out, data.len())?;
        for (t, &x) in to.iter_mut().zip(data) {
            *t = precision.round(x);
        }
        Ok(())
    }

    /// The buffer each memref operand of a launch was given, checking the descriptors.
    fn decode(&self, call: &LaunchCall<'_>) -> DeviceResult<Vec<(Memory, DevBuf)>> {
        let mut params = call.params.iter();
        let mut next = || {
            params
                .next()
                .copied()
                .ok_or_else(|| invalid("fewer kernel parameters than operands"))
        };
        let mut memrefs = Vec::new();
        for operand in call.operands {
            match *operand {
                LaunchOperand::Index(v) => {
                    if next()? != KernelParam::Word(v as u64) {
                        return Err(invalid(format!("index operand {v} passed wrongly")));
                    }
                }
                LaunchOperand::Memref(memory) => {
                    let (KernelParam::Ptr(allocated), KernelParam::Ptr(aligned)) =
                        (next()?, next()?)
                    else {
                        return Err(invalid("a memref descriptor without its pointers"));
                    };
                    let len = self.buffers.get(allocated.buf.0).map_or(0, Vec::len);
                    let rest = [next()?, next()?, next()?];
                    let expected = [
                        KernelParam::Word(0),
                        KernelParam::Word(len as u64),
                        KernelParam::Word(1),
                    ];
                    if allocated != aligned || allocated.offset != 0 || rest != expected {
                        return Err(invalid(format!(
                            "memref descriptor of {memory:?} is not (p, p, 0, {len}, 1)"
                        )));
                    }
                    memrefs.push((memory, allocated.buf));
                }
            }
        }
        if params.next().is_some() {
            return Err(invalid("more kernel parameters than operands"));
        }
        Ok(memrefs)
    }
}

impl Device for ReferenceDevice {
    fn name(&self) -> String {
        format!(
            "reference device (host memory, interpreter kernels, {})",
            self.precision.name()
        )
    }

    fn set_precision(&mut self, precision: Precision) -> DeviceResult<()> {
        if !self.buffers.is_empty() && precision != self.precision {
            return Err(invalid(
                "the precision changed after buffers were allocated",
            ));
        }
        self.precision = precision;
        Ok(())
    }

    fn alloc(&mut self, len: usize) -> DeviceResult<DevBuf> {
        self.buffers.push(vec![0.0; len]);
        Ok(DevBuf(self.buffers.len() - 1))
    }

    fn upload(&mut self, dst: DevPtr, data: &[f64]) -> DeviceResult<()> {
        self.transferred += data.len();
        self.write(dst, data)
    }

    fn download(&mut self, src: DevPtr, out: &mut [f64]) -> DeviceResult<()> {
        self.transferred += out.len();
        out.copy_from_slice(self.slice(src, out.len())?);
        Ok(())
    }

    fn copy(&mut self, src: DevPtr, dst: DevPtr, len: usize) -> DeviceResult<()> {
        let data = self.slice(src, len)?.to_vec();
        self.write(dst, &data)
    }

    fn load_module(&mut self, name: &str, ptx: &str) -> DeviceResult<()> {
        let entries = ptx_entries(ptx);
        if entries.is_empty() {
            return Err(invalid(format!("module `{name}` has no kernel entry")));
        }
        self.modules.insert(name.to_string(), entries);
        Ok(())
    }

    fn launch(&mut self, call: &LaunchCall<'_>) -> DeviceResult<()> {
        let declared = *self
            .modules
            .get(call.module)
            .ok_or_else(|| invalid(format!("module `{}` was not loaded", call.module)))?
            .get(call.entry)
            .ok_or_else(|| {
                invalid(format!(
                    "module `{}` has no kernel `{}`",
                    call.module, call.entry
                ))
            })?;
        if declared != call.params.len() {
            return Err(invalid(format!(
                "kernel `{}` declares {declared} parameters, the launch passes {}",
                call.entry,
                call.params.len()
            )));
        }
        let threads: u64 = call
            .grid
            .iter()
            .chain(&call.block)
            .map(|&s| u64::from(s))
            .product();
        let numel = call.plan.numel(call.node);
        if threads < numel as u64 {
            return Err(invalid(format!(
                "{threads} threads for {numel} elements of {}",
                call.node
            )));
        }
        let memrefs = self.decode(call)?;
        let passed = |memory: Memory| {
            memrefs
                .iter()
                .find(|m| m.0 == memory)
                .map(|m| m.1)
                .ok_or_else(|| {
                    invalid(format!(
                        "the kernel reads {memory:?}, which it was not given"
                    ))
                })
        };
        let mut read = |memory: Memory, offset: usize, len: usize| {
            let buf = passed(memory)?;
            Ok(self.slice(buf.at(offset), len)?.to_vec())
        };
        let value = eval_stored(call.plan, call.node, &mut read).map_err(|e| match e {
            ExecError::Device(d) => d,
            other => invalid(other.to_string()),
        })?;
        let (memory, offset) = call
            .plan
            .location(call.node)
            .ok_or_else(|| invalid("a kernel for a node that is not stored"))?;
        let out = passed(memory)?.at(offset);
        self.write(out, value.as_slice().expect("standard layout"))?;
        self.launches += 1;
        Ok(())
    }

    fn gemm(&mut self, g: &Gemm) -> DeviceResult<()> {
        let a = if g.trans_a {
            self.matrix(g.a, g.k, g.m)?.reversed_axes()
        } else {
            self.matrix(g.a, g.m, g.k)?
        };
        let b = if g.trans_b {
            self.matrix(g.b, g.n, g.k)?.reversed_axes()
        } else {
            self.matrix(g.b, g.k, g.n)?
        };
        let c = a.dot(&b);
        self.store(g.c, &c)
    }

    fn sum(&mut self, x: DevPtr, len: usize, out: DevPtr) -> DeviceResult<()> {
        let total = self.slice(x, len)?.iter().sum();
        self.write(out, &[total])
    }

    fn max_abs(&mut self, x: DevPtr, len: usize) -> DeviceResult<f64> {
        self.transferred += 1;
        Ok(self
            .slice(x, len)?
            .iter()
            .fold(0.0, |m: f64, v| m.max(v.abs())))
    }

    fn axpy(&mut self, alpha: f64, x: DevPtr, y: DevPtr, len: usize) -> DeviceResult<()> {
        let sum: Vec<f64> = self
            .slice(x, len)?
            .iter()
            .zip(self.slice(y, len)?)
            .map(|(x, y)| y + alpha * x)
            .collect();
        self.write(y, &sum)
    }

    fn scale(&mut self, alpha: f64, x: DevPtr, len: usize) -> DeviceResult<()> {
        let scaled: Vec<f64> = self.slice(x, len)?.iter().map(|v| alpha * v).collect();
        self.write(x, &scaled)
    }

    fn dot(&mut self, x: DevPtr, y: DevPtr, len: usize) -> DeviceResult<f64> {
        self.transferred += 1;
        let (x, y) = (self.slice(x, len)?, self.slice(y, len)?);
        Ok(x.iter().zip(y).map(|(x, y)| x * y).sum())
    }

    fn lu_factor(&mut self, a: DevPtr, n: usize, pivoting: Pivoting) -> DeviceResult<()> {
        self.lu = Some(linalg::Lu::factor(self.slice(a, n * n)?, n, pivoting));
        self.factorizations += 1;
        Ok(())
    }

    fn lu_logdet(&mut self) -> DeviceResult<Result<f64, NonPositiveMinor>> {
        Ok(self.factors()?.logdet())
    }

    fn lu_inverse(&mut self, out: DevPtr) -> DeviceResult<()> {
        let n = self.factors()?.size();
        let mut inv = vec![0.0; n * n];
        self.factors()?
            .inverse_into(&mut inv)
            .map_err(|_| DeviceError::Singular)?;
        self.write(out, &inv)
    }

    fn lu_solve(&mut self, b: DevPtr, m: usize, out: DevPtr) -> DeviceResult<()> {
        let n = self.factors()?.size();
        let mut x = self.slice(b, n * m)?.to_vec();
        self.factors()?
            .solve_in_place(&mut x, m)
            .map_err(|_| DeviceError::Singular)?;
        self.write(out, &x)
    }

    fn synchronize(&mut self) -> DeviceResult<()> {
        Ok(())
    }
}
