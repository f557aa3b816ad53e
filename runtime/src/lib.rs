//! optc runtime.

pub mod cpu;
