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
//! # Quick start
//!
//! A service that runs two workers until `SIGINT` (Ctrl-C) or `SIGTERM`
//! stops it gracefully, then exits with status 0; it needs the `signal`
//! feature (`procmgr = { version = "0.1", features = ["signal"] }`). This
//! is the README's quick start.
//!
//! ```
//! use std::time::Duration;
//! use procmgr::{ProcessManager, process_fn};
//!
//! # #[cfg(not(feature = "signal"))]
//! # fn main() {}
//! # #[cfg(feature = "signal")]
//! #[tokio::main]
//! async fn main() -> Result<(), procmgr::BoxError> {
//!     // SIGINT and SIGTERM stop the tree gracefully; a second one forces it.
//!     let manager = ProcessManager::builder().name("service").handle_signals(true).build();
//!     for name in ["ingest", "report"] {
//!         manager.insert(process_fn(name, |ctx| async move {
//!             let mut ticks = tokio::time::interval(Duration::from_secs(1));
//!             while ctx.run_until_shutdown(ticks.tick()).await.is_some() {
//!                 println!("{} works", ctx.path());
//!             }
//!             Ok::<_, std::io::Error>(())
//!         }))?;
//!     }
//! #   // Here the test stops the service, as a SIGTERM would.
//! #   let handle = manager.handle();
//! #   tokio::spawn(async move {
//! #       tokio::time::sleep(Duration::from_millis(10)).await;
//! #       handle.request_shutdown()
//! #   });
//!     // Ok after a graceful stop (exit status 0); Err with the first failure
//!     // and the child's path if a child failed or the stop was forced.
//!     manager.await?;
//!     Ok(())
//! }
//! ```
//!
//! Without the feature, stop the tree through its [`ManagerHandle`]
//! ([`request_shutdown`](ManagerHandle::request_shutdown)) instead.
//!
//! # Exit status
//!
//! A `main` that returns `Result` and ends with `manager.await?` exits with
//! 0 when the run returns `Ok`, and prints the error's report and exits
//! with 1 when it returns `Err`: the standard library's rule. For a
//! distinct status for a forced shutdown, return
//! [`RunError::exit_code`] from `main` (see the service `main` below):
//!
//! | how the run ended | result | status |
//! | --- | --- | --- |
//! | every child completed, or stopped within its grace period after a request or a signal | `Ok(Exit)` | 0 |
//! | a child failed: returned `Err`, panicked, was aborted after its grace period, timed out or wedged | `Err(RunError)` | 1 |
//! | a forced shutdown (a second `SIGINT` or `SIGTERM`, or [`ManagerHandle::force_shutdown`]) aborted a child | `Err(RunError)`, [`FailureCause::Forced`] first | 3 |
//!
//! The first failure decides: a child that fails, after which a forced
//! shutdown aborts its slow siblings, gives 1.
//!
//! # Recipe: a service's `main`
//!
//! Signals stop the tree, a failure prints as a report on standard error,
//! and the exit status follows the table above:
//!
//! ```
//! use std::process::ExitCode;
//! use procmgr::{ProcessManager, process_fn};
//!
//! # #[cfg(not(feature = "signal"))]
//! # fn main() {}
//! # #[cfg(feature = "signal")]
//! #[tokio::main]
//! async fn main() -> Result<ExitCode, procmgr::BoxError> {
//!     let manager = ProcessManager::builder().name("service").handle_signals(true).build();
//!     manager.insert(process_fn("web", |ctx| async move {
//!         // Serve until shutdown is requested, then finish what is in flight.
//!         ctx.shutdown_requested().await;
//!         Ok::<_, std::io::Error>(())
//!     }))?;
//! #   // Here the test stops the service, as a SIGTERM would.
//! #   let handle = manager.handle();
//! #   tokio::spawn(async move {
//! #       tokio::time::sleep(std::time::Duration::from_millis(10)).await;
//! #       handle.request_shutdown()
//! #   });
//!     match manager.await {
//!         Ok(_) => Ok(ExitCode::SUCCESS),
//!         Err(error) => {
//!             // The failed child's path, its error with its causes
//!             // (`Caused by:`), then any later failures.
//!             eprintln!("Error: {error:?}");
//!             Ok(error.exit_code())
//!         }
//!     }
//! }
//! ```
//!
//! When a child `ingest` fails with an error whose message is `connection
//! refused`, it prints the following and exits with 1:
//!
//! ```text
//! Error: process service/ingest failed
//!
//! Caused by:
//!     connection refused
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
pub mod recipes;
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
pub use runnable::{
    BoxError, ProcessFn, ProcessFnOnce, Result, Runnable, process_fn, process_fn_once,
    process_fn_with,
};
/// The token type of [`Context::token`] and [`Context::child_token`],
/// re-exported so that no `tokio-util` dependency of your own is needed.
pub use tokio_util::sync::CancellationToken;
