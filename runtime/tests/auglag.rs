//! The augmented Lagrangian on models, against known solutions: inequality constraints (active
//! and inactive, with bounds), constraints under `for` ranges, matrix-valued constraints, `in`
//! constraints as bounds (and sums) or, on expressions, as inequalities, L1 terms on bounded
//! variables, and `card` constraints and norm balls with subproblems solved by proximal gradient.

#[path = "support/isotonic.rs"]
mod isotonic;
#[path = "support/search.rs"]
mod search;
#[path = "support/solve.rs"]
mod support;

use isotonic::pool_adjacent_violators;
use optc_runtime::plan::{self, Details, Method};
use optc_runtime::solvers::Status;
use search::golden_section;
use std::path::Path;
use support::{assert_close, go_on, model, solve_by};

/// The solution of `source` by the method optc chooses (which must be `auglag`) and the
/// constraints' violations.
fn solve(source: &str) -> (Vec<f64>, Vec<f64>) {
    let (x, violations, _) = solve_with_details(source);
    (x, violations)
}

/// The model and outcome of `source` solved by `auglag`, which must converge.
fn converged(source: &str) -> (optc_runtime::model::Model, optc_runtime::plan::Outcome) {
    let (m, outcome) = solve_by(source, Method::AugLag);
    assert_eq!(
        outcome.report.status,
        Status::Converged,
        "{:?}",
        outcome.report
    );
    (m, outcome)
}

/// [`solve`] and what the method reports beyond its report (the multipliers).
fn solve_with_details(source: &str) -> (Vec<f64>, Vec<f64>, Details) {
    let (mut m, outcome) = converged(source);
    let violations = (0..m.program.constraints.len())
        .map(|i| m.violation(i).unwrap())
        .collect();
    (outcome.report.x, violations, outcome.details)
}

const VARIANCES: [f64; 4] = [1.0, 2.0, 4.0, 8.0];
const RETURNS: [f64; 4] = [0.05, 0.08, 0.12, 0.2];

/// Minimum variance Σ sᵢxᵢ² of a long-only portfolio with a return floor `r`: the budget as an
/// equality and the bound `x >= 0`.
fn portfolio(r: f64) -> String {
    portfolio_with(r, ">= 0 ", "budget: sum(x) == 1")
}

/// The same portfolio with the variable's bound `bound` and the budget constraint `budget`.
fn portfolio_with(r: f64, bound: &str, budget: &str) -> String {
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "var x : real[4] {bound}= 0.25\nlet s = [{}]\nlet mu = [{}]\nminimize sum(s .* x .* x)\nsubject to\n  {budget}\n  floor: sum(mu .* x) >= {r}\n",
        list(&VARIANCES),
        list(&RETURNS)
    )
}

#[test]
fn sets_on_variables_report_their_bounds_multipliers() {
    // min ½‖x − c‖² (+ 0.1‖x‖₁) with an inactive cap: at x = max(c, 0) the multiplier of −x ≤ 0
    // is x − c where x = 0; in box(−1, 0.7) with the L1 term x = (0.7, −1, 0.4), the upper end's
    // multiplier c − x − 0.1 = 0.2 and the lower end's x − c − 0.1 = 0.9 (signed −0.9).
    let multipliers = |source: &str| {
        let (_, _, details) = solve_with_details(source);
        let values = |i| details.multipliers(i).unwrap().clone();
        (values(0), values(1))
    };
    let base = "var x : real[3] = 0\nlet c = [1.0, -2.0, 0.5]\n";
    let (set, cap) = multipliers(&format!(
        "{base}minimize 0.5 * sumsq(x - c)\nsubject to\n  s: x in nonneg\n  cap: sum(x) <= 10\n"
    ));
    assert_close(set.as_slice().unwrap(), &[0.0, 2.0, 0.0], 1e-6);
    assert_eq!(cap.iter().copied().collect::<Vec<_>>(), [0.0]);
    let (set, _) = multipliers(&format!(
        "{base}minimize 0.5 * sumsq(x - c) + 0.1 * norm1(x)\nsubject to\n  s: x in box(-1, 0.7)\n  cap: sum(x) <= 10\n"
    ));
    assert_close(set.as_slice().unwrap(), &[0.2, -0.9, 0.0], 1e-6);
    // Per column: laid out [column, row] as the `for` instances are.
    let (set, _) = multipliers(
        "var T : real[2, 2] = 0\nlet C = [[1.0, -2.0], [-3.0, 4.0]]\n\
         minimize 0.5 * sumsq(T - C)\nsubject to\n  for j in 0..2: T[:, j] in nonneg\n  \
         cap: sum(T) <= 100\n",
    );
    assert_eq!(set.shape(), [2, 2]);
    assert_close(set.as_slice().unwrap(), &[0.0, 3.0, 2.0, 0.0], 1e-6);
}

#[test]
fn a_binding_return_floor_gives_the_kkt_portfolio() {
    // Stationarity 2sᵢxᵢ = ν + λμᵢ with both constraints active: xᵢ = (ν + λμᵢ)/(2sᵢ), and
    // Σx = 1, Σμx = r give ν, λ from a 2×2 system.
    let r = 0.12;
    let sum = |f: &dyn Fn(f64, f64) -> f64| -> f64 {
        VARIANCES.iter().zip(RETURNS).map(|(s, m)| f(*s, m)).sum()
    };
    let a = sum(&|s, _| 0.5 / s);
    let b = sum(&|s, m| 0.5 * m / s);
    let c = sum(&|s, m| 0.5 * m * m / s);
    let det = a * c - b * b;
    let (nu, lambda) = ((c - b * r) / det, (a * r - b) / det);
    assert!(lambda > 0.0, "the floor binds");
    let expected: Vec<f64> = VARIANCES
        .iter()
        .zip(RETURNS)
        .map(|(s, m)| (nu + lambda * m) / (2.0 * s))
        .collect();
    assert!(expected.iter().all(|x| *x > 0.0), "no bound is active");
    let (x, violations, details) = solve_with_details(&portfolio(r));
    assert_close(&x, &expected, 1e-6);
    assert!(violations.iter().all(|v| *v <= 1e-8), "{violations:?}");
    // The multipliers of f + α_b (Σx − 1) + α_f (r − μ·x): α_b = −ν, α_f = λ.
    let multiplier = |i| {
        details
            .multipliers(i)
            .unwrap()
            .iter()
            .copied()
            .collect::<Vec<_>>()
    };
    assert_close(&multiplier(0), &[-nu], 1e-5);
    assert_close(&multiplier(1), &[lambda], 1e-5);
    // The budget and the bound as `x in simplex`: bounds 0 ≤ x ≤ 1 and the equality Σx = 1.
    let (x, violations) = solve(&portfolio_with(r, "", "x in simplex"));
    assert_close(&x, &expected, 1e-6);
    assert!(violations.iter().all(|v| *v <= 1e-8), "{violations:?}");
}

/// The least of Σ fᵢ(xᵢ) over the points with two nonzeros at most, x_i = t and x_j = 1 − t
/// for a pair (i, j), within `[lo, hi]` for t where the other constraints leave t (a convex
/// function of t, by golden section; None where the interval is empty): every support of a
/// `card(x) <= 2` with Σx = 1.
fn best_pair(
    n: usize,
    objective: impl Fn(&[f64]) -> f64,
    interval: impl Fn(usize, usize) -> Option<(f64, f64)>,
) -> f64 {
    let mut best = f64::INFINITY;
    for i in 0..n {
        for j in i + 1..n {
            let Some((lo, hi)) = interval(i, j) else {
                continue;
            };
            let at = |t: f64| {
                let mut x = vec![0.0; n];
                (x[i], x[j]) = (t, 1.0 - t);
                objective(&x)
            };
            let t = golden_section(at, lo, hi, 1e-12);
            best = best.min(at(t)).min(at(lo)).min(at(hi));
        }
    }
    best
}

#[test]
fn card_with_a_return_floor_is_the_best_sparse_portfolio() {
    // At most 2 of the 4 assets, a floor r on the return: the augmented Lagrangian with
    // proximal-gradient subproblems against every pair, with the budget as a projected simplex
    // and as an equality next to the bound x ≥ 0 (the `card` then keeps the largest gains).
    // The stages alone end at (2) with the simplex at r = 0.12, 2.25× the best pair (1, 3),
    // and 1.14× with the equality: the swaps of the search after them find it. At r = 0.1 from
    // the simplex, single swaps stop at (1, 2), 1.125× the best pair (0, 3), which is two swaps
    // away: the search's double swap reaches it.
    let variance = |x: &[f64]| x.iter().zip(VARIANCES).map(|(x, s)| s * x * x).sum::<f64>();
    for r in [0.1, 0.12, 0.15, 0.18] {
        // x_i = t ∈ [0, 1], x_j = 1 − t with μ_j + t(μ_i − μ_j) ≥ r.
        let interval = |i: usize, j: usize| {
            let (slope, start) = (RETURNS[i] - RETURNS[j], RETURNS[j]);
            let (lo, hi) = match slope {
                s if s > 0.0 => (((r - start) / s).max(0.0), 1.0),
                s if s < 0.0 => (0.0, ((r - start) / s).min(1.0)),
                _ if start >= r => (0.0, 1.0),
                _ => return None,
            };
            (lo <= hi).then_some((lo, hi))
        };
        let best = best_pair(4, variance, interval);
        for (bound, budget) in [("", "x in simplex"), (">= 0 ", "budget: sum(x) == 1")] {
            let source = portfolio_with(r, bound, budget)
                + "  few: card(x) <= 2
";
            let (x, violations) = solve(&source);
            assert!(x.iter().filter(|v| **v != 0.0).count() <= 2, "{x:?}");
            assert!(violations.iter().all(|v| *v <= 1e-8), "{violations:?}");
            assert!(
                (variance(&x) - best).abs() <= 1e-6 * best,
                "floor {r}, `{budget}`: {x:?} ({}) vs the best pair's {best}",
                variance(&x)
            );
        }
    }
}

#[test]
fn card_with_an_equality_and_l1_terms_is_the_best_of_every_support() {
    // min ‖x − y‖² + 0.3‖x‖₁ s.t. Σx = 1, card(x) ≤ 2 over free x: the prox soft-thresholds and
    // keeps the two largest gains. The reported objective counts the L1 term.
    let y = [0.9, -0.6, 0.5, 0.1];
    let objective = |x: &[f64]| {
        x.iter()
            .zip(y)
            .map(|(x, y)| (x - y) * (x - y) + 0.3 * x.abs())
            .sum::<f64>()
    };
    let best = best_pair(4, objective, |_, _| Some((-5.0, 5.0)));
    let source = "var x : real[4] = 0
let y = [0.9, -0.6, 0.5, 0.1]
\
                  minimize sumsq(x - y) + 0.3 * norm1(x)
subject to
  \
                  budget: sum(x) == 1
  few: card(x) <= 2
";
    let (_, outcome) = solve_by(source, Method::AugLag);
    let x = &outcome.report.x;
    assert!(x.iter().filter(|v| **v != 0.0).count() <= 2, "{x:?}");
    assert!((x.iter().sum::<f64>() - 1.0).abs() <= 1e-8, "{x:?}");
    assert!((objective(x) - best).abs() <= 1e-6, "{x:?} vs {best}");
    assert!((outcome.report.value - objective(x)).abs() <= 1e-9);
}

#[test]
fn card_next_to_a_set_on_an_expression_is_solved_by_auglag() {
    // x + 1 ≥ 0 is an inequality of the merit; of y's entries, 0.9 and −1.6 (clipped to −1)
    // gain most: 0.81 and 1.6² − 0.6² against 0.25 and 0.01.
    let (x, violations) = solve(
        "var x : real[4] = 0\nlet y = [0.9, -1.6, 0.5, 0.1]\nminimize sumsq(x - y)\n\
         subject to\n  few: card(x) <= 2\n  floor: x + 1 in nonneg\n",
    );
    assert_close(&x, &[0.9, -1.0, 0.0, 0.0], 1e-6);
    assert!(violations.iter().all(|v| *v <= 1e-8), "{violations:?}");
}

#[test]
fn card_takes_the_inner_proximal_gradient_options() {
    let source = portfolio_with(0.1, "", "x in simplex")
        + "  few: card(x) <= 2
";
    let plan = plan::choose(&model(&source).program).unwrap();
    assert!(plan.auglag_by_prox(), "{}", plan.reason);
    let (_, outcome) = solve_by(
        &format!(
            "{source}solve with auglag(continuation = false, max_backtrack = 30)
"
        ),
        Method::AugLag,
    );
    assert_eq!(outcome.report.status, Status::Converged);
    let m = model(&format!(
        "{source}solve with auglag(memory = 5)
"
    ));
    let e = &plan::choose(&m.program).unwrap_err()[0];
    assert_eq!(e.code, "E0362");
    assert!(e.hint.as_deref().unwrap().contains("continuation"), "{e:?}");
}

#[test]
fn a_slack_return_floor_gives_the_minimum_variance_portfolio() {
    // Without the floor xᵢ ∝ 1/sᵢ, whose return (about 0.077) is above 0.05.
    let total: f64 = VARIANCES.iter().map(|s| 1.0 / s).sum();
    let expected: Vec<f64> = VARIANCES.iter().map(|s| 1.0 / s / total).collect();
    let (x, violations) = solve(&portfolio(0.05));
    assert_close(&x, &expected, 1e-6);
    assert!(
        violations.iter().all(|v| *v == 0.0 || *v <= 1e-8),
        "{violations:?}"
    );
}

#[test]
fn a_floor_that_forces_a_bound_keeps_it() {
    // A return of 0.2 is only reached by x = (0, 0, 0, 1).
    let (x, violations) = solve(&portfolio(0.2));
    assert_close(&x, &[0.0, 0.0, 0.0, 1.0], 1e-4);
    assert!(violations.iter().all(|v| *v <= 1e-6), "{violations:?}");
}

#[test]
fn constraints_under_for_ranges_hold_for_every_index() {
    // The nearest matrix with unit row sums: each row shifted by (1 − its sum)/3.
    let c = [[0.5, 0.2, 0.9], [0.1, -0.4, 0.6]];
    let (x, violations, details) = solve_with_details(
        "var X : real[2, 3] = 0\nlet C = [[0.5, 0.2, 0.9], [0.1, -0.4, 0.6]]\nminimize sumsq(X - C)\nsubject to\n  for i in 0..2: sum(X[i, :]) == 1\n",
    );
    // One multiplier per row: 2(x − c) + α = 0 gives α = −2·shift.
    let expected: Vec<f64> = c
        .iter()
        .flat_map(|row| {
            let shift = (1.0 - row.iter().sum::<f64>()) / 3.0;
            row.iter().map(move |v| v + shift)
        })
        .collect();
    assert_close(&x, &expected, 1e-7);
    assert!(violations[0] <= 1e-8, "{violations:?}");
    let alpha = details.multipliers(0).unwrap();
    assert_eq!(alpha.shape(), [2]);
    let shifts: Vec<f64> = c
        .iter()
        .map(|row| -2.0 * (1.0 - row.iter().sum::<f64>()) / 3.0)
        .collect();
    assert_close(alpha.as_slice().unwrap(), &shifts, 1e-6);
}

#[test]
fn columns_with_their_own_targets_and_unbatched_for_constraints() {
    // `for j: sum(X[:, j]) == t[j]` (one node for all columns: the index selects columns of X
    // and entries of t): each column shifted by (tⱼ − its sum)/2.
    let c = [[0.5, 0.2, 0.9], [0.1, -0.4, 0.6]];
    let t = [1.0, 0.0, 2.0];
    let (x, violations, details) = solve_with_details(
        "var X : real[2, 3] = 0\nlet C = [[0.5, 0.2, 0.9], [0.1, -0.4, 0.6]]\nlet t = [1.0, 0.0, 2.0]\nminimize sumsq(X - C)\nsubject to\n  for j in 0..3: sum(X[:, j]) == t[j]\n",
    );
    let shift: Vec<f64> = (0..3).map(|j| (t[j] - c[0][j] - c[1][j]) / 2.0).collect();
    let expected: Vec<f64> = (0..2)
        .flat_map(|i| (0..3).map(move |j| (i, j)))
        .map(|(i, j)| c[i][j] + shift[j])
        .collect();
    assert_close(&x, &expected, 1e-7);
    assert!(violations[0] <= 1e-8, "{violations:?}");
    let alpha = details.multipliers(0).unwrap();
    let minus_twice: Vec<f64> = shift.iter().map(|s| -2.0 * s).collect();
    assert_close(alpha.as_slice().unwrap(), &minus_twice, 1e-6);
    // A matrix product under the loop is not batched: one instance per row, the same answer.
    // Each row i: Xᵢ = Cᵢ + (1 − Cᵢ·w) w/‖w‖².
    let w = [1.0, 2.0, -1.0];
    let (x, violations) = solve(
        "var X : real[2, 3] = 0\nlet C = [[0.5, 0.2, 0.9], [0.1, -0.4, 0.6]]\nlet w = [1.0, 2.0, -1.0]\nminimize sumsq(X - C)\nsubject to\n  for i in 0..2: X[i, :] @ w == 1\n",
    );
    let norm2: f64 = w.iter().map(|v| v * v).sum();
    let expected: Vec<f64> = c
        .iter()
        .flat_map(|row| {
            let gap = 1.0 - row.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>();
            row.iter().zip(&w).map(move |(a, b)| a + gap * b / norm2)
        })
        .collect();
    assert_close(&x, &expected, 1e-7);
    assert!(violations[0] <= 1e-8, "{violations:?}");
}

#[test]
fn matrix_valued_inequalities_hold_elementwise() {
    // The nearest matrix to C below U (above L) is min(C, U) (max(C, L)).
    let source = |relation: &str, limit: &str| {
        format!(
            "var X : real[2, 2] = 0\nlet C = [[1.0, -2.0], [0.5, 3.0]]\nlet B = [[0.0, 0.0], [1.0, 2.0]]\nminimize sumsq(X - C)\nsubject to\n  X {relation} {limit}\n"
        )
    };
    let (x, violations) = solve(&source("<=", "B"));
    assert_close(&x, &[0.0, -2.0, 0.5, 2.0], 1e-6);
    assert!(violations[0] <= 1e-8, "{violations:?}");
    let (x, violations) = solve(&source(">=", "B"));
    assert_close(&x, &[1.0, 0.0, 1.0, 3.0], 1e-6);
    assert!(violations[0] <= 1e-8, "{violations:?}");
    // An equality of matrices: X Xᵀ = I with X square is an orthogonal X; from C the
    // nearest is the polar factor, here checked through its defining property.
    let (x, violations) = solve(
        "var X : real[2, 2] = [[1, 0.1], [0.2, 1]]\nlet C = [[2.0, 0.5], [-0.3, 1.0]]\nminimize sumsq(X - C)\nsubject to\n  X @ transpose(X) == eye(2)\n",
    );
    let gram = [
        x[0] * x[0] + x[1] * x[1],
        x[0] * x[2] + x[1] * x[3],
        x[2] * x[2] + x[3] * x[3],
    ];
    assert_close(&gram, &[1.0, 0.0, 1.0], 1e-7);
    assert!(violations[0] <= 1e-7, "{violations:?}");
}

#[test]
fn sets_on_every_column_become_bounds_and_sums() {
    // Each column of X on the simplex, nearest to C, with the total weight on row 0 at most 0.5:
    // without the cap the columns' projections put 0.8 + 0.7 = 1.5 on row 0 (columns (0.8, 0.2)
    // and (0.7, 0.3), thresholds 0.1 and 0.2 of C's columns (0.9, 0.3) and (0.9, 0.5)). With it,
    // both columns shift by the same amount t (equal multipliers by symmetry of the squared
    // distance): 0.8 − t + 0.7 − t = 0.5 gives t = 0.5, X = [[0.3, 0.2], [0.7, 0.8]].
    let (x, violations) = solve(
        "var X : real[2, 2] = 0.5\nlet C = [[0.9, 0.9], [0.3, 0.5]]\nminimize sumsq(X - C)\nsubject to\n  for j in 0..2: X[:, j] in simplex\n  cap: sum(X[0, :]) <= 0.5\n",
    );
    assert_close(&x, &[0.3, 0.2, 0.7, 0.8], 1e-6);
    assert!(violations.iter().all(|v| *v <= 1e-8), "{violations:?}");
}

#[test]
fn an_l1_term_on_a_bounded_variable_splits_within_the_bounds() {
    // Separable: xᵢ = clamp(soft(cᵢ, 0.05), −0.5, 0.5) for sumsq(x − c) + 0.1·‖x‖₁, the
    // inequality Σx ≤ 10 being slack.
    let (x, _) = solve(
        "var x : real[3] >= -0.5 <= 0.5 = 0\nlet c = [1.0, 0.02, -0.3]\nminimize sumsq(x - c) + 0.1 * norm1(x)\nsubject to\n  sum(x) <= 10\n",
    );
    assert_close(&x, &[0.5, 0.0, -0.25], 1e-7);
}

#[test]
fn sets_on_expressions_become_inequalities() {
    // Isotonic regression, `x[1:3] - x[0:2] in nonneg`: pooling adjacent violators gives
    // (3, 1, 2) → (2, 2, 2) and (1, 3, 2) → (1, 2.5, 2.5).
    let isotonic = |c: &str| {
        format!("var x : real[3] = 0\nlet c = {c}\nminimize sumsq(x - c)\nsubject to\n  x[1:3] - x[0:2] in nonneg\n")
    };
    // Their multipliers, from stationarity 2(x − c) = Dᵀα with e = Dx: α = (2, 0) for e ≥ 0;
    // (1, 1) and (−1, −1) bind the box's upper and lower ends: μ = 2(c − x) = 1, then −2, the
    // upper end's minus the lower end's; `2 * x in simplex`, that of its sum: 2(x₀ − c₀) + 2ν = 0
    // with x₀ = 0.35 > 0 gives ν = 0.15.
    let multiplier = |details: &Details| details.multipliers(0).unwrap().clone();
    let (x, _, details) = solve_with_details(&isotonic("[3.0, 1.0, 2.0]"));
    assert_close(&x, &[2.0, 2.0, 2.0], 1e-6);
    assert_close(multiplier(&details).as_slice().unwrap(), &[2.0, 0.0], 1e-5);
    let (x, _) = solve(&isotonic("[1.0, 3.0, 2.0]"));
    assert_close(&x, &[1.0, 2.5, 2.5], 1e-6);
    // A box on a sum: from (1, 1) the sum is capped at 1, from (−1, −1) floored at 0.
    let boxed = |c: &str| {
        format!("var x : real[2] = 0\nlet c = {c}\nminimize sumsq(x - c)\nsubject to\n  x[0] + x[1] in box(0, 1)\n")
    };
    let (x, violations, details) = solve_with_details(&boxed("[1.0, 1.0]"));
    assert_close(&x, &[0.5, 0.5], 1e-6);
    assert!(violations[0] <= 1e-8, "{violations:?}");
    assert_close(multiplier(&details).as_slice().unwrap(), &[1.0], 1e-5);
    let (x, _, details) = solve_with_details(&boxed("[-1.0, -1.0]"));
    assert_close(&x, &[0.0, 0.0], 1e-6);
    assert_close(multiplier(&details).as_slice().unwrap(), &[-2.0], 1e-5);
    // `2 * x in simplex`: x ≥ 0 with Σx = 0.5; from (0.5, 0.3, −0.2) the threshold is 0.15.
    let (x, violations, details) = solve_with_details(
        "var x : real[3] = 0\nlet c = [0.5, 0.3, -0.2]\nminimize sumsq(x - c)\nsubject to\n  2 * x in simplex\n",
    );
    assert_close(&x, &[0.35, 0.15, 0.0], 1e-6);
    assert!(violations[0] <= 1e-8, "{violations:?}");
    assert_close(multiplier(&details).as_slice().unwrap(), &[0.15], 1e-5);
}

#[test]
fn a_quadratic_risk_budget_when_maximizing_the_return_matches_cvxpy() {
    // The portfolio example's data, the mean return maximized under a variance budget (a convex
    // quadratic inequality). CVXPY 1.9 with Clarabel: objective 0.11375893929, the budget's dual
    // value 0.64828 (for `maximize`, the multiplier of the minimized −objective, as here).
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/data/R.npy");
    let source = format!(
        "dims n, p\ndata R : real[n, p] = load(\"{}\")\nvar w : real[p] = 0\nlet mu = mean(R, axis = 0)\nmaximize sum(mu .* w)\nsubject to\n  w in simplex\n  risk: sumsq((R - mu) @ w) / (n - 1) <= 0.02\n",
        data.display()
    );
    let mut m = model(&source);
    let plan = plan::choose(&m.program).unwrap();
    let outcome = plan::solve(&mut m, &plan, &mut go_on).unwrap();
    assert_eq!(outcome.report.status, Status::Converged);
    let objective = m.program.objective.clone().unwrap().node;
    let value = m.eval_scalar(objective).unwrap();
    assert!((value - 0.11375893929).abs() < 1e-7, "{value}");
    let risk = outcome.details.multipliers(1).unwrap();
    assert!(
        (risk.iter().next().unwrap() - 0.64828).abs() < 1e-3,
        "{risk}"
    );
}

#[test]
fn methods_without_inequalities_refuse_them() {
    let mut source = portfolio(0.12);
    source.push_str("solve with lbfgs\n");
    let m = model(&source);
    let e = &plan::choose(&m.program).unwrap_err()[0];
    assert_eq!(e.code, "E0360");
    assert!(e.message.contains("floor"), "{}", e.message);
}

#[test]
fn a_long_chain_of_inequalities_converges_where_the_inner_solver_hits_its_limit() {
    // Isotonic regression of a noisy random walk, n = 1000, written as a `for` range over the
    // chain x[i] <= x[i + 1]. Its multipliers converge slowly and ρ must grow large, where
    // L-BFGS reaches its iteration limit. Growing ρ further from there made every later
    // subproblem unsolvable: the run stopped at ρ_max short of the solution (for 4 of 8 such
    // walks, this one among them).
    let n = 1000;
    let mut state = 1u64;
    let mut uniform = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let mut normal = || {
        let (u, v) = (uniform(), uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    };
    let mut walk = 0.0;
    let y: Vec<f64> = (0..n)
        .map(|_| {
            walk += 0.3 * normal();
            walk + normal()
        })
        .collect();
    let literal = y
        .iter()
        .map(|v| format!("{v:.6}"))
        .collect::<Vec<_>>()
        .join(", ");
    let y: Vec<f64> = literal.split(", ").map(|v| v.parse().unwrap()).collect();
    let (x, violations) = solve(&format!(
        "var x : real[{n}] = 0\nlet y = [{literal}]\nminimize sumsq(x - y)\nsubject to\n  for i in 0..{}: x[i] <= x[i + 1]\n",
        n - 1
    ));
    let expected = pool_adjacent_violators(&y);
    assert_close(&x, &expected, 1e-3);
    let objective = |x: &[f64]| x.iter().zip(&y).map(|(a, b)| (a - b).powi(2)).sum::<f64>();
    let (found, best) = (objective(&x), objective(&expected));
    // Each of the 999 components may be violated by up to h_tol = 1e-8: with multipliers in
    // the hundreds, f may end ~1e-3 below the optimum (1e-7 relative).
    assert!((found - best).abs() <= 1e-6 * best, "{found} vs {best}");
    assert!(violations[0] <= 1e-8, "{violations:?}");
}

#[test]
fn a_for_index_past_its_axis_is_named_before_solving() {
    // The range has m = 5 indices and x has n = 3 entries: sizes the checker cannot compare
    // (two dims), known once the data are bound.
    let source = "dims m, n\ndata a : real[m]\nvar x : real[n] = 0\nminimize sumsq(x)\nsubject to\n  floor: for i in 0..m: x[i] >= a[i]\n";
    let program =
        optc_compiler::driver::compile("model.opt", source, optc_compiler::driver::Until::Ir)
            .unwrap()
            .program
            .unwrap();
    let spec = optc_runtime::model::BindSpec {
        dims: vec![("m".into(), 5), ("n".into(), 3)],
        random_data: Some(1),
        ..Default::default()
    };
    let bindings = optc_runtime::model::bind(&program, Path::new("."), &spec).unwrap();
    let mut m = optc_runtime::model::Model::new(program, bindings).unwrap();
    let plan = plan::choose(&m.program).unwrap();
    let e = plan::solve(&mut m, &plan, &mut go_on)
        .err()
        .expect("refused");
    assert_eq!(e.code, "E0405");
    assert!(
        e.message.contains("floor")
            && e.message
                .contains("positions 0 to 4 of an axis of length 3"),
        "{}",
        e.message
    );
}

#[test]
fn a_maximized_objective_splits_its_l1_term() {
    // max μ·w − 0.1‖w‖₁ on the unit ball: w = s/‖s‖ with s = soft(μ, 0.1), the multiplier of
    // sumsq(w) <= 1 ‖s‖/2 (for the minimized −objective), of the same ball written
    // sumsq(2 * w) <= 4 a quarter of it. The L1 term splits as when minimizing. (As a ball of
    // the variable itself the constraint would be projected onto: tests/prox.rs.)
    let (w, violations, details) = solve_with_details(
        "var w : real[4] = 0\nlet mu = [0.5, -0.3, 0.05, 0.2]\nmaximize sum(mu .* w) - 0.1 * norm1(w)\nsubject to\n  ball: sumsq(2 * w) <= 4\n",
    );
    let soft = [0.4, -0.2, 0.0, 0.1];
    let norm = soft.iter().map(|v: &f64| v * v).sum::<f64>().sqrt();
    let expected: Vec<f64> = soft.iter().map(|v| v / norm).collect();
    assert_close(&w, &expected, 1e-6);
    assert!(violations[0] <= 1e-8, "{violations:?}");
    let alpha = details.multipliers(0).unwrap();
    assert!(
        (alpha.iter().next().unwrap() - norm / 8.0).abs() < 1e-6,
        "{alpha}"
    );
}

#[test]
fn the_euclidean_norm_from_the_zero_start() {
    // ‖x‖₂ = √Σx² has the subgradient 0 at x = 0; its derivative there used to be 0/0, and
    // both solves below "diverged" at their zero start. c = (1, 2, 2), ‖c‖ = 3. (The ball is
    // of 2x, an inequality: `norm2(x) <= 1` would be projected onto.)
    let (x, violations) = solve(
        "var x : real[3] = 0\nlet c = [1.0, 2.0, 2.0]\nminimize sumsq(x - c)\nsubject to\n  ball: norm2(2 * x) <= 2\n",
    );
    assert_close(&x, &[1.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0], 1e-7);
    assert!(violations[0] <= 1e-8, "{violations:?}");
    // Unconstrained, the penalty shrinks c by 1/(2‖c‖): x = c·5/6.
    let (_, outcome) = solve_by(
        "var x : real[3] = 0\nlet c = [1.0, 2.0, 2.0]\nminimize sumsq(x - c) + norm2(x)\n",
        Method::Lbfgs,
    );
    assert_eq!(
        outcome.report.status,
        Status::Converged,
        "{:?}",
        outcome.report
    );
    assert_close(
        &outcome.report.x,
        &[5.0 / 6.0, 10.0 / 6.0, 10.0 / 6.0],
        1e-7,
    );
}

#[test]
fn a_norm_ball_is_projected_onto_in_the_subproblems() {
    // min ½‖x − v‖² with ‖x‖₂ ≤ 1 and Σx = 1: stationarity x − v + μx/‖x‖ + λ1 = 0, with μ
    // the ball's multiplier (from stationarity of the subproblems' prox) and λ the sum's α.
    let v = [2.0, 0.5, -1.0];
    let (x, violations, details) = solve_with_details(
        "var x : real[3] = 0\nminimize 0.5 * sumsq(x - [2, 0.5, -1])\nsubject to\n  ball: norm2(x) <= 1\n  total: sum(x) == 1\n",
    );
    let mu = details.multipliers(0).expect("the ball's")[[]];
    let lambda = details.multipliers(1).expect("the sum's")[[]];
    let norm = x.iter().map(|e| e * e).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-9 && mu > 0.1, "{x:?} {mu}");
    assert!(
        violations[0] <= 1e-12 && violations[1] < 1e-7,
        "{violations:?}"
    );
    for i in 0..3 {
        let r = x[i] - v[i] + mu * x[i] / norm + lambda;
        assert!(
            r.abs() < 1e-5,
            "component {i}: {r} ({x:?}, μ {mu}, λ {lambda})"
        );
    }
}

#[test]
fn sets_whose_bounds_are_read_at_the_loop_index_are_inequalities() {
    // One projection serves every line only with one bound for all; per-line bounds (here read
    // at the loop's index) make the constraints inequalities. Both used to be projected onto,
    // and the bound's evaluation failed outside the loop (E0402).
    let v = "param V = [[3, 4], [0.3, 0.4], [1, 0]]\nvar W : real[3, 2] = 0\nminimize sumsq(W - V)\nsubject to\n";
    let (w, violations) = solve(&format!(
        "param b = [1, 2]\n{v}  bx: for j in 0..2: W[:, j] in box(-b[j], b[j])\n"
    ));
    assert_close(&w, &[1.0, 2.0, 0.3, 0.4, 1.0, 0.0], 1e-7);
    assert!(violations[0] <= 1e-8, "{violations:?}");
    // Rows in balls of radii 1, 2 and 0.5: (3, 4) scaled to norm 1, (0.3, 0.4) inside, (1, 0)
    // to 0.5.
    let (w, violations) = solve(&format!(
        "param r = [1, 2, 0.5]\n{v}  rows: for i in 0..3: norm2(W[i, :]) <= r[i]\n"
    ));
    assert_close(&w, &[0.6, 0.8, 0.3, 0.4, 0.5, 0.0], 1e-7);
    assert!(violations[0] <= 1e-8, "{violations:?}");
}

#[test]
fn a_symmetric_matrix_with_an_equality_and_a_symmetric_expression() {
    // min ‖X − Y‖² over symmetric X with trace X = 1: sym(Y) − (tr Y − 1)/3 · I. The symmetry
    // is the equality X − Xᵀ == 0 (the inner L-BFGS-B cannot project onto it); its multiplier
    // stays antisymmetric and stationarity 2(X − Y) + α − αᵀ + ν I = 0 fixes it: α = (Y − Yᵀ)/2.
    let y = [[1.0, 2.0, -1.0], [0.0, 3.0, 4.0], [1.0, 0.0, -2.0]];
    let source = "var X : real[3, 3] = 0\nlet Y = [[1.0, 2.0, -1.0], [0.0, 3.0, 4.0], [1.0, 0.0, -2.0]]\nminimize sumsq(X - Y)\nsubject to\n  s: X in symmetric\n  t: trace(X) == 1\n";
    let (x, violations, details) = solve_with_details(source);
    let shift = (1.0 + 3.0 - 2.0 - 1.0) / 3.0;
    let expected: Vec<f64> = (0..9)
        .map(|k| {
            let (i, j) = (k / 3, k % 3);
            0.5 * (y[i][j] + y[j][i]) - if i == j { shift } else { 0.0 }
        })
        .collect();
    assert_close(&x, &expected, 1e-6);
    assert!(violations.iter().all(|v| *v < 1e-8), "{violations:?}");
    let alpha = details.multipliers(0).unwrap();
    assert_eq!(alpha.shape(), [3, 3]);
    let skew: Vec<f64> = (0..9)
        .map(|k| 0.5 * (y[k / 3][k % 3] - y[k % 3][k / 3]))
        .collect();
    assert_close(alpha.as_slice().unwrap(), &skew, 1e-5);
    // On an expression: X + D symmetric, so X = sym(Y + D) − D.
    let (x, violations) = solve(
        "var X : real[2, 2] = 0\nlet Y = [[1.0, 2.0], [0.0, 3.0]]\nlet D = [[0.0, 1.0], [0.0, 0.0]]\nminimize sumsq(X - Y)\nsubject to\n  X + D in symmetric\n",
    );
    assert_close(&x, &[1.0, 0.5, 1.5, 3.0], 1e-6);
    assert!(violations[0] < 1e-8, "{violations:?}");
}

/// Constraints that cannot hold together end `infeasible` (the violation stays while ρ grows a
/// millionfold), E0366 points at the most violated one; feasible constraints whose violation
/// falls slowly (a degenerate feasible point, where the violation falls like a power of 1/ρ)
/// still converge.
#[test]
fn contradictory_constraints_end_infeasible() {
    for constraints in [
        "x[0] + x[1] == 1\n  worst: x[0] + x[1] == 2",
        "worst: sum(x) <= -1",
        "x[0] == 2\n  worst: x[0] <= 1.5",
    ] {
        let source = format!(
            "var x : real[3] >= 0 = 1\nminimize sumsq(x - 1)\nsubject to\n  {constraints}\n"
        );
        let (mut m, outcome) = solve_by(&source, Method::AugLag);
        assert_eq!(outcome.report.status, Status::Infeasible, "{constraints}");
        let violations: Vec<f64> = (0..m.program.constraints.len())
            .map(|i| m.violation(i).unwrap())
            .collect();
        assert!(violations.iter().any(|v| *v > 0.1), "{violations:?}");
        let warning = plan::infeasibility_warning(&m.program, &violations);
        assert_eq!(warning.code, "E0366");
        let worst = m.program.constraints.iter().position(|c| c.name == "worst");
        assert_eq!(
            warning.labels[0].span,
            m.program.constraints[worst.unwrap()].span.unwrap(),
            "{constraints}: {warning:?}"
        );
    }
    for constraints in ["sumsq(x) == 0", "x[0]^2 == 0\n  x[1] * x[2] == 0"] {
        let source =
            format!("var x : real[3] = 0.5\nminimize sumsq(x - 1)\nsubject to\n  {constraints}\n");
        let (_, outcome) = solve_by(&source, Method::AugLag);
        assert_eq!(outcome.report.status, Status::Converged, "{constraints}");
    }
}

/// Robust PCA in its exact form: a nuclear norm and a weighted L1 norm with an equality tying
/// them. The nuclear norm has no split for L-BFGS: the subproblems are solved by proximal
/// gradient with its prox. The optimum is CVXPY's (Clarabel at 1e-12): 15.40793522370367.
#[test]
fn a_nuclear_norm_beside_an_equality_is_solved_by_its_prox() {
    let source = "let M = [[1.077, 0.7261, -2.4978, -1.6409, -0.1408, -0.4421], [-1.6732, -1.4086, 8.2747, 2.3767, 0.2304, 5.4591], [0.6136, 0.1846, -1.9181, -1.0761, -0.0706, -0.438], [0.7307, 0.7421, -1.1557, -0.9596, -0.1059, -0.0974], [0.3951, 0.1895, -1.0825, 4.3506, -0.0484, -0.2247], [0.7086, 0.5421, -1.5045, 3.9599, -0.0953, -0.2387], [-0.2401, 0.0514, 1.0175, 0.4971, 0.0225, 0.2717], [0.7558, 0.7439, -1.2466, -1.0072, -0.1086, 4.88]]
var L : real[8, 6] = 0
var S : real[8, 6] = 0
minimize nuclear_norm(L) + 0.3 * norm1(S)
subject to
  split: L + S == M
";
    let (mut m, outcome) = converged(source);
    let optimum = 15.40793522370367;
    assert!(
        (outcome.report.value - optimum).abs() < 1e-6 * optimum,
        "{} against {optimum}",
        outcome.report.value
    );
    assert!(m.violation(0).unwrap() < 1e-7);
}
