//! Traces: cyclic permutation of products, linearity, transposes, the identity, and
//! `trace(A B) = sum(Aᵀ ∘ B)` (O(mn) once the product need not be formed).

use super::{
    add_checked, both, eye_dim, has_rank, is_scalar, rule, rule_built, rule_if, same_shape, var,
    TensorRewrite,
};
use crate::simplify::lang::TensorOp;

pub fn rules() -> Vec<TensorRewrite> {
    let matrices = || both(has_rank("?a", 2), has_rank("?b", 2));
    let i = var("?i");
    vec![
        rule_if(
            "trace-cycle",
            "(trace (@ ?a ?b))",
            "(trace (@ ?b ?a))",
            matrices(),
        ),
        rule_if(
            "trace-matmul-to-sum",
            "(trace (@ ?a ?b))",
            "(sum (* (T ?a) ?b))",
            matrices(),
        ),
        rule_if(
            "trace-add",
            "(trace (+ ?a ?b))",
            "(+ (trace ?a) (trace ?b))",
            same_shape("?a", "?b"),
        ),
        rule_if(
            "trace-sub",
            "(trace (- ?a ?b))",
            "(- (trace ?a) (trace ?b))",
            same_shape("?a", "?b"),
        ),
        rule("trace-neg", "(trace (neg ?a))", "(neg (trace ?a))"),
        rule_if(
            "trace-scale",
            "(trace (* ?s ?a))",
            "(* ?s (trace ?a))",
            is_scalar("?s"),
        ),
        rule("trace-transpose", "(trace (T ?a))", "(trace ?a)"),
        rule_built("trace-eye", "(trace ?i)", move |egraph, _, subst| {
            let n = eye_dim(egraph, subst[i])?;
            add_checked(egraph, TensorOp::DimSize(n), Vec::new())
        }),
    ]
}
