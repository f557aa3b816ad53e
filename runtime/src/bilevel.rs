//! `solve with maid`: a model with one `argmin` as a [`BilevelProblem`] over its IR.
//!
//! The outer variables θ are the model's variables. The lower level h(z, θ) is the `argmin`'s
//! objective over its variable z. The upper level G(x, θ) is the model's objective with the
//! `argmin` node replaced by a new input x, so that ∇_x G and ∇_θ G are ordinary gradients. The
//! functions MAID evaluates are built once, as IR, and simplified together: G with ∇_x G and
//! ∇_θ G; h with ∇_z h; ∇²_zz h · v (a direction input v); ∇_θ⟨∇_z h, q⟩ (a direction input q).
//! The model evaluates them (native code where the backend compiles them), with z, x, v and q
//! bound as inputs.

use crate::model::Model;
use crate::plan::{Details, Outcome, Plan};
use crate::solvers::{maid, BilevelProblem, Callback, MaidError, MaidOptions, SetOption};
use optc_compiler::autodiff;
use optc_compiler::diag::Diagnostic;
use optc_compiler::ir::{ElemType, InputId, InputKind, NodeId, Op, SubproblemId};

/// The roots of MAID's functions and the inputs they read.
struct Functions {
    /// G, ∇_x G, then ∇_θ G per variable.
    upper: Vec<NodeId>,
    /// h, ∇_z h.
    lower: Vec<NodeId>,
    /// ∇²_zz h · v.
    hvp: Vec<NodeId>,
    /// ∇_θ⟨∇_z h, q⟩ per variable.
    mixed: Vec<NodeId>,
    z: InputId,
    x: InputId,
    v: InputId,
    q: InputId,
}

/// The model as a bilevel problem: its evaluator and MAID's functions.
struct ModelBilevel<'a> {
    eval: Evaluator<'a>,
    f: Functions,
}

/// Evaluates roots of the model at θ with inputs of the shape of z bound; errors met while
/// evaluating are kept (the first one; the values become NaN).
struct Evaluator<'a> {
    model: &'a mut Model,
    shape: Vec<usize>,
    error: Option<Diagnostic>,
}

impl Evaluator<'_> {
    /// Evaluates `roots` at θ with the inputs `bound` set; writes the values of the roots after
    /// the first `skip` into `outs`, one after the other as one flat sequence, and returns the
    /// first root's first entry (the value of a value-and-gradient list).
    fn run(
        &mut self,
        theta: &[f64],
        bound: &[(InputId, &[f64])],
        roots: &[NodeId],
        skip: usize,
        outs: &mut [&mut [f64]],
    ) -> f64 {
        self.model.set_x(theta);
        for (input, values) in bound {
            self.model.set_input(*input, &self.shape, values);
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
        let bound = [(self.f.z, x)];
        self.eval.run(theta, &bound, &self.f.lower, 1, &mut [grad])
    }

    fn lower_hvp(&mut self, theta: &[f64], x: &[f64], v: &[f64], out: &mut [f64]) {
        let bound = [(self.f.z, x), (self.f.v, v)];
        self.eval.run(theta, &bound, &self.f.hvp, 0, &mut [out]);
    }

    fn mixed(&mut self, theta: &[f64], x: &[f64], q: &[f64], out: &mut [f64]) {
        // One root per variable: their values one after the other are θ's flat layout.
        let bound = [(self.f.z, x), (self.f.q, q)];
        self.eval.run(theta, &bound, &self.f.mixed, 0, &mut [out]);
    }

    fn upper(
        &mut self,
        theta: &[f64],
        x: &[f64],
        grad_x: &mut [f64],
        grad_theta: &mut [f64],
    ) -> f64 {
        let bound = [(self.f.x, x)];
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
    let program = &mut model.program;
    if program.subproblems.len() != 1 {
        return Err(plan_error(format!(
            "`maid` solves models with one `argmin`; this one has {}",
            program.subproblems.len()
        )));
    }
    if !program.constraints.is_empty() {
        return Err(
            plan_error("`maid` handles no constraints on the outer variables").with_hint(
                "remove the `subject to` block, or state the constraint in the lower level",
            ),
        );
    }
    let sub = program.subproblems[0].clone();
    let argmin = (0..program.graph.len() as u32)
        .map(NodeId)
        .find(|&n| program.graph.node(n).op == Op::Argmin(SubproblemId(0)))
        .ok_or_else(|| plan_error("the objective does not use its `argmin`"))?;
    let objective = program
        .minimized_objective()
        .ok_or_else(|| Diagnostic::error("E0360", "the model has no objective"))?;
    let shape = program.input(sub.var).shape.clone();
    let (x, x_node) = program.add_input("argmin.x", InputKind::InnerVar, ElemType::Real, shape);
    let upper_value = program
        .graph
        .substitute(objective, argmin, x_node)
        .map_err(|e| plan_error(e.to_string()))?;
    let cannot = |what: &str, e: autodiff::AdError| {
        Diagnostic::error("E0363", format!("cannot differentiate the {what}: {e}"))
    };
    let wrt: Vec<InputId> = std::iter::once(x).chain(thetas.iter().copied()).collect();
    let upper_grads =
        autodiff::gradient(program, upper_value, &wrt).map_err(|e| cannot("upper level", e))?;
    let hvp =
        autodiff::hvp(program, sub.objective, &[sub.var]).map_err(|e| cannot("lower level", e))?;
    let mixed = autodiff::mixed_vjp(program, sub.objective, &[sub.var], &thetas)
        .map_err(|e| cannot("lower level in the outer variables", e))?;
    model.bind_added_params();
    let upper: Vec<NodeId> = std::iter::once(upper_value).chain(upper_grads).collect();
    let lower = vec![sub.objective, hvp.gradient[0]];
    let mut roots = upper.clone();
    roots.extend(&lower);
    roots.push(hvp.hvp[0]);
    roots.extend(&mixed.mixed);
    let simplified = crate::plan::finalize(model, plan, roots)?;
    let (upper, rest) = simplified.split_at(upper.len());
    Ok(Functions {
        upper: upper.to_vec(),
        lower: rest[..2].to_vec(),
        hvp: rest[2..3].to_vec(),
        mixed: rest[3..].to_vec(),
        z: sub.var,
        x,
        v: hvp.directions[0],
        q: mixed.directions[0],
    })
}

/// Solves the model (one `argmin`, its outer variables free or within their declared bounds) by
/// MAID from its variables' initial values; leaves the model at the returned θ.
pub fn solve_maid(
    model: &mut Model,
    plan: &Plan,
    callback: Callback,
) -> Result<Outcome, Diagnostic> {
    let opts = MaidOptions::from_options(&plan.options).map_err(crate::plan::option_error)?;
    let f = functions(model, plan)?;
    let shape: Vec<usize> = model
        .program
        .input(f.z)
        .shape
        .iter()
        .map(|d| d.eval(&model.bindings.dims).max(0) as usize)
        .collect();
    let theta0 = model.x();
    let bounds = crate::plan::bounds(model)?;
    let inner = shape.iter().product();
    let mut problem = ModelBilevel {
        eval: Evaluator {
            model,
            shape,
            error: None,
        },
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
    let solved = result.map_err(|MaidError::NotStronglyConvex(lambda)| {
        Diagnostic::error(
            "E0364",
            format!("the lower level is not strongly convex at the start: the smallest eigenvalue of its Hessian is estimated at {lambda:.3e}"),
        )
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
