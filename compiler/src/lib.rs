//! optc compiler: `.opt` source → AST → typed program → tensor IR → derivatives → simplified,
//! staged plans → native code. It sees shapes, never data values.

pub mod ast;
pub mod autodiff;
pub mod codes;
pub mod derive;
pub mod diag;
pub mod driver;
pub mod fusion;
pub mod ir;
pub mod launch;
pub mod lower;
pub mod render;
pub mod sema;
pub mod simplify;
pub mod stdlib;
pub mod structure;
pub mod syntax;
pub mod transport;
