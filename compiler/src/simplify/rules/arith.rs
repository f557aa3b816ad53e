//! Scalar and elementwise arithmetic: identities, negation, scalar factoring. Commutativity is
//! limited to `+` and `*` (no general associativity, only grouping of scalar factors, so the
//! e-graph stays small).

use super::{both, is_scalar, rule, rule_if, shaped_like_match, TensorRewrite};
use crate::simplify::analysis::TensorEGraph;
use egg::{Id, Subst};

fn not_scalar(name: &str) -> impl Fn(&TensorEGraph, Id, &Subst) -> bool {
    let scalar = is_scalar(name);
    move |egraph, eclass, subst| !scalar(egraph, eclass, subst)
}

pub fn rules() -> Vec<TensorRewrite> {
    vec![
        rule("add-comm", "(+ ?a ?b)", "(+ ?b ?a)"),
        rule("mul-comm", "(* ?a ?b)", "(* ?b ?a)"),
        rule_if("add-zero", "(+ ?a 0)", "?a", shaped_like_match("?a")),
        rule_if("sub-zero", "(- ?a 0)", "?a", shaped_like_match("?a")),
        rule_if("zero-sub", "(- 0 ?a)", "(neg ?a)", shaped_like_match("?a")),
        rule_if("mul-one", "(* ?a 1)", "?a", shaped_like_match("?a")),
        rule_if("div-one", "(/ ?a 1)", "?a", shaped_like_match("?a")),
        rule_if(
            "mul-minus-one",
            "(* -1 ?a)",
            "(neg ?a)",
            shaped_like_match("?a"),
        ),
        rule("pow-one", "(pow ?a 1)", "?a"),
        rule("pow-two", "(pow ?a 2)", "(* ?a ?a)"),
        rule("neg-neg", "(neg (neg ?a))", "?a"),
        rule("sub-neg", "(- ?a (neg ?b))", "(+ ?a ?b)"),
        rule("add-neg", "(+ ?a (neg ?b))", "(- ?a ?b)"),
        rule("neg-sub", "(neg (- ?a ?b))", "(- ?b ?a)"),
        rule("mul-neg", "(* (neg ?a) ?b)", "(neg (* ?a ?b))"),
        rule("div-neg", "(/ (neg ?a) ?b)", "(neg (/ ?a ?b))"),
        rule_if("sub-self", "(- ?a ?a)", "0", is_scalar("?a")),
        rule_if(
            "div-scalar-to-mul",
            "(/ ?x ?s)",
            "(* (/ 1 ?s) ?x)",
            both(is_scalar("?s"), not_scalar("?x")),
        ),
        rule_if(
            "group-scalars",
            "(* ?c (* ?d ?x))",
            "(* (* ?c ?d) ?x)",
            both(is_scalar("?c"), both(is_scalar("?d"), not_scalar("?x"))),
        ),
        rule_if(
            "scalar-of-scalar-div",
            "(* ?c (/ ?x ?d))",
            "(* (/ ?c ?d) ?x)",
            both(is_scalar("?c"), is_scalar("?d")),
        ),
        rule_if(
            "factor-scalar-add",
            "(+ (* ?s ?a) (* ?s ?b))",
            "(* ?s (+ ?a ?b))",
            is_scalar("?s"),
        ),
        rule_if(
            "factor-scalar-sub",
            "(- (* ?s ?a) (* ?s ?b))",
            "(* ?s (- ?a ?b))",
            is_scalar("?s"),
        ),
        rule_if(
            "scale-neg",
            "(* ?s (neg ?a))",
            "(* (neg ?s) ?a)",
            is_scalar("?s"),
        ),
    ]
}
