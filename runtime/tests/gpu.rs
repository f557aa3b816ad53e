//! The GPU executor on the host reference device against the interpreter: the value and gradient
//! of every example at its data's sizes, through plans laid out without fusion (every node
//! stored, a kernel per pointwise node, transposes as flags of the matrix product) and, with the
//! `mlir` feature, through the plans and kernel launches MLIR makes (with the path's Adam step,
//! two steps against the host's Adam). Also: whole solves against the CPU backend, the path's
//! Adam iterates kept on the device, the artifact round trip with a GPU plan, refusal of damaged
//! plans, the dims check, and the codes of `optc bench --backend gpu` where no GPU is.

#[path = "support/temp.rs"]
mod temp;

use ndarray::ArrayD;
use optc_compiler::derive;
use optc_compiler::driver::{compile, Until};
use optc_compiler::ir::{InputKind, NodeId, Op, Program};
use optc_runtime::artifact::{self, Artifact, Target};
use optc_runtime::gpu::build::{self, Layout};
use optc_runtime::gpu::device::DeviceError;
use optc_runtime::gpu::exec::{ExecError, Executor};
use optc_runtime::gpu::plan::{
    GpuPlan, Launch, LaunchOperand, Memory, Precision, Staged, Step, Storage,
};
use optc_runtime::gpu::reference::ReferenceDevice;
use optc_runtime::interp::{self, Bindings, EvalError, NoSubproblems};
use optc_runtime::model::{self, BindSpec};
use optc_runtime::solvers::{AdamState, Status};
use std::path::{Path, PathBuf};
use std::process::Command;

fn examples() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).into_iter().flatten())
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "opt"))
        .collect();
    files.sort();
    files
}

/// An example's program and its bindings (the example data), or `None` when it has no gradient
/// (lower-level problems).
fn load(file: &Path) -> Option<(Program, Bindings)> {
    let text = std::fs::read_to_string(file).unwrap();
    let c = compile(&file.display().to_string(), &text, Until::Ir).expect("example compiles");
    let program = c.program.expect("ir");
    derive::differentiate(&program).ok()?;
    let bindings = model::bind(&program, file.parent().unwrap(), &BindSpec::default())
        .expect("example data binds");
    Some((program, bindings))
}

/// The interpreter's values of what a GPU plan of `program` computes, unsimplified: the merit
/// (objective plus scalar constraint functions) and its gradient, or the functions of the
/// solver that builds its own (at the path's μ = s = 1); each flat: the value, the gradient,
/// then the other roots.
fn reference(program: &Program, bindings: &Bindings) -> (f64, Vec<f64>, Vec<f64>) {
    let vars = program.variables().count();
    let (p, roots) = match optc_runtime::plan::device_functions(program, &bindings.dims).unwrap() {
        Some(f) => (f.program, f.roots),
        None => {
            let d = build::merit_gradient(program).unwrap();
            let roots = d.roots();
            (d.program, roots)
        }
    };
    let mut bindings = bindings.clone();
    // The parameters the functions add; Adam's step's inputs are not read by these roots. The
    // augmented Lagrangian's multipliers and penalty are at the executor's start, α = 0, ρ = 1.
    for k in bindings.inputs.len()..p.inputs.len() {
        let input = &p.inputs[k];
        let value = match (input.name.as_str(), input.kind) {
            ("auglag.rho", _) => Some(ArrayD::from_elem(vec![], 1.0)),
            (_, InputKind::Direction) if input.name.starts_with("auglag.alpha") => {
                let shape: Vec<usize> = input
                    .shape
                    .iter()
                    .map(|d| d.eval(&bindings.dims) as usize)
                    .collect();
                Some(ArrayD::zeros(shape))
            }
            _ => p
                .param_default(optc_compiler::ir::InputId(k as u32))
                .map(|v| ArrayD::from_elem(vec![], v)),
        };
        bindings.inputs.push(value);
    }
    let values = interp::eval(&p, &bindings, &roots, &mut NoSubproblems).unwrap();
    let value = values[0].iter().next().copied().unwrap();
    let flat = |v: &[ArrayD<f64>]| v.iter().flat_map(|a| a.iter().copied()).collect();
    (value, flat(&values[1..1 + vars]), flat(&values[1 + vars..]))
}

fn flat_x(program: &Program, bindings: &Bindings) -> Vec<f64> {
    program
        .variables()
        .flat_map(|v| {
            bindings.inputs[v.0 as usize]
                .clone()
                .unwrap()
                .iter()
                .copied()
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether the plan has a step through dense linear algebra (looser tolerance).
fn has_linear_algebra(plan: &GpuPlan) -> bool {
    plan.steps.iter().any(|s| {
        matches!(
            s,
            Step::LogDet { .. } | Step::Inv { .. } | Step::Solve { .. } | Step::Expm { .. }
        ) || matches!(s, Step::Host { node } if matches!(plan.staged.function.graph.node(*node).op, Op::Expm | Op::NuclearNorm))
    })
}

/// The ops of the plan's host steps, in order.
fn host_ops(plan: &GpuPlan) -> Vec<&Op> {
    plan.steps
        .iter()
        .filter_map(|s| match s {
            Step::Host { node } => Some(&plan.staged.function.graph.node(*node).op),
            _ => None,
        })
        .collect()
}

/// The number of the plan's matrix exponential steps.
fn exponentials(plan: &GpuPlan) -> usize {
    plan.steps
        .iter()
        .filter(|s| matches!(s, Step::Expm { .. }))
        .count()
}

fn assert_close(what: &str, got: &[f64], expected: &[f64], tol: f64) {
    assert_eq!(got.len(), expected.len(), "{what}: lengths");
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert!(
            (g - e).abs() <= tol * e.abs().max(1.0),
            "{what}[{i}]: {g} vs {e} (tol {tol})"
        );
    }
}

/// Runs the plan on the reference device and compares with the interpreter: to 1e-12 (1e-9
/// through dense linear algebra) in f64; in f32 to 1e-4 (1e-3), every value the device returns
/// being an f32. A plan with Adam's step also takes two steps ([`check_adam_step`]). Returns the
/// launches and LU factorizations of the evaluations.
fn check_against_interpreter(
    name: &str,
    program: &Program,
    bindings: &Bindings,
    plan: GpuPlan,
    kernels: &[(String, String)],
) -> (usize, usize) {
    let precision = plan.precision;
    let tol = match (precision, has_linear_algebra(&plan)) {
        (Precision::F64, true) => 1e-9,
        (Precision::F64, false) => 1e-12,
        (Precision::F32, true) => 1e-3,
        (Precision::F32, false) => 1e-4,
    };
    let mut exec = Executor::new(ReferenceDevice::new(), plan, kernels, bindings)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let x = flat_x(program, bindings);
    let (value, grad) = exec
        .value_grad(&x)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let (v_ref, g_ref, rest_ref) = reference(program, bindings);
    assert_close(&format!("{name} value"), &[value], &[v_ref], tol);
    assert_close(&format!("{name} gradient"), &grad, &g_ref, tol);
    let mut rest = vec![0.0; rest_ref.len()];
    exec.rest_roots(&mut rest).unwrap();
    assert_close(&format!("{name} other roots"), &rest, &rest_ref, tol);
    // Run again where the point already is: the same merit.
    assert_eq!(exec.rerun().unwrap().to_bits(), value.to_bits(), "{name}");
    let returned = std::iter::once(&value).chain(&grad).chain(&rest);
    assert!(
        returned
            .clone()
            .all(|&v| precision.round(v) == v || v.is_nan()),
        "{name}: a value that is not an {}",
        precision.name()
    );
    // A second evaluation at another point reuses the uploaded setup.
    let shifted: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, v)| v + 0.01 * ((i % 7) as f64 - 3.0))
        .collect();
    let (value2, grad2) = exec.value_grad(&shifted).unwrap();
    let mut moved = bindings.clone();
    let mut at = 0;
    for v in program.variables() {
        let a = moved.inputs[v.0 as usize].as_mut().unwrap();
        let len = a.len();
        *a = ArrayD::from_shape_vec(a.shape(), shifted[at..at + len].to_vec()).unwrap();
        at += len;
    }
    let (v_ref2, g_ref2, _) = reference(program, &moved);
    assert_close(
        &format!("{name} value (2nd point)"),
        &[value2],
        &[v_ref2],
        tol,
    );
    assert_close(
        &format!("{name} gradient (2nd point)"),
        &grad2,
        &g_ref2,
        tol,
    );
    let counts = (exec.device().launches, exec.device().factorizations);
    if exec.adam_step().is_some() {
        check_adam_step(name, &mut exec, &shifted, &grad2, tol);
    }
    check_prox_step(name, &mut exec, program, bindings, &shifted, tol);
    counts
}

/// For a plan with the prox step: the step from `v` on the device against the interpreter's
/// values of the step's roots (the unsimplified functions), at the first step size of 1, 0.1,
/// 0.01, … that zeroes some entries and not all.
fn check_prox_step(
    name: &str,
    exec: &mut Executor<ReferenceDevice>,
    program: &Program,
    bindings: &Bindings,
    v: &[f64],
    tol: f64,
) {
    let Some(optc_runtime::plan::DeviceSolver::ProxGrad { prox: Some(_) }) = exec.solver() else {
        return;
    };
    let f = optc_runtime::plan::device_functions(program, &bindings.dims)
        .unwrap()
        .unwrap();
    let optc_runtime::plan::DeviceSolver::ProxGrad { prox: Some(prox) } = f.solver else {
        panic!("{name}: the functions have no prox step");
    };
    let mut b = bindings.clone();
    for k in b.inputs.len()..f.program.inputs.len() {
        let default = f
            .program
            .param_default(optc_compiler::ir::InputId(k as u32));
        b.inputs.push(default.map(|v| ArrayD::from_elem(vec![], v)));
    }
    let mut at = 0;
    for (var, &point) in program.variables().zip(&prox.points) {
        let shape = bindings.inputs[var.0 as usize]
            .as_ref()
            .unwrap()
            .shape()
            .to_vec();
        let len = shape.iter().product::<usize>();
        let piece = ArrayD::from_shape_vec(shape, v[at..at + len].to_vec()).unwrap();
        b.inputs[point as usize] = Some(piece);
        at += len;
    }
    let step_of = |tau: f64| {
        let mut b = b.clone();
        b.inputs[prox.step as usize] = Some(ArrayD::from_elem(vec![], tau));
        let values = interp::eval(&f.program, &b, &f.step_roots, &mut NoSubproblems).unwrap();
        let (points, penalty) = values.split_at(values.len() - 1);
        let point: Vec<f64> = points.iter().flat_map(|a| a.iter().copied()).collect();
        (point, penalty[0].iter().next().copied().unwrap())
    };
    let mixed = |x: &[f64]| x.contains(&0.0) && x.iter().any(|&x| x != 0.0);
    let (tau, (expected, penalty)) = (0..8)
        .map(|k| 10f64.powi(-k))
        .map(|tau| (tau, step_of(tau)))
        .find(|(_, (x, _))| mixed(x))
        .unwrap_or_else(|| panic!("{name}: no step size zeroes some entries of the point"));
    exec.allocate_vectors(2).unwrap();
    exec.write_vector(0, v).unwrap();
    let got_penalty = exec.prox_vector(0, tau, 1).unwrap();
    let mut got = vec![0.0; v.len()];
    exec.read_vector(1, &mut got).unwrap();
    assert_close(&format!("{name}: prox step"), &got, &expected, tol);
    assert_close(&format!("{name}: r"), &[got_penalty], &[penalty], tol);
}

/// Two of Adam's steps from `x` (where the gradient is `grad`) on the device, against
/// [`AdamState`] on the host: the step's kernels, their launches and the copies into place. The
/// learning rate is small enough to keep bounded variables (CoLiDE's σ ≥ 1e-6) off their bounds.
fn check_adam_step(
    name: &str,
    exec: &mut Executor<ReferenceDevice>,
    x: &[f64],
    grad: &[f64],
    tol: f64,
) {
    let (beta1, beta2, eps, lr) = (0.9, 0.999, 1e-8, 1e-3);
    exec.start_adam(x, beta1, beta2, eps).unwrap();
    let mut host = AdamState::new(x.len(), beta1, beta2, eps);
    let mut expected = x.to_vec();
    let mut g = grad.to_vec();
    let mut u = vec![0.0; x.len()];
    let mut rest = vec![0.0; exec.rest_len()];
    for step in 0..2 {
        if step > 0 {
            // The gradient at the new point (the first step's is `grad`, still on the device).
            g = exec.value_grad(&expected).unwrap().1;
        }
        exec.rest_roots(&mut rest).unwrap();
        exec.step_adam(lr).unwrap();
        host.direction(&g, &mut u);
        expected.iter_mut().zip(&u).for_each(|(x, u)| *x -= lr * u);
        let mut got = vec![0.0; x.len()];
        exec.read_point(false, 0, &mut got).unwrap();
        assert_close(&format!("{name}: Adam step {step}"), &got, &expected, tol);
    }
}

/// A layout without fusion: every needed node is stored (roots in their output buffers), a
/// kernel per pointwise node and per sum along an axis with elements, given every buffer it
/// touches, and a transpose read only by one matrix product is a flag of that product.
fn unfused_layout(staged: &Staged) -> Layout {
    let f = &staged.function;
    let g = &f.graph;
    let n = g.len();
    let mut needed = vec![false; n];
    for r in &staged.function_roots {
        needed[r.0 as usize] = true;
    }
    for i in (0..n).rev() {
        if needed[i] {
            for a in &g.node(NodeId(i as u32)).args {
                needed[a.0 as usize] = true;
            }
        }
    }
    let mut consumers = vec![Vec::new(); n];
    for (id, node) in g.nodes().filter(|(id, _)| needed[id.0 as usize]) {
        for a in &node.args {
            consumers[a.0 as usize].push(id);
        }
    }
    let shapes: Vec<Vec<usize>> = g
        .nodes()
        .map(|(id, node)| {
            if needed[id.0 as usize] {
                node.shape
                    .iter()
                    .map(|d| d.eval(&staged.dims) as usize)
                    .collect()
            } else {
                Vec::new()
            }
        })
        .collect();
    let numel = |id: NodeId| shapes[id.0 as usize].iter().product::<usize>();
    let mut storage = vec![Storage::Unused; n];
    let mut schedule = Vec::new();
    let mut scratch_len = 0;
    for (id, node) in g.nodes().filter(|(id, _)| needed[id.0 as usize]) {
        let i = id.0 as usize;
        let root = staged.function_roots.iter().position(|&r| r == id);
        let users = &consumers[i];
        storage[i] = match node.op {
            Op::Input(k) => Storage::Input(k.0),
            Op::Transpose
                if root.is_none() && users.len() == 1 && g.node(users[0]).op == Op::MatMul =>
            {
                Storage::TransposeFlag
            }
            _ => {
                schedule.push(id);
                match root {
                    Some(k) => Storage::Output(k as u32),
                    None => {
                        scratch_len += numel(id);
                        Storage::Scratch(scratch_len - numel(id))
                    }
                }
            }
        };
    }
    let copies = staged
        .function_roots
        .iter()
        .enumerate()
        .filter(|&(k, r)| storage[r.0 as usize] != Storage::Output(k as u32))
        .map(|(k, &r)| (k as u32, r))
        .collect();
    let memory = |s: Storage| Memory::of_storage(s).unwrap().0;
    let mut launches = Vec::new();
    for &id in &schedule {
        // Pointwise nodes and reductions along lines, as the MLIR backend outlines them.
        let kernel = matches!(
            g.node(id).op,
            Op::Const(_)
                | Op::Unary(_)
                | Op::Binary(_)
                | Op::BroadcastTo(_)
                | Op::Expand { .. }
                | Op::Eye(_)
                | Op::Transpose
                | Op::DiagPart
                | Op::Diag
                | Op::Select { .. }
                | Op::Sum { axis: Some(_) }
        );
        if !kernel || numel(id) == 0 {
            continue;
        }
        let mut operands: Vec<LaunchOperand> = [256, 0, 1, 0, numel(id) as i64]
            .into_iter()
            .map(LaunchOperand::Index)
            .collect();
        let mut touched = vec![memory(storage[id.0 as usize])];
        let mut work = g.node(id).args.clone();
        while let Some(a) = work.pop() {
            match Memory::of_storage(storage[a.0 as usize]) {
                Some((m, _)) => touched.push(m),
                None => work.extend(g.node(a).args.iter().copied()),
            }
        }
        touched.dedup();
        for m in touched {
            if !operands.contains(&LaunchOperand::Memref(m)) {
                operands.push(LaunchOperand::Memref(m));
            }
        }
        launches.push(Launch {
            node: id,
            module: format!("k{}", id.0),
            entry: "kernel".into(),
            grid: [numel(id).div_ceil(256) as u32, 1, 1],
            block: [256, 1, 1],
            operands,
        });
    }
    Layout {
        shapes,
        storage,
        scratch_len,
        schedule,
        copies,
        launches,
    }
}

/// The unfused f64 plan of `program` at its bindings' dims, with its stand-in kernels.
fn unfused_plan(program: &Program, bindings: &Bindings) -> (GpuPlan, Vec<(String, String)>) {
    unfused_plan_in(program, bindings, Precision::F64)
}

/// [`unfused_plan`] on buffers of `precision`.
fn unfused_plan_in(
    program: &Program,
    bindings: &Bindings,
    precision: Precision,
) -> (GpuPlan, Vec<(String, String)>) {
    let staged = build::stage(program, &bindings.dims).unwrap();
    let plan = build::assemble(staged.clone(), unfused_layout(&staged), precision).unwrap();
    let kernels = stand_in_kernels(&plan);
    (plan, kernels)
}

/// A stand-in PTX module per launch: an entry declaring one 64-bit parameter per word the
/// launch passes.
fn stand_in_kernels(plan: &GpuPlan) -> Vec<(String, String)> {
    plan.steps
        .iter()
        .filter_map(|s| match s {
            Step::Launch(l) => {
                let words: usize = l
                    .operands
                    .iter()
                    .map(|o| match o {
                        LaunchOperand::Index(_) => 1,
                        LaunchOperand::Memref(_) => 5,
                    })
                    .sum();
                let params = vec!["\t.param .u64 p"; words].join(",\n");
                Some((
                    l.module.clone(),
                    format!(".entry {}(\n{params}\n)\n", l.entry),
                ))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn unfused_plans_of_every_example_match_the_interpreter() {
    for precision in [Precision::F64, Precision::F32] {
        let mut checked = Vec::new();
        for file in examples() {
            let Some((program, bindings)) = load(&file) else {
                continue;
            };
            let name = file.file_name().unwrap().to_string_lossy().to_string();
            let (plan, kernels) = unfused_plan_in(&program, &bindings, precision);
            let (launches, _) =
                check_against_interpreter(&name, &program, &bindings, plan, &kernels);
            assert!(launches > 0, "{name}: no kernel ran");
            checked.push(name);
        }
        assert!(checked.len() >= 6, "checked only {checked:?}");
    }
}

#[cfg(feature = "mlir")]
#[test]
fn mlir_plans_of_every_example_match_the_interpreter() {
    for precision in [Precision::F64, Precision::F32] {
        check_mlir_plans(precision);
    }
}

/// Every example's MLIR plan on `precision` buffers against the interpreter.
#[cfg(feature = "mlir")]
fn check_mlir_plans(precision: Precision) {
    let mut checked = Vec::new();
    let mut refused = Vec::new();
    for file in examples() {
        let Some((program, bindings)) = load(&file) else {
            continue;
        };
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        match build::gpu_plan(&program, &bindings.dims, precision) {
            Ok((plan, kernels)) => {
                assert!(
                    kernels.iter().all(|k| k.1.contains(".entry")),
                    "{name}: PTX"
                );
                let other = match precision {
                    Precision::F64 => ".f32",
                    Precision::F32 => ".f64",
                };
                assert!(
                    kernels.iter().all(|k| !k.1.contains(other)),
                    "{name}: {other} arithmetic in {} kernels",
                    precision.name()
                );
                let sums = plan
                    .steps
                    .iter()
                    .filter(|s| matches!(s, Step::Sum { .. }))
                    .count();
                // Nothing runs on the host: NOTEARS's matrix exponential is a device step
                // (the gradient of its trace is the exponential's transpose, no Fréchet
                // derivative). Reductions along lines (colide_nv's column sums, NOTEARS's
                // trace and the exponential's column sums), expansions and sums to a scalar
                // (ridge) run on the device.
                assert_eq!(host_ops(&plan), Vec::<&Op>::new(), "{name}");
                let expected = usize::from(name == "notears.opt");
                assert_eq!(exponentials(&plan), expected, "{name}");
                let (_, factorizations) =
                    check_against_interpreter(&name, &program, &bindings, plan, &kernels);
                if name == "dagma.opt" {
                    // The merit's logdet and its gradient's inverse share one LU per evaluation
                    // (three: at the point, again there, at a second point); its sums of
                    // squares and of |W| are device sums.
                    assert_eq!(factorizations, 3, "{name}");
                    assert!(sums >= 2, "{name}: {sums} device sums");
                }
                checked.push(name);
            }
            Err(e) => {
                assert!(e.contains("does not support"), "{name}: {e}");
                refused.push(name);
            }
        }
    }
    // Every example has a plan.
    assert_eq!(
        checked,
        [
            "graphical_lasso.opt",
            "colide.opt",
            "colide_nv.opt",
            "dagma.opt",
            "notears.opt",
            "index_tracking.opt",
            "portfolio.opt",
            "sparse_portfolio.opt",
            "sparse_ot.opt",
            "isotonic.opt",
            "lasso.opt",
            "ridge.opt"
        ],
        "refused: {refused:?}"
    );
    assert!(refused.is_empty());
}

/// `d = 6` bindings of a source without data, its variables at their initial values.
fn bind_source(source: &str) -> (Program, Bindings) {
    let c = compile("model.opt", source, Until::Ir).expect("compiles");
    let program = c.program.expect("ir");
    let spec = BindSpec {
        dims: vec![("d".into(), 6)],
        ..BindSpec::default()
    };
    let bindings = model::bind(&program, Path::new("."), &spec).expect("binds");
    (program, bindings)
}

/// The matrix exponential runs on the device by the host's algorithm: scaled by the largest
/// column sum of |A| that the plan's kernel computes, the Padé approximant, then the squarings.
/// It matches the interpreter at inputs that need no squaring (entries up to 0.1 and 0.7) and
/// some (2.5: ‖W‖₁ ≤ 15 and ‖W∘W‖₁ ≤ 37.5, up to two and three squarings; the test fails
/// without them); non-finite input gives NaN, as on the host.
#[test]
fn matrix_exponentials_run_on_the_device() {
    // The gradient of the trace is the exponential's transpose; that of `sum(expm(W))` is a
    // Fréchet derivative, a host step.
    let (program, mut bindings) = bind_source(
        "dims d\nvar W : real[d, d] = 0\nminimize sum(expm(W)) + 2 * trace(expm(W .* W))\n",
    );
    let w = program.input_by_name("W").unwrap().0 as usize;
    for precision in [Precision::F64, Precision::F32] {
        let (plan, kernels) = unfused_plan_in(&program, &bindings, precision);
        // (Without fusion, the other reductions are host steps too.)
        let on_host: Vec<&Op> = host_ops(&plan)
            .into_iter()
            .filter(|op| !matches!(op, Op::Sum { .. } | Op::Trace))
            .collect();
        assert_eq!(exponentials(&plan), 2);
        assert_eq!(on_host, [&Op::ExpmFrechet]);
        for (k, scale) in [0.1, 0.7, 2.5].into_iter().enumerate() {
            let mut state = 17 + k as u64;
            bindings.inputs[w] = Some(ArrayD::from_shape_fn(vec![6, 6], |_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                scale * (2.0 * ((state >> 11) as f64 / (1u64 << 53) as f64) - 1.0)
            }));
            let name = format!("exponentials at scale {scale} in {}", precision.name());
            check_against_interpreter(&name, &program, &bindings, plan.clone(), &kernels);
        }
        // A damaged step (its column sums in the scalar merit's buffer) is refused.
        let mut damaged = plan.clone();
        for step in &mut damaged.steps {
            if let Step::Expm { norms, .. } = step {
                *norms = 0;
            }
        }
        assert!(damaged.check().is_err());
        let mut exec = Executor::new(ReferenceDevice::new(), plan, &kernels, &bindings).unwrap();
        let mut x = flat_x(&program, &bindings);
        x[3] = f64::INFINITY;
        let (value, _) = exec.value_grad(&x).unwrap();
        assert!(value.is_nan(), "{value}");
    }
}

fn lasso() -> (Program, Bindings) {
    load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/regression/lasso.opt")).unwrap()
}

fn gpu_artifact(
    program: &Program,
    plan: GpuPlan,
    kernels: Vec<(String, String)>,
    dims: Vec<(String, u64)>,
) -> Artifact {
    Artifact {
        optc_version: artifact::OPTC_VERSION.into(),
        target: Target::Gpu,
        source_name: "lasso.opt".into(),
        source_dir: Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/regression")
            .display()
            .to_string(),
        program: program.clone(),
        dims,
        kernels: kernels
            .into_iter()
            .map(|(name, ptx)| artifact::Kernel { name, ptx })
            .collect(),
        gpu: Some(plan),
    }
}

#[test]
fn artifact_round_trip_keeps_the_gpu_plan() {
    let (program, bindings) = lasso();
    for precision in [Precision::F64, Precision::F32] {
        let (plan, kernels) = unfused_plan_in(&program, &bindings, precision);
        let a = gpu_artifact(&program, plan, kernels, Vec::new());
        let back = artifact::decode(&artifact::encode(&a)).unwrap();
        assert_eq!(
            serde_json::to_value(&back.gpu).unwrap(),
            serde_json::to_value(&a.gpu).unwrap()
        );
        assert_eq!(back.kernels, a.kernels);
        let plan = back.gpu.unwrap();
        assert_eq!(plan.precision, precision);
        let kernels: Vec<(String, String)> = back
            .kernels
            .iter()
            .map(|k| (k.name.clone(), k.ptx.clone()))
            .collect();
        check_against_interpreter("lasso (decoded)", &program, &bindings, plan, &kernels);
    }
}

#[test]
fn damaged_plans_are_corrupt_artifacts() {
    let (program, bindings) = lasso();
    let (plan, kernels) = unfused_plan(&program, &bindings);
    let damage: [&dyn Fn(&mut GpuPlan); 4] = [
        &|p| p.scratch_len = 0,
        &|p| p.storage.truncate(1),
        &|p| {
            p.steps.push(Step::Copy {
                node: NodeId(0),
                output: 99,
            })
        },
        &|p| p.staged.function_roots.clear(),
    ];
    for (i, damage) in damage.iter().enumerate() {
        let mut bad = plan.clone();
        damage(&mut bad);
        let a = gpu_artifact(&program, bad, kernels.clone(), Vec::new());
        let e = artifact::decode(&artifact::encode(&a)).unwrap_err();
        assert_eq!(e.code(), artifact::CORRUPT, "damage {i}: {e}");
    }
}

#[test]
fn launches_that_do_not_fit_their_kernel_are_refused_by_the_reference_device() {
    let (program, bindings) = lasso();
    let (plan, kernels) = unfused_plan(&program, &bindings);
    let x = flat_x(&program, &bindings);
    let reads_input = |l: &Launch| {
        l.operands
            .iter()
            .any(|o| matches!(o, LaunchOperand::Memref(Memory::Input(_))))
    };
    let mut missing = plan.clone();
    for step in &mut missing.steps {
        if let Step::Launch(l) = step {
            if reads_input(l) {
                l.operands
                    .retain(|o| !matches!(o, LaunchOperand::Memref(Memory::Input(_))));
                break;
            }
        }
    }
    // A launch of a kernel its module does not hold.
    let mut renamed = stand_in_kernels(&plan);
    renamed[0].1 = renamed[0].1.replacen(".entry ", ".entry other_", 1);
    // Against the PTX of the plan as it was: the parameter count differs; against PTX of the
    // changed launch: the kernel reads a buffer it is not given.
    let cases = [
        (plan.clone(), renamed, "has no kernel"),
        (missing.clone(), kernels, "parameters"),
        (missing.clone(), stand_in_kernels(&missing), "not given"),
    ];
    for (plan, kernels, expected) in cases {
        let mut exec = Executor::new(ReferenceDevice::new(), plan, &kernels, &bindings).unwrap();
        match exec.value_grad(&x) {
            Err(ExecError::Device(DeviceError::Invalid(m))) => {
                assert!(m.contains(expected), "{m}")
            }
            other => panic!("expected a refused launch, got {other:?}"),
        }
    }
}

#[test]
fn values_beyond_f32_are_refused_by_an_f32_plan() {
    let (program, bindings) = lasso();
    let (plan, kernels) = unfused_plan_in(&program, &bindings, Precision::F32);
    // Data that f32 cannot hold: refused before anything runs, naming the input.
    let mut huge = bindings.clone();
    let x_data = program.inputs.iter().position(|i| i.name == "X").unwrap();
    huge.inputs[x_data].as_mut().unwrap()[[0, 0]] = 1e300;
    match Executor::new(ReferenceDevice::new(), plan.clone(), &kernels, &huge) {
        Err(e @ ExecError::Range { .. }) => {
            assert!(e.to_string().contains("`X`"), "{e}");
            let d: optc_compiler::diag::Diagnostic = e.into();
            assert_eq!(d.code, "E0386");
        }
        other => panic!("expected a range error, got {:?}", other.err()),
    }
    // A point beyond f32's range; f64 plans take both.
    let mut exec = Executor::new(ReferenceDevice::new(), plan, &kernels, &bindings).unwrap();
    let mut x = flat_x(&program, &bindings);
    x[0] = -1e39;
    assert!(matches!(exec.value_grad(&x), Err(ExecError::Range { .. })));
    let (plan, kernels) = unfused_plan(&program, &bindings);
    let mut exec = Executor::new(ReferenceDevice::new(), plan, &kernels, &huge).unwrap();
    assert!(exec.value_grad(&x).is_ok());
}

#[test]
fn bound_dims_must_be_the_build_dims() {
    let (program, bindings) = lasso();
    let (plan, kernels) = unfused_plan(&program, &bindings);
    let mut other = bindings.clone();
    other.dims[0] += 1;
    match Executor::new(ReferenceDevice::new(), plan.clone(), &kernels, &other) {
        Err(e @ ExecError::Dims { .. }) => {
            let d = optc_compiler::diag::Diagnostic::from(e);
            assert_eq!(d.code, optc_runtime::gpu::DIMS_DIFFER);
        }
        Err(e) => panic!("expected a dims error, got {e}"),
        Ok(_) => panic!("expected a dims error"),
    }
    let dims: Vec<(String, u64)> = program
        .dims
        .iter()
        .zip(&bindings.dims)
        .map(|(d, &s)| (d.name.clone(), s))
        .collect();
    let a = gpu_artifact(&program, plan, kernels, dims.clone());
    let mut wrong = dims.clone();
    wrong[0].1 += 1;
    let e = optc_runtime::gpu::check_artifact(&a, &wrong).unwrap_err();
    assert_eq!(e.code, optc_runtime::gpu::DIMS_DIFFER);

    // Through the command line: E0382 (exit 64) before any device is looked for, E0380 (exit
    // 69) at the right dims without a driver, and the reference device's run otherwise.
    let dir = temp::TempDir::new("gpu", "dims");
    let file = dir.join("lasso.optx");
    artifact::write(&file, &a).unwrap();
    let dims_arg = |d: &[(String, u64)]| {
        d.iter()
            .map(|(n, s)| format!("{n}={s}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let bench = |extra: &[&str], device: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_optc"));
        c.args([
            "bench",
            file.to_str().unwrap(),
            "--backend",
            "gpu",
            "--time-ms",
            "20",
            "--json",
        ])
        .args(extra)
        .env("NO_COLOR", "1")
        .env_remove(optc_runtime::gpu::DEVICE_ENV);
        if let Some(d) = device {
            c.env(optc_runtime::gpu::DEVICE_ENV, d);
        }
        c.output().unwrap()
    };
    let o = bench(&["--dims", &dims_arg(&wrong)], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(64), "{err}");
    assert!(err.contains("E0382"), "{err}");
    if !optc_runtime::gpu::driver_present() {
        let o = bench(&[], None);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(69), "{err}");
        assert!(err.contains("E0380"), "{err}");
    }
    let o = bench(&[], Some("reference"));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let gpu = &json["backends"]["gpu"];
    assert!(gpu["value_grad_per_s"].as_f64().unwrap() > 0.0);
    assert!(gpu["value_grad_with_transfers_per_s"].as_f64().unwrap() > 0.0);
    assert!(gpu["kernel_load_ms"].as_f64().unwrap() >= 0.0);
    // Proximal gradient's functions have no Adam step.
    assert!(gpu.get("adam_steps_per_s").is_none(), "{gpu}");
    let (v_ref, g_ref, _) = reference(&program, &bindings);
    assert_close(
        "bench value",
        &[gpu["value"].as_f64().unwrap()],
        &[v_ref],
        1e-12,
    );
    let grad: Vec<f64> = gpu["gradient"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_f64().unwrap())
        .collect();
    assert_close("bench gradient", &grad, &g_ref, 1e-12);
}

/// `optc run ART.optx --backend gpu` on the reference device (`OPTC_GPU_DEVICE=reference`),
/// writing the artifact of `example` (under examples/regression) to `dir`; returns the exit code,
/// stdout JSON (if any) and stderr.
fn run_gpu_artifact(example: &str, dir: &Path) -> (Option<i32>, serde_json::Value, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/regression")
        .join(example);
    run_gpu_artifact_of(&path, dir, Precision::F64)
}

/// [`run_gpu_artifact`] of the model file at `path`, its device buffers of `precision`.
fn run_gpu_artifact_of(
    path: &Path,
    dir: &Path,
    precision: Precision,
) -> (Option<i32>, serde_json::Value, String) {
    run_source(&write_gpu_artifact_of(path, dir, precision), "gpu")
}

/// Writes a gpu artifact of the example at `path` (an unfused plan of `precision`, stand-in
/// kernels) to `dir`; returns its path.
fn write_gpu_artifact_of(path: &Path, dir: &Path, precision: Precision) -> PathBuf {
    let example = path.file_name().unwrap().to_str().unwrap();
    let (program, bindings) = load(path).unwrap();
    let (plan, kernels) = unfused_plan_in(&program, &bindings, precision);
    let dims = program
        .dims
        .iter()
        .zip(&bindings.dims)
        .map(|(d, &s)| (d.name.clone(), s))
        .collect();
    let mut art = gpu_artifact(&program, plan, kernels, dims);
    art.source_name = example.into();
    let file = dir.join(example).with_extension("optx");
    artifact::write(&file, &art).unwrap();
    file
}

/// `example` (under examples/regression) solved on the reference device and by the
/// interpreter: the same status, the objective to 1e-10 (relative), `outputs` to 1e-6.
fn check_regression_on_the_device(example: &str, solver: &str, outputs: &[&str]) {
    let dir = temp::TempDir::new("gpu", &format!("run-{example}"));
    let (code, gpu, err) = run_gpu_artifact(example, &dir);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(gpu["backend"], "gpu");
    assert_eq!(gpu["solver"], solver);
    assert_eq!(gpu["status"], "converged", "{gpu}");
    // The same solve with every evaluation on the interpreter.
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/regression")
        .join(example);
    let (code, interp, err) = run_source(&file, "interp");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(gpu["iterations"], interp["iterations"]);
    let number = |v: &serde_json::Value| v.as_f64().unwrap();
    let (f_gpu, f_interp) = (number(&gpu["objective"]), number(&interp["objective"]));
    assert!(
        (f_gpu - f_interp).abs() <= 1e-10 * f_interp.abs(),
        "{f_gpu} vs {f_interp}"
    );
    let flat = |v: &serde_json::Value| -> Vec<f64> {
        match v.as_array() {
            Some(a) => a.iter().map(number).collect(),
            None => vec![number(v)],
        }
    };
    for name in outputs {
        let (g, i) = (flat(&gpu["outputs"][name]), flat(&interp["outputs"][name]));
        assert_close(name, &g, &i, 1e-6);
    }
}

#[test]
fn run_solves_on_the_device_as_the_interpreter_does() {
    check_regression_on_the_device("ridge.opt", "lbfgs", &["w", "b"]);
    // Lasso: proximal gradient, the objective without its L1 term on the device.
    check_regression_on_the_device("lasso.opt", "prox_grad", &["w"]);
}

/// `optc run FILE --backend BACKEND --json -q` (`gpu`: on the reference device): the exit code,
/// stdout JSON and stderr.
fn run_source(file: &Path, backend: &str) -> (Option<i32>, serde_json::Value, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_optc"))
        .args(["run", file.to_str().unwrap(), "--backend", backend])
        .args(["--json", "-q"])
        .env("NO_COLOR", "1")
        .env(optc_runtime::gpu::DEVICE_ENV, "reference")
        .output()
        .unwrap();
    let json = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (
        o.status.code(),
        json,
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

/// Writes `source` (an example of examples/dag with its data path made absolute) as `name`.opt,
/// runs it on the reference device (its artifact computes the functions its solver builds;
/// the solver runs on the host) and on the CPU backend, and checks that both give the same
/// solve by `solver`: the same status and graph, the objective to `tol` (relative), W to
/// `100 · tol`, and, when `tol` ≤ 1e-8, the same iteration count (solvers that stop at a
/// tolerance may stop some iterations apart under other rounding); returns the device's
/// functions' root count. The device's buffers are f64.
fn check_solve_on_the_device(name: &str, source: &str, solver: &str, tol: f64) -> usize {
    check_solve_on_the_device_in(name, source, solver, tol, Precision::F64)
}

/// Writes `source` (an example under examples/) as `name`.opt in a new temporary directory, its
/// data paths made absolute; returns the directory (removed when dropped) and the file.
fn write_example_source(name: &str, source: &str) -> (temp::TempDir, PathBuf) {
    let dir = temp::TempDir::new("gpu", name);
    let data = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/data")
        .canonicalize()
        .unwrap();
    let file = dir.join(format!("{name}.opt"));
    let data = format!("{}/", data.to_str().unwrap());
    std::fs::write(&file, source.replace("../data/", &data)).unwrap();
    (dir, file)
}

/// [`check_solve_on_the_device`] with the device's buffers of `precision`.
fn check_solve_on_the_device_in(
    name: &str,
    source: &str,
    solver: &str,
    tol: f64,
    precision: Precision,
) -> usize {
    let (dir, file) = write_example_source(name, source);
    let (program, bindings) = load(&file).unwrap();
    let functions = optc_runtime::plan::device_functions(&program, &bindings.dims)
        .unwrap()
        .unwrap();

    // Exit 0, or 1 where a shortened schedule ends at its iteration limit: the same on both.
    let (code, gpu, err) = run_gpu_artifact_of(&file, &dir, precision);
    assert!(matches!(code, Some(0 | 1)), "{err}");
    let (cpu_code, cpu, err) = run_source(&file, "cpu");
    assert_eq!(cpu_code, code, "{err}");
    assert_eq!(gpu["backend"], "gpu");
    assert_eq!(gpu["solver"], solver);
    assert_eq!(gpu["status"], cpu["status"]);
    if tol <= 1e-8 {
        assert_eq!(gpu["iterations"], cpu["iterations"]);
    }
    let number = |v: &serde_json::Value| v.as_f64().unwrap();
    let (f_gpu, f_cpu) = (number(&gpu["objective"]), number(&cpu["objective"]));
    assert!(
        (f_gpu - f_cpu).abs() <= tol * f_cpu.abs(),
        "{f_gpu} vs {f_cpu}"
    );
    let violation = |v: &serde_json::Value| number(&v["constraints"][0]["violation"]);
    let (h_gpu, h_cpu) = (violation(&gpu), violation(&cpu));
    assert!(
        (h_gpu - h_cpu).abs() <= tol.max(1e-8),
        "h: {h_gpu} vs {h_cpu}"
    );
    let flat = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap().iter().map(number))
            .collect()
    };
    assert_close(
        "W",
        &flat(&gpu["outputs"]["W"]),
        &flat(&cpu["outputs"]["W"]),
        100.0 * tol,
    );
    assert_eq!(gpu["dag"], cpu["dag"], "the same graph");
    functions.roots.len()
}

/// examples/dag/dagma.opt with short stages and the constraint `acyclic`.
fn short_dagma(acyclic: &str) -> String {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let source = std::fs::read_to_string(examples.join("dag/dagma.opt"))
        .unwrap()
        .replace(
            "warm_iter = 30000, max_iter = 60000, lr = 3e-4, checkpoint = 1000",
            "warm_iter = 600, max_iter = 1200, lr = 3e-3, checkpoint = 200",
        )
        .replace("acyclic: dagma_logdet(W, s = 1) == 0", acyclic);
    assert!(
        source.contains("warm_iter = 600") && source.contains(acyclic),
        "dagma.opt's options changed"
    );
    source
}

#[test]
fn the_central_path_runs_on_the_device_as_on_the_cpu() {
    // The stage merit, its gradient in W, the domain guard and h.
    let dagma = short_dagma("acyclic: dagma_logdet(W, s = 1) == 0");
    assert_eq!(
        check_solve_on_the_device("dagma_short", &dagma, "path", 1e-8),
        4
    );
    // Without a log-determinant the merit has no domain guard (a constant 0 root).
    let poly = short_dagma("acyclic: poly_acyclic(W) == 0");
    assert_eq!(
        check_solve_on_the_device("poly_short", &poly, "path", 1e-8),
        4
    );
    // L-BFGS-B stages: the score leaves out the L1 term, the host splits x = p − q for it. The
    // stages stop at a tolerance: the CPU, interpreter and unsimplified runs take 1 227, 1 160
    // and 1 202 iterations to objectives 5e-5 apart (relative), with the same graph.
    let start = dagma.find("solve with").unwrap();
    let end = dagma.find("output").unwrap();
    let lbfgs = format!(
        "{}solve with path(inner = lbfgs)\n{}",
        &dagma[..start],
        &dagma[end..]
    );
    assert_eq!(
        check_solve_on_the_device("dagma_lbfgs", &lbfgs, "path", 1e-4),
        4
    );
}

/// A solve on the reference device ([`solve_on_the_reference_device`]).
struct DeviceSolve {
    outcome: optc_runtime::plan::Outcome,
    /// Elements moved between host and device.
    moved: usize,
    /// The same with the solver's iterates on the host ([`HostKept`]).
    moved_host_kept: usize,
    /// The same solve on the host.
    host: optc_runtime::solvers::Report,
}

impl DeviceSolve {
    /// What every residency test asserts, printing the counts under `name`: no device error,
    /// the status (when given), the host alone's point to 1e-8; with the iterates on the host
    /// at least `host_per_variable`·n values crossed per iteration (the point and the gradient
    /// per evaluation), on the device fewer than `per_iteration` per iteration plus
    /// `per_variable` per variable. Returns the iterations and n.
    fn assert_resident(
        &self,
        name: &str,
        status: Option<optc_runtime::solvers::Status>,
        host_per_variable: usize,
        limits: (usize, usize),
    ) -> (usize, usize) {
        self.assert_resident_within(name, status, host_per_variable, limits, 1e-8)
    }

    /// [`DeviceSolve::assert_resident`] with the host alone's point to `tol`.
    fn assert_resident_within(
        &self,
        name: &str,
        status: Option<optc_runtime::solvers::Status>,
        host_per_variable: usize,
        (per_iteration, per_variable): (usize, usize),
        tol: f64,
    ) -> (usize, usize) {
        let (outcome, moved, host_kept) = (&self.outcome, self.moved, self.moved_host_kept);
        assert!(outcome.error.is_none(), "{name}: {:?}", outcome.error);
        let (iterations, n) = (outcome.report.iterations, outcome.report.x.len());
        if let Some(status) = status {
            assert_eq!(outcome.report.status, status, "{name}");
        }
        eprintln!(
            "{name}: {moved} values moved in {iterations} iterations of {n} variables \
             ({host_kept} with the iterates on the host)"
        );
        assert!(
            host_kept >= host_per_variable * n * iterations,
            "{name}: {host_kept}"
        );
        assert!(
            moved < per_iteration * iterations + per_variable * n,
            "{name}: {moved} values moved in {iterations} iterations of {n} variables"
        );
        assert_close(name, &outcome.report.x, &self.host.x, tol);
        (iterations, n)
    }
}

/// The executor with the solver's iterates on the host: every evaluation uploads the point and
/// downloads the gradient.
struct HostKept<'a>(&'a mut Executor<ReferenceDevice>);

impl optc_runtime::plan::External for HostKept<'_> {
    fn solver(&self) -> Option<&optc_runtime::plan::DeviceSolver> {
        self.0.solver()
    }
    fn set_path(
        &mut self,
        mu: f64,
        inv_sqrt_s: f64,
    ) -> Result<(), optc_compiler::diag::Diagnostic> {
        optc_runtime::plan::External::set_path(self.0, mu, inv_sqrt_s)
    }
    fn set_multipliers(
        &mut self,
        alpha: &[f64],
        rho: f64,
    ) -> Result<(), optc_compiler::diag::Diagnostic> {
        optc_runtime::plan::External::set_multipliers(self.0, alpha, rho)
    }
    fn eval(
        &mut self,
        x: &[f64],
        g: &mut [f64],
        rest: &mut [f64],
    ) -> Result<f64, optc_compiler::diag::Diagnostic> {
        optc_runtime::plan::External::eval(self.0, x, g, rest)
    }
}

/// Solves `source` (an example under examples/, its data paths made absolute) through
/// `solve_external` on the reference device, with an unfused plan, stopping after `stop_after`
/// iterations: with the iterates on the device where the solver keeps them there, then on the
/// host, and on the host alone.
fn solve_on_the_reference_device(name: &str, source: &str, stop_after: usize) -> DeviceSolve {
    let (_dir, file) = write_example_source(name, source);
    let (program, bindings) = load(&file).unwrap();
    let (plan, kernels) = unfused_plan(&program, &bindings);
    let the_plan = optc_runtime::plan::choose(&program).unwrap();
    let mut stop = |info: &optc_runtime::solvers::IterInfo| match info.iter >= stop_after {
        true => optc_runtime::solvers::Control::Stop,
        false => optc_runtime::solvers::Control::Continue,
    };
    let mut solve = |host_kept: bool| {
        let mut executor =
            Executor::new(ReferenceDevice::new(), plan.clone(), &kernels, &bindings).unwrap();
        let mut model = model::Model::new(program.clone(), bindings.clone()).unwrap();
        let before = executor.device().transferred;
        let outcome = match host_kept {
            true => optc_runtime::plan::solve_external(
                &mut model,
                &the_plan,
                &mut HostKept(&mut executor),
                &mut stop,
            ),
            false => {
                optc_runtime::plan::solve_external(&mut model, &the_plan, &mut executor, &mut stop)
            }
        };
        (outcome.unwrap(), executor.device().transferred - before)
    };
    let (outcome, moved) = solve(false);
    let (_, moved_host_kept) = solve(true);
    let mut model = model::Model::new(program, bindings).unwrap();
    let host = optc_runtime::plan::solve(&mut model, &the_plan, &mut stop).unwrap();
    DeviceSolve {
        outcome,
        moved,
        moved_host_kept,
        host: host.report,
    }
}

/// `optc bench` of `source`'s artifact on the reference device times the path's Adam steps
/// with the iterates on the device.
fn assert_bench_times_adam_steps(name: &str, source: &str) {
    let (dir, file) = write_example_source(name, source);
    let art = write_gpu_artifact_of(&file, &dir, Precision::F64);
    let o = Command::new(env!("CARGO_BIN_EXE_optc"))
        .args(["bench", art.to_str().unwrap(), "--backend", "gpu"])
        .args(["--time-ms", "20", "--json"])
        .env(optc_runtime::gpu::DEVICE_ENV, "reference")
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    let steps = json["backends"]["gpu"]["adam_steps_per_s"].as_f64();
    assert!(steps.is_some_and(|s| s > 0.0), "{json}");
}

/// A smooth fit of W (100 variables, no constraints), its `solve with` line appended.
fn smooth_fit(solve: &str) -> String {
    format!(
        "dims n, d
data X : real[n, d] = load(\"../data/X.npy\")
var W : real[d, d] = 0
minimize 0.5 / n * sumsq(X - X @ W) + 0.1 * sum(sqrt(1 + W .* W))
{solve}
"
    )
}

#[test]
fn lbfgs_keeps_its_vectors_on_the_device() {
    // Per iteration only scalars cross (the value and the dot products and norms of the
    // two-loop recursion and the line search), per solve the start point and the result.
    let source = smooth_fit("solve with lbfgs(tol = 1e-12)");
    // A host loop moves the point and the gradient, 2n values, every evaluation; the iterates
    // are the host's up to the order of the sums in dot products.
    let solve = solve_on_the_reference_device("lbfgs_resident", &source, 25);
    let counts = solve.assert_resident("L-BFGS", Some(Status::Interrupted), 2, (40, 2));
    assert_eq!(counts, (25, 100));
}

#[test]
fn adam_keeps_its_iterates_on_the_device() {
    // The plan computes the objective and Adam's step: per step the value, ‖∇‖∞, c1 and c2
    // cross; per solve the start point, the zeroed moments and the result.
    let source = smooth_fit("solve with adam(lr = 1e-2, max_iter = 5000)");
    for (name, source) in [
        ("adam_resident", source.clone()),
        // Bounds: the device's step projects.
        (
            "adam_bounded",
            source.replace(
                "var W : real[d, d] = 0",
                "var W : real[d, d] >= 0 <= 0.3 = 0",
            ),
        ),
    ] {
        // The better of the last and the best point, as on the host.
        let solve = solve_on_the_reference_device(name, &source, 300);
        let counts = solve.assert_resident(name, Some(Status::Interrupted), 2, (5, 5));
        assert_eq!(counts, (300, 100));
        let (value, host_value) = (solve.outcome.report.value, solve.host.value);
        assert!((value - host_value).abs() <= 1e-10 * host_value.abs());
    }
}

#[test]
fn proximal_gradient_keeps_its_vectors_on_the_device() {
    // Lasso: the plan computes the prox step of the L1 term (soft-thresholding by τ·λ).
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let lasso = std::fs::read_to_string(examples.join("regression/lasso.opt")).unwrap();
    let (_dir, file) = write_example_source("lasso_prox", &lasso);
    let (program, bindings) = load(&file).unwrap();
    let (plan, kernels) = unfused_plan(&program, &bindings);
    assert!(matches!(
        plan.staged.solver,
        Some(optc_runtime::plan::DeviceSolver::ProxGrad { prox: Some(_) })
    ));
    let mut exec = Executor::new(ReferenceDevice::new(), plan, &kernels, &bindings).unwrap();
    // The step against the host's formula at points on both sides of the threshold.
    let p = 20;
    let (lambda, tau) = (0.1, 0.7);
    let v: Vec<f64> = (0..p).map(|i| (i as f64 - 9.5) * 0.02).collect();
    exec.allocate_vectors(2).unwrap();
    exec.write_vector(0, &v).unwrap();
    let penalty = exec.prox_vector(0, tau, 1).unwrap();
    let mut got = vec![0.0; p];
    exec.read_vector(1, &mut got).unwrap();
    let expected: Vec<f64> = v
        .iter()
        .map(|v| v.signum() * (v.abs() - tau * lambda).max(0.0))
        .collect();
    assert!(expected.contains(&0.0) && expected.iter().any(|&x| x != 0.0));
    assert_close("prox", &got, &expected, 1e-15);
    let l1: f64 = expected.iter().map(|x| lambda * x.abs()).sum();
    assert!((penalty - l1).abs() <= 1e-15, "{penalty} vs {l1}");
    // The solve: per iteration only scalars cross (the smooth part at y and at the trial point,
    // r there, two dot products and the step's ‖·‖∞), per solve the start point and the result.
    // A host loop moves the point and the gradient, 2n values, twice an iteration. The same
    // iterations; FISTA's momentum carries the rounding of sums taken in another order to about
    // 1e-9 in w.
    let solve = solve_on_the_reference_device("lasso_resident", &lasso, 5000);
    let counts = solve.assert_resident("FISTA", Some(Status::Converged), 4, (10, 4));
    assert_eq!(counts, (solve.host.iterations, p));
    // With bounds the step also clamps (their exact prox with the L1 term's).
    let bounded = lasso.replace("var w : real[p] = 0", "var w : real[p] >= 0 <= 0.5 = 0");
    assert_ne!(bounded, lasso);
    let DeviceSolve { outcome, host, .. } =
        solve_on_the_reference_device("lasso_bounded", &bounded, 5000);
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    assert_eq!(outcome.report.iterations, host.iterations);
    let w = &outcome.report.x;
    assert!(w.contains(&0.0) && w.contains(&0.5), "{w:?}");
    assert_close("w (bounded)", w, &host.x, 1e-8);
    // From x = 0, outside x ≥ 1, whose objective (0) is below every feasible one: the first
    // point is the start's prox, on the device as on the host, never the start itself.
    let outside = "var x : real[4] >= 1 <= 2 = 0\nminimize sumsq(x) + 0.1 * norm1(x)\nsolve with fista\noutput x\n";
    let DeviceSolve { outcome, host, .. } =
        solve_on_the_reference_device("start_outside", outside, 5000);
    assert_close("x (start outside)", &outcome.report.x, &[1.0; 4], 1e-12);
    assert_close("x (start outside, host)", &host.x, &[1.0; 4], 1e-12);
}

/// The graphical lasso (examples/covariance): the device's prox step symmetrizes Θ before
/// soft-thresholding its off-diagonal entries (weights |1 − I|), its merit's logdet comes from
/// an LU without pivoting (outside the positive definite matrices a trial point is rejected, as
/// on the host); the same iterations and Θ as the host alone, exactly symmetric, and per
/// iteration only scalars cross.
#[test]
fn the_graphical_lasso_runs_on_the_device_with_its_symmetric_prox() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let source = std::fs::read_to_string(examples.join("covariance/graphical_lasso.opt")).unwrap();
    let (_dir, file) = write_example_source("glasso", &source);
    let (program, bindings) = load(&file).unwrap();
    let (plan, kernels) = unfused_plan(&program, &bindings);
    assert!(matches!(
        plan.staged.solver,
        Some(optc_runtime::plan::DeviceSolver::ProxGrad { prox: Some(_) })
    ));
    check_against_interpreter("glasso", &program, &bindings, plan, &kernels);
    #[cfg(feature = "mlir")]
    for precision in [Precision::F64, Precision::F32] {
        let (plan, kernels) = build::gpu_plan(&program, &bindings.dims, precision).unwrap();
        check_against_interpreter("glasso", &program, &bindings, plan, &kernels);
    }
    // The same iterations; rounding in another order (the LU, the sums) moves Θ by up to 3e-7
    // (its entries reach 3; the solve stops at a gradient mapping of 1e-8).
    let solve = solve_on_the_reference_device("glasso", &source, 5000);
    let (iterations, n) =
        solve.assert_resident_within("glasso", Some(Status::Converged), 4, (10, 4), 1e-6);
    assert_eq!(iterations, solve.host.iterations);
    let p = (n as f64).sqrt() as usize;
    let theta = ndarray::Array2::from_shape_vec((p, p), solve.outcome.report.x.clone()).unwrap();
    assert_eq!(theta, theta.t(), "exactly symmetric");
    assert!(
        theta.iter().filter(|v| **v == 0.0).count() > p * p / 2,
        "sparse"
    );
}

/// Proximal gradient with group norms keeps its vectors on the device too: the plan's prox step
/// soft-thresholds, then shrinks the rows (or the columns), as the host's prox does in turn. The
/// same iterations and W as the host alone (whose shrinkage is `prox::group_shrink`), whole rows
/// (columns) at zero, and per iteration only scalars cross.
#[test]
fn group_norm_prox_steps_run_on_the_device() {
    let rows = "dims n, d
data X : real[n, d] = load(\"../data/X.npy\")
param lambda = 1.5
param mu = 0.01
var W : real[d, d] = 0
minimize 0.5 / n * sumsq(X - X @ (W .* (1 - eye(d)))) + lambda * group_lasso(W) + mu * norm1(W)
solve with fista(max_iter = 20000, tol = 1e-6)
output W
";
    // Columns need a larger weight to vanish here (2 of 10 at 5).
    let columns = rows
        .replace("group_lasso(W)", "sum(sqrt(sum(W .* W, axis = 0)))")
        .replace("lambda = 1.5", "lambda = 5");
    for (name, source, axis) in [
        ("group_rows", rows.to_string(), 1),
        ("group_columns", columns, 0),
    ] {
        // The step against the interpreter, without fusion and (with MLIR) in the kernels MLIR
        // makes, in both precisions.
        let (_dir, file) = write_example_source(name, &source);
        let (program, bindings) = load(&file).unwrap();
        let (plan, kernels) = unfused_plan(&program, &bindings);
        check_against_interpreter(name, &program, &bindings, plan, &kernels);
        #[cfg(feature = "mlir")]
        for precision in [Precision::F64, Precision::F32] {
            let (plan, kernels) = build::gpu_plan(&program, &bindings.dims, precision).unwrap();
            check_against_interpreter(name, &program, &bindings, plan, &kernels);
        }
        let solve = solve_on_the_reference_device(name, &source, 20000);
        let (iterations, _) = solve.assert_resident(name, Some(Status::Converged), 4, (10, 4));
        assert_eq!(iterations, solve.host.iterations, "{name}");
        let w = ndarray::Array2::from_shape_vec((10, 10), solve.outcome.report.x.clone()).unwrap();
        let zero_lines = w
            .axis_iter(ndarray::Axis(1 - axis))
            .filter(|line| line.iter().all(|&v| v == 0.0))
            .count();
        assert!(
            (1..10).contains(&zero_lines),
            "{name}: {zero_lines} zero lines in {w}"
        );
    }
}

#[test]
fn the_paths_adam_iterates_stay_on_the_device() {
    // DAGMA's plan computes Adam's step: per step only scalars cross (the merit, the guard, h,
    // ‖∇‖∞, c1 and c2, and the log-determinant the host computes from the LU's diagonal: 8 per
    // step here), and per stage the start point, the zeroed moments and the end point.
    let dagma = short_dagma("acyclic: dagma_logdet(W, s = 1) == 0");
    assert_bench_times_adam_steps("dagma_bench", &dagma);
    // A host loop moves the point and the gradient, 2n values, every step. Stopped mid-stage,
    // the best point of the stage is returned, as on the host.
    let solve = solve_on_the_reference_device("dagma_resident", &dagma, 1000);
    let (steps, _) = solve.assert_resident("DAGMA", Some(Status::Interrupted), 2, (9, 20));
    assert!(steps >= 1000, "{steps} steps");
    // CoLiDE: each step also evaluates at the new point for the noise scale's slopes, and
    // moves σ and its slopes.
    let dag = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/dag");
    let ev = std::fs::read_to_string(dag.join("colide.opt")).unwrap();
    let solve = solve_on_the_reference_device("colide_resident", &ev, 300);
    solve.assert_resident("CoLiDE", None, 2, (32, 20));
}

#[test]
fn the_central_path_runs_on_an_f32_device() {
    // The stage merit, its gradient and Adam's iterates (point, moments, best point) in single
    // precision on the device, the path's logic on the host: the same graph, the objective to
    // 1e-4 (relative).
    let dagma = short_dagma("acyclic: dagma_logdet(W, s = 1) == 0");
    let roots = check_solve_on_the_device_in("dagma_f32", &dagma, "path", 1e-4, Precision::F32);
    assert_eq!(roots, 4);
}

#[test]
fn colide_runs_on_the_device_as_on_the_cpu() {
    // The stage merit, its gradient in W and σ, the guard, h, then the slopes of the objective
    // in σ at σ and 2σ (the closed-form σ update after each Adam step, one more evaluation).
    let dag = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/dag");
    let ev = std::fs::read_to_string(dag.join("colide.opt")).unwrap();
    assert_eq!(check_solve_on_the_device("colide", &ev, "colide", 1e-8), 7);
    // CoLiDE-NV: one σ per node.
    let nv = std::fs::read_to_string(dag.join("colide_nv.opt")).unwrap();
    assert_eq!(
        check_solve_on_the_device("colide_nv", &nv, "colide", 1e-8),
        7
    );
}

#[test]
fn the_augmented_lagrangian_runs_on_the_device_as_on_the_cpu() {
    // NOTEARS: the least squares without its L1 term and its gradient, then h and its gradient
    // (expm and its Fréchet derivative as host steps); the L1 split is the host's. The inner
    // L-BFGS-B stops at a projected gradient of 1e-5, where rounding moves the final objective
    // by ~1e-5 relative (the CPU and interpreter backends differ by 8e-6 on this example).
    let notears = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/dag/notears.opt");
    let source = std::fs::read_to_string(notears).unwrap();
    assert_eq!(
        check_solve_on_the_device("notears", &source, "auglag", 1e-4),
        4
    );
}

#[test]
fn inequalities_and_constraints_under_for_run_on_the_device_as_on_the_cpu() {
    // The merit with an L1 term (split on the host), three row-sum equalities (one batched
    // instance) and two matrix inequalities; its roots: the merit, its gradient, the objective
    // and three constraint instances.
    let source = "var W : real[3, 3] = 0.3\nlet C = [[0.9, 0.2, -0.3], [0.1, 0.8, 0.5], [0.4, 0.4, 0.4]]\nminimize sumsq(W - C) + 0.05 * norm1(W)\nsubject to\n  for i in 0..3: sum(W[i, :]) == 1\n  W <= 0.6\n  W >= -0.1\noutput W\n";
    assert_eq!(
        check_solve_on_the_device("inequalities", source, "auglag", 1e-6),
        6
    );
}

#[test]
fn the_stage_merit_on_the_device_matches_the_interpreter_at_each_parameter() {
    // DAGMA's stage merit at (μ, s) on the reference device against the interpreter: value,
    // gradient, guard and h, after the parameters change (their setup values are recomputed).
    let (program, bindings) =
        load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/dag/dagma.opt")).unwrap();
    let (plan, kernels) = unfused_plan(&program, &bindings);
    assert!(matches!(
        plan.staged.solver,
        Some(optc_runtime::plan::DeviceSolver::Path { .. })
    ));
    let mut executor = Executor::new(ReferenceDevice::new(), plan, &kernels, &bindings).unwrap();
    let path = optc_runtime::plan::device_functions(&program, &bindings.dims)
        .unwrap()
        .unwrap();
    let w = program.variables().next().unwrap();
    let d = bindings.inputs[w.0 as usize].as_ref().unwrap().shape()[0];
    let mut rng = 7u64;
    let inside: Vec<f64> = (0..d * d)
        .map(|_| {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((rng >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 0.2
        })
        .collect();
    // Two 2-cycles of weight 1.2: det(I − W∘W) = (1 − 1.2⁴)² > 0, but its leading 2 × 2 minor
    // 1 − 1.2⁴ is negative (outside DAGMA's M-matrix domain): both refuse it with E0408.
    let mut outside = vec![0.0; d * d];
    for (i, j) in [(0, 1), (1, 0), (2, 3), (3, 2)] {
        outside[i * d + j] = 1.2;
    }
    for (mu, s) in [(1.0, 1.0), (0.1, 0.9), (1e-3, 0.7)] {
        executor.set_path(mu, 1.0 / f64::sqrt(s)).unwrap();
        let what = format!("μ = {mu}, s = {s}");
        let bound = |x: &[f64]| {
            let mut b = bindings.clone();
            b.inputs[w.0 as usize] = Some(ArrayD::from_shape_vec(vec![d, d], x.to_vec()).unwrap());
            b.inputs.push(Some(ArrayD::from_elem(vec![], mu)));
            b.inputs
                .push(Some(ArrayD::from_elem(vec![], 1.0 / f64::sqrt(s))));
            b
        };
        let mut grad = vec![0.0; inside.len()];
        let value = executor.evaluate(&inside, &mut grad).unwrap();
        let mut extra = [0.0; 2];
        executor.rest_roots(&mut extra).unwrap();
        let expected = interp::eval(
            &path.program,
            &bound(&inside),
            &path.roots,
            &mut NoSubproblems,
        )
        .unwrap();
        let scalar = |k: usize| expected[k].iter().next().copied().unwrap();
        assert_close(&what, &[value], &[scalar(0)], 1e-12);
        let g: Vec<f64> = expected[1].iter().copied().collect();
        assert_close(&what, &grad, &g, 1e-12);
        assert_close(&what, &extra, &[scalar(2), scalar(3)], 1e-12);
        assert!(extra[0] >= 0.0, "{what}: guard {}", extra[0]);
        let on_device = executor.evaluate(&outside, &mut grad).unwrap_err();
        let interpreted = interp::eval(
            &path.program,
            &bound(&outside),
            &path.roots,
            &mut NoSubproblems,
        )
        .unwrap_err();
        // (Of the device's program and of the interpreted one: the nodes differ.)
        assert!(
            matches!(
                (&on_device, &interpreted),
                (
                    ExecError::Eval(EvalError::LogdetDomain { minor: 2, .. }),
                    EvalError::LogdetDomain { minor: 2, .. }
                )
            ),
            "{what}: {on_device:?} vs {interpreted:?}"
        );
    }
}

#[test]
fn the_transport_dual_of_a_gpu_artifact_runs_on_the_host() {
    // `dual` evaluates none of the model's functions: `--backend gpu` solves as the CPU does.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ot/sparse_ot.opt");
    let dir = temp::TempDir::new("gpu", "run-sparse_ot");
    let (code, gpu, err) = run_gpu_artifact_of(&path, &dir, Precision::F64);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        (&gpu["solver"], &gpu["backend"]),
        (&"dual".into(), &"gpu".into())
    );
    let (code, cpu, err) = run_source(&path, "cpu");
    assert_eq!(code, Some(0), "{err}");
    for field in ["objective", "dual_bound", "iterations"] {
        assert_eq!(gpu[field], cpu[field], "{field}");
    }
}
