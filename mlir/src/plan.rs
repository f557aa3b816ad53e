//! Fusion and memory planning of one MLIR function: which nodes are computed inside the loops of
//! their consumer (fused), which get a buffer, and where each buffer lives (a caller's input or
//! output array, or an offset of the scratch array).
//!
//! The rules are the Cranelift backend's (`optc_runtime::cpu`) basic ones: a pointwise node is
//! fused into its only consumer unless that consumer would evaluate it more than once per element
//! (broadcast expansion, `diag`, the two passes of log-sum-exp); constants, sizes and identity
//! matrices are fused everywhere; arguments of runtime kernels are always buffered. For the GPU,
//! the argument of a sum of all elements is buffered too (computed by a kernel, summed by a
//! library call). (The
//! Cranelift planner also recomputes one elementwise op of stored values in each of several
//! consumers, and fuses a node read twice by one consumer; this planner does not yet.)

use crate::MlirError;
use optc_compiler::ir::{NodeId, Op, Program};

/// Where the value of a node lives while the function runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// Not needed by the roots.
    Unused,
    /// Computed inside the loops of its consumer, never stored.
    Fused,
    /// A transpose of a buffered matrix, passed to the matrix product as a flag.
    TransposeFlag,
    /// The caller's array of input `k` (by `InputId`).
    Input(u32),
    /// The caller's array of output `k` (the `k`-th root).
    Output(u32),
    /// `scratch[offset..offset + numel]`.
    Scratch(usize),
}

/// Ops whose value at an index is a cheap function of their arguments at (remapped) indices.
pub fn is_pointwise(op: &Op) -> bool {
    matches!(
        op,
        Op::Const(_)
            | Op::DimSize(_)
            | Op::Unary(_)
            | Op::Binary(_)
            | Op::BroadcastTo(_)
            | Op::Eye(_)
            | Op::Transpose
            | Op::Slice { .. }
            | Op::DiagPart
            | Op::Diag
            | Op::Select { .. }
    )
}

/// Pointwise ops that read their arguments at the same flat position (after broadcasting).
pub fn is_elementwise(op: &Op) -> bool {
    matches!(
        op,
        Op::Const(_) | Op::DimSize(_) | Op::Unary(_) | Op::Binary(_) | Op::BroadcastTo(_)
    )
}

/// Ops computed by a call to a runtime kernel (their arguments must be buffered).
pub fn is_kernel(op: &Op) -> bool {
    matches!(
        op,
        Op::MatMul
            | Op::Expm
            | Op::LogDet
            | Op::Solve
            | Op::Inv
            | Op::SortDesc
            | Op::TopK(_)
            | Op::NuclearNorm
    )
}

/// Rejects the ops this backend does not lower.
fn check_supported(op: &Op) -> Result<(), MlirError> {
    match op {
        Op::LoopIndex(_) => Err(MlirError::Unsupported(
            "loop index outside a `for` constraint",
        )),
        Op::Argmin(_) => Err(MlirError::Unsupported("argmin (lower-level problems)")),
        Op::MatPow(_) | Op::MatPowFrechet(_) | Op::MatPowFrechet2(_) => {
            Err(MlirError::Unsupported("matpow and its derivatives"))
        }
        Op::Expand { .. }
        | Op::ArgmaxMask { .. }
        | Op::Pad { .. }
        | Op::Scatter { .. }
        | Op::ExpmFrechet
        | Op::ExpmFrechet2
        | Op::SortScatter
        | Op::SortGather(_) => Err(MlirError::Unsupported(
            "the adjoint ops of reverse mode (expand, pad, scatter, argmax mask, expm Fréchet, sort scatter/gather)",
        )),
        _ => Ok(()),
    }
}

/// The fusion and memory plan of one function.
pub struct Plan {
    /// Concrete shape of every needed node (empty for unused nodes).
    pub shapes: Vec<Vec<usize>>,
    pub storage: Vec<Storage>,
    /// Nodes with a buffer that the function computes, in topological order.
    pub schedule: Vec<NodeId>,
    /// `(output k, node)`: roots whose value is copied at the end (inputs, repeated roots).
    pub copies: Vec<(u32, NodeId)>,
    /// Number of roots (output arrays).
    pub outputs: usize,
    /// Scratch length in f64 elements.
    pub scratch_len: usize,
}

impl Plan {
    pub fn numel(&self, id: NodeId) -> usize {
        self.shape(id).iter().product()
    }

    pub fn shape(&self, id: NodeId) -> &[usize] {
        &self.shapes[id.0 as usize]
    }

    pub fn storage(&self, id: NodeId) -> Storage {
        self.storage[id.0 as usize]
    }

    pub fn is_buffered(&self, id: NodeId) -> bool {
        matches!(
            self.storage(id),
            Storage::Input(_) | Storage::Output(_) | Storage::Scratch(_)
        )
    }
}

/// Whether `consumer`, evaluating `arg` at each of its points, reads an element of `arg` more than
/// once.
fn recomputes(program: &Program, shapes: &[Vec<usize>], consumer: NodeId, arg: NodeId) -> bool {
    let numel = |n: NodeId| shapes[n.0 as usize].iter().product::<usize>();
    match program.graph.node(consumer).op {
        Op::Binary(_) | Op::BroadcastTo(_) => numel(arg) < numel(consumer),
        Op::Diag | Op::LogSumExp { .. } => true,
        _ => false,
    }
}

/// Plans the evaluation of `roots` under the dim sizes `dims`. With `gpu`, the argument of a sum
/// of all elements is stored rather than fused (a kernel computes it, and the GPU runtime sums it
/// with a library call: a reduction is no GPU kernel here).
pub fn plan(
    program: &Program,
    roots: &[NodeId],
    dims: &[u64],
    gpu: bool,
) -> Result<Plan, MlirError> {
    let g = &program.graph;
    let n = g.len();
    if let Some(r) = roots.iter().find(|r| r.0 as usize >= n) {
        return Err(MlirError::BadRoot(*r));
    }
    if dims.len() != program.dims.len() {
        return Err(MlirError::ArrayCount {
            what: "dim size",
            expected: program.dims.len(),
            got: dims.len(),
        });
    }
    let mut needed = vec![false; n];
    for r in roots {
        needed[r.0 as usize] = true;
    }
    for i in (0..n).rev() {
        if needed[i] {
            for a in &g.node(NodeId(i as u32)).args {
                needed[a.0 as usize] = true;
            }
        }
    }
    let mut shapes = vec![Vec::new(); n];
    let mut consumers: Vec<Vec<NodeId>> = vec![Vec::new(); n];
    for (id, node) in g.nodes().filter(|(id, _)| needed[id.0 as usize]) {
        check_supported(&node.op)?;
        let mut shape = Vec::with_capacity(node.shape.len());
        for d in &node.shape {
            let size = usize::try_from(d.eval(dims)).map_err(|_| MlirError::NegativeSize(id))?;
            shape.push(size);
        }
        shapes[id.0 as usize] = shape;
        for a in &node.args {
            consumers[a.0 as usize].push(id);
        }
    }

    let output_of = |id: NodeId| roots.iter().position(|&r| r == id).map(|k| k as u32);
    let mut storage = vec![Storage::Unused; n];
    let mut schedule = Vec::new();
    let mut scratch_len = 0usize;
    for (id, node) in g.nodes().filter(|(id, _)| needed[id.0 as usize]) {
        let i = id.0 as usize;
        let users = &consumers[i];
        let is_root = output_of(id).is_some();
        let loop_users = users.iter().all(|&u| !is_kernel(&g.node(u).op));
        let cheap = matches!(node.op, Op::Const(_) | Op::DimSize(_) | Op::Eye(_));
        let summed_on_gpu = gpu
            && !cheap
            && users
                .iter()
                .any(|&u| matches!(g.node(u).op, Op::Sum { axis: None }));
        let fuse = !is_root
            && !summed_on_gpu
            && is_pointwise(&node.op)
            && loop_users
            && (cheap || (users.len() == 1 && !recomputes(program, &shapes, users[0], id)));
        let transpose_flag = !is_root
            && node.op == Op::Transpose
            && users.len() == 1
            && g.node(users[0]).op == Op::MatMul
            && !matches!(storage[node.args[0].0 as usize], Storage::Fused);
        storage[i] = if let Op::Input(k) = node.op {
            Storage::Input(k.0)
        } else if fuse {
            Storage::Fused
        } else if transpose_flag {
            Storage::TransposeFlag
        } else {
            schedule.push(id);
            match output_of(id) {
                Some(k) => Storage::Output(k),
                None => {
                    let at = scratch_len;
                    scratch_len += shapes[i].iter().product::<usize>();
                    Storage::Scratch(at)
                }
            }
        };
    }
    let copies = roots
        .iter()
        .enumerate()
        .filter(|&(k, r)| storage[r.0 as usize] != Storage::Output(k as u32))
        .map(|(k, &r)| (k as u32, r))
        .collect();
    Ok(Plan {
        shapes,
        storage,
        schedule,
        copies,
        outputs: roots.len(),
        scratch_len,
    })
}
