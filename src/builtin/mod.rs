//! Ready-made processes, written against the public API as a user would.

mod idle;
#[cfg(feature = "signal")]
mod signal;

pub use idle::IdleProcess;
#[cfg(feature = "signal")]
pub use signal::SignalReceiver;
