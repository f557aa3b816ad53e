//! optc runtime.
