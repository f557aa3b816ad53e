//! Local search over the supports of `card` constraints after a staged solve. Lowering the bound
//! in stages keeps the entries that are largest on the way down, which can miss the best support
//! (on a portfolio with a return floor, the high-return asset has the smallest weight until the
//! floor binds). From the staged solution the search tries supports that swap one kept entry
//! for one outside, where the support is at its bound (a `card` that does not bind leaves the
//! problem as it is without it): each is solved with the projection restricted to it
//! (`SlotProjection::support`), from the solution with the swapped entry's value moved, and the
//! first that is better is kept; a round that improves nothing ends the search. The entries
//! outside are ranked by the gradient at the solution (the lowest first on a simplex, where mass
//! moves to them; else the largest magnitude), the kept ones by their magnitude (the smallest
//! first), and the pairs by the sum of their ranks: a round tries every pair when there are at
//! most [`EVERY_PAIR_UP_TO`], else the [`RANKED_PAIRS`] best ranked. Where every single swap was
//! tried in vain, the round tries double swaps among the best ranked ([`DOUBLE_SWAPS_AMONG`]),
//! within a budget of iterations (as many as everything before them): on index tracking the
//! best support of 5 assets is two swaps from the one single swaps stop at. Only a `card` on a
//! whole variable is searched (not per line).

use crate::prox::{Set, SlotProjection};
use crate::solvers::{Callback, Control, IterInfo, Report, Status};

/// A round tries every pair (removed, added) when there are at most this many.
const EVERY_PAIR_UP_TO: usize = 100;
/// Pairs tried per round, by the sum of their ranks, when there are more.
const RANKED_PAIRS: usize = 8;
/// When no single swap improves (all of them tried), a round swaps two entries for two, each
/// pair among this many best ranked kept entries and as many outside, until these solves have
/// cost as many iterations as everything before them.
const DOUBLE_SWAPS_AMONG: usize = 5;

/// A solve with restricted projections, as the search needs it. `E` is what a solve returns
/// beside its report (the augmented Lagrangian's multipliers).
pub(crate) trait SupportSolver<E> {
    /// The gradient of the smooth part the solves minimize at `solution`'s point.
    fn gradient(&mut self, solution: &(Report, E)) -> Vec<f64>;
    /// Solves with `projections` from `start`, near the solution `near` (which a solve may warm
    /// start from).
    fn solve(&mut self, projections: &[SlotProjection], start: &[f64], near: &E) -> (Report, E);
    /// Whether `candidate` is better than `best`.
    fn better(&self, candidate: &Report, best: &Report) -> bool;
}

/// Searches from `staged` (solved with `projections`) for at most `rounds` improving swaps;
/// returns the best solution, its report's iterations counting every solve's. The callback
/// sees the best solution after each support tried (the iterations so far, step 0); when it
/// stops, so does the search, with the best solution and the status `Interrupted`.
pub(crate) fn search_supports<E>(
    solver: &mut dyn SupportSolver<E>,
    projections: &[SlotProjection],
    staged: (Report, E),
    rounds: usize,
    callback: Callback,
) -> (Report, E) {
    let mut best = staged;
    let mut iterations = best.0.iterations;
    let mut restricted = projections.to_vec();
    for _ in 0..rounds {
        let gradient = solver.gradient(&best);
        let mut improved = false;
        'sizes: for size in [1, 2] {
            // Double swaps may cost as many iterations as everything before them.
            let budget = 2 * iterations;
            for (c, p) in projections.iter().enumerate() {
                let Some((kept, outside)) = ranked_entries(p, &best.0.x, &gradient) else {
                    continue;
                };
                for m in moves(&kept, &outside, size) {
                    if size == 2 && iterations > budget {
                        break 'sizes;
                    }
                    let mut candidate: Vec<usize> = kept
                        .iter()
                        .copied()
                        .filter(|i| !m.removed.contains(i))
                        .chain(m.added.iter().copied())
                        .collect();
                    candidate.sort_unstable();
                    let mut start = best.0.x.clone();
                    for (&removed, &added) in m.removed.iter().zip(&m.added) {
                        start[p.offset + added] = start[p.offset + removed];
                        start[p.offset + removed] = 0.0;
                    }
                    restricted[c].support = Some(candidate);
                    let solved = solver.solve(&restricted, &start, &best.1);
                    restricted[c].support = None;
                    iterations += solved.0.iterations;
                    let better = solver.better(&solved.0, &best.0);
                    if better {
                        best = solved;
                    }
                    let info = IterInfo {
                        iter: iterations,
                        value: best.0.value,
                        optimality: best.0.optimality,
                        violation: best.0.violation,
                        step: 0.0,
                    };
                    if callback(&info) == Control::Stop {
                        best.0.status = Status::Interrupted;
                        best.0.iterations = iterations;
                        return best;
                    }
                    if better {
                        improved = true;
                        break 'sizes;
                    }
                }
            }
        }
        if !improved {
            break;
        }
    }
    best.0.iterations = iterations;
    best
}

/// For a `card` on a whole variable whose support in `x` is at its bound: the entries kept,
/// the smallest magnitude first, and those outside, ranked by the gradient `g` (the lowest first
/// on a simplex, where mass moves to them; else the largest magnitude). `None` for other
/// projections and for a support below its bound.
fn ranked_entries(p: &SlotProjection, x: &[f64], g: &[f64]) -> Option<(Vec<usize>, Vec<usize>)> {
    let k = p.set.card_bound()?;
    if p.lines.is_some() {
        return None;
    }
    let len = p.line_len();
    let (x, g) = (&x[p.offset..p.offset + len], &g[p.offset..p.offset + len]);
    let mut kept: Vec<usize> = (0..len).filter(|&i| x[i] != 0.0).collect();
    if kept.len() < k {
        return None;
    }
    kept.sort_by(|&a, &b| x[a].abs().total_cmp(&x[b].abs()));
    let simplex = matches!(p.set, Set::SparseSimplex(_));
    let score = |j: usize| if simplex { -g[j] } else { g[j].abs() };
    let mut outside: Vec<usize> = (0..len).filter(|&i| x[i] == 0.0).collect();
    outside.sort_by(|&a, &b| score(b).total_cmp(&score(a)));
    Some((kept, outside))
}

/// A move of the search in one `card`: entries that leave the support and as many that enter.
struct Move {
    removed: Vec<usize>,
    added: Vec<usize>,
}

/// The moves that swap `size` (1 or 2) entries of `kept` for as many of `outside`, both ranked
/// best first, in the order of the sum of their ranks: every single swap when there are at most
/// [`EVERY_PAIR_UP_TO`], else the [`RANKED_PAIRS`] best; double swaps among the
/// [`DOUBLE_SWAPS_AMONG`] best ranked of each, only where every single swap is tried (none
/// improving then shows the support is the best of its neighbours).
fn moves(kept: &[usize], outside: &[usize], size: usize) -> Vec<Move> {
    let groups = |ranked: &[usize]| -> Vec<(usize, Vec<usize>)> {
        match size {
            1 => ranked
                .iter()
                .enumerate()
                .map(|(r, &i)| (r, vec![i]))
                .collect(),
            _ => {
                let top = &ranked[..ranked.len().min(DOUBLE_SWAPS_AMONG)];
                let mut out = Vec::new();
                for (a, &i) in top.iter().enumerate() {
                    for (b, &j) in top.iter().enumerate().skip(a + 1) {
                        out.push((a + b, vec![i, j]));
                    }
                }
                out
            }
        }
    };
    let every_single = kept.len() * outside.len() <= EVERY_PAIR_UP_TO;
    if size == 2 && !every_single {
        return Vec::new();
    }
    let mut ranked: Vec<(usize, Move)> = Vec::new();
    for (ra, added) in groups(outside) {
        for (rk, removed) in groups(kept) {
            let added = added.clone();
            ranked.push((ra + rk, Move { removed, added }));
        }
    }
    ranked.sort_by_key(|(rank, _)| *rank);
    if !every_single {
        ranked.truncate(RANKED_PAIRS);
    }
    ranked.into_iter().map(|(_, m)| m).collect()
}

/// Whether `candidate`'s value is below `best`'s by more than rounding (a relative 1e-9).
pub(crate) fn lower_value(candidate: &Report, best: &Report) -> bool {
    candidate.value < best.value - 1e-9 * best.value.abs()
}
