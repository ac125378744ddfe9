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
//! # Coming from Erlang/OTP
//!
//! procmgr follows OTP's supervision where users expect it:
//!
//! | OTP | procmgr |
//! | --- | --- |
//! | `restart => permanent` | [`ChildOptions::restart`]`(`[`Restart::Always`]`)` |
//! | `restart => transient` | [`Restart::OnFailure`]: restarted after an error, a panic, a missed start or heartbeat timeout |
//! | `restart => temporary` | [`Restart::Never`] (the default) with [`ChildOptions::escalate`]`(false)`, so that its failure is its own |
//! | `one_for_one`, `one_for_all`, `rest_for_one` | [`ProcessManagerBuilder::strategy`] with [`Strategy::OneForOne`] (the default), [`Strategy::OneForAll`], [`Strategy::RestForOne`] ("the rest" are the children inserted after it) |
//! | `intensity` and `period` (at most `MaxR` restarts in `MaxT` seconds) | [`ProcessManagerBuilder::restart_limit`]`(`[`RestartLimit::new`]`(R, T))`: one restart more within `T` stops every child and fails the manager, so its parent decides; a group restart counts once. Besides, each child has a limit of its own ([`ChildOptions::restart_limit`]) |
//! | `significant => true` under `auto_shutdown => any_significant` | [`ChildOptions::significant`]`(true)`: the child's end stops its manager when it ends by itself and is not restarted, not when its manager stopped it (a group restart, or the manager's stop) |
//! | `auto_shutdown => never` | the default: no child is significant |
//! | `shutdown => Timeout` | [`ChildOptions::grace_period`], or the manager's [`ProcessManagerBuilder::grace_period`] (default 5 s): the child is asked to stop ([`ControlMessage::Shutdown`], its token cancelled), and aborted if it has not within the period |
//! | `shutdown => brutal_kill` | a grace period of [`Duration::ZERO`](std::time::Duration::ZERO): aborted at its next `.await` |
//! | `shutdown => infinity` | a grace period of [`Duration::MAX`](std::time::Duration::MAX) |
//! | `simple_one_for_one` (a pool of dynamic children) | a manager built with [`ProcessManagerBuilder::keep_running`]`(true)`, whose children are inserted while it runs through [`ManagerHandle::insert`], each with a handle of its own |
//! | `terminate_child`, `which_children`, `count_children` | [`ChildHandle::shutdown`], [`ManagerHandle::snapshot`], [`ManagerHandle::tree`] |
//! | the start order, each child started once the one before has started | [`ProcessManagerBuilder::ordered_start`]: each child started once the one before has said it is ready ([`Context::mark_ready`]); a group restart follows it too |
//! | the stop order, reverse start order | [`ProcessManagerBuilder::ordered_stop`]`(true)` |
//! | a supervisor as a child: restarted by its parent with its spec children | a nested [`ProcessManager`] inserted with a restart policy: its parent starts it again with the children it was built with (its spec), in order; children inserted while it ran (OTP's dynamic children) are not started again; the handles into it follow the new run (see [a restartable subtree](ProcessManager#a-restartable-subtree)) |
//!
//! Where procmgr differs on purpose:
//!
//! - **The first failure stops the tree.** A child's default policy is
//!   [`Restart::Never`] with escalation: a child that fails and is not
//!   restarted stops every other child, and the manager's run returns its
//!   failure with its path (OTP's children are `permanent` by default, and
//!   a supervisor gives up only past its intensity).
//! - **A manager that gives up fails.** Past its restart limit, a manager's
//!   run returns [`RunError::ChildFailed`], which a parent with
//!   [`Restart::OnFailure`] restarts; OTP's supervisor exits with reason
//!   `shutdown`, which a `transient` parent does not restart.
//! - **Limits per child too.** Each child with a restart policy has a
//!   restart limit of its own (default 5 within 60 s); OTP counts
//!   restarts only per supervisor. There is no manager-wide limit unless
//!   you set one.
//! - **A stop through a significant child's handle ends its manager.**
//!   OTP's `terminate_child` does not trigger an automatic shutdown; in
//!   procmgr the handle's stop is the child's end as far as its manager is
//!   concerned.
//! - **Any child may be significant**, whatever its restart policy: its end
//!   counts once it is not restarted (its limit was reached, or it was
//!   stopped through its handle). There is no `all_significant`.
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
//! - `systemd`: `builtin::SystemdNotifier` and
//!   `ProcessManagerBuilder::notify_systemd`, which tell systemd
//!   (`Type=notify`) when the tree is ready, reloading or stopping, and
//!   keep its watchdog fed while no heartbeat is stale.
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
