//! Solver plans: which solver a model gets (from `solve with` or from the structure analysis),
//! why, and the merit functions the solvers call, built as IR and differentiated once.

use crate::interp::EvalError;
use crate::model::{Model, VarSlot};
use crate::prox;
use crate::solvers::{
    self, adam_in, adam_within, augmented_lagrangian, central_path, lbfgs, lbfgs_in,
    projected_lbfgs, proximal_gradient, proximal_gradient_in, AdamConstants, AdamIterates,
    AdamOptions, AugLagOptions, Bounds, Callback, FnProblem, FnRegularizer, HostAdam, InnerSolver,
    LbfgsOptions, MeritValue, PathObjective, PathOptions, Problem, ProxGradOptions, Regularizer,
    Relation, Report, SetOption, Slot,
};
use optc_compiler::autodiff;
use optc_compiler::codes::CodeInfo;
use optc_compiler::diag::{Diagnostic, Span};
use optc_compiler::ir::{
    BinaryOp, ConstraintKind, Dim, ElemType, ForRange, Graph, InputId, InputKind, NodeId, Op,
    OptionValue, Program, Sense, SetKind, SolveSpec, UnaryOp,
};
use optc_compiler::structure::{self, BallNorm, Projection, ProxKind, ProxTerm, Structure};
use optc_compiler::transport::{self, TransportForm};

mod instances;
mod swaps;

use instances::constraint_instances;

/// Catalogue entries of planning errors (E0360–E0369).
pub const PLAN_CODES: &[CodeInfo] = &[
    CodeInfo {
        code: "E0360",
        title: "solver cannot handle this problem",
        explanation: "The method named in `solve with` (or chosen automatically) cannot handle a constraint or term of the model, e.g. `lbfgs` with an equality constraint. The message names the constraint; the hint names a method that can.",
    },
    CodeInfo {
        code: "E0361",
        title: "solver not available in this version",
        explanation: "The model asks for a method that this version of optc does not implement. The model is still checked and can be evaluated with `optc eval`.",
    },
    CodeInfo {
        code: "E0362",
        title: "bad solver option",
        explanation: "A `solve with` option is unknown to the chosen method, or its value has the wrong kind (e.g. a list where a number is expected). The message lists the accepted options.",
    },
    CodeInfo {
        code: "E0363",
        title: "cannot differentiate the objective",
        explanation: "The objective or a constraint uses an operation without a derivative where the solver needs a gradient: `nuclear_norm` other than as a weighted term of the objective (it is handled by its prox there), or third derivatives of `expm`/`matpow`. The diagnostic points at the expression (at the call in the model for one inside a `fn`). An objective that reads an `argmin` has no symbolic gradient either: `optc run` solves it with `maid`, while `bench`, `explain --cost` and `eval --check-grad` refuse it with this code.",
    },
    CodeInfo {
        code: "E0364",
        title: "lower level not strongly convex",
        explanation: "`maid` needs an `argmin` objective that is strongly convex in its variable (a unique, differentiable solution). It estimates the convexity constant from the smallest eigenvalue of the lower level's Hessian at the first solution; a value that is not positive stops the solve. Add a strongly convex term (e.g. `0.5 * sumsq(z - y)`), or give the constant with `maid(mu = ...)`.",
    },
    CodeInfo {
        code: "E0365",
        title: "kink in what a gradient method differentiates (warning)",
        explanation: "The solver chosen (`lbfgs`, projected L-BFGS, `fista`, `auglag`, or `path` with L-BFGS stages) differentiates the objective (for `fista`, its terms without a prox; for `auglag` and `path`, also the constraints) and expects a gradient that changes continuously, but an expression there is nonsmooth in the variables: `abs`, `maximum`/`minimum`, `max`/`min`, `sort`, `topk`, `sign`, or `norm1` and group norms that are not terms the solver handles by their prox. The solver takes a subgradient at the kink; its line search may stall near one and stop short of the minimum, and the optimality it reports (a gradient norm) need not reach 0 there. The run goes on. Remedies: write a penalty as a separate weighted term of a variable (`lambda * norm1(w)`), which `fista` handles exactly by its prox; smooth the kink (`softplus(t * u) / t` for `maximum(u, 0)`, `sqrt(u^2 + eps)` for `abs(u)`); square it where the model allows (`sumsq(maximum(u, 0))` is continuously differentiable and not reported); or use `solve with adam(...)`, a subgradient method. The square root of a whole `norm2` is not reported: it is smooth away from 0 (the norms of lines, group norms, are). For `maid` the warning is about an `argmin`'s objective, which MAID differentiates twice: there the kink makes the lower-level solve and the hypergradient fail; smooth it (`tv_smooth` for `tv`).",
    },
    CodeInfo {
        code: "E0366",
        title: "constraints look infeasible (warning)",
        explanation: "`auglag` stopped with status `infeasible`: while its penalty rho grew a millionfold (to `rho_max`), the constraint violation stayed above half of what it was. On a feasible problem the violation falls as rho grows, so the constraints most likely contradict each other (`x[0] + x[1] == 1` and `x[0] + x[1] == 2`; bounds of a variable that an equality cannot meet). The warning points at the constraint with the largest violation at the end and labels the other violated ones; a constraint that conflicts with them may itself show no violation. The run exits with status 2. Check that the constraints can hold together, e.g. by dropping one at a time.",
    },
    CodeInfo {
        code: "E0368",
        title: "problem looks unbounded",
        explanation: "L-BFGS (or projected L-BFGS, also inside `auglag`) took the iterates beyond 1e20 in magnitude while the objective kept falling: the minimized objective has no lower bound along the way it went (`minimize sum(c .* x)` with free x; for `maximize` of a convex function the message says unbounded above). Iterates that grow only linearly are caught another way: when any method stops short of a minimum with iterates 10⁶ times the start's scale, the objective is probed further along their direction, and one that keeps falling at least linearly out to 1e20 is E0368 as well. The solve ends `diverged` (exit 2) at the last iterate. Bound the variables, add a term that grows with them (`lambda * sumsq(x)`), or check the objective's sign.",
    },
    CodeInfo {
        code: "E0369",
        title: "the dual's transport plan misses its marginals (warning)",
        explanation: "`dual` solves a transport problem by maximizing its dual with L-BFGS. With a `card` constraint per column (or row) the dual is a relaxation, and the plan is repaired on the support it found; where that repair fails (non-uniform marginals that the support cannot carry), the plan misses a marginal by the amount printed, and the solve ends short of `converged`. Without `card`, a very small `gamma` (or very large costs) makes the dual nearly piecewise linear, and its line search can stop short of the maximum, with the same result. The dual bound is still a valid lower bound of the objective. Solve the primal instead with `solve with auglag` (or `optc run --method auglag`): its proximal-gradient subproblems enforce `card` by projection and it finds a feasible plan.",
    },
    CodeInfo {
        code: "E0375",
        title: "gradient too large for the solver",
        explanation: "The objective's gradient where the solve stopped is finite but so large that its squared norm overflows a 64-bit float (entries beyond about 1e154): the solvers' inner products, step lengths and curvature estimates are not representable, so the solve ends `diverged` or `line_search_failed` at once. It comes from a huge constant factor (`1e200 * sumsq(x)`), data in extreme units, or a function such as `exp(exp(x))` evaluated far from its minimum. Divide the objective by a constant, rescale the data or the variables, or start closer to the solution.",
    },
    CodeInfo {
        code: "E0367",
        title: "initial value outside the bounds (warning)",
        explanation: "A variable's initial value (`var x : real[n] >= 0 <= 1 = 5`, or the default 0 with bounds that exclude it) lies outside its declared bounds. The solvers start from its projection onto them (each entry clamped), so the run goes on; the warning points at the declaration and names the first entry outside. Give an initial value within the bounds to start where you mean to.",
    },
];

/// The first evaluation error of the objective, a constraint or an output at the current
/// point that every point would meet ([`EvalError::holds_everywhere`]: an index out of range,
/// `topk` with k beyond the length): a model or parameter error to report before solving,
/// not a solve that fails. Errors that depend on the point are left to the solvers.
pub fn error_at_every_point(model: &mut Model) -> Option<Diagnostic> {
    let mut roots: Vec<NodeId> = model.program.objective.iter().map(|o| o.node).collect();
    roots.extend(model.program.outputs.iter().map(|o| o.node));
    let mut errors = roots.into_iter().map(|node| model.eval(&[node]).err());
    if let Some(e) = errors.find_map(|e| e.filter(EvalError::holds_everywhere)) {
        return Some(e.diagnostic(&model.program));
    }
    let (i, e) = (0..model.program.constraints.len()).find_map(|i| {
        let e = model
            .violation(i)
            .err()
            .filter(EvalError::holds_everywhere)?;
        Some((i, e))
    })?;
    let name = model.program.constraints[i].name.clone();
    let at = match model.failing_index(i) {
        Some(indices) if !indices.is_empty() => {
            let list: Vec<String> = indices.iter().map(|k| k.to_string()).collect();
            format!(" at its `for` index {}", list.join(", "))
        }
        _ => String::new(),
    };
    Some(
        e.diagnostic(&model.program)
            .with_note(format!("in constraint `{name}`{at}")),
    )
}

/// A warning (E0367) when a variable's initial value lies outside its declared bounds, which
/// the solvers project it onto first: at the first such variable, naming its first entry out.
pub fn start_outside_bounds(model: &mut Model) -> Option<Diagnostic> {
    let b = bounds(model).ok()?;
    let x = model.x();
    let (lower, upper) = (b.lower(), b.upper());
    model.vars.iter().find_map(|slot| {
        let k = (slot.offset..slot.offset + slot.len())
            .find(|&k| x[k] < lower[k] || x[k] > upper[k])?;
        let input = model.program.input(slot.input);
        Some(
            Diagnostic::warning(
                "E0367",
                format!(
                    "the initial value of `{}` lies outside its bounds: entry {} is {} but the bounds are [{}, {}]",
                    slot.name,
                    k - slot.offset,
                    x[k],
                    lower[k],
                    upper[k]
                ),
            )
            .with_primary_at(input.span, "the solver starts from the initial value projected onto these bounds")
            .with_hint("give an initial value within the bounds (`= value` after them)"),
        )
    })
}

/// A warning (E0138) for each `for` range that the bound dimension sizes make empty, so that its
/// constraint constrains nothing (ranges empty at every size were warned about by the checker).
pub fn empty_ranges(model: &Model) -> Vec<Diagnostic> {
    let program = &model.program;
    let dims = &model.bindings.dims;
    let mut warnings = Vec::new();
    for c in &program.constraints {
        let Some(r) = c.ranges.iter().find(|r| {
            let static_len = r.end.minus(r.start).filter(|len| len.sym.is_none());
            static_len.is_none() && r.end.eval(dims) <= r.start.eval(dims)
        }) else {
            continue;
        };
        let sizes: Vec<String> = [r.start, r.end]
            .iter()
            .filter_map(|d| d.sym)
            .map(|s| format!("{}={}", program.dims[s.0 as usize].name, dims[s.0 as usize]))
            .collect();
        warnings.push(
            Diagnostic::warning(
                "E0138",
                format!(
                    "the range `{}..{}` of constraint `{}` is empty at {}: it constrains nothing",
                    program.dim_name(r.start),
                    program.dim_name(r.end),
                    c.name,
                    sizes.join(", ")
                ),
            )
            .with_primary_at(r.span.or(c.span), "no index at these sizes")
            .with_hint("a range `a..b` runs over a <= i < b: check its bounds and the sizes"),
        );
    }
    warnings
}

/// A warning (E0366) after a solve that ended `infeasible`: at the constraint with the largest
/// violation in `violations` (one per constraint of `program`), labelling the other violated
/// ones (those above 1% of the largest).
pub fn infeasibility_warning(program: &Program, violations: &[f64]) -> Diagnostic {
    let worst = (0..violations.len())
        .max_by(|&a, &b| violations[a].total_cmp(&violations[b]))
        .filter(|&k| violations[k] > 0.0);
    let mut d = Diagnostic::warning(
        "E0366",
        "the constraints look infeasible: their violation stopped falling while the penalty grew a millionfold",
    )
    .with_hint(
        "check that the constraints can hold together; one that conflicts with the violated ones may itself show no violation (`optc explain E0366`)",
    );
    let Some(worst) = worst else {
        return d;
    };
    let label = |k: usize| {
        let c = &program.constraints[k];
        let name = match c.name.is_empty() {
            true => String::new(),
            false => format!("`{}` ", c.name),
        };
        format!("{name}violated by {:.3e} at the end", violations[k])
    };
    d = d.with_primary_at(program.constraints[worst].span, label(worst));
    for (k, &v) in violations.iter().enumerate() {
        if k != worst && v > 0.01 * violations[worst] {
            d = d.with_label_at(program.constraints[k].span, label(k));
        }
    }
    d
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Lbfgs,
    ProxGrad,
    ProjectedLbfgs,
    AugLag,
    Path,
    Adam,
    /// The (semi-)dual of a transport problem (`transport`).
    Dual,
    /// MAID, for a model with an `argmin` (`bilevel`).
    Maid,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Lbfgs => "lbfgs",
            Method::ProxGrad => "prox_grad",
            Method::ProjectedLbfgs => "projected_lbfgs",
            Method::AugLag => "auglag",
            Method::Path => "path",
            Method::Adam => "adam",
            Method::Dual => "dual",
            Method::Maid => "maid",
        }
    }
}

/// The chosen method, why, and its options.
#[derive(Clone, Debug)]
pub struct Plan {
    pub method: Method,
    pub reason: String,
    pub structure: Structure,
    /// Numeric options by name.
    pub options: Vec<(String, f64)>,
    /// List options by name (e.g. the path's `s` schedule).
    pub lists: Vec<(String, Vec<f64>)>,
    /// Options whose value is a name (the path's `inner = lbfgs`).
    pub names: Vec<(String, String)>,
    /// The model's `solve with`, where option errors point.
    pub solve: Option<SolveSpec>,
    /// Simplify the derivative programs with the e-graph before solving (on by default).
    pub simplify: bool,
    /// The transport form `Method::Dual` solves.
    pub transport: Option<TransportForm>,
    /// The set and cardinality constraints `Method::ProxGrad` projects onto; for
    /// `Method::AugLag`, those its inner solver enforces: as bounds of L-BFGS-B (a `simplex`
    /// also as the equality sum = 1 in its merit), or with a `card` all by the prox of proximal
    /// gradient ([`Plan::auglag_by_prox`]).
    pub projections: Vec<Projection>,
    /// Findings that do not stop the solve (E0365, a kink where the method needs a gradient).
    pub warnings: Vec<Diagnostic>,
    /// Options set on the command line (`--tol`, `--max-iter`): written nowhere in the model.
    pub command_line: Vec<String>,
}

impl Plan {
    /// Where the `solve with` option `name` is written (nowhere when the command line set it).
    pub fn option_span(&self, name: &str) -> Option<Span> {
        if self.command_line.iter().any(|c| c == name) {
            return None;
        }
        self.solve.as_ref()?.option_span(name)
    }

    /// Sets option `name` from the command line, over the model's value (and, for `tol`, over
    /// L-BFGS's `gtol`, the same tolerance).
    pub fn set_on_command_line(&mut self, name: &str, value: f64) {
        let same = |k: &str| k == name || (name == "tol" && k == "gtol");
        self.options.retain(|(k, _)| !same(k));
        self.options.push((name.to_string(), value));
        self.command_line.push(name.to_string());
    }

    /// A bad option (E0362), pointing at it (written under its name or an alias: `rho` for
    /// `auglag`'s `rho_init`, `tol` for L-BFGS's `gtol`).
    pub(crate) fn option_error(&self, mut e: solvers::OptionError) -> Diagnostic {
        let alias = match e.name.as_str() {
            "rho_init" => "rho",
            "gtol" => "tol",
            _ => "",
        };
        // Named as the user wrote it (in the model or by a flag such as `--tol`).
        let given = |name: &str| self.options.iter().any(|(k, _)| k == name);
        if !given(&e.name) && given(alias) {
            e.name = alias.to_string();
        }
        let span = self.option_span(&e.name);
        match &e.accepted {
            // As `auglag`'s split of its options words it.
            Some(accepted) => {
                let accepted: Vec<&str> = accepted.iter().map(String::as_str).collect();
                let method = self
                    .solve
                    .as_ref()
                    .map_or(self.method.name(), |s| &s.method);
                plan_error(
                    "E0362",
                    format!(
                        "`{method}` has no option `{}`{}",
                        e.name,
                        solvers::did_you_mean(&e.name, &accepted)
                    ),
                )
                .with_primary_at(span, "unknown option")
                .with_hint(format!("options: {}", accepted.join(", ")))
            }
            None => plan_error("E0362", e.to_string()).with_primary_at(span, "bad option"),
        }
    }

    /// Whether the augmented Lagrangian solves its subproblems by proximal gradient (the staged
    /// `fista` of `run_prox_grad`), projecting onto every set on a variable: when the plan has
    /// a `card` constraint or a norm ball, which L-BFGS-B cannot take as bounds, or a prox term
    /// other than L1 (a nuclear, group or TV norm), which it cannot split.
    pub fn auglag_by_prox(&self) -> bool {
        let projected = self
            .projections
            .iter()
            .any(|p| self.structure.cardinality.contains(&p.constraint) || p.ball.is_some());
        let beyond_l1 = self
            .structure
            .prox
            .iter()
            .any(|t| !ProxScope::L1.takes(t.kind));
        self.method == Method::AugLag && (projected || beyond_l1)
    }
}

/// The objective as minimized (E0360 without one).
fn minimized_objective(program: &mut Program) -> Result<NodeId, Diagnostic> {
    program
        .minimized_objective()
        .ok_or_else(|| plan_error("E0360", "the model has no objective"))
}

fn plan_error(code: &'static str, message: impl Into<String>) -> Diagnostic {
    Diagnostic::error(code, message)
}

/// Options by name with a number, with a list of numbers, or with a name.
type NumberOptions = Vec<(String, f64)>;
type ListOptions = Vec<(String, Vec<f64>)>;
type NameOptions = Vec<(String, String)>;

/// Flattens `solve with` options into numbers, lists and names.
fn flatten_options(
    spec: &SolveSpec,
) -> Result<(NumberOptions, ListOptions, NameOptions), Diagnostic> {
    if !spec.positional.is_empty() {
        let span = spec.spans.positional.first().copied();
        return Err(plan_error(
            "E0362",
            format!("`{}` takes its options by name", spec.method),
        )
        .with_primary_at(span, "an option without a name")
        .with_hint(format!(
            "write `name = value`, e.g. `solve with {}(max_iter = 500)`",
            spec.method
        )));
    }
    let mut numbers = Vec::new();
    let mut lists = Vec::new();
    let mut names = Vec::new();
    for (name, value) in &spec.options {
        match value {
            OptionValue::Number(v) => numbers.push((name.clone(), *v)),
            // Flags: `true` and `false` are 1 and 0; other options take numbers.
            OptionValue::Name(v) if (v == "true" || v == "false") && is_flag(name) => {
                numbers.push((name.clone(), f64::from(u8::from(v == "true"))))
            }
            OptionValue::Name(v) | OptionValue::Str(v) => names.push((name.clone(), v.clone())),
            OptionValue::List(items) => {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        OptionValue::Number(v) => out.push(*v),
                        _ => {
                            return Err(plan_error(
                                "E0362",
                                format!("option `{name}` must be a list of numbers"),
                            )
                            .with_primary_at(spec.option_span(name), "not a list of numbers"))
                        }
                    }
                }
                lists.push((name.clone(), out));
            }
            _ => return Err(not_a_number(spec, name)),
        }
    }
    Ok((numbers, lists, names))
}

/// Whether some method's option `name` is a flag (on/off).
fn is_flag(name: &str) -> bool {
    use solvers::SetOption;
    ProxGradOptions::is_flag(name)
        || LbfgsOptions::is_flag(name)
        || AdamOptions::is_flag(name)
        || AugLagOptions::is_flag(name)
        || solvers::MaidOptions::is_flag(name)
        || solvers::PathOptions::is_flag(name)
}

/// E0362 for the option `name` of `spec` given neither a number nor (for the path's `s`, the
/// one option that takes one) a list of numbers.
fn not_a_number(spec: &SolveSpec, name: &str) -> Diagnostic {
    let takes_a_list = name == "s" && ["path", "colide"].contains(&spec.method.as_str());
    let what = match takes_a_list {
        true => "a number or a list of numbers",
        false => "a number",
    };
    plan_error(
        "E0362",
        format!("option `{name}` of `{}` must be {what}", spec.method),
    )
    .with_primary_at(spec.option_span(name), "not a number")
}

/// Whether `solve with path(...)` minimises its stages with L-BFGS (`inner = lbfgs`) rather than
/// Adam (`inner = adam`, the default). Other name options, other inner methods, and
/// `inner = lbfgs` with `colide` (whose closed-form scale update follows every Adam step) are
/// errors.
fn path_uses_lbfgs(spec: &SolveSpec, names: &[(String, String)]) -> Result<bool, Diagnostic> {
    let method = &spec.method;
    let mut lbfgs = false;
    for (name, value) in names {
        let here = spec.option_span(name);
        match name.as_str() {
            // `colide`'s scale variable (checked by `scale_vars`) and its variant.
            "scale" if method == "colide" => continue,
            "variant" if method == "colide" => match value.as_str() {
                "ev" | "nv" => continue,
                other => {
                    return Err(plan_error(
                        "E0362",
                        format!("`colide` has no variant `{other}`"),
                    )
                    .with_primary_at(here, "unknown variant")
                    .with_hint("`variant = \"ev\"` (equal noise variances: a scalar scale) or `variant = \"nv\"` (one per node: a vector scale)"))
                }
            },
            "inner" => {}
            _ => return Err(not_a_number(spec, name)),
        }
        lbfgs = match value.as_str() {
            "adam" => false,
            "lbfgs" if method == "colide" => {
                return Err(plan_error(
                    "E0362",
                    "`colide` supports only `inner = adam`: its closed-form noise-scale update follows every Adam step",
                )
                .with_primary_at(here, "needs Adam")
                .with_hint("use `solve with path(inner = lbfgs)` for a score without a noise-scale variable"))
            }
            "lbfgs" => true,
            other => {
                return Err(plan_error(
                    "E0362",
                    format!("`{method}` has no inner method `{other}`"),
                )
                .with_primary_at(here, "unknown inner method")
                .with_hint("the inner methods are adam (the DAGMA reference) and lbfgs"))
            }
        };
    }
    Ok(lbfgs)
}

/// `dual`'s options: the inner method (`lbfgs` or `lbfgs(...)`, positional or `inner = ...`),
/// whose numeric options become the plan's, and `form = "semi" | "full"`.
fn dual_options(spec: &SolveSpec) -> Result<(NumberOptions, NameOptions), Diagnostic> {
    // Spans are absent from a model read from an artifact: look them up, never zip with them.
    let positional = spec.positional.iter().enumerate();
    let positional = positional.map(|(i, v)| (v, spec.spans.positional.get(i).copied()));
    let named = spec.options.iter().enumerate();
    let inner = positional.chain(
        named
            .filter(|(_, (k, _))| k == "inner")
            .map(|(i, (_, v))| (v, spec.spans.options.get(i).copied())),
    );
    let mut numbers = Vec::new();
    for (value, span) in inner {
        let inner_spec = match value {
            OptionValue::Name(name) if name == "lbfgs" => None,
            OptionValue::Call(call) if call.method == "lbfgs" && call.positional.is_empty() => {
                Some(call)
            }
            _ => {
                return Err(plan_error(
                    "E0362",
                    "the inner method of `dual` must be `lbfgs` or `lbfgs(...)`",
                )
                .with_primary_at(span, "not `lbfgs`")
                .with_hint("e.g. `solve with dual(lbfgs(max_iter = 500, tol = 1e-9))`"))
            }
        };
        if let Some(call) = inner_spec {
            numbers.extend(flatten_options(call)?.0);
        }
    }
    let mut names = Vec::new();
    for (i, (name, value)) in spec.options.iter().enumerate() {
        let span = spec.spans.options.get(i).copied();
        match (name.as_str(), value) {
            ("inner", _) => {}
            ("form", OptionValue::Str(form) | OptionValue::Name(form)) => {
                if crate::transport::DualForm::parse(form).is_none() {
                    return Err(plan_error("E0362", format!("`dual` has no form `{form}`"))
                        .with_primary_at(span, "unknown form")
                        .with_hint("the forms are \"semi\" (the default) and \"full\""));
                }
                names.push(("form".to_string(), form.clone()))
            }
            _ => {
                return Err(plan_error("E0362", format!("`dual` has no option `{name}` of this kind"))
                    .with_primary_at(span, "unknown option")
                    .with_hint("`dual` takes its inner method and `form = \"semi\"` or `form = \"full\"`; the inner method takes the iteration options"))
            }
        }
    }
    Ok((numbers, names))
}

/// Chooses the solver for `program` and checks its options; every bad option is an error.
pub fn choose(program: &Program) -> Result<Plan, Vec<Diagnostic>> {
    // Options given a name or string where a number belongs come first: they may be the
    // reason a method seems not to fit.
    let mut errors = options_not_numbers(program);
    let mut plan = match choose_method(program) {
        Ok(plan) => plan,
        Err(_) if !errors.is_empty() => return Err(errors),
        Err(d) => return Err(vec![d]),
    };
    errors.extend(check_options(&plan));
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.labels.first().map(|l| l.span.start));
        return Err(errors);
    }
    plan.warnings
        .extend(kink_warning(program, &plan).map_err(|d| vec![d])?);
    Ok(plan)
}

/// E0362 for each option of `solve with` given a name or string where a number belongs (all
/// but `path`'s, `colide`'s and `dual`'s, whose `inner` and `form` take names).
fn options_not_numbers(program: &Program) -> Vec<Diagnostic> {
    let Some(spec) = &program.solve else {
        return Vec::new();
    };
    if ["path", "colide", "dual"].contains(&spec.method.as_str()) {
        return Vec::new();
    }
    match flatten_options(spec) {
        Ok((_, _, names)) => names
            .iter()
            .map(|(name, _)| not_a_number(spec, name))
            .collect(),
        Err(_) => Vec::new(), // choose_method reports it
    }
}

/// The method for `program`, why, and its options as given.
fn choose_method(program: &Program) -> Result<Plan, Diagnostic> {
    let s = structure::analyze(program);
    let transport = transport::transport_form(program);
    // Set and cardinality constraints that proximal gradient enforces by projection.
    let sets: Vec<usize> = s
        .projections
        .iter()
        .chain(&s.cardinality)
        .copied()
        .collect();
    let projections: Vec<Projection> = sets
        .iter()
        .filter_map(|&i| structure::projection(program, i))
        .collect();
    let all_projected = projections.len() == sets.len();
    let smooth_terms: Vec<NodeId> = s.smooth.iter().map(|&(_, node)| node).collect();
    let smoothness = match structure::kinks(program, &smooth_terms).is_empty() {
        true => "smooth",
        false => "nonsmooth",
    };
    let (method, reason, options, lists, names) = match &program.solve {
        Some(spec) if spec.method == "dual" => {
            let (options, names) = dual_options(spec)?;
            (
                Method::Dual,
                "`solve with dual` in the model".to_string(),
                options,
                Vec::new(),
                names,
            )
        }
        Some(spec) => {
            let (options, lists, names) = flatten_options(spec)?;
            let method = match spec.method.as_str() {
                "lbfgs" => Method::Lbfgs,
                "fista" | "prox_grad" => Method::ProxGrad,
                "adam" => Method::Adam,
                "auglag" => Method::AugLag,
                "path" | "colide" => Method::Path,
                "maid" => Method::Maid,
                other => {
                    return Err(plan_error(
                        "E0361",
                        format!("the solve method `{other}` is not available in this version of optc"),
                    )
                    .with_primary_at(spec.spans.method, "not available")
                    .with_hint("use lbfgs, fista, adam, auglag, path, colide, dual or maid (in `solve with` or `--method`), or none to let optc choose"))
                }
            };
            if method == Method::Path {
                path_uses_lbfgs(spec, &names)?;
            }
            (
                method,
                format!("`solve with {}` in the model", spec.method),
                options,
                lists,
                names,
            )
        }
        None if objective_reads_an_argmin(program) => (
            Method::Maid,
            match program.subproblems.len() {
                1 => "a bilevel problem (an `argmin`): MAID".to_string(),
                k => format!("a bilevel problem ({k} `argmin`s side by side): MAID"),
            },
            Vec::new(),
            Vec::new(),
            Vec::new(),
        ),
        None if transport.is_ok() => (
            Method::Dual,
            "a regularized transport problem: L-BFGS on its semi-dual".to_string(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        ),
        None if !sets.is_empty()
            && all_projected
            && s.equalities.is_empty()
            && s.inequalities.is_empty() =>
        {
            (
                Method::ProxGrad,
                "set, norm-ball and cardinality constraints by projection: proximal gradient (FISTA)"
                    .to_string(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
            )
        }
        None if !s.equalities.is_empty()
            || !s.inequalities.is_empty()
            || !s.projections.is_empty() =>
        {
            (
                Method::AugLag,
                if s.cardinality.is_empty() && s.prox.iter().all(|t| ProxScope::L1.takes(t.kind)) {
                    "equality, inequality or set constraints: augmented Lagrangian"
                } else if s.cardinality.is_empty() {
                    "constraints beside a group, nuclear or TV norm: augmented Lagrangian, its subproblems by proximal gradient"
                } else {
                    "`card` with equality, inequality or expression constraints: augmented Lagrangian, its subproblems by proximal gradient"
                }
                .to_string(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
            )
        }
        None if !s.prox.is_empty() => (
            Method::ProxGrad,
            format!("{smoothness} terms plus terms with a prox (L1, group and nuclear norms, total variation): proximal gradient (FISTA)"),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        ),
        None if !s.bounded_vars.is_empty() => (
            Method::ProjectedLbfgs,
            format!("{smoothness} objective with bounds: projected L-BFGS"),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        ),
        None => (
            Method::Lbfgs,
            format!("{smoothness} unconstrained objective: L-BFGS"),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        ),
    };
    let transport = match (method, transport) {
        (Method::Dual, Ok(form)) => Some(form),
        (Method::Dual, Err(why)) => {
            return Err(plan_error("E0360", format!("`dual` solves regularized transport problems: {}", why.message))
                .with_primary_at(why.span, "does not fit the transport form")
                .with_label_at(program.method_span(), "`dual` chosen here")
                .with_hint("the form is `minimize sum(C .* T) + gamma / 2 * sumsq(T)` over `var T : real[m, n] >= 0` with `sum(T, axis = 1) == a`, `sum(T, axis = 0) == b` and optionally `for j in 0..n: card(T[:, j]) <= k`"))
        }
        _ => None,
    };
    let projections = match method {
        Method::ProxGrad | Method::AugLag => projections,
        _ => Vec::new(),
    };
    let handled = |i: &usize| {
        transport.is_some()
            || projections.iter().any(|p| p.constraint == *i)
            || (method == Method::AugLag
                && (s.inequalities.contains(i) || s.projections.contains(i)))
    };
    if method == Method::Maid {
        maid_fits(program)?;
    }
    let unsupported = s.inequalities.iter().chain(&sets).find(|i| !handled(i));
    if let Some(c) = unsupported.map(|&i| &program.constraints[i]) {
        return Err(plan_error(
            "E0360",
            format!("constraint `{}` (an inequality, set or cardinality constraint) cannot be handled by `{}` in this version", c.name, written_name(program, method)),
        )
        .with_primary_at(c.span, format!("`{}` cannot handle this", written_name(program, method)))
        .with_label_at(program.method_span(), "method chosen here")
        .with_hint("`auglag` handles equality and inequality constraints (with variable bounds such as `var x : real[n] >= 0`, and `in` and `card` constraints on variables), and `fista` enforces `in` and `card` constraints on a variable or on all its rows or columns by projection"));
    }
    match method {
        Method::Lbfgs | Method::ProxGrad | Method::ProjectedLbfgs | Method::Adam
            if !s.equalities.is_empty() =>
        {
            let c = &program.constraints[s.equalities[0]];
            return Err(plan_error(
                "E0360",
                format!("`{}` cannot handle the equality constraint `{}`", written_name(program, method), c.name),
            )
            .with_primary_at(c.span, "an equality constraint")
            .with_label_at(program.method_span(), "method chosen here")
            .with_hint("use `solve with auglag(...)` or `solve with path(...)` (or `--method auglag`)"));
        }
        Method::Path if s.equalities.len() != 1 => {
            return Err(plan_error(
                "E0360",
                "the path method needs exactly one equality constraint (the acyclicity function h(W) == 0)",
            )
            .with_primary_at(program.method_span(), "`path` chosen here"))
        }
        _ => {}
    }
    let method = match method {
        Method::Lbfgs if !s.bounded_vars.is_empty() => Method::ProjectedLbfgs,
        m => m,
    };
    let plan = Plan {
        method,
        reason,
        structure: s,
        options,
        lists,
        names,
        solve: program.solve.clone(),
        simplify: true,
        transport,
        projections,
        warnings: Vec::new(),
        command_line: Vec::new(),
    };
    Ok(plan)
}

/// Whether the objective reads an `argmin` (a bilevel model). One read only by an output is
/// evaluated after the solve, by a lower-level solve of its own, and leaves the method as it is.
fn objective_reads_an_argmin(program: &Program) -> bool {
    program.objective.as_ref().is_some_and(|objective| {
        optc_compiler::simplify::cost::reachable(program, &[objective.node])
            .into_iter()
            .any(|id| matches!(program.graph.node(id).op, Op::Argmin(_)))
    })
}

/// E0360 unless the model is one `maid` solves: a bilevel model (an `argmin`) without
/// constraints on its outer variables.
fn maid_fits(program: &Program) -> Result<(), Diagnostic> {
    if let Some(c) = program.constraints.first() {
        return Err(plan_error(
            "E0360",
            "`maid` handles no constraints on the outer variables",
        )
        .with_primary_at(c.span, "a constraint on the outer variables")
        .with_hint("remove the `subject to` block, or state the constraint in the lower level"));
    }
    if program.subproblems.is_empty() {
        return Err(
            plan_error("E0360", "`maid` solves bilevel models, and this one has no `argmin`")
                .with_primary_at(program.method_span(), "`maid` chosen here")
                .with_hint(
                    "drop `solve with maid` (or `--method maid`) to let optc choose a method for a single-level model",
                ),
        );
    }
    Ok(())
}

/// Every bad number option of the plan (E0362: an unknown option, a value out of range, options
/// that do not go together), parsed as its solve will, so that they are reported
/// before any data is read (`optc check`). After each error the option it points at is set
/// aside and the rest parsed again, so each is judged among the options that remain.
pub fn check_options(plan: &Plan) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    let mut rest = plan.clone();
    while let Err(e) = check_numbers(&rest) {
        let at = e.labels.iter().find(|l| l.primary).map(|l| l.span);
        let culprit = rest
            .options
            .iter()
            .position(|(name, _)| at.is_some() && rest.option_span(name) == at);
        errors.push(e);
        match culprit {
            Some(k) => {
                rest.options.remove(k);
            }
            None => break,
        }
    }
    errors.sort_by_key(|e| e.labels.first().map(|l| l.span.start));
    errors
}

/// Parses the plan's number options as its solve will; the first error.
fn check_numbers(plan: &Plan) -> Result<(), Diagnostic> {
    let numbers = &plan.options;
    let bad = |e| plan.option_error(e);
    match plan.method {
        Method::Lbfgs | Method::ProjectedLbfgs | Method::Dual => {
            lbfgs_options(plan, numbers)?;
        }
        Method::Adam => {
            AdamOptions::from_options(numbers).map_err(bad)?;
        }
        Method::ProxGrad => {
            ProxGradOptions::from_options(numbers).map_err(bad)?;
        }
        Method::AugLag => {
            let by_prox = plan.auglag_by_prox();
            let (outer, inner) = split_auglag_options(plan, by_prox)?;
            AugLagOptions::from_options(&outer).map_err(bad)?;
            if by_prox {
                ProxGradOptions::from_options(&inner).map_err(bad)?;
            } else {
                lbfgs_options(plan, &inner)?;
            }
        }
        Method::Path => {
            path_options(plan, path_kind(plan)?.defaults(Bounds::unbounded(0)))?;
        }
        Method::Maid => {
            solvers::MaidOptions::from_options(numbers).map_err(bad)?;
        }
    }
    Ok(())
}

/// A warning (E0365) at the first kink of what the plan's method differentiates and expects to
/// be smooth: for L-BFGS the whole objective, for proximal gradient its terms without a prox, for
/// the augmented Lagrangian and the path with L-BFGS stages also their equality and inequality
/// constraints. Adam (alone or in the path's stages) is a subgradient method and MAID's levels
/// and the transport dual have their own forms: they get none.
fn kink_warning(program: &Program, plan: &Plan) -> Result<Option<Diagnostic>, Diagnostic> {
    let s = &plan.structure;
    if plan.method == Method::Maid {
        return Ok(lower_level_kink(program));
    }
    let (scope, constrained) = match plan.method {
        Method::Lbfgs | Method::ProjectedLbfgs => (None, false),
        Method::ProxGrad => (Some(ProxScope::All), false),
        Method::AugLag if plan.auglag_by_prox() => (Some(ProxScope::All), true),
        Method::AugLag => (Some(ProxScope::L1), true),
        Method::Path if path_kind(plan)?.lbfgs_stages => (Some(ProxScope::L1), true),
        _ => return Ok(None),
    };
    let mut objective: Vec<NodeId> = s.smooth.iter().map(|&(_, node)| node).collect();
    objective.extend(
        s.prox
            .iter()
            .filter(|t| !scope.is_some_and(|scope| scope.takes(t.kind)))
            .map(|t| t.node),
    );
    let constraints = s.equalities.iter().chain(&s.inequalities);
    let mut found = structure::kinks(program, &objective)
        .into_iter()
        .map(|k| (k, "the objective".to_string()))
        .chain(constraints.filter(|_| constrained).flat_map(|&i| {
            let c = &program.constraints[i];
            structure::kinks(program, &[c.node])
                .into_iter()
                .map(|k| (k, format!("constraint `{}`", c.name)))
        }));
    let Some((kink, what)) = found.next() else {
        return Ok(None);
    };
    let more = found.count();
    let method = written_name(program, plan.method);
    // A kink of a term that has a prox, which the method was told to differentiate.
    let in_prox_term = s
        .prox
        .iter()
        .flat_map(|t| structure::kinks(program, &[t.node]))
        .any(|k| k.node == kink.node);
    let rewrite = if what.starts_with("constraint") {
        "rewrite the constraint without the kink (`norm1(u) <= t` is linear in the parts of a \
         split `u = p - q` with `p, q >= 0`: `sum(p + q) <= t`)"
            .to_string()
    } else if in_prox_term {
        format!(
            "this term has a prox: without `solve with {method}` (or `--method {method}`) optc \
             chooses a method that handles it exactly (`fista`, or `auglag` with constraints)"
        )
    } else {
        "write a penalty as its own weighted term of a variable (`lambda * norm1(w)`), which \
         `fista` handles exactly"
            .to_string()
    };
    let d = kink_diagnostic(
        program,
        &kink,
        more,
        format!("{what} is not differentiable everywhere, and `{method}` differentiates it"),
    )
    .with_label_at(program.method_span(), "method chosen here")
    .with_note(
        "the solver takes a subgradient at the kink; it may stop short of the minimum, and the \
         optimality it reports (a gradient norm) need not reach 0",
    )
    .with_hint(format!(
        "{rewrite}; or smooth the kink (`softplus(t * u) / t` for `maximum(u, 0)`); or use \
         `solve with adam(...)`, a subgradient method (`optc explain E0365`)"
    ));
    Ok(Some(d))
}

/// The method as the model or `--method` names it (`fista` or `prox_grad`, `lbfgs` for
/// projected L-BFGS), else as optc names its choice.
fn written_name(program: &Program, method: Method) -> &str {
    program
        .solve
        .as_ref()
        .map_or(method.name(), |spec| spec.method.as_str())
}

/// E0365 with `message` at `kink`, noting `more` kinks besides it.
fn kink_diagnostic(
    program: &Program,
    kink: &structure::Kink,
    more: usize,
    message: String,
) -> Diagnostic {
    let op = optc_compiler::ir::op_name(&program.graph.node(kink.node).op);
    let d = Diagnostic::warning("E0365", message).with_primary_at(
        kink.span,
        format!("`{op}` has a kink {}", kink.where_it_jumps(program)),
    );
    match more {
        0 => d,
        _ => d.with_note(format!("{more} more kink(s) besides this one")),
    }
}

/// A warning (E0365) at the first kink of an `argmin`'s objective: MAID solves the lower level
/// by L-BFGS and differentiates it twice (its Hessian in the hypergradient's linear system),
/// so it must be smooth.
fn lower_level_kink(program: &Program) -> Option<Diagnostic> {
    let objectives: Vec<NodeId> = program.subproblems.iter().map(|s| s.objective).collect();
    let kinks = structure::kinks(program, &objectives);
    let kink = kinks.first()?;
    let d = kink_diagnostic(
        program,
        kink,
        kinks.len() - 1,
        "the lower-level objective of an `argmin` is not differentiable everywhere, and `maid` differentiates it twice".into(),
    )
    .with_note(
        "the lower level is solved by L-BFGS and its Hessian enters the hypergradient: at a kink \
         both fail (a line search that finds no decrease, a hypergradient without meaning)",
    )
    .with_hint(
        "smooth the lower level: `tv_smooth(z, eps = 1e-3)` for `tv(z)`, `sqrt(u ^ 2 + eps ^ 2)` \
         for `abs(u)`, `softplus(t * u) / t` for `maximum(u, 0)` (`optc explain E0365`)",
    );
    Some(d)
}

fn binary(program: &mut Program, op: BinaryOp, a: NodeId, b: NodeId) -> NodeId {
    program
        .graph
        .add(Op::Binary(op), vec![a, b])
        .expect("scalar arithmetic on scalars")
}

/// A differentiable scalar with its gradient nodes (one per variable, in `Model::vars` order),
/// and domain guards: nodes that must be elementwise ≥ 0 for a point to be in the merit's
/// domain, evaluated together with it (so they share its work).
#[derive(Clone, Debug)]
struct Merit {
    /// The value, the gradient nodes, then the domain guards: the roots of one evaluation, kept
    /// as one list so that evaluating them allocates nothing.
    roots: Vec<NodeId>,
    num_grads: usize,
}

impl Merit {
    fn roots(&self) -> &[NodeId] {
        &self.roots
    }

    fn domain(&self) -> &[NodeId] {
        &self.roots[1 + self.num_grads..]
    }

    fn set_domain(&mut self, domain: impl IntoIterator<Item = NodeId>) {
        self.roots.truncate(1 + self.num_grads);
        self.roots.extend(domain);
    }

    /// The same merit with its nodes renamed by `roots` (in the order of [`Merit::roots`]).
    fn renamed(&self, roots: &mut impl Iterator<Item = NodeId>) -> Merit {
        Merit {
            roots: roots.take(self.roots.len()).collect(),
            num_grads: self.num_grads,
        }
    }
}

/// Simplifies the program for these roots (when the plan asks for it) and returns their new ids.
pub(crate) fn finalize(
    model: &mut Model,
    plan: &Plan,
    roots: Vec<NodeId>,
) -> Result<Vec<NodeId>, Diagnostic> {
    if !plan.simplify {
        return Ok(roots);
    }
    model.simplify(&roots).map_err(|e| {
        Diagnostic::error("E0449", format!("internal error: {e}"))
            .with_note("this is a bug in optc")
    })
}

/// A merit function and its gradient, simplified.
fn simplified_merit(model: &mut Model, plan: &Plan, value: NodeId) -> Result<Merit, Diagnostic> {
    let merit = differentiate(model, value)?;
    let roots = finalize(model, plan, merit.roots().to_vec())?;
    Ok(merit.renamed(&mut roots.into_iter()))
}

fn differentiate(model: &mut Model, value: NodeId) -> Result<Merit, Diagnostic> {
    let vars: Vec<InputId> = model.vars.iter().map(|v| v.input).collect();
    merit_of(&mut model.program, &vars, value)
}

/// `value` with its gradient in `vars` (added to `program`).
fn merit_of(program: &mut Program, vars: &[InputId], value: NodeId) -> Result<Merit, Diagnostic> {
    let grads = autodiff::gradient(program, value, vars).map_err(|e| e.diagnostic(program))?;
    Ok(Merit {
        num_grads: grads.len(),
        roots: std::iter::once(value).chain(grads).collect(),
    })
}

/// The stage merit of the central path, `mu · score + h(x / √s)`, added to a program: the
/// path's two parameters (inputs `path.mu` and `path.inv_sqrt_s`, default 1), the merit with its
/// gradient in `vars` and its domain guards, and the rescaled constraint function `h`.
pub struct PathMerit {
    merit: Merit,
    pub mu: InputId,
    pub scale: InputId,
    pub h: NodeId,
}

impl PathMerit {
    /// The merit's value, then its gradient nodes (one per variable, in order).
    pub fn value_and_gradient(&self) -> &[NodeId] {
        &self.merit.roots()[..1 + self.merit.num_grads]
    }

    /// Nodes that must be elementwise ≥ 0 at a point of the merit's domain: the inverses of
    /// the log-determinants' arguments in `h` (DAGMA's M-matrix domain).
    pub fn domain(&self) -> &[NodeId] {
        self.merit.domain()
    }
}

/// Builds the central path's stage merit of `score` and the constraint function `constraint`
/// in `program` (see [`PathMerit`]).
pub fn path_merit(
    program: &mut Program,
    vars: &[InputId],
    score: NodeId,
    constraint: NodeId,
) -> Result<PathMerit, Diagnostic> {
    let (mu_id, mu) = program.add_param("path.mu", 1.0);
    let (scale_id, scale) = program.add_param("path.inv_sqrt_s", 1.0);
    // Rescale every variable h reads by 1/√s.
    let mut h = constraint;
    for var in vars {
        let var_node = program.input_nodes[var.0 as usize];
        let scaled = binary(program, BinaryOp::Mul, var_node, scale);
        h = program
            .graph
            .substitute(h, var_node, scaled)
            .map_err(|e| plan_error("E0360", e.to_string()))?;
    }
    let weighted = binary(program, BinaryOp::Mul, mu, score);
    let total = binary(program, BinaryOp::Add, weighted, h);
    let mut merit = merit_of(program, vars, total)?;
    // M-matrix guard: arguments of logdet in h must have a nonnegative inverse (as in DAGMA).
    // Evaluated with the merit, whose gradient needs the same inverse. Only the logdets of the
    // rescaled h count (the unscaled constraint's are of s = 1, implied by any s ≤ 1).
    let logdet_args: Vec<NodeId> = optc_compiler::simplify::cost::reachable(program, &[h])
        .into_iter()
        .filter(|&id| matches!(program.graph.node(id).op, Op::LogDet))
        .map(|id| program.graph.node(id).args[0])
        .collect();
    merit.set_domain(logdet_args.into_iter().map(|arg| {
        program
            .graph
            .add(Op::Inv, vec![arg])
            .expect("logdet arguments are square")
    }));
    Ok(PathMerit {
        merit,
        mu: mu_id,
        scale: scale_id,
        h,
    })
}

/// Evaluates a merit function at `x`: value, and gradient into `g`. A point outside the merit's
/// domain (a negative entry in a domain guard, or, for a guarded merit, any evaluation error such
/// as a log-determinant of a matrix with determinant ≤ 0) gives NaN, and the solvers back off.
/// Other errors give NaN too; the first is kept for the report.
fn eval_merit(
    model: &mut Model,
    merit: &Merit,
    x: &[f64],
    g: &mut [f64],
    error: &mut Option<Diagnostic>,
) -> f64 {
    model.set_x(x);
    match model.eval_ref(merit.roots()) {
        Ok(values) => {
            let (head, guards) = values.split_at(1 + merit.num_grads);
            // Branch-free, so that it vectorizes: a guard is usually all nonnegative and scanned
            // whole (DAGMA's is the d × d inverse, every step).
            let negative = |a: &ndarray::ArrayD<f64>| match a.as_slice_memory_order() {
                Some(values) => values.iter().fold(false, |any, v| any | (*v < 0.0)),
                None => a.iter().any(|v| *v < 0.0),
            };
            if guards.iter().any(negative) {
                return f64::NAN;
            }
            write_gradient(&head[1..], g);
            head[0].iter().next().copied().unwrap_or(f64::NAN)
        }
        Err(e) => {
            if error.is_none() && merit.domain().is_empty() {
                *error = Some(e.diagnostic(&model.program));
            }
            f64::NAN
        }
    }
}

/// Writes the variables' gradients `grads` into the flat gradient `g`, one after the other (the
/// offsets of `Model::vars`).
fn write_gradient(grads: &[ndarray::ArrayD<f64>], g: &mut [f64]) {
    let mut rest = g;
    for grad in grads {
        let (g, tail) = rest.split_at_mut(grad.len());
        match grad.as_slice() {
            Some(contiguous) => g.copy_from_slice(contiguous),
            None => g.iter_mut().zip(grad.iter()).for_each(|(gi, v)| *gi = *v),
        }
        rest = tail;
    }
}

/// Elementwise bounds of the flat vector from the variables' declared bounds.
pub(crate) fn bounds(model: &mut Model) -> Result<Bounds, Diagnostic> {
    let n = model.dim();
    let mut lower = vec![f64::NEG_INFINITY; n];
    let mut upper = vec![f64::INFINITY; n];
    for slot in model.vars.clone() {
        let input = model.program.input(slot.input).clone();
        for (node, target) in [(input.lower, &mut lower), (input.upper, &mut upper)] {
            if let Some(node) = node {
                let v = model.eval(&[node]).map_err(Diagnostic::from)?.remove(0);
                let v = v
                    .broadcast(slot.shape.as_slice())
                    .ok_or_else(|| {
                        plan_error(
                            "E0362",
                            format!(
                                "the bound of `{}` does not broadcast to its shape",
                                slot.name
                            ),
                        )
                    })?
                    .to_owned();
                for (t, b) in target[slot.offset..slot.offset + slot.len()]
                    .iter_mut()
                    .zip(v.iter())
                {
                    *t = *b;
                }
            }
        }
        let entries = slot.offset..slot.offset + slot.len();
        if let Some(k) = entries.clone().find(|&k| !(lower[k] <= upper[k])) {
            return Err(plan_error(
                "E0360",
                format!(
                    "the bounds of `{}` leave no value: entry {} would lie in [{}, {}]",
                    slot.name,
                    k - slot.offset,
                    lower[k],
                    upper[k]
                ),
            )
            .with_primary_at(input.span, "no value satisfies these bounds")
            .with_hint("the lower bound (`>= lo`) must not exceed the upper one (`<= hi`)"));
        }
    }
    Bounds::new(lower, upper).map_err(|m| plan_error("E0362", m))
}

/// The bounds of the augmented Lagrangian's inner solver: the variables' declared bounds
/// intersected with their `in` constraints (`nonneg`: x ≥ 0, `box(lo, hi)`, `simplex`:
/// 0 ≤ x ≤ 1, its sum being an equality of the merit, [`auglag_functions`]).
fn auglag_bounds(model: &mut Model, plan: &Plan) -> Result<Bounds, Diagnostic> {
    let (lower, upper) = bounds_with_sets(model, plan, true)?;
    Bounds::new(lower, upper).map_err(|m| plan_error("E0362", m))
}

/// The variables' declared bounds intersected with the elementwise sets among the plan's
/// projections: `nonneg`, `box(lo, hi)`, and with `simplex_as_box` a simplex as 0 ≤ x ≤ 1.
/// An empty intersection is refused (E0360), naming the set.
fn bounds_with_sets(
    model: &mut Model,
    plan: &Plan,
    simplex_as_box: bool,
) -> Result<(Vec<f64>, Vec<f64>), Diagnostic> {
    let declared = bounds(model)?;
    let (mut lower, mut upper) = (declared.lower().to_vec(), declared.upper().to_vec());
    for p in &plan.projections {
        let c = &model.program.constraints[p.constraint];
        let (name, span) = (c.name.clone(), c.span);
        let (lo, hi) = match c.kind.clone() {
            ConstraintKind::In(SetKind::Nonneg) => (0.0, f64::INFINITY),
            ConstraintKind::In(SetKind::Simplex) if simplex_as_box => (0.0, 1.0),
            ConstraintKind::In(SetKind::Box { lower, upper }) => (
                model.eval_scalar(lower).map_err(Diagnostic::from)?,
                model.eval_scalar(upper).map_err(Diagnostic::from)?,
            ),
            _ => continue,
        };
        let slot = model.slot(p.var).clone();
        for k in slot.offset..slot.offset + slot.len() {
            lower[k] = lower[k].max(lo);
            upper[k] = upper[k].min(hi);
            if !(lower[k] <= upper[k]) {
                return Err(plan_error(
                    "E0360",
                    format!(
                        "constraint `{name}` leaves no value for `{}`: with its other bounds, entry {} would lie in [{}, {}]",
                        slot.name,
                        k - slot.offset,
                        lower[k],
                        upper[k]
                    ),
                )
                .with_primary_at(span, "no value satisfies this")
                .with_label_at(model.program.input(p.var).span, "with the bounds declared here")
                .with_hint("the variable's declared bounds and its `in` sets must overlap"));
            }
        }
    }
    Ok((lower, upper))
}

/// What a solve produced.
pub struct Outcome {
    pub report: Report,
    /// An evaluation error met during the solve (the solver then stopped or backed off).
    pub error: Option<Diagnostic>,
    /// What the method reports beyond the report.
    pub details: Details,
}

/// What a method reports beyond its [`Report`].
#[derive(Clone, Debug, Default)]
pub enum Details {
    #[default]
    None,
    /// `dual`: the dual value, a lower bound on the optimal objective.
    Dual { bound: f64 },
    /// `auglag`, and `fista` with norm balls: the final multipliers of the comparison
    /// constraints (`==`, `<=`, `>=`), by constraint index, shaped as the constraint (its `for`
    /// ranges first).
    Multipliers {
        multipliers: Vec<(usize, ndarray::ArrayD<f64>)>,
    },
    /// `maid`: the strong-convexity constant used and the accuracy trail.
    Maid {
        mu: f64,
        trail: Vec<solvers::AccuracyStep>,
    },
}

impl Details {
    /// The final multipliers of constraint `index`.
    pub fn multipliers(&self, index: usize) -> Option<&ndarray::ArrayD<f64>> {
        match self {
            Details::Multipliers { multipliers } => multipliers
                .iter()
                .find(|(i, _)| *i == index)
                .map(|(_, a)| a),
            _ => None,
        }
    }

    /// The dual bound of a `dual` solve.
    pub fn dual_bound(&self) -> Option<f64> {
        match self {
            Details::Dual { bound } => Some(*bound),
            _ => None,
        }
    }
}

/// Runs the plan from the model's current variables; leaves the model at the returned point.
pub fn solve(model: &mut Model, plan: &Plan, callback: Callback) -> Result<Outcome, Diagnostic> {
    let x0 = model.x();
    let mut outcome = solve_by_method(model, plan, callback)?;
    let failed = matches!(
        outcome.report.status,
        solvers::Status::Diverged | solvers::Status::LineSearchFailed
    );
    if failed && outcome.error.is_none() {
        outcome.error = objective_trouble(model, &outcome.report);
    }
    if outcome.error.is_none() && short_of_a_minimum(plan, &outcome.report) {
        outcome.error = falls_along_a_ray(model, &x0, &outcome.report);
        model.set_x(&outcome.report.x);
    }
    if outcome.error.as_ref().is_some_and(|e| e.code == "E0368") {
        outcome.report.status = solvers::Status::Diverged;
    }
    Ok(stalled_at_kinks(plan, outcome))
}

/// Whether a solve ended without showing a minimum: stopped by its iteration limit, a failed
/// line search or a negligible decrease, with its optimality above the tolerance.
fn short_of_a_minimum(plan: &Plan, report: &Report) -> bool {
    use solvers::Status;
    match report.status {
        Status::MaxIter | Status::LineSearchFailed | Status::Stalled => true,
        Status::Converged => stopping_tolerance(plan).is_some_and(|tol| report.optimality > tol),
        Status::Diverged | Status::Infeasible | Status::Interrupted => false,
    }
}

/// How far iterates must have grown (times the start's scale, at least 1) before a solve short
/// of a minimum is probed for a ray along which the objective falls without bound.
const RAY_PROBE_GROWTH: f64 = 1e6;

/// E0368 when the iterates ran far (by [`RAY_PROBE_GROWTH`]) and the objective falls at least
/// linearly along the way they went, within the bounds and without more constraint violation,
/// out to [`solvers::DIVERGING`]: iterates that grow linearly (steps of constant length along a
/// direction without curvature) take too long to reach the iterate test of the solvers. The ray
/// is the point reached plus multiples of the components that moved most (within 10⁻³ of the
/// largest move), so that components held by constraints stay put. A problem bounded below
/// fails the test: along any ray its objective cannot keep falling linearly.
fn falls_along_a_ray(model: &mut Model, x0: &[f64], report: &Report) -> Option<Diagnostic> {
    let x = &report.x;
    let norm = |v: &[f64]| v.iter().fold(0.0f64, |m, a| m.max(a.abs()));
    let scale = norm(x);
    if !(scale >= RAY_PROBE_GROWTH * norm(x0).max(1.0)) {
        return None;
    }
    let moved: Vec<f64> = x.iter().zip(x0).map(|(a, b)| a - b).collect();
    let largest = norm(&moved);
    let direction: Vec<f64> = moved
        .iter()
        .map(|m| match m.abs() >= 1e-3 * largest {
            true => m * scale / largest,
            false => 0.0,
        })
        .collect();
    let objective = model.program.minimized_objective()?;
    let b = bounds(model).ok()?;
    let merit = |model: &mut Model, t: f64| -> Option<(f64, f64)> {
        let point: Vec<f64> = x.iter().zip(&direction).map(|(a, d)| a + t * d).collect();
        let inside = point
            .iter()
            .zip(b.lower().iter().zip(b.upper()))
            .all(|(v, (lo, hi))| lo <= v && v <= hi);
        if !inside {
            return None;
        }
        model.set_x(&point);
        let value = model
            .eval_scalar(objective)
            .ok()
            .filter(|v| v.is_finite())?;
        let mut violation = 0.0f64;
        for i in 0..model.program.constraints.len() {
            violation = violation.max(model.violation(i).ok()?);
        }
        Some((value, violation))
    };
    let (start, violation) = merit(model, 0.0)?;
    let allowed = violation.max(1e-6) * 10.0;
    let (first, _) = merit(model, 1.0).filter(|m| m.1 <= allowed)?;
    let rate = (start - first) / 2.0;
    if !(rate > 0.0) {
        return None;
    }
    let mut t = 1.0;
    let mut value = first;
    while scale * (1.0 + t) < solvers::DIVERGING {
        t *= 10.0;
        let (v, violation) = merit(model, t)?;
        if violation > allowed || v > start - rate * t {
            return None;
        }
        value = v;
    }
    let far = scale * (1.0 + t);
    unbounded_error(model, value, |value, _, goes| {
        format!(
            "the iterates reached {scale:.1e}, and further along their direction the objective \
             {goes} linearly, to {value:.3e} at {far:.1e}"
        )
    })
}

/// E0368 when a solve ended with finite values but iterates beyond
/// [`solvers::DIVERGING`]: the objective falls (rises, maximized) without bound along them.
fn unbounded(model: &Model, report: &Report) -> Option<Diagnostic> {
    let largest = report.x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    (largest > solvers::DIVERGING).then(|| {
        unbounded_error(model, report.value, |value, went, _| {
            format!("the iterates grew to {largest:.1e} while the objective {went} to {value:.3e}")
        })
    })?
}

/// E0368 with the evidence `evidence` tells, given the objective's value as written (from
/// `minimized`, the minimized objective's) and the verbs of its sense ("fell", "falls").
fn unbounded_error(
    model: &Model,
    minimized: f64,
    evidence: impl Fn(f64, &str, &str) -> String,
) -> Option<Diagnostic> {
    let objective = model.program.objective.as_ref()?;
    let span = model.program.node_span(objective.node);
    let (bound, went, goes, value) = match objective.sense {
        Sense::Minimize => ("below", "fell", "falls", minimized),
        Sense::Maximize => ("above", "rose", "rises", -minimized),
    };
    Some(
        Diagnostic::error(
            "E0368",
            format!("the problem looks unbounded {bound}: {}", evidence(value, went, goes)),
        )
        .with_primary_at(span, format!("{goes} without bound"))
        .with_hint("bound the variables, add a term that grows with them (a regularizer), or check the objective's sign (`minimize` or `maximize`)"),
    )
}

/// `outcome` with status [`solvers::Status::Stalled`] instead of `Converged` when the method
/// differentiates kinks (the plan warned E0365) and the solve stopped with its optimality above
/// the tolerance: a decrease too small to go on, near a kink, is no sign of a minimum there.
/// (`auglag`'s optimality is that of its last inner solve, against the inner tolerance.)
fn stalled_at_kinks(plan: &Plan, mut outcome: Outcome) -> Outcome {
    let warned = plan.warnings.iter().any(|w| w.code == "E0365");
    if warned && outcome.report.status == solvers::Status::Converged {
        let tol = stopping_tolerance(plan).unwrap_or(f64::INFINITY);
        if outcome.report.optimality > tol {
            outcome.report.status = solvers::Status::Stalled;
        }
    }
    outcome
}

/// Why a solve stopped short, for a note: a path whose end point violates its constraint
/// beyond its `h_tol` (`path_short_of_feasible`); a solve that `converged` short of its
/// tolerance, as L-BFGS (also as `auglag`'s inner solver) also stops on a negligible relative
/// decrease (`ftol`), which leaves its optimality above `tol`, and `auglag` with proximal
/// subproblems stops on its violation test alone. `None` when the optimality met the
/// tolerance, for other statuses, and for a status the plan changed to `stalled`.
pub fn stopped_short_note(plan: &Plan, report: &Report) -> Option<String> {
    if plan.method == Method::Path {
        return path_short_of_feasible(plan, report);
    }
    let tol = stopping_tolerance(plan)?;
    if report.status != solvers::Status::Converged || !(report.optimality > tol) {
        return None;
    }
    let ftol = match plan.method {
        Method::Lbfgs | Method::ProjectedLbfgs => lbfgs_options(plan, &plan.options).ok()?.ftol,
        Method::AugLag if !plan.auglag_by_prox() => {
            let (_, inner) = split_auglag_options(plan, false).ok()?;
            lbfgs_options(plan, &inner).ok()?.ftol
        }
        // Its subproblems by proximal gradient, projecting onto a `card` or a ball: the point
        // meets the constraints, but the last subproblem was far from solved (with a `card`, a
        // nonconvex set, it seldom quite meets `tol`).
        Method::AugLag if report.optimality > 100.0 * tol => {
            return Some(format!(
                "the constraints are met, but the last proximal-gradient subproblem ended with \
                 the optimality {:.3e} above `tol` = {tol:e}: the point may not be the best one \
                 (with `card`, not even on its own support); a larger `max_iter` for the \
                 subproblems may lower it",
                report.optimality
            ))
        }
        _ => return None,
    };
    Some(match ftol > 0.0 {
        true => format!(
            "the objective stopped decreasing measurably (a relative decrease below `ftol` = \
             {ftol:e}) with the optimality {:.3e} still above `tol` = {tol:e}; `ftol = 0` in \
             `solve with` iterates on to `tol` or the iteration limit",
            report.optimality
        ),
        false => format!(
            "an iteration did not decrease the objective, with the optimality {:.3e} still above \
             `tol` = {tol:e}: the objective is as low as floating point resolves along the \
             method's steps",
            report.optimality
        ),
    })
}

/// Why a path ended short (`iteration_limit`) with its constraint violated beyond the path's
/// `h_tol`: the stages' own tests said nothing about feasibility.
fn path_short_of_feasible(plan: &Plan, report: &Report) -> Option<String> {
    let opts = path_options(plan, path_kind(plan).ok()?.defaults(Bounds::unbounded(0))).ok()?;
    (report.status == solvers::Status::MaxIter && report.violation > opts.h_tol).then(|| {
        format!(
            "the path ended with its constraint violated by {:.3e}, above its `h_tol` = {:e}: \
             more `stages`, or a smaller final mu (`decay`), drive it towards 0",
            report.violation, opts.h_tol
        )
    })
}

/// The tolerance the plan's method compares its optimality with (for `auglag`, its inner
/// solver's; `adam`'s `gtol`, `maid`'s `tol`); `None` for the path (whose stages stop
/// otherwise) and the dual (whose tolerance scales with the marginals).
pub fn stopping_tolerance(plan: &Plan) -> Option<f64> {
    match plan.method {
        Method::Lbfgs | Method::ProjectedLbfgs => {
            Some(lbfgs_options(plan, &plan.options).ok()?.gtol)
        }
        Method::ProxGrad => Some(ProxGradOptions::from_options(&plan.options).ok()?.tol),
        Method::AugLag => {
            let by_prox = plan.auglag_by_prox();
            let (_, inner) = split_auglag_options(plan, by_prox).ok()?;
            Some(match by_prox {
                true => ProxGradOptions::from_options(&inner).ok()?.tol,
                false => lbfgs_options(plan, &inner).ok()?.gtol,
            })
        }
        Method::Adam => Some(AdamOptions::from_options(&plan.options).ok()?.gtol),
        Method::Maid => Some(solvers::MaidOptions::from_options(&plan.options).ok()?.tol),
        Method::Path | Method::Dual => None,
    }
}

/// Why a solve could not go on at its last point, if the objective says: E0409 at the first
/// expression whose value is not finite, when the objective or a constraint is not; E0368 when the iterates
/// ran off ([`unbounded`]); E0409 again for a gradient that is not finite; E0375 when the
/// gradient is finite but too large for the solvers' arithmetic (its squared norm overflows).
fn objective_trouble(model: &mut Model, report: &Report) -> Option<Diagnostic> {
    let objective = model.program.minimized_objective()?;
    model.set_x(&report.x);
    let not_finite = |program: &Program, what: &str, e: EvalError| {
        let d = e.diagnostic(program);
        let d = Diagnostic {
            message: format!("the {what} is not finite: {}", d.message),
            ..d
        };
        d.with_hint(
            "the objective, the constraints and their gradients must be finite where the solver \
             starts and along its steps: check the data, the initial values (`var x : real[n] = ...`) and the domains of \
             functions such as `log` and `sqrt`",
        )
    };
    if let Some(e) = model.first_non_finite(&[objective]) {
        return Some(not_finite(&model.program, "objective", e));
    }
    for i in 0..model.program.constraints.len() {
        if let Some(e) = model.constraint_non_finite(i) {
            let what = format!("constraint `{}`", model.program.constraints[i].name);
            return Some(not_finite(&model.program, &what, e));
        }
    }
    if let Some(d) = unbounded(model, report) {
        return Some(d);
    }
    let vars: Vec<InputId> = model.vars.iter().map(|v| v.input).collect();
    let grads = autodiff::gradient(&mut model.program, objective, &vars).ok()?;
    if let Some(e) = model.first_non_finite(&grads) {
        return Some(not_finite(&model.program, "gradient of the objective", e));
    }
    let values = model.eval_ref(&grads).ok()?;
    let squares: f64 = values.iter().flatten().map(|g| g * g).sum();
    let largest = values.iter().flatten().fold(0.0f64, |m, g| m.max(g.abs()));
    let span = model
        .program
        .node_span(model.program.objective.as_ref()?.node);
    squares.is_infinite().then(|| {
        Diagnostic::error(
            "E0375",
            format!(
                "the gradient is too large for the solver: an entry of {largest:.1e} makes its squared norm overflow"
            ),
        )
        .with_primary_at(span, "its gradient overflows here")
        .with_hint(
            "rescale the problem so that gradients stay far below 1e150: divide the objective by a \
             constant, or express the data and variables in units that keep them moderate",
        )
    })
}

fn solve_by_method(
    model: &mut Model,
    plan: &Plan,
    callback: Callback,
) -> Result<Outcome, Diagnostic> {
    let objective = minimized_objective(&mut model.program)?;
    let x0 = model.x();
    let n = x0.len();
    let mut error = None;
    let report = match plan.method {
        Method::Lbfgs | Method::ProjectedLbfgs | Method::Adam => {
            let merit = simplified_merit(model, plan, objective)?;
            let b = bounds(model)?;
            let mut problem = FnProblem::new(n, |x: &[f64], g: &mut [f64]| {
                eval_merit(model, &merit, x, g, &mut error)
            });
            solve_smooth(plan, &mut problem, &x0, &b, callback)?
        }
        Method::ProxGrad => {
            let (smooth, mut l1, slot_terms) =
                smooth_part(model, &plan.structure, objective, ProxScope::All)?;
            let sets = prox_sets(model, plan, &mut l1)?;
            let opts =
                ProxGradOptions::from_options(&plan.options).map_err(|e| plan.option_error(e))?;
            let merit = simplified_merit(model, plan, smooth)?;
            let mut problem = FnProblem::new(n, |x: &[f64], g: &mut [f64]| {
                eval_merit(model, &merit, x, g, &mut error)
            });
            let prox = ProxParts {
                l1: &l1,
                slot_terms: &slot_terms,
                bounds: &sets.bounds,
                projections: &sets.projections,
                symmetric: &sets.symmetric,
            };
            let staged = run_prox_grad(&mut problem, &opts, &prox, &x0, callback);
            let report = search_fista_supports(&mut problem, &opts, prox, staged, callback);
            let mut multipliers = Vec::new();
            if plan.projections.iter().any(|p| p.ball.is_some()) {
                let mut g = vec![0.0; n];
                problem.value_grad(&report.x, &mut g);
                let reduced = reduced_gradient(&g, &l1, &report.x);
                multipliers = ball_multipliers(model, plan, &sets.projections, &report.x, &reduced);
            }
            model.set_x(&report.x);
            return Ok(Outcome {
                report,
                error,
                details: match multipliers.is_empty() {
                    true => Details::None,
                    false => Details::Multipliers { multipliers },
                },
            });
        }
        Method::AugLag => {
            // L1 terms are handled by the prox of proximal gradient, or for L-BFGS as in
            // NOTEARS: x = p − q with p, q ≥ 0 and ‖x‖₁ = Σ(p + q).
            let by_prox = plan.auglag_by_prox();
            let scope = if by_prox {
                ProxScope::All
            } else {
                ProxScope::L1
            };
            let (smooth, mut l1, slot_terms) =
                smooth_part(model, &plan.structure, objective, scope)?;
            // Before `finalize`, which may rewrite the constraints' nodes.
            let sets = match by_prox {
                true => prox_sets(model, plan, &mut l1)?,
                false => ProxSets {
                    bounds: auglag_bounds(model, plan)?,
                    projections: Vec::new(),
                    symmetric: Vec::new(),
                },
            };
            let vars: Vec<InputId> = model.vars.iter().map(|v| v.input).collect();
            let dims = model.bindings.dims.clone();
            let functions = auglag_functions(&mut model.program, &vars, plan, smooth, &dims)?;
            model.bind_added_params();
            // Each instance's multipliers input with its shape at these dims.
            let multipliers = functions
                .instances
                .iter()
                .map(|(node, m)| {
                    let shape = model.program.graph.shape(*node);
                    let shape = shape
                        .iter()
                        .map(|d| d.eval(&dims).max(0) as usize)
                        .collect();
                    (InputId(m.input), shape)
                })
                .collect();
            let roots = finalize(model, plan, functions.roots())?;
            let inner = match by_prox {
                true => AuglagInner::Prox(ProxParts {
                    l1: &l1,
                    slot_terms: &slot_terms,
                    bounds: &sets.bounds,
                    projections: &sets.projections,
                    symmetric: &sets.symmetric,
                }),
                false => AuglagInner::Lbfgs {
                    l1,
                    bounds: sets.bounds,
                },
            };
            let instances: Vec<Multipliers> =
                functions.instances.iter().map(|(_, m)| m.clone()).collect();
            let mut problem = ModelConstrained {
                model,
                roots,
                num_grads: vars.len(),
                relations: functions.relations(),
                multipliers,
                rho: functions.rho,
                error: &mut error,
            };
            let solution = run_auglag(&mut problem, plan, inner, &x0, callback)?;
            let multipliers =
                constraint_multipliers(model, plan, &sets.projections, &instances, &solution)?;
            model.set_x(&solution.report.x);
            return Ok(Outcome {
                report: solution.report,
                error,
                details: Details::Multipliers { multipliers },
            });
        }
        Method::Path => path(model, plan, objective, &x0, callback, &mut error)?,
        Method::Maid => return crate::bilevel::solve_maid(model, plan, callback),
        Method::Dual => {
            let form = plan
                .transport
                .as_ref()
                .expect("a dual plan has its transport form");
            let solve = crate::transport::solve_dual(model, plan, form, callback)?;
            // The dual's plan may miss the marginals: with `card` where its restricted repair
            // fails, without where its line search stops short (a small γ makes the dual
            // nearly piecewise linear). The primal method finds a feasible plan.
            let missed =
                solve.report.status != solvers::Status::Converged && solve.report.violation > 1e-6;
            let error = missed.then(|| {
                let why = match form.sparsity {
                    Some(_) => "its relaxation of `card` and the repair on its support found no feasible plan",
                    None => "its line search stopped short of the dual's maximum (a small `gamma` makes the dual nearly piecewise linear)",
                };
                Diagnostic::warning(
                    "E0369",
                    format!(
                        "the dual's plan misses the marginals by {:.3e} (the 2-norm of the row and column residuals): {why}",
                        solve.report.violation
                    ),
                )
                .with_primary_at(plan.solve.as_ref().and_then(|s| s.spans.method), "the dual")
                .with_hint("`solve with auglag` (or `--method auglag`) solves the primal and finds a feasible plan; the dual bound printed still bounds its objective from below")
            });
            return Ok(Outcome {
                report: solve.report,
                error,
                details: Details::Dual { bound: solve.bound },
            });
        }
    };
    model.set_x(&report.x);
    Ok(Outcome {
        report,
        error,
        details: Details::None,
    })
}

/// What the proximal step of `fista` applies, in order: the symmetric sets' projections, the TV
/// terms' prox, soft-thresholding by the L1 weights and clamping to the bounds, the group and
/// nuclear terms' prox, the other set projections. (Each order is the exact prox of the sum:
/// soft-thresholding after TV is the fused lasso's prox, and clamping after it that of TV with
/// scalar bounds; a group norm's shrinkage after soft-thresholding is the sparse group lasso's.)
#[derive(Clone, Copy)]
struct ProxParts<'a> {
    l1: &'a [f64],
    slot_terms: &'a [SlotProx],
    bounds: &'a Bounds,
    projections: &'a [prox::SlotProjection],
    symmetric: &'a [prox::SymmetricSlot],
}

impl ProxParts<'_> {
    /// The value of the L1 and slot terms at x (the bounds' and sets' indicators, 0 on their
    /// points, are left out).
    fn value(&self, x: &[f64]) -> f64 {
        let l1_part: f64 = x.iter().zip(self.l1).map(|(v, w)| w * v.abs()).sum();
        l1_part + self.slot_terms.iter().map(|t| t.value(x)).sum::<f64>()
    }
}

/// Iterations of each stage of [`run_prox_grad`] but the last.
const CARD_STAGE_ITERATIONS: usize = 100;

/// Proximal gradient with the plan's options on `smooth` plus the prox parts from `x0`. With
/// `card` constraints (unless `continuation = false`), in stages: each bound k starts at its
/// lines' length (no constraint) and drops by a tenth, by 1 at least, per stage until it is k;
/// each stage starts from the last one's point and runs at most [`CARD_STAGE_ITERATIONS`], the
/// last to the options' stopping rule. Projecting onto k entries from the start keeps the
/// support of the first point wherever the weights outweigh a gradient step (iterative hard
/// thresholding from the simplex's uniform point never moves).
fn run_prox_grad(
    smooth: &mut dyn Problem,
    opts: &ProxGradOptions,
    parts: &ProxParts,
    x0: &[f64],
    callback: Callback,
) -> Report {
    let targets: Vec<Option<usize>> = parts
        .projections
        .iter()
        .map(|p| p.set.card_bound())
        .collect();
    let mut bounds: Vec<Option<usize>> = (parts.projections.iter().zip(&targets))
        .map(|(p, k)| {
            // A bound of 0 has one point, 0: no stages lead to it.
            k.map(|k| {
                if opts.continuation && k > 0 {
                    p.line_len().max(k)
                } else {
                    k
                }
            })
        })
        .collect();
    let (mut x, mut iterations) = (x0.to_vec(), 0);
    loop {
        let last = bounds == targets;
        let stage: Vec<prox::SlotProjection> = (parts.projections.iter().zip(&bounds))
            .map(|(p, k)| prox::SlotProjection {
                set: k.map_or(p.set.clone(), |k| p.set.with_card_bound(k)),
                ..p.clone()
            })
            .collect();
        let mut reg = prox_regularizer(&ProxParts {
            projections: &stage,
            ..*parts
        });
        let stage_opts = ProxGradOptions {
            max_iter: match last {
                true => opts.max_iter,
                false => opts.max_iter.min(CARD_STAGE_ITERATIONS),
            },
            ..opts.clone()
        };
        let offset = iterations;
        let mut report = proximal_gradient(
            smooth,
            &mut reg,
            &x,
            &stage_opts,
            &mut |info: &solvers::IterInfo| {
                callback(&solvers::IterInfo {
                    iter: info.iter + offset,
                    ..*info
                })
            },
        );
        iterations += report.iterations;
        report.iterations = iterations;
        let stage_ended = matches!(
            report.status,
            solvers::Status::Converged | solvers::Status::MaxIter
        );
        if last || !stage_ended {
            return report;
        }
        x = report.x;
        for (k, target) in bounds.iter_mut().zip(&targets) {
            if let (Some(k), Some(target)) = (k.as_mut(), target) {
                *k = (*target).max((*k - 1).min(*k * 9 / 10));
            }
        }
    }
}

/// Whether the local search over `card` supports ([`swaps`]) applies after a staged solve with
/// these projections and options that ended with `report`. A staged support that cannot meet
/// the other constraints (`auglag` ending `Infeasible` on it) is searched too: another support
/// may.
fn searches_supports(
    projections: &[prox::SlotProjection],
    opts: &ProxGradOptions,
    report: &Report,
) -> bool {
    opts.swaps > 0
        && matches!(
            report.status,
            solvers::Status::Converged | solvers::Status::MaxIter | solvers::Status::Infeasible
        )
        && projections
            .iter()
            .any(|p| p.set.card_bound().is_some() && p.lines.is_none())
}

/// The options of a solve restricted to a support: no stages (the support fixes the entries).
fn restricted_options(opts: &ProxGradOptions) -> ProxGradOptions {
    ProxGradOptions {
        continuation: false,
        ..opts.clone()
    }
}

/// The local search over `card` supports ([`swaps`]) after `fista`'s `staged` solve of `smooth`
/// plus the prox parts.
fn search_fista_supports(
    smooth: &mut dyn Problem,
    opts: &ProxGradOptions,
    parts: ProxParts,
    staged: Report,
    callback: Callback,
) -> Report {
    if !searches_supports(parts.projections, opts, &staged) {
        return staged;
    }
    struct Fista<'a, 'p> {
        smooth: &'a mut dyn Problem,
        opts: ProxGradOptions,
        parts: ProxParts<'p>,
    }
    impl swaps::SupportSolver<()> for Fista<'_, '_> {
        fn gradient(&mut self, solution: &(Report, ())) -> Vec<f64> {
            let mut g = vec![0.0; solution.0.x.len()];
            self.smooth.value_grad(&solution.0.x, &mut g);
            g
        }
        fn solve(
            &mut self,
            projections: &[prox::SlotProjection],
            start: &[f64],
            _: &(),
        ) -> (Report, ()) {
            let parts = ProxParts {
                projections,
                ..self.parts
            };
            let silent = &mut |_: &solvers::IterInfo| solvers::Control::Continue;
            (
                run_prox_grad(self.smooth, &self.opts, &parts, start, silent),
                (),
            )
        }
        fn better(&self, candidate: &Report, best: &Report) -> bool {
            swaps::lower_value(candidate, best)
        }
    }
    let mut fista = Fista {
        smooth,
        opts: restricted_options(opts),
        parts,
    };
    let rounds = opts.swaps;
    swaps::search_supports(
        &mut fista,
        parts.projections,
        (staged, ()),
        rounds,
        callback,
    )
    .0
}

/// The bounds and set projections of the plan's proximal step on the model's flat vector. The
/// elementwise sets (`nonneg`, `box`) join the declared bounds; per variable at most one
/// simplex and one `card` remain to project onto, each exact with what comes before it:
/// soft-thresholding by the L1 weights (on the simplex the L1 norm is constant, so its weights
/// are dropped from `l1`), then clamping to the bounds, then keeping the `k` entries whose prox
/// gains most over 0 ([`prox::Set::Card`]), or projecting the `k` largest onto the simplex
/// (Kyrillidis et al. 2013). A `symmetric` variable is symmetrized before all that
/// ([`prox::SymmetricSlot`]), exact when its L1 weights and bounds are symmetric and its other
/// set, if any, is a norm ball. Refused (E0360): a group or nuclear norm on a projected
/// variable, a second simplex or `card`, bounds or a `box` with the simplex, a `card` whose
/// bounds exclude 0, a simplex and a `card` over different lines, and a symmetric variable with
/// asymmetric L1 weights or bounds, a simplex or a `card`.
fn prox_sets(model: &mut Model, plan: &Plan, l1: &mut [f64]) -> Result<ProxSets, Diagnostic> {
    let (lower, upper) = bounds_with_sets(model, plan, false)?;
    let mut out: Vec<(InputId, prox::SlotProjection)> = Vec::new();
    let mut symmetric: Vec<(InputId, prox::SymmetricSlot, usize)> = Vec::new();
    for p in &plan.projections {
        let c = model.program.constraints[p.constraint].clone();
        let slot = model.slot(p.var).clone();
        let refuse = |why: String| {
            plan_error("E0360", format!("constraint `{}`: {why}", c.name))
                .with_primary_at(c.span, "cannot be projected onto")
        };
        // Bounds (`nonneg`, `box`) clamp after TV's prox, which is exact.
        let bounds_only = matches!(
            c.kind,
            ConstraintKind::In(SetKind::Nonneg | SetKind::Box { .. })
        );
        if plan.structure.prox.iter().any(|t| {
            t.var == p.var && t.kind != ProxKind::L1 && !(t.kind == ProxKind::Tv && bounds_only)
        }) {
            return Err(refuse(format!(
                "`{}` also has a group norm, nuclear norm or total variation, whose prox does not compose with this projection",
                slot.name
            )));
        }
        let entries = slot.offset..slot.offset + slot.len();
        let set = match &c.kind {
            ConstraintKind::In(SetKind::Nonneg | SetKind::Box { .. }) => continue,
            ConstraintKind::In(SetKind::Symmetric) => {
                let square = prox::SymmetricSlot {
                    offset: slot.offset,
                    n: slot.shape[0],
                };
                let asymmetric = [
                    (&*l1, "L1 weights"),
                    (&lower, "lower bounds"),
                    (&upper, "upper bounds"),
                ]
                .into_iter()
                .find(|(w, _)| !square.is_symmetric(w));
                if let Some((_, what)) = asymmetric {
                    return Err(refuse(format!(
                        "the {what} of `{}` are not symmetric, so the prox of its terms on the symmetric matrices is not a projection followed by their prox",
                        slot.name
                    ))
                    .with_hint("use symmetric weights and bounds, or write the constraint as `X == transpose(X)` for the augmented Lagrangian"));
                }
                symmetric.push((p.var, square, p.constraint));
                continue;
            }
            ConstraintKind::In(SetKind::Simplex) => {
                if entries
                    .clone()
                    .any(|k| lower[k] > f64::NEG_INFINITY || upper[k] < f64::INFINITY)
                {
                    return Err(refuse(format!(
                        "the simplex implies `{} >= 0`: drop the variable's declared bound or other set",
                        slot.name
                    )));
                }
                l1[entries].fill(0.0);
                prox::Set::Simplex
            }
            ConstraintKind::Card { bound } => {
                let k = model.eval_scalar(*bound).map_err(Diagnostic::from)?;
                if !(k >= 0.0 && k.fract() == 0.0) {
                    return Err(plan_error(
                        "E0362",
                        format!(
                            "the bound of `{}` must be a nonnegative integer, not {k}",
                            c.name
                        ),
                    )
                    .with_primary_at(c.span, "not a nonnegative integer bound"));
                }
                if let Some(k) = entries.clone().find(|&k| lower[k] > 0.0 || upper[k] < 0.0) {
                    return Err(refuse(format!(
                        "`card` needs each entry of `{}` free to be 0, and its bounds keep entry {} in [{}, {}]",
                        slot.name,
                        k - slot.offset,
                        lower[k],
                        upper[k]
                    )));
                }
                prox::Set::Card(k as usize)
            }
            ConstraintKind::Le => {
                let ball = p.ball.expect("a `<=` projection is a norm ball");
                let bound = structure::ball_bound(&model.program, &c)
                    .expect("prox_sets runs on the program as lowered");
                let r = model.eval_scalar(bound).map_err(Diagnostic::from)?;
                if !(r >= 0.0) {
                    return Err(plan_error(
                        "E0360",
                        format!(
                            "constraint `{}` leaves no value for `{}`: the bound {r} is negative",
                            c.name, slot.name
                        ),
                    )
                    .with_primary_at(c.span, "no value satisfies this")
                    .with_hint("a norm is never negative: the bound must be 0 or more"));
                }
                let radius = if ball.squared { r.sqrt() } else { r };
                // Projected after clamping with `>= 0` bounds (or none); with other bounds equal
                // for every entry, from the point before clamping.
                let first = slot.offset;
                let plain = entries.clone().all(|k| {
                    (lower[k] == 0.0 || lower[k] == f64::NEG_INFINITY) && upper[k] == f64::INFINITY
                });
                let within = match plain {
                    true => None,
                    false => Some((lower[first], upper[first])),
                };
                if let Some(k) = entries
                    .clone()
                    .find(|&k| within.is_some_and(|b| (lower[k], upper[k]) != b))
                {
                    return Err(refuse(format!(
                        "a norm ball is projected onto exactly together with bounds equal for every entry only, and the bounds of `{}` keep entry {} in [{}, {}] but entry 0 in [{}, {}]",
                        slot.name,
                        k - slot.offset,
                        lower[k],
                        upper[k],
                        lower[first],
                        upper[first]
                    )));
                }
                if let Some((lo, hi)) = within {
                    // The point of the bounds nearest 0, in each entry of a line, must fit.
                    let nearest = 0.0f64.clamp(lo, hi).abs();
                    let line = match (p.lines, slot.shape.as_slice()) {
                        (Some(0), &[_, cols]) => cols,
                        (Some(1), &[rows, _]) => rows,
                        _ => slot.len(),
                    } as f64;
                    let least = match ball.norm {
                        BallNorm::L1 => line * nearest,
                        BallNorm::L2 => line.sqrt() * nearest,
                    };
                    if least > radius {
                        return Err(refuse(format!(
                            "the bounds [{lo}, {hi}] of `{}` leave no point within the norm ball: its least norm there is {least}, above {radius}",
                            slot.name
                        )));
                    }
                }
                match ball.norm {
                    BallNorm::L1 => prox::Set::L1Ball(radius, within),
                    BallNorm::L2 => prox::Set::L2Ball(radius, within),
                }
            }
            ConstraintKind::Eq => {
                unreachable!("projections are of `in`, `card` and `<=` constraints")
            }
        };
        let projection = prox::SlotProjection {
            set,
            offset: slot.offset,
            shape: slot.shape.clone(),
            lines: p.lines,
            support: None,
        };
        match out.iter_mut().find(|(v, _)| *v == p.var) {
            None => out.push((p.var, projection)),
            Some((_, other)) => {
                let k = match (&other.set, &projection.set) {
                    (prox::Set::Simplex, prox::Set::Card(k))
                    | (prox::Set::Card(k), prox::Set::Simplex) => *k,
                    _ => {
                        return Err(refuse(format!(
                            "`{}` already has a constraint projected onto; proximal gradient projects a variable onto one set (a simplex, a norm ball or a `card`), or onto a simplex and a `card`",
                            slot.name
                        )))
                    }
                };
                if other.lines != projection.lines {
                    return Err(refuse(format!(
                        "the simplex and the `card` of `{}` must apply to the same lines (the whole variable, or each of its rows or columns)",
                        slot.name
                    )));
                }
                if k == 0 {
                    return Err(refuse(format!(
                        "no point of the simplex has at most 0 nonzeros (`{}`)",
                        slot.name
                    )));
                }
                other.set = prox::Set::SparseSimplex(k);
            }
        }
    }
    if let Some((c, name)) = symmetric.iter().find_map(|&(var, _, c)| {
        let other = out.iter().find(|(v, _)| *v == var)?;
        let ball = matches!(other.1.set, prox::Set::L1Ball(..) | prox::Set::L2Ball(..));
        (!ball || other.1.lines.is_some()).then(|| (c, model.slot(var).name.clone()))
    }) {
        let c = &model.program.constraints[c];
        return Err(plan_error(
            "E0360",
            format!("constraint `{}`: a symmetric `{name}` is projected onto together with a norm ball of the whole matrix only, not a simplex, a `card` or sets of its lines", c.name),
        )
        .with_primary_at(c.span, "cannot be projected onto with the other set"));
    }
    let bounds = Bounds::new(lower, upper).map_err(|m| plan_error("E0362", m))?;
    Ok(ProxSets {
        bounds,
        projections: out.into_iter().map(|(_, p)| p).collect(),
        symmetric: symmetric.into_iter().map(|(_, s, _)| s).collect(),
    })
}

/// The bounds, set projections and symmetric slots of a proximal step ([`prox_sets`]).
struct ProxSets {
    bounds: Bounds,
    projections: Vec<prox::SlotProjection>,
    symmetric: Vec<prox::SymmetricSlot>,
}

/// The prox parts as a regularizer, in the order of [`ProxParts`]: the symmetric slots are
/// symmetrized and TV's prox taken first; the bounds are projected on after soft-thresholding
/// (their exact prox: bounded variables have only L1 and TV terms), the sets last (see
/// [`prox_sets`] for when that is exact), a `card` keeping the entries of largest gain
/// ½v² − h(p) with h(z) = ½(z − v)² + t|z|, p = clamp(soft(v, t)): what each kept entry saves
/// over 0.
fn prox_regularizer<'a>(parts: &ProxParts<'a>) -> impl Regularizer + 'a {
    let parts = *parts;
    let ProxParts {
        l1,
        slot_terms,
        bounds,
        projections,
        symmetric,
    } = parts;
    let (lower, upper) = (bounds.lower(), bounds.upper());
    // The projections' keys (a `card`'s gains, a bounded ball's point before clamping), on
    // their slots only (the simplex's projection reads none).
    let keyed: Vec<(prox::Key, std::ops::Range<usize>)> = projections
        .iter()
        .map(|p| {
            (
                p.set.key(),
                p.offset..p.offset + p.shape.iter().product::<usize>(),
            )
        })
        .filter(|(key, _)| *key != prox::Key::None)
        .collect();
    let mut keys = vec![0.0; if projections.is_empty() { 0 } else { l1.len() }];
    let (tv_terms, later_terms): (Vec<&SlotProx>, Vec<&SlotProx>) =
        slot_terms.iter().partition(|t| t.kind == ProxKind::Tv);
    // The point symmetrized and through TV's prox where that applies (else the point itself).
    let prepares = !symmetric.is_empty() || !tv_terms.is_empty();
    let mut prepared = vec![0.0; if prepares { l1.len() } else { 0 }];
    FnRegularizer {
        prox: move |v: &[f64], step: f64, out: &mut [f64]| {
            let v = if prepares {
                prepared.copy_from_slice(v);
                symmetric.iter().for_each(|s| s.symmetrize(&mut prepared));
                tv_terms.iter().for_each(|t| t.prox(&mut prepared, step));
                &prepared
            } else {
                v
            };
            for i in 0..v.len() {
                out[i] = prox::shrink(v[i], step * l1[i]).clamp(lower[i], upper[i]);
            }
            for (key, entries) in &keyed {
                for i in entries.clone() {
                    keys[i] = match key {
                        prox::Key::Gain => {
                            let p = out[i];
                            p * (v[i] - 0.5 * p) - step * l1[i] * p.abs()
                        }
                        prox::Key::Unclamped => prox::shrink(v[i], step * l1[i]),
                        prox::Key::None => unreachable!("filtered out"),
                    };
                }
            }
            for term in &later_terms {
                term.prox(out, step);
            }
            for projection in projections {
                projection.apply(out, &keys);
            }
        },
        value: move |x: &[f64]| parts.value(x),
    }
}

/// What solves the augmented Lagrangian's subproblems.
enum AuglagInner<'a> {
    /// L-BFGS, projected onto `bounds` unless they are unbounded; with L1 weights `l1`
    /// (nonzero somewhere) on the split x = p − q, p, q ≥ 0, as NOTEARS.
    Lbfgs { l1: Vec<f64>, bounds: Bounds },
    /// The staged proximal gradient of `fista` ([`run_prox_grad`]) with these prox parts.
    Prox(ProxParts<'a>),
}

/// What [`run_auglag`] returns.
struct AuglagSolution {
    report: Report,
    /// α, one per constraint component.
    multipliers: Vec<f64>,
    /// The Lagrangian's gradient at the solution plus the L1 terms' (sub)gradient
    /// ([`reduced_gradient`]). With L-BFGS inside, at a bound of the inner solver it is minus
    /// its multiplier at a lower bound and plus it at an upper one ([`bound_multiplier`]).
    reduced_gradient: Vec<f64>,
}

/// The gradient `g` of a smooth part plus the (sub)gradient of its L1 terms (weights `l1`) at
/// `x`, which at 0 absorbs what it can (soft-thresholding by the weight): what stationarity
/// leaves for the multipliers of bounds and sets.
fn reduced_gradient(g: &[f64], l1: &[f64], x: &[f64]) -> Vec<f64> {
    (0..x.len())
        .map(|i| match x[i] {
            0.0 => prox::shrink(g[i], l1[i]),
            xi => g[i] + l1[i] * xi.signum(),
        })
        .collect()
}

/// The augmented Lagrangian with the plan's options on `problem` from `x0`, its subproblems
/// solved by `inner` (the plan's other options are the inner solver's).
fn run_auglag(
    problem: &mut dyn solvers::ConstrainedProblem,
    plan: &Plan,
    inner: AuglagInner,
    x0: &[f64],
    callback: Callback,
) -> Result<AuglagSolution, Diagnostic> {
    let by_prox = matches!(inner, AuglagInner::Prox(_));
    let (al_opts, inner_opts) = split_auglag_options(plan, by_prox)?;
    let al = AugLagOptions::from_options(&al_opts).map_err(|e| plan.option_error(e))?;
    match inner {
        AuglagInner::Prox(parts) => {
            let opts =
                ProxGradOptions::from_options(&inner_opts).map_err(|e| plan.option_error(e))?;
            let duals = solvers::DualStart {
                alpha: vec![0.0; problem.relations().len()],
                rho: al.rho_init,
            };
            let mut search = AuglagSupports {
                problem: WithProxTerms {
                    inner: problem,
                    parts,
                },
                opts: opts.clone(),
                al,
                inner_iterations: 0,
            };
            let staged = search.run(parts.projections, x0, duals, callback);
            let solution = match searches_supports(parts.projections, &opts, &staged.0) {
                false => staged,
                true => {
                    search.opts = restricted_options(&opts);
                    // A support a trial cannot make feasible would take every dual step
                    // allowed: trials get twice the staged solve's, and 10 more. Their
                    // subproblems start near a solution: each gets twice the iterations a
                    // staged one took on average (at most the option's).
                    let trial_outer = 2 * staged.0.iterations + 10;
                    search.al.max_outer = search.al.max_outer.min(trial_outer);
                    let per_step = search.inner_iterations / staged.0.iterations.max(1);
                    search.opts.max_iter = search.opts.max_iter.min(2 * per_step.max(50));
                    swaps::search_supports(
                        &mut search,
                        parts.projections,
                        staged,
                        opts.swaps,
                        callback,
                    )
                }
            };
            // The Lagrangian's gradient: the merit's at α⁺ = α + ρc with c ≈ 0.
            let g = swaps::SupportSolver::gradient(&mut search, &solution);
            let (report, (multipliers, _)) = solution;
            let reduced = reduced_gradient(&g, parts.l1, &report.x);
            Ok(AuglagSolution {
                report,
                multipliers,
                reduced_gradient: reduced,
            })
        }
        AuglagInner::Lbfgs { l1, bounds } => {
            let inner_opts = lbfgs_options(plan, &inner_opts)?;
            let n = x0.len();
            let (r, gradient) = if l1.iter().any(|w| *w != 0.0) {
                let mut split = SplitL1 {
                    inner: problem,
                    split: L1Split {
                        weights: l1.clone(),
                    },
                    grad: vec![0.0; n],
                };
                let z0 = L1Split::split(x0);
                let mut inner = InnerSolver::ProjectedLbfgs(inner_opts, L1Split::bounds(&bounds)?);
                let mut r = augmented_lagrangian(&mut split, &z0, &mut inner, &al, callback);
                r.report.x = split.split.join(&r.report.x);
                // Over z = (p, q) the merit's gradient is (g + w, −g + w).
                let gz = &r.lagrangian_gradient;
                let g = (0..n).map(|i| 0.5 * (gz[i] - gz[n + i])).collect();
                (r, g)
            } else {
                let mut inner = if bounds.is_unbounded() {
                    InnerSolver::Lbfgs(inner_opts)
                } else {
                    InnerSolver::ProjectedLbfgs(inner_opts, bounds)
                };
                let mut r = augmented_lagrangian(problem, x0, &mut inner, &al, callback);
                let g = std::mem::take(&mut r.lagrangian_gradient);
                (r, g)
            };
            let reduced = reduced_gradient(&gradient, &l1, &r.report.x);
            Ok(AuglagSolution {
                report: r.report,
                multipliers: r.multipliers,
                reduced_gradient: reduced,
            })
        }
    }
}

/// A support search's trial stops when a dual step leaves more than this fraction of the
/// violation before it (and the violation is above `h_tol`).
const STALLED_TRIAL: f64 = 0.5;

/// The augmented Lagrangian with proximal-gradient subproblems (with the options `opts`), as
/// the support search solves it: each solve starts from the multipliers and ρ of the solution
/// it is near (a support one swap away); a solution is better when it is feasible (its
/// violation within `h_tol`) with a lower value, or less infeasible than an infeasible best.
/// A trial stops at a dual step that leaves more than [`STALLED_TRIAL`] of the violation.
struct AuglagSupports<'a, 'p> {
    problem: WithProxTerms<'a, 'p>,
    opts: ProxGradOptions,
    al: AugLagOptions,
    /// The proximal-gradient iterations of every solve so far.
    inner_iterations: usize,
}

impl AuglagSupports<'_, '_> {
    /// One solve with `projections` from `start` and the duals `duals`: the report, the
    /// multipliers and ρ.
    fn run(
        &mut self,
        projections: &[prox::SlotProjection],
        start: &[f64],
        duals: solvers::DualStart,
        callback: Callback,
    ) -> (Report, (Vec<f64>, f64)) {
        let parts = ProxParts {
            projections,
            ..self.problem.parts
        };
        let opts = &self.opts;
        let mut solve = |p: &mut dyn Problem, x0: &[f64]| {
            run_prox_grad(p, opts, &parts, x0, &mut |_: &solvers::IterInfo| {
                solvers::Control::Continue
            })
        };
        let mut inner = InnerSolver::Proximal(&mut solve);
        let problem = &mut self.problem;
        let r = solvers::augmented_lagrangian_from(
            problem, start, duals, &mut inner, &self.al, callback,
        );
        self.inner_iterations += r.inner_iterations;
        (r.report, (r.multipliers, r.rho))
    }
}

impl swaps::SupportSolver<(Vec<f64>, f64)> for AuglagSupports<'_, '_> {
    fn gradient(&mut self, solution: &(Report, (Vec<f64>, f64))) -> Vec<f64> {
        use solvers::ConstrainedProblem;
        let (report, (alpha, rho)) = solution;
        let mut g = vec![0.0; report.x.len()];
        let mut c = vec![0.0; alpha.len()];
        self.problem.set_multipliers(alpha, *rho);
        self.problem.merit(&report.x, &mut g, &mut c);
        g
    }

    fn solve(
        &mut self,
        projections: &[prox::SlotProjection],
        start: &[f64],
        near: &(Vec<f64>, f64),
    ) -> (Report, (Vec<f64>, f64)) {
        let duals = solvers::DualStart {
            alpha: near.0.clone(),
            rho: near.1,
        };
        // A dual step that leaves more than half of the violation before it means the
        // subproblems no longer make progress (ρ at its largest, or the inner solver at its
        // iteration limit): on a support that cannot be made feasible, every later step too.
        let tol = self.al.h_tol;
        let mut before = f64::INFINITY;
        let mut stalled = false;
        let mut solved = self.run(
            projections,
            start,
            duals,
            &mut |info: &solvers::IterInfo| {
                stalled = info.violation > tol && info.violation > STALLED_TRIAL * before;
                before = info.violation;
                match stalled {
                    true => solvers::Control::Stop,
                    false => solvers::Control::Continue,
                }
            },
        );
        if stalled {
            solved.0.status = solvers::Status::MaxIter;
        }
        solved
    }

    fn better(&self, candidate: &Report, best: &Report) -> bool {
        let tol = self.al.h_tol;
        match best.violation > tol {
            true => candidate.violation < best.violation,
            false => candidate.violation <= tol && swaps::lower_value(candidate, best),
        }
    }
}

/// A constrained problem whose reported objective also counts the prox terms that the inner
/// solver handles itself (its merit, the smooth part, does not): computed once per dual step,
/// not per evaluation (a nuclear norm's value is an SVD).
struct WithProxTerms<'a, 'p> {
    inner: &'a mut dyn solvers::ConstrainedProblem,
    parts: ProxParts<'p>,
}

impl solvers::ConstrainedProblem for WithProxTerms<'_, '_> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn relations(&self) -> &[Relation] {
        self.inner.relations()
    }
    fn set_multipliers(&mut self, alpha: &[f64], rho: f64) {
        self.inner.set_multipliers(alpha, rho);
    }
    fn merit(&mut self, x: &[f64], grad: &mut [f64], constraints: &mut [f64]) -> MeritValue {
        self.inner.merit(x, grad, constraints)
    }
    fn reported_objective(&mut self, x: &[f64], objective: f64) -> f64 {
        objective + self.parts.value(x)
    }
}

/// Runs a method whose merit is the objective itself (lbfgs, projected lbfgs, adam) on `problem`.
fn solve_smooth(
    plan: &Plan,
    problem: &mut dyn Problem,
    x0: &[f64],
    bounds: &Bounds,
    callback: Callback,
) -> Result<Report, Diagnostic> {
    let opts = &plan.options;
    Ok(match plan.method {
        Method::Adam => {
            let o = AdamOptions::from_options(opts).map_err(|e| plan.option_error(e))?;
            adam_within(problem, bounds, x0, &o, callback)
        }
        Method::Lbfgs => lbfgs(problem, x0, &lbfgs_options(plan, opts)?, callback),
        _ => projected_lbfgs(problem, x0, bounds, &lbfgs_options(plan, opts)?, callback),
    })
}

/// Whether [`solve_external`] can run `plan` on `model` with the device computing the objective:
/// an unconstrained problem (bounds aside) solved by lbfgs, projected lbfgs or adam, whose merit
/// is the objective itself.
pub fn runs_on_objective_alone(model: &Model, plan: &Plan) -> bool {
    matches!(
        plan.method,
        Method::Lbfgs | Method::ProjectedLbfgs | Method::Adam
    ) && model.program.constraints.is_empty()
}

/// The method's name in results: the plan's, but `colide` for the path's CoLiDE variant.
pub fn solver_name(plan: &Plan) -> &'static str {
    match path_kind(plan) {
        Ok(k) if plan.method == Method::Path && k.colide => "colide",
        _ => plan.method.name(),
    }
}

/// The solver as the model names it (`colide`, `path(inner = lbfgs)`), else the plan's method.
fn solver_label(plan: &Plan) -> String {
    match path_kind(plan) {
        Ok(k) if plan.method == Method::Path && k.lbfgs_stages => "path(inner = lbfgs)".into(),
        _ => solver_name(plan).into(),
    }
}

/// The functions a device evaluates for a solver that builds its own (see [`device_functions`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceSolver {
    /// The central path: the stage merit of [`path_merit`] with its gradient, its domain guard
    /// and `h`, then for `colide` each noise scale's two slopes; `mu` and `inv_sqrt_s` are its
    /// parameter inputs. With Adam stages, `adam` is Adam's step, computed by the device too.
    Path {
        mu: u32,
        inv_sqrt_s: u32,
        adam: Option<AdamStep>,
    },
    /// The augmented Lagrangian: its merit L_ρ(·, α) with its gradient, the objective without
    /// its L1 terms, then each constraint instance's values; `rho` and each instance's
    /// `multipliers` are its inputs, set at each dual step.
    Auglag {
        rho: u32,
        multipliers: Vec<Multipliers>,
    },
    /// Adam on a problem without constraints: the objective with its gradient, and Adam's step
    /// (projecting on the bounds).
    Adam { adam: AdamStep },
    /// Proximal gradient: the objective without its prox terms, with its gradient. Without a
    /// nuclear norm, `prox` is the prox step of the L1 terms and group norms, computed by the
    /// device too.
    ProxGrad { prox: Option<ProxStep> },
}

/// The prox step of proximal gradient when the prox terms are L1 terms and group norms (L1
/// weights wₖ, one per variable, 0 without a term), computed by a device that keeps the
/// iterates in its memory: for each variable, from the point v (an input the device keeps) and
/// the step τ (a scalar input), x' = clamp(sign(v)·max(|v| − τ·w, 0), lower, upper), the prox
/// of τ·(w‖x‖₁ + the bounds' indicator), then for each group norm of weight g on it in turn,
/// each row (or column) ℓ of x' scaled by max(‖ℓ‖ − τ·g, 0)/‖ℓ‖; then r(x') = the terms' sum
/// at x'. The formulas of the host's prox (`run_prox_grad`), in its order.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProxStep {
    /// The input v of each variable, in order.
    pub points: Vec<u32>,
    /// The scalar input τ.
    pub step: u32,
    /// The index of the step's first root: x' of each variable, in order, then r(x').
    pub first_root: u32,
}

/// Adam's step for the central path's stages, computed by a device that keeps the iterates in
/// its memory: for each variable x, with gradient g and Adam's moments m and v (inputs the
/// device keeps), m' = β1·m + (1 − β1)·g, v' = β2·v + (1 − β2)·g², the direction
/// u = m'·c1 / (√(v'·c2) + ε) and x' = x − lr·u projected on x's bounds. The host sets the
/// scalars: c1 = 1/(1 − β1ᵗ) and c2 = 1/(1 − β2ᵗ) at step t. The formulas of
/// [`solvers::AdamState`] and [`solvers::HostAdam`] (whose `after_step` projects); the order of
/// some operations differs, so results agree to rounding.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AdamStep {
    /// The inputs m and v of each variable, in order.
    pub moments: Vec<(u32, u32)>,
    /// The scalar inputs, in the order lr, β1, β2, ε, c1, c2.
    pub scalars: [u32; 6],
    /// The index of the step's first root: m', v', u and x' of each variable follow, variable
    /// after variable, after the roots of the evaluation.
    pub first_root: u32,
}

/// The number of roots of [`AdamStep`] per variable (m', v', u, x').
pub const ADAM_ROOTS_PER_VARIABLE: usize = 4;

/// What a device computes for a model whose solver builds its own functions: `program` with
/// them added, and the roots of one evaluation: a value, its gradient in each variable (in
/// order), then the solver's other values.
pub struct DeviceFunctions {
    pub program: Program,
    /// For the path: the merit, its gradient, the domain guard, `h`, then for `colide` the
    /// slopes of the objective in each noise scale σ at σ and 2σ. The guard is the sum of
    /// `min(D, 0)` over the merit's domain nodes `D`: negative exactly when an entry of one is (a
    /// sum of terms ≤ 0 does not cancel), so one scalar crosses from the device instead of the
    /// d × d inverse. For the augmented Lagrangian: its merit and gradient, the objective without
    /// its L1 terms, then each constraint instance's values. For proximal gradient: the smooth
    /// part and its gradient.
    pub roots: Vec<NodeId>,
    /// The roots of Adam's step ([`AdamStep`]), computed after those of the evaluation and only
    /// when the solver steps (empty without Adam stages).
    pub step_roots: Vec<NodeId>,
    pub solver: DeviceSolver,
}

/// The functions a device evaluates for `program` at the dim sizes `dims`, when its solver is
/// the central path (`path`, with `inner = lbfgs` a score without the L1 terms; `colide`; with
/// Adam stages also Adam's step, [`AdamStep`]), the augmented Lagrangian, proximal gradient (with
/// L1 terms only also the prox step, [`ProxStep`]) or Adam without constraints (the objective
/// and Adam's step); `None` for any other solver, or none (a device then computes the merit
/// `optc bench` times).
pub fn device_functions(
    program: &Program,
    dims: &[u64],
) -> Result<Option<DeviceFunctions>, Diagnostic> {
    let Ok(plan) = choose(program) else {
        return Ok(None);
    };
    let adam_alone = plan.method == Method::Adam && program.constraints.is_empty();
    // The device's prox step symmetrizes but has no other set projections (sorts): such plans
    // run on the CPU.
    let symmetric = symmetric_vars(program, &plan);
    if (plan.method == Method::ProxGrad && plan.projections.len() > symmetric.len())
        || plan.auglag_by_prox()
    {
        return Ok(None);
    }
    if !adam_alone
        && !matches!(
            plan.method,
            Method::Path | Method::AugLag | Method::ProxGrad
        )
    {
        return Ok(None);
    }
    let mut program = program.clone();
    let score = minimized_objective(&mut program)?;
    let vars: Vec<InputId> = program.variables().collect();
    match plan.method {
        Method::Adam => {
            let roots = merit_of(&mut program, &vars, score)?.roots().to_vec();
            let (adam, step_roots) = adam_step(&mut program, &vars, &roots[1..], roots.len())?;
            return Ok(Some(DeviceFunctions {
                program,
                roots,
                step_roots,
                solver: DeviceSolver::Adam { adam },
            }));
        }
        Method::AugLag => {
            let (smooth, _) = smooth_node(&mut program, &plan.structure, score, ProxScope::L1);
            let functions = auglag_functions(&mut program, &vars, &plan, smooth, dims)?;
            let roots = functions.roots();
            return Ok(Some(DeviceFunctions {
                program,
                roots,
                step_roots: Vec::new(),
                solver: DeviceSolver::Auglag {
                    rho: functions.rho.0,
                    multipliers: functions.instances.into_iter().map(|(_, m)| m).collect(),
                },
            }));
        }
        Method::ProxGrad => {
            let (smooth, terms) = smooth_node(&mut program, &plan.structure, score, ProxScope::All);
            let roots = merit_of(&mut program, &vars, smooth)?.roots().to_vec();
            let (prox, step_roots) = if terms.iter().all(|t| on_device(t.kind)) {
                let (step, step_roots) =
                    prox_step(&mut program, &vars, &symmetric, &terms, roots.len())?;
                (Some(step), step_roots)
            } else {
                (None, Vec::new())
            };
            return Ok(Some(DeviceFunctions {
                program,
                roots,
                step_roots,
                solver: DeviceSolver::ProxGrad { prox },
            }));
        }
        _ => {}
    }
    // With L-BFGS-B stages the L1 terms leave the score (the host splits x = p − q for them).
    let kind = path_kind(&plan)?;
    let objective = score;
    let score = if kind.lbfgs_stages {
        smooth_node(&mut program, &plan.structure, score, ProxScope::L1).0
    } else {
        score
    };
    let constraint = program.constraints[plan.structure.equalities[0]].node;
    let merit = path_merit(&mut program, &vars, score, constraint)?;
    let mut roots = merit.value_and_gradient().to_vec();
    let mut guard = program.graph.constant(0.0);
    for &d in merit.domain() {
        let g = &mut program.graph;
        let zero = g.constant(0.0);
        let negative = g
            .add(Op::Binary(BinaryOp::Min), vec![d, zero])
            .expect("min with a scalar");
        let sum = g
            .add(Op::Sum { axis: None }, vec![negative])
            .expect("sum to a scalar");
        guard = binary(&mut program, BinaryOp::Add, guard, sum);
    }
    roots.extend([guard, merit.h]);
    if kind.colide {
        let slots = crate::model::var_slots(&program, dims);
        let scales = scale_vars(&mut program, &plan, &slots, objective, constraint)?;
        roots.extend(scales.iter().flat_map(|v| [v.slope, v.slope_at_double]));
    }
    let (adam, step_roots) = if kind.lbfgs_stages {
        (None, Vec::new())
    } else {
        let grads = roots[1..=vars.len()].to_vec();
        let (step, step_roots) = adam_step(&mut program, &vars, &grads, roots.len())?;
        (Some(step), step_roots)
    };
    Ok(Some(DeviceFunctions {
        program,
        roots,
        step_roots,
        solver: DeviceSolver::Path {
            mu: merit.mu.0,
            inv_sqrt_s: merit.scale.0,
            adam,
        },
    }))
}

/// Adds [`AdamStep`]'s inputs and arithmetic to `program` for the variables `vars` with
/// gradient nodes `grads`, its roots following `first_root` others; returns the step and its
/// roots.
fn adam_step(
    program: &mut Program,
    vars: &[InputId],
    grads: &[NodeId],
    first_root: usize,
) -> Result<(AdamStep, Vec<NodeId>), Diagnostic> {
    let mut scalars = [0u32; 6];
    let mut nodes = [NodeId(0); 6];
    for (k, name) in ["lr", "beta1", "beta2", "eps", "c1", "c2"]
        .iter()
        .enumerate()
    {
        let (id, node) = program.add_input(
            format!("adam.{name}"),
            InputKind::Direction,
            ElemType::Real,
            Vec::new(),
        );
        (scalars[k], nodes[k]) = (id.0, node);
    }
    let [lr, beta1, beta2, eps, c1, c2] = nodes;
    let mut moments = Vec::with_capacity(vars.len());
    let mut roots = Vec::with_capacity(ADAM_ROOTS_PER_VARIABLE * vars.len());
    for (&var, &g) in vars.iter().zip(grads) {
        let input = program.input(var).clone();
        let x = program.input_nodes[var.0 as usize];
        let (m_id, m) = program.add_input(
            format!("adam.m.{}", input.name),
            InputKind::Direction,
            ElemType::Real,
            input.shape.clone(),
        );
        let (v_id, v) = program.add_input(
            format!("adam.v.{}", input.name),
            InputKind::Direction,
            ElemType::Real,
            input.shape.clone(),
        );
        moments.push((m_id.0, v_id.0));
        // Scalars with the variable's values, or two of its shape: they cannot fail.
        let graph = &mut program.graph;
        let one = graph.constant(1.0);
        let mut op = |op: Op, args: Vec<NodeId>| {
            graph
                .add(op, args)
                .expect("elementwise on the variable's shape")
        };
        let [add, sub, mul, div] =
            [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div].map(Op::Binary);
        let m_next = {
            let decay = op(sub.clone(), vec![one, beta1]);
            let kept = op(mul.clone(), vec![beta1, m]);
            let new = op(mul.clone(), vec![decay, g]);
            op(add.clone(), vec![kept, new])
        };
        let v_next = {
            let decay = op(sub.clone(), vec![one, beta2]);
            let kept = op(mul.clone(), vec![beta2, v]);
            let g2 = op(mul.clone(), vec![g, g]);
            let new = op(mul.clone(), vec![decay, g2]);
            op(add.clone(), vec![kept, new])
        };
        let corrected = op(mul.clone(), vec![m_next, c1]);
        let scaled = op(mul.clone(), vec![v_next, c2]);
        let root = op(Op::Unary(UnaryOp::Sqrt), vec![scaled]);
        let denominator = op(add, vec![root, eps]);
        let direction = op(div, vec![corrected, denominator]);
        let step = op(mul, vec![lr, direction]);
        let x_next = op(sub, vec![x, step]);
        let x_next = clamp_to_bounds(program, &input, x_next)?;
        roots.extend([m_next, v_next, direction, x_next]);
    }
    let step = AdamStep {
        moments,
        scalars,
        first_root: first_root as u32,
    };
    Ok((step, roots))
}

/// `x` (of `input`'s shape) projected on `input`'s bounds.
fn clamp_to_bounds(
    program: &mut Program,
    input: &optc_compiler::ir::Input,
    mut x: NodeId,
) -> Result<NodeId, Diagnostic> {
    for (bound, clamp) in [(input.lower, BinaryOp::Max), (input.upper, BinaryOp::Min)] {
        if let Some(bound) = bound {
            x = program
                .graph
                .add(Op::Binary(clamp), vec![x, bound])
                .map_err(|e| {
                    plan_error(
                        "E0362",
                        format!("the bound of `{}` does not fit its shape: {e}", input.name),
                    )
                })?;
        }
    }
    Ok(x)
}

/// Whether the device's prox step ([`prox_step`]) has terms of `kind`: L1 terms and group norms
/// (plans with nuclear norms or TV take their prox on the host).
fn on_device(kind: ProxKind) -> bool {
    matches!(
        kind,
        ProxKind::L1 | ProxKind::GroupRows | ProxKind::GroupCols
    )
}

/// The variables the plan projects onto the symmetric matrices (`X in symmetric`).
fn symmetric_vars(program: &Program, plan: &Plan) -> Vec<InputId> {
    plan.projections
        .iter()
        .filter(|p| {
            program.constraints[p.constraint].kind == ConstraintKind::In(SetKind::Symmetric)
        })
        .map(|p| p.var)
        .collect()
}

/// The roots of [`ProxStep`] for the variables `vars` with the prox terms `terms` (L1 terms and
/// group norms), after `first_root` roots. Several terms on one variable compose as the host's
/// prox applies them: a `symmetric` variable's point is symmetrized, (V + Vᵀ)/2, then the L1
/// weights add up, then the bounds clamp, then each group norm shrinks in turn.
fn prox_step(
    program: &mut Program,
    vars: &[InputId],
    symmetric: &[InputId],
    terms: &[&ProxTerm],
    first_root: usize,
) -> Result<(ProxStep, Vec<NodeId>), Diagnostic> {
    let (step_id, step) = program.add_input(
        "prox.step".to_string(),
        InputKind::Direction,
        ElemType::Real,
        Vec::new(),
    );
    let mut points = Vec::with_capacity(vars.len());
    let mut roots = Vec::with_capacity(vars.len() + 1);
    let mut penalty = program.graph.constant(0.0);
    for &var in vars {
        let input = program.input(var).clone();
        let (v_id, v) = program.add_input(
            format!("prox.v.{}", input.name),
            InputKind::Direction,
            ElemType::Real,
            input.shape.clone(),
        );
        points.push(v_id.0);
        let graph = &mut program.graph;
        let term_weight =
            |graph: &mut Graph, t: &ProxTerm| t.weight.unwrap_or_else(|| graph.constant(1.0));
        let mut l1_weights = Vec::new();
        let mut groups = Vec::new();
        for t in terms.iter().filter(|t| t.var == var) {
            match t.kind {
                ProxKind::L1 => {
                    let weight = term_weight(graph, t);
                    l1_weights.push(match t.entries {
                        None => weight,
                        // weight · |M|, of the variable's shape or broadcast to it.
                        Some(m) => {
                            let magnitude = graph
                                .add(Op::Unary(UnaryOp::Abs), vec![m])
                                .expect("abs of a tensor");
                            graph
                                .add(Op::Binary(BinaryOp::Mul), vec![weight, magnitude])
                                .expect("a scalar times a tensor")
                        }
                    })
                }
                ProxKind::GroupRows => groups.push((1, term_weight(graph, t))),
                ProxKind::GroupCols => groups.push((0, term_weight(graph, t))),
                ProxKind::Nuclear | ProxKind::Tv => {
                    return Err(plan_error(
                        "E0360",
                        "the device's prox step has no nuclear norm or total variation",
                    ))
                }
            }
        }
        let (zero, half) = (graph.constant(0.0), graph.constant(0.5));
        // Scalars with the variable's values, or two of its shape: they cannot fail.
        let mut op = |op: Op, args: Vec<NodeId>| {
            graph
                .add(op, args)
                .expect("elementwise on the variable's shape")
        };
        let weight = l1_weights
            .into_iter()
            .fold(zero, |sum, w| op(Op::Binary(BinaryOp::Add), vec![sum, w]));
        let threshold = op(Op::Binary(BinaryOp::Mul), vec![step, weight]);
        let v = if symmetric.contains(&var) {
            let transposed = op(Op::Transpose, vec![v]);
            let sum = op(Op::Binary(BinaryOp::Add), vec![v, transposed]);
            op(Op::Binary(BinaryOp::Mul), vec![half, sum])
        } else {
            v
        };
        let magnitude = op(Op::Unary(UnaryOp::Abs), vec![v]);
        let shrunk = op(Op::Binary(BinaryOp::Sub), vec![magnitude, threshold]);
        let kept = op(Op::Binary(BinaryOp::Max), vec![shrunk, zero]);
        let sign = op(Op::Unary(UnaryOp::Sign), vec![v]);
        let soft = op(Op::Binary(BinaryOp::Mul), vec![sign, kept]);
        let mut x_next = clamp_to_bounds(program, &input, soft)?;
        let graph = &mut program.graph;
        let mut op = |op: Op, args: Vec<NodeId>| {
            graph
                .add(op, args)
                .expect("scalars, the variable's shape and its lines")
        };
        for &(axis, w) in &groups {
            let t = op(Op::Binary(BinaryOp::Mul), vec![step, w]);
            x_next = group_shrink(&mut op, x_next, (axis, input.shape[axis as usize]), t);
        }
        // Σ weight·|x|: the weight is a scalar, or a tensor with entrywise weights.
        let magnitude = op(Op::Unary(UnaryOp::Abs), vec![x_next]);
        let weighted = op(Op::Binary(BinaryOp::Mul), vec![weight, magnitude]);
        let mut r = op(Op::Sum { axis: None }, vec![weighted]);
        for &(axis, w) in &groups {
            let norms = line_norms(&mut op, x_next, axis);
            let total = op(Op::Sum { axis: None }, vec![norms]);
            let term = op(Op::Binary(BinaryOp::Mul), vec![w, total]);
            r = op(Op::Binary(BinaryOp::Add), vec![r, term]);
        }
        penalty = op(Op::Binary(BinaryOp::Add), vec![penalty, r]);
        roots.push(x_next);
    }
    roots.push(penalty);
    let step = ProxStep {
        points,
        step: step_id.0,
        first_root: first_root as u32,
    };
    Ok((step, roots))
}

/// The Euclidean norms of the lines of the matrix `x` along `axis` (of its rows for 1).
fn line_norms(op: &mut impl FnMut(Op, Vec<NodeId>) -> NodeId, x: NodeId, axis: u32) -> NodeId {
    let squares = op(Op::Binary(BinaryOp::Mul), vec![x, x]);
    let sums = op(Op::Sum { axis: Some(axis) }, vec![squares]);
    op(Op::Unary(UnaryOp::Sqrt), vec![sums])
}

/// The prox of t·Σ‖line‖₂ over the lines of the matrix `x` along `axis`, whose length is
/// `size` (group shrinkage, as `prox::group_shrink`): each line scaled by
/// max(‖line‖ − t, 0) / ‖line‖, a zero line kept zero (its norm is floored at the least normal
/// f32, so no 0/0 arises in either precision).
fn group_shrink(
    op: &mut impl FnMut(Op, Vec<NodeId>) -> NodeId,
    x: NodeId,
    (axis, size): (u32, Dim),
    t: NodeId,
) -> NodeId {
    let norms = line_norms(op, x, axis);
    let zero = op(Op::Const(0.0), Vec::new());
    let floor = op(Op::Const(f64::from(f32::MIN_POSITIVE)), Vec::new());
    let excess = op(Op::Binary(BinaryOp::Sub), vec![norms, t]);
    let kept = op(Op::Binary(BinaryOp::Max), vec![excess, zero]);
    let divisor = op(Op::Binary(BinaryOp::Max), vec![norms, floor]);
    let factor = op(Op::Binary(BinaryOp::Div), vec![kept, divisor]);
    let spread = op(Op::Expand { axis, size }, vec![factor]);
    op(Op::Binary(BinaryOp::Mul), vec![x, spread])
}

/// Another device's evaluation of a model (e.g. the GPU executor): the objective, or the
/// functions of [`device_functions`] for a solver that builds its own.
pub trait External {
    /// The solver's functions it computes, or `None` for the objective.
    fn solver(&self) -> Option<&DeviceSolver>;
    /// Sets the path's stage-merit parameters μ and 1/√s.
    fn set_path(&mut self, mu: f64, inv_sqrt_s: f64) -> Result<(), Diagnostic>;
    /// Sets the augmented Lagrangian's multipliers α (every instance's, one after the other)
    /// and penalty ρ ([`DeviceSolver::Auglag`]).
    fn set_multipliers(&mut self, alpha: &[f64], rho: f64) -> Result<(), Diagnostic>;
    /// The value at `x` (the first root), the gradient written to `g` and the roots after it
    /// to `rest` (flat, in root order). A point where the functions are undefined (a
    /// log-determinant of a matrix with determinant ≤ 0, a singular matrix) gives NaN, not an
    /// error.
    fn eval(&mut self, x: &[f64], g: &mut [f64], rest: &mut [f64]) -> Result<f64, Diagnostic>;
    /// The path's Adam iterates in the device's memory, when it computes Adam's step
    /// ([`AdamStep`]); `None`: the host keeps them.
    fn adam(&mut self) -> Option<&mut dyn DeviceAdam> {
        None
    }
    /// L-BFGS's vectors in the device's memory, when it computes the objective; `None`: the
    /// host keeps them.
    fn vectors(&mut self) -> Option<&mut dyn DeviceVectors> {
        None
    }
}

/// L-BFGS's vectors ([`solvers::Vectors`]) kept by a device that computes the objective: the
/// point, the gradients and the correction pairs stay in its memory, so that per iteration only
/// scalars cross (values, dot products, norms); the start point goes there once, the result
/// comes back once.
pub trait DeviceVectors {
    /// Makes slots `0..count` of the point's length.
    fn allocate(&mut self, count: usize) -> Result<(), Diagnostic>;
    fn write(&mut self, slot: Slot, values: &[f64]) -> Result<(), Diagnostic>;
    fn read(&mut self, slot: Slot, out: &mut [f64]) -> Result<(), Diagnostic>;
    /// The objective at `x`, its gradient into `g`; NaN where it is undefined, as
    /// [`External::eval`].
    fn value_grad(&mut self, x: Slot, g: Slot) -> Result<f64, Diagnostic>;
    fn dot(&mut self, a: Slot, b: Slot) -> Result<f64, Diagnostic>;
    fn norm_inf(&mut self, a: Slot) -> Result<f64, Diagnostic>;
    /// `y ← y + alpha·x`.
    fn axpy(&mut self, alpha: f64, x: Slot, y: Slot) -> Result<(), Diagnostic>;
    /// `x ← alpha·x`.
    fn scale(&mut self, alpha: f64, x: Slot) -> Result<(), Diagnostic>;
    fn copy(&mut self, from: Slot, to: Slot) -> Result<(), Diagnostic>;
    /// The prox step ([`ProxStep`]) from `v` with step `step` into `out`; r at the result.
    fn prox(&mut self, v: Slot, step: f64, out: Slot) -> Result<f64, Diagnostic>;
}

/// [`solvers::Vectors`] on a [`DeviceVectors`]: the first error of the device is kept (its
/// value stands in: NaN for numbers), and a NaN objective without one is named by the host
/// model at that point. Also the [`solvers::ProxVectors`] of proximal gradient: the device's
/// prox step.
struct ResidentVectors<'a> {
    device: &'a mut dyn DeviceVectors,
    model: &'a mut Model,
    objective: Option<NodeId>,
    error: Option<Diagnostic>,
}

impl<'a> ResidentVectors<'a> {
    /// Runs `solve` over `device`'s vectors for `model`'s point, whose objective (for naming a
    /// NaN) is `objective`: the report and the device's first error.
    fn run(
        device: &'a mut dyn DeviceVectors,
        model: &'a mut Model,
        objective: Option<NodeId>,
        solve: impl FnOnce(&mut Self) -> Report,
    ) -> (Report, Option<Diagnostic>) {
        let mut vectors = ResidentVectors {
            device,
            model,
            objective,
            error: None,
        };
        let report = solve(&mut vectors);
        (report, vectors.error)
    }

    fn noted<T>(&mut self, result: Result<T, Diagnostic>, instead: T) -> T {
        result.unwrap_or_else(|e| {
            self.error.get_or_insert(e);
            instead
        })
    }
}

impl solvers::Vectors for ResidentVectors<'_> {
    fn dim(&self) -> usize {
        self.model.dim()
    }
    fn allocate(&mut self, count: usize) {
        let made = self.device.allocate(count);
        self.noted(made, ());
    }
    fn write(&mut self, slot: Slot, values: &[f64]) {
        let written = self.device.write(slot, values);
        self.noted(written, ());
    }
    fn read(&mut self, slot: Slot, out: &mut [f64]) {
        let read = self.device.read(slot, out);
        self.noted(read, ());
    }
    fn value_grad(&mut self, x: Slot, g: Slot) -> f64 {
        let value = self.device.value_grad(x, g);
        let value = self.noted(value, f64::NAN);
        if value.is_nan() && self.error.is_none() {
            let mut point = vec![0.0; self.model.dim()];
            match self.device.read(x, &mut point) {
                Ok(()) => name_undefined(self.model, self.objective, &point, &mut self.error),
                Err(e) => self.error = Some(e),
            }
        }
        value
    }
    fn dot(&mut self, a: Slot, b: Slot) -> f64 {
        let dot = self.device.dot(a, b);
        self.noted(dot, f64::NAN)
    }
    fn norm_inf(&mut self, a: Slot) -> f64 {
        let norm = self.device.norm_inf(a);
        self.noted(norm, f64::NAN)
    }
    fn axpy(&mut self, alpha: f64, x: Slot, y: Slot) {
        let done = self.device.axpy(alpha, x, y);
        self.noted(done, ());
    }
    fn scale(&mut self, alpha: f64, x: Slot) {
        let done = self.device.scale(alpha, x);
        self.noted(done, ());
    }
    fn copy(&mut self, from: Slot, to: Slot) {
        let done = self.device.copy(from, to);
        self.noted(done, ());
    }
}

impl solvers::ProxVectors for ResidentVectors<'_> {
    fn prox(&mut self, v: Slot, step: f64, out: Slot) -> f64 {
        let penalty = self.device.prox(v, step, out);
        self.noted(penalty, f64::NAN)
    }
}

/// `device`'s evaluation as a host [`Problem`] in `model`'s variables (the point crosses per
/// evaluation): its first error is kept in `error`, and a NaN value is named by the host model
/// at `objective` ([`name_undefined`]).
fn device_problem<'a>(
    device: &'a mut dyn External,
    model: &'a mut Model,
    objective: Option<NodeId>,
    error: &'a mut Option<Diagnostic>,
) -> FnProblem<impl FnMut(&[f64], &mut [f64]) -> f64 + 'a> {
    FnProblem::new(model.dim(), move |x: &[f64], g: &mut [f64]| {
        let value = device.eval(x, g, &mut []).unwrap_or_else(|e| {
            error.get_or_insert(e);
            f64::NAN
        });
        if value.is_nan() {
            name_undefined(model, objective, x, error);
        }
        value
    })
}

/// A NaN from another device may stand for an evaluation error it cannot report (a GPU kernel
/// has no status for an index outside its axis): the host model names it at `x` into `error`.
fn name_undefined(
    model: &mut Model,
    objective: Option<NodeId>,
    x: &[f64],
    error: &mut Option<Diagnostic>,
) {
    if let (None, Some(node)) = (&error, objective) {
        model.set_x(x);
        if let Err(e) = model.eval_scalar(node) {
            *error = Some(e.diagnostic(&model.program));
        }
    }
}

/// Adam's iterates of a path stage kept by a device that computes [`AdamStep`]: the point,
/// the moments and the stage's best point stay in its memory, so that per step only scalars
/// cross (and CoLiDE's noise scales, and what the evaluation itself reads back, such as a
/// log-determinant's LU diagonal). The host's loop drives it through [`AdamIterates`].
pub trait DeviceAdam {
    /// Starts a stage at `x0`: zero moments, `x0` the best point.
    fn start(&mut self, x0: &[f64], constants: AdamConstants) -> Result<(), Diagnostic>;
    /// The value at the device's point, the roots after the gradient written to `rest`; NaN
    /// where the functions are undefined, as [`External::eval`].
    fn eval(&mut self, rest: &mut [f64]) -> Result<f64, Diagnostic>;
    /// ‖∇‖∞ of the last evaluation.
    fn optimality(&mut self) -> Result<f64, Diagnostic>;
    /// Records the value at the device's point for the best point.
    fn record(&mut self, value: f64) -> Result<(), Diagnostic>;
    /// Adam's step with the last evaluation's gradient (see [`AdamStep`]).
    fn step(&mut self, lr: f64) -> Result<(), Diagnostic>;
    /// x ← x + by·u, u the direction of the last step.
    fn shift(&mut self, by: f64) -> Result<(), Diagnostic>;
    /// The lowest recorded value of the stage (∞ before any).
    fn best_value(&self) -> f64;
    /// Reads `out.len()` values of the flat point (or of the best point) from `offset`.
    fn read(&mut self, best: bool, offset: usize, out: &mut [f64]) -> Result<(), Diagnostic>;
    /// Reads the whole point into `out`; given `Some(value)`, the merit at the point, the best
    /// point instead when it is not lower ([`AdamIterates::read`]).
    fn read_better(
        &mut self,
        out: &mut [f64],
        current_value: Option<f64>,
    ) -> Result<(), Diagnostic> {
        let best_value = self.best_value();
        let best = current_value.is_some_and(|v| !(v < best_value));
        self.read(best, 0, out)
    }
    /// Writes `values` into the flat point from `offset`.
    fn write(&mut self, offset: usize, values: &[f64]) -> Result<(), Diagnostic>;
    /// Makes the best recorded point the current one.
    fn restore_best(&mut self) -> Result<(), Diagnostic>;
}

/// Runs `plan` from the model's current variables with every evaluation made by `device`
/// instead of the model; leaves the model at the returned point. For plans where
/// [`runs_on_objective_alone`] holds when the device computes the objective, and for the central
/// path, the augmented Lagrangian and proximal gradient when it computes their functions
/// ([`device_functions`]); E0385 otherwise. An error of `device` is a NaN to the solver
/// (which backs off) and the first one is kept in the outcome. L-BFGS keeps its vectors on a
/// device that offers them ([`External::vectors`]).
pub fn solve_external(
    model: &mut Model,
    plan: &Plan,
    device: &mut dyn External,
    callback: Callback,
) -> Result<Outcome, Diagnostic> {
    solve_on_device(model, plan, device, callback).map(|o| stalled_at_kinks(plan, o))
}

/// [`solve_external`] before its status is settled.
fn solve_on_device(
    model: &mut Model,
    plan: &Plan,
    device: &mut dyn External,
    callback: Callback,
) -> Result<Outcome, Diagnostic> {
    // The dual's work is a sort per unit of the data's plan, with nothing of the model's functions
    // to evaluate: it runs on the host for every backend.
    if plan.method == Method::Dual {
        return solve(model, plan, callback);
    }
    let runs = match device.solver() {
        None => runs_on_objective_alone(model, plan),
        Some(DeviceSolver::Path { .. }) => plan.method == Method::Path,
        Some(DeviceSolver::Auglag { .. }) => plan.method == Method::AugLag,
        Some(DeviceSolver::ProxGrad { .. }) => plan.method == Method::ProxGrad,
        Some(DeviceSolver::Adam { .. }) => {
            plan.method == Method::Adam && model.program.constraints.is_empty()
        }
    };
    if !runs {
        return Err(Diagnostic::error(
            crate::gpu::METHOD_NOT_ON_GPU,
            format!(
                "`--backend gpu` runs lbfgs, projected lbfgs and adam on problems without constraints, proximal gradient (`fista`), the central path (`path`) and the augmented Lagrangian (`auglag`); this one is solved by `{}`",
                solver_label(plan)
            ),
        )
        .with_hint("run it with `--backend cpu`"));
    }
    let keeps_adam = device.adam().is_some();
    match device.solver() {
        Some(DeviceSolver::Path { .. }) => return path_external(model, plan, device, callback),
        Some(DeviceSolver::Auglag { multipliers, .. }) => {
            let instances = multipliers.clone();
            return auglag_external(model, plan, device, &instances, callback);
        }
        Some(DeviceSolver::ProxGrad { .. }) => {
            return prox_grad_external(model, plan, device, callback)
        }
        Some(DeviceSolver::Adam { .. }) if keeps_adam => {
            return adam_external(model, plan, device, callback)
        }
        // A device that does not keep the iterates evaluates the objective.
        Some(DeviceSolver::Adam { .. }) | None => {}
    }
    let x0 = model.x();
    let b = bounds(model)?;
    let objective = model.program.objective.as_ref().map(|o| o.node);
    let (report, error) = match device.vectors() {
        Some(vectors) if plan.method == Method::Lbfgs => {
            let opts = lbfgs_options(plan, &plan.options)?;
            ResidentVectors::run(vectors, model, objective, |v| {
                lbfgs_in(v, &x0, &opts, callback)
            })
        }
        _ => {
            let mut error = None;
            let mut problem = device_problem(device, model, objective, &mut error);
            let report = solve_smooth(plan, &mut problem, &x0, &b, callback)?;
            drop(problem);
            (report, error)
        }
    };
    model.set_x(&report.x);
    Ok(Outcome {
        report,
        error,
        details: Details::None,
    })
}

/// Adam with its iterates on `device`, which computes the objective and Adam's step (see
/// [`solve_external`]): per step only scalars cross (the value, ‖∇‖∞, the step's constants).
fn adam_external(
    model: &mut Model,
    plan: &Plan,
    device: &mut dyn External,
    callback: Callback,
) -> Result<Outcome, Diagnostic> {
    /// The iterates in the device's memory (its step projects on the bounds).
    struct Resident<'a> {
        device: &'a mut dyn DeviceAdam,
        error: Option<Diagnostic>,
    }
    impl Resident<'_> {
        fn noted<T>(&mut self, result: Result<T, Diagnostic>, instead: T) -> T {
            result.unwrap_or_else(|e| {
                self.error.get_or_insert(e);
                instead
            })
        }
    }
    impl AdamIterates for Resident<'_> {
        fn evaluate(&mut self, _mu: f64, _s: f64) -> Option<f64> {
            let value = self.device.eval(&mut []);
            Some(self.noted(value, f64::NAN))
        }
        fn optimality(&mut self) -> f64 {
            let norm = self.device.optimality();
            self.noted(norm, f64::NAN)
        }
        fn record(&mut self, value: f64) {
            let recorded = self.device.record(value);
            self.noted(recorded, ());
        }
        fn step(&mut self, lr: f64) {
            let stepped = self.device.step(lr);
            self.noted(stepped, ());
        }
        fn shift(&mut self, by: f64) {
            let shifted = self.device.shift(by);
            self.noted(shifted, ());
        }
        fn best_value(&mut self) -> f64 {
            self.device.best_value()
        }
        fn read(&mut self, x: &mut [f64], current_value: Option<f64>) {
            let read = self.device.read_better(x, current_value);
            self.noted(read, ());
        }
        fn restore_best(&mut self) {
            let restored = self.device.restore_best();
            self.noted(restored, ());
        }
    }
    let opts = AdamOptions::from_options(&plan.options).map_err(|e| plan.option_error(e))?;
    // Start inside the bounds, as every step ends.
    let mut x0 = model.x();
    bounds(model)?.project(&mut x0);
    let device = device.adam().expect("solve_external checked it");
    device.start(&x0, opts.constants())?;
    let mut iterates = Resident {
        device,
        error: None,
    };
    let report = adam_in(&mut iterates, x0.len(), &opts, callback);
    model.set_x(&report.x);
    Ok(Outcome {
        report,
        error: iterates.error,
        details: Details::None,
    })
}

/// The central path, each stage merit evaluated by `device` (see [`solve_external`]); the
/// options, bounds, L1 split and stopping rules are those of the host's path. When the device
/// computes Adam's step ([`External::adam`]), it keeps each Adam stage's iterates and projects
/// on the bounds in that step (the IR clamps x'), and CoLiDE's scales are set after it.
fn path_external(
    model: &mut Model,
    plan: &Plan,
    device: &mut dyn External,
    callback: Callback,
) -> Result<Outcome, Diagnostic> {
    /// Why the device's Adam iterates are there: `adam_iterates` chose them for it.
    const RESIDENT: &str = "a device that keeps Adam's iterates";
    struct Objective<'a> {
        device: &'a mut dyn External,
        bounds: Bounds,
        /// CoLiDE's noise scales, whose slopes follow the guard and h among the roots.
        scales: Vec<ScaleVar>,
        error: Option<Diagnostic>,
        current: (f64, f64),
        scratch: Vec<f64>,
        /// The roots after the gradient: the guard, h, then each scale's two slopes.
        rest: Vec<f64>,
        /// A scale's values read from a device that keeps the point.
        scale_values: Vec<f64>,
    }
    impl Objective<'_> {
        /// Keeps the first error of the device; its value stands in.
        fn noted<T>(&mut self, result: Result<T, Diagnostic>, instead: T) -> T {
            result.unwrap_or_else(|e| {
                self.error.get_or_insert(e);
                self.rest.fill(f64::NAN);
                instead
            })
        }

        /// Sets the device's μ and s unless they are set; false when that failed.
        fn set_path(&mut self, mu: f64, s: f64) -> bool {
            if self.current != (mu, s) {
                let set = self.device.set_path(mu, 1.0 / s.sqrt());
                if !self.noted(set.map(|_| true), false) {
                    return false;
                }
                self.current = (mu, s);
            }
            true
        }

        /// The merit at `x` (NaN where undefined) with its gradient into `grad`; the other
        /// roots into `self.rest`.
        fn eval(&mut self, x: &[f64], mu: f64, s: f64, grad: &mut [f64]) -> f64 {
            if !self.set_path(mu, s) {
                return f64::NAN;
            }
            let value = self.device.eval(x, grad, &mut self.rest);
            self.noted(value, f64::NAN)
        }

        /// `value` unless the point is outside the domain: the guard (the first root after
        /// the gradient) negative or NaN, or `value` not finite.
        fn in_domain(&self, value: f64) -> Option<f64> {
            (self.rest[0] >= 0.0 && value.is_finite()).then_some(value)
        }

        /// The μ and s the device is set to (before the first stage, any will do: the slopes do
        /// not depend on them).
        fn path_now(&self) -> (f64, f64) {
            match self.current {
                (mu, _) if mu.is_nan() => (1.0, 1.0),
                current => current,
            }
        }

        /// Sets the scales in `x` in closed form from their slopes at `x`.
        fn update_scales(&mut self, x: &mut [f64]) -> Result<(), Diagnostic> {
            let (mu, s) = self.path_now();
            let mut grad = std::mem::take(&mut self.scratch);
            self.eval(x, mu, s, &mut grad);
            self.scratch = grad;
            let mut at = 2;
            for v in &self.scales {
                self.new_scales(v, at, &mut x[v.offset..v.offset + v.len])?;
                at += 2 * v.len;
            }
            Ok(())
        }

        /// The closed-form values of the scale `v`, now `current`, from its slopes in
        /// `self.rest` from `at`.
        fn new_scales(
            &self,
            v: &ScaleVar,
            at: usize,
            current: &mut [f64],
        ) -> Result<(), Diagnostic> {
            let (slope, rest) = self.rest[at..].split_at(v.len);
            for (k, sigma) in current.iter_mut().enumerate() {
                let i = v.offset + k;
                let (lower, upper) = (self.bounds.lower()[i], self.bounds.upper()[i]);
                *sigma = scale_update(v, *sigma, slope[k], rest[k], lower, upper)?;
            }
            Ok(())
        }

        /// [`Objective::update_scales`] at the device's point.
        fn update_resident_scales(&mut self) -> Result<(), Diagnostic> {
            self.device.adam().expect(RESIDENT).eval(&mut self.rest)?;
            let mut at = 2;
            let mut current = std::mem::take(&mut self.scale_values);
            for v in &self.scales {
                current.resize(v.len, 0.0);
                self.device
                    .adam()
                    .expect(RESIDENT)
                    .read(false, v.offset, &mut current)?;
                self.new_scales(v, at, &mut current)?;
                self.device
                    .adam()
                    .expect(RESIDENT)
                    .write(v.offset, &current)?;
                at += 2 * v.len;
            }
            self.scale_values = current;
            Ok(())
        }
    }
    impl PathObjective for Objective<'_> {
        fn dim(&self) -> usize {
            self.scratch.len()
        }
        fn value_grad(&mut self, x: &[f64], mu: f64, s: f64, grad: &mut [f64]) -> Option<f64> {
            let value = self.eval(x, mu, s, grad);
            self.in_domain(value)
        }
        fn optimality(&self, x: &[f64], grad: &[f64]) -> f64 {
            self.bounds.projected_gradient_norm(x, grad)
        }
        fn after_step(&mut self, x: &mut [f64]) {
            self.bounds.project(x);
            if self.scales.is_empty() {
                return;
            }
            if let Err(e) = self.update_scales(x) {
                // Keep the Adam step for the scales; report the first failure.
                self.error.get_or_insert(e);
            }
        }
        fn violation(&mut self, x: &[f64]) -> f64 {
            let (mu, s) = self.current;
            let mut grad = std::mem::take(&mut self.scratch);
            self.eval(x, mu, s, &mut grad);
            self.scratch = grad;
            self.rest[1].abs()
        }
        fn adam_iterates(
            &mut self,
            x0: &[f64],
            constants: AdamConstants,
        ) -> Box<dyn AdamIterates + '_> {
            let Some(adam) = self.device.adam() else {
                return Box::new(HostAdam::new(self, x0, constants));
            };
            let started = adam.start(x0, constants);
            self.noted(started, ());
            Box::new(Resident { objective: self })
        }
    }
    /// The stage's iterates in the device's memory; the bounds are projected on by the device's
    /// step, the scales set here after it.
    struct Resident<'a, 'b> {
        objective: &'a mut Objective<'b>,
    }
    impl Resident<'_, '_> {
        fn adam(&mut self) -> &mut dyn DeviceAdam {
            self.objective.device.adam().expect(RESIDENT)
        }
        fn noted<T>(&mut self, result: Result<T, Diagnostic>, instead: T) -> T {
            self.objective.noted(result, instead)
        }
    }
    impl AdamIterates for Resident<'_, '_> {
        fn evaluate(&mut self, mu: f64, s: f64) -> Option<f64> {
            if !self.objective.set_path(mu, s) {
                return None;
            }
            let mut rest = std::mem::take(&mut self.objective.rest);
            let value = self.adam().eval(&mut rest);
            self.objective.rest = rest;
            let value = self.noted(value, f64::NAN);
            self.objective.in_domain(value)
        }
        fn optimality(&mut self) -> f64 {
            let norm = self.adam().optimality();
            self.noted(norm, f64::NAN)
        }
        fn record(&mut self, value: f64) {
            let recorded = self.adam().record(value);
            self.noted(recorded, ());
        }
        fn step(&mut self, lr: f64) {
            let stepped = self.adam().step(lr);
            self.noted(stepped, ());
            if !self.objective.scales.is_empty() {
                let updated = self.objective.update_resident_scales();
                // Keep the Adam step for the scales; report the first failure.
                self.noted(updated, ());
            }
        }
        fn shift(&mut self, by: f64) {
            let shifted = self.adam().shift(by);
            self.noted(shifted, ());
        }
        fn best_value(&mut self) -> f64 {
            self.adam().best_value()
        }
        fn read(&mut self, x: &mut [f64], current_value: Option<f64>) {
            let read = self.adam().read_better(x, current_value);
            self.noted(read, ());
        }
        fn restore_best(&mut self) {
            let restored = self.adam().restore_best();
            self.noted(restored, ());
        }
    }
    let mut x0 = model.x();
    let kind = path_kind(plan)?;
    let objective = minimized_objective(&mut model.program)?;
    let l1 = if kind.lbfgs_stages {
        smooth_part(model, &plan.structure, objective, ProxScope::L1)?.1
    } else {
        Vec::new()
    };
    // The scales' places and names (the device computes their slopes).
    let scales = if kind.colide {
        let constraint = model.program.constraints[plan.structure.equalities[0]].node;
        let slots = model.vars.clone();
        scale_vars(&mut model.program, plan, &slots, objective, constraint)?
    } else {
        Vec::new()
    };
    let bounds = bounds(model)?;
    let rest = 2 + scales.iter().map(|v| 2 * v.len).sum::<usize>();
    let mut objective = Objective {
        device,
        bounds: bounds.clone(),
        scales,
        error: None,
        // Set on the first evaluation.
        current: (f64::NAN, f64::NAN),
        scratch: vec![0.0; x0.len()],
        rest: vec![f64::NAN; rest],
        scale_values: Vec::new(),
    };
    if !objective.scales.is_empty() {
        // Start from the closed-form scales; applying the update twice checks its form.
        objective.update_scales(&mut x0)?;
        let first = x0.clone();
        objective.update_scales(&mut x0)?;
        check_scale_form(&objective.scales, &first, &x0)?;
    }
    let report = run_path(&mut objective, plan, &kind, l1, &bounds, &x0, callback)?;
    model.set_x(&report.x);
    Ok(Outcome {
        report,
        error: objective.error,
        details: Details::None,
    })
}

/// Proximal gradient with the objective without its prox terms evaluated by `device` (see
/// [`solve_external`]); the prox terms, bounds and options are the host's.
fn prox_grad_external(
    model: &mut Model,
    plan: &Plan,
    device: &mut dyn External,
    callback: Callback,
) -> Result<Outcome, Diagnostic> {
    let objective = minimized_objective(&mut model.program)?;
    let (smooth, mut l1, slot_terms) =
        smooth_part(model, &plan.structure, objective, ProxScope::All)?;
    let x0 = model.x();
    // Plans with set projections but `symmetric` ones have no device functions: they never
    // come here.
    let sets = prox_sets(model, plan, &mut l1)?;
    let prox = ProxParts {
        l1: &l1,
        slot_terms: &slot_terms,
        bounds: &sets.bounds,
        projections: &sets.projections,
        symmetric: &sets.symmetric,
    };
    let (report, error) = match device.vectors() {
        Some(vectors) if slot_terms.iter().all(|t| on_device(t.kind)) => {
            let opts =
                ProxGradOptions::from_options(&plan.options).map_err(|e| plan.option_error(e))?;
            ResidentVectors::run(vectors, model, Some(smooth), |v| {
                proximal_gradient_in(v, &x0, &opts, callback)
            })
        }
        _ => {
            let mut error = None;
            let mut problem = device_problem(device, model, Some(smooth), &mut error);
            let opts =
                ProxGradOptions::from_options(&plan.options).map_err(|e| plan.option_error(e))?;
            let report = run_prox_grad(&mut problem, &opts, &prox, &x0, callback);
            drop(problem);
            (report, error)
        }
    };
    model.set_x(&report.x);
    Ok(Outcome {
        report,
        error,
        details: Details::None,
    })
}

/// The augmented Lagrangian with the smooth objective, the constraints and their gradients
/// evaluated by `device` (see [`solve_external`]) in one evaluation per point; the L1 weights,
/// bounds, options and stopping rules are those of the host's.
fn auglag_external(
    model: &mut Model,
    plan: &Plan,
    device: &mut dyn External,
    instances: &[Multipliers],
    callback: Callback,
) -> Result<Outcome, Diagnostic> {
    let relations = relations_of(instances);
    /// The device's augmented Lagrangian ([`DeviceSolver::Auglag`]).
    struct Problem<'a> {
        device: &'a mut dyn External,
        dim: usize,
        relations: Vec<Relation>,
        /// The roots after the gradient: the objective, then the constraints' values.
        rest: Vec<f64>,
        error: Option<Diagnostic>,
    }
    impl solvers::ConstrainedProblem for Problem<'_> {
        fn dim(&self) -> usize {
            self.dim
        }
        fn relations(&self) -> &[Relation] {
            &self.relations
        }
        fn set_multipliers(&mut self, alpha: &[f64], rho: f64) {
            if let Err(e) = self.device.set_multipliers(alpha, rho) {
                self.error.get_or_insert(e);
            }
        }
        fn merit(&mut self, x: &[f64], grad: &mut [f64], constraints: &mut [f64]) -> MeritValue {
            let merit = self
                .device
                .eval(x, grad, &mut self.rest)
                .unwrap_or_else(|e| {
                    self.error.get_or_insert(e);
                    grad.fill(f64::NAN);
                    self.rest.fill(f64::NAN);
                    f64::NAN
                });
            constraints.copy_from_slice(&self.rest[1..]);
            MeritValue {
                merit,
                objective: self.rest[0],
            }
        }
    }
    let objective = minimized_objective(&mut model.program)?;
    // The L1 weights (the device computes the objective without its L1 terms).
    let (_, l1, _) = smooth_part(model, &plan.structure, objective, ProxScope::L1)?;
    let x0 = model.x();
    let n = x0.len();
    let mut problem = Problem {
        device,
        dim: n,
        rest: vec![0.0; 1 + relations.len()],
        relations,
        error: None,
    };
    let inner = AuglagInner::Lbfgs {
        l1,
        bounds: auglag_bounds(model, plan)?,
    };
    let solution = run_auglag(&mut problem, plan, inner, &x0, callback)?;
    let multipliers = constraint_multipliers(model, plan, &[], instances, &solution)?;
    model.set_x(&solution.report.x);
    Ok(Outcome {
        report: solution.report,
        error: problem.error,
        details: Details::Multipliers { multipliers },
    })
}

/// One instance of an equality or inequality constraint for the augmented Lagrangian: the
/// constraint's node (its `for` indices replaced by their values), the input of its multipliers
/// α (of the node's shape) and its number of components at the solve's dims.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Multipliers {
    pub input: u32,
    pub len: usize,
    pub relation: Relation,
    /// The index of the model's constraint the instance enforces.
    pub constraint: usize,
}

/// The functions of the augmented Lagrangian added to a program: the merit L_ρ(·, α)
/// (`solvers::ConstrainedProblem`) of the objective without its L1 terms (the solver splits
/// x = p − q for them) and of every equality and inequality constraint, one instance per index
/// of its `for` ranges, with its gradient; then the objective and each instance's values. The
/// multipliers of each instance and the penalty ρ are inputs the solver sets at each dual step.
struct AuglagFunctions {
    merit: Merit,
    objective: NodeId,
    instances: Vec<(NodeId, Multipliers)>,
    rho: InputId,
}

impl AuglagFunctions {
    /// The roots of one evaluation: the merit, its gradient, the objective, then each
    /// instance's values.
    fn roots(&self) -> Vec<NodeId> {
        let mut roots = self.merit.roots().to_vec();
        roots.push(self.objective);
        roots.extend(self.instances.iter().map(|(node, _)| *node));
        roots
    }

    /// The relation of each component, instance after instance.
    fn relations(&self) -> Vec<Relation> {
        relations_of(self.instances.iter().map(|(_, m)| m))
    }
}

/// The multipliers of each constraint of an augmented-Lagrangian `solution`, its `for`
/// instances stacked: shaped [range lengths..., the constraint's shape]. For a comparison,
/// those of its components; for `e in nonneg`, those of −e ≤ 0 (≥ 0); for `e in box(lo, hi)`,
/// those of e − hi ≤ 0 minus those of lo − e ≤ 0 (positive where the upper bound binds); for a
/// simplex, that of its sum = 1, shaped [range lengths...]. Those of the merit's instances are
/// its α ([`merit_multipliers`]); `nonneg` and `box` on variables, bounds of the inner L-BFGS,
/// have theirs from its reduced gradient ([`bound_multiplier`]), and none with proximal
/// gradient inside; norm balls, projected onto by proximal gradient, from stationarity
/// ([`ball_multipliers`]).
fn constraint_multipliers(
    model: &mut Model,
    plan: &Plan,
    projections: &[prox::SlotProjection],
    instances: &[Multipliers],
    solution: &AuglagSolution,
) -> Result<Vec<(usize, ndarray::ArrayD<f64>)>, Diagnostic> {
    let mut out = merit_multipliers(model, instances, &solution.multipliers);
    let reduced = &solution.reduced_gradient;
    out.extend(ball_multipliers(
        model,
        plan,
        projections,
        &solution.report.x,
        reduced,
    ));
    if plan.auglag_by_prox() {
        // Bounds are projected onto with the sets, whose multipliers are not separated.
        return Ok(out);
    }
    for p in &plan.projections {
        let kind = model.program.constraints[p.constraint].kind.clone();
        // `nonneg` reports the lower end's multiplier, λ_lo = 0 − (λ_hi − λ_lo) (not −0).
        let (lower, upper, lower_end) = match kind {
            ConstraintKind::In(SetKind::Nonneg) => (0.0, f64::INFINITY, true),
            ConstraintKind::In(SetKind::Box { lower, upper }) => (
                model.eval_scalar(lower).map_err(Diagnostic::from)?,
                model.eval_scalar(upper).map_err(Diagnostic::from)?,
                false,
            ),
            _ => continue,
        };
        let slot = model.slot(p.var).clone();
        let entry = |k: usize| {
            let at = slot.offset + k;
            let signed = bound_multiplier(solution.report.x[at], reduced[at], lower, upper);
            if lower_end {
                0.0 - signed
            } else {
                signed
            }
        };
        // The constraint's layout: per column for `for j in 0..n: x[:, j] in ...`.
        let (values, shape): (Vec<f64>, Vec<usize>) = match (p.lines, slot.shape.as_slice()) {
            (Some(1), &[rows, cols]) => (
                (0..rows * cols)
                    .map(|k| entry(k % rows * cols + k / rows))
                    .collect(),
                vec![cols, rows],
            ),
            _ => ((0..slot.len()).map(entry).collect(), slot.shape.clone()),
        };
        let array = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&shape), values)
            .expect("one multiplier per entry of the variable");
        out.push((p.constraint, array));
    }
    Ok(out)
}

/// The multiplier of each norm ball among the plan's projections (one per line of a `for` over
/// lines) at the solution `x`, whose reduced gradient ([`reduced_gradient`]) is r, from
/// stationarity ([`prox::ball_multiplier`]); the radii are those of `projections` (from
/// [`prox_sets`]).
fn ball_multipliers(
    model: &Model,
    plan: &Plan,
    projections: &[prox::SlotProjection],
    x: &[f64],
    reduced: &[f64],
) -> Vec<(usize, ndarray::ArrayD<f64>)> {
    let mut out = Vec::new();
    for p in &plan.projections {
        let Some(ball) = p.ball else { continue };
        let offset = model.slot(p.var).offset;
        let found = projections.iter().find_map(|sp| match sp.set {
            prox::Set::L1Ball(r, within) | prox::Set::L2Ball(r, within)
                if sp.offset == offset && sp.lines == p.lines =>
            {
                Some((sp, r, within))
            }
            _ => None,
        });
        let Some((sp, radius, within)) = found else {
            continue;
        };
        let bound = if ball.squared {
            radius * radius
        } else {
            radius
        };
        let gather = |v: &[f64], line: &[usize]| line.iter().map(|&k| v[k]).collect::<Vec<_>>();
        let lines = sp.lines();
        let values: Option<Vec<f64>> = lines
            .iter()
            .map(|line| {
                let l1 = ball.norm == BallNorm::L1;
                prox::ball_multiplier(
                    l1,
                    ball.squared,
                    bound,
                    within,
                    &gather(x, line),
                    &gather(reduced, line),
                )
            })
            .collect();
        let Some(values) = values else { continue };
        let shape = match p.lines {
            Some(_) => vec![lines.len()],
            None => Vec::new(),
        };
        let array = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&shape), values)
            .expect("one multiplier per line");
        out.push((p.constraint, array));
    }
    out
}

/// The multiplier of lo ≤ x ≤ hi at an entry x whose reduced gradient is r (stationarity
/// r + λ_hi − λ_lo = 0): λ_hi − λ_lo, 0 where neither end binds.
fn bound_multiplier(x: f64, r: f64, lower: f64, upper: f64) -> f64 {
    match (x == lower, x == upper) {
        (true, true) => -r,
        (true, false) => -r.max(0.0),
        (false, true) => (-r).max(0.0),
        (false, false) => 0.0,
    }
}

/// The multipliers `alpha` (one per component of `instances`, in order) of each constraint the
/// merit enforces, laid out as [`constraint_multipliers`] says.
fn merit_multipliers(
    model: &Model,
    instances: &[Multipliers],
    alpha: &[f64],
) -> Vec<(usize, ndarray::ArrayD<f64>)> {
    let dims = &model.bindings.dims;
    // Per constraint: the values of all its instances, and of its equality instances.
    let mut out: Vec<(usize, Vec<f64>, Vec<f64>)> = Vec::new();
    let mut at = 0;
    for m in instances {
        let values = &alpha[at..at + m.len];
        at += m.len;
        let index = match out.iter().position(|(i, _, _)| *i == m.constraint) {
            Some(index) => index,
            None => {
                out.push((m.constraint, Vec::new(), Vec::new()));
                out.len() - 1
            }
        };
        out[index].1.extend_from_slice(values);
        if m.relation == Relation::Equal {
            out[index].2.extend_from_slice(values);
        }
    }
    out.into_iter()
        .filter_map(|(i, all, equalities)| {
            let c = &model.program.constraints[i];
            let ranges = c
                .ranges
                .iter()
                .map(|r| (r.end.eval(dims) - r.start.eval(dims)).max(0) as usize);
            let entries = model
                .program
                .graph
                .shape(c.node)
                .iter()
                .map(|d| d.eval(dims).max(0) as usize);
            let (values, shape): (Vec<f64>, Vec<usize>) = match &c.kind {
                ConstraintKind::Eq
                | ConstraintKind::Le
                | ConstraintKind::In(SetKind::Nonneg | SetKind::Symmetric) => {
                    (all, ranges.chain(entries).collect())
                }
                ConstraintKind::In(SetKind::Box { .. }) => {
                    let (lower, upper) = all.split_at(all.len() / 2);
                    let signed = upper.iter().zip(lower).map(|(u, l)| u - l).collect();
                    (signed, ranges.chain(entries).collect())
                }
                ConstraintKind::In(SetKind::Simplex) => (equalities, ranges.collect()),
                _ => return None,
            };
            let array = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&shape), values)
                .expect("one multiplier per component of every instance");
            Some((i, array))
        })
        .collect()
}

/// The relation of each component of these instances, one after the other.
fn relations_of<'a>(instances: impl IntoIterator<Item = &'a Multipliers>) -> Vec<Relation> {
    instances
        .into_iter()
        .flat_map(|m| std::iter::repeat_n(m.relation, m.len))
        .collect()
}

fn auglag_functions(
    program: &mut Program,
    vars: &[InputId],
    plan: &Plan,
    smooth: NodeId,
    dims: &[u64],
) -> Result<AuglagFunctions, Diagnostic> {
    let (rho, rho_node) = program.add_input(
        "auglag.rho",
        InputKind::Direction,
        ElemType::Real,
        Vec::new(),
    );
    let mut instances = Vec::new();
    let relations = [
        (Relation::Equal, &plan.structure.equalities),
        (Relation::AtMost, &plan.structure.inequalities),
    ];
    let mut constraints: Vec<(Relation, NodeId, Vec<ForRange>, usize)> = Vec::new();
    for (relation, indices) in relations {
        for &i in indices {
            let c = &program.constraints[i];
            constraints.push((relation, c.node, c.ranges.clone(), i));
        }
    }
    // `in` constraints: on a variable (or all its lines) they are bounds, a simplex adding its
    // sum (unless the inner proximal gradient projects onto it); on an expression e, `nonneg`
    // is −e ≤ 0, `box(lo, hi)` is lo − e ≤ 0 and e − hi ≤ 0, and `simplex` is −e ≤ 0 with
    // sum(e) − 1 == 0. `symmetric` is e − eᵀ == 0 unless the inner proximal gradient projects.
    for (i, c) in program.constraints.clone().into_iter().enumerate() {
        let ConstraintKind::In(set) = &c.kind else {
            continue;
        };
        let bounds = plan.projections.iter().any(|p| p.constraint == i);
        if bounds && plan.auglag_by_prox() {
            continue;
        }
        let zero = program.graph.constant(0.0);
        let mut sets = Vec::new();
        match set {
            SetKind::Nonneg | SetKind::Simplex if !bounds => {
                sets.push((
                    Relation::AtMost,
                    binary(program, BinaryOp::Sub, zero, c.node),
                ));
            }
            SetKind::Box { lower, upper } if !bounds => {
                sets.push((
                    Relation::AtMost,
                    binary(program, BinaryOp::Sub, *lower, c.node),
                ));
                sets.push((
                    Relation::AtMost,
                    binary(program, BinaryOp::Sub, c.node, *upper),
                ));
            }
            _ => {}
        }
        if *set == SetKind::Symmetric {
            let transposed = program
                .graph
                .add(Op::Transpose, vec![c.node])
                .map_err(|e| plan_error("E0360", e.to_string()))?;
            sets.push((
                Relation::Equal,
                binary(program, BinaryOp::Sub, c.node, transposed),
            ));
        }
        if *set == SetKind::Simplex {
            let one = program.graph.constant(1.0);
            let sum = program
                .graph
                .add(Op::Sum { axis: None }, vec![c.node])
                .map_err(|e| plan_error("E0360", e.to_string()))?;
            sets.push((Relation::Equal, binary(program, BinaryOp::Sub, sum, one)));
        }
        constraints.extend(
            sets.into_iter()
                .map(|(r, node)| (r, node, c.ranges.clone(), i)),
        );
    }
    for (relation, node, ranges, constraint) in constraints {
        instances::check_loop_indices(program, node, &ranges, dims).map_err(|why| {
            plan_error(
                "E0405",
                format!(
                    "constraint `{}`: {why}",
                    program.constraints[constraint].name
                ),
            )
            .with_primary_at(
                program.constraints[constraint].span,
                "indexes outside its axis",
            )
            .with_hint("the range and the axis it indexes have different sizes with these data")
        })?;
        for node in constraint_instances(program, node, &ranges, dims)? {
            let shape = program.graph.shape(node).clone();
            let len = shape.iter().map(|d| d.eval(dims).max(0) as usize).product();
            let name = format!("auglag.alpha{}", instances.len());
            let (alpha, _) = program.add_input(name, InputKind::Direction, ElemType::Real, shape);
            let input = alpha.0;
            instances.push((
                node,
                Multipliers {
                    input,
                    len,
                    relation,
                    constraint,
                },
            ));
        }
    }
    let mut total = smooth;
    for (node, m) in &instances {
        let alpha = program.input_nodes[m.input as usize];
        let term = penalty_term(program, m.relation, *node, alpha, rho_node)?;
        total = binary(program, BinaryOp::Add, total, term);
    }
    let merit = merit_of(program, vars, total)?;
    Ok(AuglagFunctions {
        merit,
        objective: smooth,
        instances,
        rho,
    })
}

/// The term of `solvers::penalty` for a constraint node c with multipliers α (of c's shape) and
/// penalty ρ (a scalar): Σ(α c + (ρ/2) c²) for an equality, Σ(max(α + ρ c, 0)² − α²) / (2ρ)
/// for an inequality c ≤ 0.
fn penalty_term(
    program: &mut Program,
    relation: Relation,
    c: NodeId,
    alpha: NodeId,
    rho: NodeId,
) -> Result<NodeId, Diagnostic> {
    let half = program.graph.constant(0.5);
    let zero = program.graph.constant(0.0);
    let graph = &mut program.graph;
    let mut bin = |op: BinaryOp, a: NodeId, b: NodeId| {
        graph
            .add(Op::Binary(op), vec![a, b])
            .map_err(|e| plan_error("E0360", e.to_string()))
    };
    use BinaryOp::{Add, Div, Max, Mul, Sub};
    let elementwise = match relation {
        Relation::Equal => {
            // (α + (ρ/2) c) c
            let half_rho = bin(Mul, half, rho)?;
            let half_rho_c = bin(Mul, half_rho, c)?;
            let weight = bin(Add, alpha, half_rho_c)?;
            bin(Mul, weight, c)?
        }
        Relation::AtMost => {
            let rho_c = bin(Mul, rho, c)?;
            let shifted = bin(Add, alpha, rho_c)?;
            let w = bin(Max, shifted, zero)?;
            let w2 = bin(Mul, w, w)?;
            let a2 = bin(Mul, alpha, alpha)?;
            let difference = bin(Sub, w2, a2)?;
            let two_rho = bin(Add, rho, rho)?;
            bin(Div, difference, two_rho)?
        }
    };
    graph
        .add(Op::Sum { axis: None }, vec![elementwise])
        .map_err(|e| plan_error("E0360", e.to_string()))
}

/// Which prox terms a solver handles itself (the others stay in the smooth part).
#[derive(Clone, Copy, PartialEq, Eq)]
enum ProxScope {
    L1,
    All,
    /// Only the nuclear-norm terms, which have no derivative rule (for `--check-grad`).
    Nuclear,
}

impl ProxScope {
    /// Whether a solver with this scope handles a term of `kind` by its prox.
    fn takes(self, kind: ProxKind) -> bool {
        match self {
            ProxScope::All => true,
            ProxScope::L1 => kind == ProxKind::L1,
            ProxScope::Nuclear => kind == ProxKind::Nuclear,
        }
    }
}

/// The minimized objective that gradients can check: without its `nuclear_norm` prox terms
/// (whose prox the proximal methods apply; autodiff has no rule for them), and how many terms
/// were left out. `None` without an objective.
pub fn differentiable_objective(program: &mut Program) -> Option<(NodeId, usize)> {
    let objective = program.minimized_objective()?;
    let s = structure::analyze(program);
    let (smooth, left_out) = smooth_node(program, &s, objective, ProxScope::Nuclear);
    Some((smooth, left_out.len()))
}

/// A group-norm, nuclear-norm or TV term on one variable's slot of the flat vector: the matrix
/// of `shape` (rows, columns) or, for TV, the vector of `shape.1` entries.
struct SlotProx {
    kind: ProxKind,
    offset: usize,
    shape: (usize, usize),
    weight: f64,
}

impl SlotProx {
    fn entries(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.shape.0 * self.shape.1
    }

    fn matrix(&self, x: &[f64]) -> ndarray::Array2<f64> {
        ndarray::Array2::from_shape_vec(self.shape, x[self.entries()].to_vec())
            .expect("slot of a matrix variable")
    }

    /// Applies the prox of `step · weight · atom` to the slot of `x`.
    fn prox(&self, x: &mut [f64], step: f64) {
        let t = step * self.weight;
        if self.kind == ProxKind::Tv {
            return prox::total_variation(&mut x[self.entries()], t);
        }
        let mut m = self.matrix(x);
        match self.kind {
            ProxKind::GroupRows => prox::group_shrink_rows(&mut m, t),
            ProxKind::GroupCols => prox::group_shrink_cols(&mut m, t),
            // A failed SVD leaves the point unchanged; the next gradient step moves it.
            ProxKind::Nuclear => match prox::singular_value_threshold(&m, t) {
                Ok(shrunk) => m = shrunk,
                Err(_) => return,
            },
            ProxKind::L1 | ProxKind::Tv => unreachable!("L1 weights and TV take no matrix"),
        }
        x[self.entries()].copy_from_slice(m.as_slice().expect("row-major"));
    }

    fn value(&self, x: &[f64]) -> f64 {
        if self.kind == ProxKind::Tv {
            return self.weight * prox::total_variation_of(&x[self.entries()]);
        }
        let m = self.matrix(x);
        let norms = |axis| m.map_axis(ndarray::Axis(axis), |v| v.dot(&v).sqrt()).sum();
        self.weight
            * match self.kind {
                ProxKind::GroupRows => norms(1),
                ProxKind::GroupCols => norms(0),
                ProxKind::Nuclear => crate::linalg::singular_values(m.view())
                    .map(|s| s.iter().sum())
                    .unwrap_or(f64::NAN),
                ProxKind::L1 | ProxKind::Tv => unreachable!("L1 weights and TV take no matrix"),
            }
    }
}

/// The objective without the prox terms in `scope`, the per-element L1 weights of the flat
/// vector, and the group/nuclear terms.
fn smooth_part(
    model: &mut Model,
    s: &Structure,
    objective: NodeId,
    scope: ProxScope,
) -> Result<(NodeId, Vec<f64>, Vec<SlotProx>), Diagnostic> {
    let (smooth, split) = smooth_node(&mut model.program, s, objective, scope);
    let mut weights = vec![0.0; model.dim()];
    let mut slot_terms = Vec::new();
    for term in split {
        let w = model.eval_weight(term.weight)?;
        let slot = model.slot(term.var).clone();
        if !(w >= 0.0) {
            // −|x| is concave: no prox (the shrinkage would run the wrong way).
            return Err(plan_error(
                "E0360",
                format!(
                    "the weight of a norm of `{}` is {w}: a prox term needs a weight of 0 or more",
                    slot.name
                ),
            )
            .with_primary_at(model.program.node_span(term.node), "this term")
            .with_hint("give the parameter a nonnegative value; a negative multiple of a norm is concave, which the proximal methods do not minimize"));
        }
        if term.kind == ProxKind::L1 {
            let slot_weights = &mut weights[slot.offset..slot.offset + slot.len()];
            match term.entries {
                None => slot_weights.iter_mut().for_each(|wi| *wi += w),
                Some(entries) => {
                    let m = model.eval(&[entries]).map_err(Diagnostic::from)?.remove(0);
                    let m = m
                        .broadcast(ndarray::IxDyn(&slot.shape))
                        .expect("the structure checks that M broadcasts to the variable");
                    for (wi, mi) in slot_weights.iter_mut().zip(m.iter()) {
                        *wi += w * mi.abs();
                    }
                }
            }
        } else {
            let shape = match slot.shape[..] {
                [rows, columns] => (rows, columns),
                _ => (1, slot.len()),
            };
            slot_terms.push(SlotProx {
                kind: term.kind,
                offset: slot.offset,
                shape,
                weight: w,
            });
        }
    }
    Ok((smooth, weights, slot_terms))
}

/// The minimized objective without the prox terms `scope` takes out, added to `program`, and
/// those terms.
fn smooth_node<'s>(
    program: &mut Program,
    s: &'s Structure,
    objective: NodeId,
    scope: ProxScope,
) -> (NodeId, Vec<&'s ProxTerm>) {
    let split: Vec<&ProxTerm> = s.prox.iter().filter(|t| scope.takes(t.kind)).collect();
    if split.is_empty() {
        return (objective, Vec::new());
    }
    let kept = s
        .prox
        .iter()
        .filter(|t| !split.contains(t))
        .map(|t| (1.0, t.node));
    let mut smooth: Option<NodeId> = None;
    for (sign, term) in s.smooth.iter().copied().chain(kept) {
        let signed = if sign < 0.0 {
            program
                .graph
                .add(Op::Unary(optc_compiler::ir::UnaryOp::Neg), vec![term])
                .expect("negation")
        } else {
            term
        };
        smooth = Some(match smooth {
            None => signed,
            Some(acc) => binary(program, BinaryOp::Add, acc, signed),
        });
    }
    let smooth = smooth.unwrap_or_else(|| program.graph.constant(0.0));
    (smooth, split)
}

fn lbfgs_options(plan: &Plan, opts: &[(String, f64)]) -> Result<LbfgsOptions, Diagnostic> {
    lbfgs_options_from(plan, LbfgsOptions::default(), opts)
}

/// `base` with the options `opts` of `plan` set by name (`tol` is `gtol`).
pub(crate) fn lbfgs_options_from(
    plan: &Plan,
    mut o: LbfgsOptions,
    opts: &[(String, f64)],
) -> Result<LbfgsOptions, Diagnostic> {
    if opts.iter().any(|(k, _)| k == "tol") && opts.iter().any(|(k, _)| k == "gtol") {
        return Err(plan.option_error(solvers::options::invalid(
            "gtol",
            "`tol` is L-BFGS's `gtol`: give one of them",
        )));
    }
    let accepted: Vec<&str> = std::iter::once("tol")
        .chain(LbfgsOptions::NAMES.iter().copied())
        .collect();
    for (k, v) in opts {
        if !accepted.contains(&k.as_str()) {
            return Err(plan.option_error(solvers::options::unknown(k, &accepted)));
        }
        let key = if k == "tol" { "gtol" } else { k.as_str() };
        o.set_option(key, *v).map_err(|e| plan.option_error(e))?;
    }
    o.check().map_err(|e| plan.option_error(e))?;
    Ok(o)
}

/// Whether `root` reads node `target` (directly or through its arguments).
fn depends_on(program: &Program, root: NodeId, target: NodeId) -> bool {
    let mut seen = vec![false; root.0 as usize + 1];
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if id == target {
            return true;
        }
        if id.0 > root.0 || std::mem::replace(&mut seen[id.0 as usize], true) {
            continue;
        }
        stack.extend(&program.graph.node(id).args);
    }
    false
}

/// A noise-scale variable of `solve with colide`, updated in closed form after every Adam step:
/// the slopes of the score in σ at σ and at 2σ give the minimiser (see
/// [`solvers::concomitant_scale`]).
struct ScaleVar {
    name: String,
    offset: usize,
    len: usize,
    slope: NodeId,
    slope_at_double: NodeId,
}

/// The scale variable of `solve with colide`, with the slope nodes of `objective`: the one
/// `scale = name` gives, else the one variable that the acyclicity function `h` does not read
/// (σ for CoLiDE-EV, σ ∈ R^d for CoLiDE-NV; with several, the option must name one). A
/// `variant` must fit its shape: a scalar for `ev`, a vector for `nv`.
fn scale_vars(
    program: &mut Program,
    plan: &Plan,
    slots: &[VarSlot],
    objective: NodeId,
    h: NodeId,
) -> Result<Vec<ScaleVar>, Diagnostic> {
    let option = |key: &str| {
        plan.names
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let candidates: Vec<&VarSlot> = slots
        .iter()
        .filter(|slot| !depends_on(program, h, program.input_nodes[slot.input.0 as usize]))
        .collect();
    let names: Vec<&str> = candidates.iter().map(|s| s.name.as_str()).collect();
    let chosen: Vec<&VarSlot> = match option("scale") {
        Some(name) => {
            let Some(slot) = candidates.iter().find(|s| s.name == name) else {
                let read = slots.iter().any(|s| s.name == name);
                let why = match read {
                    true => format!("the acyclicity constraint reads `{name}`: it is no scale"),
                    false => format!("the model has no variable `{name}`"),
                };
                let guess = optc_compiler::diag::suggest(name, names.iter().copied());
                return Err(plan_error("E0362", format!("`scale = {name}`: {why}"))
                    .with_primary_at(plan.option_span("scale"), "not a scale variable")
                    .with_hint(match guess {
                        Some(g) => format!("did you mean `scale = {g}`?"),
                        None => format!(
                            "the scale is a variable the constraint does not read; here: {}",
                            names.join(", ")
                        ),
                    }));
            };
            vec![slot]
        }
        None if candidates.len() > 1 => {
            return Err(plan_error(
                "E0360",
                format!(
                    "`colide` finds several variables the acyclicity constraint does not read ({}): which is the noise scale?",
                    names.join(", ")
                ),
            )
            .with_primary_at(program.method_span(), "`colide` chosen here")
            .with_hint(format!(
                "name it, e.g. `solve with colide(scale = {})`; the others are then solved for as W is",
                names.iter().find(|n| n.contains("sigma")).unwrap_or(&names[0])
            )))
        }
        None => candidates,
    };
    if let (Some(variant), Some(slot)) = (option("variant"), chosen.first()) {
        let scalar = slot.len() == 1 && slot.shape.is_empty();
        if (variant == "ev") != scalar {
            let wants = match variant {
                "ev" => "a scalar scale (equal noise variances)",
                _ => "a vector scale, one per node",
            };
            return Err(plan_error(
                "E0362",
                format!(
                    "`variant = \"{variant}\"` takes {wants}; `{}` has shape {:?}",
                    slot.name, slot.shape
                ),
            )
            .with_primary_at(plan.option_span("variant"), "does not fit the scale")
            .with_hint("`ev` takes `var sigma : real`, `nv` takes `var sigma : real[d]`"));
        }
    }
    let mut scales = Vec::new();
    for slot in chosen {
        let node = program.input_nodes[slot.input.0 as usize];
        let slope = autodiff::gradient(program, objective, &[slot.input])
            .map_err(|e| e.diagnostic(program))?[0];
        let two = program.graph.constant(2.0);
        let doubled = binary(program, BinaryOp::Mul, two, node);
        let slope_at_double = program
            .graph
            .substitute(slope, node, doubled)
            .map_err(|e| plan_error("E0360", e.to_string()))?;
        scales.push(ScaleVar {
            name: slot.name.clone(),
            offset: slot.offset,
            len: slot.len(),
            slope,
            slope_at_double,
        });
    }
    if scales.is_empty() {
        return Err(plan_error(
            "E0360",
            "`colide` needs a noise-scale variable that the acyclicity constraint does not read",
        )
        .with_primary_at(program.method_span(), "`colide` chosen here")
        .with_hint("declare e.g. `var sigma : real >= 1e-6 = 1` and use it in the score as in examples/dag/colide.opt"));
    }
    Ok(scales)
}

/// Sets every scale variable in `x` to its closed-form minimiser given the other variables
/// (then clamps to the bounds). Errors name a scale in which the score is not of the form
/// a/σ + b·σ + (terms without σ).
fn update_scales(
    model: &mut Model,
    scales: &[ScaleVar],
    bounds: &Bounds,
    x: &mut [f64],
) -> Result<(), Diagnostic> {
    model.set_x(x);
    let roots: Vec<NodeId> = scales
        .iter()
        .flat_map(|v| [v.slope, v.slope_at_double])
        .collect();
    let values = model.eval(&roots).map_err(Diagnostic::from)?;
    for (v, slopes) in scales.iter().zip(values.chunks(2)) {
        for (k, (g, g2)) in slopes[0].iter().zip(slopes[1].iter()).enumerate() {
            let i = v.offset + k;
            x[i] = scale_update(v, x[i], *g, *g2, bounds.lower()[i], bounds.upper()[i])?;
        }
    }
    Ok(())
}

/// Whether the closed-form scale update reached a fixed point: applied to `first` (itself an
/// update) it gave `second`. Otherwise the objective is not of the form a/σ + b·σ in a scale.
fn check_scale_form(scales: &[ScaleVar], first: &[f64], second: &[f64]) -> Result<(), Diagnostic> {
    match scales.iter().find(|v| {
        (v.offset..v.offset + v.len)
            .any(|i| (second[i] - first[i]).abs() > 1e-6 * first[i].abs().max(1e-12))
    }) {
        Some(v) => Err(plan_error(
            "E0360",
            format!("`colide`: the objective is not of the form a/σ + c·σ in the scale σ = `{}` (its closed-form update does not reach a fixed point)", v.name),
        )),
        None => Ok(()),
    }
}

/// The closed-form minimiser of a scale entry σ (now `sigma`) given the slopes `g` at σ and
/// `g2` at 2σ of the objective in it, clamped to `[lower, upper]`.
fn scale_update(
    v: &ScaleVar,
    sigma: f64,
    g: f64,
    g2: f64,
    lower: f64,
    upper: f64,
) -> Result<f64, Diagnostic> {
    let s = solvers::concomitant_scale(sigma, g, g2).ok_or_else(|| {
        plan_error(
            "E0360",
            format!(
                "`colide`: the objective is not of the form a/σ + c·σ (a ≥ 0, c > 0) in the scale σ = `{}`",
                v.name
            ),
        )
        .with_hint("the CoLiDE scores are 1/(2nσ)‖X − XW‖² + dσ/2 (EV) and Σⱼ ‖X_j − XW_j‖²/(2nσⱼ) + σⱼ/2 (NV)")
    })?;
    Ok(s.clamp(lower, upper))
}

/// The DAGMA-style central path: stage t minimizes μ_t·f(x) + h(W/√s_t), where h is the model's
/// one equality constraint (for `dagma_logdet(W, s = 1)` this is exactly h^{s_t}(W)).
/// With `solve with colide`, the variables h does not read are noise scales set in closed form
/// after every Adam step (CoLiDE's block-coordinate scheme). With `inner = lbfgs` the stages are
/// solved by bound-constrained L-BFGS within the variables' bounds, on the split x = p − q when f
/// has L1 terms (as the augmented Lagrangian does).
fn path(
    model: &mut Model,
    plan: &Plan,
    objective: NodeId,
    x0: &[f64],
    callback: Callback,
    error: &mut Option<Diagnostic>,
) -> Result<Report, Diagnostic> {
    let c = model.program.constraints[plan.structure.equalities[0]].clone();
    let PathKind {
        colide,
        lbfgs_stages,
    } = path_kind(plan)?;
    let (score, l1) = if lbfgs_stages {
        let (smooth, l1, _) = smooth_part(model, &plan.structure, objective, ProxScope::L1)?;
        (smooth, l1)
    } else {
        (objective, Vec::new())
    };
    let vars: Vec<InputId> = model.vars.iter().map(|v| v.input).collect();
    let PathMerit {
        merit,
        mu: mu_id,
        scale: scale_id,
        h,
    } = path_merit(&mut model.program, &vars, score, c.node)?;
    model.bind_added_params();
    let mut scales = if colide {
        let slots = model.vars.clone();
        scale_vars(&mut model.program, plan, &slots, objective, c.node)?
    } else {
        Vec::new()
    };
    let mut roots = merit.roots().to_vec();
    roots.push(h);
    roots.extend(scales.iter().flat_map(|v| [v.slope, v.slope_at_double]));
    let mut new = finalize(model, plan, roots)?.into_iter();
    let merit = merit.renamed(&mut new);
    let h_value = new.next().expect("root");
    for v in &mut scales {
        v.slope = new.next().expect("root");
        v.slope_at_double = new.next().expect("root");
    }
    let bounds = bounds(model)?;
    let mut x0 = x0.to_vec();
    if !scales.is_empty() {
        // Start from the closed-form scales; applying the update twice checks its form.
        update_scales(model, &scales, &bounds, &mut x0)?;
        let first = x0.clone();
        update_scales(model, &scales, &bounds, &mut x0)?;
        check_scale_form(&scales, &first, &x0)?;
    }
    struct Objective<'a> {
        model: &'a mut Model,
        merit: Merit,
        mu: InputId,
        scale: InputId,
        h: NodeId,
        bounds: Bounds,
        scales: Vec<ScaleVar>,
        error: &'a mut Option<Diagnostic>,
        current: (f64, f64),
    }
    impl Objective<'_> {
        fn set(&mut self, mu: f64, s: f64) {
            if self.current != (mu, s) {
                self.model.set_param(self.mu, mu);
                self.model.set_param(self.scale, 1.0 / s.sqrt());
                self.current = (mu, s);
            }
        }
    }
    impl PathObjective for Objective<'_> {
        fn dim(&self) -> usize {
            self.model.dim()
        }
        fn value_grad(&mut self, x: &[f64], mu: f64, s: f64, grad: &mut [f64]) -> Option<f64> {
            self.set(mu, s);
            self.model.set_x(x);
            let v = eval_merit(self.model, &self.merit, x, grad, self.error);
            v.is_finite().then_some(v)
        }
        fn optimality(&self, x: &[f64], grad: &[f64]) -> f64 {
            self.bounds.projected_gradient_norm(x, grad)
        }
        fn after_step(&mut self, x: &mut [f64]) {
            self.bounds.project(x);
            if self.scales.is_empty() {
                return;
            }
            if let Err(e) = update_scales(self.model, &self.scales, &self.bounds, x) {
                // Keep the Adam step for the scales; report the first failure.
                if self.error.is_none() {
                    *self.error = Some(e);
                }
            }
        }
        fn violation(&mut self, x: &[f64]) -> f64 {
            self.model.set_x(x);
            self.model
                .eval_scalar(self.h)
                .map(f64::abs)
                .unwrap_or(f64::NAN)
        }
    }
    let kind = PathKind {
        colide,
        lbfgs_stages,
    };
    let mut objective = Objective {
        model,
        merit,
        mu: mu_id,
        scale: scale_id,
        h: h_value,
        bounds: bounds.clone(),
        scales,
        error,
        current: (f64::NAN, f64::NAN),
    };
    run_path(&mut objective, plan, &kind, l1, &bounds, &x0, callback)
}

/// The central path with the plan's options on `objective` from `x0`: Adam stages (CoLiDE's
/// defaults for `colide`), or L-BFGS-B stages within `bounds`, on the split x = p − q when the
/// L1 weights `l1` (terms left out of `objective`'s score) are nonzero somewhere.
fn run_path(
    objective: &mut dyn PathObjective,
    plan: &Plan,
    kind: &PathKind,
    l1: Vec<f64>,
    bounds: &Bounds,
    x0: &[f64],
    callback: Callback,
) -> Result<Report, Diagnostic> {
    let split = l1
        .iter()
        .any(|w| *w != 0.0)
        .then_some(L1Split { weights: l1 });
    let stage_bounds = match &split {
        Some(_) => L1Split::bounds(bounds)?,
        None => bounds.clone(),
    };
    let opts = path_options(plan, kind.defaults(stage_bounds))?;
    match split {
        Some(split) => {
            let z0 = L1Split::split(x0);
            let mut split = SplitPath {
                inner: objective,
                split,
                grad: vec![0.0; x0.len()],
            };
            let mut report = central_path(&mut split, &z0, &opts, callback).report;
            report.x = split.split.join(&report.x);
            Ok(report)
        }
        None => Ok(central_path(objective, x0, &opts, callback).report),
    }
}

/// Which central path `plan` runs: CoLiDE's (noise scales set in closed form) and whether its
/// stages are solved by L-BFGS (`inner = lbfgs`) instead of Adam.
struct PathKind {
    colide: bool,
    lbfgs_stages: bool,
}

impl PathKind {
    /// The path's default options, L-BFGS stages within `bounds`.
    fn defaults(&self, bounds: Bounds) -> PathOptions {
        if self.colide {
            PathOptions::colide()
        } else if self.lbfgs_stages {
            PathOptions::lbfgs(bounds)
        } else {
            PathOptions::default()
        }
    }
}

fn path_kind(plan: &Plan) -> Result<PathKind, Diagnostic> {
    Ok(match &plan.solve {
        Some(spec) => PathKind {
            colide: spec.method == "colide",
            lbfgs_stages: path_uses_lbfgs(spec, &plan.names)?,
        },
        None => PathKind {
            colide: false,
            lbfgs_stages: false,
        },
    })
}

/// `opts` with the plan's options of `solve with path(...)` applied.
fn path_options(plan: &Plan, mut opts: PathOptions) -> Result<PathOptions, Diagnostic> {
    for (k, v) in &plan.options {
        opts.set_option(k, *v).map_err(|e| plan.option_error(e))?;
    }
    for (k, list) in &plan.lists {
        match k.as_str() {
            "s" if list.is_empty() => {
                return Err(plan_error(
                    "E0362",
                    "option `s` of `path` needs at least one value",
                )
                .with_primary_at(plan.option_span("s"), "an empty list")
                .with_hint("give the schedule, e.g. `s = [1, 0.9, 0.8]`, or one value for every stage, `s = 1`"))
            }
            "s" => opts.s = list.clone(),
            other => {
                return Err(plan_error(
                    "E0362",
                    format!("option `{other}` of `path` takes a number, not a list"),
                )
                .with_primary_at(plan.option_span(other), "a list"))
            }
        }
    }
    Ok(opts)
}

/// Splits `solve with auglag(...)` options by name into the outer loop's and the inner
/// solver's (L-BFGS's, or proximal gradient's with `by_prox`); `rho` is the initial penalty and,
/// for L-BFGS, `tol` its `gtol`. Unknown names are an error; values are checked where each part
/// is parsed, so a bad value is reported as such.
fn split_auglag_options(
    plan: &Plan,
    by_prox: bool,
) -> Result<(NumberOptions, NumberOptions), Diagnostic> {
    let (inner_kind, mut inner_names) = match by_prox {
        true => (
            "inner proximal-gradient options (with `card`)",
            ProxGradOptions::NAMES.to_vec(),
        ),
        false => ("inner L-BFGS options", LbfgsOptions::NAMES.to_vec()),
    };
    if !by_prox {
        inner_names.insert(0, "tol");
    }
    let mut outer_names = vec!["rho"];
    outer_names.extend_from_slice(AugLagOptions::NAMES);
    let (mut outer, mut inner) = (Vec::new(), Vec::new());
    for (k, v) in &plan.options {
        let key = if k == "rho" { "rho_init" } else { k.as_str() };
        if AugLagOptions::NAMES.contains(&key) {
            outer.push((key.to_string(), *v));
        } else if inner_names.contains(&k.as_str()) {
            inner.push((k.clone(), *v));
        } else {
            let all: Vec<&str> = outer_names.iter().chain(&inner_names).copied().collect();
            return Err(plan_error(
                "E0362",
                format!(
                    "`auglag` has no option `{k}`{}",
                    solvers::did_you_mean(k, &all)
                ),
            )
            .with_primary_at(plan.option_span(k), "unknown option")
            .with_hint(format!(
                "outer options: {}; {inner_kind}: {}",
                outer_names.join(", "),
                inner_names.join(", ")
            )));
        }
    }
    Ok((outer, inner))
}

/// The split x = p − q with p, q ≥ 0 (as in NOTEARS) that makes weighted L1 terms smooth: over
/// z = (p, q), Σ wᵢ|xᵢ| becomes the linear Σ wᵢ(pᵢ + qᵢ), equal to it where pᵢqᵢ = 0 (at every
/// minimiser when wᵢ > 0).
struct L1Split {
    weights: Vec<f64>,
}

impl L1Split {
    /// z = (max(x, 0), max(−x, 0)).
    fn split(x: &[f64]) -> Vec<f64> {
        x.iter()
            .map(|v| v.max(0.0))
            .chain(x.iter().map(|v| (-v).max(0.0)))
            .collect()
    }

    /// x = p − q.
    fn join(&self, z: &[f64]) -> Vec<f64> {
        let n = self.weights.len();
        (0..n).map(|i| z[i] - z[n + i]).collect()
    }

    /// The box of z whose points p − q are exactly the box l ≤ x ≤ u:
    /// max(l, 0) ≤ p ≤ max(u, 0), max(−u, 0) ≤ q ≤ max(−l, 0).
    fn bounds(b: &Bounds) -> Result<Bounds, Diagnostic> {
        let pos = |v: &f64| v.max(0.0);
        let neg = |v: &f64| (-v).max(0.0);
        let lower = b.lower().iter().map(pos).chain(b.upper().iter().map(neg));
        let upper = b.upper().iter().map(pos).chain(b.lower().iter().map(neg));
        Bounds::new(lower.collect(), upper.collect()).map_err(|m| plan_error("E0362", m))
    }

    /// f(x) + scale·Σ wᵢ(pᵢ + qᵢ) from f(x) and ∇f(x) at x = p − q; writes its gradient in z.
    fn lift(&self, z: &[f64], f: f64, grad_x: &[f64], scale: f64, grad_z: &mut [f64]) -> f64 {
        let n = self.weights.len();
        let mut penalty = 0.0;
        for i in 0..n {
            let w = scale * self.weights[i];
            penalty += w * (z[i] + z[n + i]);
            grad_z[i] = grad_x[i] + w;
            grad_z[n + i] = -grad_x[i] + w;
        }
        f + penalty
    }
}

/// A constrained problem with weighted L1 terms over the split z = (p, q): the merit of x = p − q
/// plus Σ wᵢ(pᵢ + qᵢ) (to be solved with p, q ≥ 0).
struct SplitL1<'a, P: ?Sized> {
    inner: &'a mut P,
    split: L1Split,
    grad: Vec<f64>,
}

impl<P: solvers::ConstrainedProblem + ?Sized> solvers::ConstrainedProblem for SplitL1<'_, P> {
    fn dim(&self) -> usize {
        2 * self.inner.dim()
    }

    fn relations(&self) -> &[Relation] {
        self.inner.relations()
    }

    fn set_multipliers(&mut self, alpha: &[f64], rho: f64) {
        self.inner.set_multipliers(alpha, rho);
    }

    fn merit(&mut self, z: &[f64], grad: &mut [f64], constraints: &mut [f64]) -> MeritValue {
        let inner = self
            .inner
            .merit(&self.split.join(z), &mut self.grad, constraints);
        let merit = self.split.lift(z, inner.merit, &self.grad, 1.0, grad);
        MeritValue {
            merit,
            objective: inner.objective + (merit - inner.merit),
        }
    }
}

/// A path objective over the split z = (p, q) of one over x = p − q without its L1 terms: adds
/// μ·Σ wᵢ(pᵢ + qᵢ) (the L1 terms belong to the score, which the path weights by μ).
struct SplitPath<'a> {
    inner: &'a mut dyn PathObjective,
    split: L1Split,
    grad: Vec<f64>,
}

impl PathObjective for SplitPath<'_> {
    fn dim(&self) -> usize {
        2 * self.inner.dim()
    }

    fn value_grad(&mut self, z: &[f64], mu: f64, s: f64, grad: &mut [f64]) -> Option<f64> {
        let x = self.split.join(z);
        let f = self.inner.value_grad(&x, mu, s, &mut self.grad)?;
        Some(self.split.lift(z, f, &self.grad, mu, grad))
    }

    fn violation(&mut self, z: &[f64]) -> f64 {
        self.inner.violation(&self.split.join(z))
    }
}

/// A model's augmented Lagrangian ([`AuglagFunctions`]), evaluated by the model with the
/// multipliers and the penalty bound as inputs.
struct ModelConstrained<'a> {
    model: &'a mut Model,
    /// Each instance's multipliers input and shape.
    multipliers: Vec<(InputId, Vec<usize>)>,
    rho: InputId,
    /// [`AuglagFunctions::roots`] in the (simplified) model's program.
    roots: Vec<NodeId>,
    num_grads: usize,
    relations: Vec<Relation>,
    error: &'a mut Option<Diagnostic>,
}

impl solvers::ConstrainedProblem for ModelConstrained<'_> {
    fn dim(&self) -> usize {
        self.model.dim()
    }

    fn relations(&self) -> &[Relation] {
        &self.relations
    }

    fn set_multipliers(&mut self, alpha: &[f64], rho: f64) {
        let mut at = 0;
        for (input, shape) in &self.multipliers {
            let len = shape.iter().product::<usize>();
            self.model.set_input(*input, shape, &alpha[at..at + len]);
            at += len;
        }
        self.model.set_input(self.rho, &[], &[rho]);
    }

    fn merit(&mut self, x: &[f64], grad: &mut [f64], constraints: &mut [f64]) -> MeritValue {
        self.model.set_x(x);
        match self.model.eval_ref(&self.roots) {
            Ok(values) => {
                write_gradient(&values[1..1 + self.num_grads], grad);
                let mut at = 0;
                for v in &values[2 + self.num_grads..] {
                    v.iter().for_each(|c| {
                        constraints[at] = *c;
                        at += 1;
                    });
                }
                let scalar =
                    |a: &ndarray::ArrayD<f64>| a.iter().next().copied().unwrap_or(f64::NAN);
                MeritValue {
                    merit: scalar(&values[0]),
                    objective: scalar(&values[1 + self.num_grads]),
                }
            }
            Err(e) => {
                constraints.fill(f64::NAN);
                if self.error.is_none() {
                    *self.error = Some(e.diagnostic(&self.model.program));
                }
                MeritValue {
                    merit: f64::NAN,
                    objective: f64::NAN,
                }
            }
        }
    }
}
