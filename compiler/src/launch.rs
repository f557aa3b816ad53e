//! Kernel launches of a planned function on a GPU: what the MLIR backend reads from the host
//! function it lowered (one launch per buffered pointwise node, in schedule order) and what a
//! `gpu` artifact stores for a runtime without MLIR. Kernel operands name the function's buffers
//! ([`Memory`]), not addresses, so the runtime binds them to its own device buffers.

use crate::ir::NodeId;
use serde::{Deserialize, Serialize};

/// A buffer of the function: input `k` (program inputs, then setup values), output `k` (its
/// `k`-th root), or the scratch array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Memory {
    Input(u32),
    Output(u32),
    Scratch,
}

impl Memory {
    /// The buffer of the host function's memref argument `argument` (inputs, then outputs,
    /// then the scratch array).
    pub fn of_argument(argument: usize, inputs: usize, outputs: usize) -> Memory {
        match argument.checked_sub(inputs) {
            None => Memory::Input(argument as u32),
            Some(k) if k < outputs => Memory::Output(k as u32),
            Some(_) => Memory::Scratch,
        }
    }
}

/// One operand of a kernel launch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LaunchOperand {
    /// An `index` value: one 64-bit kernel parameter.
    Index(i64),
    /// A 1-D memref: five 64-bit kernel parameters (allocated pointer, aligned pointer, offset,
    /// size, stride), MLIR's descriptor convention.
    Memref(Memory),
}

/// A launch of one outlined pointwise kernel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Launch {
    /// The node the kernel computes (with its fused arguments) into its storage.
    pub node: NodeId,
    /// The PTX module (the name its PTX is filed under).
    pub module: String,
    /// The kernel function in that module.
    pub entry: String,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub operands: Vec<LaunchOperand>,
}
