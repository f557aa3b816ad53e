//! Seeded simulator: distributions, graph sizes, acyclicity, reproducibility.

use ndarray::{array, Array1};
use optc_runtime::dag::is_dag;
use optc_runtime::simulate::*;

fn config(graph: GraphKind, seed: u64) -> SemConfig {
    SemConfig {
        d: 20,
        edges: 40,
        n: 50,
        graph,
        noise: NoiseKind::Gauss,
        variance: NoiseVariance::Equal,
        seed,
    }
}

fn mean_var(samples: &[f64]) -> (f64, f64) {
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    (
        mean,
        samples.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n,
    )
}

#[test]
fn distributions_have_expected_moments() {
    let mut rng = Rng::new(7);
    let n = 40_000;
    let draw = |f: &mut dyn FnMut() -> f64| (0..n).map(|_| f()).collect::<Vec<_>>();
    let (m, v) = mean_var(&draw(&mut || rng.uniform()));
    assert!((m - 0.5).abs() < 0.01 && (v - 1.0 / 12.0).abs() < 0.01);
    let (m, v) = mean_var(&draw(&mut || rng.normal()));
    assert!(m.abs() < 0.02 && (v - 1.0).abs() < 0.03, "normal {m} {v}");
    let (m, v) = mean_var(&draw(&mut || rng.exponential(2.0)));
    assert!(
        (m - 2.0).abs() < 0.05 && (v - 4.0).abs() < 0.25,
        "exp {m} {v}"
    );
    let (m, v) = mean_var(&draw(&mut || rng.laplace(1.0)));
    assert!(m.abs() < 0.03 && (v - 2.0).abs() < 0.1, "laplace {m} {v}");
    // Gumbel(0, 1): mean = Euler–Mascheroni γ, variance π²/6.
    let (m, v) = mean_var(&draw(&mut || rng.gumbel(1.0)));
    assert!(
        (m - 0.5772).abs() < 0.03 && (v - 1.6449).abs() < 0.08,
        "gumbel {m} {v}"
    );
    let below: Vec<usize> = (0..1000).map(|_| rng.below(3)).collect();
    assert!(below.iter().all(|&v| v < 3) && (0..3).all(|k| below.contains(&k)));
}

#[test]
fn same_seed_reproduces_and_other_seeds_differ() {
    let a = simulate_linear_sem(&config(GraphKind::ErdosRenyi, 11));
    let b = simulate_linear_sem(&config(GraphKind::ErdosRenyi, 11));
    let c = simulate_linear_sem(&config(GraphKind::ErdosRenyi, 12));
    assert_eq!((&a.b, &a.w, &a.x), (&b.b, &b.w, &b.x));
    assert_ne!(a.x, c.x);
}

#[test]
fn generated_graphs_are_acyclic_with_valid_weights() {
    for seed in 0..20 {
        for graph in [GraphKind::ErdosRenyi, GraphKind::ScaleFree] {
            let sem = simulate_linear_sem(&config(graph, seed));
            assert!(is_dag(sem.b.view()), "{graph:?} seed {seed}");
            for (b, w) in sem.b.iter().zip(&sem.w) {
                assert!(if *b == 0.0 {
                    *w == 0.0
                } else {
                    (0.5..2.0).contains(&w.abs())
                });
            }
        }
    }
}

#[test]
fn edge_counts_match_the_models() {
    // ER: E[edges] = p·d(d−1)/2 = 40; the mean over 200 graphs has standard error ≈ 0.4.
    let total: f64 = (0..200)
        .map(|seed| random_dag(20, 40, GraphKind::ErdosRenyi, &mut Rng::new(seed)).sum())
        .sum();
    assert!(
        (total / 200.0 - 40.0).abs() < 1.5,
        "mean ER edges {}",
        total / 200.0
    );
    // SF with m = round(40/20) = 2: node t adds min(2, t) edges → 1 + 2·18 = 37.
    let sf = random_dag(20, 40, GraphKind::ScaleFree, &mut Rng::new(3));
    assert_eq!(sf.sum(), 37.0);
}

#[test]
fn linear_sem_has_the_implied_covariance() {
    // X₀ = e₀, X₁ = 1.5·X₀ + e₁ ⇒ Var X₁ = 1.5² + 1 = 3.25, Cov = 1.5.
    let w = array![[0.0, 1.5], [0.0, 0.0]];
    let x = sample_linear_sem(
        &w,
        40_000,
        NoiseKind::Gauss,
        &Array1::from_elem(2, 1.0),
        &mut Rng::new(5),
    )
    .unwrap();
    let n = x.nrows() as f64;
    let cov = x.t().dot(&x) / n;
    assert!((cov[[0, 0]] - 1.0).abs() < 0.03 && (cov[[1, 1]] - 3.25).abs() < 0.1);
    assert!((cov[[0, 1]] - 1.5).abs() < 0.05);
    let cyclic = array![[0.0, 1.0], [1.0, 0.0]];
    assert!(sample_linear_sem(
        &cyclic,
        5,
        NoiseKind::Gauss,
        &Array1::ones(2),
        &mut Rng::new(0)
    )
    .is_none());
}

#[test]
fn unequal_variances_lie_in_range() {
    let sem = simulate_linear_sem(&SemConfig {
        variance: NoiseVariance::Unequal,
        noise: NoiseKind::Laplace,
        ..config(GraphKind::ErdosRenyi, 2)
    });
    assert!(sem
        .noise_scales
        .iter()
        .all(|s| (0.5..=10.0).contains(&(s * s))));
    assert!(sem.noise_scales.iter().any(|s| *s != sem.noise_scales[0]));
}

#[test]
fn example_generators_have_the_documented_structure() {
    let (x, y, beta) = regression(30, 8, 3, 0.0, 4);
    assert_eq!(beta.iter().filter(|v| **v != 0.0).count(), 3);
    assert!((x.dot(&beta) - &y).iter().all(|r| r.abs() < 1e-12));
    let (a, b, c) = ot(5, 7, 1);
    assert!((a.sum() - 1.0).abs() < 1e-15 && (b.sum() - 1.0).abs() < 1e-15);
    assert_eq!(c.dim(), (5, 7));
    assert_eq!(c.fold(0.0f64, |m, v| m.max(*v)), 1.0);
    assert!(c.iter().all(|v| *v >= 0.0));
    let (noisy, clean) = denoise(200, 9);
    let jumps = clean
        .windows(2)
        .into_iter()
        .filter(|w| w[0] != w[1])
        .count();
    assert!((1..=4).contains(&jumps), "{jumps} jumps");
    let (_, noise_var) = mean_var(&(&noisy - &clean).to_vec());
    assert!((noise_var.sqrt() - 0.1).abs() < 0.02);
    // An increasing logistic curve from near 0 to near 4, through 2 at the middle, plus
    // N(0, 0.5²) noise.
    let (noisy, curve) = isotonic(2001, 5);
    assert!(curve.windows(2).into_iter().all(|w| w[0] < w[1]));
    assert!(curve[0] < 0.03 && curve[2000] > 3.97 && (curve[1000] - 2.0).abs() < 1e-12);
    let (noise_mean, noise_var) = mean_var(&(&noisy - &curve).to_vec());
    assert!(noise_mean.abs() < 0.04 && (noise_var.sqrt() - 0.5).abs() < 0.03);
}

#[test]
fn ggm_samples_have_the_inverse_precision_as_covariance() {
    // 20 variables, about 20 edges, 40 000 samples: Θ S ≈ I (S → Θ⁻¹ at rate 1/√n).
    let (x, s, theta) = ggm(40_000, 20, 20, 11);
    assert_eq!(
        (x.dim(), s.dim(), theta.dim()),
        ((40_000, 20), (20, 20), (20, 20))
    );
    assert_eq!(theta, theta.t());
    let edges = theta.iter().filter(|v| **v != 0.0).count() - 20;
    assert!((20..=60).contains(&edges), "{} edges", edges / 2);
    for i in 0..20 {
        let off: f64 = (0..20)
            .filter(|&j| j != i)
            .map(|j| theta[[i, j]].abs())
            .sum();
        assert_eq!(theta[[i, i]], off + 0.5, "strictly diagonally dominant");
    }
    let product = theta.dot(&s);
    for ((i, j), v) in product.indexed_iter() {
        let target = if i == j { 1.0 } else { 0.0 };
        assert!((v - target).abs() < 0.05, "(Θ S)[{i}, {j}] = {v}");
    }
    assert_eq!(ggm(50, 5, 4, 3), ggm(50, 5, 4, 3), "seeded");
}
