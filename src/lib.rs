//! Run the long-lived async parts of a service (servers, queue consumers,
//! background loops) as a supervised tree on tokio.
//!
//! Put each part into a [`ProcessManager`] as a [`Runnable`], await the
//! manager, and control the tree from any task through cheap handles:
//! [`ManagerHandle`] inserts children while the manager runs and stops or
//! reloads the whole subtree, [`ChildHandle`] stops, reloads or messages one
//! child. When a child fails, every other child is asked to stop, is aborted
//! if it does not within its grace period, and the manager returns the
//! failure with the child's path. A manager is itself a [`Runnable`], so
//! managers nest into trees.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use procmgr::{ProcessManager, process_fn};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let manager = ProcessManager::builder().name("service").build();
//!     for n in 0..2 {
//!         manager.insert(process_fn(format!("worker-{n}"), |ctx| async move {
//!             let mut ticks = tokio::time::interval(Duration::from_millis(10));
//!             while ctx.run_until_shutdown(ticks.tick()).await.is_some() {
//!                 // one unit of work
//!             }
//!             println!("{} stopped", ctx.path());
//!             Ok::<_, std::io::Error>(())
//!         }))?;
//!     }
//!
//!     let handle = manager.handle();
//!     tokio::spawn(async move {
//!         tokio::time::sleep(Duration::from_millis(50)).await;
//!         // Err only if the manager has already ended.
//!         let _ = handle.request_shutdown();
//!     });
//!     manager.await?;
//!     Ok(())
//! }
//! ```
//!
//! # Features
//!
//! - `tracing`: a span per child (name, id, path) and events when children
//!   start, end, fail and are aborted.
//! - `log`: the same events as `log` records.
//! - `signal`: `builtin::SignalReceiver`, which turns operating-system
//!   signals into shutdown, forced shutdown and reload.
//! - `systemd`: `builtin::SystemdNotifier` and
//!   `ProcessManagerBuilder::notify_systemd`, which tell systemd
//!   (`Type=notify`) when the tree is ready, reloading or stopping, and
//!   keep its watchdog fed while no heartbeat is stale.
//!
//! Without `tracing` and `log` the crate prints and logs nothing. A
//! subscriber or logger may be called while a manager holds its internal
//! lock, so it must not call back into procmgr's handles.

#![forbid(unsafe_code)]

pub mod builtin;
mod control;
mod error;
mod manager;
mod policy;
mod runnable;

pub use builtin::IdleProcess;
pub use control::{
    ChildHandle, Context, ControlMessage, CustomMessage, EVENT_CAPACITY, EventKind, Events,
    EventsError, LifecycleEvent, Outcome, ProcessControlHandler, ShutdownReason, Signal,
};
pub use error::{
    BuildError, ChildFailure, ChildFailures, ControlError, FailureCause, InsertError,
    InsertErrorKind, RunError, SendError,
};
pub use manager::{
    ChildInfo, ChildState, DEFAULT_GRACE_PERIOD, Exit, ManagerHandle, NESTED_GRACE_MARGIN,
    ProcessManager, ProcessManagerBuilder, TreeNode, TreeSnapshot,
};
pub use policy::{Backoff, ChildOptions, Jitter, Restart, RestartLimit, Strategy};
pub use runnable::{BoxError, ProcessFn, Runnable, process_fn};
/// The token type of [`Context::token`] and [`Context::child_token`],
/// re-exported so that no `tokio-util` dependency of your own is needed.
pub use tokio_util::sync::CancellationToken;
