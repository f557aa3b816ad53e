//! optc runtime: the reference interpreter, the native CPU backend, dense linear-algebra kernels
//! and data loading.

pub mod cpu;
pub mod data;
pub mod interp;
pub mod linalg;
