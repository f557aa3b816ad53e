//! Exponentials, logarithms and log-determinants: identities valid for every input
//! (no `exp(log x) = x`, which needs `x > 0`). The matrix exponential's are in `matfn.rs`.

use super::{is_scalar, rule, rule_if, TensorRewrite};

pub fn rules() -> Vec<TensorRewrite> {
    vec![
        rule("log-exp", "(log (exp ?x))", "?x"),
        rule("exp-mul", "(* (exp ?a) (exp ?b))", "(exp (+ ?a ?b))"),
        rule("exp-div", "(/ (exp ?a) (exp ?b))", "(exp (- ?a ?b))"),
        rule_if(
            "pow-exp",
            "(pow (exp ?a) ?k)",
            "(exp (* ?k ?a))",
            is_scalar("?k"),
        ),
        rule("log-sqrt", "(log (sqrt ?x))", "(* 0.5 (log ?x))"),
        rule("logdet-transpose", "(logdet (T ?a))", "(logdet ?a)"),
        rule("logdet-inv", "(logdet (inv ?a))", "(neg (logdet ?a))"),
    ]
}
