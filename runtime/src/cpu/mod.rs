//! Native CPU backend: compiles root nodes of a [`Program`], for given dim sizes, into one
//! Cranelift function, and runs it.
//!
//! # ABI of the compiled function
//! ```text
//! extern "C" fn(inputs: *const *const f64, outputs: *const *mut f64, scratch: *mut f64) -> i32
//! ```
//! - `inputs[k]`: row-major data of input `InputId(k)` (every input of the program, in order;
//!   inputs the roots do not read may be null);
//! - `outputs[r]`: row-major array receiving root `r` (its element count under the dims);
//! - `scratch`: the planned scratch length plus [`INDEX_FAULT_LEN`] f64, owned by [`CompiledFn`],
//!   allocated once; every intermediate lives at an offset planned at compile time, and a failed
//!   index check writes its record (node id, index, axis length) after them;
//! - returns 0, the status of the first failing kernel (see `kernels`) or [`BAD_INDEX`].
//!
//! # Lowering
//! Every op of the IR is compiled, the adjoint ops of reverse mode included, except `argmin`
//! (lower-level problems) and `for` loop indices, which are reported as
//! [`CpuError::Unsupported`].
//!
//! The index of each `select` and `scatter` is checked by the interpreter's rule (an integer in
//! `0..len`) once before the loops of the node that computes it (the select or scatter itself, or
//! the consumer it is fused into), and not at all when it is a constant or dim size in range. A
//! failed check records the node, the index and the axis length and returns [`BAD_INDEX`], which
//! [`CompiledFn::call`] reports as [`CpuError::BadIndex`] with the interpreter's error (E0405 or
//! E0406).
//!
//! Elementwise ops (and index-remapping views: broadcast, transpose, slice, select, eye, diag,
//! diagonal, and the adjoints expand, pad and scatter) are fused into the loop of their consumer
//! when it is their only consumer and fusing recomputes nothing; reductions (sum, max,
//! log-sum-exp, sum-to, trace, card), `stack` and the argmax mask (first maximum, NaN skipped, as
//! the interpreter) run as loops over their fused argument expression. Matrix kernels (matmul —
//! with transposed operands folded into flags —, logdet, solve, inv, expm and matpow and their
//! first and second Fréchet derivatives, sort, topk, the sort adjoints scatter/gather, nuclear norm) are calls into
//! `kernels`. Transcendental functions are calls to the scalar helpers there.
//!
//! The innermost loops of elementwise ops and reductions run over `f64x2` vectors where every
//! buffer they read is contiguous along the loop or one element for the whole vector and no
//! runtime function is called per element, with a scalar step for a remaining element (the rule
//! is documented in `lower.rs`); sums then add the partial sums of the two lanes, which changes
//! their summation order from the interpreter's.

mod kernels;
mod lower;
pub(crate) mod plan;

pub use kernels::{symbols, Symbol, BAD_INDEX, BAD_TOPK, LOGDET_DOMAIN, OK, SINGULAR, SVD_FAILED};

use crate::interp::{self, EvalError};
use cranelift_codegen::ir::types::I32;
use cranelift_codegen::ir::{AbiParam, UserFuncName};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module};
use optc_compiler::codes::CodeInfo;
use optc_compiler::fusion::{check_arguments, ArgumentError, PlanError};
use optc_compiler::ir::{NodeId, Program};
use std::fmt;

/// Code of a function a native backend cannot compile (`emit --stage clif|mlir|ptx`,
/// `build --target gpu`).
pub const NOT_COMPILABLE: &str = "E0390";

/// Catalogue entries of native code generation (E0390–E0394).
pub const NATIVE_CODES: &[CodeInfo] = &[CodeInfo {
    code: NOT_COMPILABLE,
    title: "a native backend cannot compile this function",
    explanation: "`optc emit --stage clif|mlir|ptx` and `optc build --target gpu` compile the model's functions to native code, and each backend lowers only some operations: the Cranelift and MLIR backends have no `argmin` (a lower-level problem is solved by its own solver when the model runs), the PTX path refuses math functions it would need libdevice for, and a GPU plan has no functions for a bilevel model. The message names what was refused. `optc run`, `eval` and `bench` still work on the CPU: what the native backend cannot compile runs on the interpreter.",
}];

/// f64 after the planned scratch where a failed index check records the node id, the index and
/// the axis length.
pub const INDEX_FAULT_LEN: usize = 3;

/// Why a program cannot be compiled or a compiled function cannot run.
#[derive(Clone, Debug, PartialEq)]
pub enum CpuError {
    /// An op the backend does not compile.
    Unsupported(&'static str),
    /// The function cannot be planned at these dims (a bad root, a negative size, a range
    /// outside its axis, not one size per dim).
    Plan(PlanError),
    /// Cranelift rejected the function.
    Codegen(String),
    /// A bug of the backend itself.
    Internal(&'static str),
    /// Input or output arrays that do not fit the function.
    Arguments(ArgumentError),
    /// `logdet` of a matrix with a leading principal minor ≤ 0 (outside its domain).
    LogdetDomain,
    /// `solve` or `inv` of a singular matrix.
    Singular,
    /// The SVD of `nuclear_norm` did not converge.
    SvdFailed,
    /// `topk` with k larger than the vector.
    BadTopK,
    /// An index of `select` or `scatter` that is not an integer inside its axis: the
    /// interpreter's error for that node.
    BadIndex(EvalError),
}

impl fmt::Display for CpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpuError::Unsupported(what) => write!(f, "the CPU backend does not support {what}"),
            CpuError::Plan(e) => write!(f, "{e}"),
            CpuError::Codegen(msg) => write!(f, "code generation failed: {msg}"),
            CpuError::Internal(msg) => write!(f, "internal error in the CPU backend: {msg}"),
            CpuError::Arguments(e) => write!(f, "{e}"),
            CpuError::LogdetDomain => write!(
                f,
                "logdet of a matrix outside its domain (a leading principal minor ≤ 0)"
            ),
            CpuError::Singular => write!(f, "solve or inv of a singular matrix"),
            CpuError::SvdFailed => write!(f, "the SVD of nuclear_norm did not converge"),
            CpuError::BadTopK => write!(f, "topk: k exceeds the vector length"),
            CpuError::BadIndex(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CpuError {}

type Entry = unsafe extern "C" fn(*const *const f64, *const *mut f64, *mut f64) -> i32;

/// A module with the lowered function defined in it (not yet finalized), and its CLIF text.
struct Built {
    module: JITModule,
    func: cranelift_module::FuncId,
    text: String,
    plan: plan::Plan,
}

fn codegen_error(e: impl fmt::Display) -> CpuError {
    CpuError::Codegen(e.to_string())
}

fn build(program: &Program, roots: &[NodeId], dims: &[u64]) -> Result<Built, CpuError> {
    let plan = plan::plan(program, roots, dims)?;
    let mut flags = settings::builder();
    for (name, value) in [
        ("use_colocated_libcalls", "false"),
        ("is_pic", "false"),
        ("opt_level", "speed"),
    ] {
        flags.set(name, value).map_err(codegen_error)?;
    }
    let isa = cranelift_native::builder()
        .map_err(codegen_error)?
        .finish(settings::Flags::new(flags))
        .map_err(codegen_error)?;
    let mut jit = JITBuilder::with_isa(isa, default_libcall_names());
    for symbol in kernels::symbols() {
        jit.symbol(symbol.name, symbol.address);
    }
    let mut module = JITModule::new(jit);
    let ptr = module.target_config().pointer_type();
    let mut ctx = module.make_context();
    for _ in 0..3 {
        ctx.func.signature.params.push(AbiParam::new(ptr));
    }
    ctx.func.signature.returns.push(AbiParam::new(I32));
    let func = module
        .declare_function("optc_compiled", Linkage::Export, &ctx.func.signature)
        .map_err(codegen_error)?;
    ctx.func.name = UserFuncName::user(0, func.as_u32());
    let mut fctx = FunctionBuilderContext::new();
    let builder = FunctionBuilder::new(&mut ctx.func, &mut fctx);
    lower::Lower::run(program, &plan, dims, &mut module, builder)?;
    let text = ctx.func.display().to_string();
    module
        .define_function(func, &mut ctx)
        .map_err(codegen_error)?;
    module.clear_context(&mut ctx);
    Ok(Built {
        module,
        func,
        text,
        plan,
    })
}

/// The CLIF of the function compiled for `roots` under `dims` (before Cranelift's optimizations).
pub fn clif_text(program: &Program, roots: &[NodeId], dims: &[u64]) -> Result<String, CpuError> {
    let built = build(program, roots, dims)?;
    // SAFETY: nothing of the module was finalized or handed out.
    unsafe { built.module.free_memory() };
    Ok(built.text)
}

/// A natively compiled evaluation of some roots under fixed dims, with its scratch arena.
pub struct CompiledFn {
    module: Option<JITModule>,
    entry: Entry,
    scratch: Vec<f64>,
    /// Offset of the index fault record in `scratch`.
    fault: usize,
    /// Element count of each input the function reads (by `InputId`), `None` when unread.
    input_lens: Vec<Option<usize>>,
    output_shapes: Vec<Vec<usize>>,
    input_ptrs: Vec<*const f64>,
    output_ptrs: Vec<*mut f64>,
}

impl CompiledFn {
    pub fn compile(program: &Program, roots: &[NodeId], dims: &[u64]) -> Result<Self, CpuError> {
        let mut built = build(program, roots, dims)?;
        built.module.finalize_definitions().map_err(codegen_error)?;
        let code = built.module.get_finalized_function(built.func);
        // SAFETY: the function was declared with exactly this signature and the host call conv.
        let entry: Entry = unsafe { std::mem::transmute::<*const u8, Entry>(code) };
        let plan = &built.plan;
        let input_lens = program
            .input_nodes
            .iter()
            .map(|&n| plan.is_buffered(n).then(|| plan.numel(n)))
            .collect();
        let output_shapes = roots.iter().map(|&r| plan.shape(r).to_vec()).collect();
        Ok(CompiledFn {
            entry,
            scratch: vec![0.0; plan.scratch_len + INDEX_FAULT_LEN],
            fault: plan.scratch_len,
            input_lens,
            output_shapes,
            input_ptrs: Vec::with_capacity(program.inputs.len()),
            output_ptrs: Vec::with_capacity(roots.len()),
            module: Some(built.module),
        })
    }

    /// The concrete shape of each root.
    pub fn output_shapes(&self) -> &[Vec<usize>] {
        &self.output_shapes
    }

    /// Length of the scratch arena (intermediates and the index fault record), in f64.
    pub fn scratch_len(&self) -> usize {
        self.scratch.len()
    }

    /// Evaluates the roots: `inputs[k]` is input `InputId(k)` (row-major; unread inputs may be
    /// empty), `outputs[r]` receives root `r`.
    pub fn call(&mut self, inputs: &[&[f64]], outputs: &mut [&mut [f64]]) -> Result<(), CpuError> {
        check_arguments(&self.input_lens, &self.output_shapes, inputs, outputs)
            .map_err(CpuError::Arguments)?;
        self.input_ptrs.clear();
        self.input_ptrs.extend(inputs.iter().map(|d| d.as_ptr()));
        self.output_ptrs.clear();
        self.output_ptrs
            .extend(outputs.iter_mut().map(|d| d.as_mut_ptr()));
        // SAFETY: every array the function reads or writes was checked to have the planned
        // length; the scratch has the planned length; outputs are distinct `&mut` slices.
        let status = unsafe {
            (self.entry)(
                self.input_ptrs.as_ptr(),
                self.output_ptrs.as_ptr(),
                self.scratch.as_mut_ptr(),
            )
        };
        match status {
            OK => Ok(()),
            LOGDET_DOMAIN => Err(CpuError::LogdetDomain),
            SVD_FAILED => Err(CpuError::SvdFailed),
            SINGULAR => Err(CpuError::Singular),
            BAD_TOPK => Err(CpuError::BadTopK),
            BAD_INDEX => Err(self.index_error()),
            _ => Err(CpuError::Internal("unknown kernel status")),
        }
    }

    /// The interpreter's error for the index check that failed, read from the fault record.
    fn index_error(&self) -> CpuError {
        let record = &self.scratch[self.fault..];
        let (node, index, len) = (NodeId(record[0] as u32), record[1], record[2] as usize);
        match interp::position(node, index, len) {
            Err(e) => CpuError::BadIndex(e),
            Ok(_) => CpuError::Internal("an index check failed on a valid index"),
        }
    }
}

impl Drop for CompiledFn {
    fn drop(&mut self) {
        if let Some(module) = self.module.take() {
            // SAFETY: `entry` points into this module and dies with `self`.
            unsafe { module.free_memory() };
        }
    }
}
