//! The IR verifier: checks the invariants listed in the module docs of [`crate::ir`].
//! Tests run it after every pass.

use super::{infer_shape, Op, Program, Stage};

/// Returns every broken invariant, as readable messages (empty when the program is well formed).
pub fn verify(p: &Program) -> Vec<String> {
    let mut problems = Vec::new();
    let g = &p.graph;
    let mut inner_vars = std::collections::HashSet::new();
    for s in &p.subproblems {
        inner_vars.insert(s.var);
    }
    for (id, node) in g.nodes() {
        for &a in &node.args {
            if a >= id {
                problems.push(format!("{id}: argument {a} does not precede it"));
            }
        }
        if problems.iter().any(|m| m.starts_with(&format!("{id}:"))) {
            continue;
        }
        match &node.op {
            Op::Input(i) => {
                let Some(input) = p.inputs.get(i.0 as usize) else {
                    problems.push(format!("{id}: unknown input {}", i.0));
                    continue;
                };
                if input.shape != node.shape {
                    problems.push(format!("{id}: input shape differs from its declaration"));
                }
                if input.kind.stage() != node.stage {
                    problems.push(format!("{id}: input stage differs from its kind"));
                }
            }
            Op::Argmin(s) => {
                if p.subproblems.get(s.0 as usize).is_none() {
                    problems.push(format!("{id}: unknown subproblem {}", s.0));
                }
            }
            op => {
                let shapes: Vec<_> = node.args.iter().map(|&a| g.shape(a)).collect();
                match infer_shape(op, &shapes) {
                    Ok(s) if s == node.shape => {}
                    Ok(_) => problems.push(format!("{id}: shape differs from the inferred one")),
                    Err(e) => problems.push(format!("{id}: {e}")),
                }
                let stage = node
                    .args
                    .iter()
                    .map(|&a| g.stage(a))
                    .max()
                    .unwrap_or(Stage::Const);
                if stage != node.stage {
                    problems.push(format!(
                        "{id}: stage {:?} but arguments give {stage:?}",
                        node.stage
                    ));
                }
            }
        }
    }
    let n = g.len() as u32;
    let check = |what: &str, node: super::NodeId, problems: &mut Vec<String>| {
        if node.0 >= n {
            problems.push(format!("{what} refers to missing node {node}"));
        }
    };
    if let Some(o) = &p.objective {
        check("objective", o.node, &mut problems);
        if o.node.0 < n && !g.shape(o.node).is_empty() {
            problems.push("objective is not a scalar".into());
        }
    }
    for c in &p.constraints {
        check(&format!("constraint {}", c.name), c.node, &mut problems);
    }
    for o in &p.outputs {
        check(&format!("output {}", o.name), o.node, &mut problems);
    }
    for (i, s) in p.subproblems.iter().enumerate() {
        check(&format!("subproblem #{i}"), s.objective, &mut problems);
    }
    let mut spanned: Vec<_> = p.node_spans.keys().copied().collect();
    spanned.sort_unstable();
    for node in spanned {
        check("a source span", node, &mut problems);
    }
    if p.input_nodes.len() != p.inputs.len() {
        problems.push("input_nodes and inputs differ in length".into());
    }
    problems
}
