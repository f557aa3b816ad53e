//! What a GPU runtime needs to run a function without MLIR: the PTX of each outlined kernel and,
//! for each `gpu.launch_func` of the host function (in execution order), the kernel it launches,
//! its grid and block sizes and its operands (index constants, or the function's memref
//! arguments). Read from the module after [`crate::PTX_PIPELINE`], whose canonicalization folds
//! the launch operands to constants.

use crate::plan::{self, Plan};
use crate::{emit, lower_to_ptx, MlirError, Precision};
use melior::ir::attribute::IntegerAttribute;
use melior::ir::block::BlockArgument;
use melior::ir::operation::{OperationLike, OperationResult, WalkOrder, WalkResult};
use melior::ir::{OperationRef, ValueLike};
use optc_compiler::ir::{NodeId, Program};
pub use optc_compiler::launch::{Launch, LaunchOperand, Memory};

/// The GPU form of a function: its plan, the PTX of each kernel module (name, text) and the
/// launches in execution order.
pub struct GpuFunction {
    pub plan: Plan,
    pub kernels: Vec<(String, String)>,
    pub launches: Vec<Launch>,
}

/// Lowers `roots` under `dims` to GPU kernels over `precision` buffers and records how the host
/// function launches them.
pub fn gpu_function(
    program: &Program,
    roots: &[NodeId],
    dims: &[u64],
    precision: Precision,
) -> Result<GpuFunction, MlirError> {
    let plan = plan::plan(program, roots, dims, true)?;
    let (text, _) = emit::module_text(program, &plan, dims, emit::Target::Gpu(precision))?;
    let context = crate::context();
    let module = lower_to_ptx(&context, &text)?;
    let kernels = crate::ptx_modules(&module)?;
    let inputs = program.inputs.len();
    let found = std::cell::RefCell::new(Vec::<Result<Launch, MlirError>>::new());
    module.as_operation().walk(WalkOrder::PreOrder, |op| {
        if op.name().as_string_ref().as_str() == Ok("gpu.launch_func") {
            found
                .borrow_mut()
                .push(read_launch(&op, inputs, plan.outputs));
        }
        WalkResult::Advance
    });
    let found: Vec<Launch> = found.into_inner().into_iter().collect::<Result<_, _>>()?;
    // Each outlined node is one launch, in schedule order.
    let launched: Vec<NodeId> = plan
        .schedule
        .iter()
        .copied()
        .filter(|&n| emit::outlined(program, &plan, n))
        .collect();
    if launched.len() != found.len() {
        return Err(MlirError::Internal(
            "the host function launches a different number of kernels than the plan outlines",
        ));
    }
    let launches = found
        .into_iter()
        .zip(launched)
        .map(|(launch, node)| Launch { node, ..launch })
        .collect();
    Ok(GpuFunction {
        plan,
        kernels,
        launches,
    })
}

/// Reads one `gpu.launch_func` (without async dependencies, cluster sizes or dynamic shared
/// memory: operands are grid x/y/z, block x/y/z, then the kernel operands), whose function has
/// `inputs` input and `outputs` output memrefs before its scratch array.
fn read_launch(op: &OperationRef, inputs: usize, outputs: usize) -> Result<Launch, MlirError> {
    let kernel = op
        .attribute("kernel")
        .map_err(|e| MlirError::Mlir(e.to_string()))?
        .to_string();
    let (module, entry) = kernel
        .split_once("::")
        .map(|(m, e)| (m.trim_start_matches('@'), e.trim_start_matches('@')))
        .ok_or(MlirError::Internal("a kernel symbol without a module"))?;
    let mut operands = Vec::with_capacity(op.operand_count());
    for value in op.operands() {
        // Asked first: melior's failed conversions print the value, which costs about a
        // millisecond each here.
        let operand = if value.is_block_argument() {
            let argument =
                BlockArgument::try_from(value).map_err(|e| MlirError::Mlir(e.to_string()))?;
            LaunchOperand::Memref(Memory::of_argument(
                argument.argument_number(),
                inputs,
                outputs,
            ))
        } else if value.is_operation_result() {
            let owner = OperationResult::try_from(value)
                .map_err(|e| MlirError::Mlir(e.to_string()))?
                .owner();
            let constant = (owner.name().as_string_ref().as_str() == Ok("arith.constant"))
                .then(|| owner.attribute("value").ok())
                .flatten()
                .and_then(|a| IntegerAttribute::try_from(a).ok())
                .ok_or(MlirError::Internal(
                    "a launch operand that is neither a constant nor a function argument",
                ))?;
            LaunchOperand::Index(constant.value())
        } else {
            return Err(MlirError::Internal(
                "a launch operand that is neither a value nor a function argument",
            ));
        };
        operands.push(operand);
    }
    if operands.len() < 6 {
        return Err(MlirError::Internal("a launch without grid and block sizes"));
    }
    let size = |o: &LaunchOperand| match *o {
        LaunchOperand::Index(v) if v > 0 => {
            u32::try_from(v).map_err(|_| MlirError::Internal("a launch size over 2^32"))
        }
        _ => Err(MlirError::Internal(
            "a launch size that is not a positive constant",
        )),
    };
    let mut sizes = [0u32; 6];
    for (s, o) in sizes.iter_mut().zip(&operands) {
        *s = size(o)?;
    }
    Ok(Launch {
        node: NodeId(0),
        module: module.to_string(),
        entry: entry.to_string(),
        grid: [sizes[0], sizes[1], sizes[2]],
        block: [sizes[3], sizes[4], sizes[5]],
        operands: operands.split_off(6),
    })
}
