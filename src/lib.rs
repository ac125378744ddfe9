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
//! | a supervisor as a child: restarted by its parent with its spec children | <!-- Restartable subtrees (issue 10, item 1) fill this row in. --> **To be filled in with restartable subtrees.** Today a [`ProcessManager`] runs once: restarting it fails with [`RunError::AlreadyStarted`]; build a fresh manager for each attempt instead (see [`ChildOptions::restart`]) |
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
//! - `tracing`: a span per child (name, id, path) and events when children
//!   start, end, fail and are aborted.
//! - `log`: the same events as `log` records.
//! - `signal`: `builtin::SignalReceiver`, which turns operating-system
//!   signals into shutdown, forced shutdown and reload.
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
