//! The e-class analysis: the symbolic shape and the earliest stage of every e-class, and the
//! value of scalar constants (folded, and added to their class as a `Const` node).

use super::lang::{TensorNode, TensorOp};
use crate::ir::{infer_shape, InputId, Shape, Stage, SubproblemId};
use egg::{Analysis, DidMerge, EGraph, Id};
use std::collections::HashMap;

pub type TensorEGraph = EGraph<TensorNode, TensorAnalysis>;

/// What every e-class knows about its value.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassData {
    pub shape: Shape,
    /// The earliest stage at which some member of the class can be computed.
    pub stage: Stage,
    /// The value, for scalar classes known at compile time.
    pub constant: Option<f64>,
}

/// Declared shapes and stages of the leaves whose shape is not inferred.
#[derive(Clone, Debug, Default)]
pub struct TensorAnalysis {
    pub inputs: HashMap<InputId, (Shape, Stage)>,
    pub argmins: HashMap<SubproblemId, (Shape, Stage)>,
}

impl TensorAnalysis {
    /// Shape and stage of a node whose arguments have the given data, if the op accepts them.
    pub fn node_data(&self, node: &TensorNode, args: &[&ClassData]) -> Option<(Shape, Stage)> {
        match &node.op {
            TensorOp::Input(i) => self.inputs.get(i).cloned(),
            TensorOp::Argmin(s) => self.argmins.get(s).cloned(),
            op => {
                let shapes: Vec<&Shape> = args.iter().map(|d| &d.shape).collect();
                let shape = infer_shape(&op.to_ir(), &shapes).ok()?;
                let stage = args.iter().map(|d| d.stage).max().unwrap_or(Stage::Const);
                Some((shape, stage))
            }
        }
    }
}

/// The value of a scalar node whose scalar arguments are known; only finite results are kept.
fn fold(node: &TensorNode, args: &[&ClassData]) -> Option<f64> {
    let value = |i: usize| args.get(i).and_then(|d| d.constant);
    let folded = match node.op {
        TensorOp::Const(bits) => f64::from_bits(bits),
        TensorOp::Unary(op) => op.apply(value(0)?),
        TensorOp::Binary(op) => op.apply(value(0)?, value(1)?),
        _ => return None,
    };
    folded.is_finite().then_some(folded)
}

impl Analysis<TensorNode> for TensorAnalysis {
    type Data = ClassData;

    fn make(egraph: &mut TensorEGraph, enode: &TensorNode, _id: Id) -> ClassData {
        let args: Vec<&ClassData> = enode.args.iter().map(|&a| &egraph[a].data).collect();
        // Rules only add nodes whose shapes check (see `rules::Checked`), and the IR they
        // come from is verified, so the fallback is unreachable in practice.
        let (shape, stage) = egraph
            .analysis
            .node_data(enode, &args)
            .unwrap_or((Shape::new(), Stage::Var));
        let constant = if shape.is_empty() {
            fold(enode, &args)
        } else {
            None
        };
        ClassData {
            shape,
            stage,
            constant,
        }
    }

    fn merge(&mut self, a: &mut ClassData, b: ClassData) -> DidMerge {
        let mut changed_a = false;
        let mut changed_b = false;
        if b.stage < a.stage {
            a.stage = b.stage;
            changed_a = true;
        } else if a.stage < b.stage {
            changed_b = true;
        }
        match (a.constant, b.constant) {
            (None, Some(c)) => {
                a.constant = Some(c);
                changed_a = true;
            }
            (Some(_), None) => changed_b = true,
            _ => {}
        }
        DidMerge(changed_a, changed_b)
    }

    fn modify(egraph: &mut TensorEGraph, id: Id) {
        if let Some(c) = egraph[id].data.constant {
            let constant = egraph.add(TensorNode::new(TensorOp::constant(c), Vec::new()));
            egraph.union(id, constant);
        }
    }
}
