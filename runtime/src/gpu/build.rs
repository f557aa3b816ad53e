//! Builds the [`GpuPlan`] of a `gpu` artifact at `optc build` time: the objective and gradient
//! are differentiated, simplified and staged as the CPU backend does it ([`stage`]); with the
//! `mlir` feature the per-iteration function is lowered through MLIR (`gpu_plan`), whose memory
//! plan, kernel launches and PTX become the artifact's step list ([`assemble`]).

use super::plan::{GpuPlan, Launch, Memory, Precision, Staged, Step, Storage};
use crate::plan;
use optc_compiler::derive;
use optc_compiler::diag::Diagnostic;
use optc_compiler::ir::{NodeId, Op, Program, UnaryOp};
use optc_compiler::simplify::{self, cost::CostModel};

/// Differentiates, simplifies and stages what a device computes for `program` at the dim sizes
/// `dims`, as the CPU backend does: the functions of [`plan::device_functions`] for a model
/// whose solver builds its own (the central path, the augmented Lagrangian, proximal gradient),
/// else the merit `optc bench` times (the objective plus its scalar constraint functions,
/// [`crate::bench::merit`]) and its gradient. The per-iteration function is the program cut at
/// the setup values.
///
/// A planning error keeps its code (e.g. E0361 for a solver this version lacks); the rest is
/// E0390, a function the GPU backend cannot compile.
pub fn stage(program: &Program, dims: &[u64]) -> Result<Staged, Diagnostic> {
    let refused = |e: String| Diagnostic::error(crate::cpu::NOT_COMPILABLE, e);
    let functions = plan::device_functions(program, dims)?;
    let (derived, roots, solver) = match functions {
        Some(f) => {
            let roots = f.roots.into_iter().chain(f.step_roots).collect();
            (f.program, roots, Some(f.solver))
        }
        None => {
            let d = merit_gradient(program).map_err(refused)?;
            let roots = d.roots();
            (d.program, roots, None)
        }
    };
    let simplified = simplify::simplify(&derived, &roots, &CostModel::new(dims.to_vec()))
        .map_err(|e| refused(e.to_string()))?;
    let (derived, roots) = (simplified.program, simplified.roots);
    let given = handoff(&derived, &roots);
    let (function, function_roots) = derived
        .cut(&roots, &given)
        .map_err(|e| refused(e.to_string()))?;
    let (function, function_roots, expm_norms) =
        with_expm_norms(&function, &function_roots).map_err(refused)?;
    Ok(Staged {
        dims: dims.to_vec(),
        derived,
        roots,
        given,
        function,
        function_roots,
        expm_norms,
        solver,
    })
}

/// `function` rebuilt with, before each matrix exponential exp(A), the column sums of |A|,
/// which its device step reads for the scaling ([`Step::Expm`]): those are roots after
/// `roots`. Returns the function, its roots, and how many were added.
fn with_expm_norms(
    function: &Program,
    roots: &[NodeId],
) -> Result<(Program, Vec<NodeId>, usize), String> {
    let mut out = function.inputs_only();
    let mut mapped = Vec::with_capacity(function.graph.len());
    let mut norms = Vec::new();
    for (_, node) in function.graph.nodes() {
        let new = match node.op {
            Op::Input(k) => out.input_nodes[k.0 as usize],
            Op::Argmin(_) => return Err("an argmin in a device function".into()),
            ref op => {
                let args: Vec<NodeId> = node.args.iter().map(|a| mapped[a.0 as usize]).collect();
                if *op == Op::Expm {
                    let g = &mut out.graph;
                    let abs = g
                        .add(Op::Unary(UnaryOp::Abs), args.clone())
                        .map_err(|e| e.to_string())?;
                    let sums = g
                        .add(Op::Sum { axis: Some(0) }, vec![abs])
                        .map_err(|e| e.to_string())?;
                    if !norms.contains(&sums) {
                        norms.push(sums);
                    }
                }
                out.graph.add(op.clone(), args).map_err(|e| e.to_string())?
            }
        };
        mapped.push(new);
    }
    let count = norms.len();
    let roots = roots
        .iter()
        .map(|r| mapped[r.0 as usize])
        .chain(norms)
        .collect();
    Ok((out, roots, count))
}

/// The root holding the column sums of |a| for an exponential of `a` ([`with_expm_norms`]).
fn norms_root(staged: &Staged, a: NodeId) -> Result<u32, String> {
    let roots = &staged.function_roots;
    let graph = &staged.function.graph;
    let first = roots.len() - staged.expm_norms.min(roots.len());
    (first..roots.len())
        .find(|&k| {
            let sums = graph.node(roots[k]);
            sums.op == Op::Sum { axis: Some(0) }
                && graph.node(sums.args[0]).op == Op::Unary(UnaryOp::Abs)
                && graph.node(sums.args[0]).args[0] == a
        })
        .map(|k| k as u32)
        .ok_or_else(|| "a matrix exponential without its column sums".into())
}

/// A copy of `program` with the benchmarked merit and its gradient (unsimplified).
pub fn merit_gradient(program: &Program) -> Result<derive::Derived, String> {
    let mut program = program.clone();
    let objective = crate::bench::merit(&mut program).ok_or("the model has no objective")?;
    let vars: Vec<_> = program.variables().collect();
    let grads = optc_compiler::autodiff::gradient(&mut program, objective, &vars)
        .map_err(|e| e.to_string())?;
    Ok(derive::Derived {
        program,
        objective,
        gradient: vars.into_iter().zip(grads).collect(),
    })
}

/// A memory plan of a staged function: where each node lives, which nodes are computed in
/// which order, which roots are copies, and the kernel launches of its pointwise nodes.
pub struct Layout {
    pub shapes: Vec<Vec<usize>>,
    pub storage: Vec<Storage>,
    pub scratch_len: usize,
    /// Stored nodes computed by the function, in order.
    pub schedule: Vec<NodeId>,
    /// `(root, node)`: roots copied from where another node lives.
    pub copies: Vec<(u32, NodeId)>,
    /// The kernel launches, in schedule order (each names the node it computes).
    pub launches: Vec<Launch>,
}

/// The plan of a staged function under a layout, on buffers of `precision`: its schedule becomes
/// steps (the launches, library calls for matmul, sums of stored values, logdet, inv and solve,
/// the exponential's steps, host steps for the rest), then the copies.
pub fn assemble(staged: Staged, layout: Layout, precision: Precision) -> Result<GpuPlan, String> {
    let function = &staged.function;
    let shape = |id: NodeId| &layout.shapes[id.0 as usize];
    let mut launches = layout.launches.into_iter().peekable();
    let mut steps = Vec::new();
    for &node in &layout.schedule {
        let op = &function.graph.node(node).op;
        let args = &function.graph.node(node).args;
        let square = args
            .first()
            .and_then(|&a| shape(a).first().copied())
            .unwrap_or(0);
        let step = match op {
            _ if launches.peek().is_some_and(|l| l.node == node) => {
                Step::Launch(launches.next().expect("peeked"))
            }
            Op::MatMul => {
                let (sa, sb) = (shape(args[0]), shape(args[1]));
                let (m, k) = match sa[..] {
                    [k] => (1, k),
                    [m, k] => (m, k),
                    _ => return Err("matmul operand of rank > 2".into()),
                };
                Step::Gemm {
                    node,
                    a: args[0],
                    b: args[1],
                    m,
                    k,
                    n: sb.get(1).copied().unwrap_or(1),
                }
            }
            Op::Sum { axis: None } | Op::SumTo(_)
                if shape(node).is_empty()
                    && Memory::of_storage(layout.storage[args[0].0 as usize]).is_some() =>
            {
                Step::Sum {
                    node,
                    a: args[0],
                    len: shape(args[0]).iter().product(),
                }
            }
            Op::LogDet => Step::LogDet {
                node,
                a: args[0],
                n: square,
            },
            Op::Inv => Step::Inv {
                node,
                a: args[0],
                n: square,
            },
            Op::Expm => Step::Expm {
                node,
                a: args[0],
                n: square,
                norms: norms_root(&staged, args[0])?,
            },
            Op::Solve => Step::Solve {
                node,
                a: args[0],
                b: args[1],
                n: square,
                m: shape(args[1]).get(1).copied().unwrap_or(1),
            },
            _ => Step::Host { node },
        };
        steps.push(step);
    }
    if launches.next().is_some() {
        return Err("more kernel launches than pointwise nodes".into());
    }
    steps.extend(
        layout
            .copies
            .iter()
            .map(|&(output, node)| Step::Copy { node, output }),
    );
    let plan = GpuPlan {
        staged,
        precision,
        shapes: layout.shapes,
        storage: layout.storage,
        scratch_len: layout.scratch_len,
        steps,
    };
    plan.check()?;
    Ok(plan)
}

/// The GPU plan of `program`'s objective and gradient at the dim sizes `dims` (one per dim),
/// lowered through MLIR to kernels over `precision` buffers, and the PTX of its kernels (module
/// name, text): [`stage`], then [`lower`].
#[cfg(feature = "mlir")]
pub fn gpu_plan(
    program: &Program,
    dims: &[u64],
    precision: Precision,
) -> Result<(GpuPlan, Vec<(String, String)>), String> {
    lower(stage(program, dims).map_err(|d| d.message)?, precision)
}

/// Lowers a staged function through MLIR to kernels over `precision` buffers: its plan and the
/// PTX of its kernels (module name, text).
#[cfg(feature = "mlir")]
pub fn lower(
    staged: Staged,
    precision: Precision,
) -> Result<(GpuPlan, Vec<(String, String)>), String> {
    let (function, roots, dims) = (&staged.function, &staged.function_roots, &staged.dims);
    let lowered =
        optc_mlir::gpu_function(function, roots, dims, precision).map_err(|e| e.to_string())?;
    let plan = lowered.plan;
    let layout = Layout {
        shapes: plan.shapes,
        storage: plan.storage,
        scratch_len: plan.scratch_len,
        schedule: plan.schedule,
        copies: plan.copies,
        launches: lowered.launches,
    };
    Ok((assemble(staged, layout, precision)?, lowered.kernels))
}

/// The setup values the per-iteration nodes of `roots` read, except inputs (passed anyway) and
/// constants (free to recompute): the same handoff as the CPU backend's.
fn handoff(program: &Program, roots: &[NodeId]) -> Vec<NodeId> {
    simplify::stage(program, roots)
        .handoff
        .into_iter()
        .filter(|&id| {
            !matches!(
                program.graph.node(id).op,
                Op::Input(_) | Op::Const(_) | Op::DimSize(_) | Op::Eye(_)
            )
        })
        .collect()
}
