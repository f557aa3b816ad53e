//! Planted-DAG recovery through the example models, end to end: `optc simulate dag` draws a
//! linear SEM, `optc run examples/dag/*.opt --data X=... --out DIR` learns W, and the structural
//! Hamming distance of `DIR/W.npy` against the planted graph is checked. The returned graph must
//! always be acyclic.

use ndarray::Ix2;
use optc_runtime::dag::{graph_metrics, is_dag};
use optc_runtime::data::read_npy;
use std::path::{Path, PathBuf};
use std::process::Command;

fn optc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_optc"))
        .args(args)
        .output()
        .expect("optc runs")
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("optc-dag-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn matrix(path: &Path) -> ndarray::Array2<f64> {
    read_npy(path)
        .unwrap()
        .0
        .into_dimensionality::<Ix2>()
        .unwrap()
}

/// Runs `model` on a fresh ER2 simulation and returns the SHD of the learned graph.
fn shd(model: &str, d: usize, seed: u64) -> usize {
    let data = dir(&format!("{model}-{d}-{seed}-data").replace('/', "_"));
    let sim = optc(&[
        "simulate",
        "dag",
        "--graph",
        "ER",
        "--d",
        &d.to_string(),
        "--edges",
        &(2 * d).to_string(),
        "--n",
        "1000",
        "--noise",
        "gauss",
        "--seed",
        &seed.to_string(),
        "--out",
        data.to_str().unwrap(),
    ]);
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    let out = data.join("out");
    let example = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(model);
    let x = format!("X={}", data.join("X.npy").display());
    let run = optc(&[
        "run",
        example.to_str().unwrap(),
        "-q",
        "--data",
        &x,
        "--out",
        out.to_str().unwrap(),
    ]);
    let code = run.status.code();
    assert!(
        matches!(code, Some(0) | Some(1)),
        "{model}: exit {code:?}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let w = matrix(&out.join("W.npy"));
    assert!(is_dag(w.view()), "{model} returned a cyclic graph");
    let truth = matrix(&data.join("W_true.npy"));
    graph_metrics(w.view(), truth.view()).shd
}

fn check(model: &str, d: usize, max_shd: usize) {
    for seed in 1..=3 {
        let s = shd(model, d, seed);
        assert!(
            s <= max_shd,
            "{model}, d = {d}, seed {seed}: SHD {s} > {max_shd}"
        );
    }
}

#[test]
fn dagma_recovers_er2_d10() {
    check("dag/dagma.opt", 10, 2);
}

#[test]
fn dagma_recovers_er2_d20() {
    check("dag/dagma.opt", 20, 2);
}

#[test]
fn colide_recovers_er2_d10() {
    check("dag/colide.opt", 10, 2);
}

#[test]
fn colide_recovers_er2_d20() {
    check("dag/colide.opt", 20, 2);
}

// NOTEARS (augmented Lagrangian with the W = W⁺ − W⁻ split) currently ends in a local optimum with
// SHD 5 on seed 1 (d = 10) and up to 10 at d = 20: above the goal of 4. Run with `--ignored`.
#[test]
#[ignore = "NOTEARS does not reach SHD ≤ 4 yet"]
fn notears_recovers_er2_d10() {
    check("dag/notears.opt", 10, 4);
}

#[test]
#[ignore = "NOTEARS does not reach SHD ≤ 4 yet"]
fn notears_recovers_er2_d20() {
    check("dag/notears.opt", 20, 4);
}
