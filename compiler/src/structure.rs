//! Structure analysis: which terms of the objective are smooth and which have a known prox, and
//! how each constraint is handled (a projection, or a penalty/Lagrangian term). The solver plan in
//! the runtime is chosen from this, and `optc run` prints why.

use crate::ir::{
    BinaryOp, ConstraintKind, InputId, InputKind, NodeId, Op, Program, Stage, UnaryOp,
};

/// `weight * norm1(var)`: handled by soft-thresholding when the solver is proximal.
#[derive(Clone, Debug, PartialEq)]
pub struct L1Term {
    pub var: InputId,
    /// A scalar node of stage ≤ Param, or `None` for weight 1.
    pub weight: Option<NodeId>,
    /// The term's node in the objective.
    pub node: NodeId,
}

/// The objective split into additive terms.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Structure {
    /// Terms that are differentiable (or treated with subgradients), with their signs.
    pub smooth: Vec<(f64, NodeId)>,
    /// Proximable L1 terms (positive sign only).
    pub l1: Vec<L1Term>,
    /// Indices into `Program::constraints` by how they are handled.
    pub equalities: Vec<usize>,
    pub inequalities: Vec<usize>,
    pub projections: Vec<usize>,
    pub cardinality: Vec<usize>,
    /// Variables with declared bounds.
    pub bounded_vars: Vec<InputId>,
}

impl Structure {
    pub fn has_constraints(&self) -> bool {
        !(self.equalities.is_empty()
            && self.inequalities.is_empty()
            && self.projections.is_empty()
            && self.cardinality.is_empty())
    }
}

/// Splits the objective of `program` into terms and sorts its constraints.
pub fn analyze(program: &Program) -> Structure {
    let mut s = Structure::default();
    if let Some(objective) = &program.objective {
        let mut terms = Vec::new();
        flatten_sum(program, objective.node, 1.0, &mut terms);
        for (sign, node) in terms {
            match l1_term(program, node) {
                Some(term) if sign > 0.0 => s.l1.push(term),
                _ => s.smooth.push((sign, node)),
            }
        }
    }
    for (i, c) in program.constraints.iter().enumerate() {
        match c.kind {
            ConstraintKind::Eq => s.equalities.push(i),
            ConstraintKind::Le => s.inequalities.push(i),
            ConstraintKind::In(_) => s.projections.push(i),
            ConstraintKind::Card { .. } => s.cardinality.push(i),
        }
    }
    s.bounded_vars = program
        .variables()
        .filter(|&v| {
            let input = program.input(v);
            input.lower.is_some() || input.upper.is_some()
        })
        .collect();
    s
}

/// Collects the additive terms of a sum (`a + b - c` → `+a, +b, -c`).
fn flatten_sum(p: &Program, node: NodeId, sign: f64, out: &mut Vec<(f64, NodeId)>) {
    // Iterative on the left spine, recursive on the right: sums in the IR are left-deep.
    let mut stack = vec![(sign, node)];
    while let Some((sign, node)) = stack.pop() {
        let n = p.graph.node(node);
        match (&n.op, n.args.as_slice()) {
            (Op::Binary(BinaryOp::Add), [a, b]) if scalar(p, *a) && scalar(p, *b) => {
                stack.push((sign, *b));
                stack.push((sign, *a));
            }
            (Op::Binary(BinaryOp::Sub), [a, b]) if scalar(p, *a) && scalar(p, *b) => {
                stack.push((-sign, *b));
                stack.push((sign, *a));
            }
            _ => out.push((sign, node)),
        }
    }
}

fn scalar(p: &Program, node: NodeId) -> bool {
    p.graph.shape(node).is_empty()
}

/// Recognizes `sum(abs(x))` and `c * sum(abs(x))` / `sum(abs(x)) * c` with `x` a variable and
/// `c` a scalar of stage ≤ Param.
fn l1_term(p: &Program, node: NodeId) -> Option<L1Term> {
    let n = p.graph.node(node);
    if let (Op::Binary(BinaryOp::Mul), [a, b]) = (&n.op, n.args.as_slice()) {
        for (weight, rest) in [(*a, *b), (*b, *a)] {
            if scalar(p, weight) && p.graph.stage(weight) <= Stage::Param {
                if let Some(var) = norm1_of_var(p, rest) {
                    return Some(L1Term {
                        var,
                        weight: Some(weight),
                        node,
                    });
                }
            }
        }
        return None;
    }
    norm1_of_var(p, node).map(|var| L1Term {
        var,
        weight: None,
        node,
    })
}

fn norm1_of_var(p: &Program, node: NodeId) -> Option<InputId> {
    let sum = p.graph.node(node);
    let (Op::Sum { axis: None }, [abs]) = (&sum.op, sum.args.as_slice()) else {
        return None;
    };
    let abs = p.graph.node(*abs);
    let (Op::Unary(UnaryOp::Abs), [x]) = (&abs.op, abs.args.as_slice()) else {
        return None;
    };
    match p.graph.node(*x).op {
        Op::Input(i) if p.input(i).kind == InputKind::Var => Some(i),
        _ => None,
    }
}
