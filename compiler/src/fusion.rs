//! Fusion and memory planning, shared by the native backends (Cranelift in the runtime, MLIR for
//! the CPU and the GPU): at concrete dim sizes, which nodes are computed inside the loops of
//! their consumer (fused), which get a buffer, and where each buffer lives (a caller's input or
//! output array, or an offset of one scratch array). What differs between backends is stated
//! once in their [`Rules`].
//!
//! The rules: a pointwise node is fused into its consumers when all of them compute in loops,
//! none would evaluate it more than once per element (broadcast expansion, `expand`, `pad`,
//! `scatter`, `diag`, the two passes of log-sum-exp), and it has one consumer (which may read it
//! several times) or is one elementwise op of stored values (cheaper to redo in each consumer
//! than to store and load back); constants, sizes and identity matrices are fused everywhere;
//! arguments of runtime kernels are always buffered; a transpose read only by a matrix product
//! becomes a flag of the product (its argument is then buffered).

use crate::ir::{NodeId, Op, Program};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where the value of a node lives while the function runs (serialized in gpu artifacts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Storage {
    /// Not needed by the roots.
    Unused,
    /// Computed inside the loops of its consumer, never stored.
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

/// What a backend lowers and how it prefers to fuse.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// Why the backend cannot lower an op (beyond what no backend lowers), if it cannot.
    pub unsupported: fn(&Op) -> Option<&'static str>,
    /// Ops computed outside the function (the GPU runtime's host steps): planned as kernels
    /// are (stored, from stored arguments), and not lowered by the backend.
    pub on_host: fn(&Op) -> bool,
    /// Store the argument of a sum of all elements, or of a `sum_to` a scalar (on the GPU a
    /// kernel computes it and a library call sums it).
    pub store_summed: bool,
    /// Give each log-sum-exp over an axis scratch for its running sums ([`Plan::lse_sums`]).
    pub lse_sums: bool,
    /// Compute a `logdet` and an `inv` of the same matrix from one LU ([`Plan::shared_lu`]).
    pub share_lu: bool,
}

/// Why a function cannot be planned.
#[derive(Clone, Debug, PartialEq)]
pub enum PlanError {
    Unsupported(&'static str),
    /// A root that is not a node of the program.
    BadRoot(NodeId),
    /// A node whose size is negative at these dims.
    NegativeSize(NodeId),
    /// A slice or pad whose range does not fit its axis (the loops index without checks).
    OutOfRange(NodeId),
    /// Not one size per dim of the program.
    DimCount {
        expected: usize,
        got: usize,
    },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::Unsupported(what) => write!(f, "unsupported: {what}"),
            PlanError::BadRoot(id) => write!(f, "root {id} is not a node of the program"),
            PlanError::NegativeSize(id) => write!(f, "node {id} has a negative size"),
            PlanError::OutOfRange(id) => write!(f, "the range of node {id} does not fit its axis"),
            PlanError::DimCount { expected, got } => {
                write!(f, "expected {expected} dim sizes, got {got}")
            }
        }
    }
}

/// A call whose arrays do not fit the planned function: a wrong number of input or output
/// arrays, or an array whose length is not the element count of its shape.
#[derive(Clone, Debug, PartialEq)]
pub enum ArgumentError {
    Count {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    Length {
        what: &'static str,
        index: usize,
        expected: usize,
        got: usize,
    },
}

impl fmt::Display for ArgumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgumentError::Count {
                what,
                expected,
                got,
            } => write!(f, "expected {expected} {what} arrays, got {got}"),
            ArgumentError::Length {
                what,
                index,
                expected,
                got,
            } => write!(f, "{what} {index} has {got} elements, expected {expected}"),
        }
    }
}

/// Checks the arrays of a call of a planned function: one per input, of `input_lens[k]`
/// elements where that is given (an input the function does not read may have any length),
/// and one per output, of its shape's element count.
pub fn check_arguments(
    input_lens: &[Option<usize>],
    output_shapes: &[Vec<usize>],
    inputs: &[&[f64]],
    outputs: &[&mut [f64]],
) -> Result<(), ArgumentError> {
    let count = |what, expected, got| {
        if expected == got {
            Ok(())
        } else {
            Err(ArgumentError::Count {
                what,
                expected,
                got,
            })
        }
    };
    let length = |what, index, expected: Option<usize>, got| match expected {
        Some(expected) if expected != got => Err(ArgumentError::Length {
            what,
            index,
            expected,
            got,
        }),
        _ => Ok(()),
    };
    count("input", input_lens.len(), inputs.len())?;
    count("output", output_shapes.len(), outputs.len())?;
    for (index, (len, data)) in input_lens.iter().zip(inputs).enumerate() {
        length("input", index, *len, data.len())?;
    }
    for (index, (shape, data)) in output_shapes.iter().zip(outputs).enumerate() {
        length("output", index, Some(shape.iter().product()), data.len())?;
    }
    Ok(())
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

/// How `op` reads its arguments, or why no backend lowers it.
pub fn access(op: &Op) -> Result<Access, &'static str> {
    match op {
        Op::LoopIndex(_) => Err("loop index outside a `for` constraint"),
        Op::Argmin(_) => Err("argmin (lower-level problems)"),
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

/// The fusion and memory plan of one function.
#[derive(Clone, Debug)]
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
    /// Scratch of the running sums of each log-sum-exp over an axis, by node
    /// ([`Rules::lse_sums`]).
    pub lse_sums: Vec<Option<usize>>,
    /// For a `logdet` and an `inv` of the same matrix: the other one, by the node scheduled
    /// first (which computes both from one LU; the other is not scheduled; [`Rules::share_lu`]).
    pub shared_lu: Vec<Option<NodeId>>,
    /// Scratch length in elements.
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

/// Whether `consumer` evaluating `arg` at every point of its loops computes `arg`'s elements
/// more often than once each.
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

/// Plans the evaluation of `roots` under the dim sizes `dims` (one per dim of `program`).
pub fn plan(
    program: &Program,
    roots: &[NodeId],
    dims: &[u64],
    rules: &Rules,
) -> Result<Plan, PlanError> {
    let g = &program.graph;
    let n = g.len();
    if let Some(r) = roots.iter().find(|r| r.0 as usize >= n) {
        return Err(PlanError::BadRoot(*r));
    }
    if dims.len() != program.dims.len() {
        return Err(PlanError::DimCount {
            expected: program.dims.len(),
            got: dims.len(),
        });
    }
    let access = |op: &Op| match (rules.unsupported)(op) {
        Some(why) => Err(PlanError::Unsupported(why)),
        None if (rules.on_host)(op) => Ok(Access::Kernel),
        None => access(op).map_err(PlanError::Unsupported),
    };
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
        access(&node.op)?;
        let mut shape = Vec::with_capacity(node.shape.len());
        for d in &node.shape {
            let size = usize::try_from(d.eval(dims)).map_err(|_| PlanError::NegativeSize(id))?;
            shape.push(size);
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
            return Err(PlanError::OutOfRange(id));
        }
        shapes[id.0 as usize] = shape;
        for a in &node.args {
            consumers[a.0 as usize].push(id);
        }
    }

    let output_of = |id: NodeId| roots.iter().position(|&r| r == id).map(|k| k as u32);
    let mut storage = vec![Storage::Unused; n];
    let mut schedule = Vec::new();
    let mut lse_sums = vec![None; n];
    let mut scratch_len = 0usize;
    for (id, node) in g.nodes().filter(|(id, _)| needed[id.0 as usize]) {
        let i = id.0 as usize;
        let users = &consumers[i];
        let is_root = output_of(id).is_some();
        let loop_users = users
            .iter()
            .all(|&u| access(&g.node(u).op) == Ok(Access::Loop));
        let cheap = matches!(node.op, Op::Const(_) | Op::DimSize(_) | Op::Eye(_));
        let summed_by_library = rules.store_summed
            && !cheap
            && users.iter().any(|&u| match &g.node(u).op {
                Op::Sum { axis: None } => true,
                Op::SumTo(shape) => shape.is_empty(),
                _ => false,
            });
        let mut distinct_users = users.clone();
        distinct_users.sort();
        distinct_users.dedup();
        // One elementwise op of stored values costs less to redo in each consumer's loop than a
        // loop of its own that stores it (and loads it back).
        let shallow = is_elementwise(&node.op)
            && node.args.iter().all(|a| {
                storage[a.0 as usize] != Storage::Fused
                    || matches!(g.node(*a).op, Op::Const(_) | Op::DimSize(_))
            });
        let fuse = !is_root
            && !summed_by_library
            && is_pointwise(&node.op)
            && !(rules.on_host)(&node.op)
            && loop_users
            && (cheap
                || ((distinct_users.len() == 1 || shallow)
                    && !distinct_users
                        .iter()
                        .any(|&u| recomputes(program, &shapes, u, id))));
        let transpose_flag = !is_root
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
        if rules.lse_sums && matches!(node.op, Op::LogSumExp { axis: Some(_) }) {
            lse_sums[i] = Some(scratch_len);
            scratch_len += shapes[i].iter().product::<usize>();
        }
    }
    // A transpose flag's argument must be buffered: a fused one is materialized.
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
    let shared_lu = if rules.share_lu {
        share_lu(program, &mut schedule)
    } else {
        vec![None; n]
    };
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
