//! The shared fusion and memory planner checked by its invariants on the DAGMA program and its
//! gradient, under the Cranelift backend's rules and the MLIR GPU backend's.

mod common;

use optc_compiler::fusion::{
    access, is_elementwise, is_pointwise, plan, Access, Plan, Rules, Storage,
};
use optc_compiler::ir::{InputId, NodeId, Op, Program, UnaryOp};

const CRANELIFT: Rules = Rules {
    unsupported: |_| None,
    on_host: |_| false,
    store_summed: false,
    lse_sums: true,
    share_lu: true,
};

const GPU: Rules = Rules {
    unsupported: |op| matches!(op, Op::MatPow(_)).then_some("matpow"),
    on_host: |op| matches!(op, Op::Scatter { .. } | Op::ExpmFrechet),
    store_summed: true,
    lse_sums: false,
    share_lu: false,
};

/// The DAGMA fixture's objective and constraint with their gradients.
fn dagma() -> (Program, Vec<NodeId>, Vec<u64>) {
    let (p, roots) = common::objective_and_constraint_gradients("dagma_full.opt");
    let dims = vec![7; p.dims.len()];
    (p, roots, dims)
}

fn consumers(p: &Program, plan: &Plan, id: NodeId) -> Vec<NodeId> {
    p.graph
        .nodes()
        .filter(|(u, n)| plan.storage(*u) != Storage::Unused && n.args.contains(&id))
        .map(|(u, _)| u)
        .collect()
}

/// What every plan must satisfy, whatever the rules.
fn check_invariants(p: &Program, roots: &[NodeId], plan: &Plan) {
    let mut spans = Vec::new();
    for (id, node) in p.graph.nodes() {
        let storage = plan.storage(id);
        if storage == Storage::Unused {
            continue;
        }
        let users = consumers(p, plan, id);
        match storage {
            Storage::Fused => {
                assert!(is_pointwise(&node.op), "{id} fused but not pointwise");
                // Redone in several consumers only if it is one elementwise op of stored values.
                let trivial = matches!(node.op, Op::Const(_) | Op::DimSize(_) | Op::Eye(_));
                let shallow = is_elementwise(&node.op)
                    && node.args.iter().all(|a| {
                        plan.storage(*a) != Storage::Fused
                            || matches!(p.graph.node(*a).op, Op::Const(_) | Op::DimSize(_))
                    });
                assert!(
                    trivial || users.len() == 1 || shallow,
                    "{id} fused into {users:?}"
                );
                assert!(!roots.contains(&id), "root {id} fused");
                for u in &users {
                    assert_eq!(
                        access(&p.graph.node(*u).op),
                        Ok(Access::Loop),
                        "{id} fused into the kernel {u}"
                    );
                }
            }
            Storage::TransposeFlag => {
                assert_eq!(node.op, Op::Transpose);
                assert!(
                    plan.is_buffered(node.args[0]),
                    "the argument of flag {id} is not buffered"
                );
                assert!(users.iter().all(|u| p.graph.node(*u).op == Op::MatMul));
            }
            Storage::Scratch(at) => spans.push((at, at + plan.numel(id), id)),
            Storage::Input(k) => assert_eq!(node.op, Op::Input(InputId(k))),
            Storage::Output(k) => assert_eq!(roots[k as usize], id),
            Storage::Unused => {}
        }
        if access(&node.op) == Ok(Access::Kernel) {
            for a in &node.args {
                assert!(
                    plan.is_buffered(*a) || plan.storage(*a) == Storage::TransposeFlag,
                    "argument {a} of the kernel {id} is not buffered"
                );
            }
        }
    }
    spans.sort();
    for pair in spans.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "scratch of {} and {} overlap",
            pair[0].2,
            pair[1].2
        );
    }
    assert!(spans.iter().all(|s| s.1 <= plan.scratch_len));
    for (k, r) in roots.iter().enumerate() {
        assert!(
            plan.storage(*r) == Storage::Output(k as u32) || plan.copies.contains(&(k as u32, *r)),
            "root {k} is neither computed into its output nor copied"
        );
    }
    assert!(
        plan.schedule.windows(2).all(|w| w[0] < w[1]),
        "schedule out of order"
    );
    assert!(plan.schedule.iter().all(|&id| plan.is_buffered(id)));
}

#[test]
fn plans_keep_their_invariants_under_each_backends_rules() {
    let (p, roots, dims) = dagma();
    for rules in [CRANELIFT, GPU] {
        let plan = plan(&p, &roots, &dims, &rules).unwrap();
        check_invariants(&p, &roots, &plan);
    }
}

#[test]
fn rules_decide_lu_sharing_and_sum_arguments() {
    let (p, roots, dims) = dagma();
    let of = |plan: &Plan, op: fn(&Op) -> bool| -> Vec<NodeId> {
        plan.schedule
            .iter()
            .copied()
            .filter(|&id| op(&p.graph.node(id).op))
            .collect()
    };
    let cpu = plan(&p, &roots, &dims, &CRANELIFT).unwrap();
    let gpu = plan(&p, &roots, &dims, &GPU).unwrap();
    // The log-det of h and the inverse of its gradient: one LU on the CPU, two calls on the GPU.
    let (cpu_lu, gpu_lu) = (
        of(&cpu, |op| matches!(op, Op::LogDet | Op::Inv)),
        of(&gpu, |op| matches!(op, Op::LogDet | Op::Inv)),
    );
    assert_eq!(gpu_lu.len(), cpu_lu.len() + 1);
    assert!(cpu_lu
        .iter()
        .any(|&id| cpu.shared_lu[id.0 as usize].is_some()));
    assert!(gpu.shared_lu.iter().all(Option::is_none));
    // Every non-trivial argument of a full sum is stored for the GPU's library sum.
    for (id, node) in p.graph.nodes() {
        if node.op == (Op::Sum { axis: None }) && gpu.storage(id) != Storage::Unused {
            let a = node.args[0];
            let trivial = matches!(
                p.graph.node(a).op,
                Op::Const(_) | Op::DimSize(_) | Op::Eye(_)
            );
            assert!(
                trivial || gpu.storage(a) != Storage::Fused,
                "sum argument {a} fused on the GPU"
            );
        }
    }
}

#[test]
fn ops_left_to_the_host_are_stored_from_stored_arguments() {
    // `sign(W)` in the L1 term's gradient is fused into its consumer by default; named by
    // `on_host` it is computed apart (a GPU host step): stored, scheduled, from stored arguments.
    let (p, roots, dims) = dagma();
    let signs: Vec<NodeId> = p
        .graph
        .nodes()
        .filter(|(_, n)| matches!(n.op, Op::Unary(UnaryOp::Sign)))
        .map(|(id, _)| id)
        .collect();
    let fused = plan(&p, &roots, &dims, &CRANELIFT).unwrap();
    assert!(signs.iter().any(|&id| fused.storage(id) == Storage::Fused));
    let on_host = Rules {
        on_host: |op| matches!(op, Op::Unary(UnaryOp::Sign)),
        ..CRANELIFT
    };
    let apart = plan(&p, &roots, &dims, &on_host).unwrap();
    check_invariants(&p, &roots, &apart);
    for id in signs
        .iter()
        .filter(|&&id| apart.storage(id) != Storage::Unused)
    {
        assert!(
            apart.is_buffered(*id) && apart.schedule.contains(id),
            "{id}"
        );
        for a in &p.graph.node(*id).args {
            assert!(apart.is_buffered(*a), "argument {a} of {id} is not stored");
        }
    }
}

#[test]
fn plans_refuse_what_the_backend_does_not_lower_and_bad_requests() {
    use optc_compiler::fusion::PlanError;
    let (p, roots, dims) = dagma();
    assert_eq!(
        plan(&p, &[NodeId(u32::MAX)], &dims, &CRANELIFT).unwrap_err(),
        PlanError::BadRoot(NodeId(u32::MAX))
    );
    assert_eq!(
        plan(&p, &roots, &dims[1..], &CRANELIFT).unwrap_err(),
        PlanError::DimCount {
            expected: dims.len(),
            got: dims.len() - 1
        }
    );
    let refuse_logdet = Rules {
        unsupported: |op| matches!(op, Op::LogDet).then_some("logdet"),
        ..CRANELIFT
    };
    assert_eq!(
        plan(&p, &roots, &dims, &refuse_logdet).unwrap_err(),
        PlanError::Unsupported("logdet")
    );
}
