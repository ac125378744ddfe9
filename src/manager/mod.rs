//! [`ProcessManager`]: a process that runs other processes.

mod builder;
mod events;
mod exit;
mod handle;
#[cfg(feature = "serde")]
mod json;
#[cfg(feature = "metrics")]
mod metrics;
mod names;
mod registry;
mod run;
mod shared;
mod slab;
mod snapshot;

use std::borrow::Cow;
use std::fmt;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

pub use builder::ProcessManagerBuilder;
pub use exit::Exit;
pub use handle::ManagerHandle;
#[cfg(feature = "metrics")]
pub(crate) use metrics::ManagerMetrics;
pub use snapshot::{ChildInfo, ChildState, TreeNode, TreeSnapshot};

use crate::control::{ChildHandle, Context};
use crate::error::{InsertError, RunError};
use crate::policy::ChildOptions;
use crate::runnable::Runnable;
pub(crate) use shared::ManagerShared;

/// The grace period of a manager built without one.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(5);

/// What a nested manager's grace period in its parent adds to its own: the
/// time it has to abort its stuck children and return.
pub const NESTED_GRACE_MARGIN: Duration = Duration::from_millis(100);

/// A process that runs other processes (its children) and stops them all,
/// gracefully, when one fails or when asked to.
///
/// Insert children before or while it runs, from any task, through the
/// manager or any [`ManagerHandle`]. Run it by awaiting it; inserted into
/// another manager, it is a child like any other, so managers nest into
/// trees.
///
/// A run ends when every child has ended: when all of them returned, or when
/// shutdown was requested (through a handle, or by the parent manager) and
/// they have stopped, or when a child failed and the others have stopped. It
/// returns [`Exit`] with the shutdown reason, or the first failure with the
/// failures after it. A manager with no children returns at once; build it
/// with [`keep_running`](ProcessManagerBuilder::keep_running) to keep it
/// running, empty, for children inserted later, until it is asked to stop.
///
/// # Stopping
///
/// Shutdown is cooperative: every child's [`Context`] says that shutdown was
/// requested, and a child that has not returned within its grace period is
/// aborted. The outcome says so, and the run returns a
/// [`FailureCause::Aborted`](crate::FailureCause::Aborted) failure for it.
/// Tokio aborts a task only at an `.await`: a child that blocks its thread
/// without awaiting cannot be aborted and holds the shutdown until it
/// returns (see [the recipe](crate::recipes#work-that-blocks-its-thread)).
/// A shutdown requested before the manager runs is remembered: the run starts
/// the children already inserted with shutdown already requested, so they stop
/// at once.
///
/// # A restartable subtree
///
/// Inserted into another manager with a restart policy
/// ([`Restart::OnFailure`](crate::Restart::OnFailure) or
/// [`Restart::Always`](crate::Restart::Always)), a manager whose run ended
/// is started again by its parent like any child (OTP's supervisor as a
/// child). The new run starts the children it was built with, the ones
/// inserted before its first run (its *spec*), in their order and with its
/// ordered start if it has one. Children inserted while it ran are stopped
/// with the run that ended and are not started again, as OTP does for
/// dynamic children; insert them again if they should come back.
///
/// Handles keep working across a restart, and speak of the current run:
///
/// - a [`ChildHandle`] of a spec child follows it into the new run (its
///   `id` is the new child's; `restarts` counts within the run). What ended
///   with the old run ended: a `wait` that began before the restart returns
///   the old child's outcome, one that begins after it waits for the new
///   child.
/// - the [`ManagerHandle`] inserts into, looks up in, lists, reloads and
///   stops the new run; `is_finished` is `true` between two runs and
///   `false` again once the parent has started the next. Built with
///   [`auto_cleanup(false)`](ProcessManagerBuilder::auto_cleanup), it keeps
///   the ended children of the current run only: the records of an ended
///   run go when the next one starts.
/// - a stop through the manager's own handle is for good, like a stop
///   through a child's handle: the parent does not restart it. So is one
///   asked before the parent first started it.
///
/// The restart shows in the parent's events (`Failed`, `Restarting`,
/// `Started { attempt: 2 }`), in its tree (the manager's restart count and
/// last error) and in the failure its parent reports if it gives up.
///
/// ```
/// use std::time::Duration;
/// use procmgr::{Backoff, ChildOptions, ProcessManager, Restart, process_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), procmgr::BoxError> {
/// use std::sync::atomic::{AtomicBool, Ordering};
/// static LOST_THE_QUEUE_ONCE: AtomicBool = AtomicBool::new(false);
///
/// let consumers = ProcessManager::builder().name("consumers").build();
/// let worker = consumers.insert(process_fn("worker", |ctx| async move {
///     if !LOST_THE_QUEUE_ONCE.swap(true, Ordering::SeqCst) {
///         // Its manager fails with it, and is restarted by its parent.
///         return Err(std::io::Error::other("lost the queue"));
///     }
///     ctx.shutdown_requested().await;
///     Ok(())
/// }))?;
/// let root = ProcessManager::builder().name("root").build();
/// let subtree = root.insert_with(
///     consumers,
///     ChildOptions::new().restart(Restart::OnFailure).backoff(Backoff::none()),
/// )?;
/// let handle = root.handle();
/// let run = tokio::spawn(root.into_future());
/// tokio::time::sleep(Duration::from_millis(10)).await;
/// assert_eq!(subtree.restarts(), 1);
/// assert!(!worker.is_finished(), "the handle follows the worker's new run");
/// handle.shutdown().await;
/// run.await??;
/// # Ok(())
/// # }
/// ```
///
/// # Drop
///
/// Dropping the manager's run future (or aborting the task that awaits it)
/// aborts every child, including the children of nested managers; their
/// handles then report [`Outcome::Aborted`](crate::Outcome::Aborted). As
/// with any tokio abort, a task that is running on another thread at that
/// moment stops at its next `.await`, so the outcome can come a moment before
/// the future is gone. Dropping a manager that never ran drops the children
/// inserted into it.
///
/// # Example
///
/// ```
/// use procmgr::{ProcessManager, process_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = ProcessManager::builder().name("root").build();
/// manager.insert(process_fn("worker", |ctx| async move {
///     ctx.shutdown_requested().await;
///     Ok::<_, std::io::Error>(())
/// }))?;
///
/// let handle = manager.handle();
/// let run = tokio::spawn(manager.into_future());
/// handle.shutdown().await;
/// run.await??;
/// # Ok(())
/// # }
/// ```
pub struct ProcessManager {
    shared: Arc<ManagerShared>,
}

impl ProcessManager {
    /// A manager with the default settings; see [`ProcessManager::builder`].
    pub fn new() -> Self {
        ProcessManager::builder().build()
    }

    /// Starts configuring a manager.
    pub fn builder() -> ProcessManagerBuilder {
        ProcessManagerBuilder::new()
    }

    /// A handle to this manager that stays usable while it runs.
    pub fn handle(&self) -> ManagerHandle {
        ManagerHandle::new(Arc::clone(&self.shared))
    }

    /// Inserts a child; the same as [`ManagerHandle::insert`], which says
    /// how the child is named: a name a live sibling has gets a suffix
    /// (`worker`, `worker-7`).
    ///
    /// # Errors
    ///
    /// Hands the runnable back if the manager is shutting down or has
    /// stopped, if an [exact name](ChildOptions::exact_name) is taken, or
    /// if the manager already holds 2^32 children
    /// ([`InsertErrorKind`](crate::InsertErrorKind) says which).
    pub fn insert<R: Runnable>(&self, runnable: R) -> Result<ChildHandle, InsertError<R>> {
        self.shared.insert(runnable, ChildOptions::new())
    }

    /// Inserts a child with its own settings; the same as
    /// [`ManagerHandle::insert_with`].
    ///
    /// # Errors
    ///
    /// Hands the runnable back if the manager is shutting down or has
    /// stopped, if an [exact name](ChildOptions::exact_name) is taken, or
    /// if the manager already holds 2^32 children
    /// ([`InsertErrorKind`](crate::InsertErrorKind) says which).
    pub fn insert_with<R: Runnable>(
        &self,
        runnable: R,
        options: ChildOptions,
    ) -> Result<ChildHandle, InsertError<R>> {
        self.shared.insert(runnable, options)
    }
}

impl Default for ProcessManager {
    fn default() -> Self {
        ProcessManager::new()
    }
}

impl fmt::Debug for ProcessManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessManager")
            .field("name", &self.shared.settings.name)
            .finish_non_exhaustive()
    }
}

/// Awaiting a manager runs it as the root of a tree.
///
/// The future must run inside a tokio runtime with the time driver enabled.
impl IntoFuture for ProcessManager {
    type Output = Result<Exit, RunError>;
    type IntoFuture = BoxFuture<'static, Result<Exit, RunError>>;

    fn into_future(self) -> Self::IntoFuture {
        // Made here, so that its parent is the span the manager is awaited
        // in; the children's spans are its children.
        #[cfg(feature = "tracing")]
        let span = events::root_span(&self.shared.settings.name);
        let run = async move { supervise(&self, None).await };
        #[cfg(feature = "tracing")]
        let run = tracing::Instrument::instrument(run, span);
        Box::pin(run)
    }
}

/// A manager inserted into another manager runs as its child.
///
/// Its grace period in the parent defaults to its own drain and grace
/// periods plus [`NESTED_GRACE_MARGIN`], so that it can abort its own stuck children and
/// report which one it was before its parent would abort it whole. It
/// reports readiness ([`Runnable::reports_ready`]): it is ready once its
/// own children that report readiness are.
impl Runnable for ProcessManager {
    type Error = RunError;

    fn child_options(&self) -> ChildOptions {
        let settings = &self.shared.settings;
        let grace = settings.drain.saturating_add(settings.grace);
        ChildOptions::new().grace_period(grace.saturating_add(NESTED_GRACE_MARGIN))
    }

    fn reports_ready(&self) -> bool {
        true
    }

    async fn run(&self, ctx: Context) -> Result<(), RunError> {
        supervise(self, Some(ctx)).await.map(drop)
    }

    fn name(&self) -> Cow<'static, str> {
        self.shared.settings.name.clone()
    }
}

async fn supervise(manager: &ProcessManager, parent: Option<Context>) -> Result<Exit, RunError> {
    run::supervise(&manager.shared, parent).await
}

impl Drop for ProcessManager {
    fn drop(&mut self) {
        self.shared.abandon(false);
        // Nothing can run it again: its subscribers' streams end.
        self.shared.events.close();
    }
}
