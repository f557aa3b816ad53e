//! Staged extraction: the cheapest e-node of every e-class under the [`CostModel`], root by
//! root, where what earlier roots chose is free for later ones (so shared work is found).
//!
//! The cost of a term is a tree cost split into per-iteration work (stage `Var`) and setup work
//! (stage ≤ `Param`), compared by `per_iteration + setup_weight · setup`. Costs are a fixpoint
//! over the e-graph, computed in the same order and with the same tie-breaking (first cheapest
//! e-node of a class) as egg's `Extractor`, over a flattened table: the e-graph is read once,
//! and each root's fixpoint touches only arrays.

use super::analysis::TensorEGraph;
use super::cost::CostModel;
use super::lang::{TensorNode, TensorOp};
use crate::ir::{Shape, Stage};
use egg::Id;
use rustc_hash::FxHashMap;

/// The cost of an extracted term.
#[derive(Clone, Copy, Debug)]
struct TermCost {
    per_iteration: f64,
    setup: f64,
    stage: Stage,
}

/// The e-graph flattened for repeated extraction, and what has been chosen so far.
pub struct Extraction<'a> {
    egraph: &'a TensorEGraph,
    setup_weight: f64,
    /// Class index of every canonical class id.
    class_of: FxHashMap<Id, usize>,
    /// Class id of every class index.
    class_ids: Vec<Id>,
    /// Node range of each class in `nodes`.
    class_nodes: Vec<std::ops::Range<usize>>,
    nodes: Vec<&'a TensorNode>,
    /// Weighted own cost (FLOPs plus words moved) of each node.
    own: Vec<f64>,
    /// Class indices of each node's arguments.
    args: Vec<Vec<usize>>,
    /// Stage of leaf nodes (inputs, argmins); `Const` for the rest.
    leaf_stage: Vec<Stage>,
    /// Nodes chosen for earlier roots: free for later ones.
    chosen: Vec<bool>,
}

impl<'a> Extraction<'a> {
    pub fn new(egraph: &'a TensorEGraph, model: &CostModel) -> Extraction<'a> {
        let class_of: FxHashMap<Id, usize> = egraph
            .classes()
            .enumerate()
            .map(|(i, c)| (c.id, i))
            .collect();
        let mut class_nodes = Vec::with_capacity(class_of.len());
        let (mut nodes, mut own, mut args, mut leaf_stage) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for class in egraph.classes() {
            let start = nodes.len();
            for node in &class.nodes {
                let shapes: Vec<_> = node.args.iter().map(|&a| &egraph[a].data.shape).collect();
                own.push(
                    model
                        .op_cost(&node.op.to_ir(), &class.data.shape, &shapes)
                        .weighted(),
                );
                args.push(
                    node.args
                        .iter()
                        .map(|&a| class_of[&egraph.find(a)])
                        .collect(),
                );
                let leaf = match &node.op {
                    TensorOp::Input(i) => egraph.analysis.inputs.get(i).map(|d| d.1),
                    TensorOp::Argmin(s) => egraph.analysis.argmins.get(s).map(|d| d.1),
                    _ => None,
                };
                leaf_stage.push(leaf.unwrap_or(Stage::Const));
                nodes.push(node);
            }
            class_nodes.push(start..nodes.len());
        }
        let chosen = vec![false; nodes.len()];
        Extraction {
            egraph,
            setup_weight: model.setup_weight,
            class_ids: egraph.classes().map(|c| c.id).collect(),
            class_of,
            class_nodes,
            nodes,
            own,
            args,
            leaf_stage,
            chosen,
        }
    }

    fn total(&self, c: &TermCost) -> f64 {
        c.per_iteration + self.setup_weight * c.setup
    }

    fn node_cost(&self, node: usize, costs: &[Option<TermCost>]) -> Option<TermCost> {
        let mut total = TermCost {
            per_iteration: 0.0,
            setup: 0.0,
            stage: self.leaf_stage[node],
        };
        for &a in &self.args[node] {
            let c = costs[a]?;
            total.per_iteration += c.per_iteration;
            total.setup += c.setup;
            total.stage = total.stage.max(c.stage);
        }
        if self.chosen[node] {
            total.per_iteration = 0.0;
            total.setup = 0.0;
        } else if total.stage <= Stage::Param {
            total.setup += self.own[node];
        } else {
            total.per_iteration += self.own[node];
        }
        Some(total)
    }

    /// The best node of every class given what is chosen so far (`None` for classes with no
    /// finite term).
    pub fn best_nodes(&self) -> Vec<Option<usize>> {
        let n = self.class_nodes.len();
        let mut costs: Vec<Option<TermCost>> = vec![None; n];
        let mut best: Vec<Option<usize>> = vec![None; n];
        let mut changed = true;
        while changed {
            changed = false;
            for class in 0..n {
                let mut pass: Option<(TermCost, usize)> = None;
                for node in self.class_nodes[class].clone() {
                    if let Some(c) = self.node_cost(node, &costs) {
                        if pass.is_none_or(|(p, _)| self.total(&c) < self.total(&p)) {
                            pass = Some((c, node));
                        }
                    }
                }
                if let Some((c, node)) = pass {
                    if costs[class].is_none_or(|old| self.total(&c) < self.total(&old)) {
                        costs[class] = Some(c);
                        best[class] = Some(node);
                        changed = true;
                    }
                }
            }
        }
        best
    }

    /// The class index of an e-class id.
    pub fn class(&self, id: Id) -> usize {
        self.class_of[&self.egraph.find(id)]
    }

    /// The shape of a class's values.
    pub fn shape(&self, class: usize) -> &'a Shape {
        &self.egraph[self.class_ids[class]].data.shape
    }

    pub fn node(&self, node: usize) -> &'a TensorNode {
        self.nodes[node]
    }

    /// Class indices of a node's arguments.
    pub fn args(&self, node: usize) -> &[usize] {
        &self.args[node]
    }

    /// Marks a node as computed: free for the roots extracted after it.
    pub fn choose(&mut self, node: usize) {
        self.chosen[node] = true;
    }
}
