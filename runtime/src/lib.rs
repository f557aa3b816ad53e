//! optc runtime.

pub mod dag;
pub mod prox;
pub mod simulate;
pub mod solvers;
