//! Seeded data simulators: random DAGs and linear SEMs (as in the NOTEARS/DAGMA/CoLiDE
//! simulators), and small example data sets (sparse regression, 2-D optimal transport,
//! piecewise-constant denoising). The PRNG is xoshiro256** seeded through splitmix64, so results
//! depend only on the seed.

use ndarray::{Array1, Array2};

/// xoshiro256** (Blackman & Vigna) with splitmix64 seeding.
#[derive(Clone, Debug)]
pub struct Rng {
    state: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            state: [next(), next(), next(), next()],
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in (0, 1), safe for logarithms.
    fn open_uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [low, high).
    pub fn uniform_range(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.uniform()
    }

    /// Uniform integer in [0, n) (n > 0), by rejection (unbiased).
    pub fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.next_u64();
            if v < zone {
                return (v % n) as usize;
            }
        }
    }

    /// Standard normal (Marsaglia polar method; the second variate is discarded).
    pub fn normal(&mut self) -> f64 {
        loop {
            let u = 2.0 * self.uniform() - 1.0;
            let v = 2.0 * self.uniform() - 1.0;
            let r = u * u + v * v;
            if r > 0.0 && r < 1.0 {
                return u * (-2.0 * r.ln() / r).sqrt();
            }
        }
    }

    /// Exponential with the given scale (mean).
    pub fn exponential(&mut self, scale: f64) -> f64 {
        -scale * self.open_uniform().ln()
    }

    /// Gumbel(0, scale).
    pub fn gumbel(&mut self, scale: f64) -> f64 {
        -scale * (-self.open_uniform().ln()).ln()
    }

    /// Laplace(0, scale).
    pub fn laplace(&mut self, scale: f64) -> f64 {
        let u = self.open_uniform() - 0.5;
        -scale * u.signum() * (1.0 - 2.0 * u.abs()).ln()
    }

    /// A uniformly random permutation of 0..n (Fisher–Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            p.swap(i, self.below(i + 1));
        }
        p
    }
}

/// Random graph model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphKind {
    /// Erdős–Rényi with edge probability 2·edges/(d² − d), oriented by a random order.
    ErdosRenyi,
    /// Barabási–Albert with m = round(edges/d) edges per new node.
    ScaleFree,
}

/// Additive noise distribution; `scale` is the standard deviation for `Gauss` and the scale
/// parameter of the others (as in the NOTEARS simulator).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoiseKind {
    Gauss,
    Exp,
    Gumbel,
    Laplace,
}

/// Noise scales: all 1, or per variable the square root of a draw from U[0.5, 10] (the variance
/// for gauss noise; the scale of the others, as NOTEARS' `simulate_linear_sem`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoiseVariance {
    Equal,
    Unequal,
}

/// A linear-SEM simulation setting.
#[derive(Clone, Copy, Debug)]
pub struct SemConfig {
    pub d: usize,
    /// Expected (ER) or approximate (SF) number of edges.
    pub edges: usize,
    pub n: usize,
    pub graph: GraphKind,
    pub noise: NoiseKind,
    pub variance: NoiseVariance,
    pub seed: u64,
}

/// A simulated linear SEM.
#[derive(Clone, Debug)]
pub struct Sem {
    /// Binary adjacency (B[i, j] = 1 for i → j).
    pub b: Array2<f64>,
    /// Weights, U(±[0.5, 2]) on the edges of `b`.
    pub w: Array2<f64>,
    /// Samples, n × d.
    pub x: Array2<f64>,
    /// Noise scale per variable.
    pub noise_scales: Array1<f64>,
}

/// A random DAG (binary adjacency) with a random topological order.
pub fn random_dag(d: usize, edges: usize, kind: GraphKind, rng: &mut Rng) -> Array2<f64> {
    let mut b = Array2::<f64>::zeros((d, d));
    if d < 2 {
        return b;
    }
    let order = rng.permutation(d);
    match kind {
        GraphKind::ErdosRenyi => {
            let p = (2.0 * edges as f64 / (d * d - d) as f64).min(1.0);
            for a in 0..d {
                for c in a + 1..d {
                    if rng.uniform() < p {
                        b[[order[a], order[c]]] = 1.0;
                    }
                }
            }
        }
        GraphKind::ScaleFree => {
            // Node t attaches to min(m, t) distinct earlier nodes chosen with probability
            // ∝ degree + 1; edges point from the new node to the old ones (igraph's directed
            // Barabási graph used by NOTEARS/DAGMA), then nodes are relabelled by `order`.
            let m = ((edges as f64 / d as f64).round() as usize).max(1);
            let mut degree = vec![0usize; d];
            for t in 1..d {
                let mut targets: Vec<usize> = Vec::new();
                while targets.len() < m.min(t) {
                    let total: usize = (0..t)
                        .filter(|v| !targets.contains(v))
                        .map(|v| degree[v] + 1)
                        .sum();
                    let mut pick = rng.below(total);
                    for v in (0..t).filter(|v| !targets.contains(v)) {
                        if pick < degree[v] + 1 {
                            targets.push(v);
                            break;
                        }
                        pick -= degree[v] + 1;
                    }
                }
                for &v in &targets {
                    degree[v] += 1;
                    degree[t] += 1;
                    b[[order[t], order[v]]] = 1.0;
                }
            }
        }
    }
    b
}

/// Weights U(±[0.5, 2]) on the edges of `b`.
pub fn random_weights(b: &Array2<f64>, rng: &mut Rng) -> Array2<f64> {
    b.mapv(|e| {
        if e == 0.0 {
            0.0
        } else {
            let magnitude = rng.uniform_range(0.5, 2.0);
            if rng.uniform() < 0.5 {
                -magnitude
            } else {
                magnitude
            }
        }
    })
}

fn draw_noise(kind: NoiseKind, scale: f64, rng: &mut Rng) -> f64 {
    match kind {
        NoiseKind::Gauss => scale * rng.normal(),
        NoiseKind::Exp => rng.exponential(scale),
        NoiseKind::Gumbel => rng.gumbel(scale),
        NoiseKind::Laplace => rng.laplace(scale),
    }
}

/// Samples X = E(I − W)⁻¹ row by row, variables in topological order. Returns `None` if `w` is
/// cyclic or `noise_scales` has the wrong length.
pub fn sample_linear_sem(
    w: &Array2<f64>,
    n: usize,
    noise: NoiseKind,
    noise_scales: &Array1<f64>,
    rng: &mut Rng,
) -> Option<Array2<f64>> {
    let d = w.nrows();
    if noise_scales.len() != d {
        return None;
    }
    let order = crate::dag::topological_order(w.view())?;
    let mut x = Array2::<f64>::zeros((n, d));
    for &j in &order {
        for r in 0..n {
            let parents: f64 = (0..d)
                .filter(|&i| w[[i, j]] != 0.0)
                .map(|i| x[[r, i]] * w[[i, j]])
                .sum();
            x[[r, j]] = parents + draw_noise(noise, noise_scales[j], rng);
        }
    }
    Some(x)
}

/// Simulates a random DAG, its weights and n samples of the linear SEM.
pub fn simulate_linear_sem(config: &SemConfig) -> Sem {
    let mut rng = Rng::new(config.seed);
    let b = random_dag(config.d, config.edges, config.graph, &mut rng);
    let w = random_weights(&b, &mut rng);
    let noise_scales = Array1::from_shape_fn(config.d, |_| match config.variance {
        NoiseVariance::Equal => 1.0,
        NoiseVariance::Unequal => rng.uniform_range(0.5, 10.0).sqrt(),
    });
    let x = sample_linear_sem(&w, config.n, config.noise, &noise_scales, &mut rng)
        .unwrap_or_else(|| Array2::zeros((config.n, config.d)));
    Sem {
        b,
        w,
        x,
        noise_scales,
    }
}

/// Sparse linear regression data: X (n × p, standard normal), β with `k_nonzero` entries
/// U(±[0.5, 2]) at random positions, y = Xβ + noise·N(0, 1). Returns (X, y, β).
pub fn regression(
    n: usize,
    p: usize,
    k_nonzero: usize,
    noise: f64,
    seed: u64,
) -> (Array2<f64>, Array1<f64>, Array1<f64>) {
    let mut rng = Rng::new(seed);
    let x = Array2::from_shape_fn((n, p), |_| rng.normal());
    let mut beta = Array1::<f64>::zeros(p);
    for &i in rng.permutation(p).iter().take(k_nonzero) {
        let magnitude = rng.uniform_range(0.5, 2.0);
        beta[i] = if rng.uniform() < 0.5 {
            -magnitude
        } else {
            magnitude
        };
    }
    let y = x.dot(&beta) + Array1::from_shape_fn(n, |_| noise * rng.normal());
    (x, y, beta)
}

/// Optimal-transport example (methods.md §2): m source points N(0, I₂), n target points
/// N((1, 1), I₂), uniform marginals a = 1/m, b = 1/n and squared-Euclidean cost divided by its
/// maximum. Returns (a, b, C) with C m × n.
pub fn ot(m: usize, n: usize, seed: u64) -> (Array1<f64>, Array1<f64>, Array2<f64>) {
    let mut rng = Rng::new(seed);
    let source = Array2::from_shape_fn((m, 2), |_| rng.normal());
    let target = Array2::from_shape_fn((n, 2), |_| rng.normal() + 1.0);
    let mut cost = Array2::from_shape_fn((m, n), |(i, j)| {
        (0..2)
            .map(|k| (source[[i, k]] - target[[j, k]]).powi(2))
            .sum::<f64>()
    });
    let max = cost.fold(0.0f64, |a, &v| a.max(v));
    if max > 0.0 {
        cost /= max;
    }
    (
        Array1::from_elem(m, 1.0 / m as f64),
        Array1::from_elem(n, 1.0 / n as f64),
        cost,
    )
}

/// Denoising example: a piecewise-constant signal of length `len` with 5 segments (random cut
/// points, levels U[−1, 1]) plus N(0, 0.1²) noise. Returns (noisy y, clean x).
pub fn denoise(len: usize, seed: u64) -> (Array1<f64>, Array1<f64>) {
    let mut rng = Rng::new(seed);
    let segments = 5.min(len.max(1));
    let mut cuts: Vec<usize> = rng
        .permutation(len.saturating_sub(1))
        .into_iter()
        .take(segments - 1)
        .map(|c| c + 1)
        .collect();
    cuts.sort_unstable();
    let levels: Vec<f64> = (0..segments)
        .map(|_| rng.uniform_range(-1.0, 1.0))
        .collect();
    let clean = Array1::from_shape_fn(len, |i| levels[cuts.iter().filter(|&&c| c <= i).count()]);
    let noisy = clean.mapv(|v| v + 0.1 * rng.normal());
    (noisy, clean)
}

/// Isotonic-regression example: `len` noisy samples of an increasing curve, yᵢ = f(tᵢ) + εᵢ with
/// f(t) = 4 / (1 + e^(−10(t − 1/2))) at tᵢ = i/(len − 1) and εᵢ ~ N(0, 0.5²). Returns (y, f(t)).
pub fn isotonic(len: usize, seed: u64) -> (Array1<f64>, Array1<f64>) {
    let mut rng = Rng::new(seed);
    let step = 1.0 / (len.max(2) - 1) as f64;
    let curve = Array1::from_shape_fn(len, |i| {
        4.0 / (1.0 + (-10.0 * (i as f64 * step - 0.5)).exp())
    });
    let noisy = curve.mapv(|v| v + 0.5 * rng.normal());
    (noisy, curve)
}

/// Portfolio example: `periods` returns of `assets` assets from a one-factor model,
/// rₜᵢ = μᵢ + βᵢ fₜ + εₜᵢ with μᵢ ~ U[0.02, 0.12], βᵢ ~ U[0.5, 1.5], a market factor
/// fₜ ~ N(0, 0.15²) and idiosyncratic εₜᵢ ~ N(0, σᵢ²), σᵢ ~ U[0.05, 0.25] (annual scale).
/// Returns R, `periods` × `assets`.
pub fn portfolio(periods: usize, assets: usize, seed: u64) -> Array2<f64> {
    let mut rng = Rng::new(seed);
    let mean: Vec<f64> = (0..assets).map(|_| rng.uniform_range(0.02, 0.12)).collect();
    let beta: Vec<f64> = (0..assets).map(|_| rng.uniform_range(0.5, 1.5)).collect();
    let sigma: Vec<f64> = (0..assets).map(|_| rng.uniform_range(0.05, 0.25)).collect();
    let mut returns = Array2::zeros((periods, assets));
    for mut row in returns.rows_mut() {
        let market = 0.15 * rng.normal();
        for (i, r) in row.iter_mut().enumerate() {
            *r = mean[i] + beta[i] * market + sigma[i] * rng.normal();
        }
    }
    returns
}

/// Gaussian graphical model: a sparse precision matrix Θ (p × p) on an Erdős–Rényi graph with
/// about `edges` edges — off-diagonal entries U(±[0.4, 0.8]) on the edges, each diagonal entry
/// the sum of its row's magnitudes plus 0.5, so Θ is strictly diagonally dominant, hence positive
/// definite —, n samples x ~ N(0, Θ⁻¹) (x = L⁻ᵀz for Θ = LLᵀ and z ~ N(0, I)) and their second
/// moment S = XᵀX / n (the covariance estimate for a known zero mean). Returns (X, S, Θ).
pub fn ggm(n: usize, p: usize, edges: usize, seed: u64) -> (Array2<f64>, Array2<f64>, Array2<f64>) {
    let mut rng = Rng::new(seed);
    let mut theta = Array2::<f64>::zeros((p, p));
    let chance = if p < 2 {
        0.0
    } else {
        (2.0 * edges as f64 / (p * p - p) as f64).min(1.0)
    };
    for i in 0..p {
        for j in i + 1..p {
            if rng.uniform() < chance {
                let magnitude = rng.uniform_range(0.4, 0.8);
                let w = if rng.uniform() < 0.5 {
                    -magnitude
                } else {
                    magnitude
                };
                theta[[i, j]] = w;
                theta[[j, i]] = w;
            }
        }
    }
    for i in 0..p {
        theta[[i, i]] = theta.row(i).iter().map(|v| v.abs()).sum::<f64>() + 0.5;
    }
    let lower = cholesky(&theta);
    let mut x = Array2::<f64>::zeros((n, p));
    for mut row in x.rows_mut() {
        // Lᵀx = z by back substitution.
        let z: Vec<f64> = (0..p).map(|_| rng.normal()).collect();
        for i in (0..p).rev() {
            let later: f64 = (i + 1..p).map(|k| lower[[k, i]] * row[k]).sum();
            row[i] = (z[i] - later) / lower[[i, i]];
        }
    }
    let s = x.t().dot(&x) / n.max(1) as f64;
    (x, s, theta)
}

/// The lower-triangular L with A = LLᵀ of a symmetric positive definite A.
fn cholesky(a: &Array2<f64>) -> Array2<f64> {
    let p = a.nrows();
    let mut l = Array2::<f64>::zeros((p, p));
    for j in 0..p {
        let diagonal = a[[j, j]] - (0..j).map(|k| l[[j, k]] * l[[j, k]]).sum::<f64>();
        l[[j, j]] = diagonal.sqrt();
        for i in j + 1..p {
            let s = a[[i, j]] - (0..j).map(|k| l[[i, k]] * l[[j, k]]).sum::<f64>();
            l[[i, j]] = s / l[[j, j]];
        }
    }
    l
}
