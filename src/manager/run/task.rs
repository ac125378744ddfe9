//! A child's task: how one attempt of a process is spawned onto its
//! manager's `JoinSet`, and what the task returns.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::task::{AbortHandle, JoinSet};

use crate::control::{ChildCore, ChildKey, Context, EventKind, PollWatch, Scope};
use crate::manager::shared::ManagerShared;
use crate::manager::{ManagerHandle, ProcessManager, events};
use crate::runnable::{BoxError, Runnable};

/// What a child's task returns: its key, and its result or the payload of
/// its panic.
pub(crate) type TaskOutput = (ChildKey, Result<Result<(), BoxError>, Box<dyn Any + Send>>);

/// Everything a child's task needs besides the process.
pub(crate) struct Launch {
    #[cfg(feature = "tracing")]
    pub(super) span: tracing::Span,
    pub(super) key: ChildKey,
    pub(super) ctx: Context,
    /// For a child with a slow-poll threshold: what its polls are measured
    /// against and reported to. Boxed, so that a child without one pays a
    /// word in its task.
    pub(super) slow_polls: Option<Box<SlowPolls>>,
}

/// Where a child's slow polls are reported: its event hubs, its log, its
/// measurements.
pub(crate) struct SlowPolls {
    core: Arc<ChildCore>,
    scope: Arc<Scope>,
    #[cfg(feature = "metrics")]
    metrics: Arc<crate::manager::metrics::ManagerMetrics>,
}

impl SlowPolls {
    /// What a child's task needs to watch its polls, if it has a threshold.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(super) fn of(
        core: &Arc<ChildCore>,
        scope: &Arc<Scope>,
        manager: &ManagerShared,
    ) -> Option<Box<SlowPolls>> {
        core.polls()?;
        Some(Box::new(SlowPolls {
            core: Arc::clone(core),
            scope: Arc::clone(scope),
            #[cfg(feature = "metrics")]
            metrics: Arc::clone(&manager.metrics),
        }))
    }

    fn report(&self, took: Duration, threshold: Duration) {
        let (path, core) = (&self.scope.path, &self.core);
        events::slow_poll(path, &core.name, core.id, took, threshold);
        #[cfg(feature = "metrics")]
        self.metrics.slow_poll(core);
        self.scope
            .events
            .publish(path, Some(&core.name), core.id, || EventKind::SlowPoll {
                took,
                threshold,
            });
    }

    /// Runs `future`, measuring each of its polls.
    async fn watch<F: Future>(&self, mut future: std::pin::Pin<Box<F>>) -> F::Output {
        let polls: Option<&PollWatch> = self.core.polls();
        std::future::poll_fn(|cx| {
            let Some(polls) = polls else {
                return future.as_mut().poll(cx);
            };
            let began = polls.enter();
            let poll = future.as_mut().poll(cx);
            if let Some(took) = polls.leave(began) {
                self.report(took, polls.threshold());
            }
            poll
        })
        .await
    }
}

/// The object-safe form of [`Runnable`] the manager stores.
pub(crate) trait DynRunnable: Send + Sync + 'static {
    /// Spawns one attempt of the process onto the manager's tasks.
    fn spawn(self: Arc<Self>, tasks: &mut JoinSet<TaskOutput>, launch: Launch) -> AbortHandle;

    /// A handle of the manager this process is, if it is one, so that a
    /// snapshot can walk the tree and an abandoned parent can abandon it.
    fn as_manager(&self) -> Option<ManagerHandle>;
}

impl<R: Runnable> DynRunnable for R {
    fn spawn(self: Arc<Self>, tasks: &mut JoinSet<TaskOutput>, launch: Launch) -> AbortHandle {
        spawn_task(self, tasks, launch)
    }

    fn as_manager(&self) -> Option<ManagerHandle> {
        let any: &dyn Any = self;
        if let Some(manager) = any.downcast_ref::<ProcessManager>() {
            return Some(manager.handle());
        }
        any.downcast_ref::<Arc<ProcessManager>>()
            .map(|manager| manager.handle())
    }
}

/// Spawns one attempt of a child. Generic over the process so that its
/// future lives inline in the task, without a box of its own.
fn spawn_task<R: Runnable>(
    runnable: Arc<R>,
    tasks: &mut JoinSet<TaskOutput>,
    launch: Launch,
) -> AbortHandle {
    let Launch {
        #[cfg(feature = "tracing")]
        span,
        key,
        ctx,
        slow_polls,
    } = launch;
    // Two tasks, not one with a branch inside: a task keeps every future it
    // may await side by side, and its size is memory per child, so a child
    // without a slow-poll threshold must not carry the watched variant.
    // Each is one async block whose attempt is a temporary awaited at once:
    // a nested block or a named future would keep its own copy.
    let Some(slow) = slow_polls else {
        let task = async move {
            let result = attempt(&*runnable, ctx, key).await;
            (key, result.map(|ended| ended.map_err(Into::into)))
        };
        #[cfg(feature = "tracing")]
        let task = tracing::Instrument::instrument(task, span);
        return tasks.spawn(task);
    };
    let task = async move {
        // Boxed: `watch` holds it across its polls. Only children with a
        // threshold pay for the allocation.
        let result = slow.watch(Box::pin(attempt(&*runnable, ctx, key))).await;
        (key, result.map(|ended| ended.map_err(Into::into)))
    };
    #[cfg(feature = "tracing")]
    let task = tracing::Instrument::instrument(task, span);
    tasks.spawn(task)
}

/// One attempt of the process, its panic caught.
///
/// `lazy(..).flatten()` creates the process's future on the first poll,
/// inside `catch_unwind`, and then holds it in the same place: a `run` that
/// panics before its first `.await`, or a panicking subscriber of the start
/// event, fails this child instead of losing it, and the future is stored
/// once, not twice.
fn attempt<R: Runnable>(
    runnable: &R,
    ctx: Context,
    key: ChildKey,
) -> impl Future<Output = std::thread::Result<Result<(), R::Error>>> + Send + '_ {
    AssertUnwindSafe(
        futures::future::lazy(move |_| {
            events::child_started(ctx.parent_path(), ctx.child_name(), key.id);
            runnable.run(ctx)
        })
        .flatten(),
    )
    .catch_unwind()
}

/// The message of a panic, from its payload.
pub(super) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&'static str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
