//! Kernel launches of a planned function on a GPU: what the MLIR backend reads from the host
//! function it lowered (one launch per buffered pointwise node, in schedule order) and what a
//! `gpu` artifact stores for a runtime without MLIR. Kernel operands name the function's buffers
//! ([`Memory`]), not addresses, so the runtime binds them to its own device buffers.

use crate::fusion::Storage;
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
    /// The buffer and element offset where a node with this storage lives (`None` for fused,
    /// unused and transpose-flag nodes).
    pub fn of_storage(storage: Storage) -> Option<(Memory, usize)> {
        match storage {
            Storage::Input(k) => Some((Memory::Input(k), 0)),
            Storage::Output(k) => Some((Memory::Output(k), 0)),
            Storage::Scratch(at) => Some((Memory::Scratch, at)),
            Storage::Unused | Storage::Fused | Storage::TransposeFlag => None,
        }
    }

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

/// The element type of a GPU function's buffers and of its kernels' arithmetic. The host always
/// works in f64: values are rounded to f32 when they go to an f32 device and widened back when
/// they come from it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F64,
    F32,
}

impl Precision {
    /// The MLIR (and artifact) name of the element type.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F64 => "f64",
            Precision::F32 => "f32",
        }
    }

    /// Bytes per element.
    pub fn bytes(self) -> usize {
        match self {
            Precision::F64 => 8,
            Precision::F32 => 4,
        }
    }

    /// `x` as an element of this type holds it (rounded to nearest for f32).
    pub fn round(self, x: f64) -> f64 {
        match self {
            Precision::F64 => x,
            Precision::F32 => x as f32 as f64,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_and_storage_name_the_same_buffers() {
        // Two inputs, one output, then the scratch array.
        let of = |a| Memory::of_argument(a, 2, 1);
        assert_eq!(
            [of(0), of(1), of(2), of(3)],
            [
                Memory::Input(0),
                Memory::Input(1),
                Memory::Output(0),
                Memory::Scratch
            ]
        );
        assert_eq!(
            Memory::of_storage(Storage::Input(1)),
            Some((Memory::Input(1), 0))
        );
        assert_eq!(
            Memory::of_storage(Storage::Scratch(12)),
            Some((Memory::Scratch, 12))
        );
        for unstored in [Storage::Unused, Storage::Fused, Storage::TransposeFlag] {
            assert_eq!(Memory::of_storage(unstored), None);
        }
    }

    #[test]
    fn f32_rounds_to_the_nearest_single_and_f64_keeps_every_value() {
        let third = 1.0 / 3.0;
        assert_eq!(Precision::F64.round(third), third);
        let single = Precision::F32.round(third);
        assert_ne!(single, third);
        assert_eq!(single, f64::from(third as f32));
        assert!((single - third).abs() <= third * f64::from(f32::EPSILON) / 2.0);
        assert_eq!(Precision::F32.round(1e300), f64::INFINITY);
        assert!(Precision::F32.round(f64::NAN).is_nan());
    }
}
