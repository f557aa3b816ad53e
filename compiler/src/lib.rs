//! optc compiler: `.opt` source → AST → typed program → tensor IR → derivatives → simplified,
//! staged plans → native code. It sees shapes, never data values.

pub mod ast;
pub mod codes;
pub mod diag;
pub mod ir;
pub mod render;
pub mod syntax;
