//! The MLIR backend's fusion and memory plan: the planner shared with the Cranelift backend
//! ([`optc_compiler::fusion`]) under this backend's rules. It lowers no `scatter`, `matpow` or
//! Fréchet derivative: on the CPU they are refused, for the GPU they are planned as the
//! runtime's host steps ([`on_host`]). On the CPU a `logdet` and an `inv` of one
//! matrix share one LU kernel call; for the GPU each is its own step (the executor shares the
//! device's factors), and the argument of a sum of all elements is stored (a kernel computes it,
//! a library call sums it).

use crate::MlirError;
use optc_compiler::fusion::{self, PlanError, Rules};
pub use optc_compiler::fusion::{is_elementwise, is_pointwise, Plan, Storage};
use optc_compiler::ir::{NodeId, Op, Program};

/// Whether the GPU runtime computes `op` on the host (an op this backend does not lower).
pub fn on_host(op: &Op) -> bool {
    unsupported(op).is_some()
}

/// The ops the shared planner accepts that this backend does not lower.
fn unsupported(op: &Op) -> Option<&'static str> {
    match op {
        Op::MatPow(_) | Op::MatPowFrechet(_) | Op::MatPowFrechet2(_) => {
            Some("matpow and its derivatives")
        }
        Op::ArgmaxMask { .. }
        | Op::Scatter { .. }
        | Op::ExpmFrechet
        | Op::ExpmFrechet2
        | Op::SortScatter
        | Op::SortGather(_) => Some(
            "the adjoint ops of reverse mode (scatter, argmax mask, expm Fréchet, sort scatter/gather)",
        ),
        _ => None,
    }
}

/// Plans the evaluation of `roots` under `dims`, for the GPU with `gpu`.
pub fn plan(
    program: &Program,
    roots: &[NodeId],
    dims: &[u64],
    gpu: bool,
) -> Result<Plan, MlirError> {
    let rules = Rules {
        unsupported: if gpu { |_| None } else { unsupported },
        on_host: if gpu { on_host } else { |_| false },
        store_summed: gpu,
        lse_sums: false,
        share_lu: !gpu,
    };
    fusion::plan(program, roots, dims, &rules).map_err(MlirError::from)
}

impl From<PlanError> for MlirError {
    fn from(e: PlanError) -> MlirError {
        match e {
            PlanError::Unsupported(what) => MlirError::Unsupported(what),
            other => MlirError::Plan(other),
        }
    }
}
