use std::fmt;
use std::future::Future;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::child::RELOADS;
use super::{
    ChildCore, ChildName, ControlMessage, EventHubs, EventKind, ReasonCell, ShutdownReason,
};

/// What a running process receives from its manager: its identity, the
/// control messages sent to it, and a way to say it is ready.
///
/// The context belongs to one run of one process and is not `Clone`; share
/// [`token`](Context::token) with code that needs to see shutdown elsewhere.
///
/// # Example
///
/// ```
/// use procmgr::{Context, ControlMessage};
///
/// async fn consume(mut ctx: Context) -> Result<(), std::io::Error> {
///     ctx.mark_ready();
///     while let Some(message) = ctx.recv().await {
///         match message {
///             ControlMessage::Shutdown => break,
///             ControlMessage::Reload => println!("{} reloads", ctx.path()),
///             ControlMessage::Custom(custom) => println!("got {custom:?}"),
///             _ => {}
///         }
///     }
///     Ok(())
/// }
/// ```
// One pointer on purpose: the task holds the context it passes to `run`
// beside the process's future, and an `async fn` keeps its arguments beside
// its locals, so it is held three times. With its fields inline an idle
// child's task cell took 384 bytes instead of 256 (tokio sizes cells in
// steps of 128); the box costs one allocation of 32 bytes per attempt
// (24 requested: a byte more and malloc's chunk is 48).
pub struct Context {
    inner: Box<Inner>,
}

/// The fields of a [`Context`].
struct Inner {
    core: Arc<ChildCore>,
    scope: Arc<Scope>,
    /// Fixed when the attempt starts: a context that outlives its attempt
    /// (moved into a detached task) still tells its own.
    attempt: u32,
    delivered: Delivered,
}

/// What a context has delivered, in one word: the reloads it has seen,
/// counted as the inbox counts them (modulo 2^31), and in the top bit
/// whether it has delivered [`ControlMessage::Shutdown`].
#[derive(Debug, Clone, Copy)]
struct Delivered(u32);

const SHUTDOWN_DELIVERED: u32 = 1 << 31;

impl Delivered {
    fn new(seen_reloads: u32) -> Delivered {
        Delivered(seen_reloads & RELOADS)
    }

    fn shutdown(self) -> bool {
        self.0 & SHUTDOWN_DELIVERED != 0
    }

    fn set_shutdown(&mut self) {
        self.0 |= SHUTDOWN_DELIVERED;
    }

    fn reloads(self) -> u32 {
        self.0 & RELOADS
    }

    fn set_reloads(&mut self, seen: u32) {
        self.0 = (self.0 & SHUTDOWN_DELIVERED) | (seen & RELOADS);
    }
}

/// What every child of one manager run shares: the manager's path and its
/// shutdown reason.
#[derive(Debug)]
pub(crate) struct Scope {
    pub(crate) path: Arc<str>,
    pub(crate) reason: Arc<ReasonCell>,
    pub(crate) events: EventHubs,
    /// When the run began: the clock heartbeats are stamped on.
    pub(crate) started: tokio::time::Instant,
    /// The manager's span, the parent of each child's span, so that the
    /// span tree is the process tree.
    #[cfg(feature = "tracing")]
    pub(crate) span: tracing::Span,
}

impl Context {
    pub(crate) fn new(
        core: Arc<ChildCore>,
        attempt: u32,
        seen_reloads: u32,
        scope: Arc<Scope>,
    ) -> Self {
        Context {
            inner: Box::new(Inner {
                core,
                scope,
                attempt,
                delivered: Delivered::new(seen_reloads),
            }),
        }
    }

    /// The manager's path.
    pub(crate) fn parent_path(&self) -> &str {
        &self.inner.scope.path
    }

    /// The process's name, as its core keeps it (reading it as a `str`
    /// costs a check for a name kept inline).
    pub(crate) fn child_name(&self) -> &ChildName {
        &self.inner.core.name
    }

    /// Says that the process is no longer ready (a nested manager whose own
    /// child went down).
    pub(crate) fn mark_unready(&self) {
        self.inner.core.mark_unready(self.inner.attempt);
    }

    /// Says that the reload this process (a nested manager) took has been
    /// taken by its own children too.
    pub(crate) fn reload_taken(&self) {
        self.inner.core.reload_taken();
    }

    /// The process's record in its manager (a nested manager keeps it, so
    /// that its handle's stop goes through its parent).
    pub(crate) fn core(&self) -> Arc<ChildCore> {
        Arc::clone(&self.inner.core)
    }

    /// Asks this attempt alone to stop (a nested manager asked to stop
    /// tells its parent so).
    pub(crate) fn cancel(&self) {
        self.inner.core.stop_attempt(self.inner.attempt);
    }

    /// Where this process's lifecycle events go.
    pub(crate) fn events(&self) -> &EventHubs {
        &self.inner.scope.events
    }

    /// The process's id, unique within its manager.
    pub fn id(&self) -> u64 {
        self.inner.core.id
    }

    /// Which attempt this is: 1 for the first run, one more for each restart.
    pub fn attempt(&self) -> u32 {
        self.inner.attempt
    }

    /// The process's name.
    pub fn name(&self) -> &str {
        &self.inner.core.name
    }

    /// The process's path from the root manager, such as
    /// `root/consumers/kafka-0`.
    pub fn path(&self) -> String {
        format!("{}/{}", self.inner.scope.path, self.inner.core.name)
    }

    /// Completes when shutdown of this process has been requested, by its own
    /// handle or by any manager above it.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe.
    pub fn shutdown_requested(&self) -> impl Future<Output = ()> + Send + '_ {
        stop_of(&self.inner)
    }

    /// Whether shutdown of this process has been requested.
    pub fn is_shutdown_requested(&self) -> bool {
        self.inner.core.stop_reached(self.inner.attempt)
    }

    /// Why shutdown of this process was requested, or `None` while it has not
    /// been.
    ///
    /// # Example
    ///
    /// ```
    /// use procmgr::{Context, ShutdownReason};
    ///
    /// async fn serve(ctx: Context) -> Result<(), std::io::Error> {
    ///     ctx.shutdown_requested().await;
    ///     match ctx.shutdown_reason() {
    ///         Some(ShutdownReason::Signal(signal)) => println!("stopping on {signal}"),
    ///         Some(other) => println!("stopping: {other}"),
    ///         None => unreachable!("shutdown was requested"),
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn shutdown_reason(&self) -> Option<ShutdownReason> {
        let inner = &*self.inner;
        if !inner.core.stop_reached(inner.attempt) {
            return None;
        }
        if let Some(reason) = inner.core.restart_reason() {
            return Some(reason);
        }
        if inner.core.was_stopped_alone() {
            return Some(ShutdownReason::Requested);
        }
        Some(
            inner
                .scope
                .reason
                .get()
                .unwrap_or(ShutdownReason::Requested),
        )
    }

    /// A token that is cancelled when shutdown of this process is requested.
    /// Cancelling it yourself requests shutdown of
    /// this process alone, without starting its grace period (a later
    /// request through a handle still starts it). The token belongs to this
    /// attempt: cancelling it ends the attempt as if it were asked to stop,
    /// and under [`Restart::Always`](crate::Restart::Always) the child
    /// starts again; a later attempt has a token of its own, and a stop of
    /// the child cancels both. Hand code that may cancel what it is given a
    /// [`child_token`](Context::child_token) instead.
    ///
    /// A process that never calls it has no token: a token is made on the
    /// first call (about 100 bytes), and every later call returns the same
    /// one. One made after shutdown was requested is cancelled already.
    pub fn token(&self) -> CancellationToken {
        self.inner.core.token_of(self.inner.attempt)
    }

    /// A child token of this process's token, for a library that takes a
    /// token and may cancel it (as a server's graceful shutdown does when
    /// it is done): it is cancelled when shutdown of this process is
    /// requested, but cancelling it stops nothing but what it was given to.
    /// Prefer it over [`token`](Context::token) whenever the receiver is not
    /// your own code.
    ///
    /// # Example
    ///
    /// ```
    /// use procmgr::{CancellationToken, Context};
    ///
    /// async fn serve(ctx: Context) -> Result<(), std::io::Error> {
    ///     let for_the_library: CancellationToken = ctx.child_token();
    ///     // hand `for_the_library` to a server; if it cancels it, this
    ///     // process keeps running.
    ///     for_the_library.cancel();
    ///     assert!(!ctx.is_shutdown_requested());
    ///     Ok(())
    /// }
    /// ```
    pub fn child_token(&self) -> CancellationToken {
        self.token().child_token()
    }

    /// Runs `future` until it completes or shutdown is requested, whichever
    /// comes first; `None` means shutdown came first and `future` was dropped.
    ///
    /// # Cancel safety
    ///
    /// As cancel safe as `future` itself: dropping this future drops it.
    pub async fn run_until_shutdown<F: Future>(&self, future: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            () = self.shutdown_requested() => None,
            output = future => Some(output),
        }
    }

    /// Says that the process is ready: it has bound its socket, connected to
    /// its broker, and so on. Visible through
    /// [`ChildHandle::is_ready`](crate::ChildHandle::is_ready), and, for a
    /// process that reports readiness, through its manager's
    /// [`is_ready`](crate::ManagerHandle::is_ready).
    ///
    /// A process that calls it declares that it does:
    /// [`Runnable::reports_ready`](crate::Runnable::reports_ready),
    /// [`ProcessFn::reporting_ready`](crate::ProcessFn::reporting_ready), or
    /// [`ChildOptions::reports_ready`](crate::ChildOptions::reports_ready) at
    /// the insert. Otherwise its manager never waits for it, and a readiness
    /// probe would say "ready" before it is.
    ///
    /// # Panics
    ///
    /// In debug builds (`debug_assertions`), if the process does not report
    /// readiness and nothing said it does not: the forgotten declaration
    /// fails the child at once (a panic, caught by its manager like any)
    /// instead of leaving readiness open. Release builds only mark the
    /// child ready. A child inserted with `ChildOptions::reports_ready(false)`,
    /// or one an [ordered start](crate::ProcessManagerBuilder::ordered_start)
    /// waits for, may call it either way.
    pub fn mark_ready(&self) {
        debug_assert!(
            !self.inner.core.policy.undeclared_ready(),
            "process `{}` called `Context::mark_ready` but does not report readiness, so its \
             manager's `is_ready` would not wait for it: declare it with `Runnable::reports_ready`, \
             `ProcessFn::reporting_ready` or `ChildOptions::reports_ready(true)` (or opt out \
             with `ChildOptions::reports_ready(false)`)",
            self.path()
        );
        self.set_ready();
    }

    /// Marks the process ready without the check of
    /// [`mark_ready`](Context::mark_ready), for a nested manager, which
    /// tells whatever runs it that its children are ready.
    pub(crate) fn set_ready(&self) {
        let Inner { core, scope, .. } = &*self.inner;
        if core.mark_ready(self.inner.attempt) {
            #[cfg(feature = "tracing")]
            tracing::debug!(path = %self.path(), id = core.id, "process ready");
            #[cfg(feature = "log")]
            log::debug!("process {} (id {}) ready", self.path(), core.id);
            scope
                .events
                .publish(&scope.path, Some(&core.name), core.id, || EventKind::Ready);
        }
    }

    /// Says that the process is alive. A child inserted with
    /// [`ChildOptions::heartbeat_timeout`](crate::ChildOptions::heartbeat_timeout)
    /// that goes longer than that without calling this is treated as wedged:
    /// it is aborted and fails, and its restart policy applies.
    pub fn heartbeat(&self) {
        let inner = &*self.inner;
        inner.core.beat(inner.attempt, inner.scope.started);
    }

    /// Waits for the next control message.
    ///
    /// [`ControlMessage::Shutdown`] comes first whenever shutdown has been
    /// requested, once. After it, `recv` hands out what is still queued and
    /// then returns `None` instead of waiting, so a loop over `recv` ends.
    /// Reloads requested while the process was busy arrive as a single
    /// [`ControlMessage::Reload`], ahead of custom messages sent before them;
    /// custom messages arrive one by one, in the order they were sent.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: a message is taken out of the inbox only
    /// when `recv` returns it, so using it in `tokio::select!` loses nothing.
    pub async fn recv(&mut self) -> Option<ControlMessage> {
        loop {
            let changed = self.inner.core.end.changed();
            tokio::pin!(changed);
            // Registered before looking, so a message that arrives between
            // the look and the wait still wakes us.
            changed.as_mut().enable();
            let message = next_message(
                &self.inner.core,
                &self.inner.scope,
                self.inner.attempt,
                &mut self.inner.delivered,
            );
            if message.is_some() {
                return message;
            }
            if self.inner.delivered.shutdown() {
                return None;
            }
            // A stop wakes `changed`; a token the process cancelled itself
            // does not, so it is waited for too (boxed: few processes make
            // one, and this future lives in their tasks).
            match self.inner.core.made_token(self.inner.attempt) {
                Some(token) => {
                    let cancelled = Box::pin(token.cancelled_owned());
                    tokio::select! {
                        () = cancelled => {}
                        () = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    /// The next control message if one is waiting, without waiting; the
    /// same order as [`recv`](Context::recv).
    pub fn try_recv(&mut self) -> Option<ControlMessage> {
        let inner = &mut *self.inner;
        next_message(
            &inner.core,
            &inner.scope,
            inner.attempt,
            &mut inner.delivered,
        )
    }
}

/// The next message in `recv`'s order; a function of the context's fields
/// rather than a method so that `recv` can hold a borrow of `core` meanwhile.
fn next_message(
    core: &ChildCore,
    scope: &Scope,
    attempt: u32,
    delivered: &mut Delivered,
) -> Option<ControlMessage> {
    if !delivered.shutdown() && core.stop_reached(attempt) {
        delivered.set_shutdown();
        return Some(ControlMessage::Shutdown);
    }
    let mut seen_reloads = delivered.reloads();
    let message = core.take_message(&mut seen_reloads);
    delivered.set_reloads(seen_reloads);
    if let Some(ControlMessage::Reload) = message {
        #[cfg(feature = "tracing")]
        tracing::debug!(path = %format_args!("{}/{}", scope.path, core.name), id = core.id, "reload delivered");
        #[cfg(feature = "log")]
        log::debug!(
            "process {}/{} (id {}) received a reload",
            scope.path,
            core.name,
            core.id
        );
        scope
            .events
            .publish(&scope.path, Some(&core.name), core.id, || {
                EventKind::ReloadDelivered
            });
    }
    message
}

/// Completes when the attempt of `inner` is asked to stop, in any way (see
/// [`ChildCore::stop_reached`]). Cancel safe: it takes nothing.
///
/// A block, not an `async fn`, which would keep `inner` twice: this future
/// lives in every child's task, where 8 bytes more took a small process's
/// task from 256 to 384 bytes.
#[allow(clippy::manual_async_fn)]
fn stop_of(inner: &Inner) -> impl Future<Output = ()> + Send + '_ {
    async move {
        loop {
            // Made before looking: `notify_waiters`, which every stop uses,
            // wakes it from its creation on, polled or not.
            let changed = inner.core.end.changed();
            if inner.core.stop_reached(inner.attempt) {
                return;
            }
            if let Some(token) = inner.core.made_token(inner.attempt) {
                // The process made a token for this attempt: every stop of
                // the attempt cancels it, and so may the process itself,
                // which wakes nobody else. Boxed, so that the common wait
                // alone sets this future's size.
                drop(changed);
                return Box::pin(token.cancelled_owned()).await;
            }
            // A stop wakes `changed`, and so does a token being made.
            changed.await;
        }
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("id", &self.inner.core.id)
            .field("path", &self.path())
            .field("shutdown_requested", &self.is_shutdown_requested())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A context's fields take 24 bytes: malloc's 32-byte chunk (25 would
    /// take 48).
    #[test]
    fn a_context_takes_24_bytes() {
        assert_eq!(size_of::<Inner>(), 24);
        assert_eq!(size_of::<Context>(), 8);
    }

    /// The stop delivered and the reloads seen share a word without
    /// touching each other; reload counts wrap as the inbox's do.
    #[test]
    fn what_a_context_delivered_shares_a_word() {
        let mut delivered = Delivered::new(RELOADS);
        assert_eq!(delivered.reloads(), RELOADS);
        assert!(!delivered.shutdown());
        delivered.set_shutdown();
        assert!(delivered.shutdown());
        assert_eq!(delivered.reloads(), RELOADS);
        delivered.set_reloads(RELOADS.wrapping_add(1) & RELOADS);
        assert_eq!(delivered.reloads(), 0);
        assert!(delivered.shutdown());
        delivered.set_reloads(7);
        assert_eq!(delivered.reloads(), 7);
        assert!(delivered.shutdown());
        assert!(!Delivered::new(u32::MAX).shutdown());
    }
}
