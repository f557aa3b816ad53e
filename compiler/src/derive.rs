//! The derivative stages after lowering, listed once: differentiate the objective with respect to
//! every variable, simplify the result under the cost model, and split it into setup and
//! per-iteration work. `optc emit --stage grad|grad-simplified|setup` and `optc explain --cost`
//! print these; the runtime evaluates the same functions.

use crate::autodiff::{self, AdError};
use crate::ir::{print_program, InputId, NodeId, Program};
use crate::simplify::{self, CostModel, SimplifyError, StagedPlan};
use std::fmt::Write;

/// The objective (as minimized: negated for `maximize`) and its gradient, one node per variable.
#[derive(Clone, Debug)]
pub struct Derived {
    pub program: Program,
    pub objective: NodeId,
    pub gradient: Vec<(InputId, NodeId)>,
}

impl Derived {
    /// Objective first, then the gradient nodes.
    pub fn roots(&self) -> Vec<NodeId> {
        std::iter::once(self.objective)
            .chain(self.gradient.iter().map(|g| g.1))
            .collect()
    }

    fn with_roots(&self, program: Program, roots: &[NodeId]) -> Derived {
        Derived {
            program,
            objective: roots[0],
            gradient: self
                .gradient
                .iter()
                .zip(&roots[1..])
                .map(|(&(v, _), &r)| (v, r))
                .collect(),
        }
    }

    /// The program text followed by which nodes are the objective and the gradient.
    pub fn text(&self) -> String {
        let mut out = print_program(&self.program);
        let _ = writeln!(out, "minimized objective = {}", self.objective);
        for (v, g) in &self.gradient {
            let _ = writeln!(out, "gradient {} = {g}", self.program.input(*v).name);
        }
        out
    }
}

/// Appends the gradient of the objective to a copy of `program`.
pub fn differentiate(program: &Program) -> Result<Derived, AdError> {
    let mut program = program.clone();
    let Some(node) = program.minimized_objective() else {
        return Err(AdError {
            node: NodeId(0),
            op: "objective",
            message: "the model has no objective".into(),
        });
    };
    let vars: Vec<InputId> = program.variables().collect();
    let grads = autodiff::gradient(&mut program, node, &vars)?;
    Ok(Derived {
        program,
        objective: node,
        gradient: vars.into_iter().zip(grads).collect(),
    })
}

/// The simplified derivative program, with what the simplifier did.
#[derive(Clone, Debug)]
pub struct SimplifiedDerived {
    pub derived: Derived,
    pub rules_fired: Vec<String>,
    pub egraph_nodes: usize,
    pub iterations: usize,
    pub stop_reason: String,
}

/// Simplifies the objective and gradient under the cost model at the given sizes.
pub fn simplify(derived: &Derived, dims: &[u64]) -> Result<SimplifiedDerived, SimplifyError> {
    let roots = derived.roots();
    let s = simplify::simplify(&derived.program, &roots, &CostModel::new(dims.to_vec()))?;
    Ok(SimplifiedDerived {
        derived: derived.with_roots(s.program, &s.roots),
        rules_fired: s.rules_fired,
        egraph_nodes: s.egraph_nodes,
        iterations: s.iterations,
        stop_reason: s.stop_reason,
    })
}

/// Setup (once per solve) and per-iteration nodes of a derivative program.
pub fn stage(derived: &Derived) -> StagedPlan {
    simplify::stage(&derived.program, &derived.roots())
}

/// Sizes to use for cost estimates: defaults of the program's dims, then `given` by name, else
/// [`simplify::cost::DEFAULT_DIM_SIZE`].
pub fn cost_dims(program: &Program, given: &[(String, u64)]) -> Vec<u64> {
    program
        .dims
        .iter()
        .map(|d| {
            given
                .iter()
                .find(|(n, _)| *n == d.name)
                .map(|g| g.1)
                .or(d.default)
                .unwrap_or(simplify::cost::DEFAULT_DIM_SIZE)
        })
        .collect()
}

/// The staged plan as text: which nodes run once per solve and which every iteration.
pub fn staged_text(derived: &Derived, plan: &StagedPlan) -> String {
    let mut out = derived.text();
    let list = |ids: &[NodeId]| {
        ids.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = writeln!(out, "setup (once per solve): {}", list(&plan.setup));
    let _ = writeln!(
        out,
        "handoff (setup values read per iteration): {}",
        list(&plan.handoff)
    );
    let _ = writeln!(out, "per iteration: {}", list(&plan.per_iteration));
    out
}
