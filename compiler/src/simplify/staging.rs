//! Staging: which nodes run once per solve (setup: stage ≤ Param) and which every iteration
//! (stage Var), and which setup values the per-iteration work reads.

use super::cost::reachable;
use crate::ir::{NodeId, Program, Stage};
use serde::Serialize;

/// The nodes needed for some roots, split by when they run; each list in arena order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StagedPlan {
    /// Stage ≤ Param: computed once per solve.
    pub setup: Vec<NodeId>,
    /// Stage Var: computed every iteration.
    pub per_iteration: Vec<NodeId>,
    /// Setup values that per-iteration nodes read or that are roots: what setup hands over.
    pub handoff: Vec<NodeId>,
}

/// Splits the nodes that `roots` need into setup and per-iteration work.
pub fn stage(program: &Program, roots: &[NodeId]) -> StagedPlan {
    let g = &program.graph;
    let is_setup = |id: NodeId| g.stage(id) <= Stage::Param;
    let (setup, per_iteration): (Vec<NodeId>, Vec<NodeId>) = reachable(program, roots)
        .into_iter()
        .partition(|&id| is_setup(id));
    let mut handed = vec![false; g.len()];
    for &id in &per_iteration {
        for &a in &g.node(id).args {
            handed[a.0 as usize] |= is_setup(a);
        }
    }
    for &r in roots {
        if let Some(slot) = handed.get_mut(r.0 as usize) {
            *slot |= is_setup(r);
        }
    }
    let handoff = setup
        .iter()
        .copied()
        .filter(|id| handed[id.0 as usize])
        .collect();
    StagedPlan {
        setup,
        per_iteration,
        handoff,
    }
}
