//! Proximal operators and projections (in place on slices or ndarray matrices).

use faer::Mat;
use ndarray::{Array2, Axis};

/// prox of t‖·‖₁: x_i ← sign(x_i)·max(|x_i| − t, 0).
pub fn soft_threshold(x: &mut [f64], t: f64) {
    for v in x.iter_mut() {
        *v = shrink(*v, t);
    }
}

/// sign(v)·max(|v| − t, 0), with +0 (not −0) where the magnitude is within t.
pub fn shrink(v: f64, t: f64) -> f64 {
    if v.abs() > t {
        v - t.copysign(v)
    } else {
        0.0
    }
}

/// prox of t‖·‖₂ on one group (block soft-thresholding): x ← max(1 − t/‖x‖, 0)·x.
pub fn group_shrink<'a>(x: impl IntoIterator<Item = &'a mut f64>, t: f64) {
    let mut entries: Vec<&mut f64> = x.into_iter().collect();
    let norm = entries.iter().map(|v| **v * **v).sum::<f64>().sqrt();
    let factor = if norm > t { 1.0 - t / norm } else { 0.0 };
    entries.iter_mut().for_each(|v| **v *= factor);
}

/// Group shrinkage with each row of `m` as a group (prox of t·Σ_i ‖m_i·‖₂).
pub fn group_shrink_rows(m: &mut Array2<f64>, t: f64) {
    m.axis_iter_mut(Axis(0))
        .for_each(|mut row| group_shrink(row.iter_mut(), t));
}

/// Group shrinkage with each column of `m` as a group (prox of t·Σ_j ‖m_·j‖₂).
pub fn group_shrink_cols(m: &mut Array2<f64>, t: f64) {
    m.axis_iter_mut(Axis(1))
        .for_each(|mut col| group_shrink(col.iter_mut(), t));
}

/// prox of t·TV with TV(x) = Σ|x_{i+1} − x_i| (1-D total variation denoising), exactly and in
/// linear time in most cases (Condat's direct algorithm): a scan that keeps, for the segment
/// being built from `start`, the lowest and highest values it may take and the running sums
/// of the dual (`low_slack`, `high_slack`); a slack leaving [−t, t] ends the segment at that
/// bound's last update, and at the end the pending segment is levelled or split. No allocation:
/// it runs once per proximal step.
pub fn total_variation(x: &mut [f64], t: f64) {
    let n = x.len();
    if n < 2 || !(t > 0.0) {
        return;
    }
    // x[from..=to] (one entry at least) ← value; returns the next start.
    let fill = |x: &mut [f64], from: usize, to: usize, value: f64| {
        let to = to.max(from);
        x[from..=to].fill(value);
        to + 1
    };
    // In place: the scan reads x at `start` and beyond, and fills only below `start`.
    let (mut start, mut k, mut k_low, mut k_high) = (0, 0, 0, 0);
    let (mut low, mut high) = (x[0] - t, x[0] + t);
    let (mut low_slack, mut high_slack) = (t, -t);
    loop {
        if k == n - 1 {
            if low_slack < 0.0 {
                start = fill(x, start, k_low, low);
                (k, k_low, k_high) = (start, start, start);
                low = x[k];
                low_slack = t;
                high_slack = low + t - high;
            } else if high_slack > 0.0 {
                start = fill(x, start, k_high, high);
                (k, k_low, k_high) = (start, start, start);
                high = x[k];
                high_slack = -t;
                low_slack = high - t - low;
            } else {
                let level = low + low_slack / (k - start + 1) as f64;
                fill(x, start, k, level);
                return;
            }
            continue;
        }
        low_slack += x[k + 1] - low;
        high_slack += x[k + 1] - high;
        if low_slack < -t {
            // A jump down after the segment: it ends at its low value's last update.
            start = fill(x, start, k_low, low);
            (k, k_low, k_high) = (start, start, start);
            low = x[k];
            high = low + 2.0 * t;
            (low_slack, high_slack) = (t, -t);
        } else if high_slack > t {
            start = fill(x, start, k_high, high);
            (k, k_low, k_high) = (start, start, start);
            high = x[k];
            low = high - 2.0 * t;
            (low_slack, high_slack) = (t, -t);
        } else {
            k += 1;
            let len = (k - start + 1) as f64;
            if low_slack >= t {
                low += (low_slack - t) / len;
                low_slack = t;
                k_low = k;
            }
            if high_slack <= -t {
                high += (high_slack + t) / len;
                high_slack = -t;
                k_high = k;
            }
        }
    }
}

/// The 1-D total variation Σ|x_{i+1} − x_i|.
pub fn total_variation_of(x: &[f64]) -> f64 {
    x.windows(2).map(|w| (w[1] - w[0]).abs()).sum()
}

/// Error from a matrix decomposition used by a prox.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxError(pub String);

impl std::fmt::Display for ProxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProxError {}

/// Singular value thresholding, the prox of t‖·‖_*: U·diag(max(σ_i − t, 0))·Vᵀ.
pub fn singular_value_threshold(y: &Array2<f64>, t: f64) -> Result<Array2<f64>, ProxError> {
    let (rows, cols) = y.dim();
    let a = Mat::<f64>::from_fn(rows, cols, |i, j| y[[i, j]]);
    let svd = a
        .thin_svd()
        .map_err(|e| ProxError(format!("SVD did not converge: {e:?}")))?;
    let (u, v) = (svd.U(), svd.V());
    let sigma = svd.S().column_vector();
    let mut out = Array2::<f64>::zeros((rows, cols));
    for k in 0..sigma.nrows() {
        let shrunk = sigma[k] - t;
        if shrunk <= 0.0 {
            continue;
        }
        for i in 0..rows {
            let ui = shrunk * u[(i, k)];
            for j in 0..cols {
                out[[i, j]] += ui * v[(j, k)];
            }
        }
    }
    Ok(out)
}

/// Projection onto x ≥ 0.
pub fn project_nonneg(x: &mut [f64]) {
    x.iter_mut().for_each(|v| *v = v.max(0.0));
}

/// Euclidean projection onto the simplex {x ≥ 0, Σx = radius} (sort-based, Held et al. /
/// Duchi et al. 2008). `radius` must be positive.
pub fn project_simplex(x: &mut [f64], radius: f64) {
    if x.is_empty() {
        return;
    }
    let mut sorted = x.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let mut cumulative = 0.0;
    let mut theta = 0.0;
    for (k, v) in sorted.iter().enumerate() {
        cumulative += v;
        let candidate = (cumulative - radius) / (k + 1) as f64;
        if v - candidate > 0.0 {
            theta = candidate;
        }
    }
    x.iter_mut().for_each(|v| *v = (*v - theta).max(0.0));
}

/// Euclidean projection onto the L1 ball {‖x‖₁ ≤ radius} (radius ≥ 0): unchanged inside,
/// else the magnitudes projected onto the simplex of that radius, signs kept (Duchi et al.
/// 2008) — soft-thresholding at the level that makes ‖x‖₁ = radius.
pub fn project_l1_ball(x: &mut [f64], radius: f64) {
    if x.iter().map(|v| v.abs()).sum::<f64>() <= radius {
        return;
    }
    if radius <= 0.0 {
        x.fill(0.0);
        return;
    }
    let mut magnitudes: Vec<f64> = x.iter().map(|v| v.abs()).collect();
    project_simplex(&mut magnitudes, radius);
    for (v, m) in x.iter_mut().zip(magnitudes) {
        *v = if m > 0.0 { m.copysign(*v) } else { 0.0 };
    }
}

/// Euclidean projection onto the L2 ball {‖x‖₂ ≤ radius} (radius ≥ 0): scaling onto its sphere
/// from outside.
pub fn project_l2_ball(x: &mut [f64], radius: f64) {
    let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
    if norm > radius {
        let scale = radius / norm;
        x.iter_mut().for_each(|v| *v *= scale);
    }
}

/// The multiplier μ ≥ 0 of the ball {φ(x) ≤ bound} at its point `x`, where the rest of the
/// problem has the (reduced) gradient `g`, with φ the L1 norm, the L2 norm, or with `squared`
/// its square (`sumsq`). Stationarity is 0 ∈ g + μ∂φ(x) + (the normal cone of the bounds
/// `within`, if any: 0 at entries strictly inside them, and orthogonal to x for `>= 0`); its
/// inner product with x over the entries F off the bounds gives
/// μ = −Σ_F gᵢxᵢ / Σ_F xᵢ∂ᵢφ(x) on the boundary, and μ = 0 inside (with F every entry, the
/// denominator is q φ(x), φ being positively homogeneous of degree q). At x = 0 (a radius of 0)
/// μ is the dual norm of g, the least that makes 0 stationary; `sumsq` has none there (its
/// gradient vanishes).
pub fn ball_multiplier(
    l1: bool,
    squared: bool,
    bound: f64,
    within: Option<(f64, f64)>,
    x: &[f64],
    g: &[f64],
) -> Option<f64> {
    let norm = |v: &[f64]| match l1 {
        true => v.iter().map(|e| e.abs()).sum::<f64>(),
        false => v.iter().map(|e| e * e).sum::<f64>().sqrt(),
    };
    let (phi, degree) = match squared {
        true => (norm(x).powi(2), 2.0),
        false => (norm(x), 1.0),
    };
    if phi < bound - 1e-9 * bound.max(1.0) {
        return Some(0.0);
    }
    if phi > 0.0 {
        let off_bounds = |v: f64| within.is_none_or(|(lo, hi)| v != lo && v != hi);
        let (mut along, mut weight) = (0.0, 0.0);
        for (&xi, &gi) in x.iter().zip(g).filter(|(xi, _)| off_bounds(**xi)) {
            along += gi * xi;
            // xᵢ∂ᵢφ: |xᵢ| for L1, xᵢ²/‖x‖ for L2, 2xᵢ² for `sumsq`.
            weight += match (l1, squared) {
                (true, false) => xi.abs(),
                (false, false) => xi * xi / phi,
                (_, true) => degree * xi * xi,
            };
        }
        if weight == 0.0 {
            // Every entry at a bound: the bounds hold the ball, whose multiplier is not decided.
            return None;
        }
        return Some((-along / weight).max(0.0));
    }
    match (l1, squared) {
        (_, true) => None,
        (true, false) => Some(g.iter().map(|e| e.abs()).fold(0.0, f64::max)),
        (false, false) => Some(norm(g)),
    }
}

/// Indices of the k largest entries by `key` (ties broken by the lower index).
fn top_k_indices(x: &[f64], k: usize, key: impl Fn(f64) -> f64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    let descending = |&a: &usize, &b: &usize| key(x[b]).total_cmp(&key(x[a])).then(a.cmp(&b));
    // Select the k first in O(len), then sort only those.
    if k < order.len() {
        order.select_nth_unstable_by(k, descending);
        order.truncate(k);
    }
    order.sort_by(descending);
    order
}

/// Projection onto the k-sparse simplex {x ≥ 0, Σx = radius, ‖x‖₀ ≤ k} (Kyrillidis et al. 2013):
/// keep the k largest entries, project them onto the simplex, zero the rest.
pub fn project_sparse_simplex(x: &mut [f64], k: usize, radius: f64) {
    let keep = top_k_indices(x, k.max(1), |v| v);
    let mut kept: Vec<f64> = keep.iter().map(|&i| x[i]).collect();
    project_simplex(&mut kept, radius);
    x.iter_mut().for_each(|v| *v = 0.0);
    keep.iter().zip(kept).for_each(|(&i, v)| x[i] = v);
}

/// Projection onto the nonnegative k-sparse vectors {x ≥ 0, ‖x‖₀ ≤ k}: the k largest entries'
/// positive parts, zero elsewhere.
pub fn project_nonneg_sparse(x: &mut [f64], k: usize) {
    if k < x.len() {
        zero_all_but(x, &top_k_indices(x, k, |v| v));
    }
    project_nonneg(x);
}

/// Sets every entry of `x` outside `keep` to 0.
fn zero_all_but(x: &mut [f64], keep: &[usize]) {
    let mut mask = vec![false; x.len()];
    keep.iter().for_each(|&i| mask[i] = true);
    x.iter_mut()
        .zip(mask)
        .filter(|(_, m)| !m)
        .for_each(|(v, _)| *v = 0.0);
}

/// A set that proximal methods project each line of a variable onto, after soft-thresholding
/// and clamping to the bounds (which hold the elementwise sets).
#[derive(Clone, Debug, PartialEq)]
pub enum Set {
    /// {x ≥ 0, Σx = 1}.
    Simplex,
    /// At most k nonzeros: the k entries of largest gain are kept, the gain of an entry being
    /// what its prox value saves over 0 (its magnitude's half square without L1 weights and
    /// bounds), which makes the step the exact prox of the model's terms and bounds with the
    /// constraint.
    Card(usize),
    /// The simplex with at most k ≥ 1 nonzeros ([`project_sparse_simplex`]).
    SparseSimplex(usize),
    /// {‖x‖₁ ≤ radius} ([`project_l1_ball`]). After soft-thresholding by t and clamping to
    /// `x >= 0` bounds this is the exact prox: the composition soft-thresholds at t + θ. With
    /// bounds `within` = (lo, hi) equal for every entry, the prox is clamp(soft(s, θ)) from the
    /// soft-thresholded point s before clamping ([`project_l1_ball_within`]).
    L1Ball(f64, Option<(f64, f64)>),
    /// {‖x‖₂ ≤ radius} ([`project_l2_ball`]); exact after soft-thresholding and `x >= 0`
    /// bounds as well (the KKT point is the thresholded point scaled); with bounds `within`,
    /// clamp(s / (1 + μ)) ([`project_l2_ball_within`]).
    L2Ball(f64, Option<(f64, f64)>),
}

impl Set {
    /// The bound k of a cardinality constraint.
    pub fn card_bound(&self) -> Option<usize> {
        match *self {
            Set::Card(k) | Set::SparseSimplex(k) => Some(k),
            Set::Simplex | Set::L1Ball(..) | Set::L2Ball(..) => None,
        }
    }

    /// The set with its cardinality bound replaced by `k`.
    pub fn with_card_bound(&self, k: usize) -> Set {
        match self {
            Set::Card(_) => Set::Card(k),
            Set::SparseSimplex(_) => Set::SparseSimplex(k),
            other => other.clone(),
        }
    }

    /// What [`Set::project`] reads in its `keys` besides the point: each entry's gain for a
    /// `card`, the soft-thresholded point before clamping for a ball within bounds.
    pub fn key(&self) -> Key {
        match self {
            Set::Card(_) | Set::SparseSimplex(_) => Key::Gain,
            Set::L1Ball(_, Some(_)) | Set::L2Ball(_, Some(_)) => Key::Unclamped,
            Set::Simplex | Set::L1Ball(_, None) | Set::L2Ball(_, None) => Key::None,
        }
    }

    /// Projects `x` onto the set in place, `keys` holding what [`Set::key`] names.
    pub fn project(&self, x: &mut [f64], keys: &[f64]) {
        match *self {
            Set::Simplex => project_simplex(x, 1.0),
            Set::Card(k) if k < x.len() => zero_all_but(x, &top_k_indices(keys, k, |g| g)),
            Set::Card(_) => {}
            Set::SparseSimplex(k) => project_sparse_simplex(x, k, 1.0),
            Set::L1Ball(radius, None) => project_l1_ball(x, radius),
            Set::L2Ball(radius, None) => project_l2_ball(x, radius),
            Set::L1Ball(radius, Some(bounds)) => project_l1_ball_within(x, keys, radius, bounds),
            Set::L2Ball(radius, Some(bounds)) => project_l2_ball_within(x, keys, radius, bounds),
        }
    }
}

/// What a [`Set`]'s projection reads besides the point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    None,
    /// What each entry's prox value saves over 0 (a `card` keeps the largest).
    Gain,
    /// The soft-thresholded point before clamping to the bounds.
    Unclamped,
}

/// The largest θ of [0, hi] where `excess(θ) > 0` turns ≤ 0 (`excess` nonincreasing), by
/// bisection to the resolution of f64.
fn root_of_decreasing(mut excess: impl FnMut(f64) -> f64, hi: f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, hi);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if excess(mid) > 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// The prox of the L1 ball {‖x‖₁ ≤ radius} with bounds lo ≤ x ≤ hi equal for every entry, from
/// the soft-thresholded point `s` (before clamping; `x` is clamp(s)): x = clamp(soft(s, θ))
/// with the least θ ≥ 0 that brings ‖x‖₁ within the radius (entrywise the prox of
/// (t + θ)|x| within the bounds; ‖x‖₁ falls as θ grows).
pub fn project_l1_ball_within(x: &mut [f64], s: &[f64], radius: f64, (lo, hi): (f64, f64)) {
    let at = |theta: f64, i: usize| shrink(s[i], theta).clamp(lo, hi);
    let norm = |theta: f64| (0..s.len()).map(|i| at(theta, i).abs()).sum::<f64>();
    if norm(0.0) <= radius {
        return;
    }
    let top = s.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let theta = root_of_decreasing(|t| norm(t) - radius, top);
    (0..x.len()).for_each(|i| x[i] = at(theta, i));
}

/// The prox of the L2 ball {‖x‖₂ ≤ radius} with bounds lo ≤ x ≤ hi equal for every entry, from
/// the soft-thresholded point `s` (before clamping): x = clamp(s / (1 + μ)) with the least
/// μ ≥ 0 that brings ‖x‖₂ within the radius.
pub fn project_l2_ball_within(x: &mut [f64], s: &[f64], radius: f64, (lo, hi): (f64, f64)) {
    let at = |mu: f64, i: usize| (s[i] / (1.0 + mu)).clamp(lo, hi);
    let norm = |mu: f64| (0..s.len()).map(|i| at(mu, i).powi(2)).sum::<f64>().sqrt();
    if norm(0.0) <= radius {
        return;
    }
    // At μ = ‖s‖/radius every |s/(1 + μ)| ≤ radius in norm: the root lies below.
    let top = s.iter().map(|v| v * v).sum::<f64>().sqrt() / radius.max(f64::MIN_POSITIVE);
    let mu = root_of_decreasing(|m| norm(m) - radius, top);
    (0..x.len()).for_each(|i| x[i] = at(mu, i));
}

/// An `n × n` variable's slot of the flat vector (at `offset`) constrained to be symmetric
/// (`X in symmetric`). Its projection, (V + Vᵀ)/2, comes first in a prox: for a symmetric X,
/// ½‖X − V‖² = ½‖X − (V + Vᵀ)/2‖² + const, and soft-thresholding, clamping and norm-ball
/// projections keep a symmetric point symmetric when their weights and bounds are symmetric, so
/// the composition is the exact prox.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SymmetricSlot {
    pub offset: usize,
    pub n: usize,
}

impl SymmetricSlot {
    /// The flat indices of the entries (i, j) and (j, i) for i < j.
    fn pairs(&self) -> impl Iterator<Item = (usize, usize)> {
        let (offset, n) = (self.offset, self.n);
        (0..n).flat_map(move |i| (i + 1..n).map(move |j| (offset + i * n + j, offset + j * n + i)))
    }

    /// Replaces the slot of `x` by its symmetric part.
    pub fn symmetrize(&self, x: &mut [f64]) {
        for (a, b) in self.pairs() {
            let mean = 0.5 * (x[a] + x[b]);
            (x[a], x[b]) = (mean, mean);
        }
    }

    /// Whether `w` (indexed as the flat vector) is symmetric on the slot.
    pub fn is_symmetric(&self, w: &[f64]) -> bool {
        self.pairs().all(|(a, b)| w[a] == w[b])
    }
}

/// A projection of a variable's slot of the flat vector (`offset`, row-major `shape`) onto `set`:
/// the whole slot, or each of its lines along `lines` (1: the columns of a matrix, 0: its rows).
/// With a `support` (entries of the slot, for a whole slot), onto the points of the set that
/// are 0 off the support: the support's entries are projected onto the set, the others set to 0.
#[derive(Clone, Debug, PartialEq)]
pub struct SlotProjection {
    pub set: Set,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub lines: Option<u32>,
    pub support: Option<Vec<usize>>,
}

impl SlotProjection {
    /// The length of each line projected onto the set.
    pub fn line_len(&self) -> usize {
        match (self.lines, self.shape.as_slice()) {
            (Some(0), &[_, cols]) => cols,
            (Some(1), &[rows, _]) => rows,
            _ => self.shape.iter().product(),
        }
    }

    /// The entries of `x` (indices into the flat vector) of each line projected onto the set:
    /// one line for a whole slot.
    pub fn lines(&self) -> Vec<Vec<usize>> {
        let offset = self.offset;
        match (self.lines, self.shape.as_slice()) {
            (Some(0), &[rows, cols]) => (0..rows)
                .map(|i| (0..cols).map(|j| offset + i * cols + j).collect())
                .collect(),
            (Some(1), &[rows, cols]) => (0..cols)
                .map(|j| (0..rows).map(|i| offset + i * cols + j).collect())
                .collect(),
            _ => vec![(offset..offset + self.shape.iter().product::<usize>()).collect()],
        }
    }

    /// Projects the slot of `x` in place; `gain` holds each entry's key (see [`Set::key`]),
    /// indexed as `x`.
    pub fn apply(&self, x: &mut [f64], gain: &[f64]) {
        let range = self.offset..self.offset + self.shape.iter().product::<usize>();
        let (slot, gain) = (&mut x[range.clone()], &gain[range]);
        match (self.lines, self.shape.as_slice()) {
            (Some(0), &[_, cols]) if cols > 0 => slot
                .chunks_exact_mut(cols)
                .zip(gain.chunks_exact(cols))
                .for_each(|(row, g)| self.set.project(row, g)),
            (Some(1), &[rows, cols]) => {
                let (mut column, mut column_gain) = (vec![0.0; rows], vec![0.0; rows]);
                for j in 0..cols {
                    for i in 0..rows {
                        column[i] = slot[i * cols + j];
                        column_gain[i] = gain[i * cols + j];
                    }
                    self.set.project(&mut column, &column_gain);
                    for (i, v) in column.iter().enumerate() {
                        slot[i * cols + j] = *v;
                    }
                }
            }
            _ => match &self.support {
                None => self.set.project(slot, gain),
                Some(support) => {
                    let mut kept: Vec<f64> = support.iter().map(|&i| slot[i]).collect();
                    let kept_gain: Vec<f64> = support.iter().map(|&i| gain[i]).collect();
                    self.set.project(&mut kept, &kept_gain);
                    slot.fill(0.0);
                    for (&i, v) in support.iter().zip(kept) {
                        slot[i] = v;
                    }
                }
            },
        }
    }
}
