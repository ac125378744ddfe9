//! Ready-made processes, written against the public API as a user would.

mod idle;

pub use idle::IdleProcess;
