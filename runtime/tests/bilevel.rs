//! `solve with maid` on bilevel models: known optima of ridge-type lower levels (scalar and
//! vector hyperparameters, free or bounded), the TV-denoising example against the interpreter's
//! own minimization of F(θ) = G(x̂(θ)), two lower levels side by side (the cross-validation
//! example) against the closed form, and the errors.

#[path = "support/search.rs"]
mod search;

use optc_compiler::driver::{compile, Until};
use optc_runtime::model::{bind, BindSpec, Model};
use optc_runtime::plan::{self, Details, Method, Outcome};
use optc_runtime::solvers::{Control, IterInfo, Status};
use search::golden_section;
use std::path::Path;

fn go_on(_: &IterInfo) -> Control {
    Control::Continue
}

/// `source` with N = 12 and its data drawn (seeded), or with the data it loads from `dir`.
fn model(source: &str, dir: &Path) -> Model {
    let program = compile("bilevel.opt", source, Until::Ir)
        .unwrap_or_else(|e| panic!("{:?}", e.diagnostics))
        .program
        .unwrap();
    let loads = source.contains("load(");
    let spec = BindSpec {
        dims: if loads {
            Vec::new()
        } else {
            vec![("N".into(), 12)]
        },
        random_data: (!loads).then_some(4),
        ..BindSpec::default()
    };
    let bindings = bind(&program, dir, &spec).unwrap();
    Model::new(program, bindings).unwrap()
}

fn solve(model: &mut Model) -> Outcome {
    let plan = plan::choose(&model.program).unwrap();
    assert_eq!(plan.method, Method::Maid);
    plan::solve(model, &plan, &mut go_on).unwrap()
}

#[test]
fn a_ridge_weight_reaches_its_closed_form_optimum() {
    // x̂(θ) = y / (1 + e^θ) matches 0.25·y exactly at e^θ = 3.
    let source = "dims N
data y : real[N]
var theta : real = 0
let x = argmin z : real[N] { 0.5 * sumsq(z - y) + 0.5 * exp(theta) * sumsq(z) }
minimize 0.5 * sumsq(x - 0.25 * y)
solve with maid(tol = 1e-8)
";
    let mut m = model(source, Path::new("."));
    let outcome = solve(&mut m);
    let r = &outcome.report;
    assert_eq!(r.status, Status::Converged, "{r:?}");
    assert!((r.x[0] - 3f64.ln()).abs() < 1e-6, "θ = {}", r.x[0]);
    assert!(r.value < 1e-8, "{}", r.value);
    let Details::Maid { mu, trail } = &outcome.details else {
        panic!("no accuracy trail")
    };
    // h's Hessian is (1 + e^θ)·I at θ = 0: μ is estimated as 0.9 · 2.
    assert!((mu - 1.8).abs() < 1e-6, "{mu}");
    assert_eq!(trail.len(), r.iterations);
    assert!(trail
        .iter()
        .all(|t| t.eps > 0.0 && t.delta > 0.0 && t.step > 0.0));
}

#[test]
fn a_lower_level_hessian_that_is_exactly_a_multiple_of_the_identity_is_strongly_convex() {
    // H = (1 + 2e^θ)·I at θ = −1 exactly in floating point: the power iteration on λ_max·I − H
    // (the estimate before Lanczos) met the zero vector (μ was NaN, E0364). x̂ = s·y with s = 1 / (1 + 2e^θ), optimal at
    // s = y·c / y·y.
    let (y, c) = (
        [0.1, 0.9, 1.1, 0.0, -0.1, 1.5],
        [0.0, 1.0, 1.0, 0.0, 0.0, 1.0],
    );
    // (`dims N` for the suite's binding, which sets it.)
    let source = "dims N
let y = [0.1, 0.9, 1.1, 0.0, -0.1, 1.5]
let clean = [0.0, 1.0, 1.0, 0.0, 0.0, 1.0]
var theta : real = -1
let x = argmin z : real[6] { 0.5 * sumsq(z - y) + exp(theta) * sumsq(z) }
minimize 0.5 * sumsq(x - clean)
solve with maid(tol = 1e-8)
";
    let mut m = model(source, Path::new("."));
    let r = solve(&mut m).report;
    assert_eq!(r.status, Status::Converged, "{r:?}");
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    let s = dot(&y, &c) / dot(&y, &y);
    let theta = ((1.0 / s - 1.0) / 2.0).ln();
    assert!((r.x[0] - theta).abs() < 1e-5, "θ = {} vs {theta}", r.x[0]);
}

#[test]
fn declared_bounds_on_the_outer_variables_hold() {
    // F(θ) = ½‖y/(1 + e^θ) − y/4‖² decreases up to θ = ln 3 ≈ 1.0986 and increases after: a
    // bound below it is where F is least, and slack bounds leave the optimum where it was.
    let source = |bounds: &str| {
        format!(
            "dims N
data y : real[N]
var theta : real {bounds}= 0
let x = argmin z : real[N] {{ 0.5 * sumsq(z - y) + 0.5 * exp(theta) * sumsq(z) }}
minimize 0.5 * sumsq(x - 0.25 * y)
solve with maid(tol = 1e-8)
"
        )
    };
    for (bounds, expected) in [
        ("<= 0.5 ", 0.5),
        (">= 1.5 ", 1.5),
        (">= -1 <= 2 ", 3f64.ln()),
    ] {
        let mut m = model(&source(bounds), Path::new("."));
        let r = solve(&mut m).report;
        assert_eq!(r.status, Status::Converged, "{bounds}: {r:?}");
        assert!((r.x[0] - expected).abs() < 1e-6, "{bounds}: θ = {}", r.x[0]);
    }
}

#[test]
fn a_weight_per_coordinate_reaches_each_optimum() {
    // θ ∈ R^N: x̂ᵢ = yᵢ / (1 + e^θᵢ) matches cᵢ·yᵢ at θᵢ = log(1/cᵢ − 1), cᵢ = 0.2 + 0.05·i
    // (yᵢ = 1 + 0.1·i: every coordinate's curvature is of the same order).
    let source = "dims N
data y : real[N]
data c : real[N]
var theta : real[N] = 0
let x = argmin z : real[N] { 0.5 * sumsq(z - y) + 0.5 * sum(exp(theta) .* z .* z) }
minimize 0.5 * sumsq(x - c .* y)
solve with maid(max_iter = 1000)
";
    let mut m = model(source, Path::new("."));
    let c: Vec<f64> = (0..12).map(|i| 0.2 + 0.05 * i as f64).collect();
    let y: Vec<f64> = (0..12).map(|i| 1.0 + 0.1 * i as f64).collect();
    for (name, values) in [("c", &c), ("y", &y)] {
        let input = m
            .program
            .inputs
            .iter()
            .position(|i| i.name == name)
            .unwrap();
        m.bindings.inputs[input] =
            Some(ndarray::ArrayD::from_shape_vec(vec![12], values.clone()).unwrap());
    }
    let outcome = solve(&mut m);
    let r = &outcome.report;
    assert_eq!(r.status, Status::Converged, "{r:?}");
    for (i, (theta, ci)) in r.x.iter().zip(&c).enumerate() {
        let expected = (1.0 / ci - 1.0).ln();
        assert!(
            (theta - expected).abs() < 1e-3,
            "θ{i} = {theta}, expected {expected}"
        );
    }
    assert!(r.value < 1e-8, "{}", r.value);
}

#[test]
fn the_tv_example_stops_at_a_minimum_of_the_upper_objective() {
    // F(θ) = ½‖x̂(θ) − x_clean‖² on the example's data, evaluated by the interpreter's own
    // lower-level solves around MAID's θ: a minimum, with a central difference near 0 (at a
    // step above the noise of those solves).
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bilevel/tv_denoise.opt");
    let source = std::fs::read_to_string(&file).unwrap();
    let mut m = model(&source, file.parent().unwrap());
    let outcome = solve(&mut m);
    assert_eq!(outcome.report.status, Status::Converged);
    let theta = outcome.report.x[0];
    let objective = m.program.objective.as_ref().unwrap().node;
    let mut f = |t: f64| {
        m.set_x(&[t]);
        m.eval_scalar(objective).unwrap()
    };
    let (at, h) = (f(theta), 2e-2);
    let (left, right) = (f(theta - h), f(theta + h));
    assert!(left > at && right > at, "{left} {at} {right}");
    let slope = (right - left) / (2.0 * h);
    assert!(slope.abs() < 1e-4, "F'(θ) ≈ {slope}");
    // Better than the starting weight.
    assert!(at < f(-3.0));
}

/// The error that planning or solving `source` (seeded data) ends with.
fn refusal(source: &str) -> optc_compiler::diag::Diagnostic {
    let mut m = model(source, Path::new("."));
    match plan::choose(&m.program) {
        Err(mut e) => e.remove(0),
        Ok(plan) => plan::solve(&mut m, &plan, &mut go_on)
            .err()
            .expect("refused"),
    }
}

#[test]
fn a_lower_level_without_strong_convexity_is_refused() {
    let source = "dims N
data y : real[N]
var theta : real = 0
let x = argmin z : real[N] { exp(theta) * (sum(z) - sum(y)) ^ 2 }
minimize 0.5 * sumsq(x - y)
";
    let e = refusal(source);
    assert_eq!(e.code, "E0364", "{}", e.message);
}

#[test]
fn an_argmin_only_an_output_reads_leaves_the_method_as_it_is() {
    // The objective is single-level: L-BFGS solves it exactly (MAID was chosen and stopped at its
    // tolerance, x = 0.9999995); the output is the lower level's solution at that x.
    let source = "dims N
var x : real[3] = 0
minimize sumsq(x - 1)
output argmin z : real[3] { sumsq(z - x) }
";
    let m = model(source, Path::new("."));
    let chosen = plan::choose(&m.program).unwrap();
    assert_eq!(chosen.method, plan::Method::Lbfgs);
    let mut m = m;
    let r = plan::solve(&mut m, &chosen, &mut go_on).unwrap().report;
    assert_eq!(r.x, vec![1.0; 3]);
    let output = m.program.outputs[0].node;
    let z = m.eval(&[output]).unwrap().remove(0);
    assert!(z.iter().all(|v| (v - 1.0).abs() < 1e-9), "{z:?}");
}

#[test]
fn a_rank_deficient_lower_level_is_refused() {
    // A 3 × 6 least squares: the Hessian 2AᵀA has three zero eigenvalues beside large ones,
    // which power iterations took for a positive one (MAID then ran off to 1e45).
    let source = "dims N
let A = [[1, 2, 0, 1, 3, 1], [0, 1, 4, 2, 1, 5], [2, 0, 1, 3, 1, 2]]
let b = [1, 2, 3]
var theta : real = 0
let x = argmin z : real[6] { sumsq(A @ z - b) + exp(theta) * sum(z) }
minimize sumsq(x)
";
    let e = refusal(source);
    assert_eq!(e.code, "E0364", "{}", e.message);
}

#[test]
fn maid_on_a_model_without_argmin_is_refused() {
    let e = refusal(
        "dims N\ndata y : real[N]\nvar x : real = 1\nminimize (x - sum(y)) ^ 2\nsolve with maid\n",
    );
    assert_eq!(e.code, "E0360");
    assert!(e.message.contains("no `argmin`"), "{}", e.message);
}

#[test]
fn unknown_maid_options_are_named() {
    let source = "dims N
data y : real[N]
var theta : real = 0
let x = argmin z : real[N] { 0.5 * sumsq(z - y) + exp(theta) * sumsq(z) }
minimize sumsq(x)
solve with maid(steps = 3)
";
    let e = refusal(source);
    assert_eq!(e.code, "E0362");
    assert!(
        e.message.contains("`maid` has no option `steps`"),
        "{}",
        e.message
    );
    assert!(e.hint.as_deref().unwrap_or("").contains("eps0"), "{e:?}");
}

#[test]
fn two_outer_variables_each_reach_their_optimum() {
    // Each weight acts on one half of z: x̂ is y / (1 + e^a) there and y / (1 + e^b) on the
    // other half, so matching 0.25·y and 0.5·y gives a = log 3, b = 0 (checks θ's layout across
    // variables).
    let source = "dims N
data y : real[N]
var a : real = 0
var b : real = 1
let x = argmin z : real[N] { 0.5 * sumsq(z - y) + 0.5 * exp(a) * sumsq(z[0:6]) + 0.5 * exp(b) * sumsq(z[6:12]) }
minimize 0.5 * sumsq(x[0:6] - 0.25 * y[0:6]) + 0.5 * sumsq(x[6:12] - 0.5 * y[6:12])
solve with maid(tol = 1e-8, max_iter = 1000)
";
    let mut m = model(source, Path::new("."));
    let r = solve(&mut m).report;
    assert_eq!(r.status, Status::Converged, "{r:?}");
    assert!((r.x[0] - 3f64.ln()).abs() < 1e-5, "a = {}", r.x[0]);
    assert!(r.x[1].abs() < 1e-5, "b = {}", r.x[1]);
}

/// examples/bilevel/ridge_cv.opt's cross-validation error at θ in closed form, over its first
/// `folds` folds (1 or 2): each fold's ridge fit solves (AᵀA/125 + e^θ·I) w = Aᵀb/125 on one
/// half of the periods of `r` (250 × 20, row-major: asset 0 from the other 19) and is scored
/// by its mean squared error on the other half.
fn cross_validation_error(r: &[f64], theta: f64, folds: usize) -> f64 {
    let (features, half) = (19, 125);
    let row = |i: usize| (&r[i * 20 + 1..i * 20 + 20], r[i * 20]);
    let mut total = 0.0;
    for (train, valid) in [(0, half), (half, 0)].into_iter().take(folds) {
        // The normal equations, solved by Cholesky.
        let mut a = vec![0.0; features * features];
        let mut w = vec![0.0; features];
        for i in train..train + half {
            let (x, y) = row(i);
            for j in 0..features {
                w[j] += x[j] * y / half as f64;
                for k in 0..features {
                    a[j * features + k] += x[j] * x[k] / half as f64;
                }
            }
        }
        for j in 0..features {
            a[j * features + j] += theta.exp();
        }
        for j in 0..features {
            for k in 0..j {
                a[j * features + j] -= a[j * features + k] * a[j * features + k];
            }
            a[j * features + j] = a[j * features + j].sqrt();
            for i in j + 1..features {
                let dot: f64 = (0..j)
                    .map(|k| a[i * features + k] * a[j * features + k])
                    .sum();
                a[i * features + j] = (a[i * features + j] - dot) / a[j * features + j];
            }
        }
        for j in 0..features {
            let dot: f64 = (0..j).map(|k| a[j * features + k] * w[k]).sum();
            w[j] = (w[j] - dot) / a[j * features + j];
        }
        for j in (0..features).rev() {
            let dot: f64 = (j + 1..features).map(|k| a[k * features + j] * w[k]).sum();
            w[j] = (w[j] - dot) / a[j * features + j];
        }
        total += (valid..valid + half)
            .map(|i| {
                let (x, y) = row(i);
                let fit: f64 = x.iter().zip(&w).map(|(a, b)| a * b).sum();
                (fit - y).powi(2) / half as f64
            })
            .sum::<f64>();
    }
    total
}

#[test]
fn two_lower_levels_choose_the_cross_validated_penalty() {
    // The example's two folds, and its first fold alone (a small upper objective: its gradient
    // in the fit fell below CG's first tolerance, q was 0, and with B never measured the start
    // was certified stationary). Against the minimum of the closed form by golden section.
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bilevel/ridge_cv.opt");
    let example = std::fs::read_to_string(&file).unwrap();
    let one_fold = example
        .lines()
        .filter(|l| !l.starts_with("let fit2"))
        .map(|l| match l {
            l if l.starts_with("minimize") => "minimize sumsq(X2 @ fit1 - y2) / 125",
            l if l.starts_with("output") => "output theta",
            l => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let (r, _) = optc_runtime::data::read_npy(&file.with_file_name("../data/R.npy")).unwrap();
    let r = r.as_slice().unwrap();
    for (source, folds) in [(example.as_str(), 2), (one_fold.as_str(), 1)] {
        let mut m = model(source, file.parent().unwrap());
        let outcome = solve(&mut m);
        assert_eq!(outcome.report.status, Status::Converged, "{folds} folds");
        let f = |t: f64| cross_validation_error(r, t, folds);
        let best = golden_section(f, -6.0, 0.0, 1e-9);
        let theta = outcome.report.x[0];
        assert!(
            (theta - best).abs() < 1e-3,
            "{folds} folds: θ = {theta}, best {best}"
        );
        assert!((outcome.report.value - f(theta)).abs() < 1e-9 * f(theta));
        assert!(f(theta) <= f(best) * (1.0 + 1e-8));
        // What `run` reports: the objective evaluated at θ, its lower levels solved again.
        let objective = m.program.objective.as_ref().unwrap().node;
        let reported = m.eval_scalar(objective).unwrap();
        assert!(
            (reported - f(theta)).abs() < 1e-9 * f(theta),
            "{folds} folds: {reported} against {}",
            f(theta)
        );
    }
}
