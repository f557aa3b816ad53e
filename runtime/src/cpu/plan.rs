//! The Cranelift backend's fusion and memory plan: the planner shared with the MLIR backend
//! ([`optc_compiler::fusion`]) under this backend's rules. It lowers every op the planner
//! accepts; log-sum-exp over an axis gets scratch for its running sums; a `logdet` and an `inv`
//! of the same matrix share one LU.

use super::CpuError;
use optc_compiler::fusion::{self, PlanError, Rules};
pub use optc_compiler::fusion::{is_elementwise, is_pointwise, Plan, Storage};
use optc_compiler::ir::{NodeId, Program};

const RULES: Rules = Rules {
    unsupported: |_| None,
    on_host: |_| false,
    store_summed: false,
    lse_sums: true,
    share_lu: true,
};

pub fn plan(program: &Program, roots: &[NodeId], dims: &[u64]) -> Result<Plan, CpuError> {
    fusion::plan(program, roots, dims, &RULES).map_err(CpuError::from)
}

impl From<PlanError> for CpuError {
    fn from(e: PlanError) -> CpuError {
        match e {
            PlanError::Unsupported(what) => CpuError::Unsupported(what),
            other => CpuError::Plan(other),
        }
    }
}
