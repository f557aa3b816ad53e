//! `solve with dual`: sparsity-constrained optimal transport (Liu, Puigcerver, Blondel 2023)
//! through its duals, checked against POT's values on the case of `scripts/pot_reference.py`
//! (m = n = 20, γ = 0.1, data in `tests/data/pot_ot`), against weak duality and finite
//! differences, in its row-wise form, and for its errors.

use optc_compiler::driver::{compile, Until};
use optc_runtime::model::{bind, BindSpec, Model};
use optc_runtime::plan::{self, Method, Outcome};
use optc_runtime::simulate::Rng;
use optc_runtime::solvers::{Control, IterInfo, Status};
use optc_runtime::transport::{DualForm, Part, Transport};
use std::path::Path;

/// POT's ⟨T, C⟩ for the unregularized (EMD, k = 1) and the quadratically regularized plan
/// (k ≥ 5, the largest column support of the latter).
const EMD_COST: f64 = 0.038316377156525125;
const QUADRATIC_COST: f64 = 0.038551137522649895;
/// (γ/2)‖T‖² of a plan with one entry 1/20 per column: 0.05 · 20 / 400.
const ONE_PER_COLUMN_REGULARIZER: f64 = 0.0025;

fn go_on(_: &IterInfo) -> Control {
    Control::Continue
}

fn model(source: &str) -> Result<Model, String> {
    let program = compile("ot.opt", source, Until::Ir)
        .map_err(|e| format!("{:?}", e.diagnostics))?
        .program
        .expect("ir");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pot_ot");
    let bindings = bind(&program, &dir, &BindSpec::default()).map_err(|e| format!("{e:?}"))?;
    Model::new(program, bindings).map_err(|e| format!("{e:?}"))
}

/// The test case with at most `k` nonzeros per column (per row of the transposed plan when
/// `rows`), solved by `dual(form = form)`.
fn source(k: usize, form: &str, rows: bool) -> String {
    let (shape, cost, sums, card) = if rows {
        (
            "real[n, m]",
            "transpose(C)",
            "rows: sum(T, axis = 1) == b\n  cols: sum(T, axis = 0) == a",
            "for i in 0..n: card(T[i, :]) <= k",
        )
    } else {
        (
            "real[m, n]",
            "C",
            "rows: sum(T, axis = 1) == a\n  cols: sum(T, axis = 0) == b",
            "for j in 0..n: card(T[:, j]) <= k",
        )
    };
    format!(
        "dims m, n
data a : real[m] = load(\"a.npy\")
data b : real[n] = load(\"b.npy\")
data C : real[m, n] = load(\"C.npy\")
param gamma = 0.1
param k : int = {k}
var T : {shape} >= 0
minimize sum({cost} .* T) + gamma / 2 * sumsq(T)
subject to
  {sums}
  sparse: {card}
solve with dual(lbfgs(max_iter = 2000, tol = 1e-8), form = \"{form}\")
output cost = sum({cost} .* T)
"
    )
}

struct Solved {
    outcome: Outcome,
    /// ⟨C, T⟩, the largest number of nonzeros of a constrained line, and the constraints'
    /// violations (rows, cols, sparse).
    cost: f64,
    violations: [f64; 3],
    objective: f64,
}

fn solve(k: usize, form: &str, rows: bool) -> Solved {
    let mut model = model(&source(k, form, rows)).unwrap();
    let plan = plan::choose(&model.program).unwrap();
    assert_eq!(plan.method, Method::Dual);
    let outcome = plan::solve(&mut model, &plan, &mut go_on).unwrap();
    let cost_node = model.program.outputs[0].node;
    let objective_node = model.program.objective.as_ref().unwrap().node;
    Solved {
        cost: model.eval_scalar(cost_node).unwrap(),
        objective: model.eval_scalar(objective_node).unwrap(),
        violations: [0, 1, 2].map(|i| model.violation(i).unwrap()),
        outcome,
    }
}

#[test]
fn one_nonzero_per_column_is_unregularized_transport() {
    // k = 1: every column sends its whole mass to one row, so the regularizer is a constant and
    // the semi-dual's plan is the optimal assignment, with no duality gap.
    let s = solve(1, "semi", false);
    assert_eq!(s.outcome.report.status, Status::Converged);
    assert!((s.cost - EMD_COST).abs() < 1e-9, "{}", s.cost);
    assert!(
        s.violations.iter().all(|v| *v < 1e-15),
        "{:?}",
        s.violations
    );
    let bound = s.outcome.details.dual_bound().unwrap();
    assert!((s.objective - (EMD_COST + ONE_PER_COLUMN_REGULARIZER)).abs() < 1e-9);
    assert!(
        (bound - s.objective).abs() < 1e-9,
        "{bound} {}",
        s.objective
    );
}

#[test]
fn terms_without_the_plan_count_in_the_dual_bound() {
    // A constant and a data-only term shift the objective and the bound alike: no gap.
    let base = source(5, "semi", false);
    let shifted = base.replace("sumsq(T)\n", "sumsq(T) + 3 + sumsq(a)\n");
    assert_ne!(base, shifted);
    let mut bounds = Vec::new();
    for source in [base, shifted] {
        let mut model = model(&source).unwrap();
        let plan = plan::choose(&model.program).unwrap();
        assert_eq!(plan.method, Method::Dual);
        let outcome = plan::solve(&mut model, &plan, &mut go_on).unwrap();
        let objective = model.program.objective.as_ref().unwrap().node;
        let objective = model.eval_scalar(objective).unwrap();
        let bound = outcome.details.dual_bound().unwrap();
        assert!((objective - bound).abs() < 1e-8, "{objective} {bound}");
        bounds.push(bound);
    }
    // The same plan: the shift is exactly 3 + ‖a‖² > 3.
    assert!(bounds[1] - bounds[0] > 3.0, "{bounds:?}");
}

#[test]
fn a_bound_above_the_support_is_quadratically_regularized_transport() {
    // k ≥ 5 does not bind (the regularized plan has at most 5 nonzeros per column): both duals
    // are smooth and reach POT's plan, feasible, with no duality gap.
    for (k, form) in [(5, "semi"), (20, "semi"), (5, "full"), (19, "full")] {
        let s = solve(k, form, false);
        let r = &s.outcome.report;
        assert_eq!(r.status, Status::Converged, "k = {k}, {form}");
        // POT stops with row sums 1.4e-5 off: its cost is that close.
        assert!(
            (s.cost - QUADRATIC_COST).abs() < 1e-6,
            "k = {k}, {form}: {}",
            s.cost
        );
        assert!(s.violations.iter().all(|v| *v < 1e-7), "{:?}", s.violations);
        let bound = s.outcome.details.dual_bound().unwrap();
        // A plan whose marginals are 1e-8 off may sit that far below the bound.
        assert!(
            (s.objective - bound).abs() < 1e-8,
            "k = {k}, {form}: {} {bound}",
            s.objective
        );
    }
}

#[test]
fn intermediate_bounds_give_feasible_sparse_plans_with_a_certified_gap() {
    // 1 < k < 5: the dual is a relaxation whose plan meets the sparsity but misses the row sums
    // (as POT's: 1.5e-2 at k = 2, 1.1e-2 at k = 3). The problem restricted to that plan's
    // support then gives a feasible plan with k nonzeros per column; its objective is within a
    // small gap above the dual bound. The bounds decrease as k grows.
    let mut previous = solve(1, "semi", false)
        .outcome
        .details
        .dual_bound()
        .unwrap();
    for k in [2, 3] {
        let s = solve(k, "semi", false);
        assert_eq!(s.outcome.report.status, Status::Converged, "k = {k}");
        assert!(
            s.violations.iter().all(|v| *v < 1e-7),
            "k = {k}: {:?}",
            s.violations
        );
        assert_eq!(s.violations[2], 0.0, "k = {k}");
        let bound = s.outcome.details.dual_bound().unwrap();
        let gap = s.objective - bound;
        // Measured: 0.4 % of the bound at k = 2, 0.02 % at k = 3.
        assert!(gap > -1e-8 && gap < 1e-2 * bound, "k = {k}: gap {gap}");
        assert!(bound < previous, "k = {k}: {bound} !< {previous}");
        previous = bound;
    }
    let quadratic = solve(5, "semi", false)
        .outcome
        .details
        .dual_bound()
        .unwrap();
    assert!(quadratic < previous);
}

#[test]
fn a_bound_per_row_solves_the_transposed_problem() {
    // The same problem with the plan transposed: the rows are the sparse lines.
    for (k, form) in [(1, "semi"), (3, "semi"), (5, "full")] {
        let columns = solve(k, form, false);
        let rows = solve(k, form, true);
        assert!((columns.cost - rows.cost).abs() < 1e-12, "k = {k}, {form}");
        assert_eq!(rows.violations[2], 0.0);
        let (a, b) = (
            columns.outcome.details.dual_bound().unwrap(),
            rows.outcome.details.dual_bound().unwrap(),
        );
        assert!((a - b).abs() < 1e-12, "k = {k}, {form}: {a} {b}");
    }
}

/// A random problem over `units` units of length `len` with equal total masses.
fn random_transport(rng: &mut Rng, units: usize, len: usize, k: usize) -> Transport {
    let mut mass: Vec<f64> = (0..units).map(|_| 0.5 + rng.uniform()).collect();
    let mut target: Vec<f64> = (0..len).map(|_| 0.5 + rng.uniform()).collect();
    let (sm, st) = (mass.iter().sum::<f64>(), target.iter().sum::<f64>());
    mass.iter_mut().for_each(|v| *v /= sm);
    target.iter_mut().for_each(|v| *v /= st);
    Transport {
        units,
        len,
        cost: (0..units * len).map(|_| rng.uniform()).collect(),
        mass,
        target,
        gamma: 0.3,
        k,
        support: None,
    }
}

#[test]
fn dual_gradients_match_finite_differences() {
    let mut rng = Rng::new(5);
    for (form, k) in [
        (DualForm::Semi, 2),
        (DualForm::Semi, 7),
        (DualForm::Full, 3),
        (DualForm::Full, usize::MAX),
    ] {
        let t = random_transport(&mut rng, 6, 7, k);
        let dim = t.dual_dim(form);
        let y: Vec<f64> = (0..dim).map(|_| 0.5 * rng.normal()).collect();
        let mut grad = vec![0.0; dim];
        t.negative_dual(form, &y, &mut grad);
        let mut scratch = vec![0.0; dim];
        for i in 0..dim {
            let h = 1e-6;
            let (mut plus, mut minus) = (y.clone(), y.clone());
            plus[i] += h;
            minus[i] -= h;
            let fd = (t.negative_dual(form, &plus, &mut scratch)
                - t.negative_dual(form, &minus, &mut scratch))
                / (2.0 * h);
            assert!(
                (fd - grad[i]).abs() < 1e-6,
                "{form:?} k = {k}, entry {i}: {fd} vs {}",
                grad[i]
            );
        }
    }
}

#[test]
fn the_plan_has_k_nonzeros_per_unit_and_the_semi_duals_masses() {
    let mut rng = Rng::new(9);
    let t = random_transport(&mut rng, 5, 8, 3);
    let y: Vec<f64> = (0..8).map(|_| rng.normal()).collect();
    let plan = t.plan(DualForm::Semi, &y);
    for (j, unit) in plan.chunks(8).enumerate() {
        assert!(unit.iter().filter(|v| **v != 0.0).count() <= 3);
        assert!(unit.iter().all(|v| *v >= 0.0));
        assert!((unit.iter().sum::<f64>() - t.mass[j]).abs() < 1e-12);
    }
}

#[test]
fn bad_numbers_are_explained() {
    let mut rng = Rng::new(2);
    let good = random_transport(&mut rng, 3, 4, 2);
    assert!(good.validate().is_ok());
    let unequal = Transport {
        mass: vec![1.0; 3],
        ..good.clone()
    };
    let e = unequal.validate().unwrap_err();
    assert!(e.message.contains("different total mass"), "{e:?}");
    assert_eq!(e.part, Part::Mass);
    let flat = Transport {
        gamma: 0.0,
        ..good.clone()
    };
    assert!(flat
        .validate()
        .unwrap_err()
        .message
        .contains("must be positive"));
    let none = Transport {
        k: 0,
        ..good.clone()
    };
    assert_eq!(none.validate().unwrap_err().part, Part::Sparsity);
    // The first bad entry of the marginal it is in, with its value.
    let mut target = good.target.clone();
    target[1] = -1e-18;
    let negative = Transport { target, ..good };
    let e = negative.validate().unwrap_err();
    assert_eq!(e.part, Part::Target);
    assert!(
        e.message.contains("entry 1 is -0.000000000000000001")
            || e.message.contains("entry 1 is -1e-18"),
        "{e:?}"
    );
}

fn plan_error(source: &str) -> (String, String) {
    let model = model(source).unwrap();
    let e = plan::choose(&model.program).expect_err("refused").remove(0);
    (e.code.to_string(), e.message)
}

/// The lines the labels of `source`'s planning error point at, primary first.
fn labelled_lines(source: &str) -> Vec<usize> {
    let model = model(source).unwrap();
    let e = plan::choose(&model.program).expect_err("refused").remove(0);
    let mut labels = e.labels.clone();
    labels.sort_by_key(|l| !l.primary);
    let line = |offset: u32| source[..offset as usize].matches('\n').count() + 1;
    labels.iter().map(|l| line(l.span.start)).collect()
}

#[test]
fn models_outside_the_transport_form_are_refused_with_the_reason() {
    let base = source(3, "semi", false);
    // A missing marginal.
    let (code, message) = plan_error(&base.replace("  cols: sum(T, axis = 0) == b\n", ""));
    assert_eq!(code, "E0360");
    assert!(message.contains("both marginals"), "{message}");
    // No regularization.
    let (code, message) = plan_error(&base.replace(" + gamma / 2 * sumsq(T)", ""));
    assert_eq!(code, "E0360");
    assert!(message.contains("no regularization"), "{message}");
    // Another term.
    let extra_term = base.replace("sumsq(T)", "sumsq(T) + sum(exp(T))");
    let (code, message) = plan_error(&extra_term);
    assert_eq!(code, "E0360");
    assert!(message.contains("term 3"), "{message}");
    // The error points at the term, then at `solve with dual`.
    let line_of = |text: &str, what: &str| text.lines().position(|l| l.contains(what)).unwrap() + 1;
    assert_eq!(
        labelled_lines(&extra_term),
        [
            line_of(&extra_term, "sum(exp(T))"),
            line_of(&extra_term, "solve with")
        ]
    );
    // A constraint that does not fit is pointed at.
    let capped = base.replace("  cols:", "  cap: sum(T) <= 1\n  cols:");
    assert_eq!(labelled_lines(&capped)[0], line_of(&capped, "cap:"));
    // Another inner method, another form.
    let (code, _) = plan_error(&base.replace("lbfgs(max_iter = 2000, tol = 1e-8)", "adam"));
    assert_eq!(code, "E0362");
    let (code, message) = plan_error(&base.replace("\"semi\"", "\"half\""));
    assert_eq!(code, "E0362", "{message}");
}

#[test]
fn a_transport_model_without_solve_with_gets_the_semi_dual() {
    let source = source(3, "semi", false).replace(
        "solve with dual(lbfgs(max_iter = 2000, tol = 1e-8), form = \"semi\")\n",
        "",
    );
    let model = model(&source).unwrap();
    let plan = plan::choose(&model.program).unwrap();
    assert_eq!(plan.method, Method::Dual);
    assert!(plan.reason.contains("semi-dual"), "{}", plan.reason);
}
