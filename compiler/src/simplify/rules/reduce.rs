//! Full sums: linearity, scalars out, sums of broadcasts and of products, and the expansions
//! that let staging work: `sum(A ∘ B) = trace(Aᵀ B)`, `‖A M‖² = sum(M ∘ ((AᵀA) M))` (the Gram
//! matrix `AᵀA` depends only on `A`, so it is hoisted when `A` is data) and
//! `‖a − b‖² = ‖a‖² − 2⟨a, b⟩ + ‖b‖²`.

use super::{
    add_checked, both, has_rank, is_scalar, rule, rule_built, rule_if, same_shape, shape_of, var,
    TensorRewrite,
};
use crate::ir::{BinaryOp, Dim};
use crate::simplify::analysis::TensorEGraph;
use crate::simplify::lang::TensorOp;
use egg::Id;

/// A scalar `s` whose broadcast to the shape of `class` is a member of `class`.
fn broadcast_scalar(egraph: &TensorEGraph, class: Id) -> Option<Id> {
    egraph[class]
        .nodes
        .iter()
        .find_map(|n| match (&n.op, n.args.as_slice()) {
            (TensorOp::BroadcastTo(_), [s]) if egraph[*s].data.shape.is_empty() => Some(*s),
            _ => None,
        })
}

/// The number of elements of a shape, as a product of `DimSize` nodes.
fn element_count(egraph: &mut TensorEGraph, shape: &[Dim]) -> Option<Id> {
    let mut count = add_checked(egraph, TensorOp::constant(1.0), Vec::new())?;
    for &d in shape {
        let size = add_checked(egraph, TensorOp::DimSize(d), Vec::new())?;
        count = add_checked(egraph, TensorOp::Binary(BinaryOp::Mul), vec![count, size])?;
    }
    Some(count)
}

pub fn rules() -> Vec<TensorRewrite> {
    let (x, y) = (var("?x"), var("?y"));
    vec![
        rule_if(
            "sum-scale",
            "(sum (* ?s ?x))",
            "(* ?s (sum ?x))",
            is_scalar("?s"),
        ),
        rule("sum-neg", "(sum (neg ?x))", "(neg (sum ?x))"),
        rule_if(
            "sum-add",
            "(sum (+ ?a ?b))",
            "(+ (sum ?a) (sum ?b))",
            same_shape("?a", "?b"),
        ),
        rule_if(
            "sum-sub",
            "(sum (- ?a ?b))",
            "(- (sum ?a) (sum ?b))",
            same_shape("?a", "?b"),
        ),
        rule("sum-transpose", "(sum (T ?a))", "(sum ?a)"),
        rule_if(
            "sum-matmul",
            "(sum (@ ?a ?b))",
            "(@ (sum0 ?a) (sum1 ?b))",
            both(has_rank("?a", 2), has_rank("?b", 2)),
        ),
        rule_if(
            "sum-hadamard-to-trace",
            "(sum (* ?a ?b))",
            "(trace (@ (T ?a) ?b))",
            both(same_shape("?a", "?b"), has_rank("?a", 2)),
        ),
        rule_if(
            "sum-hadamard-to-dot",
            "(sum (* ?a ?b))",
            "(@ ?a ?b)",
            both(same_shape("?a", "?b"), has_rank("?a", 1)),
        ),
        rule_if(
            "sumsq-of-product",
            "(sum (* (@ ?a ?m) (@ ?a ?m)))",
            "(sum (* ?m (@ (@ (T ?a) ?a) ?m)))",
            both(has_rank("?a", 2), has_rank("?m", 2)),
        ),
        rule_if(
            "sumsq-of-matvec",
            "(sum (* (@ ?a ?m) (@ ?a ?m)))",
            "(@ ?m (@ (@ (T ?a) ?a) ?m))",
            both(has_rank("?a", 2), has_rank("?m", 1)),
        ),
        rule_if(
            "sumsq-expand",
            "(sum (* (- ?a ?b) (- ?a ?b)))",
            "(+ (- (sum (* ?a ?a)) (* 2 (sum (* ?a ?b)))) (sum (* ?b ?b)))",
            same_shape("?a", "?b"),
        ),
        rule_built(
            "sum-of-broadcast-scalar",
            "(sum ?x)",
            move |egraph, _, subst| {
                let s = broadcast_scalar(egraph, subst[x])?;
                let shape = shape_of(egraph, subst, x).clone();
                let count = element_count(egraph, &shape)?;
                add_checked(egraph, TensorOp::Binary(BinaryOp::Mul), vec![count, s])
            },
        ),
        rule_built(
            "mul-by-broadcast-scalar",
            "(* ?x ?y)",
            move |egraph, eclass, subst| {
                let s = broadcast_scalar(egraph, subst[x])?;
                (egraph[subst[y]].data.shape == egraph[eclass].data.shape).then_some(())?;
                add_checked(egraph, TensorOp::Binary(BinaryOp::Mul), vec![s, subst[y]])
            },
        ),
    ]
}
