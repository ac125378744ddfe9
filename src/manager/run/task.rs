//! A child's task: how one attempt of a process is spawned, and how the
//! task reports its end to its manager.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::task::JoinHandle;

use crate::control::{AttemptEnd, ChildCore, Context, EventKind, PollWatch, Scope};
use crate::manager::shared::ManagerShared;
use crate::manager::{ManagerHandle, ProcessManager, events};
use crate::runnable::{BoxError, Runnable};

/// Everything a child's task needs besides the process.
pub(crate) struct Launch {
    #[cfg(feature = "tracing")]
    pub(super) span: tracing::Span,
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
    /// Spawns one attempt of the process; its task reports its end through
    /// the child's core.
    fn spawn(self: Arc<Self>, launch: Launch) -> JoinHandle<()>;

    /// A handle of the manager this process is, if it is one, so that a
    /// snapshot can walk the tree and an abandoned parent can abandon it.
    fn as_manager(&self) -> Option<ManagerHandle>;
}

impl<R: Runnable> DynRunnable for R {
    fn spawn(self: Arc<Self>, launch: Launch) -> JoinHandle<()> {
        spawn_task(self, launch)
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

/// Reports how an attempt's task ended to its manager, exactly once: what
/// the task returned, or, when the task is dropped before it finished
/// (aborted, or the runtime shut down), that it was dropped.
///
/// The manager learns of every end from this rather than by joining the
/// task: the child's core is where its end goes anyway, and a `JoinSet`
/// would cost every child an entry and the loop a turn per task.
struct EndReport {
    core: Option<Arc<ChildCore>>,
}

impl EndReport {
    fn send(mut self, end: AttemptEnd) {
        if let Some(core) = self.core.take() {
            core.report_end(end);
        }
    }
}

impl Drop for EndReport {
    fn drop(&mut self) {
        if let Some(core) = self.core.take() {
            // Unwinding: a panic outside `caught` (a `Drop` of the process
            // that panics while the task is aborted, or the runtime's).
            core.report_end(AttemptEnd::Dropped {
                panicking: std::thread::panicking(),
            });
        }
    }
}

/// Spawns one attempt of a child. Generic over the process so that its
/// future lives inline in the task, without a box of its own.
fn spawn_task<R: Runnable>(runnable: Arc<R>, launch: Launch) -> JoinHandle<()> {
    let Launch {
        #[cfg(feature = "tracing")]
        span,
        ctx,
        slow_polls,
    } = launch;
    // Made here, outside the task's future: a task aborted before its first
    // poll drops it too, and reports.
    let report = EndReport {
        core: Some(ctx.core()),
    };
    // Two tasks, not one with a branch inside: a task keeps every future it
    // may await side by side, and its size is memory per child, so a child
    // without a slow-poll threshold must not carry the watched variant.
    // Each is one async block whose attempt is a temporary awaited at once:
    // a nested block or a named future would keep its own copy.
    let Some(slow) = slow_polls else {
        let task = async move {
            let attempt = attempt(&*runnable, ctx);
            #[cfg(feature = "tracing")]
            let attempt = tracing::Instrument::instrument(attempt, span);
            let end = caught(attempt).await;
            // The process goes before the report: once reaped, its record
            // may be gone, and the process must not outlive its end.
            drop(runnable);
            report.send(end);
        };
        return tokio::spawn(task);
    };
    let task = async move {
        // Boxed: `watch` holds it across its polls. Only children with a
        // threshold pay for the allocation.
        let attempt = slow.watch(Box::pin(attempt(&*runnable, ctx)));
        #[cfg(feature = "tracing")]
        let attempt = tracing::Instrument::instrument(attempt, span);
        let end = caught(attempt).await;
        drop((runnable, slow));
        report.send(end);
    };
    tokio::spawn(task)
}

/// Runs an attempt with its panic caught: also one from outside the
/// process's future, such as a `tracing` subscriber's span enter or exit
/// around each poll, or around the drop of the instrumented future, which
/// `fuse` does inside the `catch_unwind` as soon as it completes.
/// Combinators, not an `async fn`: one would keep the attempt's future
/// twice in the task, as its argument and as what it awaits.
fn caught<E: Into<BoxError>>(
    attempt: impl Future<Output = Result<(), E>>,
) -> impl Future<Output = AttemptEnd> {
    AssertUnwindSafe(attempt.fuse())
        .catch_unwind()
        .map(|ended| match ended {
            Ok(returned) => AttemptEnd::Returned(returned.map_err(Into::into)),
            Err(payload) => AttemptEnd::Panicked(payload),
        })
}

/// One attempt of the process.
///
/// `lazy(..).flatten()` creates the process's future on the first poll,
/// inside the `catch_unwind` of [`caught`], and then holds it in the same
/// place: a `run` that panics before its first `.await`, or a panicking
/// subscriber of the start event, fails this child instead of losing it,
/// and the future is stored once, not twice.
fn attempt<R: Runnable>(
    runnable: &R,
    ctx: Context,
) -> impl Future<Output = Result<(), R::Error>> + Send + '_ {
    futures::future::lazy(move |_| {
        events::child_started(ctx.parent_path(), ctx.child_name(), ctx.id());
        runnable.run(ctx)
    })
    .flatten()
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
