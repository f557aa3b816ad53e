//! `solve with maid`: a model with `argmin`s as a [`BilevelProblem`] over its IR.
//!
//! The outer variables θ are the model's variables. The lower level is over the `argmin`s'
//! variables z = (z₁, …, z_K) together: h(z, θ) = Σ_k h_k(z_k, θ), each h_k an `argmin`'s
//! objective, which reads only its own z_k (an `argmin` inside another's objective is refused),
//! so that z minimizes h exactly when each z_k minimizes its h_k. The upper level G(x, θ) is the
//! model's objective with each `argmin` node replaced by a new input x_k, so that ∇_x G and
//! ∇_θ G are ordinary gradients. The functions MAID evaluates are built once, as IR, and
//! simplified together: G with ∇_x G and ∇_θ G; h with ∇_z h; ∇²_zz h · v (direction inputs
//! v_k); ∇_θ⟨∇_z h, q⟩ (direction inputs q_k). The model evaluates them (native code where the
//! backend compiles them), with the z_k, x_k, v_k and q_k bound as inputs: MAID's inner vectors
//! are the concatenations, in the `argmin`s' order.

use crate::model::Model;
use crate::plan::{Details, Outcome, Plan};
use crate::solvers::{maid, BilevelProblem, Callback, MaidError, MaidOptions, SetOption};
use optc_compiler::autodiff;
use optc_compiler::diag::Diagnostic;
use optc_compiler::ir::{
    BinaryOp, ElemType, InputId, InputKind, NodeId, Op, Program, SubproblemId,
};

/// The inputs of one `argmin` in MAID's functions, and its size at the model's dims.
struct Inner {
    /// Its variable z_k (in h).
    z: InputId,
    /// Its value x_k in G.
    x: InputId,
    /// The direction v_k of ∇²_zz h · v.
    v: InputId,
    /// The direction q_k of ∇_θ⟨∇_z h, q⟩.
    q: InputId,
    shape: Vec<usize>,
}

/// The roots of MAID's functions and the inputs they read.
struct Functions {
    /// G, ∇_x G per `argmin`, then ∇_θ G per variable.
    upper: Vec<NodeId>,
    /// h, then ∇_z h per `argmin`.
    lower: Vec<NodeId>,
    /// ∇²_zz h · v per `argmin`.
    hvp: Vec<NodeId>,
    /// ∇_θ⟨∇_z h, q⟩ per variable.
    mixed: Vec<NodeId>,
    inners: Vec<Inner>,
}

impl Functions {
    /// The inputs `pick` of each `argmin` bound to its part of the concatenation `flat`.
    fn bind<'a>(&'a self, pick: fn(&Inner) -> InputId, flat: &'a [f64]) -> Vec<Bound<'a>> {
        let mut offset = 0;
        self.inners
            .iter()
            .map(|inner| {
                let len: usize = inner.shape.iter().product();
                offset += len;
                (
                    pick(inner),
                    inner.shape.as_slice(),
                    &flat[offset - len..offset],
                )
            })
            .collect()
    }
}

/// An input, its shape and its values.
type Bound<'a> = (InputId, &'a [usize], &'a [f64]);

/// The model as a bilevel problem: its evaluator and MAID's functions.
struct ModelBilevel<'a> {
    eval: Evaluator<'a>,
    f: Functions,
}

/// Evaluates roots of the model at θ with inputs bound; errors met while evaluating are kept
/// (the first one; the values become NaN).
struct Evaluator<'a> {
    model: &'a mut Model,
    error: Option<Diagnostic>,
}

impl Evaluator<'_> {
    /// Evaluates `roots` at θ with the inputs `bound` set; writes the values of the roots after
    /// the first `skip` into `outs`, one after the other as one flat sequence, and returns the
    /// first root's first entry (the value of a value-and-gradient list).
    fn run(
        &mut self,
        theta: &[f64],
        bound: &[Bound],
        roots: &[NodeId],
        skip: usize,
        outs: &mut [&mut [f64]],
    ) -> f64 {
        self.model.set_x(theta);
        for (input, shape, values) in bound {
            self.model.set_input(*input, shape, values);
        }
        let targets = outs.iter_mut().flat_map(|o| o.iter_mut());
        match self.model.eval_ref(roots) {
            Ok(values) => {
                let computed = values[skip..].iter().flat_map(|a| a.iter());
                targets.zip(computed).for_each(|(t, v)| *t = *v);
                values[0].iter().next().copied().unwrap_or(f64::NAN)
            }
            Err(e) => {
                self.error.get_or_insert(e.into());
                targets.for_each(|t| *t = f64::NAN);
                f64::NAN
            }
        }
    }
}

impl BilevelProblem for ModelBilevel<'_> {
    fn lower(&mut self, theta: &[f64], x: &[f64], grad: &mut [f64]) -> f64 {
        let bound = self.f.bind(|i| i.z, x);
        self.eval.run(theta, &bound, &self.f.lower, 1, &mut [grad])
    }

    fn lower_hvp(&mut self, theta: &[f64], x: &[f64], v: &[f64], out: &mut [f64]) {
        let mut bound = self.f.bind(|i| i.z, x);
        bound.extend(self.f.bind(|i| i.v, v));
        self.eval.run(theta, &bound, &self.f.hvp, 0, &mut [out]);
    }

    fn mixed(&mut self, theta: &[f64], x: &[f64], q: &[f64], out: &mut [f64]) {
        // One root per variable: their values one after the other are θ's flat layout.
        let mut bound = self.f.bind(|i| i.z, x);
        bound.extend(self.f.bind(|i| i.q, q));
        self.eval.run(theta, &bound, &self.f.mixed, 0, &mut [out]);
    }

    fn upper(
        &mut self,
        theta: &[f64],
        x: &[f64],
        grad_x: &mut [f64],
        grad_theta: &mut [f64],
    ) -> f64 {
        let bound = self.f.bind(|i| i.x, x);
        self.eval
            .run(theta, &bound, &self.f.upper, 1, &mut [grad_x, grad_theta])
    }
}

fn plan_error(message: impl Into<String>) -> Diagnostic {
    Diagnostic::error("E0360", message)
}

/// Builds MAID's functions in the model's program (see the module docs).
fn functions(model: &mut Model, plan: &Plan) -> Result<Functions, Diagnostic> {
    // θ in the order of the flat vector: the gradients in θ, one root per variable, are its layout.
    let thetas: Vec<InputId> = model.vars.iter().map(|v| v.input).collect();
    let dims = model.bindings.dims.clone();
    let program = &mut model.program;
    let subs = program.subproblems.clone();
    let objective = program
        .minimized_objective()
        .ok_or_else(|| Diagnostic::error("E0360", "the model has no objective"))?;
    // G: each `argmin` node replaced by its input x_k.
    let mut upper_value = objective;
    let mut xs = Vec::new();
    for (k, sub) in subs.iter().enumerate() {
        let argmin = (0..program.graph.len() as u32)
            .map(NodeId)
            .find(|&n| program.graph.node(n).op == Op::Argmin(SubproblemId(k as u32)))
            .ok_or_else(|| {
                plan_error(format!(
                    "the objective does not use `argmin` number {}",
                    k + 1
                ))
            })?;
        let shape = program.input(sub.var).shape.clone();
        let name = if subs.len() == 1 {
            "argmin.x".to_string()
        } else {
            format!("argmin{}.x", k + 1)
        };
        let (x, x_node) = program.add_input(&name, InputKind::InnerVar, ElemType::Real, shape);
        upper_value = program
            .graph
            .substitute(upper_value, argmin, x_node)
            .map_err(|e| plan_error(e.to_string()))?;
        xs.push(x);
    }
    let mut lower_value = subs[0].objective;
    for sub in &subs[1..] {
        lower_value = program
            .graph
            .add(Op::Binary(BinaryOp::Add), vec![lower_value, sub.objective])
            .map_err(|e| plan_error(e.to_string()))?;
    }
    let zs: Vec<InputId> = subs.iter().map(|s| s.var).collect();
    let cannot = |program: &Program, what: &str, e: autodiff::AdError| Diagnostic {
        message: format!("cannot differentiate the {what}: {e}"),
        ..e.diagnostic(program)
    };
    let wrt: Vec<InputId> = xs.iter().chain(&thetas).copied().collect();
    let upper_grads = autodiff::gradient(program, upper_value, &wrt)
        .map_err(|e| cannot(program, "upper level", e))?;
    let hvp =
        autodiff::hvp(program, lower_value, &zs).map_err(|e| cannot(program, "lower level", e))?;
    let mixed = autodiff::mixed_vjp(program, lower_value, &zs, &thetas)
        .map_err(|e| cannot(program, "lower level in the outer variables", e))?;
    let inners = (0..subs.len())
        .map(|k| Inner {
            z: zs[k],
            x: xs[k],
            v: hvp.directions[k],
            q: mixed.directions[k],
            shape: program
                .input(zs[k])
                .shape
                .iter()
                .map(|d| d.eval(&dims).max(0) as usize)
                .collect(),
        })
        .collect();
    model.bind_added_params();
    let upper: Vec<NodeId> = std::iter::once(upper_value).chain(upper_grads).collect();
    let lower: Vec<NodeId> = std::iter::once(lower_value).chain(hvp.gradient).collect();
    let mut roots = upper.clone();
    roots.extend(&lower);
    roots.extend(&hvp.hvp);
    roots.extend(&mixed.mixed);
    let simplified = crate::plan::finalize(model, plan, roots)?;
    let (upper, rest) = simplified.split_at(upper.len());
    let (lower, rest) = rest.split_at(lower.len());
    let (hvp, mixed) = rest.split_at(zs.len());
    Ok(Functions {
        upper: upper.to_vec(),
        lower: lower.to_vec(),
        hvp: hvp.to_vec(),
        mixed: mixed.to_vec(),
        inners,
    })
}

/// Solves the model (its `argmin`s, its outer variables free or within their declared bounds) by
/// MAID from its variables' initial values; leaves the model at the returned θ.
pub fn solve_maid(
    model: &mut Model,
    plan: &Plan,
    callback: Callback,
) -> Result<Outcome, Diagnostic> {
    let opts = MaidOptions::from_options(&plan.options).map_err(|e| plan.option_error(e))?;
    let f = functions(model, plan)?;
    let theta0 = model.x();
    let bounds = crate::plan::bounds(model)?;
    let inner = f
        .inners
        .iter()
        .map(|i| i.shape.iter().product::<usize>())
        .sum();
    let mut problem = ModelBilevel {
        eval: Evaluator { model, error: None },
        f,
    };
    let result = maid(
        &mut problem,
        &theta0,
        &vec![0.0; inner],
        &bounds,
        &opts,
        callback,
    );
    let error = problem.eval.error.take();
    let lower_level = model
        .program
        .subproblems
        .first()
        .and_then(|s| model.program.node_span(s.objective));
    let solved = result.map_err(|MaidError::NotStronglyConvex(lambda)| {
        let estimate = match lambda.is_nan() {
            true => "could not be estimated: its Hessian-vector products are not finite there".to_string(),
            false => format!("is estimated at {lambda:.3e}"),
        };
        Diagnostic::error(
            "E0364",
            format!("the lower level is not strongly convex at the start: the smallest eigenvalue of its Hessian {estimate}"),
        )
        .with_primary_at(lower_level, "not strongly convex in the `argmin`'s variable")
        .with_hint("`argmin` needs an objective strongly convex in its variable, e.g. with a term `0.5 * sumsq(z - y)`; or give its constant with `maid(mu = ...)`")
    })?;
    model.set_x(&solved.report.x);
    Ok(Outcome {
        report: solved.report,
        error,
        details: Details::Maid {
            mu: solved.mu,
            trail: solved.trail,
        },
    })
}
