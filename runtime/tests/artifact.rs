//! `optc build` and `.optx` artifacts end to end: running an artifact gives the files running its
//! source gives, corrupt artifacts give their codes (never a crash), and the GPU target and
//! backend fail with their documented codes where they are not available.

#[path = "support/temp.rs"]
mod temp;

use optc_runtime::artifact;
use std::path::Path;
use std::process::{Command, Output};

fn optc_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_optc"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .expect("optc runs")
}

fn optc(args: &[&str]) -> Output {
    optc_in(&std::env::temp_dir(), args)
}

fn example(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(path)
        .display()
        .to_string()
}

fn temp_dir(name: &str) -> temp::TempDir {
    temp::TempDir::new("artifact", name)
}

fn ok(o: &Output) -> &Output {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// result.json without its timings (which differ between any two runs).
fn result_without_timings(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("result.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v.as_object_mut().unwrap().remove("timings");
    v
}

/// Builds `model`, runs the source and the artifact with the same flags into two directories,
/// and checks that they wrote the same result.json (timings aside) and the same `array`.npy.
fn same_files_from_source_and_artifact(model: &str, flags: &[&str], array: &str) {
    let dir = temp_dir(&model.replace('/', "_"));
    let optx = dir.join("model.optx");
    ok(&optc(&["build", &example(model), "-o", path(&optx)]));
    let bytes = std::fs::read(&optx).unwrap();
    assert!(bytes.starts_with(&artifact::MAGIC));
    let runs = [example(model), path(&optx).to_string()];
    let outs = [dir.join("from-source"), dir.join("from-artifact")];
    for (input, out) in runs.iter().zip(&outs) {
        let mut args = vec!["run", input, "-q", "--out", path(out)];
        args.extend_from_slice(flags);
        ok(&optc(&args));
    }
    assert_eq!(
        result_without_timings(&outs[0]),
        result_without_timings(&outs[1])
    );
    let npy = format!("{array}.npy");
    assert_eq!(
        std::fs::read(outs[0].join(&npy)).unwrap(),
        std::fs::read(outs[1].join(&npy)).unwrap()
    );
}

#[test]
fn an_artifact_keeps_the_options_of_solve_with() {
    // The artifact's IR holds no source spans; its `solve with` options must act as the
    // source's: `dual`'s inner `max_iter = 3` stops both after 3 iterations, on the full dual.
    let dir = temp_dir("dual-options");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/data/");
    let source = std::fs::read_to_string(example("ot/sparse_ot.opt"))
        .unwrap()
        .replace("\"../data/", &format!("\"{}", path(&data)))
        .replace(
            "dual(lbfgs(max_iter = 500))",
            "dual(lbfgs(max_iter = 3), form = \"full\")",
        );
    assert!(
        source.contains("form = \"full\""),
        "the example's `solve with` changed"
    );
    let model = dir.join("model.opt");
    std::fs::write(&model, source).unwrap();
    let optx = dir.join("model.optx");
    ok(&optc(&["build", path(&model), "-o", path(&optx)]));
    let results: Vec<serde_json::Value> = [path(&model), path(&optx)]
        .iter()
        .map(|input| {
            let o = optc(&["run", input, "-q", "--json"]);
            serde_json::from_slice(&o.stdout).unwrap()
        })
        .collect();
    for r in &results {
        assert_eq!(
            (r["status"].as_str(), r["iterations"].as_u64()),
            (Some("iteration_limit"), Some(3)),
            "{r}"
        );
    }
    assert_eq!(results[0]["objective"], results[1]["objective"]);
}

#[test]
fn lasso_artifact_reads_the_sources_data_and_solves_the_same() {
    // No --data: the artifact resolves `load("../data/...")` against the source's directory,
    // whatever the working directory is.
    same_files_from_source_and_artifact("regression/lasso.opt", &[], "w");
}

#[test]
fn dagma_artifact_with_data_from_the_command_line_solves_the_same() {
    let data = temp_dir("dagma-data");
    ok(&optc(&[
        "simulate",
        "dag",
        "--d",
        "4",
        "--n",
        "60",
        "--seed",
        "3",
        "--out",
        path(&data),
    ]));
    let x = format!("X={}", path(&data.join("X.npy")));
    same_files_from_source_and_artifact(
        "dag/dagma.opt",
        &["--data", &x, "--max-iter", "3000"],
        "W",
    );
}

#[test]
fn build_dims_are_defaults_that_dims_override() {
    let dir = temp_dir("dims");
    let model = dir.join("m.opt");
    std::fs::write(
        &model,
        "dims n\nvar x : real[n] = 0\nminimize sumsq(x - 2)\noutput x\n",
    )
    .unwrap();
    let optx = dir.join("m.optx");
    ok(&optc(&[
        "build",
        path(&model),
        "-o",
        path(&optx),
        "--dims",
        "n=3",
    ]));
    let a = artifact::read(&optx).unwrap();
    assert_eq!(a.target, artifact::Target::Cpu);
    assert_eq!(a.dims, vec![("n".to_string(), 3)]);
    assert!(a.kernels.is_empty());
    let solved = |extra: &[&str]| {
        let mut args = vec!["run", path(&optx), "-q", "--json"];
        args.extend_from_slice(extra);
        let o = optc(&args);
        let v: serde_json::Value = serde_json::from_slice(&ok(&o).stdout).unwrap();
        v["outputs"]["x"].clone()
    };
    assert_eq!(solved(&[]), serde_json::json!([2.0, 2.0, 2.0]));
    assert_eq!(solved(&["--dims", "n=2"]), serde_json::json!([2.0, 2.0]));
    // eval reads artifacts too; check needs the source.
    ok(&optc(&["eval", path(&optx)]));
    assert_eq!(optc(&["check", path(&optx)]).status.code(), Some(64));
    // A dimension the model lacks is E0350, as for `run`.
    let o = optc(&["build", path(&model), "-o", path(&optx), "--dims", "m=3"]);
    assert_eq!(o.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&o.stderr).contains("E0350"));
}

/// A build-time size that the data contradict is named as such, not as the command line's.
#[test]
fn a_build_time_size_the_data_contradict_says_where_it_came_from() {
    let dir = temp_dir("build_dims_conflict");
    let model = dir.join("m.opt");
    std::fs::write(
        &model,
        "dims n\ndata y : real[n] = load(\"y.csv\")\nvar x : real[n] = 0\nminimize sumsq(x - y)\n",
    )
    .unwrap();
    std::fs::write(dir.join("y.csv"), "1\n2\n").unwrap();
    let optx = dir.join("m.optx");
    ok(&optc(&[
        "build",
        path(&model),
        "-o",
        path(&optx),
        "--dims",
        "n=5",
    ]));
    let o = optc(&["run", path(&optx), "-q"]);
    assert_eq!(o.status.code(), Some(65));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        err.contains("is 5 from the artifact's build-time `--dims` but 2 from `y`"),
        "{err}"
    );
    ok(&optc(&["run", path(&optx), "-q", "--dims", "n=2"]));
}

#[test]
fn corrupt_artifacts_give_their_codes_and_exit_65() {
    let dir = temp_dir("corrupt");
    let optx = dir.join("lasso.optx");
    ok(&optc(&[
        "build",
        &example("regression/lasso.opt"),
        "-o",
        path(&optx),
    ]));
    let good = std::fs::read(&optx).unwrap();
    let mut other_optc = artifact::read(&optx).unwrap();
    other_optc.optc_version = "0.0.1-elsewhere".into();

    let mut flipped = good.clone();
    let middle = good.len() / 2;
    flipped[middle] ^= 0x10;
    let mut version_9 = good.clone();
    version_9[8..12].copy_from_slice(&9u32.to_le_bytes());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", good[..good.len() - 3].to_vec(), "E0372"),
        ("header only", good[..20].to_vec(), "E0372"),
        ("bit flip", flipped, "E0372"),
        ("version", version_9, "E0371"),
        ("other optc", artifact::encode(&other_optc), "E0373"),
    ];
    for (what, bytes, code) in cases {
        let file = dir.join(format!("{}.optx", what.replace(' ', "-")));
        std::fs::write(&file, bytes).unwrap();
        for command in ["run", "eval", "bench"] {
            let o = optc(&[command, path(&file)]);
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(65), "{what} ({command}): {err}");
            assert!(err.contains(code), "{what} ({command}): {err}");
            assert!(!err.contains("internal error"), "{what}: {err}");
        }
    }
    let o = optc(&[
        "run",
        path(&dir.join("version.optx")),
        "--error-format",
        "json",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("version 9"), "{err}");
    assert!(err.contains(&format!("reads version {}", artifact::FORMAT_VERSION)));
    assert_eq!(
        artifact::read(&dir.join("model.opt")).unwrap_err().code(),
        artifact::IO
    );
    std::fs::write(dir.join("text.optx"), "dims n\n").unwrap();
    assert_eq!(
        artifact::read(&dir.join("text.optx")).unwrap_err(),
        artifact::ArtifactError::NotArtifact
    );
}

#[test]
fn gpu_backend_on_a_source_without_a_driver_is_a_coded_error() {
    if optc_runtime::gpu::driver_present() {
        return; // this test is about machines without the NVIDIA driver
    }
    for command in ["run", "eval", "bench"] {
        let o = optc(&[
            command,
            &example("regression/lasso.opt"),
            "--backend",
            "gpu",
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(69), "{command}: {err}");
        // A source needs a gpu artifact first; the missing driver is noted.
        assert!(
            err.contains("E0383")
                && err.contains("no CUDA driver")
                && err.contains("--backend cpu"),
            "{err}"
        );
    }
}

#[cfg(not(feature = "mlir"))]
#[test]
fn gpu_target_needs_the_mlir_feature() {
    let dir = temp_dir("gpu-target");
    let o = optc(&[
        "build",
        &example("regression/ridge.opt"),
        "-o",
        path(&dir.join("ridge.optx")),
        "--target",
        "gpu",
    ]);
    assert_eq!(o.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--features mlir"));
    assert!(!dir.join("ridge.optx").exists());
}

/// A gpu artifact holds sm_90 PTX and runs on the CPU (its IR) and on the reference device.
/// Without `--dims` its plan is built for the sizes of the model's data (ridge: n = 100,
/// p = 20), so that it runs on that data as it is; a model whose data cannot be read gets the
/// default sizes and a note.
#[cfg(feature = "mlir")]
#[test]
fn gpu_target_artifact_holds_ptx_and_takes_its_sizes_from_the_data() {
    let dir = temp_dir("gpu-target");
    let optx = dir.join("ridge.optx");
    ok(&optc(&[
        "build",
        &example("regression/ridge.opt"),
        "-o",
        path(&optx),
        "--target",
        "gpu",
    ]));
    let a = artifact::read(&optx).unwrap();
    assert_eq!(a.target, artifact::Target::Gpu);
    assert!(!a.kernels.is_empty());
    assert!(a.kernels.iter().all(|k| k.ptx.contains(".target sm_90")));
    assert_eq!(a.gpu.unwrap().staged.dims, [100, 20]);
    assert!(a.dims.is_empty(), "the run's sizes stay free: {:?}", a.dims);
    ok(&optc(&["run", path(&optx), "-q", "--backend", "cpu"]));
    let o = Command::new(env!("CARGO_BIN_EXE_optc"))
        .args(["run", path(&optx), "--backend", "gpu", "-q"])
        .env(optc_runtime::gpu::DEVICE_ENV, "reference")
        .output()
        .unwrap();
    ok(&o);
    let model = dir.join("nodata.opt");
    std::fs::write(
        &model,
        "dims n, d\ndata X : real[n, d] = load(\"missing.npy\")\nvar W : real[d, d] = 0\nminimize sumsq(X @ W)\n",
    )
    .unwrap();
    let o = optc(&[
        "build",
        path(&model),
        "-o",
        path(&dir.join("nodata.optx")),
        "--target",
        "gpu",
    ]);
    ok(&o);
    let note = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        note.contains("n=100,d=100") && note.contains("--dims"),
        "{note}"
    );
}

#[test]
fn precision_is_refused_where_it_means_nothing() {
    // `--precision` sets the element type of GPU kernels: a cpu artifact or a stage other than
    // PTX has none.
    let dir = temp_dir("precision");
    let ridge = example("regression/ridge.opt");
    let out = dir.join("ridge.optx");
    let build = optc(&["build", &ridge, "-o", path(&out), "--precision", "f32"]);
    let emit = optc(&["emit", "--stage", "ir", &ridge, "--precision", "f32"]);
    for o in [build, emit] {
        assert_eq!(o.status.code(), Some(64));
        assert!(String::from_utf8_lossy(&o.stderr).contains("--precision"));
    }
    assert!(!out.exists());
}

#[cfg(feature = "mlir")]
#[test]
fn an_f32_gpu_artifact_solves_to_single_precision_on_the_reference_device() {
    let dir = temp_dir("gpu-f32");
    let run = |optx: &Path| {
        let o = Command::new(env!("CARGO_BIN_EXE_optc"))
            .args(["run", path(optx), "--backend", "gpu", "--json", "-q"])
            .env(optc_runtime::gpu::DEVICE_ENV, "reference")
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["objective"]
            .as_f64()
            .unwrap()
    };
    let mut objectives = Vec::new();
    for precision in ["f64", "f32"] {
        let optx = dir.join(format!("ridge_{precision}.optx"));
        let flags = [
            "--target",
            "gpu",
            "--dims",
            "n=100,p=20",
            "--precision",
            precision,
        ];
        ok(&optc(
            &[
                &["build", &example("regression/ridge.opt"), "-o", path(&optx)][..],
                &flags,
            ]
            .concat(),
        ));
        let a = artifact::read(&optx).unwrap();
        assert_eq!(a.gpu.as_ref().unwrap().precision.name(), precision);
        let other = if precision == "f32" { ".f64" } else { ".f32" };
        assert!(a.kernels.iter().all(|k| !k.ptx.contains(other)));
        objectives.push(run(&optx));
    }
    // L-BFGS with its iterates, gradients and objective values in single precision (its vectors
    // stay on the device) stops at their accuracy: the same minimum to f32's epsilon (relative;
    // the objective itself is stored in f32), where f64 gives it to the solver's tolerance.
    let (f64_min, f32_min) = (objectives[0], objectives[1]);
    assert!(
        (f32_min - f64_min).abs() <= f64::from(f32::EPSILON) * f64_min,
        "{f32_min} vs {f64_min}"
    );
}

#[test]
fn build_timings_name_each_stage() {
    let dir = temp_dir("timings");
    let ridge = example("regression/ridge.opt");
    let stages_of = |extra: &[&str]| -> Vec<String> {
        let out = dir.join("ridge.optx");
        let o = optc(&[&["build", &ridge, "-o", path(&out), "--timings"][..], extra].concat());
        ok(&o);
        String::from_utf8_lossy(&o.stderr)
            .lines()
            .filter_map(|l| l.strip_prefix("time "))
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect()
    };
    assert_eq!(stages_of(&[]), ["parse", "check", "lower", "write"]);
    if cfg!(feature = "mlir") {
        let gpu = ["--target", "gpu", "--dims", "n=100,p=20"];
        assert_eq!(
            stages_of(&gpu),
            ["parse", "check", "lower", "stage", "ptx", "write"]
        );
    }
}
