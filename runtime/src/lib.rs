//! optc runtime: the reference interpreter, the native CPU backend (Cranelift), dense
//! linear-algebra kernels, data loading, bound models, solver plans, solvers, prox operators,
//! DAG tools and simulators.

// Numeric code compares with `!(a < b)` on purpose: the negation is true for NaN, which is how
// line searches and guards reject non-finite values.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod artifact;
pub mod bench;
pub mod bilevel;
pub mod codes;
pub mod cpu;
pub mod dag;
pub mod data;
mod dispatch;
pub mod gpu;
pub mod gradcheck;
pub mod interp;
pub mod linalg;
pub mod model;
pub mod plan;
pub mod prox;
pub mod simulate;
pub mod solvers;
pub mod transport;
