//! Ready-made processes, written against the public API as a user would.

mod idle;
#[cfg(feature = "signal")]
mod signal;
#[cfg(feature = "systemd")]
mod systemd;

pub use idle::IdleProcess;
#[cfg(feature = "signal")]
pub use signal::SignalReceiver;
#[cfg(feature = "systemd")]
pub use systemd::{DEFAULT_RELOAD_TIMEOUT, STOP_TIMEOUT_MARGIN, SystemdNotifier};
