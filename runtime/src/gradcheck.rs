//! `--check-grad`: the compiled gradient and Hessian-vector product of the objective against
//! central finite differences, at the initial point and at seeded random points near it. A
//! coordinate at a kink (`maximum(x, 0)` at 0, `max` or `sort` of tied entries), where the
//! one-sided differences differ, has no derivative to compare with and is skipped there (a start
//! at 0 is often one; the random points near it rarely are). A `nuclear_norm` prox term has no
//! derivative rule: the check leaves it out and counts it ([`GradCheck::left_out`]).

use crate::interp::EvalError;
use crate::model::Model;
use crate::simulate::Rng;
use ndarray::{ArrayD, IxDyn};
use optc_compiler::autodiff::{self, AdError};
use optc_compiler::ir::NodeId;

/// The worst errors found.
#[derive(Clone, Debug, PartialEq)]
pub struct GradCheck {
    /// max over points of ‖g − g_fd‖∞ / max(‖g_fd‖∞, 1).
    pub max_rel_error: f64,
    /// The same for H·v against differences of the gradient along v.
    pub hvp_max_rel_error: f64,
    pub points: usize,
    /// Coordinates checked per point (all, or a seeded sample for large problems).
    pub coordinates: usize,
    /// Checks (point, coordinate) skipped at a kink.
    pub kinks: usize,
    /// Checks skipped because a probe point could not be evaluated (a singular matrix there):
    /// a coordinate's differences, or a random point's whole check.
    pub undefined: usize,
    /// Prox terms of the objective left out (`nuclear_norm`).
    pub left_out: usize,
}

#[derive(Debug)]
pub enum GradCheckError {
    Derivative(AdError),
    Eval(EvalError),
}

impl From<EvalError> for GradCheckError {
    fn from(e: EvalError) -> Self {
        GradCheckError::Eval(e)
    }
}

/// At most this many coordinates are differenced per point.
const MAX_COORDINATES: usize = 200;

/// One-sided differences further apart than this (relative to the largest difference, at least
/// 1) mark a kink: a smooth function's differ by its curvature times the step (1e-6).
const KINK: f64 = 1e-3;

/// Checks the objective's gradient at the model's current point and at three seeded points near
/// it, and its HVP at the three random points (the model is left at its initial point).
pub fn check_gradient(model: &mut Model, seed: u64) -> Result<GradCheck, GradCheckError> {
    let Some((f, left_out)) = crate::plan::differentiable_objective(&mut model.program) else {
        return Ok(GradCheck {
            max_rel_error: 0.0,
            hvp_max_rel_error: 0.0,
            points: 0,
            coordinates: 0,
            kinks: 0,
            undefined: 0,
            left_out: 0,
        });
    };
    let vars: Vec<_> = model.vars.iter().map(|v| v.input).collect();
    let h = autodiff::hvp(&mut model.program, f, &vars).map_err(GradCheckError::Derivative)?;
    let x0 = model.x();
    let n = x0.len();
    let mut rng = Rng::new(seed);
    let coordinates: Vec<usize> = if n <= MAX_COORDINATES {
        (0..n).collect()
    } else {
        rng.permutation(n)
            .into_iter()
            .take(MAX_COORDINATES)
            .collect()
    };
    // Near the start relative to its entries' size (at least 0.1): a start at 0.03 in the
    // domain of a log stays there mostly. (Points where the objective is undefined give NaN
    // differences, which count for nothing.)
    let mut points = vec![x0.clone()];
    for _ in 0..3 {
        points.push(
            x0.iter()
                .map(|v| v + 0.1 * v.abs().max(0.1) * rng.normal())
                .collect(),
        );
    }
    let (mut worst, mut worst_hvp, mut kinks, mut undefined) = (0.0f64, 0.0f64, 0, 0);
    for (k, x) in points.iter().enumerate() {
        let v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        set_directions(model, &h.directions, &v);
        // An error at the model's own point is the model's; a random point where the objective
        // cannot be evaluated (a singular matrix, outside a domain) is only skipped.
        let at_point = gradient_and_hvp(model, x, &h.gradient, &h.hvp)
            .and_then(|gh| Ok((gh, value(model, x, f)?)));
        let ((g, hv), f0) = match at_point {
            Ok(values) => values,
            Err(e) if k == 0 => return Err(e.into()),
            Err(_) => {
                undefined += 1;
                continue;
            }
        };
        // Per coordinate: |g − central difference| and the one-sided differences' spread.
        let (mut checks, mut scale) = (Vec::with_capacity(coordinates.len()), 1.0f64);
        for &i in &coordinates {
            let step = 1e-6 * x[i].abs().max(1.0);
            let mut xp = x.clone();
            xp[i] += step;
            let fp = value(model, &xp, f);
            xp[i] = x[i] - step;
            let (Ok(fp), Ok(fm)) = (fp, value(model, &xp, f)) else {
                undefined += 1;
                continue;
            };
            let (forward, backward) = ((fp - f0) / step, (f0 - fm) / step);
            let fd = 0.5 * (forward + backward);
            scale = scale.max(fd.abs());
            checks.push(((g[i] - fd).abs(), (forward - backward).abs()));
        }
        let mut diff = 0.0f64;
        for (error, spread) in checks {
            if spread > KINK * scale {
                kinks += 1;
            } else {
                diff = diff.max(error);
            }
        }
        worst = worst.max(diff / scale);
        if k == 0 {
            // The initial point is often a kink of nonsmooth terms (|x| at 0), where the
            // gradient jumps; second derivatives are checked at the random points only.
            continue;
        }
        // H·v against (∇f(x + εv) − ∇f(x − εv)) / 2ε, ε relative to the point's smallest
        // entry (in [0.01, 1]): the truncation error, relative (ε/x)² for −log x, stays small
        // where entries are small.
        let smallest = x.iter().fold(1.0f64, |m, v| m.min(v.abs().max(0.01)));
        let eps = 1e-5 * smallest;
        let plus: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + eps * b).collect();
        let minus: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a - eps * b).collect();
        let (Ok((gp, _)), Ok((gm, _))) = (
            gradient_and_hvp(model, &plus, &h.gradient, &h.hvp),
            gradient_and_hvp(model, &minus, &h.gradient, &h.hvp),
        ) else {
            undefined += 1;
            continue;
        };
        let mut diff = 0.0f64;
        let mut scale = 1.0f64;
        for i in 0..n {
            let fd = (gp[i] - gm[i]) / (2.0 * eps);
            diff = diff.max((hv[i] - fd).abs());
            scale = scale.max(fd.abs());
        }
        worst_hvp = worst_hvp.max(diff / scale);
    }
    model.set_x(&x0);
    Ok(GradCheck {
        max_rel_error: worst,
        hvp_max_rel_error: worst_hvp,
        points: points.len(),
        coordinates: coordinates.len(),
        kinks,
        undefined,
        left_out,
    })
}

fn set_directions(model: &mut Model, directions: &[optc_compiler::ir::InputId], v: &[f64]) {
    for (slot, &dir) in model.vars.clone().iter().zip(directions) {
        let part = v[slot.offset..slot.offset + slot.len()].to_vec();
        let a = ArrayD::from_shape_vec(IxDyn(&slot.shape), part).expect("slot shape");
        let index = dir.0 as usize;
        if model.bindings.inputs.len() <= index {
            model.bindings.inputs.resize(index + 1, None);
        }
        model.bindings.inputs[index] = Some(a);
    }
}

fn value(model: &mut Model, x: &[f64], f: NodeId) -> Result<f64, EvalError> {
    model.set_x(x);
    model.eval_scalar(f)
}

/// Flat gradient and H·v at `x`.
fn gradient_and_hvp(
    model: &mut Model,
    x: &[f64],
    grads: &[NodeId],
    hvps: &[NodeId],
) -> Result<(Vec<f64>, Vec<f64>), EvalError> {
    model.set_x(x);
    let roots: Vec<NodeId> = grads.iter().chain(hvps).copied().collect();
    let values = model.eval(&roots)?;
    let flat = |part: &[ArrayD<f64>]| part.iter().flat_map(|a| a.iter().copied()).collect();
    Ok((flat(&values[..grads.len()]), flat(&values[grads.len()..])))
}
