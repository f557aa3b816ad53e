//! Fusion and memory planning for the CPU backend: which nodes are computed inside their consumer's
//! loop (fused), which get a buffer, and where each buffer lives (an input, an output, or an offset
//! of the single scratch arena).

use super::CpuError;
use optc_compiler::ir::{NodeId, Op, Program};

/// Where the value of a node lives while the compiled function runs (also the GPU plan's, so it
/// is serialized in gpu artifacts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Storage {
    /// Not needed by the roots.
    Unused,
    /// Computed inside the loop of its consumer, never stored.
    Fused,
    /// A transpose folded into the flags of the matrix product that consumes it.
    TransposeFlag,
    /// The caller's array of input `k` (by `InputId`).
    Input(u32),
    /// The caller's array of output `k` (the `k`-th root).
    Output(u32),
    /// `scratch[offset..offset + numel]`.
    Scratch(usize),
}

/// How a node reads its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Evaluates arguments at computed indices inside its loops (fusable).
    Loop,
    /// Passes argument buffers to a runtime kernel.
    Kernel,
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
            | Op::Expand { .. }
            | Op::Pad { .. }
            | Op::Scatter { .. }
    )
}

/// Pointwise ops that read their arguments at the same flat position (after broadcasting).
pub fn is_elementwise(op: &Op) -> bool {
    matches!(
        op,
        Op::Const(_) | Op::DimSize(_) | Op::Unary(_) | Op::Binary(_) | Op::BroadcastTo(_)
    )
}

/// How `op` reads its arguments, or why the backend cannot compile it.
pub fn access(op: &Op) -> Result<Access, CpuError> {
    match op {
        Op::LoopIndex(_) => Err(CpuError::Unsupported(
            "loop index outside a `for` constraint",
        )),
        Op::Argmin(_) => Err(CpuError::Unsupported("argmin (lower-level problems)")),
        Op::MatMul
        | Op::Expm
        | Op::LogDet
        | Op::Solve
        | Op::Inv
        | Op::SortDesc
        | Op::TopK(_)
        | Op::NuclearNorm
        | Op::ExpmFrechet
        | Op::ExpmFrechet2
        | Op::MatPow(_)
        | Op::MatPowFrechet(_)
        | Op::MatPowFrechet2(_)
        | Op::SortScatter
        | Op::SortGather(_) => Ok(Access::Kernel),
        _ => Ok(Access::Loop),
    }
}

/// The fusion and memory plan of one compiled function.
pub struct Plan {
    /// Concrete shape of every node (empty for unused nodes).
    pub shapes: Vec<Vec<usize>>,
    pub storage: Vec<Storage>,
    /// Nodes with a buffer that the function computes, in topological order.
    pub schedule: Vec<NodeId>,
    /// `(output k, node)`: roots whose value is copied at the end (inputs, repeated roots).
    pub copies: Vec<(u32, NodeId)>,
    /// Extra scratch of log-sum-exp over an axis (its running sums), by node.
    pub lse_sums: Vec<Option<usize>>,
    /// For a `logdet` and an `inv` of the same matrix: the other one, by the node scheduled
    /// first (which computes both from one LU; the other is not scheduled).
    pub shared_lu: Vec<Option<NodeId>>,
    /// Total scratch length in f64 elements.
    pub scratch_len: usize,
}

impl Plan {
    pub fn numel(&self, id: NodeId) -> usize {
        self.shapes[id.0 as usize].iter().product()
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

/// Whether `consumer` evaluating `arg` at every point of its loops recomputes `arg`'s elements
/// more often than once each (broadcast expansion, `expand`, the padding of `pad` and the
/// zeros of `scatter`, `diag`, the two passes of log-sum-exp).
fn recomputes(program: &Program, shapes: &[Vec<usize>], consumer: NodeId, arg: NodeId) -> bool {
    let numel = |n: NodeId| shapes[n.0 as usize].iter().product::<usize>();
    match program.graph.node(consumer).op {
        Op::Binary(_)
        | Op::BroadcastTo(_)
        | Op::Expand { .. }
        | Op::Pad { .. }
        | Op::Scatter { .. } => numel(arg) < numel(consumer),
        Op::Diag | Op::LogSumExp { .. } => true,
        _ => false,
    }
}

pub fn plan(program: &Program, roots: &[NodeId], dims: &[u64]) -> Result<Plan, CpuError> {
    let g = &program.graph;
    let n = g.len();
    if let Some(r) = roots.iter().find(|r| r.0 as usize >= n) {
        return Err(CpuError::BadRoot(*r));
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
    for (id, node) in g.nodes().filter(|(id, _)| needed[id.0 as usize]) {
        access(&node.op)?;
        let mut shape = Vec::with_capacity(node.shape.len());
        for d in &node.shape {
            let size = d.eval(dims);
            if size < 0 {
                return Err(CpuError::NegativeSize(id));
            }
            shape.push(size as usize);
        }
        // The loops of slice and pad index their argument without bounds checks.
        let arg_len = |axis: u32| shapes[node.args[0].0 as usize][axis as usize] as i64;
        let in_range = match node.op {
            Op::Slice { axis, start, end } => {
                start.eval(dims) >= 0 && end.eval(dims) <= arg_len(axis)
            }
            Op::Pad { axis, start, size } => {
                let from = start.eval(dims);
                from >= 0 && from + arg_len(axis) <= size.eval(dims)
            }
            _ => true,
        };
        if !in_range {
            return Err(CpuError::OutOfRange(id));
        }
        shapes[id.0 as usize] = shape;
    }

    // Consumers of each needed node; a root counts as a consumer needing a buffer.
    let mut consumers: Vec<Vec<NodeId>> = vec![Vec::new(); n];
    for (id, node) in g.nodes().filter(|(id, _)| needed[id.0 as usize]) {
        for a in &node.args {
            consumers[a.0 as usize].push(id);
        }
    }
    let is_root = |id: NodeId| roots.contains(&id);

    let mut storage = vec![Storage::Unused; n];
    let mut schedule = Vec::new();
    let mut copies = Vec::new();
    let mut lse_sums = vec![None; n];
    let mut scratch_len = 0usize;
    let output_of = |id: NodeId| roots.iter().position(|&r| r == id).map(|k| k as u32);
    for (id, node) in g.nodes().filter(|(id, _)| needed[id.0 as usize]) {
        let i = id.0 as usize;
        let users = &consumers[i];
        let loop_users = users
            .iter()
            .all(|&u| access(&g.node(u).op) == Ok(Access::Loop));
        let cheap = matches!(node.op, Op::Const(_) | Op::DimSize(_) | Op::Eye(_));
        // One elementwise op of stored values costs less to redo in each consumer's loop than
        // a loop of its own that stores it (and loads it back).
        let shallow = is_elementwise(&node.op)
            && node.args.iter().all(|a| {
                storage[a.0 as usize] != Storage::Fused
                    || matches!(g.node(*a).op, Op::Const(_) | Op::DimSize(_))
            });
        let mut distinct_users = users.clone();
        distinct_users.sort();
        distinct_users.dedup();
        let fuse = !is_root(id)
            && is_pointwise(&node.op)
            && loop_users
            && (cheap
                || ((distinct_users.len() == 1 || shallow)
                    && !distinct_users
                        .iter()
                        .any(|&u| recomputes(program, &shapes, u, id))));
        let transpose_flag = !is_root(id)
            && node.op == Op::Transpose
            && users.len() == 1
            && g.node(users[0]).op == Op::MatMul;
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
        if matches!(node.op, Op::LogSumExp { axis: Some(_) }) {
            lse_sums[i] = Some(scratch_len);
            scratch_len += shapes[i].iter().product::<usize>();
        }
    }
    // A transpose whose argument is not buffered (a fused expression) must be materialized.
    for (id, node) in g.nodes() {
        if storage[id.0 as usize] == Storage::TransposeFlag
            && storage[node.args[0].0 as usize] == Storage::Fused
        {
            storage[node.args[0].0 as usize] = Storage::Scratch(scratch_len);
            scratch_len += shapes[node.args[0].0 as usize].iter().product::<usize>();
            schedule.push(node.args[0]);
        }
    }
    schedule.sort();
    let shared_lu = share_lu(program, &mut schedule);
    for (k, &r) in roots.iter().enumerate() {
        if storage[r.0 as usize] != Storage::Output(k as u32) {
            copies.push((k as u32, r));
        }
    }
    Ok(Plan {
        shapes,
        storage,
        schedule,
        copies,
        lse_sums,
        shared_lu,
        scratch_len,
    })
}

/// Pairs each scheduled `logdet(a)` with a scheduled `inv(a)` of the same node `a`: the first
/// of the two computes both, the second leaves the schedule. Returns the partners by node.
fn share_lu(program: &Program, schedule: &mut Vec<NodeId>) -> Vec<Option<NodeId>> {
    let g = &program.graph;
    let mut partner = vec![None; g.len()];
    let of = |op: Op| -> Vec<NodeId> {
        schedule
            .iter()
            .copied()
            .filter(|&id| g.node(id).op == op)
            .collect()
    };
    let inverses = of(Op::Inv);
    let pairs: Vec<(NodeId, NodeId)> = of(Op::LogDet)
        .into_iter()
        .filter_map(|l| {
            let arg = g.node(l).args[0];
            inverses
                .iter()
                .find(|&&i| g.node(i).args[0] == arg)
                .map(|&i| (l.min(i), l.max(i)))
        })
        .collect();
    for (first, second) in pairs {
        if partner[first.0 as usize].is_none() && partner[second.0 as usize].is_none() {
            partner[first.0 as usize] = Some(second);
            schedule.retain(|&id| id != second);
        }
    }
    partner
}
