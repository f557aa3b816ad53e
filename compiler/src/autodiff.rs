//! Symbolic differentiation as IR → IR passes: reverse mode ([`gradient`]) and
//! reverse-over-reverse second order ([`hvp`], [`mixed_vjp`]).
//!
//! Adjoint nodes are appended to the program's own graph, so they reuse the primal nodes
//! (hash-consing dedups repeated subexpressions). Only nodes that depend on the differentiated
//! inputs receive adjoints (activity analysis): a data or constant subtree, such as the exponent
//! of `x ^ 2`, produces no derivative nodes (so no `log(x)` for a constant exponent).
//!
//! Non-smooth ops use one subgradient: `abs` → sign(x) (0 at 0); elementwise `maximum`/`minimum`
//! → the first argument on ties; reduction `max` → the first argmax (`ArgmaxMask`); `sort` and
//! `topk` → the permutation of the current order (`SortScatter`, `SortGather`).
//! `expm` and `matpow` are differentiated through the runtime ops `ExpmFrechet`/`MatPowFrechet`
//! (first derivative) and `ExpmFrechet2`/`MatPowFrechet2` (second derivative), so gradients and
//! Hessian-vector products of their terms work, but third derivatives (in the matrix argument of
//! the second-derivative ops) do not.

use crate::diag::Diagnostic;
use crate::ir::{
    broadcast_shapes, op_name, BinaryOp, Dim, ElemType, Graph, Input, InputId, InputKind, NodeId,
    Op, Program, Shape, UnaryOp,
};
use std::fmt;

/// Why an expression cannot be differentiated: the node, its op, and the reason.
#[derive(Clone, Debug, PartialEq)]
pub struct AdError {
    pub node: NodeId,
    pub op: &'static str,
    pub message: String,
}

impl fmt::Display for AdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot differentiate `{}`: {}", self.op, self.message)
    }
}

impl std::error::Error for AdError {}

impl AdError {
    /// The error as E0363, pointing at the expression where the program knows its source.
    pub fn diagnostic(&self, program: &Program) -> Diagnostic {
        let hint = match self.op {
            op if op.starts_with("argmin") => {
                "an objective that reads an `argmin` has no symbolic gradient: `optc run` solves \
                 it with `maid` (its default for such models), which differentiates the lower \
                 level implicitly; `bench`, `explain --cost` and `eval --check-grad` need a model \
                 without `argmin`"
            }
            "nuclear_norm" => {
                "write it as a term of the objective with a weight of 0 or more (`+ lambda * \
                 nuclear_norm(X)`), which the proximal methods apply by its prox; with a negative \
                 weight (or under `maximize`) the objective is concave in it"
            }
            "card" => "state it as a constraint in `subject to`: `card(x) <= k`",
            _ => {
                "optc differentiates the objective and constraints symbolically: use operations \
                 that have derivatives there (spec/builtins.md)"
            }
        };
        Diagnostic::error("E0363", self.to_string())
            .with_primary_at(
                program.node_span(self.node),
                format!("`{}` is not differentiable here", self.op),
            )
            .with_hint(hint)
    }
}

/// The nodes of a Hessian-vector product: one direction input per differentiated input, the
/// gradient, and H·v, all in the order of `wrt`.
#[derive(Clone, Debug, PartialEq)]
pub struct HvpNodes {
    /// New `InputKind::Direction` inputs, shaped like the differentiated inputs.
    pub directions: Vec<InputId>,
    pub gradient: Vec<NodeId>,
    /// (∇²f · v)_i = Σ_j ∂²f/∂x_i∂x_j v_j.
    pub hvp: Vec<NodeId>,
}

/// The nodes of a mixed second-derivative product for bilevel hypergradients.
#[derive(Clone, Debug, PartialEq)]
pub struct MixedVjpNodes {
    /// New `InputKind::Direction` inputs, shaped like the `x` inputs.
    pub directions: Vec<InputId>,
    /// ∇ₓf, in the order of `x`.
    pub gradient_x: Vec<NodeId>,
    /// ∇_θ ⟨∇ₓf, v⟩ = (∂²f/∂θ∂x) v, in the order of `theta`.
    pub mixed: Vec<NodeId>,
}

/// Appends the gradient of the scalar `f` with respect to each input in `wrt` to the program's
/// graph; returns one node per input, shaped like it.
pub fn gradient(program: &mut Program, f: NodeId, wrt: &[InputId]) -> Result<Vec<NodeId>, AdError> {
    let wrt_nodes = input_nodes(program, f, wrt)?;
    let argmin_objectives: Vec<NodeId> = program.subproblems.iter().map(|s| s.objective).collect();
    let (grads, made) = Reverse::new(&mut program.graph, f)?.run(&wrt_nodes, &argmin_objectives)?;
    attribute_spans(program, &made);
    Ok(grads)
}

/// Derivative nodes are written where the expression they differentiate is (a node already
/// written somewhere keeps its place), so that evaluation errors in derivatives point there.
fn attribute_spans(program: &mut Program, made: &Made) {
    for &(node, at) in made {
        if let Some(span) = program.node_span(at) {
            program.node_spans.entry(node).or_insert(span);
        }
    }
}

/// Adds a direction input v_i per input in `wrt` and appends the nodes of ∇f and ∇²f·v,
/// computed as the gradient of s = Σ_i ⟨∇_i f, v_i⟩.
pub fn hvp(program: &mut Program, f: NodeId, wrt: &[InputId]) -> Result<HvpNodes, AdError> {
    let (directions, gradient, s) = directional_derivative(program, f, wrt)?;
    let hvp = self::gradient(program, s, wrt)?;
    Ok(HvpNodes {
        directions,
        gradient,
        hvp,
    })
}

/// Adds a direction input v_i per input in `x` and appends the nodes of ∇ₓf and of
/// ∇_θ ⟨∇ₓf, v⟩ (the θ-x block of the Hessian applied to v), as bilevel hypergradients need.
pub fn mixed_vjp(
    program: &mut Program,
    f: NodeId,
    x: &[InputId],
    theta: &[InputId],
) -> Result<MixedVjpNodes, AdError> {
    let (directions, gradient_x, s) = directional_derivative(program, f, x)?;
    let mixed = gradient(program, s, theta)?;
    Ok(MixedVjpNodes {
        directions,
        gradient_x,
        mixed,
    })
}

/// Adds the direction inputs and returns them, ∇f, and the scalar Σ_i sum(∇_i f .* v_i).
fn directional_derivative(
    program: &mut Program,
    f: NodeId,
    wrt: &[InputId],
) -> Result<(Vec<InputId>, Vec<NodeId>, NodeId), AdError> {
    let grads = gradient(program, f, wrt)?;
    let mut directions = Vec::with_capacity(wrt.len());
    let mut total = None;
    for (&x, &grad) in wrt.iter().zip(&grads) {
        let v = add_direction(program, x);
        directions.push(v);
        let v_node = program.input_nodes[v.0 as usize];
        let mut b = Builder {
            g: &mut program.graph,
            at: f,
            made: Vec::new(),
        };
        let prod = b.mul(grad, v_node)?;
        let term = b.add(Op::Sum { axis: None }, vec![prod])?;
        total = Some(match total {
            None => term,
            Some(t) => b.binary(BinaryOp::Add, t, term)?,
        });
        let made = b.made;
        attribute_spans(program, &made);
    }
    let s = total.unwrap_or_else(|| program.graph.constant(0.0));
    Ok((directions, grads, s))
}

fn add_direction(program: &mut Program, of: InputId) -> InputId {
    let source = program.input(of);
    let input = Input {
        name: format!("{}.dir", source.name),
        kind: InputKind::Direction,
        elem: ElemType::Real,
        shape: source.shape.clone(),
        source: None,
        value: None,
        lower: None,
        upper: None,
        span: None,
    };
    let id = InputId(program.inputs.len() as u32);
    let node = program
        .graph
        .input(id, input.shape.clone(), InputKind::Direction.stage());
    program.inputs.push(input);
    program.input_nodes.push(node);
    id
}

fn input_nodes(program: &Program, f: NodeId, wrt: &[InputId]) -> Result<Vec<NodeId>, AdError> {
    wrt.iter()
        .map(|&i| {
            program
                .input_nodes
                .get(i.0 as usize)
                .copied()
                .ok_or_else(|| AdError {
                    node: f,
                    op: "input",
                    message: format!("unknown input {}", i.0),
                })
        })
        .collect()
}

/// Node construction for derivative rules, with errors attributed to the node being
/// differentiated and a few peepholes (`x * 1`, `x + 0`, `--x`) that keep the output readable.
struct Builder<'g> {
    g: &'g mut Graph,
    at: NodeId,
    made: Made,
}

/// Each node a [`Builder`] added, with the node being differentiated when it did.
type Made = Vec<(NodeId, NodeId)>;

impl Builder<'_> {
    fn error(&self, message: impl Into<String>) -> AdError {
        AdError {
            node: self.at,
            op: op_name(&self.g.node(self.at).op),
            message: message.into(),
        }
    }

    fn add(&mut self, op: Op, args: Vec<NodeId>) -> Result<NodeId, AdError> {
        let at = self.at;
        let node = self.g.add(op, args).map_err(|e| AdError {
            node: at,
            op: op_name(&self.g.node(at).op),
            message: format!("internal: derivative node has a bad shape: {e}"),
        })?;
        self.made.push((node, at));
        Ok(node)
    }

    fn constant(&mut self, value: f64) -> NodeId {
        self.g.constant(value)
    }

    /// Whether `x` is the constant `value`, possibly broadcast.
    fn is_const(&self, x: NodeId, value: f64) -> bool {
        self.g.const_value(x) == Some(value)
    }

    fn unary(&mut self, u: UnaryOp, x: NodeId) -> Result<NodeId, AdError> {
        match (u, &self.g.node(x).op) {
            (UnaryOp::Neg, Op::Unary(UnaryOp::Neg)) => Ok(self.g.node(x).args[0]),
            (UnaryOp::Neg, Op::Const(c)) => Ok(self.constant(-c)),
            _ => self.add(Op::Unary(u), vec![x]),
        }
    }

    fn binary(&mut self, b: BinaryOp, x: NodeId, y: NodeId) -> Result<NodeId, AdError> {
        let unit = match b {
            BinaryOp::Mul => Some(1.0),
            BinaryOp::Add => Some(0.0),
            _ => None,
        };
        if b == BinaryOp::Mul {
            for (keep, minus_one) in [(x, y), (y, x)] {
                if self.g.shape(minus_one).is_empty() && self.is_const(minus_one, -1.0) {
                    return self.neg(keep);
                }
            }
        }
        if let Some(unit) = unit {
            for (keep, drop) in [(x, y), (y, x)] {
                // A unit that broadcasts into the other operand leaves it unchanged.
                let keep_shape = self.g.shape(keep);
                let fits =
                    broadcast_shapes(keep_shape, self.g.shape(drop)).as_ref() == Ok(keep_shape);
                if fits && self.is_const(drop, unit) {
                    return Ok(keep);
                }
            }
        }
        self.add(Op::Binary(b), vec![x, y])
    }

    fn mul(&mut self, x: NodeId, y: NodeId) -> Result<NodeId, AdError> {
        self.binary(BinaryOp::Mul, x, y)
    }

    fn neg(&mut self, x: NodeId) -> Result<NodeId, AdError> {
        self.unary(UnaryOp::Neg, x)
    }

    fn transpose(&mut self, x: NodeId) -> Result<NodeId, AdError> {
        match self.g.node(x).op {
            Op::Transpose => Ok(self.g.node(x).args[0]),
            Op::Eye(_) => Ok(x),
            _ => self.add(Op::Transpose, vec![x]),
        }
    }

    fn matmul(&mut self, x: NodeId, y: NodeId) -> Result<NodeId, AdError> {
        self.add(Op::MatMul, vec![x, y])
    }

    /// u vᵀ for vectors u, v.
    fn outer(&mut self, u: NodeId, v: NodeId) -> Result<NodeId, AdError> {
        let column = self.add(
            Op::Expand {
                axis: 1,
                size: Dim::fixed(1),
            },
            vec![u],
        )?;
        self.mul(column, v)
    }

    /// Sums the broadcast axes of `x` away so that it has `shape`.
    fn sum_to(&mut self, x: NodeId, shape: &Shape) -> Result<NodeId, AdError> {
        if self.g.shape(x) == shape {
            Ok(x)
        } else {
            self.add(Op::SumTo(shape.clone()), vec![x])
        }
    }

    /// Spreads `g`, the adjoint of a reduction of a tensor of shape `full` over `axis`, back
    /// to `full`.
    fn unreduce(&mut self, g: NodeId, full: &Shape, axis: Option<u32>) -> Result<NodeId, AdError> {
        match axis {
            None if full.is_empty() => Ok(g),
            None => self.add(Op::BroadcastTo(full.clone()), vec![g]),
            Some(a) => self.add(
                Op::Expand {
                    axis: a,
                    size: full[a as usize],
                },
                vec![g],
            ),
        }
    }

    fn zeros(&mut self, shape: &Shape) -> Result<NodeId, AdError> {
        let zero = self.constant(0.0);
        if shape.is_empty() {
            Ok(zero)
        } else {
            self.add(Op::BroadcastTo(shape.clone()), vec![zero])
        }
    }
}

/// One reverse sweep from a scalar output.
struct Reverse<'g> {
    b: Builder<'g>,
    f: NodeId,
    /// The accumulated adjoint of each node up to `f`.
    adjoint: Vec<Option<NodeId>>,
}

impl<'g> Reverse<'g> {
    fn new(g: &'g mut Graph, f: NodeId) -> Result<Reverse<'g>, AdError> {
        if f.0 as usize >= g.len() {
            return Err(AdError {
                node: f,
                op: "?",
                message: "no such node".into(),
            });
        }
        let b = Builder {
            g,
            at: f,
            made: Vec::new(),
        };
        if !b.g.shape(f).is_empty() {
            return Err(b.error("only a scalar expression has a gradient"));
        }
        Ok(Reverse {
            b,
            f,
            adjoint: vec![None; f.0 as usize + 1],
        })
    }

    /// Which nodes up to `f` depend on the `wrt` input nodes. An `argmin` depends on them when
    /// its objective does (an objective built after the argmin node counts as dependent).
    fn activity(&self, wrt: &[NodeId], argmin_objectives: &[NodeId]) -> Vec<bool> {
        let mut active = vec![false; self.f.0 as usize + 1];
        for (id, node) in self.b.g.nodes().take(active.len()) {
            active[id.0 as usize] = match &node.op {
                Op::Input(_) => wrt.contains(&id),
                Op::Argmin(s) => argmin_objectives
                    .get(s.0 as usize)
                    .is_some_and(|&o| o >= id || active[o.0 as usize]),
                _ => node.args.iter().any(|a| active[a.0 as usize]),
            };
        }
        active
    }

    /// The adjoints of `wrt`, with the nodes added ([`Builder::made`]).
    fn run(
        mut self,
        wrt: &[NodeId],
        argmin_objectives: &[NodeId],
    ) -> Result<(Vec<NodeId>, Made), AdError> {
        let active = self.activity(wrt, argmin_objectives);
        self.adjoint[self.f.0 as usize] = Some(self.b.constant(1.0));
        for i in (0..=self.f.0 as usize).rev() {
            let (Some(g), true) = (self.adjoint[i], active[i]) else {
                continue;
            };
            let id = NodeId(i as u32);
            let node = self.b.g.node(id).clone();
            let need: Vec<bool> = node.args.iter().map(|a| active[a.0 as usize]).collect();
            // An active node without arguments is an input or an `argmin` (which reports).
            if matches!(node.op, Op::Input(_)) || (!node.args.is_empty() && !need.contains(&true)) {
                continue;
            }
            self.b.at = id;
            let locals = local_adjoints(&mut self.b, id, &node.op, &node.args, g, &need)?;
            for ((&arg, local), needed) in node.args.iter().zip(locals).zip(need) {
                if let (Some(local), true) = (local, needed) {
                    let slot = &mut self.adjoint[arg.0 as usize];
                    *slot = Some(match *slot {
                        None => local,
                        Some(acc) => self.b.binary(BinaryOp::Add, acc, local)?,
                    });
                }
            }
        }
        let grads = wrt
            .iter()
            .map(
                |&x| match self.adjoint.get(x.0 as usize).copied().flatten() {
                    Some(g) => Ok(g),
                    None => {
                        let shape = self.b.g.shape(x).clone();
                        self.b.zeros(&shape)
                    }
                },
            )
            .collect::<Result<_, _>>()?;
        Ok((grads, self.b.made))
    }
}

/// The adjoints of the arguments of node `y = op(args)` given its adjoint `g`, for the
/// arguments flagged in `need` (others may be `None`). Each has its argument's shape.
fn local_adjoints(
    b: &mut Builder,
    y: NodeId,
    op: &Op,
    args: &[NodeId],
    g: NodeId,
    need: &[bool],
) -> Result<Vec<Option<NodeId>>, AdError> {
    let shape = |b: &Builder, i: usize| b.g.shape(args[i]).clone();
    let one = |x: NodeId| -> Result<Vec<Option<NodeId>>, AdError> { Ok(vec![Some(x)]) };
    match op {
        Op::Input(_) | Op::Const(_) | Op::DimSize(_) | Op::LoopIndex(_) | Op::Eye(_) => {
            Ok(Vec::new())
        }
        Op::Unary(u) => {
            let x = args[0];
            let d = match u {
                UnaryOp::Neg => b.neg(g)?,
                UnaryOp::Exp => b.mul(g, y)?,
                UnaryOp::Log => b.binary(BinaryOp::Div, g, x)?,
                UnaryOp::Sqrt => {
                    // 1/(2√x), taken as 0 at x = 0 (where it is infinite): so ‖x‖₂ = √Σx² has
                    // the subgradient 0 at x = 0, not 0/0.
                    let half = b.constant(0.5);
                    let at_zero = {
                        let minus = b.neg(y)?;
                        b.unary(UnaryOp::Step, minus)?
                    };
                    let one = b.constant(1.0);
                    let positive = b.binary(BinaryOp::Sub, one, at_zero)?;
                    let denominator = b.binary(BinaryOp::Add, y, at_zero)?;
                    let scaled = b.mul(half, positive)?;
                    let dy = b.binary(BinaryOp::Div, scaled, denominator)?;
                    b.mul(g, dy)?
                }
                UnaryOp::Abs => {
                    let s = b.unary(UnaryOp::Sign, x)?;
                    b.mul(g, s)?
                }
                UnaryOp::Sign | UnaryOp::Step => return Ok(vec![None]),
                UnaryOp::Tanh => {
                    let one = b.constant(1.0);
                    let y2 = b.mul(y, y)?;
                    let dy = b.binary(BinaryOp::Sub, one, y2)?;
                    b.mul(g, dy)?
                }
                UnaryOp::Sigmoid => {
                    let one = b.constant(1.0);
                    let rest = b.binary(BinaryOp::Sub, one, y)?;
                    let dy = b.mul(y, rest)?;
                    b.mul(g, dy)?
                }
                UnaryOp::Softplus => {
                    let dy = b.unary(UnaryOp::Sigmoid, x)?;
                    b.mul(g, dy)?
                }
            };
            one(d)
        }
        Op::Binary(op) => binary_adjoints(b, *op, y, args, g, need),
        Op::Sum { axis } => {
            let full = shape(b, 0);
            one(b.unreduce(g, &full, *axis)?)
        }
        Op::Max { axis } => {
            let full = shape(b, 0);
            let mask = b.add(Op::ArgmaxMask { axis: *axis }, vec![args[0]])?;
            let spread = b.unreduce(g, &full, *axis)?;
            one(b.mul(mask, spread)?)
        }
        Op::LogSumExp { axis } => {
            let full = shape(b, 0);
            let y_full = b.unreduce(y, &full, *axis)?;
            let centered = b.binary(BinaryOp::Sub, args[0], y_full)?;
            let softmax = b.unary(UnaryOp::Exp, centered)?;
            let spread = b.unreduce(g, &full, *axis)?;
            one(b.mul(softmax, spread)?)
        }
        Op::MatMul => matmul_adjoints(b, args, g, need),
        Op::Transpose => one(b.transpose(g)?),
        Op::Diag => one(b.add(Op::DiagPart, vec![g])?),
        Op::DiagPart => one(b.add(Op::Diag, vec![g])?),
        Op::Trace => {
            let n = shape(b, 0)[0];
            let eye = b.add(Op::Eye(n), Vec::new())?;
            one(b.mul(g, eye)?)
        }
        Op::Expm
        | Op::MatPow(_)
        | Op::ExpmFrechet
        | Op::MatPowFrechet(_)
        | Op::ExpmFrechet2
        | Op::MatPowFrechet2(_) => matrix_function_adjoints(b, op, args, g, need),
        Op::LogDet => {
            let inv = b.add(Op::Inv, vec![args[0]])?;
            let inv_t = b.transpose(inv)?;
            one(b.mul(g, inv_t)?)
        }
        Op::Inv => {
            let yt = b.transpose(y)?;
            let left = b.matmul(yt, g)?;
            let prod = b.matmul(left, yt)?;
            one(b.neg(prod)?)
        }
        Op::Solve => {
            let at = b.transpose(args[0])?;
            let db = b.add(Op::Solve, vec![at, g])?;
            let da = if need[0] {
                let prod = if b.g.shape(y).len() == 1 {
                    b.outer(db, y)?
                } else {
                    let yt = b.transpose(y)?;
                    b.matmul(db, yt)?
                };
                Some(b.neg(prod)?)
            } else {
                None
            };
            Ok(vec![da, Some(db)])
        }
        Op::Slice { axis, start, .. } => {
            let size = shape(b, 0)[*axis as usize];
            one(b.add(
                Op::Pad {
                    axis: *axis,
                    start: *start,
                    size,
                },
                vec![g],
            )?)
        }
        Op::Pad { axis, start, .. } => {
            let len = shape(b, 0)[*axis as usize];
            let end = dim_plus(*start, len)
                .ok_or_else(|| b.error("the padded range has no symbolic end"))?;
            one(b.add(
                Op::Slice {
                    axis: *axis,
                    start: *start,
                    end,
                },
                vec![g],
            )?)
        }
        Op::Select { axis } => {
            let size = shape(b, 0)[*axis as usize];
            let d = b.add(Op::Scatter { axis: *axis, size }, vec![g, args[1]])?;
            Ok(vec![Some(d), None])
        }
        Op::Scatter { axis, .. } => {
            let d = b.add(Op::Select { axis: *axis }, vec![g, args[1]])?;
            Ok(vec![Some(d), None])
        }
        Op::Expand { axis, .. } => one(b.add(Op::Sum { axis: Some(*axis) }, vec![g])?),
        Op::Stack => (0..args.len())
            .map(|i| {
                if !need[i] {
                    return Ok(None);
                }
                let index = b.constant(i as f64);
                b.add(Op::Select { axis: 0 }, vec![g, index]).map(Some)
            })
            .collect(),
        Op::BroadcastTo(_) => {
            let s = shape(b, 0);
            one(b.sum_to(g, &s)?)
        }
        Op::SumTo(_) => {
            let s = shape(b, 0);
            one(b.add(Op::BroadcastTo(s), vec![g])?)
        }
        Op::ArgmaxMask { .. } => Ok(vec![None]),
        Op::SortDesc | Op::TopK(_) => {
            // The sort order is locally constant: the adjoint goes back through the permutation.
            one(b.add(Op::SortScatter, vec![args[0], g])?)
        }
        Op::SortScatter => {
            let k = b.g.shape(args[1])[0];
            let dg = b.add(Op::SortGather(k), vec![args[0], g])?;
            Ok(vec![None, Some(dg)])
        }
        Op::SortGather(_) => {
            let dh = b.add(Op::SortScatter, vec![args[0], g])?;
            Ok(vec![None, Some(dh)])
        }
        Op::Card => Err(b.error(
            "a cardinality constraint `card(x) <= k` is enforced by projection, not by gradients",
        )),
        Op::NuclearNorm => Err(b.error(
            "it is handled by its prox, as a term of the objective with a nonnegative weight \
             (`lambda * nuclear_norm(X)`), not by gradients",
        )),
        // Numbered as the model counts them, in order of appearance.
        Op::Argmin(s) => Err(b.error(format!(
            "gradients through argmin number {} are computed by the bilevel solver (implicit \
             differentiation), not symbolically",
            s.0 + 1
        ))),
    }
}

fn binary_adjoints(
    b: &mut Builder,
    op: BinaryOp,
    y: NodeId,
    args: &[NodeId],
    g: NodeId,
    need: &[bool],
) -> Result<Vec<Option<NodeId>>, AdError> {
    let (x0, x1) = (args[0], args[1]);
    // The adjoints before summing broadcast axes away, built only where needed.
    let (d0, d1) = match op {
        BinaryOp::Add => (Some(g), Some(g)),
        BinaryOp::Sub => (Some(g), need[1].then(|| b.neg(g)).transpose()?),
        BinaryOp::Mul => (
            need[0].then(|| b.mul(g, x1)).transpose()?,
            need[1].then(|| b.mul(g, x0)).transpose()?,
        ),
        BinaryOp::Div => {
            let d0 = need[0]
                .then(|| b.binary(BinaryOp::Div, g, x1))
                .transpose()?;
            let d1 = if need[1] {
                let ratio = b.binary(BinaryOp::Div, y, x1)?;
                let prod = b.mul(g, ratio)?;
                Some(b.neg(prod)?)
            } else {
                None
            };
            (d0, d1)
        }
        BinaryOp::Pow => {
            let d0 = if need[0] {
                let dy = power_derivative(b, x0, x1)?;
                Some(b.mul(g, dy)?)
            } else {
                None
            };
            let d1 = if need[1] {
                let log = b.unary(UnaryOp::Log, x0)?;
                let dy = b.mul(y, log)?;
                Some(b.mul(g, dy)?)
            } else {
                None
            };
            (d0, d1)
        }
        BinaryOp::Max | BinaryOp::Min => {
            // The first argument takes the whole adjoint where it is chosen (ties included).
            let diff = if op == BinaryOp::Max {
                b.binary(BinaryOp::Sub, x0, x1)?
            } else {
                b.binary(BinaryOp::Sub, x1, x0)?
            };
            let first = b.unary(UnaryOp::Step, diff)?;
            let d0 = need[0].then(|| b.mul(g, first)).transpose()?;
            let d1 = if need[1] {
                let one = b.constant(1.0);
                let second = b.binary(BinaryOp::Sub, one, first)?;
                Some(b.mul(g, second)?)
            } else {
                None
            };
            (d0, d1)
        }
    };
    let mut out = Vec::with_capacity(2);
    for (d, x) in [(d0, x0), (d1, x1)] {
        out.push(match d {
            Some(d) => {
                let s = b.g.shape(x).clone();
                Some(b.sum_to(d, &s)?)
            }
            None => None,
        });
    }
    Ok(out)
}

/// ∂(a^p)/∂a = p·a^(p−1), with constant exponents folded (`x^2` → `2·x`).
fn power_derivative(b: &mut Builder, a: NodeId, p: NodeId) -> Result<NodeId, AdError> {
    let lowered = match b.g.node(p).op {
        Op::Const(c) if c - 1.0 == 1.0 => a,
        Op::Const(c) if c - 1.0 == 0.0 => return Ok(p),
        Op::Const(c) => {
            let e = b.constant(c - 1.0);
            b.binary(BinaryOp::Pow, a, e)?
        }
        _ => {
            let one = b.constant(1.0);
            let e = b.binary(BinaryOp::Sub, p, one)?;
            b.binary(BinaryOp::Pow, a, e)?
        }
    };
    b.mul(p, lowered)
}

/// The first and second Fréchet derivative ops of the matrix function (`expm` or `matpow`) that
/// `op` (the function or one of its derivatives) belongs to.
fn frechet_ops(op: &Op) -> (Op, Op) {
    match op {
        Op::MatPow(k) | Op::MatPowFrechet(k) | Op::MatPowFrechet2(k) => {
            (Op::MatPowFrechet(*k), Op::MatPowFrechet2(*k))
        }
        _ => (Op::ExpmFrechet, Op::ExpmFrechet2),
    }
}

/// Adjoints of a matrix power series f (`expm`, `matpow`) and of its derivatives, args `(A)`,
/// `(A, E)` or `(A, E, F)`. With L = Df and D² = D²f: ⟨G, f(A)⟩ has adjoint L(Aᵀ, G) in A;
/// ⟨G, L(A, E)⟩ is linear in E with adjoint L(Aᵀ, G), and its adjoint in A is D²(Aᵀ)[Eᵀ, G];
/// ⟨G, D²(A)[E, F]⟩ has adjoints D²(Aᵀ)[Fᵀ, G] in E and D²(Aᵀ)[Eᵀ, G] in F. (Each term
/// Aⁱ E Aʲ of the series transposes to a term of the same series at Aᵀ, which makes these
/// symmetric.) Third derivatives (the adjoint of D² in A) are not supported.
fn matrix_function_adjoints(
    b: &mut Builder,
    op: &Op,
    args: &[NodeId],
    g: NodeId,
    need: &[bool],
) -> Result<Vec<Option<NodeId>>, AdError> {
    let (first, second) = frechet_ops(op);
    let at = b.transpose(args[0])?;
    let directions = &args[1..];
    let mut out = Vec::with_capacity(args.len());
    out.push(if !need[0] {
        None
    } else {
        match directions {
            [] => Some(b.add(first.clone(), vec![at, g])?),
            [e] => {
                let et = b.transpose(*e)?;
                Some(b.add(second.clone(), vec![at, et, g])?)
            }
            _ => {
                return Err(b.error(
                    "third derivatives of matrix functions (expm, matpow) are not supported",
                ))
            }
        }
    });
    for i in 0..directions.len() {
        out.push(if !need[i + 1] {
            None
        } else if directions.len() == 1 {
            Some(b.add(first.clone(), vec![at, g])?)
        } else {
            let other = b.transpose(directions[1 - i])?;
            Some(b.add(second.clone(), vec![at, other, g])?)
        });
    }
    Ok(out)
}

/// Adjoints of `A @ B` for the four rank cases (vectors act as row/column vectors).
fn matmul_adjoints(
    b: &mut Builder,
    args: &[NodeId],
    g: NodeId,
    need: &[bool],
) -> Result<Vec<Option<NodeId>>, AdError> {
    let (a, c) = (args[0], args[1]);
    let ranks = (b.g.shape(a).len(), b.g.shape(c).len());
    let da = if need[0] {
        Some(match ranks {
            (1, 1) => b.mul(g, c)?,
            (1, _) => b.matmul(c, g)?,
            (_, 1) => b.outer(g, c)?,
            _ => {
                let ct = b.transpose(c)?;
                b.matmul(g, ct)?
            }
        })
    } else {
        None
    };
    let dc = if need[1] {
        Some(match ranks {
            (1, 1) => b.mul(g, a)?,
            (1, _) => b.outer(a, g)?,
            (_, 1) => b.matmul(g, a)?,
            _ => {
                let at = b.transpose(a)?;
                b.matmul(at, g)?
            }
        })
    } else {
        None
    };
    Ok(vec![da, dc])
}

/// `start + len` when it is again a `Dim`.
fn dim_plus(start: Dim, len: Dim) -> Option<Dim> {
    let sym = match (start.sym, len.sym) {
        (s, None) | (None, s) => s,
        _ => return None,
    };
    Some(Dim {
        sym,
        offset: start.offset + len.offset,
    })
}
