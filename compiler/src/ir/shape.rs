//! Shape rules of every IR op: the one definition used by the builder and the verifier.

use super::{Dim, Op, Shape};
use std::fmt;

/// Why an op cannot be applied to arguments of the given shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct ShapeError {
    pub message: String,
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn err<T>(message: impl Into<String>) -> Result<T, ShapeError> {
    Err(ShapeError {
        message: message.into(),
    })
}

/// Numpy broadcasting: align trailing axes; a fixed 1 stretches to the other size.
pub fn broadcast_shapes(a: &[Dim], b: &[Dim]) -> Result<Shape, ShapeError> {
    let rank = a.len().max(b.len());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = (i + a.len()).checked_sub(rank).map(|j| a[j]);
        let db = (i + b.len()).checked_sub(rank).map(|j| b[j]);
        out.push(match (da, db) {
            (Some(x), None) | (None, Some(x)) => x,
            (Some(x), Some(y)) if x == y || y.is_one() => x,
            (Some(x), Some(y)) if x.is_one() => y,
            _ => return err("shapes cannot be broadcast together"),
        });
    }
    Ok(out)
}

fn arity(op: &Op, args: &[&Shape], n: usize) -> Result<(), ShapeError> {
    if args.len() == n {
        Ok(())
    } else {
        err(format!("{op:?} takes {n} argument(s), got {}", args.len()))
    }
}

fn square(s: &Shape, what: &str) -> Result<Dim, ShapeError> {
    match s.as_slice() {
        [a, b] if a == b => Ok(*a),
        _ => err(format!("{what} needs a square matrix")),
    }
}

fn reduce(s: &Shape, axis: Option<u32>) -> Result<Shape, ShapeError> {
    match axis {
        None => Ok(Vec::new()),
        Some(a) if (a as usize) < s.len() => {
            let mut out = s.clone();
            out.remove(a as usize);
            Ok(out)
        }
        Some(a) => err(format!("axis {a} out of range for rank {}", s.len())),
    }
}

/// The shape of `op` applied to arguments of the given shapes.
pub fn infer_shape(op: &Op, args: &[&Shape]) -> Result<Shape, ShapeError> {
    use Op::*;
    match op {
        Input(_) | Argmin(_) => err("input and argmin shapes are declared, not inferred"),
        Const(_) | DimSize(_) | LoopIndex(_) => {
            arity(op, args, 0)?;
            Ok(Vec::new())
        }
        Unary(_) => {
            arity(op, args, 1)?;
            Ok(args[0].clone())
        }
        Binary(_) => {
            arity(op, args, 2)?;
            broadcast_shapes(args[0], args[1])
        }
        Sum { axis } | Max { axis } | LogSumExp { axis } => {
            arity(op, args, 1)?;
            reduce(args[0], *axis)
        }
        MatMul => {
            arity(op, args, 2)?;
            let (a, b) = (args[0], args[1]);
            let (inner_a, inner_b) = match (a.len(), b.len()) {
                (1 | 2, 1 | 2) => (a[a.len() - 1], b[0]),
                _ => return err("matrix product needs operands of rank 1 or 2"),
            };
            if inner_a != inner_b {
                return err("inner dimensions of the matrix product differ");
            }
            let mut out: Shape = a[..a.len() - 1].to_vec();
            out.extend_from_slice(&b[1..]);
            Ok(out)
        }
        Transpose => {
            arity(op, args, 1)?;
            match args[0].as_slice() {
                [m, n] => Ok(vec![*n, *m]),
                _ => err("transpose needs a matrix"),
            }
        }
        Eye(n) => {
            arity(op, args, 0)?;
            Ok(vec![*n, *n])
        }
        Diag => {
            arity(op, args, 1)?;
            match args[0].as_slice() {
                [n] => Ok(vec![*n, *n]),
                _ => err("diag needs a vector"),
            }
        }
        DiagPart => {
            arity(op, args, 1)?;
            Ok(vec![square(args[0], "diagonal")?])
        }
        Trace | LogDet | NuclearNorm => {
            arity(op, args, 1)?;
            if matches!(op, NuclearNorm) {
                if args[0].len() != 2 {
                    return err("nuclear norm needs a matrix");
                }
            } else {
                square(args[0], "this op")?;
            }
            Ok(Vec::new())
        }
        Expm | Inv | MatPow(_) => {
            arity(op, args, 1)?;
            square(args[0], "this op")?;
            Ok(args[0].clone())
        }
        Solve => {
            arity(op, args, 2)?;
            let n = square(args[0], "solve")?;
            match args[1].first() {
                Some(m) if *m == n && args[1].len() <= 2 => Ok(args[1].clone()),
                _ => err("solve(A, B) needs B with as many rows as A"),
            }
        }
        Slice { axis, start, end } => {
            arity(op, args, 1)?;
            let s = args[0];
            let a = *axis as usize;
            if a >= s.len() {
                return err("slice axis out of range");
            }
            let len = end.minus(*start).ok_or_else(|| ShapeError {
                message: "slice length is not a size".into(),
            })?;
            let mut out = s.clone();
            out[a] = len;
            Ok(out)
        }
        Select { axis } => {
            arity(op, args, 2)?;
            if !args[1].is_empty() {
                return err("an index must be a scalar");
            }
            reduce(args[0], Some(*axis))
        }
        Stack => {
            if args.is_empty() {
                return err("stack needs at least one element");
            }
            if args.iter().any(|s| *s != args[0]) {
                return err("stacked elements must have equal shapes");
            }
            let mut out = vec![Dim::fixed(args.len() as i64)];
            out.extend_from_slice(args[0]);
            Ok(out)
        }
        BroadcastTo(shape) => {
            arity(op, args, 1)?;
            if broadcast_shapes(args[0], shape)? != *shape {
                return err("cannot broadcast to that shape");
            }
            Ok(shape.clone())
        }
        SumTo(shape) => {
            arity(op, args, 1)?;
            if broadcast_shapes(args[0], shape)? != *args[0] {
                return err("cannot sum to that shape");
            }
            Ok(shape.clone())
        }
        SortDesc => {
            arity(op, args, 1)?;
            if args[0].len() != 1 {
                return err("sort needs a vector");
            }
            Ok(args[0].clone())
        }
        TopK(k) => {
            arity(op, args, 1)?;
            if args[0].len() != 1 {
                return err("topk needs a vector");
            }
            Ok(vec![*k])
        }
        Card => {
            arity(op, args, 1)?;
            Ok(Vec::new())
        }
        Expand { axis, size } => {
            arity(op, args, 1)?;
            insert_axis(args[0], *axis, *size)
        }
        ArgmaxMask { axis } => {
            arity(op, args, 1)?;
            reduce(args[0], *axis)?;
            Ok(args[0].clone())
        }
        Pad { axis, size, .. } => {
            arity(op, args, 1)?;
            let mut out = args[0].clone();
            match out.get_mut(*axis as usize) {
                Some(d) => *d = *size,
                None => return err("pad axis out of range"),
            }
            Ok(out)
        }
        Scatter { axis, size } => {
            arity(op, args, 2)?;
            if !args[1].is_empty() {
                return err("an index must be a scalar");
            }
            insert_axis(args[0], *axis, *size)
        }
        SortScatter => {
            arity(op, args, 2)?;
            if args[0].len() != 1 || args[1].len() != 1 {
                return err("sort_scatter needs vectors");
            }
            Ok(args[0].clone())
        }
        SortGather(k) => {
            arity(op, args, 2)?;
            if args[0].len() != 1 || args[1] != args[0] {
                return err("sort_gather needs two equal vectors");
            }
            Ok(vec![*k])
        }
        ExpmFrechet | ExpmFrechet2 | MatPowFrechet(_) | MatPowFrechet2(_) => {
            let first = matches!(op, ExpmFrechet | MatPowFrechet(_));
            arity(op, args, if first { 2 } else { 3 })?;
            square(args[0], "a matrix function derivative")?;
            if args.iter().any(|s| *s != args[0]) {
                return err("a matrix function derivative needs equally shaped square matrices");
            }
            Ok(args[0].clone())
        }
    }
}

fn insert_axis(s: &Shape, axis: u32, size: Dim) -> Result<Shape, ShapeError> {
    if axis as usize > s.len() {
        return err(format!("axis {axis} out of range for rank {}", s.len()));
    }
    let mut out = s.clone();
    out.insert(axis as usize, size);
    Ok(out)
}
