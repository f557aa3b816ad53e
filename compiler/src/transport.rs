//! The transport form that `solve with dual` solves through its dual: a quadratically
//! regularized transport problem over one matrix variable T (m × n),
//!
//!   minimize   Σ ⟨Cᵢ, T⟩ + (γ/2)‖T‖²  (+ terms without T)
//!   subject to T ≥ 0,  T·1 = a,  Tᵀ·1 = b,  and optionally  card(T[:, j]) ≤ k for every column j
//!              (or card(T[i, :]) ≤ k for every row i),
//!
//! recognized term by term from the IR. Each linear term is `sum(X .* T)` (either order), each
//! quadratic one `sumsq(T)` (`sum(T ^ 2)` or `sum(T .* T)`), both optionally times a scalar of
//! stage ≤ Param; X, γ, a, b and k do not depend on T. The runtime evaluates those nodes and
//! solves the concave (semi-)dual; this module only finds them, or says which part does not fit.

use crate::diag::Span;
use crate::ir::{BinaryOp, ConstraintKind, InputId, NodeId, Op, Program, Sense, SetKind, Stage};
use crate::structure::{flatten_sum, lines_of, square_of};

/// A term of the objective, `sign · weight · atom`, with `weight` a scalar node or 1.
#[derive(Clone, Debug, PartialEq)]
pub struct Weighted {
    pub sign: f64,
    pub weight: Option<NodeId>,
    /// For a linear term the cost X of `sum(X .* T)` (broadcast to T's shape); for a quadratic
    /// term `sumsq(T)` itself.
    pub node: NodeId,
}

/// A marginal constraint: `sum(T, axis) == target` (its constraint index).
#[derive(Clone, Debug, PartialEq)]
pub struct Marginal {
    pub constraint: usize,
    pub target: NodeId,
}

/// `card` ≤ `bound` on every column (`axis` 1: `T[:, j]`) or every row (`axis` 0: `T[i, :]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Sparsity {
    pub constraint: usize,
    /// The axis the constrained slices select along: 1 for columns, 0 for rows.
    pub axis: u32,
    pub bound: NodeId,
}

/// A model in the transport form (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct TransportForm {
    pub var: InputId,
    /// The linear terms ⟨X, T⟩.
    pub linear: Vec<Weighted>,
    /// The quadratic terms ‖T‖²; γ is twice the sum of their signed weights.
    pub quadratic: Vec<Weighted>,
    /// T·1 = a (the row sums, length m).
    pub rows: Marginal,
    /// Tᵀ·1 = b (the column sums, length n).
    pub cols: Marginal,
    pub sparsity: Option<Sparsity>,
}

/// Why a model has no transport form: a sentence naming the part that does not fit, and where
/// that part is written when it is a term, a constraint or the plan's declaration.
#[derive(Clone, Debug, PartialEq)]
pub struct NotTransport {
    pub message: String,
    pub span: Option<Span>,
}

impl From<String> for NotTransport {
    fn from(message: String) -> NotTransport {
        NotTransport {
            message,
            span: None,
        }
    }
}

impl From<&str> for NotTransport {
    fn from(message: &str) -> NotTransport {
        NotTransport::from(message.to_string())
    }
}

/// The model's transport form, or why it has none.
pub fn transport_form(p: &Program) -> Result<TransportForm, NotTransport> {
    let mut vars = p.variables();
    let (Some(var), None) = (vars.next(), vars.next()) else {
        return Err("the dual needs exactly one variable, the transport plan".into());
    };
    let input = p.input(var);
    let name = &input.name;
    // Errors about the plan itself point at its declaration.
    let declared = |message: String| NotTransport {
        message,
        span: input.span,
    };
    if input.shape.len() != 2 {
        return Err(declared(format!(
            "the transport plan `{name}` must be a matrix"
        )));
    }
    if input.upper.is_some() {
        return Err(declared(format!(
            "the transport plan `{name}` may have no upper bound"
        )));
    }
    let t = p.input_nodes[var.0 as usize];
    let objective = match &p.objective {
        Some(o) if o.sense == Sense::Minimize => o.node,
        Some(_) => {
            return Err(
                "the dual form minimizes the transport cost; `maximize` does not fit".into(),
            )
        }
        None => return Err("the model has no objective".into()),
    };
    let mut terms = Vec::new();
    flatten_sum(p, objective, 1.0, &mut terms);
    let (mut linear, mut quadratic) = (Vec::new(), Vec::new());
    for (position, (sign, node)) in terms.into_iter().enumerate() {
        if p.graph.stage(node) < Stage::Var {
            continue;
        }
        let (weight, atom) = weighted(p, node);
        if is_sumsq(p, atom, t) {
            quadratic.push(Weighted {
                sign,
                weight,
                node: atom,
            });
        } else if let Some(cost) = cost_of(p, atom, t) {
            linear.push(Weighted {
                sign,
                weight,
                node: cost,
            });
        } else {
            return Err(NotTransport {
                message: format!(
                    "term {} of the objective is neither a cost `sum(C .* {name})` nor `sumsq({name})` (times a scalar)",
                    position + 1
                ),
                span: p.node_span(node),
            });
        }
    }
    if quadratic.is_empty() {
        return Err(format!(
            "the objective has no regularization `gamma / 2 * sumsq({name})`: the dual of unregularized transport is not smooth"
        ).into());
    }
    let (mut rows, mut cols, mut sparsity) = (None, None, None);
    let mut nonneg = input.lower.is_some();
    for (i, c) in p.constraints.iter().enumerate() {
        let fits = match &c.kind {
            ConstraintKind::Eq if c.ranges.is_empty() => match marginal(p, c.node, t) {
                Some((1, target)) if rows.is_none() => {
                    rows = Some(Marginal {
                        constraint: i,
                        target,
                    });
                    true
                }
                Some((0, target)) if cols.is_none() => {
                    cols = Some(Marginal {
                        constraint: i,
                        target,
                    });
                    true
                }
                _ => false,
            },
            ConstraintKind::In(SetKind::Nonneg) if c.node == t && c.ranges.is_empty() => {
                nonneg = true;
                true
            }
            ConstraintKind::Card { bound } if sparsity.is_none() => match lines_of(p, c, c.node, t)
            {
                Some(axis) if p.graph.stage(*bound) <= Stage::Param => {
                    sparsity = Some(Sparsity {
                        constraint: i,
                        axis,
                        bound: *bound,
                    });
                    true
                }
                _ => false,
            },
            _ => false,
        };
        if !fits {
            return Err(NotTransport {
                message: format!(
                    "constraint `{}` is none of the transport form's: `sum({name}, axis = 1) == a`, `sum({name}, axis = 0) == b`, `for j in 0..n: card({name}[:, j]) <= k` (or the same over rows)",
                    c.name
                ),
                span: c.span,
            });
        }
    }
    if !nonneg {
        return Err(declared(format!(
            "the transport plan needs `var {name} : real[m, n] >= 0`"
        )));
    }
    let (Some(rows), Some(cols)) = (rows, cols) else {
        return Err(format!(
            "the dual needs both marginals: `sum({name}, axis = 1) == a` and `sum({name}, axis = 0) == b`"
        ).into());
    };
    Ok(TransportForm {
        var,
        linear,
        quadratic,
        rows,
        cols,
        sparsity,
    })
}

/// `(weight, atom)` of `weight * atom` / `atom * weight` with a scalar weight of stage ≤ Param;
/// `(None, node)` otherwise.
fn weighted(p: &Program, node: NodeId) -> (Option<NodeId>, NodeId) {
    let n = p.graph.node(node);
    if let (Op::Binary(BinaryOp::Mul), [a, b]) = (&n.op, n.args.as_slice()) {
        for (w, atom) in [(*a, *b), (*b, *a)] {
            if p.graph.shape(w).is_empty() && p.graph.stage(w) <= Stage::Param {
                return (Some(w), atom);
            }
        }
    }
    (None, node)
}

/// Whether `node` is Σ T² (`sum(T ^ 2)` or `sum(T .* T)`).
fn is_sumsq(p: &Program, node: NodeId, t: NodeId) -> bool {
    let n = p.graph.node(node);
    let (Op::Sum { axis: None }, [inner]) = (&n.op, n.args.as_slice()) else {
        return false;
    };
    square_of(p, *inner) == Some(t)
}

/// X of `sum(X .* T)` / `sum(T .* X)` with X not depending on T.
fn cost_of(p: &Program, node: NodeId, t: NodeId) -> Option<NodeId> {
    let n = p.graph.node(node);
    let (Op::Sum { axis: None }, [inner]) = (&n.op, n.args.as_slice()) else {
        return None;
    };
    let inner = p.graph.node(*inner);
    let (Op::Binary(BinaryOp::Mul), [a, b]) = (&inner.op, inner.args.as_slice()) else {
        return None;
    };
    [(*a, *b), (*b, *a)]
        .into_iter()
        .find(|&(x, other)| other == t && p.graph.stage(x) < Stage::Var)
        .map(|(x, _)| x)
}

/// `(axis, target)` of `sum(T, axis) − target` (or `target − sum(T, axis)`), target not
/// depending on T.
fn marginal(p: &Program, node: NodeId, t: NodeId) -> Option<(u32, NodeId)> {
    let n = p.graph.node(node);
    let (Op::Binary(BinaryOp::Sub), [a, b]) = (&n.op, n.args.as_slice()) else {
        return None;
    };
    [(*a, *b), (*b, *a)].into_iter().find_map(|(sum, target)| {
        let s = p.graph.node(sum);
        match (&s.op, s.args.as_slice()) {
            (Op::Sum { axis: Some(axis) }, [x])
                if *x == t && p.graph.stage(target) < Stage::Var =>
            {
                Some((*axis, target))
            }
            _ => None,
        }
    })
}
