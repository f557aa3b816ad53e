//! The reference interpreter: the semantic ground truth of the IR, in f64 on `ndarray`.
//!
//! It is deliberately simple. Values are kept in a memo with one slot per arena node; the nodes the
//! roots need are marked with an explicit work list, then computed in arena order (which is a
//! topological order), so nothing recurses. Every op computes IEEE values (`log(-1)` is NaN);
//! [`eval_checked`] instead stops at the first node whose value is not finite and names its op.
//! Lower-level problems (`Op::Argmin`) are delegated to a [`SubproblemSolver`].

use crate::linalg::{self, LinalgError};
use ndarray::{
    arr0, Array1, Array2, ArrayD, ArrayView1, ArrayView2, ArrayViewD, Axis, Dimension, Ix1, Ix2,
    IxDyn, Zip,
};
use optc_compiler::codes::CodeInfo;
use optc_compiler::diag::Diagnostic;
use optc_compiler::ir::{op_name, BinaryOp, Dim, NodeId, Op, Program, SubproblemId};
use std::fmt;

/// Values bound to a program's symbols for one evaluation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bindings {
    /// Size of each dimension symbol, by `DimId`.
    pub dims: Vec<u64>,
    /// Value of each input, by `InputId` (`None`: unbound, an error if a root needs it).
    pub inputs: Vec<Option<ArrayD<f64>>>,
    /// Value of each `for` index, by loop level (`Op::LoopIndex(level)`).
    pub loop_indices: Vec<u64>,
}

/// Solves the lower-level problem of an `argmin` node.
pub trait SubproblemSolver {
    /// The minimizer of subproblem `sub`. `outer` holds the values computed so far, one slot per
    /// arena node; every outer node the subproblem's objective reads is filled.
    fn solve(
        &mut self,
        program: &Program,
        sub: SubproblemId,
        bindings: &Bindings,
        outer: &[Option<ArrayD<f64>>],
    ) -> Result<ArrayD<f64>, EvalError>;
}

/// A [`SubproblemSolver`] for programs without `argmin`: every call is an error.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSubproblems;

impl SubproblemSolver for NoSubproblems {
    fn solve(
        &mut self,
        _program: &Program,
        sub: SubproblemId,
        _bindings: &Bindings,
        _outer: &[Option<ArrayD<f64>>],
    ) -> Result<ArrayD<f64>, EvalError> {
        Err(EvalError::Subproblem {
            sub,
            message: "no solver for lower-level problems is available here".into(),
        })
    }
}

/// Largest number of elements any value may have (2³⁴).
pub const MAX_ELEMENTS: u128 = 1 << 34;

/// Why an evaluation failed. Each variant has a stable code in E0400–E0449 ([`EvalError::code`]).
#[derive(Clone, Debug, PartialEq)]
pub enum EvalError {
    /// E0400: a shape or value needs a dimension symbol that has no size.
    UnboundDim { dim: String },
    /// E0401: a needed input has no value.
    UnboundInput { input: String },
    /// E0402: a `LoopIndex` outside of the loop levels bound.
    UnboundLoopIndex { level: u32 },
    /// E0403: an input's value does not have its declared shape.
    InputShape {
        input: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// E0404: a size is negative or a slice/top-k range does not fit its operand.
    BadSize {
        node: NodeId,
        op: &'static str,
        message: String,
    },
    /// E0405: an index (of `select`) outside `0..len`.
    IndexOutOfRange {
        node: NodeId,
        index: f64,
        len: usize,
    },
    /// E0406: an index that is not an integer (or not a number).
    NonIntegralIndex { node: NodeId, index: f64 },
    /// E0407: `solve`/`inv` of a singular matrix.
    Singular { node: NodeId, op: &'static str },
    /// E0408: `logdet` of a matrix outside its domain: its leading principal minor of order
    /// `minor` is not positive.
    LogdetDomain { node: NodeId, minor: usize },
    /// E0409: (checked evaluation) the first node whose value has a NaN or infinite entry.
    NonFinite {
        node: NodeId,
        op: &'static str,
        index: Vec<usize>,
        value: f64,
    },
    /// E0410: the lower-level solver failed.
    Subproblem { sub: SubproblemId, message: String },
    /// E0411: the singular value decomposition of a nuclear norm did not converge.
    SvdFailed { node: NodeId },
    /// E0412: a value would have more than 2³⁴ elements.
    TooLarge { node: NodeId, elements: u128 },
    /// E0449: the value computed disagrees with the IR (a bug in optc, not in the model).
    Internal { node: NodeId, message: String },
}

/// The catalogue entries of the interpreter's codes (for `optc explain`).
pub const EVAL: &[CodeInfo] = &[
    CodeInfo {
        code: "E0400",
        title: "dimension has no size",
        explanation: "A shape or value needs the size of a dimension symbol, but no data array determined it and it has no default. Bind it with data or `--dims n=10`, or give it a default in the model (`dims n = 10`).",
    },
    CodeInfo {
        code: "E0401",
        title: "input has no value",
        explanation: "An expression reads a data array, parameter or variable that has no value in this evaluation.",
    },
    CodeInfo {
        code: "E0402",
        title: "loop index outside its loop",
        explanation: "A `for` index was read where no index value is bound.",
    },
    CodeInfo {
        code: "E0403",
        title: "value has the wrong shape",
        explanation: "The array bound to an input does not have the shape its declaration gives under the bound dimension sizes.",
    },
    CodeInfo {
        code: "E0404",
        title: "size out of range",
        explanation: "A size evaluated to a negative number, or a slice or top-k asks for more elements than its operand has.",
    },
    CodeInfo {
        code: "E0405",
        title: "index out of range",
        explanation: "An index is negative or not smaller than the length of the indexed axis (indices are 0-based).",
    },
    CodeInfo {
        code: "E0406",
        title: "index is not an integer",
        explanation: "An index evaluated to a value that is not an integer.",
    },
    CodeInfo {
        code: "E0407",
        title: "singular matrix",
        explanation: "`solve` or `inv` was applied to a matrix that is singular to working precision.",
    },
    CodeInfo {
        code: "E0408",
        title: "logdet outside its domain",
        explanation: "`logdet(A)` is log det A where every leading principal minor of A is positive: for a symmetric A, where A is positive definite (Sylvester's criterion); for a Z-matrix such as sI − W∘W, where it is a nonsingular M-matrix (DAGMA's domain). A matrix with det A > 0 can still be outside (two negative eigenvalues). The message names the order of the first minor that is not positive. While a solver searches, such a point is a rejected trial (the step is shortened); at the start point or a point the solver must evaluate, it is an error: start inside the domain (e.g. at eye(n)).",
    },
    CodeInfo {
        code: "E0409",
        title: "value is not finite",
        explanation: "A node produced NaN or an infinite value (e.g. log of a negative number, overflow of exp). The diagnostic points at the first such expression in the model (for a derivative, at the expression differentiated) and names its op. `optc run` reports it when a solve diverges because the objective or its gradient is not finite at its point; `optc eval` warns with it when the objective is not finite.",
    },
    CodeInfo {
        code: "E0410",
        title: "lower-level problem failed",
        explanation: "The solver of an `argmin` lower-level problem failed or is not available.",
    },
    CodeInfo {
        code: "E0411",
        title: "SVD did not converge",
        explanation: "The singular value decomposition needed by `nuclear_norm` did not converge.",
    },
    CodeInfo {
        code: "E0412",
        title: "value too large",
        explanation: "A value would have more than 2^34 elements.",
    },
    CodeInfo {
        code: "E0449",
        title: "internal evaluation error",
        explanation: "The interpreter computed a value that disagrees with the IR. This is a bug in optc; please report it.",
    },
];

impl EvalError {
    /// Whether no value of the variables avoids this error: it comes from sizes, indices or
    /// shapes, which the data, parameters and dims fix (or from a bug), not from the point.
    pub fn holds_everywhere(&self) -> bool {
        matches!(
            self,
            EvalError::UnboundDim { .. }
                | EvalError::UnboundInput { .. }
                | EvalError::UnboundLoopIndex { .. }
                | EvalError::InputShape { .. }
                | EvalError::BadSize { .. }
                | EvalError::IndexOutOfRange { .. }
                | EvalError::NonIntegralIndex { .. }
                | EvalError::TooLarge { .. }
                | EvalError::Internal { .. }
        )
    }

    /// The stable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            EvalError::UnboundDim { .. } => "E0400",
            EvalError::UnboundInput { .. } => "E0401",
            EvalError::UnboundLoopIndex { .. } => "E0402",
            EvalError::InputShape { .. } => "E0403",
            EvalError::BadSize { .. } => "E0404",
            EvalError::IndexOutOfRange { .. } => "E0405",
            EvalError::NonIntegralIndex { .. } => "E0406",
            EvalError::Singular { .. } => "E0407",
            EvalError::LogdetDomain { .. } => "E0408",
            EvalError::NonFinite { .. } => "E0409",
            EvalError::Subproblem { .. } => "E0410",
            EvalError::SvdFailed { .. } => "E0411",
            EvalError::TooLarge { .. } => "E0412",
            EvalError::Internal { .. } => "E0449",
        }
    }
}

fn index_text(index: &[usize]) -> String {
    let parts: Vec<String> = index.iter().map(|i| i.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text(true))
    }
}

impl EvalError {
    /// The message, naming the node (`at %6`) when `node_ids`: a diagnostic that points at the
    /// node's expression leaves the id out.
    fn text(&self, node_ids: bool) -> String {
        let at = |node: &NodeId| match node_ids {
            true => format!(" at {node}"),
            false => String::new(),
        };
        match self {
            EvalError::UnboundDim { dim } => format!("dimension `{dim}` has no size"),
            EvalError::UnboundInput { input } => format!("`{input}` has no value"),
            EvalError::UnboundLoopIndex { level } => {
                format!("loop index of level {level} read outside its loop")
            }
            EvalError::InputShape {
                input,
                expected,
                found,
            } => format!(
                "`{input}` has shape {} but its declaration gives {}",
                index_text(found),
                index_text(expected)
            ),
            EvalError::BadSize { node, op, message } => format!("{op}{}: {message}", at(node)),
            EvalError::IndexOutOfRange { node, index, len } => format!(
                "index {index} out of range for an axis of length {len}{}",
                at(node)
            ),
            EvalError::NonIntegralIndex { node, index } => {
                format!("index {index} is not an integer{}", at(node))
            }
            EvalError::Singular { node, op } => format!("{op} of a singular matrix{}", at(node)),
            EvalError::LogdetDomain { node, minor } => format!(
                "logdet of a matrix outside its domain{}: its leading {minor}×{minor} minor is not positive",
                at(node)
            ),
            EvalError::NonFinite {
                node,
                op,
                index,
                value,
            } => format!(
                "{op} produced {value}{}{}",
                at(node),
                if index.is_empty() {
                    String::new()
                } else {
                    format!(", element {}", index_text(index))
                }
            ),
            EvalError::Subproblem { sub, message } => {
                format!("lower-level problem #{}: {message}", sub.0)
            }
            EvalError::SvdFailed { node } => {
                format!("singular value decomposition did not converge{}", at(node))
            }
            EvalError::TooLarge { node, elements } => format!(
                "a value{} would have {elements} elements (at most 2^34 allowed)",
                at(node)
            ),
            // A bug in optc: the id helps whoever reads the report.
            EvalError::Internal { node, message } => format!("internal error at {node}: {message}"),
        }
    }
}

impl std::error::Error for EvalError {}

impl EvalError {
    /// The node the error is about, if any.
    pub fn node(&self) -> Option<NodeId> {
        match self {
            EvalError::BadSize { node, .. }
            | EvalError::IndexOutOfRange { node, .. }
            | EvalError::NonIntegralIndex { node, .. }
            | EvalError::Singular { node, .. }
            | EvalError::LogdetDomain { node, .. }
            | EvalError::NonFinite { node, .. }
            | EvalError::SvdFailed { node }
            | EvalError::TooLarge { node, .. }
            | EvalError::Internal { node, .. } => Some(*node),
            EvalError::UnboundDim { .. }
            | EvalError::UnboundInput { .. }
            | EvalError::UnboundLoopIndex { .. }
            | EvalError::InputShape { .. }
            | EvalError::Subproblem { .. } => None,
        }
    }

    /// The error as a diagnostic that points at the expression of its node (for a derivative,
    /// the expression differentiated), where `program` knows it.
    pub fn diagnostic(self, program: &Program) -> Diagnostic {
        let span = self.node().and_then(|n| program.node_span(n));
        let label = match &self {
            EvalError::NonFinite { value, .. } => format!("{value} here"),
            EvalError::Singular { .. } => "a singular matrix here".into(),
            EvalError::LogdetDomain { .. } => "outside the domain of logdet here".into(),
            EvalError::IndexOutOfRange { .. } | EvalError::NonIntegralIndex { .. } => {
                "indexed here".into()
            }
            _ => "evaluated here".into(),
        };
        // Pointing at the expression, the message needs no node id.
        let message = self.text(span.is_none());
        let mut d = Diagnostic::from(self).with_primary_at(span, label);
        d.message = message;
        d
    }
}

impl From<EvalError> for Diagnostic {
    fn from(e: EvalError) -> Diagnostic {
        let d = Diagnostic::error(e.code(), e.to_string());
        match e {
            EvalError::Internal { .. } => d.with_note("this is a bug in optc"),
            EvalError::LogdetDomain { .. } => d.with_hint(
                "logdet(A) needs every leading principal minor of A positive (a symmetric A positive definite, sI − W∘W an M-matrix); start inside that domain",
            ),
            _ => d,
        }
    }
}

/// Values of `roots` (in order).
pub fn eval(
    program: &Program,
    bindings: &Bindings,
    roots: &[NodeId],
    sub: &mut dyn SubproblemSolver,
) -> Result<Vec<ArrayD<f64>>, EvalError> {
    eval_roots(program, bindings, roots, sub, false)
}

/// Like [`eval`], but fails with [`EvalError::NonFinite`] at the first node (in arena order) whose
/// value has a NaN or infinite entry: the node where non-finite values originate.
pub fn eval_checked(
    program: &Program,
    bindings: &Bindings,
    roots: &[NodeId],
    sub: &mut dyn SubproblemSolver,
) -> Result<Vec<ArrayD<f64>>, EvalError> {
    eval_roots(program, bindings, roots, sub, true)
}

fn eval_roots(
    program: &Program,
    bindings: &Bindings,
    roots: &[NodeId],
    sub: &mut dyn SubproblemSolver,
    check_finite: bool,
) -> Result<Vec<ArrayD<f64>>, EvalError> {
    let mut values = vec![None; program.graph.len()];
    eval_into(program, bindings, &mut values, roots, sub, check_finite)?;
    roots
        .iter()
        .map(|&r| {
            values[r.0 as usize]
                .clone()
                .ok_or_else(|| internal(r, "root was not computed"))
        })
        .collect()
}

/// The value of every node that does not depend on an unbound input or loop index (`None` for
/// those that do), e.g. to cross-check another backend node by node.
pub fn eval_all(
    program: &Program,
    bindings: &Bindings,
    sub: &mut dyn SubproblemSolver,
) -> Result<Vec<Option<ArrayD<f64>>>, EvalError> {
    let g = &program.graph;
    let mut computable = vec![true; g.len()];
    for (id, node) in g.nodes() {
        let own = match node.op {
            Op::Input(i) => matches!(bindings.inputs.get(i.0 as usize), Some(Some(_))),
            Op::LoopIndex(level) => (level as usize) < bindings.loop_indices.len(),
            _ => true,
        };
        computable[id.0 as usize] = own && node.args.iter().all(|a| computable[a.0 as usize]);
    }
    let roots: Vec<NodeId> = g
        .nodes()
        .map(|(id, _)| id)
        .filter(|id| computable[id.0 as usize])
        .collect();
    let mut values = vec![None; g.len()];
    eval_into(program, bindings, &mut values, &roots, sub, false)?;
    Ok(values)
}

/// The general form: computes every node the roots need into `values` (one slot per arena node).
/// Slots already filled are taken as given, which lets a caller seed known values (e.g. a
/// subproblem solver reusing the outer values). With `check_finite`, fails at the first new value
/// that is not finite.
pub fn eval_into(
    program: &Program,
    bindings: &Bindings,
    values: &mut [Option<ArrayD<f64>>],
    roots: &[NodeId],
    sub: &mut dyn SubproblemSolver,
    check_finite: bool,
) -> Result<(), EvalError> {
    let g = &program.graph;
    assert_eq!(values.len(), g.len(), "one value slot per node");
    let needed = mark_needed(program, values, roots);
    for (id, node) in g.nodes() {
        let i = id.0 as usize;
        if !needed[i] || values[i].is_some() {
            continue;
        }
        let shape = concrete_shape(program, bindings, id, &node.shape)?;
        let mut value = compute(program, bindings, id, values, sub)?;
        if value.shape() != shape.as_slice() {
            return Err(match node.op {
                Op::Input(input) => EvalError::InputShape {
                    input: program.input(input).name.clone(),
                    expected: shape,
                    found: value.shape().to_vec(),
                },
                _ => EvalError::Internal {
                    node: id,
                    message: format!(
                        "{} gave shape {} where the IR says {}",
                        op_name(&node.op),
                        index_text(value.shape()),
                        index_text(&shape)
                    ),
                },
            });
        }
        if check_finite {
            if let Some((index, &x)) = value.indexed_iter().find(|(_, x)| !x.is_finite()) {
                return Err(EvalError::NonFinite {
                    node: id,
                    op: op_name(&node.op),
                    index: index.slice().to_vec(),
                    value: x,
                });
            }
        }
        if !value.is_standard_layout() {
            value = value.as_standard_layout().into_owned();
        }
        values[i] = Some(value);
    }
    Ok(())
}

/// Which nodes must be computed: the roots and their arguments, transitively, stopping at filled
/// slots. An `argmin` node needs the outer nodes its subproblem's objective reads.
fn mark_needed(program: &Program, values: &[Option<ArrayD<f64>>], roots: &[NodeId]) -> Vec<bool> {
    let g = &program.graph;
    let mut needed = vec![false; g.len()];
    let mut work: Vec<NodeId> = roots.to_vec();
    while let Some(id) = work.pop() {
        let i = id.0 as usize;
        if needed[i] {
            continue;
        }
        needed[i] = true;
        if values[i].is_some() {
            continue;
        }
        let node = g.node(id);
        work.extend(node.args.iter().copied());
        if let Op::Argmin(s) = node.op {
            work.extend(outer_nodes(program, s));
        }
    }
    needed
}

/// The outer nodes read by the objective of subproblem `sub`: the largest subexpressions of the
/// objective that do not depend on the subproblem's variable.
pub fn outer_nodes(program: &Program, sub: SubproblemId) -> Vec<NodeId> {
    let g = &program.graph;
    let subproblem = &program.subproblems[sub.0 as usize];
    let mut inner = vec![false; g.len()];
    for (id, node) in g.nodes() {
        inner[id.0 as usize] =
            node.op == Op::Input(subproblem.var) || node.args.iter().any(|a| inner[a.0 as usize]);
    }
    let mut outer = Vec::new();
    let mut seen = vec![false; g.len()];
    let mut work = vec![subproblem.objective];
    while let Some(id) = work.pop() {
        let i = id.0 as usize;
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        if inner[i] {
            work.extend(g.node(id).args.iter().copied());
        } else {
            outer.push(id);
        }
    }
    outer.sort();
    outer
}

/// The value of a size under the bindings (may be negative, e.g. `d - 1` with `d = 0`).
fn dim_value(program: &Program, bindings: &Bindings, dim: Dim) -> Result<i64, EvalError> {
    match dim.sym {
        None => Ok(dim.offset),
        Some(s) => match bindings.dims.get(s.0 as usize) {
            Some(&v) => Ok(dim.offset + v as i64),
            None => Err(EvalError::UnboundDim {
                dim: program
                    .dims
                    .get(s.0 as usize)
                    .map_or_else(|| format!("#{}", s.0), |d| d.name.clone()),
            }),
        },
    }
}

/// A size that must be non-negative (a length).
fn length(
    program: &Program,
    bindings: &Bindings,
    node: NodeId,
    dim: Dim,
) -> Result<usize, EvalError> {
    let v = dim_value(program, bindings, dim)?;
    usize::try_from(v).map_err(|_| EvalError::BadSize {
        node,
        op: op_name(&program.graph.node(node).op),
        message: format!("size {} is {v}", program.dim_name(dim)),
    })
}

fn concrete_shape(
    program: &Program,
    bindings: &Bindings,
    node: NodeId,
    shape: &[Dim],
) -> Result<Vec<usize>, EvalError> {
    let sizes = shape
        .iter()
        .map(|&d| length(program, bindings, node, d))
        .collect::<Result<Vec<usize>, _>>()?;
    let elements = sizes.iter().map(|&s| s as u128).product::<u128>();
    if elements > MAX_ELEMENTS {
        return Err(EvalError::TooLarge { node, elements });
    }
    Ok(sizes)
}

fn internal(node: NodeId, message: impl Into<String>) -> EvalError {
    EvalError::Internal {
        node,
        message: message.into(),
    }
}

fn vector(node: NodeId, a: &ArrayD<f64>) -> Result<ArrayView1<'_, f64>, EvalError> {
    a.view()
        .into_dimensionality::<Ix1>()
        .map_err(|_| internal(node, "expected a vector"))
}

fn matrix(node: NodeId, a: &ArrayD<f64>) -> Result<ArrayView2<'_, f64>, EvalError> {
    a.view()
        .into_dimensionality::<Ix2>()
        .map_err(|_| internal(node, "expected a matrix"))
}

fn scalar(x: f64) -> ArrayD<f64> {
    arr0(x).into_dyn()
}

/// The position of the first maximal element (NaNs are skipped); `None` when there is none.
fn first_argmax<'a>(xs: impl Iterator<Item = &'a f64>) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, &x) in xs.enumerate() {
        if best.is_none_or(|(_, b)| x > b) && !x.is_nan() {
            best = Some((i, x));
        }
    }
    best.map(|(i, _)| i)
}

/// 1 at the first maximal element of the whole tensor or of each lane along `axis`, else 0.
fn argmax_mask(a: &ArrayD<f64>, axis: Option<u32>) -> ArrayD<f64> {
    let mut mask = ArrayD::zeros(a.raw_dim());
    match axis {
        Some(k) => Zip::from(mask.lanes_mut(Axis(k as usize)))
            .and(a.lanes(Axis(k as usize)))
            .for_each(|mut m, x| {
                if let Some(i) = first_argmax(x.iter()) {
                    m[i] = 1.0;
                }
            }),
        None => {
            if let Some(i) = first_argmax(a.iter()) {
                if let Some(m) = mask.iter_mut().nth(i) {
                    *m = 1.0;
                }
            }
        }
    }
    mask
}

/// Numpy broadcasting of two concrete shapes.
fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    (0..rank)
        .map(|i| {
            let x = (i + a.len()).checked_sub(rank).map_or(1, |j| a[j]);
            let y = (i + b.len()).checked_sub(rank).map_or(1, |j| b[j]);
            match (x, y) {
                _ if x == y => Some(x),
                (1, _) => Some(y),
                (_, 1) => Some(x),
                _ => None,
            }
        })
        .collect()
}

/// Max of a sequence, propagating NaN; −∞ when empty.
fn max_of(xs: ArrayView1<f64>) -> f64 {
    xs.iter()
        .fold(f64::NEG_INFINITY, |m, &x| BinaryOp::Max.apply(m, x))
}

/// log Σ exp(x), shifted by the maximum so that nothing overflows.
fn logsumexp(xs: ArrayView1<f64>) -> f64 {
    let m = max_of(xs);
    if !m.is_finite() {
        return m;
    }
    m + xs.iter().map(|&x| (x - m).exp()).sum::<f64>().ln()
}

/// A reduction over one axis or, without an axis, over all elements.
fn reduce(a: &ArrayD<f64>, axis: Option<u32>, f: fn(ArrayView1<f64>) -> f64) -> ArrayD<f64> {
    match axis {
        Some(k) => a.map_axis(Axis(k as usize), f),
        None => {
            let flat: Array1<f64> = a.iter().copied().collect();
            scalar(f(flat.view()))
        }
    }
}

fn sum_of(xs: ArrayView1<f64>) -> f64 {
    xs.sum()
}

/// Positions of the entries of `v` from largest to smallest (ties in index order), the order
/// `sorted_desc` gives. Also the order of the native sort kernels.
pub fn descending_order(v: ArrayView1<f64>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&i, &j| v[j].total_cmp(&v[i]));
    order
}

fn sorted_desc(v: ArrayView1<f64>) -> Vec<f64> {
    let mut xs = v.to_vec();
    xs.sort_by(|a, b| b.total_cmp(a));
    xs
}

/// A scalar index as a position along an axis of length `len` (also the rule of the CPU
/// backend's run-time index checks).
pub(crate) fn position(node: NodeId, index: f64, len: usize) -> Result<usize, EvalError> {
    if index.fract() != 0.0 || !index.is_finite() {
        return Err(EvalError::NonIntegralIndex { node, index });
    }
    if index < 0.0 || index >= len as f64 {
        return Err(EvalError::IndexOutOfRange { node, index, len });
    }
    Ok(index as usize)
}

fn from_matrix(m: Array2<f64>) -> ArrayD<f64> {
    m.into_dyn()
}

/// Computes one node from its arguments' values.
fn compute(
    program: &Program,
    bindings: &Bindings,
    id: NodeId,
    values: &[Option<ArrayD<f64>>],
    sub: &mut dyn SubproblemSolver,
) -> Result<ArrayD<f64>, EvalError> {
    let node = program.graph.node(id);
    let args: Vec<&ArrayD<f64>> = node
        .args
        .iter()
        .map(|a| {
            values[a.0 as usize]
                .as_ref()
                .ok_or_else(|| internal(id, format!("argument {a} was not computed")))
        })
        .collect::<Result<_, _>>()?;
    let singular = |e: LinalgError| match e {
        LinalgError::Singular => EvalError::Singular {
            node: id,
            op: op_name(&node.op),
        },
        LinalgError::SvdNoConvergence => EvalError::SvdFailed { node: id },
    };
    Ok(match &node.op {
        Op::Input(input) => match bindings.inputs.get(input.0 as usize) {
            Some(Some(v)) => v.clone(),
            _ => {
                return Err(EvalError::UnboundInput {
                    input: program.input(*input).name.clone(),
                })
            }
        },
        Op::Const(c) => scalar(*c),
        Op::DimSize(d) => scalar(dim_value(program, bindings, *d)? as f64),
        Op::LoopIndex(level) => match bindings.loop_indices.get(*level as usize) {
            Some(&i) => scalar(i as f64),
            None => return Err(EvalError::UnboundLoopIndex { level: *level }),
        },
        Op::Unary(u) => args[0].mapv(|x| u.apply(x)),
        Op::Binary(b) => {
            let (a, c) = (args[0], args[1]);
            let shape = broadcast_shape(a.shape(), c.shape())
                .ok_or_else(|| internal(id, "operands cannot be broadcast"))?;
            let (av, cv) = match (a.broadcast(shape.clone()), c.broadcast(shape)) {
                (Some(av), Some(cv)) => (av, cv),
                _ => return Err(internal(id, "operands cannot be broadcast")),
            };
            Zip::from(&av).and(&cv).map_collect(|&x, &y| b.apply(x, y))
        }
        Op::Sum { axis } => reduce(args[0], *axis, sum_of),
        Op::Max { axis } => reduce(args[0], *axis, max_of),
        Op::LogSumExp { axis } => reduce(args[0], *axis, logsumexp),
        Op::MatMul => {
            let (a, b) = (args[0], args[1]);
            match (a.ndim(), b.ndim()) {
                (1, 1) => scalar(vector(id, a)?.dot(&vector(id, b)?)),
                (1, 2) => vector(id, a)?.dot(&matrix(id, b)?).into_dyn(),
                (2, 1) => matrix(id, a)?.dot(&vector(id, b)?).into_dyn(),
                (2, 2) => from_matrix(matrix(id, a)?.dot(&matrix(id, b)?)),
                _ => return Err(internal(id, "matmul of operands of rank > 2")),
            }
        }
        Op::Transpose => from_matrix(matrix(id, args[0])?.t().to_owned()),
        Op::Eye(n) => from_matrix(Array2::eye(length(program, bindings, id, *n)?)),
        Op::Diag => from_matrix(Array2::from_diag(&vector(id, args[0])?)),
        Op::DiagPart => matrix(id, args[0])?.diag().to_owned().into_dyn(),
        Op::Trace => scalar(matrix(id, args[0])?.diag().sum()),
        Op::Expm => from_matrix(linalg::expm(matrix(id, args[0])?)),
        Op::MatPow(k) => {
            let k = length(program, bindings, id, *k)?;
            from_matrix(linalg::matpow(matrix(id, args[0])?, k))
        }
        Op::LogDet => {
            let value = linalg::logdet(matrix(id, args[0])?).map_err(|outside| {
                EvalError::LogdetDomain {
                    node: id,
                    minor: outside.order,
                }
            })?;
            scalar(value)
        }
        Op::Solve => {
            let a = matrix(id, args[0])?;
            let b = args[1];
            match b.ndim() {
                1 => {
                    let col = vector(id, b)?.insert_axis(Axis(1));
                    let x = linalg::solve(a, col).map_err(singular)?;
                    x.index_axis(Axis(1), 0).to_owned().into_dyn()
                }
                _ => from_matrix(linalg::solve(a, matrix(id, b)?).map_err(singular)?),
            }
        }
        Op::Inv => from_matrix(linalg::inv(matrix(id, args[0])?).map_err(singular)?),
        Op::Slice { axis, start, end } => {
            let a = args[0];
            let k = *axis as usize;
            let len = a.shape()[k];
            let from = length(program, bindings, id, *start)?;
            let to = length(program, bindings, id, *end)?;
            if from > to || to > len {
                return Err(EvalError::BadSize {
                    node: id,
                    op: "slice",
                    message: format!("range {from}..{to} does not fit an axis of length {len}"),
                });
            }
            a.slice_axis(Axis(k), (from..to).into()).to_owned()
        }
        Op::Select { axis } => {
            let a = args[0];
            let k = *axis as usize;
            let index = args[1]
                .first()
                .copied()
                .ok_or_else(|| internal(id, "empty index"))?;
            let i = position(id, index, a.shape()[k])?;
            a.index_axis(Axis(k), i).to_owned()
        }
        Op::Stack => {
            let views: Vec<ArrayViewD<f64>> = args.iter().map(|a| a.view()).collect();
            ndarray::stack(Axis(0), &views).map_err(|e| internal(id, e.to_string()))?
        }
        Op::BroadcastTo(_) => {
            let shape = concrete_shape(program, bindings, id, &node.shape)?;
            args[0]
                .broadcast(IxDyn(&shape))
                .ok_or_else(|| internal(id, "cannot broadcast"))?
                .to_owned()
        }
        Op::SumTo(_) => {
            let target = concrete_shape(program, bindings, id, &node.shape)?;
            let mut v = args[0].clone();
            while v.ndim() > target.len() {
                v = v.sum_axis(Axis(0));
            }
            for (k, &t) in target.iter().enumerate() {
                if t == 1 && v.shape()[k] != 1 {
                    v = v.sum_axis(Axis(k)).insert_axis(Axis(k));
                }
            }
            v
        }
        Op::SortDesc => Array1::from(sorted_desc(vector(id, args[0])?)).into_dyn(),
        Op::TopK(k) => {
            let k = length(program, bindings, id, *k)?;
            let xs = sorted_desc(vector(id, args[0])?);
            if k > xs.len() {
                return Err(EvalError::BadSize {
                    node: id,
                    op: "topk",
                    message: format!("k = {k} for a vector of length {}", xs.len()),
                });
            }
            Array1::from(xs[..k].to_vec()).into_dyn()
        }
        Op::Card => scalar(args[0].iter().filter(|x| x.abs() > 0.0).count() as f64),
        Op::NuclearNorm => scalar(
            linalg::singular_values(matrix(id, args[0])?)
                .map_err(singular)?
                .iter()
                .sum(),
        ),
        Op::Argmin(s) => sub.solve(program, *s, bindings, values)?,
        Op::Expand { axis, .. } => {
            let shape = concrete_shape(program, bindings, id, &node.shape)?;
            args[0]
                .view()
                .insert_axis(Axis(*axis as usize))
                .broadcast(IxDyn(&shape))
                .ok_or_else(|| internal(id, "cannot expand"))?
                .to_owned()
        }
        Op::ArgmaxMask { axis } => argmax_mask(args[0], *axis),
        Op::Pad { axis, start, .. } => {
            let shape = concrete_shape(program, bindings, id, &node.shape)?;
            let k = *axis as usize;
            let from = length(program, bindings, id, *start)?;
            let to = from + args[0].shape()[k];
            if to > shape[k] {
                return Err(EvalError::BadSize {
                    node: id,
                    op: "pad",
                    message: format!(
                        "range {from}..{to} does not fit an axis of length {}",
                        shape[k]
                    ),
                });
            }
            let mut out = ArrayD::zeros(IxDyn(&shape));
            out.slice_axis_mut(Axis(k), (from..to).into())
                .assign(args[0]);
            out
        }
        Op::Scatter { axis, .. } => {
            let shape = concrete_shape(program, bindings, id, &node.shape)?;
            let k = *axis as usize;
            let index = args[1]
                .first()
                .copied()
                .ok_or_else(|| internal(id, "empty index"))?;
            let i = position(id, index, shape[k])?;
            let mut out = ArrayD::zeros(IxDyn(&shape));
            out.index_axis_mut(Axis(k), i).assign(args[0]);
            out
        }
        Op::SortScatter => {
            let (x, g) = (vector(id, args[0])?, vector(id, args[1])?);
            let mut out = Array1::zeros(x.len());
            for (&position, &value) in descending_order(x).iter().zip(g.iter()) {
                out[position] = value;
            }
            out.into_dyn()
        }
        Op::SortGather(_) => {
            let (x, h) = (vector(id, args[0])?, vector(id, args[1])?);
            let k = concrete_shape(program, bindings, id, &node.shape)?[0];
            if k > x.len() {
                return Err(EvalError::BadSize {
                    node: id,
                    op: "sort_gather",
                    message: format!("k = {k} for a vector of length {}", x.len()),
                });
            }
            let order = descending_order(x);
            Array1::from_iter(order.iter().take(k).map(|&i| h[i])).into_dyn()
        }
        Op::ExpmFrechet => from_matrix(linalg::expm_frechet(
            matrix(id, args[0])?,
            matrix(id, args[1])?,
        )),
        Op::ExpmFrechet2 => {
            let a = matrix(id, args[0])?;
            let (e, f) = (matrix(id, args[1])?, matrix(id, args[2])?);
            from_matrix(linalg::expm_frechet2(a, e, f))
        }
        Op::MatPowFrechet(k) => {
            let k = length(program, bindings, id, *k)?;
            let (a, e) = (matrix(id, args[0])?, matrix(id, args[1])?);
            from_matrix(linalg::matpow_frechet(a, e, k))
        }
        Op::MatPowFrechet2(k) => {
            let k = length(program, bindings, id, *k)?;
            let a = matrix(id, args[0])?;
            let (e, f) = (matrix(id, args[1])?, matrix(id, args[2])?);
            from_matrix(linalg::matpow_frechet2(a, e, f, k))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use optc_compiler::ir::UnaryOp;

    #[test]
    fn softplus_and_sigmoid_are_stable_at_extremes() {
        let (softplus, sigmoid) = (UnaryOp::Softplus, UnaryOp::Sigmoid);
        assert_eq!(softplus.apply(1000.0), 1000.0);
        assert_eq!(softplus.apply(-1000.0), 0.0);
        assert!((softplus.apply(0.0) - 2f64.ln()).abs() < 1e-16);
        assert_eq!(sigmoid.apply(-1000.0), 0.0);
        assert_eq!(sigmoid.apply(1000.0), 1.0);
    }

    #[test]
    fn logsumexp_does_not_overflow() {
        let xs = Array1::from(vec![1000.0, 1000.0]);
        assert!((logsumexp(xs.view()) - (1000.0 + 2f64.ln())).abs() < 1e-12);
        let all_neg_inf = Array1::from(vec![f64::NEG_INFINITY; 2]);
        assert_eq!(logsumexp(all_neg_inf.view()), f64::NEG_INFINITY);
    }

    #[test]
    fn catalogue_codes_are_unique_and_in_range() {
        let mut codes: Vec<&str> = EVAL.iter().map(|c| c.code).collect();
        assert!(codes.iter().all(|c| ("E0400"..="E0449").contains(c)));
        codes.dedup();
        assert_eq!(codes.len(), EVAL.len());
    }

    #[test]
    fn broadcast_shapes_follow_numpy() {
        assert_eq!(broadcast_shape(&[3, 1], &[4]), Some(vec![3, 4]));
        assert_eq!(broadcast_shape(&[], &[2, 2]), Some(vec![2, 2]));
        assert_eq!(broadcast_shape(&[3], &[4]), None);
    }
}
