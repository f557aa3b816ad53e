//! The instances of a constraint under `for` ranges, for the augmented Lagrangian: a range is
//! batched into a leading axis of one node when every node between its loop index and the
//! constraint has a batched form ([`batched`]); the ranges left give one node per index.

use super::plan_error;
use optc_compiler::diag::Diagnostic;
use optc_compiler::ir::{BinaryOp, Dim, ForRange, Node, NodeId, Op, Program};
use std::collections::HashMap;

/// The instances of `node` for every index of `range`, stacked along a new leading axis (one
/// node whatever the range's length), when every node between the loop index and `node` has a
/// batched form; `None` otherwise. The index may only select (`x[i]`, `x[i + 1]`, along the
/// first axis or the second of a matrix) from tensors that do not depend on it; above those:
/// elementwise ops (operands of different ranks are broadcast per instance), reductions,
/// selections and slices, broadcasts, and matrix products whose batched operands are vectors
/// per instance.
fn batched(program: &mut Program, node: NodeId, range: &ForRange) -> Option<NodeId> {
    let reachable = optc_compiler::simplify::cost::reachable(program, &[node]);
    let index = *reachable
        .iter()
        .find(|&&id| program.graph.node(id).op == Op::LoopIndex(range.level))?;
    let count = range.end.minus(range.start)?;
    // The nodes that are the loop index plus a constant, with that constant.
    let mut shifts: HashMap<NodeId, i64> = HashMap::from([(index, 0)]);
    // Each node that depends on the index: its batched form, built bottom-up.
    let mut out: HashMap<NodeId, NodeId> = HashMap::new();
    for id in reachable.into_iter().filter(|id| id.0 > index.0) {
        let n = program.graph.node(id).clone();
        if !n
            .args
            .iter()
            .any(|a| out.contains_key(a) || shifts.contains_key(a))
        {
            continue;
        }
        if let Some(k) = index_shift(program, &n, &shifts) {
            shifts.insert(id, k);
            continue;
        }
        let batch = Batch {
            out: &out,
            shifts: &shifts,
            range,
            count,
        };
        let new = batch.node(program, &n)?;
        out.insert(id, new);
    }
    out.get(&node).copied()
}

/// `Some(k)` when `n` is a node of `shifts` (the loop index plus a constant) plus or minus an
/// integer constant, the sum being the index plus `k`.
fn index_shift(program: &Program, n: &Node, shifts: &HashMap<NodeId, i64>) -> Option<i64> {
    let constant = |id: &NodeId| match program.graph.node(*id).op {
        Op::Const(c) if c.fract() == 0.0 && c.abs() < 1e15 => Some(c as i64),
        _ => None,
    };
    match (&n.op, n.args.as_slice()) {
        (Op::Binary(BinaryOp::Add), [a, b]) => match (shifts.get(a), shifts.get(b)) {
            (Some(k), None) => k.checked_add(constant(b)?),
            (None, Some(k)) => k.checked_add(constant(a)?),
            _ => None,
        },
        (Op::Binary(BinaryOp::Sub), [a, b]) => shifts.get(a)?.checked_sub(constant(b)?),
        _ => None,
    }
}

/// Checks every selection by a loop index plus a constant (`x[i + 1]`) in `node` over its `for`
/// range at `dims`, before anything is evaluated: the first that reaches outside its axis is
/// the error (the checker rejects those it can see at compile time, when the sizes share a dim).
pub(super) fn check_loop_indices(
    program: &Program,
    node: NodeId,
    ranges: &[ForRange],
    dims: &[u64],
) -> Result<(), String> {
    let reachable = optc_compiler::simplify::cost::reachable(program, &[node]);
    for range in ranges {
        let (start, end) = (range.start.eval(dims), range.end.eval(dims));
        if start >= end {
            continue;
        }
        let mut shifts: HashMap<NodeId, i64> = HashMap::new();
        for &id in &reachable {
            let n = program.graph.node(id);
            if n.op == Op::LoopIndex(range.level) {
                shifts.insert(id, 0);
            } else if let Some(k) = index_shift(program, n, &shifts) {
                shifts.insert(id, k);
            } else if let (Op::Select { axis }, [tensor, i]) = (&n.op, n.args.as_slice()) {
                let Some(&k) = shifts.get(i) else {
                    continue;
                };
                let len = program.graph.shape(*tensor)[*axis as usize].eval(dims);
                let (lo, hi) = (start + k, end - 1 + k);
                if lo < 0 || hi >= len {
                    return Err(format!(
                        "a `for` index over {start}..{end}{} selects positions {lo} to {hi} of an axis of length {len}",
                        match k {
                            0 => String::new(),
                            k => format!(" (shifted by {k})"),
                        }
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The batched forms built so far by [`batched`], and what it batches over.
struct Batch<'a> {
    out: &'a HashMap<NodeId, NodeId>,
    shifts: &'a HashMap<NodeId, i64>,
    range: &'a ForRange,
    /// The number of instances, the length of the new leading axis.
    count: Dim,
}

impl Batch<'_> {
    /// The batched form of `n`, one of whose arguments depends on the loop index.
    fn node(&self, program: &mut Program, n: &Node) -> Option<NodeId> {
        let b = |id: &NodeId| self.out.get(id).copied();
        // The rank of each argument per instance.
        let ranks: Vec<usize> = n
            .args
            .iter()
            .map(|a| program.graph.shape(*a).len())
            .collect();
        let shifted = |d: Dim, k: i64| Dim {
            sym: d.sym,
            offset: d.offset + k,
        };
        // The loop index (plus a constant) is only ever an index of `Select`.
        let index_arg = match (&n.op, n.args.as_slice()) {
            (Op::Select { .. }, [_, i]) => Some(*i),
            _ => None,
        };
        if n.args
            .iter()
            .any(|a| self.shifts.contains_key(a) && Some(*a) != index_arg)
        {
            return None;
        }
        let new = match (&n.op, n.args.as_slice()) {
            (Op::Select { axis }, [tensor, i]) if self.shifts.contains_key(i) => {
                let k = self.shifts[i];
                let tensor_rank = ranks[0];
                let tensor = match b(tensor) {
                    None => *tensor,
                    Some(_) => return None,
                };
                let slice = Op::Slice {
                    axis: *axis,
                    start: shifted(self.range.start, k),
                    end: shifted(self.range.end, k),
                };
                let sliced = add(program, slice, vec![tensor])?;
                match (axis, tensor_rank) {
                    (0, _) => sliced,
                    (1, 2) => add(program, Op::Transpose, vec![sliced])?,
                    _ => return None,
                }
            }
            (Op::Select { axis }, [tensor, i]) if b(i).is_none() => {
                add(program, Op::Select { axis: axis + 1 }, vec![b(tensor)?, *i])?
            }
            (Op::Slice { axis, start, end }, [tensor]) => {
                let op = Op::Slice {
                    axis: axis + 1,
                    start: *start,
                    end: *end,
                };
                add(program, op, vec![b(tensor)?])?
            }
            (Op::Expand { axis, size }, [x]) => {
                let op = Op::Expand {
                    axis: axis + 1,
                    size: *size,
                };
                add(program, op, vec![b(x)?])?
            }
            (Op::Unary(_), [x]) => add(program, n.op.clone(), vec![b(x)?])?,
            (Op::Binary(_), [x, y]) => {
                // Each batched operand gets the axes it lacks per instance (broadcasting aligns
                // trailing axes, so they go right after the leading one); an unbatched operand
                // broadcasts against the instances as it is.
                let x = self.lift(program, *x, &n.shape)?;
                let y = self.lift(program, *y, &n.shape)?;
                add(program, n.op.clone(), vec![x, y])?
            }
            (
                Op::Sum { axis: Some(axis) }
                | Op::Max { axis: Some(axis) }
                | Op::LogSumExp { axis: Some(axis) },
                [x],
            ) => add(program, with_axis(&n.op, axis + 1), vec![b(x)?])?,
            (
                Op::Sum { axis: None } | Op::Max { axis: None } | Op::LogSumExp { axis: None },
                [x],
            ) => {
                // Reducing every axis of an instance: the instance's axes one after the other.
                let mut all = b(x)?;
                for _ in 0..ranks[0] {
                    all = add(program, with_axis(&n.op, 1), vec![all])?;
                }
                all
            }
            (Op::BroadcastTo(shape), [x]) => {
                let x = self.lift(program, *x, shape)?;
                let mut batched_shape = vec![self.count];
                batched_shape.extend_from_slice(shape);
                add(program, Op::BroadcastTo(batched_shape), vec![x])?
            }
            (Op::MatMul, [x, y]) => {
                // Batched operands that are vectors per instance: rows of a matrix.
                match (b(x), b(y)) {
                    (Some(bx), None) if ranks[0] == 1 => add(program, Op::MatMul, vec![bx, *y])?,
                    (None, Some(by)) if ranks[1] == 1 => match ranks[0] {
                        1 => add(program, Op::MatMul, vec![by, *x])?,
                        _ => {
                            let xt = add(program, Op::Transpose, vec![*x])?;
                            add(program, Op::MatMul, vec![by, xt])?
                        }
                    },
                    (Some(bx), Some(by)) if ranks == [1, 1] => {
                        let product = add(program, Op::Binary(BinaryOp::Mul), vec![bx, by])?;
                        add(program, Op::Sum { axis: Some(1) }, vec![product])?
                    }
                    _ => return None,
                }
            }
            _ => return None,
        };
        Some(new)
    }

    /// The operand `x` of a node whose instances have the shape `target`: unbatched, `x` itself;
    /// batched, with the axes it lacks per instance inserted after the leading one (the
    /// leading axes of `target`), so that the leading axes align under broadcasting.
    fn lift(&self, program: &mut Program, x: NodeId, target: &[Dim]) -> Option<NodeId> {
        let Some(mut lifted) = self.out.get(&x).copied() else {
            return Some(x);
        };
        let missing = target.len().checked_sub(program.graph.shape(x).len())?;
        for (axis, size) in target[..missing].iter().enumerate() {
            let op = Op::Expand {
                axis: 1 + axis as u32,
                size: *size,
            };
            lifted = add(program, op, vec![lifted])?;
        }
        Some(lifted)
    }
}

/// `op` applied to `args`, when their shapes fit it.
fn add(program: &mut Program, op: Op, args: Vec<NodeId>) -> Option<NodeId> {
    program.graph.add(op, args).ok()
}

/// A reduction `op` (`Sum`, `Max` or `LogSumExp`) over `axis`.
fn with_axis(op: &Op, axis: u32) -> Op {
    let axis = Some(axis);
    match op {
        Op::Max { .. } => Op::Max { axis },
        Op::LogSumExp { .. } => Op::LogSumExp { axis },
        _ => Op::Sum { axis },
    }
}

/// The instances of a constraint's `node` under its `for` ranges: the node itself without
/// ranges. Innermost first, each range whose instances [`batched`] can stack becomes a leading
/// axis of one node; the ranges left (outermost, from the first that does not batch) give one
/// node per index tuple (row-major), their loop indices replaced by their values.
pub(super) fn constraint_instances(
    program: &mut Program,
    node: NodeId,
    ranges: &[ForRange],
    dims: &[u64],
) -> Result<Vec<NodeId>, Diagnostic> {
    let mut node = node;
    let mut ranges = ranges;
    while let Some((innermost, outer)) = ranges.split_last() {
        if innermost.end.eval(dims) <= innermost.start.eval(dims) {
            break;
        }
        let Some(all) = batched(program, node, innermost) else {
            break;
        };
        node = all;
        ranges = outer;
    }
    let ranges: Vec<(u32, i64, i64)> = ranges
        .iter()
        .map(|r| (r.level, r.start.eval(dims), r.end.eval(dims)))
        .collect();
    let indices: Vec<(u32, NodeId)> = optc_compiler::simplify::cost::reachable(program, &[node])
        .into_iter()
        .filter_map(|id| match program.graph.node(id).op {
            Op::LoopIndex(level) => Some((level, id)),
            _ => None,
        })
        .collect();
    let mut tuples: Vec<Vec<i64>> = vec![Vec::new()];
    for &(_, start, end) in &ranges {
        tuples = tuples
            .into_iter()
            .flat_map(|t| {
                (start..end).map(move |k| {
                    let mut t = t.clone();
                    t.push(k);
                    t
                })
            })
            .collect();
    }
    let mut out = Vec::with_capacity(tuples.len());
    for tuple in tuples {
        let mut instance = node;
        for &(level, index) in &indices {
            let Some(position) = ranges.iter().position(|r| r.0 == level) else {
                continue;
            };
            let value = program.graph.constant(tuple[position] as f64);
            instance = program
                .graph
                .substitute(instance, index, value)
                .map_err(|e| plan_error("E0360", e.to_string()))?;
        }
        out.push(instance);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::{self, Bindings, NoSubproblems};
    use ndarray::{ArrayD, IxDyn};
    use optc_compiler::driver::{compile, Until};

    /// The program of `source`, every input bound to distinct pseudo-random values.
    fn program_and_bindings(source: &str) -> (Program, Bindings) {
        let program = compile("instances.opt", source, Until::Ir)
            .unwrap_or_else(|e| panic!("{:?}", e.diagnostics))
            .program
            .unwrap();
        let mut seed = 0.5f64;
        let inputs = program
            .inputs
            .iter()
            .map(|input| {
                let shape: Vec<usize> = input.shape.iter().map(|d| d.eval(&[]) as usize).collect();
                let values = (0..shape.iter().product())
                    .map(|_| {
                        seed = (seed * 7.31 + 0.137).fract();
                        2.0 * seed - 1.0
                    })
                    .collect();
                Some(ArrayD::from_shape_vec(IxDyn(&shape), values).unwrap())
            })
            .collect();
        let bindings = Bindings {
            inputs,
            ..Bindings::default()
        };
        (program, bindings)
    }

    /// The instances of the model's one constraint under `for` ranges, checked against its node
    /// evaluated at each index tuple by the interpreter (which binds loop indices itself):
    /// returns the number of instance nodes.
    fn instances_match_each_index(source: &str) -> usize {
        let (mut program, mut bindings) = program_and_bindings(source);
        let c = program.constraints[0].clone();
        let lengths: Vec<u64> = c
            .ranges
            .iter()
            .map(|r| (r.end.eval(&[]) - r.start.eval(&[])) as u64)
            .collect();
        let instances = constraint_instances(&mut program, c.node, &c.ranges, &[]).unwrap();
        let values = interp::eval(&program, &bindings, &instances, &mut NoSubproblems).unwrap();
        let all: Vec<f64> = values.iter().flat_map(|v| v.iter().copied()).collect();
        let mut expected = Vec::new();
        let count: u64 = lengths.iter().product();
        for flat in 0..count {
            let mut rest = flat;
            let mut tuple = vec![0; lengths.len()];
            for (k, len) in lengths.iter().enumerate().rev() {
                tuple[k] = rest % len;
                rest /= len;
            }
            bindings.loop_indices = tuple
                .iter()
                .zip(&c.ranges)
                .map(|(t, r)| t + r.start.eval(&[]) as u64)
                .collect();
            let one = interp::eval(&program, &bindings, &[c.node], &mut NoSubproblems).unwrap();
            expected.extend(one[0].iter().copied());
        }
        assert_eq!(all.len(), expected.len(), "{source}");
        for (a, e) in all.iter().zip(&expected) {
            assert!(
                (a - e).abs() <= 1e-12 * (1.0 + e.abs()),
                "{source}: {all:?} vs {expected:?}"
            );
        }
        instances.len()
    }

    const DECLARATIONS: &str = "var x : real[5] = 0\nvar Z : real[4, 2, 2] = 0\nvar X : real[4, 3] = 0\nvar c : real[4] = 0\nvar d : real[3] = 0\nvar A : real[2, 3] = 0\nvar B : real[3, 2] = 0\nvar b : real[2] = 0\nminimize sumsq(x) + sumsq(X)\nsubject to\n  ";

    #[test]
    fn batched_instances_equal_the_constraint_at_each_index() {
        for constraint in [
            "for i in 0..4: x[i] <= x[i + 1]",
            "for i in 1..5: x[i - 1] + 2 * x[i] == 1",
            "for j in 0..3: sum(X[:, j]) == d[j]",
            "for i in 0..4: X[i, :] @ d == 1",
            "for i in 0..4: d @ X[i, :] == 1",
            "for i in 0..4: A @ X[i, :] <= b",
            "for i in 0..4: X[i, :] @ B >= b",
            "for i in 0..3: X[i, :] @ X[i + 1, :] <= 1",
            "for i in 0..4: for j in 0..3: X[i, j] <= c[i] * d[j]",
            "for i in 0..4: X[i, :] * c[i] <= d",
            "for i in 0..4: c[i] * d <= X[i, :]",
            "for i in 0..4: max(X[i, :]) + logsumexp(X[i, :]) <= exp(c[i])",
            "for i in 1..4: sum(X[i - 1, 1:3]) - X[i, 0] == 0",
            "for i in 0..4: sum(X[i, :] - X, axis = 0) <= d",
        ] {
            let source = format!("{DECLARATIONS}{constraint}\n");
            assert_eq!(
                instances_match_each_index(&source),
                1,
                "{constraint} is not batched"
            );
        }
    }

    #[test]
    fn ranges_that_do_not_batch_have_one_instance_per_index() {
        // The loop index as a value (under the inner range, the outer index is only a value
        // there, so the inner range batches and the outer one does not); a matrix product of
        // matrices per instance.
        for (constraint, count) in [
            ("for i in 0..5: x[i] >= 0.1 * i", 5),
            ("for i in 0..4: for j in 0..3: X[i, j] >= i", 4),
            ("for i in 0..3: trace(Z[i, :, :] @ Z[i + 1, :, :]) <= 1", 3),
        ] {
            let source = format!("{DECLARATIONS}{constraint}\n");
            assert_eq!(instances_match_each_index(&source), count, "{constraint}");
        }
    }
}
