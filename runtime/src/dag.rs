//! DAG post-processing and graph metrics for weighted adjacency matrices (W[i, j] ≠ 0 is the
//! edge i → j), and the log-det acyclicity function of DAGMA.

use faer::linalg::solvers::DenseSolveCore;
use faer::Mat;
use ndarray::{Array2, ArrayView2};

/// Sets entries with |w| < threshold to 0, in place.
pub fn threshold(w: &mut Array2<f64>, threshold: f64) {
    w.mapv_inplace(|v| if v.abs() < threshold { 0.0 } else { v });
}

/// A topological order of the graph with edges at the nonzero entries of `w` (Kahn's algorithm,
/// smallest ready index first), or `None` if it has a cycle (self-loops included).
pub fn topological_order(w: ArrayView2<f64>) -> Option<Vec<usize>> {
    let d = w.nrows();
    let mut indegree: Vec<usize> =
        (0..d).map(|j| (0..d).filter(|&i| w[[i, j]] != 0.0).count()).collect();
    let mut ready: std::collections::BTreeSet<usize> =
        (0..d).filter(|&j| indegree[j] == 0).collect();
    let mut order = Vec::with_capacity(d);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for j in 0..d {
            if w[[i, j]] != 0.0 {
                indegree[j] -= 1;
                if indegree[j] == 0 {
                    ready.insert(j);
                }
            }
        }
    }
    (order.len() == d).then_some(order)
}

/// Whether the nonzero pattern of `w` is acyclic.
pub fn is_dag(w: ArrayView2<f64>) -> bool {
    topological_order(w).is_some()
}

/// The outcome of [`to_dag`].
#[derive(Clone, Debug, PartialEq)]
pub struct DagProjection {
    /// Thresholded, acyclic weights.
    pub w: Array2<f64>,
    /// Edges (i, j, w_ij) dropped to break cycles (not those under the threshold), strongest first.
    pub removed: Vec<(usize, usize, f64)>,
    /// A topological order of `w`: the acyclicity certificate (every edge goes forwards in it).
    pub order: Vec<usize>,
}

/// Thresholds |w| < `thr` to 0, then makes the graph acyclic greedily: edges are inserted
/// strongest first (by |w|, ties by (i, j)) and an edge is dropped when it would close a cycle
/// with the stronger edges already kept. Self-loops are always dropped. The kept graph is a
/// maximal acyclic subgraph: every removed edge would create a cycle with stronger kept edges.
pub fn to_dag(w: ArrayView2<f64>, thr: f64) -> DagProjection {
    let d = w.nrows();
    let mut edges: Vec<(usize, usize, f64)> = Vec::new();
    for i in 0..d {
        for j in 0..d {
            let v = w[[i, j]];
            if v != 0.0 && v.abs() >= thr && !v.is_nan() {
                edges.push((i, j, v));
            }
        }
    }
    edges.sort_by(|a, b| b.2.abs().total_cmp(&a.2.abs()).then((a.0, a.1).cmp(&(b.0, b.1))));
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); d];
    let mut kept = Array2::<f64>::zeros((d, d));
    let mut removed = Vec::new();
    for (i, j, v) in edges {
        if reaches(&children, j, i) {
            removed.push((i, j, v));
        } else {
            children[i].push(j);
            kept[[i, j]] = v;
        }
    }
    let order = topological_order(kept.view()).unwrap_or_default();
    DagProjection { w: kept, removed, order }
}

/// Whether `to` is reachable from `from` (a node reaches itself).
fn reaches(children: &[Vec<usize>], from: usize, to: usize) -> bool {
    let mut seen = vec![false; children.len()];
    let mut stack = vec![from];
    seen[from] = true;
    while let Some(node) = stack.pop() {
        if node == to {
            return true;
        }
        for &c in &children[node] {
            if !seen[c] {
                seen[c] = true;
                stack.push(c);
            }
        }
    }
    false
}

/// Structure-recovery metrics of an estimate against a true graph (NOTEARS `count_accuracy`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GraphMetrics {
    /// Extra skeleton edges + missing skeleton edges + reversed edges (a reversal counts 1).
    pub shd: usize,
    /// Estimated edges whose reverse is a true edge (and which are not true edges).
    pub reversed: usize,
    /// Estimated edges absent from the true skeleton.
    pub false_positives: usize,
    /// True edges whose skeleton pair is absent from the estimate.
    pub missing: usize,
    /// Correctly oriented true edges / true edges.
    pub tpr: f64,
    /// (reversed + false positives) / estimated edges.
    pub fdr: f64,
    /// Number of estimated edges.
    pub nnz: usize,
}

/// Compares the nonzero patterns of `estimate` and `truth` (both d×d; diagonals ignored).
pub fn graph_metrics(estimate: ArrayView2<f64>, truth: ArrayView2<f64>) -> GraphMetrics {
    let d = truth.nrows();
    let est = |i: usize, j: usize| i != j && estimate[[i, j]] != 0.0;
    let tru = |i: usize, j: usize| i != j && truth[[i, j]] != 0.0;
    let (mut nnz, mut true_edges, mut true_pos, mut reversed, mut false_positives) = (0, 0, 0, 0, 0);
    let (mut extra_skeleton, mut missing_skeleton) = (0, 0);
    for i in 0..d {
        for j in 0..d {
            if tru(i, j) {
                true_edges += 1;
            }
            if est(i, j) {
                nnz += 1;
                if tru(i, j) {
                    true_pos += 1;
                } else if tru(j, i) {
                    reversed += 1;
                } else {
                    false_positives += 1;
                }
            }
            if i < j {
                let in_est = est(i, j) || est(j, i);
                let in_true = tru(i, j) || tru(j, i);
                extra_skeleton += usize::from(in_est && !in_true);
                missing_skeleton += usize::from(in_true && !in_est);
            }
        }
    }
    GraphMetrics {
        shd: extra_skeleton + missing_skeleton + reversed,
        reversed,
        false_positives,
        missing: missing_skeleton,
        tpr: true_pos as f64 / true_edges.max(1) as f64,
        fdr: (reversed + false_positives) as f64 / nnz.max(1) as f64,
        nnz,
    }
}

/// DAGMA's log-det acyclicity h^s(W) = −log det(sI − W∘W) + d·log s and its gradient
/// 2·W∘(sI − W∘W)^{−T}, or `None` when W is outside the M-matrix domain (some entry of
/// (sI − W∘W)⁻¹ below −1e-16, as in the authors' check).
pub fn logdet_acyclicity(w: ArrayView2<f64>, s: f64) -> Option<(f64, Array2<f64>)> {
    let d = w.nrows();
    let m = Mat::<f64>::from_fn(d, d, |i, j| {
        let diag = if i == j { s } else { 0.0 };
        diag - w[[i, j]] * w[[i, j]]
    });
    let lu = m.partial_piv_lu();
    let inverse = lu.inverse();
    let mut log_det = 0.0;
    for k in 0..d {
        log_det += lu.U()[(k, k)].abs().ln();
    }
    let mut grad = Array2::<f64>::zeros((d, d));
    for i in 0..d {
        for j in 0..d {
            let v = inverse[(j, i)];
            if !(v >= -1e-16) {
                return None;
            }
            grad[[i, j]] = 2.0 * w[[i, j]] * v;
        }
    }
    let value = -log_det + d as f64 * s.ln();
    value.is_finite().then_some((value, grad))
}
