//! E-graph simplification with staging.
//!
//! [`simplify`] loads the nodes a program needs into an egg e-graph (language: [`lang`],
//! analysis: shapes, stages, scalar constants in [`analysis`]), saturates it with the rules of
//! [`rules`] under explicit iteration and node limits (no time limit, so results are
//! deterministic), extracts the cheapest form of every root under the staged [`CostModel`]
//! (per-iteration work first, setup work as a tie-breaker), and rebuilds a new, verified-shape
//! [`Program`] through `Graph::add`. [`stage`] then splits a program's nodes into per-solve setup
//! and per-iteration work; [`flops`] counts both.

pub mod analysis;
pub mod cost;
mod extract;
pub mod lang;
pub mod rules;
mod staging;

pub use cost::{flops, CostModel, OpCost};
pub use staging::{stage, StagedPlan};

use crate::diag::Span;
use crate::ir::{
    ConstraintKind, Graph, InputId, NodeId, Op, Program, SetKind, Shape, Stage, SubproblemId,
};
use analysis::{TensorAnalysis, TensorEGraph};
use egg::{Id, Runner};
use extract::Extraction;
use lang::{TensorNode, TensorOp};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

/// Saturation stops after this many iterations (7 extracts the same FLOPs as 12 for the value,
/// gradient and HVP of every example at two size sets; 6 loses lasso's `XᵀX` staging)...
pub const ITERATION_LIMIT: usize = 7;
/// ...or once the e-graph holds this many e-nodes.
pub const NODE_LIMIT: usize = 20_000;

/// A simplified copy of a program.
#[derive(Clone, Debug)]
pub struct Simplified {
    /// The new program: same dims, inputs (input `i` is node `%i`), objective, constraints,
    /// subproblems and outputs, all pointing into the simplified graph.
    pub program: Program,
    /// The simplified form of each requested root, in order.
    pub roots: Vec<NodeId>,
    /// Names of the rules that added something to the e-graph, in first-fired order (not all of
    /// them need contribute to the extracted result).
    pub rules_fired: Vec<String>,
    /// E-nodes and e-classes in the saturated e-graph.
    pub egraph_nodes: usize,
    pub egraph_classes: usize,
    pub iterations: usize,
    /// Why saturation stopped (saturated, iteration limit, node limit).
    pub stop_reason: String,
}

/// An internal failure to rebuild IR from the e-graph (a bug, not a user error).
#[derive(Clone, Debug, PartialEq)]
pub struct SimplifyError {
    pub message: String,
}

impl fmt::Display for SimplifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "simplification failed: {}", self.message)
    }
}

impl std::error::Error for SimplifyError {}

/// Every node the program itself refers to but its outputs (objective, constraints, input
/// values and bounds, subproblems), so that the rebuilt program stays complete.
fn program_refs(p: &Program) -> Vec<NodeId> {
    let mut refs = Vec::new();
    refs.extend(p.objective.as_ref().map(|o| o.node));
    for c in &p.constraints {
        refs.push(c.node);
        match &c.kind {
            ConstraintKind::In(SetKind::Box { lower, upper }) => refs.extend([*lower, *upper]),
            ConstraintKind::Card { bound } => refs.push(*bound),
            _ => {}
        }
    }
    for input in &p.inputs {
        refs.extend(input.value.iter().chain(&input.lower).chain(&input.upper));
    }
    refs.extend(p.subproblems.iter().map(|s| s.objective));
    refs
}

fn remap_program_refs(p: &mut Program, map: impl Fn(NodeId) -> NodeId) {
    if let Some(o) = &mut p.objective {
        o.node = map(o.node);
    }
    for c in &mut p.constraints {
        c.node = map(c.node);
        match &mut c.kind {
            ConstraintKind::In(SetKind::Box { lower, upper }) => {
                *lower = map(*lower);
                *upper = map(*upper);
            }
            ConstraintKind::Card { bound } => *bound = map(*bound),
            _ => {}
        }
    }
    for input in &mut p.inputs {
        for n in [&mut input.value, &mut input.lower, &mut input.upper]
            .into_iter()
            .flatten()
        {
            *n = map(*n);
        }
    }
    for s in &mut p.subproblems {
        s.objective = map(s.objective);
    }
    for o in &mut p.outputs {
        o.node = map(o.node);
    }
}

/// Loads the nodes `roots` need into a fresh e-graph; returns it and each node's class.
fn to_egraph(program: &Program, roots: &[NodeId]) -> (TensorEGraph, HashMap<NodeId, Id>) {
    let g = &program.graph;
    let mut analysis = TensorAnalysis::default();
    for (_, node) in g.nodes() {
        let declared = (node.shape.clone(), node.stage);
        match node.op {
            Op::Input(i) => {
                analysis.inputs.insert(i, declared);
            }
            Op::Argmin(s) => {
                analysis.argmins.insert(s, declared);
            }
            _ => {}
        }
    }
    let mut egraph = TensorEGraph::new(analysis);
    let mut classes = HashMap::new();
    for id in cost::reachable(program, roots) {
        let node = g.node(id);
        let args: Vec<Id> = node.args.iter().map(|a| classes[a]).collect();
        let class = egraph.add(TensorNode::new(TensorOp::from_ir(&node.op), args));
        classes.insert(id, class);
    }
    egraph.rebuild();
    (egraph, classes)
}

/// Rebuilds IR from the best node of each class, root by root: what earlier roots built is free
/// for later ones, so shared work is found (a greedy approximation of DAG extraction).
struct Rebuilder<'a> {
    egraph: &'a TensorEGraph,
    extraction: Extraction<'a>,
    /// The IR node built for each class index.
    built: HashMap<usize, NodeId>,
}

impl Rebuilder<'_> {
    fn leaf(&self, out: &mut Program, op: &TensorOp) -> Option<NodeId> {
        match op {
            TensorOp::Input(i) => out.input_nodes.get(i.0 as usize).copied(),
            TensorOp::Argmin(s) => {
                let (shape, stage): (Shape, Stage) = self.egraph.analysis.argmins.get(s)?.clone();
                Some(out.graph.argmin(SubproblemId(s.0), shape, stage))
            }
            _ => None,
        }
    }

    fn build(&mut self, out: &mut Program, root: Id) -> Result<NodeId, SimplifyError> {
        let root = self.extraction.class(root);
        if let Some(&id) = self.built.get(&root) {
            return Ok(id);
        }
        let best = self.extraction.best_nodes();
        let mut chosen = Vec::new();
        let mut stack = vec![(root, false)];
        let mut open = HashSet::new();
        while let Some((class, children_done)) = stack.pop() {
            if self.built.contains_key(&class) {
                continue;
            }
            let Some(index) = best[class] else {
                return Err(SimplifyError {
                    message: "an e-class has no finite-cost term".into(),
                });
            };
            let node = self.extraction.node(index);
            let args = self.extraction.args(index);
            if !children_done {
                if !open.insert(class) {
                    return Err(SimplifyError {
                        message: "the extracted term is cyclic".into(),
                    });
                }
                stack.push((class, true));
                for &a in args.iter().rev() {
                    if !self.built.contains_key(&a) {
                        stack.push((a, false));
                    }
                }
                continue;
            }
            let id = match self.leaf(out, &node.op) {
                Some(id) => id,
                None if matches!(node.op, TensorOp::Input(_) | TensorOp::Argmin(_)) => {
                    return Err(SimplifyError {
                        message: format!("unknown leaf {:?}", node.op),
                    })
                }
                None => {
                    let args = args.iter().map(|a| self.built[a]).collect();
                    out.graph
                        .add(node.op.to_ir(), args)
                        .map_err(|e| SimplifyError {
                            message: format!("rebuilding {:?}: {e}", node.op),
                        })?
                }
            };
            if out.graph.shape(id) != self.extraction.shape(class) {
                return Err(SimplifyError {
                    message: format!("rebuilt {:?} has another shape than its class", node.op),
                });
            }
            open.remove(&class);
            self.built.insert(class, id);
            chosen.push(index);
        }
        for index in chosen {
            self.extraction.choose(index);
        }
        Ok(self.built[&root])
    }
}

/// Copies the nodes `root` depends on from `program` into `out` as they are (inputs and
/// `argmin`s as `out`'s), memoized in `copied`.
fn copy_as_written(
    program: &Program,
    out: &mut Program,
    root: NodeId,
    copied: &mut HashMap<NodeId, NodeId>,
) -> Result<NodeId, SimplifyError> {
    let mut cone = Vec::new();
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        if copied.contains_key(&n) || cone.contains(&n) {
            continue;
        }
        cone.push(n);
        stack.extend(&program.graph.node(n).args);
    }
    // Arguments come before their users in the graph.
    cone.sort();
    for n in cone {
        let node = program.graph.node(n);
        let new = match &node.op {
            Op::Input(i) => out.input_nodes[i.0 as usize],
            Op::Argmin(s) => out.graph.argmin(*s, node.shape.clone(), node.stage),
            op => {
                let args = node.args.iter().map(|a| copied[a]).collect();
                out.graph.add(op.clone(), args).map_err(|e| SimplifyError {
                    message: format!("copying an output: {e}"),
                })?
            }
        };
        copied.insert(n, new);
    }
    Ok(copied[&root])
}

/// Simplifies the program's graph for `roots` (and everything the program itself refers to)
/// and returns a new program with the cheapest forms found under `cost`.
pub fn simplify(
    program: &Program,
    roots: &[NodeId],
    cost: &CostModel,
) -> Result<Simplified, SimplifyError> {
    // The outputs are evaluated once, after the solve: they are copied as written, not
    // simplified into the form cheapest per iteration, which may be less accurate (an expanded
    // sum of squares near 0 goes negative).
    let outputs: Vec<NodeId> = program.outputs.iter().map(|o| o.node).collect();
    let refs = program_refs(program);
    let len = program.graph.len() as u32;
    if let Some(bad) = roots.iter().chain(&refs).find(|r| r.0 >= len) {
        return Err(SimplifyError {
            message: format!("root {bad} is not a node of the program"),
        });
    }
    let all_roots: Vec<NodeId> = roots.iter().chain(&refs).copied().collect();
    let rules = rules::all_rules();
    // egg times its phases (e-graph rebuilds included) with quanta, whose first clock reading in
    // a process calibrates the TSC for up to 200 ms. Only iteration and node limits stop the
    // run (deterministic results), so a mock clock serves and the calibration never happens.
    let (clock, _) = quanta::Clock::mock();
    let (runner, classes) = quanta::with_clock(&clock, || {
        let (egraph, classes) = to_egraph(program, &all_roots);
        let runner = Runner::default()
            .with_egraph(egraph)
            .with_iter_limit(ITERATION_LIMIT)
            .with_node_limit(NODE_LIMIT)
            .with_time_limit(Duration::MAX)
            .run(&rules);
        (runner, classes)
    });

    let mut rules_fired: Vec<String> = Vec::new();
    for it in &runner.iterations {
        for (name, &count) in &it.applied {
            let name = name.to_string();
            if count > 0 && !rules_fired.contains(&name) {
                rules_fired.push(name);
            }
        }
    }

    let mut out = program.clone();
    out.graph = Graph::new();
    out.input_nodes = program
        .input_nodes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let node = program.graph.node(n);
            out.graph
                .input(InputId(i as u32), node.shape.clone(), node.stage)
        })
        .collect();

    let egraph = &runner.egraph;
    let mut rebuilder = Rebuilder {
        egraph,
        extraction: Extraction::new(egraph, cost),
        built: HashMap::new(),
    };
    let mut new_ids = HashMap::new();
    for &old in &all_roots {
        let new = rebuilder.build(&mut out, classes[&old])?;
        new_ids.insert(old, new);
    }
    let mut written = HashMap::new();
    let outputs = outputs
        .into_iter()
        .map(|n| copy_as_written(program, &mut out, n, &mut written))
        .collect::<Result<Vec<_>, _>>()?;
    // Each new node is where the first old node (in arena order) of its class is written.
    let mut spanned: Vec<(NodeId, Span)> =
        program.node_spans.iter().map(|(&n, &s)| (n, s)).collect();
    spanned.sort_unstable_by_key(|&(n, _)| n);
    out.node_spans = HashMap::new();
    for (old, span) in spanned {
        let new = classes
            .get(&old)
            .and_then(|&id| rebuilder.built.get(&rebuilder.extraction.class(id)))
            .or_else(|| written.get(&old));
        if let Some(&new) = new {
            out.node_spans.entry(new).or_insert(span);
        }
    }
    let mut named = std::mem::take(&mut out.outputs);
    remap_program_refs(&mut out, |n| new_ids[&n]);
    named.iter_mut().zip(outputs).for_each(|(o, n)| o.node = n);
    out.outputs = named;

    Ok(Simplified {
        roots: roots.iter().map(|r| new_ids[r]).collect(),
        program: out,
        rules_fired,
        egraph_nodes: egraph.total_number_of_nodes(),
        egraph_classes: egraph.number_of_classes(),
        iterations: runner.iterations.len(),
        stop_reason: runner
            .stop_reason
            .as_ref()
            .map_or_else(|| "not run".into(), |r| format!("{r:?}")),
    })
}
