//! Simplified programs compute the same values as the originals, by the reference interpreter:
//! objectives, constraints and their gradients (and a Hessian-vector product) of `.opt` models
//! (DAGMA, NOTEARS, ridge regression),
//! on random inputs, to 1e-10 relative.

use ndarray::{ArrayD, IxDyn};
use optc_compiler::autodiff::{gradient, hvp};
use optc_compiler::driver::{compile, Until};
use optc_compiler::ir::{verify, InputKind, NodeId, Op, Program};
use optc_compiler::simplify::{simplify, CostModel};
use optc_runtime::interp::{eval, Bindings, NoSubproblems};

/// Deterministic pseudo-random values in [-scale, scale).
fn random(shape: &[usize], seed: u64, scale: f64) -> ArrayD<f64> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    ArrayD::from_shape_fn(IxDyn(shape), |_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
    })
}

fn lowered(source: &str) -> Program {
    let compiled =
        compile("model.opt", source, Until::Ir).unwrap_or_else(|e| panic!("{:?}", e.diagnostics));
    compiled.program.unwrap()
}

/// Binds every dim to `size` (n to `n`), data to random values, params to their literal
/// defaults where the test gives them, variables and directions to small random values.
fn bindings(p: &Program, n: u64, d: u64, params: &[(&str, f64)]) -> Bindings {
    let dims: Vec<u64> = p
        .dims
        .iter()
        .map(|dim| if dim.name == "n" { n } else { d })
        .collect();
    let inputs = p
        .inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let shape: Vec<usize> = input.shape.iter().map(|s| s.eval(&dims) as usize).collect();
            let value = match input.kind {
                InputKind::Param => {
                    let (_, v) = params.iter().find(|(name, _)| *name == input.name).unwrap();
                    ArrayD::from_elem(IxDyn(&shape), *v)
                }
                InputKind::Data => random(&shape, 10 + i as u64, 1.0),
                _ => random(&shape, 20 + i as u64, 0.2),
            };
            Some(value)
        })
        .collect();
    Bindings {
        dims,
        inputs,
        loop_indices: Vec::new(),
    }
}

fn assert_same_values(p: &Program, roots: &[NodeId], b: &Bindings) {
    let s = simplify(p, roots, &CostModel::new(vec![1000, 20])).unwrap();
    assert_eq!(verify(&s.program), Vec::<String>::new());
    let before = eval(p, b, roots, &mut NoSubproblems).unwrap();
    let after = eval(&s.program, b, &s.roots, &mut NoSubproblems).unwrap();
    for (x, y) in before.iter().zip(&after) {
        assert_eq!(x.shape(), y.shape());
        let scale = x.iter().fold(1e-300f64, |m, v| m.max(v.abs()));
        for (u, v) in x.iter().zip(y) {
            assert!((u - v).abs() <= 1e-10 * scale, "{u} vs {v}");
        }
    }
}

const DAGMA: &str = "dims n, d
data X : real[n, d] = load(\"X.npy\")
param lambda1 = 0.02
var W : real[d, d] = 0
minimize 0.5 / n * sumsq(X - X @ W) + lambda1 * norm1(W)
subject to
  acyclic: dagma_logdet(W, s = 1) == 0
";

const NOTEARS: &str = "dims n, d
data X : real[n, d] = load(\"X.npy\")
param lambda1 = 0.02
var W : real[d, d] = 0
minimize lsq(X, X, W) + lambda1 * norm1(W)
subject to
  acyclic: notears(W) == 0
";

const RIDGE: &str = "dims n, d
data X : real[n, d] = load(\"X.npy\")
data y : real[n] = load(\"y.npy\")
param alpha = 0.1
var w : real[d] = 0
minimize 0.5 * sumsq(X @ w - y) + alpha * sumsq(w)
";

#[test]
fn objectives_constraints_and_gradients_keep_their_values() {
    for (source, params) in [
        (DAGMA, vec![("lambda1", 0.02)]),
        (NOTEARS, vec![("lambda1", 0.02)]),
        (RIDGE, vec![("alpha", 0.1)]),
    ] {
        let mut p = lowered(source);
        let vars: Vec<_> = p.variables().collect();
        let mut roots = vec![p.objective.as_ref().unwrap().node];
        roots.extend(p.constraints.iter().map(|c| c.node));
        for f in roots.clone() {
            roots.extend(gradient(&mut p, f, &vars).unwrap());
        }
        let b = bindings(&p, 9, 4, &params);
        assert_same_values(&p, &roots, &b);
    }
}

#[test]
fn hessian_vector_products_keep_their_values() {
    let mut p = lowered(DAGMA);
    let vars: Vec<_> = p.variables().collect();
    let f = p.objective.as_ref().unwrap().node;
    let h = hvp(&mut p, f, &vars).unwrap();
    let mut roots = vec![f];
    roots.extend(&h.gradient);
    roots.extend(&h.hvp);
    let b = bindings(&p, 8, 3, &[("lambda1", 0.02)]);
    assert_same_values(&p, &roots, &b);
}

/// The number of nodes of `program` with the op `op`.
fn count(program: &Program, op: &Op) -> usize {
    program.graph.nodes().filter(|(_, n)| n.op == *op).count()
}

/// The adjoint of `trace(expm(·))` is a multiple of the identity, so the gradient of the
/// augmented Lagrangian's NOTEARS terms reuses the value's exponential (no Fréchet derivative
/// is left) and the Hessian-vector product needs one first-order Fréchet derivative instead of
/// a second-order one; the values do not change.
#[test]
fn derivatives_of_a_trace_of_expm_reuse_the_exponential() {
    let mut p = lowered(
        "dims d
param rho = 3
param alpha = 0.5
var W : real[d, d] = 0
minimize 0.5 * rho * notears(W) ^ 2 + alpha * notears(W)
",
    );
    let vars: Vec<_> = p.variables().collect();
    let f = p.objective.as_ref().unwrap().node;
    let h = hvp(&mut p, f, &vars).unwrap();
    let mut roots = vec![f];
    roots.extend(&h.gradient);
    let gradient_roots = roots.clone();
    roots.extend(&h.hvp);
    let b = bindings(&p, 1, 5, &[("rho", 3.0), ("alpha", 0.5)]);
    assert_same_values(&p, &roots, &b);
    let model = CostModel::new(vec![20]);
    let gradient = simplify(&p, &gradient_roots, &model).unwrap().program;
    assert_eq!(count(&gradient, &Op::Expm), 1);
    assert_eq!(count(&gradient, &Op::ExpmFrechet), 0);
    let with_hvp = simplify(&p, &roots, &model).unwrap().program;
    assert_eq!(count(&with_hvp, &Op::Expm), 1);
    assert_eq!(count(&with_hvp, &Op::ExpmFrechet), 1);
    assert_eq!(count(&with_hvp, &Op::ExpmFrechet2), 0);
}
