//! `optc bench`: how fast a model's derivatives evaluate. The benchmarked function is the
//! objective (as minimized) plus every scalar constraint function, i.e. the merit that the
//! penalty and path methods differentiate at unit weights; its value with its gradient, and its
//! Hessian-vector product, are derived, simplified and staged as a solve would, then timed on a
//! backend after warm-up, as the median over repeated batches, at a seeded random point near the
//! initial one. The machine's single-thread matrix-product rate is measured the same way, so
//! achieved GFLOP/s can be compared with it.

use crate::interp::EvalError;
use crate::model::Model;
use crate::simulate::Rng;
use ndarray::{ArrayD, IxDyn};
use optc_compiler::autodiff::{self, AdError};
use optc_compiler::ir::{BinaryOp, ConstraintKind, NodeId, Op, Program};
use optc_compiler::simplify::SimplifyError;
use std::time::{Duration, Instant};

/// What is timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    /// The merit's value followed by its gradient (one root per variable).
    ValueGrad,
    /// `∇²f · v`, one root per variable, for a seeded random direction `v`.
    Hvp,
}

#[derive(Debug)]
pub enum BenchError {
    NoObjective,
    Derivative(AdError),
    Simplify(SimplifyError),
    Eval(EvalError),
}

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BenchError::NoObjective => f.write_str("the model has no objective to benchmark"),
            BenchError::Derivative(e) => write!(f, "{e}"),
            BenchError::Simplify(e) => write!(f, "{e}"),
            BenchError::Eval(e) => write!(f, "{e}"),
        }
    }
}

impl From<EvalError> for BenchError {
    fn from(e: EvalError) -> Self {
        BenchError::Eval(e)
    }
}

/// Adds the benchmarked merit to `program`: the objective (as minimized) plus every scalar
/// equality and inequality constraint function; `None` without an objective.
pub fn merit(program: &mut Program) -> Option<NodeId> {
    let mut merit = program.minimized_objective()?;
    let g = &mut program.graph;
    for c in &program.constraints {
        let scalar = g.shape(c.node).is_empty() && c.ranges.is_empty();
        if scalar && matches!(c.kind, ConstraintKind::Eq | ConstraintKind::Le) {
            merit = g
                .add(Op::Binary(BinaryOp::Add), vec![merit, c.node])
                .expect("adding scalars");
        }
    }
    Some(merit)
}

/// Adds `function` of the merit to the model's program, simplifies it (unless `simplify` is
/// false) and returns its roots; for [`Function::Hvp`] binds a seeded random direction.
pub fn prepare(
    model: &mut Model,
    function: Function,
    simplify: bool,
) -> Result<Vec<NodeId>, BenchError> {
    let program = &mut model.program;
    let merit = merit(program).ok_or(BenchError::NoObjective)?;
    let vars: Vec<_> = model.vars.iter().map(|v| v.input).collect();
    let roots: Vec<NodeId> = match function {
        Function::ValueGrad => {
            let grads =
                autodiff::gradient(program, merit, &vars).map_err(BenchError::Derivative)?;
            std::iter::once(merit).chain(grads).collect()
        }
        Function::Hvp => {
            let h = autodiff::hvp(program, merit, &vars).map_err(BenchError::Derivative)?;
            let mut rng = Rng::new(7);
            for (slot, dir) in model.vars.iter().zip(&h.directions) {
                let v: Vec<f64> = (0..slot.len()).map(|_| rng.normal()).collect();
                let index = dir.0 as usize;
                if model.bindings.inputs.len() <= index {
                    model.bindings.inputs.resize(index + 1, None);
                }
                model.bindings.inputs[index] =
                    Some(ArrayD::from_shape_vec(IxDyn(&slot.shape), v).expect("slot shape"));
            }
            h.hvp
        }
    };
    let mut rng = Rng::new(5);
    let x: Vec<f64> = model.x().iter().map(|v| v + 0.01 * rng.normal()).collect();
    model.set_x(&x);
    if simplify {
        return model.simplify(&roots).map_err(BenchError::Simplify);
    }
    Ok(roots)
}

/// FLOPs of one evaluation of `roots` after setup, by the compiler's cost model.
pub fn flops_per_eval(model: &Model, roots: &[NodeId]) -> f64 {
    optc_compiler::simplify::flops(&model.program, roots, &model.bindings.dims).1
}

/// GFLOP/s of a `size`×`size` f64 matrix product on one thread (the kernel compiled code calls),
/// median of batches filling about `budget`.
pub fn matmul_gflops(size: usize, budget: Duration) -> f64 {
    let a = faer::Mat::<f64>::from_fn(size, size, |i, j| ((i * 7 + j * 3) % 11) as f64 - 5.0);
    let b = a.transpose().to_owned();
    let mut c = faer::Mat::<f64>::zeros(size, size);
    let mut product = || {
        faer::linalg::matmul::matmul(
            c.as_mut(),
            faer::Accum::Replace,
            a.as_ref(),
            b.as_ref(),
            1.0,
            faer::Par::Seq,
        )
    };
    let seconds = median_seconds(&mut product, budget);
    2.0 * (size as f64).powi(3) / seconds / 1e9
}

/// Median seconds per call of `f` after one warm-up call.
fn median_seconds(f: &mut dyn FnMut(), budget: Duration) -> f64 {
    f();
    let start = Instant::now();
    f();
    let one = start.elapsed().max(Duration::from_nanos(100)).as_secs_f64();
    let total = budget.as_secs_f64() / one;
    let batches = (total as usize).clamp(3, 15);
    let batch = ((total / batches as f64) as usize).max(1);
    let mut per_call = Vec::with_capacity(batches);
    for _ in 0..batches {
        let start = Instant::now();
        for _ in 0..batch {
            f();
        }
        per_call.push(start.elapsed().as_secs_f64() / batch as f64);
    }
    per_call.sort_by(f64::total_cmp);
    per_call[per_call.len() / 2]
}

/// Evaluations per second of `roots`: one warm-up call (code generation, setup values), then
/// 3 to 15 equal batches filling about `budget`; the median batch gives the rate.
pub fn evals_per_second(
    model: &mut Model,
    roots: &[NodeId],
    budget: Duration,
) -> Result<f64, EvalError> {
    model.eval(roots)?;
    let mut failure = None;
    let seconds = median_seconds(
        &mut || {
            if let Err(e) = model.eval(roots) {
                failure.get_or_insert(e);
            }
        },
        budget,
    );
    match failure {
        Some(e) => Err(e),
        None => Ok(1.0 / seconds),
    }
}
