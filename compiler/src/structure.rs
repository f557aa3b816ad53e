//! Structure analysis: which terms of the objective are smooth and which have a known prox (L1,
//! group and nuclear norms of a variable), how each constraint is handled (a projection of a
//! variable or of all its lines, or a penalty/Lagrangian term), and where a differentiated
//! expression has kinks. The solver plan in the runtime is chosen from this, and `optc run`
//! prints why.

use crate::diag::Span;
use crate::ir::{
    BinaryOp, Constraint, ConstraintKind, Dim, InputId, InputKind, NodeId, Op, Program, Sense,
    Stage, UnaryOp,
};

/// A nonsmooth atom of one variable with a known prox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxKind {
    /// `norm1(x)` = Σ|xᵢ|: soft-thresholding.
    L1,
    /// `sum(sqrt(sum(W .* W, axis = 1)))` (`group_lasso`): the rows' norms, group shrinkage.
    GroupRows,
    /// The same over `axis = 0`: the columns' norms.
    GroupCols,
    /// `nuclear_norm(W)`: singular value thresholding.
    Nuclear,
    /// `sum(abs(x[1:n] - x[0:n - 1]))` (`tv`) of a vector: 1-D total variation denoising.
    Tv,
}

/// `weight * atom(var)`, handled by the atom's prox when the solver is proximal.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxTerm {
    pub kind: ProxKind,
    pub var: InputId,
    /// A scalar node of stage ≤ Param, or `None` for weight 1.
    pub weight: Option<NodeId>,
    /// For a weighted L1 norm `norm1(M .* x)`, the tensor M (stage ≤ Param) that broadcasts to
    /// x's shape: entry i weighs |Mᵢ| (times `weight`).
    pub entries: Option<NodeId>,
    /// The term's node in the objective.
    pub node: NodeId,
}

/// The objective split into additive terms.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Structure {
    /// Terms that are differentiable (or treated with subgradients), with their signs in the
    /// minimized objective (the model's, negated for `maximize`).
    pub smooth: Vec<(f64, NodeId)>,
    /// Terms with a known prox (positive sign in the minimized objective only). A variable has
    /// at most one term of each kind, and besides L1 at most one group, nuclear or TV term,
    /// which then composes exactly with soft-thresholding for group norms (sparse group lasso:
    /// the group prox after it) and TV (fused lasso: TV's prox before it): so `Nuclear` never
    /// shares its variable. Bounded variables have only L1 and TV terms, TV with scalar bounds
    /// (clamping after soft-thresholding and after TV's prox is the exact prox). Other atoms
    /// stay in `smooth` (subgradients).
    pub prox: Vec<ProxTerm>,
    /// Indices into `Program::constraints` by how they are handled: `projections` are the `in`
    /// constraints and the norm balls of variables ([`NormBall`]) whose projection is exact
    /// with the variable's bounds and other sets, the other `<=` constraints are `inequalities`.
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

/// A set or cardinality constraint on a variable, or on every line of a matrix variable
/// (`for j in 0..n: T[:, j] in simplex`), enforced by projection in proximal methods.
#[derive(Clone, Debug, PartialEq)]
pub struct Projection {
    /// The index of the constraint in `Program::constraints`.
    pub constraint: usize,
    pub var: InputId,
    /// `None` for the whole variable; else the axis its lines are selected along (1 for the
    /// columns `T[:, j]`, 0 for the rows `T[i, :]`).
    pub lines: Option<u32>,
    /// For a `<=` constraint, the norm ball it is.
    pub ball: Option<NormBall>,
}

/// The projection that enforces constraint `index`, when it is an `in` or `card` constraint on a
/// variable or on all its lines (bounds of `box` and `card` of stage ≤ Param), or a norm ball
/// ([`NormBall`]) of one.
pub fn projection(p: &Program, index: usize) -> Option<Projection> {
    let c = &p.constraints[index];
    let (x, parameters, ball) = match &c.kind {
        ConstraintKind::In(crate::ir::SetKind::Box { lower, upper }) => {
            (c.node, vec![*lower, *upper], None)
        }
        // A symmetric matrix in a loop (a slice of a 3-tensor) is not a line: no projection.
        ConstraintKind::In(crate::ir::SetKind::Symmetric) if !c.ranges.is_empty() => return None,
        ConstraintKind::In(_) => (c.node, Vec::new(), None),
        ConstraintKind::Card { bound } => (c.node, vec![*bound], None),
        ConstraintKind::Le => {
            let (b, x, bound) = norm_ball(p, c)?;
            (x, vec![bound], Some(b))
        }
        ConstraintKind::Eq => return None,
    };
    // Bounds of one value for every line: of stage ≤ Param, and not read at the loop's index.
    let per_index = |n: NodeId| {
        crate::simplify::cost::reachable(p, &[n])
            .iter()
            .any(|&m| matches!(p.graph.node(m).op, Op::LoopIndex(_)))
    };
    if parameters
        .iter()
        .any(|&n| p.graph.stage(n) > Stage::Param || per_index(n))
    {
        return None;
    }
    let var_of = |node: NodeId| match p.graph.node(node).op {
        Op::Input(i) if p.input(i).kind == InputKind::Var => Some(i),
        _ => None,
    };
    if c.ranges.is_empty() {
        return var_of(x).map(|var| Projection {
            constraint: index,
            var,
            lines: None,
            ball,
        });
    }
    let n = p.graph.node(x);
    let (Op::Select { .. }, [whole, _]) = (&n.op, n.args.as_slice()) else {
        return None;
    };
    let var = var_of(*whole)?;
    let axis = lines_of(p, c, x, *whole)?;
    Some(Projection {
        constraint: index,
        var,
        lines: Some(axis),
        ball,
    })
}

/// The axis of a `for` constraint on every line of the matrix `x`: `for j in 0..n: f(x[:, j])`
/// gives 1, `for i in 0..m: f(x[i, :])` gives 0 (one loop over the whole axis, `line` — the
/// constrained tensor — selecting at its index).
pub fn lines_of(p: &Program, c: &Constraint, line: NodeId, x: NodeId) -> Option<u32> {
    let [range] = c.ranges.as_slice() else {
        return None;
    };
    let n = p.graph.node(line);
    let (Op::Select { axis }, [selected, index]) = (&n.op, n.args.as_slice()) else {
        return None;
    };
    let shape = p.graph.shape(x);
    let whole =
        shape.len() == 2 && range.start == Dim::fixed(0) && range.end == shape[*axis as usize];
    let indexed = matches!(p.graph.node(*index).op, Op::LoopIndex(level) if level == range.level);
    (*selected == x && whole && indexed).then_some(*axis)
}

/// The norm of a [`NormBall`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BallNorm {
    L1,
    L2,
}

/// A `<=` constraint `norm1(x) <= r`, `norm2(x) <= r` or `sumsq(x) <= r` (also written `>=`
/// the other way round), which proximal methods enforce by projecting `x` onto the ball.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormBall {
    pub norm: BallNorm,
    /// `sumsq(x) <= r`: the bound is the squared radius.
    pub squared: bool,
}

/// `x` when `node` is its elementwise square, `x ^ 2` or `x .* x`.
pub(crate) fn square_of(p: &Program, node: NodeId) -> Option<NodeId> {
    let n = p.graph.node(node);
    match (&n.op, n.args.as_slice()) {
        (Op::Binary(BinaryOp::Pow), &[x, e]) if p.graph.const_value(e) == Some(2.0) => Some(x),
        (Op::Binary(BinaryOp::Mul), &[x, y]) if x == y => Some(x),
        _ => None,
    }
}

/// The norm ball of constraint `c` with its constrained tensor `x` and bound `r`, when it has
/// that form (whatever `x` and the stage of `r`: [`projection`] checks those). Only on the
/// program as lowered: simplification may rewrite the constraint's node.
fn norm_ball(p: &Program, c: &Constraint) -> Option<(NormBall, NodeId, NodeId)> {
    let op_args = |id: NodeId| {
        let n = p.graph.node(id);
        (&n.op, n.args.as_slice())
    };
    let (Op::Binary(BinaryOp::Sub), &[atom, bound]) = op_args(c.node) else {
        return None;
    };
    let (norm, x, squared) = match op_args(atom) {
        (Op::Sum { axis: None }, &[inner]) => match op_args(inner) {
            (Op::Unary(UnaryOp::Abs), &[x]) => (BallNorm::L1, x, false),
            _ => (BallNorm::L2, square_of(p, inner)?, true),
        },
        (Op::Unary(UnaryOp::Sqrt), &[sum]) => match op_args(sum) {
            (Op::Sum { axis: None }, &[inner]) => (BallNorm::L2, square_of(p, inner)?, false),
            _ => return None,
        },
        _ => return None,
    };
    Some((NormBall { norm, squared }, x, bound))
}

/// The bound `r` of a norm-ball constraint ([`NormBall`]): its node in the program as lowered
/// (simplification may rewrite the constraint's node).
pub fn ball_bound(p: &Program, c: &Constraint) -> Option<NodeId> {
    norm_ball(p, c).map(|(_, _, bound)| bound)
}

/// A term of a sum with the scalar factors of stage ≤ Param it is multiplied (`false`) or
/// divided (`true`) by on its way up to the sum.
struct Scaled {
    sign: f64,
    factors: Vec<(NodeId, bool)>,
    node: NodeId,
}

/// The scalar `node` as a sum of scaled terms: sums, differences and negations are split, and
/// `through_factors`, products with (quotients by) scalars of stage ≤ Param that multiply a
/// variable's expression become factors of the terms below them. Iterative on the left spine:
/// sums in the IR are left-deep.
fn scaled_terms(p: &Program, node: NodeId, through_factors: bool, out: &mut Vec<Scaled>) {
    let constant = |n: NodeId| through_factors && scalar(p, n) && p.graph.stage(n) <= Stage::Param;
    let mut stack = vec![Scaled {
        sign: 1.0,
        factors: Vec::new(),
        node,
    }];
    while let Some(t) = stack.pop() {
        let n = p.graph.node(t.node);
        let with = |node: NodeId, sign: f64, factor: Option<(NodeId, bool)>| {
            let mut factors = t.factors.clone();
            factors.extend(factor);
            Scaled {
                sign: t.sign * sign,
                factors,
                node,
            }
        };
        match (&n.op, n.args.as_slice()) {
            (Op::Binary(BinaryOp::Add), [a, b]) if scalar(p, *a) && scalar(p, *b) => {
                stack.push(with(*b, 1.0, None));
                stack.push(with(*a, 1.0, None));
            }
            (Op::Binary(BinaryOp::Sub), [a, b]) if scalar(p, *a) && scalar(p, *b) => {
                stack.push(with(*b, -1.0, None));
                stack.push(with(*a, 1.0, None));
            }
            (Op::Unary(UnaryOp::Neg), [a]) if scalar(p, *a) => stack.push(with(*a, -1.0, None)),
            (Op::Binary(BinaryOp::Mul), [c, x])
                if constant(*c) && scalar(p, *x) && !constant(*x) =>
            {
                stack.push(with(*x, 1.0, Some((*c, false))))
            }
            (Op::Binary(BinaryOp::Mul), [x, c])
                if constant(*c) && scalar(p, *x) && !constant(*x) =>
            {
                stack.push(with(*x, 1.0, Some((*c, false))))
            }
            (Op::Binary(BinaryOp::Div), [x, c])
                if constant(*c) && scalar(p, *x) && !constant(*x) =>
            {
                stack.push(with(*x, 1.0, Some((*c, true))))
            }
            _ => out.push(t),
        }
    }
}

/// The objective `node` with the constant factors of its sums carried into their terms, when
/// that exposes prox terms the objective as written hides: `lambda * elastic_net(w, l1 = a)`
/// (`lambda * (a * norm1(w) + …)`) gets the term `(lambda * a) * norm1(w)`, `(f + c * norm1(w))
/// / n` the term `(c / n) * norm1(w)`. Else `node` itself (the objective stays as written).
pub fn distribute_factors(p: &mut Program, node: NodeId) -> NodeId {
    let prox_terms = |p: &Program, terms: &[(f64, NodeId)]| {
        terms
            .iter()
            .filter(|(sign, t)| *sign > 0.0 && prox_term(p, *t).is_some())
            .count()
    };
    let mut written = Vec::new();
    flatten_sum(p, node, 1.0, &mut written);
    let mut scaled = Vec::new();
    scaled_terms(p, node, true, &mut scaled);
    let exposed = scaled
        .iter()
        .filter(|t| t.sign > 0.0 && atom_of_var(p, t.node).is_some())
        .count();
    if !scalar(p, node) || exposed <= prox_terms(p, &written) {
        return node;
    }
    // Scalars of stage ≤ Param: the products and sums below cannot fail.
    let op = |p: &mut Program, op: Op, args: Vec<NodeId>| {
        p.graph.add(op, args).expect("scalar arithmetic")
    };
    let mut sum: Option<NodeId> = None;
    for t in scaled {
        let mut weight: Option<NodeId> = None;
        for (factor, divide) in t.factors {
            weight = Some(match (weight, divide) {
                (None, false) => factor,
                (None, true) => {
                    let one = p.graph.constant(1.0);
                    op(p, Op::Binary(BinaryOp::Div), vec![one, factor])
                }
                (Some(w), false) => op(p, Op::Binary(BinaryOp::Mul), vec![w, factor]),
                (Some(w), true) => op(p, Op::Binary(BinaryOp::Div), vec![w, factor]),
            });
        }
        let term = match weight {
            Some(w) => op(p, Op::Binary(BinaryOp::Mul), vec![w, t.node]),
            None => t.node,
        };
        sum = Some(match (sum, t.sign > 0.0) {
            (None, true) => term,
            (None, false) => op(p, Op::Unary(UnaryOp::Neg), vec![term]),
            (Some(acc), true) => op(p, Op::Binary(BinaryOp::Add), vec![acc, term]),
            (Some(acc), false) => op(p, Op::Binary(BinaryOp::Sub), vec![acc, term]),
        });
    }
    sum.unwrap_or(node)
}

/// Splits the objective of `program` into terms and sorts its constraints.
pub fn analyze(program: &Program) -> Structure {
    let mut s = Structure::default();
    if let Some(objective) = &program.objective {
        // Signs in the minimized objective: a maximized one is negated.
        let sign = match objective.sense {
            Sense::Minimize => 1.0,
            Sense::Maximize => -1.0,
        };
        let mut terms = Vec::new();
        flatten_sum(program, objective.node, sign, &mut terms);
        for (sign, node) in terms {
            match prox_term(program, node) {
                Some(term) if sign > 0.0 && composes(program, &s.prox, &term) => s.prox.push(term),
                _ => s.smooth.push((sign, node)),
            }
        }
    }
    for (i, c) in program.constraints.iter().enumerate() {
        match c.kind {
            ConstraintKind::Eq => s.equalities.push(i),
            ConstraintKind::Le if projected_ball(program, i) => s.projections.push(i),
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

/// Whether constraint `index` is a norm ball of a variable that a projection enforces exactly
/// with the variable's other constraints: none but `in nonneg` and `in box` (and
/// `in symmetric` for a ball of the whole matrix), and declared bounds equal for every entry
/// (other combinations stay inequalities). The runtime checks that the bounds, sets included,
/// are the same for every entry.
fn projected_ball(p: &Program, index: usize) -> bool {
    use crate::ir::SetKind;
    let Some(Projection { var, lines, .. }) = projection(p, index) else {
        return false;
    };
    let whole = lines.is_none();
    let input = p.input(var);
    let bounds_fit = [input.lower, input.upper]
        .into_iter()
        .flatten()
        .all(|b| uniform(p, b));
    let alone = (0..p.constraints.len()).filter(|&j| j != index).all(|j| {
        let other = &p.constraints[j];
        matches!(
            other.kind,
            ConstraintKind::In(SetKind::Nonneg | SetKind::Box { .. })
        ) || (whole && other.kind == ConstraintKind::In(SetKind::Symmetric))
            || projection(p, j).is_none_or(|o| o.var != var)
    });
    bounds_fit && alone
}

/// Collects the additive terms of a sum (`a + b - c` → `+a, +b, -c`; `-(a - b)` → `-a, +b`).
pub(crate) fn flatten_sum(p: &Program, node: NodeId, sign: f64, out: &mut Vec<(f64, NodeId)>) {
    let mut terms = Vec::new();
    scaled_terms(p, node, false, &mut terms);
    out.extend(terms.into_iter().map(|t| (sign * t.sign, t.node)));
}

fn scalar(p: &Program, node: NodeId) -> bool {
    p.graph.shape(node).is_empty()
}

/// Whether `node` has one value in all its entries: a scalar, or a scalar broadcast (as the
/// bounds of a declaration are).
fn uniform(p: &Program, node: NodeId) -> bool {
    let n = p.graph.node(node);
    scalar(p, node)
        || matches!((&n.op, n.args.as_slice()), (Op::BroadcastTo(_), [s]) if scalar(p, *s))
}

/// Whether `term` may join the prox terms already found (see [`Structure::prox`]).
fn composes(p: &Program, found: &[ProxTerm], term: &ProxTerm) -> bool {
    let input = p.input(term.var);
    // Clamping after TV's prox is the prox with scalar bounds too (it keeps the order of the
    // entries); the other kinds compose with no bounds.
    let bounds_fit = match term.kind {
        ProxKind::L1 => true,
        ProxKind::Tv => [input.lower, input.upper]
            .into_iter()
            .flatten()
            .all(|b| uniform(p, b)),
        ProxKind::GroupRows | ProxKind::GroupCols | ProxKind::Nuclear => {
            input.lower.is_none() && input.upper.is_none()
        }
    };
    if !bounds_fit {
        return false;
    }
    found.iter().filter(|t| t.var == term.var).all(|t| {
        t.kind != term.kind
            && t.kind != ProxKind::Nuclear
            && term.kind != ProxKind::Nuclear
            && (t.kind == ProxKind::L1 || term.kind == ProxKind::L1)
    })
}

/// Recognizes `atom(x)` and `c * atom(x)` / `atom(x) * c` with `x` a variable, `c` a scalar of
/// stage ≤ Param and `atom` one of [`ProxKind`].
fn prox_term(p: &Program, node: NodeId) -> Option<ProxTerm> {
    let n = p.graph.node(node);
    if let (Op::Binary(BinaryOp::Mul), [a, b]) = (&n.op, n.args.as_slice()) {
        for (weight, rest) in [(*a, *b), (*b, *a)] {
            if scalar(p, weight) && p.graph.stage(weight) <= Stage::Param {
                if let Some((kind, var, entries)) = atom_of_var(p, rest) {
                    return Some(ProxTerm {
                        kind,
                        var,
                        weight: Some(weight),
                        entries,
                        node,
                    });
                }
            }
        }
        return None;
    }
    atom_of_var(p, node).map(|(kind, var, entries)| ProxTerm {
        kind,
        var,
        weight: None,
        entries,
        node,
    })
}

/// `(kind, x, entries)` when `node` is a prox atom of the variable `x`: `entries` is the M of a
/// weighted L1 norm `sum(abs(M .* x))` (either factor order), M of stage ≤ Param and the
/// product of x's shape.
fn atom_of_var(p: &Program, node: NodeId) -> Option<(ProxKind, InputId, Option<NodeId>)> {
    let op_args = |id: NodeId| {
        let n = p.graph.node(id);
        (&n.op, n.args.as_slice())
    };
    let var = |id: NodeId| match p.graph.node(id).op {
        Op::Input(i) if p.input(i).kind == InputKind::Var => Some(i),
        _ => None,
    };
    let weighted = |product: NodeId| {
        let (Op::Binary(BinaryOp::Mul), [a, b]) = op_args(product) else {
            return None;
        };
        [(*a, *b), (*b, *a)].into_iter().find_map(|(m, x)| {
            let v = var(x)?;
            (p.graph.stage(m) <= Stage::Param && p.graph.shape(product) == p.graph.shape(x))
                .then_some((ProxKind::L1, v, Some(m)))
        })
    };
    // x[1:n] − x[0:n − 1] (or its negation) of a vector variable x of length n.
    let differences = |d: NodeId| {
        let (Op::Binary(BinaryOp::Sub), [a, b]) = op_args(d) else {
            return None;
        };
        let slice_of = |s: NodeId| match op_args(s) {
            (
                &Op::Slice {
                    axis: 0,
                    start,
                    end,
                },
                [x],
            ) => Some((*x, start, end)),
            _ => None,
        };
        let (sa, sb) = (slice_of(*a)?, slice_of(*b)?);
        [(sa, sb), (sb, sa)]
            .into_iter()
            .find_map(|(ahead, behind)| {
                let x = ahead.0;
                let len = *p.graph.shape(x).first()?;
                let one = Dim::fixed(1);
                let aligned = behind.0 == x
                    && p.graph.shape(x).len() == 1
                    && ahead.1 == one
                    && ahead.2 == len
                    && behind.1 == Dim::fixed(0)
                    && Some(behind.2) == len.minus(one);
                aligned.then(|| var(x)).flatten()
            })
    };
    match op_args(node) {
        (Op::NuclearNorm, [x]) => var(*x).map(|v| (ProxKind::Nuclear, v, None)),
        (Op::Sum { axis: None }, [inner]) => match op_args(*inner) {
            (Op::Unary(UnaryOp::Abs), [x]) => var(*x)
                .map(|v| (ProxKind::L1, v, None))
                .or_else(|| weighted(*x))
                .or_else(|| differences(*x).map(|v| (ProxKind::Tv, v, None))),
            (Op::Unary(UnaryOp::Sqrt), [sums]) => {
                let (Op::Sum { axis: Some(axis) }, [squares]) = op_args(*sums) else {
                    return None;
                };
                let x = square_of(p, *squares)?;
                // The lines of `transpose(W)` along an axis are W's along the other.
                let (x, flipped) = match op_args(x) {
                    (Op::Transpose, [w]) => (*w, true),
                    _ => (x, false),
                };
                let kind = match (axis, flipped) {
                    (1, false) | (0, true) => ProxKind::GroupRows,
                    (0, false) | (1, true) => ProxKind::GroupCols,
                    _ => return None,
                };
                let v = var(x)?;
                (p.graph.shape(x).len() == 2).then_some((kind, v, None))
            }
            _ => None,
        },
        _ => None,
    }
}

/// A place where a differentiated expression may have no derivative: a nonsmooth op (`abs`,
/// `maximum`/`minimum`, `max`/`min`, `sort`, `topk`, `sign`) applied to values that depend on a
/// variable. Gradient methods take a subgradient there, but their line searches and stopping
/// tests assume a gradient that changes continuously. (`nuclear_norm` has no derivative rule at
/// all outside a prox term: autodiff refuses it instead.)
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Kink {
    pub node: NodeId,
    /// Where the node is written, or the nearest expression above it that has a span (the call
    /// of a `fn` or builtin it comes from).
    pub span: Option<Span>,
}

impl Kink {
    /// Where the derivative of the kink's op jumps, for messages.
    pub fn where_it_jumps(&self, p: &Program) -> &'static str {
        match p.graph.node(self.node).op {
            Op::Binary(_) => "where its two arguments are equal",
            Op::Max { .. } | Op::ArgmaxMask { .. } => "where largest entries tie",
            Op::SortDesc | Op::TopK(_) => "where entries tie",
            _ => "where its argument is 0",
        }
    }
}

/// The kinks of the expressions `roots`, in order of first appearance. An op whose kink is at
/// 0 — `abs(u)`, `maximum(u, 0)`, `minimum(u, 0)` — raised to a power above 1 or squared is
/// continuously differentiable and not a kink (`sumsq(maximum(u, 0))`, a squared hinge).
pub fn kinks(p: &Program, roots: &[NodeId]) -> Vec<Kink> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut stack: Vec<(NodeId, Option<Span>)> = roots.iter().rev().map(|&r| (r, None)).collect();
    while let Some((id, above)) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        let span = p.node_span(id).or(above);
        let node = p.graph.node(id);
        let varies = node.args.iter().any(|&a| p.graph.stage(a) == Stage::Var);
        if varies && (nonsmooth(&node.op) || line_norms(p, id)) {
            out.push(Kink { node: id, span });
        }
        for &arg in node.args.iter().rev() {
            match (kink_at_zero(p, arg), smoothing_power(p, id, arg)) {
                // Past the kink, to what it applies to.
                (Some(inner), true) => stack.push((inner, p.node_span(arg).or(span))),
                _ => stack.push((arg, span)),
            }
        }
    }
    out
}

fn nonsmooth(op: &Op) -> bool {
    matches!(
        op,
        Op::Unary(UnaryOp::Abs | UnaryOp::Sign | UnaryOp::Step)
            | Op::Binary(BinaryOp::Max | BinaryOp::Min)
            | Op::Max { .. }
            | Op::ArgmaxMask { .. }
            | Op::SortDesc
            | Op::TopK(_)
    )
}

/// Whether `node` is `sqrt(sum(u ^ 2, axis = k))`: the Euclidean norms of lines, each with a
/// kink where its line is 0 — where group sparsity puts it. (A whole `norm2` is smooth away from
/// 0, where a fit's residual rarely is: not reported.)
fn line_norms(p: &Program, node: NodeId) -> bool {
    let n = p.graph.node(node);
    let (Op::Unary(UnaryOp::Sqrt), [sums]) = (&n.op, n.args.as_slice()) else {
        return false;
    };
    let s = p.graph.node(*sums);
    matches!((&s.op, s.args.as_slice()), (Op::Sum { axis: Some(_) }, [squares]) if square_of(p, *squares).is_some())
}

/// `u` when `node` is `abs(u)`, `maximum(u, 0)` or `minimum(u, 0)` (either order): a kink at 0.
fn kink_at_zero(p: &Program, node: NodeId) -> Option<NodeId> {
    let n = p.graph.node(node);
    let zero = |id: NodeId| p.graph.const_value(id) == Some(0.0);
    match (&n.op, n.args.as_slice()) {
        (Op::Unary(UnaryOp::Abs), [u]) => Some(*u),
        (Op::Binary(BinaryOp::Max | BinaryOp::Min), [a, b]) if zero(*b) => Some(*a),
        (Op::Binary(BinaryOp::Max | BinaryOp::Min), [a, b]) if zero(*a) => Some(*b),
        _ => None,
    }
}

/// Whether `node` raises its argument `arg` to a constant power above 1 (`arg ^ c`, `arg .* arg`).
fn smoothing_power(p: &Program, node: NodeId, arg: NodeId) -> bool {
    let n = p.graph.node(node);
    match (&n.op, n.args.as_slice()) {
        (Op::Binary(BinaryOp::Pow), &[base, exponent]) => {
            base == arg && p.graph.const_value(exponent).is_some_and(|c| c > 1.0)
        }
        _ => square_of(p, node) == Some(arg),
    }
}
