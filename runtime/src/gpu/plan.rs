//! The staged GPU plan a `gpu` artifact carries, so that an optc without MLIR can run it: the
//! simplified value+gradient program, which of its values are computed once per solve (on the
//! host), and the per-iteration function as an ordered list of device steps (kernel launches with
//! their argument lists, library calls, host steps, copies) over planned buffers.
//!
//! The per-iteration function has one device buffer per input (the program's inputs, then one
//! per setup value it reads), one per root (the merit, the gradient of each variable, the
//! solver's other values, then those of Adam's step, [`crate::plan::AdamStep`]) and one scratch
//! buffer; a node's [`Storage`] says where its value lives.

pub use crate::plan::DeviceSolver;
use optc_compiler::ir::{NodeId, Program};
use serde::{Deserialize, Serialize};

/// Where the value of a node of the per-iteration function lives (the shared planner's notion),
/// and the kernel launches of the MLIR backend.
pub use optc_compiler::fusion::Storage;
pub use optc_compiler::launch::{Launch, LaunchOperand, Memory, Precision};

/// One step of the per-iteration function, in execution order. Operands name stored nodes (or,
/// of a matrix product, [`Storage::TransposeFlag`] nodes whose argument is stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    Launch(Launch),
    /// `node = a · b`, `a` of `m × k`, `b` of `k × n` (a vector operand is `1 × k` or `k × 1`).
    Gemm {
        node: NodeId,
        a: NodeId,
        b: NodeId,
        m: usize,
        k: usize,
        n: usize,
    },
    /// `node = log det a` (`a` of `n × n`, positive determinant).
    LogDet {
        node: NodeId,
        a: NodeId,
        n: usize,
    },
    /// `node` = the sum of the `len` elements of `a`.
    Sum {
        node: NodeId,
        a: NodeId,
        len: usize,
    },
    /// `node = a⁻¹`.
    Inv {
        node: NodeId,
        a: NodeId,
        n: usize,
    },
    /// `node = a⁻¹ b`, `b` of `n × m` (or a vector, `m = 1`).
    Solve {
        node: NodeId,
        a: NodeId,
        b: NodeId,
        n: usize,
        m: usize,
    },
    /// `node = exp(a)` (`a` of `n × n`) by the host's algorithm
    /// ([`crate::linalg::scaling_and_squaring`]) in matrix products, one LU solve and vector
    /// operations on the device; root `norms` holds the column sums of |a| the function
    /// computes before it (for the scaling).
    Expm {
        node: NodeId,
        a: NodeId,
        n: usize,
        norms: u32,
    },
    /// Computed on the host from the stored values it reads (reductions and the matrix kernels
    /// without a device form: the values travel device → host → device).
    Host {
        node: NodeId,
    },
    /// Copies the stored value of `node` into root `output`'s buffer.
    Copy {
        node: NodeId,
        output: u32,
    },
}

/// What a device computes, simplified and staged at fixed dims: the part of a [`GpuPlan`] that
/// needs no MLIR ([`super::build::stage`]). That is the merit of the program (the objective plus
/// its scalar constraint functions, [`crate::bench::merit`]) and its gradient or, for a model
/// whose solver builds its own functions (the central path, the augmented Lagrangian, proximal
/// gradient), those ([`crate::plan::device_functions`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Staged {
    /// Sizes of the program's dims (by `DimId`) the kernels and buffers were planned for.
    pub dims: Vec<u64>,
    /// The simplified merit and gradient program (its inputs are the artifact program's).
    pub derived: Program,
    /// The merit, then the gradient of each variable (in `Program::variables` order), then the
    /// solver's other values ([`crate::plan::DeviceFunctions::roots`]), then the roots of Adam's
    /// step if the solver's plan has one ([`crate::plan::DeviceFunctions::step_roots`]).
    pub roots: Vec<NodeId>,
    /// Setup values of `derived` the per-iteration function reads (computed once per solve).
    pub given: Vec<NodeId>,
    /// The per-iteration function: `derived` cut at `given` (inputs: `derived`'s, then one per
    /// given value); its roots are `function_roots`: those of `roots`, then `expm_norms` more,
    /// the column sums of |A| of each matrix exponential's argument A, each computed before
    /// its exponential ([`Step::Expm`]).
    pub function: Program,
    pub function_roots: Vec<NodeId>,
    #[serde(default)]
    pub expm_norms: usize,
    /// The solver whose functions these are (`None`: the merit `optc bench` times).
    #[serde(default)]
    pub solver: Option<DeviceSolver>,
}

/// What a `gpu` artifact holds to evaluate the merit `optc bench` times and its gradient on a
/// device: the staged program and the per-iteration function's memory plan and steps.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GpuPlan {
    /// (Flattened: the artifact's JSON keeps one object of fields.)
    #[serde(flatten)]
    pub staged: Staged,
    /// The element type of the device buffers and kernels.
    pub precision: Precision,
    /// Concrete shape of each node of `function` (empty when unused).
    pub shapes: Vec<Vec<usize>>,
    pub storage: Vec<Storage>,
    /// Elements of the scratch buffer.
    pub scratch_len: usize,
    pub steps: Vec<Step>,
}

impl GpuPlan {
    pub fn numel(&self, id: NodeId) -> usize {
        self.shapes[id.0 as usize].iter().product()
    }

    pub fn storage(&self, id: NodeId) -> Storage {
        self.storage[id.0 as usize]
    }

    /// The buffer and element offset of a stored node.
    pub fn location(&self, id: NodeId) -> Option<(Memory, usize)> {
        Memory::of_storage(self.storage(id))
    }

    /// Element count of each function input's buffer (its declared shape at `dims`).
    pub fn input_lens(&self) -> Vec<usize> {
        self.staged
            .function
            .inputs
            .iter()
            .map(|i| {
                i.shape
                    .iter()
                    .map(|d| usize::try_from(d.eval(&self.staged.dims)).unwrap_or(0))
                    .product()
            })
            .collect()
    }

    /// Element count of each root's buffer.
    pub fn output_lens(&self) -> Vec<usize> {
        self.staged
            .function_roots
            .iter()
            .map(|&r| self.numel(r))
            .collect()
    }

    /// The stored nodes whose values the computation of `node` reads: its arguments, through
    /// fused nodes and transpose flags.
    pub fn stored_leaves(&self, node: NodeId) -> Vec<NodeId> {
        let mut leaves = Vec::new();
        let mut work: Vec<NodeId> = self.staged.function.graph.node(node).args.clone();
        while let Some(id) = work.pop() {
            match self.storage(id) {
                Storage::Fused | Storage::TransposeFlag | Storage::Unused => {
                    work.extend(self.staged.function.graph.node(id).args.iter().copied())
                }
                _ => {
                    if !leaves.contains(&id) {
                        leaves.push(id)
                    }
                }
            }
        }
        leaves
    }

    /// Checks that the plan holds together (indices in range, stored operands), so that running
    /// it cannot index out of bounds: a plan from a damaged artifact is refused here.
    pub fn check(&self) -> Result<(), String> {
        let nodes = self.staged.function.graph.len();
        let node_ok = |id: NodeId| (id.0 as usize) < nodes;
        if self.shapes.len() != nodes || self.storage.len() != nodes {
            return Err("shapes or storage do not cover the function's nodes".into());
        }
        if self.staged.dims.len() != self.staged.function.dims.len() {
            return Err("dims do not match the function's dims".into());
        }
        let inputs = self.staged.function.inputs.len() as u32;
        let outputs = self.staged.function_roots.len() as u32;
        for (i, s) in self.storage.iter().enumerate() {
            let fits = match *s {
                Storage::Input(k) => k < inputs,
                Storage::Output(k) => k < outputs,
                Storage::Scratch(at) => at + self.numel(NodeId(i as u32)) <= self.scratch_len,
                _ => true,
            };
            if !fits {
                return Err(format!("node %{i} is stored outside its buffers"));
            }
        }
        if !self.staged.function_roots.iter().all(|&r| node_ok(r))
            || !self
                .staged
                .roots
                .iter()
                .all(|&r| (r.0 as usize) < self.staged.derived.graph.len())
            || !self
                .staged
                .given
                .iter()
                .all(|&r| (r.0 as usize) < self.staged.derived.graph.len())
            || self.staged.function_roots.len() != self.staged.roots.len() + self.staged.expm_norms
            || self.staged.function.inputs.len()
                != self.staged.derived.inputs.len() + self.staged.given.len()
        {
            return Err("roots or setup values are not nodes of their programs".into());
        }
        let stored = |id: NodeId| node_ok(id) && self.location(id).is_some();
        let operand = |id: NodeId| {
            node_ok(id)
                && (stored(id)
                    || (self.storage(id) == Storage::TransposeFlag
                        && self
                            .staged
                            .function
                            .graph
                            .node(id)
                            .args
                            .first()
                            .is_some_and(|&a| stored(a))))
        };
        for step in &self.steps {
            let ok = match step {
                Step::Launch(l) => {
                    stored(l.node)
                        && l.operands.iter().all(|o| match o {
                            LaunchOperand::Memref(Memory::Input(k)) => *k < inputs,
                            LaunchOperand::Memref(Memory::Output(k)) => *k < outputs,
                            _ => true,
                        })
                }
                Step::Gemm { node, a, b, .. } => stored(*node) && operand(*a) && operand(*b),
                Step::LogDet { node, a, .. }
                | Step::Inv { node, a, .. }
                | Step::Sum { node, a, .. } => stored(*node) && stored(*a),
                Step::Solve { node, a, b, .. } => stored(*node) && stored(*a) && stored(*b),
                Step::Expm { node, a, n, norms } => {
                    let square = |id: NodeId| stored(id) && self.numel(id) == n * n;
                    square(*node)
                        && square(*a)
                        && self
                            .staged
                            .function_roots
                            .get(*norms as usize)
                            .is_some_and(|&r| self.numel(r) == *n)
                }
                Step::Host { node } => stored(*node),
                Step::Copy { node, output } => stored(*node) && *output < outputs,
            };
            if !ok {
                return Err(format!("step {step:?} names a node that is not stored"));
            }
        }
        Ok(())
    }
}
