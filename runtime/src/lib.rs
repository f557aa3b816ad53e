//! optc runtime: the reference interpreter, dense linear-algebra kernels and data loading.

pub mod data;
pub mod interp;
pub mod linalg;
