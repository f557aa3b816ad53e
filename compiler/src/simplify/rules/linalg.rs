//! Transpose and matrix-product algebra: transposes of products and sums, distributing and
//! factoring `@` over `+`/`-`, scalars in and out of products, associativity (both ways; the
//! cost model picks the grouping), identities, `A − A W = A (I − W)`, inverses and solves.

use super::{
    add_checked, both, has_rank, is_eye, is_scalar, rule, rule_built, rule_if, same_shape,
    shape_of, shaped_like_match, var, TensorRewrite,
};
use crate::ir::BinaryOp;
use crate::simplify::analysis::TensorEGraph;
use crate::simplify::lang::TensorOp;
use egg::{Id, Subst, Var};

/// Which side of the product the factored matrix stands on.
#[derive(Clone, Copy)]
enum Side {
    /// `A − A W = A (I − W)`
    Left,
    /// `A − W A = (I − W) A`
    Right,
}

/// `I − W` (or `W − I` when `eye_first` is false) times `A` on the given side.
fn factor_identity(
    egraph: &mut TensorEGraph,
    subst: &Subst,
    a: Var,
    w: Var,
    side: Side,
    eye_first: bool,
) -> Option<Id> {
    let n = *shape_of(egraph, subst, w).first()?;
    let eye = add_checked(egraph, TensorOp::Eye(n), Vec::new())?;
    let diff_args = if eye_first {
        vec![eye, subst[w]]
    } else {
        vec![subst[w], eye]
    };
    let diff = add_checked(egraph, TensorOp::Binary(BinaryOp::Sub), diff_args)?;
    let product_args = match side {
        Side::Left => vec![subst[a], diff],
        Side::Right => vec![diff, subst[a]],
    };
    add_checked(egraph, TensorOp::MatMul, product_args)
}

fn factor_identity_rule(name: &str, lhs: &str, side: Side, eye_first: bool) -> TensorRewrite {
    let (a, w) = (var("?a"), var("?w"));
    rule_built(name, lhs, move |egraph, _, subst| {
        factor_identity(egraph, subst, a, w, side, eye_first)
    })
}

pub fn rules() -> Vec<TensorRewrite> {
    vec![
        rule("transpose-transpose", "(T (T ?a))", "?a"),
        rule("transpose-matmul", "(T (@ ?a ?b))", "(@ (T ?b) (T ?a))"),
        rule("matmul-transposes", "(@ (T ?b) (T ?a))", "(T (@ ?a ?b))"),
        rule_if(
            "transpose-add",
            "(T (+ ?a ?b))",
            "(+ (T ?a) (T ?b))",
            same_shape("?a", "?b"),
        ),
        rule_if(
            "transpose-sub",
            "(T (- ?a ?b))",
            "(- (T ?a) (T ?b))",
            same_shape("?a", "?b"),
        ),
        rule("transpose-neg", "(T (neg ?a))", "(neg (T ?a))"),
        rule_if(
            "transpose-scale",
            "(T (* ?s ?a))",
            "(* ?s (T ?a))",
            is_scalar("?s"),
        ),
        rule_if("transpose-eye", "(T ?i)", "?i", is_eye("?i")),
        rule_if(
            "matmul-assoc-right",
            "(@ (@ ?a ?b) ?c)",
            "(@ ?a (@ ?b ?c))",
            has_rank("?b", 2),
        ),
        rule_if(
            "matmul-assoc-left",
            "(@ ?a (@ ?b ?c))",
            "(@ (@ ?a ?b) ?c)",
            has_rank("?b", 2),
        ),
        rule_if(
            "matmul-distribute-add-left",
            "(@ (+ ?a ?b) ?c)",
            "(+ (@ ?a ?c) (@ ?b ?c))",
            same_shape("?a", "?b"),
        ),
        rule_if(
            "matmul-distribute-sub-left",
            "(@ (- ?a ?b) ?c)",
            "(- (@ ?a ?c) (@ ?b ?c))",
            same_shape("?a", "?b"),
        ),
        rule_if(
            "matmul-distribute-add-right",
            "(@ ?a (+ ?b ?c))",
            "(+ (@ ?a ?b) (@ ?a ?c))",
            same_shape("?b", "?c"),
        ),
        rule_if(
            "matmul-distribute-sub-right",
            "(@ ?a (- ?b ?c))",
            "(- (@ ?a ?b) (@ ?a ?c))",
            same_shape("?b", "?c"),
        ),
        rule_if(
            "matmul-factor-add-left",
            "(+ (@ ?a ?c) (@ ?b ?c))",
            "(@ (+ ?a ?b) ?c)",
            same_shape("?a", "?b"),
        ),
        rule_if(
            "matmul-factor-sub-left",
            "(- (@ ?a ?c) (@ ?b ?c))",
            "(@ (- ?a ?b) ?c)",
            same_shape("?a", "?b"),
        ),
        rule_if(
            "matmul-factor-add-right",
            "(+ (@ ?a ?b) (@ ?a ?c))",
            "(@ ?a (+ ?b ?c))",
            same_shape("?b", "?c"),
        ),
        rule_if(
            "matmul-factor-sub-right",
            "(- (@ ?a ?b) (@ ?a ?c))",
            "(@ ?a (- ?b ?c))",
            same_shape("?b", "?c"),
        ),
        factor_identity_rule("factor-identity-left", "(- ?a (@ ?a ?w))", Side::Left, true),
        factor_identity_rule(
            "factor-identity-left-rev",
            "(- (@ ?a ?w) ?a)",
            Side::Left,
            false,
        ),
        factor_identity_rule(
            "factor-identity-right",
            "(- ?a (@ ?w ?a))",
            Side::Right,
            true,
        ),
        factor_identity_rule(
            "factor-identity-right-rev",
            "(- (@ ?w ?a) ?a)",
            Side::Right,
            false,
        ),
        rule_if(
            "matmul-eye-right",
            "(@ ?a ?i)",
            "?a",
            both(is_eye("?i"), shaped_like_match("?a")),
        ),
        rule_if(
            "matmul-eye-left",
            "(@ ?i ?a)",
            "?a",
            both(is_eye("?i"), shaped_like_match("?a")),
        ),
        rule_if(
            "scalar-out-of-matmul-left",
            "(@ (* ?s ?a) ?b)",
            "(* ?s (@ ?a ?b))",
            is_scalar("?s"),
        ),
        rule_if(
            "scalar-out-of-matmul-right",
            "(@ ?a (* ?s ?b))",
            "(* ?s (@ ?a ?b))",
            is_scalar("?s"),
        ),
        rule_if(
            "scalar-into-matmul-left",
            "(* ?s (@ ?a ?b))",
            "(@ (* ?s ?a) ?b)",
            is_scalar("?s"),
        ),
        rule_if(
            "scalar-into-matmul-right",
            "(* ?s (@ ?a ?b))",
            "(@ ?a (* ?s ?b))",
            is_scalar("?s"),
        ),
        rule(
            "neg-out-of-matmul-left",
            "(@ (neg ?a) ?b)",
            "(neg (@ ?a ?b))",
        ),
        rule(
            "neg-out-of-matmul-right",
            "(@ ?a (neg ?b))",
            "(neg (@ ?a ?b))",
        ),
        rule_if(
            "matvec-as-row-vector",
            "(@ (@ ?a ?x) ?y)",
            "(@ ?x (@ (T ?a) ?y))",
            both(has_rank("?a", 2), has_rank("?x", 1)),
        ),
        rule("inv-inv", "(inv (inv ?a))", "?a"),
        rule("inv-transpose", "(inv (T ?a))", "(T (inv ?a))"),
        rule("inv-matmul-to-solve", "(@ (inv ?a) ?b)", "(solve ?a ?b)"),
        rule("solve-to-inv-matmul", "(solve ?a ?b)", "(@ (inv ?a) ?b)"),
    ]
}
