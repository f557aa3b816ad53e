//! The matrix exponential and its Fréchet derivatives: transposes, scalars out of the
//! directions (each derivative is linear in each direction), and directions that are the
//! identity, which commutes with A. The reverse mode of `trace(expm(A))` produces exactly
//! these: its adjoint L(Aᵀ, c·I) becomes c·expm(A)ᵀ, the transpose of the exponential already
//! computed for the value, instead of the exponential of a 2n × 2n block matrix.
//!
//! Identities, with L and D² the first and second Fréchet derivatives of exp:
//! - exp(Aᵀ) = exp(A)ᵀ;
//! - L(A, s·E) = s·L(A, E) and D²(A)[s·E, F] = s·D²(A)[E, F], likewise in F;
//! - L(A, I) = exp(A), since A commutes with I (Σₖ k·Aᵏ⁻¹/k!);
//! - D²(A)[E, I] = D²(A)[I, E] = L(A, E), since exp(A + tI) = eᵗ·exp(A) makes
//!   L(A + tI, E) = eᵗ·L(A, E).
//!
//! `matpow`'s derivative in the direction I is k·Aᵏ⁻¹, which is not rewritten: its exponent is
//! usually the dimension d itself, and k − 1 is not a size when d is 0.

use super::{is_eye, is_scalar, rule, rule_if, TensorRewrite};

pub fn rules() -> Vec<TensorRewrite> {
    vec![
        rule("expm-transpose", "(expm (T ?a))", "(T (expm ?a))"),
        rule_if(
            "expm-frechet-scale",
            "(expm_frechet ?a (* ?s ?e))",
            "(* ?s (expm_frechet ?a ?e))",
            is_scalar("?s"),
        ),
        rule_if(
            "expm-frechet-identity",
            "(expm_frechet ?a ?i)",
            "(expm ?a)",
            is_eye("?i"),
        ),
        rule_if(
            "expm-frechet2-scale-first",
            "(expm_frechet2 ?a (* ?s ?e) ?f)",
            "(* ?s (expm_frechet2 ?a ?e ?f))",
            is_scalar("?s"),
        ),
        rule_if(
            "expm-frechet2-scale-second",
            "(expm_frechet2 ?a ?e (* ?s ?f))",
            "(* ?s (expm_frechet2 ?a ?e ?f))",
            is_scalar("?s"),
        ),
        rule_if(
            "expm-frechet2-identity-first",
            "(expm_frechet2 ?a ?i ?e)",
            "(expm_frechet ?a ?e)",
            is_eye("?i"),
        ),
        rule_if(
            "expm-frechet2-identity-second",
            "(expm_frechet2 ?a ?e ?i)",
            "(expm_frechet ?a ?e)",
            is_eye("?i"),
        ),
    ]
}
