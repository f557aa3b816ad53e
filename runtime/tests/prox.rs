//! Prox operators and projections against hand-computed values, and `fista` enforcing `in`,
//! `card` and norm-ball constraints by projection: known solutions (projections of a point,
//! minimum variance on the simplex, sparsity per column and per row, balls per line), the KKT
//! conditions of ball-constrained least squares with the multipliers reported, and the
//! compositions it refuses. Last, where the plan warns of kinks (E0365).

#[path = "support/search.rs"]
mod search;
#[path = "support/solve.rs"]
mod support;

use ndarray::{array, Array2};
use optc_runtime::plan::{self, Method};
use optc_runtime::prox::*;
use optc_runtime::solvers::Status;
use search::golden_section;
use support::{assert_close, go_on, model, solve_by};

#[test]
fn soft_threshold_shrinks_towards_zero() {
    let mut x = [3.0, -0.5, 0.2, -2.0, 0.0];
    soft_threshold(&mut x, 1.0);
    assert_eq!(x, [2.0, 0.0, 0.0, -1.0, 0.0]);
    // Zeros are +0: results print `0.0`, not `-0.0`.
    assert!(x.iter().all(|v| v.is_sign_positive() || *v < 0.0), "{x:?}");
}

/// Uniform numbers in [0, 1) from a xorshift generator seeded with `state`.
fn uniform_from(mut state: u64) -> impl FnMut() -> f64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// x = prox of t·TV at y exactly when u, the cumulative sums of x − y (u_i = Σ_{j≤i} (x_j − y_j),
/// so that y − x = Dᵀu), ends at 0, stays within [−t, t], and is t·sign(x_{i+1} − x_i) where x
/// jumps: stationarity of ½‖x − y‖² + t·Σ|x_{i+1} − x_i|.
fn assert_total_variation_prox(y: &[f64], t: f64, x: &[f64]) {
    let tol = 1e-9 * (1.0 + t + y.iter().map(|v| v.abs()).fold(0.0, f64::max));
    let mut u = 0.0;
    for i in 0..y.len() - 1 {
        u += x[i] - y[i];
        assert!(
            u.abs() <= t + tol,
            "|u_{i}| = {} > t = {t}: y {y:?} x {x:?}",
            u.abs()
        );
        let jump = x[i + 1] - x[i];
        if jump.abs() > tol {
            assert!(
                (u - t * jump.signum()).abs() <= tol,
                "u_{i} = {u} at a jump {jump}: y {y:?} x {x:?}"
            );
        }
    }
    assert!(
        (u + x[y.len() - 1] - y[y.len() - 1]).abs() <= tol,
        "sums differ: y {y:?} x {x:?}"
    );
}

#[test]
fn total_variation_prox_meets_its_optimality_conditions() {
    let mut x = [0.0, 3.0];
    total_variation(&mut x, 1.0);
    assert_close(&x, &[1.0, 2.0], 1e-15);
    let mut x = [0.0, 3.0];
    total_variation(&mut x, 2.0);
    assert_close(&x, &[1.5, 1.5], 1e-15);
    // A large t levels the signal at its mean; t = 0 leaves it.
    let mut x = [1.0, -2.0, 4.0, 0.5];
    total_variation(&mut x, 100.0);
    assert_close(&x, &[0.875; 4], 1e-14);
    let mut x = [1.0, -2.0, 4.0];
    total_variation(&mut x, 0.0);
    assert_eq!(x, [1.0, -2.0, 4.0]);
    // Random signals, smooth, noisy, and integer-valued (ties), for many t and lengths.
    let mut uniform = uniform_from(0x9e3779b97f4a7c15u64);
    for case in 0..3000 {
        let n = 1 + case % 40;
        let y: Vec<f64> = (0..n)
            .map(|i| match case % 3 {
                0 => uniform() * 4.0 - 2.0,
                1 => (i as f64 / 5.0).sin() + 0.3 * (uniform() - 0.5),
                _ => (uniform() * 5.0).floor(),
            })
            .collect();
        let t = [0.01, 0.1, 0.5, 1.0, 3.0, 20.0][case % 6] * (0.5 + uniform());
        let mut x = y.clone();
        total_variation(&mut x, t);
        if n > 1 {
            assert_total_variation_prox(&y, t, &x);
        }
    }
}

#[test]
fn group_shrink_scales_rows_and_columns_by_their_norms() {
    // Row (3, 4) has norm 5: factor 1 − 1/5; row (0.3, 0.4) has norm 0.5 < 1: zeroed.
    let mut m = array![[3.0, 4.0], [0.3, 0.4]];
    group_shrink_rows(&mut m, 1.0);
    assert_close(m.as_slice().unwrap(), &[2.4, 3.2, 0.0, 0.0], 1e-15);
    // Columns (3, 0.3) and (4, 0.4) with t = 0: unchanged; with t = ‖(4, .4)‖: second zeroed.
    let mut m = array![[3.0, 4.0], [0.3, 0.4]];
    group_shrink_cols(&mut m, (16.16f64).sqrt());
    assert_eq!(m.column(1).to_vec(), vec![0.0, 0.0]);
    assert!(m[[0, 0]] == 0.0, "column norm √9.09 < √16.16 is zeroed too");
}

#[test]
fn singular_value_threshold_on_known_svd() {
    // diag(3, 1) rotated: Y = Q·diag(3, 1) with Q a rotation; SVT(·, 0.5) = Q·diag(2.5, 0.5).
    let (c, s) = (0.6, 0.8);
    let y = array![[3.0 * c, -s], [3.0 * s, c]];
    let out = singular_value_threshold(&y, 0.5).unwrap();
    let expected = [2.5 * c, -0.5 * s, 2.5 * s, 0.5 * c];
    assert_close(out.as_slice().unwrap(), &expected, 1e-12);
    let zero = singular_value_threshold(&y, 3.0).unwrap();
    assert!(zero.iter().all(|v| *v == 0.0), "λ ≥ σ_max gives 0");
    let rect = Array2::from_shape_vec((2, 3), vec![1.0, 0.0, 0.0, 0.0, 2.0, 0.0]).unwrap();
    let out = singular_value_threshold(&rect, 1.5).unwrap();
    assert_close(
        out.as_slice().unwrap(),
        &[0.0, 0.0, 0.0, 0.0, 0.5, 0.0],
        1e-12,
    );
}

#[test]
fn projection_onto_nonneg() {
    let mut x = [-1.0, 0.5, 2.0];
    project_nonneg(&mut x);
    assert_eq!(x, [0.0, 0.5, 2.0]);
}

#[test]
fn simplex_projection_known_values() {
    let mut x = [1.0, 0.5, -1.0];
    project_simplex(&mut x, 1.0);
    assert_close(&x, &[0.75, 0.25, 0.0], 1e-15);
    let mut x = [0.2, 0.3, 0.5];
    project_simplex(&mut x, 1.0);
    assert_close(&x, &[0.2, 0.3, 0.5], 1e-15);
    let mut x = [0.0, 0.0];
    project_simplex(&mut x, 2.0);
    assert_close(&x, &[1.0, 1.0], 1e-15);
}

#[test]
fn ball_projections_known_values() {
    // ‖(3, −1, 0.5)‖₁ = 4.5 > 2: soft-thresholding at θ = 1 gives (2, 0, 0)... with −1 at the
    // threshold; at r = 3, θ = 0.5: (2.5, −0.5, 0).
    let mut x = [3.0, -1.0, 0.5];
    project_l1_ball(&mut x, 3.0);
    assert_close(&x, &[2.5, -0.5, 0.0], 1e-15);
    let mut x = [3.0, -1.0, 0.5];
    project_l1_ball(&mut x, 2.0);
    assert_close(&x, &[2.0, 0.0, 0.0], 1e-15);
    let mut inside = [0.2, -0.3];
    project_l1_ball(&mut inside, 1.0);
    assert_eq!(inside, [0.2, -0.3]);
    project_l1_ball(&mut inside, 0.0);
    assert_eq!(inside, [0.0, 0.0]);
    // ‖(3, −4)‖₂ = 5: scaled onto the sphere of radius 2.
    let mut x = [3.0, -4.0];
    project_l2_ball(&mut x, 2.0);
    assert_close(&x, &[1.2, -1.6], 1e-15);
    let mut inside = [0.3, 0.4];
    project_l2_ball(&mut inside, 1.0);
    assert_eq!(inside, [0.3, 0.4]);
}

#[test]
fn ball_multipliers_from_stationarity_known_values() {
    // min ‖w − (3, 4)‖² on the unit L2 ball: w = (0.6, 0.8), g = 2(w − v), μ = 2(‖v‖ − 1) = 8;
    // for sumsq(w) <= 1 (q = 2) half of it.
    let (x, g) = ([0.6, 0.8], [-4.8, -6.4]);
    assert!((ball_multiplier(false, false, 1.0, None, &x, &g).unwrap() - 8.0).abs() < 1e-12);
    assert!((ball_multiplier(false, true, 1.0, None, &x, &g).unwrap() - 4.0).abs() < 1e-12);
    // Inside the ball: 0. A ball of radius 0: the dual norm of g, none for sumsq.
    assert_eq!(ball_multiplier(true, false, 2.0, None, &x, &g), Some(0.0));
    assert_eq!(
        ball_multiplier(true, false, 0.0, None, &[0.0, 0.0], &g),
        Some(6.4)
    );
    assert_eq!(
        ball_multiplier(false, false, 0.0, None, &[0.0, 0.0], &[3.0, 4.0]),
        Some(5.0)
    );
    assert_eq!(
        ball_multiplier(false, true, 0.0, None, &[0.0, 0.0], &g),
        None
    );
}

#[test]
fn sparse_simplex_projection_matches_methods_check_value() {
    let mut x = [0.5, 0.3, 0.2, 0.9];
    project_sparse_simplex(&mut x, 2, 1.0);
    assert_close(&x, &[0.3, 0.0, 0.0, 0.7], 1e-15);
    let mut x = [0.5, 0.3, 0.2, 0.9];
    project_sparse_simplex(&mut x, 1, 1.0);
    assert_eq!(x, [0.0, 0.0, 0.0, 1.0]);
}

/// Each entry's gain without L1 weights or bounds: half its square.
fn half_squares(x: &[f64]) -> Vec<f64> {
    x.iter().map(|v| 0.5 * v * v).collect()
}

#[test]
fn card_keeps_the_largest_gains_of_the_slot_or_of_each_line() {
    let project = |x: &mut [f64], shape: Vec<usize>, lines, set| {
        let gain = half_squares(x);
        let p = SlotProjection {
            set,
            offset: 0,
            shape,
            lines,
            support: None,
        };
        p.apply(x, &gain);
    };
    let mut x = [0.1, -3.0, 2.0, 0.5];
    project(&mut x, vec![4], None, Set::Card(2));
    assert_eq!(x, [0.0, -3.0, 2.0, 0.0]);
    // Columns of a 3×2 matrix, then rows of a 2×3 one.
    let mut m = [1.0, -5.0, -2.0, 4.0, 3.0, 0.1];
    project(&mut m, vec![3, 2], Some(1), Set::Card(1));
    assert_eq!(m, [0.0, -5.0, 0.0, 0.0, 3.0, 0.0]);
    let mut m = [1.0, -5.0, 2.0, -2.0, 4.0, 0.0];
    project(&mut m, vec![2, 3], Some(0), Set::Card(2));
    assert_eq!(m, [0.0, -5.0, 2.0, -2.0, 4.0, 0.0]);
    // The k largest entries of each row onto the simplex.
    let mut m = [0.5, 0.3, 0.2, 0.9, 3.0, 1.0, 0.0, 0.0];
    project(&mut m, vec![2, 4], Some(0), Set::SparseSimplex(2));
    assert_close(&m, &[0.3, 0.0, 0.0, 0.7, 1.0, 0.0, 0.0, 0.0], 1e-15);
    // The gains decide, not the magnitudes: 2.0 clamped to 0.5 gains 0.5·2 − 0.125.
    let mut x = [0.5, 0.7];
    let p = SlotProjection {
        set: Set::Card(1),
        offset: 0,
        shape: vec![2],
        lines: None,
        support: None,
    };
    p.apply(&mut x, &[0.875, 0.245]);
    assert_eq!(x, [0.5, 0.0]);
    // On a support: its entries onto the set, the others 0 (0.5 and 0.2 onto the simplex).
    let mut x = [0.5, 0.3, 0.2, 0.9];
    let p = SlotProjection {
        set: Set::SparseSimplex(2),
        offset: 0,
        shape: vec![4],
        lines: None,
        support: Some(vec![0, 2]),
    };
    let gain = half_squares(&x);
    p.apply(&mut x, &gain);
    assert_close(&x, &[0.65, 0.0, 0.35, 0.0], 1e-15);
}

/// The solution of `source` (one variable) and the constraints' violations.
fn solve(source: &str) -> (Vec<f64>, Vec<f64>) {
    let mut m = model(source);
    let plan = plan::choose(&m.program).unwrap();
    assert_eq!(plan.method, Method::ProxGrad);
    assert!(plan.reason.contains("projection"), "{}", plan.reason);
    let outcome = plan::solve(&mut m, &plan, &mut go_on).unwrap();
    assert_eq!(outcome.report.status, Status::Converged);
    let violations = (0..m.program.constraints.len())
        .map(|i| m.violation(i).unwrap())
        .collect();
    (outcome.report.x, violations)
}

#[test]
fn the_nearest_point_of_a_simplex_and_of_a_box() {
    // Sorted 1.2, 0.5, 0.3: the threshold is 0.35.
    let (x, v) = solve(
        "var x : real[3] = 0\nlet y = [0.5, 0.3, 1.2]\nminimize sumsq(x - y)\nsubject to\n  x in simplex\n",
    );
    assert_close(&x, &[0.15, 0.0, 0.85], 1e-12);
    assert_eq!(v, [0.0]);
    let (x, _) = solve(
        "var x : real[3] = 0\nlet y = [-1.0, 0.3, 1.2]\nminimize sumsq(x - y)\nsubject to\n  x in box(-0.5, 0.5)\n",
    );
    assert_close(&x, &[-0.5, 0.3, 0.5], 1e-12);
}

#[test]
fn minimum_variance_on_the_simplex_is_inverse_to_the_variances() {
    // min Σ sᵢxᵢ² on the simplex: xᵢ ∝ 1/sᵢ.
    let (x, v) = solve(
        "var x : real[3] = 0\nlet s = [1.0, 2.0, 4.0]\nminimize sum(s .* x .* x)\nsubject to\n  budget: x in simplex\n",
    );
    assert_close(&x, &[4.0 / 7.0, 2.0 / 7.0, 1.0 / 7.0], 1e-5);
    assert!(v[0] < 1e-12);
}

#[test]
fn cardinality_per_column_and_per_nonnegative_row() {
    let y = "let Y = [[0.5, -2.0], [-1.0, 0.1], [0.2, 0.3]]";
    // The largest magnitude of each column.
    let (w, v) = solve(&format!(
        "var W : real[3, 2] = 0\n{y}\nminimize 0.5 * sumsq(W - Y)\nsubject to\n  for j in 0..2: card(W[:, j]) <= 1\n"
    ));
    assert_close(&w, &[0.0, -2.0, -1.0, 0.0, 0.0, 0.0], 1e-12);
    assert_eq!(v, [0.0]);
    // Nonnegative: the largest positive entry of each row.
    let (w, _) = solve(&format!(
        "var W : real[3, 2] >= 0 = 0\n{y}\nminimize 0.5 * sumsq(W - Y)\nsubject to\n  for i in 0..3: card(W[i, :]) <= 1\n"
    ));
    assert_close(&w, &[0.5, 0.0, 0.0, 0.1, 0.0, 0.3], 1e-12);
    // A bound of 0 has the one point 0: no stages lead to it (it took 941 iterations).
    let (_, outcome) = solve_by(
        "var x : real[10] = 1\nminimize sumsq(x - 2)\nsubject to\n  c: card(x) <= 0\n",
        Method::ProxGrad,
    );
    assert_eq!(outcome.report.x, vec![0.0; 10]);
    assert!(outcome.report.iterations <= 2, "{:?}", outcome.report);
}

fn refusal(source: &str) -> String {
    let mut m = model(source);
    let e = match plan::choose(&m.program) {
        Err(mut e) => e.remove(0),
        Ok(plan) => plan::solve(&mut m, &plan, &mut go_on)
            .err()
            .expect("refused"),
    };
    assert_eq!(e.code, "E0360", "{}", e.message);
    e.message
}

#[test]
fn compositions_that_a_projection_would_not_solve_are_refused() {
    let base =
        "var x : real[3] BOUND = 0\nlet y = [0.5, 0.3, 1.2]\nminimize sumsq(x - y)\nsubject to\n";
    let with = |bound: &str, constraints: &str| base.replace("BOUND", bound) + constraints;
    assert!(refusal(&with(">= 0", "  s: x in simplex\n"))
        .contains("drop the variable's declared bound"));
    assert!(refusal(&with("", "  s: x in simplex\n  n: x in nonneg\n"))
        .contains("drop the variable's declared bound or other set"));
    assert!(refusal(&with("", "  a: card(x) <= 1\n  b: card(x) <= 2\n"))
        .contains("or onto a simplex and a `card`"));
    assert!(refusal(&with("", "  s: x in simplex\n  c: card(x) <= 0\n"))
        .contains("no point of the simplex"));
    assert!(refusal(&with(">= 0.5", "  c: card(x) <= 1\n")).contains("free to be 0"));
    assert!(refusal(&with(">= 1", "  b: x in box(-1, 0.5)\n")).contains("leaves no value"));
    // A simplex per column and a `card` per row are different lines.
    let matrix = "var T : real[2, 2] = 0\nminimize sumsq(T - 1)\nsubject to\n";
    assert!(refusal(&format!(
        "{matrix}  for j in 0..2: T[:, j] in simplex\n  for i in 0..2: card(T[i, :]) <= 1\n"
    ))
    .contains("same lines"));
    // A cardinality constraint on an expression is no projection (a set on an expression is
    // an inequality of `auglag`, tests/auglag.rs).
    assert!(refusal(&with("", "  e: card(x + 1) <= 1\n")).contains("cannot be handled"));
}

#[test]
fn a_start_outside_the_bounds_is_never_returned() {
    // From x = 0, outside x ≥ 1: the start's objective (0) is below every feasible one, and the
    // best point seen used to be that start. The solution is the bound, x = 1.
    for (method, chosen) in [
        ("fista", Method::ProxGrad),
        ("adam(max_iter = 20000)", Method::Adam),
    ] {
        let (_, outcome) = solve_by(
            &format!(
                "var x : real[2] >= 1 = 0\nminimize sumsq(x) + 0.1 * norm1(x)\nsolve with {method}\n"
            ),
            chosen,
        );
        assert_close(&outcome.report.x, &[1.0, 1.0], 1e-6);
        assert!(
            (outcome.report.value - 2.2).abs() < 1e-6,
            "{method}: {:?}",
            outcome.report
        );
    }
}

#[test]
fn a_maximized_objective_minus_an_l1_term_gets_its_prox() {
    // max −‖x − c‖² − 0.1‖x‖₁ is min ‖x − c‖² + 0.1‖x‖₁: x = soft(c, 0.05). Its L1 term used to
    // be taken for a smooth one (L-BFGS on a kink, ending in a failed line search).
    for objective in [
        "maximize -sumsq(x - c) - 0.1 * norm1(x)",
        "maximize -(sumsq(x - c) + 0.1 * norm1(x))",
    ] {
        let (_, outcome) = solve_by(
            &format!("var x : real[3] = 0\nlet c = [1.0, 0.02, -0.3]\n{objective}\n"),
            Method::ProxGrad,
        );
        assert_eq!(outcome.report.status, Status::Converged, "{objective}");
        assert_close(&outcome.report.x, &[0.95, 0.0, -0.25], 1e-9);
    }
}

/// A deterministic generator of test points (xorshift64*), uniform in [lo, hi).
struct Points(u64);

impl Points {
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        lo + (hi - lo) * (bits as f64 / (1u64 << 53) as f64)
    }
}

/// min over [lo, hi] of the convex h(z) = ½(z − v)² + t|z|, by golden-section search: a check
/// of the prox's closed form that does not use it.
fn least_on_interval(v: f64, t: f64, lo: f64, hi: f64) -> f64 {
    let h = |z: f64| 0.5 * (z - v) * (z - v) + t * z.abs();
    h(golden_section(h, lo, hi, 1e-12)).min(h(lo)).min(h(hi))
}

/// The index sets of `size` entries out of `n`.
fn supports(n: usize, size: usize) -> Vec<Vec<usize>> {
    (0u32..1 << n)
        .filter(|m| m.count_ones() as usize == size)
        .map(|m| (0..n).filter(|i| m >> i & 1 == 1).collect())
        .collect()
}

fn literal(v: &[f64]) -> String {
    let entries: Vec<String> = v.iter().map(|x| format!("{x:?}")).collect();
    format!("[{}]", entries.join(", "))
}

#[test]
fn the_step_with_card_bounds_and_l1_is_the_exact_prox() {
    // min ½‖x − y‖² + t‖x‖₁ over the bounds and a box with card(x) ≤ k is the prox at y, where
    // fista lands at its first step (its Lipschitz estimate 1 is exact) and stays. Against every
    // support of k entries, each entry's minimum found by search.
    let mut points = Points(0x9e37_79b9_7f4a_7c15);
    let n = 6;
    for case in 0..40 {
        let y: Vec<f64> = (0..n).map(|_| points.uniform(-2.0, 2.0)).collect();
        let lower: Vec<f64> = (0..n).map(|_| points.uniform(-1.5, 0.0)).collect();
        let upper: Vec<f64> = (0..n).map(|_| points.uniform(0.0, 1.5)).collect();
        let (box_lo, box_hi) = (points.uniform(-1.0, 0.0), points.uniform(0.0, 1.0));
        let t = if case % 3 == 0 {
            0.0
        } else {
            points.uniform(0.0, 0.5)
        };
        let k = case % (n + 1);
        let with_box = case % 2 == 1;
        let source = format!(
            "var x : real[{n}] >= {} <= {} = 0\nlet y = {}\nminimize 0.5 * sumsq(x - y) + {t:?} * norm1(x)\nsubject to\n  c: card(x) <= {k}\n{}",
            literal(&lower),
            literal(&upper),
            literal(&y),
            if with_box { format!("  b: x in box({box_lo:?}, {box_hi:?})\n") } else { String::new() }
        );
        let (mut m, outcome) = solve_by(&source, Method::ProxGrad);
        let (lo, hi): (Vec<f64>, Vec<f64>) = (0..n)
            .map(|i| match with_box {
                true => (lower[i].max(box_lo), upper[i].min(box_hi)),
                false => (lower[i], upper[i]),
            })
            .unzip();
        let best = supports(n, k)
            .iter()
            .map(|s| {
                (0..n)
                    .map(|i| match s.contains(&i) {
                        true => least_on_interval(y[i], t, lo[i], hi[i]),
                        false => 0.5 * y[i] * y[i],
                    })
                    .sum::<f64>()
            })
            .fold(f64::INFINITY, f64::min);
        let x = &outcome.report.x;
        let value: f64 = (0..n)
            .map(|i| 0.5 * (x[i] - y[i]).powi(2) + t * x[i].abs())
            .sum();
        assert!(
            (value - best).abs() <= 1e-9,
            "case {case}: {value} vs {best} at {x:?}\n{source}"
        );
        assert!(
            (0..n).all(|i| lo[i] <= x[i] && x[i] <= hi[i]),
            "case {case}"
        );
        assert_eq!(m.violation(0).unwrap(), 0.0, "case {case}");
    }
}

#[test]
fn the_step_with_card_on_the_simplex_is_the_exact_projection() {
    // The nearest point of the k-sparse simplex, whole or per column, against every support.
    let mut points = Points(7);
    let nearest = |y: &[f64], k: usize| -> f64 {
        supports(y.len(), k)
            .iter()
            .map(|s| {
                let mut kept: Vec<f64> = s.iter().map(|&i| y[i]).collect();
                project_simplex(&mut kept, 1.0);
                let outside: f64 = (0..y.len())
                    .filter(|i| !s.contains(i))
                    .map(|i| y[i] * y[i])
                    .sum();
                s.iter()
                    .zip(&kept)
                    .map(|(&i, v)| (v - y[i]).powi(2))
                    .sum::<f64>()
                    + outside
            })
            .fold(f64::INFINITY, f64::min)
    };
    for case in 0..20 {
        let y: Vec<f64> = (0..5).map(|_| points.uniform(-1.0, 2.0)).collect();
        let k = 1 + case % 5;
        let source = format!(
            "var x : real[5] = 0\nlet y = {}\nminimize sumsq(x - y)\nsubject to\n  s: x in simplex\n  c: card(x) <= {k}\n",
            literal(&y)
        );
        let (_, outcome) = solve_by(&source, Method::ProxGrad);
        assert!(
            (outcome.report.value - nearest(&y, k)).abs() <= 1e-12,
            "case {case}: {:?}",
            outcome.report
        );
    }
    // Each column of a 4×3 matrix onto the 2-sparse simplex.
    let y: Vec<f64> = (0..12).map(|_| points.uniform(-1.0, 2.0)).collect();
    let rows: Vec<String> = y.chunks(3).map(literal).collect();
    let source = format!(
        "var T : real[4, 3] = 0\nlet Y = [{}]\nminimize sumsq(T - Y)\nsubject to\n  for j in 0..3: T[:, j] in simplex\n  for j in 0..3: card(T[:, j]) <= 2\n",
        rows.join(", ")
    );
    let (mut m, outcome) = solve_by(&source, Method::ProxGrad);
    let best: f64 = (0..3)
        .map(|j| nearest(&[y[j], y[3 + j], y[6 + j], y[9 + j]], 2))
        .sum();
    assert!((outcome.report.value - best).abs() <= 1e-12);
    assert_eq!(m.violation(0).unwrap() + m.violation(1).unwrap(), 0.0);
}

#[test]
fn flags_take_true_and_false() {
    // ISTA (accelerated = false) reaches FISTA's solution in more iterations; `true`/`false`
    // are the flag's 1 and 0, and another value is refused.
    let source = |flag: &str| {
        format!("var x : real[3] = 0\nlet y = [0.5, -0.3, 1.2]\nlet s = [1.0, 10.0, 100.0]\nminimize sum(s .* (x - y) .* (x - y)) + 0.1 * norm1(x)\nsolve with fista(accelerated = {flag}, tol = 1e-9)\n")
    };
    let (_, ista) = solve_by(&source("false"), Method::ProxGrad);
    let (_, fista) = solve_by(&source("true"), Method::ProxGrad);
    assert_close(&ista.report.x, &fista.report.x, 1e-8);
    assert!(
        ista.report.iterations > fista.report.iterations,
        "{} vs {}",
        ista.report.iterations,
        fista.report.iterations
    );
    // Refused when the plan is made, before any data is read.
    let e = &plan::choose(&model(&source("2")).program).expect_err("refused")[0];
    assert!(e.message.contains("expected 0 or 1"), "{}", e.message);
}

#[test]
fn card_per_row_composes_with_a_box_on_the_whole_variable() {
    // Elementwise sets join the bounds, so the lines of `card` are free: per row, the entry of
    // largest gain within [-0.5, 1], the others 0.
    let (x, v) = solve(
        "var W : real[2, 3] = 0\nlet Y = [[2.0, -0.9, 0.3], [-0.2, 0.6, -1.5]]\nminimize 0.5 * sumsq(W - Y)\nsubject to\n  b: W in box(-0.5, 1)\n  for i in 0..2: card(W[i, :]) <= 1\n",
    );
    // Row 0: 2 → 1 gains 1.5, −0.9 → −0.5 gains 0.325. Row 1: −1.5 → −0.5 gains 0.625, 0.6 → 0.6
    // gains 0.18.
    assert_close(&x, &[1.0, 0.0, 0.0, 0.0, 0.0, -0.5], 1e-12);
    assert_eq!(v, [0.0, 0.0]);
}

#[test]
fn the_support_search_reports_its_progress_and_stops_when_asked() {
    // card(x) ≤ 2 binds, so the search tries swapped supports after the stages; the callback
    // sees the best point after each (step 0) and stops it at the first: the staged point is
    // returned, interrupted.
    let source = "var x : real[4] = 0\nlet y = [3.0, -1.0, 2.0, 0.5]\nminimize sumsq(x - y)\n\
                  subject to\n  c: card(x) <= 2\n";
    let mut m = model(source);
    let plan = plan::choose(&m.program).unwrap();
    let mut search_rows = 0;
    let mut stop_in_search = |info: &optc_runtime::solvers::IterInfo| {
        if info.step == 0.0 {
            search_rows += 1;
            return optc_runtime::solvers::Control::Stop;
        }
        optc_runtime::solvers::Control::Continue
    };
    let outcome = plan::solve(&mut m, &plan, &mut stop_in_search).unwrap();
    assert_eq!(search_rows, 1);
    assert_eq!(outcome.report.status, Status::Interrupted);
    assert_close(&outcome.report.x, &[3.0, 0.0, 2.0, 0.0], 1e-6);
    // Without stopping, the search finds nothing better than the staged point.
    let (_, outcome) = solve_by(source, Method::ProxGrad);
    assert_eq!(outcome.report.status, Status::Converged);
    assert_close(&outcome.report.x, &[3.0, 0.0, 2.0, 0.0], 1e-6);
}

/// The code of the plan's warning (E0365, a kink where the method needs a gradient) and its
/// reason.
fn kink_warning(source: &str) -> (Option<&'static str>, String) {
    let plan = plan::choose(&model(source).program).unwrap();
    assert!(plan.warnings.len() <= 1, "{:?}", plan.warnings);
    (plan.warnings.first().map(|d| d.code), plan.reason)
}

#[test]
fn kinks_are_reported_where_the_method_differentiates_them() {
    let hinge = "var x : real[3] = 0\nminimize sum(maximum(0, 1 - x)) + 0.5 * sumsq(x)\n";
    let (code, reason) = kink_warning(hinge);
    assert_eq!(code, Some("E0365"));
    assert!(reason.starts_with("nonsmooth unconstrained"), "{reason}");
    // Its square is continuously differentiable, as are squares of `abs`.
    let squared = "var x : real[3] = 0\nminimize sumsq(maximum(0, 1 - x)) + sum(abs(x - 2)^2)\n";
    let (code, reason) = kink_warning(squared);
    assert_eq!(code, None);
    assert!(reason.starts_with("smooth unconstrained"), "{reason}");
    // Adam is a subgradient method.
    let by_adam = format!("{hinge}solve with adam(max_iter = 10)\n");
    assert_eq!(kink_warning(&by_adam).0, None);
    // An L1 term is proximal gradient's prox, but L-BFGS differentiates it.
    // A group norm written with `^ 2` is a prox term too.
    let group =
        "var W : real[3, 2] = 0\nminimize sumsq(W - 1) + 0.5 * sum(sqrt(sum(W ^ 2, axis = 1)))\n";
    let plan = plan::choose(&model(group).program).unwrap();
    assert_eq!(plan.structure.prox.len(), 1, "{}", plan.reason);
    let lasso = "var x : real[3] = 0\nminimize sumsq(x - [1, -2, 0.1]) + 0.5 * norm1(x)\n";
    assert_eq!(kink_warning(lasso).0, None);
    assert_eq!(
        kink_warning(&format!("{lasso}solve with lbfgs\n")).0,
        Some("E0365")
    );
    // The augmented Lagrangian differentiates its constraints: kinks there count too, unless
    // they depend on no variable.
    let constrained = "param c = 3\nvar x : real[2] = 1\nminimize sumsq(x - 2)\nsubject to\n  l1: sum(abs(x)) == abs(c)\n";
    assert_eq!(kink_warning(constrained).0, Some("E0365"));
    let constant = "param c = 3\nvar x : real[2] = 1\nminimize sumsq(x - 2)\nsubject to\n  l1: sum(x) == abs(c)\n";
    assert_eq!(kink_warning(constant).0, None);
}

/// The solution of `source` by `method` and the multipliers of its first constraint.
fn with_multipliers(source: &str, method: Method) -> (Vec<f64>, Vec<f64>) {
    let (_, outcome) = solve_by(source, method);
    assert_eq!(
        outcome.report.status,
        Status::Converged,
        "{:?}",
        outcome.report
    );
    let m = outcome
        .details
        .multipliers(0)
        .expect("the ball's multiplier");
    (outcome.report.x, m.iter().copied().collect())
}

/// g = Aᵀ(Ax − b) for a row-major A.
fn least_squares_gradient(a: &[[f64; 3]], b: &[f64], x: &[f64]) -> Vec<f64> {
    let r: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(row, bi)| row.iter().zip(x).map(|(p, q)| p * q).sum::<f64>() - bi)
        .collect();
    (0..3)
        .map(|j| a.iter().zip(&r).map(|(row, ri)| row[j] * ri).sum())
        .collect()
}

const A: [[f64; 3]; 4] = [
    [1.0, 2.0, 0.0],
    [0.0, 1.0, -1.0],
    [3.0, 0.0, 1.0],
    [1.0, 1.0, 1.0],
];
const B: [f64; 4] = [1.0, -2.0, 3.0, 0.5];

fn least_squares(bound: &str, constraint: &str) -> String {
    format!(
        "param A = [[1, 2, 0], [0, 1, -1], [3, 0, 1], [1, 1, 1]]\nparam b = [1, -2, 3, 0.5]\n\
         var x : real[3] {bound} = 0\nminimize 0.5 * sumsq(A @ x - b)\nsubject to\n  {constraint}\n"
    )
}

#[test]
fn an_l1_ball_is_projected_onto_and_its_multiplier_meets_the_kkt_conditions() {
    let (x, mu) = with_multipliers(&least_squares("", "ball: norm1(x) <= 1"), Method::ProxGrad);
    let g = least_squares_gradient(&A, &B, &x);
    let mu = mu[0];
    // Active, sparse, and stationary: g = −μ sign(x) on the support, |g| ≤ μ off it.
    assert!(
        (x.iter().map(|v| v.abs()).sum::<f64>() - 1.0).abs() < 1e-12,
        "{x:?}"
    );
    assert!(mu > 0.1, "{mu}");
    assert!(x.contains(&0.0) && x.iter().filter(|v| **v != 0.0).count() >= 2);
    for (xi, gi) in x.iter().zip(&g) {
        match *xi {
            0.0 => assert!(gi.abs() <= mu + 1e-6, "{g:?} {mu}"),
            xi => assert!((gi + mu * xi.signum()).abs() < 1e-5, "{g:?} {mu} {x:?}"),
        }
    }
}

#[test]
fn an_l2_ball_composes_with_nonnegative_bounds() {
    let (x, mu) = with_multipliers(
        &least_squares(">= 0", "ball: norm2(x) <= 0.5"),
        Method::ProxGrad,
    );
    let g = least_squares_gradient(&A, &B, &x);
    let (mu, norm) = (mu[0], x.iter().map(|v| v * v).sum::<f64>().sqrt());
    assert!((norm - 0.5).abs() < 1e-12 && mu > 0.1, "{x:?} {mu}");
    // g + μ x/‖x‖ = ν ≥ 0, with ν = 0 where x > 0.
    for (xi, gi) in x.iter().zip(&g) {
        let nu = gi + mu * xi / norm;
        match *xi {
            0.0 => assert!(nu >= -1e-6, "{g:?} {mu}"),
            _ => assert!(nu.abs() < 1e-5, "{g:?} {mu} {x:?}"),
        }
    }
    assert!(x.contains(&0.0), "the bound binds somewhere: {x:?}");
}

#[test]
fn balls_per_column_and_per_row_scale_each_line() {
    // The nearest W with columns of norm ≤ 1: each column of V scaled; for
    // min ‖w − v‖² with ‖w‖ ≤ 1 stationarity gives μ = 2(‖v‖ − 1) where active.
    let v = "let V = [[3, 0.3, 0], [4, 0.4, 2]]";
    let (w, mu) = with_multipliers(
        &format!("var W : real[2, 3] = 0\n{v}\nminimize sumsq(W - V)\nsubject to\n  for j in 0..3: norm2(W[:, j]) <= 1\n"),
        Method::ProxGrad,
    );
    assert_close(&w, &[0.6, 0.3, 0.0, 0.8, 0.4, 1.0], 1e-9);
    assert_close(&mu, &[8.0, 0.0, 2.0], 1e-6);
    // `sumsq(w) <= 4` per row: w = 2v/‖v‖, and 2(w − v) + 2μw = 0 gives μ = ‖v‖/2 − 1.
    let (w, mu) = with_multipliers(
        &format!("var W : real[2, 3] = 0\n{v}\nminimize sumsq(W - V)\nsubject to\n  for i in 0..2: sumsq(W[i, :]) <= 4\n"),
        Method::ProxGrad,
    );
    let n0 = (9.0f64 + 0.09).sqrt();
    let n1 = (16.0f64 + 0.16 + 4.0).sqrt();
    let row = |v: [f64; 3], n: f64| v.map(|e| 2.0 * e / n);
    let expected: Vec<f64> = row([3.0, 0.3, 0.0], n0)
        .into_iter()
        .chain(row([4.0, 0.4, 2.0], n1))
        .collect();
    assert_close(&w, &expected, 1e-9);
    assert_close(&mu, &[n0 / 2.0 - 1.0, n1 / 2.0 - 1.0], 1e-6);
    // `sum(w .* w)` is the same ball as `sumsq(w)`.
    let (w, mu) = with_multipliers(
        "var w : real[2] = 0\nminimize sumsq(w - [3, 4])\nsubject to\n  b: sum(w .* w) <= 1\n",
        Method::ProxGrad,
    );
    assert_close(&w, &[0.6, 0.8], 1e-9);
    assert_close(&mu, &[4.0], 1e-6);
}

#[test]
fn an_l1_term_and_an_l1_ball_compose_exactly() {
    // Soft-thresholding at 0.5 then the ball: soft((3, −1, 0.2), 0.5 + θ) with ‖·‖₁ = 1 gives
    // θ = 1.5, x = (1, 0, 0), and μ = θ.
    let (x, mu) = with_multipliers(
        "var x : real[3] = 0\nminimize 0.5 * sumsq(x - [3, -1, 0.2]) + 0.5 * norm1(x)\nsubject to\n  ball: norm1(x) <= 1\n",
        Method::ProxGrad,
    );
    assert_close(&x, &[1.0, 0.0, 0.0], 1e-9);
    assert_close(&mu, &[1.5], 1e-6);
}

#[test]
fn balls_that_a_projection_would_not_solve_are_inequalities() {
    let base = "var x : real[3] BOUND = 0\nminimize sumsq(x - [0.5, 0.3, 1.2])\nsubject to\n";
    let with = |bound: &str, constraints: &str| base.replace("BOUND", bound) + constraints;
    assert!(refusal(&with("", "  b: norm2(x) <= -1\n")).contains("leaves no value"));
    // With bounds that differ between entries, on an expression, or with a bound that depends
    // on a variable, a ball is an inequality of `auglag`.
    let inequalities = [
        with(">= [-1, -2, -1]", "  b: norm2(x) <= 1\n"),
        with("", "  b: norm2(2 * x) <= 2\n"),
        with("", "  b: norm2(x) <= 2 - x[0] ^ 2\n"),
    ];
    for source in &inequalities {
        let plan = plan::choose(&model(source).program).unwrap();
        assert_eq!(plan.method, Method::AugLag, "{source}");
        assert_eq!(plan.structure.inequalities, [0], "{source}");
        assert!(
            plan.projections.iter().all(|p| p.ball.is_none()),
            "{source}"
        );
    }
    // The first two have the solution v / ‖v‖ (inside the bounds), as have the same balls with
    // bounds equal for every entry, which are projected onto.
    let v = [0.5f64, 0.3, 1.2];
    let norm = v.iter().map(|e| e * e).sum::<f64>().sqrt();
    let projected = [
        with(">= -1", "  b: norm2(x) <= 1\n"),
        with("", "  b: norm2(x) <= 1\n  s: x in box(-2, 2)\n"),
    ];
    for (source, method) in inequalities[..2]
        .iter()
        .map(|s| (s, Method::AugLag))
        .chain(projected.iter().map(|s| (s, Method::ProxGrad)))
    {
        let (_, outcome) = solve_by(source, method);
        assert_eq!(outcome.report.status, Status::Converged, "{source}");
        assert_close(&outcome.report.x, &v.map(|e| e / norm), 1e-6);
    }
    // Bounds that keep every point outside the ball.
    assert!(refusal(&with(">= 1", "  b: norm1(x) <= 2\n")).contains("leave no point"));
}

/// A norm ball on a variable with bounds equal for every entry is projected onto exactly
/// (clamp(soft(s, θ)) for L1, clamp(s / (1 + μ)) for L2): the KKT conditions hold with the
/// reported multiplier, a bound binding at one entry, others free (values as CVXPY's:
/// x = (0.4, 0, 0.2), μ = 3.3 for the L1 ball).
#[test]
fn a_ball_within_bounds_is_projected_onto_exactly() {
    for (bounds, ball, l1) in [
        (">= -0.3 <= 0.4", "norm1(x) <= 0.6", true),
        (">= -0.3 <= 0.35", "norm2(x) <= 0.45", false),
    ] {
        let (x, mu) = with_multipliers(
            &least_squares(bounds, &format!("ball: {ball}")),
            Method::ProxGrad,
        );
        let (g, mu) = (least_squares_gradient(&A, &B, &x), mu[0]);
        let norm = match l1 {
            true => x.iter().map(|v| v.abs()).sum::<f64>(),
            false => x.iter().map(|v| v * v).sum::<f64>().sqrt(),
        };
        let radius = if l1 { 0.6 } else { 0.45 };
        assert!((norm - radius).abs() < 1e-9 && mu > 0.1, "{x:?} {mu}");
        let hi = if l1 { 0.4 } else { 0.35 };
        assert!(x.contains(&hi), "the upper bound binds: {x:?}");
        // g + μ∂φ(x) + ν = 0 with ν ≥ 0 at the upper bound, 0 strictly inside.
        for (xi, gi) in x.iter().zip(&g) {
            let ball_part = match (l1, *xi) {
                (true, 0.0) => {
                    assert!(gi.abs() <= mu + 1e-6, "{g:?} {mu}");
                    continue;
                }
                (true, v) => mu * v.signum(),
                (false, v) => mu * v / norm,
            };
            let nu = -(gi + ball_part);
            match *xi == hi {
                true => assert!(nu >= -1e-6, "{x:?} {g:?} {mu}"),
                false => assert!(nu.abs() < 1e-5, "{x:?} {g:?} {mu}"),
            }
        }
    }
    let (x, mu) = with_multipliers(
        &least_squares(">= -0.3 <= 0.4", "ball: norm1(x) <= 0.6"),
        Method::ProxGrad,
    );
    assert_close(&x, &[0.4, 0.0, 0.2], 1e-9);
    assert_close(&mu, &[3.3], 1e-6);
}

/// The projections onto a ball within bounds on random points: the result is on the sphere and
/// of the form clamp(soft(s, θ)) (L1) or clamp(s / (1 + μ)) (L2) with one θ or μ ≥ 0 shared by
/// every free entry, the clamped and zeroed entries consistent with it.
#[test]
fn ball_projections_within_bounds_share_one_multiplier() {
    let mut uniform = uniform_from(0x2545f4914f6cdd1du64);
    for case in 0..2000 {
        let n = 1 + case % 30;
        let s: Vec<f64> = (0..n).map(|_| 6.0 * uniform() - 3.0).collect();
        let bounds = match case % 3 {
            0 => (-0.5 - uniform(), 0.5 + uniform()),
            1 => (0.0, 1.0 + uniform()),
            _ => (f64::NEG_INFINITY, f64::INFINITY),
        };
        let radius = 0.1 + 2.0 * uniform();
        let l1 = case % 2 == 0;
        let clamped: Vec<f64> = s.iter().map(|v| v.clamp(bounds.0, bounds.1)).collect();
        let norm = |x: &[f64]| match l1 {
            true => x.iter().map(|v| v.abs()).sum::<f64>(),
            false => x.iter().map(|v| v * v).sum::<f64>().sqrt(),
        };
        let mut x = clamped.clone();
        match l1 {
            true => project_l1_ball_within(&mut x, &s, radius, bounds),
            false => project_l2_ball_within(&mut x, &s, radius, bounds),
        }
        if norm(&clamped) <= radius {
            assert_eq!(x, clamped);
            continue;
        }
        let tol = 1e-12 * (1.0 + s.iter().map(|v| v.abs()).fold(0.0, f64::max));
        assert!(
            (norm(&x) - radius).abs() < 1e-10,
            "{s:?} {bounds:?} {radius} {x:?}"
        );
        let at_bound = |v: f64| v == bounds.0 || v == bounds.1;
        // The multiplier read off each free entry: θ = |s| − |x| for L1, μ = s / x − 1 for L2.
        let read = |(si, xi): (&f64, &f64)| match l1 {
            true => si.abs() - xi.abs(),
            false => si / xi - 1.0,
        };
        let free: Vec<f64> = s
            .iter()
            .zip(&x)
            .filter(|(_, &xi)| !at_bound(xi) && xi != 0.0)
            .map(read)
            .collect();
        let Some(&m) = free.first() else { continue };
        assert!(m >= -tol, "{s:?} {x:?} {m}");
        for f in &free {
            assert!(
                (f - m).abs() < 1e-9 * (1.0 + m),
                "{s:?} {bounds:?} {radius} {x:?}: {free:?}"
            );
        }
        // Every entry is what that one multiplier makes of it.
        for (si, xi) in s.iter().zip(&x) {
            let expected = match l1 {
                true => shrink(*si, m),
                false => si / (1.0 + m),
            }
            .clamp(bounds.0, bounds.1);
            assert!(
                (expected - xi).abs() < 1e-9,
                "{s:?} {bounds:?} {radius} {x:?}: {m}"
            );
        }
    }
}

#[test]
fn symmetrizing_a_slot_keeps_the_rest() {
    // A 2 × 2 slot at offset 1 of a flat vector of 6.
    let slot = SymmetricSlot { offset: 1, n: 2 };
    let mut x = [9.0, 1.0, 2.0, 4.0, 3.0, 7.0];
    slot.symmetrize(&mut x);
    assert_eq!(x, [9.0, 1.0, 3.0, 3.0, 3.0, 7.0]);
    assert!(slot.is_symmetric(&x));
    assert!(!slot.is_symmetric(&[0.0, 1.0, 2.0, 4.0, 3.0, 0.0]));
}

#[test]
fn the_nearest_symmetric_matrix_and_with_l1_weights_and_a_ball() {
    // min ‖X − Y‖² over symmetric X: (Y + Yᵀ)/2.
    let y = "let Y = [[1.0, 2.0, -1.0], [0.0, 3.0, 4.0], [1.0, 0.0, -2.0]]";
    let head = format!("var X : real[3, 3] = 0\n{y}\n");
    let (x, v) = solve(&format!(
        "{head}minimize sumsq(X - Y)\nsubject to\n  X in symmetric\n"
    ));
    let sym = [1.0, 1.0, 0.0, 1.0, 3.0, 2.0, 0.0, 2.0, -2.0];
    assert_close(&x, &sym, 1e-12);
    assert_eq!(v, [0.0]);
    // With 0.5·‖X‖₁ (prox t = 0.25 of sumsq's ½ scale 2): soft-thresholded by 0.25.
    let (x, _) = solve(&format!(
        "{head}minimize sumsq(X - Y) + 0.5 * norm1(X)\nsubject to\n  X in symmetric\n"
    ));
    let shrunk: Vec<f64> = sym
        .iter()
        .map(|v: &f64| v.signum() * (v.abs() - 0.25).max(0.0))
        .collect();
    assert_close(&x, &shrunk, 1e-12);
    // In the L2 ball of radius 1: the symmetric part scaled to norm 1 (‖sym‖ = √24).
    let (x, v) = solve(&format!(
        "{head}minimize sumsq(X - Y)\nsubject to\n  X in symmetric\n  norm2(X) <= 1\n"
    ));
    let scaled: Vec<f64> = sym.iter().map(|v| v / 24f64.sqrt()).collect();
    assert_close(&x, &scaled, 1e-9);
    assert!(v.iter().all(|v| *v < 1e-9), "{v:?}");
}

#[test]
fn an_l1_norm_of_a_weighted_variable_is_a_prox_term_with_entry_weights() {
    // ½‖x − y‖² + ‖m ∘ x‖₁: entry i soft-thresholded by |mᵢ|; 0 weighs nothing.
    let source = "var x : real[4] = 0\nlet y = [3.0, -3.0, 0.5, -0.2]\nlet m = [1.0, -2.0, 0.0, 1.0]\nminimize 0.5 * sumsq(x - y) + norm1(m .* x)\n";
    let plan = plan::choose(&model(source).program).unwrap();
    assert_eq!(plan.method, Method::ProxGrad, "{}", plan.reason);
    assert_eq!(plan.structure.prox.len(), 1);
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    let (_, outcome) = solve_by(source, Method::ProxGrad);
    assert_close(&outcome.report.x, &[2.0, -1.0, 0.5, 0.0], 1e-12);
    // A matrix weight broadcast from a row, times a scalar weight: column j by 0.5·|rⱼ|.
    let source = "var X : real[2, 2] = 0\nlet Y = [[2.0, 2.0], [-2.0, 1.0]]\nlet r = [1.0, 4.0]\nparam lambda = 0.5\nminimize 0.5 * sumsq(X - Y) + lambda * norm1(X .* r)\n";
    let (_, outcome) = solve_by(source, Method::ProxGrad);
    assert_close(&outcome.report.x, &[1.5, 0.0, -1.5, 0.0], 1e-12);
}

#[test]
fn symmetric_compositions_that_a_projection_would_not_solve_are_refused() {
    let base = "var X : real[2, 2] = 0\nlet Y = [[1.0, 2.0], [0.0, 3.0]]\n";
    // Weights that differ across the diagonal.
    let weighted = format!(
        "{base}let M = [[1.0, 2.0], [1.0, 1.0]]\nminimize sumsq(X - Y) + norm1(M .* X)\nsubject to\n  s: X in symmetric\n"
    );
    assert!(refusal(&weighted).contains("L1 weights of `X` are not symmetric"));
    let rows = format!(
        "{base}minimize sumsq(X - Y)\nsubject to\n  s: X in symmetric\n  for i in 0..2: X[i, :] in simplex\n"
    );
    assert!(refusal(&rows).contains("norm ball of the whole matrix only"));
    let card =
        format!("{base}minimize sumsq(X - Y)\nsubject to\n  s: X in symmetric\n  card(X) <= 1\n");
    assert!(refusal(&card).contains("norm ball of the whole matrix only"));
}

#[test]
fn penalties_under_constant_factors_are_prox_terms() {
    // Each objective is ½‖x − y‖² plus an L1 term (and a ridge) hidden under factors, so
    // minimized entrywise by soft-thresholding; the plan finds the prox term where it is.
    let y = [3.0, -0.5, 1.5];
    let head = "var x : real[3] = 0\nlet y = [3.0, -0.5, 1.5]\nparam lambda = 2\n";
    let soft = |t: f64, scale: f64| -> Vec<f64> {
        y.iter()
            .map(|v: &f64| v.signum() * (v.abs() - t).max(0.0) / scale)
            .collect()
    };
    for (objective, expected) in [
        // ½(x − y)² + 2|x| over 2.
        (
            "(0.5 * sumsq(x - y) + lambda * norm1(x)) / 2",
            soft(2.0, 1.0),
        ),
        // λ/2 |x| = |x|.
        ("0.5 * sumsq(x - y) + lambda * norm1(x) / 2", soft(1.0, 1.0)),
        // λ(0.5|x| + ½·0.5x²) = |x| + 0.5x²: (x − y) + sign(x) + x = 0.
        (
            "0.5 * sumsq(x - y) + lambda * elastic_net(x, l1 = 0.5, l2 = 0.5)",
            soft(1.0, 2.0),
        ),
        // λ·(0.25·|x|) nested: 0.5|x|.
        (
            "0.5 * sumsq(x - y) + lambda * (0.25 * norm1(x))",
            soft(0.5, 1.0),
        ),
    ] {
        let source = format!("{head}minimize {objective}\n");
        let plan = plan::choose(&model(&source).program).unwrap();
        assert_eq!(plan.structure.prox.len(), 1, "{objective}: {}", plan.reason);
        assert!(plan.warnings.is_empty(), "{objective}: {:?}", plan.warnings);
        let (_, outcome) = solve_by(&source, Method::ProxGrad);
        assert_close(&outcome.report.x, &expected, 1e-9);
    }
}

#[test]
fn a_group_norm_of_a_transposed_variable_groups_its_columns() {
    // ½‖W − Y‖² + ‖columns of W‖ (the rows of Wᵀ): column j scaled by (1 − 1/‖Yⱼ‖)₊.
    let source = "var W : real[2, 2] = 0\nlet Y = [[3.0, 0.3], [4.0, 0.4]]\nminimize 0.5 * sumsq(W - Y) + group_lasso(transpose(W))\n";
    let plan = plan::choose(&model(source).program).unwrap();
    assert_eq!(plan.structure.prox.len(), 1, "{}", plan.reason);
    assert_eq!(
        plan.structure.prox[0].kind,
        optc_compiler::structure::ProxKind::GroupCols
    );
    let (_, outcome) = solve_by(source, Method::ProxGrad);
    assert_close(&outcome.report.x, &[2.4, 0.0, 3.2, 0.0], 1e-9);
    // A group norm differentiated (on a bounded variable) is a kink where a line is 0.
    let bounded = source.replace("real[2, 2] = 0", "real[2, 2] >= -5 = 0");
    assert_eq!(kink_warning(&bounded).0, Some("E0365"));
}

/// `c * tv(x)` is a prox term of `fista`: denoising is one prox step; with an L1 term (fused
/// lasso), scalar bounds and a design matrix it reaches the optimum that `auglag` finds for the
/// same problem stated with a variable for the differences; a TV next to a simplex is refused.
#[test]
fn total_variation_terms_are_solved_by_their_prox() {
    let y = [0.1, 0.3, -0.2, 2.1, 1.8, 2.2, 1.0, 0.9, -0.4, 0.0];
    let signal = format!("param y = {y:?}\n");
    let (m, outcome) = solve_by(
        &format!("{signal}var x : real[10] = 0\nminimize 0.5 * sumsq(x - y) + 0.7 * tv(x)\n"),
        Method::ProxGrad,
    );
    assert_eq!(outcome.report.status, Status::Converged);
    let mut expected = y;
    total_variation(&mut expected, 0.7);
    assert_close(&outcome.report.x, &expected, 1e-12);
    assert!(m.program.constraints.is_empty());
    // `tv`'s body, either difference order, and `norm1` of the differences are the same term.
    for written in ["sum(abs(x[0:9] - x[1:10]))", "norm1(x[1:] - x[:9])"] {
        let (_, outcome) = solve_by(
            &format!(
                "{signal}var x : real[10] = 0\nminimize 0.5 * sumsq(x - y) + 0.7 * {written}\n"
            ),
            Method::ProxGrad,
        );
        assert_close(&outcome.report.x, &expected, 1e-12);
    }
    // Clamping after TV's prox is the prox with bounds equal for all entries.
    let (_, outcome) = solve_by(
        &format!("{signal}var x : real[10] = 0\nminimize 0.5 * sumsq(x - y) + 0.7 * tv(x)\nsubject to\n  x in box(0, 1.5)\n"),
        Method::ProxGrad,
    );
    let clamped: Vec<f64> = expected.iter().map(|v| v.clamp(0.0, 1.5)).collect();
    assert_close(&outcome.report.x, &clamped, 1e-12);
    // The fused lasso of a least-squares fit within bounds, against auglag's split form.
    let fit = "param A = [[1, 0.5, 0, 0, 0.2, 0], [0, 1, -0.3, 0, 0, 0.1], [0.2, 0, 1, 0.4, 0, 0], \
               [0, 0.1, 0, 1, -0.5, 0], [0.3, 0, 0, 0, 1, 0.6], [0, -0.2, 0.1, 0, 0, 1], [1, 1, 1, 1, 1, 1]]\n\
               param b = [1, 1.2, 0.1, -0.3, 2, 1.8, 3]\n\
               var x : real[6] >= -0.2 <= 1.5 = 0\n";
    let terms = "0.5 * sumsq(A @ x - b) + 0.15 * norm1(x)";
    let (_, fista) = solve_by(
        &format!("{fit}minimize {terms} + 0.4 * tv(x)\nsolve with fista(tol = 1e-12)\n"),
        Method::ProxGrad,
    );
    assert_eq!(fista.report.status, Status::Converged);
    let (_, split) = solve_by(
        &format!("{fit}var z : real[5] = 0\nminimize {terms} + 0.4 * norm1(z)\nsubject to\n  x[1:] - x[:5] == z\n"),
        Method::AugLag,
    );
    assert_eq!(split.report.status, Status::Converged);
    assert!(
        (fista.report.value - split.report.value).abs() < 1e-6,
        "fista {} vs auglag {}",
        fista.report.value,
        split.report.value
    );
    assert_close(&fista.report.x, &split.report.x[..6], 1e-4);
    assert!(refusal(&format!(
        "{signal}var x : real[10] = 0\nminimize 0.5 * sumsq(x - y) + tv(x)\nsubject to\n  s: x in simplex\n"
    ))
    .contains("total variation"));
}
