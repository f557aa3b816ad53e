//! The cost model: FLOPs and bytes moved per op over symbolic shapes evaluated at given sizes,
//! split by stage. Work of stage ≤ Param runs once per solve (setup); work of stage Var runs
//! every iteration. Extraction minimizes per-iteration cost, with setup cost as a small
//! tie-breaker, so data-only subterms (Gram matrices, `Xᵀy`) move to setup when the rules
//! make that possible.

use crate::ir::{Dim, NodeId, Op, Program, Shape, Stage};

/// Size assumed for a dimension symbol with no given value and no declared default.
pub const DEFAULT_DIM_SIZE: u64 = 100;

/// Weight of setup work relative to per-iteration work in extraction.
pub const DEFAULT_SETUP_WEIGHT: f64 = 1e-3;

/// Sizes for the dimension symbols (by `DimId`) and the weight of setup work.
#[derive(Clone, Debug, PartialEq)]
pub struct CostModel {
    pub dims: Vec<u64>,
    pub setup_weight: f64,
}

impl CostModel {
    /// Sizes by `DimId`; symbols beyond the end count as [`DEFAULT_DIM_SIZE`].
    pub fn new(dims: Vec<u64>) -> CostModel {
        CostModel {
            dims,
            setup_weight: DEFAULT_SETUP_WEIGHT,
        }
    }

    /// The program's declared default sizes, [`DEFAULT_DIM_SIZE`] where none is declared.
    pub fn for_program(program: &Program) -> CostModel {
        CostModel::new(
            program
                .dims
                .iter()
                .map(|d| d.default.unwrap_or(DEFAULT_DIM_SIZE))
                .collect(),
        )
    }

    fn size(&self, d: Dim) -> f64 {
        let sym = d.sym.map_or(0, |s| {
            self.dims
                .get(s.0 as usize)
                .copied()
                .unwrap_or(DEFAULT_DIM_SIZE) as i64
        });
        (sym + d.offset).max(0) as f64
    }

    fn numel(&self, shape: &[Dim]) -> f64 {
        shape.iter().map(|&d| self.size(d)).product()
    }

    /// FLOPs and bytes of one op with the given result and argument shapes.
    pub fn op_cost(&self, op: &Op, out: &Shape, args: &[&Shape]) -> OpCost {
        let n = |i: usize| args.get(i).map_or(1.0, |s| self.numel(s));
        let side = |i: usize| {
            args.get(i)
                .and_then(|s| s.first())
                .map_or(1.0, |&d| self.size(d))
        };
        let out_n = self.numel(out);
        let flops = match op {
            Op::Input(_) | Op::Const(_) | Op::DimSize(_) | Op::LoopIndex(_) | Op::Argmin(_) => {
                return OpCost::default()
            }
            Op::Eye(_) => 0.0,
            Op::Unary(_) | Op::Binary(_) => out_n,
            Op::Sum { .. } | Op::Max { .. } | Op::SumTo(_) | Op::Card => n(0),
            Op::LogSumExp { .. } => 3.0 * n(0),
            Op::MatMul => {
                let (a, b) = (args.first(), args.get(1));
                let rows = a.filter(|s| s.len() == 2).map_or(1.0, |s| self.size(s[0]));
                let inner = a.and_then(|s| s.last()).map_or(1.0, |&d| self.size(d));
                let cols = b.filter(|s| s.len() == 2).map_or(1.0, |s| self.size(s[1]));
                2.0 * rows * inner * cols
            }
            Op::Transpose
            | Op::Diag
            | Op::DiagPart
            | Op::Slice { .. }
            | Op::Select { .. }
            | Op::Stack
            | Op::BroadcastTo(_)
            | Op::Expand { .. }
            | Op::Pad { .. }
            | Op::Scatter { .. } => 0.0,
            Op::ArgmaxMask { .. } => n(0),
            Op::Trace => side(0),
            Op::Expm => 20.0 * side(0).powi(3),
            // Expm of a 2n (3n) block matrix.
            Op::ExpmFrechet => 20.0 * (2.0 * side(0)).powi(3),
            Op::ExpmFrechet2 => 2.0 * 20.0 * (3.0 * side(0)).powi(3),
            // Repeated squaring: about 2·log2(k) products of n×n (2n, 3n block) matrices.
            Op::MatPow(k) => matpow_flops(self.size(*k), side(0)),
            Op::MatPowFrechet(k) => matpow_flops(self.size(*k), 2.0 * side(0)),
            Op::MatPowFrechet2(k) => 2.0 * matpow_flops(self.size(*k), 3.0 * side(0)),
            Op::LogDet => 2.0 / 3.0 * side(0).powi(3),
            Op::Inv => 2.0 * side(0).powi(3),
            Op::Solve => {
                let m = side(0);
                let rhs_cols = n(1) / m.max(1.0);
                2.0 / 3.0 * m.powi(3) + 2.0 * m * m * rhs_cols
            }
            Op::SortDesc | Op::TopK(_) | Op::SortScatter | Op::SortGather(_) => {
                n(0) * n(0).max(2.0).log2()
            }
            Op::NuclearNorm => {
                let shape = args.first().map_or(&[][..], |s| s.as_slice());
                let (rows, cols) = match shape {
                    [r, c] => (self.size(*r), self.size(*c)),
                    _ => (1.0, 1.0),
                };
                let small = rows.min(cols);
                4.0 * rows * cols * small + 8.0 * small.powi(3)
            }
        };
        let elements: f64 = out_n + (0..args.len()).map(n).sum::<f64>();
        OpCost {
            flops,
            bytes: 8.0 * elements,
        }
    }
}

/// FLOPs of A^k for an m×m matrix by repeated squaring: about 2·log2(k) products of 2m³ each.
fn matpow_flops(k: f64, m: f64) -> f64 {
    2.0 * k.max(1.0).log2() * 2.0 * m.powi(3)
}

/// Work of one op.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OpCost {
    pub flops: f64,
    pub bytes: f64,
}

impl OpCost {
    /// The single number extraction minimizes: FLOPs plus one unit per f64 moved.
    pub fn weighted(self) -> f64 {
        self.flops + self.bytes / 8.0
    }
}

/// Nodes reachable from `roots`, in arena (topological) order.
pub fn reachable(program: &Program, roots: &[NodeId]) -> Vec<NodeId> {
    let g = &program.graph;
    let mut needed = vec![false; g.len()];
    for r in roots {
        if let Some(slot) = needed.get_mut(r.0 as usize) {
            *slot = true;
        }
    }
    for i in (0..g.len()).rev() {
        if needed[i] {
            for a in &g.node(NodeId(i as u32)).args {
                needed[a.0 as usize] = true;
            }
        }
    }
    (0..g.len())
        .filter(|&i| needed[i])
        .map(|i| NodeId(i as u32))
        .collect()
}

/// FLOPs to evaluate `roots` (each shared node once) at the given sizes:
/// `(setup, per_iteration)`, where setup is the work of stage ≤ Param.
pub fn flops(program: &Program, roots: &[NodeId], dims: &[u64]) -> (f64, f64) {
    let model = CostModel::new(dims.to_vec());
    let g = &program.graph;
    let (mut setup, mut per_iteration) = (0.0, 0.0);
    for id in reachable(program, roots) {
        let node = g.node(id);
        let args: Vec<&Shape> = node.args.iter().map(|&a| g.shape(a)).collect();
        let cost = model.op_cost(&node.op, &node.shape, &args).flops;
        if node.stage <= Stage::Param {
            setup += cost;
        } else {
            per_iteration += cost;
        }
    }
    (setup, per_iteration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{BinaryOp, DimId};

    fn sym(i: u32) -> Dim {
        Dim::sym(DimId(i))
    }

    #[test]
    fn flop_formulas_at_given_sizes() {
        let model = CostModel::new(vec![1000, 100]);
        let (n, d) = (sym(0), sym(1));
        let flops = |op: Op, out: Shape, args: &[Shape]| {
            let args: Vec<&Shape> = args.iter().collect();
            model.op_cost(&op, &out, &args).flops
        };
        // n×d times d×d: 2·n·d·d.
        assert_eq!(
            flops(Op::MatMul, vec![n, d], &[vec![n, d], vec![d, d]]),
            2e7
        );
        // matrix times vector: 2·n·d.
        assert_eq!(flops(Op::MatMul, vec![n], &[vec![n, d], vec![d]]), 2e5);
        assert_eq!(
            flops(
                Op::Binary(BinaryOp::Sub),
                vec![n, d],
                &[vec![n, d], vec![n, d]]
            ),
            1e5
        );
        assert_eq!(flops(Op::Sum { axis: None }, vec![], &[vec![n, d]]), 1e5);
        assert_eq!(flops(Op::Trace, vec![], &[vec![d, d]]), 100.0);
        assert_eq!(flops(Op::Expm, vec![d, d], &[vec![d, d]]), 2e7);
        // d = 100: d^d by squaring, 2·log2(100) ≈ 13.3 products of 2·10⁶ FLOPs.
        let pow = flops(Op::MatPow(d), vec![d, d], &[vec![d, d]]);
        assert!((pow - 2.0 * 100f64.log2() * 2e6).abs() < 1e-3);
        assert!((flops(Op::LogDet, vec![], &[vec![d, d]]) - 2.0 / 3.0 * 1e6).abs() < 1e-6);
        assert_eq!(flops(Op::Transpose, vec![d, n], &[vec![n, d]]), 0.0);
    }

    #[test]
    fn unknown_dims_default_to_100_and_bytes_count_every_element() {
        let model = CostModel::new(vec![]);
        let d = sym(3);
        let cost = model.op_cost(&Op::Transpose, &vec![d, d], &[&vec![d, d]]);
        assert_eq!(cost.flops, 0.0);
        assert_eq!(cost.bytes, 8.0 * 2e4);
        assert_eq!(cost.weighted(), 2e4);
    }
}
