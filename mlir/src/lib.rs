//! MLIR backend of optc: lowers root nodes of a [`Program`], for given dim sizes, to one MLIR
//! function (func, arith, math, scf, memref, cf dialects) and runs it on the CPU through MLIR's
//! `ExecutionEngine` (built with melior against LLVM/MLIR 22): [`mlir_text`], [`MlirCpuFn`].
//! [`ptx_text`] outlines its pointwise loops to GPU kernels and emits their PTX for sm_90.
//!
//! # The function
//! ```text
//! func.func @optc_main(%in0 .. %in{I-1}, %out0 .. %out{R-1}, %scratch : memref<?xf64>) -> i32
//! ```
//! - `%ink`: row-major data of input `InputId(k)` (every input of the program, in order);
//! - `%outr`: row-major array receiving root `r`;
//! - `%scratch`: the intermediates, at offsets planned at compile time, then [`INDEX_FAULT_LEN`]
//!   f64 where a failed index check records the node id, the index and the axis length;
//! - returns 0, the nonzero status of the first failing kernel, or [`BAD_INDEX`] when the index
//!   of a `select` is not an integer inside its axis (the interpreter's rule, checked once before
//!   the loops that read it; see `emit`), which [`MlirCpuFn::call`] reports as
//!   [`MlirError::BadIndex`]. GPU kernels cannot return a status: there an invalid index gives
//!   NaN.
//!
//! Fusion and memory planning are the Cranelift backend's (`optc_compiler::fusion`; see
//! `plan`). Matrix kernels (matmul, logdet, solve, inv, both from one LU, expm, sort, topk,
//! nuclear norm) are calls to external C functions whose addresses the caller gives
//! ([`emit::KERNELS`] lists names and signatures; the runtime's table is
//! `optc_runtime::cpu::kernels::symbols()`). Transcendental functions become libm calls on the
//! CPU; GPU kernels compute exp, log, log1p, tanh and pow as f64 arithmetic (`math`), and
//! constant integer powers are multiplications on both.

mod emit;
mod gpu;
mod math;
mod plan;

pub use emit::{Kernel, Precision, BAD_INDEX, ENTRY, INDEX_FAULT_LEN, KERNELS};
pub use gpu::{gpu_function, GpuFunction};
pub use plan::{Plan, Storage};

use emit::Target;
use optc_compiler::fusion::{check_arguments, ArgumentError, PlanError};

use melior::dialect::DialectRegistry;
use melior::ir::attribute::{ArrayAttribute, StringAttribute};
use melior::ir::block::BlockLike;
use melior::ir::operation::{OperationLike, OperationRef, WalkOrder, WalkResult};
use melior::ir::{Attribute, AttributeLike, Module, RegionLike};
use melior::pass::PassManager;
use melior::utility::{
    parse_pass_pipeline, register_all_dialects, register_all_llvm_translations, register_all_passes,
};
use melior::Context;
use melior::ExecutionEngine;
use melior::StringRef;
use mlir_sys::{
    mlirGPUObjectAttrGetObject, mlirOperationDestroy, mlirOperationMoveAfter,
    mlirOperationRemoveFromParent, mlirOperationSetAttributeByName,
};
use optc_compiler::ir::{NodeId, Program};
use std::cell::RefCell;
use std::fmt::{self, Write};
use std::rc::Rc;

/// Lowers func/arith/math/scf/memref/cf to the LLVM dialect; transcendental functions to libm.
pub const CPU_PIPELINE: &str = "builtin.module(canonicalize,cse,convert-math-to-libm,\
convert-scf-to-cf,convert-math-to-llvm,expand-strided-metadata,finalize-memref-to-llvm,\
convert-arith-to-llvm,convert-index-to-llvm,convert-cf-to-llvm,convert-func-to-llvm,\
reconcile-unrealized-casts)";

/// Outlines the `scf.parallel` loops to GPU kernels (256 threads a block), each in its own
/// `gpu.module`, which `merge_gpu_modules` then gathers into one.
pub const OUTLINE_PIPELINE: &str = "builtin.module(func.func(scf-parallel-loop-tiling{\
parallel-loop-tile-sizes=256 no-min-max-bounds=true},gpu-map-parallel-loops,\
convert-parallel-loops-to-gpu),gpu-kernel-outlining)";

/// Lowers the `gpu.module` to PTX for sm_90 (it becomes a `gpu.binary` holding its PTX), then
/// canonicalizes the host function (which folds the operands of its kernel launches to
/// constants).
pub const PTX_PIPELINE: &str = "builtin.module(nvvm-attach-target{chip=sm_90 features=+ptx80 \
O=3},gpu.module(lower-affine,convert-scf-to-cf,convert-gpu-to-nvvm,canonicalize,cse,\
reconcile-unrealized-casts),gpu-module-to-binary{format=isa},func.func(canonicalize))";

/// Why a program cannot be lowered or a compiled function cannot run.
#[derive(Clone, Debug, PartialEq)]
pub enum MlirError {
    /// An op the backend does not lower.
    Unsupported(&'static str),
    /// The function cannot be planned at these dims (a bad root, a negative size, a range
    /// outside its axis, not one size per dim).
    Plan(PlanError),
    /// A kernel the function calls is missing from the symbol table given to `compile`.
    MissingSymbol(&'static str),
    /// MLIR rejected the module, a pass failed, or the function could not be invoked.
    Mlir(String),
    /// A bug of the backend itself.
    Internal(&'static str),
    /// Input or output arrays that do not fit the function.
    Arguments(ArgumentError),
    /// A kernel returned this nonzero status (the runtime's kernel error codes).
    KernelStatus(i32),
    /// The index of `select` node `node` is not an integer in `0..len` (the fault record; the
    /// interpreter reports it as E0405 or E0406).
    BadIndex {
        node: NodeId,
        index: f64,
        len: usize,
    },
}

impl fmt::Display for MlirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MlirError::Unsupported(what) => write!(f, "the MLIR backend does not support {what}"),
            MlirError::Plan(e) => write!(f, "{e}"),
            MlirError::MissingSymbol(name) => {
                write!(f, "no address was given for the kernel `{name}`")
            }
            MlirError::Mlir(msg) => write!(f, "MLIR failed: {msg}"),
            MlirError::Internal(msg) => write!(f, "internal error in the MLIR backend: {msg}"),
            MlirError::Arguments(e) => write!(f, "{e}"),
            MlirError::KernelStatus(status) => write!(f, "a kernel failed with status {status}"),
            MlirError::BadIndex { node, index, len } => {
                write!(f, "index {index} at {node} is not an integer in 0..{len}")
            }
        }
    }
}

impl std::error::Error for MlirError {}

/// The MLIR text of the function computing `roots` under `dims` (before any pass).
pub fn mlir_text(program: &Program, roots: &[NodeId], dims: &[u64]) -> Result<String, MlirError> {
    let plan = plan::plan(program, roots, dims, false)?;
    Ok(emit::module_text(program, &plan, dims, Target::Cpu)?.0)
}

/// The PTX (sm_90, element type `precision`) of the GPU kernels of the function computing `roots`
/// under `dims`, all in one PTX module introduced by a `// gpu.module @name` line: a kernel per
/// buffered pointwise node (a fused elementwise/view expression, a thread per element) and per
/// reduction along lines (a sum or maximum along an axis, a `sum_to`, a trace: a thread per
/// output element folding its line).
///
/// The other reductions and the matrix kernels stay in the host function, which this does not
/// lower. Exp, log, tanh, pow and their kin are f64 arithmetic in kernels (`math`): NVPTX would
/// call libdevice for them, whose bitcode is not available here.
pub fn ptx_text(
    program: &Program,
    roots: &[NodeId],
    dims: &[u64],
    precision: Precision,
) -> Result<String, MlirError> {
    let plan = plan::plan(program, roots, dims, true)?;
    let (text, _) = emit::module_text(program, &plan, dims, Target::Gpu(precision))?;
    let context = context();
    let module = lower_to_ptx(&context, &text)?;
    let mut ptx = String::new();
    for (name, object) in ptx_modules(&module)? {
        let _ = writeln!(ptx, "// gpu.module @{name}");
        ptx.push_str(&object);
    }
    Ok(ptx)
}

/// Runs [`OUTLINE_PIPELINE`], [`merge_gpu_modules`] and [`PTX_PIPELINE`] on `text`.
fn lower_to_ptx<'c>(context: &'c Context, text: &str) -> Result<Module<'c>, MlirError> {
    parse_and_lower(
        context,
        text,
        &[OUTLINE_PIPELINE, PTX_PIPELINE],
        &|module| merge_gpu_modules(context, module),
    )
}

/// Moves every outlined kernel into the first `gpu.module`, renamed after the module it came from
/// (kernel names are unique that way), points its launches there and erases the emptied modules:
/// NVPTX then compiles one module, where each module costs its own target set-up (about 6 ms a
/// kernel).
fn merge_gpu_modules(context: &Context, module: &Module) -> Result<(), MlirError> {
    let internal = |what| MlirError::Internal(what);
    let name_of = |op: &OperationRef| -> Result<String, MlirError> {
        let name = op
            .attribute("sym_name")
            .map_err(|e| MlirError::Mlir(e.to_string()))?;
        Ok(name.to_string().trim_matches('"').to_string())
    };
    let mut gpu_modules = Vec::new();
    let mut next = module.body().first_operation();
    while let Some(op) = next {
        if op.name().as_string_ref().as_str() == Ok("gpu.module") {
            gpu_modules.push(op);
        }
        next = op.next_in_block();
    }
    let Some((first, rest)) = gpu_modules.split_first() else {
        return Ok(());
    };
    let target = name_of(first)?;
    let body = first
        .region(0)
        .ok()
        .and_then(|r| r.first_block())
        .ok_or(internal("a gpu.module without a body"))?;
    let mut last = body
        .first_operation()
        .ok_or(internal("an empty gpu.module"))?;
    while let Some(op) = last.next_in_block() {
        last = op;
    }
    let mut moved = std::collections::HashMap::new();
    for gpu_module in rest {
        let name = name_of(gpu_module)?;
        let kernel = gpu_module
            .region(0)
            .ok()
            .and_then(|r| r.first_block())
            .and_then(|b| b.first_operation())
            .filter(|op| op.name().as_string_ref().as_str() == Ok("gpu.func"))
            .ok_or(internal("an outlined module without its kernel"))?;
        let entry = name_of(&kernel)?;
        let symbol = StringAttribute::new(context, &name);
        // SAFETY: both operations belong to `module`; the kernel moves into the first module's
        // body (after its last operation), and the module it leaves is then empty and erased.
        unsafe {
            mlirOperationSetAttributeByName(
                kernel.to_raw(),
                StringRef::new("sym_name").to_raw(),
                symbol.to_raw(),
            );
            mlirOperationMoveAfter(kernel.to_raw(), last.to_raw());
            mlirOperationRemoveFromParent(gpu_module.to_raw());
            mlirOperationDestroy(gpu_module.to_raw());
        }
        last = kernel;
        moved.insert(format!("@{name}::@{entry}"), format!("@{target}::@{name}"));
    }
    let mut relinked = Ok(());
    module.as_operation().walk(WalkOrder::PreOrder, |op| {
        if op.name().as_string_ref().as_str() == Ok("gpu.launch_func") {
            let kernel = op.attribute("kernel").map(|a| a.to_string());
            if let Some(new) = kernel.ok().and_then(|k| moved.get(&k)) {
                match Attribute::parse(context, new) {
                    // SAFETY: an attribute of the context set on an operation of the module.
                    Some(a) => unsafe {
                        mlirOperationSetAttributeByName(
                            op.to_raw(),
                            StringRef::new("kernel").to_raw(),
                            a.to_raw(),
                        )
                    },
                    None => relinked = Err(internal("a kernel symbol that does not parse")),
                }
            }
        }
        WalkResult::Advance
    });
    relinked
}

/// The PTX of each `gpu.binary` of a lowered module, with the binary's name; refuses PTX that
/// calls external functions (libdevice).
fn ptx_modules(module: &Module) -> Result<Vec<(String, String)>, MlirError> {
    let mut modules = Vec::new();
    let mut next = module.body().first_operation();
    while let Some(op) = next {
        if op.name().as_string_ref().as_str() == Ok("gpu.binary") {
            let name = op
                .attribute("sym_name")
                .map(|a| a.to_string())
                .unwrap_or_default();
            let objects = op
                .attribute("objects")
                .and_then(ArrayAttribute::try_from)
                .and_then(|objects| objects.element(0))
                .map_err(|e| MlirError::Mlir(e.to_string()))?;
            // SAFETY: `objects` of a `gpu.binary` holds `#gpu.object` attributes; the string
            // lives as long as the context.
            let object =
                unsafe { StringRef::from_raw(mlirGPUObjectAttrGetObject(objects.to_raw())) };
            let object = object
                .as_str()
                .map_err(|_| MlirError::Internal("PTX that is not UTF-8"))?;
            if object.contains(".extern .func") {
                return Err(MlirError::Unsupported(
                    "functions of libdevice in GPU kernels (not available)",
                ));
            }
            modules.push((name.trim_matches('"').to_string(), object.to_string()));
        }
        next = op.next_in_block();
    }
    Ok(modules)
}

/// A context with every dialect, pass and LLVM translation registered; single-threaded (the
/// modules are small, and each compiled function keeps its context). Dialects load as the parser
/// and the passes need them: loading all of them up front took 15 ms, most of the fixed cost of a
/// lowering.
fn context() -> Context {
    let registry = DialectRegistry::new();
    register_all_dialects(&registry);
    let context = Context::new_with_registry(&registry, false);
    register_all_llvm_translations(&context);
    register_all_passes();
    context
}

/// Parses `text` and runs each of `pipelines` on it, `between` after each but the last; errors
/// carry MLIR's diagnostics.
fn parse_and_lower<'c>(
    context: &'c Context,
    text: &str,
    pipelines: &[&str],
    between: &dyn Fn(&Module<'c>) -> Result<(), MlirError>,
) -> Result<Module<'c>, MlirError> {
    let messages = Rc::new(RefCell::new(Vec::<String>::new()));
    let sink = messages.clone();
    let handler = context.attach_diagnostic_handler(move |diagnostic| {
        sink.borrow_mut().push(diagnostic.to_string());
        true
    });
    let failure = |what: &str| {
        let detail = messages.borrow().join("; ");
        MlirError::Mlir(format!("{what}: {detail}"))
    };
    let result = (|| {
        let mut module = Module::parse(context, text).ok_or_else(|| failure("parse"))?;
        for (k, pipeline) in pipelines.iter().enumerate() {
            if k > 0 {
                between(&module)?;
            }
            let manager = PassManager::new(context);
            parse_pass_pipeline(manager.as_operation_pass_manager(), pipeline)
                .map_err(|e| MlirError::Mlir(e.to_string()))?;
            manager.run(&mut module).map_err(|_| failure("lowering"))?;
        }
        Ok(module)
    })();
    context.detach_diagnostic_handler(handler);
    result
}

/// A rank-1 memref descriptor, as the C interface of the function takes it.
#[repr(C)]
struct MemRef1 {
    allocated: *mut f64,
    aligned: *mut f64,
    offset: i64,
    size: i64,
    stride: i64,
}

impl MemRef1 {
    fn new(ptr: *mut f64, len: usize) -> MemRef1 {
        MemRef1 {
            allocated: ptr,
            aligned: ptr,
            offset: 0,
            size: len as i64,
            stride: 1,
        }
    }
}

/// A function compiled through MLIR for some roots under fixed dims, with its scratch array.
pub struct MlirCpuFn {
    // Declared before the context: dropped first.
    engine: ExecutionEngine,
    _context: Context,
    /// The intermediates, then the index fault record (at `fault`).
    scratch: Vec<f64>,
    fault: usize,
    /// Element count of each input the function reads (by `InputId`), `None` when unread.
    input_lens: Vec<Option<usize>>,
    output_shapes: Vec<Vec<usize>>,
}

impl MlirCpuFn {
    /// Lowers, optimizes and JIT-compiles `roots` under `dims`. `symbols` gives the address of each
    /// kernel by name (see [`KERNELS`]); only the kernels the function calls must be present.
    pub fn compile(
        program: &Program,
        roots: &[NodeId],
        dims: &[u64],
        symbols: &[(&str, *const u8)],
    ) -> Result<Self, MlirError> {
        Self::compile_for(Target::Cpu, program, roots, dims, symbols)
    }

    /// [`MlirCpuFn::compile`] with exp, log, log1p, tanh and pow computed as in GPU kernels (f64
    /// arithmetic instead of libm), so that tests check that arithmetic on the host.
    pub fn compile_with_kernel_math(
        program: &Program,
        roots: &[NodeId],
        dims: &[u64],
        symbols: &[(&str, *const u8)],
    ) -> Result<Self, MlirError> {
        Self::compile_for(Target::CpuKernelMath, program, roots, dims, symbols)
    }

    fn compile_for(
        target: Target,
        program: &Program,
        roots: &[NodeId],
        dims: &[u64],
        symbols: &[(&str, *const u8)],
    ) -> Result<Self, MlirError> {
        let plan = plan::plan(program, roots, dims, false)?;
        let (text, kernels) = emit::module_text(program, &plan, dims, target)?;
        let mut addresses = Vec::with_capacity(kernels.len());
        for name in kernels {
            let address = symbols
                .iter()
                .find(|s| s.0 == name)
                .map(|s| s.1)
                .ok_or(MlirError::MissingSymbol(name))?;
            addresses.push((name, address));
        }
        let context = context();
        // The engine translates the module to LLVM IR and owns that copy.
        let engine = {
            let module = parse_and_lower(&context, &text, &[CPU_PIPELINE], &|_| Ok(()))?;
            ExecutionEngine::new(&module, 2, &[], false, false)
        };
        for (name, address) in addresses {
            // SAFETY: the caller gives the address of a C function of the declared signature.
            unsafe { engine.register_symbol(name, address as *mut ()) };
        }
        let input_lens = program
            .input_nodes
            .iter()
            .map(|&n| plan.is_buffered(n).then(|| plan.numel(n)))
            .collect();
        let output_shapes = roots.iter().map(|&r| plan.shape(r).to_vec()).collect();
        Ok(MlirCpuFn {
            engine,
            _context: context,
            scratch: vec![0.0; plan.scratch_len + INDEX_FAULT_LEN],
            fault: plan.scratch_len,
            input_lens,
            output_shapes,
        })
    }

    /// The concrete shape of each root.
    pub fn output_shapes(&self) -> &[Vec<usize>] {
        &self.output_shapes
    }

    /// Evaluates the roots: `inputs[k]` is input `InputId(k)` (row-major; unread inputs may be
    /// empty), `outputs[r]` receives root `r`.
    pub fn call(&mut self, inputs: &[&[f64]], outputs: &mut [&mut [f64]]) -> Result<(), MlirError> {
        check_arguments(&self.input_lens, &self.output_shapes, inputs, outputs)
            .map_err(MlirError::Arguments)?;
        // The function only reads inputs through `memref.load`: casting away `const` is sound.
        let mut descriptors: Vec<MemRef1> = inputs
            .iter()
            .map(|d| MemRef1::new(d.as_ptr() as *mut f64, d.len()))
            .chain(
                outputs
                    .iter_mut()
                    .map(|d| MemRef1::new(d.as_mut_ptr(), d.len())),
            )
            .collect();
        descriptors.push(MemRef1::new(self.scratch.as_mut_ptr(), self.scratch.len()));
        let mut pointers: Vec<*mut MemRef1> =
            descriptors.iter_mut().map(|d| d as *mut MemRef1).collect();
        let mut status: i32 = -1;
        let mut arguments: Vec<*mut ()> = pointers
            .iter_mut()
            .map(|p| p as *mut *mut MemRef1 as *mut ())
            .collect();
        arguments.push(&mut status as *mut i32 as *mut ());
        // SAFETY: the packed C interface takes one pointer per argument (here: to a pointer to a
        // descriptor of an array whose length was checked against the plan) and one to the i32
        // result; outputs are distinct `&mut` slices.
        unsafe {
            self.engine
                .invoke_packed(ENTRY, &mut arguments)
                .map_err(|e| MlirError::Mlir(e.to_string()))?;
        }
        match status {
            0 => Ok(()),
            BAD_INDEX => {
                let record = &self.scratch[self.fault..];
                Err(MlirError::BadIndex {
                    node: NodeId(record[0] as u32),
                    index: record[1],
                    len: record[2] as usize,
                })
            }
            s => Err(MlirError::KernelStatus(s)),
        }
    }
}
