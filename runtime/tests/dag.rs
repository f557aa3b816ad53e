//! DAG post-processing, metrics and the log-det acyclicity function.

use ndarray::{array, Array2};
use optc_runtime::dag::*;
use optc_runtime::simulate::Rng;
use proptest::prelude::*;

#[test]
fn to_dag_drops_weakest_edge_of_each_cycle() {
    // 0→1 (2.0), 1→2 (1.5), 2→0 (0.7) form a cycle; 0→2 (0.2) is under the threshold;
    // self-loop 1→1 is dropped.
    let w = array![[0.0, 2.0, 0.2], [0.0, 0.9, 1.5], [0.7, 0.0, 0.0]];
    let result = to_dag(w.view(), 0.3);
    assert_eq!(result.w, array![[0.0, 2.0, 0.0], [0.0, 0.0, 1.5], [0.0, 0.0, 0.0]]);
    assert_eq!(result.removed, vec![(1, 1, 0.9), (2, 0, 0.7)]);
    assert_eq!(result.order, vec![0, 1, 2]);
}

#[test]
fn topological_order_and_is_dag() {
    let w = array![[0.0, 0.0, 0.0], [1.0, 0.0, 1.0], [1.0, 0.0, 0.0]];
    assert_eq!(topological_order(w.view()), Some(vec![1, 2, 0]));
    let cyclic = array![[0.0, 1.0], [-1.0, 0.0]];
    assert!(!is_dag(cyclic.view()));
    let self_loop = array![[1.0, 0.0], [0.0, 0.0]];
    assert!(!is_dag(self_loop.view()));
}

#[test]
fn threshold_zeroes_small_entries() {
    let mut w = array![[0.1, -0.5], [-0.29, 0.3]];
    threshold(&mut w, 0.3);
    assert_eq!(w, array![[0.0, -0.5], [0.0, 0.3]]);
}

#[test]
fn shd_counts_extra_missing_and_reversed_edges() {
    // Truth: 0→1, 1→2, 2→3. Estimate: 0→1 (correct), 2→1 (reversed), 0→3 (extra); 2→3 missing.
    let mut truth = Array2::<f64>::zeros((4, 4));
    truth[[0, 1]] = 1.0;
    truth[[1, 2]] = 1.0;
    truth[[2, 3]] = 1.0;
    let mut est = Array2::<f64>::zeros((4, 4));
    est[[0, 1]] = 0.8;
    est[[2, 1]] = -1.0;
    est[[0, 3]] = 0.5;
    let m = graph_metrics(est.view(), truth.view());
    assert_eq!((m.shd, m.reversed, m.false_positives, m.missing, m.nnz), (3, 1, 1, 1, 3));
    assert!((m.tpr - 1.0 / 3.0).abs() < 1e-15);
    assert!((m.fdr - 2.0 / 3.0).abs() < 1e-15);
    let perfect = graph_metrics(truth.view(), truth.view());
    assert_eq!((perfect.shd, perfect.tpr, perfect.fdr), (0, 1.0, 0.0));
}

#[test]
fn logdet_acyclicity_matches_methods_check_values() {
    // W = [[0, a], [b, 0]], s = 1; h = −log(1 − a²b²), ∂/∂W01 = 2ab²/(1 − a²b²), ∂/∂W10 = 2a²b/(1 − a²b²).
    let (h, g) = logdet_acyclicity(array![[0.0, 0.5], [0.5, 0.0]].view(), 1.0).unwrap();
    assert!((h - 0.0645385211).abs() < 1e-10);
    assert!((g[[0, 1]] - 0.2666666667).abs() < 1e-10 && (g[[1, 0]] - 0.2666666667).abs() < 1e-10);
    let (h, g) = logdet_acyclicity(array![[0.0, 1.0], [0.3, 0.0]].view(), 1.0).unwrap();
    assert!((h - 0.0943106795).abs() < 1e-10);
    assert!((g[[0, 1]] - 0.1978021978).abs() < 1e-10 && (g[[1, 0]] - 0.6593406593).abs() < 1e-10);
    let cycle = array![[0.0, 0.8, 0.0], [0.0, 0.0, 0.8], [0.8, 0.0, 0.0]];
    let (h, _) = logdet_acyclicity(cycle.view(), 1.0).unwrap();
    assert!((h - 0.3040065954).abs() < 1e-10);
    let dag = array![[0.0, 3.0], [0.0, 0.0]];
    assert!(logdet_acyclicity(dag.view(), 1.0).unwrap().0.abs() < 1e-14, "h = 0 on a DAG");
    assert!(logdet_acyclicity(array![[0.0, 2.0], [2.0, 0.0]].view(), 1.0).is_none(), "ρ(W∘W) = 4 > s");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn to_dag_output_is_acyclic_and_certified(seed in any::<u64>(), d in 2usize..9, thr in 0.0f64..0.5) {
        let mut rng = Rng::new(seed);
        let w = Array2::from_shape_fn((d, d), |_| rng.uniform_range(-1.0, 1.0));
        let result = to_dag(w.view(), thr);
        prop_assert!(is_dag(result.w.view()));
        let mut position = vec![0; d];
        result.order.iter().enumerate().for_each(|(k, &v)| position[v] = k);
        prop_assert_eq!(result.order.len(), d);
        for i in 0..d {
            for j in 0..d {
                if result.w[[i, j]] != 0.0 {
                    prop_assert!(position[i] < position[j]);
                    prop_assert_eq!(result.w[[i, j]], w[[i, j]]);
                }
            }
        }
        // Every removed edge would close a cycle with the kept (stronger) edges.
        for &(i, j, _) in &result.removed {
            let mut with_edge = result.w.clone();
            with_edge[[i, j]] = 1.0;
            prop_assert!(!is_dag(with_edge.view()));
        }
        let kept = result.w.iter().filter(|v| **v != 0.0).count();
        let above = w.iter().filter(|v| v.abs() >= thr && **v != 0.0).count();
        prop_assert_eq!(kept + result.removed.len(), above);
    }
}
