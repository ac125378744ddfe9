use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::shared::ManagerShared;
use super::{ChildInfo, TreeSnapshot};
use crate::control::{ChildHandle, Events, Outcome, ProcessControlHandler, ShutdownReason};
use crate::error::{ControlError, InsertError};
use crate::policy::ChildOptions;
use crate::runnable::Runnable;

/// A handle to a [`ProcessManager`](crate::ProcessManager): insert children,
/// and stop, reload or wait for the whole subtree.
///
/// Cheap to clone, usable from any task, and usable before the manager runs
/// and outside a tokio runtime. After the manager has stopped, inserts hand
/// the runnable back and requests return [`ControlError::Ended`]. Waiting for
/// a manager that has not run yet waits until it runs and ends, or until the
/// manager is dropped.
///
/// # Example
///
/// ```
/// use procmgr::{IdleProcess, ProcessManager, process_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = ProcessManager::new();
/// manager.insert(IdleProcess)?;
/// let handle = manager.handle();
/// let run = tokio::spawn(manager.into_future());
///
/// // From any task, while the manager runs:
/// let worker = handle.insert(process_fn("late", |ctx| async move {
///     ctx.shutdown_requested().await;
///     Ok::<_, std::io::Error>(())
/// }))?;
/// handle.request_reload()?;
/// worker.shutdown().await;
/// handle.shutdown().await;
/// run.await??;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ManagerHandle {
    shared: Arc<ManagerShared>,
}

impl ManagerHandle {
    pub(crate) fn new(shared: Arc<ManagerShared>) -> Self {
        ManagerHandle { shared }
    }

    /// The manager's name.
    pub fn name(&self) -> &str {
        &self.shared.settings.name
    }

    /// Inserts a child, before the manager runs or while it runs, and returns
    /// the child's handle.
    ///
    /// A child inserted while the manager runs starts on the manager's next
    /// turn; its handle works at once.
    ///
    /// # Names
    ///
    /// One rule for every name, whether given here ([`ChildOptions::name`],
    /// [`process_fn`](crate::process_fn)'s) or the type's default
    /// ([`Runnable::name`]): names are unique among
    /// live siblings, and a child whose name a live sibling has gets its id
    /// as a suffix (`worker`, `worker-7`), or `worker-7-2` if a sibling has
    /// that name too, so a suffix never takes a name in use. So inserting
    /// `process_fn("worker", ..)` a million times needs no `format!` per
    /// child; [`ChildHandle::name`](crate::ChildHandle::name) says which
    /// name a child got, and [`child`](ManagerHandle::child) finds it by
    /// that name. Once a child has ended, its name is free again. A child
    /// inserted with [`ChildOptions::exact_name`] is refused instead of
    /// suffixed.
    ///
    /// # Errors
    ///
    /// Hands the runnable back if the manager is shutting down or has stopped,
    /// if the child asks for an [exact name](ChildOptions::exact_name)
    /// that a live sibling has, or if the manager already holds 2^32
    /// children ([`InsertErrorKind`](crate::InsertErrorKind) says which).
    /// Every insert that succeeds runs its child, and the manager stops
    /// that child before its run returns.
    ///
    /// # Example
    ///
    /// ```
    /// use procmgr::{ProcessManager, process_fn};
    ///
    /// let manager = ProcessManager::new();
    /// let handle = manager.handle();
    /// let first = handle.insert(process_fn("worker", async |_ctx| -> procmgr::Result { Ok(()) }))?;
    /// let second = handle.insert(process_fn("worker", async |_ctx| -> procmgr::Result { Ok(()) }))?;
    /// assert_eq!(first.name(), "worker");
    /// assert_eq!(second.name(), format!("worker-{}", second.id()));
    /// assert_eq!(handle.child(second.name()).map(|c| c.id()), Some(second.id()));
    /// # Ok::<_, procmgr::BoxError>(())
    /// ```
    pub fn insert<R: Runnable>(&self, runnable: R) -> Result<ChildHandle, InsertError<R>> {
        self.shared.insert(runnable, ChildOptions::new())
    }

    /// Inserts a child with its own settings; see [`insert`](ManagerHandle::insert),
    /// which also says how the child is named.
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

    /// What each child is doing, in insertion order: state, uptime,
    /// restarts, last error. Ended children appear only with auto-cleanup
    /// off.
    pub fn snapshot(&self) -> Vec<ChildInfo> {
        self.shared
            .snapshot()
            .into_iter()
            .map(|(info, _)| info)
            .collect()
    }

    /// The whole subtree, nested managers walked; its `Display` draws it like
    /// `pstree`.
    ///
    /// # Example
    ///
    /// ```
    /// use procmgr::{IdleProcess, ProcessManager};
    ///
    /// let manager = ProcessManager::builder().name("root").child(IdleProcess).build();
    /// assert_eq!(manager.handle().tree().to_string(), "root\n└── idle: starting\n");
    /// ```
    pub fn tree(&self) -> TreeSnapshot {
        self.shared.tree()
    }

    pub(crate) fn shared(&self) -> &ManagerShared {
        &self.shared
    }

    /// The live child with this name, among this manager's children.
    ///
    /// Names are unique among live siblings: a child whose name was taken
    /// when it was inserted has a suffix (see [`insert`](ManagerHandle::insert)),
    /// and [`ChildHandle::name`] says which.
    pub fn child(&self, name: &str) -> Option<ChildHandle> {
        self.shared.child(name).map(|(child, _)| child)
    }

    /// The live child at this path below this manager, walking nested
    /// managers: `"consumers/kafka-0"` from the root of
    /// `root/consumers/kafka-0`.
    ///
    /// # Example
    ///
    /// ```
    /// use procmgr::{IdleProcess, ProcessManager};
    ///
    /// let consumers = ProcessManager::builder().name("consumers").build();
    /// consumers.insert(IdleProcess)?;
    /// let root = ProcessManager::builder().name("root").build();
    /// root.insert(consumers)?;
    /// assert!(root.handle().find("consumers/idle").is_some());
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn find(&self, path: &str) -> Option<ChildHandle> {
        let (first, rest) = match path.split_once('/') {
            Some((first, rest)) => (first, Some(rest)),
            None => (path, None),
        };
        let (child, manager) = self.shared.child(first)?;
        match rest {
            None => Some(child),
            Some(rest) => manager?.find(rest),
        }
    }

    /// Handles to the children the manager keeps records of: those that have
    /// not ended, and with auto-cleanup off also those that have.
    pub fn children(&self) -> Vec<ChildHandle> {
        self.shared.children()
    }

    /// Subscribes to the lifecycle events of every process in this
    /// manager's subtree, nested managers' children included: starts,
    /// readiness, reloads, failures, restarts, aborts, ends and shutdown
    /// requests, in the order the manager saw them.
    ///
    /// A subscriber that reads too slowly never slows the manager down: it
    /// misses the oldest events beyond [`EVENT_CAPACITY`](crate::EVENT_CAPACITY)
    /// and is told how many. The subscription ends when the manager's run
    /// does.
    ///
    /// # Example
    ///
    /// ```
    /// use procmgr::{EventsError, ProcessManager, process_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let manager = ProcessManager::builder().name("root").build();
    /// let mut events = manager.handle().subscribe();
    /// manager.insert(process_fn("once", |_ctx| async { Ok::<_, std::io::Error>(()) }))?;
    /// manager.await?;
    /// loop {
    ///     match events.recv().await {
    ///         Ok(event) => println!("{event}"), // root/once: started (attempt 1), ...
    ///         Err(EventsError::Lagged(missed)) => println!("missed {missed} events"),
    ///         Err(_) => break,
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribe(&self) -> Events {
        self.shared.events.subscribe()
    }

    /// Whether every child that reports readiness is ready in its current
    /// attempt; a manager with no such child (none that declared
    /// [`Runnable::reports_ready`], or no child at all) is always ready.
    ///
    /// A child reports readiness when it declares it
    /// ([`Runnable::reports_ready`],
    /// [`ProcessFn::reporting_ready`](crate::ProcessFn::reporting_ready)) or
    /// is inserted with [`ChildOptions::reports_ready`]; nested managers do,
    /// and count as ready once their own children are. Such a child is
    /// unready from its insert until it calls
    /// [`Context::mark_ready`](crate::Context::mark_ready), and again in
    /// each restart; a child that has ended no longer counts. The building
    /// block for a health endpoint or a systemd notification.
    pub fn is_ready(&self) -> bool {
        self.shared.unready.load(Ordering::Acquire) == 0
    }

    /// Waits until [`is_ready`](ManagerHandle::is_ready) is true.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe.
    ///
    /// # Example
    ///
    /// ```
    /// use procmgr::{ProcessManager, process_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let manager = ProcessManager::new();
    /// manager.insert(
    ///     process_fn("http", async |ctx| -> procmgr::Result {
    ///         // bind the socket, then:
    ///         ctx.mark_ready();
    ///         ctx.shutdown_requested().await;
    ///         Ok(())
    ///     })
    ///     .reporting_ready(),
    /// )?;
    /// let handle = manager.handle();
    /// let run = tokio::spawn(manager.into_future());
    /// handle.ready().await; // e.g. tell systemd: READY=1
    /// handle.shutdown().await;
    /// run.await??;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ready(&self) {
        self.shared.ready().await;
    }

    /// Whether a child of the tree has a reload it has not taken yet. A
    /// child takes a reload when its [`Context`](crate::Context) hands it
    /// [`ControlMessage::Reload`](crate::ControlMessage::Reload); a nested
    /// manager has taken it once its own children have; a child that
    /// restarts or ends before it looks no longer counts. Only children
    /// that have looked at their messages before
    /// ([`recv`](crate::Context::recv) or
    /// [`try_recv`](crate::Context::try_recv)) count: one that only waits
    /// for shutdown would hold every reload forever, and one that has not
    /// looked yet gets the reload at its first look.
    pub fn is_reloading(&self) -> bool {
        self.shared.reloading.load(Ordering::Acquire) > 0
    }

    /// Waits until [`is_reloading`](ManagerHandle::is_reloading) is false:
    /// after [`request_reload`](ManagerHandle::request_reload), until every
    /// child has taken the reload (the moment to tell systemd `READY=1`
    /// again).
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe.
    ///
    /// # Example
    ///
    /// ```
    /// use procmgr::{ControlMessage, ProcessManager, process_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let manager = ProcessManager::new();
    /// manager.insert(process_fn("config", |mut ctx| async move {
    ///     while let Some(message) = ctx.recv().await {
    ///         if let ControlMessage::Reload = message {
    ///             // read the configuration again
    ///         }
    ///     }
    ///     Ok::<_, std::io::Error>(())
    /// }))?;
    /// let handle = manager.handle();
    /// let run = tokio::spawn(manager.into_future());
    /// handle.request_reload()?;
    /// handle.reloaded().await;
    /// assert!(!handle.is_reloading());
    /// handle.shutdown().await;
    /// run.await??;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn reloaded(&self) {
        self.shared.reloaded().await;
    }

    /// Whether no running child of the tree has gone longer than its
    /// [`heartbeat_timeout`](crate::ChildOptions::heartbeat_timeout)
    /// without a [`heartbeat`](crate::Context::heartbeat): the answer for a
    /// liveness probe or a watchdog. The manager aborts such a child as
    /// wedged when it notices, so a stale heartbeat that lasts means a
    /// child the abort cannot reach (one that blocks its thread) or a
    /// manager that cannot run. Children asked to stop are left out: their
    /// grace period bounds them. Walks the whole tree, one lock at a time.
    pub fn is_live(&self) -> bool {
        self.stale_children().is_empty()
    }

    /// The paths of the children that make [`is_live`](ManagerHandle::is_live)
    /// false, such as `root/consumers/kafka-0`.
    pub fn stale_children(&self) -> Vec<String> {
        let mut stale = Vec::new();
        self.shared.stale_children(&mut stale);
        stale
    }

    /// The manager's grace period, as the builder set it.
    pub fn grace_period(&self) -> Duration {
        self.shared.settings.grace
    }

    /// The manager's drain period, as the builder set it.
    pub fn drain_period(&self) -> Duration {
        self.shared.settings.drain
    }

    /// How the manager's run ended, or `None` while it has not.
    pub fn outcome(&self) -> Option<Outcome> {
        self.shared.end.get()
    }

    /// Asks the manager to shut down, like
    /// [`request_shutdown`](ManagerHandle::request_shutdown), giving
    /// the reason its children see through
    /// [`Context::shutdown_reason`](crate::Context::shutdown_reason). The
    /// first reason stays.
    ///
    /// # Errors
    ///
    /// [`ControlError::Ended`] if the manager has already ended.
    pub fn request_shutdown_with(&self, reason: ShutdownReason) -> Result<(), ControlError> {
        self.shared.request_shutdown(reason)
    }

    /// Stops the manager now: requests shutdown if nobody has yet, and aborts
    /// every child still running without waiting for grace periods
    /// (background children are then stopped as usual). The manager returns
    /// promptly; the aborted children are reported as failures,
    /// [`FailureCause::Forced`](crate::FailureCause::Forced) with the signal
    /// of a [`ShutdownReason::Forced`], and the run's exit status is 3 (see
    /// [`RunError::exit_code`](crate::RunError::exit_code)). A
    /// [`ShutdownReason::Forced`] replaces a graceful reason given before;
    /// another reason counts only if none was given.
    ///
    /// # Errors
    ///
    /// [`ControlError::Ended`] if the manager has already ended.
    pub fn force_shutdown(&self, reason: ShutdownReason) -> Result<(), ControlError> {
        self.shared.force_shutdown(reason)
    }

    /// Asks the manager, and through it every child and every nested
    /// manager's children, to shut down gracefully; returns at once.
    ///
    /// A nested manager is stopped through its record in its parent, for
    /// good: its parent does not restart it, also when it is asked between
    /// two runs of a restartable subtree, while the manager waits for its
    /// restart.
    ///
    /// # Errors
    ///
    /// [`ControlError::Ended`] if the manager has already ended.
    pub fn request_shutdown(&self) -> Result<(), ControlError> {
        self.shared.request_shutdown(ShutdownReason::Requested)
    }

    /// Sends a reload to every child, nested managers passing it on to
    /// theirs; returns at once.
    ///
    /// # Errors
    ///
    /// [`ControlError::Ended`] if the manager has already ended.
    pub fn request_reload(&self) -> Result<(), ControlError> {
        self.shared.broadcast_reload()
    }

    /// Whether the manager's run has ended. A nested manager restarted by
    /// its parent runs again: this is `false` again once its new run has
    /// started.
    pub fn is_finished(&self) -> bool {
        self.shared.end.is_set()
    }

    /// Waits until the manager's run has ended and returns how: the run
    /// under way, or, between two runs of a restartable subtree, the one
    /// that ended last.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: any number of tasks may wait at once.
    pub fn wait(&self) -> impl Future<Output = Outcome> + Send + '_ {
        self.shared.end.wait()
    }

    /// Requests a shutdown and waits until the manager's run has ended;
    /// returns the outcome at once if it already had.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: the request is made on the first poll, and
    /// dropping the future afterwards does not withdraw it.
    pub async fn shutdown(&self) -> Outcome {
        // `Ended` means there is nothing left to stop, and `wait` then
        // returns the outcome at once.
        let _ = self.request_shutdown();
        self.wait().await
    }

    /// Completes when shutdown of the manager has been requested, or it
    /// began to stop on its own (a failure, or no child left), including
    /// the start of a [drain](crate::ProcessManagerBuilder::drain_period).
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe.
    pub async fn shutdown_requested(&self) {
        self.shared.requested().cancelled_owned().await;
    }

    /// Whether shutdown of the manager has been requested; `true` during a
    /// [drain](crate::ProcessManagerBuilder::drain_period) too, while the
    /// children's contexts do not see it yet.
    pub fn is_shutdown_requested(&self) -> bool {
        self.shared.requested().is_cancelled()
    }

    /// Why shutdown of the manager was requested, or `None` while it has not
    /// been (a manager whose children all ended by themselves has none).
    pub fn shutdown_reason(&self) -> Option<ShutdownReason> {
        self.shared.reason.get()
    }
}

/// The same methods as the handle's own, for code generic over handles.
impl ProcessControlHandler for ManagerHandle {
    fn request_shutdown(&self) -> Result<(), ControlError> {
        ManagerHandle::request_shutdown(self)
    }

    fn request_reload(&self) -> Result<(), ControlError> {
        ManagerHandle::request_reload(self)
    }

    fn is_finished(&self) -> bool {
        ManagerHandle::is_finished(self)
    }

    fn wait(&self) -> impl Future<Output = Outcome> + Send {
        ManagerHandle::wait(self)
    }
}

impl fmt::Debug for ManagerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagerHandle")
            .field("name", &self.shared.settings.name)
            .field("outcome", &self.shared.end.get())
            .finish()
    }
}
