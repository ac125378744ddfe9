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
//! No feature is on by default, and the default build depends on tokio,
//! tokio-util and futures only.
//!
//! - `tracing`: a span per child (name, id, path, attempt) and events when
//!   children start, end, fail, block their thread and are aborted. The span
//!   tree is the process tree: a root manager runs in a `manager` span made
//!   where it is awaited, and each child's span is a child of its manager's,
//!   so an event logged inside `root/consumers/kafka-0` has the spans
//!   `root`, `consumers`, `kafka-0` as its ancestry.
//! - `log`: the same events as `log` records.
//! - `signal`: `builtin::SignalReceiver`, which turns operating-system
//!   signals into shutdown, forced shutdown and reload.
//! - `serde`: [`TreeSnapshot`] and [`ChildInfo`] implement
//!   `serde::Serialize`, in the versioned JSON shape [`TreeSnapshot`]
//!   documents, for an admin endpoint (`examples/admin.rs` serves it):
//!
//!   ```
//!   # #[cfg(feature = "serde")] {
//!   use procmgr::{IdleProcess, ProcessManager};
//!
//!   let manager = ProcessManager::builder().name("root").child(IdleProcess).build();
//!   let json = serde_json::to_value(manager.handle().tree()).unwrap();
//!   assert_eq!(json["version"], 1);
//!   assert_eq!(json["children"][0]["path"], "root/idle");
//!   # }
//!   ```
//! - `metrics`: each manager records its children through the
//!   [`metrics`](https://docs.rs/metrics) facade, so any exporter works;
//!   install a recorder (such as `metrics-exporter-prometheus`) before the
//!   managers start. Every series has a `manager` label, the manager's path:
//!
//!   | metric | kind | what it counts |
//!   | --- | --- | --- |
//!   | `procmgr_children` | gauge, label `state`: `starting`, `running`, `restarting`, `stopping` | children by state (`stopping`: the running children of a manager that is shutting down) |
//!   | `procmgr_child_starts_total` | counter | attempts started |
//!   | `procmgr_restarts_total` | counter | attempts started after the first |
//!   | `procmgr_failures_total` | counter, label `cause`: `error`, `panic`, `aborted`, `wedged`, `start_timeout` | failed attempts, restarted or not (`aborted`: by the end of a grace period or a forced shutdown, unless the child was stopped through its own handle) |
//!   | `procmgr_aborts_total` | counter | children the manager aborted, for any reason |
//!   | `procmgr_slow_polls_total` | counter | polls over a child's slow-poll threshold |
//!   | `procmgr_shutdown_duration_seconds` | histogram | from the shutdown request until the run returned |
//!
//!   The counters are registered at zero when a manager starts. A child's
//!   name is a label only when asked for, since a pool of short children
//!   would make a series of each:
//!
//!   ```
//!   # #[cfg(feature = "metrics")] {
//!   use procmgr::ProcessManager;
//!
//!   let pool = ProcessManager::builder().name("jobs").metrics_per_child(true).build();
//!   # }
//!   ```
//!
//! Without `tracing` and `log` the crate prints and logs nothing. A
//! subscriber, logger or metrics recorder may be called while a manager
//! holds its internal lock, so it must not call back into procmgr's
//! handles.
//!
//! # Children that block the runtime
//!
//! A child that blocks its thread (no `.await` for a long time) stalls the
//! tasks that share the thread and cannot be aborted until it yields, so it
//! can hold a shutdown past its grace period. With a slow-poll threshold
//! ([`ChildOptions::slow_poll`], or [`ProcessManagerBuilder::slow_poll`] for
//! every child) the manager measures each poll of the child's future and
//! reports one that takes longer: [`EventKind::SlowPoll`], a warning with
//! `tracing` or `log`, `procmgr_slow_polls_total` with `metrics`, and
//! [`ChildInfo::slow_polls`] and [`ChildInfo::blocking`] in the tree view.
//! A failure whose abort had to wait for such a poll says so
//! ([`ChildFailure::blocking_poll`]).

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
