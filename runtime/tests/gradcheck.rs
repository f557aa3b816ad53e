//! Symbolic derivatives checked against central finite differences, evaluated by the reference
//! interpreter: for every differentiable op, f = sum(op(x) .* R) with random shapes (including 1),
//! random values in the op's domain and a random weight tensor R; the gradient against
//! differences of f, and the Hessian-vector product against differences of the gradient.
//! Also the NOTEARS / DAGMA check values of methods.md §1 and the least-squares gradient.

use ndarray::{Array2, ArrayD, IxDyn};
use optc_compiler::autodiff::{gradient, hvp, mixed_vjp};
use optc_compiler::ir::{
    verify, BinaryOp, Dim, DimId, DimInfo, ElemType, InputId, InputKind, NodeId, Op, Program,
    UnaryOp,
};
use optc_runtime::interp::{eval, Bindings, NoSubproblems};

/// splitmix64: a small seeded generator, enough for test values.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A size in 1..=3.
    fn size(&mut self) -> usize {
        1 + (self.next_u64() % 3) as usize
    }

    fn tensor(&mut self, shape: &[usize], lo: f64, hi: f64) -> ArrayD<f64> {
        ArrayD::from_shape_simple_fn(IxDyn(shape), || self.uniform(lo, hi))
    }

    /// Entries of magnitude in [lo, hi) with random signs (away from 0).
    fn signed(&mut self, shape: &[usize], lo: f64, hi: f64) -> ArrayD<f64> {
        ArrayD::from_shape_simple_fn(IxDyn(shape), || {
            let m = self.uniform(lo, hi);
            if self.next_u64().is_multiple_of(2) {
                m
            } else {
                -m
            }
        })
    }

    /// c·I plus small noise: a well-conditioned matrix with positive determinant.
    fn well_conditioned(&mut self, n: usize, c: f64) -> ArrayD<f64> {
        let mut a = self.tensor(&[n, n], -0.3, 0.3);
        for i in 0..n {
            a[[i, i]] += c;
        }
        a
    }
}

const STEP: f64 = 1e-5;
const TOLERANCE: f64 = 1e-6;

/// A program under construction with one value per input (variables first listed in `wrt`).
struct Case {
    name: String,
    p: Program,
    /// Sizes of the dimension symbols.
    dims: Vec<u64>,
    values: Vec<ArrayD<f64>>,
    wrt: Vec<InputId>,
}

impl Case {
    fn new(name: impl Into<String>) -> Case {
        Case {
            name: name.into(),
            p: Program::default(),
            dims: Vec::new(),
            values: Vec::new(),
            wrt: Vec::new(),
        }
    }

    /// An input with fixed sizes taken from its value.
    fn input(&mut self, kind: InputKind, value: ArrayD<f64>) -> NodeId {
        let shape = value
            .shape()
            .iter()
            .map(|&n| Dim::fixed(n as i64))
            .collect();
        self.input_shaped(kind, value, shape)
    }

    fn input_shaped(&mut self, kind: InputKind, value: ArrayD<f64>, shape: Vec<Dim>) -> NodeId {
        let (id, node) = self.p.add_input(
            format!("x{}", self.p.inputs.len()),
            kind,
            ElemType::Real,
            shape,
        );
        self.values.push(value);
        if kind == InputKind::Var {
            self.wrt.push(id);
        }
        node
    }

    fn var(&mut self, value: ArrayD<f64>) -> NodeId {
        self.input(InputKind::Var, value)
    }

    fn data(&mut self, value: ArrayD<f64>) -> NodeId {
        self.input(InputKind::Data, value)
    }

    fn op(&mut self, op: Op, args: &[NodeId]) -> NodeId {
        let name = &self.name;
        self.p
            .graph
            .add(op, args.to_vec())
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// f = sum(y .* R) for a random R shaped like y (y of fixed sizes).
    fn objective(&mut self, y: NodeId, rng: &mut Rng) -> NodeId {
        let shape: Vec<usize> = self
            .p
            .graph
            .shape(y)
            .iter()
            .map(|d| d.offset as usize)
            .collect();
        let r = self.data(rng.tensor(&shape, -1.0, 1.0));
        let prod = self.op(Op::Binary(BinaryOp::Mul), &[y, r]);
        self.op(Op::Sum { axis: None }, &[prod])
    }

    fn bindings(&self) -> Bindings {
        Bindings {
            dims: self.dims.clone(),
            inputs: self.values.iter().cloned().map(Some).collect(),
            loop_indices: Vec::new(),
        }
    }

    fn eval(&self, roots: &[NodeId]) -> Vec<ArrayD<f64>> {
        eval(&self.p, &self.bindings(), roots, &mut NoSubproblems)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    fn eval_scalar(&self, root: NodeId) -> f64 {
        self.eval(&[root])[0]
            .iter()
            .copied()
            .next()
            .expect("a scalar")
    }

    /// Checks the gradient of the scalar `f` by central differences; returns its nodes.
    fn check_gradient(&mut self, f: NodeId) -> Vec<NodeId> {
        let wrt = self.wrt.clone();
        let grads = gradient(&mut self.p, f, &wrt).unwrap_or_else(|e| panic!("{}: {e}", self.name));
        assert_verified(&self.p, &self.name);
        let symbolic = self.eval(&grads);
        for (k, &x) in wrt.iter().enumerate() {
            let i = x.0 as usize;
            let mut numeric = ArrayD::zeros(self.values[i].raw_dim());
            for j in 0..numeric.len() {
                let original = self.values[i].as_slice().expect("standard layout")[j];
                self.values[i].as_slice_mut().expect("standard layout")[j] = original + STEP;
                let plus = self.eval_scalar(f);
                self.values[i].as_slice_mut().expect("standard layout")[j] = original - STEP;
                let minus = self.eval_scalar(f);
                self.values[i].as_slice_mut().expect("standard layout")[j] = original;
                numeric.as_slice_mut().expect("standard layout")[j] = (plus - minus) / (2.0 * STEP);
            }
            assert_close(
                &symbolic[k],
                &numeric,
                &format!("{}: gradient {k}", self.name),
            );
        }
        grads
    }

    /// Checks ∇²f·v against differences of the gradient along a random v.
    fn check_hvp(&mut self, f: NodeId, rng: &mut Rng) {
        let wrt = self.wrt.clone();
        let nodes = hvp(&mut self.p, f, &wrt).unwrap_or_else(|e| panic!("{}: {e}", self.name));
        assert_verified(&self.p, &self.name);
        let directions: Vec<ArrayD<f64>> = wrt
            .iter()
            .map(|x| {
                let shape = self.values[x.0 as usize].shape().to_vec();
                rng.tensor(&shape, -1.0, 1.0)
            })
            .collect();
        self.values.extend(directions.iter().cloned());
        let symbolic = self.eval(&nodes.hvp);
        let shifted = |case: &mut Case, sign: f64| {
            for (x, v) in wrt.iter().zip(&directions) {
                case.values[x.0 as usize].scaled_add(sign * STEP, v);
            }
            let g = case.eval(&nodes.gradient);
            for (x, v) in wrt.iter().zip(&directions) {
                case.values[x.0 as usize].scaled_add(-sign * STEP, v);
            }
            g
        };
        let plus = shifted(self, 1.0);
        let minus = shifted(self, -1.0);
        for k in 0..wrt.len() {
            let numeric = (&plus[k] - &minus[k]) / (2.0 * STEP);
            assert_close(&symbolic[k], &numeric, &format!("{}: hvp {k}", self.name));
        }
    }
}

fn assert_verified(p: &Program, name: &str) {
    let problems = verify(p);
    assert!(problems.is_empty(), "{name}: verifier: {problems:?}");
}

/// max |a − b| ≤ TOLERANCE · max(max |b|, 1).
fn assert_close(a: &ArrayD<f64>, b: &ArrayD<f64>, what: &str) {
    assert_eq!(a.shape(), b.shape(), "{what}: shapes");
    let err = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs()).fold(1.0, f64::max);
    assert!(
        err <= TOLERANCE * scale,
        "{what}: error {err:e} (scale {scale})\nsymbolic {a}\nnumeric {b}"
    );
}

/// Builds `op(args)` in a fresh case, then checks the gradient and (if `second`) the HVP of
/// f = sum(op(args) .* R).
fn check_op(
    name: &str,
    rng: &mut Rng,
    second: bool,
    build: impl FnOnce(&mut Case, &mut Rng) -> NodeId,
) {
    let mut case = Case::new(name);
    let y = build(&mut case, rng);
    let f = case.objective(y, rng);
    case.check_gradient(f);
    if second {
        case.check_hvp(f, rng);
    }
}

/// Where an op's argument values are drawn from.
#[derive(Clone, Copy)]
enum Domain {
    /// Uniform in [lo, hi).
    Range(f64, f64),
    /// Magnitude in [lo, hi), random sign: away from a kink or jump at 0.
    AwayFromZero(f64, f64),
}

impl Domain {
    fn draw(self, rng: &mut Rng, shape: &[usize]) -> ArrayD<f64> {
        match self {
            Domain::Range(lo, hi) => rng.tensor(shape, lo, hi),
            Domain::AwayFromZero(lo, hi) => rng.signed(shape, lo, hi),
        }
    }
}

#[test]
fn unary_ops() {
    let mut rng = Rng(1);
    let ops = [
        (UnaryOp::Neg, Domain::Range(-2.0, 2.0)),
        (UnaryOp::Exp, Domain::Range(-1.0, 1.0)),
        (UnaryOp::Log, Domain::Range(0.5, 2.0)),
        (UnaryOp::Sqrt, Domain::Range(0.5, 2.0)),
        (UnaryOp::Abs, Domain::AwayFromZero(0.1, 2.0)),
        (UnaryOp::Sign, Domain::AwayFromZero(0.1, 2.0)),
        (UnaryOp::Step, Domain::AwayFromZero(0.1, 2.0)),
        (UnaryOp::Tanh, Domain::Range(-2.0, 2.0)),
        (UnaryOp::Sigmoid, Domain::Range(-3.0, 3.0)),
        (UnaryOp::Softplus, Domain::Range(-3.0, 3.0)),
    ];
    for (u, domain) in ops {
        let shape = [rng.size(), rng.size()];
        check_op(&format!("{u:?}"), &mut rng, true, |c, rng| {
            let x = c.var(domain.draw(rng, &shape));
            c.op(Op::Unary(u), &[x])
        });
    }
}

#[test]
fn binary_ops_with_broadcasting() {
    let mut rng = Rng(2);
    let any = Domain::Range(-2.0, 2.0);
    let ops = [
        (BinaryOp::Add, any, any),
        (BinaryOp::Sub, any, any),
        (BinaryOp::Mul, any, any),
        (BinaryOp::Div, any, Domain::AwayFromZero(0.5, 1.5)),
        (
            BinaryOp::Pow,
            Domain::Range(0.5, 1.5),
            Domain::Range(-1.5, 1.5),
        ),
        (BinaryOp::Max, any, any),
        (BinaryOp::Min, any, any),
    ];
    for (b, left, right) in ops {
        let (m, n) = (rng.size(), rng.size());
        // Equal shapes, a row against a matrix, a scalar against a matrix, [m, 1] against [n].
        let pairs: [(Vec<usize>, Vec<usize>); 4] = [
            (vec![m, n], vec![m, n]),
            (vec![n], vec![m, n]),
            (vec![m, n], vec![]),
            (vec![m, 1], vec![n]),
        ];
        for (sa, sb) in pairs {
            let name = format!("{b:?} {sa:?} {sb:?}");
            check_op(&name, &mut rng, true, |c, rng| {
                let x = c.var(left.draw(rng, &sa));
                let y = c.var(right.draw(rng, &sb));
                c.op(Op::Binary(b), &[x, y])
            });
        }
    }
}

#[test]
fn power_with_constant_and_data_exponents() {
    let mut rng = Rng(3);
    for exponent in [2.0, 3.0, 0.5, -1.0, 1.0] {
        let shape = [rng.size(), rng.size()];
        check_op(&format!("pow {exponent}"), &mut rng, true, |c, rng| {
            let x = c.var(rng.tensor(&shape, 0.5, 1.5));
            let p = c.p.graph.constant(exponent);
            c.op(Op::Binary(BinaryOp::Pow), &[x, p])
        });
    }
    check_op("pow data exponent", &mut rng, true, |c, rng| {
        let x = c.var(rng.tensor(&[3], 0.5, 1.5));
        let p = c.data(rng.tensor(&[3], -1.5, 1.5));
        c.op(Op::Binary(BinaryOp::Pow), &[x, p])
    });
}

#[test]
fn reductions() {
    let mut rng = Rng(4);
    for axis in [None, Some(0), Some(1)] {
        let shape = [rng.size(), rng.size()];
        check_op(&format!("sum {axis:?}"), &mut rng, true, |c, rng| {
            let x = c.var(rng.tensor(&shape, -1.0, 1.0));
            c.op(Op::Sum { axis }, &[x])
        });
        check_op(&format!("max {axis:?}"), &mut rng, true, |c, rng| {
            let x = c.var(rng.tensor(&shape, -1.0, 1.0));
            c.op(Op::Max { axis }, &[x])
        });
        check_op(&format!("logsumexp {axis:?}"), &mut rng, true, |c, rng| {
            let x = c.var(rng.tensor(&shape, -1.0, 1.0));
            c.op(Op::LogSumExp { axis }, &[x])
        });
        check_op(
            &format!("argmax_mask {axis:?}"),
            &mut rng,
            true,
            |c, rng| {
                let x = c.var(rng.tensor(&shape, -1.0, 1.0));
                c.op(Op::ArgmaxMask { axis }, &[x])
            },
        );
    }
}

#[test]
fn matrix_products_of_every_rank() {
    let mut rng = Rng(5);
    for (ra, rb) in [(1, 1), (1, 2), (2, 1), (2, 2)] {
        let (m, k, n) = (rng.size(), rng.size(), rng.size());
        let sa = if ra == 1 { vec![k] } else { vec![m, k] };
        let sb = if rb == 1 { vec![k] } else { vec![k, n] };
        check_op(&format!("matmul {ra}x{rb}"), &mut rng, true, |c, rng| {
            let a = c.var(rng.tensor(&sa, -1.0, 1.0));
            let b = c.var(rng.tensor(&sb, -1.0, 1.0));
            c.op(Op::MatMul, &[a, b])
        });
    }
}

#[test]
fn structural_matrix_ops() {
    let mut rng = Rng(6);
    let n = rng.size() + 1;
    let m = rng.size();
    check_op("transpose", &mut rng, true, |c, rng| {
        let x = c.var(rng.tensor(&[m, n], -1.0, 1.0));
        c.op(Op::Transpose, &[x])
    });
    check_op("diag", &mut rng, true, |c, rng| {
        let x = c.var(rng.tensor(&[n], -1.0, 1.0));
        c.op(Op::Diag, &[x])
    });
    check_op("diag_part", &mut rng, true, |c, rng| {
        let x = c.var(rng.tensor(&[n, n], -1.0, 1.0));
        c.op(Op::DiagPart, &[x])
    });
    check_op("trace", &mut rng, true, |c, rng| {
        let x = c.var(rng.tensor(&[n, n], -1.0, 1.0));
        c.op(Op::Trace, &[x])
    });
    check_op("trace of eye-scaled", &mut rng, true, |c, rng| {
        let x = c.var(rng.tensor(&[n, n], -1.0, 1.0));
        let eye = c.op(Op::Eye(Dim::fixed(n as i64)), &[]);
        let y = c.op(Op::Binary(BinaryOp::Mul), &[x, eye]);
        c.op(Op::Trace, &[y])
    });
}

#[test]
fn linear_algebra_ops() {
    let mut rng = Rng(7);
    for n in [1, 2, 3] {
        check_op(&format!("expm {n}"), &mut rng, true, |c, rng| {
            let a = c.var(rng.tensor(&[n, n], -0.4, 0.4));
            c.op(Op::Expm, &[a])
        });
        check_op(&format!("logdet {n}"), &mut rng, true, |c, rng| {
            let a = c.var(rng.well_conditioned(n, 1.5));
            c.op(Op::LogDet, &[a])
        });
        check_op(&format!("inv {n}"), &mut rng, true, |c, rng| {
            let a = c.var(rng.well_conditioned(n, 2.0));
            c.op(Op::Inv, &[a])
        });
        let k = rng.size();
        for sb in [vec![n], vec![n, k]] {
            check_op(&format!("solve {n} {sb:?}"), &mut rng, true, |c, rng| {
                let a = c.var(rng.well_conditioned(n, 2.0));
                let b = c.var(rng.tensor(&sb, -1.0, 1.0));
                c.op(Op::Solve, &[a, b])
            });
        }
    }
}

#[test]
fn expm_derivative_ops() {
    let mut rng = Rng(8);
    let n = rng.size() + 1;
    // First order in every argument; second order where the third derivative is not needed.
    check_op("expm_frechet", &mut rng, false, |c, rng| {
        let a = c.var(rng.tensor(&[n, n], -0.4, 0.4));
        let e = c.var(rng.tensor(&[n, n], -1.0, 1.0));
        c.op(Op::ExpmFrechet, &[a, e])
    });
    check_op("expm_frechet in E", &mut rng, true, |c, rng| {
        let a = c.data(rng.tensor(&[n, n], -0.4, 0.4));
        let e = c.var(rng.tensor(&[n, n], -1.0, 1.0));
        c.op(Op::ExpmFrechet, &[a, e])
    });
    check_op("expm_frechet2 in E, F", &mut rng, true, |c, rng| {
        let a = c.data(rng.tensor(&[n, n], -0.4, 0.4));
        let e = c.var(rng.tensor(&[n, n], -1.0, 1.0));
        let f = c.var(rng.tensor(&[n, n], -1.0, 1.0));
        c.op(Op::ExpmFrechet2, &[a, e, f])
    });
}

#[test]
fn matpow_and_its_derivative_ops() {
    // f = sum(A^k .* R) (a non-trace use), first and second order, k = 0 (constant) to 5.
    let mut rng = Rng(21);
    for n in [1, 2, 3] {
        for k in [0, 1, 2, 3, 5] {
            check_op(&format!("matpow {n} {k}"), &mut rng, true, |c, rng| {
                let a = c.var(rng.tensor(&[n, n], -0.8, 0.8));
                c.op(Op::MatPow(Dim::fixed(k)), &[a])
            });
        }
    }
    let n = rng.size() + 1;
    let k = Dim::fixed(4);
    check_op("matpow_frechet", &mut rng, false, |c, rng| {
        let a = c.var(rng.tensor(&[n, n], -0.8, 0.8));
        let e = c.var(rng.tensor(&[n, n], -1.0, 1.0));
        c.op(Op::MatPowFrechet(k), &[a, e])
    });
    check_op("matpow_frechet in E", &mut rng, true, |c, rng| {
        let a = c.data(rng.tensor(&[n, n], -0.8, 0.8));
        let e = c.var(rng.tensor(&[n, n], -1.0, 1.0));
        c.op(Op::MatPowFrechet(k), &[a, e])
    });
    check_op("matpow_frechet2 in E, F", &mut rng, true, |c, rng| {
        let a = c.data(rng.tensor(&[n, n], -0.8, 0.8));
        let e = c.var(rng.tensor(&[n, n], -1.0, 1.0));
        let f = c.var(rng.tensor(&[n, n], -1.0, 1.0));
        c.op(Op::MatPowFrechet2(k), &[a, e, f])
    });
}

#[test]
fn indexing_and_shape_ops() {
    let mut rng = Rng(9);
    let (m, n) = (rng.size(), rng.size());
    check_op("slice axis 0", &mut rng, true, |c, rng| {
        let x = c.var(rng.tensor(&[4, n], -1.0, 1.0));
        let (start, end) = (Dim::fixed(1), Dim::fixed(3));
        c.op(
            Op::Slice {
                axis: 0,
                start,
                end,
            },
            &[x],
        )
    });
    check_op("slice axis 1", &mut rng, true, |c, rng| {
        let x = c.var(rng.tensor(&[m, 3], -1.0, 1.0));
        let (start, end) = (Dim::fixed(0), Dim::fixed(2));
        c.op(
            Op::Slice {
                axis: 1,
                start,
                end,
            },
            &[x],
        )
    });
    check_op("pad", &mut rng, true, |c, rng| {
        let x = c.var(rng.tensor(&[m, n], -1.0, 1.0));
        let (start, size) = (Dim::fixed(1), Dim::fixed(n as i64 + 2));
        c.op(
            Op::Pad {
                axis: 1,
                start,
                size,
            },
            &[x],
        )
    });
    for axis in [0, 1] {
        check_op(&format!("select axis {axis}"), &mut rng, true, |c, rng| {
            let x = c.var(rng.tensor(&[3, 3], -1.0, 1.0));
            let index = c.p.graph.constant(1.0);
            c.op(Op::Select { axis }, &[x, index])
        });
        check_op(&format!("scatter axis {axis}"), &mut rng, true, |c, rng| {
            let x = c.var(rng.tensor(&[m], -1.0, 1.0));
            let index = c.p.graph.constant(2.0);
            c.op(
                Op::Scatter {
                    axis,
                    size: Dim::fixed(3),
                },
                &[x, index],
            )
        });
        check_op(&format!("expand axis {axis}"), &mut rng, true, |c, rng| {
            let x = c.var(rng.tensor(&[m, n], -1.0, 1.0));
            c.op(
                Op::Expand {
                    axis,
                    size: Dim::fixed(3),
                },
                &[x],
            )
        });
    }
    check_op("stack", &mut rng, true, |c, rng| {
        let a = c.var(rng.tensor(&[m], -1.0, 1.0));
        let b = c.var(rng.tensor(&[m], -1.0, 1.0));
        c.op(Op::Stack, &[a, b, a])
    });
    check_op("broadcast_to", &mut rng, true, |c, rng| {
        let x = c.var(rng.tensor(&[1, n], -1.0, 1.0));
        let shape = vec![Dim::fixed(m as i64), Dim::fixed(n as i64)];
        c.op(Op::BroadcastTo(shape), &[x])
    });
    for target in [vec![n], vec![1, n]] {
        check_op(&format!("sum_to {target:?}"), &mut rng, true, |c, rng| {
            let x = c.var(rng.tensor(&[m, n], -1.0, 1.0));
            let shape = target.iter().map(|&k| Dim::fixed(k as i64)).collect();
            c.op(Op::SumTo(shape), &[x])
        });
    }
}

#[test]
fn sorting_ops() {
    let mut rng = Rng(15);
    let n = rng.size() + 2;
    check_op("sort_desc", &mut rng, true, |c, rng| {
        let x = c.var(rng.tensor(&[n], -1.0, 1.0));
        c.op(Op::SortDesc, &[x])
    });
    check_op("topk", &mut rng, true, |c, rng| {
        let x = c.var(rng.tensor(&[n], -1.0, 1.0));
        c.op(Op::TopK(Dim::fixed(2)), &[x])
    });
    check_op("sort_scatter", &mut rng, true, |c, rng| {
        let x = c.data(rng.tensor(&[n], -1.0, 1.0));
        let g = c.var(rng.tensor(&[2], -1.0, 1.0));
        c.op(Op::SortScatter, &[x, g])
    });
    check_op("sort_gather", &mut rng, true, |c, rng| {
        let x = c.data(rng.tensor(&[n], -1.0, 1.0));
        let h = c.var(rng.tensor(&[n], -1.0, 1.0));
        c.op(Op::SortGather(Dim::fixed(2)), &[x, h])
    });
}

#[test]
fn composite_with_shared_subexpressions() {
    // log(sum(exp(W @ x)) + sigmoid(x) .* (W @ x)): the same primal node feeds several paths.
    let mut rng = Rng(10);
    let n = 3;
    check_op("composite", &mut rng, true, |c, rng| {
        let w = c.var(rng.tensor(&[n, n], -1.0, 1.0));
        let x = c.var(rng.tensor(&[n], -1.0, 1.0));
        let wx = c.op(Op::MatMul, &[w, x]);
        let e = c.op(Op::Unary(UnaryOp::Exp), &[wx]);
        let s = c.op(Op::Sum { axis: None }, &[e]);
        let l = c.op(Op::Unary(UnaryOp::Log), &[s]);
        let sig = c.op(Op::Unary(UnaryOp::Sigmoid), &[x]);
        let prod = c.op(Op::Binary(BinaryOp::Mul), &[sig, wx]);
        c.op(Op::Binary(BinaryOp::Add), &[l, prod])
    });
}

/// A case with one dimension symbol `d` (bound to `size`) and W : real[d, d] = `w`.
fn square_var_case(name: &str, w: ArrayD<f64>) -> (Case, NodeId) {
    let mut case = Case::new(name);
    case.p.dims.push(DimInfo {
        name: "d".into(),
        default: None,
        span: None,
    });
    case.dims.push(w.shape()[0] as u64);
    let d = Dim::sym(DimId(0));
    let w = case.input_shaped(InputKind::Var, w, vec![d, d]);
    (case, w)
}

fn two_node_graph(a: f64, b: f64) -> ArrayD<f64> {
    Array2::from_shape_vec((2, 2), vec![0.0, a, b, 0.0])
        .expect("2x2")
        .into_dyn()
}

/// NOTEARS: h(W) = trace(expm(W .* W)) - d.
fn notears_h(c: &mut Case, w: NodeId) -> NodeId {
    let ww = c.op(Op::Binary(BinaryOp::Mul), &[w, w]);
    let e = c.op(Op::Expm, &[ww]);
    let tr = c.op(Op::Trace, &[e]);
    let d = c.op(Op::DimSize(Dim::sym(DimId(0))), &[]);
    c.op(Op::Binary(BinaryOp::Sub), &[tr, d])
}

/// DAG-GNN: h(W) = trace(matpow(I + W .* W / d, d)) - d.
fn poly_acyclic_h(c: &mut Case, w: NodeId) -> NodeId {
    let d = Dim::sym(DimId(0));
    let eye = c.op(Op::Eye(d), &[]);
    let ww = c.op(Op::Binary(BinaryOp::Mul), &[w, w]);
    let d_size = c.op(Op::DimSize(d), &[]);
    let scaled = c.op(Op::Binary(BinaryOp::Div), &[ww, d_size]);
    let m = c.op(Op::Binary(BinaryOp::Add), &[eye, scaled]);
    let power = c.op(Op::MatPow(d), &[m]);
    let tr = c.op(Op::Trace, &[power]);
    c.op(Op::Binary(BinaryOp::Sub), &[tr, d_size])
}

/// DAGMA: h(W) = -logdet(s I - W .* W) + d log s.
fn dagma_h(c: &mut Case, w: NodeId, s: f64) -> NodeId {
    let d = Dim::sym(DimId(0));
    let s = c.p.graph.constant(s);
    let eye = c.op(Op::Eye(d), &[]);
    let si = c.op(Op::Binary(BinaryOp::Mul), &[s, eye]);
    let ww = c.op(Op::Binary(BinaryOp::Mul), &[w, w]);
    let m = c.op(Op::Binary(BinaryOp::Sub), &[si, ww]);
    let ld = c.op(Op::LogDet, &[m]);
    let neg = c.op(Op::Unary(UnaryOp::Neg), &[ld]);
    let d_size = c.op(Op::DimSize(d), &[]);
    let log_s = c.op(Op::Unary(UnaryOp::Log), &[s]);
    let shift = c.op(Op::Binary(BinaryOp::Mul), &[d_size, log_s]);
    c.op(Op::Binary(BinaryOp::Add), &[neg, shift])
}

fn assert_within(value: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (value - expected).abs() <= tolerance,
        "{what}: {value} but expected {expected}"
    );
}

#[test]
fn notears_check_values() {
    // methods.md §1; closed forms ∂h/∂W01 = 2b sinh(ab), ∂h/∂W10 = 2a sinh(ab).
    let rows = [
        (0.5, 0.5, 0.0628261998, 0.2526123168),
        (1.0, 0.3, 0.0906770283, 0.1827121761),
    ];
    for (a, b, h_table, d01_table) in rows {
        let (mut case, w) = square_var_case("notears", two_node_graph(a, b));
        let h = notears_h(&mut case, w);
        let grads = case.check_gradient(h);
        assert_within(case.eval_scalar(h), h_table, 1e-9, "h_expm");
        let g = &case.eval(&grads)[0];
        assert_within(g[[0, 1]], d01_table, 1e-9, "dh_expm/dW01");
        assert_within(
            g[[0, 1]],
            2.0 * b * (a * b).sinh(),
            1e-12,
            "dh_expm/dW01 closed form",
        );
        assert_within(
            g[[1, 0]],
            2.0 * a * (a * b).sinh(),
            1e-12,
            "dh_expm/dW10 closed form",
        );
        assert_within(g[[0, 0]], 0.0, 1e-15, "dh_expm/dW00");
        case.check_hvp(h, &mut Rng(11));
    }
}

#[test]
fn poly_acyclic_check_values() {
    // d = 2: h = tr([[1, a²/2], [b²/2, 1]]²) − 2 = a²b²/2, ∂h/∂W01 = ab², ∂h/∂W10 = a²b.
    for (a, b) in [(0.5, 0.5), (1.0, 0.3)] {
        let (mut case, w) = square_var_case("poly_acyclic", two_node_graph(a, b));
        let h = poly_acyclic_h(&mut case, w);
        let grads = case.check_gradient(h);
        assert_within(case.eval_scalar(h), a * a * b * b / 2.0, 1e-15, "h_poly");
        let g = &case.eval(&grads)[0];
        assert_within(g[[0, 1]], a * b * b, 1e-14, "dh_poly/dW01");
        assert_within(g[[1, 0]], a * a * b, 1e-14, "dh_poly/dW10");
        assert_within(g[[0, 0]], 0.0, 1e-15, "dh_poly/dW00");
        case.check_hvp(h, &mut Rng(22));
    }
    // A random dense W (d = 4): gradient and HVP by differences.
    let mut rng = Rng(23);
    let (mut case, w) = square_var_case("poly_acyclic dense", rng.tensor(&[4, 4], -1.0, 1.0));
    let h = poly_acyclic_h(&mut case, w);
    case.check_gradient(h);
    case.check_hvp(h, &mut rng);
    // On a DAG h = 0 and its gradient 2W ∘ ((I + W∘W/d)^(d−1))ᵀ vanishes (upper times lower
    // triangular, zero diagonal).
    let mut dag = rng.tensor(&[4, 4], -1.0, 1.0);
    for i in 0..4 {
        for j in 0..=i {
            dag[[i, j]] = 0.0;
        }
    }
    let (mut case, w) = square_var_case("poly_acyclic dag", dag);
    let h = poly_acyclic_h(&mut case, w);
    let grads = case.check_gradient(h);
    assert_eq!(case.eval_scalar(h), 0.0);
    assert!(case.eval(&grads)[0].iter().all(|&x| x == 0.0));
}

#[test]
fn dagma_check_values() {
    // methods.md §1; closed forms 2ab²/(s² − a²b²) and 2a²b/(s² − a²b²) with s = 1.
    let rows = [
        (0.5, 0.5, 0.0645385211, 0.2666666667, 0.2666666667),
        (1.0, 0.3, 0.0943106795, 0.1978021978, 0.6593406593),
    ];
    for (a, b, h_table, d01_table, d10_table) in rows {
        let (mut case, w) = square_var_case("dagma", two_node_graph(a, b));
        let h = dagma_h(&mut case, w, 1.0);
        let grads = case.check_gradient(h);
        assert_within(case.eval_scalar(h), h_table, 1e-9, "h_ldet");
        let g = &case.eval(&grads)[0];
        let denominator = 1.0 - a * a * b * b;
        assert_within(g[[0, 1]], d01_table, 1e-9, "dh_ldet/dW01");
        assert_within(g[[1, 0]], d10_table, 1e-9, "dh_ldet/dW10");
        assert_within(
            g[[0, 1]],
            2.0 * a * b * b / denominator,
            1e-12,
            "closed form 01",
        );
        assert_within(
            g[[1, 0]],
            2.0 * a * a * b / denominator,
            1e-12,
            "closed form 10",
        );
        case.check_hvp(h, &mut Rng(12));
    }
}

#[test]
fn least_squares_gradient_and_hessian() {
    // Q(W) = 0.5/n sumsq(X - X W): ∇Q = -(1/n) Xᵀ(X - XW), ∇²Q·V = (1/n) XᵀX V.
    let mut rng = Rng(13);
    let (n, d) = (5, 3);
    let w_value = rng.tensor(&[d, d], -1.0, 1.0);
    let x_value = rng.tensor(&[n, d], -1.0, 1.0);
    let (mut case, w) = square_var_case("least squares", w_value.clone());
    case.p.dims.push(DimInfo {
        name: "n".into(),
        default: None,
        span: None,
    });
    case.dims.push(n as u64);
    let (n_dim, d_dim) = (Dim::sym(DimId(1)), Dim::sym(DimId(0)));
    let x = case.input_shaped(InputKind::Data, x_value.clone(), vec![n_dim, d_dim]);
    let xw = case.op(Op::MatMul, &[x, w]);
    let r = case.op(Op::Binary(BinaryOp::Sub), &[x, xw]);
    let two = case.p.graph.constant(2.0);
    let r2 = case.op(Op::Binary(BinaryOp::Pow), &[r, two]);
    let sumsq = case.op(Op::Sum { axis: None }, &[r2]);
    let half = case.p.graph.constant(0.5);
    let n_size = case.op(Op::DimSize(n_dim), &[]);
    let scale = case.op(Op::Binary(BinaryOp::Div), &[half, n_size]);
    let q = case.op(Op::Binary(BinaryOp::Mul), &[scale, sumsq]);

    let grads = case.check_gradient(q);
    let x2 = x_value
        .into_dimensionality::<ndarray::Ix2>()
        .expect("matrix");
    let w2 = w_value
        .into_dimensionality::<ndarray::Ix2>()
        .expect("matrix");
    let residual = &x2 - &x2.dot(&w2);
    let expected = x2.t().dot(&residual) * (-1.0 / n as f64);
    assert_close(
        &case.eval(&grads)[0],
        &expected.into_dyn(),
        "closed-form gradient",
    );

    let nodes = hvp(&mut case.p, q, &[InputId(0)]).expect("hvp");
    assert_verified(&case.p, "least squares hvp");
    let v = rng.tensor(&[d, d], -1.0, 1.0);
    case.values.push(v.clone());
    let v2 = v.into_dimensionality::<ndarray::Ix2>().expect("matrix");
    let expected_hv = x2.t().dot(&x2).dot(&v2) / n as f64;
    assert_close(
        &case.eval(&nodes.hvp)[0],
        &expected_hv.into_dyn(),
        "closed-form hvp",
    );
}

#[test]
fn mixed_vjp_matches_differences_of_the_inner_gradient() {
    // f(x, θ) = sum(θ .* x^2) + sum(exp(θ) .* x) + (θ · x)^2.
    let mut rng = Rng(14);
    let mut case = Case::new("mixed vjp");
    let x = case.input(InputKind::InnerVar, rng.tensor(&[3], -1.0, 1.0));
    let theta = case.input(InputKind::Param, rng.tensor(&[3], -1.0, 1.0));
    let two = case.p.graph.constant(2.0);
    let x2 = case.op(Op::Binary(BinaryOp::Pow), &[x, two]);
    let t_x2 = case.op(Op::Binary(BinaryOp::Mul), &[theta, x2]);
    let first = case.op(Op::Sum { axis: None }, &[t_x2]);
    let e = case.op(Op::Unary(UnaryOp::Exp), &[theta]);
    let e_x = case.op(Op::Binary(BinaryOp::Mul), &[e, x]);
    let second = case.op(Op::Sum { axis: None }, &[e_x]);
    let dot = case.op(Op::MatMul, &[theta, x]);
    let third = case.op(Op::Binary(BinaryOp::Pow), &[dot, two]);
    let partial = case.op(Op::Binary(BinaryOp::Add), &[first, second]);
    let f = case.op(Op::Binary(BinaryOp::Add), &[partial, third]);

    let (x_id, theta_id) = (InputId(0), InputId(1));
    let nodes = mixed_vjp(&mut case.p, f, &[x_id], &[theta_id]).expect("mixed vjp");
    assert_verified(&case.p, "mixed vjp");
    let v = rng.tensor(&[3], -1.0, 1.0);
    case.values.push(v.clone());
    let symbolic = case.eval(&nodes.mixed)[0].clone();
    let inner = |case: &Case| -> f64 {
        let g = &case.eval(&nodes.gradient_x)[0];
        g.iter().zip(&v).map(|(a, b)| a * b).sum()
    };
    let mut numeric = ArrayD::zeros(IxDyn(&[3]));
    for j in 0..3 {
        case.values[1][j] += STEP;
        let plus = inner(&case);
        case.values[1][j] -= 2.0 * STEP;
        let minus = inner(&case);
        case.values[1][j] += STEP;
        numeric[j] = (plus - minus) / (2.0 * STEP);
    }
    assert_close(&symbolic, &numeric, "mixed vjp");
}

#[test]
fn subgradients_pick_the_first_argument_and_the_first_argmax() {
    let mut case = Case::new("ties");
    let a = case.var(ndarray::arr1(&[1.0, 2.0, 0.0]).into_dyn());
    let b = case.var(ndarray::arr1(&[1.0, 3.0, -1.0]).into_dyn());
    let x = case.var(ndarray::arr1(&[2.0, 2.0, 1.0]).into_dyn());
    let max = case.op(Op::Binary(BinaryOp::Max), &[a, b]);
    let min = case.op(Op::Binary(BinaryOp::Min), &[a, b]);
    let reduced = case.op(Op::Max { axis: None }, &[x]);
    let abs = case.op(Op::Unary(UnaryOp::Abs), &[a]);
    let mut terms = Vec::new();
    for y in [max, min, abs] {
        terms.push(case.op(Op::Sum { axis: None }, &[y]));
    }
    terms.push(reduced);
    let mut f = terms[0];
    for &t in &terms[1..] {
        f = case.op(Op::Binary(BinaryOp::Add), &[f, t]);
    }
    let wrt = case.wrt.clone();
    let grads = gradient(&mut case.p, f, &wrt).expect("gradient");
    let values = case.eval(&grads);
    // Per entry of a, the max, min and abs terms: the tie (entry 0) goes to a in max and min;
    // a < b in entry 1 (min picks a); a > b in entry 2 (max picks a), where abs'(0) = 0.
    let from_a = [1.0 + 1.0 + 1.0, 0.0 + 1.0 + 1.0, 1.0 + 0.0 + 0.0];
    assert_eq!(values[0].as_slice().unwrap(), &from_a);
    assert_eq!(values[1].as_slice().unwrap(), &[0.0, 1.0, 1.0]);
    assert_eq!(values[2].as_slice().unwrap(), &[1.0, 0.0, 0.0]);
}

#[test]
fn ops_added_for_derivatives_evaluate_to_hand_computed_values() {
    let mut case = Case::new("derivative ops");
    let v = case.data(ndarray::arr1(&[1.0, -2.0]).into_dyn());
    let m = case.data(ndarray::arr2(&[[1.0, 3.0], [4.0, 3.0]]).into_dyn());
    let a = case.data(ndarray::arr2(&[[0.5, 0.0], [0.0, -1.0]]).into_dyn());
    let e = case.data(ndarray::arr2(&[[1.0, 2.0], [3.0, 4.0]]).into_dyn());
    let f = case.data(ndarray::arr2(&[[0.0, 1.0], [-1.0, 2.0]]).into_dyn());
    let zero = case.data(ArrayD::zeros(IxDyn(&[2, 2])));
    let index = case.p.graph.constant(1.0);
    let (one, three) = (Dim::fixed(1), Dim::fixed(3));
    let roots = [
        case.op(Op::Unary(UnaryOp::Step), &[v]),
        case.op(
            Op::Expand {
                axis: 0,
                size: three,
            },
            &[v],
        ),
        case.op(Op::ArgmaxMask { axis: Some(0) }, &[m]),
        case.op(Op::ArgmaxMask { axis: None }, &[m]),
        case.op(
            Op::Pad {
                axis: 0,
                start: one,
                size: Dim::fixed(4),
            },
            &[v],
        ),
        case.op(
            Op::Scatter {
                axis: 1,
                size: three,
            },
            &[v, index],
        ),
        case.op(Op::ExpmFrechet, &[a, e]),
        case.op(Op::ExpmFrechet2, &[zero, e, f]),
    ];
    let x = case.data(ndarray::arr1(&[0.5, 2.0, -1.0]).into_dyn());
    let g = case.data(ndarray::arr1(&[10.0, 20.0]).into_dyn());
    let h = case.data(ndarray::arr1(&[7.0, 8.0, 9.0]).into_dyn());
    let roots = [
        roots.as_slice(),
        &[
            case.op(Op::SortScatter, &[x, g]),
            case.op(Op::SortGather(Dim::fixed(2)), &[x, h]),
        ],
    ]
    .concat();
    let values = case.eval(&roots);
    let flat = |k: usize| values[k].iter().copied().collect::<Vec<f64>>();
    assert_eq!(flat(0), [1.0, 0.0]);
    assert_eq!(flat(1), [1.0, -2.0, 1.0, -2.0, 1.0, -2.0]);
    assert_eq!(flat(2), [0.0, 1.0, 1.0, 0.0]); // column 1 ties: the first row wins
    assert_eq!(flat(3), [0.0, 0.0, 1.0, 0.0]);
    assert_eq!(flat(4), [0.0, 1.0, -2.0, 0.0]);
    assert_eq!(flat(5), [0.0, 1.0, 0.0, 0.0, -2.0, 0.0]);
    // A = diag(p): L(A, E)_ij = E_ij (e^p_i − e^p_j) / (p_i − p_j), and E_ii e^p_i on the diagonal.
    let p = [0.5f64, -1.0];
    let divided = (p[0].exp() - p[1].exp()) / (p[0] - p[1]);
    let expected = [p[0].exp(), 2.0 * divided, 3.0 * divided, 4.0 * p[1].exp()];
    for (x, y) in flat(6).iter().zip(expected) {
        assert_within(*x, y, 1e-13, "expm_frechet of a diagonal matrix");
    }
    // x = [0.5, 2, -1] in descending order: positions 1, 0, 2.
    assert_eq!(flat(8), [20.0, 10.0, 0.0]);
    assert_eq!(flat(9), [8.0, 7.0]);
    // At A = 0: D²expm(0)[E, F] = (EF + FE) / 2.
    let (e2, f2) = (
        ndarray::arr2(&[[1.0, 2.0], [3.0, 4.0]]),
        ndarray::arr2(&[[0.0, 1.0], [-1.0, 2.0]]),
    );
    let expected = (e2.dot(&f2) + f2.dot(&e2)) / 2.0;
    for (x, y) in flat(7).iter().zip(expected.iter()) {
        assert_within(*x, *y, 1e-13, "expm_frechet2 at zero");
    }
}
